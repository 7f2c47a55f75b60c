//! Probes below HTTP: what the server answers to a legacy ClientHello and
//! to plaintext HTTP on its TLS port.

use super::*;
use crate::suite::wire::{self, Answer};

impl Case<'_> {
    pub(super) async fn do_wire(&mut self, st: &Step) -> StepResult {
        let Some((origin, path)) = split_https_url(&self.ctx.target.url) else {
            return fail("the target URL is not https://");
        };
        let authority = origin.trim_start_matches("https://").to_string();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.clone()
        } else {
            format!("{authority}:443")
        };
        let path = path.to_string();
        let limit = Duration::from_secs(5);
        let what = st.what.as_deref().unwrap_or("");
        let (bytes, shown) = match what {
            "tls1.0" | "tls1.1" => {
                let v = if what == "tls1.0" {
                    wire::TLS10
                } else {
                    wire::TLS11
                };
                (
                    wire::legacy_client_hello(v, &host),
                    format!("ClientHello offering only {}", wire::version_name(v)),
                )
            }
            "plaintext" => (
                format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
                    .into_bytes(),
                format!("plaintext GET {path}"),
            ),
            o => return fail(format!("unknown wire probe `{o}`")),
        };
        let started = Instant::now();
        let answer = wire::probe(&addr, &bytes, limit)
            .await
            .map_err(StepError::Fail)?;
        self.evidence.push(Exchange {
            step: self.step_no,
            method: "TCP".into(),
            url: format!("tcp://{addr}"),
            credential: "none".into(),
            request_body: shown,
            status: None,
            response_headers: Vec::new(),
            response_body: answer.to_string(),
            error: None,
            ms: started.elapsed().as_millis() as u64,
        });
        match (what, &answer) {
            (_, Answer::ServerHello(v)) if *v < wire::TLS12 => fail(format!(
                "the server negotiated {} (only TLS 1.2 and 1.3 are allowed): {answer}",
                wire::version_name(*v)
            )),
            ("plaintext", Answer::Http(code)) if *code < 400 => fail(format!(
                "the server answered plaintext HTTP on its TLS port with {code}: anything sent there travels in clear"
            )),
            _ => Ok(None),
        }
    }
}

//! Probes below HTTP: what the server answers to a legacy ClientHello and
//! to plaintext HTTP on its TLS port.

use super::*;
use crate::check::scenario::name_of;
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
        let what = st.what.as_ref().map(name_of).unwrap_or_default();
        let what = what.as_str();
        if what == "server-name" {
            return self.do_server_name(&host).await;
        }
        if !matches!(what, "tls1.0" | "tls1.1" | "plaintext") {
            return self.do_framing(what, &authority).await;
        }
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

    /// The server's certificate verifies under `caCert` for the host the
    /// directory URL names, as a device that checks names does it.
    async fn do_server_name(&mut self, host: &str) -> StepResult {
        let cfg =
            crate::tls::client_config(&ServerTrust::Pinned(self.ctx.target.ca_pem.clone()), None)
                .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
        let url = self.ctx.target.url.clone();
        match net::request(&url, Method::GET, None, Arc::new(cfg), self.ctx.request_timeout).await {
            Ok(r) => {
                self.evidence.push(Exchange::note(
                    self.step_no,
                    format!("directory fetched with the name {host} checked: HTTP {}", r.status),
                ));
                Ok(None)
            }
            Err(e) => fail(format!(
                "a device that checks names cannot connect: the TLS certificate does not verify under caCert for {host}: {e}"
            )),
        }
    }

    /// Hand-written HTTP over a real TLS connection: framing the server must
    /// refuse, and stalls it must cut off without blocking others.
    async fn do_framing(&mut self, what: &str, authority: &str) -> StepResult {
        let url = self.provreq_url().await;
        let Some((_, path)) = split_https_url(&url) else {
            return fail("the provisioning endpoint is not https://");
        };
        let path = path.to_string();
        let cfg = self.config("nobody", false)?;
        let head = |extra: &str| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n{extra}"
            )
        };
        let bound = Duration::from_secs(STALL_BOUND_SECS);
        let pause = Duration::from_millis(100);
        // (parts written, wait for the answer, allowed statuses, stall?)
        let mut answers = 1;
        let (parts, wait, want, stall): (Vec<Vec<u8>>, Duration, &[u16], bool) = match what {
            "trailing-garbage" => {
                answers = 2;
                let dir = self.ctx.target.url.clone();
                let dir_path = split_https_url(&dir).map_or("/", |(_, p)| p).to_string();
                (
                    vec![format!(
                        "GET {dir_path} HTTP/1.1\r\nHost: {authority}\r\n\r\n\x01\x02garbage \x7f\r\n\r\n"
                    )
                    .into_bytes()],
                    Duration::from_secs(5),
                    &[400],
                    false,
                )
            }
            "chunked-over-limit" => {
                let mut first = head("Transfer-Encoding: chunked\r\n\r\n").into_bytes();
                let chunk = format!("400\r\n{}\r\n", "a".repeat(0x400));
                let mut body = Vec::new();
                for _ in 0..70 {
                    body.extend_from_slice(chunk.as_bytes());
                }
                body.extend_from_slice(b"0\r\n\r\n");
                first.extend(body);
                (vec![first], Duration::from_secs(10), &[413], false)
            }
            "both-lengths" => {
                // Behind the body as Transfer-Encoding frames it, a second
                // request: answered only by a server that keeps the
                // connection (RFC 9112 §6.1 says it must close) or that
                // framed the body by Content-Length.
                answers = 2;
                let dir = self.ctx.target.url.clone();
                let dir_path = split_https_url(&dir).map_or("/", |(_, p)| p).to_string();
                (
                    vec![format!(
                        "{}0\r\n\r\nGET {dir_path} HTTP/1.1\r\nHost: {authority}\r\n\r\n",
                        head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
                    )
                    .into_bytes()],
                    Duration::from_secs(5),
                    &[400],
                    false,
                )
            }
            "bad-chunk" => (
                vec![head("Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").into_bytes()],
                Duration::from_secs(5),
                &[400],
                false,
            ),
            "stall-header" => (
                vec![format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes()],
                bound,
                &[400, 408],
                true,
            ),
            "stall-body" => (
                vec![head("Content-Length: 1000\r\n\r\n{\"deviceID\":").into_bytes()],
                bound,
                &[400, 408],
                true,
            ),
            o => return fail(format!("unknown wire probe `{o}`")),
        };
        let answers = if stall { 0 } else { answers };
        let target = url.clone();
        let probe = tokio::spawn(async move {
            crate::suite::wire::tls_raw(&target, cfg, &parts, pause, wait, answers).await
        });
        // While a connection stalls, an honest device must still be served.
        let honest = if stall {
            let r = self.with_fresh_secret("honest", Step::default()).await?;
            let status = resp_json(&r)
                .and_then(|v| v["status"].as_str().map(str::to_string))
                .unwrap_or_default();
            Some((r.status, status))
        } else {
            None
        };
        let ex = probe
            .await
            .map_err(|e| StepError::Fail(e.to_string()))?
            .map_err(StepError::Fail)?;
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "raw `{what}` over TLS: statuses {:?}, {} after {} ms; first bytes: {}",
                ex.statuses,
                if ex.closed { "closed" } else { "still open" },
                ex.after.as_millis(),
                ex.head.lines().next().unwrap_or("")
            ),
        ));
        if let Some((code, status)) = honest {
            if code != 200 || status != "Approved" {
                return fail(format!(
                    "while one connection stalled, an honest device got HTTP {code} {status}, not Approved: one slow client blocks others"
                ));
            }
        }
        if stall {
            if !ex.closed && ex.statuses.is_empty() {
                return fail(format!(
                    "a connection stalled {} was still open after {} s (the profile's bound: transport.timeouts)",
                    if what == "stall-header" { "mid-header" } else { "mid-body" },
                    bound.as_secs()
                ));
            }
            return Ok(None);
        }
        if let Some(verdict) = judge_framing(what, &ex.statuses, ex.closed) {
            return verdict;
        }
        match ex.statuses.first() {
            Some(c) if want.contains(c) => Ok(None),
            Some(c) => fail(format!(
                "`{what}` was answered {c}, expected {}",
                want.iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
            None => fail(format!(
                "`{what}` got no HTTP answer ({}); malformed framing must get {}",
                if ex.closed {
                    "the connection closed"
                } else {
                    "silence"
                },
                want.iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        }
    }
}

/// The framing probes RFC 9112 lets a server answer in more than one way
/// (`transport.framing`); `None` for the probes judged by status alone.
fn judge_framing(what: &str, statuses: &[u16], closed: bool) -> Option<StepResult> {
    let how = if closed {
        "then closed"
    } else {
        "then kept the connection open"
    };
    Some(match what {
        // RFC 9112 §9.6: a server may close after any answer; bytes that
        // are no request may get 400 or a close, never a second success.
        "trailing-garbage" => match statuses {
            [200] | [200, 400..=499] => Ok(None),
            [200, second, ..] => fail(format!(
                "the garbage after a complete request was answered {second}: bytes that are no request must get 400 or a close"
            )),
            [] => fail(format!(
                "a complete GET of the directory followed by garbage got no answer ({how}): the request itself must be answered"
            )),
            other => fail(format!(
                "a complete GET of the directory followed by garbage was answered {other:?}; expected 200, then 400 or a close"
            )),
        },
        // RFC 9112 §6.1: refuse both framings, or process by
        // Transfer-Encoding alone; either way close after answering.
        "both-lengths" => match statuses {
            [400..=499] => Ok(None),
            [first @ 400..=499, second, ..] => fail(format!(
                "after answering {first} to a request with both Content-Length and Transfer-Encoding the server answered the request behind it ({second}): it must close the connection (RFC 9112 §6.1), or it framed the body by Content-Length"
            )),
            [] => fail(format!(
                "a request with both Content-Length and Transfer-Encoding got no answer ({how}); refuse it with 400 or process it by Transfer-Encoding alone"
            )),
            [first, ..] => fail(format!(
                "a request with both Content-Length and Transfer-Encoding was answered {first}; expected 400 (or the answer to its Transfer-Encoding body, a 4xx here) and a close"
            )),
        },
        // A body whose chunk framing is broken is malformed: RFC 9112 §8
        // lets the server answer 400 before closing, or just close.
        "bad-chunk" => match statuses {
            [400..=499, ..] => Ok(None),
            [] if closed => Ok(None),
            [] => fail("a chunk size that is not hex got neither an answer nor a close within 5 s"),
            [first, ..] => fail(format!(
                "a chunk size that is not hex was answered {first}; expected a 4xx or a close"
            )),
        },
        _ => return None,
    })
}

/// How long a server may hold a stalled connection open (PROTOCOL
/// `transport.timeouts`; the reference server cuts off after 10 s).
pub(super) const STALL_BOUND_SECS: u64 = 15;

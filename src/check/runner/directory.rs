//! Steps that read the directory and DNS-SD advertisement.

use super::*;

impl Case<'_> {
    pub(super) async fn do_directory(&mut self, st: &Step) -> StepResult {
        let url = self.ctx.target.url.clone();
        let r = match self
            .call_with(Method::GET, &url, None, "nobody", true)
            .await
        {
            Ok(r) => r,
            Err(e) => return fail(format!("no answer: {e}")),
        };
        self.check_http(st, &r)?;
        let e = &st.expect;
        if e.directory_valid == Some(true) {
            let d = parse_directory(&r.body, &url).map_err(|e| StepError::Fail(e.to_string()))?;
            let v = resp_json(&r).unwrap_or(Value::Null);
            for k in [
                "directory",
                "status",
                "postOobSecret",
                "postProvisionRequest",
            ] {
                if !v["endpoints"][k].is_string() {
                    return fail(format!("endpoints.{k} missing"));
                }
            }
            if !d.status.as_deref().unwrap_or("").contains("{deviceID}") {
                return fail("status endpoint lacks the {deviceID} placeholder");
            }
        }
        let v = resp_json(&r).unwrap_or(Value::Null);
        let (ca, _) = decode_ca(v.get("caCert"))
            .unwrap_or((None, crate::core::directory::CaEncoding::Absent));
        if e.ca_cert.as_deref() == Some("present") && ca.is_none() {
            return fail(
                "directory offers no caCert (a device without a pre-provisioned CA cannot pin one)",
            );
        }
        if e.tls_matches_ca == Some(true) {
            let Some(ca) = ca else {
                return fail("directory offers no caCert to check the TLS chain against");
            };
            let ca_der =
                cert_der_from_pem(&ca).map_err(|e| StepError::Fail(format!("caCert: {e}")))?;
            let leaf = r
                .server_certs
                .first()
                .ok_or_else(|| StepError::Fail("no server certificate".into()))?;
            verify_chain(leaf, &ca_der, OffsetDateTime::now_utc(), Usage::Server).map_err(|e| {
                StepError::Fail(format!("server TLS certificate vs directory caCert: {e}"))
            })?;
        }
        Ok(None)
    }

    /// Finds the target's DNS-SD advertisement and reads it strictly, as a
    /// server must publish it (PROTOCOL §2): SRV port equal to the
    /// target's, TXT `path` (or the legacy `directory`) present and valid,
    /// and an advertised address that answers the directory.
    pub(super) async fn do_discover(&mut self, st: &Step) -> StepResult {
        use crate::core::discovery::{published_path, PathKey};
        let want =
            net::parse_url(&self.ctx.target.url).map_err(|e| StepError::Fail(e.to_string()))?;
        let port = want.port;
        let ad = tokio::task::spawn_blocking(move || {
            discover::browse(Duration::from_secs(10), |ad| {
                if ad.port == port {
                    Ok(ad.clone())
                } else {
                    Err(format!(
                        "{} advertises port {}, the target listens on {port}",
                        ad.fullname, ad.port
                    ))
                }
            })
        })
        .await
        .map_err(|e| StepError::Fail(e.to_string()))?
        .map_err(StepError::Fail)?;
        let txt: Vec<String> = ad
            .txt
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                ),
                None => String::from_utf8_lossy(k).into_owned(),
            })
            .collect();
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "DNS-SD: {} · SRV port {} · addresses {:?} · TXT [{}]",
                ad.fullname,
                ad.port,
                ad.addresses,
                txt.join(", ")
            ),
        ));
        let (path, key) = published_path(&ad.txt).map_err(|e| {
            StepError::Fail(format!(
                "the advertisement cannot lead a device anywhere by itself: {e}"
            ))
        })?;
        if st.expect.txt_path_key == Some(true) && key == PathKey::LegacyDirectory {
            return fail(format!(
                "TXT publishes the directory path only under the legacy key `directory` ({path}); servers publish `path`"
            ));
        }
        let mut addrs = ad.addresses.clone();
        addrs.sort_by_key(|a| a.is_ipv6());
        if addrs.is_empty() {
            return fail("the advertisement resolves to no address");
        }
        let mut problems = Vec::new();
        for ip in addrs {
            let host = match ip {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            let url = format!("https://{host}:{}{path}", ad.port);
            match self
                .call_with(Method::GET, &url, None, "nobody", true)
                .await
            {
                Ok(r) if r.status == 200 => match parse_directory(&r.body, &url) {
                    Ok(_) => return Ok(None),
                    Err(e) => problems.push(format!("{url}: not a directory: {e}")),
                },
                Ok(r) => problems.push(format!("{url}: HTTP {}", r.status)),
                Err(e) => problems.push(format!("{url}: {e}")),
            }
        }
        fail(format!(
            "no advertised address answers the directory: {}",
            problems.join("; ")
        ))
    }
}

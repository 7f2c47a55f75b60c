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
        if e.ca_cert == Some(crate::check::scenario::CaCertSpec::Present) && ca.is_none() {
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

    /// Reads the target's DNS-SD advertisement from the mDNS packets
    /// themselves (PROTOCOL §2) and judges it strictly, as a server must
    /// publish it: an instance of `_idprov._tcp` whose SRV port is the
    /// target's, at least one A/AAAA record for the SRV target, a TXT
    /// record with `path` (or the legacy `directory`) present and valid;
    /// then at least one advertised address serves the directory, and
    /// every address that does presents a certificate that verifies under
    /// caCert for that address (PROTOCOL §3: a device connects to it).
    pub(super) async fn do_discover(&mut self, st: &Step) -> StepResult {
        use crate::core::discovery::{published_path, PathKey};
        use crate::core::messages::SERVICE_TYPE;
        let want =
            net::parse_url(&self.ctx.target.url).map_err(|e| StepError::Fail(e.to_string()))?;
        let port = want.port;
        let towards = want
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| {
                use std::net::ToSocketAddrs;
                (want.host.as_str(), port)
                    .to_socket_addrs()
                    .ok()?
                    .next()
                    .map(|a| a.ip())
            });
        let got = tokio::task::spawn_blocking(move || {
            crate::suite::mdns_raw::collect(
                SERVICE_TYPE,
                Duration::from_secs(5),
                towards,
                |found| {
                    found.iter().any(|i| {
                        i.srv.as_ref().is_some_and(|(p, _)| *p == port)
                            && i.txt.is_some()
                            && !i.addresses.is_empty()
                    })
                },
            )
        })
        .await
        .map_err(|e| StepError::Fail(e.to_string()))?
        .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
        let instances = got.instances(SERVICE_TYPE);
        let shown: Vec<String> = instances
            .iter()
            .map(|i| {
                let txt = i.txt.as_ref().map_or("none".to_string(), |t| {
                    t.iter()
                        .map(|(k, v)| match v {
                            Some(v) => format!(
                                "{}={}",
                                String::from_utf8_lossy(k),
                                String::from_utf8_lossy(v)
                            ),
                            None => String::from_utf8_lossy(k).into_owned(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                format!(
                    "{} · SRV {} · A/AAAA {:?} · TXT [{txt}]",
                    i.fullname,
                    i.srv
                        .as_ref()
                        .map_or("none".to_string(), |(p, h)| format!("{h}:{p}")),
                    i.addresses,
                )
            })
            .collect();
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "mDNS (port {}, asked on {}): {} answer packets, {} malformed{}; instances: {}",
                got.listened_on,
                asked_on(&got),
                got.packets,
                got.malformed.len(),
                if got.malformed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", got.malformed.join("; "))
                },
                if shown.is_empty() {
                    "none".to_string()
                } else {
                    shown.join(" | ")
                }
            ),
        ));
        if instances.is_empty() {
            return fail(format!(
                "no PTR record for {SERVICE_TYPE} in any answer ({} answer packets in 5 s; asked on {}): the server does not advertise itself there",
                got.packets,
                asked_on(&got)
            ));
        }
        let ours: Vec<_> = instances
            .iter()
            .filter(|i| i.srv.as_ref().is_some_and(|(p, _)| *p == port))
            .collect();
        let Some(inst) = ours
            .iter()
            .find(|i| !i.addresses.is_empty() && i.txt.is_some())
            .or(ours.first())
        else {
            let seen: Vec<String> = instances
                .iter()
                .map(|i| match &i.srv {
                    Some((p, _)) => format!("{} has SRV port {p}", i.fullname),
                    None => format!("{} has no SRV record", i.fullname),
                })
                .collect();
            return fail(format!(
                "no instance's SRV record gives the port the target listens on ({port}): {}",
                seen.join("; ")
            ));
        };
        let host = inst.srv.as_ref().map_or("", |(_, h)| h.as_str());
        if inst.addresses.is_empty() {
            return fail(format!(
                "{}: no A or AAAA record for the SRV target {host} in any answer, even when asked for it: a device cannot reach the server",
                inst.fullname
            ));
        }
        let Some(txt) = &inst.txt else {
            return fail(format!(
                "{}: no TXT record in any answer, even when asked for it (discovery.txt-path)",
                inst.fullname
            ));
        };
        let (path, key) = published_path(txt).map_err(|e| {
            StepError::Fail(format!(
                "the advertisement cannot lead a device anywhere by itself: {e}"
            ))
        })?;
        if st.expect.txt_path_key == Some(true) && key == PathKey::LegacyDirectory {
            return fail(format!(
                "TXT publishes the directory path only under the legacy key `directory` ({path}); servers publish `path`"
            ));
        }
        let mut addrs = inst.addresses.clone();
        addrs.sort_by_key(|a| a.is_ipv6());
        let named = Arc::new(
            crate::tls::client_config(&ServerTrust::Pinned(self.ctx.target.ca_pem.clone()), None)
                .map_err(|e| StepError::Fail(format!("setup: {e}")))?,
        );
        let mut served = 0;
        let mut problems = Vec::new();
        for ip in addrs {
            let host = match ip {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            let url = format!("https://{host}:{port}{path}");
            match self
                .call_with(Method::GET, &url, None, "nobody", true)
                .await
            {
                Ok(r) if r.status == 200 => {
                    if let Err(e) = parse_directory(&r.body, &url) {
                        problems.push(format!("{url}: not a directory: {e}"));
                        continue;
                    }
                    served += 1;
                    // The same address with its name checked, as a device does.
                    if let Err(e) = net::request(
                        &url,
                        Method::GET,
                        None,
                        named.clone(),
                        self.ctx.request_timeout,
                    )
                    .await
                    {
                        return fail(format!(
                            "DNS-SD sends devices to {ip}, but the server's TLS certificate does not verify under caCert for that address: {e}"
                        ));
                    }
                }
                Ok(r) => problems.push(format!("{url}: HTTP {}", r.status)),
                Err(e) => problems.push(format!("{url}: {e}")),
            }
        }
        if served == 0 {
            return fail(format!(
                "no advertised address answers the directory: {}",
                problems.join("; ")
            ));
        }
        if !problems.is_empty() {
            self.evidence.push(Exchange::note(
                self.step_no,
                format!("advertised but not answering: {}", problems.join("; ")),
            ));
        }
        Ok(None)
    }
}

/// The interfaces a discovery query went out on, for evidence and failures.
fn asked_on(got: &crate::suite::mdns_raw::Collected) -> String {
    if got.asked_on.is_empty() {
        return "the default interface".into();
    }
    got.asked_on
        .iter()
        .map(|(n, ip)| format!("{n} ({ip})"))
        .collect::<Vec<_>>()
        .join(", ")
}

//! Judging a device run: its exit code, the files it left, the requests
//! it made and how far it got before refusing.

use super::*;
use crate::check::scenario::{name_of, ExitSpec, FilesSpec, ReachedSpec, ServerSpec};

impl Case<'_> {
    pub(super) fn judge(&self, st: &Step, run: &ShimRun) -> Result<Option<String>, StepError> {
        let e = &st.expect;
        let remote = self.target.remote().is_some();
        let Some(srv) = &self.primary else {
            return fail("no server");
        };
        if self.undecided.is_some() {
            // What the device holds is unknown: only what the wire shows
            // is judged here, and the rest is inconclusive below.
            match e.exit {
                Some(ExitSpec::Failure) if run.timed_out => {
                    return fail("the device hung instead of refusing")
                }
                Some(ExitSpec::Bounded) if run.timed_out => {
                    return fail("the device hung: it waited as the server said instead of bounding the wait by its own limit")
                }
                Some(ExitSpec::Failure | ExitSpec::Bounded) => self.check_reached(e.reached, run)?,
                _ => {}
            }
        } else {
            match e.exit {
                None => {}
                Some(ExitSpec::Success) if run.code != Some(0) && remote => {
                    return fail(if run.timed_out {
                        "expected the device to provision; it was still in an exchange at the case limit".to_string()
                    } else if self.provreqs().is_empty() && !self.gave_certificate {
                        "expected the device to provision; it sent no provisioning request".to_string()
                    } else {
                        "expected the device to provision; it holds no new certificate set afterwards".to_string()
                    })
                }
                Some(ExitSpec::Failure) if run.code == Some(0) && remote => {
                    return fail("expected the device to refuse; it holds the new certificate set afterwards (accepted)")
                }
                Some(ExitSpec::Success) if run.code != Some(0) => {
                    return fail(format!(
                        "expected the device to succeed, it {}{}",
                        run.code
                            .map(|c| format!("exited {c}"))
                            .unwrap_or_else(|| "timed out".into()),
                        last_line(&run.stderr_tail)
                    ))
                }
                Some(ExitSpec::Failure) if run.code == Some(0) => {
                    return fail("expected the device to refuse, it exited 0 (accepted)")
                }
                Some(ExitSpec::Failure) if run.timed_out => {
                    return fail("the device hung instead of refusing")
                }
                Some(ExitSpec::Failure) => self.check_reached(e.reached, run)?,
                Some(ExitSpec::Bounded) if run.timed_out => {
                    return fail("the device hung: it waited as the server said instead of bounding the wait by its own limit")
                }
                Some(ExitSpec::Bounded) => self.check_reached(e.reached, run)?,
                Some(ExitSpec::Success) => {}
            }
        }
        let d = &self.judged_dir();
        if run.code == Some(0) {
            // Whatever the case is about, a device that reports success
            // holds a set that chains to the CA it pinned, for its own key
            // and ID (the device side of the metamorphic relations). What
            // it left is judged by what a user would look at first: was
            // anything asked for, is the set there and right; only then
            // the file modes.
            if self.provreqs().is_empty() && !self.gave_certificate {
                return fail("the device exited 0 but sent no provisioning request");
            }
            self.check_set(d, &srv.ca_pem)?;
        }
        if self.undecided.is_none() {
            self.judge_files(run)?;
        }
        self.judge_requests()?;
        let now_files = snapshot(d);
        match e.files {
            _ if self.undecided.is_some() => {}
            None => {}
            Some(FilesSpec::None) if !now_files.is_empty() => {
                return fail(format!(
                    "the device wrote {} although it had to refuse",
                    now_files.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            }
            Some(FilesSpec::Unchanged) if now_files != self.before => {
                return fail(
                    "the device changed its certificate set although the new one does not verify",
                )
            }
            Some(FilesSpec::Written) => self.check_set(d, &srv.ca_pem)?,
            Some(FilesSpec::Replaced) => {
                self.check_set(d, &srv.ca_pem)?;
                if now_files.get("cert.pem") == self.before.get("cert.pem") {
                    return fail("cert.pem was not replaced");
                }
            }
            Some(FilesSpec::None | FilesSpec::Unchanged) => {}
        }
        if e.key_mode_600 == Some(true) && !remote {
            let mode = std::fs::metadata(d.join("key.pem"))
                .map(|m| m.permissions().mode() & 0o777)
                .map_err(|e| StepError::Fail(format!("key.pem: {e}")))?;
            if mode != 0o600 {
                return fail(format!("key.pem has mode {mode:o}, not 600"));
            }
        }
        let reqs = self.provreqs();
        // The secret and the signatures of every request are judged in
        // every case (`judge_requests`); `request_signed` adds that there
        // was a request to judge.
        if e.request_signed == Some(true) && reqs.is_empty() {
            return fail("the device sent no provisioning request");
        }
        if let Some(n) = e.provreq_count_min {
            if (reqs.len() as u32) < n {
                return fail(format!(
                    "{} provisioning requests, expected at least {n}",
                    reqs.len()
                ));
            }
        }
        if let Some(ms) = e.retry_spacing_ms_min {
            for w in reqs.windows(2) {
                let gap = w[1].at.saturating_sub(w[0].at);
                if gap < Duration::from_millis(ms) {
                    return fail(format!(
                        "retried after {} ms; retrySec asked for at least {ms} ms",
                        gap.as_millis()
                    ));
                }
            }
        }
        if e.mtls == Some(true) {
            if reqs.is_empty() {
                return fail("the device sent no provisioning request");
            }
            if reqs.iter().any(|r| !r.client_cert) {
                return fail("a renewal request came without the device's client certificate");
            }
        }
        if let Some(which) = e.nothing_reached {
            let server = match which {
                ServerSpec::Second => &self.second,
                ServerSpec::Primary => &self.primary,
            };
            let which = name_of(&which);
            if let Some(s) = server {
                let got = s.requests();
                if !got.is_empty() {
                    return fail(format!(
                        "the device sent {} request(s) to the {which} server before refusing",
                        got.len()
                    ));
                }
            }
        }
        if e.no_csr == Some(true)
            && reqs.iter().any(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|v| v.get("csrPEM").is_some())
            })
        {
            return fail(
                "the device sent csrPEM to a server that does not list csr in its extensions (a server that does not know the field cannot verify the signature over it)",
            );
        }
        if e.csr_valid_if_sent == Some(true) {
            let Some(r) = reqs.last() else {
                return fail("the device sent no provisioning request");
            };
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            match v["csrPEM"].as_str().filter(|c| !c.is_empty()) {
                None if remote => {
                    return fail("the device is declared with csr (--capabilities) but sent no csrPEM to a server that lists csr")
                }
                None => return Ok(Some("the device sent no csrPEM (optional)".into())),
                Some(csr) => {
                    let key = DevicePublicKey::from_pem(v["publicKeyPEM"].as_str().unwrap_or(""))
                        .map_err(|e| StepError::Fail(format!("publicKeyPEM: {e}")))?;
                    crate::pki::verify_csr(csr, &key).map_err(|e| {
                        StepError::Fail(format!("the csrPEM sent is not valid: {e}"))
                    })?;
                }
            }
        }
        if let Some(why) = &self.undecided {
            if e.exit.is_some() || e.files.is_some() {
                return Err(StepError::Inconclusive(why.clone()));
            }
        }
        Ok(None)
    }

    /// A refusal counts only when the device got as far as the point where
    /// the server misbehaved; otherwise it failed for reasons of its own.
    fn check_reached(&self, point: Option<ReachedSpec>, run: &ShimRun) -> Result<(), StepError> {
        let said: String = last_line(&run.stderr_tail)
            .trim_start_matches(": ")
            .replace(&self.secret, "«secret»")
            .chars()
            .take(300)
            .collect();
        let said = if said.is_empty() {
            "(nothing on stderr)".to_string()
        } else {
            said
        };
        let earlier = |what: &str| {
            fail(format!(
                "failed before the server misbehaved ({what}): {said}"
            ))
        };
        let Some(primary) = &self.primary else {
            return fail("no server");
        };
        let got = primary.requests();
        let fetched_directory = got
            .iter()
            .any(|r| r.path == DIRECTORY_PATH && r.status == 200);
        match point {
            Some(ReachedSpec::Directory) if !fetched_directory => {
                earlier("it never fetched the directory")
            }
            Some(ReachedSpec::Provreq)
                if !got
                    .iter()
                    .any(|r| r.path == PROVREQ_PATH && r.method == "POST" && r.status == 200) =>
            {
                earlier("it never sent a provisioning request that the server answered")
            }
            Some(ReachedSpec::Connected) if primary.tls_counts().connections == 0 => {
                earlier("it never connected to the server")
            }
            Some(ReachedSpec::PlaintextPort) if primary.tls_counts().plaintext_port_hellos == 0 => {
                earlier("it never opened a TLS connection to the advertised (plaintext) port")
            }
            Some(ReachedSpec::TlsRefused) if primary.tls_counts().refused == 0 => {
                earlier("it never opened the TLS connection it had to refuse")
            }
            Some(ReachedSpec::SecondTlsRefused) => {
                let refused = self.second.as_ref().map_or(0, |s| s.tls_counts().refused);
                if !fetched_directory {
                    earlier("it never fetched the directory that points to the second server")
                } else if refused == 0 {
                    earlier(
                        "it never opened the TLS connection to the second server it had to refuse",
                    )
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn check_set(&self, d: &Path, ca_pem: &str) -> Result<(), StepError> {
        let read = |n: &str| {
            std::fs::read_to_string(d.join(n)).map_err(|e| {
                StepError::Fail(if e.kind() == std::io::ErrorKind::NotFound {
                    format!("the device reported success but left no {n} in its directory")
                } else {
                    format!("{n}: {e}")
                })
            })
        };
        let remote = self.target.remote().is_some();
        let read = |n: &str| {
            read(n).map_err(|e| match e {
                StepError::Fail(m) if remote => StepError::Fail(m.replace(
                    "the device reported success but left no",
                    "by --state-cmd, the device holds no",
                )),
                other => other,
            })
        };
        let (ca, cert, key) = (read("ca.pem")?, read("cert.pem")?, read("key.pem")?);
        let want_ca = cert_der_from_pem(ca_pem).map_err(|e| StepError::Fail(e.to_string()))?;
        match certs_der_from_pem(&ca).as_deref() {
            Ok([one]) if one[..] == want_ca[..] => {}
            Ok([_]) | Err(_) => return fail("ca.pem is not the CA the device pinned"),
            Ok(more) => {
                return fail(format!(
                    "ca.pem holds {} certificates: the device trusts more than the CA it pinned (a CA smuggled into an answer's caCert)",
                    more.len()
                ))
            }
        }
        // The first certificate is the one a TLS stack presents; what
        // follows it (a chain, or more the server sent) the profile does
        // not rule on.
        let der = cert_der_from_pem(&cert)
            .map_err(|e| StepError::Fail(format!("cert.pem is not a certificate: {e}")))?;
        verify_chain(&der, &want_ca, OffsetDateTime::now_utc(), Usage::Client)
            .map_err(|e| StepError::Fail(format!("cert.pem: {e}")))?;
        let info = CertInfo::from_der(&der).map_err(|e| StepError::Fail(e.to_string()))?;
        if info.cn != [self.device_id.clone()] {
            return fail(format!("cert.pem is for {:?}", info.cn));
        }
        // A device on the network shows its public key only.
        let spki = match DevicePublicKey::from_pem(&key) {
            Ok(k) => k.spki_der().to_vec(),
            Err(_) => rcgen::KeyPair::from_pem(&key)
                .map(|kp| rcgen::PublicKeyData::subject_public_key_info(&kp))
                .map_err(|e| StepError::Fail(format!("key.pem is not a private key: {e}")))?,
        };
        if spki != info.spki_der {
            return fail("key.pem does not hold the key cert.pem was issued for");
        }
        Ok(())
    }

    pub(super) fn observe(&self, st: &Step) -> Result<Option<String>, StepError> {
        match st.what.as_ref().map(name_of).as_deref() {
            Some("request-form") => {
                let Some(r) = self.provreqs().into_iter().last() else {
                    return fail("the device sent no provisioning request");
                };
                let variant = match sign::detect_variant(&r.body, &self.secret) {
                    Ok(KeyVariant::Raw) => "signs with the raw secret",
                    Ok(KeyVariant::Sha256OfSecret) => "signs with SHA-256(secret)",
                    Err(_) => "signature verifies with neither key variant",
                };
                let canonical = crate::core::messages::verify_reserialized_request(
                    &r.body,
                    self.secret.as_bytes(),
                )
                .is_ok()
                    && crate::core::json::top_level_members(&r.body)
                        .map(|m| m.iter().map(|m| m.key.clone()).collect::<Vec<_>>())
                        .is_ok_and(|k| k == ["deviceID", "ip", "mac", "publicKeyPEM", "signature"]);
                Ok(Some(format!(
                    "{variant}; {}",
                    if canonical {
                        "sends Go's canonical form (the Go reference accepts it)"
                    } else {
                        "does not send Go's canonical form (a re-serialising server such as the Go reference would reject it)"
                    }
                )))
            }
            o => fail(format!("unknown observation {o:?}")),
        }
    }

    /// Whatever the case is about: after a refusal `{dir}` is exactly as it
    /// was (no new, changed or removed file, hidden and temporary ones
    /// included); after a success it holds exactly the certificate set,
    /// with the key readable by its owner only (`client.files`).
    fn judge_files(&self, run: &ShimRun) -> Result<(), StepError> {
        let now = snapshot_all(&self.judged_dir());
        if run.code != Some(0) {
            let changed: Vec<&str> = now
                .keys()
                .chain(self.before_all.keys())
                .filter(|k| now.get(*k) != self.before_all.get(*k))
                .map(String::as_str)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if !changed.is_empty() {
                return fail(format!(
                    "the device did not succeed but changed its directory: {} (client.files)",
                    changed.join(", ")
                ));
            }
            return Ok(());
        }
        let extra: Vec<&str> = now
            .keys()
            .filter(|k| !SET.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        if !extra.is_empty() {
            return fail(format!(
                "after success the directory holds more than the certificate set: {} (client.files)",
                extra.join(", ")
            ));
        }
        if let Some((_, mode)) = now
            .get("key.pem")
            .filter(|_| self.target.remote().is_none())
        {
            // (A remote device's modes are not visible: the suite wrote
            // its picture itself.)
            if mode & 0o077 != 0 {
                return fail(format!(
                    "key.pem has mode {mode:o}: readable by others (client.files)"
                ));
            }
        }
        Ok(())
    }

    /// Whatever the case is about, every request the device made is one
    /// the rules allowed at that moment: no client certificate it was never
    /// given, the secret never sent, every first provisioning signed with
    /// the secret, and no request after the answer that ended the exchange
    /// (`Approved` or `Rejected`).
    fn judge_requests(&self) -> Result<(), StepError> {
        let all = self.all_requests();
        for (name, srv) in [("primary", &self.primary), ("second", &self.second)] {
            let Some(srv) = srv else { continue };
            let c = srv.tls_counts();
            if c.plaintext_bytes > 0 {
                return fail(format!(
                    "the device sent {} bytes in plaintext to the {name} server's http:// port: every exchange is HTTPS (transport.https)",
                    c.plaintext_bytes
                ));
            }
            if c.legacy_hellos > 0 {
                return fail(format!(
                    "the device offered {} in {} ClientHello(s) to the {name} server: only TLS 1.2 and 1.3 are allowed (transport.https)",
                    crate::suite::wire::version_name(c.lowest_offered),
                    c.legacy_hellos
                ));
            }
        }
        if !self.gave_certificate {
            if let Some((server, r)) = all.iter().find(|(_, r)| r.client_cert) {
                return fail(format!(
                    "the device presented a client certificate to the {server} server ({}) although it was never given one",
                    r.path
                ));
            }
        }
        if !self.secret.is_empty() {
            if let Some((server, r)) = all
                .iter()
                .find(|(_, r)| String::from_utf8_lossy(&r.body).contains(&self.secret))
            {
                return fail(format!(
                    "the secret itself was sent to the {server} server in a request to {} (client.no-secret)",
                    r.path
                ));
            }
            for (server, r) in all
                .iter()
                .filter(|(_, r)| r.path == PROVREQ_PATH && r.method == "POST" && !r.client_cert)
            {
                if let Err(err) = sign::verify_raw(&r.body, self.secret.as_bytes()) {
                    let hint = match sign::detect_variant(&r.body, &self.secret) {
                        Ok(KeyVariant::Sha256OfSecret) => {
                            " (it verifies with SHA-256(secret) as key)"
                        }
                        _ => "",
                    };
                    return fail(format!(
                        "a provisioning request to the {server} server does not verify with the secret: {err}{hint} (client.signs)"
                    ));
                }
            }
        }
        // Declared capabilities against behaviour (a device on the network
        // is run by what it declares, not by exit 89).
        if self.target.remote().is_some() && !self.caps.contains("csr") {
            if let Some((server, _)) = all.iter().find(|(_, r)| {
                r.path == PROVREQ_PATH
                    && serde_json::from_slice::<serde_json::Value>(&r.body)
                        .is_ok_and(|v| v.get("csrPEM").is_some())
            }) {
                return fail(format!(
                    "the device is declared without csr (--capabilities) but sent csrPEM to the {server} server"
                ));
            }
        }
        if let Some(max) = self.max_provreqs {
            for (name, srv) in [("primary", &self.primary), ("second", &self.second)] {
                let Some(srv) = srv else { continue };
                let n = srv
                    .requests()
                    .iter()
                    .filter(|r| r.path == PROVREQ_PATH && r.method == "POST")
                    .count();
                if n > max {
                    return fail(format!(
                        "the device sent {n} provisioning requests to the {name} server; its answers allowed {max} (after Approved or Rejected it must stop)"
                    ));
                }
            }
        }
        Ok(())
    }
}

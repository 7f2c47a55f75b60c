//! Provisioning steps and the checks of what comes back.

use super::*;
use crate::check::scenario::{CaCertSpec, RetrySecSpec, SignatureSpec, StatusSpec};

impl Case<'_> {
    pub(super) async fn do_provision(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let (body, kp) = if st.replay == Some(true) {
            match self.last_body.get(&device) {
                Some(b) => (b.clone(), None),
                None => return fail("nothing to replay"),
            }
        } else {
            let (mut body, kp) = self.build_request(st, &device)?;
            if let Some(n) = st.body_size {
                pad_object(&mut body, n)?;
            }
            (body, kp)
        };
        self.last_body.insert(device.clone(), body.clone());
        let url = self.provreq_url().await;
        let who = st
            .as_
            .as_ref()
            .map_or_else(|| "nobody".to_string(), ToString::to_string);
        let r = match self
            .call(Method::POST, &url, Some(body.clone()), &who)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                if st.expect.tls_refusal_ok == Some(true) {
                    return Ok(None);
                }
                return fail(format!("no answer: {e}"));
            }
        };
        self.check_http(st, &r)?;
        let e = &st.expect;
        let v = resp_json(&r);
        let status = v
            .as_ref()
            .and_then(|v| v["status"].as_str())
            .unwrap_or("")
            .to_string();
        match e.status {
            None => {}
            Some(StatusSpec::NotApproved) if r.status == 200 && status == "Approved" => {
                return fail("expected anything but Approved, got Approved");
            }
            Some(StatusSpec::NotApproved) => {}
            Some(want) => {
                let want = want.as_str();
                if r.status != 200 {
                    return fail(format!("expected {want}, got HTTP {}", r.status));
                }
                if status != want {
                    return fail(format!(
                        "expected status {want}, got {}",
                        if status.is_empty() { "(none)" } else { &status }
                    ));
                }
            }
        }
        let v = v.unwrap_or(Value::Null);
        let client_cert = v["clientCert"].as_str().unwrap_or("").to_string();
        let spki = kp
            .as_ref()
            .map(rcgen::PublicKeyData::subject_public_key_info)
            .or_else(|| spki_of_body(&body));
        let lenient = st.device.as_deref().unwrap_or("").starts_with("sanity");
        self.judge_answer(&r, &v, &device, spki.as_deref(), &who, lenient)?;
        if let Some(want_cert) = e.certificate {
            if want_cert && client_cert.is_empty() {
                return fail(format!(
                    "expected a certificate, the answer ({status}) carries none"
                ));
            } else if !want_cert && !client_cert.is_empty() {
                return fail(format!("a {status} answer carries a certificate"));
            }
        }
        if let Some(mode) = e.signature {
            let sig = v["signature"].as_str().unwrap_or("");
            match mode {
                SignatureSpec::Secret => {
                    let secret = match &st.secret_literal {
                        Some(l) => l.clone(),
                        None => self.secret(st.secret.as_deref().unwrap_or("s")),
                    };
                    if let Err(err) = sign::verify_raw(&r.body, secret.as_bytes()) {
                        let variant = sign::detect_variant(&r.body, &secret)
                            .map(|v| format!(" (it verifies with the {v:?} key)"))
                            .unwrap_or_default();
                        return fail(format!(
                            "response signature does not verify with the secret: {err}{variant}"
                        ));
                    }
                }
                SignatureSpec::EmptyKey => {
                    if let Err(err) = sign::verify_raw(&r.body, b"") {
                        return fail(format!(
                            "response signature does not verify with the empty key: {err}"
                        ));
                    }
                }
                SignatureSpec::None => {
                    if !sig.is_empty() {
                        return fail("expected an empty signature");
                    }
                }
            }
        }
        if e.retry_sec == Some(RetrySecSpec::Positive) && v["retrySec"].as_u64().unwrap_or(0) == 0 {
            return fail("retrySec missing or 0");
        }
        if e.ca_cert == Some(CaCertSpec::Present) {
            let (ca, _) = decode_ca(v.get("caCert"))
                .unwrap_or((None, crate::core::directory::CaEncoding::Absent));
            match ca {
                None => return fail("caCert missing or empty in the response"),
                Some(ca) => {
                    let got = cert_der_from_pem(&ca).ok();
                    let want = cert_der_from_pem(&self.ctx.target.ca_pem).ok();
                    if got != want {
                        return fail("caCert in the response is not the target's CA");
                    }
                }
            }
        }
        if r.status == 200 && status == "Approved" && !client_cert.is_empty() {
            self.last_cert
                .insert(device.clone(), vec![client_cert.clone()]);
            let sym = st.device.clone().unwrap_or_else(|| "d".into());
            let identity = kp.as_ref().map(|k| ClientIdentity {
                cert_pem: client_cert.clone(),
                key_pem: k.serialize_pem(),
            });
            self.saved.insert(sym, Saved { identity });
        }
        Ok(None)
    }

    /// What every provisioning answer must satisfy, whatever the case is
    /// about (MUST rules only: a SHOULD is judged by its own case). A
    /// violation of a rule that is not the case's own is recorded as
    /// incidental and the case goes on to judge its own rule.
    pub(super) fn judge_answer(
        &self,
        r: &HttpsResponse,
        v: &Value,
        device: &str,
        spki: Option<&[u8]>,
        who: &str,
        lenient: bool,
    ) -> Result<(), StepError> {
        match self.every_answer(r, v, device, spki, who, lenient) {
            Ok(()) => Ok(()),
            Err(Judged::Own(e)) => Err(e),
            Err(Judged::Broke(violation)) => self.screen(violation, "the answer"),
        }
    }

    /// [`Self::judge_answer`]'s checks, each failure with the rule it breaks.
    fn every_answer(
        &self,
        r: &HttpsResponse,
        v: &Value,
        device: &str,
        spki: Option<&[u8]>,
        who: &str,
        lenient: bool,
    ) -> Result<(), Judged> {
        let broke = |rule: &'static str, what: String| {
            Err(Judged::Broke(crate::check::profile::Violation {
                rule,
                what,
            }))
        };
        if r.status != 200 {
            return Ok(());
        }
        let status = v["status"].as_str().unwrap_or("");
        let cert = v["clientCert"].as_str().unwrap_or("");
        match status {
            "Approved" => {}
            "Waiting" | "Rejected" if !cert.is_empty() => {
                let rule = if status == "Waiting" {
                    "provreq.waiting"
                } else {
                    "provreq.rejected"
                };
                return broke(rule, format!("a {status} answer carries a certificate"));
            }
            "Waiting" | "Rejected" => return Ok(()),
            other => {
                return broke(
                    "transport.status-codes",
                    format!(
                        "HTTP 200 whose status is {other:?}, not Approved, Waiting or Rejected"
                    ),
                )
            }
        }
        if cert.is_empty() {
            return broke(
                "provreq.approved",
                "an Approved answer without clientCert".into(),
            );
        }
        let ca_der = cert_der_from_pem(&self.ctx.target.ca_pem)
            .map_err(|e| Judged::Own(StepError::Fail(format!("target CA: {e}"))))?;
        let der = match cert_der_from_pem(cert) {
            Ok(d) => d,
            Err(e) => return broke("cert.profile", format!("clientCert is not PEM: {e}")),
        };
        if lenient {
            // The sanity control stops at what makes provisioning work at
            // all; every other case judges the full profile.
            return verify_chain(&der, &ca_der, OffsetDateTime::now_utc(), Usage::Client)
                .map_err(|e| Judged::Own(StepError::Fail(format!("certificate: {e}"))));
        }
        if let Err(violation) = self.check_issued(&der, device, spki) {
            return Err(Judged::Broke(crate::check::profile::Violation {
                what: format!("clientCert: {}", violation.what),
                ..violation
            }));
        }
        // caCert, when sent, is the directory's CA, byte for byte.
        let (ca, _) = decode_ca(v.get("caCert"))
            .unwrap_or((None, crate::core::directory::CaEncoding::Absent));
        if let Some(ca) = ca.filter(|c| !c.is_empty()) {
            if cert_der_from_pem(&ca).ok().as_deref() != Some(&ca_der[..]) {
                return broke(
                    "provreq.approved",
                    "caCert in the answer is not the directory's CA".into(),
                );
            }
        }
        // An answer to a request signed with a secret is signed with it.
        if who == "nobody" {
            if let Some(secret) = self.posted.get(device) {
                if let Err(err) = sign::verify_raw(&r.body, secret.as_bytes()) {
                    return broke(
                        "hmac.response-signed",
                        format!(
                            "the Approved answer's signature does not verify with the device's secret: {err}"
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// A violation found on the way: the case's own rule fails the step;
    /// any other rule is recorded as incidental and the case goes on
    /// (the verdict is the worse of both, as in TTCN-3).
    pub(super) fn screen(
        &self,
        violation: crate::check::profile::Violation,
        context: &str,
    ) -> Result<(), StepError> {
        if self.rules.iter().any(|r| r == violation.rule) {
            return fail(format!("{context}: {violation}"));
        }
        let mut seen = self.incidental.lock().unwrap_or_else(|p| p.into_inner());
        // One entry per rule and message: a defect met at every step is
        // one incidental failure, not one per exchange.
        if !seen
            .iter()
            .any(|i| i.rule == violation.rule && i.detail == violation.what)
        {
            seen.push(crate::check::report::Incidental {
                rule: violation.rule.to_string(),
                step: self.step_no,
                detail: violation.what,
            });
        }
        Ok(())
    }

    /// [`Self::check_issued`] with its violation screened: `None` when the
    /// certificate broke a rule that is not the case's own.
    pub(super) fn issued_ok(
        &self,
        der: &[u8],
        device: &str,
        spki: Option<&[u8]>,
        context: &str,
    ) -> Result<Option<crate::check::profile::Checked>, StepError> {
        match self.check_issued(der, device, spki) {
            Ok(c) => Ok(Some(c)),
            Err(v) => self.screen(v, context).map(|()| None),
        }
    }

    /// Checks a certificate the target handed out for `device` against the
    /// whole profile (with the request's key when known) and records its
    /// serial in the run's ledger.
    pub(super) fn check_issued(
        &self,
        der: &[u8],
        device: &str,
        spki: Option<&[u8]>,
    ) -> Result<crate::check::profile::Checked, crate::check::profile::Violation> {
        let ca_der = cert_der_from_pem(&self.ctx.target.ca_pem).map_err(|e| {
            crate::check::profile::Violation {
                rule: "cert.profile",
                what: format!("target CA: {e}"),
            }
        })?;
        let checked = check_device_certificate(
            der,
            &Expected {
                ca_der: &ca_der,
                device_id: device,
                spki,
                now: OffsetDateTime::now_utc(),
            },
        )?;
        self.ctx
            .serials
            .record(&checked.serial, der, &self.case_id)?;
        Ok(checked)
    }

    pub(super) async fn do_guess(&mut self, st: &Step) -> StepResult {
        let n = st.count.unwrap_or(5);
        let device = self.device_of(st);
        for i in 0..n.min(1000) {
            let wrong = Step {
                secret: Some(format!("wrong{i}")),
                device: st.device.clone(),
                ..Step::default()
            };
            let (body, _) = self.build_request(&wrong, &device)?;
            let url = self.provreq_url().await;
            if let Err(e) = self.call(Method::POST, &url, Some(body), "nobody").await {
                return fail(format!("no answer to wrong guess {}: {e}", i + 1));
            }
        }
        Ok(None)
    }

    pub(super) async fn do_sanity(&mut self) -> StepResult {
        let post = Step {
            action: Some(Action::PostOob),
            device: Some("sanity".into()),
            secret: Some("sanity".into()),
            expect: crate::check::scenario::Expect {
                http: Some(vec![200]),
                ..Default::default()
            },
            ..Step::default()
        };
        self.do_post_oob(&post).await?;
        let prov = Step {
            action: Some(Action::Provision),
            device: Some("sanity".into()),
            secret: Some("sanity".into()),
            expect: crate::check::scenario::Expect {
                status: Some(StatusSpec::Approved),
                certificate: Some(true),
                ..Default::default()
            },
            ..Step::default()
        };
        self.do_provision(&prov).await?;
        // A later sanity step in the same case uses a fresh device.
        self.devices.remove("sanity");
        Ok(None)
    }

    /// Posts a secret for device `sym` (named after it) as admin, then sends
    /// a provisioning request built from `req` and signed with that secret.
    pub(super) async fn with_fresh_secret(
        &mut self,
        sym: &str,
        mut req: Step,
    ) -> Result<HttpsResponse, StepError> {
        self.do_post_oob(&Step {
            device: Some(sym.into()),
            secret: Some(sym.into()),
            ..Step::default()
        })
        .await?;
        let dev = self.device(sym);
        req.secret = Some(sym.into());
        let (body, _) = self.build_request(&req, &dev)?;
        let url = self.provreq_url().await;
        self.call(Method::POST, &url, Some(body), "nobody")
            .await
            .map_err(StepError::Fail)
    }
}

/// How a check of every answer failed: a failure of the step itself, or a
/// violation of a named rule (the case's own, or incidental).
pub(super) enum Judged {
    Own(StepError),
    Broke(crate::check::profile::Violation),
}

/// The SubjectPublicKeyInfo DER of a request body's `publicKeyPEM`.
pub(super) fn spki_of_body(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    crate::pki::DevicePublicKey::from_pem(v["publicKeyPEM"].as_str()?)
        .ok()
        .map(|k| k.spki_der().to_vec())
}

/// Pads a JSON object with spaces before its closing brace to exactly `n`
/// bytes (the same request, at a chosen size).
fn pad_object(body: &mut Vec<u8>, n: usize) -> Result<(), StepError> {
    if body.len() > n || body.last() != Some(&b'}') {
        return fail(format!(
            "cannot pad a {}-byte request to {n} bytes",
            body.len()
        ));
    }
    let close = body.len() - 1;
    body.splice(close..close, std::iter::repeat_n(b' ', n - body.len()));
    Ok(())
}

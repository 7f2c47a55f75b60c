//! Reading a device's status.

use super::*;

impl Case<'_> {
    pub(super) async fn do_status(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let url = self.status_url(&device).await;
        let who = st
            .as_
            .as_ref()
            .map_or_else(|| "admin".to_string(), ToString::to_string);
        let r = match self.call(Method::GET, &url, None, &who).await {
            Ok(r) => r,
            Err(e) if st.expect.tls_refusal_ok == Some(true) => {
                let _ = e;
                return Ok(None);
            }
            Err(e) => return fail(format!("no answer: {e}")),
        };
        self.check_http(st, &r)?;
        let v = resp_json(&r).unwrap_or(Value::Null);
        if let Some(want) = st.expect.status {
            let want = want.as_str();
            let got = v["status"].as_str().unwrap_or("(none)");
            if got != want {
                return fail(format!("expected status {want}, got {got}"));
            }
        }
        self.judge_status(&r, &v, &device)?;
        if st.expect.latest_cert == Some(true) && !self.last_cert.contains_key(&device) {
            return fail("no certificate was issued earlier");
        }
        if !self.in_group {
            // The one shown is now the latest (when a group left several
            // that could be).
            if let Some(shown) = shown_cert(&v) {
                if let Some(c) = self.last_cert.get_mut(&device) {
                    c.retain(|p| cert_der_from_pem(p).ok().as_deref() == Some(&shown[..]));
                }
            }
        }
        Ok(None)
    }

    /// What every status answer must satisfy: a certificate it shows is one
    /// of the device's, fits the profile, and is the latest one this case
    /// saw issued (`status.latest`).
    fn judge_status(&self, r: &HttpsResponse, v: &Value, device: &str) -> Result<(), StepError> {
        if r.status != 200 {
            return Ok(());
        }
        let (got, _) = decode_ca(v.get("clientCert"))
            .unwrap_or((None, crate::core::directory::CaEncoding::Absent));
        let status = v["status"].as_str().unwrap_or("(none)");
        if self.last_cert.contains_key(device) && status != "Approved" {
            return fail(format!(
                "status says {status} after a certificate was issued to the device (status.latest)"
            ));
        }
        let Some(got) = got.filter(|g| !g.is_empty()) else {
            if self.last_cert.contains_key(device) {
                return fail("status shows no certificate after one was issued (status.latest)");
            }
            return Ok(());
        };
        let der = cert_der_from_pem(&got)
            .map_err(|e| StepError::Fail(format!("status clientCert: {e}")))?;
        self.issued_ok(&der, device, None, "status clientCert")?;
        // Inside a group the latest depends on the order, which the group
        // judges once every answer is in.
        if let Some(latest) = self.last_cert.get(device).filter(|_| !self.in_group) {
            if !latest
                .iter()
                .any(|p| cert_der_from_pem(p).ok().as_deref() == Some(&der[..]))
            {
                return fail(
                    "status shows a certificate other than the latest one issued to the device (status.latest)",
                );
            }
        }
        Ok(())
    }
}

/// The certificate a status answer shows (DER), if any.
pub(super) fn shown_cert(v: &Value) -> Option<Vec<u8>> {
    let (got, _) = decode_ca(v.get("clientCert")).ok()?;
    cert_der_from_pem(&got.filter(|g| !g.is_empty())?).ok()
}

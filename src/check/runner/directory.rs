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

    pub(super) async fn do_discover(&mut self) -> StepResult {
        let found = tokio::task::spawn_blocking(|| discover::discover(Duration::from_secs(10)))
            .await
            .map_err(|e| StepError::Fail(e.to_string()))?
            .map_err(StepError::Fail)?;
        self.evidence.push(Exchange::note(
            self.step_no,
            format!("DNS-SD: {} → {}", found.fullname, found.url),
        ));
        let want =
            net::parse_url(&self.ctx.target.url).map_err(|e| StepError::Fail(e.to_string()))?;
        let got = net::parse_url(&found.url).map_err(|e| StepError::Fail(e.to_string()))?;
        if got.port != want.port || got.path != want.path {
            return fail(format!(
                "advertised {} but the target is {}",
                found.url, self.ctx.target.url
            ));
        }
        let r = self
            .call_with(Method::GET, &found.url, None, "nobody", true)
            .await
            .map_err(StepError::Fail)?;
        parse_directory(&r.body, &found.url).map_err(|e| {
            StepError::Fail(format!("advertised URL does not serve a directory: {e}"))
        })?;
        Ok(None)
    }
}

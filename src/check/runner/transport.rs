//! Endpoints from the directory, credentials, and HTTP calls recorded as evidence.

use super::*;
use crate::check::scenario::Credential;

impl Case<'_> {
    pub(super) fn origin(&self) -> String {
        split_https_url(&self.ctx.target.url)
            .map(|(o, _)| o.to_string())
            .unwrap_or_default()
    }

    pub(super) async fn directory(&mut self) -> Option<Directory> {
        if self.directory.is_none() {
            let url = self.ctx.target.url.clone();
            if let Ok(r) = self.call(Method::GET, &url, None, "nobody").await {
                if r.status == 200 {
                    self.directory = parse_directory(&r.body, &url).ok();
                }
            }
        }
        self.directory.clone()
    }

    pub(super) async fn provreq_url(&mut self) -> String {
        let o = self.origin();
        self.directory()
            .await
            .map(|d| d.post_provision_request)
            .unwrap_or_else(|| format!("{o}{PROVREQ_PATH}"))
    }

    pub(super) async fn oob_url(&mut self) -> String {
        let o = self.origin();
        self.directory()
            .await
            .and_then(|d| d.post_oob_secret)
            .unwrap_or_else(|| format!("{o}{OOB_PATH}"))
    }

    pub(super) async fn status_url(&mut self, device: &str) -> String {
        let o = self.origin();
        self.directory()
            .await
            .and_then(|d| d.status)
            .unwrap_or_else(|| format!("{o}{STATUS_TEMPLATE}"))
            .replace("{deviceID}", device)
    }

    pub(super) fn identity(&mut self, who: &str) -> Result<Option<ClientIdentity>, StepError> {
        let now = OffsetDateTime::now_utc();
        let ctx = self.ctx;
        let ca_key = || {
            let key = ctx.target.ca_key_pem.as_deref().ok_or_else(|| {
                StepError::Skip("needs the target's CA key (capability ca-key)".into())
            })?;
            CertAuthority::from_pem(&ctx.target.ca_pem, key)
                .map_err(|e| StepError::Fail(format!("CA key: {e}")))
        };
        let cred = |c: crate::pki::Credential| ClientIdentity {
            cert_pem: c.cert.pem,
            key_pem: c.key_pem.to_string(),
        };
        let setup = |e: crate::pki::PkiError| StepError::Fail(format!("setup: {e}"));
        let credential: Credential = who.parse().map_err(StepError::Fail)?;
        Ok(match credential {
            Credential::Nobody => None,
            Credential::Admin => Some(ctx.target.admin.clone()),
            Credential::Plugin => Some(
                ctx.target
                    .plugin
                    .clone()
                    .ok_or_else(|| StepError::Skip("no plugin credential known".into()))?,
            ),
            Credential::ForeignAdmin => Some(cred(
                ctx.foreign_ca
                    .issue_client("admin", "admin", time::Duration::days(1), now)
                    .map_err(setup)?,
            )),
            Credential::OtherOu => Some(cred(
                ca_key()?
                    .issue_client("user", "client", time::Duration::days(1), now)
                    .map_err(setup)?,
            )),
            Credential::Device(arg) => {
                let saved = self.saved.get(&arg).and_then(|s| s.identity.clone());
                Some(saved.ok_or_else(|| {
                    StepError::Fail(format!(
                        "no certificate was obtained for device {arg} earlier"
                    ))
                })?)
            }
            Credential::ExpiredDevice(arg) => {
                let id = self.device(&arg);
                Some(cred(
                    ca_key()?
                        .issue_client(
                            &id,
                            "iotdevice",
                            time::Duration::hours(1),
                            now - time::Duration::days(2),
                        )
                        .map_err(setup)?,
                ))
            }
            // Near misses in time: valid from 10 minutes ahead, or expired
            // 2 seconds ago.
            Credential::FutureAdmin => Some(cred(
                ca_key()?
                    .issue_client(
                        "admin",
                        "admin",
                        time::Duration::days(1),
                        now + time::Duration::minutes(15),
                    )
                    .map_err(setup)?,
            )),
            Credential::FutureDevice(ref arg) | Credential::JustExpiredDevice(ref arg) => {
                let id = self.device(arg);
                let (validity, at) = if matches!(credential, Credential::FutureDevice(_)) {
                    (time::Duration::days(1), now + time::Duration::minutes(15))
                } else {
                    (
                        time::Duration::hours(1),
                        now - time::Duration::hours(1) - time::Duration::seconds(2),
                    )
                };
                Some(cred(
                    ca_key()?
                        .issue_client(&id, "iotdevice", validity, at)
                        .map_err(setup)?,
                ))
            }
            // Verified, not recognised: an impostor CA with the target CA's
            // subject name and key identifier, and a key of its own.
            Credential::ImpostorAdmin | Credential::ImpostorDevice(_) => {
                let key = rcgen::KeyPair::generate()
                    .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
                let impostor = CertAuthority::from_pem(&ctx.target.ca_pem, &key.serialize_pem())
                    .map_err(setup)?;
                let (cn, ou) = match &credential {
                    Credential::ImpostorDevice(arg) => (self.device(arg), "iotdevice"),
                    _ => ("admin".to_string(), "admin"),
                };
                Some(cred(
                    impostor
                        .issue_client(&cn, ou, time::Duration::days(1), now)
                        .map_err(setup)?,
                ))
            }
            Credential::ForeignDevice(arg) => {
                let id = self.device(&arg);
                Some(cred(
                    ctx.foreign_ca
                        .issue_client(&id, "iotdevice", time::Duration::days(1), now)
                        .map_err(setup)?,
                ))
            }
        })
    }

    pub(super) fn config(&mut self, who: &str, leap: bool) -> Result<Arc<ClientConfig>, StepError> {
        let key = format!("{who}|{leap}");
        if let Some(c) = self.configs.get(&key) {
            return Ok(c.clone());
        }
        let id = self.identity(who)?;
        let trust = if leap {
            ServerTrust::LeapOfFaith
        } else {
            ServerTrust::PinnedAnyName(self.ctx.target.ca_pem.clone())
        };
        let c = Arc::new(
            client_config(&trust, id.as_ref())
                .map_err(|e| StepError::Fail(format!("setup: {e}")))?,
        );
        // Device identities change as certificates are renewed: no caching.
        if !who.starts_with("device:") {
            self.configs.insert(key, c.clone());
        }
        Ok(c)
    }

    pub(super) async fn call_with(
        &mut self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        who: &str,
        leap: bool,
    ) -> Result<HttpsResponse, String> {
        let cfg = match self.config(who, leap) {
            Ok(c) => c,
            Err(e) => return Err(e.into_message()),
        };
        let started = Instant::now();
        let req_text = body
            .as_ref()
            .map(|b| truncate(&String::from_utf8_lossy(b)))
            .unwrap_or_default();
        let res = net::request(url, method.clone(), body, cfg, self.ctx.request_timeout).await;
        let mut ex = Exchange {
            step: self.step_no,
            method: method.to_string(),
            url: url.to_string(),
            credential: who.to_string(),
            request_body: req_text,
            status: None,
            response_headers: Vec::new(),
            response_body: String::new(),
            error: None,
            ms: 0,
        };
        self.last_response = None;
        let out = match res {
            Ok(r) => {
                self.last_response = Some((r.status, r.body.to_vec()));
                ex.status = Some(r.status);
                ex.response_headers = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                    .collect();
                ex.response_body = truncate(&String::from_utf8_lossy(&r.body));
                Ok(r)
            }
            Err(e) => {
                ex.error = Some(e.to_string());
                Err(e.to_string())
            }
        };
        ex.ms = started.elapsed().as_millis() as u64;
        self.evidence.push(ex);
        out
    }

    pub(super) async fn call(
        &mut self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        who: &str,
    ) -> Result<HttpsResponse, String> {
        self.call_with(method, url, body, who, false).await
    }
}

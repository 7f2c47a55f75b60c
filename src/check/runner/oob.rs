//! Posting OOB secrets.

use super::*;
use crate::check::scenario::ValidUntilSpec;

impl Case<'_> {
    pub(super) async fn do_post_oob(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let secret = match (&st.secret_literal, &st.secret) {
            (Some(l), _) => l.clone(),
            (None, Some(s)) => self.secret(s),
            (None, None) => self.secret("s"),
        };
        let vu = match st.valid_until.unwrap_or(ValidUntilSpec::Default) {
            ValidUntilSpec::Default => Value::String(String::new()),
            ValidUntilSpec::Past => Value::String("2001-01-01T00:00:00Z".into()),
            ValidUntilSpec::Garbage => Value::String("not-a-time".into()),
            ValidUntilSpec::Number => Value::from(1_700_000_000u64),
            ValidUntilSpec::In { secs, offset } => Value::String(rfc3339(
                (super::target_now(self.ctx) + time::Duration::seconds(secs)).to_offset(offset),
            )),
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "deviceID": &device, "oobSecret": &secret, "validUntil": vu
        }))
        .unwrap_or_default();
        let url = self.oob_url().await;
        let who = st
            .as_
            .as_ref()
            .map_or_else(|| "admin".to_string(), ToString::to_string);
        match self.call(Method::POST, &url, Some(body), &who).await {
            Ok(r) => {
                self.check_http(st, &r)?;
                if r.status == 200 {
                    self.posted.insert(device, secret);
                }
                Ok(None)
            }
            Err(e) if st.expect.tls_refusal_ok == Some(true) => {
                let _ = e;
                Ok(None)
            }
            Err(e) => fail(format!("no answer: {e}")),
        }
    }
}

//! Arbitrary requests (limits, methods, paths).

use super::*;
use crate::check::scenario::EndpointSpec;

impl Case<'_> {
    pub(super) async fn do_raw(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let method = Method::from_bytes(st.method.as_deref().unwrap_or("GET").as_bytes())
            .map_err(|_| StepError::Fail("bad method".into()))?;
        let url = match st.endpoint {
            None => format!(
                "{}{}",
                self.origin(),
                st.path
                    .as_deref()
                    .unwrap_or("/")
                    .replace("{device}", &device)
            ),
            Some(EndpointSpec::Directory) => self.ctx.target.url.clone(),
            Some(EndpointSpec::Oob) => self.oob_url().await,
            Some(EndpointSpec::Provreq) => self.provreq_url().await,
            Some(EndpointSpec::Status) => self.status_url(&device).await,
        };
        let body = match (&st.body, st.body_size) {
            (_, Some(n)) => {
                let mut b = br#"{"deviceID":""#.to_vec();
                b.resize(n.saturating_sub(2).max(b.len()), b'a');
                b.extend_from_slice(b"\"}");
                Some(b)
            }
            (Some(t), None) => Some(t.replace("{device}", &device).into_bytes()),
            (None, None) => None,
        };
        let who = st
            .as_
            .as_ref()
            .map_or_else(|| "nobody".to_string(), ToString::to_string);
        match self.call(method, &url, body, &who).await {
            Ok(r) => {
                self.check_http(st, &r)?;
                Ok(None)
            }
            Err(e) => fail(format!("no answer: {e}")),
        }
    }
}

//! Posting OOB secrets.

use super::*;

impl Case<'_> {
    pub(super) async fn do_post_oob(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let secret = match (&st.secret_literal, &st.secret) {
            (Some(l), _) => l.clone(),
            (None, Some(s)) => self.secret(s),
            (None, None) => self.secret("s"),
        };
        let vu = match st.valid_until.as_deref().unwrap_or("default") {
            "default" => Value::String(String::new()),
            "past" => Value::String("2001-01-01T00:00:00Z".into()),
            "garbage" => Value::String("not-a-time".into()),
            "number" => Value::from(1_700_000_000u64),
            other => match parse_in(other) {
                Some((secs, offset)) => Value::String(rfc3339(
                    (OffsetDateTime::now_utc() + time::Duration::seconds(secs)).to_offset(offset),
                )),
                None => return fail(format!("bad valid_until `{other}`")),
            },
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "deviceID": &device, "oobSecret": &secret, "validUntil": vu
        }))
        .unwrap_or_default();
        let url = self.oob_url().await;
        let who = st.as_.clone().unwrap_or_else(|| "admin".into());
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

/// `in:SECS` or `in:SECS@±HH:MM`: an instant SECS from now, written with
/// that UTC offset (the same instant, another spelling).
fn parse_in(v: &str) -> Option<(i64, time::UtcOffset)> {
    let rest = v.strip_prefix("in:")?;
    let (secs, off) = match rest.split_once('@') {
        None => (rest, time::UtcOffset::UTC),
        Some((secs, off)) => {
            let sign: i8 = match off.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = off[1..].split_once(':')?;
            let off = time::UtcOffset::from_hms(
                sign * h.parse::<i8>().ok()?,
                sign * m.parse::<i8>().ok()?,
                0,
            )
            .ok()?;
            (secs, off)
        }
    };
    Some((secs.parse().ok()?, off))
}

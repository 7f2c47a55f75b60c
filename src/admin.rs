//! The administrator's tool: post OOB secrets and read status over mutual
//! TLS with an `admin` or `plugin` certificate (PROTOCOL §4, §7).

use crate::core::directory::parse_directory;
use crate::core::messages::{OobSecretMessage, OOB_PATH, STATUS_TEMPLATE};
use crate::net::{self, HttpsResponse, NetError};
use crate::tls::{client_config, ClientIdentity, ServerTrust};
use http::Method;
use std::sync::Arc;
use std::time::Duration;

/// Connection settings of an admin.
#[derive(Clone)]
pub struct AdminClient {
    /// Directory URL of the server.
    pub url: String,
    /// CA PEM to verify the server with.
    pub ca_pem: String,
    /// Admin or plugin credential.
    pub identity: ClientIdentity,
    /// Per-request time limit.
    pub timeout: Duration,
}

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Bad local input (files, URL).
    #[error("{0}")]
    Usage(String),
    /// Network or TLS failure.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The server answered an error status.
    #[error("server answered HTTP {status}: {body}")]
    Http {
        /// Status.
        status: u16,
        /// Body text (first line).
        body: String,
    },
}

fn origin(url: &str) -> Result<&str, AdminError> {
    crate::core::directory::split_https_url(url)
        .map(|(o, _)| o)
        .ok_or_else(|| AdminError::Usage(format!("not an https URL: {url}")))
}

fn check(resp: HttpsResponse) -> Result<HttpsResponse, AdminError> {
    if resp.status == 200 {
        Ok(resp)
    } else {
        Err(AdminError::Http {
            status: resp.status,
            body: String::from_utf8_lossy(&resp.body)
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect(),
        })
    }
}

impl AdminClient {
    fn cfg(&self) -> Result<Arc<rustls::ClientConfig>, AdminError> {
        client_config(
            &ServerTrust::Pinned(self.ca_pem.clone()),
            Some(&self.identity),
        )
        .map(Arc::new)
        .map_err(|e| AdminError::Usage(e.to_string()))
    }

    /// Endpoint URLs from the directory, or the default paths if it cannot
    /// be read (the URL may point at the server root).
    async fn endpoints(&self) -> Result<(String, String), AdminError> {
        let o = origin(&self.url)?.to_string();
        let defaults = (format!("{o}{OOB_PATH}"), format!("{o}{STATUS_TEMPLATE}"));
        let resp = net::request(&self.url, Method::GET, None, self.cfg()?, self.timeout).await?;
        if resp.status != 200 {
            return Ok(defaults);
        }
        match parse_directory(&resp.body, &self.url) {
            Ok(d) => Ok((
                d.post_oob_secret.unwrap_or(defaults.0),
                d.status.unwrap_or(defaults.1),
            )),
            Err(_) => Ok(defaults),
        }
    }

    /// Posts an OOB secret; `valid_until` is RFC 3339 or empty.
    pub async fn post_oob(
        &self,
        device_id: &str,
        secret: &str,
        valid_until: &str,
    ) -> Result<(), AdminError> {
        let (oob, _) = self.endpoints().await?;
        let body = serde_json::to_vec(&OobSecretMessage {
            device_id: device_id.into(),
            oob_secret: secret.into(),
            valid_until: valid_until.into(),
        })
        .map_err(|e| AdminError::Usage(e.to_string()))?;
        check(net::request(&oob, Method::POST, Some(body), self.cfg()?, self.timeout).await?)?;
        Ok(())
    }

    /// Reads a device's status; returns the JSON body.
    pub async fn status(&self, device_id: &str) -> Result<Vec<u8>, AdminError> {
        let (_, status) = self.endpoints().await?;
        let url = status.replace("{deviceID}", device_id);
        let resp = check(net::request(&url, Method::GET, None, self.cfg()?, self.timeout).await?)?;
        Ok(resp.body.to_vec())
    }
}

/// One row of an enrolment list, checked as the reference server checks an
/// OOB post (PROTOCOL §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentRow {
    /// Line number in the file (1-based), for reports.
    pub line: u64,
    /// The device ID.
    pub device_id: String,
    /// Its OOB secret.
    pub secret: String,
    /// RFC 3339 expiry, or empty for the server's default.
    pub valid_until: String,
}

/// Reads an enrolment list — CSV rows `deviceID,oobSecret[,validUntil]`,
/// an optional header row naming those columns — and checks every row
/// before anything is posted: each must be an OOB post the reference
/// server accepts at `now` (device ID syntax, a secret, a future expiry),
/// and no device may appear twice (the later row would silently replace the
/// earlier secret). `Err` lists every bad row, one line each.
pub fn parse_enrolment(
    text: &str,
    now: time::OffsetDateTime,
) -> Result<Vec<EnrolmentRow>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    let mut seen: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                bad.push(format!("row {}: not CSV: {e}", i + 1));
                continue;
            }
        };
        let line = rec.position().map_or(i as u64 + 1, |p| p.line());
        let field = |n: usize| rec.get(n).unwrap_or("").to_string();
        if i == 0 && field(0).eq_ignore_ascii_case("deviceID") {
            continue; // the header
        }
        if rec.len() < 2 || rec.len() > 3 {
            bad.push(format!(
                "line {line}: {} field(s); want deviceID,oobSecret[,validUntil]",
                rec.len()
            ));
            continue;
        }
        let row = EnrolmentRow {
            line,
            device_id: field(0),
            secret: field(1),
            valid_until: field(2),
        };
        let body = serde_json::to_vec(&OobSecretMessage {
            device_id: row.device_id.clone(),
            oob_secret: row.secret.clone(),
            valid_until: row.valid_until.clone(),
        })
        .unwrap_or_default();
        if let Err(e) = crate::core::validate::parse_oob(&body, now) {
            bad.push(format!("line {line} ({}): {e}", row.device_id));
            continue;
        }
        if let Some(first) = seen.insert(row.device_id.clone(), line) {
            bad.push(format!(
                "line {line} ({}): the device is already on line {first}",
                row.device_id
            ));
            continue;
        }
        rows.push(row);
    }
    if rows.is_empty() && bad.is_empty() {
        bad.push("the list has no rows".into());
    }
    if bad.is_empty() {
        Ok(rows)
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_enrolment_list_is_checked_whole_before_anything() {
        let now = datetime!(2026-12-01 00:00 UTC);
        let ok = "deviceID,oobSecret,validUntil\n# a comment\ndev-1 , s1\ndev-2,\"s,2\",2026-12-09T00:00:00Z\n";
        let rows = parse_enrolment(ok, now).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1].device_id.as_str(), rows[1].secret.as_str()),
            ("dev-2", "s,2")
        );
        let bad = "dev-1,s1\n../x,s\ndev-3,\ndev-4,s,yesterday\ndev-5,s,2020-01-01T00:00:00Z\ndev-1,s9\nonly-one-field\n";
        let errs = parse_enrolment(bad, now).unwrap_err();
        assert_eq!(errs.len(), 6, "{errs:#?}");
        for (line, says) in [
            (2, "../x"),
            (3, "dev-3"),
            (4, "dev-4"),
            (5, "dev-5"),
            (6, "already on line 1"),
            (7, "1 field(s)"),
        ] {
            assert!(
                errs.iter()
                    .any(|e| e.starts_with(&format!("line {line}")) && e.contains(says)),
                "line {line}: {errs:#?}"
            );
        }
        assert!(parse_enrolment("", now).is_err());
    }
}

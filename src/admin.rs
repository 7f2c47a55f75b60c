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

//! A small HTTPS client on hyper + tokio-rustls, used by the device client,
//! the admin tool and the suite. One connection per request, so each request
//! shows its own TLS handshake and peer certificate.

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest response body read.
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// Why a request failed before a response arrived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Not an `https://host:port/path` URL.
    #[error("not an https URL: {0}")]
    BadUrl(String),
    /// TCP connection failed.
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    /// TLS handshake failed (includes an untrusted server certificate).
    #[error("TLS handshake with {0} failed: {reason}", reason = tls_reason(.1))]
    Tls(String, std::io::Error),
    /// HTTP protocol error.
    #[error("HTTP error: {0}")]
    Http(String),
    /// No complete answer in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Response body too large.
    #[error("response body larger than {MAX_RESPONSE} bytes")]
    TooLarge,
}

/// A failed handshake in a user's terms, rustls' own words after them in
/// parentheses: "that port does not speak TLS" rather than
/// "InvalidContentType".
pub fn tls_reason(e: &std::io::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as R, InvalidMessage};
    let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<R>()) else {
        return e.to_string();
    };
    let plain = match r {
        R::InvalidMessage(InvalidMessage::InvalidContentType) => {
            "that port does not speak TLS (plain HTTP, or another protocol)"
        }
        R::InvalidCertificate(C::UnknownIssuer) => {
            "the server's certificate is not issued by the CA given (--ca-cert)"
        }
        R::InvalidCertificate(C::BadSignature) => {
            "the server's certificate does not verify under the CA given (--ca-cert)"
        }
        R::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the server's certificate has expired"
        }
        R::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "the server's certificate is not valid yet"
        }
        R::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::CertificateRequired
            | A::AccessDenied,
        ) => "the server refused the client certificate",
        R::AlertReceived(A::ProtocolVersion) => "no TLS version in common with the server",
        _ => return e.to_string(),
    };
    format!("{plain} ({r})")
}

/// A response with what the connection revealed.
#[derive(Debug, Clone)]
pub struct HttpsResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
    /// Our local address on the connection (a device's `ip`).
    pub local_addr: SocketAddr,
    /// The server's certificate chain.
    pub server_certs: Vec<CertificateDer<'static>>,
}

impl HttpsResponse {
    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }
}

/// Parsed parts of an https URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host without brackets.
    pub host: String,
    /// Port (443 if absent).
    pub port: u16,
    /// Path and query.
    pub path: String,
    /// `host:port` as it goes in the Host header.
    pub authority: String,
}

/// Parses an `https://` URL.
pub fn parse_url(url: &str) -> Result<Target, NetError> {
    let bad = || NetError::BadUrl(url.to_string());
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("https") {
        return Err(bad());
    }
    let auth = uri.authority().ok_or_else(bad)?;
    let host = auth
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Target {
        host,
        port: auth.port_u16().unwrap_or(443),
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        authority: auth.as_str().to_string(),
    })
}

/// Sends one request over a fresh TLS connection.
pub async fn request(
    url: &str,
    method: Method,
    body: Option<Vec<u8>>,
    tls: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<HttpsResponse, NetError> {
    match tokio::time::timeout(timeout, request_inner(url, method, body, tls)).await {
        Ok(r) => r,
        Err(_) => Err(NetError::Timeout(timeout)),
    }
}

async fn request_inner(
    url: &str,
    method: Method,
    body: Option<Vec<u8>>,
    tls: Arc<ClientConfig>,
) -> Result<HttpsResponse, NetError> {
    let t = parse_url(url)?;
    let name: ServerName<'static> = match t.host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(t.host.clone()).map_err(|_| NetError::BadUrl(url.into()))?,
    };
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| NetError::Connect(t.authority.clone(), e))?;
    let _ = tcp.set_nodelay(true);
    let local_addr = tcp
        .local_addr()
        .map_err(|e| NetError::Connect(t.authority.clone(), e))?;
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| NetError::Tls(t.authority.clone(), e))?;
    let server_certs = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| NetError::Http(e.to_string()))?;
    let conn_task = tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(method)
        .uri(t.path.as_str())
        .header(header::HOST, t.authority.as_str())
        .header(
            header::USER_AGENT,
            concat!("idprov/", env!("CARGO_PKG_VERSION")),
        );
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    let req = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| NetError::Http(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| NetError::Http(e.to_string()))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                NetError::TooLarge
            } else {
                NetError::Http(e.to_string())
            }
        })?
        .to_bytes();
    conn_task.abort();
    Ok(HttpsResponse {
        status,
        headers,
        body,
        local_addr,
        server_certs,
    })
}

/// One kept-alive HTTPS connection for many requests (an admin posting
/// secrets in bulk). Reconnects once if the server closed it.
pub struct KeptAlive {
    url_origin: String,
    tls: Arc<ClientConfig>,
    timeout: Duration,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl KeptAlive {
    /// A connection to the server of `url` (connected lazily).
    pub fn new(url: &str, tls: Arc<ClientConfig>, timeout: Duration) -> Result<Self, NetError> {
        let t = parse_url(url)?;
        Ok(KeptAlive {
            url_origin: format!("https://{}", t.authority),
            tls,
            timeout,
            sender: None,
            task: None,
        })
    }

    async fn connect(&mut self) -> Result<(), NetError> {
        let t = parse_url(&self.url_origin)?;
        let name: ServerName<'static> = match t.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(t.host.clone())
                .map_err(|_| NetError::BadUrl(self.url_origin.clone()))?,
        };
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| NetError::Connect(t.authority.clone(), e))?;
        let _ = tcp.set_nodelay(true);
        let stream = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| NetError::Tls(t.authority.clone(), e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| NetError::Http(e.to_string()))?;
        self.task = Some(tokio::spawn(async move {
            let _ = conn.await;
        }));
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends a request on the kept-alive connection; returns status and body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), NetError> {
        for attempt in 0..2 {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.connect().await?;
            }
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            let authority = self.url_origin.trim_start_matches("https://").to_string();
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(header::HOST, authority)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| NetError::Http(e.to_string()))?;
            let fut = async {
                sender
                    .ready()
                    .await
                    .map_err(|e| NetError::Http(e.to_string()))?;
                let resp = sender
                    .send_request(req)
                    .await
                    .map_err(|e| NetError::Http(e.to_string()))?;
                let status = resp.status().as_u16();
                let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| NetError::Http(e.to_string()))?
                    .to_bytes();
                Ok::<_, NetError>((status, body))
            };
            match tokio::time::timeout(self.timeout, fut).await {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(e)) if attempt == 1 => return Err(e),
                Err(_) if attempt == 1 => return Err(NetError::Timeout(self.timeout)),
                _ => {
                    self.sender = None;
                }
            }
        }
        Err(NetError::Http("connection lost".into()))
    }
}

impl Drop for KeptAlive {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://[::1]:43776/idprov/directory").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 43776, "/idprov/directory")
        );
        assert_eq!(t.authority, "[::1]:43776");
        assert!(parse_url("http://x/").is_err());
        assert!(parse_url("nonsense").is_err());
    }
}

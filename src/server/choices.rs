//! The legal choices the profile and the RFCs under it leave to a server,
//! as switches of the reference server whose default is what it does
//! anyway. Each other value is an *honest* variant: a server that chooses
//! differently and is still right. The suite must pass every one of them
//! (docs/SUITE.md "Honest variants"); a case that fails one is a wrong case.

use crate::core::json::to_go_json;
use serde::Serialize;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use crate::tls::TlsVersions;

/// One choice per field; `Choices::default()` is the reference server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Choices {
    /// Close the connection after every answer (no HTTP keep-alive; RFC
    /// 9112 §9.6 lets a server close after any response).
    pub close_every_answer: bool,
    /// Send `Connection: close` with every 4xx answer and close.
    pub close_on_error: bool,
    /// Process a request with both `Content-Length` and
    /// `Transfer-Encoding` by the latter alone, then close (RFC 9112 §6.1),
    /// instead of refusing it with 400.
    pub transfer_encoding_wins: bool,
    /// Close a connection whose body stalls without answering 408.
    pub stall_silent_close: bool,
    /// Directory endpoints as absolute `https://` URLs instead of paths.
    pub endpoint_urls: bool,
    /// JSON answers with members in another order, indented, with a space
    /// after each colon, and non-ASCII escaped as `\u` sequences (signed
    /// over those bytes).
    pub other_json_form: bool,
    /// Offer HTTP/2 by ALPN (`h2` before `http/1.1`) and speak it to a
    /// client that picks it; HTTP/1.1 to every other client.
    pub http2_alpn: bool,
    /// Answer 408 to a client that stalls in its first request head,
    /// instead of closing silently (RFC 9110 §15.5.9 allows either).
    pub header_stall_408: bool,
    /// The TLS versions offered.
    pub tls: TlsVersions,
    /// Advertise no extensions (the `csr` extension is optional, PROTOCOL
    /// `directory.extensions`): a `csrPEM` member is then ignored.
    pub no_extensions: bool,
    /// Issue for ECDSA P-256 keys alone (Ed25519 and RSA are optional,
    /// `provreq.key-optional`); other keys get 400.
    pub p256_only: bool,
}

impl Choices {
    /// The body of a JSON answer in the chosen form. In the other form it
    /// is signed with `signed` over its own bytes when a key is given
    /// (PROTOCOL §6: an HMAC of the message as sent, `signature` blank);
    /// the Go-exact form is for unsigned messages here (signed ones go
    /// through `Signed::sign_with_key`).
    pub fn answer<T: Serialize>(&self, msg: &T, signed: Option<&[u8]>) -> Vec<u8> {
        if !self.other_json_form {
            return to_go_json(msg);
        }
        let Ok(serde_json::Value::Object(members)) = serde_json::to_value(msg) else {
            return to_go_json(msg);
        };
        // serde_json's map is sorted: written in reverse, it is an order
        // nobody writes by hand and the Go reference never sends.
        let has_signature = members.contains_key("signature");
        let lines: Vec<String> = members
            .into_iter()
            .rev()
            .map(|(k, v)| {
                let v = if k == "signature" {
                    serde_json::Value::String(String::new())
                } else {
                    v
                };
                format!(
                    "  {}: {}",
                    serde_json::Value::String(k),
                    serde_json::to_string(&v).unwrap_or_default()
                )
            })
            .collect();
        let blank = ascii_escaped(&format!("{{\n{}\n}}", lines.join(",\n")));
        match (signed, has_signature) {
            (Some(key), true) => {
                let tag = crate::core::sign::tag_b64(key, blank.as_bytes());
                blank
                    .replacen(
                        "\"signature\": \"\"",
                        &format!("\"signature\": \"{tag}\""),
                        1,
                    )
                    .into_bytes()
            }
            _ => blank.into_bytes(),
        }
    }
}

/// A stream that first yields bytes already read from it.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` read again before it.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What arrived of a connection's first request head.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstHead {
    /// The bytes read, holding a whole head (or more than 64 KiB of one,
    /// for hyper to refuse).
    Complete(Vec<u8>),
    /// Some bytes arrived but no whole head within the limit.
    Stalled,
    /// The peer closed (or the read failed) before a whole head, or sent
    /// nothing at all within the limit.
    Gone,
}

/// Reads a connection's first request head (at most 64 KiB) within `limit`,
/// for the choices that look at it before hyper does.
pub async fn read_first_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: std::time::Duration,
) -> FirstHead {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if got.windows(4).any(|w| w == b"\r\n\r\n") || got.len() > 64 * 1024 {
            return FirstHead::Complete(got);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            Ok(_) => return FirstHead::Gone,
            Err(_) if got.is_empty() => return FirstHead::Gone,
            Err(_) => return FirstHead::Stalled,
        }
    }
}

/// The answer of the `header_stall_408` choice: a 408 that closes.
pub fn request_timeout_answer() -> Vec<u8> {
    let body = br#"{"error":"the request head did not arrive in time"}"#;
    let mut out = format!(
        "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The `transfer_encoding_wins` choice, on bytes holding a whole first
/// head: when it carries both `Content-Length` and `Transfer-Encoding`,
/// drops the former and asks for the connection to close after the answer
/// (RFC 9112 §6.1). Returns the bytes, rewritten, and whether they were.
pub fn frame_by_transfer_encoding(got: Vec<u8>) -> (Vec<u8>, bool) {
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
        return (got, false);
    };
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let is = |l: &str, name: &str| {
        l.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
    };
    let lines: Vec<&str> = head.split("\r\n").collect();
    let both = lines.iter().any(|l| is(l, "content-length"))
        && lines.iter().any(|l| is(l, "transfer-encoding"));
    if !both {
        return (got, false);
    }
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i == 1 {
            out.push_str("Connection: close\r\n");
        }
        if is(l, "content-length") || is(l, "connection") {
            continue;
        }
        if l.is_empty() {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut rewritten = out.into_bytes();
    rewritten.extend_from_slice(&got[end..]);
    (rewritten, true)
}

/// JSON text with every non-ASCII character as `\uXXXX` (surrogate pairs
/// beyond the BMP), another escaping a JSON encoder may choose.
fn ascii_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Every honest variant the tests run the suite against, by name: each
/// choice alone, and the combinations that can interact.
pub fn honest_variants() -> Vec<(&'static str, Choices)> {
    let one = |f: fn(&mut Choices)| {
        let mut c = Choices::default();
        f(&mut c);
        c
    };
    vec![
        ("close-every-answer", one(|c| c.close_every_answer = true)),
        ("close-on-error", one(|c| c.close_on_error = true)),
        (
            "transfer-encoding-wins",
            one(|c| c.transfer_encoding_wins = true),
        ),
        ("stall-silent-close", one(|c| c.stall_silent_close = true)),
        ("endpoint-urls", one(|c| c.endpoint_urls = true)),
        ("other-json-form", one(|c| c.other_json_form = true)),
        ("http2-alpn", one(|c| c.http2_alpn = true)),
        ("header-stall-408", one(|c| c.header_stall_408 = true)),
        ("tls13-only", one(|c| c.tls = TlsVersions::Only13)),
        ("tls12-only", one(|c| c.tls = TlsVersions::Only12)),
        ("no-extensions", one(|c| c.no_extensions = true)),
        ("p256-only", one(|c| c.p256_only = true)),
        (
            "all-transport",
            Choices {
                close_every_answer: true,
                close_on_error: true,
                transfer_encoding_wins: true,
                stall_silent_close: true,
                header_stall_408: true,
                tls: TlsVersions::Only12,
                ..Choices::default()
            },
        ),
        (
            "all",
            Choices {
                close_every_answer: true,
                close_on_error: true,
                transfer_encoding_wins: true,
                stall_silent_close: true,
                endpoint_urls: true,
                other_json_form: true,
                http2_alpn: true,
                header_stall_408: true,
                tls: TlsVersions::Only13,
                no_extensions: true,
                p256_only: true,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::messages::{ProvisionResponse, ProvisionStatus};

    #[test]
    fn both_framings_become_transfer_encoding_and_close() {
        let req = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /";
        let (out, rewritten) = frame_by_transfer_encoding(req.to_vec());
        assert!(rewritten);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /p HTTP/1.1\r\nConnection: close\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /"
        );
        let plain = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let (out, rewritten) = frame_by_transfer_encoding(plain.to_vec());
        assert!(!rewritten);
        assert_eq!(out, plain);
    }

    #[tokio::test]
    async fn the_first_head_is_complete_stalled_or_gone() {
        let limit = std::time::Duration::from_millis(200);
        let whole = b"GET / HTTP/1.1\r\nHost: h\r\n\r\nrest";
        assert_eq!(
            read_first_head(&mut &whole[..], limit).await,
            FirstHead::Complete(whole.to_vec())
        );
        // Half a head and then end of stream: the peer is gone.
        let half = b"GET / HTTP/1.1\r\nHost:";
        assert_eq!(
            read_first_head(&mut &half[..], limit).await,
            FirstHead::Gone
        );
        // Half a head and then silence: stalled.
        let (mut client, mut server) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(&mut client, half)
            .await
            .unwrap();
        assert_eq!(
            read_first_head(&mut server, limit).await,
            FirstHead::Stalled
        );
        // Nothing at all: an idle connection is not a stalled request.
        let (_client, mut server) = tokio::io::duplex(1024);
        assert_eq!(read_first_head(&mut server, limit).await, FirstHead::Gone);
        let answer = String::from_utf8(request_timeout_answer()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 408 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn another_json_form_verifies_by_raw_blanking() {
        let msg = ProvisionResponse {
            retry_sec: 7,
            status: ProvisionStatus::Approved,
            ca_cert: "CA é \u{1F600}".into(),
            client_cert: "cert".into(),
            signature: "ignored".into(),
        };
        let c = Choices {
            other_json_form: true,
            ..Choices::default()
        };
        let body = c.answer(&msg, Some(b"s3cret"));
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert!(
            text.contains("\\u00e9") && text.contains("\\ud83d\\ude00"),
            "{text}"
        );
        assert!(text.starts_with("{\n  \"status\": \"Approved\""), "{text}");
        crate::core::sign::verify_raw(&body, b"s3cret").unwrap();
        assert!(crate::core::sign::verify_raw(&body, b"other").is_err());
        // The default is the Go-exact form.
        assert_eq!(Choices::default().answer(&msg, None), to_go_json(&msg));
    }
}

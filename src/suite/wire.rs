//! Below the application layer: hand-built TLS records and plaintext HTTP,
//! to see what a peer would accept that a modern TLS stack never offers.
//!
//! The builders and parsers are pure (tested on bytes); [`probe`] does one
//! bounded exchange over TCP.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// TLS 1.0 on the wire.
pub const TLS10: u16 = 0x0301;
/// TLS 1.1 on the wire.
pub const TLS11: u16 = 0x0302;
/// TLS 1.2 on the wire.
pub const TLS12: u16 = 0x0303;
/// TLS 1.3 (in `supported_versions`).
pub const TLS13: u16 = 0x0304;

/// The name of a protocol version.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        TLS10 => "TLS 1.0".into(),
        TLS11 => "TLS 1.1".into(),
        TLS12 => "TLS 1.2".into(),
        TLS13 => "TLS 1.3".into(),
        o => format!("0x{o:04x}"),
    }
}

fn u16be(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

fn with_len16(body: &[u8]) -> Vec<u8> {
    let mut v = u16be(body.len() as u16).to_vec();
    v.extend_from_slice(body);
    v
}

/// A ClientHello record as a TLS 1.0/1.1 stack sends it: `max` as the only
/// version (no `supported_versions` extension), ECDHE and RSA suites with
/// CBC, SNI `host` when it is a name.
pub fn legacy_client_hello(max: u16, host: &str) -> Vec<u8> {
    let mut hello = u16be(max).to_vec();
    // A fixed random: the probe is a test, not a session.
    hello.extend((0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    hello.push(0); // session id
    let suites: [u16; 6] = [0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035];
    let s: Vec<u8> = suites.iter().flat_map(|c| u16be(*c)).collect();
    hello.extend(with_len16(&s));
    hello.extend([1, 0]); // compression: null
    let mut ext = Vec::new();
    if host.parse::<std::net::IpAddr>().is_err() && !host.is_empty() {
        let mut name = vec![0u8];
        name.extend(with_len16(host.as_bytes()));
        ext.extend(u16be(0x0000));
        ext.extend(with_len16(&with_len16(&name)));
    }
    // supported_groups: x25519, secp256r1, secp384r1
    ext.extend(u16be(0x000a));
    ext.extend(with_len16(&with_len16(&[0, 0x1d, 0, 0x17, 0, 0x18])));
    // ec_point_formats: uncompressed
    ext.extend(u16be(0x000b));
    ext.extend(with_len16(&[1, 0]));
    hello.extend(with_len16(&ext));
    let mut hs = vec![1u8]; // ClientHello
    let n = hello.len() as u32;
    hs.extend(&n.to_be_bytes()[1..]);
    hs.extend(hello);
    let mut rec = vec![0x16];
    rec.extend(u16be(TLS10));
    rec.extend(with_len16(&hs));
    rec
}

/// What the first bytes of a server's answer say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A ServerHello choosing this version.
    ServerHello(u16),
    /// A TLS alert (level, description).
    Alert(u8, u8),
    /// An HTTP status line in plaintext.
    Http(u16),
    /// The connection closed without a byte.
    Closed,
    /// No byte within the time limit.
    Silent,
    /// Anything else (first bytes, hex).
    Other(String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::ServerHello(v) => write!(f, "a ServerHello choosing {}", version_name(*v)),
            Answer::Alert(l, d) => write!(f, "a TLS alert (level {l}, description {d})"),
            Answer::Http(s) => write!(f, "a plaintext HTTP {s} answer"),
            Answer::Closed => f.write_str("the connection closed"),
            Answer::Silent => f.write_str("no answer within the time limit"),
            Answer::Other(h) => write!(f, "bytes {h}"),
        }
    }
}

/// Reads the version a ServerHello chose, from the `supported_versions`
/// extension when present (TLS 1.3), else from its legacy field.
fn server_hello_version(hs: &[u8]) -> Option<u16> {
    // hs: type(1) len(3) version(2) random(32) sid_len(1) sid suite(2) comp(1) [ext_len(2) exts]
    if hs.first() != Some(&2) || hs.len() < 4 + 2 + 32 + 1 {
        return None;
    }
    let body = &hs[4..];
    let legacy = u16::from_be_bytes([body[0], body[1]]);
    let mut i = 2 + 32;
    let sid = *body.get(i)? as usize;
    i += 1 + sid + 2 + 1;
    if body.len() < i + 2 {
        return Some(legacy);
    }
    let ext_len = u16::from_be_bytes([body[i], body[i + 1]]) as usize;
    i += 2;
    let end = (i + ext_len).min(body.len());
    while i + 4 <= end {
        let ty = u16::from_be_bytes([body[i], body[i + 1]]);
        let len = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        if ty == 0x002b && len == 2 && i + 6 <= end {
            return Some(u16::from_be_bytes([body[i + 4], body[i + 5]]));
        }
        i += 4 + len;
    }
    Some(legacy)
}

/// Classifies the first bytes a server sent.
pub fn classify(first: &[u8]) -> Answer {
    match first {
        [] => Answer::Closed,
        [0x16, _, _, _, _, hs @ ..] => match server_hello_version(hs) {
            Some(v) => Answer::ServerHello(v),
            None => Answer::Other(hex_head(first)),
        },
        [0x15, _, _, _, _, level, desc, ..] => Answer::Alert(*level, *desc),
        b if b.starts_with(b"HTTP/1.") => {
            let code = std::str::from_utf8(&b[9..b.len().min(12)])
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            Answer::Http(code)
        }
        b => Answer::Other(hex_head(b)),
    }
}

fn hex_head(b: &[u8]) -> String {
    crate::pki::hex(&b[..b.len().min(16)])
}

/// Versions a ClientHello record offers: `supported_versions` when present,
/// else every version from TLS 1.0 up to its legacy field. `None` when the
/// bytes are not a ClientHello.
pub fn offered_versions(record: &[u8]) -> Option<Vec<u16>> {
    let hs = record.get(5..)?;
    if record.first() != Some(&0x16) || hs.first() != Some(&1) || hs.len() < 4 + 2 + 32 + 1 {
        return None;
    }
    let body = &hs[4..];
    let legacy = u16::from_be_bytes([body[0], body[1]]);
    let mut i = 2 + 32;
    let sid = *body.get(i)? as usize;
    i += 1 + sid;
    let suites = u16::from_be_bytes([*body.get(i)?, *body.get(i + 1)?]) as usize;
    i += 2 + suites;
    let comp = *body.get(i)? as usize;
    i += 1 + comp;
    let mut offered = None;
    if let (Some(a), Some(b)) = (body.get(i), body.get(i + 1)) {
        let ext_len = u16::from_be_bytes([*a, *b]) as usize;
        i += 2;
        let end = (i + ext_len).min(body.len());
        while i + 4 <= end {
            let ty = u16::from_be_bytes([body[i], body[i + 1]]);
            let len = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
            if ty == 0x002b && i + 5 <= end {
                let n = body[i + 4] as usize;
                let list: Vec<u16> = body[i + 5..(i + 5 + n).min(end)]
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    // GREASE values (RFC 8701) are not versions.
                    .filter(|v| v & 0x0f0f != 0x0a0a)
                    .collect();
                offered = Some(list);
            }
            i += 4 + len;
        }
    }
    Some(offered.unwrap_or_else(|| (TLS10..=legacy.min(TLS12)).collect()))
}

/// Sends `bytes` to `addr` over plain TCP and classifies what comes back
/// within `limit` (the first record or line, at most 16 KiB).
pub async fn probe(addr: &str, bytes: &[u8], limit: Duration) -> Result<Answer, String> {
    let mut tcp = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr}: timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    tcp.write_all(bytes)
        .await
        .map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf[got..])).await {
            Err(_) if got == 0 => return Ok(Answer::Silent),
            Err(_) => break,
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                got += n;
                // Enough to classify: a whole record header and hello, or a line.
                let have = &buf[..got];
                let record_done = have.len() >= 5
                    && have.len() >= 5 + u16::from_be_bytes([have[3], have[4]]) as usize;
                if record_done || have.contains(&b'\n') || got == buf.len() {
                    break;
                }
            }
            // A reset after the request is a refusal like a close.
            Ok(Err(_)) if got == 0 => return Ok(Answer::Closed),
            Ok(Err(_)) => break,
        }
    }
    Ok(classify(&buf[..got]))
}

/// What came back over TLS for hand-written HTTP bytes.
#[derive(Debug, Clone)]
pub struct RawExchange {
    /// Status codes of every HTTP status line received, in order.
    pub statuses: Vec<u16>,
    /// Whether the server closed the connection within the limit.
    pub closed: bool,
    /// Time from the last byte written to the close (or to the limit).
    pub after: Duration,
    /// The first bytes received, for evidence.
    pub head: String,
}

/// Writes `parts` over TLS to `url`'s origin — the pause between two parts
/// is `pause` — then reads until the server closes or `limit` passes (or,
/// with `answers` > 0, until that many response heads have arrived).
pub async fn tls_raw(
    url: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    parts: &[Vec<u8>],
    pause: Duration,
    limit: Duration,
    answers: usize,
) -> Result<RawExchange, String> {
    let t = crate::net::parse_url(url).map_err(|e| e.to_string())?;
    let name: rustls::pki_types::ServerName<'static> = match t.host.parse::<std::net::IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls::pki_types::ServerName::try_from(t.host.clone())
            .map_err(|_| format!("bad host in {url}"))?,
    };
    let tcp = tokio::time::timeout(limit, TcpStream::connect((t.host.as_str(), t.port)))
        .await
        .map_err(|_| format!("connecting to {}: timed out", t.authority))?
        .map_err(|e| format!("connecting to {}: {e}", t.authority))?;
    let mut stream = tokio::time::timeout(
        limit,
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("TLS with {}: timed out", t.authority))?
    .map_err(|e| format!("TLS with {}: {e}", t.authority))?;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        // A server may close early (that is an answer too).
        if stream.write_all(p).await.is_err() || stream.flush().await.is_err() {
            break;
        }
    }
    let written = tokio::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut closed = false;
    let deadline = written + limit;
    while got.len() < 256 * 1024 {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if answers > 0
                    && text.matches("HTTP/1.1 ").count() >= answers
                    && text.matches("\r\n\r\n").count() >= answers
                {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&got);
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect();
    Ok(RawExchange {
        statuses,
        closed,
        after: written.elapsed(),
        head: text.chars().take(200).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_hello_offers_only_legacy_versions() {
        let h = legacy_client_hello(TLS11, "idprov.test");
        assert_eq!(offered_versions(&h), Some(vec![TLS10, TLS11]));
        let h = legacy_client_hello(TLS10, "127.0.0.1");
        assert_eq!(offered_versions(&h), Some(vec![TLS10]));
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(b""), Answer::Closed);
        assert_eq!(classify(&[0x15, 3, 3, 0, 2, 2, 70]), Answer::Alert(2, 70));
        assert_eq!(classify(b"HTTP/1.1 400 Bad Request\r\n"), Answer::Http(400));
        // A ServerHello for TLS 1.1: type 2, len, version, random, sid 0, suite, comp.
        let mut hs = vec![2, 0, 0, 38, 3, 2];
        hs.extend([0u8; 32]);
        hs.extend([0, 0xc0, 0x13, 0]);
        let mut rec = vec![0x16, 3, 2, 0, hs.len() as u8];
        rec.extend(hs);
        assert_eq!(classify(&rec), Answer::ServerHello(TLS11));
    }

    #[tokio::test]
    async fn a_rustls_server_refuses_legacy_tls() {
        // The real thing: a rustls acceptor on loopback never picks 1.0/1.1.
        let ca =
            crate::pki::CertAuthority::generate("wire test CA", time::OffsetDateTime::now_utc())
                .unwrap();
        let srv = ca
            .issue_server(
                &[],
                &["127.0.0.1".parse().unwrap()],
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let cfg = crate::tls::server_config(ca.cert_pem(), &srv.cert.pem, &srv.key_pem).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            for _ in 0..2 {
                if let Ok((tcp, _)) = l.accept().await {
                    let _ = acceptor.accept(tcp).await;
                }
            }
        });
        for v in [TLS10, TLS11] {
            let a = probe(&addr, &legacy_client_hello(v, ""), Duration::from_secs(5))
                .await
                .unwrap();
            // handshake_failure (40) or protocol_version (70): the hello
            // parsed and nothing in it suits a modern stack (a malformed
            // hello would get decode_error, 50).
            assert!(
                matches!(a, Answer::Alert(2, 40 | 70)),
                "{}: {a}",
                version_name(v)
            );
        }
    }
}

//! One changed element of an otherwise honest Approved answer: a member's
//! value, the JSON around it, or the HTTP message that carries it. The
//! device-side metamorphic relation (`client.mitm.any-answer-chains-or-nothing`)
//! serves each of these once and needs no verdict per element: whatever the
//! server sends, a device ends with a set that chains to the CA it pinned,
//! for its own key and ID, or with nothing. Some elements are legal (a
//! `201`, chunked transfer, `\/` escapes), most are not; the relation holds
//! for both, so none needs a ruling here.

use crate::core::messages::{ProvisionResponse, PROVREQ_PATH};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use std::net::SocketAddr;

/// One element of the answer changed (the members marked *signed* are
/// signed over the bytes sent, so the signature is no reason to refuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Perturb {
    /// *Signed*: `caCert` holds the pinned CA followed by another CA.
    CaBundle,
    /// *Signed*: `caCert` is another CA.
    CaOther,
    /// *Signed*: `caCert` is empty.
    CaEmpty,
    /// *Signed*: `caCert` is `null`.
    CaNull,
    /// *Signed*: `clientCert` is the certificate followed by the CA (a chain).
    CertChain,
    /// *Signed*: `clientCert` is the certificate followed by one for another key.
    CertThenAnother,
    /// *Signed*: `clientCert` is a PEM block of bytes that are no certificate.
    CertGarbage,
    /// *Signed*: `clientCert` is the DER in base64 without PEM armour.
    CertBareBase64,
    /// *Signed*: `status` is `approved`.
    StatusLowerCase,
    /// *Signed*: `status` is a word the profile does not define.
    StatusUnknown,
    /// *Signed*: `status` appears twice, `Rejected` first.
    StatusTwice,
    /// *Signed*: `retrySec` is negative.
    RetrySecNegative,
    /// *Signed*: `retrySec` is a string.
    RetrySecString,
    /// *Signed*: every `/` in the certificates written `\/` (legal JSON).
    EscapedSlashes,
    /// The honest body with HTTP status 201.
    Http201,
    /// The honest body with HTTP status 500.
    Http500,
    /// The honest body with HTTP status 503.
    Http503,
    /// A 307 redirect to the same provisioning URL (the next answer is honest).
    Redirect307,
    /// `Content-Type: text/plain`.
    ContentTypeText,
    /// No `Content-Type`.
    NoContentType,
    /// `Content-Encoding: gzip` on a body that is not compressed.
    FalseGzip,
    /// The body sent in chunks (`Transfer-Encoding: chunked`).
    Chunked,
    /// A UTF-8 byte order mark before the JSON.
    ByteOrderMark,
    /// Bytes after the JSON document.
    TrailingBytes,
    /// The first half of the body only.
    Truncated,
    /// *Signed*: one random edit (a character deleted, inserted, replaced
    /// or case-swapped, a line dropped or repeated) of `status`, `caCert`
    /// or `clientCert`, drawn from `seed`. Not in [`Perturb::ALL`]: a case
    /// draws its seeds from the run's seed.
    Edit {
        /// What the edit is drawn from.
        seed: u64,
    },
}

impl std::fmt::Display for Perturb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Perturb::Edit { seed } => write!(f, "random edit {seed:016x}"),
            other => f.write_str(&super::faults::Switch::name(*other)),
        }
    }
}

/// One random edit of `text` (never the identity when `text` is not
/// empty), and what it was.
fn edit(text: &str, rng: &mut impl rand::Rng) -> (String, String) {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return ("x".into(), "inserted x".into());
    }
    let at = rng.gen_range(0..chars.len());
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let line = rng.gen_range(0..lines.len());
    let printable = char::from(rng.gen_range(0x21u8..0x7f));
    let mut out = chars.clone();
    let what = match rng.gen_range(0..6) {
        0 => {
            out.remove(at);
            format!("deleted {:?} at {at}", chars[at])
        }
        1 => {
            out.insert(at, printable);
            format!("inserted {printable:?} at {at}")
        }
        2 if chars[at] != printable => {
            out[at] = printable;
            format!("replaced {:?} at {at} with {printable:?}", chars[at])
        }
        3 if chars[at].is_ascii_alphabetic() => {
            out[at] = if chars[at].is_ascii_uppercase() {
                chars[at].to_ascii_lowercase()
            } else {
                chars[at].to_ascii_uppercase()
            };
            format!("swapped the case of {:?} at {at}", chars[at])
        }
        4 if lines.len() > 1 => {
            let mut l = lines.clone();
            l.remove(line);
            return (l.concat(), format!("dropped line {line}"));
        }
        5 => {
            let mut l = lines.clone();
            l.insert(line, lines[line]);
            return (l.concat(), format!("repeated line {line}"));
        }
        _ => {
            out.remove(at);
            format!("deleted {:?} at {at}", chars[at])
        }
    };
    (out.into_iter().collect(), what)
}

impl Perturb {
    /// Whether this changes a member of the answer and signs the bytes
    /// sent (the rest change the JSON text around it or the HTTP message).
    pub fn is_signed_member(self) -> bool {
        matches!(
            self,
            Perturb::CaBundle
                | Perturb::CaOther
                | Perturb::CaEmpty
                | Perturb::CaNull
                | Perturb::CertChain
                | Perturb::CertThenAnother
                | Perturb::CertGarbage
                | Perturb::CertBareBase64
                | Perturb::StatusLowerCase
                | Perturb::StatusUnknown
                | Perturb::StatusTwice
                | Perturb::RetrySecNegative
                | Perturb::RetrySecString
                | Perturb::EscapedSlashes
                | Perturb::Edit { .. }
        )
    }

    /// Every element, in the order a case serves them.
    pub const ALL: &'static [Perturb] = &[
        Perturb::CaBundle,
        Perturb::CaOther,
        Perturb::CaEmpty,
        Perturb::CaNull,
        Perturb::CertChain,
        Perturb::CertThenAnother,
        Perturb::CertGarbage,
        Perturb::CertBareBase64,
        Perturb::StatusLowerCase,
        Perturb::StatusUnknown,
        Perturb::StatusTwice,
        Perturb::RetrySecNegative,
        Perturb::RetrySecString,
        Perturb::EscapedSlashes,
        Perturb::Http201,
        Perturb::Http500,
        Perturb::Http503,
        Perturb::Redirect307,
        Perturb::ContentTypeText,
        Perturb::NoContentType,
        Perturb::FalseGzip,
        Perturb::Chunked,
        Perturb::ByteOrderMark,
        Perturb::TrailingBytes,
        Perturb::Truncated,
    ];
}

impl super::faults::Switch for Perturb {
    fn catalogue() -> &'static [Perturb] {
        Perturb::ALL
    }
}

/// An answer's members in the order they are sent.
type Members = Vec<(&'static str, Value)>;

/// What a perturbation needs besides the honest answer.
pub(crate) struct Material<'a> {
    /// The device's secret (to sign the members changed).
    pub secret: &'a str,
    /// PEM of a CA that is not the pinned one.
    pub other_ca_pem: &'a str,
    /// PEM of a certificate for the device's ID and another key.
    pub other_key_cert_pem: &'a str,
    /// Where the server listens (for the redirect).
    pub addr: SocketAddr,
}

/// The honest Approved answer `r` with `p` applied.
pub(crate) fn answer(p: Perturb, r: &ProvisionResponse, m: &Material<'_>) -> Response<Full<Bytes>> {
    let honest = || {
        let mut r = r.clone();
        crate::core::messages::Signed::sign(&mut r, m.secret, crate::core::sign::KeyVariant::Raw)
    };
    let members = |f: &dyn Fn(&mut Members)| {
        let mut v: Members = vec![
            ("retrySec", Value::from(r.retry_sec)),
            ("status", Value::String(r.status.as_str().into())),
            ("caCert", Value::String(r.ca_cert.clone())),
            ("clientCert", Value::String(r.client_cert.clone())),
            ("signature", Value::String(String::new())),
        ];
        f(&mut v);
        crate::core::json::encode_members(&v)
    };
    let set = |name: &'static str, value: Value| {
        members(&move |v: &mut Members| {
            for m in v.iter_mut().filter(|m| m.0 == name) {
                m.1 = value.clone();
            }
        })
    };
    let s = |t: String| Value::String(t);
    let cert_der_b64 = || {
        use base64::Engine;
        crate::pki::cert_der_from_pem(&r.client_cert)
            .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
            .unwrap_or_default()
    };
    let ok = |body: Vec<u8>| json(StatusCode::OK, body);
    match p {
        Perturb::CaBundle => ok(signed(
            set("caCert", s(format!("{}{}", r.ca_cert, m.other_ca_pem))),
            m.secret,
        )),
        Perturb::CaOther => ok(signed(set("caCert", s(m.other_ca_pem.into())), m.secret)),
        Perturb::CaEmpty => ok(signed(set("caCert", s(String::new())), m.secret)),
        Perturb::CaNull => ok(signed(set("caCert", Value::Null), m.secret)),
        Perturb::CertChain => ok(signed(
            set("clientCert", s(format!("{}{}", r.client_cert, r.ca_cert))),
            m.secret,
        )),
        Perturb::CertThenAnother => ok(signed(
            set(
                "clientCert",
                s(format!("{}{}", r.client_cert, m.other_key_cert_pem)),
            ),
            m.secret,
        )),
        Perturb::CertGarbage => ok(signed(
            set(
                "clientCert",
                s(crate::pki::pem_encode(
                    "CERTIFICATE",
                    b"not a certificate at all",
                )),
            ),
            m.secret,
        )),
        Perturb::CertBareBase64 => ok(signed(set("clientCert", s(cert_der_b64())), m.secret)),
        Perturb::StatusLowerCase => ok(signed(set("status", s("approved".into())), m.secret)),
        Perturb::StatusUnknown => ok(signed(set("status", s("Issued".into())), m.secret)),
        Perturb::StatusTwice => ok(signed(
            members(&|v: &mut Members| v.insert(0, ("status", Value::String("Rejected".into())))),
            m.secret,
        )),
        Perturb::RetrySecNegative => ok(signed(set("retrySec", Value::from(-1)), m.secret)),
        Perturb::RetrySecString => ok(signed(
            set("retrySec", s(r.retry_sec.to_string())),
            m.secret,
        )),
        Perturb::EscapedSlashes => {
            let plain = String::from_utf8_lossy(&members(&|_| {})).into_owned();
            ok(signed(plain.replace('/', "\\/").into_bytes(), m.secret))
        }
        Perturb::Http201 => json(StatusCode::CREATED, honest()),
        Perturb::Http500 => json(StatusCode::INTERNAL_SERVER_ERROR, honest()),
        Perturb::Http503 => json(StatusCode::SERVICE_UNAVAILABLE, honest()),
        Perturb::Redirect307 => {
            let mut resp = json(StatusCode::TEMPORARY_REDIRECT, Vec::new());
            if let Ok(v) = HeaderValue::from_str(&format!("https://{}{PROVREQ_PATH}", m.addr)) {
                resp.headers_mut().insert(http::header::LOCATION, v);
            }
            resp
        }
        Perturb::ContentTypeText => {
            let mut resp = ok(honest());
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            resp
        }
        Perturb::NoContentType => {
            let mut resp = ok(honest());
            resp.headers_mut().remove(http::header::CONTENT_TYPE);
            resp
        }
        Perturb::FalseGzip => {
            let mut resp = ok(honest());
            resp.headers_mut().insert(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static("gzip"),
            );
            resp
        }
        Perturb::Chunked => {
            let mut resp = ok(honest());
            resp.headers_mut().insert(
                http::header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            resp
        }
        Perturb::ByteOrderMark => {
            let mut body = "\u{feff}".as_bytes().to_vec();
            body.extend(honest());
            ok(body)
        }
        Perturb::TrailingBytes => {
            let mut body = honest();
            body.extend_from_slice(b"\n{\"status\":\"Approved\"}");
            ok(body)
        }
        Perturb::Edit { seed } => {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let (name, value) = match rng.gen_range(0..3) {
                0 => ("status", r.status.as_str().to_string()),
                1 => ("caCert", r.ca_cert.clone()),
                _ => ("clientCert", r.client_cert.clone()),
            };
            let (edited, _) = edit(&value, &mut rng);
            ok(signed(set(name, s(edited)), m.secret))
        }
        Perturb::Truncated => {
            let mut body = honest();
            body.truncate(body.len() / 2);
            ok(body)
        }
    }
}

/// `doc` (whose `signature` is `""`) signed with the raw secret over its
/// bytes, as every sender signs.
pub(crate) fn signed(doc: Vec<u8>, secret: &str) -> Vec<u8> {
    let tag = crate::core::sign::tag_b64(secret.as_bytes(), &doc);
    let text = String::from_utf8_lossy(&doc);
    text.replacen("\"signature\":\"\"", &format!("\"signature\":\"{tag}\""), 1)
        .into_bytes()
}

/// A JSON answer with `status`.
pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::messages::ProvisionStatus;
    use crate::core::sign;

    fn material() -> (ProvisionResponse, Material<'static>) {
        let r = ProvisionResponse {
            retry_sec: 3600,
            status: ProvisionStatus::Approved,
            ca_cert: "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n".into(),
            client_cert: "-----BEGIN CERTIFICATE-----\nREVG\n-----END CERTIFICATE-----\n".into(),
            signature: String::new(),
        };
        let m = Material {
            secret: "s3cret",
            other_ca_pem: "-----BEGIN CERTIFICATE-----\nWFla\n-----END CERTIFICATE-----\n",
            other_key_cert_pem: "-----BEGIN CERTIFICATE-----\nR0hJ\n-----END CERTIFICATE-----\n",
            addr: "127.0.0.1:9".parse().expect("address"),
        };
        (r, m)
    }

    /// An edit always changes the text, and the same seed makes the same
    /// answer.
    #[test]
    fn random_edits_change_the_text_and_repeat_by_seed() {
        use rand::SeedableRng;
        for seed in 0..300u64 {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let text = "-----BEGIN X-----\nQUJD\n-----END X-----\n";
            let (out, what) = edit(text, &mut rng);
            assert_ne!(out, text, "{what}");
        }
        let (r, m) = material();
        let body = |p| {
            futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
                answer(p, &r, &m).into_body(),
            ))
            .and_then(Result::ok)
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default()
        };
        assert_eq!(
            body(Perturb::Edit { seed: 7 }),
            body(Perturb::Edit { seed: 7 })
        );
        sign::verify_raw(&body(Perturb::Edit { seed: 7 }), b"s3cret").expect("signed");
    }

    /// Every member perturbation is signed over the bytes it sends, so a
    /// device that refuses it refuses for the change, not the signature.
    #[test]
    fn changed_members_are_signed_over_the_bytes_sent() {
        let (r, m) = material();
        let signed: Vec<&Perturb> = Perturb::ALL
            .iter()
            .filter(|p| p.is_signed_member())
            .collect();
        assert_eq!(signed.len(), 14);
        for p in signed {
            let resp = answer(*p, &r, &m);
            assert_eq!(resp.status(), StatusCode::OK, "{p:?}");
            let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
                resp.into_body(),
            ))
            .and_then(Result::ok)
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
            sign::verify_raw(&body, b"s3cret").unwrap_or_else(|e| panic!("{p:?}: {e}"));
        }
    }
}

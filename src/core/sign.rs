//! HMAC signatures over protocol messages (PROTOCOL §6).
//!
//! A sender serialises the message compactly with `signature` set to `""`,
//! signs those bytes, and then fills in the base64 tag. A receiver verifies
//! by *raw blanking*: the bytes it received, with only the value of the
//! top-level `signature` member replaced by `""`.

use super::json::{self, ScanError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// How the HMAC key is derived from the OOB secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyVariant {
    /// The UTF-8 bytes of the secret, as is (normative, PROTOCOL §6).
    Raw,
    /// SHA-256 of the secret: what the standard's prose says; a known
    /// deviation that the suite detects and names.
    Sha256OfSecret,
}

impl KeyVariant {
    /// Every variant, normative first.
    pub const ALL: [KeyVariant; 2] = [KeyVariant::Raw, KeyVariant::Sha256OfSecret];

    /// The HMAC key bytes for `secret` under this variant.
    pub fn key(self, secret: &str) -> Vec<u8> {
        match self {
            KeyVariant::Raw => secret.as_bytes().to_vec(),
            KeyVariant::Sha256OfSecret => Sha256::digest(secret.as_bytes()).to_vec(),
        }
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The message is not a JSON object.
    #[error("message is not a JSON object: {0}")]
    Json(#[from] ScanError),
    /// No top-level `signature` member.
    #[error("message has no top-level signature member")]
    Missing,
    /// More than one top-level `signature` member.
    #[error("message has more than one top-level signature member")]
    Duplicate,
    /// `signature` is not a JSON string.
    #[error("signature member is not a string")]
    NotAString,
    /// `signature` is the empty string.
    #[error("signature is empty")]
    Empty,
    /// `signature` is not standard padded base64.
    #[error("signature is not standard base64")]
    NotBase64,
    /// The decoded tag is not 32 bytes.
    #[error("signature is {0} bytes, expected {TAG_LEN}")]
    WrongLength(usize),
    /// The tag does not match.
    #[error("signature does not match")]
    Mismatch,
}

/// Computes `base64_std(HMAC-SHA256(key, input))`.
pub fn tag_b64(key: &[u8], input: &[u8]) -> String {
    STANDARD.encode(tag(key, input))
}

/// Computes the raw HMAC-SHA256 tag.
pub fn tag(key: &[u8], input: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(input);
    mac.finalize().into_bytes().into()
}

/// A received message split into what was signed and the claimed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blanked {
    /// The received bytes with the top-level `signature` value set to `""`.
    pub signing_input: Vec<u8>,
    /// The decoded text of the `signature` member.
    pub signature: String,
}

/// Finds the single top-level `signature` member: its value span and text.
fn locate_signature(doc: &[u8]) -> Result<(std::ops::Range<usize>, String), SignatureError> {
    let found = json::find_top_level(doc, "signature")?;
    let member = match found.as_slice() {
        [] => return Err(SignatureError::Missing),
        [m] => m,
        _ => return Err(SignatureError::Duplicate),
    };
    if doc.get(member.value.start) != Some(&b'"') {
        return Err(SignatureError::NotAString);
    }
    let text = json::decode_string(doc, member.value.clone()).ok_or(SignatureError::NotAString)?;
    Ok((member.value.clone(), text))
}

/// Replaces the value of the single top-level `signature` member by `""`.
pub fn blank_signature(doc: &[u8]) -> Result<Blanked, SignatureError> {
    let (span, signature) = locate_signature(doc)?;
    let mut signing_input = Vec::with_capacity(doc.len());
    signing_input.extend_from_slice(&doc[..span.start]);
    signing_input.extend_from_slice(b"\"\"");
    signing_input.extend_from_slice(&doc[span.end..]);
    Ok(Blanked {
        signing_input,
        signature,
    })
}

/// Verifies `doc`'s signature with `key` by raw blanking, in constant time.
pub fn verify_raw(doc: &[u8], key: &[u8]) -> Result<(), SignatureError> {
    let (span, signature) = locate_signature(doc)?;
    let claimed = decode_tag(&signature)?;
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    // The signing input is the document with the value blanked; feed it in
    // three parts instead of copying it.
    mac.update(&doc[..span.start]);
    mac.update(b"\"\"");
    mac.update(&doc[span.end..]);
    mac.verify_slice(&claimed)
        .map_err(|_| SignatureError::Mismatch)
}

/// Checks the tag of an already blanked message against `key`.
pub fn verify_tag(blanked: &Blanked, key: &[u8]) -> Result<(), SignatureError> {
    let claimed = decode_tag(&blanked.signature)?;
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(&blanked.signing_input);
    // `verify_slice` compares in constant time and requires the full length.
    mac.verify_slice(&claimed)
        .map_err(|_| SignatureError::Mismatch)
}

/// Decodes a base64 tag strictly (standard alphabet, padding required).
pub fn decode_tag(text: &str) -> Result<Vec<u8>, SignatureError> {
    if text.is_empty() {
        return Err(SignatureError::Empty);
    }
    let raw = STANDARD
        .decode(text)
        .map_err(|_| SignatureError::NotBase64)?;
    if raw.len() != TAG_LEN {
        return Err(SignatureError::WrongLength(raw.len()));
    }
    Ok(raw)
}

/// Verifies with the secret under each key variant and says which matched.
pub fn detect_variant(doc: &[u8], secret: &str) -> Result<KeyVariant, SignatureError> {
    let blanked = blank_signature(doc)?;
    let mut last = SignatureError::Mismatch;
    for variant in KeyVariant::ALL {
        match verify_tag(&blanked, &variant.key(secret)) {
            Ok(()) => return Ok(variant),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanking_touches_only_top_level_member() {
        let doc = br#"{"x":{"signature":"n"},"signature":"abc","y":"\"signature\":\"q\""}"#;
        let b = blank_signature(doc).unwrap();
        assert_eq!(
            b.signing_input,
            br#"{"x":{"signature":"n"},"signature":"","y":"\"signature\":\"q\""}"#.to_vec()
        );
        assert_eq!(b.signature, "abc");
    }

    #[test]
    fn duplicate_and_missing_are_refused() {
        assert_eq!(
            blank_signature(br#"{"signature":"a","signature":"b"}"#),
            Err(SignatureError::Duplicate)
        );
        assert_eq!(
            blank_signature(br#"{"a":"b"}"#),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            blank_signature(br#"{"signature":1}"#),
            Err(SignatureError::NotAString)
        );
    }

    #[test]
    fn round_trip_and_variants() {
        let input = br#"{"a":"b","signature":""}"#;
        let t = tag_b64(b"secret", input);
        let doc = format!(r#"{{"a":"b","signature":"{t}"}}"#);
        assert!(verify_raw(doc.as_bytes(), b"secret").is_ok());
        assert_eq!(
            verify_raw(doc.as_bytes(), b"other"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            detect_variant(doc.as_bytes(), "secret"),
            Ok(KeyVariant::Raw)
        );
        let t2 = tag_b64(&KeyVariant::Sha256OfSecret.key("secret"), input);
        let doc2 = format!(r#"{{"a":"b","signature":"{t2}"}}"#);
        assert_eq!(
            detect_variant(doc2.as_bytes(), "secret"),
            Ok(KeyVariant::Sha256OfSecret)
        );
    }

    #[test]
    fn truncated_and_urlsafe_tags_fail() {
        let t = tag(b"k", b"m");
        let short = STANDARD.encode(&t[..16]);
        assert_eq!(decode_tag(&short), Err(SignatureError::WrongLength(16)));
        assert_eq!(decode_tag("a_b-"), Err(SignatureError::NotBase64));
        assert_eq!(decode_tag(""), Err(SignatureError::Empty));
    }
}

//! Validation of what a server receives (PROTOCOL §4, §5): device IDs, OOB
//! secret posts and provisioning requests. Pure functions, no I/O.

use super::messages::{OobSecretMessage, ProvisionRequest};
use std::net::IpAddr;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Longest device ID accepted.
pub const MAX_DEVICE_ID: usize = 128;
/// Default life of an OOB secret when `validUntil` is empty (PROTOCOL §4).
pub const DEFAULT_SECRET_LIFE: Duration = Duration::days(3);

/// Why a request body was refused with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The body is not the expected JSON.
    #[error("invalid JSON body: {0}")]
    Json(String),
    /// A required field is missing or empty.
    #[error("missing or empty field `{0}`")]
    MissingField(&'static str),
    /// The device ID breaks PROTOCOL §5's syntax.
    #[error("invalid device ID: {0}")]
    DeviceId(&'static str),
    /// `validUntil` is not RFC 3339.
    #[error("validUntil is not an RFC 3339 time")]
    BadTime,
    /// `validUntil` is in the past.
    #[error("validUntil is in the past")]
    PastTime,
    /// `ip` is not an IP address.
    #[error("ip is not an IP address")]
    BadIp,
}

/// A device ID that passed PROTOCOL §5's syntax: 1–128 characters from
/// `[A-Za-z0-9._:-]`, not `.` or `..`. Made only by [`DeviceId::parse`], so
/// code that holds one never checks it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    /// Validates `id`.
    pub fn parse(id: &str) -> Result<DeviceId, InvalidInput> {
        check_device_id(id)?;
        Ok(DeviceId(id.to_string()))
    }

    /// A device ID taken as it is, unchecked: only for the suite's
    /// deliberately broken server, whose defect is skipping the check.
    pub(crate) fn unchecked(id: String) -> DeviceId {
        DeviceId(id)
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for DeviceId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_device_id(id: &str) -> Result<(), InvalidInput> {
    if id.is_empty() {
        return Err(InvalidInput::DeviceId("empty"));
    }
    if id.len() > MAX_DEVICE_ID {
        return Err(InvalidInput::DeviceId("longer than 128 characters"));
    }
    if id == "." || id == ".." {
        return Err(InvalidInput::DeviceId("`.` and `..` are reserved"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(InvalidInput::DeviceId(
            "only A-Z a-z 0-9 . _ : - are allowed",
        ));
    }
    Ok(())
}

/// A validated OOB secret post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OobPost {
    /// Device ID.
    pub device_id: DeviceId,
    /// The secret.
    pub secret: String,
    /// When the secret stops being usable.
    pub valid_until: OffsetDateTime,
}

/// Parses and validates an OOB post body at time `now`.
pub fn parse_oob(body: &[u8], now: OffsetDateTime) -> Result<OobPost, InvalidInput> {
    let msg: OobSecretMessage =
        serde_json::from_slice(body).map_err(|e| InvalidInput::Json(one_line(&e)))?;
    let device_id = DeviceId::parse(&msg.device_id)?;
    if msg.oob_secret.is_empty() {
        return Err(InvalidInput::MissingField("oobSecret"));
    }
    let valid_until = if msg.valid_until.is_empty() {
        now + DEFAULT_SECRET_LIFE
    } else {
        let t =
            OffsetDateTime::parse(&msg.valid_until, &Rfc3339).map_err(|_| InvalidInput::BadTime)?;
        if t <= now {
            return Err(InvalidInput::PastTime);
        }
        t
    };
    Ok(OobPost {
        device_id,
        secret: msg.oob_secret,
        valid_until,
    })
}

/// A provisioning request whose shape passed PROTOCOL §5 step 1 (its
/// signature is the decision's to check, over the raw body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest {
    /// The device ID.
    pub device_id: DeviceId,
    /// The address the device says it has.
    pub ip: IpAddr,
    /// The device's public key (SubjectPublicKeyInfo PEM, not yet parsed).
    pub public_key_pem: String,
    /// The CSR, when one was sent (not empty).
    pub csr_pem: Option<String>,
}

/// Parses and validates a provisioning request body. Signature checking is
/// the decision function's job; this only checks shape (PROTOCOL §5 step 1).
pub fn parse_provision_request(body: &[u8]) -> Result<ValidRequest, InvalidInput> {
    let m: ProvisionRequest =
        serde_json::from_slice(body).map_err(|e| InvalidInput::Json(one_line(&e)))?;
    if m.device_id.is_empty() {
        return Err(InvalidInput::MissingField("deviceID"));
    }
    let device_id = DeviceId::parse(&m.device_id)?;
    if m.public_key_pem.is_empty() {
        return Err(InvalidInput::MissingField("publicKeyPEM"));
    }
    if m.ip.is_empty() {
        return Err(InvalidInput::MissingField("ip"));
    }
    let ip = m.ip.parse::<IpAddr>().map_err(|_| InvalidInput::BadIp)?;
    Ok(ValidRequest {
        device_id,
        ip,
        public_key_pem: m.public_key_pem,
        csr_pem: m.csr_pem.filter(|c| !c.is_empty()),
    })
}

/// Formats an error on one line (serde errors can carry newlines).
pub fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn device_ids() {
        for ok in ["dev-1", "a", "A.b_c:d-e", &"x".repeat(128), "..."] {
            assert_eq!(
                DeviceId::parse(ok).map(|d| d.to_string()).as_deref(),
                Ok(ok)
            );
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a b",
            "é",
            "a\0b",
            &"x".repeat(129),
        ] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn oob_times() {
        let now = datetime!(2026-11-28 06:00 UTC);
        let p = parse_oob(br#"{"deviceID":"d","oobSecret":"s","validUntil":""}"#, now).unwrap();
        assert_eq!(p.valid_until, now + DEFAULT_SECRET_LIFE);
        let p = parse_oob(br#"{"deviceID":"d","oobSecret":"s"}"#, now).unwrap();
        assert_eq!(p.valid_until, now + DEFAULT_SECRET_LIFE);
        assert_eq!(
            parse_oob(
                br#"{"deviceID":"d","oobSecret":"s","validUntil":"2020-01-01T00:00:00Z"}"#,
                now
            ),
            Err(InvalidInput::PastTime)
        );
        assert_eq!(
            parse_oob(
                br#"{"deviceID":"d","oobSecret":"s","validUntil":"tomorrow"}"#,
                now
            ),
            Err(InvalidInput::BadTime)
        );
        assert!(matches!(
            parse_oob(br#"{"deviceID":"d","oobSecret":"s","validUntil":12}"#, now),
            Err(InvalidInput::Json(_))
        ));
        assert_eq!(
            parse_oob(br#"{"deviceID":"d","oobSecret":""}"#, now),
            Err(InvalidInput::MissingField("oobSecret"))
        );
    }

    #[test]
    fn provision_request_shape() {
        let ok = br#"{"deviceID":"d","ip":"::1","mac":"","publicKeyPEM":"K","signature":"s"}"#;
        assert!(parse_provision_request(ok).is_ok());
        let no_ip = br#"{"deviceID":"d","publicKeyPEM":"K","signature":"s"}"#;
        assert_eq!(
            parse_provision_request(no_ip),
            Err(InvalidInput::MissingField("ip"))
        );
        let bad_ip = br#"{"deviceID":"d","ip":"x","publicKeyPEM":"K"}"#;
        assert_eq!(parse_provision_request(bad_ip), Err(InvalidInput::BadIp));
        assert!(parse_provision_request(br#"{"deviceID":5}"#).is_err());
    }
}

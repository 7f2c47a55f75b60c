//! The protocol's JSON messages (PROTOCOL §3–§8), with the field orders that
//! make a sender's bytes identical to the Go reference's.

use super::json::to_go_json;
use super::sign::{self, KeyVariant, SignatureError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default TCP port of an IDProv server (PROTOCOL §1).
pub const DEFAULT_PORT: u16 = 43776;
/// Default path of the directory endpoint (PROTOCOL §3).
pub const DIRECTORY_PATH: &str = "/idprov/directory";
/// Path of the OOB secret endpoint.
pub const OOB_PATH: &str = "/idprov/oobsecret";
/// Path of the provisioning request endpoint.
pub const PROVREQ_PATH: &str = "/idprov/provreq";
/// Prefix of the status endpoint; the device ID follows.
pub const STATUS_PREFIX: &str = "/idprov/status/";
/// Status URL template as published in the directory.
pub const STATUS_TEMPLATE: &str = "/idprov/status/{deviceID}";
/// DNS-SD service type (PROTOCOL §2).
pub const SERVICE_TYPE: &str = "_idprov._tcp.local.";
/// Largest request body a server accepts (PROTOCOL §5).
pub const MAX_BODY: usize = 64 * 1024;
/// Protocol version served in the directory.
pub const VERSION: &str = "1";
/// Name of the CSR extension (PROTOCOL §8).
pub const EXT_CSR: &str = "csr";
/// Certificate OU of administrators.
pub const OU_ADMIN: &str = "admin";
/// Certificate OU of plugins.
pub const OU_PLUGIN: &str = "plugin";
/// Certificate OU of provisioned devices.
pub const OU_DEVICE: &str = "iotdevice";

/// Protocol outcome carried with HTTP 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProvisionStatus {
    /// A certificate was issued.
    Approved,
    /// No usable OOB secret yet; ask again after `retrySec`.
    Waiting,
    /// The signature did not verify.
    Rejected,
}

impl ProvisionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionStatus::Approved => "Approved",
            ProvisionStatus::Waiting => "Waiting",
            ProvisionStatus::Rejected => "Rejected",
        }
    }
}

/// The directory's endpoint map, as the server publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Directory URL or path.
    pub directory: String,
    /// Status URL template with `{deviceID}`.
    pub status: String,
    /// OOB secret endpoint.
    #[serde(rename = "postOobSecret")]
    pub post_oob_secret: String,
    /// Provisioning request endpoint.
    #[serde(rename = "postProvisionRequest")]
    pub post_provision_request: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            directory: DIRECTORY_PATH.into(),
            status: STATUS_TEMPLATE.into(),
            post_oob_secret: OOB_PATH.into(),
            post_provision_request: PROVREQ_PATH.into(),
        }
    }
}

/// The default path prefix of the endpoints.
pub const DEFAULT_PATH_PREFIX: &str = "/idprov";

impl Endpoints {
    /// The four endpoints as paths under `prefix` (e.g. `/idprov`, the
    /// default; `""` puts them at the root).
    pub fn under(prefix: &str) -> Self {
        let p = prefix.trim_end_matches('/');
        Endpoints {
            directory: format!("{p}/directory"),
            status: format!("{p}/status/{{deviceID}}"),
            post_oob_secret: format!("{p}/oobsecret"),
            post_provision_request: format!("{p}/provreq"),
        }
    }

    /// The status path up to the device ID.
    pub fn status_prefix(&self) -> &str {
        self.status.trim_end_matches("{deviceID}")
    }
}

/// `GET /idprov/directory` response as served by this project (PROTOCOL §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryMessage {
    /// Endpoint map.
    pub endpoints: Endpoints,
    /// CA certificate PEM.
    #[serde(rename = "caCert")]
    pub ca_cert: String,
    /// Protocol version.
    pub version: String,
    /// Other services by name.
    pub services: BTreeMap<String, String>,
    /// Optional features (this project's addition, PROTOCOL §8).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// `POST /idprov/oobsecret` body (PROTOCOL §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OobSecretMessage {
    /// The device the secret is for.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// The secret itself.
    #[serde(rename = "oobSecret")]
    pub oob_secret: String,
    /// RFC 3339 expiry, or empty for the default life.
    #[serde(rename = "validUntil", default)]
    pub valid_until: String,
}

/// `POST /idprov/provreq` body (PROTOCOL §5), fields in wire order.
///
/// The one declaration of the request's shape: senders fill it in and sign
/// it, receivers read it. Every member may be absent when read, as the Go
/// reference reads it (an absent member is empty); whether an empty member
/// is acceptable is validation's judgement, not the parser's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionRequest {
    /// Device ID (PROTOCOL §5 syntax).
    #[serde(rename = "deviceID", default)]
    pub device_id: String,
    /// The device's IP address as text.
    #[serde(default)]
    pub ip: String,
    /// MAC address text, may be empty.
    #[serde(default)]
    pub mac: String,
    /// SubjectPublicKeyInfo PEM.
    #[serde(rename = "publicKeyPEM", default)]
    pub public_key_pem: String,
    /// PKCS#10 CSR PEM, only to servers with the `csr` extension.
    #[serde(rename = "csrPEM", skip_serializing_if = "Option::is_none", default)]
    pub csr_pem: Option<String>,
    /// base64 HMAC tag.
    #[serde(default)]
    pub signature: String,
}

/// `POST /idprov/provreq` response (PROTOCOL §5), fields in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionResponse {
    /// Recommended seconds until renewal (Approved) or retry (Waiting).
    #[serde(rename = "retrySec", skip_serializing_if = "is_zero", default)]
    pub retry_sec: u64,
    /// Protocol outcome.
    pub status: ProvisionStatus,
    /// CA certificate PEM.
    #[serde(rename = "caCert", default)]
    pub ca_cert: String,
    /// Issued certificate PEM, empty unless Approved.
    #[serde(rename = "clientCert", default)]
    pub client_cert: String,
    /// base64 HMAC tag, or empty.
    #[serde(default)]
    pub signature: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `GET /idprov/status/{deviceID}` response (PROTOCOL §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessage {
    /// Device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// `Approved` or `Waiting`.
    pub status: ProvisionStatus,
    /// CA certificate PEM.
    #[serde(rename = "caCert", default)]
    pub ca_cert: String,
    /// Latest issued certificate, PEM, or empty.
    #[serde(rename = "clientCert", default)]
    pub client_cert: String,
}

/// A message with a top-level `signature` member.
pub trait Signed: Serialize {
    /// Mutable access to the signature field.
    fn signature_mut(&mut self) -> &mut String;

    /// Signs the message in place with `key` and returns the exact bytes
    /// to send: compact, Go-escaped, fields in wire order.
    fn sign_with_key(&mut self, key: &[u8]) -> Vec<u8> {
        self.signature_mut().clear();
        let mut out = to_go_json(self);
        let tag = sign::tag_b64(key, &out);
        // `signature` is the last member: splice the tag in rather than
        // serialising again (the bytes are identical either way).
        if out.ends_with(br#""signature":""}"#) {
            out.truncate(out.len() - 2);
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(b"\"}");
            *self.signature_mut() = tag;
            out
        } else {
            *self.signature_mut() = tag;
            to_go_json(self)
        }
    }

    /// Signs with the OOB secret under the given key variant.
    fn sign(&mut self, secret: &str, variant: KeyVariant) -> Vec<u8> {
        self.sign_with_key(&variant.key(secret))
    }

    /// Serialises with an empty signature (Waiting/Rejected responses).
    fn unsigned(&mut self) -> Vec<u8> {
        self.signature_mut().clear();
        to_go_json(self)
    }
}

impl Signed for ProvisionRequest {
    fn signature_mut(&mut self) -> &mut String {
        &mut self.signature
    }
}

impl Signed for ProvisionResponse {
    fn signature_mut(&mut self) -> &mut String {
        &mut self.signature
    }
}

/// Body of every error answer (4xx/5xx) of this project's server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// One-line reason.
    pub error: String,
}

/// Verifies a provisioning request the way the Go reference does: parse,
/// re-serialise in Go's field order with `signature` empty, then compare.
/// Used to report which method an implementation evidently uses.
pub fn verify_reserialized_request(doc: &[u8], key: &[u8]) -> Result<(), SignatureError> {
    let mut canon: ProvisionRequest = serde_json::from_slice(doc)
        .map_err(|_| SignatureError::Json(super::json::ScanError::Syntax(0)))?;
    let signature = std::mem::take(&mut canon.signature);
    canon.csr_pem = None;
    let blanked = sign::Blanked {
        signing_input: canon.unsigned(),
        signature,
    };
    sign::verify_tag(&blanked, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_field_order_matches_go() {
        let mut r = ProvisionRequest {
            device_id: "d".into(),
            ip: "127.0.0.1".into(),
            mac: String::new(),
            public_key_pem: "K".into(),
            csr_pem: None,
            signature: String::new(),
        };
        let bytes = r.sign("s", KeyVariant::Raw);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(
            r#"{"deviceID":"d","ip":"127.0.0.1","mac":"","publicKeyPEM":"K","signature":""#
        ));
        assert!(sign::verify_raw(text.as_bytes(), b"s").is_ok());
    }

    #[test]
    fn response_omits_zero_retry() {
        let mut r = ProvisionResponse {
            retry_sec: 0,
            status: ProvisionStatus::Waiting,
            ca_cert: String::new(),
            client_cert: String::new(),
            signature: String::new(),
        };
        assert_eq!(
            r.unsigned(),
            br#"{"status":"Waiting","caCert":"","clientCert":"","signature":""}"#.to_vec()
        );
        r.retry_sec = 5;
        assert!(String::from_utf8(r.unsigned())
            .unwrap()
            .starts_with(r#"{"retrySec":5,"#));
    }
}

//! `mitm.json`: provisioning responses a device may receive → accept or
//! refuse (PROTOCOL §6, §9 rule 3).

use super::{ed25519_key, fixed_now, note, rfc3339, Expected, Ids, Tally, VectorError, VectorFile};
use crate::client::check_certificate;
use crate::core::messages::{ProvisionResponse, ProvisionStatus, Signed};
use crate::core::sign::{self, KeyVariant};
use crate::pki::{cert_der_from_pem, CertAuthority, DeviceCertOptions, DevicePublicKey};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// A group of responses to one device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MitmGroup {
    /// `ProvisionResponse`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The device's ID.
    pub device_id: String,
    /// The device's OOB secret.
    pub secret: String,
    /// The device's public key (sent in its request).
    pub device_public_key_pem: String,
    /// The CA the device pinned.
    pub pinned_ca_pem: String,
    /// The moment the response arrives (RFC 3339).
    pub now: String,
    /// Cases.
    pub tests: Vec<MitmTest>,
}

/// One response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MitmTest {
    /// Stable id.
    pub tc_id: u32,
    /// What it checks.
    pub comment: String,
    /// Kinds of bug.
    pub flags: Vec<String>,
    /// Rules of docs/PROTOCOL.md the case checks (from its group and flags).
    #[serde(default)]
    pub rules: Vec<String>,
    /// The response body as received.
    pub response: String,
    /// Valid: the device accepts the certificate; invalid: it refuses.
    pub result: Expected,
}

/// Whether a device accepts `body` (PROTOCOL §9 rule 3).
pub(super) fn device_accepts(g: &MitmGroup, body: &str) -> Result<(), String> {
    let now = OffsetDateTime::parse(&g.now, &time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let r: ProvisionResponse =
        serde_json::from_str(body).map_err(|e| format!("not a response: {e}"))?;
    if r.status != ProvisionStatus::Approved {
        return Err(format!("status {}", r.status.as_str()));
    }
    sign::verify_raw(body.as_bytes(), g.secret.as_bytes())
        .map_err(|e| format!("signature: {e}"))?;
    let ca = cert_der_from_pem(&g.pinned_ca_pem).map_err(|e| e.to_string())?;
    let key = DevicePublicKey::from_pem(&g.device_public_key_pem).map_err(|e| e.to_string())?;
    check_certificate(&r, &ca, &g.device_id, key.spki_der(), now)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Builds the file.
pub(super) fn generate() -> Result<VectorFile<MitmGroup>, VectorError> {
    use Expected::{Invalid, Valid};
    let now = fixed_now();
    let e = |x: crate::pki::PkiError| VectorError(x.to_string());
    let ca = CertAuthority::generate_from(ed25519_key(1)?, "idprov vectors CA", &[0x11; 8], now)
        .map_err(e)?;
    let other_ca =
        CertAuthority::generate_from(ed25519_key(2)?, "attacker CA", &[0x22; 8], now).map_err(e)?;
    let dev_kp = ed25519_key(3)?;
    let dev_key = DevicePublicKey::from_pem(&dev_kp.public_key_pem()).map_err(e)?;
    let other_key = DevicePublicKey::from_pem(&ed25519_key(4)?.public_key_pem()).map_err(e)?;
    let device = "dev-1";
    let secret = "oob-secret-1";
    let opts = |n: u8| DeviceCertOptions {
        serial: Some(vec![0x40, n, 0, 0, 0, 0, 0, 1]),
        ..DeviceCertOptions::default()
    };
    let issue =
        |issuer: &CertAuthority, cn: &str, key: &DevicePublicKey, at: OffsetDateTime, n: u8| {
            issuer
                .issue_device_with(cn, key, Duration::days(30), at, &opts(n))
                .map(|c| c.pem)
                .map_err(e)
        };
    let good_cert = issue(&ca, device, &dev_key, now, 1)?;
    let approved = |cert: &str, ca_pem: &str, retry: u64| ProvisionResponse {
        retry_sec: retry,
        status: ProvisionStatus::Approved,
        ca_cert: ca_pem.into(),
        client_cert: cert.into(),
        signature: String::new(),
    };
    let s = |b: Vec<u8>| String::from_utf8(b).unwrap_or_default();
    let mut ids = Ids::new();
    let mut tests = Vec::new();
    let mut add = |comment: &str, flags: &[&str], response: String, result: Expected| {
        tests.push(MitmTest {
            tc_id: ids.next(),
            comment: comment.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            rules: Vec::new(),
            response,
            result,
        });
    };
    let honest = s(approved(&good_cert, ca.cert_pem(), 864000).sign(secret, KeyVariant::Raw));
    add("honest Approved", &["Normal"], honest.clone(), Valid);
    add(
        "honest Approved in the Go reference's form (no retrySec, caCert \"\")",
        &["GoReference"],
        s(approved(&good_cert, "", 0).sign(secret, KeyVariant::Raw)),
        Valid,
    );
    add(
        "signed with another secret",
        &["WrongSecret"],
        s(approved(&good_cert, ca.cert_pem(), 864000).sign("another-secret", KeyVariant::Raw)),
        Invalid,
    );
    add(
        "signed with SHA-256(secret)",
        &["Sha256Key"],
        s(approved(&good_cert, ca.cert_pem(), 864000).sign(secret, KeyVariant::Sha256OfSecret)),
        Invalid,
    );
    let swapped_cert = issue(&ca, device, &dev_key, now, 2)?;
    add(
        "clientCert replaced after signing (by another valid certificate)",
        &["ModifiedField"],
        honest.replacen(
            &serde_json::to_string(&good_cert).unwrap_or_default(),
            &serde_json::to_string(&swapped_cert).unwrap_or_default(),
            1,
        ),
        Invalid,
    );
    add(
        "caCert replaced after signing",
        &["ModifiedField"],
        honest.replacen(
            &serde_json::to_string(ca.cert_pem()).unwrap_or_default(),
            &serde_json::to_string(other_ca.cert_pem()).unwrap_or_default(),
            1,
        ),
        Invalid,
    );
    add(
        "retrySec changed after signing",
        &["ModifiedField"],
        honest.replacen("864000", "1", 1),
        Invalid,
    );
    let mut waiting = approved(&good_cert, ca.cert_pem(), 864000);
    waiting.status = ProvisionStatus::Waiting;
    add(
        "status changed from Waiting to Approved after signing",
        &["ModifiedField"],
        s(waiting.sign(secret, KeyVariant::Raw)).replacen("\"Waiting\"", "\"Approved\"", 1),
        Invalid,
    );
    add(
        "signature member missing",
        &["MissingSignature"],
        honest.replacen(",\"signature\":", ",\"x\":", 1),
        Invalid,
    );
    add(
        "signature empty",
        &["EmptySignature"],
        s(approved(&good_cert, ca.cert_pem(), 864000).unsigned()),
        Invalid,
    );
    add(
        "certificate for another CN, correctly signed",
        &["WrongCn"],
        s(approved(
            &issue(&ca, "dev-2", &dev_key, now, 3)?,
            ca.cert_pem(),
            864000,
        )
        .sign(secret, KeyVariant::Raw)),
        Invalid,
    );
    add(
        "certificate for another key, correctly signed",
        &["WrongKey"],
        s(approved(
            &issue(&ca, device, &other_key, now, 4)?,
            ca.cert_pem(),
            864000,
        )
        .sign(secret, KeyVariant::Raw)),
        Invalid,
    );
    add(
        "certificate from a CA other than the pinned one, with that CA as caCert",
        &["WrongCa"],
        s(approved(
            &issue(&other_ca, device, &dev_key, now, 5)?,
            other_ca.cert_pem(),
            864000,
        )
        .sign(secret, KeyVariant::Raw)),
        Invalid,
    );
    add(
        "certificate from another CA, caCert empty",
        &["WrongCa"],
        s(
            approved(&issue(&other_ca, device, &dev_key, now, 6)?, "", 864000)
                .sign(secret, KeyVariant::Raw),
        ),
        Invalid,
    );
    add(
        "expired certificate",
        &["Expired"],
        s(approved(
            &issue(&ca, device, &dev_key, now - Duration::days(60), 7)?,
            ca.cert_pem(),
            864000,
        )
        .sign(secret, KeyVariant::Raw)),
        Invalid,
    );
    add(
        "certificate not yet valid",
        &["NotYetValid"],
        s(approved(
            &issue(&ca, device, &dev_key, now + Duration::days(2), 8)?,
            ca.cert_pem(),
            864000,
        )
        .sign(secret, KeyVariant::Raw)),
        Invalid,
    );
    let mut rejected = approved(&good_cert, ca.cert_pem(), 0);
    rejected.status = ProvisionStatus::Rejected;
    add(
        "Rejected carrying a certificate",
        &["CertOnRejected"],
        s(rejected.clone().unsigned()),
        Invalid,
    );
    add(
        "Rejected carrying a certificate, signed",
        &["CertOnRejected"],
        s(rejected.sign(secret, KeyVariant::Raw)),
        Invalid,
    );
    let mut waiting_cert = approved(&good_cert, ca.cert_pem(), 5);
    waiting_cert.status = ProvisionStatus::Waiting;
    add(
        "Waiting carrying a certificate",
        &["CertOnWaiting"],
        s(waiting_cert.unsigned()),
        Invalid,
    );
    add(
        "clientCert not a certificate",
        &["BadCertificate"],
        s(approved(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ca.cert_pem(),
            864000,
        )
        .sign(secret, KeyVariant::Raw)),
        Invalid,
    );
    let count = ids.count();
    for c in &mut tests {
        c.rules = super::rules_for("ProvisionResponse", &c.flags);
    }
    Ok(VectorFile {
        algorithm: "IDProv device-side response checks".into(),
        schema: "mitm_schema.json".into(),
        generator_version: env!("CARGO_PKG_VERSION").into(),
        protocol_sections: vec!["PROTOCOL §6".into(), "PROTOCOL §9".into()],
        header: vec![
            "A device with deviceId, secret and devicePublicKeyPem, having pinned pinnedCaPem, receives `response` at `now`.".into(),
            "It accepts only an Approved response whose signature verifies with its secret (raw blanking), whose clientCert chains to the pinned CA, has CN = deviceId, carries its public key and is valid now, and whose caCert, when not empty, is the pinned CA.".into(),
            "Valid: accept and store the certificate. Invalid: refuse and keep nothing. Certificates use Ed25519 so the file is reproducible byte for byte.".into(),
        ],
        notes: [
            ("Normal", note("Basic", "An honest answer.")),
            ("GoReference", note("Interop", "The Go reference's answer form.")),
            ("WrongSecret", note("Crypto", "Signed with a secret the device does not hold.")),
            ("Sha256Key", note("KnownDeviation", "Signed with SHA-256(secret).")),
            ("ModifiedField", note("Integrity", "A field changed after signing.")),
            ("MissingSignature", note("Integrity", "No signature member.")),
            ("EmptySignature", note("Integrity", "Empty signature on an Approved answer.")),
            ("WrongCn", note("Authentication", "A certificate for someone else.")),
            ("WrongKey", note("Authentication", "A certificate for a key the device does not hold.")),
            ("WrongCa", note("Authentication", "A certificate from a CA other than the pinned one.")),
            ("Expired", note("Validity", "An expired certificate.")),
            ("NotYetValid", note("Validity", "A certificate not valid yet.")),
            ("CertOnRejected", note("Logic", "A certificate attached to Rejected must be ignored.")),
            ("CertOnWaiting", note("Logic", "A certificate attached to Waiting must be ignored.")),
            ("BadCertificate", note("Parsing", "clientCert does not parse.")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        number_of_tests: count,
        test_groups: vec![MitmGroup {
            kind: "ProvisionResponse".into(),
            device_id: device.into(),
            secret: secret.into(),
            device_public_key_pem: dev_kp.public_key_pem(),
            pinned_ca_pem: ca.cert_pem().into(),
            now: rfc3339(now),
            tests,
        }],
    })
}

/// Checks the crate against the file.
pub(super) fn verify(f: &VectorFile<MitmGroup>) -> super::FileSummary {
    let mut t = Tally::new("mitm.json");
    for g in &f.test_groups {
        for c in &g.tests {
            t.check(c.tc_id, c.result, device_accepts(g, &c.response));
        }
    }
    t.s
}

//! `csr.json`: CSRs for the `csr` extension (PROTOCOL §8).

use super::{note, Expected, Ids, Tally, VectorError, VectorFile};
use crate::pki::{verify_csr, DevicePublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use serde::{Deserialize, Serialize};

/// A group of CSR cases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CsrGroup {
    /// `CsrVerify`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Cases.
    pub tests: Vec<CsrTest>,
}

/// One CSR case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CsrTest {
    /// Stable id.
    pub tc_id: u32,
    /// What it checks.
    pub comment: String,
    /// Kinds of bug.
    pub flags: Vec<String>,
    /// Rules of docs/PROTOCOL.md the case checks (from its group and flags).
    #[serde(default)]
    pub rules: Vec<String>,
    /// The request's publicKeyPEM.
    pub public_key_pem: String,
    /// The request's csrPEM.
    pub csr_pem: String,
    /// Valid: the server accepts and issues; invalid: it answers 400.
    pub result: Expected,
}

const P256_PUB: &str = include_str!("fixtures/p256.pub");
const P256_CSR: &str = include_str!("fixtures/p256.csr");
const P256_OTHER: &str = include_str!("fixtures/p256-other.pub");
const ED_PUB: &str = include_str!("fixtures/ed25519.pub");
const ED_CSR: &str = include_str!("fixtures/ed25519.csr");
const RSA_PUB: &str = include_str!("fixtures/rsa2048.pub");
const RSA_CSR: &str = include_str!("fixtures/rsa2048.csr");
const RSA1024_PUB: &str = include_str!("fixtures/rsa1024.pub");
const RSA1024_CSR: &str = include_str!("fixtures/rsa1024.csr");
const P384_PUB: &str = include_str!("fixtures/p384.pub");
const P384_CSR: &str = include_str!("fixtures/p384.csr");

use crate::pki::pem_encode as pem;

fn der(csr: &str) -> Result<Vec<u8>, VectorError> {
    CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
        .map(|d| d.to_vec())
        .map_err(|e| VectorError(format!("fixture CSR: {e:?}")))
}

/// Builds the file.
pub(super) fn generate() -> Result<VectorFile<CsrGroup>, VectorError> {
    use Expected::{Invalid, Valid};
    let mut ids = Ids::new();
    let mut tests = Vec::new();
    let mut add =
        |comment: &str, flags: &[&str], public_key_pem: &str, csr_pem: String, result: Expected| {
            tests.push(CsrTest {
                tc_id: ids.next(),
                comment: comment.into(),
                flags: flags.iter().map(|f| f.to_string()).collect(),
                rules: Vec::new(),
                public_key_pem: public_key_pem.into(),
                csr_pem,
                result,
            });
        };
    add(
        "P-256 CSR for the request's key",
        &["Normal"],
        P256_PUB,
        P256_CSR.into(),
        Valid,
    );
    add(
        "Ed25519 CSR for the request's key",
        &["Normal"],
        ED_PUB,
        ED_CSR.into(),
        Valid,
    );
    add(
        "RSA-2048 CSR for the request's key",
        &["Normal"],
        RSA_PUB,
        RSA_CSR.into(),
        Valid,
    );
    for (name, public, csr) in [
        ("P-256", P256_PUB, P256_CSR),
        ("Ed25519", ED_PUB, ED_CSR),
        ("RSA-2048", RSA_PUB, RSA_CSR),
    ] {
        let mut d = der(csr)?;
        if let Some(last) = d.last_mut() {
            *last ^= 0x01;
        }
        add(
            &format!(
                "{name} CSR whose self-signature does not verify (last signature byte flipped)"
            ),
            &["BadSignature"],
            public,
            pem("CERTIFICATE REQUEST", &d),
            Invalid,
        );
    }
    let mut d = der(P256_CSR)?;
    // Change a byte of the subject name (inside the signed part).
    if let Some(pos) = d.windows(10).position(|w| w == b"csr-device") {
        d[pos] = b'C';
    }
    add(
        "subject changed after signing",
        &["BadSignature"],
        P256_PUB,
        pem("CERTIFICATE REQUEST", &d),
        Invalid,
    );
    add(
        "CSR for another key than publicKeyPEM",
        &["KeyMismatch"],
        P256_OTHER,
        P256_CSR.into(),
        Invalid,
    );
    add(
        "CSR under the PEM label CERTIFICATE",
        &["WrongLabel"],
        P256_PUB,
        P256_CSR.replace("CERTIFICATE REQUEST", "CERTIFICATE"),
        Invalid,
    );
    add(
        "CSR under the PEM label NEW CERTIFICATE REQUEST (old OpenSSL)",
        &["WrongLabel"],
        P256_PUB,
        P256_CSR.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"),
        Expected::Acceptable,
    );
    let full = der(P256_CSR)?;
    add(
        "DER truncated by 10 bytes",
        &["Truncated"],
        P256_PUB,
        pem("CERTIFICATE REQUEST", &full[..full.len() - 10]),
        Invalid,
    );
    let mut trailing = full.clone();
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    add(
        "trailing bytes after the DER",
        &["TrailingData"],
        P256_PUB,
        pem("CERTIFICATE REQUEST", &trailing),
        Invalid,
    );
    add(
        "not PEM at all",
        &["WrongLabel"],
        P256_PUB,
        "csr".into(),
        Invalid,
    );
    add(
        "P-384 key and CSR (only P-256, Ed25519 and RSA ≥ 2048 are issued for)",
        &["UnsupportedAlgorithm"],
        P384_PUB,
        P384_CSR.into(),
        Invalid,
    );
    add(
        "RSA-1024 key and CSR",
        &["WeakKey"],
        RSA1024_PUB,
        RSA1024_CSR.into(),
        Invalid,
    );
    let count = ids.count();
    for c in &mut tests {
        c.rules = super::rules_for("CsrVerify", &c.flags);
    }
    Ok(VectorFile {
        algorithm: "IDProv CSR extension".into(),
        schema: "csr_schema.json".into(),
        generator_version: env!("CARGO_PKG_VERSION").into(),
        protocol_sections: vec!["PROTOCOL §5".into(), "PROTOCOL §8".into()],
        header: vec![
            "A provisioning request carries publicKeyPEM and csrPEM. The server verifies the CSR's self-signature and that its SubjectPublicKeyInfo equals publicKeyPEM's, and that the key is of a supported kind.".into(),
            "Valid: the server accepts the pair. Invalid: it answers 400. Acceptable: either.".into(),
        ],
        notes: [
            ("Normal", note("Basic", "A correct CSR.")),
            ("BadSignature", note("Crypto", "The CSR's signature does not cover what it says: no proof of possession.")),
            ("KeyMismatch", note("Crypto", "The CSR proves possession of a different key.")),
            ("WrongLabel", note("Parsing", "PEM label other than CERTIFICATE REQUEST.")),
            ("Truncated", note("Parsing", "Cut-off DER.")),
            ("TrailingData", note("Parsing", "Bytes after the DER structure.")),
            ("UnsupportedAlgorithm", note("Policy", "A key type the server does not issue for.")),
            ("WeakKey", note("Policy", "RSA below 2048 bits.")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        number_of_tests: count,
        test_groups: vec![CsrGroup { kind: "CsrVerify".into(), tests }],
    })
}

/// Checks the crate against the file.
pub(super) fn verify(f: &VectorFile<CsrGroup>) -> super::FileSummary {
    let mut t = Tally::new("csr.json");
    for g in &f.test_groups {
        for c in &g.tests {
            let got = DevicePublicKey::from_pem(&c.public_key_pem)
                .and_then(|k| verify_csr(&c.csr_pem, &k))
                .map_err(|e| e.to_string());
            t.check(c.tc_id, c.result, got);
        }
    }
    t.s
}

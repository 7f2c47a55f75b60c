//! Language-neutral test vectors (`vectors/*.json`), in the manner of
//! Project Wycheproof: a header, flags with descriptions, test groups of
//! cases with stable `tcId`s and a `result` of valid / invalid / acceptable.
//! `generate` writes them deterministically (fixed keys, seeds and clock);
//! `verify` checks this crate's implementation against every case.

mod csr;
mod directory;
mod discovery;
mod hmac;
mod mitm;
mod renewal;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Expected outcome of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// Must be accepted / produce the given output.
    Valid,
    /// Must be refused.
    Invalid,
    /// Either is conformant.
    Acceptable,
}

/// What a flag means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Note {
    /// Kind of bug the flag catches.
    pub bug_type: String,
    /// Explanation.
    pub description: String,
}

/// A vector file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VectorFile<G> {
    /// What is tested.
    pub algorithm: String,
    /// JSON Schema file name in `schemas/`.
    pub schema: String,
    /// Version of the generator.
    pub generator_version: String,
    /// PROTOCOL sections followed.
    pub protocol_sections: Vec<String>,
    /// How to use the file.
    pub header: Vec<String>,
    /// Flags used, with descriptions.
    pub notes: BTreeMap<String, Note>,
    /// Number of tests in all groups.
    pub number_of_tests: usize,
    /// The groups.
    pub test_groups: Vec<G>,
}

/// A check of one case failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The case.
    pub tc_id: u32,
    /// What differed.
    pub detail: String,
}

/// Result of verifying one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// File name.
    pub file: String,
    /// Cases by expected result.
    pub valid: usize,
    /// Invalid cases.
    pub invalid: usize,
    /// Acceptable cases.
    pub acceptable: usize,
    /// Cases where the implementation disagreed.
    pub mismatches: Vec<Mismatch>,
}

/// Why generation or verification could not run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VectorError(pub String);

pub(crate) fn note(bug: &str, desc: &str) -> Note {
    Note {
        bug_type: bug.into(),
        description: desc.into(),
    }
}

/// Authored files copied verbatim into the vectors folder.
const STATIC_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../vectors/README.md")),
    (
        "examples/check_oob_hmac.py",
        include_str!("../../vectors/examples/check_oob_hmac.py"),
    ),
    (
        "schemas/oob_hmac_schema.json",
        include_str!("../../vectors/schemas/oob_hmac_schema.json"),
    ),
    (
        "schemas/discovery_schema.json",
        include_str!("../../vectors/schemas/discovery_schema.json"),
    ),
    (
        "schemas/directory_schema.json",
        include_str!("../../vectors/schemas/directory_schema.json"),
    ),
    (
        "schemas/csr_schema.json",
        include_str!("../../vectors/schemas/csr_schema.json"),
    ),
    (
        "schemas/renewal_schema.json",
        include_str!("../../vectors/schemas/renewal_schema.json"),
    ),
    (
        "schemas/mitm_schema.json",
        include_str!("../../vectors/schemas/mitm_schema.json"),
    ),
];

/// The generated files: (name, pretty JSON).
pub fn generate_all() -> Result<Vec<(String, String)>, VectorError> {
    fn pretty<T: Serialize>(v: &T) -> Result<String, VectorError> {
        serde_json::to_string_pretty(v)
            .map(|s| s + "\n")
            .map_err(|e| VectorError(e.to_string()))
    }
    Ok(vec![
        ("oob_hmac.json".into(), pretty(&hmac::generate()?)?),
        ("discovery.json".into(), pretty(&discovery::generate())?),
        ("directory.json".into(), pretty(&directory::generate())?),
        ("csr.json".into(), pretty(&csr::generate()?)?),
        ("renewal.json".into(), pretty(&renewal::generate()?)?),
        ("mitm.json".into(), pretty(&mitm::generate()?)?),
    ])
}

/// Writes every vector file and the authored files into `dir`.
pub fn generate(dir: &Path) -> Result<Vec<String>, VectorError> {
    let mut written = Vec::new();
    let mut files: Vec<(String, String)> = STATIC_FILES
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    files.extend(generate_all()?);
    for (name, text) in files {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| VectorError(format!("{}: {e}", parent.display())))?;
        }
        crate::fsutil::write_atomic(&path, text.as_bytes(), crate::fsutil::MODE_PUBLIC)
            .map_err(|e| VectorError(format!("{}: {e}", path.display())))?;
        written.push(name);
    }
    Ok(written)
}

fn load<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, VectorError> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| VectorError(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| VectorError(format!("{}: {e}", path.display())))
}

/// Verifies this crate's implementation against every vector file in `dir`.
pub fn verify(dir: &Path) -> Result<Vec<FileSummary>, VectorError> {
    Ok(vec![
        hmac::verify(&load(dir, "oob_hmac.json")?),
        discovery::verify(&load(dir, "discovery.json")?),
        directory::verify(&load(dir, "directory.json")?),
        csr::verify(&load(dir, "csr.json")?),
        renewal::verify(&load(dir, "renewal.json")?),
        mitm::verify(&load(dir, "mitm.json")?),
    ])
}

/// Counts expected results and records mismatches; `got_valid` is whether
/// the implementation accepted (for acceptable cases any answer passes).
pub(crate) struct Tally {
    pub(crate) s: FileSummary,
}

impl Tally {
    pub(crate) fn new(file: &str) -> Self {
        Tally {
            s: FileSummary {
                file: file.into(),
                valid: 0,
                invalid: 0,
                acceptable: 0,
                mismatches: Vec::new(),
            },
        }
    }

    pub(crate) fn check(&mut self, tc_id: u32, expected: Expected, got: Result<(), String>) {
        match expected {
            Expected::Valid => {
                self.s.valid += 1;
                if let Err(e) = got {
                    self.s.mismatches.push(Mismatch {
                        tc_id,
                        detail: format!("expected valid, implementation refused: {e}"),
                    });
                }
            }
            Expected::Invalid => {
                self.s.invalid += 1;
                if got.is_ok() {
                    self.s.mismatches.push(Mismatch {
                        tc_id,
                        detail: "expected invalid, implementation accepted".into(),
                    });
                }
            }
            Expected::Acceptable => self.s.acceptable += 1,
        }
    }

    /// Counts a case without judging it (the caller records a mismatch).
    pub(crate) fn count(&mut self, expected: Expected) {
        match expected {
            Expected::Valid => self.s.valid += 1,
            Expected::Invalid => self.s.invalid += 1,
            Expected::Acceptable => self.s.acceptable += 1,
        }
    }

    pub(crate) fn mismatch(&mut self, tc_id: u32, detail: String) {
        self.s.mismatches.push(Mismatch { tc_id, detail });
    }
}

/// Renders the per-file summary that `idprov vectors verify` prints.
pub fn summary_text(s: &[FileSummary]) -> String {
    let mut out = String::new();
    for f in s {
        out.push_str(&format!(
            "{:<16} {:>3} valid {:>3} invalid {:>3} acceptable  {}\n",
            f.file,
            f.valid,
            f.invalid,
            f.acceptable,
            if f.mismatches.is_empty() {
                "ok".to_string()
            } else {
                format!("{} MISMATCHES", f.mismatches.len())
            }
        ));
        for m in &f.mismatches {
            out.push_str(&format!("  tcId {}: {}\n", m.tc_id, m.detail));
        }
    }
    out
}

/// Assigns consecutive tcIds from 1 across a file's groups.
pub(crate) struct Ids(u32);

impl Ids {
    pub(crate) fn new() -> Self {
        Ids(0)
    }
    pub(crate) fn next(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
    pub(crate) fn count(&self) -> usize {
        self.0 as usize
    }
}

/// A deterministic Ed25519 key from a one-byte seed label.
pub(crate) fn ed25519_key(label: u8) -> Result<rcgen::KeyPair, VectorError> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[label; 32]);
    rcgen::KeyPair::try_from(der.as_slice()).map_err(|e| VectorError(e.to_string()))
}

/// The fixed clock of every vector.
pub(crate) fn fixed_now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-28 06:00 UTC)
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The rules of docs/PROTOCOL.md a vector case checks, from its group type
/// and its flags.
pub(crate) fn rules_for(group: &str, flags: &[String]) -> Vec<String> {
    let has = |f: &str| flags.iter().any(|x| x == f);
    let mut r: Vec<&str> = match group {
        "CsrVerify" => vec!["csr.verify"],
        "DirectoryParse" => vec!["directory.shape"],
        "TxtToUrl" => vec!["discovery.client-keys"],
        "ProvisionResponse" => vec!["client.verify-approved"],
        "RequestVerify" => vec!["hmac.signing-input", "hmac.raw-blanking"],
        "ResponseVerify" => vec!["hmac.response-signed"],
        "GoReference" => vec!["hmac.raw-key", "hmac.signing-input"],
        "RequestSign" => vec!["hmac.signing-input", "client.signs"],
        "PeerCertificateDecision" => vec!["decision.renewal", "decision.no-authority"],
        _ => vec![],
    };
    let extra: &[(&str, &str)] = &[
        ("WeakKey", "provreq.key"),
        ("UnsupportedAlgorithm", "provreq.key"),
        ("NoCa", "directory.client-ca-forms"),
        ("NoCa", "client.no-ca"),
        ("Base64Ca", "directory.client-ca-forms"),
        ("BadCa", "directory.client-ca-forms"),
        ("UrlEndpoints", "directory.client-endpoint-forms"),
        ("BadEndpoint", "directory.client-endpoint-forms"),
        ("MissingEndpoint", "directory.client-endpoint-forms"),
        ("LegacyKey", "directory.client-tolerance"),
        ("Version", "directory.client-tolerance"),
        ("UnknownField", "directory.client-tolerance"),
        ("MissingPath", "discovery.txt-path"),
        ("BothKeys", "discovery.txt-path-key"),
        ("CertOnRejected", "client.untrusted-hints"),
        ("CertOnWaiting", "client.untrusted-hints"),
        ("Sha256Key", "hmac.raw-key"),
        ("NonAsciiSecret", "hmac.raw-key"),
        ("LongSecret", "hmac.raw-key"),
        ("EmptyKey", "hmac.response-empty-key"),
        ("ModifiedField", "hmac.signing-input"),
        ("Administrator", "decision.admin"),
    ];
    for (flag, rule) in extra {
        if has(flag) {
            r.push(rule);
        }
    }
    // Directory groups: the LegacyKey flag in discovery means the TXT key.
    if group == "TxtToUrl" {
        r.retain(|x| *x != "directory.client-tolerance");
        if has("LegacyKey") {
            r.push("discovery.txt-path-key");
        }
    }
    let mut out: Vec<String> = Vec::new();
    for x in r {
        if !out.iter().any(|o| o == x) {
            out.push(x.to_string());
        }
    }
    out
}

#[cfg(test)]
mod rules_tests {
    #[test]
    fn every_vector_case_names_known_rules() {
        let known: Vec<String> = crate::spec::rules()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        for (name, text) in super::generate_all().unwrap() {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            for g in v["testGroups"].as_array().unwrap() {
                for t in g["tests"].as_array().unwrap() {
                    let rules = t["rules"].as_array().unwrap();
                    assert!(!rules.is_empty(), "{name} tcId {} names no rule", t["tcId"]);
                    for r in rules {
                        assert!(
                            known.iter().any(|k| k == r.as_str().unwrap()),
                            "{name}: {r}"
                        );
                    }
                }
            }
        }
    }
}

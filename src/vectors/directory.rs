//! `directory.json`: directory documents → normalised endpoints and CA
//! (PROTOCOL §3, §10).

use super::{note, Expected, Ids, Tally, VectorFile};
use crate::core::directory::{parse_directory, CaEncoding};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// A group of directory cases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DirectoryGroup {
    /// `DirectoryParse`.
    #[serde(rename = "type")]
    pub kind: String,
    /// URL the documents were fetched from.
    pub directory_url: String,
    /// Cases.
    pub tests: Vec<DirectoryTest>,
}

/// What a client must make of a valid document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DirectoryExpect {
    /// Absolute provisioning URL.
    pub post_provision_request: String,
    /// Absolute OOB URL, if any.
    pub post_oob_secret: Option<String>,
    /// Absolute status template, if any.
    pub status: Option<String>,
    /// CA PEM, or null when none is offered.
    pub ca_cert_pem: Option<String>,
    /// `pem`, `base64-pem` or `absent`.
    pub ca_encoding: String,
    /// Extensions.
    pub extensions: Vec<String>,
}

/// One directory case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DirectoryTest {
    /// Stable id.
    pub tc_id: u32,
    /// What it checks.
    pub comment: String,
    /// Kinds of bug.
    pub flags: Vec<String>,
    /// Rules of docs/PROTOCOL.md the case checks (from its group and flags).
    #[serde(default)]
    pub rules: Vec<String>,
    /// The document as served.
    pub document: String,
    /// Normalised result for valid cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<DirectoryExpect>,
    /// Expected result.
    pub result: Expected,
}

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n";
const URL: &str = "https://192.0.2.10:43776/idprov/directory";
const O: &str = "https://192.0.2.10:43776";

fn enc(e: CaEncoding) -> String {
    match e {
        CaEncoding::Pem => "pem",
        CaEncoding::Base64Pem => "base64-pem",
        CaEncoding::Absent => "absent",
    }
    .into()
}

/// Builds the file.
pub(super) fn generate() -> VectorFile<DirectoryGroup> {
    use Expected::{Invalid, Valid};
    let mut ids = Ids::new();
    let mut tests = Vec::new();
    let paths = r#""directory":"/idprov/directory","status":"/idprov/status/{deviceID}","postOobSecret":"/idprov/oobsecret","postProvisionRequest":"/idprov/provreq""#;
    let ca_json = serde_json::to_string(CA).unwrap_or_default();
    let doc = |eps: &str, rest: &str| format!(r#"{{"endpoints":{{{eps}}}{rest}}}"#);
    let std_expect = |ca: Option<&str>, e: &str, ext: &[&str]| DirectoryExpect {
        post_provision_request: format!("{O}/idprov/provreq"),
        post_oob_secret: Some(format!("{O}/idprov/oobsecret")),
        status: Some(format!("{O}/idprov/status/{{deviceID}}")),
        ca_cert_pem: ca.map(str::to_string),
        ca_encoding: e.into(),
        extensions: ext.iter().map(|s| s.to_string()).collect(),
    };
    let mut add = |comment: &str,
                   flags: &[&str],
                   document: String,
                   expected: Option<DirectoryExpect>,
                   result: Expected| {
        tests.push(DirectoryTest {
            tc_id: ids.next(),
            comment: comment.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            rules: Vec::new(),
            document,
            expected,
            result,
        });
    };
    add(
        "this project's form: paths, PEM caCert, extensions",
        &["Normal"],
        doc(
            paths,
            &format!(r#","caCert":{ca_json},"version":"1","services":{{}},"extensions":["csr"]"#),
        ),
        Some(std_expect(Some(CA), "pem", &["csr"])),
        Valid,
    );
    add(
        "the Go reference's form: caCert null (no CA offered)",
        &["GoReference", "NoCa"],
        doc(paths, r#","caCert":null,"version":"1","services":{}"#),
        Some(std_expect(None, "absent", &[])),
        Valid,
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(CA);
    add(
        "caCert as base64 of the PEM bytes (a Go byte slice)",
        &["Base64Ca"],
        doc(
            paths,
            &format!(r#","caCert":"{b64}","version":"1","services":{{}}"#),
        ),
        Some(std_expect(Some(CA), "base64-pem", &[])),
        Valid,
    );
    add(
        "caCert empty string",
        &["NoCa"],
        doc(paths, r#","caCert":"","version":"1""#),
        Some(std_expect(None, "absent", &[])),
        Valid,
    );
    add(
        "caCert member absent",
        &["NoCa"],
        doc(paths, r#","version":"1""#),
        Some(std_expect(None, "absent", &[])),
        Valid,
    );
    let urls = r#""directory":"https://192.0.2.10:43776/idprov/directory","status":"https://192.0.2.10:43776/idprov/status/{deviceID}","postOobSecret":"https://192.0.2.10:43776/idprov/oobsecret","postProvisionRequest":"https://192.0.2.10:43776/idprov/provreq""#;
    add(
        "endpoints as absolute https URLs",
        &["UrlEndpoints"],
        doc(urls, r#","version":"1""#),
        Some(std_expect(None, "absent", &[])),
        Valid,
    );
    let alias = r#""postOOB":"/idprov/oobsecret","postProvisionRequest":"/idprov/provreq","status":"/idprov/status/{deviceID}""#;
    add(
        "older key postOOB for the OOB endpoint",
        &["LegacyKey"],
        doc(alias, r#","version":"1""#),
        Some(std_expect(None, "absent", &[])),
        Valid,
    );
    add(
        "version 1.3",
        &["Version"],
        doc(paths, r#","version":"1.3""#),
        Some(std_expect(None, "absent", &[])),
        Valid,
    );
    add(
        "version as the number 1",
        &["Version"],
        doc(paths, r#","version":1"#),
        Some(std_expect(None, "absent", &[])),
        Valid,
    );
    add(
        "unknown members are ignored",
        &["UnknownField"],
        doc(paths, r#","version":"1","vendor":{"x":1}"#),
        Some(std_expect(None, "absent", &[])),
        Valid,
    );
    let only_prov = r#""postProvisionRequest":"/idprov/provreq""#;
    add(
        "only the provisioning endpoint",
        &["MissingEndpoint"],
        doc(only_prov, r#","version":"1""#),
        Some(DirectoryExpect {
            post_provision_request: format!("{O}/idprov/provreq"),
            post_oob_secret: None,
            status: None,
            ca_cert_pem: None,
            ca_encoding: "absent".into(),
            extensions: vec![],
        }),
        Valid,
    );
    add(
        "version 2",
        &["Version"],
        doc(paths, r#","version":"2""#),
        None,
        Invalid,
    );
    add(
        "version \"1.x\"",
        &["Version"],
        doc(paths, r#","version":"1.x""#),
        None,
        Invalid,
    );
    add("no version", &["Version"], doc(paths, ""), None, Invalid);
    add(
        "no endpoints object",
        &["MissingEndpoint"],
        r#"{"version":"1"}"#.into(),
        None,
        Invalid,
    );
    add(
        "no postProvisionRequest",
        &["MissingEndpoint"],
        doc(r#""directory":"/idprov/directory""#, r#","version":"1""#),
        None,
        Invalid,
    );
    add(
        "relative endpoint path",
        &["BadEndpoint"],
        doc(
            r#""postProvisionRequest":"idprov/provreq""#,
            r#","version":"1""#,
        ),
        None,
        Invalid,
    );
    add(
        "plain http endpoint",
        &["BadEndpoint"],
        doc(
            r#""postProvisionRequest":"http://192.0.2.10/idprov/provreq""#,
            r#","version":"1""#,
        ),
        None,
        Invalid,
    );
    add(
        "protocol-relative endpoint //host/path",
        &["BadEndpoint"],
        doc(
            r#""postProvisionRequest":"//evil.example/p""#,
            r#","version":"1""#,
        ),
        None,
        Invalid,
    );
    add(
        "endpoint of the wrong JSON type",
        &["BadEndpoint"],
        doc(r#""postProvisionRequest":7"#, r#","version":"1""#),
        None,
        Invalid,
    );
    add(
        "caCert neither PEM nor base64 PEM",
        &["BadCa"],
        doc(paths, r#","caCert":"hello","version":"1""#),
        None,
        Invalid,
    );
    add(
        "caCert base64 of something other than PEM",
        &["BadCa"],
        doc(paths, r#","caCert":"aGVsbG8=","version":"1""#),
        None,
        Invalid,
    );
    add(
        "caCert of the wrong JSON type",
        &["BadCa"],
        doc(paths, r#","caCert":42,"version":"1""#),
        None,
        Invalid,
    );
    add("not JSON", &["InvalidJson"], "<html>".into(), None, Invalid);
    add("a JSON array", &["InvalidJson"], "[]".into(), None, Invalid);
    let count = ids.count();
    for c in &mut tests {
        c.rules = super::rules_for("DirectoryParse", &c.flags);
    }
    VectorFile {
        algorithm: "IDProv directory".into(),
        schema: "directory_schema.json".into(),
        generator_version: env!("CARGO_PKG_VERSION").into(),
        protocol_sections: vec!["PROTOCOL §3".into(), "PROTOCOL §10".into()],
        header: vec![
            "A client fetched `document` from `directoryUrl`. Paths resolve against the directory URL's origin; absolute https URLs are used as they are.".into(),
            "caCert: PEM text, base64 of the PEM bytes, or null/absent/\"\" (no CA offered). version: \"1\", 1 or \"1.<digits>\".".into(),
            "Valid: the client must accept the document and derive `expected`. Invalid: it must refuse it.".into(),
        ],
        notes: [
            ("Normal", note("Basic", "This project's directory.")),
            ("GoReference", note("Interop", "As the Go reference serves it.")),
            ("NoCa", note("Compatibility", "No CA offered: a client needs a pre-provisioned one.")),
            ("Base64Ca", note("Compatibility", "caCert as base64 of the PEM bytes.")),
            ("UrlEndpoints", note("Compatibility", "Endpoints as absolute URLs.")),
            ("LegacyKey", note("Compatibility", "postOOB instead of postOobSecret.")),
            ("Version", note("Versioning", "Which versions a v1 client accepts.")),
            ("UnknownField", note("Compatibility", "Unknown members must be ignored.")),
            ("MissingEndpoint", note("EdgeCase", "Endpoints left out.")),
            ("BadEndpoint", note("Injection", "An endpoint that is not an https URL or absolute path.")),
            ("BadCa", note("Parsing", "A caCert that is neither PEM nor base64 of PEM.")),
            ("InvalidJson", note("Parsing", "Not a JSON object.")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        number_of_tests: count,
        test_groups: vec![DirectoryGroup { kind: "DirectoryParse".into(), directory_url: URL.into(), tests }],
    }
}

/// Checks the crate against the file.
pub(super) fn verify(f: &VectorFile<DirectoryGroup>) -> super::FileSummary {
    let mut t = Tally::new("directory.json");
    for g in &f.test_groups {
        for c in &g.tests {
            let got = parse_directory(c.document.as_bytes(), &g.directory_url)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    let got = DirectoryExpect {
                        post_provision_request: d.post_provision_request,
                        post_oob_secret: d.post_oob_secret,
                        status: d.status,
                        ca_cert_pem: d.ca_cert_pem,
                        ca_encoding: enc(d.ca_encoding),
                        extensions: d.extensions,
                    };
                    match &c.expected {
                        Some(want) if *want != got => Err(format!("derived {got:?}")),
                        _ => Ok(()),
                    }
                });
            t.check(c.tc_id, c.result, got);
        }
    }
    t.s
}

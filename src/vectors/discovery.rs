//! `discovery.json`: DNS-SD TXT/SRV/address records → directory URL (PROTOCOL §2).

use super::{note, Expected, Ids, Tally, VectorFile};
use crate::core::discovery::{directory_url, TxtEntry};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A group of discovery cases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DiscoveryGroup {
    /// `TxtToUrl`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Cases.
    pub tests: Vec<DiscoveryTest>,
}

/// One TXT attribute; `valueHex` is set instead of `value` for non-UTF-8
/// bytes; both absent means a key without `=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct TxtAttr {
    /// Key.
    pub key: String,
    /// Value text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Value bytes in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
}

/// One discovery case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DiscoveryTest {
    /// Stable id.
    pub tc_id: u32,
    /// What it checks.
    pub comment: String,
    /// Kinds of bug.
    pub flags: Vec<String>,
    /// Rules of docs/PROTOCOL.md the case checks (from its group and flags).
    #[serde(default)]
    pub rules: Vec<String>,
    /// TXT attributes as received.
    pub txt: Vec<TxtAttr>,
    /// A/AAAA addresses.
    pub addresses: Vec<String>,
    /// SRV port.
    pub port: u16,
    /// The directory URL a client must build (valid / acceptable cases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Expected result.
    pub result: Expected,
}

fn attr(k: &str, v: Option<&str>) -> TxtAttr {
    TxtAttr {
        key: k.into(),
        value: v.map(str::to_string),
        value_hex: None,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn entries(t: &[TxtAttr]) -> Vec<TxtEntry> {
    t.iter()
        .map(|a| {
            let v = match (&a.value, &a.value_hex) {
                (Some(v), _) => Some(v.as_bytes().to_vec()),
                (None, Some(h)) => Some(unhex(h)),
                (None, None) => None,
            };
            (a.key.as_bytes().to_vec(), v)
        })
        .collect()
}

/// Builds the file.
pub(super) fn generate() -> VectorFile<DiscoveryGroup> {
    use Expected::{Acceptable, Invalid, Valid};
    let mut ids = Ids::new();
    let mut tests = Vec::new();
    let v4 = || vec!["192.0.2.10".to_string()];
    let mut add = |comment: &str,
                   flags: &[&str],
                   txt: Vec<TxtAttr>,
                   addresses: Vec<String>,
                   port: u16,
                   url: Option<&str>,
                   result: Expected| {
        tests.push(DiscoveryTest {
            tc_id: ids.next(),
            comment: comment.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            rules: Vec::new(),
            txt,
            addresses,
            port,
            url: url.map(str::to_string),
            result,
        });
    };
    let p = Some("/idprov/directory");
    add(
        "TXT path, IPv4, default port",
        &["Normal"],
        vec![attr("path", p)],
        v4(),
        43776,
        Some("https://192.0.2.10:43776/idprov/directory"),
        Valid,
    );
    add(
        "legacy TXT key `directory`",
        &["LegacyKey"],
        vec![attr("directory", p)],
        v4(),
        43776,
        Some("https://192.0.2.10:43776/idprov/directory"),
        Valid,
    );
    add(
        "both keys: `path` wins",
        &["BothKeys"],
        vec![attr("directory", Some("/old")), attr("path", Some("/new"))],
        v4(),
        43776,
        Some("https://192.0.2.10:43776/new"),
        Valid,
    );
    add(
        "upper-case key (RFC 6763 §6.4: keys are case-insensitive)",
        &["KeyCase"],
        vec![attr("PATH", p)],
        v4(),
        43776,
        Some("https://192.0.2.10:43776/idprov/directory"),
        Valid,
    );
    add(
        "other attributes beside path",
        &["Normal"],
        vec![
            attr("txtvers", Some("1")),
            attr("path", p),
            attr("model", Some("x")),
        ],
        v4(),
        43776,
        Some("https://192.0.2.10:43776/idprov/directory"),
        Valid,
    );
    add(
        "a custom path",
        &["Normal"],
        vec![attr("path", Some("/custom/dir"))],
        v4(),
        8443,
        Some("https://192.0.2.10:8443/custom/dir"),
        Valid,
    );
    add(
        "no path attribute: the default path may be used, or the service ignored",
        &["MissingPath"],
        vec![attr("txtvers", Some("1"))],
        v4(),
        43776,
        Some("https://192.0.2.10:43776/idprov/directory"),
        Acceptable,
    );
    add(
        "no TXT attributes at all",
        &["MissingPath"],
        vec![],
        v4(),
        43776,
        Some("https://192.0.2.10:43776/idprov/directory"),
        Acceptable,
    );
    add(
        "empty value `path=`",
        &["EmptyValue"],
        vec![attr("path", Some(""))],
        v4(),
        43776,
        None,
        Invalid,
    );
    add(
        "key without `=` (boolean attribute)",
        &["EmptyValue"],
        vec![attr("path", None)],
        v4(),
        43776,
        None,
        Invalid,
    );
    add(
        "relative path",
        &["BadPath"],
        vec![attr("path", Some("idprov/directory"))],
        v4(),
        43776,
        None,
        Invalid,
    );
    add(
        "path with a space",
        &["BadPath"],
        vec![attr("path", Some("/idprov directory"))],
        v4(),
        43776,
        None,
        Invalid,
    );
    add(
        "path starting with // (would become an authority)",
        &["BadPath"],
        vec![attr("path", Some("//evil.example/x"))],
        v4(),
        43776,
        None,
        Invalid,
    );
    add(
        "path with a control character",
        &["BadPath"],
        vec![attr("path", Some("/idprov\u{1}"))],
        v4(),
        43776,
        None,
        Invalid,
    );
    add(
        "value not UTF-8",
        &["NotUtf8"],
        vec![TxtAttr {
            key: "path".into(),
            value: None,
            value_hex: Some("2fff6964".into()),
        }],
        v4(),
        43776,
        None,
        Invalid,
    );
    add(
        "value longer than 255 bytes",
        &["TooLong"],
        vec![attr("path", Some(&format!("/{}", "a".repeat(300))))],
        v4(),
        43776,
        None,
        Invalid,
    );
    add(
        "IPv6 address in brackets",
        &["Ipv6"],
        vec![attr("path", p)],
        vec!["2001:db8::10".into()],
        43776,
        Some("https://[2001:db8::10]:43776/idprov/directory"),
        Valid,
    );
    add(
        "IPv4 and IPv6: either may be used (the reference client takes IPv4)",
        &["Ipv6"],
        vec![attr("path", p)],
        vec!["2001:db8::10".into(), "192.0.2.10".into()],
        43776,
        Some("https://192.0.2.10:43776/idprov/directory"),
        Acceptable,
    );
    add(
        "loopback IPv6",
        &["Ipv6"],
        vec![attr("path", p)],
        vec!["::1".into()],
        1,
        Some("https://[::1]:1/idprov/directory"),
        Valid,
    );
    add(
        "SRV port 0",
        &["ZeroPort"],
        vec![attr("path", p)],
        v4(),
        0,
        None,
        Invalid,
    );
    add(
        "no address records",
        &["NoAddress"],
        vec![attr("path", p)],
        vec![],
        43776,
        None,
        Invalid,
    );
    let count = ids.count();
    for c in &mut tests {
        c.rules = super::rules_for("TxtToUrl", &c.flags);
    }
    VectorFile {
        algorithm: "IDProv DNS-SD discovery".into(),
        schema: "discovery_schema.json".into(),
        generator_version: env!("CARGO_PKG_VERSION").into(),
        protocol_sections: vec!["PROTOCOL §2".into()],
        header: vec![
            "Service _idprov._tcp.local.: from the TXT attributes, the SRV port and the A/AAAA addresses, build https://<address>:<port><path>.".into(),
            "Valid: the client must build exactly `url`. Invalid: the client must not use the service. Acceptable: either, and if a URL is built it is `url`.".into(),
        ],
        notes: [
            ("Normal", note("Basic", "An ordinary advertisement.")),
            ("LegacyKey", note("Compatibility", "One revision of the standard names the key `directory`.")),
            ("BothKeys", note("Compatibility", "`path` takes precedence over the legacy key.")),
            ("KeyCase", note("Parsing", "TXT keys compare case-insensitively (RFC 6763 §6.4).")),
            ("MissingPath", note("EdgeCase", "No path attribute.")),
            ("EmptyValue", note("Parsing", "A path attribute with no usable value.")),
            ("BadPath", note("Injection", "A value that is not an absolute URL path; using it can point the client elsewhere.")),
            ("NotUtf8", note("Encoding", "Bytes that are not UTF-8.")),
            ("TooLong", note("ResourceLimit", "Longer than one DNS character-string.")),
            ("Ipv6", note("Encoding", "IPv6 addresses go in brackets.")),
            ("ZeroPort", note("EdgeCase", "Port 0 is not a service port.")),
            ("NoAddress", note("EdgeCase", "Nothing to connect to.")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        number_of_tests: count,
        test_groups: vec![DiscoveryGroup { kind: "TxtToUrl".into(), tests }],
    }
}

/// Checks the crate against the file.
pub(super) fn verify(f: &VectorFile<DiscoveryGroup>) -> super::FileSummary {
    let mut t = Tally::new("discovery.json");
    for g in &f.test_groups {
        for c in &g.tests {
            let addrs: Vec<IpAddr> = c.addresses.iter().filter_map(|a| a.parse().ok()).collect();
            let got = directory_url(&addrs, c.port, &entries(&c.txt));
            let res = match (&got, &c.url) {
                (Ok(u), Some(want)) if u != want => Err(format!("built {u}, expected {want}")),
                (Ok(_), _) => Ok(()),
                (Err(e), _) => Err(e.to_string()),
            };
            if c.result == Expected::Acceptable {
                if let (Ok(u), Some(want)) = (&got, &c.url) {
                    if u != want {
                        t.mismatch(c.tc_id, format!("built {u}, expected {want}"));
                    }
                }
            }
            t.check(c.tc_id, c.result, res);
        }
    }
    t.s
}

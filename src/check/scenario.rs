//! Conformance cases as data (`scenarios/<role>/<id>.toml`): what a case
//! checks, which PROTOCOL section it follows, and its steps from a fixed
//! vocabulary of actions and expectations. The runner interprets them.

use crate::suite::hostile::{SignMode, Tamper, WireForm};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

include!(concat!(env!("OUT_DIR"), "/scenarios.rs"));

/// Requirement level (RFC 2119).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Failing it fails the run.
    #[serde(rename = "MUST")]
    Must,
    /// Failing it fails the run only with `--strict`.
    #[serde(rename = "SHOULD")]
    Should,
    /// Never fails the run.
    #[serde(rename = "MAY")]
    May,
}

impl Level {
    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        }
    }
}

/// Which side a case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A provisioning server.
    Server,
    /// A device client.
    Client,
}

/// One conformance case.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stable id `<role>.<area>.<behaviour>`.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// PROTOCOL section it follows, e.g. `PROTOCOL §4`.
    pub section: String,
    /// Requirement level.
    pub level: Level,
    /// Server or client.
    pub role: Role,
    /// Identifiers of the rules of docs/PROTOCOL.md the case checks.
    pub rules: Vec<String>,
    /// Why the rule matters: what breaks, or who can attack, when it is
    /// violated.
    pub rationale: String,
    /// How to fix an implementation that fails the case.
    pub fix: String,
    /// Capabilities the target must have (else the case is skipped).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Must run alone (load, bursts).
    #[serde(default)]
    pub exclusive: bool,
    /// Set when the case tests its rule by the smallest violation a real
    /// implementation gets wrong, naming the kind (one of
    /// [`NEAR_MISS_KINDS`]).
    #[serde(default)]
    pub near_miss: Option<String>,
    /// Longer explanation.
    #[serde(default)]
    pub description: String,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// The vocabulary of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// GET the directory.
    Directory,
    /// POST an OOB secret.
    PostOob,
    /// POST a provisioning request.
    Provision,
    /// GET a device's status.
    Status,
    /// Send an arbitrary request.
    Raw,
    /// Sleep.
    Wait,
    /// Send `count` wrong signatures for a device.
    Guess,
    /// Provision `count` devices as admin at once; check serials.
    Burst,
    /// Post secrets for and provision `count` devices at once.
    Concurrent,
    /// A full honest provisioning (post secret, provision, check).
    Sanity,
    /// Record an observation (verdict info).
    Observe,
    /// Find the server by DNS-SD.
    Discover,
    /// Probe below HTTP (`what`: `tls1.0`, `tls1.1`, `plaintext`).
    Wire,
    /// Client cases: start the suite's (possibly hostile) server.
    Serve,
    /// Client cases: give the device a certificate set from the server.
    GiveCertificate,
    /// Client cases: run the device shim once.
    RunDevice,
}

/// Misbehaviour switches of the suite's server (client cases).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BugsSpec {
    /// How Approved is signed: `honest`, `other-secret`, `sha256-key`,
    /// `unsigned`.
    pub sign: Option<SignMode>,
    /// A member changed after signing: `client-cert`, `ca-cert`, `status`,
    /// `retry-sec`.
    pub tamper: Option<Tamper>,
    /// Certificate for another CN.
    #[serde(default)]
    pub other_cn: bool,
    /// Certificate for another key.
    #[serde(default)]
    pub other_key: bool,
    /// Certificate from another CA.
    #[serde(default)]
    pub other_ca: bool,
    /// Expired certificate.
    #[serde(default)]
    pub expired: bool,
    /// Issue a certificate that becomes valid only in an hour.
    #[serde(default)]
    pub not_yet_valid: bool,
    /// Issue the certificate for the device ID in upper case.
    #[serde(default)]
    pub cn_case: bool,
    /// Accept TCP connections and never answer.
    #[serde(default)]
    pub silent: bool,
    /// Send answers one byte a second.
    #[serde(default)]
    pub trickle: bool,
    /// Answer Rejected.
    #[serde(default)]
    pub reject: bool,
    /// Certificate attached to Rejected.
    #[serde(default)]
    pub cert_on_rejected: bool,
    /// Answer Waiting this many times first.
    #[serde(default)]
    pub waiting_times: u32,
    /// `retrySec` with Waiting.
    #[serde(default)]
    pub waiting_retry_sec: u64,
    /// TLS certificate from another CA.
    #[serde(default)]
    pub tls_other_ca: bool,
    /// Advertise the `csr` extension.
    #[serde(default)]
    pub advertise_csr: bool,
    /// No `caCert` in the directory.
    #[serde(default)]
    pub no_ca_in_directory: bool,
    /// Provisioning endpoint on a second server with another CA.
    #[serde(default)]
    pub second_server: bool,
    /// Advertise over DNS-SD.
    #[serde(default)]
    pub advertise: bool,
    /// Advertise the plaintext port over DNS-SD instead of the TLS one.
    #[serde(default)]
    pub advertise_plaintext: bool,
    /// A wire form a conforming client must accept (PROTOCOL §3, §10):
    /// `ca-base64`, `ca-null`, `endpoint-urls`, `post-oob-key`,
    /// `version-1x`, `extra-fields`, `reordered`.
    pub wire: Option<WireForm>,
}

/// One step: an action, its parameters, and what must hold after it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The action.
    #[serde(rename = "do")]
    pub action: Option<Action>,
    /// Credential: nobody, admin, plugin, foreign-admin, self-signed-admin,
    /// other-ou, device:<d>, expired-device:<d>, foreign-device:<d>.
    #[serde(rename = "as")]
    pub as_: Option<String>,
    /// Symbolic device name (a fresh random ID per case).
    pub device: Option<String>,
    /// A literal device ID (for malformed-ID cases).
    pub device_literal: Option<String>,
    /// Symbolic secret name, or `none`.
    pub secret: Option<String>,
    /// A literal secret (e.g. empty).
    pub secret_literal: Option<String>,
    /// `default`, `past`, `garbage`, `number`, `in:<seconds>`.
    pub valid_until: Option<String>,
    /// The request's key (default `p256`).
    pub key: Option<KeySpec>,
    /// The HMAC key (default `raw`).
    pub variant: Option<HmacKey>,
    /// The `ip` member (default `default`).
    pub ip: Option<IpSpec>,
    /// How the request is written and signed (default `go`).
    pub form: Option<RequestForm>,
    /// The `csrPEM` member (default `none`).
    pub csr: Option<CsrSpec>,
    /// Resend the last request body sent for this device.
    pub replay: Option<bool>,
    /// HTTP method (raw).
    pub method: Option<String>,
    /// Path (raw) under the directory's origin, `{device}` is replaced. For
    /// the protocol's endpoints use `endpoint`, never a literal path.
    pub path: Option<String>,
    /// Raw: send to this endpoint as the directory advertises it
    /// (`{device}` filled in).
    pub endpoint: Option<EndpointSpec>,
    /// Body text (raw/provision override), `{device}` and `{key}` replaced.
    pub body: Option<String>,
    /// Body of this many bytes (raw; for `provision`, the request padded
    /// with JSON whitespace to exactly this size).
    pub body_size: Option<usize>,
    /// How `publicKeyPEM` is written (default `lf`).
    pub key_form: Option<KeyForm>,
    /// Count (guess, burst, concurrent).
    pub count: Option<u32>,
    /// Concurrent: this many rounds of `count` devices, each round posting
    /// the next batch's secrets while the previous batch provisions.
    pub rounds: Option<u32>,
    /// Milliseconds (wait).
    pub ms: Option<u64>,
    /// What to observe.
    pub what: Option<String>,
    /// Client cases: server misbehaviour.
    pub bugs: Option<BugsSpec>,
    /// Client cases: what the device is told as `{url}` (default
    /// `directory`).
    pub url: Option<UrlSpec>,
    /// Client cases: the pre-provisioned CA it is given (default `none`).
    pub ca: Option<CaSpec>,
    /// Client cases: `IDPROV_FEATURE` for this run.
    pub feature: Option<String>,
    /// Expectations.
    #[serde(default)]
    pub expect: Expect,
}

/// A request's key (a step's `key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySpec {
    /// A fresh ECDSA P-256 key.
    P256,
    /// A fresh Ed25519 key.
    Ed25519,
    /// A fresh ECDSA P-384 key (no server need issue for it).
    P384,
    /// A fixed RSA 2048-bit public key.
    Rsa2048,
    /// A fixed RSA 1024-bit public key (too weak).
    Rsa1024,
    /// A `PUBLIC KEY` block that is not a key.
    Garbage,
    /// Text that is not PEM.
    NotPem,
}

/// How `publicKeyPEM` is written: every form RFC 7468 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyForm {
    /// Lines ending in LF, with a final newline.
    Lf,
    /// No newline after the end line.
    NoFinalNewline,
    /// Lines ending in CRLF.
    Crlf,
}

/// The HMAC key a request is signed with (a step's `variant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HmacKey {
    /// The secret's bytes (the profile's).
    Raw,
    /// SHA-256 of the secret (the standard's prose, not the profile).
    Sha256,
}

/// The request's `ip` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpSpec {
    /// `127.0.0.1`.
    Default,
    /// No `ip` member.
    Missing,
    /// A value that is no IP address.
    Garbage,
}

/// How a request is written and what its signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestForm {
    /// Go's compact form in the profile's order, signed over it.
    Go,
    /// Members reversed plus an unknown member, signed over the bytes sent.
    ReorderedRaw,
    /// The same bytes, signed over Go's canonical form instead.
    ReorderedCanonical,
}

/// The request's `csrPEM` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CsrSpec {
    /// No CSR.
    None,
    /// A valid CSR for the request's key.
    Valid,
    /// A CSR whose self-signature does not verify.
    BadSignature,
    /// A valid CSR for another key.
    KeyMismatch,
}

/// One of the four endpoints, as the directory advertises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointSpec {
    /// The directory.
    Directory,
    /// `postOobSecret`.
    Oob,
    /// `postProvisionRequest`.
    Provreq,
    /// `status`, with `{deviceID}` filled in.
    Status,
}

/// What a client case tells the device as `{url}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UrlSpec {
    /// The suite's server's directory URL.
    Directory,
    /// An `http://` URL of the server's plaintext port.
    Plaintext,
    /// Nothing: the device discovers the server by DNS-SD.
    None,
}

/// The CA a client case gives the device in advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaSpec {
    /// None: the leap of faith.
    None,
    /// The CA of the suite's server.
    Server,
    /// An unrelated CA.
    Other,
}

/// The name a case file uses for one of these values.
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// What must hold after a step. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// HTTP status is one of these.
    pub http: Option<Vec<u16>>,
    /// HTTP status class, e.g. `4xx`.
    pub http_class: Option<String>,
    /// Protocol status: `Approved`, `Waiting`, `Rejected`, `not-Approved`.
    pub status: Option<String>,
    /// `true`: a certificate passing every check; `false`: none.
    pub certificate: Option<bool>,
    /// Response signature: `secret`, `empty-key`, `none`.
    pub signature: Option<String>,
    /// `positive`.
    pub retry_sec: Option<String>,
    /// `present`: `caCert` is the target's CA.
    pub ca_cert: Option<String>,
    /// `true`: the TLS handshake may be refused instead (counts as refusal).
    pub tls_refusal_ok: Option<bool>,
    /// Directory: every field well-formed.
    pub directory_valid: Option<bool>,
    /// Directory: the server's TLS chain verifies against `caCert`.
    pub tls_matches_ca: Option<bool>,
    /// `Content-Type` starts with this.
    pub content_type: Option<String>,
    /// Status: `clientCert` is the latest certificate issued in this case.
    pub latest_cert: Option<bool>,
    /// Burst: all serials distinct and ≥ 64 bits.
    pub unique_serials: Option<bool>,
    /// Concurrent: every device Approved.
    pub all_approved: Option<bool>,
    /// Device run: `success` (exit 0), `failure` (any other, not 89), or
    /// `bounded` (either, but within the time limit: no hang).
    pub exit: Option<String>,
    /// Device run: `written` (a verified set of its own), `none`,
    /// `unchanged` (as before the run), `replaced` (a new verified set).
    pub files: Option<String>,
    /// Device run: key.pem has mode 0600.
    pub key_mode_600: Option<bool>,
    /// Device run: no request contains the secret (checked in every case
    /// now; kept so that case files naming it still load).
    pub secret_not_sent: Option<bool>,
    /// Device run: it sent a provisioning request (whose signature, like
    /// every request's, is checked in every case).
    pub request_signed: Option<bool>,
    /// Device run: at least this many provisioning requests.
    pub provreq_count_min: Option<u32>,
    /// Device run: provisioning requests at least this far apart.
    pub retry_spacing_ms_min: Option<u64>,
    /// Device run: its provisioning requests came with a client certificate.
    pub mtls: Option<bool>,
    /// Device run: no HTTP request reached the given server (`primary`,
    /// `second`).
    pub nothing_reached: Option<String>,
    /// Device run: a csrPEM, if sent, is valid for the request's key.
    pub csr_valid_if_sent: Option<bool>,
    /// Device run: no request carried a `csrPEM`.
    pub no_csr: Option<bool>,
    /// Device run that must end in a refusal: how far the device must have
    /// got, so that it refused what the server did rather than failing
    /// earlier: `directory` (fetched it), `provreq` (sent its request and
    /// was answered), `tls-refused` (opened a TLS connection to the primary
    /// server and gave it up), `second:tls-refused` (the same, to the second
    /// server), `connected` (opened a TCP connection), `plaintext-port`
    /// (spoke TLS to the plaintext port DNS-SD advertised).
    pub reached: Option<String>,
    /// Discover: the TXT record carries the `path` key itself (not only the
    /// legacy `directory` key).
    pub txt_path_key: Option<bool>,
}

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
#[error("scenario {file}: {msg}")]
pub struct ScenarioError {
    /// File name.
    pub file: String,
    /// What is wrong.
    pub msg: String,
}

/// The kinds of near miss (issue 15's method): a boundary in time, an
/// identity that differs in one detail, another accepted encoding, a read
/// after a write, a count at and one past a limit, and the exact reaction a
/// device must take.
pub const NEAR_MISS_KINDS: &[&str] = &[
    "time", "identity", "encoding", "state", "counts", "reaction",
];

const AREAS: &[&str] = &[
    "sanity",
    "transport",
    "discovery",
    "directory",
    "oob",
    "hmac",
    "provision",
    "csr",
    "renewal",
    "status",
    "mitm",
    "input",
    "limits",
    "pinning",
    "waiting",
    "explore",
];

/// Parses and checks one scenario file.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let err = |msg: String| ScenarioError {
        file: file.to_string(),
        msg,
    };
    let s: Scenario = toml::from_str(text).map_err(|e| err(e.to_string().replace('\n', " ")))?;
    let parts: Vec<&str> = s.id.split('.').collect();
    let role = match s.role {
        Role::Server => "server",
        Role::Client => "client",
    };
    if parts.len() != 3
        || parts[0] != role
        || !AREAS.contains(&parts[1])
        || parts[2].is_empty()
        || !s
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(err(format!(
            "id `{}` is not `{role}.<area>.<behaviour>` in lower case with a known area",
            s.id
        )));
    }
    if !file.ends_with(&format!("{}.toml", s.id)) {
        return Err(err(format!("file name must be `{}.toml`", s.id)));
    }
    if !s.section.starts_with("PROTOCOL §") {
        return Err(err("section must cite `PROTOCOL §n`".into()));
    }
    if s.rules.is_empty() {
        return Err(err(
            "`rules` must name at least one rule of docs/PROTOCOL.md".into(),
        ));
    }
    if s.rationale.trim().is_empty() || s.fix.trim().is_empty() {
        return Err(err(
            "`rationale` and `fix` must say why the rule matters and how to fix a failure".into(),
        ));
    }
    if s.steps.is_empty() {
        return Err(err("no steps".into()));
    }
    if let Some(k) = &s.near_miss {
        if !NEAR_MISS_KINDS.contains(&k.as_str()) {
            return Err(err(format!(
                "near_miss `{k}` is not one of {}",
                NEAR_MISS_KINDS.join(", ")
            )));
        }
    }
    for (i, st) in s.steps.iter().enumerate() {
        let n = i + 1;
        if st.action.is_none() {
            return Err(err(format!("step {n} has no `do`")));
        }
        if let Some(f) = &st.feature {
            if super::features::feature(f).is_none() {
                return Err(err(format!(
                    "step {n}: feature `{f}` is not on the closed list (`idprov check client --list`)"
                )));
            }
        }
        if st.action == Some(Action::RunDevice)
            && matches!(st.expect.exit.as_deref(), Some("failure" | "bounded"))
        {
            match st.expect.reached.as_deref() {
                Some(
                    "directory"
                    | "provreq"
                    | "tls-refused"
                    | "second:tls-refused"
                    | "connected"
                    | "plaintext-port",
                ) => {}
                // A refusal that needs no contact counts only when the same
                // case shows the device working afterwards.
                Some("nothing")
                    if s.steps[i + 1..].iter().any(|l| {
                        l.action == Some(Action::RunDevice)
                            && l.expect.exit.as_deref() == Some("success")
                    }) => {}
                Some("nothing") => {
                    return Err(err(format!(
                        "step {n}: `reached = \"nothing\"` needs a later run-device step that succeeds, or a device that does nothing passes"
                    )))
                }
                Some(o) => return Err(err(format!("step {n}: unknown `reached` value `{o}`"))),
                None => {
                    return Err(err(format!(
                        "step {n}: a refusal must say how far the device must get (`reached`), or a device that does nothing passes"
                    )))
                }
            }
        }
        if let Some(p) = &st.path {
            if p.starts_with("/idprov/") {
                return Err(err(format!(
                    "step {n}: `{p}` hard-codes a default path; use `endpoint` (servers may advertise others)"
                )));
            }
        }
    }
    Ok(s)
}

impl Scenario {
    /// The features its device runs name (client cases).
    pub fn features(&self) -> Vec<&str> {
        let mut f: Vec<&str> = self
            .steps
            .iter()
            .filter_map(|s| s.feature.as_deref())
            .collect();
        f.dedup();
        f
    }
}

/// Every embedded scenario, parsed, sorted by id; each must cite rules
/// that exist in docs/PROTOCOL.md.
pub fn catalogue() -> Result<Vec<Scenario>, ScenarioError> {
    let known: BTreeSet<String> = crate::spec::rules()
        .map_err(|e| ScenarioError {
            file: "docs/PROTOCOL.md".into(),
            msg: e.to_string(),
        })?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (file, text) in SCENARIOS {
        let s = parse(file, text)?;
        if let Some(unknown) = s.rules.iter().find(|r| !known.contains(*r)) {
            return Err(ScenarioError {
                file: file.to_string(),
                msg: format!("rule `{unknown}` is not in docs/PROTOCOL.md"),
            });
        }
        if !seen.insert(s.id.clone()) {
            return Err(ScenarioError {
                file: file.to_string(),
                msg: format!("duplicate id {}", s.id),
            });
        }
        out.push(s);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded(name: &str) -> (&'static str, &'static str) {
        *SCENARIOS
            .iter()
            .find(|(f, _)| f.ends_with(name))
            .expect("embedded case")
    }

    /// A typo in a case file's value is a load error naming the file, the
    /// line and the value, never a failure blamed on the target.
    #[test]
    fn a_misspelt_value_is_a_load_error_naming_file_and_line() {
        for (name, good, typo) in [
            (
                "server.input.rsa-1024-key-400.toml",
                "key = \"rsa1024\"",
                "key = \"rsa1042\"",
            ),
            (
                "client.mitm.response-other-secret.toml",
                "sign = \"other-secret\"",
                "sign = \"other-secert\"",
            ),
        ] {
            let (file, text) = embedded(name);
            parse(file, text).expect("the file as shipped loads");
            let bad = text.replace(good, typo);
            assert_ne!(bad, text, "{name}: {good} not found");
            let e = parse(file, &bad).unwrap_err().to_string();
            let wrong = typo.split('"').nth(1).unwrap_or_default();
            assert!(
                e.contains(name) && e.contains("line") && e.contains(wrong),
                "{e}"
            );
        }
    }
}

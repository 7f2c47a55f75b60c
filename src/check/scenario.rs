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
    /// Send the requests of `group` at once and judge their answers as a
    /// concurrent history (`outcomes`).
    Together,
    /// Try one variable-size field at every length and value around its
    /// limits (`field`).
    Sweep,
    /// Make the pair of requests of a metamorphic `relation` and compare
    /// their answers.
    Relate,
    /// Restart the server under test (needs a restarter: `--restart-cmd`
    /// or the in-process server) and wait until its directory answers.
    Restart,
    /// Rounds of `count` devices provisioning at once while the server is
    /// killed at a seeded moment and started again; the history is judged
    /// afterwards (needs `--kill-cmd` and `--start-cmd`, or the in-process
    /// server).
    CrashUnderLoad,
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
    /// List an extension this profile does not define (not `csr`).
    #[serde(default)]
    pub unknown_extension: bool,
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
    pub as_: Option<Credential>,
    /// Symbolic device name (a fresh random ID per case).
    pub device: Option<String>,
    /// A literal device ID (for malformed-ID cases).
    pub device_literal: Option<String>,
    /// Symbolic secret name, or `none`.
    pub secret: Option<String>,
    /// A literal secret (e.g. empty).
    pub secret_literal: Option<String>,
    /// A literal `publicKeyPEM` (set by sweeps, never by a case file).
    #[serde(skip)]
    pub key_pem_literal: Option<String>,
    /// A literal `csrPEM` (set by sweeps, never by a case file).
    #[serde(skip)]
    pub csr_literal: Option<String>,
    /// `default`, `past`, `garbage`, `number`, `in:<seconds>` or
    /// `in:<seconds>@±HH:MM`.
    pub valid_until: Option<ValidUntilSpec>,
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
    /// What to probe (`wire`) or observe (`observe`).
    pub what: Option<Probe>,
    /// Client cases: server misbehaviour.
    pub bugs: Option<BugsSpec>,
    /// Client cases: what the device is told as `{url}` (default
    /// `directory`).
    pub url: Option<UrlSpec>,
    /// Client cases: the pre-provisioned CA it is given (default `none`).
    pub ca: Option<CaSpec>,
    /// Client cases: `IDPROV_FEATURE` for this run.
    pub feature: Option<String>,
    /// Sweep: the field swept.
    pub field: Option<SweepField>,
    /// Relate: the relation checked.
    pub relation: Option<Relation>,
    /// Together: the answer tuples the profile allows, one outcome per
    /// member in the group's order — those of every order the members could
    /// take effect in. Absent: the tuple is not judged.
    pub outcomes: Option<Vec<Vec<Outcome>>>,
    /// Expectations.
    #[serde(default)]
    pub expect: Expect,
    /// Together: the members, each one `post-oob`, `provision` or `status`
    /// request, all sent at once.
    pub group: Option<Vec<Step>>,
}

/// The field a `sweep` step tries at every length and value around its
/// limits (the sizes are listed in docs/SUITE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweepField {
    /// The OOB secret: lengths 1–4096 bytes and values JSON escapes.
    SecretLength,
    /// The device ID: lengths 1–256 and every corner of its alphabet.
    DeviceId,
    /// `validUntil`: up to ten years ahead, offsets, fractions, past 2038.
    ValidUntil,
    /// The request's `signature`: tags a bit off, cut short, one byte long,
    /// in hex or case-swapped.
    Signature,
    /// `publicKeyPEM`: RSA moduli from 1,024 to 16,384 bits, around the
    /// 2,048-bit floor to the bit.
    PublicKey,
    /// `csrPEM`: CSRs asking for another CN, a role OU, CA, certificate
    /// signing, serverAuth or names, one past a TLS record, and PEM with
    /// CRLF, 76-column lines or explanatory text.
    Csr,
    /// The whole body: 16 KiB ± 1, 32 KiB, 64 KiB − 1 and 64 KiB (served),
    /// one byte, four bytes, 16 KiB and 64 KiB over it, and 1 MiB (413).
    BodySize,
}

/// A metamorphic relation a `relate` step checks with a pair of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// A request carrying members outside the profile gets a certificate
    /// of the same profile as a plain one (or a 400).
    ExtraMembers,
    /// A renewal's certificate has the profile of the first issuance's.
    Renewal,
    /// Device side: whatever one element of an Approved answer is changed
    /// to (`suite::perturb`), the device ends with a set that chains to
    /// the CA it pinned, for its own key and ID, or with nothing.
    AnyAnswer,
}

impl Relation {
    /// The role whose cases may check this relation.
    pub fn role(self) -> Role {
        match self {
            Relation::ExtraMembers | Relation::Renewal => Role::Server,
            Relation::AnyAnswer => Role::Client,
        }
    }
}

/// What one request of a `together` group was answered: the symbols of
/// a concurrent history (`approved`, `waiting`, `rejected` for a
/// provisioning request, `ok` for an accepted OOB post, `status-approved`
/// and `status-waiting` for a status read, `http-NNN` for any other HTTP
/// status). A TLS handshake refused counts as `http-401` or `http-403`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Outcome {
    /// 200 Approved with a certificate.
    Approved,
    /// 200 Waiting.
    Waiting,
    /// 200 Rejected.
    Rejected,
    /// An OOB post answered 200.
    Ok,
    /// A status read answered 200 Approved.
    StatusApproved,
    /// A status read answered 200 Waiting.
    StatusWaiting,
    /// Any other HTTP status.
    Http(u16),
}

impl TryFrom<String> for Outcome {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "approved" => Outcome::Approved,
            "waiting" => Outcome::Waiting,
            "rejected" => Outcome::Rejected,
            "ok" => Outcome::Ok,
            "status-approved" => Outcome::StatusApproved,
            "status-waiting" => Outcome::StatusWaiting,
            other => match other.strip_prefix("http-").map(str::parse::<u16>) {
                Some(Ok(code)) if (100..600).contains(&code) => Outcome::Http(code),
                _ => {
                    return Err(format!(
                        "unknown outcome `{other}` (approved, waiting, rejected, ok, status-approved, status-waiting or http-NNN)"
                    ))
                }
            },
        })
    }
}

impl From<Outcome> for String {
    fn from(o: Outcome) -> String {
        o.to_string()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Approved => f.write_str("approved"),
            Outcome::Waiting => f.write_str("waiting"),
            Outcome::Rejected => f.write_str("rejected"),
            Outcome::Ok => f.write_str("ok"),
            Outcome::StatusApproved => f.write_str("status-approved"),
            Outcome::StatusWaiting => f.write_str("status-waiting"),
            Outcome::Http(c) => write!(f, "http-{c}"),
        }
    }
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
    /// The key of the device's latest certificate, kept (a renewal or a
    /// re-provisioning that keeps its key).
    Previous,
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

/// An HTTP status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpClass {
    /// 200–299.
    #[serde(rename = "2xx")]
    Success,
    /// 400–499.
    #[serde(rename = "4xx")]
    ClientError,
    /// 500–599.
    #[serde(rename = "5xx")]
    ServerError,
}

impl HttpClass {
    /// The first digit of its codes.
    pub fn digit(self) -> u16 {
        match self {
            HttpClass::Success => 2,
            HttpClass::ClientError => 4,
            HttpClass::ServerError => 5,
        }
    }
}

/// The protocol status an answer must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusSpec {
    /// `Approved`.
    Approved,
    /// `Waiting`.
    Waiting,
    /// `Rejected`.
    Rejected,
    /// Anything but an HTTP 200 `Approved` (a refusal by any means).
    #[serde(rename = "not-Approved")]
    NotApproved,
}

impl StatusSpec {
    /// As it appears in an answer (`NotApproved` never does).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusSpec::Approved => "Approved",
            StatusSpec::Waiting => "Waiting",
            StatusSpec::Rejected => "Rejected",
            StatusSpec::NotApproved => "not-Approved",
        }
    }
}

/// The key an answer's signature must verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureSpec {
    /// The secret the request was signed with.
    Secret,
    /// The empty key.
    EmptyKey,
    /// No signature at all.
    None,
}

/// What `retrySec` must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetrySecSpec {
    /// Present and above 0.
    Positive,
}

/// What `caCert` must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaCertSpec {
    /// The target's CA.
    Present,
}

/// How a device run must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitSpec {
    /// Exit 0.
    Success,
    /// Any other exit (not 89), within the time limit.
    Failure,
    /// Either, within the time limit: no hang.
    Bounded,
}

/// What a device run must leave in `{dir}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilesSpec {
    /// A verified set of its own.
    Written,
    /// Nothing.
    None,
    /// The set it had before the run.
    Unchanged,
    /// A new verified set.
    Replaced,
}

/// One of a client case's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerSpec {
    /// The server the device is sent to.
    Primary,
    /// The second server the directory points to.
    Second,
}

/// How far a refusing device must have got, so that it refused what the
/// server did rather than failing earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReachedSpec {
    /// It fetched the directory.
    Directory,
    /// It sent its request and was answered.
    Provreq,
    /// It opened a TLS connection to the primary server and gave it up.
    TlsRefused,
    /// The same, to the second server.
    #[serde(rename = "second:tls-refused")]
    SecondTlsRefused,
    /// It opened a TCP connection.
    Connected,
    /// It spoke TLS to the plaintext port DNS-SD advertised.
    PlaintextPort,
    /// Nothing: allowed only when a later step shows the device working.
    Nothing,
}

/// Whom a request is sent as (a step's `as`): a credential of the target,
/// one the suite makes, or a device's (`<kind>:<symbolic device>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Credential {
    /// No client certificate.
    Nobody,
    /// The target's admin credential.
    Admin,
    /// The target's plugin credential.
    Plugin,
    /// An admin certificate from another CA.
    ForeignAdmin,
    /// A certificate of the target's CA with an OU that is no role.
    OtherOu,
    /// An admin certificate not valid for another 15 minutes.
    FutureAdmin,
    /// An admin certificate from a CA that copies the target CA's name.
    ImpostorAdmin,
    /// The certificate the device obtained earlier in the case.
    Device(String),
    /// An expired certificate for the device.
    ExpiredDevice(String),
    /// A certificate for the device from another CA.
    ForeignDevice(String),
    /// A certificate for the device not valid for another 15 minutes.
    FutureDevice(String),
    /// A certificate for the device that expired two seconds ago.
    JustExpiredDevice(String),
    /// A certificate for the device from an impostor CA.
    ImpostorDevice(String),
}

impl std::str::FromStr for Credential {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let device = |make: fn(String) -> Credential| {
            if arg.is_empty() {
                Err(format!(
                    "credential `{kind}` needs a device: `{kind}:<device>`"
                ))
            } else {
                Ok(make(arg.to_string()))
            }
        };
        let plain = |c: Credential| {
            if !s.contains(':') {
                Ok(c)
            } else {
                Err(format!("credential `{kind}` takes no device"))
            }
        };
        match kind {
            "nobody" => plain(Credential::Nobody),
            "admin" => plain(Credential::Admin),
            "plugin" => plain(Credential::Plugin),
            "foreign-admin" => plain(Credential::ForeignAdmin),
            "other-ou" => plain(Credential::OtherOu),
            "future-admin" => plain(Credential::FutureAdmin),
            "impostor-admin" => plain(Credential::ImpostorAdmin),
            "device" => device(Credential::Device),
            "expired-device" => device(Credential::ExpiredDevice),
            "foreign-device" => device(Credential::ForeignDevice),
            "future-device" => device(Credential::FutureDevice),
            "just-expired-device" => device(Credential::JustExpiredDevice),
            "impostor-device" => device(Credential::ImpostorDevice),
            other => Err(format!(
                "unknown credential `{other}` (nobody, admin, plugin, foreign-admin, other-ou, future-admin, impostor-admin, or device:, expired-device:, foreign-device:, future-device:, just-expired-device:, impostor-device: with a device)"
            )),
        }
    }
}

impl std::fmt::Display for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, device) = match self {
            Credential::Nobody => ("nobody", None),
            Credential::Admin => ("admin", None),
            Credential::Plugin => ("plugin", None),
            Credential::ForeignAdmin => ("foreign-admin", None),
            Credential::OtherOu => ("other-ou", None),
            Credential::FutureAdmin => ("future-admin", None),
            Credential::ImpostorAdmin => ("impostor-admin", None),
            Credential::Device(d) => ("device", Some(d)),
            Credential::ExpiredDevice(d) => ("expired-device", Some(d)),
            Credential::ForeignDevice(d) => ("foreign-device", Some(d)),
            Credential::FutureDevice(d) => ("future-device", Some(d)),
            Credential::JustExpiredDevice(d) => ("just-expired-device", Some(d)),
            Credential::ImpostorDevice(d) => ("impostor-device", Some(d)),
        };
        match device {
            Some(d) => write!(f, "{kind}:{d}"),
            None => f.write_str(kind),
        }
    }
}

impl TryFrom<String> for Credential {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Credential> for String {
    fn from(c: Credential) -> String {
        c.to_string()
    }
}

/// An OOB post's `validUntil`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ValidUntilSpec {
    /// Empty: the server's default life.
    Default,
    /// A time in the past.
    Past,
    /// Text that is no time.
    Garbage,
    /// A JSON number instead of text.
    Number,
    /// `secs` from now, written with this UTC offset.
    In {
        /// Seconds from now (negative: in the past).
        secs: i64,
        /// The offset it is written with (the same instant).
        offset: time::UtcOffset,
    },
}

impl std::str::FromStr for ValidUntilSpec {
    type Err = String;
    fn from_str(v: &str) -> Result<Self, String> {
        Ok(match v {
            "default" => ValidUntilSpec::Default,
            "past" => ValidUntilSpec::Past,
            "garbage" => ValidUntilSpec::Garbage,
            "number" => ValidUntilSpec::Number,
            other => parse_in(other)
                .map(|(secs, offset)| ValidUntilSpec::In { secs, offset })
                .ok_or_else(|| {
                    format!("valid_until `{other}` is not default, past, garbage, number, in:<seconds> or in:<seconds>@±HH:MM")
                })?,
        })
    }
}

impl std::fmt::Display for ValidUntilSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValidUntilSpec::Default => f.write_str("default"),
            ValidUntilSpec::Past => f.write_str("past"),
            ValidUntilSpec::Garbage => f.write_str("garbage"),
            ValidUntilSpec::Number => f.write_str("number"),
            ValidUntilSpec::In { secs, offset } if offset.is_utc() => write!(f, "in:{secs}"),
            ValidUntilSpec::In { secs, offset } => {
                let (h, m, _) = offset.as_hms();
                let sign = if offset.is_negative() { '-' } else { '+' };
                write!(f, "in:{secs}@{sign}{:02}:{:02}", h.abs(), m.abs())
            }
        }
    }
}

impl TryFrom<String> for ValidUntilSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ValidUntilSpec> for String {
    fn from(v: ValidUntilSpec) -> String {
        v.to_string()
    }
}

/// `in:SECS` or `in:SECS@±HH:MM`: an instant SECS from now, written with
/// that UTC offset (the same instant, another spelling).
fn parse_in(v: &str) -> Option<(i64, time::UtcOffset)> {
    let rest = v.strip_prefix("in:")?;
    let (secs, off) = match rest.split_once('@') {
        None => (rest, time::UtcOffset::UTC),
        Some((secs, off)) => {
            let sign: i8 = match off.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = off[1..].split_once(':')?;
            let off = time::UtcOffset::from_hms(
                sign * h.parse::<i8>().ok()?,
                sign * m.parse::<i8>().ok()?,
                0,
            )
            .ok()?;
            (secs, off)
        }
    };
    Some((secs.parse().ok()?, off))
}

/// What a `wire` step probes or an `observe` step observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    /// A ClientHello offering only TLS 1.0.
    #[serde(rename = "tls1.0")]
    Tls10,
    /// A ClientHello offering only TLS 1.1.
    #[serde(rename = "tls1.1")]
    Tls11,
    /// A plaintext GET on the TLS port.
    Plaintext,
    /// The directory fetched with the host name checked.
    ServerName,
    /// A chunked body over the size limit.
    ChunkedOverLimit,
    /// Both `Content-Length` and `Transfer-Encoding`.
    BothLengths,
    /// A chunk size that is not hex.
    BadChunk,
    /// Bytes after a complete request that are no request.
    TrailingGarbage,
    /// A request head that stalls.
    StallHeader,
    /// A body that stalls.
    StallBody,
    /// Observe: which HMAC key the server accepts and signs with.
    KeyVariant,
    /// Observe: how the server verifies a reordered request.
    CanonicalForm,
    /// Observe: how the directory is encoded.
    DirectoryForm,
    /// Observe (client cases): how the device writes and signs its request.
    RequestForm,
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
    pub http_class: Option<HttpClass>,
    /// Protocol status: `Approved`, `Waiting`, `Rejected`, `not-Approved`.
    pub status: Option<StatusSpec>,
    /// `true`: a certificate passing every check; `false`: none.
    pub certificate: Option<bool>,
    /// Response signature: `secret`, `empty-key`, `none`.
    pub signature: Option<SignatureSpec>,
    /// `positive`: `retrySec` is present and above 0.
    pub retry_sec: Option<RetrySecSpec>,
    /// `present`: `caCert` is the target's CA.
    pub ca_cert: Option<CaCertSpec>,
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
    pub exit: Option<ExitSpec>,
    /// Device run: `written` (a verified set of its own), `none`,
    /// `unchanged` (as before the run), `replaced` (a new verified set).
    pub files: Option<FilesSpec>,
    /// Device run: key.pem has mode 0600.
    pub key_mode_600: Option<bool>,
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
    pub nothing_reached: Option<ServerSpec>,
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
    pub reached: Option<ReachedSpec>,
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
            && matches!(st.expect.exit, Some(ExitSpec::Failure | ExitSpec::Bounded))
        {
            match st.expect.reached {
                // A refusal that needs no contact counts only when the same
                // case shows the device working afterwards.
                Some(ReachedSpec::Nothing)
                    if !s.steps[i + 1..].iter().any(|l| {
                        l.action == Some(Action::RunDevice)
                            && l.expect.exit == Some(ExitSpec::Success)
                    }) =>
                {
                    return Err(err(format!(
                        "step {n}: `reached = \"nothing\"` needs a later run-device step that succeeds, or a device that does nothing passes"
                    )))
                }
                Some(_) => {}
                None => {
                    return Err(err(format!(
                        "step {n}: a refusal must say how far the device must get (`reached`), or a device that does nothing passes"
                    )))
                }
            }
        }
        check_group(st).map_err(|m| err(format!("step {n}: {m}")))?;
        match (st.action == Some(Action::Relate), st.relation.is_some()) {
            (true, false) => return Err(err(format!("step {n}: `relate` needs a `relation`"))),
            (true, true) if st.relation.map(Relation::role) != Some(s.role) => {
                return Err(err(format!(
                    "step {n}: relation `{}` is for {} cases",
                    st.relation.as_ref().map(name_of).unwrap_or_default(),
                    match st.relation.map(Relation::role) {
                        Some(Role::Client) => "client",
                        _ => "server",
                    }
                )))
            }
            (false, true) => {
                return Err(err(format!(
                    "step {n}: `relation` belongs to a `relate` step"
                )))
            }
            _ => {}
        }
        match (st.action == Some(Action::Sweep), st.field.is_some()) {
            (true, false) => return Err(err(format!("step {n}: `sweep` needs a `field`"))),
            (false, true) => {
                return Err(err(format!("step {n}: `field` belongs to a `sweep` step")))
            }
            _ => {}
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

/// What a `together` step needs, and that no other step carries its
/// fields: members that make one request each, at most one OOB post per
/// device and none for a device another member provisions (which secret
/// a signed answer must verify with would depend on the order), and one
/// outcome per member in every tuple.
fn check_group(st: &Step) -> Result<(), String> {
    let together = st.action == Some(Action::Together);
    let Some(group) = st.group.as_deref().filter(|_| together) else {
        return match (together, st.group.is_some() || st.outcomes.is_some()) {
            (true, _) => Err("`together` needs a `group` of requests".into()),
            (false, true) => Err("`group` and `outcomes` belong to a `together` step".into()),
            (false, false) => Ok(()),
        };
    };
    if !(2..=8).contains(&group.len()) {
        return Err(format!("a group has 2 to 8 members, not {}", group.len()));
    }
    let device = |m: &Step| m.device.clone().unwrap_or_else(|| "d".into());
    let mut posted = BTreeSet::new();
    for (k, m) in group.iter().enumerate() {
        let k = k + 1;
        match m.action {
            Some(Action::PostOob | Action::Provision | Action::Status) => {}
            _ => {
                return Err(format!(
                    "group member {k} must be `post-oob`, `provision` or `status`"
                ))
            }
        }
        if m.group.is_some() || m.replay.is_some() || m.device_literal.is_some() {
            return Err(format!(
                "group member {k} cannot nest a group, replay or use a literal device ID"
            ));
        }
        if m.action == Some(Action::PostOob) && !posted.insert(device(m)) {
            return Err(format!(
                "group member {k} posts a second secret for its device"
            ));
        }
    }
    if let Some(m) = group
        .iter()
        .find(|m| m.action == Some(Action::Provision) && posted.contains(&device(m)))
    {
        return Err(format!(
            "device `{}` is posted for and provisioned in one group",
            device(m)
        ));
    }
    if let Some(t) = st
        .outcomes
        .iter()
        .flatten()
        .find(|t| t.len() != group.len())
    {
        return Err(format!(
            "an outcome tuple has {} entries for {} members",
            t.len(),
            group.len()
        ));
    }
    Ok(())
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
    let known = rule_ids()?;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (file, text) in SCENARIOS {
        out.push(admit(file, text, &known, &mut seen)?);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The ids of docs/PROTOCOL.md's rules.
fn rule_ids() -> Result<BTreeSet<String>, ScenarioError> {
    Ok(crate::spec::rules()
        .map_err(|e| ScenarioError {
            file: "docs/PROTOCOL.md".into(),
            msg: e.to_string(),
        })?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

/// Parses one case file and checks what only a set of files can check: its
/// rules exist and its id is new.
fn admit(
    file: &str,
    text: &str,
    known: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
) -> Result<Scenario, ScenarioError> {
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
    Ok(s)
}

/// Case files from disk (`--scenario`): each file given, and every `*.toml`
/// under each directory given (sorted), checked exactly as the embedded
/// cases are; an id that the catalogue or another file already has is an
/// error naming the file.
pub fn load_files(
    paths: &[std::path::PathBuf],
    catalogue: &[Scenario],
) -> Result<Vec<Scenario>, ScenarioError> {
    fn collect(
        p: &std::path::Path,
        out: &mut Vec<std::path::PathBuf>,
    ) -> Result<(), ScenarioError> {
        let err = |e: std::io::Error| ScenarioError {
            file: p.display().to_string(),
            msg: e.to_string(),
        };
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .map_err(err)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                if e.is_dir() || e.extension().is_some_and(|x| x == "toml") {
                    collect(&e, out)?;
                }
            }
        } else {
            out.push(p.to_path_buf());
        }
        Ok(())
    }
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    let known = rule_ids()?;
    let mut seen: BTreeSet<String> = catalogue.iter().map(|s| s.id.clone()).collect();
    let mut out = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(&f).map_err(|e| ScenarioError {
            file: name.clone(),
            msg: e.to_string(),
        })?;
        out.push(admit(&name, &text, &known, &mut seen)?);
    }
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
            (
                "server.oob.device-cert-refused.toml",
                "as = \"device:a\"",
                "as = \"devise:a\"",
            ),
            (
                "server.csr.valid-accepted.toml",
                "status = \"Approved\"",
                "status = \"Aproved\"",
            ),
            (
                "client.mitm.ca-cert-changed-after-signing.toml",
                "reached = \"provreq\"",
                "reached = \"provrec\"",
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

    #[test]
    fn credentials_round_trip_and_refuse_what_they_do_not_know() {
        for text in [
            "nobody",
            "admin",
            "plugin",
            "foreign-admin",
            "other-ou",
            "future-admin",
            "impostor-admin",
            "device:a",
            "expired-device:a",
            "foreign-device:b",
            "future-device:b",
            "just-expired-device:a",
            "impostor-device:a",
        ] {
            let c: Credential = text.parse().unwrap();
            assert_eq!(c.to_string(), text);
        }
        for bad in ["admin:x", "device", "device:", "root", ""] {
            assert!(bad.parse::<Credential>().is_err(), "{bad}");
        }
    }

    #[test]
    fn valid_until_round_trips_and_refuses_what_it_does_not_know() {
        for text in [
            "default",
            "past",
            "garbage",
            "number",
            "in:2",
            "in:-3600@+05:00",
            "in:3600@-05:00",
            "in:60@+05:30",
        ] {
            let v: ValidUntilSpec = text.parse().unwrap();
            assert_eq!(v.to_string(), text);
        }
        for bad in ["in:", "in:x", "in:5@0500", "in:5@+99:00", "tomorrow", ""] {
            assert!(bad.parse::<ValidUntilSpec>().is_err(), "{bad}");
        }
    }

    /// A `together` step as the explorer writes it: it round-trips through
    /// TOML, a misspelt outcome names the file, and groups the runner could
    /// not judge without knowing the order are refused.
    #[test]
    fn together_steps_load_and_refuse_what_cannot_be_judged() {
        let head = r#"id = "server.explore.race"
title = "t"
section = "PROTOCOL §5"
level = "MUST"
role = "server"
rules = ["transport.concurrency"]
rationale = "r"
fix = "f"
"#;
        let file = "server.explore.race.toml";
        let with = |body: &str| format!("{head}{body}");
        let good = with(
            r#"
[[steps]]
do = "post-oob"
device = "a"
secret = "s0"

[[steps]]
do = "together"
outcomes = [["approved", "waiting"], ["waiting", "approved"], ["http-400", "http-400"]]

[[steps.group]]
do = "provision"
device = "a"
secret = "s0"

[[steps.group]]
do = "provision"
device = "a"
secret = "s0"
"#,
        );
        let sc = parse(file, &good).expect("loads");
        let t = &sc.steps[1];
        assert_eq!(t.group.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            t.outcomes.as_ref().and_then(|o| o.get(2)).cloned(),
            Some(vec![Outcome::Http(400), Outcome::Http(400)])
        );
        let again = toml::to_string(&sc).expect("serialises");
        let back = parse(file, &again).expect("round-trips");
        assert_eq!(back.steps[1].outcomes, t.outcomes);
        let refused = |text: &str, says: &str| {
            let e = parse(file, text).unwrap_err().to_string();
            assert!(e.contains(file) && e.contains(says), "{e}");
        };
        refused(
            &good.replace("\"waiting\", \"approved\"", "\"wating\", \"approved\""),
            "wating",
        );
        refused(
            &good.replace("[\"http-400\", \"http-400\"]", "[\"http-400\"]"),
            "1 entries for 2 members",
        );
        refused(
            &good.replace("[[steps.group]]\ndo = \"provision\"\ndevice = \"a\"\nsecret = \"s0\"\n\n[[steps.group]]", "[[steps.group]]\ndo = \"post-oob\"\ndevice = \"a\"\nsecret = \"s1\"\n\n[[steps.group]]"),
            "posted for and provisioned in one group",
        );
        refused(
            &good.replace("do = \"together\"", "do = \"sanity\""),
            "belong to a `together` step",
        );
        refused(&with("\n[[steps]]\ndo = \"together\"\n"), "needs a `group`");
        refused(
            &good.replace("[[steps.group]]\ndo = \"provision\"\ndevice = \"a\"\nsecret = \"s0\"\n\n[[steps.group]]", "[[steps.group]]\ndo = \"wait\"\n\n[[steps.group]]"),
            "must be `post-oob`, `provision` or `status`",
        );
    }
}

//! The live fuzzer (`idprov fuzz server`; the cargo-fuzz targets of the
//! core are in `fuzz/`): mutation-based fuzzing of a running server's endpoints
//! over real TLS, with raw HTTP bytes so that malformed headers, methods and
//! slow bodies can be sent too. After each batch a health check runs (the
//! directory answers and an honest provisioning succeeds). Every 5xx, hang,
//! dropped connection or lost health is a finding with a replayable
//! reproducer file (`idprov fuzz replay FILE`).

use crate::check::report::{CaseResult, Exchange, Outcome, Report, Verdict};
use crate::check::runner::ServerTarget;
use crate::check::scenario::Level;
use crate::check::SetupError;
use crate::core::messages::{ProvisionRequest, Signed};
use crate::core::sign::KeyVariant;
use crate::tls::{client_config, ClientIdentity, ServerTrust};
use base64::Engine;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Settings of a fuzzing run.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// Requests to send.
    pub requests: u64,
    /// Seed of every mutation.
    pub seed: u64,
    /// Requests between health checks.
    pub batch: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Time after which a request without any answer is a hang. Above the
    /// server's own body timeout, so a slow body gets its 408 first.
    pub hang_timeout: Duration,
    /// Where reports and reproducers go.
    pub report_dir: PathBuf,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions {
            requests: 20_000,
            seed: 1,
            batch: 1000,
            concurrency: 64,
            hang_timeout: Duration::from_secs(15),
            report_dir: PathBuf::from("reports"),
            progress: true,
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// 500 or 502–504: a crash or an unhandled error (see
    /// [`is_robustness_failure`]).
    ServerError,
    /// No answer within the hang timeout.
    Hang,
    /// The connection closed without any response.
    Dropped,
    /// The health check failed after a batch.
    Unhealthy,
}

/// Whether an HTTP status means the server failed to cope (a finding): 500
/// (an unhandled error) and 502–504 (a gateway or the process behind it
/// gave up). Other 5xx codes are deliberate answers — 501 Not Implemented
/// for an unknown method is what RFC 9110 §15.6.2 prescribes, 505 for an
/// unsupported HTTP version — and are reported as notes, not findings.
pub fn is_robustness_failure(status: u16) -> bool {
    matches!(status, 500 | 502..=504)
}

/// A request that can be sent again byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reproducer {
    /// What this file is.
    pub format: String,
    /// The URL of the server it was found on.
    pub target: String,
    /// Run seed and request index.
    pub seed: u64,
    /// Index of the request in the run.
    pub index: u64,
    /// What happened.
    pub kind: FindingKind,
    /// Details (status, error).
    pub detail: String,
    /// `nobody` or `admin`.
    pub credential: String,
    /// The raw HTTP/1.1 request, base64.
    pub request_b64: String,
    /// Sent in small slow pieces.
    pub slow: bool,
}

/// A generated raw request.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Raw bytes (request line, headers, body).
    pub bytes: Vec<u8>,
    /// Whether a client certificate goes with it.
    pub admin: bool,
    /// Send in small slow pieces.
    pub slow: bool,
    /// The body is incomplete or its framing broken (shorter than its
    /// `Content-Length`, a chunk size that is not hex): RFC 9112 §8 lets a
    /// server close without an answer, so only a hang is a finding.
    pub incomplete: bool,
    /// Short description of the mutation.
    pub label: String,
}

/// What the server did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOutcome {
    /// A status line arrived.
    Status(u16),
    /// Nothing within the timeout.
    Hang,
    /// Closed without a status line.
    Dropped(String),
}

/// Sends raw bytes over TLS and reads the status line.
pub async fn send_raw(
    host: &str,
    port: u16,
    tls: Arc<ClientConfig>,
    req: &RawRequest,
    timeout: Duration,
) -> RawOutcome {
    let fut = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name: ServerName<'static> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?,
        };
        let mut s = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        if req.slow {
            for chunk in req.bytes.chunks(7) {
                if s.write_all(chunk).await.is_err() {
                    break;
                }
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } else {
            // The server may answer (413, 400) before reading everything.
            let _ = s.write_all(&req.bytes).await;
        }
        let _ = s.flush().await;
        let mut buf = Vec::with_capacity(64);
        let mut chunk = [0u8; 256];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(2).any(|w| w == b"\r\n") || buf.len() > 64 {
                        break;
                    }
                }
                Err(e) => {
                    if buf.is_empty() {
                        return Err(format!("read: {e}"));
                    }
                    break;
                }
            }
        }
        Ok::<_, String>(buf)
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => RawOutcome::Hang,
        Ok(Err(e)) => RawOutcome::Dropped(e),
        Ok(Ok(buf)) => {
            let line = String::from_utf8_lossy(&buf);
            match line
                .strip_prefix("HTTP/1.1 ")
                .or_else(|| line.strip_prefix("HTTP/1.0 "))
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse::<u16>().ok())
            {
                Some(code) => RawOutcome::Status(code),
                None if buf.is_empty() => RawOutcome::Dropped("closed without a response".into()),
                None => RawOutcome::Dropped(format!(
                    "not an HTTP response: {:?}",
                    &line[..line.len().min(40)]
                )),
            }
        }
    }
}

/// Builds and mutates requests from a seed.
pub struct Generator {
    rng: ChaCha20Rng,
    authority: String,
    key_pem: String,
    paths: FuzzPaths,
}

/// The target's endpoint paths, as its directory gives them: requests go
/// where the target serves, not to the default `/idprov/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzPaths {
    /// The directory.
    pub directory: String,
    /// The OOB endpoint.
    pub oob: String,
    /// The provisioning endpoint.
    pub provreq: String,
    /// The status template, with `{deviceID}`.
    pub status: String,
}

impl FuzzPaths {
    /// The paths of the reference server's default prefix.
    pub fn defaults() -> Self {
        FuzzPaths {
            directory: crate::core::messages::DIRECTORY_PATH.into(),
            oob: crate::core::messages::OOB_PATH.into(),
            provreq: crate::core::messages::PROVREQ_PATH.into(),
            status: crate::core::messages::STATUS_TEMPLATE.into(),
        }
    }

    /// The paths of a parsed directory fetched from `directory_url`.
    pub fn of(d: &crate::core::directory::Directory, directory_url: &str) -> Self {
        let path = |url: &str| {
            crate::core::directory::split_https_url(url)
                .map_or(url, |(_, p)| p)
                .to_string()
        };
        let defaults = Self::defaults();
        FuzzPaths {
            directory: path(directory_url),
            oob: d.post_oob_secret.as_deref().map_or(defaults.oob, path),
            provreq: path(&d.post_provision_request),
            status: d.status.as_deref().map_or(defaults.status, path),
        }
    }

    fn status_of(&self, id: &str) -> String {
        self.status.replace("{deviceID}", id)
    }

    /// The status path with nothing after its prefix.
    fn status_prefix(&self) -> &str {
        self.status
            .split_once("{deviceID}")
            .map_or(self.status.as_str(), |(p, _)| p)
    }
}
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "BREW",
    "G\u{e9}T",
];

impl Generator {
    /// A generator for a server at `authority` (`host:port`) serving
    /// `paths`.
    pub fn new(seed: u64, authority: &str, paths: FuzzPaths) -> Self {
        Generator {
            rng: ChaCha20Rng::seed_from_u64(seed),
            authority: authority.to_string(),
            key_pem: rcgen::KeyPair::generate()
                .map(|k| k.public_key_pem())
                .unwrap_or_default(),
            paths,
        }
    }

    fn valid_body(&mut self, path: &str) -> Vec<u8> {
        let id = format!("fz-{:x}", self.rng.gen::<u32>());
        match path {
            p if p == self.paths.oob => serde_json::to_vec(
                &serde_json::json!({"deviceID": id, "oobSecret": "s", "validUntil": ""}),
            )
            .unwrap_or_default(),
            p if p == self.paths.provreq => ProvisionRequest {
                device_id: id,
                ip: "127.0.0.1".into(),
                mac: String::new(),
                public_key_pem: self.key_pem.clone(),
                csr_pem: None,
                signature: String::new(),
            }
            .sign("s", KeyVariant::Raw),
            _ => Vec::new(),
        }
    }

    fn random_value(&mut self) -> String {
        match self.rng.gen_range(0..14) {
            12 | 13 => format!("\"{}\"", "d".repeat(self.rng.gen_range(65..3000))),
            0 => "null".into(),
            1 => "true".into(),
            2 => format!("{}", self.rng.gen::<i64>()),
            3 => format!("1{}", "0".repeat(self.rng.gen_range(20..5000))),
            4 => "1e999999".into(),
            5 => format!(
                "{}1{}",
                "[".repeat(self.rng.gen_range(10..20_000)),
                "]".repeat(self.rng.gen_range(0..20_000))
            ),
            6 => format!("{}{}", "{\"a\":".repeat(self.rng.gen_range(10..5000)), "1"),
            7 => format!("\"{}\"", "x".repeat(self.rng.gen_range(100..70_000))),
            8 => "\"\\ud800\"".into(),
            9 => "{}".into(),
            10 => "[]".into(),
            _ => format!(
                "\"{}\"",
                ["../x", "a/b", "", "..", "é", "\\u0000"]
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("")
            ),
        }
    }

    fn mutate_body(&mut self, mut body: Vec<u8>) -> (Vec<u8>, String) {
        let which = self.rng.gen_range(0..9);
        let label;
        match which {
            0 if !body.is_empty() => {
                for _ in 0..self.rng.gen_range(1..8) {
                    let i = self.rng.gen_range(0..body.len());
                    body[i] ^= 1 << self.rng.gen_range(0..8);
                }
                label = "bit flips";
            }
            1 if !body.is_empty() => {
                let n = self.rng.gen_range(0..body.len());
                body.truncate(n);
                label = "truncated";
            }
            2 | 3 => {
                let field = [
                    "deviceID",
                    "ip",
                    "mac",
                    "publicKeyPEM",
                    "signature",
                    "oobSecret",
                    "validUntil",
                    "csrPEM",
                ]
                .choose(&mut self.rng)
                .copied()
                .unwrap_or("deviceID");
                let v = self.random_value();
                let mut m: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&body).unwrap_or_default();
                m.remove(field);
                let rest = serde_json::to_string(&m).unwrap_or_else(|_| "{}".into());
                let inner = rest.trim_start_matches('{').trim_end_matches('}');
                body = format!(
                    "{{\"{field}\":{v}{}{inner}}}",
                    if inner.is_empty() { "" } else { "," }
                )
                .into_bytes();
                label = "field replaced";
            }
            4 => {
                let i = if body.is_empty() {
                    0
                } else {
                    self.rng.gen_range(0..body.len())
                };
                body.splice(i..i, [0xff, 0xfe, 0xc0, 0x80]);
                label = "invalid UTF-8";
            }
            5 => {
                let v = self.random_value();
                body = v.into_bytes();
                label = "random JSON value";
            }
            6 => {
                let s = String::from_utf8_lossy(&body).into_owned();
                body = s
                    .replacen('{', "{\"signature\":\"x\",\"deviceID\":\"dup\",", 1)
                    .into_bytes();
                label = "duplicate members";
            }
            7 => {
                let n = self.rng.gen_range(0..200);
                body = (0..n).map(|_| self.rng.gen::<u8>()).collect();
                label = "random bytes";
            }
            _ => label = "unmutated body",
        }
        (body, label.into())
    }

    /// The next request.
    pub fn next_request(&mut self) -> RawRequest {
        let p = &self.paths;
        let endpoints = [
            p.directory.clone(),
            p.oob.clone(),
            p.provreq.clone(),
            p.status_of("dev-1"),
        ];
        let path = endpoints
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_else(|| "/".into());
        let body = self.valid_body(&path);
        let (mut body, mut label) = self.mutate_body(body);
        let mut method = if path == self.paths.oob || path == self.paths.provreq {
            "POST"
        } else {
            "GET"
        }
        .to_string();
        let mut path = path.to_string();
        let mut headers: Vec<(String, String)> = vec![
            ("Host".into(), self.authority.clone()),
            ("Connection".into(), "close".into()),
            ("Content-Type".into(), "application/json".into()),
        ];
        let mut declared_len: Option<String> = Some(body.len().to_string());
        let mut chunked = false;
        let mut slow = false;
        let mut incomplete = false;
        match self.rng.gen_range(0..16) {
            0 => {
                method = METHODS
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("GET")
                    .into();
                label.push_str(", odd method");
            }
            1 => {
                let p = &self.paths;
                let status = p.status_prefix();
                let dir = p.directory.trim_start_matches('/');
                let parent = dir.split_once('/').map_or("", |(first, _)| first);
                path = [
                    format!("{status}.."),
                    format!("{status}%2e%2e"),
                    format!("{status}a%2fb"),
                    format!("/{dir}/"),
                    format!("/{parent}/../{dir}"),
                    format!("//{dir}"),
                    format!("{}?x=1&y", p.provreq),
                    status.to_string(),
                    "*".to_string(),
                ]
                .choose(&mut self.rng)
                .cloned()
                .unwrap_or_else(|| "/".into());
                label.push_str(", odd path");
            }
            2 => {
                path = self
                    .paths
                    .status_of(&"a".repeat(self.rng.gen_range(100..20_000)));
                label.push_str(", long path");
            }
            3 => {
                let v = [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "",
                    "application/json; charset=latin1",
                    "multipart/form-data; boundary=x",
                ]
                .choose(&mut self.rng)
                .copied()
                .unwrap_or("");
                headers[2].1 = v.into();
                label.push_str(", content type");
            }
            4 => {
                for i in 0..self.rng.gen_range(50..400) {
                    headers.push((format!("X-Fuzz-{i}"), "y".repeat(64)));
                }
                label.push_str(", many headers");
            }
            5 => {
                headers.push((
                    "X-Big".into(),
                    "z".repeat(self.rng.gen_range(10_000..90_000)),
                ));
                label.push_str(", huge header");
            }
            6 => {
                headers.push(("Bad Header Name".into(), "1".into()));
                label.push_str(", malformed header");
            }
            7 if self.rng.gen_ratio(1, 8) => {
                declared_len = Some(format!("{}", body.len() + self.rng.gen_range(1..50)));
                incomplete = true;
                label.push_str(", body shorter than Content-Length");
            }
            8 => {
                declared_len = Some("-1".into());
                label.push_str(", negative length");
            }
            9 => {
                headers.push(("Content-Length".into(), "0".into()));
                label.push_str(", duplicate length");
            }
            10 => {
                declared_len = None;
                chunked = true;
                label.push_str(", chunked");
            }
            11 if self.rng.gen_ratio(1, 4) => {
                slow = true;
                label.push_str(", slow writer");
            }
            12 => {
                body = vec![b' '; self.rng.gen_range(60_000..200_000)];
                declared_len = Some(body.len().to_string());
                label = "oversized body".into();
            }
            _ => {}
        }
        let admin = self.rng.gen_bool(0.5);
        let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
        for (k, v) in &headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if let Some(l) = declared_len {
            out.extend_from_slice(format!("Content-Length: {l}\r\n").as_bytes());
        }
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let bad = self.rng.gen_bool(0.3);
            incomplete |= bad;
            out.extend_from_slice(
                format!(
                    "{}\r\n",
                    if bad {
                        "zz".to_string()
                    } else {
                        format!("{:x}", body.len())
                    }
                )
                .as_bytes(),
            );
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n0\r\n\r\n");
        } else {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
        }
        RawRequest {
            bytes: out,
            admin,
            slow,
            incomplete,
            label,
        }
    }
}

struct Conn {
    host: String,
    port: u16,
    anon: Arc<ClientConfig>,
    admin: Arc<ClientConfig>,
}

fn conn_for(target: &ServerTarget) -> Result<Conn, SetupError> {
    let t = crate::net::parse_url(&target.url).map_err(|e| SetupError(e.to_string()))?;
    let mk = |id: Option<&ClientIdentity>| {
        client_config(&ServerTrust::Pinned(target.ca_pem.clone()), id)
            .map(Arc::new)
            .map_err(|e| SetupError(format!("TLS setup: {e}")))
    };
    Ok(Conn {
        host: t.host,
        port: t.port,
        anon: mk(None)?,
        admin: mk(Some(&target.admin))?,
    })
}

/// Directory answers and an honest provisioning succeeds.
pub async fn health_check(target: &ServerTarget, n: u64) -> Result<(), String> {
    let admin = crate::admin::AdminClient {
        url: target.url.clone(),
        ca_pem: target.ca_pem.clone(),
        identity: target.admin.clone(),
        timeout: Duration::from_secs(10),
    };
    let device = format!("fuzz-health-{n}");
    admin
        .post_oob(&device, "health", "")
        .await
        .map_err(|e| format!("posting a secret: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut o = crate::client::ClientOptions::new(&device, Some("health"), dir.path());
    o.url = Some(target.url.clone());
    let ca = dir.path().join("pinned-ca.pem");
    std::fs::write(&ca, &target.ca_pem).map_err(|e| e.to_string())?;
    o.ca = Some(ca);
    o.timeout = Duration::from_secs(20);
    o.dir = dir.path().join("dev");
    crate::client::run(&o)
        .await
        .map(|_| ())
        .map_err(|e| format!("honest provisioning: {e}"))
}

/// The endpoint paths the target's directory names; a directory that does
/// not parse is a setup error (the suite cannot know where to send).
async fn target_paths(target: &ServerTarget) -> Result<FuzzPaths, SetupError> {
    let cfg = client_config(&ServerTrust::Pinned(target.ca_pem.clone()), None)
        .map_err(|e| SetupError(format!("TLS setup: {e}")))?;
    let r = crate::net::request(
        &target.url,
        http::Method::GET,
        None,
        Arc::new(cfg),
        Duration::from_secs(15),
    )
    .await
    .map_err(|e| SetupError(format!("fetching the directory {}: {e}", target.url)))?;
    let d = crate::core::directory::parse_directory(&r.body, &target.url).map_err(|e| {
        SetupError(format!(
            "the directory at {} (HTTP {}) does not parse, so the fuzzer cannot know the endpoints: {e}",
            target.url, r.status
        ))
    })?;
    Ok(FuzzPaths::of(&d, &target.url))
}

/// Result of a fuzzing run.
pub struct FuzzResult {
    /// Requests sent.
    pub sent: u64,
    /// Findings with their reproducer files.
    pub findings: Vec<(Reproducer, PathBuf)>,
    /// The report (also written to the report dir).
    pub report: Report,
    /// How often each HTTP status was answered.
    pub statuses: std::collections::BTreeMap<u16, u64>,
}

fn save_repro(dir: &Path, r: &Reproducer) -> Result<PathBuf, SetupError> {
    let d = dir.join("fuzz-reproducers");
    std::fs::create_dir_all(&d).map_err(|e| SetupError(format!("{}: {e}", d.display())))?;
    let kind = crate::check::scenario::name_of(&r.kind);
    let p = d.join(format!("{kind}-{}.json", r.index));
    let text = serde_json::to_vec_pretty(r).map_err(|e| SetupError(e.to_string()))?;
    crate::fsutil::write_atomic(&p, &text, crate::fsutil::MODE_PUBLIC)
        .map_err(|e| SetupError(e.to_string()))?;
    Ok(p)
}

/// Fuzzes `target` and writes reports and reproducers.
pub async fn fuzz_server(
    target: &ServerTarget,
    opts: &FuzzOptions,
) -> Result<FuzzResult, SetupError> {
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc();
    let conn = Arc::new(conn_for(target)?);
    health_check(target, 0)
        .await
        .map_err(|e| SetupError(format!("the target is not healthy before fuzzing: {e}")))?;
    let authority = crate::net::parse_url(&target.url)
        .map_err(|e| SetupError(e.to_string()))?
        .authority;
    let paths = target_paths(target).await?;
    let mut gen = Generator::new(opts.seed, &authority, paths);
    let bar = crate::progress::bar(
        opts.requests,
        opts.progress,
        "{spinner} fuzz {pos}/{len} [{bar:40}] {per_sec} · {msg}",
    );
    let mut findings: Vec<(Reproducer, PathBuf)> = Vec::new();
    let mut counts = [0u64; 4];
    let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
    let mut sent = 0u64;
    let mut batch_no = 0u64;
    let mut stop = false;
    // A sliding window of requests in flight; a health check after every
    // `batch` answers (slow requests keep running meanwhile).
    let mut inflight = tokio::task::JoinSet::new();
    let mut next = 0u64;
    let mut done = 0u64;
    while (next < opts.requests || !inflight.is_empty()) && !stop {
        while next < opts.requests && inflight.len() < opts.concurrency.max(1) {
            let r = gen.next_request();
            let (conn, hang, idx) = (conn.clone(), opts.hang_timeout, next);
            inflight.spawn(async move {
                let cfg = if r.admin {
                    conn.admin.clone()
                } else {
                    conn.anon.clone()
                };
                let out = send_raw(&conn.host, conn.port, cfg, &r, hang).await;
                (idx, r, out)
            });
            next += 1;
        }
        let Some(joined) = inflight.join_next().await else {
            break;
        };
        let (idx, r, out) = crate::check::task_result(joined, "a fuzzing request")?;
        done += 1;
        sent = done;
        bar.inc(1);
        let finding = match &out {
            RawOutcome::Status(s) => {
                *statuses.entry(*s).or_default() += 1;
                is_robustness_failure(*s)
                    .then(|| (FindingKind::ServerError, format!("HTTP {s} ({})", r.label)))
            }
            RawOutcome::Hang => Some((
                FindingKind::Hang,
                format!("no answer within {:?} ({})", opts.hang_timeout, r.label),
            )),
            RawOutcome::Dropped(_) if r.incomplete => None,
            RawOutcome::Dropped(e) => Some((FindingKind::Dropped, format!("{e} ({})", r.label))),
        };
        if let Some((kind, detail)) = finding {
            counts[kind as usize] += 1;
            if findings.len() < 100 {
                let repro = Reproducer {
                    format: "idprov-fuzz-reproducer/1".into(),
                    target: target.url.clone(),
                    seed: opts.seed,
                    index: idx,
                    kind,
                    detail,
                    credential: if r.admin {
                        "admin".into()
                    } else {
                        "nobody".into()
                    },
                    request_b64: base64::engine::general_purpose::STANDARD.encode(&r.bytes),
                    slow: r.slow,
                };
                let p = save_repro(&opts.report_dir, &repro)?;
                findings.push((repro, p));
                bar.set_message(format!("{} findings", findings.len()));
            }
        }
        if done % opts.batch.max(1) == 0 || (next >= opts.requests && inflight.is_empty()) {
            batch_no += 1;
            if let Err(e) = health_check(target, batch_no).await {
                counts[FindingKind::Unhealthy as usize] += 1;
                let repro = Reproducer {
                    format: "idprov-fuzz-reproducer/1".into(),
                    target: target.url.clone(),
                    seed: opts.seed,
                    index: done,
                    kind: FindingKind::Unhealthy,
                    detail: format!("after {done} requests: {e}"),
                    credential: "nobody".into(),
                    request_b64: String::new(),
                    slow: false,
                };
                let p = save_repro(&opts.report_dir, &repro)?;
                findings.push((repro, p));
                stop = true;
            }
        }
    }
    inflight.abort_all();
    bar.finish_and_clear();
    let report = build_report(
        target, opts, sent, &counts, &statuses, &findings, started, started_at,
    );
    report
        .write_all(&opts.report_dir)
        .map_err(|e| SetupError(format!("writing reports: {e}")))?;
    Ok(FuzzResult {
        sent,
        findings,
        report,
        statuses,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    target: &ServerTarget,
    opts: &FuzzOptions,
    sent: u64,
    counts: &[u64; 4],
    statuses: &std::collections::BTreeMap<u16, u64>,
    findings: &[(Reproducer, PathBuf)],
    started: Instant,
    started_at: time::OffsetDateTime,
) -> Report {
    let hist = statuses
        .iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let kinds = [
        (
            FindingKind::ServerError,
            "server.input.fuzz-no-5xx",
            "No mutated request gets 500 or 502–504 (an unhandled error or a crash)",
        ),
        (
            FindingKind::Hang,
            "server.input.fuzz-no-hang",
            "Every mutated request is answered in time",
        ),
        (
            FindingKind::Dropped,
            "server.input.fuzz-no-dropped-connection",
            "No connection closes without a response",
        ),
        (
            FindingKind::Unhealthy,
            "server.input.fuzz-stays-healthy",
            "After every batch the directory answers and an honest provisioning succeeds",
        ),
    ];
    let mut cases: Vec<CaseResult> = kinds
        .iter()
        .map(|(k, id, title)| {
            let mine: Vec<&(Reproducer, PathBuf)> =
                findings.iter().filter(|(r, _)| r.kind == *k).collect();
            let n = counts[*k as usize];
            CaseResult {
                id: id.to_string(),
                title: title.to_string(),
                section: "PROTOCOL §1".into(),
                level: Level::Must,
                rules: if *k == FindingKind::Hang {
                    vec!["transport.robust".into(), "transport.timeouts".into()]
                } else {
                    vec!["transport.robust".into()]
                },
                verdict: if n == 0 { Verdict::Pass } else { Verdict::Fail },
                detail: if n == 0 {
                    format!("{sent} requests; statuses {hist}")
                } else {
                    format!(
                        "{n} of {sent} requests; first: {}",
                        mine.first().map(|(r, _)| r.detail.as_str()).unwrap_or("")
                    )
                },
                ms: 0,
                devices: vec![],
                evidence: mine
                    .iter()
                    .map(|(r, p)| {
                        Exchange::note(
                            0,
                            format!(
                                "request #{}: {} — reproducer {}",
                                r.index,
                                r.detail,
                                p.display()
                            ),
                        )
                    })
                    .collect(),
                known_failing: None,
                own_verdict: None,
                incidental: Vec::new(),
            }
        })
        .collect();
    let deliberate: Vec<String> = statuses
        .iter()
        .filter(|(s, _)| **s >= 500 && !is_robustness_failure(**s))
        .map(|(s, n)| format!("{s}×{n}"))
        .collect();
    if !deliberate.is_empty() {
        cases.push(CaseResult {
            id: "server.input.fuzz-deliberate-5xx".into(),
            title: "Other 5xx answers (deliberate, e.g. 501 for an unknown method): noted, not findings"
                .into(),
            section: "PROTOCOL §1".into(),
            level: Level::May,
            rules: vec!["transport.unknown-method".into()],
            verdict: Verdict::Info,
            detail: format!(
                "{}; the conformance cases judge 405 vs 501 for the methods the profile names",
                deliberate.join(" ")
            ),
            ms: 0,
            devices: vec![],
            evidence: vec![],
            known_failing: None,
            own_verdict: None,
            incidental: Vec::new(),
        });
    }
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.id.clone())
        .collect();
    let outcome = Outcome {
        failed: !failed.is_empty(),
        result: if failed.is_empty() {
            crate::check::report::RunResult::Pass
        } else {
            crate::check::report::RunResult::Fail
        },
        counted_failures: failed,
        ..Default::default()
    };
    Report::assemble(
        "fuzz",
        target.url.clone(),
        opts.seed,
        started_at,
        started.elapsed(),
        cases,
        outcome,
    )
}

/// Sends a reproducer again; returns the finding if it reproduces.
pub async fn replay(
    target: &ServerTarget,
    repro: &Reproducer,
    hang: Duration,
) -> Result<Option<String>, SetupError> {
    if repro.kind == FindingKind::Unhealthy {
        return health_check(target, 999_999)
            .await
            .err()
            .map(Some)
            .map_or(Ok(None), Ok);
    }
    let conn = conn_for(target)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&repro.request_b64)
        .map_err(|e| SetupError(format!("reproducer: {e}")))?;
    let req = RawRequest {
        bytes,
        admin: repro.credential == "admin",
        slow: repro.slow,
        incomplete: false,
        label: "replay".into(),
    };
    let cfg = if req.admin {
        conn.admin.clone()
    } else {
        conn.anon.clone()
    };
    Ok(
        match send_raw(&conn.host, conn.port, cfg, &req, hang).await {
            RawOutcome::Status(s) if is_robustness_failure(s) => Some(format!("HTTP {s}")),
            RawOutcome::Status(_) => None,
            RawOutcome::Hang => Some("hang".into()),
            RawOutcome::Dropped(e) => Some(format!("dropped: {e}")),
        },
    )
}

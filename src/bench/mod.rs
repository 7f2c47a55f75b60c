//! `idprov bench`: a load generator that speaks IDProv to a server (by
//! default the reference server, started as a separate process so its CPU
//! time and memory can be read) and reports provisions per second, latency
//! percentiles, errors by kind, server CPU per provisioning and peak RSS —
//! beside the machine's limits from `openssl speed`.

pub mod compare;
pub mod floor;
pub mod histogram;
pub mod limits;
pub mod merge;
pub mod report;
pub mod shard;

pub use shard::Shard;

use crate::check::runner::ServerTarget;
use crate::check::SetupError;
use crate::client::check_certificate;
use crate::core::messages::{
    ProvisionRequest, ProvisionResponse, ProvisionStatus, Signed, OOB_PATH,
};
use crate::core::sign::{self, KeyVariant};
use crate::net::{self, KeptAlive};
use crate::pki::cert_der_from_pem;
use crate::tls::{client_config, ServerTrust};
use http::Method;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of a benchmark run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Devices provisioned per concurrency level.
    pub devices: usize,
    /// Concurrency levels to sweep.
    pub concurrency: Vec<usize>,
    /// Reuse device connections instead of a fresh TLS handshake each.
    pub reuse: bool,
    /// PID of a local server, for CPU and memory figures.
    pub server_pid: Option<u32>,
    /// Show a progress bar.
    pub progress: bool,
    /// This generator's slice of the devices.
    pub shard: Shard,
    /// Check every answer (signature, certificate). Off only against the
    /// stack floor, whose answer is a fixed body.
    pub verify: bool,
}

/// Figures of one concurrency level.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LevelResult {
    /// Concurrency.
    pub concurrency: usize,
    /// Devices attempted.
    pub devices: usize,
    /// Devices that ended with a verified certificate.
    pub provisioned: usize,
    /// Wall time of the level, seconds.
    pub seconds: f64,
    /// Provisionings per second.
    pub per_second: f64,
    /// Latency of one device's provisioning (secret post + request), ms:
    /// percentiles of [`LevelResult::histogram`].
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Errors by kind.
    pub errors: BTreeMap<String, usize>,
    /// Server CPU time per provisioning, µs (local server only).
    pub server_cpu_us: Option<f64>,
    /// Server CPU cores used on average (local server only).
    pub server_cores: Option<f64>,
    /// Server peak RSS so far, KiB (local server only).
    pub server_peak_rss_kib: Option<u64>,
    /// Server CPU seconds over the level (local server only).
    #[serde(default)]
    pub server_cpu_seconds: Option<f64>,
    /// The load generator's own CPU time per provisioning, µs: this
    /// process (every thread) inside the timed window, which holds the
    /// devices' TLS handshakes, secret posts, requests and answer checks;
    /// their keys and signed requests are prepared before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cpu_us: Option<f64>,
    /// The load generator's CPU seconds over the level (summed over the
    /// generators of a merged run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cpu_seconds: Option<f64>,
    /// Latencies of the provisioned devices, µs: HdrHistogram V2 deflate,
    /// base64 ([`histogram`]). Empty in files from before histograms.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub histogram: String,
}

impl LevelResult {
    /// A level's figures from its latency histogram (one per provisioned
    /// device) and the server's CPU seconds over the level.
    pub fn from_latencies(
        concurrency: usize,
        devices: usize,
        seconds: f64,
        lat: &histogram::Latency,
        errors: BTreeMap<String, usize>,
        server_cpu: Option<f64>,
        server_peak_rss_kib: Option<u64>,
    ) -> Result<Self, histogram::HistogramError> {
        let provisioned = usize::try_from(lat.len()).unwrap_or(usize::MAX);
        Ok(LevelResult {
            concurrency,
            devices,
            provisioned,
            seconds,
            per_second: provisioned as f64 / seconds.max(1e-9),
            p50_ms: histogram::ms_at(lat, 0.50),
            p90_ms: histogram::ms_at(lat, 0.90),
            p99_ms: histogram::ms_at(lat, 0.99),
            max_ms: histogram::max_ms(lat),
            errors,
            server_cpu_us: server_cpu.map(|s| s * 1e6 / provisioned.max(1) as f64),
            server_cores: server_cpu.map(|s| s / seconds.max(1e-9)),
            server_peak_rss_kib,
            server_cpu_seconds: server_cpu,
            generator_cpu_us: None,
            generator_cpu_seconds: None,
            histogram: histogram::encode(lat)?,
        })
    }

    /// The level with the load generator's CPU seconds over it.
    pub fn with_generator_cpu(mut self, seconds: Option<f64>) -> Self {
        self.generator_cpu_us = seconds.map(|s| s * 1e6 / self.provisioned.max(1) as f64);
        self.generator_cpu_seconds = seconds;
        self
    }
}

/// A whole run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BenchResult {
    /// Target URL.
    pub target: String,
    /// Fresh TLS per device (false with --reuse).
    pub fresh_tls: bool,
    /// Levels in order.
    pub levels: Vec<LevelResult>,
    /// The machine's limits.
    pub limits: limits::Limits,
    /// Logical CPUs.
    pub cpus: usize,
    /// When, RFC 3339.
    pub started: String,
    /// The slice of devices this generator ran (`--shard I/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// The files `idprov bench merge` combined into this result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// The crypto floor, measured in the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto_floor: Option<floor::CryptoFloor>,
    /// The device's side of the crypto floor (the load generator's floor),
    /// measured in the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_floor: Option<floor::ClientFloor>,
    /// The same levels against the stack floor (`--floor`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack_floor: Vec<LevelResult>,
}

/// CPU seconds (user + system) of a process, from /proc.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // Linux reports clock ticks; USER_HZ is 100 on every supported platform.
    Some((utime + stime) / 100.0)
}

/// Peak resident set (VmHWM) of a process, KiB.
pub fn proc_peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Where a level sends its requests and how it judges the answers.
struct Plan {
    oob_path: String,
    provreq: String,
    ca_der: Vec<u8>,
    verify: bool,
}

struct Prepared {
    device_id: String,
    secret: String,
    body: Vec<u8>,
    spki: Vec<u8>,
}

/// Runs one concurrency level.
async fn level(
    target: &ServerTarget,
    opts: &BenchOptions,
    c: usize,
    run_id: usize,
) -> Result<LevelResult, SetupError> {
    let t = net::parse_url(&target.url).map_err(|e| SetupError(e.to_string()))?;
    let origin = format!("https://{}", t.authority);
    let dir = crate::core::directory::parse_directory(
        &net::request(
            &target.url,
            Method::GET,
            None,
            Arc::new(
                client_config(&ServerTrust::Pinned(target.ca_pem.clone()), None)
                    .map_err(|e| SetupError(e.to_string()))?,
            ),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| SetupError(format!("directory: {e}")))?
        .body,
        &target.url,
    )
    .map_err(|e| SetupError(format!("directory: {e}")))?;
    let oob_path = dir
        .post_oob_secret
        .as_deref()
        .and_then(|u| u.strip_prefix(&origin))
        .unwrap_or(OOB_PATH)
        .to_string();
    let plan = Arc::new(Plan {
        provreq: dir.post_provision_request.clone(),
        oob_path,
        ca_der: cert_der_from_pem(&target.ca_pem).map_err(|e| SetupError(e.to_string()))?,
        verify: opts.verify,
    });
    // Keys and signed requests are prepared before the clock starts. Device
    // numbers run over the whole run, so shards never share an ID.
    let mut prepared = Vec::with_capacity(opts.shard.len(opts.devices));
    for i in (0..opts.devices).filter(|&i| opts.shard.contains(i)) {
        let key = rcgen::KeyPair::generate().map_err(|e| SetupError(e.to_string()))?;
        let device_id = format!("bench-{run_id}-{c}-{i}");
        let secret = format!("bench-secret-{i}-{:016x}", rand::random::<u64>());
        let body = ProvisionRequest {
            device_id: device_id.clone(),
            ip: "127.0.0.1".into(),
            mac: String::new(),
            public_key_pem: key.public_key_pem(),
            csr_pem: None,
            signature: String::new(),
        }
        .sign(&secret, KeyVariant::Raw);
        prepared.push(Prepared {
            device_id,
            secret,
            body,
            spki: rcgen::PublicKeyData::subject_public_key_info(&key),
        });
    }
    let admin_cfg = Arc::new(
        client_config(
            &ServerTrust::Pinned(target.ca_pem.clone()),
            Some(&target.admin),
        )
        .map_err(|e| SetupError(e.to_string()))?,
    );
    let dev_cfg = Arc::new(
        client_config(&ServerTrust::Pinned(target.ca_pem.clone()), None)
            .map_err(|e| SetupError(e.to_string()))?,
    );
    let attempted = prepared.len();
    let queue = Arc::new(std::sync::Mutex::new(prepared));
    let bar = crate::progress::bar(
        attempted as u64,
        opts.progress,
        "{spinner} concurrency {prefix}: {pos}/{len} [{bar:40}] {per_sec}",
    );
    bar.set_prefix(c.to_string());
    let cpu0 = opts.server_pid.and_then(proc_cpu_seconds);
    let own0 = proc_cpu_seconds(std::process::id());
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c.max(1) {
        let (queue, admin_cfg, dev_cfg, plan, bar) = (
            queue.clone(),
            admin_cfg.clone(),
            dev_cfg.clone(),
            plan.clone(),
            bar.clone(),
        );
        let url = target.url.clone();
        let reuse = opts.reuse;
        workers.push(tokio::spawn(async move {
            let mut admin = KeptAlive::new(&url, admin_cfg, Duration::from_secs(30)).ok();
            let mut device_conn = if reuse {
                KeptAlive::new(&url, dev_cfg.clone(), Duration::from_secs(30)).ok()
            } else {
                None
            };
            let mut lat = histogram::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                let Some(p) = next else { break };
                let t0 = Instant::now();
                let res = one(&mut admin, &mut device_conn, &dev_cfg, &plan, &p).await;
                match res {
                    Ok(()) => histogram::record(&mut lat, t0.elapsed()),
                    Err(kind) => *errors.entry(kind).or_default() += 1,
                }
                bar.inc(1);
            }
            (lat, errors)
        }));
    }
    let mut lat = histogram::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for w in workers {
        let (l, e) = w.await.map_err(|e| SetupError(e.to_string()))?;
        lat.add(l)
            .map_err(|e| SetupError(format!("latency histogram: {e:?}")))?;
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let cpu1 = opts.server_pid.and_then(proc_cpu_seconds);
    let own1 = proc_cpu_seconds(std::process::id());
    let server_cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
    let generator_cpu = own0.zip(own1).map(|(a, b)| b - a);
    LevelResult::from_latencies(
        c,
        attempted,
        seconds,
        &lat,
        errors,
        server_cpu,
        opts.server_pid.and_then(proc_peak_rss_kib),
    )
    .map(|l| l.with_generator_cpu(generator_cpu))
    .map_err(|e| SetupError(e.to_string()))
}

async fn one(
    admin: &mut Option<KeptAlive>,
    device_conn: &mut Option<KeptAlive>,
    dev_cfg: &Arc<rustls::ClientConfig>,
    plan: &Plan,
    p: &Prepared,
) -> Result<(), String> {
    let Plan {
        oob_path,
        provreq,
        ca_der,
        verify,
    } = plan;
    let Some(admin) = admin.as_mut() else {
        return Err("setup".into());
    };
    let post = serde_json::to_vec(
        &serde_json::json!({"deviceID": p.device_id, "oobSecret": p.secret, "validUntil": ""}),
    )
    .map_err(|_| "setup".to_string())?;
    match admin.send(Method::POST, oob_path, post).await {
        Ok((200, _)) => {}
        Ok((s, _)) => return Err(format!("oob-http-{s}")),
        Err(e) => return Err(format!("oob-{}", kind_of(&e))),
    }
    let (status, body) = match device_conn {
        Some(conn) => {
            let path = net::parse_url(provreq).map(|t| t.path).unwrap_or_default();
            conn.send(Method::POST, &path, p.body.clone())
                .await
                .map_err(|e| format!("provreq-{}", kind_of(&e)))?
        }
        None => {
            let r = net::request(
                provreq,
                Method::POST,
                Some(p.body.clone()),
                dev_cfg.clone(),
                Duration::from_secs(30),
            )
            .await
            .map_err(|e| format!("provreq-{}", kind_of(&e)))?;
            (r.status, r.body)
        }
    };
    if status != 200 {
        return Err(format!("provreq-http-{status}"));
    }
    if !*verify {
        return Ok(());
    }
    let resp: ProvisionResponse =
        serde_json::from_slice(&body).map_err(|_| "bad-response".to_string())?;
    if resp.status != ProvisionStatus::Approved {
        return Err(format!("status-{}", resp.status.as_str()));
    }
    sign::verify_raw(&body, p.secret.as_bytes()).map_err(|_| "bad-signature".to_string())?;
    check_certificate(
        &resp,
        ca_der,
        &p.device_id,
        &p.spki,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|_| "bad-certificate".to_string())?;
    Ok(())
}

fn kind_of(e: &net::NetError) -> &'static str {
    match e {
        net::NetError::Connect(..) => "connect",
        net::NetError::Tls(..) => "tls",
        net::NetError::Timeout(_) => "timeout",
        net::NetError::TooLarge => "too-large",
        _ => "http",
    }
}

/// Runs every concurrency level against `target`.
pub async fn run(target: &ServerTarget, opts: &BenchOptions) -> Result<BenchResult, SetupError> {
    let started = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let limits = tokio::task::spawn_blocking(|| limits::measure(1, 400))
        .await
        .unwrap_or_default();
    // About 1 s on this machine's provider, before the load starts.
    let crypto_floor = tokio::task::spawn_blocking(|| floor::measure(0.4))
        .await
        .map_err(|e| SetupError(e.to_string()))?
        .map_err(|e| SetupError(format!("crypto floor: {e}")))?;
    let verifies = opts.verify;
    let client_floor = tokio::task::spawn_blocking(move || floor::measure_client(0.4, verifies))
        .await
        .map_err(|e| SetupError(e.to_string()))?
        .map_err(|e| SetupError(format!("client floor: {e}")))?;
    let levels = levels(target, opts).await?;
    Ok(BenchResult {
        target: target.url.clone(),
        fresh_tls: !opts.reuse,
        levels,
        limits,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        started,
        shard: (opts.shard != Shard::WHOLE).then_some(opts.shard),
        merged_from: Vec::new(),
        crypto_floor: Some(crypto_floor),
        client_floor: Some(client_floor),
        stack_floor: Vec::new(),
    })
}

/// Runs every concurrency level against `target`, without the limits and
/// floors (`--floor` runs the stack floor this way).
pub async fn levels(
    target: &ServerTarget,
    opts: &BenchOptions,
) -> Result<Vec<LevelResult>, SetupError> {
    let mut levels = Vec::new();
    for (i, &c) in opts.concurrency.iter().enumerate() {
        levels.push(level(target, opts, c, i).await?);
    }
    Ok(levels)
}

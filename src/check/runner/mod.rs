//! Interprets scenario steps against a live server over real TLS and
//! records every exchange as evidence.

mod crash;
mod csr_sweep;
mod directory;
mod load;
mod observe;
mod oob;
mod provision;
mod raw;
mod relate;
mod request;
mod restart;
mod status;
mod sweep;
mod together;
mod transport;
mod wire;

use super::report::{CaseResult, Exchange, Verdict};
use super::scenario::{Action, Scenario, Step};
use crate::check::profile::{check_device_certificate, Expected};
use crate::core::directory::{decode_ca, parse_directory, split_https_url, Directory};
use crate::core::messages::{OOB_PATH, PROVREQ_PATH, STATUS_TEMPLATE};
use crate::core::sign::{self, KeyVariant};
use crate::net::{self, HttpsResponse};
use crate::pki::{cert_der_from_pem, verify_chain, CertAuthority, Usage};
use crate::tls::{client_config, ClientIdentity, ServerTrust};
use http::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rustls::ClientConfig;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const RSA2048_PUB: &str = include_str!("keys/rsa2048.pub");
const RSA1024_PUB: &str = include_str!("keys/rsa1024.pub");
const EVIDENCE_BODY_LIMIT: usize = 4096;

/// A server under test.
#[derive(Clone)]
pub struct ServerTarget {
    /// Directory URL.
    pub url: String,
    /// CA the server's TLS chains to and that signs its certificates.
    pub ca_pem: String,
    /// Admin (or plugin) credential.
    pub admin: ClientIdentity,
    /// A plugin credential, when known.
    pub plugin: Option<ClientIdentity>,
    /// The CA key, when known (embedded server): enables cases that need
    /// certificates the server would not issue (expired, other OU).
    pub ca_key_pem: Option<String>,
    /// Capabilities known without asking (e.g. the embedded server's).
    pub capabilities: Vec<String>,
    /// The target's clock, when the suite runs the server in-process: a
    /// `wait` step with nothing else running moves it instead of sleeping.
    pub clock: Option<crate::server::clock::SkewedClock>,
    /// How to restart the server (`--restart-cmd`, or the in-process
    /// server's own stop and start); the restart cases need it.
    pub restarter: Option<std::sync::Arc<dyn crate::check::lifecycle::Restarter>>,
}

/// Shared, read-only context of a run.
pub struct RunContext {
    /// The target.
    pub target: ServerTarget,
    /// Run seed.
    pub seed: u64,
    /// This run's component of every device ID (recorded in the report),
    /// so that two runs with one seed against one server do not meet each
    /// other's devices.
    pub run_id: u32,
    /// Capabilities in effect.
    pub capabilities: BTreeSet<String>,
    /// Per-request time limit.
    pub request_timeout: Duration,
    /// A CA unrelated to the target, for foreign credentials.
    pub foreign_ca: CertAuthority,
    /// Every certificate serial seen in the run.
    pub serials: crate::check::profile::SerialLedger,
    /// Held shared by exploration sequences, alone by one that moves the
    /// target's clock.
    pub(crate) clock_gate: tokio::sync::RwLock<()>,
}

use super::step::{fail, StepError, StepResult};

#[derive(Clone)]
struct Saved {
    identity: Option<ClientIdentity>,
}

struct Case<'a> {
    ctx: &'a RunContext,
    case_id: String,
    /// The rules the case exists for: a violation of any other rule found
    /// on the way is incidental.
    rules: Vec<String>,
    /// Violations of rules that are not the case's own, found on the way.
    incidental: std::sync::Mutex<Vec<super::report::Incidental>>,
    /// The last secret each device ID was given by an accepted OOB post.
    posted: HashMap<String, String>,
    /// The certificates that may be the latest issued to each device ID in
    /// this case: one after a request on its own, any of those a group of
    /// concurrent requests obtained (until a status read shows which).
    last_cert: HashMap<String, Vec<String>>,
    rng: ChaCha20Rng,
    slug: String,
    /// Whether the case runs alone (only then may a wait move the clock).
    exclusive: bool,
    devices: HashMap<String, String>,
    secrets: HashMap<String, String>,
    saved: HashMap<String, Saved>,
    last_body: HashMap<String, Vec<u8>>,
    /// The status and body of the last answer a request got (`None` when
    /// the last request got none).
    last_response: Option<(u16, Vec<u8>)>,
    evidence: Vec<Exchange>,
    configs: HashMap<String, Arc<ClientConfig>>,
    directory: Option<Directory>,
    step_no: usize,
    /// A member of a `together` group: which certificate is the latest
    /// depends on the order the group takes effect in, judged by the group.
    in_group: bool,
}

fn case_seed(seed: u64, id: &str) -> u64 {
    // FNV-1a over the id, mixed with the run seed: stable across runs.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^ seed
}

fn truncate(text: &str) -> String {
    if text.len() <= EVIDENCE_BODY_LIMIT {
        text.to_string()
    } else {
        let mut end = EVIDENCE_BODY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes in all)", &text[..end], text.len())
    }
}

/// Runs one case to a verdict.
pub async fn run_case(sc: &Scenario, ctx: &RunContext, timeout: Duration) -> CaseResult {
    let started = Instant::now();
    let mut result = CaseResult::new(sc);
    if let Some(reason) = super::missing_capabilities(sc, &ctx.capabilities) {
        result.verdict = Verdict::Skip;
        result.detail = reason;
        return result;
    }
    let slug: String = sc
        .id
        .split_once('.')
        .map_or(sc.id.as_str(), |(_, rest)| rest)
        .replace('.', "-")
        .chars()
        .take(40)
        .collect();
    let mut case = Case {
        ctx,
        case_id: sc.id.clone(),
        rules: sc.rules.clone(),
        incidental: std::sync::Mutex::new(Vec::new()),
        posted: HashMap::new(),
        last_cert: HashMap::new(),
        rng: ChaCha20Rng::seed_from_u64(case_seed(ctx.seed, &sc.id)),
        slug,
        exclusive: sc.exclusive,
        devices: HashMap::new(),
        secrets: HashMap::new(),
        saved: HashMap::new(),
        last_body: HashMap::new(),
        last_response: None,
        evidence: Vec::new(),
        configs: HashMap::new(),
        directory: None,
        step_no: 0,
        in_group: false,
    };
    let outcome = tokio::time::timeout(timeout, async {
        let mut infos = Vec::new();
        for (i, step) in sc.steps.iter().enumerate() {
            case.step_no = i + 1;
            match case.step(step).await {
                Ok(Some(info)) => infos.push(info),
                Ok(None) => {}
                Err(e) => return Err((i + 1, e)),
            }
        }
        Ok(infos)
    })
    .await;
    result.verdict = Verdict::Pass;
    match outcome {
        Err(_) => {
            result.verdict = Verdict::Fail;
            result.detail = format!("timed out after {timeout:?} at step {}", case.step_no);
        }
        Ok(Err((n, StepError::Fail(m) | StepError::Setup(m)))) => {
            result.verdict = Verdict::Fail;
            result.detail = format!("step {n} ({}): {m}", describe(&sc.steps[n - 1]));
        }
        Ok(Err((_, StepError::Skip(m)))) => {
            result.verdict = Verdict::Skip;
            result.detail = m;
        }
        Ok(Err((n, StepError::Inconclusive(m)))) => {
            result.verdict = Verdict::Inconclusive;
            result.detail = format!("step {n} ({}): {m}", describe(&sc.steps[n - 1]));
        }
        Ok(Ok(infos)) if !infos.is_empty() => {
            result.verdict = Verdict::Info;
            result.detail = infos.join("; ");
        }
        Ok(Ok(_)) => {}
    }
    // Incidental violations make the verdict worse, never better; the
    // detail keeps the case's own verdict first.
    let incidental = case
        .incidental
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    if !incidental.is_empty() {
        let own = match result.verdict {
            Verdict::Pass => "its own rule held".to_string(),
            Verdict::Fail => format!("own: {}", result.detail),
            Verdict::Info => format!("own (observation): {}", result.detail),
            Verdict::Skip => format!("own (not judged): {}", result.detail),
            Verdict::Inconclusive => format!("own (not decided): {}", result.detail),
        };
        let listed: Vec<String> = incidental
            .iter()
            .map(|i| format!("{} at step {}: {}", i.rule, i.step, i.detail))
            .collect();
        result.own_verdict = Some(result.verdict);
        result.verdict = Verdict::Fail;
        result.detail = format!("{own}; incidental: {}", listed.join("; "));
        result.incidental = incidental;
    }
    // Mask every secret of the case in the evidence.
    let secrets: Vec<String> = case
        .secrets
        .values()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    for ex in &mut case.evidence {
        for s in &secrets {
            ex.request_body = ex.request_body.replace(s.as_str(), "«secret»");
            ex.response_body = ex.response_body.replace(s.as_str(), "«secret»");
        }
    }
    result.evidence = case.evidence;
    let mut devices: Vec<String> = case.devices.into_values().collect();
    devices.sort();
    result.devices = devices;
    result.ms = started.elapsed().as_millis() as u64;
    result
}

fn describe(s: &Step) -> String {
    let mut d = s
        .action
        .as_ref()
        .map(super::scenario::name_of)
        .unwrap_or_default();
    if let Some(x) = &s.as_ {
        d.push_str(&format!(" as {x}"));
    }
    if let Some(x) = s.device.as_ref().or(s.device_literal.as_ref()) {
        let shown: String = x.chars().take(24).collect();
        d.push_str(&format!(" device {shown:?}"));
    }
    d
}

/// What a step expects of an Approved answer with a certificate.
fn approved() -> super::scenario::Expect {
    super::scenario::Expect {
        http: Some(vec![200]),
        status: Some(super::scenario::StatusSpec::Approved),
        certificate: Some(true),
        ..super::scenario::Expect::default()
    }
}

fn resp_json(r: &HttpsResponse) -> Option<Value> {
    serde_json::from_slice(&r.body).ok()
}

/// The target's time as the suite reckons it (its clock when the suite
/// moves it, the system clock otherwise).
fn target_now(ctx: &RunContext) -> OffsetDateTime {
    use crate::server::clock::Clock;
    match &ctx.target.clock {
        Some(c) => c.now(),
        None => OffsetDateTime::now_utc(),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Case<'_> {
    /// The device ID a case's symbol stands for: fresh per case, or for
    /// `base^variant` the near-miss variant of `base`'s ID — `upper`
    /// (letter case), `dot` (a trailing dot), `padN` (padded to exactly N
    /// characters).
    pub(super) fn device(&mut self, sym: &str) -> String {
        if let Some(d) = self.devices.get(sym) {
            return d.clone();
        }
        if let Some((base, variant)) = sym.split_once('^') {
            let b = self.device(base);
            let id = match variant {
                "upper" => b.to_ascii_uppercase(),
                "dot" => format!("{b}."),
                v => match v.strip_prefix("pad").and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) => {
                        let mut id: String = b.chars().take(n).collect();
                        while id.len() < n {
                            id.push('0');
                        }
                        id
                    }
                    None => format!("{b}-unknown-variant-{v}"),
                },
            };
            self.devices.insert(sym.to_string(), id.clone());
            return id;
        }
        let n: u32 = self.rng.gen();
        let id = format!("{}-{}-{:08x}{:08x}", self.slug, sym, self.ctx.run_id, n);
        self.devices.insert(sym.to_string(), id.clone());
        id
    }

    pub(super) fn secret(&mut self, sym: &str) -> String {
        if let Some(s) = self.secrets.get(sym) {
            return s.clone();
        }
        let n: u64 = self.rng.gen();
        let s = format!("{sym}-{n:016x}");
        self.secrets.insert(sym.to_string(), s.clone());
        s
    }

    pub(super) fn device_of(&mut self, step: &Step) -> String {
        match (&step.device_literal, &step.device) {
            (Some(l), _) => l.clone(),
            (None, Some(d)) => self.device(d),
            (None, None) => self.device("d"),
        }
    }

    async fn step(&mut self, st: &Step) -> StepResult {
        match st.action.unwrap_or(Action::Wait) {
            Action::Directory => self.do_directory(st).await,
            Action::PostOob => self.do_post_oob(st).await,
            Action::Provision => self.do_provision(st).await,
            Action::Status => self.do_status(st).await,
            Action::Raw => self.do_raw(st).await,
            Action::Wait => {
                let wait = Duration::from_millis(st.ms.unwrap_or(0).min(60_000));
                let moved = self.exclusive
                    && self
                        .ctx
                        .target
                        .clock
                        .as_ref()
                        .is_some_and(|c| c.advance(wait));
                if !moved {
                    tokio::time::sleep(wait).await;
                }
                Ok(None)
            }
            Action::Guess => self.do_guess(st).await,
            Action::Burst => self.do_burst(st).await,
            Action::Concurrent if st.rounds.is_some() => self.do_concurrent_rounds(st).await,
            Action::Concurrent => self.do_concurrent(st).await,
            Action::Together => self.do_together(st).await,
            Action::Sweep => self.do_sweep(st).await,
            Action::Relate => self.do_relate(st).await,
            Action::Restart => self.do_restart().await,
            Action::CrashUnderLoad => self.do_crash_under_load(st).await,
            Action::Sanity => self.do_sanity().await,
            Action::Observe => self.do_observe(st).await,
            Action::Discover => self.do_discover(st).await,
            Action::Wire => self.do_wire(st).await,
            Action::Serve | Action::GiveCertificate | Action::RunDevice => {
                fail("a client-case action in a server case")
            }
        }
    }

    pub(super) fn check_http(&self, st: &Step, r: &HttpsResponse) -> Result<(), StepError> {
        // Whatever the case is about: no request makes a server fail.
        if r.status >= 500 && r.status != 501 {
            return fail(format!(
                "answered HTTP {}: no request may make a server fail (transport.robust)",
                r.status
            ));
        }
        if let Some(codes) = &st.expect.http {
            if !codes.contains(&r.status) {
                return fail(format!(
                    "expected HTTP {}, got {}",
                    codes
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    r.status
                ));
            }
        }
        if let Some(class) = st.expect.http_class {
            if r.status / 100 != class.digit() {
                return fail(format!(
                    "expected HTTP {}, got {}",
                    super::scenario::name_of(&class),
                    r.status
                ));
            }
        }
        if let Some(ct) = &st.expect.content_type {
            let got = r.content_type().unwrap_or("(none)");
            if !got.starts_with(ct.as_str()) {
                return fail(format!("expected Content-Type {ct}, got {got}"));
            }
        }
        Ok(())
    }
}

//! `idprov check client`: runs a device implementation through the shim
//! (SUITE.md) against the suite's honest and hostile servers, and judges it
//! by its exit code, the files it left and the requests it made.

use super::features;
use super::report::{CaseResult, Exchange, Verdict};
use super::scenario::{Action, BugsSpec, CaSpec, Scenario, Step, UrlSpec};
use super::SetupError;
use crate::core::messages::{DIRECTORY_PATH, PROVREQ_PATH};
use crate::core::sign::{self, KeyVariant};
use crate::pki::{
    cert_der_from_pem, certs_der_from_pem, verify_chain, CertAuthority, CertInfo, DevicePublicKey,
    Usage,
};
use crate::suite::hostile::{self, Bug, Bugs, HostileServer, Recorded};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

mod judge;
mod relation;
pub mod remote;
mod shim;

pub use remote::RemoteDevice;
pub use shim::{probe, run_shim, ClientTarget, ShimRun, ShimValues, EXIT_UNIMPLEMENTED};

/// The device under test: a process run through the shim once per case,
/// or a device on the network reset before each case.
#[derive(Debug, Clone)]
pub enum DeviceTarget {
    /// `check client --cmd`: a shim command.
    Shim(ClientTarget),
    /// `check device`: a device on the network.
    Remote(RemoteDevice),
}

impl DeviceTarget {
    /// The address the case servers listen on (port chosen by the kernel).
    fn listen(&self) -> std::net::SocketAddr {
        let ip = match self {
            DeviceTarget::Shim(_) => std::net::IpAddr::from([127, 0, 0, 1]),
            DeviceTarget::Remote(r) => r.listen,
        };
        std::net::SocketAddr::new(ip, 0)
    }

    fn remote(&self) -> Option<&RemoteDevice> {
        match self {
            DeviceTarget::Remote(r) => Some(r),
            DeviceTarget::Shim(_) => None,
        }
    }

    /// How the target is named in reports.
    pub fn describe(&self) -> String {
        match self {
            DeviceTarget::Shim(t) => t.template.clone(),
            DeviceTarget::Remote(r) => format!(
                "device {} reached on {} ({})",
                r.device_id,
                r.listen,
                match &r.reset {
                    remote::Reset::Hook(t) => format!("reset by `{}`", t.template),
                    remote::Reset::Operator => "reset by an operator".into(),
                }
            ),
        }
    }
}

/// The suite server's behaviour a case file's `bugs` block asks for: each
/// switch is the key of the same name (a unit test holds them together).
fn bugs_of(spec: &BugsSpec) -> Bugs {
    let switches = [
        (spec.other_cn, Bug::OtherCn),
        (spec.other_key, Bug::OtherKey),
        (spec.other_ca, Bug::OtherCa),
        (spec.expired, Bug::Expired),
        (spec.not_yet_valid, Bug::NotYetValid),
        (spec.cn_case, Bug::CnCase),
        (spec.reject, Bug::Reject),
        (spec.cert_on_rejected, Bug::CertOnRejected),
        (spec.tls_other_ca, Bug::TlsOtherCa),
        (spec.advertise_csr, Bug::AdvertiseCsr),
        (spec.unknown_extension, Bug::UnknownExtension),
        (spec.no_ca_in_directory, Bug::NoCaInDirectory),
        (spec.silent, Bug::Silent),
        (spec.trickle, Bug::Trickle),
    ];
    let on: Vec<Bug> = switches
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, b)| *b)
        .collect();
    Bugs {
        sign: spec.sign.unwrap_or_default(),
        tamper: spec.tamper,
        waiting_times: spec.waiting_times,
        waiting_retry_sec: spec.waiting_retry_sec,
        wire: spec.wire,
        ..Bugs::of(&on)
    }
}

use super::step::{fail, StepError};

struct Case<'a> {
    target: &'a DeviceTarget,
    /// The capabilities declared for the run (`--capabilities`).
    caps: &'a BTreeSet<String>,
    case_id: String,
    timeout: Duration,
    device_id: String,
    secret: String,
    dir: tempfile::TempDir,
    aux: tempfile::TempDir,
    primary: Option<HostileServer>,
    second: Option<HostileServer>,
    before: HashMap<String, Vec<u8>>,
    /// Every file under `{dir}` (hidden ones too) before the device ran.
    before_all: BTreeMap<String, (Vec<u8>, u32)>,
    /// Whether the case gave the device a certificate set.
    gave_certificate: bool,
    /// Most provisioning requests the served answers allow per server.
    max_provreqs: Option<usize>,
    evidence: Vec<Exchange>,
    step_no: usize,
    last_feature: Option<String>,
    /// Answers of the primary server that are Waiting before it decides.
    waiting_times: u32,
    /// The retrySec those answers carry.
    waiting_retry_sec: u64,
    /// Why a remote device's run cannot be judged on what it holds (no
    /// `--state-cmd`, and a certificate reached it).
    undecided: Option<String>,
}

const SET: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

/// Every regular file under `dir`, hidden and temporary ones included,
/// with its bytes and permission bits (bounded: 1,000 entries).
fn snapshot_all(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten().take(1000) {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let rel = p
                .strip_prefix(dir)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_default();
            if m.is_dir() {
                if out.len() < 1000 {
                    stack.push(p);
                }
                out.insert(
                    format!("{rel}/"),
                    (Vec::new(), m.permissions().mode() & 0o777),
                );
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(rel, (bytes, m.permissions().mode() & 0o777));
            }
        }
    }
    out
}

fn snapshot(dir: &Path) -> HashMap<String, Vec<u8>> {
    SET.iter()
        .filter_map(|n| std::fs::read(dir.join(n)).ok().map(|b| (n.to_string(), b)))
        .collect()
}

impl Case<'_> {
    fn all_requests(&self) -> Vec<(String, Recorded)> {
        let mut v = Vec::new();
        for (name, s) in [("primary", &self.primary), ("second", &self.second)] {
            if let Some(s) = s {
                v.extend(s.requests().into_iter().map(|r| (name.to_string(), r)));
            }
        }
        v
    }

    /// TCP connections every server of the case accepted so far.
    fn contacts(&self) -> u32 {
        [&self.primary, &self.second]
            .into_iter()
            .flatten()
            .map(|s| s.tls_counts().connections)
            .sum()
    }

    fn provreqs(&self) -> Vec<Recorded> {
        self.all_requests()
            .into_iter()
            .filter(|(_, r)| r.path == PROVREQ_PATH && r.method == "POST")
            .map(|(_, r)| r)
            .collect()
    }

    async fn step(&mut self, st: &Step) -> Result<Option<String>, StepError> {
        match st.action {
            Some(Action::Serve) => self.serve(st).await.map(|_| None),
            Some(Action::GiveCertificate) => self.give_certificate().map(|_| None),
            Some(Action::RunDevice) => self.run_device(st).await,
            Some(Action::Wait) => {
                tokio::time::sleep(Duration::from_millis(st.ms.unwrap_or(0).min(60_000))).await;
                Ok(None)
            }
            Some(Action::Observe) => self.observe(st),
            Some(Action::Relate) => self.relate(st).await,
            other => fail(format!("action {other:?} is not for client cases")),
        }
    }

    async fn serve(&mut self, st: &Step) -> Result<(), StepError> {
        let spec = st.bugs.clone().unwrap_or_default();
        let mut bugs = bugs_of(&spec);
        let listen = self.target.listen();
        if spec.second_server {
            let b = hostile::start(listen, &self.secret, Bugs::default())
                .await
                .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
            bugs.provreq_url = Some(b.provreq_url());
            self.second = Some(b);
        }
        let mut a = hostile::start(listen, &self.secret, bugs)
            .await
            .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
        self.max_provreqs = Some(if spec.reject {
            1
        } else {
            spec.waiting_times as usize + 1
        });
        self.waiting_times = spec.waiting_times;
        self.waiting_retry_sec = spec.waiting_retry_sec;
        // A device on the network may find every case's server by DNS-SD.
        if spec.advertise || spec.advertise_plaintext || self.target.remote().is_some() {
            a.advertise(spec.advertise_plaintext)
                .map_err(|e| StepError::Fail(format!("DNS-SD: {e}")))?;
        }
        self.primary = Some(a);
        Ok(())
    }

    fn give_certificate(&mut self) -> Result<(), StepError> {
        let Some(srv) = &self.primary else {
            return fail("no server yet");
        };
        let key = rcgen::KeyPair::generate().map_err(|e| StepError::Fail(e.to_string()))?;
        let dk = DevicePublicKey::from_pem(&key.public_key_pem())
            .map_err(|e| StepError::Fail(e.to_string()))?;
        let cert = srv
            .issue_device(&self.device_id, &dk)
            .map_err(StepError::Fail)?;
        let d = self.dir.path();
        let w = |n: &str, b: &[u8], mode: u32| {
            crate::fsutil::write_atomic(&d.join(n), b, mode)
                .map_err(|e| StepError::Fail(e.to_string()))
        };
        w("ca.pem", srv.ca_pem.as_bytes(), 0o644)?;
        w("cert.pem", cert.as_bytes(), 0o644)?;
        w("key.pem", key.serialize_pem().as_bytes(), 0o600)?;
        self.gave_certificate = true;
        Ok(())
    }

    async fn run_device(&mut self, st: &Step) -> Result<Option<String>, StepError> {
        let Some(srv) = &self.primary else {
            return fail("no server yet");
        };
        let url = match st.url.unwrap_or(UrlSpec::Directory) {
            UrlSpec::Directory => srv.url(),
            UrlSpec::Plaintext => srv.plaintext_url(),
            UrlSpec::None => String::new(),
        };
        let ca = match st.ca.unwrap_or(CaSpec::None) {
            CaSpec::None => String::new(),
            mode @ (CaSpec::Server | CaSpec::Other) => {
                let pem = if mode == CaSpec::Server {
                    srv.ca_pem.clone()
                } else {
                    CertAuthority::generate("unrelated CA", OffsetDateTime::now_utc())
                        .map_err(|e| StepError::Fail(e.to_string()))?
                        .cert_pem()
                        .to_string()
                };
                let p = self.aux.path().join("preprovisioned-ca.pem");
                std::fs::write(&p, pem).map_err(|e| StepError::Fail(e.to_string()))?;
                p.to_string_lossy().into_owned()
            }
        };
        let secret = if st.secret.as_deref() == Some("none") {
            String::new()
        } else {
            self.secret.clone()
        };
        self.last_feature = st.feature.clone();
        let v = ShimValues {
            url,
            device_id: self.device_id.clone(),
            secret,
            dir: self.dir.path().to_string_lossy().into_owned(),
            ca,
            feature: st.feature.clone(),
            case: self.case_id.clone(),
        };
        let target = self.target;
        let run = match target {
            DeviceTarget::Shim(shim) => self.run_shim_device(shim, &v).await?,
            DeviceTarget::Remote(dev) => self.run_remote_device(st, dev, &v).await?,
        };
        for (server, r) in self.all_requests() {
            self.evidence.push(Exchange {
                step: self.step_no,
                method: r.method.clone(),
                url: format!("{server} server {}", r.path),
                credential: if r.client_cert {
                    "client certificate".into()
                } else {
                    "none".into()
                },
                request_body: String::from_utf8_lossy(&r.body).replace(&self.secret, "«secret»"),
                status: None,
                response_headers: Vec::new(),
                response_body: String::new(),
                error: None,
                ms: r.at.as_millis() as u64,
            });
        }
        if self.target.remote().is_some() {
            return self.judge(st, &run);
        }
        if let Some(line) = could_not_start(&run, self.contacts()) {
            return Err(StepError::Setup(line));
        }
        if run.code == Some(EXIT_UNIMPLEMENTED) {
            return match st.feature.as_deref().and_then(features::feature) {
                Some(f) if f.optional => Err(StepError::Skip(format!(
                    "unimplemented: the device lacks the optional feature {}",
                    f.name
                ))),
                Some(f) => fail(format!(
                    "MUST behaviour not implemented: the device exited {EXIT_UNIMPLEMENTED} for `{}`, a core feature ({}, {})",
                    f.name, f.covers, f.section
                )),
                None => fail(format!(
                    "the device exited {EXIT_UNIMPLEMENTED} (not implemented) for plain provisioning, which every device must do"
                )),
            };
        }
        self.judge(st, &run)
    }
}

impl Case<'_> {
    /// Runs the shim once and notes what it did.
    async fn run_shim_device(
        &mut self,
        shim: &ClientTarget,
        v: &ShimValues,
    ) -> Result<ShimRun, StepError> {
        self.before = snapshot(self.dir.path());
        self.before_all = snapshot_all(self.dir.path());
        let run = run_shim(shim, v, self.timeout)
            .await
            .map_err(StepError::Fail)?;
        // The device has exited: let the servers finish observing what it
        // did (a handshake it aborted) before judging.
        for s in [&self.primary, &self.second].into_iter().flatten() {
            s.settle(Duration::from_secs(3)).await;
        }
        let mut note = format!(
            "ran {} → {} in {} ms",
            run.argv.join(" ").replace(&self.secret, "«secret»"),
            match run.code {
                Some(c) => format!("exit {c}"),
                None if run.timed_out => "timed out".into(),
                None => "killed".into(),
            },
            run.ms
        );
        for (name, text) in [("stdout", &run.stdout_tail), ("stderr", &run.stderr_tail)] {
            if !text.is_empty() {
                note.push_str(&format!(
                    "\n{name}:\n{}",
                    text.replace(&self.secret, "«secret»")
                ));
            }
        }
        self.evidence.push(Exchange::note(self.step_no, note));
        Ok(run)
    }

    /// The directory the judge reads: the shim's `{dir}`, or for a remote
    /// device the suite's picture of what it holds.
    fn judged_dir(&self) -> PathBuf {
        match self.target {
            DeviceTarget::Shim(_) => self.dir.path().to_path_buf(),
            DeviceTarget::Remote(_) => self.aux.path().join("held"),
        }
    }
}

/// The one line that says a shim could not start its device, when that is
/// what happened: it exited 126 or 127 (the shell's "not executable" and
/// "not found") and no server saw so much as a TCP connection. A device that
/// spoke to a server and then exited 127 is judged like any other exit.
fn could_not_start(run: &ShimRun, contacts: u32) -> Option<String> {
    let code = run.code?;
    if !(code == 126 || code == 127) || contacts > 0 {
        return None;
    }
    let why = if code == 127 {
        "command not found"
    } else {
        "not executable"
    };
    let said = run
        .last_said()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    Some(format!(
        "the shim could not start its device: it exited {code}, {why}{said}; check the device command in --cmd (nothing was judged)"
    ))
}

fn last_line(s: &str) -> String {
    s.lines()
        .last()
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

/// Runs one client case. `Err` only when the suite cannot test at all (a
/// shim that cannot start its device).
pub async fn run_client_case(
    sc: &Scenario,
    target: &DeviceTarget,
    seed: u64,
    capabilities: &BTreeSet<String>,
    timeout: Duration,
) -> Result<CaseResult, SetupError> {
    let started = Instant::now();
    let mut result = CaseResult::new(sc);
    if let Some(reason) = super::missing_capabilities(sc, capabilities) {
        result.verdict = Verdict::Skip;
        result.detail = reason;
        return Ok(result);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(
        seed ^ sc.id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        }),
    );
    let (dir, aux) = match (tempfile::tempdir(), tempfile::tempdir()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            result.verdict = Verdict::Fail;
            result.detail = "setup: cannot create a temporary directory".into();
            return Ok(result);
        }
    };
    let slug: String = sc.id.replace('.', "-").chars().skip(7).take(40).collect();
    let (device_id, secret) = (
        format!("{slug}-{:08x}", rng.gen::<u32>()),
        format!("secret-{:016x}", rng.gen::<u64>()),
    );
    // A device on the network has the identity on its label.
    let (device_id, secret) = match target.remote() {
        Some(r) => (r.device_id.clone(), r.secret.clone()),
        None => (device_id, secret),
    };
    let mut case = Case {
        target,
        caps: capabilities,
        case_id: sc.id.clone(),
        timeout,
        device_id,
        secret,
        dir,
        aux,
        primary: None,
        second: None,
        before: HashMap::new(),
        before_all: BTreeMap::new(),
        gave_certificate: false,
        max_provreqs: None,
        evidence: Vec::new(),
        step_no: 0,
        last_feature: None,
        waiting_times: 0,
        waiting_retry_sec: 0,
        undecided: None,
    };
    let mut infos = Vec::new();
    // Verdicts only get worse: an undecided step leaves the case
    // inconclusive unless a later one fails.
    let mut inconclusive: Option<String> = None;
    result.verdict = Verdict::Pass;
    for (i, st) in sc.steps.iter().enumerate() {
        case.step_no = i + 1;
        match case.step(st).await {
            Ok(Some(info)) => infos.push(info),
            Ok(None) => {}
            Err(StepError::Fail(m)) => {
                result.verdict = Verdict::Fail;
                result.detail = format!("step {}: {m}", i + 1);
                break;
            }
            Err(StepError::Skip(m)) => {
                result.verdict = Verdict::Skip;
                result.detail = m;
                break;
            }
            Err(StepError::Inconclusive(m)) => {
                inconclusive.get_or_insert(format!("step {}: {m}", i + 1));
            }
            Err(StepError::Setup(m)) => return Err(SetupError(m)),
        }
    }
    if let (Some(why), Verdict::Pass) = (inconclusive, result.verdict) {
        result.verdict = Verdict::Inconclusive;
        result.detail = why;
    }
    if result.verdict == Verdict::Pass && !infos.is_empty() {
        result.verdict = Verdict::Info;
        result.detail = infos.join("; ");
    }
    result.devices = vec![case.device_id.clone()];
    result.evidence = case.evidence;
    result.ms = started.elapsed().as_millis() as u64;
    Ok(result)
}

/// The template that runs this very binary's `client` as the shim.
pub fn own_client_template() -> Result<String, SetupError> {
    let exe: PathBuf = std::env::current_exe().map_err(|e| SetupError(format!("own path: {e}")))?;
    let exe = shell_words::quote(&exe.to_string_lossy()).into_owned();
    Ok(format!(
        "{exe} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}} --ca-cert {{ca}} --timeout 60"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::faults::Switch;

    /// Every switch of the suite server is the case-file key of its name,
    /// and that key turns on that switch alone.
    #[test]
    fn every_bug_is_the_case_file_key_of_its_name() {
        for bug in Bug::ALL {
            let text = format!("{{\"{}\": true}}", bug.name());
            let spec: BugsSpec = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is no bugs key: {e}", bug.name()));
            assert_eq!(bugs_of(&spec).switches.on(), &[*bug][..], "{}", bug.name());
        }
        assert!(bugs_of(&BugsSpec::default()).switches.on().is_empty());
    }
}

//! `idprov check`: the conformance suite. Loads the case catalogue
//! (`scenarios/`), runs it against a target, and writes the reports.

pub mod bundle;
pub mod client;
pub mod explain;
pub mod explore;
pub mod features;
pub mod lifecycle;
pub mod options;
pub mod outcome;
pub mod profile;
pub mod report;
pub mod runner;
pub mod scenario;
mod step;

pub use options::{
    case_filter, parse_baseline, parse_known_failing, CheckOptions, KNOWN_CAPABILITIES,
};
use options::{check_patterns_match, load_lists, read};
pub use outcome::decide_outcome;
use report::{CaseResult, Report, Verdict};
use runner::{run_case, RunContext, ServerTarget};
use scenario::{Role, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Id of the sanity case that runs first: a control.
pub const SANITY_FIRST: &str = "server.sanity.before";
/// Id of the sanity case that runs last: a control.
pub const SANITY_LAST: &str = "server.sanity.after";
/// Id of the client control: honest provisioning against an honest server.
pub const CLIENT_CONTROL: &str = "client.provision.honest";
/// Control cases: honest provisionings that always run, may not be listed
/// as known failing, and fail the run when they do not pass.
pub const CONTROLS: &[&str] = &[SANITY_FIRST, SANITY_LAST, CLIENT_CONTROL];

/// Progress on stderr (cases done of all, failures so far), or a hidden bar.
struct Progress {
    bar: indicatif::ProgressBar,
    failed: usize,
}

impl Progress {
    fn new(total: usize, on: bool, what: &str) -> Self {
        let bar = crate::progress::bar(
            total as u64,
            on,
            "{prefix} [{bar:30}] {pos}/{len} cases · {msg}",
        );
        bar.set_prefix(what.to_string());
        bar.set_message("0 failed");
        Progress { bar, failed: 0 }
    }

    fn done(&mut self, r: &CaseResult) {
        if r.verdict == Verdict::Fail {
            self.failed += 1;
            self.bar.set_message(format!("{} failed", self.failed));
        }
        self.bar.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A usage or setup problem: the suite could not test (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// The value of a finished task of the suite's own, or a setup error when
/// it panicked: a crash of the suite fails the run (exit 2) instead of
/// silently shrinking it.
pub(crate) fn task_result<T>(
    joined: Result<T, tokio::task::JoinError>,
    what: &str,
) -> Result<T, SetupError> {
    joined.map_err(|e| {
        SetupError(format!(
            "{what} of idprov's own crashed ({e}): a bug in idprov, not in the target; the run is void"
        ))
    })
}

/// The capabilities a case needs that the run was not given, as a skip
/// reason saying what the user would add to run it.
pub fn missing_capabilities(s: &Scenario, have: &BTreeSet<String>) -> Option<String> {
    let missing: Vec<String> = s
        .requires
        .iter()
        .filter(|c| !have.contains(*c))
        .map(|c| what_would_run(c))
        .collect();
    (!missing.is_empty()).then(|| format!("needs {}", missing.join("; ")))
}

/// What the user adds to a run to give it capability `cap`.
fn what_would_run(cap: &str) -> String {
    match cap {
        "ca-key" => {
            "--ca-key (the target CA's private key, to mint credentials the case uses)".into()
        }
        "plugin" => "--plugin-cert and --plugin-key (a plugin credential)".into(),
        "restart" => format!(
            "--restart-cmd (a command that restarts the server; the suite then polls its directory for at most {} s)",
            lifecycle::READY_BOUND.as_secs()
        ),
        "crash" => format!(
            "--kill-cmd and --start-cmd (commands that kill the server, as SIGKILL does, and start it again; the suite then polls its directory for at most {} s)",
            lifecycle::READY_BOUND.as_secs()
        ),
        "csr" => {
            "a target that advertises the csr extension (servers), or --capabilities csr (devices)"
                .into()
        }
        other => format!("--capabilities {other}, if the target has it"),
    }
}

/// Every case a run may pick from: the embedded catalogue and the case
/// files given with `--scenario`, sorted by id.
fn every_case(opts: &CheckOptions) -> Result<Vec<Scenario>, SetupError> {
    let mut all = scenario::catalogue().map_err(|e| SetupError(e.to_string()))?;
    let extra = scenario::load_files(&opts.scenarios, &all)
        .map_err(|e| SetupError(format!("--scenario: {e}")))?;
    all.extend(extra);
    all.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(all)
}

/// The catalogue restricted to a role and the `--cases` filter.
pub fn select(role: Role, globs: &[String]) -> Result<Vec<Scenario>, SetupError> {
    let all = scenario::catalogue().map_err(|e| SetupError(e.to_string()))?;
    select_from(&all, role, globs)
}

/// `cases` restricted to a role and the `--cases` filter.
fn select_from(
    cases: &[Scenario],
    role: Role,
    globs: &[String],
) -> Result<Vec<Scenario>, SetupError> {
    let keep = case_filter(globs)?;
    Ok(cases
        .iter()
        .filter(|s| s.role == role && keep(&s.id))
        .cloned()
        .collect())
}

/// Checks what can be checked before any case runs, so that a problem of
/// the setup (exit 2) is never mistaken for a failure of the target: the
/// credentials must chain to `--ca-cert` with the right OU, the directory
/// must answer over TLS that verifies under it, and the admin credential must
/// be accepted at the TLS layer. Returns the directory's extensions.
async fn preflight(
    target: &ServerTarget,
    timeout: Duration,
    plugin_minted: bool,
) -> Result<Vec<String>, SetupError> {
    use crate::pki::{cert_der_from_pem, verify_chain, CertInfo, Usage};
    let now = OffsetDateTime::now_utc();
    let ca_der = cert_der_from_pem(&target.ca_pem)
        .map_err(|e| SetupError(format!("--ca-cert is not a PEM certificate: {e}")))?;
    // Each credential is named as the user gave it (or says it was minted).
    let plugin_flag = if plugin_minted {
        "the plugin credential minted with --ca-key"
    } else {
        "--plugin-cert"
    };
    let credentials = [
        (
            "--admin-cert",
            "--admin-cert / --admin-key",
            Some(&target.admin),
        ),
        (
            plugin_flag,
            "--plugin-cert / --plugin-key",
            target.plugin.as_ref(),
        ),
    ];
    for (_, pair, id) in credentials {
        let Some(id) = id else { continue };
        crate::tls::client_config(
            &crate::tls::ServerTrust::PinnedAnyName(target.ca_pem.clone()),
            Some(id),
        )
        .map_err(|e| SetupError(format!("{pair}: {e}")))?;
    }
    let get = |identity: Option<&crate::tls::ClientIdentity>| {
        let cfg = crate::tls::client_config(
            &crate::tls::ServerTrust::PinnedAnyName(target.ca_pem.clone()),
            identity,
        );
        let url = target.url.clone();
        async move {
            let cfg = cfg.map_err(|e| SetupError(format!("--ca-cert / credential: {e}")))?;
            Ok::<_, SetupError>(
                crate::net::request(&url, http::Method::GET, None, Arc::new(cfg), timeout).await,
            )
        }
    };
    let body = match get(None).await? {
        Ok(r) if r.status == 200 => r.body,
        Ok(r) => {
            return Err(SetupError(format!(
                "target {} answered HTTP {} to the directory request: is this the directory URL?",
                target.url, r.status
            )))
        }
        Err(e) => {
            return Err(SetupError(format!(
                "target {} unreachable, or its TLS does not verify under --ca-cert: {e}",
                target.url
            )))
        }
    };
    for (flag, _, id) in credentials {
        let Some(id) = id else { continue };
        let der = cert_der_from_pem(&id.cert_pem)
            .map_err(|e| SetupError(format!("{flag} is not a PEM certificate: {e}")))?;
        verify_chain(&der, &ca_der, now, Usage::Client).map_err(|e| {
            SetupError(format!(
                "{flag} does not chain to --ca-cert (or has expired): {e}"
            ))
        })?;
        let info = CertInfo::from_der(&der).map_err(|e| SetupError(format!("{flag}: {e}")))?;
        if !info.ou.iter().any(|o| o == "admin" || o == "plugin") {
            return Err(SetupError(format!(
                "{flag} has OU {:?}; it must be `admin` or `plugin` (PROTOCOL §1)",
                info.ou
            )));
        }
    }
    if let Err(e) = get(Some(&target.admin)).await? {
        return Err(SetupError(format!(
            "target {} refused the admin credential at the TLS layer: {e}",
            target.url
        )));
    }
    // A directory the suite cannot read leaves it nowhere to send the
    // cases: that is a setup error, not a server with no extensions.
    crate::core::directory::parse_directory(&body, &target.url)
        .map(|d| d.extensions)
        .map_err(|e| {
            SetupError(format!(
                "the directory at {} does not parse, so the suite cannot find the endpoints: {e}",
                target.url
            ))
        })
}

/// The shared context of a server run: a plugin credential minted when the
/// CA key allows, the preflight, and the capabilities in effect.
async fn server_context(
    target: &mut ServerTarget,
    opts: &CheckOptions,
    seed: u64,
    run_id: u32,
    started_at: OffsetDateTime,
) -> Result<Arc<RunContext>, SetupError> {
    let plugin_minted = target.plugin.is_none() && target.ca_key_pem.is_some();
    if target.plugin.is_none() {
        if let Some(key) = &target.ca_key_pem {
            // With the CA key the suite mints its own plugin credential.
            let ca = crate::pki::CertAuthority::from_pem(&target.ca_pem, key)
                .map_err(|e| SetupError(format!("--ca-key does not match --ca-cert: {e}")))?;
            let c = ca
                .issue_plugin(started_at)
                .map_err(|e| SetupError(format!("minting a plugin credential: {e}")))?;
            target.plugin = Some(crate::tls::ClientIdentity {
                cert_pem: c.cert.pem,
                key_pem: c.key_pem.to_string(),
            });
        }
    }
    let request_timeout = Duration::from_secs(15).min(opts.timeout);
    let extensions = preflight(target, request_timeout, plugin_minted).await?;
    let mut capabilities: BTreeSet<String> = opts.capabilities.iter().cloned().collect();
    if target.ca_key_pem.is_some() {
        capabilities.insert("ca-key".into());
    }
    if target.plugin.is_some() {
        capabilities.insert("plugin".into());
    }
    capabilities.extend(target.capabilities.iter().cloned());
    if let Some(r) = &target.restarter {
        if r.can_restart() {
            capabilities.insert("restart".into());
        }
        if r.can_crash() {
            capabilities.insert("crash".into());
        }
    }
    capabilities.extend(extensions);
    let ctx = Arc::new(RunContext {
        foreign_ca: crate::pki::CertAuthority::generate("idprov foreign CA", started_at)
            .map_err(|e| SetupError(e.to_string()))?,
        target: target.clone(),
        seed,
        run_id,
        capabilities: capabilities.clone(),
        request_timeout,
        serials: profile::SerialLedger::default(),
        clock_gate: tokio::sync::RwLock::new(()),
    });
    Ok(ctx)
}

/// Runs one scenario (e.g. a reproducer `--explore` wrote) against a
/// server, with the same context as a full run.
pub async fn run_scenario(
    mut target: ServerTarget,
    sc: &Scenario,
    opts: &CheckOptions,
) -> Result<CaseResult, SetupError> {
    let seed = opts.seed.unwrap_or_else(rand::random);
    let run_id = opts.run_id.unwrap_or_else(rand::random);
    let ctx = server_context(&mut target, opts, seed, run_id, OffsetDateTime::now_utc()).await?;
    Ok(run_case(sc, &ctx, opts.timeout).await)
}

/// What a run of either role starts from: its role's cases, the selected
/// ones, and the lists that judge the outcome.
struct Plan {
    all: Vec<Scenario>,
    selected: Vec<Scenario>,
    known: BTreeMap<String, String>,
    baseline: Option<options::Baseline>,
    started_at: OffsetDateTime,
    t0: Instant,
}

impl Plan {
    /// Checks the options and the `--cases` patterns, loads the known-failing
    /// list and the baseline, and selects `role`'s cases.
    fn new(role: Role, opts: &CheckOptions) -> Result<Plan, SetupError> {
        let started_at = OffsetDateTime::now_utc();
        let t0 = Instant::now();
        opts.validate()?;
        let every = every_case(opts)?;
        let all = select_from(&every, role, &[])?;
        // The patterns of a bare `check` may name either role's cases.
        check_patterns_match(&opts.cases, if opts.both_roles { &every } else { &all })?;
        let (known, baseline) = load_lists(opts, &every)?;
        let selected = select_from(&every, role, &opts.cases)?;
        Ok(Plan {
            all,
            selected,
            known,
            baseline,
            started_at,
            t0,
        })
    }

    /// The report of a finished run: every result judged for the outcome.
    fn report(
        self,
        role: &str,
        target: String,
        seed: u64,
        results: BTreeMap<String, CaseResult>,
        capabilities: Vec<String>,
        opts: &CheckOptions,
    ) -> Report {
        let mut cases: Vec<CaseResult> = results.into_values().collect();
        let outcome = decide_outcome(
            &mut cases,
            opts.strict,
            opts.allow_inconclusive,
            &self.known,
            self.baseline.as_ref(),
        );
        let mut report = Report::assemble(
            role,
            target,
            seed,
            self.started_at,
            self.t0.elapsed(),
            cases,
            outcome,
        );
        report.capabilities = capabilities;
        report.strict = opts.strict;
        report
    }
}

/// Keeps a decided case where an interrupted run can still report it.
fn keep_finished(opts: &CheckOptions, r: &CaseResult) {
    opts.finished
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(r.clone());
}

/// Runs `cases`: those that may share the target `jobs` at a time, then the
/// exclusive ones one by one; each result is counted and kept. A case that
/// finds the suite cannot test at all ends the run with its error.
async fn run_pool<F, Fut>(
    cases: &[&Scenario],
    opts: &CheckOptions,
    progress: &mut Progress,
    results: &mut BTreeMap<String, CaseResult>,
    run: F,
) -> Result<(), SetupError>
where
    F: Fn(Scenario) -> Fut,
    Fut: std::future::Future<Output = Result<CaseResult, SetupError>> + Send + 'static,
{
    let (exclusive, parallel): (Vec<&Scenario>, Vec<&Scenario>) =
        cases.iter().partition(|s| s.exclusive);
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut tasks = Vec::new();
    for s in parallel {
        let (case, sem) = (run((*s).clone()), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            case.await
        }));
    }
    let mut keep = |r: CaseResult| {
        progress.done(&r);
        keep_finished(opts, &r);
        results.insert(r.id.clone(), r);
    };
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    for t in tasks {
        match task_result(t.await, "a case task").and_then(|r| r) {
            Ok(r) => keep(r),
            Err(e) => {
                aborts.iter().for_each(|a| a.abort());
                return Err(e);
            }
        }
    }
    for s in exclusive {
        keep(run((*s).clone()).await?);
    }
    Ok(())
}

/// Runs the server cases against `target` and returns the report (not yet
/// written). `Err` only when the suite could not test (exit 2); a target
/// that answers but fails its sanity case gets a report with that failure.
pub async fn check_server(
    mut target: ServerTarget,
    opts: &CheckOptions,
) -> Result<Report, SetupError> {
    let plan = Plan::new(Role::Server, opts)?;
    let seed = opts.seed.unwrap_or_else(rand::random);
    let run_id = opts.run_id.unwrap_or_else(rand::random);
    let ctx = server_context(&mut target, opts, seed, run_id, plan.started_at).await?;
    eprintln!(
        "idprov check server: target {} · run id {run_id:08x} · seed {seed}",
        target.url
    );

    let by_id: BTreeMap<&str, &Scenario> = plan.all.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut results: BTreeMap<String, CaseResult> = BTreeMap::new();
    let total = if opts.explore.is_some() {
        1
    } else {
        plan.selected
            .iter()
            .filter(|s| s.id != SANITY_FIRST && s.id != SANITY_LAST)
            .count()
    } + 2;
    let mut progress = Progress::new(total, opts.progress, "server");
    if let Some(first) = by_id.get(SANITY_FIRST) {
        let r = run_case(first, &ctx, opts.timeout).await;
        progress.done(&r);
        if r.verdict != Verdict::Pass {
            eprintln!(
                "idprov check server: the first sanity case failed ({}); running the rest, but the run fails",
                r.detail
            );
        }
        keep_finished(opts, &r);
        results.insert(r.id.clone(), r);
    }
    // Exploring replaces the catalogue (the controls still run).
    let catalogue: &[Scenario] = if opts.explore.is_some() {
        &[]
    } else {
        &plan.selected
    };
    if let Some(budget) = opts.explore {
        let found = explore::explore(
            ctx.clone(),
            budget,
            seed,
            opts.jobs,
            opts.timeout,
            opts.progress,
        )
        .await?;
        eprintln!(
            "idprov check server --explore: {} operations in {} sequences",
            found.ops_tried, found.sequences
        );
        if let Some(toml) = &found.scenario_toml {
            let dir = opts.report_dir.join("explore");
            let path = dir.join(format!("{}.toml", found.case.id));
            let written = std::fs::create_dir_all(&dir)
                .and_then(|_| crate::fsutil::write_atomic(&path, toml.as_bytes(), 0o644));
            match written {
                Ok(()) => eprintln!(
                    "idprov check server --explore: divergence shrunk to a scenario: {}",
                    path.display()
                ),
                Err(e) => {
                    return Err(SetupError(format!("{}: {e}", path.display())));
                }
            }
        }
        progress.done(&found.case);
        keep_finished(opts, &found.case);
        results.insert(found.case.id.clone(), found.case);
    }
    let between: Vec<&Scenario> = catalogue
        .iter()
        .filter(|s| s.id != SANITY_FIRST && s.id != SANITY_LAST)
        .collect();
    let timeout = opts.timeout;
    run_pool(&between, opts, &mut progress, &mut results, |s| {
        let ctx = ctx.clone();
        async move { Ok(run_case(&s, &ctx, timeout).await) }
    })
    .await?;
    if let Some(last) = by_id.get(SANITY_LAST) {
        let r = run_case(last, &ctx, opts.timeout).await;
        progress.done(&r);
        keep_finished(opts, &r);
        results.insert(r.id.clone(), r);
    }
    drop(progress);
    let capabilities = ctx.capabilities.iter().cloned().collect();
    let mut report = plan.report(
        "server",
        target.url.clone(),
        seed,
        results,
        capabilities,
        opts,
    );
    report.run_id = Some(format!("{run_id:08x}"));
    Ok(report)
}

/// The target for the embedded reference server started from `data_dir`.
pub fn embedded_target(srv: &crate::server::RunningServer) -> Result<ServerTarget, SetupError> {
    let d = &srv.data_dir;
    let r = |n: &str| read(&d.join(n), "data dir");
    Ok(ServerTarget {
        url: srv.directory_url(),
        ca_pem: srv.ca_pem.clone(),
        admin: crate::tls::ClientIdentity {
            cert_pem: r("admin-cert.pem")?,
            key_pem: r("admin-key.pem")?,
        },
        plugin: Some(crate::tls::ClientIdentity {
            cert_pem: r("plugin-cert.pem")?,
            key_pem: r("plugin-key.pem")?,
        }),
        ca_key_pem: Some(r("ca-key.pem")?),
        capabilities: vec!["ed25519".into(), "rsa".into()],
        clock: srv.shared.config.clock.skewed(),
        restarter: None,
    })
}

/// Runs the client cases against a device shim and returns the report.
pub async fn check_client(
    target: client::ClientTarget,
    opts: &CheckOptions,
) -> Result<Report, SetupError> {
    check_devices(client::DeviceTarget::Shim(target), opts).await
}

/// Runs the client cases against a device on the network (`check device`),
/// one case at a time, and returns the report.
pub async fn check_device(
    device: client::RemoteDevice,
    opts: &CheckOptions,
) -> Result<Report, SetupError> {
    let opts = CheckOptions {
        jobs: 1,
        ..opts.clone()
    };
    check_devices(client::DeviceTarget::Remote(device), &opts).await
}

async fn check_devices(
    target: client::DeviceTarget,
    opts: &CheckOptions,
) -> Result<Report, SetupError> {
    let mut plan = Plan::new(Role::Client, opts)?;
    // The control always runs, whatever `--cases` picked.
    if !plan.selected.iter().any(|s| s.id == CLIENT_CONTROL) {
        if let Some(c) = plan.all.iter().find(|s| s.id == CLIENT_CONTROL) {
            plan.selected.insert(0, c.clone());
        }
    }
    let seed = opts.seed.unwrap_or_else(rand::random);
    let capabilities: BTreeSet<String> = opts.capabilities.iter().cloned().collect();
    let described = target.describe();
    match &target {
        client::DeviceTarget::Shim(shim) => {
            eprintln!("idprov check client: shim `{described}` · seed {seed}");
            client::probe(shim, opts.timeout.min(Duration::from_secs(30))).await?;
        }
        client::DeviceTarget::Remote(_) => {
            eprintln!("idprov check device: {described} · seed {seed}");
        }
    }
    let target = Arc::new(target);
    let caps = Arc::new(capabilities.clone());
    let mut results: BTreeMap<String, CaseResult> = BTreeMap::new();
    let mut progress = Progress::new(plan.selected.len(), opts.progress, "client");
    let cases: Vec<&Scenario> = plan.selected.iter().collect();
    let timeout = opts.timeout;
    run_pool(&cases, opts, &mut progress, &mut results, |s| {
        let (t, caps) = (target.clone(), caps.clone());
        async move { client::run_client_case(&s, &t, seed, &caps, timeout).await }
    })
    .await?;
    drop(progress);
    let capabilities = capabilities.into_iter().collect();
    Ok(plan.report("client", described, seed, results, capabilities, opts))
}

/// Joins a server and a client report into one (bare `idprov check`).
pub fn combine(server: Report, client: Report) -> Report {
    let mut cases = server.cases;
    cases.extend(client.cases);
    let mut outcome = server.outcome;
    outcome.failed |= client.outcome.failed;
    outcome
        .counted_failures
        .extend(client.outcome.counted_failures);
    outcome
        .stale_known_failing
        .extend(client.outcome.stale_known_failing);
    outcome.regressions.extend(client.outcome.regressions);
    outcome.run_failures.extend(client.outcome.run_failures);
    outcome.result = if outcome.failed {
        report::RunResult::Fail
    } else {
        report::RunResult::Pass
    };
    let mut caps: BTreeSet<String> = server.capabilities.into_iter().collect();
    caps.extend(client.capabilities);
    let mut r = Report {
        schema_version: server.schema_version,
        suite: server.suite,
        version: server.version,
        role: "server+client".into(),
        target: format!("{} | {}", server.target, client.target),
        seed: server.seed,
        run_id: server.run_id,
        capabilities: caps.into_iter().collect(),
        strict: server.strict,
        started: server.started,
        ms: server.ms + client.ms,
        cases,
        summary: Default::default(),
        outcome,
    };
    r.summarise();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task of the suite's own that panics voids the run (exit 2) with
    /// the reason, instead of vanishing from a smaller, green run.
    #[tokio::test]
    async fn a_crashed_task_is_a_setup_error() {
        let ok = tokio::spawn(async { 7 }).await;
        assert_eq!(task_result(ok, "a case").ok(), Some(7));
        let crashed = tokio::spawn(async {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            7
        })
        .await;
        let e = task_result(crashed, "an exploration sequence").unwrap_err();
        assert!(
            e.0.contains("an exploration sequence of idprov's own crashed"),
            "{e}"
        );
        assert!(e.0.contains("not in the target"), "{e}");
    }
}

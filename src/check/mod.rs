//! `idprov check`: the conformance suite. Loads the case catalogue
//! (`scenarios/`), runs it against a target, and writes the reports.

pub mod client;
pub mod report;
pub mod runner;
pub mod scenario;

use report::{CaseResult, Outcome, Report, Verdict};
use runner::{run_case, RunContext, ServerTarget};
use scenario::{Level, Role, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Id of the sanity case that runs first (its failure stops the run).
pub const SANITY_FIRST: &str = "server.sanity.before";
/// Id of the sanity case that runs last.
pub const SANITY_LAST: &str = "server.sanity.after";

/// Options common to every `check` (SUITE.md "common").
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Case globs; `!` excludes. Empty selects all.
    pub cases: Vec<String>,
    /// Where reports go.
    pub report_dir: PathBuf,
    /// SHOULD failures count too.
    pub strict: bool,
    /// An earlier report.json: fail only on regressions.
    pub baseline: Option<PathBuf>,
    /// Known-failing list.
    pub known_failing: Option<PathBuf>,
    /// Extra capabilities.
    pub capabilities: Vec<String>,
    /// Seed (random if absent).
    pub seed: Option<u64>,
    /// Cases run at once.
    pub jobs: usize,
    /// Per-case time limit.
    pub timeout: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            cases: Vec::new(),
            report_dir: PathBuf::from("reports"),
            strict: false,
            baseline: None,
            known_failing: None,
            capabilities: Vec::new(),
            seed: None,
            jobs: 4,
            timeout: Duration::from_secs(90),
        }
    }
}

/// A usage or setup problem (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// Builds the case filter from `--cases` globs.
pub fn case_filter(globs: &[String]) -> Result<impl Fn(&str) -> bool, SetupError> {
    let mut inc = globset::GlobSetBuilder::new();
    let mut exc = globset::GlobSetBuilder::new();
    let mut any_inc = false;
    for g in globs {
        for part in g.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (set, pat) = match part.strip_prefix('!') {
                Some(p) => (&mut exc, p),
                None => {
                    any_inc = true;
                    (&mut inc, part)
                }
            };
            let glob =
                globset::Glob::new(pat).map_err(|e| SetupError(format!("--cases {part}: {e}")))?;
            set.add(glob);
        }
    }
    let inc = inc.build().map_err(|e| SetupError(e.to_string()))?;
    let exc = exc.build().map_err(|e| SetupError(e.to_string()))?;
    Ok(move |id: &str| (!any_inc || inc.is_match(id)) && !exc.is_match(id))
}

/// Parses a known-failing file: `case-id  reason` per line, `#` comments.
pub fn parse_known_failing(text: &str) -> Result<BTreeMap<String, String>, SetupError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line
            .split_once(char::is_whitespace)
            .map(|(a, b)| (a.trim(), b.trim()))
            .unwrap_or((line, ""));
        if reason.is_empty() {
            return Err(SetupError(format!(
                "known-failing line {}: `{id}` has no reason (write `case-id  why it fails`)",
                n + 1
            )));
        }
        out.insert(id.to_string(), reason.to_string());
    }
    Ok(out)
}

/// Reads the verdicts of an earlier report.json.
pub fn parse_baseline(text: &str) -> Result<BTreeMap<String, Verdict>, SetupError> {
    #[derive(serde::Deserialize)]
    struct Min {
        cases: Vec<MinCase>,
    }
    #[derive(serde::Deserialize)]
    struct MinCase {
        id: String,
        verdict: Verdict,
    }
    let m: Min = serde_json::from_str(text)
        .map_err(|e| SetupError(format!("baseline is not a report.json: {e}")))?;
    Ok(m.cases.into_iter().map(|c| (c.id, c.verdict)).collect())
}

/// Applies levels, known-failing and baseline to decide the run's outcome.
pub fn decide_outcome(
    cases: &mut [CaseResult],
    strict: bool,
    known: &BTreeMap<String, String>,
    baseline: Option<&BTreeMap<String, Verdict>>,
) -> Outcome {
    let mut o = Outcome::default();
    for c in cases.iter_mut() {
        let counts_level = c.level == Level::Must || (strict && c.level == Level::Should);
        let listed = known.get(&c.id);
        if let Some(reason) = listed {
            c.known_failing = Some(reason.clone());
        }
        match (c.verdict, listed) {
            (Verdict::Fail, Some(_)) => {}
            (Verdict::Fail, None) if counts_level => {
                if let Some(base) = baseline {
                    if base.get(&c.id) == Some(&Verdict::Pass) {
                        o.regressions.push(c.id.clone());
                    }
                } else {
                    o.counted_failures.push(c.id.clone());
                }
            }
            (Verdict::Pass, Some(_)) => o.stale_known_failing.push(c.id.clone()),
            _ => {}
        }
    }
    o.failed = !o.counted_failures.is_empty()
        || !o.regressions.is_empty()
        || !o.stale_known_failing.is_empty();
    o
}

/// The baseline's verdicts by case id.
type Baseline = BTreeMap<String, Verdict>;

/// Reads the `--known-failing` and `--baseline` files, if given.
fn load_lists(
    opts: &CheckOptions,
) -> Result<(BTreeMap<String, String>, Option<Baseline>), SetupError> {
    let known = match &opts.known_failing {
        Some(p) => parse_known_failing(&read(p, "--known-failing")?)?,
        None => BTreeMap::new(),
    };
    let baseline = match &opts.baseline {
        Some(p) => Some(parse_baseline(&read(p, "--baseline")?)?),
        None => None,
    };
    Ok((known, baseline))
}

/// The capabilities a case needs that the target lacks, as a skip reason.
pub fn missing_capabilities(s: &Scenario, have: &BTreeSet<String>) -> Option<String> {
    let missing: Vec<&str> = s
        .requires
        .iter()
        .filter(|c| !have.contains(*c))
        .map(|c| c.as_str())
        .collect();
    (!missing.is_empty()).then(|| format!("target lacks capability {}", missing.join(", ")))
}

/// The catalogue restricted to a role and the `--cases` filter.
pub fn select(role: Role, globs: &[String]) -> Result<Vec<Scenario>, SetupError> {
    let all = scenario::catalogue().map_err(|e| SetupError(e.to_string()))?;
    let keep = case_filter(globs)?;
    Ok(all
        .into_iter()
        .filter(|s| s.role == role && keep(&s.id))
        .collect())
}

/// Runs the server cases against `target` and returns the report (not yet
/// written). A failing first sanity case is a setup error.
pub async fn check_server(target: ServerTarget, opts: &CheckOptions) -> Result<Report, SetupError> {
    let started_at = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let (known, baseline) = load_lists(opts)?;
    let selected = select(Role::Server, &opts.cases)?;
    let all = select(Role::Server, &[])?;
    let seed = opts.seed.unwrap_or_else(rand::random);
    let mut capabilities: BTreeSet<String> = opts.capabilities.iter().cloned().collect();
    if target.ca_key_pem.is_some() {
        capabilities.insert("ca-key".into());
    }
    if target.plugin.is_some() {
        capabilities.insert("plugin".into());
    }
    capabilities.extend(target.capabilities.iter().cloned());
    let ctx = Arc::new(RunContext {
        foreign_ca: crate::pki::CertAuthority::generate("idprov foreign CA", started_at)
            .map_err(|e| SetupError(e.to_string()))?,
        target: target.clone(),
        seed,
        capabilities: capabilities.clone(),
        request_timeout: Duration::from_secs(15).min(opts.timeout),
    });
    // Directory extensions join the capabilities.
    let ctx = {
        let cfg = crate::tls::client_config(
            &crate::tls::ServerTrust::Pinned(target.ca_pem.clone()),
            None,
        )
        .map_err(|e| SetupError(format!("--ca-cert: {e}")))?;
        let r = crate::net::request(
            &target.url,
            http::Method::GET,
            None,
            Arc::new(cfg),
            ctx.request_timeout,
        )
        .await;
        let mut caps = capabilities.clone();
        match r {
            Ok(r) if r.status == 200 => {
                if let Ok(d) = crate::core::directory::parse_directory(&r.body, &target.url) {
                    caps.extend(d.extensions);
                }
            }
            Ok(r) => {
                return Err(SetupError(format!(
                    "target {} answered HTTP {} to the directory request",
                    target.url, r.status
                )))
            }
            Err(e) => {
                return Err(SetupError(format!(
                    "target {} unreachable or untrusted: {e}",
                    target.url
                )))
            }
        }
        match Arc::try_unwrap(ctx) {
            Ok(mut c) => {
                c.capabilities = caps;
                Arc::new(c)
            }
            Err(c) => c,
        }
    };
    eprintln!("idprov check server: target {} · seed {seed}", target.url);

    let by_id: BTreeMap<&str, &Scenario> = all.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut results: BTreeMap<String, CaseResult> = BTreeMap::new();
    if let Some(first) = by_id.get(SANITY_FIRST) {
        let r = run_case(first, &ctx, opts.timeout).await;
        if r.verdict != Verdict::Pass {
            return Err(SetupError(format!(
                "the first sanity case failed, so nothing else can be judged: {}",
                r.detail
            )));
        }
        results.insert(r.id.clone(), r);
    }
    let (exclusive, parallel): (Vec<&Scenario>, Vec<&Scenario>) = selected
        .iter()
        .filter(|s| s.id != SANITY_FIRST && s.id != SANITY_LAST)
        .partition(|s| s.exclusive);
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut tasks = Vec::new();
    for s in parallel {
        let (s, ctx, sem, timeout) = (s.clone(), ctx.clone(), sem.clone(), opts.timeout);
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            run_case(&s, &ctx, timeout).await
        }));
    }
    for t in tasks {
        match t.await {
            Ok(r) => {
                results.insert(r.id.clone(), r);
            }
            Err(e) => return Err(SetupError(format!("a case task crashed: {e}"))),
        }
    }
    for s in exclusive {
        let r = run_case(s, &ctx, opts.timeout).await;
        results.insert(r.id.clone(), r);
    }
    if let Some(last) = by_id.get(SANITY_LAST) {
        let r = run_case(last, &ctx, opts.timeout).await;
        results.insert(r.id.clone(), r);
    }
    let mut cases: Vec<CaseResult> = results.into_values().collect();
    let outcome = decide_outcome(&mut cases, opts.strict, &known, baseline.as_ref());
    let mut report = Report::assemble(
        "server",
        target.url.clone(),
        seed,
        started_at,
        t0.elapsed(),
        cases,
        outcome,
    );
    report.capabilities = ctx.capabilities.iter().cloned().collect();
    report.strict = opts.strict;
    Ok(report)
}

fn read(p: &Path, what: &str) -> Result<String, SetupError> {
    std::fs::read_to_string(p).map_err(|e| SetupError(format!("{what} {}: {e}", p.display())))
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_failing_requires_reason() {
        assert!(parse_known_failing("server.a.b\n").is_err());
        let k = parse_known_failing("# c\nserver.a.b   why not\n\n").unwrap();
        assert_eq!(k["server.a.b"], "why not");
    }

    #[test]
    fn filter_globs() {
        let f = case_filter(&["server.oob.*".into(), "!server.oob.admin-*".into()]).unwrap();
        assert!(f("server.oob.empty-secret-400"));
        assert!(!f("server.oob.admin-accepted"));
        assert!(!f("server.provision.x"));
        let all = case_filter(&[]).unwrap();
        assert!(all("anything"));
    }

    #[test]
    fn catalogue_parses() {
        let c = scenario::catalogue().unwrap();
        assert!(c.iter().any(|s| s.id == SANITY_FIRST));
        assert!(c.iter().any(|s| s.id == SANITY_LAST));
    }
}

#[cfg(test)]
mod outcome_tests {
    use super::*;

    fn case(id: &str, level: Level, verdict: Verdict) -> CaseResult {
        CaseResult {
            id: id.into(),
            title: String::new(),
            section: "PROTOCOL §1".into(),
            level,
            verdict,
            detail: String::new(),
            ms: 0,
            devices: vec![],
            evidence: vec![],
            known_failing: None,
        }
    }

    #[test]
    fn levels_known_failing_and_baseline() {
        let mut cs = vec![
            case("a", Level::Must, Verdict::Fail),
            case("b", Level::Should, Verdict::Fail),
            case("c", Level::May, Verdict::Fail),
            case("d", Level::Must, Verdict::Pass),
        ];
        let none = BTreeMap::new();
        let o = decide_outcome(&mut cs.clone(), false, &none, None);
        assert_eq!(o.counted_failures, ["a"]);
        assert!(o.failed);
        let o = decide_outcome(&mut cs.clone(), true, &none, None);
        assert_eq!(o.counted_failures, ["a", "b"]);
        // Known failing: listed failure does not count; listed pass is stale.
        let known: BTreeMap<String, String> = [
            ("a".to_string(), "r".to_string()),
            ("d".to_string(), "r".to_string()),
        ]
        .into();
        let o = decide_outcome(&mut cs, false, &known, None);
        assert!(o.counted_failures.is_empty());
        assert_eq!(o.stale_known_failing, ["d"]);
        assert!(o.failed);
        // Baseline: only cases that passed there and fail now count.
        let mut cs = vec![
            case("a", Level::Must, Verdict::Fail),
            case("e", Level::Must, Verdict::Fail),
        ];
        let base: BTreeMap<String, Verdict> = [
            ("a".to_string(), Verdict::Fail),
            ("e".to_string(), Verdict::Pass),
        ]
        .into();
        let o = decide_outcome(&mut cs, false, &none, Some(&base));
        assert!(o.counted_failures.is_empty());
        assert_eq!(o.regressions, ["e"]);
        let mut cs = vec![case("a", Level::Must, Verdict::Fail)];
        let base: BTreeMap<String, Verdict> = [("a".to_string(), Verdict::Fail)].into();
        assert!(!decide_outcome(&mut cs, false, &none, Some(&base)).failed);
    }
}

/// Runs the client cases against a device shim and returns the report.
pub async fn check_client(
    target: client::ClientTarget,
    opts: &CheckOptions,
) -> Result<Report, SetupError> {
    let started_at = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let (known, baseline) = load_lists(opts)?;
    let selected = select(Role::Client, &opts.cases)?;
    let seed = opts.seed.unwrap_or_else(rand::random);
    let capabilities: BTreeSet<String> = opts.capabilities.iter().cloned().collect();
    eprintln!(
        "idprov check client: shim `{}` · seed {seed}",
        target.template
    );
    client::probe(&target, opts.timeout.min(Duration::from_secs(30))).await?;
    let (exclusive, parallel): (Vec<&Scenario>, Vec<&Scenario>) =
        selected.iter().partition(|s| s.exclusive);
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let target = Arc::new(target);
    let caps = Arc::new(capabilities.clone());
    let mut tasks = Vec::new();
    for s in parallel {
        let (s, t, sem, caps, timeout) = (
            s.clone(),
            target.clone(),
            sem.clone(),
            caps.clone(),
            opts.timeout,
        );
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            client::run_client_case(&s, &t, seed, &caps, timeout).await
        }));
    }
    let mut results: BTreeMap<String, CaseResult> = BTreeMap::new();
    for t in tasks {
        let r = t
            .await
            .map_err(|e| SetupError(format!("a case task crashed: {e}")))?;
        results.insert(r.id.clone(), r);
    }
    for s in exclusive {
        let r = client::run_client_case(s, &target, seed, &caps, opts.timeout).await;
        results.insert(r.id.clone(), r);
    }
    let mut cases: Vec<CaseResult> = results.into_values().collect();
    let outcome = decide_outcome(&mut cases, opts.strict, &known, baseline.as_ref());
    let mut report = Report::assemble(
        "client",
        target.template.clone(),
        seed,
        started_at,
        t0.elapsed(),
        cases,
        outcome,
    );
    report.capabilities = capabilities.into_iter().collect();
    report.strict = opts.strict;
    Ok(report)
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
    let mut caps: BTreeSet<String> = server.capabilities.into_iter().collect();
    caps.extend(client.capabilities);
    let mut r = Report {
        suite: server.suite,
        version: server.version,
        role: "server+client".into(),
        target: format!("{} | {}", server.target, client.target),
        seed: server.seed,
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

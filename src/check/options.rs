//! The options common to every `check`, and the files they name
//! (known-failing lists, baselines), each validated so that a typo is an
//! error (exit 2) and never a silently smaller run.

use super::report::Verdict;
use super::scenario::Scenario;
use super::{SetupError, CONTROLS};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options common to every `check`.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Case globs; `!` excludes. Empty selects all.
    pub cases: Vec<String>,
    /// Where reports go.
    pub report_dir: PathBuf,
    /// SHOULD failures count too.
    pub strict: bool,
    /// Inconclusive counted cases do not fail the run (every report then
    /// says so on its first line).
    pub allow_inconclusive: bool,
    /// An earlier report.json: fail only on regressions.
    pub baseline: Option<PathBuf>,
    /// Known-failing list.
    pub known_failing: Option<PathBuf>,
    /// Extra capabilities.
    pub capabilities: Vec<String>,
    /// Seed (random if absent).
    pub seed: Option<u64>,
    /// The run's own component of every device ID (random if absent):
    /// with the seed it replays a run exactly; alone the seed replays its
    /// choices without meeting an earlier run's devices.
    pub run_id: Option<u32>,
    /// Cases run at once (at least 1).
    pub jobs: usize,
    /// Per-case time limit.
    pub timeout: Duration,
    /// A bare `check` runs both roles: `--cases` patterns are checked
    /// against the whole catalogue rather than one role's.
    pub both_roles: bool,
    /// Show progress (cases done of all, failures so far) on stderr.
    pub progress: bool,
    /// Explore with this budget instead of running the catalogue (server
    /// checks only).
    pub explore: Option<super::explore::Budget>,
    /// Case files (or directories of them) run beside the catalogue
    /// (`--scenario`), validated like the embedded ones.
    pub scenarios: Vec<PathBuf>,
    /// Every case result as soon as it is decided, so that an interrupted
    /// run can still report what finished.
    pub finished: FinishedCases,
}

/// The results of a run so far, shared with whoever may interrupt it.
pub type FinishedCases = std::sync::Arc<std::sync::Mutex<Vec<super::report::CaseResult>>>;

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            cases: Vec::new(),
            report_dir: PathBuf::from("reports"),
            strict: false,
            allow_inconclusive: false,
            baseline: None,
            known_failing: None,
            capabilities: Vec::new(),
            seed: None,
            run_id: None,
            jobs: 4,
            timeout: Duration::from_secs(90),
            both_roles: false,
            progress: false,
            explore: None,
            scenarios: Vec::new(),
            finished: FinishedCases::default(),
        }
    }
}

/// Capabilities a target can be said to have (`--capabilities`). Anything
/// else is a typo.
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "csr",
    "ed25519",
    "rsa",
    "discovery",
    "plugin",
    "preprovisioned-ca",
];

impl CheckOptions {
    /// Checks the numeric and list options (exit 2 on a bad one).
    pub fn validate(&self) -> Result<(), SetupError> {
        if self.jobs == 0 {
            return Err(SetupError("--jobs must be at least 1".into()));
        }
        if self.timeout.is_zero() {
            return Err(SetupError("--timeout must be at least 1 second".into()));
        }
        for c in &self.capabilities {
            if !KNOWN_CAPABILITIES.contains(&c.as_str()) {
                return Err(SetupError(format!(
                    "--capabilities: unknown capability `{c}` (known: {})",
                    KNOWN_CAPABILITIES.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// The patterns of `--cases`, split on commas: (pattern, excludes?).
fn patterns(globs: &[String]) -> Vec<(String, bool)> {
    globs
        .iter()
        .flat_map(|g| g.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('!') {
            Some(x) => (x.to_string(), true),
            None => (p.to_string(), false),
        })
        .collect()
}

/// Builds the case filter from `--cases` globs.
pub fn case_filter(globs: &[String]) -> Result<impl Fn(&str) -> bool, SetupError> {
    let mut inc = globset::GlobSetBuilder::new();
    let mut exc = globset::GlobSetBuilder::new();
    let mut any_inc = false;
    for (pat, excludes) in patterns(globs) {
        let glob =
            globset::Glob::new(&pat).map_err(|e| SetupError(format!("--cases {pat}: {e}")))?;
        if excludes {
            exc.add(glob);
        } else {
            any_inc = true;
            inc.add(glob);
        }
    }
    let inc = inc.build().map_err(|e| SetupError(e.to_string()))?;
    let exc = exc.build().map_err(|e| SetupError(e.to_string()))?;
    Ok(move |id: &str| (!any_inc || inc.is_match(id)) && !exc.is_match(id))
}

/// Fails when a `--cases` pattern matches no case of `catalogue` (a typo
/// such as `sever.oob.*` must not shrink the run to nothing).
pub fn check_patterns_match(globs: &[String], catalogue: &[Scenario]) -> Result<(), SetupError> {
    for (pat, excludes) in patterns(globs) {
        let g = globset::Glob::new(&pat)
            .map_err(|e| SetupError(format!("--cases {pat}: {e}")))?
            .compile_matcher();
        if !catalogue.iter().any(|s| g.is_match(&s.id)) {
            return Err(SetupError(format!(
                "--cases: `{}{pat}` matches no case{} (see `idprov check --list`)",
                if excludes { "!" } else { "" },
                did_you_mean(&pat, catalogue.iter().map(|s| s.id.as_str()))
                    .map(|id| format!("; did you mean `{id}`?"))
                    .unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The case id nearest to a mistyped one, when one is near enough to be
/// the likely intent (a few edits, or a Jaro-Winkler similarity of 0.9).
pub(crate) fn did_you_mean<'a>(typed: &str, ids: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    ids.map(|id| (strsim::jaro_winkler(typed, id), id))
        .filter(|(score, id)| *score >= 0.9 || strsim::levenshtein(typed, id) <= 3)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}

/// Parses a known-failing file: `case-id  reason` per line, `#` comments.
/// Ids are exact: globs are refused.
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
        if id.contains(['*', '?', '[', '{', '!']) {
            return Err(SetupError(format!(
                "known-failing line {}: `{id}` is a pattern; list each case id exactly",
                n + 1
            )));
        }
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

/// The baseline's verdicts by case id.
pub type Baseline = BTreeMap<String, Verdict>;

/// Reads the `--known-failing` and `--baseline` files, if given, and checks
/// that every known-failing entry names a case of `catalogue` that may be
/// listed (a control may not: its failure always fails the run).
pub fn load_lists(
    opts: &CheckOptions,
    catalogue: &[Scenario],
) -> Result<(BTreeMap<String, String>, Option<Baseline>), SetupError> {
    let known = match &opts.known_failing {
        Some(p) => parse_known_failing(&read(p, "--known-failing")?)?,
        None => BTreeMap::new(),
    };
    let ids: BTreeSet<&str> = catalogue.iter().map(|s| s.id.as_str()).collect();
    for id in known.keys() {
        if !ids.contains(id.as_str()) {
            return Err(SetupError(format!(
                "--known-failing: `{id}` names no case{} (see `idprov check --list`)",
                did_you_mean(id, ids.iter().copied())
                    .map(|near| format!("; did you mean `{near}`?"))
                    .unwrap_or_default()
            )));
        }
        if CONTROLS.contains(&id.as_str()) {
            return Err(SetupError(format!(
                "--known-failing: `{id}` is a control case (an honest provisioning); it cannot be listed"
            )));
        }
    }
    let baseline = match &opts.baseline {
        Some(p) => Some(parse_baseline(&read(p, "--baseline")?)?),
        None => None,
    };
    Ok((known, baseline))
}

/// Reads a file named by a flag, saying which flag in the error.
pub fn read(p: &Path, what: &str) -> Result<String, SetupError> {
    std::fs::read_to_string(p).map_err(|e| SetupError(format!("{what} {}: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_failing_requires_reason_and_exact_ids() {
        assert!(parse_known_failing("server.a.b\n").is_err());
        assert!(parse_known_failing("server.oob.*  all of them\n").is_err());
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
    fn typos_are_errors() {
        let cat = super::super::scenario::catalogue().unwrap();
        assert!(check_patterns_match(&["server.oob.*".into()], &cat).is_ok());
        let e = check_patterns_match(&["sever.oob.*".into()], &cat).unwrap_err();
        assert!(e.0.contains("sever.oob.*"), "{}", e.0);
        assert!(check_patterns_match(&["!server.nothing.*".into()], &cat).is_err());
        let o = CheckOptions {
            jobs: 0,
            ..CheckOptions::default()
        };
        assert!(o.validate().is_err());
        let o = CheckOptions {
            capabilities: vec!["csrr".into()],
            ..CheckOptions::default()
        };
        assert!(o.validate().unwrap_err().0.contains("csrr"));
    }
}

//! One results model, rendered as report.json, junit.xml, report.html,
//! report.md and a terminal table (SUITE.md "Report").

use super::scenario::{Level, Scenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Held.
    Pass,
    /// Did not hold.
    Fail,
    /// Not run (capability absent, or unimplemented in a client).
    Skip,
    /// An observation.
    Info,
    /// Run, but what the suite could see does not decide it (TTCN-3's
    /// `inconc`): never a pass; a counted case with it fails the run unless
    /// `--allow-inconclusive` is given.
    Inconclusive,
}

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::Info => "info",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One HTTP exchange (or a note) a case made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    /// Step number (1-based).
    pub step: usize,
    /// Method, or `NOTE`.
    pub method: String,
    /// URL.
    pub url: String,
    /// Credential used.
    pub credential: String,
    /// Request body (secrets masked).
    pub request_body: String,
    /// Response status, if any.
    pub status: Option<u16>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// Response body (secrets masked).
    pub response_body: String,
    /// Transport error, if no response.
    pub error: Option<String>,
    /// Duration.
    pub ms: u64,
}

impl Exchange {
    /// A free-text note in the evidence.
    pub fn note(step: usize, text: String) -> Self {
        Exchange {
            step,
            method: "NOTE".into(),
            url: String::new(),
            credential: String::new(),
            request_body: text,
            status: None,
            response_headers: Vec::new(),
            response_body: String::new(),
            error: None,
            ms: 0,
        }
    }
}

/// The result of one case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    /// Case id.
    pub id: String,
    /// Title.
    pub title: String,
    /// PROTOCOL section.
    pub section: String,
    /// Level.
    pub level: Level,
    /// Rules of docs/PROTOCOL.md the case checks.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Verdict.
    pub verdict: Verdict,
    /// Why (failure, skip reason, observation).
    pub detail: String,
    /// Duration.
    pub ms: u64,
    /// Device IDs the case used.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Exchanges, secrets masked.
    #[serde(default)]
    pub evidence: Vec<Exchange>,
    /// Listed in the known-failing file, with its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_failing: Option<String>,
    /// With incidental failures: the verdict of the case's own rules
    /// alone (`verdict` is the worse of it and fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_verdict: Option<Verdict>,
    /// Violations of rules other than the case's own, found on the way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidental: Vec<Incidental>,
}

/// A violation of a rule that is not the case's own, met on the way to its
/// own checks (e.g. a certificate-profile defect in a guess-limit case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incidental {
    /// The rule broken (docs/PROTOCOL.md).
    pub rule: String,
    /// The step at which it was first seen.
    pub step: usize,
    /// What was wrong.
    pub detail: String,
}

impl CaseResult {
    /// A not-yet-run result for a scenario.
    pub fn new(s: &Scenario) -> Self {
        CaseResult {
            id: s.id.clone(),
            title: s.title.clone(),
            section: s.section.clone(),
            level: s.level,
            rules: s.rules.clone(),
            verdict: Verdict::Skip,
            detail: String::new(),
            ms: 0,
            devices: Vec::new(),
            evidence: Vec::new(),
            known_failing: None,
            own_verdict: None,
            incidental: Vec::new(),
        }
    }
}

mod html;
mod junit;
mod markdown;
mod table;

/// The rule a case's own failure broke: the last `(area.name)` its detail
/// names that is one of the case's rules, else the case's first rule.
fn own_rule(c: &CaseResult) -> String {
    let own = c.detail.split("; incidental: ").next().unwrap_or("");
    own.rmatch_indices('(')
        .filter_map(|(i, _)| {
            let inner = own[i + 1..].split(')').next()?;
            c.rules.iter().find(|r| r.as_str() == inner).cloned()
        })
        .next()
        .or_else(|| c.rules.first().cloned())
        .unwrap_or_else(|| c.id.clone())
}

/// Verdict counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Failed, known failures included (a known failure is a failure that
    /// does not fail the run).
    pub fail: usize,
    /// Of `fail`, those listed in `--known-failing`.
    #[serde(default)]
    pub known_failing: usize,
    /// Skipped.
    pub skip: usize,
    /// Observations.
    pub info: usize,
    /// Run but not decided.
    #[serde(default)]
    pub inconclusive: usize,
}

impl Summary {
    /// " (K known failing, not counted)" when there are known failures.
    pub fn known_note(&self) -> String {
        if self.known_failing == 0 {
            String::new()
        } else {
            format!(" ({} known failing, not counted)", self.known_failing)
        }
    }
}

/// Version of the `report.json` format (docs/report.schema.json); raised
/// when a field changes meaning or goes away.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The whole report (`report.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Version of this format ([`REPORT_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Always `idprov`.
    pub suite: String,
    /// Suite version.
    pub version: String,
    /// `server` or `client`.
    pub role: String,
    /// What was checked.
    pub target: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// The run's component of every device ID (8 hex digits; server runs):
    /// `--seed` with `--run-id` replays a run exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Capabilities in effect.
    pub capabilities: Vec<String>,
    /// Whether SHOULD failures count.
    pub strict: bool,
    /// Start time, RFC 3339.
    pub started: String,
    /// Whole-run duration.
    pub ms: u64,
    /// Cases in catalogue order.
    pub cases: Vec<CaseResult>,
    /// Counts.
    pub summary: Summary,
    /// Outcome of the run for CI.
    pub outcome: Outcome,
}

/// The run's result as CI reads it (exit code 0, 1 or 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    /// Nothing that counts failed (exit 0).
    #[default]
    Pass,
    /// The target failed something that counts (exit 1).
    Fail,
    /// The suite could not test the target (exit 2); see `Outcome::error`.
    Error,
}

/// Why the run passed or failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// pass, fail or error.
    #[serde(default)]
    pub result: RunResult,
    /// Whether the run fails (exit 1 or 2).
    pub failed: bool,
    /// Why the suite could not test (result `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Reasons that fail the run as a whole, whatever else passed: a
    /// control case that failed, no counted case passing.
    #[serde(default)]
    pub run_failures: Vec<String>,
    /// Cases that count as failures.
    pub counted_failures: Vec<String>,
    /// Known-failing entries whose case now passes.
    pub stale_known_failing: Vec<String>,
    /// With `--baseline`: cases that passed there and fail now.
    pub regressions: Vec<String>,
    /// Counted cases whose verdict is inconclusive: they fail the run
    /// unless `--allow-inconclusive` was given.
    #[serde(default)]
    pub inconclusive: Vec<String>,
    /// Whether `--allow-inconclusive` let inconclusive counted cases pass
    /// (every report then says so on its first line).
    #[serde(default)]
    pub inconclusive_allowed: bool,
}

impl Outcome {
    /// The line every report starts with when `--allow-inconclusive` let
    /// counted cases that could not be decided through.
    pub fn allowed_inconclusive_line(&self) -> Option<String> {
        (self.inconclusive_allowed && !self.inconclusive.is_empty()).then(|| {
            format!(
                "NOT DECIDED: {} counted case(s) inconclusive, accepted by --allow-inconclusive: {}",
                self.inconclusive.len(),
                self.inconclusive.join(", ")
            )
        })
    }
}

impl Report {
    /// A report of `cases` with its counts computed.
    pub fn assemble(
        role: &str,
        target: String,
        seed: u64,
        started: time::OffsetDateTime,
        elapsed: std::time::Duration,
        cases: Vec<CaseResult>,
        outcome: Outcome,
    ) -> Self {
        let mut r = Report {
            schema_version: REPORT_SCHEMA_VERSION,
            suite: "idprov".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            role: role.into(),
            target,
            seed,
            run_id: None,
            capabilities: Vec::new(),
            strict: false,
            started: started
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            ms: elapsed.as_millis() as u64,
            cases,
            summary: Summary::default(),
            outcome,
        };
        r.summarise();
        r
    }

    /// Recomputes the summary counts.
    pub fn summarise(&mut self) {
        let mut s = Summary::default();
        for c in &self.cases {
            match c.verdict {
                Verdict::Pass => s.pass += 1,
                Verdict::Fail => {
                    s.fail += 1;
                    if c.known_failing.is_some() {
                        s.known_failing += 1;
                    }
                }
                Verdict::Skip => s.skip += 1,
                Verdict::Info => s.info += 1,
                Verdict::Inconclusive => s.inconclusive += 1,
            }
        }
        self.summary = s;
    }

    /// The report of a run that could not test its target (exit 2): no
    /// cases, outcome `error` with the reason, so CI still has artefacts.
    pub fn setup_error(role: &str, target: String, seed: u64, reason: String) -> Self {
        let outcome = Outcome {
            result: RunResult::Error,
            failed: true,
            error: Some(reason),
            ..Outcome::default()
        };
        Report::assemble(
            role,
            target,
            seed,
            time::OffsetDateTime::now_utc(),
            std::time::Duration::ZERO,
            Vec::new(),
            outcome,
        )
    }

    /// The report of a run that was interrupted: the cases that finished,
    /// kept as they were judged, and an `error` outcome that says the run
    /// is partial (no verdict on the target).
    pub fn interrupted(
        role: &str,
        target: String,
        seed: u64,
        finished: Vec<CaseResult>,
        reason: String,
    ) -> Self {
        let mut r = Report::setup_error(role, target, seed, reason);
        r.cases = finished;
        r.cases.sort_by(|a, b| a.id.cmp(&b.id));
        r.summarise();
        r
    }

    /// Writes report.json, junit.xml, report.html and report.md into `dir`.
    pub fn write_all(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(&dir.join("report.json"), &json, crate::fsutil::MODE_PUBLIC)?;
        crate::fsutil::write_atomic(
            &dir.join("junit.xml"),
            self.junit().as_bytes(),
            crate::fsutil::MODE_PUBLIC,
        )?;
        crate::fsutil::write_atomic(
            &dir.join("report.html"),
            self.html().as_bytes(),
            crate::fsutil::MODE_PUBLIC,
        )?;
        crate::fsutil::write_atomic(
            &dir.join("report.md"),
            self.markdown().as_bytes(),
            crate::fsutil::MODE_PUBLIC,
        )?;
        crate::fsutil::write_atomic(
            &dir.join("PROTOCOL.html"),
            crate::spec::html::protocol_html().as_bytes(),
            crate::fsutil::MODE_PUBLIC,
        )?;
        Ok(())
    }

    /// Failing cases grouped by the rule actually broken: an incidental
    /// violation counts under its rule, a case's own failure under the rule
    /// its detail names (or the case's first rule). Rules in profile order
    /// of first appearance; each with the cases, in catalogue order.
    pub fn failures_by_rule(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |rule: &str, case: &str| match groups.iter_mut().find(|(r, _)| r == rule) {
            Some((_, cases)) if cases.last().map(String::as_str) == Some(case) => {}
            Some((_, cases)) => cases.push(case.to_string()),
            None => groups.push((rule.to_string(), vec![case.to_string()])),
        };
        for c in self.cases.iter().filter(|c| c.verdict == Verdict::Fail) {
            if c.own_verdict.unwrap_or(c.verdict) == Verdict::Fail {
                add(&own_rule(c), &c.id);
            }
            for i in &c.incidental {
                add(&i.rule, &c.id);
            }
        }
        groups.sort_by_key(|(_, cases)| std::cmp::Reverse(cases.len()));
        groups
    }

    /// "By rule" lines for the Markdown and terminal summaries.
    fn by_rule_lines(&self) -> Vec<String> {
        self.failures_by_rule()
            .into_iter()
            .map(|(rule, cases)| {
                let fix = crate::spec::rule(&rule)
                    .map(|r| format!(" — {} {}", r.level.as_str(), r.text))
                    .unwrap_or_default();
                let shown: Vec<&str> = cases.iter().take(5).map(String::as_str).collect();
                let more = cases.len().saturating_sub(shown.len());
                format!(
                    "{rule}: {} case(s) ({}{}){fix}",
                    cases.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                )
            })
            .collect()
    }

    /// The counts and the seed, as the table's last line and the summary's
    /// first say them.
    pub fn counts_line(&self) -> String {
        let s = &self.summary;
        let inconclusive = if s.inconclusive == 0 {
            String::new()
        } else {
            format!(", {} inconclusive", s.inconclusive)
        };
        format!(
            "{} passed, {} failed{}, {} skipped, {} info{inconclusive} — seed {}",
            s.pass,
            s.fail,
            s.known_note(),
            s.skip,
            s.info,
            self.seed
        )
    }

    /// The one-line summary (`-q` prints only this and the run's reasons).
    pub fn summary_line(&self) -> String {
        let mut out = String::new();
        if let Some(line) = self.outcome.allowed_inconclusive_line() {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "{}", self.counts_line());
        if let Some(err) = &self.outcome.error {
            let _ = writeln!(out, "setup error: {err}");
        }
        for reason in &self.outcome.run_failures {
            let _ = writeln!(out, "run failed: {reason}");
        }
        let o = &self.outcome;
        let inconclusive_what = if o.inconclusive_allowed {
            "inconclusive, accepted by --allow-inconclusive"
        } else {
            "inconclusive, failing the run (--allow-inconclusive accepts them)"
        };
        for (what, ids) in [
            ("failing the run", &o.counted_failures),
            (inconclusive_what, &o.inconclusive),
            ("regressions against the baseline", &o.regressions),
            (
                "known-failing entries that pass now (remove them)",
                &o.stale_known_failing,
            ),
        ] {
            if !ids.is_empty() {
                let _ = writeln!(out, "{what}: {}", ids.join(", "));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::scenario::Level;

    fn case(id: &str, verdict: Verdict) -> CaseResult {
        CaseResult {
            id: id.into(),
            title: "t".into(),
            section: "PROTOCOL §4".into(),
            level: Level::Must,
            rules: vec!["oob.fields".into()],
            verdict,
            detail: "expected HTTP 400, got 200".into(),
            ms: 1,
            devices: vec![],
            evidence: vec![],
            known_failing: None,
            own_verdict: None,
            incidental: Vec::new(),
        }
    }

    /// A server report of `cases` with their `outcome`.
    fn judged(cases: Vec<CaseResult>, outcome: Outcome) -> Report {
        Report::assemble(
            "server",
            "t".into(),
            1,
            time::OffsetDateTime::UNIX_EPOCH,
            std::time::Duration::ZERO,
            cases,
            outcome,
        )
    }

    /// A known failure tells one story everywhere: the run passes, JUnit
    /// shows the case as skipped with the reason (so CI agrees with the
    /// exit code), and the table, Markdown and HTML show the reason.
    #[test]
    fn known_failures_agree_across_outputs() {
        let mut cases = vec![
            case("server.oob.empty-secret-400", Verdict::Fail),
            case("server.oob.admin-accepted", Verdict::Pass),
        ];
        let known = [(
            "server.oob.empty-secret-400".to_string(),
            "vendor ticket 42".to_string(),
        )]
        .into();
        let outcome = crate::check::decide_outcome(&mut cases, false, false, &known, None);
        assert!(!outcome.failed);
        let r = judged(cases, outcome);
        let junit = r.junit();
        assert!(!junit.contains("<failure"), "{junit}");
        assert!(junit.contains("<skipped") && junit.contains("known failing: vendor ticket 42"));
        assert!(r.table(false).contains("(known failing: vendor ticket 42)"));
        assert!(r.markdown().contains("known failing: vendor ticket 42"));
        assert!(r.html().contains("known failing: vendor ticket 42"));
        // One count, said the same way wherever a count is shown.
        assert_eq!((r.summary.fail, r.summary.known_failing), (1, 1));
        let said = "1 known failing, not counted";
        for (what, text) in [
            ("summary line", r.summary_line()),
            ("table", r.table(false)),
            ("markdown", r.markdown()),
            ("html", r.html()),
        ] {
            assert!(text.contains(said), "{what}: {text}");
        }
        assert!(!r.summary_line().contains("failing the run"));
    }

    /// An inconclusive MUST case tells one story everywhere: it fails the
    /// run (JUnit: an error) unless --allow-inconclusive, and then every
    /// report says so on its first line (JUnit: skipped, typed).
    #[test]
    fn inconclusive_agrees_across_outputs() {
        let cases = vec![
            case("server.oob.admin-accepted", Verdict::Pass),
            case("server.oob.empty-secret-400", Verdict::Inconclusive),
        ];
        let none = BTreeMap::new();
        let strict = judged(
            cases.clone(),
            crate::check::decide_outcome(&mut cases.clone(), false, false, &none, None),
        );
        assert!(strict.outcome.failed);
        assert!(strict.junit().contains("<error") && strict.junit().contains("inconclusive"));
        assert!(strict
            .summary_line()
            .contains("inconclusive, failing the run"));
        assert!(strict.markdown().contains("**Inconclusive**"));
        for text in [
            strict.summary_line(),
            strict.table(false),
            strict.markdown(),
            strict.html(),
        ] {
            assert!(text.contains("1 inconclusive"), "{text}");
        }
        let allowed = judged(
            cases.clone(),
            crate::check::decide_outcome(&mut cases.clone(), false, true, &none, None),
        );
        assert!(!allowed.outcome.failed);
        let first = |t: String| t.lines().next().unwrap_or_default().to_string();
        for (what, text) in [
            ("summary", allowed.summary_line()),
            ("table", allowed.table(false)),
            ("markdown", allowed.markdown()),
        ] {
            assert!(
                first(text.clone()).contains("--allow-inconclusive"),
                "{what}: {text}"
            );
        }
        assert!(allowed
            .html()
            .contains("<body>\n<p class=\"inconclusive\">NOT DECIDED"));
        let junit = allowed.junit();
        assert!(
            !junit.contains("<error") && junit.contains("inconclusive (allowed)"),
            "{junit}"
        );
    }

    /// The exit line names the failures that failed the run.
    #[test]
    fn the_summary_line_says_which_failures_counted() {
        let mut cases = vec![
            case("server.oob.empty-secret-400", Verdict::Fail),
            case("server.oob.admin-accepted", Verdict::Pass),
        ];
        let outcome =
            crate::check::decide_outcome(&mut cases, false, false, &BTreeMap::new(), None);
        let r = judged(cases, outcome);
        assert!(r
            .summary_line()
            .contains("failing the run: server.oob.empty-secret-400"));
    }

    /// The profile's words are Markdown: report.html shows them formatted
    /// (the rule status.auth carries a **Note:**), never as raw asterisks.
    #[test]
    fn html_formats_the_rules_markdown() {
        let mut c = case("server.status.admin-only", Verdict::Fail);
        c.rules = vec!["status.auth".into()];
        let mut cases = vec![c, case("server.oob.admin-accepted", Verdict::Pass)];
        let outcome =
            crate::check::decide_outcome(&mut cases, false, false, &BTreeMap::new(), None);
        let r = judged(cases, outcome);
        let html = r.html();
        assert!(html.contains("<strong>Note:</strong>"), "{html}");
        assert!(!html.contains("**Note:**"));
        let inline = crate::spec::html::inline_html("a `b` <i>c</i>");
        assert_eq!(inline, "a <code>b</code> &lt;i&gt;c&lt;/i&gt;");
    }

    #[test]
    fn setup_error_report_has_an_errored_junit_case() {
        let r = Report::setup_error("server", "t".into(), 9, "target unreachable".into());
        assert_eq!(r.outcome.result, RunResult::Error);
        let junit = r.junit();
        assert!(junit.contains("<error") && junit.contains("target unreachable"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"]["result"], "error");
        assert_eq!(v["outcome"]["error"], "target unreachable");
    }
}

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
}

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::Info => "info",
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

/// Splits `text` into lines of at most `width` characters, at spaces where
/// possible (a longer word is split).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split(' ') {
            let mut word = word.to_string();
            while word.chars().count() > width {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                let head: String = word.chars().take(width).collect();
                word = word.chars().skip(width).collect();
                lines.push(head);
            }
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        lines.push(line);
    }
    lines
}

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

/// The scenario behind a case id, for its rationale and fix.
fn case_doc(id: &str) -> Option<Scenario> {
    super::scenario::catalogue()
        .ok()?
        .into_iter()
        .find(|s| s.id == id)
}

/// The profile (docs/PROTOCOL.md) as a self-contained HTML page, with an
/// anchor per rule so reports can link to `PROTOCOL.html#<rule-id>`.
pub fn protocol_html() -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    // Inline markup: `code` and **bold**; a rule id gets its anchor.
    let inline = |s: &str| -> String {
        let mut out = String::new();
        let mut code = false;
        let mut bold = false;
        let e = esc(s);
        let mut rest = e.as_str();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**`") {
                if let Some((id, after)) = r.split_once("`**") {
                    out.push_str(&format!(
                        "<a id=\"{id}\" href=\"#{id}\"><strong><code>{id}</code></strong></a>"
                    ));
                    rest = after;
                    continue;
                }
            }
            if let Some(r) = rest.strip_prefix("**") {
                out.push_str(if bold { "</strong>" } else { "<strong>" });
                bold = !bold;
                rest = r;
                continue;
            }
            if let Some(r) = rest.strip_prefix('`') {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
                rest = r;
                continue;
            }
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
        if code {
            out.push_str("</code>");
        }
        if bold {
            out.push_str("</strong>");
        }
        out
    };
    let mut h = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>IDProv profile (idprov)</title>\n<style>body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}pre{background:#f6f6f6;padding:6px;overflow:auto}a[id]:target strong{background:#ffef9e}code{font-size:0.95em}</style></head><body>\n",
    );
    let mut in_code = false;
    let mut in_list = false;
    let mut para = String::new();
    let flush = |h: &mut String, para: &mut String, in_list: &mut bool| {
        if !para.is_empty() {
            if *in_list {
                h.push_str(&format!("<li>{para}</li>\n"));
            } else {
                h.push_str(&format!("<p>{para}</p>\n"));
            }
            para.clear();
        }
    };
    for line in crate::spec::PROTOCOL_MD.lines() {
        if line.trim_start().starts_with("```") {
            flush(&mut h, &mut para, &mut in_list);
            h.push_str(if in_code { "</pre>\n" } else { "<pre>" });
            in_code = !in_code;
            continue;
        }
        if in_code || line.trim_start().starts_with('|') {
            if !in_code {
                flush(&mut h, &mut para, &mut in_list);
                h.push_str(&format!("<pre>{}</pre>\n", esc(line)));
            } else {
                h.push_str(&esc(line));
                h.push('\n');
            }
            continue;
        }
        let t = line.trim_start();
        if let Some(level) = ["### ", "## ", "# "].iter().position(|p| t.starts_with(p)) {
            flush(&mut h, &mut para, &mut in_list);
            if in_list {
                h.push_str("</ul>\n");
                in_list = false;
            }
            let n = 3 - level;
            let text = t.trim_start_matches('#').trim();
            h.push_str(&format!("<h{n}>{}</h{n}>\n", inline(text)));
            continue;
        }
        if t.is_empty() {
            flush(&mut h, &mut para, &mut in_list);
            if in_list {
                h.push_str("</ul>\n");
                in_list = false;
            }
            continue;
        }
        let item = t.strip_prefix("- ").or_else(|| {
            t.split_once(". ")
                .filter(|(d, _)| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                .map(|(_, r)| r)
        });
        if let Some(item) = item {
            flush(&mut h, &mut para, &mut in_list);
            if !in_list {
                h.push_str("<ul>\n");
                in_list = true;
            }
            para.push_str(&inline(item));
            continue;
        }
        if !para.is_empty() {
            para.push(' ');
        }
        para.push_str(&inline(t));
    }
    flush(&mut h, &mut para, &mut in_list);
    if in_list {
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Verdict counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Skipped.
    pub skip: usize,
    /// Observations.
    pub info: usize,
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
                Verdict::Fail => s.fail += 1,
                Verdict::Skip => s.skip += 1,
                Verdict::Info => s.info += 1,
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
            protocol_html().as_bytes(),
            crate::fsutil::MODE_PUBLIC,
        )?;
        Ok(())
    }

    /// JUnit XML: one testcase per case.
    pub fn junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
        let mut report = quick_junit::Report::new("idprov");
        let mut suite = TestSuite::new(format!("idprov {}", self.role));
        suite.add_property(Property::new("seed", self.seed.to_string()));
        suite.add_property(Property::new("target", self.target.clone()));
        if let Some(err) = &self.outcome.error {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(err.clone());
            s.set_type("setup");
            let mut tc = TestCase::new("setup", s);
            tc.set_classname("idprov.setup");
            suite.add_test_case(tc);
        }
        for reason in &self.outcome.run_failures {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(reason.clone());
            s.set_type("run");
            let mut tc = TestCase::new("run", s);
            tc.set_classname("idprov.run");
            suite.add_test_case(tc);
        }
        for c in &self.cases {
            let status = match (c.verdict, &c.known_failing) {
                (Verdict::Fail, Some(reason)) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!("known failing: {reason} — {}", c.detail));
                    s.set_type("known-failing");
                    s
                }
                (v, _) => match v {
                    Verdict::Pass | Verdict::Info => TestCaseStatus::success(),
                    Verdict::Skip => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(c.detail.clone());
                        s
                    }
                    Verdict::Fail => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        s.set_message(format!("[{}] {}", c.level.as_str(), c.detail));
                        s.set_type(c.level.as_str());
                        s
                    }
                },
            };
            let mut tc = TestCase::new(c.id.clone(), status);
            if let Some(reason) = &c.known_failing {
                tc.add_property(Property::new("known-failing", reason.clone()));
            }
            tc.set_classname(format!("idprov.{}", c.id.split('.').nth(1).unwrap_or("")));
            tc.set_time(std::time::Duration::from_millis(c.ms));
            if c.verdict == Verdict::Info {
                tc.set_system_out(c.detail.clone());
            }
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }

    /// Markdown summary for a pull-request comment.
    pub fn markdown(&self) -> String {
        let s = &self.summary;
        let mut m = String::new();
        let _ = writeln!(
            m,
            "## idprov check {} — {}\n",
            self.role,
            match self.outcome.result {
                RunResult::Error => "⚠️ could not test",
                _ if self.outcome.failed => "❌ failed",
                _ => "✅ passed",
            }
        );
        if let Some(err) = &self.outcome.error {
            let _ = writeln!(m, "**Setup error**: {err}\n");
        }
        for reason in &self.outcome.run_failures {
            let _ = writeln!(m, "**Run failed**: {reason}\n");
        }
        let _ = writeln!(
            m,
            "Target `{}` · seed `{}` · {} pass, {} fail, {} skip, {} info\n",
            self.target, self.seed, s.pass, s.fail, s.skip, s.info
        );
        let fails: Vec<&CaseResult> = self
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .collect();
        if !fails.is_empty() {
            let _ = writeln!(m, "| case | level | section | detail |\n|---|---|---|---|");
            for c in fails {
                let _ = writeln!(
                    m,
                    "| `{}`{} | {} | {} | {} |",
                    c.id,
                    c.known_failing
                        .as_ref()
                        .map(|r| format!(" (known failing: {})", r.replace('|', "\\|")))
                        .unwrap_or_default(),
                    c.level.as_str(),
                    c.section,
                    c.detail.replace('|', "\\|")
                );
            }
        }
        let by_rule = self.by_rule_lines();
        if !by_rule.is_empty() {
            let _ = writeln!(
                m,
                "\n**Failures by rule broken** (how to fix: what the rule says)\n"
            );
            for line in by_rule {
                let _ = writeln!(m, "- {}", line.replace('|', "\\|"));
            }
        }
        let infos: Vec<&CaseResult> = self
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Info)
            .collect();
        if !infos.is_empty() {
            let _ = writeln!(m, "\n**Observations**\n");
            for c in infos {
                let _ = writeln!(m, "- `{}`: {}", c.id, c.detail);
            }
        }
        for (title, list) in [
            (
                "Stale known-failing entries (these pass now)",
                &self.outcome.stale_known_failing,
            ),
            (
                "Regressions against the baseline",
                &self.outcome.regressions,
            ),
        ] {
            if !list.is_empty() {
                let _ = writeln!(m, "\n**{title}**: {}", list.join(", "));
            }
        }
        m
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

    /// The one-line summary (`-q` prints only this and the run's reasons).
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let mut out = format!(
            "{} passed, {} failed, {} skipped, {} info — seed {}\n",
            s.pass, s.fail, s.skip, s.info, self.seed
        );
        if let Some(err) = &self.outcome.error {
            let _ = writeln!(out, "setup error: {err}");
        }
        for reason in &self.outcome.run_failures {
            let _ = writeln!(out, "run failed: {reason}");
        }
        out
    }

    /// The terminal table: a header, one row per case, details never cut.
    pub fn table(&self, colour: bool) -> String {
        let paint = |v: Verdict| -> String {
            let t = v.as_str().to_uppercase();
            if !colour {
                return t;
            }
            let code = match v {
                Verdict::Pass => "32",
                Verdict::Fail => "31",
                Verdict::Skip => "33",
                Verdict::Info => "36",
            };
            format!("\x1b[{code}m{t}\x1b[0m")
        };
        let w = self
            .cases
            .iter()
            .map(|c| c.id.len())
            .max()
            .unwrap_or(10)
            .max(4);
        let mut out = String::new();
        if !self.cases.is_empty() {
            let _ = writeln!(
                out,
                "{:<w$}  {:<6}  {:<7}  DETAIL",
                "CASE", "LEVEL", "VERDICT"
            );
        }
        for c in &self.cases {
            let detail = format!(
                "{}{}",
                c.known_failing
                    .as_ref()
                    .map(|r| format!("(known failing: {r}) "))
                    .unwrap_or_default(),
                c.detail
            );
            // Short details stay on the row; long ones follow it, wrapped,
            // never cut.
            let inline = detail.chars().count() <= 70 && !detail.contains('\n');
            let row = format!(
                "{:<w$}  {:<6}  {}{}  {}",
                c.id,
                c.level.as_str(),
                paint(c.verdict),
                " ".repeat(7usize.saturating_sub(c.verdict.as_str().len())),
                if inline { detail.as_str() } else { "" }
            );
            let _ = writeln!(out, "{}", row.trim_end());
            if !inline {
                for line in wrap(&detail, 100) {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        if let Some(err) = &self.outcome.error {
            let _ = writeln!(out, "setup error: {err}");
        }
        for reason in &self.outcome.run_failures {
            let _ = writeln!(out, "run failed: {reason}");
        }
        let by_rule = self.by_rule_lines();
        if !by_rule.is_empty() {
            let _ = writeln!(out, "\nfailures by rule broken:");
            for line in by_rule {
                for (i, l) in wrap(&line, 100).into_iter().enumerate() {
                    let _ = writeln!(out, "{}{l}", if i == 0 { "  " } else { "    " });
                }
            }
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "\n{} passed, {} failed, {} skipped, {} info — seed {}",
            s.pass, s.fail, s.skip, s.info, self.seed
        );
        out
    }

    /// Self-contained HTML with a filterable table and per-case evidence.
    pub fn html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let s = &self.summary;
        let mut areas: BTreeMap<String, ()> = BTreeMap::new();
        for c in &self.cases {
            areas.insert(c.id.split('.').nth(1).unwrap_or("").to_string(), ());
        }
        let mut h = String::new();
        let _ = write!(
            h,
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>idprov check {role}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}}
.pass{{color:#176c2c}}.fail{{color:#b00020;font-weight:bold}}.skip{{color:#8a6d00}}.info{{color:#00639b}}
pre{{background:#f6f6f6;padding:6px;white-space:pre-wrap;word-break:break-all;max-height:20em;overflow:auto}}
details{{margin:2px 0}}.counts span{{margin-right:1em}}
</style></head><body>
<h1>idprov check {role}: {outcome}</h1>
<p>Target <code>{target}</code> · suite {version} · seed <code>{seed}</code> · started {started} · {ms} ms · capabilities {caps}</p>
<p class="counts"><span class="pass">{p} pass</span><span class="fail">{f} fail</span><span class="skip">{k} skip</span><span class="info">{i} info</span></p>
<p>Filter: <select id="fv"><option value="">any verdict</option><option>pass</option><option>fail</option><option>skip</option><option>info</option></select>
<select id="fl"><option value="">any level</option><option>MUST</option><option>SHOULD</option><option>MAY</option></select>
<select id="fa"><option value="">any area</option>"#,
            role = esc(&self.role),
            outcome = match self.outcome.result {
                RunResult::Error => "ERROR (could not test)",
                _ if self.outcome.failed => "FAILED",
                _ => "passed",
            },
            target = esc(&self.target),
            version = esc(&self.version),
            seed = self.seed,
            started = esc(&self.started),
            ms = self.ms,
            caps = esc(&self.capabilities.join(", ")),
            p = s.pass,
            f = s.fail,
            k = s.skip,
            i = s.info
        );
        for a in areas.keys() {
            let _ = write!(h, "<option>{}</option>", esc(a));
        }
        h.push_str("</select></p>\n");
        if let Some(err) = &self.outcome.error {
            let _ = writeln!(h, "<p class=\"fail\">Setup error: {}</p>", esc(err));
        }
        for reason in &self.outcome.run_failures {
            let _ = writeln!(h, "<p class=\"fail\">Run failed: {}</p>", esc(reason));
        }
        let by_rule = self.failures_by_rule();
        if !by_rule.is_empty() {
            h.push_str("<h2>Failures by rule broken</h2><ul>");
            for (rule, cases) in &by_rule {
                let text = crate::spec::rule(rule)
                    .map(|r| format!("{}: {}", r.level.as_str(), r.text))
                    .unwrap_or_default();
                let _ = write!(
                    h,
                    "<li><a href=\"PROTOCOL.html#{r}\"><code>{r}</code></a>: {n} case(s) — {c}<br><small>How to fix: {t}</small></li>",
                    r = esc(rule),
                    n = cases.len(),
                    c = esc(&cases.join(", ")),
                    t = esc(&text)
                );
            }
            h.push_str("</ul>\n");
        }
        h.push_str("<table id=\"t\"><thead><tr><th>case</th><th>level</th><th>section</th><th>verdict</th><th>detail and evidence</th></tr></thead><tbody>\n");
        for c in &self.cases {
            let area = c.id.split('.').nth(1).unwrap_or("");
            let _ = write!(
                h,
                "<tr data-v=\"{v}\" data-l=\"{l}\" data-a=\"{a}\"><td><code>{id}</code><br>{title}</td><td>{l}</td><td>{sec}</td><td class=\"{v}\">{v}{known}</td><td>{detail}",
                v = c.verdict.as_str(),
                l = c.level.as_str(),
                a = esc(area),
                id = esc(&c.id),
                title = esc(&c.title),
                sec = esc(&c.section),
                known = c
                    .known_failing
                    .as_ref()
                    .map(|r| format!(" (known failing: {})", esc(r)))
                    .unwrap_or_default(),
                detail = esc(&c.detail)
            );
            if !c.rules.is_empty() {
                let links: Vec<String> = c
                    .rules
                    .iter()
                    .map(|r| format!("<a href=\"PROTOCOL.html#{0}\"><code>{0}</code></a>", esc(r)))
                    .collect();
                let _ = write!(h, "<div class=\"rules\">rules: {}</div>", links.join(" "));
            }
            if !c.incidental.is_empty() {
                let _ = write!(
                    h,
                    "<p><b>Own rules:</b> {}</p><p><b>Incidental</b> (rules other than this case's, met on the way; how to fix: what the rule says):</p><ul>",
                    c.own_verdict.unwrap_or(c.verdict).as_str()
                );
                for i in &c.incidental {
                    let text = crate::spec::rule(&i.rule)
                        .map(|r| format!("{}: {}", r.level.as_str(), r.text))
                        .unwrap_or_default();
                    let _ = write!(
                        h,
                        "<li><a href=\"PROTOCOL.html#{r}\"><code>{r}</code></a> at step {s}: {d}<br><small>{t}</small></li>",
                        r = esc(&i.rule),
                        s = i.step,
                        d = esc(&i.detail),
                        t = esc(&text)
                    );
                }
                h.push_str("</ul>");
            }
            if c.own_verdict.unwrap_or(c.verdict) == Verdict::Fail {
                // What the rule says and why it matters, where it is needed.
                for r in c.rules.iter().filter_map(|r| crate::spec::rule(r)) {
                    let _ = write!(
                        h,
                        "<blockquote><code>{}</code> {}: {}</blockquote>",
                        esc(&r.id),
                        r.level.as_str(),
                        esc(&r.text)
                    );
                }
                if let Some(s) = case_doc(&c.id) {
                    let _ = write!(
                        h,
                        "<p><b>Why it matters:</b> {}<br><b>How to fix:</b> {}</p>",
                        esc(&s.rationale),
                        esc(&s.fix)
                    );
                }
            }
            if !c.evidence.is_empty() {
                let _ = write!(
                    h,
                    "<details{}><summary>{} exchanges</summary>",
                    if c.verdict == Verdict::Fail {
                        " open"
                    } else {
                        ""
                    },
                    c.evidence.len()
                );
                for e in &c.evidence {
                    if e.method == "NOTE" {
                        let _ = write!(h, "<pre>step {}: {}</pre>", e.step, esc(&e.request_body));
                        continue;
                    }
                    let headers: String = e
                        .response_headers
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}\n"))
                        .collect();
                    let status = match (&e.status, &e.error) {
                        (Some(s), _) => s.to_string(),
                        (None, Some(err)) => format!("no response: {}", esc(err)),
                        (None, None) => "no response".into(),
                    };
                    // The status line always shows; long bodies fold under it.
                    let _ = write!(
                        h,
                        "<pre>step {step} · {m} {url} as {cred} · {ms} ms → {status}</pre>",
                        step = e.step,
                        m = esc(&e.method),
                        url = esc(&e.url),
                        cred = esc(&e.credential),
                        ms = e.ms,
                    );
                    let body = format!(
                        "{}\n→ {status}\n{}\n{}",
                        esc(&e.request_body),
                        esc(&headers),
                        esc(&e.response_body)
                    );
                    if e.request_body.len() + e.response_body.len() > 600 {
                        let _ = write!(
                            h,
                            "<details><summary>bodies ({} bytes)</summary><pre>{body}</pre></details>",
                            e.request_body.len() + e.response_body.len()
                        );
                    } else {
                        let _ = write!(h, "<pre>{body}</pre>");
                    }
                }
                h.push_str("</details>");
            }
            h.push_str("</td></tr>\n");
        }
        h.push_str(
            r#"</tbody></table>
<script>
function f(){var v=document.getElementById('fv').value,l=document.getElementById('fl').value,a=document.getElementById('fa').value;
document.querySelectorAll('#t tbody tr').forEach(function(r){r.style.display=((!v||r.dataset.v==v)&&(!l||r.dataset.l==l)&&(!a||r.dataset.a==a))?'':'none';});}
['fv','fl','fa'].forEach(function(i){document.getElementById(i).addEventListener('change',f);});
</script></body></html>
"#,
        );
        h
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
        let outcome = crate::check::decide_outcome(&mut cases, false, &known, None);
        assert!(!outcome.failed);
        let r = Report::assemble(
            "server",
            "t".into(),
            1,
            time::OffsetDateTime::UNIX_EPOCH,
            std::time::Duration::ZERO,
            cases,
            outcome,
        );
        let junit = r.junit();
        assert!(!junit.contains("<failure"), "{junit}");
        assert!(junit.contains("<skipped") && junit.contains("known failing: vendor ticket 42"));
        assert!(r.table(false).contains("(known failing: vendor ticket 42)"));
        assert!(r.markdown().contains("known failing: vendor ticket 42"));
        assert!(r.html().contains("known failing: vendor ticket 42"));
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

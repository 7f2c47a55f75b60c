//! The Markdown rendering of a report (a pull-request comment, a job summary).

use super::*;

impl Report {
    /// Markdown summary for a pull-request comment.
    pub fn markdown(&self) -> String {
        let s = &self.summary;
        let mut m = String::new();
        if let Some(line) = self.outcome.allowed_inconclusive_line() {
            let _ = writeln!(m, "**{line}**\n");
        }
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
            "Target `{}` · seed `{}` · {} pass, {} fail{}, {} skip, {} info{}\n",
            self.target,
            self.seed,
            s.pass,
            s.fail,
            s.known_note(),
            s.skip,
            s.info,
            if s.inconclusive == 0 {
                String::new()
            } else {
                format!(", {} inconclusive", s.inconclusive)
            }
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
        let skipped_musts: Vec<&CaseResult> = self
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Skip && c.level == Level::Must)
            .collect();
        if !skipped_musts.is_empty() {
            let _ = writeln!(
                m,
                "\n**MUST cases not run** ({}; what would run each)\n",
                skipped_musts.len()
            );
            for c in skipped_musts {
                let _ = writeln!(m, "- `{}`: {}", c.id, c.detail.replace('|', "\\|"));
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
        let undecided: Vec<&CaseResult> = self
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Inconclusive)
            .collect();
        if !undecided.is_empty() {
            let _ = writeln!(m, "\n**Inconclusive** (run, not decided: never a pass)\n");
            for c in undecided {
                let _ = writeln!(
                    m,
                    "- `{}` [{}]: {}",
                    c.id,
                    c.level.as_str(),
                    c.detail.replace('|', "\\|")
                );
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
}

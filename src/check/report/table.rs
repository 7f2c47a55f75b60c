//! The terminal table rendering of a report.

use super::*;

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

impl Report {
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
                Verdict::Inconclusive => "35",
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
        if let Some(line) = self.outcome.allowed_inconclusive_line() {
            let _ = writeln!(out, "{line}");
        }
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
        let _ = writeln!(out, "\n{}", self.counts_line());
        out
    }
}

//! The protocol profile as data: the rules of `docs/PROTOCOL.md` (embedded
//! at build time), each with its stable identifier, level, role, section
//! and text. Cases, vectors and fuzz targets cite these identifiers; the
//! coverage matrix ([`coverage`]) ties them together.

pub mod coverage;
pub mod html;

use crate::check::scenario::Level;
use serde::Serialize;

/// The profile document, as shipped in `docs/PROTOCOL.md`.
pub const PROTOCOL_MD: &str = include_str!("../../docs/PROTOCOL.md");
/// The suite's contract, as shipped in `docs/SUITE.md`.
pub const SUITE_MD: &str = include_str!("../../docs/SUITE.md");

/// Whom a rule binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleRole {
    /// Provisioning servers.
    Server,
    /// Devices.
    Client,
    /// Both.
    Both,
}

/// One normative statement of the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Stable identifier, e.g. `oob.valid-until`.
    pub id: String,
    /// MUST, SHOULD or MAY.
    pub level: Level,
    /// Whom it binds.
    pub role: RuleRole,
    /// Section it stands in, e.g. `PROTOCOL §4`.
    pub section: String,
    /// The statement, as written (Markdown, on one line).
    pub text: String,
}

/// Why the profile document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("docs/PROTOCOL.md line {line}: {msg}")]
pub struct SpecError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// Reads every rule of a profile document: a rule starts with
/// ``**`id`** LEVEL (role) —`` and runs to the next list item, heading or
/// blank line.
pub fn parse(doc: &str) -> Result<Vec<Rule>, SpecError> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut section = String::new();
    let mut open = false;
    for (n, line) in doc.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(h) = line.strip_prefix("## ") {
            open = false;
            if let Some((num, _)) = h.split_once('.') {
                if num.chars().all(|c| c.is_ascii_digit()) {
                    section = format!("PROTOCOL §{num}");
                }
            }
            continue;
        }
        let starts_item = trimmed.starts_with("- ")
            || trimmed
                .split_once(". ")
                .is_some_and(|(d, _)| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if trimmed.is_empty() || line.starts_with('#') || starts_item {
            open = false;
        }
        if let Some(start) = line.find("**`") {
            let rest = &line[start + 3..];
            let err = |msg: &str| SpecError {
                line: n + 1,
                msg: msg.to_string(),
            };
            let (id, rest) = rest
                .split_once("`**")
                .ok_or_else(|| err("rule id not closed with `**"))?;
            let rest = rest.trim_start();
            let (level, rest) = rest
                .split_once(' ')
                .ok_or_else(|| err("no level after the rule id"))?;
            let level = match level {
                "MUST" => Level::Must,
                "SHOULD" => Level::Should,
                "MAY" => Level::May,
                o => return Err(err(&format!("level `{o}` is not MUST, SHOULD or MAY"))),
            };
            let (role, rest) = rest
                .strip_prefix('(')
                .and_then(|r| r.split_once(')'))
                .ok_or_else(|| err("no (role) after the level"))?;
            let role = match role {
                "server" => RuleRole::Server,
                "client" => RuleRole::Client,
                "both" => RuleRole::Both,
                o => return Err(err(&format!("role `{o}` is not server, client or both"))),
            };
            let text = rest.trim_start().trim_start_matches('—').trim().to_string();
            if !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
                || !id.contains('.')
            {
                return Err(err(&format!(
                    "rule id `{id}` is not `area.name` in lower case"
                )));
            }
            if rules.iter().any(|r| r.id == id) {
                return Err(err(&format!("rule id `{id}` appears twice")));
            }
            rules.push(Rule {
                id: id.to_string(),
                level,
                role,
                section: section.clone(),
                text,
            });
            open = true;
            continue;
        }
        if open {
            if let Some(r) = rules.last_mut() {
                r.text.push(' ');
                r.text.push_str(trimmed);
            }
        }
    }
    Ok(rules)
}

/// Every rule of the shipped profile.
pub fn rules() -> Result<Vec<Rule>, SpecError> {
    parse(PROTOCOL_MD)
}

/// The rule called `id` in the shipped profile.
pub fn rule(id: &str) -> Option<Rule> {
    rules().ok()?.into_iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profile_parses_with_every_level_and_role() {
        let rules = rules().unwrap();
        assert!(rules.len() >= 60, "{}", rules.len());
        let r = rules
            .iter()
            .find(|r| r.id == "decision.guess-limit")
            .unwrap();
        assert_eq!(r.level, Level::Must);
        assert_eq!(r.role, RuleRole::Server);
        assert_eq!(r.section, "PROTOCOL §5");
        assert!(r.text.contains("after 5") && r.text.contains("unlimited guesses"));
        for l in [Level::Must, Level::Should, Level::May] {
            assert!(rules.iter().any(|r| r.level == l));
        }
        assert!(rules.iter().all(|r| r.section.starts_with("PROTOCOL §")));
    }

    #[test]
    fn malformed_rules_are_refused() {
        assert!(parse("## 1. X\n- **`a.b`** MUSTY (server) — t\n").is_err());
        assert!(parse("## 1. X\n- **`a.b`** MUST (nobody) — t\n").is_err());
        assert!(parse("## 1. X\n- **`Ab`** MUST (server) — t\n").is_err());
        assert!(
            parse("## 1. X\n- **`a.b`** MUST (server) — t\n- **`a.b`** MAY (server) — u\n")
                .is_err()
        );
        let ok = parse("## 2. Y\n- **`a.b`** MAY (both) — one\n  two\n\nthree\n").unwrap();
        assert_eq!(ok[0].text, "one two");
        assert_eq!(ok[0].section, "PROTOCOL §2");
    }
}

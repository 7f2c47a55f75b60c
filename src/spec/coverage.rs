//! The coverage matrix: for every rule of the profile, the server cases,
//! client cases, test vectors and fuzz targets that check it, and the MUST
//! rules nothing checks (each listed in `docs/uncovered.toml` with why).

use super::{Rule, SpecError};
use crate::check::scenario::{Level, Role, Scenario};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The MUST rules no case checks, with the reason (`docs/uncovered.toml`).
pub const UNCOVERED_TOML: &str = include_str!("../../docs/uncovered.toml");

/// Fuzz targets (`fuzz/fuzz_targets/<name>.rs`, and the live fuzzer
/// `idprov fuzz server`) and the rules whose code they exercise.
pub const FUZZ_TARGETS: &[(&str, &[&str])] = &[
    ("csr", &["csr.verify", "provreq.key"]),
    (
        "decision_sequence",
        &[
            "decision.admin",
            "decision.renewal",
            "decision.no-authority",
            "decision.guess-limit",
            "decision.issue",
            "oob.one-time",
            "provreq.waiting",
            "provreq.rejected",
        ],
    ),
    ("device_id", &["provreq.device-id"]),
    (
        "directory",
        &[
            "directory.client-ca-forms",
            "directory.client-endpoint-forms",
            "directory.client-tolerance",
        ],
    ),
    ("json_messages", &["provreq.fields", "transport.robust"]),
    ("json_scanner", &["hmac.raw-blanking"]),
    ("report_files", &[]),
    ("scenario_file", &[]),
    (
        "sign_differential",
        &["hmac.signing-input", "hmac.raw-blanking"],
    ),
    ("signature", &["hmac.signing-input", "hmac.raw-blanking"]),
    ("spki_pem", &["provreq.key"]),
    ("txt_url", &["discovery.client-keys"]),
    (
        "idprov fuzz server",
        &["transport.robust", "transport.timeouts"],
    ),
];

/// What checks one rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleCoverage {
    /// The rule.
    pub id: String,
    /// Its level.
    pub level: Option<Level>,
    /// Its section.
    pub section: String,
    /// Server cases citing it.
    pub server_cases: Vec<String>,
    /// Client cases citing it.
    pub client_cases: Vec<String>,
    /// Vector cases citing it, as `file#tcId`.
    pub vectors: Vec<String>,
    /// Fuzz targets exercising it.
    pub fuzz: Vec<String>,
    /// Why it has no case, from `docs/uncovered.toml`.
    pub uncovered_reason: Option<String>,
    /// Cases that test it by a near miss (`near_miss` set).
    pub near_miss: Vec<String>,
    /// Why it has no near-miss case, from `docs/uncovered.toml`.
    pub near_miss_reason: Option<String>,
}

impl RuleCoverage {
    /// Whether a conformance case checks it.
    pub fn has_case(&self) -> bool {
        !self.server_cases.is_empty() || !self.client_cases.is_empty()
    }
}

/// The whole matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// One row per rule, in document order.
    pub rules: Vec<RuleCoverage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncoveredFile {
    #[serde(default)]
    rule: Vec<UncoveredEntry>,
    #[serde(default, rename = "near-miss")]
    near_miss: Vec<UncoveredEntry>,
}

/// What `docs/uncovered.toml` says: rules without a case, and rules
/// without a near-miss case, each with the reason.
#[derive(Debug, Clone, Default)]
pub struct Uncovered {
    /// Rule id → why no case checks it.
    pub cases: BTreeMap<String, String>,
    /// Rule id → why no near-miss case checks it.
    pub near_miss: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncoveredEntry {
    id: String,
    reason: String,
}

/// Reads `docs/uncovered.toml`.
pub fn uncovered_list(text: &str) -> Result<Uncovered, String> {
    let f: UncoveredFile = toml::from_str(text).map_err(|e| format!("docs/uncovered.toml: {e}"))?;
    let mut out = Uncovered::default();
    for (list, into) in [(f.rule, &mut out.cases), (f.near_miss, &mut out.near_miss)] {
        for e in list {
            if e.reason.trim().is_empty() {
                return Err(format!("docs/uncovered.toml: `{}` has no reason", e.id));
            }
            if into.insert(e.id.clone(), e.reason).is_some() {
                return Err(format!("docs/uncovered.toml: `{}` is listed twice", e.id));
            }
        }
    }
    Ok(out)
}

/// Builds the matrix from the rules, the case catalogue, the generated
/// vector files (name, JSON text) and the fuzz table.
pub fn build(
    rules: &[Rule],
    cases: &[Scenario],
    vectors: &[(String, String)],
    uncovered: &Uncovered,
) -> Coverage {
    let mut rows: Vec<RuleCoverage> = rules
        .iter()
        .map(|r| RuleCoverage {
            id: r.id.clone(),
            level: Some(r.level),
            section: r.section.clone(),
            uncovered_reason: uncovered.cases.get(&r.id).cloned(),
            near_miss_reason: uncovered.near_miss.get(&r.id).cloned(),
            ..RuleCoverage::default()
        })
        .collect();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        index.insert(r.id.clone(), i);
    }
    for s in cases {
        for id in &s.rules {
            if let Some(&i) = index.get(id) {
                match s.role {
                    Role::Server => rows[i].server_cases.push(s.id.clone()),
                    Role::Client => rows[i].client_cases.push(s.id.clone()),
                }
                if s.near_miss.is_some() {
                    rows[i].near_miss.push(s.id.clone());
                }
            }
        }
    }
    for (name, text) in vectors {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        let groups = v["testGroups"].as_array().cloned().unwrap_or_default();
        for g in groups {
            for t in g["tests"].as_array().cloned().unwrap_or_default() {
                for r in t["rules"].as_array().cloned().unwrap_or_default() {
                    if let Some(&i) = r.as_str().and_then(|r| index.get(r)) {
                        rows[i].vectors.push(format!("{name}#{}", t["tcId"]));
                    }
                }
            }
        }
    }
    for (target, ids) in FUZZ_TARGETS {
        for id in *ids {
            if let Some(&i) = index.get(*id) {
                rows[i].fuzz.push(target.to_string());
            }
        }
    }
    Coverage { rules: rows }
}

/// The matrix of the shipped profile, catalogue and vectors.
pub fn shipped() -> Result<Coverage, String> {
    let rules = super::rules().map_err(|e: SpecError| e.to_string())?;
    let cases = crate::check::scenario::catalogue().map_err(|e| e.to_string())?;
    let vectors = crate::vectors::generate_all().map_err(|e| e.to_string())?;
    let uncovered = uncovered_list(UNCOVERED_TOML)?;
    Ok(build(&rules, &cases, &vectors, &uncovered))
}

/// Counts per level: (rules, with a case, without a case).
pub fn counts(c: &Coverage) -> Vec<(Level, usize, usize, usize)> {
    [Level::Must, Level::Should, Level::May]
        .into_iter()
        .map(|l| {
            let rows: Vec<&RuleCoverage> = c.rules.iter().filter(|r| r.level == Some(l)).collect();
            let with = rows.iter().filter(|r| r.has_case()).count();
            (l, rows.len(), with, rows.len() - with)
        })
        .collect()
}

/// Problems that make the matrix unacceptable: a MUST rule with no case
/// and no reason, or a reason for a rule that does not exist or now has a
/// case (a stale entry).
pub fn problems(c: &Coverage, uncovered: &Uncovered) -> Vec<String> {
    let mut out = Vec::new();
    for r in &c.rules {
        if r.level == Some(Level::Must) && !r.has_case() && r.uncovered_reason.is_none() {
            out.push(format!(
                "MUST rule {} has no case; add one, or list it in docs/uncovered.toml with the reason",
                r.id
            ));
        }
        if r.has_case() && r.near_miss.is_empty() && r.near_miss_reason.is_none() {
            out.push(format!(
                "rule {} has cases but none tests it by a near miss; add one (near_miss = \"…\"), or list it under [[near-miss]] in docs/uncovered.toml with the reason",
                r.id
            ));
        }
        if !r.near_miss.is_empty() && r.near_miss_reason.is_some() {
            out.push(format!(
                "docs/uncovered.toml gives {} no near miss, but {} now is one: remove the entry",
                r.id, r.near_miss[0]
            ));
        }
        if r.has_case() && r.uncovered_reason.is_some() {
            out.push(format!(
                "docs/uncovered.toml lists {} but a case now checks it: remove the entry",
                r.id
            ));
        }
    }
    for id in uncovered.cases.keys().chain(uncovered.near_miss.keys()) {
        if !c.rules.iter().any(|r| &r.id == id) {
            out.push(format!(
                "docs/uncovered.toml names {id}, which is not a rule"
            ));
        }
    }
    out
}

/// The counts table, as the README carries it.
pub fn counts_markdown(c: &Coverage) -> String {
    let mut s = String::from(
        "| level | rules | checked by a case | … with a near-miss case | by vectors or fuzzing only | not checked |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for (l, total, with, _) in counts(c) {
        let rows: Vec<&RuleCoverage> = c.rules.iter().filter(|r| r.level == Some(l)).collect();
        let other = rows
            .iter()
            .filter(|r| !r.has_case() && (!r.vectors.is_empty() || !r.fuzz.is_empty()))
            .count();
        let near = rows.iter().filter(|r| !r.near_miss.is_empty()).count();
        let _ = writeln!(
            s,
            "| {} | {total} | {with} | {near} | {other} | {} |",
            l.as_str(),
            total - with - other
        );
    }
    s
}

/// The full matrix as text (one rule a line) or Markdown.
pub fn render(c: &Coverage, markdown: bool) -> String {
    let list = |v: &[String], max: usize| -> String {
        if v.is_empty() {
            return "—".into();
        }
        let mut s = v.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > max {
            let _ = write!(s, " (+{} more)", v.len() - max);
        }
        s
    };
    let mut s = String::new();
    if markdown {
        s.push_str("| rule | level | server cases | client cases | near miss | vectors | fuzz |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    }
    for r in &c.rules {
        let level = r.level.map(Level::as_str).unwrap_or("?");
        let vectors = if r.vectors.is_empty() {
            "—".to_string()
        } else {
            format!("{} cases", r.vectors.len())
        };
        if markdown {
            let near = if r.near_miss.is_empty() {
                r.near_miss_reason.as_ref().map_or("—".to_string(), |_| {
                    "none (reason in uncovered.toml)".into()
                })
            } else {
                list(&r.near_miss, 2)
            };
            let _ = writeln!(
                s,
                "| `{}` | {level} | {} | {} | {near} | {vectors} | {} |",
                r.id,
                list(&r.server_cases, 3),
                list(&r.client_cases, 3),
                list(&r.fuzz, 3)
            );
        } else {
            let _ = writeln!(
                s,
                "{:<34} {:<6} server {:<3} client {:<3} near-miss {:<2} vectors {:<3} fuzz {:<2} {}",
                r.id,
                level,
                r.server_cases.len(),
                r.client_cases.len(),
                r.near_miss.len(),
                r.vectors.len(),
                r.fuzz.len(),
                match (&r.uncovered_reason, r.has_case()) {
                    (_, true) => String::new(),
                    (Some(why), false) => format!("no case: {why}"),
                    (None, false) => "NO CASE".into(),
                }
            );
        }
    }
    s.push('\n');
    for (l, total, with, without) in counts(c) {
        let near = c
            .rules
            .iter()
            .filter(|r| r.level == Some(l) && !r.near_miss.is_empty())
            .count();
        let _ = writeln!(
            s,
            "{}{}: {total} rules, {with} checked by a case ({near} by a near miss), {without} not",
            if markdown { "- " } else { "" },
            l.as_str()
        );
    }
    let missing: Vec<&str> = c
        .rules
        .iter()
        .filter(|r| r.level == Some(Level::Must) && !r.has_case())
        .map(|r| r.id.as_str())
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            s,
            "{}MUST rules with no case (see docs/uncovered.toml): {}",
            if markdown { "- " } else { "" },
            missing.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_must_rule_has_a_case_or_a_reason() {
        let c = shipped().unwrap();
        let uncovered = uncovered_list(UNCOVERED_TOML).unwrap();
        let p = problems(&c, &uncovered);
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn every_fuzz_target_is_in_the_table() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
        let known = crate::spec::rules().unwrap();
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().replace(".rs", "");
            assert!(
                FUZZ_TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz target {name} is not in spec::coverage::FUZZ_TARGETS"
            );
        }
        for (t, ids) in FUZZ_TARGETS {
            for id in *ids {
                assert!(known.iter().any(|r| r.id == *id), "{t}: {id}");
            }
        }
    }

    #[test]
    fn a_must_rule_without_case_or_reason_is_a_problem() {
        let rules = crate::spec::parse("## 1. X\n- **`a.b`** MUST (server) — t\n").unwrap();
        let none = Uncovered::default();
        let c = build(&rules, &[], &[], &none);
        assert_eq!(problems(&c, &none).len(), 1);
        let reason = Uncovered {
            cases: [("a.b".to_string(), "why".to_string())].into(),
            ..Uncovered::default()
        };
        let c = build(&rules, &[], &[], &reason);
        assert!(problems(&c, &reason).is_empty());
        let stale = Uncovered {
            cases: [("x.y".to_string(), "why".to_string())].into(),
            ..Uncovered::default()
        };
        assert_eq!(problems(&c, &stale).len(), 1);
    }

    #[test]
    fn a_rule_with_cases_but_no_near_miss_or_reason_is_a_problem() {
        let rules = crate::spec::parse("## 1. X\n- **`a.b`** MUST (server) — t\n").unwrap();
        let case = |near: Option<&str>| {
            let text = format!(
                "id = \"server.oob.x\"\ntitle = \"t\"\nsection = \"PROTOCOL §1\"\nlevel = \"MUST\"\nrole = \"server\"\nrules = [\"a.b\"]\nrationale = \"r\"\nfix = \"f\"\n{}\n[[steps]]\ndo = \"directory\"\n",
                near.map(|k| format!("near_miss = \"{k}\"")).unwrap_or_default()
            );
            toml::from_str::<Scenario>(&text).unwrap()
        };
        let none = Uncovered::default();
        let far = build(&rules, &[case(None)], &[], &none);
        assert_eq!(
            problems(&far, &none).len(),
            1,
            "{:?}",
            problems(&far, &none)
        );
        let near = build(&rules, &[case(Some("counts"))], &[], &none);
        assert!(problems(&near, &none).is_empty());
        let why = Uncovered {
            near_miss: [("a.b".to_string(), "no boundary".to_string())].into(),
            ..Uncovered::default()
        };
        assert!(problems(&build(&rules, &[case(None)], &[], &why), &why).is_empty());
        // A reason next to a near-miss case is stale.
        assert_eq!(
            problems(&build(&rules, &[case(Some("time"))], &[], &why), &why).len(),
            1
        );
    }
}

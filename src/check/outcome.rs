//! From verdicts to the run's outcome: levels, `--strict`, known failures,
//! the baseline, and the two rules that keep a green honest — a control
//! case that did not pass fails the run, and so does a run in which no case
//! that counts passed.

use super::options::Baseline;
use super::report::{CaseResult, Outcome, RunResult, Verdict};
use super::scenario::Level;
use super::CONTROLS;
use std::collections::BTreeMap;

/// Applies levels, known-failing and baseline to decide the run's outcome.
pub fn decide_outcome(
    cases: &mut [CaseResult],
    strict: bool,
    allow_inconclusive: bool,
    known: &BTreeMap<String, String>,
    baseline: Option<&Baseline>,
) -> Outcome {
    let mut o = Outcome::default();
    let counts = |l: Level| l == Level::Must || (strict && l == Level::Should);
    let mut counted_cases = 0;
    let mut counted_passes = 0;
    for c in cases.iter_mut() {
        let counts_level = counts(c.level);
        if counts_level {
            counted_cases += 1;
            if c.verdict == Verdict::Pass {
                counted_passes += 1;
            }
        }
        // An inconclusive control (a device on the network without
        // --state-cmd) is counted as inconclusive below, not as broken.
        if CONTROLS.contains(&c.id.as_str())
            && c.verdict != Verdict::Pass
            && c.verdict != Verdict::Inconclusive
        {
            o.run_failures.push(format!(
                "control case {} did not pass, so no other verdict can be trusted: {}",
                c.id, c.detail
            ));
        }
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
            (Verdict::Inconclusive, _) if counts_level => o.inconclusive.push(c.id.clone()),
            _ => {}
        }
    }
    if counted_passes == 0 {
        o.run_failures.push(format!(
            "no case that counts passed ({counted_cases} {} case(s) run, none passed): nothing was shown to work",
            if strict { "MUST/SHOULD" } else { "MUST" }
        ));
    }
    o.inconclusive_allowed = allow_inconclusive;
    o.failed = !o.counted_failures.is_empty()
        || (!allow_inconclusive && !o.inconclusive.is_empty())
        || !o.regressions.is_empty()
        || !o.stale_known_failing.is_empty()
        || !o.run_failures.is_empty();
    o.result = if o.failed {
        RunResult::Fail
    } else {
        RunResult::Pass
    };
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, level: Level, verdict: Verdict) -> CaseResult {
        CaseResult {
            id: id.into(),
            title: String::new(),
            section: "PROTOCOL §1".into(),
            level,
            rules: vec![],
            verdict,
            detail: String::new(),
            ms: 0,
            devices: vec![],
            evidence: vec![],
            known_failing: None,
            own_verdict: None,
            incidental: Vec::new(),
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
        let o = decide_outcome(&mut cs.clone(), false, false, &none, None);
        assert_eq!(o.counted_failures, ["a"]);
        assert!(o.failed);
        assert_eq!(o.result, RunResult::Fail);
        let o = decide_outcome(&mut cs.clone(), true, false, &none, None);
        assert_eq!(o.counted_failures, ["a", "b"]);
        // Known failing: listed failure does not count; listed pass is stale.
        let known: BTreeMap<String, String> = [
            ("a".to_string(), "r".to_string()),
            ("d".to_string(), "r".to_string()),
        ]
        .into();
        let o = decide_outcome(&mut cs, false, false, &known, None);
        assert!(o.counted_failures.is_empty());
        assert_eq!(o.stale_known_failing, ["d"]);
        assert!(o.failed);
        // Baseline: only cases that passed there and fail now count.
        let mut cs = vec![
            case("a", Level::Must, Verdict::Fail),
            case("e", Level::Must, Verdict::Fail),
            case("f", Level::Must, Verdict::Pass),
        ];
        let base: BTreeMap<String, Verdict> = [
            ("a".to_string(), Verdict::Fail),
            ("e".to_string(), Verdict::Pass),
        ]
        .into();
        let o = decide_outcome(&mut cs, false, false, &none, Some(&base));
        assert!(o.counted_failures.is_empty());
        assert_eq!(o.regressions, ["e"]);
        let mut cs = vec![
            case("a", Level::Must, Verdict::Fail),
            case("f", Level::Must, Verdict::Pass),
        ];
        let base: BTreeMap<String, Verdict> = [("a".to_string(), Verdict::Fail)].into();
        let o = decide_outcome(&mut cs, false, false, &none, Some(&base));
        assert!(!o.failed);
        assert_eq!(o.result, RunResult::Pass);
    }

    #[test]
    fn nothing_passed_is_never_a_pass() {
        let none = BTreeMap::new();
        let mut all_skipped = vec![
            case("a", Level::Must, Verdict::Skip),
            case("b", Level::May, Verdict::Info),
        ];
        let o = decide_outcome(&mut all_skipped, false, false, &none, None);
        assert!(o.failed, "{o:?}");
        assert!(o.run_failures[0].contains("none passed"));
        let mut empty: Vec<CaseResult> = vec![];
        assert!(decide_outcome(&mut empty, false, false, &none, None).failed);
    }

    #[test]
    fn a_failing_control_fails_the_run_even_against_a_baseline() {
        let none = BTreeMap::new();
        let mut cs = vec![
            case(CONTROLS[0], Level::Must, Verdict::Fail),
            case("x", Level::Must, Verdict::Pass),
        ];
        let base: BTreeMap<String, Verdict> = [(CONTROLS[0].to_string(), Verdict::Fail)].into();
        let o = decide_outcome(&mut cs, false, false, &none, Some(&base));
        assert!(o.failed);
        assert!(o.run_failures[0].contains("control"));
        // A skipped control is no better.
        let mut cs = vec![
            case(CONTROLS[0], Level::Must, Verdict::Skip),
            case("x", Level::Must, Verdict::Pass),
        ];
        assert!(decide_outcome(&mut cs, false, false, &none, None).failed);
    }

    #[test]
    fn an_inconclusive_counted_case_fails_the_run_unless_allowed() {
        let none = BTreeMap::new();
        let cs = vec![
            case("a", Level::Must, Verdict::Inconclusive),
            case("b", Level::May, Verdict::Inconclusive),
            case("c", Level::Must, Verdict::Pass),
        ];
        let o = decide_outcome(&mut cs.clone(), false, false, &none, None);
        assert!(o.failed && o.counted_failures.is_empty(), "{o:?}");
        assert_eq!(o.inconclusive, ["a"], "a MAY case does not count");
        assert_eq!(o.allowed_inconclusive_line(), None);
        let o = decide_outcome(&mut cs.clone(), false, true, &none, None);
        assert!(!o.failed, "{o:?}");
        let line = o.allowed_inconclusive_line().expect("said first");
        assert!(line.contains("--allow-inconclusive") && line.contains('a'));
        // Inconclusive is never a pass: alone it shows nothing worked.
        let mut only = vec![case("a", Level::Must, Verdict::Inconclusive)];
        let o = decide_outcome(&mut only, false, true, &none, None);
        assert!(
            o.failed && o.run_failures[0].contains("none passed"),
            "{o:?}"
        );
    }
}

//! The JUnit XML rendering of a report.

use super::*;

impl Report {
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
                    // Never a pass: an error (the case could not decide),
                    // or, when --allow-inconclusive let it through, skipped.
                    Verdict::Inconclusive if self.outcome.inconclusive_allowed => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(format!("inconclusive (allowed): {}", c.detail));
                        s.set_type("inconclusive");
                        s
                    }
                    Verdict::Inconclusive => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                        s.set_message(format!("inconclusive [{}] {}", c.level.as_str(), c.detail));
                        s.set_type("inconclusive");
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
}

//! The four report renderings, snapshotted with volatile fields redacted,
//! and the JUnit file checked as XML.

use crate::common;
use idprov::check::report::{Report, Verdict};
use idprov::check::{self, CheckOptions};
use idprov::suite::faults::Fault;
use quick_xml::events::Event;
use std::time::Duration;

async fn report(faults: &[Fault]) -> Report {
    let d = tempfile::tempdir().unwrap();
    let srv = idprov::suite::faulty_server::start(common::config(d.path()), faults)
        .await
        .unwrap();
    let target = check::embedded_target(&srv).unwrap();
    let opts = CheckOptions {
        cases: vec![
            "server.oob.*".into(),
            "server.directory.shape".into(),
            "!server.oob.valid-until-honoured".into(),
        ],
        seed: Some(42),
        run_id: Some(0x5eed_0042),
        jobs: 1,
        timeout: Duration::from_secs(60),
        ..CheckOptions::default()
    };
    let r = check::check_server(target, &opts).await.unwrap();
    srv.shutdown().await;
    r
}

fn scrub(text: &str, r: &Report) -> String {
    let t = text
        .replace(&r.target, "[target]")
        .replace(&r.started, "[started]");
    let t = redact_attr(&t, "time");
    redact_attr(&t, "timestamp")
}

/// Replaces the value of every ` name="…"` attribute by `[t]`.
fn redact_attr(text: &str, name: &str) -> String {
    let pat = format!(" {name}=\"");
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&pat) {
        out.push_str(&rest[..i + pat.len()]);
        let after = &rest[i + pat.len()..];
        let end = after.find('"').unwrap_or(after.len());
        out.push_str("[t]");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_and_failing_reports() {
    for (name, faults) in [("honest", vec![]), ("oob-no-auth", vec![Fault::OobNoAuth])] {
        let r = report(&faults).await;
        insta::assert_json_snapshot!(format!("{name}-report-json"), r, {
            ".started" => "[started]",
            ".ms" => "[ms]",
            ".target" => "[target]",
            ".cases[].ms" => "[ms]",
            ".cases[].evidence" => "[evidence]",
        });
        insta::assert_snapshot!(format!("{name}-report-md"), scrub(&r.markdown(), &r));
        insta::assert_snapshot!(format!("{name}-table"), scrub(&r.table(false), &r));
        let junit = r.junit();
        insta::assert_snapshot!(format!("{name}-junit"), scrub(&junit, &r));
        check_junit(&junit, &r);
        let html = r.html();
        assert!(
            !html.contains("<link") && !html.contains("src=\""),
            "HTML must be self-contained"
        );
        for c in &r.cases {
            assert!(html.contains(&c.id));
        }
        let fails = r
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count();
        assert_eq!(fails > 0, name != "honest");
        // The files land where asked.
        let dir = tempfile::tempdir().unwrap();
        r.write_all(dir.path()).unwrap();
        for f in ["report.json", "junit.xml", "report.html", "report.md"] {
            assert!(dir.path().join(f).metadata().unwrap().len() > 0, "{f}");
        }
        let back: Report =
            serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(back.cases.len(), r.cases.len());
    }
}

/// Well-formed XML with one testcase per case and matching failure counts.
fn check_junit(xml: &str, r: &Report) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut testcases, mut failures, mut skipped, mut suites) = (0, 0, 0, 0);
    loop {
        match reader.read_event().expect("JUnit is well-formed XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => suites += 1,
                b"testcase" => testcases += 1,
                b"failure" => failures += 1,
                b"skipped" => skipped += 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(suites, 1);
    assert_eq!(testcases, r.cases.len());
    assert_eq!(failures, r.summary.fail);
    assert_eq!(skipped, r.summary.skip);
}

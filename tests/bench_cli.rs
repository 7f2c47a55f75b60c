//! `idprov bench` for regression testing, as a user runs it: a short real
//! run, the same run as its own baseline (no regression), a baseline that
//! claims ten times the throughput (a regression: exit 1), `bench compare`,
//! and well-formed SVG plots with axes, legends and units.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_idprov");

fn idprov(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Every `<svg>…</svg>` in `html` parses as XML.
fn assert_svgs_well_formed(html: &str, what: &str) -> usize {
    let mut n = 0;
    let mut rest = html;
    while let Some(i) = rest.find("<svg") {
        let end = rest[i..].find("</svg>").expect("closed svg") + i + 6;
        let mut r = quick_xml::Reader::from_str(&rest[i..end]);
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("{what}: SVG {n} is not well-formed: {e}"),
            }
        }
        n += 1;
        rest = &rest[end..];
    }
    n
}

fn run_bench(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = vec![
        "bench",
        "--devices",
        "30",
        "--concurrency",
        "1,4",
        "--report-dir",
        dir.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    idprov(&a)
}

#[test]
fn bench_baseline_regressions_and_compare() {
    let d = tempfile::tempdir().unwrap();
    let first = d.path().join("first");
    let o = run_bench(&first, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let html = std::fs::read_to_string(first.join("bench.html")).unwrap();
    assert_eq!(assert_svgs_well_formed(&html, "bench.html"), 2);
    for needle in [
        "provisions per second",
        "latency, ms (log scale)",
        ">p50<",
        ">p99<",
        "concurrency",
    ] {
        assert!(html.contains(needle), "bench.html lacks {needle}");
    }
    // The run against itself as baseline, with a generous threshold: no
    // regression. (Two runs on a shared 2-core machine differ by tens of
    // percent; the threshold is the user's to choose.)
    let second = d.path().join("second");
    let base = first.join("bench.json");
    let o = run_bench(
        &second,
        &[
            "--baseline",
            base.to_str().unwrap(),
            "--max-regression",
            "1000",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("against the baseline") && !out.contains("REGRESSION"),
        "{out}"
    );
    // A baseline ten times faster than anything this machine does.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    for l in v["levels"].as_array_mut().unwrap() {
        let ps = l["per_second"].as_f64().unwrap();
        l["per_second"] = serde_json::json!(ps * 10.0);
    }
    let fast = d.path().join("fast.json");
    std::fs::write(&fast, serde_json::to_vec(&v).unwrap()).unwrap();
    let o = run_bench(
        &d.path().join("third"),
        &["--baseline", fast.to_str().unwrap()],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("REGRESSION") && out.contains("provisions/s"),
        "{out}"
    );
    // Side by side.
    let cmp = d.path().join("cmp");
    let o = idprov(&[
        "bench",
        "compare",
        base.to_str().unwrap(),
        second.join("bench.json").to_str().unwrap(),
        "--report-dir",
        cmp.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = std::fs::read_to_string(cmp.join("compare.html")).unwrap();
    assert_eq!(assert_svgs_well_formed(&page, "compare.html"), 2);
    assert!(page.contains("first/bench.json") && page.contains("second/bench.json"));
    // A file that is not a bench.json is a usage error.
    let o = idprov(&["bench", "--baseline", "/nonexistent.json"]);
    assert_eq!(o.status.code(), Some(2));
}

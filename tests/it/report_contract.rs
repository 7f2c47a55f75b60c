//! The versioned report contract and the documents that travel with the
//! project: every kind of report.json the suite writes meets
//! docs/report.schema.json (error reports included); the coverage matrix in
//! the README is current; nothing in the repository points outside it; and
//! a sign-off bundle round-trips through `bundle verify`, while a bundle
//! with one byte changed fails, naming the file.

use crate::common;
use idprov::check::report::Report;
use idprov::check::{self, CheckOptions};
use idprov::suite::faults::Fault;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_idprov");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_report(r: &Report, what: &str) {
    common::assert_meets_schema(&serde_json::to_value(r).unwrap(), what);
}

fn opts(cases: &[&str]) -> CheckOptions {
    CheckOptions {
        cases: cases.iter().map(|s| s.to_string()).collect(),
        seed: Some(5),
        jobs: 4,
        timeout: Duration::from_secs(60),
        ..CheckOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_report_meets_the_schema() {
    // Server: honest, broken (the Go emulation), known failing.
    let d = tempfile::tempdir().unwrap();
    for (what, faults) in [("honest", vec![]), ("go", Fault::GO_REFERENCE.to_vec())] {
        let dir = d.path().join(what);
        let srv = idprov::suite::faulty_server::start(common::config(&dir), &faults)
            .await
            .unwrap();
        let t = check::embedded_target(&srv).unwrap();
        let r = check::check_server(t, &opts(&["server.oob.*", "server.status.*"]))
            .await
            .unwrap();
        check_report(&r, what);
        srv.shutdown().await;
    }
    // Client, and the bare check's combination.
    let tpl = format!(
        "{BIN} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}}"
    );
    let c = check::check_client(
        check::client::ClientTarget::parse(&tpl).unwrap(),
        &opts(&["client.mitm.*"]),
    )
    .await
    .unwrap();
    check_report(&c, "client");
    let dir = d.path().join("combined");
    let srv = idprov::server::start(common::config(&dir)).await.unwrap();
    let t = check::embedded_target(&srv).unwrap();
    let s = check::check_server(t, &opts(&["server.waiting.*"]))
        .await
        .unwrap();
    srv.shutdown().await;
    check_report(&check::combine(s, c), "combined");
    // A setup error.
    check_report(
        &Report::setup_error("server", "https://x".into(), 1, "unreachable".into()),
        "setup error",
    );
    // The live fuzzer's report.
    let dir = d.path().join("fuzz");
    let srv = idprov::server::start(common::config(&dir)).await.unwrap();
    let t = check::embedded_target(&srv).unwrap();
    let f = idprov::live_fuzz::fuzz_server(
        &t,
        &idprov::live_fuzz::FuzzOptions {
            requests: 200,
            seed: 3,
            report_dir: d.path().join("fuzz-rep"),
            progress: false,
            ..idprov::live_fuzz::FuzzOptions::default()
        },
    )
    .await
    .unwrap();
    srv.shutdown().await;
    check_report(&f.report, "fuzz");
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("fuzz-rep/report.json")).unwrap())
            .unwrap();
    common::assert_meets_schema(&on_disk, "fuzz on disk");
}

/// A schema that accepts anything proves nothing: a report with a field
/// broken is refused.
#[test]
fn the_schema_refuses_a_broken_report() {
    let mut v =
        serde_json::to_value(Report::setup_error("server", "t".into(), 1, "x".into())).unwrap();
    common::assert_meets_schema(&v, "setup error");
    v["outcome"]["result"] = "maybe".into();
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("docs/report.schema.json")).unwrap())
            .unwrap();
    assert!(!jsonschema::validator_for(&schema).unwrap().is_valid(&v));
    v["outcome"]["result"] = "error".into();
    v["outcome"].as_object_mut().unwrap().remove("error");
    assert!(!jsonschema::validator_for(&schema).unwrap().is_valid(&v));
}

/// The README carries the coverage counts; regenerate them with
/// `idprov spec coverage` and paste the table between the markers.
#[test]
fn readme_coverage_counts_are_current() {
    let c = idprov::spec::coverage::shipped().unwrap();
    let want = idprov::spec::coverage::counts_markdown(&c);
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (_, rest) = readme
        .split_once("<!-- coverage:begin -->\n")
        .expect("README has the coverage markers");
    let (got, _) = rest.split_once("<!-- coverage:end -->").unwrap();
    assert_eq!(
        got, want,
        "README coverage table drifted; replace it with:\n{want}"
    );
}

/// Nothing in the repository points at files outside it.
#[test]
fn nothing_refers_outside_the_repository() {
    let out = Command::new("git")
        .args([
            "grep",
            "-n",
            "-I",
            "-e",
            "\\.\\./shared",
            "-e",
            "shared/captures",
            "--",
            ".",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    // git grep exits 1 when nothing matches.
    let found = String::from_utf8_lossy(&out.stdout);
    let found: Vec<&str> = found
        .lines()
        .filter(|l| !l.starts_with("tests/it/report_contract.rs"))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

fn bundle_run(dir: &Path) -> PathBuf {
    let bundle = dir.join("signoff.tar.gz");
    let o = Command::new(BIN)
        .args([
            "check",
            "server",
            "--cases",
            "server.oob.*",
            "--seed",
            "9",
            "--report-dir",
            dir.join("rep").to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    bundle
}

#[test]
fn a_bundle_round_trips_and_a_changed_byte_is_named() {
    let d = tempfile::tempdir().unwrap();
    let bundle = bundle_run(d.path());
    let o = Command::new(BIN)
        .args(["bundle", "verify", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("bundle OK") && out.contains("seed 9"), "{out}");
    assert!(out.contains("CA sha256"), "{out}");
    let v = idprov::check::bundle::verify(&bundle).unwrap();
    for f in [
        "report.json",
        "junit.xml",
        "report.html",
        "run.json",
        "catalogue.json",
        "PROTOCOL.md",
    ] {
        assert!(v.files.iter().any(|x| x == f), "{f} missing: {:?}", v.files);
    }
    assert!(v.run.command_line.iter().any(|a| a == "--bundle"));
    assert!(v.run.target[0]
        .directory
        .as_deref()
        .unwrap_or("")
        .contains("endpoints"));
    // Change one byte of one file inside, re-pack, verify again.
    let unpacked = d.path().join("x");
    std::fs::create_dir_all(&unpacked).unwrap();
    let st = Command::new("tar")
        .args([
            "-xzf",
            bundle.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let target = unpacked.join("report.md");
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[5] ^= 0x20;
    std::fs::write(&target, bytes).unwrap();
    let tampered = d.path().join("tampered.tar.gz");
    let st = Command::new("tar")
        .args([
            "-czf",
            tampered.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let o = Command::new(BIN)
        .args(["bundle", "verify", tampered.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("report.md") && err.contains("does not match"),
        "{err}"
    );
}

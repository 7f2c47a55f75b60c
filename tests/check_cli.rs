//! `idprov check` as a process: exit codes 0/1/2, reports on disk,
//! known-failing files, --list, and an external target given by URL.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_idprov");

fn idprov(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn bare_check_passes_and_writes_reports() {
    let d = tempfile::tempdir().unwrap();
    let rep = d.path().join("rep");
    let o = idprov(&[
        "check",
        "--report-dir",
        rep.to_str().unwrap(),
        "--cases",
        "server.oob.*,server.provision.*",
        "--seed",
        "1",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("server.oob.admin-accepted") && out.contains("PASS"));
    assert!(out.contains("reports:"));
    for f in ["report.json", "junit.xml", "report.html", "report.md"] {
        assert!(rep.join(f).exists(), "{f}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rep.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["seed"], 1);
    assert_eq!(v["summary"]["fail"], 0);
}

#[test]
fn stale_known_failing_entry_fails_the_run_and_missing_reason_is_usage() {
    let d = tempfile::tempdir().unwrap();
    let kf = d.path().join("known");
    std::fs::write(
        &kf,
        "# listed but passing\nserver.oob.admin-accepted  thought broken\n",
    )
    .unwrap();
    let rep = d.path().join("rep");
    let o = idprov(&[
        "check",
        "--report-dir",
        rep.to_str().unwrap(),
        "--cases",
        "server.oob.admin-accepted",
        "--known-failing",
        kf.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("stale known-failing"));
    std::fs::write(&kf, "server.oob.admin-accepted\n").unwrap();
    let o = idprov(&[
        "check",
        "--report-dir",
        rep.to_str().unwrap(),
        "--known-failing",
        kf.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no reason"), "{err}");
}

#[test]
fn unreachable_target_is_a_setup_error() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("x.pem");
    let ca = idprov::pki::CertAuthority::generate("t", time::OffsetDateTime::now_utc()).unwrap();
    std::fs::write(&f, ca.cert_pem()).unwrap();
    let p = f.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}/idprov/directory");
    let o = idprov(&[
        "check",
        "server",
        "--url",
        &url,
        "--ca-cert",
        p,
        "--admin-cert",
        p,
        "--admin-key",
        p,
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unreachable"), "{err}");
}

#[test]
fn list_prints_the_catalogue() {
    let o = idprov(&["check", "server", "--list"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().count() >= 70);
    assert!(
        out.contains("server.provision.guess-limit")
            && out.contains("MUST")
            && out.contains("PROTOCOL §5")
    );
}

#[test]
fn external_server_by_url() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut srv = Command::new(BIN)
        .args([
            "server",
            "--no-mdns",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let f = |n: &str| data.join(n).to_str().unwrap().to_string();
    let url = format!("https://127.0.0.1:{port}/idprov/directory");
    let rep = d.path().join("rep");
    let o = idprov(&[
        "check",
        "server",
        "--url",
        &url,
        "--ca-cert",
        &f("ca.pem"),
        "--admin-cert",
        &f("admin-cert.pem"),
        "--admin-key",
        &f("admin-key.pem"),
        "--report-dir",
        rep.to_str().unwrap(),
        "--jobs",
        "8",
    ]);
    let _ = srv.kill();
    let _ = srv.wait();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    // Without the CA key or a plugin credential those cases are skipped, with the reason.
    assert!(
        out.contains("server.renewal.expired-refused") && out.contains("lacks capability ca-key"),
        "{out}"
    );
}

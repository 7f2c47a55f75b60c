//! `idprov check` as a process: exit codes 0/1/2, reports on disk,
//! known-failing files, --list, and an external target given by URL.

use crate::common;
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
    let v = report(&rep);
    assert_eq!(v["seed"], 1);
    assert_eq!(v["summary"]["fail"], 0);
    assert_eq!(v["outcome"]["result"], "pass");
    // One seed for both halves, and it is the one recorded.
    let err = String::from_utf8_lossy(&o.stderr);
    let seeds: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split("seed ").nth(1))
        .collect();
    assert_eq!(seeds, ["1", "1"], "{err}");
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
    let admin = ca.issue_admin(time::OffsetDateTime::now_utc()).unwrap();
    let (ac, ak) = (d.path().join("a.pem"), d.path().join("a.key"));
    std::fs::write(&ac, &admin.cert.pem).unwrap();
    std::fs::write(&ak, admin.key_pem.as_str()).unwrap();
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
        ac.to_str().unwrap(),
        "--admin-key",
        ak.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unreachable"), "{err}");
    // A file that is not a key where a key belongs is said before anything
    // is sent.
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
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--admin-cert / --admin-key"), "{err}");
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
    // Endpoints on non-default paths: every case must follow the
    // directory, none may assume /idprov/.
    let (mut srv, port) = spawn_server(&data, &["--path-prefix", "/devices/enrol"]);
    let f = |n: &str| data.join(n).to_str().unwrap().to_string();
    let url = format!("https://127.0.0.1:{port}/devices/enrol/directory");
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
        "--plugin-cert",
        &f("plugin-cert.pem"),
        "--plugin-key",
        &f("plugin-key.pem"),
        "--report-dir",
        rep.to_str().unwrap(),
        "--jobs",
        "8",
    ]);
    let _ = srv.kill();
    let _ = srv.wait();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    // Without the CA key those cases are skipped, with the reason; the
    // plugin credential given on the command line makes the plugin cases run.
    assert!(
        out.contains("server.renewal.expired-refused") && out.contains("needs --ca-key"),
        "{out}"
    );
    // The job summary lists every MUST case that did not run, with what
    // would run it (not only a count of skips).
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(md.contains("**MUST cases not run**"), "{md}");
    assert!(
        md.lines()
            .any(|l| l.contains("server.renewal.expired-refused") && l.contains("needs --ca-key")),
        "{md}"
    );
    let v = report(&rep);
    let verdict = |id: &str| {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["verdict"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(verdict("server.oob.plugin-accepted"), "pass");
    assert_eq!(verdict("server.limits.wrong-method-provreq-405"), "pass");
    assert_eq!(verdict("server.limits.body-1mib-413"), "pass");
}

fn examples_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples")
}

/// Waits (at most 20 s) until a server accepts on `port`.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "no server on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `idprov server` as a process on a free loopback port with its data in
/// `data`, once it listens.
fn spawn_server(data: &std::path::Path, extra: &[&str]) -> (std::process::Child, u16) {
    let port = free_port();
    let srv = Command::new(BIN)
        .args([
            "server",
            "--no-mdns",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    (srv, port)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process (the test-only `faulty_server` example) that answers,
/// but whose core is broken.
struct FaultyServer {
    child: std::process::Child,
    url: String,
    data: std::path::PathBuf,
}

impl FaultyServer {
    fn start(fault: &str, data: &std::path::Path) -> Self {
        let port = free_port();
        let exe = examples_dir().join("faulty_server");
        assert!(
            exe.exists(),
            "{} missing (cargo test builds examples)",
            exe.display()
        );
        let child = Command::new(exe)
            .args([
                "--fault",
                fault,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port);
        FaultyServer {
            child,
            url: format!("https://127.0.0.1:{port}/idprov/directory"),
            data: data.to_path_buf(),
        }
    }

    fn check(&self, rep: &std::path::Path, extra: &[&str]) -> std::process::Output {
        let f = |n: &str| self.data.join(n).to_str().unwrap().to_string();
        let mut args = vec![
            "check".to_string(),
            "server".into(),
            "--url".into(),
            self.url.clone(),
            "--ca-cert".into(),
            f("ca.pem"),
            "--admin-cert".into(),
            f("admin-cert.pem"),
            "--admin-key".into(),
            f("admin-key.pem"),
            "--report-dir".into(),
            rep.to_str().unwrap().into(),
            "--jobs".into(),
            "8".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new(BIN).args(&args).output().unwrap()
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a report.json the CLI wrote, checking it meets the schema.
fn report(rep: &std::path::Path) -> serde_json::Value {
    let v = serde_json::from_slice(&std::fs::read(rep.join("report.json")).unwrap()).unwrap();
    common::assert_meets_schema(&v, &rep.display().to_string());
    v
}

/// A server that answers but whose core is broken is a failing target, not
/// a setup error: its sanity case fails with the reason, every report is
/// written, the other cases still run, and the exit code is 1.
#[test]
fn servers_with_a_broken_core_get_a_report_and_exit_1() {
    for fault in ["issue-from-other-ca", "sha256-hmac-key"] {
        let d = tempfile::tempdir().unwrap();
        let srv = FaultyServer::start(fault, &d.path().join("data"));
        let rep = d.path().join("rep");
        let o = srv.check(&rep, &[]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{fault}: {out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        for f in ["report.json", "junit.xml", "report.html", "report.md"] {
            assert!(rep.join(f).exists(), "{fault}: {f} missing");
        }
        let v = report(&rep);
        assert_eq!(v["outcome"]["result"], "fail", "{fault}");
        let sanity = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "server.sanity.before")
            .unwrap();
        assert_eq!(sanity["verdict"], "fail", "{fault}");
        assert!(
            v["summary"]["pass"].as_u64().unwrap() > 10,
            "{fault}: the rest ran"
        );
        let junit = std::fs::read_to_string(rep.join("junit.xml")).unwrap();
        assert!(
            junit.contains("server.sanity.before") && junit.contains("<failure"),
            "{fault}"
        );
    }
}

/// Typos and impossible values are errors (exit 2, one line), never a
/// silently smaller run; an error report is still written for CI.
#[test]
fn typos_and_bad_flags_are_setup_errors_with_a_report() {
    let d = tempfile::tempdir().unwrap();
    let kf_unknown = d.path().join("kf1");
    std::fs::write(&kf_unknown, "server.oob.no-such-case  typo\n").unwrap();
    let kf_glob = d.path().join("kf2");
    std::fs::write(&kf_glob, "server.oob.*  all of them\n").unwrap();
    let kf_control = d.path().join("kf3");
    std::fs::write(&kf_control, "server.sanity.before  flaky\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["check", "server", "--cases", "sever.oob.*"],
            "matches no case",
        ),
        (
            vec!["check", "--cases", "server.oob.*,!server.nothing.*"],
            "matches no case",
        ),
        (
            vec!["check", "server", "--capabilities", "csrr"],
            "unknown capability",
        ),
        (vec!["check", "client", "--jobs", "0"], "--jobs"),
        (
            vec![
                "check",
                "server",
                "--known-failing",
                kf_unknown.to_str().unwrap(),
            ],
            "names no case",
        ),
        (
            vec![
                "check",
                "server",
                "--known-failing",
                kf_glob.to_str().unwrap(),
            ],
            "pattern",
        ),
        (
            vec![
                "check",
                "server",
                "--known-failing",
                kf_control.to_str().unwrap(),
            ],
            "control",
        ),
    ];
    for (i, (args, want)) in cases.into_iter().enumerate() {
        let rep = d.path().join(format!("rep{i}"));
        let mut a = args.clone();
        a.extend(["--report-dir", rep.to_str().unwrap()]);
        let o = idprov(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let last = err.trim().lines().last().unwrap_or("");
        assert!(last.contains(want), "{args:?}: {err}");
        let v = report(&rep);
        assert_eq!(v["outcome"]["result"], "error", "{args:?}");
        assert!(v["outcome"]["error"].as_str().unwrap().contains(want));
        let junit = std::fs::read_to_string(rep.join("junit.xml")).unwrap();
        assert!(junit.contains("<error"), "{args:?}: {junit}");
    }
}

/// Server discovery read strictly, on real mDNS packets in a network
/// namespace the test creates: the honest server passes both discovery
/// cases; a server whose instance has an empty TXT record (a client would
/// fall back to the default path and might find something else), an SRV
/// port it does not listen on, no A/AAAA record, or an address its
/// certificate does not name fails the MUST case. Needs root for `unshare --net`; fails rather than skips.
#[test]
fn server_discovery_is_checked_strictly_in_a_namespace() {
    let d = tempfile::tempdir().unwrap();
    let fs = examples_dir().join("faulty_server");
    assert!(fs.exists(), "{} missing", fs.display());
    let script = format!(
        r#"set -u
ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo
run() {{ # $1 name, $2 port, then the server command
  name=$1; port=$2; shift 2
  "$@" > {tmp}/$name.log 2>&1 &
  pid=$!
  i=0; while ! grep -q directory {tmp}/$name.log 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
  {bin} check server --url https://127.0.0.1:$port/idprov/directory     --ca-cert {tmp}/$name-data/ca.pem --admin-cert {tmp}/$name-data/admin-cert.pem     --admin-key {tmp}/$name-data/admin-key.pem --capabilities discovery     --cases 'server.discovery.*' --report-dir {tmp}/$name-rep
  echo "$name exit $?"
  kill $pid; wait $pid
}}
run honest 43901 {bin} server --listen 127.0.0.1:43901 --data-dir {tmp}/honest-data
run emptytxt 43902 {fs} --fault empty-txt --mdns --listen 127.0.0.1:43902 --data-dir {tmp}/emptytxt-data
run wrongport 43903 {fs} --fault mdns-wrong-port --mdns --listen 127.0.0.1:43903 --data-dir {tmp}/wrongport-data
run noaddress 43904 {fs} --fault mdns-no-address --mdns --listen 127.0.0.1:43904 --data-dir {tmp}/noaddress-data
run notincert 43905 {fs} --fault mdns-address-not-in-cert --mdns --listen 0.0.0.0:43905 --data-dir {tmp}/notincert-data
"#,
        tmp = d.path().display(),
        bin = BIN,
        fs = fs.display(),
    );
    let out = Command::new("timeout")
        .args(["180", "unshare", "--net", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("honest exit 0"), "{stdout}\n{stderr}");
    assert!(stdout.contains("emptytxt exit 1"), "{stdout}\n{stderr}");
    let verdict = |rep: &str, id: &str| {
        report(&d.path().join(rep))["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| {
                (
                    c["verdict"].as_str().unwrap().to_string(),
                    c["detail"].to_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(
        verdict("honest-rep", "server.discovery.advertised-directory").0,
        "pass"
    );
    assert_eq!(
        verdict("honest-rep", "server.discovery.txt-path-key").0,
        "pass"
    );
    // Each discovery fault fails the MUST case, for its own reason, read
    // from the packets.
    for (name, why) in [
        ("emptytxt", "path"),
        ("wrongport", "SRV record gives the port"),
        ("noaddress", "no A or AAAA record for the SRV target"),
        ("notincert", "does not verify under caCert for that address"),
    ] {
        assert!(
            stdout.contains(&format!("{name} exit 1")),
            "{stdout}\n{stderr}"
        );
        let (v, detail) = verdict(
            &format!("{name}-rep"),
            "server.discovery.advertised-directory",
        );
        assert_eq!(v, "fail", "{name}: {detail}");
        assert!(detail.contains(why), "{name}: {detail}");
    }
}

/// Output for scripts: a closed pipe ends the process quietly, `-q` prints
/// the summary alone, `--color always` paints, `never` does not.
#[test]
fn closed_pipes_quiet_and_colour() {
    let mut child = Command::new(BIN)
        .args(["check", "server", "--list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "{:?}",
        out.status
    );
    let d = tempfile::tempdir().unwrap();
    let rep = d.path().join("rep");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "check",
            "server",
            "--cases",
            "server.oob.admin-accepted",
            "--report-dir",
            rep.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        let o = idprov(&a);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (out, err) = run(&["-q"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("passed") && !out.contains("CASE"), "{out}");
    // The embedded server's own log lines stay out of a check's output.
    assert!(!err.contains("provisioning:"), "{err}");
    let (out, _) = run(&["--color", "always"]);
    assert!(out.contains("\u{1b}[32mPASS"), "{out}");
    assert!(out.starts_with("CASE"), "{out}");
    let (out, _) = run(&["--color", "never"]);
    assert!(!out.contains('\u{1b}'), "{out}");
}

/// A server advertising on loopback only, on a machine whose default
/// interface is another one: the suite's discovery queries go out on every
/// interface with a route to the target, so the case passes every time
/// (it failed about half the time when queries left by the default
/// interface). In a network namespace with a veth pair as its default
/// route; 20 runs in a row.
#[test]
fn loopback_only_discovery_passes_20_times_beside_another_interface() {
    let d = tempfile::tempdir().unwrap();
    let script = format!(
        r#"set -u
ip link set lo up; ip link set lo multicast on
ip link add idpv0 type veth peer name idpv1
ip addr add 10.77.0.1/24 dev idpv0; ip addr add 10.77.0.2/24 dev idpv1
ip link set idpv0 up; ip link set idpv1 up
ip route add default dev idpv0; ip route add 224.0.0.0/4 dev idpv0
{bin} server --listen 127.0.0.1:43911 --data-dir {tmp}/data > {tmp}/server.log 2>&1 &
pid=$!
i=0; while ! grep -q directory {tmp}/server.log 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
n=0
while [ $n -lt 20 ]; do
  {bin} check server --url https://127.0.0.1:43911/idprov/directory --ca-cert {tmp}/data/ca.pem \
    --admin-cert {tmp}/data/admin-cert.pem --admin-key {tmp}/data/admin-key.pem --capabilities discovery \
    --cases 'server.discovery.advertised-directory' --report-dir {tmp}/rep-$n -q > /dev/null 2>&1
  echo "run $n exit $?"
  n=$((n+1))
done
kill $pid; wait $pid
"#,
        tmp = d.path().display(),
        bin = BIN,
    );
    let out = Command::new("timeout")
        .args(["300", "unshare", "--net", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let passed = stdout.lines().filter(|l| l.ends_with("exit 0")).count();
    let detail = report(&d.path().join("rep-0"))["cases"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["id"] == "server.discovery.advertised-directory")
                .map(|c| c.to_string())
        })
        .unwrap_or_default();
    assert_eq!(passed, 20, "{stdout}\n{stderr}\n{detail}");
    // The evidence names the interfaces asked: loopback among them.
    assert!(detail.contains("asked on lo (127.0.0.1)"), "{detail}");
}

/// `--scenario` runs case files from disk beside the catalogue (a file or a
/// directory), validated exactly as the embedded cases: a misspelt value or
/// an id the catalogue already has is exit 2 naming the file.
#[test]
fn case_files_from_disk_run_beside_the_catalogue() {
    let d = tempfile::tempdir().unwrap();
    let cases = d.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    let embedded = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/server/server.oob.empty-secret-400.toml"),
    )
    .unwrap();
    let mine = embedded.replace("server.oob.empty-secret-400", "server.oob.from-disk");
    std::fs::write(cases.join("server.oob.from-disk.toml"), &mine).unwrap();
    let rep = d.path().join("rep");
    let run = |scenario: &std::path::Path| {
        idprov(&[
            "check",
            "server",
            "--scenario",
            scenario.to_str().unwrap(),
            "--cases",
            "server.oob.from-disk",
            "--report-dir",
            rep.to_str().unwrap(),
        ])
    };
    for given in [cases.clone(), cases.join("server.oob.from-disk.toml")] {
        let o = run(&given);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v = report(&rep);
        let ids: Vec<&str> = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        assert!(ids.contains(&"server.oob.from-disk"), "{ids:?}");
    }
    for (what, text, file, says) in [
        (
            "a misspelt value",
            mine.replace("do = \"post-oob\"", "do = \"post-ob\""),
            "server.oob.from-disk.toml",
            "post-ob",
        ),
        (
            "an id of the catalogue",
            embedded.clone(),
            "server.oob.empty-secret-400.toml",
            "duplicate id",
        ),
    ] {
        let bad = d.path().join(what.replace(' ', "-"));
        std::fs::create_dir(&bad).unwrap();
        std::fs::write(bad.join(file), text).unwrap();
        let o = run(&bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(file) && err.contains(says), "{what}: {err}");
    }
}

/// Setup errors say what is wrong in the user's terms, naming the flags:
/// a key that does not match its certificate, a port that speaks plain
/// HTTP, a server whose certificate another CA issued.
#[test]
fn setup_errors_speak_the_users_terms() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let (mut srv, port) = spawn_server(&data, &[]);
    // A plain HTTP server on loopback: it answers 400 to whatever comes.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in plain.incoming().take(4).flatten() {
            let mut s = s;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let other_ca = d.path().join("other-ca.pem");
    let ca = idprov::pki::CertAuthority::generate("another CA", time::OffsetDateTime::now_utc())
        .unwrap();
    std::fs::write(&other_ca, ca.cert_pem()).unwrap();
    let f = |n: &str| data.join(n).to_str().unwrap().to_string();
    let url = format!("https://127.0.0.1:{port}/idprov/directory");
    let plain_url = format!("https://127.0.0.1:{plain_port}/idprov/directory");
    let other = other_ca.to_str().unwrap().to_string();
    for (what, url, ca, key, says) in [
        (
            "mismatched admin key",
            &url,
            f("ca.pem"),
            f("plugin-key.pem"),
            "--admin-cert / --admin-key: the private key does not match the certificate",
        ),
        (
            "plain HTTP port",
            &plain_url,
            f("ca.pem"),
            f("admin-key.pem"),
            "that port does not speak TLS",
        ),
        (
            "another CA",
            &url,
            other.clone(),
            f("admin-key.pem"),
            "the server's certificate is not issued by the CA given (--ca-cert)",
        ),
    ] {
        let o = idprov(&[
            "check",
            "server",
            "--url",
            url,
            "--ca-cert",
            &ca,
            "--admin-cert",
            &f("admin-cert.pem"),
            "--admin-key",
            &key,
            "--report-dir",
            d.path().join("rep").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(says), "{what}: {err}");
    }
    let _ = srv.kill();
    let _ = srv.wait();
}

/// Ctrl-C leaves the promised reports: what finished, kept as judged, and
/// an outcome that says the run was interrupted and is partial; exit 130.
#[test]
fn ctrl_c_writes_a_partial_report() {
    let d = tempfile::tempdir().unwrap();
    let rep = d.path().join("rep");
    let mut child = Command::new(BIN)
        .args(["check", "server", "--jobs", "1", "--report-dir"])
        .arg(&rep)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough for the first cases to finish, far shorter than the run.
    std::thread::sleep(Duration::from_secs(5));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exit after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by Ctrl-C"), "{err}");
    let v = report(&rep);
    assert_eq!(v["outcome"]["result"], "error");
    assert!(v["outcome"]["error"]
        .as_str()
        .unwrap()
        .contains("a partial run"));
    let finished = v["cases"].as_array().unwrap();
    assert!(!finished.is_empty(), "no finished case kept");
    assert!(rep.join("junit.xml").exists() && rep.join("report.md").exists());
}

/// Exit 2 leaves the promised reports whatever refused the run: a command
/// line clap refuses (when it names --report-dir), and `fuzz server`
/// against a target that does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_2_leaves_reports() {
    let d = tempfile::tempdir().unwrap();
    let rep = d.path().join("clap");
    let o = idprov(&[
        "check",
        "server",
        "--report-dir",
        rep.to_str().unwrap(),
        "--jobs",
        "many",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let v = report(&rep);
    assert_eq!(v["outcome"]["result"], "error");
    assert!(v["outcome"]["error"].as_str().unwrap().contains("--jobs"));
    // A target that was there and is gone: its files exist, its port is shut.
    let data = d.path().join("data");
    let srv = common::start(&data).await;
    let url = format!("https://{}/idprov/directory", srv.addr);
    srv.shutdown().await;
    let rep = d.path().join("fuzz");
    let f = move |n: &str| data.join(n).to_str().unwrap().to_string();
    let o = tokio::task::spawn_blocking(move || {
        idprov(&[
            "fuzz",
            "server",
            "--url",
            &url,
            "--ca-cert",
            &f("ca.pem"),
            "--admin-cert",
            &f("admin-cert.pem"),
            "--admin-key",
            &f("admin-key.pem"),
            "--requests",
            "10",
            "--report-dir",
            rep.to_str().unwrap(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = report(&d.path().join("fuzz"));
    assert_eq!(v["outcome"]["result"], "error");
}

/// The Action's entry point passes on only the inputs given: without a CA
/// it still leaves the error report, and the job summary says why.
#[test]
fn the_action_without_a_ca_leaves_a_report() {
    let d = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let summary = d.path().join("summary.md");
    let rep = d.path().join("rep");
    let o = Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/idprov-action.sh"))
        .env("PATH", path)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("IDPROV_URL", "https://127.0.0.1:9/idprov/directory")
        .env("IDPROV_REPORT_DIR", &rep)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = report(&rep);
    assert!(v["outcome"]["error"]
        .as_str()
        .unwrap()
        .contains("--ca-cert"));
    let s = std::fs::read_to_string(&summary).unwrap();
    assert!(
        s.contains("could not test") && s.contains("--ca-cert"),
        "{s}"
    );
}

/// A real `idprov server` process under `dir`, with the shell hooks a user
/// would give: `start.sh` starts it in the background (its pid in
/// `dir/pid`), `kill.sh` kills it with SIGKILL (nothing drained, nothing
/// flushed) and returns once it is gone. Started and listening.
struct HookedServer {
    data: std::path::PathBuf,
    port: u16,
    start: std::path::PathBuf,
    kill: std::path::PathBuf,
}

impl HookedServer {
    fn start(dir: &std::path::Path) -> Self {
        let (data, port) = (dir.join("data"), free_port());
        let (start, kill, d) = (
            dir.join("start.sh"),
            dir.join("kill.sh"),
            dir.display().to_string(),
        );
        std::fs::write(
            &start,
            format!(
                "'{BIN}' server --no-mdns --listen 127.0.0.1:{port} --data-dir '{}' >>'{d}/server.log' 2>&1 &\necho $! >'{d}/pid'\n",
                data.display()
            ),
        )
        .unwrap();
        std::fs::write(
            &kill,
            format!(
                "pid=$(cat '{d}/pid')\nkill -9 $pid\nfor i in $(seq 1 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done\necho killed $pid\n"
            ),
        )
        .unwrap();
        assert!(Command::new("sh").arg(&start).status().unwrap().success());
        wait_for_port(port);
        HookedServer {
            data,
            port,
            start,
            kill,
        }
    }
}

/// The restart cases against a server process restarted by a hook the user
/// gives (`--restart-cmd`): both pass, the evidence says what the hook
/// said; without the hook they are skipped with what would run them; a
/// hook that fails fails the case with its output, at once.
#[test]
fn restart_cases_run_through_a_restart_hook() {
    let d = tempfile::tempdir().unwrap();
    let HookedServer {
        data,
        port,
        start,
        kill,
    } = HookedServer::start(d.path());
    let (dir, restart) = (d.path().display().to_string(), d.path().join("restart.sh"));
    std::fs::write(
        &restart,
        format!(
            "pid=$(cat '{dir}/pid')\nkill $pid\nfor i in $(seq 1 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done\nsh '{}'\necho stopped $pid\n",
            start.display()
        ),
    )
    .unwrap();
    let f = |n: &str| data.join(n).to_str().unwrap().to_string();
    let url = format!("https://127.0.0.1:{port}/idprov/directory");
    let cases = "server.oob.restart-forgets-secrets,server.status.survives-restart,server.provision.crash-under-load";
    let check = |rep: &str, extra: &[&str]| {
        let rep = d.path().join(rep);
        let mut args = vec![
            "check",
            "server",
            "--url",
            &url,
            "--cases",
            cases,
            "--report-dir",
            rep.to_str().unwrap(),
        ];
        let (ca, cert, key) = (f("ca.pem"), f("admin-cert.pem"), f("admin-key.pem"));
        args.extend(["--ca-cert", &ca, "--admin-cert", &cert, "--admin-key", &key]);
        args.extend(extra);
        let o = idprov(&args);
        (o.status.code(), report(&rep))
    };
    let verdicts = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                let id = c["id"].as_str().unwrap();
                id.contains("restart") || id.contains("crash")
            })
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    c["verdict"].as_str().unwrap().to_string(),
                    c["detail"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let hook = format!("sh '{}'", restart.display());
    let (kill_hook, start_hook) = (
        format!("sh '{}'", kill.display()),
        format!("sh '{}'", start.display()),
    );
    let (code, v) = check(
        "with-hook",
        &[
            "--restart-cmd",
            &hook,
            "--kill-cmd",
            &kill_hook,
            "--start-cmd",
            &start_hook,
        ],
    );
    let (skipped_code, skipped) = check("without-hook", &[]);
    let (failed_code, failed) = check(
        "failing-hook",
        &[
            "--restart-cmd",
            "sh -c 'echo the relay is offline >&2; exit 3'",
            "--kill-cmd",
            "sh -c 'echo the relay is offline >&2; exit 3'",
            "--start-cmd",
            "true",
        ],
    );
    // --kill-cmd alone is a usage error, before anything runs.
    let half = idprov(&["check", "server", "--url", &url, "--kill-cmd", "true"]);
    let pid = std::fs::read_to_string(d.path().join("pid")).unwrap();
    let _ = Command::new("kill").arg(pid.trim()).status();

    assert_eq!(code, Some(0), "{:#?}", verdicts(&v));
    let ran = verdicts(&v);
    assert_eq!(ran.len(), 3, "{ran:?}");
    assert!(
        ran.iter().all(|(_, verdict, _)| verdict == "pass"),
        "{ran:?}"
    );
    assert!(
        v.to_string().contains("stopped") && v.to_string().contains("killed"),
        "the hooks' words are evidence"
    );
    assert!(
        v.to_string().contains(" history ("),
        "the crash history is evidence"
    );

    assert_eq!(skipped_code, Some(0));
    for (id, verdict, detail) in verdicts(&skipped) {
        assert_eq!(verdict, "skip", "{id}");
        let needs = if id.contains("crash") {
            "needs --kill-cmd and --start-cmd"
        } else {
            "needs --restart-cmd"
        };
        assert!(detail.contains(needs), "{id}: {detail}");
    }
    assert_eq!(half.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&half.stderr).contains("--start-cmd"),
        "{}",
        String::from_utf8_lossy(&half.stderr)
    );

    assert_eq!(failed_code, Some(1));
    for (id, verdict, detail) in verdicts(&failed) {
        assert_eq!(verdict, "fail", "{id}");
        assert!(detail.contains("the relay is offline"), "{id}: {detail}");
    }
}

/// A server killed through --kill-cmd that --start-cmd does not bring back
/// fails the crash case once the directory has not answered for the
/// stated bound, with what the start hook said; the run ends (issue 26).
#[test]
fn a_server_that_does_not_come_back_fails_the_case() {
    let d = tempfile::tempdir().unwrap();
    let HookedServer {
        data, port, kill, ..
    } = HookedServer::start(d.path());
    let f = |n: &str| data.join(n).to_str().unwrap().to_string();
    let url = format!("https://127.0.0.1:{port}/idprov/directory");
    let rep = d.path().join("rep");
    let kill = format!("sh '{}'", kill.display());
    let (ca, cert, key) = (f("ca.pem"), f("admin-cert.pem"), f("admin-key.pem"));
    let o = idprov(&[
        "check",
        "server",
        "--url",
        &url,
        "--ca-cert",
        &ca,
        "--admin-cert",
        &cert,
        "--admin-key",
        &key,
        "--cases",
        "server.provision.crash-under-load",
        "--kill-cmd",
        &kill,
        "--start-cmd",
        "sh -c 'echo the unit is masked'",
        "--report-dir",
        rep.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = report(&rep);
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "server.provision.crash-under-load")
        .unwrap();
    assert_eq!(case["verdict"], "fail");
    let detail = case["detail"].as_str().unwrap();
    assert!(
        detail.contains("did not answer its directory within 60 s")
            && detail.contains("the unit is masked"),
        "{detail}"
    );
}

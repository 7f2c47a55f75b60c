//! The `idprov` binary as real processes: server, admin, client, openssl,
//! exit codes, graceful shutdown, and DNS-SD discovery over real mDNS
//! packets inside a network namespace the test creates.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_idprov");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct ServerProc {
    child: Child,
    url: String,
}

impl ServerProc {
    fn start(data: &Path) -> Self {
        let port = free_port();
        let child = Command::new(BIN)
            .args([
                "server",
                "--no-mdns",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        ServerProc {
            child,
            url: format!("https://127.0.0.1:{port}/idprov/directory"),
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn admin_oob(url: &str, data: &Path, device: &str, secret: &str) -> Output {
    let d = data.to_str().unwrap();
    run(
        &[
            "admin",
            "oob",
            "--url",
            url,
            "--ca",
            &format!("{d}/ca.pem"),
            "--cert",
            &format!("{d}/admin-cert.pem"),
            "--key",
            &format!("{d}/admin-key.pem"),
            "--device-id",
            device,
            "--secret",
            secret,
        ],
        &[],
    )
}

#[test]
fn server_admin_client_and_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dev = tmp.path().join("dev");
    let srv = ServerProc::start(&data);
    let o = admin_oob(&srv.url, &data, "cli-1", "s3cret");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        &[
            "client",
            "--url",
            &srv.url,
            "--device-id",
            "cli-1",
            "--secret",
            "s3cret",
            "--dir",
            dev.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // openssl (installed by .ci/run) accepts the chain and shows the subject.
    let v = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dev.join("ca.pem"))
        .arg(dev.join("cert.pem"))
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let s = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(dev.join("cert.pem"))
        .output()
        .unwrap();
    let subject = String::from_utf8_lossy(&s.stdout);
    assert!(
        subject.contains("OU = iotdevice") && subject.contains("CN = cli-1"),
        "{subject}"
    );
    // Renew with no secret.
    let o = run(
        &[
            "client",
            "--url",
            &srv.url,
            "--device-id",
            "cli-1",
            "--dir",
            dev.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("renewed"));
    // Status as admin.
    let d = data.to_str().unwrap();
    let o = run(
        &[
            "admin",
            "status",
            "--url",
            &srv.url,
            "--ca",
            &format!("{d}/ca.pem"),
            "--cert",
            &format!("{d}/admin-cert.pem"),
            "--key",
            &format!("{d}/admin-key.pem"),
            "--device-id",
            "cli-1",
        ],
        &[],
    );
    // The old spellings (--ca, --cert, --key) still work; the default output
    // is a summary.
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("status   Approved") && out.contains("CN=cli-1 OU=iotdevice"),
        "{out}"
    );
    assert!(out.contains("sha256") && out.contains("serial"), "{out}");
    let o = run(
        &[
            "admin",
            "status",
            "--json",
            "--url",
            &srv.url,
            "--ca-cert",
            &format!("{d}/ca.pem"),
            "--admin-cert",
            &format!("{d}/admin-cert.pem"),
            "--admin-key",
            &format!("{d}/admin-key.pem"),
            "--device-id",
            "cli-1",
        ],
        &[],
    );
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"status\":\"Approved\""));
    // A device the server never heard of: Waiting, said in words.
    let o = run(
        &[
            "admin",
            "status",
            "--url",
            &srv.url,
            "--ca-cert",
            &format!("{d}/ca.pem"),
            "--admin-cert",
            &format!("{d}/admin-cert.pem"),
            "--admin-key",
            &format!("{d}/admin-key.pem"),
            "--device-id",
            "never-heard-of",
        ],
        &[],
    );
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("status   Waiting (no certificate issued to this device yet"),
        "{out}"
    );
    assert!(srv.terminate().success(), "graceful shutdown exits 0");
}

#[test]
fn client_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let srv = ServerProc::start(&data);
    assert!(admin_oob(&srv.url, &data, "codes", "right")
        .status
        .success());
    let dir = tmp.path().join("dev");
    let d = dir.to_str().unwrap();
    // 1: refused (Rejected), one clear line, no files.
    let o = run(
        &[
            "client",
            "--url",
            &srv.url,
            "--device-id",
            "codes",
            "--secret",
            "wrong",
            "--dir",
            d,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("rejected"));
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    // 2: usage errors.
    let o = run(
        &[
            "client",
            "--url",
            &srv.url,
            "--device-id",
            "../x",
            "--secret",
            "s",
            "--dir",
            d,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["client", "--device-id", "x"], &[]);
    assert_eq!(o.status.code(), Some(2));
    // 89: the shim convention for an unimplemented feature.
    let o = run(
        &[
            "client",
            "--url",
            &srv.url,
            "--device-id",
            "codes",
            "--secret",
            "s",
            "--dir",
            d,
        ],
        &[("IDPROV_FEATURE", "__probe__")],
    );
    assert_eq!(o.status.code(), Some(89));
    // Admin with a missing file: usage error, one line.
    let o = run(
        &[
            "admin",
            "oob",
            "--url",
            &srv.url,
            "--ca",
            "/nonexistent",
            "--cert",
            "x",
            "--key",
            "y",
            "--device-id",
            "a",
            "--secret",
            "s",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim().lines().count(), 1);
}

/// Discovery with real mDNS packets, in a network namespace made for the
/// test (only loopback inside, so nothing leaves the machine). Needs
/// `unshare` and `ip` with the right to create namespaces (root in CI);
/// without them the test fails rather than skipping.
#[test]
fn client_discovers_server_over_mdns_in_a_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let script = format!(
        r#"set -eu
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
# No server yet: discovery must fail (the check can fail).
if "{BIN}" client --device-id nobody --secret s --dir "{d}/none" --timeout 5; then
  echo "discovery succeeded with no server" >&2; exit 3
fi
"{BIN}" server --listen 127.0.0.1:43776 --data-dir "{d}/srv" >"{d}/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
i=0
until "{BIN}" admin oob --url https://127.0.0.1:43776/idprov/directory --ca "{d}/srv/ca.pem" \
    --cert "{d}/srv/admin-cert.pem" --key "{d}/srv/admin-key.pem" --device-id disc-1 --secret s >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 100 ] || {{ echo "server did not come up" >&2; exit 4; }}
  sleep 0.1
done
"{BIN}" client --device-id disc-1 --secret s --dir "{d}/dev" --timeout 30
"#
    );
    let out = Command::new("timeout")
        .args(["120", "unshare", "--net", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "discovery in a network namespace failed (needs root for unshare --net): {stderr}"
    );
    assert!(stderr.contains("discovered server"), "{stderr}");
    assert!(
        stderr.contains("no _idprov._tcp.local. service answered"),
        "{stderr}"
    );
    assert!(tmp.path().join("dev/cert.pem").exists());
}

/// Every command's help ends with examples and its exit codes, shows no
/// empty default, and carries no flag that does not apply to it; shell
/// completions and manual pages are generated.
#[test]
fn help_completions_and_man_pages() {
    let commands: &[&[&str]] = &[
        &["server"],
        &["client"],
        &["admin", "oob"],
        &["admin", "status"],
        &["check"],
        &["check", "server"],
        &["check", "client"],
        &["check", "explain"],
        &["vectors", "verify"],
        &["fuzz", "server"],
        &["fuzz", "replay"],
        &["bench"],
        &["spec", "coverage"],
        &["bundle", "verify"],
    ];
    for c in commands {
        let mut a = c.to_vec();
        a.push("--help");
        let o = run(&a, &[]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{c:?}");
        assert!(
            out.contains("Examples:") && out.contains("Exit codes:"),
            "{c:?}:\n{out}"
        );
        assert!(
            !out.contains("[default: ]") && !out.contains("[default: \"\"]"),
            "{c:?}:\n{out}"
        );
    }
    for c in [&["fuzz", "server", "--help"][..], &["bench", "--help"][..]] {
        let out = String::from_utf8_lossy(&run(c, &[]).stdout).into_owned();
        assert!(
            !out.contains("--ca-key") && !out.contains("--plugin-cert"),
            "{c:?}:\n{out}"
        );
    }
    let o = run(&["completions", "bash"], &[]);
    assert!(o.status.success());
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(
        script.contains("_idprov") && script.contains("--ca-cert"),
        "{script}"
    );
    let d = tempfile::tempdir().unwrap();
    let o = run(&["man", "--dir", d.path().to_str().unwrap()], &[]);
    assert!(o.status.success());
    let page = std::fs::read_to_string(d.path().join("idprov-check.1")).unwrap();
    assert!(
        page.contains(".TH") && page.contains(".SH \"EXIT STATUS\""),
        "{page}"
    );
    // One page per subcommand at every depth; every page a page cites
    // exists; a subcommand's page lists the options it inherits.
    for name in [
        "idprov-check-server",
        "idprov-check-client",
        "idprov-admin-oob",
        "idprov-admin-status",
        "idprov-fuzz-server",
    ] {
        assert!(d.path().join(format!("{name}.1")).exists(), "{name}");
    }
    for entry in std::fs::read_dir(d.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for cited in text
            .split("(1)")
            .filter_map(|t| t.rsplit(|c: char| c.is_whitespace() || c == ',').next())
        {
            let cited = cited.replace('\\', "");
            if cited.starts_with("idprov") {
                assert!(
                    d.path().join(format!("{cited}.1")).exists(),
                    "{cited}(1) is cited but missing"
                );
            }
        }
    }
    // Examples keep their lines (unfilled), exit codes have their section.
    let check = std::fs::read_to_string(d.path().join("idprov-check.1")).unwrap();
    let ex = check
        .find(".SH EXAMPLES\n.nf\n")
        .expect("an unfilled EXAMPLES section");
    let fi = check[ex..].find("\n.fi\n").expect("closed") + ex;
    assert!(
        check[ex..fi]
            .lines()
            .any(|l| l.starts_with("idprov check server")),
        "{check}"
    );
    assert!(check.contains(".SH \"EXIT STATUS\""), "{check}");
    let server = std::fs::read_to_string(d.path().join("idprov-check-server.1")).unwrap();
    assert!(server.contains("report\\-dir"), "{server}");
}

/// Small usage mistakes get exit 2 and a line that says what to do: a
/// server flag on a bare `check`, a mistyped case id, `--requests 0`, a
/// bundle that is not there.
#[test]
fn small_usage_mistakes_are_explained() {
    for (args, says) in [
        (
            &["check", "--url", "https://127.0.0.1:9/idprov/directory"][..],
            "idprov check server --url",
        ),
        (
            &[
                "check",
                "--cases",
                "server.oob.empty-secret400",
                "--report-dir",
                "/nonexistent/never-written",
            ][..],
            "did you mean `server.oob.empty-secret-400`?",
        ),
        (&["fuzz", "server", "--requests", "0"][..], "--requests"),
        (
            &["bundle", "verify", "/nonexistent/signoff.tar.gz"][..],
            "no such file",
        ),
    ] {
        let o = run(args, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `server --listen` takes a host name (`localhost:N`), and a server that
/// cannot bind its port creates nothing: no CA is left behind by a failed
/// start.
#[test]
fn server_listen_by_name_and_no_ca_without_a_port() {
    let d = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = d.path().join("never");
    let o = run(
        &[
            "server",
            "--no-mdns",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !data.join("ca.pem").exists(),
        "a CA was created without a port"
    );
    drop(taken);
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = d.path().join("by-name");
    let mut srv = Command::new(BIN)
        .args([
            "server",
            "--no-mdns",
            "--listen",
            &format!("localhost:{free}"),
        ])
        .args(["--data-dir", data.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let up = loop {
        if std::net::TcpStream::connect(("127.0.0.1", free)).is_ok() {
            break true;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(up, "--listen localhost:{free} did not listen on 127.0.0.1");
}

/// Fleet enrolment: `admin oob --file` checks the whole list first (a bad
/// row: exit 2, every bad row named, nothing posted), then posts and
/// reports each row.
#[test]
fn admin_oob_posts_an_enrolment_list() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let srv = ServerProc::start(&data);
    let d = data.to_str().unwrap();
    let conn = |file: &Path| -> Vec<String> {
        [
            "admin",
            "oob",
            "--url",
            &srv.url,
            "--ca-cert",
            &format!("{d}/ca.pem"),
            "--admin-cert",
            &format!("{d}/admin-cert.pem"),
            "--admin-key",
            &format!("{d}/admin-key.pem"),
            "--file",
            file.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let bad = tmp.path().join("bad.csv");
    std::fs::write(
        &bad,
        "deviceID,oobSecret\nfleet-1,s1\n../evil,s2\nfleet-3,\n",
    )
    .unwrap();
    let args = conn(&bad);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("line 3") && err.contains("line 4"), "{err}");
    assert!(err.contains("nothing was posted"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).is_empty());
    let good = tmp.path().join("good.csv");
    std::fs::write(&good, "fleet-1,s1\nfleet-2,\"s,2\",2099-01-01T00:00:00Z\n").unwrap();
    let args = conn(&good);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("line 1  fleet-1  posted") && out.contains("line 2  fleet-2  posted"),
        "{out}"
    );
    assert!(out.contains("2 of 2 posted"), "{out}");
}

/// `--help` groups a check's options in a stable order (target,
/// credentials, selection, run, output), and `check explain`, which runs
/// nothing, refuses a run's flags instead of ignoring them.
#[test]
fn help_is_grouped_and_explain_takes_only_a_case() {
    let o = run(&["check", "server", "--help"], &[]);
    let help = String::from_utf8_lossy(&o.stdout);
    let at = |h: &str| {
        help.find(&format!("\n{h}:\n"))
            .unwrap_or_else(|| panic!("{h}: {help}"))
    };
    assert!(at("Target") < at("Credentials"));
    assert!(at("Credentials") < at("Selection"));
    assert!(at("Selection") < at("Run"));
    assert!(at("Run") < at("Output"));
    let o = run(
        &[
            "check",
            "explain",
            "server.oob.empty-secret-400",
            "--bundle",
            "x.tar.gz",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--bundle would do nothing"), "{err}");
    let o = run(&["check", "explain", "server.oob.empty-secret-400"], &[]);
    assert!(o.status.success());
}

/// `client --control`: the reference client as a long-lived device that
/// provisions again at every `reset [URL]` line (issue 25's bench device),
/// keeping its directory between resets, and ends at `quit`.
#[test]
fn a_long_lived_device_provisions_at_every_reset() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dev = tmp.path().join("dev");
    let srv = ServerProc::start(&data);
    let port = free_port();
    let control = format!("127.0.0.1:{port}");
    let mut device = Command::new(BIN)
        .args([
            "client",
            "--device-id",
            "bench-1",
            "--secret",
            "s3cret",
            "--dir",
            dev.to_str().unwrap(),
            "--ca-cert",
            &format!("{}/ca.pem", data.display()),
            "--timeout",
            "20",
            "--control",
            &control,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let say = |line: &str| -> String {
        for _ in 0..100 {
            if let Ok(mut c) = std::net::TcpStream::connect(&control) {
                c.write_all(format!("{line}\n").as_bytes()).unwrap();
                let mut answer = String::new();
                c.read_to_string(&mut answer).unwrap();
                return answer;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the device's control port never opened");
    };
    let serial = || {
        for _ in 0..200 {
            if let Ok(pem) = std::fs::read_to_string(dev.join("cert.pem")) {
                return pem;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no cert.pem after a reset");
    };
    assert!(say("bogus").starts_with("error: expected `reset [URL|- [CA|-]]`"));
    assert!(admin_oob(&srv.url, &data, "bench-1", "s3cret")
        .status
        .success());
    assert!(say(&format!("reset {}", srv.url)).starts_with("ok"));
    let first = serial();
    // The reset hook wipes its flash and resets it; a new secret is posted.
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::remove_file(dev.join(f)).unwrap();
    }
    assert!(admin_oob(&srv.url, &data, "bench-1", "s3cret")
        .status
        .success());
    assert!(say(&format!("reset {}", srv.url)).starts_with("ok"));
    let second = serial();
    assert_ne!(first, second, "a second provisioning, a second certificate");
    assert!(say("quit").starts_with("ok: bye"));
    let status = device.wait().unwrap();
    assert!(status.success());
    let mut log = String::new();
    device
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(log.matches("provisioned, serial").count(), 2, "{log}");
}

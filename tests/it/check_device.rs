//! `idprov check device`: a device that is not a process of the suite's
//! machine. Each bench is two network namespaces joined by a veth pair (no
//! other network): the suite in one, the device in the other. The honest
//! device is the reference client run as a long-lived process (`idprov
//! client --control`) that provisions again when the reset hook says so over
//! its control socket; each broken device is the faulty client, power-cycled
//! by the reset hook (killed and started again in the device namespace). The
//! device's directory is read only by `--state-cmd`, through `ip netns exec`.
//! Needs root for `ip netns`; fails rather than skips.

use super::check_client::EXPECTED;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_idprov");
const DEVICE_ID: &str = "bench-sensor-7";
const SECRET: &str = "label-secret-3f9a";
/// Quiet period that ends a case (the device answers in milliseconds).
const QUIET_MS: &str = "1200";
/// Time a device may take after its reset before its first contact.
const BOOT_MS: &str = "4000";
/// The case limit: past the reference client's 15-second request limit.
const CASE_LIMIT: &str = "30";

/// Two namespaces and a veth pair, removed (with every process in them)
/// when dropped.
struct Bench {
    suite_ns: String,
    device_ns: String,
    suite_ip: String,
    device_ip: String,
    tmp: tempfile::TempDir,
    device: Option<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {} (needs root for network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Bench {
    fn new(n: u8) -> Bench {
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let (suite_ns, device_ns) = (format!("idpv-{tag}-s"), format!("idpv-{tag}-d"));
        let (a, b) = (format!("idv{tag}a"), format!("idv{tag}b"));
        for ns in [&suite_ns, &device_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            ip(&["netns", "add", ns]);
        }
        ip(&[
            "link", "add", &a, "netns", &suite_ns, "type", "veth", "peer", "name", &b, "netns",
            &device_ns,
        ]);
        let (suite_ip, device_ip) = (format!("10.214.{n}.1"), format!("10.214.{n}.2"));
        for (ns, dev, addr) in [(&suite_ns, &a, &suite_ip), (&device_ns, &b, &device_ip)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]);
        }
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("device")).unwrap();
        Bench {
            suite_ns,
            device_ns,
            suite_ip,
            device_ip,
            tmp,
            device: None,
        }
    }

    fn device_dir(&self) -> PathBuf {
        self.tmp.path().join("device")
    }

    /// Starts the reference client as a long-lived device (no URL: it
    /// discovers unless a reset names one) and waits for its control port.
    fn start_reference_device(&mut self) -> String {
        let control = format!("{}:7101", self.device_ip);
        let log = std::fs::File::create(self.tmp.path().join("device.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.device_ns, BIN, "client"])
            .args(["--device-id", DEVICE_ID, "--secret", SECRET])
            .arg("--dir")
            .arg(self.device_dir())
            .args(["--control", &control, "--timeout", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.device = Some(child);
        let log = self.tmp.path().join("device.log");
        for _ in 0..100 {
            if std::fs::read_to_string(&log).is_ok_and(|l| l.contains("waiting for")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // The reset hook: the suite's {dir} becomes the device's flash,
        // then one line on the control socket.
        format!(
            "bash -c {} reset {{url}} {{ca}} {{dir}}",
            shell_words::quote(&format!(
                r#"d={dev}; rm -rf "$d"; mkdir -p "$d"; cp -p "$3"/*.pem "$d"/ 2>/dev/null
exec 3<>/dev/tcp/{ip}/7101 || exit 1
printf 'reset %s %s\n' "${{1:--}}" "${{2:--}}" >&3
read -r line <&3; echo "$line"; case "$line" in ok*) ;; *) exit 1;; esac"#,
                dev = self.device_dir().display(),
                ip = self.device_ip,
            ))
        )
    }

    /// A reset hook that power-cycles a broken device: the one running is
    /// killed, the flash loaded, and the faulty client started again in the
    /// device namespace.
    fn power_cycle_hook(&self, fault: &str) -> String {
        let faulty = super::check_client::faulty_client();
        format!(
            "bash -c {} reset {{url}} {{ca}} {{dir}}",
            shell_words::quote(&format!(
                r#"t={tmp}; d={dev}
[ -f "$t/pid" ] && kill -9 "$(cat "$t/pid")" 2>/dev/null
rm -rf "$d"; mkdir -p "$d"; cp -p "$3"/*.pem "$d"/ 2>/dev/null
ip netns exec {ns} setsid {faulty} --fault {fault} --url "$1" --device-id {id} --secret {secret} --dir "$d" --ca "$2" >>"$t/device.log" 2>&1 </dev/null &
pid=$!; echo $pid > "$t/pid"
# The hook's process group is killed when it ends: wait until the device
# has left it (setsid), at most 2 s.
i=0; while [ "$(cut -d' ' -f5 /proc/$pid/stat 2>/dev/null)" = "$(cut -d' ' -f5 /proc/$$/stat)" ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done"#,
                tmp = self.tmp.path().display(),
                dev = self.device_dir().display(),
                ns = self.device_ns,
                faulty = faulty.display(),
                id = DEVICE_ID,
                secret = SECRET,
            ))
        )
    }

    /// `--state-cmd`: the device's set and the names in its flash, read in
    /// its own namespace.
    fn state_cmd(&self) -> String {
        format!(
            "ip netns exec {} bash -c {}",
            self.device_ns,
            shell_words::quote(&format!(
                r#"d={}; for f in ca cert key; do echo "[$f]"; cat "$d/$f.pem" 2>/dev/null || true; done; echo "[files]"; ls -A "$d" 2>/dev/null || true"#,
                self.device_dir().display()
            ))
        )
    }

    /// Runs `check device` in the suite namespace; its exit code and
    /// report.json.
    fn check(
        &self,
        name: &str,
        reset: &str,
        state: bool,
        extra: &[&str],
    ) -> (i32, serde_json::Value) {
        let rep = self.tmp.path().join(name);
        let state_cmd = self.state_cmd();
        let mut args: Vec<&str> = vec![
            "netns",
            "exec",
            &self.suite_ns,
            BIN,
            "check",
            "device",
            "--listen",
            &self.suite_ip,
            "--device-id",
            DEVICE_ID,
            "--secret",
            SECRET,
            "--reset-cmd",
            reset,
            "--quiet-ms",
            QUIET_MS,
            "--boot-ms",
            BOOT_MS,
            "--timeout",
            CASE_LIMIT,
            "--capabilities",
            "discovery,csr,preprovisioned-ca",
            "--seed",
            "5",
            "-q",
            "--report-dir",
        ];
        let rep_s = rep.to_string_lossy().into_owned();
        args.push(&rep_s);
        if state {
            args.extend(["--state-cmd", &state_cmd]);
        }
        args.extend(extra);
        let out = Command::new("timeout")
            .arg("600")
            .arg("ip")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let report = std::fs::read(rep.join("report.json")).unwrap_or_else(|e| {
            panic!(
                "{name}: no report ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_slice(&report).unwrap(),
        )
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(mut c) = self.device.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.device_ns, &self.suite_ns] {
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// The broken devices whose bug the wire alone shows (README); the others
/// need `--state-cmd`.
const CAUGHT_ON_THE_WIRE: &[&str] = &[
    "send-secret",
    "ignore-preprovisioned-ca",
    "no-request-timeout",
    "falls-back-to-http",
    "skip-pinning",
    "ignore-retry-sec",
    "renew-without-mtls",
    "pem-only-ca",
    "allow-plain-http",
    "sign-pretty-json",
    "sha256-key",
    "csr-unasked",
    "retry-after-rejected",
    "offers-legacy-tls",
];

/// The cases the wire alone decides for the honest device (README).
const DECIDED_ON_THE_WIRE: &[&str] = &[
    "client.pinning.no-ca-anywhere",
    "client.pinning.preprovisioned-ca",
    "client.pinning.second-server",
    "client.pinning.tls-from-another-ca",
    "client.provision.rejected",
    "client.transport.discovery-no-plaintext",
    "client.transport.silent-server",
    "client.transport.trickling-server",
];

/// (case id, verdict, detail) of every case of a report.
fn verdicts(r: &serde_json::Value) -> Vec<(String, String, String)> {
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["verdict"].as_str().unwrap_or_default().to_string(),
                c["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn with(r: &[(String, String, String)], verdict: &str) -> Vec<String> {
    r.iter()
        .filter(|c| c.1 == verdict)
        .map(|c| format!("{}: {}", c.0, c.2))
        .collect()
}

/// The honest device passes every case with `--state-cmd` (the absurd
/// retrySec case aside: whether a device that went quiet would ever ask
/// again is on neither the wire nor its state, so it is inconclusive), and
/// without it nothing fails: what only the state shows is inconclusive. A
/// device that does nothing passes nothing. Every broken device is caught
/// with `--state-cmd`, and never passes without it.
#[test]
fn devices_on_a_bench_of_network_namespaces() {
    let honest = std::thread::spawn(|| {
        let mut b = Bench::new(1);
        let reset = b.start_reference_device();
        let (code, r) = b.check("state", &reset, true, &["--allow-inconclusive"]);
        (code, verdicts(&r))
    });
    let honest_wire = std::thread::spawn(|| {
        let mut b = Bench::new(2);
        let reset = b.start_reference_device();
        let (code, r) = b.check("wire", &reset, false, &[]);
        (code, verdicts(&r))
    });
    let nothing = std::thread::spawn(|| {
        let b = Bench::new(3);
        let (code, r) = b.check("nothing", "true", true, &[]);
        (code, verdicts(&r))
    });
    // The broken devices, on three benches: each with its case, with and
    // without --state-cmd.
    let faults: Vec<(&str, &str)> = EXPECTED.to_vec();
    let thirds: Vec<Vec<(&str, &str)>> = (0..3)
        .map(|k| faults.iter().copied().skip(k).step_by(3).collect())
        .collect();
    let broken: Vec<_> = thirds
        .into_iter()
        .enumerate()
        .map(|(i, list)| {
            std::thread::spawn(move || {
                let b = Bench::new(4 + i as u8);
                let mut rows = Vec::new();
                for (fault, case) in list {
                    let hook = b.power_cycle_hook(fault);
                    let cases = case.to_string();
                    let (_, r) =
                        b.check(&format!("{fault}-state"), &hook, true, &["--cases", &cases]);
                    let (_, w) =
                        b.check(&format!("{fault}-wire"), &hook, false, &["--cases", &cases]);
                    let of = |r: &serde_json::Value| {
                        verdicts(r)
                            .into_iter()
                            .find(|c| c.0 == case)
                            .map(|c| (c.1, c.2))
                            .unwrap_or_default()
                    };
                    rows.push((fault, case, of(&r), of(&w)));
                }
                rows
            })
        })
        .collect();

    let (code, with_state) = honest.join().unwrap();
    let (code_wire, wire) = honest_wire.join().unwrap();
    let (code_nothing, nothing) = nothing.join().unwrap();
    let mut table = String::new();
    let mut problems = Vec::new();
    for rows in broken {
        for (fault, case, (v, d), (wv, wd)) in rows.join().unwrap() {
            table.push_str(&format!(
                "{fault} · {case}: state {v} ({d}); wire {wv} ({wd})\n"
            ));
            // Whether a device that went quiet gives up is on neither the
            // wire nor its state: never green, never caught.
            if fault == "unbounded-retry-sec" {
                if v != "inconclusive" || wv != "inconclusive" {
                    problems.push(format!("{fault}: {v} ({d}) / {wv} ({wd})"));
                }
                continue;
            }
            if v != "fail" {
                problems.push(format!(
                    "{fault} not caught by {case} with --state-cmd: {v} ({d})"
                ));
            }
            if wv != "fail" && wv != "inconclusive" {
                problems.push(format!("{fault} passed {case} on the wire: {wv} ({wd})"));
            }
            if (wv == "fail") != CAUGHT_ON_THE_WIRE.contains(&fault) {
                problems.push(format!(
                    "{fault}: on the wire {wv} ({wd}); the README says otherwise"
                ));
            }
        }
    }
    eprintln!("{table}");
    let decided: Vec<String> = with(&wire, "pass");
    eprintln!(
        "decided on the wire alone ({}):\n{}\ninconclusive without --state-cmd ({}):\n{}",
        decided.len(),
        decided.join("\n"),
        with(&wire, "inconclusive").len(),
        with(&wire, "inconclusive").join("\n")
    );

    // The honest device, with its state read.
    for verdict in ["fail", "skip"] {
        for line in with(&with_state, verdict) {
            problems.push(format!("honest, --state-cmd: {verdict}: {line}"));
        }
    }
    let inconclusive: Vec<String> = with(&with_state, "inconclusive")
        .iter()
        .map(|l| l.split(':').next().unwrap_or_default().to_string())
        .collect();
    if inconclusive != ["client.waiting.absurd-retry-sec"] {
        problems.push(format!(
            "honest, --state-cmd: inconclusive {inconclusive:?}"
        ));
    }
    if with(&with_state, "pass").len() < 40 || code != 0 {
        problems.push(format!(
            "honest, --state-cmd --allow-inconclusive: exit {code}, {} passed",
            with(&with_state, "pass").len()
        ));
    }
    // The honest device, on the wire alone: nothing fails, what is not
    // decided says what would decide it, and the run is not green.
    for line in with(&wire, "fail") {
        problems.push(format!("honest, wire: fail: {line}"));
    }
    for line in with(&wire, "inconclusive") {
        if !(line.contains("--state-cmd") || line.contains("Waiting")) {
            problems.push(format!("an inconclusive case without its reason: {line}"));
        }
    }
    let decided_ids: Vec<&str> = decided
        .iter()
        .map(|l| l.split(':').next().unwrap_or_default())
        .collect();
    if decided_ids != DECIDED_ON_THE_WIRE {
        problems.push(format!(
            "decided on the wire: {decided_ids:?}, the README says {DECIDED_ON_THE_WIRE:?}"
        ));
    }
    if code_wire != 1 {
        problems.push(format!(
            "honest, wire: exit {code_wire} (an inconclusive MUST case fails the run), {} decided",
            decided.len()
        ));
    }
    // A device that does nothing passes nothing.
    for verdict in ["pass", "info"] {
        for line in with(&nothing, verdict) {
            problems.push(format!("a device that does nothing: {verdict}: {line}"));
        }
    }
    if code_nothing != 1 {
        problems.push(format!("a device that does nothing: exit {code_nothing}"));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// With neither `--reset-cmd` nor a terminal nothing can reset the device:
/// exit 2 before any case, with one line and the error report written; an
/// address that is not this machine's is exit 2 as well.
#[test]
fn a_device_nobody_can_reset_is_a_setup_error() {
    let d = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["check", "device", "--device-id", "d1", "--secret", "s1"])
            .args(extra)
            .arg("--report-dir")
            .arg(d.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run(&["--listen", "127.0.0.1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--reset-cmd"), "{err}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"]["result"], "error");
    let o = run(&["--listen", "192.0.2.77", "--reset-cmd", "true"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--listen 192.0.2.77"), "{err}");
}

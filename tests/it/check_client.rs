//! `idprov check client`: the project's own client, run through the shim as
//! an external process, passes every case; each deliberately broken client
//! (examples/faulty_client.rs, one rule broken) is caught by its case; and
//! discovery runs on real mDNS packets in a network namespace.

use idprov::check::client::ClientTarget;
use idprov::check::report::Verdict;
use idprov::check::{self, CheckOptions};
use idprov::suite::client_faults::ClientFault;
use std::path::PathBuf;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_idprov");

pub(crate) fn faulty_client() -> PathBuf {
    // Examples are built by `cargo test` next to the test binaries.
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/faulty_client");
    assert!(
        p.exists(),
        "{} missing (cargo test builds examples)",
        p.display()
    );
    p
}

fn opts() -> CheckOptions {
    CheckOptions {
        seed: Some(3),
        jobs: 4,
        timeout: Duration::from_secs(60),
        ..CheckOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_client_as_a_process_passes_every_case() {
    let t = format!(
        "{BIN} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}}"
    );
    let r = check::check_client(ClientTarget::parse(&t).unwrap(), &opts())
        .await
        .unwrap();
    let fails: Vec<_> = r
        .cases
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| (&c.id, &c.detail))
        .collect();
    assert!(fails.is_empty(), "{fails:#?}");
    assert!(!r.outcome.failed);
    // Only the discovery cases are skipped here (they need a namespace).
    let skipped: Vec<&str> = r
        .cases
        .iter()
        .filter(|c| c.verdict == Verdict::Skip)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "client.discovery.finds-server",
            "client.transport.discovery-no-plaintext"
        ]
    );
    assert!(r.summary.pass >= 20);
}

/// No false alarms for devices: the own client with each legal choice the
/// profile leaves open (`client::choices`), alone and all together, passes
/// every client case. A case that fails one is a wrong case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_honest_client_variant_passes_every_case() {
    use idprov::client::choices::ClientChoice;
    let mut variants: Vec<Vec<ClientChoice>> = ClientChoice::ALL.iter().map(|c| vec![*c]).collect();
    for (tls, other) in [
        (ClientChoice::Tls13Only, ClientChoice::Tls12Only),
        (ClientChoice::Tls12Only, ClientChoice::Tls13Only),
    ] {
        variants.push(
            ClientChoice::ALL
                .iter()
                .copied()
                .filter(|c| *c != other)
                .chain([tls])
                .collect(),
        );
    }
    let mut problems = Vec::new();
    for chunk in variants.chunks(5) {
        let runs: Vec<_> = chunk
            .iter()
            .map(|choices| {
                let flags: String = choices
                    .iter()
                    .map(|c| format!(" --choice {}", c.name()))
                    .collect();
                let t = format!(
                    "{BIN} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}}{flags}"
                );
                let o = opts();
                tokio::spawn(async move {
                    let r = check::check_client(ClientTarget::parse(&t).unwrap(), &o)
                        .await
                        .unwrap();
                    (flags, r)
                })
            })
            .collect();
        for run in runs {
            let (flags, r) = run.await.unwrap();
            for c in r.cases.iter().filter(|c| c.verdict == Verdict::Fail) {
                problems.push(format!("{flags}: {}: {}", c.id, c.detail));
            }
            if r.outcome.failed {
                problems.push(format!("{flags}: the run failed: {:?}", r.outcome));
            }
            assert!(r.summary.pass >= 20, "{flags}: {:?}", r.summary);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Every broken client and the case that catches it.
pub(crate) const EXPECTED: &[(&str, &str)] = &[
    ("skip-signature-check", "client.mitm.response-other-secret"),
    ("skip-pinning", "client.pinning.second-server"),
    ("save-on-rejected", "client.mitm.rejected-with-certificate"),
    ("accept-other-cn", "client.mitm.certificate-other-cn"),
    ("accept-other-key", "client.mitm.certificate-other-key"),
    ("accept-other-ca", "client.mitm.certificate-other-ca"),
    ("accept-expired", "client.mitm.certificate-expired"),
    ("ignore-retry-sec", "client.waiting.honours-retry-sec"),
    ("sign-pretty-json", "client.hmac.request-signed"),
    ("send-secret", "client.hmac.request-signed"),
    ("renew-without-mtls", "client.renewal.mutual-tls"),
    ("sha256-key", "client.hmac.request-signed"),
    (
        "ignore-preprovisioned-ca",
        "client.pinning.preprovisioned-ca",
    ),
    ("pem-only-ca", "client.directory.ca-cert-base64"),
    ("csr-unasked", "client.csr.not-sent-unless-advertised"),
    // Near misses (issue 15): each passed the catalogue that looked only at
    // the set of three files and the properties a case was named after.
    (
        "accept-not-yet-valid",
        "client.mitm.certificate-not-yet-valid",
    ),
    ("cn-case-insensitive", "client.mitm.certificate-cn-case"),
    ("retry-after-rejected", "client.provision.rejected"),
    ("leaves-temp-file", "client.mitm.certificate-other-cn"),
    // Hangs for the whole case time limit: run on its own, with a short one.
    ("unbounded-retry-sec", "client.waiting.absurd-retry-sec"),
    // Transport.
    ("offers-legacy-tls", "client.provision.honest"),
    ("no-request-timeout", "client.transport.silent-server"),
    ("allow-plain-http", "client.transport.no-plaintext"),
    // Relations (issue 24): passes every case that serves honest members.
    (
        "stores-answer-ca",
        "client.mitm.any-answer-chains-or-nothing",
    ),
    // Needs DNS-SD: run in a network namespace by
    // `discovery_case_runs_on_real_mdns_in_a_namespace`.
    (
        "falls-back-to-http",
        "client.transport.discovery-no-plaintext",
    ),
];

/// Faults run by their own test rather than the full-catalogue loop.
const OWN_TEST: &[&str] = &[
    "unbounded-retry-sec",
    "no-request-timeout",
    "falls-back-to-http",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_client_is_caught() {
    assert_eq!(EXPECTED.len(), ClientFault::ALL.len());
    let exe = faulty_client();
    let mut table = String::new();
    for (fault, case) in EXPECTED.iter().filter(|(f, _)| !OWN_TEST.contains(f)) {
        let t = format!(
            "{} --fault {fault} --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}} --ca {{ca}}",
            exe.display()
        );
        // The silent and trickling cases wait out the device's 15-second
        // limit; none of these faults is about them (they have their own
        // test).
        let o = CheckOptions {
            cases: vec![
                "!client.transport.silent-server".into(),
                "!client.transport.trickling-server".into(),
            ],
            ..opts()
        };
        let r = check::check_client(ClientTarget::parse(&t).unwrap(), &o)
            .await
            .unwrap();
        let fails: Vec<&str> = r
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| c.id.as_str())
            .collect();
        table.push_str(&format!("{fault}: {}\n", fails.join(", ")));
        assert!(
            fails.contains(case),
            "{fault} not caught by {case}; failing: {fails:?}"
        );
    }
    eprintln!("{table}");
}

/// A device without a time limit on its exchanges hangs on a silent server
/// and is caught; our own client gives up after its 15-second limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_without_request_timeout_is_caught() {
    let o = CheckOptions {
        cases: vec!["client.transport.*-server".into()],
        timeout: Duration::from_secs(25),
        ..opts()
    };
    let own = format!(
        "{BIN} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}}"
    );
    let broken = format!(
        "{} --fault no-request-timeout --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}} --ca {{ca}}",
        faulty_client().display()
    );
    let (honest, broken) = tokio::join!(
        check::check_client(ClientTarget::parse(&own).unwrap(), &o),
        check::check_client(ClientTarget::parse(&broken).unwrap(), &o)
    );
    let (honest, broken) = (honest.unwrap(), broken.unwrap());
    for id in [
        "client.transport.silent-server",
        "client.transport.trickling-server",
    ] {
        let v = |r: &idprov::check::report::Report| {
            r.cases
                .iter()
                .find(|c| c.id == id)
                .map(|c| (c.verdict, c.detail.clone()))
                .unwrap()
        };
        assert_eq!(v(&honest).0, Verdict::Pass, "{id}: {:?}", v(&honest));
        let (verdict, detail) = v(&broken);
        assert_eq!(verdict, Verdict::Fail, "{id}: {detail}");
        assert!(detail.contains("hung"), "{id}: {detail}");
    }
}

/// A device that sleeps for whatever retrySec says is caught as hanging
/// (with a 10-second case limit, so the test does not wait a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_obeys_an_absurd_retry_sec_is_caught() {
    let exe = faulty_client();
    let t = |fault: &str| {
        format!(
            "{} --fault {fault} --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}} --ca {{ca}}",
            exe.display()
        )
    };
    let o = CheckOptions {
        cases: vec!["client.waiting.absurd-retry-sec".into()],
        timeout: Duration::from_secs(10),
        ..opts()
    };
    let v = |r: &idprov::check::report::Report| {
        r.cases
            .iter()
            .find(|c| c.id == "client.waiting.absurd-retry-sec")
            .map(|c| (c.verdict, c.detail.clone()))
            .unwrap()
    };
    // Our own client, told its overall limit is 8 s, clamps the hint to
    // its 30-second maximum, sees that it cannot wait that long, and stops.
    let own = format!(
        "{BIN} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}} --timeout 8"
    );
    let honest = check::check_client(ClientTarget::parse(&own).unwrap(), &o)
        .await
        .unwrap();
    assert_eq!(v(&honest).0, Verdict::Pass, "{:?}", v(&honest));
    let broken = check::check_client(ClientTarget::parse(&t("unbounded-retry-sec")).unwrap(), &o)
        .await
        .unwrap();
    let (verdict, detail) = v(&broken);
    assert_eq!(verdict, Verdict::Fail, "{detail}");
    assert!(detail.contains("hung"), "{detail}");
    assert!(broken.outcome.failed);
}

#[tokio::test]
async fn a_shim_without_the_89_convention_is_a_setup_error() {
    let err = check::check_client(ClientTarget::parse("true").unwrap(), &opts())
        .await
        .unwrap_err();
    assert!(err.0.contains("89"), "{}", err.0);
    assert!(ClientTarget::parse("").is_err());
    assert!(ClientTarget::parse("'unterminated").is_err());
}

/// Real DNS-SD in a network namespace made for the test (only loopback
/// inside): our client finds the server, and when DNS-SD points at a
/// plaintext port it speaks TLS there and gives up; a client that falls
/// back to plain HTTP is caught, and so is one that cannot discover (it
/// never reaches the advertised port). Needs root for `unshare --net`;
/// fails rather than skips.
#[test]
fn discovery_case_runs_on_real_mdns_in_a_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let fc = faulty_client();
    let tpl = |exe: &str| {
        format!("'{exe} --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}} --ca {{ca}}'")
    };
    let own = format!(
        "'{BIN} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}}'"
    );
    let cases = "'client.discovery.*,client.transport.discovery-*'";
    // Ignores the empty URL (never discovers): a closed port instead.
    let nd = format!(
        "'{BIN} client --url https://127.0.0.1:9/idprov/directory --device-id {{device_id}} --secret {{secret}} --dir {{dir}}'"
    );
    let fb = tpl(&format!("{} --fault falls-back-to-http", fc.display()));
    let script = format!(
        "set -u\nip link set lo up\nip link set lo multicast on\nip route add 224.0.0.0/4 dev lo\n\
         {BIN} check client --cmd {own} --capabilities discovery --cases {cases} --report-dir {t}/own; echo \"own exit $?\"\n\
         {BIN} check client --cmd {fb} --capabilities discovery --cases {cases} --report-dir {t}/fallback; echo \"fallback exit $?\"\n\
         {BIN} check client --cmd {nd} --capabilities discovery --cases {cases} --report-dir {t}/nodiscovery; echo \"nodiscovery exit $?\"\n",
        t = tmp.path().display(),
    );
    let out = std::process::Command::new("timeout")
        .args(["150", "unshare", "--net", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let verdicts = |dir: &str| -> Vec<(String, String, String)> {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join(dir).join("report.json"))
                .unwrap_or_else(|e| panic!("{dir}: {e}\n{stdout}\n{stderr}")),
        )
        .unwrap();
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    c["verdict"].as_str().unwrap().to_string(),
                    c["detail"].to_string(),
                )
            })
            .collect()
    };
    assert!(stdout.contains("own exit 0"), "{stdout}\n{stderr}");
    let own = verdicts("own");
    assert_eq!(own.len(), 3, "{own:?}"); // with the control
    assert!(own.iter().all(|c| c.1 == "pass"), "{own:?}");
    let find =
        |r: &[(String, String, String)], id: &str| r.iter().find(|c| c.0 == id).cloned().unwrap();
    assert!(stdout.contains("fallback exit 1"), "{stdout}\n{stderr}");
    let (_, v, detail) = find(
        &verdicts("fallback"),
        "client.transport.discovery-no-plaintext",
    );
    assert_eq!(v, "fail", "{detail}");
    assert!(detail.contains("plaintext"), "{detail}");
    assert!(stdout.contains("nodiscovery exit 1"), "{stdout}\n{stderr}");
    let (_, v, detail) = find(
        &verdicts("nodiscovery"),
        "client.transport.discovery-no-plaintext",
    );
    assert_eq!(v, "fail", "{detail}");
    assert!(
        detail.contains("failed before the server misbehaved"),
        "{detail}"
    );
}

/// The README's example shim (environment variables only) passes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_shell_shim_passes() {
    let shim =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/shim/idprov-client-shim.sh");
    let t = format!("env IDPROV_BIN={BIN} sh {}", shim.display());
    let r = check::check_client(ClientTarget::parse(&t).unwrap(), &opts())
        .await
        .unwrap();
    let fails: Vec<_> = r
        .cases
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| (&c.id, &c.detail))
        .collect();
    assert!(fails.is_empty(), "{fails:#?}");
}

/// A shim that speaks the 89 convention and then does `body` (POSIX sh).
fn sh_shim(body: &str) -> ClientTarget {
    let script = format!("[ \"${{IDPROV_FEATURE:-}}\" = __probe__ ] && exit 89; {body}");
    ClientTarget::parse(&format!("sh -c {}", shell_words::quote(&script))).unwrap()
}

fn verdict<'a>(
    r: &'a idprov::check::report::Report,
    id: &str,
) -> &'a idprov::check::report::CaseResult {
    r.cases
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} not in the report"))
}

/// Every refusal case of the catalogue (a device run that must fail).
fn refusal_cases() -> Vec<String> {
    idprov::check::scenario::catalogue()
        .unwrap()
        .into_iter()
        .filter(|s| {
            s.steps
                .iter()
                .any(|st| st.expect.exit == Some(idprov::check::scenario::ExitSpec::Failure))
        })
        // Discovery cases need a namespace; they have their own test.
        .filter(|s| !s.requires.iter().any(|r| r == "discovery"))
        .map(|s| s.id)
        .collect()
}

fn needs_no_contact(id: &str) -> bool {
    check::scenario::catalogue().unwrap().iter().any(|s| {
        s.id == id
            && s.steps
                .iter()
                .any(|st| st.expect.reached == Some(idprov::check::scenario::ReachedSpec::Nothing))
    })
}

/// Devices that do nothing, crash at once, or cannot even start: no case
/// passes for them, every refusal case says the device failed before the
/// server misbehaved, and the run fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_do_nothing_never_come_out_green() {
    let refusals = refusal_cases();
    assert!(refusals.len() >= 15, "{refusals:?}");
    for (name, target) in [
        ("exits 1 at once", sh_shim("exit 1")),
        ("crashes at start", sh_shim("kill -SEGV $$")),
        (
            "a device that exits 3 having done nothing",
            sh_shim("exit 3"),
        ),
    ] {
        let r = check::check_client(target.clone(), &opts()).await.unwrap();
        assert!(r.outcome.failed, "{name}: run passed");
        assert_eq!(r.summary.pass, 0, "{name}: {:?}", r.summary);
        for id in &refusals {
            let c = verdict(&r, id);
            assert_eq!(c.verdict, Verdict::Fail, "{name}: {id} {}", c.detail);
            // A refusal that needs no contact (`reached = "nothing"`) is
            // shown by the same case's later success step instead.
            let why = if needs_no_contact(id) {
                "expected the device to succeed"
            } else {
                "failed before the server misbehaved"
            };
            assert!(c.detail.contains(why), "{name}: {id}: {}", c.detail);
        }
        // The reproduction: only the MITM cases, still red.
        let only_mitm = CheckOptions {
            cases: vec!["client.mitm.*".into()],
            ..opts()
        };
        let r = check::check_client(target, &only_mitm).await.unwrap();
        assert!(r.outcome.failed, "{name}: --cases client.mitm.* passed");
        assert_eq!(
            verdict(&r, "client.provision.honest").verdict,
            Verdict::Fail
        );
    }
}

/// A shim that cannot start its device (the README's shim with its device
/// not installed: the shell's exit 127, or 126 for a file that is not
/// executable) is a setup error in one line, not a non-conforming device;
/// a device that spoke to a server and then exited 127 is judged as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shim_that_cannot_start_its_device_is_a_setup_error() {
    let readme_shim =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/shim/idprov-client-shim.sh");
    let d = tempfile::tempdir().unwrap();
    let plain = d.path().join("device");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    for (name, target, code) in [
        (
            "README shim, device not installed",
            ClientTarget::parse(&format!(
                "env IDPROV_BIN=/nonexistent/idprov sh {}",
                readme_shim.display()
            ))
            .unwrap(),
            "127",
        ),
        (
            "not executable",
            sh_shim(&format!("exec {}", plain.display())),
            "126",
        ),
    ] {
        let e = check::check_client(target, &opts())
            .await
            .expect_err(name)
            .0;
        assert!(e.contains("could not start its device"), "{name}: {e}");
        assert!(e.contains(&format!("exited {code}")), "{name}: {e}");
        assert!(!e.contains('\n'), "{name}: not one line: {e}");
    }
    let spoke_then_127 = sh_shim(&format!(
        "{BIN} client --url \"$IDPROV_URL\" --device-id \"$IDPROV_DEVICE_ID\" --secret \"${{IDPROV_SECRET:-}}\" --dir \"$IDPROV_DIR\" --timeout 20; exit 127"
    ));
    let only_control = CheckOptions {
        cases: vec!["client.provision.honest".into()],
        ..opts()
    };
    let r = check::check_client(spoke_then_127, &only_control)
        .await
        .expect("a device that spoke to the server is judged");
    let c = verdict(&r, "client.provision.honest");
    assert_eq!(c.verdict, Verdict::Fail, "{}", c.detail);
}

/// Exit 89 skips only optional features: for everything, the run fails;
/// for a core feature, that case fails as "MUST behaviour not implemented".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_89_cannot_opt_out_of_core_behaviour() {
    let r = check::check_client(ClientTarget::parse("sh -c 'exit 89'").unwrap(), &opts())
        .await
        .unwrap();
    assert!(r.outcome.failed);
    assert_eq!(r.summary.pass, 0);
    assert_eq!(
        verdict(&r, "client.provision.honest").verdict,
        Verdict::Fail
    );
    for c in &r.cases {
        if c.verdict == Verdict::Skip {
            let optional = idprov::check::scenario::catalogue()
                .unwrap()
                .into_iter()
                .find(|s| s.id == c.id)
                .unwrap()
                .features()
                .iter()
                .all(|f| idprov::check::features::feature(f).is_some_and(|f| f.optional));
            assert!(optional, "{} skipped: {}", c.id, c.detail);
        }
    }
    for core in ["waiting", "pinning", "renewal", "verification"] {
        let t = format!(
            "sh -c 'case \"${{IDPROV_FEATURE:-}}\" in __probe__|{core}) exit 89;; esac; exec \"$0\" client --url \"${{IDPROV_URL:-}}\" --device-id \"$IDPROV_DEVICE_ID\" --secret \"${{IDPROV_SECRET:-}}\" --dir \"$IDPROV_DIR\" --ca \"${{IDPROV_CA:-}}\"' {BIN}"
        );
        let o = CheckOptions {
            cases: idprov::check::scenario::catalogue()
                .unwrap()
                .into_iter()
                .filter(|s| s.features().contains(&core))
                .map(|s| s.id)
                .collect(),
            ..opts()
        };
        assert!(!o.cases.is_empty(), "no case names {core}");
        let r = check::check_client(ClientTarget::parse(&t).unwrap(), &o)
            .await
            .unwrap();
        let hit: Vec<&str> = r
            .cases
            .iter()
            .filter(|c| c.detail.contains("MUST behaviour not implemented"))
            .map(|c| c.id.as_str())
            .collect();
        assert!(!hit.is_empty(), "89 for {core} was not caught");
        assert!(r.outcome.failed, "89 for {core}: run passed");
        assert!(
            r.cases.iter().all(|c| c.verdict != Verdict::Skip
                || c.detail.contains("optional")
                || c.id == "client.discovery.finds-server"),
            "89 for {core}: a core case was skipped"
        );
    }
}

/// The device's whole process group ends with its case: a shim that starts
/// its device in the background (no `exec`) and exits leaves nothing
/// running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_left_running_by_its_shim_is_killed() {
    let d = tempfile::tempdir().unwrap();
    let pid_file = d.path().join("pid");
    let shim = sh_shim(&format!(
        "sleep 300 & echo $! > {}; exit 1",
        pid_file.display()
    ));
    let only_control = CheckOptions {
        cases: vec!["client.provision.honest".into()],
        ..opts()
    };
    let r = check::check_client(shim, &only_control).await.unwrap();
    assert_eq!(
        verdict(&r, "client.provision.honest").verdict,
        Verdict::Fail
    );
    assert_not_running(&pid_file);
    // A shim that hangs is killed at the case's limit, with its group.
    let hung_pid = d.path().join("hung-pid");
    let hung = sh_shim(&format!(
        "sleep 300 & echo $! > {}; exec sleep 300",
        hung_pid.display()
    ));
    let short = CheckOptions {
        timeout: Duration::from_secs(3),
        ..only_control.clone()
    };
    let r = check::check_client(hung, &short).await.unwrap();
    assert_eq!(
        verdict(&r, "client.provision.honest").verdict,
        Verdict::Fail
    );
    assert_not_running(&hung_pid);
}

/// The process whose pid is in `file` is gone, or a zombie waiting for
/// init to reap it: not running.
fn assert_not_running(file: &std::path::Path) {
    let pid = std::fs::read_to_string(file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
    assert!(
        matches!(state, None | Some('Z') | Some('X')),
        "the device still runs: {stat}"
    );
}

/// What a device prints is kept up to a bound per stream, the end of it,
/// with a marker saying how much was cut: a 5 MB line does not make a
/// 10 MB report. Stdout is kept as well as stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_output_is_capped_in_the_report() {
    let shim = sh_shim(
        "echo to-stdout; head -c 5000000 /dev/zero | tr '\\0' x >&2; echo ' last-words' >&2; exit 1",
    );
    let only_control = CheckOptions {
        cases: vec!["client.provision.honest".into()],
        ..opts()
    };
    let r = check::check_client(shim, &only_control).await.unwrap();
    let c = verdict(&r, "client.provision.honest");
    assert_eq!(c.verdict, Verdict::Fail);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.len() < 100_000, "report is {} bytes", json.len());
    let evidence = serde_json::to_string(&c.evidence).unwrap();
    assert!(evidence.contains("bytes cut"), "no cut marker");
    assert!(
        evidence.contains("last-words"),
        "the end of stderr was not kept"
    );
    assert!(evidence.contains("to-stdout"), "stdout was not kept");
}

/// A device's failures are named the way a user looks for them: exit 0
/// with nothing sent is "sent no provisioning request" (not a missing
/// file), and a bogus cert.pem is "not a certificate" before anything is
/// said of the key file's mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_failure_is_named_by_its_first_cause() {
    let only_control = CheckOptions {
        cases: vec!["client.provision.honest".into()],
        ..opts()
    };
    let own = format!(
        "{BIN} client --url \"$IDPROV_URL\" --device-id \"$IDPROV_DEVICE_ID\" --secret \"${{IDPROV_SECRET:-}}\" --dir \"$IDPROV_DIR\" --timeout 20"
    );
    for (shim, want) in [
        (sh_shim("exit 0"), "sent no provisioning request"),
        (
            sh_shim(&format!(
                "{own} && echo garbage > \"$IDPROV_DIR/cert.pem\" && chmod 644 \"$IDPROV_DIR/key.pem\""
            )),
            "cert.pem is not a certificate",
        ),
        (
            sh_shim(&format!("{own} && rm \"$IDPROV_DIR/ca.pem\"")),
            "left no ca.pem",
        ),
    ] {
        let r = check::check_client(shim, &only_control).await.unwrap();
        let c = verdict(&r, "client.provision.honest");
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.detail);
        assert!(c.detail.contains(want), "want {want:?}: {}", c.detail);
    }
}

/// The device relation is never green by default: a device that exits 0
/// without a word, and one that refuses every answer, both fail it (the
/// honest baseline run must provision first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_does_nothing_fails_the_relation_case() {
    let id = "client.mitm.any-answer-chains-or-nothing";
    let o = CheckOptions {
        cases: vec![id.into()],
        ..opts()
    };
    for (code, want) in [
        ("0", "sent no provisioning request"),
        ("1", "did not provision"),
    ] {
        let r = check::check_client(sh_shim(&format!("exit {code}")), &o)
            .await
            .unwrap();
        let c = verdict(&r, id);
        assert_eq!(c.verdict, Verdict::Fail, "exit {code}: {}", c.detail);
        assert!(c.detail.contains(want), "exit {code}: {}", c.detail);
    }
}

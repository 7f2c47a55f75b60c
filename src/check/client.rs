//! `idprov check client`: runs a device implementation through the shim
//! (SUITE.md) against the suite's honest and hostile servers, and judges it
//! by its exit code, the files it left and the requests it made.

use super::features;
use super::report::{CaseResult, Exchange, Verdict};
use super::scenario::{Action, BugsSpec, Scenario, Step};
use super::SetupError;
use crate::core::messages::{DIRECTORY_PATH, PROVREQ_PATH};
use crate::core::sign::{self, KeyVariant};
use crate::pki::{
    cert_der_from_pem, verify_chain, CertAuthority, CertInfo, DevicePublicKey, Usage,
};
use crate::suite::hostile::{self, Bugs, HostileServer, Recorded, SignMode, Tamper, WireForm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Exit code by which a shim says "this case needs a feature I lack".
pub const EXIT_UNIMPLEMENTED: i32 = 89;

/// A device implementation under test.
#[derive(Debug, Clone)]
pub struct ClientTarget {
    /// The command template, already split into words.
    pub words: Vec<String>,
    /// The template as given (for reports).
    pub template: String,
}

impl ClientTarget {
    /// Splits a template like a POSIX shell (quotes respected).
    pub fn parse(template: &str) -> Result<Self, SetupError> {
        let words = shell_words::split(template).map_err(|e| SetupError(format!("--cmd: {e}")))?;
        if words.is_empty() {
            return Err(SetupError("--cmd is empty".into()));
        }
        Ok(ClientTarget {
            words,
            template: template.to_string(),
        })
    }
}

/// Values substituted into the template and exported as `IDPROV_*`.
#[derive(Debug, Clone, Default)]
pub struct ShimValues {
    /// Directory URL, or empty for discovery.
    pub url: String,
    /// Device ID.
    pub device_id: String,
    /// OOB secret (may be empty).
    pub secret: String,
    /// Output directory.
    pub dir: String,
    /// Pre-provisioned CA path, or empty.
    pub ca: String,
    /// `IDPROV_FEATURE`, if any.
    pub feature: Option<String>,
}

/// The result of one shim run.
#[derive(Debug, Clone)]
pub struct ShimRun {
    /// Exit code (`None`: killed or timed out).
    pub code: Option<i32>,
    /// Whether the run hit the time limit.
    pub timed_out: bool,
    /// Last lines of stderr.
    pub stderr_tail: String,
    /// The command line run.
    pub argv: Vec<String>,
    /// Duration.
    pub ms: u64,
}

/// Runs the shim once: words substituted before execution, no shell.
pub async fn run_shim(
    target: &ClientTarget,
    v: &ShimValues,
    timeout: Duration,
) -> Result<ShimRun, String> {
    let sub = |w: &str| {
        w.replace("{url}", &v.url)
            .replace("{device_id}", &v.device_id)
            .replace("{secret}", &v.secret)
            .replace("{dir}", &v.dir)
            .replace("{ca}", &v.ca)
    };
    let argv: Vec<String> = target.words.iter().map(|w| sub(w)).collect();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, val) in [
        ("IDPROV_URL", &v.url),
        ("IDPROV_DEVICE_ID", &v.device_id),
        ("IDPROV_SECRET", &v.secret),
        ("IDPROV_DIR", &v.dir),
        ("IDPROV_CA", &v.ca),
    ] {
        if val.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, val);
        }
    }
    match &v.feature {
        Some(f) => cmd.env("IDPROV_FEATURE", f),
        None => cmd.env_remove("IDPROV_FEATURE"),
    };
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", argv[0]))?;
    let out = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let (code, timed_out, stderr) = match out {
        Ok(Ok(o)) => (o.status.code(), false, o.stderr),
        Ok(Err(e)) => return Err(format!("waiting for the shim: {e}")),
        Err(_) => (None, true, Vec::new()),
    };
    let text = String::from_utf8_lossy(&stderr);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n");
    Ok(ShimRun {
        code,
        timed_out,
        stderr_tail: tail,
        argv,
        ms: started.elapsed().as_millis() as u64,
    })
}

/// Checks that the shim speaks the 89 convention.
pub async fn probe(target: &ClientTarget, timeout: Duration) -> Result<(), SetupError> {
    let dir = tempfile::tempdir().map_err(|e| SetupError(e.to_string()))?;
    let v = ShimValues {
        url: "https://127.0.0.1:9/idprov/directory".into(),
        device_id: "probe".into(),
        secret: "probe".into(),
        dir: dir.path().to_string_lossy().into_owned(),
        ca: String::new(),
        feature: Some("__probe__".into()),
    };
    let r = run_shim(target, &v, timeout).await.map_err(SetupError)?;
    if r.code == Some(EXIT_UNIMPLEMENTED) {
        Ok(())
    } else {
        Err(SetupError(format!(
            "the shim must exit {EXIT_UNIMPLEMENTED} when IDPROV_FEATURE=__probe__ (an unknown feature), but it {}; see SUITE.md",
            match r.code {
                Some(c) => format!("exited {c}"),
                None if r.timed_out => "timed out".into(),
                None => "was killed".into(),
            }
        )))
    }
}

fn bugs_of(spec: &BugsSpec) -> Result<Bugs, String> {
    Ok(Bugs {
        sign: match spec.sign.as_deref().unwrap_or("honest") {
            "honest" => SignMode::Honest,
            "other-secret" => SignMode::OtherSecret,
            "sha256-key" => SignMode::Sha256Key,
            "unsigned" => SignMode::Unsigned,
            o => return Err(format!("unknown sign mode `{o}`")),
        },
        tamper: match spec.tamper.as_deref() {
            None => None,
            Some("client-cert") => Some(Tamper::ClientCert),
            Some("ca-cert") => Some(Tamper::CaCert),
            Some("status") => Some(Tamper::Status),
            Some("retry-sec") => Some(Tamper::RetrySec),
            Some(o) => return Err(format!("unknown tamper `{o}`")),
        },
        other_cn: spec.other_cn,
        other_key: spec.other_key,
        other_ca: spec.other_ca,
        expired: spec.expired,
        reject: spec.reject,
        cert_on_rejected: spec.cert_on_rejected,
        waiting_times: spec.waiting_times,
        waiting_retry_sec: spec.waiting_retry_sec,
        tls_other_ca: spec.tls_other_ca,
        provreq_url: None,
        advertise_csr: spec.advertise_csr,
        no_ca_in_directory: spec.no_ca_in_directory,
        wire: match spec.wire.as_deref() {
            None => None,
            Some(w) => {
                Some(WireForm::by_name(w).ok_or_else(|| format!("unknown wire form `{w}`"))?)
            }
        },
    })
}

enum StepError {
    Fail(String),
    Skip(String),
}

fn fail<T>(m: impl Into<String>) -> Result<T, StepError> {
    Err(StepError::Fail(m.into()))
}

struct Case<'a> {
    target: &'a ClientTarget,
    timeout: Duration,
    device_id: String,
    secret: String,
    dir: tempfile::TempDir,
    aux: tempfile::TempDir,
    primary: Option<HostileServer>,
    second: Option<HostileServer>,
    before: HashMap<String, Vec<u8>>,
    evidence: Vec<Exchange>,
    step_no: usize,
    last_feature: Option<String>,
}

const SET: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

fn snapshot(dir: &Path) -> HashMap<String, Vec<u8>> {
    SET.iter()
        .filter_map(|n| std::fs::read(dir.join(n)).ok().map(|b| (n.to_string(), b)))
        .collect()
}

impl Case<'_> {
    fn all_requests(&self) -> Vec<(String, Recorded)> {
        let mut v = Vec::new();
        for (name, s) in [("primary", &self.primary), ("second", &self.second)] {
            if let Some(s) = s {
                v.extend(s.requests().into_iter().map(|r| (name.to_string(), r)));
            }
        }
        v
    }

    fn provreqs(&self) -> Vec<Recorded> {
        self.all_requests()
            .into_iter()
            .filter(|(_, r)| r.path == PROVREQ_PATH && r.method == "POST")
            .map(|(_, r)| r)
            .collect()
    }

    async fn step(&mut self, st: &Step) -> Result<Option<String>, StepError> {
        match st.action {
            Some(Action::Serve) => self.serve(st).await.map(|_| None),
            Some(Action::GiveCertificate) => self.give_certificate().map(|_| None),
            Some(Action::RunDevice) => self.run_device(st).await,
            Some(Action::Wait) => {
                tokio::time::sleep(Duration::from_millis(st.ms.unwrap_or(0).min(60_000))).await;
                Ok(None)
            }
            Some(Action::Observe) => self.observe(st),
            other => fail(format!("action {other:?} is not for client cases")),
        }
    }

    async fn serve(&mut self, st: &Step) -> Result<(), StepError> {
        let spec = st.bugs.clone().unwrap_or_default();
        let mut bugs = bugs_of(&spec).map_err(StepError::Fail)?;
        let listen = "127.0.0.1:0"
            .parse()
            .map_err(|_| StepError::Fail("address".into()))?;
        if spec.second_server {
            let b = hostile::start(listen, &self.secret, Bugs::default())
                .await
                .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
            bugs.provreq_url = Some(b.provreq_url());
            self.second = Some(b);
        }
        let mut a = hostile::start(listen, &self.secret, bugs)
            .await
            .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
        if spec.advertise {
            a.advertise()
                .map_err(|e| StepError::Fail(format!("DNS-SD: {e}")))?;
        }
        self.primary = Some(a);
        Ok(())
    }

    fn give_certificate(&mut self) -> Result<(), StepError> {
        let Some(srv) = &self.primary else {
            return fail("no server yet");
        };
        let key = rcgen::KeyPair::generate().map_err(|e| StepError::Fail(e.to_string()))?;
        let dk = DevicePublicKey::from_pem(&key.public_key_pem())
            .map_err(|e| StepError::Fail(e.to_string()))?;
        let cert = srv
            .issue_device(&self.device_id, &dk)
            .map_err(StepError::Fail)?;
        let d = self.dir.path();
        let w = |n: &str, b: &[u8], mode: u32| {
            crate::fsutil::write_atomic(&d.join(n), b, mode)
                .map_err(|e| StepError::Fail(e.to_string()))
        };
        w("ca.pem", srv.ca_pem.as_bytes(), 0o644)?;
        w("cert.pem", cert.as_bytes(), 0o644)?;
        w("key.pem", key.serialize_pem().as_bytes(), 0o600)?;
        Ok(())
    }

    async fn run_device(&mut self, st: &Step) -> Result<Option<String>, StepError> {
        let Some(srv) = &self.primary else {
            return fail("no server yet");
        };
        let url = match st.url.as_deref().unwrap_or("directory") {
            "directory" => srv.url(),
            "none" => String::new(),
            o => return fail(format!("unknown url mode `{o}`")),
        };
        let ca = match st.ca.as_deref().unwrap_or("none") {
            "none" => String::new(),
            mode @ ("server" | "other") => {
                let pem = if mode == "server" {
                    srv.ca_pem.clone()
                } else {
                    CertAuthority::generate("unrelated CA", OffsetDateTime::now_utc())
                        .map_err(|e| StepError::Fail(e.to_string()))?
                        .cert_pem()
                        .to_string()
                };
                let p = self.aux.path().join("preprovisioned-ca.pem");
                std::fs::write(&p, pem).map_err(|e| StepError::Fail(e.to_string()))?;
                p.to_string_lossy().into_owned()
            }
            o => return fail(format!("unknown ca mode `{o}`")),
        };
        let secret = if st.secret.as_deref() == Some("none") {
            String::new()
        } else {
            self.secret.clone()
        };
        self.before = snapshot(self.dir.path());
        self.last_feature = st.feature.clone();
        let v = ShimValues {
            url,
            device_id: self.device_id.clone(),
            secret,
            dir: self.dir.path().to_string_lossy().into_owned(),
            ca,
            feature: st.feature.clone(),
        };
        let run = run_shim(self.target, &v, self.timeout)
            .await
            .map_err(StepError::Fail)?;
        // The device has exited: let the servers finish observing what it
        // did (a handshake it aborted) before judging.
        for s in [&self.primary, &self.second].into_iter().flatten() {
            s.settle(Duration::from_secs(3)).await;
        }
        let mut note = format!(
            "ran {} → {} in {} ms",
            run.argv.join(" ").replace(&self.secret, "«secret»"),
            match run.code {
                Some(c) => format!("exit {c}"),
                None if run.timed_out => "timed out".into(),
                None => "killed".into(),
            },
            run.ms
        );
        if !run.stderr_tail.is_empty() {
            note.push_str(&format!(
                "\nstderr:\n{}",
                run.stderr_tail.replace(&self.secret, "«secret»")
            ));
        }
        self.evidence.push(Exchange::note(self.step_no, note));
        for (server, r) in self.all_requests() {
            self.evidence.push(Exchange {
                step: self.step_no,
                method: r.method.clone(),
                url: format!("{server} server {}", r.path),
                credential: if r.client_cert {
                    "client certificate".into()
                } else {
                    "none".into()
                },
                request_body: String::from_utf8_lossy(&r.body).replace(&self.secret, "«secret»"),
                status: None,
                response_headers: Vec::new(),
                response_body: String::new(),
                error: None,
                ms: r.at.as_millis() as u64,
            });
        }
        if run.code == Some(EXIT_UNIMPLEMENTED) {
            return match st.feature.as_deref().and_then(features::feature) {
                Some(f) if f.optional => Err(StepError::Skip(format!(
                    "unimplemented: the device lacks the optional feature {}",
                    f.name
                ))),
                Some(f) => fail(format!(
                    "MUST behaviour not implemented: the device exited {EXIT_UNIMPLEMENTED} for `{}`, a core feature ({}, {})",
                    f.name, f.covers, f.section
                )),
                None => fail(format!(
                    "the device exited {EXIT_UNIMPLEMENTED} (not implemented) for plain provisioning, which every device must do"
                )),
            };
        }
        self.judge(st, &run)
    }

    fn judge(&self, st: &Step, run: &ShimRun) -> Result<Option<String>, StepError> {
        let e = &st.expect;
        let Some(srv) = &self.primary else {
            return fail("no server");
        };
        match e.exit.as_deref() {
            None => {}
            Some("success") if run.code != Some(0) => {
                return fail(format!(
                    "expected the device to succeed, it {}{}",
                    run.code
                        .map(|c| format!("exited {c}"))
                        .unwrap_or_else(|| "timed out".into()),
                    last_line(&run.stderr_tail)
                ))
            }
            Some("failure") if run.code == Some(0) => {
                return fail("expected the device to refuse, it exited 0 (accepted)")
            }
            Some("failure") if run.timed_out => return fail("the device hung instead of refusing"),
            Some("failure") => self.check_reached(e.reached.as_deref(), run)?,
            Some("success") => {}
            Some(o) => return fail(format!("unknown exit expectation `{o}`")),
        }
        let d = self.dir.path();
        let now_files = snapshot(d);
        match e.files.as_deref() {
            None => {}
            Some("none") if !now_files.is_empty() => {
                return fail(format!(
                    "the device wrote {} although it had to refuse",
                    now_files.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            }
            Some("unchanged") if now_files != self.before => {
                return fail(
                    "the device changed its certificate set although the new one does not verify",
                )
            }
            Some("written") => self.check_set(d, &srv.ca_pem)?,
            Some("replaced") => {
                self.check_set(d, &srv.ca_pem)?;
                if now_files.get("cert.pem") == self.before.get("cert.pem") {
                    return fail("cert.pem was not replaced");
                }
            }
            Some("none" | "unchanged") => {}
            Some(o) => return fail(format!("unknown files expectation `{o}`")),
        }
        if e.key_mode_600 == Some(true) {
            let mode = std::fs::metadata(d.join("key.pem"))
                .map(|m| m.permissions().mode() & 0o777)
                .map_err(|e| StepError::Fail(format!("key.pem: {e}")))?;
            if mode != 0o600 {
                return fail(format!("key.pem has mode {mode:o}, not 600"));
            }
        }
        let reqs = self.provreqs();
        if e.secret_not_sent == Some(true) && !self.secret.is_empty() {
            if let Some((_, r)) = self
                .all_requests()
                .into_iter()
                .find(|(_, r)| String::from_utf8_lossy(&r.body).contains(&self.secret))
            {
                return fail(format!("the secret was sent in a request to {}", r.path));
            }
        }
        if e.request_signed == Some(true) {
            let Some(r) = reqs.last() else {
                return fail("the device sent no provisioning request");
            };
            if let Err(err) = sign::verify_raw(&r.body, self.secret.as_bytes()) {
                let hint = match sign::detect_variant(&r.body, &self.secret) {
                    Ok(KeyVariant::Sha256OfSecret) => " (it verifies with SHA-256(secret) as key)",
                    _ => "",
                };
                return fail(format!(
                    "the request's signature does not verify with the secret: {err}{hint}"
                ));
            }
        }
        if let Some(n) = e.provreq_count_min {
            if (reqs.len() as u32) < n {
                return fail(format!(
                    "{} provisioning requests, expected at least {n}",
                    reqs.len()
                ));
            }
        }
        if let Some(ms) = e.retry_spacing_ms_min {
            for w in reqs.windows(2) {
                let gap = w[1].at.saturating_sub(w[0].at);
                if gap < Duration::from_millis(ms) {
                    return fail(format!(
                        "retried after {} ms; retrySec asked for at least {ms} ms",
                        gap.as_millis()
                    ));
                }
            }
        }
        if e.mtls == Some(true) {
            if reqs.is_empty() {
                return fail("the device sent no provisioning request");
            }
            if reqs.iter().any(|r| !r.client_cert) {
                return fail("a renewal request came without the device's client certificate");
            }
        }
        if let Some(which) = e.nothing_reached.as_deref() {
            let server = if which == "second" {
                &self.second
            } else {
                &self.primary
            };
            if let Some(s) = server {
                let got = s.requests();
                if !got.is_empty() {
                    return fail(format!(
                        "the device sent {} request(s) to the {which} server before refusing",
                        got.len()
                    ));
                }
            }
        }
        if e.no_csr == Some(true)
            && reqs.iter().any(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|v| v.get("csrPEM").is_some())
            })
        {
            return fail(
                "the device sent csrPEM to a server that does not list csr in its extensions (a server that does not know the field cannot verify the signature over it)",
            );
        }
        if e.csr_valid_if_sent == Some(true) {
            let Some(r) = reqs.last() else {
                return fail("the device sent no provisioning request");
            };
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            match v["csrPEM"].as_str().filter(|c| !c.is_empty()) {
                None => return Ok(Some("the device sent no csrPEM (optional)".into())),
                Some(csr) => {
                    let key = DevicePublicKey::from_pem(v["publicKeyPEM"].as_str().unwrap_or(""))
                        .map_err(|e| StepError::Fail(format!("publicKeyPEM: {e}")))?;
                    crate::pki::verify_csr(csr, &key).map_err(|e| {
                        StepError::Fail(format!("the csrPEM sent is not valid: {e}"))
                    })?;
                }
            }
        }
        Ok(None)
    }

    /// A refusal counts only when the device got as far as the point where
    /// the server misbehaved; otherwise it failed for reasons of its own.
    fn check_reached(&self, point: Option<&str>, run: &ShimRun) -> Result<(), StepError> {
        let said: String = last_line(&run.stderr_tail)
            .trim_start_matches(": ")
            .replace(&self.secret, "«secret»")
            .chars()
            .take(300)
            .collect();
        let said = if said.is_empty() {
            "(nothing on stderr)".to_string()
        } else {
            said
        };
        let earlier = |what: &str| {
            fail(format!(
                "failed before the server misbehaved ({what}): {said}"
            ))
        };
        let Some(primary) = &self.primary else {
            return fail("no server");
        };
        let got = primary.requests();
        let fetched_directory = got
            .iter()
            .any(|r| r.path == DIRECTORY_PATH && r.status == 200);
        match point {
            Some("directory") if !fetched_directory => earlier("it never fetched the directory"),
            Some("provreq")
                if !got
                    .iter()
                    .any(|r| r.path == PROVREQ_PATH && r.method == "POST" && r.status == 200) =>
            {
                earlier("it never sent a provisioning request that the server answered")
            }
            Some("tls-refused") if primary.tls_counts().refused == 0 => {
                earlier("it never opened the TLS connection it had to refuse")
            }
            Some("second:tls-refused") => {
                let refused = self.second.as_ref().map_or(0, |s| s.tls_counts().refused);
                if !fetched_directory {
                    earlier("it never fetched the directory that points to the second server")
                } else if refused == 0 {
                    earlier(
                        "it never opened the TLS connection to the second server it had to refuse",
                    )
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn check_set(&self, d: &Path, ca_pem: &str) -> Result<(), StepError> {
        let read = |n: &str| {
            std::fs::read_to_string(d.join(n)).map_err(|e| StepError::Fail(format!("{n}: {e}")))
        };
        let (ca, cert, key) = (read("ca.pem")?, read("cert.pem")?, read("key.pem")?);
        let want_ca = cert_der_from_pem(ca_pem).map_err(|e| StepError::Fail(e.to_string()))?;
        if cert_der_from_pem(&ca).ok().as_deref() != Some(&want_ca[..]) {
            return fail("ca.pem is not the server's CA");
        }
        let der =
            cert_der_from_pem(&cert).map_err(|e| StepError::Fail(format!("cert.pem: {e}")))?;
        verify_chain(&der, &want_ca, OffsetDateTime::now_utc(), Usage::Client)
            .map_err(|e| StepError::Fail(format!("cert.pem: {e}")))?;
        let info = CertInfo::from_der(&der).map_err(|e| StepError::Fail(e.to_string()))?;
        if info.cn != [self.device_id.clone()] {
            return fail(format!("cert.pem is for {:?}", info.cn));
        }
        let kp =
            rcgen::KeyPair::from_pem(&key).map_err(|e| StepError::Fail(format!("key.pem: {e}")))?;
        if rcgen::PublicKeyData::subject_public_key_info(&kp) != info.spki_der {
            return fail("key.pem does not hold the key cert.pem was issued for");
        }
        Ok(())
    }

    fn observe(&self, st: &Step) -> Result<Option<String>, StepError> {
        match st.what.as_deref() {
            Some("request-form") => {
                let Some(r) = self.provreqs().into_iter().last() else {
                    return fail("the device sent no provisioning request");
                };
                let variant = match sign::detect_variant(&r.body, &self.secret) {
                    Ok(KeyVariant::Raw) => "signs with the raw secret",
                    Ok(KeyVariant::Sha256OfSecret) => "signs with SHA-256(secret)",
                    Err(_) => "signature verifies with neither key variant",
                };
                let canonical = sign::verify_reserialized_request(&r.body, self.secret.as_bytes())
                    .is_ok()
                    && crate::core::json::top_level_members(&r.body)
                        .map(|m| m.iter().map(|m| m.key.clone()).collect::<Vec<_>>())
                        .is_ok_and(|k| k == ["deviceID", "ip", "mac", "publicKeyPEM", "signature"]);
                Ok(Some(format!(
                    "{variant}; {}",
                    if canonical {
                        "sends Go's canonical form (the Go reference accepts it)"
                    } else {
                        "does not send Go's canonical form (a re-serialising server such as the Go reference would reject it)"
                    }
                )))
            }
            o => fail(format!("unknown observation {o:?}")),
        }
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .last()
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

/// Runs one client case.
pub async fn run_client_case(
    sc: &Scenario,
    target: &ClientTarget,
    seed: u64,
    capabilities: &BTreeSet<String>,
    timeout: Duration,
) -> CaseResult {
    let started = Instant::now();
    let mut result = CaseResult::new(sc);
    if let Some(reason) = super::missing_capabilities(sc, capabilities) {
        result.verdict = Verdict::Skip;
        result.detail = reason;
        return result;
    }
    let mut rng = ChaCha20Rng::seed_from_u64(
        seed ^ sc.id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        }),
    );
    let (dir, aux) = match (tempfile::tempdir(), tempfile::tempdir()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            result.verdict = Verdict::Fail;
            result.detail = "setup: cannot create a temporary directory".into();
            return result;
        }
    };
    let slug: String = sc.id.replace('.', "-").chars().skip(7).take(40).collect();
    let mut case = Case {
        target,
        timeout,
        device_id: format!("{slug}-{:08x}", rng.gen::<u32>()),
        secret: format!("secret-{:016x}", rng.gen::<u64>()),
        dir,
        aux,
        primary: None,
        second: None,
        before: HashMap::new(),
        evidence: Vec::new(),
        step_no: 0,
        last_feature: None,
    };
    let mut infos = Vec::new();
    result.verdict = Verdict::Pass;
    for (i, st) in sc.steps.iter().enumerate() {
        case.step_no = i + 1;
        match case.step(st).await {
            Ok(Some(info)) => infos.push(info),
            Ok(None) => {}
            Err(StepError::Fail(m)) => {
                result.verdict = Verdict::Fail;
                result.detail = format!("step {}: {m}", i + 1);
                break;
            }
            Err(StepError::Skip(m)) => {
                result.verdict = Verdict::Skip;
                result.detail = m;
                break;
            }
        }
    }
    if result.verdict == Verdict::Pass && !infos.is_empty() {
        result.verdict = Verdict::Info;
        result.detail = infos.join("; ");
    }
    result.devices = vec![case.device_id.clone()];
    result.evidence = case.evidence;
    result.ms = started.elapsed().as_millis() as u64;
    result
}

/// The template that runs this very binary's `client` as the shim.
pub fn own_client_template() -> Result<String, SetupError> {
    let exe: PathBuf = std::env::current_exe().map_err(|e| SetupError(format!("own path: {e}")))?;
    let exe = shell_words::quote(&exe.to_string_lossy()).into_owned();
    Ok(format!(
        "{exe} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}} --ca-cert {{ca}} --timeout 60"
    ))
}

//! `idprov check device`: a device that is not a process of this machine
//! (firmware on a bench, a board behind a relay). The case's servers listen
//! on an address the device reaches and are advertised over DNS-SD; a reset
//! hook (or an operator) starts the device's provisioning; the case ends
//! when the device has been quiet for a while; what it did is judged from
//! the wire, and what it holds afterwards from `--state-cmd` when given.

use super::shim::{run_shim, ClientTarget, ShimRun, ShimValues};
use crate::check::SetupError;
use crate::pki::{certs_der_from_pem, pem_encode, DevicePublicKey};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest a reset or state hook may run.
pub const HOOK_BOUND: Duration = Duration::from_secs(120);

/// How the suite makes the device start provisioning before each case.
#[derive(Debug, Clone)]
pub enum Reset {
    /// `--reset-cmd`: a command template with the shim's placeholders.
    Hook(ClientTarget),
    /// An operator at a terminal presses Enter after resetting the device
    /// (at most [`Reset::OPERATOR_BOUND`] per case).
    Operator,
}

impl Reset {
    /// How long the operator has to reset the device.
    pub const OPERATOR_BOUND: Duration = Duration::from_secs(300);
}

/// A device under test on the network.
#[derive(Debug, Clone)]
pub struct RemoteDevice {
    /// Address the case servers listen on (an interface the device reaches).
    pub listen: IpAddr,
    /// The device's ID (on its label).
    pub device_id: String,
    /// The device's OOB secret.
    pub secret: String,
    /// How the device is reset before each case.
    pub reset: Reset,
    /// `--state-cmd`: prints what the device holds (SUITE.md).
    pub state: Option<ClientTarget>,
    /// Quiet time after the device's last exchange that ends a case.
    pub quiet: Duration,
    /// How long after the reset the device may stay silent before the case
    /// ends with no contact.
    pub boot: Duration,
}

impl RemoteDevice {
    /// Parses a hook template (`flag` names it in errors).
    pub fn hook(flag: &str, template: &str) -> Result<ClientTarget, SetupError> {
        ClientTarget::parse(template).map_err(|e| SetupError(e.0.replace("--cmd", flag)))
    }
}

/// What a device holds, as `--state-cmd` printed it (or as the suite gave
/// it): PEM text of its CA(s) and certificate, and its public key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// `[ca]`: the CA certificate(s) it trusts.
    pub ca: Option<String>,
    /// `[cert]`: its certificate (chain).
    pub cert: Option<String>,
    /// `[key]`: its public key as `PUBLIC KEY` PEM.
    pub key: Option<String>,
    /// `[files]`, when printed: the names of every file in the device's
    /// store (to find what a refusal left behind).
    pub files: Option<Vec<String>>,
}

impl Held {
    /// Whether the device holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none()
            && self.cert.is_none()
            && self.key.is_none()
            && self.files.as_ref().is_none_or(|f| f.is_empty())
    }

    /// Whether this holds a certificate, and not the one in `given`.
    pub fn holds_new_certificate(&self, given: &Held) -> bool {
        self.cert.is_some() && self.cert != given.cert
    }

    /// Whether both hold the same set; the file names count only when
    /// both list them (`[files]` is optional).
    pub fn same_set(&self, other: &Held) -> bool {
        let files = match (&self.files, &other.files) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        files && self.ca == other.ca && self.cert == other.cert && self.key == other.key
    }

    /// Reads a set from a directory of the shim's file names (the set the
    /// suite gives the device), the key reduced to its public part.
    pub fn from_dir(dir: &Path) -> Result<Held, String> {
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).ok();
        let key = match read("key.pem") {
            Some(k) => Some(public_pem(&k).map_err(|e| format!("key.pem: {e}"))?),
            None => None,
        };
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        Ok(Held {
            ca: read("ca.pem").map(|t| canonical_certs(&t)),
            cert: read("cert.pem").map(|t| canonical_certs(&t)),
            key,
            files: Some(files),
        })
    }

    /// Parses what `--state-cmd` printed: sections `[ca]`, `[cert]` and
    /// `[key]`, each followed by PEM (`[key]`: a public key, or a private
    /// one whose public part alone is kept). Empty sections and no output
    /// mean the device holds nothing there.
    pub fn parse(text: &str) -> Result<Held, String> {
        let mut held = Held::default();
        let mut names: Option<String> = None;
        let mut current: Option<&mut Option<String>> = None;
        for line in text.lines() {
            let t = line.trim();
            match t {
                "[ca]" => current = Some(&mut held.ca),
                "[cert]" => current = Some(&mut held.cert),
                "[key]" => current = Some(&mut held.key),
                "[files]" => current = Some(&mut names),
                _ if t.starts_with('[') && t.ends_with(']') => {
                    return Err(format!(
                        "an unknown section {t}: expected [ca], [cert], [key] or [files]"
                    ))
                }
                "" => {}
                _ => match current.as_mut() {
                    Some(slot) => {
                        let s = slot.get_or_insert_with(String::new);
                        s.push_str(t);
                        s.push('\n');
                    }
                    None => {
                        return Err(format!(
                            "text before any section: {:?}",
                            t.chars().take(60).collect::<String>()
                        ))
                    }
                },
            }
        }
        if let Some(ca) = &held.ca {
            certs_der_from_pem(ca).map_err(|e| format!("[ca]: {e}"))?;
        }
        held.ca = held.ca.map(|t| canonical_certs(&t));
        held.cert = held.cert.map(|t| canonical_certs(&t));
        if let Some(k) = held.key.take() {
            held.key = Some(public_pem(&k).map_err(|e| format!("[key]: {e}"))?);
        }
        if let Some(n) = names {
            let mut files = Vec::new();
            for name in n.lines() {
                if name.contains('/') || name == "." || name == ".." {
                    return Err(format!("[files]: {name:?} is not a file name"));
                }
                files.push(name.to_string());
            }
            files.sort();
            held.files = Some(files);
        }
        Ok(held)
    }

    /// Writes the set into `dir` under the shim's file names (the suite's
    /// picture of the device, which the judge reads), removing what was
    /// there.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        // Files the device listed beyond the set stand as empty files.
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                std::fs::remove_file(e.path())?;
            }
        }
        for name in self.files.iter().flatten() {
            std::fs::write(dir.join(name), b"")?;
        }
        for (name, text) in [
            ("ca.pem", &self.ca),
            ("cert.pem", &self.cert),
            ("key.pem", &self.key),
        ] {
            let p = dir.join(name);
            match text {
                Some(t) => crate::fsutil::write_atomic(&p, t.as_bytes(), 0o600)?,
                None => match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                },
            }
        }
        Ok(())
    }
}

/// A key's public part as `PUBLIC KEY` PEM, from a public or private key,
/// in one encoding whichever was given.
fn public_pem(pem: &str) -> Result<String, String> {
    if let Ok(k) = DevicePublicKey::from_pem(pem) {
        return Ok(pem_encode("PUBLIC KEY", k.spki_der()));
    }
    rcgen::KeyPair::from_pem(pem)
        .map(|k| {
            pem_encode(
                "PUBLIC KEY",
                &rcgen::PublicKeyData::subject_public_key_info(&k),
            )
        })
        .map_err(|_| "neither a public nor a private key in PEM".to_string())
}

/// Certificates re-encoded in one PEM form (so that a set read over a
/// serial line compares equal to the files it came from); text that does
/// not parse is kept as it is, for the judge to refuse.
fn canonical_certs(text: &str) -> String {
    match certs_der_from_pem(text) {
        Ok(ders) if !ders.is_empty() => ders.iter().map(|d| pem_encode("CERTIFICATE", d)).collect(),
        _ => text.to_string(),
    }
}

/// How a device run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The device went quiet for the quiet period after its last exchange.
    Quiet {
        /// When its last exchange was, from the reset.
        last_ms: u64,
    },
    /// Nothing reached any server of the case within the boot time.
    NoContact,
    /// An exchange was still in progress at the case limit.
    Limit,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Quiet { last_ms } => {
                write!(f, "quiet after its last exchange at +{last_ms} ms")
            }
            Ending::NoContact => write!(f, "no contact with any server of the case"),
            Ending::Limit => write!(f, "an exchange still in progress at the case limit"),
        }
    }
}

/// Runs the reset: the hook (its words, exit code and output as a shim
/// run's) or the operator prompt. A hook that fails or an operator who does
/// not answer means the suite cannot test.
pub async fn reset(
    how: &Reset,
    v: &ShimValues,
    case_id: &str,
) -> Result<Option<ShimRun>, SetupError> {
    match how {
        Reset::Hook(t) => {
            let run = run_hook(t, v, "--reset-cmd", &format!(" before {case_id}")).await?;
            Ok(Some(run))
        }
        Reset::Operator => {
            eprintln!(
                "\n▶ {case_id}: reset the device now so that it provisions as device {}{} — then press Enter (within {} s)",
                v.device_id,
                if v.url.is_empty() {
                    " by DNS-SD discovery".to_string()
                } else {
                    format!(" against {}", v.url)
                },
                Reset::OPERATOR_BOUND.as_secs()
            );
            let line = tokio::task::spawn_blocking(|| {
                let mut s = String::new();
                std::io::stdin().read_line(&mut s).map(|n| (n, s))
            });
            match tokio::time::timeout(Reset::OPERATOR_BOUND, line).await {
                Ok(Ok(Ok((n, _)))) if n > 0 => Ok(None),
                Ok(_) => Err(SetupError(
                    "the operator prompt's input ended: nobody can reset the device".into(),
                )),
                Err(_) => Err(SetupError(format!(
                    "nobody answered the operator prompt within {} s",
                    Reset::OPERATOR_BOUND.as_secs()
                ))),
            }
        }
    }
}

/// What the servers of a case have seen so far: a count that grows with
/// every connection, handshake and request, and the exchanges in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    /// Grows with everything the device does.
    pub seen: u64,
    /// Exchanges in progress now.
    pub busy: u32,
}

/// Watches `activity` until the device is done: quiet for `quiet` after
/// its last exchange with nothing in progress, silent for `boot` after the
/// reset, or the case `limit`. Polls every 50 ms (bounded by `limit`).
pub async fn watch(
    mut activity: impl FnMut() -> Activity,
    quiet: Duration,
    boot: Duration,
    limit: Duration,
) -> Ending {
    let started = Instant::now();
    let first = activity();
    let (mut last, mut last_at) = (first, started);
    let mut contacted = first.seen > 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = activity();
        if now.seen != last.seen || now.busy > 0 {
            last_at = Instant::now();
            contacted |= now.seen > 0;
        }
        last = now;
        let elapsed = started.elapsed();
        if !contacted && elapsed >= boot.min(limit) {
            return Ending::NoContact;
        }
        if contacted && last.busy == 0 && last_at.elapsed() >= quiet {
            return Ending::Quiet {
                last_ms: last_at.duration_since(started).as_millis() as u64,
            };
        }
        if elapsed >= limit {
            return if last.busy > 0 || last_at.elapsed() < quiet {
                Ending::Limit
            } else {
                Ending::Quiet {
                    last_ms: last_at.duration_since(started).as_millis() as u64,
                }
            };
        }
    }
}

/// Runs a hook (`flag` names it); anything but exit 0 within
/// [`HOOK_BOUND`] means the suite cannot test.
async fn run_hook(
    t: &ClientTarget,
    v: &ShimValues,
    flag: &str,
    when: &str,
) -> Result<ShimRun, SetupError> {
    let run = run_shim(t, v, HOOK_BOUND).await.map_err(SetupError)?;
    if run.code == Some(0) {
        return Ok(run);
    }
    Err(SetupError(format!(
        "{flag} {}{when}{}; nothing was judged",
        match run.code {
            Some(c) => format!("exited {c}"),
            None => format!("did not end within {} s", HOOK_BOUND.as_secs()),
        },
        run.last_said()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default()
    )))
}

/// Runs `--state-cmd` and parses what it printed.
pub async fn state(t: &ClientTarget, v: &ShimValues) -> Result<(Held, ShimRun), SetupError> {
    let run = run_hook(t, v, "--state-cmd", "").await?;
    if run.stdout_tail.starts_with("[…") {
        return Err(SetupError(
            "--state-cmd printed more than 4 KiB: print the CA, the certificate and the public key only".into(),
        ));
    }
    let held = Held::parse(&run.stdout_tail)
        .map_err(|e| SetupError(format!("--state-cmd printed {e}")))?;
    Ok((held, run))
}

/// Whether any answer of the case's servers may have carried a
/// certificate to the device.
fn cert_reached(reqs: &[super::Recorded]) -> bool {
    reqs.iter().any(|r| r.cert_sent)
}

impl super::Case<'_> {
    /// What every server of the case has seen so far.
    fn activity(&self) -> Activity {
        let mut a = Activity::default();
        for s in [&self.primary, &self.second].into_iter().flatten() {
            let c = s.tls_counts();
            a.seen += u64::from(c.connections)
                + u64::from(c.hellos)
                + u64::from(c.plaintext_bytes)
                + u64::from(c.plaintext_port_hellos)
                + s.requests().len() as u64;
            a.busy += c.busy;
        }
        a
    }

    /// One run of a device on the network: the set the case gives it is
    /// its starting state, the reset starts it, the case ends when it is
    /// done, and `--state-cmd` (when given) says what it holds. The run is
    /// returned in the shim's terms for the judge: exit 0 when the device
    /// holds a new set, 1 when it does not, none when that is unknown.
    pub(super) async fn run_remote_device(
        &mut self,
        st: &super::Step,
        dev: &RemoteDevice,
        v: &ShimValues,
    ) -> Result<ShimRun, super::StepError> {
        use super::StepError;
        if let Some(f) = st
            .feature
            .as_deref()
            .and_then(crate::check::features::feature)
        {
            if f.optional && !self.caps.contains(f.name) {
                return Err(StepError::Skip(format!(
                    "the device is not declared with the optional feature {} (--capabilities {})",
                    f.name, f.name
                )));
            }
        }
        let held_dir = self.judged_dir();
        let given = Held::from_dir(self.dir.path()).map_err(StepError::Fail)?;
        std::fs::create_dir_all(&held_dir)
            .and_then(|_| given.write_to(&held_dir))
            .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
        self.before = super::snapshot(&held_dir);
        self.before_all = super::snapshot_all(&held_dir);
        let started = Instant::now();
        let hook = reset(&dev.reset, v, &self.case_id)
            .await
            .map_err(|e| StepError::Setup(e.0))?;
        // A device asked to wait retries after retrySec: the quiet period
        // outlasts a short one, so a retry is not taken for the end.
        let retry = Some(self.waiting_retry_sec)
            .filter(|s| self.waiting_times > 0 && *s <= 30)
            .map_or(Duration::ZERO, |s| Duration::from_millis(s * 1000 + 1500));
        let quiet = dev.quiet.max(retry);
        let ending = watch(|| self.activity(), quiet, dev.boot, self.timeout).await;
        for s in [&self.primary, &self.second].into_iter().flatten() {
            s.settle(Duration::from_secs(3)).await;
        }
        let reqs: Vec<super::Recorded> = self.all_requests().into_iter().map(|(_, r)| r).collect();
        let reached = cert_reached(&reqs);
        let state = match &dev.state {
            Some(t) => Some(state(t, v).await.map_err(|e| StepError::Setup(e.0))?),
            None => None,
        };
        let provreqs = self.provreqs().len();
        let after_waiting = self.waiting_times > 0
            && provreqs > 0
            && provreqs <= self.waiting_times as usize
            && ending != Ending::Limit;
        let (code, holds) = match &state {
            Some((held, _)) => {
                held.write_to(&held_dir)
                    .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
                let new = held.holds_new_certificate(&given);
                (
                    Some(i32::from(!new)),
                    if held.is_empty() {
                        "it holds nothing".to_string()
                    } else if new {
                        "it holds a new set".into()
                    } else if held.same_set(&given) {
                        "it holds what it was given".into()
                    } else {
                        "it holds a changed set without a new certificate".into()
                    },
                )
            }
            // No certificate reached the device: it cannot hold a new set.
            None if !reached => (Some(1), "no certificate reached it".into()),
            None => (None, "its state is unknown (no --state-cmd)".into()),
        };
        self.undecided = if after_waiting {
            Some(format!(
                "the device went quiet after a Waiting answer and the case ended ({ending}): whether it would ask again later or has given up is not visible on the wire"
            ))
        } else if code.is_none() {
            Some("a certificate reached the device, and whether it kept it is not visible on the wire: give --state-cmd to decide".into())
        } else {
            None
        };
        let hook_said = hook
            .as_ref()
            .map(|h| format!("reset with {} (exit 0)", h.argv.join(" ")))
            .unwrap_or_else(|| "reset by the operator".into());
        self.evidence.push(crate::check::report::Exchange::note(
            self.step_no,
            format!(
                "{hook_said}; the case ended after {} ms: {ending} (quiet period {} ms, boot {} ms, limit {} s); {holds}; file modes and stray files are not visible on a remote device and are not judged",
                started.elapsed().as_millis(),
                quiet.as_millis(),
                dev.boot.as_millis(),
                self.timeout.as_secs()
            )
            .replace(&self.secret, "«secret»"),
        ));
        let (stdout_tail, stderr_tail) = match (&state, &hook) {
            (Some((_, s)), _) => (s.stdout_tail.clone(), s.stderr_tail.clone()),
            (None, Some(h)) => (h.stdout_tail.clone(), h.stderr_tail.clone()),
            (None, None) => (String::new(), String::new()),
        };
        Ok(ShimRun {
            code,
            timed_out: ending == Ending::Limit,
            stderr_tail,
            stdout_tail,
            argv: hook.map(|h| h.argv).unwrap_or_default(),
            ms: started.elapsed().as_millis() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_output_parses_by_section_and_keeps_only_public_keys() {
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = crate::pki::CertAuthority::generate("t", time::OffsetDateTime::now_utc()).unwrap();
        let text = format!(
            "[ca]\n{}[cert]\n[key]\n{}",
            ca.cert_pem(),
            key.serialize_pem()
        );
        let h = Held::parse(&text).unwrap();
        assert_eq!(h.ca.as_deref().map(str::trim), Some(ca.cert_pem().trim()));
        assert_eq!(h.cert, None);
        assert_eq!(
            h.key.as_deref().map(str::trim),
            Some(key.public_key_pem().trim())
        );
        assert!(Held::parse("").unwrap().is_empty());
        assert!(Held::parse("[ca]\n[cert]\n[key]\n").unwrap().is_empty());
        assert!(Held::parse("[flash]\n").unwrap_err().contains("[flash]"));
        let f = Held::parse("[files]\ncert.pem\n.cert.tmp\n").unwrap();
        assert_eq!(
            f.files,
            Some(vec![".cert.tmp".to_string(), "cert.pem".to_string()])
        );
        assert!(Held::parse("[files]\n../x\n").is_err());
        // A state printed without [files] holding the set the device was
        // given (read with its file names) holds no new certificate.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        let given = Held::from_dir(dir.path()).unwrap();
        let printed = Held::parse(&format!(
            "[ca]\n{0}[cert]\n{0}[key]\n{1}",
            ca.cert_pem(),
            key.public_key_pem()
        ))
        .unwrap();
        assert!(given.files.is_some() && printed.files.is_none());
        assert!(printed.same_set(&given));
        assert!(!printed.holds_new_certificate(&given));
        let other = Held {
            cert: Some("another".into()),
            ..printed.clone()
        };
        assert!(other.holds_new_certificate(&given));
        assert!(!other.same_set(&given));
        assert!(Held::parse("hello\n")
            .unwrap_err()
            .contains("before any section"));
        assert!(Held::parse("[key]\nnot a key\n").is_err());
    }

    #[tokio::test]
    async fn watching_ends_on_quiet_on_silence_and_at_the_limit() {
        let ms = Duration::from_millis;
        // Never contacted: ends after the boot time.
        let e = watch(Activity::default, ms(200), ms(300), ms(2000)).await;
        assert_eq!(e, Ending::NoContact);
        // Contacted once, then quiet.
        let e = watch(|| Activity { seen: 3, busy: 0 }, ms(200), ms(300), ms(2000)).await;
        assert!(matches!(e, Ending::Quiet { .. }), "{e:?}");
        // Always busy: the limit.
        let e = watch(|| Activity { seen: 1, busy: 1 }, ms(200), ms(300), ms(600)).await;
        assert_eq!(e, Ending::Limit);
    }
}

//! The client shim (SUITE.md): a command template run as a real process
//! with the case's values substituted and exported as `IDPROV_*`.

use crate::check::SetupError;
use std::time::{Duration, Instant};

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
    /// The case id (`{case}`, `IDPROV_CASE`; for the device mode's hooks).
    pub case: String,
}

/// The result of one shim run.
#[derive(Debug, Clone)]
pub struct ShimRun {
    /// Exit code (`None`: killed or timed out).
    pub code: Option<i32>,
    /// Whether the run hit the time limit.
    pub timed_out: bool,
    /// The end of stderr: at most 4 KiB, after a marker
    /// saying how much was cut before them.
    pub stderr_tail: String,
    /// The end of stdout, kept the same way.
    pub stdout_tail: String,
    /// The command line run.
    pub argv: Vec<String>,
    /// Duration.
    pub ms: u64,
}

/// Bytes of each output stream kept per device run (the end of it): one
/// runaway line must not make a report megabytes long.
pub(super) const KEPT_OUTPUT: usize = 4096;

/// How long output may still arrive after the device's process group was
/// killed (a process that left the group keeps its pipe open).
const DRAIN: Duration = Duration::from_secs(2);

/// Reads a stream to its end, keeping its last `keep` bytes and the count.
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(mut r: R, keep: usize) -> (Vec<u8>, u64) {
    use tokio::io::AsyncReadExt;
    let (mut kept, mut total, mut buf) = (Vec::new(), 0u64, vec![0u8; 8192]);
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n as u64;
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * keep {
                    kept.drain(..kept.len() - keep);
                }
            }
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    (kept, total)
}

/// The kept end of a stream as text, after a marker when some was cut.
fn tail_text(kept: &[u8], total: u64) -> String {
    let text = String::from_utf8_lossy(kept);
    let cut = total.saturating_sub(kept.len() as u64);
    if cut == 0 {
        text.into_owned()
    } else {
        format!(
            "[… {cut} bytes cut; the last {} kept …]\n{text}",
            kept.len()
        )
    }
}

/// Kills every process left in the device's process group (a shim that
/// started its device without `exec` leaves it behind when it exits).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        // ESRCH (nothing left) is the usual answer.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

impl ShimRun {
    /// The last line the shim printed on stderr that says anything.
    pub fn last_said(&self) -> Option<&str> {
        self.stderr_tail
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
    }
}

/// Runs the shim once: words substituted before execution, no shell. The
/// shim leads its own process group, which is killed when the shim exits
/// or the time limit ends, whichever comes first.
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
            .replace("{case}", &v.case)
    };
    let argv: Vec<String> = target.words.iter().map(|w| sub(w)).collect();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, val) in [
        ("IDPROV_URL", &v.url),
        ("IDPROV_DEVICE_ID", &v.device_id),
        ("IDPROV_SECRET", &v.secret),
        ("IDPROV_DIR", &v.dir),
        ("IDPROV_CA", &v.ca),
        ("IDPROV_CASE", &v.case),
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
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", argv[0]))?;
    let pid = child.id();
    let out = child
        .stdout
        .take()
        .map(|r| tokio::spawn(read_tail(r, KEPT_OUTPUT)));
    let err = child
        .stderr
        .take()
        .map(|r| tokio::spawn(read_tail(r, KEPT_OUTPUT)));
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    kill_group(pid);
    let (code, timed_out) = match waited {
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(e)) => return Err(format!("waiting for the shim: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            (None, true)
        }
    };
    let collect = |h: Option<tokio::task::JoinHandle<(Vec<u8>, u64)>>| async move {
        let Some(mut h) = h else {
            return String::new();
        };
        match tokio::time::timeout(DRAIN, &mut h).await {
            Ok(Ok((kept, total))) => tail_text(&kept, total),
            _ => {
                h.abort();
                "[output still open after the device's process group was killed]".into()
            }
        }
    };
    let (stdout_tail, stderr_tail) = tokio::join!(collect(out), collect(err));
    Ok(ShimRun {
        code,
        timed_out,
        stderr_tail,
        stdout_tail,
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
        case: String::new(),
    };
    let r = run_shim(target, &v, timeout).await.map_err(SetupError)?;
    if r.code == Some(EXIT_UNIMPLEMENTED) {
        Ok(())
    } else if matches!(r.code, Some(126 | 127)) {
        Err(SetupError(format!(
            "the shim could not be started: it exited {}{}; check the command in --cmd",
            r.code.unwrap_or_default(),
            r.last_said().map(|l| format!(" ({l})")).unwrap_or_default()
        )))
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

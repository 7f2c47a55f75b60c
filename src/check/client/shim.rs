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
    } else if matches!(r.code, Some(126 | 127)) {
        let said = r.stderr_tail.lines().rev().find(|l| !l.trim().is_empty());
        Err(SetupError(format!(
            "the shim could not be started: it exited {}{}; check the command in --cmd",
            r.code.unwrap_or_default(),
            said.map(|l| format!(" ({})", l.trim())).unwrap_or_default()
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

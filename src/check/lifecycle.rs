//! Restarting and crashing the server under test (issue 26, in the manner
//! of Jepsen's hooks): commands the user gives (`--restart-cmd`, and
//! `--kill-cmd` with `--start-cmd`), or, for the server the suite runs
//! in-process, a stop (clean, or dropping everything in flight as a kill
//! does) and a start on the same port and data directory. The restart cases
//! (`requires = ["restart"]`) and the crash cases (`requires = ["crash"]`)
//! run with them; after a start the suite polls the directory until it
//! answers, within [`READY_BOUND`].

use crate::server::{RunningServer, ServerConfig, StartError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long the suite waits for a restarted server's directory to answer.
pub const READY_BOUND: Duration = Duration::from_secs(60);

/// How long the suite tries to start the in-process server again (its
/// port and data directory may take a moment to be released).
pub const START_BOUND: Duration = Duration::from_secs(30);

/// How long a hook command may run.
pub const HOOK_BOUND: Duration = Duration::from_secs(120);

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a run can do to the server under test's process. Every operation
/// returns once it was done (a start: once it was begun); `Ok` carries what
/// the hook said, `Err` why it failed.
pub trait Restarter: Send + Sync {
    /// Whether [`Restarter::restart`] is available (capability `restart`).
    fn can_restart(&self) -> bool {
        true
    }

    /// Stops the server and starts it again.
    fn restart(&self) -> BoxFuture<'_, Result<String, String>>;

    /// Whether [`Restarter::kill`] and [`Restarter::start`] are available
    /// (capability `crash`).
    fn can_crash(&self) -> bool {
        false
    }

    /// Kills the server as a crash would (SIGKILL: nothing is drained).
    fn kill(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(std::future::ready(Err(CRASH_NEEDS.to_string())))
    }

    /// Starts the server after a kill.
    fn start(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(std::future::ready(Err(CRASH_NEEDS.to_string())))
    }

    /// What a report calls it.
    fn describe(&self) -> String;
}

/// What a run without a way to crash the server lacks.
const CRASH_NEEDS: &str = "needs --kill-cmd and --start-cmd";

/// Restarts and crashes through commands (shell words, as the shim's).
pub struct HookRestarter {
    restart: Option<Vec<String>>,
    kill: Option<Vec<String>>,
    start: Option<Vec<String>>,
}

impl HookRestarter {
    /// The hooks given: `--restart-cmd`, `--kill-cmd`, `--start-cmd`
    /// (the last two together or not at all), each parsed into shell words;
    /// an empty or badly quoted command is an error in the user's terms.
    /// `None` when none is given.
    pub fn from_hooks(
        restart: Option<&str>,
        kill: Option<&str>,
        start: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let words = |flag: &str, cmd: Option<&str>| -> Result<Option<Vec<String>>, String> {
            let Some(cmd) = cmd else { return Ok(None) };
            let argv = shell_words::split(cmd).map_err(|e| format!("{flag}: {e}"))?;
            if argv.is_empty() {
                return Err(format!("{flag} is empty"));
            }
            Ok(Some(argv))
        };
        let hooks = HookRestarter {
            restart: words("--restart-cmd", restart)?,
            kill: words("--kill-cmd", kill)?,
            start: words("--start-cmd", start)?,
        };
        match (&hooks.kill, &hooks.start) {
            (Some(_), None) => return Err(
                "--kill-cmd needs --start-cmd (how the suite starts the server after killing it)"
                    .into(),
            ),
            (None, Some(_)) => {
                return Err(
                    "--start-cmd needs --kill-cmd (it starts the server after the suite killed it)"
                        .into(),
                )
            }
            _ => {}
        }
        Ok((hooks.restart.is_some() || hooks.kill.is_some()).then_some(hooks))
    }
}

/// Runs a hook: at most [`HOOK_BOUND`], no stdin; `Ok` with its last output
/// when it exits 0.
async fn run_hook(name: &str, argv: &[String]) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(HOOK_BOUND, cmd.output())
        .await
        .map_err(|_| {
            format!(
                "the {name} hook did not finish within {} s",
                HOOK_BOUND.as_secs()
            )
        })?
        .map_err(|e| format!("the {name} hook could not start: {e}"))?;
    let said = tail(&out.stdout, &out.stderr);
    if out.status.success() {
        Ok(said)
    } else {
        Err(format!("the {name} hook {}: {said}", out.status))
    }
}

impl Restarter for HookRestarter {
    fn can_restart(&self) -> bool {
        self.restart.is_some()
    }

    fn restart(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            match &self.restart {
                Some(argv) => run_hook("restart", argv).await,
                None => Err("needs --restart-cmd".into()),
            }
        })
    }

    fn can_crash(&self) -> bool {
        self.kill.is_some() && self.start.is_some()
    }

    fn kill(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            match &self.kill {
                Some(argv) => run_hook("kill", argv).await,
                None => Err(CRASH_NEEDS.into()),
            }
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            match &self.start {
                Some(argv) => run_hook("start", argv).await,
                None => Err(CRASH_NEEDS.into()),
            }
        })
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (flag, argv) in [
            ("--restart-cmd", &self.restart),
            ("--kill-cmd", &self.kill),
            ("--start-cmd", &self.start),
        ] {
            if let Some(a) = argv {
                parts.push(format!("{flag} {}", shell_words::join(a)));
            }
        }
        parts.join(", ")
    }
}

/// The last 400 characters of what a hook printed.
fn tail(stdout: &[u8], stderr: &[u8]) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let text = text.trim();
    let skip = text.chars().count().saturating_sub(400);
    let t: String = text.chars().skip(skip).collect();
    if t.is_empty() {
        "(nothing)".into()
    } else {
        t.replace('\n', " ⏎ ")
    }
}

/// How a server is started: the reference's `server::start`, or the
/// suite's deliberately broken server with its faults.
pub type StartFn = Arc<
    dyn Fn(ServerConfig) -> BoxFuture<'static, Result<RunningServer, StartError>> + Send + Sync,
>;

/// A server the suite runs in its own process, restarted by stopping it
/// and starting it again on the same port and data directory (what a
/// process restart keeps: the disk; what it loses: memory), and crashed by
/// [`RunningServer::kill`], which drops every request in flight.
pub struct InProcessServer {
    current: tokio::sync::Mutex<Option<RunningServer>>,
    config: ServerConfig,
    start: StartFn,
}

impl InProcessServer {
    /// Starts the server with `start` and `config`.
    pub async fn start(config: ServerConfig, start: StartFn) -> Result<Arc<Self>, StartError> {
        let srv = start(config.clone()).await?;
        let config = ServerConfig {
            listen: srv.addr,
            ..config
        };
        Ok(Arc::new(InProcessServer {
            current: tokio::sync::Mutex::new(Some(srv)),
            config,
            start,
        }))
    }

    /// The reference server, in-process.
    pub async fn reference(config: ServerConfig) -> Result<Arc<Self>, StartError> {
        Self::start(
            config,
            Arc::new(|c| Box::pin(crate::server::start(c)) as BoxFuture<'static, _>),
        )
        .await
    }

    /// The check target for this server, able to restart it.
    pub async fn target(self: &Arc<Self>) -> Result<super::ServerTarget, super::SetupError> {
        let guard = self.current.lock().await;
        let Some(srv) = guard.as_ref() else {
            return Err(super::SetupError("the server is stopped".into()));
        };
        let mut t = super::embedded_target(srv)?;
        t.restarter = Some(self.clone());
        Ok(t)
    }

    /// Stops the server for good.
    pub async fn shutdown(&self) {
        if let Some(srv) = self.current.lock().await.take() {
            srv.shutdown().await;
        }
    }
}

impl InProcessServer {
    /// Starts the server again, trying every 100 ms for at most
    /// [`START_BOUND`] while the start fails.
    async fn start_again(&self) -> Result<RunningServer, String> {
        let began = std::time::Instant::now();
        loop {
            match (self.start)(self.config.clone()).await {
                Ok(srv) => return Ok(srv),
                Err(e) if began.elapsed() >= START_BOUND => {
                    return Err(format!(
                        "the server did not start again within {} s: {e}",
                        START_BOUND.as_secs()
                    ))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Restarter for InProcessServer {
    fn restart(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if let Some(srv) = current.take() {
                srv.shutdown().await;
            }
            let srv = self.start_again().await?;
            let said = format!("stopped and started again on {}", srv.addr);
            *current = Some(srv);
            Ok(said)
        })
    }

    fn can_crash(&self) -> bool {
        true
    }

    fn kill(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            match self.current.lock().await.take() {
                Some(srv) => {
                    srv.kill().await;
                    Ok("killed: every request in flight dropped unanswered".into())
                }
                None => Err("the server was not running".into()),
            }
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if current.is_some() {
                return Err("the server is already running".into());
            }
            let srv = self.start_again().await?;
            let said = format!("started again on {}", srv.addr);
            *current = Some(srv);
            Ok(said)
        })
    }

    fn describe(&self) -> String {
        "the in-process server, stopped (or killed) and started again".into()
    }
}

//! Restarting the server under test (issue 26, in the manner of Jepsen's
//! hooks): a command the user gives (`--restart-cmd`), or, for the server
//! the suite runs in-process, a stop and a start on the same port and data
//! directory. The restart cases (`requires = ["restart"]`) run with one; the
//! suite then polls the directory until it answers, within
//! [`READY_BOUND`].

use crate::server::{RunningServer, ServerConfig, StartError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long the suite waits for a restarted server's directory to answer.
pub const READY_BOUND: Duration = Duration::from_secs(60);

/// How long a hook command may run.
pub const HOOK_BOUND: Duration = Duration::from_secs(120);

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Restarts the server under test.
pub trait Restarter: Send + Sync {
    /// Stops the server and starts it again (returning once the start was
    /// begun); `Ok` carries what the hook said, `Err` why it failed.
    fn restart(&self) -> BoxFuture<'_, Result<String, String>>;

    /// What a report calls it.
    fn describe(&self) -> String;
}

/// A restart through a command (shell words, as the shim's).
pub struct HookRestarter {
    argv: Vec<String>,
}

impl HookRestarter {
    /// Parses `cmd` into words; an empty or badly quoted command is an
    /// error in the user's terms.
    pub fn parse(cmd: &str) -> Result<Self, String> {
        let argv = shell_words::split(cmd).map_err(|e| format!("--restart-cmd: {e}"))?;
        if argv.is_empty() {
            return Err("--restart-cmd is empty".into());
        }
        Ok(HookRestarter { argv })
    }
}

impl Restarter for HookRestarter {
    fn restart(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let mut cmd = tokio::process::Command::new(&self.argv[0]);
            cmd.args(&self.argv[1..])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            let out = tokio::time::timeout(HOOK_BOUND, cmd.output())
                .await
                .map_err(|_| {
                    format!(
                        "the restart hook did not finish within {} s",
                        HOOK_BOUND.as_secs()
                    )
                })?
                .map_err(|e| format!("the restart hook could not start: {e}"))?;
            let said = tail(&out.stdout, &out.stderr);
            if out.status.success() {
                Ok(said)
            } else {
                Err(format!("the restart hook {}: {said}", out.status))
            }
        })
    }

    fn describe(&self) -> String {
        format!("--restart-cmd {}", shell_words::join(&self.argv))
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
/// process restart keeps: the disk; what it loses: memory).
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

impl Restarter for InProcessServer {
    fn restart(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if let Some(srv) = current.take() {
                srv.shutdown().await;
            }
            let srv = (self.start)(self.config.clone())
                .await
                .map_err(|e| format!("the server did not start again: {e}"))?;
            let said = format!("stopped and started again on {}", srv.addr);
            *current = Some(srv);
            Ok(said)
        })
    }

    fn describe(&self) -> String {
        "the in-process server, stopped and started again".into()
    }
}

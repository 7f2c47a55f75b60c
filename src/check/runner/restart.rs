//! Restarting the server under test (`restart` steps, issue 26): through
//! the target's restarter, then polling its directory until it answers.

use super::*;
use crate::check::lifecycle::READY_BOUND;

/// How often a restarted server's directory is asked.
const POLL_EVERY: Duration = Duration::from_millis(100);

impl Case<'_> {
    /// Restarts the server and waits (at most [`READY_BOUND`]) until its
    /// directory answers 200. A server that does not come back fails the
    /// case with what the hook said; a run without a restarter skips it,
    /// saying what would run it.
    pub(super) async fn do_restart(&mut self) -> StepResult {
        let Some(restarter) = self
            .ctx
            .target
            .restarter
            .clone()
            .filter(|r| r.can_restart())
        else {
            return Err(StepError::Skip(format!(
                "needs --restart-cmd (a command that restarts the server; the suite then polls its directory for at most {} s)",
                READY_BOUND.as_secs()
            )));
        };
        let started = Instant::now();
        let said = restarter
            .restart()
            .await
            .map_err(|e| StepError::Fail(format!("restart ({}): {e}", restarter.describe())))?;
        match self.wait_ready(started).await {
            Ok(ms) => {
                self.evidence.push(Exchange::note(
                    self.step_no,
                    format!(
                        "restarted ({}; it said: {said}); the directory answered 200 after {ms} ms",
                        restarter.describe(),
                    ),
                ));
                Ok(None)
            }
            Err(e) => fail(format!("{e}; the restart hook said: {said}")),
        }
    }

    /// Asks the directory every [`POLL_EVERY`] until it answers 200, for at
    /// most [`READY_BOUND`] from `started`; the milliseconds it took, or
    /// why it did not come back.
    pub(super) async fn wait_ready(&mut self, started: Instant) -> Result<u128, String> {
        let cfg = self.config("nobody", false).map_err(|e| e.into_message())?;
        let url = self.ctx.target.url.clone();
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_BOUND {
            match net::request(&url, Method::GET, None, cfg.clone(), POLL_EVERY * 10).await {
                Ok(r) if r.status == 200 => return Ok(started.elapsed().as_millis()),
                Ok(r) => last = format!("HTTP {}", r.status),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        Err(format!(
            "the server did not answer its directory within {} s (last: {last})",
            READY_BOUND.as_secs()
        ))
    }
}

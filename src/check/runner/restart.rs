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
        let Some(restarter) = self.ctx.target.restarter.clone() else {
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
        let cfg = self
            .config("nobody", false)
            .map_err(|e| StepError::Fail(e.into_message()))?;
        let url = self.ctx.target.url.clone();
        let mut asked = 0u32;
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_BOUND {
            asked += 1;
            match net::request(&url, Method::GET, None, cfg.clone(), POLL_EVERY * 10).await {
                Ok(r) if r.status == 200 => {
                    self.evidence.push(Exchange::note(
                        self.step_no,
                        format!(
                            "restarted ({}; it said: {said}); the directory answered 200 after {} ms ({asked} request(s))",
                            restarter.describe(),
                            started.elapsed().as_millis()
                        ),
                    ));
                    return Ok(None);
                }
                Ok(r) => last = format!("HTTP {}", r.status),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        fail(format!(
            "the server did not answer its directory within {} s of the restart (last: {last}); the restart hook said: {said}",
            READY_BOUND.as_secs()
        ))
    }
}

//! Crash under load (`crash-under-load` steps, issue 26, after Jepsen):
//! devices provision at once, the server is killed at a seeded moment and
//! started again, and the history of what each device was told is checked
//! against what the server reports afterwards.
//!
//! Every operation ends in one of three states: **ok** (an Approved answer
//! arrived), **fail** (a definite answer that issues nothing: HTTP 200 with
//! Waiting or Rejected, or a 4xx) or **indeterminate** (no answer, or a
//! 5xx: the server may or may not have acted). An ok device must be
//! reported with exactly the certificate it was given; an indeterminate one
//! may be reported with none or with a sound certificate for its own key; a
//! failed one with none. A replay of an ok request is not Approved
//! (`oob.one-time`), and every certificate joins the run's serial ledger,
//! which spans the rounds and their restarts.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Requests in flight at once.
pub(super) const CRASH_CONCURRENCY: usize = 8;

/// What became of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpState {
    /// Approved.
    Ok,
    /// A definite answer that issues nothing.
    Fail,
    /// No answer, or one that does not say whether the server acted.
    Indeterminate,
    /// Not sent: the server had been killed before its turn.
    NotSent,
}

impl OpState {
    fn name(self) -> &'static str {
        match self {
            OpState::Ok => "ok",
            OpState::Fail => "fail",
            OpState::Indeterminate => "indeterminate",
            OpState::NotSent => "not sent",
        }
    }
}

/// One provisioning of the history.
struct Op {
    device: String,
    body: Vec<u8>,
    /// Milliseconds since the round began: sent, and answered (or given
    /// up on).
    sent_ms: u128,
    done_ms: u128,
    state: OpState,
    /// The certificate an ok answer carried (PEM).
    cert: Option<String>,
    detail: String,
}

/// What a provisioning task brings back.
type Outcome = (usize, u128, u128, Option<Result<HttpsResponse, String>>);

impl Case<'_> {
    /// Rounds of: post `count` secrets; provision them
    /// [`CRASH_CONCURRENCY`] at a time; kill the server after a seeded
    /// number of answers plus a seeded delay; start it; judge the history.
    pub(super) async fn do_crash_under_load(&mut self, st: &Step) -> StepResult {
        let Some(life) = self.ctx.target.restarter.clone().filter(|r| r.can_crash()) else {
            return Err(StepError::Skip(
                "needs --kill-cmd and --start-cmd (commands that kill the server, as SIGKILL does, and start it again)".into(),
            ));
        };
        let n = st.count.unwrap_or(24).clamp(4, 256) as usize;
        let rounds = st.rounds.unwrap_or(3).clamp(1, 8) as usize;
        for round in 1..=rounds {
            let kill_after = self.rng.gen_range(n / 4..=(3 * n) / 4).max(1);
            let delay_ms = self.rng.gen_range(0..10u64);
            let ops = self
                .crash_round(round, n, kill_after, delay_ms, &*life)
                .await?;
            self.judge_history(round, ops).await?;
        }
        Ok(None)
    }

    /// One round up to the server answering again: the history, each
    /// provisioning's state decided.
    async fn crash_round(
        &mut self,
        round: usize,
        n: usize,
        kill_after: usize,
        delay_ms: u64,
        life: &dyn crate::check::lifecycle::Restarter,
    ) -> Result<Vec<Op>, StepError> {
        let oob = self.oob_url().await;
        let url = self.provreq_url().await;
        let admin = self.config("admin", false)?;
        let anon = self.config("nobody", false)?;
        let timeout = self.ctx.request_timeout;
        let mut ops = Vec::new();
        for i in 0..n {
            let sym = format!("k{round}d{i}");
            let (post, body) = self.device_pair(&sym)?;
            let r = net::request(&oob, Method::POST, Some(post), admin.clone(), timeout)
                .await
                .map_err(|e| StepError::Fail(format!("round {round}: posting secret {i}: {e}")))?;
            if r.status != 200 {
                return fail(format!(
                    "round {round}: posting secret {i}: HTTP {}",
                    r.status
                ));
            }
            ops.push(Op {
                device: self.device(&sym),
                body,
                sent_ms: 0,
                done_ms: 0,
                state: OpState::NotSent,
                cert: None,
                detail: String::new(),
            });
        }
        let began = Instant::now();
        let killed = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(tokio::sync::Semaphore::new(CRASH_CONCURRENCY));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
        for (i, op) in ops.iter().enumerate() {
            let (url, cfg, body) = (url.clone(), anon.clone(), op.body.clone());
            let (killed, gate, tx) = (killed.clone(), gate.clone(), tx.clone());
            tokio::spawn(async move {
                let _turn = gate.acquire_owned().await;
                let sent = began.elapsed().as_millis();
                if killed.load(Ordering::SeqCst) {
                    let _ = tx.send((i, sent, sent, None));
                    return;
                }
                let r = net::request(&url, Method::POST, Some(body), cfg, timeout)
                    .await
                    .map_err(|e| e.to_string());
                let _ = tx.send((i, sent, began.elapsed().as_millis(), Some(r)));
            });
        }
        drop(tx);
        let mut answered = 0usize;
        let mut kill_note = None;
        let mut outcomes = Vec::new();
        // Every task sends exactly once; each request is bounded by the
        // request timeout, so this loop is bounded too.
        while let Some(o) = rx.recv().await {
            if matches!(&o.3, Some(Ok(_))) {
                answered += 1;
            }
            outcomes.push(o);
            if answered == kill_after && kill_note.is_none() {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                killed.store(true, Ordering::SeqCst);
                let at = began.elapsed().as_millis();
                let said = life.kill().await.map_err(|e| {
                    StepError::Fail(format!("round {round}: kill ({}): {e}", life.describe()))
                })?;
                kill_note = Some(format!("killed at {at} ms ({said})"));
            }
        }
        if kill_note.is_none() {
            // Fewer answers than the kill point: the server is killed once
            // every request has ended, so the round still restarts it.
            let at = began.elapsed().as_millis();
            let said = life.kill().await.map_err(|e| {
                StepError::Fail(format!("round {round}: kill ({}): {e}", life.describe()))
            })?;
            kill_note = Some(format!(
                "only {answered} answer(s) came; killed at {at} ms, after the last request ended ({said})"
            ));
        }
        // The server is started again whatever the answers were: a case
        // that stops here leaves no dead server to the cases after it.
        let mut broke = None;
        for (i, sent, done, r) in outcomes {
            let op = &mut ops[i];
            (op.sent_ms, op.done_ms) = (sent, done);
            match r {
                None => op.detail = "the server had been killed".into(),
                Some(Err(e)) => {
                    op.state = OpState::Indeterminate;
                    op.detail = format!("no answer: {e}");
                }
                Some(Ok(resp)) => {
                    if let Err(e) = self.classify(op, &resp) {
                        broke.get_or_insert(e);
                    }
                }
            }
        }
        let started = Instant::now();
        let said = life.start().await.map_err(|e| {
            StepError::Fail(format!("round {round}: start ({}): {e}", life.describe()))
        })?;
        let ready = self.wait_ready(started).await.map_err(|e| {
            StepError::Fail(format!("round {round}: {e}; the start hook said: {said}"))
        })?;
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "round {round}: {n} devices provisioning {CRASH_CONCURRENCY} at a time; the server was to be killed after answer {kill_after} + {delay_ms} ms (seeded); {}; started again ({said}), the directory answered after {ready} ms",
                kill_note.unwrap_or_default()
            ),
        ));
        match broke {
            Some(e) => Err(e),
            None => Ok(ops),
        }
    }

    /// The state of a provisioning that got an answer; an Approved answer
    /// is judged as any other (the certificate joins the serial ledger).
    fn classify(&self, op: &mut Op, resp: &HttpsResponse) -> Result<(), StepError> {
        if resp.status >= 500 {
            op.state = OpState::Indeterminate;
            op.detail = format!("HTTP {}", resp.status);
            return Ok(());
        }
        if resp.status != 200 {
            op.state = OpState::Fail;
            op.detail = format!("HTTP {}", resp.status);
            return Ok(());
        }
        match self.judge_parallel(resp, &op.device, &op.body) {
            Ok(true) => {
                let v = resp_json(resp).unwrap_or(Value::Null);
                op.state = OpState::Ok;
                op.cert = v["clientCert"].as_str().map(str::to_string);
                op.detail = "Approved".into();
                Ok(())
            }
            Ok(false) => {
                let v = resp_json(resp).unwrap_or(Value::Null);
                op.state = OpState::Fail;
                op.detail = format!("status {}", v["status"].as_str().unwrap_or("(none)"));
                Ok(())
            }
            Err(v) => fail(format!("an answer breaks the profile: {v}")),
        }
    }

    /// Asks status for every device of the round and replays every ok
    /// request; records the history as evidence; fails on the first
    /// operation the server's state does not explain.
    async fn judge_history(&mut self, round: usize, ops: Vec<Op>) -> StepResult {
        let url = self.provreq_url().await;
        let mut lines = Vec::new();
        let mut wrong = Vec::new();
        for op in &ops {
            let status_url = self.status_url(&op.device).await;
            let shown = match self.call(Method::GET, &status_url, None, "admin").await {
                Ok(r) if r.status == 200 => {
                    let v = resp_json(&r).unwrap_or(Value::Null);
                    Ok((
                        v["status"].as_str().unwrap_or("(none)").to_string(),
                        status::shown_cert(&v),
                    ))
                }
                Ok(r) => Err(format!("status: HTTP {}", r.status)),
                Err(e) => Err(format!("status: no answer: {e}")),
            };
            let spki = provision::spki_of_body(&op.body);
            let verdict = match (&shown, op.state) {
                (Err(e), _) => Err(e.clone()),
                (Ok((s, None)), OpState::Ok) => Err(format!(
                    "acknowledged Approved, but after the crash status says {s} with no certificate (decision.issue: persist before answering)"
                )),
                (Ok((_, Some(der))), OpState::Ok) => {
                    let given = op.cert.as_deref().and_then(|p| cert_der_from_pem(p).ok());
                    if given.as_deref() == Some(&der[..]) {
                        Ok("status shows the certificate it was given".to_string())
                    } else {
                        Err("after the crash status shows a certificate other than the one it was given (decision.issue, status.latest)".into())
                    }
                }
                (Ok((s, None)), _) => Ok(format!("status {s}, no certificate")),
                (Ok((_, Some(der))), OpState::Indeterminate) => {
                    match self.check_issued(der, &op.device, spki.as_deref()) {
                        Ok(c) => Ok(format!("status shows a sound certificate (serial {})", c.serial_hex)),
                        Err(v) => Err(format!("status shows a certificate that breaks {}: {}", v.rule, v.what)),
                    }
                }
                (Ok((_, Some(_))), state) => Err(format!(
                    "its request was {} ({}), yet status shows a certificate",
                    state.name(),
                    op.detail
                )),
            };
            let replay = if op.state == OpState::Ok {
                let anon = self.config("nobody", false)?;
                match net::request(
                    &url,
                    Method::POST,
                    Some(op.body.clone()),
                    anon,
                    self.ctx.request_timeout,
                )
                .await
                {
                    Ok(r) => {
                        let s = resp_json(&r)
                            .and_then(|v| v["status"].as_str().map(str::to_string))
                            .unwrap_or_else(|| format!("HTTP {}", r.status));
                        if r.status == 200 && s == "Approved" {
                            Some(Err(
                                "its replayed request was Approved again (oob.one-time)"
                                    .to_string(),
                            ))
                        } else {
                            Some(Ok(format!("replay: {s}")))
                        }
                    }
                    Err(e) => Some(Ok(format!("replay: no answer ({e})"))),
                }
            } else {
                None
            };
            let mut line = format!(
                "{} provision {}–{} ms {}: {}",
                op.device,
                op.sent_ms,
                op.done_ms,
                op.state.name(),
                op.detail
            );
            for part in [Some(verdict), replay].into_iter().flatten() {
                match part {
                    Ok(t) => line.push_str(&format!("; {t}")),
                    Err(t) => {
                        line.push_str(&format!("; WRONG: {t}"));
                        wrong.push(format!("{}: {t}", op.device));
                    }
                }
            }
            lines.push(line);
        }
        let count = |s: OpState| ops.iter().filter(|o| o.state == s).count();
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "round {round} history ({} ok, {} fail, {} indeterminate, {} not sent):\n{}",
                count(OpState::Ok),
                count(OpState::Fail),
                count(OpState::Indeterminate),
                count(OpState::NotSent),
                lines.join("\n")
            ),
        ));
        if let Some(first) = wrong.first() {
            return fail(format!(
                "round {round}: {} device(s) the history does not explain; first: {first}",
                wrong.len()
            ));
        }
        if count(OpState::Ok) == 0 {
            return fail(format!(
                "round {round}: no device was Approved before the kill, so the crash proved nothing (its secrets had been posted)"
            ));
        }
        Ok(None)
    }
}

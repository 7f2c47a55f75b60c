//! Requests sent at once (`together`), judged as a concurrent history:
//! the group passes when some order of its members explains every answer
//! (the step's `outcomes` are the answer tuples of every order the profile
//! allows), as a linearizability checker judges a history.
//!
//! Every member runs as a copy of the case that shares its device names,
//! secrets and credentials, so each is checked as it would be alone (the
//! certificate profile, the serial ledger, signatures); what depends on the
//! order — the tuple of answers, and which certificate is the latest — is
//! judged here once every answer is in.

use super::*;
use crate::check::scenario::{Credential, Expect, Outcome};

/// What one member's request was answered, as the history records it.
struct Answered {
    /// The outcome symbol; `None` when nothing came back.
    outcome: Option<Outcome>,
    /// The TLS handshake or connection failed.
    refused: bool,
    /// Milliseconds from the group's start to the answer.
    ms: u128,
    /// The certificate a status answer shows (DER).
    shown: Option<Vec<u8>>,
}

impl<'a> Case<'a> {
    /// A copy of the case for one member of a group: the same names,
    /// secrets, credentials and endpoints, its own evidence.
    fn member(&mut self) -> Case<'a> {
        Case {
            ctx: self.ctx,
            case_id: self.case_id.clone(),
            rules: self.rules.clone(),
            incidental: std::sync::Mutex::new(Vec::new()),
            posted: self.posted.clone(),
            last_cert: self.last_cert.clone(),
            rng: ChaCha20Rng::seed_from_u64(self.rng.gen()),
            slug: self.slug.clone(),
            exclusive: false,
            devices: self.devices.clone(),
            secrets: self.secrets.clone(),
            saved: self.saved.clone(),
            last_body: self.last_body.clone(),
            last_response: None,
            evidence: Vec::new(),
            configs: self.configs.clone(),
            directory: self.directory.clone(),
            step_no: self.step_no,
            in_group: true,
        }
    }

    /// Resolves every name a member uses (device IDs, secrets, the
    /// credential, the endpoints) before the copies are made, so that all
    /// members mean the same device by the same symbol.
    async fn resolve(&mut self, m: &Step) -> Result<(), StepError> {
        let device = self.device_of(m);
        let secret = match (&m.secret_literal, m.secret.as_deref()) {
            (Some(_), _) | (None, Some("none")) => None,
            (None, s) => Some(s.unwrap_or("s")),
        };
        if let Some(s) = secret {
            self.secret(s);
        }
        let who = m.as_.as_ref().map_or_else(
            || match m.action {
                Some(Action::Provision) => "nobody".to_string(),
                _ => "admin".to_string(),
            },
            ToString::to_string,
        );
        if let Ok(Credential::Device(d) | Credential::ExpiredDevice(d)) = who.parse() {
            self.device(&d);
        }
        self.config(&who, false)?;
        self.provreq_url().await;
        self.oob_url().await;
        self.status_url(&device).await;
        Ok(())
    }

    /// Runs one member's request with the checks every such request gets;
    /// refusals and unexpected answers are left to the group's judgement.
    async fn member_step(&mut self, m: &Step) -> StepResult {
        let m = Step {
            expect: Expect {
                tls_refusal_ok: Some(true),
                ..Expect::default()
            },
            ..m.clone()
        };
        match m.action {
            Some(Action::PostOob) => self.do_post_oob(&m).await,
            Some(Action::Provision) => self.do_provision(&m).await,
            Some(Action::Status) => self.do_status(&m).await,
            _ => fail("a group member must be post-oob, provision or status"),
        }
    }

    /// The answer the member's request got.
    fn answered(&self, action: Option<Action>, ms: u128) -> Answered {
        let Some((code, body)) = &self.last_response else {
            return Answered {
                outcome: None,
                refused: self.evidence.iter().any(|e| e.error.is_some()),
                ms,
                shown: None,
            };
        };
        let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
        let status = v["status"].as_str().unwrap_or("");
        let outcome = match (*code, action, status) {
            (200, Some(Action::PostOob), _) => Outcome::Ok,
            (200, Some(Action::Provision), "Approved") => Outcome::Approved,
            (200, Some(Action::Provision), "Waiting") => Outcome::Waiting,
            (200, Some(Action::Provision), "Rejected") => Outcome::Rejected,
            (200, Some(Action::Status), "Approved") => Outcome::StatusApproved,
            (200, Some(Action::Status), "Waiting") => Outcome::StatusWaiting,
            (c, _, _) => Outcome::Http(c),
        };
        Answered {
            outcome: Some(outcome),
            refused: false,
            ms,
            shown: super::status::shown_cert(&v),
        }
    }

    pub(super) async fn do_together(&mut self, st: &Step) -> StepResult {
        let group = st.group.as_deref().unwrap_or(&[]);
        for m in group {
            self.resolve(m).await?;
        }
        let members: Vec<Case<'a>> = group.iter().map(|_| self.member()).collect();
        let started = Instant::now();
        let runs = members.into_iter().zip(group).map(|(mut c, m)| async move {
            let r = c.member_step(m).await;
            let ms = started.elapsed().as_millis();
            (c, r, ms)
        });
        let done = futures_util::future::join_all(runs).await;
        let mut history = Vec::new();
        let mut issued: HashMap<String, Vec<String>> = HashMap::new();
        let mut first_failure = None;
        for (k, ((mut c, r, ms), m)) in done.into_iter().zip(group).enumerate() {
            let answered = c.answered(m.action, ms);
            if let Err(e) = r {
                first_failure.get_or_insert((k + 1, e));
            }
            // What the member learnt becomes the case's: secrets posted,
            // certificates obtained (any of which may be the latest).
            let device = c.device_of(m);
            if answered.outcome == Some(Outcome::Ok) {
                if let Some(s) = c.posted.get(&device) {
                    self.posted.insert(device.clone(), s.clone());
                }
            }
            if answered.outcome == Some(Outcome::Approved) {
                if let Some(certs) = c.last_cert.get(&device) {
                    issued
                        .entry(device.clone())
                        .or_default()
                        .extend(certs.iter().cloned());
                }
                let sym = m.device.clone().unwrap_or_else(|| "d".into());
                if let Some(s) = c.saved.get(&sym) {
                    self.saved.insert(sym, s.clone());
                }
            }
            self.evidence.append(&mut c.evidence);
            let mut seen = self.incidental.lock().unwrap_or_else(|p| p.into_inner());
            for i in c.incidental.into_inner().unwrap_or_else(|p| p.into_inner()) {
                if !seen
                    .iter()
                    .any(|s| s.rule == i.rule && s.detail == i.detail)
                {
                    seen.push(i);
                }
            }
            drop(seen);
            history.push((describe(m), device, m.action, answered));
        }
        let line: Vec<String> = history
            .iter()
            .enumerate()
            .map(|(k, (what, _, _, a))| {
                let got = match (a.outcome, a.refused) {
                    (Some(o), _) => o.to_string(),
                    (None, true) => "refused".into(),
                    (None, false) => "no answer".into(),
                };
                format!("{}. {what}: {got} at +{} ms", k + 1, a.ms)
            })
            .collect();
        self.evidence.push(Exchange::note(
            self.step_no,
            format!("sent together: {}", line.join("; ")),
        ));
        if let Some((k, e)) = first_failure {
            return Err(match e {
                StepError::Fail(m) => StepError::Fail(format!("group member {k}: {m}")),
                other => other,
            });
        }
        // A status read in the group shows the latest certificate as of
        // some point in the group: one from before it or one it obtained.
        for (what, device, action, a) in &history {
            if *action != Some(Action::Status) || a.outcome != Some(Outcome::StatusApproved) {
                continue;
            }
            let mut could_be = self.last_cert.get(device).cloned().unwrap_or_default();
            could_be.extend(issued.get(device).cloned().unwrap_or_default());
            let known = a.shown.as_ref().is_some_and(|der| {
                could_be
                    .iter()
                    .any(|p| cert_der_from_pem(p).ok().as_deref() == Some(&der[..]))
            });
            if !could_be.is_empty() && !known {
                return fail(format!(
                    "{what}: status shows a certificate that is neither the latest before the group nor one the group obtained (status.latest)"
                ));
            }
        }
        for (device, certs) in issued {
            self.last_cert.insert(device, certs);
        }
        let Some(allowed) = &st.outcomes else {
            return Ok(None);
        };
        let fits = |t: &Vec<Outcome>| {
            t.iter().zip(&history).all(|(want, (_, _, _, a))| match a {
                Answered {
                    outcome: Some(got), ..
                } => got == want,
                Answered { refused: true, .. } => {
                    matches!(want, Outcome::Http(401 | 403))
                }
                _ => false,
            })
        };
        if allowed.iter().any(fits) {
            return Ok(None);
        }
        let shown: Vec<String> = allowed
            .iter()
            .take(6)
            .map(|t| {
                t.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        fail(format!(
            "no order of the requests sent together explains their answers ({}); the profile allows ({}){}",
            line.join("; "),
            shown.join(") or ("),
            if allowed.len() > 6 {
                format!(" and {} more", allowed.len() - 6)
            } else {
                String::new()
            }
        ))
    }
}

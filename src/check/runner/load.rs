//! Bursts and concurrent provisioning.

use super::*;

impl Case<'_> {
    pub(super) async fn do_burst(&mut self, st: &Step) -> StepResult {
        let n = st.count.unwrap_or(20).min(1000) as usize;
        let url = self.provreq_url().await;
        let cfg = self.config("admin", false)?;
        let mut bodies = Vec::new();
        let mut spkis = Vec::new();
        for i in 0..n {
            let dev = self.device(&format!("b{i}"));
            let (body, _) = self.build_request(
                &Step {
                    secret: Some("none".into()),
                    ..Step::default()
                },
                &dev,
            )?;
            spkis.push((dev, provision::spki_of_body(&body)));
            bodies.push(body);
        }
        let timeout = self.ctx.request_timeout;
        let started = Instant::now();
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|b| {
                let (url, cfg) = (url.clone(), cfg.clone());
                tokio::spawn(async move {
                    net::request(&url, Method::POST, Some(b), cfg, timeout).await
                })
            })
            .collect();
        let mut serials = Vec::new();
        for (t, spki) in tasks.into_iter().zip(spkis) {
            let r = t
                .await
                .map_err(|e| StepError::Fail(e.to_string()))?
                .map_err(|e| StepError::Fail(format!("no answer: {e}")))?;
            let v = resp_json(&r).unwrap_or(Value::Null);
            let (pem, dev) = (v["clientCert"].as_str().unwrap_or(""), &spki.0);
            let der = cert_der_from_pem(pem).map_err(|e| {
                StepError::Fail(format!(
                    "admin provisioning of {dev} gave no certificate: {e}"
                ))
            })?;
            if let Some(checked) = self.issued_ok(
                &der,
                dev,
                spki.1.as_deref(),
                &format!("clientCert of {dev}"),
            )? {
                serials.push(checked);
            }
        }
        let elapsed = started.elapsed();
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "{n} admin provisionings in {} ms; serials: {}",
                elapsed.as_millis(),
                serials
                    .iter()
                    .map(|s| s.serial_hex.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ));
        if st.expect.unique_serials == Some(true) {
            let distinct: BTreeSet<&str> = serials.iter().map(|s| s.serial_hex.as_str()).collect();
            if distinct.len() != serials.len() {
                return fail(format!(
                    "{} certificates issued within {} ms carry only {} distinct serials",
                    serials.len(),
                    elapsed.as_millis(),
                    distinct.len()
                ));
            }
            // Sorted, so that a counter shows as a progression whatever
            // order the answers arrived in.
            let mut raw: Vec<Vec<u8>> = serials.into_iter().map(|s| s.serial).collect();
            raw.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            crate::check::profile::serials_look_random(&raw)
                .map_err(|e| StepError::Fail(e.to_string()))?;
        }
        Ok(None)
    }

    pub(super) async fn do_concurrent(&mut self, st: &Step) -> StepResult {
        let n = st.count.unwrap_or(64).min(1000) as usize;
        let oob = self.oob_url().await;
        let url = self.provreq_url().await;
        let admin = self.config("admin", false)?;
        let anon = self.config("nobody", false)?;
        let timeout = self.ctx.request_timeout;
        let mut bodies = Vec::new();
        for i in 0..n {
            let (post, body) = self.device_pair(&format!("c{i}"))?;
            let r = net::request(&oob, Method::POST, Some(post), admin.clone(), timeout)
                .await
                .map_err(|e| StepError::Fail(format!("posting secret {i}: {e}")))?;
            if r.status != 200 {
                return fail(format!("posting secret {i}: HTTP {}", r.status));
            }
            bodies.push((self.device(&format!("c{i}")), body));
        }
        let started = Instant::now();
        let mut violations = Vec::new();
        let tasks: Vec<_> = bodies
            .iter()
            .cloned()
            .map(|(_, b)| {
                let (url, cfg) = (url.clone(), anon.clone());
                tokio::spawn(async move {
                    net::request(&url, Method::POST, Some(b), cfg, timeout).await
                })
            })
            .collect();
        let mut approved = 0;
        let mut problems = Vec::new();
        for (t, (dev, body)) in tasks.into_iter().zip(&bodies) {
            match t.await {
                Ok(Ok(r)) if r.status == 200 => match self.judge_parallel(&r, dev, body) {
                    Ok(true) => approved += 1,
                    Ok(false) => problems.push(format!(
                        "status {}",
                        resp_json(&r)
                            .and_then(|v| v["status"].as_str().map(str::to_string))
                            .unwrap_or_default()
                    )),
                    Err(v) => violations.push(v),
                },
                Ok(Ok(r)) => problems.push(format!("HTTP {}", r.status)),
                Ok(Err(e)) => problems.push(e.to_string()),
                Err(e) => problems.push(e.to_string()),
            }
        }
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "{n} devices provisioned at once: {approved} Approved in {} ms; problems: {}",
                started.elapsed().as_millis(),
                if problems.is_empty() {
                    "none".into()
                } else {
                    problems.join(", ")
                }
            ),
        ));
        if let Some(v) = violations.first() {
            return fail(format!(
                "{} answer(s) break the profile; first: {v}",
                violations.len()
            ));
        }
        if st.expect.all_approved == Some(true) && approved != n {
            problems.truncate(3);
            return fail(format!(
                "{approved} of {n} Approved ({})",
                problems.join("; ")
            ));
        }
        Ok(None)
    }

    /// Judges one answer of a parallel batch like any other provisioning
    /// answer: `Ok(true)` when Approved and sound, `Err` naming the device
    /// when it breaks a rule.
    pub(super) fn judge_parallel(
        &self,
        r: &HttpsResponse,
        dev: &str,
        body: &[u8],
    ) -> Result<bool, String> {
        let v = resp_json(r).unwrap_or(Value::Null);
        let spki = provision::spki_of_body(body);
        match self.judge_answer(r, &v, dev, spki.as_deref(), "nobody", false) {
            Ok(()) => Ok(v["status"].as_str() == Some("Approved")),
            Err(e) => Err(format!("{dev}: {}", e.into_message())),
        }
    }

    /// For a fresh device named `sym`: the OOB post of its secret (as sent
    /// by an admin) and its provisioning request signed with that secret.
    pub(super) fn device_pair(&mut self, sym: &str) -> Result<(Vec<u8>, Vec<u8>), StepError> {
        let dev = self.device(sym);
        let secret = self.secret(sym);
        self.posted.insert(dev.clone(), secret.clone());
        let post = serde_json::to_vec(
            &serde_json::json!({"deviceID": dev, "oobSecret": secret, "validUntil": ""}),
        )
        .unwrap_or_default();
        let (body, _) = self.build_request(
            &Step {
                secret: Some(sym.to_string()),
                ..Step::default()
            },
            &dev,
        )?;
        Ok((post, body))
    }

    /// Rounds of concurrent traffic: in each round the secrets of the next
    /// batch are posted while the current batch provisions, all at once, so
    /// that OOB posts and provisioning requests overlap (where an unlocked
    /// secret map breaks). Every device must be Approved.
    pub(super) async fn do_concurrent_rounds(&mut self, st: &Step) -> StepResult {
        let n = st.count.unwrap_or(128).clamp(1, 512) as usize;
        let rounds = st.rounds.unwrap_or(4).clamp(1, 8) as usize;
        let oob = self.oob_url().await;
        let url = self.provreq_url().await;
        let admin = self.config("admin", false)?;
        let anon = self.config("nobody", false)?;
        let timeout = self.ctx.request_timeout;
        // Everything is prepared before the clock starts.
        let mut posts: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut provs: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
        for r in 0..rounds {
            let (mut p, mut q) = (Vec::new(), Vec::new());
            for i in 0..n {
                let sym = format!("r{r}c{i}");
                let (post, body) = self.device_pair(&sym)?;
                p.push(post);
                q.push((self.device(&sym), body));
            }
            posts.push(p);
            provs.push(q);
        }
        let started = Instant::now();
        let mut approved = 0usize;
        let mut problems: Vec<String> = Vec::new();
        let mut violations: Vec<String> = Vec::new();
        for r in 0..=rounds {
            let mut post_tasks = Vec::new();
            if r < rounds {
                for b in posts[r].drain(..) {
                    let (u, c) = (oob.clone(), admin.clone());
                    post_tasks.push(tokio::spawn(async move {
                        net::request(&u, Method::POST, Some(b), c, timeout).await
                    }));
                }
            }
            let mut prov_tasks = Vec::new();
            let batch = if r > 0 {
                std::mem::take(&mut provs[r - 1])
            } else {
                Vec::new()
            };
            for (_, b) in &batch {
                let (u, c, b) = (url.clone(), anon.clone(), b.clone());
                prov_tasks.push(tokio::spawn(async move {
                    net::request(&u, Method::POST, Some(b), c, timeout).await
                }));
            }
            for t in post_tasks {
                match t.await {
                    Ok(Ok(resp)) if resp.status == 200 => {}
                    Ok(Ok(resp)) => {
                        problems.push(format!("round {r}: posting a secret: HTTP {}", resp.status));
                    }
                    Ok(Err(e)) => problems.push(format!("round {r}: posting a secret: {e}")),
                    Err(e) => problems.push(e.to_string()),
                }
            }
            for (t, (dev, body)) in prov_tasks.into_iter().zip(&batch) {
                match t.await {
                    Ok(Ok(resp)) if resp.status == 200 => {
                        match self.judge_parallel(&resp, dev, body) {
                            Ok(true) => approved += 1,
                            Ok(false) => problems.push(format!(
                                "round {}: status {}",
                                r - 1,
                                resp_json(&resp)
                                    .and_then(|v| v["status"].as_str().map(str::to_string))
                                    .unwrap_or_default()
                            )),
                            Err(v) => violations.push(v),
                        }
                    }
                    Ok(Ok(resp)) => problems.push(format!("round {}: HTTP {}", r - 1, resp.status)),
                    Ok(Err(e)) => problems.push(format!("round {}: {e}", r - 1)),
                    Err(e) => problems.push(e.to_string()),
                }
            }
        }
        let total = n * rounds;
        let directory_ok = matches!(
            self.call_with(Method::GET, &self.ctx.target.url.clone(), None, "nobody", true)
                .await,
            Ok(r) if r.status == 200
        );
        let mut distinct = problems.clone();
        distinct.sort();
        distinct.dedup();
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "{rounds} rounds of {n} devices, secrets posted while the previous round provisioned: {approved} of {total} Approved in {} ms; directory afterwards: {}; problems: {}",
                started.elapsed().as_millis(),
                if directory_ok { "answers" } else { "NO ANSWER" },
                if distinct.is_empty() {
                    "none".into()
                } else {
                    distinct.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
                }
            ),
        ));
        if let Some(v) = violations.first() {
            return fail(format!(
                "{} answer(s) break the profile; first: {v}",
                violations.len()
            ));
        }
        if st.expect.all_approved == Some(true) && (approved != total || !directory_ok) {
            distinct.truncate(3);
            return fail(format!(
                "{approved} of {total} Approved{} ({})",
                if directory_ok {
                    ""
                } else {
                    "; the server no longer answers"
                },
                distinct.join("; ")
            ));
        }
        Ok(None)
    }
}

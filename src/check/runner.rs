//! Interprets scenario steps against a live server over real TLS and
//! records every exchange as evidence.

use super::report::{CaseResult, Exchange, Verdict};
use super::scenario::{Action, Scenario, Step};
use crate::client::discover;
use crate::core::directory::{decode_ca, parse_directory, split_https_url, Directory};
use crate::core::messages::{OOB_PATH, PROVREQ_PATH, STATUS_TEMPLATE};
use crate::core::sign::{self, KeyVariant};
use crate::net::{self, HttpsResponse};
use crate::pki::{cert_der_from_pem, verify_chain, CertAuthority, CertInfo, Usage};
use crate::tls::{client_config, ClientIdentity, ServerTrust};
use http::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rustls::ClientConfig;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const RSA2048_PUB: &str = include_str!("keys/rsa2048.pub");
const RSA1024_PUB: &str = include_str!("keys/rsa1024.pub");
const EVIDENCE_BODY_LIMIT: usize = 4096;

/// A server under test.
#[derive(Clone)]
pub struct ServerTarget {
    /// Directory URL.
    pub url: String,
    /// CA the server's TLS chains to and that signs its certificates.
    pub ca_pem: String,
    /// Admin (or plugin) credential.
    pub admin: ClientIdentity,
    /// A plugin credential, when known.
    pub plugin: Option<ClientIdentity>,
    /// The CA key, when known (embedded server): enables cases that need
    /// certificates the server would not issue (expired, other OU).
    pub ca_key_pem: Option<String>,
    /// Capabilities known without asking (e.g. the embedded server's).
    pub capabilities: Vec<String>,
}

/// Shared, read-only context of a run.
pub struct RunContext {
    /// The target.
    pub target: ServerTarget,
    /// Run seed.
    pub seed: u64,
    /// Capabilities in effect.
    pub capabilities: BTreeSet<String>,
    /// Per-request time limit.
    pub request_timeout: Duration,
    /// A CA unrelated to the target, for foreign credentials.
    pub foreign_ca: CertAuthority,
}

enum StepError {
    Fail(String),
    Skip(String),
}

type StepResult = Result<Option<String>, StepError>;

fn fail<T>(m: impl Into<String>) -> Result<T, StepError> {
    Err(StepError::Fail(m.into()))
}

#[derive(Clone)]
struct Saved {
    identity: Option<ClientIdentity>,
    cert_pem: String,
}

struct Case<'a> {
    ctx: &'a RunContext,
    rng: ChaCha20Rng,
    slug: String,
    devices: HashMap<String, String>,
    secrets: HashMap<String, String>,
    saved: HashMap<String, Saved>,
    last_body: HashMap<String, Vec<u8>>,
    evidence: Vec<Exchange>,
    configs: HashMap<String, Arc<ClientConfig>>,
    directory: Option<Directory>,
    step_no: usize,
}

fn case_seed(seed: u64, id: &str) -> u64 {
    // FNV-1a over the id, mixed with the run seed: stable across runs.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^ seed
}

fn truncate(text: &str) -> String {
    if text.len() <= EVIDENCE_BODY_LIMIT {
        text.to_string()
    } else {
        let mut end = EVIDENCE_BODY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes in all)", &text[..end], text.len())
    }
}

/// Runs one case to a verdict.
pub async fn run_case(sc: &Scenario, ctx: &RunContext, timeout: Duration) -> CaseResult {
    let started = Instant::now();
    let mut result = CaseResult::new(sc);
    if let Some(reason) = super::missing_capabilities(sc, &ctx.capabilities) {
        result.verdict = Verdict::Skip;
        result.detail = reason;
        return result;
    }
    let slug: String = sc
        .id
        .split_once('.')
        .map_or(sc.id.as_str(), |(_, rest)| rest)
        .replace('.', "-")
        .chars()
        .take(40)
        .collect();
    let mut case = Case {
        ctx,
        rng: ChaCha20Rng::seed_from_u64(case_seed(ctx.seed, &sc.id)),
        slug,
        devices: HashMap::new(),
        secrets: HashMap::new(),
        saved: HashMap::new(),
        last_body: HashMap::new(),
        evidence: Vec::new(),
        configs: HashMap::new(),
        directory: None,
        step_no: 0,
    };
    let outcome = tokio::time::timeout(timeout, async {
        let mut infos = Vec::new();
        for (i, step) in sc.steps.iter().enumerate() {
            case.step_no = i + 1;
            match case.step(step).await {
                Ok(Some(info)) => infos.push(info),
                Ok(None) => {}
                Err(e) => return Err((i + 1, e)),
            }
        }
        Ok(infos)
    })
    .await;
    result.verdict = Verdict::Pass;
    match outcome {
        Err(_) => {
            result.verdict = Verdict::Fail;
            result.detail = format!("timed out after {timeout:?} at step {}", case.step_no);
        }
        Ok(Err((n, StepError::Fail(m)))) => {
            result.verdict = Verdict::Fail;
            result.detail = format!("step {n} ({}): {m}", describe(&sc.steps[n - 1]));
        }
        Ok(Err((_, StepError::Skip(m)))) => {
            result.verdict = Verdict::Skip;
            result.detail = m;
        }
        Ok(Ok(infos)) if !infos.is_empty() => {
            result.verdict = Verdict::Info;
            result.detail = infos.join("; ");
        }
        Ok(Ok(_)) => {}
    }
    // Mask every secret of the case in the evidence.
    let secrets: Vec<String> = case
        .secrets
        .values()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    for ex in &mut case.evidence {
        for s in &secrets {
            ex.request_body = ex.request_body.replace(s.as_str(), "«secret»");
            ex.response_body = ex.response_body.replace(s.as_str(), "«secret»");
        }
    }
    result.evidence = case.evidence;
    let mut devices: Vec<String> = case.devices.into_values().collect();
    devices.sort();
    result.devices = devices;
    result.ms = started.elapsed().as_millis() as u64;
    result
}

fn describe(s: &Step) -> String {
    let a = s
        .action
        .map(|a| {
            serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let mut d = a;
    if let Some(x) = &s.as_ {
        d.push_str(&format!(" as {x}"));
    }
    if let Some(x) = s.device.as_ref().or(s.device_literal.as_ref()) {
        let shown: String = x.chars().take(24).collect();
        d.push_str(&format!(" device {shown:?}"));
    }
    d
}

fn resp_json(r: &HttpsResponse) -> Option<Value> {
    serde_json::from_slice(&r.body).ok()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Case<'_> {
    fn device(&mut self, sym: &str) -> String {
        if let Some(d) = self.devices.get(sym) {
            return d.clone();
        }
        let n: u32 = self.rng.gen();
        let id = format!("{}-{}-{:08x}", self.slug, sym, n);
        self.devices.insert(sym.to_string(), id.clone());
        id
    }

    fn secret(&mut self, sym: &str) -> String {
        if let Some(s) = self.secrets.get(sym) {
            return s.clone();
        }
        let n: u64 = self.rng.gen();
        let s = format!("{sym}-{n:016x}");
        self.secrets.insert(sym.to_string(), s.clone());
        s
    }

    fn device_of(&mut self, step: &Step) -> String {
        match (&step.device_literal, &step.device) {
            (Some(l), _) => l.clone(),
            (None, Some(d)) => self.device(d),
            (None, None) => self.device("d"),
        }
    }

    fn origin(&self) -> String {
        split_https_url(&self.ctx.target.url)
            .map(|(o, _)| o.to_string())
            .unwrap_or_default()
    }

    async fn directory(&mut self) -> Option<Directory> {
        if self.directory.is_none() {
            let url = self.ctx.target.url.clone();
            if let Ok(r) = self.call(Method::GET, &url, None, "nobody").await {
                if r.status == 200 {
                    self.directory = parse_directory(&r.body, &url).ok();
                }
            }
        }
        self.directory.clone()
    }

    async fn provreq_url(&mut self) -> String {
        let o = self.origin();
        self.directory()
            .await
            .map(|d| d.post_provision_request)
            .unwrap_or_else(|| format!("{o}{PROVREQ_PATH}"))
    }

    async fn oob_url(&mut self) -> String {
        let o = self.origin();
        self.directory()
            .await
            .and_then(|d| d.post_oob_secret)
            .unwrap_or_else(|| format!("{o}{OOB_PATH}"))
    }

    async fn status_url(&mut self, device: &str) -> String {
        let o = self.origin();
        self.directory()
            .await
            .and_then(|d| d.status)
            .unwrap_or_else(|| format!("{o}{STATUS_TEMPLATE}"))
            .replace("{deviceID}", device)
    }

    fn identity(&mut self, who: &str) -> Result<Option<ClientIdentity>, StepError> {
        let now = OffsetDateTime::now_utc();
        let ctx = self.ctx;
        let ca_key = || {
            let key = ctx.target.ca_key_pem.as_deref().ok_or_else(|| {
                StepError::Skip("needs the target's CA key (capability ca-key)".into())
            })?;
            CertAuthority::from_pem(&ctx.target.ca_pem, key)
                .map_err(|e| StepError::Fail(format!("CA key: {e}")))
        };
        let cred = |c: crate::pki::Credential| ClientIdentity {
            cert_pem: c.cert.pem,
            key_pem: c.key_pem.to_string(),
        };
        let setup = |e: crate::pki::PkiError| StepError::Fail(format!("setup: {e}"));
        let (kind, arg) = who.split_once(':').unwrap_or((who, ""));
        Ok(match kind {
            "nobody" => None,
            "admin" => Some(ctx.target.admin.clone()),
            "plugin" => Some(
                ctx.target
                    .plugin
                    .clone()
                    .ok_or_else(|| StepError::Skip("no plugin credential known".into()))?,
            ),
            "foreign-admin" => Some(cred(
                ctx.foreign_ca
                    .issue_client("admin", "admin", time::Duration::days(1), now)
                    .map_err(setup)?,
            )),
            "other-ou" => Some(cred(
                ca_key()?
                    .issue_client("user", "client", time::Duration::days(1), now)
                    .map_err(setup)?,
            )),
            "device" => {
                let saved = self.saved.get(arg).and_then(|s| s.identity.clone());
                Some(saved.ok_or_else(|| {
                    StepError::Fail(format!(
                        "no certificate was obtained for device {arg} earlier"
                    ))
                })?)
            }
            "expired-device" => {
                let id = self.device(arg);
                Some(cred(
                    ca_key()?
                        .issue_client(
                            &id,
                            "iotdevice",
                            time::Duration::hours(1),
                            now - time::Duration::days(2),
                        )
                        .map_err(setup)?,
                ))
            }
            "foreign-device" => {
                let id = self.device(arg);
                Some(cred(
                    ctx.foreign_ca
                        .issue_client(&id, "iotdevice", time::Duration::days(1), now)
                        .map_err(setup)?,
                ))
            }
            other => return fail(format!("unknown credential `{other}`")),
        })
    }

    fn config(&mut self, who: &str, leap: bool) -> Result<Arc<ClientConfig>, StepError> {
        let key = format!("{who}|{leap}");
        if let Some(c) = self.configs.get(&key) {
            return Ok(c.clone());
        }
        let id = self.identity(who)?;
        let trust = if leap {
            ServerTrust::LeapOfFaith
        } else {
            ServerTrust::Pinned(self.ctx.target.ca_pem.clone())
        };
        let c = Arc::new(
            client_config(&trust, id.as_ref())
                .map_err(|e| StepError::Fail(format!("setup: {e}")))?,
        );
        // Device identities change as certificates are renewed: no caching.
        if !who.starts_with("device:") {
            self.configs.insert(key, c.clone());
        }
        Ok(c)
    }

    async fn call_with(
        &mut self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        who: &str,
        leap: bool,
    ) -> Result<HttpsResponse, String> {
        let cfg = match self.config(who, leap) {
            Ok(c) => c,
            Err(StepError::Fail(m)) | Err(StepError::Skip(m)) => return Err(m),
        };
        let started = Instant::now();
        let req_text = body
            .as_ref()
            .map(|b| truncate(&String::from_utf8_lossy(b)))
            .unwrap_or_default();
        let res = net::request(url, method.clone(), body, cfg, self.ctx.request_timeout).await;
        let mut ex = Exchange {
            step: self.step_no,
            method: method.to_string(),
            url: url.to_string(),
            credential: who.to_string(),
            request_body: req_text,
            status: None,
            response_headers: Vec::new(),
            response_body: String::new(),
            error: None,
            ms: 0,
        };
        let out = match res {
            Ok(r) => {
                ex.status = Some(r.status);
                ex.response_headers = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
                    .collect();
                ex.response_body = truncate(&String::from_utf8_lossy(&r.body));
                Ok(r)
            }
            Err(e) => {
                ex.error = Some(e.to_string());
                Err(e.to_string())
            }
        };
        ex.ms = started.elapsed().as_millis() as u64;
        self.evidence.push(ex);
        out
    }

    async fn call(
        &mut self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        who: &str,
    ) -> Result<HttpsResponse, String> {
        self.call_with(method, url, body, who, false).await
    }

    async fn step(&mut self, st: &Step) -> StepResult {
        match st.action.unwrap_or(Action::Wait) {
            Action::Directory => self.do_directory(st).await,
            Action::PostOob => self.do_post_oob(st).await,
            Action::Provision => self.do_provision(st).await,
            Action::Status => self.do_status(st).await,
            Action::Raw => self.do_raw(st).await,
            Action::Wait => {
                tokio::time::sleep(Duration::from_millis(st.ms.unwrap_or(0).min(60_000))).await;
                Ok(None)
            }
            Action::Guess => self.do_guess(st).await,
            Action::Burst => self.do_burst(st).await,
            Action::Concurrent => self.do_concurrent(st).await,
            Action::Sanity => self.do_sanity().await,
            Action::Observe => self.do_observe(st).await,
            Action::Discover => self.do_discover().await,
            Action::Serve | Action::GiveCertificate | Action::RunDevice => {
                fail("a client-case action in a server case")
            }
        }
    }

    fn check_http(&self, st: &Step, r: &HttpsResponse) -> Result<(), StepError> {
        if let Some(codes) = &st.expect.http {
            if !codes.contains(&r.status) {
                return fail(format!(
                    "expected HTTP {}, got {}",
                    codes
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    r.status
                ));
            }
        }
        if let Some(class) = &st.expect.http_class {
            let want = class
                .chars()
                .next()
                .and_then(|c| c.to_digit(10))
                .unwrap_or(0) as u16;
            if r.status / 100 != want {
                return fail(format!("expected HTTP {class}, got {}", r.status));
            }
        }
        if let Some(ct) = &st.expect.content_type {
            let got = r.content_type().unwrap_or("(none)");
            if !got.starts_with(ct.as_str()) {
                return fail(format!("expected Content-Type {ct}, got {got}"));
            }
        }
        Ok(())
    }

    async fn do_directory(&mut self, st: &Step) -> StepResult {
        let url = self.ctx.target.url.clone();
        let r = match self
            .call_with(Method::GET, &url, None, "nobody", true)
            .await
        {
            Ok(r) => r,
            Err(e) => return fail(format!("no answer: {e}")),
        };
        self.check_http(st, &r)?;
        let e = &st.expect;
        if e.directory_valid == Some(true) {
            let d = parse_directory(&r.body, &url).map_err(|e| StepError::Fail(e.to_string()))?;
            let v = resp_json(&r).unwrap_or(Value::Null);
            for k in [
                "directory",
                "status",
                "postOobSecret",
                "postProvisionRequest",
            ] {
                if !v["endpoints"][k].is_string() {
                    return fail(format!("endpoints.{k} missing"));
                }
            }
            if !d.status.as_deref().unwrap_or("").contains("{deviceID}") {
                return fail("status endpoint lacks the {deviceID} placeholder");
            }
        }
        let v = resp_json(&r).unwrap_or(Value::Null);
        let (ca, _) = decode_ca(v.get("caCert"))
            .unwrap_or((None, crate::core::directory::CaEncoding::Absent));
        if e.ca_cert.as_deref() == Some("present") && ca.is_none() {
            return fail(
                "directory offers no caCert (a device without a pre-provisioned CA cannot pin one)",
            );
        }
        if e.tls_matches_ca == Some(true) {
            let Some(ca) = ca else {
                return fail("directory offers no caCert to check the TLS chain against");
            };
            let ca_der =
                cert_der_from_pem(&ca).map_err(|e| StepError::Fail(format!("caCert: {e}")))?;
            let leaf = r
                .server_certs
                .first()
                .ok_or_else(|| StepError::Fail("no server certificate".into()))?;
            verify_chain(leaf, &ca_der, OffsetDateTime::now_utc(), Usage::Server).map_err(|e| {
                StepError::Fail(format!("server TLS certificate vs directory caCert: {e}"))
            })?;
        }
        Ok(None)
    }

    async fn do_post_oob(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let secret = match (&st.secret_literal, &st.secret) {
            (Some(l), _) => l.clone(),
            (None, Some(s)) => self.secret(s),
            (None, None) => self.secret("s"),
        };
        let vu = match st.valid_until.as_deref().unwrap_or("default") {
            "default" => Value::String(String::new()),
            "past" => Value::String("2001-01-01T00:00:00Z".into()),
            "garbage" => Value::String("not-a-time".into()),
            "number" => Value::from(1_700_000_000u64),
            other => match other
                .strip_prefix("in:")
                .and_then(|n| n.parse::<i64>().ok())
            {
                Some(secs) => Value::String(rfc3339(
                    OffsetDateTime::now_utc() + time::Duration::seconds(secs),
                )),
                None => return fail(format!("bad valid_until `{other}`")),
            },
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "deviceID": device, "oobSecret": secret, "validUntil": vu
        }))
        .unwrap_or_default();
        let url = self.oob_url().await;
        let who = st.as_.clone().unwrap_or_else(|| "admin".into());
        match self.call(Method::POST, &url, Some(body), &who).await {
            Ok(r) => {
                self.check_http(st, &r)?;
                Ok(None)
            }
            Err(e) if st.expect.tls_refusal_ok == Some(true) => {
                let _ = e;
                Ok(None)
            }
            Err(e) => fail(format!("no answer: {e}")),
        }
    }

    /// Builds a provisioning request. Returns the body and, when the key is
    /// ours, the key pair.
    fn build_request(
        &mut self,
        st: &Step,
        device: &str,
    ) -> Result<(Vec<u8>, Option<rcgen::KeyPair>), StepError> {
        let setup = |e: rcgen::Error| StepError::Fail(format!("setup: {e}"));
        let (key_pem, kp) = match st.key.as_deref().unwrap_or("p256") {
            "p256" => {
                let k = rcgen::KeyPair::generate().map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            "ed25519" => {
                let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            "p384" => {
                let k =
                    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            "rsa2048" => (RSA2048_PUB.to_string(), None),
            "rsa1024" => (RSA1024_PUB.to_string(), None),
            "garbage" => (
                "-----BEGIN PUBLIC KEY-----\nAAECAwQFBgcICQ==\n-----END PUBLIC KEY-----\n".into(),
                None,
            ),
            "not-pem" => ("this is not a key".into(), None),
            other => return fail(format!("unknown key kind `{other}`")),
        };
        if let Some(body) = &st.body {
            let quoted = serde_json::to_string(&key_pem).unwrap_or_default();
            let escaped = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or("");
            let b = body.replace("{device}", device).replace("{key}", escaped);
            return Ok((b.into_bytes(), kp));
        }
        let csr = match st.csr.as_deref().unwrap_or("none") {
            "none" => None,
            mode => {
                let signer = match mode {
                    "key-mismatch" => rcgen::KeyPair::generate().map_err(setup)?,
                    _ => match &kp {
                        Some(k) => rcgen::KeyPair::from_pem(&k.serialize_pem()).map_err(setup)?,
                        None => return fail("a CSR needs a key the suite holds"),
                    },
                };
                let mut p = rcgen::CertificateParams::default();
                p.distinguished_name = rcgen::DistinguishedName::new();
                p.distinguished_name
                    .push(rcgen::DnType::CommonName, device.to_string());
                let csr = p.serialize_request(&signer).map_err(setup)?;
                let mut der = csr.der().to_vec();
                if mode == "bad-signature" {
                    if let Some(last) = der.last_mut() {
                        *last ^= 0x01;
                    }
                } else if mode != "valid" && mode != "key-mismatch" {
                    return fail(format!("unknown csr mode `{mode}`"));
                }
                Some(pem_encode("CERTIFICATE REQUEST", &der))
            }
        };
        let mut fields: Vec<(&str, Value)> = vec![("deviceID", Value::String(device.into()))];
        match st.ip.as_deref().unwrap_or("default") {
            "default" => fields.push(("ip", Value::String("127.0.0.1".into()))),
            "missing" => {}
            "garbage" => fields.push(("ip", Value::String("not-an-ip".into()))),
            other => return fail(format!("unknown ip mode `{other}`")),
        }
        fields.push(("mac", Value::String(String::new())));
        fields.push(("publicKeyPEM", Value::String(key_pem)));
        if let Some(c) = csr {
            fields.push(("csrPEM", Value::String(c)));
        }
        fields.push(("signature", Value::String(String::new())));
        let key: Option<Vec<u8>> = match st.secret.as_deref() {
            Some("none") => None,
            sym => {
                let s = match &st.secret_literal {
                    Some(l) => l.clone(),
                    None => self.secret(sym.unwrap_or("s")),
                };
                let variant = match st.variant.as_deref().unwrap_or("raw") {
                    "raw" => KeyVariant::Raw,
                    "sha256" => KeyVariant::Sha256OfSecret,
                    other => return fail(format!("unknown variant `{other}`")),
                };
                Some(variant.key(&s))
            }
        };
        let canonical = encode_object(&fields);
        let form = st.form.as_deref().unwrap_or("go");
        let sent_fields: Vec<(&str, Value)> = match form {
            "go" => fields.clone(),
            "reordered-raw" | "reordered-canonical" => {
                let mut f: Vec<(&str, Value)> = fields.iter().rev().cloned().collect();
                f.insert(2, ("x-extra", Value::from(123)));
                f
            }
            other => return fail(format!("unknown form `{other}`")),
        };
        let Some(key) = key else {
            return Ok((encode_object(&sent_fields), kp));
        };
        let input = if form == "reordered-raw" {
            encode_object(&sent_fields)
        } else {
            canonical
        };
        let tag = sign::tag_b64(&key, &input);
        let signed: Vec<(&str, Value)> = sent_fields
            .into_iter()
            .map(|(k, v)| {
                if k == "signature" {
                    (k, Value::String(tag.clone()))
                } else {
                    (k, v)
                }
            })
            .collect();
        Ok((encode_object(&signed), kp))
    }

    async fn do_provision(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let (body, kp) = if st.replay == Some(true) {
            match self.last_body.get(&device) {
                Some(b) => (b.clone(), None),
                None => return fail("nothing to replay"),
            }
        } else {
            self.build_request(st, &device)?
        };
        self.last_body.insert(device.clone(), body.clone());
        let url = self.provreq_url().await;
        let who = st.as_.clone().unwrap_or_else(|| "nobody".into());
        let r = match self
            .call(Method::POST, &url, Some(body.clone()), &who)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                if st.expect.tls_refusal_ok == Some(true) {
                    return Ok(None);
                }
                return fail(format!("no answer: {e}"));
            }
        };
        self.check_http(st, &r)?;
        let e = &st.expect;
        let v = resp_json(&r);
        let status = v
            .as_ref()
            .and_then(|v| v["status"].as_str())
            .unwrap_or("")
            .to_string();
        match e.status.as_deref() {
            None => {}
            Some("not-Approved") if r.status == 200 && status == "Approved" => {
                return fail("expected anything but Approved, got Approved");
            }
            Some("not-Approved") => {}
            Some(want) => {
                if r.status != 200 {
                    return fail(format!("expected {want}, got HTTP {}", r.status));
                }
                if status != want {
                    return fail(format!(
                        "expected status {want}, got {}",
                        if status.is_empty() { "(none)" } else { &status }
                    ));
                }
            }
        }
        let v = v.unwrap_or(Value::Null);
        let client_cert = v["clientCert"].as_str().unwrap_or("").to_string();
        if let Some(want_cert) = e.certificate {
            if want_cert {
                let spki = kp
                    .as_ref()
                    .map(rcgen::PublicKeyData::subject_public_key_info)
                    .or_else(|| {
                        crate::pki::DevicePublicKey::from_pem(
                            serde_json::from_slice::<Value>(&body).ok()?["publicKeyPEM"]
                                .as_str()?,
                        )
                        .ok()
                        .map(|k| k.spki_der().to_vec())
                    });
                let strict = !st.device.as_deref().unwrap_or("").starts_with("sanity");
                self.check_certificate(&client_cert, &device, spki.as_deref(), strict)?;
            } else if !client_cert.is_empty() {
                return fail(format!("a {status} answer carries a certificate"));
            }
        }
        if let Some(mode) = e.signature.as_deref() {
            let sig = v["signature"].as_str().unwrap_or("");
            match mode {
                "secret" => {
                    let secret = match &st.secret_literal {
                        Some(l) => l.clone(),
                        None => self.secret(st.secret.as_deref().unwrap_or("s")),
                    };
                    if let Err(err) = sign::verify_raw(&r.body, secret.as_bytes()) {
                        let variant = sign::detect_variant(&r.body, &secret)
                            .map(|v| format!(" (it verifies with the {v:?} key)"))
                            .unwrap_or_default();
                        return fail(format!(
                            "response signature does not verify with the secret: {err}{variant}"
                        ));
                    }
                }
                "empty-key" => {
                    if let Err(err) = sign::verify_raw(&r.body, b"") {
                        return fail(format!(
                            "response signature does not verify with the empty key: {err}"
                        ));
                    }
                }
                "none" => {
                    if !sig.is_empty() {
                        return fail("expected an empty signature");
                    }
                }
                other => return fail(format!("unknown signature expectation `{other}`")),
            }
        }
        if e.retry_sec.as_deref() == Some("positive") && v["retrySec"].as_u64().unwrap_or(0) == 0 {
            return fail("retrySec missing or 0");
        }
        if e.ca_cert.as_deref() == Some("present") {
            let (ca, _) = decode_ca(v.get("caCert"))
                .unwrap_or((None, crate::core::directory::CaEncoding::Absent));
            match ca {
                None => return fail("caCert missing or empty in the response"),
                Some(ca) => {
                    let got = cert_der_from_pem(&ca).ok();
                    let want = cert_der_from_pem(&self.ctx.target.ca_pem).ok();
                    if got != want {
                        return fail("caCert in the response is not the target's CA");
                    }
                }
            }
        }
        if r.status == 200 && status == "Approved" && !client_cert.is_empty() {
            let sym = st.device.clone().unwrap_or_else(|| "d".into());
            let identity = kp.as_ref().map(|k| ClientIdentity {
                cert_pem: client_cert.clone(),
                key_pem: k.serialize_pem(),
            });
            self.saved.insert(
                sym,
                Saved {
                    identity,
                    cert_pem: client_cert,
                },
            );
        }
        Ok(None)
    }

    fn check_certificate(
        &self,
        pem: &str,
        device: &str,
        spki: Option<&[u8]>,
        strict: bool,
    ) -> Result<CertInfo, StepError> {
        if pem.is_empty() {
            return fail("no clientCert in an Approved answer");
        }
        let der =
            cert_der_from_pem(pem).map_err(|e| StepError::Fail(format!("clientCert: {e}")))?;
        let info =
            CertInfo::from_der(&der).map_err(|e| StepError::Fail(format!("clientCert: {e}")))?;
        let ca = cert_der_from_pem(&self.ctx.target.ca_pem)
            .map_err(|e| StepError::Fail(format!("target CA: {e}")))?;
        let now = OffsetDateTime::now_utc();
        verify_chain(&der, &ca, now, Usage::Client)
            .map_err(|e| StepError::Fail(format!("certificate: {e}")))?;
        // The sanity cases stop at what makes provisioning work at all (an
        // Approved certificate from the CA); its properties are judged by
        // their own cases.
        if !strict {
            return Ok(info);
        }
        if info.cn != [device.to_string()] {
            return fail(format!("certificate CN {:?}, expected {device:?}", info.cn));
        }
        if !info.ou.iter().any(|o| o == "iotdevice") {
            return fail(format!("certificate OU {:?} lacks iotdevice", info.ou));
        }
        if let Some(spki) = spki {
            if info.spki_der != spki {
                return fail("certificate is not for the request's public key");
            }
        }
        if !info.client_auth {
            return fail("certificate lacks EKU clientAuth");
        }
        if info.not_after - now < time::Duration::days(1) {
            return fail(format!(
                "certificate valid for less than a day (until {})",
                rfc3339(info.not_after)
            ));
        }
        if info.serial_len < 8 {
            return fail(format!(
                "serial {} has {} octets: cannot hold 64 random bits",
                info.serial_hex, info.serial_len
            ));
        }
        Ok(info)
    }

    async fn do_status(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let url = self.status_url(&device).await;
        let who = st.as_.clone().unwrap_or_else(|| "admin".into());
        let r = match self.call(Method::GET, &url, None, &who).await {
            Ok(r) => r,
            Err(e) if st.expect.tls_refusal_ok == Some(true) => {
                let _ = e;
                return Ok(None);
            }
            Err(e) => return fail(format!("no answer: {e}")),
        };
        self.check_http(st, &r)?;
        let v = resp_json(&r).unwrap_or(Value::Null);
        if let Some(want) = &st.expect.status {
            let got = v["status"].as_str().unwrap_or("(none)");
            if got != want {
                return fail(format!("expected status {want}, got {got}"));
            }
        }
        if st.expect.latest_cert == Some(true) {
            let sym = st.device.clone().unwrap_or_else(|| "d".into());
            let want = self
                .saved
                .get(&sym)
                .map(|s| s.cert_pem.clone())
                .ok_or_else(|| StepError::Fail("no certificate was issued earlier".into()))?;
            let (got, _) = decode_ca(v.get("clientCert"))
                .unwrap_or((None, crate::core::directory::CaEncoding::Absent));
            let same = got
                .as_deref()
                .and_then(|g| cert_der_from_pem(g).ok())
                .zip(cert_der_from_pem(&want).ok())
                .is_some_and(|(a, b)| a == b);
            if !same {
                return fail("status clientCert is not the latest certificate issued");
            }
        }
        Ok(None)
    }

    async fn do_raw(&mut self, st: &Step) -> StepResult {
        let device = self.device_of(st);
        let method = Method::from_bytes(st.method.as_deref().unwrap_or("GET").as_bytes())
            .map_err(|_| StepError::Fail("bad method".into()))?;
        let path = st
            .path
            .as_deref()
            .unwrap_or("/")
            .replace("{device}", &device);
        let url = format!("{}{}", self.origin(), path);
        let body = match (&st.body, st.body_size) {
            (_, Some(n)) => {
                let mut b = br#"{"deviceID":""#.to_vec();
                b.resize(n.saturating_sub(2).max(b.len()), b'a');
                b.extend_from_slice(b"\"}");
                Some(b)
            }
            (Some(t), None) => Some(t.replace("{device}", &device).into_bytes()),
            (None, None) => None,
        };
        let who = st.as_.clone().unwrap_or_else(|| "nobody".into());
        match self.call(method, &url, body, &who).await {
            Ok(r) => {
                self.check_http(st, &r)?;
                Ok(None)
            }
            Err(e) => fail(format!("no answer: {e}")),
        }
    }

    async fn do_guess(&mut self, st: &Step) -> StepResult {
        let n = st.count.unwrap_or(5);
        let device = self.device_of(st);
        for i in 0..n.min(1000) {
            let wrong = Step {
                secret: Some(format!("wrong{i}")),
                device: st.device.clone(),
                ..Step::default()
            };
            let (body, _) = self.build_request(&wrong, &device)?;
            let url = self.provreq_url().await;
            if let Err(e) = self.call(Method::POST, &url, Some(body), "nobody").await {
                return fail(format!("no answer to wrong guess {}: {e}", i + 1));
            }
        }
        Ok(None)
    }

    async fn do_burst(&mut self, st: &Step) -> StepResult {
        let n = st.count.unwrap_or(20).min(1000) as usize;
        let url = self.provreq_url().await;
        let cfg = self.config("admin", false)?;
        let mut bodies = Vec::new();
        for i in 0..n {
            let dev = self.device(&format!("b{i}"));
            let (body, _) = self.build_request(
                &Step {
                    secret: Some("none".into()),
                    ..Step::default()
                },
                &dev,
            )?;
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
        for t in tasks {
            let r = t
                .await
                .map_err(|e| StepError::Fail(e.to_string()))?
                .map_err(|e| StepError::Fail(format!("no answer: {e}")))?;
            let v = resp_json(&r).unwrap_or(Value::Null);
            let pem = v["clientCert"].as_str().unwrap_or("");
            let info = CertInfo::from_pem(pem).map_err(|e| {
                StepError::Fail(format!("admin provisioning gave no certificate: {e}"))
            })?;
            serials.push(info);
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
            if let Some(short) = serials.iter().find(|s| s.serial_len < 8) {
                return fail(format!(
                    "serial {} has {} octets: cannot hold 64 random bits",
                    short.serial_hex, short.serial_len
                ));
            }
        }
        Ok(None)
    }

    async fn do_concurrent(&mut self, st: &Step) -> StepResult {
        let n = st.count.unwrap_or(64).min(1000) as usize;
        let oob = self.oob_url().await;
        let url = self.provreq_url().await;
        let admin = self.config("admin", false)?;
        let anon = self.config("nobody", false)?;
        let timeout = self.ctx.request_timeout;
        let mut bodies = Vec::new();
        for i in 0..n {
            let sym = format!("c{i}");
            let dev = self.device(&sym);
            let secret = self.secret(&sym);
            let post = serde_json::to_vec(
                &serde_json::json!({"deviceID": dev, "oobSecret": secret, "validUntil": ""}),
            )
            .unwrap_or_default();
            let r = net::request(&oob, Method::POST, Some(post), admin.clone(), timeout)
                .await
                .map_err(|e| StepError::Fail(format!("posting secret {i}: {e}")))?;
            if r.status != 200 {
                return fail(format!("posting secret {i}: HTTP {}", r.status));
            }
            let (body, _) = self.build_request(
                &Step {
                    secret: Some(sym),
                    ..Step::default()
                },
                &dev,
            )?;
            bodies.push(body);
        }
        let started = Instant::now();
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|b| {
                let (url, cfg) = (url.clone(), anon.clone());
                tokio::spawn(async move {
                    net::request(&url, Method::POST, Some(b), cfg, timeout).await
                })
            })
            .collect();
        let mut approved = 0;
        let mut problems = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(r)) if r.status == 200 => {
                    let s = resp_json(&r).and_then(|v| v["status"].as_str().map(str::to_string));
                    if s.as_deref() == Some("Approved") {
                        approved += 1;
                    } else {
                        problems.push(format!("status {}", s.unwrap_or_default()));
                    }
                }
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
        if st.expect.all_approved == Some(true) && approved != n {
            problems.truncate(3);
            return fail(format!(
                "{approved} of {n} Approved ({})",
                problems.join("; ")
            ));
        }
        Ok(None)
    }

    async fn do_sanity(&mut self) -> StepResult {
        let post = Step {
            action: Some(Action::PostOob),
            device: Some("sanity".into()),
            secret: Some("sanity".into()),
            expect: super::scenario::Expect {
                http: Some(vec![200]),
                ..Default::default()
            },
            ..Step::default()
        };
        self.do_post_oob(&post).await?;
        let prov = Step {
            action: Some(Action::Provision),
            device: Some("sanity".into()),
            secret: Some("sanity".into()),
            expect: super::scenario::Expect {
                status: Some("Approved".into()),
                certificate: Some(true),
                ..Default::default()
            },
            ..Step::default()
        };
        self.do_provision(&prov).await?;
        // A later sanity step in the same case uses a fresh device.
        self.devices.remove("sanity");
        Ok(None)
    }

    async fn do_observe(&mut self, st: &Step) -> StepResult {
        match st.what.as_deref().unwrap_or("") {
            "key-variant" => {
                let mut found = Vec::new();
                for (variant, name) in [
                    ("raw", "the raw secret"),
                    ("sha256", "SHA-256 of the secret"),
                ] {
                    let sym = format!("kv-{variant}");
                    let r = self
                        .with_fresh_secret(
                            &sym,
                            Step {
                                variant: Some(variant.into()),
                                ..Step::default()
                            },
                        )
                        .await?;
                    let approved = resp_json(&r).is_some_and(|v| v["status"] == "Approved");
                    if approved {
                        let secret = self.secret(&sym);
                        let resp = match sign::detect_variant(&r.body, &secret) {
                            Ok(KeyVariant::Raw) => "raw key",
                            Ok(KeyVariant::Sha256OfSecret) => "SHA-256 key",
                            Err(_) => "neither key (unsigned or other)",
                        };
                        found.push(format!(
                            "accepts requests keyed with {name}; signs responses with the {resp}"
                        ));
                    }
                }
                Ok(Some(if found.is_empty() {
                    "accepted neither key variant".into()
                } else {
                    found.join("; ")
                }))
            }
            "canonical-form" => {
                let mut methods = Vec::new();
                for (form, name) in [
                    (
                        "reordered-raw",
                        "raw blanking (signature over the bytes sent)",
                    ),
                    (
                        "reordered-canonical",
                        "re-serialisation in Go's field order (the reference's method)",
                    ),
                ] {
                    let sym = format!("cf-{form}");
                    let r = self
                        .with_fresh_secret(
                            &sym,
                            Step {
                                form: Some(form.into()),
                                ..Step::default()
                            },
                        )
                        .await?;
                    if resp_json(&r).is_some_and(|v| v["status"] == "Approved") {
                        methods.push(name);
                    }
                }
                Ok(Some(if methods.is_empty() {
                    "verifies neither a reordered request signed over its bytes nor one signed over Go's canonical form".into()
                } else {
                    format!("verifies by {}", methods.join(" and by "))
                }))
            }
            "directory-form" => {
                let url = self.ctx.target.url.clone();
                let r = self
                    .call_with(Method::GET, &url, None, "nobody", true)
                    .await
                    .map_err(StepError::Fail)?;
                let d =
                    parse_directory(&r.body, &url).map_err(|e| StepError::Fail(e.to_string()))?;
                Ok(Some(format!(
                    "endpoints are {}; caCert is {}; version {:?}; extensions {:?}; Content-Type {}",
                    if d.endpoints_are_urls { "absolute URLs" } else { "paths" },
                    match d.ca_encoding {
                        crate::core::directory::CaEncoding::Pem => "PEM",
                        crate::core::directory::CaEncoding::Base64Pem => "base64 of PEM",
                        crate::core::directory::CaEncoding::Absent => "absent",
                    },
                    d.version,
                    d.extensions,
                    r.content_type().unwrap_or("(none)")
                )))
            }
            other => fail(format!("unknown observation `{other}`")),
        }
    }

    /// Posts a secret for device `sym` (named after it) as admin, then sends
    /// a provisioning request built from `req` and signed with that secret.
    async fn with_fresh_secret(
        &mut self,
        sym: &str,
        mut req: Step,
    ) -> Result<HttpsResponse, StepError> {
        self.do_post_oob(&Step {
            device: Some(sym.into()),
            secret: Some(sym.into()),
            ..Step::default()
        })
        .await?;
        let dev = self.device(sym);
        req.secret = Some(sym.into());
        let (body, _) = self.build_request(&req, &dev)?;
        let url = self.provreq_url().await;
        self.call(Method::POST, &url, Some(body), "nobody")
            .await
            .map_err(StepError::Fail)
    }

    async fn do_discover(&mut self) -> StepResult {
        let found = tokio::task::spawn_blocking(|| discover::discover(Duration::from_secs(10)))
            .await
            .map_err(|e| StepError::Fail(e.to_string()))?
            .map_err(StepError::Fail)?;
        self.evidence.push(Exchange::note(
            self.step_no,
            format!("DNS-SD: {} → {}", found.fullname, found.url),
        ));
        let want =
            net::parse_url(&self.ctx.target.url).map_err(|e| StepError::Fail(e.to_string()))?;
        let got = net::parse_url(&found.url).map_err(|e| StepError::Fail(e.to_string()))?;
        if got.port != want.port || got.path != want.path {
            return fail(format!(
                "advertised {} but the target is {}",
                found.url, self.ctx.target.url
            ));
        }
        let r = self
            .call_with(Method::GET, &found.url, None, "nobody", true)
            .await
            .map_err(StepError::Fail)?;
        parse_directory(&r.body, &found.url).map_err(|e| {
            StepError::Fail(format!("advertised URL does not serve a directory: {e}"))
        })?;
        Ok(None)
    }
}

fn encode_object(fields: &[(&str, Value)]) -> Vec<u8> {
    crate::core::json::encode_members(fields)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

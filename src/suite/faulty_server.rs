//! The suite's deliberately broken server: the reference server with the
//! defects of [`super::faults`] switched on through its one seam
//! ([`Quirks`]). It exists to prove that each check of `idprov check
//! server` bites; the `idprov` CLI never starts it.

use super::faults::{Fault, Faults};
use super::wire;
use crate::core::decision::{
    self, Authority, Decision, PeerCert, Policy, Role, SecretEntry, VerifyMethod, WaitReason,
};
use crate::core::messages::{ProvisionRequest, ProvisionResponse, ProvisionStatus, MAX_BODY};
use crate::core::validate::{self, DeviceId, OobPost, ValidRequest};
use crate::pki::{CertAuthority, DeviceCertOptions, DevicePublicKey, IssuedCert, PkiError};
use crate::server::error::RequestError;
use crate::server::handler::{self, go_status_body, ConnInfo};
use crate::server::mdns::{host_label, Advertisement};
use crate::server::quirks::{
    method_admission, require_admin, AnswerContext, BodyLimits, Endpoint, Hook, Quirks, SecretBook,
};
use crate::server::store::IssuedRecord;
use crate::server::{self as server, RunningServer, ServerConfig, Shared, StartError};
use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Starts the reference server with `faults` switched on.
pub async fn start(config: ServerConfig, faults: &[Fault]) -> Result<RunningServer, StartError> {
    let faults = Faults::of(faults);
    let other_ca = if faults.has(Fault::IssueFromOtherCa) {
        Some(
            CertAuthority::generate("idprov other CA", OffsetDateTime::now_utc())
                .map_err(|e| StartError::Thread(e.to_string()))?,
        )
    } else {
        None
    };
    let disk = faults
        .has(Fault::SecretsOnDisk)
        .then(|| config.data_dir.join(SECRETS_FILE));
    let entries = disk.as_deref().map(read_secrets).unwrap_or_default();
    let book = Arc::new(Mutex::new(FaultyBook {
        faults: faults.clone(),
        entries,
        seq: SequenceState::default(),
        disk,
    }));
    let quirks = FaultyServer {
        book,
        faults,
        other_ca,
        oob_inflight: Arc::new(AtomicUsize::new(0)),
        provision_inflight: Arc::new(AtomicUsize::new(0)),
        die: tokio::sync::Notify::new(),
        status_cache: Mutex::new(HashMap::new()),
        serial_counter: AtomicU64::new(0x0100_0000),
        requested_days: Mutex::new(HashMap::new()),
        csr_ou: Mutex::new(HashMap::new()),
        issued_since_start: Mutex::new(std::collections::HashSet::new()),
        write_behind: Mutex::new(WriteBehindQueue::default()),
    };
    server::start_with(config, Arc::new(quirks)).await
}

/// The directory the Go reference serves, byte for byte (capture 01).
const GO_DIRECTORY: &[u8] = br#"{"endpoints":{"directory":"/idprov/directory","status":"/idprov/status/{deviceID}","postOobSecret":"/idprov/oobsecret","postProvisionRequest":"/idprov/provreq"},"caCert":null,"version":"1","services":{}}"#;

/// A body limit that is no limit.
const UNLIMITED: usize = 16 * 1024 * 1024;

struct FaultyServer {
    /// The secrets, shared with the server's book so that the concurrency
    /// faults can read and write them outside its lock.
    book: Arc<Mutex<FaultyBook>>,
    faults: Faults,
    /// The CA that signs under `IssueFromOtherCa`.
    other_ca: Option<CertAuthority>,
    /// OOB posts in flight (`DieUnderConcurrency`).
    oob_inflight: Arc<AtomicUsize>,
    /// Provisioning requests in flight (`DieUnderConcurrency`).
    provision_inflight: Arc<AtomicUsize>,
    /// Signalled to stop serving (`DieUnderConcurrency`).
    die: tokio::sync::Notify,
    /// Status answers cached on first read (`StatusStaleAfterRenewal`).
    status_cache: Mutex<HashMap<String, IssuedRecord>>,
    /// Next serial (`SerialCounter`).
    serial_counter: AtomicU64,
    /// The lifetime a request asked for, by device (`HonoursRequestedDays`).
    requested_days: Mutex<HashMap<String, i64>>,
    /// The subject OU a request's CSR asked for, by device (`CsrOuCopied`).
    csr_ou: Mutex<HashMap<String, String>>,
    /// Devices issued to since this start (`StatusFromMemory`).
    issued_since_start: Mutex<std::collections::HashSet<String>>,
    /// Approved certificates not yet written (`WriteBehind`).
    write_behind: Mutex<WriteBehindQueue>,
}

/// `WriteBehind`'s queue: certificates answered but not yet written, and
/// those being written (status reads both).
#[derive(Default)]
struct WriteBehindQueue {
    pending: Vec<IssuedRecord>,
    writing: Vec<IssuedRecord>,
}

/// The first subject OU of a CSR (`CsrOuCopied`), if it has one.
fn csr_subject_ou(pem: &str) -> Option<String> {
    use rustls::pki_types::{pem::PemObject, CertificateSigningRequestDer};
    use x509_parser::prelude::FromDer;
    let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .ok()?;
    let ou = csr
        .certification_request_info
        .subject
        .iter_organizational_unit()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(ou)
}

/// How many certificates `WriteBehind` gathers before it writes them.
const WRITE_BEHIND_BATCH: usize = 8;

impl FaultyServer {
    fn has(&self, f: Fault) -> bool {
        self.faults.has(f)
    }

    /// Writes what `WriteBehind` took from its queue, then forgets it.
    async fn write_out(&self, shared: &Shared, batch: Vec<IssuedRecord>) -> Result<(), String> {
        let mut outcome = Ok(());
        for r in &batch {
            if let Err(e) = shared.committer.record(r.clone()).await {
                outcome = Err(e);
            }
        }
        let mut q = self.write_behind.lock().unwrap_or_else(|p| p.into_inner());
        q.writing.retain(|w| !batch.contains(w));
        outcome
    }
}

/// Counts a request in flight while it lives.
struct Inflight(Arc<AtomicUsize>);

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Quirks for FaultyServer {
    fn server_credential(
        &self,
        ca: &CertAuthority,
        honest: (String, String),
    ) -> Result<(String, String), PkiError> {
        if !self.has(Fault::ServerCertOtherName) {
            return Ok(honest);
        }
        let c = ca.issue_server(
            &["idprov.invalid".to_string()],
            &[],
            OffsetDateTime::now_utc(),
        )?;
        Ok((c.cert.pem, c.key_pem.to_string()))
    }

    fn client_verifier(
        &self,
        ca: &CertAuthority,
        honest: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    ) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        if self.has(Fault::RecognisedNotVerified) {
            Arc::new(NameOnlyVerifier {
                inner: honest,
                subject: ca_subject(ca.cert_der()),
            })
        } else {
            honest
        }
    }

    fn connection(
        &self,
        shared: Arc<Shared>,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Hook<'_, Option<tokio::net::TcpStream>> {
        Box::pin(transport(
            self.has(Fault::LegacyTls),
            self.has(Fault::PlaintextHttp),
            shared,
            tcp,
            peer,
        ))
    }

    fn peer_cert(&self, honest: PeerCert) -> PeerCert {
        match honest {
            PeerCert::Verified {
                cn, ous, not_after, ..
            } if self.has(Fault::CredentialNotBeforeIgnored) => PeerCert::Verified {
                cn,
                ous,
                not_before: OffsetDateTime::UNIX_EPOCH,
                not_after,
            },
            other => other,
        }
    }

    fn header_timeout(&self, honest: Duration) -> Option<Duration> {
        (!self.has(Fault::NoHeaderTimeout)).then_some(honest)
    }

    fn admit(
        &self,
        endpoint: Option<Endpoint>,
        method: &Method,
        role: &Role,
    ) -> Result<(), RequestError> {
        let endpoint = if self.has(Fault::AnyMethod) {
            endpoint.ok_or(RequestError::NotFound)?
        } else {
            method_admission(endpoint, method)?
        };
        match endpoint {
            Endpoint::PostOobSecret if self.has(Fault::OobNoAuth) => Ok(()),
            // The Go reference swaps 401 and 403 here.
            Endpoint::PostOobSecret if self.has(Fault::GoWireFormat) => match require_admin(role) {
                Err(RequestError::Unauthenticated) => {
                    Err(RequestError::Forbidden("no client certificate".into()))
                }
                Err(RequestError::Forbidden(_)) => Err(RequestError::Unauthenticated),
                other => other,
            },
            Endpoint::Status if self.has(Fault::StatusAnyCert) => match role {
                Role::Anonymous => Err(RequestError::Unauthenticated),
                _ => Ok(()),
            },
            Endpoint::PostOobSecret | Endpoint::Status => require_admin(role),
            Endpoint::Directory | Endpoint::PostProvisionRequest => Ok(()),
        }
    }

    fn body_limits(&self) -> BodyLimits {
        let mut limits = BodyLimits::HONEST;
        if self.has(Fault::NoBodyLimit) {
            limits.declared = UNLIMITED;
            limits.chunked = UNLIMITED;
        } else if self.has(Fault::BodyLimitOffByOne) {
            limits.declared = MAX_BODY - 1;
            limits.chunked = MAX_BODY - 1;
        }
        if self.has(Fault::ChunkedNoLimit) {
            limits.chunked = UNLIMITED;
        }
        if self.has(Fault::NoBodyTimeout) {
            limits.timeout = None;
        }
        limits
    }

    fn enter(&self, endpoint: Endpoint) -> Hook<'_, Option<Box<dyn Send>>> {
        if !self.has(Fault::DieUnderConcurrency) {
            return Box::pin(std::future::ready(None));
        }
        let (mine, other) = match endpoint {
            Endpoint::PostOobSecret => (&self.oob_inflight, &self.provision_inflight),
            _ => (&self.provision_inflight, &self.oob_inflight),
        };
        mine.fetch_add(1, Ordering::SeqCst);
        let held = Inflight(mine.clone());
        let other = other.clone();
        Box::pin(async move {
            // The secret map is touched without a lock, slowly: when a
            // request of the other kind is in flight, the process dies half
            // the time (as Go aborts on a concurrent map read and write).
            if other.load(Ordering::SeqCst) > 0 && rand::random::<bool>() {
                self.die.notify_one();
                panic!("deliberate fault: concurrent map read and map write");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            Some(Box::new(held) as Box<dyn Send>)
        })
    }

    fn stopped(&self) -> Hook<'_, ()> {
        if !self.has(Fault::DieUnderConcurrency) {
            return Box::pin(std::future::pending());
        }
        Box::pin(async {
            self.die.notified().await;
            tracing::error!("deliberate fault: stopped serving under concurrent load");
        })
    }

    fn finish(&self, endpoint: Option<Endpoint>, response: &mut Response<Full<Bytes>>) {
        let go = self.has(Fault::GoWireFormat);
        if !go && !self.has(Fault::NoCaInDirectory) {
            return;
        }
        if go {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
        if response.status() != StatusCode::OK {
            return;
        }
        let body = take_body(response);
        let body = match endpoint {
            Some(Endpoint::Directory) if go => GO_DIRECTORY.to_vec(),
            Some(Endpoint::Directory) => with_empty_ca(body),
            Some(Endpoint::PostOobSecret) if go => Vec::new(),
            Some(Endpoint::Status) if go => go_status(&body),
            _ => body,
        };
        *response.body_mut() = Full::new(Bytes::from(body));
    }

    fn parse_oob(&self, body: &[u8], now: OffsetDateTime) -> Result<OobPost, RequestError> {
        if self.has(Fault::IgnoreValidUntil)
            || self.has(Fault::AcceptEmptySecret)
            || self.has(Fault::NoDeviceIdCheck)
        {
            self.lenient_oob(body, now)
        } else if self.has(Fault::ValidUntilIgnoresOffset) {
            Ok(validate::parse_oob(&offset_blind(body), now)?)
        } else {
            let mut post = validate::parse_oob(body, now)?;
            if self.has(Fault::ValidUntil2038)
                && post.valid_until.unix_timestamp() > i32::MAX as i64
            {
                return Err(validate::InvalidInput::BadTime.into());
            }
            if self.has(Fault::SecretTruncated64) {
                let mut end = post.secret.len().min(64);
                while !post.secret.is_char_boundary(end) {
                    end -= 1;
                }
                post.secret.truncate(end);
            }
            if self.has(Fault::DeviceIdRefusesColon) && post.device_id.contains(':') {
                return Err(
                    validate::InvalidInput::DeviceId("only A-Z a-z 0-9 . _ - are allowed").into(),
                );
            }
            Ok(post)
        }
    }

    fn parse_provision(&self, body: &[u8]) -> Result<ValidRequest, RequestError> {
        if self.has(Fault::PanicOnNestedObject) && has_nested_object(body) {
            panic!("deliberate fault: nested object in a provisioning request");
        }
        if self.has(Fault::ErrorOnLongDeviceId) {
            let id_len = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["deviceID"].as_str().map(str::len))
                .unwrap_or(0);
            if id_len > 64 {
                return Err(RequestError::Internal(
                    "deliberate fault: long device ID".into(),
                ));
            }
        }
        let mut req = if self.has(Fault::NoDeviceIdCheck) {
            let lenient: ProvisionRequest = serde_json::from_slice(body)
                .map_err(|e| validate::InvalidInput::Json(validate::one_line(&e)))?;
            ValidRequest {
                device_id: DeviceId::unchecked(lenient.device_id),
                ip: lenient
                    .ip
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
                public_key_pem: lenient.public_key_pem,
                csr_pem: lenient.csr_pem.filter(|c| !c.is_empty()),
            }
        } else {
            validate::parse_provision_request(body)?
        };
        if self.has(Fault::HonoursRequestedDays) {
            let days = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["days"].as_u64())
                .filter(|d| (1..=1825).contains(d));
            if let Some(d) = days {
                self.requested_days
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(req.device_id.to_string(), d as i64);
            }
        }
        if self.has(Fault::CsrOuCopied) {
            if let Some(ou) = req.csr_pem.as_deref().and_then(csr_subject_ou) {
                self.csr_ou
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(req.device_id.to_string(), ou);
            }
        }
        if self.has(Fault::DeviceIdRefusesColon) && req.device_id.contains(':') {
            return Err(
                validate::InvalidInput::DeviceId("only A-Z a-z 0-9 . _ - are allowed").into(),
            );
        }
        if self.has(Fault::DeviceIdMax127) && req.device_id.len() >= 128 {
            return Err(validate::InvalidInput::DeviceId("longer than 127 characters").into());
        }
        if self.has(Fault::KeyPemNeedsNewline)
            && (!req.public_key_pem.ends_with("-----\n") || req.public_key_pem.contains('\r'))
        {
            return Err(RequestError::BadKey(PkiError::NotPem("PUBLIC KEY")));
        }
        if self.has(Fault::IgnoreCsr) {
            req.csr_pem = None;
        }
        Ok(req)
    }

    fn parse_key(&self, pem: &str) -> Result<DevicePublicKey, PkiError> {
        if self.has(Fault::RsaSizeInBytes) {
            // Eight bits for every byte of the modulus: 2041–2047 bits
            // round up to 2048.
            if let Some(bytes) = rsa_modulus_bytes(pem) {
                if bytes * 8 >= crate::pki::MIN_RSA_BITS {
                    return DevicePublicKey::from_pem_with_min_rsa(pem, 0);
                }
            }
        }
        DevicePublicKey::from_pem(pem)
    }

    fn secret_book(&self) -> Box<dyn SecretBook> {
        Box::new(SharedBook(self.book.clone()))
    }

    fn decide<'a>(
        &'a self,
        shared: &'a Shared,
        device_id: &'a str,
        body: &'a [u8],
        peer: &'a PeerCert,
        now: OffsetDateTime,
        policy: Policy,
    ) -> Hook<'a, (Decision, Option<SecretEntry>)> {
        if self.has(Fault::RenewalRequiresNewKey)
            && matches!(peer.role(now), Role::Device(ref cn) if cn == device_id)
            && renews_with_the_same_key(shared, device_id, body)
        {
            let refused = Decision::Rejected {
                reason: crate::core::sign::SignatureError::Empty,
                secret_discarded: false,
            };
            return Box::pin(std::future::ready((refused, None)));
        }
        let raced = self.has(Fault::RacedSecretCheck);
        let lost = self.has(Fault::GuessCountLostUpdate);
        if !raced && !lost {
            let decided = shared
                .lock_secrets()
                .decide(device_id, body, peer, now, &policy);
            return Box::pin(std::future::ready(decided));
        }
        Box::pin(async move {
            // Read, let the lock go for a while (a slow signature check, a
            // database round trip), then act on what was read.
            let read = self.book().entries.get(device_id).cloned();
            tokio::time::sleep(RACE_WINDOW).await;
            let mut book = self.book();
            if raced {
                let decision = decision::decide(device_id, body, peer, read.as_ref(), now, &policy);
                let taken = decision::apply_decision(&mut book.entries, device_id, &decision);
                return (decision, taken);
            }
            let current = book.entries.get(device_id).cloned();
            let decision = decision::decide(device_id, body, peer, current.as_ref(), now, &policy);
            if let (Decision::Rejected { .. }, Some(read)) = (&decision, &read) {
                // The count read before, plus one: racing guesses are lost.
                let failures = read.failures.saturating_add(1);
                if failures >= policy.guess_limit {
                    book.entries.remove(device_id);
                } else if let Some(e) = book.entries.get_mut(device_id) {
                    e.failures = failures;
                }
                return (decision, None);
            }
            let taken = decision::apply_decision(&mut book.entries, device_id, &decision);
            (decision, taken)
        })
    }

    fn issue(
        &self,
        shared: &Shared,
        device_id: &DeviceId,
        key: &DevicePublicKey,
        authority: Authority,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, PkiError> {
        if self.has(Fault::StatusFromMemory) {
            self.issued_since_start
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(device_id.to_string());
        }
        let counter = self.has(Fault::SerialCounter).then(|| {
            let n = self.serial_counter.fetch_add(1, Ordering::SeqCst);
            let mut s = vec![0x4f, 0x12, 0x9a, 0x33, 0x71, 0x0c, 0x5e, 0x21];
            s.extend(n.to_be_bytes());
            s
        });
        // A serial that looks random but comes from a counter that starts
        // again at every start: unique until the server restarts.
        let reset = self.has(Fault::SerialResetAtStart).then(|| {
            use sha2::Digest;
            let n = self.serial_counter.fetch_add(1, Ordering::SeqCst);
            let mut h = sha2::Sha256::new();
            h.update(shared.ca.cert_pem().as_bytes());
            h.update(n.to_be_bytes());
            let mut s = h.finalize()[..16].to_vec();
            s[0] &= 0x7f;
            s[0] |= 0x40;
            s
        });
        let opts = DeviceCertOptions {
            serial: self
                .has(Fault::SerialFromTime)
                .then(|| (now.unix_timestamp() as u32).to_be_bytes().to_vec())
                .or(counter)
                .or(reset),
            omit_client_auth: self.has(Fault::NoClientAuthEku),
            add_server_auth: self.has(Fault::ServerAuthEku),
            extra_ou: (self.has(Fault::AdminOuLeaks)
                && matches!(authority, Authority::Administrator))
            .then(|| "admin".to_string())
            .or_else(|| {
                self.csr_ou
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(device_id.as_str())
            }),
        };
        let cn = if self.has(Fault::WrongCn) {
            format!("x-{device_id}")
        } else if self.has(Fault::CnCaseFolded) {
            device_id.to_lowercase()
        } else {
            device_id.to_string()
        };
        let requested = self
            .requested_days
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(device_id.as_str());
        let validity = match (requested, authority) {
            (Some(days), _) => time::Duration::days(days),
            (None, Authority::Renewal) if self.has(Fault::RenewalOtherLifetime) => {
                shared.config.cert_validity + time::Duration::days(60)
            }
            _ => shared.config.cert_validity,
        };
        let mut issued = self
            .other_ca
            .as_ref()
            .unwrap_or(&shared.ca)
            .issue_device_with(&cn, key, validity, now, &opts)?;
        if self.has(Fault::SerialFromTime) {
            // Time-based serials repeat; the reference stores them anyway.
            issued.serial_hex = format!("{}-{:08x}", issued.serial_hex, rand::random::<u32>());
        }
        Ok(issued)
    }

    fn answer(
        &self,
        ctx: &AnswerContext<'_>,
        response: &mut ProvisionResponse,
        key: &mut Option<Zeroizing<Vec<u8>>>,
    ) {
        let go = self.has(Fault::GoWireFormat);
        if go {
            response.ca_cert.clear();
            response.retry_sec = 0;
        }
        match response.status {
            ProvisionStatus::Waiting if self.has(Fault::WaitingWithoutRetry) => {
                response.retry_sec = 0;
            }
            ProvisionStatus::Rejected if self.has(Fault::CertOnRejected) => {
                let shared = ctx.shared;
                response.client_cert = shared
                    .ca
                    .issue_device(
                        &ctx.request.device_id,
                        ctx.key,
                        shared.config.cert_validity,
                        ctx.now,
                    )
                    .map(|c| c.pem)
                    .unwrap_or_default();
            }
            ProvisionStatus::Approved if self.has(Fault::UnsignedApproved) => *key = None,
            ProvisionStatus::Approved if self.has(Fault::Sha256ResponseKey) => {
                use sha2::Digest;
                *key = key
                    .take()
                    .map(|k| Zeroizing::new(sha2::Sha256::digest(&k[..]).to_vec()));
            }
            _ => {}
        }
    }

    fn persist<'a>(
        &'a self,
        shared: &'a Shared,
        rec: IssuedRecord,
    ) -> Hook<'a, Result<(), String>> {
        if !self.has(Fault::WriteBehind) {
            return Box::pin(shared.committer.record(rec));
        }
        let batch = {
            let mut q = self.write_behind.lock().unwrap_or_else(|p| p.into_inner());
            q.pending.push(rec);
            if q.pending.len() >= WRITE_BEHIND_BATCH {
                let batch = std::mem::take(&mut q.pending);
                q.writing.extend(batch.iter().cloned());
                batch
            } else {
                Vec::new()
            }
        };
        Box::pin(self.write_out(shared, batch))
    }

    fn drain<'a>(&'a self, shared: &'a Shared) -> Hook<'a, ()> {
        let batch = {
            let mut q = self.write_behind.lock().unwrap_or_else(|p| p.into_inner());
            let batch = std::mem::take(&mut q.pending);
            q.writing.extend(batch.iter().cloned());
            batch
        };
        Box::pin(async move {
            let _ = self.write_out(shared, batch).await;
        })
    }

    fn status(
        &self,
        shared: &Shared,
        device_id: &DeviceId,
        honest: Option<IssuedRecord>,
    ) -> Result<Option<IssuedRecord>, RequestError> {
        let mut latest = honest;
        if self.has(Fault::WriteBehind) {
            let q = self.write_behind.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = q
                .writing
                .iter()
                .chain(&q.pending)
                .rev()
                .find(|r| r.device_id == device_id.as_str())
            {
                latest = Some(r.clone());
            }
        }
        if self.has(Fault::StatusFromMemory)
            && !self
                .issued_since_start
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(device_id.as_str())
        {
            latest = None;
        }
        if self.has(Fault::StatusStaleAfterRenewal) {
            let mut cache = self.status_cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(device_id.as_str()) {
                Some(cached) => latest = Some(cached.clone()),
                None => {
                    if let Some(r) = &latest {
                        cache.insert(device_id.to_string(), r.clone());
                    }
                }
            }
        }
        if latest.is_none() && self.has(Fault::StatusPrefixMatch) {
            // `LIKE 'id%'`: the latest certificate of any ID extending this one.
            latest = shared
                .store
                .all()
                .map_err(|e| RequestError::Internal(e.to_string()))?
                .into_iter()
                .filter(|r| r.device_id.starts_with(device_id.as_str()))
                .max_by_key(|r| r.issued_at);
        }
        if self.has(Fault::StatusFromSecretTable) && shared.lock_secrets().holds(device_id) {
            latest = None;
        }
        Ok(latest)
    }

    fn advertise(
        &self,
        instance: &str,
        addr: SocketAddr,
        path: &str,
    ) -> Result<Advertisement, mdns_sd::Error> {
        let path = (!self.has(Fault::EmptyTxt)).then_some(path);
        let host = format!("{}.local.", host_label());
        if self.has(Fault::MdnsNoAddress) {
            // mdns-sd will not publish a service without an address: the
            // fault answers by hand, with PTR, SRV and TXT only.
            use crate::core::discovery::MdnsRecord;
            use crate::core::messages::SERVICE_TYPE;
            let fullname = format!("{instance}.{SERVICE_TYPE}");
            let records = vec![
                MdnsRecord::Ptr {
                    name: SERVICE_TYPE.into(),
                    target: fullname.clone(),
                },
                MdnsRecord::Srv {
                    name: fullname.clone(),
                    port: addr.port(),
                    target: host,
                },
                MdnsRecord::Txt {
                    name: fullname.clone(),
                    entries: path
                        .map(|p| (b"path".to_vec(), Some(p.as_bytes().to_vec())))
                        .into_iter()
                        .collect(),
                },
            ];
            let raw = super::mdns_raw::RawResponder::start(records)
                .map_err(|e| mdns_sd::Error::Msg(e.to_string()))?;
            return Ok(Advertisement::held(fullname, Box::new(raw)));
        }
        let wrong_port = self.has(Fault::MdnsWrongPort);
        let other_address = self.has(Fault::MdnsAddressNotInCert);
        if !wrong_port && !other_address {
            return Advertisement::start_with_txt(instance, addr, path);
        }
        use crate::core::messages::SERVICE_TYPE;
        let props: Vec<(&str, &str)> = path.map(|p| ("path", p)).into_iter().collect();
        let port = if wrong_port {
            addr.port().wrapping_add(1)
        } else {
            addr.port()
        };
        let info = if other_address {
            let ip = std::net::IpAddr::from([127, 0, 0, 2]);
            mdns_sd::ServiceInfo::new(SERVICE_TYPE, instance, &host, ip, port, &props[..])?
        } else if addr.ip().is_unspecified() {
            mdns_sd::ServiceInfo::new(SERVICE_TYPE, instance, &host, "", port, &props[..])?
                .enable_addr_auto()
        } else {
            mdns_sd::ServiceInfo::new(SERVICE_TYPE, instance, &host, addr.ip(), port, &props[..])?
        };
        Advertisement::publish(info)
    }
}

impl FaultyServer {
    /// The OOB parser of a deliberately broken server.
    fn lenient_oob(&self, body: &[u8], now: OffsetDateTime) -> Result<OobPost, RequestError> {
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| validate::InvalidInput::Json(validate::one_line(&e)))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let (device_id, secret) = (s("deviceID"), s("oobSecret"));
        let device_id = if self.has(Fault::NoDeviceIdCheck) {
            DeviceId::unchecked(device_id)
        } else {
            DeviceId::parse(&device_id)?
        };
        if secret.is_empty() && !self.has(Fault::AcceptEmptySecret) {
            return Err(validate::InvalidInput::MissingField("oobSecret").into());
        }
        let valid_until = if self.has(Fault::IgnoreValidUntil) {
            now + time::Duration::days(3650)
        } else {
            let strict = serde_json::json!({"deviceID": "x", "oobSecret": "x", "validUntil": s("validUntil")});
            validate::parse_oob(strict.to_string().as_bytes(), now)?.valid_until
        };
        Ok(OobPost {
            device_id,
            secret,
            valid_until,
        })
    }
}

/// The body of an answer built by the reference server (a `Full` body is
/// always ready); the answer is left with an empty body.
fn take_body(response: &mut Response<Full<Bytes>>) -> Vec<u8> {
    use hyper::body::Body;
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    let body = std::mem::replace(response.body_mut(), Full::new(Bytes::new()));
    let mut body = std::pin::pin!(body);
    match body.as_mut().poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().map(|d| d.to_vec()).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The directory `body` with an empty `caCert` (`NoCaInDirectory`).
fn with_empty_ca(body: Vec<u8>) -> Vec<u8> {
    let Ok(found) = crate::core::json::find_top_level(&body, "caCert") else {
        return body;
    };
    let Some(member) = found.first() else {
        return body;
    };
    let mut out = body[..member.value.start].to_vec();
    out.extend_from_slice(b"\"\"");
    out.extend_from_slice(&body[member.value.end..]);
    out
}

/// The reference server's status answer re-encoded as the Go reference's
/// (base64 `clientCert`, empty `caCert`).
fn go_status(body: &[u8]) -> Vec<u8> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let id = v["deviceID"].as_str().unwrap_or_default();
    let pem = v["clientCert"].as_str().filter(|p| !p.is_empty());
    go_status_body(id, "", pem)
}

/// The `ValidUntilIgnoresOffset` fault: `validUntil`'s local date and time
/// are kept and its offset replaced by `Z`.
fn offset_blind(body: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let rfc = time::format_description::well_known::Rfc3339;
    if let Some(t) = v["validUntil"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &rfc).ok())
    {
        let blind = t.replace_offset(time::UtcOffset::UTC);
        v["validUntil"] = serde_json::Value::String(blind.format(&rfc).unwrap_or_default());
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| body.to_vec())
}

fn has_nested_object(body: &[u8]) -> bool {
    crate::core::json::top_level_members(body)
        .map(|m| m.iter().any(|m| body.get(m.value.start) == Some(&b'{')))
        .unwrap_or(false)
}

/// State the sequence faults keep beside the secrets.
#[derive(Debug, Default)]
struct SequenceState {
    /// The secret each device's last approval by secret consumed.
    consumed: HashMap<String, SecretEntry>,
    /// Failed guesses per device, as the faulty counter keeps them.
    guesses: HashMap<String, u32>,
    /// Requests answered Waiting per device before any post.
    waiting: HashMap<String, u32>,
}

/// Whether the first 16 bytes of the request's tag are those of the right
/// tag (`TagComparedByPrefix`: a truncated comparison).
fn tag_prefix_matches(body: &[u8], secret: &[u8]) -> bool {
    use base64::Engine;
    let Ok(blanked) = crate::core::sign::blank_signature(body) else {
        return false;
    };
    let right = crate::core::sign::tag(secret, &blanked.signing_input);
    let claimed = base64::engine::general_purpose::STANDARD
        .decode(blanked.signature.as_bytes())
        .unwrap_or_default();
    claimed.len() >= 16 && claimed[..16] == right[..16]
}

/// Whether the request's key is the key of the device's latest certificate
/// (`RenewalRequiresNewKey`).
fn renews_with_the_same_key(shared: &Shared, device_id: &str, body: &[u8]) -> bool {
    let requested = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["publicKeyPEM"].as_str().map(str::to_string))
        .and_then(|pem| DevicePublicKey::from_pem(&pem).ok());
    let held = shared
        .store
        .latest(device_id)
        .ok()
        .flatten()
        .and_then(|r| crate::pki::cert_der_from_pem(&r.pem).ok())
        .and_then(|der| {
            use x509_parser::prelude::FromDer;
            x509_parser::certificate::X509Certificate::from_der(&der)
                .ok()
                .map(|(_, c)| c.public_key().raw.to_vec())
        });
    matches!((requested, held), (Some(k), Some(h)) if k.spki_der() == h.as_slice())
}

/// How long the concurrency faults leave the secrets unlocked between
/// reading and writing them: wide enough that requests sent together
/// overlap in it.
const RACE_WINDOW: Duration = Duration::from_millis(60);

impl FaultyServer {
    /// The secrets, locked.
    fn book(&self) -> std::sync::MutexGuard<'_, FaultyBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The server's view of the broken server's secrets: the shared book,
/// locked for each call.
struct SharedBook(Arc<Mutex<FaultyBook>>);

impl SharedBook {
    fn book(&self) -> std::sync::MutexGuard<'_, FaultyBook> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SecretBook for SharedBook {
    fn post(&mut self, device_id: &str, secret: &str, valid_until: OffsetDateTime) {
        self.book().post(device_id, secret, valid_until);
    }

    fn holds(&self, device_id: &str) -> bool {
        self.book().holds(device_id)
    }

    fn len(&self) -> usize {
        self.book().len()
    }

    fn purge_expired(&mut self, now: OffsetDateTime) {
        self.book().purge_expired(now);
    }

    fn decide(
        &mut self,
        device_id: &str,
        raw_body: &[u8],
        peer: &PeerCert,
        now: OffsetDateTime,
        policy: &Policy,
    ) -> (Decision, Option<SecretEntry>) {
        self.book().decide(device_id, raw_body, peer, now, policy)
    }

    fn restore(&mut self, device_id: &str, entry: SecretEntry) {
        self.book().restore(device_id, entry);
    }
}

/// The broken server's secrets: the pure core's decision, applied with the
/// bookkeeping bugs the faults name.
struct FaultyBook {
    faults: Faults,
    entries: HashMap<String, SecretEntry>,
    seq: SequenceState,
    /// Where `SecretsOnDisk` writes every secret posted.
    disk: Option<std::path::PathBuf>,
}

/// The file `SecretsOnDisk` keeps secrets in, in the data directory.
const SECRETS_FILE: &str = "oob-secrets.txt";

/// The secrets `SecretsOnDisk` wrote (a line per post: device, secret,
/// expiry in Unix seconds, tab-separated; the last post wins).
fn read_secrets(path: &std::path::Path) -> HashMap<String, SecretEntry> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut f = line.split('\t');
        if let (Some(d), Some(s), Some(t)) = (f.next(), f.next(), f.next()) {
            let Some(until) = t
                .parse::<i64>()
                .ok()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            else {
                continue;
            };
            out.insert(
                d.to_string(),
                SecretEntry {
                    secret: Zeroizing::new(s.to_string()),
                    valid_until: until,
                    failures: 0,
                },
            );
        }
    }
    out
}

impl FaultyBook {
    fn has(&self, f: Fault) -> bool {
        self.faults.has(f)
    }

    /// The key secrets are held under (case-folded under
    /// `SecretKeyCaseFolded`, except for a request that brings a device
    /// certificate, whose renewal check needs the exact ID).
    fn key(&self, device_id: &str, device_peer: bool) -> String {
        if self.has(Fault::SecretKeyCaseFolded) && !device_peer {
            device_id.to_ascii_lowercase()
        } else {
            device_id.to_string()
        }
    }

    /// The sequence faults after a decision for `key`.
    fn after_decision(
        &mut self,
        key: &str,
        decision: &Decision,
        taken: Option<&SecretEntry>,
        now: OffsetDateTime,
    ) {
        match decision {
            Decision::Approve {
                authority: Authority::Secret,
                ..
            } => {
                if let Some(t) = taken {
                    if self.has(Fault::RenewalRevivesSecret) {
                        self.seq.consumed.insert(key.to_string(), t.clone());
                    }
                    if self.has(Fault::SecretSharedByValue) {
                        self.entries.retain(|_, e| e.secret != t.secret);
                    }
                }
            }
            Decision::Approve {
                authority: Authority::Renewal,
                ..
            } => {
                if let Some(old) = self.seq.consumed.get(key) {
                    if self.has(Fault::RenewalRevivesSecret) {
                        self.entries
                            .entry(key.to_string())
                            .or_insert_with(|| old.clone());
                    }
                }
            }
            Decision::Rejected { .. } => {
                if self.has(Fault::ApprovalKeepsGuessCount) {
                    *self.seq.guesses.entry(key.to_string()).or_insert(0) += 1;
                }
                if self.has(Fault::FailedGuessExtendsExpiry) {
                    if let Some(e) = self.entries.get_mut(key) {
                        e.valid_until = now + validate::DEFAULT_SECRET_LIFE;
                    }
                }
            }
            Decision::Waiting {
                reason: WaitReason::NoSecret,
            } if self.has(Fault::WaitingCountsAsGuess) => {
                *self.seq.waiting.entry(key.to_string()).or_insert(0) += 1;
            }
            _ => {}
        }
    }
}

impl SecretBook for FaultyBook {
    fn post(&mut self, device_id: &str, secret: &str, valid_until: OffsetDateTime) {
        let key = self.key(device_id, false);
        let pending = self.entries.get(&key).map(|e| (e.valid_until, e.failures));
        let keep_expiry = pending
            .filter(|_| self.has(Fault::RepostKeepsOldExpiry))
            .map(|(t, _)| t);
        let failures = if self.has(Fault::RepostKeepsGuessCount) && pending.is_some() {
            pending.map(|(_, n)| n)
        } else if self.has(Fault::ApprovalKeepsGuessCount) && pending.is_none() {
            self.seq.guesses.get(&key).copied()
        } else if self.has(Fault::WaitingCountsAsGuess) {
            self.seq.waiting.remove(&key)
        } else {
            None
        };
        let entry = SecretEntry {
            secret: Zeroizing::new(secret.to_string()),
            valid_until: keep_expiry.unwrap_or(valid_until),
            failures: failures.unwrap_or(0),
        };
        if self.has(Fault::ApprovalKeepsGuessCount) {
            self.seq.guesses.insert(key.clone(), entry.failures);
        }
        if let Some(path) = &self.disk {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(
                    f,
                    "{key}\t{}\t{}",
                    entry.secret.as_str(),
                    entry.valid_until.unix_timestamp()
                );
            }
        }
        self.entries.insert(key, entry);
    }

    fn holds(&self, device_id: &str) -> bool {
        self.entries.contains_key(&self.key(device_id, false))
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn purge_expired(&mut self, now: OffsetDateTime) {
        self.entries.retain(|_, e| e.valid_until >= now);
    }

    fn decide(
        &mut self,
        device_id: &str,
        raw_body: &[u8],
        peer: &PeerCert,
        now: OffsetDateTime,
        policy: &Policy,
    ) -> (Decision, Option<SecretEntry>) {
        let device_peer = matches!(peer.role(now), Role::Device(_));
        let key = self.key(device_id, device_peer);
        let policy = Policy {
            guess_limit: if self.has(Fault::NoGuessLimit) {
                u32::MAX
            } else if self.has(Fault::GuessLimitFour) {
                4
            } else {
                policy.guess_limit
            },
            verify: if self.has(Fault::GoWireFormat) {
                VerifyMethod::Reserialize
            } else if self.has(Fault::Sha256HmacKey) {
                VerifyMethod::Sha256Key
            } else {
                policy.verify
            },
        };
        let mut decision =
            decision::decide(&key, raw_body, peer, self.entries.get(&key), now, &policy);
        let mut taken = decision::apply_decision(&mut self.entries, &key, &decision);
        self.after_decision(&key, &decision, taken.as_ref(), now);
        if let (Decision::Rejected { .. }, true) = (&decision, self.has(Fault::AcceptBadSignature))
        {
            if let Some(entry) = self.entries.get(&key).cloned() {
                decision = Decision::Approve {
                    authority: Authority::Secret,
                    response_key: Zeroizing::new(entry.secret.as_bytes().to_vec()),
                };
                taken = Some(entry);
            }
        }
        if let (Decision::Rejected { .. }, true) = (&decision, self.has(Fault::TagComparedByPrefix))
        {
            let prefix_holds = self
                .entries
                .get(&key)
                .is_some_and(|e| tag_prefix_matches(raw_body, e.secret.as_bytes()));
            if prefix_holds {
                if let Some(entry) = self.entries.remove(&key) {
                    decision = Decision::Approve {
                        authority: Authority::Secret,
                        response_key: Zeroizing::new(entry.secret.as_bytes().to_vec()),
                    };
                    taken = Some(entry);
                }
            }
        }
        if let PeerCert::Verified { cn, ous, .. } = peer {
            let is_device = ous.iter().any(|o| o == crate::core::messages::OU_DEVICE);
            let loose = |x: &str| x.trim_end_matches('.').to_ascii_lowercase();
            let other = is_device
                && cn != device_id
                && (self.has(Fault::RenewOtherDevice)
                    || (self.has(Fault::RenewalLooseCn) && loose(cn) == loose(device_id)));
            let expired_own = is_device
                && cn == device_id
                && self.has(Fault::ExpiredRenewal)
                && matches!(peer.role(now), Role::Anonymous);
            if (other || expired_own) && !matches!(decision, Decision::Approve { .. }) {
                decision = Decision::Approve {
                    authority: Authority::Renewal,
                    response_key: Zeroizing::new(Vec::new()),
                };
            }
        }
        if self.has(Fault::SecretReusable) {
            if let Some(entry) = taken.take() {
                self.entries.entry(key).or_insert(entry);
            }
        }
        (decision, taken)
    }

    fn restore(&mut self, device_id: &str, entry: SecretEntry) {
        let key = self.key(device_id, false);
        self.entries.entry(key).or_insert(entry);
    }
}

/// Looks at the first bytes of a connection when a transport fault is on;
/// hands it back for TLS unless the fault dealt with it.
async fn transport(
    legacy: bool,
    plain: bool,
    shared: Arc<Shared>,
    mut tcp: tokio::net::TcpStream,
    peer_addr: SocketAddr,
) -> Option<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    if !legacy && !plain {
        return Some(tcp);
    }
    let mut buf = [0u8; 1024];
    let n = match tokio::time::timeout(Duration::from_secs(2), tcp.peek(&mut buf)).await {
        Ok(Ok(n)) => n,
        _ => return Some(tcp),
    };
    let first = &buf[..n];
    if plain && first.first().is_some_and(|b| *b != 0x16) {
        // The same service without TLS.
        let info = ConnInfo {
            peer_addr,
            peer_cert: Arc::new(PeerCert::None),
        };
        let svc = hyper::service::service_fn(move |req| {
            handler::handle(req, shared.clone(), info.clone())
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
            .await;
        return None;
    }
    if legacy {
        if let Some(v) = wire::offered_versions(first) {
            let max = v.iter().copied().max().unwrap_or(0);
            if (wire::TLS10..wire::TLS12).contains(&max) {
                // A ServerHello choosing the client's version, then close.
                let mut hs = vec![2u8, 0, 0, 38];
                hs.extend(max.to_be_bytes());
                hs.extend([0x42u8; 32]);
                hs.extend([0, 0xc0, 0x13, 0]);
                let mut rec = vec![0x16];
                rec.extend(max.to_be_bytes());
                rec.extend((hs.len() as u16).to_be_bytes());
                rec.extend(hs);
                let _ = tcp.write_all(&rec).await;
                return None;
            }
        }
    }
    Some(tcp)
}

/// The raw subject of the CA certificate `der` (empty if it does not parse).
fn ca_subject(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .map(|(_, c)| c.subject().as_raw().to_vec())
        .unwrap_or_default()
}

/// The `RecognisedNotVerified` fault: a client certificate whose issuer
/// name is the CA's subject is taken without checking its signature.
#[derive(Debug)]
struct NameOnlyVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    subject: Vec<u8>,
}

impl rustls::server::danger::ClientCertVerifier for NameOnlyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let named = X509Certificate::from_der(end_entity)
            .is_ok_and(|(_, c)| c.issuer().as_raw() == self.subject.as_slice());
        if named {
            return Ok(rustls::server::danger::ClientCertVerified::assertion());
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The bytes of an RSA key's modulus, leading zeros left out (`None` for
/// what is no RSA key).
fn rsa_modulus_bytes(pem: &str) -> Option<usize> {
    use rustls::pki_types::pem::PemObject;
    use x509_parser::prelude::FromDer;
    let der = rustls::pki_types::SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der.as_ref()).ok()?;
    match spki.parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            Some(rsa.modulus.iter().skip_while(|b| **b == 0).count())
        }
        _ => None,
    }
}

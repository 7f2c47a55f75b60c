//! The four endpoints (PROTOCOL §3–§7). Every error becomes a status code
//! through [`RequestError::status`] only.

use super::error::RequestError;
use super::faults::Fault;
use super::Shared;
use crate::core::decision::{Authority, Decision, PeerCert, Role};
use crate::core::messages::{
    ErrorMessage, ProvisionResponse, ProvisionStatus, StatusMessage, MAX_BODY,
};
use crate::core::validate::{self, check_device_id};
use crate::pki::{verify_csr, DeviceCertOptions, DevicePublicKey};
use crate::server::store::IssuedRecord;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Time allowed for a client to send its whole body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-connection facts handed to every request on it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer_addr: SocketAddr,
    /// The verified client certificate, if any.
    pub peer_cert: Arc<PeerCert>,
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn error_response(e: &RequestError) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&ErrorMessage {
        error: validate::one_line(e),
    })
    .unwrap_or_default();
    let mut r = json_response(e.status(), body);
    if let RequestError::MethodNotAllowed { allow } = e {
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    }
    r
}

/// A connection closed without an answer (the `stall_silent_close` choice).
#[derive(Debug, thiserror::Error)]
#[error("connection closed without an answer: {0}")]
pub struct Closed(&'static str);

/// Serves one request.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: ConnInfo,
) -> Result<Response<Full<Bytes>>, Closed> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let result = route(req, &shared, &conn).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            // A failure on our side is an error; 501 for an unknown method
            // is a deliberate answer like any 4xx.
            if matches!(e, RequestError::Internal(_)) {
                tracing::error!(%method, %path, peer = %conn.peer_addr, error = %e, "request failed");
            } else {
                tracing::debug!(%method, %path, peer = %conn.peer_addr, error = %e, "request refused");
            }
            let choices = &shared.config.choices;
            if choices.stall_silent_close && matches!(e, RequestError::Timeout) {
                return Err(Closed("the body stalled"));
            }
            let mut r = error_response(&e);
            if choices.close_on_error {
                r.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            r
        }
    };
    if shared.faults.has(Fault::GoWireFormat) {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    Ok(resp)
}

fn expect_method(
    shared: &Shared,
    req: &Request<Incoming>,
    m: Method,
    allow: &'static str,
) -> Result<(), RequestError> {
    if req.method() == m || shared.faults.has(Fault::AnyMethod) {
        Ok(())
    } else {
        Err(RequestError::MethodNotAllowed { allow })
    }
}

async fn route(
    req: Request<Incoming>,
    shared: &Shared,
    conn: &ConnInfo,
) -> Result<Response<Full<Bytes>>, RequestError> {
    // RFC 9110 §9: the methods HTTP defines; any other token is unknown.
    const KNOWN_METHODS: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    if !KNOWN_METHODS.contains(&req.method().as_str()) && !shared.faults.has(Fault::AnyMethod) {
        return Err(RequestError::NotImplemented);
    }
    let path = req.uri().path().to_string();
    let paths = &shared.paths;
    match path.as_str() {
        p if p == paths.directory => {
            expect_method(shared, &req, Method::GET, "GET")?;
            Ok(json_response(StatusCode::OK, shared.directory_json.clone()))
        }
        p if p == paths.post_oob_secret => {
            expect_method(shared, &req, Method::POST, "POST")?;
            if !shared.faults.has(Fault::OobNoAuth) {
                let checked = require_admin(conn, OffsetDateTime::now_utc());
                if shared.faults.has(Fault::GoWireFormat) {
                    // The reference swaps 401 and 403 here.
                    match checked {
                        Err(RequestError::Unauthenticated) => {
                            return Err(RequestError::Forbidden("no client certificate".into()))
                        }
                        Err(RequestError::Forbidden(_)) => {
                            return Err(RequestError::Unauthenticated)
                        }
                        other => other?,
                    }
                } else {
                    checked?;
                }
            }
            let body = read_body(shared, req).await?;
            let _inflight = Inflight::enter(&shared.oob_inflight);
            if shared.faults.has(Fault::DieUnderConcurrency) {
                racy_map_access(shared, &shared.inflight).await;
            }
            post_oob(shared, &body)
        }
        p if p == paths.post_provision_request => {
            expect_method(shared, &req, Method::POST, "POST")?;
            let body = read_body(shared, req).await?;
            provision(shared, conn, body).await
        }
        p if p.starts_with(paths.status_prefix()) => {
            expect_method(shared, &req, Method::GET, "GET")?;
            if shared.faults.has(Fault::StatusAnyCert) {
                if matches!(
                    conn.peer_cert.role(OffsetDateTime::now_utc()),
                    Role::Anonymous
                ) {
                    return Err(RequestError::Unauthenticated);
                }
            } else {
                require_admin(conn, OffsetDateTime::now_utc())?;
            }
            let id = &p[paths.status_prefix().len()..];
            status(shared, id).await
        }
        _ => Err(RequestError::NotFound),
    }
}

fn require_admin(conn: &ConnInfo, now: OffsetDateTime) -> Result<(), RequestError> {
    match conn.peer_cert.role(now) {
        Role::Admin(_) | Role::Plugin(_) => Ok(()),
        Role::Anonymous => Err(RequestError::Unauthenticated),
        Role::Device(cn) => Err(RequestError::Forbidden(format!("device `{cn}`"))),
        Role::Other => Err(RequestError::Forbidden("not admin or plugin".into())),
    }
}

/// An oversized body up to this size is read and discarded before the 413
/// goes out, so a client still writing it gets the answer instead of a reset.
const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;

async fn read_body(shared: &Shared, req: Request<Incoming>) -> Result<Bytes, RequestError> {
    let max = if shared.faults.has(Fault::NoBodyLimit) {
        16 * 1024 * 1024
    } else if shared.faults.has(Fault::BodyLimitOffByOne) {
        MAX_BODY - 1
    } else {
        MAX_BODY
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > DRAIN_LIMIT.max(max as u64)) {
        return Err(RequestError::TooLarge { limit: max });
    }
    // The ChunkedNoLimit fault: without a declared length, no limit.
    let max = if declared.is_none() && shared.faults.has(Fault::ChunkedNoLimit) {
        16 * 1024 * 1024
    } else {
        max
    };
    let mut body = req.into_body();
    let read = async {
        let mut buf = bytes::BytesMut::new();
        let mut total: u64 = 0;
        let mut too_large = declared.is_some_and(|len| len > max as u64);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                RequestError::Invalid(validate::InvalidInput::Json(format!(
                    "body could not be read: {e}"
                )))
            })?;
            if let Ok(data) = frame.into_data() {
                total += data.len() as u64;
                if total > max as u64 {
                    too_large = true;
                    buf.clear();
                }
                if too_large {
                    if total > DRAIN_LIMIT {
                        break;
                    }
                } else {
                    buf.extend_from_slice(&data);
                }
            }
        }
        if too_large {
            Err(RequestError::TooLarge { limit: max })
        } else {
            Ok(buf.freeze())
        }
    };
    if shared.faults.has(Fault::NoBodyTimeout) {
        return read.await;
    }
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(RequestError::Timeout),
        Ok(r) => r,
    }
}

fn post_oob(shared: &Shared, body: &[u8]) -> Result<Response<Full<Bytes>>, RequestError> {
    let now = OffsetDateTime::now_utc();
    let post = if shared.faults.has(Fault::IgnoreValidUntil)
        || shared.faults.has(Fault::AcceptEmptySecret)
        || shared.faults.has(Fault::NoDeviceIdCheck)
    {
        faulty_parse_oob(shared, body, now)?
    } else if shared.faults.has(Fault::ValidUntilIgnoresOffset) {
        validate::parse_oob(&offset_blind(body), now)?
    } else {
        validate::parse_oob(body, now)?
    };
    {
        let mut secrets = shared.lock_secrets();
        if secrets.len() >= shared.config.max_secrets {
            secrets.purge_expired(now);
        }
        if secrets.len() >= shared.config.max_secrets && secrets.get(&post.device_id).is_none() {
            return Err(RequestError::Internal("secret store is full".into()));
        }
        let key = super::faults::secret_key(&shared.faults, &post.device_id, false);
        let carried = shared
            .faults
            .has(Fault::RepostKeepsGuessCount)
            .then(|| secrets.get(&key).map(|e| e.failures))
            .flatten();
        let mut seq = shared.sequence.lock().unwrap_or_else(|p| p.into_inner());
        let fixup = super::faults::before_post(&shared.faults, &mut seq, &secrets, &key);
        secrets.post(&key, &post.secret, post.valid_until);
        fixup.apply(&shared.faults, &mut seq, &mut secrets, &key);
        if let Some(n) = carried {
            secrets.set_failures(&key, n);
        }
    }
    tracing::info!(device = %post.device_id, valid_until = %post.valid_until, "OOB secret posted");
    let body = if shared.faults.has(Fault::GoWireFormat) {
        Vec::new()
    } else {
        b"{}".to_vec()
    };
    Ok(json_response(StatusCode::OK, body))
}

/// Counts provisioning requests in flight.
/// Counts a request in flight while it lives.
struct Inflight<'a> {
    counter: &'a std::sync::atomic::AtomicUsize,
}

impl<'a> Inflight<'a> {
    fn enter(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Inflight { counter }
    }
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.counter
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The `DieUnderConcurrency` fault: the secret map is touched without a
/// lock, slowly; when a request of the other kind is in flight at the same
/// time, the process dies half the time (as Go aborts on a concurrent map
/// read and write). Sequential traffic never triggers it.
async fn racy_map_access(shared: &Shared, other_kind: &std::sync::atomic::AtomicUsize) {
    if other_kind.load(std::sync::atomic::Ordering::SeqCst) > 0 && rand::random::<bool>() {
        shared.die.notify_one();
        panic!("deliberate fault: concurrent map read and map write");
    }
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
}

/// The OOB parser of a deliberately broken server.
fn faulty_parse_oob(
    shared: &Shared,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<validate::OobPost, RequestError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| validate::InvalidInput::Json(validate::one_line(&e)))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let (device_id, secret) = (s("deviceID"), s("oobSecret"));
    if !shared.faults.has(Fault::NoDeviceIdCheck) {
        check_device_id(&device_id)?;
    }
    if secret.is_empty() && !shared.faults.has(Fault::AcceptEmptySecret) {
        return Err(validate::InvalidInput::MissingField("oobSecret").into());
    }
    let valid_until = if shared.faults.has(Fault::IgnoreValidUntil) {
        now + time::Duration::days(3650)
    } else {
        let strict =
            serde_json::json!({"deviceID": "x", "oobSecret": "x", "validUntil": s("validUntil")});
        validate::parse_oob(strict.to_string().as_bytes(), now)?.valid_until
    };
    Ok(validate::OobPost {
        device_id,
        secret,
        valid_until,
    })
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

async fn provision(
    shared: &Shared,
    conn: &ConnInfo,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, RequestError> {
    let now = OffsetDateTime::now_utc();
    let f = |x| shared.faults.has(x);
    let _inflight = Inflight::enter(&shared.inflight);
    if f(Fault::DieUnderConcurrency) {
        racy_map_access(shared, &shared.oob_inflight).await;
    }
    if f(Fault::PanicOnNestedObject) && has_nested_object(&body) {
        panic!("deliberate fault: nested object in a provisioning request");
    }
    if f(Fault::ErrorOnLongDeviceId) {
        let id_len = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["deviceID"].as_str().map(str::len))
            .unwrap_or(0);
        if id_len > 64 {
            return Err(RequestError::Internal(
                "deliberate fault: long device ID".into(),
            ));
        }
    }
    let req = if f(Fault::NoDeviceIdCheck) {
        let mut lenient: crate::core::messages::ProvisionRequest = serde_json::from_slice(&body)
            .map_err(|e| validate::InvalidInput::Json(validate::one_line(&e)))?;
        lenient.csr_pem = lenient.csr_pem.filter(|c| !c.is_empty());
        lenient
    } else {
        validate::parse_provision_request(&body)?
    };
    if f(Fault::DeviceIdMax127) && req.device_id.len() >= 128 {
        return Err(validate::InvalidInput::DeviceId("longer than 127 characters").into());
    }
    if f(Fault::KeyPemNeedsNewline)
        && (!req.public_key_pem.ends_with("-----\n") || req.public_key_pem.contains('\r'))
    {
        return Err(RequestError::BadKey(crate::pki::PkiError::NotPem(
            "PUBLIC KEY",
        )));
    }
    let key = DevicePublicKey::from_pem(&req.public_key_pem).map_err(RequestError::BadKey)?;
    let choices = &shared.config.choices;
    if choices.p256_only && key.kind() != crate::pki::KeyKind::EcdsaP256 {
        return Err(RequestError::BadKey(crate::pki::PkiError::UnsupportedKey(
            format!(
                "{:?} (this server issues for ECDSA P-256 keys only)",
                key.kind()
            ),
        )));
    }
    if let Some(csr) = &req.csr_pem {
        // Without the `csr` extension the member is one it does not know.
        if !f(Fault::IgnoreCsr) && !choices.no_extensions {
            verify_csr(csr, &key).map_err(RequestError::BadCsr)?;
        }
    }
    if req.ip != conn.peer_addr.ip().to_string() {
        tracing::debug!(device = %req.device_id, claimed = %req.ip, peer = %conn.peer_addr, "ip field differs from peer address");
    }
    let policy = crate::core::decision::Policy {
        guess_limit: if f(Fault::NoGuessLimit) {
            u32::MAX
        } else if f(Fault::GuessLimitFour) {
            4
        } else {
            shared.config.guess_limit
        },
        verify: if f(Fault::GoWireFormat) {
            crate::core::decision::VerifyMethod::Reserialize
        } else if f(Fault::Sha256HmacKey) {
            crate::core::decision::VerifyMethod::Sha256Key
        } else {
            crate::core::decision::VerifyMethod::RawBlanking
        },
    };
    let device_peer = matches!(conn.peer_cert.role(now), Role::Device(_));
    let skey = super::faults::secret_key(&shared.faults, &req.device_id, device_peer);
    let (mut decision, mut taken) = {
        let mut secrets = shared.lock_secrets();
        let out = secrets.decide_and_apply(&skey, &body, &conn.peer_cert, now, &policy);
        super::faults::after_decision(
            &shared.faults,
            &mut shared.sequence.lock().unwrap_or_else(|p| p.into_inner()),
            &mut secrets,
            &skey,
            &out.0,
            out.1.as_ref(),
            now,
        );
        if let (Decision::Rejected { .. }, true) = (&out.0, f(Fault::AcceptBadSignature)) {
            match secrets.get(&skey).cloned() {
                Some(entry) => (
                    Decision::Approve {
                        authority: Authority::Secret,
                        response_key: zeroize::Zeroizing::new(entry.secret.as_bytes().to_vec()),
                    },
                    Some(entry),
                ),
                None => out,
            }
        } else {
            out
        }
    };
    if let PeerCert::Verified { cn, ous, .. } = conn.peer_cert.as_ref() {
        let is_device = ous.iter().any(|o| o == crate::core::messages::OU_DEVICE);
        let loose = |x: &str| x.trim_end_matches('.').to_ascii_lowercase();
        let other = is_device
            && cn != &req.device_id
            && (f(Fault::RenewOtherDevice)
                || (f(Fault::RenewalLooseCn) && loose(cn) == loose(&req.device_id)));
        let expired_own = is_device
            && cn == &req.device_id
            && f(Fault::ExpiredRenewal)
            && matches!(conn.peer_cert.role(now), Role::Anonymous);
        if (other || expired_own) && !matches!(decision, Decision::Approve { .. }) {
            decision = Decision::Approve {
                authority: Authority::Renewal,
                response_key: zeroize::Zeroizing::new(Vec::new()),
            };
        }
    }
    if f(Fault::SecretReusable) {
        if let Some(entry) = taken.take() {
            shared.lock_secrets().restore(&skey, entry);
        }
    }
    let go = f(Fault::GoWireFormat);
    let ca_pem = if go {
        String::new()
    } else {
        shared.ca.cert_pem().to_string()
    };
    match decision {
        Decision::Waiting { reason } => {
            tracing::info!(device = %req.device_id, ?reason, "provisioning: Waiting");
            let mut r = ProvisionResponse {
                retry_sec: if f(Fault::WaitingWithoutRetry) || go {
                    0
                } else {
                    shared.config.waiting_retry_sec
                },
                status: ProvisionStatus::Waiting,
                ca_cert: ca_pem,
                client_cert: String::new(),
                signature: String::new(),
            };
            Ok(json_response(StatusCode::OK, shared.answer(&mut r, None)))
        }
        Decision::Rejected {
            reason,
            secret_discarded,
        } => {
            tracing::warn!(device = %req.device_id, %reason, secret_discarded, "provisioning: Rejected");
            let client_cert = if f(Fault::CertOnRejected) {
                shared
                    .ca
                    .issue_device(&req.device_id, &key, shared.config.cert_validity, now)
                    .map(|c| c.pem)
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let mut r = ProvisionResponse {
                retry_sec: 0,
                status: ProvisionStatus::Rejected,
                ca_cert: ca_pem,
                client_cert,
                signature: String::new(),
            };
            Ok(json_response(StatusCode::OK, shared.answer(&mut r, None)))
        }
        Decision::Approve {
            authority,
            response_key,
        } => {
            let counter = f(Fault::SerialCounter).then(|| {
                let n = shared
                    .serial_counter
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut s = vec![0x4f, 0x12, 0x9a, 0x33, 0x71, 0x0c, 0x5e, 0x21];
                s.extend(n.to_be_bytes());
                s
            });
            let opts = DeviceCertOptions {
                serial: f(Fault::SerialFromTime)
                    .then(|| (now.unix_timestamp() as u32).to_be_bytes().to_vec())
                    .or(counter),
                omit_client_auth: f(Fault::NoClientAuthEku),
                add_server_auth: f(Fault::ServerAuthEku),
                extra_ou: (f(Fault::AdminOuLeaks) && matches!(authority, Authority::Administrator))
                    .then(|| "admin".to_string()),
            };
            let cn = if f(Fault::WrongCn) {
                format!("x-{}", req.device_id)
            } else if f(Fault::CnCaseFolded) {
                req.device_id.to_lowercase()
            } else {
                req.device_id.clone()
            };
            let issued = shared
                .issuing_ca
                .as_ref()
                .unwrap_or(&shared.ca)
                .issue_device_with(&cn, &key, shared.config.cert_validity, now, &opts)
                .map_err(|e| RequestError::Internal(e.to_string()));
            let record = issued.map(|c| IssuedRecord {
                device_id: req.device_id.clone(),
                // Time-based serials repeat; the reference stores them anyway.
                serial: if f(Fault::SerialFromTime) {
                    format!("{}-{:08x}", c.serial_hex, rand::random::<u32>())
                } else {
                    c.serial_hex.clone()
                },
                pem: c.pem.clone(),
                issued_at: now.unix_timestamp(),
                not_after: c.not_after.unix_timestamp(),
                authority: match authority {
                    Authority::Secret => "secret",
                    Authority::Administrator => "admin",
                    Authority::Renewal => "renewal",
                }
                .into(),
            });
            let stored = match record {
                Ok(rec) => match shared.committer.record(rec.clone()).await {
                    Ok(()) => Ok(rec),
                    Err(e) => Err(RequestError::Internal(e)),
                },
                Err(e) => Err(e),
            };
            let rec = match stored {
                Ok(rec) => rec,
                Err(e) => {
                    if let Some(entry) = taken {
                        shared.lock_secrets().restore(&skey, entry);
                    }
                    return Err(e);
                }
            };
            tracing::info!(device = %req.device_id, serial = %rec.serial, authority = %rec.authority, "provisioning: Approved");
            let mut r = ProvisionResponse {
                retry_sec: if go {
                    0
                } else {
                    shared.config.renew_retry_sec()
                },
                status: ProvisionStatus::Approved,
                ca_cert: ca_pem,
                client_cert: rec.pem,
                signature: String::new(),
            };
            let body = if f(Fault::UnsignedApproved) {
                shared.answer(&mut r, None)
            } else if f(Fault::Sha256ResponseKey) {
                use sha2::Digest;
                shared.answer(&mut r, Some(&sha2::Sha256::digest(&response_key[..])))
            } else {
                shared.answer(&mut r, Some(&response_key))
            };
            Ok(json_response(StatusCode::OK, body))
        }
    }
}

async fn status(shared: &Shared, id: &str) -> Result<Response<Full<Bytes>>, RequestError> {
    check_device_id(id)?;
    let store = shared.store.clone();
    let key = id.to_string();
    let cached = if shared.faults.has(Fault::StatusStaleAfterRenewal) {
        shared
            .status_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    } else {
        None
    };
    let latest = match cached {
        Some(r) => Some(r),
        None => tokio::task::spawn_blocking(move || store.latest(&key))
            .await
            .map_err(|e| RequestError::Internal(e.to_string()))?
            .map_err(|e| RequestError::Internal(e.to_string()))?,
    };
    if let (Some(r), true) = (&latest, shared.faults.has(Fault::StatusStaleAfterRenewal)) {
        shared
            .status_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_insert_with(|| r.clone());
    }
    let latest = match latest {
        None if shared.faults.has(Fault::StatusPrefixMatch) => {
            // `LIKE 'id%'`: the latest certificate of any ID extending this one.
            let store = shared.store.clone();
            let prefix = id.to_string();
            tokio::task::spawn_blocking(move || store.all())
                .await
                .map_err(|e| RequestError::Internal(e.to_string()))?
                .map_err(|e| RequestError::Internal(e.to_string()))?
                .into_iter()
                .filter(|r| r.device_id.starts_with(&prefix))
                .max_by_key(|r| r.issued_at)
        }
        other => other,
    };
    let latest = if shared.faults.has(Fault::StatusFromSecretTable)
        && shared.lock_secrets().get(id).is_some()
    {
        None
    } else {
        latest
    };
    let go_fault = shared.faults.has(Fault::GoWireFormat);
    if go_fault || shared.config.wire == super::Wire::Go {
        // The Go reference's status type: clientCert is a []byte (base64 of
        // the PEM, or null); the reference itself leaves caCert empty.
        use base64::Engine;
        let ca = if go_fault {
            String::new()
        } else {
            shared.ca.cert_pem().to_string()
        };
        let (status, cert) = match &latest {
            Some(r) => (
                "Approved",
                serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(r.pem.as_bytes()),
                ),
            ),
            None => ("Waiting", serde_json::Value::Null),
        };
        let mut body = b"{\"deviceID\":".to_vec();
        body.extend(crate::core::json::to_go_json(id));
        body.extend(format!(",\"status\":\"{status}\",\"caCert\":").as_bytes());
        body.extend(crate::core::json::to_go_json(&ca));
        body.extend(b",\"clientCert\":");
        body.extend(crate::core::json::to_go_json(&cert));
        body.push(b'}');
        return Ok(json_response(StatusCode::OK, body));
    }
    let msg = StatusMessage {
        device_id: id.to_string(),
        status: if latest.is_some() {
            ProvisionStatus::Approved
        } else {
            ProvisionStatus::Waiting
        },
        ca_cert: shared.ca.cert_pem().to_string(),
        client_cert: latest.map(|r| r.pem).unwrap_or_default(),
    };
    Ok(json_response(
        StatusCode::OK,
        shared.config.choices.answer(&msg, None),
    ))
}

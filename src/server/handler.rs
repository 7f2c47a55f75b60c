//! The four endpoints (PROTOCOL §3–§7). Every error becomes a status code
//! through [`RequestError::status`] only.

use super::error::RequestError;
use super::quirks::{AnswerContext, Endpoint};
use super::store::IssuedRecord;
use super::Shared;
use crate::core::decision::{Authority, Decision, PeerCert, Policy};
use crate::core::messages::{ErrorMessage, ProvisionResponse, ProvisionStatus, StatusMessage};
use crate::core::validate::{self, DeviceId};
use crate::pki::{verify_csr, DevicePublicKey};
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use time::OffsetDateTime;

/// Per-connection facts handed to every request on it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer_addr: SocketAddr,
    /// The verified client certificate, if any.
    pub peer_cert: Arc<PeerCert>,
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
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
    let endpoint = shared.endpoint_of(&path);
    let result = route(req, endpoint, &shared, &conn).await;
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
    shared.quirks.finish(endpoint, &mut resp);
    Ok(resp)
}

async fn route(
    req: Request<Incoming>,
    endpoint: Option<Endpoint>,
    shared: &Shared,
    conn: &ConnInfo,
) -> Result<Response<Full<Bytes>>, RequestError> {
    let now = shared.config.clock.now();
    shared
        .quirks
        .admit(endpoint, req.method(), &conn.peer_cert.role(now))?;
    let Some(endpoint) = endpoint else {
        return Err(RequestError::NotFound);
    };
    match endpoint {
        Endpoint::Directory => Ok(json_response(StatusCode::OK, shared.directory_json.clone())),
        Endpoint::PostOobSecret => {
            let body = read_body(shared, req).await?;
            let _held = shared.quirks.enter(endpoint).await;
            post_oob(shared, &body, now)
        }
        Endpoint::PostProvisionRequest => {
            let body = read_body(shared, req).await?;
            let _held = shared.quirks.enter(endpoint).await;
            provision(shared, conn, body, now).await
        }
        Endpoint::Status => {
            let path = req.uri().path();
            let id = path
                .strip_prefix(shared.paths.status_prefix())
                .unwrap_or_default();
            status(shared, id).await
        }
    }
}

/// An oversized body up to this size is read and discarded before the 413
/// goes out, so a client still writing it gets the answer instead of a reset.
const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;

async fn read_body(shared: &Shared, req: Request<Incoming>) -> Result<Bytes, RequestError> {
    let limits = shared.quirks.body_limits();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > DRAIN_LIMIT.max(limits.declared as u64)) {
        return Err(RequestError::TooLarge {
            limit: limits.declared,
        });
    }
    let max = if declared.is_some() {
        limits.declared
    } else {
        limits.chunked
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
    match limits.timeout {
        None => read.await,
        Some(limit) => match tokio::time::timeout(limit, read).await {
            Err(_) => Err(RequestError::Timeout),
            Ok(r) => r,
        },
    }
}

fn post_oob(
    shared: &Shared,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Response<Full<Bytes>>, RequestError> {
    let post = shared.quirks.parse_oob(body, now)?;
    {
        let mut secrets = shared.lock_secrets();
        if secrets.len() >= shared.config.max_secrets {
            secrets.purge_expired(now);
        }
        if secrets.len() >= shared.config.max_secrets && !secrets.holds(&post.device_id) {
            return Err(RequestError::Internal("secret store is full".into()));
        }
        secrets.post(&post.device_id, &post.secret, post.valid_until);
    }
    tracing::info!(device = %post.device_id, valid_until = %post.valid_until, "OOB secret posted");
    Ok(json_response(StatusCode::OK, b"{}".to_vec()))
}

async fn provision(
    shared: &Shared,
    conn: &ConnInfo,
    body: Bytes,
    now: OffsetDateTime,
) -> Result<Response<Full<Bytes>>, RequestError> {
    let req = shared.quirks.parse_provision(&body)?;
    let key = shared
        .quirks
        .parse_key(&req.public_key_pem)
        .map_err(RequestError::BadKey)?;
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
        if !choices.no_extensions {
            verify_csr(csr, &key).map_err(RequestError::BadCsr)?;
        }
    }
    if req.ip != conn.peer_addr.ip() {
        tracing::debug!(device = %req.device_id, claimed = %req.ip, peer = %conn.peer_addr, "ip field differs from peer address");
    }
    let policy = Policy {
        guess_limit: shared.config.guess_limit,
        ..Policy::default()
    };
    let (decision, taken) = shared
        .quirks
        .decide(shared, &req.device_id, &body, &conn.peer_cert, now, policy)
        .await;
    let ctx = AnswerContext {
        shared,
        request: &req,
        key: &key,
        now,
    };
    let ca_cert = shared.ca.cert_pem().to_string();
    let (mut answer, mut response_key) = match decision {
        Decision::Waiting { reason } => {
            tracing::info!(device = %req.device_id, ?reason, "provisioning: Waiting");
            let answer = ProvisionResponse {
                retry_sec: shared.config.waiting_retry_sec,
                status: ProvisionStatus::Waiting,
                ca_cert,
                client_cert: String::new(),
                signature: String::new(),
            };
            (answer, None)
        }
        Decision::Rejected {
            reason,
            secret_discarded,
        } => {
            tracing::warn!(device = %req.device_id, %reason, secret_discarded, "provisioning: Rejected");
            let answer = ProvisionResponse {
                retry_sec: 0,
                status: ProvisionStatus::Rejected,
                ca_cert,
                client_cert: String::new(),
                signature: String::new(),
            };
            (answer, None)
        }
        Decision::Approve {
            authority,
            response_key,
        } => {
            let stored = issue_and_store(shared, &req.device_id, &key, authority, now).await;
            let rec = match stored {
                Ok(rec) => rec,
                Err(e) => {
                    if let Some(entry) = taken {
                        shared.lock_secrets().restore(&req.device_id, entry);
                    }
                    return Err(e);
                }
            };
            tracing::info!(device = %req.device_id, serial = %rec.serial, authority = %rec.authority, "provisioning: Approved");
            let answer = ProvisionResponse {
                retry_sec: shared.config.renew_retry_sec(),
                status: ProvisionStatus::Approved,
                ca_cert,
                client_cert: rec.pem,
                signature: String::new(),
            };
            (answer, Some(response_key))
        }
    };
    shared.quirks.answer(&ctx, &mut answer, &mut response_key);
    Ok(json_response(
        StatusCode::OK,
        shared.answer(&mut answer, response_key.as_deref().map(|k| &k[..])),
    ))
}

/// Issues the certificate for an approved request and makes it durable
/// before the answer goes out (PROTOCOL §5 step 5).
async fn issue_and_store(
    shared: &Shared,
    device_id: &DeviceId,
    key: &DevicePublicKey,
    authority: Authority,
    now: OffsetDateTime,
) -> Result<IssuedRecord, RequestError> {
    let issued = shared
        .quirks
        .issue(shared, device_id, key, authority, now)
        .map_err(|e| RequestError::Internal(e.to_string()))?;
    let rec = IssuedRecord {
        device_id: device_id.to_string(),
        serial: issued.serial_hex,
        pem: issued.pem,
        issued_at: now.unix_timestamp(),
        not_after: issued.not_after.unix_timestamp(),
        authority: match authority {
            Authority::Secret => "secret",
            Authority::Administrator => "admin",
            Authority::Renewal => "renewal",
        }
        .into(),
    };
    shared
        .quirks
        .persist(shared, rec.clone())
        .await
        .map_err(RequestError::Internal)?;
    Ok(rec)
}

async fn status(shared: &Shared, id: &str) -> Result<Response<Full<Bytes>>, RequestError> {
    let id = DeviceId::parse(id)?;
    let store = shared.store.clone();
    let key = id.to_string();
    let latest = tokio::task::spawn_blocking(move || store.latest(&key))
        .await
        .map_err(|e| RequestError::Internal(e.to_string()))?
        .map_err(|e| RequestError::Internal(e.to_string()))?;
    let latest = shared.quirks.status(shared, &id, latest)?;
    if shared.config.wire == super::Wire::Go {
        let body = go_status_body(
            &id,
            shared.ca.cert_pem(),
            latest.as_ref().map(|r| r.pem.as_str()),
        );
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

/// The Go reference's status answer: `clientCert` is a `[]byte` (base64
/// of the PEM, or null).
pub(crate) fn go_status_body(id: &str, ca: &str, cert_pem: Option<&str>) -> Vec<u8> {
    use base64::Engine;
    let (status, cert) = match cert_pem {
        Some(pem) => (
            "Approved",
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(pem)),
        ),
        None => ("Waiting", serde_json::Value::Null),
    };
    let mut body = b"{\"deviceID\":".to_vec();
    body.extend(crate::core::json::to_go_json(id));
    body.extend(format!(",\"status\":\"{status}\",\"caCert\":").as_bytes());
    body.extend(crate::core::json::to_go_json(ca));
    body.extend(b",\"clientCert\":");
    body.extend(crate::core::json::to_go_json(&cert));
    body.push(b'}');
    body
}

//! The one seam where a server may depart from the honest one: a
//! [`Quirks`] value consulted at a few named points. Every method's
//! default is what the reference server does, so the honest server is
//! [`Honest`] and reads top to bottom with no fault branches. The suite's
//! deliberately broken server (the suite's `faulty_server`) is the only
//! other implementation; nothing here names a fault.

use super::error::RequestError;
use super::mdns::Advertisement;
use super::store::IssuedRecord;
use super::Shared;
use crate::core::decision::{
    Authority, Decision, PeerCert, Policy, Role, SecretEntry, SecretStore,
};
use crate::core::messages::{ProvisionResponse, MAX_BODY};
use crate::core::validate::{self, DeviceId, OobPost, ValidRequest};
use crate::pki::{CertAuthority, DevicePublicKey, IssuedCert, PkiError};
use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;
use rustls::server::danger::ClientCertVerifier;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// A boxed future, as the asynchronous hooks return.
pub(crate) type Hook<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The four endpoints (PROTOCOL §3–§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET` the directory.
    Directory,
    /// `POST` an OOB secret.
    PostOobSecret,
    /// `POST` a provisioning request.
    PostProvisionRequest,
    /// `GET` a device's status.
    Status,
}

/// Limits on reading a request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// Largest body accepted when its length is declared.
    pub(crate) declared: usize,
    /// Largest body accepted when it is chunked.
    pub(crate) chunked: usize,
    /// Time allowed for the whole body (`None`: no limit).
    pub(crate) timeout: Option<Duration>,
}

impl BodyLimits {
    /// The reference server's limits (PROTOCOL §5).
    pub(crate) const HONEST: BodyLimits = BodyLimits {
        declared: MAX_BODY,
        chunked: MAX_BODY,
        timeout: Some(Duration::from_secs(10)),
    };
}

/// What is known when a provisioning answer is built.
pub(crate) struct AnswerContext<'a> {
    /// The server's state.
    pub(crate) shared: &'a Shared,
    /// The validated request.
    pub(crate) request: &'a ValidRequest,
    /// Its public key.
    pub(crate) key: &'a DevicePublicKey,
    /// The time of the decision.
    pub(crate) now: OffsetDateTime,
}

/// The OOB secrets a server holds, as the provisioning path uses them.
/// The reference server's is [`SecretStore`] of the pure core.
pub(crate) trait SecretBook: Send {
    /// Stores (or replaces) a device's secret.
    fn post(&mut self, device_id: &str, secret: &str, valid_until: OffsetDateTime);
    /// Whether a secret is held for the device.
    fn holds(&self, device_id: &str) -> bool;
    /// Number of secrets held.
    fn len(&self) -> usize;
    /// Drops expired secrets.
    fn purge_expired(&mut self, now: OffsetDateTime);
    /// Decides a request and applies the decision's effect (PROTOCOL §5).
    fn decide(
        &mut self,
        device_id: &str,
        raw_body: &[u8],
        peer: &PeerCert,
        now: OffsetDateTime,
        policy: &Policy,
    ) -> (Decision, Option<SecretEntry>);
    /// Puts back a secret an approval took when issuing then failed.
    fn restore(&mut self, device_id: &str, entry: SecretEntry);
}

impl SecretBook for SecretStore {
    fn post(&mut self, device_id: &str, secret: &str, valid_until: OffsetDateTime) {
        SecretStore::post(self, device_id, secret, valid_until);
    }
    fn holds(&self, device_id: &str) -> bool {
        self.get(device_id).is_some()
    }
    fn len(&self) -> usize {
        SecretStore::len(self)
    }
    fn purge_expired(&mut self, now: OffsetDateTime) {
        SecretStore::purge_expired(self, now);
    }
    fn decide(
        &mut self,
        device_id: &str,
        raw_body: &[u8],
        peer: &PeerCert,
        now: OffsetDateTime,
        policy: &Policy,
    ) -> (Decision, Option<SecretEntry>) {
        self.decide_and_apply(device_id, raw_body, peer, now, policy)
    }
    fn restore(&mut self, device_id: &str, entry: SecretEntry) {
        SecretStore::restore(self, device_id, entry);
    }
}

/// Who may use an endpoint with a method (PROTOCOL §1, §4, §7): the
/// reference server's admission.
pub(crate) fn admission(
    endpoint: Option<Endpoint>,
    method: &Method,
    role: &Role,
) -> Result<(), RequestError> {
    match method_admission(endpoint, method)? {
        Endpoint::PostOobSecret | Endpoint::Status => require_admin(role),
        Endpoint::Directory | Endpoint::PostProvisionRequest => Ok(()),
    }
}

/// The endpoint a request may use with its method: 501 for a method HTTP
/// does not define, 404 for no endpoint, 405 for another method.
pub(crate) fn method_admission(
    endpoint: Option<Endpoint>,
    method: &Method,
) -> Result<Endpoint, RequestError> {
    // RFC 9110 §9: the methods HTTP defines; any other token is unknown.
    const KNOWN_METHODS: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    if !KNOWN_METHODS.contains(&method.as_str()) {
        return Err(RequestError::NotImplemented);
    }
    let endpoint = endpoint.ok_or(RequestError::NotFound)?;
    let (expected, allow) = expected_method(endpoint);
    if method != expected {
        return Err(RequestError::MethodNotAllowed { allow });
    }
    Ok(endpoint)
}

/// The method an endpoint answers, and its `Allow` header.
pub(crate) fn expected_method(endpoint: Endpoint) -> (Method, &'static str) {
    match endpoint {
        Endpoint::Directory | Endpoint::Status => (Method::GET, "GET"),
        Endpoint::PostOobSecret | Endpoint::PostProvisionRequest => (Method::POST, "POST"),
    }
}

/// Admin or plugin credentials only (PROTOCOL §4, §7).
pub(crate) fn require_admin(role: &Role) -> Result<(), RequestError> {
    match role {
        Role::Admin(_) | Role::Plugin(_) => Ok(()),
        Role::Anonymous => Err(RequestError::Unauthenticated),
        Role::Device(cn) => Err(RequestError::Forbidden(format!("device `{cn}`"))),
        Role::Other => Err(RequestError::Forbidden("not admin or plugin".into())),
    }
}

/// The points where a server may depart from the reference. Every default
/// is the reference server's behaviour.
pub(crate) trait Quirks: Send + Sync + 'static {
    /// Transport: the server's TLS certificate and key (PEM).
    fn server_credential(
        &self,
        _ca: &CertAuthority,
        honest: (String, String),
    ) -> Result<(String, String), PkiError> {
        Ok(honest)
    }

    /// Transport: the verifier of client certificates.
    fn client_verifier(
        &self,
        _ca: &CertAuthority,
        honest: Arc<dyn ClientCertVerifier>,
    ) -> Arc<dyn ClientCertVerifier> {
        honest
    }

    /// Transport: a new connection before TLS; `None` when the quirk has
    /// dealt with it.
    fn connection(
        &self,
        _shared: Arc<Shared>,
        tcp: tokio::net::TcpStream,
        _peer: SocketAddr,
    ) -> Hook<'_, Option<tokio::net::TcpStream>> {
        Box::pin(std::future::ready(Some(tcp)))
    }

    /// Transport: the client certificate as the handler sees it.
    fn peer_cert(&self, honest: PeerCert) -> PeerCert {
        honest
    }

    /// Transport: the time allowed for request headers.
    fn header_timeout(&self, honest: Duration) -> Option<Duration> {
        Some(honest)
    }

    /// Requests: whether a method on an endpoint is admitted for a role.
    fn admit(
        &self,
        endpoint: Option<Endpoint>,
        method: &Method,
        role: &Role,
    ) -> Result<(), RequestError> {
        admission(endpoint, method, role)
    }

    /// Requests: the limits on reading a body.
    fn body_limits(&self) -> BodyLimits {
        BodyLimits::HONEST
    }

    /// Requests: held while a request with its body read is handled.
    fn enter(&self, _endpoint: Endpoint) -> Hook<'_, Option<Box<dyn Send>>> {
        Box::pin(std::future::ready(None))
    }

    /// Requests: the last look at an answer before it goes out.
    fn finish(&self, _endpoint: Option<Endpoint>, _response: &mut Response<Full<Bytes>>) {}

    /// Validation: an OOB post (PROTOCOL §4).
    fn parse_oob(&self, body: &[u8], now: OffsetDateTime) -> Result<OobPost, RequestError> {
        Ok(validate::parse_oob(body, now)?)
    }

    /// Validation: a provisioning request (PROTOCOL §5).
    fn parse_provision(&self, body: &[u8]) -> Result<ValidRequest, RequestError> {
        Ok(validate::parse_provision_request(body)?)
    }

    /// Decision: the secret book the server keeps.
    fn secret_book(&self) -> Box<dyn SecretBook> {
        Box::new(SecretStore::new())
    }

    /// Decision: a provisioning request decided against the secret book
    /// and the decision applied to it, in one step under the book's lock
    /// (PROTOCOL §5).
    fn decide<'a>(
        &'a self,
        shared: &'a Shared,
        device_id: &'a str,
        body: &'a [u8],
        peer: &'a PeerCert,
        now: OffsetDateTime,
        policy: Policy,
    ) -> Hook<'a, (Decision, Option<SecretEntry>)> {
        let decided = shared
            .lock_secrets()
            .decide(device_id, body, peer, now, &policy);
        Box::pin(std::future::ready(decided))
    }

    /// Request: the device's key (`provreq.key`).
    fn parse_key(&self, pem: &str) -> Result<DevicePublicKey, PkiError> {
        DevicePublicKey::from_pem(pem)
    }

    /// Issuance: the certificate for an approved request (PROTOCOL §5).
    fn issue(
        &self,
        shared: &Shared,
        device_id: &DeviceId,
        key: &DevicePublicKey,
        _authority: Authority,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, PkiError> {
        shared
            .ca
            .issue_device(device_id, key, shared.config.cert_validity, now)
    }

    /// Durability: makes an issued certificate durable; Approved goes out
    /// only once this resolves (PROTOCOL §5 step 5).
    fn persist<'a>(
        &'a self,
        shared: &'a Shared,
        rec: IssuedRecord,
    ) -> Hook<'a, Result<(), String>> {
        Box::pin(shared.committer.record(rec))
    }

    /// Lifetime: work to finish on a clean stop, before the store closes
    /// (a kill skips it).
    fn drain<'a>(&'a self, _shared: &'a Shared) -> Hook<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Answer: the provisioning answer's members and the key it is signed
    /// with, before signing (PROTOCOL §6).
    fn answer(
        &self,
        _ctx: &AnswerContext<'_>,
        _response: &mut ProvisionResponse,
        _key: &mut Option<Zeroizing<Vec<u8>>>,
    ) {
    }

    /// Status: the record a status request reports (PROTOCOL §7).
    fn status(
        &self,
        _shared: &Shared,
        _device_id: &DeviceId,
        honest: Option<IssuedRecord>,
    ) -> Result<Option<IssuedRecord>, RequestError> {
        Ok(honest)
    }

    /// Discovery: the DNS-SD advertisement (PROTOCOL §2).
    fn advertise(
        &self,
        instance: &str,
        addr: SocketAddr,
        path: &str,
    ) -> Result<Advertisement, mdns_sd::Error> {
        Advertisement::start_with_txt(instance, addr, Some(path))
    }

    /// Lifetime: resolves when the server must stop serving at once.
    fn stopped(&self) -> Hook<'_, ()> {
        Box::pin(std::future::pending())
    }
}

/// The reference server: every default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Honest;

impl Quirks for Honest {}

//! The one seam where a device may depart from the reference client: a
//! [`Quirks`] value consulted at a few named points. Every default is what
//! the reference client does, so the honest client is [`Honest`]; the
//! suite's deliberately broken device (its `faulty_client`) is
//! the only other implementation.

use super::{check_certificate, ClientError, Outcome};
use crate::core::directory::Directory;
use crate::core::messages::{ProvisionRequest, ProvisionResponse};
use crate::core::sign::{self, KeyVariant};
use crate::pki::CertInfo;
use crate::tls::ServerTrust;
use rcgen::KeyPair;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// A boxed future, as the asynchronous hooks return.
pub(crate) type Hook<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the device does after an answer.
#[derive(Debug)]
pub(crate) enum Step {
    /// Ask again after this long.
    AskAgain(Duration),
    /// Stop with this result.
    Done(Result<Outcome, ClientError>),
}

/// What is known when an answer arrives.
pub(crate) struct AnswerContext<'a> {
    /// The device's directory.
    pub(crate) dir: &'a Path,
    /// The key the request carried.
    pub(crate) key: &'a KeyPair,
    /// The pinned CA (PEM).
    pub(crate) pinned_pem: &'a str,
    /// The directory URL.
    pub(crate) url: &'a str,
    /// Whether this is a renewal.
    pub(crate) renewing: bool,
    /// Requests sent so far.
    pub(crate) requests: u32,
    /// When the run started.
    pub(crate) started: Instant,
    /// The run's overall time limit.
    pub(crate) timeout: Duration,
}

impl AnswerContext<'_> {
    /// Asks again after `wait`, unless that would pass the run's time limit.
    pub(crate) fn ask_again_within_limit(&self, wait: Duration) -> Step {
        if self.started.elapsed() + wait > self.timeout {
            Step::Done(Err(ClientError::StillWaiting(self.timeout)))
        } else {
            Step::AskAgain(wait)
        }
    }

    /// Keeps `cert_pem` (read as `info`) with the key and `ca_pem` (the
    /// pinned CA, PROTOCOL §9 rule 5).
    pub(crate) fn keep(
        &self,
        cert_pem: &str,
        ca_pem: &str,
        info: CertInfo,
    ) -> Result<Outcome, ClientError> {
        super::write_set(self.dir, self.key, cert_pem, ca_pem)?;
        Ok(Outcome {
            url: self.url.to_string(),
            renewed: self.renewing,
            serial: info.serial_hex,
            not_after: info.not_after,
            requests: self.requests,
        })
    }
}

/// The points where a device may depart from the reference. Every default
/// is the reference client's behaviour.
pub(crate) trait Quirks: Send + Sync {
    /// Transport: before the directory is fetched from `url`.
    fn before_directory<'a>(&'a self, _url: &'a str) -> Hook<'a, Result<(), ClientError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Transport: the directory request to `url` failed.
    fn directory_failed<'a>(&'a self, _url: &'a str) -> Hook<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Transport: the time limit of each HTTP exchange.
    fn request_timeout(&self, honest: Duration) -> Duration {
        honest
    }

    /// Trust: the CA given before the directory (PROTOCOL §3).
    fn given_ca(&self, honest: Option<String>) -> Option<String> {
        honest
    }

    /// Trust: how the provisioning request's server is verified.
    fn provisioning_trust(&self, honest: ServerTrust) -> ServerTrust {
        honest
    }

    /// Directory: whether the device can use it.
    fn accept_directory(&self, _directory: &Directory) -> Result<(), ClientError> {
        Ok(())
    }

    /// Request: whether a CSR goes along (PROTOCOL §8).
    fn send_csr(&self, honest: bool) -> bool {
        honest
    }

    /// Request: whether a renewal is authorised by mutual TLS.
    fn renew_over_mtls(&self, honest: bool) -> bool {
        honest
    }

    /// Request: the HMAC key made from the secret (PROTOCOL §6).
    fn signing_key(&self, secret: &str) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(KeyVariant::Raw.key(secret))
    }

    /// Request: the body as sent, from the signed one.
    fn request_body(
        &self,
        _msg: &mut ProvisionRequest,
        _signing_key: &[u8],
        _secret: Option<&str>,
        honest: Vec<u8>,
    ) -> Vec<u8> {
        honest
    }

    /// Answer: what the device does with it before the reference's reaction
    /// (`None`: the reference's).
    fn answer_step(&self, _answer: &ProvisionResponse, _ctx: &AnswerContext<'_>) -> Option<Step> {
        None
    }

    /// Answer: the signature of an Approved first provisioning (PROTOCOL §6).
    fn verify_answer(&self, body: &[u8], secret: &str) -> Result<(), ClientError> {
        sign::verify_raw(body, &KeyVariant::Raw.key(secret))
            .map_err(|e| ClientError::Refused(format!("response signature: {e}")))
    }

    /// Answer: the CA kept beside the certificate: the one pinned, not
    /// the answer's `caCert` text (which may hold more).
    fn ca_to_keep<'a>(&self, pinned_pem: &'a str, _answer: &'a ProvisionResponse) -> &'a str {
        pinned_pem
    }

    /// Answer: the issued certificate (PROTOCOL §9 rule 3).
    fn check_certificate(
        &self,
        answer: &ProvisionResponse,
        pinned_ca_der: &[u8],
        device_id: &str,
        our_spki_der: &[u8],
        now: OffsetDateTime,
        _dir: &Path,
    ) -> Result<CertInfo, ClientError> {
        check_certificate(answer, pinned_ca_der, device_id, our_spki_der, now)
    }
}

/// The reference client: every default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Honest;

impl Quirks for Honest {}

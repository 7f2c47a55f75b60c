//! The suite's deliberately broken device: the reference client with the
//! defects of [`super::client_faults`] switched on through its one seam
//! ([`Quirks`]). It exists to prove that each client case bites; the
//! `idprov` CLI never runs it.

use super::client_faults::ClientFault;
use super::wire;
use crate::client::quirks::{AnswerContext, Hook, Quirks, Step};
use crate::client::{
    check_ca_member, check_chain, check_cn, check_key, parse_client_cert, ClientError,
    ClientOptions, Outcome,
};
use crate::core::directory::{CaEncoding, Directory};
use crate::core::messages::{ProvisionRequest, ProvisionResponse, ProvisionStatus};
use crate::core::sign::{self, KeyVariant};
use crate::pki::CertInfo;
use crate::tls::ServerTrust;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Runs the reference client with `faults` switched on.
pub async fn run(opts: &ClientOptions, faults: &[ClientFault]) -> Result<Outcome, ClientError> {
    let quirks = FaultyClient {
        faults: faults.to_vec(),
        asked_after_rejected: AtomicBool::new(false),
    };
    crate::client::run_with(opts, &quirks).await
}

struct FaultyClient {
    faults: Vec<ClientFault>,
    /// Whether `RetryAfterRejected` has asked once more.
    asked_after_rejected: AtomicBool,
}

impl FaultyClient {
    fn has(&self, f: ClientFault) -> bool {
        self.faults.contains(&f)
    }
}

/// Sends a plaintext `GET` for `authority/path` (the part of a URL after
/// the scheme) and gives up at once: what the plaintext faults leak.
async fn plain_get(rest: &str) {
    use tokio::io::AsyncWriteExt;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if let Ok(Ok(mut tcp)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    {
        let req = format!("GET /{path} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        let _ = tcp.write_all(req.as_bytes()).await;
    }
}

impl Quirks for FaultyClient {
    fn before_directory<'a>(&'a self, url: &'a str) -> Hook<'a, Result<(), ClientError>> {
        Box::pin(async move {
            if self.has(ClientFault::AllowPlainHttp) {
                if let Some(rest) = url.strip_prefix("http://") {
                    // A device that speaks plaintext when told to: the
                    // request goes out in clear before anything can check it.
                    plain_get(rest).await;
                    return Err(ClientError::Usage(format!(
                        "no answer over plaintext from {url}"
                    )));
                }
            }
            if self.has(ClientFault::OffersLegacyTls) {
                // A device whose TLS stack still offers TLS 1.1: one such
                // hello before the real connection.
                if let Ok(t) = crate::net::parse_url(url) {
                    let hello = wire::legacy_client_hello(wire::TLS11, &t.host);
                    let _ = wire::probe(&t.authority, &hello, Duration::from_secs(2)).await;
                }
            }
            Ok(())
        })
    }

    fn directory_failed<'a>(&'a self, url: &'a str) -> Hook<'a, ()> {
        Box::pin(async move {
            if self.has(ClientFault::FallsBackToHttp) {
                if let Some(rest) = url.strip_prefix("https://") {
                    plain_get(rest).await;
                }
            }
        })
    }

    fn request_timeout(&self, honest: Duration) -> Duration {
        if self.has(ClientFault::NoRequestTimeout) {
            Duration::from_secs(24 * 3600)
        } else {
            honest
        }
    }

    fn given_ca(&self, honest: Option<String>) -> Option<String> {
        honest.filter(|_| !self.has(ClientFault::IgnorePreprovisionedCa))
    }

    fn provisioning_trust(&self, honest: ServerTrust) -> ServerTrust {
        if self.has(ClientFault::SkipPinning) {
            ServerTrust::LeapOfFaith
        } else {
            honest
        }
    }

    fn accept_directory(&self, directory: &Directory) -> Result<(), ClientError> {
        if self.has(ClientFault::PemOnlyCa) && directory.ca_encoding == CaEncoding::Base64Pem {
            return Err(ClientError::Refused(
                "caCert: illegal PEM data (base64 not understood)".into(),
            ));
        }
        Ok(())
    }

    fn send_csr(&self, honest: bool) -> bool {
        honest || self.has(ClientFault::CsrUnasked)
    }

    fn renew_over_mtls(&self, honest: bool) -> bool {
        honest && !self.has(ClientFault::RenewWithoutMtls)
    }

    fn signing_key(&self, secret: &str) -> Zeroizing<Vec<u8>> {
        let variant = if self.has(ClientFault::Sha256Key) {
            KeyVariant::Sha256OfSecret
        } else {
            KeyVariant::Raw
        };
        Zeroizing::new(variant.key(secret))
    }

    fn request_body(
        &self,
        msg: &mut ProvisionRequest,
        signing_key: &[u8],
        secret: Option<&str>,
        honest: Vec<u8>,
    ) -> Vec<u8> {
        let mut body = honest;
        if self.has(ClientFault::SignPrettyJson) {
            msg.signature.clear();
            let pretty = serde_json::to_vec_pretty(&msg).unwrap_or_default();
            msg.signature = sign::tag_b64(signing_key, &pretty);
            body = crate::core::json::to_go_json(&msg);
        }
        if let (true, Some(s)) = (self.has(ClientFault::SendSecret), secret) {
            let field = format!(
                "{{\"oobSecret\":{},",
                serde_json::to_string(s).unwrap_or_default()
            );
            body = [field.as_bytes(), &body[1..]].concat();
        }
        body
    }

    fn answer_step(&self, answer: &ProvisionResponse, ctx: &AnswerContext<'_>) -> Option<Step> {
        match answer.status {
            ProvisionStatus::Rejected
                if self.has(ClientFault::SaveOnRejected) && !answer.client_cert.is_empty() =>
            {
                let kept = CertInfo::from_pem(&answer.client_cert)
                    .map_err(|e| ClientError::Refused(e.to_string()))
                    .and_then(|info| ctx.keep(&answer.client_cert, ctx.pinned_pem, info));
                Some(Step::Done(kept))
            }
            ProvisionStatus::Rejected
                if self.has(ClientFault::RetryAfterRejected)
                    && !self.asked_after_rejected.swap(true, Ordering::SeqCst) =>
            {
                Some(Step::AskAgain(Duration::from_millis(100)))
            }
            ProvisionStatus::Waiting if self.has(ClientFault::IgnoreRetrySec) => {
                Some(ctx.ask_again_within_limit(Duration::from_millis(50)))
            }
            ProvisionStatus::Waiting if self.has(ClientFault::UnboundedRetrySec) => {
                let hinted = if answer.retry_sec == 0 {
                    5
                } else {
                    answer.retry_sec
                };
                Some(Step::AskAgain(Duration::from_secs(hinted)))
            }
            _ => None,
        }
    }

    fn verify_answer(&self, body: &[u8], secret: &str) -> Result<(), ClientError> {
        if self.has(ClientFault::SkipSignatureCheck) {
            return Ok(());
        }
        sign::verify_raw(body, &self.signing_key(secret))
            .map_err(|e| ClientError::Refused(format!("response signature: {e}")))
    }

    fn ca_to_keep<'a>(&self, pinned_pem: &'a str, answer: &'a ProvisionResponse) -> &'a str {
        if self.has(ClientFault::StoresAnswerCa) && !answer.ca_cert.is_empty() {
            // The answer's caCert passed the check (its first certificate
            // is the pinned CA), so its text is stored as it came.
            &answer.ca_cert
        } else {
            pinned_pem
        }
    }

    fn check_certificate(
        &self,
        answer: &ProvisionResponse,
        pinned_ca_der: &[u8],
        device_id: &str,
        our_spki_der: &[u8],
        now: OffsetDateTime,
        dir: &Path,
    ) -> Result<CertInfo, ClientError> {
        let staged = dir.join(".cert.pem.tmp");
        // PROTOCOL §9 rule 3 with the checks the faults leave out.
        if self.has(ClientFault::LeavesTempFile) {
            let _ = std::fs::write(&staged, answer.client_cert.as_bytes());
        }
        let any_ca = self.has(ClientFault::AcceptOtherCa);
        let expired = self.has(ClientFault::AcceptExpired);
        let not_before = self.has(ClientFault::AcceptNotYetValid);
        if !any_ca {
            check_ca_member(answer, pinned_ca_der)?;
        }
        let (der, info) = parse_client_cert(answer)?;
        let at = if expired || (not_before && info.not_before > now) {
            info.not_before + time::Duration::seconds(1)
        } else {
            now
        };
        if !any_ca {
            check_chain(&der, pinned_ca_der, at)?;
        }
        if !self.has(ClientFault::AcceptOtherCn) {
            let case_blind = self.has(ClientFault::CnCaseInsensitive);
            check_cn(&info, device_id, |cn| {
                if case_blind {
                    cn.eq_ignore_ascii_case(device_id)
                } else {
                    cn == device_id
                }
            })?;
        }
        if !self.has(ClientFault::AcceptOtherKey) {
            check_key(&info, our_spki_der)?;
        }
        let valid = if not_before {
            now <= info.not_after
        } else {
            info.valid_at(now)
        };
        if !expired && !valid {
            return Err(ClientError::Refused("certificate is not valid now".into()));
        }
        // Checked: the staged copy goes; refused, it stays behind.
        let _ = std::fs::remove_file(&staged);
        Ok(info)
    }
}

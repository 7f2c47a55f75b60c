//! The reference device client (PROTOCOL §9): discovery, leap of faith and
//! CA pinning, signed requests, Waiting retries, every acceptance check, and
//! atomic writes of `ca.pem`, `cert.pem`, `key.pem`; renewal over mutual TLS.

pub mod choices;
pub mod discover;
pub mod faults;

use choices::ClientChoices;

use faults::ClientFault;

use crate::core::directory::{parse_directory, Directory, DirectoryError};
use crate::core::messages::{
    ProvisionRequest, ProvisionResponse, ProvisionStatus, Signed, EXT_CSR,
};
use crate::core::sign::{self, KeyVariant};
use crate::fsutil::{write_all_atomic, MODE_PRIVATE, MODE_PUBLIC};
use crate::net::{self, NetError};
use crate::pki::{cert_der_from_pem, verify_chain, CertInfo, Usage};
use crate::tls::{client_config_with, ClientIdentity, ServerTrust};
use http::Method;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// File names a device keeps in its directory.
pub mod files {
    /// The pinned CA.
    pub const CA: &str = "ca.pem";
    /// The device certificate.
    pub const CERT: &str = "cert.pem";
    /// The device private key (mode 0600).
    pub const KEY: &str = "key.pem";
}

/// Features the client implements (for the shim's `IDPROV_FEATURE`).
pub const FEATURES: &[&str] = &[
    "discovery",
    "csr",
    "preprovisioned-ca",
    "renewal",
    "pinning",
    "waiting",
    "verification",
];

/// Settings of one provisioning run.
#[derive(Clone)]
pub struct ClientOptions {
    /// Directory URL; `None` means discover by DNS-SD.
    pub url: Option<String>,
    /// Device ID.
    pub device_id: String,
    /// OOB secret (not needed for renewal).
    pub secret: Option<Zeroizing<String>>,
    /// Output directory.
    pub dir: PathBuf,
    /// Pre-provisioned CA PEM file.
    pub ca: Option<PathBuf>,
    /// Overall time limit, Waiting retries included.
    pub timeout: Duration,
    /// Largest wait between retries, whatever `retrySec` says.
    pub max_retry: Duration,
    /// Time limit of each HTTP exchange.
    pub request_timeout: Duration,
    /// Time limit of DNS-SD discovery.
    pub discovery_timeout: Duration,
    /// The legal choices this device makes (default: the reference's).
    pub choices: ClientChoices,
}

impl ClientOptions {
    /// Options with defaults for everything but identity and output.
    pub fn new(device_id: &str, secret: Option<&str>, dir: &Path) -> Self {
        ClientOptions {
            url: None,
            device_id: device_id.to_string(),
            secret: secret.map(|s| Zeroizing::new(s.to_string())),
            dir: dir.to_path_buf(),
            ca: None,
            timeout: Duration::from_secs(120),
            max_retry: Duration::from_secs(30),
            request_timeout: Duration::from_secs(15),
            discovery_timeout: Duration::from_secs(10),
            choices: ClientChoices::default(),
        }
    }
}

/// Why provisioning did not end with a verified certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Bad arguments or local files.
    #[error("{0}")]
    Usage(String),
    /// DNS-SD found nothing usable.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// Network or TLS failure (an untrusted server lands here).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The directory could not be used.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// No CA to pin.
    #[error("the server offers no CA certificate and none was given (--ca)")]
    NoCa,
    /// The server answered an HTTP error.
    #[error("server answered HTTP {status}: {body}")]
    Http {
        /// Status code.
        status: u16,
        /// First line of the body.
        body: String,
    },
    /// The server answered Rejected.
    #[error("server rejected the request (signature did not verify: wrong secret?)")]
    Rejected,
    /// Still Waiting when the overall timeout ran out.
    #[error("server still says Waiting and the {0:?} time limit would pass before the next retry (no OOB secret posted for this device?)")]
    StillWaiting(Duration),
    /// The response or certificate failed a check (PROTOCOL §9 rule 3).
    #[error("refusing the server's answer: {0}")]
    Refused(String),
    /// Writing the files failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Path.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
}

/// A successful run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Directory URL used.
    pub url: String,
    /// Whether this was a renewal.
    pub renewed: bool,
    /// Serial of the new certificate.
    pub serial: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Number of provisioning requests sent.
    pub requests: u32,
}

struct Existing {
    ca_pem: String,
    identity: ClientIdentity,
}

fn read_existing(dir: &Path) -> Result<Option<Existing>, ClientError> {
    let (c, k, a) = (
        dir.join(files::CERT),
        dir.join(files::KEY),
        dir.join(files::CA),
    );
    if !c.exists() && !k.exists() {
        return Ok(None);
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| ClientError::Usage(format!("{}: {e}", p.display())))
    };
    Ok(Some(Existing {
        ca_pem: read(&a)?,
        identity: ClientIdentity {
            cert_pem: read(&c)?,
            key_pem: read(&k)?,
        },
    }))
}

fn first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

/// Runs provisioning (or renewal when `dir` holds a set) to completion.
pub async fn run(opts: &ClientOptions) -> Result<Outcome, ClientError> {
    run_with_faults(opts, &[]).await
}

/// Like [`run`], with deliberate defects. For the suite's own tests only.
#[doc(hidden)]
pub async fn run_with_faults(
    opts: &ClientOptions,
    faults: &[ClientFault],
) -> Result<Outcome, ClientError> {
    let f = |x: ClientFault| faults.contains(&x);
    let started = Instant::now();
    crate::core::validate::check_device_id(&opts.device_id)
        .map_err(|e| ClientError::Usage(e.to_string()))?;
    std::fs::create_dir_all(&opts.dir)
        .map_err(|e| ClientError::Usage(format!("{}: {e}", opts.dir.display())))?;
    let existing = read_existing(&opts.dir)?;
    let given_ca = match &opts.ca {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| ClientError::Usage(format!("--ca {}: {e}", p.display())))?,
        ),
        None => None,
    };
    if existing.is_none() && opts.secret.as_deref().is_none_or(|s| s.is_empty()) {
        return Err(ClientError::Usage(
            "a secret is needed for first provisioning (--secret)".into(),
        ));
    }
    let url = match &opts.url {
        Some(u) if !u.is_empty() => u.clone(),
        _ => {
            let t = opts.discovery_timeout;
            let found = tokio::task::spawn_blocking(move || discover::discover(t))
                .await
                .map_err(|e| ClientError::Discovery(e.to_string()))?
                .map_err(ClientError::Discovery)?;
            tracing::info!(service = %found.fullname, url = %found.url, "discovered server");
            found.url
        }
    };
    if f(ClientFault::AllowPlainHttp) {
        if let Some(rest) = url.strip_prefix("http://") {
            // A device that speaks plaintext when told to: the request goes
            // out in clear before anything can check it.
            faults::plain_get(rest).await;
            return Err(ClientError::Usage(format!(
                "no answer over plaintext from {url}"
            )));
        }
    }
    // Trust before the directory: a given CA, else the CA of the set we
    // hold, else leap of faith (PROTOCOL §3).
    let prior_ca = given_ca
        .clone()
        .filter(|_| !f(ClientFault::IgnorePreprovisionedCa))
        .or_else(|| existing.as_ref().map(|e| e.ca_pem.clone()));
    let dir_trust = match &prior_ca {
        Some(ca) => ServerTrust::Pinned(ca.clone()),
        None => ServerTrust::LeapOfFaith,
    };
    let cfg = Arc::new(
        tls_config(&opts.choices, &dir_trust, None)
            .map_err(|e| ClientError::Usage(e.to_string()))?,
    );
    if f(ClientFault::OffersLegacyTls) {
        // A device whose TLS stack still offers TLS 1.1: one such hello
        // before the real connection.
        if let Ok(t) = net::parse_url(&url) {
            let hello = crate::suite::wire::legacy_client_hello(crate::suite::wire::TLS11, &t.host);
            let _ = crate::suite::wire::probe(&t.authority, &hello, Duration::from_secs(2)).await;
        }
    }
    let request_timeout = if f(ClientFault::NoRequestTimeout) {
        Duration::from_secs(24 * 3600)
    } else {
        opts.request_timeout
    };
    let resp = match net::request(&url, Method::GET, None, cfg, request_timeout).await {
        Ok(r) => r,
        Err(e) => {
            if f(ClientFault::FallsBackToHttp) {
                if let Some(rest) = url.strip_prefix("https://") {
                    faults::plain_get(rest).await;
                }
            }
            return Err(e.into());
        }
    };
    if resp.status != 200 {
        return Err(ClientError::Http {
            status: resp.status,
            body: first_line(&resp.body),
        });
    }
    let directory: Directory = parse_directory(&resp.body, &url)?;
    if f(ClientFault::PemOnlyCa)
        && directory.ca_encoding == crate::core::directory::CaEncoding::Base64Pem
    {
        return Err(ClientError::Refused(
            "caCert: illegal PEM data (base64 not understood)".into(),
        ));
    }
    let local_ip = resp.local_addr.ip().to_string();
    let pinned_pem = match (&prior_ca, &directory.ca_cert_pem) {
        (Some(ca), _) => ca.clone(),
        (None, Some(ca)) => ca.clone(),
        (None, None) => return Err(ClientError::NoCa),
    };
    let pinned_der = cert_der_from_pem(&pinned_pem)
        .map_err(|e| ClientError::Refused(format!("CA to pin: {e}")))?;

    // A new key for every issuance (renewal rotates the key), unless the
    // device chooses to keep its key.
    let kept = existing
        .as_ref()
        .filter(|_| opts.choices.keep_key_on_renewal)
        .map(|e| KeyPair::from_pem(&e.identity.key_pem))
        .transpose()
        .map_err(|e| ClientError::Usage(format!("{}: {e}", files::KEY)))?;
    let key = match kept {
        Some(k) => Ok(k),
        None if opts.choices.ed25519_key => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        None => KeyPair::generate(),
    }
    .map_err(|e| ClientError::Usage(e.to_string()))?;
    let advertised = directory.extensions.iter().any(|e| e == EXT_CSR);
    let csr_pem = if (advertised && !opts.choices.no_csr) || f(ClientFault::CsrUnasked) {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, opts.device_id.as_str());
        p.distinguished_name = dn;
        Some(
            p.serialize_request(&key)
                .and_then(|c| c.pem())
                .map_err(|e| ClientError::Usage(e.to_string()))?,
        )
    } else {
        None
    };
    let renewing = existing.is_some() && !f(ClientFault::RenewWithoutMtls);
    let mut msg = ProvisionRequest {
        device_id: opts.device_id.clone(),
        ip: local_ip,
        mac: if opts.choices.send_mac {
            choices::mac_for(&opts.device_id)
        } else {
            String::new()
        },
        public_key_pem: key.public_key_pem(),
        csr_pem,
        signature: String::new(),
    };
    // Renewal is authorised by the TLS certificate; the request is signed
    // with the empty key like the reference's renewal responses.
    let variant = if f(ClientFault::Sha256Key) {
        KeyVariant::Sha256OfSecret
    } else {
        KeyVariant::Raw
    };
    let signing_key: Zeroizing<Vec<u8>> = match (&opts.secret, renewing) {
        (Some(s), false) => Zeroizing::new(variant.key(s)),
        _ => Zeroizing::new(Vec::new()),
    };
    let mut body = msg.sign_with_key(&signing_key);
    if f(ClientFault::SignPrettyJson) {
        msg.signature.clear();
        let pretty = serde_json::to_vec_pretty(&msg).unwrap_or_default();
        msg.signature = sign::tag_b64(&signing_key, &pretty);
        body = crate::core::json::to_go_json(&msg);
    }
    if f(ClientFault::SendSecret) {
        if let Some(s) = &opts.secret {
            let field = format!(
                "{{\"oobSecret\":{},",
                serde_json::to_string(s.as_str()).unwrap_or_default()
            );
            body = [field.as_bytes(), &body[1..]].concat();
        }
    }
    let identity = existing
        .as_ref()
        .filter(|_| renewing)
        .map(|e| e.identity.clone());
    let prov_trust = if f(ClientFault::SkipPinning) {
        ServerTrust::LeapOfFaith
    } else {
        ServerTrust::Pinned(pinned_pem.clone())
    };
    let prov_cfg = Arc::new(
        tls_config(&opts.choices, &prov_trust, identity.as_ref())
            .map_err(|e| ClientError::Usage(format!("current certificate set: {e}")))?,
    );
    let mut requests = 0u32;
    let mut retried_rejected = false;
    loop {
        requests += 1;
        let resp = net::request(
            &directory.post_provision_request,
            Method::POST,
            Some(body.clone()),
            prov_cfg.clone(),
            request_timeout,
        )
        .await?;
        if resp.status != 200 {
            return Err(ClientError::Http {
                status: resp.status,
                body: first_line(&resp.body),
            });
        }
        let parsed: ProvisionResponse = serde_json::from_slice(&resp.body).map_err(|e| {
            ClientError::Refused(format!("provisioning response is not valid: {e}"))
        })?;
        match parsed.status {
            ProvisionStatus::Rejected
                if f(ClientFault::SaveOnRejected) && !parsed.client_cert.is_empty() =>
            {
                write_set(&opts.dir, &key, &parsed.client_cert, &pinned_pem)?;
                let info = CertInfo::from_pem(&parsed.client_cert)
                    .map_err(|e| ClientError::Refused(e.to_string()))?;
                return Ok(Outcome {
                    url,
                    renewed: renewing,
                    serial: info.serial_hex,
                    not_after: info.not_after,
                    requests,
                });
            }
            ProvisionStatus::Rejected
                if f(ClientFault::RetryAfterRejected) && !retried_rejected =>
            {
                retried_rejected = true;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ProvisionStatus::Rejected => return Err(ClientError::Rejected),
            ProvisionStatus::Waiting => {
                // An unsigned hint: bounded by our own limits (PROTOCOL §6).
                let hinted = if parsed.retry_sec == 0 {
                    5
                } else {
                    parsed.retry_sec
                };
                let wait = if f(ClientFault::IgnoreRetrySec) {
                    Duration::from_millis(50)
                } else if f(ClientFault::UnboundedRetrySec) {
                    tokio::time::sleep(Duration::from_secs(hinted)).await;
                    continue;
                } else {
                    opts.choices.retry_wait(hinted, opts.max_retry)
                };
                if started.elapsed() + wait > opts.timeout {
                    return Err(ClientError::StillWaiting(opts.timeout));
                }
                tracing::info!(wait_s = wait.as_secs(), "server says Waiting; retrying");
                tokio::time::sleep(wait).await;
            }
            ProvisionStatus::Approved => {
                if !renewing && !f(ClientFault::SkipSignatureCheck) {
                    let raw_key = opts
                        .secret
                        .as_deref()
                        .map(|s| KeyVariant::Raw.key(s))
                        .unwrap_or_default();
                    let key_used = if f(ClientFault::Sha256Key) {
                        signing_key.to_vec()
                    } else {
                        raw_key
                    };
                    sign::verify_raw(&resp.body, &key_used)
                        .map_err(|e| ClientError::Refused(format!("response signature: {e}")))?;
                }
                let now = OffsetDateTime::now_utc();
                let relax = Relax {
                    cn: f(ClientFault::AcceptOtherCn),
                    key: f(ClientFault::AcceptOtherKey),
                    ca: f(ClientFault::AcceptOtherCa),
                    expiry: f(ClientFault::AcceptExpired),
                    not_before: f(ClientFault::AcceptNotYetValid),
                    cn_case: f(ClientFault::CnCaseInsensitive),
                };
                let staged = opts.dir.join(".cert.pem.tmp");
                if f(ClientFault::LeavesTempFile) {
                    let _ = std::fs::write(&staged, parsed.client_cert.as_bytes());
                }
                let info = check_certificate_relaxed(
                    &parsed,
                    &pinned_der,
                    &opts.device_id,
                    &rcgen::PublicKeyData::subject_public_key_info(&key),
                    now,
                    relax,
                )?;
                write_set(&opts.dir, &key, &parsed.client_cert, &pinned_pem)?;
                let _ = std::fs::remove_file(&staged);
                return Ok(Outcome {
                    url,
                    renewed: renewing,
                    serial: info.serial_hex,
                    not_after: info.not_after,
                    requests,
                });
            }
        }
    }
}

/// The device's TLS configuration under its choices.
fn tls_config(
    choices: &ClientChoices,
    trust: &ServerTrust,
    identity: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig, crate::tls::TlsError> {
    let mut cfg = client_config_with(trust, identity, choices.tls)?;
    if choices.alpn_http11 {
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(cfg)
}

/// Writes `key.pem` (0600), `cert.pem` and `ca.pem` so that none is replaced
/// unless all three were written (PROTOCOL §9 rule 5).
fn write_set(dir: &Path, key: &KeyPair, cert_pem: &str, ca_pem: &str) -> Result<(), ClientError> {
    let key_pem = Zeroizing::new(key.serialize_pem());
    let (kp, cp, ap) = (
        dir.join(files::KEY),
        dir.join(files::CERT),
        dir.join(files::CA),
    );
    write_all_atomic(&[
        (&kp, key_pem.as_bytes(), MODE_PRIVATE),
        (&cp, cert_pem.as_bytes(), MODE_PUBLIC),
        (&ap, ca_pem.as_bytes(), MODE_PUBLIC),
    ])
    .map_err(|source| ClientError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// PROTOCOL §9 rule 3: the certificate chains to the pinned CA, names this
/// device, carries our key and is valid now; a `caCert` sent along must be
/// the pinned CA.
pub fn check_certificate(
    resp: &ProvisionResponse,
    pinned_ca_der: &[u8],
    device_id: &str,
    our_spki_der: &[u8],
    now: OffsetDateTime,
) -> Result<CertInfo, ClientError> {
    check_certificate_relaxed(
        resp,
        pinned_ca_der,
        device_id,
        our_spki_der,
        now,
        Relax::default(),
    )
}

/// Checks a deliberately broken client leaves out.
#[derive(Debug, Clone, Copy, Default)]
struct Relax {
    cn: bool,
    key: bool,
    ca: bool,
    expiry: bool,
    not_before: bool,
    cn_case: bool,
}

fn check_certificate_relaxed(
    resp: &ProvisionResponse,
    pinned_ca_der: &[u8],
    device_id: &str,
    our_spki_der: &[u8],
    now: OffsetDateTime,
    relax: Relax,
) -> Result<CertInfo, ClientError> {
    let refuse = |m: String| ClientError::Refused(m);
    if !resp.ca_cert.is_empty() && !relax.ca {
        let offered = cert_der_from_pem(&resp.ca_cert)
            .map_err(|e| refuse(format!("caCert in response: {e}")))?;
        if offered != pinned_ca_der {
            return Err(refuse("caCert in response is not the pinned CA".into()));
        }
    }
    let der =
        cert_der_from_pem(&resp.client_cert).map_err(|e| refuse(format!("clientCert: {e}")))?;
    let info = CertInfo::from_der(&der).map_err(|e| refuse(format!("clientCert: {e}")))?;
    let at = if relax.expiry || (relax.not_before && info.not_before > now) {
        info.not_before + time::Duration::seconds(1)
    } else {
        now
    };
    if !relax.ca {
        verify_chain(&der, pinned_ca_der, at, Usage::Client).map_err(|e| refuse(e.to_string()))?;
    }
    let same_cn = |cn: &str| {
        if relax.cn_case {
            cn.eq_ignore_ascii_case(device_id)
        } else {
            cn == device_id
        }
    };
    if !relax.cn && (info.cn.len() != 1 || !same_cn(&info.cn[0])) {
        return Err(refuse(format!(
            "certificate is for CN {:?}, not {device_id:?}",
            info.cn
        )));
    }
    if !relax.key && info.spki_der != our_spki_der {
        return Err(refuse("certificate does not carry our public key".into()));
    }
    let valid = if relax.not_before {
        now <= info.not_after
    } else {
        info.valid_at(now)
    };
    if !relax.expiry && !valid {
        return Err(refuse("certificate is not valid now".into()));
    }
    Ok(info)
}

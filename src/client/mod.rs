//! The reference device client (PROTOCOL §9): discovery, leap of faith and
//! CA pinning, signed requests, Waiting retries, every acceptance check, and
//! atomic writes of `ca.pem`, `cert.pem`, `key.pem`; renewal over mutual TLS.

pub mod choices;
pub mod discover;
pub(crate) mod quirks;

use choices::ClientChoices;
use quirks::{AnswerContext, Quirks, Step};

use crate::core::directory::{parse_directory, Directory, DirectoryError};
use crate::core::messages::{
    ProvisionRequest, ProvisionResponse, ProvisionStatus, Signed, EXT_CSR,
};
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
    run_with(opts, &quirks::Honest).await
}

/// Like [`run`], departing from the reference where `quirks` says (the
/// suite's deliberately broken device is the only other caller).
pub(crate) async fn run_with(
    opts: &ClientOptions,
    quirks: &dyn Quirks,
) -> Result<Outcome, ClientError> {
    let started = Instant::now();
    let device_id = crate::core::validate::DeviceId::parse(&opts.device_id)
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
    quirks.before_directory(&url).await?;
    // Trust before the directory: a given CA, else the CA of the set we
    // hold, else leap of faith (PROTOCOL §3).
    let prior_ca = quirks
        .given_ca(given_ca)
        .or_else(|| existing.as_ref().map(|e| e.ca_pem.clone()));
    let dir_trust = match &prior_ca {
        Some(ca) => ServerTrust::Pinned(ca.clone()),
        None => ServerTrust::LeapOfFaith,
    };
    let cfg = Arc::new(
        tls_config(&opts.choices, &dir_trust, None)
            .map_err(|e| ClientError::Usage(e.to_string()))?,
    );
    let request_timeout = quirks.request_timeout(opts.request_timeout);
    let resp = match net::request(&url, Method::GET, None, cfg, request_timeout).await {
        Ok(r) => r,
        Err(e) => {
            quirks.directory_failed(&url).await;
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
    quirks.accept_directory(&directory)?;
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
    let csr_pem = if quirks.send_csr(advertised && !opts.choices.no_csr) {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device_id.as_str());
        p.distinguished_name = dn;
        Some(
            p.serialize_request(&key)
                .and_then(|c| c.pem())
                .map_err(|e| ClientError::Usage(e.to_string()))?,
        )
    } else {
        None
    };
    let renewing = quirks.renew_over_mtls(existing.is_some());
    let mut msg = ProvisionRequest {
        device_id: device_id.to_string(),
        ip: local_ip,
        mac: if opts.choices.send_mac {
            choices::mac_for(&device_id)
        } else {
            String::new()
        },
        public_key_pem: key.public_key_pem(),
        csr_pem,
        signature: String::new(),
    };
    // Renewal is authorised by the TLS certificate; the request is signed
    // with the empty key like the reference's renewal responses.
    let secret = opts.secret.as_deref().map(|s| s.as_str());
    let signing_key = match (secret, renewing) {
        (Some(s), false) => quirks.signing_key(s),
        _ => Zeroizing::new(Vec::new()),
    };
    let signed = msg.sign_with_key(&signing_key);
    let body = quirks.request_body(&mut msg, &signing_key, secret, signed);
    let identity = existing
        .as_ref()
        .filter(|_| renewing)
        .map(|e| e.identity.clone());
    let prov_trust = quirks.provisioning_trust(ServerTrust::Pinned(pinned_pem.clone()));
    let prov_cfg = Arc::new(
        tls_config(&opts.choices, &prov_trust, identity.as_ref())
            .map_err(|e| ClientError::Usage(format!("current certificate set: {e}")))?,
    );
    let mut requests = 0u32;
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
        let ctx = AnswerContext {
            dir: &opts.dir,
            key: &key,
            pinned_pem: &pinned_pem,
            url: &url,
            renewing,
            requests,
            started,
            timeout: opts.timeout,
        };
        let step = match quirks.answer_step(&parsed, &ctx) {
            Some(step) => step,
            None => match parsed.status {
                ProvisionStatus::Rejected => Step::Done(Err(ClientError::Rejected)),
                ProvisionStatus::Waiting => {
                    // An unsigned hint: bounded by our own limits (PROTOCOL §6).
                    let hinted = if parsed.retry_sec == 0 {
                        5
                    } else {
                        parsed.retry_sec
                    };
                    let wait = opts.choices.retry_wait(hinted, opts.max_retry);
                    tracing::info!(wait_s = wait.as_secs(), "server says Waiting");
                    ctx.ask_again_within_limit(wait)
                }
                ProvisionStatus::Approved => {
                    if !renewing {
                        quirks.verify_answer(&resp.body, secret.unwrap_or_default())?;
                    }
                    let info = quirks.check_certificate(
                        &parsed,
                        &pinned_der,
                        &device_id,
                        &rcgen::PublicKeyData::subject_public_key_info(&key),
                        OffsetDateTime::now_utc(),
                        &opts.dir,
                    )?;
                    let ca = quirks.ca_to_keep(&pinned_pem, &parsed);
                    Step::Done(ctx.keep(&parsed.client_cert, ca, info))
                }
            },
        };
        match step {
            Step::AskAgain(wait) => tokio::time::sleep(wait).await,
            Step::Done(result) => return result,
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
pub(crate) fn write_set(
    dir: &Path,
    key: &KeyPair,
    cert_pem: &str,
    ca_pem: &str,
) -> Result<(), ClientError> {
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
    check_ca_member(resp, pinned_ca_der)?;
    let (der, info) = parse_client_cert(resp)?;
    check_chain(&der, pinned_ca_der, now)?;
    check_cn(&info, device_id, |cn| cn == device_id)?;
    check_key(&info, our_spki_der)?;
    if !info.valid_at(now) {
        return Err(refused("certificate is not valid now"));
    }
    Ok(info)
}

fn refused(m: impl Into<String>) -> ClientError {
    ClientError::Refused(m.into())
}

/// A `caCert` sent along must be the pinned CA.
pub(crate) fn check_ca_member(
    resp: &ProvisionResponse,
    pinned_ca_der: &[u8],
) -> Result<(), ClientError> {
    if resp.ca_cert.is_empty() {
        return Ok(());
    }
    let offered = cert_der_from_pem(&resp.ca_cert)
        .map_err(|e| refused(format!("caCert in response: {e}")))?;
    if offered != pinned_ca_der {
        return Err(refused("caCert in response is not the pinned CA"));
    }
    Ok(())
}

/// The answer's `clientCert` as DER and as read.
pub(crate) fn parse_client_cert(
    resp: &ProvisionResponse,
) -> Result<(Vec<u8>, CertInfo), ClientError> {
    let der =
        cert_der_from_pem(&resp.client_cert).map_err(|e| refused(format!("clientCert: {e}")))?;
    let info = CertInfo::from_der(&der).map_err(|e| refused(format!("clientCert: {e}")))?;
    Ok((der, info))
}

/// The certificate chains to the pinned CA for client use at `at`.
pub(crate) fn check_chain(
    der: &[u8],
    pinned_ca_der: &[u8],
    at: OffsetDateTime,
) -> Result<(), ClientError> {
    verify_chain(der, pinned_ca_der, at, Usage::Client).map_err(|e| refused(e.to_string()))
}

/// The certificate has exactly one CN, and `same` takes it for this device.
pub(crate) fn check_cn(
    info: &CertInfo,
    device_id: &str,
    same: impl Fn(&str) -> bool,
) -> Result<(), ClientError> {
    if info.cn.len() != 1 || !same(&info.cn[0]) {
        return Err(refused(format!(
            "certificate is for CN {:?}, not {device_id:?}",
            info.cn
        )));
    }
    Ok(())
}

/// The certificate carries our public key.
pub(crate) fn check_key(info: &CertInfo, our_spki_der: &[u8]) -> Result<(), ClientError> {
    if info.spki_der != our_spki_der {
        return Err(refused("certificate does not carry our public key"));
    }
    Ok(())
}

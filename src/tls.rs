//! TLS configuration for every role, on one crypto provider (ring), TLS 1.2
//! and 1.3 only.

use crate::pki::{CertInfo, PkiError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

/// The crate's single crypto provider: ring, with the SHA-256 cipher suites
/// first. A TLS 1.3 handshake runs its key schedule on the suite's hash, and
/// SHA-256 is the hash CPUs accelerate (SHA-NI); AES-128-GCM is as strong as
/// a device's key needs. Measured with `idprov bench`: the key schedule costs
/// about a quarter of the SHA-384 one (see README "Performance").
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    // A stable sort: AES-128-GCM before ChaCha20 as before, SHA-384 last
    // within each protocol version.
    p.cipher_suites.sort_by_key(|s| {
        (
            s.version() != &rustls::version::TLS13,
            s.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
                || s.suite() == rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                || s.suite() == rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        )
    });
    Arc::new(p)
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Bad PEM input.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// rustls refused the configuration.
    #[error("{}", config_reason(.0))]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
}

/// A refused TLS configuration in a user's terms.
fn config_reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            format!("the private key does not match the certificate ({e})")
        }
        _ => format!("TLS configuration: {e}"),
    }
}

/// Parses every certificate in PEM text.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| PkiError::NotPem("CERTIFICATE"))?;
    if certs.is_empty() {
        return Err(PkiError::NotPem("CERTIFICATE"));
    }
    Ok(certs)
}

/// Parses a private key PEM (PKCS#8, SEC1 or PKCS#1).
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| PkiError::NotPem("PRIVATE KEY"))
}

fn roots(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(ca_pem)? {
        roots
            .add(c)
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    }
    Ok(roots)
}

/// Client-certificate verifier of the server: the chain must lead to the CA
/// (else the handshake fails), but validity *times* are left to the
/// application, so an expired device certificate reaches the decision
/// function, which treats it as no certificate (PROTOCOL §5 step 2).
#[derive(Debug)]
struct ChainOnlyClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

fn is_time_error(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

impl ClientCertVerifier for ChainOnlyClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(e) if is_time_error(&e) => {
                let info = CertInfo::from_der(end_entity).map_err(|_| {
                    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
                })?;
                let inside = (info.not_before.unix_timestamp() + 1).max(0) as u64;
                let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(inside));
                self.inner.verify_client_cert(end_entity, intermediates, t)
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// TLS configuration of an IDProv server: optional client certificates that
/// must chain to `ca_pem`.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<ServerConfig, TlsError> {
    server_config_with(ca_pem, cert_pem, key_pem, rustls::DEFAULT_VERSIONS, |v| v)
}

/// Like [`server_config`], offering only `versions`, with the
/// client-certificate verifier passed through `wrap` (the reference
/// server's test-only faults replace it).
pub fn server_config_with(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    wrap: impl FnOnce(Arc<dyn ClientCertVerifier>) -> Arc<dyn ClientCertVerifier>,
) -> Result<ServerConfig, TlsError> {
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = wrap(Arc::new(ChainOnlyClientVerifier { inner }));
    let mut chain = certs_from_pem(cert_pem)?;
    chain.extend(certs_from_pem(ca_pem)?);
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_from_pem(key_pem)?)?;
    // The server's suite order wins: most clients list AES-256 first.
    let mut cfg = cfg;
    cfg.ignore_client_order = true;
    // No session tickets: a device provisions once and renews months later,
    // so a ticket is work and cache memory no device uses.
    cfg.send_tls13_tickets = 0;
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(cfg)
}

/// How a client decides whether to trust the server.
#[derive(Clone, Debug)]
pub enum ServerTrust {
    /// Accept any certificate (leap of faith, PROTOCOL §3): handshake
    /// signatures are still checked, the chain is not.
    LeapOfFaith,
    /// The chain must lead to this CA (PEM) and name the host.
    Pinned(String),
    /// The chain must lead to this CA (PEM); the name is not checked. The
    /// suite talks to servers this way so that a certificate that does not
    /// name its address fails one case instead of every request.
    PinnedAnyName(String),
}

/// A server verifier that checks the chain and ignores only the name.
#[derive(Debug)]
struct AnyNameServer(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyNameServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A client certificate and key (PEM) for mutual TLS.
#[derive(Clone)]
pub struct ClientIdentity {
    /// Certificate chain PEM.
    pub cert_pem: String,
    /// Private key PEM.
    pub key_pem: String,
}

#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS versions a server or client offers (PROTOCOL `transport.https`:
/// 1.2 or 1.3, either or both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3 (the reference).
    #[default]
    Both,
    /// TLS 1.3 alone.
    Only13,
    /// TLS 1.2 alone.
    Only12,
}

impl TlsVersions {
    /// The rustls versions this choice enables.
    pub fn rustls(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static ONLY13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        static ONLY12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        match self {
            TlsVersions::Both => rustls::DEFAULT_VERSIONS,
            TlsVersions::Only13 => &ONLY13,
            TlsVersions::Only12 => &ONLY12,
        }
    }
}

/// TLS configuration of a client (device, admin, suite).
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<&ClientIdentity>,
) -> Result<ClientConfig, TlsError> {
    client_config_with(trust, identity, TlsVersions::Both)
}

/// Like [`client_config`], offering only the given TLS versions.
pub fn client_config_with(
    trust: &ServerTrust,
    identity: Option<&ClientIdentity>,
    versions: TlsVersions,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions.rustls())?;
    let builder = match trust {
        ServerTrust::LeapOfFaith => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider()))),
        ServerTrust::Pinned(ca) => builder.with_root_certificates(roots(ca)?),
        ServerTrust::PinnedAnyName(ca) => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyNameServer(inner)))
        }
    };
    Ok(match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(certs_from_pem(&id.cert_pem)?, key_from_pem(&id.key_pem)?)?,
    })
}

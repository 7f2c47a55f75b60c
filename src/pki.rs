//! Certificates: CA bootstrap, issuing device/server/admin certificates,
//! checking device public keys and CSRs, and inspecting certificates
//! (PROTOCOL §1, §5, §8). CPU work only, no I/O.

use crate::core::messages::{OU_ADMIN, OU_DEVICE, OU_PLUGIN};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateSigningRequestDer, SubjectPublicKeyInfoDer, UnixTime,
};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

/// Default validity of issued device certificates, in days.
pub const DEFAULT_CERT_DAYS: u32 = 30;
/// Smallest RSA modulus accepted for device keys.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a key, CSR or certificate was refused, or issuing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Not PEM with the expected label.
    #[error("not a PEM `{0}` block")]
    NotPem(&'static str),
    /// DER that does not parse.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A key algorithm we do not issue for.
    #[error("unsupported public key algorithm: {0}")]
    UnsupportedKey(String),
    /// RSA key below 2048 bits.
    #[error("RSA key of {0} bits is too small (minimum {MIN_RSA_BITS})")]
    WeakRsa(usize),
    /// The CSR's self-signature does not verify.
    #[error("CSR signature does not verify")]
    CsrSignature,
    /// The CSR's key differs from `publicKeyPEM`.
    #[error("CSR public key differs from publicKeyPEM")]
    CsrKeyMismatch,
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

fn gen_err(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// Algorithm family of a device key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// ECDSA P-256 (required).
    EcdsaP256,
    /// Ed25519 (optional).
    Ed25519,
    /// RSA ≥ 2048 (optional).
    Rsa(usize),
}

/// A device's SubjectPublicKeyInfo, checked for a supported algorithm.
#[derive(Debug, Clone)]
pub struct DevicePublicKey {
    spki_der: Vec<u8>,
    kind: KeyKind,
    rcgen_key: rcgen::SubjectPublicKeyInfo,
}

impl DevicePublicKey {
    /// Parses a `PUBLIC KEY` PEM block.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::from_pem_with_min_rsa(pem, MIN_RSA_BITS)
    }

    /// Parses a `PUBLIC KEY` PEM block, taking RSA keys of `min_rsa_bits`
    /// and more (the profile's floor is [`MIN_RSA_BITS`]; another one is
    /// for the suite's deliberately broken server).
    pub fn from_pem_with_min_rsa(pem: &str, min_rsa_bits: usize) -> Result<Self, PkiError> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::NotPem("PUBLIC KEY"))?;
        Self::from_der_with_min_rsa(der.as_ref(), min_rsa_bits)
    }

    /// Parses DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        Self::from_der_with_min_rsa(der, MIN_RSA_BITS)
    }

    fn from_der_with_min_rsa(der: &[u8], min_rsa_bits: usize) -> Result<Self, PkiError> {
        use x509_parser::oid_registry as oids;
        use x509_parser::public_key::PublicKey;
        let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
            .map_err(|_| PkiError::Malformed("SubjectPublicKeyInfo"))?;
        if !rest.is_empty() {
            return Err(PkiError::Malformed("SubjectPublicKeyInfo (trailing bytes)"));
        }
        let alg = &spki.algorithm.algorithm;
        let kind = if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if curve.as_ref() != Some(&oids::OID_EC_P256) {
                return Err(PkiError::UnsupportedKey(
                    "EC key on a curve other than P-256".into(),
                ));
            }
            match spki.parsed() {
                Ok(PublicKey::EC(p)) if p.data().len() == 65 && p.data()[0] == 4 => {}
                _ => return Err(PkiError::Malformed("P-256 point")),
            }
            KeyKind::EcdsaP256
        } else if *alg == oids::OID_SIG_ED25519 {
            if spki.subject_public_key.data.len() != 32 {
                return Err(PkiError::Malformed("Ed25519 key"));
            }
            KeyKind::Ed25519
        } else if *alg == oids::OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => {
                    let bits = rsa_modulus_bits(rsa.modulus);
                    if bits < min_rsa_bits {
                        return Err(PkiError::WeakRsa(bits));
                    }
                    KeyKind::Rsa(bits)
                }
                _ => return Err(PkiError::Malformed("RSA key")),
            }
        } else {
            return Err(PkiError::UnsupportedKey(alg.to_id_string()));
        };
        let rcgen_key = rcgen::SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| PkiError::UnsupportedKey(e.to_string()))?;
        Ok(DevicePublicKey {
            spki_der: der.to_vec(),
            kind,
            rcgen_key,
        })
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Algorithm family.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }
}

/// Checks a `CERTIFICATE REQUEST` PEM: its self-signature, and that its key
/// equals `key` (PROTOCOL §8).
pub fn verify_csr(csr_pem: &str, key: &DevicePublicKey) -> Result<(), PkiError> {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|_| PkiError::NotPem("CERTIFICATE REQUEST"))?;
    let (rest, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|_| PkiError::Malformed("CSR"))?;
    if !rest.is_empty() {
        return Err(PkiError::Malformed("CSR (trailing bytes)"));
    }
    csr.verify_signature().map_err(|_| PkiError::CsrSignature)?;
    if csr.certification_request_info.subject_pki.raw != key.spki_der() {
        return Err(PkiError::CsrKeyMismatch);
    }
    Ok(())
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// PEM text.
    pub pem: String,
    /// DER bytes.
    pub der: Vec<u8>,
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// Overrides for issuing a device certificate.
#[derive(Debug, Clone, Default)]
pub struct DeviceCertOptions {
    /// Use this serial instead of a random one.
    pub serial: Option<Vec<u8>>,
    /// Leave out EKU clientAuth.
    pub omit_client_auth: bool,
    /// Add EKU serverAuth (a widening the profile forbids).
    pub add_server_auth: bool,
    /// A second OU beside `iotdevice` (a role the profile forbids).
    pub extra_ou: Option<String>,
}

/// A certificate with its freshly generated private key.
pub struct Credential {
    /// The certificate.
    pub cert: IssuedCert,
    /// PKCS#8 PEM of the private key, wiped on drop.
    pub key_pem: Zeroizing<String>,
}

/// The certificate authority that signs everything a server issues.
pub struct CertAuthority {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: Zeroizing<String>,
    issuer: Issuer<'static, KeyPair>,
}

/// A random positive 128-bit serial (RFC 5280 §4.1.2.2: ≤ 20 octets).
pub fn random_serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    // Positive and always 16 octets long: 126 random bits.
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

fn to_issued(cert: rcgen::Certificate, params: &CertificateParams) -> IssuedCert {
    let serial_hex = params
        .serial_number
        .as_ref()
        .map(|s| hex(&s.to_bytes()))
        .unwrap_or_default();
    IssuedCert {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        serial_hex,
        not_before: params.not_before,
        not_after: params.not_after,
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, lower-case hex (fingerprints, manifests).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// PEM text of a DER object: base64 in 64-column lines under `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

fn leaf_params(cn: &str, ou: &str, now: OffsetDateTime, validity: Duration) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "idprov");
    dn.push(DnType::OrganizationalUnitName, ou);
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + validity;
    p.serial_number = Some(random_serial());
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p
}

impl CertAuthority {
    /// Generates a new self-signed P-256 CA valid for ten years.
    pub fn generate(cn: &str, now: OffsetDateTime) -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "idprov");
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(3650);
        p.serial_number = Some(random_serial());
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).map_err(gen_err)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Builds a CA deterministically from a given key, serial and time (for
    /// reproducible test vectors; use Ed25519 keys for byte-stable output).
    pub fn generate_from(
        key: KeyPair,
        cn: &str,
        serial: &[u8],
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "idprov");
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(3650);
        p.serial_number = Some(SerialNumber::from_slice(serial));
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).map_err(gen_err)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Loads a CA from its certificate and PKCS#8 key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| PkiError::NotPem("CERTIFICATE"))?;
        let key = KeyPair::from_pem(key_pem).map_err(|_| PkiError::NotPem("PRIVATE KEY"))?;
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(gen_err)?;
        Ok(CertAuthority {
            cert_pem: cert_pem.to_string(),
            cert_der: der.to_vec(),
            key_pem: Zeroizing::new(key_pem.to_string()),
            issuer,
        })
    }

    /// The CA certificate PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA private key PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a device certificate (CN = device ID, OU = `iotdevice`, EKU
    /// clientAuth, random serial) for `key`.
    pub fn issue_device(
        &self,
        device_id: &str,
        key: &DevicePublicKey,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, PkiError> {
        self.issue_device_with(device_id, key, validity, now, &DeviceCertOptions::default())
    }

    /// Like [`CertAuthority::issue_device`] with overrides (used by the
    /// suite's deliberately broken servers).
    pub fn issue_device_with(
        &self,
        device_id: &str,
        key: &DevicePublicKey,
        validity: Duration,
        now: OffsetDateTime,
        opts: &DeviceCertOptions,
    ) -> Result<IssuedCert, PkiError> {
        let mut p = leaf_params(device_id, OU_DEVICE, now, validity);
        if !opts.omit_client_auth {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        if opts.add_server_auth {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if let Some(ou) = &opts.extra_ou {
            // A second OU attribute (rcgen keys its map by type, so the
            // OID is spelt out to add rather than replace).
            p.distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 11]), ou.as_str());
        }
        if let Some(serial) = &opts.serial {
            p.serial_number = Some(SerialNumber::from_slice(serial));
        }
        let cert = p.signed_by(&key.rcgen_key, &self.issuer).map_err(gen_err)?;
        Ok(to_issued(cert, &p))
    }

    /// Issues a client credential (new P-256 key) with the given CN and OU,
    /// e.g. an `admin` or `plugin` credential.
    pub fn issue_client(
        &self,
        cn: &str,
        ou: &str,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<Credential, PkiError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut p = leaf_params(cn, ou, now, validity);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(Credential {
            cert: to_issued(cert, &p),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Issues a client certificate (EKU clientAuth) with the given CN and
    /// OU for an existing key, with a fixed serial (reproducible vectors).
    pub fn issue_client_with_key(
        &self,
        cn: &str,
        ou: &str,
        key: &DevicePublicKey,
        validity: Duration,
        now: OffsetDateTime,
        serial: &[u8],
    ) -> Result<IssuedCert, PkiError> {
        let mut p = leaf_params(cn, ou, now, validity);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.serial_number = Some(SerialNumber::from_slice(serial));
        let cert = p.signed_by(&key.rcgen_key, &self.issuer).map_err(gen_err)?;
        Ok(to_issued(cert, &p))
    }

    /// Issues an admin credential.
    pub fn issue_admin(&self, now: OffsetDateTime) -> Result<Credential, PkiError> {
        self.issue_client("admin", OU_ADMIN, Duration::days(3650), now)
    }

    /// Issues a plugin credential.
    pub fn issue_plugin(&self, now: OffsetDateTime) -> Result<Credential, PkiError> {
        self.issue_client("plugin", OU_PLUGIN, Duration::days(3650), now)
    }

    /// Issues a TLS server credential with DNS and IP SANs.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
        now: OffsetDateTime,
    ) -> Result<Credential, PkiError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut p = leaf_params("idprov server", "server", now, Duration::days(825));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        for d in dns_names {
            let name = d
                .clone()
                .try_into()
                .map_err(|_| PkiError::Generate(format!("bad DNS name {d}")))?;
            p.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in ips {
            p.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let cert = p.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(Credential {
            cert: to_issued(cert, &p),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// What a certificate says, as far as IDProv cares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    /// Subject CNs.
    pub cn: Vec<String>,
    /// Subject OUs.
    pub ou: Vec<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// DER SubjectPublicKeyInfo.
    #[serde(skip)]
    pub spki_der: Vec<u8>,
    /// Serial, lower-case hex without leading zero octets.
    pub serial_hex: String,
    /// Octets of the serial as encoded (a leading 0x00 included).
    pub serial_len: usize,
    /// Whether EKU includes clientAuth.
    pub client_auth: bool,
    /// Whether basicConstraints says CA.
    pub is_ca: bool,
}

impl CertInfo {
    /// Parses DER.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let (rest, c) =
            X509Certificate::from_der(der).map_err(|_| PkiError::Malformed("certificate"))?;
        if !rest.is_empty() {
            return Err(PkiError::Malformed("certificate (trailing bytes)"));
        }
        let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
            it.filter_map(|a| a.as_str().ok().map(str::to_string))
                .collect::<Vec<_>>()
        };
        let cn = strings(&mut c.subject().iter_common_name());
        let ou = strings(&mut c.subject().iter_organizational_unit());
        let client_auth = matches!(c.extended_key_usage(), Ok(Some(e)) if e.value.client_auth);
        let is_ca = matches!(c.basic_constraints(), Ok(Some(b)) if b.value.ca);
        let serial = c.tbs_certificate.raw_serial();
        let trimmed: &[u8] = {
            let mut s = serial;
            while s.len() > 1 && s[0] == 0 {
                s = &s[1..];
            }
            s
        };
        Ok(CertInfo {
            cn,
            ou,
            not_before: c.validity().not_before.to_datetime(),
            not_after: c.validity().not_after.to_datetime(),
            spki_der: c.public_key().raw.to_vec(),
            serial_hex: hex(trimmed),
            serial_len: serial.len(),
            client_auth,
            is_ca,
        })
    }

    /// Parses the first `CERTIFICATE` block of PEM text.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::from_der(&cert_der_from_pem(pem)?)
    }

    /// Whether `now` is within the validity period.
    pub fn valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Bits of randomness a serial of this length can carry (upper bound).
    pub fn serial_bits(&self) -> usize {
        self.serial_hex.len() * 4
    }
}

/// Decodes the first `CERTIFICATE` block of PEM text.
pub fn cert_der_from_pem(pem: &str) -> Result<Vec<u8>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|d| d.to_vec())
        .map_err(|_| PkiError::NotPem("CERTIFICATE"))
}

/// The exact bit length of an RSA modulus given as DER integer content
/// (leading zero bytes, such as DER's sign byte, do not count).
pub fn rsa_modulus_bits(modulus: &[u8]) -> usize {
    let significant: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    8 * (significant.len() - 1) + (8 - significant[0].leading_zeros() as usize)
}

/// Decodes every `CERTIFICATE` block of PEM text, in order (none is an
/// error; so is a block that does not decode).
pub fn certs_der_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let all: Result<Vec<Vec<u8>>, _> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|d| d.to_vec()))
        .collect();
    match all {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(PkiError::NotPem("CERTIFICATE")),
    }
}

/// Which extended key usage a chain check requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS client (device, admin).
    Client,
    /// TLS server.
    Server,
}

/// Why a certificate did not chain to a CA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate does not verify against the CA: {0}")]
pub struct ChainError(pub String);

/// Verifies that `leaf_der` chains directly to `ca_der` at `now` for `usage`
/// (webpki path validation: signature, validity, EKU, constraints).
pub fn verify_chain(
    leaf_der: &[u8],
    ca_der: &[u8],
    now: OffsetDateTime,
    usage: Usage,
) -> Result<(), ChainError> {
    let ca = CertificateDer::from(ca_der);
    let anchor =
        webpki::anchor_from_trusted_cert(&ca).map_err(|e| ChainError(format!("CA: {e}")))?;
    let leaf = CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| ChainError(e.to_string()))?;
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let eku = match usage {
        Usage::Client => webpki::KeyUsage::client_auth(),
        Usage::Server => webpki::KeyUsage::server_auth(),
    };
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        time,
        eku,
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| ChainError(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn device_certificate_properties() {
        let ca = CertAuthority::generate("test CA", now()).unwrap();
        let kp = KeyPair::generate().unwrap();
        let key = DevicePublicKey::from_pem(&kp.public_key_pem()).unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        let c = ca
            .issue_device("dev-1", &key, Duration::days(30), now())
            .unwrap();
        let info = CertInfo::from_der(&c.der).unwrap();
        assert_eq!(info.cn, ["dev-1"]);
        assert_eq!(info.ou, ["iotdevice"]);
        assert!(info.client_auth && !info.is_ca);
        assert_eq!(info.spki_der, key.spki_der());
        assert_eq!(info.serial_hex, c.serial_hex);
        assert_eq!(info.serial_bits(), 128);
        verify_chain(&c.der, ca.cert_der(), now(), Usage::Client).unwrap();
        let other = CertAuthority::generate("other", now()).unwrap();
        assert!(verify_chain(&c.der, other.cert_der(), now(), Usage::Client).is_err());
        assert!(verify_chain(
            &c.der,
            ca.cert_der(),
            now() + Duration::days(31),
            Usage::Client
        )
        .is_err());
        // Reload from PEM and issue again: a different serial.
        let ca2 = CertAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let c2 = ca2
            .issue_device("dev-1", &key, Duration::days(1), now())
            .unwrap();
        assert_ne!(c.serial_hex, c2.serial_hex);
        verify_chain(&c2.der, ca.cert_der(), now(), Usage::Client).unwrap();
    }

    #[test]
    fn ed25519_keys_and_csrs() {
        let ca = CertAuthority::generate("test CA", now()).unwrap();
        let kp = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let key = DevicePublicKey::from_pem(&kp.public_key_pem()).unwrap();
        assert_eq!(key.kind(), KeyKind::Ed25519);
        let c = ca
            .issue_device("e", &key, Duration::days(1), now())
            .unwrap();
        verify_chain(&c.der, ca.cert_der(), now(), Usage::Client).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "e");
        let csr = p.serialize_request(&kp).unwrap().pem().unwrap();
        verify_csr(&csr, &key).unwrap();
        let other = KeyPair::generate().unwrap();
        let other_key = DevicePublicKey::from_pem(&other.public_key_pem()).unwrap();
        assert_eq!(verify_csr(&csr, &other_key), Err(PkiError::CsrKeyMismatch));
        assert!(verify_csr("garbage", &key).is_err());
    }

    #[test]
    fn unsupported_keys() {
        let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(matches!(
            DevicePublicKey::from_pem(&kp.public_key_pem()),
            Err(PkiError::UnsupportedKey(_))
        ));
        assert!(DevicePublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
        assert!(DevicePublicKey::from_pem("not pem").is_err());
        assert_eq!(rsa_modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(rsa_modulus_bits(&[0x7f, 0xff]), 15);
        assert_eq!(rsa_modulus_bits(&[0x00, 0x00, 0x01, 0x00]), 9);
        assert_eq!(rsa_modulus_bits(&[0x00]), 0);
    }
}

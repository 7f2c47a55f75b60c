//! The crypto floor: the in-process cost, on the crate's crypto provider and
//! key types, of the cryptographic work one provisioning cannot avoid — the
//! server's side of one TLS 1.3 handshake (ephemeral key generation and
//! agreement, one CertificateVerify signature, the key schedule and the
//! transcript hash) plus one device-certificate signature and the HMACs of
//! the request and the answer. `idprov bench` measures it in the same run as
//! the load; `cargo bench --bench provisioning` has the same primitives as
//! criterion groups (`crypto_floor/*`).
//!
//! Left out on purpose (each well under 1 µs here): record encryption of the
//! few kilobytes a provisioning sends, and the random numbers of the hellos.

use crate::core::sign;
use crate::pki::{CertAuthority, PkiError};
use rustls::crypto::tls13::Hkdf;
use rustls::crypto::CryptoProvider;
use rustls::sign::Signer;
use rustls::{CipherSuite, NamedGroup, SignatureScheme, SupportedCipherSuite};
use rustls_pki_types::PrivateKeyDer;
use std::sync::Arc;
use std::time::Instant;

/// Bytes of the TLS 1.3 transcript of one provisioning handshake (hellos,
/// encrypted extensions, a two-certificate chain, CertificateVerify,
/// Finished), as seen on loopback; hashed once per handshake.
pub const TRANSCRIPT_BYTES: usize = 2_600;
/// Bytes of a provisioning request the server verifies.
pub const REQUEST_BYTES: usize = 400;
/// Bytes of an Approved answer the server signs (it carries two PEMs).
pub const ANSWER_BYTES: usize = 1_900;
/// HKDF-Expand calls of a TLS 1.3 handshake without tickets: two derived
/// secrets, four traffic secrets, the exporter secret, two finished keys,
/// and a key and an IV for each of the four traffic secrets.
pub const SCHEDULE_EXPANDS: usize = 17;

/// Why the floor's primitives could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FloorError {
    /// Key generation or certificate work failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The provider refused a key or an operation.
    #[error("crypto provider: {0}")]
    Provider(String),
}

fn provider_err<E: std::fmt::Display>(e: E) -> FloorError {
    FloorError::Provider(e.to_string())
}

/// Everything the primitives need, prepared once.
pub struct Primitives {
    provider: Arc<CryptoProvider>,
    peer_share: Vec<u8>,
    group: NamedGroup,
    server_signer: Box<dyn Signer>,
    ca_signer: Box<dyn Signer>,
    hkdf: &'static dyn Hkdf,
    suite: CipherSuite,
    transcript: Vec<u8>,
    request: Vec<u8>,
    answer: Vec<u8>,
    tbs: Vec<u8>,
    verify_alg: &'static dyn rustls_pki_types::SignatureVerificationAlgorithm,
    verify_key: Vec<u8>,
    verify_sig: Vec<u8>,
}

fn signer(provider: &CryptoProvider, key_pem: &str) -> Result<Box<dyn Signer>, FloorError> {
    use rustls_pki_types::pem::PemObject;
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(provider_err)?;
    let key = provider
        .key_provider
        .load_private_key(der)
        .map_err(provider_err)?;
    key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .ok_or_else(|| FloorError::Provider("the key does not sign ECDSA P-256".into()))
}

impl Primitives {
    /// Prepares the primitives on the crate's provider (the one the server
    /// negotiates first: its first key-exchange group and cipher suite).
    pub fn new() -> Result<Self, FloorError> {
        Self::with_group(None)
    }

    /// Like [`Primitives::new`], with another key-exchange group.
    pub fn with_group(group: Option<NamedGroup>) -> Result<Self, FloorError> {
        let provider = crate::tls::provider();
        let now = time::OffsetDateTime::now_utc();
        let ca = CertAuthority::generate("floor CA", now)?;
        let server = ca.issue_server(&["localhost".to_string()], &[], now)?;
        let kx = match group {
            Some(g) => provider
                .kx_groups
                .iter()
                .find(|k| k.name() == g)
                .ok_or_else(|| FloorError::Provider(format!("no group {g:?}")))?,
            None => provider
                .kx_groups
                .first()
                .ok_or_else(|| FloorError::Provider("no key-exchange group".into()))?,
        };
        let group = kx.name();
        let peer_share = kx.start().map_err(provider_err)?.pub_key().to_vec();
        let (hkdf, suite) = provider
            .cipher_suites
            .iter()
            .find_map(|s| match s {
                SupportedCipherSuite::Tls13(t) => Some((t.hkdf_provider, t.common.suite)),
                _ => None,
            })
            .ok_or_else(|| FloorError::Provider("no TLS 1.3 suite".into()))?;
        let tbs = vec![0x30; 420];
        let verify_alg = provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(s, _)| *s == SignatureScheme::ECDSA_NISTP256_SHA256)
            .and_then(|(_, algs)| algs.first().copied())
            .ok_or_else(|| FloorError::Provider("no ECDSA P-256 verification".into()))?;
        let verify_key = rcgen::KeyPair::from_pem(ca.key_pem())
            .map_err(provider_err)?
            .public_key_raw()
            .to_vec();
        let ca_signer = signer(&provider, ca.key_pem())?;
        let verify_sig = ca_signer.sign(&tbs).map_err(provider_err)?;
        Ok(Primitives {
            verify_alg,
            verify_key,
            verify_sig,
            server_signer: signer(&provider, &server.key_pem)?,
            ca_signer: signer(&provider, ca.key_pem())?,
            provider,
            peer_share,
            group,
            hkdf,
            suite,
            transcript: vec![0x16; TRANSCRIPT_BYTES],
            request: vec![b'r'; REQUEST_BYTES],
            answer: vec![b'a'; ANSWER_BYTES],
            // A device certificate's to-be-signed part is about this long.
            tbs,
        })
    }

    /// The key-exchange group measured.
    pub fn group(&self) -> String {
        format!("{:?}", self.group)
    }

    /// The TLS 1.3 cipher suite whose key schedule is measured.
    pub fn suite(&self) -> String {
        format!("{:?}", self.suite)
    }

    /// The server's ephemeral key: generation and agreement with the
    /// device's share.
    pub fn key_exchange(&self) -> Result<(), FloorError> {
        let kx = self
            .provider
            .kx_groups
            .iter()
            .find(|k| k.name() == self.group)
            .ok_or_else(|| FloorError::Provider("group gone".into()))?;
        let active = kx.start().map_err(provider_err)?;
        std::hint::black_box(active.pub_key());
        let shared = active.complete(&self.peer_share).map_err(provider_err)?;
        std::hint::black_box(shared.secret_bytes());
        Ok(())
    }

    /// The CertificateVerify signature with the server's key.
    pub fn handshake_signature(&self) -> Result<(), FloorError> {
        // 64 spaces, the context string, and the transcript hash.
        let msg = [0x20u8; 130];
        std::hint::black_box(self.server_signer.sign(&msg).map_err(provider_err)?);
        Ok(())
    }

    /// The TLS 1.3 key schedule (RFC 8446 §7.1) and the two Finished MACs,
    /// plus hashing the transcript once.
    pub fn key_schedule(&self) {
        let h = self.hkdf;
        let label: &[&[u8]] = &[b"\x00\x20\x0dtls13 derived\x20"];
        let early = h.extract_from_zero_ikm(None);
        let d1 = early.expand_block(label);
        let hs = h.extract_from_secret(Some(d1.as_ref()), &[7u8; 32]);
        let c_hs = hs.expand_block(label);
        let s_hs = hs.expand_block(label);
        let d2 = hs.expand_block(label);
        let master = h.extract_from_zero_ikm(Some(d2.as_ref()));
        let mut secrets = vec![c_hs, s_hs];
        for _ in 0..3 {
            secrets.push(master.expand_block(label));
        }
        // Finished keys, then a key and an IV for four traffic secrets.
        let mut expands = 6;
        for s in secrets.iter().take(4) {
            let e = h.extract_from_secret(None, s.as_ref());
            for _ in 0..2 {
                std::hint::black_box(e.expand_block(label));
                expands += 1;
            }
        }
        for s in secrets.iter().take(2) {
            std::hint::black_box(h.hmac_sign(s, &[0u8; 32]));
        }
        let e = h.extract_from_secret(None, secrets[0].as_ref());
        while expands < SCHEDULE_EXPANDS {
            std::hint::black_box(e.expand_block(label));
            expands += 1;
        }
        {
            use sha2::Digest;
            std::hint::black_box(sha2::Sha256::digest(&self.transcript));
        }
    }

    /// The CA's signature over a device certificate.
    pub fn certificate_signature(&self) -> Result<(), FloorError> {
        std::hint::black_box(self.ca_signer.sign(&self.tbs).map_err(provider_err)?);
        Ok(())
    }

    /// The request's HMAC check and the answer's HMAC.
    pub fn hmacs(&self) {
        std::hint::black_box(sign::tag(b"an oob secret", &self.request));
        std::hint::black_box(sign::tag(b"an oob secret", &self.answer));
    }

    /// One ECDSA P-256 signature check, as a device makes three of them:
    /// the server certificate's (under the pinned CA), the CertificateVerify
    /// and the issued certificate's.
    pub fn signature_verify(&self) -> Result<(), FloorError> {
        let ok = self
            .verify_alg
            .verify_signature(&self.verify_key, &self.tbs, &self.verify_sig)
            .is_ok();
        if ok {
            Ok(())
        } else {
            Err(FloorError::Provider(
                "a good ECDSA signature did not verify".into(),
            ))
        }
    }

    /// The answer's HMAC, the one a device computes inside the window (its
    /// request was signed before).
    pub fn answer_hmac(&self) {
        std::hint::black_box(sign::tag(b"an oob secret", &self.answer));
    }
}

/// The floor's parts, µs each, and their sum.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CryptoFloor {
    /// Key-exchange group measured.
    pub group: String,
    /// TLS 1.3 suite whose key schedule is measured.
    pub suite: String,
    /// Ephemeral key generation and agreement.
    pub key_exchange_us: f64,
    /// CertificateVerify signature.
    pub handshake_signature_us: f64,
    /// Key schedule, Finished MACs and transcript hash.
    pub key_schedule_us: f64,
    /// The device certificate's signature.
    pub certificate_signature_us: f64,
    /// Request and answer HMACs.
    pub hmac_us: f64,
    /// The sum: server CPU one provisioning cannot go below.
    pub total_us: f64,
}

/// Timed rounds per part: the best one counts, so that a neighbour's burst
/// on a shared machine does not raise the floor.
const ROUNDS: u32 = 5;

/// µs per call of `f`, the best of five timed rounds of about `secs / 5`.
pub fn per_call_us(secs: f64, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut n = 0u64;
        // Bounded in count and time: at most 10^7 calls or `secs / 5`.
        while n < 10_000_000 && start.elapsed().as_secs_f64() < secs / f64::from(ROUNDS) {
            for _ in 0..16 {
                f();
            }
            n += 16;
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64);
    }
    best
}

/// Measures the floor, about `secs` per part.
pub fn measure(secs: f64) -> Result<CryptoFloor, FloorError> {
    let p = Primitives::new()?;
    // One call each first: a failing primitive is an error, not a fast loop.
    p.key_exchange()?;
    p.handshake_signature()?;
    p.certificate_signature()?;
    let key_exchange_us = per_call_us(secs, || {
        let _ = p.key_exchange();
    });
    let handshake_signature_us = per_call_us(secs, || {
        let _ = p.handshake_signature();
    });
    let key_schedule_us = per_call_us(secs, || p.key_schedule());
    let certificate_signature_us = per_call_us(secs, || {
        let _ = p.certificate_signature();
    });
    let hmac_us = per_call_us(secs, || p.hmacs());
    Ok(CryptoFloor {
        group: p.group(),
        suite: p.suite(),
        total_us: key_exchange_us
            + handshake_signature_us
            + key_schedule_us
            + certificate_signature_us
            + hmac_us,
        key_exchange_us,
        handshake_signature_us,
        key_schedule_us,
        certificate_signature_us,
        hmac_us,
    })
}

/// The device's side of one provisioning, as the load generator does it
/// inside its timed window: the client's half of the TLS 1.3 handshake
/// (its ephemeral key and agreement, the key schedule), checking the
/// server's certificate and CertificateVerify and the issued certificate
/// (three ECDSA P-256 verifications; two when the answer is not checked),
/// and the answer's HMAC. The device's key pair and signed request are
/// made before the window, so they are not in it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientFloor {
    /// Ephemeral key generation and agreement.
    pub key_exchange_us: f64,
    /// One ECDSA P-256 verification.
    pub signature_verify_us: f64,
    /// Verifications per provisioning.
    pub signature_verifies: u32,
    /// Key schedule, Finished MACs and transcript hash.
    pub key_schedule_us: f64,
    /// The answer's HMAC.
    pub hmac_us: f64,
    /// The sum: load-generator CPU one provisioning cannot go below.
    pub total_us: f64,
}

/// Measures the device's floor, about `secs` per part; `verifies_answer`
/// when the generator checks each issued certificate.
pub fn measure_client(secs: f64, verifies_answer: bool) -> Result<ClientFloor, FloorError> {
    let p = Primitives::new()?;
    p.key_exchange()?;
    p.signature_verify()?;
    let key_exchange_us = per_call_us(secs, || {
        let _ = p.key_exchange();
    });
    let signature_verify_us = per_call_us(secs, || {
        let _ = p.signature_verify();
    });
    let key_schedule_us = per_call_us(secs, || p.key_schedule());
    let hmac_us = per_call_us(secs, || p.answer_hmac());
    let signature_verifies = 2 + u32::from(verifies_answer);
    Ok(ClientFloor {
        total_us: key_exchange_us
            + f64::from(signature_verifies) * signature_verify_us
            + key_schedule_us
            + hmac_us,
        key_exchange_us,
        signature_verify_us,
        signature_verifies,
        key_schedule_us,
        hmac_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_primitive_runs_and_the_sum_adds_up() {
        let f = measure(0.03).unwrap();
        for part in [
            f.key_exchange_us,
            f.handshake_signature_us,
            f.key_schedule_us,
            f.certificate_signature_us,
            f.hmac_us,
        ] {
            assert!(part > 0.0 && part.is_finite(), "{f:?}");
        }
        let sum = f.key_exchange_us
            + f.handshake_signature_us
            + f.key_schedule_us
            + f.certificate_signature_us
            + f.hmac_us;
        assert!((f.total_us - sum).abs() < 1e-9);
        assert!(f.suite.starts_with("TLS13_"), "{}", f.suite);
    }

    #[test]
    fn the_client_floor_adds_up_and_its_verification_checks() {
        let f = measure_client(0.03, true).unwrap();
        assert_eq!(f.signature_verifies, 3);
        let sum = f.key_exchange_us + 3.0 * f.signature_verify_us + f.key_schedule_us + f.hmac_us;
        assert!(
            f.signature_verify_us > 0.0 && (f.total_us - sum).abs() < 1e-9,
            "{f:?}"
        );
        // A signature that does not verify is an error, not a fast loop.
        let mut p = Primitives::new().unwrap();
        p.verify_sig[10] ^= 1;
        assert!(p.signature_verify().is_err());
    }
}

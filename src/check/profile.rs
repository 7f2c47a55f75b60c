//! The device-certificate profile (PROTOCOL `cert.profile`,
//! `provreq.approved`, `provreq.serial`) as one I/O-free check, run on every
//! certificate a server case receives — provisioning, admin provisioning,
//! renewal, CSR and status answers alike — plus the run-wide serial ledger.
//!
//! Every violation names the property and the rule it breaks, so a report
//! says "EKU widened by serverAuth", not "bad certificate".

use crate::pki::{hex, verify_chain, Usage};
use std::collections::HashMap;
use std::sync::Mutex;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

/// How far in the future a `notBefore` may lie (clock skew between the
/// server and the suite).
pub const CLOCK_SKEW: Duration = Duration::minutes(5);
/// How far back a `notBefore` may be dated ("valid from issuance").
pub const MAX_BACKDATE: Duration = Duration::days(1);
/// Shortest sane lifetime.
pub const MIN_LIFETIME: Duration = Duration::days(1);
/// Longest sane lifetime (the reference issues 30 days).
pub const MAX_LIFETIME: Duration = Duration::days(5 * 366);
/// Fewest octets a serial with 64 random bits can be encoded in.
pub const MIN_SERIAL_OCTETS: usize = 8;

/// One property of the profile that a certificate breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule ID in `docs/PROTOCOL.md`.
    pub rule: &'static str,
    /// What is wrong, naming the property.
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.what, self.rule)
    }
}

fn v<T>(rule: &'static str, what: impl Into<String>) -> Result<T, Violation> {
    Err(Violation {
        rule,
        what: what.into(),
    })
}

/// What a certificate is checked against.
pub struct Expected<'a> {
    /// DER of the CA the directory names.
    pub ca_der: &'a [u8],
    /// The device ID the certificate is for, byte for byte.
    pub device_id: &'a str,
    /// SubjectPublicKeyInfo DER of the key in the request, when known.
    pub spki: Option<&'a [u8]>,
    /// The instant the certificate must be valid at.
    pub now: OffsetDateTime,
}

/// Facts about a certificate that passed the profile.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Serial as encoded (DER INTEGER content octets).
    pub serial: Vec<u8>,
    /// Lower-case hex of the serial.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// Checks `der` against the whole device-certificate profile; the first
/// property that fails is returned.
pub fn check_device_certificate(der: &[u8], want: &Expected<'_>) -> Result<Checked, Violation> {
    const P: &str = "cert.profile";
    let (rest, c) = match X509Certificate::from_der(der) {
        Ok(x) => x,
        Err(e) => return v(P, format!("clientCert is not a DER certificate: {e}")),
    };
    if !rest.is_empty() {
        return v(P, "clientCert has bytes after the certificate");
    }
    let (_, ca) = match X509Certificate::from_der(want.ca_der) {
        Ok(x) => x,
        Err(e) => return v(P, format!("the directory's caCert does not parse: {e}")),
    };
    if c.version() != X509Version::V3 {
        return v(P, format!("version {} instead of v3", c.version().0 + 1));
    }
    if c.issuer().as_raw() != ca.subject().as_raw() {
        return v(
            P,
            format!(
                "issuer `{}` is not the CA's subject `{}`",
                c.issuer(),
                ca.subject()
            ),
        );
    }
    if let Err(e) = verify_chain(der, want.ca_der, want.now, Usage::Client) {
        return v(
            P,
            format!("does not verify under the directory's caCert: {e}"),
        );
    }
    // Subject: exactly one CN, equal to the device ID byte for byte.
    let cns: Vec<&[u8]> = c
        .subject()
        .iter_common_name()
        .map(|a| a.attr_value().data)
        .collect();
    match cns.as_slice() {
        [one] if *one == want.device_id.as_bytes() => {}
        [one] => {
            return v(
                P,
                format!(
                    "subject CN {:?} is not the device ID {:?} byte for byte",
                    String::from_utf8_lossy(one),
                    want.device_id
                ),
            )
        }
        many => {
            return v(
                P,
                format!("{} CN attributes, expected exactly one", many.len()),
            )
        }
    }
    let ous: Vec<String> = c
        .subject()
        .iter_organizational_unit()
        .map(|a| String::from_utf8_lossy(a.attr_value().data).into_owned())
        .collect();
    if !ous.iter().any(|o| o == "iotdevice") {
        return v(P, format!("subject OU {ous:?} lacks iotdevice"));
    }
    if let Some(role) = ous.iter().find(|o| *o == "admin" || *o == "plugin") {
        return v(
            "roles.ou",
            format!("subject OU also names the role `{role}`: a device certificate must carry only iotdevice"),
        );
    }
    // Extended key usage: clientAuth and nothing that widens it.
    match c.extended_key_usage() {
        Ok(Some(e)) => {
            let e = &e.value;
            if !e.client_auth {
                return v(P, "extended key usage lacks clientAuth");
            }
            let mut wider = Vec::new();
            if e.any {
                wider.push("anyExtendedKeyUsage".to_string());
            }
            if e.server_auth {
                wider.push("serverAuth".into());
            }
            if e.code_signing {
                wider.push("codeSigning".into());
            }
            if e.email_protection {
                wider.push("emailProtection".into());
            }
            if e.time_stamping {
                wider.push("timeStamping".into());
            }
            if e.ocsp_signing {
                wider.push("OCSPSigning".into());
            }
            wider.extend(e.other.iter().map(|o| o.to_id_string()));
            if !wider.is_empty() {
                return v(
                    P,
                    format!(
                        "extended key usage widened beyond clientAuth by {}",
                        wider.join(", ")
                    ),
                );
            }
        }
        Ok(None) => return v(P, "no extended key usage extension (clientAuth required)"),
        Err(e) => return v(P, format!("extended key usage does not parse: {e}")),
    }
    match c.basic_constraints() {
        Ok(Some(b)) if b.value.ca => return v(P, "basicConstraints says cA: a device is not a CA"),
        Ok(_) => {}
        Err(e) => return v(P, format!("basicConstraints does not parse: {e}")),
    }
    match c.key_usage() {
        Ok(Some(k)) => {
            let k = &k.value;
            if k.key_cert_sign() || k.crl_sign() {
                return v(P, "key usage lets the device sign certificates or CRLs");
            }
            if !k.digital_signature() {
                return v(
                    P,
                    "key usage lacks digitalSignature, which a TLS client key needs",
                );
            }
        }
        Ok(None) => {}
        Err(e) => return v(P, format!("key usage does not parse: {e}")),
    }
    // Validity: from issuance, valid now, for a sane period.
    let nb = c.validity().not_before.to_datetime();
    let na = c.validity().not_after.to_datetime();
    let now = want.now;
    if nb > now + CLOCK_SKEW {
        return v(
            P,
            format!("notBefore {nb} lies in the future (now {now}, allowed skew {CLOCK_SKEW})"),
        );
    }
    if nb < now - MAX_BACKDATE {
        return v(
            P,
            format!(
                "notBefore {nb} is backdated by more than {MAX_BACKDATE}: not valid from issuance"
            ),
        );
    }
    if na <= now {
        return v(P, format!("already expired (notAfter {na})"));
    }
    let life = na - nb;
    if life < MIN_LIFETIME || life > MAX_LIFETIME {
        return v(
            P,
            format!(
                "lifetime of {} is not sane ({MIN_LIFETIME}..{MAX_LIFETIME})",
                life
            ),
        );
    }
    // Serial: positive, non-zero, room for 64 random bits.
    let serial = c.tbs_certificate.raw_serial().to_vec();
    if serial.first().is_some_and(|b| b & 0x80 != 0) {
        return v("provreq.serial", "serial is negative");
    }
    if serial.iter().all(|b| *b == 0) {
        return v("provreq.serial", "serial is zero");
    }
    if serial.len() < MIN_SERIAL_OCTETS {
        return v(
            "provreq.serial",
            format!(
                "serial {} has {} octets: cannot hold 64 random bits",
                hex(&serial),
                serial.len()
            ),
        );
    }
    if let Some(spki) = want.spki {
        if c.public_key().raw != spki {
            return v(
                "provreq.approved",
                "certificate is not for the public key of this request",
            );
        }
    }
    Ok(Checked {
        serial_hex: hex(&serial),
        serial,
        not_before: nb,
        not_after: na,
    })
}

/// Serials a run has seen, to catch a serial reused by a different
/// certificate anywhere in the run (`provreq.serial`).
#[derive(Default)]
pub struct SerialLedger {
    /// Serial → (SHA-256 of the certificate, case that saw it first).
    seen: Mutex<HashMap<Vec<u8>, Sighting>>,
}

type Sighting = (Vec<u8>, String);

impl SerialLedger {
    /// Records `serial` of the certificate `der` seen in case `case`; fails
    /// when another certificate already carried the serial.
    pub fn record(&self, serial: &[u8], der: &[u8], case: &str) -> Result<(), Violation> {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let digest = crate::pki::sha256_hex(der).into_bytes();
        match seen.get(serial) {
            Some((d, _)) if *d == digest => Ok(()),
            Some((_, other)) => v(
                "provreq.serial",
                format!(
                    "serial {} was already used by another certificate (in case {other})",
                    hex(serial)
                ),
            ),
            None => {
                seen.insert(serial.to_vec(), (digest, case.to_string()));
                Ok(())
            }
        }
    }
}

/// Judges serials issued one after another for signs of a counter or a
/// clock instead of a CSPRNG: a constant difference between consecutive
/// serials, or too few bit positions that ever change.
pub fn serials_look_random(serials: &[Vec<u8>]) -> Result<(), Violation> {
    if serials.len() < 4 {
        return Ok(());
    }
    let as_u128 = |s: &[u8]| -> u128 {
        let tail = &s[s.len().saturating_sub(16)..];
        tail.iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
    };
    let vals: Vec<u128> = serials.iter().map(|s| as_u128(s)).collect();
    let diffs: Vec<u128> = vals.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    if diffs.windows(2).all(|w| w[0] == w[1]) {
        return v(
            "provreq.serial",
            format!(
                "{} consecutive serials form an arithmetic progression (step {:#x}): a counter, not random",
                serials.len(),
                diffs[0]
            ),
        );
    }
    let mut varying: u128 = 0;
    for x in &vals[1..] {
        varying |= x ^ vals[0];
    }
    let bits = varying.count_ones();
    // With 64 random bits, the chance that a given bit never changes over
    // n serials is 2^(1-n); 48 of 64 leaves a wide margin at n ≥ 8.
    let needed = if serials.len() >= 8 { 48 } else { 32 };
    if bits < needed {
        return v(
            "provreq.serial",
            format!(
                "only {bits} bit positions change across {} serials: fewer than 64 random bits",
                serials.len()
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_clocks_are_not_random() {
        let counter: Vec<Vec<u8>> = (0..8u128)
            .map(|i| {
                (0x1234_5678_9abc_def0_0000_0000_0000_0000u128 + i)
                    .to_be_bytes()
                    .to_vec()
            })
            .collect();
        assert!(serials_look_random(&counter).is_err());
        let clock: Vec<Vec<u8>> = [5u128, 9, 10, 30, 31, 77, 80, 81]
            .iter()
            .map(|i| {
                (0x7000_0000_0000_0000_0000_0000_0000_0000u128 + (1_700_000_000_000 + i))
                    .to_be_bytes()
                    .to_vec()
            })
            .collect();
        assert!(serials_look_random(&clock).is_err());
        let random: Vec<Vec<u8>> = (0..8)
            .map(|_| crate::pki::random_serial().to_bytes())
            .collect();
        assert!(serials_look_random(&random).is_ok());
    }

    #[test]
    fn the_ledger_catches_a_reused_serial_only_for_another_certificate() {
        let l = SerialLedger::default();
        assert!(l.record(b"\x01\x02", b"cert-a", "x").is_ok());
        assert!(l.record(b"\x01\x02", b"cert-a", "y").is_ok());
        let e = l.record(b"\x01\x02", b"cert-b", "z").unwrap_err();
        assert!(e.what.contains("case x"), "{e}");
    }
}

/// What two certificates of the profile must share whatever the requests
/// behind them carried (issue 24's relations): everything but what is
/// each certificate's own — the CN, the key and its identifier, the serial,
/// the instants, the signature and the alternative names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The issuer, as encoded.
    pub issuer: Vec<u8>,
    /// Subject attributes other than the CN, as (OID, value) in order.
    pub subject: Vec<(String, Vec<u8>)>,
    /// Extensions other than the subject key identifier and the
    /// alternative names: OID, criticality and value, sorted by OID.
    pub extensions: Vec<(String, bool, Vec<u8>)>,
    /// `notAfter` − `notBefore`, in seconds.
    pub lifetime_secs: i64,
    /// The signature algorithm's OID.
    pub signature_algorithm: String,
}

/// How far two lifetimes of one profile may differ (a server that rounds
/// to the second or the minute).
pub const LIFETIME_SLACK_SECS: i64 = 300;

/// The [`Shape`] of a DER certificate.
pub fn shape_of(der: &[u8]) -> Result<Shape, String> {
    const SKI: &str = "2.5.29.14";
    const SAN: &str = "2.5.29.17";
    const CN: &str = "2.5.4.3";
    let (_, c) = X509Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
    let subject = c
        .subject()
        .iter_attributes()
        .filter(|a| a.attr_type().to_id_string() != CN)
        .map(|a| (a.attr_type().to_id_string(), a.attr_value().data.to_vec()))
        .collect();
    let mut extensions: Vec<(String, bool, Vec<u8>)> = c
        .extensions()
        .iter()
        .map(|e| (e.oid.to_id_string(), e.critical, e.value.to_vec()))
        .filter(|(oid, _, _)| oid != SKI && oid != SAN)
        .collect();
    extensions.sort();
    let v = c.validity();
    Ok(Shape {
        issuer: c.issuer().as_raw().to_vec(),
        subject,
        extensions,
        lifetime_secs: v.not_after.timestamp() - v.not_before.timestamp(),
        signature_algorithm: c.signature_algorithm.algorithm.to_id_string(),
    })
}

impl Shape {
    /// How `other` differs from this shape, in words (empty: the same
    /// profile).
    pub fn differences(&self, other: &Shape) -> Vec<String> {
        let mut out = Vec::new();
        if self.issuer != other.issuer {
            out.push("another issuer".to_string());
        }
        if self.subject != other.subject {
            let show = |s: &[(String, Vec<u8>)]| {
                s.iter()
                    .map(|(o, v)| format!("{o}={}", String::from_utf8_lossy(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(format!(
                "subject attributes besides the CN [{}] instead of [{}]",
                show(&other.subject),
                show(&self.subject)
            ));
        }
        let oids = |s: &Shape| {
            s.extensions
                .iter()
                .map(|(o, _, _)| o.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        let (a, b) = (oids(self), oids(other));
        for o in b.difference(&a) {
            out.push(format!("an extra extension {o}"));
        }
        for o in a.difference(&b) {
            out.push(format!("extension {o} missing"));
        }
        for (x, y) in self.extensions.iter().zip(&other.extensions) {
            if x.0 == y.0 && (x.1 != y.1 || x.2 != y.2) {
                out.push(format!(
                    "extension {} with another value or criticality",
                    x.0
                ));
            }
        }
        if (self.lifetime_secs - other.lifetime_secs).abs() > LIFETIME_SLACK_SECS {
            out.push(format!(
                "a lifetime of {} s instead of {} s",
                other.lifetime_secs, self.lifetime_secs
            ));
        }
        if self.signature_algorithm != other.signature_algorithm {
            out.push(format!(
                "signature algorithm {} instead of {}",
                other.signature_algorithm, self.signature_algorithm
            ));
        }
        out
    }
}

//! `renewal.json`: peer certificates × requested device → the server's
//! decision (PROTOCOL §5 step 2).

use super::{ed25519_key, fixed_now, note, rfc3339, Expected, Ids, Tally, VectorError, VectorFile};
use crate::core::decision::{decide, Authority, Decision, PeerCert, Policy};
use crate::pki::{cert_der_from_pem, verify_chain, CertAuthority, CertInfo, Usage};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// A group of renewal cases sharing a server CA.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RenewalGroup {
    /// `PeerCertificateDecision`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The server's CA.
    pub server_ca_pem: String,
    /// The moment of the request (RFC 3339).
    pub now: String,
    /// Cases.
    pub tests: Vec<RenewalTest>,
}

/// One renewal case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RenewalTest {
    /// Stable id.
    pub tc_id: u32,
    /// What it checks.
    pub comment: String,
    /// Kinds of bug.
    pub flags: Vec<String>,
    /// Rules of docs/PROTOCOL.md the case checks (from its group and flags).
    #[serde(default)]
    pub rules: Vec<String>,
    /// deviceID of the request.
    pub device_id: String,
    /// The client certificate presented over TLS, or null for none.
    pub peer_cert_pem: Option<String>,
    /// `renew`, `admin-provision`, `use-oob-secret` or `refuse-tls`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Valid: the certificate authorises the request; invalid: it does not.
    pub result: Expected,
}

fn decision_of(
    server_ca_der: &[u8],
    pem: Option<&str>,
    device: &str,
    now: OffsetDateTime,
) -> Result<String, String> {
    let peer = match pem {
        None => PeerCert::None,
        Some(p) => {
            let der = cert_der_from_pem(p).map_err(|e| e.to_string())?;
            let info = CertInfo::from_der(&der).map_err(|e| e.to_string())?;
            // The TLS layer checks the chain, not the time (PROTOCOL §5).
            let inside = info.not_before + Duration::seconds(1);
            if verify_chain(&der, server_ca_der, inside, Usage::Client).is_err() {
                return Ok("refuse-tls".into());
            }
            PeerCert::Verified {
                cn: info.cn.first().cloned().unwrap_or_default(),
                ous: info.ou,
                not_before: info.not_before,
                not_after: info.not_after,
            }
        }
    };
    Ok(
        match decide(device, b"{}", &peer, None, now, &Policy::default()) {
            Decision::Approve {
                authority: Authority::Renewal,
                ..
            } => "renew",
            Decision::Approve {
                authority: Authority::Administrator,
                ..
            } => "admin-provision",
            Decision::Approve { .. } => "approve-by-secret",
            Decision::Waiting { .. } => "use-oob-secret",
            Decision::Rejected { .. } => "rejected",
        }
        .into(),
    )
}

/// (comment, flags, device, peer certificate, decision, reason)
type Case<'a> = (
    &'a str,
    &'a [&'a str],
    &'a str,
    Option<String>,
    &'a str,
    &'a str,
);

/// Builds the file.
pub(super) fn generate() -> Result<VectorFile<RenewalGroup>, VectorError> {
    let now = fixed_now();
    let e = |x: crate::pki::PkiError| VectorError(x.to_string());
    let ca = CertAuthority::generate_from(ed25519_key(1)?, "idprov vectors CA", &[0x11; 8], now)
        .map_err(e)?;
    let foreign =
        CertAuthority::generate_from(ed25519_key(2)?, "foreign CA", &[0x22; 8], now).map_err(e)?;
    let mut ids = Ids::new();
    let mut tests = Vec::new();
    let mut serial = 0u8;
    let mut cert = |issuer: &CertAuthority,
                    cn: &str,
                    ou: &str,
                    from: OffsetDateTime,
                    life: Duration|
     -> Result<String, VectorError> {
        serial += 1;
        let key = ed25519_key(100 + serial)?;
        let spki = crate::pki::DevicePublicKey::from_pem(&key.public_key_pem()).map_err(e)?;
        let c = issuer
            .issue_client_with_key(cn, ou, &spki, life, from, &[0x40, serial, 1, 2, 3, 4, 5, 6])
            .map_err(e)?;
        Ok(c.pem)
    };
    let day = Duration::days(1);
    let cases: Vec<Case> = vec![
        (
            "own valid certificate",
            &["Normal"],
            "dev-1",
            Some(cert(&ca, "dev-1", "iotdevice", now, day)?),
            "renew",
            "OU iotdevice, CN = deviceID, valid now",
        ),
        (
            "own certificate, another device requested",
            &["OtherDevice"],
            "dev-2",
            Some(cert(&ca, "dev-1", "iotdevice", now, day)?),
            "use-oob-secret",
            "CN differs from deviceID: authorises nothing",
        ),
        (
            "own certificate, expired",
            &["Expired"],
            "dev-1",
            Some(cert(
                &ca,
                "dev-1",
                "iotdevice",
                now - Duration::days(3),
                day,
            )?),
            "use-oob-secret",
            "not valid now: as if no certificate was sent",
        ),
        (
            "own certificate, not yet valid",
            &["NotYetValid"],
            "dev-1",
            Some(cert(
                &ca,
                "dev-1",
                "iotdevice",
                now + Duration::days(2),
                day,
            )?),
            "use-oob-secret",
            "not valid now",
        ),
        (
            "CN differs only in case",
            &["OtherDevice"],
            "dev-1",
            Some(cert(&ca, "DEV-1", "iotdevice", now, day)?),
            "use-oob-secret",
            "CN must equal deviceID exactly",
        ),
        (
            "plugin certificate",
            &["Administrator"],
            "dev-1",
            Some(cert(&ca, "plugin-1", "plugin", now, day)?),
            "admin-provision",
            "OU plugin may provision any device",
        ),
        (
            "admin certificate",
            &["Administrator"],
            "dev-9",
            Some(cert(&ca, "admin", "admin", now, day)?),
            "admin-provision",
            "OU admin may provision any device",
        ),
        (
            "admin certificate, expired",
            &["Expired"],
            "dev-1",
            Some(cert(&ca, "admin", "admin", now - Duration::days(3), day)?),
            "use-oob-secret",
            "not valid now",
        ),
        (
            "certificate with OU client",
            &["OtherRole"],
            "dev-1",
            Some(cert(&ca, "dev-1", "client", now, day)?),
            "use-oob-secret",
            "another OU authorises nothing",
        ),
        (
            "no client certificate",
            &["Normal"],
            "dev-1",
            None,
            "use-oob-secret",
            "no certificate",
        ),
        (
            "device certificate from a foreign CA",
            &["ForeignCa"],
            "dev-1",
            Some(cert(&foreign, "dev-1", "iotdevice", now, day)?),
            "refuse-tls",
            "does not chain to the server's CA: the TLS handshake fails",
        ),
        (
            "admin certificate from a foreign CA",
            &["ForeignCa"],
            "dev-1",
            Some(cert(&foreign, "admin", "admin", now, day)?),
            "refuse-tls",
            "does not chain to the server's CA",
        ),
    ];
    for (comment, flags, device, pem, decision, reason) in cases {
        tests.push(RenewalTest {
            tc_id: ids.next(),
            comment: comment.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            rules: Vec::new(),
            device_id: device.into(),
            peer_cert_pem: pem,
            decision: decision.into(),
            reason: reason.into(),
            result: if matches!(decision, "renew" | "admin-provision") {
                Expected::Valid
            } else {
                Expected::Invalid
            },
        });
    }
    let count = ids.count();
    for c in &mut tests {
        c.rules = super::rules_for("PeerCertificateDecision", &c.flags);
    }
    Ok(VectorFile {
        algorithm: "IDProv renewal and administrator authority".into(),
        schema: "renewal_schema.json".into(),
        generator_version: env!("CARGO_PKG_VERSION").into(),
        protocol_sections: vec!["PROTOCOL §5".into()],
        header: vec![
            "A provisioning request for deviceID arrives at `now` over TLS with peerCertPem (or none). Decide as PROTOCOL §5 step 2:".into(),
            "renew: OU iotdevice, CN = deviceID, valid at now. admin-provision: OU admin or plugin, valid at now. use-oob-secret: the certificate authorises nothing (go on as if none was sent). refuse-tls: it does not chain to the server's CA.".into(),
            "Valid: the certificate authorises the request; invalid: it does not.".into(),
        ],
        notes: [
            ("Normal", note("Basic", "The ordinary cases.")),
            ("OtherDevice", note("Authorization", "A device certificate used for another device ID.")),
            ("Expired", note("Validity", "A certificate past its notAfter.")),
            ("NotYetValid", note("Validity", "A certificate before its notBefore.")),
            ("Administrator", note("Authorization", "Admin and plugin certificates provision any device.")),
            ("OtherRole", note("Authorization", "A CA-signed certificate of another OU.")),
            ("ForeignCa", note("Authentication", "A certificate from another CA.")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        number_of_tests: count,
        test_groups: vec![RenewalGroup {
            kind: "PeerCertificateDecision".into(),
            server_ca_pem: ca.cert_pem().into(),
            now: rfc3339(now),
            tests,
        }],
    })
}

/// Checks the crate against the file.
pub(super) fn verify(f: &VectorFile<RenewalGroup>) -> super::FileSummary {
    let mut t = Tally::new("renewal.json");
    for g in &f.test_groups {
        let now = OffsetDateTime::parse(&g.now, &time::format_description::well_known::Rfc3339)
            .unwrap_or(fixed_now());
        let ca = cert_der_from_pem(&g.server_ca_pem).unwrap_or_default();
        for c in &g.tests {
            match decision_of(&ca, c.peer_cert_pem.as_deref(), &c.device_id, now) {
                Ok(d) if d == c.decision => {
                    let authorised = matches!(d.as_str(), "renew" | "admin-provision");
                    t.check(c.tc_id, c.result, if authorised { Ok(()) } else { Err(d) });
                }
                Ok(d) => {
                    t.count(c.result);
                    t.mismatch(c.tc_id, format!("decided {d}, expected {}", c.decision));
                }
                Err(e) => {
                    t.count(c.result);
                    t.mismatch(c.tc_id, e);
                }
            }
        }
    }
    t.s
}

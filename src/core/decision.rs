//! The server's decision order for a provisioning request (PROTOCOL §5), as
//! one pure function of (request, peer certificate, secret state, now), plus
//! the in-memory OOB secret store it reads (PROTOCOL §4).

use super::messages::{OU_ADMIN, OU_DEVICE, OU_PLUGIN};
use super::sign::{self, SignatureError};
use std::collections::HashMap;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Failed signatures allowed per device before its secret is discarded.
pub const DEFAULT_GUESS_LIMIT: u32 = 5;
/// Seconds a Waiting device is told to wait.
pub const DEFAULT_WAITING_RETRY_SEC: u64 = 5;

/// How a request's signature is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMethod {
    /// Raw blanking of the received bytes (normative, PROTOCOL §6).
    #[default]
    RawBlanking,
    /// Re-serialisation in Go's field order (the reference's method; used
    /// only to emulate it).
    Reserialize,
    /// Raw blanking with SHA-256(secret) as the key (the standard's prose,
    /// PROTOCOL §6: a known deviation; used only to emulate it).
    Sha256Key,
}

/// The knobs of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failed signatures per device before its secret is discarded.
    pub guess_limit: u32,
    /// Signature verification method.
    pub verify: VerifyMethod,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            guess_limit: DEFAULT_GUESS_LIMIT,
            verify: VerifyMethod::RawBlanking,
        }
    }
}

/// What the TLS layer established about the peer's client certificate. The
/// chain to the server's CA has already been verified when this is not
/// `None`; validity times are checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCert {
    /// No client certificate.
    None,
    /// A certificate chaining to the CA.
    Verified {
        /// Subject CN.
        cn: String,
        /// Subject OUs.
        ous: Vec<String>,
        /// Start of validity.
        not_before: OffsetDateTime,
        /// End of validity.
        not_after: OffsetDateTime,
    },
}

/// The role a peer certificate grants at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No usable certificate.
    Anonymous,
    /// OU `admin`.
    Admin(String),
    /// OU `plugin`.
    Plugin(String),
    /// OU `iotdevice`, with its CN.
    Device(String),
    /// Valid certificate with another OU.
    Other,
}

impl PeerCert {
    /// The role this certificate grants at `now` (expired → anonymous).
    pub fn role(&self, now: OffsetDateTime) -> Role {
        match self {
            PeerCert::None => Role::Anonymous,
            PeerCert::Verified {
                cn,
                ous,
                not_before,
                not_after,
            } => {
                if now < *not_before || now > *not_after {
                    return Role::Anonymous;
                }
                let has = |ou: &str| ous.iter().any(|o| o == ou);
                if has(OU_ADMIN) {
                    Role::Admin(cn.clone())
                } else if has(OU_PLUGIN) {
                    Role::Plugin(cn.clone())
                } else if has(OU_DEVICE) {
                    Role::Device(cn.clone())
                } else {
                    Role::Other
                }
            }
        }
    }
}

/// An OOB secret held by the server.
#[derive(Clone)]
pub struct SecretEntry {
    /// The secret, wiped from memory on drop.
    pub secret: Zeroizing<String>,
    /// When it stops being usable.
    pub valid_until: OffsetDateTime,
    /// Failed signatures so far.
    pub failures: u32,
}

impl std::fmt::Debug for SecretEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEntry")
            .field("secret", &"<redacted>")
            .field("valid_until", &self.valid_until)
            .field("failures", &self.failures)
            .finish()
    }
}

/// Why a request was approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// A valid signature with the device's OOB secret.
    Secret,
    /// An admin or plugin client certificate.
    Administrator,
    /// The device's own valid certificate (renewal).
    Renewal,
}

/// What the server does with a provisioning request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Issue a certificate; sign the response with `response_key`.
    Approve {
        /// What authorised it.
        authority: Authority,
        /// HMAC key for the response (the secret, or empty).
        response_key: Zeroizing<Vec<u8>>,
    },
    /// No usable secret: ask again later.
    Waiting {
        /// Why (for logs and evidence).
        reason: WaitReason,
    },
    /// The signature did not verify.
    Rejected {
        /// What was wrong with it.
        reason: SignatureError,
        /// Whether this failure used up the guess limit.
        secret_discarded: bool,
    },
}

/// Why a request was answered Waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// No secret was ever posted (or it was used or discarded).
    NoSecret,
    /// The secret's `validUntil` has passed.
    Expired,
}

/// Decides a provisioning request (PROTOCOL §5 steps 2–5). `raw_body` is
/// the exact request bytes (for raw-blanking verification); `secret` is the
/// stored entry for the request's device ID, if any.
pub fn decide(
    device_id: &str,
    raw_body: &[u8],
    peer: &PeerCert,
    secret: Option<&SecretEntry>,
    now: OffsetDateTime,
    policy: &Policy,
) -> Decision {
    match peer.role(now) {
        Role::Admin(_) | Role::Plugin(_) => {
            return Decision::Approve {
                authority: Authority::Administrator,
                response_key: Zeroizing::new(Vec::new()),
            }
        }
        Role::Device(cn) if cn == device_id => {
            return Decision::Approve {
                authority: Authority::Renewal,
                response_key: Zeroizing::new(Vec::new()),
            }
        }
        _ => {}
    }
    let Some(entry) = secret else {
        return Decision::Waiting {
            reason: WaitReason::NoSecret,
        };
    };
    if now > entry.valid_until {
        return Decision::Waiting {
            reason: WaitReason::Expired,
        };
    }
    let verified = match policy.verify {
        VerifyMethod::RawBlanking => sign::verify_raw(raw_body, entry.secret.as_bytes()),
        VerifyMethod::Reserialize => {
            crate::core::messages::verify_reserialized_request(raw_body, entry.secret.as_bytes())
        }
        VerifyMethod::Sha256Key => sign::verify_raw(
            raw_body,
            &sign::KeyVariant::Sha256OfSecret.key(&entry.secret),
        ),
    };
    let response_key = match policy.verify {
        VerifyMethod::Sha256Key => sign::KeyVariant::Sha256OfSecret.key(&entry.secret),
        _ => entry.secret.as_bytes().to_vec(),
    };
    match verified {
        Ok(()) => Decision::Approve {
            authority: Authority::Secret,
            response_key: Zeroizing::new(response_key),
        },
        Err(reason) => Decision::Rejected {
            reason,
            secret_discarded: entry.failures.saturating_add(1) >= policy.guess_limit,
        },
    }
}

/// Applies `decision` to the secrets held per device ID (PROTOCOL §5): an
/// approval by secret takes the device's secret (returned, so that it can
/// be put back if issuing fails), expiry and the last allowed failed guess
/// discard it, another failed guess is counted.
pub fn apply_decision(
    entries: &mut HashMap<String, SecretEntry>,
    device_id: &str,
    decision: &Decision,
) -> Option<SecretEntry> {
    match decision {
        Decision::Approve {
            authority: Authority::Secret,
            ..
        } => entries.remove(device_id),
        Decision::Waiting {
            reason: WaitReason::Expired,
        }
        | Decision::Rejected {
            secret_discarded: true,
            ..
        } => {
            entries.remove(device_id);
            None
        }
        Decision::Rejected { .. } => {
            if let Some(e) = entries.get_mut(device_id) {
                e.failures = e.failures.saturating_add(1);
            }
            None
        }
        _ => None,
    }
}

/// The in-memory OOB secret store (PROTOCOL §4): one secret per device.
#[derive(Debug, Default)]
pub struct SecretStore {
    entries: HashMap<String, SecretEntry>,
}

impl SecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores (or replaces) the secret for a device.
    pub fn post(&mut self, device_id: &str, secret: &str, valid_until: OffsetDateTime) {
        self.entries.insert(
            device_id.to_string(),
            SecretEntry {
                secret: Zeroizing::new(secret.to_string()),
                valid_until,
                failures: 0,
            },
        );
    }

    /// The entry for a device.
    pub fn get(&self, device_id: &str) -> Option<&SecretEntry> {
        self.entries.get(device_id)
    }

    /// Number of secrets held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no secret is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decides and applies the decision's effect on the store atomically
    /// (the caller holds the store's lock). An approval by secret removes the
    /// secret and returns it, so the caller can [`SecretStore::restore`] it if
    /// issuing then fails.
    pub fn decide_and_apply(
        &mut self,
        device_id: &str,
        raw_body: &[u8],
        peer: &PeerCert,
        now: OffsetDateTime,
        policy: &Policy,
    ) -> (Decision, Option<SecretEntry>) {
        let decision = decide(
            device_id,
            raw_body,
            peer,
            self.entries.get(device_id),
            now,
            policy,
        );
        let taken = apply_decision(&mut self.entries, device_id, &decision);
        (decision, taken)
    }

    /// Puts back a secret taken by an approval whose issuing failed, unless a
    /// new secret was posted meanwhile.
    pub fn restore(&mut self, device_id: &str, entry: SecretEntry) {
        self.entries.entry(device_id.to_string()).or_insert(entry);
    }

    /// Drops expired secrets; returns how many were dropped.
    pub fn purge_expired(&mut self, now: OffsetDateTime) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.valid_until >= now);
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::messages::{ProvisionRequest, Signed};
    use crate::core::sign::KeyVariant;
    use time::macros::datetime;
    use time::Duration;

    const NOW: OffsetDateTime = datetime!(2026-11-28 06:00 UTC);

    fn request(id: &str, secret: &str) -> Vec<u8> {
        ProvisionRequest {
            device_id: id.into(),
            ip: "127.0.0.1".into(),
            mac: String::new(),
            public_key_pem: "K".into(),
            csr_pem: None,
            signature: String::new(),
        }
        .sign(secret, KeyVariant::Raw)
    }

    fn cert(cn: &str, ou: &str, days: i64) -> PeerCert {
        PeerCert::Verified {
            cn: cn.into(),
            ous: vec![ou.into()],
            not_before: NOW - Duration::days(1),
            not_after: NOW + Duration::days(days),
        }
    }

    #[test]
    fn decision_table() {
        let mut s = SecretStore::new();
        let body = request("d1", "s1");
        // No secret → Waiting.
        let (d, _) = s.decide_and_apply("d1", &body, &PeerCert::None, NOW, &Policy::default());
        assert!(matches!(
            d,
            Decision::Waiting {
                reason: WaitReason::NoSecret
            }
        ));
        // Admin and plugin → approve without secret.
        for ou in ["admin", "plugin"] {
            let (d, _) =
                s.decide_and_apply("d1", &body, &cert("a", ou, 1), NOW, &Policy::default());
            assert!(matches!(
                d,
                Decision::Approve {
                    authority: Authority::Administrator,
                    ..
                }
            ));
        }
        // Own device cert → renewal; other device or expired → falls through.
        let (d, _) = s.decide_and_apply(
            "d1",
            &body,
            &cert("d1", "iotdevice", 1),
            NOW,
            &Policy::default(),
        );
        assert!(matches!(
            d,
            Decision::Approve {
                authority: Authority::Renewal,
                ..
            }
        ));
        let (d, _) = s.decide_and_apply(
            "d1",
            &body,
            &cert("d2", "iotdevice", 1),
            NOW,
            &Policy::default(),
        );
        assert!(matches!(d, Decision::Waiting { .. }));
        let (d, _) = s.decide_and_apply(
            "d1",
            &body,
            &cert("d1", "iotdevice", -1),
            NOW,
            &Policy::default(),
        );
        assert!(matches!(d, Decision::Waiting { .. }));
        // Secret: right one approves once.
        s.post("d1", "s1", NOW + Duration::hours(1));
        let (d, taken) = s.decide_and_apply("d1", &body, &PeerCert::None, NOW, &Policy::default());
        assert!(matches!(
            d,
            Decision::Approve {
                authority: Authority::Secret,
                ..
            }
        ));
        assert!(taken.is_some());
        let (d, _) = s.decide_and_apply("d1", &body, &PeerCert::None, NOW, &Policy::default());
        assert!(matches!(d, Decision::Waiting { .. }), "one-time secret");
    }

    #[test]
    fn guess_limit_discards_secret() {
        let mut s = SecretStore::new();
        s.post("d", "right", NOW + Duration::hours(1));
        let wrong = request("d", "wrong");
        for i in 0..5 {
            let (d, _) = s.decide_and_apply("d", &wrong, &PeerCert::None, NOW, &Policy::default());
            assert!(
                matches!(d, Decision::Rejected { secret_discarded, .. } if secret_discarded == (i == 4))
            );
        }
        let (d, _) = s.decide_and_apply(
            "d",
            &request("d", "right"),
            &PeerCert::None,
            NOW,
            &Policy::default(),
        );
        assert!(matches!(d, Decision::Waiting { .. }));
    }

    #[test]
    fn expired_secret_waits() {
        let mut s = SecretStore::new();
        s.post("d", "s", NOW - Duration::seconds(1));
        let (d, _) = s.decide_and_apply(
            "d",
            &request("d", "s"),
            &PeerCert::None,
            NOW,
            &Policy::default(),
        );
        assert!(matches!(
            d,
            Decision::Waiting {
                reason: WaitReason::Expired
            }
        ));
        assert!(s.is_empty());
    }
}

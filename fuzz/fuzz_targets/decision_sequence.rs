//! The server's decision function driven by arbitrary operations, with the
//! invariants checked after every step.
#![no_main]
use arbitrary::Arbitrary;
use idprov::core::decision::{Authority, Decision, PeerCert, Policy, SecretStore};
use idprov::core::messages::{ProvisionRequest, Signed};
use idprov::core::sign::KeyVariant;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

#[derive(Debug, Arbitrary)]
enum Peer {
    None,
    Admin,
    Plugin,
    Device(u8),
    Other,
    ExpiredDevice(u8),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Post { device: u8, secret: u8, life_s: u16 },
    Provision { device: u8, sign_with: Option<u8>, peer: Peer },
    Advance { s: u16 },
    Restart,
}

fuzz_target!(|ops: Vec<Op>| {
    let mut store = SecretStore::new();
    let mut now = OffsetDateTime::from_unix_timestamp(1_795_845_600).unwrap();
    let policy = Policy::default();
    // What the model knows: the secret posted per device and whether used.
    let mut posted: HashMap<u8, (u8, OffsetDateTime)> = HashMap::new();
    let mut used: HashMap<u8, bool> = HashMap::new();
    for op in ops.into_iter().take(200) {
        match op {
            Op::Post { device, secret, life_s } => {
                let until = now + Duration::seconds(life_s as i64);
                store.post(&format!("d{device}"), &format!("s{secret}"), until);
                posted.insert(device, (secret, until));
                used.insert(device, false);
            }
            Op::Advance { s } => now += Duration::seconds(s as i64),
            Op::Restart => {
                store = SecretStore::new();
                posted.clear();
                used.clear();
            }
            Op::Provision { device, sign_with, peer } => {
                let id = format!("d{device}");
                let body = ProvisionRequest {
                    device_id: id.clone(),
                    ip: "127.0.0.1".into(),
                    mac: String::new(),
                    public_key_pem: "K".into(),
                    csr_pem: None,
                    signature: String::new(),
                };
                let body = match sign_with {
                    Some(s) => body.clone().sign(&format!("s{s}"), KeyVariant::Raw),
                    None => body.clone().unsigned(),
                };
                let (cn, ou, expired) = match &peer {
                    Peer::None => (String::new(), "", false),
                    Peer::Admin => ("a".into(), "admin", false),
                    Peer::Plugin => ("p".into(), "plugin", false),
                    Peer::Device(d) => (format!("d{d}"), "iotdevice", false),
                    Peer::Other => ("o".into(), "client", false),
                    Peer::ExpiredDevice(d) => (format!("d{d}"), "iotdevice", true),
                };
                let pc = if matches!(peer, Peer::None) {
                    PeerCert::None
                } else {
                    PeerCert::Verified {
                        cn: cn.clone(),
                        ous: vec![ou.into()],
                        not_before: now - Duration::days(2),
                        not_after: if expired { now - Duration::days(1) } else { now + Duration::days(1) },
                    }
                };
                let (d, taken) = store.decide_and_apply(&id, &body, &pc, now, &policy);
                match &d {
                    Decision::Approve { authority: Authority::Secret, .. } => {
                        // Only with the posted, unexpired, unused secret.
                        let (s, until) = posted.get(&device).copied().expect("approved without a posted secret");
                        assert_eq!(sign_with, Some(s), "approved with the wrong secret");
                        assert!(now <= until, "approved with an expired secret");
                        assert!(!used.get(&device).copied().unwrap_or(false), "secret used twice");
                        assert!(taken.is_some());
                        used.insert(device, true);
                    }
                    Decision::Approve { authority: Authority::Administrator, .. } => {
                        assert!(matches!(peer, Peer::Admin | Peer::Plugin));
                    }
                    Decision::Approve { authority: Authority::Renewal, .. } => {
                        assert!(matches!(peer, Peer::Device(x) if x == device), "renewal for another device");
                    }
                    Decision::Waiting { .. } | Decision::Rejected { .. } => assert!(taken.is_none()),
                }
                if let Decision::Rejected { secret_discarded: true, .. } = d {
                    posted.remove(&device);
                }
            }
        }
    }
});

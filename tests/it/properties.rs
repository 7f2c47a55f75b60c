//! Properties of the protocol core (proptest).

use idprov::core::json::top_level_members;
use idprov::core::messages::{ProvisionRequest, ProvisionResponse, ProvisionStatus, Signed};
use idprov::core::sign::{self, KeyVariant};
use idprov::core::validate::DeviceId;
use proptest::prelude::*;

fn any_request() -> impl Strategy<Value = ProvisionRequest> {
    (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
        proptest::option::of(any::<String>()),
    )
        .prop_map(
            |(device_id, ip, mac, public_key_pem, csr_pem)| ProvisionRequest {
                device_id,
                ip,
                mac,
                public_key_pem,
                csr_pem,
                signature: String::new(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Sign → verify round trip for any message and secret; any other
    /// secret fails.
    #[test]
    fn sign_verify_round_trip(mut r in any_request(), secret in any::<String>(), other in any::<String>()) {
        let bytes = r.sign(&secret, KeyVariant::Raw);
        prop_assert!(sign::verify_raw(&bytes, secret.as_bytes()).is_ok());
        if other != secret {
            prop_assert!(sign::verify_raw(&bytes, other.as_bytes()).is_err());
        }
        let mut resp = ProvisionResponse {
            retry_sec: 7,
            status: ProvisionStatus::Approved,
            ca_cert: r.mac.clone(),
            client_cert: r.device_id.clone(),
            signature: String::new(),
        };
        let rb = resp.sign(&secret, KeyVariant::Raw);
        prop_assert!(sign::verify_raw(&rb, secret.as_bytes()).is_ok());
    }

    /// Blanking is idempotent and changes only the top-level member's value.
    #[test]
    fn blanking_touches_only_top_level(mut r in any_request(), nested in any::<String>(), secret in any::<String>()) {
        let bytes = r.sign(&secret, KeyVariant::Raw);
        // Add a nested "signature" member and one inside a string.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["meta"] = serde_json::json!({"signature": nested, "note": "\"signature\":\"x\""});
        let doc = serde_json::to_vec(&v).unwrap();
        let b = sign::blank_signature(&doc).unwrap();
        let again = sign::blank_signature(&b.signing_input).unwrap();
        prop_assert_eq!(&again.signing_input, &b.signing_input);
        let before = top_level_members(&doc).unwrap();
        let after = top_level_members(&b.signing_input).unwrap();
        prop_assert_eq!(before.len(), after.len());
        for (x, y) in before.iter().zip(after.iter()) {
            prop_assert_eq!(&x.key, &y.key);
            let (vx, vy) = (&doc[x.value.clone()], &b.signing_input[y.value.clone()]);
            if x.key == "signature" {
                prop_assert_eq!(vy, &b"\"\""[..]);
            } else {
                prop_assert_eq!(vx, vy);
            }
        }
    }

    /// Serialise → parse → serialise is byte-stable.
    #[test]
    fn serialisation_is_stable(mut r in any_request(), secret in any::<String>()) {
        let bytes = r.sign(&secret, KeyVariant::Sha256OfSecret);
        let mut back: ProvisionRequest = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &r);
        let sig = back.signature.clone();
        let again = back.sign(&secret, KeyVariant::Sha256OfSecret);
        prop_assert_eq!(again, bytes);
        prop_assert_eq!(back.signature, sig);
    }

    /// The device ID validator agrees with a regular-expression model.
    #[test]
    fn device_id_matches_regex_model(id in prop_oneof![
        "[A-Za-z0-9._:-]{0,130}",
        any::<String>(),
        Just(".".to_string()),
        Just("..".to_string()),
    ]) {
        let re = regex::Regex::new(r"^[A-Za-z0-9._:-]{1,128}$").unwrap();
        let model = re.is_match(&id) && id != "." && id != "..";
        prop_assert_eq!(DeviceId::parse(&id).is_ok(), model, "{:?}", id);
    }
}

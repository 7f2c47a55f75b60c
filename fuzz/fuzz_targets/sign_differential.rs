//! Differential: for every request this project produces, raw blanking and
//! the Go reference's re-serialisation agree that the signature verifies,
//! and serialise → parse → serialise is stable.
#![no_main]
use arbitrary::Arbitrary;
use idprov::core::messages::{ProvisionRequest, Signed};
use idprov::core::sign::{self, KeyVariant};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    device_id: String,
    ip: String,
    mac: String,
    key: String,
    secret: String,
}

fuzz_target!(|i: Input| {
    let mut r = ProvisionRequest {
        device_id: i.device_id,
        ip: i.ip,
        mac: i.mac,
        public_key_pem: i.key,
        csr_pem: None,
        signature: String::new(),
    };
    let bytes = r.sign(&i.secret, KeyVariant::Raw);
    assert!(sign::verify_raw(&bytes, i.secret.as_bytes()).is_ok());
    assert!(idprov::core::messages::verify_reserialized_request(&bytes, i.secret.as_bytes()).is_ok());
    let mut back: ProvisionRequest = serde_json::from_slice(&bytes).expect("own output parses");
    let sig = back.signature.clone();
    let again = back.sign(&i.secret, KeyVariant::Raw);
    assert_eq!(again, bytes);
    assert_eq!(back.signature, sig);
});

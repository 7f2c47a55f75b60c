//! Every JSON message type a server or device parses, and the validators.
#![no_main]
use idprov::core::messages::{OobSecretMessage, ProvisionRequest, ProvisionResponse, StatusMessage};
use idprov::core::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ProvisionRequest>(data);
    let _ = serde_json::from_slice::<ProvisionResponse>(data);
    let _ = serde_json::from_slice::<OobSecretMessage>(data);
    let _ = serde_json::from_slice::<StatusMessage>(data);
    if let Ok(r) = validate::parse_provision_request(data) {
        // Whatever is accepted has a device ID that validates again, and a
        // public key.
        assert!(validate::DeviceId::parse(r.device_id.as_str()).is_ok());
        assert!(!r.public_key_pem.is_empty());
    }
    let now = time::OffsetDateTime::from_unix_timestamp(1_795_845_600).unwrap();
    if let Ok(p) = validate::parse_oob(data, now) {
        assert!(!p.secret.is_empty());
        assert!(p.valid_until > now);
    }
});

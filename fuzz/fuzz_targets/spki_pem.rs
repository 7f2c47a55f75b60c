//! Device public keys: PEM and DER SubjectPublicKeyInfo.
#![no_main]
use idprov::pki::DevicePublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = DevicePublicKey::from_der(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = DevicePublicKey::from_pem(text) {
            // What is accepted round-trips through DER.
            assert!(DevicePublicKey::from_der(k.spki_der()).is_ok());
        }
    }
});

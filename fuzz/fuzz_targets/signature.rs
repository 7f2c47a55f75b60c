//! Raw-blanking signature verification on arbitrary bytes.
#![no_main]
use idprov::core::sign;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = sign::blank_signature(data) {
        // Blanking is idempotent: the blanked text blanks to itself.
        let again = sign::blank_signature(&b.signing_input).expect("blanked text still has one signature");
        assert_eq!(again.signing_input, b.signing_input);
        assert_eq!(again.signature, "");
    }
    let _ = sign::verify_raw(data, b"secret");
    let _ = sign::detect_variant(data, "secret");
    let _ = idprov::core::messages::verify_reserialized_request(data, b"secret");
});

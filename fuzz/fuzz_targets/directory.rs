//! Tolerant directory parsing by a client.
#![no_main]
use idprov::core::directory::parse_directory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = parse_directory(data, "https://192.0.2.1:43776/idprov/directory") {
        // Every endpoint is an absolute https URL.
        assert!(d.post_provision_request.starts_with("https://"));
        for u in [&d.post_oob_secret, &d.status].into_iter().flatten() {
            assert!(u.starts_with("https://"));
        }
    }
});

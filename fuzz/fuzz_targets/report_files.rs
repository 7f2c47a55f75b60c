//! Known-failing lists and baseline reports given to `idprov check`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = idprov::check::parse_known_failing(text) {
            assert!(k.values().all(|reason| !reason.is_empty()));
        }
        let _ = idprov::check::parse_baseline(text);
    }
});

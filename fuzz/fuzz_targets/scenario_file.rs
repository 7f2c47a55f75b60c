//! Scenario files (the case format of `scenarios/`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = idprov::check::scenario::parse("server/server.fuzz.case.toml", text);
    }
});

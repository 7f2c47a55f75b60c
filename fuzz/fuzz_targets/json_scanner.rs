//! Differential: whatever the top-level scanner accepts, serde_json accepts
//! too (syntax only: numbers are not converted), and member values are
//! exactly JSON values.
#![no_main]
use idprov::core::json::top_level_members;
use libfuzzer_sys::fuzz_target;

fn valid(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(members) = top_level_members(data) {
        assert!(valid(data), "scanner accepted what serde_json refuses");
        for m in members {
            assert!(valid(&data[m.value.clone()]), "a member span is not a JSON value");
        }
    }
});

//! Device ID validation agrees with a simple model of the rule.
#![no_main]
use idprov::core::validate::DeviceId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(id) = std::str::from_utf8(data) else { return };
    let model = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    assert_eq!(DeviceId::parse(id).is_ok(), model, "{id:?}");
});

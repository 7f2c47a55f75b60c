//! CSRs for the csr extension, and certificate parsing.
#![no_main]
use idprov::pki::{verify_csr, CertInfo, DevicePublicKey};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEATMgPfVU82PimWUFhdxr/q0s2Zr6\nqRbX0Td1jMNsIb4WsdATbM3Gcy6xDFBRkR7VEeffGGSeaaArOsiTiEVyhg==\n-----END PUBLIC KEY-----\n";

fuzz_target!(|data: &[u8]| {
    let key = DevicePublicKey::from_pem(KEY).expect("fixed key");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify_csr(text, &key);
        let _ = CertInfo::from_pem(text);
    }
    let _ = CertInfo::from_der(data);
});

//! DNS-SD TXT attributes, SRV port and addresses → directory URL.
#![no_main]
use arbitrary::Arbitrary;
use idprov::core::discovery::directory_url;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

#[derive(Debug, Arbitrary)]
struct Input {
    txt: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    v4: Vec<[u8; 4]>,
    v6: Vec<[u8; 16]>,
    port: u16,
}

fuzz_target!(|i: Input| {
    let mut addrs: Vec<IpAddr> = i.v4.iter().map(|a| IpAddr::from(*a)).collect();
    addrs.extend(i.v6.iter().map(|a| IpAddr::from(*a)));
    if let Ok(url) = directory_url(&addrs, i.port, &i.txt) {
        // A built URL is an https URL our own client can parse, with the port.
        let t = idprov::net::parse_url(&url).expect("built URL parses");
        assert_eq!(t.port, i.port);
        assert!(t.path.starts_with('/') && !t.path.starts_with("//"));
    }
});

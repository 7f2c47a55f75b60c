//! Prints what a server's certificate store holds: `count`, distinct
//! serials and devices. Used by the reliability soak to compare the store
//! with the approvals a load generator received.
//!
//!     cargo run --release --example store_stats -- DATA_DIR

use std::collections::HashSet;

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: store_stats DATA_DIR");
        return std::process::ExitCode::from(2);
    };
    let path = std::path::Path::new(&dir).join("certs.redb");
    let store = match idprov::server::store::CertStore::open(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("store_stats: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let all = match store.all() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("store_stats: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let serials: HashSet<&str> = all.iter().map(|r| r.serial.as_str()).collect();
    let devices: HashSet<&str> = all.iter().map(|r| r.device_id.as_str()).collect();
    println!(
        "certificates {} distinct_serials {} devices {}",
        all.len(),
        serials.len(),
        devices.len()
    );
    if serials.len() == all.len() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

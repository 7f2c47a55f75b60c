//! Finding a server by DNS-SD (PROTOCOL §2) with real mDNS packets.

use crate::core::discovery::{directory_url, TxtEntry};
use crate::core::messages::SERVICE_TYPE;
use mdns_sd::{ServiceDaemon, ServiceEvent};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A server found on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Service instance full name.
    pub fullname: String,
    /// The directory URL built from SRV, addresses and TXT.
    pub url: String,
}

/// Browses for `_idprov._tcp` and returns the first instance whose records
/// give a usable directory URL, or an error after `timeout`.
pub fn discover(timeout: Duration) -> Result<Found, String> {
    let daemon = ServiceDaemon::new().map_err(|e| format!("cannot start mDNS: {e}"))?;
    let rx = daemon
        .browse(SERVICE_TYPE)
        .map_err(|e| format!("cannot browse {SERVICE_TYPE}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut last_problem = None;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(match last_problem {
                Some(p) => format!("no usable {SERVICE_TYPE} service within {timeout:?} ({p})"),
                None => format!("no {SERVICE_TYPE} service answered within {timeout:?}"),
            });
        }
        match rx.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(svc)) => {
                let addrs: Vec<IpAddr> =
                    svc.get_addresses().iter().map(|a| a.to_ip_addr()).collect();
                let txt: Vec<TxtEntry> = svc
                    .get_properties()
                    .iter()
                    .map(|p| (p.key().as_bytes().to_vec(), p.val().map(<[u8]>::to_vec)))
                    .collect();
                match directory_url(&addrs, svc.get_port(), &txt) {
                    Ok(url) => {
                        break Ok(Found {
                            fullname: svc.get_fullname().to_string(),
                            url,
                        })
                    }
                    Err(e) => {
                        tracing::warn!(service = svc.get_fullname(), error = %e, "ignoring service");
                        last_problem = Some(e.to_string());
                    }
                }
            }
            Ok(_) => {}
            Err(_) => continue,
        }
    };
    let _ = daemon.stop_browse(SERVICE_TYPE);
    if let Ok(rx) = daemon.shutdown() {
        let _ = rx.recv_timeout(Duration::from_secs(1));
    }
    result
}

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

/// One resolved `_idprov._tcp` instance as advertised: SRV port, A/AAAA
/// addresses and TXT attributes, uninterpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    /// Service instance full name.
    pub fullname: String,
    /// SRV port.
    pub port: u16,
    /// Resolved addresses.
    pub addresses: Vec<IpAddr>,
    /// TXT attributes.
    pub txt: Vec<TxtEntry>,
}

/// Browses for `_idprov._tcp` until `pick` accepts a resolved instance, or
/// fails after `timeout` with the last reason `pick` gave.
pub fn browse<T>(
    timeout: Duration,
    mut pick: impl FnMut(&Advertised) -> Result<T, String>,
) -> Result<T, String> {
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
                let ad = Advertised {
                    fullname: svc.get_fullname().to_string(),
                    port: svc.get_port(),
                    addresses: svc.get_addresses().iter().map(|a| a.to_ip_addr()).collect(),
                    txt: svc
                        .get_properties()
                        .iter()
                        .map(|p| (p.key().as_bytes().to_vec(), p.val().map(<[u8]>::to_vec)))
                        .collect(),
                };
                match pick(&ad) {
                    Ok(v) => break Ok(v),
                    Err(e) => {
                        tracing::warn!(service = %ad.fullname, error = %e, "ignoring service");
                        last_problem = Some(e);
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

/// Browses for `_idprov._tcp` and returns the first instance whose records
/// give a usable directory URL (read leniently, as a client must), or an
/// error after `timeout`.
pub fn discover(timeout: Duration) -> Result<Found, String> {
    browse(timeout, |ad| {
        directory_url(&ad.addresses, ad.port, &ad.txt)
            .map(|url| Found {
                fullname: ad.fullname.clone(),
                url,
            })
            .map_err(|e| e.to_string())
    })
}

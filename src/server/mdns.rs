//! DNS-SD advertisement of `_idprov._tcp` with `path=` (PROTOCOL §2).

use crate::core::messages::{DIRECTORY_PATH, SERVICE_TYPE};
use mdns_sd::{ServiceDaemon, ServiceInfo};
use std::net::SocketAddr;

/// A running advertisement; unregisters on [`Advertisement::stop`].
pub struct Advertisement {
    daemon: Option<ServiceDaemon>,
    fullname: String,
    /// Whatever else keeps the advertisement alive (a hand-written
    /// responder of the suite's broken servers), dropped on stop.
    held: Option<Box<dyn Send + Sync>>,
}

pub(crate) fn host_label() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if clean.is_empty() {
        "idprov".into()
    } else {
        clean
    }
}

impl Advertisement {
    /// Advertises `instance` for a server listening on `addr`, with the
    /// default directory path in TXT.
    pub fn start(instance: &str, addr: SocketAddr) -> Result<Self, mdns_sd::Error> {
        Self::start_with_txt(instance, addr, Some(DIRECTORY_PATH))
    }

    /// Advertises `instance` with TXT `path=<path>` (no TXT attribute at
    /// all with `None`).
    pub fn start_with_txt(
        instance: &str,
        addr: SocketAddr,
        path: Option<&str>,
    ) -> Result<Self, mdns_sd::Error> {
        let host = format!("{}.local.", host_label());
        let props: Vec<(&str, &str)> = path.map(|p| ("path", p)).into_iter().collect();
        let info = if addr.ip().is_unspecified() {
            ServiceInfo::new(SERVICE_TYPE, instance, &host, "", addr.port(), &props[..])?
                .enable_addr_auto()
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                instance,
                &host,
                addr.ip(),
                addr.port(),
                &props[..],
            )?
        };
        Self::publish(info)
    }

    /// Publishes `info` as it is.
    pub fn publish(info: ServiceInfo) -> Result<Self, mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        let fullname = info.get_fullname().to_string();
        daemon.register(info)?;
        tracing::info!(%fullname, "advertising over DNS-SD");
        Ok(Advertisement {
            daemon: Some(daemon),
            fullname,
            held: None,
        })
    }

    /// An advertisement kept alive by `held` (a responder that answers by
    /// hand) rather than by an mDNS daemon.
    pub(crate) fn held(fullname: String, held: Box<dyn Send + Sync>) -> Self {
        Advertisement {
            daemon: None,
            fullname,
            held: Some(held),
        }
    }

    /// Withdraws the advertisement and stops the daemon.
    pub fn stop(self) {
        drop(self.held);
        let Some(daemon) = self.daemon else { return };
        if let Ok(rx) = daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
        if let Ok(rx) = daemon.shutdown() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

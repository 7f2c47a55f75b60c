//! DNS-SD advertisement of `_idprov._tcp` with `path=` (PROTOCOL §2).

use crate::core::messages::{DIRECTORY_PATH, SERVICE_TYPE};
use mdns_sd::{ServiceDaemon, ServiceInfo};
use std::net::SocketAddr;

/// Which records an advertisement publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Records {
    /// SRV with the listening port, A/AAAA for the listening address (all
    /// interfaces' when it is unspecified).
    Honest,
    /// SRV port one above the listening port.
    WrongPort,
    /// No A/AAAA record at all.
    NoAddress,
    /// A/AAAA for this address instead of the listening one.
    OtherAddress(std::net::IpAddr),
}

/// A running advertisement; unregisters on [`Advertisement::stop`].
pub struct Advertisement {
    daemon: Option<ServiceDaemon>,
    fullname: String,
    raw: Option<crate::suite::mdns_raw::RawResponder>,
}

fn host_label() -> String {
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
    /// all with `None`: only the test-only `EmptyTxt` fault does that).
    pub fn start_with_txt(
        instance: &str,
        addr: SocketAddr,
        path: Option<&str>,
    ) -> Result<Self, mdns_sd::Error> {
        Self::start_with(instance, addr, path, Records::Honest)
    }

    /// Advertises `instance` with its records as `records` says (anything
    /// but [`Records::Honest`] is a test-only fault).
    pub fn start_with(
        instance: &str,
        addr: SocketAddr,
        path: Option<&str>,
        records: Records,
    ) -> Result<Self, mdns_sd::Error> {
        let host = format!("{}.local.", host_label());
        if records == Records::NoAddress {
            // mdns-sd will not publish a service without an address: the
            // fault answers by hand, with PTR, SRV and TXT only.
            use crate::core::discovery::MdnsRecord;
            let fullname = format!("{instance}.{SERVICE_TYPE}");
            let recs = vec![
                MdnsRecord::Ptr {
                    name: SERVICE_TYPE.into(),
                    target: fullname.clone(),
                },
                MdnsRecord::Srv {
                    name: fullname.clone(),
                    port: addr.port(),
                    target: host,
                },
                MdnsRecord::Txt {
                    name: fullname.clone(),
                    entries: path
                        .map(|p| (b"path".to_vec(), Some(p.as_bytes().to_vec())))
                        .into_iter()
                        .collect(),
                },
            ];
            let raw = crate::suite::mdns_raw::RawResponder::start(recs)
                .map_err(|e| mdns_sd::Error::Msg(e.to_string()))?;
            return Ok(Advertisement {
                daemon: None,
                fullname,
                raw: Some(raw),
            });
        }
        let daemon = ServiceDaemon::new()?;
        let props: Vec<(&str, &str)> = path.map(|p| ("path", p)).into_iter().collect();
        let port = match records {
            Records::WrongPort => addr.port().wrapping_add(1),
            _ => addr.port(),
        };
        let info = match records {
            Records::OtherAddress(ip) => {
                ServiceInfo::new(SERVICE_TYPE, instance, &host, ip, port, &props[..])?
            }
            _ if addr.ip().is_unspecified() => {
                ServiceInfo::new(SERVICE_TYPE, instance, &host, "", port, &props[..])?
                    .enable_addr_auto()
            }
            _ => ServiceInfo::new(SERVICE_TYPE, instance, &host, addr.ip(), port, &props[..])?,
        };
        let fullname = info.get_fullname().to_string();
        daemon.register(info)?;
        tracing::info!(%fullname, %addr, "advertising over DNS-SD");
        Ok(Advertisement {
            daemon: Some(daemon),
            fullname,
            raw: None,
        })
    }

    /// Withdraws the advertisement and stops the daemon.
    pub fn stop(self) {
        drop(self.raw);
        let Some(daemon) = self.daemon else { return };
        if let Ok(rx) = daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
        if let Ok(rx) = daemon.shutdown() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

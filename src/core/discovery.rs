//! DNS-SD TXT record interpretation and the directory URL it leads to
//! (PROTOCOL §2), and the instances a set of received mDNS records
//! describes. Pure: the packets themselves are sent and parsed elsewhere.

use super::messages::DIRECTORY_PATH;
use std::net::IpAddr;

/// Longest TXT value accepted (one DNS character-string).
pub const MAX_TXT_VALUE: usize = 255;

/// Why a discovered service could not be turned into a directory URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The TXT value is empty or has no `=value`.
    #[error("TXT key `{0}` has an empty value")]
    EmptyPath(String),
    /// The path is not UTF-8.
    #[error("TXT path is not UTF-8")]
    NotUtf8,
    /// The path does not start with `/` or contains spaces/control characters.
    #[error("TXT path `{0}` is not an absolute URL path")]
    BadPath(String),
    /// The value is longer than a DNS character-string allows.
    #[error("TXT path longer than {MAX_TXT_VALUE} bytes")]
    TooLong,
    /// The SRV port is 0.
    #[error("SRV port is 0")]
    ZeroPort,
    /// No address was resolved.
    #[error("service has no usable address")]
    NoAddress,
    /// Neither `path` nor the legacy `directory` key is in the TXT record
    /// (a server must publish `path`).
    #[error("TXT record has no `path` key (and no legacy `directory` key)")]
    NoPathKey,
}

/// Which TXT key carried the directory path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKey {
    /// `path`, the key servers publish.
    Path,
    /// `directory`, one revision's name, which clients also accept.
    LegacyDirectory,
}

/// Reads the directory path a server publishes, strictly: the `path` key
/// (or the legacy `directory` key) must be there and valid. For checking
/// servers; clients use the lenient [`directory_path`].
pub fn published_path(txt: &[TxtEntry]) -> Result<(String, PathKey), DiscoveryError> {
    let has = |name: &str| {
        txt.iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
    };
    let key = if has("path") {
        PathKey::Path
    } else if has("directory") {
        PathKey::LegacyDirectory
    } else {
        return Err(DiscoveryError::NoPathKey);
    };
    Ok((directory_path(txt)?, key))
}

/// One TXT attribute as received: key bytes and optional value bytes.
pub type TxtEntry = (Vec<u8>, Option<Vec<u8>>);

/// Whether `p` is made only of what RFC 3986 allows in a URL path: unreserved
/// and sub-delimiter characters, `:`, `@`, `/`, and `%` followed by two hex
/// digits. Anything else (`<`, `>`, `?`, `#`, spaces, non-ASCII, …) would
/// make a URL that an HTTP client refuses or reads differently.
fn is_url_path(p: &str) -> bool {
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

/// Picks the directory path from TXT attributes. Keys are compared
/// case-insensitively (RFC 6763 §6.4); `path` wins over the legacy
/// `directory`; with neither the default `/idprov/directory` is used.
pub fn directory_path(txt: &[TxtEntry]) -> Result<String, DiscoveryError> {
    let find = |name: &str| {
        txt.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
    };
    let Some((key, value)) = find("path").or_else(|| find("directory")) else {
        return Ok(DIRECTORY_PATH.to_string());
    };
    let key = String::from_utf8_lossy(key).to_lowercase();
    let value = match value {
        Some(v) if !v.is_empty() => v,
        _ => return Err(DiscoveryError::EmptyPath(key)),
    };
    if value.len() > MAX_TXT_VALUE {
        return Err(DiscoveryError::TooLong);
    }
    let path = std::str::from_utf8(value).map_err(|_| DiscoveryError::NotUtf8)?;
    if !path.starts_with('/') || path.starts_with("//") || !is_url_path(path) {
        return Err(DiscoveryError::BadPath(path.to_string()));
    }
    Ok(path.to_string())
}

/// Chooses an address (IPv4 first, then IPv6) and builds the directory URL.
pub fn directory_url(
    addresses: &[IpAddr],
    port: u16,
    txt: &[TxtEntry],
) -> Result<String, DiscoveryError> {
    if port == 0 {
        return Err(DiscoveryError::ZeroPort);
    }
    let path = directory_path(txt)?;
    let addr = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())
        .ok_or(DiscoveryError::NoAddress)?;
    Ok(match addr {
        IpAddr::V4(a) => format!("https://{a}:{port}{path}"),
        IpAddr::V6(a) => format!("https://[{a}]:{port}{path}"),
    })
}

/// One DNS record from an mDNS answer, reduced to what DNS-SD uses
/// (RFC 6763 §4–§6). Names are as received; compare them with [`same_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MdnsRecord {
    /// `name` PTR `target`: a service instance of the service type `name`.
    Ptr {
        /// Service type, e.g. `_idprov._tcp.local.`.
        name: String,
        /// Instance full name.
        target: String,
    },
    /// The instance's SRV record.
    Srv {
        /// Instance full name.
        name: String,
        /// Port the service listens on.
        port: u16,
        /// Host name whose A/AAAA records give the addresses.
        target: String,
    },
    /// The instance's TXT record, split into attributes.
    Txt {
        /// Instance full name.
        name: String,
        /// Attributes in the order received.
        entries: Vec<TxtEntry>,
    },
    /// An A or AAAA record.
    Addr {
        /// Host name.
        name: String,
        /// The address.
        ip: IpAddr,
    },
}

/// Whether two DNS names are the same: ASCII case-insensitive, with or
/// without the final dot (RFC 1035 §2.3.3).
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// A service instance as the received records describe it, nothing filled
/// in: a missing record stays missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedInstance {
    /// Instance full name (from the PTR record).
    pub fullname: String,
    /// SRV port and target host, if an SRV record for the instance arrived.
    pub srv: Option<(u16, String)>,
    /// TXT attributes, if a TXT record for the instance arrived (the first
    /// one received; RFC 6763 allows one per instance).
    pub txt: Option<Vec<TxtEntry>>,
    /// Addresses from A/AAAA records whose name is the SRV target.
    pub addresses: Vec<IpAddr>,
}

/// Assembles the instances of `service` (e.g. [`super::messages::SERVICE_TYPE`])
/// from records as received, in PTR order. Only records whose names match
/// exactly (up to case and the final dot) are joined: no record is borrowed
/// from another instance or host.
pub fn received_instances(records: &[MdnsRecord], service: &str) -> Vec<ReceivedInstance> {
    let mut names: Vec<String> = Vec::new();
    for r in records {
        if let MdnsRecord::Ptr { name, target } = r {
            if same_name(name, service) && !names.iter().any(|n| same_name(n, target)) {
                names.push(target.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|fullname| {
            let srv = records.iter().find_map(|r| match r {
                MdnsRecord::Srv { name, port, target } if same_name(name, &fullname) => {
                    Some((*port, target.clone()))
                }
                _ => None,
            });
            let txt = records.iter().find_map(|r| match r {
                MdnsRecord::Txt { name, entries } if same_name(name, &fullname) => {
                    Some(entries.clone())
                }
                _ => None,
            });
            let mut addresses = Vec::new();
            if let Some((_, host)) = &srv {
                for r in records {
                    if let MdnsRecord::Addr { name, ip } = r {
                        if same_name(name, host) && !addresses.contains(ip) {
                            addresses.push(*ip);
                        }
                    }
                }
            }
            ReceivedInstance {
                fullname,
                srv,
                txt,
                addresses,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(k: &str, v: Option<&str>) -> TxtEntry {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn txt_variants() {
        let v4: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        assert_eq!(
            directory_url(&v4, 43776, &[e("path", Some("/idprov/directory"))]).unwrap(),
            "https://127.0.0.1:43776/idprov/directory"
        );
        assert_eq!(
            directory_path(&[e("directory", Some("/d")), e("PATH", Some("/p"))]).unwrap(),
            "/p"
        );
        assert_eq!(directory_path(&[]).unwrap(), DIRECTORY_PATH);
        // Only URL path characters (a fuzz finding: `>` built a URL that no
        // HTTP client parses).
        for bad in [
            "/a>b", "/a<b", "/a?b", "/a#b", "/a%zz", "/a%4", "/é", "/a\\b", "/a|b",
        ] {
            let txt = [(b"path".to_vec(), Some(bad.as_bytes().to_vec()))];
            assert!(directory_path(&txt).is_err(), "{bad}");
        }
        for good in [
            "/idprov/directory",
            "/a%20b/c",
            "/x:y@z/~a-b_c.d!$&'()*+,;=",
        ] {
            let txt = [(b"path".to_vec(), Some(good.as_bytes().to_vec()))];
            let url = directory_url(&["127.0.0.1".parse().unwrap()], 48, &txt).unwrap();
            assert!(crate::net::parse_url(&url).is_ok(), "{url}");
        }
        // A server is read strictly: no key is an error, the legacy key is told apart.
        assert_eq!(published_path(&[]), Err(DiscoveryError::NoPathKey));
        let legacy = [(b"Directory".to_vec(), Some(b"/x/dir".to_vec()))];
        assert_eq!(
            published_path(&legacy).unwrap(),
            ("/x/dir".to_string(), PathKey::LegacyDirectory)
        );
        let both = [
            (b"directory".to_vec(), Some(b"/old".to_vec())),
            (b"path".to_vec(), Some(b"/new".to_vec())),
        ];
        assert_eq!(
            published_path(&both).unwrap(),
            ("/new".to_string(), PathKey::Path)
        );
        assert!(published_path(&[(b"path".to_vec(), None)]).is_err());
        assert!(directory_path(&[e("path", Some(""))]).is_err());
        assert!(directory_path(&[e("path", None)]).is_err());
        assert!(directory_path(&[e("path", Some("/a b"))]).is_err());
        assert!(directory_url(&v4, 0, &[]).is_err());
        let v6: Vec<IpAddr> = vec!["::1".parse().unwrap()];
        assert_eq!(
            directory_url(&v6, 1, &[]).unwrap(),
            "https://[::1]:1/idprov/directory"
        );
    }

    #[test]
    fn instances_join_only_matching_names() {
        let recs = vec![
            MdnsRecord::Ptr {
                name: "_idprov._tcp.local".into(),
                target: "A._idprov._tcp.local.".into(),
            },
            MdnsRecord::Ptr {
                name: "_other._tcp.local.".into(),
                target: "B._other._tcp.local.".into(),
            },
            MdnsRecord::Srv {
                name: "a._IDPROV._tcp.local.".into(),
                port: 43776,
                target: "host.local.".into(),
            },
            MdnsRecord::Addr {
                name: "HOST.local".into(),
                ip: "127.0.0.1".parse().unwrap(),
            },
            MdnsRecord::Addr {
                name: "other.local.".into(),
                ip: "127.0.0.9".parse().unwrap(),
            },
            MdnsRecord::Txt {
                name: "B._other._tcp.local.".into(),
                entries: vec![e("path", Some("/x"))],
            },
        ];
        let got = received_instances(&recs, "_idprov._tcp.local.");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].srv, Some((43776, "host.local.".into())));
        assert_eq!(
            got[0].addresses,
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        // The other service's TXT is not borrowed.
        assert_eq!(got[0].txt, None);
        assert!(received_instances(&recs[1..], "_idprov._tcp.local.").is_empty());
    }
}

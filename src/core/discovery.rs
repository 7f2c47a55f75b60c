//! DNS-SD TXT record interpretation and the directory URL it leads to
//! (PROTOCOL §2). Pure: the packets themselves are handled by `mdns-sd`.

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
}

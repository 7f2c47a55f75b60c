//! Tolerant parsing of a directory document by a client (PROTOCOL §3, §10).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

/// A directory after normalisation: absolute URLs and a PEM CA (if offered).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Directory {
    /// Absolute URL of the status endpoint template (with `{deviceID}`), if given.
    pub status: Option<String>,
    /// Absolute URL of the OOB endpoint, if given.
    pub post_oob_secret: Option<String>,
    /// Absolute URL of the provisioning endpoint.
    pub post_provision_request: String,
    /// CA certificate PEM, if the server offered one.
    pub ca_cert_pem: Option<String>,
    /// How the CA was encoded on the wire.
    pub ca_encoding: CaEncoding,
    /// Whether endpoint values were absolute URLs (true) or paths (false).
    pub endpoints_are_urls: bool,
    /// Version string as sent.
    pub version: String,
    /// Extensions the server advertises.
    pub extensions: Vec<String>,
}

/// How `caCert` was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaEncoding {
    /// PEM text (normative).
    Pem,
    /// base64 of the PEM bytes (Go reference's byte slice).
    Base64Pem,
    /// `null` or absent.
    Absent,
}

/// Why a directory document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// Not a JSON object.
    #[error("directory is not a JSON object")]
    NotJson,
    /// No `endpoints` object.
    #[error("directory has no endpoints object")]
    NoEndpoints,
    /// The provisioning endpoint is missing.
    #[error("directory has no postProvisionRequest endpoint")]
    NoProvisionEndpoint,
    /// An endpoint is neither an https URL nor an absolute path.
    #[error("endpoint `{0}` is neither an https URL nor an absolute path")]
    BadEndpoint(String),
    /// `caCert` is neither PEM nor base64 of PEM.
    #[error("caCert is neither PEM nor base64-encoded PEM")]
    BadCaCert,
    /// Unsupported protocol version.
    #[error("unsupported protocol version `{0}`")]
    Version(String),
    /// The directory URL itself is unusable.
    #[error("directory URL is not an https URL: {0}")]
    BadBaseUrl(String),
}

/// Splits an `https://authority/path` URL into (origin, path).
pub fn split_https_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("https://")?;
    let slash = rest.find('/').unwrap_or(rest.len());
    if slash == 0 {
        return None;
    }
    let origin_len = "https://".len() + slash;
    let path = &url[origin_len..];
    Some((&url[..origin_len], if path.is_empty() { "/" } else { path }))
}

fn resolve(base_origin: &str, v: &str) -> Result<(String, bool), DirectoryError> {
    if v.starts_with("https://") {
        if split_https_url(v).is_none() || v.chars().any(char::is_whitespace) {
            return Err(DirectoryError::BadEndpoint(v.into()));
        }
        Ok((v.to_string(), true))
    } else if v.starts_with('/') && !v.starts_with("//") && !v.chars().any(char::is_whitespace) {
        Ok((format!("{base_origin}{v}"), false))
    } else {
        Err(DirectoryError::BadEndpoint(v.into()))
    }
}

/// Decodes a `caCert` value: PEM text, base64 of PEM, or null/absent.
pub fn decode_ca(v: Option<&Value>) -> Result<(Option<String>, CaEncoding), DirectoryError> {
    match v {
        None | Some(Value::Null) => Ok((None, CaEncoding::Absent)),
        Some(Value::String(s)) if s.is_empty() => Ok((None, CaEncoding::Absent)),
        Some(Value::String(s)) if s.trim_start().starts_with("-----BEGIN CERTIFICATE-----") => {
            Ok((Some(s.clone()), CaEncoding::Pem))
        }
        Some(Value::String(s)) => {
            let raw = STANDARD
                .decode(s.trim())
                .map_err(|_| DirectoryError::BadCaCert)?;
            let text = String::from_utf8(raw).map_err(|_| DirectoryError::BadCaCert)?;
            if text.trim_start().starts_with("-----BEGIN CERTIFICATE-----") {
                Ok((Some(text), CaEncoding::Base64Pem))
            } else {
                Err(DirectoryError::BadCaCert)
            }
        }
        Some(_) => Err(DirectoryError::BadCaCert),
    }
}

/// Whether a version value is one this client speaks: `"1"`, `1`, `"1.x"`.
pub fn version_ok(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) if n.as_u64() == Some(1) => Some("1".into()),
        Value::String(s) if s == "1" => Some(s.clone()),
        Value::String(s) => {
            let minor = s.strip_prefix("1.")?;
            (!minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())).then(|| s.clone())
        }
        _ => None,
    }
}

/// Parses a directory document fetched from `directory_url`.
pub fn parse_directory(body: &[u8], directory_url: &str) -> Result<Directory, DirectoryError> {
    let (origin, _) = split_https_url(directory_url)
        .ok_or_else(|| DirectoryError::BadBaseUrl(directory_url.into()))?;
    let v: Value = serde_json::from_slice(body).map_err(|_| DirectoryError::NotJson)?;
    let obj = v.as_object().ok_or(DirectoryError::NotJson)?;
    let eps = obj
        .get("endpoints")
        .and_then(Value::as_object)
        .ok_or(DirectoryError::NoEndpoints)?;
    let get = |names: &[&str]| -> Result<Option<(String, bool)>, DirectoryError> {
        for n in names {
            match eps.get(*n) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if s.is_empty() => continue,
                Some(Value::String(s)) => return resolve(origin, s).map(Some),
                Some(other) => return Err(DirectoryError::BadEndpoint(other.to_string())),
            }
        }
        Ok(None)
    };
    let (prov, prov_is_url) =
        get(&["postProvisionRequest"])?.ok_or(DirectoryError::NoProvisionEndpoint)?;
    let status = get(&["status"])?.map(|x| x.0);
    let oob = get(&["postOobSecret", "postOOB"])?.map(|x| x.0);
    let (ca_cert_pem, ca_encoding) = decode_ca(obj.get("caCert"))?;
    let version = match obj.get("version") {
        None => return Err(DirectoryError::Version("(absent)".into())),
        Some(v) => version_ok(v).ok_or_else(|| DirectoryError::Version(v.to_string()))?,
    };
    let extensions = obj
        .get("extensions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Directory {
        status,
        post_oob_secret: oob,
        post_provision_request: prov,
        ca_cert_pem,
        ca_encoding,
        endpoints_are_urls: prov_is_url,
        version,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_DIR: &[u8] = br#"{"endpoints":{"directory":"/idprov/directory","status":"/idprov/status/{deviceID}","postOobSecret":"/idprov/oobsecret","postProvisionRequest":"/idprov/provreq"},"caCert":null,"version":"1","services":{}}"#;

    #[test]
    fn go_reference_directory() {
        let d = parse_directory(GO_DIR, "https://127.0.0.1:18880/idprov/directory").unwrap();
        assert_eq!(
            d.post_provision_request,
            "https://127.0.0.1:18880/idprov/provreq"
        );
        assert_eq!(d.ca_encoding, CaEncoding::Absent);
        assert!(!d.endpoints_are_urls);
    }

    #[test]
    fn tolerant_forms() {
        let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        let b64 = STANDARD.encode(pem);
        let doc = format!(
            r#"{{"endpoints":{{"postOOB":"https://h:1/o","postProvisionRequest":"https://h:1/p"}},"caCert":"{b64}","version":"1.3","extensions":["csr"]}}"#
        );
        let d = parse_directory(doc.as_bytes(), "https://x/idprov/directory").unwrap();
        assert_eq!(d.post_oob_secret.as_deref(), Some("https://h:1/o"));
        assert_eq!(d.ca_cert_pem.as_deref(), Some(pem));
        assert_eq!(d.ca_encoding, CaEncoding::Base64Pem);
        assert_eq!(d.extensions, ["csr"]);
        let v2 = br#"{"endpoints":{"postProvisionRequest":"/p"},"version":"2"}"#;
        assert!(matches!(
            parse_directory(v2, "https://x/"),
            Err(DirectoryError::Version(_))
        ));
        let rel = br#"{"endpoints":{"postProvisionRequest":"p"},"version":"1"}"#;
        assert!(matches!(
            parse_directory(rel, "https://x/"),
            Err(DirectoryError::BadEndpoint(_))
        ));
    }
}

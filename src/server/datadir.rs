//! The server's data directory: CA, server and admin/plugin credentials,
//! created on first start and reused afterwards (SUITE "idprov server").

use crate::fsutil::{write_all_atomic, MODE_PRIVATE, MODE_PUBLIC};
use crate::pki::{CertAuthority, Credential};
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// File names inside the data dir.
pub mod files {
    /// CA certificate.
    pub const CA: &str = "ca.pem";
    /// CA private key.
    pub const CA_KEY: &str = "ca-key.pem";
    /// Server TLS certificate (reissued at each start).
    pub const SERVER_CERT: &str = "server-cert.pem";
    /// Server TLS key.
    pub const SERVER_KEY: &str = "server-key.pem";
    /// Admin client certificate.
    pub const ADMIN_CERT: &str = "admin-cert.pem";
    /// Admin client key.
    pub const ADMIN_KEY: &str = "admin-key.pem";
    /// Plugin client certificate.
    pub const PLUGIN_CERT: &str = "plugin-cert.pem";
    /// Plugin client key.
    pub const PLUGIN_KEY: &str = "plugin-key.pem";
    /// Issued-certificate database.
    pub const DB: &str = "certs.redb";
}

/// Data-dir failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// Filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Existing files are inconsistent or unreadable.
    #[error("{0}")]
    Corrupt(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loaded (or created) server identity.
pub struct DataDir {
    /// Directory path.
    pub path: PathBuf,
    /// The CA.
    pub ca: CertAuthority,
    /// Server certificate PEM.
    pub server_cert_pem: String,
    /// Server key PEM.
    pub server_key_pem: zeroize::Zeroizing<String>,
    /// Whether this start created the CA.
    pub created: bool,
}

fn write_cred(dir: &Path, cert: &str, key: &str, c: &Credential) -> Result<(), DataDirError> {
    let cp = dir.join(cert);
    let kp = dir.join(key);
    write_all_atomic(&[
        (&kp, c.key_pem.as_bytes(), MODE_PRIVATE),
        (&cp, c.cert.pem.as_bytes(), MODE_PUBLIC),
    ])
    .map_err(io_err(&cp))
}

impl DataDir {
    /// Opens `path`, creating the CA and admin/plugin credentials when it
    /// holds none, and issues a fresh server certificate for `dns`/`ips`.
    pub fn open_or_create(
        path: &Path,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<Self, DataDirError> {
        fs::create_dir_all(path).map_err(io_err(path))?;
        let now = OffsetDateTime::now_utc();
        let ca_path = path.join(files::CA);
        let key_path = path.join(files::CA_KEY);
        let (ca, created) = match (ca_path.exists(), key_path.exists()) {
            (true, true) => {
                let cert = fs::read_to_string(&ca_path).map_err(io_err(&ca_path))?;
                let key = zeroize::Zeroizing::new(
                    fs::read_to_string(&key_path).map_err(io_err(&key_path))?,
                );
                let ca = CertAuthority::from_pem(&cert, &key)
                    .map_err(|e| DataDirError::Corrupt(format!("{}: {e}", path.display())))?;
                (ca, false)
            }
            (false, false) => {
                let ca = CertAuthority::generate("idprov CA", now)
                    .map_err(|e| DataDirError::Corrupt(e.to_string()))?;
                write_all_atomic(&[
                    (&key_path, ca.key_pem().as_bytes(), MODE_PRIVATE),
                    (&ca_path, ca.cert_pem().as_bytes(), MODE_PUBLIC),
                ])
                .map_err(io_err(&ca_path))?;
                (ca, true)
            }
            _ => {
                return Err(DataDirError::Corrupt(format!(
                    "{}: exactly one of {} and {} exists; restore the other or empty the directory",
                    path.display(),
                    files::CA,
                    files::CA_KEY
                )))
            }
        };
        let gen = |e: crate::pki::PkiError| DataDirError::Corrupt(e.to_string());
        if !path.join(files::ADMIN_CERT).exists() || !path.join(files::ADMIN_KEY).exists() {
            let c = ca.issue_admin(now).map_err(gen)?;
            write_cred(path, files::ADMIN_CERT, files::ADMIN_KEY, &c)?;
        }
        if !path.join(files::PLUGIN_CERT).exists() || !path.join(files::PLUGIN_KEY).exists() {
            let c = ca.issue_plugin(now).map_err(gen)?;
            write_cred(path, files::PLUGIN_CERT, files::PLUGIN_KEY, &c)?;
        }
        let server = ca.issue_server(dns, ips, now).map_err(gen)?;
        write_cred(path, files::SERVER_CERT, files::SERVER_KEY, &server)?;
        Ok(DataDir {
            path: path.to_path_buf(),
            ca,
            server_cert_pem: server.cert.pem.clone(),
            server_key_pem: server.key_pem.clone(),
            created,
        })
    }
}

//! The embedded database of issued certificates (redb, in the data dir).
//! Every commit is durable (fsync) before it returns.

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// serial (hex) → JSON [`IssuedRecord`].
const CERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("certs");
/// device ID → serial (hex) of its latest certificate.
const LATEST: TableDefinition<&str, &str> = TableDefinition::new("latest");

/// A certificate the server issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    /// Device ID (the certificate's CN).
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// Serial number, hex.
    pub serial: String,
    /// Certificate PEM.
    pub pem: String,
    /// Unix time of issue.
    pub issued_at: i64,
    /// Unix time the certificate expires.
    pub not_after: i64,
    /// What authorised it: `secret`, `admin` or `renewal`.
    pub authority: String,
}

/// Storage failure.
#[derive(Debug, thiserror::Error)]
#[error("certificate store: {0}")]
pub struct StoreError(String);

fn e<E: std::fmt::Display>(err: E) -> StoreError {
    StoreError(err.to_string())
}

/// The certificate store.
pub struct CertStore {
    db: Database,
}

impl CertStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(e)?;
        let tx = db.begin_write().map_err(e)?;
        tx.open_table(CERTS).map_err(e)?;
        tx.open_table(LATEST).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(CertStore { db })
    }

    /// Records an issued certificate durably. Refuses a duplicate serial.
    pub fn record(&self, rec: &IssuedRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(rec).map_err(e)?;
        let tx = self.db.begin_write().map_err(e)?;
        {
            let mut certs = tx.open_table(CERTS).map_err(e)?;
            if certs.get(rec.serial.as_str()).map_err(e)?.is_some() {
                return Err(StoreError(format!("duplicate serial {}", rec.serial)));
            }
            certs
                .insert(rec.serial.as_str(), json.as_slice())
                .map_err(e)?;
            let mut latest = tx.open_table(LATEST).map_err(e)?;
            latest
                .insert(rec.device_id.as_str(), rec.serial.as_str())
                .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// The latest certificate issued for a device.
    pub fn latest(&self, device_id: &str) -> Result<Option<IssuedRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(e)?;
        let latest = tx.open_table(LATEST).map_err(e)?;
        let Some(serial) = latest.get(device_id).map_err(e)? else {
            return Ok(None);
        };
        let certs = tx.open_table(CERTS).map_err(e)?;
        let Some(raw) = certs.get(serial.value()).map_err(e)? else {
            return Ok(None);
        };
        serde_json::from_slice(raw.value()).map(Some).map_err(e)
    }

    /// Number of certificates issued.
    pub fn count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(e)?;
        tx.open_table(CERTS).map_err(e)?.len().map_err(e)
    }

    /// Every record (for audits and tests).
    pub fn all(&self) -> Result<Vec<IssuedRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(e)?;
        let certs = tx.open_table(CERTS).map_err(e)?;
        let mut out = Vec::new();
        for item in certs.iter().map_err(e)? {
            let (_, v) = item.map_err(e)?;
            out.push(serde_json::from_slice(v.value()).map_err(e)?);
        }
        Ok(out)
    }
}

//! The embedded database of issued certificates (redb, in the data dir).
//! Every commit is durable (fsync) before it returns.

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// serial (hex) → JSON [`IssuedRecord`].
const CERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("certs");
/// Page cache of the store.
const CACHE_BYTES: usize = 8 * 1024 * 1024;
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
        // A bounded page cache: memory must not grow with the number of
        // certificates issued (redb's default cache is 1 GiB).
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(e)?;
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

impl CertStore {
    /// Records several certificates in one durable transaction (one fsync);
    /// returns a result per record (a duplicate serial fails only itself).
    pub fn record_batch(
        &self,
        recs: &[IssuedRecord],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let tx = self.db.begin_write().map_err(e)?;
        let mut results = Vec::with_capacity(recs.len());
        {
            let mut certs = tx.open_table(CERTS).map_err(e)?;
            let mut latest = tx.open_table(LATEST).map_err(e)?;
            for rec in recs {
                if certs.get(rec.serial.as_str()).map_err(e)?.is_some() {
                    results.push(Err(StoreError(format!("duplicate serial {}", rec.serial))));
                    continue;
                }
                let json = serde_json::to_vec(rec).map_err(e)?;
                certs
                    .insert(rec.serial.as_str(), json.as_slice())
                    .map_err(e)?;
                latest
                    .insert(rec.device_id.as_str(), rec.serial.as_str())
                    .map_err(e)?;
                results.push(Ok(()));
            }
        }
        tx.commit().map_err(e)?;
        Ok(results)
    }
}

type Waiter = tokio::sync::oneshot::Sender<Result<(), String>>;

enum Msg {
    Record(IssuedRecord, Waiter),
    /// Finish what is queued, close the store, then acknowledge.
    Stop(std::sync::mpsc::Sender<()>),
}

/// Group commit: one writer thread takes every record waiting at the moment
/// and commits them in one transaction, so concurrent approvals share an
/// fsync. Each caller is answered only after its record is durable.
pub struct GroupCommitter {
    tx: std::sync::mpsc::Sender<Msg>,
}

impl GroupCommitter {
    /// Starts the writer thread for `store`.
    pub fn start(store: std::sync::Arc<CertStore>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("idprov-store-writer".into())
            .spawn(move || {
                let mut store = Some(store);
                let mut stop_ack = None;
                while let Ok(first) = rx.recv() {
                    let mut batch = Vec::new();
                    let mut push = |m: Msg, batch: &mut Vec<(IssuedRecord, Waiter)>| match m {
                        Msg::Record(r, w) => batch.push((r, w)),
                        Msg::Stop(ack) => stop_ack = Some(ack),
                    };
                    push(first, &mut batch);
                    while batch.len() < 512 {
                        match rx.try_recv() {
                            Ok(m) => push(m, &mut batch),
                            Err(_) => break,
                        }
                    }
                    if !batch.is_empty() {
                        let (recs, waiters): (Vec<IssuedRecord>, Vec<Waiter>) =
                            batch.into_iter().unzip();
                        let outcome = match &store {
                            Some(st) => st.record_batch(&recs),
                            None => Err(StoreError("certificate store closed".into())),
                        };
                        match outcome {
                            Ok(results) => {
                                for (w, r) in waiters.into_iter().zip(results) {
                                    let _ = w.send(r.map_err(|e| e.to_string()));
                                }
                            }
                            Err(err) => {
                                for w in waiters {
                                    let _ = w.send(Err(err.to_string()));
                                }
                            }
                        }
                    }
                    if let Some(ack) = stop_ack.take() {
                        drop(store.take());
                        let _ = ack.send(());
                    }
                }
            })?;
        Ok(GroupCommitter { tx })
    }

    /// Records one certificate; resolves once it is durably committed.
    pub async fn record(&self, rec: IssuedRecord) -> Result<(), String> {
        let (w, r) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Record(rec, w))
            .map_err(|_| "certificate store writer stopped".to_string())?;
        r.await
            .map_err(|_| "certificate store writer stopped".to_string())?
    }

    /// Commits what is queued and releases the writer's handle on the store
    /// (blocks up to 5 s).
    pub fn stop(&self) {
        let (ack, done) = std::sync::mpsc::channel();
        if self.tx.send(Msg::Stop(ack)).is_ok() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(5));
        }
    }
}

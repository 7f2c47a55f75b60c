//! The reference IDProv server: HTTPS endpoints over rustls + hyper, an
//! embedded certificate store, in-memory OOB secrets and DNS-SD.

pub mod choices;
pub mod clock;
pub mod datadir;
pub mod error;
pub mod floor;
pub mod handler;
pub mod mdns;
pub(crate) mod quirks;
pub mod store;

use crate::core::decision::{PeerCert, DEFAULT_GUESS_LIMIT, DEFAULT_WAITING_RETRY_SEC};
use crate::core::messages::{
    DirectoryMessage, Endpoints, DEFAULT_PATH_PREFIX, DEFAULT_PORT, EXT_CSR, VERSION,
};
use crate::pki::{CertAuthority, CertInfo, DEFAULT_CERT_DAYS};
use datadir::DataDir;
use handler::ConnInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use quirks::{Endpoint, Quirks, SecretBook};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::CertStore;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Server settings (SUITE "idprov server").
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Advertise over DNS-SD.
    pub mdns: bool,
    /// Validity of issued device certificates.
    pub cert_validity: time::Duration,
    /// Failed signatures per device before its secret is discarded.
    pub guess_limit: u32,
    /// `retrySec` sent with Waiting.
    pub waiting_retry_sec: u64,
    /// Most concurrent connections; excess ones are closed at once.
    pub max_connections: usize,
    /// Most OOB secrets held at once.
    pub max_secrets: usize,
    /// Time allowed for a TLS handshake and for request headers.
    pub header_timeout: Duration,
    /// Path prefix of the four endpoints (default `/idprov`).
    pub path_prefix: String,
    /// How members are encoded where the Go reference's types differ from
    /// the profile's.
    pub wire: Wire,
    /// The legal choices this server makes (default: the reference's).
    pub choices: choices::Choices,
    /// Where the time comes from (default: the system clock).
    pub clock: Arc<dyn clock::Clock>,
}

/// The encoding of members whose type differs between the profile and the
/// Go reference's decoders (PROTOCOL §10). Every security rule is the same
/// in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Wire {
    /// The profile: `caCert` and status `clientCert` as PEM text.
    #[default]
    Profile,
    /// For Go-reference devices and admin tools, whose decoders type the
    /// directory's `caCert` and the status answer's `clientCert` as `[]byte`:
    /// both are sent as base64 of the PEM bytes.
    Go,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            data_dir: PathBuf::from("idprov-data"),
            mdns: true,
            cert_validity: time::Duration::days(DEFAULT_CERT_DAYS as i64),
            guess_limit: DEFAULT_GUESS_LIMIT,
            waiting_retry_sec: DEFAULT_WAITING_RETRY_SEC,
            max_connections: 1024,
            max_secrets: 100_000,
            header_timeout: Duration::from_secs(10),
            path_prefix: DEFAULT_PATH_PREFIX.into(),
            wire: Wire::Profile,
            choices: choices::Choices::default(),
            clock: Arc::new(clock::SystemClock),
        }
    }
}

impl ServerConfig {
    /// `retrySec` for Approved: renew after a third of the validity.
    pub fn renew_retry_sec(&self) -> u64 {
        (self.cert_validity.whole_seconds().max(3) / 3) as u64
    }
}

/// State shared by all connections.
pub struct Shared {
    /// Settings.
    pub config: ServerConfig,
    /// The CA.
    pub ca: CertAuthority,
    /// Issued certificates.
    pub store: Arc<CertStore>,
    /// The store's group-commit writer.
    pub committer: store::GroupCommitter,
    secrets: Mutex<Box<dyn SecretBook>>,
    directory_json: Vec<u8>,
    /// Where the endpoints are served.
    pub paths: Endpoints,
    /// Where this server departs from the reference (nowhere, unless the
    /// suite started it as a deliberately broken server).
    pub(crate) quirks: Arc<dyn Quirks>,
}

impl Shared {
    /// A provisioning answer as this server encodes it, signed with `key`
    /// when given (empty signature otherwise).
    pub fn answer(
        &self,
        r: &mut crate::core::messages::ProvisionResponse,
        key: Option<&[u8]>,
    ) -> Vec<u8> {
        use crate::core::messages::Signed;
        if !self.config.choices.other_json_form {
            return match key {
                Some(k) => r.sign_with_key(k),
                None => r.unsigned(),
            };
        }
        r.signature.clear();
        self.config.choices.answer(&*r, key)
    }

    /// Locks the secret store (a poisoned lock is recovered: the store has
    /// no invariant a panic could break half-way).
    pub(crate) fn lock_secrets(&self) -> MutexGuard<'_, Box<dyn SecretBook>> {
        self.secrets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The endpoint a request path names, if any.
    pub(crate) fn endpoint_of(&self, path: &str) -> Option<Endpoint> {
        let p = &self.paths;
        if path == p.directory {
            Some(Endpoint::Directory)
        } else if path == p.post_oob_secret {
            Some(Endpoint::PostOobSecret)
        } else if path == p.post_provision_request {
            Some(Endpoint::PostProvisionRequest)
        } else if path.starts_with(p.status_prefix()) {
            Some(Endpoint::Status)
        } else {
            None
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Data directory problem.
    #[error(transparent)]
    DataDir(#[from] datadir::DataDirError),
    /// Store problem.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// TLS configuration problem.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
    /// DNS-SD failed.
    #[error("DNS-SD advertisement: {0}")]
    Mdns(String),
    /// A worker thread could not start.
    #[error("cannot start the certificate store writer: {0}")]
    Thread(String),
}

/// A server that is running; dropping it does not stop it, call
/// [`RunningServer::shutdown`].
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// CA certificate PEM.
    pub ca_pem: String,
    /// Shared state (for tests and in-process tools).
    pub shared: Arc<Shared>,
    stop: watch::Sender<Stop>,
    task: tokio::task::JoinHandle<()>,
}

/// How a server is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Serving.
    Running,
    /// Stop accepting and let open requests finish.
    Graceful,
    /// Drop every connection and request at once, as a crash would.
    Kill,
}

impl RunningServer {
    /// The directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://{}{}", self.addr, self.shared.paths.directory)
    }

    /// Stops accepting, lets open requests finish (up to 5 s), and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(Stop::Graceful);
        let _ = self.task.await;
        self.shared.quirks.drain(&self.shared).await;
        // Release the store so the data dir can be opened again at once.
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.committer.stop()).await;
    }

    /// Stops as a crash would (the in-process stand-in for SIGKILL): every
    /// connection and every request in flight is dropped where it stands,
    /// unanswered, and nothing is drained. What was committed stays on
    /// disk; everything else is lost. Returns once the store is closed, so
    /// the data dir can be opened again (waiting at most 5 s for requests
    /// that hold it).
    pub async fn kill(self) {
        let _ = self.stop.send(Stop::Kill);
        let _ = self.task.await;
        let store = Arc::downgrade(&self.shared.store);
        let shared = self.shared;
        let _ = tokio::task::spawn_blocking(move || {
            shared.committer.stop();
            drop(shared);
        })
        .await;
        for _ in 0..500 {
            if store.strong_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn san_ips(listen: IpAddr) -> Vec<IpAddr> {
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if listen.is_unspecified() {
        if let Ok(ifs) = if_addrs::get_if_addrs() {
            ips.extend(ifs.into_iter().map(|i| i.ip()));
        }
    } else {
        ips.push(listen);
    }
    ips.sort();
    ips.dedup();
    ips
}

fn peer_cert(conn: &rustls::ServerConnection) -> PeerCert {
    let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
        return PeerCert::None;
    };
    match CertInfo::from_der(leaf) {
        Ok(info) => PeerCert::Verified {
            cn: info.cn.first().cloned().unwrap_or_default(),
            ous: info.ou,
            not_before: info.not_before,
            not_after: info.not_after,
        },
        Err(_) => PeerCert::None,
    }
}

/// Starts a server: prepares the data dir, binds, advertises, serves.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    start_with(config, Arc::new(quirks::Honest)).await
}

/// Starts a server that departs from the reference where `quirks` says
/// (the suite's deliberately broken server is the only caller).
pub(crate) async fn start_with(
    config: ServerConfig,
    quirks: Arc<dyn Quirks>,
) -> Result<RunningServer, StartError> {
    // The port is taken first, so a server that cannot have it creates
    // nothing; it listens only once the credentials exist, so whoever waits
    // for the port finds ca.pem there.
    let bind_error = |source| StartError::Bind {
        addr: config.listen,
        source,
    };
    let socket = bind(config.listen).map_err(bind_error)?;
    let dd = DataDir::open_or_create(
        &config.data_dir,
        &["localhost".to_string()],
        &san_ips(config.listen.ip()),
    )?;
    let listener = socket
        .listen(backlog(config.max_connections))
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    if dd.created {
        tracing::info!(dir = %dd.path.display(), "created CA and admin/plugin credentials");
    }
    let (server_cert_pem, server_key_pem) = quirks
        .server_credential(
            &dd.ca,
            (dd.server_cert_pem.clone(), dd.server_key_pem.to_string()),
        )
        .map_err(|e| StartError::Tls(crate::tls::TlsError::Verifier(e.to_string())))?;
    let versions = config.choices.tls.rustls();
    let mut tls = crate::tls::server_config_with(
        dd.ca.cert_pem(),
        &server_cert_pem,
        &server_key_pem,
        versions,
        |honest| quirks.client_verifier(&dd.ca, honest),
    )?;
    if config.choices.http2_alpn {
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    let store = Arc::new(CertStore::open(&dd.path.join(datadir::files::DB))?);
    let committer = store::GroupCommitter::start(store.clone())
        .map_err(|e| StartError::Thread(e.to_string()))?;
    let mut endpoints = Endpoints::under(&config.path_prefix);
    if config.choices.endpoint_urls {
        let origin = format!("https://{}", advertised_authority(addr));
        for e in [
            &mut endpoints.directory,
            &mut endpoints.status,
            &mut endpoints.post_oob_secret,
            &mut endpoints.post_provision_request,
        ] {
            *e = format!("{origin}{e}");
        }
    }
    let directory = DirectoryMessage {
        endpoints,
        ca_cert: if config.wire == Wire::Go {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(dd.ca.cert_pem().as_bytes())
        } else {
            dd.ca.cert_pem().to_string()
        },
        version: VERSION.into(),
        services: BTreeMap::new(),
        extensions: if config.choices.no_extensions {
            Vec::new()
        } else {
            vec![EXT_CSR.into()]
        },
    };
    let ca_pem = dd.ca.cert_pem().to_string();
    let shared = Arc::new(Shared {
        config: config.clone(),
        ca: dd.ca,
        store,
        committer,
        secrets: Mutex::new(quirks.secret_book()),
        directory_json: config.choices.answer(&directory, None),
        paths: Endpoints::under(&config.path_prefix),
        quirks,
    });
    let advert = if config.mdns {
        Some(
            shared
                .quirks
                .advertise("idprov", addr, &shared.paths.directory)
                .map_err(|e| StartError::Mdns(e.to_string()))?,
        )
    } else {
        None
    };
    let (stop, stop_rx) = watch::channel(Stop::Running);
    let task = tokio::spawn(accept_loop(
        listener,
        TlsAcceptor::from(Arc::new(tls)),
        shared.clone(),
        stop_rx,
        advert,
    ));
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "idprov server listening");
    Ok(RunningServer {
        addr,
        data_dir: config.data_dir.clone(),
        ca_pem,
        shared,
        stop,
        task,
    })
}

/// `host:port` of absolute endpoint URLs: the listening address, or the
/// loopback address when listening on every interface.
fn advertised_authority(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// Binds with a listen backlog as deep as the connection cap (the kernel
/// clamps it at `net.core.somaxconn`). The default of 128 overflowed under
/// a burst of fresh devices: the kernel dropped their SYNs and each one
/// waited out a 1 s retransmission.
/// Binds and listens at once (the stack floor, which has nothing to
/// prepare in between).
fn listen(addr: SocketAddr, max_connections: usize) -> std::io::Result<TcpListener> {
    bind(addr)?.listen(backlog(max_connections))
}

/// The accept queue for a server that serves `max_connections` at once.
fn backlog(max_connections: usize) -> u32 {
    u32::try_from(max_connections.max(128)).unwrap_or(u32::MAX)
}

/// Takes the port without accepting connections yet: a port in use fails
/// here, before anything is created.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Stop>,
    advert: Option<mdns::Advertisement>,
) {
    let permits = Arc::new(Semaphore::new(shared.config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer_addr) = tokio::select! {
            _ = stop.changed() => break,
            _ = shared.quirks.stopped() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer_addr, "connection cap reached; closing new connection");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let timeout = shared.config.header_timeout;
        let watcher = graceful.watcher();
        let mut killed = stop.clone();
        let serve = async move {
            let _permit = permit;
            let Some(tcp) = shared
                .quirks
                .connection(shared.clone(), tcp, peer_addr)
                .await
            else {
                return;
            };
            let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer_addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer_addr, "TLS handshake timed out");
                    return;
                }
            };
            let info = ConnInfo {
                peer_addr,
                peer_cert: Arc::new(shared.quirks.peer_cert(peer_cert(tls.get_ref().1))),
            };
            let header_timeout = shared.quirks.header_timeout(timeout);
            let choices = shared.config.choices;
            let mut tls = tls;
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                let svc = hyper::service::service_fn(move |req| {
                    handler::handle(req, shared.clone(), info.clone())
                });
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(tls), svc);
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer_addr, error = %e, "HTTP/2 connection ended with error");
                }
                return;
            }
            let mut prefix = Vec::new();
            let mut framed_by_te = false;
            if choices.transfer_encoding_wins || choices.header_stall_408 {
                match choices::read_first_head(&mut tls, timeout).await {
                    choices::FirstHead::Complete(head) => {
                        (prefix, framed_by_te) = if choices.transfer_encoding_wins {
                            choices::frame_by_transfer_encoding(head)
                        } else {
                            (head, false)
                        };
                    }
                    choices::FirstHead::Stalled if choices.header_stall_408 => {
                        use tokio::io::AsyncWriteExt;
                        let _ = tls.write_all(&choices::request_timeout_answer()).await;
                        let _ = tls.shutdown().await;
                        return;
                    }
                    // The head's time is spent: close, as hyper would.
                    choices::FirstHead::Stalled | choices::FirstHead::Gone => return,
                }
            }
            let svc = hyper::service::service_fn(move |req| {
                handler::handle(req, shared.clone(), info.clone())
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 * 1024)
                .keep_alive(!(choices.close_every_answer || framed_by_te))
                .serve_connection(TokioIo::new(choices::Prefixed::new(prefix, tls)), svc);
            let conn = watcher.watch(conn);
            if let Err(e) = conn.await {
                tracing::debug!(%peer_addr, error = %e, "connection ended with error");
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                Ok(_) = killed.wait_for(|s| *s == Stop::Kill) => {}
                () = serve => {}
            }
        });
    }
    drop(listener);
    if let Some(a) = advert {
        let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    }
    if *stop.borrow() == Stop::Kill {
        return;
    }
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 5 s; closing them");
    }
}

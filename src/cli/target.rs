//! Server targets: from flags, the embedded server in-process, or the
//! reference server as a child process.

use super::args::*;
use super::read;
use idprov::server::ServerConfig;
use idprov::tls::ClientIdentity;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Resolves a server target from flags, or starts the embedded server.
pub(super) async fn resolve_target(
    t: &ServerTargetArgs,
) -> Result<
    (
        idprov::check::runner::ServerTarget,
        Option<(
            std::sync::Arc<idprov::check::lifecycle::InProcessServer>,
            tempfile::TempDir,
        )>,
    ),
    String,
> {
    if let Some(url) = &t.conn.url {
        let need = |p: &Option<PathBuf>, what: &str| match p {
            Some(p) => read(p, what),
            None => Err(format!("{what} is required with --url")),
        };
        return Ok((
            idprov::check::runner::ServerTarget {
                url: url.clone(),
                ca_pem: need(&t.conn.ca_cert, "--ca-cert")?,
                admin: ClientIdentity {
                    cert_pem: need(&t.conn.admin_cert, "--admin-cert")?,
                    key_pem: need(&t.conn.admin_key, "--admin-key")?,
                },
                plugin: match (&t.plugin_cert, &t.plugin_key) {
                    (Some(c), Some(k)) => Some(ClientIdentity {
                        cert_pem: read(c, "--plugin-cert")?,
                        key_pem: read(k, "--plugin-key")?,
                    }),
                    _ => None,
                },
                ca_key_pem: match &t.ca_key {
                    Some(p) => Some(read(p, "--ca-key")?),
                    None => None,
                },
                capabilities: Vec::new(),
                clock: None,
                restarter: idprov::check::lifecycle::HookRestarter::from_hooks(
                    t.restart_cmd.as_deref(),
                    t.kill_cmd.as_deref(),
                    t.start_cmd.as_deref(),
                )?
                .map(|h| {
                    std::sync::Arc::new(h)
                        as std::sync::Arc<dyn idprov::check::lifecycle::Restarter>
                }),
            },
            None,
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let cfg = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().to_path_buf(),
        mdns: false,
        waiting_retry_sec: 1,
        // The suite moves this clock instead of sleeping where it can.
        clock: std::sync::Arc::new(idprov::server::clock::SkewedClock::default()),
        ..ServerConfig::default()
    };
    let srv = idprov::check::lifecycle::InProcessServer::reference(cfg)
        .await
        .map_err(|e| format!("embedded server: {e}"))?;
    let target = srv.target().await.map_err(|e| e.to_string())?;
    Ok((target, Some((srv, dir))))
}

/// The reference server as a child process (so its CPU and memory can be
/// read); killed on drop.
pub(super) struct ChildServer {
    pub(super) child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn spawn_child_server(
    extra: &[&str],
) -> Result<(ChildServer, idprov::check::runner::ServerTarget), String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = std::process::Command::new(exe)
        .args([
            "server",
            "--no-mdns",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .args(extra)
        .env("IDPROV_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    let guard = ChildServer { child, _dir: dir };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err("the server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = guard._dir.path();
    let target = idprov::check::runner::ServerTarget {
        url: format!("https://127.0.0.1:{port}/idprov/directory"),
        ca_pem: read(&d.join("ca.pem"), "ca.pem")?,
        admin: ClientIdentity {
            cert_pem: read(&d.join("admin-cert.pem"), "admin-cert.pem")?,
            key_pem: read(&d.join("admin-key.pem"), "admin-key.pem")?,
        },
        plugin: None,
        ca_key_pem: None,
        capabilities: Vec::new(),
        clock: None,
        restarter: None,
    };
    Ok((guard, target))
}

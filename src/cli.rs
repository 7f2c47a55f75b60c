//! Command-line interface (SUITE.md "Commands"). Kept thin: parses flags and
//! calls the library.

use crate::admin::AdminClient;
use crate::client::{self, ClientOptions};
use crate::server::{self, ServerConfig};
use crate::tls::ClientIdentity;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Exit code: a usage or setup error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of the shim convention: feature not implemented.
pub const EXIT_UNIMPLEMENTED: u8 = 89;

/// idprov: reference server, device client and conformance suite for IDProv.
#[derive(Debug, Parser)]
#[command(name = "idprov", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `debug` or `idprov=trace`.
    #[arg(long, global = true, env = "IDPROV_LOG")]
    pub log: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the reference provisioning server.
    Server(ServerArgs),
    /// Provision (or renew) this device's certificate.
    Client(ClientArgs),
    /// Administer a server: post OOB secrets, read status.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `idprov server` flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:43776")]
    pub listen: SocketAddr,
    /// Directory for the CA, credentials and the certificate database.
    #[arg(long, default_value = "idprov-data")]
    pub data_dir: PathBuf,
    /// Do not advertise over DNS-SD.
    #[arg(long)]
    pub no_mdns: bool,
    /// Validity of issued device certificates, in days.
    #[arg(long, default_value_t = crate::pki::DEFAULT_CERT_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub cert_days: u32,
}

/// `idprov client` flags.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Directory URL; omit (or pass empty) to discover the server by DNS-SD.
    #[arg(long)]
    pub url: Option<String>,
    /// This device's ID.
    #[arg(long)]
    pub device_id: String,
    /// The OOB secret (not needed to renew).
    #[arg(long, env = "IDPROV_CLIENT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Where ca.pem, cert.pem and key.pem are kept.
    #[arg(long)]
    pub dir: PathBuf,
    /// A pre-provisioned CA to trust instead of the leap of faith (empty = none).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Overall time limit in seconds, Waiting retries included.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Shared admin connection flags.
#[derive(Debug, Args)]
pub struct AdminConn {
    /// The server's directory URL.
    #[arg(long)]
    pub url: String,
    /// CA certificate to verify the server.
    #[arg(long)]
    pub ca: PathBuf,
    /// Admin or plugin client certificate.
    #[arg(long)]
    pub cert: PathBuf,
    /// Its private key.
    #[arg(long)]
    pub key: PathBuf,
    /// The device concerned.
    #[arg(long)]
    pub device_id: String,
}

/// `idprov admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Post an OOB secret for a device.
    Oob {
        /// Connection.
        #[command(flatten)]
        conn: AdminConn,
        /// The secret.
        #[arg(long)]
        secret: String,
        /// RFC 3339 expiry (default: the server's, 3 days).
        #[arg(long, default_value = "")]
        valid_until: String,
    },
    /// Print a device's provisioning status.
    Status {
        /// Connection.
        #[command(flatten)]
        conn: AdminConn,
    },
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("idprov: {msg}");
    ExitCode::from(code)
}

fn read(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Runs the parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Server(a) => run_server(a).await,
        Command::Client(a) => run_client(a).await,
        Command::Admin(a) => run_admin(a).await,
    }
}

async fn run_server(a: ServerArgs) -> ExitCode {
    let cfg = ServerConfig {
        listen: a.listen,
        data_dir: a.data_dir.clone(),
        mdns: !a.no_mdns,
        cert_validity: time::Duration::days(a.cert_days as i64),
        ..ServerConfig::default()
    };
    let running = match server::start(cfg).await {
        Ok(r) => r,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let d = a.data_dir.display();
    println!("idprov server: directory {}", running.directory_url());
    println!("  CA:    {d}/ca.pem");
    println!("  admin: {d}/admin-cert.pem {d}/admin-key.pem");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(1, format!("cannot install SIGTERM handler: {e}")),
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn run_client(a: ClientArgs) -> ExitCode {
    if let Ok(feature) = std::env::var("IDPROV_FEATURE") {
        if !feature.is_empty() && !client::FEATURES.contains(&feature.as_str()) {
            eprintln!("idprov: feature `{feature}` is not implemented");
            return ExitCode::from(EXIT_UNIMPLEMENTED);
        }
    }
    let mut opts = ClientOptions::new(&a.device_id, a.secret.as_deref(), &a.dir);
    opts.url = a.url.filter(|u| !u.is_empty());
    opts.ca = a.ca.filter(|p| !p.as_os_str().is_empty());
    opts.timeout = Duration::from_secs(a.timeout);
    match client::run(&opts).await {
        Ok(o) => {
            println!(
                "{} {}: serial {}, valid until {}, files in {}",
                if o.renewed { "renewed" } else { "provisioned" },
                a.device_id,
                o.serial,
                o.not_after
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                a.dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(client::ClientError::Usage(m)) => fail(EXIT_USAGE, m),
        Err(e) => fail(1, e),
    }
}

fn admin_client(c: &AdminConn) -> Result<AdminClient, String> {
    Ok(AdminClient {
        url: c.url.clone(),
        ca_pem: read(&c.ca, "--ca")?,
        identity: ClientIdentity {
            cert_pem: read(&c.cert, "--cert")?,
            key_pem: read(&c.key, "--key")?,
        },
        timeout: Duration::from_secs(15),
    })
}

async fn run_admin(a: AdminCommand) -> ExitCode {
    match a {
        AdminCommand::Oob {
            conn,
            secret,
            valid_until,
        } => {
            let c = match admin_client(&conn) {
                Ok(c) => c,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            match c.post_oob(&conn.device_id, &secret, &valid_until).await {
                Ok(()) => {
                    println!("OOB secret posted for {}", conn.device_id);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, e),
            }
        }
        AdminCommand::Status { conn } => {
            let c = match admin_client(&conn) {
                Ok(c) => c,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            match c.status(&conn.device_id).await {
                Ok(body) => {
                    println!("{}", String::from_utf8_lossy(&body));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, e),
            }
        }
    }
}

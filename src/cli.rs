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
    /// Check a server (or, bare, the embedded reference) against the spec.
    Check(CheckArgs),
    /// Generate or verify the test vectors.
    #[command(subcommand)]
    Vectors(VectorsCommand),
    /// Fuzz a live server, or replay a finding.
    #[command(subcommand)]
    Fuzz(FuzzCommand),
    /// Measure how fast a server provisions (default: the reference server).
    Bench(BenchArgs),
}

/// `idprov bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Target (default: the reference server, started as a child process).
    #[command(flatten)]
    pub target: ServerTargetArgs,
    /// Devices per concurrency level.
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Concurrency, or a comma-separated sweep such as 1,8,64.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub concurrency: Vec<usize>,
    /// Keep device connections alive instead of a fresh TLS handshake each.
    #[arg(long)]
    pub reuse: bool,
    /// PID of a local server under test, for its CPU time and peak RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Where bench.json and bench.html go.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
}

/// `idprov fuzz` subcommands.
#[derive(Debug, Subcommand)]
pub enum FuzzCommand {
    /// Send mutated requests to every endpoint (default: the embedded server).
    Server {
        /// Target.
        #[command(flatten)]
        target: ServerTargetArgs,
        /// Requests to send.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Seed of every mutation (printed; replays the run).
        #[arg(long)]
        seed: Option<u64>,
        /// Where reports and reproducers go.
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Send a reproducer file again (default target: a fresh embedded server).
    Replay {
        /// The reproducer (from reports/fuzz-reproducers/).
        file: PathBuf,
        /// Target.
        #[command(flatten)]
        target: ServerTargetArgs,
    },
}

/// `idprov vectors` subcommands.
#[derive(Debug, Subcommand)]
pub enum VectorsCommand {
    /// Write every vector file (deterministic: same bytes every time).
    Generate {
        /// Target folder.
        #[arg(long, default_value = "vectors")]
        dir: PathBuf,
    },
    /// Check this implementation against every vector file.
    Verify {
        /// Folder with the vector files.
        #[arg(long, default_value = "vectors")]
        dir: PathBuf,
    },
}

/// `idprov check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// What to check; bare `check` self-checks the embedded reference.
    #[command(subcommand)]
    pub which: Option<CheckWhich>,
    /// Options common to every check.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `idprov check` targets.
#[derive(Debug, Subcommand)]
pub enum CheckWhich {
    /// Check a provisioning server (default: the embedded reference server).
    Server(ServerTargetArgs),
    /// Check a device through its shim (default: this binary's own client).
    Client(ClientTargetArgs),
}

/// How to run a device under test.
#[derive(Debug, Args)]
pub struct ClientTargetArgs {
    /// Command template run once per case, with {url} {device_id} {secret}
    /// {dir} {ca}; split like a shell, run without one (SUITE.md).
    #[arg(long)]
    pub cmd: Option<String>,
}

/// How to reach a server under test.
#[derive(Debug, Args)]
pub struct ServerTargetArgs {
    /// The server's directory URL (omit to check the embedded server).
    #[arg(long, requires_all = ["ca_cert", "admin_cert", "admin_key"])]
    pub url: Option<String>,
    /// CA certificate of the server (its TLS chain and issued certificates).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Admin (or plugin) client certificate.
    #[arg(long)]
    pub admin_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long)]
    pub admin_key: Option<PathBuf>,
    /// The CA's private key, if you have it: enables cases that need
    /// certificates the server would not issue (expired, other OU).
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
}

/// Options common to every check (SUITE.md).
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Case ids or globs to run (repeatable, comma-separated; `!` excludes).
    #[arg(long, global = true)]
    pub cases: Vec<String>,
    /// Where report.json, junit.xml, report.html and report.md go.
    #[arg(long, global = true, default_value = "reports")]
    pub report_dir: PathBuf,
    /// SHOULD failures fail the run too.
    #[arg(long, global = true)]
    pub strict: bool,
    /// Print the case catalogue and exit.
    #[arg(long, global = true)]
    pub list: bool,
    /// An earlier report.json: fail only on cases that passed there and fail now.
    #[arg(long, global = true)]
    pub baseline: Option<PathBuf>,
    /// File of `case-id  reason` lines: listed failures do not fail the run,
    /// listed cases that pass do.
    #[arg(long, global = true)]
    pub known_failing: Option<PathBuf>,
    /// Capabilities of the target, comma-separated (e.g. csr,ed25519,rsa,discovery).
    #[arg(long, global = true, value_delimiter = ',')]
    pub capabilities: Vec<String>,
    /// Seed for every random choice (printed in every report).
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// Cases run at once.
    #[arg(long, global = true, default_value_t = 4)]
    pub jobs: usize,
    /// Per-case time limit in seconds.
    #[arg(long, global = true, default_value_t = 90)]
    pub timeout: u64,
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
    /// A pre-provisioned CA to trust instead of the leap of faith (empty =
    /// none); `IDPROV_CA` from the shim contract is read when absent.
    #[arg(long, env = "IDPROV_CA")]
    pub ca: Option<String>,
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
        Command::Check(a) => run_check(a).await,
        Command::Vectors(v) => run_vectors(v),
        Command::Fuzz(f) => run_fuzz(f).await,
        Command::Bench(b) => run_bench(b).await,
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
    opts.ca = a.ca.filter(|p| !p.is_empty()).map(PathBuf::from);
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

fn list_catalogue(role: Option<crate::check::scenario::Role>) -> ExitCode {
    match crate::check::scenario::catalogue() {
        Ok(all) => {
            for s in all.iter().filter(|s| role.is_none_or(|r| s.role == r)) {
                println!(
                    "{:<48} {:<6} {:<14} {}",
                    s.id,
                    s.level.as_str(),
                    s.section,
                    s.title
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}

async fn run_check(a: CheckArgs) -> ExitCode {
    use crate::check::{self, CheckOptions};
    let c = &a.common;
    if c.list {
        let role = a.which.as_ref().map(|w| match w {
            CheckWhich::Server(_) => crate::check::scenario::Role::Server,
            CheckWhich::Client(_) => crate::check::scenario::Role::Client,
        });
        return list_catalogue(role);
    }
    let opts = CheckOptions {
        cases: c.cases.clone(),
        report_dir: c.report_dir.clone(),
        strict: c.strict,
        baseline: c.baseline.clone(),
        known_failing: c.known_failing.clone(),
        capabilities: c.capabilities.clone(),
        seed: c.seed,
        jobs: c.jobs.max(1),
        timeout: Duration::from_secs(c.timeout.max(1)),
    };
    let (target_args, run_server_side, client_cmd) = match a.which {
        Some(CheckWhich::Server(t)) => (t, true, None),
        Some(CheckWhich::Client(c)) => (empty_server_target(), false, Some(c.cmd)),
        None => (empty_server_target(), true, Some(None)),
    };
    let client_report = match client_cmd {
        None => None,
        Some(cmd) => {
            let template = match cmd {
                Some(t) => t,
                None => match crate::check::client::own_client_template() {
                    Ok(t) => t,
                    Err(e) => return fail(EXIT_USAGE, e),
                },
            };
            let target = match crate::check::client::ClientTarget::parse(&template) {
                Ok(t) => t,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            match check::check_client(target, &opts).await {
                Ok(r) => Some(r),
                Err(e) => return fail(EXIT_USAGE, e),
            }
        }
    };
    if !run_server_side {
        let Some(report) = client_report else {
            return fail(EXIT_USAGE, "nothing to check");
        };
        return finish_report(report, &opts);
    }
    let mut embedded = None;
    let target = match &target_args.url {
        Some(url) => {
            let need = |p: &Option<PathBuf>, what: &str| match p {
                Some(p) => read(p, what),
                None => Err(format!("{what} is required with --url")),
            };
            let built = (|| -> Result<check::runner::ServerTarget, String> {
                Ok(check::runner::ServerTarget {
                    url: url.clone(),
                    ca_pem: need(&target_args.ca_cert, "--ca-cert")?,
                    admin: ClientIdentity {
                        cert_pem: need(&target_args.admin_cert, "--admin-cert")?,
                        key_pem: need(&target_args.admin_key, "--admin-key")?,
                    },
                    plugin: None,
                    ca_key_pem: match &target_args.ca_key {
                        Some(p) => Some(read(p, "--ca-key")?),
                        None => None,
                    },
                    capabilities: Vec::new(),
                })
            })();
            match built {
                Ok(t) => t,
                Err(e) => return fail(EXIT_USAGE, e),
            }
        }
        None => {
            let dir = match tempfile::tempdir() {
                Ok(d) => d,
                Err(e) => return fail(EXIT_USAGE, format!("temporary directory: {e}")),
            };
            let cfg = ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                data_dir: dir.path().to_path_buf(),
                mdns: false,
                waiting_retry_sec: 1,
                ..ServerConfig::default()
            };
            let srv = match server::start(cfg).await {
                Ok(s) => s,
                Err(e) => return fail(EXIT_USAGE, format!("embedded server: {e}")),
            };
            let t = match check::embedded_target(&srv) {
                Ok(t) => t,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            embedded = Some((srv, dir));
            t
        }
    };
    let result = check::check_server(target, &opts).await;
    if let Some((srv, dir)) = embedded {
        srv.shutdown().await;
        drop(dir);
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let report = match client_report {
        Some(c) => check::combine(report, c),
        None => report,
    };
    finish_report(report, &opts)
}

fn empty_server_target() -> ServerTargetArgs {
    ServerTargetArgs {
        url: None,
        ca_cert: None,
        admin_cert: None,
        admin_key: None,
        ca_key: None,
    }
}

fn finish_report(
    report: crate::check::report::Report,
    opts: &crate::check::CheckOptions,
) -> ExitCode {
    use std::io::IsTerminal;
    print!("{}", report.table(std::io::stdout().is_terminal()));
    if let Err(e) = report.write_all(&opts.report_dir) {
        return fail(
            EXIT_USAGE,
            format!("writing reports to {}: {e}", opts.report_dir.display()),
        );
    }
    let o = &report.outcome;
    if !o.stale_known_failing.is_empty() {
        println!(
            "stale known-failing entries (these pass now): {}",
            o.stale_known_failing.join(", ")
        );
    }
    if !o.regressions.is_empty() {
        println!(
            "regressions against the baseline: {}",
            o.regressions.join(", ")
        );
    }
    println!(
        "reports: {}/report.json, junit.xml, report.html, report.md",
        opts.report_dir.display()
    );
    if o.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn run_vectors(v: VectorsCommand) -> ExitCode {
    match v {
        VectorsCommand::Generate { dir } => match crate::vectors::generate(&dir) {
            Ok(files) => {
                println!("wrote {} files to {}", files.len(), dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_USAGE, e),
        },
        VectorsCommand::Verify { dir } => match crate::vectors::verify(&dir) {
            Ok(summary) => {
                print!("{}", crate::vectors::summary_text(&summary));
                if summary.iter().all(|f| f.mismatches.is_empty()) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => fail(EXIT_USAGE, e),
        },
    }
}

/// Resolves a server target from flags, or starts the embedded server.
async fn resolve_target(
    t: &ServerTargetArgs,
) -> Result<
    (
        crate::check::runner::ServerTarget,
        Option<(server::RunningServer, tempfile::TempDir)>,
    ),
    String,
> {
    if let Some(url) = &t.url {
        let need = |p: &Option<PathBuf>, what: &str| match p {
            Some(p) => read(p, what),
            None => Err(format!("{what} is required with --url")),
        };
        return Ok((
            crate::check::runner::ServerTarget {
                url: url.clone(),
                ca_pem: need(&t.ca_cert, "--ca-cert")?,
                admin: ClientIdentity {
                    cert_pem: need(&t.admin_cert, "--admin-cert")?,
                    key_pem: need(&t.admin_key, "--admin-key")?,
                },
                plugin: None,
                ca_key_pem: match &t.ca_key {
                    Some(p) => Some(read(p, "--ca-key")?),
                    None => None,
                },
                capabilities: Vec::new(),
            },
            None,
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let cfg = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().to_path_buf(),
        mdns: false,
        ..ServerConfig::default()
    };
    let srv = server::start(cfg)
        .await
        .map_err(|e| format!("embedded server: {e}"))?;
    let target = crate::check::embedded_target(&srv).map_err(|e| e.to_string())?;
    Ok((target, Some((srv, dir))))
}

async fn run_fuzz(f: FuzzCommand) -> ExitCode {
    match f {
        FuzzCommand::Server {
            target,
            requests,
            seed,
            report_dir,
            concurrency,
        } => {
            let (t, embedded) = match resolve_target(&target).await {
                Ok(x) => x,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            let seed = seed.unwrap_or_else(rand::random);
            eprintln!(
                "idprov fuzz server: target {} · seed {seed} · {requests} requests",
                t.url
            );
            let opts = crate::fuzz::FuzzOptions {
                requests,
                seed,
                concurrency,
                report_dir: report_dir.clone(),
                ..Default::default()
            };
            let res = crate::fuzz::fuzz_server(&t, &opts).await;
            if let Some((srv, _dir)) = embedded {
                srv.shutdown().await;
            }
            match res {
                Ok(r) => {
                    use std::io::IsTerminal;
                    print!("{}", r.report.table(std::io::stdout().is_terminal()));
                    for (repro, path) in r.findings.iter().take(10) {
                        println!(
                            "finding: {} — replay with `idprov fuzz replay {}`",
                            repro.detail,
                            path.display()
                        );
                    }
                    println!(
                        "sent {} requests; reports in {}",
                        r.sent,
                        report_dir.display()
                    );
                    if r.findings.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => fail(EXIT_USAGE, e),
            }
        }
        FuzzCommand::Replay { file, target } => {
            let repro: crate::fuzz::Reproducer = match read(&file, "reproducer").and_then(|t| {
                serde_json::from_str(&t).map_err(|e| format!("reproducer {}: {e}", file.display()))
            }) {
                Ok(r) => r,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            let (t, embedded) = match resolve_target(&target).await {
                Ok(x) => x,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            let res = crate::fuzz::replay(&t, &repro, Duration::from_secs(15)).await;
            if let Some((srv, _dir)) = embedded {
                srv.shutdown().await;
            }
            match res {
                Ok(Some(what)) => {
                    println!(
                        "reproduced against {}: {what} (recorded: {})",
                        t.url, repro.detail
                    );
                    ExitCode::from(1)
                }
                Ok(None) => {
                    println!(
                        "did not reproduce against {} (recorded: {})",
                        t.url, repro.detail
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_USAGE, e),
            }
        }
    }
}

/// The reference server as a child process (so its CPU and memory can be
/// read); killed on drop.
struct ChildServer {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_child_server() -> Result<(ChildServer, crate::check::runner::ServerTarget), String> {
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
    let target = crate::check::runner::ServerTarget {
        url: format!("https://127.0.0.1:{port}/idprov/directory"),
        ca_pem: read(&d.join("ca.pem"), "ca.pem")?,
        admin: ClientIdentity {
            cert_pem: read(&d.join("admin-cert.pem"), "admin-cert.pem")?,
            key_pem: read(&d.join("admin-key.pem"), "admin-key.pem")?,
        },
        plugin: None,
        ca_key_pem: None,
        capabilities: Vec::new(),
    };
    Ok((guard, target))
}

async fn run_bench(b: BenchArgs) -> ExitCode {
    if b.devices == 0 || b.concurrency.is_empty() || b.concurrency.contains(&0) {
        return fail(
            EXIT_USAGE,
            "--devices and every --concurrency must be at least 1",
        );
    }
    let (child, target, pid) = if b.target.url.is_some() {
        match resolve_target(&b.target).await {
            Ok((t, _)) => (None, t, b.server_pid),
            Err(e) => return fail(EXIT_USAGE, e),
        }
    } else {
        match spawn_child_server() {
            Ok((c, t)) => {
                let pid = c.child.id();
                (Some(c), t, Some(pid))
            }
            Err(e) => return fail(EXIT_USAGE, e),
        }
    };
    use std::io::IsTerminal;
    let opts = crate::bench::BenchOptions {
        devices: b.devices,
        concurrency: b.concurrency.clone(),
        reuse: b.reuse,
        server_pid: pid,
        progress: std::io::stderr().is_terminal(),
    };
    let res = crate::bench::run(&target, &opts).await;
    drop(child);
    match res {
        Ok(r) => {
            print!("{}", crate::bench::report::table(&r));
            if let Err(e) = crate::bench::report::write(&r, &b.report_dir) {
                return fail(
                    EXIT_USAGE,
                    format!("writing {}: {e}", b.report_dir.display()),
                );
            }
            println!("reports: {}/bench.json, bench.html", b.report_dir.display());
            if r.levels.iter().any(|l| !l.errors.is_empty()) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}

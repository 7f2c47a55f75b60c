//! The command line: every subcommand and flag (SUITE.md "Commands").

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// idprov: reference server, device client and conformance suite for IDProv.
#[derive(Debug, Parser)]
#[command(name = "idprov", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `debug` or `idprov=trace`.
    #[arg(long, global = true, env = "IDPROV_LOG")]
    pub log: Option<String>,
    /// Colour: `auto` (on a terminal, unless NO_COLOR is set), `always`, `never`.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When output is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour output going to stdout.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
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
    /// The protocol profile: rules and what checks them.
    #[command(subcommand)]
    Spec(SpecCommand),
    /// Sign-off bundles written by `check --bundle`.
    #[command(subcommand)]
    Bundle(BundleCommand),
}

/// `idprov spec` subcommands.
#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// The coverage matrix: every rule of docs/PROTOCOL.md and the cases,
    /// vectors and fuzz targets that check it; MUST rules with no case.
    Coverage {
        /// Output format.
        #[arg(long, value_enum, default_value_t = CoverageFormat::Text)]
        format: CoverageFormat,
    },
    /// Print the rules of the profile (id, level, role, section, text).
    Rules,
}

/// Formats of `idprov spec coverage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoverageFormat {
    /// One rule a line, then counts.
    Text,
    /// A Markdown table, then counts.
    Markdown,
    /// The whole matrix as JSON.
    Json,
}

/// `idprov bundle` subcommands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Check every file of a bundle against its SHA-256 manifest and print
    /// the run's summary; exit 1 naming the first file that does not match.
    Verify {
        /// The bundle (`.tar.gz`).
        file: PathBuf,
    },
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
    /// Explain a case: its rules, why they matter, its steps, how to fix a
    /// failure and how to reproduce it by hand.
    Explain {
        /// The case id (see `idprov check --list`).
        case: String,
    },
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
    /// certificates the server would not issue (expired, other OU), and
    /// mints a plugin credential when none is given.
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
    /// A `plugin` client certificate (for the cases about the plugin role).
    #[arg(long, requires = "plugin_key")]
    pub plugin_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, requires = "plugin_cert")]
    pub plugin_key: Option<PathBuf>,
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
    /// Print only the summary (and why the run failed), not the table.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Also write a sign-off bundle (.tar.gz): every report, the evidence,
    /// the command line, versions, the target's identity, the catalogue,
    /// and a SHA-256 manifest (`idprov bundle verify` checks it).
    #[arg(long, global = true)]
    pub bundle: Option<PathBuf>,
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
    /// Path under which the four endpoints are served (`/idprov` gives
    /// `/idprov/directory`, …); the directory and DNS-SD advertise it.
    #[arg(long, default_value = "/idprov", value_parser = parse_path_prefix)]
    pub path_prefix: String,
    /// `go`: encode the directory's caCert and the status answer's
    /// clientCert as base64 of the PEM, as the Go reference's devices and
    /// admin tool decode them (every security rule stays the profile's).
    #[arg(long, value_enum, default_value_t = crate::server::Wire::Profile)]
    pub wire: crate::server::Wire,
}

/// A path prefix: empty, or starting with `/`, without `?`, `#` or `{`.
fn parse_path_prefix(s: &str) -> Result<String, String> {
    if !(s.is_empty() || s.starts_with('/')) || s.contains(['?', '#', '{', '}', ' ']) {
        return Err("must be empty or an absolute path such as /idprov".into());
    }
    Ok(s.trim_end_matches('/').to_string())
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

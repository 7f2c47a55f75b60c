//! The command line: every subcommand and flag (SUITE.md "Commands").

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// idprov: reference server, device client and conformance suite for IDProv.
#[derive(Debug, Parser)]
#[command(name = "idprov", version, about, propagate_version = true)]
pub(crate) struct Cli {
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
pub(crate) enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour output going to stdout.
    pub(crate) fn enabled(self) -> bool {
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

/// Examples and exit codes shown after the help of this command.
const H_SERVER: &str = "Examples:\n  idprov server                                    # 127.0.0.1:43776, data in ./idprov-data\n  idprov server --listen 0.0.0.0:43776 --data-dir /var/lib/idprov --cert-days 90\n  idprov server --wire go --no-mdns                # for Go-reference devices and admin tools\n\nExit codes: 0 stopped by SIGTERM or Ctrl-C after finishing open requests;\n2 could not start (data directory, port).";

/// Examples and exit codes shown after the help of this command.
const H_CLIENT: &str = "Examples:\n  idprov client --url https://srv:43776/idprov/directory --device-id sensor-7 --secret s3cret --dir dev7\n  idprov client --device-id sensor-7 --secret s3cret --dir dev7   # find the server by DNS-SD\n  idprov client --device-id sensor-7 --dir dev7                   # renew over mutual TLS\n\nExit codes: 0 provisioned or renewed; 1 refused or failed (one line on stderr\nsays why); 2 usage error; 89 IDPROV_FEATURE names a feature not implemented.";

/// Examples and exit codes shown after the help of this command.
const H_ADMIN: &str = "Examples:\n  idprov admin oob --url URL --ca-cert ca.pem --admin-cert admin-cert.pem --admin-key admin-key.pem \\\n      --device-id sensor-7 --secret s3cret\n  idprov admin oob --url URL --ca-cert ca.pem --admin-cert admin-cert.pem --admin-key admin-key.pem \\\n      --file enrolment.csv                      # deviceID,oobSecret[,validUntil] per row\n  idprov admin status --url URL --ca-cert ca.pem --admin-cert admin-cert.pem --admin-key admin-key.pem \\\n      --device-id sensor-7 [--json]\n\nExit codes: 0 done; 1 the server refused or could not be reached; 2 usage\nerror or an unreadable file.";

/// Examples and exit codes shown after the help of this command.
const H_DEVICE: &str = "Examples:\n  idprov check device --listen 192.168.1.10 --device-id sensor-7 --secret s3cret \\\n    --reset-cmd 'relay-cycle 3' --state-cmd 'read-device /dev/ttyUSB0' --capabilities discovery\n  idprov check device --listen 192.168.1.10 --device-id sensor-7 --secret s3cret   # operator prompt\n\nOne case at a time; each case ends when the device has been quiet for\n--quiet-ms after its last exchange, has not come within --boot-ms, or at\n--timeout. Without --state-cmd, a case that needs the device's state is\ninconclusive (not a pass: exit 1 unless --allow-inconclusive).\n\nExit codes as for check client; 2 also when neither --reset-cmd nor a\nterminal can reset the device.";
const H_CHECK: &str = "Examples:\n  idprov check                                     # both directions against the embedded reference\n  idprov check server --url URL --ca-cert ca.pem --admin-cert a.pem --admin-key a.key --report-dir out\n  idprov check client --cmd \"my-device --url {url} --id {device_id} --secret {secret} --out {dir}\"\n  idprov check explain server.provision.guess-limit\n\nExit codes: 0 no MUST case failed (--strict: no SHOULD case either), every\ncontrol passed; 1 a counted case or a control failed, a known-failing entry\nis stale, a baseline regressed, or nothing that counts passed; 2 the suite\ncould not test (bad flag or file, target unreachable or untrusted, a shim\nwithout the 89 convention or that cannot start its device) — report.json and\njunit.xml are still written; 130 interrupted by Ctrl-C — the reports of the\ncases that finished are written, marked partial.";

/// Examples and exit codes shown after the help of this command.
const H_VECTORS: &str = "Examples:\n  idprov vectors generate --dir vectors\n  idprov vectors verify --dir vectors\n\nExit codes: 0 done (verify: every case as expected); 1 verify found a\nmismatch (named by tcId); 2 a file could not be read or written.";

/// Examples and exit codes shown after the help of this command.
const H_FUZZ: &str = "Examples:\n  idprov fuzz server --requests 20000 --seed 1     # the embedded reference server\n  idprov fuzz server --url URL --ca-cert ca.pem --admin-cert a.pem --admin-key a.key --report-dir out\n  idprov fuzz replay out/fuzz-reproducers/server-error-123.json --url URL (same credentials)\n\nExit codes: 0 no finding (replay: it no longer fires); 1 findings (a 500 or\n502–504, a hang, a dropped connection, a failed health check; replay: it\nfires again); 2 setup error.";

/// Examples and exit codes shown after the help of this command.
const H_BENCH: &str = "Examples:\n  idprov bench --devices 2000 --concurrency 1,8,64,256\n  idprov bench --url URL --ca-cert ca.pem --admin-cert a.pem --admin-key a.key --report-dir out\n  idprov bench --baseline old/bench.json --max-regression 10\n  idprov bench compare before/bench.json after/bench.json\n  idprov bench --floor --devices 4000 --concurrency 64\n  idprov bench --url URL … --devices 100000 --shard 3/8 --report-dir shard3\n  idprov bench merge shard*/bench.json --report-dir merged\n\nShards: run one generator per --shard I/N at the same time (CI matrix jobs,\nKubernetes Jobs), each with the same --devices (the total) and --concurrency\n(per generator); `bench merge` sums the counts and takes percentiles from the\nmerged latency histograms.\n\nExit codes: 0 every provisioning succeeded and verified (with --baseline:\nand no figure regressed beyond --max-regression); 1 some failed, or a\nregression; 2 setup error or an unreadable file.";

/// Examples and exit codes shown after the help of this command.
const H_SPEC: &str = "Examples:\n  idprov spec rules\n  idprov spec coverage --format markdown\n\nExit codes: 0 printed; 2 the embedded profile or catalogue is unreadable.";

/// Examples and exit codes shown after the help of this command.
const H_BUNDLE: &str = "Examples:\n  idprov check server --url URL … --bundle signoff.tar.gz\n  idprov bundle verify signoff.tar.gz\n\nExit codes: 0 every file matches the manifest; 1 a file is missing, extra or\nchanged (named), or the file is not a bundle; 2 no such file.";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the reference provisioning server.
    #[command(after_help = H_SERVER)]
    Server(ServerArgs),
    /// Provision (or renew) this device's certificate.
    #[command(after_help = H_CLIENT)]
    Client(ClientArgs),
    /// Administer a server: post OOB secrets, read status.
    #[command(after_help = H_ADMIN)]
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check a server (or, bare, the embedded reference) against the spec.
    #[command(after_help = H_CHECK)]
    Check(CheckArgs),
    /// Generate or verify the test vectors.
    #[command(after_help = H_VECTORS)]
    #[command(subcommand)]
    Vectors(VectorsCommand),
    /// Fuzz a live server, or replay a finding.
    #[command(after_help = H_FUZZ)]
    #[command(subcommand)]
    Fuzz(FuzzCommand),
    /// Measure how fast a server provisions (default: the reference server).
    #[command(after_help = H_BENCH, args_conflicts_with_subcommands = true)]
    Bench(BenchArgs),
    /// The protocol profile: rules and what checks them.
    #[command(after_help = H_SPEC)]
    #[command(subcommand)]
    Spec(SpecCommand),
    /// Sign-off bundles written by `check --bundle`.
    #[command(after_help = H_BUNDLE)]
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff); with `--dir`, write one page per
    /// command there.
    Man {
        /// Write idprov.1 and idprov-<command>.1 into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `idprov spec` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SpecCommand {
    /// The coverage matrix: every rule of docs/PROTOCOL.md and the cases,
    /// vectors and fuzz targets that check it; MUST rules with no case.
    #[command(after_help = H_SPEC)]
    Coverage {
        /// Output format.
        #[arg(long, value_enum, default_value_t = CoverageFormat::Text)]
        format: CoverageFormat,
    },
    /// Print the rules of the profile (id, level, role, section, text).
    #[command(after_help = H_SPEC)]
    Rules,
}

/// Formats of `idprov spec coverage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CoverageFormat {
    /// One rule a line, then counts.
    Text,
    /// A Markdown table, then counts.
    Markdown,
    /// The whole matrix as JSON.
    Json,
}

/// `idprov bundle` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BundleCommand {
    /// Check every file of a bundle against its SHA-256 manifest and print
    /// the run's summary; exit 1 naming the first file that does not match.
    #[command(after_help = H_BUNDLE)]
    Verify {
        /// The bundle (`.tar.gz`).
        file: PathBuf,
    },
}

/// `idprov bench` flags.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Target (default: the reference server, started as a child process).
    #[command(flatten)]
    pub target: ServerConnArgs,
    /// Devices per concurrency level (with --shard: over all shards).
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Run only slice I of N of the devices (1 ≤ I ≤ N), disjoint from every
    /// other slice's IDs and secrets, against one --url; combine the
    /// generators' bench.json files with `idprov bench merge`.
    #[arg(long, value_name = "I/N", requires = "url")]
    pub shard: Option<idprov::bench::Shard>,
    /// Also run the same levels against the stack floor — a bare local
    /// server on the same TLS and HTTP stack that only handshakes, reads the
    /// request, signs one certificate and answers a fixed body — and report
    /// the server's CPU per provisioning beside it.
    #[arg(long, conflicts_with = "shard")]
    pub floor: bool,
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
    /// An earlier bench.json: compare with it, and exit 1 on a regression.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// With --baseline: the largest tolerated change, in percent, of
    /// throughput (down), p99 latency and server CPU per provisioning (up).
    #[arg(long, default_value_t = 10.0, requires = "baseline")]
    pub max_regression: f64,
    /// Put several runs side by side instead of measuring.
    #[command(subcommand)]
    pub sub: Option<BenchSub>,
}

/// `idprov bench` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchSub {
    /// Several bench.json files side by side: one table, and compare.html.
    #[command(after_help = H_BENCH)]
    Compare {
        /// The bench.json files, each named after its file in the table.
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        /// Where compare.html goes.
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
    },
    /// Combine the bench.json files of generators that ran at the same time
    /// (`--shard I/N` each) into one bench.json: counts summed, percentiles
    /// from the merged latency histograms.
    #[command(after_help = H_BENCH)]
    Merge {
        /// The generators' bench.json files.
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        /// Where the merged bench.json and bench.html go.
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
    },
}

/// `idprov fuzz` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum FuzzCommand {
    /// Send mutated requests to every endpoint (default: the embedded server).
    #[command(after_help = H_FUZZ)]
    Server {
        /// Target.
        #[command(flatten)]
        target: ServerConnArgs,
        /// Requests to send (at least 1).
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
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
    #[command(after_help = H_FUZZ)]
    Replay {
        /// The reproducer (from reports/fuzz-reproducers/).
        file: PathBuf,
        /// Target.
        #[command(flatten)]
        target: ServerConnArgs,
    },
}

/// `idprov vectors` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum VectorsCommand {
    /// Write every vector file (deterministic: same bytes every time).
    #[command(after_help = H_VECTORS)]
    Generate {
        /// Target folder.
        #[arg(long, default_value = "vectors")]
        dir: PathBuf,
    },
    /// Check this implementation against every vector file.
    #[command(after_help = H_VECTORS)]
    Verify {
        /// Folder with the vector files.
        #[arg(long, default_value = "vectors")]
        dir: PathBuf,
    },
}

/// `idprov check` flags.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// What to check; bare `check` self-checks the embedded reference.
    #[command(subcommand)]
    pub which: Option<CheckWhich>,
    /// Options common to every check.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `idprov check` targets.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum CheckWhich {
    /// Check a provisioning server (default: the embedded reference server).
    #[command(after_help = H_CHECK)]
    Server(ServerTargetArgs),
    /// Check a device through its shim (default: this binary's own client).
    #[command(after_help = H_CHECK)]
    Client(ClientTargetArgs),
    /// Check a device on the network (a board on the bench): the case
    /// servers listen on --listen and are advertised over DNS-SD; the device
    /// is reset before each case.
    #[command(after_help = H_DEVICE)]
    Device(DeviceTargetArgs),
    /// Explain a case: its rules, why they matter, its steps, how to fix a
    /// failure and how to reproduce it by hand.
    #[command(after_help = H_CHECK)]
    Explain {
        /// The case id (see `idprov check --list`).
        case: String,
    },
}

/// How to reach, reset and read a device on the network.
#[derive(Debug, Args)]
pub(crate) struct DeviceTargetArgs {
    /// Address the case servers listen on: an interface the device reaches.
    #[arg(long, help_heading = "Target")]
    pub listen: std::net::IpAddr,
    /// The device's ID (from its label).
    #[arg(long, help_heading = "Target")]
    pub device_id: String,
    /// The device's OOB secret (from its label).
    #[arg(long, help_heading = "Target")]
    pub secret: String,
    /// Command run before each case to reset the device, with {url}
    /// {device_id} {secret} {dir} {ca} {case}; without it, an operator
    /// prompt on a terminal.
    #[arg(long, help_heading = "Target")]
    pub reset_cmd: Option<String>,
    /// Command run after each case that prints what the device holds:
    /// sections [ca], [cert], [key] with PEM (SUITE.md).
    #[arg(long, help_heading = "Target")]
    pub state_cmd: Option<String>,
    /// A case ends when the device has been quiet this long after its last
    /// exchange.
    #[arg(
        long,
        default_value_t = 3000,
        value_name = "MS",
        help_heading = "Target"
    )]
    pub quiet_ms: u64,
    /// A case ends when the device has not reached any of its servers this
    /// long after the reset.
    #[arg(
        long,
        default_value_t = 15000,
        value_name = "MS",
        help_heading = "Target"
    )]
    pub boot_ms: u64,
}

/// How to run a device under test.
#[derive(Debug, Args)]
pub(crate) struct ClientTargetArgs {
    /// Command template run once per case, with {url} {device_id} {secret}
    /// {dir} {ca}; split like a shell, run without one (SUITE.md).
    #[arg(long, help_heading = "Target")]
    pub cmd: Option<String>,
}

/// How to reach a server: its directory URL, CA and an admin credential.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ServerConnArgs {
    /// The server's directory URL (omit to check the embedded server).
    #[arg(long, help_heading = "Target", requires_all = ["ca_cert", "admin_cert", "admin_key"])]
    pub url: Option<String>,
    /// CA certificate of the server (its TLS chain and issued certificates).
    #[arg(long, help_heading = "Target")]
    pub ca_cert: Option<PathBuf>,
    /// Admin (or plugin) client certificate.
    #[arg(long, help_heading = "Credentials")]
    pub admin_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, help_heading = "Credentials")]
    pub admin_key: Option<PathBuf>,
}

/// A server under test: how to reach it, and what else the suite may use.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ServerTargetArgs {
    /// How to reach it.
    #[command(flatten)]
    pub conn: ServerConnArgs,
    /// The CA's private key, if you have it: enables cases that need
    /// certificates the server would not issue (expired, other OU), and
    /// mints a plugin credential when none is given.
    #[arg(long, help_heading = "Credentials")]
    pub ca_key: Option<PathBuf>,
    /// A `plugin` client certificate (for the cases about the plugin role).
    #[arg(long, help_heading = "Credentials", requires = "plugin_key")]
    pub plugin_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, help_heading = "Credentials", requires = "plugin_cert")]
    pub plugin_key: Option<PathBuf>,
    /// A command that restarts the server under test (shell words, run
    /// without a shell; e.g. `systemctl restart my-server` or `docker
    /// restart my-server`): runs the restart cases, which otherwise skip.
    /// The suite then polls the directory for at most 60 s. The embedded
    /// server needs none.
    #[arg(long, help_heading = "Lifecycle", requires = "url", value_name = "CMD")]
    pub restart_cmd: Option<String>,
    /// A command that kills the server under test as a crash would (e.g.
    /// `docker kill -s KILL my-server`, `systemctl kill -s KILL
    /// my-server`): with --start-cmd, runs the crash cases, which otherwise
    /// skip. The embedded server needs none.
    #[arg(
        long,
        help_heading = "Lifecycle",
        requires_all = ["url", "start_cmd"],
        value_name = "CMD"
    )]
    pub kill_cmd: Option<String>,
    /// A command that starts the server under test after --kill-cmd (e.g.
    /// `docker start my-server`); the suite then polls the directory for at
    /// most 60 s.
    #[arg(
        long,
        help_heading = "Lifecycle",
        requires_all = ["url", "kill_cmd"],
        value_name = "CMD"
    )]
    pub start_cmd: Option<String>,
    /// Instead of the catalogue, explore: random operation sequences judged
    /// by the reference model; the first divergence is shrunk and written
    /// as a ready scenario file to `<report-dir>/explore/`.
    #[arg(long, help_heading = "Exploration")]
    pub explore: bool,
    /// Exploration budget: operations to try.
    #[arg(long, help_heading = "Exploration", requires = "explore", default_value_t = 400, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub explore_ops: u64,
    /// Exploration budget: seconds for the random phase.
    #[arg(long, help_heading = "Exploration", requires = "explore", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub explore_time: u64,
}

impl From<ServerConnArgs> for ServerTargetArgs {
    fn from(conn: ServerConnArgs) -> Self {
        ServerTargetArgs {
            conn,
            ..ServerTargetArgs::default()
        }
    }
}

/// Options common to every check (SUITE.md), in the order `--help` shows
/// them: what to run, how, and where the results go.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// Case ids or globs to run (repeatable, comma-separated; `!` excludes).
    #[arg(long, global = true, help_heading = "Selection")]
    pub cases: Vec<String>,
    /// A case file to run beside the catalogue, or a directory of them
    /// (repeatable), e.g. the scenario an exploration wrote.
    #[arg(
        long = "scenario",
        global = true,
        help_heading = "Selection",
        value_name = "FILE|DIR"
    )]
    pub scenarios: Vec<PathBuf>,
    /// Capabilities of the target, comma-separated (e.g. csr,ed25519,rsa,discovery).
    #[arg(long, global = true, help_heading = "Selection", value_delimiter = ',')]
    pub capabilities: Vec<String>,
    /// File of `case-id  reason` lines: listed failures do not fail the run,
    /// listed cases that pass do.
    #[arg(long, global = true, help_heading = "Selection")]
    pub known_failing: Option<PathBuf>,
    /// An earlier report.json: fail only on cases that passed there and fail now.
    #[arg(long, global = true, help_heading = "Selection")]
    pub baseline: Option<PathBuf>,
    /// SHOULD failures fail the run too.
    #[arg(long, global = true, help_heading = "Selection")]
    pub strict: bool,
    /// Counted cases the suite could not decide (verdict inconclusive) do
    /// not fail the run; every report then says so on its first line.
    #[arg(long, global = true, help_heading = "Selection")]
    pub allow_inconclusive: bool,
    /// Seed for every random choice (printed in every report).
    #[arg(long, global = true, help_heading = "Run")]
    pub seed: Option<u64>,
    /// The run's component of every device ID, 8 hex digits (random if
    /// absent; printed in report.json): with `--seed` it replays a run
    /// exactly, device IDs included.
    #[arg(long, global = true, help_heading = "Run", value_parser = parse_run_id)]
    pub run_id: Option<u32>,
    /// Cases run at once.
    #[arg(long, global = true, help_heading = "Run", default_value_t = 4)]
    pub jobs: usize,
    /// Per-case time limit in seconds.
    #[arg(long, global = true, help_heading = "Run", default_value_t = 90)]
    pub timeout: u64,
    /// Where report.json, junit.xml, report.html and report.md go.
    #[arg(
        long,
        global = true,
        help_heading = "Output",
        default_value = "reports"
    )]
    pub report_dir: PathBuf,
    /// Also write a sign-off bundle (.tar.gz): every report, the evidence,
    /// the command line, versions, the target's identity, the catalogue,
    /// and a SHA-256 manifest (`idprov bundle verify` checks it).
    #[arg(long, global = true, help_heading = "Output")]
    pub bundle: Option<PathBuf>,
    /// Print only the summary (and why the run failed), not the table.
    #[arg(short, long, global = true, help_heading = "Output")]
    pub quiet: bool,
    /// Print the case catalogue and exit.
    #[arg(long, global = true, help_heading = "Output")]
    pub list: bool,
}

/// `idprov server` flags.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Address and port to listen on (an IP address, or a host name such as
    /// `localhost`, with the port).
    #[arg(long, default_value = "127.0.0.1:43776", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Directory for the CA, credentials and the certificate database.
    #[arg(long, default_value = "idprov-data")]
    pub data_dir: PathBuf,
    /// Do not advertise over DNS-SD.
    #[arg(long)]
    pub no_mdns: bool,
    /// Validity of issued device certificates, in days.
    #[arg(long, default_value_t = idprov::pki::DEFAULT_CERT_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub cert_days: u32,
    /// Path under which the four endpoints are served (`/idprov` gives
    /// `/idprov/directory`, …); the directory and DNS-SD advertise it.
    #[arg(long, default_value = "/idprov", value_parser = parse_path_prefix)]
    pub path_prefix: String,
    /// `go`: encode the directory's caCert and the status answer's
    /// clientCert as base64 of the PEM, as the Go reference's devices and
    /// admin tool decode them (every security rule stays the profile's).
    #[arg(long, value_enum, default_value_t = idprov::server::Wire::Profile)]
    pub wire: idprov::server::Wire,
    /// Serve the stack floor of `idprov bench --floor` instead of IDProv.
    #[arg(long, hide = true)]
    pub stack_floor: bool,
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
pub(crate) struct ClientArgs {
    /// Directory URL; omit (or pass empty) to discover the server by DNS-SD.
    #[arg(long)]
    pub url: Option<String>,
    /// This device's ID.
    #[arg(long)]
    pub device_id: String,
    /// The OOB secret (not needed to renew); also read from `IDPROV_SECRET`
    /// (the shim's name; `IDPROV_CLIENT_SECRET` still works).
    #[arg(long, env = "IDPROV_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Where ca.pem, cert.pem and key.pem are kept.
    #[arg(long)]
    pub dir: PathBuf,
    /// A pre-provisioned CA to trust instead of the leap of faith (empty =
    /// none); `IDPROV_CA` from the shim contract is read when absent.
    #[arg(
        long = "ca-cert",
        alias = "ca",
        env = "IDPROV_CA",
        value_name = "CA_PEM"
    )]
    pub ca: Option<String>,
    /// Overall time limit in seconds, Waiting retries included.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// A legal choice the profile leaves open, made otherwise than the
    /// reference client makes it (repeatable; docs/SUITE.md "Honest
    /// variants"): e.g. an Ed25519 key, no CSR, TLS 1.3 only.
    #[arg(long, value_enum, value_name = "CHOICE")]
    pub choice: Vec<idprov::client::choices::ClientChoice>,
    /// Stay running as a device on a bench does, and provision (again)
    /// whenever a line `reset [URL]` arrives on this TCP address (its reset
    /// hook); `quit` ends it. `--url` is then the default URL.
    #[arg(long, value_name = "ADDR")]
    pub control: Option<std::net::SocketAddr>,
}

/// Shared admin connection flags.
#[derive(Debug, Args)]
pub(crate) struct AdminConn {
    /// The server's directory URL.
    #[arg(long)]
    pub url: String,
    /// CA certificate to verify the server.
    #[arg(long = "ca-cert", alias = "ca", value_name = "CA_PEM")]
    pub ca: PathBuf,
    /// Admin or plugin client certificate.
    #[arg(long = "admin-cert", alias = "cert", value_name = "CERT_PEM")]
    pub cert: PathBuf,
    /// Its private key.
    #[arg(long = "admin-key", alias = "key", value_name = "KEY_PEM")]
    pub key: PathBuf,
}

/// `idprov admin` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Post an OOB secret for a device.
    #[command(after_help = H_ADMIN)]
    Oob {
        /// Connection.
        #[command(flatten)]
        conn: AdminConn,
        /// The device concerned.
        #[arg(long, required_unless_present = "file", conflicts_with = "file")]
        device_id: Option<String>,
        /// The secret.
        #[arg(long, required_unless_present = "file", conflicts_with = "file")]
        secret: Option<String>,
        /// RFC 3339 expiry (default: the server's, 3 days).
        #[arg(long, conflicts_with = "file")]
        valid_until: Option<String>,
        /// An enrolment list: CSV rows deviceID,oobSecret[,validUntil] (an
        /// optional header row, `#` comments). Every row is checked before
        /// any is posted; then each is posted and reported.
        #[arg(long, value_name = "CSV")]
        file: Option<PathBuf>,
    },
    /// Print a device's provisioning status: status, certificate subject,
    /// serial, validity and fingerprint (`--json`: the document as served).
    #[command(after_help = H_ADMIN)]
    Status {
        /// Connection.
        #[command(flatten)]
        conn: AdminConn,
        /// The device concerned.
        #[arg(long)]
        device_id: String,
        /// Print the status document as the server sent it.
        #[arg(long)]
        json: bool,
    },
}

/// `--run-id`: 8 hex digits, as report.json records it.
fn parse_run_id(s: &str) -> Result<u32, String> {
    if s.len() != 8 {
        return Err(format!("`{s}` is not 8 hex digits (report.json's run_id)"));
    }
    u32::from_str_radix(s, 16)
        .map_err(|_| format!("`{s}` is not 8 hex digits (report.json's run_id)"))
}

/// `--listen`: `IP:PORT`, or `HOST:PORT` resolved to its first address
/// (IPv4 first: `localhost:N` is 127.0.0.1).
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(s)
        .map_err(|e| format!("`{s}` is not HOST:PORT or IP:PORT ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

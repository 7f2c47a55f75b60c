//! Command-line interface (SUITE.md "Commands"). Kept thin: parses flags and
//! calls the library.

/// `print!` to stdout, where a reader that went away (`idprov … | head`)
/// ends the process quietly (exit 141, as a shell reports SIGPIPE) instead
/// of a panic.
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::write_stdout(format_args!($($t)*)) };
}

/// `println!` with the behaviour of [`out!`].
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::cli::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

mod args;
mod bench;
mod check;
mod device;
mod fuzz;
mod roles;
mod spec;
mod target;

pub(crate) use args::*;
use std::path::Path;
use std::process::ExitCode;

/// Exit code: a usage or setup error.
pub(crate) const EXIT_USAGE: u8 = 2;

/// A command line clap refused: when it is a `check` or `fuzz` run that
/// named a `--report-dir`, the error report is written there (CI then still
/// has report.json and junit.xml to show) before clap prints the usage.
pub(crate) fn usage_error_report(e: &clap::Error) {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = match args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
    {
        Some("check") => match args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .nth(1)
            .map(String::as_str)
        {
            Some("server") => "server",
            Some("client") => "client",
            _ => "server+client",
        },
        Some("fuzz") => "fuzz",
        _ => return,
    };
    let dir = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--report-dir=")
            .map(str::to_string)
            .or_else(|| {
                (a == "--report-dir")
                    .then(|| args.get(i + 1).cloned())
                    .flatten()
            })
    });
    let Some(dir) = dir else { return };
    let rendered = e.render().to_string();
    // clap's message up to its first blank line, on one line.
    let reason: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: "))
        .collect();
    let reason = match reason.join(" ") {
        r if r.is_empty() => "the command line was refused".to_string(),
        r => r,
    };
    let report = idprov::check::report::Report::setup_error(
        role,
        "(the command line was refused)".into(),
        0,
        format!("command line: {reason}"),
    );
    write_ending_report(&report, Path::new(&dir));
}

/// Writes the report of a run that ended before a verdict (a setup error, a
/// refused command line, Ctrl-C), so that CI still has its report.json and
/// junit.xml; a failure to write is said on stderr, the run's own reason
/// stays the exit line.
pub(crate) fn write_ending_report(report: &idprov::check::report::Report, dir: &Path) {
    if let Err(e) = report.write_all(dir) {
        eprintln!("idprov: writing the report to {}: {e}", dir.display());
    }
}

/// A hint for the mistakes clap cannot explain: a target flag given to a
/// bare `check` instead of `check server` or `check client`.
pub(crate) fn usage_hint(e: &clap::Error) -> Option<String> {
    if e.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    if words.first() != Some(&"check")
        || words
            .get(1)
            .is_some_and(|w| *w == "server" || *w == "client")
    {
        return None;
    }
    let flag = args.iter().find(|a| {
        let name = a.split('=').next().unwrap_or("");
        SERVER_TARGET_FLAGS.contains(&name) || name == "--cmd"
    })?;
    let sub = if flag.starts_with("--cmd") {
        "client"
    } else {
        "server"
    };
    Some(format!(
        "hint: {} belongs to a target: `idprov check {sub} {} …`",
        flag.split('=').next().unwrap_or(flag),
        flag.split('=').next().unwrap_or(flag)
    ))
}

/// The flags that name a server under test.
const SERVER_TARGET_FLAGS: &[&str] = &[
    "--url",
    "--ca-cert",
    "--ca",
    "--admin-cert",
    "--admin-key",
    "--cert",
    "--key",
    "--ca-key",
    "--plugin-cert",
    "--plugin-key",
    "--explore",
];

/// Exit code of the shim convention: feature not implemented.
pub(crate) const EXIT_UNIMPLEMENTED: u8 = 89;

/// Writes to stdout; on a closed pipe, exits 141 without a word.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_fmt(args).and_then(|_| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("idprov: writing to stdout: {e}");
    }
}

/// `idprov man`: the manual page on stdout, or every page into `dir`.
fn man(dir: Option<&Path>) -> ExitCode {
    let cmd = <Cli as clap::CommandFactory>::command();
    match dir {
        None => {
            let mut buf = Vec::new();
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut buf) {
                return fail(EXIT_USAGE, format!("man: {e}"));
            }
            out!("{}", String::from_utf8_lossy(&buf));
            ExitCode::SUCCESS
        }
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                return fail(EXIT_USAGE, format!("{}: {e}", d.display()));
            }
            // Built once from the root, so that every page lists the global
            // options its command takes; no `help` subcommands to cite.
            let mut cmd = without_help_subcommands(cmd);
            cmd.build();
            let mut pages = Vec::new();
            man_pages("idprov", cmd, &mut pages);
            for (name, c) in pages {
                let mut buf = Vec::new();
                if let Err(e) = clap_mangen::Man::new(c)
                    .title(name.clone())
                    .render(&mut buf)
                {
                    return fail(EXIT_USAGE, format!("man {name}: {e}"));
                }
                let buf = examples_as_written(&String::from_utf8_lossy(&buf)).into_bytes();
                let path = d.join(format!("{name}.1"));
                if let Err(e) =
                    idprov::fsutil::write_atomic(&path, &buf, idprov::fsutil::MODE_PUBLIC)
                {
                    return fail(EXIT_USAGE, format!("{}: {e}", path.display()));
                }
            }
            outln!("manual pages written to {}", d.display());
            ExitCode::SUCCESS
        }
    }
}

/// One page per command at every depth, named by its path
/// (`idprov-check-server`). Each command is renamed to its page name first,
/// so that the pages it cites for its subcommands (`NAME-SUB(1)`) are pages
/// that exist.
fn man_pages(name: &str, cmd: clap::Command, out: &mut Vec<(String, clap::Command)>) {
    let cmd = cmd.name(name.to_string()).bin_name(name.replace('-', " "));
    for sub in cmd.get_subcommands() {
        man_pages(&format!("{name}-{}", sub.get_name()), sub.clone(), out);
    }
    out.push((name.to_string(), cmd));
}

/// The `--help` epilogue clap_mangen puts under `EXTRA`, as man pages lay
/// it out: the examples under `EXAMPLES`, unfilled so that each command
/// stays on its own line (roff would reflow and justify them), and the
/// exit codes under `EXIT STATUS`.
fn examples_as_written(page: &str) -> String {
    let Some(start) = page.find("\n.SH EXTRA\n") else {
        return page.to_string();
    };
    let body_start = start + "\n.SH EXTRA\n".len();
    let end = page[body_start..]
        .find("\n.SH ")
        .map_or(page.len(), |i| body_start + i);
    let mut out = page[..start + 1].to_string();
    for para in page[body_start..end].split("\n\n") {
        let para = para.trim_matches('\n');
        if let Some(rest) = para.strip_prefix("Examples:") {
            out.push_str(".SH EXAMPLES\n.nf\n");
            for line in rest.trim_start_matches('\n').lines() {
                out.push_str(line.strip_prefix("  ").unwrap_or(line));
                out.push('\n');
            }
            out.push_str(".fi\n");
        } else if let Some(rest) = para.strip_prefix("Exit codes:") {
            out.push_str(".SH \"EXIT STATUS\"\n");
            out.push_str(rest.trim());
            out.push('\n');
        } else if !para.is_empty() {
            out.push_str(".PP\n");
            out.push_str(para);
            out.push('\n');
        }
    }
    out.push_str(page[end..].trim_start_matches('\n'));
    out
}

/// `cmd` and every command under it without clap's `help` subcommand.
fn without_help_subcommands(mut cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for n in names {
        cmd = cmd.mut_subcommand(n, without_help_subcommands);
    }
    cmd.disable_help_subcommand(true)
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("idprov: {msg}");
    ExitCode::from(code)
}

fn read(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Whether stdout is coloured in this run (set once from `--color`).
static COLOUR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn colour() -> bool {
    COLOUR.get().copied().unwrap_or(false)
}

/// Runs the parsed command and returns the process exit code.
pub(crate) async fn run(cli: Cli) -> ExitCode {
    let _ = COLOUR.set(cli.color.enabled());
    match cli.command {
        Command::Server(a) => roles::run_server(a).await,
        Command::Client(a) => roles::run_client(a).await,
        Command::Admin(a) => roles::run_admin(a).await,
        Command::Check(a) => check::run_check(a).await,
        Command::Vectors(v) => roles::run_vectors(v),
        Command::Fuzz(f) => fuzz::run_fuzz(f).await,
        Command::Bench(b) => bench::run_bench(b).await,
        Command::Spec(s) => spec::run_spec(s),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "idprov", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
            ExitCode::SUCCESS
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Bundle(b) => spec::run_bundle(b),
    }
}

//! Command-line interface (SUITE.md "Commands"). Kept thin: parses flags and
//! calls the library.

mod args;
mod bench;
mod check;
mod fuzz;
mod roles;
mod spec;
mod target;

pub use args::*;
use std::path::Path;
use std::process::ExitCode;

/// Exit code: a usage or setup error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of the shim convention: feature not implemented.
pub const EXIT_UNIMPLEMENTED: u8 = 89;

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
        Command::Server(a) => roles::run_server(a).await,
        Command::Client(a) => roles::run_client(a).await,
        Command::Admin(a) => roles::run_admin(a).await,
        Command::Check(a) => check::run_check(a).await,
        Command::Vectors(v) => roles::run_vectors(v),
        Command::Fuzz(f) => fuzz::run_fuzz(f).await,
        Command::Bench(b) => bench::run_bench(b).await,
        Command::Spec(s) => spec::run_spec(s),
        Command::Bundle(b) => spec::run_bundle(b),
    }
}

//! The `idprov` binary: the command line (`cli`) over the `idprov` library.

mod cli;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            cli::usage_error_report(&e);
            if let Some(hint) = cli::usage_hint(&e) {
                let _ = e.print();
                eprintln!("{hint}");
                return ExitCode::from(cli::EXIT_USAGE);
            }
            e.exit()
        }
    };
    // The suite's own output is the report: keep the embedded server quiet.
    let default = match cli.command {
        cli::Command::Check(_) | cli::Command::Fuzz(_) | cli::Command::Bench(_) => {
            "warn,idprov::server=error"
        }
        _ => "info",
    };
    let filter = cli.log.clone().unwrap_or_else(|| default.into());
    let env_filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idprov: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    rt.block_on(cli::run(cli))
}

//! A deliberately broken reference server, used only by the suite's own
//! tests to prove that `idprov check server` catches each broken rule when
//! it runs against a server as a separate process (exit codes, written
//! reports, DNS-SD inside a network namespace). It is `idprov server` with
//! the faults named by `--fault` (comma-separated, see `Fault::name`).

use clap::Parser;
use idprov::server::ServerConfig;
use idprov::suite::faults::{Fault, Switch};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
struct Args {
    /// Faults to switch on, e.g. `issue-from-other-ca,empty-txt`.
    #[arg(long, value_delimiter = ',')]
    fault: Vec<String>,
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long)]
    data_dir: PathBuf,
    /// Advertise over DNS-SD.
    #[arg(long)]
    mdns: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let mut faults = Vec::new();
    for name in &a.fault {
        match Fault::by_name(name) {
            Some(f) => faults.push(f),
            None => {
                eprintln!("faulty_server: unknown fault {name}");
                return ExitCode::from(2);
            }
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("faulty_server: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async {
        let cfg = ServerConfig {
            listen: a.listen,
            data_dir: a.data_dir.clone(),
            mdns: a.mdns,
            waiting_retry_sec: 1,
            ..ServerConfig::default()
        };
        let srv = match idprov::suite::faulty_server::start(cfg, &faults).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("faulty_server: {e}");
                return ExitCode::from(2);
            }
        };
        // The line the tests wait for.
        println!("directory {}", srv.directory_url());
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("faulty_server: {e}");
                    return ExitCode::from(2);
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        srv.shutdown().await;
        ExitCode::SUCCESS
    })
}

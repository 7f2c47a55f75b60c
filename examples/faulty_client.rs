//! A deliberately broken device client, used only by the suite's own tests
//! to prove that `idprov check client` catches each broken rule. It is
//! `idprov client` with one rule of PROTOCOL §9 broken, named by `--fault`.

use clap::Parser;
use idprov::client::{ClientOptions, FEATURES};
use idprov::suite::client_faults::ClientFault;
use idprov::suite::faults::Switch;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// The rule to break (see `ClientFault::ALL`).
    #[arg(long)]
    fault: String,
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    device_id: String,
    #[arg(long)]
    secret: Option<String>,
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    ca: Option<String>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Ok(f) = std::env::var("IDPROV_FEATURE") {
        if !FEATURES.contains(&f.as_str()) {
            return ExitCode::from(89);
        }
    }
    let Some(fault) = ClientFault::by_name(&a.fault) else {
        eprintln!("faulty_client: unknown fault {}", a.fault);
        return ExitCode::from(2);
    };
    let mut o = ClientOptions::new(
        &a.device_id,
        a.secret.as_deref().filter(|s| !s.is_empty()),
        &a.dir,
    );
    o.url = a.url.filter(|u| !u.is_empty());
    o.ca = a.ca.filter(|c| !c.is_empty()).map(PathBuf::from);
    o.timeout = Duration::from_secs(30);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("faulty_client: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(idprov::suite::faulty_client::run(&o, &[fault])) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faulty_client: {e}");
            ExitCode::from(1)
        }
    }
}

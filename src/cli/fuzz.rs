//! `idprov fuzz`: fuzzing a live (or the embedded) server, replaying findings.

use super::args::*;
use super::target::*;
use super::{fail, read, EXIT_USAGE};
use std::process::ExitCode;
use std::time::Duration;

pub(super) async fn run_fuzz(f: FuzzCommand) -> ExitCode {
    match f {
        FuzzCommand::Server {
            target,
            requests,
            seed,
            report_dir,
            concurrency,
        } => {
            let seed = seed.unwrap_or_else(rand::random);
            // Exit 2 leaves the promised reports too, saying why.
            let setup_error = |target: String, e: String| {
                let r = idprov::check::report::Report::setup_error("fuzz", target, seed, e.clone());
                super::write_ending_report(&r, &report_dir);
                fail(EXIT_USAGE, e)
            };
            let named = target
                .url
                .clone()
                .unwrap_or_else(|| "embedded reference".into());
            let (t, embedded) = match resolve_target(&target.clone().into()).await {
                Ok(x) => x,
                Err(e) => return setup_error(named, e),
            };
            eprintln!(
                "idprov fuzz server: target {} · seed {seed} · {requests} requests",
                t.url
            );
            let opts = idprov::live_fuzz::FuzzOptions {
                requests,
                seed,
                concurrency,
                report_dir: report_dir.clone(),
                ..Default::default()
            };
            let res = idprov::live_fuzz::fuzz_server(&t, &opts).await;
            if let Some((srv, _dir)) = embedded {
                srv.shutdown().await;
            }
            match res {
                Ok(r) => {
                    use std::io::IsTerminal;
                    out!("{}", r.report.table(std::io::stdout().is_terminal()));
                    for (repro, path) in r.findings.iter().take(10) {
                        outln!(
                            "finding: {} — replay with `idprov fuzz replay {}`",
                            repro.detail,
                            path.display()
                        );
                    }
                    outln!(
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
                Err(e) => setup_error(t.url.clone(), e.to_string()),
            }
        }
        FuzzCommand::Replay { file, target } => {
            let repro: idprov::live_fuzz::Reproducer =
                match read(&file, "reproducer").and_then(|t| {
                    serde_json::from_str(&t)
                        .map_err(|e| format!("reproducer {}: {e}", file.display()))
                }) {
                    Ok(r) => r,
                    Err(e) => return fail(EXIT_USAGE, e),
                };
            let (t, embedded) = match resolve_target(&target.clone().into()).await {
                Ok(x) => x,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            let res = idprov::live_fuzz::replay(&t, &repro, Duration::from_secs(15)).await;
            if let Some((srv, _dir)) = embedded {
                srv.shutdown().await;
            }
            match res {
                Ok(Some(what)) => {
                    outln!(
                        "reproduced against {}: {what} (recorded: {})",
                        t.url,
                        repro.detail
                    );
                    ExitCode::from(1)
                }
                Ok(None) => {
                    outln!(
                        "did not reproduce against {} (recorded: {})",
                        t.url,
                        repro.detail
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_USAGE, e),
            }
        }
    }
}

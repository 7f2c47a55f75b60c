//! `idprov check`: builds the targets, runs the suite, writes the reports.

use super::args::*;
use super::{fail, read, EXIT_USAGE};
use crate::server::{self, ServerConfig};
use crate::tls::ClientIdentity;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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

pub(super) async fn run_check(a: CheckArgs) -> ExitCode {
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

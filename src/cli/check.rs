//! `idprov check`: builds the targets, runs the suite, writes the reports.

use super::args::*;
use super::target::resolve_target;
use super::{fail, EXIT_USAGE};
use std::process::ExitCode;
use std::time::Duration;

fn list_catalogue(role: Option<idprov::check::scenario::Role>) -> ExitCode {
    use idprov::check::scenario::Role;
    match idprov::check::scenario::catalogue() {
        Ok(all) => {
            for s in all.iter().filter(|s| role.is_none_or(|r| s.role == r)) {
                let features = s.features();
                outln!(
                    "{:<48} {:<6} {:<14} {}{}",
                    s.id,
                    s.level.as_str(),
                    s.section,
                    s.title,
                    if features.is_empty() {
                        String::new()
                    } else {
                        format!(" [IDPROV_FEATURE={}]", features.join(","))
                    }
                );
            }
            if role != Some(Role::Server) {
                outln!(
                    "\nIDPROV_FEATURE values (exit 89 skips an optional feature; for a core one it is a failure):\n{}",
                    idprov::check::features::describe()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}

pub(super) async fn run_check(a: CheckArgs) -> ExitCode {
    use idprov::check::{self, CheckOptions};
    let c = &a.common;
    if let Some(CheckWhich::Explain { case }) = &a.which {
        // Explaining runs nothing: a run's flag here is a mistake to say,
        // not to ignore.
        let given: Vec<&str> = [
            ("--bundle", c.bundle.is_some()),
            ("--baseline", c.baseline.is_some()),
            ("--known-failing", c.known_failing.is_some()),
            ("--scenario", !c.scenarios.is_empty()),
            ("--cases", !c.cases.is_empty()),
            ("--capabilities", !c.capabilities.is_empty()),
            ("--seed", c.seed.is_some()),
            ("--run-id", c.run_id.is_some()),
            ("--strict", c.strict),
            ("--list", c.list),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect();
        if !given.is_empty() {
            return fail(
                EXIT_USAGE,
                format!(
                    "check explain runs nothing, so {} would do nothing; give it only a case id",
                    given.join(", ")
                ),
            );
        }
        return match idprov::check::explain::explain(case) {
            Ok(text) => {
                out!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_USAGE, e),
        };
    }
    if c.list {
        let role = a.which.as_ref().and_then(|w| match w {
            CheckWhich::Server(_) => Some(idprov::check::scenario::Role::Server),
            CheckWhich::Client(_) | CheckWhich::Device(_) => {
                Some(idprov::check::scenario::Role::Client)
            }
            CheckWhich::Explain { .. } => None,
        });
        return list_catalogue(role);
    }
    // One seed for the whole run, both halves of a bare check included, so
    // that `--seed` replays all of it.
    let seed = c.seed.unwrap_or_else(rand::random);
    let opts = CheckOptions {
        cases: c.cases.clone(),
        report_dir: c.report_dir.clone(),
        strict: c.strict,
        allow_inconclusive: c.allow_inconclusive,
        baseline: c.baseline.clone(),
        known_failing: c.known_failing.clone(),
        capabilities: c.capabilities.clone(),
        scenarios: c.scenarios.clone(),
        finished: Default::default(),
        seed: Some(seed),
        run_id: c.run_id,
        jobs: c.jobs,
        timeout: Duration::from_secs(c.timeout),
        both_roles: a.which.is_none(),
        progress: !c.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        explore: match &a.which {
            Some(CheckWhich::Server(t)) if t.explore => Some(idprov::check::explore::Budget {
                ops: t.explore_ops as usize,
                time: Duration::from_secs(t.explore_time),
            }),
            _ => None,
        },
    };
    let (target_args, run_server_side, client_cmd) = match a.which {
        Some(CheckWhich::Device(d)) => return run_device_check(d, seed, &opts, c).await,
        Some(CheckWhich::Server(t)) => (t, true, None),
        Some(CheckWhich::Client(c)) => (empty_server_target(), false, Some(c.cmd)),
        None => (empty_server_target(), true, Some(None)),
        Some(CheckWhich::Explain { .. }) => return fail(EXIT_USAGE, "explain takes no target"),
    };
    let mut identities: Vec<idprov::check::bundle::TargetIdentity> = Vec::new();
    let role = match (run_server_side, client_cmd.is_some()) {
        (true, true) => "server+client",
        (true, false) => "server",
        _ => "client",
    };
    let target_name = match (&client_cmd, run_server_side) {
        // A client run's target is its device: the shim, or the own client.
        (Some(cmd), false) => cmd
            .clone()
            .unwrap_or_else(|| "the reference client (idprov client)".into()),
        _ => target_args
            .conn
            .url
            .clone()
            .unwrap_or_else(|| "embedded reference".into()),
    };
    let setup_error = |e: String| setup_error_exit(role, target_name.clone(), seed, e, &opts);
    if let Err(e) = opts.validate() {
        return setup_error(e.0);
    }
    let client_report = match client_cmd {
        None => None,
        Some(cmd) => {
            let template = match cmd {
                Some(t) => t,
                None => match idprov::check::client::own_client_template() {
                    Ok(t) => t,
                    Err(e) => return setup_error(e.0),
                },
            };
            let target = match idprov::check::client::ClientTarget::parse(&template) {
                Ok(t) => t,
                Err(e) => return setup_error(e.0),
            };
            identities.push(idprov::check::bundle::TargetIdentity {
                target: template.clone(),
                ..Default::default()
            });
            match until_interrupted(check::check_client(target, &opts)).await {
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => return setup_error(e.0),
                None => return interrupted_exit(role, target_name.clone(), seed, &opts),
            }
        }
    };
    if !run_server_side {
        let Some(report) = client_report else {
            return setup_error("nothing to check".into());
        };
        return finish_report(report, &opts, c.bundle.as_deref(), identities, c.quiet);
    }
    let (target, embedded) = match resolve_target(&target_args).await {
        Ok(t) => t,
        Err(e) => return setup_error(e),
    };
    if c.bundle.is_some() {
        identities.insert(0, idprov::check::bundle::server_identity(&target).await);
    }
    let result = until_interrupted(check::check_server(target, &opts)).await;
    if let Some((srv, dir)) = embedded {
        srv.shutdown().await;
        drop(dir);
    }
    let report = match result {
        Some(Ok(r)) => r,
        Some(Err(e)) => return setup_error(e.0),
        None => return interrupted_exit(role, target_name.clone(), seed, &opts),
    };
    let report = match client_report {
        Some(c) => check::combine(report, c),
        None => report,
    };
    finish_report(report, &opts, c.bundle.as_deref(), identities, c.quiet)
}

/// `check device`: a device on the network, reset before each case.
async fn run_device_check(
    d: DeviceTargetArgs,
    seed: u64,
    opts: &idprov::check::CheckOptions,
    c: &CommonArgs,
) -> ExitCode {
    use idprov::check::client::remote::{RemoteDevice, Reset};
    let target_name = format!("device {} on {}", d.device_id, d.listen);
    let setup_error = |e: String| setup_error_exit("client", target_name.clone(), seed, e, opts);
    if let Err(e) = opts.validate() {
        return setup_error(e.0);
    }
    let reset = match &d.reset_cmd {
        Some(t) => match RemoteDevice::hook("--reset-cmd", t) {
            Ok(h) => Reset::Hook(h),
            Err(e) => return setup_error(e.0),
        },
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => Reset::Operator,
        None => {
            return setup_error(
                "nothing can reset the device: give --reset-cmd (a command that resets it before each case), or run on a terminal to be prompted"
                    .into(),
            )
        }
    };
    let state = match &d.state_cmd {
        Some(t) => match RemoteDevice::hook("--state-cmd", t) {
            Ok(h) => Some(h),
            Err(e) => return setup_error(e.0),
        },
        None => None,
    };
    let device = RemoteDevice {
        listen: d.listen,
        device_id: d.device_id.clone(),
        secret: d.secret.clone(),
        reset,
        state,
        quiet: Duration::from_millis(d.quiet_ms),
        boot: Duration::from_millis(d.boot_ms),
    };
    // The listen address must be this machine's before anything runs.
    if let Err(e) = std::net::TcpListener::bind((d.listen, 0)) {
        return setup_error(format!(
            "--listen {}: {e} (give an address of one of this machine's interfaces)",
            d.listen
        ));
    }
    let identities = vec![idprov::check::bundle::TargetIdentity {
        target: target_name.clone(),
        ..Default::default()
    }];
    match until_interrupted(idprov::check::check_device(device, opts)).await {
        Some(Ok(r)) => finish_report(r, opts, c.bundle.as_deref(), identities, c.quiet),
        Some(Err(e)) => setup_error(e.0),
        None => interrupted_exit("client", target_name.clone(), seed, opts),
    }
}

/// Exit code of a run interrupted by Ctrl-C (128 + SIGINT, as shells use).
const EXIT_INTERRUPTED: u8 = 130;

/// `run`'s output, or `None` when Ctrl-C came first.
async fn until_interrupted<T>(run: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        r = run => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    }
}

/// Ctrl-C: writes the reports of what finished, saying the run is partial,
/// and exits 130.
fn interrupted_exit(
    role: &str,
    target: String,
    seed: u64,
    opts: &idprov::check::CheckOptions,
) -> ExitCode {
    let finished = opts.finished.lock().map(|f| f.clone()).unwrap_or_default();
    let reason = format!(
        "interrupted by Ctrl-C: a partial run ({} case(s) finished), no verdict on the target",
        finished.len()
    );
    let report =
        idprov::check::report::Report::interrupted(role, target, seed, finished, reason.clone());
    super::write_ending_report(&report, &opts.report_dir);
    fail(EXIT_INTERRUPTED, reason)
}

/// Says why the suite could not test (one line), writes the error report so
/// that CI still has report.json and junit.xml, and exits 2.
fn setup_error_exit(
    role: &str,
    target: String,
    seed: u64,
    reason: String,
    opts: &idprov::check::CheckOptions,
) -> ExitCode {
    let report = idprov::check::report::Report::setup_error(role, target, seed, reason.clone());
    super::write_ending_report(&report, &opts.report_dir);
    fail(EXIT_USAGE, reason)
}

fn empty_server_target() -> ServerTargetArgs {
    ServerTargetArgs::default()
}

fn finish_report(
    report: idprov::check::report::Report,
    opts: &idprov::check::CheckOptions,
    bundle: Option<&std::path::Path>,
    identities: Vec<idprov::check::bundle::TargetIdentity>,
    quiet: bool,
) -> ExitCode {
    if quiet {
        out!("{}", report.summary_line());
    } else {
        out!("{}", report.table(super::colour()));
    }
    if let Err(e) = report.write_all(&opts.report_dir) {
        return fail(
            EXIT_USAGE,
            format!("writing reports to {}: {e}", opts.report_dir.display()),
        );
    }
    let o = &report.outcome;
    if !o.stale_known_failing.is_empty() {
        outln!(
            "stale known-failing entries (these pass now): {}",
            o.stale_known_failing.join(", ")
        );
    }
    if !o.regressions.is_empty() {
        outln!(
            "regressions against the baseline: {}",
            o.regressions.join(", ")
        );
    }
    if !quiet {
        outln!(
            "reports: {}/report.json, junit.xml, report.html, report.md",
            opts.report_dir.display()
        );
    }
    if let Some(out) = bundle {
        let run = idprov::check::bundle::RunInfo {
            command_line: std::env::args().collect(),
            tool: "idprov".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_revision: idprov::check::bundle::git_revision().into(),
            seed: report.seed,
            target: identities,
        };
        if let Err(e) = idprov::check::bundle::write(&opts.report_dir, &report, &run, out) {
            return fail(EXIT_USAGE, format!("--bundle: {e}"));
        }
        if !quiet {
            outln!("bundle: {}", out.display());
        }
    }
    if o.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

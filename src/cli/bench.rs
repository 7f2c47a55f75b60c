//! `idprov bench`: load generation against a server.

use super::args::*;
use super::target::*;
use super::{fail, EXIT_USAGE};
use std::process::ExitCode;

pub(super) async fn run_bench(b: BenchArgs) -> ExitCode {
    if b.devices == 0 || b.concurrency.is_empty() || b.concurrency.contains(&0) {
        return fail(
            EXIT_USAGE,
            "--devices and every --concurrency must be at least 1",
        );
    }
    let (child, target, pid) = if b.target.url.is_some() {
        match resolve_target(&b.target.clone().into()).await {
            Ok((t, _)) => (None, t, b.server_pid),
            Err(e) => return fail(EXIT_USAGE, e),
        }
    } else {
        match spawn_child_server() {
            Ok((c, t)) => {
                let pid = c.child.id();
                (Some(c), t, Some(pid))
            }
            Err(e) => return fail(EXIT_USAGE, e),
        }
    };
    use std::io::IsTerminal;
    let opts = crate::bench::BenchOptions {
        devices: b.devices,
        concurrency: b.concurrency.clone(),
        reuse: b.reuse,
        server_pid: pid,
        progress: std::io::stderr().is_terminal(),
    };
    let res = crate::bench::run(&target, &opts).await;
    drop(child);
    match res {
        Ok(r) => {
            out!("{}", crate::bench::report::table(&r));
            if let Err(e) = crate::bench::report::write(&r, &b.report_dir) {
                return fail(
                    EXIT_USAGE,
                    format!("writing {}: {e}", b.report_dir.display()),
                );
            }
            outln!("reports: {}/bench.json, bench.html", b.report_dir.display());
            if r.levels.iter().any(|l| !l.errors.is_empty()) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}

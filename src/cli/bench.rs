//! `idprov bench`: load generation against a server.

use super::args::*;
use super::target::*;
use super::{fail, EXIT_USAGE};
use std::process::ExitCode;

fn load(p: &std::path::Path) -> Result<crate::bench::BenchResult, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a bench.json: {e}", p.display()))
}

fn compare(files: &[std::path::PathBuf], dir: &std::path::Path) -> ExitCode {
    let mut runs = Vec::new();
    for f in files {
        match load(f) {
            Ok(r) => runs.push((f.display().to_string(), r)),
            Err(e) => return fail(EXIT_USAGE, e),
        }
    }
    out!("{}", crate::bench::compare::side_by_side(&runs));
    let page = crate::bench::compare::html(&runs);
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| {
        crate::fsutil::write_atomic(
            &dir.join("compare.html"),
            page.as_bytes(),
            crate::fsutil::MODE_PUBLIC,
        )
    }) {
        return fail(EXIT_USAGE, format!("{}: {e}", dir.display()));
    }
    outln!("report: {}/compare.html", dir.display());
    ExitCode::SUCCESS
}

pub(super) async fn run_bench(b: BenchArgs) -> ExitCode {
    if let Some(BenchSub::Compare { files, report_dir }) = &b.sub {
        return compare(files, report_dir);
    }
    if b.max_regression.is_nan() || b.max_regression < 0.0 {
        return fail(EXIT_USAGE, "--max-regression must be a percentage ≥ 0");
    }
    // Read the baseline first: a bad file is a usage error before any load.
    let baseline = match &b.baseline {
        Some(p) => match load(p) {
            Ok(r) => Some(r),
            Err(e) => return fail(EXIT_USAGE, e),
        },
        None => None,
    };
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
            let mut regressed = false;
            if let Some(old) = &baseline {
                let changes = crate::bench::compare::changes(old, &r);
                if changes.is_empty() {
                    return fail(
                        EXIT_USAGE,
                        "--baseline shares no concurrency level with this run",
                    );
                }
                out!(
                    "\nagainst the baseline:\n{}",
                    crate::bench::compare::table(&changes, b.max_regression)
                );
                regressed = changes.iter().any(|c| c.regressed(b.max_regression));
            }
            if regressed || r.levels.iter().any(|l| !l.errors.is_empty()) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}

//! `idprov bench`: load generation against a server.

use super::args::*;
use super::target::*;
use super::{fail, EXIT_USAGE};
use std::process::ExitCode;

fn load(p: &std::path::Path) -> Result<idprov::bench::BenchResult, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a bench.json: {e}", p.display()))
}

/// Every file, named by its path, or the first that cannot be read.
fn load_all(
    files: &[std::path::PathBuf],
) -> Result<Vec<(String, idprov::bench::BenchResult)>, String> {
    files
        .iter()
        .map(|f| Ok((f.display().to_string(), load(f)?)))
        .collect()
}

fn compare(files: &[std::path::PathBuf], dir: &std::path::Path) -> ExitCode {
    let runs = match load_all(files) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    out!("{}", idprov::bench::compare::side_by_side(&runs));
    let page = idprov::bench::compare::html(&runs);
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| {
        idprov::fsutil::write_atomic(
            &dir.join("compare.html"),
            page.as_bytes(),
            idprov::fsutil::MODE_PUBLIC,
        )
    }) {
        return fail(EXIT_USAGE, format!("{}: {e}", dir.display()));
    }
    outln!("report: {}/compare.html", dir.display());
    ExitCode::SUCCESS
}

fn merge(files: &[std::path::PathBuf], dir: &std::path::Path) -> ExitCode {
    let runs = match load_all(files) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let (merged, notes) = match idprov::bench::merge::merge(&runs) {
        Ok(m) => m,
        Err(e) => return fail(EXIT_USAGE, format!("cannot merge: {e}")),
    };
    for s in &notes.missing_shards {
        eprintln!("warning: no input is shard {s}: its devices are not in the merge");
    }
    for f in &notes.unsharded {
        eprintln!(
            "warning: {f} was not run with --shard: its device IDs may have collided with another generator's"
        );
    }
    out!("{}", idprov::bench::report::table(&merged));
    if let Err(e) = idprov::bench::report::write(&merged, dir) {
        return fail(EXIT_USAGE, format!("writing {}: {e}", dir.display()));
    }
    outln!(
        "merged {} runs: {}/bench.json, bench.html",
        runs.len(),
        dir.display()
    );
    if merged.levels.iter().any(|l| !l.errors.is_empty()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The same levels against the stack floor, a local child process.
async fn stack_floor(
    opts: &idprov::bench::BenchOptions,
) -> Result<Vec<idprov::bench::LevelResult>, String> {
    let (child, target) = spawn_child_server(&["--stack-floor"])?;
    let opts = idprov::bench::BenchOptions {
        server_pid: Some(child.child.id()),
        verify: false,
        ..opts.clone()
    };
    let levels = idprov::bench::levels(&target, &opts)
        .await
        .map_err(|e| format!("stack floor: {e}"));
    drop(child);
    levels
}

pub(super) async fn run_bench(b: BenchArgs) -> ExitCode {
    match &b.sub {
        Some(BenchSub::Compare { files, report_dir }) => return compare(files, report_dir),
        Some(BenchSub::Merge { files, report_dir }) => return merge(files, report_dir),
        None => {}
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
        match spawn_child_server(&[]) {
            Ok((c, t)) => {
                let pid = c.child.id();
                (Some(c), t, Some(pid))
            }
            Err(e) => return fail(EXIT_USAGE, e),
        }
    };
    use std::io::IsTerminal;
    let opts = idprov::bench::BenchOptions {
        devices: b.devices,
        concurrency: b.concurrency.clone(),
        reuse: b.reuse,
        server_pid: pid,
        progress: std::io::stderr().is_terminal(),
        shard: b.shard.unwrap_or(idprov::bench::Shard::WHOLE),
        verify: true,
    };
    if opts.shard.is_empty(opts.devices) {
        return fail(
            EXIT_USAGE,
            format!(
                "--shard {} of {} devices is empty",
                opts.shard, opts.devices
            ),
        );
    }
    let mut res = idprov::bench::run(&target, &opts).await;
    drop(child);
    if let (Ok(r), true) = (&mut res, b.floor) {
        match stack_floor(&opts).await {
            Ok(levels) => r.stack_floor = levels,
            Err(e) => return fail(EXIT_USAGE, e),
        }
    }
    match res {
        Ok(r) => {
            out!("{}", idprov::bench::report::table(&r));
            if let Err(e) = idprov::bench::report::write(&r, &b.report_dir) {
                return fail(
                    EXIT_USAGE,
                    format!("writing {}: {e}", b.report_dir.display()),
                );
            }
            outln!("reports: {}/bench.json, bench.html", b.report_dir.display());
            let mut regressed = false;
            if let Some(old) = &baseline {
                let changes = idprov::bench::compare::changes(old, &r);
                if changes.is_empty() {
                    return fail(
                        EXIT_USAGE,
                        "--baseline shares no concurrency level with this run",
                    );
                }
                out!(
                    "\nagainst the baseline:\n{}",
                    idprov::bench::compare::table(&changes, b.max_regression)
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

//! The test of mutation analysis (`scripts/mutation.sh`, issue 24): the
//! whole catalogue — every server case against the reference server, every
//! client case against the reference client run as a process — and a short
//! exploration of the reference server, all at once, each on its own
//! server. Every case of the catalogue must have run. Under a mutant of the
//! reference's protocol code this test failing is the mutant killed; a
//! mutant it survives is a behaviour change the catalogue cannot see (or an
//! equivalent mutant), triaged in `reports/mutation.md`.
//!
//! Ignored by a plain `cargo test`, where each part already runs on its own
//! (`check_suite`, `check_client`, `explore`); the script and CI's sampled
//! mutation step run it by name, first on the unmutated tree.

use crate::common;
use idprov::check::client::ClientTarget;
use idprov::check::explore::Budget;
use idprov::check::report::{Report, Verdict};
use idprov::check::scenario::Role;
use idprov::check::{self, CheckOptions};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_idprov");

/// What made a run red, one line each; empty when it is green. A case that
/// skips beyond `may_skip` counts too: a mutant that stops a case from
/// running has not passed it.
fn reds(what: &str, r: &Report, may_skip: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = r
        .cases
        .iter()
        .filter(|c| {
            c.verdict == Verdict::Fail
                || (c.verdict == Verdict::Skip && !may_skip.contains(&c.id.as_str()))
        })
        .map(|c| format!("{what}: {} {:?}: {}", c.id, c.verdict, c.detail))
        .collect();
    if out.is_empty() && r.outcome.failed {
        out.push(format!("{what}: the run failed with no failing case"));
    }
    out
}

/// Cases that need a capability these runs do not declare (discovery).
const SERVER_MAY_SKIP: &[&str] = &[
    "server.discovery.advertised-directory",
    "server.discovery.txt-path-key",
];
const CLIENT_MAY_SKIP: &[&str] = &[
    "client.discovery.finds-server",
    "client.transport.discovery-no-plaintext",
];

fn opts(seed: u64, explore: Option<Budget>, report_dir: &std::path::Path) -> CheckOptions {
    CheckOptions {
        seed: Some(seed),
        jobs: 8,
        timeout: Duration::from_secs(60),
        report_dir: report_dir.to_path_buf(),
        explore,
        ..CheckOptions::default()
    }
}

/// One check of a fresh reference server (as `idprov check` runs it: its
/// clock moved at a wait): the catalogue, or with `explore` an exploration
/// (which replaces the catalogue in a run, so the two are separate runs).
async fn server_run(explore: Option<Budget>) -> Vec<String> {
    let what = if explore.is_some() {
        "exploration"
    } else {
        "server"
    };
    let d = tempfile::tempdir().expect("temp dir");
    let config = idprov::server::ServerConfig {
        clock: std::sync::Arc::new(idprov::server::clock::SkewedClock::default()),
        ..common::config(d.path())
    };
    let srv = match check::lifecycle::InProcessServer::reference(config).await {
        Ok(s) => s,
        Err(e) => return vec![format!("{what}: the reference server does not start: {e}")],
    };
    let mut out = Vec::new();
    match srv.target().await {
        Ok(target) => match check::check_server(target, &opts(7, explore, d.path())).await {
            Ok(r) => {
                out.extend(reds(what, &r, SERVER_MAY_SKIP));
                if explore.is_some() {
                    if !r
                        .cases
                        .iter()
                        .any(|c| c.id == "server.explore.no-divergence")
                    {
                        out.push("exploration: it did not end clean".into());
                    }
                } else {
                    out.extend(all_ran(what, &r, Role::Server));
                }
            }
            Err(e) => out.push(format!("{what}: the check did not run: {e}")),
        },
        Err(e) => out.push(format!("{what}: no target: {e}")),
    }
    srv.shutdown().await;
    out
}

/// Every case of the role's catalogue has a verdict in the report: a gate
/// that silently ran fewer cases would let mutants through.
fn all_ran(what: &str, r: &Report, role: Role) -> Vec<String> {
    let all = match check::select(role, &[]) {
        Ok(all) => all,
        Err(e) => return vec![format!("{what}: the catalogue does not load: {e}")],
    };
    all.iter()
        .filter(|s| !r.cases.iter().any(|c| c.id == s.id))
        .map(|s| format!("{what}: {} did not run", s.id))
        .collect()
}

/// The client catalogue against the reference client, through the shim.
async fn client_side() -> Vec<String> {
    let d = tempfile::tempdir().expect("temp dir");
    let t = format!(
        "{BIN} client --url {{url}} --device-id {{device_id}} --secret {{secret}} --dir {{dir}}"
    );
    let target = match ClientTarget::parse(&t) {
        Ok(t) => t,
        Err(e) => return vec![format!("client: shim does not parse: {e}")],
    };
    match check::check_client(target, &opts(3, None, d.path())).await {
        Ok(r) => {
            let mut out = reds("client", &r, CLIENT_MAY_SKIP);
            out.extend(all_ran("client", &r, Role::Client));
            out
        }
        Err(e) => vec![format!("client: the check did not run: {e}")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the test of scripts/mutation.sh; its parts run in check_suite, check_client and explore"]
async fn the_reference_passes_the_catalogue_and_a_short_exploration() {
    let budget = Budget {
        ops: 400,
        time: Duration::from_secs(20),
    };
    let (server, explored, client) =
        tokio::join!(server_run(None), server_run(Some(budget)), client_side());
    let reds: Vec<String> = server.into_iter().chain(explored).chain(client).collect();
    assert!(reds.is_empty(), "{reds:#?}");
}

//! `idprov fuzz server` finds nothing against the reference server, and
//! against a deliberately fragile one (panics on a nested object, 500 on a
//! long device ID) it reports the faults with reproducers that replay.

use crate::common;
use idprov::live_fuzz::{self, FindingKind, FuzzOptions};
use idprov::suite::faults::Fault;
use std::time::Duration;

async fn run(
    faults: &[Fault],
    requests: u64,
    dir: &std::path::Path,
) -> (
    live_fuzz::FuzzResult,
    idprov::server::RunningServer,
    idprov::check::runner::ServerTarget,
) {
    let data = dir.join("data");
    let srv = idprov::suite::faulty_server::start(common::config(&data), faults)
        .await
        .unwrap();
    let target = idprov::check::embedded_target(&srv).unwrap();
    let opts = FuzzOptions {
        requests,
        seed: 11,
        batch: 500,
        report_dir: dir.join("reports"),
        progress: false,
        ..FuzzOptions::default()
    };
    let r = live_fuzz::fuzz_server(&target, &opts).await.unwrap();
    (r, srv, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_survives_fuzzing() {
    let d = tempfile::tempdir().unwrap();
    let (r, srv, _) = run(&[], 2000, d.path()).await;
    let details: Vec<&str> = r.findings.iter().map(|(f, _)| f.detail.as_str()).collect();
    assert!(r.findings.is_empty(), "{details:#?}");
    assert_eq!(r.sent, 2000);
    // Unknown methods (BREW, …) get 501 as RFC 9110 prescribes: noted in
    // the report, not counted as findings.
    let noted = r
        .report
        .cases
        .iter()
        .find(|c| c.id == "server.input.fuzz-deliberate-5xx")
        .map(|c| c.detail.clone())
        .unwrap_or_default();
    assert!(noted.contains("501"), "{noted:?}");
    assert!(!r.report.outcome.failed);
    assert!(d.path().join("reports/report.json").exists());
    srv.shutdown().await;
}

/// A server on other paths is fuzzed where its directory says it serves:
/// at most the odd-path share of requests gets 404 (sent to `/idprov/*`,
/// three in four did, and the run came out clean for the wrong reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzing_follows_the_directory_paths() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = common::config(&d.path().join("data"));
    cfg.path_prefix = "/api/v9/prov".into();
    let srv = idprov::server::start(cfg).await.unwrap();
    let target = idprov::check::embedded_target(&srv).unwrap();
    let opts = FuzzOptions {
        requests: 400,
        seed: 11,
        batch: 400,
        report_dir: d.path().join("reports"),
        progress: false,
        ..FuzzOptions::default()
    };
    let r = live_fuzz::fuzz_server(&target, &opts).await.unwrap();
    let not_found = r.statuses.get(&404).copied().unwrap_or(0);
    assert!(
        not_found * 5 < r.sent,
        "{not_found} of {} requests got 404: {:?}",
        r.sent,
        r.statuses
    );
    assert!(r.findings.is_empty());
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragile_server_faults_are_found_and_replay() {
    let d = tempfile::tempdir().unwrap();
    let (r, srv, target) = run(
        &[
            Fault::PanicOnNestedObject,
            Fault::ErrorOnLongDeviceId,
            Fault::NoBodyTimeout,
        ],
        2000,
        d.path(),
    )
    .await;
    let kinds: Vec<FindingKind> = r.findings.iter().map(|(f, _)| f.kind).collect();
    assert!(
        kinds.contains(&FindingKind::ServerError),
        "500 on a long device ID not found: {kinds:?}"
    );
    assert!(
        kinds.contains(&FindingKind::Dropped),
        "panic on a nested object not found: {kinds:?}"
    );
    assert!(
        kinds.contains(&FindingKind::Hang),
        "no time limit on a truncated body not found: {kinds:?}"
    );
    assert!(r.report.outcome.failed);
    for kind in [FindingKind::ServerError, FindingKind::Dropped] {
        let (repro, path) = r.findings.iter().find(|(f, _)| f.kind == kind).unwrap();
        assert!(path.exists());
        let back: live_fuzz::Reproducer =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let again = live_fuzz::replay(&target, &back, Duration::from_secs(15))
            .await
            .unwrap();
        assert!(
            again.is_some(),
            "{:?} did not replay: {}",
            kind,
            repro.detail
        );
    }
    srv.shutdown().await;
    // The same reproducers do not fire against the reference server.
    let d2 = tempfile::tempdir().unwrap();
    let honest = idprov::server::start(common::config(d2.path()))
        .await
        .unwrap();
    let t2 = idprov::check::embedded_target(&honest).unwrap();
    for (repro, _) in &r.findings {
        if repro.kind != FindingKind::Unhealthy {
            assert_eq!(
                live_fuzz::replay(&t2, repro, Duration::from_secs(15))
                    .await
                    .unwrap(),
                None,
                "{}",
                repro.detail
            );
        }
    }
    honest.shutdown().await;
}

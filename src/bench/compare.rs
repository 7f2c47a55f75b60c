//! Benchmarks for regression testing: a run against a baseline (exit 1 when
//! throughput falls, or p99 latency or server CPU per provisioning rises,
//! by more than a given percentage at a level measured in both), and several
//! runs side by side in one table and one HTML page.

use super::{BenchResult, LevelResult};
use std::fmt::Write as _;

/// One figure compared between two runs at one concurrency level.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Concurrency level.
    pub concurrency: usize,
    /// Which figure.
    pub figure: &'static str,
    /// Baseline value.
    pub old: f64,
    /// New value.
    pub new: f64,
    /// Change in percent (positive: larger).
    pub pct: f64,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
}

impl Change {
    /// Whether this change is a regression beyond `max_pct`.
    pub fn regressed(&self, max_pct: f64) -> bool {
        if self.higher_is_better {
            self.pct < -max_pct
        } else {
            self.pct > max_pct
        }
    }
}

fn pct(old: f64, new: f64) -> f64 {
    if old == 0.0 {
        0.0
    } else {
        (new - old) / old * 100.0
    }
}

/// Every figure of every level measured in both runs.
pub fn changes(old: &BenchResult, new: &BenchResult) -> Vec<Change> {
    let mut out = Vec::new();
    for n in &new.levels {
        let Some(o) = old.levels.iter().find(|o| o.concurrency == n.concurrency) else {
            continue;
        };
        let mut add = |figure, old: f64, new: f64, higher_is_better| {
            out.push(Change {
                concurrency: n.concurrency,
                figure,
                old,
                new,
                pct: pct(old, new),
                higher_is_better,
            })
        };
        add("provisions/s", o.per_second, n.per_second, true);
        add("p99 ms", o.p99_ms, n.p99_ms, false);
        if let (Some(a), Some(b)) = (o.server_cpu_us, n.server_cpu_us) {
            add("server µs/provisioning", a, b, false);
        }
    }
    out
}

/// The comparison as a table: old, new, change, and which figures regressed.
pub fn table(changes: &[Change], max_pct: f64) -> String {
    let mut s = format!(
        "{:>5}  {:<24} {:>12} {:>12} {:>9}\n",
        "conc", "figure", "baseline", "now", "change"
    );
    for c in changes {
        let _ = writeln!(
            s,
            "{:>5}  {:<24} {:>12.2} {:>12.2} {:>+8.1}%{}",
            c.concurrency,
            c.figure,
            c.old,
            c.new,
            c.pct,
            if c.regressed(max_pct) {
                format!("  REGRESSION (over {max_pct}%)")
            } else {
                String::new()
            }
        );
    }
    s
}

/// Several runs side by side (`idprov bench compare`): a table per level.
pub fn side_by_side(runs: &[(String, BenchResult)]) -> String {
    let mut levels: Vec<usize> = runs
        .iter()
        .flat_map(|(_, r)| r.levels.iter().map(|l| l.concurrency))
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>5}  {:<28} {:>10} {:>9} {:>9} {:>10}  errors",
        "conc", "run", "prov/s", "p50 ms", "p99 ms", "srv µs/op"
    );
    for c in levels {
        for (name, r) in runs {
            if let Some(l) = r.levels.iter().find(|l| l.concurrency == c) {
                let _ = writeln!(
                    s,
                    "{:>5}  {:<28} {:>10.1} {:>9.2} {:>9.2} {:>10}  {}",
                    c,
                    name,
                    l.per_second,
                    l.p50_ms,
                    l.p99_ms,
                    l.server_cpu_us
                        .map(|v| format!("{v:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    l.errors.values().sum::<usize>()
                );
            }
        }
    }
    s
}

/// The HTML page of `idprov bench compare`: both plots with one series per
/// run and a legend, and the side-by-side table.
pub fn html(runs: &[(String, BenchResult)]) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let series = |f: &dyn Fn(&LevelResult) -> f64| -> Vec<super::report::Series> {
        runs.iter()
            .map(|(name, r)| super::report::Series {
                name: name.clone(),
                points: r
                    .levels
                    .iter()
                    .map(|l| (l.concurrency as f64, f(l)))
                    .collect(),
            })
            .collect()
    };
    let limit = runs
        .iter()
        .find_map(|(_, r)| r.limits.ecdsa_p256_sign_per_s)
        .map(|v| ("openssl ECDSA P-256 sign/s (one per certificate)", v));
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>idprov bench compare</title><style>body{{font:14px system-ui,sans-serif;margin:1.5em}}pre{{background:#f6f6f6;padding:8px}}</style></head><body><h1>idprov bench compare</h1><p>{}</p>{}{}<pre>{}</pre></body></html>\n",
        runs.iter()
            .map(|(n, r)| format!("<code>{}</code>: {} ({})", esc(n), esc(&r.target), esc(&r.started)))
            .collect::<Vec<_>>()
            .join("<br>"),
        super::report::svg_plot(
            "throughput vs concurrency",
            "concurrency (devices at once, log scale)",
            "provisions per second",
            &series(&|l| l.per_second),
            false,
            limit,
        ),
        super::report::svg_plot(
            "p99 latency vs concurrency",
            "concurrency (devices at once, log scale)",
            "p99 latency, ms (log scale)",
            &series(&|l| l.p99_ms),
            true,
            None,
        ),
        esc(&side_by_side(runs))
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn level(c: usize, per_second: f64, p99: f64, cpu: f64) -> LevelResult {
        LevelResult {
            concurrency: c,
            devices: 100,
            provisioned: 100,
            seconds: 1.0,
            per_second,
            p50_ms: p99 / 2.0,
            p90_ms: p99 * 0.8,
            p99_ms: p99,
            max_ms: p99 * 1.2,
            errors: BTreeMap::new(),
            server_cpu_us: Some(cpu),
            server_cores: Some(1.0),
            server_peak_rss_kib: Some(1024),
            server_cpu_seconds: Some(cpu * 100.0 / 1e6),
            generator_cpu_us: None,
            generator_cpu_seconds: None,
            histogram: String::new(),
        }
    }

    pub(crate) fn run(levels: Vec<LevelResult>) -> BenchResult {
        BenchResult {
            target: "t".into(),
            fresh_tls: true,
            levels,
            limits: Default::default(),
            cpus: 2,
            started: "2026-11-28T00:00:00Z".into(),
            shard: None,
            merged_from: Vec::new(),
            crypto_floor: None,
            client_floor: None,
            stack_floor: Vec::new(),
        }
    }

    #[test]
    fn regressions_beyond_the_threshold_are_named() {
        let old = run(vec![
            level(1, 400.0, 5.0, 1000.0),
            level(8, 1500.0, 9.0, 600.0),
        ]);
        // 8: throughput -20 %, p99 +50 %; 1: within 10 %; 64 only in the new run.
        let new = run(vec![
            level(1, 380.0, 5.2, 1050.0),
            level(8, 1200.0, 13.5, 610.0),
            level(64, 1700.0, 50.0, 500.0),
        ]);
        let c = changes(&old, &new);
        assert_eq!(c.len(), 6, "levels measured in both only");
        let bad: Vec<(usize, &str)> = c
            .iter()
            .filter(|c| c.regressed(10.0))
            .map(|c| (c.concurrency, c.figure))
            .collect();
        assert_eq!(bad, [(8, "provisions/s"), (8, "p99 ms")]);
        assert!(table(&c, 10.0).contains("REGRESSION"));
        // An improvement is never a regression.
        let better = run(vec![level(1, 800.0, 2.0, 500.0)]);
        assert!(changes(&old, &better).iter().all(|c| !c.regressed(10.0)));
    }

    #[test]
    fn the_comparison_page_has_a_legend_and_valid_svg() {
        let a = run(vec![
            level(1, 400.0, 5.0, 1000.0),
            level(8, 1500.0, 9.0, 600.0),
        ]);
        let b = run(vec![
            level(1, 500.0, 4.0, 900.0),
            level(8, 1700.0, 8.0, 500.0),
        ]);
        let page = html(&[("before".into(), a), ("after".into(), b)]);
        assert!(page.contains(">before<") && page.contains(">after<"));
        assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    }
}

//! `idprov bench merge`: combines the bench.json files of load generators
//! that ran at the same time (`--shard I/N` each) into one result. Counts
//! are summed exactly; percentiles come from the merged latency histograms,
//! never from averaging percentiles.

use super::histogram::{self, HistogramError};
use super::{BenchResult, LevelResult, Shard};
use std::collections::BTreeMap;

/// Why runs cannot be merged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no runs to merge")]
    Empty,
    /// The runs did not measure the same thing.
    #[error("{0}")]
    Mismatch(String),
    /// A run's histogram is missing or unreadable.
    #[error("{file}: {source}")]
    Histogram {
        /// The run's file.
        file: String,
        /// What is wrong with it.
        source: HistogramError,
    },
}

/// What a merge noticed without refusing it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MergeNotes {
    /// Shards of `--shard I/N` that no input carries.
    pub missing_shards: Vec<Shard>,
    /// Inputs that did not run with `--shard` (their device IDs may have
    /// collided with another generator's).
    pub unsharded: Vec<String>,
}

fn check_shards(runs: &[(String, BenchResult)]) -> Result<MergeNotes, MergeError> {
    let mut notes = MergeNotes::default();
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    let mut count = None;
    for (name, r) in runs {
        let Some(s) = r.shard else {
            if r.merged_from.is_empty() {
                notes.unsharded.push(name.clone());
            }
            continue;
        };
        if *count.get_or_insert(s.count) != s.count {
            return Err(MergeError::Mismatch(format!(
                "{name} is shard {s}, another input is one of {} shards",
                count.unwrap_or(0)
            )));
        }
        if let Some(other) = seen.insert(s.index, name) {
            return Err(MergeError::Mismatch(format!(
                "shard {s} appears twice ({other} and {name}): its devices would be counted twice"
            )));
        }
    }
    if let Some(n) = count {
        notes.missing_shards = (1..=n)
            .filter(|i| !seen.contains_key(i))
            .map(|index| Shard { index, count: n })
            .collect();
    }
    Ok(notes)
}

fn merge_level(runs: &[(String, BenchResult)], k: usize) -> Result<LevelResult, MergeError> {
    let mut lat = histogram::new();
    // Provisioned is the merged histogram's count: each input's count is
    // checked against its own provisioned figure below.
    let (mut concurrency, mut devices, mut seconds) = (0, 0, 0f64);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut cpu: Option<f64> = Some(0.0);
    // Each generator is a process of its own: their CPU adds up.
    let mut generators: Option<f64> = Some(0.0);
    let mut rss: Option<u64> = None;
    for (name, r) in runs {
        let l = &r.levels[k];
        if l.histogram.is_empty() {
            if l.provisioned > 0 {
                return Err(MergeError::Histogram {
                    file: name.clone(),
                    source: HistogramError::from_text(
                        "no latency histogram (written before histograms): run it again",
                    ),
                });
            }
        } else {
            let h = histogram::decode(&l.histogram).map_err(|source| MergeError::Histogram {
                file: name.clone(),
                source,
            })?;
            if h.len() != l.provisioned as u64 {
                return Err(MergeError::Histogram {
                    file: name.clone(),
                    source: HistogramError::from_text(&format!(
                        "holds {} latencies for {} provisioned devices at concurrency {}",
                        h.len(),
                        l.provisioned,
                        l.concurrency
                    )),
                });
            }
            lat.add(h).map_err(|e| MergeError::Histogram {
                file: name.clone(),
                source: HistogramError::from_text(&format!("{e:?}")),
            })?;
        }
        concurrency += l.concurrency;
        devices += l.devices;
        // The generators ran side by side: the level took as long as the
        // slowest (a conservative rate if they did not start together).
        seconds = seconds.max(l.seconds);
        for (kind, n) in &l.errors {
            *errors.entry(kind.clone()).or_default() += n;
        }
        // One server watched by every generator: the windows overlap, so
        // the longest one holds the server's CPU time, not the sum.
        cpu = cpu.zip(l.server_cpu_seconds).map(|(a, b)| a.max(b));
        generators = generators.zip(l.generator_cpu_seconds).map(|(a, b)| a + b);
        rss = rss.max(l.server_peak_rss_kib);
    }
    LevelResult::from_latencies(concurrency, devices, seconds, &lat, errors, cpu, rss)
        .map(|l| l.with_generator_cpu(generators))
        .map_err(|source| MergeError::Histogram {
            file: "merged".into(),
            source,
        })
}

/// Merges runs (named by their files) level by level: the k-th level of
/// every run is one level of the merged result.
pub fn merge(runs: &[(String, BenchResult)]) -> Result<(BenchResult, MergeNotes), MergeError> {
    let (first_name, first) = runs.first().ok_or(MergeError::Empty)?;
    for (name, r) in runs {
        if r.fresh_tls != first.fresh_tls {
            return Err(MergeError::Mismatch(format!(
                "{first_name} and {name} differ in --reuse: one made a fresh TLS handshake per device"
            )));
        }
        if r.levels.len() != first.levels.len() {
            return Err(MergeError::Mismatch(format!(
                "{first_name} has {} concurrency levels, {name} has {}: run every generator with the same --concurrency",
                first.levels.len(),
                r.levels.len()
            )));
        }
    }
    let notes = check_shards(runs)?;
    let levels = (0..first.levels.len())
        .map(|k| merge_level(runs, k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut targets: Vec<&str> = runs.iter().map(|(_, r)| r.target.as_str()).collect();
    targets.dedup();
    let merged = BenchResult {
        target: targets.join(", "),
        fresh_tls: first.fresh_tls,
        levels,
        limits: first.limits.clone(),
        cpus: first.cpus,
        started: runs
            .iter()
            .map(|(_, r)| r.started.clone())
            .min()
            .unwrap_or_default(),
        shard: None,
        merged_from: runs.iter().map(|(n, _)| n.clone()).collect(),
        crypto_floor: first.crypto_floor.clone(),
        client_floor: first.client_floor.clone(),
        stack_floor: Vec::new(),
    };
    Ok((merged, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::compare::tests::run;

    fn level(c: usize, latencies_us: &[u64], errors: usize, cpu: Option<f64>) -> LevelResult {
        let mut h = histogram::new();
        for &v in latencies_us {
            h.saturating_record(v);
        }
        let mut errs = BTreeMap::new();
        if errors > 0 {
            errs.insert("provreq-timeout".to_string(), errors);
        }
        LevelResult {
            concurrency: c,
            devices: latencies_us.len() + errors,
            provisioned: latencies_us.len(),
            seconds: latencies_us.len() as f64 / 100.0,
            per_second: 100.0,
            p50_ms: histogram::ms_at(&h, 0.5),
            p90_ms: 0.0,
            p99_ms: histogram::ms_at(&h, 0.99),
            max_ms: histogram::max_ms(&h),
            errors: errs,
            server_cpu_us: None,
            server_cores: None,
            server_peak_rss_kib: Some(100),
            server_cpu_seconds: cpu,
            generator_cpu_us: None,
            generator_cpu_seconds: None,
            histogram: histogram::encode(&h).unwrap(),
        }
    }

    fn sharded(index: usize, count: usize, levels: Vec<LevelResult>) -> BenchResult {
        let mut r = run(levels);
        r.shard = Some(Shard { index, count });
        r
    }

    #[test]
    fn counts_are_summed_and_percentiles_come_from_the_merged_histogram() {
        // One fast generator, one slow one: averaging their p99s would give
        // 50.5 ms; the merged histogram knows half the devices took 100 ms.
        let a = sharded(1, 2, vec![level(4, &[1_000; 100], 2, Some(1.0))]);
        let b = sharded(2, 2, vec![level(4, &[100_000; 100], 1, Some(1.5))]);
        let (m, notes) = merge(&[("a.json".into(), a), ("b.json".into(), b)]).unwrap();
        assert_eq!(notes, MergeNotes::default());
        let l = &m.levels[0];
        assert_eq!((l.concurrency, l.devices, l.provisioned), (8, 203, 200));
        assert_eq!(l.errors.get("provreq-timeout"), Some(&3));
        assert!((l.p99_ms - 100.0).abs() < 0.1, "{}", l.p99_ms);
        assert!((l.p50_ms - 1.0).abs() < 0.01, "{}", l.p50_ms);
        assert_eq!(histogram::decode(&l.histogram).unwrap().len(), 200);
        assert_eq!(l.server_cpu_seconds, Some(1.5));
        assert_eq!(l.seconds, 1.0);
        assert_eq!(m.merged_from, ["a.json", "b.json"]);
        assert_eq!(m.shard, None);
    }

    #[test]
    fn refuses_what_would_count_twice_or_compare_unlike_runs() {
        let a = sharded(1, 2, vec![level(4, &[1_000; 10], 0, None)]);
        let dup = sharded(1, 2, vec![level(4, &[1_000; 10], 0, None)]);
        let e = merge(&[("a".into(), a.clone()), ("b".into(), dup)]).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        let other = sharded(2, 3, vec![level(4, &[1_000; 10], 0, None)]);
        assert!(merge(&[("a".into(), a.clone()), ("b".into(), other)]).is_err());
        let two_levels = sharded(2, 2, vec![level(4, &[1; 1], 0, None); 2]);
        assert!(merge(&[("a".into(), a.clone()), ("b".into(), two_levels)]).is_err());
        let mut reused = sharded(2, 2, vec![level(4, &[1_000; 10], 0, None)]);
        reused.fresh_tls = false;
        assert!(merge(&[("a".into(), a.clone()), ("b".into(), reused)]).is_err());
        let mut lying = sharded(2, 2, vec![level(4, &[1_000; 10], 0, None)]);
        lying.levels[0].provisioned = 11;
        let e = merge(&[("a".into(), a.clone()), ("b".into(), lying)]).unwrap_err();
        assert!(e.to_string().contains("holds 10 latencies"), "{e}");
        let mut old = sharded(2, 2, vec![level(4, &[1_000; 10], 0, None)]);
        old.levels[0].histogram.clear();
        assert!(merge(&[("a".into(), a), ("b".into(), old)]).is_err());
        assert!(matches!(merge(&[]), Err(MergeError::Empty)));
    }

    #[test]
    fn missing_shards_and_unsharded_inputs_are_noted() {
        let a = sharded(1, 3, vec![level(1, &[5; 3], 0, None)]);
        let c = sharded(3, 3, vec![level(1, &[5; 3], 0, None)]);
        let plain = run(vec![level(1, &[5; 3], 0, None)]);
        let (m, notes) = merge(&[("a".into(), a), ("c".into(), c), ("p".into(), plain)]).unwrap();
        assert_eq!(notes.missing_shards, [Shard { index: 2, count: 3 }]);
        assert_eq!(notes.unsharded, ["p"]);
        assert_eq!(m.levels[0].provisioned, 9);
        // One input without server figures: no server CPU in the merge.
        assert_eq!(m.levels[0].server_cpu_us, None);
    }
}

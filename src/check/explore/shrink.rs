//! Shrinking a diverging sequence (delta debugging over the operation
//! list): remove chunks, then single operations, then lower repeat counts,
//! keeping a candidate only when it is still well formed for the model and
//! still fails when re-run against the target with fresh device IDs.

use super::model::{well_formed, Auth, Caps, Key, Op};
use super::{diverges, SHRINK_RUNS};
use crate::check::report::{CaseResult, Verdict};
use crate::check::runner::RunContext;
use crate::check::{task_result, SetupError};
use std::sync::Arc;
use std::time::Duration;

/// Candidates one step smaller or simpler than `ops`: chunks removed (half
/// the length down to 2), neighbouring wrong guesses merged, requests
/// turned into plain wrong guesses, single operations removed, and each
/// `Wrong(n)` lowered by one.
fn candidates(ops: &[Op]) -> Vec<Vec<Op>> {
    let mut out = Vec::new();
    let removals = |n: usize, out: &mut Vec<Vec<Op>>| {
        let mut start = 0;
        while start < ops.len() {
            let mut c = ops[..start].to_vec();
            c.extend_from_slice(&ops[(start + n).min(ops.len())..]);
            if !c.is_empty() {
                out.push(c);
            }
            start += n;
        }
    };
    // Chunks first (big steps), then merges and simplifications, then
    // single operations.
    let mut n = ops.len() / 2;
    while n >= 2 {
        removals(n, &mut out);
        n /= 2;
    }
    let singles = {
        let mut v = Vec::new();
        removals(1, &mut v);
        v
    };
    // Two neighbouring failed-signature requests for one device become one
    // operation (`Wrong(a + b)`); any signed or unsigned request becomes a
    // plain wrong guess (simpler to read, and then mergeable).
    for i in 0..ops.len().saturating_sub(1) {
        if let (
            Op::Provision {
                dev: d1,
                auth: Auth::Wrong(a),
                key,
            },
            Op::Provision {
                dev: d2,
                auth: Auth::Wrong(b),
                ..
            },
        ) = (ops[i], ops[i + 1])
        {
            if d1 == d2 {
                let mut c = ops[..i].to_vec();
                c.push(Op::Provision {
                    dev: d1,
                    auth: Auth::Wrong(a + b),
                    key,
                });
                c.extend_from_slice(&ops[i + 2..]);
                out.push(c);
            }
        }
    }
    for (i, op) in ops.iter().enumerate() {
        if let Op::Provision { dev, auth, .. } = *op {
            if matches!(
                auth,
                Auth::Secret(_) | Auth::Unsigned | Auth::Sha256(_) | Auth::Reordered(_)
            ) {
                let mut c = ops.to_vec();
                c[i] = Op::Provision {
                    dev,
                    auth: Auth::Wrong(1),
                    key: Key::P256,
                };
                out.push(c);
            }
        }
    }
    out.extend(singles);
    for (i, op) in ops.iter().enumerate() {
        if let Op::Provision {
            auth: Auth::Wrong(k),
            dev,
            key,
        } = *op
        {
            if k > 1 {
                let mut c = ops.to_vec();
                c[i] = Op::Provision {
                    dev,
                    auth: Auth::Wrong(k - 1),
                    key,
                };
                out.push(c);
            }
        }
    }
    out
}

/// Shrinks `ops` (which failed as `first`) and returns the smallest failing
/// sequence found with its failing result. Candidates are tried `jobs` at
/// a time; the first failing one in candidate order wins, so the result
/// does not depend on scheduling.
pub(super) async fn shrink(
    ctx: &Arc<RunContext>,
    ops: &[Op],
    first: CaseResult,
    caps: Caps,
    seed: u64,
    timeout: Duration,
    jobs: usize,
) -> Result<(Vec<Op>, CaseResult), SetupError> {
    let mut cur = ops.to_vec();
    let mut last = first;
    let mut runs = 0;
    'outer: loop {
        let cands: Vec<Vec<Op>> = candidates(&cur)
            .into_iter()
            .filter(|c| well_formed(c, caps))
            .collect();
        for batch in cands.chunks(jobs.max(1)) {
            if runs >= SHRINK_RUNS {
                break 'outer;
            }
            let mut tasks = Vec::new();
            for c in batch {
                runs += 1;
                let (ctx, c, id) = (
                    ctx.clone(),
                    c.clone(),
                    format!("server.explore.shrink-{runs}"),
                );
                tasks.push(tokio::spawn(async move {
                    let r = diverges(&ctx, &id, &c, caps, seed, timeout).await;
                    (c, r)
                }));
            }
            let mut winner = None;
            for t in tasks {
                let (c, r) = task_result(t.await, "a shrinking run")?;
                if winner.is_none() && r.verdict == Verdict::Fail {
                    winner = Some((c, r));
                }
            }
            if let Some((c, r)) = winner {
                cur = c;
                last = r;
                continue 'outer;
            }
        }
        break;
    }
    Ok((cur, last))
}

#[cfg(test)]
mod tests {
    use super::super::model::Who;
    use super::*;

    #[test]
    fn candidates_are_smaller() {
        let ops = vec![
            Op::Status {
                dev: 0,
                by: Who::Admin,
            },
            Op::Provision {
                dev: 0,
                auth: Auth::Wrong(3),
                key: Key::P256,
            },
            Op::Wait,
        ];
        let c = candidates(&ops);
        assert!(c.iter().all(|c| c.len() < 3 || c != &ops));
        assert!(c.contains(&vec![ops[1], ops[2]]));
        assert!(c.contains(&vec![
            ops[0],
            Op::Provision {
                dev: 0,
                auth: Auth::Wrong(2),
                key: Key::P256,
            },
            ops[2]
        ]));
    }
}

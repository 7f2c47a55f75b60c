//! Shrinking a diverging sequence (delta debugging over the operation
//! list): remove chunks, then single operations, then lower repeat counts,
//! keeping a candidate only when it is still well formed for the model and
//! still fails when re-run against the target with fresh device IDs.

use super::model::{well_formed, Auth, Caps, Op};
use super::{diverges, SHRINK_RUNS};
use crate::check::report::{CaseResult, Verdict};
use crate::check::runner::RunContext;
use std::time::Duration;

/// Candidates one step smaller than `ops`: chunks of `n` removed, for `n`
/// from half the length down to 1, then each `Wrong(n)` lowered by one.
fn candidates(ops: &[Op]) -> Vec<Vec<Op>> {
    let mut out = Vec::new();
    let mut n = (ops.len() / 2).max(1);
    loop {
        let mut start = 0;
        while start < ops.len() {
            let mut c = ops[..start].to_vec();
            c.extend_from_slice(&ops[(start + n).min(ops.len())..]);
            if !c.is_empty() {
                out.push(c);
            }
            start += n;
        }
        if n == 1 {
            break;
        }
        n /= 2;
    }
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
/// sequence found with its failing result.
pub(super) async fn shrink(
    ctx: &RunContext,
    ops: &[Op],
    first: CaseResult,
    caps: Caps,
    seed: u64,
    timeout: Duration,
) -> (Vec<Op>, CaseResult) {
    let mut cur = ops.to_vec();
    let mut last = first;
    let mut runs = 0;
    'outer: loop {
        for c in candidates(&cur) {
            if runs >= SHRINK_RUNS {
                break 'outer;
            }
            if !well_formed(&c, caps) {
                continue;
            }
            runs += 1;
            let r = diverges(
                ctx,
                &format!("server.explore.shrink-{runs}"),
                &c,
                caps,
                seed,
                timeout,
            )
            .await;
            if r.verdict == Verdict::Fail {
                cur = c;
                last = r;
                continue 'outer;
            }
        }
        break;
    }
    (cur, last)
}

#[cfg(test)]
mod tests {
    use super::super::model::{Key, Who};
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

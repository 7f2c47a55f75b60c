//! Shrinking a diverging sequence (delta debugging over the operation
//! list): remove chunks, then single operations, then lower repeat counts,
//! keeping a candidate only when it is still well formed for the model and
//! still fails when re-run against the target with fresh device IDs.

use super::model::{well_formed, Auth, Caps, Item, Key, Op};
use super::{diverges, SHRINK_RUNS};
use crate::check::report::{CaseResult, Verdict};
use crate::check::runner::RunContext;
use crate::check::{task_result, SetupError};
use std::sync::Arc;
use std::time::Duration;

/// Candidates one step smaller or simpler than `items`: chunks removed
/// (half the length down to 2), neighbouring wrong guesses merged,
/// requests turned into plain wrong guesses, groups cut by one member or
/// sent one after another, single entries removed, and each `Wrong(n)`
/// lowered by one.
fn candidates(items: &[Item]) -> Vec<Vec<Item>> {
    let mut out = Vec::new();
    let removals = |n: usize, out: &mut Vec<Vec<Item>>| {
        let mut start = 0;
        while start < items.len() {
            let mut c = items[..start].to_vec();
            c.extend_from_slice(&items[(start + n).min(items.len())..]);
            if !c.is_empty() {
                out.push(c);
            }
            start += n;
        }
    };
    let replaced = |i: usize, with: Vec<Item>| {
        let mut c = items[..i].to_vec();
        c.extend(with);
        c.extend_from_slice(&items[i + 1..]);
        c
    };
    // Chunks first (big steps), then merges and simplifications, then
    // single entries.
    let mut n = items.len() / 2;
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
    for i in 0..items.len().saturating_sub(1) {
        if let (
            Item::One(Op::Provision {
                dev: d1,
                auth: Auth::Wrong(a),
                key,
            }),
            Item::One(Op::Provision {
                dev: d2,
                auth: Auth::Wrong(b),
                ..
            }),
        ) = (&items[i], &items[i + 1])
        {
            if d1 == d2 {
                let mut c = items[..i].to_vec();
                c.push(Item::One(Op::Provision {
                    dev: *d1,
                    auth: Auth::Wrong(a + b),
                    key: *key,
                }));
                c.extend_from_slice(&items[i + 2..]);
                out.push(c);
            }
        }
    }
    for (i, item) in items.iter().enumerate() {
        if let Item::One(Op::Provision { dev, auth, .. }) = *item {
            if matches!(
                auth,
                Auth::Secret(_) | Auth::Unsigned | Auth::Sha256(_) | Auth::Reordered(_)
            ) {
                out.push(replaced(
                    i,
                    vec![Item::One(Op::Provision {
                        dev,
                        auth: Auth::Wrong(1),
                        key: Key::P256,
                    })],
                ));
            }
        }
    }
    // A group loses one member (two become one request on its own), or
    // its members go one after another.
    for (i, item) in items.iter().enumerate() {
        if let Item::Together(ops) = item {
            for k in 0..ops.len() {
                let mut rest = ops.clone();
                rest.remove(k);
                let smaller = match rest.as_slice() {
                    [one] => Item::One(*one),
                    _ => Item::Together(rest),
                };
                out.push(replaced(i, vec![smaller]));
            }
            out.push(replaced(i, ops.iter().map(|o| Item::One(*o)).collect()));
        }
    }
    out.extend(singles);
    for (i, item) in items.iter().enumerate() {
        if let Item::One(Op::Provision {
            auth: Auth::Wrong(k),
            dev,
            key,
        }) = *item
        {
            if k > 1 {
                out.push(replaced(
                    i,
                    vec![Item::One(Op::Provision {
                        dev,
                        auth: Auth::Wrong(k - 1),
                        key,
                    })],
                ));
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
    ops: &[Item],
    first: CaseResult,
    caps: Caps,
    seed: u64,
    timeout: Duration,
    jobs: usize,
) -> Result<(Vec<Item>, CaseResult), SetupError> {
    let mut cur = ops.to_vec();
    let mut last = first;
    let mut runs = 0;
    'outer: loop {
        let cands: Vec<Vec<Item>> = candidates(&cur)
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
        let wrong = |n| {
            Item::One(Op::Provision {
                dev: 0,
                auth: Auth::Wrong(n),
                key: Key::P256,
            })
        };
        let status = Item::One(Op::Status {
            dev: 0,
            by: Who::Admin,
        });
        let items = vec![status.clone(), wrong(3), Item::One(Op::Wait)];
        let c = candidates(&items);
        assert!(c.iter().all(|c| c.len() < 3 || c != &items));
        assert!(c.contains(&vec![items[1].clone(), items[2].clone()]));
        assert!(c.contains(&vec![status.clone(), wrong(2), items[2].clone()]));
    }

    #[test]
    fn groups_shrink_by_a_member_or_into_a_sequence() {
        let p = |dev| Op::Provision {
            dev,
            auth: Auth::Secret(0),
            key: Key::P256,
        };
        let items = vec![Item::Together(vec![p(0), p(0), p(1)])];
        let c = candidates(&items);
        assert!(c.contains(&vec![Item::Together(vec![p(0), p(1)])]));
        assert!(c.contains(&vec![Item::Together(vec![p(0), p(0)])]));
        assert!(c.contains(&vec![Item::One(p(0)), Item::One(p(0)), Item::One(p(1))]));
        let two = candidates(&[Item::Together(vec![p(0), p(1)])]);
        assert!(two.contains(&vec![Item::One(p(1))]));
    }
}

//! Model-based exploration (`idprov check server --explore`): random
//! operation sequences over the server side of PROTOCOL §4–§8, each run as
//! a scenario whose expectations the reference [`model`] derives, so every
//! answer is judged by the model and by the checks every case makes
//! (certificate profile, serial ledger, signatures). The first sequence
//! that diverges is shrunk — operations removed while the shrunk sequence,
//! re-run against the target with fresh device IDs, still fails — and
//! written out as a ready scenario file.

pub mod model;
mod shrink;

use super::report::{CaseResult, Exchange, Verdict};
use super::runner::{run_case, RunContext};
use super::scenario::{Level, Role, Scenario};
use super::{task_result, SetupError};
use model::{Auth, Bad, Caps, Item, Key, Model, Op, Valid, Who, DEVICES, MAX_GROUP, SECRETS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much exploring to do: it stops at whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Operations to try in all.
    pub ops: usize,
    /// Wall-clock time for the random phase (shrinking has its own bound).
    pub time: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            ops: 400,
            time: Duration::from_secs(60),
        }
    }
}

/// Shrinking runs at most this many candidate sequences.
pub const SHRINK_RUNS: usize = 160;

/// The rules the model covers (every explored case cites them).
pub const RULES: &[&str] = &[
    "oob.auth",
    "oob.valid-until",
    "oob.repost",
    "oob.one-time",
    "provreq.approved",
    "provreq.waiting",
    "provreq.rejected",
    "decision.admin",
    "decision.renewal",
    "decision.no-authority",
    "decision.guess-limit",
    "decision.issue",
    "status.auth",
    "status.latest",
    "provreq.serial",
    "cert.profile",
    "transport.concurrency",
];

/// What exploring found.
#[derive(Debug)]
pub struct Explored {
    /// Report cases: `server.explore.1` for a divergence, or
    /// `server.explore.no-divergence` when there was none.
    pub case: CaseResult,
    /// The ready scenario file for a divergence (its id is the case's).
    pub scenario_toml: Option<String>,
    /// Operations tried in the random phase.
    pub ops_tried: usize,
    /// Sequences run in the random phase.
    pub sequences: usize,
}

/// The target's capabilities as the alphabet sees them.
pub fn caps_of(ctx: &RunContext) -> Caps {
    let has = |c: &str| ctx.capabilities.contains(c);
    Caps {
        plugin: has("plugin"),
        ca_key: has("ca-key"),
        ed25519: has("ed25519"),
        rsa: has("rsa"),
        csr: has("csr"),
    }
}

fn pick<T: Copy>(rng: &mut ChaCha20Rng, weighted: &[(u32, T)]) -> T {
    let total: u32 = weighted.iter().map(|(w, _)| w).sum();
    let mut x = rng.gen_range(0..total.max(1));
    for (w, t) in weighted {
        if x < *w {
            return *t;
        }
        x -= w;
    }
    weighted[0].1
}

/// What the generator remembers to tell stories rather than noise: the
/// device it last touched, the secret last posted for each device, and the
/// secret each device last used.
#[derive(Default)]
struct Story {
    last_dev: Option<usize>,
    posted: [Option<usize>; 8],
    used: [Option<usize>; 8],
    /// A near `validUntil` was posted: waiting past it becomes likely.
    near: bool,
    /// The secret posted last, for any device.
    last_posted: Option<usize>,
}

/// A swarm configuration (Groce et al., "Swarm testing"): each sequence
/// draws from a random subset of the alphabet — some devices, some kinds
/// of operation, some ways to authorise — so that the few features it
/// does use meet each other often.
struct Swarm {
    devices: Vec<usize>,
    kinds: [u32; 5],
    auths: [u32; 10],
    /// Percent of the entries that are groups sent together.
    together: u32,
}

impl Swarm {
    fn draw(rng: &mut ChaCha20Rng) -> Self {
        let mut devices: Vec<usize> = (0..DEVICES.len()).filter(|_| rng.gen_bool(0.5)).collect();
        if devices.is_empty() {
            devices.push(rng.gen_range(0..DEVICES.len()));
        }
        let mut on = |w: u32| if rng.gen_bool(0.5) { w } else { 0 };
        // Posting, provisioning and status are always on; the rest by the
        // coin.
        let kinds = [30, 48, 12, on(8), on(5)];
        // Signing right and wrong, renewal and another device's certificate
        // are always on: the guess counter, the secret's life and who may
        // renew are where sequences matter most.
        let auths = [40, 22, on(4), on(4), on(4), on(7), on(3), 12, 6, on(3)];
        // Half the sequences send some of their requests together.
        let together = if rng.gen_bool(0.5) { 25 } else { 0 };
        Swarm {
            devices,
            kinds,
            auths,
            together,
        }
    }
}

/// One random operation that is applicable in `m`'s state. Choices lean
/// towards the device just used and the secrets it was given or used, so
/// that sequences revisit state (a secret used twice, a renewal after a
/// provisioning) far more often than uniform choice would.
fn random_op(
    rng: &mut ChaCha20Rng,
    m: &Model,
    waited: bool,
    story: &mut Story,
    swarm: &Swarm,
) -> Op {
    let nd = DEVICES.len();
    for _ in 0..64 {
        let any_dev = |rng: &mut ChaCha20Rng| swarm.devices[rng.gen_range(0..swarm.devices.len())];
        let dev = match story.last_dev {
            Some(d) if rng.gen_bool(0.6) => d,
            _ => any_dev(rng),
        };
        let secret = match (story.posted[dev], story.used[dev], rng.gen_range(0..10)) {
            (Some(k), _, 0..=5) => k,
            (_, Some(k), 6..=7) => k,
            _ => match story.last_posted {
                // The same value for another device, now and then.
                Some(k) if rng.gen_bool(0.3) => k,
                _ => rng.gen_range(0..SECRETS.len()),
            },
        };
        let other = if rng.gen_bool(0.8) {
            any_dev(rng)
        } else {
            rng.gen_range(0..nd)
        };
        let wrong = rng.gen_range(1..=4);
        let by = pick(
            rng,
            &[
                (70, Who::Admin),
                (10, Who::Plugin),
                (8, Who::Nobody),
                (12, Who::Device(other)),
            ],
        );
        let k = swarm.kinds;
        let kind = pick(
            rng,
            &[
                (k[0], 0u8),
                (k[1], 1),
                (k[2], 2),
                (
                    // A near expiry makes waiting past it likely, whatever
                    // the swarm says.
                    match (waited, story.near) {
                        (true, _) => 0,
                        (false, true) => 20,
                        (false, false) => k[3],
                    },
                    3,
                ),
                (k[4], 4),
            ],
        );
        let a = swarm.auths;
        let op = match kind {
            0 => Op::Post {
                by,
                dev,
                secret,
                valid: pick(
                    rng,
                    &[
                        (50, Valid::Absent),
                        (20, Valid::Far),
                        (20, Valid::Near),
                        (10, Valid::Past),
                    ],
                ),
            },
            1 => Op::Provision {
                dev,
                auth: pick(
                    rng,
                    &[
                        (a[0], Auth::Secret(secret)),
                        (a[1], Auth::Wrong(wrong)),
                        (a[2], Auth::Unsigned),
                        (a[3], Auth::Sha256(secret)),
                        (a[4], Auth::Reordered(secret)),
                        (a[5], Auth::Cert(Who::Admin)),
                        (a[6], Auth::Cert(Who::Plugin)),
                        (a[7], Auth::Own),
                        (a[8], Auth::OtherDevice(other)),
                        (a[9], Auth::Expired),
                    ],
                ),
                key: pick(
                    rng,
                    &[
                        (65, Key::P256),
                        (8, Key::Ed25519),
                        (8, Key::Rsa2048),
                        (9, Key::P256Csr),
                        // Every operation each way: a renewal, an admin
                        // provisioning or a secret used with the key the
                        // device already has a certificate for.
                        (10, Key::Same),
                    ],
                ),
            },
            2 => Op::Status { dev, by },
            3 => Op::Wait,
            _ => Op::Malformed {
                dev,
                bad: pick(
                    rng,
                    &[
                        (1, Bad::LongId),
                        (1, Bad::SlashId),
                        (1, Bad::EmptySecret),
                        (1, Bad::GarbageValidUntil),
                        (1, Bad::WeakKey),
                        (1, Bad::WrongMethod),
                        (1, Bad::HugeBody),
                        (1, Bad::BadCsr),
                        (1, Bad::NestedObject),
                    ],
                ),
            },
        };
        if m.applicable(&op) {
            story.last_dev = Some(dev);
            match op {
                Op::Post {
                    dev, secret, valid, ..
                } => {
                    story.posted[dev] = Some(secret);
                    story.last_posted = Some(secret);
                    story.near |= valid == Valid::Near;
                }
                Op::Provision {
                    dev,
                    auth: Auth::Secret(k),
                    ..
                } => story.used[dev] = Some(k),
                _ => {}
            }
            return op;
        }
    }
    Op::Status {
        dev: 0,
        by: Who::Admin,
    }
}

/// Requests to send together, applicable in `m`'s state: copies of one
/// request (the same secret raced, wrong guesses racing the counter, reads
/// racing writes) or a mix the story draws; `None` when no group fits.
fn random_group(
    rng: &mut ChaCha20Rng,
    m: &Model,
    story: &mut Story,
    swarm: &Swarm,
) -> Option<Vec<Op>> {
    let n = rng.gen_range(2..=MAX_GROUP);
    let single = |op: Op| match op {
        Op::Provision {
            dev,
            auth: Auth::Wrong(_),
            key,
        } => Op::Provision {
            dev,
            auth: Auth::Wrong(1),
            key,
        },
        other => other,
    };
    for _ in 0..16 {
        let ops: Vec<Op> = if rng.gen_bool(0.6) {
            let dev = story
                .last_dev
                .unwrap_or_else(|| swarm.devices[rng.gen_range(0..swarm.devices.len())]);
            let auth = match (story.posted[dev], rng.gen_range(0..10)) {
                (Some(k), 0..=3) => Auth::Secret(k),
                (_, 4..=7) => Auth::Wrong(1),
                _ => Auth::Own,
            };
            let op = if rng.gen_bool(0.85) {
                Op::Provision {
                    dev,
                    auth,
                    key: Key::P256,
                }
            } else {
                Op::Status {
                    dev,
                    by: Who::Admin,
                }
            };
            vec![op; n]
        } else {
            (0..n)
                .map(|_| single(random_op(rng, m, true, story, swarm)))
                .collect()
        };
        if m.groupable(&ops) {
            return Some(ops);
        }
    }
    None
}

/// A random sequence of `len` entries (at most one wait) under a fresh
/// swarm configuration.
pub fn random_sequence(rng: &mut ChaCha20Rng, caps: Caps, len: usize) -> Vec<Item> {
    let swarm = Swarm::draw(rng);
    let mut m = Model::new(caps);
    let mut items = Vec::with_capacity(len);
    let mut waited = false;
    let mut story = Story::default();
    for _ in 0..len {
        let group = (rng.gen_range(0..100) < swarm.together)
            .then(|| random_group(rng, &m, &mut story, &swarm))
            .flatten();
        let item = match group {
            Some(ops) => Item::Together(ops),
            None => Item::One(random_op(rng, &m, waited, &mut story, &swarm)),
        };
        waited |= item == Item::One(Op::Wait);
        m.steps(&item);
        items.push(item);
    }
    items
}

/// The scenario for a sequence under `id`.
pub fn scenario(id: &str, ops: &[Item], caps: Caps, seed: u64, origin: &str) -> Scenario {
    let listing: Vec<String> = ops
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{}. {o}", i + 1))
        .collect();
    Scenario {
        id: id.to_string(),
        title: format!(
            "An operation sequence found by exploration ({} operations) is answered as the profile says",
            ops.len()
        ),
        section: "PROTOCOL §4".into(),
        level: Level::Must,
        role: Role::Server,
        rules: RULES.iter().map(|r| r.to_string()).collect(),
        rationale: "Bugs in servers live in sequences: state that leaks between devices, counters reset when they should not be, a consumed secret that comes back. The expectations are the reference model's.".into(),
        fix: "Follow PROTOCOL §4–§7 for each operation in the order given; the evidence shows the first answer the profile does not allow.".into(),
        requires: Vec::new(),
        exclusive: ops.contains(&Item::One(Op::Wait)),
        near_miss: None,
        description: format!(
            "{origin} (seed {seed}). Operations: {}",
            listing.join("; ")
        ),
        steps: model::render(ops, caps),
    }
}

/// Whether `ops` diverges on the target: the case it renders to fails.
async fn diverges(
    ctx: &RunContext,
    id: &str,
    ops: &[Item],
    caps: Caps,
    seed: u64,
    timeout: Duration,
) -> CaseResult {
    let sc = scenario(id, ops, caps, seed, "run");
    // A sequence that waits moves the target's clock when the suite can
    // (the case is exclusive): it runs alone, so that no other sequence
    // sees time jump under it; the others share the gate.
    if sc.exclusive && ctx.target.clock.is_some() {
        let _alone = ctx.clock_gate.write().await;
        run_case(&sc, ctx, timeout).await
    } else {
        let _shared = ctx.clock_gate.read().await;
        run_case(&sc, ctx, timeout).await
    }
}

/// Counts a finished sequence and keeps it if it diverged.
fn tally(
    (n, ops, r): (usize, Vec<Item>, CaseResult),
    ops_tried: &mut usize,
    sequences: &mut usize,
    diverged: &mut Vec<(usize, Vec<Item>, CaseResult)>,
    bar: &indicatif::ProgressBar,
) {
    let n_ops: usize = ops.iter().map(|i| i.ops().len()).sum();
    *ops_tried += n_ops;
    *sequences += 1;
    bar.inc(n_ops as u64);
    if r.verdict == Verdict::Fail {
        bar.set_message("divergence; finishing the sequences in flight");
        diverged.push((n, ops, r));
    }
}

/// Entries as one line, `; `-separated.
fn joined(ops: &[Item]) -> String {
    ops.iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Explores the target within `budget` and reports the first divergence,
/// shrunk, or that there was none.
pub async fn explore(
    ctx: Arc<RunContext>,
    budget: Budget,
    seed: u64,
    jobs: usize,
    timeout: Duration,
    progress: bool,
) -> Result<Explored, SetupError> {
    let caps = caps_of(&ctx);
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x6578_706c_6f72_6521);
    let started = Instant::now();
    let bar = crate::progress::bar(
        budget.ops as u64,
        progress,
        "explore [{bar:30}] {pos}/{len} operations · {msg}",
    );
    let mut ops_tried = 0;
    let mut sequences = 0;
    let mut run_no = 0usize;
    // Sequences run `jobs` at a time as a pool, spawned in order; after a
    // divergence no new one starts, those in flight finish, and the
    // lowest-numbered divergence wins — every lower-numbered sequence has
    // run by then, so the result does not depend on scheduling.
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    let mut planned = 0usize;
    let mut diverged: Vec<(usize, Vec<Item>, CaseResult)> = Vec::new();
    loop {
        let over = planned >= budget.ops
            || started.elapsed() >= budget.time
            || stop.load(std::sync::atomic::Ordering::Relaxed);
        if over {
            break;
        }
        let len = rng.gen_range(8..=18);
        let ops = random_sequence(&mut rng, caps, len);
        planned += ops.iter().map(|i| i.ops().len()).sum::<usize>();
        run_no += 1;
        let (ctx, sem, stop, n) = (ctx.clone(), sem.clone(), stop.clone(), run_no);
        let permit = sem.acquire_owned().await;
        set.spawn(async move {
            let _p = permit;
            let id = format!("server.explore.seq-{n}");
            let r = diverges(&ctx, &id, &ops, caps, seed, timeout).await;
            if r.verdict == Verdict::Fail {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            (n, ops, r)
        });
        while let Some(done) = set.try_join_next() {
            let done = task_result(done, "an exploration sequence")?;
            tally(done, &mut ops_tried, &mut sequences, &mut diverged, &bar);
        }
    }
    while let Some(done) = set.join_next().await {
        let done = task_result(done, "an exploration sequence")?;
        tally(done, &mut ops_tried, &mut sequences, &mut diverged, &bar);
    }
    diverged.sort_by_key(|(n, _, _)| *n);
    let found = diverged.into_iter().next().map(|(_, ops, r)| (ops, r));
    bar.finish_and_clear();
    let Some((original, first)) = found else {
        let mut case = CaseResult::new(&scenario(
            "server.explore.no-divergence",
            &[],
            caps,
            seed,
            "exploration",
        ));
        case.title =
            "Random operation sequences are answered as the reference model predicts".into();
        case.verdict = Verdict::Pass;
        case.detail = format!(
            "{ops_tried} operations in {sequences} sequences (seed {seed}, {:.1} s): no divergence from the model",
            started.elapsed().as_secs_f64()
        );
        case.ms = started.elapsed().as_millis() as u64;
        return Ok(Explored {
            case,
            scenario_toml: None,
            ops_tried,
            sequences,
        });
    };
    let (shrunk, last) = shrink::shrink(&ctx, &original, first, caps, seed, timeout, jobs).await?;
    let id = "server.explore.1";
    let sc = scenario(
        id,
        &shrunk,
        caps,
        seed,
        &format!(
            "Found by `idprov check server --explore --seed {seed}` after {ops_tried} operations; shrunk from {} to {} operations",
            original.len(),
            shrunk.len()
        ),
    );
    let toml = toml::to_string(&sc).unwrap_or_default();
    let mut case = CaseResult::new(&sc);
    case.verdict = Verdict::Fail;
    case.detail = format!(
        "diverged from the model after {ops_tried} operations in {sequences} sequences (seed {seed}); shrunk from {} to {} operations: {} — {}",
        original.len(),
        shrunk.len(),
        joined(&shrunk),
        last.detail
    );
    case.evidence = last.evidence;
    case.evidence.push(Exchange::note(
        0,
        format!(
            "original sequence ({} operations): {}",
            original.len(),
            joined(&original)
        ),
    ));
    case.devices = last.devices;
    case.ms = started.elapsed().as_millis() as u64;
    Ok(Explored {
        case,
        scenario_toml: Some(toml),
        ops_tried,
        sequences,
    })
}

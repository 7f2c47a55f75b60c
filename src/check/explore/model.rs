//! The reference model the explorer judges a server by: an abstract
//! alphabet of operations over PROTOCOL §4–§8 and, for every sequence, the
//! set of answers the profile allows at each step. Pure and deterministic.
//!
//! The model is nondeterministic where the profile is: it keeps the *set*
//! of server states the profile allows (e.g. an admin provisioning may
//! keep or discard a device's posted secret) and predicts the union of
//! their answers, so an implementation choice is never called a
//! divergence. [`OPEN_CHOICES`] lists those choices.

use crate::check::scenario::{
    Action, Credential, CsrSpec, EndpointSpec, Expect, HmacKey, KeySpec, RequestForm, StatusSpec,
    Step, ValidUntilSpec,
};
use crate::core::decision::DEFAULT_GUESS_LIMIT;
use std::collections::BTreeSet;
use std::fmt;

/// Device symbols: two distinct devices and near-duplicates of the first
/// (its ID in upper case, with a trailing dot), which a server must keep
/// apart byte for byte.
pub const DEVICES: &[&str] = &["a", "b", "a^upper", "a^dot"];
/// Secret symbols: the same symbol is the same secret value, whichever
/// device it is posted for.
pub const SECRETS: &[&str] = &["s0", "s1", "s2"];
/// How long a "near" `validUntil` lasts (seconds), and how long [`Op::Wait`]
/// waits (milliseconds): the wait outlasts a near secret by a margin that
/// absorbs the time the requests take.
pub const NEAR_SECS: u64 = 3;
/// See [`NEAR_SECS`].
pub const WAIT_MS: u64 = 4_500;

/// Where the profile lets a server choose; the model allows each way.
pub const OPEN_CHOICES: &[(&str, &str)] = &[
    (
        "secret after an admin, plugin or renewal approval",
        "PROTOCOL §5 says what consumes a secret (an approval by that secret) but not whether an approval by a certificate leaves a posted secret in place; both are allowed",
    ),
    (
        "401 or 403",
        "which of the two a request without the right role gets is a SHOULD (oob.auth-codes); either is allowed, any other status is a divergence",
    ),
    (
        "fields in another order, an extra member",
        "verifying over the received bytes is a SHOULD (hmac.raw-blanking): such a request may be Approved or Rejected, and a rejection counts as a failed guess",
    ),
    (
        "optional key types",
        "Ed25519 and RSA-2048 keys are used only when the target declares them (provreq.key-optional)",
    ),
    (
        "a near secret before the wait",
        "the model has no clock: a secret posted 3 s ahead may already have expired on a slow run, so Waiting is allowed beside the live answer; after a wait, expired is the only answer",
    ),
];

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    /// The admin credential.
    Admin,
    /// The plugin credential.
    Plugin,
    /// No client certificate.
    Nobody,
    /// The certificate last issued to this device.
    Device(usize),
}

/// `validUntil` of an OOB post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Valid {
    /// Empty: the default life (3 days).
    Absent,
    /// An hour ahead.
    Far,
    /// [`NEAR_SECS`] ahead: expires at the next [`Op::Wait`].
    Near,
    /// In the past: refused.
    Past,
}

/// How a provisioning request is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Auth {
    /// Signed with a secret symbol (raw key, Go's field order).
    Secret(usize),
    /// Signed with a secret, fields reordered plus an extra member.
    Reordered(usize),
    /// Signed with SHA-256 of a secret (the profile's wrong key).
    Sha256(usize),
    /// No signature.
    Unsigned,
    /// `n` requests signed with secrets never posted.
    Wrong(u32),
    /// The admin or plugin credential, unsigned.
    Cert(Who),
    /// The device's own certificate (a renewal), unsigned.
    Own,
    /// Another device's certificate, unsigned: no authority.
    OtherDevice(usize),
    /// The device's certificate, expired: no authority (needs the CA key).
    Expired,
}

/// A key type the request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// ECDSA P-256 (required).
    P256,
    /// Ed25519 (capability `ed25519`).
    Ed25519,
    /// RSA 2048 (capability `rsa`).
    Rsa2048,
    /// P-256 with a valid CSR (capability `csr`).
    P256Csr,
    /// The key of the device's latest certificate, kept (PROTOCOL §5 lets
    /// a renewal keep its key).
    Same,
}

/// Malformed requests: refused whatever the state, and changing nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bad {
    /// A device ID of 2,000 characters → 400.
    LongId,
    /// A device ID with a slash → 400.
    SlashId,
    /// An empty OOB secret → 400.
    EmptySecret,
    /// A `validUntil` that is not a time → 400.
    GarbageValidUntil,
    /// An RSA-1024 key → 400.
    WeakKey,
    /// GET on the provisioning endpoint → 405.
    WrongMethod,
    /// A 1 MiB body → 413.
    HugeBody,
    /// A CSR whose signature is broken → 400 (capability `csr`).
    BadCsr,
    /// A nested object member → any 2xx or 4xx, never 5xx.
    NestedObject,
}

/// One operation of the abstract alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Post secret `secret` for `dev`.
    Post {
        /// Sender.
        by: Who,
        /// Device index into [`DEVICES`].
        dev: usize,
        /// Secret index into [`SECRETS`].
        secret: usize,
        /// Its `validUntil`.
        valid: Valid,
    },
    /// A provisioning request for `dev`.
    Provision {
        /// Device.
        dev: usize,
        /// Authorisation.
        auth: Auth,
        /// Key type.
        key: Key,
    },
    /// Read `dev`'s status.
    Status {
        /// Device.
        dev: usize,
        /// Reader.
        by: Who,
    },
    /// Wait [`WAIT_MS`]: every near secret expires.
    Wait,
    /// A malformed request for `dev`.
    Malformed {
        /// Device.
        dev: usize,
        /// What is wrong.
        bad: Bad,
    },
}

fn who(w: Who) -> Credential {
    match w {
        Who::Admin => Credential::Admin,
        Who::Plugin => Credential::Plugin,
        Who::Nobody => Credential::Nobody,
        Who::Device(d) => Credential::Device(DEVICES[d].to_string()),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Post {
                by,
                dev,
                secret,
                valid,
            } => write!(
                f,
                "post {} for {} as {} (validUntil {valid:?})",
                SECRETS[secret],
                DEVICES[dev],
                who(by)
            ),
            Op::Provision { dev, auth, key } => {
                let a = match auth {
                    Auth::Secret(s) => format!("signed with {}", SECRETS[s]),
                    Auth::Reordered(s) => format!("reordered, signed with {}", SECRETS[s]),
                    Auth::Sha256(s) => format!("signed with SHA-256({})", SECRETS[s]),
                    Auth::Unsigned => "unsigned".into(),
                    Auth::Wrong(n) => format!("{n}× signed with a wrong secret"),
                    Auth::Cert(w) => format!("as {}", who(w)),
                    Auth::Own => "renewal with its own certificate".into(),
                    Auth::OtherDevice(o) => format!("as device:{}", DEVICES[o]),
                    Auth::Expired => "with its expired certificate".into(),
                };
                write!(f, "provision {} {a} ({key:?})", DEVICES[dev])
            }
            Op::Status { dev, by } => write!(f, "status of {} as {}", DEVICES[dev], who(by)),
            Op::Wait => write!(f, "wait {WAIT_MS} ms"),
            Op::Malformed { dev, bad } => write!(f, "malformed {bad:?} for {}", DEVICES[dev]),
        }
    }
}

/// Most requests sent together in one group.
pub const MAX_GROUP: usize = 4;

/// One entry of an explored sequence: an operation on its own, or
/// requests sent at once (a concurrent group), which pass when some order
/// of them explains every answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    /// One operation, answered before the next starts.
    One(Op),
    /// Operations in flight at once: each one request (a post, a
    /// provisioning request with at most one wrong guess, or a status read).
    Together(Vec<Op>),
}

impl Item {
    /// The operations it makes, in order.
    pub fn ops(&self) -> &[Op] {
        match self {
            Item::One(op) => std::slice::from_ref(op),
            Item::Together(ops) => ops,
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::One(op) => op.fmt(f),
            Item::Together(ops) => {
                let shown: Vec<String> = ops.iter().map(ToString::to_string).collect();
                write!(f, "together [{}]", shown.join(" ‖ "))
            }
        }
    }
}

/// Every order of `n` items (Heap's algorithm), `n` at most [`MAX_GROUP`].
fn orders(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, a, out);
            let j = if k % 2 == 0 { i } else { 0 };
            a.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(n, &mut (0..n).collect(), &mut out);
    out
}

/// A posted secret as the server holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Held {
    secret: usize,
    near: bool,
    expired: bool,
    failures: u32,
}

/// One device's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
struct Dev {
    held: Option<Held>,
    certs: u32,
    /// The suite holds the private key of the latest certificate (not so
    /// for RSA-2048, whose public key is a fixed test key).
    cred: bool,
}

/// One server state the profile allows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct State(Vec<Dev>);

/// What one HTTP exchange may answer: the symbols of a scenario file's
/// `outcomes` (`Http` for a status other than 200 with no protocol
/// status; `StatusApproved` means with the latest certificate).
pub use crate::check::scenario::Outcome as Answer;

/// The model: the set of states the profile allows after the operations
/// applied so far.
#[derive(Debug, Clone)]
pub struct Model {
    states: BTreeSet<State>,
    /// Most states tracked; past it the model stops judging (see `exact`).
    cap: usize,
    /// Whether `states` still holds every state the profile allows. Once
    /// a step would exceed `cap`, the set is cut and no later answer is
    /// judged: a dropped state could be the one that explains it.
    exact: bool,
    caps: Caps,
}

/// What the target supports, as far as the alphabet cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// A plugin credential.
    pub plugin: bool,
    /// The CA key (expired device certificates).
    pub ca_key: bool,
    /// Ed25519 keys.
    pub ed25519: bool,
    /// RSA-2048 keys.
    pub rsa: bool,
    /// The CSR extension.
    pub csr: bool,
}

const MAX_STATES: usize = 4096;

impl Model {
    /// The state before any operation: nothing posted, nothing issued.
    pub fn new(caps: Caps) -> Self {
        let mut states = BTreeSet::new();
        states.insert(State(vec![Dev::default(); DEVICES.len()]));
        Model {
            states,
            caps,
            cap: MAX_STATES,
            exact: true,
        }
    }

    /// The same model tracking at most `cap` states (tests).
    #[cfg(test)]
    fn with_cap(caps: Caps, cap: usize) -> Self {
        Model {
            cap,
            ..Model::new(caps)
        }
    }

    /// Whether every allowed state has issued `dev` a certificate whose
    /// key the suite holds (so the case has a credential for it).
    pub fn surely_certified(&self, dev: usize) -> bool {
        self.states
            .iter()
            .all(|s| s.0[dev].certs > 0 && s.0[dev].cred)
    }

    /// Whether `op` can be run now (its credential exists, its capability
    /// is there).
    pub fn applicable(&self, op: &Op) -> bool {
        let cred = |w: Who| match w {
            Who::Plugin => self.caps.plugin,
            Who::Device(d) => self.surely_certified(d),
            _ => true,
        };
        match *op {
            Op::Post { by, .. } | Op::Status { by, .. } => cred(by),
            Op::Provision { dev, auth, key } => {
                let key_ok = match key {
                    Key::P256 => true,
                    Key::Same => self.surely_certified(dev),
                    Key::Ed25519 => self.caps.ed25519,
                    Key::Rsa2048 => self.caps.rsa,
                    Key::P256Csr => self.caps.csr,
                };
                key_ok
                    && match auth {
                        Auth::Cert(w) => matches!(w, Who::Admin | Who::Plugin) && cred(w),
                        Auth::Own => self.surely_certified(dev),
                        Auth::OtherDevice(o) => o != dev && self.surely_certified(o),
                        Auth::Expired => self.caps.ca_key,
                        _ => true,
                    }
            }
            Op::Malformed { bad, .. } => bad != Bad::BadCsr || self.caps.csr,
            Op::Wait => true,
        }
    }

    /// Applies `op` and returns, for each HTTP exchange it makes, the set
    /// of answers the profile allows — or nothing (no expectation) once the
    /// model has had to drop states.
    pub fn apply(&mut self, op: &Op) -> Vec<BTreeSet<Answer>> {
        let exchanges = match op {
            Op::Provision {
                auth: Auth::Wrong(n),
                ..
            } => *n as usize,
            _ => 1,
        };
        let mut allowed = vec![BTreeSet::new(); exchanges];
        let mut next = BTreeSet::new();
        for s in &self.states {
            let mut branches = vec![(s.clone(), Vec::new())];
            for _ in 0..exchanges {
                let mut grown = Vec::new();
                for (st, answers) in branches {
                    for (a, n) in step(&st, op) {
                        let mut ans: Vec<Answer> = answers.clone();
                        ans.push(a);
                        grown.push((n, ans));
                    }
                }
                branches = grown;
            }
            for (st, answers) in branches {
                for (i, a) in answers.into_iter().enumerate() {
                    allowed[i].insert(a);
                }
                next.insert(st);
            }
        }
        // The answers above came from every state; the successors are cut
        // to the cap, and from then on nothing is judged.
        let judged = self.exact;
        if next.len() > self.cap {
            self.exact = false;
        }
        self.states = next.into_iter().take(self.cap).collect();
        if judged {
            allowed
        } else {
            Vec::new()
        }
    }
}

impl Model {
    /// Whether `ops` can be sent together now: 2 to [`MAX_GROUP`]
    /// applicable requests of one exchange each, at most one post per
    /// device, and no post for a device another member provisions (the
    /// secret a signed answer verifies with would depend on the order).
    pub fn groupable(&self, ops: &[Op]) -> bool {
        let single = |op: &Op| match op {
            Op::Post { .. } | Op::Status { .. } => true,
            Op::Provision { auth, .. } => !matches!(auth, Auth::Wrong(n) if *n != 1),
            Op::Wait | Op::Malformed { .. } => false,
        };
        let posted: Vec<usize> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Post { dev, .. } => Some(*dev),
                _ => None,
            })
            .collect();
        let unique = posted.iter().collect::<BTreeSet<_>>().len() == posted.len();
        let clash = ops
            .iter()
            .any(|o| matches!(o, Op::Provision { dev, .. } if posted.contains(dev)));
        (2..=MAX_GROUP).contains(&ops.len())
            && ops.iter().all(|o| single(o) && self.applicable(o))
            && unique
            && !clash
    }

    /// Applies a group sent together and returns the answer tuples (one
    /// answer per member, in the group's order) that some order of the
    /// members gives from some allowed state — or `None` once the model
    /// has had to drop states.
    pub fn apply_together(&mut self, ops: &[Op]) -> Option<BTreeSet<Vec<Answer>>> {
        let mut tuples = BTreeSet::new();
        let mut next = BTreeSet::new();
        let all = orders(ops.len());
        for s in &self.states {
            for order in &all {
                let mut branches = vec![(s.clone(), vec![Answer::Ok; ops.len()])];
                for &i in order {
                    let mut grown = Vec::new();
                    for (st, answers) in branches {
                        for (a, n) in step(&st, &ops[i]) {
                            let mut answers = answers.clone();
                            answers[i] = a;
                            grown.push((n, answers));
                        }
                    }
                    branches = grown;
                }
                for (st, answers) in branches {
                    tuples.insert(answers);
                    next.insert(st);
                }
            }
        }
        let judged = self.exact;
        if next.len() > self.cap {
            self.exact = false;
        }
        self.states = next.into_iter().take(self.cap).collect();
        judged.then_some(tuples)
    }

    /// Applies an item: the steps of the scenario that runs it, with the
    /// expectations the model gives.
    pub fn steps(&mut self, item: &Item) -> Vec<Step> {
        match item {
            Item::One(op) => {
                let allowed = self.apply(op);
                steps_for(op, &allowed)
            }
            Item::Together(ops) => {
                let tuples = self.apply_together(ops);
                let group = ops.iter().flat_map(|op| steps_for(op, &[])).collect();
                vec![Step {
                    action: Some(Action::Together),
                    group: Some(group),
                    outcomes: tuples.map(|t| t.into_iter().collect()),
                    ..Step::default()
                }]
            }
        }
    }
}

const FORBIDDEN: [Answer; 2] = [Answer::Http(401), Answer::Http(403)];

/// Answers and successor states of one exchange of `op` from `s`.
fn step(s: &State, op: &Op) -> Vec<(Answer, State)> {
    let same = |a: Answer| vec![(a, s.clone())];
    match *op {
        Op::Wait => {
            let mut n = s.clone();
            for d in &mut n.0 {
                if let Some(h) = &mut d.held {
                    if h.near {
                        h.expired = true;
                    }
                }
            }
            vec![(Answer::Ok, n)]
        }
        Op::Malformed { bad, dev } => match bad {
            Bad::WrongMethod => same(Answer::Http(405)),
            Bad::HugeBody => same(Answer::Http(413)),
            Bad::NestedObject => {
                // Harmless: refused (400), or judged as the unsigned
                // request it is.
                let mut out = same(Answer::Http(400));
                out.extend(by_secret(s, dev, None, &|n| n));
                out
            }
            _ => same(Answer::Http(400)),
        },
        Op::Post {
            by,
            dev,
            secret,
            valid,
        } => match by {
            Who::Admin | Who::Plugin => {
                if valid == Valid::Past {
                    return same(Answer::Http(400));
                }
                let mut n = s.clone();
                n.0[dev].held = Some(Held {
                    secret,
                    near: valid == Valid::Near,
                    expired: false,
                    failures: 0,
                });
                vec![(Answer::Ok, n)]
            }
            _ => FORBIDDEN.iter().map(|a| (*a, s.clone())).collect(),
        },
        Op::Status { dev, by } => match by {
            Who::Admin | Who::Plugin => same(if s.0[dev].certs > 0 {
                Answer::StatusApproved
            } else {
                Answer::StatusWaiting
            }),
            _ => FORBIDDEN.iter().map(|a| (*a, s.clone())).collect(),
        },
        Op::Provision { dev, auth, key } => {
            let issue = |mut n: State| {
                n.0[dev].certs += 1;
                n.0[dev].cred = key != Key::Rsa2048;
                n
            };
            match auth {
                Auth::Cert(_) | Auth::Own => {
                    // Approved; the posted secret may stay or go.
                    let kept = issue(s.clone());
                    let mut gone = kept.clone();
                    gone.0[dev].held = None;
                    vec![(Answer::Approved, kept), (Answer::Approved, gone)]
                }
                Auth::Secret(k) => by_secret(s, dev, Some(k), &issue),
                Auth::Reordered(k) => {
                    let mut out = by_secret(s, dev, Some(k), &issue);
                    out.extend(by_secret(s, dev, None, &issue));
                    out
                }
                Auth::Sha256(_)
                | Auth::Unsigned
                | Auth::Wrong(_)
                | Auth::OtherDevice(_)
                | Auth::Expired => by_secret(s, dev, None, &issue),
            }
        }
    }
}

/// The secret path of PROTOCOL §5 (steps 3–5): `signed_with` is the secret
/// the signature verifies with, `None` for one that verifies with nothing.
fn by_secret(
    s: &State,
    dev: usize,
    signed_with: Option<usize>,
    issue: &dyn Fn(State) -> State,
) -> Vec<(Answer, State)> {
    let mut n = s.clone();
    let Some(h) = n.0[dev].held else {
        return vec![(Answer::Waiting, n)];
    };
    if h.expired {
        n.0[dev].held = None;
        return vec![(Answer::Waiting, n)];
    }
    let mut out = Vec::new();
    if h.near {
        // The model has no clock: on a slow machine a near secret's
        // validUntil can pass before the next wait, so expired is allowed
        // too (after a wait it is the only answer).
        let mut e = n.clone();
        e.0[dev].held = None;
        out.push((Answer::Waiting, e));
    }
    if signed_with == Some(h.secret) {
        n.0[dev].held = None;
        out.push((Answer::Approved, issue(n)));
        return out;
    }
    let failures = h.failures + 1;
    n.0[dev].held = if failures >= DEFAULT_GUESS_LIMIT {
        None
    } else {
        Some(Held { failures, ..h })
    };
    out.push((Answer::Rejected, n));
    out
}

/// The expectation a scenario step carries for a set of allowed answers.
pub fn expect_for(allowed: &BTreeSet<Answer>) -> Expect {
    let mut e = Expect::default();
    let all = |f: &dyn Fn(&Answer) -> bool| allowed.iter().all(f);
    let any = |f: &dyn Fn(&Answer) -> bool| allowed.iter().any(f);
    let proto = |a: &Answer| matches!(a, Answer::Approved | Answer::Waiting | Answer::Rejected);
    let codes: BTreeSet<u16> = allowed
        .iter()
        .map(|a| match a {
            Answer::Http(c) => *c,
            _ => 200,
        })
        .collect();
    e.http = Some(codes.into_iter().collect());
    if any(&proto) {
        let approved = any(&|a| *a == Answer::Approved);
        if all(&|a| *a == Answer::Approved) {
            e.status = Some(StatusSpec::Approved);
            e.certificate = Some(true);
        } else if !approved {
            e.status = Some(if allowed.len() == 1 && all(&proto) {
                if allowed.contains(&Answer::Waiting) {
                    StatusSpec::Waiting
                } else {
                    StatusSpec::Rejected
                }
            } else {
                StatusSpec::NotApproved
            });
            e.certificate = Some(false);
        }
    }
    if all(&|a| *a == Answer::StatusApproved) {
        e.status = Some(StatusSpec::Approved);
        e.latest_cert = Some(true);
    } else if all(&|a| *a == Answer::StatusWaiting) {
        e.status = Some(StatusSpec::Waiting);
    }
    if all(&|a| matches!(a, Answer::Http(401 | 403))) {
        e.tls_refusal_ok = Some(true);
    }
    e
}

/// The scenario steps for `op` with the expectations `allowed` gives.
pub fn steps_for(op: &Op, allowed: &[BTreeSet<Answer>]) -> Vec<Step> {
    let ex = |i: usize| allowed.get(i).map(expect_for).unwrap_or_default();
    let base = |action: Action, dev: usize| Step {
        action: Some(action),
        device: Some(DEVICES[dev].to_string()),
        ..Step::default()
    };
    match *op {
        Op::Wait => vec![Step {
            action: Some(Action::Wait),
            ms: Some(WAIT_MS),
            ..Step::default()
        }],
        Op::Post {
            by,
            dev,
            secret,
            valid,
        } => vec![Step {
            as_: Some(who(by)),
            secret: Some(SECRETS[secret].into()),
            valid_until: match valid {
                Valid::Absent => None,
                Valid::Far => Some(ValidUntilSpec::In {
                    secs: 3600,
                    offset: time::UtcOffset::UTC,
                }),
                Valid::Near => Some(ValidUntilSpec::In {
                    secs: NEAR_SECS as i64,
                    offset: time::UtcOffset::UTC,
                }),
                Valid::Past => Some(ValidUntilSpec::Past),
            },
            expect: ex(0),
            ..base(Action::PostOob, dev)
        }],
        Op::Status { dev, by } => vec![Step {
            as_: Some(who(by)),
            expect: ex(0),
            ..base(Action::Status, dev)
        }],
        Op::Provision { dev, auth, key } => {
            let csr = (key == Key::P256Csr).then_some(CsrSpec::Valid);
            let key = match key {
                Key::P256 | Key::P256Csr => None,
                Key::Same => Some(KeySpec::Previous),
                Key::Ed25519 => Some(KeySpec::Ed25519),
                Key::Rsa2048 => Some(KeySpec::Rsa2048),
            };
            let one = |secret: Option<String>, as_: Option<Credential>, i: usize| Step {
                secret,
                as_,
                csr,
                key,
                expect: ex(i),
                ..base(Action::Provision, dev)
            };
            let none = || Some("none".to_string());
            match auth {
                Auth::Secret(k) => vec![one(Some(SECRETS[k].into()), None, 0)],
                Auth::Reordered(k) => vec![Step {
                    form: Some(RequestForm::ReorderedRaw),
                    ..one(Some(SECRETS[k].into()), None, 0)
                }],
                Auth::Sha256(k) => vec![Step {
                    variant: Some(HmacKey::Sha256),
                    ..one(Some(SECRETS[k].into()), None, 0)
                }],
                Auth::Unsigned => vec![one(none(), None, 0)],
                Auth::Wrong(n) => (0..n as usize)
                    .map(|i| one(Some(format!("never-posted-{i}")), None, i))
                    .collect(),
                Auth::Cert(w) => vec![one(none(), Some(who(w)), 0)],
                Auth::Own => vec![one(none(), Some(who(Who::Device(dev))), 0)],
                Auth::OtherDevice(o) => vec![one(none(), Some(who(Who::Device(o))), 0)],
                Auth::Expired => vec![one(
                    none(),
                    Some(Credential::ExpiredDevice(DEVICES[dev].to_string())),
                    0,
                )],
            }
        }
        Op::Malformed { dev, bad } => {
            let e = ex(0);
            let s = match bad {
                Bad::LongId => Step {
                    action: Some(Action::Provision),
                    device_literal: Some("x".repeat(2000)),
                    ..Step::default()
                },
                Bad::SlashId => Step {
                    action: Some(Action::Provision),
                    device_literal: Some(format!("{}/x", DEVICES[dev].replace('^', "-"))),
                    ..Step::default()
                },
                Bad::EmptySecret => Step {
                    secret_literal: Some(String::new()),
                    ..base(Action::PostOob, dev)
                },
                Bad::GarbageValidUntil => Step {
                    valid_until: Some(ValidUntilSpec::Garbage),
                    ..base(Action::PostOob, dev)
                },
                Bad::WeakKey => Step {
                    key: Some(KeySpec::Rsa1024),
                    secret: Some("none".into()),
                    ..base(Action::Provision, dev)
                },
                Bad::WrongMethod => Step {
                    action: Some(Action::Raw),
                    method: Some("GET".into()),
                    endpoint: Some(EndpointSpec::Provreq),
                    ..Step::default()
                },
                Bad::HugeBody => Step {
                    action: Some(Action::Raw),
                    method: Some("POST".into()),
                    endpoint: Some(EndpointSpec::Provreq),
                    body_size: Some(1 << 20),
                    ..Step::default()
                },
                Bad::BadCsr => Step {
                    csr: Some(CsrSpec::BadSignature),
                    secret: Some("none".into()),
                    ..base(Action::Provision, dev)
                },
                Bad::NestedObject => Step {
                    body: Some("{\"deviceID\":\"{device}\",\"ip\":\"127.0.0.1\",\"mac\":\"\",\"publicKeyPEM\":\"{key}\",\"x\":{\"y\":{\"z\":1}},\"signature\":\"\"}".into()),
                    ..base(Action::Provision, dev)
                },
            };
            vec![Step { expect: e, ..s }]
        }
    }
}

/// The whole scenario body for a sequence: its steps, with the
/// expectations the model gives from the empty state.
pub fn render(items: &[Item], caps: Caps) -> Vec<Step> {
    let mut m = Model::new(caps);
    items.iter().flat_map(|item| m.steps(item)).collect()
}

/// Whether every item of `items` is applicable where it stands.
pub fn well_formed(items: &[Item], caps: Caps) -> bool {
    let mut m = Model::new(caps);
    for item in items {
        let ok = match item {
            Item::One(op) => m.applicable(op),
            Item::Together(ops) => m.groupable(ops),
        };
        if !ok {
            return false;
        }
        m.steps(item);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(dev: usize, secret: usize) -> Op {
        Op::Post {
            by: Who::Admin,
            dev,
            secret,
            valid: Valid::Absent,
        }
    }
    fn prov(dev: usize, auth: Auth) -> Op {
        Op::Provision {
            dev,
            auth,
            key: Key::P256,
        }
    }
    fn only(m: &mut Model, op: Op) -> Answer {
        let a = m.apply(&op);
        assert_eq!(a[0].len(), 1, "{op}: {a:?}");
        *a[0].iter().next().unwrap()
    }

    /// A model that had to drop states judges nothing after: the dropped
    /// state may be the one that explains the server's answer.
    #[test]
    fn a_cut_state_set_stops_judging() {
        let admin = Op::Provision {
            dev: 0,
            auth: Auth::Cert(Who::Admin),
            key: Key::P256,
        };
        // The full model: after an admin approval the secret may or may not
        // still be there (an open choice), so both answers are allowed.
        let mut full = Model::new(Caps::default());
        full.apply(&post(0, 0));
        full.apply(&admin);
        let both = full.apply(&prov(0, Auth::Secret(0)));
        assert!(both[0].contains(&Answer::Approved) && both[0].contains(&Answer::Waiting));
        // Cut to one state, the model would have allowed only one of them.
        let mut cut = Model::with_cap(Caps::default(), 1);
        cut.apply(&post(0, 0));
        assert!(
            !cut.apply(&admin).is_empty(),
            "the cutting step is still judged"
        );
        assert!(cut.apply(&prov(0, Auth::Secret(0))).is_empty());
        assert!(cut.apply(&post(1, 1)).is_empty(), "nor anything later");
    }

    #[test]
    fn the_profile_in_sequences() {
        let mut m = Model::new(Caps::default());
        assert_eq!(only(&mut m, prov(0, Auth::Secret(0))), Answer::Waiting);
        assert_eq!(only(&mut m, post(0, 0)), Answer::Ok);
        // Another device's secret is not this one's.
        assert_eq!(only(&mut m, prov(1, Auth::Secret(0))), Answer::Waiting);
        assert_eq!(only(&mut m, prov(2, Auth::Secret(0))), Answer::Waiting);
        let four = m.apply(&prov(0, Auth::Wrong(4)));
        assert!(four
            .iter()
            .all(|a| a.len() == 1 && a.contains(&Answer::Rejected)));
        assert_eq!(only(&mut m, prov(0, Auth::Secret(0))), Answer::Approved);
        // One time.
        assert_eq!(only(&mut m, prov(0, Auth::Secret(0))), Answer::Waiting);
        assert_eq!(
            only(
                &mut m,
                Op::Status {
                    dev: 0,
                    by: Who::Admin
                }
            ),
            Answer::StatusApproved
        );
        // The fifth failure discards the secret.
        only(&mut m, post(1, 1));
        m.apply(&prov(1, Auth::Wrong(5)));
        assert_eq!(only(&mut m, prov(1, Auth::Secret(1))), Answer::Waiting);
        // A near secret expires at the wait.
        only(
            &mut m,
            Op::Post {
                by: Who::Admin,
                dev: 1,
                secret: 2,
                valid: Valid::Near,
            },
        );
        m.apply(&Op::Wait);
        assert_eq!(only(&mut m, prov(1, Auth::Secret(2))), Answer::Waiting);
        // Before the wait a near secret may already have expired: a wrong
        // guess is Rejected or Waiting, the right secret Approved or Waiting.
        let near = Op::Post {
            by: Who::Admin,
            dev: 0,
            secret: 1,
            valid: Valid::Near,
        };
        only(&mut m, near);
        let a = m.apply(&prov(0, Auth::Secret(2)));
        assert_eq!(
            a[0],
            [Answer::Rejected, Answer::Waiting].into_iter().collect()
        );
        let a = m.apply(&prov(0, Auth::Secret(1)));
        assert_eq!(
            a[0],
            [Answer::Approved, Answer::Waiting].into_iter().collect()
        );
    }

    #[test]
    fn open_choices_allow_both() {
        let mut m = Model::new(Caps::default());
        m.apply(&post(0, 0));
        assert_eq!(
            only(&mut m, prov(0, Auth::Cert(Who::Admin))),
            Answer::Approved
        );
        // The secret may have stayed or gone.
        let a = m.apply(&prov(0, Auth::Secret(0)));
        assert_eq!(
            a[0],
            [Answer::Approved, Answer::Waiting].into_iter().collect()
        );
        let e = expect_for(&a[0]);
        assert_eq!(e.status, None);
        assert_eq!(e.http, Some(vec![200]));
        let e = expect_for(&[Answer::Http(401), Answer::Http(403)].into_iter().collect());
        assert_eq!(e.http, Some(vec![401, 403]));
    }

    #[test]
    fn credentials_must_exist() {
        let m = Model::new(Caps::default());
        assert!(!m.applicable(&prov(0, Auth::Own)));
        assert!(!m.applicable(&Op::Status {
            dev: 0,
            by: Who::Plugin
        }));
        let one = |ops: &[Op]| ops.iter().map(|o| Item::One(*o)).collect::<Vec<_>>();
        assert!(!well_formed(&one(&[prov(0, Auth::Own)]), Caps::default()));
        assert!(well_formed(
            &one(&[post(0, 0), prov(0, Auth::Secret(0)), prov(0, Auth::Own)]),
            Caps::default()
        ));
    }

    fn tuples(t: &[&[Answer]]) -> BTreeSet<Vec<Answer>> {
        t.iter().map(|a| a.to_vec()).collect()
    }

    /// One secret raced by three requests: exactly one of them is
    /// Approved, whichever it is; all three Approved is no order's answer.
    #[test]
    fn a_raced_secret_approves_exactly_one() {
        use Answer::{Approved as A, Waiting as W};
        let mut m = Model::new(Caps::default());
        m.apply(&post(0, 0));
        let p = prov(0, Auth::Secret(0));
        let got = m.apply_together(&[p, p, p]).unwrap();
        assert_eq!(got, tuples(&[&[A, W, W], &[W, A, W], &[W, W, A]]));
        assert!(!got.contains(&vec![A, A, A]));
        // Afterwards the device is certified in every order, and the
        // secret is gone.
        assert!(m.surely_certified(0));
        assert_eq!(only(&mut m, p), Answer::Waiting);
    }

    /// Wrong guesses racing each other all count: four together and one
    /// more discard the secret, in every order.
    #[test]
    fn raced_guesses_all_count() {
        let mut m = Model::new(Caps::default());
        m.apply(&post(0, 0));
        let w = prov(0, Auth::Wrong(1));
        let got = m.apply_together(&[w, w, w, w]).unwrap();
        assert_eq!(got, tuples(&[&[Answer::Rejected; 4]]));
        m.apply(&w);
        assert_eq!(only(&mut m, prov(0, Auth::Secret(0))), Answer::Waiting);
    }

    /// A read racing a write sees it before or after; a post racing a
    /// provisioning request of another device changes nothing for it.
    #[test]
    fn reads_race_writes_in_either_order() {
        use Answer::{Approved as A, StatusApproved as SA, StatusWaiting as SW};
        let mut m = Model::new(Caps::default());
        m.apply(&post(0, 0));
        let got = m
            .apply_together(&[
                prov(0, Auth::Secret(0)),
                Op::Status {
                    dev: 0,
                    by: Who::Admin,
                },
            ])
            .unwrap();
        assert_eq!(got, tuples(&[&[A, SW], &[A, SA]]));
        assert!(m.groupable(&[post(1, 1), prov(0, Auth::Own)]));
        assert!(
            !m.groupable(&[post(0, 1), prov(0, Auth::Own)]),
            "post and provision of one device"
        );
        assert!(
            !m.groupable(&[post(1, 1), post(1, 2)]),
            "two posts for one device"
        );
        assert!(!m.groupable(&[prov(0, Auth::Wrong(2)), prov(1, Auth::Own)]));
        assert!(!m.groupable(&[prov(0, Auth::Own)]), "one is not a group");
    }

    #[test]
    fn orders_are_every_permutation() {
        for n in 1..=MAX_GROUP {
            let all = orders(n);
            let distinct: BTreeSet<_> = all.iter().cloned().collect();
            assert_eq!(distinct.len(), (1..=n).product::<usize>());
            assert_eq!(all.len(), distinct.len());
        }
    }
}

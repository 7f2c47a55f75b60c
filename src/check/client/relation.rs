//! The device side of the metamorphic relations (`relate` steps in client
//! cases): one run against an honest server, then one run for each element
//! of an Approved answer the suite can change (`suite::perturb`), each on a
//! fresh server and an empty directory. Every run is judged by what holds
//! whatever the server sent: a device that reports success holds a set that
//! chains to the CA it pinned, for its own key and ID; one that does not
//! left its directory as it was; every request it made was allowed; and it
//! ended within its limit.

use super::*;
use crate::check::scenario::{ExitSpec, Expect, FilesSpec, Relation};
use crate::suite::perturb::Perturb;

/// Device runs in flight at once (each is a process and a server).
const AT_ONCE: usize = 4;

/// Random edits served after the named changes, their seeds drawn from
/// the run's seed (through the case's device ID).
const RANDOM_EDITS: u64 = 12;

/// How one run ended, for the case's summary.
struct RunEnd {
    /// `None` for the honest baseline.
    perturb: Option<Perturb>,
    /// The device kept a set.
    kept: bool,
    /// Why the relation does not hold, if it does not.
    broken: Option<String>,
    /// Why the run could not be judged (a device on the network without
    /// `--state-cmd`), if it could not.
    undecided: Option<String>,
}

impl<'a> Case<'a> {
    /// A `relate` step of a client case.
    pub(super) async fn relate(&mut self, st: &Step) -> Result<Option<String>, StepError> {
        match st.relation {
            Some(Relation::AnyAnswer) => self.any_answer(st).await,
            other => fail(format!(
                "relation {other:?} is checked in server cases, not client cases"
            )),
        }
    }

    /// `any-answer`: the honest baseline must provision (or the relation
    /// holds vacuously for a device that never keeps anything), then every
    /// changed answer must leave a verified set or nothing.
    async fn any_answer(&mut self, st: &Step) -> Result<Option<String>, StepError> {
        let base = self.child(None).await?;
        let mut runs = vec![base];
        let baseline = Step {
            expect: Expect {
                exit: Some(ExitSpec::Success),
                files: Some(FilesSpec::Written),
                ..Expect::default()
            },
            feature: st.feature.clone(),
            ..Step::default()
        };
        let ends = self.run_children(&mut runs, &baseline, &[None]).await?;
        if let Some(why) = &ends[0].broken {
            return fail(format!(
                "with an honest answer the device did not provision, so no changed answer can be judged: {why}"
            ));
        }
        let perturbed = Step {
            expect: Expect {
                exit: Some(ExitSpec::Bounded),
                ..Expect::default()
            },
            feature: st.feature.clone(),
            ..Step::default()
        };
        // The seeds of the random edits follow from the run's seed, which
        // chose the device ID.
        let base_seed = self.device_id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        let all: Vec<Perturb> = Perturb::ALL
            .iter()
            .copied()
            .chain((0..RANDOM_EDITS).map(|i| Perturb::Edit {
                seed: base_seed.wrapping_add(i),
            }))
            .collect();
        let mut ends = Vec::new();
        // One device on the network runs one case at a time.
        let at_once = if self.target.remote().is_some() {
            1
        } else {
            AT_ONCE
        };
        for chunk in all.chunks(at_once) {
            let mut runs = Vec::new();
            for p in chunk {
                runs.push(self.child(Some(*p)).await?);
            }
            let which: Vec<Option<Perturb>> = chunk.iter().copied().map(Some).collect();
            ends.extend(self.run_children(&mut runs, &perturbed, &which).await?);
        }
        let broken: Vec<String> = ends
            .iter()
            .filter_map(|e| {
                let p = e.perturb.map(|p| p.to_string()).unwrap_or_default();
                e.broken.as_ref().map(|why| format!("{p}: {why}"))
            })
            .collect();
        let kept: Vec<String> = ends
            .iter()
            .filter(|e| e.kept)
            .filter_map(|e| e.perturb.map(|p| p.to_string()))
            .collect();
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "{} changed answers: the device kept a set after {} ({}) and refused the rest",
                ends.len(),
                kept.len(),
                kept.join(", ")
            ),
        ));
        let undecided = ends.iter().filter(|e| e.undecided.is_some()).count();
        if broken.is_empty() && undecided > 0 {
            Err(StepError::Inconclusive(format!(
                "{undecided} of {} runs sent the device a certificate, and whether it kept each is not visible on the wire: give --state-cmd to decide",
                ends.len()
            )))
        } else if broken.is_empty() {
            Ok(None)
        } else {
            fail(format!(
                "{} of {} changed answers broke the relation (a verified set or nothing): {}",
                broken.len(),
                ends.len(),
                broken.join("; ")
            ))
        }
    }

    /// A case of its own for one run: the same device identity, a fresh
    /// server (serving `perturb` once) and an empty directory.
    async fn child(&self, perturb: Option<Perturb>) -> Result<Case<'a>, StepError> {
        let (dir, aux) = match (tempfile::tempdir(), tempfile::tempdir()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                return Err(StepError::Setup(
                    "cannot create a temporary directory".into(),
                ))
            }
        };
        let listen = self.target.listen();
        let bugs = Bugs {
            perturb,
            ..Bugs::default()
        };
        let mut server = hostile::start(listen, &self.secret, bugs)
            .await
            .map_err(|e| StepError::Fail(format!("setup: {e}")))?;
        if self.target.remote().is_some() {
            server
                .advertise(false)
                .map_err(|e| StepError::Fail(format!("DNS-SD: {e}")))?;
        }
        Ok(Case {
            target: self.target,
            caps: self.caps,
            case_id: self.case_id.clone(),
            timeout: self.timeout,
            device_id: self.device_id.clone(),
            secret: self.secret.clone(),
            dir,
            aux,
            primary: Some(server),
            second: None,
            before: HashMap::new(),
            before_all: BTreeMap::new(),
            gave_certificate: false,
            // One changed answer and one honest one: a device may ask again
            // after an answer it refused, but not after one it kept.
            max_provreqs: Some(if perturb.is_some() { 2 } else { 1 }),
            evidence: Vec::new(),
            step_no: self.step_no,
            last_feature: None,
            waiting_times: 0,
            waiting_retry_sec: 0,
            undecided: None,
        })
    }

    /// Runs `runs` at once (one device each) with `step`, and takes their
    /// evidence.
    async fn run_children(
        &mut self,
        runs: &mut [Case<'a>],
        step: &Step,
        which: &[Option<Perturb>],
    ) -> Result<Vec<RunEnd>, StepError> {
        let results =
            futures_util::future::join_all(runs.iter_mut().map(|c| c.run_device(step))).await;
        let mut ends = Vec::new();
        for ((child, result), perturb) in runs.iter_mut().zip(results).zip(which) {
            let label = perturb.map_or("honest answer".to_string(), |p| {
                format!("answer changed: {p}")
            });
            self.evidence
                .push(Exchange::note(self.step_no, format!("— {label}")));
            self.evidence.append(&mut child.evidence);
            let result_undecided = matches!(result, Err(StepError::Inconclusive(_)));
            let broken = match result {
                Ok(_) => None,
                Err(StepError::Fail(m)) => Some(m),
                Err(StepError::Skip(m)) => Some(format!("skipped: {m}")),
                Err(StepError::Inconclusive(_)) => None,
                Err(StepError::Setup(m)) => return Err(StepError::Setup(m)),
            };
            ends.push(RunEnd {
                perturb: *perturb,
                kept: child.judged_dir().join("cert.pem").exists(),
                broken,
                undecided: result_undecided.then(|| label.clone()),
            });
        }
        Ok(ends)
    }
}

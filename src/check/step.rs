//! How one step of a case ends when it does not simply pass: shared by the
//! server-case runner and the client-case runner.

/// A step that failed (the target's fault) or could not run (skip, with
/// what would run it).
pub(crate) enum StepError {
    /// The target did something the case forbids.
    Fail(String),
    /// The step cannot decide here; the reason says what would run it.
    Skip(String),
    /// The step ran, but what the suite could see does not decide it; the
    /// reason says what would.
    #[allow(dead_code)]
    Inconclusive(String),
    /// The suite cannot test at all (a shim that cannot start its device):
    /// the whole run ends with exit 2 and this one line, no case judged.
    Setup(String),
}

impl StepError {
    /// The reason, whatever kind of end it was.
    pub(crate) fn into_message(self) -> String {
        match self {
            StepError::Fail(m)
            | StepError::Skip(m)
            | StepError::Inconclusive(m)
            | StepError::Setup(m) => m,
        }
    }
}

/// A step's end: `Ok` with an optional observation, or a [`StepError`].
pub(crate) type StepResult = Result<Option<String>, StepError>;

/// A failing step with its reason.
pub(crate) fn fail<T>(m: impl Into<String>) -> Result<T, StepError> {
    Err(StepError::Fail(m.into()))
}

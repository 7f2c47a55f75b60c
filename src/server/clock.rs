//! The server's clock, passed in: the system clock in service, a clock a
//! test moves by hand so expiry needs no real sleep.

use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

/// Where the server reads the time from (secret expiry, credential
/// validity, issued certificates' validity).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> OffsetDateTime;

    /// This clock as one the suite may move forward, if it is one.
    fn skewed(&self) -> Option<SkewedClock> {
        None
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until moved by [`ManualClock::advance`].
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn at(start: OffsetDateTime) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    /// Moves the clock (and every copy of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The system clock plus an offset that only grows: the embedded server's
/// clock in `idprov check`, which the suite moves forward instead of
/// sleeping while nothing else runs (a `wait` step of an exclusive case or
/// exploration sequence). Certificates are issued five minutes back-dated,
/// so the offset is kept under [`SkewedClock::MAX_OFFSET`].
#[derive(Debug, Clone, Default)]
pub struct SkewedClock(Arc<std::sync::atomic::AtomicU64>);

impl SkewedClock {
    /// The most the clock runs ahead of the system clock.
    pub const MAX_OFFSET: std::time::Duration = std::time::Duration::from_secs(240);

    /// Moves the clock forward by `by` and returns true, unless that would
    /// put it more than [`SkewedClock::MAX_OFFSET`] ahead (then it stays
    /// and the caller sleeps).
    pub fn advance(&self, by: std::time::Duration) -> bool {
        use std::sync::atomic::Ordering;
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                let next = ms.saturating_add(by);
                (u128::from(next) <= Self::MAX_OFFSET.as_millis()).then_some(next)
            })
            .is_ok()
    }
}

impl Clock for SkewedClock {
    fn skewed(&self) -> Option<SkewedClock> {
        Some(self.clone())
    }

    fn now(&self) -> OffsetDateTime {
        let ms = self.0.load(std::sync::atomic::Ordering::SeqCst);
        OffsetDateTime::now_utc() + Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let c = ManualClock::at(start);
        let copy = c.clone();
        assert_eq!(c.now(), start);
        copy.advance(Duration::seconds(3));
        assert_eq!(c.now(), start + Duration::seconds(3));
    }

    #[test]
    fn a_skewed_clock_runs_ahead_within_its_bound() {
        let c = SkewedClock::default();
        assert!(c.now() - OffsetDateTime::now_utc() < Duration::seconds(1));
        assert!(c.advance(std::time::Duration::from_secs(200)));
        let ahead = c.now() - OffsetDateTime::now_utc();
        assert!(ahead > Duration::seconds(199) && ahead < Duration::seconds(201));
        // A step past the bound is refused and leaves the clock as it was.
        assert!(!c.advance(std::time::Duration::from_secs(41)));
        assert!(c.now() - OffsetDateTime::now_utc() < Duration::seconds(201));
    }
}

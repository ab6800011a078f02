//! The `Clock` port: where "now" comes from.

use chrono::{DateTime, Utc};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

/// A source of the current UTC time. Services take it as `Arc<dyn Clock>` so
/// tests can use [`ManualClock`].
///
/// ```
/// use crm_core::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now().to_rfc3339(), "2026-01-01T00:01:30+00:00");
/// ```
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time. Contract: never goes backwards between two calls on the
    /// same clock, except when a test moves a [`ManualClock`] explicitly.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock, at microsecond precision (what every store
/// keeps, so a value read back equals the value written).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = t.checked_add_signed(by).unwrap_or(*t);
    }

    /// Sets the time (may go backwards).
    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(DateTime::UNIX_EPOCH + chrono::Duration::days(20_000))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

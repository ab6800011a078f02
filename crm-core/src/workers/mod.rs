//! The worker runtime: everything that happens "later" runs here.
//!
//! A worker is either an **event worker** (a named outbox consumer: every
//! event its [`EventFilter`] passes is queued for it in the transaction that
//! appends the event) or a **job worker** (runs durable [`Job`]s of one
//! kind). The [`Runtime`] runs each worker in a loop:
//!
//! 1. claim a batch of due items with a lease (`FOR UPDATE SKIP LOCKED` on
//!    PostgreSQL, so N processes on one database share the work),
//! 2. run the handler on each, at most [`WorkerOptions::concurrency`] at once,
//!    renewing the lease while the handler runs (so a slow handler's item
//!    is never handed to a second worker),
//! 3. ack ([`Outcome::Done`]), retry with the backoff schedule or the
//!    handler's own delay ([`Outcome::Retry`]), defer without counting an
//!    attempt ([`Outcome::Defer`]), or dead-letter ([`Outcome::Fail`], or a
//!    retry past [`WorkerOptions::max_attempts`]) — dead letters are kept,
//!    listed and replayable.
//!
//! Nothing is lost when a process dies: an item whose lease expires is
//! claimable again. Shutdown stops claiming, waits for running handlers up
//! to a grace period, and gives back what is left (due at once, the
//! interrupted attempt counted).

mod batch;
pub mod connectors;
mod external_crm;
mod outbox;
mod queue;
mod runtime;
mod workflows;

pub use batch::Batcher;
pub use external_crm::{ExternalCrmPull, ExternalCrmPush, pull_job, push_job};
pub use runtime::{Runtime, RuntimeBuilder, RuntimeHandle, ShutdownReport, WorkerStats};
pub use workflows::{WORKFLOW_TRIGGER_JOB, WorkflowTrigger};

use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use crate::{Event, EventFilter, Job};

/// What a handler decided about one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: the item is removed.
    Done,
    /// Failed for now: due again after the backoff schedule's delay for this
    /// attempt, or `after` when that is longer (a provider's `Retry-After`).
    /// Counts an attempt; past [`WorkerOptions::max_attempts`] the item is
    /// dead-lettered with `error`.
    Retry {
        /// Why (kept on the item; no secrets).
        error: String,
        /// At least this long before the next try.
        after: Option<Duration>,
    },
    /// Not now (pacing, a throttled channel): due again after `after`
    /// without counting an attempt.
    Defer {
        /// How long to hold it back.
        after: Duration,
    },
    /// Will never succeed: dead-lettered at once with `error`.
    Fail {
        /// Why.
        error: String,
    },
}

impl Outcome {
    /// A retry after the backoff schedule.
    pub fn retry(error: impl Into<String>) -> Self {
        Outcome::Retry { error: error.into(), after: None }
    }
}

/// An outbox consumer.
///
/// Contract: `name` is a stable consumer name (1–64 of `a-z0-9_.-`); events
/// appended before the consumer was first registered are not queued for it.
/// `handle` may be called more than once for one event (at-least-once: a
/// process can die after the handler's effect and before the ack), so it
/// must be idempotent, e.g. by checking the state its effect leaves behind.
#[async_trait]
pub trait EventWorker: Send + Sync + Debug + 'static {
    /// The consumer name.
    fn name(&self) -> &str;

    /// Which events are queued for it.
    fn events(&self) -> EventFilter;

    /// Handles one event; `attempt` is 1 on the first claim.
    /// `previous_error` is what the last failed attempt recorded; an attempt
    /// above 1 without one means the previous holder died mid-way.
    async fn handle(&self, event: &Event, attempt: u32, previous_error: Option<&str>) -> Outcome;

    /// Woken when this process produces work for it (a faster start than
    /// the next poll); `None` by default.
    fn wakeup(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// Runs durable jobs of one kind. Same idempotency contract as [`EventWorker`].
#[async_trait]
pub trait JobWorker: Send + Sync + Debug + 'static {
    /// The job kind.
    fn kind(&self) -> &str;

    /// Runs one job (`job.attempt` counts this claim).
    async fn run(&self, job: &Job) -> Outcome;
}

/// An exponential backoff schedule: `base × factor^(attempt-1)`, capped at
/// `max`, with up to ±`jitter` (a share, 0.0–1.0) of random spread so
/// retries of a burst of failures do not arrive together.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// Longest delay.
    pub max: Duration,
    /// Random spread, as a share of the delay.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), factor: 2.0, max: Duration::from_secs(600), jitter: 0.2 }
    }
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (1-based), before jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1).min(64)).unwrap_or(64);
        let secs = self.base.as_secs_f64() * self.factor.max(1.0).powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() { self.max } else { Duration::from_secs_f64(secs) }
    }

    /// The delay after failed attempt `attempt`, with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal(attempt);
        let spread = self.jitter.clamp(0.0, 1.0);
        if spread == 0.0 {
            return nominal;
        }
        let mut b = [0u8; 8];
        let unit = match getrandom::fill(&mut b) {
            Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => 0.5,
        };
        let factor = 1.0 + spread * (2.0 * unit - 1.0);
        Duration::from_secs_f64((nominal.as_secs_f64() * factor).max(0.0)).min(self.max)
    }
}

/// How the runtime runs one worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Items claimed per round trip (1–1000).
    pub batch: u32,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Lease per claim; renewed every third of it while the handler runs.
    pub lease: Duration,
    /// Polling interval when the queue was empty (doubles up to `max_poll`).
    pub poll: Duration,
    /// Longest polling interval.
    pub max_poll: Duration,
    /// Retry delays.
    pub backoff: Backoff,
    /// Attempts before an item is dead-lettered.
    pub max_attempts: u32,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            batch: 32,
            concurrency: 16,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            max_poll: Duration::from_secs(1),
            backoff: Backoff::default(),
            max_attempts: 12,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff { jitter: 0.0, ..Backoff::default() };
        assert_eq!(b.nominal(1), Duration::from_secs(1));
        assert_eq!(b.nominal(2), Duration::from_secs(2));
        assert_eq!(b.nominal(5), Duration::from_secs(16));
        assert_eq!(b.nominal(30), Duration::from_secs(600));
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(600));
        let j = Backoff::default();
        for attempt in 1..6 {
            let d = j.delay(attempt).as_secs_f64();
            let n = j.nominal(attempt).as_secs_f64();
            assert!(d >= n * 0.8 - 1e-9 && d <= n * 1.2 + 1e-9, "{d} vs {n}");
        }
    }
}

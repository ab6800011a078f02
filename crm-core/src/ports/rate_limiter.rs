//! The `RateLimiter` port.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::time::Duration;

use crate::{Error, Result};

/// `limit` requests per `period`, allowing a burst of `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Quota {
    /// Requests allowed per period (and burst size), ≥ 1.
    pub limit: u32,
    /// The period, ≥ 1 ms.
    pub period: Duration,
}

impl Quota {
    /// `limit` per `period`; [`Error::Validation`] on `quota` when either is zero.
    pub fn new(limit: u32, period: Duration) -> Result<Self> {
        if limit == 0 || period < Duration::from_millis(1) {
            return Err(Error::validation("quota", "limit must be ≥ 1 and period ≥ 1 ms"));
        }
        Ok(Quota { limit, period })
    }

    /// `limit` per second.
    pub fn per_second(limit: u32) -> Result<Self> {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` per minute.
    pub fn per_minute(limit: u32) -> Result<Self> {
        Self::new(limit, Duration::from_secs(60))
    }

    /// Time between two requests at the sustained rate (GCRA's emission interval), in nanoseconds.
    pub fn emission_interval_nanos(&self) -> u128 {
        (self.period.as_nanos() / u128::from(self.limit)).max(1)
    }
}

/// The answer to one check, carrying what `X-RateLimit-*` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request may proceed (and was counted).
    pub allowed: bool,
    /// The quota's limit.
    pub limit: u32,
    /// Requests still allowed right now after this one.
    pub remaining: u32,
    /// Time until the full burst is available again.
    pub reset_after: Duration,
    /// When denied: how long until this request would be allowed.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// [`Error::RateLimited`] when denied, `Ok(self)` otherwise.
    pub fn into_result(self) -> Result<Self> {
        match (self.allowed, self.retry_after) {
            (true, _) => Ok(self),
            (false, retry) => Err(Error::RateLimited { retry_after: retry.unwrap_or_default() }),
        }
    }
}

/// A rate limiter keyed by string (API key id, IP, phone number id…).
///
/// Contract (checked by `crm_core::testing::rate_limiter`):
/// - The generic cell rate algorithm: with a fresh key, exactly `quota.limit`
///   consecutive checks are allowed, the next is denied with a `retry_after`
///   of about one emission interval; after waiting it, one more is allowed.
/// - `check_n` with `cost > limit` is denied without counting; `cost == 0` is
///   [`Error::Validation`].
/// - Denied checks do not consume capacity.
/// - Keys are independent; concurrent checks on one key never allow more than
///   the quota (exact under concurrency, also across processes for shared backends).
/// - State for a key expires once the key is back to full capacity.
///
/// ```
/// # tokio_test_block_on(async {
/// use crm_core::{GcraLimiter, ManualClock, Quota, RateLimiter};
/// use std::sync::Arc;
/// let limiter = GcraLimiter::new(Arc::new(ManualClock::default()));
/// let quota = Quota::per_second(2)?;
/// assert!(limiter.check("key", &quota).await?.allowed);
/// assert!(limiter.check("key", &quota).await?.allowed);
/// assert!(!limiter.check("key", &quota).await?.allowed);
/// # Ok::<(), crm_core::Error>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
/// ```
#[async_trait]
pub trait RateLimiter: Send + Sync + Debug + 'static {
    /// Checks and, when allowed, counts `cost` units for `key`.
    async fn check_n(&self, key: &str, quota: &Quota, cost: u32) -> Result<Decision>;

    /// Checks and counts one unit.
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision> {
        self.check_n(key, quota, 1).await
    }
}

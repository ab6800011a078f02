//! An in-memory GCRA rate limiter.

use async_trait::async_trait;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Clock, Decision, Error, Quota, RateLimiter, Result, SystemClock};

const SHARDS: usize = 16;
const SWEEP_EVERY: u32 = 4096;

#[derive(Debug, Default)]
struct Shard {
    /// Theoretical arrival time per key, in nanoseconds since the epoch.
    tat: HashMap<String, i128>,
    ops: u32,
}

/// The generic cell rate algorithm over a sharded in-memory map.
///
/// Each check takes one shard lock, so it is exact under concurrency within a
/// process. Keys whose state has fully decayed are swept every few thousand
/// checks, so memory stays bounded by the keys active within one period.
#[derive(Debug)]
pub struct GcraLimiter {
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl GcraLimiter {
    /// A limiter reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(), hasher: RandomState::new() }
    }

    /// Keys currently tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|s| s.tat.len()).unwrap_or(0)).sum()
    }

    fn now_nanos(&self) -> i128 {
        let now = self.clock.now();
        i128::from(now.timestamp()) * 1_000_000_000 + i128::from(now.timestamp_subsec_nanos())
    }
}

impl Default for GcraLimiter {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

fn nanos(d: i128) -> Duration {
    Duration::from_nanos(u64::try_from(d.max(0)).unwrap_or(u64::MAX))
}

/// One GCRA step shared with other adapters' tests: given the stored TAT (if
/// any) and `now`, returns the decision and the TAT to store when allowed.
pub(crate) fn gcra_step(stored: Option<i128>, now: i128, quota: &Quota, cost: u32) -> (Decision, Option<i128>) {
    let t = quota.emission_interval_nanos() as i128;
    let period = quota.period.as_nanos() as i128;
    let tat = stored.unwrap_or(now).max(now);
    let remaining_at =
        |tat: i128| u32::try_from(((period - (tat - now)) / t).max(0)).unwrap_or(u32::MAX).min(quota.limit);
    if cost > quota.limit {
        let d = Decision {
            allowed: false,
            limit: quota.limit,
            remaining: remaining_at(tat),
            reset_after: nanos(tat - now),
            retry_after: None,
        };
        return (d, None);
    }
    let new_tat = tat + t * i128::from(cost);
    if new_tat - now > period {
        let d = Decision {
            allowed: false,
            limit: quota.limit,
            remaining: remaining_at(tat),
            reset_after: nanos(tat - now),
            retry_after: Some(nanos(new_tat - period - now)),
        };
        return (d, None);
    }
    let d = Decision {
        allowed: true,
        limit: quota.limit,
        remaining: remaining_at(new_tat),
        reset_after: nanos(new_tat - now),
        retry_after: None,
    };
    (d, Some(new_tat))
}

#[async_trait]
impl RateLimiter for GcraLimiter {
    async fn check_n(&self, key: &str, quota: &Quota, cost: u32) -> Result<Decision> {
        if cost == 0 {
            return Err(Error::validation("cost", "must be at least 1"));
        }
        // `Quota`'s fields are public and it is `Deserialize`, so it may not
        // have gone through `Quota::new`; a zero limit would divide by zero.
        if quota.limit == 0 || quota.period < Duration::from_millis(1) {
            return Err(Error::validation("quota", "limit must be ≥ 1 and period ≥ 1 ms"));
        }
        let idx = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut shard = self.shards[idx].lock().map_err(|_| Error::Storage {
            message: "rate limiter state poisoned".into(),
            transient: false,
            source: None,
        })?;
        // Read under the lock: a time read before it could be older than the
        // one a check that got the lock first used, and the decisions (their
        // `remaining`) would not follow the order they were made in.
        let now = self.now_nanos();
        shard.ops = shard.ops.wrapping_add(1);
        if shard.ops % SWEEP_EVERY == 0 {
            shard.tat.retain(|_, tat| *tat > now);
        }
        let (decision, new_tat) = gcra_step(shard.tat.get(key).copied(), now, quota, cost);
        if let Some(new_tat) = new_tat {
            match shard.tat.get_mut(key) {
                Some(v) => *v = new_tat,
                None => {
                    shard.tat.insert(key.to_owned(), new_tat);
                }
            }
        }
        Ok(decision)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is fine in tests
mod tests {
    use super::*;
    use crate::ManualClock;

    #[tokio::test]
    async fn burst_then_one_per_interval() {
        let clock = ManualClock::default();
        let l = GcraLimiter::new(Arc::new(clock.clone()));
        let q = Quota::per_second(4).unwrap();
        for expect_remaining in [3, 2, 1, 0] {
            let d = l.check("k", &q).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, expect_remaining);
        }
        let d = l.check("k", &q).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(250)));
        clock.advance(Duration::from_millis(250));
        assert!(l.check("k", &q).await.unwrap().allowed);
        assert!(!l.check("k", &q).await.unwrap().allowed);
        assert!(l.check("other", &q).await.unwrap().allowed);
        assert!(l.check_n("k", &q, 0).await.is_err());
        let big = l.check_n("fresh", &q, 5).await.unwrap();
        assert!(!big.allowed && big.retry_after.is_none());
    }

    #[tokio::test]
    async fn unvalidated_quota_is_an_error_not_a_panic() {
        let l = GcraLimiter::new(Arc::new(ManualClock::default()));
        for q in [Quota { limit: 0, period: Duration::from_secs(1) }, Quota { limit: 1, period: Duration::ZERO }] {
            assert!(matches!(l.check("k", &q).await, Err(Error::Validation { .. })), "{q:?}");
        }
        assert_eq!(l.tracked_keys(), 0);
    }

    #[tokio::test]
    async fn capacity_recovers_one_unit_per_interval() {
        let clock = ManualClock::default();
        let l = GcraLimiter::new(Arc::new(clock.clone()));
        let q = Quota::per_second(3).unwrap(); // interval 333_333_333 ns, not exact
        for expected in [2, 1, 0] {
            assert_eq!(l.check("k", &q).await.unwrap().remaining, expected);
        }
        let d = l.check("k", &q).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_after, Duration::from_nanos(999_999_999));
        // Two intervals later exactly two units are back.
        clock.advance(Duration::from_nanos(2 * 333_333_333));
        let d = l.check_n("k", &q, 3).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 2);
        // 3 intervals are 1 ns short of the period, so one unit is 1 ns closer.
        assert_eq!(d.retry_after, Some(Duration::from_nanos(333_333_332)));
        let d = l.check_n("k", &q, 2).await.unwrap();
        assert!(d.allowed && d.remaining == 0);
    }

    #[tokio::test]
    async fn fully_decayed_keys_are_swept() {
        let clock = ManualClock::default();
        let l = GcraLimiter::new(Arc::new(clock.clone()));
        let q = Quota::per_second(10).unwrap();
        let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        for k in &keys {
            assert!(l.check(k, &q).await.unwrap().allowed);
        }
        assert_eq!(l.tracked_keys(), 100);
        clock.advance(Duration::from_millis(100));
        // Enough too-large checks (which store nothing) on the same keys to pass
        // the sweep point of every shard that holds one.
        for _ in 0..SWEEP_EVERY {
            for k in &keys {
                assert!(!l.check_n(k, &q, 11).await.unwrap().allowed);
            }
        }
        assert_eq!(l.tracked_keys(), 0);
    }
}

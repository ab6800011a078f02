//! Conformance suite for [`crate::RateLimiter`] adapters.
//!
//! One `pub async fn` per behaviour of the port's contract, each taking the
//! adapter under test; [`run_all`] runs every one of them. Every behaviour
//! uses fresh keys (`crm-suite:<behaviour>:<uuid v7>`), so runs never collide,
//! even in a Redis shared by several test processes.
//!
//! The suite relies on real time only (an adapter backed by a server reads
//! the server's clock), with short quotas and real sleeps; the whole suite
//! takes about one second. Timing assertions carry a tolerance, and the few
//! that a badly overloaded machine could break are only made when the
//! measured elapsed time shows the premise held.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use crm_core::{GcraLimiter, testing};
//! testing::rate_limiter::run_all(&GcraLimiter::default()).await;
//! # });
//! ```
//!
//! Every failed assertion panics with a message starting
//! `rate limiter conformance: <behaviour>:`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::{Decision, Error, Quota, RateLimiter, Result};

/// How far a reported duration may exceed the exact GCRA value (coarser time
/// resolution of a backend, rounding up to milliseconds, …).
const OVER: Duration = Duration::from_millis(2);

/// How much real time may pass between two checks of one burst before the
/// exact-count assertions become meaningless; quotas below keep their
/// emission interval well above it.
const SLACK: Duration = Duration::from_millis(300);

/// Extra sleep after a `retry_after`, covering a backend clock that is a
/// little behind the local one and timer granularity.
const MARGIN: Duration = Duration::from_millis(25);

macro_rules! ensure {
    ($behaviour:expr, $cond:expr, $($fmt:tt)+) => {
        assert!($cond, "rate limiter conformance: {}: {}", $behaviour, format!($($fmt)+))
    };
}

/// A key no other run uses.
fn fresh_key(behaviour: &str) -> String {
    format!("crm-suite:{behaviour}:{}", uuid::Uuid::now_v7())
}

fn quota(behaviour: &str, limit: u32, period: Duration) -> Quota {
    Quota::new(limit, period).unwrap_or_else(|e| panic!("rate limiter conformance: {behaviour}: bad test quota: {e}"))
}

fn interval(q: &Quota) -> Duration {
    Duration::from_nanos(u64::try_from(q.emission_interval_nanos()).unwrap_or(u64::MAX))
}

async fn check_n(limiter: &dyn RateLimiter, behaviour: &str, key: &str, q: &Quota, cost: u32) -> Decision {
    match limiter.check_n(key, q, cost).await {
        Ok(d) => d,
        Err(e) => panic!("rate limiter conformance: {behaviour}: check_n(cost {cost}) failed: {e}"),
    }
}

async fn check(limiter: &dyn RateLimiter, behaviour: &str, key: &str, q: &Quota) -> Decision {
    check_n(limiter, behaviour, key, q, 1).await
}

/// Spends the whole burst of a fresh `key`, asserting each check is allowed.
async fn exhaust(limiter: &dyn RateLimiter, behaviour: &str, key: &str, q: &Quota) {
    for i in 0..q.limit {
        let d = check(limiter, behaviour, key, q).await;
        ensure!(behaviour, d.allowed, "check {} of a burst of {} was denied: {d:?}", i + 1, q.limit);
    }
}

/// Polls every future concurrently on the current task (no spawning, so the
/// futures may borrow) and returns their outputs in order.
async fn join_all<'a, T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Asserts that exactly `q.limit` of `results` were allowed, each `remaining`
/// value from `limit - 1` down to 0 appearing once among them.
fn assert_exact(behaviour: &str, q: &Quota, results: Vec<Result<Decision>>) {
    let total = results.len();
    let mut remaining = Vec::new();
    for r in results {
        match r {
            Ok(d) if d.allowed => remaining.push(d.remaining),
            Ok(d) => ensure!(behaviour, d.retry_after.is_some(), "a denied check has no retry_after: {d:?}"),
            Err(e) => panic!("rate limiter conformance: {behaviour}: a concurrent check failed: {e}"),
        }
    }
    ensure!(
        behaviour,
        remaining.len() == q.limit as usize,
        "{} of {total} concurrent checks were allowed with a limit of {}",
        remaining.len(),
        q.limit
    );
    remaining.sort_unstable();
    let expected: Vec<u32> = (0..q.limit).collect();
    ensure!(
        behaviour,
        remaining == expected,
        "allowed checks reported remaining {remaining:?}, expected each of 0..{} once",
        q.limit
    );
}

/// With a fresh key exactly `limit` consecutive checks are allowed; the next
/// is denied with a `retry_after` of about one emission interval.
pub async fn burst_of_limit_then_denied(limiter: &dyn RateLimiter) {
    const B: &str = "burst_of_limit_then_denied";
    let key = fresh_key(B);
    let q = quota(B, 10, Duration::from_secs(10));
    let t = interval(&q);
    let start = Instant::now();
    exhaust(limiter, B, &key, &q).await;
    let d = check(limiter, B, &key, &q).await;
    let elapsed = start.elapsed();
    ensure!(B, !d.allowed, "check {} after a burst of {} was allowed: {d:?}", q.limit + 1, q.limit);
    ensure!(B, d.limit == q.limit, "denied decision reports limit {} for a quota of {}", d.limit, q.limit);
    ensure!(B, d.remaining == 0, "denied decision reports remaining {}, expected 0", d.remaining);
    let Some(retry) = d.retry_after else {
        panic!("rate limiter conformance: {B}: denied decision has no retry_after: {d:?}");
    };
    ensure!(B, retry <= t + OVER, "retry_after {retry:?} exceeds one emission interval {t:?}");
    ensure!(
        B,
        retry + elapsed + SLACK >= t,
        "retry_after {retry:?} is far below one emission interval {t:?} ({elapsed:?} elapsed)"
    );
    let again = check(limiter, B, &key, &q).await;
    ensure!(B, !again.allowed, "a second check after the burst was allowed: {again:?}");
    ensure!(
        B,
        matches!(d.into_result(), Err(Error::RateLimited { retry_after }) if retry_after == retry),
        "Decision::into_result of a denial is not Error::RateLimited {{ retry_after: {retry:?} }}"
    );
}

/// Allowed checks report `remaining` from `limit - 1` down to 0, and every
/// decision echoes the quota's `limit`.
pub async fn remaining_counts_down(limiter: &dyn RateLimiter) {
    const B: &str = "remaining_counts_down";
    let key = fresh_key(B);
    let q = quota(B, 7, Duration::from_secs(14));
    let start = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..q.limit {
        let d = check(limiter, B, &key, &q).await;
        ensure!(B, d.allowed, "a check within the burst was denied: {d:?}");
        ensure!(B, d.limit == q.limit, "decision reports limit {} for a quota of {}", d.limit, q.limit);
        ensure!(B, d.retry_after.is_none(), "an allowed decision has retry_after {:?}", d.retry_after);
        seen.push(d.remaining);
    }
    let expected: Vec<u32> = (0..q.limit).rev().collect();
    if start.elapsed() < SLACK {
        ensure!(B, seen == expected, "remaining went {seen:?}, expected {expected:?}");
    }
}

/// After waiting the denied check's `retry_after`, one more check is allowed
/// (and, right after it, the next is denied again).
pub async fn allowed_again_after_retry_after(limiter: &dyn RateLimiter) {
    const B: &str = "allowed_again_after_retry_after";
    let key = fresh_key(B);
    let q = quota(B, 5, Duration::from_secs(1));
    let t = interval(&q);
    exhaust(limiter, B, &key, &q).await;
    let d = check(limiter, B, &key, &q).await;
    let denied_at = Instant::now();
    ensure!(B, !d.allowed, "the check after the burst was allowed: {d:?}");
    let Some(retry) = d.retry_after else {
        panic!("rate limiter conformance: {B}: denied decision has no retry_after: {d:?}");
    };
    ensure!(B, retry <= t + OVER, "retry_after {retry:?} exceeds one emission interval {t:?}");
    tokio::time::sleep(retry + MARGIN).await;
    let d = check(limiter, B, &key, &q).await;
    ensure!(B, d.allowed, "denied after waiting retry_after {retry:?} (+{MARGIN:?}): {d:?}");
    let next = check(limiter, B, &key, &q).await;
    // Only one emission interval has been earned, unless the sleep overshot a lot.
    if denied_at.elapsed() + SLACK / 2 < retry + t {
        ensure!(B, !next.allowed, "two checks allowed after waiting one retry_after {retry:?}: {next:?}");
    }
}

/// Once the full `reset_after` has passed, the whole burst is available again.
pub async fn full_burst_after_reset(limiter: &dyn RateLimiter) {
    const B: &str = "full_burst_after_reset";
    let key = fresh_key(B);
    let q = quota(B, 4, Duration::from_millis(200));
    let mut last = check(limiter, B, &key, &q).await;
    for _ in 1..q.limit {
        last = check(limiter, B, &key, &q).await;
    }
    ensure!(B, last.allowed, "the last check of the burst was denied: {last:?}");
    ensure!(B, last.reset_after <= q.period + OVER, "reset_after {:?} exceeds the period", last.reset_after);
    tokio::time::sleep(last.reset_after + MARGIN).await;
    let d = check(limiter, B, &key, &q).await;
    ensure!(B, d.allowed, "denied after waiting reset_after {:?}: {d:?}", last.reset_after);
    ensure!(
        B,
        d.remaining == q.limit - 1,
        "remaining {} after a full reset, expected {} (state not back to full capacity)",
        d.remaining,
        q.limit - 1
    );
}

/// Denied checks do not consume capacity: hammering a limited key does not
/// push back the moment it is allowed again, and a denied `check_n` leaves
/// the units it asked for available to a smaller one.
pub async fn denied_checks_do_not_consume(limiter: &dyn RateLimiter) {
    const B: &str = "denied_checks_do_not_consume";
    // Costs: 5 per 10 s, 3 spent, several denied asks for 3, then 2 fit exactly.
    let key = fresh_key(B);
    let q = quota(B, 5, Duration::from_secs(10));
    let d = check_n(limiter, B, &key, &q, 3).await;
    ensure!(B, d.allowed, "check_n(3) on a fresh key with limit 5 was denied: {d:?}");
    for _ in 0..5 {
        let d = check_n(limiter, B, &key, &q, 3).await;
        ensure!(B, !d.allowed, "check_n(3) with 2 units left was allowed: {d:?}");
        ensure!(B, d.remaining == 2, "a denied check_n(3) reports remaining {}, expected 2", d.remaining);
    }
    let d = check_n(limiter, B, &key, &q, 2).await;
    ensure!(B, d.allowed, "check_n(2) with 2 units left was denied (denied checks consumed capacity): {d:?}");
    ensure!(B, d.remaining == 0, "remaining {} after spending the whole burst", d.remaining);

    // Time: 5 per second, exhausted, hammered while denied, then one retry_after later allowed.
    let key = fresh_key(B);
    let q = quota(B, 5, Duration::from_secs(1));
    exhaust(limiter, B, &key, &q).await;
    let first = check(limiter, B, &key, &q).await;
    ensure!(B, !first.allowed, "the check after the burst was allowed: {first:?}");
    let Some(retry) = first.retry_after else {
        panic!("rate limiter conformance: {B}: denied decision has no retry_after: {first:?}");
    };
    for _ in 0..20 {
        let d = check(limiter, B, &key, &q).await;
        ensure!(B, !d.allowed, "a check while limited was allowed: {d:?}");
        let later = d.retry_after.unwrap_or_default();
        ensure!(B, later <= retry + OVER, "retry_after grew from {retry:?} to {later:?} while denied");
    }
    tokio::time::sleep(retry + MARGIN).await;
    let d = check(limiter, B, &key, &q).await;
    ensure!(B, d.allowed, "20 denied checks pushed back the next allowed one past retry_after {retry:?}: {d:?}");
}

/// `check_n` with `cost > limit` is denied without counting, with no
/// `retry_after` (waiting never helps).
pub async fn cost_above_limit_denied_without_counting(limiter: &dyn RateLimiter) {
    const B: &str = "cost_above_limit_denied_without_counting";
    let key = fresh_key(B);
    let q = quota(B, 5, Duration::from_secs(10));
    let d = check_n(limiter, B, &key, &q, q.limit + 1).await;
    ensure!(B, !d.allowed, "check_n(cost {}) with limit {} was allowed: {d:?}", q.limit + 1, q.limit);
    ensure!(B, d.retry_after.is_none(), "cost above limit has retry_after {:?}, expected None", d.retry_after);
    ensure!(B, d.limit == q.limit, "decision reports limit {} for a quota of {}", d.limit, q.limit);
    ensure!(B, d.remaining == q.limit, "a fresh key reports remaining {}, expected {}", d.remaining, q.limit);
    let d = check_n(limiter, B, &key, &q, u32::MAX).await;
    ensure!(B, !d.allowed && d.retry_after.is_none(), "check_n(u32::MAX) was {d:?}");
    let d = check(limiter, B, &key, &q).await;
    ensure!(
        B,
        d.allowed && d.remaining == q.limit - 1,
        "after a too-large check the key is not at full capacity: {d:?}"
    );
}

/// `check_n` with `cost == 0` is [`Error::Validation`], and counts nothing.
pub async fn zero_cost_is_validation_error(limiter: &dyn RateLimiter) {
    const B: &str = "zero_cost_is_validation_error";
    let key = fresh_key(B);
    let q = quota(B, 3, Duration::from_secs(10));
    match limiter.check_n(&key, &q, 0).await {
        Err(Error::Validation { .. }) => {}
        other => {
            panic!("rate limiter conformance: {B}: check_n(cost 0) returned {other:?}, expected Error::Validation")
        }
    }
    let d = check(limiter, B, &key, &q).await;
    ensure!(B, d.allowed && d.remaining == q.limit - 1, "after check_n(cost 0) the key is not fresh: {d:?}");
}

/// A quota that bypassed [`Quota::new`] (its fields are public, and it is
/// `Deserialize`) with a zero limit is [`Error::Validation`], never a panic.
pub async fn invalid_quota_is_validation_error(limiter: &dyn RateLimiter) {
    const B: &str = "invalid_quota_is_validation_error";
    let key = fresh_key(B);
    for q in [Quota { limit: 0, period: Duration::from_secs(1) }, Quota { limit: 3, period: Duration::ZERO }] {
        match limiter.check(&key, &q).await {
            Err(Error::Validation { .. }) => {}
            other => {
                panic!("rate limiter conformance: {B}: check with {q:?} returned {other:?}, expected Error::Validation")
            }
        }
    }
}

/// Keys are independent: exhausting one leaves another untouched.
pub async fn keys_are_independent(limiter: &dyn RateLimiter) {
    const B: &str = "keys_are_independent";
    let (a, b) = (fresh_key(B), fresh_key(B));
    let q = quota(B, 3, Duration::from_secs(10));
    exhaust(limiter, B, &a, &q).await;
    ensure!(B, !check(limiter, B, &a, &q).await.allowed, "key a was not limited after its burst");
    for expected in (0..q.limit).rev() {
        let d = check(limiter, B, &b, &q).await;
        ensure!(B, d.allowed, "key b was denied after key a was exhausted: {d:?}");
        ensure!(B, d.remaining == expected, "key b reports remaining {}, expected {expected}", d.remaining);
    }
    ensure!(B, !check(limiter, B, &a, &q).await.allowed, "key a was allowed again after checks on key b");
}

/// `check_n` consumes `cost` units: remaining drops by `cost`, and a cost
/// equal to the limit fits a fresh key exactly.
pub async fn check_n_consumes_cost(limiter: &dyn RateLimiter) {
    const B: &str = "check_n_consumes_cost";
    let key = fresh_key(B);
    let q = quota(B, 10, Duration::from_secs(20));
    let d = check_n(limiter, B, &key, &q, 4).await;
    ensure!(
        B,
        d.allowed && d.remaining == 6,
        "check_n(4) on a fresh key with limit 10 gave {d:?}, expected remaining 6"
    );
    let d = check_n(limiter, B, &key, &q, 5).await;
    ensure!(B, d.allowed && d.remaining == 1, "check_n(5) with 6 left gave {d:?}, expected remaining 1");
    let d = check_n(limiter, B, &key, &q, 2).await;
    ensure!(B, !d.allowed && d.remaining == 1, "check_n(2) with 1 left gave {d:?}, expected denied, remaining 1");
    let retry = d.retry_after.unwrap_or_default();
    let t = interval(&q);
    ensure!(
        B,
        retry <= t + OVER && retry > Duration::ZERO,
        "check_n(2) short by one unit: retry_after {retry:?}, t {t:?}"
    );
    let d = check(limiter, B, &key, &q).await;
    ensure!(B, d.allowed && d.remaining == 0, "the last unit: {d:?}");

    let key = fresh_key(B);
    let d = check_n(limiter, B, &key, &q, q.limit).await;
    ensure!(B, d.allowed && d.remaining == 0, "check_n(limit) on a fresh key gave {d:?}");
    let d = check(limiter, B, &key, &q).await;
    ensure!(B, !d.allowed, "a check after check_n(limit) was allowed: {d:?}");
}

/// `reset_after` never exceeds the period; it is about one emission interval
/// after one check and about the period after a whole burst.
pub async fn reset_after_within_period(limiter: &dyn RateLimiter) {
    const B: &str = "reset_after_within_period";
    let key = fresh_key(B);
    let q = quota(B, 4, Duration::from_secs(8));
    let t = interval(&q);
    let start = Instant::now();
    let mut decisions = Vec::new();
    for _ in 0..=q.limit {
        decisions.push(check(limiter, B, &key, &q).await);
    }
    let elapsed = start.elapsed();
    for d in &decisions {
        ensure!(
            B,
            d.reset_after <= q.period + OVER,
            "reset_after {:?} exceeds the period {:?}",
            d.reset_after,
            q.period
        );
    }
    let first = decisions[0].reset_after;
    ensure!(B, first <= t + OVER && first + SLACK >= t, "reset_after {first:?} after one check; expected about {t:?}");
    let full = decisions[q.limit as usize - 1].reset_after;
    ensure!(
        B,
        full <= q.period + OVER && full + elapsed + SLACK >= q.period,
        "reset_after {full:?} after the whole burst; expected about {:?}",
        q.period
    );
    let denied = decisions[q.limit as usize];
    ensure!(B, !denied.allowed, "check {} was allowed", q.limit + 1);
    ensure!(
        B,
        denied.reset_after <= full + OVER,
        "a denial moved reset_after from {full:?} to {:?}",
        denied.reset_after
    );
}

/// Different quotas on different keys are each enforced with their own limit.
pub async fn different_quotas_on_different_keys(limiter: &dyn RateLimiter) {
    const B: &str = "different_quotas_on_different_keys";
    let (a, b) = (fresh_key(B), fresh_key(B));
    let qa = quota(B, 2, Duration::from_secs(10));
    let qb = quota(B, 6, Duration::from_secs(30));
    for i in 0..qb.limit {
        if i < qa.limit {
            let d = check(limiter, B, &a, &qa).await;
            ensure!(B, d.allowed && d.limit == qa.limit, "key a (limit 2), check {}: {d:?}", i + 1);
        }
        let d = check(limiter, B, &b, &qb).await;
        ensure!(B, d.allowed && d.limit == qb.limit, "key b (limit 6), check {}: {d:?}", i + 1);
        ensure!(B, d.remaining == qb.limit - 1 - i, "key b reports remaining {} at check {}", d.remaining, i + 1);
    }
    let da = check(limiter, B, &a, &qa).await;
    ensure!(B, !da.allowed && da.limit == qa.limit, "key a after 2 checks: {da:?}");
    let db = check(limiter, B, &b, &qb).await;
    ensure!(B, !db.allowed && db.limit == qb.limit, "key b after 6 checks: {db:?}");
    let (ta, tb) = (interval(&qa), interval(&qb));
    let (ra, rb) = (da.retry_after.unwrap_or_default(), db.retry_after.unwrap_or_default());
    ensure!(B, ra <= ta + OVER && ra + SLACK >= ta, "key a retry_after {ra:?}, its interval is {ta:?}");
    ensure!(B, rb <= tb + OVER && rb + SLACK >= tb, "key b retry_after {rb:?}, its interval is {tb:?}");
}

/// 50 checks of one key issued at once (interleaved on this task) with a
/// limit of 20: exactly 20 are allowed.
pub async fn exact_under_concurrency(limiter: &dyn RateLimiter) {
    const B: &str = "exact_under_concurrency";
    let key = fresh_key(B);
    let q = quota(B, 20, Duration::from_secs(60));
    let futures = (0..50).map(|_| limiter.check(&key, &q)).collect();
    let results = join_all(futures).await;
    assert_exact(B, &q, results);
}

/// 50 checks of one key from spawned tasks (in parallel on a multi-threaded
/// runtime) with a limit of 20: exactly 20 are allowed. Not part of
/// [`run_all`], which borrows its limiter; call it from a
/// `#[tokio::test(flavor = "multi_thread")]`.
pub async fn exact_under_parallel_tasks(limiter: Arc<dyn RateLimiter>) {
    const B: &str = "exact_under_parallel_tasks";
    let key = fresh_key(B);
    let q = quota(B, 20, Duration::from_secs(60));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (limiter, key) = (limiter.clone(), key.clone());
        tasks.spawn(async move { limiter.check(&key, &q).await });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.unwrap_or_else(|e| panic!("rate limiter conformance: {B}: a task panicked: {e}")));
    }
    assert_exact(B, &q, results);
}

/// Two limiters sharing one backend (two processes, two connections) checking
/// one key at once, 25 checks each with a limit of 20: exactly 20 are allowed
/// in total. Not part of [`run_all`]; for shared backends only.
pub async fn exact_across_instances(first: &dyn RateLimiter, second: &dyn RateLimiter) {
    const B: &str = "exact_across_instances";
    let key = fresh_key(B);
    let q = quota(B, 20, Duration::from_secs(60));
    let futures = (0..50).map(|i| if i % 2 == 0 { first.check(&key, &q) } else { second.check(&key, &q) }).collect();
    let results = join_all(futures).await;
    assert_exact(B, &q, results);
}

/// Runs every behaviour above that takes a borrowed limiter, in turn (about
/// one second of real time, mostly sleeps).
pub async fn run_all(limiter: &dyn RateLimiter) {
    burst_of_limit_then_denied(limiter).await;
    remaining_counts_down(limiter).await;
    allowed_again_after_retry_after(limiter).await;
    full_burst_after_reset(limiter).await;
    denied_checks_do_not_consume(limiter).await;
    cost_above_limit_denied_without_counting(limiter).await;
    zero_cost_is_validation_error(limiter).await;
    invalid_quota_is_validation_error(limiter).await;
    keys_are_independent(limiter).await;
    check_n_consumes_cost(limiter).await;
    reset_after_within_period(limiter).await;
    different_quotas_on_different_keys(limiter).await;
    exact_under_concurrency(limiter).await;
}

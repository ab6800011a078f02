//! The rate limiter conformance suite against the in-memory [`GcraLimiter`],
//! on real time.

use std::sync::Arc;

use crm_core::testing::rate_limiter;
use crm_core::{GcraLimiter, RateLimiter};

#[tokio::test]
async fn gcra_limiter_passes_the_suite() {
    rate_limiter::run_all(&GcraLimiter::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcra_limiter_is_exact_under_parallel_tasks() {
    for _ in 0..20 {
        rate_limiter::exact_under_parallel_tasks(Arc::new(GcraLimiter::default())).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gcra_limiter_behind_two_handles_is_exact() {
    let limiter = Arc::new(GcraLimiter::default());
    let other: Arc<dyn RateLimiter> = limiter.clone();
    rate_limiter::exact_across_instances(limiter.as_ref(), other.as_ref()).await;
}

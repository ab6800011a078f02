//! Conformance suites: one async function per behaviour of a port, which every
//! adapter's tests call (feature `testing`).
//!
//! A new adapter is done when its whole suite passes:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use crm_core::{MemoryStore, testing};
//! use std::sync::Arc;
//! testing::store::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn crm_core::Store> }).await;
//! # });
//! ```
//!
//! Suites panic (with a message naming the behaviour) on the first deviation,
//! like any test assertion.

pub mod assistant;
pub mod connectors;
pub mod groups;
pub mod media;
pub mod rate_limiter;
pub mod store;
pub mod workflows;

/// Whether `CRM_TEST_REQUIRE_ALL` is set: then a test that lacks its service
/// must fail instead of skipping.
pub fn require_all() -> bool {
    std::env::var_os("CRM_TEST_REQUIRE_ALL").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Reads the environment variable naming a test service. When unset, prints a
/// loud skip notice and returns `None` — or panics under `CRM_TEST_REQUIRE_ALL`.
pub fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if require_all() {
                panic!("{test}: {var} is not set and CRM_TEST_REQUIRE_ALL forbids skipping");
            }
            eprintln!("SKIPPED {test}: set {var} to run it");
            None
        }
    }
}

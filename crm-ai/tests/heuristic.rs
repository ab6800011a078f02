//! The offline heuristic and the guard wrappers around it pass the
//! `Assistant` conformance suite.

use std::sync::Arc;
use std::time::Duration;

use crm_ai::Heuristic;
use crm_ai::guard::{Fallback, Limited, Metered, PriceTable, Redacting, Retry, Timeout};
use crm_core::memory::ScriptedAssistant;
use crm_core::{Assistant, GcraLimiter, ManualClock, MemoryStore, Quota, SystemClock};

#[tokio::test]
async fn heuristic_passes_the_conformance_suite() {
    crm_core::testing::assistant::run_all(&Heuristic::new()).await;
}

#[tokio::test]
async fn the_scripted_double_passes_the_conformance_suite() {
    crm_core::testing::assistant::run_all(&ScriptedAssistant::new()).await;
}

#[tokio::test]
async fn every_guard_around_the_heuristic_passes_the_conformance_suite() {
    let inner: Arc<dyn Assistant> = Arc::new(Heuristic::new());
    let timed: Arc<dyn Assistant> = Arc::new(Timeout::new(inner.clone(), Duration::from_secs(5)));
    let retried: Arc<dyn Assistant> = Arc::new(Retry::new(timed, 3, Duration::from_millis(1), Duration::from_secs(1)));
    let limiter = Arc::new(GcraLimiter::new(Arc::new(ManualClock::default())));
    let limited: Arc<dyn Assistant> = Arc::new(Limited::new(retried, limiter, Quota::per_minute(1000).expect("quota")));
    let store = Arc::new(MemoryStore::new());
    let metered: Arc<dyn Assistant> =
        Arc::new(Metered::new(limited, store, Arc::new(SystemClock), Some(1_000_000), PriceTable::default()));
    let redacting: Arc<dyn Assistant> = Arc::new(Redacting::new(metered));
    let stack = Fallback::new(redacting, inner);
    crm_core::testing::assistant::run_all(&stack).await;
}

#[tokio::test]
async fn fallback_covers_a_failing_primary_but_not_bad_input() {
    let failing = Arc::new(ScriptedAssistant::new());
    failing.fail_next(crm_core::Error::Provider {
        provider: "scripted".into(),
        transient: true,
        code: Some("http_502".into()),
        message: "bad gateway".into(),
        retry_after: None,
        source: None,
    });
    let stack = Fallback::new(failing.clone(), Arc::new(Heuristic::new()));
    let account = crm_core::AccountId::new();
    let s = stack.classify_sentiment(account, "Adorei, obrigada!").await.expect("fallback");
    assert_eq!((s.model.as_str(), s.fallback.as_deref()), ("heuristic", Some("provider:http_502")));
    let s = stack.classify_sentiment(account, "Adorei, obrigada!").await.expect("primary again");
    assert_eq!((s.model.as_str(), s.fallback), ("scripted", None));
    assert!(stack.classify_sentiment(account, "").await.is_err(), "validation is not hidden");
    assert_eq!(failing.calls().len(), 2, "bad input never reached the primary");
}

#[test]
fn prices_parse_and_estimate() {
    let t = PriceTable::parse_over_defaults("llama3=0/0, my-model=1.5/2").expect("prices");
    let usage = crm_core::domain::assistant::TokenUsage { input: 1_000_000, output: 500_000 };
    assert_eq!(t.cost_micros("my-model", usage), 2_500_000);
    assert_eq!(t.cost_micros("llama3", usage), 0);
    assert_eq!(t.cost_micros("gpt-4o-mini-2024-07-18", usage), 450_000, "a dated model uses its family's price");
    assert_eq!(t.cost_micros("unknown", usage), 0);
    for bad in ["x", "m=1", "m=a/b", "m=-1/2", "=1/2"] {
        assert!(PriceTable::parse_over_defaults(bad).is_err(), "{bad}");
    }
}

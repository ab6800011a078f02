//! Idempotency keys ([`IdempotencyStore`](crate::IdempotencyStore)): one
//! claim wins, completion and release, expiry, tenancy and scopes.

use chrono::Duration;
use std::future::Future;
use std::sync::Arc;

use super::{new_account, now};
use crate::ports::idempotency::{IDEMPOTENCY_KEY_TTL_SECONDS, IDEMPOTENCY_PENDING_SECONDS};
use crate::{Error, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    idempotency_keys_claim_complete_release(make().await).await;
    idempotency_keys_expire(make().await).await;
    idempotency_key_claims_race_to_one_winner(make().await).await;
}

/// A claim, then the stored claim for the next request; completion keeps
/// the resource; release frees the key; accounts and scopes are apart;
/// bad keys are refused.
pub async fn idempotency_keys_claim_complete_release(store: Arc<dyn Store>) {
    let a = new_account(&store, "idem-a").await;
    let b = new_account(&store, "idem-b").await;
    let t = now();
    assert_eq!(store.claim_idempotency_key(a, "automations", "k-1", "fp1", t).await.expect("claim"), None);
    let pending = store.claim_idempotency_key(a, "automations", "k-1", "fp2", t).await.expect("second claim");
    let pending = pending.expect("the first claim holds the key");
    assert_eq!((pending.fingerprint.as_str(), pending.resource_id.as_deref()), ("fp1", None));

    store.complete_idempotency_key(a, "automations", "k-1", "res-1").await.expect("complete");
    let done = store.claim_idempotency_key(a, "automations", "k-1", "fp1", t).await.expect("claim").expect("held");
    assert_eq!(done.resource_id.as_deref(), Some("res-1"));
    assert_eq!(done.fingerprint, "fp1");

    // Other accounts and scopes have their own keys.
    assert_eq!(store.claim_idempotency_key(b, "automations", "k-1", "fp9", t).await.expect("b"), None);
    assert_eq!(store.claim_idempotency_key(a, "sequences", "k-1", "fp9", t).await.expect("scope"), None);

    // Release frees it; completing or releasing a missing key is a no-op.
    store.release_idempotency_key(a, "automations", "k-1").await.expect("release");
    assert_eq!(store.claim_idempotency_key(a, "automations", "k-1", "fp3", t).await.expect("again"), None);
    store.complete_idempotency_key(a, "automations", "missing", "r").await.expect("no-op");
    store.release_idempotency_key(a, "automations", "missing").await.expect("no-op");
    assert_eq!(store.claim_idempotency_key(a, "automations", "missing", "fp", t).await.expect("claim"), None);

    for (scope, key) in [("automations", ""), ("automations", "a b"), ("Bad", "k")] {
        let r = store.claim_idempotency_key(a, scope, key, "fp", t).await;
        assert!(matches!(r, Err(Error::Validation { .. })), "{scope:?} {key:?}: {r:?}");
    }
}

/// A pending claim is taken over after the pending time; a completed one
/// after the key's lifetime.
pub async fn idempotency_keys_expire(store: Arc<dyn Store>) {
    let a = new_account(&store, "idem-exp").await;
    let t = now();
    assert_eq!(store.claim_idempotency_key(a, "sequences", "p", "fp1", t).await.expect("claim"), None);
    let before = t + Duration::seconds(IDEMPOTENCY_PENDING_SECONDS - 1);
    assert!(store.claim_idempotency_key(a, "sequences", "p", "fp2", before).await.expect("held").is_some());
    let after = t + Duration::seconds(IDEMPOTENCY_PENDING_SECONDS);
    assert_eq!(store.claim_idempotency_key(a, "sequences", "p", "fp2", after).await.expect("taken over"), None);

    assert_eq!(store.claim_idempotency_key(a, "sequences", "c", "fp1", t).await.expect("claim"), None);
    store.complete_idempotency_key(a, "sequences", "c", "res").await.expect("complete");
    let before = t + Duration::seconds(IDEMPOTENCY_KEY_TTL_SECONDS - 1);
    let held = store.claim_idempotency_key(a, "sequences", "c", "fp2", before).await.expect("held");
    assert_eq!(held.and_then(|h| h.resource_id).as_deref(), Some("res"));
    let after = t + Duration::seconds(IDEMPOTENCY_KEY_TTL_SECONDS);
    assert_eq!(store.claim_idempotency_key(a, "sequences", "c", "fp2", after).await.expect("expired"), None);
    let fresh = store.claim_idempotency_key(a, "sequences", "c", "fp3", after).await.expect("claim").expect("held");
    assert_eq!((fresh.fingerprint.as_str(), fresh.resource_id), ("fp2", None));
}

/// Of 16 concurrent claims of one key, exactly one wins.
pub async fn idempotency_key_claims_race_to_one_winner(store: Arc<dyn Store>) {
    let a = new_account(&store, "idem-race").await;
    let t = now();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.claim_idempotency_key(a, "automations", "race", &format!("fp{i}"), t).await.expect("claim")
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.expect("task").is_none() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

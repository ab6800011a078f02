//! Idempotency keys for creation requests (`Idempotency-Key` on
//! `POST /automations`, `POST /sequences`, …): a retried request with the
//! same key gets the first request's resource instead of a second one.
//!
//! A key is claimed before the work and completed with the created
//! resource's id after it:
//!
//! 1. [`IdempotencyStore::claim_idempotency_key`] — `None`: this request
//!    owns the key, do the work; `Some(stored)`: an earlier request has it
//!    (compare fingerprints: same request → replay `stored.resource_id`,
//!    another request → conflict; no resource yet → still in flight).
//! 2. [`IdempotencyStore::complete_idempotency_key`] with the resource's id,
//!    or [`IdempotencyStore::release_idempotency_key`] when the work failed
//!    (the key may be retried).
//!
//! Keys are kept [`IDEMPOTENCY_KEY_TTL_SECONDS`] (one day, as Stripe does);
//! a claim never completed (the process died mid-request) is taken over
//! after [`IDEMPOTENCY_PENDING_SECONDS`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

use crate::{AccountId, Error, Result};

/// How long a completed key answers with its resource.
pub const IDEMPOTENCY_KEY_TTL_SECONDS: i64 = 86_400;
/// How long a claim without a resource blocks the key.
pub const IDEMPOTENCY_PENDING_SECONDS: i64 = 60;

/// A claimed key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdempotencyKey {
    /// The fingerprint of the request that claimed it (a hash of its body).
    pub fingerprint: String,
    /// The created resource's id; `None` while that request is in flight.
    pub resource_id: Option<String>,
    /// When it was claimed.
    pub created_at: DateTime<Utc>,
}

/// Checks a key (1–255 printable ASCII without spaces) and a scope (1–64
/// of `a-z`, `_`, `.`). [`Error::Validation`] naming `Idempotency-Key` or
/// `scope` otherwise.
///
/// ```
/// use crm_core::ports::idempotency::check_idempotency_key;
/// assert!(check_idempotency_key("automations", "order-42").is_ok());
/// assert!(check_idempotency_key("automations", "a b").is_err());
/// assert!(check_idempotency_key("Bad Scope", "k").is_err());
/// ```
pub fn check_idempotency_key(scope: &str, key: &str) -> Result<()> {
    if !(1..=255).contains(&key.len()) || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::validation("Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces"));
    }
    if !(1..=64).contains(&scope.len()) || !scope.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.') {
        return Err(Error::validation("scope", "must be 1 to 64 of a-z, _ and ."));
    }
    Ok(())
}

/// Whether a stored claim no longer holds its key at `now`: completed
/// longer than [`IDEMPOTENCY_KEY_TTL_SECONDS`] ago, or pending longer than
/// [`IDEMPOTENCY_PENDING_SECONDS`]. Every adapter decides with it.
pub fn idempotency_key_expired(stored: &StoredIdempotencyKey, now: DateTime<Utc>) -> bool {
    let age = (now - stored.created_at).num_seconds();
    match stored.resource_id {
        Some(_) => age >= IDEMPOTENCY_KEY_TTL_SECONDS,
        None => age >= IDEMPOTENCY_PENDING_SECONDS,
    }
}

/// Claimed idempotency keys, per account and scope.
///
/// Contract (checked by `crm_core::testing::store::idempotency`):
/// - `claim` is atomic: of concurrent claims of one (account, scope, key)
///   exactly one gets `None`; the others get the stored claim.
/// - An expired claim ([`idempotency_key_expired`]) is replaced by a new one.
/// - `complete` sets the resource of a claim; `release` removes it; both
///   are no-ops on a missing key. Keys of other accounts or scopes are
///   never seen.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + Debug + 'static {
    /// Claims `key` in `scope` for a request with `fingerprint` at `now`.
    /// `None`: claimed now; `Some`: the live claim of an earlier request.
    /// [`Error::Validation`] when [`check_idempotency_key`] refuses it.
    async fn claim_idempotency_key(
        &self,
        account: AccountId,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredIdempotencyKey>>;

    /// Records the resource the claimed request created.
    async fn complete_idempotency_key(
        &self,
        account: AccountId,
        scope: &str,
        key: &str,
        resource_id: &str,
    ) -> Result<()>;

    /// Gives up a claim (its request failed), so the key can be used again.
    async fn release_idempotency_key(&self, account: AccountId, scope: &str, key: &str) -> Result<()>;
}

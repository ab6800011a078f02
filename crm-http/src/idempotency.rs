//! `Idempotency-Key` on creation routes that create a resource without a
//! natural key of their own (`POST /automations`, `POST /sequences`): the
//! key is claimed in the store's [`IdempotencyStore`](crm_core::IdempotencyStore)
//! before the work and completed with the created resource's id after it.
//!
//! - A retry with the same key and the same body answers the first
//!   request's resource (now) with `Idempotent-Replayed: true`.
//! - The same key with another body is 409; so is a key whose first request
//!   is still in flight (retry), or whose resource was deleted since.
//! - A request that fails releases its key, so a corrected retry may use it.
//!
//! Keys live one day.

use axum::http::{HeaderMap, HeaderName};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::future::Future;

use crm_core::{AccountId, Error, StoredIdempotencyKey};

use crate::error::ApiError;
use crate::state::AppState;

/// The `Idempotent-Replayed` response header.
pub(crate) const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's `Idempotency-Key`, checked (1–255 printable ASCII, no spaces).
pub(crate) fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().map_err(|_| {
        ApiError::validation("Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces")
    })?;
    crm_core::ports::idempotency::check_idempotency_key("request", key)?;
    Ok(Some(key.to_owned()))
}

/// A creation request as the key sees it.
pub(crate) struct Creation<'a, B> {
    /// What is created (`automations`, `sequences`): keys are per scope.
    pub scope: &'static str,
    /// The request's `Idempotency-Key` ([`key`]).
    pub key: Option<String>,
    /// The parsed body, fingerprinted.
    pub body: &'a B,
}

/// Runs `create` once per key in the creation's scope: the resource and
/// whether it was replayed. Without a key it just runs `create`.
pub(crate) async fn create_once<T, B, C, CF, G, GF>(
    state: &AppState,
    account: AccountId,
    creation: Creation<'_, B>,
    id_of: impl FnOnce(&T) -> String,
    create: C,
    get: G,
) -> Result<(T, bool), ApiError>
where
    B: Serialize,
    C: FnOnce() -> CF,
    CF: Future<Output = crm_core::Result<T>>,
    G: FnOnce(String) -> GF,
    GF: Future<Output = crm_core::Result<T>>,
{
    let Creation { scope, key, body } = creation;
    let Some(key) = key else { return Ok((create().await?, false)) };
    // A derived `Serialize` of a parsed body does not fail.
    let json = serde_json::to_vec(body).unwrap_or_default();
    let fingerprint: String = Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect();
    let store = state.crm().store();
    let now = state.crm().clock().now();
    match store.claim_idempotency_key(account, scope, &key, &fingerprint, now).await? {
        None => match create().await {
            Ok(v) => {
                if let Err(e) = store.complete_idempotency_key(account, scope, &key, &id_of(&v)).await {
                    tracing::warn!(error = %e, scope, "could not complete an idempotency key; a retry may create again");
                }
                Ok((v, false))
            }
            Err(e) => {
                if let Err(r) = store.release_idempotency_key(account, scope, &key).await {
                    tracing::warn!(error = %r, scope, "could not release an idempotency key");
                }
                Err(e.into())
            }
        },
        Some(StoredIdempotencyKey { fingerprint: f, .. }) if f != fingerprint => Err(Error::conflict(
            "Idempotency-Key",
            "this key was already used with a different request body; use a new key",
        )
        .into()),
        Some(StoredIdempotencyKey { resource_id: None, .. }) => {
            Err(Error::conflict("Idempotency-Key", "a request with this key is still being processed; retry shortly")
                .into())
        }
        Some(StoredIdempotencyKey { resource_id: Some(id), .. }) => match get(id).await {
            Ok(v) => Ok((v, true)),
            Err(Error::NotFound { .. }) => Err(Error::conflict(
                "Idempotency-Key",
                "what the first request with this key created was deleted since; use a new key",
            )
            .into()),
            Err(e) => Err(e.into()),
        },
    }
}

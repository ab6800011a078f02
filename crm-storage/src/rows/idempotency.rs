//! Idempotency keys: the statements both dialects share, expanded in each
//! dialect's module by [`idempotency_store!`]. Times are microseconds since
//! the Unix epoch in both dialects (`BIGINT`/`INTEGER`).

/// Drops the key's expired claim: `$1` account, `$2` scope, `$3` key, `$4`
/// the newest pending claim time that has expired, `$5` the newest
/// completed claim time that has.
pub(crate) const DROP_EXPIRED: &str = "DELETE FROM idempotency_keys \
     WHERE account_id = $1 AND scope = $2 AND idem_key = $3 \
     AND ((resource_id IS NULL AND created_at <= $4) OR created_at <= $5)";

/// Claims a key: `$1` account, `$2` scope, `$3` key, `$4` fingerprint, `$5` now.
pub(crate) const CLAIM: &str = "INSERT INTO idempotency_keys (account_id, scope, idem_key, fingerprint, resource_id, created_at) \
     VALUES ($1, $2, $3, $4, NULL, $5) ON CONFLICT (account_id, scope, idem_key) DO NOTHING";

/// The stored claim: `$1` account, `$2` scope, `$3` key.
pub(crate) const STORED: &str = "SELECT fingerprint, resource_id, created_at FROM idempotency_keys \
     WHERE account_id = $1 AND scope = $2 AND idem_key = $3";

/// Completes a claim: `$1` account, `$2` scope, `$3` key, `$4` resource id.
pub(crate) const COMPLETE: &str =
    "UPDATE idempotency_keys SET resource_id = $4 WHERE account_id = $1 AND scope = $2 AND idem_key = $3";

/// Releases a claim: `$1` account, `$2` scope, `$3` key.
pub(crate) const RELEASE: &str = "DELETE FROM idempotency_keys WHERE account_id = $1 AND scope = $2 AND idem_key = $3";

/// Microseconds since the epoch.
pub(crate) fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// [`IdempotencyStore`](crm_core::IdempotencyStore) for a SQL store, the
/// same statements for both dialects: expanded in each dialect's module,
/// where `super::commit` and the store's `write()` are that dialect's.
macro_rules! idempotency_store {
    ($store:ty) => {
        #[::async_trait::async_trait]
        impl ::crm_core::IdempotencyStore for $store {
            async fn claim_idempotency_key(
                &self,
                account: ::crm_core::AccountId,
                scope: &str,
                key: &str,
                fingerprint: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::crm_core::Result<Option<::crm_core::StoredIdempotencyKey>> {
                use ::crm_core::ports::idempotency::{IDEMPOTENCY_KEY_TTL_SECONDS, IDEMPOTENCY_PENDING_SECONDS};
                use ::sqlx::Row as _;
                use $crate::rows::idempotency::{CLAIM, DROP_EXPIRED, STORED, micros};
                ::crm_core::ports::idempotency::check_idempotency_key(scope, key)?;
                let db = |e| $crate::error::db("claiming an idempotency key", e);
                let account = account.into_uuid();
                let pending = micros(now - ::chrono::Duration::seconds(IDEMPOTENCY_PENDING_SECONDS));
                let completed = micros(now - ::chrono::Duration::seconds(IDEMPOTENCY_KEY_TTL_SECONDS));
                let mut tx = self.write().await?;
                ::sqlx::query(DROP_EXPIRED)
                    .bind(account)
                    .bind(scope)
                    .bind(key)
                    .bind(pending)
                    .bind(completed)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                let claimed = ::sqlx::query(CLAIM)
                    .bind(account)
                    .bind(scope)
                    .bind(key)
                    .bind(fingerprint)
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected()
                    == 1;
                let stored = if claimed {
                    None
                } else {
                    let row = ::sqlx::query(STORED)
                        .bind(account)
                        .bind(scope)
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db)?;
                    let created: i64 = row.try_get("created_at").map_err(db)?;
                    Some(::crm_core::StoredIdempotencyKey {
                        fingerprint: row.try_get("fingerprint").map_err(db)?,
                        resource_id: row.try_get("resource_id").map_err(db)?,
                        created_at: ::chrono::DateTime::from_timestamp_micros(created).unwrap_or_default(),
                    })
                };
                super::commit(tx).await?;
                Ok(stored)
            }

            async fn complete_idempotency_key(
                &self,
                account: ::crm_core::AccountId,
                scope: &str,
                key: &str,
                resource_id: &str,
            ) -> ::crm_core::Result<()> {
                let mut tx = self.write().await?;
                ::sqlx::query($crate::rows::idempotency::COMPLETE)
                    .bind(account.into_uuid())
                    .bind(scope)
                    .bind(key)
                    .bind(resource_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| $crate::error::db("completing an idempotency key", e))?;
                super::commit(tx).await
            }

            async fn release_idempotency_key(
                &self,
                account: ::crm_core::AccountId,
                scope: &str,
                key: &str,
            ) -> ::crm_core::Result<()> {
                let mut tx = self.write().await?;
                ::sqlx::query($crate::rows::idempotency::RELEASE)
                    .bind(account.into_uuid())
                    .bind(scope)
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| $crate::error::db("releasing an idempotency key", e))?;
                super::commit(tx).await
            }
        }
    };
}
pub(crate) use idempotency_store;

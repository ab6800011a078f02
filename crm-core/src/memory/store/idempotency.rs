//! [`IdempotencyStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::ports::idempotency::{
    IdempotencyStore, StoredIdempotencyKey, check_idempotency_key, idempotency_key_expired,
};
use crate::{AccountId, Result};

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim_idempotency_key(
        &self,
        account: AccountId,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredIdempotencyKey>> {
        check_idempotency_key(scope, key)?;
        let mut s = self.lock();
        let id = (account, scope.to_owned(), key.to_owned());
        match s.idempotency_keys.get(&id) {
            Some(stored) if !idempotency_key_expired(stored, now) => Ok(Some(stored.clone())),
            _ => {
                let claim =
                    StoredIdempotencyKey { fingerprint: fingerprint.to_owned(), resource_id: None, created_at: now };
                s.idempotency_keys.insert(id, claim);
                Ok(None)
            }
        }
    }

    async fn complete_idempotency_key(
        &self,
        account: AccountId,
        scope: &str,
        key: &str,
        resource_id: &str,
    ) -> Result<()> {
        let mut s = self.lock();
        if let Some(stored) = s.idempotency_keys.get_mut(&(account, scope.to_owned(), key.to_owned())) {
            stored.resource_id = Some(resource_id.to_owned());
        }
        Ok(())
    }

    async fn release_idempotency_key(&self, account: AccountId, scope: &str, key: &str) -> Result<()> {
        self.lock().idempotency_keys.remove(&(account, scope.to_owned(), key.to_owned()));
        Ok(())
    }
}

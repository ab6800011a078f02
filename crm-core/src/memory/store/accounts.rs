//! [`AccountStore`] for [`MemoryStore`]: accounts, users and API keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::ports::store::{check_account_with_key, check_event_account};
use crate::{Account, AccountId, AccountStore, ApiKey, ApiKeyId, Email, Error, Event, Result, Role, User, UserId};

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_account(&self, account: &Account, event: &Event) -> Result<()> {
        check_event_account(account.id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.accounts.contains_key(&account.id) {
            return Err(Error::conflict("account", "id already exists"));
        }
        s.accounts.insert(account.id, account.clone());
        s.append(event);
        Ok(())
    }

    async fn create_account_with_key(&self, account: &Account, key: &ApiKey, events: &[Event; 2]) -> Result<()> {
        check_account_with_key(account, key, events)?;
        let mut s = self.lock();
        s.ensure_new(&events[0])?;
        s.ensure_new(&events[1])?;
        if s.accounts.contains_key(&account.id) {
            return Err(Error::conflict("account", "id already exists"));
        }
        if s.api_keys.values().any(|k| k.prefix == key.prefix) || s.api_keys.contains_key(&key.id) {
            return Err(Error::conflict("api_key", "prefix already exists"));
        }
        s.accounts.insert(account.id, account.clone());
        s.api_keys.insert(key.id, key.clone());
        s.append(&events[0]);
        s.append(&events[1]);
        Ok(())
    }

    async fn get_account(&self, id: AccountId) -> Result<Account> {
        self.lock().accounts.get(&id).cloned().ok_or(Error::not_found("account"))
    }

    async fn update_account(&self, account: &Account, event: &Event) -> Result<Account> {
        check_event_account(account.id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let stored = s.accounts.get_mut(&account.id).ok_or(Error::not_found("account"))?;
        stored.name.clone_from(&account.name);
        stored.time_zone.clone_from(&account.time_zone);
        let stored = stored.clone();
        s.append(event);
        Ok(stored)
    }

    async fn create_user(&self, user: &User, event: &Event) -> Result<()> {
        check_event_account(user.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if !s.accounts.contains_key(&user.account_id) {
            return Err(Error::not_found("account"));
        }
        if s.users.values().any(|u| u.email == user.email) || s.users.contains_key(&user.id) {
            return Err(Error::conflict("user", "e-mail already registered"));
        }
        s.users.insert(user.id, user.clone());
        s.append(event);
        Ok(())
    }

    async fn get_user(&self, account: AccountId, id: UserId) -> Result<User> {
        self.lock().users.get(&id).filter(|u| u.account_id == account).cloned().ok_or(Error::not_found("user"))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>> {
        Ok(self.lock().users.values().find(|u| &u.email == email).cloned())
    }

    async fn list_users(&self, account: AccountId) -> Result<Vec<User>> {
        Ok(self.lock().users.values().filter(|u| u.account_id == account).cloned().collect())
    }

    async fn create_api_key(&self, key: &ApiKey, event: &Event) -> Result<()> {
        check_event_account(key.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if !s.accounts.contains_key(&key.account_id) {
            return Err(Error::not_found("account"));
        }
        if s.api_keys.values().any(|k| k.prefix == key.prefix) || s.api_keys.contains_key(&key.id) {
            return Err(Error::conflict("api_key", "prefix already exists"));
        }
        s.api_keys.insert(key.id, key.clone());
        s.append(event);
        Ok(())
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>> {
        Ok(self.lock().api_keys.values().find(|k| k.prefix == prefix).cloned())
    }

    async fn list_api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>> {
        Ok(self.lock().api_keys.values().filter(|k| k.account_id == account).cloned().collect())
    }

    async fn revoke_api_key(
        &self,
        account: AccountId,
        id: ApiKeyId,
        up_to: Role,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<ApiKey> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let key = s.api_keys.get_mut(&id).filter(|k| k.account_id == account).ok_or(Error::not_found("api_key"))?;
        if !up_to.includes(key.role) {
            return Err(crate::ports::store::revoke_forbidden(key.role));
        }
        if key.revoked_at.is_some() {
            return Ok(key.clone());
        }
        key.revoked_at = Some(at);
        let key = key.clone();
        s.append(event);
        Ok(key)
    }
}

//! Accounts, users, API keys and login.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Crm;
use crate::domain::account::AccountPatch;
use crate::{Account, AccountId, ApiKey, ApiKeyId, ApiKeyToken, Error, EventType, Result, Role, User, UserId};

impl Crm {
    /// Creates an account (`account.created`).
    pub async fn create_account(&self, name: &str) -> Result<Account> {
        let account = Account::new(name, self.now())?;
        let event = self.event(account.id, EventType::ACCOUNT_CREATED, &account);
        self.store.create_account(&account, &event).await?;
        Ok(account)
    }

    /// Changes the account's name and/or time zone (`account.updated`, with
    /// the account as it now is). [`AccountPatch::time_zone`]: absent leaves
    /// it, `Some(None)` clears it (UTC), `Some(Some(name))` sets an IANA zone.
    /// A call that changes nothing writes no event. [`Error::Validation`]
    /// on `name` or `time_zone`; [`Error::NotFound`] when the account is missing.
    pub async fn update_account(&self, account: AccountId, patch: &AccountPatch) -> Result<Account> {
        let stored = self.store.get_account(account).await?;
        let mut changed = stored.clone();
        if let Some(name) = &patch.name {
            changed.rename(name)?;
        }
        if let Some(tz) = &patch.time_zone {
            changed.set_time_zone(tz.as_deref())?;
        }
        if changed == stored {
            return Ok(stored);
        }
        let event = self.event(account, EventType::ACCOUNT_UPDATED, &changed);
        self.store.update_account(&changed, &event).await
    }

    /// The account's time zone (`None`: UTC), which business-hours
    /// conditions and send windows without their own zone or offset follow.
    /// A missing account has none.
    pub async fn account_zone(&self, account: AccountId) -> Result<Option<chrono_tz::Tz>> {
        match self.store.get_account(account).await {
            Ok(a) => Ok(a.zone()),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates `account` (built with [`Account::new`], its id possibly
    /// fixed) and an owner API key named `key_name`, in one transaction
    /// (`account.created`, `api_key.created`): a crash never leaves an
    /// account without its key. The token is returned once and never stored.
    /// [`Error::Conflict`] when the account id exists.
    pub async fn create_account_with_owner_key(
        &self,
        account: Account,
        key_name: &str,
    ) -> Result<(Account, ApiKey, ApiKeyToken)> {
        let now = self.now();
        let (key, token) = ApiKey::generate(account.id, key_name, Role::Owner, None, now)?;
        let events = [
            self.event(account.id, EventType::ACCOUNT_CREATED, &account),
            self.event(account.id, EventType::API_KEY_CREATED, &key_payload(&key)),
        ];
        self.store.create_account_with_key(&account, &key, &events).await?;
        Ok((account, key, token))
    }

    /// Creates a user with a hashed password (`user.created`, without the hash).
    /// [`Error::Conflict`] when the e-mail is registered.
    pub async fn create_user(
        &self,
        account: AccountId,
        email: &str,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<User> {
        let user = User::new(account, email, name, role, password, self.now())?;
        let event = self.event(
            account,
            EventType::USER_CREATED,
            &json!({ "id": user.id, "email": user.email, "name": user.name, "role": user.role }),
        );
        self.store.create_user(&user, &event).await?;
        Ok(user)
    }

    /// Checks an e-mail and password; [`Error::Unauthorized`] on any mismatch
    /// (unknown e-mail and wrong password look the same).
    pub async fn verify_login(&self, email: &str, password: &str) -> Result<User> {
        let email = crate::Email::parse(email).map_err(|_| Error::Unauthorized)?;
        let user = self.store.find_user_by_email(&email).await?;
        match user {
            Some(u) if u.password_hash.verify(password) => Ok(u),
            Some(_) => Err(Error::Unauthorized),
            None => {
                // Spend the same time as a real check so timing does not reveal
                // which e-mails exist.
                let _ = crate::PasswordHash::from_phc(DUMMY_HASH).verify(password);
                Err(Error::Unauthorized)
            }
        }
    }

    /// Creates an API key; the token is returned once and never stored.
    pub async fn create_api_key(
        &self,
        account: AccountId,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(ApiKey, ApiKeyToken)> {
        let (key, token) = ApiKey::generate(account, name, role, expires_at, self.now())?;
        let event = self.event(account, EventType::API_KEY_CREATED, &key_payload(&key));
        self.store.create_api_key(&key, &event).await?;
        Ok((key, token))
    }

    /// Revokes a key of any role (`api_key.revoked`): see
    /// [`Crm::revoke_api_key_up_to`].
    pub async fn revoke_api_key(&self, account: AccountId, id: ApiKeyId) -> Result<ApiKey> {
        self.revoke_api_key_up_to(account, id, Role::Owner).await
    }

    /// Revokes a key (`api_key.revoked`) in one statement, unless its role is
    /// above `up_to` (the caller's role; [`Error::Forbidden`]). In this
    /// process the key stops working at once (its cache entry is dropped);
    /// other processes with a key cache notice within their cache lifetime.
    pub async fn revoke_api_key_up_to(&self, account: AccountId, id: ApiKeyId, up_to: Role) -> Result<ApiKey> {
        let now = self.now();
        let event = self.event(account, EventType::API_KEY_REVOKED, &json!({ "id": id, "revoked_at": now }));
        let key = self.store.revoke_api_key(account, id, up_to, now, &event).await?;
        self.keys.forget(&key.prefix);
        Ok(key)
    }

    /// The key a presented token belongs to, if it is valid now;
    /// [`Error::Unauthorized`] otherwise. With a key cache
    /// ([`CrmBuilder::api_key_cache`](super::CrmBuilder::api_key_cache)) a
    /// key read from the store is reused for that long; expiry, revocation
    /// as read and the secret are checked on every call.
    pub async fn authenticate(&self, presented: &str) -> Result<ApiKey> {
        let prefix = ApiKeyToken::prefix_of(presented).ok_or(Error::Unauthorized)?;
        let now = self.now();
        let key = match self.keys.get(prefix, now) {
            Some(k) => k,
            None => {
                let k = self.store.find_api_key_by_prefix(prefix).await?.ok_or(Error::Unauthorized)?;
                self.keys.put(&k, now);
                k
            }
        };
        if key.verify(presented, now) { Ok(key) } else { Err(Error::Unauthorized) }
    }

    /// A user of the account.
    pub async fn get_user(&self, account: AccountId, id: UserId) -> Result<User> {
        self.store.get_user(account, id).await
    }
}

fn key_payload(k: &ApiKey) -> serde_json::Value {
    json!({ "id": k.id, "name": k.name, "prefix": k.prefix, "role": k.role, "expires_at": k.expires_at })
}

/// A valid argon2id hash of a random string, verified against when a login
/// e-mail is unknown so both paths cost the same.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0+2mOwzvRkFsvQjPNYxUNb8z4KJqhKaFw3BfEGvbq0s";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_costs_the_same_as_a_real_one() {
        // A malformed dummy would fail to parse and return at once, letting
        // login timing reveal which e-mails exist.
        let dummy = argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).expect("the dummy hash parses");
        let real = crate::PasswordHash::hash("some password").expect("hashing works");
        let real = argon2::password_hash::phc::PasswordHash::new(real.as_phc()).expect("a real hash parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params.to_string(), real.params.to_string());
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    }
}

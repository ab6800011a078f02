//! [`AccountStore`] over PostgreSQL: accounts, users and API keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::ports::store::{check_account_with_key, check_event_account};
use crm_core::{Account, AccountId, AccountStore, ApiKey, ApiKeyId, Email, Error, Event, Result, Role, User, UserId};

use super::{PgStore, Tx, append, commit};
use crate::error::db;
use crate::rows::accounts::{REVOKE_API_KEY, api_key_row, role_rank, unrevoked};

crate::rows::accounts::update_account_fn!(PgStore);

#[async_trait]
impl AccountStore for PgStore {
    async fn create_account(&self, account: &Account, event: &Event) -> Result<()> {
        check_event_account(account.id, event)?;
        let mut tx = self.write().await?;
        insert_account(&mut tx, account).await?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn create_account_with_key(&self, account: &Account, key: &ApiKey, events: &[Event; 2]) -> Result<()> {
        check_account_with_key(account, key, events)?;
        let mut tx = self.write().await?;
        insert_account(&mut tx, account).await?;
        insert_api_key(&mut tx, key).await?;
        append(&mut tx, &events[0]).await?;
        append(&mut tx, &events[1]).await?;
        commit(tx).await
    }

    async fn get_account(&self, id: AccountId) -> Result<Account> {
        crate::rows::accounts::get_account(self, id).await
    }

    async fn update_account(&self, account: &Account, event: &Event) -> Result<Account> {
        update_account(self, account, event).await
    }

    async fn create_user(&self, user: &User, event: &Event) -> Result<()> {
        check_event_account(user.account_id, event)?;
        let mut tx = self.write().await?;
        account_exists(&mut tx, user.account_id).await?;
        sqlx::query(
            "INSERT INTO users (id, account_id, email, name, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id.into_uuid())
        .bind(user.account_id.into_uuid())
        .bind(user.email.as_str())
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(user.password_hash.as_phc())
        .bind(user.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("creating a user", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_user(&self, account: AccountId, id: UserId) -> Result<User> {
        crate::rows::accounts::get_user(self, account, id).await
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>> {
        crate::rows::accounts::find_user_by_email(self, email).await
    }

    async fn list_users(&self, account: AccountId) -> Result<Vec<User>> {
        crate::rows::accounts::list_users(self, account).await
    }

    async fn create_api_key(&self, key: &ApiKey, event: &Event) -> Result<()> {
        check_event_account(key.account_id, event)?;
        let mut tx = self.write().await?;
        account_exists(&mut tx, key.account_id).await?;
        insert_api_key(&mut tx, key).await?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>> {
        crate::rows::accounts::find_api_key_by_prefix(self, prefix).await
    }

    async fn list_api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>> {
        crate::rows::accounts::list_api_keys(self, account).await
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
        let mut tx = self.write().await?;
        let revoked = sqlx::query(REVOKE_API_KEY)
            .bind(at)
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .bind(role_rank(up_to))
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("revoking an API key", e))?;
        if let Some(row) = revoked {
            let key = api_key_row(&row)?;
            append(&mut tx, event).await?;
            commit(tx).await?;
            return Ok(key);
        }
        sqlx::query("SELECT * FROM api_keys WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("reading an API key", e))?
            .map(|r| api_key_row(&r))
            .transpose()
            .and_then(|found| unrevoked(found, up_to))
    }
}

async fn account_exists(tx: &mut Tx, account: AccountId) -> Result<()> {
    let found = sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
        .bind(account.into_uuid())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| db("looking up an account", e))?;
    found.map(|_| ()).ok_or(Error::not_found("account"))
}

async fn insert_account(tx: &mut Tx, account: &Account) -> Result<()> {
    sqlx::query("INSERT INTO accounts (id, name, created_at, time_zone) VALUES ($1, $2, $3, $4)")
        .bind(account.id.into_uuid())
        .bind(&account.name)
        .bind(account.created_at)
        .bind(&account.time_zone)
        .execute(&mut **tx)
        .await
        .map_err(|e| db("creating an account", e))?;
    Ok(())
}

async fn insert_api_key(tx: &mut Tx, key: &ApiKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, name, prefix, hash, role, created_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(key.id.into_uuid())
    .bind(key.account_id.into_uuid())
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(&key.hash)
    .bind(key.role.as_str())
    .bind(key.created_at)
    .bind(key.expires_at)
    .bind(key.revoked_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| db("creating an API key", e))?;
    Ok(())
}

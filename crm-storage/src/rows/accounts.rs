//! Accounts, users and API keys: row decoding and the reads both dialects share.

use crm_core::{Account, AccountId, ApiKey, ApiKeyId, Email, Error, PasswordHash, Result, Role, User, UserId};

use super::{Columns, Fetch};

/// An `accounts` row.
pub(crate) fn account_row(r: &impl Columns) -> Result<Account> {
    Ok(Account {
        id: AccountId::from_uuid(r.uuid("id")?),
        name: r.text("name")?,
        created_at: r.time("created_at")?,
        time_zone: r.opt_text("time_zone")?,
    })
}

/// Sets an account's name (`$1`) and time zone (`$2`); `$3` the account.
pub(crate) const UPDATE_ACCOUNT: &str = "UPDATE accounts SET name = $1, time_zone = $2 WHERE id = $3 RETURNING *";

/// `update_account(store, account, event)`:
/// [`AccountStore::update_account`](crm_core::AccountStore::update_account)
/// for a dialect whose module has `append` and `commit` and whose store has
/// `write()` (the same shape in both): the update and its event in one
/// transaction.
macro_rules! update_account_fn {
    ($store:ty) => {
        async fn update_account(
            store: &$store,
            account: &::crm_core::Account,
            event: &::crm_core::Event,
        ) -> ::crm_core::Result<::crm_core::Account> {
            ::crm_core::ports::store::check_event_account(account.id, event)?;
            let mut tx = store.write().await?;
            let row = ::sqlx::query($crate::rows::accounts::UPDATE_ACCOUNT)
                .bind(&account.name)
                .bind(&account.time_zone)
                .bind(account.id.into_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| $crate::error::db("updating an account", e))?
                .ok_or(::crm_core::Error::not_found("account"))?;
            super::append(&mut tx, event).await?;
            super::commit(tx).await?;
            $crate::rows::accounts::account_row(&row)
        }
    };
}
pub(crate) use update_account_fn;

/// A `users` row.
pub(crate) fn user_row(r: &impl Columns) -> Result<User> {
    Ok(User {
        id: UserId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        email: r.parsed("email", Email::parse)?,
        name: r.text("name")?,
        role: r.parsed("role", Role::parse)?,
        password_hash: PasswordHash::from_phc(r.text("password_hash")?),
        created_at: r.time("created_at")?,
    })
}

/// An `api_keys` row.
pub(crate) fn api_key_row(r: &impl Columns) -> Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        name: r.text("name")?,
        prefix: r.text("prefix")?,
        hash: r.text("hash")?,
        role: r.parsed("role", Role::parse)?,
        created_at: r.time("created_at")?,
        expires_at: r.opt_time("expires_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

/// Revokes an unrevoked key whose role is at most `$4` (a [`role_rank`]),
/// in one statement: `$1` the time, `$2` the key, `$3` the account.
pub(crate) const REVOKE_API_KEY: &str = "UPDATE api_keys SET revoked_at = $1 \
     WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL \
     AND (CASE role WHEN 'viewer' THEN 1 WHEN 'agent' THEN 2 WHEN 'admin' THEN 3 ELSE 4 END) <= $4 RETURNING *";

/// A role's rank in [`REVOKE_API_KEY`].
pub(crate) fn role_rank(role: Role) -> i64 {
    match role {
        Role::Viewer => 1,
        Role::Agent => 2,
        Role::Admin => 3,
        _ => 4,
    }
}

/// What a revoke that changed no row means: the key is missing
/// ([`Error::NotFound`]), above `up_to` ([`Error::Forbidden`]), or already
/// revoked (returned as it is).
pub(crate) fn unrevoked(found: Option<ApiKey>, up_to: Role) -> Result<ApiKey> {
    match found {
        None => Err(Error::not_found("api_key")),
        Some(k) if !up_to.includes(k.role) => Err(crm_core::ports::store::revoke_forbidden(k.role)),
        Some(k) => Ok(k),
    }
}

/// [`AccountStore::get_account`](crm_core::AccountStore::get_account).
pub(crate) async fn get_account(db: &impl Fetch, id: AccountId) -> Result<Account> {
    let sql = "SELECT * FROM accounts WHERE id = $1";
    let row = db.fetch_optional("reading an account", sql, vec![id.into_uuid().into()]).await?;
    row.map(|r| account_row(&r)).transpose()?.ok_or(Error::not_found("account"))
}

/// [`AccountStore::get_user`](crm_core::AccountStore::get_user).
pub(crate) async fn get_user(db: &impl Fetch, account: AccountId, id: UserId) -> Result<User> {
    let sql = "SELECT * FROM users WHERE id = $1 AND account_id = $2";
    let row = db.fetch_optional("reading a user", sql, vec![id.into_uuid().into(), account.into_uuid().into()]).await?;
    row.map(|r| user_row(&r)).transpose()?.ok_or(Error::not_found("user"))
}

/// [`AccountStore::find_user_by_email`](crm_core::AccountStore::find_user_by_email).
pub(crate) async fn find_user_by_email(db: &impl Fetch, email: &Email) -> Result<Option<User>> {
    let sql = "SELECT * FROM users WHERE email = $1";
    let row = db.fetch_optional("reading a user", sql, vec![email.as_str().into()]).await?;
    row.map(|r| user_row(&r)).transpose()
}

/// [`AccountStore::list_users`](crm_core::AccountStore::list_users).
pub(crate) async fn list_users(db: &impl Fetch, account: AccountId) -> Result<Vec<User>> {
    let sql = "SELECT * FROM users WHERE account_id = $1 ORDER BY id";
    db.fetch_all("listing users", sql, vec![account.into_uuid().into()]).await?.iter().map(user_row).collect()
}

/// [`AccountStore::find_api_key_by_prefix`](crm_core::AccountStore::find_api_key_by_prefix).
pub(crate) async fn find_api_key_by_prefix(db: &impl Fetch, prefix: &str) -> Result<Option<ApiKey>> {
    let sql = "SELECT * FROM api_keys WHERE prefix = $1";
    let row = db.fetch_optional("reading an API key", sql, vec![prefix.into()]).await?;
    row.map(|r| api_key_row(&r)).transpose()
}

/// [`AccountStore::list_api_keys`](crm_core::AccountStore::list_api_keys).
pub(crate) async fn list_api_keys(db: &impl Fetch, account: AccountId) -> Result<Vec<ApiKey>> {
    let sql = "SELECT * FROM api_keys WHERE account_id = $1 ORDER BY id";
    db.fetch_all("listing API keys", sql, vec![account.into_uuid().into()]).await?.iter().map(api_key_row).collect()
}

//! Decoding accounts, users and API keys.

use crm_core::{Account, AccountId, ApiKey, ApiKeyId, Email, PasswordHash, Result, Role, User, UserId};

use super::Columns;

/// An `accounts` row.
pub(crate) fn account_row(r: &impl Columns) -> Result<Account> {
    Ok(Account { id: AccountId::from_uuid(r.uuid("id")?), name: r.text("name")?, created_at: r.time("created_at")? })
}

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

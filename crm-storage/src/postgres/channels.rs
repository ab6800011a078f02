//! [`ChannelStore`] over PostgreSQL.
//!
//! Clearing the old default and storing the new one run under a
//! transaction-scoped advisory lock per account: two concurrent writers
//! making different channels the default queue one after the other and both
//! succeed, where without it neither would see the other's uncommitted row
//! and the second would fail on the partial unique index.

use async_trait::async_trait;

use crm_core::ports::channels::check_lease_owner;
use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, Channel, ChannelId, ChannelKind, ChannelStore, Error, Event, Result, Throttle};

use super::{PgStore, Tx, append, commit, exists};
use crate::error::db;
use crate::rows::channels::{STALE, channel_row};
use crate::rows::{duration_micros, to_json};

/// The advisory-lock key space of "default channel of an account" locks
/// (the first half of the two-key form, so it cannot meet single-key locks
/// such as sqlx's migration lock).
const DEFAULT_LOCK_SPACE: i32 = 0x6368_616e; // "chan"

/// A channel's JSON columns and sealed credentials as PostgreSQL stores them.
struct ChannelValues {
    settings: serde_json::Value,
    credentials: Option<String>,
    pacing: serde_json::Value,
    throttle: Option<serde_json::Value>,
}

impl ChannelValues {
    fn of(c: &Channel) -> Result<Self> {
        Ok(Self {
            settings: to_json("settings", &c.settings)?,
            credentials: c.credentials.as_ref().map(|s| s.encode()),
            pacing: to_json("pacing", &c.pacing)?,
            throttle: c.throttle.as_ref().map(|t| to_json("throttle", t)).transpose()?,
        })
    }
}

/// When `channel` is a default, takes the account's default lock and clears
/// the flag on the account's other channels (each one's version moves, as
/// for any change to it).
async fn demote_others(tx: &mut Tx, channel: &Channel) -> Result<()> {
    if !channel.is_default {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(DEFAULT_LOCK_SPACE)
        .bind(channel.account_id.into_uuid().to_string())
        .execute(&mut **tx)
        .await
        .map_err(|e| db("locking the account's default channel", e))?;
    sqlx::query(
        "UPDATE channels SET is_default = false, version = version + 1, updated_at = GREATEST(updated_at, $1) \
         WHERE account_id = $2 AND id <> $3 AND is_default",
    )
    .bind(channel.updated_at)
    .bind(channel.account_id.into_uuid())
    .bind(channel.id.into_uuid())
    .execute(&mut **tx)
    .await
    .map_err(|e| db("clearing the default channel", e))?;
    Ok(())
}

#[async_trait]
impl ChannelStore for PgStore {
    async fn insert_channel(&self, channel: &Channel, event: &Event) -> Result<()> {
        check_event_account(channel.account_id, event)?;
        let v = ChannelValues::of(channel)?;
        let mut tx = self.write().await?;
        demote_others(&mut tx, channel).await?;
        sqlx::query(
            "INSERT INTO channels (id, account_id, kind, name, provider_id, settings, credentials, pacing, \
             is_default, enabled, throttle, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0)",
        )
        .bind(channel.id.into_uuid())
        .bind(channel.account_id.into_uuid())
        .bind(channel.kind.as_str())
        .bind(&channel.name)
        .bind(channel.provider_id.as_deref())
        .bind(v.settings)
        .bind(v.credentials)
        .bind(v.pacing)
        .bind(channel.is_default)
        .bind(channel.enabled)
        .bind(v.throttle)
        .bind(channel.created_at)
        .bind(channel.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a channel", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_channel(&self, channel: &Channel, event: &Event) -> Result<Channel> {
        check_event_account(channel.account_id, event)?;
        let v = ChannelValues::of(channel)?;
        let id = channel.id.into_uuid();
        let mut tx = self.write().await?;
        demote_others(&mut tx, channel).await?;
        // `throttle` and `created_at` keep their stored values.
        let updated = sqlx::query(
            "UPDATE channels SET kind = $1, name = $2, provider_id = $3, settings = $4, credentials = $5, \
             pacing = $6, is_default = $7, enabled = $8, updated_at = $9, version = version + 1 \
             WHERE id = $10 AND account_id = $11 AND version = $12 RETURNING *",
        )
        .bind(channel.kind.as_str())
        .bind(&channel.name)
        .bind(channel.provider_id.as_deref())
        .bind(v.settings)
        .bind(v.credentials)
        .bind(v.pacing)
        .bind(channel.is_default)
        .bind(channel.enabled)
        .bind(channel.updated_at)
        .bind(id)
        .bind(channel.account_id.into_uuid())
        .bind(channel.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("updating a channel", e))?;
        let Some(row) = updated else {
            let found =
                exists(&mut tx, "SELECT 1 FROM channels WHERE id = $1 AND account_id = $2", id, channel.account_id)
                    .await?;
            return Err(if found { Error::conflict("channel", STALE) } else { Error::not_found("channel") });
        };
        let stored = channel_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn delete_channel(&self, account: AccountId, id: ChannelId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM channels WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a channel", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("channel"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_channel(&self, account: AccountId, id: ChannelId) -> Result<Channel> {
        crate::rows::channels::get_channel(self, account, id).await
    }

    async fn list_channels(&self, account: AccountId) -> Result<Vec<Channel>> {
        crate::rows::channels::list_channels(self, account).await
    }

    async fn default_channel(&self, account: AccountId) -> Result<Option<Channel>> {
        crate::rows::channels::default_channel(self, account).await
    }

    async fn find_channel_by_provider_id(&self, kind: &ChannelKind, provider_id: &str) -> Result<Option<Channel>> {
        crate::rows::channels::find_channel_by_provider_id(self, kind, provider_id).await
    }

    async fn list_all_channels(&self, after: Option<ChannelId>, limit: u32) -> Result<Vec<Channel>> {
        crate::rows::channels::list_all_channels(self, after, limit).await
    }

    async fn set_channel_throttle(
        &self,
        account: AccountId,
        id: ChannelId,
        throttle: Option<&Throttle>,
        event: &Event,
    ) -> Result<()> {
        check_event_account(account, event)?;
        let throttle = throttle.map(|t| to_json("throttle", t)).transpose()?;
        let mut tx = self.write().await?;
        // Not a change of the channel's settings: the version stays.
        let done = sqlx::query("UPDATE channels SET throttle = $1 WHERE id = $2 AND account_id = $3")
            .bind(throttle)
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("setting a channel's throttle", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("channel"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn record_channel_event(&self, account: AccountId, id: ChannelId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        // FOR KEY SHARE: a concurrent delete waits, so the event never
        // outlives its channel's deletion unseen.
        let sql = "SELECT 1 FROM channels WHERE id = $1 AND account_id = $2 FOR KEY SHARE";
        if !exists(&mut tx, sql, id.into_uuid(), account).await? {
            return Err(Error::not_found("channel"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn acquire_channel_lease(&self, id: ChannelId, owner: &str, ttl: std::time::Duration) -> Result<bool> {
        check_lease_owner(owner)?;
        // Free, expired or already the owner's: taken (or renewed); else
        // untouched. Racing inserts: one inserts, the others meet its row.
        let row: Option<(bool,)> = sqlx::query_as(
            "WITH c AS (SELECT id FROM channels WHERE id = $1), \
             up AS (INSERT INTO channel_leases (channel_id, owner, expires_at) \
                    SELECT id, $2, now() + $3::bigint * interval '1 microsecond' FROM c \
                    ON CONFLICT (channel_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                    WHERE channel_leases.owner = EXCLUDED.owner OR channel_leases.expires_at <= now() \
                    RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM up) FROM c",
        )
        .bind(id.into_uuid())
        .bind(owner)
        .bind(duration_micros(ttl))
        .fetch_optional(self.pool())
        .await
        .map_err(|e| db("taking a channel lease", e))?;
        row.map(|(taken,)| taken).ok_or(Error::not_found("channel"))
    }

    async fn release_channel_lease(&self, id: ChannelId, owner: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM channel_leases WHERE channel_id = $1 AND owner = $2")
            .bind(id.into_uuid())
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(|e| db("releasing a channel lease", e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn channel_lease_owner(&self, id: ChannelId) -> Result<Option<String>> {
        let owner: Option<(String,)> =
            sqlx::query_as("SELECT owner FROM channel_leases WHERE channel_id = $1 AND expires_at > now()")
                .bind(id.into_uuid())
                .fetch_optional(self.pool())
                .await
                .map_err(|e| db("reading a channel lease", e))?;
        Ok(owner.map(|(o,)| o))
    }
}

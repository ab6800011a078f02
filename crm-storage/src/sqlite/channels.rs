//! [`ChannelStore`] over SQLite.
//!
//! `BEGIN IMMEDIATE` already serializes writers, so clearing the old default
//! and storing the new one cannot interleave with another write.

use async_trait::async_trait;

use crm_core::ports::channels::check_lease_owner;
use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, Channel, ChannelId, ChannelKind, ChannelStore, Error, Event, Result, Throttle};

use super::{SqliteStore, Tx, append, commit, exists, json_string};
use crate::error::db;
use crate::rows::channels::{STALE, channel_row};
use crate::rows::{duration_micros, micros};

/// A channel's JSON columns (as TEXT) and sealed credentials (their text
/// form) as SQLite stores them.
struct ChannelValues {
    settings: String,
    credentials: Option<String>,
    pacing: String,
    throttle: Option<String>,
}

impl ChannelValues {
    fn of(c: &Channel) -> Result<Self> {
        Ok(Self {
            settings: json_string("settings", &c.settings)?,
            credentials: c.credentials.as_ref().map(|s| s.encode()),
            pacing: json_string("pacing", &c.pacing)?,
            throttle: c.throttle.as_ref().map(|t| json_string("throttle", t)).transpose()?,
        })
    }
}

/// When `channel` is a default, clears the flag on the account's other
/// channels (each one's version moves, as for any change to it).
async fn demote_others(tx: &mut Tx, channel: &Channel) -> Result<()> {
    if !channel.is_default {
        return Ok(());
    }
    sqlx::query(
        "UPDATE channels SET is_default = 0, version = version + 1, updated_at = max(updated_at, ?) \
         WHERE account_id = ? AND id <> ? AND is_default",
    )
    .bind(micros(channel.updated_at))
    .bind(channel.account_id.into_uuid())
    .bind(channel.id.into_uuid())
    .execute(&mut **tx)
    .await
    .map_err(|e| db("clearing the default channel", e))?;
    Ok(())
}

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn insert_channel(&self, channel: &Channel, event: &Event) -> Result<()> {
        check_event_account(channel.account_id, event)?;
        let v = ChannelValues::of(channel)?;
        let mut tx = self.write().await?;
        demote_others(&mut tx, channel).await?;
        sqlx::query(
            "INSERT INTO channels (id, account_id, kind, name, provider_id, settings, credentials, pacing, \
             is_default, enabled, throttle, created_at, updated_at, version) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
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
        .bind(micros(channel.created_at))
        .bind(micros(channel.updated_at))
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
            "UPDATE channels SET kind = ?, name = ?, provider_id = ?, settings = ?, credentials = ?, pacing = ?, \
             is_default = ?, enabled = ?, updated_at = ?, version = version + 1 \
             WHERE id = ? AND account_id = ? AND version = ? RETURNING *",
        )
        .bind(channel.kind.as_str())
        .bind(&channel.name)
        .bind(channel.provider_id.as_deref())
        .bind(v.settings)
        .bind(v.credentials)
        .bind(v.pacing)
        .bind(channel.is_default)
        .bind(channel.enabled)
        .bind(micros(channel.updated_at))
        .bind(id)
        .bind(channel.account_id.into_uuid())
        .bind(channel.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("updating a channel", e))?;
        let Some(row) = updated else {
            let found =
                exists(&mut tx, "SELECT 1 FROM channels WHERE id = ? AND account_id = ?", id, channel.account_id)
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
        let done = sqlx::query("DELETE FROM channels WHERE id = ? AND account_id = ?")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a channel", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("channel"));
        }
        sqlx::query("DELETE FROM channel_leases WHERE channel_id = ?")
            .bind(id.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a channel's lease", e))?;
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
        let throttle = throttle.map(|t| json_string("throttle", t)).transpose()?;
        let mut tx = self.write().await?;
        // Not a change of the channel's settings: the version stays.
        let done = sqlx::query("UPDATE channels SET throttle = ? WHERE id = ? AND account_id = ?")
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
        if !exists(&mut tx, "SELECT 1 FROM channels WHERE id = ? AND account_id = ?", id.into_uuid(), account).await? {
            return Err(Error::not_found("channel"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn acquire_channel_lease(&self, id: ChannelId, owner: &str, ttl: std::time::Duration) -> Result<bool> {
        check_lease_owner(owner)?;
        let now = super::now_micros();
        let until = now.saturating_add(duration_micros(ttl));
        let mut tx = self.write().await?;
        let channel = sqlx::query("SELECT 1 FROM channels WHERE id = ?")
            .bind(id.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("looking up a channel", e))?;
        if channel.is_none() {
            return Err(Error::not_found("channel"));
        }
        // Free, expired or already the owner's: taken (or renewed); else untouched.
        let done = sqlx::query(
            "INSERT INTO channel_leases (channel_id, owner, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (channel_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE channel_leases.owner = excluded.owner OR channel_leases.expires_at <= ?4",
        )
        .bind(id.into_uuid())
        .bind(owner)
        .bind(until)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("taking a channel lease", e))?;
        commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_channel_lease(&self, id: ChannelId, owner: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM channel_leases WHERE channel_id = ? AND owner = ?")
            .bind(id.into_uuid())
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("releasing a channel lease", e))?;
        commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn channel_lease_owner(&self, id: ChannelId) -> Result<Option<String>> {
        let owner: Option<(String,)> =
            sqlx::query_as("SELECT owner FROM channel_leases WHERE channel_id = ? AND expires_at > ?")
                .bind(id.into_uuid())
                .bind(super::now_micros())
                .fetch_optional(self.pool())
                .await
                .map_err(|e| db("reading a channel lease", e))?;
        Ok(owner.map(|(o,)| o))
    }
}

//! [`ChannelStore`] over SQLite.
//!
//! `BEGIN IMMEDIATE` already serializes writers, so clearing the old default
//! and storing the new one cannot interleave with another write.

use async_trait::async_trait;

use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, Channel, ChannelId, ChannelKind, ChannelStore, Error, Event, Result, Throttle};

use super::{SqliteStore, Tx, append, commit, exists, json_string};
use crate::error::db;
use crate::rows::channels::{STALE, channel_row};
use crate::rows::micros;

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
}

//! Channels: row decoding and the reads both dialects share.

use crm_core::ports::store::check_event_limit;
use crm_core::secrets::SealedSecret;
use crm_core::{AccountId, Channel, ChannelId, ChannelKind, Error, Result};
use uuid::Uuid;

use super::{Columns, Fetch, json_from, stored};

/// A `channels` row. Credentials stay sealed: the column holds
/// [`SealedSecret::encode`]'s text and is decoded back, never opened here.
pub(crate) fn channel_row(r: &impl Columns) -> Result<Channel> {
    Ok(Channel {
        id: ChannelId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        kind: r.parsed("kind", ChannelKind::parse)?,
        name: r.text("name")?,
        provider_id: r.opt_text("provider_id")?,
        settings: json_from("settings", r.json("settings")?)?,
        credentials: r.opt_text("credentials")?.map(|t| stored("credentials", SealedSecret::decode(&t))).transpose()?,
        pacing: json_from("pacing", r.json("pacing")?)?,
        is_default: r.flag("is_default")?,
        enabled: r.flag("enabled")?,
        throttle: r.opt_json("throttle")?.map(|t| json_from("throttle", t)).transpose()?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        version: r.int("version")?,
    })
}

/// Why a stale `update_channel` is refused, as the memory store words it.
pub(crate) const STALE: &str = "it was changed by someone else; reload and retry";

/// [`ChannelStore::get_channel`](crm_core::ChannelStore::get_channel).
pub(crate) async fn get_channel(db: &impl Fetch, account: AccountId, id: ChannelId) -> Result<Channel> {
    let sql = "SELECT * FROM channels WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a channel", sql, args).await?;
    row.map(|r| channel_row(&r)).transpose()?.ok_or(Error::not_found("channel"))
}

/// [`ChannelStore::list_channels`](crm_core::ChannelStore::list_channels).
pub(crate) async fn list_channels(db: &impl Fetch, account: AccountId) -> Result<Vec<Channel>> {
    let sql = "SELECT * FROM channels WHERE account_id = $1 ORDER BY id";
    db.fetch_all("listing channels", sql, vec![account.into_uuid().into()]).await?.iter().map(channel_row).collect()
}

/// [`ChannelStore::default_channel`](crm_core::ChannelStore::default_channel).
pub(crate) async fn default_channel(db: &impl Fetch, account: AccountId) -> Result<Option<Channel>> {
    // `is_default` alone, as in the partial unique index, so the index serves it.
    let sql = "SELECT * FROM channels WHERE account_id = $1 AND is_default";
    let row = db.fetch_optional("reading the default channel", sql, vec![account.into_uuid().into()]).await?;
    row.map(|r| channel_row(&r)).transpose()
}

/// [`ChannelStore::find_channel_by_provider_id`](crm_core::ChannelStore::find_channel_by_provider_id).
pub(crate) async fn find_channel_by_provider_id(
    db: &impl Fetch,
    kind: &ChannelKind,
    provider_id: &str,
) -> Result<Option<Channel>> {
    let sql = "SELECT * FROM channels WHERE kind = $1 AND provider_id = $2";
    let row = db.fetch_optional("reading a channel", sql, vec![kind.as_str().into(), provider_id.into()]).await?;
    row.map(|r| channel_row(&r)).transpose()
}

/// [`ChannelStore::list_all_channels`](crm_core::ChannelStore::list_all_channels).
pub(crate) async fn list_all_channels(db: &impl Fetch, after: Option<ChannelId>, limit: u32) -> Result<Vec<Channel>> {
    check_event_limit(limit)?;
    let sql = "SELECT * FROM channels WHERE id > $1 ORDER BY id LIMIT $2";
    let args = vec![after.map_or(Uuid::nil(), ChannelId::into_uuid).into(), i64::from(limit).into()];
    db.fetch_all("listing channels", sql, args).await?.iter().map(channel_row).collect()
}

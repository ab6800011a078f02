//! [`ChannelStore`] for [`PgStore`]. TEMPORARY stubs, replaced by the channels change.

use async_trait::async_trait;

use super::PgStore;
use crm_core::{AccountId, Channel, ChannelId, ChannelKind, ChannelStore, Event, Result, Throttle};

#[async_trait]
impl ChannelStore for PgStore {
    async fn insert_channel(&self, _channel: &Channel, _event: &Event) -> Result<()> {
        Err(crate::rows::not_yet("insert_channel"))
    }
    async fn update_channel(&self, _channel: &Channel, _event: &Event) -> Result<Channel> {
        Err(crate::rows::not_yet("update_channel"))
    }
    async fn delete_channel(&self, _account: AccountId, _id: ChannelId, _event: &Event) -> Result<()> {
        Err(crate::rows::not_yet("delete_channel"))
    }
    async fn get_channel(&self, _account: AccountId, _id: ChannelId) -> Result<Channel> {
        Err(crate::rows::not_yet("get_channel"))
    }
    async fn list_channels(&self, _account: AccountId) -> Result<Vec<Channel>> {
        Err(crate::rows::not_yet("list_channels"))
    }
    async fn default_channel(&self, _account: AccountId) -> Result<Option<Channel>> {
        Err(crate::rows::not_yet("default_channel"))
    }
    async fn find_channel_by_provider_id(&self, _kind: &ChannelKind, _provider_id: &str) -> Result<Option<Channel>> {
        Err(crate::rows::not_yet("find_channel_by_provider_id"))
    }
    async fn list_all_channels(&self, _after: Option<ChannelId>, _limit: u32) -> Result<Vec<Channel>> {
        Err(crate::rows::not_yet("list_all_channels"))
    }
    async fn set_channel_throttle(
        &self,
        _account: AccountId,
        _id: ChannelId,
        _throttle: Option<&Throttle>,
        _event: &Event,
    ) -> Result<()> {
        Err(crate::rows::not_yet("set_channel_throttle"))
    }
}

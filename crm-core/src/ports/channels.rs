//! The channel ports: where channels are stored ([`ChannelStore`]) and how a
//! channel's [`Messenger`] is built ([`MessengerFactory`]).

use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;

use crate::secrets::Credentials;
use crate::{AccountId, Channel, ChannelId, ChannelKind, Event, Messenger, Result, Throttle};

#[allow(unused_imports)]
use crate::Error;

/// Channels.
///
/// Contract (checked by `crm_core::testing::store::channels`):
/// - Tenancy as every store: another account's channel behaves as a missing one.
/// - `(kind, provider_id)` is unique across all accounts, so inbound traffic
///   resolves to one channel: a clash is [`Error::Conflict`] and writes nothing.
/// - At most one default channel per account: storing a channel with
///   `is_default` clears the flag on the account's other channels in the
///   same transaction. A channel losing the flag this way is changed: its
///   `version` moves by one and its `updated_at` to the new default's (when
///   later), so an update from a copy read before is refused as stale.
/// - Every mutation records its event in the same transaction; a refused
///   mutation writes no event.
#[async_trait]
pub trait ChannelStore: Send + Sync + Debug + 'static {
    /// Stores a new channel (`version` 0) and its event. [`Error::Conflict`]
    /// when its id or its `(kind, provider_id)` is taken.
    async fn insert_channel(&self, channel: &Channel, event: &Event) -> Result<()>;

    /// Replaces a channel whose stored `version` equals `channel.version`,
    /// storing `version + 1`, and records `event`; `throttle` and
    /// `created_at` keep their stored values. Returns the stored channel.
    /// [`Error::NotFound`] when missing; [`Error::Conflict`] when the version
    /// is stale or the new `(kind, provider_id)` is taken.
    async fn update_channel(&self, channel: &Channel, event: &Event) -> Result<Channel>;

    /// Deletes a channel and records `event`. Messages sent through it keep
    /// its id. [`Error::NotFound`] when missing.
    async fn delete_channel(&self, account: AccountId, id: ChannelId, event: &Event) -> Result<()>;

    /// One channel; [`Error::NotFound`] when missing.
    async fn get_channel(&self, account: AccountId, id: ChannelId) -> Result<Channel>;

    /// The account's channels in id order.
    async fn list_channels(&self, account: AccountId) -> Result<Vec<Channel>>;

    /// The account's default channel.
    async fn default_channel(&self, account: AccountId) -> Result<Option<Channel>>;

    /// The channel of any account with this kind and provider identifier
    /// (inbound routing).
    async fn find_channel_by_provider_id(&self, kind: &ChannelKind, provider_id: &str) -> Result<Option<Channel>>;

    /// Channels of every account after `after` in id order, at most `limit`
    /// (1..=1000): readiness reports and key rotation walk them.
    async fn list_all_channels(&self, after: Option<ChannelId>, limit: u32) -> Result<Vec<Channel>>;

    /// Sets or clears the channel's throttle (not its version) and records
    /// `event`. [`Error::NotFound`] when missing.
    async fn set_channel_throttle(
        &self,
        account: AccountId,
        id: ChannelId,
        throttle: Option<&Throttle>,
        event: &Event,
    ) -> Result<()>;

    /// Records `event` about a channel without changing the channel (a
    /// provider connection's state, a pairing QR code): the event log and
    /// the outbox get it like any other. [`Error::NotFound`] when the
    /// channel is missing (then nothing is written).
    async fn record_channel_event(&self, account: AccountId, id: ChannelId, event: &Event) -> Result<()>;

    /// Takes or renews the lease on a channel's provider session for
    /// `owner` (a process), valid for `ttl` from the store's clock: `true`
    /// when `owner` holds it afterwards (it was free, expired, or already
    /// `owner`'s), `false` while another owner's lease is live. Two callers
    /// racing for a free lease: exactly one gets `true`. `owner` is 1–128
    /// characters ([`Error::Validation`] otherwise); [`Error::NotFound`]
    /// when the channel is missing. Deleting the channel drops its lease.
    async fn acquire_channel_lease(&self, id: ChannelId, owner: &str, ttl: std::time::Duration) -> Result<bool>;

    /// Gives a lease back so another owner may take it at once: `true` when
    /// `owner` held it, `false` (nothing changed) otherwise.
    async fn release_channel_lease(&self, id: ChannelId, owner: &str) -> Result<bool>;

    /// Who holds the channel's session lease now (a live lease), if anyone.
    async fn channel_lease_owner(&self, id: ChannelId) -> Result<Option<String>>;
}

/// Checks a lease owner's name: 1 to 128 characters.
pub fn check_lease_owner(owner: &str) -> Result<()> {
    if owner.is_empty() || owner.chars().count() > 128 {
        return Err(crate::Error::validation("owner", "must be 1 to 128 characters"));
    }
    Ok(())
}

/// Builds the [`Messenger`] of a channel of one provider kind. Adapter
/// crates implement it and register it with the [`Crm`](crate::Crm)
/// builder (`.messenger_factory(..)`), so crm-core never names a provider.
///
/// Contract:
/// - `kind` is stable and matches [`ChannelKind::parse`].
/// - `validate` refuses, with [`Error::Validation`] naming the field, a
///   channel the provider cannot work with (missing `provider_id`, missing
///   credentials, a bad setting); it does no I/O.
/// - `build` does no I/O either (connections are opened lazily); the
///   messenger it returns is cached per channel version and shared by
///   every send of that channel.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::{Channel, MessengerFactory, NewChannel, RecordingFactory, AccountId};
/// use crm_core::secrets::Credentials;
/// let factory = RecordingFactory::default();
/// let channel = Channel::new(AccountId::new(), &NewChannel { kind: "recording".into(), name: "Loja".into(), ..Default::default() }, None, chrono::Utc::now())?;
/// factory.validate(&channel, None)?;
/// let messenger = factory.build(&channel, Credentials::new()).await?;
/// assert_eq!(messenger.provider(), "recording");
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait MessengerFactory: Send + Sync + Debug + 'static {
    /// The channel kind it serves, e.g. `"whatsapp-cloud"`.
    fn kind(&self) -> &str;

    /// Checks a channel before it is stored; `credentials` are the ones
    /// being set (`None` when unchanged or absent).
    fn validate(&self, channel: &Channel, credentials: Option<&Credentials>) -> Result<()>;

    /// Builds the channel's messenger from its opened credentials.
    async fn build(&self, channel: &Channel, credentials: Credentials) -> Result<Arc<dyn Messenger>>;
}

//! Channels: create, change, delete, route inbound traffic, rotate keys.

use crate::secrets::Credentials;
use crate::{
    AccountId, Channel, ChannelId, ChannelKind, ChannelPatch, ChannelView, Error, EventType, Health, HealthCheck,
    MAX_CHANNELS_PER_ACCOUNT, NewChannel, Result,
};

use super::Crm;

/// Optimistic-concurrency retries of a channel update.
const CHANNEL_UPDATE_ATTEMPTS: usize = 8;

impl Crm {
    /// The channel kinds this service can create (one per registered factory).
    pub fn channel_kinds(&self) -> Vec<&str> {
        self.channels.kinds()
    }

    /// Creates a channel (`channel.created`, without credentials). The kind
    /// must have a registered factory, which validates the channel;
    /// credentials are sealed with the active key ([`Error::Config`] when no
    /// keyring is configured). The account's first channel becomes its
    /// default. [`Error::Conflict`] when another channel of the kind has the
    /// provider id; [`Error::Validation`] past
    /// [`MAX_CHANNELS_PER_ACCOUNT`] channels.
    pub async fn create_channel(&self, account: AccountId, input: NewChannel) -> Result<Channel> {
        let factory = self.channels.factory(&input.kind)?.clone();
        let now = self.now();
        let mut channel = Channel::new(account, &input, None, now)?;
        factory.validate(&channel, input.credentials.as_ref())?;
        let existing = self.store.list_channels(account).await?;
        if existing.len() >= MAX_CHANNELS_PER_ACCOUNT {
            return Err(Error::validation(
                "channels",
                format!("an account may have at most {MAX_CHANNELS_PER_ACCOUNT}"),
            ));
        }
        if existing.is_empty() {
            channel.is_default = true;
        }
        if let Some(c) = input.credentials.as_ref().filter(|c| !c.is_empty()) {
            channel.credentials = Some(self.channels.seal(&channel, c)?);
        }
        let event = self.event(account, EventType::CHANNEL_CREATED, &ChannelView::of(&channel, now));
        let stored = self.store.insert_channel(&channel, &event).await;
        // A new channel may be the default now (even when the outcome is unknown).
        self.default_channels.forget(account);
        stored?;
        Ok(channel)
    }

    /// One channel.
    pub async fn get_channel(&self, account: AccountId, id: ChannelId) -> Result<Channel> {
        self.store.get_channel(account, id).await
    }

    /// The account's channels.
    pub async fn list_channels(&self, account: AccountId) -> Result<Vec<Channel>> {
        self.store.list_channels(account).await
    }

    /// Applies a patch (`channel.updated` when anything changed), retrying
    /// on concurrent writers. New credentials are sealed; `null` removes them.
    pub async fn update_channel(&self, account: AccountId, id: ChannelId, patch: ChannelPatch) -> Result<Channel> {
        let mut current = self.store.get_channel(account, id).await?;
        for attempt in 1..=CHANNEL_UPDATE_ATTEMPTS {
            let now = self.now();
            let mut next = current.clone();
            let mut changed = next.apply(&patch, now)?;
            let new_credentials: Option<&Credentials> = patch.credentials.as_ref().and_then(Option::as_ref);
            self.channels.factory(next.kind.as_str())?.validate(&next, new_credentials)?;
            match &patch.credentials {
                Some(Some(c)) if !c.is_empty() => {
                    next.credentials = Some(self.channels.seal(&next, c)?);
                    changed = true;
                }
                Some(_) if next.credentials.is_some() => {
                    next.credentials = None;
                    changed = true;
                }
                _ => {}
            }
            if !changed {
                return Ok(current);
            }
            next.updated_at = now;
            let mut view = ChannelView::of(&next, now);
            view.version += 1;
            let event = self.event(account, EventType::CHANNEL_UPDATED, &view);
            let outcome = self.store.update_channel(&next, &event).await;
            self.default_channels.forget(account);
            match outcome {
                Ok(stored) => {
                    self.channels.forget(id);
                    return Ok(stored);
                }
                Err(e @ Error::Conflict { .. }) => {
                    let latest = self.store.get_channel(account, id).await?;
                    if latest.version == current.version || attempt == CHANNEL_UPDATE_ATTEMPTS {
                        return Err(e);
                    }
                    current = latest;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict("channel", "it kept changing; reload and retry"))
    }

    /// Deletes a channel (`channel.deleted`). When it was the default, the
    /// oldest remaining channel becomes the default. Messages keep its id;
    /// queued ones fail when the dispatcher reaches them.
    pub async fn delete_channel(&self, account: AccountId, id: ChannelId) -> Result<()> {
        let channel = self.store.get_channel(account, id).await?;
        let event = self.event(account, EventType::CHANNEL_DELETED, &serde_json::json!({ "id": id }));
        let deleted = self.store.delete_channel(account, id, &event).await;
        self.default_channels.forget(account);
        deleted?;
        self.channels.forget(id);
        if channel.is_default
            && let Some(next) = self.store.list_channels(account).await?.into_iter().next()
        {
            let patch = ChannelPatch { is_default: Some(true), ..Default::default() };
            self.update_channel(account, next.id, patch).await?;
        }
        Ok(())
    }

    /// The channel inbound traffic for `kind`/`provider_id` belongs to.
    /// Unknown or disabled identifiers are refused ([`Error::NotFound`]) and
    /// logged, never guessed.
    pub async fn channel_for_inbound(&self, kind: &str, provider_id: &str) -> Result<Channel> {
        let kind = ChannelKind::parse(kind)?;
        match self.store.find_channel_by_provider_id(&kind, provider_id).await? {
            Some(c) if c.enabled => Ok(c),
            Some(c) => {
                tracing::warn!(kind = %kind, channel = %c.id, "inbound traffic for a disabled channel refused");
                Err(Error::not_found("channel"))
            }
            None => {
                // The identifier comes from the outside world: log a bounded copy.
                let shown: String = provider_id.chars().filter(|c| !c.is_control()).take(64).collect();
                tracing::warn!(kind = %kind, provider_id = %shown, "inbound traffic for an unknown channel refused");
                Err(Error::not_found("channel"))
            }
        }
    }

    /// Records an event about a channel that changes nothing stored (a
    /// provider session's state, a pairing QR code), e.g.
    /// [`EventType::CHANNEL_STATE_CHANGED`](crate::EventType::CHANNEL_STATE_CHANGED).
    /// [`Error::NotFound`] when the channel is gone.
    pub async fn record_channel_event(
        &self,
        channel: &Channel,
        kind: crate::EventType,
        payload: &impl serde::Serialize,
    ) -> Result<()> {
        let event = self.event(channel.account_id, kind, payload);
        self.store.record_channel_event(channel.account_id, channel.id, &event).await
    }

    /// Probes a channel's provider (its messenger's health check).
    pub async fn channel_health(&self, channel: &Channel) -> Health {
        match self.channels.messenger(channel).await {
            Ok(m) => m.check().await,
            Err(e) => Health::unhealthy(std::time::Duration::ZERO, e.to_string()),
        }
    }

    /// Seals again, with the active key, every channel's credentials sealed
    /// with an older one (the second half of a key rotation: configure the
    /// new key first with the old one after it, run this, then drop the old
    /// key). Returns how many channels were re-sealed.
    pub async fn reseal_credentials(&self) -> Result<u64> {
        let Some(keyring) = self.channels.keyring() else { return Ok(0) };
        let mut after = None;
        let mut count = 0;
        loop {
            let batch = self.store.list_all_channels(after, 200).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            for c in batch {
                let Some(sealed) = &c.credentials else { continue };
                if !keyring.needs_reseal(sealed) {
                    continue;
                }
                let credentials = self.channels.open(&c)?;
                let patch = ChannelPatch { credentials: Some(Some(credentials)), ..Default::default() };
                self.update_channel(c.account_id, c.id, patch).await?;
                count += 1;
            }
        }
        Ok(count)
    }
}

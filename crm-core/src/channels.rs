//! The channel registry: messenger factories by kind, the keyring that
//! opens channel credentials, the governor that paces every channel, and a
//! cache of built messengers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::secrets::{Credentials, Keyring, SealedSecret};
use crate::{Channel, ChannelId, Error, GovernedMessenger, Governor, MessengerFactory, Result};

/// Most built messengers kept; past it the cache starts over.
const MAX_CACHED: usize = 10_000;

type CacheKey = (i64, Option<DateTime<Utc>>);

/// Messenger factories by channel kind, and the messengers built from them.
#[derive(Debug)]
pub struct ChannelRegistry {
    factories: BTreeMap<String, Arc<dyn MessengerFactory>>,
    keyring: Option<Keyring>,
    governor: Governor,
    cache: Mutex<HashMap<ChannelId, (CacheKey, Arc<GovernedMessenger>)>>,
}

impl ChannelRegistry {
    /// A registry over `factories` (one per kind; a later one replaces an
    /// earlier one of the same kind).
    pub fn new(factories: Vec<Arc<dyn MessengerFactory>>, keyring: Option<Keyring>, governor: Governor) -> Self {
        let factories = factories.into_iter().map(|f| (f.kind().to_owned(), f)).collect();
        Self { factories, keyring, governor, cache: Mutex::default() }
    }

    /// The kinds that can be created.
    pub fn kinds(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    /// The governor pacing every channel.
    pub fn governor(&self) -> &Governor {
        &self.governor
    }

    /// The keyring, when one is configured.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    /// The factory of `kind`. [`Error::Validation`] on `kind` naming the
    /// kinds this server knows when there is none.
    pub fn factory(&self, kind: &str) -> Result<&Arc<dyn MessengerFactory>> {
        self.factories.get(kind).ok_or_else(|| {
            Error::validation(
                "kind",
                format!("no messenger is available for channel kind {kind:?}; available: {}", self.kinds().join(", ")),
            )
        })
    }

    /// Seals credentials for `channel`. [`Error::Validation`] on
    /// `credentials` when no keyring is configured (the request cannot be
    /// served as asked; nothing is stored).
    pub fn seal(&self, channel: &Channel, credentials: &Credentials) -> Result<SealedSecret> {
        let keyring = self.keyring.as_ref().ok_or_else(|| {
            Error::validation(
                "credentials",
                "this server has no secret key to seal credentials with (set CRM_SECRET_KEYS)",
            )
        })?;
        keyring.seal_credentials(credentials, &channel.secret_context())
    }

    /// Opens `channel`'s credentials (empty when it has none).
    pub fn open(&self, channel: &Channel) -> Result<Credentials> {
        match &channel.credentials {
            None => Ok(Credentials::new()),
            Some(sealed) => {
                let keyring = self.keyring.as_ref().ok_or_else(|| Error::Config {
                    message: format!("channel {} has credentials but no secret key is configured", channel.id),
                })?;
                keyring.open_credentials(sealed, &channel.secret_context())
            }
        }
    }

    /// The governed messenger of `channel`, built once per channel version
    /// and throttle and then shared.
    pub async fn messenger(&self, channel: &Channel) -> Result<Arc<GovernedMessenger>> {
        let key: CacheKey = (channel.version, channel.throttle.as_ref().map(|t| t.until));
        if let Some((k, m)) = self.lock().get(&channel.id)
            && *k == key
        {
            return Ok(m.clone());
        }
        let factory = self.factory(channel.kind.as_str())?;
        let inner = factory.build(channel, self.open(channel)?).await?;
        let governed = Arc::new(GovernedMessenger::new(inner, self.governor.clone(), channel.clone()));
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(channel.id, (key, governed.clone()));
        Ok(governed)
    }

    /// Drops a channel's cached messenger (after it changed or was deleted).
    pub fn forget(&self, id: ChannelId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelId, (CacheKey, Arc<GovernedMessenger>)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

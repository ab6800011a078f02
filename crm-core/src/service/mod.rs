//! The application service: the flows a user calls, built from ports.
//!
//! [`Crm`] and its builder live here with the helpers every flow shares; the
//! flows are grouped by capability, one `impl Crm` block per module:
//! `accounts` (accounts, users, keys, login), `contacts` (contacts, import),
//! `messages` (inbound, status updates, threads), `sending` (the send
//! pipeline and its dispatcher), `campaigns` (campaigns, their runner and
//! tracker), `channels`, `templates` and `events`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

use crate::channels::ChannelRegistry;
use crate::secrets::Keyring;
use crate::{
    AccountId, Channel, Clock, Error, Event, EventType, GcraLimiter, Governor, GovernorConfig, Messenger,
    MessengerFactory, NewContact, Phone, RateLimiter, Result, Store, SystemClock,
};

mod accounts;
mod automations;
mod campaigns;
mod channels;
mod contacts;
mod events;
mod groups;
mod inbox;
mod messages;
mod sending;
mod sequences;
mod sessions;
mod templates;

pub use campaigns::{CAMPAIGN_CONSUMER, CAMPAIGN_JOB, CampaignRunner, CampaignTracker, CampaignView};
pub use contacts::MAX_IMPORT_BATCH;
pub use groups::{InboundGroupMessage, ParticipantChange};
pub use inbox::OpenThread;
pub use messages::{Inbound, InboundMessage, ProviderStatus};
pub use sending::{
    ChannelWindow, ContactWindows, DISPATCH_CONSUMER, Dispatcher, Queued, Quote, SendRequest, check_template_variables,
};
pub use sequences::{
    EnrolResult, SEQUENCE_CONSUMER, SEQUENCE_ENROL_JOB, SEQUENCE_STEP_JOB, SEQUENCE_STOP_JOB, SequenceEnroller,
    SequenceRunner, SequenceStopper, SequenceWatcher,
};
pub use sessions::SESSION_MINTED_KEY_MAX_DAYS;

pub(crate) use messages::{ContactSummary, clean_error, contact_summary, contact_variables, describe_window};

/// Builds a [`Crm`].
#[derive(Debug, Default)]
pub struct CrmBuilder {
    store: Option<Arc<dyn Store>>,
    messenger: Option<Arc<dyn Messenger>>,
    clock: Option<Arc<dyn Clock>>,
    default_country: Option<String>,
    factories: Vec<Arc<dyn MessengerFactory>>,
    keyring: Option<Keyring>,
    limiter: Option<Arc<dyn RateLimiter>>,
    governor: Option<GovernorConfig>,
    send_deadline: Option<std::time::Duration>,
    max_send_attempts: Option<u32>,
    api_key_cache: Option<std::time::Duration>,
    channel_cache: Option<std::time::Duration>,
}

impl CrmBuilder {
    /// The store (required).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The fallback messenger: sends of accounts without any channel go
    /// through it (a library app with one WhatsApp number needs nothing
    /// else). A `Crm` needs a fallback messenger or a messenger factory.
    pub fn messenger(mut self, messenger: Arc<dyn Messenger>) -> Self {
        self.messenger = Some(messenger);
        self
    }

    /// Registers the factory of a channel kind; adapter crates provide them
    /// (the `recording` kind is [`RecordingFactory`](crate::RecordingFactory)).
    pub fn messenger_factory(mut self, factory: Arc<dyn MessengerFactory>) -> Self {
        self.factories.push(factory);
        self
    }

    /// The keys channel (and other) credentials are sealed with. Without
    /// one, channels cannot store credentials.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Where the send governor counts (default: in this process). Give a
    /// shared limiter (Redis) when several processes send through the same channels.
    pub fn limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The send governor's settings.
    pub fn governor(mut self, config: GovernorConfig) -> Self {
        self.governor = Some(config);
        self
    }

    /// How long a queued message may keep retrying before it fails (default 24 hours).
    pub fn send_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.send_deadline = Some(deadline);
        self
    }

    /// Keeps API keys read for authentication this long in memory (default:
    /// not at all), saving a store read per request. A key revoked through
    /// this service stops working here at once; a key revoked elsewhere (the
    /// CLI, another process) keeps working here for at most this long.
    pub fn api_key_cache(mut self, ttl: std::time::Duration) -> Self {
        self.api_key_cache = Some(ttl);
        self
    }

    /// Keeps each account's default channel (or that it has none) in memory
    /// this long (default: not at all), saving a store read per message
    /// queued without a channel. A channel created, changed, throttled or
    /// deleted through this service is read again at once; a change made
    /// elsewhere (the CLI, another process) is seen here within this long,
    /// so until then a message may be queued on the previous default. The
    /// dispatcher reloads the channel before it sends: a message queued on a
    /// channel disabled meanwhile waits, one on a deleted channel fails.
    pub fn default_channel_cache(mut self, ttl: std::time::Duration) -> Self {
        self.channel_cache = Some(ttl);
        self
    }

    /// Attempts per queued message before it fails (default 10).
    pub fn max_send_attempts(mut self, attempts: u32) -> Self {
        self.max_send_attempts = Some(attempts);
        self
    }

    /// The clock (defaults to [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Country code (digits, e.g. `"55"`) for phones people type without
    /// one, such as `(11) 98765-4321`, in contacts created, updated, imported
    /// or looked up through the service. Unset, such input is read as an
    /// international number. Provider ids (inbound messages) are always
    /// international.
    pub fn default_country(mut self, country_code: impl Into<String>) -> Self {
        self.default_country = Some(country_code.into());
        self
    }

    /// [`Error::Config`] when the store is missing, there is neither a
    /// messenger nor a messenger factory, the default country is not 1 to 3
    /// digits, or the attempts are 0.
    pub fn build(self) -> Result<Crm> {
        if let Some(cc) = &self.default_country
            && (!(1..=3).contains(&cc.len()) || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.starts_with('0'))
        {
            return Err(Error::Config { message: format!("default country {cc:?} must be 1 to 3 digits") });
        }
        if self.messenger.is_none() && self.factories.is_empty() {
            return Err(Error::Config { message: "Crm needs a messenger or a messenger factory".into() });
        }
        if self.max_send_attempts == Some(0) {
            return Err(Error::Config { message: "max_send_attempts must be at least 1".into() });
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let limiter = self.limiter.unwrap_or_else(|| Arc::new(GcraLimiter::new(clock.clone())));
        let governor = Governor::new(limiter, clock.clone()).with_config(self.governor.unwrap_or_default());
        Ok(Crm {
            store: self.store.ok_or_else(|| Error::Config { message: "Crm needs a store".into() })?,
            fallback: self.messenger,
            clock,
            default_country: self.default_country,
            channels: Arc::new(ChannelRegistry::new(self.factories, self.keyring, governor)),
            keys: Arc::new(KeyCache::new(self.api_key_cache.unwrap_or_default())),
            default_channels: Arc::new(DefaultChannelCache::new(self.channel_cache.unwrap_or_default())),
            dispatch: Arc::new(DispatchState {
                notify: Arc::new(tokio::sync::Notify::new()),
                registered: tokio::sync::OnceCell::new(),
                deadline: self.send_deadline.unwrap_or(std::time::Duration::from_secs(24 * 3600)),
                max_attempts: self.max_send_attempts.unwrap_or(10),
            }),
        })
    }
}

/// The crm application service.
///
/// Every mutation goes through a store port together with its [`Event`], so
/// the change and the event commit or fail together.
#[derive(Debug, Clone)]
pub struct Crm {
    store: Arc<dyn Store>,
    fallback: Option<Arc<dyn Messenger>>,
    clock: Arc<dyn Clock>,
    default_country: Option<String>,
    channels: Arc<ChannelRegistry>,
    dispatch: Arc<DispatchState>,
    keys: Arc<KeyCache>,
    default_channels: Arc<DefaultChannelCache>,
}

/// Most API keys kept by the key cache; past it the cache starts over.
const MAX_CACHED_KEYS: usize = 10_000;

/// API keys by prefix, each with when it was read.
#[derive(Debug)]
struct KeyCache {
    ttl: std::time::Duration,
    keys: std::sync::Mutex<std::collections::HashMap<String, (crate::ApiKey, DateTime<Utc>)>>,
}

impl KeyCache {
    fn new(ttl: std::time::Duration) -> Self {
        Self { ttl, keys: Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (crate::ApiKey, DateTime<Utc>)>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, prefix: &str, now: DateTime<Utc>) -> Option<crate::ApiKey> {
        if self.ttl.is_zero() {
            return None;
        }
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::zero());
        let keys = self.lock();
        let (key, at) = keys.get(prefix)?;
        (now >= *at && now - *at < ttl).then(|| key.clone())
    }

    fn put(&self, key: &crate::ApiKey, now: DateTime<Utc>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut keys = self.lock();
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(key.prefix.clone(), (key.clone(), now));
    }

    fn forget(&self, prefix: &str) {
        self.lock().remove(prefix);
    }
}

/// Most accounts whose default channel is kept; past it the cache starts over.
const MAX_CACHED_DEFAULT_CHANNELS: usize = 10_000;

type DefaultChannels = std::collections::HashMap<AccountId, (Option<Channel>, DateTime<Utc>)>;

/// Each account's default channel (or none), with when it was read.
#[derive(Debug)]
struct DefaultChannelCache {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<DefaultChannels>,
    /// Moves on with every local channel write, so a read that overlapped
    /// one is not kept.
    generation: std::sync::atomic::AtomicU64,
}

impl DefaultChannelCache {
    fn new(ttl: std::time::Duration) -> Self {
        Self { ttl, entries: Default::default(), generation: Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DefaultChannels> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached answer, when one younger than the lifetime is kept.
    fn get(&self, account: AccountId, now: DateTime<Utc>) -> Option<Option<Channel>> {
        if self.ttl.is_zero() {
            return None;
        }
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::zero());
        let entries = self.lock();
        let (channel, at) = entries.get(&account)?;
        (now >= *at && now - *at < ttl).then(|| channel.clone())
    }

    /// Keeps `channel` as read at `read_at`, unless the account's channels
    /// were written since (`generation` moved on while it was being read).
    fn put(&self, account: AccountId, channel: &Option<Channel>, read_at: DateTime<Utc>, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if self.generation() != generation {
            return;
        }
        if entries.len() >= MAX_CACHED_DEFAULT_CHANNELS {
            entries.clear();
        }
        entries.insert(account, (channel.clone(), read_at));
    }

    /// The current generation: read it before reading the store, give it to `put`.
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Drops an account's entry (its channels changed here).
    fn forget(&self, account: AccountId) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.remove(&account);
    }
}

/// What the send pipeline shares between clones of one service.
#[derive(Debug)]
struct DispatchState {
    /// Woken when this process queues a message.
    notify: Arc<tokio::sync::Notify>,
    /// Set once the dispatcher's consumer is registered.
    registered: tokio::sync::OnceCell<()>,
    deadline: std::time::Duration,
    max_attempts: u32,
}

impl Crm {
    /// Starts a builder.
    pub fn builder() -> CrmBuilder {
        CrmBuilder::default()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The fallback messenger, when one was given.
    pub fn messenger(&self) -> Option<&Arc<dyn Messenger>> {
        self.fallback.as_ref()
    }

    /// The channel registry (factories, keyring, governor).
    pub fn channels(&self) -> &ChannelRegistry {
        &self.channels
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Parses a phone typed by a person, applying the default country.
    fn parse_phone(&self, input: &str) -> Result<Phone> {
        match &self.default_country {
            Some(cc) => Phone::parse_with_default_country(input, cc),
            None => Phone::parse(input),
        }
    }

    fn normalize(&self, mut input: NewContact) -> Result<NewContact> {
        if self.default_country.is_some() {
            input.phone = self.parse_phone(&input.phone)?.to_string();
        }
        Ok(input)
    }

    fn event(&self, account: AccountId, kind: EventType, data: &impl Serialize) -> Event {
        Event::new(account, kind, data, self.now())
    }
}

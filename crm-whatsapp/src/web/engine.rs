//! [`WebEngine`]: the process's WhatsApp Web sessions, one per channel.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use crm_core::{Channel, ChannelId, Crm, Error, InboundMessage, MessageContent, MessageError, MessageStatus, Result};
use serde_json::json;
use tokio::sync::watch;

use super::bridge::{self, PageMessage};
use super::memory::{self, MemoryUsage};
use super::session::Session;
use super::state::{SessionState, SessionStatus};
use super::{DEFAULT_URL, KIND, PINNED_VERSION, PROVIDER};

/// How the engine launches Chromium and opens WhatsApp Web.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub(crate) executable: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) url: String,
    pub(crate) expected_version: String,
    pub(crate) no_sandbox: bool,
    pub(crate) launch_timeout: Duration,
    pub(crate) load_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) stagger: Duration,
    /// Chromium flags added after the engine's own (without `--`).
    pub(crate) extra_args: Vec<String>,
}

impl EngineConfig {
    /// The Chromium binary: a path, or a name looked up on `PATH`.
    pub(crate) fn executable(&self) -> std::result::Result<PathBuf, String> {
        let missing = || {
            format!(
                "Chromium was not found at {:?}; install it (apt-get install chromium) or set its path",
                self.executable
            )
        };
        if self.executable.components().count() > 1 {
            return if self.executable.is_file() { Ok(self.executable.clone()) } else { Err(missing()) };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path).map(|d| d.join(&self.executable)).find(|p| p.is_file()).ok_or_else(missing)
    }

    /// The wait before reconnect attempt `attempt` (1, 2, …): doubling from
    /// the minimum up to the maximum.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
        self.backoff_min.saturating_mul(factor).min(self.backoff_max)
    }
}

/// A channel event waiting to be stored.
type ChannelEvent = (Channel, crm_core::EventType, serde_json::Value);

/// Most channel events waiting to be stored; past it new ones are dropped.
const MAX_QUEUED_EVENTS: usize = 1024;

/// What sessions share: the configuration, crm, and the sessions.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    crm: OnceLock<Crm>,
    /// Where media files are read from and inbound ones kept.
    pub(crate) media: OnceLock<crm_core::media::MediaLibrary>,
    /// Channel events (states, QR codes) on their way to the store, in order.
    events: OnceLock<tokio::sync::mpsc::Sender<ChannelEvent>>,
    sessions: Mutex<HashMap<ChannelId, Arc<Session>>>,
    /// Channels whose session another process owns, and its name.
    elsewhere: Mutex<HashMap<ChannelId, String>>,
    /// When the last session was started (starts are staggered).
    next_start: tokio::sync::Mutex<tokio::time::Instant>,
}

/// The WhatsApp Web sessions of this process: one headless Chromium with
/// its own persistent profile per channel (`<data dir>/<channel id>/profile`,
/// what whatsapp-web.js calls `LocalAuth`), one page in it, the injected
/// bridge, reconnects with backoff, and inbound messages and acks delivered
/// into crm once [`WebEngine::attach`] gave it the service.
///
/// ```no_run
/// # async fn demo(crm: crm_core::Crm, channel: crm_core::Channel) -> crm_core::Result<()> {
/// let engine = crm_whatsapp::web::WebEngine::builder()
///     .chromium("chromium")
///     .data_dir("crm-data/whatsapp-web")
///     .build()?;
/// engine.attach(crm);
/// engine.open(&channel).await?;
/// let status = engine.status(channel.id);
/// # let _ = status; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WebEngine {
    pub(crate) shared: Arc<Shared>,
}

/// Builds a [`WebEngine`].
#[derive(Debug, Clone)]
pub struct WebEngineBuilder {
    config: EngineConfig,
}

impl WebEngineBuilder {
    /// The Chromium binary: a path or a name on `PATH` (default `chromium`).
    pub fn chromium(mut self, executable: impl Into<PathBuf>) -> Self {
        self.config.executable = executable.into();
        self
    }

    /// The folder sessions keep their profiles in (default `crm-data/whatsapp-web`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = dir.into();
        self
    }

    /// Where WhatsApp Web is loaded from (default [`DEFAULT_URL`]; tests
    /// point it at a local page).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.config.url = url.into();
        self
    }

    /// The WhatsApp Web release accepted (default [`PINNED_VERSION`], the
    /// one the bridge was written against). A page running another one
    /// fails the session with both versions named.
    pub fn expected_version(mut self, version: impl Into<String>) -> Self {
        self.config.expected_version = version.into();
        self
    }

    /// Run Chromium without its sandbox (default: only when running as root,
    /// where Chromium refuses to start with it).
    pub fn no_sandbox(mut self, on: bool) -> Self {
        self.config.no_sandbox = on;
        self
    }

    /// How long WhatsApp Web may take to open and load its modules (default 60 s).
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.config.load_timeout = timeout;
        self
    }

    /// How long one send may take (default 30 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = timeout;
        self
    }

    /// Reconnect waits: doubling from `min` up to `max` (default 1 s to 60 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.backoff_min = min;
        self.config.backoff_max = max.max(min);
        self
    }

    /// Adds a Chromium flag after the engine's own (`name` or `name=value`,
    /// without the leading `--`), e.g. to tune memory on a given machine.
    pub fn chromium_arg(mut self, arg: impl Into<String>) -> Self {
        let arg = arg.into();
        let arg = arg.trim_start_matches('-').to_owned();
        if !arg.is_empty() {
            self.config.extra_args.push(arg);
        }
        self
    }

    /// Least time between two session starts, so a restart does not launch
    /// every Chromium at once (default 2 s).
    pub fn stagger(mut self, every: Duration) -> Self {
        self.config.stagger = every;
        self
    }

    /// The engine. [`Error::Validation`] on `url` when it is not http(s).
    pub fn build(self) -> Result<WebEngine> {
        let url = &self.config.url;
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
            return Err(Error::validation("url", "must be an http(s) URL"));
        }
        Ok(WebEngine {
            shared: Arc::new(Shared {
                config: self.config,
                crm: OnceLock::new(),
                media: OnceLock::new(),
                events: OnceLock::new(),
                sessions: Mutex::default(),
                elsewhere: Mutex::default(),
                next_start: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            }),
        })
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl WebEngine {
    /// A builder with the defaults.
    pub fn builder() -> WebEngineBuilder {
        WebEngineBuilder {
            config: EngineConfig {
                executable: PathBuf::from("chromium"),
                data_dir: PathBuf::from("crm-data/whatsapp-web"),
                url: DEFAULT_URL.into(),
                expected_version: PINNED_VERSION.into(),
                no_sandbox: running_as_root(),
                launch_timeout: Duration::from_secs(20),
                load_timeout: Duration::from_secs(60),
                send_timeout: Duration::from_secs(30),
                backoff_min: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
                stagger: Duration::from_secs(2),
                extra_args: Vec::new(),
            },
        }
    }

    /// Gives the engine the service inbound messages, acks and state events
    /// go to. Only the first call counts. Call it inside a Tokio runtime
    /// (it starts the task that stores channel events in order).
    pub fn attach(&self, crm: Crm) {
        if self.shared.crm.set(crm.clone()).is_err() {
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ChannelEvent>(MAX_QUEUED_EVENTS);
        let _ = self.shared.events.set(tx);
        tokio::spawn(async move {
            while let Some((channel, kind, payload)) = rx.recv().await {
                if let Err(e) = crm.record_channel_event(&channel, kind, &payload).await {
                    tracing::warn!(channel = %channel.id, error = %e, "whatsapp web: a channel event was not stored");
                }
            }
        });
    }

    /// Gives the engine the media library: `media:<id>` files are sent from
    /// it and inbound files kept in it (set once; false when one was set).
    pub fn set_media_library(&self, library: crm_core::media::MediaLibrary) -> bool {
        self.shared.media.set(library).is_ok()
    }

    /// The folder of a channel's session.
    pub fn session_folder(&self, id: ChannelId) -> PathBuf {
        self.shared.config.data_dir.join(id.to_string())
    }

    /// Opens `channel`'s session in this process; a no-op while it has one
    /// (whatever its state: a logged-out or failed session stays so until
    /// [`WebEngine::restart`]). Starts are staggered. [`Error::Validation`]
    /// on `kind` for a channel of another kind.
    pub async fn open(&self, channel: &Channel) -> Result<()> {
        if channel.kind.as_str() != KIND {
            return Err(Error::validation("kind", format!("not a {KIND} channel")));
        }
        let session = {
            let mut sessions = self.shared.lock();
            if let Some(s) = sessions.get(&channel.id) {
                *s.channel.lock().unwrap_or_else(|p| p.into_inner()) = channel.clone();
                return Ok(());
            }
            let session = Session::new(channel.clone(), self.session_folder(channel.id));
            sessions.insert(channel.id, session.clone());
            session
        };
        let wait = {
            let mut next = self.shared.next_start.lock().await;
            let now = tokio::time::Instant::now();
            let at = (*next).max(now);
            *next = at + self.shared.config.stagger;
            at
        };
        let shared = self.shared.clone();
        let runner = session.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(wait).await;
            runner.run(shared).await;
        });
        *session.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(())
    }

    /// Closes a channel's session and opens it again (after a logout or a
    /// failure: pairing starts over with a new QR code).
    pub async fn restart(&self, channel: &Channel) -> Result<()> {
        self.close(channel.id).await;
        self.open(channel).await
    }

    /// Notes which process holds a channel's session when it is not this
    /// one (`None`: nobody else), for status reports.
    pub(crate) fn set_elsewhere(&self, id: ChannelId, owner: Option<String>) {
        let mut elsewhere = self.shared.elsewhere.lock().unwrap_or_else(|p| p.into_inner());
        match owner {
            Some(o) => {
                elsewhere.insert(id, o);
            }
            None => {
                elsewhere.remove(&id);
            }
        }
    }

    /// The process holding a channel's session when it is another one.
    pub fn owner_elsewhere(&self, id: ChannelId) -> Option<String> {
        self.shared.elsewhere.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Closes a channel's session and waits until its Chromium is gone.
    pub async fn close(&self, id: ChannelId) {
        let session = self.shared.lock().remove(&id);
        if let Some(s) = session {
            s.stop();
            s.join().await;
        }
    }

    /// Closes every session.
    pub async fn shutdown(&self) {
        let sessions: Vec<_> = self.shared.lock().drain().map(|(_, s)| s).collect();
        for s in &sessions {
            s.stop();
        }
        for s in sessions {
            s.join().await;
        }
    }

    /// The channels with a session in this process.
    pub fn open_channels(&self) -> Vec<ChannelId> {
        self.shared.lock().keys().copied().collect()
    }

    /// A session's status, when it is open in this process.
    pub fn status(&self, id: ChannelId) -> Option<SessionStatus> {
        self.shared.session(id).map(|s| s.status.borrow().clone())
    }

    /// Follows a session's status (tests and the `channel pair` command wait on it).
    pub fn watch(&self, id: ChannelId) -> Option<watch::Receiver<SessionStatus>> {
        self.shared.session(id).map(|s| s.status.subscribe())
    }

    /// The text of the QR code the session shows while pairing.
    pub fn qr(&self, id: ChannelId) -> Option<String> {
        self.status(id).and_then(|s| s.qr)
    }

    /// Sends a media message (a `media:<id>` file of the media library)
    /// through the channel's session; returns WhatsApp's message id.
    pub async fn send_media(&self, id: ChannelId, to: &str, message: &crm_core::OutboundMessage) -> Result<String> {
        self.shared.send_media(id, to, message).await
    }

    /// Sends a text through the channel's session; returns WhatsApp's
    /// message id. `to` is a WhatsApp id (`5511987654321@c.us`).
    pub async fn send_text(&self, id: ChannelId, to: &str, text: &str) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Sent {
            id: String,
        }
        let js = bridge::call("sendText", &[json!(to), json!(text)]);
        let sent: Sent = self.shared.call(id, &js).await?;
        Ok(sent.id)
    }

    /// Calls the bridge in the channel's page (`js` from [`bridge::call`]) and reads its answer.
    pub(crate) async fn call_bridge<T: serde::de::DeserializeOwned>(&self, id: ChannelId, js: &str) -> Result<T> {
        self.shared.call(id, js).await
    }

    /// The WhatsApp id a message goes to, asking WhatsApp which variant of
    /// the number exists before the first send to it (see
    /// [`WebMessenger`](super::WebMessenger)).
    pub async fn recipient(&self, id: ChannelId, message: &crm_core::OutboundMessage) -> Result<String> {
        self.shared.recipient(id, message).await
    }

    /// A message key with a mapped LID chat rewritten to the phone's id.
    pub(crate) async fn canonical_key(&self, account: crm_core::AccountId, id: ChannelId, key: &str) -> String {
        self.shared.canonical_key(account, id, key).await
    }

    /// Marks a chat's messages read (blue ticks) through the channel's session.
    pub async fn mark_read(&self, id: ChannelId, chat: &str) -> Result<()> {
        let js = bridge::call("markRead", &[json!(chat)]);
        let _: bool = self.shared.call(id, &js).await?;
        Ok(())
    }

    /// Sends a read receipt through the channel's session: `sendSeen` on
    /// the chat of the receipt's message.
    pub async fn mark_read_receipt(&self, id: ChannelId, receipt: &crm_core::ReadReceipt) -> Result<()> {
        self.mark_read(id, &Shared::read_chat(receipt)).await
    }

    /// Memory of the Chromium processes of every session of this engine
    /// (Linux: `/proc`; zero elsewhere).
    pub fn chromium_memory(&self) -> MemoryUsage {
        memory::usage_of(&self.shared.config.data_dir)
    }

    /// Memory of one channel's Chromium processes.
    pub fn session_memory(&self, id: ChannelId) -> MemoryUsage {
        memory::usage_of(&self.session_folder(id))
    }
}

pub(crate) fn provider_error(transient: bool, code: &str, message: impl Into<String>) -> Error {
    Error::Provider {
        provider: PROVIDER.into(),
        transient,
        code: Some(code.into()),
        message: message.into(),
        retry_after: None,
        source: None,
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelId, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn session(&self, id: ChannelId) -> Option<Arc<Session>> {
        self.lock().get(&id).cloned()
    }

    /// The service, once attached.
    pub(crate) fn crm(&self) -> Option<&Crm> {
        self.crm.get()
    }

    /// Calls the bridge in the channel's page and reads the answer.
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(&self, id: ChannelId, js: &str) -> Result<T> {
        let session = self
            .session(id)
            .ok_or_else(|| Error::not_connected(PROVIDER, "the session is not open in this process"))?;
        let state = session.status.borrow().state.clone();
        let page = match (&state, session.page()) {
            (SessionState::Connected, Some(page)) => page,
            (SessionState::LoggedOut | SessionState::Failed { .. }, _) => {
                return Err(provider_error(
                    false,
                    state.name(),
                    format!("the WhatsApp Web session is {}", state.name()),
                ));
            }
            _ => return Err(Error::not_connected(PROVIDER, format!("the session is {}", state.name()))),
        };
        self.evaluate(&page, js).await
    }

    /// Runs `js` in `page` (at most the send timeout) and reads its answer.
    pub(crate) async fn evaluate<T: serde::de::DeserializeOwned>(
        &self,
        page: &chromiumoxide::Page,
        js: &str,
    ) -> Result<T> {
        let answer = tokio::time::timeout(self.config.send_timeout, page.evaluate(js)).await;
        match answer {
            Err(_) => Err(provider_error(true, "timeout", "WhatsApp Web did not answer in time")),
            Ok(Err(chromiumoxide::error::CdpError::JavascriptException(e))) => {
                let text = e.exception.as_ref().and_then(|x| x.description.clone()).unwrap_or_else(|| e.text.clone());
                let first = text.lines().next().unwrap_or("").chars().take(200).collect::<String>();
                Err(provider_error(false, "refused", format!("WhatsApp Web refused: {first}")))
            }
            Ok(Err(e)) => Err(provider_error(true, "page", format!("the WhatsApp Web page failed: {e}"))),
            Ok(Ok(result)) => result
                .into_value::<T>()
                .map_err(|_| provider_error(false, "bad_answer", "WhatsApp Web answered something unexpected")),
        }
    }

    pub(crate) fn state_changed(&self, channel: &Channel, status: &SessionStatus) {
        tracing::info!(channel = %channel.id, state = status.state.name(), "whatsapp web session");
        let payload = json!({ "channel_id": channel.id, "kind": KIND, "status": status });
        self.record(channel, crm_core::EventType::CHANNEL_STATE_CHANGED, payload);
    }

    pub(crate) fn qr_changed(&self, channel: &Channel, code: &str) {
        let payload = json!({ "channel_id": channel.id, "kind": KIND, "qr": code });
        self.record(channel, crm_core::EventType::CHANNEL_QR, payload);
    }

    /// Queues a channel event; one task stores them in order.
    pub(crate) fn record(&self, channel: &Channel, kind: crm_core::EventType, payload: serde_json::Value) {
        let Some(tx) = self.events.get() else { return };
        if tx.try_send((channel.clone(), kind, payload)).is_err() {
            tracing::warn!(channel = %channel.id, "whatsapp web: too many channel events waiting; one was dropped");
        }
    }

    /// Stores a message the page reported.
    pub(crate) async fn inbound(&self, channel: &Channel, m: PageMessage) {
        let Some(crm) = self.crm.get() else { return };
        if m.from_me {
            // Sent by this session (its ack follows) or from the phone.
            return;
        }
        if m.from.as_deref().is_some_and(|f| f.ends_with("@g.us")) {
            return self.group_inbound(channel, m);
        }
        let Some(sender) = self.sender_of(channel, &m).await else {
            tracing::debug!(channel = %channel.id, "whatsapp web: a message from an unmapped LID or a broadcast was skipped");
            return;
        };
        let key = self.canonical_key(channel.account_id, channel.id, &m.id).await;
        let kind = m.kind.as_deref().unwrap_or("unknown");
        let media_kind = super::media::media_kind(kind);
        let content = match (kind, m.body, media_kind.zip(m.media.as_ref())) {
            ("chat", Some(body), _) => MessageContent::text(body),
            (_, _, Some((k, media))) => super::media::inbound_content(k, &m.id, media),
            (other, _, _) => MessageContent::Unsupported {
                provider_type: other.chars().take(64).collect(),
                summary: format!("a WhatsApp {} message", other.chars().take(64).collect::<String>()),
                payload: json!({ "type": other.chars().take(64).collect::<String>() }),
            },
        };
        let inbound = InboundMessage {
            from: sender.phone.as_str().to_owned(),
            whatsapp_id: Some(sender.whatsapp_user),
            profile_name: m.notify_name.map(|n| n.chars().take(256).collect()),
            provider_message_id: Some(key),
            content,
            sent_at: m.timestamp.and_then(|t| Utc.timestamp_opt(t, 0).single()),
            // The bridge does not report quoted messages yet.
            reply_to: None,
        };
        for attempt in 1..=3u32 {
            match crm.record_inbound_via(channel, inbound.clone()).await {
                // An inbound file is kept by `WebMediaFetcher`, a job of its own.
                Ok(_) => return,
                Err(e) if e.is_transient() && attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => {
                    tracing::warn!(channel = %channel.id, error = %e, "whatsapp web: a message was not stored");
                    return;
                }
            }
        }
    }

    /// Moves a sent message's status after an ack. The ack may arrive before
    /// the send's answer (WhatsApp's id) is stored: a message not found yet
    /// is tried again a few times.
    pub(crate) fn ack(&self, channel: &Channel, id: String, ack: i64) {
        if super::groups::is_group_message(&id) {
            return self.group_ack(channel, id, None, ack);
        }
        let Some(crm) = self.crm.get().cloned() else { return };
        let (status, error) = match ack {
            -1 => (
                MessageStatus::Failed,
                Some(MessageError {
                    code: Some("ack_error".into()),
                    reason: "WhatsApp did not deliver the message".into(),
                }),
            ),
            1 => (MessageStatus::Sent, None),
            2 => (MessageStatus::Delivered, None),
            3 | 4 => (MessageStatus::Read, None),
            _ => return,
        };
        let account = channel.account_id;
        let channel = channel.id;
        tokio::spawn(async move {
            let id = super::identity::canonical_key(Some(&crm), account, channel, &id).await;
            let at = Utc::now();
            for attempt in 0..5u64 {
                match crm.apply_status_update(account, &id, status, at, error.clone()).await {
                    Err(Error::NotFound { .. }) if attempt < 4 => {
                        tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    }
                    Err(Error::NotFound { .. }) => return,
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, "whatsapp web: an ack was not applied");
                        return;
                    }
                    Ok(_) => return,
                }
            }
        });
    }
}

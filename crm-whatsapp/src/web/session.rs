//! One channel's session: its Chromium (with the channel's own profile
//! folder), its page, the bridge's reports, reconnects with backoff.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed;
use chromiumoxide::cdp::browser_protocol::page::{AddScriptToEvaluateOnNewDocumentParams, EventFrameNavigated};
use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EventBindingCalled};
use chromiumoxide::{Browser, BrowserConfig, Page};
use chrono::Utc;
use crm_core::{Channel, ChannelId};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::bridge::{self, BridgeEvent};
use super::engine::{EngineConfig, Shared};
use super::state::{self, SessionState, SessionStatus};

/// How a run of the page ended.
#[derive(Debug)]
enum End {
    /// crm closed the session.
    Stopped,
    /// A state that is not retried (logged out, failed).
    Final(SessionState),
    /// Lost; open again after a backoff.
    Lost { reason: String },
}

/// One channel's session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) channel: Mutex<Channel>,
    pub(crate) status: watch::Sender<SessionStatus>,
    pub(crate) page: Mutex<Option<Page>>,
    stop: watch::Sender<bool>,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    /// The channel's folder under the data folder.
    folder: PathBuf,
}

impl Session {
    pub(crate) fn new(channel: Channel, folder: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            channel: Mutex::new(channel),
            status: watch::channel(SessionStatus::new(SessionState::Opening)).0,
            page: Mutex::new(None),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
            folder,
        })
    }

    pub(crate) fn id(&self) -> ChannelId {
        lock(&self.channel).id
    }

    pub(crate) fn channel(&self) -> Channel {
        lock(&self.channel).clone()
    }

    pub(crate) fn page(&self) -> Option<Page> {
        lock(&self.page).clone()
    }

    /// Asks the run loop to end; [`Session::join`] waits for it.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub(crate) async fn join(&self) {
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// The profile folder Chromium keeps WhatsApp Web's login in.
    fn profile(&self) -> PathBuf {
        self.folder.join("profile")
    }

    /// Present while this profile is paired (written when it connects,
    /// removed when the phone logs it out).
    fn paired_marker(&self) -> PathBuf {
        self.folder.join("paired")
    }

    fn set(&self, shared: &Shared, update: impl FnOnce(&mut SessionStatus)) {
        let mut changed = None;
        self.status.send_if_modified(|s| {
            let before = s.clone();
            update(s);
            if s.state != before.state {
                s.since = Utc::now();
                changed = Some(s.clone());
            }
            *s != before
        });
        if let Some(status) = changed {
            shared.state_changed(&self.channel(), &status);
        }
    }

    fn set_state(&self, shared: &Shared, state: SessionState) {
        self.set(shared, |s| {
            if !matches!(state, SessionState::Pairing) {
                s.qr = None;
            }
            s.state = state;
        });
    }

    /// Opens the page until crm stops the session or it ends for good.
    pub(crate) async fn run(self: Arc<Self>, shared: Arc<Shared>) {
        let mut stop = self.stop.subscribe();
        let mut attempt = 0u32;
        loop {
            if *stop.borrow() {
                break;
            }
            self.set_state(&shared, SessionState::Opening);
            let mut connected = false;
            let end = self.open_once(&shared, &mut stop, &mut connected).await;
            *lock(&self.page) = None;
            match end {
                End::Stopped => break,
                End::Final(state) => {
                    self.set_state(&shared, state);
                    return;
                }
                End::Lost { reason } => {
                    attempt = if connected { 1 } else { attempt.saturating_add(1) };
                    tracing::warn!(channel = %self.id(), attempt, %reason, "whatsapp web session lost; opening again");
                    self.set_state(&shared, SessionState::Reconnecting { attempt, reason });
                    let wait = shared.config.backoff(attempt);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        self.set_state(&shared, SessionState::Stopped);
    }

    async fn open_once(&self, shared: &Shared, stop: &mut watch::Receiver<bool>, connected: &mut bool) -> End {
        let config = &shared.config;
        let executable = match config.executable() {
            Ok(e) => e,
            Err(reason) => return End::Final(SessionState::Failed { reason }),
        };
        if let Err(e) = std::fs::create_dir_all(self.profile()) {
            return End::Final(SessionState::Failed {
                reason: format!("cannot create the session's profile folder: {e}"),
            });
        }
        let browser_config = match launch_config(config, executable, self.profile()) {
            Ok(c) => c,
            Err(reason) => return End::Final(SessionState::Failed { reason }),
        };
        let (mut browser, mut handler) = match Browser::launch(browser_config).await {
            Ok(b) => b,
            Err(e) => return End::Lost { reason: format!("Chromium did not start: {e}") },
        };
        let mut driver = tokio::spawn(async move {
            // Errors here are single undecodable messages; the stream ends
            // when the connection to Chromium does.
            while handler.next().await.is_some() {}
        });
        let end = self.drive(shared, &browser, &mut driver, stop, connected).await;
        close(&mut browser, driver).await;
        if !super::memory::wait_gone(&self.profile(), Duration::from_secs(5)).await {
            tracing::warn!(channel = %self.id(), "whatsapp web: Chromium helpers outlived the browser by 5 s");
        }
        end
    }

    async fn drive(
        &self,
        shared: &Shared,
        browser: &Browser,
        driver: &mut JoinHandle<()>,
        stop: &mut watch::Receiver<bool>,
        connected: &mut bool,
    ) -> End {
        let config = &shared.config;
        let setup = async {
            let page = browser.new_page("about:blank").await?;
            page.execute(AddBindingParams::new(bridge::BINDING)).await?;
            let calls = page.event_listener::<EventBindingCalled>().await?;
            let crashes = page.event_listener::<EventTargetCrashed>().await?;
            let navigations = page.event_listener::<EventFrameNavigated>().await?;
            page.execute(AddScriptToEvaluateOnNewDocumentParams::new(bridge::SCRIPT)).await?;
            page.goto(config.url.as_str()).await?;
            Ok::<_, chromiumoxide::error::CdpError>((page, calls, crashes, navigations))
        };
        let (page, mut calls, mut crashes, mut navigations) = tokio::select! {
            r = tokio::time::timeout(config.load_timeout, setup) => match r {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return End::Lost { reason: format!("could not open WhatsApp Web: {e}") },
                Err(_) => return End::Lost { reason: "WhatsApp Web did not open in time".into() },
            },
            _ = stop.changed() => return End::Stopped,
        };
        *lock(&self.page) = Some(page.clone());
        let load = tokio::time::sleep(config.load_timeout);
        tokio::pin!(load);
        let mut loaded = false;
        loop {
            // Biased: a navigation is seen before the new document's reports.
            tokio::select! {
                biased;
                _ = stop.changed() => return End::Stopped,
                Some(nav) = navigations.next() => {
                    // The page (re)loaded: WhatsApp Web starts over until
                    // the bridge reports again.
                    if nav.frame.parent_id.is_none() {
                        loaded = false;
                        load.as_mut().reset(tokio::time::Instant::now() + config.load_timeout);
                        self.set_state(shared, SessionState::Opening);
                    }
                }
                _ = &mut *driver => return End::Lost { reason: "Chromium exited".into() },
                Some(_) = crashes.next() => return End::Lost { reason: "the page crashed".into() },
                () = &mut load, if !loaded => {
                    return End::Lost { reason: "WhatsApp Web did not load its modules in time".into() };
                }
                call = calls.next() => {
                    let Some(call) = call else { return End::Lost { reason: "the page closed".into() } };
                    if call.name != bridge::BINDING {
                        continue;
                    }
                    let Some(event) = BridgeEvent::parse(&call.payload) else {
                        tracing::debug!(channel = %self.id(), "whatsapp web: an unreadable bridge report was dropped");
                        continue;
                    };
                    if let Some(end) = self.on_event(shared, event, &mut loaded, connected).await {
                        return end;
                    }
                }
            }
        }
    }

    async fn on_event(
        &self,
        shared: &Shared,
        event: BridgeEvent,
        loaded: &mut bool,
        connected: &mut bool,
    ) -> Option<End> {
        match event {
            BridgeEvent::Ready { version } => {
                *loaded = true;
                let expected = &shared.config.expected_version;
                if &version != expected {
                    return Some(End::Final(SessionState::Failed {
                        reason: format!(
                            "WhatsApp Web {version} is running but the bridge was written for {expected}; \
                             update crm (its web/bridge.js) for this release"
                        ),
                    }));
                }
                self.set(shared, |s| s.version = Some(version));
            }
            BridgeEvent::State { state } => {
                let paired = *connected || self.paired_marker().exists();
                let next = state::from_provider(&state, paired);
                match next {
                    SessionState::Connected => {
                        *connected = true;
                        if let Err(e) = std::fs::write(self.paired_marker(), b"") {
                            tracing::warn!(channel = %self.id(), error = %e, "whatsapp web: cannot mark the profile paired");
                        }
                    }
                    SessionState::LoggedOut => {
                        let _ = std::fs::remove_file(self.paired_marker());
                        self.set(shared, |s| s.provider_state = Some(state));
                        return Some(End::Final(SessionState::LoggedOut));
                    }
                    _ => {}
                }
                self.set(shared, |s| {
                    s.provider_state = Some(state);
                    if next != SessionState::Pairing {
                        s.qr = None;
                    }
                    s.state = next;
                });
            }
            BridgeEvent::Qr { code } => {
                if code.len() > 4096 {
                    return None;
                }
                self.set(shared, |s| {
                    s.state = SessionState::Pairing;
                    s.qr = Some(code.clone());
                });
                shared.qr_changed(&self.channel(), &code);
            }
            BridgeEvent::Message { message } => shared.inbound(&self.channel(), *message).await,
            BridgeEvent::Ack { id: Some(id), ack: Some(ack) } => shared.ack(&self.channel(), id, ack),
            BridgeEvent::Ack { .. } => {}
            BridgeEvent::GroupReceipt { id, participant, ack } => {
                shared.group_ack(&self.channel(), id, participant, ack)
            }
            BridgeEvent::Contacts { contacts } => shared.sync_contacts(&self.channel(), contacts).await,
        }
        None
    }
}

/// Chromium's command line for one session.
fn launch_config(config: &EngineConfig, executable: PathBuf, profile: PathBuf) -> Result<BrowserConfig, String> {
    let mut builder = BrowserConfig::builder()
        .chrome_executable(executable)
        .user_data_dir(profile)
        .launch_timeout(config.launch_timeout)
        .request_timeout(config.load_timeout)
        .args(FLAGS.iter().copied())
        .args(config.extra_args.iter().map(String::as_str));
    if config.no_sandbox {
        builder = builder.no_sandbox();
    }
    builder.build().map_err(|e| format!("bad Chromium settings: {e}"))
}

/// Flags that keep one session's Chromium small and quiet (DEPENDENCIES.md
/// lists the first ones; the rest cap memory: one renderer, the GPU thread
/// inside the browser process, a bounded JS heap, no extensions, no audio;
/// no startup window — the engine opens its one page itself, so the
/// blank tab Chromium would open first and its renderer never exist; the
/// network service inside the browser process, not a utility process of
/// its own). Measured in BENCHMARKS.md (`examples/web_bench.rs`).
/// Without their leading `--`: chromiumoxide adds it.
const FLAGS: &[&str] = &[
    "disable-gpu",
    "disable-background-networking",
    "disable-component-update",
    "no-first-run",
    "disable-extensions",
    "mute-audio",
    "renderer-process-limit=1",
    "in-process-gpu",
    "disable-software-rasterizer",
    "disable-site-isolation-trials",
    "disable-features=Translate,TranslateUI,MediaRouter,OptimizationHints,site-per-process,SpareRendererForSitePerProcess,BackForwardCache",
    "js-flags=--max-old-space-size=256",
    "no-startup-window",
    "enable-features=NetworkServiceInProcess2",
];

/// Closes Chromium: politely, then by force.
async fn close(browser: &mut Browser, driver: JoinHandle<()>) {
    let polite = async {
        let _ = browser.close().await;
        browser.wait().await
    };
    if tokio::time::timeout(Duration::from_secs(5), polite).await.is_err() {
        let _ = browser.kill().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), browser.wait()).await;
    }
    driver.abort();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

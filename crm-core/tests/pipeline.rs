//! The send pipeline end to end on the memory store: queue → dispatcher
//! worker (in a real `Runtime`) → a scripted provider; channels, the
//! governor, idempotency, retries, dead ends and the at-least-once window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use crm_core::secrets::{Credentials, Keyring, SecretKey};
use crm_core::workers::{Backoff, Runtime, RuntimeHandle, WorkerOptions};
use crm_core::{
    AccountId, Capabilities, Channel, ChannelPatch, ContactId, Crm, Error, EventStore, EventType, Health, HealthCheck,
    InboundMessage, MemoryStore, Message, MessageContent, MessageId, MessageStatus, Messenger, MessengerFactory,
    NewChannel, NewContact, OptInStatus, OutboundMessage, Pacing, Result, SendReceipt, SendRequest, Store, WarmupStep,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ----- a scripted provider -----------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Accept,
    Transient(Option<Duration>),
    Permanent(&'static str),
    TooFast(Duration),
    /// The channel's session is not connected (reconnecting).
    Offline,
    /// Accepts, then never answers (the process "dies" before recording it).
    AcceptThenHang,
}

#[derive(Debug, Default)]
struct ProviderState {
    script: VecDeque<Step>,
    /// Default when the script is empty.
    always: Option<Step>,
    calls: Vec<MessageId>,
    accepted: Vec<(MessageId, String)>,
    caps: Option<Capabilities>,
}

/// A provider whose answers follow a script; it remembers what it accepted
/// and can tell (`find_receipt`) whether it accepted a message id.
#[derive(Debug, Clone, Default)]
struct Provider(Arc<Mutex<ProviderState>>);

impl Provider {
    fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.0.lock().unwrap().script.extend(steps);
    }
    fn always(&self, step: Step) {
        self.0.lock().unwrap().always = Some(step);
    }
    fn calls(&self) -> Vec<MessageId> {
        self.0.lock().unwrap().calls.clone()
    }
    fn accepted(&self) -> Vec<MessageId> {
        self.0.lock().unwrap().accepted.iter().map(|(m, _)| *m).collect()
    }
}

#[async_trait]
impl HealthCheck for Provider {
    fn name(&self) -> &str {
        "scripted"
    }
    async fn check(&self) -> Health {
        Health::healthy(Duration::ZERO)
    }
}

#[async_trait]
impl Messenger for Provider {
    fn provider(&self) -> &str {
        "scripted"
    }
    fn capabilities(&self) -> Capabilities {
        self.0.lock().unwrap().caps.clone().unwrap_or_else(Capabilities::everything)
    }
    async fn send(&self, m: &OutboundMessage) -> Result<SendReceipt> {
        let step = {
            let mut s = self.0.lock().unwrap();
            s.calls.push(m.message_id);
            s.script.pop_front().or_else(|| s.always.clone()).unwrap_or(Step::Accept)
        };
        let err = |transient: bool, code: &str, retry_after| Error::Provider {
            provider: "scripted".into(),
            transient,
            code: Some(code.into()),
            message: format!("scripted {code}"),
            retry_after,
            source: None,
        };
        match step {
            Step::Accept | Step::AcceptThenHang => {
                let id = format!("wamid.{}", m.message_id);
                self.0.lock().unwrap().accepted.push((m.message_id, id.clone()));
                if matches!(step, Step::AcceptThenHang) {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok(SendReceipt { provider_message_id: id })
            }
            Step::Transient(after) => Err(err(true, "500", after)),
            Step::Permanent(code) => Err(err(false, code, None)),
            Step::TooFast(after) => Err(Error::RateLimited { retry_after: after }),
            Step::Offline => Err(Error::not_connected("scripted", "the session is reconnecting")),
        }
    }
    async fn find_receipt(&self, m: &OutboundMessage) -> Result<Option<SendReceipt>> {
        let s = self.0.lock().unwrap();
        Ok(s.accepted
            .iter()
            .find(|(id, _)| *id == m.message_id)
            .map(|(_, p)| SendReceipt { provider_message_id: p.clone() }))
    }
}

/// The factory of the `scripted` channel kind: every channel sends through one provider.
#[derive(Debug, Clone)]
struct ScriptedFactory(Provider);

#[async_trait]
impl MessengerFactory for ScriptedFactory {
    fn kind(&self) -> &str {
        "scripted"
    }
    fn validate(&self, channel: &Channel, credentials: Option<&Credentials>) -> Result<()> {
        if channel.provider_id.is_none() {
            return Err(Error::validation("provider_id", "the scripted provider needs a number id"));
        }
        if credentials.is_some_and(|c| c.get("token").is_none()) {
            return Err(Error::validation("credentials.token", "is required"));
        }
        Ok(())
    }
    async fn build(&self, _channel: &Channel, credentials: Credentials) -> Result<Arc<dyn Messenger>> {
        if credentials.get("token") == Some("revoked") {
            return Err(Error::Config { message: "the token was revoked".into() });
        }
        Ok(Arc::new(self.0.clone()))
    }
}

// ----- setup -----------------------------------------------------------------------------

struct World {
    crm: Crm,
    store: Arc<MemoryStore>,
    provider: Provider,
    account: AccountId,
    channel: Channel,
}

fn keyring() -> Keyring {
    Keyring::new(SecretKey::from_bytes("test", [7; 32]).unwrap())
}

async fn world_with(pacing: Pacing, attempts: u32, deadline: Duration) -> World {
    let store = Arc::new(MemoryStore::new());
    let provider = Provider::default();
    let crm = Crm::builder()
        .store(store.clone())
        .messenger_factory(Arc::new(ScriptedFactory(provider.clone())))
        .keyring(keyring())
        .max_send_attempts(attempts)
        .send_deadline(deadline)
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap();
    let mut creds = Credentials::new();
    creds.insert("token", "EAAG-secret");
    let channel = crm
        .create_channel(
            account.id,
            NewChannel {
                kind: "scripted".into(),
                name: "Loja WhatsApp".into(),
                provider_id: Some("1234567890".into()),
                credentials: Some(creds),
                pacing: Some(pacing),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    World { crm, store, provider, account: account.id, channel }
}

async fn world() -> World {
    world_with(Pacing { pair_interval_secs: Some(0), ..Default::default() }, 10, Duration::from_secs(3600)).await
}

fn fast_options(w: &World) -> WorkerOptions {
    WorkerOptions {
        poll: Duration::from_millis(5),
        max_poll: Duration::from_millis(20),
        lease: Duration::from_secs(2),
        backoff: Backoff { base: Duration::from_millis(10), factor: 2.0, max: Duration::from_millis(50), jitter: 0.0 },
        ..w.crm.dispatcher().options()
    }
}

async fn run(w: &World) -> RuntimeHandle {
    let store: Arc<dyn Store> = w.store.clone();
    Runtime::builder(store).event_worker(Arc::new(w.crm.dispatcher()), fast_options(w)).build().start().await.unwrap()
}

async fn contact(w: &World, n: u32) -> ContactId {
    let c = NewContact { name: format!("Cliente {n}"), phone: format!("+55119{n:08}"), ..Default::default() };
    w.crm.create_contact(w.account, c).await.unwrap().id
}

async fn queue(w: &World, to: ContactId, text: &str) -> Message {
    w.crm.queue_message(w.account, SendRequest::new(to, MessageContent::text(text))).await.unwrap().message
}

/// Waits until the message has left `queued`.
async fn settled(w: &World, id: MessageId) -> Message {
    for _ in 0..1000 {
        let m = w.crm.get_message(w.account, id).await.unwrap();
        if m.status != MessageStatus::Queued {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("message {id} still queued after 10 s");
}

fn event_types(events: &[crm_core::Event]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

// ----- tests ---------------------------------------------------------------------------

#[tokio::test]
async fn queued_messages_are_sent_once_each_through_the_channel() {
    let w = world().await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let c = contact(&w, n).await;
        let m = queue(&w, c, &format!("oi {n}")).await;
        assert_eq!(m.status, MessageStatus::Queued);
        assert_eq!(m.channel_id, Some(w.channel.id), "the default channel is recorded on the message");
        ids.push(m.id);
    }
    let rt = run(&w).await;
    for id in &ids {
        let m = settled(&w, *id).await;
        assert_eq!(m.status, MessageStatus::Sent, "{m:?}");
        assert_eq!(m.provider_message_id.as_deref(), Some(format!("wamid.{id}").as_str()));
    }
    let mut calls = w.provider.calls();
    calls.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(calls, expected, "each message reached the provider exactly once");
    // A message shows `sent` a moment before its worker acknowledges the
    // outbox item and counts it done.
    let mut stats = rt.stats().await.remove(0);
    for _ in 0..1000 {
        if stats.done == 20 && stats.queue.is_some_and(|q| q.depth == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stats = rt.stats().await.remove(0);
    }
    assert_eq!((stats.name.as_str(), stats.done), ("outbox:dispatch", 20));
    assert_eq!(stats.queue.unwrap().depth, 0);
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn transient_errors_retry_honouring_the_providers_retry_after() {
    let w = world().await;
    w.provider.script([Step::Transient(Some(Duration::from_millis(300))), Step::Transient(None), Step::Accept]);
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    let started = Instant::now();
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Sent);
    assert_eq!(w.provider.calls().len(), 3);
    assert!(started.elapsed() >= Duration::from_millis(300), "the 300 ms retry-after was waited out");
    assert_eq!(rt.stats().await[0].retried, 2);
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_channel_that_is_not_connected_holds_its_messages_without_spending_attempts() {
    // One attempt allowed: a transient provider error would fail the
    // message at once; a channel that is not connected only defers it.
    let w =
        world_with(Pacing { pair_interval_secs: Some(0), ..Default::default() }, 1, Duration::from_secs(3600)).await;
    w.provider.script([Step::Offline, Step::Offline, Step::Accept]);
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Sent, "{m:?}");
    assert_eq!(w.provider.calls().len(), 3);
    let stats = rt.stats().await.remove(0);
    assert_eq!((stats.retried, stats.deferred), (0, 2), "{stats:?}");
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_channel_that_stays_disconnected_fails_its_message_at_the_deadline() {
    let w =
        world_with(Pacing { pair_interval_secs: Some(0), ..Default::default() }, 1, Duration::from_millis(300)).await;
    w.provider.always(Step::Offline);
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Failed);
    assert_eq!(m.error.unwrap().code.as_deref(), Some("deadline"));
    assert_eq!(w.provider.calls().len(), 1, "one try, then a 2 s wait past the deadline");
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_permanent_error_fails_at_once_with_the_providers_code() {
    let w = world().await;
    w.provider.script([Step::Permanent("131026")]);
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Failed);
    let e = m.error.unwrap();
    assert_eq!(e.code.as_deref(), Some("131026"));
    assert!(e.reason.contains("scripted 131026"), "{}", e.reason);
    assert_eq!(w.provider.calls().len(), 1, "never retried");
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retries_end_in_failed_after_the_configured_attempts() {
    let w =
        world_with(Pacing { pair_interval_secs: Some(0), ..Default::default() }, 3, Duration::from_secs(3600)).await;
    w.provider.always(Step::Transient(None));
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Failed);
    let e = m.error.unwrap();
    assert!(e.reason.starts_with("gave up after 3 attempts"), "{}", e.reason);
    assert_eq!(w.provider.calls().len(), 3);
    // The dispatcher decided; nothing was left for the dead letters.
    let dead = w.store.list_dead_letters("dispatch", w.account, None, 10).await.unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_deadline_fails_a_message_that_keeps_failing() {
    let w =
        world_with(Pacing { pair_interval_secs: Some(0), ..Default::default() }, 100, Duration::from_millis(150)).await;
    w.provider.always(Step::Transient(Some(Duration::from_millis(60))));
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Failed);
    let e = m.error.unwrap();
    assert_eq!(e.code.as_deref(), Some("deadline"));
    assert!(e.reason.contains("scripted 500"), "the last provider error is kept: {}", e.reason);
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_contact_who_opts_out_before_dispatch_is_never_messaged() {
    let w = world().await;
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "promo").await;
    let patch = crm_core::ContactPatch { opt_in: Some(OptInStatus::OptedOut), ..Default::default() };
    w.crm.update_contact(w.account, c, patch).await.unwrap();
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Failed);
    assert_eq!(m.error.unwrap().code.as_deref(), Some("opted_out"));
    assert!(w.provider.calls().is_empty());
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_send_interrupted_after_the_provider_accepted_it_is_reconciled_not_repeated() {
    let w = world().await;
    w.provider.script([Step::AcceptThenHang]);
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    let rt = run(&w).await;
    for _ in 0..500 {
        if !w.provider.accepted().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The process "dies" while the provider holds the message: nothing recorded.
    let report = rt.shutdown(Duration::ZERO).await;
    assert_eq!(report.released, 1);
    assert_eq!(w.crm.get_message(w.account, m.id).await.unwrap().status, MessageStatus::Queued);
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Sent);
    assert_eq!(m.provider_message_id.as_deref(), Some(format!("wamid.{}", m.id).as_str()));
    assert_eq!(w.provider.calls().len(), 1, "the second attempt asked the provider instead of sending again");
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_idempotency_key_yields_one_message_also_under_concurrency() {
    let w = world().await;
    let c = contact(&w, 1).await;
    let req = SendRequest::new(c, MessageContent::text("pedido #42")).reference("order-42");
    let first = w.crm.queue_message(w.account, req.clone()).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(first.message.client_reference.as_deref(), Some("order-42"));
    let again = w.crm.queue_message(w.account, req.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.message.id, first.message.id);

    let other = SendRequest::new(c, MessageContent::text("outra coisa")).reference("order-42");
    let e = w.crm.queue_message(w.account, other).await.unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let crm = w.crm.clone();
            let account = w.account;
            let req = SendRequest::new(c, MessageContent::text("pedido #43")).reference("order-43");
            tokio::spawn(async move { crm.queue_message(account, req).await.unwrap() })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    let mut fresh = 0;
    for t in tasks {
        let q = t.await.unwrap();
        ids.insert(q.message.id);
        fresh += usize::from(!q.replayed);
    }
    assert_eq!((ids.len(), fresh), (1, 1), "sixteen concurrent requests, one message");
    let thread = w.crm.list_thread(w.account, c, &Default::default()).await.unwrap();
    assert_eq!(thread.items.len(), 2);
    let e = w.crm.queue_message(w.account, req.clone().reference("bad key")).await.unwrap_err();
    assert!(matches!(e, Error::Validation { .. }), "{e}");
}

#[tokio::test]
async fn the_governor_spaces_messages_to_one_recipient() {
    let w =
        world_with(Pacing { pair_interval_secs: Some(1), ..Default::default() }, 10, Duration::from_secs(3600)).await;
    let c = contact(&w, 1).await;
    let ids = [queue(&w, c, "1").await.id, queue(&w, c, "2").await.id];
    let other = contact(&w, 2).await;
    let third = queue(&w, other, "3").await.id;
    let started = Instant::now();
    let rt = run(&w).await;
    for id in ids.iter().chain([&third]) {
        assert_eq!(settled(&w, *id).await.status, MessageStatus::Sent);
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "the second message to one recipient waited ~1 s");
    let stats = &rt.stats().await[0];
    assert!(stats.deferred >= 1, "{stats:?}");
    assert_eq!(stats.retried, 0, "pacing is not a failure");
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_reached_daily_cap_throttles_the_channel_and_holds_messages() {
    let pacing =
        Pacing { pair_interval_secs: Some(0), warmup: vec![WarmupStep { day: 0, cap: 2 }], ..Default::default() };
    let w = world_with(pacing, 10, Duration::from_secs(3600)).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let c = contact(&w, n).await;
        ids.push(queue(&w, c, "promo").await.id);
    }
    let rt = run(&w).await;
    let mut sent = 0;
    for id in &ids[..2] {
        sent += usize::from(settled(&w, *id).await.status == MessageStatus::Sent);
    }
    assert_eq!(sent, 2);
    let mut throttled = None;
    for _ in 0..500 {
        let ch = w.crm.get_channel(w.account, w.channel.id).await.unwrap();
        if ch.throttle.is_some() {
            throttled = ch.throttle;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = throttled.expect("the channel shows it is throttled");
    assert!(t.reason.contains("daily cap of 2"), "{}", t.reason);
    assert!(t.until > chrono::Utc::now() + chrono::Duration::hours(1));
    assert_eq!(w.crm.get_message(w.account, ids[2]).await.unwrap().status, MessageStatus::Queued, "held, not failed");
    let events = w.crm.list_events(w.account, None, 1000).await.unwrap();
    assert!(event_types(&events).contains(&EventType::CHANNEL_THROTTLED.as_str()));
    assert_eq!(w.provider.calls().len(), 2);
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_provider_throttle_is_shown_then_cleared_when_sending_resumes() {
    let w = world().await;
    w.provider.script([Step::TooFast(Duration::from_millis(200))]);
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    let rt = run(&w).await;
    assert_eq!(settled(&w, m.id).await.status, MessageStatus::Sent);
    let events = w.crm.list_events(w.account, None, 1000).await.unwrap();
    let types = event_types(&events);
    let throttled = types.iter().position(|t| *t == "channel.throttled").expect("throttled");
    let resumed = types.iter().position(|t| *t == "channel.resumed").expect("resumed");
    assert!(throttled < resumed);
    assert!(w.crm.get_channel(w.account, w.channel.id).await.unwrap().throttle.is_none());
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_deleted_channel_fails_its_queued_messages() {
    let w = world().await;
    let c = contact(&w, 1).await;
    let m = queue(&w, c, "oi").await;
    w.crm.delete_channel(w.account, w.channel.id).await.unwrap();
    let rt = run(&w).await;
    let m = settled(&w, m.id).await;
    assert_eq!(m.status, MessageStatus::Failed);
    assert!(m.error.unwrap().reason.contains("deleted"));
    // With no channel left and no fallback messenger, new sends are refused up front.
    let e = w.crm.queue_message(w.account, SendRequest::new(c, MessageContent::text("oi"))).await.unwrap_err();
    assert!(e.to_string().contains("no channel"), "{e}");
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn channels_seal_credentials_route_inbound_and_rotate_keys() {
    let w = world().await;
    let stored = w.crm.get_channel(w.account, w.channel.id).await.unwrap();
    let sealed = stored.credentials.clone().expect("credentials are stored");
    assert_eq!(sealed.key_id(), "test");
    assert!(!sealed.encode().contains("EAAG-secret"), "sealed at rest");
    assert!(!format!("{stored:?}").contains("EAAG-secret"), "never printed");
    let opened = w.crm.channels().open(&stored).unwrap();
    assert_eq!(opened.get("token"), Some("EAAG-secret"));

    // The factory validates what it needs.
    let e = w
        .crm
        .create_channel(w.account, NewChannel { kind: "scripted".into(), name: "B".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Validation { field, .. } if field == "provider_id"), "{e}");
    let e = w
        .crm
        .create_channel(w.account, NewChannel { kind: "telegram".into(), name: "B".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("available: scripted"), "{e}");
    // One provider id routes to one channel, across accounts.
    let other = w.crm.create_account("Outra").await.unwrap();
    let dup = NewChannel {
        kind: "scripted".into(),
        name: "Dup".into(),
        provider_id: Some("1234567890".into()),
        ..Default::default()
    };
    assert!(matches!(w.crm.create_channel(other.id, dup).await.unwrap_err(), Error::Conflict { .. }));

    // Inbound routing: known id → the channel and its account; unknown → refused.
    let ch = w.crm.channel_for_inbound("scripted", "1234567890").await.unwrap();
    assert_eq!((ch.id, ch.account_id), (w.channel.id, w.account));
    assert!(matches!(w.crm.channel_for_inbound("scripted", "999").await.unwrap_err(), Error::NotFound { .. }));
    let inbound = InboundMessage {
        from: "+5511912345678".into(),
        whatsapp_id: None,
        profile_name: Some("Ana".into()),
        provider_message_id: Some("wamid.in.1".into()),
        content: MessageContent::text("oi"),
        sent_at: None,
        reply_to: None,
    };
    let got = w.crm.record_inbound_via(&ch, inbound).await.unwrap();
    assert_eq!(got.message.channel_id, Some(w.channel.id));
    assert!(got.contact_created);

    // Rotation: a new active key, the old one kept to open; reseal moves everything.
    let store: Arc<dyn Store> = w.store.clone();
    let rotated = Crm::builder()
        .store(store)
        .messenger_factory(Arc::new(ScriptedFactory(w.provider.clone())))
        .keyring(
            Keyring::new(SecretKey::from_bytes("next", [9; 32]).unwrap())
                .with_old_key(SecretKey::from_bytes("test", [7; 32]).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(rotated.reseal_credentials().await.unwrap(), 1);
    assert_eq!(rotated.reseal_credentials().await.unwrap(), 0, "nothing left under the old key");
    let resealed = rotated.get_channel(w.account, w.channel.id).await.unwrap();
    assert_eq!(resealed.credentials.as_ref().unwrap().key_id(), "next");
    assert_eq!(rotated.channels().open(&resealed).unwrap().get("token"), Some("EAAG-secret"));

    // Write-only credentials: a patch replaces or removes them.
    let mut revoked = Credentials::new();
    revoked.insert("token", "revoked");
    let patch = ChannelPatch { credentials: Some(Some(revoked)), ..Default::default() };
    let changed = rotated.update_channel(w.account, w.channel.id, patch).await.unwrap();
    assert_eq!(changed.version, resealed.version + 1);
    let health = rotated.channel_health(&changed).await;
    assert_eq!(health.status, crm_core::HealthStatus::Unhealthy, "a messenger that cannot be built is unhealthy");
    let e = rotated.queue_message(w.account, SendRequest::new(got.contact.id, MessageContent::text("x"))).await;
    assert!(e.is_err(), "a channel whose messenger cannot be built refuses sends");
}

#[tokio::test]
async fn the_fallback_messenger_serves_accounts_without_channels() {
    let store = Arc::new(MemoryStore::new());
    let provider = Provider::default();
    let crm = Crm::builder().store(store.clone()).messenger(Arc::new(provider.clone())).build().unwrap();
    let account = crm.create_account("Loja").await.unwrap();
    let c = crm
        .create_contact(
            account.id,
            NewContact { name: "Ana".into(), phone: "+5511987654321".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let q = crm.queue_message(account.id, SendRequest::new(c.id, MessageContent::text("oi"))).await.unwrap();
    assert_eq!(q.message.channel_id, None);
    let store_dyn: Arc<dyn Store> = store.clone();
    let rt = Runtime::builder(store_dyn)
        .event_worker(
            Arc::new(crm.dispatcher()),
            WorkerOptions { poll: Duration::from_millis(5), ..crm.dispatcher().options() },
        )
        .build()
        .start()
        .await
        .unwrap();
    for _ in 0..500 {
        if crm.get_message(account.id, q.message.id).await.unwrap().status == MessageStatus::Sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(crm.get_message(account.id, q.message.id).await.unwrap().status, MessageStatus::Sent);
    assert_eq!(provider.calls(), [q.message.id]);
    // The immediate send still answers inline.
    let now = crm.send_message(account.id, c.id, MessageContent::text("agora")).await.unwrap();
    assert_eq!(now.status, MessageStatus::Sent);
    rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_immediate_send_is_left_to_its_caller_by_a_running_dispatcher() {
    let w = world().await;
    let rt = run(&w).await;
    let c = contact(&w, 1).await;
    let m = w.crm.send_now(w.account, SendRequest::new(c, MessageContent::text("agora"))).await.unwrap();
    assert_eq!(m.status, MessageStatus::Sent);
    // The dispatcher got its message.queued too, and held off: sent once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.provider.calls(), [m.id]);
    let stats = &rt.stats().await[0];
    assert!(stats.deferred + stats.done >= 1, "{stats:?}");
    rt.shutdown(Duration::from_secs(1)).await;
}

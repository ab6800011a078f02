//! The WhatsApp Web channel in real headless Chromium against a local
//! stand-in of WhatsApp Web (`fixtures/whatsapp-web/page.html`, served on
//! 127.0.0.1): pairing by QR, a restart that keeps the login, the version
//! pin, messages both ways, acks that only move statuses forward, a page
//! reload, a logout, two engines competing for one session, and groups
//! (the `GroupManager` conformance suite, group threads and receipts).
//!
//! Needs Chromium: `CRM_TEST_CHROMIUM` names the binary (`.ci/run` sets
//! it); unset, the tests print SKIPPED (and fail under CRM_TEST_REQUIRE_ALL).
#![cfg(feature = "whatsapp-web")]

#[path = "support/web_page.rs"]
mod web_page;

use std::sync::Arc;
use std::time::Duration;

use crm_core::{Channel, Crm, EventType, MemoryStore, MessageContent, MessageStatus, NewChannel, SendRequest, Store};
use crm_whatsapp::web::{PINNED_VERSION, SessionState, Supervisor, SupervisorOptions, WebEngine, WebFactory};
use serde_json::json;
use web_page::FakeWhatsApp;

const WAIT: Duration = Duration::from_secs(30);

fn chromium(test: &str) -> Option<String> {
    crm_core::testing::service_url("CRM_TEST_CHROMIUM", test)
}

struct Setup {
    crm: Crm,
    store: Arc<dyn Store>,
    engine: WebEngine,
    channel: Channel,
    page: FakeWhatsApp,
    _dir: TempDir,
}

/// A temporary folder removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("crm-waweb-{name}-{}", crm_core::ChannelId::new()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn engine(chromium: &str, page: &FakeWhatsApp, dir: &std::path::Path) -> WebEngine {
    WebEngine::builder()
        .chromium(chromium)
        .data_dir(dir)
        .url(page.url())
        .load_timeout(Duration::from_secs(20))
        .send_timeout(Duration::from_secs(10))
        .reconnect_backoff(Duration::from_millis(200), Duration::from_secs(2))
        .stagger(Duration::from_millis(100))
        .build()
        .expect("engine")
}

async fn setup(chromium: &str, name: &str, version: &str) -> Setup {
    let page = FakeWhatsApp::start(version).await;
    let dir = TempDir::new(name);
    let engine = engine(chromium, &page, &dir.0);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let crm = Crm::builder()
        .store(store.clone())
        .messenger_factory(Arc::new(WebFactory::new(engine.clone())))
        .build()
        .expect("crm");
    engine.attach(crm.clone());
    let account = crm.create_account("Loja").await.expect("account").id;
    let channel = crm
        .create_channel(
            account,
            NewChannel { kind: "whatsapp-web".into(), name: "Loja".into(), is_default: true, ..Default::default() },
        )
        .await
        .expect("channel");
    Setup { crm, store, engine, channel, page, _dir: dir }
}

/// Waits until the session's state satisfies `want`; returns the states seen on the way.
async fn wait_for(engine: &WebEngine, channel: &Channel, want: impl Fn(&SessionState) -> bool) -> Vec<SessionState> {
    let mut rx = engine.watch(channel.id).expect("session open");
    let mut seen = Vec::new();
    let result = tokio::time::timeout(WAIT, async {
        loop {
            let state = rx.borrow_and_update().state.clone();
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            if want(&state) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(result.is_ok(), "timed out; states seen: {seen:?}");
    seen
}

async fn pair(s: &Setup) {
    s.engine.open(&s.channel).await.expect("open");
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Pairing).await;
    s.page.command(json!({ "op": "pair", "phone": "5511900000000" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
}

async fn event_types(store: &Arc<dyn Store>, channel: &Channel) -> Vec<(String, serde_json::Value)> {
    let events = store.list_events(channel.account_id, None, 1000).await.expect("events");
    events.into_iter().map(|e| (e.event_type.to_string(), e.payload)).collect()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn chromium_processes(engine: &WebEngine) -> usize {
    engine.chromium_memory().processes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_by_qr_then_a_restart_keeps_the_login() {
    let Some(chromium) = chromium("pairing_by_qr_then_a_restart_keeps_the_login") else { return };
    let s = setup(&chromium, "pairing", PINNED_VERSION).await;
    s.engine.open(&s.channel).await.expect("open");
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Pairing).await;
    let first = s.engine.qr(s.channel.id).expect("a QR code while pairing");
    assert!(first.starts_with("2@ref"), "{first}");
    let png = crm_whatsapp::web::qr::to_png(&first).expect("png");
    assert_eq!(&png[..4], b"\x89PNG");

    // The pairing screen shows a new code: the session follows it.
    s.page.command(json!({ "op": "qr" }));
    eventually("the new QR", || async { s.engine.qr(s.channel.id).is_some_and(|q| q != first) }).await;
    // The page's version is read on its own turn of the session loop.
    eventually("the page's version", || async {
        s.engine.status(s.channel.id).is_some_and(|st| st.version.as_deref() == Some(PINNED_VERSION))
    })
    .await;
    let status = s.engine.status(s.channel.id).expect("status");
    assert_eq!(status.version.as_deref(), Some(PINNED_VERSION));
    assert_eq!(status.provider_state.as_deref(), Some("UNPAIRED"));

    s.page.command(json!({ "op": "pair", "phone": "5511900000000" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
    assert_eq!(s.engine.qr(s.channel.id), None, "no QR once connected");
    assert!(s.engine.session_folder(s.channel.id).join("profile").is_dir());

    // Events: both QR codes and every state change, in order.
    eventually("the events", || async {
        let events = event_types(&s.store, &s.channel).await;
        events.iter().filter(|(t, _)| t == "channel.qr").count() == 2
            && events.iter().any(|(t, d)| t == "channel.state_changed" && d["status"]["state"] == "connected")
    })
    .await;
    let events = event_types(&s.store, &s.channel).await;
    let states: Vec<String> = events
        .iter()
        .filter(|(t, _)| t == EventType::CHANNEL_STATE_CHANGED.as_str())
        .filter_map(|(_, d)| d["status"]["state"].as_str().map(String::from))
        .collect();
    assert!(states.ends_with(&["pairing".into(), "connected".into()]), "{states:?}");
    let qr = events.iter().find(|(t, _)| t == "channel.qr").expect("qr event");
    assert_eq!(qr.1["qr"], json!(first));
    assert_eq!(qr.1["channel_id"], json!(s.channel.id));

    // Closing ends Chromium; opening again reuses the profile: no QR.
    assert!(chromium_processes(&s.engine) > 0);
    s.engine.close(s.channel.id).await;
    assert_eq!(chromium_processes(&s.engine), 0, "Chromium is gone after close");
    s.engine.open(&s.channel).await.expect("open again");
    let seen = wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
    assert!(!seen.contains(&SessionState::Pairing), "a restart asked for a new QR: {seen:?}");
    assert_eq!(s.page.loads(), 2);
    s.engine.shutdown().await;
    assert_eq!(chromium_processes(&s.engine), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_whatsapp_web_release_fails_naming_both_versions() {
    let Some(chromium) = chromium("another_whatsapp_web_release_fails_naming_both_versions") else { return };
    let s = setup(&chromium, "version", "2.2412.54").await;
    s.engine.open(&s.channel).await.expect("open");
    wait_for(&s.engine, &s.channel, |st| matches!(st, SessionState::Failed { .. })).await;
    let SessionState::Failed { reason } = s.engine.status(s.channel.id).expect("status").state else {
        unreachable!("waited for failed")
    };
    assert!(reason.contains("2.2412.54") && reason.contains(PINNED_VERSION), "{reason}");
    // Not retried: the page was loaded once and Chromium is closed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.page.loads(), 1);
    assert!(matches!(s.engine.status(s.channel.id).map(|x| x.state), Some(SessionState::Failed { .. })));
    assert_eq!(chromium_processes(&s.engine), 0);
    // A send says so, permanently.
    let e = s.engine.send_text(s.channel.id, "5511987654321@c.us", "oi").await.expect_err("failed session");
    assert!(matches!(e, crm_core::Error::Provider { transient: false, .. }), "{e:?}");
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_both_ways_and_acks_only_move_statuses_forward() {
    let Some(chromium) = chromium("messages_both_ways_and_acks_only_move_statuses_forward") else { return };
    let s = setup(&chromium, "messages", PINNED_VERSION).await;
    pair(&s).await;
    let account = s.channel.account_id;

    // Inbound: a message from a new number creates the contact and its thread.
    s.page.command(
        json!({ "op": "receive", "from": "5511987654321@c.us", "body": "Oi, tudo bem?", "id": "IN1", "name": "Maria" }),
    );
    let contact = {
        let phone = crm_core::Phone::parse("+5511987654321").expect("phone");
        let mut found = None;
        eventually("the inbound message", || {
            let phone = phone.clone();
            let store = s.store.clone();
            async move { store.find_contact_by_phone(account, &phone).await.ok().flatten().is_some() }
        })
        .await;
        if let Ok(Some(c)) = s.store.find_contact_by_phone(account, &phone).await {
            found = Some(c);
        }
        found.expect("contact")
    };
    assert_eq!(contact.name, "Maria");
    let thread = s.crm.list_thread(account, contact.id, &Default::default()).await.expect("thread");
    assert_eq!(thread.items.len(), 1);
    assert_eq!(thread.items[0].content, MessageContent::text("Oi, tudo bem?"));
    assert_eq!(thread.items[0].channel_id, Some(s.channel.id));
    // The same message reported twice is stored once.
    s.page.command(
        json!({ "op": "receive", "from": "5511987654321@c.us", "body": "Oi, tudo bem?", "id": "IN1", "name": "Maria" }),
    );

    // Outbound: the send reaches the page with the recipient and text.
    let sent = s
        .crm
        .send_now(account, SendRequest::new(contact.id, MessageContent::text("Olá, Maria! \"quoted\" </script>")))
        .await
        .expect("send");
    assert_eq!(sent.status, MessageStatus::Sent, "{sent:?}");
    let provider_id = sent.provider_message_id.clone().expect("provider id");
    let page_sent = s.page.sent();
    assert_eq!(page_sent.len(), 1);
    assert_eq!(page_sent[0]["to"], "5511987654321@c.us");
    assert_eq!(page_sent[0]["body"], "Olá, Maria! \"quoted\" </script>");
    assert_eq!(page_sent[0]["id"], json!(provider_id));

    // Acks: delivered, read, then a stale "delivered" that must not win.
    let status_of = |id| {
        let crm = s.crm.clone();
        async move { crm.get_message(account, id).await.expect("message").status }
    };
    s.page.command(json!({ "op": "ack", "id": provider_id, "ack": 2 }));
    eventually("delivered", || async { status_of(sent.id).await == MessageStatus::Delivered }).await;
    s.page.command(json!({ "op": "ack", "id": provider_id, "ack": 3 }));
    eventually("read", || async { status_of(sent.id).await == MessageStatus::Read }).await;
    s.page.command(json!({ "op": "ack", "id": provider_id, "ack": 2 }));
    s.page.command(json!({ "op": "receive", "from": "5511987654321@c.us", "body": "marker", "id": "IN2" }));
    eventually("the marker message", || async {
        s.crm.list_thread(account, contact.id, &Default::default()).await.map(|p| p.items.len()).unwrap_or(0) == 3
    })
    .await;
    assert_eq!(status_of(sent.id).await, MessageStatus::Read, "a status moved backwards");

    // The page refusing a send fails it with the page's reason (permanent).
    s.page.answer_sends_with("ERROR_UNKNOWN");
    let failed = s.crm.send_now(account, SendRequest::new(contact.id, MessageContent::text("x"))).await.expect("send");
    assert_eq!(failed.status, MessageStatus::Failed, "{failed:?}");
    s.engine.shutdown().await;
}

// ----- groups ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_pass_the_conformance_suite_and_their_threads_reach_crm() {
    let Some(chromium) = chromium("groups_pass_the_conformance_suite_and_their_threads_reach_crm") else { return };
    let s = setup(&chromium, "groups", PINNED_VERSION).await;
    pair(&s).await;
    let account = s.channel.account_id;
    let me = crm_core::Phone::parse("+5511900000000").expect("phone");

    // The GroupManager contract, through the bridge in real Chromium.
    let manager = s.crm.group_manager(&s.channel).await.expect("a whatsapp-web channel manages groups");
    crm_core::testing::groups::run_all(manager.as_ref(), &me).await;
    let ops: Vec<String> = s.page.group_ops().iter().filter_map(|o| o["op"].as_str().map(String::from)).collect();
    for op in ["create", "subject", "description", "add", "remove", "promote", "demote", "leave"] {
        assert!(ops.iter().any(|o| o == op), "the page never saw {op}: {ops:?}");
    }

    // Through crm: the group is stored, a send reaches the page's group chat.
    let ana = crm_core::Phone::parse("+5511987650001").expect("phone");
    let group =
        s.crm.create_group(account, s.channel.id, "Clientes VIP", std::slice::from_ref(&ana)).await.expect("create");
    assert!(group.jid.ends_with("@g.us"));
    assert_eq!(group.participants.len(), 2, "{group:?}");
    let sent = s
        .crm
        .send_to_group(account, s.channel.id, group.id, MessageContent::text("Bom dia, grupo!"))
        .await
        .expect("send to the group");
    let pid = sent.provider_message_id.clone().expect("provider id");
    let page_sent = s.page.sent();
    let last = page_sent.last().expect("the page sent it");
    assert_eq!(last["to"], json!(group.jid));
    assert_eq!(last["body"], "Bom dia, grupo!");

    // Receipts per participant: delivered, read; a stale one changes nothing.
    let status_of = || {
        let store = s.store.clone();
        let pid = pid.clone();
        async move { store.find_group_message(account, &pid).await.expect("read").expect("stored") }
    };
    s.page.command(json!({ "op": "groupReceipt", "id": pid, "delivery": ["5511987650001@c.us"], "ack": 2 }));
    eventually("delivered", || async { status_of().await.status == MessageStatus::Delivered }).await;
    assert_eq!(status_of().await.receipts.get(ana.as_str()), Some(&MessageStatus::Delivered));
    s.page.command(json!({ "op": "groupReceipt", "id": pid, "read": ["5511987650001@c.us"], "ack": 3 }));
    eventually("read", || async { status_of().await.receipts.get(ana.as_str()) == Some(&MessageStatus::Read) }).await;
    s.page.command(json!({ "op": "groupReceipt", "id": pid, "delivery": ["5511987650001@c.us"], "ack": 2 }));

    // Inbound: a participant writes; the sender is recorded. A group the
    // channel was added to elsewhere is read from the page on its first message.
    s.page.command(json!({
        "op": "groupReceive", "group": group.jid, "author": "5511987650001@c.us",
        "body": "Oi! Tem desconto?", "id": "GIN1", "name": "Ana"
    }));
    s.page.command(json!({
        "op": "joinGroup", "group": "120363000000000777@g.us", "subject": "Fornecedores",
        "participants": ["5511987650009@c.us"]
    }));
    s.page.command(json!({
        "op": "groupReceive", "group": "120363000000000777@g.us", "author": "5511987650009@c.us",
        "body": "Pedido chegou", "id": "GIN2"
    }));
    let thread = |id| {
        let crm = s.crm.clone();
        let channel = s.channel.id;
        async move { crm.list_group_messages(account, channel, id, None, 100).await.expect("thread") }
    };
    eventually("the group message", || async { thread(group.id).await.len() == 2 }).await;
    let inbound = thread(group.id).await.into_iter().find(|m| m.direction == crm_core::Direction::Inbound);
    let inbound = inbound.expect("inbound");
    assert_eq!(inbound.sender.as_ref(), Some(&ana));
    assert_eq!(inbound.sender_name.as_deref(), Some("Ana"));
    assert_eq!(inbound.content, MessageContent::text("Oi! Tem desconto?"));
    eventually("the other group", || async {
        s.store.find_group(account, s.channel.id, "120363000000000777@g.us").await.ok().flatten().is_some()
    })
    .await;
    let other = s.store.find_group(account, s.channel.id, "120363000000000777@g.us").await.expect("find").expect("g");
    assert_eq!(other.subject, "Fornecedores", "read from the page");
    eventually("its message", || async { thread(other.id).await.len() == 1 }).await;
    assert_eq!(status_of().await.status, MessageStatus::Read, "a group message's status moved backwards");

    let events = event_types(&s.store, &s.channel).await;
    for kind in ["group.created", "group.message_sent", "group.message_received"] {
        assert!(events.iter().any(|(t, _)| t == kind), "no {kind} event");
    }
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_reload_reconnects_and_a_logout_is_reported_not_retried() {
    let Some(chromium) = chromium("a_page_reload_reconnects_and_a_logout_is_reported_not_retried") else { return };
    let s = setup(&chromium, "reload", PINNED_VERSION).await;
    pair(&s).await;

    s.page.command(json!({ "op": "reload" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Opening).await;
    assert_eq!(s.page.loads(), 2);
    let seen = wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
    assert!(!seen.contains(&SessionState::Pairing), "{seen:?}");
    let id = s.engine.send_text(s.channel.id, "5511987654321@c.us", "after the reload").await.expect("send");
    assert!(id.starts_with("true_5511987654321@c.us_"), "{id}");

    // WhatsApp Web loses its connection by itself: reported, then back.
    s.page.command(json!({ "op": "state", "state": "TIMEOUT" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Opening).await;
    let e = s.engine.send_text(s.channel.id, "5511987654321@c.us", "x").await.expect_err("not connected");
    assert!(matches!(e, crm_core::Error::Provider { transient: true, .. }), "{e:?}");
    s.page.command(json!({ "op": "state", "state": "CONNECTED" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;

    s.page.command(json!({ "op": "logout" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::LoggedOut).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.engine.status(s.channel.id).map(|x| x.state), Some(SessionState::LoggedOut));
    assert_eq!(s.page.loads(), 2, "a logged-out session is not opened again");
    assert_eq!(chromium_processes(&s.engine), 0);
    let health = s.crm.channel_health(&s.channel).await;
    assert_eq!(health.status, crm_core::HealthStatus::Unhealthy, "{health:?}");
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_compete_for_one_session_and_one_takes_over_after_a_crash() {
    let Some(chromium) = chromium("two_processes_compete_for_one_session_and_one_takes_over_after_a_crash") else {
        return;
    };
    // Process A, and process B on the same store and data folder.
    let a = setup(&chromium, "lease", PINNED_VERSION).await;
    let engine_b = engine(&chromium, &a.page, &a._dir.0);
    let crm_b = Crm::builder()
        .store(a.store.clone())
        .messenger_factory(Arc::new(WebFactory::new(engine_b.clone())))
        .build()
        .expect("crm b");
    engine_b.attach(crm_b.clone());
    let options = |owner: &str| SupervisorOptions {
        owner: owner.into(),
        lease: Duration::from_millis(1500),
        every: Duration::from_millis(300),
    };
    let sup_a = Supervisor::start(a.engine.clone(), a.crm.clone(), options("process-a"));
    eventually("A opens the session", || async { a.engine.status(a.channel.id).is_some() }).await;
    wait_for(&a.engine, &a.channel, |st| *st == SessionState::Pairing).await;
    a.page.command(json!({ "op": "pair", "phone": "5511900000000" }));
    wait_for(&a.engine, &a.channel, |st| *st == SessionState::Connected).await;

    let sup_b = Supervisor::start(engine_b.clone(), crm_b.clone(), options("process-b"));
    eventually("B sees A's lease", || async { engine_b.owner_elsewhere(a.channel.id).is_some() }).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(engine_b.status(a.channel.id).is_none(), "B opened a session A owns");
    assert_eq!(engine_b.owner_elsewhere(a.channel.id).as_deref(), Some("process-a"));
    assert_eq!(a.page.loads(), 1, "one page for one session");
    let health = crm_b.channel_health(&a.channel).await;
    assert!(health.detail.as_deref().is_some_and(|d| d.contains("process-a")), "{health:?}");

    // A dies without giving the lease back; B takes over once it expired,
    // with the login kept in the shared profile.
    sup_a.abandon();
    a.engine.shutdown().await;
    eventually("B opens the session", || async { engine_b.status(a.channel.id).is_some() }).await;
    let seen = wait_for(&engine_b, &a.channel, |st| *st == SessionState::Connected).await;
    assert!(!seen.contains(&SessionState::Pairing), "{seen:?}");
    assert_eq!(a.page.loads(), 2);
    assert_eq!(a.store.channel_lease_owner(a.channel.id).await.expect("owner").as_deref(), Some("process-b"));
    let id = engine_b.send_text(a.channel.id, "5511987654321@c.us", "from B").await.expect("B sends");
    assert!(id.starts_with("true_"), "{id}");

    sup_b.stop().await;
    assert_eq!(a.store.channel_lease_owner(a.channel.id).await.expect("owner"), None, "B released its lease");
    assert_eq!(engine_b.chromium_memory().processes, 0);
}

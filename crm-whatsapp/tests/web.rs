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
use crm_whatsapp::web::{
    PINNED_VERSION, SessionState, Supervisor, SupervisorOptions, WebEngine, WebFactory, WebMediaFetcher,
};
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

async fn new_contact(s: &Setup, name: &str, phone: &str) -> crm_core::Contact {
    let input = crm_core::NewContact { name: name.into(), phone: phone.into(), ..Default::default() };
    s.crm.create_contact(s.channel.account_id, input).await.expect("contact")
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

    // Members WhatsApp names by LID: resolved through the page (and the
    // link remembered), through the channel's LID map, or kept by LID.
    let (page_lid, stored_lid, unknown_lid) = ("111111111111111@lid", "222222222222222@lid", "333333333333333@lid");
    let by_page = crm_core::Phone::parse("+5511987650011").expect("phone");
    let by_store = crm_core::Phone::parse("+5511987650012").expect("phone");
    s.page.command(json!({ "op": "lid", "lid": page_lid, "phone": "5511987650011@c.us" }));
    s.store.link_lid(account, s.channel.id, &by_store, stored_lid).await.expect("link");
    let lid_group = "120363000000000888@g.us";
    s.page.command(json!({
        "op": "joinGroup", "group": lid_group, "subject": "Por LID",
        "participants": [page_lid, stored_lid, unknown_lid]
    }));
    eventually("the LID group", || async { manager.group_info(lid_group).await.is_ok() }).await;
    let info = manager.group_info(lid_group).await.expect("info");
    assert_eq!(info.participants.len(), 4, "{info:?}");
    let member = |lid: &str| info.participants.iter().find(|p| p.lid.as_deref() == Some(lid)).cloned();
    assert_eq!(member(page_lid).and_then(|p| p.phone), Some(by_page.clone()));
    assert_eq!(member(stored_lid).and_then(|p| p.phone), Some(by_store.clone()));
    let unknown = member(unknown_lid).expect("an unknown LID is kept");
    assert_eq!(unknown.phone, None);
    assert!(info.participant(&me).is_some());
    assert_eq!(
        s.store.phone_for_lid(account, s.channel.id, page_lid).await.expect("lookup"),
        Some(by_page),
        "the page's answer is remembered"
    );
    // Stored through crm, the group keeps the LID-only member.
    let refreshed = s.crm.list_groups(account, s.channel.id, true).await.expect("refresh");
    let stored = refreshed.iter().find(|g| g.jid == lid_group).expect("stored");
    assert_eq!(stored.participants.len(), 4);
    assert!(stored.participants.iter().any(|p| p.phone.is_none() && p.lid.as_deref() == Some(unknown_lid)));
    // A message from a member known by LID is recorded with their phone.
    s.page.command(json!({
        "op": "groupReceive", "group": lid_group, "author": stored_lid, "body": "Oi pelo LID", "id": "GIN3"
    }));
    eventually("the LID member's message", || async { thread(stored.id).await.len() == 1 }).await;
    assert_eq!(thread(stored.id).await[0].sender.as_ref(), Some(&by_store));

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
    // While it is away, calls answer the typed "not connected" error, and a
    // queued message waits for the connection instead of failing.
    s.page.command(json!({ "op": "state", "state": "TIMEOUT" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Opening).await;
    let e = s.engine.send_text(s.channel.id, "5511987654321@c.us", "x").await.expect_err("not connected");
    assert!(matches!(e, crm_core::Error::NotConnected { .. }), "{e:?}");
    assert!(e.is_transient());
    let groups = s.crm.group_manager(&s.channel).await.expect("groups");
    let e = groups.list_groups().await.expect_err("not connected");
    assert!(matches!(e, crm_core::Error::NotConnected { .. }), "{e:?}");
    let account = s.channel.account_id;
    let contact = new_contact(&s, "Ana", "+5511987654321").await;
    let queued = s
        .crm
        .queue_message(account, SendRequest::new(contact.id, MessageContent::text("while away")))
        .await
        .expect("queue")
        .message;
    let events = s.store.list_events(account, None, 1000).await.expect("events");
    let event = events.iter().rev().find(|e| e.event_type == EventType::MESSAGE_QUEUED).expect("queued event").clone();
    let dispatcher = s.crm.dispatcher();
    use crm_core::workers::{EventWorker, Outcome};
    let outcome = dispatcher.handle(&event, 1, None).await;
    assert!(matches!(outcome, Outcome::Defer { .. }), "{outcome:?}");
    assert_eq!(s.crm.get_message(account, queued.id).await.expect("message").status, MessageStatus::Queued);
    s.page.command(json!({ "op": "state", "state": "CONNECTED" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
    assert_eq!(dispatcher.handle(&event, 1, None).await, Outcome::Done);
    assert_eq!(s.crm.get_message(account, queued.id).await.expect("message").status, MessageStatus::Sent);
    assert!(s.page.sent().iter().any(|m| m["body"] == "while away"));

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

// ----- identity: LIDs and the Brazilian 9th digit ---------------------------------

async fn contact_by_phone(s: &Setup, phone: &str) -> crm_core::Contact {
    let phone = crm_core::Phone::parse(phone).expect("phone");
    let account = s.channel.account_id;
    eventually("the contact", || {
        let (store, phone) = (s.store.clone(), phone.clone());
        async move { store.find_contact_by_phone(account, &phone).await.ok().flatten().is_some() }
    })
    .await;
    s.store.find_contact_by_phone(account, &phone).await.expect("find").expect("contact")
}

async fn thread_len(s: &Setup, contact: crm_core::ContactId) -> usize {
    s.crm.list_thread(s.channel.account_id, contact, &Default::default()).await.map(|p| p.items.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brazilian_numbers_go_to_the_variant_that_exists_and_lids_keep_one_thread() {
    let Some(chromium) = chromium("brazilian_numbers_go_to_the_variant_that_exists_and_lids_keep_one_thread") else {
        return;
    };
    let s = setup(&chromium, "identity", PINNED_VERSION).await;
    pair(&s).await;
    let account = s.channel.account_id;
    // Maria registered WhatsApp before the 9th digit: only that form exists.
    s.page.register_only(&["551187654321"]);
    let maria = new_contact(&s, "Maria", "+55 11 98765-4321").await;
    assert_eq!(maria.whatsapp_id, None);

    let first = s.crm.send_now(account, SendRequest::new(maria.id, MessageContent::text("oi"))).await.expect("send");
    assert_eq!(first.status, MessageStatus::Sent, "{first:?}");
    assert_eq!(s.page.sent()[0]["to"], "551187654321@c.us");
    assert_eq!(s.page.exists_queries(), vec!["5511987654321", "551187654321"], "asked both variants, in order");
    let phone = crm_core::Phone::parse("+5511987654321").expect("phone");
    let known = s.store.whatsapp_identity(account, s.channel.id, &phone).await.expect("identity").expect("stored");
    assert_eq!(known.whatsapp_id.as_deref(), Some("551187654321"));
    // Later sends go straight to it.
    let second = s.crm.send_now(account, SendRequest::new(maria.id, MessageContent::text("2"))).await.expect("send");
    assert_eq!(second.status, MessageStatus::Sent);
    assert_eq!(s.page.sent()[1]["to"], "551187654321@c.us");
    assert_eq!(s.page.exists_queries().len(), 2, "no new lookup");

    // A number in neither form fails with a clear reason, nothing sent.
    let nobody = new_contact(&s, "Ninguém", "+55 21 99876-5432").await;
    let failed = s.crm.send_now(account, SendRequest::new(nobody.id, MessageContent::text("?"))).await.expect("send");
    assert_eq!(failed.status, MessageStatus::Failed, "{failed:?}");
    let error = failed.error.expect("error");
    assert_eq!(error.code.as_deref(), Some("not_on_whatsapp"), "{error:?}");
    assert!(error.reason.contains("9th digit"), "{error:?}");
    assert_eq!(s.page.sent().len(), 2, "nothing went into the void");
    assert_eq!(&s.page.exists_queries()[2..], ["5521998765432", "552198765432"]);

    // Maria writes from her LID; the page knows the LID's phone: same
    // contact, same thread, and the map learns the link.
    s.page.command(json!({ "op": "lid", "lid": "777000111@lid", "phone": "551187654321@c.us" }));
    s.page
        .command(json!({ "op": "receive", "from": "777000111@lid", "body": "pelo LID", "id": "L1", "name": "Maria" }));
    eventually("the LID message in Maria's thread", || async { thread_len(&s, maria.id).await == 3 }).await;
    assert_eq!(
        s.store.phone_for_lid(account, s.channel.id, "777000111@lid").await.expect("lookup"),
        Some(phone.clone())
    );
    let thread = s.crm.list_thread(account, maria.id, &Default::default()).await.expect("thread");
    let inbound = thread.items.iter().find(|m| m.content == MessageContent::text("pelo LID")).expect("inbound");
    assert_eq!(inbound.provider_message_id.as_deref(), Some("false_551187654321@c.us_L1"), "one key per message");
    // The same message reported under the phone id is the same message.
    s.page.command(json!({ "op": "receive", "from": "551187654321@c.us", "body": "pelo LID", "id": "L1" }));

    // An ack reported under the LID moves the message sent to the phone id.
    let provider_id = first.provider_message_id.clone().expect("provider id");
    s.page.command(json!({ "op": "ack", "id": provider_id, "ack": 3, "remote": "777000111@lid" }));
    eventually("read through the LID", || async {
        s.crm.get_message(account, first.id).await.map(|m| m.status == MessageStatus::Read).unwrap_or(false)
    })
    .await;

    // A LID nobody can map is skipped, not turned into a contact.
    s.page.command(json!({ "op": "receive", "from": "999@lid", "body": "quem?", "id": "L2" }));
    s.page.command(json!({ "op": "receive", "from": "551187654321@c.us", "body": "marker", "id": "M1" }));
    eventually("the marker", || async { thread_len(&s, maria.id).await == 4 }).await;
    let contacts = s.crm.list_contacts(account, &Default::default()).await.expect("contacts");
    assert_eq!(contacts.items.len(), 2, "{:?}", contacts.items);
    s.engine.shutdown().await;
}

// ----- read receipts and media --------------------------------------------------

/// A PNG's first bytes (what the media library's sniffing recognises).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
/// A PDF's first bytes.
const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn thread_of(s: &Setup, contact: crm_core::ContactId) -> Vec<crm_core::Message> {
    s.crm.list_thread(s.channel.account_id, contact, &Default::default()).await.expect("thread").items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_and_media_both_ways() {
    use crm_core::media::{MediaLibrary, Upload};
    use crm_core::{AttachmentState, MediaKind, MediaRef};
    let Some(chromium) = chromium("read_receipts_and_media_both_ways") else { return };
    let s = setup(&chromium, "media", PINNED_VERSION).await;
    let library = MediaLibrary::new(&s.crm, Arc::new(crm_core::MemoryMediaStore::new()));
    assert!(s.engine.set_media_library(library.clone()));
    // Inbound files are kept by a job of their own, as crm-server runs it.
    let fetcher = WebMediaFetcher::new(s.engine.clone()).not_connected_wait(Duration::from_millis(200));
    let options = crm_core::workers::WorkerOptions {
        poll: Duration::from_millis(20),
        max_poll: Duration::from_millis(100),
        ..WebMediaFetcher::options()
    };
    let runtime = crm_core::workers::Runtime::builder(s.store.clone())
        .event_worker(Arc::new(fetcher), options)
        .build()
        .start()
        .await
        .expect("runtime");
    pair(&s).await;
    let account = s.channel.account_id;

    // Inbound: an image is downloaded from the page into the library.
    s.page.command(json!({
        "op": "receive", "from": "5511987654321@c.us", "id": "IMG1", "type": "image", "name": "Maria",
        "file": { "mimetype": "image/png", "data": b64(PNG), "caption": "minha foto" },
    }));
    let maria = contact_by_phone(&s, "+5511987654321").await;
    eventually("the image kept", || async {
        thread_of(&s, maria.id).await.first().and_then(|m| m.attachment.clone()).map(|a| a.state)
            == Some(AttachmentState::Stored)
    })
    .await;
    let image = thread_of(&s, maria.id).await.remove(0);
    let MessageContent::Media { kind, media, caption, .. } = &image.content else { panic!("{:?}", image.content) };
    assert_eq!((*kind, caption.as_deref()), (MediaKind::Image, Some("minha foto")));
    assert_eq!(media.location, "false_5511987654321@c.us_IMG1");
    let attachment = image.attachment.clone().expect("attachment");
    assert_eq!((attachment.mime_type.as_deref(), attachment.size), (Some("image/png"), Some(PNG.len() as u64)));
    let (record, download) = library.open(account, attachment.media_id.expect("media id")).await.expect("open");
    assert_eq!(record.message_id, Some(image.id));
    let bytes = crm_core::ports::media::collect(download.body, 1 << 20).await.expect("bytes");
    assert_eq!(bytes, PNG);
    let updates = event_types(&s.store, &s.channel).await;
    let states: Vec<_> = updates
        .iter()
        .filter(|(t, p)| t == "message.updated" && p["message_id"] == json!(image.id))
        .map(|(_, p)| p["attachment"]["state"].clone())
        .collect();
    assert_eq!(states, vec![json!("pending"), json!("stored")], "message.updated per step, as for Cloud media");

    // While the session is away the file waits (pending, not failed) and
    // is kept once it is back.
    s.page.command(json!({ "op": "state", "state": "TIMEOUT" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Opening).await;
    s.page.command(json!({
        "op": "receive", "from": "5511987654321@c.us", "id": "IMG2", "type": "image",
        "file": { "mimetype": "image/png", "data": b64(PNG) },
    }));
    let second_state =
        || async { thread_of(&s, maria.id).await.get(1).and_then(|m| m.attachment.clone()).map(|a| a.state) };
    eventually("the second image waiting", || async { second_state().await == Some(AttachmentState::Pending) }).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(second_state().await, Some(AttachmentState::Pending), "a disconnected session fails nothing");
    s.page.command(json!({ "op": "state", "state": "CONNECTED" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
    eventually("the second image kept", || async { second_state().await == Some(AttachmentState::Stored) }).await;

    // A document whose file is gone from WhatsApp's servers: failed, with why.
    s.page.command(json!({
        "op": "receive", "from": "5511987654321@c.us", "id": "DOC1", "type": "document",
        "file": { "mimetype": "application/pdf", "filename": "nota.pdf" },
    }));
    eventually("the document failed", || async {
        thread_of(&s, maria.id).await.get(2).and_then(|m| m.attachment.clone()).map(|a| a.state)
            == Some(AttachmentState::Failed)
    })
    .await;
    let doc = thread_of(&s, maria.id).await.remove(2);
    let MessageContent::Media { kind, filename, .. } = &doc.content else { panic!("{:?}", doc.content) };
    assert_eq!((*kind, filename.as_deref()), (MediaKind::Document, Some("nota.pdf")));
    let error = doc.attachment.and_then(|a| a.error).expect("reason");
    assert!(error.contains("410"), "{error}");

    // Read receipts: the chat of the message is marked read on the page.
    s.crm.mark_read(account, image.id).await.expect("mark read");
    eventually("the chat marked read", || async { !s.page.seen().is_empty() }).await;
    assert_eq!(s.page.seen(), vec![json!({ "chat": "5511987654321@c.us" })]);

    // Outbound: files of the library go through the page's upload.
    let upload = Upload { filename: "logo.png", content_type: Some("image/png") };
    let logo = library.upload(account, upload, crm_core::ports::media::once(PNG.to_vec())).await.expect("upload");
    let media_content =
        |kind, id: crm_core::MediaId, caption: Option<&str>, filename: Option<&str>| MessageContent::Media {
            kind,
            media: MediaRef { location: format!("media:{id}"), mime_type: None },
            caption: caption.map(Into::into),
            filename: filename.map(Into::into),
        };
    let sent = s
        .crm
        .send_now(
            account,
            SendRequest::new(maria.id, media_content(MediaKind::Image, logo.id, Some("Nossa marca"), None)),
        )
        .await
        .expect("send");
    assert_eq!(sent.status, MessageStatus::Sent, "{sent:?}");
    let uploads = s.page.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!((uploads[0].0.as_str(), uploads[0].1.as_str(), uploads[0].2.as_slice()), ("IMAGE", "image/png", PNG));
    let on_page = s.page.sent().last().cloned().expect("sent");
    assert_eq!(on_page["to"], "5511987654321@c.us");
    assert_eq!(on_page["type"], "image");
    assert_eq!(on_page["caption"], "Nossa marca");
    assert_eq!(on_page["mimetype"], "image/png");
    assert_eq!(on_page["directPath"], "/v/t62/upload-1");
    assert_eq!(on_page["id"], json!(sent.provider_message_id.clone().expect("id")));

    let upload = Upload { filename: "nota.pdf", content_type: Some("application/pdf") };
    let pdf = library.upload(account, upload, crm_core::ports::media::once(PDF.to_vec())).await.expect("upload");
    let sent = s
        .crm
        .send_now(
            account,
            SendRequest::new(maria.id, media_content(MediaKind::Document, pdf.id, None, Some("nota.pdf"))),
        )
        .await
        .expect("send");
    assert_eq!(sent.status, MessageStatus::Sent, "{sent:?}");
    let on_page = s.page.sent().last().cloned().expect("sent");
    assert_eq!((on_page["type"].as_str(), on_page["filename"].as_str()), (Some("document"), Some("nota.pdf")));
    assert_eq!(s.page.uploads()[1].2, PDF);

    // A link is not fetched by the page: the send fails, nothing uploaded.
    let link = MessageContent::Media {
        kind: MediaKind::Image,
        media: MediaRef { location: "https://example.com/a.png".into(), mime_type: None },
        caption: None,
        filename: None,
    };
    match s.crm.send_now(account, SendRequest::new(maria.id, link)).await {
        Ok(m) => assert_eq!(m.status, MessageStatus::Failed, "{m:?}"),
        Err(e) => assert!(matches!(e, crm_core::Error::Validation { .. }), "{e:?}"),
    }
    assert_eq!(s.page.uploads().len(), 2);
    runtime.shutdown(Duration::from_secs(1)).await;
    s.engine.shutdown().await;
}

// ----- contacts sync --------------------------------------------------------------

async fn count_events(s: &Setup, kind: &str) -> usize {
    event_types(&s.store, &s.channel).await.iter().filter(|(t, _)| t == kind).count()
}

async fn contact_count(s: &Setup) -> usize {
    s.crm.list_contacts(s.channel.account_id, &Default::default()).await.map(|p| p.items.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_sync_on_pairing_and_stays_in_step() {
    let Some(chromium) = chromium("contacts_sync_on_pairing_and_stays_in_step") else { return };
    let s = setup(&chromium, "contacts", PINNED_VERSION).await;
    let account = s.channel.account_id;
    // The account already has Maria, renamed in crm; the phone saved her
    // without the 9th digit.
    let maria = s
        .crm
        .create_contact(
            account,
            crm_core::NewContact {
                name: "Dona Maria (VIP)".into(),
                phone: "+5511987654321".into(),
                ..Default::default()
            },
        )
        .await
        .expect("contact");
    s.engine.open(&s.channel).await.expect("open");
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Pairing).await;
    s.page.command(json!({ "op": "contacts", "list": [
        { "id": "551187654321@c.us", "name": "Maria Souza" },
        { "id": "5521998765432@c.us", "name": "João" },
        // Not saved on the phone and no chat: not imported.
        { "id": "5531977776666@c.us", "pushname": "Estranho", "saved": false },
        // Not saved, but with a chat: imported under the profile name.
        { "id": "5531988887777@c.us", "pushname": "Zé", "saved": false },
    ]}));
    s.page.command(json!({ "op": "chat", "id": "5531988887777@c.us" }));
    s.page.command(json!({ "op": "chat", "id": "447700900123@c.us", "name": "Cliente UK" }));
    s.page.command(json!({ "op": "pair", "phone": "5511900000000" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
    eventually("the phone's contacts", || async { contact_count(&s).await == 4 }).await;

    let same = s.crm.get_contact(account, maria.id).await.expect("maria");
    assert_eq!(same.name, "Dona Maria (VIP)", "the account's name is kept");
    assert_eq!(same.whatsapp_id.as_deref(), Some("551187654321"));
    assert_eq!(same.metadata.get("whatsapp_name"), Some(&json!("Maria Souza")));
    let joao = contact_by_phone(&s, "+5521998765432").await;
    assert_eq!((joao.name.as_str(), joao.whatsapp_id.as_deref()), ("João", Some("5521998765432")));
    assert_eq!(contact_by_phone(&s, "+5531988887777").await.name, "Zé");
    assert_eq!(contact_by_phone(&s, "+447700900123").await.name, "Cliente UK");
    let stranger = crm_core::Phone::parse("+5531977776666").expect("phone");
    assert!(s.store.find_contact_by_phone(account, &stranger).await.expect("find").is_none());
    // Each report is recorded as `channel.contacts_synced` with its counts.
    let total = |key: &'static str| {
        let store = s.store.clone();
        let channel = s.channel.clone();
        async move {
            let events = event_types(&store, &channel).await;
            let synced: Vec<_> = events.into_iter().filter(|(t, _)| t == "channel.contacts_synced").collect();
            (synced.len(), synced.iter().map(|(_, p)| p[key].as_u64().unwrap_or(0)).sum::<u64>())
        }
    };
    eventually("the sync's event", || async { total("created").await.1 == 3 }).await;
    assert!(total("updated").await.1 >= 1, "Maria's WhatsApp name and id");
    let (_, payload) = event_types(&s.store, &s.channel)
        .await
        .into_iter()
        .find(|(t, _)| t == "channel.contacts_synced")
        .expect("an event");
    assert_eq!(payload["channel_id"], json!(s.channel.id));
    assert_eq!(payload["kind"], "whatsapp-web");
    assert!(payload["reported"].as_u64().is_some_and(|n| n >= 1), "{payload}");

    // Kept in step: a new chat creates its contact, a rename follows.
    s.page.command(json!({ "op": "chat", "id": "5511911112222@c.us", "name": "Novo Cliente" }));
    eventually("the new chat's contact", || async { contact_count(&s).await == 5 }).await;
    s.page.command(json!({ "op": "rename", "id": "5521998765432@c.us", "name": "João Silva" }));
    eventually("the rename", || async {
        s.crm.get_contact(account, joao.id).await.is_ok_and(|c| c.name == "João Silva")
    })
    .await;

    // Idempotent: a reload syncs again and changes nothing.
    let updated = count_events(&s, "contact.updated").await;
    let created = count_events(&s, "contact.created").await;
    s.page.command(json!({ "op": "reload" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Opening).await;
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
    // A marker after the second sync: one more chat.
    s.page.command(json!({ "op": "chat", "id": "5511933334444@c.us", "name": "Depois" }));
    eventually("the marker chat's contact", || async { contact_count(&s).await == 6 }).await;
    assert_eq!(count_events(&s, "contact.created").await, created + 1);
    assert_eq!(count_events(&s, "contact.updated").await, updated, "a second sync wrote nothing");
    let events = event_types(&s.store, &s.channel).await;
    let resync = events
        .iter()
        .filter(|(t, _)| t == "channel.contacts_synced")
        .any(|(_, p)| p["created"] == 0 && p["updated"] == 0 && p["unchanged"].as_u64().is_some_and(|n| n >= 5));
    assert!(resync, "the second full sync is recorded with everything unchanged");
    s.engine.shutdown().await;
}

// ----- pairing by phone-number code ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_by_phone_number_code() {
    let Some(chromium) = chromium("pairing_by_phone_number_code") else { return };
    let s = setup(&chromium, "code", PINNED_VERSION).await;
    let phone = crm_core::Phone::parse("+55 11 98765-4321").expect("phone");
    // Not open here: the channel is not connected (transient).
    let e = s.engine.request_pairing_code(s.channel.id, &phone, Duration::from_secs(1)).await.expect_err("not open");
    assert!(matches!(e, crm_core::Error::NotConnected { .. }), "{e:?}");
    assert!(e.is_transient());
    // Opening: the request waits for the pairing screen.
    s.engine.open(&s.channel).await.expect("open");
    let code = s.engine.request_pairing_code(s.channel.id, &phone, WAIT).await.expect("code");
    assert_eq!(code, web_page::PAIRING_CODE);
    assert_eq!(s.page.pairing_requests(), vec!["5511987654321"]);
    // The user types it on the phone: the session connects.
    s.page.command(json!({ "op": "pair", "phone": "5511987654321" }));
    wait_for(&s.engine, &s.channel, |st| *st == SessionState::Connected).await;
    let e = s.engine.request_pairing_code(s.channel.id, &phone, WAIT).await.expect_err("connected");
    assert!(matches!(e, crm_core::Error::Conflict { .. }), "{e:?}");
    assert_eq!(s.page.pairing_requests().len(), 1);
    s.engine.shutdown().await;
}

//! Campaigns end to end on the memory store: the runner, the dispatcher and
//! the tracker in a real `Runtime`, sending through the recording channel.
//! State machine (start, schedule, pause, resume, cancel), skip reasons,
//! exactly one message per recipient, counters from status reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crm_core::workers::{Runtime, RuntimeHandle};
use crm_core::{
    AccountId, Audience, Campaign, CampaignState, ChannelId, ContactId, Crm, Error, EventStore, EventType,
    InboundMessage, MemoryStore, MessageContent, MessageStatus, NewCampaign, NewChannel, NewContact, NewTemplate,
    Pacing, RecipientState, RecordingFactory, RecordingMessenger, Store, Tag,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

struct World {
    crm: Crm,
    store: Arc<MemoryStore>,
    messenger: RecordingMessenger,
    account: AccountId,
    channel: ChannelId,
}

async fn world(per_second: Option<u32>) -> World {
    let store = Arc::new(MemoryStore::new());
    let messenger = RecordingMessenger::new();
    let crm = Crm::builder()
        .store(store.clone())
        .messenger_factory(Arc::new(RecordingFactory::new(messenger.clone())))
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap().id;
    let pacing = Pacing { per_second, pair_interval_secs: Some(0), ..Default::default() };
    let channel = crm
        .create_channel(
            account,
            NewChannel { kind: "recording".into(), name: "Loja".into(), pacing: Some(pacing), ..Default::default() },
        )
        .await
        .unwrap()
        .id;
    let body = "Oi {{first_name}}, {{offer}} hoje!";
    let t = NewTemplate { name: "promo".into(), body: body.into(), ..Default::default() };
    crm.create_template(account, t).await.unwrap();
    World { crm, store, messenger, account, channel }
}

static NEXT_PHONE: AtomicUsize = AtomicUsize::new(0);

async fn contacts(w: &World, n: usize, tags: &[&str]) -> Vec<ContactId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let c = NewContact {
            name: format!("Ana {i}"),
            phone: format!("+55 11 9{:08}", 10_000_000 + NEXT_PHONE.fetch_add(1, Ordering::Relaxed)),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        };
        ids.push(w.crm.create_contact(w.account, c).await.unwrap().id);
    }
    ids
}

fn new_campaign(w: &World, audience: Audience) -> NewCampaign {
    NewCampaign {
        name: "Black Friday".into(),
        channel_id: Some(w.channel),
        template: "promo".into(),
        language: None,
        variables: [("offer".to_owned(), "10% off".to_owned())].into(),
        audience,
        scheduled_at: None,
    }
}

fn vip() -> Audience {
    Audience::Tag { tag: Tag::parse("vip").unwrap() }
}

async fn run(w: &World) -> RuntimeHandle {
    let store: Arc<dyn Store> = w.store.clone();
    let (d, r, t) = (w.crm.dispatcher(), w.crm.campaign_runner(), w.crm.campaign_tracker());
    let (dop, rop, top) = (d.options(), r.options(), t.options());
    Runtime::builder(store)
        .event_worker(Arc::new(d), dop)
        .job_worker(Arc::new(r), rop)
        .event_worker(Arc::new(t), top)
        .build()
        .start()
        .await
        .unwrap()
}

async fn wait_for(w: &World, id: crm_core::CampaignId, what: &str, ok: impl Fn(&crm_core::CampaignView) -> bool) {
    for _ in 0..600 {
        let v = w.crm.get_campaign(w.account, id).await.unwrap();
        if ok(&v) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = w.crm.get_campaign(w.account, id).await.unwrap();
    panic!("timed out waiting for {what}: {:?} {:?}", v.campaign.state, v.counters);
}

fn sends_per_contact(w: &World) -> HashMap<String, usize> {
    let mut per = HashMap::new();
    for s in w.messenger.sent() {
        *per.entry(s.message.to.to_string()).or_default() += 1;
    }
    per
}

async fn campaign_events(w: &World) -> Vec<String> {
    let events = w.store.list_events(w.account, None, 1000).await.unwrap();
    events.into_iter().map(|e| e.event_type.as_str().to_owned()).filter(|t| t.starts_with("campaign.")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reaches_each_member_once_skips_with_reasons_and_counts() {
    let w = world(None).await;
    let members = contacts(&w, 120, &["vip"]).await;
    contacts(&w, 30, &["other"]).await;
    // Two opted out, one landline never seen on WhatsApp.
    for id in &members[..2] {
        let patch = serde_json::from_value(serde_json::json!({"opt_in": "opted_out"})).unwrap();
        w.crm.update_contact(w.account, *id, patch).await.unwrap();
    }
    let landline = NewContact {
        name: "Loja Fixa".into(),
        phone: "+55 11 3333-4444".into(),
        tags: vec!["vip".into()],
        ..Default::default()
    };
    let landline = w.crm.create_contact(w.account, landline).await.unwrap();

    let c = w.crm.create_campaign(w.account, new_campaign(&w, vip())).await.unwrap();
    assert_eq!(c.state, CampaignState::Draft);
    let runtime = run(&w).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.messenger.sent().is_empty(), "a draft sends nothing");
    w.crm.start_campaign(w.account, c.id).await.unwrap();
    wait_for(&w, c.id, "completion", |v| v.campaign.state == CampaignState::Completed).await;

    let per = sends_per_contact(&w);
    assert_eq!(per.len(), 118, "every eligible member got it");
    assert!(per.values().all(|n| *n == 1), "nobody got it twice");
    let first = w.messenger.sent()[0].clone();
    assert!(
        matches!(&first.message.content, MessageContent::Template { rendered, .. } if rendered.contains("10% off"))
    );
    let v = w.crm.get_campaign(w.account, c.id).await.unwrap();
    let k = v.counters;
    assert_eq!((k.recipients, k.skipped, k.queued, k.sent, k.failed, k.pending), (121, 3, 118, 118, 0, 0));
    let skipped =
        w.crm.list_campaign_recipients(w.account, c.id, Some(RecipientState::Skipped), None, 100).await.unwrap();
    let mut reasons: Vec<_> = skipped.iter().map(|r| (r.contact_id, r.reason.clone().unwrap())).collect();
    reasons.sort();
    let mut want = vec![
        (Some(members[0]), "opted_out".to_owned()),
        (Some(members[1]), "opted_out".to_owned()),
        (Some(landline.id), "no_whatsapp".to_owned()),
    ];
    want.sort();
    assert_eq!(reasons, want);
    assert_eq!(campaign_events(&w).await, ["campaign.created", "campaign.started", "campaign.completed"]);

    // Status reports and a reply move the counters.
    let sent = w.messenger.sent();
    for (i, s) in sent.iter().take(10).enumerate() {
        let status = if i < 4 { MessageStatus::Read } else { MessageStatus::Delivered };
        w.crm.apply_status_update(w.account, &s.provider_message_id, status, chrono::Utc::now(), None).await.unwrap();
    }
    let inbound = InboundMessage {
        from: sent[0].message.to.to_string(),
        whatsapp_id: None,
        profile_name: None,
        provider_message_id: Some("wamid.reply-1".into()),
        content: MessageContent::text("quero!"),
        sent_at: None,
        reply_to: None,
    };
    w.crm.record_inbound(w.account, inbound).await.unwrap();
    wait_for(&w, c.id, "counters", |v| v.counters.delivered == 10 && v.counters.replied == 1).await;
    let k = w.crm.get_campaign(w.account, c.id).await.unwrap().counters;
    assert_eq!((k.sent, k.delivered, k.read, k.replied), (118, 10, 4, 1));
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_sending_resume_finishes_and_cancel_is_final() {
    let w = world(Some(40)).await;
    contacts(&w, 200, &["vip"]).await;
    let c = w.crm.create_campaign(w.account, new_campaign(&w, vip())).await.unwrap();
    let err = w.crm.pause_campaign(w.account, c.id).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "a draft cannot be paused: {err}");
    let runtime = run(&w).await;
    w.crm.start_campaign(w.account, c.id).await.unwrap();
    let err = w.crm.resume_campaign(w.account, c.id).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "a running campaign cannot be resumed: {err}");
    wait_for(&w, c.id, "some sends", |v| v.counters.sent >= 20).await;
    w.crm.pause_campaign(w.account, c.id).await.unwrap();
    // What was already in flight drains; then nothing more goes out.
    wait_for(&w, c.id, "the in-flight messages", |v| v.counters.in_flight == 0).await;
    let at_pause = w.messenger.sent().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.messenger.sent().len(), at_pause, "a paused campaign sends nothing");
    let v = w.crm.get_campaign(w.account, c.id).await.unwrap();
    assert!(v.counters.sent < 200 && v.counters.pending > 0, "paused mid-way: {:?}", v.counters);
    assert_eq!(v.eta, None, "no ETA while paused");

    w.crm.resume_campaign(w.account, c.id).await.unwrap();
    wait_for(&w, c.id, "an ETA while running", |v| v.eta.is_some() || v.campaign.state == CampaignState::Completed)
        .await;
    wait_for(&w, c.id, "completion", |v| v.campaign.state == CampaignState::Completed).await;
    let per = sends_per_contact(&w);
    assert_eq!((per.len(), per.values().all(|n| *n == 1)), (200, true), "everyone once after the resume");
    let err = w.crm.cancel_campaign(w.account, c.id).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "a completed campaign cannot be cancelled: {err}");

    // Cancel mid-way: it stays cancelled, the rest is skipped as cancelled.
    let others = contacts(&w, 150, &["late"]).await;
    let audience = Audience::Contacts { contact_ids: others.clone() };
    let c2 = w.crm.create_campaign(w.account, new_campaign(&w, audience)).await.unwrap();
    w.crm.start_campaign(w.account, c2.id).await.unwrap();
    wait_for(&w, c2.id, "some sends", |v| v.counters.sent >= 10).await;
    let cancelled = w.crm.cancel_campaign(w.account, c2.id).await.unwrap();
    assert_eq!(cancelled.state, CampaignState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    wait_for(&w, c2.id, "the in-flight messages", |v| v.counters.in_flight == 0).await;
    let before = w.messenger.sent().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.messenger.sent().len(), before, "a cancelled campaign sends nothing more");
    wait_for(&w, c2.id, "the pending recipients skipped", |v| v.counters.pending == 0).await;
    let v = w.crm.get_campaign(w.account, c2.id).await.unwrap();
    assert!(v.counters.skipped > 0 && v.counters.sent < 150, "{:?}", v.counters);
    assert_eq!(v.counters.skipped + v.counters.sent + v.counters.failed, 150, "{:?}", v.counters);
    for op in [w.crm.resume_campaign(w.account, c2.id).await, w.crm.start_campaign(w.account, c2.id).await] {
        assert!(matches!(op, Err(Error::Conflict { .. })), "cancelled is final: {op:?}");
    }
    let events = campaign_events(&w).await;
    for e in ["campaign.paused", "campaign.resumed", "campaign.cancelled", "campaign.completed"] {
        assert!(events.iter().any(|x| x == e), "{e} in {events:?}");
    }
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_campaign_starts_at_its_time() {
    let w = world(None).await;
    contacts(&w, 20, &["vip"]).await;
    let mut input = new_campaign(&w, vip());
    input.scheduled_at = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    let err = w.crm.create_campaign(w.account, input.clone()).await.unwrap_err();
    assert!(matches!(&err, Error::Validation { field, .. } if field == "scheduled_at"), "{err}");
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    input.scheduled_at = Some(at);
    let c = w.crm.create_campaign(w.account, input).await.unwrap();
    assert_eq!((c.state, c.scheduled_at), (CampaignState::Scheduled, Some(at)));
    let runtime = run(&w).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(w.messenger.sent().is_empty(), "nothing before its time");
    assert_eq!(w.crm.get_campaign(w.account, c.id).await.unwrap().campaign.state, CampaignState::Scheduled);
    wait_for(&w, c.id, "completion", |v| v.campaign.state == CampaignState::Completed).await;
    let v = w.crm.get_campaign(w.account, c.id).await.unwrap();
    assert!(v.campaign.started_at.unwrap() >= at, "started at or after its time");
    assert_eq!(sends_per_contact(&w).len(), 20);

    // A draft scheduled later, then started by hand before its time.
    let c2 = w.crm.create_campaign(w.account, new_campaign(&w, vip())).await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let s = w.crm.schedule_campaign(w.account, c2.id, later).await.unwrap();
    assert_eq!(s.state, CampaignState::Scheduled);
    let err = w.crm.schedule_campaign(w.account, c2.id, later).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "only a draft is scheduled: {err}");
    w.crm.start_campaign(w.account, c2.id).await.unwrap();
    wait_for(&w, c2.id, "completion", |v| v.campaign.state == CampaignState::Completed).await;
    assert_eq!(w.messenger.sent().len(), 40, "the second campaign sent too");
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_phones_are_matched_and_the_rest_skipped_with_a_reason() {
    let w = world(None).await;
    let ids = contacts(&w, 3, &[]).await;
    let phones: Vec<String> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(w.crm.get_contact(w.account, *id).await.unwrap().phone.to_string());
        }
        v
    };
    let patch = serde_json::from_value(serde_json::json!({"opt_in": "opted_out"})).unwrap();
    w.crm.update_contact(w.account, ids[2], patch).await.unwrap();
    let list = vec![
        phones[0].clone(),
        "not a phone".into(),
        "+55 21 99999-0000".into(),
        phones[1].clone(),
        phones[0].clone(),
        phones[2].clone(),
    ];
    let c = w.crm.create_campaign(w.account, new_campaign(&w, Audience::Phones { phones: list })).await.unwrap();
    let runtime = run(&w).await;
    w.crm.start_campaign(w.account, c.id).await.unwrap();
    wait_for(&w, c.id, "completion", |v| v.campaign.state == CampaignState::Completed).await;
    let all = w.crm.list_campaign_recipients(w.account, c.id, None, None, 100).await.unwrap();
    let got: Vec<(u64, RecipientState, Option<&str>)> =
        all.iter().map(|r| (r.seq, r.state, r.reason.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (0, RecipientState::Sent, None),
            (1, RecipientState::Skipped, Some("invalid_phone")),
            (2, RecipientState::Skipped, Some("not_found")),
            (3, RecipientState::Sent, None),
            (5, RecipientState::Skipped, Some("opted_out")),
        ],
        "the repeated phone (seq 4) is one recipient"
    );
    assert_eq!(all[2].phone.as_deref(), Some("+5521999990000"), "an unknown phone is kept, canonical");
    assert_eq!(w.messenger.sent().len(), 2);
    // Unknown channel or template: 404 at creation.
    let mut bad = new_campaign(&w, vip());
    bad.template = "nope".into();
    assert!(matches!(w.crm.create_campaign(w.account, bad).await, Err(Error::NotFound { .. })));
    let mut bad = new_campaign(&w, vip());
    bad.channel_id = Some(ChannelId::new());
    assert!(matches!(w.crm.create_campaign(w.account, bad).await, Err(Error::NotFound { .. })));
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn campaigns_stop_when_their_channel_is_deleted() {
    let w = world(None).await;
    contacts(&w, 5, &["vip"]).await;
    let c: Campaign = w.crm.create_campaign(w.account, new_campaign(&w, vip())).await.unwrap();
    w.crm.delete_channel(w.account, w.channel).await.unwrap();
    let runtime = run(&w).await;
    w.crm.start_campaign(w.account, c.id).await.unwrap();
    wait_for(&w, c.id, "the stop", |v| v.campaign.state == CampaignState::Cancelled).await;
    let v = w.crm.get_campaign(w.account, c.id).await.unwrap();
    assert_eq!(v.campaign.stop_reason.as_deref(), Some("the channel was deleted"));
    assert!(w.messenger.sent().is_empty());
    assert!(campaign_events(&w).await.contains(&EventType::CAMPAIGN_CANCELLED.as_str().to_owned()));
    runtime.shutdown(Duration::from_secs(5)).await;
}

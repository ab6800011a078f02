//! Sequence steps reached late, on a manual clock over the in-memory
//! adapters: the late policy's `skip`, `send` and `stop`, tag steps that
//! always run, and the send window's wait not counted as lateness; send
//! windows in an IANA time zone across a DST change.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};
use crm_core::domain::sequence::{LateAction, LatePolicy, SendWindow};
use crm_core::workers::{JobWorker, Outcome};
use crm_core::{
    Account, Clock, ContactId, Crm, EnrolmentState, Event, EventStore, EventType, InboundMessage, Job, JobQuery,
    JobStore, ManualClock, MemoryStore, MessageContent, NewSequence, PageRequest, RecordingMessenger, StopReason,
};
use serde_json::{Value, json};
use std::sync::Arc;

fn start() -> DateTime<Utc> {
    // A Monday, 12:00 UTC.
    "2026-11-30T12:00:00Z".parse().unwrap()
}

async fn setup(at: DateTime<Utc>) -> (Crm, Arc<MemoryStore>, ManualClock, Account, ContactId) {
    let clock = ManualClock::new(at);
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let crm = Crm::builder()
        .store(store.clone())
        .messenger(Arc::new(RecordingMessenger::new()))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let account = crm.create_account("Loja da Ana").await.unwrap();
    // An inbound message opens the contact's 24-hour window.
    let inbound = InboundMessage {
        from: "+5511987654321".into(),
        whatsapp_id: None,
        profile_name: Some("João Silva".into()),
        provider_message_id: Some("wamid.1".into()),
        content: MessageContent::text("Oi"),
        sent_at: None,
        reply_to: None,
    };
    let contact = crm.record_inbound(account.id, inbound).await.unwrap().contact.id;
    (crm, store, clock, account, contact)
}

async fn events(store: &MemoryStore, account: &Account, kind: &EventType) -> Vec<Event> {
    let all = store.list_events(account.id, None, 1000).await.unwrap();
    all.into_iter().filter(|e| &e.event_type == kind).collect()
}

/// The `sequence.step` job of step `n`.
async fn step_job(store: &MemoryStore, account: &Account, n: u64) -> Job {
    let q = JobQuery { kind: Some("sequence.step".into()), state: None, page: PageRequest::first(200).unwrap() };
    let jobs = store.list_jobs(account.id, &q).await.unwrap().items;
    jobs.into_iter().find(|j| j.payload["step"] == json!(n)).unwrap_or_else(|| panic!("no job for step {n}"))
}

/// A second contact (+5511912345678) who wrote "Oi", opening their window.
async fn second_contact(crm: &Crm, account: &Account) -> ContactId {
    let inbound = InboundMessage {
        from: "+5511912345678".into(),
        whatsapp_id: None,
        profile_name: None,
        provider_message_id: Some("wamid.2".into()),
        content: MessageContent::text("Oi"),
        sent_at: None,
        reply_to: None,
    };
    crm.record_inbound(account.id, inbound).await.unwrap().contact.id
}

fn sequence(steps: Value, late: LatePolicy, window: Option<SendWindow>) -> NewSequence {
    let mut input: NewSequence = serde_json::from_value(json!({ "name": "Follow-up", "steps": steps })).unwrap();
    input.late = late;
    input.window = window;
    input
}

async fn queued_texts(store: &MemoryStore, account: &Account) -> Vec<String> {
    events(store, account, &EventType::MESSAGE_QUEUED)
        .await
        .iter()
        .filter_map(|e| e.payload["message"]["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_late_message_step_is_skipped_and_tag_steps_still_run() {
    let (crm, store, clock, account, contact) = setup(start()).await;
    let steps = json!([
        {"delay_seconds": 60, "action": {"type": "send_text", "text": "Ainda interessado?"}},
        {"delay_seconds": 0, "action": {"type": "add_tag", "tag": "followed-up"}},
        {"delay_seconds": 60, "action": {"type": "send_text", "text": "Última chance"}},
    ]);
    let late = LatePolicy { grace_seconds: 600, action: LateAction::Skip };
    let seq = crm.create_sequence(account.id, sequence(steps, late, None)).await.unwrap();
    let enrolled = crm.enrol_contacts(account.id, seq.id, &[contact], None).await.unwrap();
    let enrolment = enrolled[0].enrolment.clone().unwrap();
    let runner = crm.sequence_runner();

    // Step 0 was due at +60 s; the workers come back two hours later.
    clock.advance((Duration::seconds(60) + Duration::hours(2)).to_std().unwrap());
    assert_eq!(runner.run(&step_job(&store, &account, 0).await).await, Outcome::Done);
    let skipped = events(&store, &account, &EventType::SEQUENCE_STEP_SKIPPED).await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].payload["step"], 0);
    assert_eq!(skipped[0].payload["late_seconds"], 7200);
    assert_eq!(skipped[0].payload["due_at"], json!(start() + Duration::seconds(60)));
    assert!(queued_texts(&store, &account).await.is_empty(), "a skipped step sends nothing");
    let e = crm.get_enrolment(account.id, enrolment.id).await.unwrap();
    assert_eq!((e.state, e.current_step), (EnrolmentState::Active, 1));
    // The next step is scheduled from now.
    assert_eq!(e.next_run_at, Some(clock.now()));

    // Step 1 (a tag) runs even when it is far later than the grace.
    clock.advance(Duration::hours(2).to_std().unwrap());
    assert_eq!(runner.run(&step_job(&store, &account, 1).await).await, Outcome::Done);
    let contact_now = crm.get_contact(account.id, contact).await.unwrap();
    assert!(contact_now.tags.iter().any(|t| t.as_str() == "followed-up"));
    assert_eq!(events(&store, &account, &EventType::SEQUENCE_STEP_COMPLETED).await.len(), 1);

    // Step 2 within the grace (5 minutes late): sent.
    clock.advance(Duration::seconds(60 + 300).to_std().unwrap());
    assert_eq!(runner.run(&step_job(&store, &account, 2).await).await, Outcome::Done);
    let e = crm.get_enrolment(account.id, enrolment.id).await.unwrap();
    assert_eq!(queued_texts(&store, &account).await, vec!["Última chance".to_owned()], "{e:?}");
    let done = crm.get_enrolment(account.id, enrolment.id).await.unwrap();
    assert_eq!(done.state, EnrolmentState::Completed);
    assert_eq!(done.stop_reason, None);
}

#[tokio::test]
async fn the_send_and_stop_actions() {
    let (crm, store, clock, account, contact) = setup(start()).await;
    let steps = json!([{"delay_seconds": 60, "action": {"type": "send_text", "text": "Oi de novo"}}]);
    let send = crm
        .create_sequence(
            account.id,
            sequence(steps.clone(), LatePolicy { grace_seconds: 60, action: LateAction::Send }, None),
        )
        .await
        .unwrap();
    let stop = crm
        .create_sequence(account.id, sequence(steps, LatePolicy { grace_seconds: 60, action: LateAction::Stop }, None))
        .await
        .unwrap();
    let a = crm.enrol_contacts(account.id, send.id, &[contact], None).await.unwrap()[0].enrolment.clone().unwrap();
    let b = crm.enrol_contacts(account.id, stop.id, &[contact], None).await.unwrap()[0].enrolment.clone().unwrap();
    clock.advance(Duration::hours(1).to_std().unwrap());
    let runner = crm.sequence_runner();
    let q = JobQuery { kind: Some("sequence.step".into()), state: None, page: PageRequest::first(200).unwrap() };
    for job in store.list_jobs(account.id, &q).await.unwrap().items {
        assert_eq!(runner.run(&job).await, Outcome::Done);
    }
    // `send`: sent late, the completion says how late.
    assert_eq!(queued_texts(&store, &account).await, vec!["Oi de novo".to_owned()]);
    let completed = events(&store, &account, &EventType::SEQUENCE_COMPLETED).await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].payload["late_seconds"], 3540);
    assert_eq!(crm.get_enrolment(account.id, a.id).await.unwrap().state, EnrolmentState::Completed);
    // `stop`: stopped with reason `late`, the detail naming the step and grace.
    let stopped = crm.get_enrolment(account.id, b.id).await.unwrap();
    assert_eq!((stopped.state, stopped.stop_reason), (EnrolmentState::Stopped, Some(StopReason::Late)));
    let detail = stopped.stop_detail.unwrap();
    assert!(
        detail.contains("step 1 (send_text)") && detail.contains("3540 s late") && detail.contains("60 s"),
        "{detail}"
    );
    let ev = events(&store, &account, &EventType::SEQUENCE_STOPPED).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].payload["stop_reason"], "late");
}

#[tokio::test]
async fn waiting_for_the_window_is_not_lateness_across_a_dst_change() {
    // Saturday 2026-03-28 17:00 UTC = 17:00 in Lisbon (WET). The window is
    // 09:00–18:00 Lisbon time on weekdays; the clocks go forward on Sunday.
    let at: DateTime<Utc> = "2026-03-28T17:00:00Z".parse().unwrap();
    let (crm, store, clock, account, contact) = setup(at).await;
    let window = SendWindow {
        time_zone: Some("Europe/Lisbon".into()),
        utc_offset_minutes: 0,
        days: vec![1, 2, 3, 4, 5],
        start_minute: 9 * 60,
        end_minute: 18 * 60,
    };
    let steps = json!([{"delay_seconds": 0, "action": {"type": "send_text", "text": "Bom dia"}}]);
    let late = LatePolicy { grace_seconds: 3600, action: LateAction::Skip };
    let seq = crm.create_sequence(account.id, sequence(steps, late, Some(window))).await.unwrap();
    let e = crm.enrol_contacts(account.id, seq.id, &[contact], None).await.unwrap()[0].enrolment.clone().unwrap();
    // Due Monday 09:00 WEST (UTC+1) = 08:00 UTC, not 09:00 UTC.
    let monday: DateTime<Utc> = "2026-03-30T08:00:00Z".parse().unwrap();
    assert_eq!(e.next_run_at, Some(monday));

    // The workers reach it at Monday 18:30 local (17:30 UTC), 9.5 h late
    // and outside the window: the grace is one hour, so it is skipped.
    clock.set(monday + Duration::minutes(570));
    let runner = crm.sequence_runner();
    assert_eq!(runner.run(&step_job(&store, &account, 0).await).await, Outcome::Done);
    assert_eq!(events(&store, &account, &EventType::SEQUENCE_COMPLETED).await[0].payload["skipped"], true);
    assert!(queued_texts(&store, &account).await.is_empty());

    // A second contact, enrolled Monday 16:50 UTC (17:50 WEST, inside the
    // window): due at once. The workers reach it half an hour later (within
    // the hour of grace) but in quiet time (18:20 local): it waits for
    // Tuesday's opening, its due time moves there, and at the opening it
    // is sent, not counted 15 hours late.
    let enrolled_at: DateTime<Utc> = "2026-03-30T16:50:00Z".parse().unwrap();
    clock.set(enrolled_at);
    let other = second_contact(&crm, &account).await;
    let f = crm.enrol_contacts(account.id, seq.id, &[other], None).await.unwrap()[0].enrolment.clone().unwrap();
    assert_eq!(f.next_run_at, Some(enrolled_at));
    let job = {
        let q = JobQuery { kind: Some("sequence.step".into()), state: None, page: PageRequest::first(200).unwrap() };
        let jobs = store.list_jobs(account.id, &q).await.unwrap().items;
        jobs.into_iter().find(|j| j.payload["enrolment_id"] == json!(f.id)).unwrap()
    };
    clock.set(enrolled_at + Duration::minutes(30));
    let tuesday: DateTime<Utc> = "2026-03-31T08:00:00Z".parse().unwrap();
    match runner.run(&job).await {
        Outcome::Defer { after } => assert_eq!(after, (tuesday - clock.now()).to_std().unwrap()),
        other => panic!("expected a deferral, got {other:?}"),
    }
    assert_eq!(crm.get_enrolment(account.id, f.id).await.unwrap().next_run_at, Some(tuesday));
    clock.set(tuesday + Duration::minutes(5));
    assert_eq!(runner.run(&job).await, Outcome::Done);
    assert_eq!(queued_texts(&store, &account).await, vec!["Bom dia".to_owned()]);
}

#[tokio::test]
async fn a_window_without_zone_or_offset_follows_the_account_time_zone() {
    // Monday 11:30 UTC: inside 09:00–18:00 in UTC, 08:30 (before it) in São Paulo.
    let at: DateTime<Utc> = "2026-11-30T11:30:00Z".parse().unwrap();
    let (crm, store, clock, account, contact) = setup(at).await;
    let window = SendWindow {
        time_zone: None,
        utc_offset_minutes: 0,
        days: vec![1, 2, 3, 4, 5],
        start_minute: 9 * 60,
        end_minute: 18 * 60,
    };
    let steps = json!([{"delay_seconds": 0, "action": {"type": "send_text", "text": "Bom dia"}}]);
    let seq = crm.create_sequence(account.id, sequence(steps, LatePolicy::default(), Some(window))).await.unwrap();
    // No account zone: UTC, so the step is due at once.
    let e = crm.enrol_contacts(account.id, seq.id, &[contact], None).await.unwrap()[0].enrolment.clone().unwrap();
    assert_eq!(e.next_run_at, Some(at), "no account zone: the window is read in UTC");

    // The account moves to São Paulo before the step runs: the runner reads
    // the window on the account's clock, so 08:30 local waits for 09:00
    // local = 12:00 UTC, and the due time moves there.
    crm.update_account(account.id, &zone(Some("America/Sao_Paulo"))).await.unwrap();
    let opening: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
    let runner = crm.sequence_runner();
    let outcome = runner.run(&step_job(&store, &account, 0).await).await;
    assert_eq!(outcome, Outcome::Defer { after: std::time::Duration::from_secs(30 * 60) });
    assert!(queued_texts(&store, &account).await.is_empty(), "nothing sent in quiet time");
    assert_eq!(crm.get_enrolment(account.id, e.id).await.unwrap().next_run_at, Some(opening));
    clock.set(opening);
    assert_eq!(runner.run(&step_job(&store, &account, 0).await).await, Outcome::Done);
    assert_eq!(queued_texts(&store, &account).await, ["Bom dia"]);

    // A contact enrolled at 08:30 local now is due at the 09:00 local opening.
    clock.set(at + Duration::days(1));
    let other = second_contact(&crm, &account).await;
    let e = crm.enrol_contacts(account.id, seq.id, &[other], None).await.unwrap()[0].enrolment.clone().unwrap();
    assert_eq!(e.next_run_at, Some(opening + Duration::days(1)), "due at 09:00 São Paulo = 12:00 UTC");
    assert_eq!(e.state, EnrolmentState::Active);
}

/// A patch setting (or with `None` clearing) the account's time zone.
fn zone(name: Option<&str>) -> crm_core::domain::account::AccountPatch {
    crm_core::domain::account::AccountPatch { name: None, time_zone: Some(name.map(str::to_owned)) }
}

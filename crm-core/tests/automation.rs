//! Automation rules and lead scoring over the in-memory adapters on a
//! manual clock: each condition and action, versioning, dry run,
//! idempotency under redelivery, the loop bound, waits, schedules, scores.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use crm_core::automation::{
    AutomationWorker, ContinueWorker, DecayWorker, Engine, LoopBound, ScheduleWorker, ScoringWorker,
};
use crm_core::domain::automation::{Automation, RuleDefinition, RunStatus};
use crm_core::domain::scoring::{ScoringModel, Threshold};
use crm_core::workers::{EventWorker, JobWorker, Outcome};
use crm_core::{
    Account, ContactId, Crm, Error, Event, EventStore, EventType, InboundMessage, Job, JobQuery, JobStore, LeadStage,
    ManualClock, MemoryStore, MessageContent, NewContact, NewTemplate, PageRequest, RecordingMessenger,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn start() -> DateTime<Utc> {
    // A Monday, 12:00 UTC (09:00 in São Paulo).
    "2026-11-30T12:00:00Z".parse().unwrap()
}

async fn setup() -> (Crm, Arc<MemoryStore>, ManualClock, Account) {
    let clock = ManualClock::new(start());
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let crm = Crm::builder()
        .store(store.clone())
        .messenger(Arc::new(RecordingMessenger::new()))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let account = crm.create_account("Loja da Ana").await.unwrap();
    (crm, store, clock, account)
}

fn rule(v: Value) -> RuleDefinition {
    serde_json::from_value(v).unwrap()
}

fn inbound(from: &str, pid: &str, body: &str) -> InboundMessage {
    InboundMessage {
        from: from.into(),
        whatsapp_id: None,
        profile_name: Some("João Silva".into()),
        provider_message_id: Some(pid.into()),
        content: MessageContent::text(body),
        sent_at: None,
        reply_to: None,
    }
}

/// The account's events of one type, oldest first.
async fn events(store: &MemoryStore, account: &Account, kind: &EventType) -> Vec<Event> {
    let all = store.list_events(account.id, None, 1000).await.unwrap();
    all.into_iter().filter(|e| &e.event_type == kind).collect()
}

async fn last_event(store: &MemoryStore, account: &Account, kind: &EventType) -> Event {
    events(store, account, kind).await.pop().unwrap()
}

async fn jobs(store: &MemoryStore, account: &Account, kind: &str) -> Vec<Job> {
    let q = JobQuery { kind: Some(kind.into()), state: None, page: PageRequest::first(200).unwrap() };
    store.list_jobs(account.id, &q).await.unwrap().items
}

/// A contact who wrote "quero saber o preço" (the message.received event).
async fn lead(crm: &Crm, store: &MemoryStore, account: &Account) -> (ContactId, Event) {
    let got =
        crm.record_inbound(account.id, inbound("+5511987654321", "wamid.1", "Quero saber o PREÇO")).await.unwrap();
    (got.contact.id, last_event(store, account, &EventType::MESSAGE_RECEIVED).await)
}

#[tokio::test]
async fn each_condition_decides() {
    let (crm, store, _clock, account) = setup().await;
    let (contact, event) = lead(&crm, &store, &account).await;
    crm.tag_contact(account.id, contact, &["lead".into()]).await.unwrap();
    let engine = Engine::new(crm.clone());
    let cases: Vec<(Value, bool)> = vec![
        (json!({"type": "has_tags", "tags": ["lead"]}), true),
        (json!({"type": "has_tags", "tags": ["lead", "vip"]}), false),
        (json!({"type": "lacks_tags", "tags": ["vip"]}), true),
        (json!({"type": "lacks_tags", "tags": ["LEAD"]}), false),
        (json!({"type": "stage", "stages": ["new", "contacted"]}), true),
        (json!({"type": "stage", "stages": ["won"]}), false),
        (json!({"type": "score", "min": 0, "max": 10}), true),
        (json!({"type": "score", "min": 50}), false),
        (json!({"type": "channel", "channel_ids": [uuid::Uuid::now_v7()]}), false),
        (json!({"type": "text", "words": ["preço"]}), true),
        (json!({"type": "text", "words": ["pre"]}), false),
        (json!({"type": "text", "regex": "^quero\\b"}), true),
        (json!({"type": "text", "words": ["preço"], "regex": "^nada"}), false),
        (
            json!({"type": "business_hours", "hours": {"utc_offset_minutes": -180, "start": "09:00", "end": "18:00"}}),
            true,
        ),
        (
            json!({"type": "business_hours", "hours": {"utc_offset_minutes": 0, "start": "13:00", "end": "18:00"}}),
            false,
        ),
        (
            json!({"type": "business_hours", "inside": false, "hours": {"utc_offset_minutes": 0, "start": "13:00", "end": "18:00"}}),
            true,
        ),
        // IANA zones: Monday 12:00 UTC is 09:00 in São Paulo, 07:00 in New
        // York (EST in November) and 12:00 in Lisbon (WET).
        (
            json!({"type": "business_hours", "hours": {"time_zone": "America/Sao_Paulo", "start": "09:00", "end": "18:00"}}),
            true,
        ),
        (
            json!({"type": "business_hours", "hours": {"time_zone": "America/New_York", "start": "09:00", "end": "18:00"}}),
            false,
        ),
        (
            json!({"type": "business_hours", "hours": {"time_zone": "Europe/Lisbon", "start": "12:00", "end": "12:01"}}),
            true,
        ),
        (json!({"type": "first_message"}), true),
    ];
    for (condition, expected) in cases {
        let def = rule(json!({"trigger": {"event": "message.received"}, "conditions": [condition.clone()],
            "actions": [{"type": "add_tag", "tag": "x"}]}));
        let r = crm.create_automation(account.id, "probe", def).await.unwrap();
        let dry = engine.dry_run(&r, &event).await.unwrap();
        assert_eq!(dry.conditions[0].matched, expected, "{condition} -> {:?}", dry.conditions[0]);
        assert_eq!(dry.matched, expected, "{condition}");
        crm.delete_automation(account.id, r.id).await.unwrap();
    }
    // A second message is not the first of the thread.
    crm.record_inbound(account.id, inbound("+5511987654321", "wamid.2", "oi")).await.unwrap();
    let second = last_event(&store, &account, &EventType::MESSAGE_RECEIVED).await;
    let def = rule(json!({"trigger": {"event": "message.received"}, "conditions": [{"type": "first_message"}],
        "actions": [{"type": "add_tag", "tag": "x"}]}));
    let r = crm.create_automation(account.id, "first", def).await.unwrap();
    assert!(engine.dry_run(&r, &event).await.unwrap().matched);
    assert!(!engine.dry_run(&r, &second).await.unwrap().matched, "second message");
}

#[tokio::test]
async fn business_hours_without_a_zone_follow_the_account_time_zone() {
    // 11:30 UTC on a Monday is 08:30 in São Paulo: before 09:00–18:00 there,
    // inside it in UTC.
    let (crm, store, clock, account) = setup().await;
    clock.set("2026-11-30T11:30:00Z".parse().unwrap());
    let (contact, event) = lead(&crm, &store, &account).await;
    let def = rule(json!({"trigger": {"event": "message.received"},
        "conditions": [{"type": "business_hours", "hours": {"start": "09:00", "end": "18:00"}}],
        "actions": [{"type": "add_tag", "tag": "open"}]}));
    let r = crm.create_automation(account.id, "hours", def).await.unwrap();
    let engine = Engine::new(crm.clone());
    assert!(engine.dry_run(&r, &event).await.unwrap().matched, "no account zone: UTC, 11:30 is inside");

    let updated = crm.update_account(account.id, &zone(Some("America/Sao_Paulo"))).await.unwrap();
    assert_eq!(updated.time_zone.as_deref(), Some("America/Sao_Paulo"));
    let updates = events(&store, &account, &EventType::ACCOUNT_UPDATED).await;
    assert_eq!(updates.len(), 1, "account.updated recorded");
    assert_eq!(updates[0].payload["time_zone"], "America/Sao_Paulo");
    let dry = engine.dry_run(&r, &event).await.unwrap();
    assert!(!dry.matched, "08:30 in São Paulo is outside: {:?}", dry.conditions);
    assert!(engine.handle_event(&event).await.unwrap().is_empty(), "the rule does not run");
    assert!(crm.get_contact(account.id, contact).await.unwrap().tags.is_empty());

    // A rule's own zone or offset still wins over the account's.
    let pinned = rule(json!({"trigger": {"event": "message.received"},
        "conditions": [{"type": "business_hours", "hours": {"time_zone": "UTC", "start": "09:00", "end": "18:00"}}],
        "actions": [{"type": "add_tag", "tag": "open"}]}));
    let r = crm.create_automation(account.id, "utc", pinned).await.unwrap();
    assert!(engine.dry_run(&r, &event).await.unwrap().matched, "time_zone UTC pins UTC");

    // Same instant, account zone later cleared: UTC again; bad zones refused.
    let err = crm.update_account(account.id, &zone(Some("Mars/Olympus"))).await.unwrap_err();
    assert!(matches!(err, Error::Validation { ref field, .. } if field == "time_zone"), "{err}");
    crm.update_account(account.id, &zone(None)).await.unwrap();
    assert_eq!(crm.account_zone(account.id).await.unwrap(), None);
    let unchanged = crm.update_account(account.id, &zone(None)).await.unwrap();
    assert_eq!(unchanged.time_zone, None);
    assert_eq!(events(&store, &account, &EventType::ACCOUNT_UPDATED).await.len(), 2, "no event for no change");
}

#[tokio::test]
async fn actions_run_in_order_and_the_run_records_them() {
    let (crm, store, _clock, account) = setup().await;
    crm.create_template(
        account.id,
        NewTemplate {
            name: "oferta".into(),
            language: Some("pt_BR".into()),
            category: None,
            body: "Olá {{first_name}}, temos {{produto}}".into(),
            parameters: None,
        },
    )
    .await
    .unwrap();
    let (contact, event) = lead(&crm, &store, &account).await;
    crm.tag_contact(account.id, contact, &["cold".into()]).await.unwrap();
    let follow_up: crm_core::NewSequence = serde_json::from_value(json!({
        "name": "Follow-up", "steps": [{"delay_seconds": 86400, "action": {"type": "add_tag", "tag": "cold"}}]
    }))
    .unwrap();
    let seq_id = crm.create_sequence(account.id, follow_up).await.unwrap().id;
    let seq = json!(seq_id);
    let def = rule(json!({
        "trigger": {"event": "message.received"},
        "conditions": [{"type": "text", "words": ["preço"]}],
        "actions": [
            {"type": "add_tag", "tag": "hot"},
            {"type": "remove_tag", "tag": "cold"},
            {"type": "set_stage", "stage": "contacted"},
            {"type": "adjust_score", "by": 15},
            {"type": "send_text", "text": "Oi {{first_name}}, já te respondo!"},
            {"type": "send_template", "name": "oferta", "language": "pt_BR", "variables": {"produto": "planos"}},
            {"type": "start_sequence", "sequence_id": seq},
            {"type": "stop_sequence"},
            {"type": "call_webhook", "target": {"url": "https://hooks.example.com/lead"}},
            {"type": "call_n8n_workflow", "workflow": "lead-captured"}
        ]
    }));
    let r = crm.create_automation(account.id, "Tudo", def).await.unwrap();
    let runs = Engine::new(crm.clone()).handle_event(&event).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!((run.automation_id, run.version, run.event_id, run.contact_id), (r.id, 1, event.id, Some(contact)));
    assert_eq!(run.steps.len(), 10);
    assert!(run.steps.iter().all(|s| s.outcome == "done"), "{:?}", run.steps);
    assert_eq!(crm.automation_run(account.id, run.id).await.unwrap(), *run, "the run is stored");

    let c = crm.get_contact(account.id, contact).await.unwrap();
    let tags: Vec<&str> = c.tags.iter().map(|t| t.as_str()).collect();
    assert_eq!(tags, ["hot"]);
    assert_eq!((c.lead_stage, c.lead_score), (LeadStage::Contacted, 15));
    let thread = crm.list_thread(account.id, contact, &PageRequest::first(10).unwrap()).await.unwrap().items;
    let outbound: Vec<String> = thread.iter().skip(1).map(|m| m.content.preview()).collect();
    assert_eq!(outbound, ["Oi João, já te respondo!", "Olá João, temos planos"], "queued through the pipeline");
    assert_eq!(thread[1].client_reference.as_deref(), Some(format!("automation:{}:4", run.id).as_str()));

    let enrol = jobs(&store, &account, "sequence.enrol").await;
    assert_eq!(enrol.len(), 1);
    assert_eq!(
        enrol[0].payload,
        json!({"sequence_id": seq, "contact_id": contact, "source": {"automation_id": r.id, "run_id": run.id}})
    );
    assert_eq!(enrol[0].unique_key.as_deref(), Some(format!("automation:{}:6", run.id).as_str()));
    let stop = jobs(&store, &account, "sequence.stop").await;
    assert_eq!(
        stop[0].payload,
        json!({"sequence_id": null, "contact_id": contact, "reason": "automation",
            "source": {"automation_id": r.id, "run_id": run.id}})
    );
    // Run both jobs: the contact is enrolled, then stopped, and the stop
    // records its reason and the rule.
    assert_eq!(crm.sequence_enroller().run(&enrol[0]).await, Outcome::Done);
    assert_eq!(crm.sequence_stopper().run(&stop[0]).await, Outcome::Done);
    let q = crm_core::ports::sequences::EnrolmentQuery {
        sequence: Some(seq_id),
        contact: Some(contact),
        state: None,
        page: PageRequest::first(10).unwrap(),
    };
    let enrolments = crm.list_enrolments(account.id, &q).await.unwrap().items;
    assert_eq!(enrolments.len(), 1);
    assert_eq!(enrolments[0].stop_reason, Some(crm_core::StopReason::Automation));
    let detail = enrolments[0].stop_detail.clone().unwrap_or_default();
    assert!(detail.contains(&r.id.to_string()) && detail.contains(&run.id.to_string()), "{detail}");
    let hook = jobs(&store, &account, "automation.webhook").await;
    assert_eq!(hook[0].payload["target"], json!({"url": "https://hooks.example.com/lead"}));
    assert_eq!(hook[0].payload["event"]["id"], json!(event.id));
    let n8n = jobs(&store, &account, "workflow.trigger").await;
    assert_eq!(n8n[0].payload["workflow"], "lead-captured");
    assert_eq!(n8n[0].payload["event"]["type"], "message.received");
}

#[tokio::test]
async fn a_redelivered_event_runs_a_rule_once_and_a_dead_worker_is_resumed() {
    let (crm, store, _clock, account) = setup().await;
    let (contact, event) = lead(&crm, &store, &account).await;
    let def = rule(json!({"trigger": {"event": "message.received"},
        "actions": [{"type": "adjust_score", "by": 10}, {"type": "send_text", "text": "Oi"}, {"type": "add_tag", "tag": "lead"}]}));
    let r = crm.create_automation(account.id, "once", def).await.unwrap();
    let worker = AutomationWorker::new(Engine::new(crm.clone()));
    assert_eq!(worker.handle(&event, 1, None).await, Outcome::Done);
    assert_eq!(worker.handle(&event, 2, None).await, Outcome::Done);
    let runs = crm.automation_runs(account.id, r.id, &PageRequest::first(10).unwrap()).await.unwrap().items;
    assert_eq!(runs.len(), 1, "one run per (rule, event)");
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 10, "the score moved once");
    let thread = crm.list_thread(account.id, contact, &PageRequest::first(10).unwrap()).await.unwrap().items;
    assert_eq!(thread.len(), 2, "one message sent");

    // A worker that died after the first action: the run is left `running`
    // at step 1; the redelivery resumes there and repeats nothing.
    let mut stuck = runs[0].clone();
    stuck.status = RunStatus::Running;
    stuck.next_step = 1;
    stuck.steps.truncate(1);
    store_run(&crm, &stuck).await;
    crm.untag_contact(account.id, contact, &["lead".into()]).await.unwrap();
    assert_eq!(worker.handle(&event, 3, None).await, Outcome::Done);
    let run = crm.automation_run(account.id, stuck.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    let c = crm.get_contact(account.id, contact).await.unwrap();
    assert_eq!(c.lead_score, 10, "the score was not adjusted again");
    assert!(c.tags.iter().any(|t| t.as_str() == "lead"), "the remaining action ran");
    let thread = crm.list_thread(account.id, contact, &PageRequest::first(10).unwrap()).await.unwrap().items;
    assert_eq!(thread.len(), 2, "the resumed send kept its client reference: still one message");
}

async fn store_run(crm: &Crm, run: &crm_core::domain::automation::AutomationRun) {
    crm.store().save_run(run, None).await.unwrap();
}

#[tokio::test]
async fn versions_are_kept_and_runs_use_the_version_they_started_with() {
    let (crm, store, clock, account) = setup().await;
    let (contact, event) = lead(&crm, &store, &account).await;
    let v1 = rule(json!({"trigger": {"event": "message.received"},
        "actions": [{"type": "add_tag", "tag": "a"}, {"type": "wait", "seconds": 3600}, {"type": "add_tag", "tag": "v1"}]}));
    let r = crm.create_automation(account.id, "versions", v1.clone()).await.unwrap();
    assert_eq!(r.version, 1);
    let run = Engine::new(crm.clone()).handle_event(&event).await.unwrap().remove(0);
    assert_eq!(run.status, RunStatus::Waiting);
    assert_eq!(run.next_step, 2);
    let v2 = rule(json!({"trigger": {"event": "message.received"},
        "actions": [{"type": "add_tag", "tag": "b"}, {"type": "wait", "seconds": 60}, {"type": "add_tag", "tag": "v2"}]}));
    let err = crm.update_automation(account.id, r.id, "versions", v2.clone(), Some(7)).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "a stale version is refused: {err}");
    let edited = crm.update_automation(account.id, r.id, "versions 2", v2.clone(), Some(1)).await.unwrap();
    assert_eq!((edited.version, edited.definition.clone()), (2, v2.clone()));
    let versions = crm.automation_versions(account.id, r.id).await.unwrap();
    assert_eq!(versions.iter().map(|v| (v.version, v.definition.clone())).collect::<Vec<_>>(), [(1, v1), (2, v2)]);

    // The wait's job continues the run with version 1's actions.
    let waiting = jobs(&store, &account, "automation.continue").await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].run_at, start() + chrono::Duration::hours(1));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(ContinueWorker::new(Engine::new(crm.clone())).run(&waiting[0]).await, Outcome::Done);
    let done = crm.automation_run(account.id, run.id).await.unwrap();
    assert_eq!((done.status, done.version), (RunStatus::Completed, 1));
    let tags: Vec<String> =
        crm.get_contact(account.id, contact).await.unwrap().tags.iter().map(|t| t.to_string()).collect();
    assert_eq!(tags, ["a", "v1"]);

    // Disabled rules do not run; enabled again, they do.
    crm.set_automation_enabled(account.id, r.id, false).await.unwrap();
    crm.record_inbound(account.id, inbound("+5511987654321", "wamid.9", "oi")).await.unwrap();
    let next = last_event(&store, &account, &EventType::MESSAGE_RECEIVED).await;
    assert!(Engine::new(crm.clone()).handle_event(&next).await.unwrap().is_empty(), "disabled");
    let on = crm.set_automation_enabled(account.id, r.id, true).await.unwrap();
    assert_eq!(on.version, 2, "enabling keeps the version");
    let run = Engine::new(crm.clone()).handle_event(&next).await.unwrap().remove(0);
    assert_eq!(run.version, 2, "new runs use the new version");
}

#[tokio::test]
async fn the_loop_bound_stops_a_rule_that_triggers_itself() {
    let (crm, store, _clock, account) = setup().await;
    let c = crm.create_contact(
        account.id,
        NewContact { name: "Ana".into(), phone: "+5511987650000".into(), ..Default::default() },
    );
    let contact = c.await.unwrap().id;
    // Each run changes the contact, which is a new contact.updated event.
    let def = rule(json!({"trigger": {"event": "contact.updated"}, "actions": [{"type": "adjust_score", "by": 1}]}));
    let r = crm.create_automation(account.id, "loop", def).await.unwrap();
    crm.tag_contact(account.id, contact, &["start".into()]).await.unwrap();
    let engine = Engine::new(crm.clone()).with_loop_bound(LoopBound { max_runs: 3, window: Duration::from_secs(60) });
    let worker = AutomationWorker::new(engine);
    let mut handled = 0;
    let mut seen = std::collections::HashSet::new();
    // Deliver every contact.updated event as the runtime would, until none is new.
    loop {
        let fresh: Vec<Event> = events(&store, &account, &EventType::CONTACT_UPDATED)
            .await
            .into_iter()
            .filter(|e| seen.insert(e.id))
            .collect();
        if fresh.is_empty() || handled > 20 {
            break;
        }
        for e in fresh {
            assert_eq!(worker.handle(&e, 1, None).await, Outcome::Done);
            handled += 1;
        }
    }
    assert!(handled < 20, "the loop ended by itself after {handled} events");
    let runs = crm.automation_runs(account.id, r.id, &PageRequest::first(50).unwrap()).await.unwrap().items;
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [RunStatus::Completed, RunStatus::Completed, RunStatus::Completed, RunStatus::LoopStopped]);
    let stopped = runs.last().unwrap();
    assert!(stopped.reason.as_deref().unwrap().contains("loop bound"), "{:?}", stopped.reason);
    assert!(stopped.steps.is_empty(), "no action ran");
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 3);
    let failed = events(&store, &account, &EventType::AUTOMATION_RUN_FAILED).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].payload["status"], "loop_stopped");
}

#[tokio::test]
async fn later_actions_are_refused_at_validation_naming_their_issue() {
    let (crm, _store, _clock, account) = setup().await;
    let (kind, issue) = ("ai_reply", "#14");
    {
        let def = rule(json!({"trigger": {"event": "message.received"}, "actions": [{"type": kind}]}));
        let err = crm.create_automation(account.id, "later", def).await.unwrap_err();
        match err {
            Error::Validation { field, reason } => {
                assert_eq!(field, "actions[0].type");
                assert!(reason.contains(issue) && reason.contains(kind), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_failing_action_fails_the_run_with_its_reason() {
    let (crm, store, _clock, account) = setup().await;
    let (contact, event) = lead(&crm, &store, &account).await;
    let def = rule(json!({"trigger": {"event": "message.received"},
        "actions": [{"type": "add_tag", "tag": "a"}, {"type": "send_template", "name": "missing", "language": "pt_BR"},
            {"type": "add_tag", "tag": "never"}]}));
    crm.create_automation(account.id, "fails", def).await.unwrap();
    let run = Engine::new(crm.clone()).handle_event(&event).await.unwrap().remove(0);
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.reason.as_deref().unwrap().starts_with("action 1 (send_template) failed"), "{:?}", run.reason);
    assert_eq!(run.steps.iter().map(|s| s.outcome.as_str()).collect::<Vec<_>>(), ["done", "failed"]);
    let tags: Vec<String> =
        crm.get_contact(account.id, contact).await.unwrap().tags.iter().map(|t| t.to_string()).collect();
    assert_eq!(tags, ["a"], "later actions did not run");
    assert_eq!(events(&store, &account, &EventType::AUTOMATION_RUN_FAILED).await.len(), 1);
}

#[tokio::test]
async fn a_dry_run_says_what_would_happen_and_does_nothing() {
    let (crm, store, _clock, account) = setup().await;
    let (contact, event) = lead(&crm, &store, &account).await;
    let def = rule(json!({"trigger": {"event": "message.received"},
        "conditions": [{"type": "text", "words": ["preço"]}],
        "actions": [{"type": "send_text", "text": "Oi {{first_name}}"}, {"type": "adjust_score", "by": 5},
            {"type": "call_n8n_workflow", "workflow": "https://n8n.example.com/webhook/lead"}]}));
    let r = crm.create_automation(account.id, "dry", def).await.unwrap();
    let before = store.list_events(account.id, None, 1000).await.unwrap().len();
    let dry = crm.dry_run_automation(account.id, r.id, "message.received", event.payload.clone()).await.unwrap();
    assert!(dry.triggered && dry.matched);
    assert_eq!(dry.contact_id, Some(contact));
    assert_eq!(dry.actions.len(), 3);
    assert_eq!(dry.actions[0].arguments, json!({"text": "Oi João"}));
    assert_eq!(dry.actions[1].arguments, json!({"type": "adjust_score", "by": 5}));
    assert_eq!(dry.actions[2].arguments["kind"], "workflow.trigger");
    assert_eq!(dry.actions[2].arguments["payload"]["workflow"], "https://n8n.example.com/webhook/lead");
    assert_eq!(store.list_events(account.id, None, 1000).await.unwrap().len(), before, "no event written");
    assert!(crm.automation_runs(account.id, r.id, &PageRequest::first(10).unwrap()).await.unwrap().items.is_empty());
    assert!(jobs(&store, &account, "workflow.trigger").await.is_empty(), "no job scheduled");
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 0);
    let other = crm.dry_run_automation(account.id, r.id, "contact.created", json!({})).await.unwrap();
    assert!(!other.triggered && !other.matched && other.actions.is_empty());
    let err = crm.dry_run_automation(account.id, r.id, "Not An Event", json!({})).await.unwrap_err();
    assert!(matches!(err, Error::Validation { .. }));
}

#[tokio::test]
async fn schedule_triggers_tick_as_durable_jobs() {
    let (crm, store, clock, account) = setup().await;
    let def = rule(json!({"trigger": {"schedule": {"every_minutes": 60}},
        "actions": [{"type": "call_n8n_workflow", "workflow": "hourly-report"}]}));
    let r = crm.create_automation(account.id, "hourly", def).await.unwrap();
    let ticks = jobs(&store, &account, "automation.schedule").await;
    assert_eq!(ticks.len(), 1);
    assert_eq!(ticks[0].run_at, start() + chrono::Duration::hours(1));
    clock.advance(Duration::from_secs(3600));
    let worker = ScheduleWorker::new(Engine::new(crm.clone()));
    assert_eq!(worker.run(&ticks[0]).await, Outcome::Done);
    assert_eq!(worker.run(&ticks[0]).await, Outcome::Done, "a retried tick runs once");
    let runs = crm.automation_runs(account.id, r.id, &PageRequest::first(10).unwrap()).await.unwrap().items;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Completed);
    assert_eq!(jobs(&store, &account, "workflow.trigger").await.len(), 1);
    let next: Vec<_> = jobs(&store, &account, "automation.schedule").await;
    assert!(next.iter().any(|j| j.run_at == start() + chrono::Duration::hours(2)), "the next tick is scheduled");
    // Disabled: the chain ends.
    crm.set_automation_enabled(account.id, r.id, false).await.unwrap();
    let tick2 = next.iter().find(|j| j.run_at == start() + chrono::Duration::hours(2)).unwrap();
    assert_eq!(worker.run(tick2).await, Outcome::Done);
    assert_eq!(crm.automation_runs(account.id, r.id, &PageRequest::first(10).unwrap()).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn scores_move_by_signals_thresholds_and_decay() {
    let (crm, store, clock, account) = setup().await;
    let model = ScoringModel {
        tags: vec![crm_core::domain::scoring::TagPoints { tag: "vip".into(), points: 30 }],
        thresholds: vec![Threshold { min_score: 40, stage: LeadStage::Qualified }],
        ..ScoringModel::default()
    };
    crm.put_scoring_model(account.id, model.clone()).await.unwrap();
    assert_eq!(crm.scoring_model(account.id).await.unwrap(), model);
    let scoring = ScoringWorker::new(crm.clone());
    let (contact, event) = lead(&crm, &store, &account).await;
    assert_eq!(scoring.handle(&event, 1, None).await, Outcome::Done);
    // replied 5 + keyword "preço" 10 (no earlier outbound message: no fast reply).
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 15);
    assert_eq!(scoring.handle(&event, 2, None).await, Outcome::Done);
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 15, "redelivery scores once");

    // A fast reply after crm wrote.
    crm.send_message(account.id, contact, MessageContent::text("Oi!")).await.unwrap();
    clock.advance(Duration::from_secs(600));
    crm.record_inbound(account.id, inbound("+5511987654321", "wamid.2", "ok")).await.unwrap();
    let reply = last_event(&store, &account, &EventType::MESSAGE_RECEIVED).await;
    scoring.handle(&reply, 1, None).await;
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 25, "replied 5 + fast reply 5");

    // A tag: once per contact, and the threshold moves the stage.
    let tagged = crm.tag_contact(account.id, contact, &["vip".into()]).await.unwrap();
    let updated = last_event(&store, &account, &EventType::CONTACT_UPDATED).await;
    assert_eq!(updated.payload["version"], json!(tagged.version));
    scoring.handle(&updated, 1, None).await;
    let c = crm.get_contact(account.id, contact).await.unwrap();
    assert_eq!((c.lead_score, c.lead_stage), (55, LeadStage::Qualified));
    let again = last_event(&store, &account, &EventType::CONTACT_UPDATED).await;
    scoring.handle(&again, 1, None).await;
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 55, "a tag scores once");

    let history = crm.score_history(account.id, contact, &PageRequest::first(50).unwrap()).await.unwrap().items;
    let reasons: Vec<&str> = history.iter().map(|h| h.reason.as_str()).collect();
    assert_eq!(reasons, ["replied", "keyword[0]", "replied", "fast_reply", "tag:vip"]);
    assert_eq!(history.last().unwrap().new_stage, Some(LeadStage::Qualified));
    assert_eq!(events(&store, &account, &EventType::CONTACT_SCORE_CHANGED).await.len(), 5);

    // Decay: one job per contact, due 7 days after the last message.
    let decay_jobs = jobs(&store, &account, "scoring.decay").await;
    assert_eq!(decay_jobs.len(), 1);
    let decay = DecayWorker::new(crm.clone());
    let wait = decay.decay(account.id, contact).await.unwrap().unwrap();
    assert_eq!(wait, Duration::from_secs(7 * 86_400), "nothing before 7 silent days");
    clock.advance(Duration::from_secs(7 * 86_400 + 3600));
    let wait = decay.decay(account.id, contact).await.unwrap().unwrap();
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 53, "-2 on the first silent day");
    assert_eq!(wait, Duration::from_secs(86_400 - 3600), "then the next day");
    decay.decay(account.id, contact).await.unwrap();
    assert_eq!(crm.get_contact(account.id, contact).await.unwrap().lead_score, 53, "once per day");
    match decay.run(&decay_jobs[0]).await {
        Outcome::Defer { after } => assert_eq!(after, Duration::from_secs(86_400 - 3600)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn rules_are_bounded_per_account_and_tenant_scoped() {
    let (crm, _store, _clock, account) = setup().await;
    let other = crm.create_account("Outra").await.unwrap();
    let def = rule(json!({"trigger": {"event": "contact.created"}, "actions": [{"type": "add_tag", "tag": "x"}]}));
    let r: Automation = crm.create_automation(account.id, "mine", def).await.unwrap();
    assert!(matches!(crm.get_automation(other.id, r.id).await.unwrap_err(), Error::NotFound { .. }));
    assert!(matches!(crm.delete_automation(other.id, r.id).await.unwrap_err(), Error::NotFound { .. }));
    let err = crm
        .create_automation(
            account.id,
            "  ",
            rule(json!({"trigger": {"event": "contact.created"},
        "actions": [{"type": "add_tag", "tag": "x"}]})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation { ref field, .. } if field == "name"), "{err}");
}

#[tokio::test]
async fn connector_actions_schedule_durable_sends() {
    let (crm, store, _clock, account) = setup().await;
    let (contact, event) = lead(&crm, &store, &account).await;
    let patch = crm_core::ContactPatch { email: Some(Some("joao@example.com".into())), ..Default::default() };
    crm.update_contact(account.id, contact, patch).await.unwrap();
    let def = rule(json!({"trigger": {"event": "message.received"}, "actions": [
        {"type": "send_email", "subject": "Oi {{first_name}}", "text": "Recebemos: {{name}}", "provider": "sendgrid"},
        {"type": "notify_slack", "text": "Lead {{name}}", "hot_lead_threshold": 70},
        {"type": "track_event", "name": "purchase", "value_minor": 4990, "params": {"plan": "pro"}},
        {"type": "send_email", "subject": "Cópia", "text": "Lead {{phone}}", "to": ["vendas@example.com"]}
    ]}));
    crm.create_automation(account.id, "Conectores", def).await.unwrap();
    let runs = Engine::new(crm.clone()).handle_event(&event).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Completed, "{:?}", runs[0]);

    let mails = jobs(&store, &account, "mail.send").await;
    assert_eq!(mails.len(), 2);
    let first = mails.iter().find(|j| j.payload["provider"] == "sendgrid").unwrap();
    assert_eq!(first.payload["draft"]["to"], json!([{"email": "joao@example.com", "name": "João Silva"}]));
    assert_eq!(first.payload["draft"]["variables"]["first_name"], "João");
    assert_eq!(first.payload["draft"]["contact_id"], json!(contact));
    assert!(first.unique_key.as_deref().unwrap().ends_with(":0"), "one job per run and action");
    let copy = mails.iter().find(|j| j.payload.get("provider").is_none()).unwrap();
    assert_eq!(copy.payload["draft"]["to"], json!([{"email": "vendas@example.com"}]));

    let slack = jobs(&store, &account, "notify.send").await;
    assert_eq!(slack[0].payload["provider"], "slack");
    assert_eq!(slack[0].payload["notification"]["blocks"][0]["text"]["text"], "Hot lead");
    assert_eq!(slack[0].payload["notification"]["blocks"][2]["text"]["text"], "Lead João Silva");

    let ga = jobs(&store, &account, "analytics.track").await;
    let e = &ga[0].payload["events"][0];
    assert_eq!((e["name"].as_str(), e["params"]["currency"].as_str()), (Some("purchase"), Some("BRL")));
    assert_eq!((e["params"]["value"].as_f64(), e["params"]["plan"].as_str()), (Some(49.9), Some("pro")));
    assert_eq!(e["params"]["transaction_id"], json!(event.id.to_string()), "GA4 deduplicates redeliveries");
    assert_eq!(ga[0].payload["user"]["user_id"], json!(contact.to_string()));

    // A contact without an e-mail and an action without `to` fails the run, scheduling nothing.
    let (crm, store, _clock, account) = setup().await;
    let (_, event) = lead(&crm, &store, &account).await;
    let def = rule(json!({"trigger": {"event": "message.received"},
        "actions": [{"type": "send_email", "subject": "Oi", "text": "Oi"}]}));
    crm.create_automation(account.id, "Sem e-mail", def).await.unwrap();
    let runs = Engine::new(crm.clone()).handle_event(&event).await.unwrap();
    assert_ne!(runs[0].status, RunStatus::Completed);
    assert!(jobs(&store, &account, "mail.send").await.is_empty());
}

/// A patch setting (or with `None` clearing) the account's time zone.
fn zone(name: Option<&str>) -> crm_core::domain::account::AccountPatch {
    crm_core::domain::account::AccountPatch { name: None, time_zone: Some(name.map(str::to_owned)) }
}

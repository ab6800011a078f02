//! Automations and lead scores: the [`AutomationStore`](crate::AutomationStore) contract.

use serde_json::json;
use std::future::Future;
use std::sync::Arc;

use super::{contact, ev, event_count, events_of, insert, is_conflict, is_not_found, new_account, now, phone};
use crate::domain::automation::{Automation, AutomationRun, RuleDefinition, RunStatus, StepOutcome};
use crate::domain::scoring::{ScoreChange, ScoringModel};
use crate::{AccountId, ContactId, EventId, EventType, LeadStage, PageRequest, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    automations_versions_and_tenancy(make().await).await;
    automation_runs_are_unique_per_event(make().await).await;
    concurrent_run_starts_make_one_run(make().await).await;
    score_changes_are_atomic_and_once_per_cause(make().await).await;
    scoring_models_round_trip(make().await).await;
}

fn definition(tag: &str) -> RuleDefinition {
    serde_json::from_value(json!({
        "trigger": {"event": "message.received"},
        "conditions": [{"type": "text", "words": ["preço"]}, {"type": "score", "min": 0, "max": 50}],
        "actions": [{"type": "add_tag", "tag": tag}, {"type": "wait", "seconds": 60}, {"type": "adjust_score", "by": 5}]
    }))
    .expect("rule")
}

fn rule(account: AccountId, name: &str) -> Automation {
    Automation::new(account, name, definition("lead"), now()).expect("valid rule")
}

/// Rules: insert (version 1 with its record), update (the next version,
/// optimistic), enable/disable (version kept), trigger lookup, delete
/// (versions and runs go), one event per mutation, tenancy.
pub async fn automations_versions_and_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let r = rule(a, "Lead qualification");
    let before = event_count(&store, a).await;
    store.insert_automation(&r, &ev(a, EventType::AUTOMATION_CREATED)).await.expect("insert");
    assert_eq!(store.get_automation(a, r.id).await.expect("get"), r, "[automations] round trip");
    let err = store.get_automation(b, r.id).await.expect_err("tenancy");
    assert!(is_not_found(&err), "[automations] another account's rule is NotFound, got {err}");
    let err = store.insert_automation(&r, &ev(a, EventType::AUTOMATION_CREATED)).await.expect_err("dup id");
    assert!(is_conflict(&err), "[automations] a taken id is Conflict, got {err}");

    let mut edited = r.clone();
    edited.name = "Lead qualification v2".into();
    edited.definition = definition("hot");
    edited.updated_at = now();
    let stored = store.update_automation(&edited, &ev(a, EventType::AUTOMATION_UPDATED)).await.expect("update");
    assert_eq!(stored.version, 2, "[automations] an edit makes version 2");
    assert_eq!(stored.definition, definition("hot"));
    assert_eq!(stored.created_at, r.created_at, "[automations] created_at kept");
    let err = store.update_automation(&edited, &ev(a, EventType::AUTOMATION_UPDATED)).await.expect_err("stale");
    assert!(is_conflict(&err), "[automations] a stale version is Conflict, got {err}");
    let mut foreign = stored.clone();
    foreign.account_id = b;
    let err = store.update_automation(&foreign, &ev(b, EventType::AUTOMATION_UPDATED)).await.expect_err("tenancy");
    assert!(is_not_found(&err), "[automations] another account's update is NotFound, got {err}");

    let versions = store.list_automation_versions(a, r.id).await.expect("versions");
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2], "[automations] versions");
    assert_eq!(versions[0].definition, definition("lead"), "[automations] version 1 keeps its rule");
    assert_eq!(versions[1].name, "Lead qualification v2");
    let v1 = store.get_automation_version(a, r.id, 1).await.expect("v1");
    assert_eq!(v1.definition, definition("lead"));
    assert!(is_not_found(&store.get_automation_version(a, r.id, 3).await.expect_err("v3")));
    assert!(is_not_found(&store.list_automation_versions(b, r.id).await.expect_err("tenancy")));

    let on_msg = store.enabled_automations(a, "message.received").await.expect("enabled");
    assert_eq!(on_msg.iter().map(|x| x.id).collect::<Vec<_>>(), [r.id], "[automations] trigger lookup");
    assert!(store.enabled_automations(a, "contact.created").await.expect("enabled").is_empty());
    assert!(
        store.enabled_automations(b, "message.received").await.expect("enabled").is_empty(),
        "[automations] tenancy"
    );
    let off = store
        .set_automation_enabled(a, r.id, false, now(), &ev(a, EventType::AUTOMATION_UPDATED))
        .await
        .expect("disable");
    assert!(!off.enabled);
    assert_eq!(off.version, 2, "[automations] disabling keeps the version");
    assert!(
        store.enabled_automations(a, "message.received").await.expect("enabled").is_empty(),
        "[automations] disabled"
    );
    let mut again = off.clone();
    again.updated_at = now();
    let v3 = store.update_automation(&again, &ev(a, EventType::AUTOMATION_UPDATED)).await.expect("edit disabled");
    assert!(!v3.enabled, "[automations] an edit keeps the stored enabled flag");
    assert_eq!(store.count_automations(a).await.expect("count"), 1);
    assert_eq!(store.count_automations(b).await.expect("count"), 0);
    let second = rule(a, "Second");
    store.insert_automation(&second, &ev(a, EventType::AUTOMATION_CREATED)).await.expect("insert 2");
    let page = store.list_automations(a, &PageRequest::first(1).expect("limit")).await.expect("list");
    assert_eq!(page.items.len(), 1);
    let cursor = page.next_cursor.expect("a second page");
    let page2 = store.list_automations(a, &PageRequest::new(Some(&cursor), 1).expect("cursor")).await.expect("list");
    assert_eq!(page2.items[0].id, second.id, "[automations] pages in id order");

    let run = AutomationRun::start(&v3, EventId::new(), None, now());
    store.start_run(&run).await.expect("run");
    let err = store.delete_automation(b, r.id, &ev(b, EventType::AUTOMATION_DELETED)).await.expect_err("tenancy");
    assert!(is_not_found(&err));
    store.delete_automation(a, r.id, &ev(a, EventType::AUTOMATION_DELETED)).await.expect("delete");
    assert!(is_not_found(&store.get_automation(a, r.id).await.expect_err("gone")));
    assert!(is_not_found(&store.get_run(a, run.id).await.expect_err("runs go with the rule")));
    assert!(is_not_found(&store.get_automation_version(a, r.id, 1).await.expect_err("versions go")));
    // insert, update, disable, update, insert, delete: six events.
    assert_eq!(event_count(&store, a).await, before + 6, "[automations] one event per mutation");
    assert_eq!(event_count(&store, b).await, 1, "[automations] refused mutations write no event");
}

/// Runs: one per (rule, event) — a second start returns the stored run
/// unchanged; progress saves with an optional event; lists, counts and
/// lookups by key; tenancy.
pub async fn automation_runs_are_unique_per_event(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let r = rule(a, "R");
    store.insert_automation(&r, &ev(a, EventType::AUTOMATION_CREATED)).await.expect("insert");
    let c = contact(a, "Ana", &phone(1));
    insert(&store, &c).await;
    let event = EventId::new();
    let run = AutomationRun::start(&r, event, Some(c.id), now());
    let (first, created) = store.start_run(&run).await.expect("start");
    assert!(created, "[runs] the first start creates");
    assert_eq!(first, run);
    let again = AutomationRun::start(&r, event, Some(c.id), now());
    let (second, created) = store.start_run(&again).await.expect("start again");
    assert!(!created, "[runs] a second start for the same event creates nothing");
    assert_eq!(second.id, run.id, "[runs] the stored run is returned");
    assert_eq!(store.find_run(a, r.id, event).await.expect("find").map(|x| x.id), Some(run.id));
    assert!(store.find_run(b, r.id, event).await.expect("find").is_none(), "[runs] tenancy of find_run");
    assert!(store.find_run(a, r.id, EventId::new()).await.expect("find").is_none());

    let mut progressed = first.clone();
    progressed.status = RunStatus::Failed;
    progressed.reason = Some("action 1 failed".into());
    progressed.next_step = 1;
    progressed.steps = vec![StepOutcome {
        index: 0,
        action: "add_tag".into(),
        outcome: "done".into(),
        detail: "tagged lead".into(),
        started_at: now(),
        duration_ms: 3,
    }];
    progressed.updated_at = now();
    let before = event_count(&store, a).await;
    let failed = ev(a, EventType::AUTOMATION_RUN_FAILED);
    store.save_run(&progressed, Some(&failed)).await.expect("save");
    assert_eq!(store.get_run(a, run.id).await.expect("get"), progressed, "[runs] progress round trip");
    let events = events_of(&store, a).await;
    assert_eq!(events.len(), before + 1, "[runs] save_run appends its event");
    assert!(events.iter().any(|e| e.id == failed.id));
    store.save_run(&progressed, None).await.expect("save without event");
    assert_eq!(event_count(&store, a).await, before + 1);
    assert!(is_not_found(&store.get_run(b, run.id).await.expect_err("tenancy")));
    let mut foreign = progressed.clone();
    foreign.account_id = b;
    assert!(is_not_found(&store.save_run(&foreign, None).await.expect_err("tenancy")));

    let since = now() - chrono::Duration::minutes(1);
    assert_eq!(store.count_recent_runs(a, r.id, c.id, since).await.expect("count"), 1, "[runs] recent runs");
    let later = now() + chrono::Duration::minutes(1);
    assert_eq!(store.count_recent_runs(a, r.id, c.id, later).await.expect("count"), 0);
    assert_eq!(store.count_recent_runs(a, r.id, ContactId::new(), since).await.expect("count"), 0);
    let listed = store.list_runs(a, r.id, &PageRequest::first(10).expect("limit")).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    assert!(is_not_found(&store.list_runs(b, r.id, &PageRequest::first(10).expect("limit")).await.expect_err("t")));
    let mut newer = Vec::new();
    for _ in 0..2 {
        let (run, _) = store.start_run(&AutomationRun::start(&r, EventId::new(), None, now())).await.expect("start");
        newer.push(run.id);
    }
    let latest: Vec<_> = store.latest_runs(a, r.id, 2).await.expect("latest").iter().map(|r| r.id).collect();
    assert_eq!(latest, vec![newer[1], newer[0]], "[runs] the latest runs, newest first");
    assert_eq!(store.latest_runs(a, r.id, 10).await.expect("latest").len(), 3, "[runs] every run when fewer");
    assert!(is_not_found(&store.latest_runs(b, r.id, 2).await.expect_err("tenancy")), "[runs] latest: tenancy");
    let zero = store.latest_runs(a, r.id, 0).await.expect_err("limit 0");
    assert!(matches!(zero, crate::Error::Validation { .. }), "[runs] latest: the limit is checked");
    let mut orphan = AutomationRun::start(&r, EventId::new(), None, now());
    orphan.automation_id = crate::AutomationId::new();
    assert!(is_not_found(&store.start_run(&orphan).await.expect_err("no rule")), "[runs] a missing rule is NotFound");
}

/// Concurrent starts of one (rule, event) store one run; every caller gets it.
pub async fn concurrent_run_starts_make_one_run(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let r = rule(a, "R");
    store.insert_automation(&r, &ev(a, EventType::AUTOMATION_CREATED)).await.expect("insert");
    let event = EventId::new();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let run = AutomationRun::start(&r, event, None, now());
            tokio::spawn(async move { store.start_run(&run).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tasks {
        let (run, c) = t.await.expect("task").expect("start_run");
        ids.push(run.id);
        created += usize::from(c);
    }
    assert_eq!(created, 1, "[runs] exactly one concurrent start creates");
    ids.dedup();
    assert_eq!(ids.len(), 1, "[runs] every caller sees the one run");
}

/// A score change moves the contact, stores the history row and both
/// events in one go; the same cause twice changes nothing; a stale contact
/// is Conflict; tenancy.
pub async fn score_changes_are_atomic_and_once_per_cause(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = contact(a, "Ana", &phone(1));
    insert(&store, &c).await;
    let change = |old: u8, new: u8, cause: &str| ScoreChange {
        id: uuid::Uuid::now_v7(),
        account_id: a,
        contact_id: c.id,
        old_score: old,
        new_score: new,
        new_stage: (new >= 70).then_some(LeadStage::Qualified),
        reason: "replied".into(),
        event_id: Some(EventId::new()),
        cause: cause.into(),
        at: now(),
    };
    let mut next = store.get_contact(a, c.id).await.expect("get");
    next.lead_score = 75;
    next.lead_stage = LeadStage::Qualified;
    next.updated_at = now();
    let ch = change(0, 75, "e1:replied");
    let before = event_count(&store, a).await;
    let applied = store
        .apply_score_change(&next, &ch, &ev(a, EventType::CONTACT_UPDATED), &ev(a, EventType::CONTACT_SCORE_CHANGED))
        .await
        .expect("apply");
    assert!(applied, "[scores] the first change applies");
    let stored = store.get_contact(a, c.id).await.expect("get");
    assert_eq!((stored.lead_score, stored.lead_stage), (75, LeadStage::Qualified), "[scores] contact moved");
    assert_eq!(stored.version, next.version + 1, "[scores] version + 1");
    assert_eq!(stored.name, c.name, "[scores] other fields kept");
    assert_eq!(event_count(&store, a).await, before + 2, "[scores] both events");
    assert!(store.has_score_cause(a, c.id, "e1:replied").await.expect("cause"));
    assert!(!store.has_score_cause(b, c.id, "e1:replied").await.expect("cause"), "[scores] tenancy of causes");

    let mut again = stored.clone();
    again.lead_score = 80;
    let twice = store
        .apply_score_change(
            &again,
            &change(75, 80, "e1:replied"),
            &ev(a, EventType::CONTACT_UPDATED),
            &ev(a, EventType::CONTACT_SCORE_CHANGED),
        )
        .await
        .expect("apply twice");
    assert!(!twice, "[scores] the same cause applies once");
    assert_eq!(store.get_contact(a, c.id).await.expect("get").lead_score, 75, "[scores] nothing moved");
    assert_eq!(event_count(&store, a).await, before + 2, "[scores] no events the second time");

    let mut stale = next.clone();
    stale.lead_score = 10;
    stale.lead_stage = LeadStage::New;
    let err = store
        .apply_score_change(
            &stale,
            &change(0, 10, "e2:replied"),
            &ev(a, EventType::CONTACT_UPDATED),
            &ev(a, EventType::CONTACT_SCORE_CHANGED),
        )
        .await
        .expect_err("stale");
    assert!(is_conflict(&err), "[scores] a stale contact is Conflict, got {err}");
    assert!(
        !store.has_score_cause(a, c.id, "e2:replied").await.expect("cause"),
        "[scores] refused change stores no row"
    );

    let history = store.score_history(a, c.id, &PageRequest::first(10).expect("limit")).await.expect("history");
    assert_eq!(history.items, vec![ch], "[scores] history round trip");
    assert!(is_not_found(&store.score_history(b, c.id, &PageRequest::first(10).expect("limit")).await.expect_err("t")));
    let mut foreign = store.get_contact(a, c.id).await.expect("get");
    foreign.account_id = b;
    let mut fch = change(75, 76, "e3");
    fch.account_id = b;
    foreign.lead_score = 76;
    let err = store
        .apply_score_change(
            &foreign,
            &fch,
            &ev(b, EventType::CONTACT_UPDATED),
            &ev(b, EventType::CONTACT_SCORE_CHANGED),
        )
        .await
        .expect_err("tenancy");
    assert!(is_not_found(&err), "[scores] another account's contact is NotFound, got {err}");
}

/// The scoring model: none until stored, then the stored one, replaced by a second put.
pub async fn scoring_models_round_trip(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    assert_eq!(store.get_scoring_model(a).await.expect("get"), None, "[scoring] none by default");
    let mut m = ScoringModel::default();
    store.put_scoring_model(a, &m, now()).await.expect("put");
    assert_eq!(store.get_scoring_model(a).await.expect("get"), Some(m.clone()));
    m.replied = 9;
    m.decay = None;
    store.put_scoring_model(a, &m, now()).await.expect("put again");
    assert_eq!(store.get_scoring_model(a).await.expect("get"), Some(m), "[scoring] replaced");
    assert_eq!(store.get_scoring_model(b).await.expect("get"), None, "[scoring] tenancy");
}

//! Rule evaluation throughput: events per second through the automation
//! engine with 100 rules per account (in memory), against baselines
//! measured in the same run: the same events through a no-op worker, and
//! through the engine for an account without rules (the store lookup alone).
//!
//! `cargo bench --bench automation`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crm::automation::{AutomationWorker, Engine};
use crm::domain::automation::RuleDefinition;
use crm::workers::{EventWorker, Outcome};
use crm::{
    AccountId, Crm, Event, EventFilter, EventId, EventStore, EventType, InboundMessage, MemoryStore, MessageContent,
    RecordingMessenger,
};
use serde_json::json;

const RULES: usize = 100;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    }
}

#[derive(Debug)]
struct NoOp;

#[crm::async_trait]
impl EventWorker for NoOp {
    fn name(&self) -> &str {
        "noop"
    }
    fn events(&self) -> EventFilter {
        EventFilter::all()
    }
    async fn handle(&self, event: &Event, _attempt: u32, _previous: Option<&str>) -> Outcome {
        black_box(event);
        Outcome::Done
    }
}

/// An account with `rules` rules on `message.received`, each looking for its
/// own word (`matching` of them match the event's text), and one
/// message.received event of a contact of it.
async fn account(crm: &Crm, store: &MemoryStore, rules: usize, matching: usize) -> (AccountId, Event) {
    let a = crm.create_account("Bench").await.expect("account");
    for i in 0..rules {
        let word = if i < matching { "orçamento".to_owned() } else { format!("palavra{i}") };
        let def: RuleDefinition = serde_json::from_value(json!({
            "trigger": {"event": "message.received"},
            "conditions": [{"type": "lacks_tags", "tags": ["customer"]}, {"type": "text", "words": [word]},
                {"type": "score", "min": 0, "max": 100}],
            "actions": [{"type": "add_tag", "tag": "lead"}]
        }))
        .expect("rule");
        crm.create_automation(a.id, &format!("rule {i}"), def).await.expect("rule");
    }
    let inbound = InboundMessage {
        from: "+5511987654321".into(),
        whatsapp_id: None,
        profile_name: None,
        provider_message_id: Some("wamid.bench".into()),
        content: MessageContent::text("Oi, quero um orçamento para amanhã"),
        sent_at: None,
        reply_to: None,
    };
    crm.record_inbound(a.id, inbound).await.expect("inbound");
    let events = store.list_events(a.id, None, 1000).await.expect("events");
    let event = events.into_iter().rfind(|e| e.event_type == EventType::MESSAGE_RECEIVED).expect("event");
    (a.id, event)
}

fn rule_evaluation(c: &mut Criterion) {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let crm = Crm::builder().store(store.clone()).messenger(Arc::new(RecordingMessenger::new())).build().expect("crm");
    let (_, none) = rt.block_on(account(&crm, &store, 0, 0));
    let (_, miss) = rt.block_on(account(&crm, &store, RULES, 0));
    let (_, one) = rt.block_on(account(&crm, &store, RULES, 1));
    let worker = AutomationWorker::new(Engine::new(crm.clone()));
    let noop = NoOp;
    // Each delivery is a new event (a new id): a run is per (rule, event).
    let fresh = |e: &Event| Event { id: EventId::new(), ..e.clone() };

    let mut g = c.benchmark_group("automation_events");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline/no_op_worker", |b| {
        b.to_async(&rt).iter(|| async { noop.handle(&fresh(&none), 1, None).await })
    });
    g.bench_function("baseline/engine_0_rules", |b| {
        b.to_async(&rt).iter(|| async { worker.handle(&fresh(&none), 1, None).await })
    });
    g.bench_function("engine/100_rules_none_match", |b| {
        b.to_async(&rt).iter(|| async { worker.handle(&fresh(&miss), 1, None).await })
    });
    g.bench_function("engine/100_rules_one_matches", |b| {
        b.to_async(&rt).iter(|| async { worker.handle(&fresh(&one), 1, None).await })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = rule_evaluation
}
criterion_main!(benches);

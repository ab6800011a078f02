//! The seed's "Follow-up Email Sequence" for inactive leads, run natively:
//! no reply after 3 days → template `follow_up_1`; after 7 more days →
//! `follow_up_2`; then tag `cold`. Steps run only on weekdays 09:00–18:00
//! in São Paulo (UTC-3). One lead replies and drops out of the sequence.
//!
//! The sequence is `examples/sequences/follow_up.json`, the same JSON
//! `POST /api/v1/sequences` imports. The example runs in memory on a manual
//! clock, so ten days pass in a second.
//!
//! ```text
//! cargo run --example follow_up_sequence
//! ```

use chrono::{TimeZone, Utc};
use crm::workers::{Runtime, WorkerOptions};
use crm::{
    Clock, Crm, InboundMessage, ManualClock, MemoryStore, MessageContent, NewContact, NewSequence, NewTemplate,
    RecordingMessenger, SEQUENCE_STEP_JOB, Store,
};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Monday 2026-11-30, 12:00 UTC (09:00 in São Paulo).
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).single().ok_or("time")?));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::with_clock(clock.clone()));
    let messenger = Arc::new(RecordingMessenger::new());
    let crm = Crm::builder().store(store.clone()).messenger(messenger.clone()).clock(clock.clone()).build()?;

    let account = crm.create_account("Imobiliária Sol").await?.id;
    for (name, body) in [
        ("follow_up_1", "Oi {{first_name}}, ainda procura um imóvel? Posso ajudar."),
        ("follow_up_2", "{{first_name}}, última chamada: temos visitas esta semana."),
    ] {
        let t =
            NewTemplate { name: name.into(), language: Some("pt_BR".into()), body: body.into(), ..Default::default() };
        crm.create_template(account, t).await?;
    }
    let sequence: NewSequence = serde_json::from_str(include_str!("sequences/follow_up.json"))?;
    let sequence = crm.create_sequence(account, sequence).await?;
    println!("sequence {} \"{}\": {} steps", sequence.id, sequence.name, sequence.steps.len());

    let mut leads = Vec::new();
    for (i, name) in ["Ana Souza", "Bruno Lima", "Carla Dias"].into_iter().enumerate() {
        let lead = NewContact {
            name: name.into(),
            phone: format!("+5511990000{i:03}"),
            tags: vec!["lead".into()],
            ..Default::default()
        };
        leads.push(crm.create_contact(account, lead).await?.id);
    }
    for r in crm.enrol_contacts(account, sequence.id, &leads, None).await? {
        let due = r.enrolment.as_ref().and_then(|e| e.next_run_at);
        println!("enrol    {} → {} (first step due {due:?})", r.contact_id, r.outcome);
    }

    // The workers: the step runner, the watcher and the message dispatcher.
    let fast = WorkerOptions { poll: Duration::from_millis(10), ..WorkerOptions::default() };
    let runtime = Runtime::builder(store.clone())
        .job_worker(Arc::new(crm.sequence_runner()), fast.clone())
        .event_worker(Arc::new(crm.sequence_watcher()), fast.clone())
        .event_worker(Arc::new(crm.dispatcher()), fast)
        .build()
        .start()
        .await?;

    // Bruno answers on day 2.
    clock.advance(Duration::from_secs(86_400));
    let reply = InboundMessage {
        from: "+5511990000001".into(),
        whatsapp_id: None,
        profile_name: None,
        provider_message_id: Some("wamid.bruno".into()),
        content: MessageContent::text("Oi! Tenho interesse, podemos falar?"),
        sent_at: None,
        reply_to: None,
    };
    crm.record_inbound(account, reply).await?;

    // Let eleven days pass, an hour at a time.
    for _ in 0..(11 * 24) {
        clock.advance(Duration::from_secs(3600));
        while store.job_stats(SEQUENCE_STEP_JOB).await?.due > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runtime.shutdown(Duration::from_secs(5)).await;

    println!("\nafter 11 days ({}):", clock.now());
    for id in &leads {
        let contact = crm.get_contact(account, *id).await?;
        let query = crm::ports::sequences::EnrolmentQuery {
            contact: Some(*id),
            page: crm::PageRequest::first(10)?,
            ..Default::default()
        };
        let e = &crm.list_enrolments(account, &query).await?.items[0];
        let tags: Vec<&str> = contact.tags.iter().map(|t| t.as_str()).collect();
        println!(
            "{:<11} state={:?} reason={:?} steps_done={} tags={}",
            contact.name,
            e.state,
            e.stop_reason,
            e.current_step,
            tags.join(",")
        );
    }
    println!("\nsent through the messenger:");
    for s in messenger.sent() {
        println!("  {:?}", s.message);
    }
    Ok(())
}

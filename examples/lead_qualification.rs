//! The seed's "Lead Qualification Workflow", native: a lead captured by a
//! webhook (a form posting to crm's API creates the contact) is scored,
//! tagged and staged, and the sales team is notified through a signed
//! outbound webhook; when the lead then writes asking for a quote, lead
//! scoring takes the score past 70 and the contact becomes `qualified`.
//!
//! The rule is `examples/automations/lead_qualification.json`, the same
//! JSON `POST /api/v1/automations` takes. Here everything runs in memory
//! and the engine is driven by hand; `crm-server` runs the same workers
//! (outbox consumers `automation` and `scoring`) by itself.
//!
//! ```text
//! cargo run --example lead_qualification
//! ```

use crm::automation::{Engine, ScoringWorker};
use crm::domain::automation::RuleDefinition;
use crm::{
    Crm, EventStore, EventType, InboundMessage, JobQuery, JobStore, MemoryStore, MessageContent, NewContact,
    PageRequest, RecordingMessenger, Result,
};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<()> {
    let store = Arc::new(MemoryStore::new());
    let crm = Crm::builder().store(store.clone()).messenger(Arc::new(RecordingMessenger::new())).build()?;
    let account = crm.create_account("Loja da Ana").await?;

    // The rule, imported from the JSON the API takes.
    let json: serde_json::Value = serde_json::from_str(include_str!("automations/lead_qualification.json"))
        .map_err(|e| crm::Error::validation("rule", e.to_string()))?;
    let name = json["name"].as_str().unwrap_or("Lead qualification").to_owned();
    let mut definition = json.clone();
    if let Some(o) = definition.as_object_mut() {
        o.remove("name");
    }
    let definition: RuleDefinition =
        serde_json::from_value(definition).map_err(|e| crm::Error::validation("rule", e.to_string()))?;
    let rule = crm.create_automation(account.id, &name, definition).await?;
    println!("rule {} v{}: {}", rule.id, rule.version, rule.name);

    // 1. A lead captured by webhook: the form's POST /api/v1/contacts.
    let lead = crm
        .create_contact(
            account.id,
            NewContact { name: "João Silva".into(), phone: "+55 11 98765-4321".into(), ..Default::default() },
        )
        .await?;
    let events = store.list_events(account.id, None, 100).await?;
    let created =
        events.iter().find(|e| e.event_type == EventType::CONTACT_CREATED).ok_or(crm::Error::not_found("event"))?;

    // 2-4. Scored, tagged and staged; the sales team's webhook is a durable job.
    let engine = Engine::new(crm.clone());
    for run in engine.handle_event(created).await? {
        println!("run {} ({:?}):", run.id, run.status);
        for step in &run.steps {
            println!("  {} {}: {} — {}", step.index, step.action, step.outcome, step.detail);
        }
    }
    let contact = crm.get_contact(account.id, lead.id).await?;
    println!(
        "{}: score {}, stage {}, tags {:?}",
        contact.name,
        contact.lead_score,
        contact.lead_stage.as_str(),
        contact.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>()
    );
    let page = PageRequest::first(10)?;
    let jobs =
        store.list_jobs(account.id, &JobQuery { kind: Some("automation.webhook".into()), state: None, page }).await?;
    for j in &jobs.items {
        println!("notify job {} → {}", j.id, j.payload["target"]);
    }

    // 5. The lead asks for a quote: lead scoring (replied + keyword) passes 70.
    crm.record_inbound(
        account.id,
        InboundMessage {
            from: "+5511987654321".into(),
            whatsapp_id: None,
            profile_name: None,
            provider_message_id: Some("wamid.demo.1".into()),
            content: MessageContent::text("Oi! Quero um orçamento"),
            sent_at: None,
            reply_to: None,
        },
    )
    .await?;
    let events = store.list_events(account.id, None, 1000).await?;
    let received = events
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::MESSAGE_RECEIVED)
        .ok_or(crm::Error::not_found("event"))?;
    ScoringWorker::new(crm.clone()).score(received).await?;
    let contact = crm.get_contact(account.id, lead.id).await?;
    println!("after the reply: score {}, stage {}", contact.lead_score, contact.lead_stage.as_str());
    for change in crm.score_history(account.id, lead.id, &PageRequest::first(50)?).await?.items {
        println!("  {} → {} ({})", change.old_score, change.new_score, change.reason);
    }
    Ok(())
}

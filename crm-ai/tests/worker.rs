//! The `assistant` worker over the memory store: every inbound message is
//! analyzed (`message.analyzed`), `suggest` stores one draft per message
//! (also when the event is handled twice), `send` queues the reply once
//! through the send pipeline, `off` only analyzes.

use std::sync::Arc;

use crm_ai::{Analyzer, AssistantService, Heuristic};
use crm_core::domain::assistant::{AutoReplyMode, BusinessContext, Intent, Sentiment};
use crm_core::workers::{EventWorker, Outcome};
use crm_core::{
    AccountId, Crm, Direction, EventType, InboundMessage, MemoryStore, MessageContent, PageRequest, RecordingMessenger,
};

async fn setup() -> (AssistantService, Analyzer, AccountId) {
    let crm = Crm::builder()
        .store(Arc::new(MemoryStore::new()))
        .messenger(Arc::new(RecordingMessenger::new()))
        .build()
        .expect("crm");
    let account = crm.create_account("Doceria Flor").await.expect("account").id;
    let service = AssistantService::new(crm, Arc::new(Heuristic::new()), None);
    (service.clone(), Analyzer::new(service), account)
}

/// Records an inbound message and returns its `message.received` event.
async fn receive(service: &AssistantService, account: AccountId, id: &str, text: &str) -> crm_core::Event {
    let inbound = InboundMessage {
        from: "+55 11 98765-4321".into(),
        whatsapp_id: None,
        profile_name: Some("Ana Souza".into()),
        provider_message_id: Some(id.into()),
        content: MessageContent::text(text),
        sent_at: None,
        reply_to: None,
    };
    service.crm().record_inbound(account, inbound).await.expect("inbound");
    let events = service.crm().store().list_events(account, None, 1000).await.expect("events");
    events.into_iter().rev().find(|e| e.event_type == EventType::MESSAGE_RECEIVED).expect("message.received")
}

#[tokio::test]
async fn suggest_analyzes_and_stores_one_draft() {
    let (service, worker, account) = setup().await;
    assert_eq!(worker.name(), "assistant");
    service.set_auto_reply(account, None, AutoReplyMode::Suggest, BusinessContext::default()).await.expect("setting");
    let event = receive(&service, account, "wamid.1", "Quero encomendar um bolo pra hoje, urgente!").await;
    assert_eq!(worker.handle(&event, 1, None).await, Outcome::Done);
    assert_eq!(worker.handle(&event, 2, None).await, Outcome::Done, "a second run is harmless");
    let contact = event.payload["contact"]["id"].as_str().expect("contact").parse().expect("id");
    let analyses = service.analyses(account, contact).await.expect("analyses");
    assert_eq!(analyses.len(), 1);
    assert_eq!(analyses[0].signals.intent, Intent::Purchase);
    let drafts = service.drafts(account, contact).await.expect("drafts");
    assert_eq!(drafts.len(), 1, "one draft per message");
    assert!(drafts[0].text.starts_with("Oi, Ana!"), "{}", drafts[0].text);
    let events = service.crm().store().list_events(account, None, 1000).await.expect("events");
    assert_eq!(events.iter().filter(|e| e.event_type == EventType::MESSAGE_ANALYZED).count(), 2);
    assert_eq!(events.iter().filter(|e| e.event_type == EventType::AI_DRAFT_SUGGESTED).count(), 1);
}

#[tokio::test]
async fn send_queues_the_reply_once_and_off_only_analyzes() {
    let (service, worker, account) = setup().await;
    let event = receive(&service, account, "wamid.1", "Péssimo, veio errado de novo").await;
    assert_eq!(worker.handle(&event, 1, None).await, Outcome::Done);
    let contact = event.payload["contact"]["id"].as_str().expect("contact").parse().expect("id");
    let analyses = service.analyses(account, contact).await.expect("analyses");
    assert_eq!(analyses[0].sentiment.sentiment, Sentiment::Negative);
    assert!(service.drafts(account, contact).await.expect("drafts").is_empty(), "off: no draft");

    service.set_auto_reply(account, None, AutoReplyMode::Send, BusinessContext::default()).await.expect("setting");
    let event = receive(&service, account, "wamid.2", "Quanto custa o brigadeiro?").await;
    assert_eq!(worker.handle(&event, 1, None).await, Outcome::Done);
    assert_eq!(worker.handle(&event, 2, None).await, Outcome::Done);
    let thread =
        service.crm().list_thread(account, contact, &PageRequest::first(50).expect("page")).await.expect("thread");
    let outbound: Vec<_> = thread.items.iter().filter(|m| m.direction == Direction::Outbound).collect();
    assert_eq!(outbound.len(), 1, "queued once (client reference ai:<message id>)");
    let sent = serde_json::to_value(&outbound[0].content).expect("json");
    assert!(sent["body"].as_str().expect("body").contains("valores"), "{sent}");
}

#[tokio::test]
async fn events_without_a_message_are_done() {
    let (_, worker, account) = setup().await;
    let bogus = crm_core::Event::new(account, EventType::MESSAGE_RECEIVED, &serde_json::json!({}), chrono::Utc::now());
    assert_eq!(worker.handle(&bogus, 1, None).await, Outcome::Done);
}

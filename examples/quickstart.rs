//! Quick start: open a SQLite file, create an account and a contact, send a
//! message through the recording messenger, and print the thread and the
//! events that were written.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use crm::storage::SqliteStore;
use crm::{Crm, MessageContent, NewContact, PageRequest, RecordingMessenger, Store};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("CRM_QUICKSTART_DB").unwrap_or_else(|_| "crm-data/quickstart.db".into());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&format!("sqlite://{path}?mode=rwc")).await?);
    let messenger = Arc::new(RecordingMessenger::new());
    let crm = Crm::builder().store(store).messenger(messenger.clone()).build()?;

    let account = crm.create_account("Padaria Pão Quente").await?;
    let contact = crm
        .create_contact(
            account.id,
            NewContact {
                name: "Maria Oliveira".into(),
                phone: "+55 11 8765-4321".into(), // old 8-digit form: stored as +5511987654321
                tags: vec!["cliente".into(), "vip".into()],
                ..Default::default()
            },
        )
        .await?;
    let tags: Vec<&str> = contact.tags.iter().map(|t| t.as_str()).collect();
    println!("contact  {} {} tags={}", contact.id, contact.phone, tags.join(","));

    let sent = crm
        .send_message(account.id, contact.id, MessageContent::text("Olá Maria! Seu pão de queijo está pronto."))
        .await?;
    println!("message  {} status={:?} provider_id={:?}", sent.id, sent.status, sent.provider_message_id);

    println!("\nthread of {}:", contact.name);
    for m in crm.list_thread(account.id, contact.id, &PageRequest::default()).await?.items {
        println!("  [{:?} {:?}] {}", m.direction, m.status, m.content.preview());
    }

    println!("\nevents:");
    for e in crm.list_events(account.id, None, 100).await? {
        println!("  {} {}", e.occurred_at.format("%H:%M:%S%.3f"), e.event_type);
    }
    println!("\nrecording messenger accepted {} message(s); database: {path}", messenger.sent().len());
    Ok(())
}

//! Facade-level tests: an app that depends only on `crm` (features `server`
//! and `sqlite`) embeds the library and the server the way the README says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crm::server::{Config, Server};
use crm::storage::SqliteStore;
use crm::{Crm, MessageContent, MessageStatus, NewContact, PageRequest, RecordingMessenger};

#[tokio::test]
async fn library_flow_over_sqlite() {
    let store = Arc::new(SqliteStore::connect("sqlite::memory:").await.unwrap());
    let messenger = Arc::new(RecordingMessenger::new());
    let crm = Crm::builder().store(store).messenger(messenger.clone()).build().unwrap();
    let account = crm.create_account("Loja da Ana").await.unwrap();
    let contact = crm
        .create_contact(
            account.id,
            NewContact { name: "João".into(), phone: "+55 11 98765-4321".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let sent = crm.send_message(account.id, contact.id, MessageContent::text("Olá!")).await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    assert_eq!(messenger.sent().len(), 1);
    let thread = crm.list_thread(account.id, contact.id, &PageRequest::default()).await.unwrap();
    assert_eq!(thread.items.len(), 1);
    assert_eq!(thread.items[0].id, sent.id);
}

#[tokio::test]
async fn server_embedded_on_a_random_port() {
    let dir = std::env::temp_dir().join(format!("crm-embed-{}", uuid_like()));
    let config = Config {
        database_url: Some(format!("sqlite://{}/crm.db?mode=rwc", dir.display()).into()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut server = Server::build_with_listener(config, listener).await.unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let key = server.take_bootstrap().expect("a fresh database bootstraps an account").admin_key;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_with_shutdown(async move {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", key.expose());
    let created = http
        .post(format!("{base}/api/v1/contacts"))
        .header("authorization", &auth)
        .json(&serde_json::json!({ "name": "Maria", "phone": "(11) 98765-4321", "tags": ["vip"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let contact: serde_json::Value = created.json().await.unwrap();
    assert_eq!(contact["phone"], "+5511987654321", "the default country (55) applies");
    let listed: serde_json::Value = http
        .get(format!("{base}/api/v1/contacts?tag=vip"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], contact["id"]);
    let unauthenticated = http.get(format!("{base}/api/v1/contacts")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    std::fs::remove_dir_all(dir).ok();
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

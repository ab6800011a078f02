//! The Slack adapter against a local mock of Slack on 127.0.0.1: the
//! incoming-webhook and `chat.postMessage` payloads (text + Block Kit), and
//! Slack's documented answers (`ok`, `invalid_payload`, `invalid_token`,
//! `channel_is_archived`, `{"ok": false, "error": …}`, 429 with
//! `Retry-After`, 500) and a timeout; a notify job retried at Slack's time.
#![allow(clippy::unwrap_used)]

mod support;

use chrono::Utc;
use crm_connectors::slack::{Slack, SlackFactory};
use crm_core::connections::ConnectorRegistry;
use crm_core::domain::connection::{Connection, ConnectionKind};
use crm_core::ports::connectors::{ConnectorFactory, Notification, Notifier};
use crm_core::secrets::{Credentials, Keyring, SecretKey};
use crm_core::testing::connectors::notifier;
use crm_core::workers::connectors::{ConnectorWorker, NotifyJob, schedule_notification};
use crm_core::workers::{JobWorker, Outcome};
use crm_core::{Account, Error, Event, EventType, MemoryStore, Store, SystemClock};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::{Mock, Reply};

const TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/slack/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn webhook(mock: &Mock) -> Slack {
    let url = format!("{}services/T000/B000/XXXXXXXX", mock.base);
    Slack::webhook(&url, None).unwrap().with_timeout(Duration::from_millis(500))
}

fn bot(mock: &Mock) -> Slack {
    Slack::bot(&mock.base, TOKEN, Some("#vendas".into()), None).unwrap().with_timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn the_notifier_contract_holds_for_both_forms() {
    let mock = Mock::start(Reply::new(200, "ok")).await;
    notifier(&webhook(&mock), &|| mock.count()).await;
    let api = Mock::start(Reply::new(200, fixture("post_message_ok.json"))).await;
    notifier(&bot(&api), &|| api.count()).await;
}

#[tokio::test]
async fn posts_block_kit_payloads() {
    let mock = Mock::start(Reply::new(200, "ok")).await;
    let hot = Notification::hot_lead("Ana & <Filhos>", 85, 70, Some("https://crm.example.com/contacts/1"));
    webhook(&mock).notify(&hot).await.unwrap();
    let req = &mock.seen()[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/services/T000/B000/XXXXXXXX"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert!(req.header("authorization").is_none(), "a webhook URL is its own credential");
    let body = req.json();
    assert_eq!(body["text"], json!("Hot lead: Ana & <Filhos> reached score 85"));
    assert_eq!(
        body["blocks"][0],
        json!({ "type": "header", "text": { "type": "plain_text", "text": "Hot lead", "emoji": true } })
    );
    assert_eq!(
        body["blocks"][1]["fields"][0]["text"],
        json!("*Contact*\nAna &amp; &lt;Filhos&gt;"),
        "mrkdwn is escaped"
    );
    assert_eq!(body["blocks"][2]["elements"][0]["url"], json!("https://crm.example.com/contacts/1"));
    assert!(body.get("channel").is_none());

    let api = Mock::start(Reply::new(200, fixture("post_message_ok.json"))).await;
    let failed = Notification::payment_failed("Loja Azul", 12990, "BRL", "card_declined");
    bot(&api).notify(&failed).await.unwrap();
    let req = &api.seen()[0];
    assert_eq!(req.path, "/api/chat.postMessage");
    assert_eq!(req.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    let body = req.json();
    assert_eq!(body["channel"], json!("#vendas"), "the connection's default channel");
    assert_eq!(body["text"], json!("Payment failed: Loja Azul, BRL 129.90"));
    assert_eq!(body["blocks"].as_array().unwrap().len(), 3);
    let mut to_ops = Notification::plain("oi");
    to_ops.channel = Some("C0OPS".into());
    bot(&api).notify(&to_ops).await.unwrap();
    assert_eq!(api.seen()[1].json()["channel"], json!("C0OPS"), "a notification's own channel wins");
}

#[tokio::test]
async fn maps_slack_errors() {
    let mock = Mock::start(Reply::new(200, "ok")).await;
    let hook = webhook(&mock);
    let n = Notification::plain("oi");
    mock.then(Reply::new(403, "invalid_token"));
    assert!(matches!(hook.notify(&n).await.unwrap_err(), Error::Config { .. }));
    mock.then(Reply::new(400, "invalid_payload"));
    assert!(matches!(hook.notify(&n).await.unwrap_err(),
        Error::Provider { transient: false, code: Some(c), .. } if c == "invalid_payload"));
    mock.then(Reply::new(410, "channel_is_archived"));
    assert!(matches!(hook.notify(&n).await.unwrap_err(), Error::Provider { transient: false, .. }));
    mock.then(Reply::new(429, "").header("Retry-After", "30"));
    assert!(matches!(hook.notify(&n).await.unwrap_err(),
        Error::Provider { transient: true, retry_after: Some(d), .. } if d == Duration::from_secs(30)));
    mock.then(Reply::new(500, "rollup_error"));
    assert!(matches!(hook.notify(&n).await.unwrap_err(), Error::Provider { transient: true, .. }));
    mock.then(Reply::new(200, "ok").delay(Duration::from_secs(2)));
    assert!(matches!(hook.notify(&n).await.unwrap_err(), Error::Provider { transient: true, .. }), "timeout");

    let api = Mock::start(Reply::new(200, fixture("post_message_ok.json"))).await;
    let b = bot(&api);
    api.then(Reply::new(200, fixture("post_message_invalid_auth.json")));
    let e = b.notify(&n).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    assert!(!format!("{e:?}{b:?}").contains(TOKEN), "the token never shows");
    api.then(Reply::new(200, fixture("post_message_channel_not_found.json")));
    assert!(matches!(b.notify(&n).await.unwrap_err(),
        Error::Provider { transient: false, code: Some(c), .. } if c == "channel_not_found"));
    api.then(Reply::new(429, "").header("Retry-After", "5"));
    assert!(matches!(b.notify(&n).await.unwrap_err(),
        Error::Provider { transient: true, retry_after: Some(d), .. } if d == Duration::from_secs(5)));
    api.then(Reply::new(200, "<html>"));
    assert!(matches!(b.notify(&n).await.unwrap_err(), Error::Provider { transient: true, .. }), "malformed JSON");
}

#[tokio::test]
async fn a_rate_limited_notification_is_retried_at_slacks_time_not_lost() {
    let mock = Mock::start(Reply::new(200, "ok")).await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let account = Account::new("Loja", Utc::now()).unwrap();
    let ev = |t| Event::new(account.id, t, &json!({}), Utc::now());
    store.create_account(&account, &ev(EventType::ACCOUNT_CREATED)).await.unwrap();
    let factory = SlackFactory::new(&mock.base, &mock.base);
    let mut creds = Credentials::new();
    creds.insert("webhook_url", "https://evil.example/hook");
    assert!(factory.validate(&json!({}), Some(&creds)).is_err(), "a webhook URL elsewhere is refused");
    creds.insert("webhook_url", format!("{}services/T/B/X", mock.base));
    factory.validate(&json!({}), Some(&creds)).unwrap();
    let registry = Arc::new(ConnectorRegistry::new(
        vec![Arc::new(factory)],
        Some(Keyring::new(SecretKey::generate("k1").unwrap())),
    ));
    let mut c = Connection::new(account.id, ConnectionKind::SLACK, json!({}), None, Utc::now()).unwrap();
    c.credentials = Some(registry.seal(&c, &creds).unwrap());
    store.put_connection(&c, &ev(EventType::CONNECTION_UPDATED)).await.unwrap();

    let job = NotifyJob { provider: None, notification: Notification::hot_lead("Ana", 90, 70, None) };
    let job = schedule_notification(&*store, account.id, &job, None, Utc::now()).await.unwrap();
    let worker = ConnectorWorker::notify(store.clone(), registry, Arc::new(SystemClock));
    mock.then(Reply::new(429, "").header("Retry-After", "42"));
    assert!(matches!(worker.run(&job).await, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(42)));
    assert_eq!(worker.run(&job).await, Outcome::Done);
    assert_eq!(mock.seen()[1].path, "/services/T/B/X");
}

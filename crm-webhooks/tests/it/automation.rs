//! The automation engine's `call_webhook` job against a receiver on
//! 127.0.0.1: an endpoint target signed with its secret and headers, a URL
//! target, and each answer's outcome (429 with Retry-After, 5xx, 4xx,
//! timeouts, a refused address, a deleted endpoint).

use std::sync::Arc;
use std::time::Duration;

use crm_core::automation::WEBHOOK_JOB;
use crm_core::secrets::{Keyring, SecretKey};
use crm_core::workers::{JobWorker, Outcome};
use crm_core::{Account, Clock, Event, EventType, Job, MemoryStore, Store, SystemClock};
use crm_webhooks::{AddressPolicy, AutomationCaller, NewEndpoint, WebhookSettings, Webhooks};
use serde_json::json;

use crate::receiver::{Receiver, Reply, verifies};

struct Setup {
    hooks: Webhooks,
    caller: AutomationCaller,
    account: Account,
    receiver: Receiver,
}

async fn setup() -> Setup {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let account = Account::new("Loja", SystemClock.now()).expect("account");
    let created = Event::new(account.id, EventType::ACCOUNT_CREATED, &json!({}), SystemClock.now());
    store.create_account(&account, &created).await.expect("account");
    let settings = WebhookSettings {
        timeout: Duration::from_millis(500),
        policy: AddressPolicy::strict().allow_list("127.0.0.0/8").expect("allow-list"),
        ..WebhookSettings::default()
    };
    let keyring = Keyring::new(SecretKey::generate("test").expect("key"));
    let hooks = Webhooks::new(store, keyring).settings(settings);
    let caller = AutomationCaller::new(hooks.clone()).expect("caller");
    Setup { hooks, caller, account, receiver: Receiver::start().await }
}

fn job(s: &Setup, target: serde_json::Value) -> (Job, Event) {
    let event =
        Event::new(s.account.id, EventType::CONTACT_CREATED, &json!({"id": "c1", "name": "Ana"}), SystemClock.now());
    let payload = json!({ "target": target, "event": event });
    (Job::new(WEBHOOK_JOB, Some(s.account.id), payload, SystemClock.now(), SystemClock.now()).expect("job"), event)
}

#[tokio::test]
async fn an_endpoint_target_is_signed_with_its_secret_and_headers() {
    let s = setup().await;
    let input = NewEndpoint {
        url: s.receiver.url(),
        headers: [("x-team".to_owned(), "sales".to_owned())].into(),
        ..NewEndpoint::default()
    };
    let (endpoint, secret) = s.hooks.create_endpoint(s.account.id, input).await.expect("endpoint");
    let (job, event) = job(&s, json!({ "endpoint_id": endpoint.id }));
    assert_eq!(s.caller.kind(), "automation.webhook");
    assert_eq!(s.caller.run(&job).await, Outcome::Done);
    let got = s.receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.header("webhook-id"), event.id.to_string());
    assert_eq!(r.header("x-team"), "sales");
    assert_eq!(r.header("content-type"), "application/json");
    assert!(verifies(r, &secret), "signed with the endpoint's secret");
    let body = r.json();
    assert_eq!(body["type"], "contact.created");
    assert_eq!(body["data"], json!({"id": "c1", "name": "Ana"}));

    s.hooks.delete_endpoint(s.account.id, endpoint.id).await.expect("delete");
    match s.caller.run(&job).await {
        Outcome::Fail { error } => assert!(error.contains("deleted"), "{error}"),
        other => panic!("a deleted endpoint fails the job: {other:?}"),
    }
}

#[tokio::test]
async fn a_url_target_maps_each_answer_to_an_outcome() {
    let s = setup().await;
    let (job, event) = job(&s, json!({ "url": s.receiver.url() }));
    s.receiver.script([
        Reply::status(429).header("retry-after", "7"),
        Reply::status(503),
        Reply::status(404),
        Reply::status(200).delay(Duration::from_secs(2)),
        Reply::status(200),
    ]);
    match s.caller.run(&job).await {
        Outcome::Retry { after, error } => {
            assert_eq!(after, Some(Duration::from_secs(7)), "429 waits its Retry-After");
            assert!(error.contains("429"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.caller.run(&job).await, Outcome::Retry { .. }), "5xx retries");
    assert!(matches!(s.caller.run(&job).await, Outcome::Fail { .. }), "4xx fails");
    match s.caller.run(&job).await {
        Outcome::Retry { error, .. } => assert!(error.contains("timed out"), "{error}"),
        other => panic!("a timeout retries: {other:?}"),
    }
    assert_eq!(s.caller.run(&job).await, Outcome::Done);
    let got = s.receiver.received();
    assert!(got.len() >= 5);
    let last = got.last().expect("a request");
    assert_eq!(last.header("webhook-id"), event.id.to_string(), "the same id on every retry");
    assert_eq!(last.header("webhook-signature"), "", "a bare URL has no secret to sign with");

    let (refused, _) = job_for(&s, "http://169.254.169.254/latest/meta-data");
    match s.caller.run(&refused).await {
        Outcome::Fail { error } => assert!(error.contains("refused"), "{error}"),
        other => panic!("the SSRF guard's refusal is final: {other:?}"),
    }
    let bad = Job::new(WEBHOOK_JOB, Some(s.account.id), json!({"target": 1}), SystemClock.now(), SystemClock.now());
    assert!(matches!(s.caller.run(&bad.expect("job")).await, Outcome::Fail { .. }), "a malformed job fails");
}

fn job_for(s: &Setup, url: &str) -> (Job, Event) {
    job(s, json!({ "url": url }))
}

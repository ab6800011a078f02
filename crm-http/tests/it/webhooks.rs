//! Outbound webhooks through the API, on a real server over SQLite and
//! PostgreSQL: endpoints, signed deliveries to a receiver on 127.0.0.1,
//! attempts, rotation, tests, replay, recover, the event catalog, and the
//! problems every route answers.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use crm_core::Role;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{Api, Harness, create_contact, id};

pub(crate) type Inbox = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on 127.0.0.1 that keeps what it gets and answers 204.
pub(crate) async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let keep = inbox.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().expect("lock").push((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

pub(crate) async fn wait_for(inbox: &Inbox, n: usize) -> Vec<(HeaderMap, Bytes)> {
    for _ in 0..500 {
        let got = inbox.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the receiver got {} requests, expected {n}", inbox.lock().expect("lock").len());
}

fn verifies(secret: &str, (headers, body): &(HeaderMap, Bytes)) -> bool {
    crm_webhooks::Verifier::new(&[secret]).expect("secret").verify(headers, body).is_ok()
}

async fn deliveries(api: &Api, key: &str, endpoint: &str) -> Vec<Value> {
    let page = api.get(&format!("/api/v1/webhooks/deliveries?endpoint_id={endpoint}")).bearer(key).send().await;
    page.ok_json(200)["items"].as_array().cloned().unwrap_or_default()
}

async fn settled(api: &Api, key: &str, endpoint: &str, n: usize) -> Vec<Value> {
    for _ in 0..500 {
        let items = deliveries(api, key, endpoint).await;
        if items.len() >= n && items.iter().all(|d| d["status"] != "pending") {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("deliveries never settled: {:?}", deliveries(api, key, endpoint).await);
}

async fn round_trip(h: &Harness) {
    let (account, key) = h.account(Role::Admin).await;
    let (url, inbox) = receiver().await;
    let api = &h.api;

    // The catalog, and every payload schema it points to is in the document.
    let types = api.get("/api/v1/event-types").bearer(&key).send().await.ok_json(200);
    let items = types["items"].as_array().expect("items");
    let created = items.iter().find(|t| t["name"] == "contact.created").expect("contact.created");
    assert_eq!(created["payload_schema"]["$ref"], "/openapi.json#/components/schemas/Contact");
    let doc = api.get("/openapi.json").send().await.ok_json(200);
    for t in items {
        let text = t["payload_schema"].to_string();
        for r in text.split("#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap_or("");
            assert!(doc["components"]["schemas"].get(name).is_some(), "{name} is in the document");
        }
    }
    assert!(doc["paths"].get("/api/v1/webhooks/endpoints/{id}/rotate-secret").is_some());

    // Refusals: internal addresses, bad bodies, roles.
    let refused = api
        .post("/api/v1/webhooks/endpoints")
        .bearer(&key)
        .json(json!({ "url": "http://169.254.169.254/" }))
        .send()
        .await;
    assert_eq!(refused.problem(422, "validation")["field"], "url");
    let unknown =
        api.post("/api/v1/webhooks/endpoints").bearer(&key).json(json!({ "url": url, "id": "x" })).send().await;
    unknown.expect(422);
    let broken =
        api.post("/api/v1/webhooks/endpoints").bearer(&key).raw("application/json", b"{".to_vec()).send().await;
    broken.expect(400);
    let viewer = h.key(account, Role::Viewer).await;
    api.get("/api/v1/webhooks/endpoints").bearer(&viewer).send().await.expect(403);

    // Create; the secret is shown once.
    let body =
        json!({ "url": url, "description": "orders", "event_types": ["contact.*"], "headers": { "X-Team": "crm" } });
    let made = api.post("/api/v1/webhooks/endpoints").bearer(&key).json(body).send().await;
    let made_json = made.ok_json(201);
    let secret = made_json["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    let endpoint = id(&made_json["endpoint"]);
    assert_eq!(made.header("location"), Some(format!("/api/v1/webhooks/endpoints/{endpoint}")));
    let shown = api.get(&format!("/api/v1/webhooks/endpoints/{endpoint}")).bearer(&key).send().await;
    assert!(!shown.text().contains(&secret[6..]), "the secret is not shown again");
    let listed = api.get("/api/v1/webhooks/endpoints").bearer(&key).send().await.ok_json(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    // A contact created through the API reaches the receiver, signed.
    let contact = create_contact(api, &key, "Ana", 1).await;
    let got = wait_for(&inbox, 1).await;
    assert!(verifies(&secret, &got[0]));
    assert_eq!(got[0].0.get("x-team").and_then(|v| v.to_str().ok()), Some("crm"));
    let payload: Value = serde_json::from_slice(&got[0].1).expect("json");
    assert_eq!((payload["type"].as_str(), &payload["data"]["id"]), (Some("contact.created"), &contact["id"]));
    let ds = settled(api, &key, &endpoint, 1).await;
    assert_eq!((ds[0]["status"].as_str(), ds[0]["attempts"].as_u64()), (Some("succeeded"), Some(1)));
    let attempts = api.get(&format!("/api/v1/webhooks/deliveries/{}/attempts", id(&ds[0]))).bearer(&key).send().await;
    assert_eq!(attempts.ok_json(200)["items"][0]["status_code"], 204);

    // A test event, whatever the filter.
    let test = api.post(&format!("/api/v1/webhooks/endpoints/{endpoint}/test")).bearer(&key).send().await.ok_json(202);
    assert_eq!(test["event_type"], "webhook.test");
    let got = wait_for(&inbox, 2).await;
    assert!(verifies(&secret, &got[1]));

    // Rotation: both secrets sign during the overlap.
    let rotate = api
        .post(&format!("/api/v1/webhooks/endpoints/{endpoint}/rotate-secret"))
        .bearer(&key)
        .json(json!({ "overlap_secs": 600 }))
        .send()
        .await
        .ok_json(200);
    let new_secret = rotate["secret"].as_str().expect("secret").to_owned();
    assert!(rotate["endpoint"]["rotating_until"].is_string());
    create_contact(api, &key, "Bia", 2).await;
    let got = wait_for(&inbox, 3).await;
    assert!(verifies(&new_secret, &got[2]) && verifies(&secret, &got[2]));
    let too_long = api
        .post(&format!("/api/v1/webhooks/endpoints/{endpoint}/rotate-secret"))
        .bearer(&key)
        .json(json!({ "overlap_secs": 99_999_999 }))
        .send()
        .await;
    too_long.problem(422, "validation");

    // Optimistic updates.
    let version = rotate["endpoint"]["version"].as_i64().expect("version");
    let stale = api
        .patch(&format!("/api/v1/webhooks/endpoints/{endpoint}"))
        .bearer(&key)
        .json(json!({ "version": version - 1, "description": "x" }))
        .send()
        .await;
    stale.problem(409, "conflict");
    let patched = api
        .patch(&format!("/api/v1/webhooks/endpoints/{endpoint}"))
        .bearer(&key)
        .json(json!({ "version": version, "description": "new" }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(patched["description"], "new");

    // Replay and recover.
    let replayed =
        api.post(&format!("/api/v1/webhooks/deliveries/{}/replay", id(&ds[0]))).bearer(&key).send().await.ok_json(202);
    assert_eq!(replayed["status"], "pending");
    let got = wait_for(&inbox, 4).await;
    assert_eq!(got[3].0.get("webhook-id"), got[0].0.get("webhook-id"), "a replay keeps the webhook-id");
    let recovered = api
        .post(&format!("/api/v1/webhooks/endpoints/{endpoint}/recover"))
        .bearer(&key)
        .json(json!({ "since": "2020-01-01T00:00:00Z" }))
        .send()
        .await
        .ok_json(202);
    assert_eq!(recovered["replayed"], 0, "nothing failed");

    // Missing things are 404s; malformed ids are problems, never 500s.
    let missing = crm_core::WebhookEndpointId::new();
    api.get(&format!("/api/v1/webhooks/endpoints/{missing}")).bearer(&key).send().await.problem(404, "not-found");
    let bad = api.get("/api/v1/webhooks/deliveries/not-an-id").bearer(&key).send().await;
    assert!(bad.json()["status"].as_u64().is_some_and(|s| (400..500).contains(&s)), "{}", bad.text());
    api.get("/api/v1/webhooks/deliveries?status=lost").bearer(&key).send().await.expect(400);
    api.delete(&format!("/api/v1/webhooks/endpoints/{endpoint}")).bearer(&key).send().await.expect(204);
    api.delete(&format!("/api/v1/webhooks/endpoints/{endpoint}")).bearer(&key).send().await.problem(404, "not-found");
}

pub(crate) fn allow_loopback(c: &mut crm_http::Config) {
    c.webhooks.allow_networks = vec!["127.0.0.0/8".into()];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_round_trip_on_sqlite() {
    let h = Harness::sqlite_with(allow_loopback).await;
    round_trip(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_round_trip_on_postgres() {
    let Some(h) = Harness::postgres_with("webhooks_round_trip_on_postgres", allow_loopback).await else { return };
    round_trip(&h).await;
    h.stop().await;
}

//! Channels through the API, the queued send with `Idempotency-Key`, and
//! an app plugging its own messenger, worker and routes into the server.

use async_trait::async_trait;
use axum::http::StatusCode;
use crm_core::secrets::Credentials;
use crm_core::workers::{EventWorker, JobWorker, Outcome, WorkerOptions};
use crm_core::{
    Capabilities, Channel, Error, Event, EventFilter, Health, HealthCheck, Job, Messenger, MessengerFactory,
    OutboundMessage, Result, Role, SendReceipt,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{Api, Harness, create_contact, id};

/// Channel CRUD, write-only credentials, defaults, validation, roles,
/// sending through a chosen channel, and tenancy.
pub async fn channels_crud(h: &Harness) {
    let api = &h.api;
    let (_, admin) = h.account(Role::Admin).await;
    let (_, viewer) = {
        let (a, _) = h.account(Role::Admin).await;
        (a, h.key(a, Role::Viewer).await)
    };
    let kinds = api.get("/api/v1/channel-kinds").bearer(&admin).send().await.ok_json(200);
    assert!(kinds["kinds"].as_array().unwrap().contains(&json!("recording")), "{kinds}");

    let listed = api.get("/api/v1/channels").bearer(&admin).send().await.ok_json(200);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the account's recording channel: {listed}");
    let first = id(&items[0]);
    assert_eq!(items[0]["is_default"], true);
    assert_eq!(items[0]["state"], "active");

    let created = api
        .post("/api/v1/channels")
        .bearer(&admin)
        .json(json!({
            "kind": "recording", "name": "Loja Centro", "provider_id": "555000111",
            "credentials": { "access_token": "EAAG-s3cret-token" },
            "pacing": { "per_second": 20, "warmup": [{ "day": 0, "cap": 250 }, { "day": 7, "cap": 1000 }] },
            "settings": { "display_phone": "+55 11 4000-0000" }
        }))
        .send()
        .await;
    let c = created.ok_json(201);
    assert!(!created.text().contains("EAAG-s3cret-token"), "credentials are never returned");
    assert_eq!(created.header("location"), Some(format!("/api/v1/channels/{}", id(&c))));
    assert_eq!(c["has_credentials"], true);
    assert!(c["credentials_key_id"].is_string(), "{c}");
    assert_eq!(c["is_default"], false, "the account already had a default");
    assert_eq!(c["pacing"]["warmup"][1]["cap"], 1000);
    let cid = id(&c);

    let got = api.get(&format!("/api/v1/channels/{cid}")).bearer(&admin).send().await;
    let got_body = got.ok_json(200);
    assert!(!got.text().contains("EAAG-s3cret-token"));
    assert_eq!(got_body["health"], "degraded", "the recording provider delivers nothing: {got_body}");
    assert_eq!(got_body["settings"]["display_phone"], "+55 11 4000-0000");

    // Validation and conflicts.
    let p = api
        .post("/api/v1/channels")
        .bearer(&admin)
        .json(json!({ "kind": "telegram", "name": "x" }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "kind");
    api.post("/api/v1/channels")
        .bearer(&admin)
        .json(json!({ "kind": "recording", "name": "x", "pacing": { "per_second": 0 } }))
        .send()
        .await
        .problem(422, "validation");
    api.post("/api/v1/channels")
        .bearer(&admin)
        .json(json!({ "kind": "recording", "name": "x", "id": uuid::Uuid::now_v7() }))
        .send()
        .await
        .problem(422, "validation");
    api.post("/api/v1/channels")
        .bearer(&admin)
        .json(json!({ "kind": "recording", "name": "Dup", "provider_id": "555000111" }))
        .send()
        .await
        .problem(409, "conflict");
    api.post("/api/v1/channels")
        .bearer(&viewer)
        .json(json!({ "kind": "recording", "name": "x" }))
        .send()
        .await
        .problem(403, "forbidden");

    // Defaults move; the default cannot be unset directly.
    let made_default = api
        .patch(&format!("/api/v1/channels/{cid}"))
        .bearer(&admin)
        .json(json!({ "is_default": true, "name": "Loja Centro (principal)" }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(made_default["is_default"], true);
    assert_eq!(made_default["version"], 1);
    let old = api.get(&format!("/api/v1/channels/{first}")).bearer(&admin).send().await.ok_json(200);
    assert_eq!(old["is_default"], false);
    let p = api
        .patch(&format!("/api/v1/channels/{cid}"))
        .bearer(&admin)
        .json(json!({ "is_default": false }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "is_default");
    let cleared = api
        .patch(&format!("/api/v1/channels/{cid}"))
        .bearer(&admin)
        .json(json!({ "credentials": null }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(cleared["has_credentials"], false);

    // Sending goes through the default, or the channel named.
    let contact = create_contact(api, &admin, "Ana", 71).await;
    let m = api
        .post("/api/v1/messages")
        .bearer(&admin)
        .json(json!({ "contact_id": id(&contact), "text": "pelo padrão" }))
        .send()
        .await
        .ok_json(202);
    assert_eq!(m["channel_id"], json!(cid));
    let m = api
        .post("/api/v1/messages")
        .bearer(&admin)
        .json(json!({ "contact_id": id(&contact), "text": "pelo outro", "channel_id": first }))
        .send()
        .await
        .ok_json(202);
    assert_eq!(m["channel_id"], json!(first));
    assert_eq!(api.settled_message(&admin, &id(&m)).await["status"], "sent");
    api.patch(&format!("/api/v1/channels/{first}"))
        .bearer(&admin)
        .json(json!({ "enabled": false }))
        .send()
        .await
        .ok_json(200);
    let p = api
        .post("/api/v1/messages")
        .bearer(&admin)
        .json(json!({ "contact_id": id(&contact), "text": "x", "channel_id": first }))
        .send()
        .await
        .problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("disabled"), "{p}");

    // Tenancy: another account sees nothing.
    for (method, path) in [("GET", format!("/api/v1/channels/{cid}")), ("DELETE", format!("/api/v1/channels/{cid}"))] {
        let call = api.call(method.parse().unwrap(), &path).bearer(&viewer);
        call.send()
            .await
            .problem(if method == "GET" { 404 } else { 403 }, if method == "GET" { "not-found" } else { "forbidden" });
    }
    let (_, other_admin) = h.account(Role::Admin).await;
    api.delete(&format!("/api/v1/channels/{cid}")).bearer(&other_admin).send().await.problem(404, "not-found");

    // Deleting the default promotes the oldest remaining channel.
    api.delete(&format!("/api/v1/channels/{cid}")).bearer(&admin).send().await.expect(204);
    api.get(&format!("/api/v1/channels/{cid}")).bearer(&admin).send().await.problem(404, "not-found");
    let left = api.get("/api/v1/channels").bearer(&admin).send().await.ok_json(200);
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    assert_eq!(left["items"][0]["is_default"], true);
}

/// `Idempotency-Key`: a retried POST returns the first message, concurrent
/// ones create one, a reused key with another body is 409.
pub async fn idempotent_sends(api: &Api, token: &str, n: u32) {
    let contact = create_contact(api, token, "Bia", n).await;
    let body = json!({ "contact_id": id(&contact), "text": "Seu pedido saiu" });
    let post =
        |key: &str, body: Value| api.post("/api/v1/messages").bearer(token).header("idempotency-key", key).json(body);
    let first = post("pedido-42", body.clone()).send().await;
    let m1 = first.ok_json(202);
    assert_eq!(first.header("idempotent-replayed").as_deref(), Some("false"));
    let again = post("pedido-42", body.clone()).send().await;
    let m2 = again.ok_json(202);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(id(&m1), id(&m2));
    assert_eq!(m2["client_reference"], "pedido-42");
    post("pedido-42", json!({ "contact_id": id(&contact), "text": "outro texto" }))
        .send()
        .await
        .problem(409, "conflict");
    let p = post("tem espaço", body.clone()).send().await.problem(422, "validation");
    assert_eq!(p["field"], "Idempotency-Key");

    let concurrent: Vec<_> = (0..12)
        .map(|_| {
            let api = api.clone();
            let token = token.to_owned();
            let body = json!({ "contact_id": id(&contact), "text": "corrida" });
            tokio::spawn(async move {
                api.post("/api/v1/messages")
                    .bearer(&token)
                    .header("idempotency-key", "corrida-1")
                    .json(body)
                    .send()
                    .await
                    .ok_json(202)
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for t in concurrent {
        ids.insert(id(&t.await.unwrap()));
    }
    assert_eq!(ids.len(), 1, "twelve concurrent requests with one key make one message");
    let thread =
        api.get(&format!("/api/v1/contacts/{}/messages", id(&contact))).bearer(token).send().await.ok_json(200);
    assert_eq!(thread["items"].as_array().unwrap().len(), 2);
    assert_eq!(api.settled_message(token, &id(&m1)).await["status"], "sent");
}

#[tokio::test]
async fn channels_in_memory() {
    let h = Harness::memory().await;
    channels_crud(&h).await;
}

#[tokio::test]
async fn channels_on_sqlite() {
    let h = Harness::sqlite().await;
    channels_crud(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn channels_on_postgres() {
    let Some(h) = Harness::postgres("channels_on_postgres").await else { return };
    channels_crud(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn idempotency_in_memory() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Agent).await;
    idempotent_sends(&h.api, &token, 80).await;
}

#[tokio::test]
async fn idempotency_on_sqlite() {
    let h = Harness::sqlite().await;
    let (_, token) = h.account(Role::Agent).await;
    idempotent_sends(&h.api, &token, 81).await;
    h.stop().await;
}

#[tokio::test]
async fn idempotency_on_postgres() {
    let Some(h) = Harness::postgres("idempotency_on_postgres").await else { return };
    let (_, token) = h.account(Role::Agent).await;
    idempotent_sends(&h.api, &token, 82).await;
    h.stop().await;
}

// ----- an app plugging in its own adapters ----------------------------------------------

/// The app's provider: remembers what it was asked to send.
#[derive(Debug, Clone, Default)]
struct AcmeGateway(Arc<Mutex<Vec<OutboundMessage>>>);

#[async_trait]
impl HealthCheck for AcmeGateway {
    fn name(&self) -> &str {
        "acme"
    }
    async fn check(&self) -> Health {
        Health::healthy(Duration::ZERO)
    }
}

#[async_trait]
impl Messenger for AcmeGateway {
    fn provider(&self) -> &str {
        "acme"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::everything()
    }
    async fn send(&self, m: &OutboundMessage) -> Result<SendReceipt> {
        self.0.lock().unwrap().push(m.clone());
        Ok(SendReceipt { provider_message_id: format!("acme-{}", m.message_id) })
    }
}

#[derive(Debug)]
struct AcmeFactory(AcmeGateway);

#[async_trait]
impl MessengerFactory for AcmeFactory {
    fn kind(&self) -> &str {
        "acme"
    }
    fn validate(&self, _channel: &Channel, credentials: Option<&Credentials>) -> Result<()> {
        match credentials {
            Some(c) if c.get("api_key").is_some() => Ok(()),
            _ => Err(Error::validation("credentials.api_key", "the Acme gateway needs an api_key")),
        }
    }
    async fn build(&self, _channel: &Channel, credentials: Credentials) -> Result<Arc<dyn Messenger>> {
        assert_eq!(credentials.get("api_key"), Some("acme-key"), "the factory gets the opened credentials");
        Ok(Arc::new(self.0.clone()))
    }
}

/// An audit worker on `contact.created` that fails until told otherwise.
#[derive(Debug, Default)]
struct Audit {
    healthy: std::sync::atomic::AtomicBool,
    seen: AtomicU32,
}

#[async_trait]
impl EventWorker for Audit {
    fn name(&self) -> &str {
        "audit"
    }
    fn events(&self) -> EventFilter {
        EventFilter::only(["contact.*"]).unwrap()
    }
    async fn handle(&self, _event: &Event, _attempt: u32, _previous: Option<&str>) -> Outcome {
        self.seen.fetch_add(1, Ordering::SeqCst);
        if self.healthy.load(Ordering::SeqCst) {
            Outcome::Done
        } else {
            Outcome::Fail { error: "audit log is down".into() }
        }
    }
}

/// A job worker whose jobs fail the first time.
#[derive(Debug, Default)]
struct Report {
    runs: AtomicU32,
}

#[async_trait]
impl JobWorker for Report {
    fn kind(&self) -> &str {
        "report"
    }
    async fn run(&self, _job: &Job) -> Outcome {
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            Outcome::Fail { error: "no data yet".into() }
        } else {
            Outcome::Done
        }
    }
}

fn fast() -> WorkerOptions {
    WorkerOptions { poll: Duration::from_millis(10), max_poll: Duration::from_millis(50), ..WorkerOptions::default() }
}

#[tokio::test]
async fn an_app_plugs_in_its_messenger_workers_and_routes() {
    let gateway = AcmeGateway::default();
    let audit = Arc::new(Audit::default());
    let report = Arc::new(Report::default());
    let hooks = axum::Router::new().route(
        "/hooks/acme",
        axum::routing::post(|axum::extract::State(state): axum::extract::State<crm_http::AppState>| async move {
            // Inbound routes reach the service through the state.
            let kinds = state.crm().channel_kinds().join(",");
            (StatusCode::OK, kinds)
        }),
    );
    let h = Harness::sqlite_builder(
        |_| {},
        |b| {
            b.messenger_factory(Arc::new(AcmeFactory(gateway.clone())))
                .event_worker(audit.clone(), fast())
                .job_worker(report.clone(), fast())
                .routes(hooks)
        },
    )
    .await;
    let key = h.server.as_ref().unwrap().admin_key.clone();
    let account = h.server.as_ref().unwrap().account_id;

    // The app's route is served outside /api/v1 authentication.
    let r = h.api.post("/hooks/acme").send().await;
    r.expect(200);
    let mut expected = vec!["acme", "recording"];
    if cfg!(feature = "whatsapp-cloud") {
        expected.push("whatsapp-cloud");
    }
    if cfg!(feature = "whatsapp-web") {
        expected.push("whatsapp-web");
    }
    assert_eq!(r.text(), expected.join(","), "the app's kind beside the built-in ones");

    // Its channel kind validates its own credentials and sends.
    h.api
        .post("/api/v1/channels")
        .bearer(&key)
        .json(json!({ "kind": "acme", "name": "Acme" }))
        .send()
        .await
        .problem(422, "validation");
    let ch = h
        .api
        .post("/api/v1/channels")
        .bearer(&key)
        .json(json!({ "kind": "acme", "name": "Acme", "credentials": { "api_key": "acme-key" }, "is_default": true }))
        .send()
        .await
        .ok_json(201);
    let contact = create_contact(&h.api, &key, "Caio", 90).await;
    let m = h
        .api
        .post("/api/v1/messages")
        .bearer(&key)
        .json(json!({ "contact_id": id(&contact), "text": "via Acme" }))
        .send()
        .await
        .ok_json(202);
    assert_eq!(m["channel_id"], ch["id"]);
    let m = h.api.settled_message(&key, &id(&m)).await;
    assert_eq!(m["status"], "sent");
    assert_eq!(m["provider_message_id"], format!("acme-{}", id(&m)));
    assert_eq!(gateway.0.lock().unwrap().len(), 1);

    // The audit worker failed: its dead letter is listed, then replayed.
    let dead = loop_until(|| async {
        let d = h.api.get("/api/v1/dead-letters?consumer=audit").bearer(&key).send().await.ok_json(200);
        (!d["items"].as_array().unwrap().is_empty()).then_some(d)
    })
    .await;
    let item = &dead["items"][0];
    assert_eq!(item["error"], "audit log is down");
    assert_eq!(item["event"]["type"], "contact.created");
    let event_id = item["event"]["id"].as_str().unwrap().to_owned();
    audit.healthy.store(true, Ordering::SeqCst);
    h.api.post(&format!("/api/v1/dead-letters/audit/{event_id}/replay")).bearer(&key).send().await.expect(204);
    loop_until(|| async {
        let d = h.api.get("/api/v1/dead-letters?consumer=audit").bearer(&key).send().await.ok_json(200);
        d["items"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    h.api
        .post(&format!("/api/v1/dead-letters/audit/{event_id}/replay"))
        .bearer(&key)
        .send()
        .await
        .problem(404, "not-found");
    let replayed = h
        .api
        .post("/api/v1/dead-letters/audit/replay")
        .bearer(&key)
        .json(json!({ "since": "2020-01-01T00:00:00Z" }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(replayed["replayed"], 0);

    // A durable job fails once (dead), is listed, replayed, and runs.
    let job = Job::new("report", Some(account), json!({ "month": "2026-11" }), chrono::Utc::now(), chrono::Utc::now())
        .unwrap();
    h.crm().store().schedule_job(&job).await.unwrap();
    let dead_jobs = loop_until(|| async {
        let d = h.api.get("/api/v1/jobs?state=dead").bearer(&key).send().await.ok_json(200);
        (!d["items"].as_array().unwrap().is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dead_jobs["items"][0]["last_error"], "no data yet");
    let jid = job.id.to_string();
    let replayed = h.api.post(&format!("/api/v1/jobs/{jid}/replay")).bearer(&key).send().await.ok_json(200);
    assert_eq!(replayed["state"], "scheduled");
    loop_until(|| async {
        let r = h.api.get(&format!("/api/v1/jobs/{jid}")).bearer(&key).send().await;
        (r.status.as_u16() == 404).then_some(())
    })
    .await;
    assert_eq!(report.runs.load(Ordering::SeqCst), 2);
    let (_, agent) = h.account(Role::Agent).await;
    h.api.get("/api/v1/dead-letters").bearer(&agent).send().await.problem(403, "forbidden");

    let metrics = h.api.get("/metrics").send().await.text();
    assert!(
        metrics.contains("crm_worker_items_total{worker=\"outbox:audit\",result=\"dead_lettered\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("crm_worker_items_total{worker=\"jobs:report\",result=\"done\"} 1"), "{metrics}");
    h.stop().await;
}

async fn loop_until<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..500 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached within 10 s");
}

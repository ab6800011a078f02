//! The n8n adapter against a local mock of n8n (an axum app on 127.0.0.1)
//! that asserts each request (method, path, `X-N8N-API-KEY`, body, the
//! Standard Webhooks signature) and answers with n8n's documented shapes
//! (fixtures from its public API's OpenAPI document), its errors (401, 404
//! with n8n's "webhook is not registered" body, 429 with Retry-After, 500)
//! and a timeout.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crm_connectors::n8n::N8n;
use crm_core::ports::workflows::Workflows;
use crm_core::workers::{JobWorker, Outcome, WORKFLOW_TRIGGER_JOB, WorkflowTrigger};
use crm_core::{Error, HealthCheck, HealthStatus, Job};
use crm_webhooks::Verifier;
use crm_webhooks::signing::SigningSecret;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "n8n_api_test-key-0123";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Default)]
struct Mock {
    /// (method, path, body) of every request that reached a handler.
    seen: Arc<Mutex<Vec<(String, String, Value)>>>,
    active: Arc<Mutex<HashMap<String, bool>>>,
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/n8n/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unauthorized(h: &HeaderMap) -> Option<Response> {
    if h.get("x-n8n-api-key").and_then(|v| v.to_str().ok()) == Some(KEY) {
        return None;
    }
    Some(
        (StatusCode::UNAUTHORIZED, axum::Json(json!({ "message": "'X-N8N-API-KEY' header required" }))).into_response(),
    )
}

async fn list(State(m): State<Mock>, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    m.seen.lock().unwrap().push(("GET".into(), "/api/v1/workflows".into(), json!(q)));
    let page = if q.contains_key("cursor") { fixture("page2") } else { fixture("page1") };
    axum::Json(page).into_response()
}

fn workflow(m: &Mock, id: &str) -> Option<Value> {
    if id != "wf1AbCdEfGhIjKlM" {
        return None;
    }
    let mut w = fixture("workflow");
    w["active"] = json!(m.active.lock().unwrap().get(id).copied().unwrap_or(false));
    Some(w)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({ "message": "Not Found" }))).into_response()
}

async fn get_one(State(m): State<Mock>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    m.seen.lock().unwrap().push(("GET".into(), format!("/api/v1/workflows/{id}"), Value::Null));
    workflow(&m, &id).map_or_else(not_found, |w| axum::Json(w).into_response())
}

async fn switch(State(m): State<Mock>, h: HeaderMap, Path((id, action)): Path<(String, String)>) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    m.seen.lock().unwrap().push(("POST".into(), format!("/api/v1/workflows/{id}/{action}"), Value::Null));
    if workflow(&m, &id).is_none() || !matches!(action.as_str(), "activate" | "deactivate") {
        return not_found();
    }
    m.active.lock().unwrap().insert(id.clone(), action == "activate");
    axum::Json(workflow(&m, &id).unwrap()).into_response()
}

async fn webhook(State(m): State<Mock>, h: HeaderMap, Path(path): Path<String>, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    m.seen.lock().unwrap().push(("POST".into(), format!("/webhook/{path}"), parsed));
    match path.as_str() {
        "crm-lead" => {
            // n8n's own webhook node does not check signatures; the workflow
            // does (a Code node). The mock checks what crm sent.
            let verifier = Verifier::new(&[SECRET]).unwrap();
            if verifier.verify(&h, &body).is_err() {
                return (StatusCode::FORBIDDEN, "bad signature").into_response();
            }
            axum::Json(json!({ "message": "Workflow was started" })).into_response()
        }
        "busy" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            axum::Json(json!({ "message": "Too many requests" })),
        )
            .into_response(),
        "broken" => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "message": "Error in workflow" }))).into_response()
        }
        // The suite's webhook: registered only while its workflow is active,
        // as n8n's production webhooks are.
        "suite-hook" if m.active.lock().unwrap().get("wf1AbCdEfGhIjKlM").copied().unwrap_or(false) => {
            axum::Json(json!({ "message": "Workflow was started" })).into_response()
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK.into_response()
        }
        other => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "code": 404,
                "message": format!("The requested webhook \"POST {other}\" is not registered."),
                "hint": "The workflow must be active for a production URL to run successfully."
            })),
        )
            .into_response(),
    }
}

async fn start() -> (String, Mock) {
    let mock = Mock::default();
    let app = Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .route("/api/v1/workflows", get(list))
        .route("/api/v1/workflows/{id}", get(get_one))
        .route("/api/v1/workflows/{id}/{action}", post(switch))
        .route("/webhook/{*path}", post(webhook))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), mock)
}

fn client(base: &str) -> N8n {
    N8n::builder()
        .base_url(base)
        .api_key(KEY)
        .webhook_secret(SigningSecret::parse(SECRET).unwrap())
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap()
}

#[tokio::test]
async fn triggers_are_signed_json_posts_to_the_webhook() {
    let (base, mock) = start().await;
    let n8n = client(&base);
    let event = json!({ "type": "contact.created", "timestamp": "2026-11-30T12:00:00Z", "data": { "id": "c1" } });
    let answer = n8n.trigger("crm-lead", &event).await.unwrap();
    assert_eq!(answer, json!({ "message": "Workflow was started" }));
    // An absolute URL on n8n's host works too; another host is refused.
    n8n.trigger(&format!("{base}/webhook/crm-lead"), &event).await.unwrap();
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|(m, p, b)| m == "POST" && p == "/webhook/crm-lead" && *b == event), "{seen:?}");
    for bad in ["http://10.0.0.1:5678/webhook/x", "../etc", "a b", "", "x?y=1"] {
        assert!(matches!(n8n.trigger(bad, &event).await, Err(Error::Validation { .. })), "{bad}");
    }
    // A wrong secret fails the receiver's check (403: permanent).
    let wrong = N8n::builder().base_url(&base).webhook_secret(SigningSecret::generate().unwrap()).build().unwrap();
    let e = wrong.trigger("crm-lead", &event).await.unwrap_err();
    assert!(matches!(e, Error::Provider { transient: false, .. }), "{e:?}");
}

#[tokio::test]
async fn trigger_errors_map_to_retryable_or_permanent() {
    let (base, _) = start().await;
    let n8n = client(&base);
    let event = json!({ "type": "x.y" });
    let e = n8n.trigger("not-there", &event).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    match n8n.trigger("busy", &event).await.unwrap_err() {
        Error::Provider { transient: true, retry_after, code, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert_eq!(code.as_deref(), Some("429"));
        }
        e => panic!("{e:?}"),
    }
    let e = n8n.trigger("broken", &event).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { transient: true, .. }), "{e:?}");
    assert!(e.to_string().contains("Error in workflow"), "n8n's message is kept: {e}");
    let e = n8n.trigger("slow", &event).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { transient: true, .. }) && e.to_string().contains("did not answer"), "{e:?}");
    // Nothing listens: transient.
    let dead = N8n::builder().base_url("http://127.0.0.1:9").build().unwrap();
    assert!(matches!(dead.trigger("crm-lead", &event).await, Err(Error::Provider { transient: true, .. })));
}

#[tokio::test]
async fn the_job_worker_retries_transient_failures_and_buries_the_rest() {
    let (base, mock) = start().await;
    let worker = WorkflowTrigger::new(Arc::new(client(&base)));
    let job = |workflow: &str| {
        let payload = json!({ "workflow": workflow, "event": { "type": "contact.created", "data": { "id": "c1" } } });
        Job::new(WORKFLOW_TRIGGER_JOB, None, payload, chrono::Utc::now(), chrono::Utc::now()).unwrap()
    };
    assert_eq!(worker.run(&job("crm-lead")).await, Outcome::Done);
    assert_eq!(mock.seen.lock().unwrap()[0].2["data"]["id"], "c1");
    match worker.run(&job("busy")).await {
        Outcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(7))),
        o => panic!("{o:?}"),
    }
    assert!(matches!(worker.run(&job("broken")).await, Outcome::Retry { .. }));
    // n8n's 404 (a workflow inactive or still activating): retried soon, up to the attempts.
    match worker.run(&job("not-there")).await {
        Outcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(2))),
        o => panic!("{o:?}"),
    }
    let no_workflow = Job::new(
        WORKFLOW_TRIGGER_JOB,
        None,
        json!({ "event": { "type": "contact.created" } }),
        chrono::Utc::now(),
        chrono::Utc::now(),
    )
    .unwrap();
    assert!(matches!(worker.run(&no_workflow).await, Outcome::Fail { .. }), "a bad payload is buried");
}

#[tokio::test]
async fn workflows_are_listed_read_switched_and_exported_with_the_api_key() {
    let (base, mock) = start().await;
    let n8n = client(&base);
    let first = n8n.list_workflows(None, 1).await.unwrap();
    assert_eq!(first.items.len(), 1);
    let w = &first.items[0];
    assert_eq!((w.id.as_str(), w.name.as_str(), w.active), ("wf1AbCdEfGhIjKlM", "Lead qualification", false));
    assert_eq!(w.tags, vec!["crm".to_owned()]);
    assert!(w.created_at.is_some());
    let cursor = first.next_cursor.unwrap();
    let second = n8n.list_workflows(Some(&cursor), 1).await.unwrap();
    assert_eq!(second.items[0].name, "Follow-up Email Sequence");
    assert!(second.next_cursor.is_none());
    {
        let seen = mock.seen.lock().unwrap();
        assert_eq!(seen[0].2, json!({ "limit": "1" }));
        assert_eq!(seen[1].2, json!({ "limit": "1", "cursor": cursor }));
    }
    assert!(matches!(n8n.list_workflows(None, 0).await, Err(Error::Validation { .. })));
    assert!(matches!(n8n.list_workflows(None, 251).await, Err(Error::Validation { .. })));

    assert!(n8n.activate("wf1AbCdEfGhIjKlM").await.unwrap().active);
    assert!(n8n.get_workflow("wf1AbCdEfGhIjKlM").await.unwrap().active);
    assert!(!n8n.deactivate("wf1AbCdEfGhIjKlM").await.unwrap().active);
    let export = n8n.export_workflow("wf1AbCdEfGhIjKlM").await.unwrap();
    assert_eq!(export["nodes"][0]["parameters"]["path"], "crm-lead", "the whole definition");
    assert!(matches!(n8n.get_workflow("nope1234").await, Err(Error::NotFound { .. })));
    assert!(matches!(n8n.activate("nope1234").await, Err(Error::NotFound { .. })));
    for bad in ["", "../x", "a/b", "a b"] {
        assert!(matches!(n8n.get_workflow(bad).await, Err(Error::Validation { .. })), "{bad:?}");
    }

    // A refused key is a configuration error that does not echo the key.
    let wrong = N8n::builder().base_url(&base).api_key("wrong-key-secret").build().unwrap();
    let e = wrong.list_workflows(None, 10).await.unwrap_err();
    assert!(matches!(&e, Error::Config { .. }), "{e:?}");
    assert!(!e.to_string().contains("wrong-key-secret"));
    assert!(!format!("{wrong:?}").contains("wrong-key-secret"), "Debug redacts the key");
    // No key at all: the API is unavailable, triggers still work.
    let keyless = N8n::builder().base_url(&base).build().unwrap();
    assert!(matches!(keyless.get_workflow("wf1AbCdEfGhIjKlM").await, Err(Error::Config { .. })));
}

#[tokio::test]
async fn health_probes_healthz() {
    let (base, _) = start().await;
    let h = client(&base).check().await;
    assert_eq!(h.status, HealthStatus::Healthy, "{h:?}");
    let down = N8n::builder().base_url("http://127.0.0.1:9").build().unwrap().check().await;
    assert_eq!(down.status, HealthStatus::Unhealthy);
    let wrong_path = N8n::builder().base_url(format!("{base}/nothing-here")).build().unwrap().check().await;
    assert_eq!(wrong_path.status, HealthStatus::Unhealthy);
    assert!(N8n::builder().base_url("ftp://x").build().is_err());
    assert!(N8n::builder().build().is_err());
}

#[test]
fn signatures_match_the_standard_webhooks_vector() {
    // https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    let s = SigningSecret::parse(SECRET).unwrap();
    let sig = s.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

#[tokio::test]
async fn the_adapter_over_the_mock_passes_the_workflows_suite() {
    let (base, _mock) = start().await;
    let fixture = crm_core::testing::workflows::WorkflowsFixture::new("wf1AbCdEfGhIjKlM", "suite-hook");
    crm_core::testing::workflows::run_all(&client(&base), &fixture).await;
}

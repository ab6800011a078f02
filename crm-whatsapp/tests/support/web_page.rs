//! A local stand-in for WhatsApp Web on 127.0.0.1 (the page in
//! `fixtures/whatsapp-web/page.html`): serves the page with the release it
//! claims, queues commands the page polls, and records what the page sent.

#![allow(dead_code, reason = "each test uses part of the stand-in")]

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const PAGE: &str = include_str!("../../fixtures/whatsapp-web/page.html");

#[derive(Debug, Default)]
struct Inner {
    version: String,
    commands: Vec<Value>,
    sent: Vec<Value>,
    seen: Vec<Value>,
    loads: u32,
    send_result: String,
    /// Group operations the page carried out (create, subject, add, …).
    group_ops: Vec<Value>,
    /// Identity: the numbers on WhatsApp (`None`: every number), and the
    /// numbers the page asked about.
    registered: Option<Vec<String>>,
    exists_queries: Vec<String>,
    /// Media: the files the page uploaded (type, MIME type, bytes).
    uploads: Vec<(String, String, Vec<u8>)>,
    /// Pairing by code: the phones codes were asked for.
    pairing_requests: Vec<String>,
}

/// The running stand-in.
#[derive(Debug, Clone)]
pub struct FakeWhatsApp {
    url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeWhatsApp {
    /// Serves the page claiming WhatsApp Web `version`.
    pub async fn start(version: &str) -> Self {
        let inner =
            Arc::new(Mutex::new(Inner { version: version.into(), send_result: "OK".into(), ..Default::default() }));
        let app = Router::new()
            .route("/", get(page))
            .route("/commands", get(commands))
            .route("/sent", post(sent))
            .route("/seen", post(seen))
            .route("/group-ops", post(group_op))
            .route("/exists", get(exists))
            .route("/upload", post(upload))
            .route("/pairing-code", post(pairing_code))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self { url: format!("http://{addr}/"), inner }
    }

    /// Where the page is.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a command (`{"op": "pair", …}`) for the page.
    pub fn command(&self, mut command: Value) {
        let mut inner = self.lock();
        let seq = inner.commands.len() + 1;
        command["seq"] = json!(seq);
        inner.commands.push(command);
    }

    /// What the page sent, in order.
    pub fn sent(&self) -> Vec<Value> {
        self.lock().sent.clone()
    }

    /// Chats the page marked read.
    pub fn seen(&self) -> Vec<Value> {
        self.lock().seen.clone()
    }

    /// How many times the page was loaded.
    pub fn loads(&self) -> u32 {
        self.lock().loads
    }

    /// The group operations the page carried out, in order.
    pub fn group_ops(&self) -> Vec<Value> {
        self.lock().group_ops.clone()
    }

    /// Only these numbers (digits, as WhatsApp registered them) are on
    /// WhatsApp from now on.
    pub fn register_only(&self, numbers: &[&str]) {
        self.lock().registered = Some(numbers.iter().map(|n| n.to_string()).collect());
    }

    /// The numbers the page asked "is it on WhatsApp?" about, in order.
    pub fn exists_queries(&self) -> Vec<String> {
        self.lock().exists_queries.clone()
    }

    /// The files the page uploaded: (media type, MIME type, bytes).
    pub fn uploads(&self) -> Vec<(String, String, Vec<u8>)> {
        self.lock().uploads.clone()
    }

    /// The phones the page asked pairing codes for.
    pub fn pairing_requests(&self) -> Vec<String> {
        self.lock().pairing_requests.clone()
    }

    /// What sends answer from now on (`OK`, or a failure name).
    pub fn answer_sends_with(&self, result: &str) {
        self.lock().send_result = result.into();
    }
}

async fn page(State(inner): State<Arc<Mutex<Inner>>>) -> Html<String> {
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    inner.loads += 1;
    Html(PAGE.replace("__VERSION__", &inner.version))
}

async fn commands(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Vec<Value>> {
    let after: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    Json(inner.commands.iter().skip(after).cloned().collect())
}

async fn sent(State(inner): State<Arc<Mutex<Inner>>>, Json(body): Json<Value>) -> Json<Value> {
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    inner.sent.push(body);
    Json(json!({ "result": inner.send_result }))
}

async fn seen(State(inner): State<Arc<Mutex<Inner>>>, Json(body): Json<Value>) -> Json<Value> {
    inner.lock().unwrap_or_else(|p| p.into_inner()).seen.push(body);
    Json(json!({}))
}

async fn group_op(State(inner): State<Arc<Mutex<Inner>>>, Json(body): Json<Value>) -> Json<Value> {
    inner.lock().unwrap_or_else(|p| p.into_inner()).group_ops.push(body);
    Json(json!({}))
}

async fn exists(State(inner): State<Arc<Mutex<Inner>>>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    let user = q.get("user").cloned().unwrap_or_default();
    inner.exists_queries.push(user.clone());
    let on = inner.registered.as_ref().is_none_or(|r| r.contains(&user));
    Json(json!({ "user": if on { Some(user) } else { None } }))
}

async fn upload(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Json<Value> {
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    let kind = q.get("type").cloned().unwrap_or_default();
    let mime = q.get("mimetype").cloned().unwrap_or_default();
    inner.uploads.push((kind, mime, body.to_vec()));
    Json(json!({ "directPath": format!("/v/t62/upload-{}", inner.uploads.len()) }))
}

/// The code every pairing request gets.
pub const PAIRING_CODE: &str = "K7QX2M9P";

async fn pairing_code(State(inner): State<Arc<Mutex<Inner>>>, Json(body): Json<Value>) -> Json<Value> {
    let phone = body["phone"].as_str().unwrap_or_default().to_owned();
    inner.lock().unwrap_or_else(|p| p.into_inner()).pairing_requests.push(phone);
    Json(json!({ "code": PAIRING_CODE }))
}

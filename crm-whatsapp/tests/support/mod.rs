//! A local stand-in for Meta's Graph API on 127.0.0.1: records every request
//! (method, path, query, `Authorization`, JSON body) and answers what the
//! test scripted, else Meta's documented success.

#![allow(dead_code, reason = "each test binary uses part of the mock")]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
    /// The body as sent (a multipart upload is no JSON).
    pub raw: Vec<u8>,
}

/// What the mock answers next.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Meta's error envelope with this HTTP status and code.
    Error { status: u16, code: i64, message: &'static str, retry_after: Option<u64> },
    /// Waits, then answers the default success.
    Slow(Duration),
    /// Any status and raw body.
    Raw(u16, &'static str),
    /// Any status and JSON body.
    Json(u16, Value),
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    counter: AtomicU64,
}

/// The running mock.
#[derive(Clone)]
pub struct GraphMock {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl GraphMock {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn then(&self, reply: Reply) {
        self.inner.script.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.inner.requests.lock().unwrap().len()
    }
}

fn error_body(code: i64, message: &str) -> Value {
    json!({
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": message },
            "fbtrace_id": "AbCdEf123"
        }
    })
}

async fn answer(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let parsed: Value =
        if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    let recorded = Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: parsed.clone(),
        raw: body.to_vec(),
    };
    inner.requests.lock().unwrap().push(recorded);
    let next = inner.script.lock().unwrap().pop_front();
    match next {
        Some(Reply::Error { status, code, message, retry_after }) => {
            let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(error_body(code, message))).into_response();
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
            }
            return r;
        }
        Some(Reply::Raw(status, text)) => return (StatusCode::from_u16(status).unwrap(), text).into_response(),
        Some(Reply::Json(status, v)) => return (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response(),
        Some(Reply::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    if method == Method::GET {
        // GET /{version}/{phone-number-id}?fields=…
        let id = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
        return axum::Json(json!({
            "verified_name": "Loja da Ana", "display_phone_number": "+55 11 4000-0000",
            "quality_rating": "GREEN", "id": id
        }))
        .into_response();
    }
    if parsed["status"] == "read" {
        return axum::Json(json!({ "success": true })).into_response();
    }
    let n = inner.counter.fetch_add(1, Ordering::Relaxed);
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": parsed["to"], "wa_id": parsed["to"] }],
        "messages": [{ "id": format!("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjA{n:08}"), "message_status": "accepted" }]
    }))
    .into_response()
}

/// A messenger for `phone_number_id` with `token`, calling `mock`.
pub fn messenger_for(mock: &GraphMock, phone_number_id: &str, token: &str) -> crm_whatsapp::CloudApiMessenger {
    crm_whatsapp::CloudApiMessenger::builder()
        .phone_number_id(phone_number_id)
        .access_token(token)
        .base_url(mock.base_url())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// A service over `store` with the `whatsapp-cloud` kind and a fresh keyring.
pub fn crm_over(store: Arc<crm_core::MemoryStore>) -> crm_core::Crm {
    crm_core::Crm::builder()
        .store(store)
        .messenger_factory(Arc::new(crm_whatsapp::CloudApiFactory::new().unwrap()))
        .keyring(crm_core::secrets::Keyring::new(crm_core::secrets::SecretKey::generate("k1").unwrap()))
        .build()
        .unwrap()
}

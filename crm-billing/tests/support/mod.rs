//! A local mock of Stripe's API on 127.0.0.1: records every request
//! (method, path, query, headers, form body) and answers from a script of
//! responses per path (Stripe's documented shapes, from `fixtures/`), else 404.

#![allow(dead_code, clippy::unwrap_used)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fixture file's text with `ACCOUNT_ID` replaced.
pub fn fixture(name: &str, account: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).replace("ACCOUNT_ID", account)
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub form: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn field(&self, key: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn ok(body: String) -> Self {
        Self { status: 200, headers: Vec::new(), body, delay: Duration::ZERO }
    }

    pub fn status(status: u16, body: String) -> Self {
        Self { status, headers: Vec::new(), body, delay: Duration::ZERO }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    /// Answers per "METHOD path", used in order; the last one repeats.
    script: HashMap<String, VecDeque<Answer>>,
}

/// The mock.
#[derive(Clone)]
pub struct MockStripe {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl MockStripe {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner, url }
    }

    /// Answers `method path` with `answers` in order (the last one repeats).
    pub fn on(&self, method: &str, path: &str, answers: Vec<Answer>) {
        self.inner.lock().unwrap().script.insert(format!("{method} {path}"), answers.into());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = crm_billing::form::decode(&String::from_utf8_lossy(&body));
    let key = format!("{method} {}", uri.path());
    let answer = {
        let mut inner = inner.lock().unwrap();
        inner.seen.push(Seen {
            method,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            form,
        });
        match inner.script.get_mut(&key) {
            Some(q) if q.len() > 1 => q.pop_front(),
            Some(q) => q.front().cloned(),
            None => None,
        }
    };
    let Some(a) = answer else {
        return (
            StatusCode::NOT_FOUND,
            r#"{"error":{"type":"invalid_request_error","message":"Unrecognized request URL"}}"#,
        )
            .into_response();
    };
    if !a.delay.is_zero() {
        tokio::time::sleep(a.delay).await;
    }
    let mut res = (StatusCode::from_u16(a.status).unwrap(), a.body).into_response();
    res.headers_mut().insert("content-type", "application/json".parse().unwrap());
    for (k, v) in a.headers {
        res.headers_mut().insert(k, v.parse().unwrap());
    }
    res
}

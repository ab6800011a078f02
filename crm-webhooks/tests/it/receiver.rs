//! A capturing receiver on 127.0.0.1 and an independent Standard Webhooks
//! verifier written from the specification's text (not crm-webhooks' code).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What to answer next.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new(), delay: Duration::ZERO, body: String::new() }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    pub fn body(mut self, b: &str) -> Self {
        self.body = b.to_owned();
        self
    }
}

#[derive(Debug, Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    redirect_target_hits: usize,
}

/// A receiver: answers from its script (then 204), records every request.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

async fn hook(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    let reply = {
        let mut g = inner.lock().expect("lock");
        g.received.push(Received { headers, body });
        g.script.pop_front()
    };
    let Some(reply) = reply else { return StatusCode::NO_CONTENT.into_response() };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut r = (StatusCode::from_u16(reply.status).expect("status"), reply.body).into_response();
    for (k, v) in reply.headers {
        r.headers_mut().insert(k, HeaderValue::from_str(&v).expect("header"));
    }
    r
}

async fn redirected(State(inner): State<Arc<Mutex<Inner>>>) -> StatusCode {
    inner.lock().expect("lock").redirect_target_hits += 1;
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// A receiver listening on `addr` (another loopback address, a chosen port).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app =
            Router::new().route("/hook", post(hook)).route("/elsewhere", post(redirected)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().expect("lock").script.extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("lock").received.clone()
    }

    pub fn redirect_target_hits(&self) -> usize {
        self.inner.lock().expect("lock").redirect_target_hits
    }

    /// Waits (real time) until `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..300 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the receiver got {} requests, expected {n}", self.received().len());
    }
}

/// The specification's verification, written from its text: the signed
/// content is `msg_id.timestamp.payload`, the key the base64 after `whsec_`,
/// the header space-separated `v1,<base64>` signatures; a match is enough.
pub fn spec_verify(secret: &str, msg_id: &str, timestamp: &str, body: &[u8], signature_header: &str) -> bool {
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).expect("secret base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    signature_header.split(' ').any(|s| s.split_once(',').is_some_and(|(v, sig)| v == "v1" && sig == expected))
}

/// A received request verified with `secret` by the spec's rules.
pub fn verifies(r: &Received, secret: &str) -> bool {
    spec_verify(secret, r.header("webhook-id"), r.header("webhook-timestamp"), &r.body, r.header("webhook-signature"))
}

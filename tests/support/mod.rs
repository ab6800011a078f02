//! Shared by the multi-process tests and the governor benchmark: a slow mock
//! provider on 127.0.0.1 (what the world sees), the `mock-http` channel kind
//! that sends to it over HTTP (what a worker process runs), and the worker
//! process itself (this binary re-executed with `CRM_PROC_ROLE=worker`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use crm::async_trait;
use crm::secrets::Credentials;
use crm::workers::{Runtime, WorkerOptions};
use crm::{
    Capabilities, Channel, Crm, Error, GcraLimiter, Health, HealthCheck, MessageContent, MessageId, MessageStatus,
    Messenger, MessengerFactory, NewChannel, NewContact, OutboundMessage, Pacing, PageRequest, RateLimiter, Result,
    SendReceipt, SendRequest, Store,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const KIND: &str = "mock-http";

// ----- the mock provider (test process) -----------------------------------------

#[derive(Debug, Default)]
pub struct Seen {
    /// message id → times the provider accepted it.
    pub counts: HashMap<String, u32>,
    /// When each acceptance happened.
    pub times: Vec<Instant>,
    /// recipient (`to`) → times the provider accepted a message to it.
    pub per_recipient: HashMap<String, u32>,
}

/// A provider that takes `delay` per message and remembers what it accepted.
#[derive(Debug, Clone)]
pub struct MockProvider {
    pub base: String,
    pub seen: Arc<Mutex<Seen>>,
}

impl MockProvider {
    pub async fn start(delay: Duration) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .route("/messages", post(accept))
            .route("/messages/{id}", get(lookup))
            .with_state((seen.clone(), delay));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, seen }
    }

    pub fn accepted(&self) -> usize {
        self.seen.lock().unwrap().counts.len()
    }

    /// (messages accepted once, accepted twice, accepted more often).
    /// (recipients reached once, twice, more often).
    pub fn recipients(&self) -> (usize, usize, usize) {
        let s = self.seen.lock().unwrap();
        let once = s.per_recipient.values().filter(|n| **n == 1).count();
        let twice = s.per_recipient.values().filter(|n| **n == 2).count();
        (once, twice, s.per_recipient.len() - once - twice)
    }

    pub fn multiplicity(&self) -> (usize, usize, usize) {
        let s = self.seen.lock().unwrap();
        let once = s.counts.values().filter(|n| **n == 1).count();
        let twice = s.counts.values().filter(|n| **n == 2).count();
        (once, twice, s.counts.len() - once - twice)
    }
}

type MockState = (Arc<Mutex<Seen>>, Duration);

async fn accept(
    State((seen, delay)): State<MockState>,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    tokio::time::sleep(delay).await;
    let id = body["message_id"].as_str().unwrap_or_default().to_owned();
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    let mut s = seen.lock().unwrap();
    *s.counts.entry(id.clone()).or_default() += 1;
    *s.per_recipient.entry(to).or_default() += 1;
    s.times.push(Instant::now());
    (StatusCode::OK, axum::Json(json!({ "id": format!("mock.{id}") })))
}

async fn lookup(State((seen, _)): State<MockState>, Path(id): Path<String>) -> StatusCode {
    if seen.lock().unwrap().counts.contains_key(&id) { StatusCode::OK } else { StatusCode::NOT_FOUND }
}

// ----- the channel kind (worker process) ------------------------------------------------

#[derive(Debug, Clone)]
struct MockMessenger {
    http: reqwest::Client,
    base: String,
    lookup: bool,
}

#[async_trait]
impl HealthCheck for MockMessenger {
    fn name(&self) -> &str {
        KIND
    }
    async fn check(&self) -> Health {
        Health::healthy(Duration::ZERO)
    }
}

fn transient(message: String) -> Error {
    Error::Provider { provider: KIND.into(), transient: true, code: None, message, retry_after: None, source: None }
}

#[async_trait]
impl Messenger for MockMessenger {
    fn provider(&self) -> &str {
        KIND
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::everything()
    }
    async fn send(&self, m: &OutboundMessage) -> Result<SendReceipt> {
        let r = self
            .http
            .post(format!("{}/messages", self.base))
            .json(&json!({ "message_id": m.message_id, "to": m.to }))
            .send()
            .await
            .map_err(|e| transient(e.to_string()))?;
        if !r.status().is_success() {
            return Err(transient(format!("status {}", r.status())));
        }
        let body: Value = r.json().await.map_err(|e| transient(e.to_string()))?;
        Ok(SendReceipt { provider_message_id: body["id"].as_str().unwrap_or_default().to_owned() })
    }
    async fn find_receipt(&self, m: &OutboundMessage) -> Result<Option<SendReceipt>> {
        if !self.lookup {
            return Ok(None);
        }
        let r = self
            .http
            .get(format!("{}/messages/{}", self.base, m.message_id))
            .send()
            .await
            .map_err(|e| transient(e.to_string()))?;
        Ok((r.status() == StatusCode::OK)
            .then(|| SendReceipt { provider_message_id: format!("mock.{}", m.message_id) }))
    }
}

/// The `mock-http` kind: settings `{"base_url": …, "lookup": bool}`.
#[derive(Debug, Default)]
pub struct MockFactory;

#[async_trait]
impl MessengerFactory for MockFactory {
    fn kind(&self) -> &str {
        KIND
    }
    fn validate(&self, channel: &Channel, _credentials: Option<&Credentials>) -> Result<()> {
        if channel.settings.get("base_url").and_then(Value::as_str).is_none() {
            return Err(Error::validation("settings.base_url", "is required"));
        }
        Ok(())
    }
    async fn build(&self, channel: &Channel, _credentials: Credentials) -> Result<Arc<dyn Messenger>> {
        let base = channel.settings.get("base_url").and_then(Value::as_str).unwrap_or_default().to_owned();
        let lookup = channel.settings.get("lookup").and_then(Value::as_bool).unwrap_or(false);
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Config { message: e.to_string() })?;
        Ok(Arc::new(MockMessenger { http, base, lookup }))
    }
}

// ----- the worker process ---------------------------------------------------------------

/// Runs the dispatcher until killed, when this process was started as a
/// worker (`CRM_PROC_ROLE=worker`); returns `false` otherwise.
pub fn worker_main() -> bool {
    if std::env::var("CRM_PROC_ROLE").as_deref() != Ok("worker") {
        return false;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = std::env::var("CRM_PROC_DB").unwrap();
        let lease = Duration::from_millis(std::env::var("CRM_PROC_LEASE_MS").unwrap().parse().unwrap());
        let store: Arc<dyn Store> = crm::storage::connect(&db).await.unwrap();
        let limiter: Arc<dyn RateLimiter> = match std::env::var("CRM_PROC_REDIS").ok() {
            #[cfg(feature = "redis")]
            Some(url) => Arc::new(crm::storage::RedisLimiter::connect(&url).await.unwrap()),
            _ => Arc::new(GcraLimiter::default()),
        };
        let crm = Crm::builder()
            .store(store.clone())
            .limiter(limiter)
            .messenger_factory(Arc::new(MockFactory))
            .build()
            .unwrap();
        let dispatcher = crm.dispatcher();
        let options = WorkerOptions {
            lease,
            poll: Duration::from_millis(20),
            max_poll: Duration::from_millis(200),
            concurrency: 32,
            batch: 64,
            ..dispatcher.options()
        };
        let mut builder = Runtime::builder(store).event_worker(Arc::new(dispatcher), options);
        // Campaign workers too (`spawn_campaign_worker`).
        if std::env::var("CRM_PROC_CAMPAIGNS").is_ok() {
            let (runner, tracker) = (crm.campaign_runner(), crm.campaign_tracker());
            let runner_options = WorkerOptions { lease, ..runner.options() };
            let tracker_options = WorkerOptions { lease, ..tracker.options() };
            builder =
                builder.job_worker(Arc::new(runner), runner_options).event_worker(Arc::new(tracker), tracker_options);
        }
        let _handle = builder.build().start().await.unwrap();
        println!("worker ready");
        std::future::pending::<()>().await;
    });
    true
}

/// Starts this test binary again as a worker over `db` running the
/// dispatcher and the campaign runner and tracker.
pub fn spawn_campaign_worker(db: &str, lease: Duration) -> std::process::Child {
    worker_command(db, lease, None).env("CRM_PROC_CAMPAIGNS", "1").spawn().expect("spawn a worker process")
}

/// Starts this test binary again as a worker over `db`.
pub fn spawn_worker(db: &str, lease: Duration, redis: Option<&str>) -> std::process::Child {
    worker_command(db, lease, redis).spawn().expect("spawn a worker process")
}

fn worker_command(db: &str, lease: Duration, redis: Option<&str>) -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.env_remove("CRM_PROC_CAMPAIGNS");
    cmd.env("CRM_PROC_ROLE", "worker")
        .env("CRM_PROC_DB", db)
        .env("CRM_PROC_LEASE_MS", lease.as_millis().to_string())
        .env_remove("CRM_PROC_REDIS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    if let Some(r) = redis {
        cmd.env("CRM_PROC_REDIS", r);
    }
    cmd
}

// ----- fixtures --------------------------------------------------------------------------

pub struct Fixture {
    pub crm: Crm,
    pub store: Arc<dyn Store>,
    pub account: crm::AccountId,
    pub ids: Vec<MessageId>,
}

/// An account with a `mock-http` channel and `n` contacts, one message queued to each.
pub async fn fixture(url: &str, mock: &MockProvider, lookup: bool, n: u32, pacing: Pacing) -> Fixture {
    let store: Arc<dyn Store> = crm::storage::connect(url).await.unwrap();
    let crm = Crm::builder().store(store.clone()).messenger_factory(Arc::new(MockFactory)).build().unwrap();
    let account = crm.create_account("Loja").await.unwrap().id;
    let channel = NewChannel {
        kind: KIND.into(),
        name: "mock".into(),
        settings: Some(json!({ "base_url": mock.base, "lookup": lookup })),
        pacing: Some(pacing),
        credentials: None::<Credentials>,
        ..Default::default()
    };
    crm.create_channel(account, channel).await.unwrap();
    let rows: Vec<NewContact> = (0..n)
        .map(|i| NewContact {
            name: format!("Cliente {i}"),
            phone: format!("+55119{:08}", 10_000_000 + i),
            ..Default::default()
        })
        .collect();
    let report = crm.import_contacts(account, rows).await.unwrap();
    assert_eq!(report.imported, n as usize, "{:?}", report.rejected.first());
    let mut contacts = Vec::new();
    let mut page = PageRequest::first(200).unwrap();
    loop {
        let q = crm::ContactQuery { page, ..Default::default() };
        let got = crm.list_contacts(account, &q).await.unwrap();
        contacts.extend(got.items.iter().map(|c| c.id));
        match got.next_cursor {
            Some(c) => page = PageRequest::new(Some(&c), 200).unwrap(),
            None => break,
        }
    }
    // Queue from 16 tasks at once (one transaction per message).
    let chunks: Vec<Vec<crm::ContactId>> = contacts.chunks(contacts.len().div_ceil(16)).map(<[_]>::to_vec).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let crm = crm.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for c in chunk {
                let q = crm.queue_message(account, SendRequest::new(c, MessageContent::text("Promoção de hoje"))).await;
                ids.push(q.unwrap().message.id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    Fixture { crm, store, account, ids }
}

/// Waits until the dispatcher's queue is empty (at most `limit`).
pub async fn drained(store: &Arc<dyn Store>, limit: Duration) {
    let started = Instant::now();
    loop {
        if store.pending(crm::DISPATCH_CONSUMER).await.unwrap() == 0 {
            return;
        }
        assert!(started.elapsed() < limit, "still {} queued after {limit:?}", store.pending("dispatch").await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every message is sent or failed with a reason; returns (sent, failed).
pub async fn outcomes(f: &Fixture) -> (usize, usize) {
    let (mut sent, mut failed) = (0, 0);
    for id in &f.ids {
        let m = f.crm.get_message(f.account, *id).await.unwrap();
        match m.status {
            MessageStatus::Sent => sent += 1,
            MessageStatus::Failed => {
                assert!(m.error.as_ref().is_some_and(|e| !e.reason.is_empty()), "failed without a reason: {m:?}");
                failed += 1;
            }
            other => panic!("message {id} ended {other:?}"),
        }
    }
    (sent, failed)
}

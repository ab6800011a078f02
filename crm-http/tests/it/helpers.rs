//! The harness: one [`Api`] that speaks either to `crm_http::router(state)`
//! through `tower::ServiceExt::oneshot` (no socket) or to a running
//! [`crm_http::Server`] over 127.0.0.1 with reqwest, so the same suites run
//! in memory, on SQLite and on PostgreSQL.
//!
//! PostgreSQL isolation: every PostgreSQL harness gets its own schema
//! `crm_it_<uuid>` in the database `CRM_TEST_DATABASE_URL` names.
//! `crm_storage::PgStore::connect_with_schema` creates the schema and applies
//! the migrations in it; the server is then given the same URL with
//! `options=-csearch_path%3D<schema>` appended, which sqlx passes to
//! PostgreSQL as a startup option, so every pooled connection of the server
//! works in that schema only. Schemas are left behind (CI drops the whole
//! test database before each run).

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crm_core::workers::{Runtime, WorkerOptions};
use crm_core::{
    AccountId, Crm, GcraLimiter, HealthCheck, ManualClock, MemoryStore, RecordingFactory, RecordingMessenger, Role,
};
use crm_http::{AppState, Config, Settings};

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (panics with the body text otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// Asserts a status code.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text());
        self
    }

    /// Asserts status `status`, a body of JSON, and returns it.
    #[track_caller]
    pub fn ok_json(&self, status: u16) -> Value {
        self.expect(status);
        self.json()
    }

    /// Asserts an `application/problem+json` body with this status and
    /// `type` `/problems/<kind>`, and returns the body.
    #[track_caller]
    pub fn problem(&self, status: u16, kind: &str) -> Value {
        self.expect(status);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "problem content type; body: {}",
            self.text()
        );
        let p = self.json();
        assert_eq!(p["type"], format!("/problems/{kind}"), "problem type: {p}");
        assert_eq!(p["status"], status, "problem status: {p}");
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "problem title: {p}");
        assert!(p["detail"].is_string(), "problem detail: {p}");
        p
    }
}

/// Where requests go.
#[derive(Debug, Clone)]
enum Target {
    Router(axum::Router),
    Http { client: reqwest::Client, base: String },
}

/// A client of the API.
#[derive(Debug, Clone)]
pub struct Api {
    target: Target,
}

/// One request being built.
#[derive(Debug)]
pub struct Call<'a> {
    api: &'a Api,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    peer: Option<SocketAddr>,
}

impl Api {
    /// An API over `router(state)` without a socket.
    pub fn router(state: AppState) -> Self {
        Self { target: Target::Router(crm_http::router(state)) }
    }

    /// An API over HTTP at `base` (`http://127.0.0.1:port`).
    pub fn http(base: String) -> Self {
        let client = reqwest::Client::builder().no_proxy().build().expect("reqwest client");
        Self { target: Target::Http { client, base } }
    }

    /// Over HTTP without following redirects (a browser's view of a 303).
    pub fn http_without_redirects(base: String) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client");
        Self { target: Target::Http { client, base } }
    }

    /// Polls `GET /api/v1/messages/{id}` until the dispatcher has moved the
    /// message out of `queued`, and returns it (panics after 10 s).
    pub async fn settled_message(&self, token: &str, message_id: &str) -> Value {
        for _ in 0..1000 {
            let m = self.get(&format!("/api/v1/messages/{message_id}")).bearer(token).send().await.ok_json(200);
            if m["status"] != "queued" {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("message {message_id} is still queued after 10 s");
    }

    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call { api: self, method, path: path.to_owned(), headers: Vec::new(), body: None, peer: None }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Call<'_> {
        self.call(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> Call<'_> {
        self.call(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }
}

impl Call<'_> {
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(self, body: Value) -> Self {
        self.raw("application/json", serde_json::to_vec(&body).expect("serialize"))
    }

    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers.push(("content-type".into(), content_type.into()));
        self.body = Some(body);
        self
    }

    /// The client address the router sees (router target only; a server sees
    /// 127.0.0.1).
    pub fn peer(mut self, addr: &str) -> Self {
        self.peer = Some(addr.parse().expect("socket address"));
        self
    }

    pub async fn send(self) -> Resp {
        match &self.api.target {
            Target::Router(router) => {
                let mut b = Request::builder().method(self.method).uri(&self.path);
                for (k, v) in &self.headers {
                    b = b.header(k, v);
                }
                let mut req = b.body(Body::from(self.body.unwrap_or_default())).expect("request");
                if let Some(peer) = self.peer {
                    req.extensions_mut().insert(ConnectInfo(peer));
                }
                let res = router.clone().oneshot(req).await.expect("infallible router");
                let (parts, body) = res.into_parts();
                let body = body.collect().await.expect("read body").to_bytes().to_vec();
                Resp { status: parts.status, headers: parts.headers, body }
            }
            Target::Http { client, base } => {
                let mut b = client.request(self.method, format!("{base}{}", self.path));
                for (k, v) in &self.headers {
                    b = b.header(k, v);
                }
                if let Some(body) = self.body {
                    b = b.body(body);
                }
                let res = b.send().await.expect("send request");
                let status = res.status();
                let headers = res.headers().clone();
                let body = res.bytes().await.expect("read body").to_vec();
                Resp { status, headers, body }
            }
        }
    }
}

/// An API with direct access to its state (to set up accounts and inspect
/// the store behind the API's back).
#[derive(Debug)]
pub struct Harness {
    pub api: Api,
    pub state: AppState,
    /// The memory harness's clock (also drives its limiter).
    pub clock: Option<ManualClock>,
    /// The memory harness's messenger.
    pub messenger: Option<RecordingMessenger>,
    /// The running server, when there is one.
    pub server: Option<Running>,
}

impl Harness {
    /// In memory, default settings.
    pub async fn memory() -> Self {
        Self::memory_with(Settings::default(), Vec::new()).await
    }

    /// In memory, over a manual clock (which also drives the rate limiter),
    /// with the dispatcher running; accounts without channels send through
    /// the recording messenger (the service's fallback).
    pub async fn memory_with(settings: Settings, probes: Vec<Arc<dyn HealthCheck>>) -> Self {
        let clock = ManualClock::new(chrono::Utc::now());
        let shared: Arc<dyn crm_core::Clock> = Arc::new(clock.clone());
        let messenger = RecordingMessenger::new();
        let store = Arc::new(MemoryStore::with_clock(shared.clone()));
        let crm = Crm::builder()
            .store(store.clone())
            .messenger(Arc::new(messenger.clone()))
            .messenger_factory(Arc::new(RecordingFactory::new(messenger.clone())))
            .keyring(crm_core::secrets::Keyring::new(
                crm_core::secrets::SecretKey::generate("test").expect("a random key"),
            ))
            .clock(shared.clone())
            .build()
            .expect("crm");
        let dispatcher = crm.dispatcher();
        let options = WorkerOptions {
            poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(20),
            ..dispatcher.options()
        };
        let runtime =
            Runtime::builder(store).event_worker(Arc::new(dispatcher), options).build().start().await.expect("runtime");
        let state =
            AppState::with_runtime(crm, Arc::new(GcraLimiter::new(shared)), probes, settings, Some(Arc::new(runtime)));
        Self { api: Api::router(state.clone()), state, clock: Some(clock), messenger: Some(messenger), server: None }
    }

    /// A real server composed by `builder` (over a fresh SQLite file unless
    /// `change` sets another database).
    pub async fn sqlite_builder(
        change: impl FnOnce(&mut Config),
        compose: impl FnOnce(crm_http::ServerBuilder) -> crm_http::ServerBuilder,
    ) -> Self {
        let dir = temp_dir("sqlite");
        let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
        let mut config =
            Config { database_url: Some(url.into()), secret_keys: Some(test_keys()), ..Default::default() };
        change(&mut config);
        let running = Running::start_builder(compose(crm_http::Server::builder(config))).await;
        Self {
            api: Api::http(running.base.clone()),
            state: running.state.clone(),
            clock: None,
            messenger: None,
            server: Some(running),
        }
    }

    /// A real server on 127.0.0.1:0 over a fresh SQLite file.
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_| {}).await
    }

    /// Like [`Harness::sqlite`], with changes to the configuration.
    pub async fn sqlite_with(change: impl FnOnce(&mut Config)) -> Self {
        let dir = temp_dir("sqlite");
        let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
        let mut config =
            Config { database_url: Some(url.into()), secret_keys: Some(test_keys()), ..Default::default() };
        change(&mut config);
        Self::serve(config).await
    }

    /// A real server over a fresh PostgreSQL schema; `None` (after printing
    /// SKIPPED) when `CRM_TEST_DATABASE_URL` is unset.
    #[cfg(feature = "postgres")]
    pub async fn postgres(test: &str) -> Option<Self> {
        Self::postgres_with(test, |_| {}).await
    }

    /// [`Harness::postgres`] with `change` applied to the config.
    #[cfg(feature = "postgres")]
    pub async fn postgres_with(test: &str, change: impl FnOnce(&mut Config)) -> Option<Self> {
        let url = crm_core::testing::service_url("CRM_TEST_DATABASE_URL", test)?;
        let mut config = Config {
            database_url: Some(pg_schema_url(&url).await.into()),
            secret_keys: Some(test_keys()),
            // Tests run side by side on one server (max_connections 100 by
            // default): a few connections each.
            database_pool_size: 3,
            ..Default::default()
        };
        change(&mut config);
        Some(Self::serve(config).await)
    }

    /// Without the `postgres` feature there is nothing to run against.
    #[cfg(not(feature = "postgres"))]
    pub async fn postgres(test: &str) -> Option<Self> {
        eprintln!("SKIPPED {test}: build crm-http with --features postgres");
        None
    }

    /// Without the `postgres` feature there is nothing to run against.
    #[cfg(not(feature = "postgres"))]
    pub async fn postgres_with(test: &str, _: impl FnOnce(&mut Config)) -> Option<Self> {
        Self::postgres(test).await
    }

    /// Builds and runs a server from `config` on 127.0.0.1:0.
    pub async fn serve(config: Config) -> Self {
        let running = Running::start(config).await;
        Self {
            api: Api::http(running.base.clone()),
            state: running.state.clone(),
            clock: None,
            messenger: None,
            server: Some(running),
        }
    }

    pub fn crm(&self) -> &Crm {
        self.state.crm()
    }

    /// A new account with a default channel of the `recording` kind, and a
    /// key of `role` in it.
    pub async fn account(&self, role: Role) -> (AccountId, String) {
        let account = self.crm().create_account("Tenant").await.expect("account");
        let channel = crm_core::NewChannel { kind: "recording".into(), name: "Recording".into(), ..Default::default() };
        self.crm().create_channel(account.id, channel).await.expect("recording channel");
        let token = self.key(account.id, role).await;
        (account.id, token)
    }

    /// Another key of `role` in `account`.
    pub async fn key(&self, account: AccountId, role: Role) -> String {
        let (_, token) = self.crm().create_api_key(account, "test", role, None).await.expect("key");
        token.expose().to_owned()
    }

    /// Stops the server (if any) and waits until it has stopped.
    pub async fn stop(self) {
        if let Some(s) = self.server {
            s.stop().await.expect("server stopped cleanly");
        }
    }
}

/// A server running in a task.
#[derive(Debug)]
pub struct Running {
    pub base: String,
    pub addr: SocketAddr,
    pub state: AppState,
    /// The admin key the first start printed.
    pub admin_key: String,
    /// The dashboard owner login the first start printed: e-mail, password.
    pub owner_login: (String, String),
    pub account_id: AccountId,
    shutdown: oneshot::Sender<()>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn start(config: Config) -> Self {
        Self::start_builder(crm_http::Server::builder(config)).await
    }

    /// Runs a server composed by `builder` on 127.0.0.1:0.
    pub async fn start_builder(builder: crm_http::ServerBuilder) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut server = builder.build_with_listener(listener).await.expect("build server");
        let addr = server.local_addr().expect("addr");
        assert_eq!(server.port(), addr.port());
        let boot = server.take_bootstrap().expect("a fresh database bootstraps an account");
        assert!(server.take_bootstrap().is_none(), "the bootstrap key is handed out once");
        let state = server.state().clone();
        let (shutdown, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run_with_shutdown(async move {
            let _ = rx.await;
        }));
        Self {
            base: format!("http://{addr}"),
            addr,
            state,
            admin_key: boot.admin_key.expose().to_owned(),
            owner_login: (
                boot.owner_email.clone(),
                secrecy::ExposeSecret::expose_secret(&boot.owner_password).to_owned(),
            ),
            account_id: boot.account_id,
            shutdown,
            handle,
        }
    }

    /// Sends the shutdown signal and waits for the server future.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("the server stops after the signal")
            .expect("server task")
    }

    /// Splits off the shutdown sender and the task.
    pub fn into_parts(self) -> (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>) {
        (self.shutdown, self.handle)
    }
}

/// A fresh key for `CRM_SECRET_KEYS`.
pub fn test_keys() -> secrecy::SecretString {
    crm_core::secrets::SecretKey::generate("it").expect("a random key").export().into()
}

/// A fresh folder under the system temp dir.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crm-http-it-{label}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Creates a schema of its own in the database at `url` (migrated), and
/// returns `url` with that schema as every connection's search path.
#[cfg(feature = "postgres")]
pub async fn pg_schema_url(url: &str) -> String {
    let schema = format!("crm_it_{}", uuid::Uuid::now_v7().simple());
    let store = crm_storage::PgStore::connect_with_schema(url, &schema).await.expect("create schema");
    store.pool().close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// Settings with everything at its default but `change`.
pub fn settings(change: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::default();
    change(&mut s);
    s
}

/// A contact body with a unique-enough Brazilian mobile number.
pub fn contact_body(name: &str, n: u32) -> Value {
    serde_json::json!({ "name": name, "phone": phone(n) })
}

/// `+55 11 9xxxx-xxxx` numbered by `n`.
pub fn phone(n: u32) -> String {
    format!("+55119{:08}", 10_000_000 + n)
}

/// Creates a contact through the API and returns it.
pub async fn create_contact(api: &Api, token: &str, name: &str, n: u32) -> Value {
    api.post("/api/v1/contacts").bearer(token).json(contact_body(name, n)).send().await.ok_json(201)
}

/// Creates a template through the API and returns it.
pub async fn create_template(api: &Api, token: &str, name: &str, body: &str) -> Value {
    api.post("/api/v1/templates")
        .bearer(token)
        .json(serde_json::json!({ "name": name, "body": body }))
        .send()
        .await
        .ok_json(201)
}

/// An id as a string field of a JSON value.
pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

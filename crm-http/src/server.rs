//! Building and running the server: the builder that takes adapters (store,
//! limiter, messenger factories, workers, routes), and the defaults the
//! binary assembles from configuration.

use axum::Router;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crm_core::secrets::{Keyring, SecretKey};
use crm_core::workers::{EventWorker, JobWorker, Runtime, WorkerOptions};
use crm_core::{
    Account, AccountId, ApiKeyToken, Clock, Crm, Error, GcraLimiter, HealthCheck, MessengerFactory, NewChannel,
    RateLimiter, RecordingFactory, RecordingMessenger, Result, Store,
};

use crate::config::{Config, LogFormat, redact_url};
use crate::state::{AppState, Settings};

/// Opens the store a URL names: `sqlite:…` or `postgres://…` (as the
/// features allow), creating the SQLite file's folder and applying migrations.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    crm_storage::connect(url).await
}

/// [`open_store`] with at most `pool_size` pooled PostgreSQL connections.
pub async fn open_store_with_pool(url: &str, pool_size: u32) -> Result<Arc<dyn Store>> {
    crm_storage::connect_with_pool(url, pool_size).await
}

/// What the first start created: the account, its admin key and an owner
/// login for the dashboard (each shown once).
#[derive(Debug)]
pub struct Bootstrap {
    /// The new account.
    pub account_id: AccountId,
    /// Its admin key; print it once, it is not stored in clear.
    pub admin_key: ApiKeyToken,
    /// The owner user's login e-mail ([`BOOTSTRAP_OWNER_EMAIL`]).
    pub owner_email: String,
    /// The owner user's generated password; print it once, only its hash is stored.
    pub owner_password: secrecy::SecretString,
}

/// The e-mail of the owner user created on the first start (the dashboard login).
pub const BOOTSTRAP_OWNER_EMAIL: &str = "owner@crm.local";

/// Composes a server: every adapter can be given, and what is not given is
/// assembled from the [`Config`] (store from `DATABASE_URL`, limiter from
/// `REDIS_URL`, keys from `CRM_SECRET_KEYS`, …). Adapter crates contribute
/// their messenger factories, inbound routes and workers here.
///
/// ```no_run
/// # async fn run(my_factory: std::sync::Arc<dyn crm_core::MessengerFactory>) -> crm_core::Result<()> {
/// let config = crm_http::Config::load(None, |k| std::env::var(k).ok())?;
/// let server = crm_http::Server::builder(config)
///     .messenger_factory(my_factory)
///     .routes(axum::Router::new().route("/hooks/my-provider", axum::routing::post(|| async { "ok" })))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServerBuilder {
    config: Config,
    store: Option<Arc<dyn Store>>,
    limiter: Option<Arc<dyn RateLimiter>>,
    keyring: Option<Keyring>,
    clock: Option<Arc<dyn Clock>>,
    factories: Vec<Arc<dyn MessengerFactory>>,
    event_workers: Vec<(Arc<dyn EventWorker>, WorkerOptions)>,
    job_workers: Vec<(Arc<dyn JobWorker>, WorkerOptions)>,
    routes: Vec<Router<AppState>>,
    probes: Vec<Arc<dyn HealthCheck>>,
    recording: RecordingMessenger,
    bootstrap: bool,
    workflows: Option<Arc<dyn crm_core::ports::workflows::Workflows>>,
    media: Option<Arc<dyn crm_core::MediaStore>>,
    /// Connector factories beyond the built-in ones (a later one replaces
    /// a built-in one of the same kind).
    connector_factories: Vec<Arc<dyn crm_core::ports::connectors::ConnectorFactory>>,
    /// The billing provider (default: Stripe from `STRIPE_SECRET_KEY`, else off).
    #[cfg(feature = "stripe")]
    billing: Option<Arc<dyn crm_core::Billing>>,
}

/// Everything a process needs, assembled but not serving yet.
#[derive(Debug)]
pub struct Parts {
    /// The state handlers run over (it holds the runtime, when workers run).
    pub state: AppState,
    /// Routes contributed by adapters, merged at the top level.
    pub routes: Vec<Router<AppState>>,
    /// What the first start created.
    pub bootstrap: Option<Bootstrap>,
    /// The messenger behind the `recording` channel kind.
    pub recording: RecordingMessenger,
}

impl ServerBuilder {
    /// The store (default: opened from `DATABASE_URL`).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The rate limiter for API quotas and the send governor (default:
    /// Redis from `REDIS_URL`, else in memory).
    pub fn limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The keys credentials are sealed with (default: `CRM_SECRET_KEYS`, or
    /// the secret keys file).
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The clock (default: the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A messenger factory for one more channel kind. The `recording`
    /// kind is always there.
    pub fn messenger_factory(mut self, factory: Arc<dyn MessengerFactory>) -> Self {
        self.factories.push(factory);
        self
    }

    /// The billing provider, instead of Stripe from the configuration (a
    /// `RecordingBilling` in tests, or Stripe built by the app).
    #[cfg(feature = "stripe")]
    pub fn billing(mut self, billing: Arc<dyn crm_core::Billing>) -> Self {
        self.billing = Some(billing);
        self
    }

    /// An outbox consumer to run beside the dispatcher.
    pub fn event_worker(mut self, worker: Arc<dyn EventWorker>, options: WorkerOptions) -> Self {
        self.event_workers.push((worker, options));
        self
    }

    /// A job worker to run beside the dispatcher.
    pub fn job_worker(mut self, worker: Arc<dyn JobWorker>, options: WorkerOptions) -> Self {
        self.job_workers.push((worker, options));
        self
    }

    /// Routes merged at the top level, outside `/api/v1` authentication
    /// (inbound provider webhooks verify their own signatures). They get
    /// the request id, tracing, metrics and error layers like every route.
    pub fn routes(mut self, routes: Router<AppState>) -> Self {
        self.routes.push(routes);
        self
    }

    /// Where media files are kept (default: from the configuration,
    /// `CRM_MEDIA_BACKEND`: an [`ObjectMediaStore`](crm_storage::ObjectMediaStore)
    /// in `<data_dir>/media`, or S3). Uploads go there, and with the
    /// `whatsapp-cloud` feature a worker downloads the media of messages
    /// received on WhatsApp Cloud channels into it. A store given here signs
    /// its own URLs.
    pub fn media_store(mut self, media: Arc<dyn crm_core::MediaStore>) -> Self {
        self.media = Some(media);
        self
    }

    /// A connector factory (e-mail, notifications, analytics) for the
    /// account connections of its kind, replacing a built-in one of that
    /// kind (tests point providers at local mocks this way).
    pub fn connector_factory(mut self, factory: Arc<dyn crm_core::ports::connectors::ConnectorFactory>) -> Self {
        self.connector_factories.push(factory);
        self
    }

    /// The workflow engine to use instead of the one `N8N_URL` configures
    /// (tests give a `RecordingWorkflows`).
    pub fn workflows(mut self, workflows: Arc<dyn crm_core::ports::workflows::Workflows>) -> Self {
        self.workflows = Some(workflows);
        self
    }

    /// One more readiness probe.
    pub fn probe(mut self, probe: Arc<dyn HealthCheck>) -> Self {
        self.probes.push(probe);
        self
    }

    /// Whether an empty database gets its first account, owner key and
    /// `recording` channel (default true; worker processes and CLI commands
    /// turn it off, so the key is printed by the server that serves it).
    pub fn bootstrap(mut self, on: bool) -> Self {
        self.bootstrap = on;
        self
    }

    /// Binds `config.listen` and assembles the server.
    pub async fn build(self) -> Result<Server> {
        let listener = TcpListener::bind(self.config.listen).await.map_err(|e| Error::Config {
            message: format!("CRM_LISTEN: cannot listen on {}: {e}", self.config.listen),
        })?;
        self.build_with_listener(listener).await
    }

    /// Assembles the server over an already bound listener (tests bind port 0).
    pub async fn build_with_listener(self, listener: TcpListener) -> Result<Server> {
        let grace = Duration::from_secs(self.config.shutdown_grace_secs);
        let run_workers = self.config.workers;
        let parts = self.assemble(run_workers).await?;
        Ok(Server { listener, parts, grace })
    }

    /// Assembles everything without binding: the service, the state and,
    /// when `workers` is true, the running worker runtime.
    pub async fn assemble(self, workers: bool) -> Result<Parts> {
        let config = &self.config;
        let store = match self.store {
            Some(s) => s,
            None => {
                let db_url = config.database_url().expose_secret().to_owned();
                open_store_with_pool(&db_url, config.database_pool_size).await.map_err(|e| match e {
                    Error::Config { message } => Error::Config { message: format!("DATABASE_URL: {message}") },
                    other => Error::Config { message: format!("DATABASE_URL ({}): {other}", redact_url(&db_url)) },
                })?
            }
        };
        let mut probes = self.probes;
        let limiter = match self.limiter {
            Some(l) => l,
            None => {
                let (l, p) = limiter_from(config).await?;
                probes.extend(p);
                l
            }
        };
        let keyring = match self.keyring {
            Some(k) => Some(k),
            None => keyring_from(config)?,
        };
        let mut builder = Crm::builder()
            .store(store.clone())
            .limiter(limiter.clone())
            .messenger_factory(Arc::new(RecordingFactory::new(self.recording.clone())));
        // Built-in kinds first: a factory given to the builder for the same kind replaces it.
        #[cfg(feature = "whatsapp-cloud")]
        let cloud = crm_whatsapp::CloudApiFactory::new()?;
        #[cfg(feature = "whatsapp-cloud")]
        {
            builder = builder.messenger_factory(Arc::new(cloud.clone()));
        }
        #[cfg(feature = "whatsapp-web")]
        let web_engine = crate::whatsapp_web::engine(config)?;
        #[cfg(feature = "whatsapp-web")]
        {
            builder = builder.messenger_factory(Arc::new(crm_whatsapp::web::WebFactory::new(web_engine.clone())));
        }
        builder = builder
            .send_deadline(Duration::from_secs(config.send_deadline_secs))
            .max_send_attempts(config.send_max_attempts)
            .api_key_cache(Duration::from_secs(config.api_key_cache_secs))
            .default_channel_cache(Duration::from_secs(config.channel_cache_secs));
        for f in self.factories {
            builder = builder.messenger_factory(f);
        }
        if let Some(k) = keyring {
            builder = builder.keyring(k);
        }
        if let Some(c) = self.clock {
            builder = builder.clock(c);
        }
        if let Some(cc) = &config.default_country {
            builder = builder.default_country(cc.clone());
        }
        let crm = builder.build()?;
        let bootstrap = if self.bootstrap { bootstrap(&crm).await? } else { None };
        let workflows = match self.workflows {
            Some(w) => Some(w),
            None => config.n8n.workflows()?,
        };
        if let Some(w) = &workflows {
            probes.push(w.clone());
        }
        #[cfg(feature = "oauth")]
        let oauth = config.oauth.services(&crm)?;
        #[cfg(not(feature = "oauth"))]
        if config.oauth.any() {
            return Err(Error::Config {
                message: "OAuth providers are set but this build has no `oauth` feature".into(),
            });
        }
        #[cfg(feature = "webhooks")]
        let webhooks = webhooks_from(config, &crm, &limiter)?;
        #[cfg(feature = "ai")]
        let assistant = {
            let (service, probe) = crate::ai::service(&config.ai, &crm, &limiter)?;
            probes.push(probe);
            service
        };
        #[cfg(feature = "stripe")]
        let billing = crate::billing::service_from(config, &crm, self.billing.clone(), &mut probes)?;
        let media = crate::media::MediaServices::from_config(config, &crm, self.media.clone())?;
        let mut connector_factories = crate::connectors::built_in();
        // Accounts' own Stripe keys (the `stripe` connection), against the
        // same API base as the server's key.
        #[cfg(feature = "stripe")]
        connector_factories.push(Arc::new(crm_billing::StripeConnectionFactory::new(
            config.billing.api_base.clone(),
            config.billing.webhook_tolerance_secs.map(std::time::Duration::from_secs),
        )));
        connector_factories.extend(self.connector_factories);
        let connectors = Arc::new(crm_core::connections::ConnectorRegistry::new(
            connector_factories,
            crm.channels().keyring().cloned(),
        ));
        #[cfg(feature = "stripe")]
        let billing = billing.map(|b| b.with_account_keys(connectors.clone()));
        // Cloud channels send `media:<id>` files of the library.
        #[cfg(feature = "whatsapp-cloud")]
        cloud.set_media_library(media.library.clone());
        // WhatsApp Web channels send `media:<id>` files and keep inbound ones in it.
        #[cfg(feature = "whatsapp-web")]
        web_engine.set_media_library(media.library.clone());
        let runtime = if workers {
            let dispatcher = crm.dispatcher();
            let options = WorkerOptions { concurrency: config.dispatch_concurrency, ..dispatcher.options() };
            let mut rb = Runtime::builder(store).event_worker(Arc::new(dispatcher), options);
            // Campaigns: the runner (a job per campaign) and the tracker (status reports → recipients).
            let (runner, tracker) = (crm.campaign_runner(), crm.campaign_tracker());
            let (runner_options, tracker_options) = (runner.options(), tracker.options());
            rb = rb.job_worker(Arc::new(runner), runner_options).event_worker(Arc::new(tracker), tracker_options);
            rb = crate::automation::register(rb, &crm);
            rb = crate::sequences::workers(rb, &crm);
            rb = crate::connectors::workers(rb, &crm, &connectors, media.library.files());
            if let Some(w) = &workflows {
                let trigger = crm_core::workers::WorkflowTrigger::new(w.clone());
                rb = rb.job_worker(Arc::new(trigger), crm_core::workers::WorkflowTrigger::options());
            }
            #[cfg(feature = "oauth")]
            if let Some(sf) = oauth.as_ref().and_then(|o| o.salesforce.clone()) {
                use crm_core::workers::{ExternalCrmPull, ExternalCrmPush};
                rb = rb
                    .job_worker(Arc::new(ExternalCrmPush::new(crm.clone(), sf.clone())), ExternalCrmPush::options())
                    .job_worker(Arc::new(ExternalCrmPull::new(crm.clone(), sf)), ExternalCrmPull::options());
            }
            for (w, o) in self.event_workers {
                rb = rb.event_worker(w, o);
            }
            #[cfg(feature = "whatsapp-cloud")]
            {
                let library = media.library.clone();
                let fetcher =
                    crm_whatsapp::MediaFetcher::with_library(crm.clone(), library, crm_whatsapp::http_client()?);
                rb = rb.event_worker(Arc::new(fetcher), crm_whatsapp::MediaFetcher::options());
            }
            // WhatsApp Web: inbound files through the session's page, a job of their own.
            #[cfg(feature = "whatsapp-web")]
            {
                let fetcher = crm_whatsapp::web::WebMediaFetcher::new(web_engine.clone());
                rb = rb.event_worker(Arc::new(fetcher), crm_whatsapp::web::WebMediaFetcher::options());
            }
            // Media: deleted with their contact; and after the retention period, when there is one.
            let eraser = crm_core::media::MediaEraser::new(media.library.clone());
            rb = rb.event_worker(Arc::new(eraser), WorkerOptions::default());
            if config.media.retention_days > 0 {
                let retention = Duration::from_secs(u64::from(config.media.retention_days) * 86_400);
                let sweep =
                    crm_core::media::MediaRetention::new(media.library.clone(), retention, Duration::from_secs(3600));
                sweep.schedule().await?;
                rb = rb.job_worker(Arc::new(sweep), WorkerOptions::default());
            }
            for (w, o) in self.job_workers {
                rb = rb.job_worker(w, o);
            }
            #[cfg(feature = "ai")]
            {
                let analyzer = crm_ai::Analyzer::new(assistant.clone());
                rb = rb.event_worker(Arc::new(analyzer), crm_ai::Analyzer::options());
            }
            #[cfg(feature = "webhooks")]
            if let Some(w) = &webhooks {
                let deliverer = crm_webhooks::Deliverer::new(w.clone())?;
                let options =
                    WorkerOptions { concurrency: config.webhooks.concurrency, ..crm_webhooks::Deliverer::options() };
                rb = rb
                    .event_worker(Arc::new(crm_webhooks::FanOut::new(w.clone())), crm_webhooks::FanOut::options())
                    .job_worker(Arc::new(deliverer), options)
                    .job_worker(
                        Arc::new(crm_webhooks::AutomationCaller::new(w.clone())?),
                        crm_webhooks::AutomationCaller::options(),
                    );
            }
            #[cfg(feature = "stripe")]
            if let Some(b) = &billing {
                rb = rb.job_worker(Arc::new(b.applier()), crm_billing::BillingApplier::options());
            }
            Some(Arc::new(rb.build().start().await?))
        } else {
            None
        };
        let settings = Settings {
            per_key_per_minute: config.rate_limit.per_key_per_minute,
            per_ip_per_minute: config.rate_limit.per_ip_per_minute,
            session_ttl: Duration::from_secs(u64::from(config.session_ttl_minutes) * 60),
            body_limit_bytes: config.body_limit_bytes,
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            cors_origins: config.cors_origins.clone(),
            trusted_proxies: config.trusted_proxies,
            secure_cookies: config.secure_cookies,
        };
        #[cfg(feature = "whatsapp-web")]
        let web = crate::whatsapp_web::start(web_engine, &crm, config, workers);
        probes.push(media.library.files().clone());
        let state = AppState::with_runtime(crm, limiter, probes, settings, runtime);
        state.set_media(media);
        state.set_connectors(connectors);
        #[cfg(feature = "webhooks")]
        if let Some(w) = webhooks {
            state.set_webhooks(w);
        }
        #[cfg(feature = "ai")]
        state.set_ai(assistant);
        #[cfg(feature = "stripe")]
        if let Some(b) = billing {
            state.set_billing(b);
        }
        #[cfg(feature = "whatsapp-web")]
        let _ = state.inner.whatsapp_web.set(web);
        if let Some(w) = workflows {
            state.set_workflows(w);
        }
        #[cfg(feature = "oauth")]
        if let Some(o) = oauth {
            state.set_oauth(o);
        }
        Ok(Parts { state, routes: self.routes, bootstrap, recording: self.recording })
    }
}

/// The outbound webhooks service from the configuration, when there is a
/// keyring to seal their secrets with (without one, webhooks are off and
/// their routes answer 503).
#[cfg(feature = "webhooks")]
fn webhooks_from(config: &Config, crm: &Crm, limiter: &Arc<dyn RateLimiter>) -> Result<Option<crm_webhooks::Webhooks>> {
    let Some(keyring) = crm.channels().keyring().cloned() else {
        tracing::warn!("no secret keys: outbound webhooks are off (set CRM_SECRET_KEYS)");
        return Ok(None);
    };
    let w = crm_webhooks::Webhooks::new(crm.store().clone(), keyring)
        .clock(crm.clock().clone())
        .limiter(limiter.clone())
        .settings(config.webhooks.settings()?);
    Ok(Some(w))
}

/// The server, bound and ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    parts: Parts,
    grace: Duration,
}

impl Server {
    /// A builder over `config`.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            store: None,
            limiter: None,
            keyring: None,
            clock: None,
            factories: Vec::new(),
            event_workers: Vec::new(),
            job_workers: Vec::new(),
            routes: Vec::new(),
            probes: Vec::new(),
            #[cfg(feature = "stripe")]
            billing: None,
            recording: RecordingMessenger::new().keep_last(100),
            bootstrap: true,
            workflows: None,
            media: None,
            connector_factories: Vec::new(),
        }
    }

    /// Assembles everything from `config` (see [`ServerBuilder`]), creates
    /// an account, an owner key and a `recording` channel on an empty
    /// database, and binds `config.listen`.
    pub async fn build(config: Config) -> Result<Self> {
        Self::builder(config).build().await
    }

    /// Like [`Server::build`] over an already bound listener (tests bind port 0).
    pub async fn build_with_listener(config: Config, listener: TcpListener) -> Result<Self> {
        Self::builder(config).build_with_listener(listener).await
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The state the routes run over.
    pub fn state(&self) -> &AppState {
        &self.parts.state
    }

    /// The messenger behind the `recording` channel kind (what the quick
    /// start's messages went to).
    pub fn recording(&self) -> &RecordingMessenger {
        &self.parts.recording
    }

    /// What the first start created, if this start created it.
    pub fn take_bootstrap(&mut self) -> Option<Bootstrap> {
        self.parts.bootstrap.take()
    }

    /// Serves until SIGINT or SIGTERM, then stops accepting, lets in-flight
    /// requests finish and the workers finish their running items (up to the
    /// grace period each; what is left is given back to the queue).
    ///
    /// The signal handlers are installed by this call, before the returned
    /// future first runs, so a signal sent after the caller announced the
    /// server (e.g. printed its address) is never lost to the default action,
    /// which would kill the process. Call it inside a Tokio runtime.
    pub fn run_until_stopped(self) -> impl Future<Output = std::io::Result<()>> + Send {
        self.run_with_shutdown(shutdown_signal())
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_with_shutdown(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.parts.state.clone();
        let app =
            crate::router_with(state.clone(), self.parts.routes).into_make_service_with_connect_info::<SocketAddr>();
        let grace = self.grace;
        let served = serve_gracefully(self.listener, app, signal, grace).await;
        if let Some(rt) = state.runtime() {
            let report = rt.shutdown(grace).await;
            tracing::info!(finished = report.finished, released = report.released, "workers stopped");
        }
        state.stop_background().await;
        served
    }
}

async fn serve_gracefully(
    listener: TcpListener,
    app: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    signal: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        signal.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = tx.send(());
    });
    let mut serve = std::pin::pin!(serve.into_future());
    tokio::select! {
        r = &mut serve => r,
        () = async {
            let _ = rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("grace period over; dropping remaining connections");
            Ok(())
        }
    }
}

/// A worker process: runs the workers and, when `config.worker_listen` is
/// set, serves `/health`, `/ready` and `/metrics` there, until SIGINT or
/// SIGTERM; then lets running items finish within the grace period.
pub async fn run_worker(builder: ServerBuilder) -> Result<()> {
    let grace = Duration::from_secs(builder.config.shutdown_grace_secs);
    let listen = builder.config.worker_listen;
    let signal = shutdown_signal();
    let parts = builder.bootstrap(false).assemble(true).await?;
    let state = parts.state.clone();
    let names = state.runtime().map(|r| r.worker_names()).unwrap_or_default();
    tracing::info!(workers = ?names, "worker process running");
    match listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Config { message: format!("CRM_WORKER_LISTEN: cannot listen on {addr}: {e}") })?;
            let bound = listener.local_addr().unwrap_or(addr);
            println!("crm worker: {} running; /health, /ready and /metrics on http://{bound}", names.join(", "));
            let app = crate::system_router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
            serve_gracefully(listener, app, signal, grace)
                .await
                .map_err(|e| Error::Config { message: format!("worker HTTP stopped: {e}") })?;
        }
        None => {
            println!("crm worker: {} running", names.join(", "));
            signal.await;
        }
    }
    if let Some(rt) = state.runtime() {
        let report = rt.shutdown(grace).await;
        tracing::info!(finished = report.finished, released = report.released, "workers stopped");
    }
    state.stop_background().await;
    Ok(())
}

async fn limiter_from(config: &Config) -> Result<(Arc<dyn RateLimiter>, Vec<Arc<dyn HealthCheck>>)> {
    match &config.redis_url {
        None => Ok((Arc::new(GcraLimiter::default()), Vec::new())),
        #[cfg(feature = "redis")]
        Some(url) => {
            let limiter = Arc::new(crm_storage::RedisLimiter::connect(url.expose_secret()).await.map_err(|e| {
                Error::Config { message: format!("REDIS_URL ({}): {e}", redact_url(url.expose_secret())) }
            })?);
            Ok((limiter.clone(), vec![limiter]))
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(Error::Config {
            message: "REDIS_URL: this build has no Redis support (enable the `redis` feature)".into(),
        }),
    }
}

/// The keyring from `CRM_SECRET_KEYS`, else the secret keys file. On the
/// embedded defaults a missing file is created with a fresh key (and the
/// server says so); elsewhere a missing file means no keyring (channels
/// then cannot store credentials, and say why).
fn keyring_from(config: &Config) -> Result<Option<Keyring>> {
    if let Some(keys) = &config.secret_keys {
        return Keyring::parse(keys.expose_secret())
            .map(Some)
            .map_err(|e| Error::Config { message: format!("CRM_SECRET_KEYS: {e}") });
    }
    let path = config.secret_keys_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Keyring::parse(&text).map(Some).map_err(|e| Error::Config { message: format!("{}: {e}", path.display()) })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.embedded_database() => {
            let key = SecretKey::generate(format!("k{}", chrono::Utc::now().format("%Y%m%d")))?;
            write_secret_file(&path, &key.export())?;
            eprintln!(
                "Generated a secret key for channel credentials into {} — back it up with the database; \
                 credentials cannot be opened without it.",
                path.display()
            );
            Ok(Some(Keyring::new(key)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Config { message: format!("{}: {e}", path.display()) }),
    }
}

fn write_secret_file(path: &Path, contents: &str) -> Result<()> {
    let fail = |e: std::io::Error| Error::Config { message: format!("writing {}: {e}", path.display()) };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    std::io::Write::write_all(&mut file, format!("{contents}\n").as_bytes()).map_err(fail)
}

/// The id of the account created on the first start.
pub const BOOTSTRAP_ACCOUNT: AccountId =
    AccountId::from_uuid(uuid::Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001));

/// On an empty database, creates an account, an owner key, an owner user
/// for the dashboard and a default channel of the `recording` kind (so the quick start's send works with
/// nothing configured).
async fn bootstrap(crm: &Crm) -> Result<Option<Bootstrap>> {
    if !crm.store().read_all_events(None, 1).await?.is_empty() {
        return Ok(None);
    }
    // A fixed id makes the first start idempotent: when several servers start
    // on one empty database at once, exactly one creates the account (the
    // others hit the primary key) and prints a key.
    let now = crm.clock().now();
    let mut account = Account::new("Default", now)?;
    account.id = BOOTSTRAP_ACCOUNT;
    // The account and its owner key in one transaction: a crash between them
    // cannot leave an account nobody can use.
    let token = match crm.create_account_with_owner_key(account, "admin (created at first start)").await {
        Ok((_, _, token)) => token,
        Err(Error::Conflict { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let channel = NewChannel {
        kind: crm_core::ChannelKind::RECORDING.into(),
        name: "Recording (messages are stored, not delivered)".into(),
        ..Default::default()
    };
    crm.create_channel(BOOTSTRAP_ACCOUNT, channel).await?;
    // An owner login for the dashboard, with a generated password.
    let password = crate::dashboard::random_hex(12)
        .ok_or_else(|| Error::Config { message: "no randomness for the owner's password".into() })?;
    crm.create_user(BOOTSTRAP_ACCOUNT, BOOTSTRAP_OWNER_EMAIL, "Owner", crm_core::Role::Owner, &password).await?;
    Ok(Some(Bootstrap {
        account_id: BOOTSTRAP_ACCOUNT,
        admin_key: token,
        owner_email: BOOTSTRAP_OWNER_EMAIL.to_owned(),
        owner_password: password.into(),
    }))
}

/// Completes on SIGINT or SIGTERM. The handlers are registered now, not when
/// the future is first polled.
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn recv(s: std::io::Result<Signal>) {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        let (int, term) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
        async move {
            tokio::select! {
                () = recv(int) => {},
                () = recv(term) => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Installs the global tracing subscriber (text or JSON lines, filtered by
/// `filter`). Safe to call twice; the second call does nothing.
pub fn init_tracing(format: LogFormat, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

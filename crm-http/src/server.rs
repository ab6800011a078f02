//! Building and running the server.

use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crm_core::{
    Account, AccountId, ApiKeyToken, Crm, Error, Event, EventType, GcraLimiter, HealthCheck, Messenger, RateLimiter,
    RecordingMessenger, Result, Role, Store,
};

use crate::config::{Config, LogFormat, redact_url};
use crate::state::{AppState, Settings};

/// Opens the store a URL names: `sqlite:…` or `postgres://…` (as the
/// features allow), creating the SQLite file's folder and applying migrations.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    crm_storage::connect(url).await
}

/// What the first start created: the account and its admin key (shown once).
#[derive(Debug)]
pub struct Bootstrap {
    /// The new account.
    pub account_id: AccountId,
    /// Its admin key; print it once, it is not stored in clear.
    pub admin_key: ApiKeyToken,
}

/// The server, bound and ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
    bootstrap: Option<Bootstrap>,
}

impl Server {
    /// Opens the store and limiter from `config`, creates an account and an
    /// admin key on an empty database, and binds `config.listen`.
    pub async fn build(config: Config) -> Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::Config { message: format!("CRM_LISTEN: cannot listen on {}: {e}", config.listen) })?;
        Self::build_with_listener(config, listener).await
    }

    /// Like [`Server::build`] over an already bound listener (tests bind port 0).
    pub async fn build_with_listener(config: Config, listener: TcpListener) -> Result<Self> {
        let db_url = config.database_url().expose_secret().to_owned();
        let store = open_store(&db_url).await.map_err(|e| match e {
            Error::Config { message } => Error::Config { message: format!("DATABASE_URL: {message}") },
            other => Error::Config { message: format!("DATABASE_URL ({}): {other}", redact_url(&db_url)) },
        })?;
        let (limiter, extra_probes) = limiter_from(&config).await?;
        let messenger: Arc<dyn Messenger> = Arc::new(RecordingMessenger::new().keep_last(100));
        let mut builder = Crm::builder().store(store).messenger(messenger);
        if let Some(cc) = &config.default_country {
            builder = builder.default_country(cc.clone());
        }
        let crm = builder.build()?;
        let bootstrap = bootstrap(&crm).await?;
        let settings = Settings {
            per_key_per_minute: config.rate_limit.per_key_per_minute,
            per_ip_per_minute: config.rate_limit.per_ip_per_minute,
            session_ttl: Duration::from_secs(u64::from(config.session_ttl_minutes) * 60),
            body_limit_bytes: config.body_limit_bytes,
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            cors_origins: config.cors_origins.clone(),
        };
        let state = AppState::new(crm, limiter, extra_probes, settings);
        Ok(Self { listener, state, grace: Duration::from_secs(config.shutdown_grace_secs), bootstrap })
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
        &self.state
    }

    /// What the first start created, if this start created it.
    pub fn take_bootstrap(&mut self) -> Option<Bootstrap> {
        self.bootstrap.take()
    }

    /// Serves until SIGINT or SIGTERM, then stops accepting and lets
    /// in-flight requests finish (up to the grace period).
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
        let app = crate::router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let grace = self.grace;
        let serve = axum::serve(self.listener, app).with_graceful_shutdown(async move {
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

/// The id of the account created on the first start.
pub const BOOTSTRAP_ACCOUNT: AccountId =
    AccountId::from_uuid(uuid::Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001));

/// On an empty database, creates an account and an owner key.
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
    let event = Event::new(account.id, EventType::ACCOUNT_CREATED, &account, now);
    match crm.store().create_account(&account, &event).await {
        Ok(()) => {}
        Err(Error::Conflict { .. }) => return Ok(None),
        Err(e) => return Err(e),
    }
    let (_, token) = crm.create_api_key(account.id, "admin (created at first start)", Role::Owner, None).await?;
    Ok(Some(Bootstrap { account_id: account.id, admin_key: token }))
}

/// Completes on SIGINT or SIGTERM. The handlers are registered now, not when
/// the future is first polled.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
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

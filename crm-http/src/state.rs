//! Shared state handed to every handler.

use std::sync::Arc;
use std::time::Duration;

use crm_core::workers::RuntimeHandle;
use crm_core::{Crm, HealthCheck, RateLimiter};

use crate::metrics::Metrics;

/// Settings handlers need at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests per minute per API key.
    pub per_key_per_minute: u32,
    /// Requests per minute per IP on unauthenticated routes.
    pub per_ip_per_minute: u32,
    /// Login token lifetime.
    pub session_ttl: Duration,
    /// Largest request body.
    pub body_limit_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Allowed CORS origins.
    pub cors_origins: Vec<String>,
    /// Proxy hops in front of the server whose `Forwarded` /
    /// `X-Forwarded-For` entries are believed for the client address (0:
    /// none, the socket peer is the client).
    pub trusted_proxies: usize,
    /// Whether the dashboard's cookies carry `Secure` (HTTPS in front).
    pub secure_cookies: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            per_key_per_minute: 600,
            per_ip_per_minute: 30,
            session_ttl: Duration::from_secs(12 * 3600),
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            trusted_proxies: 0,
            secure_cookies: false,
        }
    }
}

/// Everything a handler can reach: the [`Crm`] service, the limiter, the
/// readiness probes and the metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub crm: Crm,
    pub limiter: Arc<dyn RateLimiter>,
    pub probes: Vec<Arc<dyn HealthCheck>>,
    pub metrics: Metrics,
    pub settings: Settings,
    pub runtime: Option<Arc<RuntimeHandle>>,
    pub auth_failures: crate::auth::AuthFailures,
    #[cfg(feature = "webhooks")]
    pub webhooks: std::sync::OnceLock<crm_webhooks::Webhooks>,
    /// The assistant service (crm-ai).
    #[cfg(feature = "ai")]
    pub ai: std::sync::OnceLock<crm_ai::AssistantService>,
    /// Billing, when Stripe (or another `Billing`) is configured.
    #[cfg(feature = "stripe")]
    pub billing: std::sync::OnceLock<crm_billing::BillingService>,
    /// The workflow engine (n8n), when one is configured.
    pub workflows: std::sync::OnceLock<Arc<dyn crm_core::ports::workflows::Workflows>>,
    /// The WhatsApp Web sessions of this process and their supervisor.
    #[cfg(feature = "whatsapp-web")]
    pub whatsapp_web: std::sync::OnceLock<WhatsAppWeb>,
    /// The media library and the signer of its URLs.
    pub media: std::sync::OnceLock<crate::media::MediaServices>,
    /// OAuth connections and the Salesforce adapter, when a provider is configured.
    #[cfg(feature = "oauth")]
    pub oauth: std::sync::OnceLock<crate::oauth::OAuthServices>,
    /// The connector factories (e-mail, Slack, GA4, …) and their keyring.
    pub connectors: std::sync::OnceLock<Arc<crm_core::connections::ConnectorRegistry>>,
    /// The tail of the event log the dashboard's live updates read (started
    /// by the first subscriber).
    pub live: std::sync::OnceLock<crm_core::live::LiveFeed>,
}

/// The WhatsApp Web engine and, in processes that run workers, the
/// supervisor that owns sessions through their leases.
#[cfg(feature = "whatsapp-web")]
#[derive(Debug)]
pub(crate) struct WhatsAppWeb {
    pub engine: crm_whatsapp::web::WebEngine,
    pub supervisor: tokio::sync::Mutex<Option<crm_whatsapp::web::Supervisor>>,
}

impl AppState {
    /// State over a service and a limiter; the store (and the fallback
    /// messenger, when there is one) are probed for readiness, plus any
    /// `extra_probes` (Redis, …). Channels are reported by `/ready` too.
    pub fn new(
        crm: Crm,
        limiter: Arc<dyn RateLimiter>,
        extra_probes: Vec<Arc<dyn HealthCheck>>,
        settings: Settings,
    ) -> Self {
        Self::with_runtime(crm, limiter, extra_probes, settings, None)
    }

    /// [`AppState::new`] with the worker runtime running beside the routes:
    /// `/metrics` reports its workers and queues.
    pub fn with_runtime(
        crm: Crm,
        limiter: Arc<dyn RateLimiter>,
        extra_probes: Vec<Arc<dyn HealthCheck>>,
        settings: Settings,
        runtime: Option<Arc<RuntimeHandle>>,
    ) -> Self {
        let mut probes: Vec<Arc<dyn HealthCheck>> = vec![crm.store().clone()];
        if let Some(m) = crm.messenger() {
            probes.push(m.clone());
        }
        probes.extend(extra_probes);
        let auth_failures = crate::auth::AuthFailures::default();
        Self {
            inner: Arc::new(Inner {
                crm,
                limiter,
                probes,
                metrics: Metrics::default(),
                settings,
                runtime,
                auth_failures,
                #[cfg(feature = "webhooks")]
                webhooks: std::sync::OnceLock::new(),
                #[cfg(feature = "ai")]
                ai: std::sync::OnceLock::new(),
                #[cfg(feature = "stripe")]
                billing: std::sync::OnceLock::new(),
                workflows: std::sync::OnceLock::new(),
                #[cfg(feature = "whatsapp-web")]
                whatsapp_web: std::sync::OnceLock::new(),
                media: std::sync::OnceLock::new(),
                #[cfg(feature = "oauth")]
                oauth: std::sync::OnceLock::new(),
                connectors: std::sync::OnceLock::new(),
                live: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The worker runtime, when this process runs one.
    pub fn runtime(&self) -> Option<&Arc<RuntimeHandle>> {
        self.inner.runtime.as_ref()
    }

    /// The WhatsApp Web engine, when this server runs one.
    #[cfg(feature = "whatsapp-web")]
    pub fn whatsapp_web(&self) -> Option<&crm_whatsapp::web::WebEngine> {
        self.inner.whatsapp_web.get().map(|w| &w.engine)
    }

    /// Closes the WhatsApp Web sessions and gives their leases back (shutdown).
    pub(crate) async fn stop_background(&self) {
        #[cfg(feature = "whatsapp-web")]
        if let Some(w) = self.inner.whatsapp_web.get() {
            match w.supervisor.lock().await.take() {
                Some(s) => s.stop().await,
                None => w.engine.shutdown().await,
            }
        }
    }

    /// The live feed of events (the dashboard's server-sent events): one
    /// tail of the event log per process, started on first use (on the
    /// current tokio runtime) and stopped with the state.
    pub fn live(&self) -> &crm_core::live::LiveFeed {
        self.inner.live.get_or_init(|| {
            let crm = self.crm();
            crm_core::live::LiveFeed::start(crm.store().clone(), Default::default())
        })
    }

    /// The service.
    pub fn crm(&self) -> &Crm {
        &self.inner.crm
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Sets the outbound webhooks service the routes use (the server sets
    /// it from its configuration); false when one was already set.
    #[cfg(feature = "webhooks")]
    pub fn set_webhooks(&self, webhooks: crm_webhooks::Webhooks) -> bool {
        self.inner.webhooks.set(webhooks).is_ok()
    }

    /// The outbound webhooks service: the one set, else one over the
    /// service's store, keyring and clock with the default settings.
    /// [`crm_core::Error::Config`] when there is no keyring to seal secrets with.
    #[cfg(feature = "webhooks")]
    pub fn webhooks(&self) -> crm_core::Result<crm_webhooks::Webhooks> {
        if let Some(w) = self.inner.webhooks.get() {
            return Ok(w.clone());
        }
        let crm = self.crm();
        let keyring = crm.channels().keyring().cloned().ok_or_else(|| crm_core::Error::Config {
            message: "webhook secrets are sealed at rest: configure CRM_SECRET_KEYS".into(),
        })?;
        let w = crm_webhooks::Webhooks::new(crm.store().clone(), keyring)
            .clock(crm.clock().clone())
            .limiter(self.inner.limiter.clone());
        Ok(self.inner.webhooks.get_or_init(|| w).clone())
    }

    /// Sets the assistant service the routes use (the server sets it from
    /// its configuration); false when one was already set.
    #[cfg(feature = "ai")]
    pub fn set_ai(&self, service: crm_ai::AssistantService) -> bool {
        self.inner.ai.set(service).is_ok()
    }

    /// The assistant service: the one set, else the offline heuristic over
    /// the service's store.
    #[cfg(feature = "ai")]
    pub fn ai(&self) -> crm_core::Result<crm_ai::AssistantService> {
        let service = self.inner.ai.get_or_init(|| {
            crm_ai::AssistantService::new(self.crm().clone(), std::sync::Arc::new(crm_ai::Heuristic::new()), None)
        });
        Ok(service.clone())
    }

    /// Sets the billing service the billing routes use (the server sets it
    /// when Stripe is configured); false when one was already set.
    #[cfg(feature = "stripe")]
    pub fn set_billing(&self, billing: crm_billing::BillingService) -> bool {
        self.inner.billing.set(billing).is_ok()
    }

    /// The billing service, when billing is configured.
    #[cfg(feature = "stripe")]
    pub fn billing(&self) -> Option<&crm_billing::BillingService> {
        self.inner.billing.get()
    }

    /// Sets the media library the routes use (the server sets it from its
    /// configuration); false when one was already set.
    pub fn set_media(&self, media: crate::media::MediaServices) -> bool {
        self.inner.media.set(media).is_ok()
    }

    /// The media library: the one set, else one in memory (files are lost
    /// with the process) with a random URL secret.
    pub fn media(&self) -> &crate::media::MediaServices {
        self.inner.media.get_or_init(|| crate::media::MediaServices::memory(self.crm()))
    }

    /// Sets the workflow engine (n8n) the `/api/v1/n8n` routes use; false
    /// when one was already set.
    pub fn set_workflows(&self, workflows: Arc<dyn crm_core::ports::workflows::Workflows>) -> bool {
        self.inner.workflows.set(workflows).is_ok()
    }

    /// The workflow engine, when one is configured.
    pub fn workflows(&self) -> Option<&Arc<dyn crm_core::ports::workflows::Workflows>> {
        self.inner.workflows.get()
    }

    /// Sets the OAuth services; false when they were already set.
    #[cfg(feature = "oauth")]
    pub fn set_oauth(&self, oauth: crate::oauth::OAuthServices) -> bool {
        self.inner.oauth.set(oauth).is_ok()
    }

    /// The OAuth services, when a provider is configured.
    #[cfg(feature = "oauth")]
    pub fn oauth(&self) -> Option<&crate::oauth::OAuthServices> {
        self.inner.oauth.get()
    }

    /// Sets the connector registry the `/api/v1/connections` routes use;
    /// false when one was already set.
    pub fn set_connectors(&self, registry: Arc<crm_core::connections::ConnectorRegistry>) -> bool {
        self.inner.connectors.set(registry).is_ok()
    }

    /// The connector registry: the one set, else one without factories
    /// (every provider kind is refused) over the service's keyring.
    pub fn connectors(&self) -> &Arc<crm_core::connections::ConnectorRegistry> {
        self.inner.connectors.get_or_init(|| {
            Arc::new(crm_core::connections::ConnectorRegistry::new(
                Vec::new(),
                self.crm().channels().keyring().cloned(),
            ))
        })
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

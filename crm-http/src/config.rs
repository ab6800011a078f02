//! Server configuration: defaults → optional `crm.toml` → environment
//! variables, validated once at start.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crm_core::{Error, Result};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Request limits per client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute for each API key (and burst size).
    pub per_key_per_minute: u32,
    /// Requests per minute for each client IP on unauthenticated routes.
    pub per_ip_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { per_key_per_minute: 600, per_ip_per_minute: 30 }
    }
}

/// Everything `crm-server` can be told.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`CRM_LISTEN`; `PORT` sets only the port).
    pub listen: SocketAddr,
    /// Store URL (`DATABASE_URL`): `sqlite://…` or `postgres://…`; unset
    /// means a SQLite file in `data_dir` (see [`Config::database_url`]).
    pub database_url: Option<SecretString>,
    /// Redis URL for the rate limiter (`REDIS_URL`); unset means in memory.
    pub redis_url: Option<SecretString>,
    /// Folder for the SQLite file and local data (`CRM_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `text` or `json` (`CRM_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info,crm_http=debug` (`RUST_LOG`).
    pub log_filter: String,
    /// Allowed CORS origins; empty allows none, `*` allows any (`CRM_CORS_ORIGINS`, comma-separated).
    pub cors_origins: Vec<String>,
    /// Pooled PostgreSQL connections per process (`CRM_DATABASE_POOL_SIZE`,
    /// default 10, 1 to 500); the store's fast lane opens as many again, so a
    /// process holds up to twice this many. SQLite ignores it.
    pub database_pool_size: u32,
    /// Per-request timeout in seconds (`CRM_REQUEST_TIMEOUT_SECS`).
    pub request_timeout_secs: u64,
    /// Largest request body in bytes (`CRM_BODY_LIMIT_BYTES`).
    pub body_limit_bytes: usize,
    /// Rate limits (`CRM_RATE_LIMIT_PER_KEY_PER_MINUTE`, `CRM_RATE_LIMIT_PER_IP_PER_MINUTE`).
    pub rate_limit: RateLimitConfig,
    /// Lifetime of a dashboard login token, in minutes (`CRM_SESSION_TTL_MINUTES`).
    pub session_ttl_minutes: u32,
    /// Seconds to let in-flight requests finish on shutdown (`CRM_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace_secs: u64,
    /// Country code for phones typed without one, e.g. `(11) 98765-4321`
    /// (`CRM_DEFAULT_COUNTRY`; default `55`, Brazil; `none` to require `+`).
    pub default_country: Option<String>,
    /// The keys credentials are sealed with (`CRM_SECRET_KEYS`):
    /// comma-separated `<id>:<base64 of 32 bytes>`, the first one active.
    /// Unset: read from `secret_keys_file`.
    pub secret_keys: Option<SecretString>,
    /// A file holding the keys in the same form (`CRM_SECRET_KEYS_FILE`;
    /// default `<data_dir>/secret.keys`). On the embedded defaults (no
    /// `DATABASE_URL`) the server creates it with a fresh key on first start.
    pub secret_keys_file: Option<PathBuf>,
    /// Run the background workers (the message dispatcher, …) in `serve`
    /// (`CRM_WORKERS`, default true); `false` for web-only processes while
    /// `crm-server worker` processes do the work.
    pub workers: bool,
    /// Where `crm-server worker` serves `/health`, `/ready` and `/metrics`
    /// (`CRM_WORKER_LISTEN`); unset: no HTTP in worker processes.
    pub worker_listen: Option<SocketAddr>,
    /// Messages sent at once by one process (`CRM_DISPATCH_CONCURRENCY`, default 32).
    pub dispatch_concurrency: usize,
    /// Attempts per queued message before it fails (`CRM_SEND_MAX_ATTEMPTS`, default 10).
    pub send_max_attempts: u32,
    /// Seconds a queued message may keep retrying before it fails
    /// (`CRM_SEND_DEADLINE_SECS`, default 86400).
    pub send_deadline_secs: u64,
    /// Seconds an API key read for authentication is reused
    /// (`CRM_API_KEY_CACHE_SECS`, default 5; 0 reads the store on every
    /// request). A key revoked through this process stops at once; one
    /// revoked elsewhere (the CLI, another server) within this long.
    pub api_key_cache_secs: u64,
    /// How long each account's default channel is reused for sends
    /// (`CRM_CHANNEL_CACHE_SECS`, default 5; 0 reads the store on every
    /// send). A channel created, changed or deleted through this process is
    /// read again at once; a change made elsewhere is seen within this long.
    pub channel_cache_secs: u64,
    /// Proxy hops in front of the server whose `Forwarded` /
    /// `X-Forwarded-For` entries are believed for the client address used by
    /// the per-IP limits (`CRM_TRUSTED_PROXIES`, default 0: none, the socket
    /// peer is the client). Set it to the number of proxies every request
    /// passes (1 behind one load balancer), and make sure clients cannot
    /// reach the server around them.
    pub trusted_proxies: usize,
    /// Whether the dashboard's cookies carry `Secure` (`CRM_SECURE_COOKIES`,
    /// default false): set it when browsers reach the server over HTTPS (TLS
    /// at a proxy in front of it), so the session cookie never travels in clear.
    pub secure_cookies: bool,
    /// Outbound webhooks (`[webhooks]`, `CRM_WEBHOOK_*`).
    #[cfg(feature = "webhooks")]
    pub webhooks: crate::webhook_config::WebhookConfig,
    /// The assistant (`[ai]`, `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `CRM_AI_*`).
    #[cfg(feature = "ai")]
    pub ai: crate::ai_config::AiConfig,
    /// Billing over Stripe (`[billing]`, `STRIPE_*`, `CRM_BILLING_*`; feature `stripe`).
    #[cfg(feature = "stripe")]
    pub billing: crate::billing_config::BillingConfig,
    /// Media storage (`[media]`; `CRM_MEDIA_*`, `CRM_PUBLIC_URL`, `S3_BUCKET_NAME`, `AWS_*`).
    pub media: crate::media_config::MediaConfig,
    /// n8n (`[n8n]`; `N8N_URL`, `N8N_API_KEY`, `N8N_WEBHOOK_SECRET`, `N8N_TIMEOUT_SECS`).
    pub n8n: crate::n8n::N8nConfig,
    /// OAuth connections and Salesforce (`[oauth]`; `GOOGLE_OAUTH_*`,
    /// `SALESFORCE_*`, `OAUTH_TIMEOUT_SECS`).
    pub oauth: crate::oauth::OAuthConfig,
    /// The Chromium binary WhatsApp Web sessions run in, a path or a name on
    /// `PATH` (`CRM_WHATSAPP_WEB_CHROMIUM`, default `chromium`; feature
    /// `whatsapp-web`). Profiles live in `<data_dir>/whatsapp-web/<channel id>`.
    pub whatsapp_web_chromium: PathBuf,
    /// Where WhatsApp Web is loaded from (`CRM_WHATSAPP_WEB_URL`, default
    /// `https://web.whatsapp.com/`; tests point it at a local page).
    pub whatsapp_web_url: String,
    /// Seconds a WhatsApp Web session's lease lasts without renewal: how
    /// long another process waits before taking over the session of one
    /// that died (`CRM_WHATSAPP_WEB_LEASE_SECS`, default 30, 5 to 600).
    pub whatsapp_web_lease_secs: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(self.database_url().expose_secret()))
            .field("redis_url", &self.redis_url.as_ref().map(|u| redact_url(u.expose_secret())))
            .field("data_dir", &self.data_dir)
            .field("log_format", &self.log_format)
            .field("cors_origins", &self.cors_origins)
            .field("database_pool_size", &self.database_pool_size)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("rate_limit", &self.rate_limit)
            .field("secret_keys", &self.secret_keys.as_ref().map(|_| "[redacted]"))
            .field("workers", &self.workers)
            .field("media", &self.media)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            redis_url: None,
            data_dir: PathBuf::from("crm-data"),
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            cors_origins: Vec::new(),
            database_pool_size: 10,
            request_timeout_secs: 30,
            body_limit_bytes: 1024 * 1024,
            rate_limit: RateLimitConfig::default(),
            session_ttl_minutes: 12 * 60,
            shutdown_grace_secs: 20,
            default_country: Some("55".into()),
            secret_keys: None,
            secret_keys_file: None,
            workers: true,
            worker_listen: None,
            dispatch_concurrency: 32,
            send_max_attempts: 10,
            send_deadline_secs: 24 * 3600,
            api_key_cache_secs: 5,
            channel_cache_secs: 5,
            trusted_proxies: 0,
            secure_cookies: false,
            #[cfg(feature = "webhooks")]
            webhooks: crate::webhook_config::WebhookConfig::default(),
            #[cfg(feature = "ai")]
            ai: crate::ai_config::AiConfig::default(),
            #[cfg(feature = "stripe")]
            billing: crate::billing_config::BillingConfig::default(),
            media: crate::media_config::MediaConfig::default(),
            n8n: crate::n8n::N8nConfig::default(),
            oauth: crate::oauth::OAuthConfig::default(),
            whatsapp_web_chromium: PathBuf::from("chromium"),
            whatsapp_web_url: "https://web.whatsapp.com/".into(),
            whatsapp_web_lease_secs: 30,
        }
    }
}

/// A store or Redis URL with every credential hidden, for logs and errors:
/// the password in the userinfo (`scheme://user:***@host`, also
/// `redis://:***@host`) and the value of every query parameter that can carry
/// one (`?password=***`, `pass`, `sslpassword`, and any name holding `pass`,
/// `pwd`, `secret`, `token`, `auth`, `key` or `cred`, matched after
/// percent-decoding, as sqlx and redis read them).
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |s| s + 3);
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..start]);
    // The last `@` hides the most when a password holds an unescaped `@`;
    // the user name is shown only when it cannot be part of a path or query.
    let rest = match url[start..].rfind('@') {
        Some(at) => {
            let user = url[start..start + at].split(':').next().unwrap_or("");
            if !user.contains(['/', '?', '#', '=', '&']) {
                out.push_str(user);
                out.push(':');
            }
            out.push_str("***");
            &url[start + at..]
        }
        None => &url[start..],
    };
    let Some((before, query)) = rest.split_once('?') else {
        out.push_str(rest);
        return out;
    };
    out.push_str(before);
    out.push('?');
    let (query, fragment) = query.split_once('#').map_or((query, None), |(q, f)| (q, Some(f)));
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let name = pair.split('=').next().unwrap_or("");
        if secret_parameter(name) {
            out.push_str(name);
            out.push_str("=***");
        } else {
            out.push_str(pair);
        }
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Whether a URL query parameter may carry a credential.
fn secret_parameter(raw_name: &str) -> bool {
    let name = percent_decode_lossy(raw_name).to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "auth", "key", "cred"].iter().any(|w| name.contains(w))
}

/// `%XX` escapes and `+` decoded, invalid escapes kept as they are.
fn percent_decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bad(setting: &str, reason: impl fmt::Display) -> Error {
    Error::Config { message: format!("{setting}: {reason}") }
}

impl Config {
    /// Whether the store is the embedded default (no `DATABASE_URL`).
    pub fn embedded_database(&self) -> bool {
        self.database_url.is_none()
    }

    /// Where the secret keys file is: `secret_keys_file`, or `secret.keys` in `data_dir`.
    pub fn secret_keys_path(&self) -> PathBuf {
        self.secret_keys_file.clone().unwrap_or_else(|| self.data_dir.join("secret.keys"))
    }

    /// The store URL: `database_url`, or a SQLite file `crm.db` in `data_dir`.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(u) => u.clone(),
            None => SecretString::from(format!("sqlite://{}/crm.db?mode=rwc", self.data_dir.display())),
        }
    }

    /// Loads defaults, then `file` when given (it must exist) or `./crm.toml`
    /// when present, then the environment read through `env`. Validates the
    /// result; [`Error::Config`] names the bad setting.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut cfg = match file {
            Some(path) => Self::from_file(path)?,
            None if Path::new("crm.toml").exists() => Self::from_file(Path::new("crm.toml"))?,
            None => Self::default(),
        };
        cfg.apply_env(env)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(&path.display().to_string(), e))?;
        toml::from_str(&text).map_err(|e| bad(&path.display().to_string(), e.message()))
    }

    /// Applies environment variables over the current values.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("CRM_LISTEN") {
            self.listen = v.trim().parse().map_err(|_| bad("CRM_LISTEN", "expected an address like 127.0.0.1:8080"))?;
        }
        if let Some(v) = get("PORT") {
            let port: u16 = v.trim().parse().map_err(|_| bad("PORT", "expected a port number"))?;
            self.listen.set_port(port);
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = Some(SecretString::from(v));
        }
        if let Some(v) = get("REDIS_URL") {
            self.redis_url = Some(SecretString::from(v));
        }
        if let Some(v) = get("CRM_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CRM_LOG_FORMAT") {
            self.log_format = match v.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(bad("CRM_LOG_FORMAT", "expected text or json")),
            };
        }
        if let Some(v) = get("RUST_LOG") {
            self.log_filter = v;
        }
        if let Some(v) = get("CRM_CORS_ORIGINS") {
            self.cors_origins = v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        }
        let num = |k: &str| -> Result<Option<u64>> {
            get(k).map(|v| v.trim().parse::<u64>().map_err(|_| bad(k, "expected a whole number"))).transpose()
        };
        if let Some(n) = num("CRM_DATABASE_POOL_SIZE")? {
            self.database_pool_size = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(n) = num("CRM_REQUEST_TIMEOUT_SECS")? {
            self.request_timeout_secs = n;
        }
        if let Some(n) = num("CRM_BODY_LIMIT_BYTES")? {
            self.body_limit_bytes = usize::try_from(n).map_err(|_| bad("CRM_BODY_LIMIT_BYTES", "too large"))?;
        }
        if let Some(n) = num("CRM_RATE_LIMIT_PER_KEY_PER_MINUTE")? {
            self.rate_limit.per_key_per_minute =
                u32::try_from(n).map_err(|_| bad("CRM_RATE_LIMIT_PER_KEY_PER_MINUTE", "too large"))?;
        }
        if let Some(n) = num("CRM_RATE_LIMIT_PER_IP_PER_MINUTE")? {
            self.rate_limit.per_ip_per_minute =
                u32::try_from(n).map_err(|_| bad("CRM_RATE_LIMIT_PER_IP_PER_MINUTE", "too large"))?;
        }
        if let Some(n) = num("CRM_TRUSTED_PROXIES")? {
            self.trusted_proxies = usize::try_from(n)
                .ok()
                .filter(|n| *n <= 16)
                .ok_or_else(|| bad("CRM_TRUSTED_PROXIES", "must be 0 to 16"))?;
        }
        if let Some(n) = num("CRM_SESSION_TTL_MINUTES")? {
            self.session_ttl_minutes = u32::try_from(n).map_err(|_| bad("CRM_SESSION_TTL_MINUTES", "too large"))?;
        }
        if let Some(v) = get("CRM_DEFAULT_COUNTRY") {
            let v = v.trim().trim_start_matches('+');
            self.default_country = (!v.eq_ignore_ascii_case("none")).then(|| v.to_owned());
        }
        if let Some(n) = num("CRM_SHUTDOWN_GRACE_SECS")? {
            self.shutdown_grace_secs = n;
        }
        if let Some(v) = get("CRM_SECRET_KEYS") {
            self.secret_keys = Some(SecretString::from(v));
        }
        if let Some(v) = get("CRM_SECRET_KEYS_FILE") {
            self.secret_keys_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CRM_WORKERS") {
            self.workers = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(bad("CRM_WORKERS", "expected true or false")),
            };
        }
        if let Some(v) = get("CRM_SECURE_COOKIES") {
            self.secure_cookies = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(bad("CRM_SECURE_COOKIES", "expected true or false")),
            };
        }
        if let Some(v) = get("CRM_WORKER_LISTEN") {
            self.worker_listen = Some(
                v.trim().parse().map_err(|_| bad("CRM_WORKER_LISTEN", "expected an address like 127.0.0.1:8081"))?,
            );
        }
        if let Some(n) = num("CRM_DISPATCH_CONCURRENCY")? {
            self.dispatch_concurrency = usize::try_from(n).map_err(|_| bad("CRM_DISPATCH_CONCURRENCY", "too large"))?;
        }
        if let Some(n) = num("CRM_SEND_MAX_ATTEMPTS")? {
            self.send_max_attempts = u32::try_from(n).map_err(|_| bad("CRM_SEND_MAX_ATTEMPTS", "too large"))?;
        }
        if let Some(n) = num("CRM_SEND_DEADLINE_SECS")? {
            self.send_deadline_secs = n;
        }
        if let Some(n) = num("CRM_API_KEY_CACHE_SECS")? {
            self.api_key_cache_secs = n;
        }
        if let Some(n) = num("CRM_CHANNEL_CACHE_SECS")? {
            self.channel_cache_secs = n;
        }
        #[cfg(feature = "webhooks")]
        self.webhooks.apply_env(get)?;
        #[cfg(feature = "ai")]
        self.ai.apply_env(get)?;
        #[cfg(feature = "stripe")]
        self.billing.apply_env(get)?;
        self.media.apply_env(get)?;
        self.n8n.apply_env(get)?;
        self.oauth.apply_env(get)?;
        if let Some(v) = get("CRM_WHATSAPP_WEB_CHROMIUM") {
            self.whatsapp_web_chromium = PathBuf::from(v);
        }
        if let Some(v) = get("CRM_WHATSAPP_WEB_URL") {
            self.whatsapp_web_url = v;
        }
        if let Some(n) = num("CRM_WHATSAPP_WEB_LEASE_SECS")? {
            self.whatsapp_web_lease_secs = n;
        }
        Ok(())
    }

    /// Checks every setting; [`Error::Config`] names the first bad one.
    pub fn validate(&self) -> Result<()> {
        #[cfg(feature = "webhooks")]
        self.webhooks.validate()?;
        #[cfg(feature = "ai")]
        self.ai.validate()?;
        #[cfg(feature = "stripe")]
        self.billing.validate()?;
        self.media.validate()?;
        self.n8n.validate()?;
        self.oauth.validate()?;
        let db_url = self.database_url();
        let db = db_url.expose_secret();
        if !(db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(bad("DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://"));
        }
        if let Some(r) = &self.redis_url {
            let r = r.expose_secret();
            if !(r.starts_with("redis://") || r.starts_with("rediss://")) {
                return Err(bad("REDIS_URL", "must start with redis:// or rediss://"));
            }
        }
        if !(1..=500).contains(&self.database_pool_size) {
            return Err(bad("database_pool_size", "must be between 1 and 500"));
        }
        if !(1..=3600).contains(&self.request_timeout_secs) {
            return Err(bad("request_timeout_secs", "must be between 1 and 3600"));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return Err(bad("body_limit_bytes", "must be between 1 KiB and 64 MiB"));
        }
        if self.rate_limit.per_key_per_minute == 0 || self.rate_limit.per_ip_per_minute == 0 {
            return Err(bad("rate_limit", "limits must be at least 1 per minute"));
        }
        if !(1..=60 * 24 * 30).contains(&self.session_ttl_minutes) {
            return Err(bad("session_ttl_minutes", "must be between 1 minute and 30 days"));
        }
        if let Some(cc) = &self.default_country
            && (!(1..=3).contains(&cc.len()) || !cc.bytes().all(|b| b.is_ascii_digit()) || cc.starts_with('0'))
        {
            return Err(bad("CRM_DEFAULT_COUNTRY", "expected a country calling code like 55, or none"));
        }
        if !(1..=1000).contains(&self.dispatch_concurrency) {
            return Err(bad("CRM_DISPATCH_CONCURRENCY", "must be between 1 and 1000"));
        }
        if !(1..=100).contains(&self.send_max_attempts) {
            return Err(bad("CRM_SEND_MAX_ATTEMPTS", "must be between 1 and 100"));
        }
        if !(60..=30 * 24 * 3600).contains(&self.send_deadline_secs) {
            return Err(bad("CRM_SEND_DEADLINE_SECS", "must be between 60 seconds and 30 days"));
        }
        if self.api_key_cache_secs > 300 {
            return Err(bad("CRM_API_KEY_CACHE_SECS", "must be at most 300"));
        }
        if self.channel_cache_secs > 300 {
            return Err(bad("CRM_CHANNEL_CACHE_SECS", "must be at most 300"));
        }
        if !(5..=600).contains(&self.whatsapp_web_lease_secs) {
            return Err(bad("CRM_WHATSAPP_WEB_LEASE_SECS", "must be between 5 and 600"));
        }
        let url = &self.whatsapp_web_url;
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
            return Err(bad("CRM_WHATSAPP_WEB_URL", "must be an http(s) URL"));
        }
        if let Some(k) = &self.secret_keys {
            crm_core::secrets::Keyring::parse(k.expose_secret()).map_err(|e| bad("CRM_SECRET_KEYS", e))?;
        }
        for o in &self.cors_origins {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(bad("cors_origins", format!("{o:?} is not an origin like https://app.example.com")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn redact_url_hides_every_credential_form() {
        for (url, shown) in [
            ("postgres://crm:s3cret@db:5432/crm", "postgres://crm:***@db:5432/crm"),
            ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
            ("postgres://db/crm?password=s3cret", "postgres://db/crm?password=***"),
            (
                "postgres://crm@db/crm?sslmode=require&PassWord=s3cret",
                "postgres://crm:***@db/crm?sslmode=require&PassWord=***",
            ),
            ("postgres://db/crm?pass%77ord=s3cret", "postgres://db/crm?pass%77ord=***"),
            (
                "postgres://db/crm?sslpassword=s3cret&application_name=x",
                "postgres://db/crm?sslpassword=***&application_name=x",
            ),
            ("redis+unix:///run/redis.sock?db=1&pass=s3cret", "redis+unix:///run/redis.sock?db=1&pass=***"),
            ("postgres://crm:p@ss@db/crm", "postgres://crm:***@db/crm"),
            ("postgres://db/crm?password=s3cret@x", "postgres://***@x"),
            ("sqlite://crm-data/crm.db?mode=rwc", "sqlite://crm-data/crm.db?mode=rwc"),
        ] {
            let redacted = redact_url(url);
            assert_eq!(redacted, shown);
            assert!(!redacted.contains("s3cret") && !redacted.contains("p@ss"), "{redacted}");
        }
        let config =
            Config { database_url: Some("postgres://db/crm?password=s3cret".to_owned().into()), ..Config::default() };
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn env_overrides_defaults() {
        let c = Config::load(
            None,
            env(&[("PORT", "9000"), ("DATABASE_URL", "postgres://u:pw@127.0.0.1/db"), ("CRM_LOG_FORMAT", "json")]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        let d = Config::load(None, env(&[("CRM_DATA_DIR", "/var/lib/crm")])).unwrap();
        assert_eq!(d.database_url().expose_secret(), "sqlite:///var/lib/crm/crm.db?mode=rwc");
        assert_eq!(c.log_format, LogFormat::Json);
        let dbg = format!("{c:?}");
        assert!(dbg.contains("postgres://u:***@127.0.0.1/db"), "{dbg}");
        assert!(!dbg.contains("pw"), "secrets never printed: {dbg}");
    }

    #[test]
    fn bad_settings_are_named() {
        let e = Config::load(None, env(&[("PORT", "http")])).unwrap_err().to_string();
        assert!(e.contains("PORT"), "{e}");
        let e = Config::load(None, env(&[("DATABASE_URL", "mysql://x")])).unwrap_err().to_string();
        assert!(e.contains("DATABASE_URL"), "{e}");
        let e = Config::load(None, env(&[("REDIS_URL", "http://x")])).unwrap_err().to_string();
        assert!(e.contains("REDIS_URL"), "{e}");
        let e = Config::load(None, env(&[("CRM_DEFAULT_COUNTRY", "BR")])).unwrap_err().to_string();
        assert!(e.contains("CRM_DEFAULT_COUNTRY"), "{e}");
        assert_eq!(Config::load(None, env(&[("CRM_DEFAULT_COUNTRY", "none")])).unwrap().default_country, None);
        let e = Config::load(None, env(&[("CRM_CORS_ORIGINS", "example.com")])).unwrap_err().to_string();
        assert!(e.contains("cors_origins"), "{e}");
        let e = Config::load(None, env(&[("CRM_DATABASE_POOL_SIZE", "0")])).unwrap_err().to_string();
        assert!(e.contains("database_pool_size"), "{e}");
        assert_eq!(Config::load(None, env(&[("CRM_DATABASE_POOL_SIZE", "25")])).unwrap().database_pool_size, 25);
        assert_eq!(Config::load(None, env(&[])).unwrap().database_pool_size, 10);
    }

    #[test]
    fn toml_file_then_env() {
        let dir = std::env::temp_dir().join(format!("crm-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crm.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\n[rate_limit]\nper_key_per_minute = 5\n").unwrap();
        let c = Config::load(Some(&path), env(&[("PORT", "7001")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7001");
        assert_eq!(c.rate_limit.per_key_per_minute, 5);
        std::fs::write(&path, "lisen = 1\n").unwrap();
        let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(e.contains("lisen"), "unknown keys are named: {e}");
        std::fs::remove_dir_all(dir).ok();
    }
}

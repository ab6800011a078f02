//! n8n: the settings (`[n8n]` in `crm.toml`; `N8N_URL`, `N8N_API_KEY`,
//! `N8N_WEBHOOK_SECRET`), and the adapter the server builds from them
//! (feature `n8n`): a readiness probe (`/healthz`), the `workflow.trigger`
//! job worker and the `/api/v1/n8n/workflows` routes.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

use crm_core::ports::workflows::Workflows;
use crm_core::{Error, Result};

/// Where n8n is and how crm talks to it.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct N8nConfig {
    /// n8n's base URL, e.g. `http://127.0.0.1:5678` (`N8N_URL`); unset: no n8n.
    pub url: Option<String>,
    /// Its API key (`N8N_API_KEY`; n8n: Settings → n8n API); needed for the
    /// `/api/v1/n8n/workflows` routes, never logged.
    pub api_key: Option<SecretString>,
    /// The `whsec_…` secret that signs workflow triggers the Standard
    /// Webhooks way (`N8N_WEBHOOK_SECRET`); unset: triggers go unsigned.
    pub webhook_secret: Option<SecretString>,
    /// Seconds per request to n8n (`N8N_TIMEOUT_SECS`, default 10).
    pub timeout_secs: Option<u64>,
}

impl fmt::Debug for N8nConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("N8nConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "[redacted]"))
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

fn bad(setting: &str, reason: &str) -> Error {
    Error::Config { message: format!("{setting}: {reason}") }
}

impl N8nConfig {
    /// Applies the `N8N_*` variables `get` finds.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("N8N_URL") {
            self.url = Some(v.trim().to_owned());
        }
        if let Some(v) = get("N8N_API_KEY") {
            self.api_key = Some(SecretString::from(v.trim().to_owned()));
        }
        if let Some(v) = get("N8N_WEBHOOK_SECRET") {
            self.webhook_secret = Some(SecretString::from(v.trim().to_owned()));
        }
        if let Some(v) = get("N8N_TIMEOUT_SECS") {
            self.timeout_secs = Some(v.trim().parse().map_err(|_| bad("N8N_TIMEOUT_SECS", "expected a whole number"))?);
        }
        Ok(())
    }

    /// Checks the settings without building anything.
    pub fn validate(&self) -> Result<()> {
        if self.url.is_none() && (self.api_key.is_some() || self.webhook_secret.is_some()) {
            return Err(bad("N8N_URL", "is required when N8N_API_KEY or N8N_WEBHOOK_SECRET is set"));
        }
        if let Some(u) = &self.url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(bad("N8N_URL", "must be an http(s) URL"));
        }
        if self.timeout_secs.is_some_and(|t| !(1..=300).contains(&t)) {
            return Err(bad("N8N_TIMEOUT_SECS", "must be 1 to 300"));
        }
        #[cfg(feature = "n8n")]
        if let Some(s) = &self.webhook_secret {
            crm_webhooks::SigningSecret::parse(s.expose_secret())
                .map_err(|_| bad("N8N_WEBHOOK_SECRET", "must be whsec_ followed by the base64 of 24 to 64 bytes"))?;
        }
        Ok(())
    }

    /// The n8n adapter, when `N8N_URL` is set. [`Error::Config`] when it is
    /// set but this build has no `n8n` feature, or a setting is bad.
    pub fn workflows(&self) -> Result<Option<Arc<dyn Workflows>>> {
        let Some(url) = &self.url else { return Ok(None) };
        #[cfg(feature = "n8n")]
        {
            let mut b = crm_connectors::n8n::N8n::builder()
                .base_url(url)
                .timeout(std::time::Duration::from_secs(self.timeout_secs.unwrap_or(10)));
            if let Some(k) = &self.api_key {
                b = b.api_key(k.expose_secret());
            }
            if let Some(s) = &self.webhook_secret {
                let secret = crm_webhooks::SigningSecret::parse(s.expose_secret())
                    .map_err(|_| bad("N8N_WEBHOOK_SECRET", "must be whsec_ followed by base64"))?;
                b = b.webhook_secret(secret);
            } else {
                tracing::warn!("N8N_WEBHOOK_SECRET is not set: workflow triggers go to n8n unsigned");
            }
            let n8n = b.build().map_err(|e| match e {
                Error::Config { message } => bad("N8N_URL", &message),
                other => other,
            })?;
            Ok(Some(Arc::new(n8n)))
        }
        #[cfg(not(feature = "n8n"))]
        {
            let _ = url;
            Err(bad("N8N_URL", "this build has no n8n support (feature `n8n`)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<N8nConfig> {
        let mut c = N8nConfig::default();
        c.apply_env(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn settings_are_read_checked_and_never_printed() {
        assert!(cfg(&[]).unwrap().workflows().unwrap().is_none());
        let c = cfg(&[("N8N_URL", "http://127.0.0.1:5678"), ("N8N_API_KEY", "n8n-key-secret-value")]).unwrap();
        assert!(!format!("{c:?}").contains("n8n-key-secret-value"));
        assert!(cfg(&[("N8N_API_KEY", "k")]).is_err(), "a key without a URL");
        assert!(cfg(&[("N8N_URL", "ftp://x")]).is_err());
        assert!(cfg(&[("N8N_URL", "http://x"), ("N8N_TIMEOUT_SECS", "0")]).is_err());
        assert!(cfg(&[("N8N_URL", "http://x"), ("N8N_TIMEOUT_SECS", "soon")]).is_err());
        #[cfg(feature = "n8n")]
        {
            assert!(cfg(&[("N8N_URL", "http://x"), ("N8N_WEBHOOK_SECRET", "nope")]).is_err());
            let w = cfg(&[
                ("N8N_URL", "http://127.0.0.1:5678"),
                ("N8N_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ])
            .unwrap()
            .workflows()
            .unwrap()
            .unwrap();
            assert_eq!(w.name(), "n8n");
            assert!(!format!("{w:?}").contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        }
    }
}

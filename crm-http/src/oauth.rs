//! OAuth 2.0 connections: the settings (`[oauth]` in `crm.toml`;
//! `GOOGLE_OAUTH_*`, `SALESFORCE_*`, `OAUTH_TIMEOUT_SECS`) and what the
//! server builds from them (feature `oauth`): the connections service
//! behind `/auth/{provider}/*` and `/api/v1/oauth`, and the Salesforce
//! adapter with its `salesforce.push` / `salesforce.pull` job workers.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
#[cfg(feature = "oauth")]
use std::sync::Arc;

use crm_core::{Error, Result};

/// One provider's client registration.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthProviderConfig {
    /// The OAuth client id.
    pub client_id: Option<String>,
    /// The client secret (never logged).
    pub client_secret: Option<SecretString>,
    /// The redirect URI registered at the provider, exactly:
    /// `https://<host>/auth/<provider>/callback`.
    pub redirect_uri: Option<String>,
    /// Where the provider's endpoints are (Salesforce: a sandbox's
    /// `https://test.salesforce.com`; tests: a server on 127.0.0.1).
    pub base_url: Option<String>,
}

impl fmt::Debug for OAuthProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthProviderConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uri", &self.redirect_uri)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// OAuth providers and the Salesforce API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// Google (`GOOGLE_OAUTH_CLIENT_ID`, `GOOGLE_OAUTH_CLIENT_SECRET`,
    /// `GOOGLE_OAUTH_REDIRECT_URI`, `GOOGLE_OAUTH_BASE_URL`).
    pub google: OAuthProviderConfig,
    /// Salesforce (`SALESFORCE_CLIENT_ID`, `SALESFORCE_CLIENT_SECRET`,
    /// `SALESFORCE_REDIRECT_URI`, `SALESFORCE_LOGIN_URL`).
    pub salesforce: OAuthProviderConfig,
    /// Salesforce's REST API version (`SALESFORCE_API_VERSION`, default `v62.0`).
    pub salesforce_api_version: Option<String>,
    /// Seconds per request to a provider (`OAUTH_TIMEOUT_SECS`, default 10).
    pub timeout_secs: Option<u64>,
}

fn bad(setting: &str, reason: &str) -> Error {
    Error::Config { message: format!("{setting}: {reason}") }
}

impl OAuthProviderConfig {
    fn apply_env(&mut self, prefix: &str, base: &str, get: &impl Fn(&str) -> Option<String>) {
        let read = |name: &str| get(&format!("{prefix}{name}")).map(|v| v.trim().to_owned());
        if let Some(v) = read("CLIENT_ID") {
            self.client_id = Some(v);
        }
        if let Some(v) = read("CLIENT_SECRET") {
            self.client_secret = Some(SecretString::from(v));
        }
        if let Some(v) = read("REDIRECT_URI") {
            self.redirect_uri = Some(v);
        }
        if let Some(v) = get(base) {
            self.base_url = Some(v.trim().to_owned());
        }
    }

    fn configured(&self) -> bool {
        self.client_id.is_some() || self.client_secret.is_some() || self.redirect_uri.is_some()
    }

    fn validate(&self, prefix: &str) -> Result<()> {
        if !self.configured() {
            return Ok(());
        }
        if self.client_id.as_deref().is_none_or(str::is_empty)
            || self.client_secret.as_ref().is_none_or(|s| s.expose_secret().is_empty())
        {
            return Err(bad(&format!("{prefix}CLIENT_ID"), "and the client secret are both required"));
        }
        let uri = self.redirect_uri.as_deref().unwrap_or_default();
        crm_core::ports::oauth::check_redirect_uri(uri).map_err(|_| {
            bad(&format!("{prefix}REDIRECT_URI"), "must be the https callback URL registered at the provider")
        })?;
        if let Some(b) = &self.base_url
            && !(b.starts_with("https://") || b.starts_with("http://"))
        {
            return Err(bad(&format!("{prefix}BASE_URL"), "must be an http(s) URL"));
        }
        Ok(())
    }
}

impl OAuthConfig {
    /// Applies the variables `get` finds.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        self.google.apply_env("GOOGLE_OAUTH_", "GOOGLE_OAUTH_BASE_URL", &get);
        self.salesforce.apply_env("SALESFORCE_", "SALESFORCE_LOGIN_URL", &get);
        if let Some(v) = get("SALESFORCE_API_VERSION") {
            self.salesforce_api_version = Some(v.trim().to_owned());
        }
        if let Some(v) = get("OAUTH_TIMEOUT_SECS") {
            self.timeout_secs =
                Some(v.trim().parse().map_err(|_| bad("OAUTH_TIMEOUT_SECS", "expected a whole number"))?);
        }
        Ok(())
    }

    /// Checks the settings without building anything.
    pub fn validate(&self) -> Result<()> {
        self.google.validate("GOOGLE_OAUTH_")?;
        self.salesforce.validate("SALESFORCE_")?;
        if self.timeout_secs.is_some_and(|t| !(1..=120).contains(&t)) {
            return Err(bad("OAUTH_TIMEOUT_SECS", "must be 1 to 120"));
        }
        Ok(())
    }

    /// Whether any provider is configured.
    pub fn any(&self) -> bool {
        self.google.configured() || self.salesforce.configured()
    }
}

/// The OAuth connections and, with a Salesforce grant source, the Salesforce adapter.
#[cfg(feature = "oauth")]
#[derive(Debug, Clone)]
pub struct OAuthServices {
    /// Start, complete, list, disconnect; fresh tokens.
    pub connections: crm_core::oauth::OAuthConnections,
    /// Salesforce's REST API, when Salesforce is configured.
    pub salesforce: Option<Arc<dyn crm_core::ExternalCrm>>,
}

#[cfg(feature = "oauth")]
impl OAuthConfig {
    /// The services, when a provider is configured. [`Error::Config`] when
    /// one is but there is no keyring to seal tokens with, or a setting is bad.
    pub fn services(&self, crm: &crm_core::Crm) -> Result<Option<OAuthServices>> {
        use crm_connectors::oauth::{OAuthHttpClient, ProviderConfig};
        use crm_core::OAuthProvider;
        if !self.any() {
            return Ok(None);
        }
        let keyring = crm
            .channels()
            .keyring()
            .cloned()
            .ok_or_else(|| bad("CRM_SECRET_KEYS", "is required to keep OAuth tokens (they are stored sealed)"))?;
        let timeout = std::time::Duration::from_secs(self.timeout_secs.unwrap_or(10));
        let mut builder = OAuthHttpClient::builder().timeout(timeout);
        for (provider, c) in [(OAuthProvider::Google, &self.google), (OAuthProvider::Salesforce, &self.salesforce)] {
            if !c.configured() {
                continue;
            }
            let (id, secret) = (
                c.client_id.clone().unwrap_or_default(),
                c.client_secret.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default(),
            );
            let uri = c.redirect_uri.clone().unwrap_or_default();
            let mut pc = match provider {
                OAuthProvider::Google => ProviderConfig::google(id, secret, uri),
                OAuthProvider::Salesforce => ProviderConfig::salesforce(id, secret, uri),
            };
            if let Some(b) = &c.base_url {
                pc = pc.base_url(provider, b);
            }
            builder = builder.provider(provider, pc);
        }
        let client = Arc::new(builder.build()?);
        let connections =
            crm_core::oauth::OAuthConnections::new(crm.store().clone(), client, keyring, crm.clock().clone());
        let salesforce: Option<Arc<dyn crm_core::ExternalCrm>> = if self.salesforce.configured() {
            let mut b = crm_connectors::salesforce::SalesforceCrm::builder()
                .tokens(Arc::new(connections.clone()))
                .timeout(timeout)
                .clock(crm.clock().clone());
            if let Some(v) = &self.salesforce_api_version {
                b = b.api_version(v);
            }
            Some(Arc::new(b.build()?))
        } else {
            None
        };
        Ok(Some(OAuthServices { connections, salesforce }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<OAuthConfig> {
        let mut c = OAuthConfig::default();
        c.apply_env(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn settings_are_read_checked_and_never_printed() {
        assert!(!cfg(&[]).unwrap().any());
        let c = cfg(&[
            ("SALESFORCE_CLIENT_ID", "3MVG9"),
            ("SALESFORCE_CLIENT_SECRET", "sf-secret-value"),
            ("SALESFORCE_REDIRECT_URI", "https://crm.example/auth/salesforce/callback"),
        ])
        .unwrap();
        assert!(c.any());
        assert!(!format!("{c:?}").contains("sf-secret-value"));
        assert!(cfg(&[("GOOGLE_OAUTH_CLIENT_ID", "x")]).is_err(), "no secret");
        let no_https = [
            ("GOOGLE_OAUTH_CLIENT_ID", "x"),
            ("GOOGLE_OAUTH_CLIENT_SECRET", "y"),
            ("GOOGLE_OAUTH_REDIRECT_URI", "http://crm.example/auth/google/callback"),
        ];
        assert!(cfg(&no_https).is_err(), "plain http off loopback");
        assert!(cfg(&[("OAUTH_TIMEOUT_SECS", "0")]).is_err());
    }
}

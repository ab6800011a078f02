//! What a `whatsapp-cloud` channel holds: the phone number id (the channel's
//! `provider_id`), non-secret settings, and credentials.

use crm_core::secrets::Credentials;
use crm_core::{Channel, Error, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Graph API version used when a channel does not name one.
pub const DEFAULT_API_VERSION: &str = "v23.0";

/// Where the Graph API lives (tests and proxies point a channel elsewhere).
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// How long one Graph call may take when a channel does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Credential names a channel stores (sealed).
pub mod credential {
    /// The system-user (or temporary) access token that sends messages.
    pub const ACCESS_TOKEN: &str = "access_token";
    /// The Meta app's secret that signs webhooks (`X-Hub-Signature-256`).
    pub const APP_SECRET: &str = "app_secret";
    /// The token typed into the app dashboard's webhook form, echoed in the
    /// verification handshake.
    pub const VERIFY_TOKEN: &str = "verify_token";
}

/// The non-secret settings of a `whatsapp-cloud` channel (its `settings`
/// JSON object). Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudSettings {
    /// The WhatsApp Business Account id (templates are synced from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_account_id: Option<String>,
    /// Graph API version, `vNN.N` (default [`DEFAULT_API_VERSION`]).
    pub api_version: String,
    /// Graph API base URL (default [`DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// Seconds one Graph call may take, 1–120 (default 15).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Ask WhatsApp to render a preview of the first link in text messages.
    pub link_preview: bool,
    /// The template a free-form send falls back to outside the 24-hour
    /// window (`{"name", "language", "variables"}`; read by crm-core, see
    /// [`Channel::fallback_template`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_template: Option<crm_core::FallbackTemplate>,
    /// Largest inbound media file downloaded from Meta, in bytes (default
    /// [`crate::media::DEFAULT_MAX_MEDIA_BYTES`], at most 100 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_media_bytes: Option<u64>,
}

impl Default for CloudSettings {
    fn default() -> Self {
        Self {
            business_account_id: None,
            api_version: DEFAULT_API_VERSION.into(),
            base_url: DEFAULT_BASE_URL.into(),
            timeout_secs: None,
            link_preview: false,
            fallback_template: None,
            max_media_bytes: None,
        }
    }
}

fn digits(field: &'static str, value: &str) -> Result<()> {
    if (1..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::validation(field, "must be 1 to 32 digits (as Meta's app dashboard shows it)"))
    }
}

impl CloudSettings {
    /// Reads a channel's settings object. [`Error::Validation`] names the
    /// offending `settings.*` field.
    pub fn from_channel(channel: &Channel) -> Result<Self> {
        let value = serde_json::Value::Object(channel.settings.clone());
        let settings: CloudSettings =
            serde_json::from_value(value).map_err(|e| Error::validation("settings", clip(&e.to_string())))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if let Some(waba) = &self.business_account_id {
            digits("settings.business_account_id", waba)?;
        }
        let v = self.api_version.strip_prefix('v').unwrap_or("");
        let version_ok = !v.is_empty()
            && v.len() <= 8
            && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && v.split('.').count() <= 2;
        if !version_ok {
            return Err(Error::validation("settings.api_version", "must look like v23.0"));
        }
        check_base_url(&self.base_url)?;
        if self.timeout_secs.is_some_and(|t| !(1..=120).contains(&t)) {
            return Err(Error::validation("settings.timeout_secs", "must be 1 to 120"));
        }
        if self.max_media_bytes.is_some_and(|m| !(1..=crate::media::MAX_MEDIA_BYTES).contains(&m)) {
            return Err(Error::validation("settings.max_media_bytes", "must be 1 to 104857600 (100 MiB)"));
        }
        Ok(())
    }

    /// The largest inbound media file downloaded.
    pub fn max_media_bytes(&self) -> u64 {
        self.max_media_bytes.unwrap_or(crate::media::DEFAULT_MAX_MEDIA_BYTES)
    }

    /// The timeout of one Graph call.
    pub fn timeout(&self) -> Duration {
        self.timeout_secs.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT)
    }
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Checks a Graph base URL: `http(s)://host[:port][/path]`, no user info,
/// query or fragment.
pub(crate) fn check_base_url(url: &str) -> Result<()> {
    let bad =
        || Error::validation("settings.base_url", "must be an http(s) URL without credentials, query or fragment");
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or("");
    if url.len() > 512
        || host.is_empty()
        || host.contains('@')
        || url.contains(['?', '#', ' '])
        || url.chars().any(char::is_control)
    {
        return Err(bad());
    }
    Ok(())
}

/// A channel's secrets, opened. `Debug` never shows them.
#[derive(Clone)]
pub struct CloudCredentials {
    /// Sends messages and calls the Graph API.
    pub access_token: SecretString,
    /// Verifies webhook signatures; without it inbound traffic is refused.
    pub app_secret: Option<SecretString>,
    /// Answers the webhook verification handshake; without it the handshake is refused.
    pub verify_token: Option<SecretString>,
}

impl fmt::Debug for CloudCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudCredentials")
            .field("access_token", &"[redacted]")
            .field("app_secret", &self.app_secret.as_ref().map(|_| "[redacted]"))
            .field("verify_token", &self.verify_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl CloudCredentials {
    /// Reads them from a channel's opened credentials. [`Error::Validation`]
    /// on `credentials.access_token` when it is missing.
    pub fn from_credentials(c: &Credentials) -> Result<Self> {
        let secret = |name| c.get(name).filter(|v| !v.is_empty()).map(|v| SecretString::from(v.to_owned()));
        let access_token = secret(credential::ACCESS_TOKEN).ok_or_else(|| {
            Error::validation("credentials.access_token", "required: the access token from Meta's app dashboard")
        })?;
        if access_token.expose_secret().chars().any(char::is_whitespace) {
            return Err(Error::validation("credentials.access_token", "must not contain spaces"));
        }
        Ok(Self {
            access_token,
            app_secret: secret(credential::APP_SECRET),
            verify_token: secret(credential::VERIFY_TOKEN),
        })
    }
}

/// Checks what a `whatsapp-cloud` channel needs before it is stored: the
/// phone number id as its `provider_id`, valid settings, and (when
/// credentials are being set, or the channel has none) an access token.
pub fn validate_channel(channel: &Channel, credentials: Option<&Credentials>) -> Result<()> {
    let pnid = channel
        .provider_id
        .as_deref()
        .ok_or_else(|| Error::validation("provider_id", "required: the phone number id from Meta's app dashboard"))?;
    digits("provider_id", pnid)?;
    CloudSettings::from_channel(channel)?;
    match credentials {
        Some(c) => CloudCredentials::from_credentials(c).map(|_| ()),
        None if channel.credentials.is_none() => {
            Err(Error::validation("credentials.access_token", "required: the access token from Meta's app dashboard"))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(CloudSettings::default().validate().is_ok());
        let bad = |f: fn(&mut CloudSettings)| {
            let mut s = CloudSettings::default();
            f(&mut s);
            s.validate().unwrap_err().to_string()
        };
        assert!(bad(|s| s.api_version = "23".into()).contains("api_version"));
        assert!(bad(|s| s.api_version = "v23.0.1".into()).contains("api_version"));
        assert!(bad(|s| s.base_url = "ftp://x".into()).contains("base_url"));
        assert!(bad(|s| s.base_url = "https://u:p@graph".into()).contains("base_url"));
        assert!(bad(|s| s.base_url = "https://graph/?a=1".into()).contains("base_url"));
        assert!(bad(|s| s.timeout_secs = Some(0)).contains("timeout_secs"));
        assert!(bad(|s| s.business_account_id = Some("12a".into())).contains("business_account_id"));
    }

    #[test]
    fn credentials_never_print() {
        let mut c = Credentials::new();
        c.insert("access_token", "EAAG-secret-token");
        c.insert("app_secret", "app-secret-value");
        let creds = CloudCredentials::from_credentials(&c).unwrap();
        let shown = format!("{creds:?}");
        assert!(!shown.contains("EAAG") && !shown.contains("app-secret-value"), "{shown}");
        assert!(CloudCredentials::from_credentials(&Credentials::new()).is_err());
    }
}

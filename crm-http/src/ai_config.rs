//! The assistant's settings (`[ai]` in `crm.toml`; `OPENAI_API_KEY`,
//! `OPENAI_BASE_URL` and `CRM_AI_*` in the environment).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;

use crm_core::{Error, Result};

/// How the assistant runs. Without an API key the offline heuristic answers.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// The OpenAI (or compatible server's) API key (`OPENAI_API_KEY`); never logged.
    pub api_key: Option<SecretString>,
    /// The API base URL (`OPENAI_BASE_URL`, default `https://api.openai.com/v1`):
    /// any OpenAI-compatible server, e.g. a local model server.
    pub base_url: Option<String>,
    /// The chat model (`CRM_AI_MODEL`, default `gpt-4o-mini`).
    pub model: String,
    /// Tokens each account may use per calendar month (`CRM_AI_MONTHLY_TOKENS`;
    /// unset or 0: no budget). Past it, the heuristic answers until the month ends.
    pub monthly_tokens: Option<u64>,
    /// Model calls per account per minute (`CRM_AI_REQUESTS_PER_MINUTE`, default 60).
    pub requests_per_minute: u32,
    /// Seconds per model call (`CRM_AI_TIMEOUT_SECS`, default 20).
    pub timeout_secs: u64,
    /// Attempts per call on 429/5xx/timeouts (`CRM_AI_ATTEMPTS`, default 3).
    pub attempts: u32,
    /// Replace phones, e-mails and CPF numbers before text leaves
    /// (`CRM_AI_REDACT_PII`, default true).
    pub redact_pii: bool,
    /// Prices over the built-in table, `model=input/output,…` in US dollars
    /// per million tokens (`CRM_AI_PRICES`).
    pub prices: String,
    /// Draft length cap in tokens (`CRM_AI_REPLY_MAX_TOKENS`, default 150).
    pub reply_max_tokens: u32,
    /// Draft temperature (`CRM_AI_REPLY_TEMPERATURE`, default 0.7).
    pub reply_temperature: f32,
}

impl fmt::Debug for AiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("monthly_tokens", &self.monthly_tokens)
            .finish_non_exhaustive()
    }
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: None,
            model: "gpt-4o-mini".into(),
            monthly_tokens: None,
            requests_per_minute: 60,
            timeout_secs: 20,
            attempts: 3,
            redact_pii: true,
            prices: String::new(),
            reply_max_tokens: 150,
            reply_temperature: 0.7,
        }
    }
}

fn bad(setting: &str, reason: &str) -> Error {
    Error::Config { message: format!("{setting}: {reason}") }
}

impl AiConfig {
    /// Applies the variables `get` finds.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        let num = |k: &str| -> Result<Option<u64>> {
            get(k).map(|v| v.trim().parse::<u64>().map_err(|_| bad(k, "expected a whole number"))).transpose()
        };
        if let Some(v) = get("OPENAI_API_KEY").filter(|v| !v.trim().is_empty()) {
            self.api_key = Some(SecretString::from(v.trim().to_owned()));
        }
        if let Some(v) = get("OPENAI_BASE_URL").filter(|v| !v.trim().is_empty()) {
            self.base_url = Some(v.trim().to_owned());
        }
        if let Some(v) = get("CRM_AI_MODEL") {
            self.model = v.trim().to_owned();
        }
        if let Some(n) = num("CRM_AI_MONTHLY_TOKENS")? {
            self.monthly_tokens = (n > 0).then_some(n);
        }
        if let Some(n) = num("CRM_AI_REQUESTS_PER_MINUTE")? {
            self.requests_per_minute = u32::try_from(n).map_err(|_| bad("CRM_AI_REQUESTS_PER_MINUTE", "too large"))?;
        }
        if let Some(n) = num("CRM_AI_TIMEOUT_SECS")? {
            self.timeout_secs = n;
        }
        if let Some(n) = num("CRM_AI_ATTEMPTS")? {
            self.attempts = u32::try_from(n).map_err(|_| bad("CRM_AI_ATTEMPTS", "too large"))?;
        }
        if let Some(v) = get("CRM_AI_REDACT_PII") {
            self.redact_pii = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(bad("CRM_AI_REDACT_PII", "expected true or false")),
            };
        }
        if let Some(v) = get("CRM_AI_PRICES") {
            self.prices = v;
        }
        if let Some(n) = num("CRM_AI_REPLY_MAX_TOKENS")? {
            self.reply_max_tokens = u32::try_from(n).map_err(|_| bad("CRM_AI_REPLY_MAX_TOKENS", "too large"))?;
        }
        if let Some(v) = get("CRM_AI_REPLY_TEMPERATURE") {
            self.reply_temperature =
                v.trim().parse().map_err(|_| bad("CRM_AI_REPLY_TEMPERATURE", "expected a number such as 0.7"))?;
        }
        Ok(())
    }

    /// Checks the settings; [`Error::Config`] names the first bad one (never a secret).
    pub fn validate(&self) -> Result<()> {
        if let Some(u) = &self.base_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(bad("OPENAI_BASE_URL", "must be an http(s) URL"));
        }
        if self.model.trim().is_empty() || self.model.len() > 200 {
            return Err(bad("CRM_AI_MODEL", "must be a model name"));
        }
        if !(1..=100_000).contains(&self.requests_per_minute) {
            return Err(bad("CRM_AI_REQUESTS_PER_MINUTE", "must be between 1 and 100000"));
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(bad("CRM_AI_TIMEOUT_SECS", "must be between 1 and 300"));
        }
        if !(1..=10).contains(&self.attempts) {
            return Err(bad("CRM_AI_ATTEMPTS", "must be between 1 and 10"));
        }
        if !(1..=4096).contains(&self.reply_max_tokens) {
            return Err(bad("CRM_AI_REPLY_MAX_TOKENS", "must be between 1 and 4096"));
        }
        if !(self.reply_temperature.is_finite() && (0.0..=2.0).contains(&self.reply_temperature)) {
            return Err(bad("CRM_AI_REPLY_TEMPERATURE", "must be between 0 and 2"));
        }
        crm_ai::PriceTable::parse_over_defaults(&self.prices)?;
        Ok(())
    }

    /// The key, if one is set and not blank.
    pub(crate) fn key(&self) -> Option<&str> {
        self.api_key.as_ref().map(|k| k.expose_secret()).filter(|k| !k.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_validation() {
        let mut c = AiConfig::default();
        let env = |k: &str| match k {
            "OPENAI_API_KEY" => Some("sk-secret-value".to_string()),
            "OPENAI_BASE_URL" => Some("http://127.0.0.1:8080/v1".to_string()),
            "CRM_AI_MODEL" => Some("qwen2.5".to_string()),
            "CRM_AI_MONTHLY_TOKENS" => Some("100000".to_string()),
            "CRM_AI_PRICES" => Some("qwen2.5=0/0".to_string()),
            _ => None,
        };
        c.apply_env(env).expect("env");
        c.validate().expect("valid");
        assert_eq!((c.key(), c.model.as_str(), c.monthly_tokens), (Some("sk-secret-value"), "qwen2.5", Some(100_000)));
        assert!(!format!("{c:?}").contains("sk-secret"), "the key is never printed");
        c.prices = "nonsense".into();
        let err = c.validate().expect_err("bad prices");
        assert!(err.to_string().contains("AI price"), "{err}");
        c.prices.clear();
        c.base_url = Some("ftp://x".into());
        assert!(c.validate().is_err());
        let mut c = AiConfig::default();
        assert!(c.apply_env(|k| (k == "CRM_AI_REDACT_PII").then(|| "maybe".to_string())).is_err());
    }
}

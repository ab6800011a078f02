//! The outbound webhooks' settings (`[webhooks]` in `crm.toml`,
//! `CRM_WEBHOOK_*` in the environment).

use serde::Deserialize;

use crm_core::{Error, Result};

/// How outbound webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Networks webhooks may reach although the SSRF guard refuses them
    /// (`CRM_WEBHOOK_ALLOW_NETWORKS`, comma-separated CIDRs such as
    /// `127.0.0.0/8,::1`). Empty by default: loopback, private, link-local
    /// and the other internal ranges are refused. For development and tests.
    pub allow_networks: Vec<String>,
    /// Seconds per attempt (`CRM_WEBHOOK_TIMEOUT_SECS`, default 15).
    pub timeout_secs: u64,
    /// Delays between attempts in seconds (`CRM_WEBHOOK_RETRY_SCHEDULE`,
    /// comma-separated; default 5,300,1800,7200,18000,36000,36000).
    pub retry_schedule_secs: Vec<u64>,
    /// Hours of continuous failure before an endpoint is disabled
    /// (`CRM_WEBHOOK_DISABLE_AFTER_HOURS`, default 120: 5 days).
    pub disable_after_hours: u64,
    /// Attempts running at once in one process (`CRM_WEBHOOK_CONCURRENCY`, default 64).
    pub concurrency: usize,
    /// Attempts to one endpoint running at once in one process
    /// (`CRM_WEBHOOK_ENDPOINT_CONCURRENCY`, default 4).
    pub endpoint_concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_networks: Vec::new(),
            timeout_secs: 15,
            retry_schedule_secs: vec![5, 300, 1800, 7200, 18_000, 36_000, 36_000],
            disable_after_hours: 120,
            concurrency: 64,
            endpoint_concurrency: 4,
        }
    }
}

fn bad(setting: &str, reason: &str) -> Error {
    Error::Config { message: format!("{setting}: {reason}") }
}

impl WebhookConfig {
    /// Applies the `CRM_WEBHOOK_*` variables `get` finds.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        let num = |k: &str| -> Result<Option<u64>> {
            get(k).map(|v| v.trim().parse::<u64>().map_err(|_| bad(k, "expected a whole number"))).transpose()
        };
        let list = |v: String| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        if let Some(v) = get("CRM_WEBHOOK_ALLOW_NETWORKS") {
            self.allow_networks = list(v);
        }
        if let Some(n) = num("CRM_WEBHOOK_TIMEOUT_SECS")? {
            self.timeout_secs = n;
        }
        if let Some(v) = get("CRM_WEBHOOK_RETRY_SCHEDULE") {
            self.retry_schedule_secs = list(v)
                .into_iter()
                .map(|s: String| s.parse::<u64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad("CRM_WEBHOOK_RETRY_SCHEDULE", "expected seconds separated by commas"))?;
        }
        if let Some(n) = num("CRM_WEBHOOK_DISABLE_AFTER_HOURS")? {
            self.disable_after_hours = n;
        }
        if let Some(n) = num("CRM_WEBHOOK_CONCURRENCY")? {
            self.concurrency = usize::try_from(n).map_err(|_| bad("CRM_WEBHOOK_CONCURRENCY", "too large"))?;
        }
        if let Some(n) = num("CRM_WEBHOOK_ENDPOINT_CONCURRENCY")? {
            self.endpoint_concurrency =
                usize::try_from(n).map_err(|_| bad("CRM_WEBHOOK_ENDPOINT_CONCURRENCY", "too large"))?;
        }
        Ok(())
    }

    /// Checks the settings; [`Error::Config`] names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(bad("CRM_WEBHOOK_TIMEOUT_SECS", "must be between 1 and 300"));
        }
        if self.retry_schedule_secs.len() > 50 || self.retry_schedule_secs.iter().any(|s| *s > 7 * 86_400) {
            return Err(bad("CRM_WEBHOOK_RETRY_SCHEDULE", "at most 50 delays of at most 7 days"));
        }
        if !(1..=24 * 365).contains(&self.disable_after_hours) {
            return Err(bad("CRM_WEBHOOK_DISABLE_AFTER_HOURS", "must be between 1 hour and a year"));
        }
        if !(1..=1000).contains(&self.concurrency) || !(1..=1000).contains(&self.endpoint_concurrency) {
            return Err(bad("CRM_WEBHOOK_CONCURRENCY", "concurrency must be between 1 and 1000"));
        }
        crm_webhooks::AddressPolicy::strict()
            .allow_list(&self.allow_networks.join(","))
            .map_err(|e| bad("CRM_WEBHOOK_ALLOW_NETWORKS", &e.to_string()))?;
        Ok(())
    }

    /// The delivery settings these describe.
    pub fn settings(&self) -> Result<crm_webhooks::WebhookSettings> {
        let delays = self.retry_schedule_secs.iter().map(|s| std::time::Duration::from_secs(*s)).collect();
        Ok(crm_webhooks::WebhookSettings {
            schedule: crm_webhooks::RetrySchedule::new(delays, 0.1)?,
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            disable_after: std::time::Duration::from_secs(self.disable_after_hours * 3600),
            per_endpoint_concurrency: self.endpoint_concurrency,
            policy: crm_webhooks::AddressPolicy::strict().allow_list(&self.allow_networks.join(","))?,
            ..crm_webhooks::WebhookSettings::default()
        })
    }
}

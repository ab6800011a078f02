//! The assistant stack the server runs: with `OPENAI_API_KEY`,
//! `Fallback(Redacting?(Metered(Limited(Retry(Timeout(OpenAi))))), Heuristic)`;
//! without, the heuristic alone (it calls nothing and costs nothing) — and
//! the `assistant` readiness probe saying which one answers.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crm_ai::guard::{Fallback, Limited, Metered, PriceTable, Redacting, Retry, Timeout};
use crm_ai::{AssistantService, Heuristic, OpenAiAssistant, OpenAiSettings};
use crm_core::{Assistant, Crm, Health, HealthCheck, Quota, RateLimiter, Result};

use crate::ai_config::AiConfig;

/// The service and its readiness probe.
pub(crate) fn service(
    config: &AiConfig,
    crm: &Crm,
    limiter: &Arc<dyn RateLimiter>,
) -> Result<(AssistantService, Arc<dyn HealthCheck>)> {
    let prices = PriceTable::parse_over_defaults(&config.prices)?;
    let heuristic: Arc<dyn Assistant> = Arc::new(Heuristic::new());
    let Some(key) = config.key() else {
        tracing::info!("no OPENAI_API_KEY: the offline heuristic assistant answers");
        let probe =
            AssistantProbe { detail: "no OPENAI_API_KEY: the offline heuristic answers".into(), configured: false };
        return Ok((AssistantService::new(crm.clone(), heuristic, config.monthly_tokens), Arc::new(probe)));
    };
    let mut settings = OpenAiSettings::new(key).model(config.model.clone());
    if let Some(url) = &config.base_url {
        settings = settings.base_url(url.clone());
    }
    settings.reply_max_tokens = config.reply_max_tokens;
    settings.reply_temperature = config.reply_temperature;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_secs + 5))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| crm_core::Error::Config { message: format!("cannot build the HTTP client: {e}") })?;
    let base = settings.base_url.clone();
    let openai: Arc<dyn Assistant> = Arc::new(OpenAiAssistant::new(settings, http)?);
    let timed: Arc<dyn Assistant> = Arc::new(Timeout::new(openai, Duration::from_secs(config.timeout_secs)));
    let retried: Arc<dyn Assistant> = Arc::new(Retry::new(
        timed,
        config.attempts,
        Duration::from_millis(500),
        Duration::from_secs(config.timeout_secs),
    ));
    let quota = Quota::per_minute(config.requests_per_minute)?;
    let limited: Arc<dyn Assistant> = Arc::new(Limited::new(retried, limiter.clone(), quota));
    let metered: Arc<dyn Assistant> =
        Arc::new(Metered::new(limited, crm.store().clone(), crm.clock().clone(), config.monthly_tokens, prices));
    let outer: Arc<dyn Assistant> = if config.redact_pii { Arc::new(Redacting::new(metered)) } else { metered };
    let assistant: Arc<dyn Assistant> = Arc::new(Fallback::new(outer, heuristic));
    let host = base.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("").to_owned();
    let probe =
        AssistantProbe { detail: format!("openai-compatible: model {} at {host}", config.model), configured: true };
    Ok((AssistantService::new(crm.clone(), assistant, config.monthly_tokens), Arc::new(probe)))
}

/// `/ready`'s `assistant` check: healthy with a key, degraded (the
/// heuristic answers) without. It makes no model call.
#[derive(Debug)]
struct AssistantProbe {
    detail: String,
    configured: bool,
}

#[async_trait]
impl HealthCheck for AssistantProbe {
    fn name(&self) -> &str {
        "assistant"
    }

    async fn check(&self) -> Health {
        if self.configured {
            let mut h = Health::healthy(Duration::ZERO);
            h.detail = Some(self.detail.clone());
            h
        } else {
            Health::degraded(Duration::ZERO, self.detail.clone())
        }
    }
}

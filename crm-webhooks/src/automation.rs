//! The automation engine's `call_webhook` action: a job worker that POSTs
//! the triggering event to a registered endpoint (signed with its secrets,
//! its headers added) or to a URL, through the [`Sender`] and its SSRF guard.
//!
//! Job [`WEBHOOK_JOB`](crm_core::automation::WEBHOOK_JOB), payload
//! `{"target": {"endpoint_id": "<uuid>"} | {"url": "https://…"}, "event": <Event>}`.
//! The body is the Standard Webhooks shape `{"type", "timestamp", "data"}`
//! with `webhook-id` (the event's id: receivers deduplicate retries) and
//! `webhook-timestamp`; an endpoint target adds `webhook-signature`. A URL
//! target has no secret to sign with: register the URL as an endpoint to
//! have it signed. 2xx is done; 408, 429 (after its `Retry-After`), 5xx and
//! network failures are retried by the runtime; other answers, a URL the SSRF
//! guard refuses and a deleted endpoint fail the job.

use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

use crm_core::automation::WEBHOOK_JOB;
use crm_core::domain::automation::WebhookTarget;
use crm_core::workers::{JobWorker, Outcome, WorkerOptions};
use crm_core::{Error, Event, Job, Result};

use crate::{Sender, Webhooks, signature_header};

#[derive(Debug, Deserialize)]
struct CallJob {
    target: WebhookTarget,
    event: Event,
}

/// Runs `call_webhook` actions.
#[derive(Debug, Clone)]
pub struct AutomationCaller {
    webhooks: Webhooks,
    sender: Sender,
}

impl AutomationCaller {
    /// A caller over `webhooks` (its settings give the timeout and the SSRF policy).
    pub fn new(webhooks: Webhooks) -> Result<Self> {
        let s = webhooks.current_settings();
        let sender = Sender::new(s.timeout, s.policy.clone())?;
        Ok(Self { webhooks, sender })
    }

    /// How the runtime should run it: up to 8 attempts with its backoff.
    pub fn options() -> WorkerOptions {
        WorkerOptions { max_attempts: 8, ..WorkerOptions::default() }
    }

    async fn call(&self, job: &Job) -> Result<Outcome> {
        let spec: CallJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| Error::validation("payload", format!("not an automation webhook job: {e}")))?;
        let account = job.account_id.ok_or_else(|| Error::validation("account_id", "the job names no account"))?;
        let body = Webhooks::body(&spec.event);
        let ts = chrono::Utc::now().timestamp();
        let msg_id = spec.event.id.to_string();
        let (url, mut headers) = match &spec.target {
            WebhookTarget::Url(url) => (url.clone(), BTreeMap::new()),
            WebhookTarget::EndpointId(id) => {
                let e = match self.webhooks.store().get_endpoint(account, *id).await {
                    Ok(e) => e,
                    Err(Error::NotFound { .. }) => {
                        return Ok(Outcome::Fail { error: "the webhook endpoint was deleted".into() });
                    }
                    Err(e) => return Err(e),
                };
                let secrets = self.webhooks.signing_secrets(&e)?;
                let mut headers = e.headers.clone();
                let signature = signature_header(&secrets.iter().collect::<Vec<_>>(), &msg_id, ts, &body);
                headers.insert("webhook-signature".into(), signature);
                (e.url.clone(), headers)
            }
        };
        // A URL the guard refuses will never be allowed: fail at once.
        if let Err(e) = crate::ssrf::check_url(&url, self.sender.policy()) {
            return Ok(Outcome::Fail { error: format!("refused: {e}") });
        }
        headers.insert("webhook-id".into(), msg_id);
        headers.insert("webhook-timestamp".into(), ts.to_string());
        let r = self.sender.post(&url, &headers, body).await;
        if r.succeeded() {
            return Ok(Outcome::Done);
        }
        let error = r.error.clone().unwrap_or_else(|| "failed".into());
        Ok(match r.status {
            None | Some(408) | Some(429) | Some(500..=599) => Outcome::Retry { error, after: r.retry_after },
            Some(_) => Outcome::Fail { error },
        })
    }
}

#[async_trait]
impl JobWorker for AutomationCaller {
    fn kind(&self) -> &str {
        WEBHOOK_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        match self.call(job).await {
            Ok(o) => o,
            Err(e) if e.is_transient() => Outcome::Retry { error: e.to_string(), after: Some(Duration::from_secs(1)) },
            Err(e) => Outcome::Fail { error: e.to_string() },
        }
    }
}

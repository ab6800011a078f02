//! The two workers the runtime runs: [`FanOut`] (outbox consumer
//! `webhooks`: one delivery per matching endpoint) and [`Deliverer`] (job
//! kind `webhook.deliver`: one signed attempt per claim).

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crm_core::workers::{Backoff, EventWorker, JobWorker, Outcome, WorkerOptions};
use crm_core::{Event, EventFilter, Job, Result, WebhookEndpointId};

use crate::sender::Sender;
use crate::service::{CONSUMER, DELIVER_KIND, Webhooks};

/// Bounds the attempts running at once per endpoint in this process, so a
/// slow receiver holds at most that many worker slots and the others keep flowing.
#[derive(Debug, Default)]
pub struct EndpointGate {
    slots: Mutex<HashMap<WebhookEndpointId, Arc<Semaphore>>>,
}

impl EndpointGate {
    /// A permit for `endpoint` when fewer than `limit` attempts to it run; `None` otherwise.
    pub fn try_enter(&self, endpoint: WebhookEndpointId, limit: usize) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(endpoint).or_insert_with(|| Arc::new(Semaphore::new(limit.max(1)))).clone()
        };
        sem.try_acquire_owned().ok()
    }
}

/// The outbox consumer: fans every event out to the deliveries of the
/// endpoints that want it.
#[derive(Debug, Clone)]
pub struct FanOut {
    webhooks: Webhooks,
}

impl FanOut {
    /// The fan-out over `webhooks`.
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }

    /// How the runtime should run it.
    pub fn options() -> WorkerOptions {
        WorkerOptions { batch: 100, concurrency: 32, ..WorkerOptions::default() }
    }
}

#[async_trait]
impl EventWorker for FanOut {
    fn name(&self) -> &str {
        CONSUMER
    }

    fn events(&self) -> EventFilter {
        EventFilter::all()
    }

    async fn handle(&self, event: &Event, _attempt: u32, _previous_error: Option<&str>) -> Outcome {
        match self.webhooks.fan_out(event).await {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::retry(e.to_string()),
        }
    }
}

/// The job worker: one signed attempt of one delivery per claim, with one
/// HTTP client (kept-alive connections) for every attempt it makes.
#[derive(Debug)]
pub struct Deliverer {
    webhooks: Webhooks,
    sender: Sender,
    gate: EndpointGate,
}

impl Deliverer {
    /// A deliverer over `webhooks`, its HTTP client built from its settings.
    pub fn new(webhooks: Webhooks) -> Result<Self> {
        let s = webhooks.current_settings();
        let sender = Sender::new(s.timeout, s.policy.clone())?;
        Ok(Self { webhooks, sender, gate: EndpointGate::default() })
    }

    /// How the runtime should run it: the handler decides retries and
    /// failures from the retry schedule, so the runtime's own cap is far
    /// above it and its backoff only paces storage errors.
    pub fn options() -> WorkerOptions {
        WorkerOptions {
            batch: 64,
            concurrency: 64,
            lease: Duration::from_secs(60),
            backoff: Backoff { base: Duration::from_secs(1), factor: 2.0, max: Duration::from_secs(60), jitter: 0.2 },
            max_attempts: 1000,
            ..WorkerOptions::default()
        }
    }
}

#[async_trait]
impl JobWorker for Deliverer {
    fn kind(&self) -> &str {
        DELIVER_KIND
    }

    async fn run(&self, job: &Job) -> Outcome {
        self.webhooks.attempt(job, &self.sender, &self.gate).await
    }
}

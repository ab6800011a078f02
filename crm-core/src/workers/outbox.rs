//! The two queues the runtime drives: an outbox consumer and a job kind.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use super::queue::{Body, Item, ItemToken, Queue};
use super::{EventWorker, JobWorker, Outcome};
use crate::{Error, QueueStats, Result, Store};

fn wrong_token() -> Error {
    Error::Storage { message: "a token of another queue was settled here".into(), transient: false, source: None }
}

/// An [`EventWorker`] over its outbox consumer.
#[derive(Debug)]
pub(crate) struct OutboxQueue {
    store: Arc<dyn Store>,
    worker: Arc<dyn EventWorker>,
    name: String,
}

impl OutboxQueue {
    pub(crate) fn new(store: Arc<dyn Store>, worker: Arc<dyn EventWorker>) -> Self {
        let name = format!("outbox:{}", worker.name());
        Self { store, worker, name }
    }
}

#[async_trait]
impl Queue for OutboxQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn prepare(&self) -> Result<()> {
        self.store.register_consumer(self.worker.name(), &self.worker.events()).await
    }

    async fn claim(&self, limit: u32, lease: Duration) -> Result<Vec<Item>> {
        let claims = self.store.claim(self.worker.name(), limit, lease).await?;
        Ok(claims
            .into_iter()
            .map(|c| Item {
                label: format!("event {} {}", c.event.id, c.event.event_type),
                attempt: c.attempt,
                last_error: c.last_error,
                token: ItemToken::Outbox(c.token),
                body: Body::Event(c.event),
            })
            .collect())
    }

    async fn ack(&self, token: &ItemToken) -> Result<()> {
        let ItemToken::Outbox(t) = token else { return Err(wrong_token()) };
        self.store.ack(t).await
    }

    async fn ack_many(&self, tokens: &[ItemToken]) -> Result<Vec<bool>> {
        let claims = tokens
            .iter()
            .map(|t| match t {
                ItemToken::Outbox(c) => Ok(c.clone()),
                _ => Err(wrong_token()),
            })
            .collect::<Result<Vec<_>>>()?;
        self.store.ack_many(&claims).await
    }

    async fn retry(&self, token: &ItemToken, retry_in: Duration, error: &str) -> Result<()> {
        let ItemToken::Outbox(t) = token else { return Err(wrong_token()) };
        self.store.nack(t, retry_in, error).await
    }

    async fn release(&self, token: &ItemToken, retry_in: Duration) -> Result<()> {
        let ItemToken::Outbox(t) = token else { return Err(wrong_token()) };
        self.store.release(t, retry_in).await
    }

    async fn renew(&self, token: &ItemToken, lease: Duration) -> Result<()> {
        let ItemToken::Outbox(t) = token else { return Err(wrong_token()) };
        self.store.renew(t, lease).await
    }

    async fn bury(&self, token: &ItemToken, error: &str) -> Result<()> {
        let ItemToken::Outbox(t) = token else { return Err(wrong_token()) };
        self.store.bury(t, error).await
    }

    async fn stats(&self) -> Result<QueueStats> {
        self.store.queue_stats(self.worker.name()).await
    }

    async fn handle(&self, item: &Item) -> Outcome {
        let Body::Event(event) = &item.body else { return Outcome::Fail { error: "not an event".into() } };
        self.worker.handle(event, item.attempt, item.last_error.as_deref()).await
    }

    fn wakeup(&self) -> Option<Arc<Notify>> {
        self.worker.wakeup()
    }
}

/// A [`JobWorker`] over the jobs of its kind.
#[derive(Debug)]
pub(crate) struct JobQueue {
    store: Arc<dyn Store>,
    worker: Arc<dyn JobWorker>,
    kinds: Vec<String>,
    name: String,
}

impl JobQueue {
    pub(crate) fn new(store: Arc<dyn Store>, worker: Arc<dyn JobWorker>) -> Self {
        let name = format!("jobs:{}", worker.kind());
        let kinds = vec![worker.kind().to_owned()];
        Self { store, worker, kinds, name }
    }
}

#[async_trait]
impl Queue for JobQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn prepare(&self) -> Result<()> {
        crate::ports::jobs::check_job_kind(self.worker.kind())
    }

    async fn claim(&self, limit: u32, lease: Duration) -> Result<Vec<Item>> {
        let claims = self.store.claim_jobs(&self.kinds, limit, lease).await?;
        Ok(claims
            .into_iter()
            .map(|c| Item {
                label: format!("job {} {}", c.job.id, c.job.kind),
                attempt: c.job.attempt,
                last_error: c.job.last_error.clone(),
                token: ItemToken::Job(c.token),
                body: Body::Job(c.job),
            })
            .collect())
    }

    async fn ack(&self, token: &ItemToken) -> Result<()> {
        let ItemToken::Job(t) = token else { return Err(wrong_token()) };
        self.store.complete_job(t).await
    }

    async fn ack_many(&self, tokens: &[ItemToken]) -> Result<Vec<bool>> {
        let jobs = tokens
            .iter()
            .map(|t| match t {
                ItemToken::Job(j) => Ok(j.clone()),
                _ => Err(wrong_token()),
            })
            .collect::<Result<Vec<_>>>()?;
        self.store.complete_jobs(&jobs).await
    }

    async fn retry(&self, token: &ItemToken, retry_in: Duration, error: &str) -> Result<()> {
        let ItemToken::Job(t) = token else { return Err(wrong_token()) };
        self.store.retry_job(t, retry_in, error).await
    }

    async fn release(&self, token: &ItemToken, retry_in: Duration) -> Result<()> {
        let ItemToken::Job(t) = token else { return Err(wrong_token()) };
        self.store.release_job(t, retry_in).await
    }

    async fn renew(&self, token: &ItemToken, lease: Duration) -> Result<()> {
        let ItemToken::Job(t) = token else { return Err(wrong_token()) };
        self.store.renew_job(t, lease).await
    }

    async fn bury(&self, token: &ItemToken, error: &str) -> Result<()> {
        let ItemToken::Job(t) = token else { return Err(wrong_token()) };
        self.store.bury_job(t, error).await
    }

    async fn stats(&self) -> Result<QueueStats> {
        self.store.job_stats(self.worker.kind()).await
    }

    async fn handle(&self, item: &Item) -> Outcome {
        let Body::Job(job) = &item.body else { return Outcome::Fail { error: "not a job".into() } };
        self.worker.run(job).await
    }
}

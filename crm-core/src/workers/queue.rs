//! What the runtime drives: a queue of leased items (an outbox consumer's
//! events, or the jobs of one kind) paired with the handler that runs them.

use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use crate::{ClaimToken, Event, Job, JobToken, QueueStats, Result};

use super::Outcome;

/// One lease on one queued item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ItemToken {
    /// An outbox item.
    Outbox(ClaimToken),
    /// A job.
    Job(JobToken),
    /// Test queues.
    #[cfg(test)]
    Test(u64, u64),
}

/// What an item carries.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// An outbox item's event.
    Event(Event),
    /// A job.
    Job(Job),
    /// Test queues.
    #[cfg(test)]
    Test(u64),
}

/// A claimed item, opaque to the runtime except for its lease and attempt.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub token: ItemToken,
    pub attempt: u32,
    /// What the last failed attempt recorded.
    pub last_error: Option<String>,
    /// A short label for spans (`event <id> contact.created`, `job <id>`).
    pub label: String,
    pub body: Body,
}

/// A queue plus its handler.
#[async_trait]
pub(crate) trait Queue: Send + Sync + Debug + 'static {
    /// `outbox:<consumer>` or `jobs:<kind>`.
    fn name(&self) -> &str;
    /// Registers what must be registered before claiming.
    async fn prepare(&self) -> Result<()>;
    async fn claim(&self, limit: u32, lease: Duration) -> Result<Vec<Item>>;
    async fn ack(&self, token: &ItemToken) -> Result<()>;
    /// Removes several finished items; per token, whether it was removed
    /// (`false`: the lease was lost or the item is gone).
    async fn ack_many(&self, tokens: &[ItemToken]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(tokens.len());
        for t in tokens {
            out.push(crate::ports::store::settled_or_lost(self.ack(t).await)?);
        }
        Ok(out)
    }
    async fn retry(&self, token: &ItemToken, retry_in: Duration, error: &str) -> Result<()>;
    async fn release(&self, token: &ItemToken, retry_in: Duration) -> Result<()>;
    async fn renew(&self, token: &ItemToken, lease: Duration) -> Result<()>;
    async fn bury(&self, token: &ItemToken, error: &str) -> Result<()>;
    async fn stats(&self) -> Result<QueueStats>;
    async fn handle(&self, item: &Item) -> Outcome;
    fn wakeup(&self) -> Option<Arc<Notify>> {
        None
    }
}

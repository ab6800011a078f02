//! The event log, as the service reads it.

use super::Crm;
use crate::{AccountId, Event, EventId, Result};

impl Crm {
    /// The account's events after a cursor.
    pub async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        self.store.list_events(account, after, limit).await
    }
}

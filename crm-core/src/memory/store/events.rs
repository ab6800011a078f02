//! [`EventStore`] for [`MemoryStore`]: the event log and its outbox.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

use super::{MemoryStore, State};
use crate::ports::store::{MAX_NACK_ERROR_CHARS, check_consumer_name, check_event_limit};
use crate::{AccountId, Claim, ClaimToken, Error, Event, EventId, EventStore, Result};

fn lease_deadline(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        check_event_limit(limit)?;
        let s = self.lock();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(s.events
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| e.account_id == account)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn read_all_events(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        check_event_limit(limit)?;
        let s = self.lock();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(s.events.range((start, std::ops::Bound::Unbounded)).take(limit as usize).map(|(_, e)| e.clone()).collect())
    }

    async fn register_consumer(&self, consumer: &str) -> Result<()> {
        check_consumer_name(consumer)?;
        self.lock().consumers.insert(consumer.to_owned());
        Ok(())
    }

    async fn claim(&self, consumer: &str, limit: u32, lease: Duration) -> Result<Vec<Claim>> {
        check_consumer_name(consumer)?;
        check_event_limit(limit)?;
        let now = self.clock.now();
        let until = lease_deadline(now, lease);
        let mut s = self.lock();
        let State { outbox, events, .. } = &mut *s;
        let mut claims = Vec::new();
        let range = outbox.range_mut((consumer.to_owned(), EventId::from_uuid(uuid::Uuid::nil()))..);
        for ((c, event_id), item) in range {
            if c != consumer || claims.len() >= limit as usize {
                break;
            }
            let leased = item.lease.is_some_and(|(_, exp)| exp > now);
            if leased || item.due_at > now {
                continue;
            }
            let Some(event) = events.get(event_id) else { continue };
            let lease_id = uuid::Uuid::now_v7();
            item.lease = Some((lease_id, until));
            item.attempt += 1;
            claims.push(Claim {
                token: ClaimToken { consumer: consumer.to_owned(), event_id: *event_id, lease_id },
                event: event.clone(),
                attempt: item.attempt,
                last_error: item.last_error.clone(),
            });
        }
        Ok(claims)
    }

    async fn ack(&self, claim: &ClaimToken) -> Result<()> {
        let mut s = self.lock();
        let key = (claim.consumer.clone(), claim.event_id);
        let item = s.outbox.get(&key).ok_or(Error::not_found("outbox item"))?;
        if item.lease.map(|(id, _)| id) != Some(claim.lease_id) {
            return Err(Error::conflict("outbox item", "the lease was lost to another claim"));
        }
        s.outbox.remove(&key);
        Ok(())
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let key = (claim.consumer.clone(), claim.event_id);
        let item = s.outbox.get_mut(&key).ok_or(Error::not_found("outbox item"))?;
        if item.lease.map(|(id, _)| id) != Some(claim.lease_id) {
            return Err(Error::conflict("outbox item", "the lease was lost to another claim"));
        }
        item.lease = None;
        item.due_at = lease_deadline(now, retry_in);
        item.last_error = Some(error.chars().take(MAX_NACK_ERROR_CHARS).collect());
        Ok(())
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        Ok(self.lock().outbox.keys().filter(|(c, _)| c == consumer).count() as u64)
    }
}

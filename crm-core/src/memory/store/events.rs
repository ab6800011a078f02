//! [`EventStore`] for [`MemoryStore`]: the event log and its outbox.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

use super::{MemoryStore, OutboxItem, State, deadline as lease_deadline};
use crate::ports::store::{MAX_NACK_ERROR_CHARS, check_consumer_name, check_event_limit};
use crate::{
    AccountId, Claim, ClaimToken, DeadLetter, Error, Event, EventFilter, EventId, EventStore, QueueStats, Result,
};

impl State {
    /// The item a claim holds: [`Error::NotFound`] when gone (or dead),
    /// [`Error::Conflict`] when another lease holds it.
    fn held(&mut self, claim: &ClaimToken) -> Result<&mut OutboxItem> {
        let item = self
            .outbox
            .get_mut(&(claim.consumer.clone(), claim.event_id))
            .filter(|i| i.dead.is_none())
            .ok_or(Error::not_found("outbox item"))?;
        if item.lease.map(|(id, _)| id) != Some(claim.lease_id) {
            return Err(Error::conflict("outbox item", "the lease was lost to another claim"));
        }
        Ok(item)
    }
}

fn clip(error: &str) -> String {
    error.chars().take(MAX_NACK_ERROR_CHARS).collect()
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

    async fn register_consumer(&self, consumer: &str, filter: &EventFilter) -> Result<()> {
        check_consumer_name(consumer)?;
        self.lock().consumers.insert(consumer.to_owned(), filter.clone());
        Ok(())
    }

    async fn list_consumers(&self) -> Result<Vec<String>> {
        Ok(self.lock().consumers.keys().cloned().collect())
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
            if leased || item.due_at > now || item.dead.is_some() {
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
        s.held(claim)?;
        s.outbox.remove(&(claim.consumer.clone(), claim.event_id));
        Ok(())
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let item = s.held(claim)?;
        item.lease = None;
        item.due_at = lease_deadline(now, retry_in);
        item.last_error = Some(clip(error));
        Ok(())
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        Ok(self.lock().outbox.iter().filter(|((c, _), i)| c == consumer && i.dead.is_none()).count() as u64)
    }

    async fn renew(&self, claim: &ClaimToken, lease: Duration) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let item = s.held(claim)?;
        item.lease = Some((claim.lease_id, lease_deadline(now, lease)));
        Ok(())
    }

    async fn release(&self, claim: &ClaimToken, retry_in: Duration) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let item = s.held(claim)?;
        item.lease = None;
        item.due_at = lease_deadline(now, retry_in);
        item.attempt = item.attempt.saturating_sub(1);
        Ok(())
    }

    async fn bury(&self, claim: &ClaimToken, error: &str) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let item = s.held(claim)?;
        item.lease = None;
        // Kept as the last error too: a replayed item's next claim carries it.
        item.last_error = Some(clip(error));
        item.dead = Some((now, clip(error)));
        Ok(())
    }

    async fn list_dead_letters(
        &self,
        consumer: &str,
        account: AccountId,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>> {
        check_consumer_name(consumer)?;
        check_event_limit(limit)?;
        let s = self.lock();
        Ok(s.outbox
            .iter()
            .filter(|((c, id), _)| c == consumer && after.is_none_or(|a| *id > a))
            .filter_map(|((c, id), item)| {
                let (dead_at, error) = item.dead.clone()?;
                let event = s.events.get(id).filter(|e| e.account_id == account)?.clone();
                Some(DeadLetter { consumer: c.clone(), event, attempts: item.attempt, error, dead_at })
            })
            .take(limit as usize)
            .collect())
    }

    async fn replay_dead_letter(&self, consumer: &str, account: AccountId, event: EventId) -> Result<()> {
        check_consumer_name(consumer)?;
        let now = self.clock.now();
        let mut s = self.lock();
        let owned = s.events.get(&event).is_some_and(|e| e.account_id == account);
        let item = s
            .outbox
            .get_mut(&(consumer.to_owned(), event))
            .filter(|i| owned && i.dead.is_some())
            .ok_or(Error::not_found("dead letter"))?;
        item.dead = None;
        item.attempt = 0;
        item.due_at = now;
        Ok(())
    }

    async fn replay_dead_letters_since(&self, consumer: &str, account: AccountId, since: DateTime<Utc>) -> Result<u64> {
        check_consumer_name(consumer)?;
        let now = self.clock.now();
        let mut s = self.lock();
        let State { outbox, events, .. } = &mut *s;
        let mut n = 0;
        for ((c, id), item) in outbox.iter_mut() {
            let due = c == consumer
                && item.dead.as_ref().is_some_and(|(at, _)| *at >= since)
                && events.get(id).is_some_and(|e| e.account_id == account);
            if due {
                item.dead = None;
                item.attempt = 0;
                item.due_at = now;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn queue_stats(&self, consumer: &str) -> Result<QueueStats> {
        check_consumer_name(consumer)?;
        let now = self.clock.now();
        let s = self.lock();
        let mut stats = QueueStats::default();
        for ((c, id), item) in &s.outbox {
            if c != consumer {
                continue;
            }
            if item.dead.is_some() {
                stats.dead += 1;
                continue;
            }
            stats.depth += 1;
            let leased = item.lease.is_some_and(|(_, exp)| exp > now);
            if !leased && item.due_at <= now {
                stats.due += 1;
                // An item is due since its event happened, or since its retry time.
                let occurred = s.events.get(id).map_or(item.due_at, |e| e.occurred_at);
                let since = item.due_at.max(occurred);
                stats.oldest_due_at = Some(stats.oldest_due_at.map_or(since, |o| o.min(since)));
            }
        }
        Ok(stats)
    }
}

//! [`EventStore`] over PostgreSQL: the event log and its outbox.
//!
//! Outbox leases use the database clock (`now()`), so several processes
//! sharing one database agree on expiry; claims take rows with `FOR UPDATE
//! SKIP LOCKED`, so concurrent claimers never block on or share an item.

use async_trait::async_trait;
use std::time::Duration;

use crm_core::ports::store::{MAX_NACK_ERROR_CHARS, check_consumer_name, check_event_limit};
use crm_core::{AccountId, Claim, ClaimToken, Error, Event, EventId, EventStore, Result};

use super::PgStore;
use crate::error::db;
use crate::rows::events::event_row;
use crate::rows::{Columns, duration_micros, get};

#[async_trait]
impl EventStore for PgStore {
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        crate::rows::events::list_events(self, account, after, limit).await
    }

    async fn read_all_events(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        crate::rows::events::read_all_events(self, after, limit).await
    }

    async fn register_consumer(&self, consumer: &str, _filter: &crm_core::EventFilter) -> Result<()> {
        check_consumer_name(consumer)?;
        sqlx::query("INSERT INTO outbox_consumers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(consumer)
            .execute(&self.pool)
            .await
            .map_err(|e| db("registering a consumer", e))?;
        Ok(())
    }

    async fn claim(&self, consumer: &str, limit: u32, lease: Duration) -> Result<Vec<Claim>> {
        check_consumer_name(consumer)?;
        check_event_limit(limit)?;
        let rows = sqlx::query(
            "WITH due AS ( \
                 SELECT consumer, event_id FROM outbox \
                 WHERE consumer = $1 AND due_at <= now() AND (lease_until IS NULL OR lease_until <= now()) \
                 ORDER BY event_id LIMIT $2 FOR UPDATE SKIP LOCKED \
             ), leased AS ( \
                 UPDATE outbox o SET lease_id = gen_random_uuid(), \
                     lease_until = now() + $3::bigint * interval '1 microsecond', attempt = o.attempt + 1 \
                 FROM due WHERE o.consumer = due.consumer AND o.event_id = due.event_id \
                 RETURNING o.event_id, o.lease_id, o.attempt, o.last_error \
             ) \
             SELECT l.lease_id, l.attempt, l.last_error, e.* FROM leased l JOIN events e ON e.id = l.event_id \
             ORDER BY e.id",
        )
        .bind(consumer)
        .bind(i64::from(limit))
        .bind(duration_micros(lease))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("claiming outbox items", e))?;
        rows.iter()
            .map(|r| {
                let event = event_row(r)?;
                Ok(Claim {
                    token: ClaimToken {
                        consumer: consumer.to_owned(),
                        event_id: event.id,
                        lease_id: get(r, "lease_id")?,
                    },
                    event,
                    attempt: u32::try_from(get::<i32, _>(r, "attempt")?).unwrap_or(0),
                    last_error: r.opt_text("last_error")?,
                })
            })
            .collect()
    }

    async fn ack(&self, claim: &ClaimToken) -> Result<()> {
        let done = sqlx::query("DELETE FROM outbox WHERE consumer = $1 AND event_id = $2 AND lease_id = $3")
            .bind(&claim.consumer)
            .bind(claim.event_id.into_uuid())
            .bind(claim.lease_id)
            .execute(&self.pool)
            .await
            .map_err(|e| db("acknowledging an outbox item", e))?;
        if done.rows_affected() == 0 {
            return Err(self.lost_lease(claim).await);
        }
        Ok(())
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let error: String = error.chars().take(MAX_NACK_ERROR_CHARS).collect();
        let done = sqlx::query(
            "UPDATE outbox SET lease_id = NULL, lease_until = NULL, \
                 due_at = now() + $1::bigint * interval '1 microsecond', last_error = $2 \
             WHERE consumer = $3 AND event_id = $4 AND lease_id = $5",
        )
        .bind(duration_micros(retry_in))
        .bind(error)
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&self.pool)
        .await
        .map_err(|e| db("releasing an outbox item", e))?;
        if done.rows_affected() == 0 {
            return Err(self.lost_lease(claim).await);
        }
        Ok(())
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE consumer = $1")
            .bind(consumer)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("counting outbox items", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    // ---- TEMPORARY stubs: replaced by the workers/outbox change ---------------
    async fn list_consumers(&self) -> Result<Vec<String>> {
        Err(crate::rows::not_yet("list_consumers"))
    }

    async fn renew(&self, _claim: &ClaimToken, _lease: Duration) -> Result<()> {
        Err(crate::rows::not_yet("renew"))
    }

    async fn release(&self, _claim: &ClaimToken, _retry_in: Duration) -> Result<()> {
        Err(crate::rows::not_yet("release"))
    }

    async fn bury(&self, _claim: &ClaimToken, _error: &str) -> Result<()> {
        Err(crate::rows::not_yet("bury"))
    }

    async fn list_dead_letters(
        &self,
        _consumer: &str,
        _account: AccountId,
        _after: Option<EventId>,
        _limit: u32,
    ) -> Result<Vec<crm_core::DeadLetter>> {
        Err(crate::rows::not_yet("list_dead_letters"))
    }

    async fn replay_dead_letter(&self, _consumer: &str, _account: AccountId, _event: EventId) -> Result<()> {
        Err(crate::rows::not_yet("replay_dead_letter"))
    }

    async fn replay_dead_letters_since(
        &self,
        _consumer: &str,
        _account: AccountId,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64> {
        Err(crate::rows::not_yet("replay_dead_letters_since"))
    }

    async fn queue_stats(&self, _consumer: &str) -> Result<crm_core::QueueStats> {
        Err(crate::rows::not_yet("queue_stats"))
    }
}

impl PgStore {
    /// Why an ack/nack matched no row: the item is gone, or another lease holds it.
    async fn lost_lease(&self, claim: &ClaimToken) -> Error {
        let found = sqlx::query("SELECT 1 FROM outbox WHERE consumer = $1 AND event_id = $2")
            .bind(&claim.consumer)
            .bind(claim.event_id.into_uuid())
            .fetch_optional(&self.pool)
            .await;
        match found {
            Ok(Some(_)) => Error::conflict("outbox item", "the lease was lost to another claim"),
            Ok(None) => Error::not_found("outbox item"),
            Err(e) => db("reading an outbox item", e),
        }
    }
}

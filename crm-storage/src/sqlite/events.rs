//! [`EventStore`] over SQLite: the event log and its outbox.
//!
//! A claim runs in a `BEGIN IMMEDIATE` transaction (writers queue on SQLite's
//! write lock), so two claimers never lease the same item; the lease is a
//! column checked against the store's clock.

use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

use crm_core::ports::store::{MAX_NACK_ERROR_CHARS, check_consumer_name, check_event_limit};
use crm_core::{AccountId, Claim, ClaimToken, Error, Event, EventId, EventStore, Result};

use super::{SqliteStore, Tx, commit, now_micros};
use crate::error::db;
use crate::rows::events::event_row;
use crate::rows::{Columns, duration_micros};

#[async_trait]
impl EventStore for SqliteStore {
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        crate::rows::events::list_events(self, account, after, limit).await
    }

    async fn read_all_events(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        crate::rows::events::read_all_events(self, after, limit).await
    }

    async fn register_consumer(&self, consumer: &str, _filter: &crm_core::EventFilter) -> Result<()> {
        check_consumer_name(consumer)?;
        sqlx::query("INSERT INTO outbox_consumers (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(consumer)
            .bind(now_micros())
            .execute(&self.pool)
            .await
            .map_err(|e| db("registering a consumer", e))?;
        Ok(())
    }

    async fn claim(&self, consumer: &str, limit: u32, lease: Duration) -> Result<Vec<Claim>> {
        check_consumer_name(consumer)?;
        check_event_limit(limit)?;
        let mut tx = self.write().await?;
        let now = now_micros();
        let until = now.saturating_add(duration_micros(lease));
        let rows = sqlx::query(
            "SELECT o.attempt AS attempt, o.last_error AS last_error, e.* FROM outbox o \
             JOIN events e ON e.id = o.event_id \
             WHERE o.consumer = ?1 AND o.due_at <= ?2 AND (o.lease_until IS NULL OR o.lease_until <= ?2) \
             ORDER BY o.event_id LIMIT ?3",
        )
        .bind(consumer)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db("claiming outbox items", e))?;
        let mut claims = Vec::with_capacity(rows.len());
        for r in &rows {
            let event = event_row(r)?;
            let attempt = u32::try_from(r.int("attempt")?.saturating_add(1)).unwrap_or(u32::MAX);
            let lease_id = Uuid::now_v7();
            sqlx::query(
                "UPDATE outbox SET lease_id = ?, lease_until = ?, attempt = attempt + 1 \
                 WHERE consumer = ? AND event_id = ?",
            )
            .bind(lease_id)
            .bind(until)
            .bind(consumer)
            .bind(event.id.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("claiming outbox items", e))?;
            claims.push(Claim {
                token: ClaimToken { consumer: consumer.to_owned(), event_id: event.id, lease_id },
                event,
                attempt,
                last_error: r.opt_text("last_error")?,
            });
        }
        commit(tx).await?;
        Ok(claims)
    }

    async fn ack(&self, claim: &ClaimToken) -> Result<()> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM outbox WHERE consumer = ? AND event_id = ? AND lease_id = ?")
            .bind(&claim.consumer)
            .bind(claim.event_id.into_uuid())
            .bind(claim.lease_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("acknowledging an outbox item", e))?;
        if done.rows_affected() == 0 {
            return Err(lost_lease(&mut tx, claim).await);
        }
        commit(tx).await
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let error: String = error.chars().take(MAX_NACK_ERROR_CHARS).collect();
        let due = now_micros().saturating_add(duration_micros(retry_in));
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE outbox SET lease_id = NULL, lease_until = NULL, due_at = ?, last_error = ? \
             WHERE consumer = ? AND event_id = ? AND lease_id = ?",
        )
        .bind(due)
        .bind(error)
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("releasing an outbox item", e))?;
        if done.rows_affected() == 0 {
            return Err(lost_lease(&mut tx, claim).await);
        }
        commit(tx).await
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE consumer = ?")
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

/// Why an ack/nack matched no row: the item is gone, or another lease holds it.
async fn lost_lease(tx: &mut Tx, claim: &ClaimToken) -> Error {
    let found = sqlx::query("SELECT 1 FROM outbox WHERE consumer = ? AND event_id = ?")
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .fetch_optional(&mut **tx)
        .await;
    match found {
        Ok(Some(_)) => Error::conflict("outbox item", "the lease was lost to another claim"),
        Ok(None) => Error::not_found("outbox item"),
        Err(e) => db("reading an outbox item", e),
    }
}

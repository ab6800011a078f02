//! [`EventStore`] over SQLite: the event log and its outbox.
//!
//! A claim runs in a `BEGIN IMMEDIATE` transaction (writers queue on SQLite's
//! write lock), so two claimers never lease the same item; the lease is a
//! column checked against the store's clock. Dead letters are outbox rows
//! with `dead_at` set: claims, `pending` and settlements skip them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

use crm_core::ports::store::{check_consumer_name, check_event_limit};
use crm_core::{
    AccountId, Claim, ClaimToken, DeadLetter, Error, Event, EventFilter, EventId, EventStore, QueueStats, Result,
};

use super::{SqliteStore, Tx, commit, json_string, now_micros};
use crate::error::db;
use crate::rows::events::{clip_error, event_row};
use crate::rows::{Columns, duration_micros, micros, queue_stats_row};

#[async_trait]
impl EventStore for SqliteStore {
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        crate::rows::events::list_events(self, account, after, limit).await
    }

    async fn read_all_events(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        crate::rows::events::read_all_events(self, after, limit).await
    }

    async fn register_consumer(&self, consumer: &str, filter: &EventFilter) -> Result<()> {
        check_consumer_name(consumer)?;
        let types = filter.types().map(|t| json_string("event_types", &t)).transpose()?;
        sqlx::query(
            "INSERT INTO outbox_consumers (name, created_at, event_types) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET event_types = excluded.event_types",
        )
        .bind(consumer)
        .bind(now_micros())
        .bind(types)
        .execute(&self.pool)
        .await
        .map_err(|e| db("registering a consumer", e))?;
        Ok(())
    }

    async fn list_consumers(&self) -> Result<Vec<String>> {
        crate::rows::events::list_consumers(self).await
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
             WHERE o.consumer = ?1 AND o.dead_at IS NULL AND o.due_at <= ?2 \
               AND (o.lease_until IS NULL OR o.lease_until <= ?2) \
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
        let sql = "DELETE FROM outbox WHERE consumer = ?1 AND event_id = ?2 AND lease_id = ?3 AND dead_at IS NULL";
        self.settle(claim, "acknowledging an outbox item", sql, None, None).await
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let due = now_micros().saturating_add(duration_micros(retry_in));
        let sql = "UPDATE outbox SET lease_id = NULL, lease_until = NULL, due_at = ?4, last_error = ?5 \
                   WHERE consumer = ?1 AND event_id = ?2 AND lease_id = ?3 AND dead_at IS NULL";
        self.settle(claim, "releasing an outbox item", sql, Some(due), Some(clip_error(error))).await
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE consumer = ? AND dead_at IS NULL")
            .bind(consumer)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("counting outbox items", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn renew(&self, claim: &ClaimToken, lease: Duration) -> Result<()> {
        let until = now_micros().saturating_add(duration_micros(lease));
        let sql = "UPDATE outbox SET lease_until = ?4 \
                   WHERE consumer = ?1 AND event_id = ?2 AND lease_id = ?3 AND dead_at IS NULL";
        self.settle(claim, "renewing an outbox lease", sql, Some(until), None).await
    }

    async fn release(&self, claim: &ClaimToken, retry_in: Duration) -> Result<()> {
        let due = now_micros().saturating_add(duration_micros(retry_in));
        let sql = "UPDATE outbox SET lease_id = NULL, lease_until = NULL, due_at = ?4, attempt = max(attempt - 1, 0) \
                   WHERE consumer = ?1 AND event_id = ?2 AND lease_id = ?3 AND dead_at IS NULL";
        self.settle(claim, "releasing an outbox item", sql, Some(due), None).await
    }

    async fn bury(&self, claim: &ClaimToken, error: &str) -> Result<()> {
        let sql = "UPDATE outbox SET lease_id = NULL, lease_until = NULL, dead_at = ?4, last_error = ?5 \
                   WHERE consumer = ?1 AND event_id = ?2 AND lease_id = ?3 AND dead_at IS NULL";
        self.settle(claim, "dead-lettering an outbox item", sql, Some(now_micros()), Some(clip_error(error))).await
    }

    async fn list_dead_letters(
        &self,
        consumer: &str,
        account: AccountId,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>> {
        crate::rows::events::list_dead_letters(self, consumer, account, after, limit).await
    }

    async fn replay_dead_letter(&self, consumer: &str, account: AccountId, event: EventId) -> Result<()> {
        check_consumer_name(consumer)?;
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE outbox SET dead_at = NULL, attempt = 0, due_at = ?4 \
             WHERE consumer = ?1 AND event_id = ?2 AND dead_at IS NOT NULL \
               AND EXISTS (SELECT 1 FROM events e WHERE e.id = ?2 AND e.account_id = ?3)",
        )
        .bind(consumer)
        .bind(event.into_uuid())
        .bind(account.into_uuid())
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(|e| db("replaying a dead letter", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("dead letter"));
        }
        commit(tx).await
    }

    async fn replay_dead_letters_since(&self, consumer: &str, account: AccountId, since: DateTime<Utc>) -> Result<u64> {
        check_consumer_name(consumer)?;
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE outbox SET dead_at = NULL, attempt = 0, due_at = ?4 \
             WHERE consumer = ?1 AND dead_at IS NOT NULL AND dead_at >= ?3 \
               AND event_id IN (SELECT e.id FROM events e WHERE e.id = outbox.event_id AND e.account_id = ?2)",
        )
        .bind(consumer)
        .bind(account.into_uuid())
        .bind(micros(since))
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(|e| db("replaying dead letters", e))?;
        commit(tx).await?;
        Ok(done.rows_affected())
    }

    async fn queue_stats(&self, consumer: &str) -> Result<QueueStats> {
        check_consumer_name(consumer)?;
        // An item is due since its event happened or, once retried, since
        // its retry time (`due_at` starts at 0).
        let row = sqlx::query(
            "WITH q AS ( \
                 SELECT o.dead_at IS NOT NULL AS dead, \
                        o.dead_at IS NULL AND o.due_at <= ?2 AND (o.lease_until IS NULL OR o.lease_until <= ?2) AS due, \
                        max(o.due_at, e.occurred_at) AS due_since \
                 FROM outbox o JOIN events e ON e.id = o.event_id WHERE o.consumer = ?1 \
             ) \
             SELECT COUNT(*) FILTER (WHERE NOT dead) AS depth, COUNT(*) FILTER (WHERE due) AS due, \
                    MIN(due_since) FILTER (WHERE due) AS oldest_due_at, COUNT(*) FILTER (WHERE dead) AS dead \
             FROM q",
        )
        .bind(consumer)
        .bind(now_micros())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db("reading queue statistics", e))?;
        queue_stats_row(&row)
    }
}

impl SqliteStore {
    /// Runs one settlement of a claim (`ack`, `nack`, `renew`, `release`,
    /// `bury`) in a write transaction: `sql` finds the item as `?1` consumer,
    /// `?2` event id, `?3` lease id and takes `value`, then `error`, when
    /// given, as the next parameters. When it matches no row, says why.
    async fn settle(
        &self,
        claim: &ClaimToken,
        what: &'static str,
        sql: &'static str,
        value: Option<i64>,
        error: Option<String>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let mut q = sqlx::query(sql).bind(&claim.consumer).bind(claim.event_id.into_uuid()).bind(claim.lease_id);
        if let Some(v) = value {
            q = q.bind(v);
        }
        if let Some(e) = error {
            q = q.bind(e);
        }
        let done = q.execute(&mut *tx).await.map_err(|e| db(what, e))?;
        if done.rows_affected() == 0 {
            return Err(lost_lease(&mut tx, claim).await);
        }
        commit(tx).await
    }
}

/// Why a settlement matched no row: the item is gone (or dead), or another
/// lease holds it.
async fn lost_lease(tx: &mut Tx, claim: &ClaimToken) -> Error {
    let found = sqlx::query("SELECT 1 FROM outbox WHERE consumer = ? AND event_id = ? AND dead_at IS NULL")
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

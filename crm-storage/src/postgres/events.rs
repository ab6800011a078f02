//! [`EventStore`] over PostgreSQL: the event log and its outbox.
//!
//! Outbox leases, due times and dead-letter times use the database clock
//! (`now()`), so several processes sharing one database agree on expiry;
//! claims take rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
//! never block on or share an item. Dead letters are outbox rows with
//! `dead_at` set: claims, `pending` and settlements skip them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

use crm_core::ports::store::{check_consumer_name, check_event_limit};
use crm_core::{
    AccountId, Claim, ClaimToken, DeadLetter, Error, Event, EventFilter, EventId, EventStore, QueueStats, Result,
};

use super::PgStore;
use crate::error::db;
use crate::rows::events::{clip_error, event_row};
use crate::rows::{Columns, duration_micros, get, queue_stats_row};

#[async_trait]
impl EventStore for PgStore {
    async fn list_events(&self, account: AccountId, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        crate::rows::events::list_events(self, account, after, limit).await
    }

    async fn read_all_events(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>> {
        crate::rows::events::read_all_events(self, after, limit).await
    }

    async fn register_consumer(&self, consumer: &str, filter: &EventFilter) -> Result<()> {
        check_consumer_name(consumer)?;
        sqlx::query(
            "INSERT INTO outbox_consumers (name, event_types) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET event_types = excluded.event_types",
        )
        .bind(consumer)
        .bind(filter.types())
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
        // One statement, on the fast lane: workers claim all the time.
        let mut conn = self.lane.lease().await.map_err(|e| db("claiming outbox items", e))?;
        let rows = sqlx::query(
            "WITH due AS ( \
                 SELECT consumer, event_id FROM outbox \
                 WHERE consumer = $1 AND dead_at IS NULL AND due_at <= now() \
                   AND (lease_until IS NULL OR lease_until <= now()) \
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
        .fetch_all(&mut *conn)
        .await;
        let rows = conn.settle(rows).map_err(|e| db("claiming outbox items", e))?;
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
        let mut conn = self.bookkeeping("acknowledging an outbox item").await?;
        let done = sqlx::query(
            "DELETE FROM outbox WHERE consumer = $1 AND event_id = $2 AND lease_id = $3 AND dead_at IS NULL \
             AND set_config('synchronous_commit', 'off', true) IS NOT NULL",
        )
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&mut *conn)
        .await;
        let done = conn.settle(done).map_err(|e| db("acknowledging an outbox item", e))?;
        self.settled(claim, done.rows_affected()).await
    }

    async fn ack_many(&self, claims: &[ClaimToken]) -> Result<Vec<bool>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for the batch, committed asynchronously like `ack`.
        // A lease id is unique per claim, so the removed rows' lease ids
        // say which tokens still held their items.
        let consumers: Vec<&str> = claims.iter().map(|c| c.consumer.as_str()).collect();
        let events: Vec<uuid::Uuid> = claims.iter().map(|c| c.event_id.into_uuid()).collect();
        let leases: Vec<uuid::Uuid> = claims.iter().map(|c| c.lease_id).collect();
        let mut conn = self.bookkeeping("acknowledging outbox items").await?;
        let rows = sqlx::query_scalar::<_, uuid::Uuid>(
            "DELETE FROM outbox o USING UNNEST($1::text[], $2::uuid[], $3::uuid[]) AS t(consumer, event_id, lease_id) \
             WHERE o.consumer = t.consumer AND o.event_id = t.event_id AND o.lease_id = t.lease_id \
             AND o.dead_at IS NULL AND set_config('synchronous_commit', 'off', true) IS NOT NULL \
             RETURNING o.lease_id",
        )
        .bind(&consumers)
        .bind(&events)
        .bind(&leases)
        .fetch_all(&mut *conn)
        .await;
        let done = conn.settle(rows).map_err(|e| db("acknowledging outbox items", e))?;
        let done: std::collections::HashSet<uuid::Uuid> = done.into_iter().collect();
        Ok(claims.iter().map(|c| done.contains(&c.lease_id)).collect())
    }

    async fn nack(&self, claim: &ClaimToken, retry_in: Duration, error: &str) -> Result<()> {
        let mut conn = self.bookkeeping("releasing an outbox item").await?;
        let done = sqlx::query(
            "UPDATE outbox SET lease_id = NULL, lease_until = NULL, \
                 due_at = now() + $1::bigint * interval '1 microsecond', last_error = $2 \
             WHERE consumer = $3 AND event_id = $4 AND lease_id = $5 AND dead_at IS NULL \
               AND set_config('synchronous_commit', 'off', true) IS NOT NULL",
        )
        .bind(duration_micros(retry_in))
        .bind(clip_error(error))
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&mut *conn)
        .await;
        let done = conn.settle(done).map_err(|e| db("releasing an outbox item", e))?;
        self.settled(claim, done.rows_affected()).await
    }

    async fn pending(&self, consumer: &str) -> Result<u64> {
        check_consumer_name(consumer)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE consumer = $1 AND dead_at IS NULL")
            .bind(consumer)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("counting outbox items", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn renew(&self, claim: &ClaimToken, lease: Duration) -> Result<()> {
        let done = sqlx::query(
            "UPDATE outbox SET lease_until = now() + $1::bigint * interval '1 microsecond' \
             WHERE consumer = $2 AND event_id = $3 AND lease_id = $4 AND dead_at IS NULL",
        )
        .bind(duration_micros(lease))
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&self.pool)
        .await
        .map_err(|e| db("renewing an outbox lease", e))?;
        self.settled(claim, done.rows_affected()).await
    }

    async fn release(&self, claim: &ClaimToken, retry_in: Duration) -> Result<()> {
        let mut conn = self.bookkeeping("releasing an outbox item").await?;
        let done = sqlx::query(
            "UPDATE outbox SET lease_id = NULL, lease_until = NULL, \
                 due_at = now() + $1::bigint * interval '1 microsecond', attempt = GREATEST(attempt - 1, 0) \
             WHERE consumer = $2 AND event_id = $3 AND lease_id = $4 AND dead_at IS NULL \
               AND set_config('synchronous_commit', 'off', true) IS NOT NULL",
        )
        .bind(duration_micros(retry_in))
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&mut *conn)
        .await;
        let done = conn.settle(done).map_err(|e| db("releasing an outbox item", e))?;
        self.settled(claim, done.rows_affected()).await
    }

    async fn bury(&self, claim: &ClaimToken, error: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE outbox SET lease_id = NULL, lease_until = NULL, dead_at = now(), last_error = $1 \
             WHERE consumer = $2 AND event_id = $3 AND lease_id = $4 AND dead_at IS NULL",
        )
        .bind(clip_error(error))
        .bind(&claim.consumer)
        .bind(claim.event_id.into_uuid())
        .bind(claim.lease_id)
        .execute(&self.pool)
        .await
        .map_err(|e| db("dead-lettering an outbox item", e))?;
        self.settled(claim, done.rows_affected()).await
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
        let done = sqlx::query(
            "UPDATE outbox o SET dead_at = NULL, attempt = 0, due_at = now() \
             FROM events e WHERE e.id = o.event_id AND e.account_id = $3 \
               AND o.consumer = $1 AND o.event_id = $2 AND o.dead_at IS NOT NULL",
        )
        .bind(consumer)
        .bind(event.into_uuid())
        .bind(account.into_uuid())
        .execute(&self.pool)
        .await
        .map_err(|e| db("replaying a dead letter", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("dead letter"));
        }
        Ok(())
    }

    async fn replay_dead_letters_since(&self, consumer: &str, account: AccountId, since: DateTime<Utc>) -> Result<u64> {
        check_consumer_name(consumer)?;
        let done = sqlx::query(
            "UPDATE outbox o SET dead_at = NULL, attempt = 0, due_at = now() \
             FROM events e WHERE e.id = o.event_id AND e.account_id = $2 \
               AND o.consumer = $1 AND o.dead_at IS NOT NULL AND o.dead_at >= $3",
        )
        .bind(consumer)
        .bind(account.into_uuid())
        .bind(since)
        .execute(&self.pool)
        .await
        .map_err(|e| db("replaying dead letters", e))?;
        Ok(done.rows_affected())
    }

    async fn queue_stats(&self, consumer: &str) -> Result<QueueStats> {
        check_consumer_name(consumer)?;
        // An item is due since its event happened or, once retried, since
        // its retry time (`due_at` starts at -infinity).
        let row = sqlx::query(
            "WITH q AS ( \
                 SELECT o.dead_at IS NOT NULL AS dead, \
                        o.dead_at IS NULL AND o.due_at <= now() \
                            AND (o.lease_until IS NULL OR o.lease_until <= now()) AS due, \
                        GREATEST(o.due_at, e.occurred_at) AS due_since \
                 FROM outbox o JOIN events e ON e.id = o.event_id WHERE o.consumer = $1 \
             ) \
             SELECT COUNT(*) FILTER (WHERE NOT dead) AS depth, COUNT(*) FILTER (WHERE due) AS due, \
                    MIN(due_since) FILTER (WHERE due) AS oldest_due_at, COUNT(*) FILTER (WHERE dead) AS dead \
             FROM q",
        )
        .bind(consumer)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db("reading queue statistics", e))?;
        queue_stats_row(&row)
    }
}

impl PgStore {
    /// The result of a settlement (`ack`, `nack`, `renew`, `release`,
    /// `bury`) that changed `rows`: nothing when it matched, else why not.
    async fn settled(&self, claim: &ClaimToken, rows: u64) -> Result<()> {
        if rows == 0 {
            return Err(self.lost_lease(claim).await);
        }
        Ok(())
    }

    /// Why a settlement matched no row: the item is gone (or dead), or
    /// another lease holds it.
    async fn lost_lease(&self, claim: &ClaimToken) -> Error {
        let found = sqlx::query("SELECT 1 FROM outbox WHERE consumer = $1 AND event_id = $2 AND dead_at IS NULL")
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

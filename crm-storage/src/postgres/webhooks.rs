//! [`WebhookStore`] over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::domain::webhook::{
    AttemptContext, DeliveryProgress, DeliveryQuery, WebhookAttempt, WebhookDelivery, WebhookEndpoint, check_endpoint,
};
use crm_core::ports::jobs::check_job;
use crm_core::ports::store::check_event_account;
use crm_core::ports::webhooks::check_recover_limit;
use crm_core::{
    AccountId, Error, Event, EventId, Job, Page, Result, WebhookDeliveryId, WebhookEndpointId, WebhookStore,
};

use super::{PgStore, Tx, append, commit, exists};
use crate::error::db;
use crate::rows::events::clip_error;
use crate::rows::webhooks::{NOT_PENDING, STALE, delivery_row, endpoint_row};
use crate::rows::{get, to_json};

/// An endpoint's JSON columns and sealed secrets as PostgreSQL stores them.
struct EndpointValues {
    event_types: Option<serde_json::Value>,
    headers: serde_json::Value,
    secret: String,
    previous_secret: Option<String>,
}

impl EndpointValues {
    fn of(e: &WebhookEndpoint) -> Result<Self> {
        Ok(Self {
            event_types: e.event_types.types().map(|t| to_json("event_types", &t)).transpose()?,
            headers: to_json("headers", &e.headers)?,
            secret: e.secret.encode(),
            previous_secret: e.previous_secret.as_ref().map(|s| s.encode()),
        })
    }
}

async fn endpoint_exists(tx: &mut Tx, account: AccountId, id: WebhookEndpointId) -> Result<bool> {
    exists(tx, "SELECT 1 FROM webhook_endpoints WHERE id = $1 AND account_id = $2", id.into_uuid(), account).await
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn insert_endpoint(&self, e: &WebhookEndpoint, event: &Event) -> Result<()> {
        check_event_account(e.account_id, event)?;
        check_endpoint(e)?;
        let v = EndpointValues::of(e)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, account_id, url, description, event_types, enabled, disabled_reason, \
             secret, previous_secret, previous_secret_expires_at, headers, rate_limit_per_second, failing_since, \
             created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0)",
        )
        .bind(e.id.into_uuid())
        .bind(e.account_id.into_uuid())
        .bind(&e.url)
        .bind(&e.description)
        .bind(v.event_types)
        .bind(e.enabled)
        .bind(e.disabled_reason.as_deref())
        .bind(v.secret)
        .bind(v.previous_secret)
        .bind(e.previous_secret_expires_at)
        .bind(v.headers)
        .bind(e.rate_limit_per_second.map(i64::from))
        .bind(e.failing_since)
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|err| db("inserting a webhook endpoint", err))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_endpoint(&self, e: &WebhookEndpoint, event: &Event) -> Result<WebhookEndpoint> {
        check_event_account(e.account_id, event)?;
        check_endpoint(e)?;
        let v = EndpointValues::of(e)?;
        let mut tx = self.write().await?;
        // `created_at` and `failing_since` keep their stored values.
        let row = sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, description = $2, event_types = $3, enabled = $4, \
             disabled_reason = $5, secret = $6, previous_secret = $7, previous_secret_expires_at = $8, headers = $9, \
             rate_limit_per_second = $10, updated_at = $11, version = version + 1 \
             WHERE id = $12 AND account_id = $13 AND version = $14 RETURNING *",
        )
        .bind(&e.url)
        .bind(&e.description)
        .bind(v.event_types)
        .bind(e.enabled)
        .bind(e.disabled_reason.as_deref())
        .bind(v.secret)
        .bind(v.previous_secret)
        .bind(e.previous_secret_expires_at)
        .bind(v.headers)
        .bind(e.rate_limit_per_second.map(i64::from))
        .bind(e.updated_at)
        .bind(e.id.into_uuid())
        .bind(e.account_id.into_uuid())
        .bind(e.version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|err| db("updating a webhook endpoint", err))?;
        let Some(row) = row else {
            let found = endpoint_exists(&mut tx, e.account_id, e.id).await?;
            return Err(if found {
                Error::conflict("webhook endpoint", STALE)
            } else {
                Error::not_found("webhook endpoint")
            });
        };
        let stored = endpoint_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn delete_endpoint(&self, account: AccountId, id: WebhookEndpointId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        // Deliveries and their attempts go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a webhook endpoint", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("webhook endpoint"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_endpoint(&self, account: AccountId, id: WebhookEndpointId) -> Result<WebhookEndpoint> {
        crate::rows::webhooks::get_endpoint(self, account, id).await
    }

    async fn list_endpoints(&self, account: AccountId) -> Result<Vec<WebhookEndpoint>> {
        crate::rows::webhooks::list_endpoints(self, account).await
    }

    async fn set_endpoint_failing(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        failing_since: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let done = sqlx::query("UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND account_id = $3")
            .bind(failing_since)
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(self.pool())
            .await
            .map_err(|e| db("marking a webhook endpoint failing", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("webhook endpoint"));
        }
        Ok(())
    }

    async fn disable_endpoint(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        reason: &str,
        event: &Event,
    ) -> Result<bool> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $1, version = version + 1, \
             updated_at = GREATEST(updated_at, $2) WHERE id = $3 AND account_id = $4 AND enabled",
        )
        .bind(reason)
        .bind(event.occurred_at)
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .execute(&mut *tx)
        .await
        .map_err(|e| db("disabling a webhook endpoint", e))?;
        if done.rows_affected() == 0 {
            return if endpoint_exists(&mut tx, account, id).await? {
                Ok(false)
            } else {
                Err(Error::not_found("webhook endpoint"))
            };
        }
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn create_delivery(&self, d: &WebhookDelivery) -> Result<(WebhookDelivery, bool)> {
        let mut tx = self.write().await?;
        if !endpoint_exists(&mut tx, d.account_id, d.endpoint_id).await? {
            return Err(Error::not_found("webhook endpoint"));
        }
        let query = sqlx::query(
            "INSERT INTO webhook_deliveries (id, account_id, endpoint_id, event_id, event_type, ordering_key, status, \
             attempts, last_status_code, last_error, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (endpoint_id, event_id) DO NOTHING",
        );
        let done = bind_delivery(query, d).execute(&mut *tx).await.map_err(|e| db("creating a webhook delivery", e))?;
        if done.rows_affected() == 1 {
            commit(tx).await?;
            return Ok((d.clone(), true));
        }
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2")
            .bind(d.endpoint_id.into_uuid())
            .bind(d.event_id.into_uuid())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("reading a webhook delivery", e))?;
        Ok((delivery_row(&row)?, false))
    }

    async fn create_delivery_with_job(&self, d: &WebhookDelivery, job: &Job) -> Result<(WebhookDelivery, bool)> {
        check_job(job)?;
        // One statement committing asynchronously (see `PgStore::bookkeeping`
        // for why nothing can be lost).
        let what = "creating a webhook delivery";
        let mut conn = self.bookkeeping(what).await?;
        let query = sqlx::query(
            "WITH ep AS (SELECT id FROM webhook_endpoints WHERE id = $3 AND account_id = $2 \
             AND set_config('synchronous_commit', 'off', true) IS NOT NULL), \
             ins AS ( \
             INSERT INTO webhook_deliveries (id, account_id, endpoint_id, event_id, event_type, ordering_key, \
             status, attempts, last_status_code, last_error, next_attempt_at, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM ep \
             ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING id \
             ), job AS ( \
             INSERT INTO jobs (id, kind, account_id, payload, unique_key, run_at, attempt, last_error, state, \
             created_at) \
             SELECT $14, $15, $16, $17, $18, $19, $20, $21, $22, $23 FROM ins \
             ON CONFLICT DO NOTHING \
             ) \
             SELECT (SELECT count(*) FROM ep) AS endpoints, (SELECT count(*) FROM ins) AS created",
        );
        let row = bind_delivery(query, d)
            .bind(job.id.into_uuid())
            .bind(&job.kind)
            .bind(job.account_id.map(AccountId::into_uuid))
            .bind(&job.payload)
            .bind(job.unique_key.as_deref())
            .bind(job.run_at)
            .bind(i32::try_from(job.attempt).unwrap_or(i32::MAX))
            .bind(job.last_error.as_deref().map(clip_error))
            .bind(job.state.as_str())
            .bind(job.created_at)
            .fetch_one(&mut *conn)
            .await;
        let row = conn.settle(row).map_err(|e| db(what, e))?;
        if get::<i64, _>(&row, "created")? == 1 {
            return Ok((d.clone(), true));
        }
        if get::<i64, _>(&row, "endpoints")? == 0 {
            return Err(Error::not_found("webhook endpoint"));
        }
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2")
            .bind(d.endpoint_id.into_uuid())
            .bind(d.event_id.into_uuid())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("reading a webhook delivery", e))?;
        Ok((delivery_row(&row)?, false))
    }

    async fn get_delivery(&self, account: AccountId, id: WebhookDeliveryId) -> Result<WebhookDelivery> {
        crate::rows::webhooks::get_delivery(self, account, id).await
    }

    async fn list_deliveries(&self, account: AccountId, query: &DeliveryQuery) -> Result<Page<WebhookDelivery>> {
        crate::rows::webhooks::list_deliveries(self, account, query).await
    }

    async fn record_attempt(&self, a: &WebhookAttempt, progress: &DeliveryProgress) -> Result<WebhookDelivery> {
        // One statement committing asynchronously: the
        // delivery's job is removed only after this, later in the log, so a
        // lost record means the attempt runs again.
        let what = "recording a webhook attempt";
        let mut conn = self.bookkeeping(what).await?;
        let row = sqlx::query(
            "WITH u AS ( \
             UPDATE webhook_deliveries SET attempts = attempts + 1, status = $1, next_attempt_at = $2, \
             last_status_code = $3, last_error = $4, updated_at = $5 \
             WHERE id = $6 AND account_id = $7 AND status = 'pending' \
             AND set_config('synchronous_commit', 'off', true) IS NOT NULL RETURNING * \
             ), a AS ( \
             INSERT INTO webhook_attempts (id, account_id, delivery_id, endpoint_id, at, status_code, latency_ms, \
             response_excerpt, error, succeeded) \
             SELECT $8, u.account_id, u.id, $9, $5, $3, $10, $11, $4, $12 FROM u \
             ) \
             SELECT * FROM u",
        )
        .bind(progress.status.as_str())
        .bind(progress.next_attempt_at)
        .bind(a.status_code.map(i64::from))
        .bind(a.error.as_deref())
        .bind(a.at)
        .bind(a.delivery_id.into_uuid())
        .bind(a.account_id.into_uuid())
        .bind(a.id.into_uuid())
        .bind(a.endpoint_id.into_uuid())
        .bind(i64::from(a.latency_ms))
        .bind(a.response_excerpt.as_deref())
        .bind(a.succeeded)
        .fetch_optional(&mut *conn)
        .await;
        if let Some(row) = conn.settle(row).map_err(|e| db(what, e))? {
            return delivery_row(&row);
        }
        let found = sqlx::query("SELECT 1 FROM webhook_deliveries WHERE id = $1 AND account_id = $2")
            .bind(a.delivery_id.into_uuid())
            .bind(a.account_id.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a webhook delivery", e))?;
        Err(if found.is_some() {
            Error::conflict("webhook delivery", NOT_PENDING)
        } else {
            Error::not_found("webhook delivery")
        })
    }

    async fn set_delivery_status(
        &self,
        account: AccountId,
        id: WebhookDeliveryId,
        progress: &DeliveryProgress,
    ) -> Result<WebhookDelivery> {
        let row = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, updated_at = GREATEST(updated_at, now()) \
             WHERE id = $3 AND account_id = $4 RETURNING *",
        )
        .bind(progress.status.as_str())
        .bind(progress.next_attempt_at)
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .fetch_optional(self.pool())
        .await
        .map_err(|e| db("moving a webhook delivery", e))?;
        row.map(|r| delivery_row(&r)).transpose()?.ok_or(Error::not_found("webhook delivery"))
    }

    async fn list_attempts(&self, account: AccountId, delivery: WebhookDeliveryId) -> Result<Vec<WebhookAttempt>> {
        crate::rows::webhooks::list_attempts(self, account, delivery).await
    }

    async fn attempt_context(&self, account: AccountId, id: WebhookDeliveryId) -> Result<Option<AttemptContext>> {
        crate::rows::webhooks::attempt_context(self, account, id).await
    }

    async fn attempt_contexts(&self, ids: &[(AccountId, WebhookDeliveryId)]) -> Result<Vec<Option<AttemptContext>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let deliveries: Vec<uuid::Uuid> = ids.iter().map(|(_, d)| d.into_uuid()).collect();
        let accounts: Vec<uuid::Uuid> = ids.iter().map(|(a, _)| a.into_uuid()).collect();
        let mut conn = self.lane.lease().await.map_err(|e| db("reading webhook deliveries to attempt", e))?;
        let rows = sqlx::query(concat!(
            "SELECT t.n AS request_n, ",
            crate::rows::webhooks::attempt_context_columns!(),
            " FROM UNNEST($1::uuid[], $2::uuid[]) WITH ORDINALITY AS t(id, account_id, n) \
             JOIN webhook_deliveries d ON d.id = t.id AND d.account_id = t.account_id \
             LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.account_id = d.account_id"
        ))
        .bind(&deliveries)
        .bind(&accounts)
        .fetch_all(&mut *conn)
        .await;
        let rows = conn.settle(rows).map_err(|e| db("reading webhook deliveries to attempt", e))?;
        let mut out: Vec<Option<AttemptContext>> = vec![None; ids.len()];
        for r in &rows {
            let n: i64 = get(r, "request_n")?;
            let slot = usize::try_from(n - 1).ok().and_then(|i| out.get_mut(i));
            if let Some(slot) = slot {
                *slot = Some(crate::rows::webhooks::attempt_context_row(r)?);
            }
        }
        Ok(out)
    }

    async fn record_attempts(&self, records: &[(WebhookAttempt, DeliveryProgress)]) -> Result<Vec<bool>> {
        let mut seen = std::collections::HashSet::new();
        if records.is_empty() || !records.iter().all(|(a, _)| seen.insert(a.delivery_id)) {
            // Two attempts of one delivery: one after the other (rare: only
            // a lost lease makes two workers attempt one delivery).
            let mut out = Vec::with_capacity(records.len());
            for (a, p) in records {
                out.push(crm_core::ports::store::settled_or_lost(self.record_attempt(a, p).await.map(|_| ()))?);
            }
            return Ok(out);
        }
        let col = |f: &dyn Fn(&(WebhookAttempt, DeliveryProgress)) -> uuid::Uuid| -> Vec<uuid::Uuid> {
            records.iter().map(f).collect()
        };
        let statuses: Vec<&str> = records.iter().map(|(_, p)| p.status.as_str()).collect();
        let next: Vec<Option<DateTime<Utc>>> = records.iter().map(|(_, p)| p.next_attempt_at).collect();
        let codes: Vec<Option<i64>> = records.iter().map(|(a, _)| a.status_code.map(i64::from)).collect();
        let errors: Vec<Option<&str>> = records.iter().map(|(a, _)| a.error.as_deref()).collect();
        let ats: Vec<DateTime<Utc>> = records.iter().map(|(a, _)| a.at).collect();
        let latencies: Vec<i64> = records.iter().map(|(a, _)| i64::from(a.latency_ms)).collect();
        let excerpts: Vec<Option<&str>> = records.iter().map(|(a, _)| a.response_excerpt.as_deref()).collect();
        let succeeded: Vec<bool> = records.iter().map(|(a, _)| a.succeeded).collect();
        // One statement committing asynchronously, like `record_attempt`.
        let what = "recording webhook attempts";
        let mut conn = self.bookkeeping(what).await?;
        let rows = sqlx::query_scalar::<_, uuid::Uuid>(
            "WITH t AS ( \
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::bigint[], $4::text[], $5::timestamptz[], \
             $6::uuid[], $7::uuid[], $8::uuid[], $9::uuid[], $10::bigint[], $11::text[], $12::bool[]) \
             AS t(status, next_at, code, error, at, delivery_id, account_id, attempt_id, endpoint_id, latency, \
             excerpt, succeeded) \
             ), u AS ( \
             UPDATE webhook_deliveries d SET attempts = d.attempts + 1, status = t.status, \
             next_attempt_at = t.next_at, last_status_code = t.code, last_error = t.error, updated_at = t.at \
             FROM t WHERE d.id = t.delivery_id AND d.account_id = t.account_id AND d.status = 'pending' \
             AND set_config('synchronous_commit', 'off', true) IS NOT NULL RETURNING d.id \
             ), a AS ( \
             INSERT INTO webhook_attempts (id, account_id, delivery_id, endpoint_id, at, status_code, latency_ms, \
             response_excerpt, error, succeeded) \
             SELECT t.attempt_id, t.account_id, t.delivery_id, t.endpoint_id, t.at, t.code, t.latency, t.excerpt, \
             t.error, t.succeeded FROM t JOIN u ON u.id = t.delivery_id \
             ) \
             SELECT id FROM u",
        )
        .bind(&statuses)
        .bind(&next)
        .bind(&codes)
        .bind(&errors)
        .bind(&ats)
        .bind(col(&|(a, _)| a.delivery_id.into_uuid()))
        .bind(col(&|(a, _)| a.account_id.into_uuid()))
        .bind(col(&|(a, _)| a.id.into_uuid()))
        .bind(col(&|(a, _)| a.endpoint_id.into_uuid()))
        .bind(&latencies)
        .bind(&excerpts)
        .bind(&succeeded)
        .fetch_all(&mut *conn)
        .await;
        let done = conn.settle(rows).map_err(|e| db(what, e))?;
        let done: std::collections::HashSet<uuid::Uuid> = done.into_iter().collect();
        Ok(records.iter().map(|(a, _)| done.contains(&a.delivery_id.into_uuid())).collect())
    }

    async fn list_endpoints_of(&self, accounts: &[AccountId]) -> Result<Vec<WebhookEndpoint>> {
        let ids: Vec<uuid::Uuid> = accounts.iter().map(|a| a.into_uuid()).collect();
        let mut conn = self.lane.lease().await.map_err(|e| db("listing webhook endpoints", e))?;
        let rows = sqlx::query("SELECT * FROM webhook_endpoints WHERE account_id = ANY($1) ORDER BY account_id, id")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await;
        let rows = conn.settle(rows).map_err(|e| db("listing webhook endpoints", e))?;
        rows.iter().map(crate::rows::webhooks::endpoint_row).collect()
    }

    async fn has_earlier_pending(
        &self,
        account: AccountId,
        endpoint: WebhookEndpointId,
        ordering_key: &str,
        event: EventId,
    ) -> Result<bool> {
        crate::rows::webhooks::has_earlier_pending(self, account, endpoint, ordering_key, event).await
    }

    async fn failed_deliveries_since(
        &self,
        account: AccountId,
        endpoint: WebhookEndpointId,
        since: DateTime<Utc>,
        after: Option<WebhookDeliveryId>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        check_recover_limit(limit)?;
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE account_id = $1 AND endpoint_id = $2 AND status = 'failed' \
             AND created_at >= $3 AND id > $4 ORDER BY id LIMIT $5",
        )
        .bind(account.into_uuid())
        .bind(endpoint.into_uuid())
        .bind(since)
        .bind(after.map(WebhookDeliveryId::into_uuid).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| db("listing failed webhook deliveries", e))?;
        rows.iter().map(delivery_row).collect()
    }
}

/// Binds a delivery's 13 columns, in table order, as `$1`…`$13`.
fn bind_delivery<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    d: &'q WebhookDelivery,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(d.id.into_uuid())
        .bind(d.account_id.into_uuid())
        .bind(d.endpoint_id.into_uuid())
        .bind(d.event_id.into_uuid())
        .bind(d.event_type.as_str())
        .bind(d.ordering_key.as_deref())
        .bind(d.status.as_str())
        .bind(i64::from(d.attempts))
        .bind(d.last_status_code.map(i64::from))
        .bind(d.last_error.as_deref())
        .bind(d.next_attempt_at)
        .bind(d.created_at)
        .bind(d.updated_at)
}

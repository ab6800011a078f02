//! [`WebhookStore`] over SQLite.

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

use super::{SqliteStore, Tx, append, commit, exists, json_string, now_micros, opt_micros};
use crate::error::db;
use crate::rows::micros;
use crate::rows::webhooks::{NOT_PENDING, STALE, delivery_row, endpoint_row};

/// An endpoint's JSON columns and sealed secrets as SQLite stores them.
struct EndpointValues {
    event_types: Option<String>,
    headers: String,
    secret: String,
    previous_secret: Option<String>,
}

impl EndpointValues {
    fn of(e: &WebhookEndpoint) -> Result<Self> {
        Ok(Self {
            event_types: e.event_types.types().map(|t| json_string("event_types", &t)).transpose()?,
            headers: json_string("headers", &e.headers)?,
            secret: e.secret.encode(),
            previous_secret: e.previous_secret.as_ref().map(|s| s.encode()),
        })
    }
}

async fn endpoint_exists(tx: &mut Tx, account: AccountId, id: WebhookEndpointId) -> Result<bool> {
    exists(tx, "SELECT 1 FROM webhook_endpoints WHERE id = ? AND account_id = ?", id.into_uuid(), account).await
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_endpoint(&self, e: &WebhookEndpoint, event: &Event) -> Result<()> {
        check_event_account(e.account_id, event)?;
        check_endpoint(e)?;
        let v = EndpointValues::of(e)?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, account_id, url, description, event_types, enabled, disabled_reason, \
             secret, previous_secret, previous_secret_expires_at, headers, rate_limit_per_second, failing_since, \
             created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
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
        .bind(opt_micros(e.previous_secret_expires_at))
        .bind(v.headers)
        .bind(e.rate_limit_per_second.map(i64::from))
        .bind(opt_micros(e.failing_since))
        .bind(micros(e.created_at))
        .bind(micros(e.updated_at))
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
            "UPDATE webhook_endpoints SET url = ?, description = ?, event_types = ?, enabled = ?, \
             disabled_reason = ?, secret = ?, previous_secret = ?, previous_secret_expires_at = ?, headers = ?, \
             rate_limit_per_second = ?, updated_at = ?, version = version + 1 \
             WHERE id = ? AND account_id = ? AND version = ? RETURNING *",
        )
        .bind(&e.url)
        .bind(&e.description)
        .bind(v.event_types)
        .bind(e.enabled)
        .bind(e.disabled_reason.as_deref())
        .bind(v.secret)
        .bind(v.previous_secret)
        .bind(opt_micros(e.previous_secret_expires_at))
        .bind(v.headers)
        .bind(e.rate_limit_per_second.map(i64::from))
        .bind(micros(e.updated_at))
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
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = ? AND account_id = ?")
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
        let done = sqlx::query("UPDATE webhook_endpoints SET failing_since = ? WHERE id = ? AND account_id = ?")
            .bind(opt_micros(failing_since))
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
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?, version = version + 1, \
             updated_at = max(updated_at, ?) WHERE id = ? AND account_id = ? AND enabled",
        )
        .bind(reason)
        .bind(micros(event.occurred_at))
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
        self.store_delivery(d, None).await
    }

    async fn create_delivery_with_job(&self, d: &WebhookDelivery, job: &Job) -> Result<(WebhookDelivery, bool)> {
        check_job(job)?;
        self.store_delivery(d, Some(job)).await
    }

    async fn get_delivery(&self, account: AccountId, id: WebhookDeliveryId) -> Result<WebhookDelivery> {
        crate::rows::webhooks::get_delivery(self, account, id).await
    }

    async fn list_deliveries(&self, account: AccountId, query: &DeliveryQuery) -> Result<Page<WebhookDelivery>> {
        crate::rows::webhooks::list_deliveries(self, account, query).await
    }

    async fn record_attempt(&self, a: &WebhookAttempt, progress: &DeliveryProgress) -> Result<WebhookDelivery> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?, next_attempt_at = ?, \
             last_status_code = ?, last_error = ?, updated_at = ? \
             WHERE id = ? AND account_id = ? AND status = 'pending' RETURNING *",
        )
        .bind(progress.status.as_str())
        .bind(opt_micros(progress.next_attempt_at))
        .bind(a.status_code.map(i64::from))
        .bind(a.error.as_deref())
        .bind(micros(a.at))
        .bind(a.delivery_id.into_uuid())
        .bind(a.account_id.into_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("recording a webhook attempt", e))?;
        let Some(row) = row else {
            let sql = "SELECT 1 FROM webhook_deliveries WHERE id = ? AND account_id = ?";
            let found = exists(&mut tx, sql, a.delivery_id.into_uuid(), a.account_id).await?;
            return Err(if found {
                Error::conflict("webhook delivery", NOT_PENDING)
            } else {
                Error::not_found("webhook delivery")
            });
        };
        sqlx::query(
            "INSERT INTO webhook_attempts (id, account_id, delivery_id, endpoint_id, at, status_code, latency_ms, \
             response_excerpt, error, succeeded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(a.id.into_uuid())
        .bind(a.account_id.into_uuid())
        .bind(a.delivery_id.into_uuid())
        .bind(a.endpoint_id.into_uuid())
        .bind(micros(a.at))
        .bind(a.status_code.map(i64::from))
        .bind(i64::from(a.latency_ms))
        .bind(a.response_excerpt.as_deref())
        .bind(a.error.as_deref())
        .bind(a.succeeded)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("recording a webhook attempt", e))?;
        let stored = delivery_row(&row)?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn set_delivery_status(
        &self,
        account: AccountId,
        id: WebhookDeliveryId,
        progress: &DeliveryProgress,
    ) -> Result<WebhookDelivery> {
        let row = sqlx::query(
            "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, updated_at = max(updated_at, ?) \
             WHERE id = ? AND account_id = ? RETURNING *",
        )
        .bind(progress.status.as_str())
        .bind(opt_micros(progress.next_attempt_at))
        .bind(now_micros())
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
            "SELECT * FROM webhook_deliveries WHERE account_id = ? AND endpoint_id = ? AND status = 'failed' \
             AND created_at >= ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(account.into_uuid())
        .bind(endpoint.into_uuid())
        .bind(micros(since))
        .bind(after.map(WebhookDeliveryId::into_uuid).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| db("listing failed webhook deliveries", e))?;
        rows.iter().map(delivery_row).collect()
    }
}

impl SqliteStore {
    /// [`WebhookStore::create_delivery`], scheduling `job` with a created delivery.
    async fn store_delivery(&self, d: &WebhookDelivery, job: Option<&Job>) -> Result<(WebhookDelivery, bool)> {
        let mut tx = self.write().await?;
        if !endpoint_exists(&mut tx, d.account_id, d.endpoint_id).await? {
            return Err(Error::not_found("webhook endpoint"));
        }
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (id, account_id, endpoint_id, event_id, event_type, ordering_key, status, \
             attempts, last_status_code, last_error, next_attempt_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, event_id) DO NOTHING",
        )
        .bind(d.id.into_uuid())
        .bind(d.account_id.into_uuid())
        .bind(d.endpoint_id.into_uuid())
        .bind(d.event_id.into_uuid())
        .bind(d.event_type.as_str())
        .bind(d.ordering_key.as_deref())
        .bind(d.status.as_str())
        .bind(i64::from(d.attempts))
        .bind(d.last_status_code.map(i64::from))
        .bind(d.last_error.as_deref())
        .bind(opt_micros(d.next_attempt_at))
        .bind(micros(d.created_at))
        .bind(micros(d.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("creating a webhook delivery", e))?;
        if done.rows_affected() == 1 {
            if let Some(job) = job {
                // A taken id or unique key: the job is there already (SQLite
                // undoes only the refused statement, not the transaction).
                match super::jobs::insert_job(&mut tx, job).await {
                    Ok(()) | Err(Error::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            commit(tx).await?;
            return Ok((d.clone(), true));
        }
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE endpoint_id = ? AND event_id = ?")
            .bind(d.endpoint_id.into_uuid())
            .bind(d.event_id.into_uuid())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("reading a webhook delivery", e))?;
        Ok((delivery_row(&row)?, false))
    }
}

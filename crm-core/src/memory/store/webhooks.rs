//! [`WebhookStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State, page_of};
use crate::domain::webhook::{
    DeliveryProgress, DeliveryQuery, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, check_endpoint,
};
use crate::ports::store::check_event_account;
use crate::ports::webhooks::check_recover_limit;
use crate::{AccountId, Error, Event, EventId, Page, Result, WebhookDeliveryId, WebhookEndpointId, WebhookStore};

/// Why a stale endpoint update is refused (every store words it alike).
const STALE_ENDPOINT: &str = "it was changed by someone else; reload and retry";

impl State {
    fn endpoint(&self, account: AccountId, id: WebhookEndpointId) -> Result<&WebhookEndpoint> {
        self.endpoints.get(&id).filter(|e| e.account_id == account).ok_or(Error::not_found("webhook endpoint"))
    }

    fn delivery(&self, account: AccountId, id: WebhookDeliveryId) -> Result<&WebhookDelivery> {
        self.deliveries.get(&id).filter(|d| d.account_id == account).ok_or(Error::not_found("webhook delivery"))
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint, event: &Event) -> Result<()> {
        check_event_account(endpoint.account_id, event)?;
        check_endpoint(endpoint)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.endpoints.contains_key(&endpoint.id) {
            return Err(Error::conflict("webhook endpoint", "id already exists"));
        }
        let mut stored = endpoint.clone();
        stored.version = 0;
        s.endpoints.insert(endpoint.id, stored);
        s.append(event);
        Ok(())
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, event: &Event) -> Result<WebhookEndpoint> {
        check_event_account(endpoint.account_id, event)?;
        check_endpoint(endpoint)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let current = s.endpoint(endpoint.account_id, endpoint.id)?;
        if current.version != endpoint.version {
            return Err(Error::conflict("webhook endpoint", STALE_ENDPOINT));
        }
        let mut stored = endpoint.clone();
        stored.version += 1;
        stored.created_at = current.created_at;
        stored.failing_since = current.failing_since;
        s.endpoints.insert(endpoint.id, stored.clone());
        s.append(event);
        Ok(stored)
    }

    async fn delete_endpoint(&self, account: AccountId, id: WebhookEndpointId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.endpoint(account, id)?;
        s.endpoints.remove(&id);
        let gone: Vec<WebhookDeliveryId> =
            s.deliveries.values().filter(|d| d.endpoint_id == id).map(|d| d.id).collect();
        for d in gone {
            s.deliveries.remove(&d);
            s.attempts.remove(&d);
        }
        s.append(event);
        Ok(())
    }

    async fn get_endpoint(&self, account: AccountId, id: WebhookEndpointId) -> Result<WebhookEndpoint> {
        self.lock().endpoint(account, id).cloned()
    }

    async fn list_endpoints(&self, account: AccountId) -> Result<Vec<WebhookEndpoint>> {
        Ok(self.lock().endpoints.values().filter(|e| e.account_id == account).cloned().collect())
    }

    async fn set_endpoint_failing(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        failing_since: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let mut s = self.lock();
        s.endpoint(account, id)?;
        if let Some(e) = s.endpoints.get_mut(&id) {
            e.failing_since = failing_since;
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
        let mut s = self.lock();
        s.ensure_new(event)?;
        if !s.endpoint(account, id)?.enabled {
            return Ok(false);
        }
        if let Some(e) = s.endpoints.get_mut(&id) {
            e.enabled = false;
            e.disabled_reason = Some(reason.to_owned());
            e.version += 1;
            e.updated_at = e.updated_at.max(event.occurred_at);
        }
        s.append(event);
        Ok(true)
    }

    async fn create_delivery(&self, delivery: &WebhookDelivery) -> Result<(WebhookDelivery, bool)> {
        self.lock().store_delivery(delivery, None)
    }

    async fn create_delivery_with_job(
        &self,
        delivery: &WebhookDelivery,
        job: &crate::Job,
    ) -> Result<(WebhookDelivery, bool)> {
        crate::ports::jobs::check_job(job)?;
        self.lock().store_delivery(delivery, Some(job))
    }

    async fn get_delivery(&self, account: AccountId, id: WebhookDeliveryId) -> Result<WebhookDelivery> {
        self.lock().delivery(account, id).cloned()
    }

    async fn list_deliveries(&self, account: AccountId, query: &DeliveryQuery) -> Result<Page<WebhookDelivery>> {
        let s = self.lock();
        let items = s.deliveries.values().filter(|d| {
            d.account_id == account
                && query.endpoint_id.is_none_or(|e| d.endpoint_id == e)
                && query.event_id.is_none_or(|e| d.event_id == e)
                && query.status.is_none_or(|st| d.status == st)
        });
        Ok(page_of(items.cloned(), &query.page, |d| d.id.into_uuid()))
    }

    async fn record_attempt(&self, attempt: &WebhookAttempt, progress: &DeliveryProgress) -> Result<WebhookDelivery> {
        let mut s = self.lock();
        let d = s.delivery(attempt.account_id, attempt.delivery_id)?;
        if d.status != DeliveryStatus::Pending {
            return Err(Error::conflict("webhook delivery", "it is no longer pending"));
        }
        let mut stored = d.clone();
        stored.attempts += 1;
        stored.status = progress.status;
        stored.next_attempt_at = progress.next_attempt_at;
        stored.last_status_code = attempt.status_code;
        stored.last_error = attempt.error.clone();
        stored.updated_at = attempt.at;
        s.deliveries.insert(stored.id, stored.clone());
        s.attempts.entry(stored.id).or_default().push(attempt.clone());
        Ok(stored)
    }

    async fn set_delivery_status(
        &self,
        account: AccountId,
        id: WebhookDeliveryId,
        progress: &DeliveryProgress,
    ) -> Result<WebhookDelivery> {
        let now = self.clock.now();
        let mut s = self.lock();
        let mut stored = s.delivery(account, id)?.clone();
        stored.status = progress.status;
        stored.next_attempt_at = progress.next_attempt_at;
        stored.updated_at = stored.updated_at.max(now);
        s.deliveries.insert(id, stored.clone());
        Ok(stored)
    }

    async fn list_attempts(&self, account: AccountId, delivery: WebhookDeliveryId) -> Result<Vec<WebhookAttempt>> {
        let s = self.lock();
        s.delivery(account, delivery)?;
        Ok(s.attempts.get(&delivery).cloned().unwrap_or_default())
    }

    async fn has_earlier_pending(
        &self,
        account: AccountId,
        endpoint: WebhookEndpointId,
        ordering_key: &str,
        event: EventId,
    ) -> Result<bool> {
        Ok(self.lock().deliveries.values().any(|d| {
            d.account_id == account
                && d.endpoint_id == endpoint
                && d.status == DeliveryStatus::Pending
                && d.ordering_key.as_deref() == Some(ordering_key)
                && d.event_id < event
        }))
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
        Ok(self
            .lock()
            .deliveries
            .values()
            .filter(|d| {
                d.account_id == account
                    && d.endpoint_id == endpoint
                    && d.status == DeliveryStatus::Failed
                    && d.created_at >= since
                    && after.is_none_or(|a| d.id > a)
            })
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

impl State {
    /// A delivery (and, when it is created, `job` unless its id or unique key is taken).
    fn store_delivery(
        &mut self,
        delivery: &WebhookDelivery,
        job: Option<&crate::Job>,
    ) -> Result<(WebhookDelivery, bool)> {
        self.endpoint(delivery.account_id, delivery.endpoint_id)?;
        if let Some(existing) =
            self.deliveries.values().find(|d| d.endpoint_id == delivery.endpoint_id && d.event_id == delivery.event_id)
        {
            return Ok((existing.clone(), false));
        }
        if self.deliveries.contains_key(&delivery.id) {
            return Err(Error::conflict("webhook delivery", "id already exists"));
        }
        self.deliveries.insert(delivery.id, delivery.clone());
        if let Some(job) = job
            && self.check_new_job(job).is_ok()
        {
            self.jobs.insert(job.id, super::JobEntry { job: job.clone(), lease: None });
        }
        Ok((delivery.clone(), true))
    }
}

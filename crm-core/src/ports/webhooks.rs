//! The `WebhookStore` port: outbound webhook endpoints, their deliveries
//! and the attempts log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

use crate::domain::webhook::{
    AttemptContext, DeliveryProgress, DeliveryQuery, EndpointState, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
};
use crate::{AccountId, Event, EventId, Page, Result, WebhookDeliveryId, WebhookEndpointId};

#[allow(unused_imports)]
use crate::Error;

/// Largest number of deliveries [`WebhookStore::failed_deliveries_since`] returns at once.
pub const MAX_RECOVER_BATCH: u32 = 1000;

/// Outbound webhook endpoints, deliveries and attempts.
///
/// Contract (checked by `crm_core::testing::store::webhooks`):
/// - Tenancy as every store: another account's endpoint or delivery behaves
///   as a missing one.
/// - Endpoint mutations record their event in the same transaction; a
///   refused mutation writes no event. Secrets stay sealed.
/// - One delivery per (endpoint, event): [`WebhookStore::create_delivery`]
///   returns the stored one when it exists, so a repeated fan-out is harmless.
/// - [`WebhookStore::record_attempt`] stores the attempt and moves its
///   delivery (attempts + 1, status, last status and error) in one transaction.
#[async_trait]
pub trait WebhookStore: Send + Sync + Debug + 'static {
    /// Stores a new endpoint (`version` 0) and its event. [`Error::Validation`]
    /// when [`check_endpoint`](crate::domain::webhook::check_endpoint) refuses it;
    /// [`Error::Conflict`] when its id is taken.
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint, event: &Event) -> Result<()>;

    /// Replaces an endpoint whose stored `version` equals `endpoint.version`,
    /// storing `version + 1` (`created_at` and `failing_since` keep their
    /// stored values), and records `event`. Returns the stored endpoint.
    /// [`Error::NotFound`] when missing; [`Error::Conflict`] when stale.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, event: &Event) -> Result<WebhookEndpoint>;

    /// Deletes an endpoint and records `event`; its deliveries and attempts
    /// go with it. [`Error::NotFound`] when missing.
    async fn delete_endpoint(&self, account: AccountId, id: WebhookEndpointId, event: &Event) -> Result<()>;

    /// One endpoint; [`Error::NotFound`] when missing.
    async fn get_endpoint(&self, account: AccountId, id: WebhookEndpointId) -> Result<WebhookEndpoint>;

    /// The account's endpoints in id order.
    async fn list_endpoints(&self, account: AccountId) -> Result<Vec<WebhookEndpoint>>;

    /// Sets or clears `failing_since` (the version stays: not a change of
    /// the endpoint's settings). [`Error::NotFound`] when missing.
    async fn set_endpoint_failing(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        failing_since: Option<DateTime<Utc>>,
    ) -> Result<()>;

    /// Disables an enabled endpoint with `reason` (version + 1) and records
    /// `event`; returns false (and writes nothing) when it was already
    /// disabled. [`Error::NotFound`] when missing.
    async fn disable_endpoint(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        reason: &str,
        event: &Event,
    ) -> Result<bool>;

    /// Stores a delivery, or returns the stored one of the same (endpoint,
    /// event) unchanged; the flag says whether it was created.
    /// [`Error::NotFound`] when the endpoint is missing.
    async fn create_delivery(&self, delivery: &WebhookDelivery) -> Result<(WebhookDelivery, bool)>;

    /// [`WebhookStore::create_delivery`], and when it creates the delivery,
    /// also schedules `job` (its delivery job) in the same transaction; a
    /// `job` whose id or unique key is taken is skipped, not an error. When
    /// the delivery already existed nothing else is written (the caller
    /// decides whether its job is missing). Checked like
    /// [`JobStore::schedule_job`](crate::JobStore::schedule_job).
    ///
    /// Meant for the outbox consumer that fans an event out: a store may
    /// commit it without waiting for durability (the outbox item it is made
    /// from stays queued until it is removed, later), so a server crash can
    /// make the fan-out run again but never lose a delivery.
    async fn create_delivery_with_job(
        &self,
        delivery: &WebhookDelivery,
        job: &crate::Job,
    ) -> Result<(WebhookDelivery, bool)>;

    /// One delivery; [`Error::NotFound`] when missing.
    async fn get_delivery(&self, account: AccountId, id: WebhookDeliveryId) -> Result<WebhookDelivery>;

    /// The account's deliveries matching `query`, in id order after the cursor.
    async fn list_deliveries(&self, account: AccountId, query: &DeliveryQuery) -> Result<Page<WebhookDelivery>>;

    /// Stores an attempt and moves its delivery by `progress` in one
    /// transaction; returns the delivery as stored. [`Error::NotFound`] when
    /// the delivery is missing; [`Error::Conflict`] when it is not pending
    /// (another worker settled it).
    async fn record_attempt(&self, attempt: &WebhookAttempt, progress: &DeliveryProgress) -> Result<WebhookDelivery>;

    /// Moves a delivery to `progress` without an attempt (a replay makes a
    /// failed one pending; a deleted endpoint fails one). Returns it as stored.
    /// [`Error::NotFound`] when missing.
    async fn set_delivery_status(
        &self,
        account: AccountId,
        id: WebhookDeliveryId,
        progress: &DeliveryProgress,
    ) -> Result<WebhookDelivery>;

    /// A delivery's attempts, oldest first. [`Error::NotFound`] when the
    /// delivery is missing.
    async fn list_attempts(&self, account: AccountId, delivery: WebhookDeliveryId) -> Result<Vec<WebhookAttempt>>;

    /// Whether the endpoint has a pending delivery with this ordering key
    /// for an event before `event` (what FIFO per contact waits for).
    async fn has_earlier_pending(
        &self,
        account: AccountId,
        endpoint: WebhookEndpointId,
        ordering_key: &str,
        event: EventId,
    ) -> Result<bool>;

    /// What an attempt of delivery `id` needs, in one read where the store
    /// can: the delivery, its endpoint's state and the FIFO check (see
    /// [`AttemptContext`]). `None` when the delivery is missing.
    async fn attempt_context(&self, account: AccountId, id: WebhookDeliveryId) -> Result<Option<AttemptContext>> {
        let delivery = match self.get_delivery(account, id).await {
            Ok(d) => d,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let endpoint = match self.get_endpoint(account, delivery.endpoint_id).await {
            Ok(e) => Some(EndpointState { version: e.version, enabled: e.enabled, failing_since: e.failing_since }),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let earlier_pending = match &delivery.ordering_key {
            Some(key) => self.has_earlier_pending(account, delivery.endpoint_id, key, delivery.event_id).await?,
            None => false,
        };
        Ok(Some(AttemptContext { delivery, endpoint, earlier_pending }))
    }

    /// [`WebhookStore::attempt_context`] for many deliveries at once (one
    /// read where the store can), answering in the order asked.
    async fn attempt_contexts(&self, ids: &[(AccountId, WebhookDeliveryId)]) -> Result<Vec<Option<AttemptContext>>> {
        let mut out = Vec::with_capacity(ids.len());
        for (account, id) in ids {
            out.push(self.attempt_context(*account, *id).await?);
        }
        Ok(out)
    }

    /// [`WebhookStore::record_attempt`] for many attempts at once (one
    /// statement where the store can). Per attempt, in order: whether it
    /// was recorded — `false` where `record_attempt` would answer
    /// [`Error::NotFound`] or [`Error::Conflict`] (the delivery is gone or
    /// no longer pending). Two attempts of one delivery in one call are
    /// recorded one after the other.
    async fn record_attempts(&self, records: &[(WebhookAttempt, DeliveryProgress)]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(records.len());
        for (attempt, progress) in records {
            out.push(crate::ports::store::settled_or_lost(self.record_attempt(attempt, progress).await.map(|_| ()))?);
        }
        Ok(out)
    }

    /// The endpoints of several accounts (one read where the store can),
    /// by account then id, as [`WebhookStore::list_endpoints`] returns each.
    async fn list_endpoints_of(&self, accounts: &[AccountId]) -> Result<Vec<WebhookEndpoint>> {
        let mut out = Vec::new();
        for a in accounts {
            out.extend(self.list_endpoints(*a).await?);
        }
        Ok(out)
    }

    /// The endpoint's failed deliveries created at or after `since`, oldest
    /// first, after `after`, at most `limit` (1..=[`MAX_RECOVER_BATCH`]).
    async fn failed_deliveries_since(
        &self,
        account: AccountId,
        endpoint: WebhookEndpointId,
        since: DateTime<Utc>,
        after: Option<WebhookDeliveryId>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
}

/// Checks a recover batch size.
pub fn check_recover_limit(limit: u32) -> Result<()> {
    if !(1..=MAX_RECOVER_BATCH).contains(&limit) {
        return Err(crate::Error::validation("limit", format!("must be between 1 and {MAX_RECOVER_BATCH}")));
    }
    Ok(())
}

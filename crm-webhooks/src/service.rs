//! `Webhooks`: the endpoint flows (create, update, rotate, delete), the
//! deliveries API (list, attempts, replay, recover, test) and the two
//! steps the workers run (fan an event out to deliveries, make one attempt).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crm_core::domain::webhook::{
    AttemptContext, DeliveryProgress, DeliveryQuery, DeliveryStatus, EndpointState, MAX_ATTEMPT_ERROR,
    MAX_ENDPOINTS_PER_ACCOUNT, WebhookAttempt, WebhookDelivery, WebhookEndpoint, check_endpoint, clip,
};
use crm_core::ports::rate_limiter::Quota;
use crm_core::secrets::Keyring;
use crm_core::workers::{Batcher, Outcome};
use crm_core::{
    AccountId, Clock, Error, Event, EventFilter, EventId, EventType, Job, JobId, Page, RateLimiter, Result, Store,
    SystemClock, WebhookAttemptId, WebhookDeliveryId, WebhookEndpointId,
};
use futures_util::FutureExt;

use crate::schedule::RetrySchedule;
use crate::sender::{AttemptResult, Sender};
use crate::signing::{SigningSecret, signature_header};
use crate::ssrf::{AddressPolicy, check_url};

/// The outbox consumer that fans events out to deliveries.
pub const CONSUMER: &str = "webhooks";
/// The job kind of one delivery's attempts.
pub const DELIVER_KIND: &str = "webhook.deliver";
/// The event type of test deliveries (never stored in the event log).
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Delays between attempts.
    pub schedule: RetrySchedule,
    /// Per-attempt timeout (default 15 s).
    pub timeout: Duration,
    /// An endpoint failing continuously this long is disabled (default 5 days).
    pub disable_after: Duration,
    /// How long the previous secret keeps signing after a rotation (default 24 h).
    pub rotation_overlap: Duration,
    /// Attempts to one endpoint running at once in one process (default 4).
    pub per_endpoint_concurrency: usize,
    /// Which addresses may be reached (default: the strict SSRF guard).
    pub policy: AddressPolicy,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 86_400),
            rotation_overlap: Duration::from_secs(86_400),
            per_endpoint_concurrency: 4,
            policy: AddressPolicy::strict(),
        }
    }
}

/// A new endpoint, as the API takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEndpoint {
    /// Where to POST (http or https; private and loopback addresses are refused).
    pub url: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Event names and `prefix.*` patterns; absent or null: every event.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Whether deliveries are made (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// At most this many requests per second.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// A `whsec_…` secret to use instead of a generated one.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Changes to an endpoint; absent fields keep their values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointPatch {
    /// The version read (optimistic concurrency); a stale one is refused with 409.
    pub version: i64,
    /// New URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New filter; an empty list means every event.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Enable (clears the failure state) or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// New headers (replace all).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// New rate limit; 0 removes it.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
}

/// The outbound webhooks service over a store.
#[derive(Debug, Clone)]
pub struct Webhooks {
    store: Arc<dyn Store>,
    keyring: Keyring,
    clock: Arc<dyn Clock>,
    limiter: Option<Arc<dyn RateLimiter>>,
    settings: Arc<WebhookSettings>,
    /// Endpoints by id, as last read (see [`Webhooks::endpoint_at`]).
    endpoints: Arc<Mutex<HashMap<WebhookEndpointId, WebhookEndpoint>>>,
    /// The workers' reads and writes, batched across concurrent handlers.
    batches: Arc<Batches>,
}

/// The store calls every fan-out or attempt makes, each batched across the
/// handlers running at once (see [`Batcher`]): one statement answers many.
#[derive(Debug)]
struct Batches {
    contexts: Batcher<(AccountId, WebhookDeliveryId), Option<AttemptContext>>,
    records: Batcher<(WebhookAttempt, DeliveryProgress), bool>,
    endpoints: Batcher<AccountId, Vec<WebhookEndpoint>>,
}

/// Most requests one batched statement carries.
const BATCH: usize = 256;

impl Batches {
    fn new(store: &Arc<dyn Store>) -> Self {
        let s = store.clone();
        let contexts =
            Batcher::new("webhook attempt contexts", BATCH, move |ids: Vec<(AccountId, WebhookDeliveryId)>| {
                let s = s.clone();
                async move { s.attempt_contexts(&ids).await }.boxed()
            });
        let s = store.clone();
        let records =
            Batcher::new("webhook attempt records", BATCH, move |r: Vec<(WebhookAttempt, DeliveryProgress)>| {
                let s = s.clone();
                async move { s.record_attempts(&r).await }.boxed()
            });
        let s = store.clone();
        let endpoints = Batcher::new("webhook endpoint lists", BATCH, move |accounts: Vec<AccountId>| {
            let s = s.clone();
            async move {
                let mut unique = accounts.clone();
                unique.sort_unstable();
                unique.dedup();
                let all = s.list_endpoints_of(&unique).await?;
                Ok(accounts.iter().map(|a| all.iter().filter(|e| e.account_id == *a).cloned().collect()).collect())
            }
            .boxed()
        });
        Self { contexts, records, endpoints }
    }
}

/// Most endpoints the attempt cache keeps before it starts over.
const ENDPOINT_CACHE: usize = 10_000;

fn filter_of(types: Option<Vec<String>>) -> Result<EventFilter> {
    match types {
        None => Ok(EventFilter::all()),
        Some(t) if t.is_empty() => Ok(EventFilter::all()),
        Some(t) => EventFilter::only(t),
    }
}

/// The delivery's ordering key: the contact an event is about (its
/// `contact_id`, its message's or contact summary's, or a `contact.*`
/// event's own id).
fn ordering_key(event: &Event) -> Option<String> {
    let p = &event.payload;
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    text(p.get("contact_id"))
        .or_else(|| text(p.get("message").and_then(|m| m.get("contact_id"))))
        .or_else(|| text(p.get("contact").and_then(|c| c.get("id"))))
        .or_else(|| if event.event_type.as_str().starts_with("contact.") { text(p.get("id")) } else { None })
}

/// The job payload of one delivery (the event rides along only for test
/// deliveries, which the log does not hold).
#[derive(Debug, Serialize, Deserialize)]
struct DeliverJob {
    delivery: WebhookDeliveryId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Event>,
}

impl Webhooks {
    /// The service over `store`, sealing secrets with `keyring`.
    pub fn new(store: Arc<dyn Store>, keyring: Keyring) -> Self {
        Self {
            keyring,
            clock: Arc::new(SystemClock),
            limiter: None,
            settings: Arc::default(),
            endpoints: Arc::default(),
            batches: Arc::new(Batches::new(&store)),
            store,
        }
    }

    /// The clock (default: the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The limiter per-endpoint rate limits count in (without one they are not enforced).
    pub fn limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Delivery settings.
    pub fn settings(mut self, settings: WebhookSettings) -> Self {
        self.settings = Arc::new(settings);
        self
    }

    /// The delivery settings in use.
    pub fn current_settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn seal(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        secret: &SigningSecret,
    ) -> Result<crm_core::secrets::SealedSecret> {
        self.keyring.seal(secret.expose().as_bytes(), &WebhookEndpoint::secret_context(account, id))
    }

    fn open(&self, e: &WebhookEndpoint, sealed: &crm_core::secrets::SealedSecret) -> Result<SigningSecret> {
        let bytes = self.keyring.open(sealed, &WebhookEndpoint::secret_context(e.account_id, e.id))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Config { message: "a sealed webhook secret is not text".into() })?;
        SigningSecret::parse(&text)
    }

    /// The secrets that sign now: the current one, and the previous one
    /// while its overlap lasts.
    pub(crate) fn signing_secrets(&self, e: &WebhookEndpoint) -> Result<Vec<SigningSecret>> {
        let mut out = vec![self.open(e, &e.secret)?];
        if let (Some(prev), Some(until)) = (&e.previous_secret, e.previous_secret_expires_at)
            && until > self.now()
        {
            out.push(self.open(e, prev)?);
        }
        Ok(out)
    }

    fn event(&self, account: AccountId, kind: EventType, data: &impl Serialize) -> Event {
        Event::new(account, kind, data, self.now())
    }

    // ----- endpoints ----------------------------------------------------------------

    /// Creates an endpoint; returns it with its secret (`whsec_…`), shown
    /// this once. [`Error::Validation`] for a bad URL (including one the
    /// SSRF guard refuses), filter, header or secret; [`Error::Conflict`]
    /// past [`MAX_ENDPOINTS_PER_ACCOUNT`].
    pub async fn create_endpoint(&self, account: AccountId, input: NewEndpoint) -> Result<(WebhookEndpoint, String)> {
        check_url(&input.url, &self.settings.policy)?;
        let secret = match &input.secret {
            Some(s) => SigningSecret::parse(s)?,
            None => SigningSecret::generate()?,
        };
        if self.store.list_endpoints(account).await?.len() >= MAX_ENDPOINTS_PER_ACCOUNT {
            return Err(Error::conflict(
                "webhook endpoint",
                format!("an account has at most {MAX_ENDPOINTS_PER_ACCOUNT}"),
            ));
        }
        let id = WebhookEndpointId::new();
        let now = self.now();
        let endpoint = WebhookEndpoint {
            id,
            account_id: account,
            url: input.url,
            description: input.description,
            event_types: filter_of(input.event_types)?,
            enabled: input.enabled.unwrap_or(true),
            disabled_reason: None,
            secret: self.seal(account, id, &secret)?,
            previous_secret: None,
            previous_secret_expires_at: None,
            headers: input.headers,
            rate_limit_per_second: input.rate_limit_per_second,
            failing_since: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        check_endpoint(&endpoint)?;
        let event = self.event(account, EventType::ENDPOINT_CREATED, &endpoint.view());
        self.store.insert_endpoint(&endpoint, &event).await?;
        Ok((endpoint, secret.expose()))
    }

    /// One endpoint.
    pub async fn endpoint(&self, account: AccountId, id: WebhookEndpointId) -> Result<WebhookEndpoint> {
        self.store.get_endpoint(account, id).await
    }

    /// The account's endpoints.
    pub async fn endpoints(&self, account: AccountId) -> Result<Vec<WebhookEndpoint>> {
        self.store.list_endpoints(account).await
    }

    /// Applies `patch`. Enabling clears the disabled reason and the failure
    /// state. [`Error::Conflict`] when `patch.version` is stale.
    pub async fn update_endpoint(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        patch: EndpointPatch,
    ) -> Result<WebhookEndpoint> {
        let mut e = self.store.get_endpoint(account, id).await?;
        if let Some(url) = patch.url {
            check_url(&url, &self.settings.policy)?;
            e.url = url;
        }
        if let Some(d) = patch.description {
            e.description = d;
        }
        if let Some(t) = patch.event_types {
            e.event_types = filter_of(Some(t))?;
        }
        if let Some(h) = patch.headers {
            e.headers = h;
        }
        if let Some(r) = patch.rate_limit_per_second {
            e.rate_limit_per_second = (r != 0).then_some(r);
        }
        let enabling = patch.enabled == Some(true) && !e.enabled;
        if let Some(on) = patch.enabled {
            e.enabled = on;
            if on {
                e.disabled_reason = None;
            }
        }
        e.version = patch.version;
        e.updated_at = self.now().max(e.updated_at);
        check_endpoint(&e)?;
        let event = self.event(account, EventType::ENDPOINT_UPDATED, &e.view());
        let mut stored = self.store.update_endpoint(&e, &event).await?;
        if enabling && stored.failing_since.is_some() {
            self.store.set_endpoint_failing(account, id, None).await?;
            stored.failing_since = None;
        }
        Ok(stored)
    }

    /// Deletes an endpoint with its deliveries and attempts.
    pub async fn delete_endpoint(&self, account: AccountId, id: WebhookEndpointId) -> Result<()> {
        let e = self.store.get_endpoint(account, id).await?;
        let event = self.event(account, EventType::ENDPOINT_DELETED, &serde_json::json!({ "id": e.id }));
        self.store.delete_endpoint(account, id, &event).await
    }

    /// Rotates the secret: a new one signs from now on, and the current one
    /// keeps signing beside it for `overlap` (default: the settings'
    /// rotation overlap; zero stops it at once). Returns the endpoint and
    /// the new secret, shown this once.
    pub async fn rotate_secret(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        overlap: Option<Duration>,
        new_secret: Option<&str>,
    ) -> Result<(WebhookEndpoint, String)> {
        let secret = match new_secret {
            Some(s) => SigningSecret::parse(s)?,
            None => SigningSecret::generate()?,
        };
        let mut e = self.store.get_endpoint(account, id).await?;
        let overlap = overlap.unwrap_or(self.settings.rotation_overlap);
        let now = self.now();
        let until = chrono::Duration::from_std(overlap).ok().and_then(|d| now.checked_add_signed(d));
        let previous = std::mem::replace(&mut e.secret, self.seal(account, id, &secret)?);
        (e.previous_secret, e.previous_secret_expires_at) =
            if overlap.is_zero() { (None, None) } else { (Some(previous), until) };
        e.updated_at = now.max(e.updated_at);
        let event = self.event(account, EventType::ENDPOINT_UPDATED, &e.view());
        let stored = self.store.update_endpoint(&e, &event).await?;
        Ok((stored, secret.expose()))
    }

    // ----- deliveries ----------------------------------------------------------------

    /// The account's deliveries matching `query`.
    pub async fn deliveries(&self, account: AccountId, query: &DeliveryQuery) -> Result<Page<WebhookDelivery>> {
        self.store.list_deliveries(account, query).await
    }

    /// One delivery.
    pub async fn delivery(&self, account: AccountId, id: WebhookDeliveryId) -> Result<WebhookDelivery> {
        self.store.get_delivery(account, id).await
    }

    /// A delivery's attempts, oldest first.
    pub async fn attempts(&self, account: AccountId, id: WebhookDeliveryId) -> Result<Vec<WebhookAttempt>> {
        self.store.list_attempts(account, id).await
    }

    /// Sends a delivery again (a failed or succeeded one; a pending one is
    /// left as it is): it becomes pending and its job is scheduled now (a
    /// dead job is replayed). The `webhook-id` stays the event's id.
    pub async fn replay(&self, account: AccountId, id: WebhookDeliveryId) -> Result<WebhookDelivery> {
        let d = self.store.get_delivery(account, id).await?;
        if d.status == DeliveryStatus::Pending {
            return Ok(d);
        }
        let now = self.now();
        let d = self
            .store
            .set_delivery_status(
                account,
                id,
                &DeliveryProgress { status: DeliveryStatus::Pending, next_attempt_at: Some(now) },
            )
            .await?;
        let job = JobId::from_uuid(id.into_uuid());
        match self.store.replay_job(account, job).await {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => self.schedule(&d, Self::test_event(&d)).await?,
            Err(e) => return Err(e),
        }
        Ok(d)
    }

    /// Replays every failed delivery of `endpoint` created since `since`;
    /// returns how many.
    pub async fn recover(&self, account: AccountId, endpoint: WebhookEndpointId, since: DateTime<Utc>) -> Result<u64> {
        self.store.get_endpoint(account, endpoint).await?;
        let mut after = None;
        let mut count = 0;
        loop {
            let batch = self.store.failed_deliveries_since(account, endpoint, since, after, 500).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            for d in &batch {
                self.replay(account, d.id).await?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Queues a `webhook.test` event for one endpoint (whatever its filter);
    /// returns the delivery to follow.
    pub async fn send_test(&self, account: AccountId, endpoint: WebhookEndpointId) -> Result<WebhookDelivery> {
        let e = self.store.get_endpoint(account, endpoint).await?;
        let kind = EventType::custom(TEST_EVENT_TYPE)?;
        let event = self.event(account, kind, &serde_json::json!({ "endpoint_id": e.id, "test": true }));
        let d = self.new_delivery(&e, &event);
        let (d, _) = self.store.create_delivery(&d).await?;
        self.schedule(&d, Some(event)).await?;
        Ok(d)
    }

    /// The `webhook.test` event of a test delivery, rebuilt from it: test
    /// events are never stored in the log, and their data is only the
    /// endpoint's id, so a replay after the job is gone sends the same event
    /// (same id, so the same `webhook-id`; its time is the delivery's).
    /// `None` for any other delivery, whose event is read from the log.
    fn test_event(d: &WebhookDelivery) -> Option<Event> {
        (d.event_type.as_str() == TEST_EVENT_TYPE).then(|| Event {
            id: d.event_id,
            account_id: d.account_id,
            event_type: d.event_type.clone(),
            payload: serde_json::json!({ "endpoint_id": d.endpoint_id, "test": true }),
            occurred_at: d.created_at,
        })
    }

    fn new_delivery(&self, e: &WebhookEndpoint, event: &Event) -> WebhookDelivery {
        let now = self.now();
        WebhookDelivery {
            id: WebhookDeliveryId::new(),
            account_id: e.account_id,
            endpoint_id: e.id,
            event_id: event.id,
            event_type: event.event_type.clone(),
            ordering_key: ordering_key(event),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status_code: None,
            last_error: None,
            next_attempt_at: Some(now),
            created_at: now,
            updated_at: now,
        }
    }

    /// Schedules a delivery's job (its id is the delivery's, its unique key
    /// too: a second schedule while one is waiting is a no-op).
    async fn schedule(&self, d: &WebhookDelivery, event: Option<Event>) -> Result<()> {
        let job = self.delivery_job(d, event)?;
        match self.store.schedule_job(&job).await {
            Ok(()) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The job of a delivery, carrying its event when given (the attempt
    /// then needs no read of the event log).
    fn delivery_job(&self, d: &WebhookDelivery, event: Option<Event>) -> Result<Job> {
        let payload = serde_json::to_value(DeliverJob { delivery: d.id, event })
            .map_err(|e| Error::validation("payload", e.to_string()))?;
        let now = self.now();
        let mut job =
            Job::new(DELIVER_KIND, Some(d.account_id), payload, now, now)?.with_unique_key(d.id.to_string())?;
        job.id = JobId::from_uuid(d.id.into_uuid());
        Ok(job)
    }

    // ----- what the workers run ----------------------------------------------------------

    /// The endpoint as of `state`: the cached copy when it has the same
    /// version (with the state's enabled flag and failure time, which change
    /// without a version), else read and cached. Every change a receiver
    /// could notice (URL, secrets, headers, filter, rate limit, enabled)
    /// moves the version, so a cached copy is never older than the row the
    /// attempt's own read saw.
    async fn endpoint_at(
        &self,
        account: AccountId,
        id: WebhookEndpointId,
        state: EndpointState,
    ) -> Result<WebhookEndpoint> {
        let cached = self.endpoints.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
        let mut e = match cached {
            Some(e) if e.version == state.version && e.account_id == account => e,
            _ => {
                let e = self.store.get_endpoint(account, id).await?;
                let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= ENDPOINT_CACHE {
                    map.clear();
                }
                map.insert(id, e.clone());
                e
            }
        };
        e.enabled = state.enabled;
        e.failing_since = state.failing_since;
        Ok(e)
    }

    /// Fans one event out: a delivery (and its job) for every enabled
    /// endpoint of the account whose filter it passes. Idempotent: a
    /// repeated call finds the deliveries made and schedules only pending ones.
    pub async fn fan_out(&self, event: &Event) -> Result<usize> {
        let mut made = 0;
        for e in self.batches.endpoints.call(event.account_id).await? {
            if !e.enabled || !e.event_types.matches(&event.event_type) {
                continue;
            }
            // The delivery and its job (carrying the event) in one write.
            let d = self.new_delivery(&e, event);
            let job = self.delivery_job(&d, Some(event.clone()))?;
            let (d, created) = match self.store.create_delivery_with_job(&d, &job).await {
                Ok(r) => r,
                // Deleted since it was listed.
                Err(Error::NotFound { .. }) => continue,
                Err(err) => return Err(err),
            };
            if created {
                made += 1;
            } else if d.status == DeliveryStatus::Pending {
                // Made by an earlier run of this fan-out: its job may be
                // missing (a no-op when it is there).
                self.schedule(&d, Some(event.clone())).await?;
                made += 1;
            }
        }
        Ok(made)
    }

    /// Reads an event from the log by id.
    async fn load_event(&self, account: AccountId, id: EventId) -> Result<Option<Event>> {
        // The log reads after a cursor: start just before the id.
        let before = EventId::from_uuid(uuid::Uuid::from_u128(id.into_uuid().as_u128().saturating_sub(1)));
        let found = self.store.list_events(account, Some(before), 1).await?;
        Ok(found.into_iter().next().filter(|e| e.id == id))
    }

    /// The request body: `{"type", "timestamp", "data"}` (the Standard
    /// Webhooks payload shape).
    pub fn body(event: &Event) -> Vec<u8> {
        let v = serde_json::json!({
            "type": event.event_type.as_str(),
            "timestamp": event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": event.payload,
        });
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// One attempt of the delivery a job names, and what the runtime should
    /// do with the job.
    pub async fn attempt(&self, job: &Job, sender: &Sender, gate: &crate::worker::EndpointGate) -> Outcome {
        match self.attempt_inner(job, sender, gate).await {
            Ok(o) => o,
            Err(e) if e.is_transient() => Outcome::retry(e.to_string()),
            Err(e) => Outcome::Fail { error: clip(&e.to_string(), MAX_ATTEMPT_ERROR).to_owned() },
        }
    }

    async fn attempt_inner(&self, job: &Job, sender: &Sender, gate: &crate::worker::EndpointGate) -> Result<Outcome> {
        let spec: DeliverJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| Error::validation("payload", format!("not a webhook delivery job: {e}")))?;
        let account = job.account_id.ok_or_else(|| Error::validation("account_id", "a delivery job has an account"))?;
        // The delivery, its endpoint's state and the FIFO check: one read.
        let Some(ctx) = self.batches.contexts.call((account, spec.delivery)).await? else {
            return Ok(Outcome::Done);
        };
        let d = ctx.delivery;
        if d.status != DeliveryStatus::Pending {
            return Ok(Outcome::Done);
        }
        let Some(state) = ctx.endpoint else { return Ok(Outcome::Done) };
        if !state.enabled {
            let failed = DeliveryProgress { status: DeliveryStatus::Failed, next_attempt_at: None };
            self.store.set_delivery_status(account, d.id, &failed).await?;
            return Ok(Outcome::Done);
        }
        // FIFO per contact: wait for the earlier deliveries of the same key.
        if ctx.earlier_pending {
            return Ok(Outcome::Defer { after: Duration::from_millis(500) });
        }
        let e = match self.endpoint_at(account, d.endpoint_id, state).await {
            Ok(e) => e,
            Err(Error::NotFound { .. }) => return Ok(Outcome::Done),
            Err(err) => return Err(err),
        };
        if let (Some(limiter), Some(rate)) = (&self.limiter, e.rate_limit_per_second) {
            let decision = limiter.check(&format!("webhook:rate:{}", e.id), &Quota::per_second(rate)?).await?;
            if !decision.allowed {
                return Ok(Outcome::Defer { after: decision.retry_after.unwrap_or(Duration::from_millis(100)) });
            }
        }
        let Some(_permit) = gate.try_enter(e.id, self.settings.per_endpoint_concurrency) else {
            return Ok(Outcome::Defer { after: Duration::from_millis(200) });
        };
        let event = match spec.event {
            Some(ev) => ev,
            None => match self.load_event(account, d.event_id).await? {
                Some(ev) => ev,
                None => {
                    let failed = DeliveryProgress { status: DeliveryStatus::Failed, next_attempt_at: None };
                    self.store.set_delivery_status(account, d.id, &failed).await?;
                    return Ok(Outcome::Fail { error: "the event is no longer in the log".into() });
                }
            },
        };
        let body = Self::body(&event);
        let at = self.now();
        let ts = at.timestamp();
        let msg_id = event.id.to_string();
        let secrets = self.signing_secrets(&e)?;
        let mut headers = e.headers.clone();
        headers.insert("webhook-id".into(), msg_id.clone());
        headers.insert("webhook-timestamp".into(), ts.to_string());
        headers.insert(
            "webhook-signature".into(),
            signature_header(&secrets.iter().collect::<Vec<_>>(), &msg_id, ts, &body),
        );
        let result = sender.post(&e.url, &headers, body).await;
        self.settle(&e, &d, at, result).await
    }

    async fn settle(
        &self,
        e: &WebhookEndpoint,
        d: &WebhookDelivery,
        at: DateTime<Utc>,
        r: AttemptResult,
    ) -> Result<Outcome> {
        let attempt_no = d.attempts + 1;
        let attempt = WebhookAttempt {
            id: WebhookAttemptId::new(),
            account_id: d.account_id,
            delivery_id: d.id,
            endpoint_id: e.id,
            at,
            status_code: r.status,
            latency_ms: u32::try_from(r.latency.as_millis()).unwrap_or(u32::MAX),
            response_excerpt: r.excerpt.clone(),
            error: r.error.as_deref().map(|t| clip(t, MAX_ATTEMPT_ERROR).to_owned()),
            succeeded: r.succeeded(),
        };
        let settled = |status| DeliveryProgress { status, next_attempt_at: None };
        if r.succeeded() {
            self.record(&attempt, &settled(DeliveryStatus::Succeeded)).await?;
            if e.failing_since.is_some() {
                self.store.set_endpoint_failing(e.account_id, e.id, None).await?;
            }
            return Ok(Outcome::Done);
        }
        let error = attempt.error.clone().unwrap_or_else(|| "failed".into());
        if r.gone() {
            self.record(&attempt, &settled(DeliveryStatus::Failed)).await?;
            self.disable(e, "the endpoint answered 410 Gone").await?;
            return Ok(Outcome::Done);
        }
        let failing_since = e.failing_since.unwrap_or(at);
        if e.failing_since.is_none() {
            self.store.set_endpoint_failing(e.account_id, e.id, Some(at)).await?;
        }
        let failing_for = (at - failing_since).to_std().unwrap_or_default();
        if failing_for >= self.settings.disable_after {
            self.record(&attempt, &settled(DeliveryStatus::Failed)).await?;
            let reason = format!("failing continuously since {}", failing_since.to_rfc3339());
            self.disable(e, &reason).await?;
            return Ok(Outcome::Done);
        }
        match self.settings.schedule.next_delay(attempt_no, r.retry_after) {
            Some(delay) => {
                let next = chrono::Duration::from_std(delay).ok().and_then(|d| at.checked_add_signed(d));
                self.record(&attempt, &DeliveryProgress { status: DeliveryStatus::Pending, next_attempt_at: next })
                    .await?;
                Ok(Outcome::Retry { error, after: Some(delay) })
            }
            None => {
                self.record(&attempt, &settled(DeliveryStatus::Failed)).await?;
                Ok(Outcome::Fail { error: format!("gave up after {attempt_no} attempts: {error}") })
            }
        }
    }

    async fn record(&self, attempt: &WebhookAttempt, progress: &DeliveryProgress) -> Result<()> {
        // `false`: settled meanwhile (a replay raced it) or gone; nothing to add.
        self.batches.records.call((attempt.clone(), progress.clone())).await.map(|_| ())
    }

    async fn disable(&self, e: &WebhookEndpoint, reason: &str) -> Result<()> {
        let mut view = e.view();
        view.enabled = false;
        view.disabled_reason = Some(reason.to_owned());
        let event = self.event(e.account_id, EventType::ENDPOINT_DISABLED, &view);
        if self.store.disable_endpoint(e.account_id, e.id, reason, &event).await? {
            tracing::warn!(endpoint = %e.id, account = %e.account_id, reason, "webhook endpoint disabled");
        }
        Ok(())
    }
}

//! [`BillingService`]: what the server's billing routes call (webhook
//! intake, checkout, portal, the subscription view, the plan guard), and
//! [`BillingApplier`], the job worker that applies stored webhook events.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;

use crm_core::connections::ConnectorRegistry;
use crm_core::domain::billing::{
    BillingApplication, BillingEvent, Limited, Plan, PlanLimits, Subscription, SubscriptionStatus, Usage, month_start,
};
use crm_core::ports::billing::{
    APPLY_BILLING_EVENT_JOB, Billing, CancelMode, CheckoutMode, CheckoutRequest, HostedSession,
};
use crm_core::ports::connectors::Connector;
use crm_core::workers::{JobWorker, Outcome, WorkerOptions};
use crm_core::{AccountId, Clock, Error, Event, EventType, Job, Result, Store};

use crate::connection::stripe_kind;

use crate::objects::{self, account_in_metadata, id_of, invoice_account, invoice_subscription};

/// Longest success, cancel or return URL.
pub const MAX_URL_LEN: usize = 2048;

/// Largest quantity a checkout accepts.
pub const MAX_QUANTITY: u32 = 10_000;

/// Plans and the guard.
#[derive(Debug, Clone, Default)]
pub struct BillingSettings {
    /// The plans; an entitled subscription to one of a plan's prices gives its limits.
    pub plans: Vec<Plan>,
    /// Limits of an account without an entitled subscription (none: unlimited).
    pub free: PlanLimits,
    /// Whether the limits are enforced (off by default).
    pub guard: bool,
}

/// An accepted webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Received {
    /// Stripe's event id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// True when this id was stored before (a redelivery; nothing new stored).
    pub duplicate: bool,
}

/// What `GET /billing/subscription` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionView {
    /// The current subscription, if any.
    pub subscription: Option<Subscription>,
    /// Whether the account gets its plan now.
    pub entitled: bool,
    /// The plan in force (`None`: the free limits).
    pub plan: Option<String>,
    /// Its limits.
    pub limits: PlanLimits,
    /// What the account uses.
    pub usage: Usage,
    /// Whether the limits are enforced.
    pub enforced: bool,
}

/// The checkout a route asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutInput {
    /// Subscription or one-off payment.
    pub mode: CheckoutMode,
    /// Stripe's price id.
    pub price_id: String,
    /// Units.
    pub quantity: u32,
    /// After paying.
    pub success_url: String,
    /// After giving up.
    pub cancel_url: String,
}

fn check_url(field: &'static str, url: &str) -> Result<()> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= MAX_URL_LEN
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(Error::validation(field, format!("must be an absolute http(s) URL of at most {MAX_URL_LEN} characters")))
    }
}

/// The billing flows over a store and a [`Billing`] provider.
#[derive(Debug, Clone)]
pub struct BillingService {
    store: Arc<dyn Store>,
    billing: Arc<dyn Billing>,
    clock: Arc<dyn Clock>,
    settings: Arc<BillingSettings>,
    /// Opens accounts' own `stripe` connections, when per-account keys are on.
    registry: Option<Arc<ConnectorRegistry>>,
}

impl BillingService {
    /// A service; `clock` dates stored events and the month of the usage count.
    pub fn new(
        store: Arc<dyn Store>,
        billing: Arc<dyn Billing>,
        clock: Arc<dyn Clock>,
        settings: BillingSettings,
    ) -> Self {
        Self { store, billing, clock, settings: Arc::new(settings), registry: None }
    }

    /// Lets accounts bill through their own Stripe keys: an account with a
    /// `stripe` connection (see [`crate::connection`]) is served by a
    /// provider built from it through `registry` (which opens its sealed
    /// credentials); the others by the server's.
    pub fn with_account_keys(mut self, registry: Arc<ConnectorRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The server-wide provider.
    pub fn billing(&self) -> &Arc<dyn Billing> {
        &self.billing
    }

    /// The account's own provider (its `stripe` connection), if it has one
    /// and per-account keys are on.
    pub async fn own_provider(&self, account: AccountId) -> Result<Option<Arc<dyn Billing>>> {
        let Some(registry) = &self.registry else { return Ok(None) };
        let connection = match self.store.get_connection(account, &stripe_kind()).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match registry.build(&connection).await? {
            Connector::Billing(b) => Ok(Some(b)),
            _ => Err(Error::Config { message: "the stripe connection did not build a billing provider".into() }),
        }
    }

    /// The provider that bills `account`: its own keys, else the server's.
    pub async fn provider_for(&self, account: AccountId) -> Result<Arc<dyn Billing>> {
        Ok(self.own_provider(account).await?.unwrap_or_else(|| self.billing.clone()))
    }

    /// The settings.
    pub fn settings(&self) -> &BillingSettings {
        &self.settings
    }

    /// Verifies a webhook and stores it with its apply job before the
    /// caller answers 200. [`Error::Validation`] on field `signature` when
    /// the signature is refused (the reason says why), on `body` when it is
    /// not a Stripe event.
    pub async fn receive_webhook(&self, payload: &[u8], signature: Option<&str>) -> Result<Received> {
        let now = self.clock.now();
        let event = self.billing.verify_webhook(payload, signature, now)?;
        let job = apply_job(&event, now)?;
        let stored = self.store.record_billing_event(&event, &job).await?;
        if stored {
            tracing::info!(event_id = %event.id, event_type = %event.event_type, "stripe webhook stored");
        }
        Ok(Received { event_id: event.id, event_type: event.event_type, duplicate: !stored })
    }

    /// Verifies a webhook sent to the account's own endpoint
    /// (`/webhooks/stripe/{account}`) with the webhook secrets of its
    /// `stripe` connection, and stores it with an apply job pinned to the
    /// account: the worker refuses to apply it to any other account.
    /// [`Error::NotFound`] when the account has no `stripe` connection;
    /// otherwise as [`BillingService::receive_webhook`].
    pub async fn receive_account_webhook(
        &self,
        account: AccountId,
        payload: &[u8],
        signature: Option<&str>,
    ) -> Result<Received> {
        let provider =
            self.own_provider(account).await?.ok_or_else(|| Error::not_found("the account's stripe connection"))?;
        let now = self.clock.now();
        let event = provider.verify_webhook(payload, signature, now)?;
        let job = apply_job_for(&event, Some(account), now)?;
        let stored = self.store.record_billing_event(&event, &job).await?;
        if stored {
            tracing::info!(%account, event_id = %event.id, event_type = %event.event_type, "stripe webhook stored");
        }
        Ok(Received { event_id: event.id, event_type: event.event_type, duplicate: !stored })
    }

    /// The account's customer: the stored link, else found or created at the
    /// provider and linked. The creation's idempotency key is the account's
    /// own, so two first checkouts at once create one customer.
    pub async fn customer(&self, account: AccountId) -> Result<String> {
        if let Some(c) = self.store.billing_customer(account).await? {
            return Ok(c);
        }
        let name = self.store.get_account(account).await?.name;
        let key = format!("crm-customer-{account}");
        let customer = self.provider_for(account).await?.ensure_customer(account, &name, &key).await?;
        self.store.set_billing_customer(account, &customer).await?;
        Ok(customer)
    }

    /// Checks a checkout's input ([`Error::Validation`] naming the field);
    /// [`BillingService::checkout`] does it first.
    pub fn check_checkout(input: &CheckoutInput) -> Result<()> {
        if !(1..=MAX_QUANTITY).contains(&input.quantity) {
            return Err(Error::validation("quantity", format!("must be between 1 and {MAX_QUANTITY}")));
        }
        let price_ok = (1..=255).contains(&input.price_id.len())
            && input.price_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !price_ok {
            return Err(Error::validation("price_id", "must be a Stripe price id (letters, digits and _)"));
        }
        check_url("success_url", &input.success_url)?;
        check_url("cancel_url", &input.cancel_url)
    }

    /// Checks a portal's return URL.
    pub fn check_return_url(url: &str) -> Result<()> {
        check_url("return_url", url)
    }

    /// A checkout page for the account.
    pub async fn checkout(
        &self,
        account: AccountId,
        input: &CheckoutInput,
        idempotency_key: &str,
    ) -> Result<HostedSession> {
        Self::check_checkout(input)?;
        let customer = self.customer(account).await?;
        let request = CheckoutRequest {
            mode: input.mode,
            price_id: input.price_id.clone(),
            quantity: input.quantity,
            success_url: input.success_url.clone(),
            cancel_url: input.cancel_url.clone(),
        };
        let provider = self.provider_for(account).await?;
        provider.create_checkout(account, &customer, &request, &format!("{idempotency_key}:checkout")).await
    }

    /// A customer portal page. [`Error::Conflict`] when the account has no
    /// customer yet (no checkout was ever started).
    pub async fn portal(&self, account: AccountId, return_url: &str, idempotency_key: &str) -> Result<HostedSession> {
        Self::check_return_url(return_url)?;
        let customer = self.store.billing_customer(account).await?.ok_or_else(|| {
            Error::conflict("billing customer", "the account has no billing customer yet: start a checkout first")
        })?;
        self.provider_for(account)
            .await?
            .create_portal(&customer, return_url, &format!("{idempotency_key}:portal"))
            .await
    }

    /// Cancels the account's current subscription at the provider: at the
    /// end of the paid period (`cancel_at_period_end`; the plan stays until
    /// then) or immediately. Returns the subscription as the provider
    /// answered; the stored state follows when the provider's webhook
    /// (`customer.subscription.updated` / `.deleted`) is applied.
    /// [`Error::Conflict`] when the account has no subscription that can be
    /// cancelled (none, or already canceled).
    pub async fn cancel(&self, account: AccountId, mode: CancelMode, idempotency_key: &str) -> Result<Subscription> {
        let current = self
            .store
            .current_subscription(account)
            .await?
            .filter(|s| !matches!(s.status, SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired))
            .ok_or_else(|| Error::conflict("subscription", "the account has no subscription to cancel"))?;
        let key = format!("{idempotency_key}:cancel:{}", mode_name(mode));
        let answered = self.provider_for(account).await?.cancel_subscription(account, &current.id, mode, &key).await?;
        tracing::info!(%account, subscription = %current.id, mode = mode_name(mode), status = %answered.status,
            "subscription cancel requested");
        Ok(answered)
    }

    /// The plan in force for a subscription state.
    fn plan_for(&self, sub: Option<&Subscription>) -> (bool, Option<&Plan>) {
        let Some(sub) = sub.filter(|s| s.status.is_entitled()) else { return (false, None) };
        let plan =
            sub.price_id.as_ref().and_then(|p| self.settings.plans.iter().find(|plan| plan.price_ids.contains(p)));
        (true, plan)
    }

    /// The subscription view.
    pub async fn view(&self, account: AccountId) -> Result<SubscriptionView> {
        let subscription = self.store.current_subscription(account).await?;
        let usage = self.store.billing_usage(account, month_start(self.clock.now())).await?;
        let (entitled, plan) = self.plan_for(subscription.as_ref());
        Ok(SubscriptionView {
            entitled,
            plan: plan.map(|p| p.id.clone()),
            limits: plan.map_or_else(|| self.settings.free.clone(), |p| p.limits.clone()),
            usage,
            enforced: self.settings.guard,
            subscription,
        })
    }

    /// The plan guard: [`Error::Forbidden`] naming the limit when one more
    /// `what` would pass the account's plan; always Ok when the guard is off.
    pub async fn check_limit(&self, account: AccountId, what: Limited) -> Result<()> {
        if !self.settings.guard {
            return Ok(());
        }
        let view = self.view(account).await?;
        view.limits.allows(what, &view.usage)
    }

    /// The job worker that applies stored events.
    pub fn applier(&self) -> BillingApplier {
        BillingApplier { store: self.store.clone(), clock: self.clock.clone() }
    }
}

/// The job that applies a stored event (unique per event id).
pub fn apply_job(event: &BillingEvent, now: DateTime<Utc>) -> Result<Job> {
    apply_job_for(event, None, now)
}

/// The job that applies a stored event, pinned to `account` when it came
/// to that account's own endpoint: payload `{"event_id", "account_id"}`.
pub fn apply_job_for(event: &BillingEvent, account: Option<AccountId>, now: DateTime<Utc>) -> Result<Job> {
    let payload = match account {
        Some(a) => json!({ "event_id": event.id, "account_id": a }),
        None => json!({ "event_id": event.id }),
    };
    Job::new(APPLY_BILLING_EVENT_JOB, account, payload, now, now)?.with_unique_key(event.id.clone())
}

/// Applies stored Stripe events (job kind `billing.apply`): reads the event,
/// finds its account (the object's `metadata.account_id`, the checkout's
/// `client_reference_id`, else the stored customer link), and applies it
/// through [`BillingStore::apply_billing_event`](crm_core::BillingStore::apply_billing_event),
/// which makes a second application a no-op. An event whose account is not
/// known yet is retried (its customer may be linked by an event still on its
/// way), then dead-lettered, kept and replayable.
#[derive(Debug, Clone)]
pub struct BillingApplier {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl BillingApplier {
    /// A worker over `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The runtime options: 20 attempts, backoff from 5 s.
    pub fn options() -> WorkerOptions {
        WorkerOptions {
            concurrency: 4,
            max_attempts: 20,
            backoff: crm_core::workers::Backoff { base: std::time::Duration::from_secs(5), ..Default::default() },
            ..Default::default()
        }
    }

    /// The account an object belongs to. With `pin` (the event came to that
    /// account's own endpoint) it is that account: an object naming another
    /// one is refused.
    async fn account(
        &self,
        object: &Value,
        hint: Option<AccountId>,
        pin: Option<AccountId>,
    ) -> Result<Option<AccountId>> {
        let account = self.named_account(object, hint).await?;
        match (pin, account) {
            (Some(p), Some(a)) if p != a => Err(Error::validation(
                "account_id",
                format!("the event came to account {p}'s endpoint but names account {a}"),
            )),
            (Some(p), _) => Ok(Some(p)),
            (None, a) => Ok(a),
        }
    }

    /// The account an object names (metadata, hint or customer link).
    async fn named_account(&self, object: &Value, hint: Option<AccountId>) -> Result<Option<AccountId>> {
        let account = match hint.or_else(|| account_in_metadata(object)) {
            Some(a) => Some(a),
            None => match id_of(&object["customer"]) {
                Some(c) => self.store.account_for_customer(&c).await?,
                None => None,
            },
        };
        if let Some(a) = account {
            match self.store.get_account(a).await {
                Ok(_) => {}
                Err(Error::NotFound { .. }) => return Err(Error::validation("account_id", format!("no account {a}"))),
                Err(e) => return Err(e),
            }
        }
        Ok(account)
    }

    /// Turns an event into what it changes; `None` when its account is not
    /// known (yet). Types crm does not handle change nothing (logged).
    async fn plan(&self, event: &BillingEvent, pin: Option<AccountId>) -> Result<Option<BillingApplication>> {
        let object = &event.payload["data"]["object"];
        let kind = event.event_type.as_str();
        let now = self.clock.now();
        let base = BillingApplication { event_id: event.id.clone(), ..Default::default() };
        let app = match kind {
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "customer.subscription.paused"
            | "customer.subscription.resumed" => {
                let Some(account) = self.account(object, None, pin).await? else { return Ok(None) };
                let sub = objects::subscription(object, account, &event.id, event.created)?;
                BillingApplication { subscription: Some(sub), ..base }
            }
            "checkout.session.completed" => {
                let reference = object["client_reference_id"].as_str().and_then(|s| s.parse::<uuid::Uuid>().ok());
                let Some(account) = self.account(object, reference.map(AccountId::from_uuid), pin).await? else {
                    return Ok(None);
                };
                let customer = id_of(&object["customer"]);
                let payload = json!({
                    "session_id": object["id"], "mode": object["mode"], "customer_id": customer,
                    "subscription_id": id_of(&object["subscription"]), "payment_status": object["payment_status"],
                    "amount": object["amount_total"], "currency": object["currency"].as_str().map(str::to_ascii_uppercase),
                });
                BillingApplication {
                    customer: customer.map(|c| (account, c)),
                    events: vec![Event::new(account, EventType::BILLING_CHECKOUT_COMPLETED, &payload, now)],
                    ..base
                }
            }
            "invoice.payment_succeeded" | "invoice.paid" | "invoice.payment_failed" => {
                let Some(account) = self.account(object, invoice_account(object), pin).await? else { return Ok(None) };
                let paid = kind != "invoice.payment_failed";
                let payload = json!({
                    "invoice_id": object["id"], "subscription_id": invoice_subscription(object),
                    "customer_id": id_of(&object["customer"]),
                    "amount": if paid { &object["amount_paid"] } else { &object["amount_due"] },
                    "currency": object["currency"].as_str().map(str::to_ascii_uppercase),
                    "attempt_count": object["attempt_count"], "billing_reason": object["billing_reason"],
                    "hosted_invoice_url": object["hosted_invoice_url"],
                });
                let kind =
                    if paid { EventType::BILLING_INVOICE_PAID } else { EventType::BILLING_INVOICE_PAYMENT_FAILED };
                BillingApplication { events: vec![Event::new(account, kind, &payload, now)], ..base }
            }
            other => {
                tracing::info!(event_id = %event.id, event_type = other, "stripe event acknowledged, not handled");
                base
            }
        };
        Ok(Some(app))
    }

    /// Applies one stored event; the outcome for its job.
    pub async fn apply(&self, event_id: &str) -> Outcome {
        self.apply_pinned(event_id, None).await
    }

    /// Applies one stored event that came to `pin`'s own endpoint (`None`:
    /// the server's); the outcome for its job.
    pub async fn apply_pinned(&self, event_id: &str, pin: Option<AccountId>) -> Outcome {
        let event = match self.store.get_billing_event(event_id).await {
            Ok(e) => e,
            Err(Error::NotFound { .. }) => {
                return Outcome::Fail { error: format!("billing event {event_id} is not stored") };
            }
            Err(e) => return Outcome::retry(e.to_string()),
        };
        if event.applied_at.is_some() {
            return Outcome::Done;
        }
        let application = match self.plan(&event, pin).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return Outcome::retry(format!(
                    "no account known yet for Stripe event {event_id} ({})",
                    event.event_type
                ));
            }
            Err(e) if e.is_transient() => return Outcome::retry(e.to_string()),
            Err(e) => return Outcome::Fail { error: format!("Stripe event {event_id}: {e}") },
        };
        match self.store.apply_billing_event(&application, self.clock.now()).await {
            Ok(a) => {
                tracing::info!(
                    event_id,
                    first = a.first,
                    subscription_changed = a.subscription_changed,
                    "stripe event applied"
                );
                Outcome::Done
            }
            Err(e) if e.is_transient() => Outcome::retry(e.to_string()),
            Err(e @ Error::Conflict { .. }) => Outcome::Fail { error: format!("Stripe event {event_id}: {e}") },
            Err(e) => Outcome::retry(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl JobWorker for BillingApplier {
    fn kind(&self) -> &str {
        APPLY_BILLING_EVENT_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let pin =
            job.payload["account_id"].as_str().and_then(|a| a.parse::<uuid::Uuid>().ok()).map(AccountId::from_uuid);
        match job.payload["event_id"].as_str() {
            Some(id) => self.apply_pinned(id, pin).await,
            None => Outcome::Fail { error: "the job has no event_id".into() },
        }
    }
}

fn mode_name(mode: CancelMode) -> &'static str {
    match mode {
        CancelMode::AtPeriodEnd => "at_period_end",
        CancelMode::Immediately => "immediately",
    }
}

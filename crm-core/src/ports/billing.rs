//! The billing ports: [`Billing`] (the payment provider: checkout, portal,
//! subscription changes, webhook verification) and [`BillingStore`] (the
//! provider's verified events, subscription state per account, customers).
//!
//! Billing is per account: the account is the provider's customer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

use crate::domain::billing::{Applied, BillingApplication, BillingEvent, Subscription, Usage};
use crate::{AccountId, Job, Result};

#[allow(unused_imports)]
use crate::Error;

/// What a checkout session sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CheckoutMode {
    /// A recurring price: the session creates a subscription.
    Subscription,
    /// A one-off payment of a one-time price.
    Payment,
}

/// A checkout session to create for an account's customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// Subscription or one-off payment.
    pub mode: CheckoutMode,
    /// The provider's price (`price_…`).
    pub price_id: String,
    /// Units (1–10 000).
    pub quantity: u32,
    /// Where the provider sends the customer after paying.
    pub success_url: String,
    /// Where the provider sends the customer who gives up.
    pub cancel_url: String,
}

/// A hosted page the customer is sent to (checkout or portal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostedSession {
    /// The provider's id (`cs_…`, `bps_…`).
    pub id: String,
    /// The page's URL.
    pub url: String,
}

/// How to cancel a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CancelMode {
    /// Keep it until the paid period ends (`cancel_at_period_end`).
    AtPeriodEnd,
    /// End it now.
    Immediately,
}

/// The billing provider.
///
/// Contract (the Stripe adapter and [`RecordingBilling`](crate::memory::RecordingBilling) follow it):
/// - Every mutating call takes an idempotency key: the same key with the
///   same arguments creates nothing new (the provider answers with the first
///   result), so callers may retry.
/// - Provider refusals map into [`Error`]: invalid input or a declined
///   card → [`Error::Validation`]; bad credentials → [`Error::Config`];
///   throttling → [`Error::RateLimited`]; outages, timeouts and the
///   provider's own errors → [`Error::Provider`] with `transient: true`.
///   Messages never carry keys.
/// - [`Billing::verify_webhook`] does no I/O; it refuses every payload
///   whose signature is missing, malformed, stale or wrong with
///   [`Error::Validation`] on field `signature`, the reason saying which.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crm_core::ports::billing::{Billing, CheckoutMode, CheckoutRequest};
/// use crm_core::memory::RecordingBilling;
///
/// let billing = RecordingBilling::new();
/// let account = crm_core::AccountId::new();
/// let customer = billing.ensure_customer(account, "Loja da Ana", "key-1").await?;
/// let session = billing.create_checkout(account, &customer, &CheckoutRequest {
///     mode: CheckoutMode::Subscription, price_id: "price_pro".into(), quantity: 1,
///     success_url: "https://app.example/ok".into(), cancel_url: "https://app.example/back".into(),
/// }, "key-2").await?;
/// assert!(session.url.starts_with("https://"));
/// assert_eq!(billing.calls().len(), 2);
/// # Ok::<(), crm_core::Error>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Billing: Send + Sync + Debug + 'static {
    /// The provider's name (`stripe`).
    fn provider(&self) -> &str;

    /// The account's customer id: found by the account id the provider keeps
    /// in the customer's metadata, else created with `name`.
    async fn ensure_customer(&self, account: AccountId, name: &str, idempotency_key: &str) -> Result<String>;

    /// A hosted checkout page for `customer` (the account's).
    async fn create_checkout(
        &self,
        account: AccountId,
        customer: &str,
        request: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<HostedSession>;

    /// A customer portal page for `customer`, returning to `return_url`.
    async fn create_portal(&self, customer: &str, return_url: &str, idempotency_key: &str) -> Result<HostedSession>;

    /// Cancels a subscription; returns its state as the provider answered.
    /// [`Error::NotFound`] when the provider does not know it.
    async fn cancel_subscription(
        &self,
        account: AccountId,
        subscription: &str,
        mode: CancelMode,
        idempotency_key: &str,
    ) -> Result<Subscription>;

    /// Reads a subscription from the provider. [`Error::NotFound`] when unknown.
    async fn get_subscription(&self, account: AccountId, subscription: &str) -> Result<Subscription>;

    /// Verifies a webhook's signature header over its raw `payload` at `now`
    /// and returns the event (not yet stored: `received_at` is `now`).
    fn verify_webhook(&self, payload: &[u8], signature: Option<&str>, now: DateTime<Utc>) -> Result<BillingEvent>;
}

/// The job kind that applies a stored billing event.
pub const APPLY_BILLING_EVENT_JOB: &str = "billing.apply";

/// Billing state: the provider's events, subscriptions, customers.
///
/// Contract (checked by `crm_core::testing::store::billing`):
/// - [`BillingStore::record_billing_event`] stores the event and the job
///   that will apply it in one transaction, once per event id: a repeated
///   id stores nothing and returns false (the provider retries webhooks).
/// - [`BillingStore::apply_billing_event`] applies an application at most
///   once per event, in one transaction: the customer link, the subscription
///   state under the ordering rule ([`decide`](crate::domain::billing::decide),
///   with the event [`subscription_event`](crate::domain::billing::subscription_event)
///   picks), the application's events, and the event's `applied_at`.
///   Concurrent applications of one event write once; applications of
///   different events for one subscription end, in any order, on the state
///   with the greatest ordering key.
/// - Tenancy: every read by account sees only that account's rows.
#[async_trait]
pub trait BillingStore: Send + Sync + Debug + 'static {
    /// Stores a verified event and schedules `job` (kind
    /// [`APPLY_BILLING_EVENT_JOB`]) in one transaction. Returns false, writing
    /// nothing, when an event with this id is stored. [`Error::Validation`]
    /// when [`BillingEvent::check`] refuses it or the job is invalid.
    async fn record_billing_event(&self, event: &BillingEvent, job: &Job) -> Result<bool>;

    /// A stored event; [`Error::NotFound`] when missing.
    async fn get_billing_event(&self, id: &str) -> Result<BillingEvent>;

    /// Applies `application` (see the trait's contract) at `now`.
    /// [`Error::NotFound`] when its event is not stored; [`Error::Conflict`]
    /// (nothing written) when its customer is linked to another account or
    /// the account to another customer; [`Error::Validation`] when an event or
    /// the subscription belongs to another account than the customer link says.
    async fn apply_billing_event(&self, application: &BillingApplication, now: DateTime<Utc>) -> Result<Applied>;

    /// Links `account` to its provider `customer` (idempotent).
    /// [`Error::Conflict`] when either is linked to another.
    async fn set_billing_customer(&self, account: AccountId, customer: &str) -> Result<()>;

    /// The account's provider customer, if linked.
    async fn billing_customer(&self, account: AccountId) -> Result<Option<String>>;

    /// The account a provider customer is linked to.
    async fn account_for_customer(&self, customer: &str) -> Result<Option<AccountId>>;

    /// The account's current subscription: of its subscriptions, the most
    /// recently created one that is not canceled, else the most recently
    /// created; `None` when it has none.
    async fn current_subscription(&self, account: AccountId) -> Result<Option<Subscription>>;

    /// The account's use of what plans limit: channels, contacts, and
    /// outbound messages created at or after `month_start`.
    async fn billing_usage(&self, account: AccountId, month_start: DateTime<Utc>) -> Result<Usage>;
}

/// Checks an application's accounts: the subscription and every event
/// belong to the customer link's account, when there is one. Every adapter
/// calls it first.
pub fn check_application(application: &BillingApplication) -> Result<()> {
    let account = application
        .customer
        .as_ref()
        .map(|(a, _)| *a)
        .or(application.subscription.as_ref().map(|s| s.account_id))
        .or(application.events.first().map(|e| e.account_id));
    let Some(account) = account else { return Ok(()) };
    if application.subscription.as_ref().is_some_and(|s| s.account_id != account) {
        return Err(crate::Error::validation("subscription", "belongs to another account"));
    }
    for e in &application.events {
        crate::ports::store::check_event_account(account, e)?;
    }
    Ok(())
}

/// [`BillingStore::set_billing_customer`]'s rule, given the stored customer
/// of `account` (`of_account`) and the stored account of `customer`
/// (`of_customer`): `Ok(true)` when the link must be written, `Ok(false)`
/// when it is already there, [`Error::Conflict`] when either is linked to
/// another. Every adapter decides with it.
///
/// ```
/// use crm_core::ports::billing::check_customer_link;
/// let (a, b) = (crm_core::AccountId::new(), crm_core::AccountId::new());
/// assert_eq!(check_customer_link(a, "cus_1", None, None).ok(), Some(true));
/// assert_eq!(check_customer_link(a, "cus_1", Some("cus_1"), Some(a)).ok(), Some(false));
/// assert!(check_customer_link(a, "cus_1", Some("cus_2"), None).is_err());
/// assert!(check_customer_link(a, "cus_1", None, Some(b)).is_err());
/// ```
pub fn check_customer_link(
    account: AccountId,
    customer: &str,
    of_account: Option<&str>,
    of_customer: Option<AccountId>,
) -> Result<bool> {
    if customer.is_empty() || customer.len() > 255 {
        return Err(crate::Error::validation("customer", "must be 1 to 255 characters"));
    }
    match (of_account, of_customer) {
        (Some(c), _) if c != customer => {
            Err(crate::Error::conflict("billing customer", "the account has another customer"))
        }
        (Some(_), _) => Ok(false),
        (None, Some(a)) if a != account => {
            Err(crate::Error::conflict("billing customer", "the customer belongs to another account"))
        }
        (None, _) => Ok(true),
    }
}

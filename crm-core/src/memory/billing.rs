//! [`RecordingBilling`]: a [`Billing`] double that records every call.

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::billing::{BillingEvent, Subscription, SubscriptionStatus};
use crate::ports::billing::{Billing, CancelMode, CheckoutRequest, HostedSession};
use crate::{AccountId, Error, Result};

/// One call made to a [`RecordingBilling`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingCall {
    /// `ensure_customer`, `create_checkout`, `create_portal`, `cancel_subscription`.
    pub method: &'static str,
    /// The account, when the call names one.
    pub account: Option<AccountId>,
    /// The customer, price or subscription the call was about.
    pub subject: String,
    /// The idempotency key it carried.
    pub idempotency_key: String,
}

#[derive(Debug, Default)]
struct Recorded {
    calls: Vec<BillingCall>,
    customers: HashMap<AccountId, String>,
    subscriptions: HashMap<String, Subscription>,
    /// Results already given per idempotency key (the provider's replay).
    sessions: HashMap<String, HostedSession>,
}

/// A [`Billing`] double: no network. Customers are `cus_rec_<n>`, hosted
/// pages `https://billing.invalid/<kind>/<n>`; subscriptions are those put
/// with [`RecordingBilling::put_subscription`]. Webhooks are "signed" with
/// the header `test=<token>` (the token given to
/// [`RecordingBilling::with_webhook_token`], `recording` by default) and the
/// body is a provider event (`id`, `type`, `created`): a test double for
/// servers and flows, never a verifier of real signatures.
#[derive(Debug, Clone)]
pub struct RecordingBilling {
    inner: Arc<Mutex<Recorded>>,
    token: String,
}

impl Default for RecordingBilling {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingBilling {
    /// An empty double with webhook token `recording`.
    pub fn new() -> Self {
        Self::with_webhook_token("recording")
    }

    /// An empty double whose webhooks carry `test=<token>`.
    pub fn with_webhook_token(token: &str) -> Self {
        Self { inner: Arc::default(), token: token.to_owned() }
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<BillingCall> {
        self.lock().calls.clone()
    }

    /// Makes `get_subscription` (and `cancel_subscription`) know `sub`.
    pub fn put_subscription(&self, sub: Subscription) {
        self.lock().subscriptions.insert(sub.id.clone(), sub);
    }

    fn record(
        &self,
        method: &'static str,
        account: Option<AccountId>,
        subject: &str,
        key: &str,
    ) -> MutexGuard<'_, Recorded> {
        let mut r = self.lock();
        r.calls.push(BillingCall { method, account, subject: subject.to_owned(), idempotency_key: key.to_owned() });
        r
    }

    fn session(&self, kind: &str, key: &str, r: &mut Recorded) -> HostedSession {
        let n = r.sessions.len() + 1;
        r.sessions
            .entry(format!("{kind}/{key}"))
            .or_insert_with(|| HostedSession {
                id: format!("{kind}_rec_{n}"),
                url: format!("https://billing.invalid/{kind}/{n}"),
            })
            .clone()
    }
}

#[async_trait]
impl Billing for RecordingBilling {
    fn provider(&self) -> &str {
        "recording"
    }

    async fn ensure_customer(&self, account: AccountId, name: &str, idempotency_key: &str) -> Result<String> {
        let mut r = self.record("ensure_customer", Some(account), name, idempotency_key);
        let n = r.customers.len() + 1;
        Ok(r.customers.entry(account).or_insert_with(|| format!("cus_rec_{n}")).clone())
    }

    async fn create_checkout(
        &self,
        account: AccountId,
        customer: &str,
        request: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<HostedSession> {
        if request.quantity == 0 {
            return Err(Error::validation("quantity", "must be at least 1"));
        }
        let mut r = self.record("create_checkout", Some(account), &request.price_id, idempotency_key);
        if r.customers.get(&account).is_some_and(|c| c != customer) {
            return Err(Error::validation("customer", "is another account's"));
        }
        Ok(self.session("cs", idempotency_key, &mut r))
    }

    async fn create_portal(&self, customer: &str, _return_url: &str, idempotency_key: &str) -> Result<HostedSession> {
        let mut r = self.record("create_portal", None, customer, idempotency_key);
        Ok(self.session("bps", idempotency_key, &mut r))
    }

    async fn cancel_subscription(
        &self,
        account: AccountId,
        subscription: &str,
        mode: CancelMode,
        idempotency_key: &str,
    ) -> Result<Subscription> {
        let mut r = self.record("cancel_subscription", Some(account), subscription, idempotency_key);
        let sub = r
            .subscriptions
            .get_mut(subscription)
            .filter(|s| s.account_id == account)
            .ok_or(Error::not_found("subscription"))?;
        match mode {
            CancelMode::AtPeriodEnd => sub.cancel_at_period_end = true,
            CancelMode::Immediately => sub.status = SubscriptionStatus::Canceled,
        }
        Ok(sub.clone())
    }

    async fn get_subscription(&self, account: AccountId, subscription: &str) -> Result<Subscription> {
        let r = self.lock();
        r.subscriptions
            .get(subscription)
            .filter(|s| s.account_id == account)
            .cloned()
            .ok_or(Error::not_found("subscription"))
    }

    fn verify_webhook(&self, payload: &[u8], signature: Option<&str>, now: DateTime<Utc>) -> Result<BillingEvent> {
        let bad = |reason: &str| Error::validation("signature", reason.to_owned());
        let header = signature.ok_or_else(|| bad("missing"))?;
        if header.strip_prefix("test=") != Some(self.token.as_str()) {
            return Err(bad("does not match"));
        }
        let v: serde_json::Value =
            serde_json::from_slice(payload).map_err(|_| Error::validation("body", "not JSON"))?;
        let text =
            |k: &str| v[k].as_str().map(str::to_owned).ok_or_else(|| Error::validation("body", format!("no {k}")));
        let created = v["created"].as_i64().and_then(|t| Utc.timestamp_opt(t, 0).single());
        let event = BillingEvent {
            id: text("id")?,
            event_type: text("type")?,
            created: created.ok_or_else(|| Error::validation("body", "no created"))?,
            payload: v,
            received_at: now,
            applied_at: None,
        };
        event.check()?;
        Ok(event)
    }
}

//! Billing: an account's subscription, the provider's verified webhook
//! events, plans with limits, and the rule that orders subscription states.
//!
//! Money is integer minor units plus an ISO 4217 currency ([`Money`]). The
//! billing provider (Stripe, through `crm-billing`) owns the truth; crm keeps
//! the last state its webhooks reported ([`Subscription`]) and applies each
//! verified event once ([`BillingApplication`]).
//!
//! # Ordering rule
//!
//! Webhooks arrive late, twice, concurrently and out of order. A
//! subscription state is ordered by the key `(canceled, event time, event id)`
//! ([`Subscription::order_key`]): a `canceled` state is terminal (Stripe never
//! reactivates a canceled subscription), so it supersedes every other state
//! and only a later `canceled` state supersedes it; otherwise the state from
//! the later provider event (`created`, seconds) wins, ties broken by event
//! id so every replica picks the same one. A state whose key is not greater
//! than the stored one changes nothing ([`decide`]); any arrival order of the
//! same events therefore converges to the same stored state.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{AccountId, Error, Event, EventType, Result};

/// An amount of money: integer minor units (centavos, cents) and an upper-case
/// ISO 4217 currency code.
///
/// ```
/// use crm_core::domain::billing::Money;
/// let price = Money::new(4990, "brl")?;
/// assert_eq!((price.amount, price.currency.as_str()), (4990, "BRL"));
/// assert!(Money::new(1, "reais").is_err());
/// # Ok::<(), crm_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    /// Minor units (4990 is R$ 49,90).
    pub amount: i64,
    /// ISO 4217 code, upper case (`BRL`).
    pub currency: String,
}

impl Money {
    /// [`Error::Validation`] unless `currency` is three ASCII letters (any case; stored upper case).
    pub fn new(amount: i64, currency: &str) -> Result<Self> {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::validation("currency", "must be a three-letter ISO 4217 code"));
        }
        Ok(Money { amount, currency: currency.to_ascii_uppercase() })
    }
}

/// A subscription's status, as the provider names it (Stripe's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SubscriptionStatus {
    /// The first payment has not succeeded yet.
    Incomplete,
    /// The first payment never succeeded (terminal for that attempt).
    IncompleteExpired,
    /// In a free trial.
    Trialing,
    /// Paid and current.
    Active,
    /// A renewal payment failed; the provider is retrying.
    PastDue,
    /// Ended (terminal).
    Canceled,
    /// Retries were exhausted; not paid.
    Unpaid,
    /// Paused (a trial ended without a payment method).
    Paused,
}

impl SubscriptionStatus {
    /// Every status.
    pub const ALL: [SubscriptionStatus; 8] = [
        Self::Incomplete,
        Self::IncompleteExpired,
        Self::Trialing,
        Self::Active,
        Self::PastDue,
        Self::Canceled,
        Self::Unpaid,
        Self::Paused,
    ];

    /// The provider's name (`active`, `past_due`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
        }
    }

    /// Parses [`SubscriptionStatus::as_str`]; [`Error::Validation`] otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| Error::validation("status", format!("unknown subscription status {s:?}")))
    }

    /// Whether the account gets its plan: `active`, `trialing`, and
    /// `past_due` (the grace period while the provider retries the payment).
    pub fn is_entitled(self) -> bool {
        matches!(self, Self::Active | Self::Trialing | Self::PastDue)
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account's subscription, as last reported by the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    /// The provider's id (`sub_…`).
    pub id: String,
    /// The account it bills.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub account_id: AccountId,
    /// The provider's customer (`cus_…`).
    pub customer_id: String,
    /// Status.
    pub status: SubscriptionStatus,
    /// The provider's price (`price_…`) of its first item.
    pub price_id: Option<String>,
    /// The unit price, when the provider reported it.
    pub price: Option<Money>,
    /// Units of the price.
    pub quantity: u32,
    /// When the paid period ends (renewal or, with `cancel_at_period_end`, the end).
    pub current_period_end: Option<DateTime<Utc>>,
    /// Cancels when the current period ends.
    pub cancel_at_period_end: bool,
    /// When the provider created the subscription.
    pub created_at: DateTime<Utc>,
    /// The provider event this state came from (`evt_…`).
    pub source_event_id: String,
    /// That event's time (the ordering key's time).
    pub source_event_at: DateTime<Utc>,
    /// When crm stored this state.
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    /// The ordering key of this state (see the module's ordering rule).
    pub fn order_key(&self) -> (bool, DateTime<Utc>, &str) {
        (self.status == SubscriptionStatus::Canceled, self.source_event_at, &self.source_event_id)
    }

    /// Whether the fields the provider controls equal `other`'s (the source
    /// event and the store's time aside).
    pub fn same_state(&self, other: &Subscription) -> bool {
        self.account_id == other.account_id
            && self.customer_id == other.customer_id
            && self.status == other.status
            && self.price_id == other.price_id
            && self.price == other.price
            && self.quantity == other.quantity
            && self.current_period_end == other.current_period_end
            && self.cancel_at_period_end == other.cancel_at_period_end
    }
}

/// What a store does with an incoming subscription state, given the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing stored yet: insert it (event `billing.subscription_created`).
    Insert,
    /// Newer: store it. `changed` is false when only the source event moves
    /// (the same state reported by another event: no crm event is written).
    Update {
        /// Whether the state differs.
        changed: bool,
    },
    /// Older, the same event again, or another account's: store nothing.
    Ignore,
}

/// The ordering rule applied by every store (see the module docs).
///
/// ```
/// use crm_core::domain::billing::{decide, Decision};
/// # use crm_core::domain::billing::*; use chrono::{TimeZone, Utc};
/// # let sub = |status, t: i64, id: &str| Subscription { id: "sub_1".into(), account_id: crm_core::AccountId::from_uuid(uuid::Uuid::nil()),
/// #   customer_id: "cus_1".into(), status, price_id: None, price: None, quantity: 1, current_period_end: None,
/// #   cancel_at_period_end: false, created_at: Utc.timestamp_opt(0, 0).unwrap(), source_event_id: id.into(),
/// #   source_event_at: Utc.timestamp_opt(t, 0).unwrap(), updated_at: Utc.timestamp_opt(0, 0).unwrap() };
/// let active = sub(SubscriptionStatus::Active, 100, "evt_a");
/// let past_due = sub(SubscriptionStatus::PastDue, 200, "evt_b");
/// let canceled = sub(SubscriptionStatus::Canceled, 50, "evt_c");
/// assert_eq!(decide(None, &active), Decision::Insert);
/// assert_eq!(decide(Some(&active), &past_due), Decision::Update { changed: true });
/// assert_eq!(decide(Some(&past_due), &active), Decision::Ignore); // older
/// assert_eq!(decide(Some(&past_due), &canceled), Decision::Update { changed: true }); // terminal
/// assert_eq!(decide(Some(&canceled), &past_due), Decision::Ignore);
/// ```
pub fn decide(stored: Option<&Subscription>, incoming: &Subscription) -> Decision {
    let Some(stored) = stored else { return Decision::Insert };
    if stored.account_id != incoming.account_id || incoming.order_key() <= stored.order_key() {
        return Decision::Ignore;
    }
    Decision::Update { changed: !stored.same_state(incoming) }
}

/// The crm event a store writes for a decision: `billing.subscription_created`
/// on insert, `billing.subscription_canceled` when the state moves to
/// canceled, `billing.subscription_updated` for another change; none when
/// nothing changed. The payload is the stored subscription.
pub fn subscription_event(decision: Decision, stored: Option<&Subscription>, sub: &Subscription) -> Option<Event> {
    let kind = match decision {
        Decision::Insert => EventType::BILLING_SUBSCRIPTION_CREATED,
        Decision::Update { changed: true }
            if sub.status == SubscriptionStatus::Canceled
                && stored.is_some_and(|s| s.status != SubscriptionStatus::Canceled) =>
        {
            EventType::BILLING_SUBSCRIPTION_CANCELED
        }
        Decision::Update { changed: true } => EventType::BILLING_SUBSCRIPTION_UPDATED,
        Decision::Update { changed: false } | Decision::Ignore => return None,
    };
    Some(Event::new(sub.account_id, kind, sub, sub.updated_at))
}

/// Longest provider event id crm stores.
pub const MAX_BILLING_EVENT_ID: usize = 255;

/// A provider webhook event whose signature was verified, as stored before
/// the webhook is answered (unique by `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingEvent {
    /// The provider's id (`evt_…`).
    pub id: String,
    /// Its type (`invoice.payment_succeeded`, …).
    pub event_type: String,
    /// When the provider created it.
    pub created: DateTime<Utc>,
    /// The whole event as received.
    pub payload: serde_json::Value,
    /// When crm stored it.
    pub received_at: DateTime<Utc>,
    /// When a worker applied it (`None` until then).
    pub applied_at: Option<DateTime<Utc>>,
}

impl BillingEvent {
    /// Checks the id (1–255 printable ASCII characters) and the type (1–255).
    pub fn check(&self) -> Result<()> {
        let printable =
            |s: &str| (1..=MAX_BILLING_EVENT_ID).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(&self.id) {
            return Err(Error::validation("id", "must be 1 to 255 printable ASCII characters"));
        }
        if !printable(&self.event_type) {
            return Err(Error::validation("type", "must be 1 to 255 printable ASCII characters"));
        }
        Ok(())
    }
}

/// Everything one verified event changes, applied by
/// [`BillingStore::apply_billing_event`](crate::ports::billing::BillingStore::apply_billing_event)
/// in one transaction, at most once per event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BillingApplication {
    /// The stored provider event being applied.
    pub event_id: String,
    /// A customer to link to an account (checkout completed).
    pub customer: Option<(AccountId, String)>,
    /// A subscription state, stored under the ordering rule.
    pub subscription: Option<Subscription>,
    /// crm events written with the application (invoice paid or failed,
    /// checkout completed); the subscription's own event is chosen by the store.
    pub events: Vec<Event>,
}

/// What [`BillingStore::apply_billing_event`](crate::ports::billing::BillingStore::apply_billing_event) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// False when the event had been applied before (nothing written).
    pub first: bool,
    /// Whether the stored subscription state changed.
    pub subscription_changed: bool,
}

/// What a plan limits. `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanLimits {
    /// Channels.
    pub channels: Option<u64>,
    /// Contacts.
    pub contacts: Option<u64>,
    /// Outbound messages per calendar month (UTC).
    pub messages_per_month: Option<u64>,
}

/// A plan: a name, the provider prices that buy it, and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// Short id (`free`, `pro`).
    pub id: String,
    /// The provider prices (`price_…`) whose subscription gives this plan.
    #[serde(default)]
    pub price_ids: Vec<String>,
    /// Limits.
    #[serde(default)]
    pub limits: PlanLimits,
}

/// An account's current use of what plans limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Channels.
    pub channels: u64,
    /// Contacts.
    pub contacts: u64,
    /// Outbound messages created since the month began (UTC).
    pub messages_this_month: u64,
}

/// Something a plan limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limited {
    /// Creating a channel.
    Channels,
    /// Creating a contact.
    Contacts,
    /// Sending a message.
    Messages,
}

impl PlanLimits {
    /// [`Error::Forbidden`] naming the limit when one more `what` would pass it.
    ///
    /// ```
    /// use crm_core::domain::billing::{Limited, PlanLimits, Usage};
    /// let limits = PlanLimits { contacts: Some(2), ..Default::default() };
    /// assert!(limits.allows(Limited::Contacts, &Usage { contacts: 1, ..Default::default() }).is_ok());
    /// assert!(limits.allows(Limited::Contacts, &Usage { contacts: 2, ..Default::default() }).is_err());
    /// assert!(limits.allows(Limited::Messages, &Usage { messages_this_month: 1_000_000, ..Default::default() }).is_ok());
    /// ```
    pub fn allows(&self, what: Limited, usage: &Usage) -> Result<()> {
        let (limit, used, name) = match what {
            Limited::Channels => (self.channels, usage.channels, "channels"),
            Limited::Contacts => (self.contacts, usage.contacts, "contacts"),
            Limited::Messages => (self.messages_per_month, usage.messages_this_month, "messages this month"),
        };
        match limit {
            Some(limit) if used >= limit => Err(Error::Forbidden {
                reason: format!("plan limit reached: {name} ({used} of {limit}); upgrade the subscription"),
            }),
            _ => Ok(()),
        }
    }
}

/// The first instant of `now`'s calendar month (UTC): where the monthly
/// message count starts.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(status: SubscriptionStatus, t: i64, evt: &str) -> Subscription {
        let at = |s| Utc.timestamp_opt(s, 0).single().expect("time");
        Subscription {
            id: "sub_1".into(),
            account_id: AccountId::from_uuid(uuid::Uuid::nil()),
            customer_id: "cus_1".into(),
            status,
            price_id: Some("price_1".into()),
            price: None,
            quantity: 1,
            current_period_end: None,
            cancel_at_period_end: false,
            created_at: at(0),
            source_event_id: evt.into(),
            source_event_at: at(t),
            updated_at: at(t),
        }
    }

    #[test]
    fn every_arrival_order_converges() {
        use SubscriptionStatus::*;
        let states = [
            sub(Incomplete, 10, "evt_1"),
            sub(Active, 11, "evt_2"),
            sub(Active, 11, "evt_3"),
            sub(PastDue, 12, "evt_4"),
            sub(Canceled, 9, "evt_5"),
        ];
        // All 120 permutations end on the same state: the canceled one (terminal).
        let mut finals = std::collections::HashSet::new();
        let idx = [0usize, 1, 2, 3, 4];
        let mut perms = vec![];
        permute(&idx, &mut vec![], &mut perms);
        for p in perms {
            let mut stored: Option<Subscription> = None;
            for i in p {
                match decide(stored.as_ref(), &states[i]) {
                    Decision::Insert | Decision::Update { .. } => stored = Some(states[i].clone()),
                    Decision::Ignore => {}
                }
            }
            finals.insert(stored.expect("stored").source_event_id);
        }
        assert_eq!(finals.into_iter().collect::<Vec<_>>(), vec!["evt_5".to_owned()]);
    }

    fn permute(rest: &[usize], acc: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if rest.is_empty() {
            out.push(acc.clone());
        }
        for (i, x) in rest.iter().enumerate() {
            let mut r = rest.to_vec();
            r.remove(i);
            acc.push(*x);
            permute(&r, acc, out);
            acc.pop();
        }
    }

    #[test]
    fn same_event_twice_and_same_state_from_another_event() {
        let a = sub(SubscriptionStatus::Active, 10, "evt_1");
        assert_eq!(decide(Some(&a), &a), Decision::Ignore);
        let b = sub(SubscriptionStatus::Active, 11, "evt_2");
        assert_eq!(decide(Some(&a), &b), Decision::Update { changed: false });
        assert!(subscription_event(Decision::Update { changed: false }, Some(&a), &b).is_none());
        let c = sub(SubscriptionStatus::Canceled, 12, "evt_3");
        let e = subscription_event(decide(Some(&b), &c), Some(&b), &c).expect("event");
        assert_eq!(e.event_type, EventType::BILLING_SUBSCRIPTION_CANCELED);
    }

    #[test]
    fn another_accounts_state_is_ignored() {
        let a = sub(SubscriptionStatus::Active, 10, "evt_1");
        let mut b = sub(SubscriptionStatus::PastDue, 11, "evt_2");
        b.account_id = AccountId::new();
        assert_eq!(decide(Some(&a), &b), Decision::Ignore);
    }

    #[test]
    fn statuses_round_trip_and_month_start() {
        for s in SubscriptionStatus::ALL {
            assert_eq!(SubscriptionStatus::parse(s.as_str()).expect("parse"), s);
        }
        assert!(SubscriptionStatus::parse("gone").is_err());
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 17, 5, 0).single().expect("time");
        assert_eq!(month_start(t), Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("time"));
    }
}

//! Stripe's objects (subscription, checkout session, invoice, event) read
//! into crm's domain. Field locations follow Stripe's API reference; where
//! an API version moved a field, both places are read (`current_period_end`
//! on the subscription before 2025-03-31.basil, on its items since; an
//! invoice's subscription at `subscription` before, at
//! `parent.subscription_details.subscription` since).

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use crm_core::domain::billing::{BillingEvent, Money, Subscription, SubscriptionStatus};
use crm_core::{AccountId, Error, Result};

/// The metadata key that carries crm's account id on Stripe objects.
pub const ACCOUNT_METADATA: &str = "account_id";

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_i64().and_then(|t| Utc.timestamp_opt(t, 0).single())
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// An id field that may be expanded (`"cus_1"` or `{"id": "cus_1", …}`).
pub fn id_of(v: &Value) -> Option<String> {
    text(v).or_else(|| text(&v["id"]))
}

/// The account id in an object's `metadata`, when it is a valid id.
pub fn account_in_metadata(object: &Value) -> Option<AccountId> {
    object["metadata"][ACCOUNT_METADATA].as_str().and_then(|s| s.parse::<uuid::Uuid>().ok()).map(AccountId::from_uuid)
}

/// Reads a subscription object for `account`, the state coming from event
/// `source_event_id` created at `source_event_at`.
pub fn subscription(
    object: &Value,
    account: AccountId,
    source_event_id: &str,
    source_event_at: DateTime<Utc>,
) -> Result<Subscription> {
    let bad = |what: &str| Error::validation("subscription", format!("Stripe's subscription has no valid {what}"));
    if object["object"].as_str().is_some_and(|o| o != "subscription") {
        return Err(bad("object type"));
    }
    let item = &object["items"]["data"][0];
    let price = &item["price"];
    let money = match (price["unit_amount"].as_i64(), price["currency"].as_str()) {
        (Some(amount), Some(currency)) => Some(Money::new(amount, currency)?),
        _ => None,
    };
    let status = object["status"].as_str().ok_or_else(|| bad("status"))?;
    Ok(Subscription {
        id: text(&object["id"]).ok_or_else(|| bad("id"))?,
        account_id: account,
        customer_id: id_of(&object["customer"]).ok_or_else(|| bad("customer"))?,
        status: SubscriptionStatus::parse(status)?,
        price_id: id_of(price),
        price: money,
        quantity: item["quantity"].as_u64().and_then(|q| u32::try_from(q).ok()).unwrap_or(1),
        current_period_end: time(&object["current_period_end"]).or_else(|| time(&item["current_period_end"])),
        cancel_at_period_end: object["cancel_at_period_end"].as_bool().unwrap_or(false),
        created_at: time(&object["created"]).ok_or_else(|| bad("created"))?,
        source_event_id: source_event_id.to_owned(),
        source_event_at,
        updated_at: source_event_at,
    })
}

/// The subscription an invoice belongs to, in either API version's place.
pub fn invoice_subscription(invoice: &Value) -> Option<String> {
    id_of(&invoice["subscription"]).or_else(|| id_of(&invoice["parent"]["subscription_details"]["subscription"]))
}

/// The account id an invoice carries: its own metadata, or its
/// subscription's (`subscription_details.metadata` in either API version's place).
pub fn invoice_account(invoice: &Value) -> Option<AccountId> {
    account_in_metadata(invoice)
        .or_else(|| account_in_metadata(&invoice["subscription_details"]))
        .or_else(|| account_in_metadata(&invoice["parent"]["subscription_details"]))
}

/// Reads a webhook body (already verified) into a [`BillingEvent`] received at `now`.
pub fn event(payload: &[u8], now: DateTime<Utc>) -> Result<BillingEvent> {
    let v: Value = serde_json::from_slice(payload).map_err(|_| Error::validation("body", "is not JSON"))?;
    if v["object"].as_str() != Some("event") {
        return Err(Error::validation("body", "is not a Stripe event (object is not \"event\")"));
    }
    let event = BillingEvent {
        id: text(&v["id"]).ok_or_else(|| Error::validation("id", "missing"))?,
        event_type: text(&v["type"]).ok_or_else(|| Error::validation("type", "missing"))?,
        created: time(&v["created"]).ok_or_else(|| Error::validation("created", "missing"))?,
        payload: v,
        received_at: now,
        applied_at: None,
    };
    event.check()?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_api_versions_period_end() {
        let account = AccountId::new();
        let at = Utc.timestamp_opt(1_780_000_000, 0).single().expect("time");
        let old = json!({ "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active", "created": 1,
            "current_period_end": 100, "items": { "data": [{ "quantity": 2, "price": { "id": "price_1", "unit_amount": 4990, "currency": "brl" } }] } });
        let s = subscription(&old, account, "evt_1", at).expect("old");
        assert_eq!((s.quantity, s.current_period_end.map(|t| t.timestamp())), (2, Some(100)));
        assert_eq!(s.price, Some(Money::new(4990, "BRL").expect("money")));
        let new = json!({ "id": "sub_1", "object": "subscription", "customer": { "id": "cus_1" }, "status": "past_due", "created": 1,
            "items": { "data": [{ "current_period_end": 200, "price": { "id": "price_1" } }] } });
        let s = subscription(&new, account, "evt_2", at).expect("new");
        assert_eq!(
            (s.status, s.current_period_end.map(|t| t.timestamp()), s.quantity),
            (SubscriptionStatus::PastDue, Some(200), 1)
        );
        assert!(subscription(&json!({ "object": "invoice" }), account, "evt", at).is_err());
        assert!(
            subscription(
                &json!({ "id": "sub_1", "customer": "c", "status": "weird", "created": 1 }),
                account,
                "evt",
                at
            )
            .is_err()
        );
    }

    #[test]
    fn events_need_their_fields() {
        let now = Utc::now();
        assert!(event(br#"{"object":"event","id":"evt_1","type":"x.y","created":1}"#, now).is_ok());
        assert!(event(br#"{"object":"event","id":"evt_1","created":1}"#, now).is_err());
        assert!(event(br#"{"object":"charge","id":"ch_1","type":"x","created":1}"#, now).is_err());
        assert!(event(b"[]", now).is_err());
        assert!(event(b"not json", now).is_err());
    }
}

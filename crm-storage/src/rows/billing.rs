//! Billing: row decoding and the reads both dialects share.

use crm_core::domain::billing::{BillingEvent, Money, Subscription, SubscriptionStatus, Usage};
use crm_core::{AccountId, Error, Result};

use super::{Columns, Fetch};
use crate::error::corrupt;

/// A `billing_events` row.
pub(crate) fn billing_event_row(r: &impl Columns) -> Result<BillingEvent> {
    Ok(BillingEvent {
        id: r.text("id")?,
        event_type: r.text("type")?,
        created: r.time("created")?,
        payload: r.json("payload")?,
        received_at: r.time("received_at")?,
        applied_at: r.opt_time("applied_at")?,
    })
}

/// A `billing_subscriptions` row.
pub(crate) fn subscription_row(r: &impl Columns) -> Result<Subscription> {
    let price = match (r.opt_int("price_amount")?, r.opt_text("price_currency")?) {
        (Some(amount), Some(currency)) => {
            Some(Money::new(amount, &currency).map_err(|e| corrupt("price_currency", e))?)
        }
        _ => None,
    };
    Ok(Subscription {
        id: r.text("id")?,
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        customer_id: r.text("customer_id")?,
        status: r.parsed("status", SubscriptionStatus::parse)?,
        price_id: r.opt_text("price_id")?,
        price,
        quantity: u32::try_from(r.int("quantity")?).map_err(|e| corrupt("quantity", e))?,
        current_period_end: r.opt_time("current_period_end")?,
        cancel_at_period_end: r.flag("cancel_at_period_end")?,
        created_at: r.time("created_at")?,
        source_event_id: r.text("source_event_id")?,
        source_event_at: r.time("source_event_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// [`BillingStore::get_billing_event`](crm_core::BillingStore::get_billing_event).
pub(crate) async fn get_billing_event(db: &impl Fetch, id: &str) -> Result<BillingEvent> {
    let row =
        db.fetch_optional("reading a billing event", "SELECT * FROM billing_events WHERE id = $1", vec![id.into()]);
    row.await?.map(|r| billing_event_row(&r)).transpose()?.ok_or(Error::not_found("billing event"))
}

/// [`BillingStore::billing_customer`](crm_core::BillingStore::billing_customer).
pub(crate) async fn billing_customer(db: &impl Fetch, account: AccountId) -> Result<Option<String>> {
    let sql = "SELECT customer_id FROM billing_customers WHERE account_id = $1";
    let row = db.fetch_optional("reading a billing customer", sql, vec![account.into_uuid().into()]).await?;
    row.map(|r| r.text("customer_id")).transpose()
}

/// [`BillingStore::account_for_customer`](crm_core::BillingStore::account_for_customer).
pub(crate) async fn account_for_customer(db: &impl Fetch, customer: &str) -> Result<Option<AccountId>> {
    let sql = "SELECT account_id FROM billing_customers WHERE customer_id = $1";
    let row = db.fetch_optional("reading a billing customer", sql, vec![customer.into()]).await?;
    row.map(|r| r.uuid("account_id").map(AccountId::from_uuid)).transpose()
}

/// [`BillingStore::current_subscription`](crm_core::BillingStore::current_subscription).
pub(crate) async fn current_subscription(db: &impl Fetch, account: AccountId) -> Result<Option<Subscription>> {
    let sql = "SELECT * FROM billing_subscriptions WHERE account_id = $1 \
               ORDER BY CASE WHEN status = 'canceled' THEN 0 ELSE 1 END DESC, created_at DESC, id DESC LIMIT 1";
    let row = db.fetch_optional("reading a subscription", sql, vec![account.into_uuid().into()]).await?;
    row.map(|r| subscription_row(&r)).transpose()
}

/// The usage counts of a row with `channels`, `contacts` and `messages`.
pub(crate) fn usage_of<R: sqlx::Row>(row: &R) -> Result<Usage>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    let count = |col: &'static str| super::get::<i64, R>(row, col).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(Usage { channels: count("channels")?, contacts: count("contacts")?, messages_this_month: count("messages")? })
}

//! [`BillingStore`] for [`SqliteStore`]. Writes run in `BEGIN IMMEDIATE`
//! transactions, so applications of events are serialised by SQLite's write
//! lock: the read-decide-write of the ordering rule cannot interleave.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::domain::billing::{
    Applied, BillingApplication, BillingEvent, Decision, Subscription, Usage, decide, subscription_event,
};
use crm_core::ports::billing::{BillingStore, check_application, check_customer_link};
use crm_core::ports::jobs::check_job;
use crm_core::{AccountId, Job, Result};

use super::{SqliteStore, Tx, append, commit, json_string, opt_micros};
use crate::error::db;
use crate::rows::billing::subscription_row;
use crate::rows::micros;

/// Links a customer inside `tx` under the port's rule.
async fn link_customer(tx: &mut Tx, account: AccountId, customer: &str) -> Result<()> {
    let of_account: Option<String> =
        sqlx::query_scalar("SELECT customer_id FROM billing_customers WHERE account_id = ?")
            .bind(account.into_uuid())
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| db("reading a billing customer", e))?;
    let of_customer: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT account_id FROM billing_customers WHERE customer_id = ?")
            .bind(customer)
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| db("reading a billing customer", e))?;
    if check_customer_link(account, customer, of_account.as_deref(), of_customer.map(AccountId::from_uuid))? {
        sqlx::query("INSERT INTO billing_customers (account_id, customer_id) VALUES (?, ?)")
            .bind(account.into_uuid())
            .bind(customer)
            .execute(&mut **tx)
            .await
            .map_err(|e| db("linking a billing customer", e))?;
    }
    Ok(())
}

/// Stores `sub` under the ordering rule inside `tx`, with its event; whether it changed.
async fn store_subscription(tx: &mut Tx, sub: &Subscription) -> Result<bool> {
    let row = sqlx::query("SELECT * FROM billing_subscriptions WHERE id = ?")
        .bind(&sub.id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| db("reading a subscription", e))?;
    let current = row.map(|r| subscription_row(&r)).transpose()?;
    let decision = decide(current.as_ref(), sub);
    if decision == Decision::Ignore {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO billing_subscriptions (id, account_id, customer_id, status, price_id, price_amount, \
             price_currency, quantity, current_period_end, cancel_at_period_end, created_at, source_event_id, \
             source_event_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status, \
             price_id = excluded.price_id, price_amount = excluded.price_amount, \
             price_currency = excluded.price_currency, quantity = excluded.quantity, \
             current_period_end = excluded.current_period_end, cancel_at_period_end = excluded.cancel_at_period_end, \
             created_at = excluded.created_at, source_event_id = excluded.source_event_id, \
             source_event_at = excluded.source_event_at, updated_at = excluded.updated_at",
    )
    .bind(&sub.id)
    .bind(sub.account_id.into_uuid())
    .bind(&sub.customer_id)
    .bind(sub.status.as_str())
    .bind(sub.price_id.as_deref())
    .bind(sub.price.as_ref().map(|p| p.amount))
    .bind(sub.price.as_ref().map(|p| p.currency.as_str()))
    .bind(i64::from(sub.quantity))
    .bind(opt_micros(sub.current_period_end))
    .bind(sub.cancel_at_period_end)
    .bind(micros(sub.created_at))
    .bind(&sub.source_event_id)
    .bind(micros(sub.source_event_at))
    .bind(micros(sub.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(|e| db("storing a subscription", e))?;
    match subscription_event(decision, current.as_ref(), sub) {
        Some(event) => {
            append(tx, &event).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[async_trait]
impl BillingStore for SqliteStore {
    async fn record_billing_event(&self, event: &BillingEvent, job: &Job) -> Result<bool> {
        event.check()?;
        check_job(job)?;
        let (payload, job_payload) = (json_string("payload", &event.payload)?, json_string("payload", &job.payload)?);
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO billing_events (id, type, created, payload, received_at, applied_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(micros(event.created))
        .bind(payload)
        .bind(micros(event.received_at))
        .bind(opt_micros(event.applied_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("storing a billing event", e))?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO jobs (id, kind, account_id, payload, unique_key, run_at, attempt, state, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, 0, 'scheduled', ?)",
        )
        .bind(job.id.into_uuid())
        .bind(&job.kind)
        .bind(job.account_id.map(AccountId::into_uuid))
        .bind(job_payload)
        .bind(job.unique_key.as_deref())
        .bind(micros(job.run_at))
        .bind(micros(job.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("scheduling a job", e))?;
        commit(tx).await?;
        Ok(true)
    }

    async fn get_billing_event(&self, id: &str) -> Result<BillingEvent> {
        crate::rows::billing::get_billing_event(self, id).await
    }

    async fn apply_billing_event(&self, application: &BillingApplication, now: DateTime<Utc>) -> Result<Applied> {
        check_application(application)?;
        let mut tx = self.write().await?;
        let applied: Option<Option<i64>> = sqlx::query_scalar("SELECT applied_at FROM billing_events WHERE id = ?")
            .bind(&application.event_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("reading a billing event", e))?;
        match applied {
            None => return Err(crm_core::Error::not_found("billing event")),
            Some(Some(_)) => return Ok(Applied { first: false, subscription_changed: false }),
            Some(None) => {}
        }
        if let Some((account, customer)) = &application.customer {
            link_customer(&mut tx, *account, customer).await?;
        }
        let mut changed = false;
        if let Some(sub) = &application.subscription {
            let sub = Subscription { updated_at: now, ..sub.clone() };
            changed = store_subscription(&mut tx, &sub).await?;
        }
        for e in &application.events {
            append(&mut tx, e).await?;
        }
        sqlx::query("UPDATE billing_events SET applied_at = ? WHERE id = ?")
            .bind(micros(now))
            .bind(&application.event_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("marking a billing event applied", e))?;
        commit(tx).await?;
        Ok(Applied { first: true, subscription_changed: changed })
    }

    async fn set_billing_customer(&self, account: AccountId, customer: &str) -> Result<()> {
        let mut tx = self.write().await?;
        link_customer(&mut tx, account, customer).await?;
        commit(tx).await
    }

    async fn billing_customer(&self, account: AccountId) -> Result<Option<String>> {
        crate::rows::billing::billing_customer(self, account).await
    }

    async fn account_for_customer(&self, customer: &str) -> Result<Option<AccountId>> {
        crate::rows::billing::account_for_customer(self, customer).await
    }

    async fn current_subscription(&self, account: AccountId) -> Result<Option<Subscription>> {
        crate::rows::billing::current_subscription(self, account).await
    }

    async fn billing_usage(&self, account: AccountId, month_start: DateTime<Utc>) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM channels WHERE account_id = ?1) AS channels, \
                    (SELECT COUNT(*) FROM contacts WHERE account_id = ?1) AS contacts, \
                    (SELECT COUNT(*) FROM messages WHERE account_id = ?1 AND direction = 'outbound' \
                        AND created_at >= ?2) AS messages",
        )
        .bind(account.into_uuid())
        .bind(micros(month_start))
        .fetch_one(self.pool())
        .await
        .map_err(|e| db("counting usage", e))?;
        crate::rows::billing::usage_of(&row)
    }
}

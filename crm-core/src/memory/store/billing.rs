//! [`BillingStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{JobEntry, MemoryStore, State};
use crate::domain::billing::{
    Applied, BillingApplication, BillingEvent, Decision, Subscription, SubscriptionStatus, Usage, decide,
    subscription_event,
};
use crate::ports::billing::{BillingStore, check_application, check_customer_link};
use crate::ports::jobs::check_job;
use crate::{AccountId, Direction, Error, Job, Result};

impl State {
    /// Links `account` and `customer` under [`check_customer_link`].
    fn link_customer(&mut self, account: AccountId, customer: &str) -> Result<()> {
        let of_customer = self.billing_customers.iter().find(|(_, c)| *c == customer).map(|(a, _)| *a);
        let of_account = self.billing_customers.get(&account).map(String::as_str);
        if check_customer_link(account, customer, of_account, of_customer)? {
            self.billing_customers.insert(account, customer.to_owned());
        }
        Ok(())
    }
}

#[async_trait]
impl BillingStore for MemoryStore {
    async fn record_billing_event(&self, event: &BillingEvent, job: &Job) -> Result<bool> {
        event.check()?;
        check_job(job)?;
        let mut s = self.lock();
        if s.billing_events.contains_key(&event.id) {
            return Ok(false);
        }
        if s.jobs.contains_key(&job.id) {
            return Err(Error::conflict("job", "id already exists"));
        }
        s.billing_events.insert(event.id.clone(), event.clone());
        s.jobs.insert(job.id, JobEntry { job: job.clone(), lease: None });
        Ok(true)
    }

    async fn get_billing_event(&self, id: &str) -> Result<BillingEvent> {
        self.lock().billing_events.get(id).cloned().ok_or(Error::not_found("billing event"))
    }

    async fn apply_billing_event(&self, application: &BillingApplication, now: DateTime<Utc>) -> Result<Applied> {
        check_application(application)?;
        let mut guard = self.lock();
        let s = &mut *guard;
        let stored = s.billing_events.get(&application.event_id).ok_or(Error::not_found("billing event"))?;
        if stored.applied_at.is_some() {
            return Ok(Applied { first: false, subscription_changed: false });
        }
        for e in &application.events {
            s.ensure_new(e)?;
        }
        // Checks first, writes after: nothing is written when one fails.
        if let Some((account, customer)) = &application.customer {
            s.link_customer(*account, customer)?;
        }
        let mut changed = false;
        if let Some(sub) = &application.subscription {
            let mut sub = sub.clone();
            sub.updated_at = now;
            let current = s.billing_subscriptions.get(&sub.id);
            let decision = decide(current, &sub);
            if let Some(event) = subscription_event(decision, current, &sub) {
                s.append(&event);
                changed = true;
            }
            if decision != Decision::Ignore {
                s.billing_subscriptions.insert(sub.id.clone(), sub);
            }
        }
        for e in &application.events {
            s.append(e);
        }
        if let Some(e) = s.billing_events.get_mut(&application.event_id) {
            e.applied_at = Some(now);
        }
        Ok(Applied { first: true, subscription_changed: changed })
    }

    async fn set_billing_customer(&self, account: AccountId, customer: &str) -> Result<()> {
        self.lock().link_customer(account, customer)
    }

    async fn billing_customer(&self, account: AccountId) -> Result<Option<String>> {
        Ok(self.lock().billing_customers.get(&account).cloned())
    }

    async fn account_for_customer(&self, customer: &str) -> Result<Option<AccountId>> {
        Ok(self.lock().billing_customers.iter().find(|(_, c)| *c == customer).map(|(a, _)| *a))
    }

    async fn current_subscription(&self, account: AccountId) -> Result<Option<Subscription>> {
        let s = self.lock();
        let mut subs: Vec<&Subscription> =
            s.billing_subscriptions.values().filter(|x| x.account_id == account).collect();
        // Not canceled first, then the newest, then the id (a stable pick).
        subs.sort_by(|a, b| {
            let key = |x: &Subscription| (x.status != SubscriptionStatus::Canceled, x.created_at, x.id.clone());
            key(b).cmp(&key(a))
        });
        Ok(subs.first().map(|x| (*x).clone()))
    }

    async fn billing_usage(&self, account: AccountId, month_start: DateTime<Utc>) -> Result<Usage> {
        let s = self.lock();
        let count = |n: usize| n as u64;
        Ok(Usage {
            channels: count(s.channels.values().filter(|c| c.account_id == account).count()),
            contacts: count(s.contacts.values().filter(|c| c.account_id == account).count()),
            messages_this_month: count(
                s.messages
                    .values()
                    .filter(|m| {
                        m.account_id == account && m.direction == Direction::Outbound && m.created_at >= month_start
                    })
                    .count(),
            ),
        })
    }
}

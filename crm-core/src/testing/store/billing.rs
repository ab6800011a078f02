//! Billing: the provider's events (stored once, applied once), the
//! subscription ordering rule under replays, concurrency and any arrival
//! order, customer links, the current subscription, and usage counts
//! ([`BillingStore`](crate::BillingStore)).

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

use super::{contact, event_count, events_of, insert, is_conflict, is_not_found, new_account, now, outbound};
use crate::domain::billing::{BillingApplication, BillingEvent, Subscription, SubscriptionStatus};
use crate::ports::billing::APPLY_BILLING_EVENT_JOB;
use crate::{AccountId, Event, EventType, Job, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    events_are_recorded_once_with_their_job(make().await).await;
    an_event_is_applied_once(make().await).await;
    concurrent_applications_write_once(make().await).await;
    out_of_order_events_converge(make().await).await;
    the_same_state_from_two_events_changes_once(make().await).await;
    refused_applications_write_nothing(make().await).await;
    customer_links_are_one_to_one(make().await).await;
    current_subscription_prefers_the_live_one(make().await).await;
    usage_counts_the_account_and_the_month(make().await).await;
}

fn provider_event(id: &str, kind: &str, created: DateTime<Utc>) -> BillingEvent {
    BillingEvent {
        id: id.into(),
        event_type: kind.into(),
        created,
        payload: json!({ "id": id, "type": kind, "data": { "object": { "id": "sub_1" } } }),
        received_at: now(),
        applied_at: None,
    }
}

fn apply_job(id: &str) -> Job {
    Job::new(APPLY_BILLING_EVENT_JOB, None, json!({ "event_id": id }), now(), now())
        .and_then(|j| j.with_unique_key(id))
        .expect("valid job")
}

async fn record(store: &Arc<dyn Store>, e: &BillingEvent) -> bool {
    store.record_billing_event(e, &apply_job(&e.id)).await.expect("record_billing_event")
}

fn sub(account: AccountId, id: &str, status: SubscriptionStatus, evt: &str, at: DateTime<Utc>) -> Subscription {
    Subscription {
        id: id.into(),
        account_id: account,
        customer_id: "cus_1".into(),
        status,
        price_id: Some("price_pro".into()),
        price: Some(crate::domain::billing::Money::new(4990, "BRL").expect("money")),
        quantity: 1,
        current_period_end: Some(at + Span::days(30)),
        cancel_at_period_end: false,
        created_at: at,
        source_event_id: evt.into(),
        source_event_at: at,
        updated_at: at,
    }
}

/// The account's `billing.*` event types, sorted by name (the log's order
/// is the events' ids, made when each event was built).
fn billing_events(events: &[Event]) -> Vec<EventType> {
    let mut kinds: Vec<EventType> =
        events.iter().filter(|e| e.event_type.as_str().starts_with("billing.")).map(|e| e.event_type.clone()).collect();
    kinds.sort();
    kinds
}

/// An event is stored with its job once; a second delivery of the same id
/// stores nothing and says so; unknown ids are `NotFound`; bad ids refused.
pub async fn events_are_recorded_once_with_their_job(store: Arc<dyn Store>) {
    let t = now();
    let e = provider_event("evt_once", "invoice.payment_succeeded", t);
    assert!(record(&store, &e).await, "first delivery stored");
    assert!(!record(&store, &e).await, "a repeated delivery stores nothing");
    let stored = store.get_billing_event("evt_once").await.expect("get");
    assert_eq!(stored, e);
    assert_eq!(store.job_stats(APPLY_BILLING_EVENT_JOB).await.expect("stats").depth, 1, "one job, not two");
    assert!(is_not_found(&store.get_billing_event("evt_missing").await.expect_err("missing")));
    let mut bad = provider_event("evt bad", "x", t);
    assert!(store.record_billing_event(&bad, &apply_job("evt_bad")).await.is_err(), "a space in the id");
    bad.id = String::new();
    assert!(store.record_billing_event(&bad, &apply_job("evt_bad")).await.is_err(), "an empty id");
}

/// Applying the same event twice writes once (the second returns `first: false`).
pub async fn an_event_is_applied_once(store: Arc<dyn Store>) {
    let account = new_account(&store, "once").await;
    let t = now();
    record(&store, &provider_event("evt_a", "customer.subscription.created", t)).await;
    let paid = Event::new(account, EventType::BILLING_INVOICE_PAID, &json!({ "invoice_id": "in_1" }), t);
    let app = BillingApplication {
        event_id: "evt_a".into(),
        customer: Some((account, "cus_1".into())),
        subscription: Some(sub(account, "sub_1", SubscriptionStatus::Active, "evt_a", t)),
        events: vec![paid],
    };
    let first = store.apply_billing_event(&app, t).await.expect("apply");
    assert!(first.first && first.subscription_changed);
    let again = store.apply_billing_event(&app, t).await.expect("apply again");
    assert!(!again.first && !again.subscription_changed);
    assert_eq!(
        billing_events(&events_of(&store, account).await),
        vec![EventType::BILLING_INVOICE_PAID, EventType::BILLING_SUBSCRIPTION_CREATED]
    );
    let stored = store.current_subscription(account).await.expect("current").expect("some");
    assert_eq!((stored.status, stored.source_event_id.as_str()), (SubscriptionStatus::Active, "evt_a"));
    assert_eq!(stored.current_period_end, Some(t + Span::days(30)));
    assert_eq!(stored.price.as_ref().map(|p| (p.amount, p.currency.as_str())), Some((4990, "BRL")));
    assert!(store.get_billing_event("evt_a").await.expect("get").applied_at.is_some());
    assert_eq!(store.billing_customer(account).await.expect("customer").as_deref(), Some("cus_1"));
    let missing = BillingApplication { event_id: "evt_nope".into(), ..Default::default() };
    assert!(is_not_found(&store.apply_billing_event(&missing, t).await.expect_err("not stored")));
}

/// Eight workers applying one event at once: exactly one writes.
pub async fn concurrent_applications_write_once(store: Arc<dyn Store>) {
    let account = new_account(&store, "race").await;
    let t = now();
    record(&store, &provider_event("evt_r", "customer.subscription.created", t)).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let app = BillingApplication {
            event_id: "evt_r".into(),
            subscription: Some(sub(account, "sub_1", SubscriptionStatus::Active, "evt_r", t)),
            events: vec![Event::new(account, EventType::BILLING_INVOICE_PAID, &json!({}), t)],
            ..Default::default()
        };
        tasks.push(tokio::spawn(async move { store.apply_billing_event(&app, t).await }));
    }
    let mut firsts = 0;
    for task in tasks {
        // A loser may see the event applied (first: false) or, on a store that
        // serialises by failing, a transient error; never a second write.
        if let Ok(Ok(a)) = task.await
            && a.first
        {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1);
    assert_eq!(
        billing_events(&events_of(&store, account).await),
        vec![EventType::BILLING_INVOICE_PAID, EventType::BILLING_SUBSCRIPTION_CREATED]
    );
}

/// The events of one subscription, applied in every order on fresh data,
/// end on the same state (the greatest ordering key: canceled is terminal,
/// then the later event), also when applied concurrently.
pub async fn out_of_order_events_converge(store: Arc<dyn Store>) {
    let t = now();
    let orders: [[usize; 4]; 4] = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]];
    for (round, order) in orders.iter().enumerate() {
        let account = new_account(&store, &format!("order {round}")).await;
        let sub_id = format!("sub_o{round}");
        let states = [
            (SubscriptionStatus::Incomplete, 0),
            (SubscriptionStatus::Active, 1),
            (SubscriptionStatus::PastDue, 2),
            (SubscriptionStatus::Active, 3),
        ];
        for &i in order {
            let (status, secs) = states[i];
            let evt = format!("evt_o{round}_{i}");
            let at = t + Span::seconds(secs);
            record(&store, &provider_event(&evt, "customer.subscription.updated", at)).await;
            let mut s = sub(account, &sub_id, status, &evt, at);
            s.created_at = t;
            let app = BillingApplication { event_id: evt, subscription: Some(s), ..Default::default() };
            store.apply_billing_event(&app, now()).await.expect("apply");
        }
        let stored = store.current_subscription(account).await.expect("current").expect("some");
        assert_eq!(stored.source_event_id, format!("evt_o{round}_3"), "order {order:?}");
        assert_eq!(stored.status, SubscriptionStatus::Active);
    }
    // Concurrently: a deletion and three updates, all at once.
    let account = new_account(&store, "concurrent order").await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let evt = format!("evt_c{i}");
        let at = t + Span::seconds(10 - i);
        record(&store, &provider_event(&evt, "customer.subscription.updated", at)).await;
        let status = if i == 2 { SubscriptionStatus::Canceled } else { SubscriptionStatus::Active };
        let app = BillingApplication {
            event_id: evt.clone(),
            subscription: Some(sub(account, "sub_c", status, &evt, at)),
            ..Default::default()
        };
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                match store.apply_billing_event(&app, now()).await {
                    Err(e) if e.is_transient() => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    other => return other,
                }
            }
            store.apply_billing_event(&app, now()).await
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("apply");
    }
    let stored = store.current_subscription(account).await.expect("current").expect("some");
    assert_eq!((stored.status, stored.source_event_id.as_str()), (SubscriptionStatus::Canceled, "evt_c2"));
    let kinds = billing_events(&events_of(&store, account).await);
    assert_eq!(kinds.iter().filter(|k| **k == EventType::BILLING_SUBSCRIPTION_CREATED).count(), 1, "{kinds:?}");
    // The canceled state was either the first stored (then `created` says
    // so) or moved to once.
    assert!(kinds.iter().filter(|k| **k == EventType::BILLING_SUBSCRIPTION_CANCELED).count() <= 1, "{kinds:?}");
}

/// `customer.subscription.created` and `.updated` reporting the same state:
/// the second moves the source event but writes no crm event.
pub async fn the_same_state_from_two_events_changes_once(store: Arc<dyn Store>) {
    let account = new_account(&store, "same").await;
    let t = now();
    for (i, evt) in ["evt_s1", "evt_s2"].iter().enumerate() {
        let at = t + Span::seconds(i as i64);
        record(&store, &provider_event(evt, "customer.subscription.updated", at)).await;
        let mut s = sub(account, "sub_s", SubscriptionStatus::Active, evt, at);
        s.created_at = t;
        s.current_period_end = Some(t + Span::days(30));
        let app = BillingApplication { event_id: (*evt).into(), subscription: Some(s), ..Default::default() };
        let applied = store.apply_billing_event(&app, now()).await.expect("apply");
        assert_eq!(applied.subscription_changed, i == 0);
    }
    assert_eq!(billing_events(&events_of(&store, account).await), vec![EventType::BILLING_SUBSCRIPTION_CREATED]);
    let stored = store.current_subscription(account).await.expect("current").expect("some");
    assert_eq!(stored.source_event_id, "evt_s2");
}

/// A customer already linked elsewhere, or an event of another account:
/// refused, nothing written, the event still unapplied (a retry may pass).
pub async fn refused_applications_write_nothing(store: Arc<dyn Store>) {
    let a = new_account(&store, "a").await;
    let b = new_account(&store, "b").await;
    store.set_billing_customer(a, "cus_a").await.expect("link");
    let t = now();
    record(&store, &provider_event("evt_x", "checkout.session.completed", t)).await;
    let before = event_count(&store, b).await;
    let app = BillingApplication {
        event_id: "evt_x".into(),
        customer: Some((b, "cus_a".into())),
        subscription: Some(sub(b, "sub_x", SubscriptionStatus::Active, "evt_x", t)),
        events: vec![Event::new(b, EventType::BILLING_CHECKOUT_COMPLETED, &json!({}), t)],
    };
    assert!(is_conflict(&store.apply_billing_event(&app, t).await.expect_err("customer of a")));
    assert_eq!(event_count(&store, b).await, before);
    assert!(store.current_subscription(b).await.expect("current").is_none());
    assert!(store.get_billing_event("evt_x").await.expect("get").applied_at.is_none());
    let mixed = BillingApplication {
        event_id: "evt_x".into(),
        subscription: Some(sub(b, "sub_x", SubscriptionStatus::Active, "evt_x", t)),
        events: vec![Event::new(a, EventType::BILLING_CHECKOUT_COMPLETED, &json!({}), t)],
        ..Default::default()
    };
    assert!(store.apply_billing_event(&mixed, t).await.is_err(), "an event of another account");
    assert_eq!(event_count(&store, a).await, 1);
}

/// One customer per account and one account per customer; linking again is
/// harmless; lookups both ways; another account sees nothing.
pub async fn customer_links_are_one_to_one(store: Arc<dyn Store>) {
    let a = new_account(&store, "a").await;
    let b = new_account(&store, "b").await;
    assert_eq!(store.billing_customer(a).await.expect("none"), None);
    store.set_billing_customer(a, "cus_a").await.expect("link");
    store.set_billing_customer(a, "cus_a").await.expect("again");
    assert!(is_conflict(&store.set_billing_customer(a, "cus_other").await.expect_err("second customer")));
    assert!(is_conflict(&store.set_billing_customer(b, "cus_a").await.expect_err("taken")));
    assert_eq!(store.account_for_customer("cus_a").await.expect("find"), Some(a));
    assert_eq!(store.account_for_customer("cus_b").await.expect("find"), None);
    assert_eq!(store.billing_customer(b).await.expect("b"), None);
}

/// The current subscription is the newest that is not canceled, else the
/// newest; another account's subscriptions are not seen.
pub async fn current_subscription_prefers_the_live_one(store: Arc<dyn Store>) {
    let a = new_account(&store, "a").await;
    let b = new_account(&store, "b").await;
    let t = now();
    let subs = [
        sub(a, "sub_old", SubscriptionStatus::Active, "evt_1", t),
        sub(a, "sub_new", SubscriptionStatus::Canceled, "evt_2", t + Span::seconds(5)),
    ];
    for s in &subs {
        record(&store, &provider_event(&s.source_event_id, "customer.subscription.updated", t)).await;
        let app = BillingApplication {
            event_id: s.source_event_id.clone(),
            subscription: Some(s.clone()),
            ..Default::default()
        };
        store.apply_billing_event(&app, t).await.expect("apply");
    }
    assert_eq!(store.current_subscription(a).await.expect("a").map(|s| s.id).as_deref(), Some("sub_old"));
    assert_eq!(store.current_subscription(b).await.expect("b"), None);
    record(&store, &provider_event("evt_3", "customer.subscription.deleted", t + Span::seconds(9))).await;
    let mut ended = sub(a, "sub_old", SubscriptionStatus::Canceled, "evt_3", t + Span::seconds(9));
    ended.created_at = t;
    let app = BillingApplication { event_id: "evt_3".into(), subscription: Some(ended), ..Default::default() };
    assert!(store.apply_billing_event(&app, t).await.expect("apply").subscription_changed);
    assert_eq!(store.current_subscription(a).await.expect("a").map(|s| s.id).as_deref(), Some("sub_new"));
    assert!(billing_events(&events_of(&store, a).await).contains(&EventType::BILLING_SUBSCRIPTION_CANCELED));
}

/// Usage counts the account's channels, contacts and this month's outbound messages.
pub async fn usage_counts_the_account_and_the_month(store: Arc<dyn Store>) {
    let a = new_account(&store, "a").await;
    let b = new_account(&store, "b").await;
    let c1 = contact(a, "Ana", &super::phone(1));
    let c2 = contact(a, "Bia", &super::phone(2));
    insert(&store, &c1).await;
    insert(&store, &c2).await;
    insert(&store, &contact(b, "Caio", &super::phone(3))).await;
    for text in ["one", "two"] {
        let m = outbound(&c1, text);
        store.insert_message(&m, &super::ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert_message");
    }
    let start = crate::domain::billing::month_start(now());
    let usage = store.billing_usage(a, start).await.expect("usage");
    assert_eq!((usage.channels, usage.contacts, usage.messages_this_month), (0, 2, 2));
    let later = store.billing_usage(a, now() + Span::days(1)).await.expect("usage");
    assert_eq!(later.messages_this_month, 0, "messages before the month start are not counted");
    assert_eq!(store.billing_usage(b, start).await.expect("b").contacts, 1);
}

//! Stripe webhooks end to end on every store (memory, SQLite, PostgreSQL
//! with `CRM_TEST_DATABASE_URL`): verified and stored once before the
//! answer, applied once by the `billing.apply` worker, replays, concurrent
//! deliveries and applications, out-of-order events; and headers made by
//! Stripe's own Node library (`CRM_TEST_STRIPE_NODE`) verified by ours.
#![allow(clippy::unwrap_used)]

mod support;

use chrono::Utc;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use crm_billing::{BillingService, BillingSettings, StripeBilling, signature};
use crm_core::domain::billing::{Limited, Plan, PlanLimits, SubscriptionStatus};
use crm_core::ports::billing::APPLY_BILLING_EVENT_JOB;
use crm_core::workers::{JobWorker, Outcome};
use crm_core::{Account, AccountId, Contact, Event, EventType, MemoryStore, NewContact, Store, SystemClock};
use support::fixture;

const SECRET: &str = "whsec_test_secret";

fn service(store: Arc<dyn Store>) -> BillingService {
    let stripe = StripeBilling::builder().secret_key("sk_test_123456").webhook_secret(SECRET).build().unwrap();
    let settings = BillingSettings {
        plans: vec![Plan {
            id: "pro".into(),
            price_ids: vec!["price_1MowQULkdIwHu7ixraBm864M".into()],
            limits: PlanLimits { contacts: Some(1), ..Default::default() },
        }],
        free: PlanLimits { contacts: Some(0), ..Default::default() },
        guard: true,
    };
    BillingService::new(store, Arc::new(stripe), Arc::new(SystemClock), settings)
}

fn subscription_event(id: &str, kind: &str, created: i64, account: &str, status: &str) -> Value {
    let mut object: Value = serde_json::from_str(&fixture("subscription.json", account)).unwrap();
    object["status"] = json!(status);
    json!({ "id": id, "object": "event", "api_version": "2025-03-31.basil", "created": created,
            "data": { "object": object }, "livemode": false, "type": kind })
}

async fn deliver(service: &BillingService, event: &Value) -> crm_core::Result<crm_billing::Received> {
    let body = serde_json::to_vec(event).unwrap();
    let header = signature::sign(&[SECRET], Utc::now().timestamp(), &body);
    service.receive_webhook(&body, Some(&header)).await
}

/// Claims and runs every due `billing.apply` job once; the outcomes.
async fn drain(store: &Arc<dyn Store>, service: &BillingService) -> Vec<Outcome> {
    let applier = service.applier();
    let mut outcomes = Vec::new();
    let claims = store.claim_jobs(&[APPLY_BILLING_EVENT_JOB.to_owned()], 100, Duration::from_secs(30)).await.unwrap();
    for c in claims {
        let o = applier.run(&c.job).await;
        match &o {
            Outcome::Done => store.complete_job(&c.token).await.unwrap(),
            _ => store.retry_job(&c.token, Duration::from_secs(3600), "test").await.unwrap(),
        }
        outcomes.push(o);
    }
    outcomes
}

async fn billing_events(store: &Arc<dyn Store>, account: AccountId) -> Vec<Event> {
    let all = store.list_events(account, None, 1000).await.unwrap();
    all.into_iter().filter(|e| e.event_type.as_str().starts_with("billing.")).collect()
}

async fn account(store: &Arc<dyn Store>, name: &str) -> AccountId {
    let a = Account::new(name, Utc::now()).unwrap();
    store.create_account(&a, &Event::new(a.id, EventType::ACCOUNT_CREATED, &json!({}), Utc::now())).await.unwrap();
    a.id
}

/// The whole webhook story on one store.
async fn webhook_story(store: Arc<dyn Store>) {
    let service = service(store.clone());
    let id = account(&store, "Loja da Ana").await;
    let a = id.to_string();

    // Out of order: the update (later) arrives before the creation (earlier).
    let updated = subscription_event("evt_sub_updated", "customer.subscription.updated", 1_700_000_100, &a, "active");
    let created =
        subscription_event("evt_sub_created", "customer.subscription.created", 1_700_000_000, &a, "incomplete");
    let checkout: Value = serde_json::from_str(&fixture("event_checkout_completed.json", &a)).unwrap();
    let paid: Value = serde_json::from_str(&fixture("event_invoice_paid.json", &a)).unwrap();
    let unknown = json!({ "id": "evt_unknown", "object": "event", "type": "charge.refunded", "created": 1_700_000_000, "data": { "object": {} } });
    for e in [&updated, &created, &checkout, &paid, &unknown] {
        assert!(!deliver(&service, e).await.unwrap().duplicate);
    }
    // Replays are answered and stored once.
    for e in [&updated, &created, &checkout] {
        assert!(deliver(&service, e).await.unwrap().duplicate);
    }
    // Stored, not yet applied: a crash now loses nothing.
    assert!(store.get_billing_event("evt_sub_updated").await.unwrap().applied_at.is_none());
    assert_eq!(store.job_stats(APPLY_BILLING_EVENT_JOB).await.unwrap().depth, 5);

    let outcomes = drain(&store, &service).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
    let sub = store.current_subscription(id).await.unwrap().unwrap();
    assert_eq!((sub.status, sub.source_event_id.as_str()), (SubscriptionStatus::Active, "evt_sub_updated"));
    assert_eq!(store.billing_customer(id).await.unwrap().as_deref(), Some("cus_NffrFeUfNV2Hib"));
    let kinds: Vec<String> = billing_events(&store, id).await.iter().map(|e| e.event_type.to_string()).collect();
    assert_eq!(kinds, ["billing.subscription_created", "billing.checkout_completed", "billing.invoice_paid"]);
    let invoice = billing_events(&store, id).await.pop().unwrap().payload;
    assert_eq!((invoice["amount"].as_i64(), invoice["currency"].as_str()), (Some(4990), Some("BRL")));
    assert_eq!(invoice["subscription_id"], "sub_1MowQVLkdIwHu7ixeRlqHVzs");
    assert!(
        store.get_billing_event("evt_unknown").await.unwrap().applied_at.is_some(),
        "unknown types are acknowledged"
    );

    // Applying an applied event again changes nothing.
    assert_eq!(service.applier().apply("evt_sub_updated").await, Outcome::Done);
    assert_eq!(billing_events(&store, id).await.len(), 3);

    // The plan from the price; its limit enforced by the guard.
    let view = service.view(id).await.unwrap();
    assert!(view.entitled && view.plan.as_deref() == Some("pro") && view.enforced);
    service.check_limit(id, Limited::Contacts).await.unwrap();
    let c = Contact::new(
        id,
        NewContact { name: "João".into(), phone: "+5511987654321".into(), ..Default::default() },
        Utc::now(),
    )
    .unwrap();
    store.insert_contact(&c, &Event::new(id, EventType::CONTACT_CREATED, &json!({}), Utc::now())).await.unwrap();
    let limited = service.check_limit(id, Limited::Contacts).await.unwrap_err();
    assert!(
        matches!(&limited, crm_core::Error::Forbidden { reason } if reason.contains("contacts (1 of 1)")),
        "{limited:?}"
    );

    // A failed invoice (the 2018 API version's shape, account from the customer link).
    let failed: Value = serde_json::from_str(&fixture("event_invoice_failed.json", &a)).unwrap();
    deliver(&service, &failed).await.unwrap();
    assert_eq!(drain(&store, &service).await, vec![Outcome::Done]);
    let last = billing_events(&store, id).await.pop().unwrap();
    assert_eq!(last.event_type, EventType::BILLING_INVOICE_PAYMENT_FAILED);
    assert_eq!(last.payload["subscription_id"], "sub_1MowQVLkdIwHu7ixeRlqHVzs");

    // Eight deliveries of one deletion at once: stored once; eight workers
    // applying it at once: one cancellation event.
    let deleted = subscription_event("evt_sub_deleted", "customer.subscription.deleted", 1_700_000_200, &a, "canceled");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (service, deleted) = (service.clone(), deleted.clone());
        tasks.push(tokio::spawn(async move { deliver(&service, &deleted).await }));
    }
    let mut firsts = 0;
    for t in tasks {
        if !t.await.unwrap().unwrap().duplicate {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let applier = service.applier();
        tasks.push(tokio::spawn(async move { applier.apply("evt_sub_deleted").await }));
    }
    for t in tasks {
        let o = t.await.unwrap();
        assert!(matches!(o, Outcome::Done | Outcome::Retry { .. }), "{o:?}");
    }
    // Whatever lost a race retries and finds it applied.
    assert_eq!(service.applier().apply("evt_sub_deleted").await, Outcome::Done);
    let cancels = billing_events(&store, id)
        .await
        .iter()
        .filter(|e| e.event_type == EventType::BILLING_SUBSCRIPTION_CANCELED)
        .count();
    assert_eq!(cancels, 1);
    let view = service.view(id).await.unwrap();
    assert!(!view.entitled && view.plan.is_none());
    // A late update of the canceled subscription changes nothing (canceled is terminal).
    let late = subscription_event("evt_sub_late", "customer.subscription.updated", 1_700_000_300, &a, "active");
    deliver(&service, &late).await.unwrap();
    assert!(service.applier().apply("evt_sub_late").await == Outcome::Done);
    assert_eq!(store.current_subscription(id).await.unwrap().unwrap().status, SubscriptionStatus::Canceled);

    // An event whose account cannot be known (no metadata, unknown customer) is retried, not dropped.
    let mut stray = subscription_event("evt_stray", "customer.subscription.updated", 1_700_000_000, &a, "active");
    stray["data"]["object"]["metadata"] = json!({});
    stray["data"]["object"]["customer"] = json!("cus_nobody");
    deliver(&service, &stray).await.unwrap();
    assert!(matches!(service.applier().apply("evt_stray").await, Outcome::Retry { .. }));
    assert!(store.get_billing_event("evt_stray").await.unwrap().applied_at.is_none());
}

#[tokio::test]
async fn webhooks_on_memory() {
    webhook_story(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("crm-billing-{}", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    webhook_story(Arc::new(crm_storage::SqliteStore::connect(&url).await.unwrap())).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_on_postgres() {
    let Some(url) = crm_core::testing::service_url("CRM_TEST_DATABASE_URL", "crm-billing webhooks_on_postgres") else {
        return;
    };
    let schema = format!("crm_billing_{}", uuid::Uuid::now_v7().simple());
    let store = crm_storage::PgStore::connect_with_schema(&url, &schema).await.unwrap();
    webhook_story(Arc::new(store.clone())).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE"))).execute(store.pool()).await.unwrap();
}

#[tokio::test]
async fn refused_webhooks_store_nothing() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let service = service(store.clone());
    let body =
        serde_json::to_vec(&json!({ "id": "evt_x", "object": "event", "type": "invoice.paid", "created": 1 })).unwrap();
    let now = Utc::now().timestamp();
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing"),
        (Some(String::new()), "empty"),
        (Some("t=abc".into()), "not t="),
        (Some(format!("t={now}")), "no v1"),
        (Some(signature::sign(&[SECRET], now - 301, &body)), "outside the tolerance"),
        (Some(signature::sign(&["whsec_other"], now, &body)), "no v1 signature matches"),
    ];
    for (header, why) in cases {
        let err = service.receive_webhook(&body, header.as_deref()).await.unwrap_err();
        assert!(
            matches!(&err, crm_core::Error::Validation { field, reason } if field == "signature" && reason.contains(why)),
            "{why}: {err:?}"
        );
    }
    // Signed, but not a Stripe event.
    let junk = b"[1,2,3]";
    let err = service.receive_webhook(junk, Some(&signature::sign(&[SECRET], now, junk))).await.unwrap_err();
    assert!(matches!(&err, crm_core::Error::Validation { field, .. } if field == "body"), "{err:?}");
    assert!(store.get_billing_event("evt_x").await.is_err());
    assert_eq!(store.job_stats(APPLY_BILLING_EVENT_JOB).await.unwrap().depth, 0);
}

/// Headers generated by Stripe's Node library (`stripe@23`,
/// `webhooks.generateTestHeaderString`) pass our verification; with another
/// secret they do not.
#[tokio::test]
async fn headers_from_stripes_node_library_verify() {
    let Some(script) = crm_core::testing::service_url("CRM_TEST_STRIPE_NODE", "crm-billing stripe node headers") else {
        return;
    };
    let body = fixture("event_invoice_paid.json", &AccountId::new().to_string());
    let out = std::process::Command::new("node")
        .arg(&script)
        .env("STRIPE_PAYLOAD", &body)
        .env("STRIPE_SECRET", SECRET)
        .output()
        .expect("run node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let header = String::from_utf8(out.stdout).unwrap();
    assert!(header.starts_with("t=") && header.contains(",v1="), "{header}");
    let secrets = [SECRET.to_owned()];
    signature::verify(body.as_bytes(), Some(&header), &secrets, signature::DEFAULT_TOLERANCE, Utc::now()).unwrap();
    let rotated = ["whsec_new".to_owned(), SECRET.to_owned()];
    signature::verify(body.as_bytes(), Some(&header), &rotated, signature::DEFAULT_TOLERANCE, Utc::now()).unwrap();
    let other = ["whsec_other".to_owned()];
    assert_eq!(
        signature::verify(body.as_bytes(), Some(&header), &other, signature::DEFAULT_TOLERANCE, Utc::now()),
        Err(signature::SignatureError::Mismatch)
    );
    // Through the service: stored.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let received = service(store.clone()).receive_webhook(body.as_bytes(), Some(&header)).await.unwrap();
    assert_eq!(received.event_id, "evt_1NG8Du2eZvKYlo2CInvPaid1");
}

//! Scale-out: three worker runtimes, each with its own connection pool to
//! one PostgreSQL database (as three processes would be), deliver a burst
//! of events to one endpoint: every event arrives, every delivery takes
//! exactly one attempt, and the three share the work.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crm_core::secrets::{Keyring, SecretKey};
use crm_core::workers::{Runtime, WorkerOptions};
use crm_core::{Crm, DeliveryQuery, DeliveryStatus, NewContact, PageRequest, RecordingMessenger, Store};
use crm_storage::PgStore;
use crm_webhooks::{AddressPolicy, Deliverer, FanOut, NewEndpoint, WebhookSettings, Webhooks};

use crate::receiver::{Receiver, verifies};

const EVENTS: usize = 3000;

fn fast(mut o: WorkerOptions) -> WorkerOptions {
    o.poll = Duration::from_millis(10);
    o.max_poll = Duration::from_millis(50);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_runtimes_on_one_postgres_share_the_work_and_attempt_once() {
    let Some(url) = crm_core::testing::service_url("CRM_TEST_DATABASE_URL", "webhooks scale-out") else { return };
    let schema = format!("wh_scale_{}", uuid::Uuid::now_v7().simple());
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(PgStore::connect_with_schema(&url, &schema).await.expect("PostgreSQL")));
    }
    let keyring = Keyring::new(SecretKey::generate("scale").expect("key"));
    let settings = || WebhookSettings {
        policy: AddressPolicy::strict().allow_list("127.0.0.0/8").expect("allow-list"),
        per_endpoint_concurrency: 16,
        ..WebhookSettings::default()
    };
    let hooks: Vec<Webhooks> =
        stores.iter().map(|s| Webhooks::new(s.clone(), keyring.clone()).settings(settings())).collect();
    let receiver = Receiver::start().await;
    let crm =
        Crm::builder().store(stores[0].clone()).messenger(Arc::new(RecordingMessenger::new())).build().expect("crm");
    let account = crm.create_account("Scale").await.expect("account").id;
    let input = NewEndpoint {
        url: receiver.url(),
        event_types: Some(vec!["contact.created".into()]),
        ..NewEndpoint::default()
    };
    let (endpoint, secret) = hooks[0].create_endpoint(account, input).await.expect("endpoint");
    let mut runtimes = Vec::new();
    for (store, h) in stores.iter().zip(&hooks) {
        let rt = Runtime::builder(store.clone())
            .event_worker(Arc::new(FanOut::new(h.clone())), fast(FanOut::options()))
            .job_worker(Arc::new(Deliverer::new(h.clone()).expect("deliverer")), fast(Deliverer::options()))
            .build()
            .start()
            .await
            .expect("runtime");
        runtimes.push(rt);
    }
    for batch in 0..EVENTS / 1000 {
        let rows = (0..1000)
            .map(|i| NewContact {
                name: format!("C{batch}-{i}"),
                phone: format!("+55119{:08}", batch * 1000 + i),
                ..Default::default()
            })
            .collect();
        let report = crm.import_contacts(account, rows).await.expect("import");
        assert_eq!(report.imported, 1000, "{report:?}");
    }
    for _ in 0..1500 {
        if receiver.received().len() >= EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.received();
    let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), EVENTS, "every event delivered");
    assert_eq!(got.len(), EVENTS, "and each exactly once: no attempt made twice");
    assert!(got.iter().all(|r| verifies(r, &secret)), "every request signed");
    let mut query = DeliveryQuery {
        endpoint_id: Some(endpoint.id),
        event_id: None,
        status: None,
        page: PageRequest::first(200).expect("limit"),
    };
    let mut total = 0;
    loop {
        let page = hooks[0].deliveries(account, &query).await.expect("deliveries");
        for d in &page.items {
            assert_eq!((d.status, d.attempts), (DeliveryStatus::Succeeded, 1), "{d:?}");
        }
        total += page.items.len();
        match page.next_cursor {
            Some(c) => query.page = PageRequest::new(Some(&c), 200).expect("cursor"),
            None => break,
        }
    }
    assert_eq!(total, EVENTS);
    let mut shares = Vec::new();
    for rt in &runtimes {
        let stats = rt.stats().await;
        let deliver = stats.iter().find(|s| s.name == "jobs:webhook.deliver").expect("deliverer stats");
        shares.push(deliver.done);
        rt.shutdown(Duration::from_secs(5)).await;
    }
    println!("attempts per runtime: {shares:?}");
    assert!(shares.iter().all(|n| *n > 0), "the three share the work: {shares:?}");
    assert_eq!(shares.iter().sum::<u64>(), EVENTS as u64, "{shares:?}");
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
        .execute(&pool)
        .await
        .expect("drop schema");
}

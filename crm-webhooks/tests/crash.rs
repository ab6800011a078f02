//! A worker process is killed with SIGKILL while delivering 10,000 events
//! to a receiver on 127.0.0.1; a second one is started. Every event reaches
//! the receiver with a valid signature, no delivery or job is left
//! pending, and the only repeats are attempts the killed process had in
//! flight (at-least-once; receivers deduplicate by `webhook-id`).
//!
//! `harness = false`: started with `CRM_WH_ROLE=worker` this binary is the
//! worker process; otherwise it runs the scenario (PostgreSQL through
//! `CRM_TEST_DATABASE_URL`; skipped loudly without it, a failure under
//! `CRM_TEST_REQUIRE_ALL=1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_core::secrets::{Keyring, SecretKey};
use crm_core::workers::{Runtime, WorkerOptions};
use crm_core::{Crm, DeliveryStatus, NewContact, RecordingMessenger, Store};
use crm_storage::PgStore;
use crm_webhooks::{AddressPolicy, Deliverer, FanOut, NewEndpoint, Verifier, WebhookSettings, Webhooks};

const EVENTS: usize = 10_000;

fn settings() -> WebhookSettings {
    WebhookSettings {
        policy: AddressPolicy::strict().allow_list("127.0.0.0/8").unwrap(),
        per_endpoint_concurrency: 32,
        ..WebhookSettings::default()
    }
}

fn worker() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = std::env::var("CRM_WH_DB").unwrap();
        let schema = std::env::var("CRM_WH_SCHEMA").unwrap();
        let key = SecretKey::parse(&std::env::var("CRM_WH_KEY").unwrap()).unwrap();
        let store: Arc<dyn Store> = Arc::new(PgStore::connect_with_schema(&url, &schema).await.unwrap());
        let hooks = Webhooks::new(store.clone(), Keyring::new(key)).settings(settings());
        let fast = |o: WorkerOptions| WorkerOptions {
            lease: Duration::from_secs(2),
            poll: Duration::from_millis(10),
            max_poll: Duration::from_millis(100),
            ..o
        };
        let _rt = Runtime::builder(store)
            .event_worker(Arc::new(FanOut::new(hooks.clone())), fast(FanOut::options()))
            .job_worker(Arc::new(Deliverer::new(hooks).unwrap()), fast(Deliverer::options()))
            .build()
            .start()
            .await
            .unwrap();
        std::future::pending::<()>().await;
    });
}

type Seen = Arc<Mutex<(HashMap<String, u32>, usize)>>;

fn spawn(url: &str, schema: &str, key: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .env("CRM_WH_ROLE", "worker")
        .env("CRM_WH_DB", url)
        .env("CRM_WH_SCHEMA", schema)
        .env("CRM_WH_KEY", key)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn a worker")
}

async fn scenario() {
    let Some(url) = crm_core::testing::service_url("CRM_TEST_DATABASE_URL", "webhooks crash") else { return };
    let schema = format!("wh_crash_{}", uuid::Uuid::now_v7().simple());
    let store: Arc<dyn Store> = Arc::new(PgStore::connect_with_schema(&url, &schema).await.unwrap());
    let key = SecretKey::generate("crash").unwrap();
    let exported = key.export();
    let hooks = Webhooks::new(store.clone(), Keyring::new(key)).settings(settings());

    // The receiver: checks every signature on the raw body, counts by webhook-id.
    let seen: Seen = Arc::default();
    let verifier: Arc<Mutex<Option<Verifier>>> = Arc::default();
    let (s, v) = (seen.clone(), verifier.clone());
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let (s, v) = (s.clone(), v.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let ok = v.lock().unwrap().as_ref().map(|v| v.verify(&headers, &body));
                let mut g = s.lock().unwrap();
                match ok {
                    Some(Ok(id)) => *g.0.entry(id).or_default() += 1,
                    _ => g.1 += 1,
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let crm = Crm::builder().store(store.clone()).messenger(Arc::new(RecordingMessenger::new())).build().unwrap();
    let account = crm.create_account("Crash").await.unwrap().id;
    let input =
        NewEndpoint { url: hook_url, event_types: Some(vec!["contact.created".into()]), ..NewEndpoint::default() };
    let (endpoint, secret) = hooks.create_endpoint(account, input).await.unwrap();
    *verifier.lock().unwrap() = Some(Verifier::new(&[&secret]).unwrap());
    // A deployment's workers are registered before traffic: events appended
    // before a consumer exists are not queued for it.
    store.register_consumer(crm_webhooks::CONSUMER, &crm_core::EventFilter::all()).await.unwrap();
    let first = spawn(&url, &schema, &exported);
    for batch in 0..EVENTS / 1000 {
        let rows = (0..1000)
            .map(|i| NewContact {
                name: format!("C{i}"),
                phone: format!("+55119{:08}", batch * 1000 + i),
                ..Default::default()
            })
            .collect();
        assert_eq!(crm.import_contacts(account, rows).await.unwrap().imported, 1000);
    }
    let started = Instant::now();
    while seen.lock().unwrap().0.len() < 3000 {
        assert!(started.elapsed() < Duration::from_secs(180), "the first worker made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut first = first;
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = seen.lock().unwrap().0.len();
    let mut second = spawn(&url, &schema, &exported);
    let started = Instant::now();
    loop {
        let delivered = seen.lock().unwrap().0.len();
        let jobs = store.job_stats(crm_webhooks::DELIVER_KIND).await.unwrap();
        let outbox = store.pending(crm_webhooks::CONSUMER).await.unwrap();
        if delivered >= EVENTS && jobs.depth == 0 && outbox == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "stuck: {delivered} delivered, {jobs:?}, outbox {outbox}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    let (counts, bad) = {
        let g = seen.lock().unwrap();
        (g.0.clone(), g.1)
    };
    let twice = counts.values().filter(|n| **n >= 2).count();
    println!(
        "  crash: {EVENTS} events; SIGKILL after {at_kill} delivered; all {} delivered, {twice} twice, \
         {bad} bad signatures",
        counts.len()
    );
    assert_eq!(bad, 0, "every request verifies");
    assert_eq!(counts.len(), EVENTS, "every event reached the receiver");
    assert!(counts.values().all(|n| *n <= 2), "no event more than twice");
    // Repeats are bounded by what the killed worker had in flight.
    let in_flight = Deliverer::options().concurrency;
    assert!(twice <= in_flight, "{twice} repeats > {in_flight} attempts in flight");
    let q = crm_core::DeliveryQuery {
        endpoint_id: Some(endpoint.id),
        event_id: None,
        status: Some(DeliveryStatus::Pending),
        page: crm_core::PageRequest::first(10).unwrap(),
    };
    assert!(hooks.deliveries(account, &q).await.unwrap().items.is_empty(), "no delivery left pending");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}

fn main() {
    if std::env::var("CRM_WH_ROLE").as_deref() == Ok("worker") {
        worker();
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let started = Instant::now();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(scenario()))) {
        Ok(()) => println!(
            "test sigkill_mid_delivery ... ok ({:.1} s)\n\n1 passed, 0 failed",
            started.elapsed().as_secs_f64()
        ),
        Err(_) => {
            println!("test sigkill_mid_delivery ... FAILED\n\n0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}

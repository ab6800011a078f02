//! Signed deliveries per second from the PostgreSQL outbox beside a raw
//! reqwest POST loop to the same local receiver, in the same run; then
//! enqueue → delivered latency (p50/p99) at a fixed rate.
//!
//! `CRM_BENCH_DATABASE_URL=postgres://… cargo bench -p crm-webhooks --bench delivery`
//! (prints a note and exits without it). Results go in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_core::secrets::{Keyring, SecretKey};
use crm_core::workers::{EventWorker, Runtime, WorkerOptions};
use crm_core::{Crm, NewContact, RecordingMessenger, Store};
use crm_storage::PgStore;
use crm_webhooks::{AddressPolicy, Deliverer, FanOut, NewEndpoint, WebhookSettings, Webhooks};

const N: usize = 5000;

#[derive(Default)]
struct Inbox {
    count: usize,
    latencies_ms: Vec<f64>,
}

async fn receiver() -> (String, Arc<Mutex<Inbox>>) {
    let inbox: Arc<Mutex<Inbox>> = Arc::default();
    let keep = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: Bytes| {
            let keep = keep.clone();
            async move {
                let now = chrono::Utc::now();
                let sent = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| {
                    v["timestamp"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                });
                let mut g = keep.lock().unwrap();
                g.count += 1;
                if let Some(t) = sent {
                    g.latencies_ms.push((now - t).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

async fn wait(inbox: &Arc<Mutex<Inbox>>, n: usize) {
    while inbox.lock().unwrap().count < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn contacts(from: usize, n: usize) -> Vec<NewContact> {
    (from..from + n)
        .map(|i| NewContact { name: format!("C{i}"), phone: format!("+55119{i:08}"), ..Default::default() })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let Ok(url) = std::env::var("CRM_BENCH_DATABASE_URL") else {
        println!("set CRM_BENCH_DATABASE_URL=postgres://… to run the webhook delivery benchmark");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        // 1. The baseline: a raw reqwest POST loop, 64 at once, same receiver.
        let (hook, inbox) = receiver().await;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let body = br#"{"type":"contact.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":"x"}}"#.to_vec();
        let started = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (c, h, b, permit) =
                (client.clone(), hook.clone(), body.clone(), sem.clone().acquire_owned().await.unwrap());
            tasks.push(tokio::spawn(async move {
                let _p = permit;
                c.post(h).header("content-type", "application/json").body(b).send().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let raw = N as f64 / started.elapsed().as_secs_f64();
        println!("raw reqwest POST loop (64 concurrent): {raw:.0} requests/s");

        // 2. Signed deliveries from the PostgreSQL outbox, one worker runtime.
        let schema = format!("wh_bench_{}", uuid::Uuid::now_v7().simple());
        let store: Arc<dyn Store> = Arc::new(PgStore::connect_with_schema(&url, &schema).await.unwrap());
        let settings = WebhookSettings {
            policy: AddressPolicy::strict().allow_list("127.0.0.0/8").unwrap(),
            per_endpoint_concurrency: 64,
            ..WebhookSettings::default()
        };
        let hooks =
            Webhooks::new(store.clone(), Keyring::new(SecretKey::generate("bench").unwrap())).settings(settings);
        let crm = Crm::builder().store(store.clone()).messenger(Arc::new(RecordingMessenger::new())).build().unwrap();
        let account = crm.create_account("Bench").await.unwrap().id;
        let (hook, inbox2) = receiver().await;
        let input =
            NewEndpoint { url: hook, event_types: Some(vec!["contact.created".into()]), ..NewEndpoint::default() };
        hooks.create_endpoint(account, input).await.unwrap();
        drop(inbox);
        // Events first (the outbox holds N), then the workers start: the
        // drain rate. The fan-out consumer is registered before the events,
        // as a server does at start, so each one is queued for it.
        let fan_out = FanOut::new(hooks.clone());
        store.register_consumer(fan_out.name(), &fan_out.events()).await.unwrap();
        crm.import_contacts(account, contacts(0, N)).await.unwrap();
        let fast = |o: WorkerOptions| WorkerOptions {
            poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(20),
            ..o
        };
        let started = Instant::now();
        let runtime = Runtime::builder(store.clone())
            .event_worker(Arc::new(fan_out), fast(FanOut::options()))
            .job_worker(Arc::new(Deliverer::new(hooks.clone()).unwrap()), fast(Deliverer::options()))
            .build()
            .start()
            .await
            .unwrap();
        wait(&inbox2, N).await;
        let signed = N as f64 / started.elapsed().as_secs_f64();
        println!(
            "signed deliveries from the PostgreSQL outbox: {signed:.0} deliveries/s ({:.2}× the raw loop)",
            signed / raw
        );

        // 3. Enqueue → delivered at a fixed rate: 100 events/s for 10 s.
        inbox2.lock().unwrap().latencies_ms.clear();
        let base = N;
        for i in 0..100 {
            let tick = Instant::now();
            for j in 0..10 {
                crm.create_contact(account, contacts(base + i * 10 + j, 1).remove(0)).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed())).await;
        }
        wait(&inbox2, N + 1000).await;
        let mut l = inbox2.lock().unwrap().latencies_ms.clone();
        l.sort_by(|a, b| a.total_cmp(b));
        println!(
            "enqueue → delivered at 100 events/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} events)",
            percentile(&l, 0.5),
            percentile(&l, 0.99),
            l.last().copied().unwrap_or(0.0),
            l.len()
        );
        runtime.shutdown(Duration::from_secs(5)).await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
    });
}

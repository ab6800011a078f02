//! Scale-out, as users who outgrow one machine run it: three `crm-server
//! worker` processes on loopback share one PostgreSQL. 10,000 events are
//! published to one endpoint; every event reaches the receiver signed, every
//! attempt is made exactly once, and each process delivered a share (read
//! from its own `/metrics`). A binary of its own: its processes need the
//! machine's cores and PostgreSQL connections without other tests beside it.
#![cfg(all(feature = "webhooks", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use crm_core::secrets::{Keyring, SecretKey};
use crm_core::{Crm, NewContact, RecordingMessenger, Store};
use crm_storage::PgStore;
use crm_webhooks::{AddressPolicy, NewEndpoint, WebhookSettings, Webhooks};
use std::sync::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_crm-server");
const EVENTS: usize = 10_000;
const PROCESSES: usize = 3;

type Inbox = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on 127.0.0.1 that keeps every request and answers 204.
async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let keep = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().expect("lock").push((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

/// `url` with a fresh, migrated schema of its own as the search path.
async fn pg_schema_url(url: &str) -> String {
    let schema = format!("crm_scale_{}", uuid::Uuid::now_v7().simple());
    let store = PgStore::connect_with_schema(url, &schema).await.expect("create schema");
    store.pool().close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// One `crm-server worker` process and the address of its `/metrics`.
struct WorkerProcess {
    child: Child,
    metrics: String,
}

/// Starts `crm-server worker` on `url` with the keyring `keys`, and waits
/// for the line that names its system listener.
async fn start_worker(url: &str, keys: &str) -> WorkerProcess {
    let mut child = Command::new(BIN)
        .arg("worker")
        .env_clear()
        .env("DATABASE_URL", url)
        .env("CRM_SECRET_KEYS", keys)
        .env("CRM_WORKER_LISTEN", "127.0.0.1:0")
        .env("CRM_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8")
        // Three processes beside the parallel tests must fit PostgreSQL's
        // 100 connections.
        .env("CRM_DATABASE_POOL_SIZE", "3")
        // Under load the small pools log slow acquisitions; errors only.
        .env("RUST_LOG", "error")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start crm-server worker");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the worker starts within a minute")
        .expect("read stdout")
        .expect("a line on stdout");
    assert!(line.contains("webhook"), "the worker runs the webhook workers: {line}");
    let metrics = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|base| format!("{base}/metrics"))
        .unwrap_or_else(|| panic!("no listener address in {line:?}"));
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    WorkerProcess { child, metrics }
}

/// `crm_worker_items_total{worker="jobs:webhook.deliver",result="done"}`
/// from one process's metrics.
async fn delivered_by(http: &reqwest::Client, metrics: &str) -> u64 {
    let text = http.get(metrics).send().await.expect("GET /metrics").text().await.expect("metrics body");
    text.lines()
        .find(|l| l.starts_with("crm_worker_items_total{worker=\"jobs:webhook.deliver\",result=\"done\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map(|n| n.parse().expect("a counter"))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_worker_processes_on_one_postgres_deliver_every_event_once_and_share_the_work() {
    let Some(base) = crm_core::testing::service_url("CRM_TEST_DATABASE_URL", "webhooks scale-out (3 processes)") else {
        return;
    };
    let url = pg_schema_url(&base).await;
    let key = SecretKey::generate("scale").expect("key");
    let keys = key.export();
    let store: Arc<dyn Store> = Arc::new(PgStore::connect_with_pool(&url, 4).await.expect("PostgreSQL"));
    let crm = Crm::builder().store(store.clone()).messenger(Arc::new(RecordingMessenger::new())).build().expect("crm");
    let account = crm.create_account("Scale-out").await.expect("account").id;
    let hooks = Webhooks::new(store.clone(), Keyring::new(key)).settings(WebhookSettings {
        policy: AddressPolicy::strict().allow_list("127.0.0.0/8").expect("allow-list"),
        ..WebhookSettings::default()
    });
    let (receiver, inbox) = receiver().await;
    let input =
        NewEndpoint { url: receiver, event_types: Some(vec!["contact.created".into()]), ..NewEndpoint::default() };
    let (endpoint, secret) = hooks.create_endpoint(account, input).await.expect("endpoint");

    let mut workers = Vec::new();
    for _ in 0..PROCESSES {
        workers.push(start_worker(&url, &keys).await);
    }
    let started = Instant::now();
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
    let deadline = Instant::now() + Duration::from_secs(600);
    while inbox.lock().expect("lock").len() < EVENTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A moment more, so a second attempt of anything would show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    let got = inbox.lock().expect("lock").clone();
    let ids: HashSet<String> = got
        .iter()
        .map(|(h, _)| h.get("webhook-id").and_then(|v| v.to_str().ok()).expect("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), EVENTS, "every event delivered");
    assert_eq!(got.len(), EVENTS, "each attempt made once: no event delivered twice");
    // Verified after the run, so the timestamps' tolerance is widened to
    // the run's length; the signatures must all match.
    let verifier =
        crm_webhooks::Verifier::new(&[secret.as_str()]).expect("secret").tolerance(Duration::from_secs(3600));
    let bad: Vec<_> = got.iter().filter_map(|(h, b)| verifier.verify(h, b).err()).take(3).collect();
    assert!(bad.is_empty(), "every request signed with the endpoint's secret: {bad:?}");

    let http = reqwest::Client::new();
    let mut shares = Vec::new();
    for w in &workers {
        shares.push(delivered_by(&http, &w.metrics).await);
    }
    println!("{EVENTS} events through {PROCESSES} processes in {elapsed:?}; deliveries per process: {shares:?}");
    assert_eq!(shares.iter().sum::<u64>(), EVENTS as u64, "the processes' counters add up: {shares:?}");
    assert!(shares.iter().all(|n| *n > 0), "the three share the work: {shares:?}");
    let stats = store.job_stats("webhook.deliver").await.expect("stats");
    assert_eq!(stats.dead, 0, "nothing dead: {stats:?}");

    for mut w in workers {
        w.child.kill().await.expect("stop the worker process we started");
    }
    drop(endpoint);
}

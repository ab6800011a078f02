//! Worker processes against a real store, the way a deployment runs them:
//!
//! - **crash**: a worker process is killed with SIGKILL while dispatching
//!   5,000 messages through a slow mock provider; after a restart every
//!   message ends `sent` or `failed` with a reason, none stays `queued`, and
//!   the provider saw each at most twice (with the provider lookup on, the
//!   restarted worker asks before sending again, so none twice).
//! - **three workers**: three processes on one PostgreSQL dispatch 10,000
//!   messages; each is sent exactly once.
//!
//! This binary has its own `main` (`harness = false`): started with
//! `CRM_PROC_ROLE=worker` it is a worker process; otherwise it runs the
//! scenarios and prints `N passed, N failed`. PostgreSQL scenarios need
//! `CRM_TEST_DATABASE_URL` (skipped loudly without it; a failure under
//! `CRM_TEST_REQUIRE_ALL=1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crm::secrets::Credentials;
use crm::{
    Crm, MessageContent, MessageId, MessageStatus, NewChannel, NewContact, Pacing, PageRequest, SendRequest, Store,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{MockFactory, MockProvider, spawn_worker};

fn main() {
    if support::worker_main() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut passed = 0;
    let mut failed = 0;
    let scenarios: Vec<(&str, fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>)> = vec![
        ("crash_on_sqlite_with_lookup", || Box::pin(crash_on_sqlite(true))),
        ("crash_on_sqlite_without_lookup", || Box::pin(crash_on_sqlite(false))),
        ("crash_on_postgres", || Box::pin(crash_on_postgres())),
        ("three_workers_on_postgres", || Box::pin(three_workers_on_postgres())),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for (name, scenario) in scenarios {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(scenario())));
        match result {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:.1} s)", started.elapsed().as_secs_f64());
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Kills the child (SIGKILL on unix) and reaps it.
fn kill(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

struct Fixture {
    crm: Crm,
    store: Arc<dyn Store>,
    account: crm::AccountId,
    ids: Vec<MessageId>,
}

/// An account with a `mock-http` channel and `n` contacts, one message queued to each.
async fn fixture(url: &str, mock: &MockProvider, lookup: bool, n: u32) -> Fixture {
    let store: Arc<dyn Store> = crm::storage::connect(url).await.unwrap();
    let crm = Crm::builder().store(store.clone()).messenger_factory(Arc::new(MockFactory)).build().unwrap();
    let account = crm.create_account("Loja").await.unwrap().id;
    let channel = NewChannel {
        kind: support::KIND.into(),
        name: "mock".into(),
        settings: Some(json!({ "base_url": mock.base, "lookup": lookup })),
        pacing: Some(Pacing { pair_interval_secs: Some(0), ..Default::default() }),
        credentials: None::<Credentials>,
        ..Default::default()
    };
    crm.create_channel(account, channel).await.unwrap();
    let rows: Vec<NewContact> = (0..n)
        .map(|i| NewContact {
            name: format!("Cliente {i}"),
            phone: format!("+55119{:08}", 10_000_000 + i),
            ..Default::default()
        })
        .collect();
    let report = crm.import_contacts(account, rows).await.unwrap();
    assert_eq!(report.imported, n as usize, "{:?}", report.rejected.first());
    let mut contacts = Vec::new();
    let mut page = PageRequest::first(200).unwrap();
    loop {
        let q = crm::ContactQuery { page: page.clone(), ..Default::default() };
        let got = crm.list_contacts(account, &q).await.unwrap();
        contacts.extend(got.items.iter().map(|c| c.id));
        match got.next_cursor {
            Some(c) => page = PageRequest::new(Some(&c), 200).unwrap(),
            None => break,
        }
    }
    // Queue from 16 tasks at once (one transaction per message).
    let chunks: Vec<Vec<crm::ContactId>> = contacts.chunks(contacts.len().div_ceil(16)).map(<[_]>::to_vec).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let crm = crm.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for c in chunk {
                let q = crm.queue_message(account, SendRequest::new(c, MessageContent::text("Promoção de hoje"))).await;
                ids.push(q.unwrap().message.id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    Fixture { crm, store, account, ids }
}

/// Waits until the dispatcher's queue is empty (at most `limit`).
async fn drained(store: &Arc<dyn Store>, limit: Duration) {
    let started = Instant::now();
    loop {
        if store.pending(crm::DISPATCH_CONSUMER).await.unwrap() == 0 {
            return;
        }
        assert!(started.elapsed() < limit, "still {} queued after {limit:?}", store.pending("dispatch").await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every message is sent or failed with a reason; returns (sent, failed).
async fn outcomes(f: &Fixture) -> (usize, usize) {
    let (mut sent, mut failed) = (0, 0);
    for id in &f.ids {
        let m = f.crm.get_message(f.account, *id).await.unwrap();
        match m.status {
            MessageStatus::Sent => sent += 1,
            MessageStatus::Failed => {
                assert!(m.error.as_ref().is_some_and(|e| !e.reason.is_empty()), "failed without a reason: {m:?}");
                failed += 1;
            }
            other => panic!("message {id} ended {other:?}"),
        }
    }
    (sent, failed)
}

async fn crash(url: &str, label: &str, lookup: bool) {
    const N: u32 = 5_000;
    let mock = MockProvider::start(Duration::from_millis(15)).await;
    let f = fixture(url, &mock, lookup, N).await;
    let lease = Duration::from_secs(2);
    let first = spawn_worker(url, lease, None);
    let started = Instant::now();
    while mock.accepted() < 1_500 {
        assert!(started.elapsed() < Duration::from_secs(120), "the first worker made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(first);
    let at_kill = mock.accepted();
    let second = spawn_worker(url, lease, None);
    drained(&f.store, Duration::from_secs(300)).await;
    kill(second);
    let (sent, failed) = outcomes(&f).await;
    let (once, twice, more) = mock.multiplicity();
    println!(
        "  crash ({label}, provider lookup {}): {N} messages; SIGKILL after {at_kill} accepted; \
         {sent} sent, {failed} failed; the provider saw {once} once, {twice} twice, {more} more often",
        if lookup { "on" } else { "off" }
    );
    assert_eq!(sent + failed, N as usize);
    assert_eq!(more, 0, "no message reached the provider more than twice");
    assert_eq!(once + twice, sent, "every sent message reached the provider");
    if lookup {
        assert_eq!(twice, 0, "with the lookup the restarted worker never sends again");
    }
}

async fn crash_on_sqlite(lookup: bool) {
    let dir = std::env::temp_dir().join(format!("crm-proc-{}", uuid_string()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    crash(&url, "SQLite", lookup).await;
    std::fs::remove_dir_all(dir).ok();
}

async fn pg_database(test: &str) -> Option<String> {
    let base = crm::testing::service_url("CRM_TEST_DATABASE_URL", test)?;
    let schema = format!("crm_proc_{}", uuid_string());
    let store = crm::storage::PgStore::connect_with_schema(&base, &schema).await.unwrap();
    store.pool().close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

async fn crash_on_postgres() {
    let Some(url) = pg_database("crash_on_postgres").await else { return };
    crash(&url, "PostgreSQL", false).await;
}

async fn three_workers_on_postgres() {
    let Some(url) = pg_database("three_workers_on_postgres").await else { return };
    const N: u32 = 10_000;
    let mock = MockProvider::start(Duration::from_millis(2)).await;
    let f = fixture(&url, &mock, false, N).await;
    let started = Instant::now();
    let workers: Vec<_> = (0..3).map(|_| spawn_worker(&url, Duration::from_secs(30), None)).collect();
    drained(&f.store, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    for w in workers {
        kill(w);
    }
    let (sent, failed) = outcomes(&f).await;
    let (once, twice, more) = mock.multiplicity();
    println!(
        "  three workers (PostgreSQL): {N} messages in {:.1} s; {sent} sent, {failed} failed; \
         the provider saw {once} once, {twice} twice, {more} more often",
        elapsed.as_secs_f64()
    );
    assert_eq!((sent, failed), (N as usize, 0));
    assert_eq!((once, twice, more), (N as usize, 0, 0), "each message sent exactly once");
}

fn uuid_string() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

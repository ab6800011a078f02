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

use crm::Pacing;
use std::time::{Duration, Instant};
use support::{MockProvider, drained, fixture, outcomes, spawn_worker};

/// One named scenario: a function starting its future.
type Scenario = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

fn main() {
    if support::worker_main() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut passed = 0;
    let mut failed = 0;
    let scenarios: Vec<(&str, Scenario)> = vec![
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

async fn crash(url: &str, label: &str, lookup: bool) {
    const N: u32 = 5_000;
    let mock = MockProvider::start(Duration::from_millis(15)).await;
    let f = fixture(url, &mock, lookup, N, Pacing { pair_interval_secs: Some(0), ..Default::default() }).await;
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
    let f = fixture(&url, &mock, false, N, Pacing { pair_interval_secs: Some(0), ..Default::default() }).await;
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

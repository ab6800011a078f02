//! Worker processes against a real store, the way a deployment runs them:
//!
//! - **crash**: a worker process is killed with SIGKILL while dispatching
//!   5,000 messages through a slow mock provider; after a restart every
//!   message ends `sent` or `failed` with a reason, none stays `queued`, and
//!   the provider saw each at most twice (with the provider lookup on, the
//!   restarted worker asks before sending again, so none twice).
//! - **three workers**: three processes on one PostgreSQL dispatch 10,000
//!   messages; each is sent exactly once.
//! - **campaign crash**: a worker process running the dispatcher and the
//!   campaign runner and tracker is killed with SIGKILL in the middle of a
//!   10,000-recipient campaign; after a restart the campaign completes, the
//!   provider reached each recipient exactly once, and the counters match.
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
use support::{MockProvider, drained, fixture, outcomes, spawn_campaign_worker, spawn_worker};

/// One scenario: a name and the future that runs it.
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
        ("campaign_crash_on_sqlite", || Box::pin(campaign_crash_on_sqlite())),
        ("campaign_crash_on_postgres", || Box::pin(campaign_crash_on_postgres())),
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

async fn campaign_crash(url: &str, label: &str) {
    const N: u32 = 10_000;
    let mock = MockProvider::start(Duration::from_millis(2)).await;
    let store: std::sync::Arc<dyn crm::Store> = crm::storage::connect(url).await.unwrap();
    let crm = crm::Crm::builder()
        .store(store.clone())
        .messenger_factory(std::sync::Arc::new(support::MockFactory))
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap().id;
    let channel = crm::NewChannel {
        kind: support::KIND.into(),
        name: "mock".into(),
        settings: Some(serde_json::json!({ "base_url": mock.base, "lookup": true })),
        pacing: Some(Pacing { pair_interval_secs: Some(0), ..Default::default() }),
        ..Default::default()
    };
    let channel = crm.create_channel(account, channel).await.unwrap();
    for chunk in (0..N).collect::<Vec<_>>().chunks(5_000) {
        let rows: Vec<crm::NewContact> = chunk
            .iter()
            .map(|i| crm::NewContact {
                name: format!("Cliente {i}"),
                phone: format!("+55119{:08}", 10_000_000 + i),
                tags: vec!["promo".into()],
                ..Default::default()
            })
            .collect();
        assert_eq!(crm.import_contacts(account, rows).await.unwrap().imported, chunk.len());
    }
    let template = crm::NewTemplate { name: "promo".into(), body: "Oi {{first_name}}!".into(), ..Default::default() };
    crm.create_template(account, template).await.unwrap();
    let input = crm::NewCampaign {
        name: "crash".into(),
        channel_id: Some(channel.id),
        template: "promo".into(),
        language: None,
        variables: Default::default(),
        audience: crm::Audience::Tag { tag: crm::Tag::parse("promo").unwrap() },
        scheduled_at: None,
    };
    let campaign = crm.create_campaign(account, input).await.unwrap();
    crm.start_campaign(account, campaign.id).await.unwrap();

    let lease = Duration::from_secs(2);
    let first = spawn_campaign_worker(url, lease);
    let started = Instant::now();
    while mock.accepted() < 3_000 {
        assert!(started.elapsed() < Duration::from_secs(300), "the first worker made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(first);
    let at_kill = crm.get_campaign(account, campaign.id).await.unwrap().counters;
    let second = spawn_campaign_worker(url, lease);
    let view = loop {
        let v = crm.get_campaign(account, campaign.id).await.unwrap();
        if v.campaign.state == crm::CampaignState::Completed {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "not completed: {:?}", v.counters);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    kill(second);
    let (once, twice, more) = mock.recipients();
    let k = view.counters;
    println!(
        "  campaign crash ({label}): {N} recipients; SIGKILL with {} sent, {} in flight, {} pending; \
         after the restart: sent {}, failed {}, skipped {}; the provider reached {once} once, {twice} twice, \
         {more} more often ({:.1} s)",
        at_kill.sent,
        at_kill.in_flight,
        at_kill.pending,
        k.sent,
        k.failed,
        k.skipped,
        started.elapsed().as_secs_f64()
    );
    assert!(at_kill.sent < u64::from(N), "killed mid-way");
    assert_eq!((once, twice, more), (N as usize, 0, 0), "each recipient got it exactly once");
    assert_eq!(mock.accepted(), N as usize, "one message per recipient");
    assert_eq!(
        (k.recipients, k.queued, k.sent, k.failed, k.skipped, k.pending, k.in_flight),
        (10_000, 10_000, 10_000, 0, 0, 0, 0)
    );
    let sent = crm.list_campaign_recipients(account, campaign.id, None, None, 1000).await.unwrap();
    assert!(sent.iter().all(|r| r.message_id.is_some() && r.state == crm::RecipientState::Sent));
}

async fn campaign_crash_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("crm-proc-{}", uuid_string()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    campaign_crash(&url, "SQLite").await;
    std::fs::remove_dir_all(dir).ok();
}

async fn campaign_crash_on_postgres() {
    let Some(url) = pg_database("campaign_crash_on_postgres").await else { return };
    campaign_crash(&url, "PostgreSQL").await;
}

//! The send governor across processes: three worker processes on one
//! PostgreSQL dispatch 10,000 messages through one channel paced at
//! `GOV_RATE` messages a second (default 400), counting in one Redis. The
//! mock provider timestamps every message it accepts; the measured rate is
//! (accepted − 1) / (last − first), compared with the limit, and each
//! message must arrive once.
//!
//! ```text
//! CRM_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//! CRM_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo bench -p crm --bench governor --features postgres,redis,testing
//! ```
//!
//! Env: `GOV_RATE` (messages/s), `GOV_MESSAGES` (default 10000),
//! `GOV_WORKERS` (default 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use crm::Pacing;
use std::time::{Duration, Instant};

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if support::worker_main() {
        return;
    }
    // `cargo bench` passes `--bench`; a plain `cargo test` of benches passes nothing useful.
    let (Ok(db), Ok(redis)) = (std::env::var("CRM_TEST_DATABASE_URL"), std::env::var("CRM_TEST_REDIS_URL")) else {
        println!("SKIPPED governor bench: set CRM_TEST_DATABASE_URL and CRM_TEST_REDIS_URL");
        return;
    };
    let rate = env_u32("GOV_RATE", 400);
    let n = env_u32("GOV_MESSAGES", 10_000);
    let workers = env_u32("GOV_WORKERS", 3);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let schema = format!("crm_gov_{}", std::process::id());
        let store = crm::storage::PgStore::connect_with_schema(&db, &schema).await.unwrap();
        store.pool().close().await;
        let sep = if db.contains('?') { '&' } else { '?' };
        let url = format!("{db}{sep}options=-csearch_path%3D{schema}");
        let mock = support::MockProvider::start(Duration::from_millis(2)).await;
        let pacing = Pacing { per_second: Some(rate), pair_interval_secs: Some(0), ..Default::default() };
        let f = support::fixture(&url, &mock, false, n, pacing).await;
        println!("queued {n} messages; starting {workers} worker processes paced at {rate}/s");
        let started = Instant::now();
        let children: Vec<_> =
            (0..workers).map(|_| support::spawn_worker(&url, Duration::from_secs(30), Some(&redis))).collect();
        support::drained(&f.store, Duration::from_secs(u64::from(n / rate.max(1)) * 3 + 120)).await;
        let wall = started.elapsed();
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let (sent, failed) = support::outcomes(&f).await;
        let (once, twice, more) = mock.multiplicity();
        let seen = mock.seen.lock().unwrap();
        let first = *seen.times.iter().min().unwrap();
        let last = *seen.times.iter().max().unwrap();
        let span = (last - first).as_secs_f64();
        let measured = (seen.times.len() - 1) as f64 / span;
        // The steady rate, without the first second (the allowed burst).
        let steady: Vec<_> = seen.times.iter().filter(|t| (**t - first) >= Duration::from_secs(1)).collect();
        let steady_rate = (steady.len().saturating_sub(1)) as f64
            / (last - **steady.iter().min().unwrap()).as_secs_f64().max(f64::EPSILON);
        println!("governor: {workers} processes, limit {rate}/s, {n} messages ({sent} sent, {failed} failed)");
        println!("  provider saw {once} once, {twice} twice, {more} more often");
        println!(
            "  accepted over {span:.2} s: {measured:.1}/s = {:.2}% of the limit",
            measured / f64::from(rate) * 100.0
        );
        println!(
            "  steady (after the first second): {steady_rate:.1}/s = {:.2}% of the limit",
            steady_rate / f64::from(rate) * 100.0
        );
        println!("  wall time from worker start to drained: {:.2} s", wall.as_secs_f64());
        assert_eq!((once, twice, more), (n as usize, 0, 0), "each message once");
    });
}

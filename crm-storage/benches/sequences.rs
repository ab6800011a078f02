//! Sequence steps per second on PostgreSQL, against a baseline measured in
//! the same run: the same number of bare durable jobs claimed and completed
//! by a no-op worker through the same runtime and options. The difference is
//! what a step costs beyond the job itself (read the enrolment, the sequence
//! and the contact, do the action, record the step with its event and the
//! next job in one transaction).
//!
//! ```text
//! CRM_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \
//!   cargo bench -p crm-storage --features postgres --bench sequences
//! ```
//! `CRM_BENCH_STEPS` sets the count (default 5,000).

use async_trait::async_trait;
use crm_core::workers::{JobWorker, Outcome, Runtime, WorkerOptions};
use crm_core::{
    Clock, ContactQuery, Crm, Job, NewContact, NewSequence, PageRequest, RecordingMessenger, SEQUENCE_STEP_JOB,
    SequenceStep, StepAction, Store, SystemClock,
};
use crm_storage::PgStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Noop(AtomicU64);

#[async_trait]
impl JobWorker for Noop {
    fn kind(&self) -> &str {
        "bench.noop"
    }

    async fn run(&self, _job: &Job) -> Outcome {
        self.0.fetch_add(1, Ordering::Relaxed);
        Outcome::Done
    }
}

fn options() -> WorkerOptions {
    WorkerOptions { poll: Duration::from_millis(10), max_poll: Duration::from_millis(50), ..WorkerOptions::default() }
}

async fn wait_empty(store: &Arc<dyn Store>, kind: &str) {
    loop {
        if store.job_stats(kind).await.expect("stats").depth == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Ok(url) = std::env::var("CRM_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED sequences bench: set CRM_TEST_DATABASE_URL");
        return;
    };
    let n: usize = std::env::var("CRM_BENCH_STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let schema = format!("crm_bench_{}", uuid::Uuid::now_v7().simple());
    let pg = PgStore::connect_with_schema(&url, &schema).await.expect("connect");
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    // Baseline: n bare jobs through the runtime.
    let now = clock.now();
    for _ in 0..n {
        let job = Job::new("bench.noop", None, serde_json::json!({}), now, now).expect("job");
        store.schedule_job(&job).await.expect("schedule");
    }
    let noop = Arc::new(Noop::default());
    let started = Instant::now();
    let rt = Runtime::builder(store.clone()).job_worker(noop.clone(), options()).build().start().await.expect("rt");
    wait_empty(&store, "bench.noop").await;
    let bare = started.elapsed();
    rt.shutdown(Duration::from_secs(5)).await;
    assert_eq!(noop.0.load(Ordering::Relaxed), n as u64);

    // Sequence steps: n enrolments in a one-step sequence (add a tag), due now.
    let crm = Crm::builder().store(store.clone()).messenger(Arc::new(RecordingMessenger::new())).build().expect("crm");
    let account = crm.create_account("Bench").await.expect("account").id;
    let rows = (0..n)
        .map(|i| NewContact { name: format!("Lead {i}"), phone: format!("+55119{i:08}"), ..Default::default() })
        .collect();
    crm.import_contacts(account, rows).await.expect("import");
    let mut ids = Vec::with_capacity(n);
    let mut q = ContactQuery { page: PageRequest::first(200).expect("page"), ..Default::default() };
    loop {
        let page = crm.list_contacts(account, &q).await.expect("list");
        ids.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => q.page = PageRequest::new(Some(&c), 200).expect("cursor"),
            None => break,
        }
    }
    let input = NewSequence {
        name: "bench".into(),
        enabled: true,
        steps: vec![SequenceStep { delay_seconds: 0, action: StepAction::AddTag { tag: "cold".into() } }],
        window: None,
        late: Default::default(),
    };
    let sequence = crm.create_sequence(account, input).await.expect("sequence");
    for chunk in ids.chunks(1000) {
        crm.enrol_contacts(account, sequence.id, chunk, None).await.expect("enrol");
    }
    let runner = crm.sequence_runner();
    let started = Instant::now();
    let rt = Runtime::builder(store.clone())
        .job_worker(Arc::new(runner), WorkerOptions { ..options() })
        .build()
        .start()
        .await
        .expect("rt");
    wait_empty(&store, SEQUENCE_STEP_JOB).await;
    let steps = started.elapsed();
    rt.shutdown(Duration::from_secs(5)).await;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("bare job claim/complete: {n} in {:.2?} = {:.0}/s", bare, rate(bare));
    println!(
        "sequence steps (add_tag): {n} in {:.2?} = {:.0}/s ({:.2}× the bare job time)",
        steps,
        rate(steps),
        steps.as_secs_f64() / bare.as_secs_f64()
    );

    let pool = pg.pool().clone();
    drop(store);
    drop(crm);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))).execute(&pool).await.ok();
}

//! The worker runtime (`crm_core::workers`) end to end on the real stores:
//! outbox consumers and durable jobs on SQLite (a file) and PostgreSQL (skipped
//! with a notice when `CRM_TEST_DATABASE_URL` is unset), and on the memory
//! store as the reference. Two runtimes on one PostgreSQL database share the
//! work without handling an item twice.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::workers::{Backoff, EventWorker, JobWorker, Outcome, Runtime, RuntimeHandle, WorkerOptions};
use crm_core::{
    Account, AccountId, Clock, Contact, Event, EventFilter, EventId, EventType, Job, JobId, MemoryStore, NewContact,
    Store, SystemClock,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One handler call: the attempt and the previous error it was given.
type Call = (u32, Option<String>);

/// An outbox consumer that records every call and plays a script per event.
#[derive(Debug, Default)]
struct RecordingWorker {
    name: String,
    /// Per event: every call's (attempt, previous error).
    seen: Mutex<HashMap<EventId, Vec<Call>>>,
    /// Per event: the outcomes of its next calls (then `Done`).
    script: Mutex<HashMap<EventId, Vec<Outcome>>>,
    delay: Duration,
}

impl RecordingWorker {
    fn new(name: &str, delay: Duration) -> Arc<Self> {
        Arc::new(Self { name: name.into(), delay, ..Self::default() })
    }

    fn calls(&self, id: EventId) -> Vec<Call> {
        self.seen.lock().unwrap().get(&id).cloned().unwrap_or_default()
    }

    fn seen(&self) -> HashMap<EventId, Vec<Call>> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventWorker for RecordingWorker {
    fn name(&self) -> &str {
        &self.name
    }

    fn events(&self) -> EventFilter {
        EventFilter::only(["contact.*"]).unwrap()
    }

    async fn handle(&self, event: &Event, attempt: u32, previous_error: Option<&str>) -> Outcome {
        self.seen.lock().unwrap().entry(event.id).or_default().push((attempt, previous_error.map(str::to_owned)));
        tokio::time::sleep(self.delay).await;
        let mut script = self.script.lock().unwrap();
        match script.get_mut(&event.id) {
            Some(next) if !next.is_empty() => next.remove(0),
            _ => Outcome::Done,
        }
    }
}

/// A job worker that records when each job ran.
#[derive(Debug, Default)]
struct RecordingJobs {
    kind: String,
    runs: Mutex<HashMap<JobId, Vec<DateTime<Utc>>>>,
    delay: Duration,
}

impl RecordingJobs {
    fn new(kind: &str, delay: Duration) -> Arc<Self> {
        Arc::new(Self { kind: kind.into(), delay, ..Self::default() })
    }

    fn runs(&self) -> HashMap<JobId, Vec<DateTime<Utc>>> {
        self.runs.lock().unwrap().clone()
    }
}

#[async_trait]
impl JobWorker for RecordingJobs {
    fn kind(&self) -> &str {
        &self.kind
    }

    async fn run(&self, job: &Job) -> Outcome {
        self.runs.lock().unwrap().entry(job.id).or_default().push(Utc::now());
        tokio::time::sleep(self.delay).await;
        Outcome::Done
    }
}

fn options() -> WorkerOptions {
    WorkerOptions {
        batch: 8,
        concurrency: 4,
        lease: Duration::from_secs(1),
        poll: Duration::from_millis(10),
        max_poll: Duration::from_millis(50),
        backoff: Backoff { base: Duration::from_millis(50), factor: 1.0, max: Duration::from_millis(50), jitter: 0.0 },
        max_attempts: 3,
    }
}

async fn start(store: &Arc<dyn Store>, events: &Arc<RecordingWorker>, jobs: &Arc<RecordingJobs>) -> RuntimeHandle {
    Runtime::builder(store.clone())
        .event_worker(events.clone(), options())
        .job_worker(jobs.clone(), options())
        .build()
        .start()
        .await
        .expect("start the runtime")
}

/// Waits (up to 30 s) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..1500 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn new_account(store: &Arc<dyn Store>) -> AccountId {
    let a = Account::new("Workers", SystemClock.now()).unwrap();
    let e = Event::new(a.id, EventType::ACCOUNT_CREATED, &json!({}), SystemClock.now());
    store.create_account(&a, &e).await.unwrap();
    a.id
}

/// `n` new contacts of `account` with their `contact.created` events (not stored yet).
fn contacts(account: AccountId, n: usize, first_phone: usize) -> (Vec<Contact>, Vec<Event>) {
    (0..n)
        .map(|i| {
            let now = SystemClock.now();
            let input = NewContact {
                name: format!("W{i}"),
                phone: format!("+5511985{:06}", first_phone + i),
                ..Default::default()
            };
            let c = Contact::new(account, input, now).unwrap();
            let e = Event::new(account, EventType::CONTACT_CREATED, &json!({ "id": c.id }), now);
            (c, e)
        })
        .unzip()
}

/// One runtime on one store: every event its filter passes handled once, a
/// retried item back with its error, a `Fail` dead-lettered and replayed,
/// a future job run once after its time.
async fn runtime_end_to_end(store: Arc<dyn Store>) {
    let events = RecordingWorker::new("it-hooks", Duration::ZERO);
    let jobs = RecordingJobs::new("reminder", Duration::ZERO);
    let a = new_account(&store).await;
    let handle = start(&store, &events, &jobs).await;

    let (cs, es) = contacts(a, 30, 0);
    let retried = es[3].id;
    let failed = es[5].id;
    events.script.lock().unwrap().insert(retried, vec![Outcome::retry("flaky endpoint")]);
    events.script.lock().unwrap().insert(failed, vec![Outcome::Fail { error: "410 Gone".into() }]);
    // Half inserted one by one, half imported: both paths queue through the filter.
    for (c, e) in cs.iter().zip(&es).take(15) {
        store.insert_contact(c, e).await.unwrap();
    }
    assert_eq!(store.import_contacts(a, &cs[15..], &es[15..]).await.unwrap().imported, 15);

    until("every event was handled and the dead letter listed", async || {
        let stats = store.queue_stats("it-hooks").await.unwrap();
        events.seen().len() == 30 && stats.depth == 0 && stats.dead == 1
    })
    .await;
    let seen = events.seen();
    for e in &es {
        let calls = &seen[&e.id];
        if e.id == retried {
            assert_eq!(
                calls,
                &[(1, None), (2, Some("flaky endpoint".to_owned()))],
                "the retried item came back with its error"
            );
        } else {
            assert_eq!(calls, &[(1, None)], "every other event handled exactly once");
        }
    }
    assert_eq!(seen.len(), 30, "account.created is not contact.*: never queued");
    let dead = store.list_dead_letters("it-hooks", a, None, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].event.id, dead[0].error.as_str(), dead[0].attempts), (failed, "410 Gone", 1));

    store.replay_dead_letter("it-hooks", a, failed).await.unwrap();
    until("the replayed dead letter was handled", async || {
        let stats = store.queue_stats("it-hooks").await.unwrap();
        events.calls(failed).len() == 2 && stats.depth == 0
    })
    .await;
    assert_eq!(
        events.calls(failed),
        [(1, None), (1, Some("410 Gone".to_owned()))],
        "replayed: attempts reset, the error it died with passed on"
    );
    assert!(store.list_dead_letters("it-hooks", a, None, 10).await.unwrap().is_empty());

    let run_at = Utc::now() + chrono::Duration::milliseconds(1500);
    let job = Job::new("reminder", Some(a), json!({ "contact": cs[0].id }), run_at, SystemClock.now()).unwrap();
    store.schedule_job(&job).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(jobs.runs().is_empty(), "a job does not run before its time");
    until("the job ran", async || jobs.runs().contains_key(&job.id)).await;
    until("the job was completed", async || store.get_job(a, job.id).await.is_err()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = jobs.runs();
    assert_eq!(runs[&job.id].len(), 1, "the job ran once");
    assert!(runs[&job.id][0] >= run_at, "after its time: {:?} < {run_at}", runs[&job.id][0]);
    assert_eq!(store.job_stats("reminder").await.unwrap(), crm_core::QueueStats::default());

    let stats = handle.stats().await;
    let hooks = stats.iter().find(|s| s.name == "outbox:it-hooks").unwrap();
    assert_eq!((hooks.done, hooks.retried, hooks.dead_lettered, hooks.lost_leases), (30, 1, 1, 0), "{hooks:?}");
    let reminder = stats.iter().find(|s| s.name == "jobs:reminder").unwrap();
    assert_eq!((reminder.done, reminder.store_errors), (1, 0), "{reminder:?}");
    assert_eq!(handle.shutdown(Duration::from_secs(1)).await.released, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_runtime_end_to_end() {
    runtime_end_to_end(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runtime_end_to_end() {
    let dir = std::env::temp_dir().join(format!("crm-workers-test-{}", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    let store = crm_storage::SqliteStore::connect(&url).await.unwrap();
    runtime_end_to_end(Arc::new(store)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crm_storage::PgStore;
    use std::collections::HashSet;

    fn url(test: &str) -> Option<String> {
        crm_core::testing::service_url("CRM_TEST_DATABASE_URL", test)
    }

    fn schema() -> String {
        format!("crm_test_{}", uuid::Uuid::now_v7().simple())
    }

    async fn drop_schema(url: &str, schema: &str) {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
            .execute(&pool)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_runtime_end_to_end() {
        let Some(url) = url("postgres workers runtime_end_to_end") else { return };
        let schema = schema();
        let store = PgStore::connect_with_schema(&url, &schema).await.unwrap();
        runtime_end_to_end(Arc::new(store)).await;
        drop_schema(&url, &schema).await;
    }

    /// Two runtimes (two pools, as two processes would have) on one database
    /// share one consumer's events and one kind's jobs: each item is handled
    /// by exactly one of them, once, and both take part.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_runtimes_share_the_work() {
        let Some(url) = url("postgres workers two_runtimes_share_the_work") else { return };
        let schema = schema();
        let one: Arc<dyn Store> = Arc::new(PgStore::connect_with_schema(&url, &schema).await.unwrap());
        let two: Arc<dyn Store> = Arc::new(PgStore::connect_with_schema(&url, &schema).await.unwrap());
        let delay = Duration::from_millis(20);
        let (events_one, events_two) = (RecordingWorker::new("shared", delay), RecordingWorker::new("shared", delay));
        let (jobs_one, jobs_two) = (RecordingJobs::new("shared", delay), RecordingJobs::new("shared", delay));
        let h1 = start(&one, &events_one, &jobs_one).await;
        let h2 = start(&two, &events_two, &jobs_two).await;

        let a = new_account(&one).await;
        let (cs, es) = contacts(a, 150, 0);
        assert_eq!(one.import_contacts(a, &cs, &es).await.unwrap().imported, 150);
        let now = SystemClock.now();
        let mut job_ids = Vec::new();
        for i in 0..40 {
            let j = Job::new("shared", Some(a), json!({ "i": i }), now, now).unwrap();
            two.schedule_job(&j).await.unwrap();
            job_ids.push(j.id);
        }
        until("every event and job was handled", async || {
            let q = one.queue_stats("shared").await.unwrap();
            let j = two.job_stats("shared").await.unwrap();
            events_one.seen().len() + events_two.seen().len() >= 150 && q.depth == 0 && j.depth == 0
        })
        .await;

        let (s1, s2) = (events_one.seen(), events_two.seen());
        for (who, seen) in [("one", &s1), ("two", &s2)] {
            assert!(seen.values().all(|calls| calls.len() == 1), "runtime {who} handled an event twice");
        }
        let both: HashSet<_> = s1.keys().filter(|id| s2.contains_key(id)).collect();
        assert!(both.is_empty(), "events handled by both runtimes: {both:?}");
        let all: HashSet<EventId> = s1.keys().chain(s2.keys()).copied().collect();
        assert_eq!(all, es.iter().map(|e| e.id).collect::<HashSet<_>>(), "every event handled");

        let (r1, r2) = (jobs_one.runs(), jobs_two.runs());
        assert!(r1.values().chain(r2.values()).all(|runs| runs.len() == 1), "a job ran twice in one runtime");
        assert!(r1.keys().all(|id| !r2.contains_key(id)), "a job ran in both runtimes");
        let ran: HashSet<JobId> = r1.keys().chain(r2.keys()).copied().collect();
        assert_eq!(ran, job_ids.iter().copied().collect::<HashSet<_>>(), "every job ran");
        assert!(
            s1.len() + r1.len() > 0 && s2.len() + r2.len() > 0,
            "both runtimes took part: {} / {}",
            s1.len() + r1.len(),
            s2.len() + r2.len()
        );

        h1.shutdown(Duration::from_secs(1)).await;
        h2.shutdown(Duration::from_secs(1)).await;
        drop((one, two));
        drop_schema(&url, &schema).await;
    }
}

//! Issue #11's evidence for follow-up sequences: enrol 10,000 contacts (2,000 on the memory store),
//! kill the worker process mid-way (its tokio runtime dropped with handlers
//! in flight), start another, and show that every step ran exactly once and
//! never before its time — on a `ManualClock` over the memory store (steps
//! in days, quiet time honoured, each step at its exact due time unless its
//! job was orphaned by the kill: then late by the lease), on PostgreSQL and
//! on SQLite (steps in seconds, real time). A reply stops a sequence.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use crm_core::ports::sequences::EnrolmentQuery;
use crm_core::workers::{Runtime, RuntimeHandle, WorkerOptions};
use crm_core::{
    AccountId, Clock, ContactId, ContactQuery, Crm, EnrolmentState, Event, EventType, InboundMessage, ManualClock,
    MemoryStore, NewContact, NewSequence, PageRequest, RecordingMessenger, SEQUENCE_STEP_JOB, SendWindow, Sequence,
    SequenceStep, StepAction, StopReason, Store, SystemClock,
};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Open = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>> + Send + Sync>;

fn evidence_size() -> usize {
    std::env::var("CRM_SEQUENCE_EVIDENCE_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

fn crm(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Crm {
    Crm::builder().store(store).messenger(Arc::new(RecordingMessenger::new())).clock(clock).build().unwrap()
}

/// A worker "process": its own tokio runtime, its own store connection,
/// running the step runner and the watcher.
struct Process {
    rt: Option<tokio::runtime::Runtime>,
    handle: Option<Arc<RuntimeHandle>>,
}

impl Process {
    async fn start(open: &Open, clock: Arc<dyn Clock>, lease: Duration) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let open = open.clone();
        let handle = rt
            .spawn(async move {
                let store = open().await;
                let crm = crm(store.clone(), clock);
                let runner = crm.sequence_runner();
                let watcher = crm.sequence_watcher();
                let options = WorkerOptions { lease, poll: Duration::from_millis(20), ..runner.options() };
                let handle = Runtime::builder(store)
                    .job_worker(Arc::new(runner), options)
                    .event_worker(Arc::new(watcher), WorkerOptions { lease, ..WorkerOptions::default() })
                    .build()
                    .start()
                    .await
                    .unwrap();
                Arc::new(handle)
            })
            .await
            .unwrap();
        Process { rt: Some(rt), handle: Some(handle) }
    }

    async fn steps_done(&self) -> u64 {
        let handle = self.handle.clone().unwrap();
        let stats = self.rt.as_ref().unwrap().spawn(async move { handle.stats().await }).await.unwrap();
        if std::env::var("CRM_SEQUENCE_DEBUG").is_ok() {
            eprintln!("{stats:?}");
        }
        stats.iter().filter(|s| s.name.contains(SEQUENCE_STEP_JOB)).map(|s| s.done).sum()
    }

    /// Kills the process: its runtime stops at once, handlers mid-way.
    fn kill(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        self.handle.take();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn sequence_input(d0: u64, d1: u64, window: Option<SendWindow>) -> NewSequence {
    NewSequence {
        name: "Follow-up Email Sequence".into(),
        enabled: true,
        steps: vec![
            SequenceStep { delay_seconds: d0, action: StepAction::SendText { text: "Still interested?".into() } },
            SequenceStep { delay_seconds: d1, action: StepAction::SendText { text: "Last call!".into() } },
            SequenceStep { delay_seconds: 0, action: StepAction::AddTag { tag: "cold".into() } },
        ],
        window,
        late: Default::default(),
    }
}

async fn all_contacts(crm: &Crm, account: AccountId) -> Vec<ContactId> {
    let mut q = ContactQuery { page: PageRequest::first(200).unwrap(), ..Default::default() };
    let mut ids = Vec::new();
    loop {
        let page = crm.list_contacts(account, &q).await.unwrap();
        ids.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => q.page = PageRequest::new(Some(&c), 200).unwrap(),
            None => return ids,
        }
    }
}

/// An account with `n` contacts enrolled in the sequence.
async fn enrolled(crm: &Crm, n: usize, input: NewSequence) -> (AccountId, Sequence, Vec<ContactId>) {
    let account = crm.create_account("Evidence").await.unwrap().id;
    let rows: Vec<NewContact> = (0..n)
        .map(|i| NewContact { name: format!("Lead {i}"), phone: format!("+55119{:08}", i), ..Default::default() })
        .collect();
    assert_eq!(crm.import_contacts(account, rows).await.unwrap().imported, n);
    let contacts = all_contacts(crm, account).await;
    let sequence = crm.create_sequence(account, input).await.unwrap();
    for chunk in contacts.chunks(1000) {
        let r = crm.enrol_contacts(account, sequence.id, chunk, None).await.unwrap();
        assert!(r.iter().all(|r| r.outcome == "enrolled"), "every contact enrolled");
    }
    (account, sequence, contacts)
}

async fn events_of(store: &Arc<dyn Store>, account: AccountId) -> Vec<Event> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_events(account, after, 1000).await.unwrap();
        let Some(last) = page.last() else { return all };
        after = Some(last.id);
        all.extend(page);
    }
}

async fn active_count(store: &Arc<dyn Store>, account: AccountId) -> (usize, Option<DateTime<Utc>>) {
    let mut q = EnrolmentQuery {
        state: Some(EnrolmentState::Active),
        page: PageRequest::first(200).unwrap(),
        ..Default::default()
    };
    let (mut n, mut next) = (0, None::<DateTime<Utc>>);
    loop {
        let page = store.list_enrolments(account, &q).await.unwrap();
        n += page.items.len();
        for e in &page.items {
            if let Some(t) = e.next_run_at {
                next = Some(next.map_or(t, |x| x.min(t)));
            }
        }
        match page.next_cursor {
            Some(c) => q.page = PageRequest::new(Some(&c), 200).unwrap(),
            None => return (n, next),
        }
    }
}

/// Lateness of each step run (ran − due), checked: every enrolment
/// enrolled once, each step ran once and never early, completed once; each
/// contact got each message once and the tag.
async fn verify(store: &Arc<dyn Store>, account: AccountId, contacts: &[ContactId], steps: u32) -> Vec<Duration> {
    let events = events_of(store, account).await;
    let mut due: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut runs: HashMap<(String, u64), usize> = HashMap::new();
    let mut lateness = Vec::new();
    let mut completed = 0;
    let mut queued: HashMap<String, usize> = HashMap::new();
    for e in &events {
        let t = e.event_type.as_str();
        if t == EventType::SEQUENCE_ENROLLED.as_str() {
            let id = e.payload["id"].as_str().unwrap().to_owned();
            let next: DateTime<Utc> = serde_json::from_value(e.payload["next_run_at"].clone()).unwrap();
            assert!(due.insert(id, next).is_none(), "enrolled once");
        } else if t == EventType::SEQUENCE_STEP_COMPLETED.as_str() || t == EventType::SEQUENCE_COMPLETED.as_str() {
            let id = e.payload["enrolment"]["id"].as_str().unwrap().to_owned();
            let step = e.payload["step"].as_u64().unwrap();
            *runs.entry((id.clone(), step)).or_default() += 1;
            let was_due = due[&id];
            assert!(e.occurred_at >= was_due, "step {step} of {id} ran early: {} < {was_due}", e.occurred_at);
            lateness.push((e.occurred_at - was_due).to_std().unwrap());
            if t == EventType::SEQUENCE_COMPLETED.as_str() {
                completed += 1;
            } else {
                let next: DateTime<Utc> =
                    serde_json::from_value(e.payload["enrolment"]["next_run_at"].clone()).unwrap();
                due.insert(id, next);
            }
        } else if t == EventType::MESSAGE_QUEUED.as_str() {
            *queued.entry(e.payload["message"]["contact_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(due.len(), contacts.len(), "one enrolment per contact");
    assert_eq!(completed, contacts.len(), "every enrolment completed");
    assert_eq!(runs.len(), contacts.len() * steps as usize, "every step of every enrolment ran");
    assert!(runs.values().all(|&n| n == 1), "no step ran twice");
    for c in contacts {
        assert_eq!(queued.get(&c.to_string()), Some(&2), "each contact got each message once");
    }
    for c in contacts.iter().step_by(97) {
        let contact = store.get_contact(account, *c).await.unwrap();
        assert!(contact.tags.iter().any(|t| t.as_str() == "cold"), "the last step tagged the contact");
        let thread = store.list_thread(account, *c, &PageRequest::first(10).unwrap()).await.unwrap();
        assert_eq!(thread.items.len(), 2, "two messages in the thread");
    }
    lateness
}

fn summary(mut lateness: Vec<Duration>) -> (Duration, Duration, Duration) {
    lateness.sort();
    let at = |q: f64| lateness[((lateness.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), *lateness.last().unwrap())
}

/// Waits until `cond` holds, polling.
async fn until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn due_steps(store: &Arc<dyn Store>) -> u64 {
    store.job_stats(SEQUENCE_STEP_JOB).await.unwrap().due
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolments_survive_a_kill_on_a_manual_clock() {
    // The memory store scans its maps (it is a reference, not a database):
    // 2,000 keep this quick; PostgreSQL below runs the full 10,000.
    let n = evidence_size().min(2_000);
    // Monday 2026-11-30 08:00 UTC; steps may run 09:00–18:00 UTC on weekdays.
    let start = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
    let manual = Arc::new(ManualClock::new(start));
    let clock: Arc<dyn Clock> = manual.clone();
    let memory = MemoryStore::with_clock(clock.clone());
    let store: Arc<dyn Store> = Arc::new(memory.clone());
    let window = SendWindow {
        time_zone: None,
        utc_offset_minutes: 0,
        days: vec![1, 2, 3, 4, 5],
        start_minute: 540,
        end_minute: 1080,
    };
    let main = crm(store.clone(), clock.clone());
    let (account, _, contacts) = enrolled(&main, n, sequence_input(86_400, 4 * 86_400, Some(window))).await;
    let lease = Duration::from_secs(30);
    let open: Open = Arc::new(move || {
        let m = memory.clone();
        Box::pin(async move { Arc::new(m) as Arc<dyn Store> })
    });

    // First step due Tuesday 09:00 (the delay ends at 08:00, in quiet time).
    let (_, first) = active_count(&store, account).await;
    assert_eq!(first, Some(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()), "quiet time moves the first step");
    manual.set(first.unwrap());
    let p1 = Process::start(&open, clock.clone(), lease).await;
    until("half of the first steps", Duration::from_secs(300), || async { p1.steps_done().await * 2 >= n as u64 })
        .await;
    p1.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The killed process's leases run out; another process takes over.
    manual.advance(lease + Duration::from_secs(1));
    let p2 = Process::start(&open, clock.clone(), lease).await;
    loop {
        until("due steps to drain", Duration::from_secs(300), || async { due_steps(&store).await == 0 }).await;
        // Wait for in-flight handlers (a step claimed is no longer due).
        tokio::time::sleep(Duration::from_millis(200)).await;
        if due_steps(&store).await > 0 {
            continue;
        }
        let (active, next) = active_count(&store, account).await;
        if active == 0 {
            break;
        }
        let now = manual.now();
        match next {
            Some(t) if t > now => manual.set(t),
            // Due but not claimable: leased by the dead process (its last
            // claims may land just after the kill). Let the leases run out.
            _ => manual.advance(lease),
        }
    }
    drop(p2);
    let lateness = verify(&store, account, &contacts, 3).await;
    let (p50, p99, max) = summary(lateness.clone());
    eprintln!("manual clock, {n} enrolments × 3 steps: lateness p50 {p50:?} p99 {p99:?} max {max:?}");
    // Steps run at their exact due time on the manual clock; only the ones
    // orphaned by the kill wait for the dead process's lease to run out.
    let orphaned = lateness.iter().filter(|l| !l.is_zero()).count();
    assert!(max <= 2 * lease + Duration::from_secs(1), "late by at most the dead process's leases: {max:?}");
    assert!(orphaned <= 16 * 64, "only the killed process's claims were late: {orphaned}");
}

/// Real time over a SQL store: steps `d` seconds apart, a kill mid-way.
async fn real_time_evidence(name: &str, open: Open, n: usize) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = open().await;
    let main = crm(store.clone(), clock.clone());
    let began = Instant::now();
    let (account, _, contacts) = enrolled(&main, n, sequence_input(3, 3, None)).await;
    let enrolled_in = began.elapsed();
    let lease = Duration::from_secs(5);
    let p1 = Process::start(&open, clock.clone(), lease).await;
    until("half of the first steps", Duration::from_secs(600), || async { p1.steps_done().await * 2 >= n as u64 })
        .await;
    p1.kill();
    let p2 = Process::start(&open, clock.clone(), lease).await;
    until("every enrolment to finish", Duration::from_secs(900), || async {
        active_count(&store, account).await.0 == 0
    })
    .await;
    let ran_in = began.elapsed();
    drop(p2);
    let lateness = verify(&store, account, &contacts, 3).await;
    let (p50, p99, max) = summary(lateness);
    eprintln!(
        "{name}, {n} enrolments × 3 steps (enrolled in {enrolled_in:?}, all done after {ran_in:?}): \
         lateness p50 {p50:?} p99 {p99:?} max {max:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(feature = "postgres")]
async fn ten_thousand_enrolments_survive_a_kill_on_postgres() {
    let Some(url) = crm_core::testing::service_url("CRM_TEST_DATABASE_URL", "sequences evidence on postgres") else {
        return;
    };
    let schema = format!("crm_test_{}", uuid::Uuid::now_v7().simple());
    crm_storage::PgStore::connect_with_schema(&url, &schema).await.unwrap();
    let (u, s) = (url.clone(), schema.clone());
    let open: Open = Arc::new(move || {
        let (u, s) = (u.clone(), s.clone());
        Box::pin(
            async move { Arc::new(crm_storage::PgStore::connect_with_schema(&u, &s).await.unwrap()) as Arc<dyn Store> },
        )
    });
    real_time_evidence("postgres", open, evidence_size()).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(feature = "sqlite")]
async fn enrolments_survive_a_kill_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("crm-seq-{}", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    let u = url.clone();
    let open: Open = Arc::new(move || {
        let u = u.clone();
        Box::pin(async move { Arc::new(crm_storage::SqliteStore::connect(&u).await.unwrap()) as Arc<dyn Store> })
    });
    // SQLite has one writer: a smaller run keeps the suite quick.
    real_time_evidence("sqlite", open, evidence_size().min(2_000)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_stops_the_sequence() {
    let manual = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()));
    let clock: Arc<dyn Clock> = manual.clone();
    let memory = MemoryStore::with_clock(clock.clone());
    let store: Arc<dyn Store> = Arc::new(memory.clone());
    let main = crm(store.clone(), clock.clone());
    let (account, sequence, contacts) = enrolled(&main, 2, sequence_input(3600, 3600, None)).await;
    let open: Open = Arc::new(move || {
        let m = memory.clone();
        Box::pin(async move { Arc::new(m) as Arc<dyn Store> })
    });
    let p = Process::start(&open, clock.clone(), Duration::from_secs(30)).await;
    // The first contact replies before the first step.
    let inbound = InboundMessage {
        from: format!("+55119{:08}", 0),
        whatsapp_id: None,
        profile_name: None,
        provider_message_id: Some("wamid.reply".into()),
        content: crm_core::MessageContent::text("yes, call me"),
        sent_at: None,
        reply_to: None,
    };
    let got = main.record_inbound(account, inbound).await.unwrap();
    let replied = got.contact.id;
    let other = *contacts.iter().find(|c| **c != replied).unwrap();
    until("the watcher to stop the enrolment", Duration::from_secs(30), || async {
        let q = EnrolmentQuery { contact: Some(replied), ..Default::default() };
        let q = EnrolmentQuery { page: PageRequest::first(10).unwrap(), ..q };
        store.list_enrolments(account, &q).await.unwrap().items[0].state == EnrolmentState::Stopped
    })
    .await;
    manual.advance(Duration::from_secs(3 * 3600));
    until("the other contact to finish", Duration::from_secs(60), || async {
        let q = EnrolmentQuery { contact: Some(other), page: PageRequest::first(10).unwrap(), ..Default::default() };
        let e = &store.list_enrolments(account, &q).await.unwrap().items[0];
        if e.next_run_at.is_some_and(|t| t <= manual.now()) || e.state == EnrolmentState::Completed {
            return e.state == EnrolmentState::Completed;
        }
        manual.advance(Duration::from_secs(3600));
        false
    })
    .await;
    drop(p);
    let q = EnrolmentQuery {
        sequence: Some(sequence.id),
        contact: Some(replied),
        page: PageRequest::first(10).unwrap(),
        ..Default::default()
    };
    let stopped = &store.list_enrolments(account, &q).await.unwrap().items[0];
    assert_eq!(stopped.stop_reason, Some(StopReason::Replied));
    assert_eq!(stopped.current_step, 0, "no step ran after the reply");
    let thread = store.list_thread(account, replied, &PageRequest::first(10).unwrap()).await.unwrap();
    assert_eq!(thread.items.len(), 1, "only the reply: nothing was sent to the contact who replied");
    let thread = store.list_thread(account, other, &PageRequest::first(10).unwrap()).await.unwrap();
    assert_eq!(thread.items.len(), 2, "the other contact got both messages");
}

//! The loop that runs workers: claim, handle with bounded concurrency while
//! renewing leases, settle, and shut down gracefully.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::queue::{Item, ItemToken, Queue};
use super::{EventWorker, JobWorker, Outcome, WorkerOptions};
use crate::{Error, QueueStats, Result, Store};

/// Builds a [`Runtime`].
#[derive(Debug)]
pub struct RuntimeBuilder {
    store: Arc<dyn Store>,
    queues: Vec<(Arc<dyn Queue>, WorkerOptions)>,
}

impl RuntimeBuilder {
    /// Runs `worker` as an outbox consumer.
    pub fn event_worker(mut self, worker: Arc<dyn EventWorker>, options: WorkerOptions) -> Self {
        let queue = super::outbox::OutboxQueue::new(self.store.clone(), worker);
        self.queues.push((Arc::new(queue), options));
        self
    }

    /// Runs `worker` on the jobs of its kind.
    pub fn job_worker(mut self, worker: Arc<dyn JobWorker>, options: WorkerOptions) -> Self {
        let queue = super::outbox::JobQueue::new(self.store.clone(), worker);
        self.queues.push((Arc::new(queue), options));
        self
    }

    #[cfg(test)]
    pub(crate) fn queue(mut self, queue: Arc<dyn Queue>, options: WorkerOptions) -> Self {
        self.queues.push((queue, options));
        self
    }

    /// The runtime (not started yet).
    pub fn build(self) -> Runtime {
        Runtime { queues: self.queues }
    }
}

/// The configured workers; [`Runtime::start`] runs them.
#[derive(Debug)]
pub struct Runtime {
    queues: Vec<(Arc<dyn Queue>, WorkerOptions)>,
}

/// Counters of one worker since its runtime started (this process only;
/// queue depth, lag and dead letters come from the store, shared by all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    /// `outbox:<consumer>` or `jobs:<kind>`.
    pub name: String,
    /// Items claimed.
    pub claimed: u64,
    /// Items finished and removed.
    pub done: u64,
    /// Failed attempts given back for a retry.
    pub retried: u64,
    /// Items held back without counting an attempt.
    pub deferred: u64,
    /// Items moved to the dead letters.
    pub dead_lettered: u64,
    /// Handler panics (each counted as a failed attempt too).
    pub panics: u64,
    /// Settlements refused because the lease was lost (another worker has the item).
    pub lost_leases: u64,
    /// Store errors while claiming or settling.
    pub store_errors: u64,
    /// Handlers running right now.
    pub in_flight: u64,
    /// The queue as the store sees it (all processes).
    pub queue: Option<QueueStats>,
}

#[derive(Debug, Default)]
struct Counters {
    claimed: AtomicU64,
    done: AtomicU64,
    retried: AtomicU64,
    deferred: AtomicU64,
    dead: AtomicU64,
    panics: AtomicU64,
    lost: AtomicU64,
    store_errors: AtomicU64,
}

#[derive(Debug)]
struct Worker {
    queue: Arc<dyn Queue>,
    options: WorkerOptions,
    counters: Counters,
    in_flight: Mutex<HashMap<u64, ItemToken>>,
    seq: AtomicU64,
}

impl Worker {
    fn track(&self, token: ItemToken) -> u64 {
        let id = self.seq.fetch_add(1, Ordering::Relaxed);
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(id, token);
        id
    }

    fn untrack(&self, id: u64) {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    fn count_store_error(&self, what: &str, e: &Error) {
        if matches!(e, Error::Conflict { .. } | Error::NotFound { .. }) {
            self.counters.lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(worker = self.queue.name(), error = %e, "{what}: the lease was lost; another worker has the item");
        } else {
            self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(worker = self.queue.name(), error = %e, "{what} failed");
        }
    }
}

/// Aborts a task when dropped, so a cancelled item also cancels its handler.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Handlers that finished within the grace period.
    pub finished: u64,
    /// Items still running at the end of the grace period, cancelled and
    /// given back: claimable again at once, the interrupted attempt counted
    /// (so the next handler knows to check for a half-done effect).
    pub released: u64,
}

/// The running runtime; share it as `Arc<RuntimeHandle>`. When the process
/// ends without [`RuntimeHandle::shutdown`], running items come back when
/// their leases expire.
#[derive(Debug)]
pub struct RuntimeHandle {
    stop: watch::Sender<Option<Duration>>,
    loops: Mutex<Vec<JoinHandle<ShutdownReport>>>,
    workers: Vec<Arc<Worker>>,
}

impl Runtime {
    /// Starts a runtime over `store`.
    pub fn builder(store: Arc<dyn Store>) -> RuntimeBuilder {
        RuntimeBuilder { store, queues: Vec::new() }
    }

    /// Registers every consumer, then runs each worker in its own task.
    /// [`Error::Validation`] for bad options (batch 1–1000, concurrency ≥ 1,
    /// lease ≥ 1 s, max attempts ≥ 1) or a worker name used twice.
    pub async fn start(self) -> Result<RuntimeHandle> {
        let mut names = std::collections::HashSet::new();
        for (q, o) in &self.queues {
            if !names.insert(q.name().to_owned()) {
                return Err(Error::validation("workers", format!("{} is registered twice", q.name())));
            }
            if !(1..=1000).contains(&o.batch)
                || o.concurrency == 0
                || o.lease < Duration::from_secs(1)
                || o.max_attempts == 0
            {
                return Err(Error::validation(
                    "workers",
                    format!("{}: batch 1–1000, concurrency ≥ 1, lease ≥ 1 s, max_attempts ≥ 1", q.name()),
                ));
            }
        }
        for (q, _) in &self.queues {
            q.prepare().await?;
        }
        let (stop, _) = watch::channel(None);
        let mut loops = Vec::new();
        let mut workers = Vec::new();
        for (queue, options) in self.queues {
            let worker = Arc::new(Worker {
                queue,
                options,
                counters: Counters::default(),
                in_flight: Mutex::default(),
                seq: AtomicU64::new(0),
            });
            workers.push(worker.clone());
            loops.push(tokio::spawn(run(worker, stop.subscribe())));
        }
        Ok(RuntimeHandle { stop, loops: Mutex::new(loops), workers })
    }
}

impl RuntimeHandle {
    /// The names of the running workers.
    pub fn worker_names(&self) -> Vec<String> {
        self.workers.iter().map(|w| w.queue.name().to_owned()).collect()
    }

    /// Every worker's counters and its queue's depth, lag and dead letters.
    pub async fn stats(&self) -> Vec<WorkerStats> {
        let mut out = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            let c = &w.counters;
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let in_flight = w.in_flight.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
            out.push(WorkerStats {
                name: w.queue.name().to_owned(),
                claimed: get(&c.claimed),
                done: get(&c.done),
                retried: get(&c.retried),
                deferred: get(&c.deferred),
                dead_lettered: get(&c.dead),
                panics: get(&c.panics),
                lost_leases: get(&c.lost),
                store_errors: get(&c.store_errors),
                in_flight,
                queue: w.queue.stats().await.ok(),
            });
        }
        out
    }

    /// Stops claiming, waits up to `grace` for running handlers, then
    /// cancels the rest and gives their items back. A second call returns
    /// an empty report.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let _ = self.stop.send(Some(grace));
        let loops = std::mem::take(&mut *self.loops.lock().unwrap_or_else(|p| p.into_inner()));
        let mut total = ShutdownReport::default();
        for l in loops {
            if let Ok(r) = l.await {
                total.finished += r.finished;
                total.released += r.released;
            }
        }
        total
    }
}

/// Most items one acknowledgement statement removes.
const ACK_BATCH: usize = 500;

/// A finished item waiting for its removal: its tracking id, its lease, and
/// where to say whether it was removed.
type Ack = (u64, ItemToken, oneshot::Sender<Result<bool>>);

/// Removes finished items in batches: whatever handlers finished while the
/// previous batch was being removed goes in the next one (group commit), so
/// a single item waits for no timer and a busy worker pays one statement
/// for many items. Ends when every sender is gone.
async fn acker(worker: Arc<Worker>, mut rx: mpsc::Receiver<Ack>) {
    let mut batch: Vec<Ack> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < ACK_BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let tokens: Vec<ItemToken> = batch.iter().map(|a| a.1.clone()).collect();
        let result = worker.queue.ack_many(&tokens).await;
        for (i, (id, _, reply)) in batch.drain(..).enumerate() {
            let answer = match &result {
                Ok(done) => {
                    let removed = done.get(i).copied().unwrap_or(false);
                    if removed {
                        // Settled: a shutdown must not give it back.
                        worker.untrack(id);
                    }
                    Ok(removed)
                }
                Err(e) => Err(Error::Storage { message: e.to_string(), transient: e.is_transient(), source: None }),
            };
            let _ = reply.send(answer);
        }
    }
}

/// Hands a finished item to the acker and waits for its removal.
async fn ack(worker: &Worker, acks: &mpsc::Sender<Ack>, id: u64, token: &ItemToken) -> Result<()> {
    let (tx, rx) = oneshot::channel();
    if acks.send((id, token.clone(), tx)).await.is_err() {
        return worker.queue.ack(token).await;
    }
    match rx.await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(Error::conflict("item", "the lease was lost, or the item is gone")),
        Ok(Err(e)) => Err(e),
        Err(_) => worker.queue.ack(token).await,
    }
}

async fn run(worker: Arc<Worker>, mut stop: watch::Receiver<Option<Duration>>) -> ShutdownReport {
    let opts = worker.options.clone();
    let sem = Arc::new(Semaphore::new(opts.concurrency));
    let claim_at = (opts.concurrency.min(opts.batch as usize) / 2).max(1);
    let (acks, acks_rx) = mpsc::channel::<Ack>(ACK_BATCH * 2);
    let acker = tokio::spawn(acker(worker.clone(), acks_rx));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut idle = opts.poll;
    let wake = worker.queue.wakeup();
    let name = worker.queue.name().to_owned();
    loop {
        if stop.borrow().is_some() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let free = sem.available_permits();
        // Claim when at least half a batch of slots is free: claiming for
        // every slot as it frees makes one claim statement per item or two
        // under load, and the claims themselves become the limit. The
        // handlers still running keep the pipeline at least half full.
        if free == 0 || (free < claim_at && !tasks.is_empty()) {
            tokio::select! {
                _ = tasks.join_next() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let limit = u32::try_from(free).unwrap_or(u32::MAX).min(opts.batch);
        let items = match worker.queue.claim(limit, opts.lease).await {
            Ok(items) => items,
            Err(e) => {
                worker.count_store_error("claiming", &e);
                wait_idle(&mut stop, wake.as_deref(), idle).await;
                idle = (idle * 2).min(opts.max_poll);
                continue;
            }
        };
        if items.is_empty() {
            wait_idle(&mut stop, wake.as_deref(), idle).await;
            idle = (idle * 2).min(opts.max_poll);
            continue;
        }
        idle = opts.poll;
        worker.counters.claimed.fetch_add(items.len() as u64, Ordering::Relaxed);
        for item in items {
            let permit = match sem.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => break,
            };
            let id = worker.track(item.token.clone());
            let span = tracing::info_span!("work", worker = %name, item = %item.label, attempt = item.attempt);
            let w = worker.clone();
            let acks = acks.clone();
            tasks.spawn(
                async move {
                    process(&w, &acks, id, item).await;
                    w.untrack(id);
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
    // Shutting down: let running handlers finish within the grace period.
    while tasks.try_join_next().is_some() {}
    let grace = stop.borrow().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + grace;
    let mut report = ShutdownReport::default();
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                Some(_) => report.finished += 1,
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Finish the removals already asked for before giving anything back.
    drop(acks);
    let _ = acker.await;
    let left: Vec<ItemToken> =
        worker.in_flight.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, t)| t).collect();
    // The interrupted attempt counts (with an error saying so): its effect
    // may be half done, and the next attempt's handler should check.
    for token in left {
        match worker.queue.retry(&token, Duration::ZERO, "interrupted by a shutdown").await {
            Ok(()) => report.released += 1,
            Err(e) => worker.count_store_error("giving an item back at shutdown", &e),
        }
    }
    if report.released > 0 {
        tracing::warn!(worker = %name, released = report.released, "grace period over; running items given back");
    }
    report
}

async fn wait_idle(stop: &mut watch::Receiver<Option<Duration>>, wake: Option<&tokio::sync::Notify>, idle: Duration) {
    match wake {
        Some(n) => tokio::select! {
            () = tokio::time::sleep(idle) => {}
            () = n.notified() => {}
            _ = stop.changed() => {}
        },
        None => tokio::select! {
            () = tokio::time::sleep(idle) => {}
            _ = stop.changed() => {}
        },
    }
}

/// Runs one item's handler (renewing its lease meanwhile) and settles it.
async fn process(worker: &Arc<Worker>, acks: &mpsc::Sender<Ack>, id: u64, item: Item) {
    let opts = &worker.options;
    let renewal = {
        let queue = worker.queue.clone();
        let token = item.token.clone();
        let lease = opts.lease;
        AbortOnDrop(tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = queue.renew(&token, lease).await {
                    tracing::warn!(error = %e, "renewing a lease failed");
                    if matches!(e, Error::Conflict { .. } | Error::NotFound { .. }) {
                        break;
                    }
                }
            }
        }))
    };
    let handler = {
        let queue = worker.queue.clone();
        let item = item.clone();
        AbortOnDrop(tokio::spawn(async move { queue.handle(&item).await }))
    };
    let mut handler = handler;
    let outcome = match (&mut handler.0).await {
        Ok(o) => o,
        Err(e) if e.is_panic() => {
            worker.counters.panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!("the handler panicked");
            Outcome::retry("the handler panicked")
        }
        Err(_) => return,
    };
    drop(renewal);
    let c = &worker.counters;
    let q = &worker.queue;
    let settled = match outcome {
        Outcome::Done => ack(worker, acks, id, &item.token).await.map(|()| &c.done),
        Outcome::Retry { error, after } if item.attempt < opts.max_attempts => {
            let delay = opts.backoff.delay(item.attempt).max(after.unwrap_or_default());
            tracing::info!(error = %error, retry_in_ms = delay.as_millis() as u64, "attempt failed; will retry");
            q.retry(&item.token, delay, &error).await.map(|()| &c.retried)
        }
        Outcome::Retry { error, .. } => {
            let error = format!("gave up after {} attempts: {error}", item.attempt);
            tracing::warn!(error = %error, "dead-lettered");
            q.bury(&item.token, &error).await.map(|()| &c.dead)
        }
        Outcome::Defer { after } => q.release(&item.token, after).await.map(|()| &c.deferred),
        Outcome::Fail { error } => {
            tracing::warn!(error = %error, "dead-lettered");
            q.bury(&item.token, &error).await.map(|()| &c.dead)
        }
    };
    match settled {
        Ok(counter) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => worker.count_store_error("settling an item", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::queue::Body;
    use async_trait::async_trait;
    use std::collections::BTreeMap;

    /// An in-memory queue of numbered items with leases, and a scripted handler.
    #[derive(Debug, Default)]
    struct TestQueue {
        state: Mutex<TestState>,
        /// Per item: the outcomes its successive attempts return (then Done).
        script: Mutex<HashMap<u64, Vec<Outcome>>>,
        handle_delay: Duration,
        panic_on: Option<u64>,
        /// How long one batch removal takes.
        ack_delay: Duration,
    }

    #[derive(Debug, Default)]
    struct TestState {
        /// item → (attempt, leased lease id, last error)
        items: BTreeMap<u64, (u32, Option<u64>, Option<String>)>,
        dead: BTreeMap<u64, String>,
        acked: Vec<u64>,
        released: Vec<(u64, Duration)>,
        retried: Vec<(u64, Duration)>,
        renewals: u64,
        next_lease: u64,
        running: u64,
        max_running: u64,
        handled: Vec<u64>,
        /// The size of every batch removal.
        ack_batches: Vec<usize>,
        /// The limit of every claim.
        claim_limits: Vec<u32>,
    }

    impl TestQueue {
        fn with_items(n: u64) -> Self {
            let q = TestQueue::default();
            {
                let mut s = q.state.lock().unwrap();
                for i in 0..n {
                    s.items.insert(i, (0, None, None));
                }
            }
            q
        }

        fn settle(&self, token: &ItemToken, f: impl FnOnce(&mut TestState, u64)) -> Result<()> {
            let ItemToken::Test(id, lease) = token else { unreachable!() };
            let mut s = self.state.lock().unwrap();
            match s.items.get(id) {
                Some((_, Some(l), _)) if l == lease => {
                    f(&mut s, *id);
                    Ok(())
                }
                Some(_) => Err(Error::conflict("item", "lease lost")),
                None => Err(Error::not_found("item")),
            }
        }
    }

    #[async_trait]
    impl Queue for TestQueue {
        fn name(&self) -> &str {
            "test"
        }
        async fn prepare(&self) -> Result<()> {
            Ok(())
        }
        async fn claim(&self, limit: u32, _lease: Duration) -> Result<Vec<Item>> {
            let mut s = self.state.lock().unwrap();
            s.claim_limits.push(limit);
            let ids: Vec<u64> =
                s.items.iter().filter(|(_, v)| v.1.is_none()).map(|(k, _)| *k).take(limit as usize).collect();
            let mut out = Vec::new();
            for id in ids {
                s.next_lease += 1;
                let lease = s.next_lease;
                let e = s.items.get_mut(&id).unwrap();
                e.0 += 1;
                e.1 = Some(lease);
                out.push(Item {
                    token: ItemToken::Test(id, lease),
                    attempt: e.0,
                    last_error: e.2.clone(),
                    label: format!("item {id}"),
                    body: Body::Test(id),
                });
            }
            Ok(out)
        }
        async fn ack(&self, token: &ItemToken) -> Result<()> {
            self.settle(token, |s, id| {
                s.items.remove(&id);
                s.acked.push(id);
            })
        }
        async fn ack_many(&self, tokens: &[ItemToken]) -> Result<Vec<bool>> {
            if !self.ack_delay.is_zero() {
                tokio::time::sleep(self.ack_delay).await;
            }
            self.state.lock().unwrap().ack_batches.push(tokens.len());
            let mut out = Vec::new();
            for t in tokens {
                out.push(crate::ports::store::settled_or_lost(self.ack(t).await)?);
            }
            Ok(out)
        }
        async fn retry(&self, token: &ItemToken, retry_in: Duration, error: &str) -> Result<()> {
            self.settle(token, |s, id| {
                let e = s.items.get_mut(&id).unwrap();
                e.1 = None;
                e.2 = Some(error.to_owned());
                s.retried.push((id, retry_in));
            })
        }
        async fn release(&self, token: &ItemToken, retry_in: Duration) -> Result<()> {
            self.settle(token, |s, id| {
                let e = s.items.get_mut(&id).unwrap();
                e.0 -= 1;
                e.1 = None;
                s.released.push((id, retry_in));
            })
        }
        async fn renew(&self, token: &ItemToken, _lease: Duration) -> Result<()> {
            self.settle(token, |s, _| s.renewals += 1)
        }
        async fn bury(&self, token: &ItemToken, error: &str) -> Result<()> {
            self.settle(token, |s, id| {
                s.items.remove(&id);
                s.dead.insert(id, error.to_owned());
            })
        }
        async fn stats(&self) -> Result<QueueStats> {
            let s = self.state.lock().unwrap();
            Ok(QueueStats { depth: s.items.len() as u64, dead: s.dead.len() as u64, ..Default::default() })
        }
        async fn handle(&self, item: &Item) -> Outcome {
            let Body::Test(id) = item.body else { unreachable!() };
            {
                let mut s = self.state.lock().unwrap();
                s.running += 1;
                s.max_running = s.max_running.max(s.running);
                s.handled.push(id);
            }
            if !self.handle_delay.is_zero() {
                tokio::time::sleep(self.handle_delay).await;
            }
            self.state.lock().unwrap().running -= 1;
            if self.panic_on == Some(id) {
                panic!("boom");
            }
            let mut script = self.script.lock().unwrap();
            match script.get_mut(&id) {
                Some(v) if !v.is_empty() => v.remove(0),
                _ => Outcome::Done,
            }
        }
    }

    fn opts() -> WorkerOptions {
        WorkerOptions {
            batch: 4,
            concurrency: 3,
            lease: Duration::from_secs(1),
            poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(20),
            backoff: super::super::Backoff { jitter: 0.0, ..Default::default() },
            max_attempts: 3,
        }
    }

    async fn start(q: Arc<TestQueue>, o: WorkerOptions) -> RuntimeHandle {
        let store: Arc<dyn Store> = Arc::new(crate::MemoryStore::new());
        Runtime::builder(store).queue(q, o).build().start().await.unwrap()
    }

    async fn until(q: &TestQueue, f: impl Fn(&TestState) -> bool) {
        for _ in 0..500 {
            if f(&q.state.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached: {:?}", q.state.lock().unwrap());
    }

    #[tokio::test]
    async fn every_item_is_handled_once_with_bounded_concurrency() {
        let q = Arc::new(TestQueue { handle_delay: Duration::from_millis(20), ..TestQueue::with_items(20) });
        let h = start(q.clone(), opts()).await;
        until(&q, |s| s.acked.len() == 20).await;
        {
            let s = q.state.lock().unwrap();
            let mut handled = s.handled.clone();
            handled.sort_unstable();
            assert_eq!(handled, (0..20).collect::<Vec<_>>());
            assert!(s.max_running <= 3 && s.max_running >= 2, "max running {}", s.max_running);
        }
        let stats = h.stats().await;
        assert_eq!((stats[0].claimed, stats[0].done, stats[0].in_flight), (20, 20, 0));
        assert_eq!(h.shutdown(Duration::from_secs(1)).await, ShutdownReport::default());
    }

    #[tokio::test]
    async fn finished_items_are_removed_in_batches() {
        // Removals take a while: items finishing meanwhile share the next one.
        let q = Arc::new(TestQueue { ack_delay: Duration::from_millis(30), ..TestQueue::with_items(60) });
        let h = start(q.clone(), WorkerOptions { batch: 20, concurrency: 20, ..opts() }).await;
        until(&q, |s| s.acked.len() == 60).await;
        {
            let s = q.state.lock().unwrap();
            let mut acked = s.acked.clone();
            acked.sort_unstable();
            assert_eq!(acked, (0..60).collect::<Vec<_>>(), "each item removed once");
            assert_eq!(s.ack_batches.iter().sum::<usize>(), 60);
            assert!(s.ack_batches.len() < 60, "no batching: {:?}", s.ack_batches);
            assert!(s.ack_batches.iter().any(|&n| n > 1), "batches {:?}", s.ack_batches);
        }
        let stats = h.stats().await;
        assert_eq!((stats[0].done, stats[0].lost_leases, stats[0].in_flight), (60, 0, 0));
        assert_eq!(h.shutdown(Duration::from_secs(1)).await, ShutdownReport::default());
    }

    #[tokio::test]
    async fn under_load_claims_wait_for_half_a_batch_of_free_slots() {
        let q = Arc::new(TestQueue { handle_delay: Duration::from_millis(5), ..TestQueue::with_items(200) });
        let h = start(q.clone(), WorkerOptions { batch: 20, concurrency: 20, ..opts() }).await;
        until(&q, |s| s.acked.len() == 200).await;
        let limits = q.state.lock().unwrap().claim_limits.clone();
        assert!(limits.iter().all(|&l| l >= 10), "every claim asks for at least half a batch: {limits:?}");
        assert!(limits.len() <= 40, "about one claim per half batch, not per item: {} claims", limits.len());
        h.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn retries_follow_the_schedule_then_dead_letter() {
        let q = Arc::new(TestQueue::with_items(3));
        q.script.lock().unwrap().insert(
            0,
            vec![Outcome::retry("e1"), Outcome::Retry { error: "e2".into(), after: Some(Duration::from_secs(30)) }],
        );
        q.script.lock().unwrap().insert(1, vec![Outcome::retry("x"); 5]);
        q.script.lock().unwrap().insert(2, vec![Outcome::Fail { error: "never".into() }]);
        // Retried items are due at once in this queue, so attempts follow immediately.
        let h = start(q.clone(), opts()).await;
        until(&q, |s| s.items.is_empty()).await;
        {
            let s = q.state.lock().unwrap();
            assert_eq!(s.acked, vec![0]);
            // Item 0: the schedule's 1 s, then the handler's 30 s (longer than 2 s).
            let delays0: Vec<Duration> = s.retried.iter().filter(|(i, _)| *i == 0).map(|(_, d)| *d).collect();
            assert_eq!(delays0, [Duration::from_secs(1), Duration::from_secs(30)]);
            assert!(s.dead[&1].starts_with("gave up after 3 attempts: x"), "{}", s.dead[&1]);
            assert_eq!(s.dead[&2], "never");
        }
        let stats = &h.stats().await[0];
        assert_eq!((stats.retried, stats.dead_lettered, stats.done), (4, 2, 1));
        assert_eq!(stats.queue.unwrap().dead, 2);
        h.shutdown(Duration::ZERO).await;
    }

    #[tokio::test]
    async fn deferrals_do_not_count_attempts() {
        let q = Arc::new(TestQueue::with_items(1));
        q.script.lock().unwrap().insert(0, vec![Outcome::Defer { after: Duration::from_millis(1) }; 5]);
        let h = start(q.clone(), opts()).await;
        until(&q, |s| s.acked == [0]).await;
        {
            let s = q.state.lock().unwrap();
            assert_eq!(s.released.len(), 5);
            assert!(s.dead.is_empty(), "five deferrals with max_attempts 3 are not a failure");
        }
        h.shutdown(Duration::ZERO).await;
    }

    #[tokio::test]
    async fn slow_handlers_keep_their_lease() {
        let q = Arc::new(TestQueue { handle_delay: Duration::from_millis(900), ..TestQueue::with_items(1) });
        let h = start(q.clone(), opts()).await;
        until(&q, |s| s.acked == [0]).await;
        // 1 s lease renewed every ~333 ms during a 900 ms handler.
        assert!(q.state.lock().unwrap().renewals >= 2);
        h.shutdown(Duration::ZERO).await;
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_failed_attempt() {
        let q = Arc::new(TestQueue { panic_on: Some(0), ..TestQueue::with_items(1) });
        let h = start(q.clone(), opts()).await;
        until(&q, |s| s.dead.contains_key(&0)).await;
        assert!(q.state.lock().unwrap().dead[&0].contains("panicked"));
        assert_eq!(h.stats().await[0].panics, 3);
        h.shutdown(Duration::ZERO).await;
    }

    #[tokio::test]
    async fn shutdown_waits_for_the_grace_period_then_releases() {
        let q = Arc::new(TestQueue { handle_delay: Duration::from_secs(30), ..TestQueue::with_items(2) });
        let h = start(q.clone(), opts()).await;
        until(&q, |s| s.running == 2).await;
        let report = h.shutdown(Duration::from_millis(50)).await;
        assert_eq!(report, ShutdownReport { finished: 0, released: 2 });
        {
            let s = q.state.lock().unwrap();
            assert!(
                s.items.values().all(|(attempt, lease, e)| *attempt == 1
                    && lease.is_none()
                    && e.as_deref() == Some("interrupted by a shutdown")),
                "{s:?}"
            );
        }

        let q = Arc::new(TestQueue { handle_delay: Duration::from_millis(50), ..TestQueue::with_items(2) });
        let h = start(q.clone(), opts()).await;
        until(&q, |s| s.running == 2).await;
        let report = h.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report, ShutdownReport { finished: 2, released: 0 });
        assert_eq!(q.state.lock().unwrap().acked.len(), 2);
    }

    #[tokio::test]
    async fn bad_options_are_refused() {
        let store: Arc<dyn Store> = Arc::new(crate::MemoryStore::new());
        let q = Arc::new(TestQueue::default());
        let e = Runtime::builder(store.clone())
            .queue(q.clone(), WorkerOptions { batch: 0, ..opts() })
            .build()
            .start()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Validation { .. }));
        let e = Runtime::builder(store).queue(q.clone(), opts()).queue(q, opts()).build().start().await.unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}

//! [`Batcher`]: single requests made by many concurrent tasks, run as
//! batches (group commit).
//!
//! Worker handlers run one item each, at high concurrency; each of them
//! reading or writing one row is one round trip per item. A batcher sits in
//! front of a batch operation (one statement for many rows): a call queues
//! its request and waits; one task takes every request waiting — up to a
//! maximum — runs them as one batch and answers each caller. There is no
//! timer: a lone request runs at once, and under load the requests arriving
//! while one batch runs share the next. Every request is queued before the
//! batch that answers it starts, so it sees everything its caller saw.

use futures_util::future::BoxFuture;
use std::fmt;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

use crate::{Error, Result};

type Run<Req, Resp> = Arc<dyn Fn(Vec<Req>) -> BoxFuture<'static, Result<Vec<Resp>>> + Send + Sync>;
type Pending<Req, Resp> = (Req, oneshot::Sender<Result<Resp>>);

/// Runs concurrent single requests as batches; see the module docs.
pub struct Batcher<Req, Resp> {
    name: &'static str,
    max: usize,
    run: Run<Req, Resp>,
    queue: Mutex<Option<mpsc::UnboundedSender<Pending<Req, Resp>>>>,
}

impl<Req, Resp> fmt::Debug for Batcher<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher").field("name", &self.name).field("max", &self.max).finish()
    }
}

/// A copy of `e` for each caller of a failed batch (errors are not `Clone`).
fn copy(e: &Error) -> Error {
    Error::Storage { message: e.to_string(), transient: e.is_transient(), source: None }
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// A batcher named `name` (for logs) running at most `max` requests per
    /// batch through `run`, which must answer one response per request, in
    /// order. The task that runs batches starts with the first call (in
    /// that call's Tokio runtime) and ends when the batcher is dropped.
    pub fn new<F>(name: &'static str, max: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> BoxFuture<'static, Result<Vec<Resp>>> + Send + Sync + 'static,
    {
        Self { name, max: max.max(1), run: Arc::new(run), queue: Mutex::new(None) }
    }

    /// Runs `req` in the next batch and returns its response. An error of
    /// the whole batch reaches every caller in it (as a [`Error::Storage`]
    /// with the same message and transience).
    pub async fn call(&self, req: Req) -> Result<Resp> {
        let (tx, rx) = oneshot::channel();
        let queued = self.sender().send((req, tx));
        if let Err(mpsc::error::SendError((req, _))) = queued {
            // The batch task is gone (its runtime ended): run alone.
            *self.queue.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let mut out = (self.run)(vec![req]).await?;
            return out.pop().ok_or_else(|| self.mismatch());
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::Storage {
                message: format!("{}: the batch was dropped", self.name),
                transient: true,
                source: None,
            })
        })
    }

    fn mismatch(&self) -> Error {
        Error::Storage {
            message: format!("{}: the batch answered a different number of requests", self.name),
            transient: false,
            source: None,
        }
    }

    fn sender(&self) -> mpsc::UnboundedSender<Pending<Req, Resp>> {
        let mut slot = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = slot.as_ref().filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drain(self.name, self.max, self.run.clone(), rx));
        *slot = Some(tx.clone());
        tx
    }
}

/// The batch task: takes what is waiting, runs it, answers, repeats.
async fn drain<Req, Resp>(
    name: &'static str,
    max: usize,
    run: Run<Req, Resp>,
    mut rx: mpsc::UnboundedReceiver<Pending<Req, Resp>>,
) {
    let mut batch: Vec<Pending<Req, Resp>> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (reqs, replies): (Vec<Req>, Vec<_>) = batch.drain(..).unzip();
        let n = reqs.len();
        match run(reqs).await {
            Ok(out) if out.len() == n => {
                for (resp, reply) in out.into_iter().zip(replies) {
                    let _ = reply.send(Ok(resp));
                }
            }
            Ok(out) => {
                tracing::error!(batcher = name, asked = n, answered = out.len(), "a batch answered the wrong count");
                for reply in replies {
                    let _ = reply.send(Err(Error::Storage {
                        message: format!("{name}: the batch answered a different number of requests"),
                        transient: false,
                        source: None,
                    }));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(copy(&e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn doubling(sizes: Arc<Mutex<Vec<usize>>>, delay: Duration) -> Batcher<u32, u32> {
        Batcher::new("test", 8, move |reqs: Vec<u32>| {
            let sizes = sizes.clone();
            async move {
                sizes.lock().unwrap().push(reqs.len());
                tokio::time::sleep(delay).await;
                if reqs.contains(&13) {
                    return Err(Error::Storage { message: "unlucky".into(), transient: true, source: None });
                }
                Ok(reqs.into_iter().map(|r| r * 2).collect())
            }
            .boxed()
        })
    }

    #[tokio::test]
    async fn a_lone_call_runs_at_once() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let b = doubling(sizes.clone(), Duration::ZERO);
        assert_eq!(b.call(21).await.unwrap(), 42);
        assert_eq!(*sizes.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_each_gets_its_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::new(doubling(sizes.clone(), Duration::from_millis(20)));
        let tasks: Vec<_> = (0..40u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.call(100 + i).await.unwrap()) })
            })
            .collect();
        for t in tasks {
            let (i, got) = t.await.unwrap();
            assert_eq!(got, (100 + i) * 2, "answer of request {i}");
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 40, "every request ran once: {sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 8), "the maximum holds: {sizes:?}");
        assert!(sizes.len() < 40, "requests were batched: {sizes:?}");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_callers_and_the_next_batch_runs() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let b = doubling(sizes, Duration::ZERO);
        let err = b.call(13).await.expect_err("the batch fails");
        assert!(err.is_transient() && err.to_string().contains("unlucky"), "{err}");
        assert_eq!(b.call(2).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_wrong_count_is_an_error_not_a_wrong_answer() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let b: Batcher<u32, u32> = Batcher::new("short", 4, move |_reqs: Vec<u32>| {
            c.fetch_add(1, Ordering::Relaxed);
            async { Ok(Vec::new()) }.boxed()
        });
        let err = b.call(1).await.expect_err("no answer");
        assert!(!err.is_transient() && err.to_string().contains("different number"), "{err}");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}

//! The `JobStore` port: durable scheduled jobs ("run this at time T, once"),
//! claimed with leases like the outbox, shared by every process on one
//! database. Retries, campaigns and follow-up sequences are built on it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::time::Duration;

use crate::{AccountId, Error, JobId, Page, PageRequest, Result};

/// A job kind: 1–64 of `a-z`, `0-9`, `_`, `.`, `-` (like consumer names).
pub fn check_job_kind(kind: &str) -> Result<()> {
    let ok = (1..=64).contains(&kind.len())
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if !ok {
        return Err(Error::validation("kind", "must be 1 to 64 of a-z, 0-9, _ . -"));
    }
    Ok(())
}

/// Largest serialized job payload, in bytes.
pub const MAX_JOB_PAYLOAD_BYTES: usize = 64 * 1024;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobState {
    /// Waiting for its time, or for a worker (possibly leased right now).
    Scheduled,
    /// Gave up after its attempts (or a handler's permanent failure); kept
    /// until replayed or cancelled.
    Dead,
}

impl JobState {
    /// `scheduled` / `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Dead => "dead",
        }
    }

    /// Parses [`JobState::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "scheduled" => Ok(JobState::Scheduled),
            "dead" => Ok(JobState::Dead),
            _ => Err(Error::validation("state", "must be scheduled or dead")),
        }
    }
}

/// A durable job. A job that completes is removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// Which handler runs it.
    pub kind: String,
    /// The account it works for; `None` for system jobs.
    pub account_id: Option<AccountId>,
    /// Its input (JSON, ≤ 64 KiB).
    pub payload: serde_json::Value,
    /// While a job with a key is scheduled or dead, no other job of the same
    /// kind may take that key (scheduling one is [`Error::Conflict`]).
    pub unique_key: Option<String>,
    /// When it is due (moved by retries).
    pub run_at: DateTime<Utc>,
    /// Claims so far.
    pub attempt: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// Scheduled or dead.
    pub state: JobState,
    /// When it was scheduled.
    pub created_at: DateTime<Utc>,
}

impl Job {
    /// A new job of `kind` due at `run_at`. [`Error::Validation`] for a bad
    /// kind, a payload over [`MAX_JOB_PAYLOAD_BYTES`] or a key over 200 characters.
    pub fn new(
        kind: &str,
        account_id: Option<AccountId>,
        payload: serde_json::Value,
        run_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        check_job_kind(kind)?;
        check_job_payload(&payload)?;
        Ok(Job {
            id: JobId::new(),
            kind: kind.to_owned(),
            account_id,
            payload,
            unique_key: None,
            run_at,
            attempt: 0,
            last_error: None,
            state: JobState::Scheduled,
            created_at: now,
        })
    }

    /// Sets the unique key (1–200 characters without control characters).
    pub fn with_unique_key(mut self, key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        check_job_unique_key(&key)?;
        self.unique_key = Some(key);
        Ok(self)
    }
}

fn check_job_payload(payload: &serde_json::Value) -> Result<()> {
    let size = serde_json::to_string(payload).map(|s| s.len()).unwrap_or(usize::MAX);
    if size > MAX_JOB_PAYLOAD_BYTES {
        return Err(Error::validation("payload", format!("at most {MAX_JOB_PAYLOAD_BYTES} bytes")));
    }
    Ok(())
}

fn check_job_unique_key(key: &str) -> Result<()> {
    if !(1..=200).contains(&key.chars().count()) || key.chars().any(char::is_control) {
        return Err(Error::validation("unique_key", "must be 1 to 200 characters without control characters"));
    }
    Ok(())
}

/// Checks a job handed to [`JobStore::schedule_job`] as [`Job::new`] and
/// [`Job::with_unique_key`] do (its fields are public, so it may have been
/// built by hand): the kind, the payload size and the unique key.
/// [`Error::Validation`] otherwise; every adapter calls it before storing.
pub fn check_job(job: &Job) -> Result<()> {
    check_job_kind(&job.kind)?;
    check_job_payload(&job.payload)?;
    job.unique_key.as_deref().map_or(Ok(()), check_job_unique_key)
}

/// Identifies one lease on one job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobToken {
    /// The job.
    pub job_id: JobId,
    /// Unique per claim.
    pub lease_id: uuid::Uuid,
}

/// A job handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct JobClaim {
    /// Pass to the completion methods.
    pub token: JobToken,
    /// The job, with `attempt` already counting this claim.
    pub job: Job,
}

/// Which jobs to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// The page.
    pub page: PageRequest,
}

/// How a queue (an outbox consumer or a job kind) is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    /// Items waiting or running (not dead).
    pub depth: u64,
    /// Items due now and not leased.
    pub due: u64,
    /// When the oldest due, unleased item became due (the lag is now minus this).
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// Dead letters kept.
    pub dead: u64,
}

/// Durable jobs.
///
/// Contract (checked by `crm_core::testing::store::jobs`):
/// - A job is claimed by one worker at a time: concurrent `claim_jobs`
///   callers never receive the same job while its lease holds
///   (`FOR UPDATE SKIP LOCKED` on PostgreSQL); a job whose lease expired is
///   handed out again with a new lease id (at-least-once), and the old
///   holder's completion calls are refused with [`Error::Conflict`].
/// - Only due (`run_at <= now`), scheduled, unleased jobs are claimed, earliest
///   `run_at` first; each claim adds one to `attempt`.
/// - `release_job` gives a job back without counting the attempt.
/// - Dead jobs are kept, listed, and scheduled again by `replay_job`.
/// - Lease, due and "now" times are the store's clock (the database's on SQL
///   stores), so processes agree on expiry.
#[async_trait]
pub trait JobStore: Send + Sync + Debug + 'static {
    /// Stores a job. [`Error::Validation`] when [`check_job`] refuses it;
    /// [`Error::Conflict`] when its id is taken, or its `unique_key` is held
    /// by a scheduled or dead job of the same kind.
    async fn schedule_job(&self, job: &Job) -> Result<()>;

    /// One job of the account; [`Error::NotFound`] when missing (or done).
    async fn get_job(&self, account: AccountId, id: JobId) -> Result<Job>;

    /// The account's jobs matching `query`, in id order after the cursor.
    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> Result<Page<Job>>;

    /// Removes a scheduled or dead job that is not leased right now.
    /// [`Error::NotFound`] when missing; [`Error::Conflict`] when a worker holds it.
    async fn cancel_job(&self, account: AccountId, id: JobId) -> Result<()>;

    /// Claims up to `limit` (1..=1000) due jobs of these kinds for `lease`.
    async fn claim_jobs(&self, kinds: &[String], limit: u32, lease: Duration) -> Result<Vec<JobClaim>>;

    /// Extends a lease to `lease` from now. [`Error::Conflict`] when the lease
    /// was lost; [`Error::NotFound`] when the job is gone.
    async fn renew_job(&self, token: &JobToken, lease: Duration) -> Result<()>;

    /// Removes a finished job. Errors as [`JobStore::renew_job`].
    async fn complete_job(&self, token: &JobToken) -> Result<()>;

    /// Removes several finished jobs, in one round trip where the store can.
    /// Returns, for each token in order, whether it was removed: `false`
    /// where [`JobStore::complete_job`] would answer [`Error::Conflict`] or
    /// [`Error::NotFound`]. Any other error fails the call; jobs already
    /// removed stay removed.
    async fn complete_jobs(&self, tokens: &[JobToken]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(tokens.len());
        for t in tokens {
            out.push(crate::ports::store::settled_or_lost(self.complete_job(t).await)?);
        }
        Ok(out)
    }

    /// Gives a job back, due again after `retry_in`, recording `error`.
    /// Errors as [`JobStore::renew_job`].
    async fn retry_job(&self, token: &JobToken, retry_in: Duration, error: &str) -> Result<()>;

    /// Gives a job back, due again after `retry_in`, without counting the
    /// attempt (pacing, shutdown). Errors as [`JobStore::renew_job`].
    async fn release_job(&self, token: &JobToken, retry_in: Duration) -> Result<()>;

    /// Moves a job to the dead state with `error`. Errors as [`JobStore::renew_job`].
    async fn bury_job(&self, token: &JobToken, error: &str) -> Result<()>;

    /// Schedules a dead job again, due now with its attempts reset (its
    /// `last_error` is kept).
    /// [`Error::NotFound`] when the account has no dead job with this id.
    async fn replay_job(&self, account: AccountId, id: JobId) -> Result<Job>;

    /// Depth, due count, oldest due time and dead count of a kind.
    async fn job_stats(&self, kind: &str) -> Result<QueueStats>;
}

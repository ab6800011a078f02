//! [`JobStore`] for [`PgStore`]: durable jobs in the `jobs` table.
//!
//! Run, lease and "now" times are the database clock (`now()`), so every
//! process on the database agrees on what is due and when a lease expires.
//! Claims take rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
//! never block on or share a job. Completed jobs are deleted; dead ones stay
//! (with their unique key) until replayed or cancelled.

use async_trait::async_trait;
use std::time::Duration;

use crm_core::ports::jobs::{check_job, check_job_kind};
use crm_core::ports::store::check_event_limit;
use crm_core::{AccountId, Error, Job, JobClaim, JobId, JobQuery, JobStore, JobToken, Page, QueueStats, Result};

use super::PgStore;
use crate::error::db;
use crate::rows::events::clip_error;
use crate::rows::jobs::{job_columns, job_row};
use crate::rows::{duration_micros, get, queue_stats_row};

/// Stores a (checked) job through `ex` (the pool or a transaction); a
/// taken id or unique key is [`Error::Conflict`].
pub(super) async fn insert_job<'e>(ex: impl sqlx::PgExecutor<'e>, job: &Job) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, account_id, payload, unique_key, run_at, attempt, last_error, state, \
                           created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(job.id.into_uuid())
    .bind(&job.kind)
    .bind(job.account_id.map(AccountId::into_uuid))
    .bind(&job.payload)
    .bind(job.unique_key.as_deref())
    .bind(job.run_at)
    .bind(i32::try_from(job.attempt).unwrap_or(i32::MAX))
    .bind(job.last_error.as_deref().map(clip_error))
    .bind(job.state.as_str())
    .bind(job.created_at)
    .execute(ex)
    .await
    .map_err(|e| db("scheduling a job", e))?;
    Ok(())
}

#[async_trait]
impl JobStore for PgStore {
    async fn schedule_job(&self, job: &Job) -> Result<()> {
        check_job(job)?;
        insert_job(&self.pool, job).await
    }

    async fn get_job(&self, account: AccountId, id: JobId) -> Result<Job> {
        crate::rows::jobs::get_job(self, account, id).await
    }

    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> Result<Page<Job>> {
        crate::rows::jobs::list_jobs(self, account, query).await
    }

    async fn cancel_job(&self, account: AccountId, id: JobId) -> Result<()> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id = $1 AND account_id = $2 AND (lease_until IS NULL OR lease_until <= now())",
        )
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .execute(&self.pool)
        .await
        .map_err(|e| db("cancelling a job", e))?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let held = sqlx::query("SELECT 1 FROM jobs WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a job", e))?;
        Err(match held {
            Some(_) => Error::conflict("job", "a worker is running it"),
            None => Error::not_found("job"),
        })
    }

    async fn claim_jobs(&self, kinds: &[String], limit: u32, lease: Duration) -> Result<Vec<JobClaim>> {
        check_event_limit(limit)?;
        for k in kinds {
            check_job_kind(k)?;
        }
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(concat!(
            "WITH due AS ( \
                 SELECT id FROM jobs \
                 WHERE kind = ANY($1) AND state = 'scheduled' AND run_at <= now() \
                   AND (lease_until IS NULL OR lease_until <= now()) \
                 ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED \
             ), leased AS ( \
                 UPDATE jobs j SET lease_id = gen_random_uuid(), \
                     lease_until = now() + $3::bigint * interval '1 microsecond', attempt = j.attempt + 1 \
                 FROM due WHERE j.id = due.id \
                 RETURNING j.* \
             ) \
             SELECT lease_id, ",
            job_columns!(),
            " FROM leased ORDER BY run_at, id"
        ))
        .bind(kinds)
        .bind(i64::from(limit))
        .bind(duration_micros(lease))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("claiming jobs", e))?;
        rows.iter()
            .map(|r| {
                let job = job_row(r)?;
                Ok(JobClaim { token: JobToken { job_id: job.id, lease_id: get(r, "lease_id")? }, job })
            })
            .collect()
    }

    async fn renew_job(&self, token: &JobToken, lease: Duration) -> Result<()> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = now() + $3::bigint * interval '1 microsecond' \
             WHERE id = $1 AND lease_id = $2 AND state = 'scheduled'",
        )
        .bind(token.job_id.into_uuid())
        .bind(token.lease_id)
        .bind(duration_micros(lease))
        .execute(&self.pool)
        .await
        .map_err(|e| db("renewing a job lease", e))?;
        self.job_settled(token, done.rows_affected()).await
    }

    async fn complete_job(&self, token: &JobToken) -> Result<()> {
        let mut conn = self.bookkeeping("completing a job").await?;
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id = $1 AND lease_id = $2 AND state = 'scheduled' \
             AND set_config('synchronous_commit', 'off', true) IS NOT NULL",
        )
        .bind(token.job_id.into_uuid())
        .bind(token.lease_id)
        .execute(&mut *conn)
        .await;
        let done = conn.settle(done).map_err(|e| db("completing a job", e))?;
        self.job_settled(token, done.rows_affected()).await
    }

    async fn complete_jobs(&self, tokens: &[JobToken]) -> Result<Vec<bool>> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for the whole batch, committed asynchronously like
        // `complete_job`; the rows it removed tell which leases still held.
        let ids: Vec<uuid::Uuid> = tokens.iter().map(|t| t.job_id.into_uuid()).collect();
        let leases: Vec<uuid::Uuid> = tokens.iter().map(|t| t.lease_id).collect();
        let mut conn = self.bookkeeping("completing jobs").await?;
        let rows = sqlx::query_scalar::<_, uuid::Uuid>(
            "DELETE FROM jobs j USING UNNEST($1::uuid[], $2::uuid[]) AS t(id, lease_id) \
             WHERE j.id = t.id AND j.lease_id = t.lease_id AND j.state = 'scheduled' \
             AND set_config('synchronous_commit', 'off', true) IS NOT NULL RETURNING j.lease_id",
        )
        .bind(&ids)
        .bind(&leases)
        .fetch_all(&mut *conn)
        .await;
        let done = conn.settle(rows).map_err(|e| db("completing jobs", e))?;
        let done: std::collections::HashSet<uuid::Uuid> = done.into_iter().collect();
        Ok(tokens.iter().map(|t| done.contains(&t.lease_id)).collect())
    }

    async fn retry_job(&self, token: &JobToken, retry_in: Duration, error: &str) -> Result<()> {
        let mut conn = self.bookkeeping("retrying a job").await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_id = NULL, lease_until = NULL, \
                 run_at = now() + $3::bigint * interval '1 microsecond', last_error = $4 \
             WHERE id = $1 AND lease_id = $2 AND state = 'scheduled' \
               AND set_config('synchronous_commit', 'off', true) IS NOT NULL",
        )
        .bind(token.job_id.into_uuid())
        .bind(token.lease_id)
        .bind(duration_micros(retry_in))
        .bind(clip_error(error))
        .execute(&mut *conn)
        .await;
        let done = conn.settle(done).map_err(|e| db("retrying a job", e))?;
        self.job_settled(token, done.rows_affected()).await
    }

    async fn release_job(&self, token: &JobToken, retry_in: Duration) -> Result<()> {
        let mut conn = self.bookkeeping("releasing a job").await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_id = NULL, lease_until = NULL, \
                 run_at = now() + $3::bigint * interval '1 microsecond', attempt = GREATEST(attempt - 1, 0) \
             WHERE id = $1 AND lease_id = $2 AND state = 'scheduled' \
               AND set_config('synchronous_commit', 'off', true) IS NOT NULL",
        )
        .bind(token.job_id.into_uuid())
        .bind(token.lease_id)
        .bind(duration_micros(retry_in))
        .execute(&mut *conn)
        .await;
        let done = conn.settle(done).map_err(|e| db("releasing a job", e))?;
        self.job_settled(token, done.rows_affected()).await
    }

    async fn bury_job(&self, token: &JobToken, error: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_id = NULL, lease_until = NULL, state = 'dead', last_error = $3 \
             WHERE id = $1 AND lease_id = $2 AND state = 'scheduled'",
        )
        .bind(token.job_id.into_uuid())
        .bind(token.lease_id)
        .bind(clip_error(error))
        .execute(&self.pool)
        .await
        .map_err(|e| db("dead-lettering a job", e))?;
        self.job_settled(token, done.rows_affected()).await
    }

    async fn replay_job(&self, account: AccountId, id: JobId) -> Result<Job> {
        let row = sqlx::query(concat!(
            "UPDATE jobs SET state = 'scheduled', attempt = 0, run_at = now(), lease_id = NULL, lease_until = NULL \
             WHERE id = $1 AND account_id = $2 AND state = 'dead' RETURNING ",
            job_columns!()
        ))
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db("replaying a job", e))?;
        row.map(|r| job_row(&r)).transpose()?.ok_or(Error::not_found("dead job"))
    }

    async fn job_stats(&self, kind: &str) -> Result<QueueStats> {
        check_job_kind(kind)?;
        let row = sqlx::query(
            "WITH q AS ( \
                 SELECT state = 'dead' AS dead, \
                        state = 'scheduled' AND run_at <= now() AND (lease_until IS NULL OR lease_until <= now()) \
                            AS due, \
                        run_at \
                 FROM jobs WHERE kind = $1 \
             ) \
             SELECT COUNT(*) FILTER (WHERE NOT dead) AS depth, COUNT(*) FILTER (WHERE due) AS due, \
                    MIN(run_at) FILTER (WHERE due) AS oldest_due_at, COUNT(*) FILTER (WHERE dead) AS dead \
             FROM q",
        )
        .bind(kind)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db("reading job statistics", e))?;
        queue_stats_row(&row)
    }
}

impl PgStore {
    /// The result of a job settlement that changed `rows`: nothing when it
    /// matched, else why not — the job is gone (or dead), or another lease
    /// holds it.
    async fn job_settled(&self, token: &JobToken, rows: u64) -> Result<()> {
        if rows > 0 {
            return Ok(());
        }
        let found = sqlx::query("SELECT 1 FROM jobs WHERE id = $1 AND state = 'scheduled'")
            .bind(token.job_id.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a job", e))?;
        Err(match found {
            Some(_) => Error::conflict("job", "the lease was lost to another claim"),
            None => Error::not_found("job"),
        })
    }
}

//! [`JobStore`] for [`SqliteStore`]: durable jobs in the `jobs` table.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction (writers queue on
//! SQLite's write lock), so two claimers never lease the same job; the lease
//! is a column checked against the store's clock, like the outbox's.
//! Completed jobs are deleted; dead ones stay (with their unique key) until
//! replayed or cancelled.

use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

use crm_core::ports::jobs::{check_job, check_job_kind};
use crm_core::ports::store::check_event_limit;
use crm_core::{AccountId, Error, Job, JobClaim, JobId, JobQuery, JobStore, JobToken, Page, QueueStats, Result};

use super::{SqliteStore, Tx, commit, json_string, now_micros};
use crate::error::db;
use crate::rows::events::clip_error;
use crate::rows::jobs::{job_columns, job_row};
use crate::rows::{duration_micros, micros, queue_stats_row};

/// Stores a (checked) job in a write transaction; a taken id or unique
/// key is [`Error::Conflict`].
pub(super) async fn insert_job(tx: &mut Tx, job: &Job) -> Result<()> {
    let payload = json_string("payload", &job.payload)?;
    sqlx::query(
        "INSERT INTO jobs (id, kind, account_id, payload, unique_key, run_at, attempt, last_error, state, \
                           created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job.id.into_uuid())
    .bind(&job.kind)
    .bind(job.account_id.map(AccountId::into_uuid))
    .bind(payload)
    .bind(job.unique_key.as_deref())
    .bind(micros(job.run_at))
    .bind(i64::from(job.attempt))
    .bind(job.last_error.as_deref().map(clip_error))
    .bind(job.state.as_str())
    .bind(micros(job.created_at))
    .execute(&mut **tx)
    .await
    .map_err(|e| db("scheduling a job", e))?;
    Ok(())
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn schedule_job(&self, job: &Job) -> Result<()> {
        check_job(job)?;
        let mut tx = self.write().await?;
        insert_job(&mut tx, job).await?;
        commit(tx).await
    }

    async fn get_job(&self, account: AccountId, id: JobId) -> Result<Job> {
        crate::rows::jobs::get_job(self, account, id).await
    }

    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> Result<Page<Job>> {
        crate::rows::jobs::list_jobs(self, account, query).await
    }

    async fn cancel_job(&self, account: AccountId, id: JobId) -> Result<()> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT lease_until FROM jobs WHERE id = ? AND account_id = ?")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("reading a job", e))?;
        let Some(row) = row else { return Err(Error::not_found("job")) };
        let lease_until: Option<i64> = crate::rows::get(&row, "lease_until")?;
        if lease_until.is_some_and(|until| until > now_micros()) {
            return Err(Error::conflict("job", "a worker is running it"));
        }
        sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(id.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("cancelling a job", e))?;
        commit(tx).await
    }

    async fn claim_jobs(&self, kinds: &[String], limit: u32, lease: Duration) -> Result<Vec<JobClaim>> {
        check_event_limit(limit)?;
        for k in kinds {
            check_job_kind(k)?;
        }
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let kinds = json_string("kinds", &kinds)?;
        let mut tx = self.write().await?;
        let now = now_micros();
        let until = now.saturating_add(duration_micros(lease));
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs \
             WHERE kind IN (SELECT value FROM json_each(?1)) AND state = 'scheduled' AND run_at <= ?2 \
               AND (lease_until IS NULL OR lease_until <= ?2) \
             ORDER BY run_at, id LIMIT ?3"
        ))
        .bind(kinds)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db("claiming jobs", e))?;
        let mut claims = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut job = job_row(r)?;
            let lease_id = Uuid::now_v7();
            sqlx::query("UPDATE jobs SET lease_id = ?, lease_until = ?, attempt = attempt + 1 WHERE id = ?")
                .bind(lease_id)
                .bind(until)
                .bind(job.id.into_uuid())
                .execute(&mut *tx)
                .await
                .map_err(|e| db("claiming jobs", e))?;
            job.attempt = job.attempt.saturating_add(1);
            claims.push(JobClaim { token: JobToken { job_id: job.id, lease_id }, job });
        }
        commit(tx).await?;
        Ok(claims)
    }

    async fn renew_job(&self, token: &JobToken, lease: Duration) -> Result<()> {
        let until = now_micros().saturating_add(duration_micros(lease));
        let sql = "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND lease_id = ?2 AND state = 'scheduled'";
        self.settle_job(token, "renewing a job lease", sql, Some(until), None).await
    }

    async fn complete_job(&self, token: &JobToken) -> Result<()> {
        let sql = "DELETE FROM jobs WHERE id = ?1 AND lease_id = ?2 AND state = 'scheduled'";
        self.settle_job(token, "completing a job", sql, None, None).await
    }

    async fn retry_job(&self, token: &JobToken, retry_in: Duration, error: &str) -> Result<()> {
        let run_at = now_micros().saturating_add(duration_micros(retry_in));
        let sql = "UPDATE jobs SET lease_id = NULL, lease_until = NULL, run_at = ?3, last_error = ?4 \
                   WHERE id = ?1 AND lease_id = ?2 AND state = 'scheduled'";
        self.settle_job(token, "retrying a job", sql, Some(run_at), Some(clip_error(error))).await
    }

    async fn release_job(&self, token: &JobToken, retry_in: Duration) -> Result<()> {
        let run_at = now_micros().saturating_add(duration_micros(retry_in));
        let sql = "UPDATE jobs SET lease_id = NULL, lease_until = NULL, run_at = ?3, attempt = max(attempt - 1, 0) \
                   WHERE id = ?1 AND lease_id = ?2 AND state = 'scheduled'";
        self.settle_job(token, "releasing a job", sql, Some(run_at), None).await
    }

    async fn bury_job(&self, token: &JobToken, error: &str) -> Result<()> {
        let sql = "UPDATE jobs SET lease_id = NULL, lease_until = NULL, state = 'dead', last_error = ?3 \
                   WHERE id = ?1 AND lease_id = ?2 AND state = 'scheduled'";
        self.settle_job(token, "dead-lettering a job", sql, None, Some(clip_error(error))).await
    }

    async fn replay_job(&self, account: AccountId, id: JobId) -> Result<Job> {
        let mut tx = self.write().await?;
        let row = sqlx::query(concat!(
            "UPDATE jobs SET state = 'scheduled', attempt = 0, run_at = ?3, lease_id = NULL, lease_until = NULL \
             WHERE id = ?1 AND account_id = ?2 AND state = 'dead' RETURNING ",
            job_columns!()
        ))
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .bind(now_micros())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("replaying a job", e))?;
        let job = row.map(|r| job_row(&r)).transpose()?.ok_or(Error::not_found("dead job"))?;
        commit(tx).await?;
        Ok(job)
    }

    async fn job_stats(&self, kind: &str) -> Result<QueueStats> {
        check_job_kind(kind)?;
        let row = sqlx::query(
            "WITH q AS ( \
                 SELECT state = 'dead' AS dead, \
                        state = 'scheduled' AND run_at <= ?2 AND (lease_until IS NULL OR lease_until <= ?2) AS due, \
                        run_at \
                 FROM jobs WHERE kind = ?1 \
             ) \
             SELECT COUNT(*) FILTER (WHERE NOT dead) AS depth, COUNT(*) FILTER (WHERE due) AS due, \
                    MIN(run_at) FILTER (WHERE due) AS oldest_due_at, COUNT(*) FILTER (WHERE dead) AS dead \
             FROM q",
        )
        .bind(kind)
        .bind(now_micros())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db("reading job statistics", e))?;
        queue_stats_row(&row)
    }
}

impl SqliteStore {
    /// Runs one settlement of a job lease in a write transaction: `sql` finds
    /// the job as `?1` id and `?2` lease id and takes `value`, then `error`,
    /// when given, as the next parameters. When it matches no row, says why.
    async fn settle_job(
        &self,
        token: &JobToken,
        what: &'static str,
        sql: &'static str,
        value: Option<i64>,
        error: Option<String>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let mut q = sqlx::query(sql).bind(token.job_id.into_uuid()).bind(token.lease_id);
        if let Some(v) = value {
            q = q.bind(v);
        }
        if let Some(e) = error {
            q = q.bind(e);
        }
        let done = q.execute(&mut *tx).await.map_err(|e| db(what, e))?;
        if done.rows_affected() == 0 {
            return Err(lost_job_lease(&mut tx, token).await);
        }
        commit(tx).await
    }
}

/// Why a job settlement matched no row: the job is gone (or dead), or
/// another lease holds it.
async fn lost_job_lease(tx: &mut Tx, token: &JobToken) -> Error {
    let found = sqlx::query("SELECT 1 FROM jobs WHERE id = ? AND state = 'scheduled'")
        .bind(token.job_id.into_uuid())
        .fetch_optional(&mut **tx)
        .await;
    match found {
        Ok(Some(_)) => Error::conflict("job", "the lease was lost to another claim"),
        Ok(None) => Error::not_found("job"),
        Err(e) => db("reading a job", e),
    }
}

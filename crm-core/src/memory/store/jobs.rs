//! [`JobStore`] for [`MemoryStore`].

use async_trait::async_trait;
use std::time::Duration;

use super::{JobEntry, MemoryStore, State, deadline, page_of};
use crate::ports::jobs::{JobToken, check_job, check_job_kind};
use crate::ports::store::{MAX_NACK_ERROR_CHARS, check_event_limit};
use crate::{AccountId, Error, Job, JobClaim, JobId, JobQuery, JobState, JobStore, Page, QueueStats, Result};

impl State {
    /// [`Error::Conflict`] when the job's id or its kind's unique key is taken.
    pub(super) fn check_new_job(&self, job: &Job) -> Result<()> {
        if self.jobs.contains_key(&job.id) {
            return Err(Error::conflict("job", "id already exists"));
        }
        if let Some(key) = &job.unique_key
            && self.jobs.values().any(|e| e.job.kind == job.kind && e.job.unique_key.as_ref() == Some(key))
        {
            return Err(Error::conflict("job", "a job of this kind holds this unique key"));
        }
        Ok(())
    }

    /// The job a token holds: [`Error::NotFound`] when gone or dead,
    /// [`Error::Conflict`] when another lease holds it.
    fn held_job(&mut self, token: &JobToken) -> Result<&mut JobEntry> {
        let entry = self
            .jobs
            .get_mut(&token.job_id)
            .filter(|e| e.job.state == JobState::Scheduled)
            .ok_or(Error::not_found("job"))?;
        if entry.lease.map(|(id, _)| id) != Some(token.lease_id) {
            return Err(Error::conflict("job", "the lease was lost to another claim"));
        }
        Ok(entry)
    }
}

fn clip(error: &str) -> String {
    error.chars().take(MAX_NACK_ERROR_CHARS).collect()
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn schedule_job(&self, job: &Job) -> Result<()> {
        check_job(job)?;
        let mut s = self.lock();
        s.check_new_job(job)?;
        s.jobs.insert(job.id, JobEntry { job: job.clone(), lease: None });
        Ok(())
    }

    async fn get_job(&self, account: AccountId, id: JobId) -> Result<Job> {
        self.lock()
            .jobs
            .get(&id)
            .filter(|e| e.job.account_id == Some(account))
            .map(|e| e.job.clone())
            .ok_or(Error::not_found("job"))
    }

    async fn list_jobs(&self, account: AccountId, query: &JobQuery) -> Result<Page<Job>> {
        let s = self.lock();
        let jobs = s
            .jobs
            .values()
            .map(|e| &e.job)
            .filter(|j| j.account_id == Some(account))
            .filter(|j| query.kind.as_ref().is_none_or(|k| &j.kind == k))
            .filter(|j| query.state.is_none_or(|st| j.state == st))
            .cloned();
        Ok(page_of(jobs, &query.page, |j| j.id.into_uuid()))
    }

    async fn cancel_job(&self, account: AccountId, id: JobId) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let entry = s.jobs.get(&id).filter(|e| e.job.account_id == Some(account)).ok_or(Error::not_found("job"))?;
        if entry.lease.is_some_and(|(_, until)| until > now) {
            return Err(Error::conflict("job", "a worker is running it"));
        }
        s.jobs.remove(&id);
        Ok(())
    }

    async fn claim_jobs(&self, kinds: &[String], limit: u32, lease: Duration) -> Result<Vec<JobClaim>> {
        check_event_limit(limit)?;
        for k in kinds {
            check_job_kind(k)?;
        }
        let now = self.clock.now();
        let until = deadline(now, lease);
        let mut s = self.lock();
        let mut due: Vec<&mut JobEntry> = s
            .jobs
            .values_mut()
            .filter(|e| {
                e.job.state == JobState::Scheduled
                    && e.job.run_at <= now
                    && kinds.contains(&e.job.kind)
                    && e.lease.is_none_or(|(_, exp)| exp <= now)
            })
            .collect();
        due.sort_by_key(|e| (e.job.run_at, e.job.id));
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|e| {
                let lease_id = uuid::Uuid::now_v7();
                e.lease = Some((lease_id, until));
                e.job.attempt += 1;
                JobClaim { token: JobToken { job_id: e.job.id, lease_id }, job: e.job.clone() }
            })
            .collect())
    }

    async fn renew_job(&self, token: &JobToken, lease: Duration) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        s.held_job(token)?.lease = Some((token.lease_id, deadline(now, lease)));
        Ok(())
    }

    async fn complete_job(&self, token: &JobToken) -> Result<()> {
        let mut s = self.lock();
        s.held_job(token)?;
        s.jobs.remove(&token.job_id);
        Ok(())
    }

    async fn retry_job(&self, token: &JobToken, retry_in: Duration, error: &str) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let e = s.held_job(token)?;
        e.lease = None;
        e.job.run_at = deadline(now, retry_in);
        e.job.last_error = Some(clip(error));
        Ok(())
    }

    async fn release_job(&self, token: &JobToken, retry_in: Duration) -> Result<()> {
        let now = self.clock.now();
        let mut s = self.lock();
        let e = s.held_job(token)?;
        e.lease = None;
        e.job.run_at = deadline(now, retry_in);
        e.job.attempt = e.job.attempt.saturating_sub(1);
        Ok(())
    }

    async fn bury_job(&self, token: &JobToken, error: &str) -> Result<()> {
        let mut s = self.lock();
        let e = s.held_job(token)?;
        e.lease = None;
        e.job.state = JobState::Dead;
        e.job.last_error = Some(clip(error));
        Ok(())
    }

    async fn replay_job(&self, account: AccountId, id: JobId) -> Result<Job> {
        let now = self.clock.now();
        let mut s = self.lock();
        let e = s
            .jobs
            .get_mut(&id)
            .filter(|e| e.job.account_id == Some(account) && e.job.state == JobState::Dead)
            .ok_or(Error::not_found("dead job"))?;
        e.job.state = JobState::Scheduled;
        e.job.attempt = 0;
        e.job.run_at = now;
        Ok(e.job.clone())
    }

    async fn job_stats(&self, kind: &str) -> Result<QueueStats> {
        check_job_kind(kind)?;
        let now = self.clock.now();
        let s = self.lock();
        let mut stats = QueueStats::default();
        for e in s.jobs.values().filter(|e| e.job.kind == kind) {
            if e.job.state == JobState::Dead {
                stats.dead += 1;
                continue;
            }
            stats.depth += 1;
            if e.job.run_at <= now && e.lease.is_none_or(|(_, exp)| exp <= now) {
                stats.due += 1;
                stats.oldest_due_at = Some(stats.oldest_due_at.map_or(e.job.run_at, |o| o.min(e.job.run_at)));
            }
        }
        Ok(stats)
    }
}

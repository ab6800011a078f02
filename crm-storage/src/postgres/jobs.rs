//! [`JobStore`] for [`PgStore`]. TEMPORARY stubs, replaced by the jobs change.

use async_trait::async_trait;
use std::time::Duration;

use super::PgStore;
use crm_core::{AccountId, Job, JobClaim, JobId, JobQuery, JobStore, JobToken, Page, QueueStats, Result};

#[async_trait]
impl JobStore for PgStore {
    async fn schedule_job(&self, _job: &Job) -> Result<()> {
        Err(crate::rows::not_yet("schedule_job"))
    }
    async fn get_job(&self, _account: AccountId, _id: JobId) -> Result<Job> {
        Err(crate::rows::not_yet("get_job"))
    }
    async fn list_jobs(&self, _account: AccountId, _query: &JobQuery) -> Result<Page<Job>> {
        Err(crate::rows::not_yet("list_jobs"))
    }
    async fn cancel_job(&self, _account: AccountId, _id: JobId) -> Result<()> {
        Err(crate::rows::not_yet("cancel_job"))
    }
    async fn claim_jobs(&self, _kinds: &[String], _limit: u32, _lease: Duration) -> Result<Vec<JobClaim>> {
        Err(crate::rows::not_yet("claim_jobs"))
    }
    async fn renew_job(&self, _token: &JobToken, _lease: Duration) -> Result<()> {
        Err(crate::rows::not_yet("renew_job"))
    }
    async fn complete_job(&self, _token: &JobToken) -> Result<()> {
        Err(crate::rows::not_yet("complete_job"))
    }
    async fn retry_job(&self, _token: &JobToken, _retry_in: Duration, _error: &str) -> Result<()> {
        Err(crate::rows::not_yet("retry_job"))
    }
    async fn release_job(&self, _token: &JobToken, _retry_in: Duration) -> Result<()> {
        Err(crate::rows::not_yet("release_job"))
    }
    async fn bury_job(&self, _token: &JobToken, _error: &str) -> Result<()> {
        Err(crate::rows::not_yet("bury_job"))
    }
    async fn replay_job(&self, _account: AccountId, _id: JobId) -> Result<Job> {
        Err(crate::rows::not_yet("replay_job"))
    }
    async fn job_stats(&self, _kind: &str) -> Result<QueueStats> {
        Err(crate::rows::not_yet("job_stats"))
    }
}

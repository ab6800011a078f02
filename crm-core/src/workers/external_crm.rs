//! The job workers that sync contacts with an [`ExternalCrm`]: push one
//! contact ([`EXTERNAL_CRM_PUSH_JOB`], scheduled by the route and the
//! automation action `sync_to_salesforce`) and pull changed records
//! ([`EXTERNAL_CRM_PULL_JOB`]). Outages and API limits are retried after
//! the provider's wait; nothing is lost while the provider is down.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use super::{Backoff, JobWorker, Outcome, WorkerOptions};
use crate::ports::external_crm::{EXTERNAL_CRM_PULL_JOB, EXTERNAL_CRM_PUSH_JOB, ExternalCrm, MAX_PULL};
use crate::ports::oauth::ExternalLink;
use crate::{AccountId, ContactId, ContactPatch, Crm, Error, Job, Result};

/// A push job for `contact`, due at `now`; one per contact while scheduled
/// (the unique key), so repeated triggers collapse into one push.
pub fn push_job(account: AccountId, contact: ContactId, now: DateTime<Utc>) -> Result<Job> {
    Job::new(EXTERNAL_CRM_PUSH_JOB, Some(account), json!({ "contact_id": contact }), now, now)?
        .with_unique_key(format!("{account}:{contact}"))
}

/// A pull job for records changed after `since`, due at `now`.
pub fn pull_job(account: AccountId, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<Job> {
    Job::new(EXTERNAL_CRM_PULL_JOB, Some(account), json!({ "since": since }), now, now)
}

fn options() -> WorkerOptions {
    WorkerOptions {
        batch: 16,
        concurrency: 4,
        max_attempts: 12,
        backoff: Backoff { base: Duration::from_secs(10), max: Duration::from_secs(3600), ..Backoff::default() },
        ..WorkerOptions::default()
    }
}

/// What a failed call means for the job.
fn outcome(e: Error) -> Outcome {
    match e {
        Error::Provider { transient: true, retry_after, message, .. } => {
            Outcome::Retry { error: message, after: retry_after }
        }
        Error::RateLimited { retry_after } => Outcome::Retry { error: "rate limited".into(), after: Some(retry_after) },
        e if e.is_transient() => Outcome::retry(e.to_string()),
        e => Outcome::Fail { error: e.to_string() },
    }
}

/// Pushes one contact: creates its record or updates the linked one, and
/// keeps the link. A linked record the CRM no longer has is created again.
#[derive(Debug, Clone)]
pub struct ExternalCrmPush {
    crm: Crm,
    external: Arc<dyn ExternalCrm>,
}

impl ExternalCrmPush {
    /// A pusher over `crm`'s store into `external`.
    pub fn new(crm: Crm, external: Arc<dyn ExternalCrm>) -> Self {
        Self { crm, external }
    }

    /// Options that suit it: a dozen attempts over a few hours.
    pub fn options() -> WorkerOptions {
        options()
    }

    async fn push(&self, account: AccountId, contact: ContactId) -> Result<Option<ExternalLink>> {
        let store = self.crm.store();
        let contact = match store.get_contact(account, contact).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let system = self.external.system().to_owned();
        let link = store.get_external_link(account, contact.id, &system).await?;
        let pushed = match self.external.push_contact(account, &contact, link.as_ref()).await {
            Err(Error::NotFound { .. }) if link.is_some() => {
                self.external.push_contact(account, &contact, None).await?
            }
            other => other?,
        };
        let link = ExternalLink {
            account_id: account,
            contact_id: contact.id,
            system,
            object: pushed.object,
            external_id: pushed.external_id,
            synced_at: self.crm.clock().now(),
        };
        store.put_external_link(&link).await?;
        Ok(Some(link))
    }
}

#[async_trait]
impl JobWorker for ExternalCrmPush {
    fn kind(&self) -> &str {
        EXTERNAL_CRM_PUSH_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let Some(account) = job.account_id else { return Outcome::Fail { error: "the job has no account".into() } };
        let contact = job.payload["contact_id"].as_str().and_then(|s| uuid::Uuid::parse_str(s).ok());
        let Some(contact) = contact else { return Outcome::Fail { error: "the payload has no contact_id".into() } };
        match self.push(account, ContactId::from_uuid(contact)).await {
            Ok(_) => Outcome::Done,
            Err(e) => outcome(e),
        }
    }
}

/// Pulls records changed since the payload's `since` and copies the name
/// and e-mail of each linked one onto its crm contact.
#[derive(Debug, Clone)]
pub struct ExternalCrmPull {
    crm: Crm,
    external: Arc<dyn ExternalCrm>,
}

impl ExternalCrmPull {
    /// A puller from `external` into `crm`.
    pub fn new(crm: Crm, external: Arc<dyn ExternalCrm>) -> Self {
        Self { crm, external }
    }

    /// Options that suit it.
    pub fn options() -> WorkerOptions {
        options()
    }

    /// Pulls once; returns how many contacts changed.
    pub async fn pull(&self, account: AccountId, since: DateTime<Utc>) -> Result<usize> {
        let system = self.external.system().to_owned();
        let mut changed = 0;
        for c in self.external.changed_since(account, since, MAX_PULL).await? {
            let Some(link) = self.crm.store().find_external_link(account, &system, &c.external_id).await? else {
                continue;
            };
            let name =
                [c.first_name.as_deref(), c.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
            let patch = ContactPatch {
                name: Some(name).filter(|n| !n.trim().is_empty()),
                email: c.email.clone().map(Some),
                ..ContactPatch::default()
            };
            match self.crm.update_contact(account, link.contact_id, patch).await {
                Ok(_) => changed += 1,
                Err(Error::NotFound { .. } | Error::Validation { .. }) => continue,
                Err(e) => return Err(e),
            }
            let synced = ExternalLink { synced_at: self.crm.clock().now(), object: c.object.clone(), ..link };
            self.crm.store().put_external_link(&synced).await?;
        }
        Ok(changed)
    }
}

#[async_trait]
impl JobWorker for ExternalCrmPull {
    fn kind(&self) -> &str {
        EXTERNAL_CRM_PULL_JOB
    }

    async fn run(&self, job: &Job) -> Outcome {
        let Some(account) = job.account_id else { return Outcome::Fail { error: "the job has no account".into() } };
        let since = serde_json::from_value::<DateTime<Utc>>(job.payload["since"].clone());
        let Ok(since) = since else { return Outcome::Fail { error: "the payload has no valid since".into() } };
        match self.pull(account, since).await {
            Ok(_) => Outcome::Done,
            Err(e) => outcome(e),
        }
    }
}

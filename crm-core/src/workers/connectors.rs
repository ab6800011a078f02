//! Durable sends through an account's connections: the job workers of
//! [`MAIL_SEND_JOB`], [`NOTIFY_JOB`] and [`ANALYTICS_JOB`], and the
//! functions that schedule them.
//!
//! A request (or an automation action) stores the job and answers; the
//! worker resolves the account's connection, builds its connector through
//! the [`ConnectorRegistry`] and calls the provider. A provider outage
//! (5xx, 429, timeouts) delays the job with backoff, or until the
//! provider's `Retry-After`; a refusal that retrying cannot fix (a 4xx, a
//! bad payload, refused credentials, no connection) buries the job with the
//! reason, where it stays replayable. Refused credentials also mark the
//! connection `error`; a success marks it `connected`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use super::{Backoff, JobWorker, Outcome, WorkerOptions};
use crate::connections::ConnectorRegistry;
use crate::domain::connection::{Connection, ConnectionKind, ConnectionResult, ConnectionStatus, clip_error};
use crate::ports::connectors::{
    AnalyticsEvent, AnalyticsUser, Attachment, Capability, Connector, MailDraft, Notification, check_track,
};
use crate::{AccountId, Clock, Error, Job, MediaStore, Result, Store};

/// Job kind: send an e-mail. Payload [`MailJob`].
pub const MAIL_SEND_JOB: &str = "mail.send";
/// Job kind: post a notification. Payload [`NotifyJob`].
pub const NOTIFY_JOB: &str = "notify.send";
/// Job kind: track analytics events. Payload [`AnalyticsJob`].
pub const ANALYTICS_JOB: &str = "analytics.track";

/// The payload of [`MAIL_SEND_JOB`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailJob {
    /// The connection to send through; the account's first connected
    /// e-mail connection (by kind) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ConnectionKind>,
    /// The e-mail.
    pub draft: MailDraft,
}

/// The payload of [`NOTIFY_JOB`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyJob {
    /// The connection; the first connected notify connection when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ConnectionKind>,
    /// The notification.
    pub notification: Notification,
}

/// The payload of [`ANALYTICS_JOB`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsJob {
    /// The connection; the first connected analytics connection when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ConnectionKind>,
    /// Who the events are about.
    pub user: AnalyticsUser,
    /// The events.
    pub events: Vec<AnalyticsEvent>,
}

async fn schedule(
    store: &dyn Store,
    kind: &str,
    account: AccountId,
    payload: serde_json::Value,
    unique_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Job> {
    let mut job = Job::new(kind, Some(account), payload, now, now)?;
    if let Some(key) = unique_key {
        job = job.with_unique_key(key)?;
    }
    store.schedule_job(&job).await?;
    Ok(job)
}

/// Checks `job` (the draft renders: addresses, counts, every placeholder
/// has a value) and schedules it now. [`Error::Validation`] for a draft
/// that cannot be sent; [`Error::Conflict`] when `unique_key` is taken.
pub async fn schedule_mail(
    store: &dyn Store,
    account: AccountId,
    job: &MailJob,
    unique_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Job> {
    job.draft.render()?;
    let payload = serde_json::to_value(job).map_err(|e| Error::validation("draft", e.to_string()))?;
    schedule(store, MAIL_SEND_JOB, account, payload, unique_key, now).await
}

/// Checks and schedules a notification (as [`schedule_mail`]).
pub async fn schedule_notification(
    store: &dyn Store,
    account: AccountId,
    job: &NotifyJob,
    unique_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Job> {
    job.notification.check()?;
    let payload = serde_json::to_value(job).map_err(|e| Error::validation("notification", e.to_string()))?;
    schedule(store, NOTIFY_JOB, account, payload, unique_key, now).await
}

/// Checks and schedules analytics events (as [`schedule_mail`]).
pub async fn schedule_analytics(
    store: &dyn Store,
    account: AccountId,
    job: &AnalyticsJob,
    unique_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Job> {
    check_track(&job.user, &job.events)?;
    let payload = serde_json::to_value(job).map_err(|e| Error::validation("events", e.to_string()))?;
    schedule(store, ANALYTICS_JOB, account, payload, unique_key, now).await
}

/// The job worker of one connector job kind (construct with
/// [`ConnectorWorker::mail`], [`ConnectorWorker::notify`] or
/// [`ConnectorWorker::analytics`]).
#[derive(Debug, Clone)]
pub struct ConnectorWorker {
    capability: Capability,
    store: Arc<dyn Store>,
    registry: Arc<ConnectorRegistry>,
    media: Option<Arc<dyn MediaStore>>,
    clock: Arc<dyn Clock>,
}

impl ConnectorWorker {
    /// The worker of [`MAIL_SEND_JOB`]; attachments are read from `media`
    /// (a draft with attachments is buried when there is none).
    pub fn mail(
        store: Arc<dyn Store>,
        registry: Arc<ConnectorRegistry>,
        media: Option<Arc<dyn MediaStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { capability: Capability::Mail, store, registry, media, clock }
    }

    /// The worker of [`NOTIFY_JOB`].
    pub fn notify(store: Arc<dyn Store>, registry: Arc<ConnectorRegistry>, clock: Arc<dyn Clock>) -> Self {
        Self { capability: Capability::Notify, store, registry, media: None, clock }
    }

    /// The worker of [`ANALYTICS_JOB`].
    pub fn analytics(store: Arc<dyn Store>, registry: Arc<ConnectorRegistry>, clock: Arc<dyn Clock>) -> Self {
        Self { capability: Capability::Analytics, store, registry, media: None, clock }
    }

    /// Options that suit it: up to 12 attempts over about a day (backoff
    /// from 10 s up to 2 h), so a provider outage delays sends.
    pub fn options() -> WorkerOptions {
        WorkerOptions {
            batch: 16,
            concurrency: 8,
            max_attempts: 12,
            backoff: Backoff { base: Duration::from_secs(10), max: Duration::from_secs(7200), ..Backoff::default() },
            ..WorkerOptions::default()
        }
    }

    /// The connection to use: the named one, or the account's first
    /// connected one whose factory has this worker's capability.
    async fn connection(&self, account: AccountId, provider: Option<&ConnectionKind>) -> Result<Connection> {
        let connection = match provider {
            Some(p) => self.store.get_connection(account, p).await?,
            None => self
                .store
                .list_connections(account)
                .await?
                .into_iter()
                .find(|c| {
                    c.status != ConnectionStatus::Disconnected
                        && self.registry.factory(c.provider.as_str()).is_ok_and(|f| f.capability() == self.capability)
                })
                .ok_or_else(|| Error::not_found("connection"))?,
        };
        if connection.status == ConnectionStatus::Disconnected {
            return Err(Error::validation(
                "provider",
                format!("the {} connection is disconnected", connection.provider),
            ));
        }
        Ok(connection)
    }

    async fn attachments(&self, account: AccountId, draft: &MailDraft) -> Result<Vec<Attachment>> {
        if draft.attachments.is_empty() {
            return Ok(Vec::new());
        }
        let media = self
            .media
            .as_ref()
            .ok_or_else(|| Error::Config { message: "e-mail attachments need a media store".into() })?;
        let mut out = Vec::with_capacity(draft.attachments.len());
        for id in &draft.attachments {
            let record = self.store.get_media(account, *id).await?;
            let key = record
                .key
                .as_deref()
                .ok_or_else(|| Error::validation("attachments", format!("media {id} has no stored file")))?;
            let stored = media.get(account, key).await?;
            out.push(Attachment {
                filename: record.filename,
                content_type: stored.content_type,
                content: stored.bytes,
            });
        }
        Ok(out)
    }

    async fn resolve(&self, job: &Job, account: AccountId) -> Result<Connection> {
        let provider = job.payload.get("provider").filter(|p| !p.is_null()).map(|p| {
            p.as_str().ok_or_else(|| Error::validation("provider", "must be a string")).and_then(ConnectionKind::parse)
        });
        let provider = provider.transpose()?;
        self.connection(account, provider.as_ref()).await
    }

    async fn send(&self, job: &Job, account: AccountId, connection: &Connection) -> Result<()> {
        let connector = self.registry.build(connection).await?;
        let bad = |e: serde_json::Error| Error::validation("payload", e.to_string());
        match (self.capability, connector) {
            (Capability::Mail, Connector::Mail(mailer)) => {
                let payload: MailJob = serde_json::from_value(job.payload.clone()).map_err(bad)?;
                let mut email = payload.draft.render()?;
                email.custom_args.insert("crm_account_id".into(), account.to_string());
                email.attachments = self.attachments(account, &payload.draft).await?;
                mailer.send(&email).await?;
            }
            (Capability::Notify, Connector::Notify(notifier)) => {
                let payload: NotifyJob = serde_json::from_value(job.payload.clone()).map_err(bad)?;
                notifier.notify(&payload.notification).await?;
            }
            (Capability::Analytics, Connector::Analytics(analytics)) => {
                let payload: AnalyticsJob = serde_json::from_value(job.payload.clone()).map_err(bad)?;
                analytics.track(&payload.user, &payload.events).await?;
            }
            _ => {
                return Err(Error::validation(
                    "provider",
                    format!("the {} connection cannot do what this job asks", connection.provider),
                ));
            }
        }
        Ok(())
    }

    async fn note(&self, account: AccountId, provider: &ConnectionKind, result: ConnectionResult) {
        if let Err(e) = self.store.record_connection_result(account, provider, &result).await {
            tracing::warn!(%account, %provider, error = %e, "could not record a connection's status");
        }
    }
}

/// How a failed send's error decides the job's fate.
pub fn outcome_of(error: &Error) -> Outcome {
    let message = clip_error(&error.to_string());
    match error {
        Error::Provider { transient: true, retry_after, .. } => Outcome::Retry { error: message, after: *retry_after },
        Error::RateLimited { retry_after } => Outcome::Retry { error: message, after: Some(*retry_after) },
        e if e.is_transient() => Outcome::retry(message),
        _ => Outcome::Fail { error: message },
    }
}

#[async_trait]
impl JobWorker for ConnectorWorker {
    fn kind(&self) -> &str {
        match self.capability {
            Capability::Mail => MAIL_SEND_JOB,
            Capability::Notify => NOTIFY_JOB,
            Capability::Analytics => ANALYTICS_JOB,
            // Never built for billing: its constructors are mail, notify
            // and analytics (billing's own jobs are `billing.apply`).
            Capability::Billing => "connector.billing",
        }
    }

    async fn run(&self, job: &Job) -> Outcome {
        let Some(account) = job.account_id else {
            return Outcome::Fail { error: "the job belongs to no account".into() };
        };
        let connection = match self.resolve(job, account).await {
            Ok(c) => c,
            Err(e) => return outcome_of(&e),
        };
        match self.send(job, account, &connection).await {
            Ok(()) => {
                self.note(account, &connection.provider, ConnectionResult::Success(self.clock.now())).await;
                Outcome::Done
            }
            Err(e) => {
                if let Error::Config { .. } = e {
                    let reason = ConnectionResult::Failure(clip_error(&e.to_string()));
                    self.note(account, &connection.provider, reason).await;
                }
                let outcome = outcome_of(&e);
                tracing::info!(job = %job.id, kind = self.kind(), outcome = ?outcome, "connector send failed");
                outcome
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::connection::Connection;
    use crate::memory::{RecordingAnalytics, RecordingConnectorFactory, RecordingMailer, RecordingNotifier};
    use crate::ports::connectors::Mailbox;
    use crate::testing::connectors::sample_draft;
    use crate::{Account, Event, EventType, MemoryStore, SystemClock};
    use serde_json::json;

    struct Fixture {
        store: Arc<dyn Store>,
        account: AccountId,
        mailer: RecordingMailer,
        notifier: RecordingNotifier,
        analytics: RecordingAnalytics,
        registry: Arc<ConnectorRegistry>,
    }

    async fn fixture() -> Fixture {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let account = Account::new("Loja", Utc::now()).unwrap();
        store
            .create_account(&account, &Event::new(account.id, EventType::ACCOUNT_CREATED, &json!({}), Utc::now()))
            .await
            .unwrap();
        let (mailer, notifier, analytics) =
            (RecordingMailer::new(), RecordingNotifier::new(), RecordingAnalytics::new());
        let registry = Arc::new(ConnectorRegistry::new(
            vec![
                Arc::new(RecordingConnectorFactory::mail("sendgrid", &mailer)),
                Arc::new(RecordingConnectorFactory::notify("slack", &notifier)),
                Arc::new(RecordingConnectorFactory::analytics("ga4", &analytics)),
            ],
            None,
        ));
        for kind in [ConnectionKind::SENDGRID, ConnectionKind::SLACK, ConnectionKind::GA4] {
            let c = Connection::new(account.id, kind, json!({}), None, Utc::now()).unwrap();
            store
                .put_connection(&c, &Event::new(account.id, EventType::CONNECTION_UPDATED, &json!({}), Utc::now()))
                .await
                .unwrap();
        }
        Fixture { store, account: account.id, mailer, notifier, analytics, registry }
    }

    fn mail_worker(f: &Fixture) -> ConnectorWorker {
        ConnectorWorker::mail(f.store.clone(), f.registry.clone(), None, Arc::new(SystemClock))
    }

    async fn claimed(f: &Fixture, job: Job) -> Job {
        let got = f.store.get_job(f.account, job.id).await.unwrap();
        assert_eq!(got.payload, job.payload);
        got
    }

    #[tokio::test]
    async fn a_scheduled_mail_is_rendered_and_sent_through_the_accounts_connection() {
        let f = fixture().await;
        let contact = crate::ContactId::new();
        let draft = MailDraft { contact_id: Some(contact), ..sample_draft() };
        let job = schedule_mail(&*f.store, f.account, &MailJob { provider: None, draft }, Some("k1"), Utc::now())
            .await
            .unwrap();
        let job = claimed(&f, job).await;
        assert_eq!(mail_worker(&f).run(&job).await, Outcome::Done);
        let sent = f.mailer.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].subject, "Pedido #42 confirmado");
        assert_eq!(sent[0].custom_args["crm_contact_id"], contact.to_string());
        assert_eq!(sent[0].custom_args["crm_account_id"], f.account.to_string());
        let c = f.store.get_connection(f.account, &ConnectionKind::SENDGRID).await.unwrap();
        assert!(c.last_success_at.is_some(), "a success is recorded on the connection");

        let bad = MailDraft { to: vec![Mailbox::new("nope")], ..sample_draft() };
        let refused =
            schedule_mail(&*f.store, f.account, &MailJob { provider: None, draft: bad }, None, Utc::now()).await;
        assert!(matches!(refused, Err(Error::Validation { .. })), "a draft that cannot be sent is refused up front");
    }

    #[tokio::test]
    async fn outages_retry_at_the_providers_time_and_refusals_are_buried() {
        let f = fixture().await;
        let w = mail_worker(&f);
        let job =
            schedule_mail(&*f.store, f.account, &MailJob { provider: None, draft: sample_draft() }, None, Utc::now())
                .await
                .unwrap();
        let outage = |transient, after| Error::Provider {
            provider: "sendgrid".into(),
            transient,
            code: Some("503".into()),
            message: "unavailable".into(),
            retry_after: after,
            source: None,
        };
        f.mailer.fail_next(outage(true, Some(Duration::from_secs(30))));
        assert!(matches!(w.run(&job).await, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(30)));
        f.mailer.fail_next(outage(false, None));
        assert!(matches!(w.run(&job).await, Outcome::Fail { .. }), "a 4xx is buried");
        assert!(f.mailer.sent().is_empty());
        f.mailer.fail_next(Error::Config { message: "sendgrid refused the API key".into() });
        assert!(matches!(w.run(&job).await, Outcome::Fail { .. }));
        let c = f.store.get_connection(f.account, &ConnectionKind::SENDGRID).await.unwrap();
        assert_eq!(
            (c.status, c.last_error.as_deref()),
            (ConnectionStatus::Error, Some("configuration error: sendgrid refused the API key"))
        );
        assert_eq!(w.run(&job).await, Outcome::Done, "the next attempt goes through");
        let c = f.store.get_connection(f.account, &ConnectionKind::SENDGRID).await.unwrap();
        assert_eq!(c.status, ConnectionStatus::Connected);
    }

    #[tokio::test]
    async fn notifications_and_analytics_go_through_their_connections() {
        let f = fixture().await;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let n = NotifyJob {
            provider: Some(ConnectionKind::SLACK),
            notification: Notification::hot_lead("Ana", 90, 70, None),
        };
        let job = schedule_notification(&*f.store, f.account, &n, None, Utc::now()).await.unwrap();
        let w = ConnectorWorker::notify(f.store.clone(), f.registry.clone(), clock.clone());
        f.notifier.fail_next(Error::RateLimited { retry_after: Duration::from_secs(7) });
        assert!(matches!(w.run(&job).await, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7)));
        assert_eq!(w.run(&job).await, Outcome::Done);
        assert_eq!(f.notifier.notified()[0], n.notification);

        let user = AnalyticsUser { client_id: "c.1".into(), user_id: None };
        let events = vec![AnalyticsEvent::conversion("purchase", 500, "BRL", "T-9").unwrap()];
        let a = AnalyticsJob { provider: None, user, events: events.clone() };
        let job = schedule_analytics(&*f.store, f.account, &a, None, Utc::now()).await.unwrap();
        let w = ConnectorWorker::analytics(f.store.clone(), f.registry.clone(), clock);
        assert_eq!(w.run(&job).await, Outcome::Done);
        assert_eq!(f.analytics.tracked()[0].1, events);

        // The slack connection cannot track analytics; a missing or disconnected one buries the job.
        let wrong = Job::new(
            ANALYTICS_JOB,
            Some(f.account),
            json!({ "provider": "slack", "user": a.user, "events": events }),
            Utc::now(),
            Utc::now(),
        )
        .unwrap();
        assert!(matches!(w.run(&wrong).await, Outcome::Fail { .. }));
        f.store
            .delete_connection(
                f.account,
                &ConnectionKind::GA4,
                &Event::new(f.account, EventType::CONNECTION_DELETED, &json!({}), Utc::now()),
            )
            .await
            .unwrap();
        assert!(matches!(w.run(&job).await, Outcome::Fail { .. }), "no analytics connection: buried, replayable");
        let garbage =
            Job::new(NOTIFY_JOB, Some(f.account), json!({ "notification": 3 }), Utc::now(), Utc::now()).unwrap();
        let w = ConnectorWorker::notify(f.store.clone(), f.registry.clone(), Arc::new(SystemClock));
        assert!(matches!(w.run(&garbage).await, Outcome::Fail { .. }));
    }
}

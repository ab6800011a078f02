//! Recording doubles of the connector ports: [`RecordingMailer`],
//! [`RecordingNotifier`] and [`RecordingAnalytics`], and
//! [`RecordingConnectorFactory`] that builds them for a connection kind.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::connection::Connection;
use crate::ports::connectors::{
    Analytics, AnalyticsEvent, AnalyticsUser, Capability, Connector, ConnectorFactory, Email, Mailer, Notification,
    Notifier, SentMail, check_email, check_track,
};
use crate::secrets::Credentials;
use crate::{Error, Result};

/// A queue of scripted failures shared by a double's clones: each call
/// takes the next one, if any, and fails with it instead of recording.
#[derive(Debug)]
struct Script<T> {
    failures: VecDeque<Error>,
    recorded: Vec<T>,
}

impl<T> Default for Script<T> {
    fn default() -> Self {
        Self { failures: VecDeque::new(), recorded: Vec::new() }
    }
}

fn lock<T>(m: &Mutex<Script<T>>) -> MutexGuard<'_, Script<T>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn record<T>(m: &Mutex<Script<T>>, item: T) -> Result<()> {
    let mut s = lock(m);
    if let Some(e) = s.failures.pop_front() {
        return Err(e);
    }
    s.recorded.push(item);
    Ok(())
}

/// A mailer that records every e-mail it accepts (`sent()`), and fails
/// with scripted errors first (`fail_next`). Clones share the data. Its
/// sender default is `from` when the e-mail names none.
#[derive(Debug, Clone)]
pub struct RecordingMailer {
    inner: Arc<Mutex<Script<Email>>>,
    from: String,
}

impl Default for RecordingMailer {
    fn default() -> Self {
        Self { inner: Arc::default(), from: "crm@example.com".into() }
    }
}

impl RecordingMailer {
    /// A mailer that accepts everything, sending as `crm@example.com` by default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next call fail with `error` (queued after earlier ones).
    pub fn fail_next(&self, error: Error) {
        lock(&self.inner).failures.push_back(error);
    }

    /// Every e-mail accepted so far.
    pub fn sent(&self) -> Vec<Email> {
        lock(&self.inner).recorded.clone()
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    fn provider(&self) -> &str {
        "recording"
    }

    async fn send(&self, email: &Email) -> Result<SentMail> {
        let mut email = email.clone();
        if email.from.email.is_empty() {
            email.from.email = self.from.clone();
        }
        check_email(&email)?;
        let n = lock(&self.inner).recorded.len();
        record(&self.inner, email)?;
        Ok(SentMail { provider_id: Some(format!("recorded-{n}")) })
    }
}

/// A notifier that records every notification (`notified()`), failing with
/// scripted errors first. Clones share the data.
#[derive(Debug, Clone, Default)]
pub struct RecordingNotifier(Arc<Mutex<Script<Notification>>>);

impl RecordingNotifier {
    /// A notifier that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next call fail with `error`.
    pub fn fail_next(&self, error: Error) {
        lock(&self.0).failures.push_back(error);
    }

    /// Every notification posted so far.
    pub fn notified(&self) -> Vec<Notification> {
        lock(&self.0).recorded.clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn provider(&self) -> &str {
        "recording"
    }

    async fn notify(&self, notification: &Notification) -> Result<()> {
        notification.check()?;
        record(&self.0, notification.clone())
    }
}

/// An analytics collector that records every call (`tracked()`), failing
/// with scripted errors first. Clones share the data.
#[derive(Debug, Clone, Default)]
pub struct RecordingAnalytics(Arc<Mutex<Script<Tracked>>>);

/// One recorded `track` call: the user and the events.
type Tracked = (AnalyticsUser, Vec<AnalyticsEvent>);

impl RecordingAnalytics {
    /// A collector that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next call fail with `error`.
    pub fn fail_next(&self, error: Error) {
        lock(&self.0).failures.push_back(error);
    }

    /// Every call so far: the user and the events.
    pub fn tracked(&self) -> Vec<Tracked> {
        lock(&self.0).recorded.clone()
    }
}

#[async_trait]
impl Analytics for RecordingAnalytics {
    fn provider(&self) -> &str {
        "recording"
    }

    async fn track(&self, user: &AnalyticsUser, events: &[AnalyticsEvent]) -> Result<()> {
        check_track(user, events)?;
        record(&self.0, (user.clone(), events.to_vec()))
    }
}

/// A connector factory for tests: serves `kind` with one shared recording
/// double of its capability, requires the credential `token` when one is
/// given, and refuses settings holding `"invalid": true`.
#[derive(Debug, Clone)]
pub struct RecordingConnectorFactory {
    kind: String,
    connector: Connector,
}

impl RecordingConnectorFactory {
    /// A factory of `kind` handing out `connector` (a recording double's clone).
    pub fn new(kind: &str, connector: Connector) -> Self {
        Self { kind: kind.to_owned(), connector }
    }

    /// A mail factory over `mailer`.
    pub fn mail(kind: &str, mailer: &RecordingMailer) -> Self {
        Self::new(kind, Connector::Mail(Arc::new(mailer.clone())))
    }

    /// A notify factory over `notifier`.
    pub fn notify(kind: &str, notifier: &RecordingNotifier) -> Self {
        Self::new(kind, Connector::Notify(Arc::new(notifier.clone())))
    }

    /// An analytics factory over `analytics`.
    pub fn analytics(kind: &str, analytics: &RecordingAnalytics) -> Self {
        Self::new(kind, Connector::Analytics(Arc::new(analytics.clone())))
    }
}

#[async_trait]
impl ConnectorFactory for RecordingConnectorFactory {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn capability(&self) -> Capability {
        match self.connector {
            Connector::Mail(_) => Capability::Mail,
            Connector::Notify(_) => Capability::Notify,
            Connector::Analytics(_) => Capability::Analytics,
            Connector::Billing(_) => Capability::Billing,
        }
    }

    fn validate(&self, settings: &serde_json::Value, credentials: Option<&Credentials>) -> Result<()> {
        if settings["invalid"] == true {
            return Err(Error::validation("settings.invalid", "refused by the recording factory"));
        }
        if let Some(c) = credentials
            && c.get("token").is_none()
        {
            return Err(Error::validation("credentials.token", "is required"));
        }
        Ok(())
    }

    async fn build(&self, _connection: &Connection, _credentials: Credentials) -> Result<Connector> {
        Ok(self.connector.clone())
    }
}

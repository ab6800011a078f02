//! Connections: one account's link to an outside provider (SendGrid, SMTP,
//! Slack, GA4, …): its non-secret settings, its sealed credentials, and how
//! the last use went.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

use crate::secrets::SealedSecret;
use crate::{AccountId, Error, Result};

/// Most bytes of a connection's settings (JSON).
pub const MAX_SETTINGS_BYTES: usize = 8 * 1024;
/// Most characters of a recorded `last_error`.
pub const MAX_LAST_ERROR_CHARS: usize = 500;

/// A provider kind: an open name (`a-z`, `0-9`, `-`, 1–32), so adapter
/// crates add their own; the ones crm-connectors knows are constants.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionKind(Cow<'static, str>);

impl ConnectionKind {
    /// SendGrid (e-mail).
    pub const SENDGRID: ConnectionKind = ConnectionKind(Cow::Borrowed("sendgrid"));
    /// An SMTP server (e-mail).
    pub const SMTP: ConnectionKind = ConnectionKind(Cow::Borrowed("smtp"));
    /// Slack (notifications).
    pub const SLACK: ConnectionKind = ConnectionKind(Cow::Borrowed("slack"));
    /// Google Analytics 4 Measurement Protocol.
    pub const GA4: ConnectionKind = ConnectionKind(Cow::Borrowed("ga4"));

    /// Parses a kind. [`Error::Validation`] on `provider` otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if !ok {
            return Err(Error::validation("provider", "must be 1 to 32 of a-z, 0-9 and -"));
        }
        Ok(Self(Cow::Owned(s.to_owned())))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ConnectionKind {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<ConnectionKind> for String {
    fn from(k: ConnectionKind) -> String {
        k.0.into_owned()
    }
}

/// How a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Set, and its last use (if any) succeeded.
    Connected,
    /// Its last use failed for a reason that needs the owner (refused
    /// credentials, a bad setting); `last_error` says which.
    Error,
    /// Switched off by the owner: nothing is sent through it.
    Disconnected,
}

impl ConnectionStatus {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Error => "error",
            Self::Disconnected => "disconnected",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "connected" => Self::Connected,
            "error" => Self::Error,
            "disconnected" => Self::Disconnected,
            _ => return Err(Error::validation("status", "must be connected, error or disconnected")),
        })
    }
}

/// One account's connection to one provider (at most one per provider kind).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// The owning account.
    pub account_id: AccountId,
    /// The provider kind.
    pub provider: ConnectionKind,
    /// Non-secret settings (a JSON object), as the provider's factory accepts.
    pub settings: serde_json::Value,
    /// Sealed credentials (never returned by the API).
    pub credentials: Option<SealedSecret>,
    /// How it is doing.
    pub status: ConnectionStatus,
    /// The last failure's reason (no secrets), cleared by a success.
    pub last_error: Option<String>,
    /// When it last worked.
    pub last_success_at: Option<DateTime<Utc>>,
    /// First set.
    pub created_at: DateTime<Utc>,
    /// Last changed by its owner.
    pub updated_at: DateTime<Utc>,
}

impl Connection {
    /// A new connection, `connected`. [`Error::Validation`] when `settings`
    /// is not a JSON object or is over [`MAX_SETTINGS_BYTES`].
    pub fn new(
        account_id: AccountId,
        provider: ConnectionKind,
        settings: serde_json::Value,
        credentials: Option<SealedSecret>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        check_settings(&settings)?;
        Ok(Self {
            account_id,
            provider,
            settings,
            credentials,
            status: ConnectionStatus::Connected,
            last_error: None,
            last_success_at: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// The associated data its credentials are sealed with, so a sealed
    /// value copied to another account or provider does not open.
    pub fn secret_context(&self) -> Vec<u8> {
        format!("connection:{}:{}", self.account_id, self.provider).into_bytes()
    }
}

/// Checks settings: a JSON object of at most [`MAX_SETTINGS_BYTES`].
pub fn check_settings(settings: &serde_json::Value) -> Result<()> {
    if !settings.is_object() {
        return Err(Error::validation("settings", "must be a JSON object"));
    }
    if serde_json::to_string(settings).map_or(usize::MAX, |s| s.len()) > MAX_SETTINGS_BYTES {
        return Err(Error::validation("settings", format!("at most {MAX_SETTINGS_BYTES} bytes")));
    }
    Ok(())
}

/// `error` cut to [`MAX_LAST_ERROR_CHARS`] characters.
pub fn clip_error(error: &str) -> String {
    error.chars().take(MAX_LAST_ERROR_CHARS).collect()
}

/// The result of using a connection, recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionResult {
    /// It worked at this time: `connected`, `last_error` cleared.
    Success(DateTime<Utc>),
    /// It failed in a way its owner must fix: `error` with this reason.
    Failure(String),
}

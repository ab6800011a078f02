//! The one error type of crm.

use std::borrow::Cow;
use std::time::Duration;

/// A boxed error kept as the source of a crm [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across crm.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure a crm port or service reports.
///
/// Callers act on the kind: HTTP layers map kinds to status codes, workers retry
/// [`Error::is_transient`] errors. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The entity does not exist in the caller's account (also returned for
    /// another account's ids, so existence never leaks across tenants).
    #[error("{entity} not found")]
    NotFound {
        /// What was looked up, e.g. `"contact"`.
        entity: &'static str,
    },
    /// The change collides with existing state (duplicate phone, stale version, …).
    #[error("conflict on {entity}: {reason}")]
    Conflict {
        /// Entity involved, e.g. `"contact"`.
        entity: &'static str,
        /// Human-readable cause.
        reason: String,
    },
    /// Input failed validation.
    #[error("invalid {field}: {reason}")]
    Validation {
        /// The offending field, dotted for nested ones (`"metadata"`, `"variables"`).
        field: Cow<'static, str>,
        /// Why it is invalid.
        reason: String,
    },
    /// Missing or wrong credentials.
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated, but not allowed to do this.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why it is not allowed.
        reason: String,
    },
    /// A rate limit was hit; try again after `retry_after`.
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// How long to wait before retrying.
        retry_after: Duration,
    },
    /// An external provider (WhatsApp, Stripe, …) failed.
    #[error("{provider} error{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Provider {
        /// Provider name, e.g. `"whatsapp-cloud"`.
        provider: Cow<'static, str>,
        /// Whether retrying the same request may succeed.
        transient: bool,
        /// Provider error code, when it gave one.
        code: Option<String>,
        /// Provider's reason, stripped of credentials.
        message: String,
        /// How long the provider asked to wait before retrying (`Retry-After`), if it said.
        retry_after: Option<Duration>,
        /// The underlying client error.
        #[source]
        source: Option<BoxError>,
    },
    /// The storage backend failed.
    #[error("storage error: {message}")]
    Storage {
        /// What failed (never contains SQL parameters).
        message: String,
        /// Whether retrying may succeed (lost connection, serialization failure, busy database).
        transient: bool,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The input is larger than allowed (a media file past its kind's limit, …).
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// What was too large, e.g. `"media"`.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// The provider behind a channel does not offer this operation (group
    /// management on Meta's Cloud API, …): permanent, nothing was sent.
    #[error("{provider} does not support {operation}")]
    Unsupported {
        /// Provider name, e.g. `"whatsapp-cloud"`.
        provider: Cow<'static, str>,
        /// What was asked, e.g. `"creating groups"`.
        operation: Cow<'static, str>,
    },
    /// The channel's session is not connected right now (a WhatsApp Web
    /// session that is opening, pairing, reconnecting, or open in another
    /// process). It is the channel's state, not a provider failure, and it
    /// passes: [transient](Error::is_transient). The dispatcher keeps a
    /// queued message waiting (deferred with a growing delay, up to the
    /// dispatch deadline) instead of counting failed attempts; synchronous
    /// calls (group administration, read receipts, pairing) answer it
    /// (HTTP: 409 `/problems/channel-not-connected`).
    #[error("the {provider} channel is not connected: {reason}")]
    NotConnected {
        /// Provider name, e.g. `"whatsapp-web"`.
        provider: Cow<'static, str>,
        /// Its state and why, e.g. `"the session is reconnecting"`.
        reason: String,
    },
    /// Configuration is missing or invalid.
    #[error("configuration error: {message}")]
    Config {
        /// Which setting is wrong and why (never its secret value).
        message: String,
    },
}

impl Error {
    /// A [`Error::NotFound`] for `entity`.
    pub fn not_found(entity: &'static str) -> Self {
        Error::NotFound { entity }
    }

    /// A [`Error::Conflict`] for `entity`.
    pub fn conflict(entity: &'static str, reason: impl Into<String>) -> Self {
        Error::Conflict { entity, reason: reason.into() }
    }

    /// A [`Error::Validation`] for `field`.
    pub fn validation(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Error::Validation { field: field.into(), reason: reason.into() }
    }

    /// A [`Error::Unsupported`]: `provider` does not offer `operation`.
    pub fn unsupported(provider: impl Into<Cow<'static, str>>, operation: impl Into<Cow<'static, str>>) -> Self {
        Error::Unsupported { provider: provider.into(), operation: operation.into() }
    }

    /// A [`Error::NotConnected`]: the `provider` channel is not connected (`reason`).
    pub fn not_connected(provider: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Error::NotConnected { provider: provider.into(), reason: reason.into() }
    }

    /// A [`Error::Storage`] wrapping a driver error.
    pub fn storage(message: impl Into<String>, transient: bool, source: impl Into<BoxError>) -> Self {
        Error::Storage { message: message.into(), transient, source: Some(source.into()) }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::NotConnected { .. } => true,
            Error::Provider { transient, .. } | Error::Storage { transient, .. } => *transient,
            _ => false,
        }
    }

    /// The opposite of [`Error::is_transient`].
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// A stable, machine-readable name of the kind, e.g. `"not_found"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Validation { .. } => "validation",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::RateLimited { .. } => "rate_limited",
            Error::Provider { .. } => "provider",
            Error::Storage { .. } => "storage",
            Error::Config { .. } => "config",
            Error::TooLarge { .. } => "too_large",
            Error::Unsupported { .. } => "unsupported",
            Error::NotConnected { .. } => "not_connected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_display_includes_code_only_when_present() {
        let e = Error::Provider {
            provider: "whatsapp-cloud".into(),
            transient: false,
            code: Some("131047".into()),
            message: "re-engagement message".into(),
            retry_after: None,
            source: None,
        };
        assert_eq!(e.to_string(), "whatsapp-cloud error 131047: re-engagement message");
        let e = Error::Provider {
            provider: "x".into(),
            transient: true,
            code: None,
            message: "timeout".into(),
            retry_after: Some(Duration::from_secs(3)),
            source: None,
        };
        assert_eq!(e.to_string(), "x error: timeout");
        assert!(e.is_transient());
    }

    #[test]
    fn kinds_are_stable() {
        assert_eq!(Error::not_found("contact").kind(), "not_found");
        assert_eq!(Error::validation("phone", "bad").to_string(), "invalid phone: bad");
        assert!(Error::RateLimited { retry_after: Duration::from_secs(1) }.is_transient());
        assert!(Error::Unauthorized.is_permanent());
        let e = Error::unsupported("whatsapp-cloud", "creating groups");
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            ("unsupported", "whatsapp-cloud does not support creating groups")
        );
        assert!(e.is_permanent());
    }

    #[test]
    fn not_connected_is_transient_and_named() {
        let e = Error::not_connected("whatsapp-web", "the session is reconnecting");
        assert_eq!(e.kind(), "not_connected");
        assert!(e.is_transient());
        assert_eq!(e.to_string(), "the whatsapp-web channel is not connected: the session is reconnecting");
    }
}

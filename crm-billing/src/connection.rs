//! Per-account Stripe keys: the `stripe` connection kind. An account that
//! bills through its own Stripe account stores its keys as a connection
//! (`PUT /api/v1/connections/stripe`), sealed in crm's encrypted secret
//! storage like every connection's credentials; [`BillingService`](crate::BillingService)
//! then uses them for that account's customers, checkouts, portal sessions
//! and cancellations, and verifies the account's own webhook endpoint
//! (`/webhooks/stripe/{account_id}`) with its webhook secrets. Accounts
//! without the connection use the server-wide key.
//!
//! Credentials: `secret_key` (`sk_…` or a restricted `rk_…` key) and
//! `webhook_secret` (`whsec_…`; several, comma-separated, while rotating).
//! Settings: none (an empty object).

use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use crm_core::domain::connection::{Connection, ConnectionKind};
use crm_core::ports::connectors::{Capability, Connector, ConnectorFactory};
use crm_core::secrets::Credentials;
use crm_core::{Error, Result};

use crate::StripeBilling;

/// The connection kind of an account's own Stripe keys.
pub const STRIPE_CONNECTION: &str = "stripe";

/// The kind as a [`ConnectionKind`].
pub fn stripe_kind() -> ConnectionKind {
    ConnectionKind::parse(STRIPE_CONNECTION).unwrap_or(ConnectionKind::SENDGRID)
}

/// Builds an account's [`StripeBilling`] from its `stripe` connection.
#[derive(Debug, Clone, Default)]
pub struct StripeConnectionFactory {
    base_url: Option<String>,
    tolerance: Option<Duration>,
}

impl StripeConnectionFactory {
    /// A factory for Stripe's API (`base_url`: a local mock in tests, as the
    /// server-wide key's; `None`: Stripe's), verifying webhooks within
    /// `tolerance` (`None`: 300 s).
    pub fn new(base_url: Option<String>, tolerance: Option<Duration>) -> Self {
        Self { base_url, tolerance }
    }

    fn secrets(credentials: &Credentials) -> Vec<String> {
        credentials
            .get("webhook_secret")
            .map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl ConnectorFactory for StripeConnectionFactory {
    fn kind(&self) -> &str {
        STRIPE_CONNECTION
    }

    fn capability(&self) -> Capability {
        Capability::Billing
    }

    fn validate(&self, settings: &Value, credentials: Option<&Credentials>) -> Result<()> {
        if settings.as_object().is_some_and(|o| !o.is_empty()) {
            return Err(Error::validation("settings", "the stripe connection takes no settings"));
        }
        let Some(c) = credentials else { return Ok(()) };
        let key = c.get("secret_key").unwrap_or_default();
        if !(key.starts_with("sk_") || key.starts_with("rk_")) || key.len() < 8 || key.contains(char::is_whitespace) {
            return Err(Error::validation("credentials.secret_key", "must be a Stripe secret key (sk_… or rk_…)"));
        }
        let secrets = Self::secrets(c);
        if secrets.is_empty() || secrets.iter().any(|s| !s.starts_with("whsec_") || s.len() < 8) {
            return Err(Error::validation(
                "credentials.webhook_secret",
                "must be the endpoint's signing secret(s), whsec_… (comma-separated while rotating)",
            ));
        }
        if let Some(other) = c.names().find(|n| !matches!(*n, "secret_key" | "webhook_secret")) {
            return Err(Error::validation(
                "credentials",
                format!("unknown credential {other:?}: give secret_key and webhook_secret"),
            ));
        }
        Ok(())
    }

    async fn build(&self, connection: &Connection, credentials: Credentials) -> Result<Connector> {
        let key = credentials.get("secret_key").ok_or_else(|| Error::Config {
            message: format!("the {} connection has no secret key", connection.provider),
        })?;
        let mut b = StripeBilling::builder().secret_key(key);
        for s in Self::secrets(&credentials) {
            b = b.webhook_secret(s);
        }
        if let Some(u) = &self.base_url {
            b = b.base_url(u.clone());
        }
        if let Some(t) = self.tolerance {
            b = b.tolerance(t);
        }
        Ok(Connector::Billing(Arc::new(b.build()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creds(pairs: &[(&str, &str)]) -> Credentials {
        let mut c = Credentials::new();
        for (k, v) in pairs {
            c.insert(*k, *v);
        }
        c
    }

    #[test]
    fn credentials_are_checked() {
        let f = StripeConnectionFactory::default();
        let ok = creds(&[("secret_key", "sk_test_abcdef"), ("webhook_secret", "whsec_one, whsec_two")]);
        f.validate(&json!({}), Some(&ok)).unwrap();
        f.validate(&json!({}), None).unwrap();
        let field = |settings: Value, c: Credentials| match f.validate(&settings, Some(&c)) {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(json!({"x": 1}), ok.clone()), "settings");
        assert_eq!(
            field(json!({}), creds(&[("secret_key", "pk_test_abcdef"), ("webhook_secret", "whsec_a1")])),
            "credentials.secret_key"
        );
        assert_eq!(field(json!({}), creds(&[("secret_key", "sk_test_abcdef")])), "credentials.webhook_secret");
        assert_eq!(
            field(json!({}), creds(&[("secret_key", "sk_test_abcdef"), ("webhook_secret", "secret123")])),
            "credentials.webhook_secret"
        );
        let mut extra = ok;
        extra.insert("publishable_key", "pk_test_x");
        assert_eq!(field(json!({}), extra), "credentials");
        assert_eq!(stripe_kind().as_str(), "stripe");
    }
}

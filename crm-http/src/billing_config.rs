//! Billing's settings (`[billing]` in `crm.toml`; `STRIPE_*` and
//! `CRM_BILLING_*` in the environment). Secrets are kept as
//! [`SecretString`]s and never printed.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

use crm_core::domain::billing::{Plan, PlanLimits};
use crm_core::{Error, Result};

/// Stripe and the plan guard.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// Stripe's secret key (`STRIPE_SECRET_KEY`, `sk_…` or `rk_…`). Unset:
    /// billing is off (its routes answer 503 and `/ready` says so).
    pub secret_key: Option<SecretString>,
    /// Webhook signing secrets (`STRIPE_WEBHOOK_SECRET`, `whsec_…`;
    /// comma-separated while rotating: old and new).
    pub webhook_secret: Option<SecretString>,
    /// Stripe's API base URL (`STRIPE_API_BASE`; default
    /// `https://api.stripe.com`; tests point it at a local mock).
    pub api_base: Option<String>,
    /// Seconds a webhook signature's timestamp may be from now
    /// (`STRIPE_WEBHOOK_TOLERANCE_SECS`, default 300).
    pub webhook_tolerance_secs: Option<u64>,
    /// Enforce plan limits (`CRM_BILLING_GUARD`, default false).
    pub guard: bool,
    /// The plans (`CRM_BILLING_PLANS`: a JSON array of
    /// `{"id", "price_ids": [...], "limits": {"channels", "contacts", "messages_per_month"}}`).
    pub plans: Vec<Plan>,
    /// Limits without an active subscription (`CRM_BILLING_FREE_LIMITS`: JSON
    /// `{"channels": 1, "contacts": 100, "messages_per_month": 1000}`; unset: unlimited).
    pub free: PlanLimits,
}

impl fmt::Debug for BillingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BillingConfig")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "[redacted]"))
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "[redacted]"))
            .field("api_base", &self.api_base)
            .field("guard", &self.guard)
            .field("plans", &self.plans)
            .field("free", &self.free)
            .finish_non_exhaustive()
    }
}

fn bad(setting: &str, reason: &str) -> Error {
    Error::Config { message: format!("{setting}: {reason}") }
}

impl BillingConfig {
    /// Applies the variables `get` finds.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("STRIPE_SECRET_KEY") {
            self.secret_key = Some(SecretString::from(v.trim().to_owned()));
        }
        if let Some(v) = get("STRIPE_WEBHOOK_SECRET") {
            self.webhook_secret = Some(SecretString::from(v.trim().to_owned()));
        }
        if let Some(v) = get("STRIPE_API_BASE") {
            self.api_base = Some(v.trim().to_owned());
        }
        if let Some(v) = get("STRIPE_WEBHOOK_TOLERANCE_SECS") {
            let n = v.trim().parse().map_err(|_| bad("STRIPE_WEBHOOK_TOLERANCE_SECS", "expected a whole number"))?;
            self.webhook_tolerance_secs = Some(n);
        }
        if let Some(v) = get("CRM_BILLING_GUARD") {
            self.guard = match v.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(bad("CRM_BILLING_GUARD", "expected true or false")),
            };
        }
        if let Some(v) = get("CRM_BILLING_PLANS") {
            self.plans = serde_json::from_str(&v).map_err(|e| bad("CRM_BILLING_PLANS", &e.to_string()))?;
        }
        if let Some(v) = get("CRM_BILLING_FREE_LIMITS") {
            self.free = serde_json::from_str(&v).map_err(|e| bad("CRM_BILLING_FREE_LIMITS", &e.to_string()))?;
        }
        Ok(())
    }

    /// The webhook secrets, split.
    fn webhook_secrets(&self) -> Vec<String> {
        self.webhook_secret
            .as_ref()
            .map(|s| s.expose_secret().split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect())
            .unwrap_or_default()
    }

    /// Checks the settings (builds the adapter when a key is set).
    pub fn validate(&self) -> Result<()> {
        if self.webhook_tolerance_secs.is_some_and(|t| !(1..=3600).contains(&t)) {
            return Err(bad("STRIPE_WEBHOOK_TOLERANCE_SECS", "must be between 1 and 3600"));
        }
        if self.plans.iter().any(|p| p.id.is_empty() || p.id.len() > 64) {
            return Err(bad("CRM_BILLING_PLANS", "every plan needs an id of 1 to 64 characters"));
        }
        self.stripe().map(|_| ())
    }

    /// The Stripe adapter, when a secret key is configured.
    pub fn stripe(&self) -> Result<Option<crm_billing::StripeBilling>> {
        let Some(key) = &self.secret_key else { return Ok(None) };
        let mut b = crm_billing::StripeBilling::builder().secret_key(key.expose_secret());
        for s in self.webhook_secrets() {
            if !s.starts_with("whsec_") {
                return Err(bad("STRIPE_WEBHOOK_SECRET", "each secret must start with whsec_"));
            }
            b = b.webhook_secret(s);
        }
        if let Some(u) = &self.api_base {
            b = b.base_url(u.clone());
        }
        if let Some(t) = self.webhook_tolerance_secs {
            b = b.tolerance(Duration::from_secs(t));
        }
        b.build().map(Some).map_err(|e| match e {
            Error::Config { message } => bad("STRIPE_SECRET_KEY", &message),
            other => other,
        })
    }

    /// The service settings.
    pub fn settings(&self) -> crm_billing::BillingSettings {
        crm_billing::BillingSettings { plans: self.plans.clone(), free: self.free.clone(), guard: self.guard }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_environment_and_hides_secrets() {
        let env = |k: &str| match k {
            "STRIPE_SECRET_KEY" => Some("sk_test_abcdef".to_owned()),
            "STRIPE_WEBHOOK_SECRET" => Some("whsec_old, whsec_new".to_owned()),
            "CRM_BILLING_GUARD" => Some("true".to_owned()),
            "CRM_BILLING_PLANS" => {
                Some(r#"[{"id":"pro","price_ids":["price_pro"],"limits":{"contacts":1000}}]"#.to_owned())
            }
            _ => None,
        };
        let mut c = BillingConfig::default();
        c.apply_env(env).expect("env");
        c.validate().expect("valid");
        assert_eq!(c.webhook_secrets(), ["whsec_old", "whsec_new"]);
        assert!(c.guard && c.plans[0].limits.contacts == Some(1000));
        let shown = format!("{c:?} {:?}", c.stripe().expect("stripe"));
        assert!(!shown.contains("sk_test") && !shown.contains("whsec_"), "{shown}");
        let mut bad_secret = c.clone();
        bad_secret.webhook_secret = Some(SecretString::from("nope".to_owned()));
        assert!(bad_secret.validate().is_err());
        let mut bad_key = c.clone();
        bad_key.secret_key = Some(SecretString::from("pk_live_x".to_owned()));
        let err = bad_key.validate().expect_err("publishable key").to_string();
        assert!(!err.contains("pk_live_x"), "{err}");
        assert!(BillingConfig::default().stripe().expect("off").is_none());
    }
}

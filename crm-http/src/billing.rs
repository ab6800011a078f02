//! Billing's wiring: the [`crm_billing::BillingService`] from the
//! configuration (or the provider given to the builder) and the `billing`
//! readiness probe.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crm_core::{Billing, Crm, Health, HealthCheck, Result};

use crate::config::Config;

/// Says whether billing is on (`/ready` shows it). It makes no call to
/// Stripe: readiness is polled often, and Stripe's outages are handled by
/// the routes (503) and the worker (retries).
#[derive(Debug)]
struct BillingProbe {
    provider: Option<String>,
}

#[async_trait]
impl HealthCheck for BillingProbe {
    fn name(&self) -> &str {
        "billing"
    }

    async fn check(&self) -> Health {
        match &self.provider {
            Some(p) => Health { detail: Some(format!("on ({p})")), ..Health::healthy(Duration::ZERO) },
            None => Health::degraded(Duration::ZERO, "off: STRIPE_SECRET_KEY is not set"),
        }
    }
}

/// The billing service: over `given`, else Stripe when `STRIPE_SECRET_KEY`
/// is set; `None` (billing off, logged) otherwise. Adds the `billing` probe.
pub(crate) fn service_from(
    config: &Config,
    crm: &Crm,
    given: Option<Arc<dyn Billing>>,
    probes: &mut Vec<Arc<dyn HealthCheck>>,
) -> Result<Option<crm_billing::BillingService>> {
    let provider: Option<Arc<dyn Billing>> = match given {
        Some(b) => Some(b),
        None => config.billing.stripe()?.map(|s| Arc::new(s) as Arc<dyn Billing>),
    };
    probes.push(Arc::new(BillingProbe { provider: provider.as_ref().map(|p| p.provider().to_owned()) }));
    let Some(provider) = provider else {
        tracing::info!("billing is off (set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET to turn it on)");
        return Ok(None);
    };
    Ok(Some(crm_billing::BillingService::new(
        crm.store().clone(),
        provider,
        crm.clock().clone(),
        config.billing.settings(),
    )))
}

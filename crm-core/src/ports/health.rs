//! The `HealthCheck` port: named probes for readiness.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How a dependency is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HealthStatus {
    /// Working.
    Healthy,
    /// Working with reduced capability (e.g. an optional provider not configured).
    Degraded,
    /// Not working.
    Unhealthy,
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Status.
    pub status: HealthStatus,
    /// How long the probe took.
    pub latency: Duration,
    /// A short reason, never containing credentials.
    pub detail: Option<String>,
}

impl Health {
    /// Healthy after `latency`.
    pub fn healthy(latency: Duration) -> Self {
        Health { status: HealthStatus::Healthy, latency, detail: None }
    }

    /// Unhealthy with a reason.
    pub fn unhealthy(latency: Duration, detail: impl Into<String>) -> Self {
        Health { status: HealthStatus::Unhealthy, latency, detail: Some(detail.into()) }
    }

    /// Degraded with a reason.
    pub fn degraded(latency: Duration, detail: impl Into<String>) -> Self {
        Health { status: HealthStatus::Degraded, latency, detail: Some(detail.into()) }
    }

    /// Times `probe`, mapping `Ok` to healthy and `Err` to unhealthy with its message.
    pub async fn measure<F, E>(probe: F) -> Self
    where
        F: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let start = Instant::now();
        match probe.await {
            Ok(()) => Health::healthy(start.elapsed()),
            Err(e) => Health::unhealthy(start.elapsed(), e.to_string()),
        }
    }
}

/// A named probe of one dependency (database, Redis, WhatsApp, …).
///
/// Contract: `check` is cheap enough to call on every readiness request,
/// bounds its own time (a hung dependency reports unhealthy, it does not hang
/// the caller), and never returns credentials in `detail`.
#[async_trait]
pub trait HealthCheck: Send + Sync + Debug + 'static {
    /// Stable probe name, e.g. `"database"`.
    fn name(&self) -> &str;
    /// Probes the dependency.
    async fn check(&self) -> Health;
}

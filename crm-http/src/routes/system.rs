//! Health, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{Health, HealthStatus};

use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Liveness {
    /// Always `ok` while the process serves requests.
    status: &'static str,
}

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Check {
    status: HealthStatus,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Readiness of every configured dependency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` when nothing is unhealthy.
    status: &'static str,
    checks: BTreeMap<String, Check>,
}

/// Liveness: cheap, touches no dependency.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = Liveness)))]
async fn health() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Readiness: probes every dependency (database, messenger, Redis, …) at once.
/// 200 when none is unhealthy (degraded ones, such as a provider that is not
/// configured, are reported but do not fail readiness), 503 otherwise.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let handles: Vec<_> = state
        .inner
        .probes
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move {
                let h = match tokio::time::timeout(PROBE_TIMEOUT, p.check()).await {
                    Ok(h) => h,
                    Err(_) => Health::unhealthy(PROBE_TIMEOUT, "timed out"),
                };
                (p.name().to_owned(), h)
            })
        })
        .collect();
    let mut all_ok = true;
    let mut checks = BTreeMap::new();
    for handle in handles {
        let (name, h) = match handle.await {
            Ok(r) => r,
            Err(_) => ("probe".to_owned(), Health::unhealthy(Duration::ZERO, "probe panicked")),
        };
        all_ok &= h.status != HealthStatus::Unhealthy;
        checks.insert(name, Check { status: h.status, latency_ms: h.latency.as_secs_f64() * 1000.0, detail: h.detail });
    }
    let (code, status) =
        if all_ok { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "unavailable") };
    (code, Json(Readiness { status, checks }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut gauges = Vec::new();
    for consumer in &state.inner.outbox_consumers {
        if let Ok(n) = state.crm().store().pending(consumer).await {
            gauges.push((format!("crm_outbox_pending{{consumer=\"{consumer}\"}}"), n as f64));
        }
    }
    let body = state.metrics().render(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

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

/// One channel's state (tenants' channels never fail readiness: a bad token
/// of one account must not take the server out of rotation).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChannelCheck {
    /// The channel id.
    id: String,
    /// Provider kind.
    kind: String,
    /// `active`, `throttled` or `disabled`.
    state: &'static str,
    /// The provider's health.
    health: HealthStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Channels at a glance.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct ChannelSummary {
    /// Channels of every account.
    total: u64,
    /// Sending.
    active: u64,
    /// Held back by the governor or the provider.
    throttled: u64,
    /// Turned off.
    disabled: u64,
    /// Whose provider probe is unhealthy.
    unhealthy: u64,
    /// The first channels (at most 100), each with its state and health.
    items: Vec<ChannelCheck>,
}

/// How many connections of one provider kind are in each status, over
/// every account (a failing connection is one tenant's problem: it is
/// reported, and makes `degraded` true, but never fails readiness).
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct ConnectionCount {
    /// Working (or not yet used).
    connected: u64,
    /// Their last use failed for a reason their owner must fix.
    error: u64,
    /// Switched off by their owner.
    disconnected: u64,
}

/// Connections at a glance.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct ConnectionSummary {
    /// Whether any connection is in `error`.
    degraded: bool,
    /// Counts by provider kind.
    providers: BTreeMap<String, ConnectionCount>,
}

async fn connection_summary(state: &AppState) -> ConnectionSummary {
    let mut summary = ConnectionSummary::default();
    let Ok(counts) = state.crm().store().connection_counts().await else { return summary };
    for (kind, status, n) in counts {
        let c = summary.providers.entry(kind.to_string()).or_default();
        match status {
            crm_core::domain::connection::ConnectionStatus::Connected => c.connected += n,
            crm_core::domain::connection::ConnectionStatus::Error => {
                c.error += n;
                summary.degraded = true;
            }
            crm_core::domain::connection::ConnectionStatus::Disconnected => c.disconnected += n,
        }
    }
    summary
}

/// Readiness of every configured dependency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` when nothing is unhealthy.
    status: &'static str,
    checks: BTreeMap<String, Check>,
    /// Every account's channels.
    channels: ChannelSummary,
    /// OAuth grants of every account by provider and status (`broken`:
    /// the provider refused the refresh token; the account must connect
    /// again). Reported only: a broken grant never fails readiness.
    /// `null` when no OAuth provider is configured.
    oauth: Option<Vec<crm_core::ports::oauth::GrantCount>>,
    /// Every account's connections (e-mail, Slack, GA4, …).
    connections: ConnectionSummary,
}

/// Channels probed by `/ready` (the rest are counted).
const READY_CHANNELS: usize = 100;

async fn channel_summary(state: &AppState) -> ChannelSummary {
    let crm = state.crm();
    let now = crm.clock().now();
    let mut summary = ChannelSummary::default();
    let mut probed = Vec::new();
    let mut after = None;
    loop {
        let Ok(batch) = crm.store().list_all_channels(after, 500).await else { break };
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        let full = batch.len() == 500;
        for c in batch {
            summary.total += 1;
            match crm_core::ChannelView::of(&c, now).state {
                "throttled" => summary.throttled += 1,
                "disabled" => summary.disabled += 1,
                _ => summary.active += 1,
            }
            if probed.len() < READY_CHANNELS {
                probed.push(c);
            }
        }
        if !full {
            break;
        }
    }
    // Probe the listed channels at once, each within the probe timeout.
    let mut probes = tokio::task::JoinSet::new();
    for (i, c) in probed.iter().cloned().enumerate() {
        let crm = crm.clone();
        probes.spawn(async move {
            let h = match tokio::time::timeout(PROBE_TIMEOUT, crm.channel_health(&c)).await {
                Ok(h) => h,
                Err(_) => Health::unhealthy(PROBE_TIMEOUT, "timed out"),
            };
            (i, h)
        });
    }
    let mut health = vec![None; probed.len()];
    while let Some(r) = probes.join_next().await {
        if let Ok((i, h)) = r {
            health[i] = Some(h);
        }
    }
    for (c, h) in probed.iter().zip(health) {
        let h = h.unwrap_or_else(|| Health::unhealthy(std::time::Duration::ZERO, "probe panicked"));
        if h.status == HealthStatus::Unhealthy {
            summary.unhealthy += 1;
        }
        summary.items.push(ChannelCheck {
            id: c.id.to_string(),
            kind: c.kind.to_string(),
            state: crm_core::ChannelView::of(c, now).state,
            health: h.status,
            detail: h.detail,
        });
    }
    summary
}

#[cfg(feature = "oauth")]
async fn oauth_summary(state: &AppState) -> Option<Vec<crm_core::ports::oauth::GrantCount>> {
    let oauth = state.oauth()?;
    match tokio::time::timeout(PROBE_TIMEOUT, oauth.connections.counts()).await {
        Ok(Ok(counts)) => Some(counts),
        _ => Some(Vec::new()),
    }
}

#[cfg(not(feature = "oauth"))]
async fn oauth_summary(_: &AppState) -> Option<Vec<crm_core::ports::oauth::GrantCount>> {
    None
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
    let channels = channel_summary(&state).await;
    let connections = connection_summary(&state).await;
    let (code, status) =
        if all_ok { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "unavailable") };
    (code, Json(Readiness { status, checks, channels, oauth: oauth_summary(&state).await, connections }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let workers = match state.runtime() {
        Some(rt) => rt.stats().await,
        None => Vec::new(),
    };
    let now = state.crm().clock().now();
    let body = state.metrics().render(&workers, now);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

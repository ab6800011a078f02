//! `/api/v1/n8n/workflows`: the configured n8n instance's workflows — list,
//! read, activate, deactivate, export (owners: the instance is shared by
//! the whole server). 503 when no n8n is configured.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::Role;
use crm_core::ports::workflows::{Workflow, WorkflowPage, Workflows};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workflows))
        .routes(routes!(get_workflow))
        .routes(routes!(activate_workflow))
        .routes(routes!(deactivate_workflow))
        .routes(routes!(export_workflow))
}

/// Which workflows to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkflowParams {
    /// n8n's cursor from the previous page's `next_cursor`.
    #[param(max_length = 500)]
    cursor: Option<String>,
    /// Page size, 1–250 (default 100).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<u32>,
}

fn engine(state: &AppState, principal: &Principal) -> ApiResult<Arc<dyn Workflows>> {
    principal.require(Role::Owner)?;
    state.workflows().cloned().ok_or_else(|| {
        ApiError::from(crm_core::Error::Config { message: "n8n is not configured: set N8N_URL and N8N_API_KEY".into() })
    })
}

/// List n8n's workflows (owners).
#[utoipa::path(get, path = "/n8n/workflows", tag = "n8n", params(WorkflowParams),
    responses((status = 200, body = WorkflowPage), (status = 502, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn list_workflows(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(p): ApiQuery<WorkflowParams>,
) -> ApiResult<Json<WorkflowPage>> {
    let n8n = engine(&state, &principal)?;
    if p.cursor.as_ref().is_some_and(|c| c.len() > 500) {
        return Err(ApiError::validation("cursor", "at most 500 characters"));
    }
    Ok(Json(n8n.list_workflows(p.cursor.as_deref(), p.limit.unwrap_or(100)).await?))
}

/// One n8n workflow (owners).
#[utoipa::path(get, path = "/n8n/workflows/{id}", tag = "n8n", params(("id" = String, Path, description = "n8n's workflow id")),
    responses((status = 200, body = Workflow), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn get_workflow(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Workflow>> {
    Ok(Json(engine(&state, &principal)?.get_workflow(&id).await?))
}

/// Activate (publish) an n8n workflow (owners).
#[utoipa::path(post, path = "/n8n/workflows/{id}/activate", tag = "n8n", params(("id" = String, Path, description = "n8n's workflow id")),
    responses((status = 200, body = Workflow), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn activate_workflow(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Workflow>> {
    Ok(Json(engine(&state, &principal)?.activate(&id).await?))
}

/// Deactivate an n8n workflow (owners).
#[utoipa::path(post, path = "/n8n/workflows/{id}/deactivate", tag = "n8n", params(("id" = String, Path, description = "n8n's workflow id")),
    responses((status = 200, body = Workflow), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn deactivate_workflow(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Workflow>> {
    Ok(Json(engine(&state, &principal)?.deactivate(&id).await?))
}

/// Export an n8n workflow's whole definition for backup (owners):
/// re-importable into n8n.
#[utoipa::path(get, path = "/n8n/workflows/{id}/export", tag = "n8n", params(("id" = String, Path, description = "n8n's workflow id")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn export_workflow(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(engine(&state, &principal)?.export_workflow(&id).await?))
}

//! `/api/v1/templates`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{MAX_RENDER_PREVIEW, NewTemplate, Page, Role, Template, TemplateId, Variables};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::contacts::PageParams;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, replace_template, delete_template))
        .routes(routes!(render_template))
}

/// How to render.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RenderMode {
    /// Every placeholder needs a value (422 names the missing ones).
    #[default]
    Strict,
    /// Unknown placeholders are left as they are.
    Lenient,
}

/// Values for a render preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenderRequest {
    /// Placeholder values.
    #[serde(default)]
    variables: Variables,
    /// `strict` (default) or `lenient`.
    #[serde(default)]
    mode: RenderMode,
}

/// A rendered preview.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Rendered {
    /// The text.
    rendered: String,
}

/// List templates.
#[utoipa::path(get, path = "/templates", tag = "templates", params(PageParams),
    responses((status = 200, body = Page<Template>), (status = 422, body = Problem)), security(("api_key" = [])))]
async fn list_templates(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Template>>> {
    Ok(Json(state.crm().list_templates(principal.account_id, &p.page()?).await?))
}

/// Create a template.
#[utoipa::path(post, path = "/templates", tag = "templates", request_body = NewTemplate,
    responses((status = 201, body = Template, headers(("location" = String, description = "URL of the new template"))), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn create_template(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewTemplate>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 1], Json<Template>)> {
    principal.require(Role::Admin)?;
    let t = state.crm().create_template(principal.account_id, body).await?;
    Ok((StatusCode::CREATED, [(axum::http::header::LOCATION, format!("/api/v1/templates/{}", t.id))], Json(t)))
}

/// Get a template.
#[utoipa::path(get, path = "/templates/{id}", tag = "templates", params(("id" = TemplateId, Path)),
    responses((status = 200, body = Template), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_template(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<TemplateId>,
) -> ApiResult<Json<Template>> {
    Ok(Json(state.crm().get_template(principal.account_id, id).await?))
}

/// Replace a template.
#[utoipa::path(put, path = "/templates/{id}", tag = "templates", params(("id" = TemplateId, Path)),
    request_body = NewTemplate,
    responses((status = 200, body = Template), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)), security(("api_key" = [])))]
async fn replace_template(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<TemplateId>,
    ApiJson(body): ApiJson<NewTemplate>,
) -> ApiResult<Json<Template>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().update_template(principal.account_id, id, body).await?))
}

/// Delete a template.
#[utoipa::path(delete, path = "/templates/{id}", tag = "templates", params(("id" = TemplateId, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn delete_template(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<TemplateId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    state.crm().delete_template(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Preview a template with variables (agents and above: the role that sends
/// templates). The text is at most 16,384 characters (`MAX_RENDER_PREVIEW`);
/// a longer result is refused with 422 before it is built.
#[utoipa::path(post, path = "/templates/{id}/render", tag = "templates", params(("id" = TemplateId, Path)),
    request_body = RenderRequest,
    responses((status = 200, body = Rendered), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn render_template(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<TemplateId>,
    ApiJson(body): ApiJson<RenderRequest>,
) -> ApiResult<Json<Rendered>> {
    principal.require(Role::Agent)?;
    let t = state.crm().get_template(principal.account_id, id).await?;
    let rendered = match body.mode {
        RenderMode::Strict => t.render(&body.variables, MAX_RENDER_PREVIEW)?,
        RenderMode::Lenient => t.render_lenient(&body.variables, MAX_RENDER_PREVIEW)?,
    };
    Ok(Json(Rendered { rendered }))
}

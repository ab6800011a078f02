//! `/api/v1/campaigns`: a template sent to an audience through one channel.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{Campaign, CampaignId, CampaignView, NewCampaign, Page, Recipient, RecipientState, Role};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::contacts::PageParams;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, delete_campaign))
        .routes(routes!(start_campaign))
        .routes(routes!(schedule_campaign))
        .routes(routes!(pause_campaign))
        .routes(routes!(resume_campaign))
        .routes(routes!(cancel_campaign))
        .routes(routes!(list_recipients))
}

/// When to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    /// A time in the future.
    scheduled_at: DateTime<Utc>,
}

/// Which recipients to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecipientParams {
    /// Only recipients in this state.
    state: Option<RecipientState>,
    /// Recipients after this `seq` (the previous page's `next_after`).
    #[param(minimum = 0)]
    after: Option<u64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A page of recipients.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecipientPage {
    /// Recipients in plan order.
    items: Vec<Recipient>,
    /// Pass as `after` for the next page; absent on the last page.
    next_after: Option<u64>,
}

/// List campaigns.
#[utoipa::path(get, path = "/campaigns", tag = "campaigns", params(PageParams),
    responses((status = 200, body = Page<Campaign>), (status = 422, body = Problem)), security(("api_key" = [])))]
async fn list_campaigns(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Campaign>>> {
    Ok(Json(state.crm().list_campaigns(principal.account_id, &p.page()?).await?))
}

/// Create a campaign (admins): a draft, or scheduled with `scheduled_at`.
/// 404 when the channel or the template is unknown.
#[utoipa::path(post, path = "/campaigns", tag = "campaigns", request_body = NewCampaign,
    responses((status = 201, body = Campaign, headers(("location" = String, description = "URL of the new campaign"))),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn create_campaign(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewCampaign>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 1], Json<Campaign>)> {
    principal.require(Role::Admin)?;
    let c = state.crm().create_campaign(principal.account_id, body).await?;
    Ok((StatusCode::CREATED, [(axum::http::header::LOCATION, format!("/api/v1/campaigns/{}", c.id))], Json(c)))
}

/// A campaign with its counters (queued, sent, delivered, read, failed,
/// replied, skipped, pending) and, while it runs, its ETA.
#[utoipa::path(get, path = "/campaigns/{id}", tag = "campaigns", params(("id" = CampaignId, Path)),
    responses((status = 200, body = CampaignView), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_campaign(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<CampaignId>,
) -> ApiResult<Json<CampaignView>> {
    Ok(Json(state.crm().get_campaign(principal.account_id, id).await?))
}

/// Delete a campaign that is not under way — a draft, completed or cancelled
/// — with its recipient list (admins). Its messages stay in their threads.
/// 409 while it is scheduled, running or paused: cancel it first.
#[utoipa::path(delete, path = "/campaigns/{id}", tag = "campaigns", params(("id" = CampaignId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn delete_campaign(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<CampaignId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    state.crm().delete_campaign(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start a draft or scheduled campaign now (admins). 409 from another state.
#[utoipa::path(post, path = "/campaigns/{id}/start", tag = "campaigns", params(("id" = CampaignId, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn start_campaign(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<CampaignId>,
) -> ApiResult<Json<Campaign>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().start_campaign(principal.account_id, id).await?))
}

/// Schedule a draft campaign to start at a time (admins). 409 unless it is a
/// draft, 422 for a time that is not in the future.
#[utoipa::path(post, path = "/campaigns/{id}/schedule", tag = "campaigns", params(("id" = CampaignId, Path)),
    request_body = ScheduleBody,
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn schedule_campaign(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<CampaignId>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> ApiResult<Json<Campaign>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().schedule_campaign(principal.account_id, id, body.scheduled_at).await?))
}

/// Pause a running campaign (admins). 409 unless it is running.
#[utoipa::path(post, path = "/campaigns/{id}/pause", tag = "campaigns", params(("id" = CampaignId, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn pause_campaign(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<CampaignId>,
) -> ApiResult<Json<Campaign>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().pause_campaign(principal.account_id, id).await?))
}

/// Resume a paused campaign where it stopped (admins). 409 unless it is paused.
#[utoipa::path(post, path = "/campaigns/{id}/resume", tag = "campaigns", params(("id" = CampaignId, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn resume_campaign(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<CampaignId>,
) -> ApiResult<Json<Campaign>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().resume_campaign(principal.account_id, id).await?))
}

/// Cancel a campaign that has not ended (admins). 409 when it ended.
#[utoipa::path(post, path = "/campaigns/{id}/cancel", tag = "campaigns", params(("id" = CampaignId, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn cancel_campaign(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<CampaignId>,
) -> ApiResult<Json<Campaign>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().cancel_campaign(principal.account_id, id).await?))
}

/// A campaign's recipients in plan order: state, skip or failure reason, message.
#[utoipa::path(get, path = "/campaigns/{id}/recipients", tag = "campaigns",
    params(("id" = CampaignId, Path), RecipientParams),
    responses((status = 200, body = RecipientPage), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_recipients(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<CampaignId>,
    ApiQuery(p): ApiQuery<RecipientParams>,
) -> ApiResult<Json<RecipientPage>> {
    let limit = p.limit.unwrap_or(100);
    let items = state.crm().list_campaign_recipients(principal.account_id, id, p.state, p.after, limit).await?;
    let next_after = if items.len() == limit as usize { items.last().map(|r| r.seq) } else { None };
    Ok(Json(RecipientPage { items, next_after }))
}

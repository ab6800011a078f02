//! `/api/v1/channels`: the account's connections to messaging providers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{ChannelId, ChannelPatch, ChannelView, HealthStatus, NewChannel, Role};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(get_channel, update_channel, delete_channel))
        .routes(routes!(channel_kinds))
}

/// The account's channels.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChannelList {
    /// In creation order.
    items: Vec<ChannelView>,
}

/// The channel kinds this server can create.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChannelKinds {
    /// E.g. `recording`, `whatsapp-cloud`.
    kinds: Vec<String>,
}

/// A channel with its provider's current health.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChannelDetail {
    #[serde(flatten)]
    channel: ChannelView,
    /// The provider's health, probed now.
    health: HealthStatus,
    /// Why, when not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    health_detail: Option<String>,
}

/// List channels.
#[utoipa::path(get, path = "/channels", tag = "channels",
    responses((status = 200, body = ChannelList)), security(("api_key" = [])))]
async fn list_channels(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<ChannelList>> {
    let now = state.crm().clock().now();
    let items =
        state.crm().list_channels(principal.account_id).await?.iter().map(|c| ChannelView::of(c, now)).collect();
    Ok(Json(ChannelList { items }))
}

/// The channel kinds this server can create.
#[utoipa::path(get, path = "/channel-kinds", tag = "channels",
    responses((status = 200, body = ChannelKinds)), security(("api_key" = [])))]
async fn channel_kinds(State(state): State<AppState>, _principal: Principal) -> Json<ChannelKinds> {
    Json(ChannelKinds { kinds: state.crm().channel_kinds().into_iter().map(str::to_owned).collect() })
}

/// Create a channel. `credentials` are write-only: stored sealed, never
/// returned (the response says `has_credentials`). The account's first
/// channel becomes its default.
#[utoipa::path(post, path = "/channels", tag = "channels", request_body = NewChannel,
    responses((status = 201, body = ChannelView, headers(("location" = String, description = "URL of the new channel"))), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn create_channel(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewChannel>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 1], Json<ChannelView>)> {
    principal.require(Role::Admin)?;
    let c = state.crm().create_channel(principal.account_id, body).await?;
    let view = ChannelView::of(&c, state.crm().clock().now());
    Ok((StatusCode::CREATED, [(axum::http::header::LOCATION, format!("/api/v1/channels/{}", c.id))], Json(view)))
}

/// Get a channel, with its provider's health probed now.
#[utoipa::path(get, path = "/channels/{id}", tag = "channels", params(("id" = ChannelId, Path)),
    responses((status = 200, body = ChannelDetail), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_channel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<Json<ChannelDetail>> {
    let c = state.crm().get_channel(principal.account_id, id).await?;
    let health = state.crm().channel_health(&c).await;
    Ok(Json(ChannelDetail {
        channel: ChannelView::of(&c, state.crm().clock().now()),
        health: health.status,
        health_detail: health.detail,
    }))
}

/// Change a channel (absent fields keep their values; `credentials: null`
/// removes them).
#[utoipa::path(patch, path = "/channels/{id}", tag = "channels", params(("id" = ChannelId, Path)), request_body = ChannelPatch,
    responses((status = 200, body = ChannelView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn update_channel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ChannelId>,
    ApiJson(body): ApiJson<ChannelPatch>,
) -> ApiResult<Json<ChannelView>> {
    principal.require(Role::Admin)?;
    let c = state.crm().update_channel(principal.account_id, id, body).await?;
    Ok(Json(ChannelView::of(&c, state.crm().clock().now())))
}

/// Delete a channel. Queued messages of the channel fail; when it was the
/// default, the oldest remaining channel becomes the default.
#[utoipa::path(delete, path = "/channels/{id}", tag = "channels", params(("id" = ChannelId, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn delete_channel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    state.crm().delete_channel(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

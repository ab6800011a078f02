//! `/api/v1/channels/{id}/groups`: a channel's WhatsApp groups through its
//! provider's group manager (the WhatsApp Web channel; the `recording`
//! kind's in-memory double) — create, list (optionally refreshed from the
//! provider), read, rename/describe, add/remove participants,
//! promote/demote admins, leave, and the group thread (send, list).
//!
//! Each call asks the provider and answers its result (the new group's id,
//! or its refusal), then stores the group with `group.*` events. A channel
//! whose provider has no groups (Meta's Cloud API) answers 409 with the
//! problem type `/problems/unsupported`; a channel whose session is not
//! connected now (a WhatsApp Web session reconnecting or pairing) answers
//! 409 `/problems/channel-not-connected` (from `Error::NotConnected`).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::domain::group::{Group, GroupMessage, GroupPatch};
use crm_core::{ChannelId, GroupId, MessageContent, MessageId, ParticipantChange, Role};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group))
        .routes(routes!(add_participants, remove_participants))
        .routes(routes!(change_admins))
        .routes(routes!(leave_group))
        .routes(routes!(list_group_messages, send_to_group))
}

/// A group to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGroupInput {
    /// Its subject (1–100 characters).
    subject: String,
    /// Its first members' phones (E.164, or national numbers of the
    /// server's default country), 1 to 1,024, none twice.
    participants: Vec<String>,
}

/// Participants to add or remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParticipantsInput {
    /// Phones (E.164, or national numbers of the server's default country), 1 to 1,024, none twice.
    participants: Vec<String>,
}

/// Promote or demote.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AdminAction {
    /// Make them admins.
    Promote,
    /// Take their admin rights.
    Demote,
}

/// Admins to promote or demote.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminsInput {
    /// What to do.
    action: AdminAction,
    /// Members' phones, 1 to 1,024, none twice; each must be in the group.
    participants: Vec<String>,
}

/// A text to send to a group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupTextInput {
    /// The text (1–4,096 characters).
    text: String,
}

/// Listing options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListGroupsQuery {
    /// Ask the provider for the groups its number is in first, storing what
    /// changed (default `false`: what crm stored).
    refresh: Option<bool>,
}

/// Thread page options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupMessagesQuery {
    /// Messages after this one (the last id of the previous page).
    after: Option<MessageId>,
    /// At most this many (1–500, default 100).
    limit: Option<u32>,
}

/// A channel's groups (left ones too, with `left_at`), by subject.
#[utoipa::path(get, path = "/channels/{id}/groups", tag = "groups",
    params(("id" = ChannelId, Path), ListGroupsQuery),
    responses(
        (status = 200, body = [Group]),
        (status = 404, description = "No such channel", body = Problem),
        (status = 409, description = "`refresh` on a channel whose provider has no groups (`/problems/unsupported`), or its session is not connected (`/problems/channel-not-connected`)", body = Problem),
        (status = 422, body = Problem),
    ), security(("api_key" = [])))]
async fn list_groups(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ChannelId>,
    ApiQuery(q): ApiQuery<ListGroupsQuery>,
) -> ApiResult<Json<Vec<Group>>> {
    principal.require(Role::Viewer)?;
    Ok(Json(state.crm().list_groups(principal.account_id, id, q.refresh.unwrap_or(false)).await?))
}

/// Create a group on the channel (admins): the channel's number becomes
/// its admin, the participants its members (`group.created`).
#[utoipa::path(post, path = "/channels/{id}/groups", tag = "groups",
    params(("id" = ChannelId, Path)), request_body = NewGroupInput,
    responses(
        (status = 201, body = Group),
        (status = 404, description = "No such channel", body = Problem),
        (status = 409, description = "The channel's provider has no groups (`/problems/unsupported`), or its session is not connected (`/problems/channel-not-connected`)", body = Problem),
        (status = 422, description = "A bad subject or participant", body = Problem),
    ), security(("api_key" = [])))]
async fn create_group(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ChannelId>,
    ApiJson(input): ApiJson<NewGroupInput>,
) -> ApiResult<(StatusCode, [(header::HeaderName, String); 1], Json<Group>)> {
    principal.require(Role::Admin)?;
    crm_core::domain::group::check_subject(&input.subject)?;
    let participants = state.crm().parse_participants(&input.participants)?;
    let group = state.crm().create_group(principal.account_id, id, &input.subject, &participants).await?;
    let location = format!("/api/v1/channels/{id}/groups/{}", group.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(group)))
}

/// One group with its members.
#[utoipa::path(get, path = "/channels/{id}/groups/{group_id}", tag = "groups",
    params(("id" = ChannelId, Path), ("group_id" = GroupId, Path)),
    responses((status = 200, body = Group), (status = 404, description = "No such channel or group", body = Problem)),
    security(("api_key" = [])))]
async fn get_group(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, group)): ApiPath<(ChannelId, GroupId)>,
) -> ApiResult<Json<Group>> {
    principal.require(Role::Viewer)?;
    Ok(Json(state.crm().get_group(principal.account_id, id, group).await?))
}

/// Rename a group and/or set its description (admins; an empty
/// description clears it): `group.updated`.
#[utoipa::path(patch, path = "/channels/{id}/groups/{group_id}", tag = "groups",
    params(("id" = ChannelId, Path), ("group_id" = GroupId, Path)), request_body = GroupPatch,
    responses(
        (status = 200, body = Group),
        (status = 404, description = "No such channel or group", body = Problem),
        (status = 409, description = "The number left the group (`/problems/conflict`), the provider has no groups (`/problems/unsupported`), or the channel's session is not connected (`/problems/channel-not-connected`)", body = Problem),
        (status = 422, body = Problem),
    ), security(("api_key" = [])))]
async fn update_group(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, group)): ApiPath<(ChannelId, GroupId)>,
    ApiJson(patch): ApiJson<GroupPatch>,
) -> ApiResult<Json<Group>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().update_group(principal.account_id, id, group, &patch).await?))
}

async fn change(
    state: &AppState,
    principal: &Principal,
    (id, group): (ChannelId, GroupId),
    change: ParticipantChange,
    participants: &[String],
) -> ApiResult<Json<Group>> {
    principal.require(Role::Admin)?;
    let phones = state.crm().parse_participants(participants)?;
    Ok(Json(state.crm().change_group_participants(principal.account_id, id, group, change, &phones).await?))
}

/// Add members (admins; one already in the group is left as is):
/// `group.participants_changed` with `change: added`.
#[utoipa::path(post, path = "/channels/{id}/groups/{group_id}/participants", tag = "groups",
    params(("id" = ChannelId, Path), ("group_id" = GroupId, Path)), request_body = ParticipantsInput,
    responses(
        (status = 200, body = Group),
        (status = 404, description = "No such channel or group", body = Problem),
        (status = 409, description = "The number left the group (`/problems/conflict`), the provider has no groups (`/problems/unsupported`), or the channel's session is not connected (`/problems/channel-not-connected`)", body = Problem),
        (status = 422, body = Problem),
    ), security(("api_key" = [])))]
async fn add_participants(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<(ChannelId, GroupId)>,
    ApiJson(input): ApiJson<ParticipantsInput>,
) -> ApiResult<Json<Group>> {
    change(&state, &principal, path, ParticipantChange::Add, &input.participants).await
}

/// Remove members (admins; one not in the group is ignored):
/// `group.participants_changed` with `change: removed`.
#[utoipa::path(delete, path = "/channels/{id}/groups/{group_id}/participants", tag = "groups",
    params(("id" = ChannelId, Path), ("group_id" = GroupId, Path)), request_body = ParticipantsInput,
    responses(
        (status = 200, body = Group),
        (status = 404, description = "No such channel or group", body = Problem),
        (status = 409, description = "The number left the group (`/problems/conflict`), the provider has no groups (`/problems/unsupported`), or the channel's session is not connected (`/problems/channel-not-connected`)", body = Problem),
        (status = 422, body = Problem),
    ), security(("api_key" = [])))]
async fn remove_participants(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<(ChannelId, GroupId)>,
    ApiJson(input): ApiJson<ParticipantsInput>,
) -> ApiResult<Json<Group>> {
    change(&state, &principal, path, ParticipantChange::Remove, &input.participants).await
}

/// Promote members to admins or demote them (admins):
/// `group.participants_changed` with `change: promoted` / `demoted`.
#[utoipa::path(post, path = "/channels/{id}/groups/{group_id}/admins", tag = "groups",
    params(("id" = ChannelId, Path), ("group_id" = GroupId, Path)), request_body = AdminsInput,
    responses(
        (status = 200, body = Group),
        (status = 404, description = "No such channel or group", body = Problem),
        (status = 409, description = "The number left the group (`/problems/conflict`), the provider has no groups (`/problems/unsupported`), or the channel's session is not connected (`/problems/channel-not-connected`)", body = Problem),
        (status = 422, description = "A bad phone, or one not in the group", body = Problem),
    ), security(("api_key" = [])))]
async fn change_admins(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(path): ApiPath<(ChannelId, GroupId)>,
    ApiJson(input): ApiJson<AdminsInput>,
) -> ApiResult<Json<Group>> {
    let kind = match input.action {
        AdminAction::Promote => ParticipantChange::Promote,
        AdminAction::Demote => ParticipantChange::Demote,
    };
    change(&state, &principal, path, kind, &input.participants).await
}

/// Leave a group (admins): the group and its thread stay in crm with
/// `left_at` (`group.updated`).
#[utoipa::path(post, path = "/channels/{id}/groups/{group_id}/leave", tag = "groups",
    params(("id" = ChannelId, Path), ("group_id" = GroupId, Path)),
    responses(
        (status = 200, body = Group),
        (status = 404, description = "No such channel or group", body = Problem),
        (status = 409, description = "Already left (`/problems/conflict`), the provider has no groups (`/problems/unsupported`), or the channel's session is not connected (`/problems/channel-not-connected`)", body = Problem),
    ), security(("api_key" = [])))]
async fn leave_group(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, group)): ApiPath<(ChannelId, GroupId)>,
) -> ApiResult<Json<Group>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().leave_group(principal.account_id, id, group).await?))
}

/// A group's thread, oldest first: what participants wrote (with their
/// phone as `sender`) and what the business sent (with receipts per participant).
#[utoipa::path(get, path = "/channels/{id}/groups/{group_id}/messages", tag = "groups",
    params(("id" = ChannelId, Path), ("group_id" = GroupId, Path), GroupMessagesQuery),
    responses(
        (status = 200, body = [GroupMessage]),
        (status = 404, description = "No such channel or group", body = Problem),
        (status = 422, body = Problem),
    ), security(("api_key" = [])))]
async fn list_group_messages(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, group)): ApiPath<(ChannelId, GroupId)>,
    ApiQuery(q): ApiQuery<GroupMessagesQuery>,
) -> ApiResult<Json<Vec<GroupMessage>>> {
    principal.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(100);
    Ok(Json(state.crm().list_group_messages(principal.account_id, id, group, q.after, limit).await?))
}

/// Send a text to a group (agents): `group.message_sent`. Paced by the
/// channel's send governor like one-to-one messages (its rate, the spacing
/// per recipient — here the group — and jitter): a send that would have to
/// wait answers 429 with Retry-After and nothing is sent.
#[utoipa::path(post, path = "/channels/{id}/groups/{group_id}/messages", tag = "groups",
    params(("id" = ChannelId, Path), ("group_id" = GroupId, Path)), request_body = GroupTextInput,
    responses(
        (status = 201, body = GroupMessage),
        (status = 404, description = "No such channel or group", body = Problem),
        (status = 409, description = "The number left the group (`/problems/conflict`), the provider has no groups (`/problems/unsupported`), or the channel's session is not connected (`/problems/channel-not-connected`)", body = Problem),
        (status = 422, body = Problem),
        (status = 429, description = "The channel's pacing holds the message back; retry after `Retry-After`", body = Problem),
    ), security(("api_key" = [])))]
async fn send_to_group(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, group)): ApiPath<(ChannelId, GroupId)>,
    ApiJson(input): ApiJson<GroupTextInput>,
) -> ApiResult<(StatusCode, Json<GroupMessage>)> {
    principal.require(Role::Agent)?;
    let message = state.crm().send_to_group(principal.account_id, id, group, MessageContent::text(input.text)).await?;
    Ok((StatusCode::CREATED, Json(message)))
}

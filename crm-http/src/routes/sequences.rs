//! `/api/v1/sequences`: follow-up sequences and their enrolments.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::ports::sequences::EnrolmentQuery;
use crm_core::{
    ContactId, EnrolResult, Enrolment, EnrolmentId, EnrolmentState, NewSequence, Page, PageRequest, Role, Sequence,
    SequenceId,
};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::idempotency;
use crate::routes::contacts::PageParams;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sequences, create_sequence))
        .routes(routes!(get_sequence, replace_sequence, delete_sequence))
        .routes(routes!(list_enrolments, enrol_contacts))
        .routes(routes!(get_enrolment, stop_enrolment))
}

/// Contacts to enrol.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrolBody {
    /// 1–1000 contact ids.
    #[schema(value_type = Vec<uuid::Uuid>, min_items = 1, max_items = 1000)]
    contact_ids: Vec<ContactId>,
}

/// What happened to each contact.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EnrolResponse {
    /// One entry per contact, in request order.
    results: Vec<EnrolResult>,
}

/// Which enrolments to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrolmentParams {
    /// Only in this state.
    state: Option<EnrolmentState>,
    /// Only of this contact.
    #[param(value_type = Option<uuid::Uuid>)]
    contact_id: Option<ContactId>,
    /// Cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// List sequences.
#[utoipa::path(get, path = "/sequences", tag = "sequences", params(PageParams),
    responses((status = 200, body = Page<Sequence>), (status = 422, body = Problem)), security(("api_key" = [])))]
async fn list_sequences(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Sequence>>> {
    Ok(Json(state.crm().list_sequences(principal.account_id, &p.page()?).await?))
}

/// Create a sequence (admins): ordered steps, each a delay after the
/// previous one and an action (send a template or text, add/remove a tag,
/// set the stage), an optional send window (an IANA `time_zone` or a UTC
/// offset) and the late policy (`late`: what a step reached more than
/// `grace_seconds` late does — `skip`, `send` or `stop`). The JSON of
/// `examples/sequences/follow_up.json` imports as it is. Send
/// `Idempotency-Key` to make a retried request answer the first sequence
/// (`Idempotent-Replayed: true`); the same key with another body is 409.
#[utoipa::path(post, path = "/sequences", tag = "sequences", request_body = NewSequence,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII characters; makes the request safe to retry (kept one day)")),
    responses((status = 201, body = Sequence, headers(("location" = String, description = "URL of the new sequence"), ("idempotent-replayed" = String, description = "`true` when an earlier request with the same key created the sequence"))),
        (status = 409, description = "The Idempotency-Key was used with another body, or its first request is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn create_sequence(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewSequence>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 2], Json<Sequence>)> {
    principal.require(Role::Admin)?;
    let key = idempotency::key(&headers)?;
    let crm = state.crm();
    let account = principal.account_id;
    let create = || crm.create_sequence(account, body.clone());
    let get = |id: String| async move {
        let id = id.parse::<SequenceId>().map_err(|_| crm_core::Error::not_found("sequence"))?;
        crm.get_sequence(account, id).await
    };
    let (s, replayed) = idempotency::create_once(
        &state,
        account,
        idempotency::Creation { scope: "sequences", key, body: &body },
        |s: &Sequence| s.id.to_string(),
        create,
        get,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        [
            (axum::http::header::LOCATION, format!("/api/v1/sequences/{}", s.id)),
            (idempotency::REPLAYED, replayed.to_string()),
        ],
        Json(s),
    ))
}

/// A sequence.
#[utoipa::path(get, path = "/sequences/{id}", tag = "sequences", params(("id" = SequenceId, Path)),
    responses((status = 200, body = Sequence), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_sequence(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<SequenceId>,
) -> ApiResult<Json<Sequence>> {
    Ok(Json(state.crm().get_sequence(principal.account_id, id).await?))
}

/// Replace a sequence (admins). Running enrolments follow the new steps by
/// index. 409 when it changed concurrently.
#[utoipa::path(put, path = "/sequences/{id}", tag = "sequences", params(("id" = SequenceId, Path)),
    request_body = NewSequence,
    responses((status = 200, body = Sequence), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn replace_sequence(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<SequenceId>,
    ApiJson(body): ApiJson<NewSequence>,
) -> ApiResult<Json<Sequence>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().update_sequence(principal.account_id, id, body).await?))
}

/// Delete a sequence and its enrolments (admins); their pending steps do nothing.
#[utoipa::path(delete, path = "/sequences/{id}", tag = "sequences", params(("id" = SequenceId, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn delete_sequence(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<SequenceId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    state.crm().delete_sequence(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enrol contacts (agents): each gets an enrolment whose first step is a
/// durable job. Safe to retry: a contact already active in the sequence is
/// reported `already_enrolled`; missing and opted-out contacts are reported
/// and skipped. 409 when the sequence is disabled.
#[utoipa::path(post, path = "/sequences/{id}/enrolments", tag = "sequences", params(("id" = SequenceId, Path)),
    request_body = EnrolBody,
    responses((status = 200, body = EnrolResponse), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn enrol_contacts(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<SequenceId>,
    ApiJson(body): ApiJson<EnrolBody>,
) -> ApiResult<Json<EnrolResponse>> {
    principal.require(Role::Agent)?;
    let results = state.crm().enrol_contacts(principal.account_id, id, &body.contact_ids, None).await?;
    Ok(Json(EnrolResponse { results }))
}

/// A sequence's enrolments: state, stop reason, current step, next run time.
#[utoipa::path(get, path = "/sequences/{id}/enrolments", tag = "sequences",
    params(("id" = SequenceId, Path), EnrolmentParams),
    responses((status = 200, body = Page<Enrolment>), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_enrolments(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<SequenceId>,
    ApiQuery(p): ApiQuery<EnrolmentParams>,
) -> ApiResult<Json<Page<Enrolment>>> {
    let account = principal.account_id;
    state.crm().get_sequence(account, id).await?;
    let page = PageRequest::new(p.cursor.as_deref(), p.limit.unwrap_or(PageRequest::DEFAULT_LIMIT))?;
    let query = EnrolmentQuery { sequence: Some(id), contact: p.contact_id, state: p.state, page };
    Ok(Json(state.crm().list_enrolments(account, &query).await?))
}

async fn enrolment_of(
    state: &AppState,
    principal: &Principal,
    sequence: SequenceId,
    id: EnrolmentId,
) -> ApiResult<Enrolment> {
    let e = state.crm().get_enrolment(principal.account_id, id).await?;
    if e.sequence_id != sequence {
        return Err(ApiError::from(crm_core::Error::not_found("enrolment")));
    }
    Ok(e)
}

/// One enrolment.
#[utoipa::path(get, path = "/sequences/{id}/enrolments/{enrolment_id}", tag = "sequences",
    params(("id" = SequenceId, Path), ("enrolment_id" = EnrolmentId, Path)),
    responses((status = 200, body = Enrolment), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_enrolment(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, enrolment)): ApiPath<(SequenceId, EnrolmentId)>,
) -> ApiResult<Json<Enrolment>> {
    Ok(Json(enrolment_of(&state, &principal, id, enrolment).await?))
}

/// Stop an enrolment by hand (agents): no further step runs
/// (`sequence.stopped`, reason `manual`). Stopping a finished enrolment
/// returns it unchanged.
#[utoipa::path(delete, path = "/sequences/{id}/enrolments/{enrolment_id}", tag = "sequences",
    params(("id" = SequenceId, Path), ("enrolment_id" = EnrolmentId, Path)),
    responses((status = 200, body = Enrolment), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn stop_enrolment(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, enrolment)): ApiPath<(SequenceId, EnrolmentId)>,
) -> ApiResult<Json<Enrolment>> {
    principal.require(Role::Agent)?;
    let e = enrolment_of(&state, &principal, id, enrolment).await?;
    Ok(Json(state.crm().stop_enrolment(principal.account_id, e.id).await?))
}

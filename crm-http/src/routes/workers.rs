//! `/api/v1/dead-letters` and `/api/v1/jobs`: what the background workers
//! gave up on, and durable jobs — listed, replayed, cancelled.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::ports::store::check_consumer_name;
use crm_core::{DISPATCH_CONSUMER, DeadLetter, EventId, Job, JobId, JobQuery, JobState, Page, Role};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::contacts::PageParams;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_dead_letter))
        .routes(routes!(replay_dead_letters))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job, cancel_job))
        .routes(routes!(replay_job))
}

/// Which dead letters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterQuery {
    /// The worker (outbox consumer); default `dispatch`, the message dispatcher.
    consumer: Option<String>,
    /// Resume after this event id (the last item's `event.id`).
    after: Option<EventId>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// Dead letters of the account's events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeadLetters {
    /// In event order.
    items: Vec<DeadLetter>,
}

/// What to replay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplaySince {
    /// Every dead letter that died at or after this time.
    since: DateTime<Utc>,
}

/// How many were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Replayed {
    /// Items queued again.
    replayed: u64,
}

/// Which jobs.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobsQuery {
    /// Only this kind.
    kind: Option<String>,
    /// Only `scheduled` or `dead` jobs.
    state: Option<JobState>,
    /// Cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

fn consumer_of(q: Option<String>) -> ApiResult<String> {
    let c = q.unwrap_or_else(|| DISPATCH_CONSUMER.to_owned());
    check_consumer_name(&c)?;
    Ok(c)
}

/// List the dead letters of the account's events for a worker: items the
/// worker gave up on, with their error, kept until replayed.
#[utoipa::path(get, path = "/dead-letters", tag = "workers", params(DeadLetterQuery),
    responses((status = 200, body = DeadLetters), (status = 422, body = Problem)), security(("api_key" = [])))]
async fn list_dead_letters(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<DeadLetterQuery>,
) -> ApiResult<Json<DeadLetters>> {
    principal.require(Role::Admin)?;
    let consumer = consumer_of(q.consumer)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(crm_core::Error::validation("limit", "must be between 1 and 200").into());
    }
    let items = state.crm().store().list_dead_letters(&consumer, principal.account_id, q.after, limit).await?;
    Ok(Json(DeadLetters { items }))
}

/// Queue one dead letter again, due now with its attempts reset.
#[utoipa::path(post, path = "/dead-letters/{consumer}/{event_id}/replay", tag = "workers",
    params(("consumer" = String, Path), ("event_id" = EventId, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn replay_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((consumer, event)): ApiPath<(String, EventId)>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    check_consumer_name(&consumer)?;
    state.crm().store().replay_dead_letter(&consumer, principal.account_id, event).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queue again every dead letter of the account's events that died since a time.
#[utoipa::path(post, path = "/dead-letters/{consumer}/replay", tag = "workers",
    params(("consumer" = String, Path)), request_body = ReplaySince,
    responses((status = 200, body = Replayed), (status = 422, body = Problem)), security(("api_key" = [])))]
async fn replay_dead_letters(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(consumer): ApiPath<String>,
    ApiJson(body): ApiJson<ReplaySince>,
) -> ApiResult<Json<Replayed>> {
    principal.require(Role::Admin)?;
    check_consumer_name(&consumer)?;
    let replayed = state.crm().store().replay_dead_letters_since(&consumer, principal.account_id, body.since).await?;
    Ok(Json(Replayed { replayed }))
}

/// List the account's durable jobs (scheduled or dead).
#[utoipa::path(get, path = "/jobs", tag = "workers", params(JobsQuery),
    responses((status = 200, body = Page<Job>), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> ApiResult<Json<Page<Job>>> {
    principal.require(Role::Admin)?;
    if let Some(k) = &q.kind {
        crm_core::ports::jobs::check_job_kind(k)?;
    }
    let page = PageParams { cursor: q.cursor, limit: q.limit }.page()?;
    let query = JobQuery { kind: q.kind, state: q.state, page };
    Ok(Json(state.crm().store().list_jobs(principal.account_id, &query).await?))
}

/// Get a job.
#[utoipa::path(get, path = "/jobs/{id}", tag = "workers", params(("id" = JobId, Path)),
    responses((status = 200, body = Job), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_job(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<Job>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().store().get_job(principal.account_id, id).await?))
}

/// Cancel a scheduled or dead job (409 while a worker runs it).
#[utoipa::path(delete, path = "/jobs/{id}", tag = "workers", params(("id" = JobId, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)), security(("api_key" = [])))]
async fn cancel_job(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    state.crm().store().cancel_job(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Schedule a dead job again, due now with its attempts reset.
#[utoipa::path(post, path = "/jobs/{id}/replay", tag = "workers", params(("id" = JobId, Path)),
    responses((status = 200, body = Job), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn replay_job(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<Job>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().store().replay_job(principal.account_id, id).await?))
}

//! `/api/v1/automations` (rules, versions, enable/disable, runs, dry run),
//! `/api/v1/scoring` (the account's lead scoring model) and
//! `/api/v1/contacts/{id}/score-history`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::automation::DryRun;
use crm_core::domain::automation::{
    Action, Automation, AutomationRun, AutomationVersion, Condition, RuleDefinition, Trigger,
};
use crm_core::domain::scoring::{ScoreChange, ScoringModel};
use crm_core::{AutomationId, AutomationRunId, ContactId, Page, Role};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::idempotency;
use crate::routes::contacts::PageParams;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_automations, create_automation))
        .routes(routes!(get_automation, replace_automation, delete_automation))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(enable_automation))
        .routes(routes!(disable_automation))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(test_automation))
        .routes(routes!(get_scoring, put_scoring))
        .routes(routes!(score_history))
}

/// A rule as written: a name, a trigger, conditions and actions.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutomationBody {
    /// Name, 1–200 characters.
    name: String,
    /// What starts it: `{"event": "message.received"}` or `{"schedule": {"every_minutes": 60}}`.
    trigger: Trigger,
    /// All must hold.
    #[serde(default)]
    conditions: Vec<Condition>,
    /// In order, 1–20.
    actions: Vec<Action>,
    /// Create only: start disabled with `false` (default `true`).
    #[serde(default)]
    enabled: Option<bool>,
    /// Replace only: the version the edit is based on (409 when another edit came first).
    #[serde(default)]
    version: Option<u32>,
}

impl AutomationBody {
    fn definition(&self) -> RuleDefinition {
        RuleDefinition {
            trigger: self.trigger.clone(),
            conditions: self.conditions.clone(),
            actions: self.actions.clone(),
        }
    }
}

/// An event to try a rule against.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestEvent {
    /// The event type, e.g. `message.received`.
    #[serde(rename = "type")]
    event_type: String,
    /// Its payload, as the event log shows it (`{"message": {...}, "contact": {...}}`,
    /// a contact for `contact.*`, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// A rule's path and a version number.
#[derive(Debug, Deserialize)]
pub(crate) struct VersionPath {
    id: AutomationId,
    version: u32,
}

/// A rule's path and a run id.
#[derive(Debug, Deserialize)]
pub(crate) struct RunPath {
    id: AutomationId,
    run_id: AutomationRunId,
}

/// List automation rules.
#[utoipa::path(get, path = "/automations", tag = "automations", params(PageParams),
    responses((status = 200, body = Page<Automation>), (status = 422, body = Problem)), security(("api_key" = [])))]
async fn list_automations(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Automation>>> {
    Ok(Json(state.crm().list_automations(principal.account_id, &p.page()?).await?))
}

/// Create an automation rule (version 1). `send_email`, `notify_slack` and
/// `track_event` schedule durable jobs through the account's connections;
/// `ai_reply` is refused with 422 until its issue lands. Send
/// `Idempotency-Key` to make a retried request answer the first rule
/// (`Idempotent-Replayed: true`) instead of creating a second; the same key
/// with another body is 409.
#[utoipa::path(post, path = "/automations", tag = "automations", request_body = AutomationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 printable ASCII characters; makes the request safe to retry (kept one day)")),
    responses((status = 201, body = Automation, headers(("location" = String, description = "URL of the new rule"), ("idempotent-replayed" = String, description = "`true` when an earlier request with the same key created the rule"))),
        (status = 403, body = Problem), (status = 409, description = "The Idempotency-Key was used with another body, or its first request is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn create_automation(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AutomationBody>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 2], Json<Automation>)> {
    principal.require(Role::Admin)?;
    let key = idempotency::key(&headers)?;
    let crm = state.crm();
    let account = principal.account_id;
    let create = || async {
        let rule = crm.create_automation(account, &body.name, body.definition()).await?;
        if body.enabled == Some(false) {
            return crm.set_automation_enabled(account, rule.id, false).await;
        }
        Ok(rule)
    };
    let get = |id: String| async move {
        let id = id.parse::<AutomationId>().map_err(|_| crm_core::Error::not_found("automation"))?;
        crm.get_automation(account, id).await
    };
    let (rule, replayed) = idempotency::create_once(
        &state,
        account,
        idempotency::Creation { scope: "automations", key, body: &body },
        |r: &Automation| r.id.to_string(),
        create,
        get,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        [
            (axum::http::header::LOCATION, format!("/api/v1/automations/{}", rule.id)),
            (idempotency::REPLAYED, replayed.to_string()),
        ],
        Json(rule),
    ))
}

/// Get an automation rule (its current version).
#[utoipa::path(get, path = "/automations/{id}", tag = "automations", params(("id" = AutomationId, Path)),
    responses((status = 200, body = Automation), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_automation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AutomationId>,
) -> ApiResult<Json<Automation>> {
    Ok(Json(state.crm().get_automation(principal.account_id, id).await?))
}

/// Edit an automation rule: stores a new version (runs keep the version they used).
#[utoipa::path(put, path = "/automations/{id}", tag = "automations", params(("id" = AutomationId, Path)),
    request_body = AutomationBody,
    responses((status = 200, body = Automation), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)), security(("api_key" = [])))]
async fn replace_automation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AutomationId>,
    ApiJson(body): ApiJson<AutomationBody>,
) -> ApiResult<Json<Automation>> {
    principal.require(Role::Admin)?;
    let crm = state.crm();
    Ok(Json(crm.update_automation(principal.account_id, id, &body.name, body.definition(), body.version).await?))
}

/// Delete an automation rule with its versions and runs.
#[utoipa::path(delete, path = "/automations/{id}", tag = "automations", params(("id" = AutomationId, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn delete_automation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AutomationId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    state.crm().delete_automation(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A rule's versions, oldest first.
#[utoipa::path(get, path = "/automations/{id}/versions", tag = "automations", params(("id" = AutomationId, Path)),
    responses((status = 200, body = Vec<AutomationVersion>), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn list_versions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AutomationId>,
) -> ApiResult<Json<Vec<AutomationVersion>>> {
    Ok(Json(state.crm().automation_versions(principal.account_id, id).await?))
}

/// One version of a rule.
#[utoipa::path(get, path = "/automations/{id}/versions/{version}", tag = "automations",
    params(("id" = AutomationId, Path), ("version" = u32, Path)),
    responses((status = 200, body = AutomationVersion), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_version(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(p): ApiPath<VersionPath>,
) -> ApiResult<Json<AutomationVersion>> {
    Ok(Json(state.crm().automation_version(principal.account_id, p.id, p.version).await?))
}

/// Enable a rule: events run it again.
#[utoipa::path(post, path = "/automations/{id}/enable", tag = "automations", params(("id" = AutomationId, Path)),
    responses((status = 200, body = Automation), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn enable_automation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AutomationId>,
) -> ApiResult<Json<Automation>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().set_automation_enabled(principal.account_id, id, true).await?))
}

/// Disable a rule: events no longer run it (runs waiting on a `wait` still finish).
#[utoipa::path(post, path = "/automations/{id}/disable", tag = "automations", params(("id" = AutomationId, Path)),
    responses((status = 200, body = Automation), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn disable_automation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AutomationId>,
) -> ApiResult<Json<Automation>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().set_automation_enabled(principal.account_id, id, false).await?))
}

/// A rule's runs, oldest first: version, triggering event, each action's outcome and timing.
#[utoipa::path(get, path = "/automations/{id}/runs", tag = "automations", params(("id" = AutomationId, Path), PageParams),
    responses((status = 200, body = Page<AutomationRun>), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_runs(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AutomationId>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<AutomationRun>>> {
    Ok(Json(state.crm().automation_runs(principal.account_id, id, &p.page()?).await?))
}

/// One run of a rule.
#[utoipa::path(get, path = "/automations/{id}/runs/{run_id}", tag = "automations",
    params(("id" = AutomationId, Path), ("run_id" = AutomationRunId, Path)),
    responses((status = 200, body = AutomationRun), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(p): ApiPath<RunPath>,
) -> ApiResult<Json<AutomationRun>> {
    let run = state.crm().automation_run(principal.account_id, p.run_id).await?;
    if run.automation_id != p.id {
        return Err(crm_core::Error::not_found("automation run").into());
    }
    Ok(Json(run))
}

/// Dry run: what the rule would do for this event (each condition's verdict,
/// the actions with their rendered arguments), doing none of it.
#[utoipa::path(post, path = "/automations/{id}/test", tag = "automations", params(("id" = AutomationId, Path)),
    request_body = TestEvent,
    responses((status = 200, body = DryRun), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn test_automation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AutomationId>,
    ApiJson(body): ApiJson<TestEvent>,
) -> ApiResult<Json<DryRun>> {
    principal.require(Role::Agent)?;
    let crm = state.crm();
    Ok(Json(crm.dry_run_automation(principal.account_id, id, &body.event_type, body.payload).await?))
}

/// The account's lead scoring model (the default until one is stored).
#[utoipa::path(get, path = "/scoring", tag = "automations",
    responses((status = 200, body = ScoringModel)), security(("api_key" = [])))]
async fn get_scoring(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<ScoringModel>> {
    Ok(Json(state.crm().scoring_model(principal.account_id).await?))
}

/// Replace the account's lead scoring model.
#[utoipa::path(put, path = "/scoring", tag = "automations", request_body = ScoringModel,
    responses((status = 200, body = ScoringModel), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_scoring(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ScoringModel>,
) -> ApiResult<Json<ScoringModel>> {
    principal.require(Role::Admin)?;
    Ok(Json(state.crm().put_scoring_model(principal.account_id, body).await?))
}

/// A contact's lead score history, oldest first.
#[utoipa::path(get, path = "/contacts/{id}/score-history", tag = "contacts", params(("id" = ContactId, Path), PageParams),
    responses((status = 200, body = Page<ScoreChange>), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn score_history(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ScoreChange>>> {
    Ok(Json(state.crm().score_history(principal.account_id, id, &p.page()?).await?))
}

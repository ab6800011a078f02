//! `/api/v1/events`: the event log, the same one webhooks deliver.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{Event, EventId, Role};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::ApiQuery;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// Where to resume.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListEvents {
    /// The id of the last event already seen.
    after: Option<EventId>,
    /// How many, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A batch of events and where to continue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    /// Events in order.
    items: Vec<Event>,
    /// Pass as `after` to continue; absent when the batch was empty.
    next_after: Option<EventId>,
}

/// The role that may read an event's payload: the one that may read the same
/// data elsewhere in the API. Users (e-mails, roles) and API keys (names,
/// prefixes) are admin-only on `/users` and `/api-keys`, so their events are too.
fn payload_role(event: &Event) -> Role {
    let kind = event.event_type.as_str();
    if ["user.", "api_key.", "session."].iter().any(|p| kind.starts_with(p)) { Role::Admin } else { Role::Viewer }
}

/// An event as `role` may see it: whole, or with its payload reduced to the
/// entity's id and `"redacted": true` (the event stays, so cursors and
/// counts are the same for every role).
fn for_role(mut event: Event, role: Role) -> Event {
    if !role.includes(payload_role(&event)) {
        let id = event.payload.get("id").cloned().unwrap_or(serde_json::Value::Null);
        event.payload = serde_json::json!({ "id": id, "redacted": true });
    }
    event
}

/// Events of the account after a cursor, oldest first. Below the admin
/// role, the payloads of `user.*`, `api_key.*` and `session.*` events are
/// redacted to the entity's id.
#[utoipa::path(get, path = "/events", tag = "events", params(ListEvents),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListEvents>,
) -> ApiResult<Json<EventPage>> {
    let items = state.crm().list_events(principal.account_id, q.after, q.limit.unwrap_or(100)).await?;
    let items: Vec<Event> = items.into_iter().map(|e| for_role(e, principal.role)).collect();
    let next_after = items.last().map(|e| e.id).or(q.after);
    Ok(Json(EventPage { items, next_after }))
}

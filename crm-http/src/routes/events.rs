//! `/api/v1/events`: the event log, the same one webhooks deliver.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{Event, EventId};

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

/// Events of the account after a cursor, oldest first.
#[utoipa::path(get, path = "/events", tag = "events", params(ListEvents),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListEvents>,
) -> ApiResult<Json<EventPage>> {
    let items = state.crm().list_events(principal.account_id, q.after, q.limit.unwrap_or(100)).await?;
    let next_after = items.last().map(|e| e.id).or(q.after);
    Ok(Json(EventPage { items, next_after }))
}

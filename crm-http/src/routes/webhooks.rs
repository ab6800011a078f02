//! `/api/v1/webhooks/*`: outbound webhook endpoints (CRUD, secret
//! rotation, test events, recovery), their deliveries and attempts, and
//! `/api/v1/event-types`, the catalog of what can be subscribed to.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{IntoParams, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{
    DeliveryQuery, DeliveryStatus, EndpointView, EventId, EventType, Page, PageRequest, Role, WebhookAttempt,
    WebhookDelivery, WebhookDeliveryId, WebhookEndpointId,
};
use crm_webhooks::{EndpointPatch, NewEndpoint};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test))
        .routes(routes!(recover))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(list_attempts))
        .routes(routes!(replay))
        .routes(routes!(event_types))
}

/// The account's endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointList {
    /// In creation order.
    items: Vec<EndpointView>,
}

/// An endpoint with its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointWithSecret {
    /// The endpoint.
    endpoint: EndpointView,
    /// `whsec_…`: verify the `webhook-signature` header with it. Not shown again.
    secret: String,
}

/// A secret rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateSecret {
    /// Seconds the current secret keeps signing beside the new one
    /// (default 86400; 0 stops it at once), at most 30 days.
    #[serde(default)]
    #[schema(maximum = 2_592_000)]
    overlap_secs: Option<u64>,
    /// A `whsec_…` secret to use instead of a generated one.
    #[serde(default)]
    secret: Option<String>,
}

/// Which failed deliveries to send again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recover {
    /// Failed deliveries created at or after this time.
    since: DateTime<Utc>,
}

/// How many deliveries were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Recovered {
    /// Deliveries made pending.
    replayed: u64,
}

/// Filters and page of a delivery list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListDeliveries {
    /// Only this endpoint's.
    endpoint_id: Option<WebhookEndpointId>,
    /// Only this event's.
    event_id: Option<EventId>,
    /// Only deliveries in this state.
    status: Option<DeliveryStatus>,
    /// Cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A delivery's attempts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptList {
    /// Oldest first.
    items: Vec<WebhookAttempt>,
}

/// One event type that can be subscribed to.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventTypeInfo {
    /// The name (`contact.created`); filters also take `prefix.*` patterns.
    name: String,
    /// What it means.
    description: String,
    /// The JSON Schema of the request body's `data` (the event's payload).
    #[schema(value_type = Object)]
    payload_schema: serde_json::Value,
}

/// Every event type.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventTypeList {
    /// Sorted by name.
    items: Vec<EventTypeInfo>,
}

fn webhooks(state: &AppState) -> ApiResult<crm_webhooks::Webhooks> {
    Ok(state.webhooks()?)
}

/// List webhook endpoints (admin).
#[utoipa::path(get, path = "/webhooks/endpoints", tag = "outbound-webhooks",
    responses((status = 200, body = EndpointList)), security(("api_key" = [])))]
async fn list_endpoints(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<EndpointList>> {
    principal.require(Role::Admin)?;
    let items = webhooks(&state)?.endpoints(principal.account_id).await?.iter().map(|e| e.view()).collect();
    Ok(Json(EndpointList { items }))
}

/// Create a webhook endpoint (admin). The response holds its signing
/// secret, shown this once. URLs that point to loopback, private,
/// link-local or other internal addresses are refused (422).
#[utoipa::path(post, path = "/webhooks/endpoints", tag = "outbound-webhooks", request_body = NewEndpoint,
    responses((status = 201, body = EndpointWithSecret, headers(("location" = String, description = "URL of the new endpoint"))),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn create_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> ApiResult<(StatusCode, [(header::HeaderName, String); 1], Json<EndpointWithSecret>)> {
    principal.require(Role::Admin)?;
    let (e, secret) = webhooks(&state)?.create_endpoint(principal.account_id, body).await?;
    let location = format!("/api/v1/webhooks/endpoints/{}", e.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(EndpointWithSecret { endpoint: e.view(), secret })))
}

/// Get a webhook endpoint (admin).
#[utoipa::path(get, path = "/webhooks/endpoints/{id}", tag = "outbound-webhooks", params(("id" = WebhookEndpointId, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookEndpointId>,
) -> ApiResult<Json<EndpointView>> {
    principal.require(Role::Admin)?;
    Ok(Json(webhooks(&state)?.endpoint(principal.account_id, id).await?.view()))
}

/// Change a webhook endpoint (admin; absent fields keep their values,
/// `version` is the one read). Enabling it clears its failure state.
#[utoipa::path(patch, path = "/webhooks/endpoints/{id}", tag = "outbound-webhooks", params(("id" = WebhookEndpointId, Path)),
    request_body = EndpointPatch,
    responses((status = 200, body = EndpointView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn update_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookEndpointId>,
    ApiJson(body): ApiJson<EndpointPatch>,
) -> ApiResult<Json<EndpointView>> {
    principal.require(Role::Admin)?;
    Ok(Json(webhooks(&state)?.update_endpoint(principal.account_id, id, body).await?.view()))
}

/// Delete a webhook endpoint with its deliveries and attempts (admin).
#[utoipa::path(delete, path = "/webhooks/endpoints/{id}", tag = "outbound-webhooks", params(("id" = WebhookEndpointId, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn delete_endpoint(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookEndpointId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    webhooks(&state)?.delete_endpoint(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate an endpoint's signing secret (admin): the new one signs from now
/// on and the current one keeps signing beside it during the overlap, so
/// receivers can switch without losing a request.
#[utoipa::path(post, path = "/webhooks/endpoints/{id}/rotate-secret", tag = "outbound-webhooks",
    params(("id" = WebhookEndpointId, Path)), request_body = RotateSecret,
    responses((status = 200, body = EndpointWithSecret), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookEndpointId>,
    ApiJson(body): ApiJson<RotateSecret>,
) -> ApiResult<Json<EndpointWithSecret>> {
    principal.require(Role::Admin)?;
    let overlap = match body.overlap_secs {
        Some(s) if s > 2_592_000 => {
            return Err(crm_core::Error::validation("overlap_secs", "at most 30 days (2592000)").into());
        }
        other => other.map(Duration::from_secs),
    };
    let (e, secret) =
        webhooks(&state)?.rotate_secret(principal.account_id, id, overlap, body.secret.as_deref()).await?;
    Ok(Json(EndpointWithSecret { endpoint: e.view(), secret }))
}

/// Queue a `webhook.test` event to one endpoint, whatever its filter (admin).
#[utoipa::path(post, path = "/webhooks/endpoints/{id}/test", tag = "outbound-webhooks", params(("id" = WebhookEndpointId, Path)),
    responses((status = 202, body = WebhookDelivery), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn send_test(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookEndpointId>,
) -> ApiResult<(StatusCode, Json<WebhookDelivery>)> {
    principal.require(Role::Admin)?;
    Ok((StatusCode::ACCEPTED, Json(webhooks(&state)?.send_test(principal.account_id, id).await?)))
}

/// Send again every failed delivery of an endpoint created since a time (admin).
#[utoipa::path(post, path = "/webhooks/endpoints/{id}/recover", tag = "outbound-webhooks", params(("id" = WebhookEndpointId, Path)),
    request_body = Recover,
    responses((status = 202, body = Recovered), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn recover(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookEndpointId>,
    ApiJson(body): ApiJson<Recover>,
) -> ApiResult<(StatusCode, Json<Recovered>)> {
    principal.require(Role::Admin)?;
    let replayed = webhooks(&state)?.recover(principal.account_id, id, body.since).await?;
    Ok((StatusCode::ACCEPTED, Json(Recovered { replayed })))
}

/// List deliveries (admin), by endpoint, event and status.
#[utoipa::path(get, path = "/webhooks/deliveries", tag = "outbound-webhooks", params(ListDeliveries),
    responses((status = 200, body = Page<WebhookDelivery>), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListDeliveries>,
) -> ApiResult<Json<Page<WebhookDelivery>>> {
    principal.require(Role::Admin)?;
    let query = DeliveryQuery {
        endpoint_id: q.endpoint_id,
        event_id: q.event_id,
        status: q.status,
        page: PageRequest::new(q.cursor.as_deref(), q.limit.unwrap_or(PageRequest::DEFAULT_LIMIT))?,
    };
    Ok(Json(webhooks(&state)?.deliveries(principal.account_id, &query).await?))
}

/// Get a delivery (admin).
#[utoipa::path(get, path = "/webhooks/deliveries/{id}", tag = "outbound-webhooks", params(("id" = WebhookDeliveryId, Path)),
    responses((status = 200, body = WebhookDelivery), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_delivery(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookDeliveryId>,
) -> ApiResult<Json<WebhookDelivery>> {
    principal.require(Role::Admin)?;
    Ok(Json(webhooks(&state)?.delivery(principal.account_id, id).await?))
}

/// A delivery's attempts: time, status, latency, response excerpt, error (admin).
#[utoipa::path(get, path = "/webhooks/deliveries/{id}/attempts", tag = "outbound-webhooks", params(("id" = WebhookDeliveryId, Path)),
    responses((status = 200, body = AttemptList), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn list_attempts(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookDeliveryId>,
) -> ApiResult<Json<AttemptList>> {
    principal.require(Role::Admin)?;
    Ok(Json(AttemptList { items: webhooks(&state)?.attempts(principal.account_id, id).await? }))
}

/// Send a delivery again now (admin): a failed or succeeded one becomes
/// pending (a dead one leaves the dead letters); a pending one is left as it is.
#[utoipa::path(post, path = "/webhooks/deliveries/{id}/replay", tag = "outbound-webhooks", params(("id" = WebhookDeliveryId, Path)),
    responses((status = 202, body = WebhookDelivery), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn replay(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WebhookDeliveryId>,
) -> ApiResult<(StatusCode, Json<WebhookDelivery>)> {
    principal.require(Role::Admin)?;
    Ok((StatusCode::ACCEPTED, Json(webhooks(&state)?.replay(principal.account_id, id).await?)))
}

/// Adds the payload types the event catalog refers to (and what they
/// refer to) to the document's components.
pub(crate) fn add_payload_schemas(doc: &mut utoipa::openapi::OpenApi) {
    fn add<T: ToSchema>(c: &mut utoipa::openapi::Components) {
        let mut all = vec![(T::name().into_owned(), T::schema())];
        T::schemas(&mut all);
        for (name, schema) in all {
            c.schemas.entry(name).or_insert(schema);
        }
    }
    let c = doc.components.get_or_insert_with(Default::default);
    add::<crm_core::Account>(c);
    add::<crm_core::Contact>(c);
    add::<crm_core::Message>(c);
    add::<crm_core::Template>(c);
    add::<crm_core::ChannelView>(c);
    add::<EndpointView>(c);
    add::<crm_core::domain::billing::Subscription>(c);
    add::<crm_core::domain::automation::Automation>(c);
    add::<crm_core::domain::automation::AutomationRun>(c);
    add::<crm_core::domain::scoring::ScoreChange>(c);
    add::<crm_core::Sequence>(c);
    add::<crm_core::Enrolment>(c);
    add::<crm_core::domain::group::Group>(c);
    add::<crm_core::domain::group::GroupMessage>(c);
}

fn schema_json(schema: RefOr<Schema>) -> serde_json::Value {
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

/// A reference to a component of the OpenAPI document.
fn component(name: &str) -> serde_json::Value {
    serde_json::json!({ "$ref": format!("/openapi.json#/components/schemas/{name}") })
}

fn object(fields: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let props: serde_json::Map<String, serde_json::Value> =
        fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    let required: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    serde_json::json!({ "type": "object", "properties": props, "required": required })
}

/// The catalog: every event type, what it means, and its payload's schema.
fn catalog() -> Vec<EventTypeInfo> {
    let id = || object(&[("id", schema_json(crm_core::EventId::schema()))]);
    let string = || serde_json::json!({ "type": "string" });
    let integer = || serde_json::json!({ "type": "integer", "minimum": 0 });
    let contact_summary = object(&[("id", string()), ("name", string()), ("phone", string())]);
    let message_with_contact = object(&[("message", component("Message")), ("contact", contact_summary)]);
    let status = object(&[("message_id", string()), ("contact_id", string()), ("status", string())]);
    let nullable = |name: &str| serde_json::json!({ "oneOf": [component(name), { "type": "null" }] });
    let group_payload = object(&[
        ("group_id", string()),
        ("channel_id", string()),
        ("jid", string()),
        ("subject", string()),
        ("description", serde_json::json!({ "type": ["string", "null"] })),
        ("participants", serde_json::json!({ "type": "array", "items": component("GroupParticipant") })),
        ("left", serde_json::json!({ "type": "boolean" })),
    ]);
    let group_message = object(&[
        ("message_id", string()),
        ("group_id", string()),
        ("channel_id", string()),
        ("direction", string()),
        ("sender", serde_json::json!({ "type": ["string", "null"] })),
        ("sender_name", serde_json::json!({ "type": ["string", "null"] })),
        ("provider_message_id", serde_json::json!({ "type": ["string", "null"] })),
        ("content", component("MessageContent")),
    ]);
    let message_update = serde_json::json!({
        "type": "object",
        "properties": {
            "message_id": string(), "contact_id": string(), "direction": component("Direction"),
            "attachment": nullable("Attachment"), "pricing": nullable("Pricing"),
            "fallback": nullable("Fallback"),
        },
        "required": ["message_id", "contact_id", "direction"],
    });
    // `campaign.*`: the campaign's id, name and new state; `scheduled_at`,
    // `reason` (why it stopped) and `counters` (terminal events) when set.
    let campaign = |state: &str| {
        serde_json::json!({
            "type": "object",
            "properties": {
                "id": string(), "name": string(),
                "state": { "allOf": [component("CampaignState")], "example": state },
                "scheduled_at": { "type": "string", "format": "date-time" },
                "reason": string(), "counters": component("CampaignCounters"),
            },
            "required": ["id", "name", "state"],
        })
    };
    // `email.*`: what the e-mail provider's event webhook reported.
    let email = serde_json::json!({
        "type": "object",
        "properties": {
            "provider": string(), "email": string(), "at": { "type": "string", "format": "date-time" },
            "contact_id": string(), "sg_event_id": string(), "sg_message_id": string(), "reason": string(),
            "status": string(), "type": string(), "url": string(), "bounce_classification": string(),
        },
        "required": ["provider", "email", "at"],
    });
    let entries: Vec<(&EventType, &str, serde_json::Value)> = vec![
        (&EventType::ACCOUNT_CREATED, "An account was created.", component("Account")),
        (
            &EventType::ACCOUNT_UPDATED,
            "An account's name or time zone changed (the account as it now is).",
            component("Account"),
        ),
        (&EventType::USER_CREATED, "A user was created.", object(&[("id", string()), ("email", string())])),
        (
            &EventType::API_KEY_CREATED,
            "An API key was created (never its secret).",
            object(&[("id", string()), ("prefix", string())]),
        ),
        (&EventType::API_KEY_REVOKED, "An API key was revoked.", id()),
        (
            &EventType::CONTACT_CREATED,
            "A contact was created (by hand, import or an inbound message).",
            component("Contact"),
        ),
        (&EventType::CONTACT_UPDATED, "A contact changed.", component("Contact")),
        (&EventType::CONTACT_DELETED, "A contact was deleted.", id()),
        (&EventType::MESSAGE_QUEUED, "An outbound message was queued.", message_with_contact.clone()),
        (&EventType::MESSAGE_RECEIVED, "An inbound message arrived.", message_with_contact),
        (&EventType::MESSAGE_STATUS_UPDATED, "A message's status moved forward.", status),
        (
            &EventType::THREAD_ASSIGNED,
            "A conversation (a contact's thread) was assigned to a user of the account (`assignee_id`), or \
             unassigned (`assignee_id` null), by `assigned_by` (null: not a dashboard user).",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "contact_id": string(),
                    "assignee_id": { "type": ["string", "null"] },
                    "assigned_by": { "type": ["string", "null"] },
                },
                "required": ["contact_id", "assignee_id", "assigned_by"],
            }),
        ),
        (&EventType::TEMPLATE_CREATED, "A template was created.", component("Template")),
        (&EventType::TEMPLATE_UPDATED, "A template changed.", component("Template")),
        (&EventType::TEMPLATE_DELETED, "A template was deleted.", id()),
        (&EventType::CHANNEL_CREATED, "A channel was created.", component("ChannelView")),
        (&EventType::CHANNEL_UPDATED, "A channel changed.", component("ChannelView")),
        (&EventType::CHANNEL_DELETED, "A channel was deleted.", id()),
        (&EventType::CHANNEL_THROTTLED, "A channel stopped sending for a while.", id()),
        (&EventType::CHANNEL_RESUMED, "A throttled channel sends again.", id()),
        (
            &EventType::CHANNEL_STATE_CHANGED,
            "A channel's provider connection changed state (a WhatsApp Web session: opening, pairing, connected, \
             conflict, reconnecting, logged_out, failed, stopped).",
            object(&[
                ("channel_id", string()),
                ("kind", string()),
                ("status", serde_json::json!({ "type": "object" })),
            ]),
        ),
        (
            &EventType::CHANNEL_QR,
            "A channel waiting to be paired shows a new QR code (`qr`: its text, to render or scan).",
            object(&[("channel_id", string()), ("kind", string()), ("qr", string())]),
        ),
        (
            &EventType::CHANNEL_CONTACTS_SYNCED,
            "A channel imported the contacts and one-to-one chats its provider reported (WhatsApp Web's contacts \
             sync, on connecting and as chats appear or are renamed): `reported` of them, `created` new contacts, \
             `updated` ones whose name or WhatsApp id changed, `unchanged`, and `skipped` (no phone known, or not \
             stored).",
            object(&[
                ("channel_id", string()),
                ("kind", string()),
                ("reported", integer()),
                ("created", integer()),
                ("updated", integer()),
                ("unchanged", integer()),
                ("skipped", integer()),
            ]),
        ),
        (
            &EventType::MESSAGE_UPDATED,
            "A message gained provider data (its downloaded attachment, or pricing from a status report), or a \
             queued free-form message fell back to its template because the window closed while it waited.",
            message_update,
        ),
        (&EventType::CAMPAIGN_CREATED, "A campaign was created (as a draft).", campaign("draft")),
        (&EventType::CAMPAIGN_SCHEDULED, "A campaign was scheduled to start at a time.", campaign("scheduled")),
        (&EventType::CAMPAIGN_STARTED, "A campaign started sending.", campaign("running")),
        (&EventType::CAMPAIGN_PAUSED, "A running campaign was paused.", campaign("paused")),
        (&EventType::CAMPAIGN_RESUMED, "A paused campaign sends again.", campaign("running")),
        (
            &EventType::CAMPAIGN_CANCELLED,
            "A campaign was cancelled (by hand, or because its channel or template was deleted; `reason` says).",
            campaign("cancelled"),
        ),
        (
            &EventType::CAMPAIGN_COMPLETED,
            "Every recipient of a campaign was sent to, skipped or failed (`counters` has the totals).",
            campaign("completed"),
        ),
        (
            &EventType::CAMPAIGN_DELETED,
            "A campaign that was not under way (a draft, completed or cancelled) was deleted with its recipients.",
            campaign("cancelled"),
        ),
        (&EventType::ENDPOINT_CREATED, "A webhook endpoint was created.", component("EndpointView")),
        (&EventType::SEQUENCE_CREATED, "A follow-up sequence was created.", component("Sequence")),
        (&EventType::SEQUENCE_UPDATED, "A sequence changed (steps, window, enabled).", component("Sequence")),
        (&EventType::SEQUENCE_DELETED, "A sequence was deleted with its enrolments.", id()),
        (&EventType::SEQUENCE_ENROLLED, "A contact was enrolled in a sequence.", component("Enrolment")),
        (
            &EventType::SEQUENCE_STEP_COMPLETED,
            "A step of an enrolment ran (`step`: its index); the enrolment shows the next one.",
            object(&[("enrolment", component("Enrolment")), ("step", serde_json::json!({ "type": "integer" }))]),
        ),
        (
            &EventType::SEQUENCE_STEP_SKIPPED,
            "A message step was reached later than the sequence's `late.grace_seconds` and skipped (`step`: its \
             index, `due_at`, `late_seconds`); the enrolment shows the next one.",
            object(&[
                ("enrolment", component("Enrolment")),
                ("step", serde_json::json!({ "type": "integer" })),
                ("due_at", serde_json::json!({ "type": "string", "format": "date-time" })),
                ("late_seconds", serde_json::json!({ "type": "integer" })),
            ]),
        ),
        (
            &EventType::SEQUENCE_COMPLETED,
            "An enrolment ran its last step (`step`: its index; `skipped: true` when the late policy skipped it).",
            object(&[("enrolment", component("Enrolment")), ("step", serde_json::json!({ "type": "integer" }))]),
        ),
        (
            &EventType::SEQUENCE_STOPPED,
            "An enrolment stopped early: `stop_reason` replied, stage_changed, opted_out, manual, automation, late, \
             failed or contact_deleted.",
            component("Enrolment"),
        ),
        (
            &EventType::ENDPOINT_UPDATED,
            "A webhook endpoint changed (including a secret rotation).",
            component("EndpointView"),
        ),
        (&EventType::ENDPOINT_DELETED, "A webhook endpoint was deleted.", id()),
        (
            &EventType::CONNECTION_UPDATED,
            "A connection to an outside provider (sendgrid, smtp, slack, ga4, …) was set or changed (never its \
             credentials).",
            object(&[("provider", string()), ("status", string())]),
        ),
        (
            &EventType::CONNECTION_DELETED,
            "A connection to an outside provider was removed.",
            object(&[("provider", string())]),
        ),
        (
            &EventType::EMAIL_DELIVERED,
            "The e-mail provider delivered an e-mail to the recipient's server.",
            email.clone(),
        ),
        (
            &EventType::EMAIL_BOUNCED,
            "The recipient's server refused an e-mail (`reason`, `bounce_classification`).",
            email.clone(),
        ),
        (
            &EventType::EMAIL_DROPPED,
            "The e-mail provider dropped an e-mail (suppressed or invalid address).",
            email.clone(),
        ),
        (&EventType::EMAIL_DEFERRED, "The recipient's server deferred an e-mail; the provider retries.", email.clone()),
        (&EventType::EMAIL_OPENED, "The recipient opened an e-mail.", email.clone()),
        (&EventType::EMAIL_CLICKED, "The recipient clicked a link of an e-mail (`url`).", email.clone()),
        (&EventType::EMAIL_SPAM_REPORTED, "The recipient reported an e-mail as spam.", email.clone()),
        (&EventType::EMAIL_UNSUBSCRIBED, "The recipient unsubscribed.", email.clone()),
        (
            &EventType::GROUP_CREATED,
            "A WhatsApp group was created through a channel, or first seen on one.",
            group_payload.clone(),
        ),
        (
            &EventType::GROUP_UPDATED,
            "A group's subject or description changed, or the channel's number left it (`left`).",
            group_payload.clone(),
        ),
        (
            &EventType::GROUP_PARTICIPANTS_CHANGED,
            "Group members were added, removed, promoted to admin or demoted: `change` says which, `changed` names \
             the phones, `participants` is the group's members afterwards.",
            {
                let mut p = group_payload.clone();
                p["properties"]["change"] =
                    serde_json::json!({ "type": "string", "enum": ["added", "removed", "promoted", "demoted"] });
                p["properties"]["changed"] = serde_json::json!({ "type": "array", "items": { "type": "string" } });
                if let Some(r) = p["required"].as_array_mut() {
                    r.extend([serde_json::json!("change"), serde_json::json!("changed")]);
                }
                p
            },
        ),
        (
            &EventType::GROUP_MESSAGE_RECEIVED,
            "A participant wrote in a group (`sender` is their phone).",
            group_message.clone(),
        ),
        (&EventType::GROUP_MESSAGE_SENT, "The business sent a message to a group.", group_message),
        (
            &EventType::ENDPOINT_DISABLED,
            "Delivery disabled a webhook endpoint (410 Gone, or failing continuously).",
            component("EndpointView"),
        ),
        (
            &EventType::MESSAGE_ANALYZED,
            "The assistant classified an inbound message: its sentiment and the conversation's lead signals.",
            component("MessageAnalysis"),
        ),
        (
            &EventType::AI_DRAFT_SUGGESTED,
            "The assistant stored a reply draft for an agent (auto-reply `suggest`).",
            object(&[("draft_id", string()), ("contact_id", string()), ("message_id", string())]),
        ),
        (
            &EventType::AI_AUTO_REPLY_UPDATED,
            "An account's (`channel_id` null) or channel's auto-reply setting changed.",
            object(&[("channel_id", string()), ("mode", component("AutoReplyMode"))]),
        ),
        (
            &EventType::BILLING_SUBSCRIPTION_CREATED,
            "The billing provider reported the account's subscription for the first time.",
            component("Subscription"),
        ),
        (
            &EventType::BILLING_SUBSCRIPTION_UPDATED,
            "The account's subscription changed (status, price, quantity, period end, cancel at period end).",
            component("Subscription"),
        ),
        (
            &EventType::BILLING_SUBSCRIPTION_CANCELED,
            "The account's subscription was canceled.",
            component("Subscription"),
        ),
        (
            &EventType::BILLING_CHECKOUT_COMPLETED,
            "A checkout session was completed (`session_id`, `mode`, `customer_id`, `subscription_id`).",
            object(&[("session_id", string()), ("mode", string()), ("customer_id", string())]),
        ),
        (
            &EventType::BILLING_INVOICE_PAID,
            "An invoice was paid (`invoice_id`, `amount` in minor units, `currency`, `subscription_id`).",
            object(&[
                ("invoice_id", string()),
                ("amount", serde_json::json!({ "type": "integer" })),
                ("currency", string()),
            ]),
        ),
        (
            &EventType::BILLING_INVOICE_PAYMENT_FAILED,
            "An invoice's payment failed; the provider may retry (`invoice_id`, `amount`, `currency`, `attempt_count`).",
            object(&[
                ("invoice_id", string()),
                ("amount", serde_json::json!({ "type": "integer" })),
                ("currency", string()),
            ]),
        ),
        (&EventType::AUTOMATION_CREATED, "An automation rule was created.", component("Automation")),
        (
            &EventType::AUTOMATION_UPDATED,
            "An automation rule was edited (a new version), enabled or disabled.",
            component("Automation"),
        ),
        (&EventType::AUTOMATION_DELETED, "An automation rule was deleted.", id()),
        (
            &EventType::AUTOMATION_RUN_FAILED,
            "An automation run failed or was stopped by the loop bound (`reason` says why).",
            component("AutomationRun"),
        ),
        (
            &EventType::CONTACT_SCORE_CHANGED,
            "A contact's lead score changed (old and new score, the signal, a stage it moved to).",
            component("ScoreChange"),
        ),
    ];
    let mut items: Vec<EventTypeInfo> = entries
        .into_iter()
        .map(|(t, d, s)| EventTypeInfo { name: t.as_str().to_owned(), description: d.to_owned(), payload_schema: s })
        .collect();
    items.push(EventTypeInfo {
        name: crm_webhooks::TEST_EVENT_TYPE.to_owned(),
        description: "A test sent to one endpoint from the API (never in the event log).".into(),
        payload_schema: object(&[("endpoint_id", string()), ("test", serde_json::json!({ "type": "boolean" }))]),
    });
    items.sort_by(|a, b| a.name.cmp(&b.name));
    items
}

/// Every event type webhooks can subscribe to, with the schema of its payload
/// (the `data` of the request body `{"type", "timestamp", "data"}`).
#[utoipa::path(get, path = "/event-types", tag = "outbound-webhooks",
    responses((status = 200, body = EventTypeList)), security(("api_key" = [])))]
async fn event_types(_principal: Principal) -> Json<EventTypeList> {
    Json(EventTypeList { items: catalog() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_names_every_built_in_type_once() {
        let names: Vec<String> = catalog().into_iter().map(|i| i.name).collect();
        for t in EventType::BUILT_IN {
            assert_eq!(names.iter().filter(|n| *n == t.as_str()).count(), 1, "{t}");
        }
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    }
}

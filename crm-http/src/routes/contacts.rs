//! `/api/v1/contacts`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::{
    Contact, ContactId, ContactPatch, ContactQuery, ContactSearch, ContactWindows, LeadStage, Message, NewContact,
    Page, PageRequest, Role, Tag,
};

use crate::auth::Principal;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(get_contact, update_contact, delete_contact))
        .routes(routes!(add_tags, remove_tags))
        .routes(routes!(contact_thread))
        .routes(routes!(contact_windows))
}

/// Filters and page of a contact list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListContacts {
    /// Only contacts with this tag.
    tag: Option<String>,
    /// Name prefix, phone digits, or e-mail prefix (when it contains `@`).
    search: Option<String>,
    /// Only contacts in this lead stage.
    stage: Option<LeadStage>,
    /// Cursor from the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A page request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl PageParams {
    pub(crate) fn page(&self) -> ApiResult<PageRequest> {
        Ok(PageRequest::new(self.cursor.as_deref(), self.limit.unwrap_or(PageRequest::DEFAULT_LIMIT))?)
    }
}

/// Tags to add or remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagsBody {
    /// Tags (normalised to lower case).
    tags: Vec<String>,
}

/// List contacts (keyset pagination).
#[utoipa::path(get, path = "/contacts", tag = "contacts", params(ListContacts),
    responses((status = 200, body = Page<Contact>), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_contacts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListContacts>,
) -> ApiResult<Json<Page<Contact>>> {
    let query = ContactQuery {
        tag: q.tag.as_deref().map(Tag::parse).transpose()?,
        lead_stage: q.stage,
        search: q.search.as_deref().map(ContactSearch::parse).transpose()?.flatten(),
        page: PageRequest::new(q.cursor.as_deref(), q.limit.unwrap_or(PageRequest::DEFAULT_LIMIT))?,
    };
    Ok(Json(state.crm().list_contacts(principal.account_id, &query).await?))
}

/// Create a contact.
#[utoipa::path(post, path = "/contacts", tag = "contacts", request_body = NewContact,
    responses((status = 201, body = Contact, headers(("location" = String, description = "URL of the new contact"))), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn create_contact(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewContact>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, String); 1], Json<Contact>)> {
    principal.require(Role::Agent)?;
    let c = state.crm().create_contact(principal.account_id, body).await?;
    Ok((StatusCode::CREATED, [(axum::http::header::LOCATION, format!("/api/v1/contacts/{}", c.id))], Json(c)))
}

/// Get a contact.
#[utoipa::path(get, path = "/contacts/{id}", tag = "contacts", params(("id" = ContactId, Path)),
    responses((status = 200, body = Contact), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_contact(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
) -> ApiResult<Json<Contact>> {
    Ok(Json(state.crm().get_contact(principal.account_id, id).await?))
}

/// Update a contact (only the fields sent change; `null` clears e-mail or WhatsApp id).
#[utoipa::path(patch, path = "/contacts/{id}", tag = "contacts", params(("id" = ContactId, Path)),
    request_body = ContactPatch,
    responses((status = 200, body = Contact), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)), security(("api_key" = [])))]
async fn update_contact(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
    ApiJson(patch): ApiJson<ContactPatch>,
) -> ApiResult<Json<Contact>> {
    principal.require(Role::Agent)?;
    Ok(Json(state.crm().update_contact(principal.account_id, id, patch).await?))
}

/// Delete a contact and its thread.
#[utoipa::path(delete, path = "/contacts/{id}", tag = "contacts", params(("id" = ContactId, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn delete_contact(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Agent)?;
    state.crm().delete_contact(principal.account_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add tags.
#[utoipa::path(post, path = "/contacts/{id}/tags", tag = "contacts", params(("id" = ContactId, Path)),
    request_body = TagsBody,
    responses((status = 200, body = Contact), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn add_tags(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
    ApiJson(body): ApiJson<TagsBody>,
) -> ApiResult<Json<Contact>> {
    principal.require(Role::Agent)?;
    Ok(Json(state.crm().tag_contact(principal.account_id, id, &body.tags).await?))
}

/// Remove tags.
#[utoipa::path(delete, path = "/contacts/{id}/tags", tag = "contacts", params(("id" = ContactId, Path)),
    request_body = TagsBody,
    responses((status = 200, body = Contact), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn remove_tags(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
    ApiJson(body): ApiJson<TagsBody>,
) -> ApiResult<Json<Contact>> {
    principal.require(Role::Agent)?;
    Ok(Json(state.crm().untag_contact(principal.account_id, id, &body.tags).await?))
}

/// A contact's thread, oldest first.
#[utoipa::path(get, path = "/contacts/{id}/messages", tag = "contacts",
    params(("id" = ContactId, Path), PageParams),
    responses((status = 200, body = Page<Message>), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn contact_thread(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<Message>>> {
    Ok(Json(state.crm().list_thread(principal.account_id, id, &p.page()?).await?))
}

/// The contact's customer-service window on each channel: whether a
/// free-form message can be sent now (WhatsApp Cloud: within 24 hours of the
/// contact's last message; outside it only templates go out) and until when.
#[utoipa::path(get, path = "/contacts/{id}/window", tag = "contacts",
    params(("id" = ContactId, Path)),
    responses((status = 200, body = ContactWindows), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn contact_windows(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ContactId>,
) -> ApiResult<Json<ContactWindows>> {
    Ok(Json(state.crm().contact_windows(principal.account_id, id).await?))
}

//! A contact's page and the create/edit form (agents and above, like
//! `POST|PATCH /api/v1/contacts`): name, phone (E.164; a refused number is
//! shown beside its field with what was typed), e-mail, tags, stage and
//! opt-in, through [`Crm::create_contact`] and [`Crm::update_contact`]; the
//! contact's lead-score history (each change with its reason) below.
//!
//! - `GET /dashboard/contacts/new`, `POST /dashboard/contacts/new`.
//! - `GET /dashboard/contacts/{id}`, `POST /dashboard/contacts/{id}`.
//!
//! [`Crm::create_contact`]: crm_core::Crm::create_contact
//! [`Crm::update_contact`]: crm_core::Crm::update_contact

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crm_core::{Contact, ContactId, ContactPatch, Error, LeadStage, NewContact, OptInStatus, PageRequest, Role};

use super::pages::{Params, done, failure, field, form_viewer, merged, not_found, notice, page_viewer, uuid_of, when};
use super::{Ctx, Viewer};
use crate::state::AppState;

/// Score changes the page shows.
const HISTORY: u32 = 50;

/// The contact form's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/contacts/new", get(new_page).post(create))
        .route("/dashboard/contacts/{id}", get(contact_page).post(update))
}

/// What the form holds: typed values, to show again after a refusal.
#[derive(Debug, Default, Clone, PartialEq)]
struct Fields {
    name: String,
    phone: String,
    email: String,
    tags: String,
    stage: String,
    opt_in: String,
}

impl Fields {
    fn of_form(form: &[(String, String)]) -> Self {
        let get = |k: &str| field(form, k).unwrap_or("").trim().to_owned();
        Self {
            name: get("name"),
            phone: get("phone"),
            email: get("email"),
            tags: get("tags"),
            stage: get("stage"),
            opt_in: get("opt_in"),
        }
    }

    fn of_contact(c: &Contact) -> Self {
        Self {
            name: c.name.clone(),
            phone: c.phone.to_string(),
            email: c.email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default(),
            tags: c.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "),
            stage: c.lead_stage.as_str().to_owned(),
            opt_in: c.opt_in.status.as_str().to_owned(),
        }
    }

    /// The tags typed, comma- or space-separated.
    fn tag_list(&self) -> Vec<String> {
        self.tags.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }

    fn stage(&self) -> Result<Option<LeadStage>, Error> {
        Some(self.stage.as_str()).filter(|s| !s.is_empty()).map(LeadStage::parse).transpose()
    }

    fn opt_in(&self) -> Result<Option<OptInStatus>, Error> {
        Some(self.opt_in.as_str()).filter(|s| !s.is_empty()).map(OptInStatus::parse).transpose()
    }

    fn json(&self) -> Value {
        json!({
            "name": self.name, "phone": self.phone, "email": self.email, "tags": self.tags,
            "stage": self.stage, "opt_in": self.opt_in,
        })
    }
}

/// The field a refusal names (`phone`, `email`…), to show it beside that
/// field: in the page's language for the phone and e-mail, with the
/// service's reason after it.
fn error_json(e: &Error, strings: &super::pages::Strings) -> Value {
    let said = |key: &str, reason: &str| match strings.get(key) {
        Some(text) => format!("{text} ({reason})"),
        None => reason.to_owned(),
    };
    match e {
        Error::Validation { field, reason } => {
            json!({ "field": field.as_ref(), "text": said(&format!("contact_bad_{field}"), reason) })
        }
        Error::Conflict { reason, .. } => json!({ "field": "phone", "text": said("contact_phone_taken", reason) }),
        other => json!({ "field": "", "text": other.to_string() }),
    }
}

fn choices(strings: &super::pages::Strings) -> Value {
    let stages: Vec<Value> = LeadStage::ALL
        .iter()
        .map(|s| json!({ "value": s.as_str(), "label": super::stage_label(strings, *s) }))
        .collect();
    let opt_ins: Vec<Value> = [OptInStatus::Unknown, OptInStatus::OptedIn, OptInStatus::OptedOut]
        .iter()
        .map(|o| {
            let key = format!("opt_in_{}", o.as_str());
            json!({ "value": o.as_str(), "label": strings.get(key.as_str()) })
        })
        .collect();
    json!({ "stages": stages, "opt_ins": opt_ins })
}

/// Renders the form (new when `contact` is `None`) with the score history.
async fn render(
    state: &AppState,
    ctx: Ctx,
    viewer: Viewer,
    status: StatusCode,
    contact: Option<&Contact>,
    extra: Value,
) -> Response {
    let strings = ctx.lang.strings();
    let mut history = Vec::new();
    if let Some(c) = contact {
        let page = match PageRequest::first(HISTORY) {
            Ok(p) => p,
            Err(e) => return failure(ctx, &viewer, &e, "nav_contacts"),
        };
        match state.crm().score_history(viewer.account, c.id, &page).await {
            Ok(p) => {
                history = p
                    .items
                    .iter()
                    .rev()
                    .map(|s| {
                        json!({
                            "at": when(s.at), "old": s.old_score, "new": s.new_score, "reason": s.reason,
                            "delta": i16::from(s.new_score) - i16::from(s.old_score),
                            "stage": s.new_stage.map(|st| super::stage_label(&strings, st)),
                        })
                    })
                    .collect();
            }
            Err(e) => return failure(ctx, &viewer, &e, "nav_contacts"),
        }
    }
    let base = json!({
        "contact": contact.map(|c| json!({
            "id": c.id.to_string(), "name": c.name, "score": c.lead_score,
            "stage": super::stage_label(&strings, c.lead_stage), "created": when(c.created_at),
        })),
        "form": contact.map(Fields::of_contact).unwrap_or_default().json(),
        "history": history,
        "choices": choices(&strings),
        "can_edit": viewer.user.role >= Role::Agent,
        "form_error": null,
        "notice": null,
    });
    ctx.render(status, "contact.html", Some(&viewer.user), "contacts", merged(base, extra))
}

async fn new_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    render(&state, ctx, viewer, StatusCode::OK, None, json!({})).await
}

async fn contact_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = uuid_of(&raw).map(ContactId::from_uuid) else { return not_found(ctx, &viewer, "nav_contacts") };
    let contact = match state.crm().get_contact(viewer.account, id).await {
        Ok(c) => c,
        Err(e) => return failure(ctx, &viewer, &e, "nav_contacts"),
    };
    let shown = json!({ "notice": notice(&ctx.lang.strings(), q.done.as_deref()) });
    render(&state, ctx, viewer, StatusCode::OK, Some(&contact), shown).await
}

/// The form again, 422 (409 for a phone in use), with the refusal by its field.
async fn refused(
    state: &AppState,
    ctx: Ctx,
    viewer: Viewer,
    contact: Option<&Contact>,
    typed: &Fields,
    e: &Error,
) -> Response {
    let status =
        if matches!(e, Error::Conflict { .. }) { StatusCode::CONFLICT } else { StatusCode::UNPROCESSABLE_ENTITY };
    let extra = json!({ "form": typed.json(), "form_error": error_json(e, &ctx.lang.strings()) });
    render(state, ctx, viewer, status, contact, extra).await
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer) = match form_viewer(&state, &headers, &form, Role::Agent).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let typed = Fields::of_form(&form);
    let input = (|| {
        Ok::<_, Error>(NewContact {
            name: typed.name.clone(),
            phone: typed.phone.clone(),
            email: Some(typed.email.clone()).filter(|e| !e.is_empty()),
            tags: typed.tag_list(),
            lead_stage: typed.stage()?,
            opt_in: typed.opt_in()?,
            ..NewContact::default()
        })
    })();
    let made = match input {
        Ok(input) => state.crm().create_contact(viewer.account, input).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(c) => done(ctx, &format!("/dashboard/contacts/{}", c.id), "done_contact_created"),
        Err(e @ (Error::Validation { .. } | Error::Conflict { .. })) => {
            refused(&state, ctx, viewer, None, &typed, &e).await
        }
        Err(e) => failure(ctx, &viewer, &e, "nav_contacts"),
    }
}

async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, id) = match super::pages::form_for_role(
        &state,
        &headers,
        &form,
        (&raw, "nav_contacts"),
        Role::Agent,
        ContactId::from_uuid,
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let crm = state.crm();
    let current = match crm.get_contact(viewer.account, id).await {
        Ok(c) => c,
        Err(e) => return failure(ctx, &viewer, &e, "nav_contacts"),
    };
    let typed = Fields::of_form(&form);
    let patch = (|| {
        Ok::<_, Error>(ContactPatch {
            name: Some(typed.name.clone()),
            phone: Some(typed.phone.clone()),
            email: Some(Some(typed.email.clone()).filter(|e| !e.is_empty())),
            tags: Some(typed.tag_list()),
            lead_stage: typed.stage()?,
            opt_in: typed.opt_in()?,
            ..ContactPatch::default()
        })
    })();
    let changed = match patch {
        Ok(patch) => crm.update_contact(viewer.account, id, patch).await,
        Err(e) => Err(e),
    };
    match changed {
        Ok(c) => done(ctx, &format!("/dashboard/contacts/{}", c.id), "done_contact_saved"),
        Err(e @ (Error::Validation { .. } | Error::Conflict { .. })) => {
            refused(&state, ctx, viewer, Some(&current), &typed, &e).await
        }
        Err(e) => failure(ctx, &viewer, &e, "nav_contacts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_commas_and_spaces_and_blank_choices_are_none() {
        let f = Fields { tags: "vip, sp  cliente,".into(), ..Fields::default() };
        assert_eq!(f.tag_list(), ["vip", "sp", "cliente"]);
        assert_eq!(f.stage().unwrap(), None);
        assert_eq!(f.opt_in().unwrap(), None);
        let bad = Fields { stage: "nope".into(), ..Fields::default() };
        assert!(bad.stage().is_err());
        let strings = super::super::Lang::En.strings();
        let e = error_json(&Error::validation("phone", "not E.164"), &strings);
        assert_eq!(e["field"], "phone");
        assert!(e["text"].as_str().is_some_and(|t| t.starts_with("Not a valid") && t.ends_with("(not E.164)")), "{e}");
        let e = error_json(&Error::validation("metadata", "too big"), &strings);
        assert_eq!(e["text"], "too big", "a field without its own words keeps the reason");
    }
}

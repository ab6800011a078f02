//! The automation pages: the account's rules and sequences with their
//! state, enable/disable buttons (admins, through
//! [`Crm::set_automation_enabled`] and [`Crm::update_sequence`] like the
//! API), a rule's runs with each step's outcome and time, and a sequence's
//! enrolments with where each contact is.
//!
//! - `GET /dashboard/automations` rules and sequences.
//! - `GET /dashboard/automations/{id}` a rule's runs (newest first).
//! - `GET /dashboard/sequences/{id}` a sequence's enrolments.
//! - `POST /dashboard/automations/{id}/{enable|disable}`,
//!   `POST /dashboard/sequences/{id}/{enable|disable}`.
//!
//! [`Crm::set_automation_enabled`]: crm_core::Crm::set_automation_enabled
//! [`Crm::update_sequence`]: crm_core::Crm::update_sequence

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crm_core::{AutomationId, NewSequence, PageRequest, Role, SequenceId};

use super::pages::{Params, done, failure, form_for, not_found, notice, page_viewer, uuid_of, when};
use crate::state::AppState;

/// Rows a list shows.
const ROWS: u32 = 100;

/// The automation routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/automations", get(list_page))
        .route("/dashboard/automations/{id}", get(rule_page))
        .route("/dashboard/automations/{id}/{action}", post(switch_rule))
        .route("/dashboard/sequences/{id}", get(sequence_page))
        .route("/dashboard/sequences/{id}/{action}", post(switch_sequence))
}

/// `enable`/`disable` as the new state, or `None` for another word.
fn wanted(action: &str) -> Option<bool> {
    match action {
        "enable" => Some(true),
        "disable" => Some(false),
        _ => None,
    }
}

fn switch_json(enabled: bool, strings: &super::pages::Strings) -> Value {
    let (action, state) = if enabled { ("disable", "enabled") } else { ("enable", "disabled") };
    json!({
        "state": state, "state_label": strings.get(format!("endpoint_{state}").as_str()),
        "action": action, "action_label": strings.get(format!("endpoint_{action}").as_str()),
    })
}

async fn list_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let crm = state.crm();
    let lists = async {
        let page = PageRequest::first(ROWS)?;
        Ok::<_, crm_core::Error>((
            crm.list_automations(viewer.account, &page).await?,
            crm.list_sequences(viewer.account, &page).await?,
        ))
    }
    .await;
    let (rules, sequences) = match lists {
        Ok(l) => l,
        Err(e) => return failure(ctx, &viewer, &e, "nav_automations"),
    };
    let strings = ctx.lang.strings();
    let rules: Vec<Value> = rules
        .items
        .iter()
        .map(|a| {
            json!({
                "id": a.id.to_string(), "name": a.name, "version": a.version, "updated": when(a.updated_at),
                "switch": switch_json(a.enabled, &strings),
            })
        })
        .collect();
    let sequences: Vec<Value> = sequences
        .items
        .iter()
        .map(|s| {
            json!({
                "id": s.id.to_string(), "name": s.name, "steps": s.steps.len(), "updated": when(s.updated_at),
                "switch": switch_json(s.enabled, &strings),
            })
        })
        .collect();
    let extra = json!({
        "rules": rules, "sequences": sequences, "admin": viewer.user.role >= Role::Admin,
        "notice": notice(&strings, q.done.as_deref()),
    });
    ctx.render(StatusCode::OK, "automations.html", Some(&viewer.user), "automations", extra)
}

async fn rule_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = uuid_of(&raw).map(AutomationId::from_uuid) else {
        return not_found(ctx, &viewer, "nav_automations");
    };
    let crm = state.crm();
    let read = async {
        let rule = crm.get_automation(viewer.account, id).await?;
        // The newest runs only: a busy rule has many.
        let runs = crm.latest_automation_runs(viewer.account, id, ROWS).await?;
        Ok::<_, crm_core::Error>((rule, runs))
    }
    .await;
    let (rule, runs) = match read {
        Ok(v) => v,
        Err(e) => return failure(ctx, &viewer, &e, "nav_automations"),
    };
    let strings = ctx.lang.strings();
    let rows: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "id": r.id.to_string(), "status": r.status.as_str(), "version": r.version,
                "status_label": strings.get(format!("run_{}", r.status.as_str()).as_str()),
                "contact_id": r.contact_id.map(|c| c.to_string()), "reason": r.reason,
                "started": when(r.started_at),
                "steps": r.steps.iter().map(|s| json!({
                    "action": s.action, "outcome": s.outcome, "detail": s.detail, "ms": s.duration_ms,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let extra = json!({
        "rule": { "id": rule.id.to_string(), "name": rule.name, "version": rule.version,
                  "switch": switch_json(rule.enabled, &strings) },
        "runs": rows, "admin": viewer.user.role >= Role::Admin,
        "notice": notice(&strings, q.done.as_deref()),
    });
    ctx.render(StatusCode::OK, "automation.html", Some(&viewer.user), "automations", extra)
}

async fn sequence_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = uuid_of(&raw).map(SequenceId::from_uuid) else {
        return not_found(ctx, &viewer, "nav_automations");
    };
    let crm = state.crm();
    let read = async {
        let sequence = crm.get_sequence(viewer.account, id).await?;
        let query =
            crm_core::EnrolmentQuery { sequence: Some(id), page: PageRequest::first(ROWS)?, ..Default::default() };
        Ok::<_, crm_core::Error>((sequence, crm.list_enrolments(viewer.account, &query).await?))
    }
    .await;
    let (sequence, enrolments) = match read {
        Ok(v) => v,
        Err(e) => return failure(ctx, &viewer, &e, "nav_automations"),
    };
    let strings = ctx.lang.strings();
    let rows: Vec<Value> = enrolments
        .items
        .iter()
        .map(|e| {
            json!({
                "contact_id": e.contact_id.to_string(), "state": e.state.as_str(),
                "state_label": strings.get(format!("enrolment_{}", e.state.as_str()).as_str()),
                "step": e.current_step + 1, "next": e.next_run_at.map(when),
                "stop": e.stop_reason.map(|r| r.as_str()), "detail": e.stop_detail,
            })
        })
        .collect();
    let extra = json!({
        "sequence": { "id": sequence.id.to_string(), "name": sequence.name, "steps": sequence.steps.len(),
                      "switch": switch_json(sequence.enabled, &strings) },
        "enrolments": rows, "admin": viewer.user.role >= Role::Admin,
        "notice": notice(&strings, q.done.as_deref()),
    });
    ctx.render(StatusCode::OK, "sequence.html", Some(&viewer.user), "automations", extra)
}

async fn switch_rule(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, id) =
        match form_for(&state, &headers, &form, (&raw, "nav_automations"), AutomationId::from_uuid).await {
            Ok(v) => v,
            Err(r) => return r,
        };
    let Some(on) = wanted(&action) else { return not_found(ctx, &viewer, "nav_automations") };
    match state.crm().set_automation_enabled(viewer.account, id, on).await {
        Ok(_) => done(ctx, "/dashboard/automations", &format!("done_rule_{action}")),
        Err(e) => failure(ctx, &viewer, &e, "nav_automations"),
    }
}

async fn switch_sequence(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, id) =
        match form_for(&state, &headers, &form, (&raw, "nav_automations"), SequenceId::from_uuid).await {
            Ok(v) => v,
            Err(r) => return r,
        };
    let Some(on) = wanted(&action) else { return not_found(ctx, &viewer, "nav_automations") };
    let crm = state.crm();
    let changed = async {
        let s = crm.get_sequence(viewer.account, id).await?;
        let input = NewSequence { name: s.name, enabled: on, steps: s.steps, window: s.window, late: s.late };
        crm.update_sequence(viewer.account, id, input).await
    }
    .await;
    match changed {
        Ok(_) => done(ctx, "/dashboard/automations", &format!("done_sequence_{action}")),
        Err(e) => failure(ctx, &viewer, &e, "nav_automations"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enable_and_disable_switch_and_each_state_has_words() {
        assert_eq!((wanted("enable"), wanted("disable"), wanted("delete")), (Some(true), Some(false), None));
        for lang in [super::super::Lang::PtBr, super::super::Lang::En] {
            let strings = lang.strings();
            for s in ["running", "waiting", "skipped", "completed", "failed", "loop_stopped"] {
                assert!(strings.contains_key(format!("run_{s}").as_str()), "{s}");
            }
            for s in ["active", "completed", "stopped"] {
                assert!(strings.contains_key(format!("enrolment_{s}").as_str()), "{s}");
            }
            for k in ["done_rule_enable", "done_rule_disable", "done_sequence_enable", "done_sequence_disable"] {
                assert!(strings.contains_key(k), "{k}");
            }
            assert_eq!(switch_json(true, &strings)["action"], "disable");
        }
    }
}

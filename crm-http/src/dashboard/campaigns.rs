//! The campaigns pages: the account's campaigns with their state and
//! progress (sent, delivered, read, failed), one campaign with its
//! counters and recipients, and the buttons that move it (start, pause,
//! resume, cancel) through the same service calls as
//! `POST /api/v1/campaigns/{id}/{action}` (admins only, like the API).
//!
//! - `GET /dashboard/campaigns[?after=…]` the list.
//! - `GET /dashboard/campaigns/{id}` one campaign.
//! - `POST /dashboard/campaigns/{id}/{start|pause|resume|cancel}`.
//!
//! Progress is live: the pages listen to the dashboard's event stream and
//! re-read their counters when a campaign or one of its messages moves.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crm_core::{
    Campaign, CampaignCounters, CampaignId, CampaignState, CampaignView, PageRequest, RecipientState, Role,
};

use super::pages::{self, Params, Strings, done, failure, not_found, notice, page_viewer, uuid_of, when};
use crate::state::AppState;

/// Campaigns per page of the list.
const PAGE: u32 = 25;
/// Recipients the detail page shows.
const RECIPIENTS: u32 = 100;

/// The campaigns routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/campaigns", get(list_page))
        .route("/dashboard/campaigns/{id}", get(detail_page))
        .route("/dashboard/campaigns/{id}/{action}", post(act))
}

/// Share of `part` in `whole`, in whole percent (0 when `whole` is 0).
fn pct(part: u64, whole: u64) -> u64 {
    (part.min(whole) * 100 + whole / 2).checked_div(whole).unwrap_or(0)
}

/// How far a campaign got: recipients that reached an end (sent, failed or
/// skipped) over every recipient known (planned plus not yet planned).
fn progress(c: &CampaignCounters, unplanned: Option<u64>) -> u64 {
    let total = c.recipients + unplanned.unwrap_or(0);
    pct(c.sent + c.failed + c.skipped, total)
}

fn state_label(strings: &Strings, state: CampaignState) -> &'static str {
    let key = format!("campaign_state_{}", state.as_str());
    strings.get(key.as_str()).copied().unwrap_or("")
}

/// The buttons a campaign in `state` offers.
fn actions(state: CampaignState) -> &'static [&'static str] {
    match state {
        CampaignState::Draft | CampaignState::Scheduled => &["start", "cancel"],
        CampaignState::Running => &["pause", "cancel"],
        CampaignState::Paused => &["resume", "cancel"],
        CampaignState::Cancelled | CampaignState::Completed => &[],
    }
}

fn view_json(v: &CampaignView, strings: &Strings, can_act: bool) -> Value {
    let c = &v.campaign;
    let n = &v.counters;
    let buttons: Vec<Value> = if can_act {
        actions(c.state)
            .iter()
            .map(|a| {
                let key = format!("campaign_{a}");
                json!({ "action": a, "label": strings.get(key.as_str()) })
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "id": c.id.to_string(),
        "name": c.name,
        "template": format!("{} ({})", c.template_name, c.template_language),
        "state": c.state.as_str(),
        "state_label": state_label(strings, c.state),
        "stop_reason": c.stop_reason,
        "created": when(c.created_at),
        "started": c.started_at.map(when),
        "finished": c.finished_at.map(when),
        "scheduled": c.scheduled_at.map(when),
        "eta": v.eta.map(when),
        "rate": v.rate_per_second,
        "progress": progress(n, v.unplanned),
        "counters": {
            "recipients": n.recipients + v.unplanned.unwrap_or(0), "pending": n.pending, "skipped": n.skipped,
            "in_flight": n.in_flight, "sent": n.sent, "delivered": n.delivered, "read": n.read, "failed": n.failed,
            "replied": n.replied,
            "delivered_pct": pct(n.delivered, n.sent), "read_pct": pct(n.read, n.sent),
        },
        "actions": buttons,
    })
}

async fn list_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let crm = state.crm();
    let page = match PageRequest::new(q.after.as_deref().filter(|a| !a.is_empty()), PAGE) {
        Ok(p) => p,
        Err(e) => return failure(ctx, &viewer, &e, "nav_campaigns"),
    };
    let list = match crm.list_campaigns(viewer.account, &page).await {
        Ok(l) => l,
        Err(e) => return failure(ctx, &viewer, &e, "nav_campaigns"),
    };
    let strings = ctx.lang.strings();
    let can_act = viewer.user.role >= Role::Admin;
    let mut rows = Vec::with_capacity(list.items.len());
    for c in &list.items {
        match crm.get_campaign(viewer.account, c.id).await {
            Ok(v) => rows.push(view_json(&v, &strings, can_act)),
            // Deleted between the list and now.
            Err(crm_core::Error::NotFound { .. }) => {}
            Err(e) => return failure(ctx, &viewer, &e, "nav_campaigns"),
        }
    }
    let next = list.next_cursor.map(|c| format!("/dashboard/campaigns?{}", super::url_query(&[("after", &c)])));
    let extra = json!({
        "campaigns": rows, "next": next, "notice": notice(&strings, q.done.as_deref()),
    });
    ctx.render(StatusCode::OK, "campaigns.html", Some(&viewer.user), "campaigns", extra)
}

fn recipient_json(r: &crm_core::Recipient, strings: &Strings) -> Value {
    let key = format!("recipient_{}", r.state.as_str());
    json!({
        "seq": r.seq,
        "contact_id": r.contact_id.map(|c| c.to_string()),
        "phone": r.phone,
        "state": r.state.as_str(),
        "state_label": strings.get(key.as_str()),
        "reason": r.reason,
        "replied": r.replied_at.is_some(),
        "updated": when(r.updated_at),
    })
}

async fn detail_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let (ctx, viewer) = match page_viewer(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = uuid_of(&raw).map(CampaignId::from_uuid) else {
        return not_found(ctx, &viewer, "nav_campaigns");
    };
    let crm = state.crm();
    let v = match crm.get_campaign(viewer.account, id).await {
        Ok(v) => v,
        Err(e) => return failure(ctx, &viewer, &e, "nav_campaigns"),
    };
    let recipients = match crm.list_campaign_recipients(viewer.account, id, None, None, RECIPIENTS).await {
        Ok(r) => r,
        Err(e) => return failure(ctx, &viewer, &e, "nav_campaigns"),
    };
    let strings = ctx.lang.strings();
    let failed: Vec<Value> =
        recipients.iter().filter(|r| r.state == RecipientState::Failed).map(|r| recipient_json(r, &strings)).collect();
    let extra = json!({
        "campaign": view_json(&v, &strings, viewer.user.role >= Role::Admin),
        "recipients": recipients.iter().map(|r| recipient_json(r, &strings)).collect::<Vec<_>>(),
        "failed": failed,
        "notice": notice(&strings, q.done.as_deref()),
    });
    ctx.render(StatusCode::OK, "campaign.html", Some(&viewer.user), "campaigns", extra)
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, id) =
        match pages::form_for(&state, &headers, &form, (&raw, "nav_campaigns"), CampaignId::from_uuid).await {
            Ok(v) => v,
            Err(r) => return r,
        };
    let crm = state.crm();
    let account = viewer.account;
    let result: crm_core::Result<Campaign> = match action.as_str() {
        "start" => crm.start_campaign(account, id).await,
        "pause" => crm.pause_campaign(account, id).await,
        "resume" => crm.resume_campaign(account, id).await,
        "cancel" => crm.cancel_campaign(account, id).await,
        _ => return not_found(ctx, &viewer, "nav_campaigns"),
    };
    match result {
        Ok(_) => {
            // The list when the form came from it, else the campaign.
            let path = match pages::field(&form, "back") {
                Some("list") => "/dashboard/campaigns".to_owned(),
                _ => format!("/dashboard/campaigns/{id}"),
            };
            done(ctx, &path, &format!("done_campaign_{action}"))
        }
        Err(e) => failure(ctx, &viewer, &e, "nav_campaigns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_ended_recipients_over_all_known_and_never_divides_by_zero() {
        let mut c = CampaignCounters::default();
        assert_eq!(progress(&c, None), 0);
        assert_eq!(progress(&c, Some(0)), 0);
        c.recipients = 10;
        c.sent = 4;
        c.failed = 1;
        c.skipped = 1;
        assert_eq!(progress(&c, None), 60);
        assert_eq!(progress(&c, Some(10)), 30, "unplanned entries count as not done");
        assert_eq!(pct(1, 3), 33);
        assert_eq!(pct(2, 3), 67);
        assert_eq!(pct(5, 3), 100, "never above 100");
    }

    #[test]
    fn each_state_offers_only_the_moves_it_allows() {
        assert_eq!(actions(CampaignState::Running), ["pause", "cancel"]);
        assert_eq!(actions(CampaignState::Paused), ["resume", "cancel"]);
        assert!(actions(CampaignState::Completed).is_empty());
        assert!(actions(CampaignState::Cancelled).is_empty());
        let strings = super::super::Lang::PtBr.strings();
        for s in [
            CampaignState::Draft,
            CampaignState::Scheduled,
            CampaignState::Running,
            CampaignState::Paused,
            CampaignState::Cancelled,
            CampaignState::Completed,
        ] {
            assert!(!state_label(&strings, s).is_empty(), "{s:?}");
            for a in actions(s) {
                assert!(strings.contains_key(format!("campaign_{a}").as_str()), "{a}");
                assert!(strings.contains_key(format!("done_campaign_{a}").as_str()), "{a}");
            }
        }
        for r in RecipientState::ALL {
            assert!(strings.contains_key(format!("recipient_{}", r.as_str()).as_str()), "{r:?}");
        }
    }
}

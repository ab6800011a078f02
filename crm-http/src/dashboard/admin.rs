//! The API keys and users pages (admins only, like `/api/v1/api-keys` and
//! `/api/v1/users`).
//!
//! - `GET|POST /dashboard/api-keys`: the account's keys (name, prefix,
//!   role, created, expiry, revoked) and the create form; the answer to a
//!   create is the page itself (201) with the token shown this once. A key
//!   made from the dashboard is made by a login session, so it expires like
//!   one made by `POST /api/v1/api-keys` with a session: at the asked time,
//!   at most 90 days away (`SESSION_MINTED_KEY_MAX_DAYS`, the default).
//! - `POST /dashboard/api-keys/{id}/revoke`: nobody revokes a key above
//!   their own role (the store's one statement checks it).
//! - `GET|POST /dashboard/users`: the users and the form that creates one
//!   with a role no higher than the creator's (the password is hashed off
//!   the async workers, as on the API).

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};

use crm_core::{ApiKeyId, Error, Role};

use super::pages::{Params, admin_page, done, failure, field, form_for, form_viewer, merged, notice, when};
use super::{Ctx, Viewer};
use crate::state::AppState;

/// The admin routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/api-keys", get(keys_page).post(create_key))
        .route("/dashboard/api-keys/{id}/revoke", post(revoke_key))
        .route("/dashboard/users", get(users_page).post(create_user))
}

/// The roles, lowest first, with their labels; only those up to `up_to`.
fn roles(strings: &super::pages::Strings, up_to: Role, selected: Role) -> Vec<Value> {
    [Role::Viewer, Role::Agent, Role::Admin, Role::Owner]
        .into_iter()
        .filter(|r| *r <= up_to)
        .map(|r| {
            let key = format!("role_{}", r.as_str());
            json!({ "value": r.as_str(), "label": strings.get(key.as_str()), "selected": r == selected })
        })
        .collect()
}

fn role_label(strings: &super::pages::Strings, role: Role) -> &'static str {
    strings.get(format!("role_{}", role.as_str()).as_str()).copied().unwrap_or("")
}

async fn render_keys(state: &AppState, ctx: Ctx, viewer: Viewer, status: StatusCode, extra: Value) -> Response {
    let keys = match state.crm().store().list_api_keys(viewer.account).await {
        Ok(k) => k,
        Err(e) => return failure(ctx, &viewer, &e, "nav_api_keys"),
    };
    let strings = ctx.lang.strings();
    let now = state.crm().clock().now();
    let rows: Vec<Value> = keys
        .iter()
        .map(|k| {
            let state = if k.revoked_at.is_some() {
                "revoked"
            } else if k.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            json!({
                "id": k.id.to_string(), "name": k.name, "prefix": k.prefix, "role": role_label(&strings, k.role),
                "created": when(k.created_at), "expires": k.expires_at.map(when), "revoked": k.revoked_at.map(when),
                "state": state, "state_label": strings.get(format!("key_{state}").as_str()),
                "can_revoke": state != "revoked" && k.role <= viewer.user.role,
            })
        })
        .collect();
    let base = json!({
        "keys": rows, "roles": roles(&strings, viewer.user.role, Role::Agent), "token": null,
        "form_error": null, "form": {}, "notice": null,
    });
    ctx.render(status, "api_keys.html", Some(&viewer.user), "api_keys", merged(base, extra))
}

async fn keys_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    let (ctx, viewer) = match admin_page(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let shown = json!({ "notice": notice(&ctx.lang.strings(), q.done.as_deref()) });
    render_keys(&state, ctx, viewer, StatusCode::OK, shown).await
}

/// A date field (`yyyy-mm-dd`, the end of that day UTC); blank is `None`.
fn expiry(raw: &str) -> Result<Option<chrono::DateTime<Utc>>, Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| Error::validation("expires_at", "a date such as 2027-01-31"))?;
    let end = day.and_hms_opt(23, 59, 59).ok_or_else(|| Error::validation("expires_at", "not a day"))?;
    Ok(Some(Utc.from_utc_datetime(&end)))
}

async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer) = match form_viewer(&state, &headers, &form, Role::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = field(&form, "name").unwrap_or("").trim().to_owned();
    let raw_role = field(&form, "role").unwrap_or("agent").to_owned();
    let raw_expiry = field(&form, "expires_at").unwrap_or("").to_owned();
    let crm = state.crm();
    let made = async {
        let role = Role::parse(&raw_role)?;
        if role > viewer.user.role {
            return Err(Error::Forbidden { reason: "a key cannot have more power than its creator".into() });
        }
        let expires_at = crm.session_key_expiry(expiry(&raw_expiry)?)?;
        crm.create_api_key(viewer.account, &name, role, Some(expires_at)).await
    }
    .await;
    match made {
        Ok((key, token)) => {
            let shown = json!({
                "token": { "value": token.expose(), "name": key.name },
                "notice": ctx.lang.strings().get("done_key_created"),
            });
            render_keys(&state, ctx, viewer, StatusCode::CREATED, shown).await
        }
        Err(e @ (Error::Validation { .. } | Error::Forbidden { .. } | Error::Conflict { .. })) => {
            let status = if matches!(e, Error::Forbidden { .. }) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let extra = json!({
                "form_error": e.to_string(),
                "form": { "name": name, "expires_at": raw_expiry },
            });
            render_keys(&state, ctx, viewer, status, extra).await
        }
        Err(e) => failure(ctx, &viewer, &e, "nav_api_keys"),
    }
}

async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer, id) = match form_for(&state, &headers, &form, (&raw, "nav_api_keys"), ApiKeyId::from_uuid).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match state.crm().revoke_api_key_up_to(viewer.account, id, viewer.user.role).await {
        Ok(_) => done(ctx, "/dashboard/api-keys", "done_key_revoked"),
        Err(e) => failure(ctx, &viewer, &e, "nav_api_keys"),
    }
}

async fn render_users(state: &AppState, ctx: Ctx, viewer: Viewer, status: StatusCode, extra: Value) -> Response {
    let users = match state.crm().store().list_users(viewer.account).await {
        Ok(u) => u,
        Err(e) => return failure(ctx, &viewer, &e, "nav_users"),
    };
    let strings = ctx.lang.strings();
    let rows: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({
                "id": u.id.to_string(), "name": u.name, "email": u.email.as_str(), "role": role_label(&strings, u.role),
                "created": when(u.created_at), "you": u.id == viewer.user.id,
            })
        })
        .collect();
    let base = json!({
        "users": rows, "roles": roles(&strings, viewer.user.role, Role::Agent),
        "form_error": null, "form": {}, "notice": null,
    });
    ctx.render(status, "users.html", Some(&viewer.user), "users", merged(base, extra))
}

async fn users_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Params>) -> Response {
    let (ctx, viewer) = match admin_page(&state, &headers, q.lang.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let shown = json!({ "notice": notice(&ctx.lang.strings(), q.done.as_deref()) });
    render_users(&state, ctx, viewer, StatusCode::OK, shown).await
}

async fn create_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (ctx, viewer) = match form_viewer(&state, &headers, &form, Role::Admin).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let email = field(&form, "email").unwrap_or("").trim().to_owned();
    let name = field(&form, "name").unwrap_or("").trim().to_owned();
    let password = field(&form, "password").unwrap_or("").to_owned();
    let raw_role = field(&form, "role").unwrap_or("agent").to_owned();
    let made = match Role::parse(&raw_role) {
        Err(e) => Err(e),
        Ok(role) if role > viewer.user.role => {
            Err(Error::Forbidden { reason: "a user cannot be given more power than their creator".into() })
        }
        Ok(role) => {
            let crm = state.crm().clone();
            let (account, email, name) = (viewer.account, email.clone(), name.clone());
            // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
            tokio::task::spawn_blocking(move || {
                tokio::runtime::Handle::current()
                    .block_on(async move { crm.create_user(account, &email, &name, role, &password).await })
            })
            .await
            .unwrap_or_else(|_| Err(Error::Config { message: "the password hashing task failed".into() }))
        }
    };
    match made {
        Ok(_) => done(ctx, "/dashboard/users", "done_user_created"),
        Err(e @ (Error::Validation { .. } | Error::Forbidden { .. } | Error::Conflict { .. })) => {
            let status = match e {
                Error::Forbidden { .. } => StatusCode::FORBIDDEN,
                Error::Conflict { .. } => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let extra = json!({ "form_error": e.to_string(), "form": { "email": email, "name": name } });
            render_users(&state, ctx, viewer, status, extra).await
        }
        Err(e) => failure(ctx, &viewer, &e, "nav_users"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_dates_end_their_day_and_blank_is_none() {
        assert_eq!(expiry("  ").unwrap(), None);
        let at = expiry("2027-01-31").unwrap().unwrap();
        assert_eq!(at.to_rfc3339(), "2027-01-31T23:59:59+00:00");
        assert!(expiry("31/01/2027").is_err());
    }

    #[test]
    fn the_role_choice_stops_at_the_choosers_role() {
        let strings = super::super::Lang::En.strings();
        let admin: Vec<Value> = roles(&strings, Role::Admin, Role::Agent);
        let values: Vec<&str> = admin.iter().filter_map(|r| r["value"].as_str()).collect();
        assert_eq!(values, ["viewer", "agent", "admin"]);
        assert!(admin.iter().all(|r| r["label"].as_str().is_some_and(|l| !l.is_empty())));
        assert_eq!(admin.iter().filter(|r| r["selected"] == true).count(), 1);
    }
}

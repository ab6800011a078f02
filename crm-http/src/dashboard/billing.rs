//! The dashboard's billing page (`/dashboard/billing`): the account's plan
//! and subscription (status, price, the next invoice or the end date, usage
//! against the plan's limits) and, for admins, buttons that start a Stripe
//! Checkout, open the customer portal, or cancel (at the period's end or
//! now). Every action goes through [`crm_billing::BillingService`], like
//! `/api/v1/billing/*`; forms carry the CSRF token.
//!
//! The page's strings are in [`strings`] (its own table, so the shared
//! dictionary in `i18n` stays as it is).

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

use crm_billing::{BillingService, CheckoutInput};
use crm_core::ports::billing::{CancelMode, CheckoutMode};
use crm_core::{Error, Role};

use super::{Ctx, Lang, Viewer, to_login, viewer};
use crate::state::AppState;

/// The page's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/billing", get(page))
        .route("/dashboard/billing/checkout", post(checkout))
        .route("/dashboard/billing/portal", post(portal))
        .route("/dashboard/billing/cancel", post(cancel))
}

/// The page's strings, by key, in `lang`.
pub(super) fn strings(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    STRINGS.iter().map(|(k, pt, en)| (*k, if lang == Lang::En { *en } else { *pt })).collect()
}

const STRINGS: &[(&str, &str, &str)] = &[
    ("title", "Cobrança", "Billing"),
    (
        "off",
        "A cobrança está desligada neste servidor (falta a chave do Stripe).",
        "Billing is off on this server (no Stripe key).",
    ),
    ("plan", "Plano", "Plan"),
    ("free", "Gratuito (sem assinatura ativa)", "Free (no active subscription)"),
    ("status", "Situação", "Status"),
    ("none", "Nenhuma assinatura", "No subscription"),
    ("price", "Preço", "Price"),
    ("next_invoice", "Próxima fatura", "Next invoice"),
    ("ends", "Termina em", "Ends on"),
    (
        "cancel_scheduled",
        "Cancelamento agendado para o fim do período pago.",
        "Cancellation scheduled for the end of the paid period.",
    ),
    ("usage", "Uso e limites", "Usage and limits"),
    ("channels", "Canais", "Channels"),
    ("contacts", "Contatos", "Contacts"),
    ("messages", "Mensagens neste mês", "Messages this month"),
    ("unlimited", "sem limite", "unlimited"),
    ("enforced", "Os limites são aplicados.", "Limits are enforced."),
    ("not_enforced", "Os limites são mostrados, não aplicados.", "Limits are shown, not enforced."),
    ("subscribe", "Assinar", "Subscribe"),
    ("price_id", "Preço do Stripe", "Stripe price"),
    ("portal", "Pagamentos e faturas (portal)", "Payments and invoices (portal)"),
    ("cancel", "Cancelar assinatura", "Cancel subscription"),
    ("at_period_end", "No fim do período pago", "At the end of the paid period"),
    ("immediately", "Agora", "Now"),
    ("admins_only", "Só administradores podem mudar a assinatura.", "Only admins can change the subscription."),
    ("cancelled", "Pedido de cancelamento enviado ao Stripe.", "Cancellation sent to Stripe."),
    (
        "checkout_done",
        "Pagamento concluído; a assinatura aparece assim que o Stripe confirmar.",
        "Payment done; the subscription shows once Stripe confirms it.",
    ),
    ("failed", "O Stripe recusou o pedido", "Stripe refused the request"),
];

fn status_label(lang: Lang, status: &str) -> &'static str {
    let pt = lang != Lang::En;
    match status {
        "active" => {
            if pt {
                "Ativa"
            } else {
                "Active"
            }
        }
        "trialing" => {
            if pt {
                "Em teste"
            } else {
                "Trialing"
            }
        }
        "past_due" => {
            if pt {
                "Pagamento atrasado"
            } else {
                "Past due"
            }
        }
        "canceled" => {
            if pt {
                "Cancelada"
            } else {
                "Canceled"
            }
        }
        "unpaid" => {
            if pt {
                "Não paga"
            } else {
                "Unpaid"
            }
        }
        "paused" => {
            if pt {
                "Pausada"
            } else {
                "Paused"
            }
        }
        "incomplete" => {
            if pt {
                "Incompleta"
            } else {
                "Incomplete"
            }
        }
        _ => {
            if pt {
                "Expirada"
            } else {
                "Expired"
            }
        }
    }
}

/// `4990 BRL` → `R$ 49,90` (pt-BR) or `BRL 49.90`.
fn money(lang: Lang, amount: i64, currency: &str) -> String {
    let (units, cents) = (amount / 100, (amount % 100).abs());
    match (lang, currency) {
        (Lang::PtBr, "BRL") => format!("R$ {units},{cents:02}"),
        (Lang::PtBr, c) => format!("{c} {units},{cents:02}"),
        (Lang::En, c) => format!("{c} {units}.{cents:02}"),
    }
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    lang: Option<String>,
    /// `cancelled` or `checkout`: the notice to show after an action.
    done: Option<String>,
}

async fn page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let ctx = Ctx::new(&state, &headers, q.lang.as_deref());
    let Some(viewer) = viewer(&state, &headers).await else { return ctx.finish(to_login()) };
    let notice = match q.done.as_deref() {
        Some("cancelled") => Some("cancelled"),
        Some("checkout") => Some("checkout_done"),
        _ => None,
    };
    render(ctx, &state, &viewer, StatusCode::OK, notice, None).await
}

/// The page, with an optional notice key or error text.
async fn render(
    ctx: Ctx,
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> Response {
    let lang = ctx.lang;
    let b = strings(lang);
    let admin = viewer.user.role.includes(Role::Admin);
    let Some(billing) = state.billing() else {
        let extra = json!({ "b": b, "off": true, "admin": admin });
        return ctx.render(status, "billing.html", Some(&viewer.user), "billing", extra);
    };
    let view = match billing.view(viewer.account).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard billing: the subscription could not be read");
            let extra = json!({ "b": b, "off": false, "admin": admin, "error": e.to_string(), "unreadable": true });
            return ctx.render(StatusCode::SERVICE_UNAVAILABLE, "billing.html", Some(&viewer.user), "billing", extra);
        }
    };
    let limit = |l: Option<u64>| l.map_or_else(|| b["unlimited"].to_owned(), |n| n.to_string());
    let subscription = view.subscription.as_ref().map(|s| {
        let price = s.price.as_ref().map(|p| money(lang, p.amount * i64::from(s.quantity), &p.currency));
        let live = !matches!(s.status.as_str(), "canceled" | "incomplete_expired");
        json!({
            "status": status_label(lang, s.status.as_str()),
            "status_code": s.status.as_str(),
            "price": price,
            "quantity": s.quantity,
            "period_end": s.current_period_end.map(|t| t.format("%Y-%m-%d").to_string()),
            "cancel_at_period_end": s.cancel_at_period_end,
            "live": live,
        })
    });
    let prices: Vec<&str> =
        billing.settings().plans.iter().flat_map(|p| p.price_ids.iter().map(String::as_str)).collect();
    let extra = json!({
        "b": b,
        "off": false,
        "admin": admin,
        "plan": view.plan,
        "entitled": view.entitled,
        "subscription": subscription,
        "usage": [
            { "label": b["channels"], "used": view.usage.channels, "limit": limit(view.limits.channels) },
            { "label": b["contacts"], "used": view.usage.contacts, "limit": limit(view.limits.contacts) },
            { "label": b["messages"], "used": view.usage.messages_this_month, "limit": limit(view.limits.messages_per_month) },
        ],
        "enforced": view.enforced,
        "prices": prices,
        "notice": notice.map(|k| b.get(k).copied().unwrap_or_default()),
        "error": error,
    });
    ctx.render(status, "billing.html", Some(&viewer.user), "billing", extra)
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    /// Checkout: the Stripe price.
    price_id: Option<String>,
    /// Cancel: `at_period_end` or `immediately`.
    mode: Option<String>,
}

/// The checks every action makes: signed in, CSRF, admin, billing on.
async fn guard(
    state: &AppState,
    headers: &HeaderMap,
    form: &ActionForm,
) -> Result<(Ctx, Viewer, BillingService), Response> {
    let ctx = Ctx::new(state, headers, None);
    let Some(viewer) = viewer(state, headers).await else { return Err(ctx.finish(to_login())) };
    if !ctx.csrf_ok(headers, form.csrf.as_deref()) {
        return Err(ctx.error(StatusCode::FORBIDDEN, "forbidden_title", "csrf_failed", Some(&viewer.user)));
    }
    if !viewer.user.role.includes(Role::Admin) {
        let text = strings(ctx.lang)["admins_only"].to_owned();
        return Err(render(ctx, state, &viewer, StatusCode::FORBIDDEN, None, Some(text)).await);
    }
    match state.billing() {
        Some(b) => Ok((ctx, viewer, b.clone())),
        None => Err(render(ctx, state, &viewer, StatusCode::SERVICE_UNAVAILABLE, None, None).await),
    }
}

/// Where Stripe sends the user back: this page, on the host the browser used.
fn back_url(state: &AppState, headers: &HeaderMap, done: &str) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if state.settings().secure_cookies { "https" } else { "http" };
    format!("{scheme}://{host}/dashboard/billing?done={done}")
}

/// After a refused action: the page again with Stripe's (or crm's) reason.
async fn refused(ctx: Ctx, state: &AppState, viewer: &Viewer, e: Error) -> Response {
    let text = format!("{}: {e}", strings(ctx.lang)["failed"]);
    let status = crate::error::ApiError::from(e).status();
    render(ctx, state, viewer, status, None, Some(text)).await
}

/// The idempotency key of a dashboard action: one per form rendering would
/// need state; the session and the minute make a double click one action.
fn action_key(viewer: &Viewer, action: &str) -> String {
    format!("{}:dashboard:{}:{action}:{}", viewer.account, viewer.session, chrono::Utc::now().format("%Y%m%d%H%M"))
}

async fn checkout(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    let (ctx, viewer, billing) = match guard(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let input = CheckoutInput {
        mode: CheckoutMode::Subscription,
        price_id: form.price_id.clone().unwrap_or_default(),
        quantity: 1,
        success_url: back_url(&state, &headers, "checkout"),
        cancel_url: back_url(&state, &headers, "none"),
    };
    let key = action_key(&viewer, &format!("checkout:{}", input.price_id));
    match billing.checkout(viewer.account, &input, &key).await {
        Ok(session) => ctx.finish(Redirect::to(&session.url).into_response()),
        Err(e) => refused(ctx, &state, &viewer, e).await,
    }
}

async fn portal(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    let (ctx, viewer, billing) = match guard(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let key = action_key(&viewer, "portal");
    match billing.portal(viewer.account, &back_url(&state, &headers, "none"), &key).await {
        Ok(session) => ctx.finish(Redirect::to(&session.url).into_response()),
        Err(e) => refused(ctx, &state, &viewer, e).await,
    }
}

async fn cancel(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    let (ctx, viewer, billing) = match guard(&state, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mode = match form.mode.as_deref() {
        Some("immediately") => CancelMode::Immediately,
        _ => CancelMode::AtPeriodEnd,
    };
    match billing.cancel(viewer.account, mode, &action_key(&viewer, "cancel")).await {
        Ok(_) => ctx.finish(Redirect::to("/dashboard/billing?done=cancelled").into_response()),
        Err(e) => refused(ctx, &state, &viewer, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_every_string_and_money_reads_locally() {
        for (k, pt, en) in STRINGS {
            assert!(!pt.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(money(Lang::PtBr, 4990, "BRL"), "R$ 49,90");
        assert_eq!(money(Lang::En, 12_345, "USD"), "USD 123.45");
        assert_eq!(status_label(Lang::PtBr, "past_due"), "Pagamento atrasado");
        assert_eq!(status_label(Lang::En, "active"), "Active");
    }
}

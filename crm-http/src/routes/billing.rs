//! Billing (feature `stripe`): Stripe's webhook at `/webhooks/stripe`, and
//! `/api/v1/billing/{checkout,portal,subscription,cancel}` behind API keys; the
//! optional plan guard on the routes that create what plans limit.
//!
//! Without Stripe configured (`STRIPE_SECRET_KEY`) every billing route
//! answers 503 with the reason, after checking its input (bad input is a
//! 4xx either way).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_billing::{BillingService, CheckoutInput, Received, SubscriptionView};
use crm_core::domain::billing::{Limited, Subscription};
use crm_core::ports::billing::{CancelMode, CheckoutMode, HostedSession};
use crm_core::{AccountId, Error, Role};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// The account routes (under `/api/v1`, behind API keys).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(portal))
        .routes(routes!(subscription))
        .routes(routes!(cancel))
}

/// Stripe's webhook (outside `/api/v1`: Stripe signs it).
pub(crate) fn webhook_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe_webhook)).routes(routes!(account_stripe_webhook))
}

fn service(state: &AppState) -> Result<&BillingService, ApiError> {
    state.billing().ok_or_else(|| {
        ApiError::unavailable("billing is off: the server has no Stripe secret key (set STRIPE_SECRET_KEY)", 3600)
    })
}

/// The `Idempotency-Key` header (1–255 printable ASCII), or a fresh key.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(uuid::Uuid::now_v7().to_string()),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|k| (1..=200).contains(&k.len()) && k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::validation("Idempotency-Key", "must be 1 to 200 printable ASCII characters without spaces")
            }),
    }
}

/// A checkout to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckoutBody {
    /// Stripe's price (`price_…`); Pix needs a BRL price.
    #[schema(pattern = "^[A-Za-z0-9_]{1,255}$", min_length = 1, max_length = 255)]
    price_id: String,
    /// Units (default 1).
    #[schema(minimum = 1, maximum = 10000)]
    quantity: Option<u32>,
    /// `subscription` (default, a recurring price) or `payment` (one-off).
    mode: Option<CheckoutMode>,
    /// Where Stripe sends the customer after paying (absolute http(s) URL).
    #[schema(min_length = 9, max_length = 2048)]
    success_url: String,
    /// Where Stripe sends a customer who gives up.
    #[schema(min_length = 9, max_length = 2048)]
    cancel_url: String,
}

/// A portal session to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortalBody {
    /// Where the portal's "back" link goes (absolute http(s) URL).
    #[schema(min_length = 9, max_length = 2048)]
    return_url: String,
}

fn checked_input(body: CheckoutBody) -> Result<CheckoutInput, ApiError> {
    let input = CheckoutInput {
        mode: body.mode.unwrap_or(CheckoutMode::Subscription),
        price_id: body.price_id,
        quantity: body.quantity.unwrap_or(1),
        success_url: body.success_url,
        cancel_url: body.cancel_url,
    };
    BillingService::check_checkout(&input)?;
    Ok(input)
}

/// Starts a Stripe Checkout for the account (its Stripe customer is found
/// or created first): card and Pix, in Portuguese (`pt-BR`), a
/// subscription or a one-off payment. Answers the hosted page to send the
/// user to. Send `Idempotency-Key` so a retried request gets the same session.
#[utoipa::path(post, path = "/billing/checkout", tag = "billing", request_body = CheckoutBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–200 printable ASCII characters; makes the request safe to retry")),
    responses((status = 200, body = HostedSession), (status = 502, description = "Stripe refused the request", body = Problem)),
    security(("api_key" = [])))]
async fn checkout(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CheckoutBody>,
) -> ApiResult<Json<HostedSession>> {
    principal.require(Role::Admin)?;
    let key = idempotency_key(&headers)?;
    let input = checked_input(body)?;
    let billing = service(&state)?;
    Ok(Json(billing.checkout(principal.account_id, &input, &format!("{}:{key}", principal.account_id)).await?))
}

/// Opens the Stripe customer portal (payment methods, invoices,
/// cancellation) for the account. 409 when the account has no Stripe
/// customer yet (start a checkout first).
#[utoipa::path(post, path = "/billing/portal", tag = "billing", request_body = PortalBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–200 printable ASCII characters; makes the request safe to retry")),
    responses((status = 200, body = HostedSession), (status = 409, body = Problem), (status = 502, description = "Stripe refused the request", body = Problem)),
    security(("api_key" = [])))]
async fn portal(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PortalBody>,
) -> ApiResult<Json<HostedSession>> {
    principal.require(Role::Admin)?;
    let key = idempotency_key(&headers)?;
    BillingService::check_return_url(&body.return_url)?;
    let billing = service(&state)?;
    Ok(Json(billing.portal(principal.account_id, &body.return_url, &format!("{}:{key}", principal.account_id)).await?))
}

/// The account's subscription as Stripe's webhooks last reported it, the
/// plan in force, its limits, the account's usage, and whether the limits
/// are enforced.
#[utoipa::path(get, path = "/billing/subscription", tag = "billing",
    responses((status = 200, body = SubscriptionView)), security(("api_key" = [])))]
async fn subscription(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<SubscriptionView>> {
    principal.require(Role::Viewer)?;
    Ok(Json(service(&state)?.view(principal.account_id).await?))
}

/// How to cancel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    /// `at_period_end` (default: the plan stays until the paid period ends)
    /// or `immediately`.
    mode: Option<CancelMode>,
}

/// Cancels the account's subscription at Stripe: at the end of the paid
/// period (default) or immediately. Answers the subscription as Stripe
/// returned it (`cancel_at_period_end: true`, or `status: canceled`); the
/// stored state and the `billing.*` events follow with Stripe's webhook. 409
/// when the account has no subscription to cancel. Send `Idempotency-Key`
/// so a retried request cancels once.
#[utoipa::path(post, path = "/billing/cancel", tag = "billing", request_body = CancelBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–200 printable ASCII characters; makes the request safe to retry")),
    responses((status = 200, body = Subscription), (status = 409, description = "No subscription to cancel", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused the request", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CancelBody>,
) -> ApiResult<Json<Subscription>> {
    principal.require(Role::Admin)?;
    let key = idempotency_key(&headers)?;
    let billing = service(&state)?;
    let mode = body.mode.unwrap_or(CancelMode::AtPeriodEnd);
    Ok(Json(billing.cancel(principal.account_id, mode, &format!("{}:{key}", principal.account_id)).await?))
}

/// Stripe's webhook. Verifies `Stripe-Signature` on the raw body (every
/// configured secret, 300 s tolerance), stores the event with the job that
/// applies it, and answers 200; a redelivered event is answered 200 again
/// (`duplicate: true`) and stored once. Refused signatures are 400 with the reason.
#[utoipa::path(post, path = "/webhooks/stripe", tag = "webhooks", operation_id = "stripe_webhook",
    params(("Stripe-Signature" = Option<String>, Header, description = "t=<unix seconds>,v1=<HMAC-SHA256 hex>[,v1=…]")),
    request_body(content = Object, content_type = "application/json", description = "Stripe's event, as sent"),
    responses(
        (status = 200, body = Received),
        (status = 400, description = "Missing, malformed, stale or wrong signature, or not a Stripe event", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Billing is off, or the event could not be stored now (Stripe retries)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn stripe_webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Received>> {
    let billing = service(&state)?;
    let signature = headers.get("stripe-signature").map(|v| v.to_str().unwrap_or("\u{0}"));
    webhook_answer(billing.receive_webhook(&body, signature).await)
}

/// Stripe's webhook for an account that bills through its own Stripe
/// account (its `stripe` connection: `PUT /api/v1/connections/stripe` with
/// `secret_key` and `webhook_secret`). Verified with that connection's
/// webhook secrets; the event applies to this account only (an event naming
/// another account is refused by the worker). 404 when the account has no
/// `stripe` connection; otherwise as `POST /webhooks/stripe`.
#[utoipa::path(post, path = "/webhooks/stripe/{account_id}", tag = "webhooks", operation_id = "account_stripe_webhook",
    params(("account_id" = uuid::Uuid, Path, description = "The account whose Stripe account sends it"),
        ("Stripe-Signature" = Option<String>, Header, description = "t=<unix seconds>,v1=<HMAC-SHA256 hex>[,v1=…]")),
    request_body(content = Object, content_type = "application/json", description = "Stripe's event, as sent"),
    responses(
        (status = 200, body = Received),
        (status = 400, description = "Missing, malformed, stale or wrong signature, or not a Stripe event", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account, or it has no stripe connection", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Billing is off, or the event could not be stored now (Stripe retries)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn account_stripe_webhook(
    State(state): State<AppState>,
    ApiPath(account): ApiPath<AccountId>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Received>> {
    let billing = service(&state)?;
    let signature = headers.get("stripe-signature").map(|v| v.to_str().unwrap_or("\u{0}"));
    webhook_answer(billing.receive_account_webhook(account, &body, signature).await)
}

fn webhook_answer(r: crm_core::Result<Received>) -> ApiResult<Json<Received>> {
    match r {
        Ok(r) => Ok(Json(r)),
        Err(Error::Validation { field, reason }) => {
            tracing::warn!(%field, %reason, "stripe webhook refused");
            Err(ApiError::bad_request(format!("{field}: {reason}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// `/campaigns/{id}/start|schedule|resume`.
fn is_campaign_send(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("campaigns"), Some(id), Some("start" | "schedule" | "resume"), None) if !id.is_empty()
    )
}

/// The plan guard (on when `CRM_BILLING_GUARD` is set): creating a contact
/// or a channel, or sending a message — one by one or by starting,
/// scheduling or resuming a campaign — past the account's plan answers 402
/// with the limit named. An account without an active (or trialing, or
/// past-due) subscription is held to the free limits. Runs after
/// authentication.
pub(crate) async fn plan_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Nested under /api/v1, the router sees the path without the prefix.
    let path = req.uri().path();
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let what = match (req.method(), path) {
        (&Method::POST, "/contacts") => Some(Limited::Contacts),
        (&Method::POST, "/channels") => Some(Limited::Channels),
        (&Method::POST, "/messages") => Some(Limited::Messages),
        // Starting, scheduling or resuming a campaign sends messages.
        (&Method::POST, p) if is_campaign_send(p) => Some(Limited::Messages),
        _ => None,
    };
    let account = req.extensions().get::<Principal>().map(|p| p.account_id);
    if let (Some(what), Some(account), Some(billing)) = (what, account, state.billing()) {
        match billing.check_limit(account, what).await {
            Ok(()) => {}
            Err(Error::Forbidden { reason }) => {
                return ApiError::new(StatusCode::PAYMENT_REQUIRED, "plan-limit", "Plan limit reached", reason)
                    .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    next.run(req).await
}

/// Documents the guard's 402 on the operations it covers.
pub(crate) fn document_guard(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::Ref;
    use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
    for path in [
        "/api/v1/contacts",
        "/api/v1/channels",
        "/api/v1/messages",
        "/api/v1/campaigns/{id}/start",
        "/api/v1/campaigns/{id}/schedule",
        "/api/v1/campaigns/{id}/resume",
    ] {
        let Some(op) = doc.paths.paths.get_mut(path).and_then(|i| i.post.as_mut()) else { continue };
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
        let response = ResponseBuilder::new()
            .description("Plan limit reached (only with the billing plan guard on)")
            .content("application/problem+json", content)
            .build();
        op.responses.responses.entry("402".to_owned()).or_insert(RefOr::T(response));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn campaign_sends_are_recognised() {
        for p in ["/campaigns/01a2/start", "/campaigns/x/schedule", "campaigns/x/resume"] {
            assert!(super::is_campaign_send(p), "{p}");
        }
        for p in
            ["/campaigns", "/campaigns/x/pause", "/campaigns//start", "/campaigns/x/start/more", "/contacts/x/start"]
        {
            assert!(!super::is_campaign_send(p), "{p}");
        }
    }
}

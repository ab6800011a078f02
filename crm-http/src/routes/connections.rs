//! `/api/v1/connections`: an account's connections to outside providers
//! (SendGrid, SMTP, Slack, GA4, and any kind a registered connector
//! factory serves) — list, read, set (PUT per provider), delete, and a
//! test send. Credentials are sealed with the server's secret keys and
//! never returned: a connection shows only whether it has some.
//!
//! With feature `sendgrid`, SendGrid's signed event webhook lands at
//! `/webhooks/sendgrid/{account_id}` (public, signature-verified with the
//! connection's `event_webhook_public_key`) and each delivery event is
//! recorded in the account's event log, carrying its contact.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::domain::connection::{
    Connection, ConnectionKind, ConnectionResult, ConnectionStatus, MAX_SETTINGS_BYTES, clip_error,
};
use crm_core::ports::connectors::{Capability, Mailbox};
use crm_core::secrets::Credentials;
use crm_core::{Error, Event, EventType, Role};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// Most credential entries of one connection.
const MAX_CREDENTIALS: usize = 10;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections))
        .routes(routes!(get_connection, put_connection, delete_connection))
        .routes(routes!(test_connection))
}

/// A connection as the API shows it (never its credentials).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConnectionView {
    /// The provider kind (`sendgrid`, `smtp`, `slack`, `ga4`, …).
    provider: String,
    /// What it does, when this server has a connector for its kind.
    capability: Option<Capability>,
    /// How it is doing.
    status: ConnectionStatus,
    /// Its non-secret settings.
    #[schema(value_type = Object)]
    settings: serde_json::Value,
    /// Whether credentials are stored (they are never returned).
    credentials_set: bool,
    /// The last failure's reason, until a success.
    last_error: Option<String>,
    /// When it last worked.
    last_success_at: Option<DateTime<Utc>>,
    /// First set.
    created_at: DateTime<Utc>,
    /// Last set.
    updated_at: DateTime<Utc>,
}

fn view(state: &AppState, c: Connection) -> ConnectionView {
    ConnectionView {
        capability: state.connectors().factory(c.provider.as_str()).ok().map(|f| f.capability()),
        provider: c.provider.to_string(),
        status: c.status,
        settings: c.settings,
        credentials_set: c.credentials.is_some(),
        last_error: c.last_error,
        last_success_at: c.last_success_at,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// A connection to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectionInput {
    /// Non-secret settings, as the provider's connector takes them (SendGrid:
    /// `from`, `from_name`, `event_webhook_public_key`; SMTP: `host`, `port`,
    /// `security`, `from`; Slack: `channel`; GA4: `measurement_id`, `debug`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    settings: serde_json::Value,
    /// Credentials (SendGrid: `api_key`; SMTP: `username`, `password`;
    /// Slack: `webhook_url` or `bot_token`; GA4: `api_secret`), sealed at
    /// rest and never returned. Absent: the stored ones are kept. At most 10.
    credentials: Option<BTreeMap<String, String>>,
    /// `false` disconnects it (nothing is sent through it); default `true`.
    enabled: Option<bool>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// What a test send did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TestResult {
    /// Whether the provider accepted it.
    ok: bool,
    /// Why not.
    error: Option<String>,
    /// The connection's status afterwards.
    status: ConnectionStatus,
}

/// What to test with.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestInput {
    /// Where a test e-mail goes (e-mail connections).
    to: Option<Mailbox>,
}

fn kind(provider: &str) -> ApiResult<ConnectionKind> {
    Ok(ConnectionKind::parse(provider)?)
}

fn credentials(map: &BTreeMap<String, String>) -> ApiResult<Credentials> {
    if map.len() > MAX_CREDENTIALS {
        return Err(ApiError::validation("credentials", format!("at most {MAX_CREDENTIALS} entries")));
    }
    let mut c = Credentials::new();
    for (k, v) in map {
        if k.is_empty() || k.len() > 64 || v.is_empty() || v.len() > 4096 {
            return Err(ApiError::validation("credentials", "names of 1 to 64 and values of 1 to 4096 bytes"));
        }
        c.insert(k.clone(), v.clone());
    }
    Ok(c)
}

/// The account's connections, by provider.
#[utoipa::path(get, path = "/connections", tag = "connections",
    responses((status = 200, body = [ConnectionView])), security(("api_key" = [])))]
async fn list_connections(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<ConnectionView>>> {
    principal.require(Role::Admin)?;
    let list = state.crm().store().list_connections(principal.account_id).await?;
    Ok(Json(list.into_iter().map(|c| view(&state, c)).collect()))
}

/// One connection.
#[utoipa::path(get, path = "/connections/{provider}", tag = "connections",
    params(("provider" = String, Path, description = "sendgrid, smtp, slack, ga4, …", pattern = "^[a-z0-9][a-z0-9-]{0,31}$")),
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn get_connection(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(provider): ApiPath<String>,
) -> ApiResult<Json<ConnectionView>> {
    principal.require(Role::Admin)?;
    let c = state.crm().store().get_connection(principal.account_id, &kind(&provider)?).await?;
    Ok(Json(view(&state, c)))
}

/// Set (create or replace) the account's connection to a provider. The
/// provider's connector checks the settings and credentials first; the
/// credentials are sealed with the server's secret key.
#[utoipa::path(put, path = "/connections/{provider}", tag = "connections",
    params(("provider" = String, Path, description = "sendgrid, smtp, slack, ga4, …", pattern = "^[a-z0-9][a-z0-9-]{0,31}$")),
    request_body = ConnectionInput,
    responses((status = 200, body = ConnectionView), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn put_connection(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(provider): ApiPath<String>,
    ApiJson(input): ApiJson<ConnectionInput>,
) -> ApiResult<Json<ConnectionView>> {
    principal.require(Role::Admin)?;
    let provider = kind(&provider)?;
    let registry = state.connectors();
    let factory = registry.factory(provider.as_str())?;
    if serde_json::to_string(&input.settings).map_or(usize::MAX, |s| s.len()) > MAX_SETTINGS_BYTES {
        return Err(ApiError::validation("settings", format!("at most {MAX_SETTINGS_BYTES} bytes")));
    }
    let creds = input.credentials.as_ref().map(credentials).transpose()?;
    factory.validate(&input.settings, creds.as_ref())?;
    let store = state.crm().store();
    let now = state.crm().clock().now();
    let old = match store.get_connection(principal.account_id, &provider).await {
        Ok(c) => Some(c),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mut c = Connection::new(principal.account_id, provider.clone(), input.settings, None, now)?;
    c.credentials = match &creds {
        Some(creds) => Some(registry.seal(&c, creds)?),
        None => old.as_ref().and_then(|o| o.credentials.clone()),
    };
    if c.credentials.is_none() {
        return Err(ApiError::validation("credentials", "are required for a new connection"));
    }
    if input.enabled == Some(false) {
        c.status = ConnectionStatus::Disconnected;
    }
    if let Some(o) = &old {
        c.created_at = o.created_at;
        c.last_success_at = o.last_success_at;
    }
    let event = Event::new(
        principal.account_id,
        EventType::CONNECTION_UPDATED,
        &serde_json::json!({ "provider": provider.as_str(), "status": c.status }),
        now,
    );
    let stored = store.put_connection(&c, &event).await?;
    Ok(Json(view(&state, stored)))
}

/// Delete a connection: nothing more is sent through it (queued sends are
/// buried with the reason, replayable once it is set again).
#[utoipa::path(delete, path = "/connections/{provider}", tag = "connections",
    params(("provider" = String, Path, description = "sendgrid, smtp, slack, ga4, …", pattern = "^[a-z0-9][a-z0-9-]{0,31}$")),
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)), security(("api_key" = [])))]
async fn delete_connection(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(provider): ApiPath<String>,
) -> ApiResult<StatusCode> {
    principal.require(Role::Admin)?;
    let provider = kind(&provider)?;
    let now = state.crm().clock().now();
    let event = Event::new(
        principal.account_id,
        EventType::CONNECTION_DELETED,
        &serde_json::json!({ "provider": provider.as_str() }),
        now,
    );
    state.crm().store().delete_connection(principal.account_id, &provider, &event).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test through a connection (a test e-mail to `to`, a Slack
/// message, a GA4 event) now, and record the result on it.
#[utoipa::path(post, path = "/connections/{provider}/test", tag = "connections",
    params(("provider" = String, Path, description = "sendgrid, smtp, slack, ga4, …", pattern = "^[a-z0-9][a-z0-9-]{0,31}$")),
    request_body = TestInput,
    responses((status = 200, body = TestResult), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn test_connection(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(provider): ApiPath<String>,
    ApiJson(input): ApiJson<TestInput>,
) -> ApiResult<Json<TestResult>> {
    principal.require(Role::Admin)?;
    let provider = kind(&provider)?;
    if let Some(to) = &input.to {
        to.check("to")?;
    }
    let store = state.crm().store();
    let c = store.get_connection(principal.account_id, &provider).await?;
    let registry = state.connectors();
    let factory = registry.factory(provider.as_str())?;
    let tried = match registry.build(&c).await {
        Ok(connector) => factory.test(&connector, input.to.as_ref()).await,
        Err(e) => Err(e),
    };
    let result = match tried {
        Ok(()) => ConnectionResult::Success(state.crm().clock().now()),
        Err(e @ (Error::Validation { .. } | Error::NotFound { .. })) => return Err(e.into()),
        Err(e) => ConnectionResult::Failure(clip_error(&e.to_string())),
    };
    store.record_connection_result(principal.account_id, &provider, &result).await?;
    let after = store.get_connection(principal.account_id, &provider).await?;
    let error = match result {
        ConnectionResult::Failure(e) => Some(e),
        ConnectionResult::Success(_) => None,
    };
    Ok(Json(TestResult { ok: error.is_none(), error, status: after.status }))
}

#[cfg(feature = "sendgrid")]
pub(crate) use sendgrid::webhook_router;

#[cfg(feature = "sendgrid")]
mod sendgrid {
    use axum::Json;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use serde::Serialize;
    use utoipa::ToSchema;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    use crm_connectors::sendgrid::{SIGNATURE_HEADER, SendGridFactory, TIMESTAMP_HEADER};
    use crm_core::domain::connection::ConnectionKind;
    use crm_core::ports::idempotency::check_idempotency_key;
    use crm_core::{AccountId, Error, Event};

    use crate::error::{ApiError, ApiResult, Problem};
    use crate::extract::ApiPath;
    use crate::state::AppState;

    /// SendGrid's event webhook (outside `/api/v1`: SendGrid signs it).
    pub(crate) fn webhook_router() -> OpenApiRouter<AppState> {
        OpenApiRouter::new().routes(routes!(sendgrid_events))
    }

    /// What the webhook recorded.
    #[derive(Debug, Serialize, ToSchema)]
    pub(crate) struct Recorded {
        /// Events recorded in the account's log (`processed` and unknown
        /// kinds are skipped).
        recorded: usize,
        /// Events skipped because their `sg_event_id` was recorded before
        /// (SendGrid retries a batch it could not see acknowledged).
        duplicates: usize,
    }

    /// The idempotency scope SendGrid event ids are claimed in.
    const SCOPE: &str = "sendgrid.events";

    /// SendGrid's signed event webhook for one account: verifies
    /// `X-Twilio-Email-Event-Webhook-Signature` over the timestamp and the
    /// raw body with the account's SendGrid connection's
    /// `event_webhook_public_key` (300 s tolerance), then records each
    /// delivery event (`email.delivered`, `email.bounced`, `email.opened`,
    /// …) with its contact, once per `sg_event_id` (a redelivered event is
    /// counted in `duplicates`, not recorded again). 404 when the account
    /// has no SendGrid connection with a public key; 400 for a refused
    /// signature.
    #[utoipa::path(post, path = "/webhooks/sendgrid/{account_id}", tag = "webhooks", operation_id = "sendgrid_events",
        params(
            ("account_id" = String, Path, format = "uuid", description = "The account the webhook URL was made for"),
            ("X-Twilio-Email-Event-Webhook-Signature" = Option<String>, Header, description = "base64 ECDSA P-256 signature"),
            ("X-Twilio-Email-Event-Webhook-Timestamp" = Option<String>, Header, description = "unix seconds"),
        ),
        request_body(content = [Object], content_type = "application/json", description = "SendGrid's events, as sent"),
        responses(
            (status = 200, body = Recorded),
            (status = 400, description = "Missing, malformed, stale or wrong signature, or not SendGrid's events", body = Problem, content_type = "application/problem+json"),
            (status = 404, body = Problem, content_type = "application/problem+json"),
            (status = 409, description = "An event of the batch is being recorded by a concurrent delivery of it; SendGrid retries", body = Problem, content_type = "application/problem+json"),
        ))]
    async fn sendgrid_events(
        State(state): State<AppState>,
        ApiPath(account): ApiPath<AccountId>,
        headers: HeaderMap,
        body: Bytes,
    ) -> ApiResult<Json<Recorded>> {
        let store = state.crm().store();
        let missing = || ApiError::not_found("no SendGrid event webhook is set up for this account");
        let connection = match store.get_connection(account, &ConnectionKind::SENDGRID).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        let verifier = SendGridFactory::verifier(&connection.settings).ok().flatten().ok_or_else(missing)?;
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
        let now = state.crm().clock().now();
        let events = match verifier.verify(header(SIGNATURE_HEADER), header(TIMESTAMP_HEADER), &body, now) {
            Ok(e) => e,
            Err(Error::Validation { field, reason }) => {
                tracing::warn!(%account, %field, %reason, "sendgrid event webhook refused");
                return Err(ApiError::bad_request(format!("{field}: {reason}")));
            }
            Err(e) => return Err(e.into()),
        };
        let (mut recorded, mut duplicates) = (0, 0);
        for e in events {
            if e.account_id.as_deref().is_some_and(|a| a != account.to_string()) {
                continue;
            }
            // SendGrid delivers at least once: an `sg_event_id` seen before
            // (kept for the idempotency window, one day) is not recorded
            // twice. An event without a usable id is recorded as it comes.
            let sg_id = e
                .data
                .get("sg_event_id")
                .and_then(|v| v.as_str())
                .filter(|id| check_idempotency_key(SCOPE, id).is_ok())
                .map(str::to_owned);
            let event = Event::new(account, e.event_type, &e.data, now);
            if let Some(id) = &sg_id
                && let Some(earlier) = store.claim_idempotency_key(account, SCOPE, id, id, now).await?
            {
                if earlier.resource_id.is_none() {
                    // Another request is recording it right now: if that one
                    // fails, only a retry of this batch can record it.
                    return Err(
                        Error::conflict("SendGrid event", "it is being recorded by another request; retry").into()
                    );
                }
                duplicates += 1;
                continue;
            }
            match store.record_connection_event(account, &ConnectionKind::SENDGRID, &event).await {
                Ok(()) => {}
                Err(err) => {
                    if let Some(id) = &sg_id {
                        // Not recorded: SendGrid's retry must be able to record it.
                        store.release_idempotency_key(account, SCOPE, id).await?;
                    }
                    return Err(err.into());
                }
            }
            if let Some(id) = &sg_id {
                store.complete_idempotency_key(account, SCOPE, id, &event.id.to_string()).await?;
            }
            recorded += 1;
        }
        Ok(Json(Recorded { recorded, duplicates }))
    }
}

//! Webhooks: row decoding and the reads both dialects share. Writes, and
//! reads that bind a time, are written per dialect.

use crm_core::domain::webhook::{
    AttemptContext, DeliveryQuery, DeliveryStatus, EndpointState, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
};
use crm_core::secrets::SealedSecret;
use crm_core::{
    AccountId, Error, EventFilter, EventId, EventType, Page, Result, WebhookAttemptId, WebhookDeliveryId,
    WebhookEndpointId,
};

use super::{Arg, Columns, Fetch, json_from, page_args, stored};
use crate::error::corrupt;

/// Why a stale `update_endpoint` is refused, as the memory store words it.
pub(crate) const STALE: &str = "it was changed by someone else; reload and retry";
/// Why an attempt on a settled delivery is refused.
pub(crate) const NOT_PENDING: &str = "it is no longer pending";

fn small(col: &'static str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|e| corrupt(col, e))
}

fn code(col: &'static str, v: Option<i64>) -> Result<Option<u16>> {
    v.map(|c| u16::try_from(c).map_err(|e| corrupt(col, e))).transpose()
}

/// A `webhook_endpoints` row. Secrets stay sealed.
pub(crate) fn endpoint_row(r: &impl Columns) -> Result<WebhookEndpoint> {
    let sealed = |col| r.opt_text(col)?.map(|t| stored(col, SealedSecret::decode(&t))).transpose();
    let filter = match r.opt_json("event_types")? {
        None => EventFilter::all(),
        Some(v) => {
            let names: Vec<String> = json_from("event_types", v)?;
            stored("event_types", EventFilter::only(names))?
        }
    };
    Ok(WebhookEndpoint {
        id: WebhookEndpointId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        url: r.text("url")?,
        description: r.text("description")?,
        event_types: filter,
        enabled: r.flag("enabled")?,
        disabled_reason: r.opt_text("disabled_reason")?,
        secret: stored("secret", SealedSecret::decode(&r.text("secret")?))?,
        previous_secret: sealed("previous_secret")?,
        previous_secret_expires_at: r.opt_time("previous_secret_expires_at")?,
        headers: json_from("headers", r.json("headers")?)?,
        rate_limit_per_second: r
            .opt_int("rate_limit_per_second")?
            .map(|v| small("rate_limit_per_second", v))
            .transpose()?,
        failing_since: r.opt_time("failing_since")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        version: r.int("version")?,
    })
}

/// A `webhook_deliveries` row.
pub(crate) fn delivery_row(r: &impl Columns) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: WebhookDeliveryId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        endpoint_id: WebhookEndpointId::from_uuid(r.uuid("endpoint_id")?),
        event_id: EventId::from_uuid(r.uuid("event_id")?),
        event_type: r.parsed("event_type", |t| EventType::custom(t))?,
        ordering_key: r.opt_text("ordering_key")?,
        status: r.parsed("status", DeliveryStatus::parse)?,
        attempts: small("attempts", r.int("attempts")?)?,
        last_status_code: code("last_status_code", r.opt_int("last_status_code")?)?,
        last_error: r.opt_text("last_error")?,
        next_attempt_at: r.opt_time("next_attempt_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// A `webhook_attempts` row.
pub(crate) fn attempt_row(r: &impl Columns) -> Result<WebhookAttempt> {
    Ok(WebhookAttempt {
        id: WebhookAttemptId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        delivery_id: WebhookDeliveryId::from_uuid(r.uuid("delivery_id")?),
        endpoint_id: WebhookEndpointId::from_uuid(r.uuid("endpoint_id")?),
        at: r.time("at")?,
        status_code: code("status_code", r.opt_int("status_code")?)?,
        latency_ms: small("latency_ms", r.int("latency_ms")?)?,
        response_excerpt: r.opt_text("response_excerpt")?,
        error: r.opt_text("error")?,
        succeeded: r.flag("succeeded")?,
    })
}

/// [`WebhookStore::get_endpoint`](crm_core::WebhookStore::get_endpoint).
pub(crate) async fn get_endpoint(
    db: &impl Fetch,
    account: AccountId,
    id: WebhookEndpointId,
) -> Result<WebhookEndpoint> {
    let sql = "SELECT * FROM webhook_endpoints WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a webhook endpoint", sql, args).await?;
    row.map(|r| endpoint_row(&r)).transpose()?.ok_or(Error::not_found("webhook endpoint"))
}

/// [`WebhookStore::list_endpoints`](crm_core::WebhookStore::list_endpoints).
pub(crate) async fn list_endpoints(db: &impl Fetch, account: AccountId) -> Result<Vec<WebhookEndpoint>> {
    let sql = "SELECT * FROM webhook_endpoints WHERE account_id = $1 ORDER BY id";
    let rows = db.fetch_all("listing webhook endpoints", sql, vec![account.into_uuid().into()]).await?;
    rows.iter().map(endpoint_row).collect()
}

/// [`WebhookStore::get_delivery`](crm_core::WebhookStore::get_delivery).
pub(crate) async fn get_delivery(
    db: &impl Fetch,
    account: AccountId,
    id: WebhookDeliveryId,
) -> Result<WebhookDelivery> {
    let sql = "SELECT * FROM webhook_deliveries WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a webhook delivery", sql, args).await?;
    row.map(|r| delivery_row(&r)).transpose()?.ok_or(Error::not_found("webhook delivery"))
}

/// [`WebhookStore::list_deliveries`](crm_core::WebhookStore::list_deliveries).
pub(crate) async fn list_deliveries(
    db: &impl Fetch,
    account: AccountId,
    query: &DeliveryQuery,
) -> Result<Page<WebhookDelivery>> {
    let sql = "SELECT * FROM webhook_deliveries WHERE account_id = $1 AND ($2 IS NULL OR endpoint_id = $2) \
               AND ($3 IS NULL OR event_id = $3) AND ($4 IS NULL OR status = $4) AND id > $5 ORDER BY id LIMIT $6";
    let mut args = vec![
        account.into_uuid().into(),
        Arg::OptUuid(query.endpoint_id.map(WebhookEndpointId::into_uuid)),
        Arg::OptUuid(query.event_id.map(EventId::into_uuid)),
        query.status.map(DeliveryStatus::as_str).into(),
    ];
    args.extend(page_args(&query.page));
    let rows = db.fetch_all("listing webhook deliveries", sql, args).await?;
    let items = rows.iter().map(delivery_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, query.page.limit, |d| d.id.into_uuid()))
}

/// [`WebhookStore::list_attempts`](crm_core::WebhookStore::list_attempts).
pub(crate) async fn list_attempts(
    db: &impl Fetch,
    account: AccountId,
    delivery: WebhookDeliveryId,
) -> Result<Vec<WebhookAttempt>> {
    get_delivery(db, account, delivery).await?;
    let sql = "SELECT * FROM webhook_attempts WHERE delivery_id = $1 AND account_id = $2 ORDER BY id";
    let args = vec![delivery.into_uuid().into(), account.into_uuid().into()];
    db.fetch_all("listing webhook attempts", sql, args).await?.iter().map(attempt_row).collect()
}

/// [`WebhookStore::has_earlier_pending`](crm_core::WebhookStore::has_earlier_pending).
pub(crate) async fn has_earlier_pending(
    db: &impl Fetch,
    account: AccountId,
    endpoint: WebhookEndpointId,
    ordering_key: &str,
    event: EventId,
) -> Result<bool> {
    let sql = "SELECT 1 AS one FROM webhook_deliveries WHERE endpoint_id = $1 AND ordering_key = $2 \
               AND status = 'pending' AND event_id < $3 AND account_id = $4 LIMIT 1";
    let args =
        vec![endpoint.into_uuid().into(), ordering_key.into(), event.into_uuid().into(), account.into_uuid().into()];
    Ok(db.fetch_optional("checking earlier webhook deliveries", sql, args).await?.is_some())
}

/// What [`WebhookStore::attempt_context`](crm_core::WebhookStore::attempt_context)
/// selects from `webhook_deliveries d` left-joined to `webhook_endpoints e`
/// (the endpoint may be gone): the delivery, its endpoint's version and
/// failure state, and the FIFO check. A literal, for `concat!`.
macro_rules! attempt_context_columns {
    () => {
        "d.*, e.version AS endpoint_version, e.enabled AS endpoint_enabled, \
         e.failing_since AS endpoint_failing_since, \
         CASE WHEN d.ordering_key IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM (SELECT 1 AS one \
           FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key \
           AND p.status = 'pending' AND p.event_id < d.event_id AND p.account_id = d.account_id LIMIT 1) x) \
         END AS earlier_pending"
    };
}
pub(crate) use attempt_context_columns;

/// A row of [`attempt_context_columns`].
pub(crate) fn attempt_context_row(r: &impl Columns) -> Result<AttemptContext> {
    let endpoint = match r.opt_int("endpoint_version")? {
        Some(version) => Some(EndpointState {
            version,
            enabled: r.flag("endpoint_enabled")?,
            failing_since: r.opt_time("endpoint_failing_since")?,
        }),
        None => None,
    };
    Ok(AttemptContext { delivery: delivery_row(r)?, endpoint, earlier_pending: r.int("earlier_pending")? > 0 })
}

/// [`WebhookStore::attempt_context`](crm_core::WebhookStore::attempt_context)
/// in one statement.
pub(crate) async fn attempt_context(
    db: &impl Fetch,
    account: AccountId,
    id: WebhookDeliveryId,
) -> Result<Option<AttemptContext>> {
    let sql = concat!(
        "SELECT ",
        attempt_context_columns!(),
        " FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         AND e.account_id = d.account_id WHERE d.id = $1 AND d.account_id = $2"
    );
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a webhook delivery to attempt", sql, args).await?;
    row.map(|r| attempt_context_row(&r)).transpose()
}

//! Load-test baseline for `scripts/load.sh`: a bare axum server that runs the
//! same SQL as crm-server's hottest routes straight through sqlx, with no
//! auth, rate limiting, domain types, metrics or middleware. Whatever
//! crm-server costs above these numbers is the price of the product layers.
//!
//! ```sh
//! BASELINE_DATABASE_URL=sqlite://crm.db BASELINE_ACCOUNT=<uuid> BASELINE_LISTEN=127.0.0.1:8090 \
//!     cargo run --release -p crm-http --example baseline
//! ```
//!
//! - `GET /contacts/{id}`: `SELECT * FROM contacts WHERE id = ? AND account_id = ?`
//! - `GET /contacts?tag=T`: the tag page query of the stores (50 + 1 rows)
//!
//! Both GETs answer the same bytes as crm-server's (every field of the
//! contact, in its order and text; `scripts/load.sh` checks it), so the two
//! servers do the same work but for crm's middleware and checks.
//! - `POST /messages` `{"contact_id": …, "text": …}`: one statement (one
//!   round trip, one commit) that inserts the message as `queued` when the
//!   contact exists in the account, answering `202 Accepted` like
//!   crm-server's queued send. No event, outbox row, contact update or
//!   dispatch: the floor a queued send cannot go below.
//!
//! Pools match the stores': SQLite 8 connections, WAL, `synchronous=NORMAL`;
//! PostgreSQL 10 connections.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

#[derive(Clone)]
struct App {
    db: Db,
    account: Uuid,
}

/// A contact exactly as crm-server's API writes it (same fields, same order,
/// same text), so both servers answer byte-identical bodies.
#[derive(Serialize)]
struct ContactOut {
    id: Uuid,
    account_id: Uuid,
    name: String,
    phone: String,
    email: Option<String>,
    whatsapp_id: Option<String>,
    tags: Vec<String>,
    metadata: serde_json::Value,
    lead_score: i64,
    lead_stage: String,
    opt_in: OptInOut,
    last_inbound_at: Option<DateTime<Utc>>,
    last_outbound_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

#[derive(Serialize)]
struct OptInOut {
    status: String,
    changed_at: Option<DateTime<Utc>>,
    source: Option<String>,
}

#[derive(Serialize)]
struct PageOut {
    items: Vec<ContactOut>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct TagQuery {
    tag: String,
}

#[derive(Deserialize)]
struct SendBody {
    contact_id: Uuid,
    text: String,
}

#[derive(Serialize)]
struct MessageOut {
    id: Uuid,
    contact_id: Uuid,
    status: &'static str,
    content: serde_json::Value,
    created_at: DateTime<Utc>,
}

type Reply<T> = Result<T, (StatusCode, String)>;

fn fail(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn sqlite_contact(r: &SqliteRow) -> Result<ContactOut, BoxError> {
    let opt_micros = |c: &str| r.try_get::<Option<i64>, _>(c).map(|v| v.map(from_micros));
    Ok(ContactOut {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        whatsapp_id: r.try_get("whatsapp_id")?,
        tags: serde_json::from_str(r.try_get::<&str, _>("tags")?)?,
        metadata: serde_json::from_str(r.try_get::<&str, _>("metadata")?)?,
        lead_score: r.try_get("lead_score")?,
        lead_stage: r.try_get("lead_stage")?,
        opt_in: OptInOut {
            status: r.try_get("opt_in_status")?,
            changed_at: opt_micros("opt_in_changed_at")?,
            source: r.try_get("opt_in_source")?,
        },
        last_inbound_at: opt_micros("last_inbound_at")?,
        last_outbound_at: opt_micros("last_outbound_at")?,
        created_at: from_micros(r.try_get("created_at")?),
        updated_at: from_micros(r.try_get("updated_at")?),
        version: r.try_get("version")?,
    })
}

fn pg_contact(r: &PgRow) -> Result<ContactOut, BoxError> {
    Ok(ContactOut {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        whatsapp_id: r.try_get("whatsapp_id")?,
        tags: r.try_get("tags")?,
        metadata: r.try_get("metadata")?,
        lead_score: i64::from(r.try_get::<i16, _>("lead_score")?),
        lead_stage: r.try_get("lead_stage")?,
        opt_in: OptInOut {
            status: r.try_get("opt_in_status")?,
            changed_at: r.try_get("opt_in_changed_at")?,
            source: r.try_get("opt_in_source")?,
        },
        last_inbound_at: r.try_get("last_inbound_at")?,
        last_outbound_at: r.try_get("last_outbound_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        version: r.try_get("version")?,
    })
}

async fn get_contact(State(app): State<Arc<App>>, Path(id): Path<Uuid>) -> Reply<Json<ContactOut>> {
    let contact = match &app.db {
        Db::Sqlite(pool) => sqlx::query("SELECT * FROM contacts WHERE id = ? AND account_id = ?")
            .bind(id)
            .bind(app.account)
            .fetch_optional(pool)
            .await
            .map_err(fail)?
            .map(|r| sqlite_contact(&r))
            .transpose(),
        Db::Pg(pool) => sqlx::query("SELECT * FROM contacts WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(app.account)
            .fetch_optional(pool)
            .await
            .map_err(fail)?
            .map(|r| pg_contact(&r))
            .transpose(),
    }
    .map_err(fail)?;
    contact.map(Json).ok_or((StatusCode::NOT_FOUND, "contact not found".into()))
}

const LIMIT: i64 = 50;

/// crm's page cursor: the id's 16 bytes in unpadded URL-safe base64.
fn cursor(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in id.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

async fn list_by_tag(State(app): State<Arc<App>>, Query(q): Query<TagQuery>) -> Reply<Json<PageOut>> {
    let mut items = match &app.db {
        Db::Sqlite(pool) => sqlx::query(
            "SELECT c.* FROM contact_tags t JOIN contacts c ON c.id = t.contact_id \
             WHERE t.account_id = ? AND t.tag = ? AND c.account_id = ? ORDER BY t.contact_id LIMIT ?",
        )
        .bind(app.account)
        .bind(&q.tag)
        .bind(app.account)
        .bind(LIMIT + 1)
        .fetch_all(pool)
        .await
        .map_err(fail)?
        .iter()
        .map(sqlite_contact)
        .collect::<Result<Vec<_>, _>>(),
        Db::Pg(pool) => sqlx::query(
            "SELECT c.* FROM contact_tags t JOIN contacts c ON c.id = t.contact_id \
             WHERE t.account_id = $1 AND t.tag = $2 AND c.account_id = $3 AND t.contact_id > $4 \
             ORDER BY t.contact_id LIMIT $5",
        )
        .bind(app.account)
        .bind(&q.tag)
        .bind(app.account)
        .bind(Uuid::nil())
        .bind(LIMIT + 1)
        .fetch_all(pool)
        .await
        .map_err(fail)?
        .iter()
        .map(pg_contact)
        .collect::<Result<Vec<_>, _>>(),
    }
    .map_err(fail)?;
    let more = items.len() as i64 > LIMIT;
    items.truncate(LIMIT as usize);
    let next_cursor = if more { items.last().map(|c| cursor(c.id)) } else { None };
    Ok(Json(PageOut { items, next_cursor }))
}

async fn send_message(
    State(app): State<Arc<App>>,
    Json(body): Json<SendBody>,
) -> Reply<(StatusCode, Json<MessageOut>)> {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let content = serde_json::json!({ "type": "text", "body": body.text });
    let content_text = content.to_string();
    // One statement (one round trip, one commit): the message is inserted
    // when the contact exists in the account.
    let inserted = match &app.db {
        Db::Sqlite(pool) => {
            let us = now.timestamp_micros();
            sqlx::query(
                "INSERT INTO messages (id, account_id, contact_id, direction, kind, content, status, \
                 created_at, updated_at) SELECT ?, account_id, id, 'outbound', 'text', ?, 'queued', ?, ? \
                 FROM contacts WHERE id = ? AND account_id = ?",
            )
            .bind(id)
            .bind(&content_text)
            .bind(us)
            .bind(us)
            .bind(body.contact_id)
            .bind(app.account)
            .execute(pool)
            .await
            .map_err(fail)?
            .rows_affected()
        }
        Db::Pg(pool) => sqlx::query(
            "INSERT INTO messages (id, account_id, contact_id, direction, kind, content, status, \
             created_at, updated_at) SELECT $1, account_id, id, 'outbound', 'text', $2::jsonb, 'queued', $3, $3 \
             FROM contacts WHERE id = $4 AND account_id = $5",
        )
        .bind(id)
        .bind(&content_text)
        .bind(now)
        .bind(body.contact_id)
        .bind(app.account)
        .execute(pool)
        .await
        .map_err(fail)?
        .rows_affected(),
    };
    if inserted == 0 {
        return Err((StatusCode::NOT_FOUND, "contact not found".into()));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageOut { id, contact_id: body.contact_id, status: "queued", content, created_at: now }),
    ))
}

async fn connect(url: &str) -> Result<Db, BoxError> {
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)?
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        Ok(Db::Sqlite(SqlitePoolOptions::new().max_connections(8).connect_with(options).await?))
    } else {
        let pool = PgPoolOptions::new().max_connections(10).connect(url).await?;
        // Fail early on a database crm-server has not migrated.
        pool.acquire().await?.ping().await?;
        Ok(Db::Pg(pool))
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("set {k}"));
    let url = var("BASELINE_DATABASE_URL")?;
    let account: Uuid = var("BASELINE_ACCOUNT")?.parse()?;
    let listen = std::env::var("BASELINE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let app = Arc::new(App { db: connect(&url).await?, account });
    let router = Router::new()
        .route("/contacts", get(list_by_tag))
        .route("/contacts/{id}", get(get_contact))
        .route("/messages", post(send_message))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("baseline listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

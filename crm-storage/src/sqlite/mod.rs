//! `SqliteStore`: every store port over SQLite (a file or `sqlite::memory:`).
//!
//! Ids are stored as 16-byte blobs (UUIDv7 byte order is time order), times as
//! INTEGER microseconds since the epoch, JSON as TEXT. Every write runs in a
//! `BEGIN IMMEDIATE` transaction, so writers queue on SQLite's write lock
//! (bounded by the busy timeout) instead of failing to upgrade a read lock.
//!
//! This module opens the database and holds what every aggregate shares (the
//! write transaction, the event append with its outbox fan-out, how a row's
//! columns decode); each port is implemented in its aggregate's module.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

use crm_core::{AccountId, Error, Event, Health, HealthCheck, Result};

use crate::error::{corrupt, db, migrate};
use crate::rows::{Arg, BATCH, Columns, Fetch, from_micros, get, json_from, micros, probe, to_json};

mod accounts;
mod assistant;
mod automations;
mod billing;
mod campaigns;
mod channels;
mod connections;
mod contacts;
mod events;
mod groups;
mod idempotency;
mod inbox;
mod jobs;
mod media;
mod messages;
mod oauth;
mod sequences;
mod sessions;
mod templates;
mod webhooks;
mod whatsapp_ids;

type Tx = sqlx::Transaction<'static, Sqlite>;

/// Every store port over SQLite, with versioned migrations applied on open
/// and an event outbox.
///
/// ```no_run
/// # async fn f() -> crm_core::Result<()> {
/// let store = crm_storage::SqliteStore::connect("sqlite://./crm-data/crm.db?mode=rwc").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing, with its parent folder) the database at
    /// `url` — `sqlite://path/to/file.db`, `sqlite:file.db` or
    /// `sqlite::memory:` — and runs the migrations.
    ///
    /// An in-memory database lives in one connection kept for the store's
    /// lifetime, so every caller sees the same data.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config { message: format!("invalid SQLite database URL: {}", kind_of(&e)) })?
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let memory = is_memory(url);
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
        } else {
            let path = options.get_filename().to_path_buf();
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::storage("creating the database folder failed", false, e))?;
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            // No ping when a connection is taken out of the pool: a SQLite
            // connection is a worker thread of this process, and the ping on
            // its return already checks it.
            SqlitePoolOptions::new().max_connections(8).test_before_acquire(false).connect_with(options).await
        }
        .map_err(|e| db("opening the SQLite database", e))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps an existing pool and runs the migrations on it.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self> {
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (idempotent; [`SqliteStore::connect`] already does).
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await.map_err(migrate)
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write(&self) -> Result<Tx> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| db("starting a transaction", e))
    }
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

fn kind_of(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "bad option",
        _ => "cannot parse",
    }
}

/// Commits a write transaction.
async fn commit(tx: Tx) -> Result<()> {
    tx.commit().await.map_err(|e| db("committing", e))
}

fn now_micros() -> i64 {
    micros(Utc::now())
}

/// SQLite's storage choices: times as INTEGER microseconds, JSON (and lists)
/// as TEXT.
impl Columns for SqliteRow {
    fn parsed<T>(&self, col: &'static str, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        // Borrowed from the row: no String per parsed column.
        crate::rows::stored(col, parse(get::<&str, _>(self, col)?))
    }

    fn uuid(&self, col: &'static str) -> Result<Uuid> {
        get(self, col)
    }

    fn opt_uuid(&self, col: &'static str) -> Result<Option<Uuid>> {
        get(self, col)
    }

    fn flag(&self, col: &'static str) -> Result<bool> {
        get(self, col)
    }

    fn text(&self, col: &'static str) -> Result<String> {
        get(self, col)
    }

    fn opt_text(&self, col: &'static str) -> Result<Option<String>> {
        get(self, col)
    }

    fn int(&self, col: &'static str) -> Result<i64> {
        get(self, col)
    }

    fn opt_int(&self, col: &'static str) -> Result<Option<i64>> {
        get(self, col)
    }

    fn small_int(&self, col: &'static str) -> Result<i64> {
        get(self, col)
    }

    fn time(&self, col: &'static str) -> Result<DateTime<Utc>> {
        from_micros(col, get(self, col)?)
    }

    fn opt_time(&self, col: &'static str) -> Result<Option<DateTime<Utc>>> {
        get::<Option<i64>, _>(self, col)?.map(|m| from_micros(col, m)).transpose()
    }

    fn json(&self, col: &'static str) -> Result<serde_json::Value> {
        parse_json(col, &get::<String, _>(self, col)?)
    }

    fn opt_json(&self, col: &'static str) -> Result<Option<serde_json::Value>> {
        get::<Option<String>, _>(self, col)?.map(|text| parse_json(col, &text)).transpose()
    }

    fn text_list(&self, col: &'static str) -> Result<Vec<String>> {
        json_from(col, self.json(col)?)
    }
}

fn parse_json(col: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| corrupt(col, e))
}

fn json_string<T: serde::Serialize>(col: &'static str, v: &T) -> Result<String> {
    to_json(col, v).map(|v| v.to_string())
}

fn opt_micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(micros)
}

/// SQL condition: the consumer row `c` wants the event row `e` (its
/// `event_types` is NULL, or its JSON array holds the exact type or a
/// `prefix.*` pattern the type starts with). Prefixes are compared with
/// `substr`, never LIKE, whose `_` and `%` are wildcards (and which folds case
/// on SQLite).
const CONSUMER_WANTS: &str = "(c.event_types IS NULL OR EXISTS (SELECT 1 FROM json_each(c.event_types) AS f \
     WHERE f.value = e.type OR (substr(f.value, -2) = '.*' \
         AND substr(e.type, 1, length(f.value) - 1) = substr(f.value, 1, length(f.value) - 1))))";

/// Appends events and queues each for every registered consumer whose filter
/// it passes.
async fn append_events(tx: &mut Tx, events: &[&Event]) -> Result<()> {
    for chunk in events.chunks(BATCH) {
        let rows = chunk.iter().map(|e| Ok((e, json_string("payload", &e.payload)?))).collect::<Result<Vec<_>>>()?;
        let mut b = QueryBuilder::<Sqlite>::new("INSERT INTO events (id, account_id, type, payload, occurred_at) ");
        b.push_values(rows, |mut sep, (e, payload)| {
            sep.push_bind(e.id.into_uuid())
                .push_bind(e.account_id.into_uuid())
                .push_bind(e.event_type.as_str().to_owned())
                .push_bind(payload)
                .push_bind(micros(e.occurred_at));
        });
        b.build().execute(&mut **tx).await.map_err(|e| db("appending events", e))?;
        let mut b = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outbox (consumer, event_id, due_at, attempt) \
             SELECT c.name, e.id, 0, 0 FROM outbox_consumers c, events e WHERE e.id IN (",
        );
        let mut ids = b.separated(", ");
        for e in chunk {
            ids.push_bind(e.id.into_uuid());
        }
        b.push(") AND ").push(CONSUMER_WANTS);
        b.build().execute(&mut **tx).await.map_err(|e| db("queueing events", e))?;
    }
    Ok(())
}

/// Appends one event and queues it for every registered consumer whose filter
/// it passes.
async fn append(tx: &mut Tx, event: &Event) -> Result<()> {
    append_events(tx, &[event]).await
}

/// Whether `sql` (selecting by id, then account) finds a row.
async fn exists(tx: &mut Tx, sql: &'static str, id: Uuid, account: AccountId) -> Result<bool> {
    let row = sqlx::query(sql)
        .bind(id)
        .bind(account.into_uuid())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| db("looking up a row", e))?;
    Ok(row.is_some())
}

impl Fetch for SqliteStore {
    type Row = SqliteRow;

    async fn fetch_optional(&self, what: &'static str, sql: &'static str, args: Vec<Arg>) -> Result<Option<SqliteRow>> {
        bind(sqlx::query(sql), args).fetch_optional(&self.pool).await.map_err(|e| db(what, e))
    }

    async fn fetch_all(&self, what: &'static str, sql: &'static str, args: Vec<Arg>) -> Result<Vec<SqliteRow>> {
        bind(sqlx::query(sql), args).fetch_all(&self.pool).await.map_err(|e| db(what, e))
    }
}

/// Binds the arguments of a shared read, in order.
fn bind(query: Query<'static, Sqlite, SqliteArguments>, args: Vec<Arg>) -> Query<'static, Sqlite, SqliteArguments> {
    args.into_iter().fold(query, |q, arg| match arg {
        Arg::Uuid(v) => q.bind(v),
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::OptUuid(v) => q.bind(v),
    })
}

#[async_trait]
impl HealthCheck for SqliteStore {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Health {
        probe(sqlx::query("SELECT 1").execute(&self.pool)).await
    }
}

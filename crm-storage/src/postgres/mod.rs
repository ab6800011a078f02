//! `PgStore`: every store port over PostgreSQL.
//!
//! Ids are native `uuid` (UUIDv7 sorts by time), times `timestamptz`, JSON
//! `jsonb`. Outbox leases use the database clock (`now()`), so several
//! processes sharing one database agree on expiry; claims take rows with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never block on or share
//! an item.
//!
//! This module connects and holds what every aggregate shares (the write
//! transaction, the event append with its outbox fan-out, how a row's columns
//! decode); each port is implemented in its aggregate's module.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Connection, PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

use crm_core::{AccountId, Error, Event, Health, HealthCheck, Result};

use crate::error::{db, migrate};
use crate::rows::{Arg, Columns, Fetch, get, probe};

/// SQL condition: the consumer row `c` wants an event whose type is `e.type`
/// (its `event_types` is NULL, or holds the exact name or a `prefix.*`
/// pattern the type starts with). Prefixes are compared with `starts_with`,
/// never LIKE, whose `_` and `%` are wildcards.
macro_rules! consumer_wants {
    () => {
        "(c.event_types IS NULL OR EXISTS (SELECT 1 FROM unnest(c.event_types) AS f(t) \
          WHERE f.t = e.type OR (right(f.t, 2) = '.*' AND starts_with(e.type, left(f.t, -1)))))"
    };
}

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
mod lane;
mod media;
mod messages;
mod oauth;
mod sequences;
mod sessions;
mod templates;
mod webhooks;
mod whatsapp_ids;

type Tx = sqlx::Transaction<'static, Postgres>;

/// Every store port over PostgreSQL, with versioned migrations applied on
/// open and an event outbox.
///
/// ```no_run
/// # async fn f() -> crm_core::Result<()> {
/// let store = crm_storage::PgStore::connect("postgres://crm@127.0.0.1/crm").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Single statements on connections returned without a ping (see `lane`).
    lane: std::sync::Arc<lane::Lane>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db?…`) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_pool(url, Self::DEFAULT_POOL_SIZE).await
    }

    /// The pool size [`PgStore::connect`] uses.
    pub const DEFAULT_POOL_SIZE: u32 = crate::DEFAULT_POOL_SIZE;

    /// [`PgStore::connect`] with at most `size` pooled connections (at least
    /// one), and as many again on the fast lane: up to `2 × size`
    /// connections to the server.
    pub async fn connect_with_pool(url: &str, size: u32) -> Result<Self> {
        let options = parse_url(url)?;
        Self::open(options, size.max(1)).await
    }

    /// Connects to `url` using `schema` (created when missing) for every table:
    /// each connection's `search_path` is set to it. Lets several stores (for
    /// example parallel tests) share one database. `schema` must be 1–63 of
    /// `a-z`, `0-9`, `_`, not starting with a digit.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self> {
        let ok = (1..=63).contains(&schema.len())
            && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(Error::Config {
                message: "schema must be 1 to 63 of a-z, 0-9, _ (not starting with a digit)".into(),
            });
        }
        let options = parse_url(url)?;
        let mut conn =
            sqlx::PgConnection::connect_with(&options).await.map_err(|e| db("connecting to PostgreSQL", e))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")))
            .execute(&mut conn)
            .await
            .map_err(|e| db("creating a schema", e))?;
        conn.close().await.map_err(|e| db("closing a connection", e))?;
        Self::open(options.options([("search_path", schema)]), Self::DEFAULT_POOL_SIZE).await
    }

    async fn open(options: PgConnectOptions, size: u32) -> Result<Self> {
        // Every statement of the store is short; JIT compiling one whose
        // estimate crosses `jit_above_cost` (an import batch fanning out to
        // the never-analyzed outbox_consumers table) took ~600 ms of a ~15 ms
        // statement.
        let options = options.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings a connection when it goes back to the pool (that
            // catches a broken one); its default ping when one is taken out
            // again is a second round trip per statement. A connection that
            // died while idle fails its next statement (a 503) and is then
            // closed by the release ping.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| db("connecting to PostgreSQL", e))?;
        Self::from_pool(pool).await
    }

    /// Wraps an existing pool and runs the migrations on it.
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        // As many lane connections as the pool may hold, made alike.
        let options = (*pool.connect_options()).clone();
        let (size, wait) = (pool.options().get_max_connections(), pool.options().get_acquire_timeout());
        let lane = lane::Lane::new(options, usize::try_from(size).unwrap_or(10), wait);
        let store = Self { pool, lane: std::sync::Arc::new(lane) };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (idempotent; the constructors already do).
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await.map_err(migrate)
    }

    /// Leases a fast-lane connection for one statement of the workers'
    /// bookkeeping, which commits without waiting for the write-ahead log to
    /// reach the disk (PostgreSQL's asynchronous commit): the statement sets
    /// it for its own transaction with the condition
    /// `set_config('synchronous_commit', 'off', true) IS NOT NULL`, true for
    /// every row it writes (a statement that writes nothing has nothing to
    /// flush). A server crash can lose the last fraction of a second of such
    /// commits — but never a later commit without the earlier ones, since the
    /// log is replayed in order. So it is used only where losing the write
    /// makes work run again, never lose it: removing a finished outbox item
    /// or job (the handler's own writes were committed before, durably; a
    /// lost removal runs the handler again, which the at-least-once contract
    /// already allows), giving an item back, and the webhook deliverer's
    /// records (a delivery and its job made from an outbox item that is
    /// still queued until its removal, later in the log; an attempt's record
    /// before its job's removal). Writes a caller was told are stored (an
    /// API request's) never go through it.
    pub(crate) async fn bookkeeping(&self, what: &'static str) -> Result<lane::Lease<'_>> {
        self.lane.lease().await.map_err(|e| db(what, e))
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write(&self) -> Result<Tx> {
        self.pool.begin().await.map_err(|e| db("starting a transaction", e))
    }
}

fn parse_url(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|_| Error::Config { message: "invalid PostgreSQL database URL".into() })
}

/// Commits a write transaction.
async fn commit(tx: Tx) -> Result<()> {
    tx.commit().await.map_err(|e| db("committing", e))
}

/// PostgreSQL's storage choices: `timestamptz`, `jsonb`, `text[]`, a
/// `smallint` lead score.
impl Columns for PgRow {
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
        get::<i16, _>(self, col).map(i64::from)
    }

    fn time(&self, col: &'static str) -> Result<DateTime<Utc>> {
        get(self, col)
    }

    fn opt_time(&self, col: &'static str) -> Result<Option<DateTime<Utc>>> {
        get(self, col)
    }

    fn json(&self, col: &'static str) -> Result<serde_json::Value> {
        get(self, col)
    }

    fn opt_json(&self, col: &'static str) -> Result<Option<serde_json::Value>> {
        get(self, col)
    }

    fn text_list(&self, col: &'static str) -> Result<Vec<String>> {
        get(self, col)
    }
}

/// Appends one event and queues it for every registered consumer whose
/// filter it passes, in one statement.
async fn append(tx: &mut Tx, e: &Event) -> Result<()> {
    sqlx::query(concat!(
        "WITH e AS (INSERT INTO events (id, account_id, type, payload, occurred_at) \
                    VALUES ($1, $2, $3, $4, $5) RETURNING id, type) \
         INSERT INTO outbox (consumer, event_id) SELECT c.name, e.id FROM outbox_consumers c CROSS JOIN e \
         WHERE ",
        consumer_wants!()
    ))
    .bind(e.id.into_uuid())
    .bind(e.account_id.into_uuid())
    .bind(e.event_type.as_str())
    .bind(&e.payload)
    .bind(e.occurred_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| db("appending an event", e))?;
    Ok(())
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

impl Fetch for PgStore {
    type Row = PgRow;

    async fn fetch_optional(&self, what: &'static str, sql: &'static str, args: Vec<Arg>) -> Result<Option<PgRow>> {
        let mut conn = self.lane.lease().await.map_err(|e| db(what, e))?;
        let found = bind(sqlx::query(sql), args).fetch_optional(&mut *conn).await;
        conn.settle(found).map_err(|e| db(what, e))
    }

    async fn fetch_all(&self, what: &'static str, sql: &'static str, args: Vec<Arg>) -> Result<Vec<PgRow>> {
        let mut conn = self.lane.lease().await.map_err(|e| db(what, e))?;
        let rows = bind(sqlx::query(sql), args).fetch_all(&mut *conn).await;
        conn.settle(rows).map_err(|e| db(what, e))
    }
}

/// Binds the arguments of a shared read, in order.
fn bind(query: Query<'static, Postgres, PgArguments>, args: Vec<Arg>) -> Query<'static, Postgres, PgArguments> {
    args.into_iter().fold(query, |q, arg| match arg {
        Arg::Uuid(v) => q.bind(v),
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::OptUuid(v) => q.bind(v),
    })
}

#[async_trait]
impl HealthCheck for PgStore {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Health {
        probe(sqlx::query("SELECT 1").execute(&self.pool)).await
    }
}

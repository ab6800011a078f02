//! Backend-neutral pieces shared by the SQL stores: the [`Columns`] trait the
//! row decoders are written against, the [`Fetch`] trait the shared reads run
//! through, one module per aggregate with its row decoding, its reads and any
//! other dialect-free logic, and time, JSON and health-probe helpers.
//!
//! Each dialect implements [`Columns`] for its row type and [`Fetch`] for its
//! store, so its storage choices (SQLite: INTEGER microseconds, JSON as TEXT;
//! PostgreSQL: `timestamptz`, `jsonb`, `text[]`) live in those impls; what
//! stays in a dialect's aggregate module is the SQL the dialects really
//! write differently (writes, search, import, outbox claims).

use chrono::{DateTime, Utc};
use crm_core::{Error, Health, Result};
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

use crate::error::{corrupt, db};

pub(crate) mod accounts;
pub(crate) mod assistant;
pub(crate) mod automations;
pub(crate) mod billing;
pub(crate) mod campaigns;
pub(crate) mod channels;
pub(crate) mod connections;
pub(crate) mod contacts;
pub(crate) mod events;
pub(crate) mod groups;
pub(crate) mod idempotency;
pub(crate) mod inbox;
pub(crate) mod jobs;
pub(crate) mod media;
pub(crate) mod messages;
pub(crate) mod oauth;
pub(crate) mod sequences;
pub(crate) mod sessions;
pub(crate) mod templates;
pub(crate) mod webhooks;
pub(crate) mod whatsapp_ids;

/// Rows per multi-row statement in batch writes.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const BATCH: usize = 500;

/// How long a health probe may take.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// One result row, read column by column in the store's dialect.
///
/// The `*_row` decoders of every aggregate take `&impl Columns`, so they are
/// written once for both SQL stores; a value that is stored but does not
/// decode is an [`Error::Storage`] naming its column.
pub(crate) trait Columns {
    /// A `uuid` (PostgreSQL) or 16-byte BLOB (SQLite) column.
    fn uuid(&self, col: &'static str) -> Result<Uuid>;
    /// A nullable id column.
    fn opt_uuid(&self, col: &'static str) -> Result<Option<Uuid>>;
    /// A `boolean` (PostgreSQL) or INTEGER 0/1 (SQLite) column.
    fn flag(&self, col: &'static str) -> Result<bool>;
    /// A text column.
    fn text(&self, col: &'static str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &'static str) -> Result<Option<String>>;
    /// A `bigint` (PostgreSQL) or INTEGER (SQLite) column.
    fn int(&self, col: &'static str) -> Result<i64>;
    /// A `smallint` (PostgreSQL) or INTEGER (SQLite) column, widened.
    /// A 64-bit integer or NULL.
    fn opt_int(&self, col: &'static str) -> Result<Option<i64>>;
    fn small_int(&self, col: &'static str) -> Result<i64>;
    /// A `timestamptz` (PostgreSQL) or INTEGER microseconds (SQLite) column.
    fn time(&self, col: &'static str) -> Result<DateTime<Utc>>;
    /// A nullable time column.
    fn opt_time(&self, col: &'static str) -> Result<Option<DateTime<Utc>>>;
    /// A `jsonb` (PostgreSQL) or JSON TEXT (SQLite) column.
    fn json(&self, col: &'static str) -> Result<serde_json::Value>;
    /// A nullable JSON column.
    fn opt_json(&self, col: &'static str) -> Result<Option<serde_json::Value>>;
    /// A `text[]` (PostgreSQL) or JSON array TEXT (SQLite) column.
    fn text_list(&self, col: &'static str) -> Result<Vec<String>>;

    /// A text column parsed into a domain value; one that does not parse is corrupt.
    fn parsed<T>(&self, col: &'static str, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        stored(col, parse(&self.text(col)?))
    }
}

/// A value bound to a placeholder of a shared statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// An id.
    Uuid(Uuid),
    /// A text value.
    Text(String),
    /// A text value or NULL (an optional filter).
    OptText(Option<String>),
    /// An integer (a limit, a count).
    Int(i64),
    /// An id or NULL (an optional filter).
    OptUuid(Option<Uuid>),
}

impl From<Uuid> for Arg {
    fn from(v: Uuid) -> Self {
        Self::Uuid(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Self::OptText(v.map(str::to_owned))
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

/// A SQL store running a read written once for both dialects: `sql` numbers
/// its placeholders `$1, $2, …` (PostgreSQL's syntax, which sqlx also binds
/// by number on SQLite), `args` fills them in order, and `what` names the
/// operation in a failure.
pub(crate) trait Fetch: Sync {
    /// The dialect's row.
    type Row: Columns + Send;

    /// At most one row.
    fn fetch_optional(
        &self,
        what: &'static str,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Option<Self::Row>>> + Send;

    /// Every row.
    fn fetch_all(
        &self,
        what: &'static str,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
}

/// The arguments of a page read: the cursor (or the nil id) and one row more
/// than the page holds, to tell whether another page follows.
pub(crate) fn page_args(page: &crm_core::PageRequest) -> [Arg; 2] {
    [Arg::Uuid(page.after.unwrap_or_default()), Arg::Int(i64::from(page.limit) + 1)]
}

/// A queue statistics row (an outbox consumer's or a job kind's): the counts
/// `depth`, `due` and `dead`, and the time `oldest_due_at`.
pub(crate) fn queue_stats_row(r: &impl Columns) -> Result<crm_core::QueueStats> {
    let count = |col| r.int(col).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(crm_core::QueueStats {
        depth: count("depth")?,
        due: count("due")?,
        oldest_due_at: r.opt_time("oldest_due_at")?,
        dead: count("dead")?,
    })
}

/// Reads column `col` of any sqlx row as `T`.
pub(crate) fn get<'r, T, R>(r: &'r R, col: &'static str) -> Result<T>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    r.try_get(col).map_err(|e| db("reading a row", e))
}

/// The store's health: `probe` (a `SELECT 1`) answering within [`HEALTH_TIMEOUT`].
pub(crate) async fn probe<T>(probe: impl Future<Output = std::result::Result<T, sqlx::Error>>) -> Health {
    Health::measure(async {
        match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(db("health probe", e).to_string()),
            Err(_) => Err(format!("no answer within {HEALTH_TIMEOUT:?}")),
        }
    })
    .await
}

/// A duration in microseconds, capped at 100 years (so deadlines never overflow).
pub(crate) fn duration_micros(d: Duration) -> i64 {
    const CAP: u128 = 100 * 365 * 24 * 3600 * 1_000_000;
    i64::try_from(d.as_micros().min(CAP)).unwrap_or(i64::MAX)
}

/// Parses stored JSON into `T`.
pub(crate) fn json_from<T: serde::de::DeserializeOwned>(column: &'static str, v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| corrupt(column, e))
}

/// Serializes a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(column: &'static str, v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::validation(column, format!("cannot be serialized: {e}")))
}

/// Maps a domain parse failure of a stored value.
pub(crate) fn stored<T>(column: &'static str, r: Result<T>) -> Result<T> {
    r.map_err(|e| corrupt(column, e))
}

/// Microseconds since the epoch (SQLite stores times this way).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The time `m` microseconds after the epoch.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn from_micros(column: &'static str, m: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(m).ok_or_else(|| corrupt(column, "timestamp out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_cap() {
        assert_eq!(duration_micros(Duration::from_millis(2)), 2000);
        assert!(duration_micros(Duration::MAX) > 0);
    }
}

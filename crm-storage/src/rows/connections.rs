//! Connections: row decoding and the reads both dialects share.

use crm_core::domain::connection::{Connection, ConnectionKind, ConnectionStatus};
use crm_core::secrets::SealedSecret;
use crm_core::{AccountId, Error, Result};

use super::{Columns, Fetch, stored};

/// A `connections` row.
pub(crate) fn connection_row(r: &impl Columns) -> Result<Connection> {
    Ok(Connection {
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        provider: r.parsed("provider", ConnectionKind::parse)?,
        settings: r.json("settings")?,
        credentials: r.opt_text("credentials")?.map(|t| stored("credentials", SealedSecret::decode(&t))).transpose()?,
        status: r.parsed("status", ConnectionStatus::parse)?,
        last_error: r.opt_text("last_error")?,
        last_success_at: r.opt_time("last_success_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// [`ConnectionStore::get_connection`](crm_core::ConnectionStore::get_connection).
pub(crate) async fn get_connection(
    db: &impl Fetch,
    account: AccountId,
    provider: &ConnectionKind,
) -> Result<Connection> {
    let sql = "SELECT * FROM connections WHERE account_id = $1 AND provider = $2";
    let row =
        db.fetch_optional("reading a connection", sql, vec![account.into_uuid().into(), provider.as_str().into()]);
    row.await?.map(|r| connection_row(&r)).transpose()?.ok_or(Error::not_found("connection"))
}

/// [`ConnectionStore::list_connections`](crm_core::ConnectionStore::list_connections).
pub(crate) async fn list_connections(db: &impl Fetch, account: AccountId) -> Result<Vec<Connection>> {
    let sql = "SELECT * FROM connections WHERE account_id = $1 ORDER BY provider";
    let rows = db.fetch_all("listing connections", sql, vec![account.into_uuid().into()]);
    rows.await?.iter().map(connection_row).collect()
}

/// [`ConnectionStore::connection_counts`](crm_core::ConnectionStore::connection_counts).
pub(crate) async fn connection_counts(db: &impl Fetch) -> Result<Vec<(ConnectionKind, ConnectionStatus, u64)>> {
    let sql =
        "SELECT provider, status, COUNT(*) AS n FROM connections GROUP BY provider, status ORDER BY provider, status";
    let rows = db.fetch_all("counting connections", sql, Vec::new()).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.parsed("provider", ConnectionKind::parse)?,
                r.parsed("status", ConnectionStatus::parse)?,
                u64::try_from(r.int("n")?).unwrap_or(0),
            ))
        })
        .collect()
}

/// The UPSERT of [`ConnectionStore::put_connection`](crm_core::ConnectionStore::put_connection):
/// `$1` account, `$2` provider, `$3` settings, `$4` credentials, `$5`
/// status, `$6` last error, `$7` last success, `$8` created, `$9` updated.
pub(crate) const PUT_CONNECTION: &str = "INSERT INTO connections (account_id, provider, settings, credentials, \
     status, last_error, last_success_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (account_id, provider) DO UPDATE SET settings = excluded.settings, \
     credentials = excluded.credentials, status = excluded.status, last_error = excluded.last_error, \
     last_success_at = excluded.last_success_at, updated_at = excluded.updated_at RETURNING *";

/// The success UPDATE of `record_connection_result`: `$1` time, `$2` account, `$3` provider.
pub(crate) const CONNECTION_SUCCEEDED: &str = "UPDATE connections SET status = 'connected', last_error = NULL, \
     last_success_at = $1 WHERE account_id = $2 AND provider = $3 AND status <> 'disconnected'";

/// The failure UPDATE of `record_connection_result`: `$1` reason, `$2` account, `$3` provider.
pub(crate) const CONNECTION_FAILED: &str = "UPDATE connections SET status = 'error', last_error = $1 \
     WHERE account_id = $2 AND provider = $3 AND status <> 'disconnected'";

/// Whether the connection exists: `$1` account, `$2` provider.
pub(crate) const CONNECTION_EXISTS: &str = "SELECT 1 FROM connections WHERE account_id = $1 AND provider = $2";

/// The DELETE: `$1` account, `$2` provider.
pub(crate) const DELETE_CONNECTION: &str = "DELETE FROM connections WHERE account_id = $1 AND provider = $2";

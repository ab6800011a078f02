//! Login sessions: row decoding and the reads both dialects share.

use chrono::{DateTime, Utc};
use crm_core::{AccountId, Result, Role, Session, SessionId, UserId};

use super::{Columns, Fetch};

/// A `sessions` row.
pub(crate) fn session_row(r: &impl Columns) -> Result<Session> {
    Ok(Session {
        id: SessionId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        user_id: UserId::from_uuid(r.uuid("user_id")?),
        role: r.parsed("role", Role::parse)?,
        prefix: r.text("prefix")?,
        hash: r.text("hash")?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

/// [`SessionStore::find_session_by_prefix`](crm_core::SessionStore::find_session_by_prefix).
pub(crate) async fn find_session_by_prefix(db: &impl Fetch, prefix: &str) -> Result<Option<Session>> {
    let row = db.fetch_optional("reading a session", "SELECT * FROM sessions WHERE prefix = $1", vec![prefix.into()]);
    row.await?.map(|r| session_row(&r)).transpose()
}

/// [`SessionStore::list_sessions`](crm_core::SessionStore::list_sessions):
/// the user's unended sessions, newest first, those expired by `now` left
/// out (a user has few; the expired ones are deleted by the cleanup).
pub(crate) async fn list_sessions(
    db: &impl Fetch,
    account: AccountId,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<Vec<Session>> {
    let sql = "SELECT * FROM sessions WHERE account_id = $1 AND user_id = $2 AND revoked_at IS NULL ORDER BY id DESC";
    let rows = db.fetch_all("listing sessions", sql, vec![account.into_uuid().into(), user.into_uuid().into()]).await?;
    let sessions = rows.iter().map(session_row).collect::<Result<Vec<_>>>()?;
    Ok(sessions.into_iter().filter(|s| s.expires_at > now).collect())
}

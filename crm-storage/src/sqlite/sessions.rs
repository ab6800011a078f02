//! [`SessionStore`] for [`SqliteStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crm_core::{AccountId, Error, Result, Session, SessionId, SessionStore, UserId};

use super::{SqliteStore, commit, opt_micros};
use crate::error::db;
use crate::rows::micros;
use crate::rows::sessions::session_row;

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &Session) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, account_id, user_id, role, prefix, hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(session.id.into_uuid())
        .bind(session.account_id.into_uuid())
        .bind(session.user_id.into_uuid())
        .bind(session.role.as_str())
        .bind(&session.prefix)
        .bind(&session.hash)
        .bind(micros(session.created_at))
        .bind(micros(session.expires_at))
        .bind(opt_micros(session.revoked_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("creating a session", e))?;
        commit(tx).await
    }

    async fn find_session_by_prefix(&self, prefix: &str) -> Result<Option<Session>> {
        crate::rows::sessions::find_session_by_prefix(self, prefix).await
    }

    async fn list_sessions(&self, account: AccountId, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>> {
        crate::rows::sessions::list_sessions(self, account, user, now).await
    }

    async fn end_session(&self, account: AccountId, user: UserId, id: SessionId, at: DateTime<Utc>) -> Result<Session> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) \
             WHERE id = $2 AND account_id = $3 AND user_id = $4 RETURNING *",
        )
        .bind(micros(at))
        .bind(id.into_uuid())
        .bind(account.into_uuid())
        .bind(user.into_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("ending a session", e))?;
        commit(tx).await?;
        row.map(|r| session_row(&r)).transpose()?.ok_or(Error::not_found("session"))
    }

    async fn delete_expired_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(micros(before))
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting expired sessions", e))?;
        commit(tx).await?;
        Ok(done.rows_affected())
    }
}

//! [`SessionStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::{AccountId, Error, Result, Session, SessionId, SessionStore, UserId};

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &Session) -> Result<()> {
        let mut s = self.lock();
        if s.sessions.values().any(|x| x.prefix == session.prefix) || s.sessions.contains_key(&session.id) {
            return Err(Error::conflict("session", "prefix already exists"));
        }
        s.sessions.insert(session.id, session.clone());
        Ok(())
    }

    async fn find_session_by_prefix(&self, prefix: &str) -> Result<Option<Session>> {
        Ok(self.lock().sessions.values().find(|x| x.prefix == prefix).cloned())
    }

    async fn list_sessions(&self, account: AccountId, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>> {
        let s = self.lock();
        let mut out: Vec<Session> = s
            .sessions
            .values()
            .filter(|x| x.account_id == account && x.user_id == user && x.revoked_at.is_none() && x.expires_at > now)
            .cloned()
            .collect();
        out.reverse();
        Ok(out)
    }

    async fn end_session(&self, account: AccountId, user: UserId, id: SessionId, at: DateTime<Utc>) -> Result<Session> {
        let mut s = self.lock();
        let session = s
            .sessions
            .get_mut(&id)
            .filter(|x| x.account_id == account && x.user_id == user)
            .ok_or(Error::not_found("session"))?;
        session.revoked_at.get_or_insert(at);
        Ok(session.clone())
    }

    async fn delete_expired_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut s = self.lock();
        let n = s.sessions.len();
        s.sessions.retain(|_, x| x.expires_at >= before && x.revoked_at.is_none_or(|r| r >= before));
        Ok((n - s.sessions.len()) as u64)
    }
}

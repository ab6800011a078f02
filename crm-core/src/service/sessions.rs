//! Dashboard login sessions: start, authenticate, list, end, clean up.

use chrono::{DateTime, Utc};

use super::Crm;
use crate::{AccountId, ApiKeyToken, Error, Result, Session, SessionId, User, UserId};

/// The longest a key created with a login session may live, in days: a
/// short-lived session cannot mint a key that never expires.
pub const SESSION_MINTED_KEY_MAX_DAYS: i64 = 90;

impl Crm {
    /// Starts a login session for `user` until `expires_at` (after deleting
    /// every expired or ended session, so they never pile up). The token is
    /// returned once and never stored.
    pub async fn start_session(&self, user: &User, expires_at: DateTime<Utc>) -> Result<(Session, ApiKeyToken)> {
        let now = self.now();
        self.store.delete_expired_sessions(now).await?;
        let (session, token) = Session::start(user, expires_at, now)?;
        self.store.create_session(&session).await?;
        Ok((session, token))
    }

    /// The session a presented `crs_…` token belongs to, if it is live now;
    /// [`Error::Unauthorized`] otherwise.
    pub async fn authenticate_session(&self, presented: &str) -> Result<Session> {
        let prefix = ApiKeyToken::session_prefix_of(presented).ok_or(Error::Unauthorized)?;
        let session = self.store.find_session_by_prefix(prefix).await?.ok_or(Error::Unauthorized)?;
        if session.verify(presented, self.now()) { Ok(session) } else { Err(Error::Unauthorized) }
    }

    /// The live sessions of `user`, newest first.
    pub async fn list_sessions(&self, account: AccountId, user: UserId) -> Result<Vec<Session>> {
        self.store.list_sessions(account, user, self.now()).await
    }

    /// Ends session `id` of `user` (logout); [`Error::NotFound`] when it is
    /// not theirs.
    pub async fn end_session(&self, account: AccountId, user: UserId, id: SessionId) -> Result<Session> {
        self.store.end_session(account, user, id, self.now()).await
    }

    /// The expiry of a key created with `session`: `requested`, or the
    /// longest allowed ([`SESSION_MINTED_KEY_MAX_DAYS`]) when none is given.
    /// [`Error::Validation`] on `expires_at` past that.
    pub fn session_key_expiry(&self, requested: Option<DateTime<Utc>>) -> Result<DateTime<Utc>> {
        let latest = self.now() + chrono::Duration::days(SESSION_MINTED_KEY_MAX_DAYS);
        match requested {
            Some(at) if at > latest => Err(Error::validation(
                "expires_at",
                format!("a key created with a login session expires within {SESSION_MINTED_KEY_MAX_DAYS} days"),
            )),
            Some(at) => Ok(at),
            None => Ok(latest),
        }
    }
}

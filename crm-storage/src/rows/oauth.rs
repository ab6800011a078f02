//! OAuth grants, authorizations in flight and external links: row
//! decoding, the statements both dialects share and the shared reads.

use crm_core::ports::oauth::{ExternalLink, GrantCount, GrantStatus, OAuthGrant, OAuthProvider, PendingAuthorization};
use crm_core::secrets::SealedSecret;
use crm_core::{AccountId, ContactId, Error, Result};

use super::{Arg, Columns, Fetch};

fn sealed(col: &'static str, r: &impl Columns) -> Result<SealedSecret> {
    r.parsed(col, SealedSecret::decode)
}

/// An `oauth_grants` row.
pub(crate) fn grant_row(r: &impl Columns) -> Result<OAuthGrant> {
    Ok(OAuthGrant {
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        provider: r.parsed("provider", OAuthProvider::parse)?,
        status: r.parsed("status", GrantStatus::parse)?,
        scopes: r.text_list("scopes")?,
        tokens: sealed("tokens", r)?,
        expires_at: r.opt_time("expires_at")?,
        instance_url: r.opt_text("instance_url")?,
        last_error: r.opt_text("last_error")?,
        connected_at: r.time("connected_at")?,
        refreshed_at: r.opt_time("refreshed_at")?,
    })
}

/// An `oauth_pending` row.
pub(crate) fn pending_row(r: &impl Columns) -> Result<PendingAuthorization> {
    Ok(PendingAuthorization {
        state_hash: r.text("state_hash")?,
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        provider: r.parsed("provider", OAuthProvider::parse)?,
        principal: r.text("principal")?,
        verifier: sealed("verifier", r)?,
        redirect_uri: r.text("redirect_uri")?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
    })
}

/// An `external_links` row.
pub(crate) fn link_row(r: &impl Columns) -> Result<ExternalLink> {
    Ok(ExternalLink {
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        contact_id: ContactId::from_uuid(r.uuid("contact_id")?),
        system: r.text("system")?,
        object: r.text("object")?,
        external_id: r.text("external_id")?,
        synced_at: r.time("synced_at")?,
    })
}

/// The INSERT of a pending authorization: `$1` state hash, `$2` account,
/// `$3` provider, `$4` principal, `$5` sealed verifier, `$6` redirect URI,
/// `$7` created, `$8` expires.
pub(crate) const INSERT_PENDING: &str = "INSERT INTO oauth_pending (state_hash, account_id, provider, principal, \
     verifier, redirect_uri, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Takes a pending authorization (`$1` the state hash): one statement, so
/// two takers never both get it.
pub(crate) const TAKE_PENDING: &str = "DELETE FROM oauth_pending WHERE state_hash = $1 RETURNING *";

/// Deletes authorizations expired before `$1`.
pub(crate) const DELETE_EXPIRED: &str = "DELETE FROM oauth_pending WHERE expires_at < $1";

/// The upsert of a grant: `$1` account, `$2` provider, `$3` status, `$4`
/// scopes, `$5` sealed tokens, `$6` expires, `$7` instance URL, `$8` last
/// error, `$9` connected, `$10` refreshed.
pub(crate) const PUT_GRANT: &str = "INSERT INTO oauth_grants (account_id, provider, status, scopes, tokens, \
     expires_at, instance_url, last_error, connected_at, refreshed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (account_id, provider) DO UPDATE SET status = excluded.status, scopes = excluded.scopes, \
     tokens = excluded.tokens, expires_at = excluded.expires_at, instance_url = excluded.instance_url, \
     last_error = excluded.last_error, connected_at = excluded.connected_at, refreshed_at = excluded.refreshed_at";

/// The upsert of a link: `$1` account, `$2` contact, `$3` system, `$4`
/// object, `$5` external id, `$6` synced.
pub(crate) const PUT_LINK: &str = "INSERT INTO external_links (account_id, contact_id, system, object, external_id, \
     synced_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, contact_id, system) DO UPDATE SET \
     object = excluded.object, external_id = excluded.external_id, synced_at = excluded.synced_at";

/// A unique violation of a link is another contact holding the external id.
pub(crate) fn link_conflict(e: Error) -> Error {
    match e {
        Error::Conflict { .. } => Error::conflict("external link", "another contact holds this external id"),
        e => e,
    }
}

/// A unique violation of a pending authorization is a repeated state.
pub(crate) fn pending_conflict(e: Error) -> Error {
    match e {
        Error::Conflict { .. } => Error::conflict("oauth state", "already exists"),
        e => e,
    }
}

/// [`OAuthStore::get_oauth_grant`](crm_core::OAuthStore::get_oauth_grant).
pub(crate) async fn get_grant(
    db: &impl Fetch,
    account: AccountId,
    provider: OAuthProvider,
) -> Result<Option<OAuthGrant>> {
    let sql = "SELECT * FROM oauth_grants WHERE account_id = $1 AND provider = $2";
    let row =
        db.fetch_optional("reading an oauth grant", sql, vec![account.into_uuid().into(), provider.as_str().into()]);
    row.await?.map(|r| grant_row(&r)).transpose()
}

/// [`OAuthStore::list_oauth_grants`](crm_core::OAuthStore::list_oauth_grants).
pub(crate) async fn list_grants(db: &impl Fetch, account: AccountId) -> Result<Vec<OAuthGrant>> {
    let sql = "SELECT * FROM oauth_grants WHERE account_id = $1 ORDER BY provider";
    let rows = db.fetch_all("listing oauth grants", sql, vec![account.into_uuid().into()]);
    rows.await?.iter().map(grant_row).collect()
}

/// [`OAuthStore::count_oauth_grants`](crm_core::OAuthStore::count_oauth_grants).
pub(crate) async fn count_grants(db: &impl Fetch) -> Result<Vec<GrantCount>> {
    let sql = "SELECT provider, status, COUNT(*) AS n FROM oauth_grants GROUP BY provider, status \
               ORDER BY provider, status";
    let rows = db.fetch_all("counting oauth grants", sql, Vec::new()).await?;
    rows.iter()
        .map(|r| {
            Ok(GrantCount {
                provider: r.parsed("provider", OAuthProvider::parse)?,
                status: r.parsed("status", GrantStatus::parse)?,
                count: u64::try_from(r.int("n")?).unwrap_or(0),
            })
        })
        .collect()
}

/// [`OAuthStore::get_external_link`](crm_core::OAuthStore::get_external_link).
pub(crate) async fn get_link(
    db: &impl Fetch,
    account: AccountId,
    contact: ContactId,
    system: &str,
) -> Result<Option<ExternalLink>> {
    let sql = "SELECT * FROM external_links WHERE account_id = $1 AND contact_id = $2 AND system = $3";
    let args: Vec<Arg> = vec![account.into_uuid().into(), contact.into_uuid().into(), system.into()];
    db.fetch_optional("reading an external link", sql, args).await?.map(|r| link_row(&r)).transpose()
}

/// [`OAuthStore::find_external_link`](crm_core::OAuthStore::find_external_link).
pub(crate) async fn find_link(
    db: &impl Fetch,
    account: AccountId,
    system: &str,
    external_id: &str,
) -> Result<Option<ExternalLink>> {
    let sql = "SELECT * FROM external_links WHERE account_id = $1 AND system = $2 AND external_id = $3";
    let args: Vec<Arg> = vec![account.into_uuid().into(), system.into(), external_id.into()];
    db.fetch_optional("finding an external link", sql, args).await?.map(|r| link_row(&r)).transpose()
}

/// Implements [`OAuthStore`](crm_core::OAuthStore) for a SQL store whose
/// module has `write()` and `commit`, given how it binds a time (`$time`)
/// and a list of text (`$list`): the statements are the same in both dialects.
macro_rules! sql_oauth_store {
    ($store:ty, $time:expr, $list:expr) => {
        #[async_trait::async_trait]
        impl crm_core::OAuthStore for $store {
            async fn insert_pending_authorization(
                &self,
                p: &crm_core::ports::oauth::PendingAuthorization,
            ) -> crm_core::Result<()> {
                crm_core::ports::oauth::check_pending(p)?;
                let mut tx = self.write().await?;
                sqlx::query(crate::rows::oauth::INSERT_PENDING)
                    .bind(&p.state_hash)
                    .bind(p.account_id.into_uuid())
                    .bind(p.provider.as_str())
                    .bind(&p.principal)
                    .bind(p.verifier.encode())
                    .bind(&p.redirect_uri)
                    .bind($time(p.created_at))
                    .bind($time(p.expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::rows::oauth::pending_conflict(crate::error::db("storing an oauth state", e)))?;
                commit(tx).await
            }

            async fn take_pending_authorization(
                &self,
                state_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> crm_core::Result<Option<crm_core::ports::oauth::PendingAuthorization>> {
                let mut tx = self.write().await?;
                let row = sqlx::query(crate::rows::oauth::TAKE_PENDING)
                    .bind(state_hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| crate::error::db("taking an oauth state", e))?;
                commit(tx).await?;
                let pending = row.map(|r| crate::rows::oauth::pending_row(&r)).transpose()?;
                Ok(pending.filter(|p| p.expires_at > now))
            }

            async fn delete_expired_authorizations(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> crm_core::Result<u64> {
                let mut tx = self.write().await?;
                let done = sqlx::query(crate::rows::oauth::DELETE_EXPIRED)
                    .bind($time(before))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::error::db("deleting expired oauth states", e))?;
                commit(tx).await?;
                Ok(done.rows_affected())
            }

            async fn put_oauth_grant(&self, g: &crm_core::OAuthGrant) -> crm_core::Result<()> {
                let mut tx = self.write().await?;
                sqlx::query(crate::rows::oauth::PUT_GRANT)
                    .bind(g.account_id.into_uuid())
                    .bind(g.provider.as_str())
                    .bind(g.status.as_str())
                    .bind($list(&g.scopes)?)
                    .bind(g.tokens.encode())
                    .bind(g.expires_at.map($time))
                    .bind(g.instance_url.as_deref())
                    .bind(g.last_error.as_deref())
                    .bind($time(g.connected_at))
                    .bind(g.refreshed_at.map($time))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::error::db("storing an oauth grant", e))?;
                commit(tx).await
            }

            async fn get_oauth_grant(
                &self,
                account: crm_core::AccountId,
                provider: crm_core::OAuthProvider,
            ) -> crm_core::Result<Option<crm_core::OAuthGrant>> {
                crate::rows::oauth::get_grant(self, account, provider).await
            }

            async fn list_oauth_grants(
                &self,
                account: crm_core::AccountId,
            ) -> crm_core::Result<Vec<crm_core::OAuthGrant>> {
                crate::rows::oauth::list_grants(self, account).await
            }

            async fn delete_oauth_grant(
                &self,
                account: crm_core::AccountId,
                provider: crm_core::OAuthProvider,
            ) -> crm_core::Result<bool> {
                let mut tx = self.write().await?;
                let done = sqlx::query("DELETE FROM oauth_grants WHERE account_id = $1 AND provider = $2")
                    .bind(account.into_uuid())
                    .bind(provider.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::error::db("deleting an oauth grant", e))?;
                commit(tx).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn count_oauth_grants(&self) -> crm_core::Result<Vec<crm_core::ports::oauth::GrantCount>> {
                crate::rows::oauth::count_grants(self).await
            }

            async fn put_external_link(&self, l: &crm_core::ports::oauth::ExternalLink) -> crm_core::Result<()> {
                crm_core::ports::oauth::check_external_link(l)?;
                let mut tx = self.write().await?;
                sqlx::query(crate::rows::oauth::PUT_LINK)
                    .bind(l.account_id.into_uuid())
                    .bind(l.contact_id.into_uuid())
                    .bind(&l.system)
                    .bind(&l.object)
                    .bind(&l.external_id)
                    .bind($time(l.synced_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::rows::oauth::link_conflict(crate::error::db("storing an external link", e)))?;
                commit(tx).await
            }

            async fn get_external_link(
                &self,
                account: crm_core::AccountId,
                contact: crm_core::ContactId,
                system: &str,
            ) -> crm_core::Result<Option<crm_core::ports::oauth::ExternalLink>> {
                crate::rows::oauth::get_link(self, account, contact, system).await
            }

            async fn find_external_link(
                &self,
                account: crm_core::AccountId,
                system: &str,
                external_id: &str,
            ) -> crm_core::Result<Option<crm_core::ports::oauth::ExternalLink>> {
                crate::rows::oauth::find_link(self, account, system, external_id).await
            }
        }
    };
}
pub(crate) use sql_oauth_store;

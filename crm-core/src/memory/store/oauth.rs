//! [`OAuthStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use super::MemoryStore;
use crate::ports::oauth::{
    ExternalLink, GrantCount, OAuthGrant, OAuthProvider, OAuthStore, PendingAuthorization, check_external_link,
    check_pending,
};
use crate::{AccountId, ContactId, Error, Result};

/// Grants by (account, provider), authorizations by state hash, links by
/// (account, contact, system).
#[derive(Debug, Default)]
pub(super) struct OAuthState {
    grants: BTreeMap<(AccountId, OAuthProvider), OAuthGrant>,
    pending: BTreeMap<String, PendingAuthorization>,
    links: BTreeMap<(AccountId, ContactId, String), ExternalLink>,
}

impl OAuthState {
    /// Drops a deleted contact's links.
    pub(super) fn forget_contact(&mut self, contact: ContactId) {
        self.links.retain(|(_, c, _), _| *c != contact);
    }
}

#[async_trait]
impl OAuthStore for MemoryStore {
    async fn insert_pending_authorization(&self, pending: &PendingAuthorization) -> Result<()> {
        check_pending(pending)?;
        let mut s = self.lock();
        if s.oauth.pending.contains_key(&pending.state_hash) {
            return Err(Error::conflict("oauth state", "already exists"));
        }
        s.oauth.pending.insert(pending.state_hash.clone(), pending.clone());
        Ok(())
    }

    async fn take_pending_authorization(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingAuthorization>> {
        Ok(self.lock().oauth.pending.remove(state_hash).filter(|p| p.expires_at > now))
    }

    async fn delete_expired_authorizations(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut s = self.lock();
        let n = s.oauth.pending.len();
        s.oauth.pending.retain(|_, p| p.expires_at >= before);
        Ok((n - s.oauth.pending.len()) as u64)
    }

    async fn put_oauth_grant(&self, grant: &OAuthGrant) -> Result<()> {
        self.lock().oauth.grants.insert((grant.account_id, grant.provider), grant.clone());
        Ok(())
    }

    async fn get_oauth_grant(&self, account: AccountId, provider: OAuthProvider) -> Result<Option<OAuthGrant>> {
        Ok(self.lock().oauth.grants.get(&(account, provider)).cloned())
    }

    async fn list_oauth_grants(&self, account: AccountId) -> Result<Vec<OAuthGrant>> {
        let s = self.lock();
        Ok(s.oauth
            .grants
            .range((account, OAuthProvider::Google)..)
            .take_while(|(k, _)| k.0 == account)
            .map(|(_, g)| g.clone())
            .collect())
    }

    async fn delete_oauth_grant(&self, account: AccountId, provider: OAuthProvider) -> Result<bool> {
        Ok(self.lock().oauth.grants.remove(&(account, provider)).is_some())
    }

    async fn count_oauth_grants(&self) -> Result<Vec<GrantCount>> {
        let s = self.lock();
        let mut counts: BTreeMap<(OAuthProvider, &'static str), GrantCount> = BTreeMap::new();
        for g in s.oauth.grants.values() {
            counts
                .entry((g.provider, g.status.as_str()))
                .or_insert(GrantCount { provider: g.provider, status: g.status, count: 0 })
                .count += 1;
        }
        Ok(counts.into_values().collect())
    }

    async fn put_external_link(&self, link: &ExternalLink) -> Result<()> {
        check_external_link(link)?;
        let mut s = self.lock();
        let taken = s.oauth.links.values().any(|l| {
            l.account_id == link.account_id
                && l.system == link.system
                && l.external_id == link.external_id
                && l.contact_id != link.contact_id
        });
        if taken {
            return Err(Error::conflict("external link", "another contact holds this external id"));
        }
        s.oauth.links.insert((link.account_id, link.contact_id, link.system.clone()), link.clone());
        Ok(())
    }

    async fn get_external_link(
        &self,
        account: AccountId,
        contact: ContactId,
        system: &str,
    ) -> Result<Option<ExternalLink>> {
        Ok(self.lock().oauth.links.get(&(account, contact, system.to_owned())).cloned())
    }

    async fn find_external_link(
        &self,
        account: AccountId,
        system: &str,
        external_id: &str,
    ) -> Result<Option<ExternalLink>> {
        let s = self.lock();
        Ok(s.oauth
            .links
            .values()
            .find(|l| l.account_id == account && l.system == system && l.external_id == external_id)
            .cloned())
    }
}

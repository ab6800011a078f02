//! [`ConnectionStore`] for [`MemoryStore`].

use async_trait::async_trait;
use std::collections::BTreeMap;

use super::MemoryStore;
use crate::domain::connection::{Connection, ConnectionKind, ConnectionResult, ConnectionStatus, check_settings};
use crate::ports::connections::ConnectionStore;
use crate::ports::store::check_event_account;
use crate::{AccountId, Error, Event, Result};

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn put_connection(&self, connection: &Connection, event: &Event) -> Result<Connection> {
        check_event_account(connection.account_id, event)?;
        check_settings(&connection.settings)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let key = (connection.account_id, connection.provider.clone());
        let mut stored = connection.clone();
        if let Some(old) = s.connections.get(&key) {
            stored.created_at = old.created_at;
        }
        s.connections.insert(key, stored.clone());
        s.append(event);
        Ok(stored)
    }

    async fn get_connection(&self, account: AccountId, provider: &ConnectionKind) -> Result<Connection> {
        self.lock().connections.get(&(account, provider.clone())).cloned().ok_or(Error::not_found("connection"))
    }

    async fn list_connections(&self, account: AccountId) -> Result<Vec<Connection>> {
        let s = self.lock();
        Ok(s.connections
            .range((account, ConnectionKind::parse("0")?)..)
            .take_while(|(k, _)| k.0 == account)
            .map(|(_, c)| c.clone())
            .collect())
    }

    async fn delete_connection(&self, account: AccountId, provider: &ConnectionKind, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.connections.remove(&(account, provider.clone())).ok_or(Error::not_found("connection"))?;
        s.append(event);
        Ok(())
    }

    async fn record_connection_result(
        &self,
        account: AccountId,
        provider: &ConnectionKind,
        result: &ConnectionResult,
    ) -> Result<()> {
        let mut s = self.lock();
        let c = s.connections.get_mut(&(account, provider.clone())).ok_or(Error::not_found("connection"))?;
        if c.status == ConnectionStatus::Disconnected {
            return Ok(());
        }
        match result {
            ConnectionResult::Success(at) => {
                c.status = ConnectionStatus::Connected;
                c.last_error = None;
                c.last_success_at = Some(*at);
            }
            ConnectionResult::Failure(reason) => {
                c.status = ConnectionStatus::Error;
                c.last_error = Some(reason.clone());
            }
        }
        Ok(())
    }

    async fn record_connection_event(
        &self,
        account: AccountId,
        provider: &ConnectionKind,
        event: &Event,
    ) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        if !s.connections.contains_key(&(account, provider.clone())) {
            return Err(Error::not_found("connection"));
        }
        s.ensure_new(event)?;
        s.append(event);
        Ok(())
    }

    async fn connection_counts(&self) -> Result<Vec<(ConnectionKind, ConnectionStatus, u64)>> {
        let s = self.lock();
        let mut counts: BTreeMap<(ConnectionKind, &'static str), (ConnectionStatus, u64)> = BTreeMap::new();
        for c in s.connections.values() {
            counts.entry((c.provider.clone(), c.status.as_str())).or_insert((c.status, 0)).1 += 1;
        }
        Ok(counts.into_iter().map(|((k, _), (st, n))| (k, st, n)).collect())
    }
}

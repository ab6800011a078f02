//! [`ConnectionStore`] over PostgreSQL.

use async_trait::async_trait;

use crm_core::domain::connection::{Connection, ConnectionKind, ConnectionResult, ConnectionStatus, check_settings};
use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, ConnectionStore, Error, Event, Result};

use super::{PgStore, Tx, append, commit};
use crate::error::db;
use crate::rows::connections::{
    CONNECTION_EXISTS, CONNECTION_FAILED, CONNECTION_SUCCEEDED, DELETE_CONNECTION, PUT_CONNECTION, connection_row,
};

async fn connection_exists(tx: &mut Tx, account: AccountId, provider: &ConnectionKind) -> Result<bool> {
    let row = sqlx::query(CONNECTION_EXISTS)
        .bind(account.into_uuid())
        .bind(provider.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| db("looking up a connection", e))?;
    Ok(row.is_some())
}

#[async_trait]
impl ConnectionStore for PgStore {
    async fn put_connection(&self, c: &Connection, event: &Event) -> Result<Connection> {
        check_event_account(c.account_id, event)?;
        check_settings(&c.settings)?;
        let mut tx = self.write().await?;
        let row = sqlx::query(PUT_CONNECTION)
            .bind(c.account_id.into_uuid())
            .bind(c.provider.as_str())
            .bind(&c.settings)
            .bind(c.credentials.as_ref().map(|s| s.encode()))
            .bind(c.status.as_str())
            .bind(c.last_error.as_deref())
            .bind(c.last_success_at)
            .bind(c.created_at)
            .bind(c.updated_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("storing a connection", e))?;
        let stored = connection_row(&row)?;
        append(&mut tx, event).await?;
        commit(tx).await?;
        Ok(stored)
    }

    async fn get_connection(&self, account: AccountId, provider: &ConnectionKind) -> Result<Connection> {
        crate::rows::connections::get_connection(self, account, provider).await
    }

    async fn list_connections(&self, account: AccountId) -> Result<Vec<Connection>> {
        crate::rows::connections::list_connections(self, account).await
    }

    async fn delete_connection(&self, account: AccountId, provider: &ConnectionKind, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query(DELETE_CONNECTION)
            .bind(account.into_uuid())
            .bind(provider.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a connection", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("connection"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn record_connection_result(
        &self,
        account: AccountId,
        provider: &ConnectionKind,
        result: &ConnectionResult,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        if !connection_exists(&mut tx, account, provider).await? {
            return Err(Error::not_found("connection"));
        }
        let q = match result {
            ConnectionResult::Success(at) => sqlx::query(CONNECTION_SUCCEEDED).bind(*at),
            ConnectionResult::Failure(reason) => sqlx::query(CONNECTION_FAILED).bind(reason.as_str()),
        };
        q.bind(account.into_uuid())
            .bind(provider.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("recording a connection's result", e))?;
        commit(tx).await
    }

    async fn record_connection_event(
        &self,
        account: AccountId,
        provider: &ConnectionKind,
        event: &Event,
    ) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        if !connection_exists(&mut tx, account, provider).await? {
            return Err(Error::not_found("connection"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn connection_counts(&self) -> Result<Vec<(ConnectionKind, ConnectionStatus, u64)>> {
        crate::rows::connections::connection_counts(self).await
    }
}

//! The [`ConnectionStore`] port: where accounts' connections to outside
//! providers are kept.

use async_trait::async_trait;
use std::fmt::Debug;

use crate::domain::connection::{Connection, ConnectionKind, ConnectionResult, ConnectionStatus};
use crate::{AccountId, Event, Result};

#[allow(unused_imports)]
use crate::Error;

/// Connections, one per (account, provider kind).
///
/// Contract (checked by `crm_core::testing::store::connections`):
/// - Tenancy as every store: another account's connection behaves as a missing one.
/// - `put_connection` inserts or replaces the account's connection of that
///   kind (settings, credentials, status; `last_error` and
///   `last_success_at` as given) and records `event` in the same
///   transaction; a replaced connection keeps its `created_at`. Returns it as stored.
/// - `record_connection_result` changes only the status, `last_error` and
///   `last_success_at` and writes no event (a status, not an owner's change);
///   it never revives a `disconnected` connection.
/// - Every owner's mutation records its event in the same transaction; a
///   refused mutation writes nothing.
#[async_trait]
pub trait ConnectionStore: Send + Sync + Debug + 'static {
    /// Inserts or replaces a connection and records `event`.
    async fn put_connection(&self, connection: &Connection, event: &Event) -> Result<Connection>;

    /// The account's connection of `provider`; [`Error::NotFound`] when missing.
    async fn get_connection(&self, account: AccountId, provider: &ConnectionKind) -> Result<Connection>;

    /// The account's connections, by provider kind.
    async fn list_connections(&self, account: AccountId) -> Result<Vec<Connection>>;

    /// Deletes a connection and records `event`. [`Error::NotFound`] when missing.
    async fn delete_connection(&self, account: AccountId, provider: &ConnectionKind, event: &Event) -> Result<()>;

    /// Records how a use went (see the trait). [`Error::NotFound`] when missing.
    async fn record_connection_result(
        &self,
        account: AccountId,
        provider: &ConnectionKind,
        result: &ConnectionResult,
    ) -> Result<()>;

    /// Records `event` about a connection without changing it (a provider's
    /// delivery event): the event log and the outbox get it.
    /// [`Error::NotFound`] when the connection is missing (nothing is written).
    async fn record_connection_event(&self, account: AccountId, provider: &ConnectionKind, event: &Event)
    -> Result<()>;

    /// How many connections of every account are in each (kind, status),
    /// by kind then status: what `/ready` reports.
    async fn connection_counts(&self) -> Result<Vec<(ConnectionKind, ConnectionStatus, u64)>>;
}

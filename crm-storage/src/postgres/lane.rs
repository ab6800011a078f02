//! The fast lane: connections for single statements, returned without a ping.
//!
//! sqlx's pool pings every connection it takes back (a `Sync` round trip to
//! the server, in a task of its own), so that a connection left mid-protocol
//! by a cancelled query is not reused. For the store's hottest statements
//! (every shared read, storing a message, moving its status) that ping was a
//! second round trip per statement. The lane keeps its own small set of
//! connections and decides instead: a lease whose statement ran to an answer
//! (rows, or an error the server sent and survived) goes back as it is — sqlx drains
//! whatever is left of that answer before the connection's next statement —
//! while a lease dropped early (its future cancelled) or ended by an I/O or
//! protocol error closes its connection. A connection idle for longer than
//! [`STALE_AFTER`] is pinged before reuse, so one the server dropped while
//! idle is replaced instead of failing a request.
//!
//! Transactions, migrations and the rest keep using the pool.

use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgSeverity};
use sqlx::{ConnectOptions, Connection};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An idle connection older than this is pinged before it is reused.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(30);

/// A bounded set of connections for single statements.
pub(crate) struct Lane {
    options: PgConnectOptions,
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    permits: Arc<Semaphore>,
    size: usize,
    wait: Duration,
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the options: they hold the password.
        f.debug_struct("Lane").field("size", &self.size).field("idle", &self.idle_count()).finish()
    }
}

impl Lane {
    /// A lane of at most `size` connections made with `options`; a lease
    /// waits at most `wait` for a free one.
    pub(crate) fn new(options: PgConnectOptions, size: usize, wait: Duration) -> Self {
        Self { options, idle: Mutex::new(Vec::new()), permits: Arc::new(Semaphore::new(size)), size, wait }
    }

    /// Connections waiting for a statement.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Leases a connection: an idle one, or a new one while fewer than
    /// `size` exist. [`sqlx::Error::PoolTimedOut`] after `wait`.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, sqlx::Error> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some((conn, since)) if since.elapsed() < STALE_AFTER => conn,
            Some((mut conn, _)) => match conn.ping().await {
                Ok(()) => conn,
                Err(_) => self.options.connect().await?,
            },
            None => self.options.connect().await?,
        };
        Ok(Lease { conn: Some(conn), lane: self, keep: false, _permit: permit })
    }
}

/// One leased connection; see [`Lease::settle`].
pub(crate) struct Lease<'a> {
    conn: Option<PgConnection>,
    lane: &'a Lane,
    keep: bool,
    _permit: OwnedSemaphorePermit,
}

impl Lease<'_> {
    /// Ends the lease with its statement's result: the connection goes back
    /// to the lane unless the error says it may be broken.
    pub(crate) fn settle<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        self.keep = match &result {
            Ok(_) => true,
            // The server refused the statement and goes on; a FATAL or
            // PANIC error means it closed the connection.
            Err(sqlx::Error::Database(e)) => e
                .try_downcast_ref::<PgDatabaseError>()
                .is_some_and(|e| !matches!(e.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
            // Decoding the answer failed; the connection is in step with it.
            Err(e) => matches!(
                e,
                sqlx::Error::RowNotFound
                    | sqlx::Error::ColumnNotFound(_)
                    | sqlx::Error::ColumnIndexOutOfBounds { .. }
                    | sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::Decode(_)
                    | sqlx::Error::Encode(_)
                    | sqlx::Error::TypeNotFound { .. }
            ),
        };
        result
    }
}

impl Deref for Lease<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a lease holds its connection until dropped")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Not settled (cancelled mid-statement) or possibly broken: the
        // connection is dropped, which closes its socket.
        if let (true, Some(conn)) = (self.keep, self.conn.take()) {
            self.lane.idle.lock().unwrap_or_else(PoisonError::into_inner).push((conn, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn lane(test: &str, size: usize, wait: Duration) -> Option<Lane> {
        let url = crm_core::testing::service_url("CRM_TEST_DATABASE_URL", test)?;
        let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
        Some(Lane::new(options, size, wait))
    }

    async fn backend(lane: &Lane) -> i32 {
        let mut conn = lane.lease().await.expect("lease");
        let pid = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await;
        conn.settle(pid).expect("pid")
    }

    #[tokio::test]
    async fn a_settled_lease_returns_its_connection_for_the_next_statement() {
        let Some(lane) = lane("lane reuse", 4, Duration::from_secs(5)) else { return };
        let first = backend(&lane).await;
        assert_eq!(lane.idle_count(), 1);
        assert_eq!(backend(&lane).await, first, "the same server process answers");
        // A statement the server refuses leaves the connection in step.
        let mut conn = lane.lease().await.expect("lease");
        let refused = sqlx::query("SELECT 1 / 0").execute(&mut *conn).await;
        assert!(matches!(conn.settle(refused), Err(sqlx::Error::Database(_))));
        assert_eq!(backend(&lane).await, first, "kept after the server's error, and usable");
    }

    #[tokio::test]
    async fn a_lease_dropped_mid_statement_closes_its_connection() {
        let Some(lane) = lane("lane cancel", 4, Duration::from_secs(5)) else { return };
        let first = backend(&lane).await;
        let cancelled = tokio::time::timeout(Duration::from_millis(100), async {
            let mut conn = lane.lease().await.expect("lease");
            let slept = sqlx::query("SELECT pg_sleep(5)").execute(&mut *conn).await;
            conn.settle(slept).map(|_| ())
        })
        .await;
        assert!(cancelled.is_err(), "the statement was cancelled by the timeout");
        assert_eq!(lane.idle_count(), 0, "its connection was not given back");
        let next = backend(&lane).await;
        assert_ne!(next, first, "a fresh connection answers");
    }

    #[tokio::test]
    async fn a_broken_connection_is_not_given_back() {
        let Some(lane) = lane("lane broken", 4, Duration::from_secs(5)) else { return };
        let victim = backend(&lane).await;
        // A connection of its own ends the idle one's server process.
        let mut killer = lane.options.connect().await.expect("connect");
        sqlx::query("SELECT pg_terminate_backend($1)").bind(victim).execute(&mut killer).await.expect("terminate");
        let mut conn = lane.lease().await.expect("lease");
        let pid: Result<i32, _> = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await;
        let failed = conn.settle(pid);
        // The dead connection reads the server's last words (a FATAL error)
        // or finds the socket closed.
        if let Err(sqlx::Error::Database(e)) = &failed {
            let severity = e.try_downcast_ref::<PgDatabaseError>().map(PgDatabaseError::severity);
            assert_eq!(severity, Some(PgSeverity::Fatal), "{failed:?}");
        }
        for _ in 0..3 {
            assert_ne!(backend(&lane).await, victim, "the dead connection is never reused");
        }
        // A connection that ends itself gets a FATAL error from the server:
        // that error does not give the connection back either.
        let own = backend(&lane).await;
        let mut conn = lane.lease().await.expect("lease");
        let ended = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())").execute(&mut *conn).await;
        assert!(matches!(conn.settle(ended), Err(sqlx::Error::Database(_))));
        assert_eq!(lane.idle_count(), 0, "not given back after a FATAL error");
        assert_ne!(backend(&lane).await, own);
    }

    #[tokio::test]
    async fn a_lease_waits_a_bounded_time_for_a_free_connection() {
        let Some(lane) = lane("lane wait", 1, Duration::from_millis(50)) else { return };
        let held = lane.lease().await.expect("lease");
        assert!(matches!(lane.lease().await.map(|_| ()), Err(sqlx::Error::PoolTimedOut)));
        drop(held);
        backend(&lane).await;
    }
}

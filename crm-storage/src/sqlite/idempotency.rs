//! [`IdempotencyStore`](crm_core::IdempotencyStore) over SQLite: the
//! statements both dialects share (`rows::idempotency`), in its transactions.

use super::SqliteStore;

crate::rows::idempotency::idempotency_store!(SqliteStore);

//! [`IdempotencyStore`](crm_core::IdempotencyStore) over PostgreSQL: the
//! statements both dialects share (`rows::idempotency`), in its transactions.

use super::PgStore;

crate::rows::idempotency::idempotency_store!(PgStore);

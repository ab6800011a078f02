//! # crm-storage
//!
//! Storage adapters for crm: the store ports over SQLite (the embedded
//! default: a file or `sqlite::memory:`) and PostgreSQL, each with versioned
//! migrations applied on open and an event outbox; and a Redis
//! [`RateLimiter`](crm_core::RateLimiter).
#![warn(missing_docs)]

#[cfg(feature = "redis")]
mod redis_limiter;
#[cfg(feature = "redis")]
pub use redis_limiter::RedisLimiter;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;

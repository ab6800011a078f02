//! # crm
//!
//! A toolkit for WhatsApp-first customer-engagement backends: contacts and
//! their threads, messaging, templates, an event outbox, rate limiting — each
//! capability a port with swappable adapters.
//!
//! This facade re-exports [`crm_core`] (domain, ports, the [`Crm`] service and
//! in-memory adapters) and, by feature, the adapter crates:
//!
//! | feature | what it adds |
//! |---|---|
//! | `sqlite` (default) | [`storage::SqliteStore`] |
//! | `postgres` | [`storage::PgStore`] |
//! | `redis` | [`storage::RedisLimiter`] |
//! | `testing` | [`testing`]: the conformance suites |
#![warn(missing_docs)]

pub use crm_core::*;

/// Storage adapters (SQLite, PostgreSQL, Redis).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub mod storage {
    pub use crm_storage::*;
}

/// The README's code blocks, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

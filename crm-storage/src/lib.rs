//! # crm-storage
//!
//! Storage adapters for crm: the store ports over SQLite (the embedded
//! default: a file or `sqlite::memory:`) and PostgreSQL, each with versioned
//! migrations applied on open and an event outbox; and a Redis
//! [`RateLimiter`](crm_core::RateLimiter).
//!
//! ```no_run
//! # async fn f() -> crm_core::Result<()> {
//! let store = crm_storage::connect("sqlite::memory:").await?;
//! assert_eq!(store.name(), "database");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod error;
mod media;
pub use media::ObjectMediaStore;
#[cfg(feature = "s3")]
pub use media::S3Settings;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;

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

/// Opens the store a database URL names, running its migrations: `sqlite:…`
/// (feature `sqlite`) or `postgres://…` / `postgresql://…` (feature
/// `postgres`). [`crm_core::Error::Config`] for any other scheme or a backend
/// compiled out.
pub async fn connect(url: &str) -> crm_core::Result<std::sync::Arc<dyn crm_core::Store>> {
    connect_with_pool(url, DEFAULT_POOL_SIZE).await
}

/// The PostgreSQL pool size [`connect`] uses.
pub const DEFAULT_POOL_SIZE: u32 = 10;

/// [`connect`] with at most `pool_size` pooled PostgreSQL connections (see
/// [`PgStore::connect_with_pool`]); SQLite keeps its own sizes (one writer).
#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
pub async fn connect_with_pool(url: &str, pool_size: u32) -> crm_core::Result<std::sync::Arc<dyn crm_core::Store>> {
    let scheme = url.split(':').next().unwrap_or_default().to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => {
            #[cfg(feature = "sqlite")]
            return Ok(std::sync::Arc::new(SqliteStore::connect(url).await?));
            #[cfg(not(feature = "sqlite"))]
            return Err(disabled("sqlite"));
        }
        "postgres" | "postgresql" => {
            #[cfg(feature = "postgres")]
            return Ok(std::sync::Arc::new(PgStore::connect_with_pool(url, pool_size).await?));
            #[cfg(not(feature = "postgres"))]
            return Err(disabled("postgres"));
        }
        _ => Err(crm_core::Error::Config {
            message: "database URL must start with sqlite:, postgres:// or postgresql://".into(),
        }),
    }
}

#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn disabled(feature: &str) -> crm_core::Error {
    crm_core::Error::Config {
        message: format!("this build has no {feature} support; enable crm-storage's `{feature}` feature"),
    }
}

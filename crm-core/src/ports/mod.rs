//! Ports: the object-safe traits every adapter implements.

pub mod clock;
pub mod health;
pub mod messenger;
pub mod rate_limiter;
pub mod store;

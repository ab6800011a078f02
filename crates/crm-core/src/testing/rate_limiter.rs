//! Conformance suite for [`crate::RateLimiter`] adapters.

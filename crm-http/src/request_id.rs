//! Request ids without a system call per request.
//!
//! `tower_http`'s `MakeRequestUuid` asks the operating system for 16 random
//! bytes on every request (one `getrandom` call). A request id only has to be
//! unique, not secret, so [`RequestIds`] draws two random seeds once and then
//! numbers requests: request `n` gets the UUID (version 4 layout) built from
//! `mix(seed_a + n)` and `mix(seed_b + n)`, where `mix` is SplitMix64's
//! finalizer, a bijection on 64-bit integers that spreads every input bit.
//! Two requests of one process differ in `n`, so each half of their ids is a
//! different 64-bit value before the six version and variant bits are set;
//! ids of different processes start from different seeds. Either way a
//! repeat is as unlikely as between random UUIDs.

use axum::http::{HeaderValue, Request};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tower_http::request_id::{MakeRequestId, RequestId};
use uuid::Uuid;

/// Makes the `x-request-id` of requests that arrive without one.
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    seeds: (u64, u64),
    next: AtomicU64,
}

impl RequestIds {
    /// A generator with fresh random seeds.
    pub(crate) fn new() -> Self {
        Self::with_seeds(Uuid::new_v4().as_u64_pair())
    }

    fn with_seeds(seeds: (u64, u64)) -> Self {
        Self { inner: Arc::new(Inner { seeds, next: AtomicU64::new(0) }) }
    }

    /// The next id.
    pub(crate) fn next_uuid(&self) -> Uuid {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (a, b) = self.inner.seeds;
        let (hi, lo) = (mix(a.wrapping_add(n)), mix(b.wrapping_add(n)));
        // Version 4 and the RFC 4122 variant, as a random UUID has them.
        let hi = (hi & !0xF000) | 0x4000;
        let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
        Uuid::from_u64_pair(hi, lo)
    }
}

/// SplitMix64's output function: a bijection that spreads every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut buf = Uuid::encode_buffer();
        let text = self.next_uuid().hyphenated().encode_lower(&mut buf);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_version_4_uuids() {
        let ids = RequestIds::new();
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let id = ids.next_uuid();
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert!(seen.insert(id), "repeated id {id}");
        }
    }

    #[test]
    fn two_generators_start_apart() {
        let (x, y) = (RequestIds::new(), RequestIds::new());
        assert_ne!(x.next_uuid(), y.next_uuid());
    }

    #[test]
    fn the_header_is_the_hyphenated_uuid() {
        let mut ids = RequestIds::with_seeds((1, 2));
        let req = Request::new(());
        let id = ids.make_request_id(&req).expect("an id");
        let text = id.header_value().to_str().expect("ascii");
        let parsed: Uuid = text.parse().expect("a uuid");
        assert_eq!(text, parsed.hyphenated().to_string());
    }
}

//! For receivers: verify a Standard Webhooks request on its raw body and
//! drop repeats by `webhook-id`.
//!
//! Verify the bytes exactly as they arrived. A JSON body parsed and
//! serialized again can differ from what was signed (key order, spacing,
//! number forms), so verification must come before parsing:
//!
//! ```no_run
//! use axum::{Router, body::Bytes, http::{HeaderMap, StatusCode}, routing::post};
//! use crm_webhooks::verify::{Deduper, Verifier};
//! use std::sync::Arc;
//!
//! # fn app() -> crm_core::Result<Router> {
//! let verifier = Arc::new(Verifier::new(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])?);
//! let seen = Arc::new(Deduper::new(100_000));
//! Ok(Router::new().route("/hooks/crm", post(move |headers: HeaderMap, body: Bytes| {
//!     let (verifier, seen) = (verifier.clone(), seen.clone());
//!     async move {
//!         // 1. the raw bytes, as sent: never a parsed-and-reserialized Json<Value>
//!         let Ok(id) = verifier.verify(&headers, &body) else { return StatusCode::UNAUTHORIZED };
//!         // 2. at-least-once: the same webhook-id can arrive again
//!         if !seen.first_time(&id) { return StatusCode::OK }
//!         // 3. only now parse
//!         let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else { return StatusCode::BAD_REQUEST };
//!         println!("{} {}", event["type"], event["data"]);
//!         StatusCode::NO_CONTENT
//!     }
//! })))
//! # }
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use subtle::ConstantTimeEq;

use crate::signing::SigningSecret;
use crm_core::Result;

/// Why a request was refused (safe to log: no secret, no body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// A `webhook-id`, `webhook-timestamp` or `webhook-signature` header is missing or not text.
    MissingHeader(&'static str),
    /// The timestamp is not an integer.
    BadTimestamp,
    /// The timestamp is outside the tolerance window (a replay, or a skewed clock).
    Expired,
    /// No signature matches any secret.
    NoMatch,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::MissingHeader(h) => write!(f, "missing header {h}"),
            VerifyError::BadTimestamp => f.write_str("webhook-timestamp is not an integer"),
            VerifyError::Expired => f.write_str("webhook-timestamp is outside the tolerance"),
            VerifyError::NoMatch => f.write_str("no signature matches"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verifies requests against one or more secrets (several while rotating).
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<SigningSecret>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier for these `whsec_…` secrets with the spec's 5-minute tolerance.
    pub fn new(secrets: &[&str]) -> Result<Self> {
        let secrets = secrets.iter().map(|s| SigningSecret::parse(s)).collect::<Result<Vec<_>>>()?;
        Ok(Self { secrets, tolerance: Duration::from_secs(300) })
    }

    /// How far `webhook-timestamp` may be from now, either way.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies `body` (the raw bytes) with `headers` at the system time;
    /// returns the `webhook-id` to deduplicate on.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> std::result::Result<String, VerifyError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.verify_at(headers, body, now)
    }

    /// [`Verifier::verify`] at `now` (Unix seconds).
    pub fn verify_at(&self, headers: &HeaderMap, body: &[u8], now: i64) -> std::result::Result<String, VerifyError> {
        let get = |name: &'static str| {
            headers.get(name).and_then(|v| v.to_str().ok()).ok_or(VerifyError::MissingHeader(name))
        };
        let id = get("webhook-id")?;
        let ts: i64 = get("webhook-timestamp")?.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
        let signatures = get("webhook-signature")?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if now.abs_diff(ts) > tolerance.unsigned_abs() {
            return Err(VerifyError::Expired);
        }
        let expected: Vec<[u8; 32]> = self.secrets.iter().map(|s| s.mac(id, ts, body)).collect();
        for sig in signatures.split(' ') {
            let Some(b64) = sig.strip_prefix("v1,") else { continue };
            let Ok(given) = STANDARD.decode(b64) else { continue };
            // Every secret is compared (in constant time each) so the time
            // does not tell which one matched.
            let matched = expected.iter().fold(0u8, |acc, e| acc | e.as_slice().ct_eq(&given).unwrap_u8());
            if matched == 1 {
                return Ok(id.to_owned());
            }
        }
        Err(VerifyError::NoMatch)
    }
}

/// Remembers the last `capacity` `webhook-id`s seen, so an event delivered
/// twice (at-least-once) is handled once. In memory: a receiver running
/// several processes keeps this in its database instead (a unique key).
#[derive(Debug)]
pub struct Deduper {
    capacity: usize,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Deduper {
    /// A deduper remembering at most `capacity` ids (oldest forgotten first).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), seen: Mutex::new((HashSet::new(), VecDeque::new())) }
    }

    /// True the first time `id` is seen.
    pub fn first_time(&self, id: &str) -> bool {
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *guard;
        if set.contains(id) {
            return false;
        }
        if order.len() >= self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        set.insert(id.to_owned());
        order.push_back(id.to_owned());
        true
    }
}

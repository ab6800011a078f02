//! `Stripe-Signature` verification: `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
//! where each `v1` is HMAC-SHA256 of `"{t}.{payload}"` keyed with a whole
//! webhook signing secret (`whsec_…`, used as its bytes, not decoded).
//!
//! Several secrets may be configured (rotation: Stripe signs with the old
//! and the new one for a while, one `v1` each); a payload passes when any
//! `v1` matches any secret, compared in constant time, and its timestamp is
//! within the tolerance (300 s by default) of now, either side.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The header Stripe signs webhooks with.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Stripe's default tolerance between the signed timestamp and now.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Longest header considered (Stripe's is ~200 bytes; rotation adds a few `v1`s).
const MAX_HEADER_BYTES: usize = 4096;

/// Why a signature was refused. The text is safe to return to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    Missing,
    /// The header is empty.
    Empty,
    /// Not `t=…,v1=…` (no timestamp, a timestamp that is not a number, a
    /// repeated timestamp, an element without `=`, too long).
    Malformed,
    /// A timestamp but no `v1` signature.
    NoSignature,
    /// The timestamp is further from now than the tolerance.
    Stale,
    /// No `v1` matches any configured secret.
    Mismatch,
    /// No webhook secret is configured.
    NoSecret,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "the Stripe-Signature header is missing",
            Self::Empty => "the Stripe-Signature header is empty",
            Self::Malformed => "the Stripe-Signature header is not t=<timestamp>,v1=<signature>",
            Self::NoSignature => "the Stripe-Signature header has no v1 signature",
            Self::Stale => "the Stripe-Signature timestamp is outside the tolerance (a replay, or a clock off)",
            Self::Mismatch => "no v1 signature matches the payload under a configured webhook secret",
            Self::NoSecret => "no Stripe webhook secret is configured",
        })
    }
}

impl std::error::Error for SignatureError {}

impl From<SignatureError> for crm_core::Error {
    fn from(e: SignatureError) -> Self {
        crm_core::Error::validation("signature", e.to_string())
    }
}

/// The parsed header: the timestamp and every `v1` (other schemes, such as
/// Stripe's test-mode `v0`, are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `t`, Unix seconds.
    pub timestamp: i64,
    /// Each `v1`, as given (hex).
    pub signatures: Vec<String>,
}

impl SignatureHeader {
    /// Parses a header value.
    ///
    /// ```
    /// use crm_billing::signature::SignatureHeader;
    /// let h = SignatureHeader::parse("t=1492774577,v1=abc,v0=def,v1=123")?;
    /// assert_eq!(h.timestamp, 1492774577);
    /// assert_eq!(h.signatures, ["abc", "123"]);
    /// # Ok::<(), crm_billing::signature::SignatureError>(())
    /// ```
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let header = header.trim();
        if header.is_empty() {
            return Err(SignatureError::Empty);
        }
        if header.len() > MAX_HEADER_BYTES {
            return Err(SignatureError::Malformed);
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            let (k, v) = item.trim().split_once('=').ok_or(SignatureError::Malformed)?;
            match k {
                "t" => {
                    let t: i64 = v.parse().map_err(|_| SignatureError::Malformed)?;
                    if timestamp.replace(t).is_some() {
                        return Err(SignatureError::Malformed);
                    }
                }
                "v1" if !v.is_empty() => signatures.push(v.to_owned()),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if signatures.is_empty() {
            return Err(SignatureError::NoSignature);
        }
        Ok(Self { timestamp, signatures })
    }
}

/// HMAC-SHA256 of `"{timestamp}.{payload}"` under `secret`, hex.
pub fn compute(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// A `Stripe-Signature` value for `payload` at `timestamp` signed with each
/// of `secrets` (what Stripe sends; tests and local tools sign with it).
///
/// ```
/// use crm_billing::signature::{sign, verify};
/// let header = sign(&["whsec_test"], 1_700_000_000, b"{}");
/// let now = chrono::DateTime::from_timestamp(1_700_000_010, 0).unwrap();
/// assert!(verify(b"{}", Some(&header), &["whsec_test".to_owned()], std::time::Duration::from_secs(300), now).is_ok());
/// ```
pub fn sign(secrets: &[&str], timestamp: i64, payload: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for s in secrets {
        header.push_str(",v1=");
        header.push_str(&compute(s, timestamp, payload));
    }
    header
}

/// Verifies `header` over the raw `payload` at `now` against `secrets`.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[String],
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<i64, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = SignatureHeader::parse(header.ok_or(SignatureError::Missing)?)?;
    let age = now.timestamp().abs_diff(header.timestamp);
    if age > tolerance.as_secs() {
        return Err(SignatureError::Stale);
    }
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = compute(secret, header.timestamp, payload);
        for given in &header.signatures {
            // Lengths differ only for malformed input; ct_eq answers 0 then.
            matched |= expected.as_bytes().ct_eq(given.to_ascii_lowercase().as_bytes());
        }
    }
    if bool::from(matched) { Ok(header.timestamp) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).expect("time")
    }

    fn check(header: Option<&str>, secrets: &[&str], now: i64) -> Result<i64, SignatureError> {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        verify(br#"{"id":"evt_1"}"#, header, &secrets, DEFAULT_TOLERANCE, at(now))
    }

    #[test]
    fn stripes_documented_example() {
        // From Stripe's docs on manual verification: the signed payload is
        // "{t}.{body}", HMAC-SHA256 keyed with the whole whsec_ string.
        let mac = compute("whsec_test_secret", 1_492_774_577, b"{}");
        assert_eq!(mac.len(), 64);
        let mut m = Hmac::<Sha256>::new_from_slice(b"whsec_test_secret").expect("key");
        m.update(b"1492774577.{}");
        assert_eq!(mac, hex::encode(m.finalize().into_bytes()));
    }

    #[test]
    fn accepts_a_good_signature_and_rotation() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign(&["whsec_new"], NOW, body);
        assert_eq!(check(Some(&h), &["whsec_new"], NOW), Ok(NOW));
        // Rotation: Stripe signs with old and new; either configured secret passes.
        let both = sign(&["whsec_old", "whsec_new"], NOW, body);
        assert!(check(Some(&both), &["whsec_new"], NOW).is_ok());
        assert!(check(Some(&both), &["whsec_old"], NOW).is_ok());
        // Several configured secrets, the header signed with one.
        assert!(check(Some(&sign(&["whsec_old"], NOW, body)), &["whsec_new", "whsec_old"], NOW).is_ok());
        // v0 and unknown schemes are ignored; upper-case hex is accepted.
        let extra = format!("{},v0=deadbeef,x=1", h.to_ascii_uppercase().replace("T=", "t=").replace("V1=", "v1="));
        assert!(check(Some(&extra), &["whsec_new"], NOW).is_ok());
    }

    #[test]
    fn tolerance_edges() {
        let h = sign(&["whsec_s"], NOW, br#"{"id":"evt_1"}"#);
        assert!(check(Some(&h), &["whsec_s"], NOW + 300).is_ok(), "300 s late: inside");
        assert_eq!(check(Some(&h), &["whsec_s"], NOW + 301), Err(SignatureError::Stale));
        assert!(check(Some(&h), &["whsec_s"], NOW - 300).is_ok(), "300 s early (clock skew): inside");
        assert_eq!(check(Some(&h), &["whsec_s"], NOW - 301), Err(SignatureError::Stale));
    }

    #[test]
    fn refusals_say_why() {
        let good = sign(&["whsec_s"], NOW, br#"{"id":"evt_1"}"#);
        assert_eq!(check(None, &["whsec_s"], NOW), Err(SignatureError::Missing));
        assert_eq!(check(Some("  "), &["whsec_s"], NOW), Err(SignatureError::Empty));
        assert_eq!(check(Some("v1=abc"), &["whsec_s"], NOW), Err(SignatureError::Malformed));
        assert_eq!(check(Some("t=abc,v1=abc"), &["whsec_s"], NOW), Err(SignatureError::Malformed));
        assert_eq!(check(Some("t=1,t=2,v1=abc"), &["whsec_s"], NOW), Err(SignatureError::Malformed));
        assert_eq!(check(Some("garbage"), &["whsec_s"], NOW), Err(SignatureError::Malformed));
        assert_eq!(check(Some(&format!("t={NOW}")), &["whsec_s"], NOW), Err(SignatureError::NoSignature));
        assert_eq!(check(Some(&format!("t={NOW},v1=")), &["whsec_s"], NOW), Err(SignatureError::NoSignature));
        assert_eq!(check(Some(&good), &["whsec_other"], NOW), Err(SignatureError::Mismatch));
        assert_eq!(check(Some(&good), &[], NOW), Err(SignatureError::NoSecret));
        let tampered = sign(&["whsec_s"], NOW, br#"{"id":"evt_2"}"#);
        assert_eq!(check(Some(&tampered), &["whsec_s"], NOW), Err(SignatureError::Mismatch));
        // Another timestamp with the same v1: the timestamp is signed too.
        let moved = good.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 1), 1);
        assert_eq!(check(Some(&moved), &["whsec_s"], NOW), Err(SignatureError::Mismatch));
        assert_eq!(check(Some(&"v1=a,".repeat(1000)), &["whsec_s"], NOW), Err(SignatureError::Malformed));
    }
}

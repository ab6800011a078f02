//! Standard Webhooks signatures: the specification's published test vector,
//! an independent verifier, rotation, and the receiver-side helper.

use axum::http::{HeaderMap, HeaderValue};
use crm_webhooks::{Deduper, SigningSecret, Verifier, VerifyError, signature_header};

use crate::receiver::spec_verify;

/// The test vector published with the specification (and used by every
/// official library's tests).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: i64 = 1_614_265_330;
const PAYLOAD: &str = r#"{"test": 2432232314}"#;
const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("webhook-id", HeaderValue::from_str(id).expect("id"));
    h.insert("webhook-timestamp", HeaderValue::from_str(&ts.to_string()).expect("ts"));
    h.insert("webhook-signature", HeaderValue::from_str(sig).expect("sig"));
    h
}

#[test]
fn the_specifications_test_vector() {
    let secret = SigningSecret::parse(SECRET).expect("the spec's secret");
    assert_eq!(secret.sign(MSG_ID, TIMESTAMP, PAYLOAD.as_bytes()), SIGNATURE);
    assert!(spec_verify(SECRET, MSG_ID, &TIMESTAMP.to_string(), PAYLOAD.as_bytes(), SIGNATURE));
    let v = Verifier::new(&[SECRET]).expect("verifier");
    let h = headers(MSG_ID, TIMESTAMP, SIGNATURE);
    assert_eq!(v.verify_at(&h, PAYLOAD.as_bytes(), TIMESTAMP + 10), Ok(MSG_ID.to_owned()));
}

#[test]
fn a_parsed_and_reserialized_body_fails() {
    let v = Verifier::new(&[SECRET]).expect("verifier");
    let h = headers(MSG_ID, TIMESTAMP, SIGNATURE);
    let reparsed: serde_json::Value = serde_json::from_str(PAYLOAD).expect("json");
    let reserialized = serde_json::to_vec(&reparsed).expect("json");
    assert_ne!(reserialized, PAYLOAD.as_bytes(), "serde drops the space");
    assert_eq!(v.verify_at(&h, &reserialized, TIMESTAMP), Err(VerifyError::NoMatch));
}

#[test]
fn verifier_checks_tolerance_headers_and_every_signature() {
    let v = Verifier::new(&[SECRET]).expect("verifier");
    let body = PAYLOAD.as_bytes();
    let h = headers(MSG_ID, TIMESTAMP, SIGNATURE);
    assert_eq!(v.verify_at(&h, body, TIMESTAMP + 301), Err(VerifyError::Expired));
    assert_eq!(v.verify_at(&h, body, TIMESTAMP - 301), Err(VerifyError::Expired));
    let tampered = headers(MSG_ID, TIMESTAMP + 1, SIGNATURE);
    assert_eq!(v.verify_at(&tampered, body, TIMESTAMP), Err(VerifyError::NoMatch));
    let other_id = headers("msg_other", TIMESTAMP, SIGNATURE);
    assert_eq!(v.verify_at(&other_id, body, TIMESTAMP), Err(VerifyError::NoMatch));
    let mut missing = h.clone();
    missing.remove("webhook-signature");
    assert_eq!(v.verify_at(&missing, body, TIMESTAMP), Err(VerifyError::MissingHeader("webhook-signature")));
    let bad_ts = {
        let mut b = h.clone();
        b.insert("webhook-timestamp", HeaderValue::from_static("soon"));
        b
    };
    assert_eq!(v.verify_at(&bad_ts, body, TIMESTAMP), Err(VerifyError::BadTimestamp));
    // Several signatures (rotation): an unknown version and a wrong one before the right one.
    let several = headers(MSG_ID, TIMESTAMP, &format!("v2,abc v1,AAAA {SIGNATURE}"));
    assert_eq!(v.verify_at(&several, body, TIMESTAMP), Ok(MSG_ID.to_owned()));
    // A verifier holding two secrets accepts either.
    let fresh = SigningSecret::generate().expect("random");
    let both = Verifier::new(&[&fresh.expose(), SECRET]).expect("two");
    assert!(both.verify_at(&h, body, TIMESTAMP).is_ok());
}

#[test]
fn rotation_headers_carry_both_signatures() {
    let old = SigningSecret::parse(SECRET).expect("old");
    let new = SigningSecret::generate().expect("new");
    let header = signature_header(&[&new, &old], MSG_ID, TIMESTAMP, PAYLOAD.as_bytes());
    assert!(spec_verify(SECRET, MSG_ID, &TIMESTAMP.to_string(), PAYLOAD.as_bytes(), &header), "old secret verifies");
    assert!(spec_verify(&new.expose(), MSG_ID, &TIMESTAMP.to_string(), PAYLOAD.as_bytes(), &header), "new verifies");
    assert!(header.contains(SIGNATURE));
}

#[test]
fn deduper_remembers_a_bounded_window() {
    let d = Deduper::new(2);
    assert!(d.first_time("a"));
    assert!(!d.first_time("a"));
    assert!(d.first_time("b"));
    assert!(d.first_time("c"), "a is forgotten past the capacity");
    assert!(d.first_time("a"));
    assert!(!d.first_time("c"));
}

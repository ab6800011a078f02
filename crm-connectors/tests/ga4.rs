//! The GA4 Measurement Protocol adapter against a local mock on 127.0.0.1:
//! batches of at most 25 events with `measurement_id` and `api_secret` in
//! the query, conversions in BRL, the `/debug/mp/collect` validation
//! endpoint's messages as a typed error, and GA4's 401/403, 429 with
//! `Retry-After`, 5xx and a timeout.
#![allow(clippy::unwrap_used)]

mod support;

use crm_connectors::ga4::{Ga4, Ga4Factory, ValidationMessage};
use crm_core::Error;
use crm_core::ports::connectors::{Analytics, AnalyticsEvent, AnalyticsUser, ConnectorFactory};
use crm_core::secrets::Credentials;
use crm_core::testing::connectors::analytics;
use serde_json::{Map, json};
use std::time::Duration;
use support::{Mock, Reply};

const SECRET: &str = "gA4-secret-XyZ123";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/ga4/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn ga4(mock: &Mock) -> Ga4 {
    Ga4::new(Some(&mock.base), "G-ABC123XYZ", SECRET, None).unwrap().with_timeout(Duration::from_millis(500))
}

fn user() -> AnalyticsUser {
    AnalyticsUser { client_id: "1234567890.1700000000".into(), user_id: Some("contact-1".into()) }
}

#[tokio::test]
async fn the_analytics_contract_holds_and_batches_are_at_most_25() {
    let mock = Mock::start(Reply::new(204, "")).await;
    let ga = ga4(&mock);
    let received = || mock.seen().iter().map(|s| s.json()["events"].as_array().unwrap().len()).sum();
    analytics(&ga, &received).await;
    let sizes: Vec<usize> = mock.seen().iter().map(|s| s.json()["events"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, vec![25, 5], "30 events go in two requests");
    for req in mock.seen() {
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/mp/collect"));
        assert_eq!(req.query, format!("measurement_id=G-ABC123XYZ&api_secret={SECRET}"));
        let body = req.json();
        assert_eq!(body["client_id"], json!("1234567890.1700000000"));
        assert_eq!(body["user_id"], json!("contact-1"));
    }
    let last = mock.seen()[1].json();
    assert_eq!(
        last["events"][4],
        json!({ "name": "purchase", "params": { "currency": "BRL", "value": 129.9, "transaction_id": "T-1" } })
    );
    assert_eq!(last["events"][0], json!({ "name": "lead_step", "params": { "step": 25 } }));
}

#[tokio::test]
async fn debug_mode_surfaces_validation_messages() {
    let mock = Mock::start(Reply::new(200, fixture("debug_valid.json"))).await;
    let ga = ga4(&mock).debug(true);
    let event = AnalyticsEvent::conversion("purchase", 500, "BRL", "T-2").unwrap();
    ga.track(&user(), std::slice::from_ref(&event)).await.unwrap();
    assert_eq!(mock.seen()[0].path, "/debug/mp/collect", "debug mode only validates");

    mock.then(Reply::new(200, fixture("debug_invalid.json")));
    let messages = ga4(&mock).validate(&user(), std::slice::from_ref(&event)).await.unwrap();
    assert_eq!(
        messages[1],
        ValidationMessage {
            field_path: "events".into(),
            description:
                "Event at index: [1] has invalid name [_badEventName]. Names must start with an alphabetic character."
                    .into(),
            validation_code: "NAME_INVALID".into(),
        }
    );
    mock.then(Reply::new(200, fixture("debug_invalid.json")));
    match ga.track(&user(), &[event]).await.unwrap_err() {
        Error::Validation { field, reason } => {
            assert_eq!(field, "events.params.currency");
            assert!(reason.contains("VALUE_INVALID") && reason.contains("NAME_INVALID"), "{reason}");
        }
        e => panic!("validation messages are a validation error: {e:?}"),
    }
}

#[tokio::test]
async fn maps_ga4_errors_and_hides_the_secret() {
    let mock = Mock::start(Reply::new(204, "")).await;
    let ga = ga4(&mock);
    let events = [AnalyticsEvent::custom("lead_captured", Map::new()).unwrap()];
    mock.then(Reply::new(403, ""));
    let e = ga.track(&user(), &events).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    mock.then(Reply::new(429, "").header("Retry-After", "20"));
    assert!(matches!(ga.track(&user(), &events).await.unwrap_err(),
        Error::Provider { transient: true, retry_after: Some(d), .. } if d == Duration::from_secs(20)));
    mock.then(Reply::new(503, ""));
    assert!(matches!(ga.track(&user(), &events).await.unwrap_err(), Error::Provider { transient: true, .. }));
    mock.then(Reply::new(400, ""));
    assert!(matches!(ga.track(&user(), &events).await.unwrap_err(), Error::Provider { transient: false, .. }));
    mock.then(Reply::new(204, "").delay(Duration::from_secs(2)));
    let e = ga.track(&user(), &events).await.unwrap_err();
    assert!(matches!(e, Error::Provider { transient: true, .. }), "timeout: {e:?}");
    let shown = format!("{e} {e:?} {ga:?} {:?}", std::error::Error::source(&e));
    assert!(!shown.contains(SECRET), "the API secret never shows: {shown}");

    let f = Ga4Factory::new(&mock.base);
    let mut creds = Credentials::new();
    creds.insert("api_secret", SECRET);
    f.validate(&json!({ "measurement_id": "G-ABC123XYZ", "debug": true }), Some(&creds)).unwrap();
    assert!(f.validate(&json!({ "measurement_id": "UA-1234" }), Some(&creds)).is_err());
    assert!(f.validate(&json!({ "measurement_id": "G-ABC123XYZ" }), Some(&Credentials::new())).is_err());
}

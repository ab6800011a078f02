//! Connections: the [`ConnectionStore`](crate::ConnectionStore) contract
//! (put/replace, tenancy, results, events, counts).

use chrono::Duration;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

use super::{ev, event_count, events_of, is_not_found, new_account, now};
use crate::domain::connection::{Connection, ConnectionKind, ConnectionResult, ConnectionStatus};
use crate::secrets::{Credentials, Keyring, SecretKey};
use crate::{EventType, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    connections_put_get_list_delete(make().await).await;
    connection_results_and_counts(make().await).await;
}

/// Put inserts then replaces (keeping `created_at`), every field round-trips
/// (sealed credentials too), lists are per account by kind, another
/// account's connection is missing, delete records its event.
pub async fn connections_put_get_list_delete(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let keyring = Keyring::new(SecretKey::generate("k1").expect("key"));
    let t0 = now() - Duration::hours(1);
    let mut slack = Connection::new(a, ConnectionKind::SLACK, json!({ "channel": "#sales" }), None, t0).expect("valid");
    let mut creds = Credentials::new();
    creds.insert("bot_token", "xoxb-1");
    slack.credentials = Some(keyring.seal_credentials(&creds, &slack.secret_context()).expect("seal"));
    slack.last_success_at = Some(t0);
    let before = event_count(&store, a).await;
    let stored = store.put_connection(&slack, &ev(a, EventType::CONNECTION_UPDATED)).await.expect("[connections] put");
    assert_eq!(stored, slack, "[connections] put returns what was stored");
    let got = store.get_connection(a, &ConnectionKind::SLACK).await.expect("[connections] get");
    assert_eq!(got.settings, json!({ "channel": "#sales" }), "[connections] settings round-trip");
    assert_eq!(got.created_at.timestamp_millis(), t0.timestamp_millis(), "[connections] created_at round-trips");
    assert_eq!(got.last_success_at.map(|t| t.timestamp_millis()), Some(t0.timestamp_millis()));
    let opened = keyring.open_credentials(got.credentials.as_ref().expect("sealed kept"), &got.secret_context());
    assert_eq!(opened.expect("opens").get("bot_token"), Some("xoxb-1"), "[connections] credentials round-trip");
    assert_eq!(event_count(&store, a).await, before + 1, "[connections] put records its event");

    let mut replaced =
        Connection::new(a, ConnectionKind::SLACK, json!({ "channel": "#ops" }), None, now()).expect("valid");
    replaced.status = ConnectionStatus::Disconnected;
    let stored = store.put_connection(&replaced, &ev(a, EventType::CONNECTION_UPDATED)).await.expect("replace");
    assert_eq!(stored.created_at.timestamp_millis(), t0.timestamp_millis(), "[connections] replace keeps created_at");
    let got = store.get_connection(a, &ConnectionKind::SLACK).await.expect("get");
    assert_eq!((got.settings["channel"].as_str(), got.status), (Some("#ops"), ConnectionStatus::Disconnected));
    assert!(got.credentials.is_none(), "[connections] replace sets credentials as given");

    let ga = Connection::new(a, ConnectionKind::GA4, json!({ "measurement_id": "G-1" }), None, now()).expect("valid");
    store.put_connection(&ga, &ev(a, EventType::CONNECTION_UPDATED)).await.expect("put ga4");
    let custom = ConnectionKind::parse("acme-mail").expect("kind");
    let other = Connection::new(b, custom.clone(), json!({}), None, now()).expect("valid");
    store.put_connection(&other, &ev(b, EventType::CONNECTION_UPDATED)).await.expect("put b");
    let kinds: Vec<_> = store.list_connections(a).await.expect("list").into_iter().map(|c| c.provider).collect();
    assert_eq!(kinds, vec![ConnectionKind::GA4, ConnectionKind::SLACK], "[connections] list is per account by kind");
    assert!(is_not_found(&store.get_connection(a, &custom).await.expect_err("tenancy")), "[connections] tenancy");
    let wrong = store.delete_connection(a, &custom, &ev(a, EventType::CONNECTION_DELETED)).await;
    assert!(is_not_found(&wrong.expect_err("tenancy")), "[connections] delete of another account's is missing");

    let before = event_count(&store, a).await;
    store.delete_connection(a, &ConnectionKind::GA4, &ev(a, EventType::CONNECTION_DELETED)).await.expect("delete");
    assert_eq!(event_count(&store, a).await, before + 1, "[connections] delete records its event");
    assert!(is_not_found(&store.get_connection(a, &ConnectionKind::GA4).await.expect_err("gone")));
    let again = store.delete_connection(a, &ConnectionKind::GA4, &ev(a, EventType::CONNECTION_DELETED)).await;
    assert!(is_not_found(&again.expect_err("gone")), "[connections] deleting twice is missing");
    assert_eq!(event_count(&store, a).await, before + 1, "[connections] a refused delete writes no event");

    let wrong_account = store.put_connection(&other, &ev(a, EventType::CONNECTION_UPDATED)).await;
    assert!(wrong_account.is_err(), "[connections] an event of another account is refused");
}

/// Results move status, error and last success without an event and never
/// revive a disconnected connection; events are recorded only for existing
/// connections; counts group every account's connections by kind and status.
pub async fn connection_results_and_counts(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    for (account, kind) in [(a, ConnectionKind::SENDGRID), (b, ConnectionKind::SENDGRID), (a, ConnectionKind::SLACK)] {
        let c = Connection::new(account, kind, json!({}), None, now()).expect("valid");
        store.put_connection(&c, &ev(account, EventType::CONNECTION_UPDATED)).await.expect("put");
    }
    let before = event_count(&store, a).await;
    let fail = ConnectionResult::Failure("sendgrid refused the API key".into());
    store.record_connection_result(a, &ConnectionKind::SENDGRID, &fail).await.expect("[connections] failure");
    let got = store.get_connection(a, &ConnectionKind::SENDGRID).await.expect("get");
    assert_eq!(got.status, ConnectionStatus::Error, "[connections] a failure sets status error");
    assert_eq!(got.last_error.as_deref(), Some("sendgrid refused the API key"));
    assert_eq!(event_count(&store, a).await, before, "[connections] a result writes no event");

    let counts = store.connection_counts().await.expect("counts");
    assert_eq!(
        counts,
        vec![
            (ConnectionKind::SENDGRID, ConnectionStatus::Connected, 1),
            (ConnectionKind::SENDGRID, ConnectionStatus::Error, 1),
            (ConnectionKind::SLACK, ConnectionStatus::Connected, 1),
        ],
        "[connections] counts by kind and status"
    );

    let at = now();
    store.record_connection_result(a, &ConnectionKind::SENDGRID, &ConnectionResult::Success(at)).await.expect("ok");
    let got = store.get_connection(a, &ConnectionKind::SENDGRID).await.expect("get");
    assert_eq!(
        (got.status, got.last_error.clone()),
        (ConnectionStatus::Connected, None),
        "[connections] success clears"
    );
    assert_eq!(got.last_success_at.map(|t| t.timestamp_millis()), Some(at.timestamp_millis()));

    let mut off = got.clone();
    off.status = ConnectionStatus::Disconnected;
    store.put_connection(&off, &ev(a, EventType::CONNECTION_UPDATED)).await.expect("disconnect");
    store.record_connection_result(a, &ConnectionKind::SENDGRID, &fail).await.expect("result");
    let got = store.get_connection(a, &ConnectionKind::SENDGRID).await.expect("get");
    assert_eq!(got.status, ConnectionStatus::Disconnected, "[connections] a result never revives a disconnected one");

    let missing = store.record_connection_result(a, &ConnectionKind::GA4, &fail).await;
    assert!(is_not_found(&missing.expect_err("missing")), "[connections] result on a missing connection");

    let bounce = ev(a, EventType::EMAIL_BOUNCED);
    store.record_connection_event(a, &ConnectionKind::SENDGRID, &bounce).await.expect("[connections] event");
    assert!(events_of(&store, a).await.iter().any(|e| e.id == bounce.id), "[connections] the event is in the log");
    let before = event_count(&store, a).await;
    let missing = store.record_connection_event(a, &ConnectionKind::GA4, &ev(a, EventType::EMAIL_BOUNCED)).await;
    assert!(is_not_found(&missing.expect_err("missing")), "[connections] event on a missing connection");
    let cross = store.record_connection_event(b, &ConnectionKind::SLACK, &ev(b, EventType::EMAIL_BOUNCED)).await;
    assert!(is_not_found(&cross.expect_err("tenancy")), "[connections] event on another account's connection");
    assert_eq!(event_count(&store, a).await, before, "[connections] refused events are not written");
}

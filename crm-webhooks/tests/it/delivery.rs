//! Delivery end to end on the memory store: a real worker runtime, a
//! manual clock, and a capturing receiver on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_core::secrets::{Keyring, SecretKey};
use crm_core::workers::{Runtime, RuntimeHandle, WorkerOptions};
use crm_core::{
    AccountId, Clock, ContactPatch, Crm, DeliveryQuery, DeliveryStatus, EventType, JobQuery, JobState, ManualClock,
    MemoryStore, NewContact, PageRequest, Store, WebhookDelivery, WebhookEndpoint,
};
use crm_webhooks::{
    AddressPolicy, Deliverer, EndpointPatch, FanOut, NewEndpoint, RetrySchedule, WebhookSettings, Webhooks,
};

use crate::receiver::{Receiver, Reply, verifies};

struct Harness {
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    crm: Crm,
    hooks: Webhooks,
    runtime: RuntimeHandle,
    account: AccountId,
    receiver: Receiver,
}

fn fast(mut o: WorkerOptions) -> WorkerOptions {
    o.poll = Duration::from_millis(10);
    o.max_poll = Duration::from_millis(40);
    o
}

fn settings() -> WebhookSettings {
    WebhookSettings {
        schedule: RetrySchedule::default().without_jitter(),
        timeout: Duration::from_millis(800),
        // Tests talk to 127.0.0.1: opened explicitly, the default stays strict.
        policy: AddressPolicy::strict().allow_list("127.0.0.0/8,::1").expect("allow-list"),
        ..WebhookSettings::default()
    }
}

async fn harness(settings: WebhookSettings) -> Harness {
    let start: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::with_clock(clock.clone()));
    let crm = Crm::builder()
        .store(store.clone())
        .messenger(Arc::new(crm_core::RecordingMessenger::new()))
        .clock(clock.clone())
        .build()
        .expect("crm");
    let keyring = Keyring::new(SecretKey::generate("test").expect("key"));
    let hooks = Webhooks::new(store.clone(), keyring).clock(clock.clone()).settings(settings);
    let runtime = Runtime::builder(store.clone())
        .event_worker(Arc::new(FanOut::new(hooks.clone())), fast(FanOut::options()))
        .job_worker(Arc::new(Deliverer::new(hooks.clone()).expect("deliverer")), fast(Deliverer::options()))
        .build()
        .start()
        .await
        .expect("runtime");
    let account = crm.create_account("Hooks").await.expect("account").id;
    let receiver = Receiver::start().await;
    Harness { clock, store, crm, hooks, runtime, account, receiver }
}

impl Harness {
    async fn endpoint(&self, types: Option<&[&str]>) -> (WebhookEndpoint, String) {
        let input = NewEndpoint {
            url: self.receiver.url(),
            event_types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
            ..NewEndpoint::default()
        };
        self.hooks.create_endpoint(self.account, input).await.expect("create endpoint")
    }

    async fn contact(&self, n: u32) -> crm_core::Contact {
        let input = NewContact { name: format!("C{n}"), phone: format!("+551198765{n:04}"), ..Default::default() };
        self.crm.create_contact(self.account, input).await.expect("contact")
    }

    async fn deliveries(&self) -> Vec<WebhookDelivery> {
        let q = DeliveryQuery {
            endpoint_id: None,
            event_id: None,
            status: None,
            page: PageRequest::first(200).expect("l"),
        };
        self.hooks.deliveries(self.account, &q).await.expect("deliveries").items
    }

    /// Waits (real time) until the only delivery has made `n` attempts.
    async fn attempts_reach(&self, n: u32) -> WebhookDelivery {
        for _ in 0..300 {
            if let Some(d) = self.deliveries().await.into_iter().find(|d| d.attempts >= n) {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no delivery reached {n} attempts: {:?}", self.deliveries().await);
    }

    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    async fn stop(self) {
        self.runtime.shutdown(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn events_are_delivered_signed_with_the_event_id() {
    let h = harness(settings()).await;
    let (endpoint, secret) = h.endpoint(Some(&["contact.*"])).await;
    assert!(secret.starts_with("whsec_"));
    let (_other, _) = h.endpoint(Some(&["message.*"])).await;
    let contacts = [h.contact(1).await, h.contact(2).await, h.contact(3).await];
    let got = h.receiver.wait_for(3).await;
    h.settle().await;
    assert_eq!(h.receiver.received().len(), 3, "one request per event, none for the message.* endpoint");
    let events = h.crm.list_events(h.account, None, 100).await.expect("events");
    for (c, r) in contacts.iter().zip(&got) {
        assert!(verifies(r, &secret), "signature verifies by the spec's rules");
        let body = r.json();
        assert_eq!(body["type"], "contact.created");
        assert_eq!(body["data"]["id"], c.id.to_string());
        let event = events.iter().find(|e| e.payload["id"] == c.id.to_string()).expect("its event");
        assert_eq!(r.header("webhook-id"), event.id.to_string(), "webhook-id is the event id");
        assert_eq!(r.header("webhook-timestamp"), h.clock.now().timestamp().to_string());
        assert_eq!(r.header("content-type"), "application/json");
    }
    let ds = h.deliveries().await;
    assert_eq!(ds.len(), 3);
    assert!(
        ds.iter().all(|d| d.status == DeliveryStatus::Succeeded && d.attempts == 1 && d.endpoint_id == endpoint.id)
    );
    let attempts = h.hooks.attempts(h.account, ds[0].id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].status_code, attempts[0].succeeded), (Some(204), true));
    assert!(!format!("{endpoint:?}").contains(&secret[6..]), "Debug never shows the secret");
    h.stop().await;
}

#[tokio::test]
async fn the_retry_schedule_on_a_manual_clock() {
    let h = harness(settings()).await;
    let (_, secret) = h.endpoint(Some(&["contact.*"])).await;
    h.receiver.script([Reply::status(503).body("busy"), Reply::status(500)]);
    h.contact(1).await;
    let t0 = h.clock.now();
    let d = h.attempts_reach(1).await;
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at, Some(t0 + chrono::Duration::seconds(5)), "second attempt 5 s later");
    h.settle().await;
    assert_eq!(h.receiver.received().len(), 1, "not due before its time");
    h.clock.advance(Duration::from_secs(5));
    let d = h.attempts_reach(2).await;
    assert_eq!(d.next_attempt_at, Some(h.clock.now() + chrono::Duration::seconds(300)), "third 5 min later");
    h.clock.advance(Duration::from_secs(299));
    h.settle().await;
    assert_eq!(h.receiver.received().len(), 2, "not a second early");
    h.clock.advance(Duration::from_secs(1));
    let d = h.attempts_reach(3).await;
    assert_eq!(d.status, DeliveryStatus::Succeeded);
    let got = h.receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.header("webhook-id") == got[0].header("webhook-id")), "stable across retries");
    assert!(got.iter().all(|r| verifies(r, &secret)), "each retry signed afresh");
    let log = h.hooks.attempts(h.account, d.id).await.expect("attempts");
    let codes: Vec<Option<u16>> = log.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(503), Some(500), Some(204)]);
    assert_eq!(log[0].response_excerpt.as_deref(), Some("busy"));
    assert_eq!(log[0].error.as_deref(), Some("HTTP 503"));
    h.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let h = harness(settings()).await;
    h.endpoint(Some(&["contact.*"])).await;
    h.receiver.script([Reply::status(429).header("retry-after", "120")]);
    h.contact(1).await;
    let t0 = h.clock.now();
    let d = h.attempts_reach(1).await;
    assert_eq!(d.last_status_code, Some(429));
    assert_eq!(d.next_attempt_at, Some(t0 + chrono::Duration::seconds(120)), "Retry-After beats the 5 s step");
    h.clock.advance(Duration::from_secs(60));
    h.settle().await;
    assert_eq!(h.receiver.received().len(), 1);
    h.clock.advance(Duration::from_secs(60));
    assert_eq!(h.attempts_reach(2).await.status, DeliveryStatus::Succeeded);
    h.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_with_an_event() {
    let h = harness(settings()).await;
    let (endpoint, _) = h.endpoint(Some(&["contact.*"])).await;
    h.receiver.script([Reply::status(410)]);
    h.contact(1).await;
    let d = h.attempts_reach(1).await;
    assert_eq!(d.status, DeliveryStatus::Failed, "410 is final");
    let e = h.hooks.endpoint(h.account, endpoint.id).await.expect("endpoint");
    assert!(!e.enabled);
    assert!(e.disabled_reason.as_deref().is_some_and(|r| r.contains("410")), "{e:?}");
    let events = h.crm.list_events(h.account, None, 100).await.expect("events");
    let disabled = events.iter().find(|ev| ev.event_type == EventType::ENDPOINT_DISABLED).expect("endpoint.disabled");
    assert_eq!(disabled.payload["id"], endpoint.id.to_string());
    assert!(disabled.payload.get("secret").is_none(), "no secret in the event");
    h.contact(2).await;
    h.settle().await;
    assert_eq!(h.receiver.received().len(), 1, "a disabled endpoint gets nothing new");
    h.stop().await;
}

#[tokio::test]
async fn redirects_are_failures_and_never_followed() {
    let h = harness(settings()).await;
    h.endpoint(Some(&["contact.*"])).await;
    let target = format!("http://{}/elsewhere", h.receiver.addr);
    h.receiver.script([Reply::status(307).header("location", &target)]);
    h.contact(1).await;
    let d = h.attempts_reach(1).await;
    assert_eq!((d.status, d.last_status_code), (DeliveryStatus::Pending, Some(307)));
    assert!(d.last_error.as_deref().is_some_and(|e| e.contains("redirects are not followed")), "{d:?}");
    h.settle().await;
    assert_eq!(h.receiver.redirect_target_hits(), 0);
    h.stop().await;
}

#[tokio::test]
async fn timeouts_fail_the_attempt_and_excerpts_are_bounded() {
    let h = harness(settings()).await;
    h.endpoint(Some(&["contact.*"])).await;
    h.receiver.script([Reply::status(200).delay(Duration::from_secs(3)), Reply::status(500).body(&"x".repeat(5000))]);
    h.contact(1).await;
    let d = h.attempts_reach(1).await;
    assert_eq!(d.last_status_code, None);
    assert!(d.last_error.as_deref().is_some_and(|e| e.contains("timed out")), "{d:?}");
    h.clock.advance(Duration::from_secs(5));
    let d = h.attempts_reach(2).await;
    let log = h.hooks.attempts(h.account, d.id).await.expect("attempts");
    assert!(log[0].latency_ms >= 700, "{}", log[0].latency_ms);
    assert_eq!(log[1].response_excerpt.as_ref().map(String::len), Some(1024), "excerpt bounded");
    h.stop().await;
}

#[tokio::test]
async fn continuous_failure_disables_and_a_success_resets_the_clock() {
    let h = harness(WebhookSettings { disable_after: Duration::from_secs(3600), ..settings() }).await;
    let (endpoint, _) = h.endpoint(Some(&["contact.created"])).await;
    // Sporadic: a failure, then a success, clears the failure state.
    h.receiver.script([Reply::status(500)]);
    h.contact(1).await;
    h.attempts_reach(1).await;
    assert!(h.hooks.endpoint(h.account, endpoint.id).await.expect("e").failing_since.is_some());
    h.clock.advance(Duration::from_secs(5));
    h.receiver.wait_for(2).await;
    h.settle().await;
    assert_eq!(h.hooks.endpoint(h.account, endpoint.id).await.expect("e").failing_since, None, "reset by a success");
    // Continuous: failing for longer than disable_after disables it.
    h.receiver.script([Reply::status(500), Reply::status(500), Reply::status(500)]);
    h.contact(2).await;
    h.receiver.wait_for(3).await;
    h.settle().await;
    h.clock.advance(Duration::from_secs(2 * 3600));
    h.receiver.wait_for(4).await;
    h.settle().await;
    let e = h.hooks.endpoint(h.account, endpoint.id).await.expect("e");
    assert!(!e.enabled, "disabled after failing for 2 h > 1 h");
    assert!(e.disabled_reason.as_deref().is_some_and(|r| r.contains("failing continuously")), "{e:?}");
    let events = h.crm.list_events(h.account, None, 100).await.expect("events");
    assert!(events.iter().any(|ev| ev.event_type == EventType::ENDPOINT_DISABLED));
    // Enabling again clears the failure state.
    let patch = EndpointPatch { version: e.version, enabled: Some(true), ..EndpointPatch::default() };
    let e = h.hooks.update_endpoint(h.account, endpoint.id, patch).await.expect("enable");
    assert!(e.enabled && e.failing_since.is_none() && e.disabled_reason.is_none());
    h.stop().await;
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_until_the_overlap_ends() {
    let h = harness(settings()).await;
    let (endpoint, old) = h.endpoint(Some(&["contact.created"])).await;
    let (rotated, new) =
        h.hooks.rotate_secret(h.account, endpoint.id, Some(Duration::from_secs(3600)), None).await.expect("rotate");
    assert_ne!(old, new);
    assert!(rotated.view().rotating_until.is_some());
    h.contact(1).await;
    let got = h.receiver.wait_for(1).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(&got[0], &new) && verifies(&got[0], &old), "both verify during the overlap");
    h.clock.advance(Duration::from_secs(3601));
    h.contact(2).await;
    let got = h.receiver.wait_for(2).await;
    assert!(verifies(&got[1], &new));
    assert!(!verifies(&got[1], &old), "the old secret stops after the overlap");
    let bad = h.hooks.rotate_secret(h.account, endpoint.id, None, Some("whsec_short")).await;
    assert!(bad.is_err());
    h.stop().await;
}

#[tokio::test]
async fn one_contacts_events_arrive_in_order() {
    let h = harness(settings()).await;
    h.endpoint(Some(&["contact.*"])).await;
    h.receiver.script([Reply::status(503)]);
    let c = h.contact(1).await;
    h.attempts_reach(1).await;
    for name in ["second", "third"] {
        let patch = ContactPatch { name: Some(name.into()), ..Default::default() };
        h.crm.update_contact(h.account, c.id, patch).await.expect("update");
    }
    let other = h.contact(2).await;
    let got = h.receiver.wait_for(2).await;
    h.settle().await;
    assert_eq!(h.receiver.received().len(), 2, "the contact's later events wait; another contact's does not");
    assert_eq!(got[1].json()["data"]["id"], other.id.to_string());
    h.clock.advance(Duration::from_secs(5));
    // Deliveries waiting their turn are deferred on the store's clock: move it along.
    for _ in 0..50 {
        if h.receiver.received().len() >= 5 {
            break;
        }
        h.clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = h.receiver.wait_for(5).await;
    let mine: Vec<(String, String)> = got
        .iter()
        .filter(|r| r.json()["data"]["id"] == c.id.to_string())
        .map(|r| {
            (
                r.json()["type"].as_str().unwrap_or("").to_owned(),
                r.json()["data"]["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let names: Vec<&str> = mine.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["C1", "C1", "second", "third"], "retry of the first, then the rest in order: {mine:?}");
    h.stop().await;
}

#[tokio::test]
async fn dead_deliveries_replay_and_recover() {
    let h = harness(WebhookSettings { schedule: RetrySchedule::new(Vec::new(), 0.0).expect("s"), ..settings() }).await;
    let (endpoint, _) = h.endpoint(Some(&["contact.created"])).await;
    h.receiver.script([Reply::status(500), Reply::status(500), Reply::status(500)]);
    let since = h.clock.now();
    h.contact(1).await;
    let d = h.attempts_reach(1).await;
    assert_eq!(d.status, DeliveryStatus::Failed, "one attempt in this schedule");
    h.settle().await;
    let q = JobQuery {
        kind: Some("webhook.deliver".into()),
        state: Some(JobState::Dead),
        page: PageRequest::first(10).expect("l"),
    };
    let dead = h.store.list_jobs(h.account, &q).await.expect("jobs").items;
    assert_eq!(dead.len(), 1, "the dead delivery is a dead letter");
    assert_eq!(dead[0].id.into_uuid(), d.id.into_uuid());
    let replayed = h.hooks.replay(h.account, d.id).await.expect("replay");
    assert_eq!(replayed.status, DeliveryStatus::Pending);
    h.receiver.wait_for(2).await;
    h.settle().await;
    let d = h.hooks.delivery(h.account, d.id).await.expect("delivery");
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 2), "the replay failed too (scripted)");
    h.contact(2).await;
    h.receiver.wait_for(3).await;
    h.settle().await;
    let n = h.hooks.recover(h.account, endpoint.id, since).await.expect("recover");
    assert_eq!(n, 2, "both failed deliveries since the start");
    h.receiver.wait_for(5).await;
    h.settle().await;
    assert!(h.deliveries().await.iter().all(|d| d.status == DeliveryStatus::Succeeded));
    let later = h.hooks.recover(h.account, endpoint.id, h.clock.now() + chrono::Duration::hours(1)).await;
    assert_eq!(later.expect("recover"), 0);
    h.stop().await;
}

#[tokio::test]
async fn a_test_event_reaches_one_endpoint_whatever_its_filter() {
    let h = harness(settings()).await;
    let (endpoint, secret) = h.endpoint(Some(&["message.received"])).await;
    let d = h.hooks.send_test(h.account, endpoint.id).await.expect("test");
    let got = h.receiver.wait_for(1).await;
    assert!(verifies(&got[0], &secret));
    assert_eq!(got[0].json()["type"], "webhook.test");
    assert_eq!(got[0].header("webhook-id"), d.event_id.to_string());
    h.settle().await;
    assert_eq!(h.hooks.delivery(h.account, d.id).await.expect("d").status, DeliveryStatus::Succeeded);
    // The test event is not in the log and its job is done: a replay sends
    // the same event again (same id, type and data), rebuilt from its delivery.
    h.hooks.replay(h.account, d.id).await.expect("replay");
    let got = h.receiver.wait_for(2).await;
    assert!(verifies(&got[1], &secret));
    assert_eq!(got[1].header("webhook-id"), got[0].header("webhook-id"), "the same webhook-id");
    assert_eq!(got[1].json()["type"], "webhook.test");
    assert_eq!(got[1].json()["data"], got[0].json()["data"], "the same data");
    h.settle().await;
    let after = h.hooks.delivery(h.account, d.id).await.expect("d");
    assert_eq!((after.status, after.attempts), (DeliveryStatus::Succeeded, 2), "{after:?}");
    h.stop().await;
}

#[tokio::test]
async fn endpoints_validate_their_input() {
    let h = harness(WebhookSettings::default()).await;
    let bad = |url: &str| NewEndpoint { url: url.into(), ..NewEndpoint::default() };
    for url in ["http://127.0.0.1/", "http://169.254.169.254/", "ftp://x.io/", "not a url"] {
        assert!(h.hooks.create_endpoint(h.account, bad(url)).await.is_err(), "{url} refused by the default policy");
    }
    let mut input = bad("https://example.com/hook");
    input.event_types = Some(vec!["Not A Type".into()]);
    assert!(h.hooks.create_endpoint(h.account, input).await.is_err());
    let mut input = bad("https://example.com/hook");
    input.headers.insert("webhook-signature".into(), "v1,forged".into());
    assert!(h.hooks.create_endpoint(h.account, input).await.is_err());
    let (e, _) = h.hooks.create_endpoint(h.account, bad("https://example.com/hook")).await.expect("ok");
    let stale = EndpointPatch { version: 7, description: Some("x".into()), ..EndpointPatch::default() };
    assert!(matches!(h.hooks.update_endpoint(h.account, e.id, stale).await, Err(crm_core::Error::Conflict { .. })));
    h.hooks.delete_endpoint(h.account, e.id).await.expect("delete");
    assert!(matches!(h.hooks.endpoint(h.account, e.id).await, Err(crm_core::Error::NotFound { .. })));
    h.stop().await;
}

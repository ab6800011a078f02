//! Webhooks: the [`WebhookStore`](crate::WebhookStore) contract (endpoint
//! round trips keeping sealed secrets exact, tenancy, optimistic versions,
//! `failing_since` leaving the version, disabling once, one delivery per
//! (endpoint, event), attempts moving their delivery, FIFO lookups, failed
//! deliveries since a time, deletes taking deliveries along, and one event
//! per endpoint mutation with none on refusal; a delivery created with its
//! job stores both, once).

use chrono::Duration;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use super::{ev, event_count, is_conflict, is_not_found, new_account, now};
use crate::domain::webhook::{
    DeliveryProgress, DeliveryQuery, DeliveryStatus, EndpointState, WebhookAttempt, WebhookDelivery,
};
use crate::secrets::{Keyring, SecretKey};
use crate::{
    AccountId, Event, EventFilter, EventId, EventType, PageRequest, Store, WebhookAttemptId, WebhookDeliveryId,
    WebhookEndpoint, WebhookEndpointId,
};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    endpoint_crud_and_roundtrip(make().await).await;
    endpoint_tenancy(make().await).await;
    endpoint_update_is_optimistic(make().await).await;
    endpoint_failing_and_disable(make().await).await;
    delivery_is_unique_per_endpoint_and_event(make().await).await;
    delivery_with_job_commits_both(make().await).await;
    attempts_move_their_delivery(make().await).await;
    deliveries_list_filter_and_fifo(make().await).await;
    attempt_context_reads_delivery_endpoint_and_fifo(make().await).await;
    batched_reads_and_records_answer_in_order(make().await).await;
    failed_deliveries_since_pages(make().await).await;
    endpoint_delete_takes_deliveries(make().await).await;
}

// ----- fixtures ----------------------------------------------------------------

fn keyring() -> Keyring {
    Keyring::new(SecretKey::from_bytes("suite-key", [9; 32]).expect("key id"))
}

/// An endpoint with every optional field set.
pub fn endpoint(account: AccountId, url: &str) -> WebhookEndpoint {
    let id = WebhookEndpointId::new();
    let ctx = WebhookEndpoint::secret_context(account, id);
    let k = keyring();
    let at = now();
    WebhookEndpoint {
        id,
        account_id: account,
        url: url.into(),
        description: "orders ação".into(),
        event_types: EventFilter::only(["message.*", "contact.created"]).expect("filter"),
        enabled: true,
        disabled_reason: None,
        secret: k.seal(b"whsec_current", &ctx).expect("seal"),
        previous_secret: Some(k.seal(b"whsec_previous", &ctx).expect("seal")),
        previous_secret_expires_at: Some(at + Duration::hours(24)),
        headers: BTreeMap::from([("X-Team".to_owned(), "crm".to_owned())]),
        rate_limit_per_second: Some(5),
        failing_since: None,
        created_at: at,
        updated_at: at,
        version: 0,
    }
}

async fn add(store: &Arc<dyn Store>, e: &WebhookEndpoint) {
    store
        .insert_endpoint(e, &ev(e.account_id, EventType::ENDPOINT_CREATED))
        .await
        .unwrap_or_else(|err| panic!("[fixture] insert_endpoint: {err}"));
}

fn delivery(e: &WebhookEndpoint, event: EventId, key: Option<&str>) -> WebhookDelivery {
    let at = now();
    WebhookDelivery {
        id: WebhookDeliveryId::new(),
        account_id: e.account_id,
        endpoint_id: e.id,
        event_id: event,
        event_type: EventType::MESSAGE_RECEIVED,
        ordering_key: key.map(Into::into),
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_status_code: None,
        last_error: None,
        next_attempt_at: Some(at),
        created_at: at,
        updated_at: at,
    }
}

fn attempt(d: &WebhookDelivery, code: Option<u16>, error: Option<&str>) -> WebhookAttempt {
    WebhookAttempt {
        id: WebhookAttemptId::new(),
        account_id: d.account_id,
        delivery_id: d.id,
        endpoint_id: d.endpoint_id,
        at: now(),
        status_code: code,
        latency_ms: 12,
        response_excerpt: Some("busy ⏳".into()),
        error: error.map(Into::into),
        succeeded: code.is_some_and(|c| (200..300).contains(&c)),
    }
}

fn pending_in(minutes: i64) -> DeliveryProgress {
    DeliveryProgress { status: DeliveryStatus::Pending, next_attempt_at: Some(now() + Duration::minutes(minutes)) }
}

fn settled(status: DeliveryStatus) -> DeliveryProgress {
    DeliveryProgress { status, next_attempt_at: None }
}

fn event_id() -> EventId {
    Event::new(AccountId::new(), EventType::MESSAGE_RECEIVED, &json!({}), now()).id
}

// ----- behaviours ----------------------------------------------------------------

/// Endpoints: insert (version 0), get and list return every field exactly
/// (sealed secrets still open), update moves the version, and delete.
pub async fn endpoint_crud_and_roundtrip(store: Arc<dyn Store>) {
    let a = new_account(&store, "hooks").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let got = store.get_endpoint(a, e.id).await.expect("get_endpoint");
    assert_eq!(got, e, "[endpoint_roundtrip] every field");
    let ctx = WebhookEndpoint::secret_context(a, e.id);
    assert_eq!(keyring().open(&got.secret, &ctx).expect("open"), b"whsec_current", "[endpoint_roundtrip] secret");
    let second =
        WebhookEndpoint { event_types: EventFilter::all(), headers: BTreeMap::new(), ..endpoint(a, "http://x.io") };
    let second = WebhookEndpoint { previous_secret: None, previous_secret_expires_at: None, ..second };
    add(&store, &second).await;
    let listed = store.list_endpoints(a).await.expect("list_endpoints");
    assert_eq!(listed, vec![e.clone(), second.clone()], "[endpoint_crud] list in id order");
    let changed = WebhookEndpoint { url: "https://example.com/v2".into(), enabled: false, ..got.clone() };
    let stored = store.update_endpoint(&changed, &ev(a, EventType::ENDPOINT_UPDATED)).await.expect("update_endpoint");
    assert_eq!(stored.version, 1, "[endpoint_crud] version moves");
    assert_eq!(stored.url, "https://example.com/v2");
    assert_eq!(
        store.get_endpoint(a, e.id).await.expect("get"),
        stored,
        "[endpoint_crud] update returns the stored row"
    );
    store.delete_endpoint(a, e.id, &ev(a, EventType::ENDPOINT_DELETED)).await.expect("delete");
    assert!(store.get_endpoint(a, e.id).await.is_err_and(|x| is_not_found(&x)), "[endpoint_crud] deleted");
    let again = store.delete_endpoint(a, e.id, &ev(a, EventType::ENDPOINT_DELETED)).await;
    assert!(again.is_err_and(|x| is_not_found(&x)), "[endpoint_crud] second delete is NotFound");
    assert_eq!(event_count(&store, a).await, 5, "[endpoint_crud] one event per mutation, none on refusal");
}

/// Another account's endpoint and deliveries behave as missing ones.
pub async fn endpoint_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "a").await;
    let b = new_account(&store, "b").await;
    let e = endpoint(a, "https://a.example/hook");
    add(&store, &e).await;
    let d = delivery(&e, event_id(), None);
    store.create_delivery(&d).await.expect("create_delivery");
    assert!(store.get_endpoint(b, e.id).await.is_err_and(|x| is_not_found(&x)), "[tenancy] get");
    assert!(store.list_endpoints(b).await.expect("list").is_empty(), "[tenancy] list");
    let upd = WebhookEndpoint { account_id: b, ..e.clone() };
    assert!(
        store.update_endpoint(&upd, &ev(b, EventType::ENDPOINT_UPDATED)).await.is_err_and(|x| is_not_found(&x)),
        "[tenancy] update"
    );
    assert!(
        store.delete_endpoint(b, e.id, &ev(b, EventType::ENDPOINT_DELETED)).await.is_err_and(|x| is_not_found(&x)),
        "[tenancy] delete"
    );
    assert!(store.get_delivery(b, d.id).await.is_err_and(|x| is_not_found(&x)), "[tenancy] delivery");
    assert!(store.list_attempts(b, d.id).await.is_err_and(|x| is_not_found(&x)), "[tenancy] attempts");
    let q = DeliveryQuery { endpoint_id: None, event_id: None, status: None, page: PageRequest::first(50).expect("l") };
    assert!(store.list_deliveries(b, &q).await.expect("list").items.is_empty(), "[tenancy] deliveries");
    let foreign = WebhookDelivery { account_id: b, ..delivery(&e, event_id(), None) };
    assert!(store.create_delivery(&foreign).await.is_err_and(|x| is_not_found(&x)), "[tenancy] foreign endpoint");
    assert!(store.get_endpoint(a, e.id).await.is_ok(), "[tenancy] the owner still sees it");
    assert_eq!(event_count(&store, b).await, 1, "[tenancy] refused mutations write no event");
}

/// An update from a stale copy is `Conflict` and writes nothing.
pub async fn endpoint_update_is_optimistic(store: Arc<dyn Store>) {
    let a = new_account(&store, "opt").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let first = WebhookEndpoint { description: "first".into(), ..e.clone() };
    store.update_endpoint(&first, &ev(a, EventType::ENDPOINT_UPDATED)).await.expect("first update");
    let stale = WebhookEndpoint { description: "stale".into(), ..e.clone() };
    let r = store.update_endpoint(&stale, &ev(a, EventType::ENDPOINT_UPDATED)).await;
    assert!(r.is_err_and(|x| is_conflict(&x)), "[endpoint_optimistic] stale copy refused");
    assert_eq!(store.get_endpoint(a, e.id).await.expect("get").description, "first");
    let bad = WebhookEndpoint { url: "ftp://example.com".into(), version: 1, ..e.clone() };
    assert!(store.update_endpoint(&bad, &ev(a, EventType::ENDPOINT_UPDATED)).await.is_err(), "[endpoint] bad url");
    assert_eq!(event_count(&store, a).await, 3, "[endpoint_optimistic] no event for refusals");
}

/// `failing_since` leaves the version (and survives updates); disabling
/// happens once, with its reason and event.
pub async fn endpoint_failing_and_disable(store: Arc<dyn Store>) {
    let a = new_account(&store, "fail").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let since = now();
    store.set_endpoint_failing(a, e.id, Some(since)).await.expect("set failing");
    let got = store.get_endpoint(a, e.id).await.expect("get");
    assert_eq!((got.failing_since, got.version), (Some(since), 0), "[failing] set without a version move");
    let upd = WebhookEndpoint { description: "x".into(), failing_since: None, ..got };
    let stored = store.update_endpoint(&upd, &ev(a, EventType::ENDPOINT_UPDATED)).await.expect("update");
    assert_eq!(stored.failing_since, Some(since), "[failing] an update keeps the stored failing_since");
    assert!(store.set_endpoint_failing(AccountId::new(), e.id, None).await.is_err_and(|x| is_not_found(&x)));
    let first = store.disable_endpoint(a, e.id, "410 Gone", &ev(a, EventType::ENDPOINT_DISABLED)).await;
    assert!(first.expect("disable"), "[disable] first call disables");
    let second = store.disable_endpoint(a, e.id, "again", &ev(a, EventType::ENDPOINT_DISABLED)).await;
    assert!(!second.expect("disable again"), "[disable] second call changes nothing");
    let got = store.get_endpoint(a, e.id).await.expect("get");
    assert!(!got.enabled && got.disabled_reason.as_deref() == Some("410 Gone"), "[disable] {got:?}");
    assert_eq!(got.version, 2, "[disable] version moves once");
    assert_eq!(event_count(&store, a).await, 4, "[disable] one endpoint.disabled event");
}

/// One delivery per (endpoint, event): a second create returns the first.
pub async fn delivery_is_unique_per_endpoint_and_event(store: Arc<dyn Store>) {
    let a = new_account(&store, "uniq").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let other = endpoint(a, "https://example.com/other");
    add(&store, &other).await;
    let event = event_id();
    let d = delivery(&e, event, Some("contact-1"));
    let (stored, created) = store.create_delivery(&d).await.expect("create");
    assert!(created, "[delivery_unique] first create");
    assert_eq!(stored, d, "[delivery_unique] every field");
    let (again, created) = store.create_delivery(&delivery(&e, event, None)).await.expect("create again");
    assert!(!created, "[delivery_unique] second create finds the first");
    assert_eq!(again, d, "[delivery_unique] the stored one, unchanged");
    let (_, created) = store.create_delivery(&delivery(&other, event, None)).await.expect("other endpoint");
    assert!(created, "[delivery_unique] another endpoint gets its own");
    assert_eq!(store.get_delivery(a, d.id).await.expect("get"), d);
    let missing = WebhookDelivery { endpoint_id: WebhookEndpointId::new(), ..delivery(&e, event_id(), None) };
    assert!(store.create_delivery(&missing).await.is_err_and(|x| is_not_found(&x)), "[delivery] missing endpoint");
}

/// `create_delivery_with_job`: a created delivery brings its job along; a
/// second call finds the delivery and writes no job; a job whose unique key
/// is taken is skipped; a missing endpoint writes nothing.
pub async fn delivery_with_job_commits_both(store: Arc<dyn Store>) {
    use crate::{Job, JobId};
    let a = new_account(&store, "with-job").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let job_of = |d: &WebhookDelivery, key: &str| {
        let mut j = Job::new("webhook.deliver", Some(a), json!({ "delivery": d.id }), now(), now())
            .expect("job")
            .with_unique_key(key)
            .expect("key");
        j.id = JobId::from_uuid(d.id.into_uuid());
        j
    };
    let event = event_id();
    let d = delivery(&e, event, Some("contact-1"));
    let (stored, created) = store.create_delivery_with_job(&d, &job_of(&d, &d.id.to_string())).await.expect("create");
    assert!(created, "[delivery_with_job] created");
    assert_eq!(stored, d, "[delivery_with_job] every field");
    let job = store.get_job(a, JobId::from_uuid(d.id.into_uuid())).await.expect("[delivery_with_job] its job");
    assert_eq!(job.payload, json!({ "delivery": d.id }), "[delivery_with_job] the job's payload");
    // Again for the same (endpoint, event): the stored delivery, no new job.
    let second = delivery(&e, event, None);
    let (again, created) =
        store.create_delivery_with_job(&second, &job_of(&second, "second")).await.expect("create again");
    assert!(!created, "[delivery_with_job] second call finds the first");
    assert_eq!(again, d, "[delivery_with_job] the stored one");
    assert!(
        store.get_job(a, JobId::from_uuid(second.id.into_uuid())).await.is_err_and(|x| is_not_found(&x)),
        "[delivery_with_job] no job for a delivery that was not created"
    );
    // A job whose unique key is taken: the delivery is stored, the job skipped.
    let third = delivery(&e, event_id(), None);
    let (_, created) = store
        .create_delivery_with_job(&third, &job_of(&third, &d.id.to_string()))
        .await
        .expect("a taken job key is not an error");
    assert!(created, "[delivery_with_job] delivery stored beside a taken job key");
    assert!(
        store.get_job(a, JobId::from_uuid(third.id.into_uuid())).await.is_err_and(|x| is_not_found(&x)),
        "[delivery_with_job] the job with the taken key was skipped"
    );
    // A missing endpoint: nothing written.
    let missing = WebhookDelivery { endpoint_id: WebhookEndpointId::new(), ..delivery(&e, event_id(), None) };
    assert!(
        store.create_delivery_with_job(&missing, &job_of(&missing, "missing")).await.is_err_and(|x| is_not_found(&x)),
        "[delivery_with_job] missing endpoint"
    );
    assert!(
        store.get_job(a, JobId::from_uuid(missing.id.into_uuid())).await.is_err_and(|x| is_not_found(&x)),
        "[delivery_with_job] no job without its delivery"
    );
}

/// An attempt is stored and moves its delivery; a settled delivery refuses
/// attempts (`Conflict`) until it is made pending again.
pub async fn attempts_move_their_delivery(store: Arc<dyn Store>) {
    let a = new_account(&store, "att").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let (d, _) = store.create_delivery(&delivery(&e, event_id(), None)).await.expect("create");
    let first = attempt(&d, Some(503), Some("HTTP 503"));
    let progress = pending_in(5);
    let after = store.record_attempt(&first, &progress).await.expect("record 1");
    assert_eq!(after.attempts, 1);
    assert_eq!(after.status, DeliveryStatus::Pending);
    assert_eq!(after.next_attempt_at, progress.next_attempt_at);
    assert_eq!((after.last_status_code, after.last_error.as_deref()), (Some(503), Some("HTTP 503")));
    let second = attempt(&d, Some(200), None);
    let done = store.record_attempt(&second, &settled(DeliveryStatus::Succeeded)).await.expect("record 2");
    assert_eq!((done.attempts, done.status, done.next_attempt_at), (2, DeliveryStatus::Succeeded, None));
    assert_eq!(store.get_delivery(a, d.id).await.expect("get"), done, "[attempts] returns the stored delivery");
    let listed = store.list_attempts(a, d.id).await.expect("list_attempts");
    assert_eq!(listed, vec![first, second], "[attempts] oldest first, every field");
    let late = store.record_attempt(&attempt(&d, Some(200), None), &settled(DeliveryStatus::Succeeded)).await;
    assert!(late.is_err_and(|x| is_conflict(&x)), "[attempts] a settled delivery refuses attempts");
    let replayed = store.set_delivery_status(a, d.id, &pending_in(0)).await.expect("replay");
    assert_eq!((replayed.status, replayed.attempts), (DeliveryStatus::Pending, 2), "[attempts] replay keeps count");
    store.record_attempt(&attempt(&d, Some(204), None), &settled(DeliveryStatus::Succeeded)).await.expect("again");
    assert!(store.set_delivery_status(AccountId::new(), d.id, &pending_in(0)).await.is_err_and(|x| is_not_found(&x)));
}

/// Deliveries list by endpoint, event and status with paging; FIFO sees
/// earlier pending deliveries of the same key only.
pub async fn deliveries_list_filter_and_fifo(store: Arc<dyn Store>) {
    let a = new_account(&store, "list").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let other = endpoint(a, "https://example.com/other");
    add(&store, &other).await;
    let events: Vec<EventId> = (0..5).map(|_| event_id()).collect();
    let mut ds = Vec::new();
    for ev_id in &events {
        ds.push(store.create_delivery(&delivery(&e, *ev_id, Some("c1"))).await.expect("create").0);
    }
    store.create_delivery(&delivery(&other, events[0], Some("c1"))).await.expect("other");
    store.record_attempt(&attempt(&ds[0], Some(200), None), &settled(DeliveryStatus::Succeeded)).await.expect("ok");
    let mut q = DeliveryQuery {
        endpoint_id: Some(e.id),
        event_id: None,
        status: None,
        page: PageRequest::first(2).expect("limit"),
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list_deliveries(a, &q).await.expect("list");
        seen.extend(page.items.iter().map(|d| d.id));
        match page.next_cursor {
            Some(c) => q.page = PageRequest::new(Some(&c), 2).expect("cursor"),
            None => break,
        }
    }
    assert_eq!(seen, ds.iter().map(|d| d.id).collect::<Vec<_>>(), "[deliveries_list] pages in id order");
    let q = DeliveryQuery {
        endpoint_id: Some(e.id),
        event_id: None,
        status: Some(DeliveryStatus::Succeeded),
        page: PageRequest::first(50).expect("l"),
    };
    assert_eq!(store.list_deliveries(a, &q).await.expect("list").items.len(), 1, "[deliveries_list] by status");
    let q = DeliveryQuery { endpoint_id: None, event_id: Some(events[0]), status: None, page: q.page };
    assert_eq!(store.list_deliveries(a, &q).await.expect("list").items.len(), 2, "[deliveries_list] by event");
    // ds[0] succeeded: ds[1] has nothing pending before it; ds[2] has ds[1].
    assert!(!store.has_earlier_pending(a, e.id, "c1", events[1]).await.expect("fifo"), "[fifo] head");
    assert!(store.has_earlier_pending(a, e.id, "c1", events[2]).await.expect("fifo"), "[fifo] behind the head");
    assert!(!store.has_earlier_pending(a, e.id, "c2", events[2]).await.expect("fifo"), "[fifo] another key");
    assert!(!store.has_earlier_pending(a, other.id, "c1", events[0]).await.expect("fifo"), "[fifo] other endpoint");
    assert!(
        store.has_earlier_pending(a, other.id, "c1", events[4]).await.expect("fifo"),
        "[fifo] other endpoint, later"
    );
}

/// An attempt's context: the delivery as stored, its endpoint's version and
/// failure state (a `failing_since` change keeps the version, an update
/// moves it), the FIFO check per ordering key, and `None` for a missing
/// delivery or another account's.
pub async fn attempt_context_reads_delivery_endpoint_and_fifo(store: Arc<dyn Store>) {
    let a = new_account(&store, "ctx").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let events: Vec<EventId> = (0..3).map(|_| event_id()).collect();
    let d0 = store.create_delivery(&delivery(&e, events[0], Some("c1"))).await.expect("create").0;
    let d1 = store.create_delivery(&delivery(&e, events[1], Some("c1"))).await.expect("create").0;
    let d2 = store.create_delivery(&delivery(&e, events[2], None)).await.expect("create").0;
    let ctx = |id| {
        let store = store.clone();
        async move { store.attempt_context(a, id).await.expect("attempt_context") }
    };
    let c0 = ctx(d0.id).await.expect("found");
    assert_eq!(c0.delivery, d0, "[attempt_context] the delivery as stored");
    let fresh = EndpointState { version: 0, enabled: true, failing_since: None };
    assert_eq!(c0.endpoint, Some(fresh), "[attempt_context] the endpoint's state");
    assert!(!c0.earlier_pending, "[attempt_context] the head of its key waits for nothing");
    assert!(ctx(d1.id).await.expect("found").earlier_pending, "[attempt_context] behind a pending one");
    assert!(!ctx(d2.id).await.expect("found").earlier_pending, "[attempt_context] no key, no wait");
    store.record_attempt(&attempt(&d0, Some(200), None), &settled(DeliveryStatus::Succeeded)).await.expect("ok");
    let c1 = ctx(d1.id).await.expect("found");
    assert!(!c1.earlier_pending, "[attempt_context] the earlier one settled");
    let since = now();
    store.set_endpoint_failing(a, e.id, Some(since)).await.expect("failing");
    let state = ctx(d1.id).await.expect("found").endpoint.expect("endpoint");
    assert_eq!((state.version, state.failing_since), (0, Some(since)), "[attempt_context] failing, same version");
    let upd = WebhookEndpoint { description: "moved".into(), ..store.get_endpoint(a, e.id).await.expect("get") };
    store.update_endpoint(&upd, &ev(a, EventType::ENDPOINT_UPDATED)).await.expect("update");
    let state = ctx(d1.id).await.expect("found").endpoint.expect("endpoint");
    assert_eq!(state.version, 1, "[attempt_context] an update moves the version");
    store.disable_endpoint(a, e.id, "410 Gone", &ev(a, EventType::ENDPOINT_DISABLED)).await.expect("disable");
    let state = ctx(d1.id).await.expect("found").endpoint.expect("endpoint");
    assert!(!state.enabled && state.version == 2, "[attempt_context] disabled: {state:?}");
    assert!(ctx(WebhookDeliveryId::new()).await.is_none(), "[attempt_context] a missing delivery");
    let other = store.attempt_context(AccountId::new(), d1.id).await.expect("attempt_context");
    assert!(other.is_none(), "[attempt_context] another account's delivery is not found");
}

/// The batch forms answer per request, in the order asked: contexts
/// (`None` for a missing or foreign delivery), attempt records (`false` for a
/// settled or missing delivery; two attempts of one delivery both counted
/// while it stays pending), endpoint lists of several accounts.
pub async fn batched_reads_and_records_answer_in_order(store: Arc<dyn Store>) {
    let a = new_account(&store, "batch-a").await;
    let b = new_account(&store, "batch-b").await;
    let ea = endpoint(a, "https://example.com/a");
    add(&store, &ea).await;
    let eb = endpoint(b, "https://example.com/b");
    add(&store, &eb).await;
    let eb2 = endpoint(b, "https://example.com/b2");
    add(&store, &eb2).await;
    let da = store.create_delivery(&delivery(&ea, event_id(), Some("k"))).await.expect("create").0;
    let da2 = store.create_delivery(&delivery(&ea, event_id(), Some("k"))).await.expect("create").0;
    let db = store.create_delivery(&delivery(&eb, event_id(), None)).await.expect("create").0;
    let missing = WebhookDeliveryId::new();
    let asked = [(b, db.id), (a, missing), (a, da2.id), (b, da.id), (a, da.id)];
    let got = store.attempt_contexts(&asked).await.expect("attempt_contexts");
    assert_eq!(got.len(), 5, "[batch] one answer per request");
    assert_eq!(got[0].as_ref().map(|c| c.delivery.id), Some(db.id), "[batch] first: b's delivery");
    assert!(got[1].is_none() && got[3].is_none(), "[batch] missing and foreign deliveries are None");
    assert!(got[2].as_ref().is_some_and(|c| c.earlier_pending), "[batch] the FIFO check per request");
    assert!(got[4].as_ref().is_some_and(|c| !c.earlier_pending && c.endpoint.is_some()), "[batch] {:?}", got[4]);
    assert!(store.attempt_contexts(&[]).await.expect("empty").is_empty(), "[batch] an empty batch");

    let ok = settled(DeliveryStatus::Succeeded);
    let gone = WebhookDelivery { id: missing, ..da.clone() };
    let records = vec![
        (attempt(&da, Some(500), Some("HTTP 500")), pending_in(5)),
        (attempt(&gone, Some(200), None), ok.clone()),
        (attempt(&db, Some(200), None), ok.clone()),
    ];
    let done = store.record_attempts(&records).await.expect("record_attempts");
    assert_eq!(done, vec![true, false, true], "[batch] recorded, missing, recorded");
    let again = store.record_attempts(&[(attempt(&db, Some(200), None), ok.clone())]).await.expect("again");
    assert_eq!(again, vec![false], "[batch] a settled delivery takes no attempt");
    let twice =
        vec![(attempt(&da, Some(503), Some("HTTP 503")), pending_in(5)), (attempt(&da, Some(200), None), ok.clone())];
    assert_eq!(store.record_attempts(&twice).await.expect("twice"), vec![true, true], "[batch] one after the other");
    let stored = store.get_delivery(a, da.id).await.expect("get");
    assert_eq!((stored.attempts, stored.status), (3, DeliveryStatus::Succeeded), "[batch] {stored:?}");
    assert_eq!(store.list_attempts(a, da.id).await.expect("attempts").len(), 3, "[batch] every attempt kept");
    assert_eq!(store.get_delivery(b, db.id).await.expect("get").attempts, 1, "[batch] one attempt on b's");

    let lists = store.list_endpoints_of(&[b, a]).await.expect("list_endpoints_of");
    let mut want: Vec<_> = [ea.id, eb.id, eb2.id].into_iter().collect();
    let mut ids: Vec<_> = lists.iter().map(|e| e.id).collect();
    want.sort_unstable();
    ids.sort_unstable();
    assert_eq!(ids, want, "[batch] every endpoint of both accounts");
    let of_b: Vec<_> = lists.iter().filter(|e| e.account_id == b).map(|e| e.id).collect();
    let listed_b: Vec<_> = store.list_endpoints(b).await.expect("list").iter().map(|e| e.id).collect();
    assert_eq!(of_b, listed_b, "[batch] an account's endpoints in list_endpoints order");
}

/// Failed deliveries since a time, oldest first, paged by id.
pub async fn failed_deliveries_since_pages(store: Arc<dyn Store>) {
    let a = new_account(&store, "recover").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let mut failed = Vec::new();
    for i in 0..4 {
        let (d, _) = store.create_delivery(&delivery(&e, event_id(), None)).await.expect("create");
        let status = if i == 1 { DeliveryStatus::Succeeded } else { DeliveryStatus::Failed };
        store.record_attempt(&attempt(&d, Some(500), Some("HTTP 500")), &settled(status)).await.expect("record");
        if status == DeliveryStatus::Failed {
            failed.push(d.id);
        }
    }
    let since = now() - Duration::hours(1);
    let first = store.failed_deliveries_since(a, e.id, since, None, 2).await.expect("page 1");
    assert_eq!(first.iter().map(|d| d.id).collect::<Vec<_>>(), failed[..2], "[recover] first page");
    let rest = store.failed_deliveries_since(a, e.id, since, Some(failed[1]), 2).await.expect("page 2");
    assert_eq!(rest.iter().map(|d| d.id).collect::<Vec<_>>(), failed[2..], "[recover] second page");
    let later = store.failed_deliveries_since(a, e.id, now() + Duration::hours(1), None, 10).await.expect("later");
    assert!(later.is_empty(), "[recover] nothing created after the future");
    assert!(store.failed_deliveries_since(a, e.id, since, None, 0).await.is_err(), "[recover] limit checked");
}

/// Deleting an endpoint removes its deliveries and their attempts.
pub async fn endpoint_delete_takes_deliveries(store: Arc<dyn Store>) {
    let a = new_account(&store, "del").await;
    let e = endpoint(a, "https://example.com/hook");
    add(&store, &e).await;
    let (d, _) = store.create_delivery(&delivery(&e, event_id(), None)).await.expect("create");
    store.record_attempt(&attempt(&d, None, Some("refused")), &pending_in(1)).await.expect("record");
    store.delete_endpoint(a, e.id, &ev(a, EventType::ENDPOINT_DELETED)).await.expect("delete");
    assert!(store.get_delivery(a, d.id).await.is_err_and(|x| is_not_found(&x)), "[delete] delivery gone");
    assert!(store.list_attempts(a, d.id).await.is_err_and(|x| is_not_found(&x)), "[delete] attempts gone");
}

//! The event log and its outbox: the [`EventStore`](crate::EventStore) contract, and one
//! event per successful mutation of any aggregate.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{contact, ev, events_of, insert, is_conflict, is_not_found, new_account, now, outbound, phone, status};
use crate::{Contact, ContactId, Error, Event, EventType, MessageStatus, NewTemplate, Store, Template};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    event_per_mutation(make().await).await;
    failed_mutations_write_no_event(make().await).await;
    events_cursor_and_limits(make().await).await;
    outbox_claim_and_ack(make().await).await;
    outbox_lease_expiry(make().await).await;
    outbox_nack_retries_later(make().await).await;
    outbox_consumers_are_independent(make().await).await;
    outbox_concurrent_claims_never_overlap(make().await).await;
}

/// Each successful mutation appends exactly its event, readable in order.
pub async fn event_per_mutation(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    let created = Event::new(a, EventType::CONTACT_CREATED, &c, now());
    store.insert_contact(&c, &created).await.expect("insert");
    let mut u = c.clone();
    u.name = "Ana B".into();
    let updated = ev(a, EventType::CONTACT_UPDATED);
    store.update_contact(&u, &updated).await.expect("update");
    let m = outbound(&c, "oi");
    let queued = ev(a, EventType::MESSAGE_QUEUED);
    store.insert_message(&m, &queued).await.expect("insert");
    let moved = ev(a, EventType::MESSAGE_STATUS_UPDATED);
    store.update_message_status(a, m.id, &status(MessageStatus::Sent, Some("w")), &moved).await.expect("s");
    let t = Template::new(a, NewTemplate { name: "t".into(), body: "x".into(), ..Default::default() }, now())
        .expect("template");
    let t_created = ev(a, EventType::TEMPLATE_CREATED);
    store.insert_template(&t, &t_created).await.expect("insert");
    let deleted = ev(a, EventType::CONTACT_DELETED);
    store.delete_contact(a, c.id, &deleted).await.expect("delete");

    let log = events_of(&store, a).await;
    let types: Vec<&str> = log.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "account.created",
            "contact.created",
            "contact.updated",
            "message.queued",
            "message.status_updated",
            "template.created",
            "contact.deleted"
        ],
        "[events] one event per mutation, in order"
    );
    assert_eq!(log[1], created, "[events] event stored exactly (id, type, payload, time)");
    assert_eq!(log[6].id, deleted.id, "[events] ids preserved");
}

/// Refused mutations leave the log untouched.
pub async fn failed_mutations_write_no_event(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let before = events_of(&store, a).await;
    let _ = store.insert_contact(&contact(a, "Dup", "+5511987654321"), &ev(a, EventType::CONTACT_CREATED)).await;
    let _ = store.get_contact(a, ContactId::new()).await;
    let mut stale = c.clone();
    stale.version = 7;
    let _ = store.update_contact(&stale, &ev(a, EventType::CONTACT_UPDATED)).await;
    let _ = store.delete_contact(a, ContactId::new(), &ev(a, EventType::CONTACT_DELETED)).await;
    let _ = store
        .insert_message(&outbound(&contact(a, "x", "+5511900000001"), "x"), &ev(a, EventType::MESSAGE_QUEUED))
        .await;
    assert_eq!(events_of(&store, a).await, before, "[events] failed mutations append nothing");

    let reused = before.last().expect("events").clone();
    let fresh = contact(a, "Reuso", "+5511900000002");
    let err = store.insert_contact(&fresh, &reused).await.expect_err("reused event id");
    assert!(is_conflict(&err), "[events] a reused event id is Conflict, got {err}");
    assert!(is_not_found(&store.get_contact(a, fresh.id).await.expect_err("x")), "[events] nothing stored");
    assert_eq!(events_of(&store, a).await, before, "[events] log unchanged");
}

/// Event listing: cursor, limit bounds, per-account and global reads.
pub async fn events_cursor_and_limits(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    for i in 0..5 {
        insert(&store, &contact(a, &format!("A{i}"), &phone(i))).await;
        insert(&store, &contact(b, &format!("B{i}"), &phone(i))).await;
    }
    let first = store.list_events(a, None, 2).await.expect("list");
    assert_eq!(first.len(), 2, "[events] limit");
    let rest = store.list_events(a, Some(first[1].id), 1000).await.expect("list");
    assert_eq!(rest.len(), 4, "[events] after cursor (6 events for A in all)");
    assert!(rest.iter().all(|e| e.account_id == a), "[events] only the account's events");
    assert!(rest.iter().all(|e| e.id > first[1].id), "[events] strictly after the cursor");
    let all = store.read_all_events(None, 1000).await.expect("all");
    assert_eq!(all.len(), 12, "[events] read_all crosses accounts");
    let ids: Vec<_> = all.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "[events] id order");
    let tail = store.read_all_events(Some(all[9].id), 1000).await.expect("all");
    assert_eq!(tail.len(), 2, "[events] read_all after cursor");
    for bad in [0, 1001] {
        let err = store.list_events(a, None, bad).await.expect_err("limit");
        assert!(matches!(err, Error::Validation { .. }), "[events] limit {bad} is Validation");
        let err = store.read_all_events(None, bad).await.expect_err("limit");
        assert!(matches!(err, Error::Validation { .. }), "[events] read_all limit {bad} is Validation");
    }
}

/// Outbox: events after registration are queued; claim leases, ack removes.
pub async fn outbox_claim_and_ack(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    insert(&store, &contact(a, "Antes", &phone(0))).await;
    store.register_consumer("webhooks", &crate::EventFilter::all()).await.expect("register");
    store.register_consumer("webhooks", &crate::EventFilter::all()).await.expect("register is idempotent");
    let err = store.register_consumer("Bad Name!", &crate::EventFilter::all()).await.expect_err("bad name");
    assert!(matches!(err, Error::Validation { .. }), "[outbox] consumer names are validated");
    assert_eq!(store.pending("webhooks").await.expect("pending"), 0, "[outbox] earlier events are not queued");
    let mut expected = Vec::new();
    for i in 1..=3 {
        let c = contact(a, &format!("C{i}"), &phone(i));
        let e = ev(a, EventType::CONTACT_CREATED);
        store.insert_contact(&c, &e).await.expect("insert");
        expected.push(e.id);
    }
    assert_eq!(store.pending("webhooks").await.expect("pending"), 3, "[outbox] queued per event");
    let claims = store.claim("webhooks", 10, Duration::from_secs(30)).await.expect("claim");
    let got: Vec<_> = claims.iter().map(|c| c.event.id).collect();
    assert_eq!(got, expected, "[outbox] claims in event order");
    assert!(claims.iter().all(|c| c.attempt == 1 && c.last_error.is_none()), "[outbox] first attempt");
    assert_eq!(claims[0].event.event_type, EventType::CONTACT_CREATED, "[outbox] event content");
    let again = store.claim("webhooks", 10, Duration::from_secs(30)).await.expect("claim");
    assert!(again.is_empty(), "[outbox] leased items are not handed out twice");
    store.ack(&claims[0].token).await.expect("ack");
    assert_eq!(store.pending("webhooks").await.expect("pending"), 2, "[outbox] ack removes");
    let err = store.ack(&claims[0].token).await.expect_err("ack twice");
    assert!(is_not_found(&err), "[outbox] acking a gone item is NotFound, got {err}");
    let limited = {
        let e = ev(a, EventType::CONTACT_CREATED);
        store.insert_contact(&contact(a, "C9", &phone(9)), &e).await.expect("insert");
        store.claim("webhooks", 1, Duration::from_secs(30)).await.expect("claim")
    };
    assert_eq!(limited.len(), 1, "[outbox] claim respects limit");
    let err = store.claim("webhooks", 0, Duration::from_secs(1)).await.expect_err("limit");
    assert!(matches!(err, Error::Validation { .. }), "[outbox] claim limit validated");
}

/// An expired lease is handed out again with a new token; the old token loses.
pub async fn outbox_lease_expiry(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("worker", &crate::EventFilter::all()).await.expect("register");
    insert(&store, &contact(a, "C", &phone(1))).await;
    let first = store.claim("worker", 10, Duration::from_millis(200)).await.expect("claim");
    assert_eq!(first.len(), 1, "[outbox] claimed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = store.claim("worker", 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(second.len(), 1, "[outbox] an expired lease is claimable again");
    assert_eq!(second[0].attempt, 2, "[outbox] attempt counts claims");
    assert_ne!(second[0].token.lease_id, first[0].token.lease_id, "[outbox] new lease id");
    let err = store.ack(&first[0].token).await.expect_err("stale ack");
    assert!(is_conflict(&err), "[outbox] the old lease holder cannot ack, got {err}");
    let err = store.nack(&first[0].token, Duration::ZERO, "x").await.expect_err("stale nack");
    assert!(is_conflict(&err), "[outbox] the old lease holder cannot nack, got {err}");
    store.ack(&second[0].token).await.expect("ack with the current lease");
    assert_eq!(store.pending("worker").await.expect("pending"), 0, "[outbox] drained");
}

/// A nacked item comes back after its delay with the recorded error.
pub async fn outbox_nack_retries_later(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("worker", &crate::EventFilter::all()).await.expect("register");
    insert(&store, &contact(a, "C", &phone(1))).await;
    let first = store.claim("worker", 10, Duration::from_secs(30)).await.expect("claim");
    store.nack(&first[0].token, Duration::from_millis(300), "HTTP 503 from endpoint").await.expect("nack");
    assert!(store.claim("worker", 10, Duration::from_secs(30)).await.expect("claim").is_empty(), "[outbox] not due");
    assert_eq!(store.pending("worker").await.expect("pending"), 1, "[outbox] still pending");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = store.claim("worker", 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(again.len(), 1, "[outbox] due again after the delay");
    assert_eq!(again[0].attempt, 2, "[outbox] second attempt");
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503 from endpoint"), "[outbox] error kept");
}

/// Each consumer gets its own copy of every event.
pub async fn outbox_consumers_are_independent(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("webhooks", &crate::EventFilter::all()).await.expect("register");
    store.register_consumer("automation", &crate::EventFilter::all()).await.expect("register");
    insert(&store, &contact(a, "C", &phone(1))).await;
    let w = store.claim("webhooks", 10, Duration::from_secs(30)).await.expect("claim");
    store.ack(&w[0].token).await.expect("ack");
    let au = store.claim("automation", 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(au.len(), 1, "[outbox] other consumer still has its item");
    assert_eq!(au[0].event.id, w[0].event.id, "[outbox] same event");
    assert_eq!(store.pending("webhooks").await.expect("p"), 0, "[outbox] webhooks drained");
    assert_eq!(store.pending("automation").await.expect("p"), 1, "[outbox] automation pending until acked");
    assert!(store.claim("unknown", 10, Duration::from_secs(1)).await.expect("claim").is_empty(), "[outbox] unknown");
}

/// Many workers claiming at once never receive the same item.
pub async fn outbox_concurrent_claims_never_overlap(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("webhooks", &crate::EventFilter::all()).await.expect("register");
    let contacts: Vec<Contact> = (0..120).map(|i| contact(a, &format!("C{i}"), &phone(i))).collect();
    let events: Vec<Event> = contacts.iter().map(|_| ev(a, EventType::CONTACT_CREATED)).collect();
    store.import_contacts(a, &contacts, &events).await.expect("import");
    let mut workers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store.claim("webhooks", 7, Duration::from_secs(60)).await.expect("claim");
                if batch.is_empty() {
                    break;
                }
                for c in batch {
                    got.push(c.event.id);
                    store.ack(&c.token).await.expect("ack of own lease");
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "[outbox] no item delivered twice");
    assert_eq!(all.len(), 120, "[outbox] every item delivered");
    assert_eq!(store.pending("webhooks").await.expect("p"), 0, "[outbox] drained");
}

//! The event log and its outbox: the [`EventStore`](crate::EventStore) contract, and one
//! event per successful mutation of any aggregate.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{contact, ev, events_of, insert, is_conflict, is_not_found, new_account, now, outbound, phone, status};
use crate::ports::store::MAX_NACK_ERROR_CHARS;
use crate::{
    AccountId, Claim, Contact, ContactId, Error, Event, EventFilter, EventId, EventType, MessageStatus, NewTemplate,
    QueueStats, Store, Template,
};

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
    outbox_ack_many_settles_what_it_holds(make().await).await;
    outbox_nack_retries_later(make().await).await;
    outbox_consumers_are_independent(make().await).await;
    outbox_concurrent_claims_never_overlap(make().await).await;
    outbox_consumer_filters(make().await).await;
    outbox_registering_again_replaces_the_filter(make().await).await;
    outbox_renew_extends_the_lease(make().await).await;
    outbox_release_does_not_count_the_attempt(make().await).await;
    outbox_bury_keeps_a_dead_letter(make().await).await;
    outbox_replay_dead_letters(make().await).await;
    outbox_dead_letters_tenancy(make().await).await;
    outbox_queue_stats(make().await).await;
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
    let stored = events_of(&store, a).await;
    assert_eq!(stored[1], created, "[events] event stored exactly (id, type, payload, time)");
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
    assert_eq!(log[1].id, created.id, "[events] a deleted contact's events stay (erased)");
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

/// A batch acknowledgement removes the items whose leases it holds and
/// reports, per token, which ones it removed; a stale or spent token is
/// `false`, not an error, and does not stop the others.
pub async fn outbox_ack_many_settles_what_it_holds(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("batch", &crate::EventFilter::all()).await.expect("register");
    for i in 1..=4 {
        insert(&store, &contact(a, &format!("C{i}"), &phone(i))).await;
    }
    assert!(store.ack_many(&[]).await.expect("empty batch").is_empty(), "[outbox] an empty batch is a no-op");
    let short = store.claim("batch", 1, Duration::from_millis(200)).await.expect("claim");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let held = store.claim("batch", 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(held.len(), 4, "[outbox] the expired item is claimed again with the rest");
    store.ack(&held[3].token).await.expect("ack one alone");
    let tokens = vec![held[0].token.clone(), short[0].token.clone(), held[1].token.clone(), held[3].token.clone()];
    let done = store.ack_many(&tokens).await.expect("ack_many");
    assert_eq!(done, vec![true, false, true, false], "[outbox] per token: held, stale lease, held, already removed");
    assert_eq!(store.pending("batch").await.expect("pending"), 1, "[outbox] only the unacked item is left");
    let again = store.ack_many(&[held[0].token.clone(), held[2].token.clone()]).await.expect("ack_many");
    assert_eq!(again, vec![false, true], "[outbox] a spent token is false; the last one is removed");
    assert_eq!(store.pending("batch").await.expect("pending"), 0, "[outbox] drained");
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

// ----- consumer filters, leases, dead letters ------------------------------------

/// An event of a custom type, appended with a new contact of `account`.
async fn append_typed(store: &Arc<dyn Store>, account: AccountId, n: usize, event_type: &str) -> EventId {
    let e = Event::new(
        account,
        EventType::custom(event_type).expect("valid event type"),
        &serde_json::json!({ "n": n }),
        now(),
    );
    store.insert_contact(&contact(account, &format!("T{n}"), &phone(n)), &e).await.expect("[fixture] insert_contact");
    e.id
}

/// Claims everything due for `consumer` and acks it; returns the event types, in claim order.
async fn drain_types(store: &Arc<dyn Store>, consumer: &str) -> Vec<String> {
    let claims = store.claim(consumer, 1000, Duration::from_secs(30)).await.expect("claim");
    for c in &claims {
        store.ack(&c.token).await.expect("ack");
    }
    claims.iter().map(|c| c.event.event_type.as_str().to_owned()).collect()
}

/// Claims exactly one item of `consumer`.
async fn claim_one(store: &Arc<dyn Store>, consumer: &str, lease: Duration) -> Claim {
    let mut claims = store.claim(consumer, 1, lease).await.expect("claim");
    assert_eq!(claims.len(), 1, "[outbox] one item claimable for {consumer}");
    claims.remove(0)
}

/// A consumer is queued only the events its filter passes: exact names and
/// `prefix.*` patterns, `_` in a pattern is no wildcard, single inserts and
/// imports alike.
pub async fn outbox_consumer_filters(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let only = |types: &[&str]| EventFilter::only(types).expect("valid filter");
    store.register_consumer("everything", &EventFilter::all()).await.expect("register");
    store.register_consumer("messages", &only(&["message.*"])).await.expect("register");
    store.register_consumer("created", &only(&["contact.created", "template.created"])).await.expect("register");
    store.register_consumer("under", &only(&["a_b.*", "x_y.exact"])).await.expect("register");

    let c = contact(a, "Ana", &phone(1));
    insert(&store, &c).await;
    let m = outbound(&c, "oi");
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert_message");
    let moved = ev(a, EventType::MESSAGE_STATUS_UPDATED);
    store.update_message_status(a, m.id, &status(MessageStatus::Sent, Some("w1")), &moved).await.expect("status");
    let mut u = c.clone();
    u.name = "Ana B".into();
    store.update_contact(&u, &ev(a, EventType::CONTACT_UPDATED)).await.expect("update");
    for (n, t) in [(10, "a_b.hit"), (11, "axb.miss"), (12, "a_bc.miss"), (13, "x_y.exact"), (14, "xzy.exact")] {
        append_typed(&store, a, n, t).await;
    }
    // The import path queues through its own statement.
    let imported: Vec<Contact> = (20..23).map(|i| contact(a, &format!("I{i}"), &phone(i))).collect();
    let import_events: Vec<Event> = ["contact.created", "a_b.imported", "messages.miss"]
        .iter()
        .enumerate()
        .map(|(i, t)| Event::new(a, EventType::custom(*t).expect("type"), &serde_json::json!({ "i": i }), now()))
        .collect();
    let report = store.import_contacts(a, &imported, &import_events).await.expect("import");
    assert_eq!(report.imported, 3, "[outbox] import stored");

    assert_eq!(
        drain_types(&store, "messages").await,
        ["message.queued", "message.status_updated"],
        "[outbox] `message.*` matches by prefix (and not `messages.miss`)"
    );
    assert_eq!(
        drain_types(&store, "created").await,
        ["contact.created", "contact.created"],
        "[outbox] exact names only (insert and import)"
    );
    assert_eq!(
        drain_types(&store, "under").await,
        ["a_b.hit", "x_y.exact", "a_b.imported"],
        "[outbox] `_` is literal in names and patterns; a pattern's prefix ends at its dot"
    );
    assert_eq!(drain_types(&store, "everything").await.len(), 12, "[outbox] an unfiltered consumer gets every event");
}

/// Registering a consumer again replaces its filter (items already queued
/// stay); `list_consumers` names each consumer once, sorted.
pub async fn outbox_registering_again_replaces_the_filter(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    assert!(store.list_consumers().await.expect("list").is_empty(), "[outbox] no consumers yet");
    let contacts_only = EventFilter::only(["contact.*"]).expect("filter");
    let templates_only = EventFilter::only(["template.*"]).expect("filter");
    store.register_consumer("w", &contacts_only).await.expect("register");
    append_typed(&store, a, 1, "contact.created").await;
    append_typed(&store, a, 2, "template.created").await;
    assert_eq!(store.pending("w").await.expect("pending"), 1, "[outbox] first filter");
    store.register_consumer("w", &templates_only).await.expect("register again");
    append_typed(&store, a, 3, "contact.created").await;
    append_typed(&store, a, 4, "template.created").await;
    assert_eq!(
        drain_types(&store, "w").await,
        ["contact.created", "template.created"],
        "[outbox] the new filter applies from now on; queued items stay"
    );
    store.register_consumer("w", &EventFilter::all()).await.expect("register for everything");
    append_typed(&store, a, 5, "contact.created").await;
    assert_eq!(store.pending("w").await.expect("pending"), 1, "[outbox] back to every event");
    for name in ["zeta", "a-b", "a.b", "a_b", "w"] {
        store.register_consumer(name, &EventFilter::all()).await.expect("register");
    }
    assert_eq!(
        store.list_consumers().await.expect("list"),
        ["a-b", "a.b", "a_b", "w", "zeta"],
        "[outbox] consumers once each, by name (byte order)"
    );
}

/// `renew` extends a held lease; once the lease is lost it is refused.
pub async fn outbox_renew_extends_the_lease(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("w", &EventFilter::all()).await.expect("register");
    insert(&store, &contact(a, "C", &phone(1))).await;
    let held = claim_one(&store, "w", Duration::from_millis(150)).await;
    store.renew(&held.token, Duration::from_secs(30)).await.expect("renew");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        store.claim("w", 10, Duration::from_secs(30)).await.expect("claim").is_empty(),
        "[outbox] a renewed lease outlives its first expiry"
    );
    store.ack(&held.token).await.expect("ack after renewing");
    let err = store.renew(&held.token, Duration::from_secs(1)).await.expect_err("renew a gone item");
    assert!(is_not_found(&err), "[outbox] renewing a gone item is NotFound, got {err}");

    insert(&store, &contact(a, "D", &phone(2))).await;
    let lost = claim_one(&store, "w", Duration::from_millis(100)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let winner = claim_one(&store, "w", Duration::from_secs(30)).await;
    let err = store.renew(&lost.token, Duration::from_secs(30)).await.expect_err("renew a lost lease");
    assert!(is_conflict(&err), "[outbox] renewing a lost lease is Conflict, got {err}");
    store.ack(&winner.token).await.expect("the new holder still acks");
}

/// `release` gives an item back without counting the attempt, keeping the
/// last error, due again after its delay.
pub async fn outbox_release_does_not_count_the_attempt(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("w", &EventFilter::all()).await.expect("register");
    insert(&store, &contact(a, "C", &phone(1))).await;
    let first = claim_one(&store, "w", Duration::from_secs(30)).await;
    store.nack(&first.token, Duration::ZERO, "HTTP 500").await.expect("nack");
    let second = claim_one(&store, "w", Duration::from_secs(30)).await;
    assert_eq!(second.attempt, 2, "[outbox] a nack counts");
    store.release(&second.token, Duration::ZERO).await.expect("release");
    let third = claim_one(&store, "w", Duration::from_secs(30)).await;
    assert_eq!(third.attempt, 2, "[outbox] a release does not count the attempt");
    assert_eq!(third.last_error.as_deref(), Some("HTTP 500"), "[outbox] a release keeps the last error");
    let err = store.release(&second.token, Duration::ZERO).await.expect_err("stale release");
    assert!(is_conflict(&err), "[outbox] releasing with a lost lease is Conflict, got {err}");
    store.release(&third.token, Duration::from_millis(300)).await.expect("release later");
    assert!(
        store.claim("w", 10, Duration::from_secs(30)).await.expect("claim").is_empty(),
        "[outbox] a released item waits for its delay"
    );
    assert_eq!(store.pending("w").await.expect("pending"), 1, "[outbox] still pending");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fourth = claim_one(&store, "w", Duration::from_secs(30)).await;
    assert_eq!(fourth.attempt, 2, "[outbox] still the second attempt");
}

/// `bury` dead-letters an item: kept with its (clipped) error, attempts and
/// time; never claimed, not pending; its lease is over.
pub async fn outbox_bury_keeps_a_dead_letter(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("w", &EventFilter::all()).await.expect("register");
    store.register_consumer("other", &EventFilter::all()).await.expect("register");
    insert(&store, &contact(a, "C1", &phone(1))).await;
    insert(&store, &contact(a, "C2", &phone(2))).await;
    let first = claim_one(&store, "w", Duration::from_secs(30)).await;
    store.nack(&first.token, Duration::ZERO, "try again").await.expect("nack");
    let again = claim_one(&store, "w", Duration::from_secs(30)).await;
    assert_eq!(again.token.event_id, first.token.event_id, "[outbox] the oldest event first");
    let long = "é".repeat(MAX_NACK_ERROR_CHARS + 500);
    let before = now();
    store.bury(&again.token, &long).await.expect("bury");
    let after = now();
    assert_eq!(store.pending("w").await.expect("pending"), 1, "[outbox] a dead letter is not pending");
    assert_eq!(store.pending("other").await.expect("pending"), 2, "[outbox] other consumers keep their copy");
    let next = claim_one(&store, "w", Duration::from_secs(30)).await;
    assert_ne!(next.token.event_id, again.token.event_id, "[outbox] a dead letter is never claimed");
    store.ack(&next.token).await.expect("ack");
    assert!(
        store.claim("w", 10, Duration::ZERO).await.expect("claim").is_empty(),
        "[outbox] only the dead letter left"
    );

    let dead = store.list_dead_letters("w", a, None, 10).await.expect("list");
    assert_eq!(dead.len(), 1, "[outbox] the dead letter is listed");
    let d = &dead[0];
    assert_eq!(d.consumer, "w", "[outbox] dead letter's consumer");
    assert_eq!(d.event.id, again.token.event_id, "[outbox] dead letter's event");
    assert_eq!(d.event, again.event, "[outbox] the whole event");
    assert_eq!(d.attempts, 2, "[outbox] attempts it took");
    assert_eq!(d.error.chars().count(), MAX_NACK_ERROR_CHARS, "[outbox] the error is clipped");
    assert!(long.starts_with(&d.error), "[outbox] to its first characters");
    let slack = chrono::Duration::seconds(5);
    assert!(d.dead_at >= before - slack && d.dead_at <= after + slack, "[outbox] dead_at is when it died: {d:?}");
    assert!(store.list_dead_letters("other", a, None, 10).await.expect("list").is_empty(), "[outbox] per consumer");
    assert!(
        store.list_dead_letters("w", a, Some(d.event.id), 10).await.expect("list").is_empty(),
        "[outbox] dead letters after a cursor"
    );
    for (what, err) in [
        ("ack", store.ack(&again.token).await.expect_err("ack")),
        ("nack", store.nack(&again.token, Duration::ZERO, "x").await.expect_err("nack")),
        ("renew", store.renew(&again.token, Duration::from_secs(1)).await.expect_err("renew")),
        ("release", store.release(&again.token, Duration::ZERO).await.expect_err("release")),
        ("bury", store.bury(&again.token, "x").await.expect_err("bury")),
    ] {
        assert!(is_not_found(&err), "[outbox] {what} of a dead letter is NotFound, got {err}");
    }
    let err = store.list_dead_letters("w", a, None, 0).await.expect_err("limit");
    assert!(matches!(err, Error::Validation { .. }), "[outbox] dead-letter limit validated");
    let err = store.list_dead_letters("Bad Name", a, None, 10).await.expect_err("name");
    assert!(matches!(err, Error::Validation { .. }), "[outbox] consumer name validated");
}

/// Buries every item of `consumer` now claimable, one at a time, `gap` apart;
/// returns their event ids in order.
async fn bury_all(store: &Arc<dyn Store>, consumer: &str, gap: Duration) -> Vec<EventId> {
    let mut ids = Vec::new();
    loop {
        let claims = store.claim(consumer, 1, Duration::from_secs(30)).await.expect("claim");
        let Some(c) = claims.into_iter().next() else { return ids };
        store.bury(&c.token, &format!("dead {}", ids.len())).await.expect("bury");
        ids.push(c.token.event_id);
        tokio::time::sleep(gap).await;
    }
}

/// A replayed dead letter is queued again, due now with its attempts reset;
/// `replay_dead_letters_since` replays those that died at or after a time.
pub async fn outbox_replay_dead_letters(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("w", &EventFilter::all()).await.expect("register");
    for i in 1..=4 {
        insert(&store, &contact(a, &format!("C{i}"), &phone(i))).await;
    }
    let ids = bury_all(&store, "w", Duration::from_millis(20)).await;
    assert_eq!(ids.len(), 4, "[outbox] four dead letters");
    assert_eq!(store.pending("w").await.expect("pending"), 0, "[outbox] nothing pending");

    store.replay_dead_letter("w", a, ids[0]).await.expect("replay one");
    let back = claim_one(&store, "w", Duration::from_secs(30)).await;
    assert_eq!(back.token.event_id, ids[0], "[outbox] the replayed item is claimable");
    assert_eq!(back.attempt, 1, "[outbox] attempts reset by a replay");
    assert_eq!(back.last_error.as_deref(), Some("dead 0"), "[outbox] the error it died with is its last error");
    let err = store.replay_dead_letter("w", a, ids[0]).await.expect_err("not dead any more");
    assert!(is_not_found(&err), "[outbox] replaying a live item is NotFound, got {err}");
    let err = store.replay_dead_letter("w", a, EventId::new()).await.expect_err("unknown");
    assert!(is_not_found(&err), "[outbox] replaying an unknown event is NotFound, got {err}");
    let err = store.replay_dead_letter("other", a, ids[1]).await.expect_err("other consumer");
    assert!(is_not_found(&err), "[outbox] dead letters are per consumer, got {err}");
    store.ack(&back.token).await.expect("ack");

    // Times come from the store itself: replay from the third one's death.
    let dead = store.list_dead_letters("w", a, None, 10).await.expect("list");
    let ids_listed: Vec<EventId> = dead.iter().map(|d| d.event.id).collect();
    assert_eq!(ids_listed, ids[1..], "[outbox] dead letters in event order");
    assert!(dead.windows(2).all(|w| w[0].dead_at <= w[1].dead_at), "[outbox] buried in order");
    let since = dead[1].dead_at;
    let n = store.replay_dead_letters_since("w", a, since).await.expect("replay since");
    let expected = dead.iter().filter(|d| d.dead_at >= since).count() as u64;
    assert!(expected >= 2, "[outbox] fixture: two died at or after the third");
    assert_eq!(n, expected, "[outbox] replays those that died at or after `since`");
    let still: Vec<EventId> =
        store.list_dead_letters("w", a, None, 10).await.expect("list").iter().map(|d| d.event.id).collect();
    assert_eq!(still.len() as u64, 3 - n, "[outbox] the earlier dead letter stays");
    assert!(still.contains(&ids[1]), "[outbox] the one that died before `since` is still dead");
    assert_eq!(store.pending("w").await.expect("pending"), n, "[outbox] replayed items pending again");
    let replayed = store.claim("w", 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(replayed.len() as u64, n, "[outbox] and due now");
    assert!(replayed.iter().all(|c| c.attempt == 1), "[outbox] attempts reset");
    let n = store.replay_dead_letters_since("w", a, since).await.expect("replay since again");
    assert_eq!(n, 0, "[outbox] nothing left to replay since then");
}

/// Dead letters belong to their event's account: another account neither
/// lists nor replays them.
pub async fn outbox_dead_letters_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    store.register_consumer("w", &EventFilter::all()).await.expect("register");
    insert(&store, &contact(a, "A1", &phone(1))).await;
    insert(&store, &contact(b, "B1", &phone(1))).await;
    insert(&store, &contact(a, "A2", &phone(2))).await;
    let ids = bury_all(&store, "w", Duration::ZERO).await;
    assert_eq!(ids.len(), 3, "[outbox] three dead letters");
    let of = |account: AccountId| {
        let store = store.clone();
        async move {
            let dead = store.list_dead_letters("w", account, None, 10).await.expect("list");
            assert!(dead.iter().all(|d| d.event.account_id == account), "[outbox] only the account's dead letters");
            dead.into_iter().map(|d| d.event.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(of(a).await, [ids[0], ids[2]], "[outbox] A's dead letters");
    assert_eq!(of(b).await, [ids[1]], "[outbox] B's dead letters");
    let page = store.list_dead_letters("w", a, None, 1).await.expect("list");
    assert_eq!(page.len(), 1, "[outbox] dead-letter limit");
    let err = store.replay_dead_letter("w", b, ids[0]).await.expect_err("another account's");
    assert!(is_not_found(&err), "[outbox] replaying another account's dead letter is NotFound, got {err}");
    let long_ago = now() - chrono::Duration::days(1);
    assert_eq!(store.replay_dead_letters_since("w", b, long_ago).await.expect("replay"), 1, "[outbox] B's only");
    assert_eq!(of(a).await, [ids[0], ids[2]], "[outbox] A's untouched");
    assert!(of(b).await.is_empty(), "[outbox] B's replayed");
}

/// `queue_stats`: depth (not dead), due (now, unleased), when the oldest due
/// item became due (its event's time, or its retry time), and dead letters.
pub async fn outbox_queue_stats(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("w", &EventFilter::all()).await.expect("register");
    let empty = store.queue_stats("w").await.expect("stats");
    assert_eq!(empty, QueueStats::default(), "[outbox] an empty queue");
    assert_eq!(store.queue_stats("unknown").await.expect("stats"), QueueStats::default(), "[outbox] unknown consumer");
    let mut events = Vec::new();
    for i in 1..=3 {
        let c = contact(a, &format!("C{i}"), &phone(i));
        let e = ev(a, EventType::CONTACT_CREATED);
        store.insert_contact(&c, &e).await.expect("insert");
        events.push(e);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = |depth, due, oldest: Option<&Event>, dead| QueueStats {
        depth,
        due,
        oldest_due_at: oldest.map(|e| e.occurred_at),
        dead,
    };
    assert_eq!(store.queue_stats("w").await.expect("stats"), stats(3, 3, Some(&events[0]), 0), "[outbox] all due");
    let first = claim_one(&store, "w", Duration::from_secs(30)).await;
    assert_eq!(
        store.queue_stats("w").await.expect("stats"),
        stats(3, 2, Some(&events[1]), 0),
        "[outbox] a leased item is not due"
    );
    store.nack(&first.token, Duration::from_secs(3600), "later").await.expect("nack");
    assert_eq!(
        store.queue_stats("w").await.expect("stats"),
        stats(3, 2, Some(&events[1]), 0),
        "[outbox] an item retried later is not due"
    );
    let second = claim_one(&store, "w", Duration::from_secs(30)).await;
    store.bury(&second.token, "fatal").await.expect("bury");
    assert_eq!(
        store.queue_stats("w").await.expect("stats"),
        stats(2, 1, Some(&events[2]), 1),
        "[outbox] a dead letter counts as dead, not depth"
    );
    let third = claim_one(&store, "w", Duration::from_secs(30)).await;
    store.nack(&third.token, Duration::ZERO, "again").await.expect("nack");
    let s = store.queue_stats("w").await.expect("stats");
    assert_eq!((s.depth, s.due, s.dead), (2, 1, 1), "[outbox] a retry due now is due");
    assert!(
        s.oldest_due_at.is_some_and(|t| t >= events[2].occurred_at),
        "[outbox] a retried item is due since its retry time: {s:?}"
    );
}

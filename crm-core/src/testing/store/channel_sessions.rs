//! Channel sessions: what a provider session (a WhatsApp Web page) needs
//! from the [`ChannelStore`](crate::ChannelStore) — events about a channel
//! that change nothing stored, and the lease that lets one process at a
//! time own the session.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{ev, event_count, events_of, is_not_found, new_account, now};
use crate::{Channel, ChannelId, Error, EventType, NewChannel, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    channel_events_change_nothing_and_need_the_channel(make().await).await;
    lease_has_one_owner_until_it_expires(make().await).await;
    lease_release_and_delete(make().await).await;
    concurrent_lease_takers_one_wins(make().await).await;
}

async fn add_channel(store: &Arc<dyn Store>, name: &str) -> Channel {
    let account = new_account(store, name).await;
    let input = NewChannel { kind: "recording".into(), name: name.into(), ..Default::default() };
    let c = Channel::new(account, &input, None, now()).expect("valid channel");
    store.insert_channel(&c, &ev(account, EventType::CHANNEL_CREATED)).await.expect("[fixture] insert_channel");
    c
}

/// `record_channel_event` appends the event (log and outbox), leaves the
/// channel (version, time) as it was, and is refused for a missing channel
/// or another account's one, writing nothing.
pub async fn channel_events_change_nothing_and_need_the_channel(store: Arc<dyn Store>) {
    let c = add_channel(&store, "events").await;
    let other = new_account(&store, "other").await;
    let before = event_count(&store, c.account_id).await;
    let e = ev(c.account_id, EventType::CHANNEL_STATE_CHANGED);
    store.record_channel_event(c.account_id, c.id, &e).await.expect("record");
    let events = events_of(&store, c.account_id).await;
    assert_eq!(events.len(), before + 1);
    assert_eq!(events.last().map(|x| (x.id, x.event_type.clone())), Some((e.id, EventType::CHANNEL_STATE_CHANGED)));
    let stored = store.get_channel(c.account_id, c.id).await.expect("get");
    assert_eq!((stored.version, stored.updated_at), (c.version, c.updated_at));

    let missing = store
        .record_channel_event(c.account_id, ChannelId::new(), &ev(c.account_id, EventType::CHANNEL_QR))
        .await
        .expect_err("missing channel");
    assert!(is_not_found(&missing), "{missing:?}");
    let foreign =
        store.record_channel_event(other, c.id, &ev(other, EventType::CHANNEL_QR)).await.expect_err("tenancy");
    assert!(is_not_found(&foreign), "{foreign:?}");
    assert_eq!(event_count(&store, c.account_id).await, before + 1);
    assert_eq!(event_count(&store, other).await, 1, "only the account's creation");
}

/// The first owner gets the lease and renews it; a second owner is refused
/// while it is live and takes it once it has expired; after that the first
/// owner is refused. Owners are 1–128 characters; a missing channel is
/// `NotFound`.
pub async fn lease_has_one_owner_until_it_expires(store: Arc<dyn Store>) {
    let c = add_channel(&store, "lease").await;
    let ttl = Duration::from_millis(400);
    assert!(store.acquire_channel_lease(c.id, "process-a", ttl).await.expect("a takes"));
    assert!(store.acquire_channel_lease(c.id, "process-a", ttl).await.expect("a renews"));
    assert!(!store.acquire_channel_lease(c.id, "process-b", ttl).await.expect("b refused"));
    assert_eq!(store.channel_lease_owner(c.id).await.expect("owner").as_deref(), Some("process-a"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.channel_lease_owner(c.id).await.expect("owner"), None, "expired");
    assert!(store.acquire_channel_lease(c.id, "process-b", Duration::from_secs(30)).await.expect("b takes over"));
    assert!(!store.acquire_channel_lease(c.id, "process-a", ttl).await.expect("a refused now"));
    assert_eq!(store.channel_lease_owner(c.id).await.expect("owner").as_deref(), Some("process-b"));

    for bad in ["", &"x".repeat(129)] {
        let e = store.acquire_channel_lease(c.id, bad, ttl).await.expect_err("bad owner");
        assert!(matches!(e, Error::Validation { .. }), "{e:?}");
    }
    let e = store.acquire_channel_lease(ChannelId::new(), "process-a", ttl).await.expect_err("missing");
    assert!(is_not_found(&e), "{e:?}");
}

/// Releasing works only for the holder and frees the lease at once;
/// deleting the channel drops its lease.
pub async fn lease_release_and_delete(store: Arc<dyn Store>) {
    let c = add_channel(&store, "release").await;
    let long = Duration::from_secs(600);
    assert!(store.acquire_channel_lease(c.id, "a", long).await.expect("a takes"));
    assert!(!store.release_channel_lease(c.id, "b").await.expect("b holds nothing"));
    assert_eq!(store.channel_lease_owner(c.id).await.expect("owner").as_deref(), Some("a"));
    assert!(store.release_channel_lease(c.id, "a").await.expect("a releases"));
    assert!(!store.release_channel_lease(c.id, "a").await.expect("twice"));
    assert!(store.acquire_channel_lease(c.id, "b", long).await.expect("b takes at once"));
    store.delete_channel(c.account_id, c.id, &ev(c.account_id, EventType::CHANNEL_DELETED)).await.expect("delete");
    assert_eq!(store.channel_lease_owner(c.id).await.expect("owner"), None);
    let e = store.acquire_channel_lease(c.id, "b", long).await.expect_err("deleted");
    assert!(is_not_found(&e), "{e:?}");
}

/// Eight owners race for a free lease: exactly one gets it.
pub async fn concurrent_lease_takers_one_wins(store: Arc<dyn Store>) {
    let c = add_channel(&store, "race").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.acquire_channel_lease(c.id, &format!("owner-{i}"), Duration::from_secs(60)).await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.expect("join").expect("acquire") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

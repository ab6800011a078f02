//! Groups: the [`GroupStore`](crate::GroupStore) contract (put/replace by
//! WhatsApp id, tenancy, group messages unique by provider id, receipts
//! that never move backwards).

use std::future::Future;
use std::sync::Arc;

use super::{ev, event_count, is_not_found, new_account, now};
use crate::domain::group::{Group, GroupInfo, GroupMessage, GroupParticipant};
use crate::{ChannelId, EventType, MessageContent, MessageStatus, Phone, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    groups_put_get_list(make().await).await;
    group_messages_and_receipts(make().await).await;
}

fn phone(n: u32) -> Phone {
    Phone::parse(&format!("+55119{:08}", 60_000_000 + n)).expect("valid phone")
}

fn info(jid: &str, subject: &str) -> GroupInfo {
    GroupInfo {
        jid: jid.into(),
        subject: subject.into(),
        description: Some("Ofertas".into()),
        participants: vec![GroupParticipant::phone(phone(2), false), GroupParticipant::phone(phone(1), true)],
    }
}

/// Put inserts then replaces by (account, channel, WhatsApp id) keeping id
/// and `created_at`; every field round-trips; lists are per account and
/// channel by subject; another account's group is missing.
pub async fn groups_put_get_list(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let (c1, c2) = (ChannelId::new(), ChannelId::new());
    let t0 = now() - chrono::Duration::hours(1);
    let g = Group::new(a, c1, &info("120363000000000001@g.us", "Zeta"), t0).expect("valid");
    assert_eq!(g.participants[0].phone, Some(phone(1)), "[groups] participants are sorted by phone");
    let before = event_count(&store, a).await;
    let stored = store.put_group(&g, &ev(a, EventType::GROUP_CREATED)).await.expect("[groups] put");
    assert_eq!(stored, g, "[groups] put returns what was stored");
    assert_eq!(event_count(&store, a).await, before + 1, "[groups] put records its event");
    let got = store.get_group(a, g.id).await.expect("[groups] get");
    assert_eq!(got.participants, g.participants, "[groups] participants round-trip with their admin flag");
    assert_eq!(got.description.as_deref(), Some("Ofertas"));
    assert_eq!(got.created_at.timestamp_micros(), t0.timestamp_micros(), "[groups] times round-trip");
    assert!(is_not_found(&store.get_group(b, g.id).await.expect_err("[groups] tenancy")), "[groups] tenancy");

    // The same WhatsApp group seen again: replaced in place.
    let mut again = Group::new(a, c1, &info("120363000000000001@g.us", "Alfa"), now()).expect("valid");
    again.left_at = Some(now());
    let replaced = store.put_group(&again, &ev(a, EventType::GROUP_UPDATED)).await.expect("[groups] replace");
    assert_eq!(replaced.id, g.id, "[groups] a replaced group keeps its id");
    assert_eq!(replaced.created_at.timestamp_micros(), t0.timestamp_micros(), "[groups] and its created_at");
    assert_eq!(replaced.subject, "Alfa");
    assert!(replaced.left_at.is_some(), "[groups] left_at round-trips");
    let found = store.find_group(a, c1, "120363000000000001@g.us").await.expect("[groups] find");
    assert_eq!(found.map(|f| f.subject), Some("Alfa".into()), "[groups] found by WhatsApp id");
    assert_eq!(store.find_group(a, c2, "120363000000000001@g.us").await.expect("[groups] find"), None);
    assert_eq!(store.find_group(b, c1, "120363000000000001@g.us").await.expect("[groups] find"), None);

    let other = Group::new(a, c1, &info("120363000000000002@g.us", "Beta"), now()).expect("valid");
    store.put_group(&other, &ev(a, EventType::GROUP_CREATED)).await.expect("[groups] put");
    let elsewhere = Group::new(a, c2, &info("120363000000000003@g.us", "Gama"), now()).expect("valid");
    store.put_group(&elsewhere, &ev(a, EventType::GROUP_CREATED)).await.expect("[groups] put");
    let listed: Vec<String> =
        store.list_groups(a, c1).await.expect("[groups] list").into_iter().map(|g| g.subject).collect();
    assert_eq!(listed, ["Alfa", "Beta"], "[groups] a channel's groups by subject");
    assert!(store.list_groups(b, c1).await.expect("[groups] list").is_empty(), "[groups] tenancy in lists");

    // Refused writes write nothing.
    let count = event_count(&store, a).await;
    let mut bad = Group::new(a, c1, &info("120363000000000004@g.us", "X"), now()).expect("valid");
    bad.jid = "5511@c.us".into();
    assert!(store.put_group(&bad, &ev(a, EventType::GROUP_CREATED)).await.is_err(), "[groups] a bad id is refused");
    let wrong = Group::new(a, c1, &info("120363000000000005@g.us", "Y"), now()).expect("valid");
    assert!(store.put_group(&wrong, &ev(b, EventType::GROUP_CREATED)).await.is_err(), "[groups] event account");
    assert_eq!(event_count(&store, a).await, count, "[groups] refused writes record nothing");
}

/// Messages are stored once per provider id, listed oldest first after a
/// cursor, tenancy holds, and receipts move the message and each
/// participant only forward.
pub async fn group_messages_and_receipts(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = ChannelId::new();
    let g = Group::new(a, c, &info("120363000000000009@g.us", "Vendas"), now()).expect("valid");
    let g = store.put_group(&g, &ev(a, EventType::GROUP_CREATED)).await.expect("[groups] put");

    let inbound = GroupMessage::inbound(
        &g,
        phone(2),
        Some("Maria".into()),
        MessageContent::text("Oi, grupo"),
        "false_120363000000000009@g.us_IN1".into(),
        now(),
        now(),
    )
    .expect("valid");
    let before = event_count(&store, a).await;
    assert!(
        store.insert_group_message(&inbound, &ev(a, EventType::GROUP_MESSAGE_RECEIVED)).await.expect("[groups] in")
    );
    let mut repeat = inbound.clone();
    repeat.id = crate::MessageId::new();
    let again = store.insert_group_message(&repeat, &ev(a, EventType::GROUP_MESSAGE_RECEIVED)).await;
    assert!(!again.expect("[groups] a repeated provider id is no error"), "[groups] stored once");
    assert_eq!(event_count(&store, a).await, before + 1, "[groups] a repeat writes no event");

    let out = GroupMessage::outbound(&g, MessageContent::text("Bom dia"), "true_g_OUT1".into(), now()).expect("valid");
    assert!(store.insert_group_message(&out, &ev(a, EventType::GROUP_MESSAGE_SENT)).await.expect("[groups] out"));
    let all = store.list_group_messages(a, g.id, None, 10).await.expect("[groups] list");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], inbound, "[groups] every field round-trips (sender too)");
    assert_eq!(all[1].id, out.id, "[groups] oldest first");
    let after = store.list_group_messages(a, g.id, Some(inbound.id), 10).await.expect("[groups] list");
    assert_eq!(after.iter().map(|m| m.id).collect::<Vec<_>>(), [out.id], "[groups] after a cursor");
    assert!(store.list_group_messages(b, g.id, None, 10).await.expect("[groups] list").is_empty(), "[groups] tenancy");
    assert!(store.list_group_messages(a, g.id, None, 0).await.is_err(), "[groups] limit 0 is refused");
    assert!(store.find_group_message(b, "true_g_OUT1").await.expect("[groups] find").is_none(), "[groups] tenancy");

    // Receipts: the first delivery moves the message; stale ones change nothing.
    let (p1, p2) = (phone(1), phone(2));
    let m = store.apply_group_receipt(a, "true_g_OUT1", Some(&p1), MessageStatus::Delivered, now()).await;
    let m = m.expect("[groups] receipt");
    assert_eq!(m.status, MessageStatus::Delivered, "[groups] delivered when the first participant is");
    let m = store.apply_group_receipt(a, "true_g_OUT1", Some(&p2), MessageStatus::Read, now()).await.expect("receipt");
    assert_eq!(m.status, MessageStatus::Read);
    let m = store.apply_group_receipt(a, "true_g_OUT1", Some(&p1), MessageStatus::Read, now()).await.expect("receipt");
    let m2 = store.apply_group_receipt(a, "true_g_OUT1", Some(&p1), MessageStatus::Delivered, now()).await;
    assert_eq!(m2.expect("[groups] a stale receipt is no error"), m, "[groups] a stale receipt changes nothing");
    let stored = store.find_group_message(a, "true_g_OUT1").await.expect("[groups] find").expect("stored");
    assert_eq!(stored.status, MessageStatus::Read, "[groups] the status never moves backwards");
    assert_eq!(stored.receipts.get(p1.as_str()), Some(&MessageStatus::Read), "[groups] per-participant receipts kept");
    assert_eq!(stored.receipts.get(p2.as_str()), Some(&MessageStatus::Read));
    let e = store.apply_group_receipt(b, "true_g_OUT1", None, MessageStatus::Read, now()).await;
    assert!(is_not_found(&e.expect_err("[groups] tenancy")), "[groups] another account's message is missing");

    // A message of a missing group is refused.
    let other = Group::new(b, c, &info("120363000000000010@g.us", "B"), now()).expect("valid");
    let orphan = GroupMessage::outbound(&other, MessageContent::text("x"), "pid-x".into(), now()).expect("valid");
    let e = store.insert_group_message(&orphan, &ev(b, EventType::GROUP_MESSAGE_SENT)).await;
    assert!(is_not_found(&e.expect_err("[groups] orphan")), "[groups] the group must exist");
}

//! Messages: the [`MessageStore`](crate::MessageStore) contract (insert, threads, the status
//! machine, tenancy, channel ids and client references) and the thread going
//! with its contact.

use std::future::Future;
use std::sync::Arc;

use super::{contact, ev, event_count, inbound, insert, is_conflict, is_not_found, new_account, now, outbound, status};
use crate::{
    Attachment, AttachmentState, ChannelId, Contact, ContactId, EventType, Fallback, FallbackSwap, Message,
    MessageAnnotation, MessageContent, MessageError, MessageStatus, PageRequest, Pricing, ReplyTo, StatusUpdate, Store,
};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    messages_insert_and_find(make().await).await;
    messages_move_contact_activity_forward(make().await).await;
    message_thread_pagination(make().await).await;
    message_status_only_moves_forward(make().await).await;
    message_status_concurrent_updates(make().await).await;
    message_tenancy(make().await).await;
    contact_delete_cascades(make().await).await;
    message_channel_and_client_reference_roundtrip(make().await).await;
    message_client_reference_unique_per_account(make().await).await;
    concurrent_inserts_with_one_client_reference(make().await).await;
    contact_delete_frees_client_reference(make().await).await;
    concurrent_sends_to_one_contact(make().await).await;
    message_whatsapp_details_roundtrip(make().await).await;
    last_inbound_by_channel(make().await).await;
    annotate_message(make().await).await;
    annotate_message_fallback_swap(make().await).await;
}

fn referenced(c: &Contact, text: &str, reference: &str) -> Message {
    outbound(c, text).with_client_reference(reference).expect("valid client reference")
}

/// Messages: insert, get, find by provider id, provider id uniqueness, missing contact.
pub async fn messages_insert_and_find(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = inbound(&c, "wamid.1", now());
    store.insert_message(&m, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    assert_eq!(store.get_message(a, m.id).await.expect("get"), m, "[messages] round trip");
    let found = store.find_message_by_provider_id(a, "wamid.1").await.expect("find");
    assert_eq!(found.map(|m| m.id), Some(m.id), "[messages] find by provider id");
    assert!(store.find_message_by_provider_id(a, "wamid.2").await.expect("find").is_none(), "[messages] unknown");

    let dup = inbound(&c, "wamid.1", now());
    let err = store.insert_message(&dup, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect_err("dup");
    assert!(is_conflict(&err), "[messages] provider id unique per account, got {err}");

    let rich = Message::outbound(
        a,
        c.id,
        MessageContent::Location { latitude: -23.55, longitude: -46.63, name: Some("Loja".into()), address: None },
        now(),
    )
    .expect("message");
    store.insert_message(&rich, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    assert_eq!(store.get_message(a, rich.id).await.expect("get"), rich, "[messages] structured content round trip");

    let orphan = outbound(&contact(a, "Ninguém", "+5511900000009"), "x");
    let err = store.insert_message(&orphan, &ev(a, EventType::MESSAGE_QUEUED)).await.expect_err("orphan");
    assert!(is_not_found(&err), "[messages] message for a missing contact is NotFound, got {err}");
}

/// Inserting a message moves the contact's last inbound/outbound time forward only.
pub async fn messages_move_contact_activity_forward(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let t1 = now();
    store.insert_message(&inbound(&c, "w1", t1), &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    let older = t1 - chrono::Duration::hours(1);
    store.insert_message(&inbound(&c, "w0", older), &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    let out = outbound(&c, "oi");
    store.insert_message(&out, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let got = store.get_contact(a, c.id).await.expect("get");
    assert_eq!(got.last_inbound_at, Some(t1), "[messages] last_inbound_at is the newest inbound time");
    assert_eq!(got.last_outbound_at, Some(out.created_at), "[messages] last_outbound_at set");

    // An edit made from a copy read before the messages keeps the activity times.
    let mut stale_copy = c.clone();
    stale_copy.name = "Ana Editada".into();
    let stored = store.update_contact(&stale_copy, &ev(a, EventType::CONTACT_UPDATED)).await.expect("update");
    assert_eq!(stored.last_inbound_at, Some(t1), "[messages] update_contact keeps last_inbound_at");
    assert_eq!(stored.last_outbound_at, Some(out.created_at), "[messages] update_contact keeps last_outbound_at");
    let got = store.get_contact(a, c.id).await.expect("get");
    assert_eq!(got, stored, "[messages] stored contact equals update's result");
}

/// Threads list oldest first with keyset pages, per contact.
pub async fn message_thread_pagination(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    let other = contact(a, "Bia", "+5511912345678");
    insert(&store, &c).await;
    insert(&store, &other).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let m = outbound(&c, &format!("msg {i}"));
        store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
        ids.push(m.id);
        let noise = outbound(&other, "noise");
        store.insert_message(&noise, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3).expect("limit");
    loop {
        let got = store.list_thread(a, c.id, &page).await.expect("thread");
        seen.extend(got.items.iter().map(|m| m.id));
        match got.next_cursor {
            Some(cur) => page = PageRequest::new(Some(&cur), 3).expect("cursor"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "[thread] every message once, oldest first, only this contact's");
    let err = store.list_thread(a, ContactId::new(), &PageRequest::default()).await.expect_err("missing");
    assert!(is_not_found(&err), "[thread] missing contact is NotFound, got {err}");
}

/// Status updates follow the machine atomically; refused ones write no event.
pub async fn message_status_only_moves_forward(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = outbound(&c, "oi");
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let up = |s, pid| status(s, pid);
    let e = || ev(a, EventType::MESSAGE_STATUS_UPDATED);

    let sent = store.update_message_status(a, m.id, &up(MessageStatus::Sent, Some("wamid.9")), &e()).await;
    let sent = sent.expect("update").expect("queued → sent applies");
    assert_eq!(sent.status, MessageStatus::Sent, "[status] sent");
    assert_eq!(sent.provider_message_id.as_deref(), Some("wamid.9"), "[status] provider id recorded with sent");
    assert!(sent.sent_at.is_some(), "[status] sent_at set");
    let found = store.find_message_by_provider_id(a, "wamid.9").await.expect("find").map(|m| m.id);
    assert_eq!(found, Some(m.id), "[status] provider id is findable after update");

    let read = store.update_message_status(a, m.id, &up(MessageStatus::Read, None), &e()).await.expect("update");
    let read = read.expect("sent → read applies");
    assert!(read.read_at.is_some(), "[status] read_at set");
    let before = event_count(&store, a).await;
    let late = store.update_message_status(a, m.id, &up(MessageStatus::Delivered, None), &e()).await.expect("ok");
    assert!(late.is_none(), "[status] a late delivered after read is refused");
    let fail = StatusUpdate {
        status: MessageStatus::Failed,
        at: now(),
        provider_message_id: None,
        error: Some(MessageError { code: Some("131026".into()), reason: "undeliverable".into() }),
        pricing: None,
    };
    assert!(store.update_message_status(a, m.id, &fail, &e()).await.expect("ok").is_none(), "[status] read → failed");
    assert_eq!(event_count(&store, a).await, before, "[status] refused transitions write no event");
    let got = store.get_message(a, m.id).await.expect("get");
    assert_eq!(got.status, MessageStatus::Read, "[status] still read");
    assert_eq!(got, read, "[status] stored message equals the last applied result");

    let m2 = outbound(&c, "dois");
    store.insert_message(&m2, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let failed = store.update_message_status(a, m2.id, &fail, &e()).await.expect("ok").expect("queued → failed");
    assert_eq!(failed.error, fail.error, "[status] failure reason recorded");
    assert!(failed.failed_at.is_some(), "[status] failed_at set");
    for s in [MessageStatus::Sent, MessageStatus::Delivered, MessageStatus::Read, MessageStatus::Failed] {
        let r = store.update_message_status(a, m2.id, &up(s, None), &e()).await.expect("ok");
        assert!(r.is_none(), "[status] failed is terminal ({s:?} refused)");
    }

    let m3 = outbound(&c, "três");
    store.insert_message(&m3, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let err = store.update_message_status(a, m3.id, &up(MessageStatus::Sent, Some("wamid.9")), &e()).await;
    assert!(is_conflict(&err.expect_err("clash")), "[status] another message's provider id is Conflict");
    assert_eq!(store.get_message(a, m3.id).await.expect("get").status, MessageStatus::Queued, "[status] unchanged");
    let err = store.update_message_status(a, m3.id.to_owned(), &up(MessageStatus::Queued, None), &e()).await;
    assert!(err.expect("ok").is_none(), "[status] nothing moves to queued");
}

/// Racing status updates end in the furthest state, with one event per applied step.
pub async fn message_status_concurrent_updates(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = outbound(&c, "oi");
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let before = event_count(&store, a).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        let s = [MessageStatus::Sent, MessageStatus::Delivered, MessageStatus::Read][i % 3];
        let id = m.id;
        tasks.push(tokio::spawn(async move {
            store.update_message_status(a, id, &status(s, None), &ev(a, EventType::MESSAGE_STATUS_UPDATED)).await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if t.await.expect("task").expect("update").is_some() {
            applied += 1;
        }
    }
    assert!((1..=3).contains(&applied), "[status] at most one application per forward step, got {applied}");
    assert_eq!(store.get_message(a, m.id).await.expect("get").status, MessageStatus::Read, "[status] ends read");
    assert_eq!(event_count(&store, a).await, before + applied, "[status] one event per applied update");
}

/// Messages of account A are invisible and immutable from account B.
pub async fn message_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = inbound(&c, "wamid.x", now());
    store.insert_message(&m, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    assert!(is_not_found(&store.get_message(b, m.id).await.expect_err("x")), "[tenancy] get message");
    assert!(store.find_message_by_provider_id(b, "wamid.x").await.expect("f").is_none(), "[tenancy] provider id");
    let err = store.list_thread(b, c.id, &PageRequest::default()).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] thread via B");
    let err = store
        .update_message_status(b, m.id, &status(MessageStatus::Read, None), &ev(b, EventType::MESSAGE_STATUS_UPDATED))
        .await
        .expect_err("x");
    assert!(is_not_found(&err), "[tenancy] status update via B");
    let mut foreign = inbound(&c, "wamid.y", now());
    foreign.account_id = b;
    let err = store.insert_message(&foreign, &ev(b, EventType::MESSAGE_RECEIVED)).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] B cannot add to A's contact's thread");
    let own_b = contact(b, "Ana em B", "+5511987654321");
    insert(&store, &own_b).await;
    let same_pid = inbound(&own_b, "wamid.x", now());
    store.insert_message(&same_pid, &ev(b, EventType::MESSAGE_RECEIVED)).await.expect("provider ids are per account");
}

/// Deleting a contact deletes its thread.
pub async fn contact_delete_cascades(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = inbound(&c, "wamid.z", now());
    store.insert_message(&m, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    store.delete_contact(a, c.id, &ev(a, EventType::CONTACT_DELETED)).await.expect("delete");
    assert!(is_not_found(&store.get_message(a, m.id).await.expect_err("x")), "[cascade] message deleted");
    assert!(store.find_message_by_provider_id(a, "wamid.z").await.expect("f").is_none(), "[cascade] provider id gone");
}

/// A message's channel id and client reference are stored as given, kept by
/// status updates, and the reference finds the message.
pub async fn message_channel_and_client_reference_roundtrip(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let channel = ChannelId::new();
    let mut m = referenced(&c, "oi", "req-2026-11-30:abc/123");
    m.channel_id = Some(channel);
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let got = store.get_message(a, m.id).await.expect("get");
    assert_eq!(got, m, "[client reference] round trip");
    assert_eq!(got.channel_id, Some(channel), "[client reference] channel id kept (no channel row needed)");
    let found = store.find_message_by_client_reference(a, "req-2026-11-30:abc/123").await.expect("find");
    assert_eq!(found.as_ref(), Some(&m), "[client reference] find by client reference");
    assert!(
        store.find_message_by_client_reference(a, "req-2026").await.expect("find").is_none(),
        "[client reference] exact match"
    );
    let thread = store.list_thread(a, c.id, &PageRequest::default()).await.expect("thread");
    assert_eq!(thread.items, vec![m.clone()], "[client reference] thread returns the same message");

    let sent = store
        .update_message_status(
            a,
            m.id,
            &status(MessageStatus::Sent, Some("wamid.r1")),
            &ev(a, EventType::MESSAGE_STATUS_UPDATED),
        )
        .await
        .expect("update")
        .expect("queued → sent");
    assert_eq!(
        (sent.channel_id, sent.client_reference.as_deref()),
        (Some(channel), m.client_reference.as_deref()),
        "[client reference] a status update keeps both"
    );
    assert_eq!(
        store.get_message(a, m.id).await.expect("get"),
        sent,
        "[client reference] stored equals the update's result"
    );

    let plain = outbound(&c, "sem referência");
    store.insert_message(&plain, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let got = store.get_message(a, plain.id).await.expect("get");
    assert_eq!((got.channel_id, got.client_reference), (None, None), "[client reference] absent stays absent");
    let another = outbound(&c, "também sem");
    store.insert_message(&another, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("many messages without a reference");
}

/// A client reference is unique per account: repeating it is Conflict and
/// writes no event; another account may use it; lookups are per account.
pub async fn message_client_reference_unique_per_account(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let ca = contact(a, "Ana", "+5511987654321");
    let ca2 = contact(a, "Bia", "+5511912345678");
    let cb = contact(b, "Ana em B", "+5511987654321");
    for c in [&ca, &ca2, &cb] {
        insert(&store, c).await;
    }
    let first = referenced(&ca, "um", "key-1");
    store.insert_message(&first, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let before = event_count(&store, a).await;
    for (dup, label) in
        [(referenced(&ca, "dois", "key-1"), "same contact"), (referenced(&ca2, "dois", "key-1"), "another contact")]
    {
        let err = store.insert_message(&dup, &ev(a, EventType::MESSAGE_QUEUED)).await.expect_err("dup");
        match &err {
            crate::Error::Conflict { reason, .. } => {
                assert!(reason.contains("client reference"), "[client reference] the reason names it: {reason}")
            }
            other => panic!("[client reference] a repeated reference ({label}) is Conflict, got {other}"),
        }
        assert!(
            is_not_found(&store.get_message(a, dup.id).await.expect_err("x")),
            "[client reference] nothing stored ({label})"
        );
    }
    assert_eq!(event_count(&store, a).await, before, "[client reference] refused inserts write no event");
    let got = store.get_contact(a, ca2.id).await.expect("get");
    assert_eq!(got.last_outbound_at, None, "[client reference] a refused insert does not move the contact's activity");

    let in_b = referenced(&cb, "um em B", "key-1");
    store.insert_message(&in_b, &ev(b, EventType::MESSAGE_QUEUED)).await.expect("another account may reuse it");
    let found_a = store.find_message_by_client_reference(a, "key-1").await.expect("find").map(|m| m.id);
    let found_b = store.find_message_by_client_reference(b, "key-1").await.expect("find").map(|m| m.id);
    assert_eq!((found_a, found_b), (Some(first.id), Some(in_b.id)), "[client reference] each account finds its own");
    let c = new_account(&store, "C").await;
    assert!(
        store.find_message_by_client_reference(c, "key-1").await.expect("find").is_none(),
        "[client reference] tenancy"
    );
    assert!(
        store.find_message_by_client_reference(a, "key-2").await.expect("find").is_none(),
        "[client reference] unknown"
    );
}

/// Concurrent inserts carrying one client reference store exactly one message.
pub async fn concurrent_inserts_with_one_client_reference(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let mut contacts = Vec::new();
    for i in 0..2 {
        let c = contact(a, &format!("C{i}"), &super::phone(i));
        insert(&store, &c).await;
        contacts.push(c);
    }
    let before = event_count(&store, a).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let m = referenced(&contacts[i % 2], &format!("try {i}"), "idem-42");
        tasks.push(tokio::spawn(async move {
            store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.map(|()| m.id)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            Ok(id) => winners.push(id),
            Err(e) => assert!(is_conflict(&e), "[concurrency] losers get Conflict, got {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "[concurrency] exactly one message per client reference");
    let found = store.find_message_by_client_reference(a, "idem-42").await.expect("find").map(|m| m.id);
    assert_eq!(found, winners.first().copied(), "[concurrency] the reference finds the winner");
    assert_eq!(event_count(&store, a).await, before + 1, "[concurrency] one message event");
}

/// Deleting a contact deletes its messages and frees their client references.
pub async fn contact_delete_frees_client_reference(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = referenced(&c, "oi", "ref-x");
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    store.delete_contact(a, c.id, &ev(a, EventType::CONTACT_DELETED)).await.expect("delete");
    assert!(
        store.find_message_by_client_reference(a, "ref-x").await.expect("find").is_none(),
        "[cascade] reference freed"
    );
    let again = contact(a, "Ana de novo", "+5511987654321");
    insert(&store, &again).await;
    let m2 = referenced(&again, "oi de novo", "ref-x");
    store.insert_message(&m2, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("the freed reference is usable again");
    let found = store.find_message_by_client_reference(a, "ref-x").await.expect("find").map(|m| m.id);
    assert_eq!(found, Some(m2.id), "[cascade] the reference finds the new message");
}

/// Concurrent sends to one contact are all stored with their events, the
/// contact's `last_outbound_at` lands on one of their times (never later than
/// the newest), and a delete racing sends to another contact leaves none of
/// its messages behind.
pub async fn concurrent_sends_to_one_contact(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let kept = contact(a, "Ana", "+5511987654321");
    let doomed = contact(a, "Bia", "+5511987654322");
    insert(&store, &kept).await;
    insert(&store, &doomed).await;
    let before = event_count(&store, a).await;
    let send = |c: &Contact, i: usize| {
        let store = store.clone();
        let m = outbound(c, &format!("oi {i}"));
        tokio::spawn(async move {
            let stored = store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await;
            (m, stored)
        })
    };
    let mut to_kept = Vec::new();
    let mut to_doomed = Vec::new();
    for i in 0..16 {
        to_kept.push(send(&kept, i));
        to_doomed.push(send(&doomed, i));
    }
    let delete = {
        let store = store.clone();
        let id = doomed.id;
        tokio::spawn(async move { store.delete_contact(a, id, &ev(a, EventType::CONTACT_DELETED)).await })
    };
    let mut times = Vec::new();
    for t in to_kept {
        let (m, stored) = t.await.expect("task");
        stored.expect("[concurrency] every send to one contact is stored");
        times.push(m.created_at);
    }
    let mut doomed_stored = 0;
    let mut doomed_ids = Vec::new();
    for t in to_doomed {
        let (m, stored) = t.await.expect("task");
        match stored {
            Ok(()) => doomed_stored += 1,
            Err(e) => assert!(is_not_found(&e), "[concurrency] a send after the delete is NotFound, got {e}"),
        }
        doomed_ids.push(m.id);
    }
    delete.await.expect("task").expect("delete");
    for id in doomed_ids {
        let left = store.get_message(a, id).await;
        assert!(left.is_err_and(|e| is_not_found(&e)), "[concurrency] no message outlives its contact's delete");
    }
    let newest = times.iter().max().copied();
    let got = store.get_contact(a, kept.id).await.expect("get").last_outbound_at;
    assert!(
        got.is_some_and(|t| times.contains(&t)) && got <= newest,
        "[concurrency] last_outbound_at is one of the sends' times, not after the newest: {got:?}"
    );
    let page = store.list_thread(a, kept.id, &PageRequest::first(100).expect("limit")).await.expect("thread");
    assert_eq!(page.items.len(), 16, "[concurrency] the thread holds every send");
    assert_eq!(
        event_count(&store, a).await,
        before + 16 + doomed_stored + 1,
        "[concurrency] one event per stored send, and the delete's"
    );
}

fn pricing(category: &str) -> Pricing {
    Pricing {
        billable: Some(true),
        pricing_model: Some("PMP".into()),
        category: Some(category.into()),
        pricing_type: Some("regular".into()),
        conversation_id: Some("conv-1".into()),
        conversation_origin: Some(category.into()),
        conversation_expires_at: chrono::DateTime::from_timestamp(1_764_547_200, 0),
    }
}

/// What a WhatsApp message carries beside its content (the quoted message,
/// a fallback, an attachment, pricing) is stored and read back as given, and
/// a status update with pricing records it.
pub async fn message_whatsapp_details_roundtrip(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let mut m = outbound(&c, "ignored");
    m.content = MessageContent::Template {
        name: "ola".into(),
        language: "pt_BR".into(),
        variables: [("1".to_owned(), "Ana".to_owned())].into(),
        rendered: "Olá Ana".into(),
    };
    m.reply_to =
        Some(ReplyTo { message_id: Some(crate::MessageId::new()), provider_message_id: Some("wamid.q".into()) });
    m.fallback = Some(Fallback {
        template: "ola".into(),
        language: "pt_BR".into(),
        reason: "outside the window".into(),
        original: MessageContent::text("Oi, tudo bem?"),
    });
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    assert_eq!(store.get_message(a, m.id).await.expect("get"), m, "[details] reply and fallback round trip");

    let mut up = status(MessageStatus::Sent, Some("wamid.d1"));
    up.pricing = Some(pricing("marketing"));
    let sent = store
        .update_message_status(a, m.id, &up, &ev(a, EventType::MESSAGE_STATUS_UPDATED))
        .await
        .expect("update")
        .expect("queued → sent");
    assert_eq!(sent.pricing, Some(pricing("marketing")), "[details] a status update records pricing");
    let delivered = store
        .update_message_status(
            a,
            m.id,
            &status(MessageStatus::Delivered, None),
            &ev(a, EventType::MESSAGE_STATUS_UPDATED),
        )
        .await
        .expect("update")
        .expect("sent → delivered");
    assert_eq!(delivered.pricing, Some(pricing("marketing")), "[details] an update without pricing keeps it");
    assert_eq!(store.get_message(a, m.id).await.expect("get"), delivered, "[details] stored equals the result");

    let plain = outbound(&c, "oi");
    store.insert_message(&plain, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let got = store.get_message(a, plain.id).await.expect("get");
    assert_eq!(
        (got.reply_to, got.fallback, got.attachment, got.pricing),
        (None, None, None, None),
        "[details] absent stays absent"
    );
}

/// The latest inbound time per channel (and for messages without one);
/// outbound messages, other contacts and other accounts do not count.
pub async fn last_inbound_by_channel(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = contact(a, "Ana", "+5511987654321");
    let d = contact(a, "Bia", "+5511987654322");
    let e = contact(b, "Ana", "+5511987654321");
    for x in [&c, &d, &e] {
        insert(&store, x).await;
    }
    assert!(store.last_inbound_by_channel(a, c.id).await.expect("read").is_empty(), "[window] none yet");
    let (one, two) = (ChannelId::new(), ChannelId::new());
    let t0 = now() - chrono::Duration::hours(30);
    let t1 = now() - chrono::Duration::hours(2);
    let t2 = now() - chrono::Duration::hours(1);
    let inbound_on = |who: &Contact, pid: &str, at, channel: Option<ChannelId>| {
        let mut m = inbound(who, pid, at);
        m.channel_id = channel;
        m
    };
    for m in [
        inbound_on(&c, "w1", t0, Some(one)),
        inbound_on(&c, "w2", t1, Some(one)),
        inbound_on(&c, "w3", t0, Some(two)),
        inbound_on(&c, "w4", t2, None),
        inbound_on(&d, "w5", now(), Some(two)),
        inbound_on(&e, "w6", now(), Some(two)),
    ] {
        store.insert_message(&m, &ev(m.account_id, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    }
    let mut later = outbound(&c, "resposta");
    later.channel_id = Some(two);
    store.insert_message(&later, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let mut got = store.last_inbound_by_channel(a, c.id).await.expect("read");
    got.sort_by_key(|(ch, _)| ch.map(|c| c.to_string()));
    let mut want = vec![(None, t2), (Some(one), t1), (Some(two), t0)];
    want.sort_by_key(|(ch, _)| ch.map(|c: ChannelId| c.to_string()));
    assert_eq!(got, want, "[window] the latest inbound time per channel");
    assert!(store.last_inbound_by_channel(b, c.id).await.expect("read").is_empty(), "[window] per account");
}

/// `annotate_message` sets the attachment and pricing it is given, keeps the
/// rest, writes its event, and is NotFound for another account's message.
pub async fn annotate_message(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = inbound(&c, "wamid.media", now());
    store.insert_message(&m, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    let attachment = Attachment {
        state: AttachmentState::Stored,
        provider_media_id: "1013859600285441".into(),
        mime_type: Some("image/jpeg".into()),
        sha256: Some("ab".repeat(32)),
        size: Some(1234),
        key: Some(format!("account/{a}/inbound/x-photo.jpg")),
        error: None,
        media_id: Some(crate::MediaId::new()),
    };
    let before = event_count(&store, a).await;
    let annotated = store
        .annotate_message(
            a,
            m.id,
            &MessageAnnotation { attachment: Some(attachment.clone()), pricing: None, fallback: None },
            &ev(a, EventType::MESSAGE_UPDATED),
        )
        .await
        .expect("annotate");
    assert_eq!(annotated.attachment.as_ref(), Some(&attachment), "[annotate] attachment set");
    assert_eq!((annotated.status, &annotated.content), (m.status, &m.content), "[annotate] the rest stays");
    assert_eq!(event_count(&store, a).await, before + 1, "[annotate] one event");
    let priced = store
        .annotate_message(
            a,
            m.id,
            &MessageAnnotation { attachment: None, pricing: Some(pricing("service")), fallback: None },
            &ev(a, EventType::MESSAGE_UPDATED),
        )
        .await
        .expect("annotate");
    assert_eq!(priced.attachment, Some(attachment), "[annotate] a field left None keeps its value");
    assert_eq!(priced.pricing, Some(pricing("service")), "[annotate] pricing set");
    assert_eq!(store.get_message(a, m.id).await.expect("get"), priced, "[annotate] stored equals the result");
    let b_events = event_count(&store, b).await;
    let err = store
        .annotate_message(b, m.id, &MessageAnnotation::default(), &ev(b, EventType::MESSAGE_UPDATED))
        .await
        .expect_err("another account");
    assert!(is_not_found(&err), "[annotate] another account's message is NotFound, got {err}");
    assert_eq!(event_count(&store, b).await, b_events, "[annotate] a refused annotation writes no event");
}

/// A fallback swap replaces a queued message's content (and kind) with the
/// template and records the fallback, with its event; once the message has
/// left `queued` the swap is Conflict, writes nothing and records no event.
pub async fn annotate_message_fallback_swap(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = outbound(&c, "Oi, tudo bem?");
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let swap = FallbackSwap {
        content: MessageContent::Template {
            name: "retomar".into(),
            language: "pt_BR".into(),
            variables: [("first_name".to_owned(), "Ana".to_owned())].into(),
            rendered: "Olá Ana, podemos continuar?".into(),
        },
        fallback: Fallback {
            template: "retomar".into(),
            language: "pt_BR".into(),
            reason: "the window closed while the message was queued".into(),
            original: m.content.clone(),
        },
    };
    let annotation = MessageAnnotation { fallback: Some(swap.clone()), ..MessageAnnotation::default() };
    let before = event_count(&store, a).await;
    let swapped = store.annotate_message(a, m.id, &annotation, &ev(a, EventType::MESSAGE_UPDATED)).await.expect("swap");
    assert_eq!(swapped.content, swap.content, "[swap] the template replaces the content");
    assert_eq!(swapped.kind(), crate::MessageKind::Template, "[swap] the kind follows the content");
    assert_eq!(swapped.fallback.as_ref(), Some(&swap.fallback), "[swap] the fallback is recorded");
    assert_eq!(swapped.status, MessageStatus::Queued, "[swap] the status stays");
    assert_eq!(store.get_message(a, m.id).await.expect("get"), swapped, "[swap] stored equals the result");
    assert_eq!(event_count(&store, a).await, before + 1, "[swap] one event");

    let sent = store
        .update_message_status(
            a,
            m.id,
            &status(MessageStatus::Sent, Some("wamid.swap")),
            &ev(a, EventType::MESSAGE_STATUS_UPDATED),
        )
        .await
        .expect("status")
        .expect("queued -> sent");
    let before = event_count(&store, a).await;
    let mut again = swap.clone();
    again.fallback.template = "outro".into();
    let annotation = MessageAnnotation { fallback: Some(again), ..MessageAnnotation::default() };
    let err = store
        .annotate_message(a, m.id, &annotation, &ev(a, EventType::MESSAGE_UPDATED))
        .await
        .expect_err("no longer queued");
    assert!(is_conflict(&err), "[swap] a sent message cannot be swapped, got {err}");
    assert_eq!(store.get_message(a, m.id).await.expect("get"), sent, "[swap] nothing written");
    assert_eq!(event_count(&store, a).await, before, "[swap] no event");
    let err = store
        .annotate_message(a, crate::MessageId::new(), &annotation, &ev(a, EventType::MESSAGE_UPDATED))
        .await
        .expect_err("missing");
    assert!(is_not_found(&err), "[swap] a missing message is NotFound, got {err}");
}

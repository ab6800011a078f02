//! The inbox: the [`InboxStore`](crate::InboxStore) contract (the list by
//! last activity with unread counts and latest messages, read state that
//! only moves forward, assignment and its filters, recent messages,
//! tenancy, erasure with the contact).

use std::future::Future;
use std::sync::Arc;

use super::{contact, ev, event_count, insert, is_not_found, new_account, now, outbound, phone};
use crate::domain::inbox::{InboxFilter, InboxQuery, MAX_UNREAD_COUNTED};
use crate::{
    AccountId, Contact, Direction, Error, EventType, Message, MessageContent, MessageStatus, Role, Store, User,
};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    inbox_lists_threads_by_activity(make().await).await;
    inbox_unread_counts_follow_read_state(make().await).await;
    inbox_assignment_and_filters(make().await).await;
    inbox_recent_thread_and_erasure(make().await).await;
}

async fn put(store: &Arc<dyn Store>, m: &Message) {
    let kind = if m.direction == Direction::Inbound { EventType::MESSAGE_RECEIVED } else { EventType::MESSAGE_QUEUED };
    store.insert_message(m, &ev(m.account_id, kind)).await.unwrap_or_else(|e| panic!("[fixture] insert_message: {e}"));
}

async fn said(store: &Arc<dyn Store>, c: &Contact, text: &str) -> Message {
    let m = Message::inbound(c.account_id, c.id, MessageContent::text(text), None, now(), now()).expect("valid");
    put(store, &m).await;
    m
}

async fn user(store: &Arc<dyn Store>, account: AccountId, email: &str) -> User {
    let u = User::new(account, email, "Agente", Role::Agent, "long enough pw", now()).expect("user");
    store.create_user(&u, &ev(account, EventType::USER_CREATED)).await.expect("[fixture] create_user");
    u
}

fn names(page: &crate::domain::inbox::InboxPage) -> Vec<String> {
    page.threads.iter().map(|t| t.name.clone()).collect()
}

/// Threads are the contacts with messages, newest activity first, each
/// with its latest message (either way); another account's are not
/// listed; pages resume after their cursor.
pub async fn inbox_lists_threads_by_activity(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let [ana, bia, caio, quiet] =
        [("Ana", 1), ("Bia", 2), ("Caio", 3), ("Quieto", 4)].map(|(n, i)| contact(a, n, &phone(i)));
    for c in [&ana, &bia, &caio, &quiet] {
        insert(&store, c).await;
    }
    let other = contact(b, "Outra", &phone(1));
    insert(&store, &other).await;
    said(&store, &other, "de outra conta").await;

    said(&store, &ana, "oi").await;
    said(&store, &bia, "olá").await;
    put(&store, &outbound(&caio, "promo")).await;
    let last = outbound(&ana, "tudo bem?");
    put(&store, &last).await;

    let page = store.list_inbox(a, &InboxQuery::first(InboxFilter::All, 10)).await.expect("[inbox] list");
    assert_eq!(names(&page), ["Ana", "Caio", "Bia"], "[inbox] newest activity first, only threads with messages");
    assert!(page.next.is_none(), "[inbox] one page");
    let top = &page.threads[0];
    let lm = top.last_message.as_ref().expect("[inbox] the latest message");
    assert_eq!((lm.id, lm.direction, lm.status), (last.id, Direction::Outbound, MessageStatus::Queued));
    assert_eq!(lm.content, MessageContent::text("tudo bem?"), "[inbox] the latest message's content");
    assert_eq!(top.phone, ana.phone.to_string());
    assert_eq!(top.activity_at.timestamp_micros(), last.created_at.timestamp_micros(), "[inbox] activity time");

    let first = store.list_inbox(a, &InboxQuery::first(InboxFilter::All, 2)).await.expect("page 1");
    assert_eq!(names(&first), ["Ana", "Caio"]);
    let next = first.next.expect("[inbox] a cursor when more follow");
    let query = InboxQuery { filter: InboxFilter::All, after: Some(next), limit: 2 };
    let second = store.list_inbox(a, &query).await.expect("page 2");
    assert_eq!(names(&second), ["Bia"], "[inbox] the next page resumes after the cursor");
    assert!(second.next.is_none());

    let bad = store.list_inbox(a, &InboxQuery::first(InboxFilter::All, 0)).await;
    assert!(matches!(bad, Err(Error::Validation { .. })), "[inbox] a zero limit is refused");
    let theirs = store.list_inbox(b, &InboxQuery::first(InboxFilter::All, 10)).await.expect("list b");
    assert_eq!(names(&theirs), ["Outra"], "[inbox] tenancy");
}

/// Unread counts inbound messages after the read mark (outbound never
/// counts), capped; marking read only moves forward; the state reads back.
pub async fn inbox_unread_counts_follow_read_state(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let agent = user(&store, a, "agente@loja.com").await;
    let ana = contact(a, "Ana", &phone(1));
    insert(&store, &ana).await;
    let unread = |store: Arc<dyn Store>| async move {
        let page = store.list_inbox(a, &InboxQuery::first(InboxFilter::All, 10)).await.expect("list");
        page.threads[0].unread
    };
    let m1 = said(&store, &ana, "um").await;
    let m2 = said(&store, &ana, "dois").await;
    put(&store, &outbound(&ana, "resposta")).await;
    assert_eq!(unread(store.clone()).await, 2, "[inbox] inbound messages nobody read");
    let untouched = store.thread_state(a, ana.id).await.expect("[inbox] state");
    assert_eq!((untouched.read_through, untouched.assignee_id), (None, None), "[inbox] untouched state");

    let at = now();
    let state = store.mark_thread_read(a, ana.id, agent.id, m2.id, at).await.expect("[inbox] mark read");
    assert_eq!((state.read_through, state.read_by), (Some(m2.id), Some(agent.id)));
    assert_eq!(state.read_at.map(|t| t.timestamp_micros()), Some(at.timestamp_micros()));
    assert_eq!(unread(store.clone()).await, 0, "[inbox] read through the latest");
    let back = store.mark_thread_read(a, ana.id, agent.id, m1.id, now()).await.expect("mark older");
    assert_eq!(back.read_through, Some(m2.id), "[inbox] the read mark never moves back");
    assert_eq!(store.thread_state(a, ana.id).await.expect("state"), back, "[inbox] the state reads back");

    said(&store, &ana, "três").await;
    assert_eq!(unread(store.clone()).await, 1, "[inbox] a new inbound message is unread");
    for i in 0..MAX_UNREAD_COUNTED {
        said(&store, &ana, &format!("msg {i}")).await;
    }
    assert_eq!(unread(store.clone()).await, MAX_UNREAD_COUNTED, "[inbox] unread counts stop at the cap");

    let missing = contact(a, "Nunca", &phone(2));
    let err = store.mark_thread_read(a, missing.id, agent.id, m1.id, now()).await.expect_err("missing contact");
    assert!(is_not_found(&err), "[inbox] marking a missing thread: {err}");
    let b = new_account(&store, "B").await;
    let err = store.thread_state(b, ana.id).await.expect_err("other account");
    assert!(is_not_found(&err), "[inbox] another account's thread is missing: {err}");
}

/// Assignment: to a user of the account (with its event), shown in the
/// list and filtered by `mine`/`unassigned`; unassigning; a user of
/// another account or a missing contact is refused with no event.
pub async fn inbox_assignment_and_filters(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let (me, colleague) = (user(&store, a, "eu@loja.com").await, user(&store, a, "colega@loja.com").await);
    let stranger = user(&store, b, "fora@outra.com").await;
    let [ana, bia, caio] = [("Ana", 1), ("Bia", 2), ("Caio", 3)].map(|(n, i)| contact(a, n, &phone(i)));
    for c in [&ana, &bia, &caio] {
        insert(&store, c).await;
        said(&store, c, "oi").await;
    }
    let before = event_count(&store, a).await;
    let at = now();
    let state = store
        .assign_thread(a, ana.id, Some(me.id), at, &ev(a, EventType::THREAD_ASSIGNED))
        .await
        .expect("[inbox] assign");
    assert_eq!(state.assignee_id, Some(me.id));
    assert_eq!(state.assigned_at.map(|t| t.timestamp_micros()), Some(at.timestamp_micros()));
    store
        .assign_thread(a, bia.id, Some(colleague.id), now(), &ev(a, EventType::THREAD_ASSIGNED))
        .await
        .expect("assign");
    assert_eq!(event_count(&store, a).await, before + 2, "[inbox] an assignment records its event");

    let list = |filter| {
        let store = store.clone();
        async move { names(&store.list_inbox(a, &InboxQuery::first(filter, 10)).await.expect("list")) }
    };
    assert_eq!(list(InboxFilter::Mine(me.id)).await, ["Ana"], "[inbox] mine");
    assert_eq!(list(InboxFilter::Unassigned).await, ["Caio"], "[inbox] unassigned");
    assert_eq!(list(InboxFilter::All).await.len(), 3, "[inbox] all");
    let all = store.list_inbox(a, &InboxQuery::first(InboxFilter::All, 10)).await.expect("list");
    let bia_row = all.threads.iter().find(|t| t.contact_id == bia.id).expect("bia listed");
    assert_eq!(bia_row.assignee_id, Some(colleague.id), "[inbox] the list shows the assignee");

    let before = event_count(&store, a).await;
    let err = store
        .assign_thread(a, caio.id, Some(stranger.id), now(), &ev(a, EventType::THREAD_ASSIGNED))
        .await
        .expect_err("a user of another account");
    assert!(is_not_found(&err), "[inbox] another account's user: {err}");
    let ghost = contact(a, "Fantasma", &phone(9));
    let err = store
        .assign_thread(a, ghost.id, Some(me.id), now(), &ev(a, EventType::THREAD_ASSIGNED))
        .await
        .expect_err("missing contact");
    assert!(is_not_found(&err), "[inbox] a missing contact: {err}");
    assert_eq!(event_count(&store, a).await, before, "[inbox] a refused assignment writes no event");

    let state =
        store.assign_thread(a, ana.id, None, now(), &ev(a, EventType::THREAD_ASSIGNED)).await.expect("unassign");
    assert_eq!(state.assignee_id, None, "[inbox] unassigned");
    assert!(list(InboxFilter::Mine(me.id)).await.is_empty());
    assert_eq!(list(InboxFilter::Unassigned).await, ["Caio", "Ana"], "[inbox] unassigned again, by activity");
}

/// `recent_thread` gives the latest messages oldest first, pages back
/// with `before`, refuses bad limits and missing contacts; deleting the
/// contact deletes its thread state.
pub async fn inbox_recent_thread_and_erasure(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let me = user(&store, a, "eu@loja.com").await;
    let ana = contact(a, "Ana", &phone(1));
    insert(&store, &ana).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = if i % 2 == 0 { said(&store, &ana, &format!("m{i}")).await } else { outbound(&ana, &format!("m{i}")) };
        if i % 2 == 1 {
            put(&store, &m).await;
        }
        ids.push(m.id);
    }
    let recent = store.recent_thread(a, ana.id, None, 3).await.expect("[inbox] recent");
    assert_eq!(recent.iter().map(|m| m.id).collect::<Vec<_>>(), ids[2..], "[inbox] the latest three, oldest first");
    let older = store.recent_thread(a, ana.id, Some(ids[2]), 10).await.expect("older");
    assert_eq!(older.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2], "[inbox] before a message");
    assert!(matches!(store.recent_thread(a, ana.id, None, 0).await, Err(Error::Validation { .. })));
    let ghost = contact(a, "Fantasma", &phone(2));
    assert!(store.recent_thread(a, ghost.id, None, 5).await.is_err_and(|e| is_not_found(&e)));

    store.mark_thread_read(a, ana.id, me.id, ids[4], now()).await.expect("read");
    store.assign_thread(a, ana.id, Some(me.id), now(), &ev(a, EventType::THREAD_ASSIGNED)).await.expect("assign");
    store
        .delete_contact(a, ana.id, &ev(a, EventType::CONTACT_DELETED))
        .await
        .expect("[inbox] a contact with a thread state can be deleted");
    let page = store.list_inbox(a, &InboxQuery::first(InboxFilter::Mine(me.id), 10)).await.expect("list");
    assert!(page.threads.is_empty(), "[inbox] the deleted contact's thread is gone");
    assert!(store.thread_state(a, ana.id).await.is_err_and(|e| is_not_found(&e)), "[inbox] its state is gone");
}

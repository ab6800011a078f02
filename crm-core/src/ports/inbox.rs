//! The `InboxStore` port: the inbox list (threads by last activity, with
//! their unread counts and latest message) and each thread's state — how
//! far it was read and who it is assigned to.
//!
//! The list is one indexed read: the contacts by last activity (an index on
//! the later of `last_inbound_at` and `last_outbound_at`), each with its
//! latest message (the thread index, newest first) and its unread inbound
//! messages counted up to [`MAX_UNREAD_COUNTED`](crate::domain::inbox::MAX_UNREAD_COUNTED)
//! (an index on inbound messages by thread and id).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

use crate::domain::inbox::{InboxPage, InboxQuery, ThreadState};
use crate::{AccountId, ContactId, Event, Message, MessageId, Result, UserId};

/// Most messages one [`InboxStore::recent_thread`] call returns.
pub const MAX_RECENT_THREAD: u32 = 200;

/// The inbox: threads as the dashboard lists them, and their state.
#[async_trait]
pub trait InboxStore: Send + Sync + Debug + 'static {
    /// A page of the account's threads — contacts with at least one message
    /// — newest activity first (ties by contact id, descending), after
    /// `query.after`, filtered by assignment. Each carries its latest
    /// message and its unread count (inbound messages after the thread's
    /// `read_through`, counted up to `MAX_UNREAD_COUNTED`).
    /// [`Error::Validation`](crate::Error::Validation) on a bad limit
    /// ([`InboxQuery::check`]).
    async fn list_inbox(&self, account: AccountId, query: &InboxQuery) -> Result<InboxPage>;

    /// The thread's state; [`ThreadState::untouched`] when no user opened
    /// or assigned it. [`Error::NotFound`](crate::Error::NotFound) when the
    /// contact is missing.
    async fn thread_state(&self, account: AccountId, contact: ContactId) -> Result<ThreadState>;

    /// Records that `user` read the thread through message `through` at
    /// `at`. `read_through` only moves forward (a later id); `read_at` and
    /// `read_by` are set either way. Returns the state as stored. Writes no
    /// event (reading is not a change of the conversation).
    /// [`Error::NotFound`](crate::Error::NotFound) when the contact is
    /// missing.
    async fn mark_thread_read(
        &self,
        account: AccountId,
        contact: ContactId,
        user: UserId,
        through: MessageId,
        at: DateTime<Utc>,
    ) -> Result<ThreadState>;

    /// Assigns the thread to `assignee` (`None`: unassigns it) at `at` and
    /// records `event`, in one transaction; returns the state as stored.
    /// [`Error::NotFound`](crate::Error::NotFound) when the contact is
    /// missing, or when `assignee` is not a user of the account (nothing
    /// written, no event).
    async fn assign_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        assignee: Option<UserId>,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<ThreadState>;

    /// The thread's latest `limit` messages (1..=[`MAX_RECENT_THREAD`]) with
    /// an id before `before` (`None`: the latest), oldest first.
    /// [`Error::NotFound`](crate::Error::NotFound) when the contact is
    /// missing; [`Error::Validation`](crate::Error::Validation) on a bad
    /// limit.
    async fn recent_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>>;
}

/// [`InboxStore::recent_thread`]'s limit check.
pub fn check_recent_limit(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_RECENT_THREAD {
        return Err(crate::Error::validation("limit", format!("must be 1 to {MAX_RECENT_THREAD}")));
    }
    Ok(())
}

//! The inbox: conversations (one per contact, its thread of messages) as
//! the dashboard lists them, with what the account's users did to them —
//! how far the thread was read and who it is assigned to.
//!
//! A thread's [`ThreadState`] is per account, not per user: "unread" means
//! inbound messages no user of the account has opened yet. Message ids are
//! UUIDv7 (ordered by time), so "read through message `m`" covers every
//! message of the thread with an id up to `m`'s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AccountId, ContactId, Direction, Error, MessageContent, MessageId, MessageStatus, Result, UserId};

/// Unread inbound messages are counted up to this many per thread (a list
/// shows `99+`; counting further would scan a long unread thread).
pub const MAX_UNREAD_COUNTED: u32 = 100;

/// Most threads one [`InboxQuery`] lists.
pub const MAX_INBOX_PAGE: u32 = 100;

/// What the account's users did to one thread: how far it was read and who
/// it is assigned to. A thread nobody touched has the default state
/// ([`ThreadState::untouched`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThreadState {
    /// The account.
    pub account_id: AccountId,
    /// The contact whose thread this is.
    pub contact_id: ContactId,
    /// The user the conversation is assigned to.
    pub assignee_id: Option<UserId>,
    /// When it was last assigned (or unassigned).
    pub assigned_at: Option<DateTime<Utc>>,
    /// Every message with an id up to this one has been read.
    pub read_through: Option<MessageId>,
    /// When a user last opened the thread.
    pub read_at: Option<DateTime<Utc>>,
    /// Who last opened it.
    pub read_by: Option<UserId>,
}

impl ThreadState {
    /// A thread no user has opened or assigned.
    pub fn untouched(account_id: AccountId, contact_id: ContactId) -> Self {
        Self {
            account_id,
            contact_id,
            assignee_id: None,
            assigned_at: None,
            read_through: None,
            read_at: None,
            read_by: None,
        }
    }
}

/// Which threads to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxFilter {
    /// Every thread of the account.
    #[default]
    All,
    /// Threads assigned to this user.
    Mine(UserId),
    /// Threads assigned to nobody.
    Unassigned,
}

/// Where a page of the inbox resumes: after the thread with this last
/// activity and contact id (threads are listed newest activity first, ties
/// by contact id, descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCursor {
    /// The last listed thread's last activity.
    pub activity_at: DateTime<Utc>,
    /// The last listed thread's contact.
    pub contact_id: ContactId,
}

impl InboxCursor {
    /// The cursor's text form: `<microseconds>.<contact uuid>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.activity_at.timestamp_micros(), self.contact_id.into_uuid().simple())
    }

    /// Reads [`InboxCursor::encode`]'s form; [`Error::Validation`] on `after` otherwise.
    pub fn decode(s: &str) -> Result<Self> {
        let bad = || Error::validation("after", "not a cursor of this list");
        let (micros, id) = s.split_once('.').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let activity_at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
        let id = uuid::Uuid::try_parse(id).map_err(|_| bad())?;
        Ok(Self { activity_at, contact_id: ContactId::from_uuid(id) })
    }
}

/// One page request of the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    /// Which threads.
    pub filter: InboxFilter,
    /// Resume after this thread (`None`: from the most recent).
    pub after: Option<InboxCursor>,
    /// Page size, 1..=[`MAX_INBOX_PAGE`].
    pub limit: u32,
}

impl InboxQuery {
    /// The first page of `filter`, `limit` threads.
    pub fn first(filter: InboxFilter, limit: u32) -> Self {
        Self { filter, after: None, limit }
    }

    /// [`Error::Validation`] on `limit` unless it is 1..=[`MAX_INBOX_PAGE`].
    pub fn check(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_INBOX_PAGE {
            return Err(Error::validation("limit", format!("must be 1 to {MAX_INBOX_PAGE}")));
        }
        Ok(())
    }
}

/// A thread's latest message, as much of it as a list shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastMessage {
    /// The message.
    pub id: MessageId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Its delivery status.
    pub status: MessageStatus,
    /// Its content.
    pub content: MessageContent,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// One conversation in the inbox list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThreadSummary {
    /// The contact.
    pub contact_id: ContactId,
    /// The contact's name.
    pub name: String,
    /// The contact's phone (E.164).
    pub phone: String,
    /// The contact's last message either way (the later of
    /// `last_inbound_at` and `last_outbound_at`).
    pub activity_at: DateTime<Utc>,
    /// The latest message of the thread.
    pub last_message: Option<LastMessage>,
    /// Inbound messages after [`ThreadState::read_through`], counted up to
    /// [`MAX_UNREAD_COUNTED`].
    pub unread: u32,
    /// Who the thread is assigned to.
    pub assignee_id: Option<UserId>,
}

impl ThreadSummary {
    /// The cursor resuming after this thread.
    pub fn cursor(&self) -> InboxCursor {
        InboxCursor { activity_at: self.activity_at, contact_id: self.contact_id }
    }
}

/// A page of the inbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InboxPage {
    /// Newest activity first.
    pub threads: Vec<ThreadSummary>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<InboxCursor>,
}

impl InboxPage {
    /// A page from up to `limit + 1` threads (the extra one only says that
    /// another page follows).
    pub fn from_overfetch(mut threads: Vec<ThreadSummary>, limit: u32) -> Self {
        let more = threads.len() > limit as usize;
        threads.truncate(limit as usize);
        let next = if more { threads.last().map(ThreadSummary::cursor) } else { None };
        Self { threads, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = InboxCursor {
            activity_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            contact_id: ContactId::new(),
        };
        assert_eq!(InboxCursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "1", "x.y", "1.not-a-uuid", "99999999999999999999.00000000000000000000000000000000"] {
            assert!(InboxCursor::decode(bad).is_err(), "{bad}");
        }
        assert!(InboxQuery::first(InboxFilter::All, 0).check().is_err());
        assert!(InboxQuery::first(InboxFilter::All, MAX_INBOX_PAGE + 1).check().is_err());
        assert!(InboxQuery::first(InboxFilter::Unassigned, 20).check().is_ok());
    }
}

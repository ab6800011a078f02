//! The inbox: the conversation list, opening a thread (which marks it
//! read for the account's users) and assigning it to a user.

use serde::Serialize;

use super::Crm;
use crate::domain::inbox::{InboxPage, InboxQuery, ThreadState};
use crate::{AccountId, Contact, ContactId, EventType, Message, Result, UserId};

/// A thread as a user opens it: the contact, its latest messages (oldest
/// first) and the thread's state after the opening marked it read.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenThread {
    /// The contact.
    pub contact: Contact,
    /// Its latest messages, oldest first.
    pub messages: Vec<Message>,
    /// Read state and assignment.
    pub state: ThreadState,
}

/// The `thread.assigned` payload.
#[derive(Debug, Serialize)]
struct Assigned {
    contact_id: ContactId,
    assignee_id: Option<UserId>,
    assigned_by: Option<UserId>,
}

impl Crm {
    /// A page of the account's conversations, newest activity first, with
    /// unread counts and latest messages ([`InboxStore::list_inbox`](crate::InboxStore::list_inbox)).
    pub async fn list_inbox(&self, account: AccountId, query: &InboxQuery) -> Result<InboxPage> {
        self.store.list_inbox(account, query).await
    }

    /// The thread's read state and assignment.
    pub async fn thread_state(&self, account: AccountId, contact: ContactId) -> Result<ThreadState> {
        self.store.thread_state(account, contact).await
    }

    /// Opens a contact's thread for `user`: its latest `limit` messages,
    /// and the thread marked read through the latest of them (so its
    /// inbound messages stop counting as unread for every user of the
    /// account). [`Error::NotFound`](crate::Error::NotFound) for an unknown
    /// contact or a user of another account.
    pub async fn open_thread(
        &self,
        account: AccountId,
        user: UserId,
        contact: ContactId,
        limit: u32,
    ) -> Result<OpenThread> {
        self.store.get_user(account, user).await?;
        let contact = self.store.get_contact(account, contact).await?;
        let messages = self.store.recent_thread(account, contact.id, None, limit).await?;
        let mut state = self.store.thread_state(account, contact.id).await?;
        if let Some(latest) = messages.last()
            && state.read_through.is_none_or(|r| r < latest.id)
        {
            state = self.store.mark_thread_read(account, contact.id, user, latest.id, self.now()).await?;
        }
        Ok(OpenThread { contact, messages, state })
    }

    /// Messages of the thread before `before`, oldest first (older pages
    /// of [`Crm::open_thread`]); reading them marks nothing.
    pub async fn earlier_messages(
        &self,
        account: AccountId,
        contact: ContactId,
        before: crate::MessageId,
        limit: u32,
    ) -> Result<Vec<Message>> {
        self.store.recent_thread(account, contact, Some(before), limit).await
    }

    /// Assigns the contact's conversation to `assignee`, a user of the
    /// account (`None` unassigns it), recording `thread.assigned` with who
    /// did it (`by`). [`Error::NotFound`](crate::Error::NotFound) for an
    /// unknown contact or a user who is not of the account.
    pub async fn assign_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        assignee: Option<UserId>,
        by: Option<UserId>,
    ) -> Result<ThreadState> {
        let payload = Assigned { contact_id: contact, assignee_id: assignee, assigned_by: by };
        let event = self.event(account, EventType::THREAD_ASSIGNED, &payload);
        self.store.assign_thread(account, contact, assignee, self.now(), &event).await
    }
}

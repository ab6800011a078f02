//! [`InboxStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::domain::inbox::{
    InboxFilter, InboxPage, InboxQuery, LastMessage, MAX_UNREAD_COUNTED, ThreadState, ThreadSummary,
};
use crate::ports::inbox::{InboxStore, check_recent_limit};
use crate::ports::store::check_event_account;
use crate::{AccountId, ContactId, Direction, Error, Event, Message, MessageId, Result, UserId};

#[async_trait]
impl InboxStore for MemoryStore {
    async fn list_inbox(&self, account: AccountId, query: &InboxQuery) -> Result<InboxPage> {
        query.check()?;
        let s = self.lock();
        let mut threads: Vec<(DateTime<Utc>, &crate::Contact)> = s
            .contacts
            .values()
            .filter(|c| c.account_id == account)
            .filter_map(|c| c.last_inbound_at.max(c.last_outbound_at).map(|at| (at, c)))
            .filter(|(at, c)| query.after.is_none_or(|after| (*at, c.id) < (after.activity_at, after.contact_id)))
            .filter(|(_, c)| {
                let assignee = s.threads.get(&c.id).and_then(|t| t.assignee_id);
                match query.filter {
                    InboxFilter::All => true,
                    InboxFilter::Mine(user) => assignee == Some(user),
                    InboxFilter::Unassigned => assignee.is_none(),
                }
            })
            .collect();
        threads.sort_by_key(|t| std::cmp::Reverse((t.0, t.1.id)));
        threads.truncate(query.limit as usize + 1);
        let summaries = threads
            .into_iter()
            .map(|(activity_at, c)| {
                let state = s.threads.get(&c.id);
                let read_through = state.and_then(|t| t.read_through);
                let mut last: Option<&Message> = None;
                let mut unread = 0u32;
                for m in s.messages.values().filter(|m| m.account_id == account && m.contact_id == c.id) {
                    if last.is_none_or(|l| m.id > l.id) {
                        last = Some(m);
                    }
                    if m.direction == Direction::Inbound && read_through.is_none_or(|r| m.id > r) {
                        unread = (unread + 1).min(MAX_UNREAD_COUNTED);
                    }
                }
                ThreadSummary {
                    contact_id: c.id,
                    name: c.name.clone(),
                    phone: c.phone.to_string(),
                    activity_at,
                    last_message: last.map(|m| LastMessage {
                        id: m.id,
                        direction: m.direction,
                        status: m.status,
                        content: m.content.clone(),
                        created_at: m.created_at,
                    }),
                    unread,
                    assignee_id: state.and_then(|t| t.assignee_id),
                }
            })
            .collect();
        Ok(InboxPage::from_overfetch(summaries, query.limit))
    }

    async fn thread_state(&self, account: AccountId, contact: ContactId) -> Result<ThreadState> {
        let s = self.lock();
        s.contact(account, contact)?;
        Ok(s.threads.get(&contact).cloned().unwrap_or_else(|| ThreadState::untouched(account, contact)))
    }

    async fn mark_thread_read(
        &self,
        account: AccountId,
        contact: ContactId,
        user: UserId,
        through: MessageId,
        at: DateTime<Utc>,
    ) -> Result<ThreadState> {
        let mut s = self.lock();
        s.contact(account, contact)?;
        let state = s.threads.entry(contact).or_insert_with(|| ThreadState::untouched(account, contact));
        state.read_through = state.read_through.max(Some(through));
        state.read_at = Some(at);
        state.read_by = Some(user);
        Ok(state.clone())
    }

    async fn assign_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        assignee: Option<UserId>,
        at: DateTime<Utc>,
        event: &Event,
    ) -> Result<ThreadState> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.contact(account, contact)?;
        if let Some(user) = assignee
            && s.users.get(&user).is_none_or(|u| u.account_id != account)
        {
            return Err(Error::not_found("user"));
        }
        let state = s.threads.entry(contact).or_insert_with(|| ThreadState::untouched(account, contact));
        state.assignee_id = assignee;
        state.assigned_at = Some(at);
        let stored = state.clone();
        s.append(event);
        Ok(stored)
    }

    async fn recent_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        check_recent_limit(limit)?;
        let s = self.lock();
        s.contact(account, contact)?;
        let mut recent: Vec<Message> = s
            .messages
            .values()
            .rev()
            .filter(|m| m.account_id == account && m.contact_id == contact && before.is_none_or(|b| m.id < b))
            .take(limit as usize)
            .cloned()
            .collect();
        recent.reverse();
        Ok(recent)
    }
}

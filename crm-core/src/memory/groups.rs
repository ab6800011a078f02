//! [`MemoryGroups`]: a [`GroupManager`] double that keeps groups in memory.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::domain::group::{
    GroupInfo, GroupParticipant, check_description, check_group_jid, check_participants, check_subject,
};
use crate::{Error, GroupManager, MessageContent, Phone, Result, SendReceipt};

/// One message [`MemoryGroups`] accepted for a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSend {
    /// The group's id.
    pub group: String,
    /// What was sent.
    pub content: MessageContent,
    /// The id it answered with.
    pub provider_message_id: String,
}

#[derive(Debug)]
struct Inner {
    me: Phone,
    groups: BTreeMap<String, GroupInfo>,
    sent: Vec<GroupSend>,
    next: u64,
}

/// Groups kept in memory, following the [`GroupManager`] contract the way
/// WhatsApp does: the channel's own number (`me`) creates groups as their
/// admin and leaves them. Clones share their groups. Used by tests and by
/// the `recording` channel kind.
#[derive(Debug, Clone)]
pub struct MemoryGroups(Arc<Mutex<Inner>>);

impl MemoryGroups {
    /// No groups yet; `me` is the channel's own number.
    pub fn new(me: Phone) -> Self {
        Self(Arc::new(Mutex::new(Inner { me, groups: BTreeMap::new(), sent: Vec::new(), next: 0 })))
    }

    /// Puts the channel's number in a group someone else made (what a
    /// provider reports when the number is added elsewhere).
    pub fn join(&self, info: GroupInfo) {
        self.lock().groups.insert(info.jid.clone(), info);
    }

    /// The messages sent to groups, in order.
    pub fn sent(&self) -> Vec<GroupSend> {
        self.lock().sent.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a group the channel's number is in.
    fn with_group<T>(&self, jid: &str, f: impl FnOnce(&mut GroupInfo) -> Result<T>) -> Result<T> {
        check_group_jid(jid)?;
        let mut inner = self.lock();
        let group = inner.groups.get_mut(jid).ok_or(Error::not_found("group"))?;
        f(group)
    }

    fn set_admin(&self, jid: &str, participants: &[Phone], admin: bool) -> Result<()> {
        check_participants(participants)?;
        self.with_group(jid, |g| {
            if let Some(p) = participants.iter().find(|p| g.participant(p).is_none()) {
                return Err(Error::validation("participants", format!("{p} is not in the group")));
            }
            for m in g.participants.iter_mut().filter(|m| m.phone.as_ref().is_some_and(|p| participants.contains(p))) {
                m.admin = admin;
            }
            Ok(())
        })
    }
}

#[async_trait]
impl GroupManager for MemoryGroups {
    async fn create_group(&self, subject: &str, participants: &[Phone]) -> Result<GroupInfo> {
        check_subject(subject)?;
        check_participants(participants)?;
        let mut inner = self.lock();
        inner.next += 1;
        let jid = format!("1203630{:011}@g.us", inner.next);
        let mut members = vec![GroupParticipant::phone(inner.me.clone(), true)];
        members
            .extend(participants.iter().filter(|p| **p != inner.me).map(|p| GroupParticipant::phone(p.clone(), false)));
        let info =
            GroupInfo { jid: jid.clone(), subject: subject.to_owned(), description: None, participants: members };
        inner.groups.insert(jid, info.clone());
        Ok(info)
    }

    async fn set_subject(&self, group: &str, subject: &str) -> Result<()> {
        check_subject(subject)?;
        self.with_group(group, |g| {
            g.subject = subject.to_owned();
            Ok(())
        })
    }

    async fn set_description(&self, group: &str, description: &str) -> Result<()> {
        check_description(description)?;
        self.with_group(group, |g| {
            g.description = Some(description.to_owned()).filter(|d| !d.is_empty());
            Ok(())
        })
    }

    async fn add_participants(&self, group: &str, participants: &[Phone]) -> Result<()> {
        check_participants(participants)?;
        self.with_group(group, |g| {
            for p in participants {
                if g.participant(p).is_none() {
                    g.participants.push(GroupParticipant::phone(p.clone(), false));
                }
            }
            Ok(())
        })
    }

    async fn remove_participants(&self, group: &str, participants: &[Phone]) -> Result<()> {
        check_participants(participants)?;
        self.with_group(group, |g| {
            g.participants.retain(|m| !m.phone.as_ref().is_some_and(|p| participants.contains(p)));
            Ok(())
        })
    }

    async fn promote_admins(&self, group: &str, participants: &[Phone]) -> Result<()> {
        self.set_admin(group, participants, true)
    }

    async fn demote_admins(&self, group: &str, participants: &[Phone]) -> Result<()> {
        self.set_admin(group, participants, false)
    }

    async fn list_groups(&self) -> Result<Vec<GroupInfo>> {
        Ok(self.lock().groups.values().cloned().collect())
    }

    async fn group_info(&self, group: &str) -> Result<GroupInfo> {
        self.with_group(group, |g| Ok(g.clone()))
    }

    async fn leave_group(&self, group: &str) -> Result<()> {
        check_group_jid(group)?;
        self.lock().groups.remove(group).map(|_| ()).ok_or(Error::not_found("group"))
    }

    async fn send_to_group(&self, group: &str, content: &MessageContent) -> Result<SendReceipt> {
        content.validate()?;
        self.with_group(group, |_| Ok(()))?;
        let mut inner = self.lock();
        inner.next += 1;
        let provider_message_id = format!("grp.{}", uuid::Uuid::now_v7().simple());
        inner.sent.push(GroupSend {
            group: group.to_owned(),
            content: content.clone(),
            provider_message_id: provider_message_id.clone(),
        });
        Ok(SendReceipt { provider_message_id })
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_groups_pass_the_conformance_suite() {
        let me = Phone::parse("+5511900000000").expect("phone");
        crate::testing::groups::run_all(&MemoryGroups::new(me.clone()), &me).await;
    }
}

//! Groups on the Cloud API: [`CloudGroups`], the `whatsapp-cloud` channel's
//! [`GroupManager`], answers [`Error::Unsupported`] for every operation.
//!
//! Meta's WhatsApp Cloud API sends to and receives from individual users;
//! it offers no endpoint to create a group, change its subject,
//! description or members, list groups, leave one or send to one (group
//! chats are a feature of the WhatsApp apps and of WhatsApp Web). Use a
//! `whatsapp-web` channel for groups. Arguments are still checked first,
//! like every [`GroupManager`], so a bad request is told it is bad.

use async_trait::async_trait;
use crm_core::domain::group::{GroupInfo, check_description, check_group_jid, check_participants, check_subject};
use crm_core::{Error, GroupManager, MessageContent, Phone, Result, SendReceipt};

use crate::PROVIDER;

/// The `whatsapp-cloud` channel's group manager: every operation is
/// [`Error::Unsupported`] (see the module).
#[derive(Debug, Clone, Copy, Default)]
pub struct CloudGroups;

fn unsupported<T>(operation: &'static str) -> Result<T> {
    Err(Error::unsupported(PROVIDER, operation))
}

#[async_trait]
impl GroupManager for CloudGroups {
    async fn create_group(&self, subject: &str, participants: &[Phone]) -> Result<GroupInfo> {
        check_subject(subject)?;
        check_participants(participants)?;
        unsupported("creating groups (the Cloud API has no groups; use a whatsapp-web channel)")
    }

    async fn set_subject(&self, group: &str, subject: &str) -> Result<()> {
        check_group_jid(group)?;
        check_subject(subject)?;
        unsupported("renaming groups")
    }

    async fn set_description(&self, group: &str, description: &str) -> Result<()> {
        check_group_jid(group)?;
        check_description(description)?;
        unsupported("group descriptions")
    }

    async fn add_participants(&self, group: &str, participants: &[Phone]) -> Result<()> {
        check_group_jid(group)?;
        check_participants(participants)?;
        unsupported("adding group participants")
    }

    async fn remove_participants(&self, group: &str, participants: &[Phone]) -> Result<()> {
        check_group_jid(group)?;
        check_participants(participants)?;
        unsupported("removing group participants")
    }

    async fn promote_admins(&self, group: &str, participants: &[Phone]) -> Result<()> {
        check_group_jid(group)?;
        check_participants(participants)?;
        unsupported("group admins")
    }

    async fn demote_admins(&self, group: &str, participants: &[Phone]) -> Result<()> {
        check_group_jid(group)?;
        check_participants(participants)?;
        unsupported("group admins")
    }

    async fn list_groups(&self) -> Result<Vec<GroupInfo>> {
        unsupported("listing groups")
    }

    async fn group_info(&self, group: &str) -> Result<GroupInfo> {
        check_group_jid(group)?;
        unsupported("reading groups")
    }

    async fn leave_group(&self, group: &str) -> Result<()> {
        check_group_jid(group)?;
        unsupported("leaving groups")
    }

    async fn send_to_group(&self, group: &str, content: &MessageContent) -> Result<SendReceipt> {
        check_group_jid(group)?;
        content.validate()?;
        unsupported("sending to groups")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_group_operation_is_unsupported_after_the_argument_checks() {
        let g = CloudGroups;
        let jid = "120363041234567890@g.us";
        let p = [Phone::parse("+5511987654321").expect("phone")];
        let results = [
            g.create_group("Clientes", &p).await.map(|_| ()),
            g.set_subject(jid, "x").await,
            g.set_description(jid, "x").await,
            g.add_participants(jid, &p).await,
            g.remove_participants(jid, &p).await,
            g.promote_admins(jid, &p).await,
            g.demote_admins(jid, &p).await,
            g.list_groups().await.map(|_| ()),
            g.group_info(jid).await.map(|_| ()),
            g.participants(jid).await.map(|_| ()),
            g.leave_group(jid).await,
            g.send_to_group(jid, &MessageContent::text("oi")).await.map(|_| ()),
        ];
        for r in results {
            let e = r.expect_err("unsupported");
            assert!(matches!(&e, Error::Unsupported { provider, .. } if provider == PROVIDER), "{e:?}");
        }
        // Bad arguments are still told apart.
        let e = g.create_group("", &p).await.expect_err("blank subject");
        assert!(matches!(e, Error::Validation { .. }), "{e:?}");
        let e = g.leave_group("nope").await.expect_err("bad id");
        assert!(matches!(e, Error::Validation { .. }), "{e:?}");
    }
}

//! Groups on WhatsApp Web: [`WebGroups`] (the channel's [`GroupManager`],
//! through the bridge's group calls in `web/bridge.js`), and what the page
//! reports about groups into crm: messages participants write (recorded
//! with their sender) and receipts per participant.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use crm_core::domain::group::{
    GroupInfo, GroupParticipant, check_description, check_group_jid, check_participants, check_subject,
};
use crm_core::ports::whatsapp_ids::check_lid;
use crm_core::{
    Channel, ChannelId, Crm, Error, GroupManager, InboundGroupMessage, MessageContent, MessageStatus, Phone, Result,
    SendReceipt,
};
use serde::Deserialize;
use serde_json::json;

use super::bridge::{self, PageMessage};
use super::engine::{Shared, WebEngine};
use super::identity::phone_for_lid;

/// A channel's groups through its WhatsApp Web session. Every call needs
/// the session connected in this process, like a send.
#[derive(Debug, Clone)]
pub struct WebGroups {
    engine: WebEngine,
    channel: ChannelId,
}

/// What a bridge group call answers.
#[derive(Debug, Deserialize)]
struct Answer<T> {
    ok: Option<T>,
    error: Option<String>,
    detail: Option<String>,
}

/// A group as the bridge reports it.
#[derive(Debug, Deserialize)]
struct PageGroup {
    jid: String,
    subject: String,
    description: Option<String>,
    participants: Vec<PageParticipant>,
}

#[derive(Debug, Deserialize)]
struct PageParticipant {
    id: Option<String>,
    /// For a member named by a LID: their phone's id, when the page knows it.
    #[serde(default)]
    phone: Option<String>,
    admin: bool,
}

/// The phone of a `…@c.us` WhatsApp id (LIDs and others: none).
fn phone_of(id: &str) -> Option<Phone> {
    id.strip_suffix("@c.us").and_then(|user| Phone::parse(&format!("+{user}")).ok())
}

/// The WhatsApp id of a phone.
fn wid(phone: &Phone) -> String {
    format!("{}@c.us", phone.digits())
}

impl WebGroups {
    /// The group as crm keeps it. A member named by a LID is resolved to
    /// their phone (the page's answer, else the channel's LID map); one
    /// whose phone nobody knows is kept with their LID. Ids that are
    /// neither a phone's nor a LID are skipped.
    async fn info(&self, group: PageGroup) -> Result<GroupInfo> {
        check_group_jid(&group.jid)?;
        let shared = &self.engine.shared;
        let account = shared.session(self.channel).map(|s| s.channel().account_id);
        let mut participants = Vec::with_capacity(group.participants.len());
        for p in group.participants {
            let Some(id) = p.id.as_deref() else { continue };
            if let Some(phone) = phone_of(id) {
                participants.push(GroupParticipant::phone(phone, p.admin));
            } else if check_lid(id).is_ok() {
                let phone = match account {
                    Some(account) => phone_for_lid(shared.crm(), account, self.channel, id, p.phone.as_deref()).await,
                    None => p.phone.as_deref().and_then(phone_of),
                };
                participants.push(GroupParticipant::lid(id, phone, p.admin));
            } else {
                tracing::debug!("whatsapp web: a group participant with an unknown kind of id was skipped");
            }
        }
        Ok(GroupInfo { jid: group.jid, subject: group.subject, description: group.description, participants })
    }
}

impl WebGroups {
    /// The groups of `channel`'s session in `engine`.
    pub fn new(engine: WebEngine, channel: ChannelId) -> Self {
        Self { engine, channel }
    }

    /// Calls `window.__crm.<function>(args…)` and reads its `{ok}` / `{error}` answer.
    async fn call<T: serde::de::DeserializeOwned>(&self, function: &str, args: &[serde_json::Value]) -> Result<T> {
        let answer: Answer<T> = self.engine.call_bridge(self.channel, &bridge::call(function, args)).await?;
        match (answer.ok, answer.error.as_deref()) {
            (Some(v), None) => Ok(v),
            (_, Some("not_found")) => Err(Error::not_found("group")),
            (_, Some("not_member")) => Err(Error::validation(
                "participants",
                format!(
                    "{} is not in the group",
                    answer.detail.unwrap_or_default().chars().take(64).collect::<String>()
                ),
            )),
            _ => Err(Error::Provider {
                provider: super::PROVIDER.into(),
                transient: false,
                code: Some("bad_answer".into()),
                message: "WhatsApp Web answered a group call with something unexpected".into(),
                retry_after: None,
                source: None,
            }),
        }
    }

    async fn participants_call(&self, function: &str, group: &str, participants: &[Phone]) -> Result<()> {
        check_group_jid(group)?;
        check_participants(participants)?;
        let wids: Vec<String> = participants.iter().map(wid).collect();
        let _: bool = self.call(function, &[json!(group), json!(wids)]).await?;
        Ok(())
    }
}

#[async_trait]
impl GroupManager for WebGroups {
    async fn create_group(&self, subject: &str, participants: &[Phone]) -> Result<GroupInfo> {
        check_subject(subject)?;
        check_participants(participants)?;
        let wids: Vec<String> = participants.iter().map(wid).collect();
        let group: PageGroup = self.call("createGroup", &[json!(subject), json!(wids)]).await?;
        self.info(group).await
    }

    async fn set_subject(&self, group: &str, subject: &str) -> Result<()> {
        check_group_jid(group)?;
        check_subject(subject)?;
        let _: bool = self.call("setGroupSubject", &[json!(group), json!(subject)]).await?;
        Ok(())
    }

    async fn set_description(&self, group: &str, description: &str) -> Result<()> {
        check_group_jid(group)?;
        check_description(description)?;
        let _: bool = self.call("setGroupDescription", &[json!(group), json!(description)]).await?;
        Ok(())
    }

    async fn add_participants(&self, group: &str, participants: &[Phone]) -> Result<()> {
        self.participants_call("addParticipants", group, participants).await
    }

    async fn remove_participants(&self, group: &str, participants: &[Phone]) -> Result<()> {
        self.participants_call("removeParticipants", group, participants).await
    }

    async fn promote_admins(&self, group: &str, participants: &[Phone]) -> Result<()> {
        self.participants_call("promoteParticipants", group, participants).await
    }

    async fn demote_admins(&self, group: &str, participants: &[Phone]) -> Result<()> {
        self.participants_call("demoteParticipants", group, participants).await
    }

    async fn list_groups(&self) -> Result<Vec<GroupInfo>> {
        let groups: Vec<PageGroup> = self.call("listGroups", &[]).await?;
        let mut infos = Vec::with_capacity(groups.len());
        for g in groups {
            infos.push(self.info(g).await?);
        }
        Ok(infos)
    }

    async fn group_info(&self, group: &str) -> Result<GroupInfo> {
        check_group_jid(group)?;
        let info: PageGroup = self.call("groupInfo", &[json!(group)]).await?;
        self.info(info).await
    }

    async fn leave_group(&self, group: &str) -> Result<()> {
        check_group_jid(group)?;
        let _: bool = self.call("leaveGroup", &[json!(group)]).await?;
        Ok(())
    }

    async fn send_to_group(&self, group: &str, content: &MessageContent) -> Result<SendReceipt> {
        check_group_jid(group)?;
        content.validate()?;
        let MessageContent::Text { body, .. } = content else {
            return Err(Error::validation("content", "a whatsapp-web channel sends text messages only"));
        };
        #[derive(Deserialize)]
        struct Sent {
            id: String,
        }
        let sent: Sent = self.call("sendGroupText", &[json!(group), json!(body)]).await?;
        Ok(SendReceipt { provider_message_id: sent.id })
    }
}

/// WhatsApp's ack as a status: 1 sent, 2 delivered, 3–4 read, -1 failed.
fn ack_status(ack: i64) -> Option<MessageStatus> {
    match ack {
        -1 => Some(MessageStatus::Failed),
        1 => Some(MessageStatus::Sent),
        2 => Some(MessageStatus::Delivered),
        3 | 4 => Some(MessageStatus::Read),
        _ => None,
    }
}

/// The phone of a group member's id: a `…@c.us` id's, else a LID's
/// through [`phone_for_lid`]; `None` when not known.
async fn participant_phone(crm: &Crm, channel: &Channel, id: &str, reported: Option<&str>) -> Option<Phone> {
    match phone_of(id) {
        Some(phone) => Some(phone),
        None if check_lid(id).is_ok() => phone_for_lid(Some(crm), channel.account_id, channel.id, id, reported).await,
        None => None,
    }
}

/// Whether a serialized message key belongs to a group chat.
pub(crate) fn is_group_message(id: &str) -> bool {
    id.contains("@g.us_")
}

impl Shared {
    /// Records a message a participant wrote in a group (in its own task:
    /// a group seen for the first time is read from the page first).
    pub(crate) fn group_inbound(&self, channel: &Channel, m: PageMessage) {
        let Some(crm) = self.crm().cloned() else { return };
        let (Some(group), Some(author)) = (m.from.clone(), m.author.clone()) else {
            tracing::debug!(channel = %channel.id, "whatsapp web: a group message without a sender was skipped");
            return;
        };
        let reported = m.sender.as_ref().and_then(|s| s.phone.clone());
        let kind = m.kind.as_deref().unwrap_or("unknown").chars().take(64).collect::<String>();
        let content = match (kind.as_str(), m.body) {
            ("chat", Some(body)) => MessageContent::text(body),
            (other, _) => MessageContent::Unsupported {
                provider_type: other.to_owned(),
                summary: format!("a WhatsApp {other} message"),
                payload: json!({ "type": other }),
            },
        };
        let sender_name = m.notify_name.map(|n| n.chars().take(256).collect());
        let sent_at = m.timestamp.and_then(|t| Utc.timestamp_opt(t, 0).single());
        let (provider_message_id, channel) = (m.id, channel.clone());
        tokio::spawn(async move {
            let Some(sender) = participant_phone(&crm, &channel, &author, reported.as_deref()).await else {
                tracing::debug!(channel = %channel.id, "whatsapp web: a group message from a LID no one linked to a phone was skipped");
                return;
            };
            let inbound = InboundGroupMessage { group, sender, sender_name, provider_message_id, content, sent_at };
            for attempt in 1..=3u32 {
                match crm.record_group_inbound(&channel, inbound.clone()).await {
                    Ok(_) => return,
                    Err(e) if e.is_transient() && attempt < 3 => {
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    }
                    Err(e) => {
                        tracing::warn!(channel = %channel.id, error = %e, "whatsapp web: a group message was not stored");
                        return;
                    }
                }
            }
        });
    }

    /// Applies an ack of a group message (`participant`: whose receipt,
    /// when the page said). The ack may beat the send's stored answer: a
    /// message not found yet is tried again a few times.
    pub(crate) fn group_ack(&self, channel: &Channel, id: String, participant: Option<String>, ack: i64) {
        let Some(crm) = self.crm().cloned() else { return };
        let Some(status) = ack_status(ack) else { return };
        let channel = channel.clone();
        tokio::spawn(async move {
            let participant = match participant {
                Some(p) => participant_phone(&crm, &channel, &p, None).await,
                None => None,
            };
            let (account, channel) = (channel.account_id, channel.id);
            for attempt in 0..5u64 {
                match crm.apply_group_receipt(account, &id, participant.as_ref(), status).await {
                    Err(Error::NotFound { .. }) if attempt < 4 => {
                        tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    }
                    Err(Error::NotFound { .. }) | Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, "whatsapp web: a group receipt was not applied");
                        return;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_and_acks_are_read() {
        assert!(is_group_message("true_120363041234567890@g.us_3EB0AA"));
        assert!(!is_group_message("true_5511987654321@c.us_3EB0AA"));
        assert_eq!(ack_status(2), Some(MessageStatus::Delivered));
        assert_eq!(ack_status(0), None);
        assert_eq!(phone_of("5511987654321@c.us").map(|p| p.as_str().to_owned()).as_deref(), Some("+5511987654321"));
        assert_eq!(phone_of("123456789@lid"), None);
    }
}

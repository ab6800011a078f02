//! WhatsApp groups: what a channel's provider reports about a group
//! ([`GroupInfo`]), what crm keeps of it ([`Group`]), the messages of a
//! group thread ([`GroupMessage`]) with their per-participant receipts, and
//! the argument checks every [`GroupManager`](crate::GroupManager) and
//! store makes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::{AccountId, ChannelId, Direction, Error, GroupId, MessageContent, MessageId, MessageStatus, Phone, Result};

/// Longest group subject WhatsApp accepts, in characters.
pub const MAX_SUBJECT_CHARS: usize = 100;
/// Longest group description WhatsApp accepts, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2048;
/// Most members a WhatsApp group holds (and so most participants one call names).
pub const MAX_PARTICIPANTS: usize = 1024;
/// Longest WhatsApp group id (`<digits>[-<digits>]@g.us`) accepted.
pub const MAX_GROUP_JID_CHARS: usize = 64;

/// Checks a group subject: not blank, at most [`MAX_SUBJECT_CHARS`]
/// characters, no control characters. [`Error::Validation`] on `subject`.
pub fn check_subject(subject: &str) -> Result<()> {
    if subject.trim().is_empty() {
        return Err(Error::validation("subject", "must not be blank"));
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(Error::validation("subject", format!("must be at most {MAX_SUBJECT_CHARS} characters")));
    }
    if subject.chars().any(char::is_control) {
        return Err(Error::validation("subject", "must not contain control characters"));
    }
    Ok(())
}

/// Checks a group description: at most [`MAX_DESCRIPTION_CHARS`]
/// characters (empty clears it), no NUL. [`Error::Validation`] on `description`.
pub fn check_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::validation("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    if description.contains('\0') {
        return Err(Error::validation("description", "must not contain NUL characters"));
    }
    Ok(())
}

/// Checks the participants one call names: 1 to [`MAX_PARTICIPANTS`]
/// phones (already E.164: [`Phone`]), none twice. [`Error::Validation`] on
/// `participants`.
pub fn check_participants(participants: &[Phone]) -> Result<()> {
    if participants.is_empty() {
        return Err(Error::validation("participants", "name at least one participant"));
    }
    if participants.len() > MAX_PARTICIPANTS {
        return Err(Error::validation("participants", format!("at most {MAX_PARTICIPANTS} participants")));
    }
    let mut seen = BTreeSet::new();
    for p in participants {
        if !seen.insert(p.as_str()) {
            return Err(Error::validation("participants", format!("{p} is named twice")));
        }
    }
    Ok(())
}

/// Checks a WhatsApp group id: `<digits>@g.us` or `<digits>-<digits>@g.us`
/// (older groups carry their creator's number and a time), at most
/// [`MAX_GROUP_JID_CHARS`]. [`Error::Validation`] on `group`.
pub fn check_group_jid(jid: &str) -> Result<()> {
    let bad = || Error::validation("group", "must be a WhatsApp group id like 120363041234567890@g.us");
    if jid.len() > MAX_GROUP_JID_CHARS {
        return Err(bad());
    }
    let user = jid.strip_suffix("@g.us").ok_or_else(bad)?;
    let mut parts = user.split('-');
    let ok = parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none();
    if ok { Ok(()) } else { Err(bad()) }
}

/// One member of a group.
///
/// WhatsApp names many members only by a LID (its privacy id, `…@lid`)
/// instead of their phone. A provider resolves a LID to the phone through
/// what the channel learned ([`WhatsAppIdStore`](crate::WhatsAppIdStore));
/// a member whose phone is not known yet is kept with `phone: null` and
/// their `lid`, not dropped, so the member count and the admins stay true.
/// A member is one of the group's by their phone when it is known, else by
/// their LID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupParticipant {
    /// The member's phone (E.164); `null` for a member known only by a LID
    /// the channel has not linked to a phone yet.
    #[serde(default)]
    pub phone: Option<Phone>,
    /// The member's LID (`123456789012345@lid`), when WhatsApp names them by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lid: Option<String>,
    /// Whether the member administers the group (creators count as admins).
    pub admin: bool,
}

impl GroupParticipant {
    /// A member known by their phone.
    pub fn phone(phone: Phone, admin: bool) -> Self {
        Self { phone: Some(phone), lid: None, admin }
    }

    /// A member WhatsApp names by `lid`, with their phone when it is known.
    pub fn lid(lid: impl Into<String>, phone: Option<Phone>, admin: bool) -> Self {
        Self { phone, lid: Some(lid.into()), admin }
    }

    /// What identifies the member in the group: the phone, else the LID.
    pub fn key(&self) -> &str {
        match (&self.phone, &self.lid) {
            (Some(p), _) => p.as_str(),
            (None, Some(l)) => l.as_str(),
            (None, None) => "",
        }
    }

    /// Whether this member has `phone`.
    pub fn has_phone(&self, phone: &Phone) -> bool {
        self.phone.as_ref() == Some(phone)
    }
}

/// A group as the channel's provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// WhatsApp's id of the group (`…@g.us`).
    pub jid: String,
    /// Its subject (name).
    pub subject: String,
    /// Its description, when it has one.
    pub description: Option<String>,
    /// Its members, by phone.
    pub participants: Vec<GroupParticipant>,
}

impl GroupInfo {
    /// The member with this phone, if any.
    pub fn participant(&self, phone: &Phone) -> Option<&GroupParticipant> {
        self.participants.iter().find(|p| p.has_phone(phone))
    }
}

/// A group of a channel as crm keeps it (one row per account, channel and
/// WhatsApp group id), so group threads show in crm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    /// crm's id.
    pub id: GroupId,
    /// Owning account.
    pub account_id: AccountId,
    /// The channel the group lives on.
    pub channel_id: ChannelId,
    /// WhatsApp's id of the group (`…@g.us`).
    pub jid: String,
    /// Its subject (name).
    pub subject: String,
    /// Its description, when it has one.
    pub description: Option<String>,
    /// Its members with their admin flag, by phone.
    pub participants: Vec<GroupParticipant>,
    /// When the channel's number left the group (then it only keeps its history).
    pub left_at: Option<DateTime<Utc>>,
    /// When crm first stored it.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Group {
    /// A new record of what the provider reported. Checks the id and
    /// subject ([`Error::Validation`]); participants are sorted by phone.
    pub fn new(account_id: AccountId, channel_id: ChannelId, info: &GroupInfo, now: DateTime<Utc>) -> Result<Self> {
        let mut group = Group {
            id: GroupId::new(),
            account_id,
            channel_id,
            jid: String::new(),
            subject: String::new(),
            description: None,
            participants: Vec::new(),
            left_at: None,
            created_at: now,
            updated_at: now,
        };
        group.apply_info(info, now)?;
        Ok(group)
    }

    /// Takes the provider's view (subject, description, members); returns
    /// whether anything changed (then `updated_at` moves to `now`).
    pub fn apply_info(&mut self, info: &GroupInfo, now: DateTime<Utc>) -> Result<bool> {
        check_group_jid(&info.jid)?;
        let subject: String = info.subject.chars().take(MAX_SUBJECT_CHARS).collect();
        let description = info
            .description
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| d.chars().take(MAX_DESCRIPTION_CHARS).collect::<String>());
        let mut participants = info.participants.clone();
        participants.retain(|p| !p.key().is_empty());
        participants.sort_by(|a, b| a.key().cmp(b.key()));
        participants.dedup_by(|a, b| a.key() == b.key());
        let changed = self.jid != info.jid
            || self.subject != subject
            || self.description != description
            || self.participants != participants
            || self.left_at.is_some();
        self.jid = info.jid.clone();
        self.subject = subject;
        self.description = description;
        self.participants = participants;
        self.left_at = None;
        if changed {
            self.updated_at = now;
        }
        Ok(changed)
    }

    /// Checks what a store keeps: the id, a subject of at most
    /// [`MAX_SUBJECT_CHARS`] (a provider's may be blank), a description of
    /// at most [`MAX_DESCRIPTION_CHARS`], at most [`MAX_PARTICIPANTS`] members.
    pub fn check(&self) -> Result<()> {
        check_group_jid(&self.jid)?;
        if self.subject.chars().count() > MAX_SUBJECT_CHARS {
            return Err(Error::validation("subject", format!("must be at most {MAX_SUBJECT_CHARS} characters")));
        }
        if let Some(d) = &self.description {
            check_description(d)?;
        }
        if self.participants.len() > MAX_PARTICIPANTS {
            return Err(Error::validation("participants", format!("at most {MAX_PARTICIPANTS} participants")));
        }
        Ok(())
    }
}

/// What changes in a group (`PATCH`): each field when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupPatch {
    /// The new subject (1–100 characters).
    pub subject: Option<String>,
    /// The new description (at most 2,048 characters; empty clears it).
    pub description: Option<String>,
}

/// One message of a group thread.
///
/// Its `status` is the message's as a whole and only moves forward along
/// [`MessageStatus::predecessors`]: the first participant's delivery makes
/// it `delivered`, the first read `read`. `receipts` keep each
/// participant's own status (by phone), which only moves forward too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupMessage {
    /// crm's id.
    pub id: MessageId,
    /// Owning account.
    pub account_id: AccountId,
    /// The channel it went through.
    pub channel_id: ChannelId,
    /// The group.
    pub group_id: GroupId,
    /// Inbound (a participant wrote) or outbound (the business wrote).
    pub direction: Direction,
    /// Who wrote it, for inbound messages.
    pub sender: Option<Phone>,
    /// The sender's profile name, when the provider reported it.
    pub sender_name: Option<String>,
    /// What it says.
    pub content: MessageContent,
    /// The provider's id (unique per account).
    pub provider_message_id: Option<String>,
    /// The message's status as a whole.
    pub status: MessageStatus,
    /// Each participant's status, by phone (E.164).
    pub receipts: BTreeMap<String, MessageStatus>,
    /// When it was written (the provider's time for inbound ones).
    pub created_at: DateTime<Utc>,
    /// Last status change.
    pub updated_at: DateTime<Utc>,
}

impl GroupMessage {
    /// An inbound message from `sender` (status `read`: it is the
    /// business's to read, not to track).
    #[allow(clippy::too_many_arguments, reason = "one constructor for each field a provider reports")]
    pub fn inbound(
        group: &Group,
        sender: Phone,
        sender_name: Option<String>,
        content: MessageContent,
        provider_message_id: String,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let message = GroupMessage {
            id: MessageId::new(),
            account_id: group.account_id,
            channel_id: group.channel_id,
            group_id: group.id,
            direction: Direction::Inbound,
            sender: Some(sender),
            sender_name: sender_name.map(|n| n.chars().take(256).collect()),
            content,
            provider_message_id: Some(provider_message_id),
            status: MessageStatus::Read,
            receipts: BTreeMap::new(),
            created_at: at,
            updated_at: now,
        };
        message.check()?;
        Ok(message)
    }

    /// An outbound message the provider accepted (`sent`).
    pub fn outbound(
        group: &Group,
        content: MessageContent,
        provider_message_id: String,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let message = GroupMessage {
            id: MessageId::new(),
            account_id: group.account_id,
            channel_id: group.channel_id,
            group_id: group.id,
            direction: Direction::Outbound,
            sender: None,
            sender_name: None,
            content,
            provider_message_id: Some(provider_message_id),
            status: MessageStatus::Sent,
            receipts: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        };
        message.check()?;
        Ok(message)
    }

    /// Checks what a store keeps: valid content, a provider id of 1–256 characters.
    pub fn check(&self) -> Result<()> {
        if let MessageContent::Unsupported { .. } = self.content {
            // A provider's message of a type crm does not model: kept as reported.
        } else {
            self.content.validate()?;
        }
        if let Some(id) = &self.provider_message_id
            && (id.is_empty() || id.chars().count() > 256)
        {
            return Err(Error::validation("provider_message_id", "must be 1 to 256 characters"));
        }
        Ok(())
    }

    /// Applies one receipt: `participant`'s own status moves to `status`
    /// when that is forward, and the message's status moves when that is
    /// forward (a receipt without a participant moves only the message's).
    /// Returns whether anything changed (then `updated_at` is `at`).
    pub fn apply_receipt(&mut self, participant: Option<&Phone>, status: MessageStatus, at: DateTime<Utc>) -> bool {
        let mut changed = false;
        if let Some(p) = participant {
            let moves = self.receipts.get(p.as_str()).is_none_or(|current| current.can_become(status));
            if moves {
                self.receipts.insert(p.as_str().to_owned(), status);
                changed = true;
            }
        }
        if self.status.can_become(status) {
            self.status = status;
            changed = true;
        }
        if changed {
            self.updated_at = at;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(s: &str) -> Phone {
        Phone::parse(s).expect("phone")
    }

    #[test]
    fn checks_refuse_what_whatsapp_refuses() {
        assert!(check_subject("Clientes VIP").is_ok());
        assert!(check_subject("  ").is_err());
        assert!(check_subject(&"a".repeat(MAX_SUBJECT_CHARS)).is_ok());
        assert!(check_subject(&"é".repeat(MAX_SUBJECT_CHARS + 1)).is_err());
        assert!(check_subject("a\nb").is_err());
        assert!(check_description("").is_ok());
        assert!(check_description(&"d".repeat(MAX_DESCRIPTION_CHARS + 1)).is_err());
        assert!(check_participants(&[]).is_err());
        let p = phone("+5511987654321");
        assert!(check_participants(&[p.clone(), p.clone()]).is_err());
        assert!(check_participants(&[p]).is_ok());
        for ok in ["120363041234567890@g.us", "5511987654321-1600000000@g.us"] {
            assert!(check_group_jid(ok).is_ok(), "{ok}");
        }
        for bad in ["", "123@c.us", "@g.us", "12a@g.us", "1-2-3@g.us", "1-@g.us"] {
            assert!(check_group_jid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn receipts_never_move_backwards() {
        let info = GroupInfo { jid: "1@g.us".into(), subject: "G".into(), description: None, participants: vec![] };
        let group = Group::new(AccountId::new(), ChannelId::new(), &info, Utc::now()).expect("group");
        let mut m = GroupMessage::outbound(&group, MessageContent::text("oi"), "p1".into(), Utc::now()).expect("m");
        let (a, b) = (phone("+5511987654321"), phone("+5511987654322"));
        assert!(m.apply_receipt(Some(&a), MessageStatus::Delivered, Utc::now()));
        assert_eq!(m.status, MessageStatus::Delivered, "the first delivery moves the message");
        assert!(m.apply_receipt(Some(&a), MessageStatus::Read, Utc::now()));
        assert_eq!(m.status, MessageStatus::Read);
        assert!(!m.apply_receipt(Some(&a), MessageStatus::Delivered, Utc::now()), "a stale receipt changes nothing");
        assert!(m.apply_receipt(Some(&b), MessageStatus::Delivered, Utc::now()), "b's own receipt still moves");
        assert_eq!(m.receipts.get(b.as_str()), Some(&MessageStatus::Delivered));
        assert_eq!(m.receipts.get(a.as_str()), Some(&MessageStatus::Read));
        assert_eq!(m.status, MessageStatus::Read, "the message never goes back");
    }
}

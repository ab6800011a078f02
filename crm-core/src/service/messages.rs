//! Messages: send (free-form and templates), inbound, provider status updates, threads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Crm;
use crate::{
    AccountId, Contact, ContactId, Error, EventType, Message, MessageContent, MessageError, MessageId, MessageStatus,
    NewContact, Page, PageRequest, Phone, Result, StatusUpdate, Variables,
};
use crate::{Channel, Direction, Messenger};

/// An inbound message as a provider reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Sender's phone (any form [`Phone::parse`] accepts, e.g. a WhatsApp id).
    pub from: String,
    /// Sender's WhatsApp id, when the provider gives one.
    pub whatsapp_id: Option<String>,
    /// Sender's profile name, used when the contact is created.
    pub profile_name: Option<String>,
    /// Provider id; a repeated id is recognised and not stored twice.
    pub provider_message_id: Option<String>,
    /// The body.
    pub content: MessageContent,
    /// When the contact sent it (defaults to now).
    pub sent_at: Option<DateTime<Utc>>,
    /// The provider's id of the message it replies to (quotes), if any.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// A provider's report about an outbound message, as a webhook carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderStatus {
    /// The provider's message id.
    pub provider_message_id: String,
    /// crm's message id when the provider echoes it (WhatsApp's
    /// `biz_opaque_callback_data`): finds a message whose send answer was not
    /// recorded yet.
    pub message_id: Option<MessageId>,
    /// The new status.
    pub status: MessageStatus,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The failure, for `failed`.
    pub error: Option<MessageError>,
    /// What the provider says the message costs.
    pub pricing: Option<crate::Pricing>,
}

/// What recording an inbound message did.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The stored message (the earlier one, for a duplicate).
    pub message: Message,
    /// The contact it belongs to.
    pub contact: Contact,
    /// Whether the contact was created by this message.
    pub contact_created: bool,
    /// Whether this was a repeat of an already recorded provider id.
    pub duplicate: bool,
}

/// The contact as message events name it: `{id, name, phone}`.
#[derive(Serialize)]
pub(crate) struct ContactSummary<'a> {
    id: ContactId,
    name: &'a str,
    phone: &'a Phone,
}

pub(crate) fn contact_summary(c: &Contact) -> ContactSummary<'_> {
    ContactSummary { id: c.id, name: &c.name, phone: &c.phone }
}

/// `message.received`'s payload, serialized straight into the event's JSON
/// without an intermediate tree.
#[derive(Serialize)]
struct MessagePayload<'a> {
    message: &'a Message,
    contact: ContactSummary<'a>,
}

/// `message.status_updated`'s payload.
#[derive(Serialize)]
struct StatusPayload<'a> {
    message_id: MessageId,
    contact_id: ContactId,
    direction: Direction,
    status: MessageStatus,
    provider_message_id: &'a Option<String>,
    error: &'a Option<MessageError>,
}

fn status_payload(m: &Message) -> StatusPayload<'_> {
    StatusPayload {
        message_id: m.id,
        contact_id: m.contact_id,
        direction: m.direction,
        status: m.status,
        provider_message_id: &m.provider_message_id,
        error: &m.error,
    }
}

impl Crm {
    /// Records a message from a contact (`message.received`), creating the
    /// contact when the phone is new (`contact.created`, named after the
    /// profile name or the phone). A provider id seen before returns the stored
    /// message with `duplicate: true` and writes nothing.
    pub async fn record_inbound(&self, account: AccountId, inbound: InboundMessage) -> Result<Inbound> {
        self.record_inbound_on(account, None, inbound).await
    }

    /// [`Crm::record_inbound`] for a message that arrived on `channel`
    /// (resolved with [`Crm::channel_for_inbound`]): the message records the
    /// channel, and replies default to it.
    pub async fn record_inbound_via(&self, channel: &Channel, inbound: InboundMessage) -> Result<Inbound> {
        self.record_inbound_on(channel.account_id, Some(channel.id), inbound).await
    }

    async fn record_inbound_on(
        &self,
        account: AccountId,
        channel: Option<crate::ChannelId>,
        inbound: InboundMessage,
    ) -> Result<Inbound> {
        let phone = Phone::parse(&inbound.from)?;
        let now = self.now();
        // Validate the message before anything is written, so a message that
        // cannot be stored does not leave a new contact behind.
        let mut message = Message::inbound(
            account,
            ContactId::new(),
            inbound.content,
            inbound.provider_message_id.clone(),
            inbound.sent_at.unwrap_or(now),
            now,
        )?;
        message.channel_id = channel;
        if let Some(quoted) =
            inbound.reply_to.as_deref().filter(|q| !q.is_empty() && q.len() <= 256 && !q.chars().any(char::is_control))
        {
            let known = self.store.find_message_by_provider_id(account, quoted).await?;
            message.reply_to =
                Some(crate::ReplyTo { message_id: known.map(|m| m.id), provider_message_id: Some(quoted.to_owned()) });
        }
        if let Some(pid) = &inbound.provider_message_id
            && let Some(existing) = self.store.find_message_by_provider_id(account, pid).await?
        {
            let contact = self.store.get_contact(account, existing.contact_id).await?;
            return Ok(Inbound { message: existing, contact, contact_created: false, duplicate: true });
        }
        let (contact, contact_created) = match self.store.find_contact_by_phone(account, &phone).await? {
            // Learn the WhatsApp id the provider uses for this contact (for
            // older Brazilian numbers it lacks the 9th digit, and replies must
            // go to it). Failing to record it must not lose the message.
            Some(c) => match inbound.whatsapp_id.as_deref().and_then(usable_whatsapp_id) {
                Some(wa) if c.whatsapp_id.as_deref() != Some(wa.as_str()) => {
                    let learned = self
                        .modify_contact(account, c.id, |c, now| {
                            if c.whatsapp_id.as_deref() == Some(wa.as_str()) {
                                return Ok(false);
                            }
                            c.whatsapp_id = Some(wa.clone());
                            c.updated_at = now;
                            Ok(true)
                        })
                        .await;
                    (learned.unwrap_or(c), false)
                }
                _ => (c, false),
            },
            None => {
                // What the provider reports about the sender must not stop the
                // message from being recorded: an unusable profile name falls
                // back to the phone, an unusable WhatsApp id is left out.
                let input = NewContact {
                    name: inbound
                        .profile_name
                        .as_deref()
                        .and_then(usable_profile_name)
                        .unwrap_or_else(|| phone.to_string()),
                    phone: phone.to_string(),
                    whatsapp_id: inbound.whatsapp_id.as_deref().and_then(usable_whatsapp_id),
                    ..Default::default()
                };
                match self.create_contact(account, input).await {
                    Ok(c) => (c, true),
                    // Created concurrently by another inbound message.
                    Err(Error::Conflict { .. }) => (
                        self.store.find_contact_by_phone(account, &phone).await?.ok_or(Error::not_found("contact"))?,
                        false,
                    ),
                    Err(e) => return Err(e),
                }
            }
        };
        message.contact_id = contact.id;
        let event = self.event(
            account,
            EventType::MESSAGE_RECEIVED,
            &MessagePayload { message: &message, contact: contact_summary(&contact) },
        );
        match self.store.insert_message(&message, &event).await {
            Ok(()) => {
                let contact = self.store.get_contact(account, contact.id).await?;
                Ok(Inbound { message, contact, contact_created, duplicate: false })
            }
            Err(Error::Conflict { .. }) if inbound.provider_message_id.is_some() => {
                let pid = inbound.provider_message_id.as_deref().unwrap_or_default();
                let existing =
                    self.store.find_message_by_provider_id(account, pid).await?.ok_or(Error::not_found("message"))?;
                Ok(Inbound { message: existing, contact, contact_created, duplicate: true })
            }
            Err(e) => Err(e),
        }
    }

    /// Applies a provider status report to the message with this provider id
    /// (`message.status_updated` when it moved forward). Returns the message as
    /// stored afterwards — unchanged when the report was stale or a duplicate.
    /// [`Error::NotFound`] when no message has this provider id.
    pub async fn apply_status_update(
        &self,
        account: AccountId,
        provider_message_id: &str,
        status: MessageStatus,
        at: DateTime<Utc>,
        error: Option<MessageError>,
    ) -> Result<Message> {
        let message = self
            .store
            .find_message_by_provider_id(account, provider_message_id)
            .await?
            .ok_or(Error::not_found("message"))?;
        let error = error.map(clean_error);
        self.update_status(
            account,
            message,
            StatusUpdate { status, at, provider_message_id: None, error, pricing: None },
        )
        .await
    }

    /// Applies a provider status report to crm's message `message_id` (a
    /// provider that echoes crm's id, e.g. WhatsApp's
    /// `biz_opaque_callback_data`), recording `provider_message_id` on it
    /// when it has none yet: a report that arrives before the send's answer
    /// was written is not lost. [`Error::NotFound`] when the message is
    /// missing, inbound, or already carries another provider id.
    pub async fn apply_status_update_for(
        &self,
        account: AccountId,
        message_id: MessageId,
        provider_message_id: &str,
        status: MessageStatus,
        at: DateTime<Utc>,
        error: Option<MessageError>,
    ) -> Result<Message> {
        let message = self.store.get_message(account, message_id).await?;
        let other_id = message.provider_message_id.as_deref().is_some_and(|p| p != provider_message_id);
        if message.direction != crate::Direction::Outbound || other_id {
            return Err(Error::not_found("message"));
        }
        let update = StatusUpdate {
            status,
            at,
            provider_message_id: Some(provider_message_id.to_owned()),
            error: error.map(clean_error),
            pricing: None,
        };
        self.update_status(account, message, update).await
    }

    /// Applies a provider's status report: finds the message by its
    /// provider id, else by crm's id the provider echoed
    /// ([`Crm::apply_status_update_for`]), moves its status forward and
    /// records the report's pricing. A stale report (the status cannot move)
    /// still records pricing the message lacks (`message.updated`).
    /// [`Error::NotFound`] when neither id finds an outbound message.
    pub async fn apply_status_report(&self, account: AccountId, report: ProviderStatus) -> Result<Message> {
        let pricing = report.pricing.map(crate::Pricing::cleaned);
        let error = report.error.map(clean_error);
        let found = self.store.find_message_by_provider_id(account, &report.provider_message_id).await?;
        let (message, provider_id) = match (found, report.message_id) {
            (Some(m), _) => (m, None),
            (None, Some(id)) => {
                let m = match self.store.get_message(account, id).await {
                    Ok(m) => m,
                    Err(Error::NotFound { .. }) => return Err(Error::not_found("message")),
                    Err(e) => return Err(e),
                };
                let other_id = m.provider_message_id.as_deref().is_some_and(|p| p != report.provider_message_id);
                if m.direction != Direction::Outbound || other_id {
                    return Err(Error::not_found("message"));
                }
                (m, Some(report.provider_message_id.clone()))
            }
            (None, None) => return Err(Error::not_found("message")),
        };
        let moves = message.status.can_become(report.status);
        let update = StatusUpdate {
            status: report.status,
            at: report.at,
            provider_message_id: provider_id,
            error,
            pricing: pricing.clone(),
        };
        let message = self.update_status(account, message, update).await?;
        match pricing {
            Some(p) if !moves && message.pricing.is_none() => {
                let annotation = crate::MessageAnnotation { pricing: Some(p), attachment: None, fallback: None };
                self.annotate_message(account, &message, annotation).await
            }
            _ => Ok(message),
        }
    }

    /// Records an inbound message's fetched media file ([`crate::Attachment`]) on
    /// it (`message.updated`). [`Error::NotFound`] when the message is missing.
    pub async fn record_attachment(
        &self,
        account: AccountId,
        message_id: MessageId,
        attachment: crate::Attachment,
    ) -> Result<Message> {
        let message = self.store.get_message(account, message_id).await?;
        let annotation = crate::MessageAnnotation { attachment: Some(attachment), pricing: None, fallback: None };
        self.annotate_message(account, &message, annotation).await
    }

    pub(super) async fn annotate_message(
        &self,
        account: AccountId,
        message: &Message,
        annotation: crate::MessageAnnotation,
    ) -> Result<Message> {
        let payload = serde_json::json!({
            "message_id": message.id,
            "contact_id": message.contact_id,
            "direction": message.direction,
            "attachment": annotation.attachment,
            "pricing": annotation.pricing,
            "fallback": annotation.fallback.as_ref().map(|f| &f.fallback),
        });
        let event = self.event(account, EventType::MESSAGE_UPDATED, &payload);
        self.store.annotate_message(account, message.id, &annotation, &event).await
    }

    pub(super) async fn update_status(
        &self,
        account: AccountId,
        message: Message,
        update: StatusUpdate,
    ) -> Result<Message> {
        if !message.status.can_become(update.status) {
            return Ok(message);
        }
        let mut expected = message.clone();
        expected.apply_status(&update);
        let event = self.event(account, EventType::MESSAGE_STATUS_UPDATED, &status_payload(&expected));
        match self.store.update_message_status(account, message.id, &update, &event).await? {
            Some(m) => Ok(m),
            None => self.store.get_message(account, message.id).await,
        }
    }

    /// One message.
    pub async fn get_message(&self, account: AccountId, id: MessageId) -> Result<Message> {
        self.store.get_message(account, id).await
    }

    /// Marks an inbound message read on the provider (WhatsApp's blue
    /// ticks on it and the conversation's messages before it), through the
    /// messenger of the channel it came in on. [`Error::NotFound`] for a
    /// missing message; [`Error::Validation`] on `id` for an outbound
    /// message or one without a channel or provider id (its channel was
    /// deleted, it was imported), and on `channel` for a channel whose
    /// provider has no read receipts; the provider's errors as they are.
    pub async fn mark_read(&self, account: AccountId, id: MessageId) -> Result<()> {
        let message = self.store.get_message(account, id).await?;
        let not_readable = || Error::validation("id", "only messages received on a channel can be marked read");
        let (Some(channel), Some(provider_id), crate::Direction::Inbound) =
            (message.channel_id, message.provider_message_id, message.direction)
        else {
            return Err(not_readable());
        };
        let channel = match self.store.get_channel(account, channel).await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Err(not_readable()),
            Err(e) => return Err(e),
        };
        let contact = self.store.get_contact(account, message.contact_id).await?;
        let receipt = crate::ReadReceipt {
            account_id: account,
            provider_message_id: provider_id,
            from: contact.phone,
            whatsapp_id: contact.whatsapp_id,
        };
        self.channels.messenger(&channel).await?.mark_read(&receipt).await
    }

    /// A contact's thread, oldest first.
    pub async fn list_thread(
        &self,
        account: AccountId,
        contact: ContactId,
        page: &PageRequest,
    ) -> Result<Page<Message>> {
        self.store.list_thread(account, contact, page).await
    }
}

/// Variables every template can use for a contact: `name`, `first_name`,
/// `phone` and, when set, `email`.
pub fn contact_variables(contact: &Contact) -> Variables {
    let mut v = Variables::new();
    v.insert("name".into(), contact.name.clone());
    v.insert("first_name".into(), contact.name.split_whitespace().next().unwrap_or(&contact.name).to_owned());
    v.insert("phone".into(), contact.phone.to_string());
    if let Some(e) = &contact.email {
        v.insert("email".into(), e.to_string());
    }
    v
}

/// Strips control characters (other than line breaks) and bounds the length
/// of a provider's failure so any store can keep it.
pub(crate) fn clean_error(e: MessageError) -> MessageError {
    let tidy = |s: String| -> String { s.chars().filter(|c| !c.is_control() || *c == '\n').take(1000).collect() };
    MessageError { code: e.code.map(|c| tidy(c).chars().take(64).collect()), reason: tidy(e.reason) }
}

/// A profile name trimmed to what a contact name allows (control characters
/// dropped, at most 200 characters); `None` when nothing usable is left.
fn usable_profile_name(name: &str) -> Option<String> {
    let cleaned: String = name.chars().filter(|c| !c.is_control()).collect();
    let cleaned: String = cleaned.trim().chars().take(200).collect();
    let cleaned = cleaned.trim_end();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// The WhatsApp id when it is one a contact may carry (1–64 characters, no
/// spaces or control characters).
fn usable_whatsapp_id(id: &str) -> Option<String> {
    let id = id.trim();
    let ok = !id.is_empty() && id.len() <= 64 && !id.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then(|| id.to_owned())
}

/// `24 hours`, `90 minutes`, `45 seconds`.
pub(crate) fn describe_window(window: std::time::Duration) -> String {
    let secs = window.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} hours", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} minutes", secs / 60)
    } else {
        format!("{secs} seconds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_and_whatsapp_ids_are_made_usable() {
        assert_eq!(usable_profile_name("  Ana\u{0}  ").as_deref(), Some("Ana"));
        assert_eq!(usable_profile_name(" \u{7} "), None);
        assert_eq!(usable_profile_name(&"é".repeat(300)).map(|n| n.chars().count()), Some(200));
        assert_eq!(usable_whatsapp_id(" 551187654321 ").as_deref(), Some("551187654321"));
        assert_eq!(usable_whatsapp_id("55 11"), None);
        assert_eq!(usable_whatsapp_id(&"1".repeat(65)), None);
        assert_eq!(describe_window(std::time::Duration::from_secs(24 * 3600)), "24 hours");
        assert_eq!(describe_window(std::time::Duration::from_secs(90)), "90 seconds");
        assert_eq!(describe_window(std::time::Duration::from_secs(120)), "2 minutes");
    }
}

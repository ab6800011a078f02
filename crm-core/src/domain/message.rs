//! Messages and their delivery status.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::{AccountId, ChannelId, ContactId, Error, MessageId, Result};

/// Longest WhatsApp text body, in characters.
pub const MAX_TEXT_LEN: usize = 4096;

/// Largest provider object an [`MessageContent::Unsupported`] message keeps, as JSON.
pub const MAX_UNSUPPORTED_PAYLOAD_BYTES: usize = 16 * 1024;

/// Who sent the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Direction {
    /// From the contact to the business.
    Inbound,
    /// From the business to the contact.
    Outbound,
}

impl Direction {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Parses [`Direction::as_str`] output.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "inbound" => Ok(Direction::Inbound),
            "outbound" => Ok(Direction::Outbound),
            _ => Err(Error::validation("direction", "must be inbound or outbound")),
        }
    }
}

/// Delivery status. It only moves forward: `queued → sent → delivered → read`,
/// with `failed` reachable from any state before `read` and terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MessageStatus {
    /// Stored, not yet accepted by the provider.
    Queued,
    /// Accepted by the provider.
    Sent,
    /// Reached the recipient's device.
    Delivered,
    /// Read by the recipient.
    Read,
    /// Will not be delivered; terminal.
    Failed,
}

impl MessageStatus {
    /// Every status.
    pub const ALL: [MessageStatus; 5] = [
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
    ];

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
        }
    }

    /// Parses [`MessageStatus::as_str`] output.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::validation("status", "must be queued, sent, delivered, read or failed"))
    }

    /// Whether a message in `self` may move to `next`.
    pub fn can_become(self, next: MessageStatus) -> bool {
        Self::predecessors(next).contains(&self)
    }

    /// The states from which a message may move to `next` — what stores use in
    /// their conditional update (`… WHERE status IN (predecessors)`).
    pub fn predecessors(next: MessageStatus) -> &'static [MessageStatus] {
        use MessageStatus::*;
        match next {
            Queued => &[],
            Sent => &[Queued],
            Delivered => &[Queued, Sent],
            Read => &[Queued, Sent, Delivered],
            Failed => &[Queued, Sent, Delivered],
        }
    }

    /// No transition leaves this state.
    pub fn is_terminal(self) -> bool {
        matches!(self, MessageStatus::Read | MessageStatus::Failed)
    }
}

/// What kind of content a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MessageKind {
    /// Plain text.
    Text,
    /// Image with optional caption.
    Image,
    /// Audio or voice note.
    Audio,
    /// Video with optional caption.
    Video,
    /// Document with optional filename.
    Document,
    /// Sticker.
    Sticker,
    /// Location pin.
    Location,
    /// Shared contact cards.
    Contacts,
    /// Emoji reaction to another message.
    Reaction,
    /// Buttons or list, or a reply to one.
    Interactive,
    /// Provider-approved template.
    Template,
    /// A message of a type crm does not model (an order, a system notice, a
    /// type the provider added later), kept as the provider sent it; inbound only.
    Unsupported,
}

impl MessageKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::Audio => "audio",
            MessageKind::Video => "video",
            MessageKind::Document => "document",
            MessageKind::Sticker => "sticker",
            MessageKind::Location => "location",
            MessageKind::Contacts => "contacts",
            MessageKind::Reaction => "reaction",
            MessageKind::Interactive => "interactive",
            MessageKind::Template => "template",
            MessageKind::Unsupported => "unsupported",
        }
    }
}

/// Media kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MediaKind {
    /// Image.
    Image,
    /// Audio.
    Audio,
    /// Video.
    Video,
    /// Document.
    Document,
    /// Sticker.
    Sticker,
}

/// Where media lives: a URL the provider can fetch, a provider media id, or a
/// key in crm's `MediaStore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaRef {
    /// `https://…` URL, provider media id, or `media:<key>`.
    pub location: String,
    /// MIME type, when known.
    pub mime_type: Option<String>,
}

/// One reply button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplyButton {
    /// Id echoed back when tapped (1–256 characters).
    pub id: String,
    /// Label (1–20 characters).
    pub title: String,
}

/// One row of a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListRow {
    /// Id echoed back when chosen.
    pub id: String,
    /// Label (1–24 characters).
    pub title: String,
    /// Optional description (≤ 72 characters).
    pub description: Option<String>,
}

/// A titled group of rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListSection {
    /// Section title (≤ 24 characters).
    pub title: String,
    /// Rows.
    pub rows: Vec<ListRow>,
}

crate::json_object_only!(MediaRef, ReplyButton, ListRow, ListSection);

/// Interactive content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Interactive {
    /// Up to three reply buttons.
    Buttons {
        /// Body text.
        body: String,
        /// 1–3 buttons.
        buttons: Vec<ReplyButton>,
    },
    /// A menu of up to ten rows.
    List {
        /// Body text.
        body: String,
        /// Label of the button that opens the list (≤ 20 characters).
        button: String,
        /// Sections holding 1–10 rows in all.
        sections: Vec<ListSection>,
    },
    /// The contact tapped a button or chose a row (inbound).
    Reply {
        /// The button or row id.
        id: String,
        /// Its title.
        title: String,
    },
}

/// The body of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MessageContent {
    /// Plain text.
    Text {
        /// 1–4096 characters.
        body: String,
    },
    /// Image, audio, video, document or sticker.
    Media {
        /// Which.
        kind: MediaKind,
        /// Where the bytes are.
        media: MediaRef,
        /// Caption (images, videos, documents).
        caption: Option<String>,
        /// File name (documents).
        filename: Option<String>,
    },
    /// A location pin.
    Location {
        /// −90..=90.
        latitude: f64,
        /// −180..=180.
        longitude: f64,
        /// Place name.
        name: Option<String>,
        /// Address.
        address: Option<String>,
    },
    /// Contact cards, in the provider's JSON shape.
    Contacts {
        /// Cards.
        contacts: Vec<serde_json::Value>,
    },
    /// An emoji reaction to the message with `message_id` (provider id).
    Reaction {
        /// Provider id of the message reacted to.
        message_id: String,
        /// The emoji; empty removes the reaction.
        emoji: String,
    },
    /// Buttons, lists and replies to them.
    Interactive {
        /// The interactive payload.
        interactive: Interactive,
    },
    /// A provider template and the text it rendered to.
    Template {
        /// Template name.
        name: String,
        /// Language code, e.g. `pt_BR`.
        language: String,
        /// Variables used.
        variables: BTreeMap<String, String>,
        /// The rendered body, for the thread view.
        rendered: String,
    },
    /// A message of a type crm does not model (orders, system notices,
    /// unknown types), kept as the provider sent it. Inbound only: no
    /// messenger sends it.
    Unsupported {
        /// The provider's type name, e.g. `order`.
        provider_type: String,
        /// A readable summary for the thread view.
        summary: String,
        /// The provider's object, as sent (at most 16 KiB as JSON).
        payload: serde_json::Value,
    },
}

fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(Error::validation(field, format!("must be {min} to {max} characters")));
    }
    Ok(())
}

impl MessageContent {
    /// A text message.
    pub fn text(body: impl Into<String>) -> Self {
        MessageContent::Text { body: body.into() }
    }

    /// The kind of this content.
    pub fn kind(&self) -> MessageKind {
        match self {
            MessageContent::Text { .. } => MessageKind::Text,
            MessageContent::Media { kind, .. } => match kind {
                MediaKind::Image => MessageKind::Image,
                MediaKind::Audio => MessageKind::Audio,
                MediaKind::Video => MessageKind::Video,
                MediaKind::Document => MessageKind::Document,
                MediaKind::Sticker => MessageKind::Sticker,
            },
            MessageContent::Location { .. } => MessageKind::Location,
            MessageContent::Contacts { .. } => MessageKind::Contacts,
            MessageContent::Reaction { .. } => MessageKind::Reaction,
            MessageContent::Interactive { .. } => MessageKind::Interactive,
            MessageContent::Template { .. } => MessageKind::Template,
            MessageContent::Unsupported { .. } => MessageKind::Unsupported,
        }
    }

    /// A short human-readable preview (text body, caption, template rendering…).
    pub fn preview(&self) -> String {
        match self {
            MessageContent::Text { body } => body.clone(),
            MessageContent::Media { caption, kind, .. } => {
                caption.clone().unwrap_or_else(|| format!("[{kind:?}]").to_lowercase())
            }
            MessageContent::Location { name, .. } => name.clone().unwrap_or_else(|| "[location]".into()),
            MessageContent::Contacts { .. } => "[contacts]".into(),
            MessageContent::Reaction { emoji, .. } => emoji.clone(),
            MessageContent::Interactive {
                interactive: Interactive::Buttons { body, .. } | Interactive::List { body, .. },
            } => body.clone(),
            MessageContent::Interactive { interactive: Interactive::Reply { title, .. } } => title.clone(),
            MessageContent::Template { rendered, .. } => rendered.clone(),
            MessageContent::Unsupported { summary, .. } => summary.clone(),
        }
    }

    /// Checks WhatsApp's limits; [`Error::Validation`] names the field
    /// (`content.body`, `content.buttons`, …).
    pub fn validate(&self) -> Result<()> {
        if serde_json::to_string(self).is_ok_and(|t| t.contains("\\u0000")) {
            return Err(Error::validation("content", "must not contain NUL characters"));
        }
        match self {
            MessageContent::Text { body } => {
                if body.trim().is_empty() {
                    return Err(Error::validation("content.body", "must not be empty"));
                }
                check_len("content.body", body, 1, MAX_TEXT_LEN)
            }
            MessageContent::Media { media, caption, filename, kind } => {
                check_len("content.media.location", &media.location, 1, 2048)?;
                if let Some(c) = caption {
                    if matches!(kind, MediaKind::Audio | MediaKind::Sticker) {
                        return Err(Error::validation("content.caption", "audio and stickers take no caption"));
                    }
                    check_len("content.caption", c, 1, 1024)?;
                }
                if let Some(f) = filename {
                    check_len("content.filename", f, 1, 240)?;
                }
                Ok(())
            }
            MessageContent::Location { latitude, longitude, .. } => {
                if !(-90.0..=90.0).contains(latitude) || !(-180.0..=180.0).contains(longitude) {
                    return Err(Error::validation("content.latitude", "coordinates out of range"));
                }
                Ok(())
            }
            MessageContent::Contacts { contacts } => {
                if contacts.is_empty() || contacts.len() > 257 {
                    return Err(Error::validation("content.contacts", "must hold 1 to 257 cards"));
                }
                Ok(())
            }
            MessageContent::Reaction { message_id, emoji } => {
                check_len("content.message_id", message_id, 1, 256)?;
                check_len("content.emoji", emoji, 0, 8)
            }
            MessageContent::Interactive { interactive } => match interactive {
                Interactive::Buttons { body, buttons } => {
                    check_len("content.body", body, 1, 1024)?;
                    if buttons.is_empty() || buttons.len() > 3 {
                        return Err(Error::validation("content.buttons", "must hold 1 to 3 buttons"));
                    }
                    for b in buttons {
                        check_len("content.buttons.id", &b.id, 1, 256)?;
                        check_len("content.buttons.title", &b.title, 1, 20)?;
                    }
                    let ids: std::collections::BTreeSet<_> = buttons.iter().map(|b| &b.id).collect();
                    if ids.len() != buttons.len() {
                        return Err(Error::validation("content.buttons.id", "button ids must be unique"));
                    }
                    Ok(())
                }
                Interactive::List { body, button, sections } => {
                    check_len("content.body", body, 1, 4096)?;
                    check_len("content.button", button, 1, 20)?;
                    let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
                    if sections.is_empty() || sections.len() > 10 || rows == 0 || rows > 10 {
                        return Err(Error::validation(
                            "content.sections",
                            "must hold 1 to 10 sections and 1 to 10 rows",
                        ));
                    }
                    for s in sections {
                        check_len("content.sections.title", &s.title, 0, 24)?;
                        for r in &s.rows {
                            check_len("content.sections.rows.id", &r.id, 1, 200)?;
                            check_len("content.sections.rows.title", &r.title, 1, 24)?;
                            if let Some(d) = &r.description {
                                check_len("content.sections.rows.description", d, 0, 72)?;
                            }
                        }
                    }
                    Ok(())
                }
                Interactive::Reply { id, title } => {
                    check_len("content.id", id, 1, 256)?;
                    check_len("content.title", title, 0, 256)
                }
            },
            MessageContent::Template { name, language, rendered, .. } => {
                check_len("content.name", name, 1, 512)?;
                check_len("content.language", language, 2, 15)?;
                check_len("content.rendered", rendered, 0, MAX_TEXT_LEN)
            }
            MessageContent::Unsupported { provider_type, summary, payload } => {
                check_len("content.provider_type", provider_type, 1, 64)?;
                check_len("content.summary", summary, 0, MAX_TEXT_LEN)?;
                let size = serde_json::to_string(payload).map(|t| t.len()).unwrap_or(usize::MAX);
                if size > MAX_UNSUPPORTED_PAYLOAD_BYTES {
                    return Err(Error::validation(
                        "content.payload",
                        format!("at most {MAX_UNSUPPORTED_PAYLOAD_BYTES} bytes"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Why the provider failed a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageError {
    /// Provider error code, e.g. WhatsApp's `131047`.
    pub code: Option<String>,
    /// Provider's reason.
    pub reason: String,
}

/// The message a message replies to (WhatsApp's `context`): crm's id when
/// crm knows the quoted message, and the provider's id the provider needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplyTo {
    /// crm's id of the quoted message, when crm has it.
    #[serde(default)]
    pub message_id: Option<MessageId>,
    /// The provider's id of the quoted message (`wamid.…`).
    #[serde(default)]
    pub provider_message_id: Option<String>,
}

/// A provider template to send instead of a free-form message the
/// customer-service window no longer allows (per channel in its settings as
/// `fallback_template`, or per send request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FallbackTemplate {
    /// The stored template's name.
    pub name: String,
    /// Its language, e.g. `pt_BR`.
    pub language: String,
    /// Values for its placeholders; the contact's `name`, `first_name`,
    /// `phone` and `email` fill the ones left out.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

impl FallbackTemplate {
    /// Checks the name and language as a template reference
    /// ([`Error::Validation`] on `field`).
    pub fn validate(&self, field: &'static str) -> Result<()> {
        crate::domain::template::check_template_ref(&self.name, &self.language)
            .map_err(|e| Error::validation(field, e.to_string()))?;
        if self.variables.len() > 64 {
            return Err(Error::validation(field, "at most 64 variables"));
        }
        Ok(())
    }
}

/// Set on a message that went out as a template because the
/// customer-service window was closed: what was asked for and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fallback {
    /// The template sent instead (its name).
    pub template: String,
    /// Its language.
    pub language: String,
    /// Why the free-form content could not go.
    pub reason: String,
    /// The content the request asked for, kept as asked.
    pub original: MessageContent,
}

/// What happened to an inbound message's media file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AttachmentState {
    /// Downloaded from the provider and kept (see [`Attachment::key`]).
    Stored,
    /// The provider's file could not be downloaded (see [`Attachment::error`]).
    Failed,
    /// Waiting for its download (a worker copies it; see [`Attachment::media_id`]).
    Pending,
    /// Deleted after the account's media retention period.
    Expired,
    /// Deleted on request or with the contact.
    Deleted,
}

/// An inbound message's media file as crm fetched it from the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    /// Stored or failed.
    pub state: AttachmentState,
    /// The provider's media id.
    pub provider_media_id: String,
    /// The MIME type the provider gave.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Lower-case hex SHA-256 of the bytes.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Where the bytes are kept: the [`MediaStore`](crate::MediaStore) key.
    #[serde(default)]
    pub key: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Its record in the media library ([`Media`](crate::Media)), whose
    /// signed URL reads it once stored.
    #[serde(default)]
    pub media_id: Option<crate::MediaId>,
}

/// What the provider says a message costs (WhatsApp's `pricing` and
/// `conversation` objects of status reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pricing {
    /// Whether the message is charged.
    #[serde(default)]
    pub billable: Option<bool>,
    /// The pricing model, e.g. `PMP` (per message) or `CBP` (per conversation).
    #[serde(default)]
    pub pricing_model: Option<String>,
    /// The category charged: `marketing`, `utility`, `authentication`, `service`, …
    #[serde(default)]
    pub category: Option<String>,
    /// The pricing type, e.g. `regular` or `free_customer_service`.
    #[serde(default)]
    pub pricing_type: Option<String>,
    /// The conversation the message belongs to (per-conversation pricing).
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// What opened that conversation (`marketing`, `service`, …).
    #[serde(default)]
    pub conversation_origin: Option<String>,
    /// When that conversation ends.
    #[serde(default, serialize_with = "crate::domain::time::serialize_opt")]
    pub conversation_expires_at: Option<DateTime<Utc>>,
}

impl Pricing {
    /// Bounds every text (64 characters, no control characters), so any
    /// store keeps what a provider reports.
    pub fn cleaned(self) -> Self {
        let tidy = |s: Option<String>| {
            s.map(|s| s.chars().filter(|c| !c.is_control()).take(64).collect::<String>()).filter(|s| !s.is_empty())
        };
        Pricing {
            billable: self.billable,
            pricing_model: tidy(self.pricing_model),
            category: tidy(self.category),
            pricing_type: tidy(self.pricing_type),
            conversation_id: tidy(self.conversation_id),
            conversation_origin: tidy(self.conversation_origin),
            conversation_expires_at: self.conversation_expires_at,
        }
    }
}

/// One message in a contact's thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// Id.
    pub id: MessageId,
    /// Owning account.
    pub account_id: AccountId,
    /// The contact whose thread this is.
    pub contact_id: ContactId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The body.
    pub content: MessageContent,
    /// Delivery status.
    pub status: MessageStatus,
    /// The channel it went (or goes) through; `None` for messages of the
    /// service's fallback messenger.
    #[serde(default)]
    pub channel_id: Option<ChannelId>,
    /// The caller's reference for an outbound message (an HTTP
    /// `Idempotency-Key`); unique per account when present, so a retried
    /// request finds the first message instead of creating a second one.
    #[serde(default)]
    pub client_reference: Option<String>,
    /// The provider's id (`wamid.…`); unique per account when present.
    pub provider_message_id: Option<String>,
    /// Set when the message failed.
    pub error: Option<MessageError>,
    /// The message this one replies to.
    #[serde(default)]
    pub reply_to: Option<ReplyTo>,
    /// Set when a free-form message went out as a fallback template.
    #[serde(default)]
    pub fallback: Option<Fallback>,
    /// An inbound message's media file, once fetched from the provider.
    #[serde(default)]
    pub attachment: Option<Attachment>,
    /// What the provider reported the message costs.
    #[serde(default)]
    pub pricing: Option<Pricing>,
    /// When stored (or, for inbound messages, when the provider says it was sent).
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub created_at: DateTime<Utc>,
    /// When accepted by the provider.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    pub sent_at: Option<DateTime<Utc>>,
    /// When delivered.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When read.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    pub read_at: Option<DateTime<Utc>>,
    /// When it failed.
    #[serde(serialize_with = "crate::domain::time::serialize_opt")]
    pub failed_at: Option<DateTime<Utc>>,
    /// Last change.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl Message {
    /// The kind of its content.
    pub fn kind(&self) -> MessageKind {
        self.content.kind()
    }

    /// A new outbound message in `queued`, validating `content`.
    pub fn outbound(
        account_id: AccountId,
        contact_id: ContactId,
        content: MessageContent,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        content.validate()?;
        Ok(Message {
            id: MessageId::new(),
            account_id,
            contact_id,
            direction: Direction::Outbound,
            content,
            status: MessageStatus::Queued,
            channel_id: None,
            client_reference: None,
            provider_message_id: None,
            error: None,
            reply_to: None,
            fallback: None,
            attachment: None,
            pricing: None,
            created_at: now,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            updated_at: now,
        })
    }

    /// A new inbound message, stored as `delivered` (it reached the business),
    /// validating `content`.
    pub fn inbound(
        account_id: AccountId,
        contact_id: ContactId,
        content: MessageContent,
        provider_message_id: Option<String>,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        content.validate()?;
        if let Some(id) = &provider_message_id {
            check_len("provider_message_id", id, 1, 256)?;
            if id.chars().any(char::is_control) {
                return Err(Error::validation("provider_message_id", "must not contain control characters"));
            }
        }
        Ok(Message {
            id: MessageId::new(),
            account_id,
            contact_id,
            direction: Direction::Inbound,
            content,
            status: MessageStatus::Delivered,
            channel_id: None,
            client_reference: None,
            provider_message_id,
            error: None,
            reply_to: None,
            fallback: None,
            attachment: None,
            pricing: None,
            created_at: sent_at,
            sent_at: Some(sent_at),
            delivered_at: Some(now),
            read_at: None,
            failed_at: None,
            updated_at: now,
        })
    }

    /// Sets the caller's reference: 1–255 printable ASCII characters
    /// (what an `Idempotency-Key` header may carry).
    pub fn with_client_reference(mut self, reference: impl Into<String>) -> Result<Self> {
        let r = reference.into();
        if !(1..=255).contains(&r.len()) || !r.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Error::validation(
                "client_reference",
                "must be 1 to 255 printable ASCII characters without spaces",
            ));
        }
        self.client_reference = Some(r);
        Ok(self)
    }

    /// Applies `update` in memory following the status machine; returns
    /// whether it changed anything. Stores implement the same rule atomically.
    pub fn apply_status(&mut self, update: &StatusUpdate) -> bool {
        if !self.status.can_become(update.status) {
            return false;
        }
        self.status = update.status;
        match update.status {
            MessageStatus::Sent => self.sent_at = Some(update.at),
            MessageStatus::Delivered => self.delivered_at = Some(update.at),
            MessageStatus::Read => self.read_at = Some(update.at),
            MessageStatus::Failed => {
                self.failed_at = Some(update.at);
                self.error = update.error.clone();
            }
            MessageStatus::Queued => {}
        }
        if let Some(pid) = &update.provider_message_id
            && self.provider_message_id.is_none()
        {
            self.provider_message_id = Some(pid.clone());
        }
        if let Some(p) = &update.pricing {
            self.pricing = Some(p.clone());
        }
        self.updated_at = update.at;
        true
    }
}

/// A status change reported by the provider or the send flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusUpdate {
    /// The new status.
    pub status: MessageStatus,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Provider id to record when the message has none yet (the `sent` step).
    pub provider_message_id: Option<String>,
    /// The failure, for `failed`.
    pub error: Option<MessageError>,
    /// What the provider says the message costs, when the report says it
    /// (replaces what is stored).
    #[serde(default)]
    pub pricing: Option<Pricing>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;

    #[test]
    fn status_machine_only_moves_forward() {
        assert!(Queued.can_become(Sent));
        assert!(Sent.can_become(Read));
        assert!(!Read.can_become(Delivered));
        assert!(!Delivered.can_become(Sent));
        assert!(!Failed.can_become(Sent));
        assert!(!Failed.can_become(Failed));
        assert!(!Read.can_become(Failed));
        assert!(Queued.can_become(Failed));
        for s in MessageStatus::ALL {
            assert!(!s.can_become(Queued));
            assert!(!s.can_become(s));
            assert_eq!(MessageStatus::parse(s.as_str()).unwrap(), s);
        }
    }

    #[test]
    fn late_delivered_does_not_undo_read() {
        let now = Utc::now();
        let mut m = Message::outbound(AccountId::new(), ContactId::new(), MessageContent::text("oi"), now).unwrap();
        let up = |status| StatusUpdate {
            status,
            at: now,
            provider_message_id: Some("wamid.1".into()),
            error: None,
            pricing: None,
        };
        assert!(m.apply_status(&up(Sent)));
        assert!(m.apply_status(&up(Read)));
        assert!(!m.apply_status(&up(Delivered)));
        assert_eq!(m.status, Read);
        assert_eq!(m.provider_message_id.as_deref(), Some("wamid.1"));
    }

    #[test]
    fn nul_characters_are_refused() {
        assert!(MessageContent::text("a\0b").validate().is_err());
        let now = Utc::now();
        assert!(
            Message::inbound(
                AccountId::new(),
                ContactId::new(),
                MessageContent::text("x"),
                Some("w\0".into()),
                now,
                now
            )
            .is_err()
        );
    }

    #[test]
    fn content_limits() {
        assert!(MessageContent::text("").validate().is_err());
        assert!(MessageContent::text("x".repeat(MAX_TEXT_LEN + 1)).validate().is_err());
        let buttons = |n: usize| MessageContent::Interactive {
            interactive: Interactive::Buttons {
                body: "Escolha".into(),
                buttons: (0..n).map(|i| ReplyButton { id: i.to_string(), title: "Sim".into() }).collect(),
            },
        };
        assert!(buttons(3).validate().is_ok());
        assert!(buttons(4).validate().is_err());
        assert!(buttons(0).validate().is_err());
        let loc = MessageContent::Location { latitude: 91.0, longitude: 0.0, name: None, address: None };
        assert!(loc.validate().is_err());
        assert_eq!(MessageContent::text("a").kind().as_str(), "text");
        let json = serde_json::to_value(buttons(1)).unwrap();
        assert_eq!(json["type"], "interactive");
        let back: MessageContent = serde_json::from_value(json).unwrap();
        assert_eq!(back, buttons(1));
    }
}

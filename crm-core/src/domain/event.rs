//! Domain events: the append-only log every mutation writes to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

use crate::{AccountId, Error, EventId, Result};

/// A dotted event name such as `contact.created`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventType(Cow<'static, str>);

macro_rules! event_types {
    ($($(#[$doc:meta])* $konst:ident = $name:literal;)*) => {
        impl EventType {
            $( $(#[$doc])* pub const $konst: EventType = EventType(Cow::Borrowed($name)); )*

            /// Every event type crm-core emits.
            pub const BUILT_IN: &'static [EventType] = &[$(EventType::$konst),*];
        }
    };
}

event_types! {
    /// An account was created.
    ACCOUNT_CREATED = "account.created";
    /// A user was created.
    USER_CREATED = "user.created";
    /// An API key was created.
    API_KEY_CREATED = "api_key.created";
    /// An API key was revoked.
    API_KEY_REVOKED = "api_key.revoked";
    /// A contact was created (by hand, by import, or by an inbound message).
    CONTACT_CREATED = "contact.created";
    /// A contact changed.
    CONTACT_UPDATED = "contact.updated";
    /// A contact was deleted.
    CONTACT_DELETED = "contact.deleted";
    /// An outbound message was stored as queued.
    MESSAGE_QUEUED = "message.queued";
    /// An inbound message arrived.
    MESSAGE_RECEIVED = "message.received";
    /// A message's status moved forward.
    MESSAGE_STATUS_UPDATED = "message.status_updated";
    /// A template was created.
    TEMPLATE_CREATED = "template.created";
    /// A template changed.
    TEMPLATE_UPDATED = "template.updated";
    /// A template was deleted.
    TEMPLATE_DELETED = "template.deleted";
}

impl EventType {
    /// An event type of another crate or app: lower-case dotted words, 3–100 characters.
    pub fn custom(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let ok = (3..=100).contains(&name.len())
            && name.contains('.')
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
            && !name.starts_with('.')
            && !name.ends_with('.');
        if !ok {
            return Err(Error::validation("event_type", "must be dotted lower-case words like contact.created"));
        }
        Ok(match EventType::BUILT_IN.iter().find(|t| t.as_str() == name) {
            Some(t) => t.clone(),
            None => EventType(Cow::Owned(name)),
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({})", self.0)
    }
}

/// Something that happened in an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// UUIDv7: the log's order and cursor.
    pub id: EventId,
    /// The account it happened in.
    pub account_id: AccountId,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The entity after the change (or its id, for deletions).
    pub payload: serde_json::Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

impl Event {
    /// A new event with a fresh id; the payload is the serialized `data`.
    pub fn new(account_id: AccountId, event_type: EventType, data: &impl Serialize, now: DateTime<Utc>) -> Self {
        Event {
            id: EventId::new(),
            account_id,
            event_type,
            payload: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
            occurred_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_types_validate_and_reuse_builtins() {
        assert_eq!(EventType::custom("contact.created").unwrap(), EventType::CONTACT_CREATED);
        assert_eq!(EventType::custom("campaign.started").unwrap().as_str(), "campaign.started");
        for bad in ["", "nodot", "Upper.case", ".x.y", "x.y.", "a b.c"] {
            assert!(EventType::custom(bad).is_err(), "{bad}");
        }
        let e = Event::new(AccountId::new(), EventType::CONTACT_CREATED, &serde_json::json!({"a": 1}), Utc::now());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "contact.created");
    }
}

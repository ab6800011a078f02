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
    /// An account's name or time zone changed.
    ACCOUNT_UPDATED = "account.updated";
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
    /// What a message carries beside its status changed: an inbound media
    /// file was fetched (`attachment`), the provider reported its price
    /// (`pricing`), or a queued free-form message fell back to its template
    /// because the customer-service window closed while it waited (`fallback`).
    MESSAGE_UPDATED = "message.updated";
    /// A template was created.
    TEMPLATE_CREATED = "template.created";
    /// A template changed.
    TEMPLATE_UPDATED = "template.updated";
    /// A template was deleted.
    TEMPLATE_DELETED = "template.deleted";
    /// A channel was created.
    CHANNEL_CREATED = "channel.created";
    /// A channel changed (settings, credentials, pacing, default, enabled).
    CHANNEL_UPDATED = "channel.updated";
    /// A channel was deleted.
    CHANNEL_DELETED = "channel.deleted";
    /// A channel stopped sending for a while (a daily cap, the provider's throttling).
    CHANNEL_THROTTLED = "channel.throttled";
    /// A throttled channel sends again.
    CHANNEL_RESUMED = "channel.resumed";
    /// A campaign was created (as a draft).
    CAMPAIGN_CREATED = "campaign.created";
    /// A campaign was scheduled to start at a time.
    CAMPAIGN_SCHEDULED = "campaign.scheduled";
    /// A campaign started sending (by hand or at its scheduled time).
    CAMPAIGN_STARTED = "campaign.started";
    /// A running campaign was paused.
    CAMPAIGN_PAUSED = "campaign.paused";
    /// A paused campaign sends again.
    CAMPAIGN_RESUMED = "campaign.resumed";
    /// A campaign was cancelled (by hand, or because its channel was deleted).
    CAMPAIGN_CANCELLED = "campaign.cancelled";
    /// Every recipient of a campaign was sent to, skipped or failed.
    CAMPAIGN_COMPLETED = "campaign.completed";
    /// A campaign that was not under way was deleted with its recipients.
    CAMPAIGN_DELETED = "campaign.deleted";
    /// An outbound webhook endpoint was created.
    ENDPOINT_CREATED = "endpoint.created";
    /// An outbound webhook endpoint changed (URL, filter, headers, secret rotation, enabled).
    ENDPOINT_UPDATED = "endpoint.updated";
    /// An outbound webhook endpoint was deleted.
    ENDPOINT_DELETED = "endpoint.deleted";
    /// An outbound webhook endpoint was disabled by delivery (410 Gone, or failing continuously).
    ENDPOINT_DISABLED = "endpoint.disabled";
    /// A channel's provider connection changed state (a WhatsApp Web
    /// session: opening, pairing, connected, logged out, …).
    CHANNEL_STATE_CHANGED = "channel.state_changed";
    /// A channel waiting to be paired shows a new QR code (its text).
    CHANNEL_QR = "channel.qr";
    /// A channel imported the contacts and chats its provider reported
    /// (WhatsApp Web's contacts sync), with how many were created, updated,
    /// unchanged and skipped.
    CHANNEL_CONTACTS_SYNCED = "channel.contacts_synced";
    /// The assistant classified an inbound message (sentiment and lead signals).
    MESSAGE_ANALYZED = "message.analyzed";
    /// A conversation (a contact's thread) was assigned to a user of the
    /// account, or unassigned.
    THREAD_ASSIGNED = "thread.assigned";
    /// The assistant stored a reply draft for an agent (auto-reply `suggest`).
    AI_DRAFT_SUGGESTED = "ai.draft_suggested";
    /// An account's or channel's auto-reply setting changed.
    AI_AUTO_REPLY_UPDATED = "ai.auto_reply_updated";
    /// A billing subscription was first reported by the provider.
    BILLING_SUBSCRIPTION_CREATED = "billing.subscription_created";
    /// A billing subscription changed (status, price, quantity, period, cancel at period end).
    BILLING_SUBSCRIPTION_UPDATED = "billing.subscription_updated";
    /// A billing subscription was canceled (immediately or at its period's end).
    BILLING_SUBSCRIPTION_CANCELED = "billing.subscription_canceled";
    /// A checkout session was completed (the customer paid or subscribed).
    BILLING_CHECKOUT_COMPLETED = "billing.checkout_completed";
    /// An invoice was paid.
    BILLING_INVOICE_PAID = "billing.invoice_paid";
    /// An invoice's payment failed (the provider may retry).
    BILLING_INVOICE_PAYMENT_FAILED = "billing.invoice_payment_failed";
    /// An automation rule was created.
    AUTOMATION_CREATED = "automation.created";
    /// An automation rule was edited (a new version), enabled or disabled.
    AUTOMATION_UPDATED = "automation.updated";
    /// An automation rule was deleted.
    AUTOMATION_DELETED = "automation.deleted";
    /// An automation run failed or was stopped by the loop bound.
    AUTOMATION_RUN_FAILED = "automation.run_failed";
    /// A contact's lead score changed (the change, with its signal).
    CONTACT_SCORE_CHANGED = "contact.score_changed";
    /// A follow-up sequence was created.
    SEQUENCE_CREATED = "sequence.created";
    /// A sequence changed (steps, window, enabled).
    SEQUENCE_UPDATED = "sequence.updated";
    /// A sequence was deleted (with its enrolments).
    SEQUENCE_DELETED = "sequence.deleted";
    /// A contact was enrolled in a sequence.
    SEQUENCE_ENROLLED = "sequence.enrolled";
    /// A step of an enrolment ran.
    SEQUENCE_STEP_COMPLETED = "sequence.step_completed";
    /// A message step of an enrolment was reached later than its sequence's
    /// grace and skipped (the sequence's late policy).
    SEQUENCE_STEP_SKIPPED = "sequence.step_skipped";
    /// An enrolment ran its last step.
    SEQUENCE_COMPLETED = "sequence.completed";
    /// An enrolment stopped early (a reply, a stage change, an opt-out, a manual or automation stop, a late step, a failed step).
    SEQUENCE_STOPPED = "sequence.stopped";
    /// A connection to an outside provider (e-mail, Slack, analytics) was set or changed.
    CONNECTION_UPDATED = "connection.updated";
    /// A connection to an outside provider was removed.
    CONNECTION_DELETED = "connection.deleted";
    /// The e-mail provider delivered an e-mail to the recipient's server.
    EMAIL_DELIVERED = "email.delivered";
    /// The recipient's server refused an e-mail (bounce).
    EMAIL_BOUNCED = "email.bounced";
    /// The e-mail provider dropped an e-mail (suppressed or invalid address).
    EMAIL_DROPPED = "email.dropped";
    /// The recipient's server deferred an e-mail (the provider retries).
    EMAIL_DEFERRED = "email.deferred";
    /// The recipient opened an e-mail.
    EMAIL_OPENED = "email.opened";
    /// The recipient clicked a link of an e-mail.
    EMAIL_CLICKED = "email.clicked";
    /// The recipient reported an e-mail as spam.
    EMAIL_SPAM_REPORTED = "email.spam_reported";
    /// The recipient unsubscribed.
    EMAIL_UNSUBSCRIBED = "email.unsubscribed";
    /// A group was created through a channel, or first seen on one.
    GROUP_CREATED = "group.created";
    /// A group's subject or description changed, or the channel's number left it.
    GROUP_UPDATED = "group.updated";
    /// Members were added or removed, promoted to or demoted from admin.
    GROUP_PARTICIPANTS_CHANGED = "group.participants_changed";
    /// A participant wrote in a group.
    GROUP_MESSAGE_RECEIVED = "group.message_received";
    /// The business sent a message to a group.
    GROUP_MESSAGE_SENT = "group.message_sent";
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

/// Which event types a consumer wants: every type, or a list of exact names
/// and `prefix.*` patterns (`message.*` matches `message.queued` and
/// `message.status_updated`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventFilter(Option<Vec<String>>);

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        EventFilter(None)
    }

    /// These names and `prefix.*` patterns. [`Error::Validation`] on
    /// `event_types` for an empty list (use [`EventFilter::all`]), more than
    /// 100 entries, or an entry that is neither a valid name nor a pattern.
    pub fn only<I, S>(types: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list: Vec<String> = Vec::new();
        for t in types {
            let t = t.as_ref();
            let base = t.strip_suffix(".*").unwrap_or(t);
            // `message.*` checks `message.x`; a name checks itself.
            let probe = if base.len() == t.len() { t.to_owned() } else { format!("{base}.x") };
            if base.is_empty() || EventType::custom(probe).is_err() {
                return Err(Error::validation(
                    "event_types",
                    format!("{t:?} is not an event type or a prefix.* pattern"),
                ));
            }
            if !list.iter().any(|x| x == t) {
                list.push(t.to_owned());
            }
        }
        if list.is_empty() || list.len() > 100 {
            return Err(Error::validation("event_types", "give 1 to 100 types or patterns"));
        }
        list.sort();
        Ok(EventFilter(Some(list)))
    }

    /// The names and patterns; `None` for every event.
    pub fn types(&self) -> Option<&[String]> {
        self.0.as_deref()
    }

    /// Whether `event_type` passes.
    pub fn matches(&self, event_type: &EventType) -> bool {
        let Some(list) = &self.0 else { return true };
        let name = event_type.as_str();
        list.iter().any(|f| match f.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => f == name,
        })
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

    #[test]
    fn filters_match_names_and_prefixes() {
        let f = EventFilter::only(["message.*", "contact.created"]).unwrap();
        assert!(f.matches(&EventType::MESSAGE_QUEUED));
        assert!(f.matches(&EventType::MESSAGE_STATUS_UPDATED));
        assert!(f.matches(&EventType::CONTACT_CREATED));
        assert!(!f.matches(&EventType::CONTACT_UPDATED));
        assert!(!EventFilter::only(["message.queued"]).unwrap().matches(&EventType::MESSAGE_RECEIVED));
        assert!(EventFilter::all().matches(&EventType::CONTACT_DELETED));
        for bad in [vec![], vec!["*"], vec![".*"], vec!["Message.*"], vec!["nodot"]] {
            assert!(EventFilter::only(bad.clone()).is_err(), "{bad:?}");
        }
        assert_eq!(EventFilter::only(["b.x", "a.x", "b.x"]).unwrap().types().unwrap(), ["a.x", "b.x"]);
    }
}

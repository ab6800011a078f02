//! Typed UUIDv7 identifiers.
//!
//! UUIDv7 ids sort by creation time, so keyset pagination over ids is stable
//! under concurrent inserts.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

use crate::Error;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $entity:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (e.g. read from storage).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The underlying UUID, by value.
            pub const fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| Error::validation(concat!($entity, "_id"), "not a UUID"))
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

typed_id!(
    /// Identifies an [`Account`](crate::Account) (a tenant).
    AccountId,
    "account"
);
typed_id!(
    /// Identifies a [`User`](crate::User).
    UserId,
    "user"
);
typed_id!(
    /// Identifies an [`ApiKey`](crate::ApiKey).
    ApiKeyId,
    "api_key"
);
typed_id!(
    /// Identifies a login [`Session`](crate::Session).
    SessionId,
    "session"
);
typed_id!(
    /// Identifies a [`Contact`](crate::Contact).
    ContactId,
    "contact"
);
typed_id!(
    /// Identifies a [`Message`](crate::Message).
    MessageId,
    "message"
);
typed_id!(
    /// Identifies a [`Template`](crate::Template).
    TemplateId,
    "template"
);
typed_id!(
    /// Identifies a [`Channel`](crate::Channel).
    ChannelId,
    "channel"
);
typed_id!(
    /// Identifies a [`Campaign`](crate::Campaign).
    CampaignId,
    "campaign"
);
typed_id!(
    /// Identifies a durable [`Job`](crate::Job).
    JobId,
    "job"
);
typed_id!(
    /// Identifies a [`WebhookEndpoint`](crate::WebhookEndpoint).
    WebhookEndpointId,
    "webhook_endpoint"
);
typed_id!(
    /// Identifies a [`WebhookDelivery`](crate::WebhookDelivery) (one event to one endpoint).
    WebhookDeliveryId,
    "webhook_delivery"
);
typed_id!(
    /// Identifies a [`WebhookAttempt`](crate::WebhookAttempt) (one HTTP request of a delivery).
    WebhookAttemptId,
    "webhook_attempt"
);
typed_id!(
    /// Identifies a [`Media`](crate::Media) record (one file in the media store).
    MediaId,
    "media"
);
typed_id!(
    /// Identifies an [`Automation`](crate::domain::automation::Automation) rule.
    AutomationId,
    "automation"
);
typed_id!(
    /// Identifies an [`AutomationRun`](crate::domain::automation::AutomationRun).
    AutomationRunId,
    "automation_run"
);
typed_id!(
    /// Identifies a follow-up [`Sequence`](crate::Sequence).
    SequenceId,
    "sequence"
);
typed_id!(
    /// Identifies an [`Enrolment`](crate::Enrolment) of a contact in a sequence.
    EnrolmentId,
    "enrolment"
);
typed_id!(
    /// Identifies a [`Group`](crate::domain::group::Group) (a WhatsApp group crm keeps).
    GroupId,
    "group"
);
typed_id!(
    /// Identifies an [`Event`](crate::Event); also the cursor of the event log.
    EventId,
    "event"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_parse_back() {
        let a = ContactId::new();
        let b = ContactId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<ContactId>().unwrap(), a);
        let err = "nope".parse::<ContactId>().unwrap_err();
        assert_eq!(err.to_string(), "invalid contact_id: not a UUID");
    }
}
typed_id!(
    /// Identifies an [`AiDraft`](crate::domain::assistant::AiDraft) (a reply suggested by the assistant).
    AiDraftId,
    "ai_draft"
);

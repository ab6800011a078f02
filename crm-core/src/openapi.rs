//! `utoipa` schemas for the types that serialize through custom code
//! (feature `openapi`).

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

fn string(description: &str, example: &str, format: Option<SchemaFormat>, pattern: Option<&str>) -> RefOr<Schema> {
    let mut b = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .examples([serde_json::Value::String(example.into())]);
    if let Some(f) = format {
        b = b.format(Some(f));
    }
    if let Some(p) = pattern {
        b = b.pattern(Some(p));
    }
    RefOr::T(Schema::Object(b.build()))
}

macro_rules! string_schema {
    ($ty:ty, $desc:literal, $example:literal, $format:expr, $pattern:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                string($desc, $example, $format, $pattern)
            }
        }
        impl ToSchema for $ty {}
    };
}

string_schema!(
    crate::Phone,
    "E.164 phone number; Brazilian mobiles are stored with the 9th digit",
    "+5511987654321",
    None,
    Some(r"^\+[1-9][0-9]{7,14}$")
);
string_schema!(
    crate::Email,
    "Lower-cased e-mail address",
    "ana@example.com",
    Some(SchemaFormat::KnownFormat(KnownFormat::Email)),
    None
);
string_schema!(crate::Tag, "Lower-cased tag, 1–64 characters, no commas", "vip", None, None);
string_schema!(crate::EventType, "Dotted event name", "contact.created", None, None);

macro_rules! uuid_schema {
    ($($ty:ty),*) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                string("UUIDv7 identifier", "01936f4e-8b7a-7cc0-9a53-6f1d2c3b4a59", Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)), None)
            }
        }
        impl ToSchema for $ty {}
    )*};
}

uuid_schema!(
    crate::CampaignId,
    crate::ChannelId,
    crate::GroupId,
    crate::JobId,
    crate::AccountId,
    crate::UserId,
    crate::ApiKeyId,
    crate::SessionId,
    crate::ContactId,
    crate::MessageId,
    crate::TemplateId,
    crate::EventId,
    crate::WebhookEndpointId,
    crate::MediaId,
    crate::WebhookDeliveryId,
    crate::WebhookAttemptId,
    crate::AiDraftId,
    crate::AutomationId,
    crate::AutomationRunId,
    crate::SequenceId,
    crate::EnrolmentId
);

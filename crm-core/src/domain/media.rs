//! Media records: what crm knows about each file in the
//! [`MediaStore`](crate::MediaStore): who owns it, where it is kept, what it
//! is, where it came from and where it stands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AccountId, ContactId, Error, MediaId, MessageId, Result};

/// Where a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MediaOrigin {
    /// Uploaded through the API.
    Upload,
    /// Received from a contact through a channel (copied from the provider).
    Inbound,
}

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MediaState {
    /// Not copied yet (an inbound file waiting for its download).
    Pending,
    /// Kept in the media store under [`Media::key`].
    Stored,
    /// Could not be copied (see [`Media::error`]).
    Failed,
    /// Deleted by the account's retention period.
    Expired,
    /// Deleted on request (or with its contact).
    Deleted,
}

macro_rules! names {
    ($ty:ident { $($v:ident = $s:literal),* $(,)? }) => {
        impl $ty {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$v => $s),* }
            }

            /// Parses a stored name; [`Error::Validation`] when unknown.
            pub fn parse(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok($ty::$v),)*
                    _ => Err(Error::validation(stringify!($ty), format!("unknown value {s:?}"))),
                }
            }
        }
    };
}

names!(MediaOrigin { Upload = "upload", Inbound = "inbound" });
names!(MediaState { Pending = "pending", Stored = "stored", Failed = "failed", Expired = "expired", Deleted = "deleted" });

/// Longest [`Media::error`] kept (characters).
pub const MAX_MEDIA_ERROR: usize = 500;

/// One media file of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Media {
    /// Id.
    pub id: MediaId,
    /// Owning account.
    pub account_id: AccountId,
    /// The media store's key, once stored.
    pub key: Option<String>,
    /// The MIME type (checked against the bytes for uploads).
    pub content_type: String,
    /// The file name it came with (shown, never used as a path).
    pub filename: String,
    /// Size in bytes, once stored.
    pub size: Option<u64>,
    /// Lower-case hex SHA-256 of the bytes, once stored.
    pub sha256: Option<String>,
    /// Upload or inbound.
    pub origin: MediaOrigin,
    /// Pending, stored, failed, expired or deleted.
    pub state: MediaState,
    /// Why it failed, or why it was deleted.
    pub error: Option<String>,
    /// The message it came with (inbound) or was sent in.
    pub message_id: Option<MessageId>,
    /// The contact of that message.
    pub contact_id: Option<ContactId>,
    /// When it was created.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[serde(serialize_with = "crate::domain::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl Media {
    /// A new record in state `pending`.
    pub fn pending(
        account: AccountId,
        origin: MediaOrigin,
        content_type: &str,
        filename: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Media {
            id: MediaId::new(),
            account_id: account,
            key: None,
            content_type: content_type.chars().filter(|c| !c.is_control()).take(255).collect(),
            filename: filename.chars().filter(|c| !c.is_control()).take(255).collect(),
            size: None,
            sha256: None,
            origin,
            state: MediaState::Pending,
            error: None,
            message_id: None,
            contact_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// `self` moved to `state` at `now` with `error` (bounded to [`MAX_MEDIA_ERROR`]).
    pub fn moved(mut self, state: MediaState, error: Option<&str>, now: DateTime<Utc>) -> Self {
        self.state = state;
        self.error = error.map(|e| e.chars().take(MAX_MEDIA_ERROR).collect());
        self.updated_at = now;
        self
    }
}

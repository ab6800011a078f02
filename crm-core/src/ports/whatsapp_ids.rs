//! The [`WhatsAppIdStore`] port: what a channel learned about the WhatsApp
//! ids of phone numbers — the LID (WhatsApp's privacy id, `…@lid`) that
//! addresses a phone, and which variant of a Brazilian mobile (with or
//! without the 9th digit) exists on WhatsApp.

use async_trait::async_trait;
use std::fmt::Debug;

use crate::{AccountId, ChannelId, Error, Phone, Result};

/// What one channel knows of one phone number on WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppIdentity {
    /// The channel that learned it.
    pub channel_id: ChannelId,
    /// The phone (canonical E.164: a Brazilian mobile in its 9th-digit form).
    pub phone: Phone,
    /// The LID addressing this phone (`123456789012345@lid`), when known.
    pub lid: Option<String>,
    /// The WhatsApp id (digits) WhatsApp answered exists for this phone —
    /// for a Brazilian mobile the variant with or without the 9th digit —
    /// when it was asked.
    pub whatsapp_id: Option<String>,
}

/// The LID ↔ phone map and the confirmed WhatsApp ids, per channel. They
/// are facts the provider reported, not owners' changes: no event is written.
///
/// Contract (checked by `crm_core::testing::store::whatsapp_ids`):
/// - Every method takes the account first; a channel of another account, or
///   a missing one, is [`Error::NotFound`] and nothing is written.
/// - Phones are keyed by their canonical form, so `+55 11 8765-4321` and
///   `+55 11 98765-4321` are one row.
/// - A LID addresses one phone per channel: linking it to another phone
///   moves it there. A phone has one LID: a new one replaces the old.
/// - `link_lid` leaves the WhatsApp id as it was; `record_whatsapp_id`
///   leaves the LID as it was.
/// - Malformed LIDs ([`check_lid`]) and WhatsApp ids ([`check_whatsapp_id`])
///   are [`Error::Validation`].
/// - Rows go with their channel.
#[async_trait]
pub trait WhatsAppIdStore: Send + Sync + Debug + 'static {
    /// Records that `lid` addresses `phone` on the channel.
    async fn link_lid(&self, account: AccountId, channel: ChannelId, phone: &Phone, lid: &str) -> Result<()>;

    /// Records the WhatsApp id (digits, e.g. `551187654321`) WhatsApp
    /// answered exists for `phone`.
    async fn record_whatsapp_id(
        &self,
        account: AccountId,
        channel: ChannelId,
        phone: &Phone,
        whatsapp_id: &str,
    ) -> Result<()>;

    /// What the channel knows of `phone`, if anything.
    async fn whatsapp_identity(
        &self,
        account: AccountId,
        channel: ChannelId,
        phone: &Phone,
    ) -> Result<Option<WhatsAppIdentity>>;

    /// The phone `lid` addresses on the channel, when known.
    async fn phone_for_lid(&self, account: AccountId, channel: ChannelId, lid: &str) -> Result<Option<Phone>>;
}

/// Checks a LID: `<1–32 digits>@lid`. [`Error::Validation`] (field `lid`) otherwise.
pub fn check_lid(lid: &str) -> Result<()> {
    match lid.strip_suffix("@lid") {
        Some(user) if (1..=32).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(Error::validation("lid", "must be a WhatsApp LID: digits followed by @lid")),
    }
}

/// Checks a WhatsApp id: 8 to 20 digits. [`Error::Validation`] (field `whatsapp_id`) otherwise.
pub fn check_whatsapp_id(id: &str) -> Result<()> {
    if (8..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::validation("whatsapp_id", "must be 8 to 20 digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lids_and_whatsapp_ids_are_checked() {
        assert!(check_lid("123456789012345@lid").is_ok());
        for bad in ["", "@lid", "12a@lid", "5511987654321@c.us", &format!("{}@lid", "1".repeat(33))] {
            assert!(check_lid(bad).is_err(), "{bad}");
        }
        assert!(check_whatsapp_id("551187654321").is_ok());
        for bad in ["1234567", "+551187654321", "5511 8765", &"1".repeat(21)] {
            assert!(check_whatsapp_id(bad).is_err(), "{bad}");
        }
    }
}

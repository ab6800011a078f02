//! Identity: WhatsApp addresses many users by a LID (`…@lid`) instead of
//! their phone-based id (`…@c.us`), and a Brazilian mobile may be
//! registered with or without its 9th digit. The engine keeps, per channel
//! and in the store ([`WhatsAppIdStore`](crm_core::WhatsAppIdStore)), which
//! LID addresses which phone and which id a phone has on WhatsApp, so a
//! thread, its statuses and its contact stay one whichever id a message
//! uses, and a send goes to the variant that exists.

use crm_core::{AccountId, Channel, ChannelId, Crm, Error, OutboundMessage, Phone, ReadReceipt, Result};
use serde_json::json;

use super::bridge::{self, PageMessage};
use super::engine::{Shared, provider_error};

/// Who sent an inbound message, in crm's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SenderId {
    /// The phone (canonical).
    pub(crate) phone: Phone,
    /// The id's user part WhatsApp uses for it (`551187654321`).
    pub(crate) whatsapp_user: String,
}

/// The user part of a phone-based id (`5511987654321@c.us` → `5511987654321`).
fn phone_user(id: &str) -> Option<&str> {
    id.strip_suffix("@c.us").filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()))
}

fn phone_of_user(user: &str) -> Option<Phone> {
    Phone::parse(&format!("+{user}")).ok()
}

/// A message key's parts: `<fromMe>_<remote>_<id>` → (`fromMe`, remote, id).
fn split_key(key: &str) -> Option<(&str, &str, &str)> {
    let (direction, rest) = key.split_once('_')?;
    let (remote, id) = rest.rsplit_once('_')?;
    Some((direction, remote, id))
}

impl Shared {
    /// The sender of an inbound message: from its `@c.us` id, else the
    /// phone the page reported for its LID, else the LID map. Records what
    /// the message taught (the LID ↔ phone link; the id the phone uses).
    /// `None` when the phone cannot be known (a LID nobody mapped yet).
    pub(crate) async fn sender_of(&self, channel: &Channel, m: &PageMessage) -> Option<SenderId> {
        let from = m.from.as_deref()?;
        let reported = m.sender.as_ref();
        let reported_lid = reported.and_then(|s| s.lid.as_deref()).filter(|l| l.ends_with("@lid"));
        let reported_phone = reported.and_then(|s| s.phone.as_deref()).and_then(phone_user);
        let (user, lid) = if let Some(user) = phone_user(from) {
            (Some(user.to_owned()), reported_lid)
        } else if from.ends_with("@lid") {
            (reported_phone.map(str::to_owned), Some(from))
        } else {
            return None;
        };
        let crm = self.crm();
        let user = match (user, lid, crm) {
            (Some(u), _, _) => u,
            (None, Some(lid), Some(crm)) => {
                let phone = crm.store().phone_for_lid(channel.account_id, channel.id, lid).await.ok().flatten()?;
                let known = crm.store().whatsapp_identity(channel.account_id, channel.id, &phone).await.ok().flatten();
                return Some(SenderId {
                    whatsapp_user: known.and_then(|k| k.whatsapp_id).unwrap_or_else(|| phone.digits().to_owned()),
                    phone,
                });
            }
            _ => return None,
        };
        let phone = phone_of_user(&user)?;
        if let Some(crm) = crm {
            let store = crm.store();
            let known = store.whatsapp_identity(channel.account_id, channel.id, &phone).await.ok().flatten();
            let learned = async {
                if let Some(lid) = lid.filter(|l| known.as_ref().and_then(|k| k.lid.as_deref()) != Some(*l)) {
                    store.link_lid(channel.account_id, channel.id, &phone, lid).await?;
                }
                if known.as_ref().and_then(|k| k.whatsapp_id.as_deref()) != Some(user.as_str()) {
                    // A message from this id proves it exists on WhatsApp.
                    store.record_whatsapp_id(channel.account_id, channel.id, &phone, &user).await?;
                }
                Ok::<_, Error>(())
            };
            if let Err(e) = learned.await {
                tracing::warn!(channel = %channel.id, error = %e, "whatsapp web: an id link was not stored");
            }
        }
        Some(SenderId { phone, whatsapp_user: user })
    }

    /// The chat a read receipt goes to: the remote of the message's key
    /// (`false_<chat>_<id>`), else the contact's id.
    pub(crate) fn read_chat(receipt: &ReadReceipt) -> String {
        match split_key(&receipt.provider_message_id) {
            Some((_, remote, _)) if remote.contains('@') => remote.to_owned(),
            _ => match receipt.whatsapp_id.as_deref() {
                Some(id) if id.contains('@') => id.to_owned(),
                Some(id) if !id.is_empty() => format!("{id}@c.us"),
                _ => format!("{}@c.us", receipt.from.digits()),
            },
        }
    }

    /// [`canonical_key`] with the attached service.
    pub(crate) async fn canonical_key(&self, account: AccountId, channel: ChannelId, key: &str) -> String {
        canonical_key(self.crm(), account, channel, key).await
    }

    /// The WhatsApp id a message goes to. The contact's WhatsApp id when it
    /// has one (it came from WhatsApp); else the id stored for its phone on
    /// this channel; else WhatsApp is asked whether the number exists — for
    /// a Brazilian mobile with the 9th digit, then without — and the answer
    /// is stored, so later sends go straight to it. A number in neither
    /// form is a permanent `Provider` error with code `not_on_whatsapp`.
    pub(crate) async fn recipient(&self, channel: ChannelId, message: &OutboundMessage) -> Result<String> {
        match message.whatsapp_id.as_deref() {
            Some(id) if id.contains('@') => return Ok(id.to_owned()),
            Some(id) if !id.is_empty() => return Ok(format!("{id}@c.us")),
            _ => {}
        }
        let account = message.account_id;
        let phone = &message.to;
        let crm = self.crm();
        if let Some(crm) = crm {
            let known = crm.store().whatsapp_identity(account, channel, phone).await?;
            if let Some(id) = known.and_then(|k| k.whatsapp_id) {
                return Ok(format!("{id}@c.us"));
            }
        }
        let candidates = std::iter::once(phone.digits().to_owned()).chain(phone.whatsapp_legacy_form());
        for candidate in candidates {
            let js = bridge::call("queryExists", &[json!(candidate)]);
            #[derive(serde::Deserialize)]
            struct Exists {
                id: Option<String>,
            }
            let found: Exists = self.call(channel, &js).await?;
            let Some(user) = found.id.as_deref().and_then(phone_user) else { continue };
            if let Some(crm) = crm {
                crm.store().record_whatsapp_id(account, channel, phone, user).await?;
            }
            return Ok(format!("{user}@c.us"));
        }
        let variants = if phone.whatsapp_legacy_form().is_some() { " (with or without the 9th digit)" } else { "" };
        Err(provider_error(false, "not_on_whatsapp", format!("the number is not on WhatsApp{variants}")))
    }
}

/// The phone of a group member or author WhatsApp names by `lid`: the one
/// the page reported for it (`reported`, a `…@c.us` id; then linked in the
/// store for next time), else the one the channel linked earlier. `None`
/// when neither knows it (the member is then kept by their LID).
pub(crate) async fn phone_for_lid(
    crm: Option<&Crm>,
    account: AccountId,
    channel: ChannelId,
    lid: &str,
    reported: Option<&str>,
) -> Option<Phone> {
    let reported = reported.and_then(phone_user).and_then(phone_of_user);
    let Some(crm) = crm else { return reported };
    let store = crm.store();
    let known = store.phone_for_lid(account, channel, lid).await.ok().flatten();
    match reported {
        Some(phone) => {
            if known.as_ref() != Some(&phone)
                && let Err(e) = store.link_lid(account, channel, &phone, lid).await
            {
                tracing::warn!(%channel, error = %e, "whatsapp web: an id link was not stored");
            }
            Some(phone)
        }
        None => known,
    }
}

/// A message key with a LID chat (`true_123@lid_3EB0…`) rewritten to the
/// phone's id (`true_5511987654321@c.us_3EB0…`) when the LID is mapped, so
/// a message keeps one provider id whichever id WhatsApp reports it under.
/// Other keys are returned as they are.
pub(crate) async fn canonical_key(crm: Option<&Crm>, account: AccountId, channel: ChannelId, key: &str) -> String {
    let Some((direction, remote, id)) = split_key(key) else { return key.to_owned() };
    let Some(crm) = crm.filter(|_| remote.ends_with("@lid")) else { return key.to_owned() };
    let store = crm.store();
    let Ok(Some(phone)) = store.phone_for_lid(account, channel, remote).await else { return key.to_owned() };
    let known = store.whatsapp_identity(account, channel, &phone).await.ok().flatten();
    let user = known.and_then(|k| k.whatsapp_id).unwrap_or_else(|| phone.digits().to_owned());
    format!("{direction}_{user}@c.us_{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ids_are_read() {
        assert_eq!(split_key("true_123@lid_3EB0AB"), Some(("true", "123@lid", "3EB0AB")));
        assert_eq!(split_key("false_5511987654321@c.us_ABC_DEF"), Some(("false", "5511987654321@c.us_ABC", "DEF")));
        assert_eq!(split_key("nokey"), None);
        assert_eq!(phone_user("5511987654321@c.us"), Some("5511987654321"));
        assert_eq!(phone_user("123@lid"), None);
        assert_eq!(phone_user("@c.us"), None);
        assert_eq!(phone_of_user("551187654321").map(|p| p.as_str().to_owned()).as_deref(), Some("+5511987654321"));
    }
}

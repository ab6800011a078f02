//! Contacts sync (the seed's "sincronização automática"): once a session is
//! connected the bridge reports the phone's saved contacts and one-to-one
//! chats, then every new chat and renamed contact; each becomes or updates
//! a crm contact.
//!
//! - Same phone, same contact: contacts are found by their canonical phone,
//!   so a Brazilian mobile saved with or without its 9th digit is the one
//!   crm already has. A contact without a phone (a LID nobody mapped) is
//!   skipped.
//! - The account's own edits win: the name WhatsApp gave is kept in the
//!   contact's metadata (`whatsapp_name`); the crm name follows WhatsApp
//!   only while it still is the name WhatsApp gave (or the bare phone).
//! - Idempotent: a contact already as WhatsApp knows it is left alone (no
//!   write, no contact event).
//! - Each report ends with a `channel.contacts_synced` event counting what
//!   it did (created, updated, unchanged, skipped).

use crm_core::{Channel, Contact, ContactPatch, Crm, Error, NewContact, Phone, Result};
use serde_json::Value;

use super::bridge::PageContact;
use super::engine::Shared;

/// The metadata key of the name WhatsApp gave a contact.
pub const WHATSAPP_NAME_KEY: &str = "whatsapp_name";

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SyncCounts {
    pub(crate) created: u32,
    pub(crate) updated: u32,
    pub(crate) unchanged: u32,
    pub(crate) skipped: u32,
}

enum Outcome {
    Created,
    Updated,
    Unchanged,
    Skipped,
}

/// The user part of a phone-based id.
fn phone_user(id: Option<&str>) -> Option<&str> {
    id?.strip_suffix("@c.us").filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()))
}

fn clean_name(name: Option<&str>) -> Option<String> {
    let name: String = name?.chars().filter(|c| !c.is_control()).take(200).collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// What the contact should become, if anything changes.
fn patch_for(contact: &Contact, name: &str, user: &str) -> Option<ContactPatch> {
    let given = contact.metadata.get(WHATSAPP_NAME_KEY).and_then(Value::as_str);
    let follows = contact.name.trim().is_empty()
        || Some(contact.name.as_str()) == given
        || contact.name == contact.phone.as_str()
        || contact.name == contact.phone.digits();
    let mut patch = ContactPatch::default();
    if follows && contact.name != name {
        patch.name = Some(name.to_owned());
    }
    if given != Some(name) {
        let mut metadata = contact.metadata.clone();
        metadata.insert(WHATSAPP_NAME_KEY.into(), Value::String(name.to_owned()));
        patch.metadata = Some(Value::Object(metadata));
    }
    if contact.whatsapp_id.is_none() {
        patch.whatsapp_id = Some(Some(user.to_owned()));
    }
    (patch != ContactPatch::default()).then_some(patch)
}

impl Shared {
    /// Imports or updates the reported contacts (at most 1,000 a report);
    /// logs what it did and records it as `channel.contacts_synced`.
    pub(crate) async fn sync_contacts(&self, channel: &Channel, contacts: Vec<PageContact>) {
        let Some(crm) = self.crm() else { return };
        let mut counts = SyncCounts::default();
        for c in contacts.iter().take(1000) {
            match sync_one(crm, channel, c).await {
                Ok(Outcome::Created) => counts.created += 1,
                Ok(Outcome::Updated) => counts.updated += 1,
                Ok(Outcome::Unchanged) => counts.unchanged += 1,
                Ok(Outcome::Skipped) => counts.skipped += 1,
                Err(e) => {
                    counts.skipped += 1;
                    tracing::warn!(channel = %channel.id, error = %e, "whatsapp web: a contact was not synced");
                }
            }
        }
        tracing::info!(
            channel = %channel.id,
            created = counts.created,
            updated = counts.updated,
            unchanged = counts.unchanged,
            skipped = counts.skipped,
            "whatsapp web: contacts synced"
        );
        let payload = serde_json::json!({
            "channel_id": channel.id,
            "kind": super::KIND,
            "reported": contacts.len(),
            "created": counts.created,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "skipped": counts.skipped,
        });
        self.record(channel, crm_core::EventType::CHANNEL_CONTACTS_SYNCED, payload);
    }
}

async fn sync_one(crm: &Crm, channel: &Channel, c: &PageContact) -> Result<Outcome> {
    let account = channel.account_id;
    let user = phone_user(c.phone.as_deref()).or_else(|| phone_user(c.id.as_deref()));
    let Some(user) = user else { return Ok(Outcome::Skipped) };
    let Ok(phone) = Phone::parse(&format!("+{user}")) else { return Ok(Outcome::Skipped) };
    let store = crm.store();
    if let Some(lid) = c.lid.as_deref().filter(|l| crm_core::ports::whatsapp_ids::check_lid(l).is_ok()) {
        store.link_lid(account, channel.id, &phone, lid).await?;
    }
    let name = clean_name(c.name.as_deref()).or_else(|| clean_name(c.push_name.as_deref()));
    let existing = store.find_contact_by_phone(account, &phone).await?;
    match existing {
        None => {
            let shown = name.clone().unwrap_or_else(|| phone.as_str().to_owned());
            let metadata = name.as_ref().map(|n| serde_json::json!({ WHATSAPP_NAME_KEY: n }));
            let input = NewContact {
                name: shown,
                phone: phone.as_str().to_owned(),
                whatsapp_id: Some(user.to_owned()),
                metadata,
                ..Default::default()
            };
            match crm.create_contact(account, input).await {
                Ok(_) => Ok(Outcome::Created),
                // Created meanwhile (an inbound message): the next report updates it.
                Err(Error::Conflict { .. }) => Ok(Outcome::Unchanged),
                Err(e) => Err(e),
            }
        }
        Some(contact) => {
            let Some(name) = name else {
                return match contact.whatsapp_id {
                    Some(_) => Ok(Outcome::Unchanged),
                    None => {
                        let patch = ContactPatch { whatsapp_id: Some(Some(user.to_owned())), ..Default::default() };
                        crm.update_contact(account, contact.id, patch).await.map(|_| Outcome::Updated)
                    }
                };
            };
            match patch_for(&contact, &name, user) {
                None => Ok(Outcome::Unchanged),
                Some(patch) => crm.update_contact(account, contact.id, patch).await.map(|_| Outcome::Updated),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(name: &str, metadata: serde_json::Value) -> Contact {
        let input = NewContact {
            name: name.into(),
            phone: "+5511987654321".into(),
            metadata: Some(metadata),
            ..Default::default()
        };
        Contact::new(crm_core::AccountId::new(), input, chrono::Utc::now()).expect("contact")
    }

    #[test]
    fn names_follow_whatsapp_until_the_account_renames() {
        // Named by WhatsApp: follows the new name.
        let c = contact("Maria", serde_json::json!({ WHATSAPP_NAME_KEY: "Maria" }));
        let p = patch_for(&c, "Maria Souza", "551187654321").expect("a change");
        assert_eq!(p.name.as_deref(), Some("Maria Souza"));
        assert_eq!(p.whatsapp_id, Some(Some("551187654321".into())));
        // Renamed in crm: the name stays, the WhatsApp name is noted.
        let c = contact("Dona Maria (VIP)", serde_json::json!({ WHATSAPP_NAME_KEY: "Maria", "vip": true }));
        let p = patch_for(&c, "Maria Souza", "551187654321").expect("a change");
        assert_eq!(p.name, None);
        assert_eq!(p.metadata, Some(serde_json::json!({ WHATSAPP_NAME_KEY: "Maria Souza", "vip": true })));
        // Nothing new: nothing to write.
        let mut c = contact("Maria", serde_json::json!({ WHATSAPP_NAME_KEY: "Maria" }));
        c.whatsapp_id = Some("5511987654321".into());
        assert_eq!(patch_for(&c, "Maria", "5511987654321"), None);
        assert_eq!(clean_name(Some("  \u{7}Ana \n")), Some("Ana".into()));
        assert_eq!(clean_name(Some("   ")), None);
        assert_eq!(phone_user(Some("5511@c.us")), Some("5511"));
        assert_eq!(phone_user(Some("1@lid")), None);
    }
}

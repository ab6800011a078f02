//! Contacts: create, read, change (with optimistic-concurrency retries), delete, import.

use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;

use super::Crm;
use crate::{
    AccountId, Contact, ContactId, ContactPatch, ContactQuery, Error, Event, EventType, ImportReport, NewContact, Page,
    Phone, RejectedRow, Result,
};

/// How many times a read-modify-write on a contact is tried before giving up
/// on optimistic-concurrency races. A writer only loses a race when another
/// write committed in between, so with up to this many concurrent writers of
/// one contact every writer eventually succeeds.
const CONTACT_UPDATE_ATTEMPTS: usize = 16;

/// Most rows [`Crm::import_contacts`] takes at once.
pub const MAX_IMPORT_BATCH: usize = 10_000;

impl Crm {
    /// Creates a contact (`contact.created`). [`Error::Conflict`] when the phone
    /// (in any of its forms) already belongs to a contact of the account.
    pub async fn create_contact(&self, account: AccountId, input: NewContact) -> Result<Contact> {
        let contact = Contact::new(account, self.normalize(input)?, self.now())?;
        let event = self.event(account, EventType::CONTACT_CREATED, &contact);
        self.store.insert_contact(&contact, &event).await?;
        Ok(contact)
    }

    /// One contact.
    pub async fn get_contact(&self, account: AccountId, id: ContactId) -> Result<Contact> {
        self.store.get_contact(account, id).await
    }

    /// The contact with this phone, in any form [`Phone::parse`] accepts.
    pub async fn find_contact_by_phone(&self, account: AccountId, phone: &str) -> Result<Option<Contact>> {
        let phone = self.parse_phone(phone)?;
        self.store.find_contact_by_phone(account, &phone).await
    }

    /// A page of contacts.
    pub async fn list_contacts(&self, account: AccountId, query: &ContactQuery) -> Result<Page<Contact>> {
        self.store.list_contacts(account, query).await
    }

    /// Reads, changes with `f` and writes a contact, retrying when a concurrent
    /// writer got there first. `f` returns whether it changed anything; when it
    /// did not, nothing is written and no event is recorded.
    ///
    /// A lost race is recognised by the stored version having moved on, not by
    /// the wording of the store's error, so it works the same on every store;
    /// any other conflict (e.g. the new phone belongs to another contact) is
    /// returned as is.
    pub(super) async fn modify_contact<F>(&self, account: AccountId, id: ContactId, mut f: F) -> Result<Contact>
    where
        F: FnMut(&mut Contact, DateTime<Utc>) -> Result<bool> + Send,
    {
        let mut current = self.store.get_contact(account, id).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut contact = current.clone();
            let now = self.now();
            if !f(&mut contact, now)? {
                return Ok(contact);
            }
            // The event carries the contact as the store will hold it.
            let mut stored = contact.clone();
            stored.version += 1;
            let event = self.event(account, EventType::CONTACT_UPDATED, &stored);
            match self.store.update_contact(&contact, &event).await {
                Err(e @ Error::Conflict { .. }) => {
                    let latest = self.store.get_contact(account, id).await?;
                    if latest.version == contact.version || attempt >= CONTACT_UPDATE_ATTEMPTS {
                        return Err(e);
                    }
                    current = latest;
                }
                other => return other,
            }
        }
    }

    /// Applies a partial update (`contact.updated` when anything changed).
    pub async fn update_contact(&self, account: AccountId, id: ContactId, mut patch: ContactPatch) -> Result<Contact> {
        if let Some(p) = &patch.phone
            && self.default_country.is_some()
        {
            patch.phone = Some(self.parse_phone(p)?.to_string());
        }
        self.modify_contact(account, id, |c, now| c.apply(patch.clone(), now)).await
    }

    /// Adds tags (`contact.updated` when any was new).
    pub async fn tag_contact(&self, account: AccountId, id: ContactId, tags: &[String]) -> Result<Contact> {
        self.modify_contact(account, id, |c, now| c.add_tags(tags, now)).await
    }

    /// Removes tags (`contact.updated` when any was present).
    pub async fn untag_contact(&self, account: AccountId, id: ContactId, tags: &[String]) -> Result<Contact> {
        self.modify_contact(account, id, |c, now| c.remove_tags(tags, now)).await
    }

    /// Deletes a contact and its thread (`contact.deleted`).
    pub async fn delete_contact(&self, account: AccountId, id: ContactId) -> Result<()> {
        let event = self.event(account, EventType::CONTACT_DELETED, &json!({ "id": id }));
        self.store.delete_contact(account, id, &event).await
    }

    /// Validates every row, then stores the valid ones in one batch. Rows
    /// that fail validation or collide are reported with their index and
    /// reason. [`Error::Validation`] on `contacts` for more than
    /// [`MAX_IMPORT_BATCH`] rows (a batch is one transaction and is held in
    /// memory whole: split bigger inputs).
    pub async fn import_contacts(&self, account: AccountId, rows: Vec<NewContact>) -> Result<ImportReport> {
        if rows.len() > MAX_IMPORT_BATCH {
            return Err(crate::Error::validation(
                "contacts",
                format!("at most {MAX_IMPORT_BATCH} rows per import batch"),
            ));
        }
        let now = self.now();
        let mut rejected = Vec::new();
        let mut contacts = Vec::with_capacity(rows.len());
        let mut positions = Vec::with_capacity(rows.len());
        // Repeats within the input are found here, where the input's indexes
        // are known: the store would name the repeated row by its position
        // among the valid rows only.
        let mut seen: HashMap<Phone, usize> = HashMap::with_capacity(rows.len());
        for (index, row) in rows.into_iter().enumerate() {
            match self.normalize(row).and_then(|row| Contact::new(account, row, now)) {
                Ok(c) => match seen.get(&c.phone) {
                    Some(first) => rejected.push(RejectedRow { index, reason: format!("phone repeats row {first}") }),
                    None => {
                        seen.insert(c.phone.clone(), index);
                        contacts.push(c);
                        positions.push(index);
                    }
                },
                Err(e) => rejected.push(RejectedRow { index, reason: e.to_string() }),
            }
        }
        let events: Vec<Event> =
            contacts.iter().map(|c| Event::new(account, EventType::CONTACT_CREATED, c, now)).collect();
        let mut report = self.store.import_contacts(account, &contacts, &events).await?;
        for r in &mut report.rejected {
            r.index = positions.get(r.index).copied().ok_or_else(|| Error::Storage {
                message: "the store reported an import row that was not given to it".into(),
                transient: false,
                source: None,
            })?;
        }
        report.rejected.extend(rejected);
        report.rejected.sort_by_key(|r| r.index);
        Ok(report)
    }
}

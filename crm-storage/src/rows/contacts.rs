//! Contacts: row decoding, the reads both dialects share, and the dialect-free
//! parts of contact search and import.

use crm_core::{
    AccountId, Contact, ContactId, Email, Error, ImportReport, LeadStage, Metadata, OptIn, OptInStatus, Phone,
    RejectedRow, Result, Tag,
};
use std::collections::{BTreeSet, HashMap, HashSet};

use super::{Columns, Fetch, stored};
use crate::error::corrupt;

/// The `LIKE` pattern that finds the events whose payload text names
/// `contact` (a superset of those [`erased_payload`] changes).
///
/// [`erased_payload`]: crm_core::ports::store::erased_payload
pub(crate) fn erasure_pattern(contact: ContactId) -> String {
    format!("%{contact}%")
}

/// The account's (`$1`) events whose payload text matches `$2` (an
/// [`erasure_pattern`]): the candidates of a contact's erasure.
pub(crate) const ERASURE_CANDIDATES: &str =
    "SELECT * FROM events WHERE account_id = $1 AND CAST(payload AS TEXT) LIKE $2";

/// Of `rows` (`events` rows), the ones that carry `contact`, with the
/// payload each keeps after the erasure.
pub(crate) fn erasures(rows: &[impl Columns], contact: ContactId) -> Result<Vec<(uuid::Uuid, serde_json::Value)>> {
    let mut out = Vec::new();
    for row in rows {
        let e = super::events::event_row(row)?;
        if let Some(kept) = crm_core::ports::store::erased_payload(e.event_type.as_str(), &e.payload, contact) {
            out.push((e.id.into_uuid(), kept));
        }
    }
    Ok(out)
}

/// A `contacts` row.
pub(crate) fn contact_row(r: &impl Columns) -> Result<Contact> {
    Ok(Contact {
        id: ContactId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        name: r.text("name")?,
        phone: r.parsed("phone", Phone::parse)?,
        email: r.opt_text("email")?.map(|e| stored("email", Email::parse(&e))).transpose()?,
        whatsapp_id: r.opt_text("whatsapp_id")?,
        tags: tags_from(r.text_list("tags")?)?,
        metadata: metadata_from(r.json("metadata")?)?,
        lead_score: u8::try_from(r.small_int("lead_score")?).map_err(|e| corrupt("lead_score", e))?,
        lead_stage: r.parsed("lead_stage", LeadStage::parse)?,
        opt_in: OptIn {
            status: r.parsed("opt_in_status", OptInStatus::parse)?,
            changed_at: r.opt_time("opt_in_changed_at")?,
            source: r.opt_text("opt_in_source")?,
        },
        last_inbound_at: r.opt_time("last_inbound_at")?,
        last_outbound_at: r.opt_time("last_outbound_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        version: r.int("version")?,
    })
}

/// Parses stored tags.
fn tags_from(stored: Vec<String>) -> Result<BTreeSet<Tag>> {
    stored.iter().map(|t| Tag::parse(t).map_err(|e| corrupt("tag", e))).collect()
}

/// Parses a stored metadata object.
fn metadata_from(v: serde_json::Value) -> Result<Metadata> {
    match v {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(corrupt("metadata", "not a JSON object")),
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The smallest string greater than every string starting with `prefix`, in
/// code-point (= UTF-8 byte) order; `None` when there is none.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Why an import row was refused when its phone (or id) is already stored,
/// as the memory store words it.
pub(crate) const PHONE_TAKEN: &str = "a contact with this phone already exists";

/// Picks the import rows to offer to the database: refuses, with the memory
/// store's reasons, a row whose phone or id repeats an earlier row. The
/// candidates come back ordered by phone, so concurrent imports take the
/// `(account_id, phone)` key in one global order and cannot deadlock on it.
pub(crate) fn plan_import(contacts: &[Contact]) -> (Vec<usize>, Vec<RejectedRow>) {
    let mut candidates = Vec::with_capacity(contacts.len());
    let mut rejected = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashSet<uuid::Uuid> = HashSet::new();
    for (index, c) in contacts.iter().enumerate() {
        if let Some(first) = seen.get(c.phone.as_str()) {
            rejected.push(RejectedRow { index, reason: format!("phone repeats row {first}") });
            continue;
        }
        seen.insert(c.phone.as_str(), index);
        if !ids.insert(c.id.into_uuid()) {
            rejected.push(RejectedRow { index, reason: PHONE_TAKEN.into() });
            continue;
        }
        candidates.push(index);
    }
    candidates.sort_unstable_by(|&a, &b| contacts[a].phone.as_str().cmp(contacts[b].phone.as_str()));
    (candidates, rejected)
}

/// The report once the candidates were offered with `ON CONFLICT DO NOTHING`:
/// those whose id came back in `inserted` were stored; the others met a stored
/// (or concurrently inserted) contact with their phone or id.
pub(crate) fn import_report(
    contacts: &[Contact],
    candidates: &[usize],
    inserted: &HashSet<uuid::Uuid>,
    mut rejected: Vec<RejectedRow>,
) -> ImportReport {
    let mut imported = 0;
    for &index in candidates {
        if inserted.contains(&contacts[index].id.into_uuid()) {
            imported += 1;
        } else {
            rejected.push(RejectedRow { index, reason: PHONE_TAKEN.into() });
        }
    }
    rejected.sort_unstable_by_key(|r| r.index);
    ImportReport { imported, rejected }
}

/// [`ContactStore::get_contact`](crm_core::ContactStore::get_contact).
pub(crate) async fn get_contact(db: &impl Fetch, account: AccountId, id: ContactId) -> Result<Contact> {
    let sql = "SELECT * FROM contacts WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a contact", sql, args).await?;
    row.map(|r| contact_row(&r)).transpose()?.ok_or(Error::not_found("contact"))
}

/// [`ContactStore::find_contact_by_phone`](crm_core::ContactStore::find_contact_by_phone).
pub(crate) async fn find_contact_by_phone(
    db: &impl Fetch,
    account: AccountId,
    phone: &Phone,
) -> Result<Option<Contact>> {
    let sql = "SELECT * FROM contacts WHERE account_id = $1 AND phone = $2";
    let args = vec![account.into_uuid().into(), phone.as_str().into()];
    let row = db.fetch_optional("reading a contact", sql, args).await?;
    row.map(|r| contact_row(&r)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[test]
    fn like_escaping() {
        assert_eq!(escape_like(r"a%b_c\d"), r"a\%b\_c\\d");
    }
}

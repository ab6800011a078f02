//! Backend-neutral helpers shared by the SQL stores: row decoding, import
//! planning, LIKE escaping and time arithmetic.

use chrono::{DateTime, Utc};
use crm_core::{AccountId, Contact, Error, Event, ImportReport, Metadata, RejectedRow, Result, Tag};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use crate::error::corrupt;

/// Rows per multi-row statement in batch writes.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const BATCH: usize = 500;

/// How long a health probe may take.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest `last_error` kept by `nack`, in characters (as the memory store).
pub(crate) const MAX_ERROR_CHARS: usize = 1000;

/// The same check the memory store makes: an event belongs to the account it is written for.
pub(crate) fn check_event_account(account: AccountId, event: &Event) -> Result<()> {
    if event.account_id != account {
        return Err(Error::validation("event", "belongs to another account"));
    }
    Ok(())
}

/// A duration in microseconds, capped at 100 years (so deadlines never overflow).
pub(crate) fn duration_micros(d: Duration) -> i64 {
    const CAP: u128 = 100 * 365 * 24 * 3600 * 1_000_000;
    i64::try_from(d.as_micros().min(CAP)).unwrap_or(i64::MAX)
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

/// Parses stored tags.
pub(crate) fn tags_from(stored: Vec<String>) -> Result<BTreeSet<Tag>> {
    stored.iter().map(|t| Tag::parse(t).map_err(|e| corrupt("tag", e))).collect()
}

/// Parses a stored metadata object.
pub(crate) fn metadata_from(v: serde_json::Value) -> Result<Metadata> {
    match v {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(corrupt("metadata", "not a JSON object")),
    }
}

/// Parses stored JSON into `T`.
pub(crate) fn json_from<T: serde::de::DeserializeOwned>(column: &'static str, v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| corrupt(column, e))
}

/// Serializes a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(column: &'static str, v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::validation(column, format!("cannot be serialized: {e}")))
}

/// Maps a domain parse failure of a stored value.
pub(crate) fn stored<T>(column: &'static str, r: Result<T>) -> Result<T> {
    r.map_err(|e| corrupt(column, e))
}

/// Checks the import arguments exactly as the memory store does.
pub(crate) fn check_import(account: AccountId, contacts: &[Contact], events: &[Event]) -> Result<()> {
    if contacts.len() != events.len() {
        return Err(Error::validation("events", "must have one event per contact"));
    }
    for (c, e) in contacts.iter().zip(events) {
        if c.account_id != account {
            return Err(Error::validation("contacts", "a contact belongs to another account"));
        }
        check_event_account(account, e)?;
    }
    Ok(())
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

/// Microseconds since the epoch (SQLite stores times this way).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The time `m` microseconds after the epoch.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn from_micros(column: &'static str, m: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(m).ok_or_else(|| corrupt(column, "timestamp out of range"))
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

    #[test]
    fn durations_cap() {
        assert_eq!(duration_micros(Duration::from_millis(2)), 2000);
        assert!(duration_micros(Duration::MAX) > 0);
    }
}

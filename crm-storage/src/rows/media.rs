//! Media records: row decoding and the reads both dialects share.

use crm_core::{AccountId, ContactId, Error, Media, MediaId, MediaOrigin, MediaState, MessageId, Result};

use super::{Columns, Fetch};

/// A `media` row.
pub(crate) fn media_row(r: &impl Columns) -> Result<Media> {
    Ok(Media {
        id: MediaId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        key: r.opt_text("key")?,
        content_type: r.text("content_type")?,
        filename: r.text("filename")?,
        size: r.opt_int("size")?.map(|n| u64::try_from(n).unwrap_or(0)),
        sha256: r.opt_text("sha256")?,
        origin: r.parsed("origin", MediaOrigin::parse)?,
        state: r.parsed("state", MediaState::parse)?,
        error: r.opt_text("error")?,
        message_id: r.opt_uuid("message_id")?.map(MessageId::from_uuid),
        contact_id: r.opt_uuid("contact_id")?.map(ContactId::from_uuid),
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// A size for a BIGINT column.
pub(crate) fn size_value(m: &Media) -> Option<i64> {
    m.size.map(|s| i64::try_from(s).unwrap_or(i64::MAX))
}

/// [`MediaRecordStore::get_media`](crm_core::MediaRecordStore::get_media).
pub(crate) async fn get_media(db: &impl Fetch, account: AccountId, id: MediaId) -> Result<Media> {
    let sql = "SELECT * FROM media WHERE id = $1 AND account_id = $2";
    let row = db.fetch_optional("reading media", sql, vec![id.into_uuid().into(), account.into_uuid().into()]);
    row.await?.map(|r| media_row(&r)).transpose()?.ok_or(Error::not_found("media"))
}

/// [`MediaRecordStore::list_contact_media`](crm_core::MediaRecordStore::list_contact_media).
pub(crate) async fn list_contact_media(db: &impl Fetch, account: AccountId, contact: ContactId) -> Result<Vec<Media>> {
    let sql = "SELECT * FROM media WHERE account_id = $1 AND contact_id = $2 ORDER BY created_at, id";
    let rows =
        db.fetch_all("listing a contact's media", sql, vec![account.into_uuid().into(), contact.into_uuid().into()]);
    rows.await?.iter().map(media_row).collect()
}

/// The UPDATE of [`MediaRecordStore::update_media`](crm_core::MediaRecordStore::update_media):
/// `$1` key, `$2` content type, `$3` size, `$4` sha256, `$5` state, `$6`
/// error, `$7` message, `$8` contact, `$9` updated_at, `$10` id, `$11` account.
pub(crate) const UPDATE_MEDIA: &str = "UPDATE media SET key = $1, content_type = $2, size = $3, sha256 = $4, \
     state = $5, error = $6, message_id = $7, contact_id = $8, updated_at = $9 \
     WHERE id = $10 AND account_id = $11 RETURNING *";

/// The INSERT of [`MediaRecordStore::insert_media`](crm_core::MediaRecordStore::insert_media).
pub(crate) const INSERT_MEDIA: &str = "INSERT INTO media (id, account_id, key, content_type, filename, size, sha256, \
     origin, state, error, message_id, contact_id, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// The read of [`MediaRecordStore::stored_media_before`](crm_core::MediaRecordStore::stored_media_before):
/// `$1` the cutoff, `$2` the limit.
pub(crate) const STORED_BEFORE: &str =
    "SELECT * FROM media WHERE state = 'stored' AND created_at < $1 ORDER BY created_at, id LIMIT $2";

//! [`MediaStore`]: where media bytes are kept.
//!
//! This is the part of the media port that inbound messages need today
//! (keep what a provider sent, read it back); the media issue (#15) grows it
//! (streams, head, delete, list, signed URLs) and adds object_store
//! adapters (local folder, S3) behind the same trait. Keys are chosen by the
//! store, never by the caller: `account/<account id>/<folder>/<uuid>-<name>`,
//! with the folder and name reduced to `[a-z0-9._-]`, so one account never
//! reads another's media and a hostile name cannot leave its folder.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use crm_core::{AccountId, MediaStore, MemoryMediaStore, NewMedia};
//! let store = MemoryMediaStore::new();
//! let account = AccountId::new();
//! let key = store.put(account, NewMedia { folder: "inbound", name: "foto.jpg", content_type: "image/jpeg", bytes: b"\xff\xd8".to_vec() }).await?;
//! assert!(key.starts_with(&format!("account/{account}/inbound/")));
//! assert_eq!(store.get(account, &key).await?.bytes, b"\xff\xd8");
//! assert!(store.get(AccountId::new(), &key).await.is_err());
//! # Ok::<(), crm_core::Error>(()) }).unwrap();
//! ```

use async_trait::async_trait;
use std::fmt::Debug;

use crate::{AccountId, Error, HealthCheck, Result};

/// Bytes to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMedia<'a> {
    /// What the bytes are for (`inbound`, …); reduced to `[a-z0-9._-]`.
    pub folder: &'a str,
    /// A file name to keep at the end of the key (reduced to `[a-z0-9._-]`, at most 64 characters).
    pub name: &'a str,
    /// The MIME type.
    pub content_type: &'a str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Bytes read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    /// The key.
    pub key: String,
    /// The MIME type given when it was put.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Where media bytes are kept.
#[async_trait]
pub trait MediaStore: HealthCheck + Send + Sync + Debug + 'static {
    /// Keeps `media` for `account` and returns its key (see the module
    /// docs); [`Error::Storage`] when it cannot be written.
    async fn put(&self, account: AccountId, media: NewMedia<'_>) -> Result<String>;

    /// The bytes under `key`; [`Error::NotFound`] when nothing is kept
    /// there or the key belongs to another account.
    async fn get(&self, account: AccountId, key: &str) -> Result<StoredMedia>;
}

/// `s` reduced to lower-case `[a-z0-9._-]` (other characters become `_`, no
/// leading dot, no `..`), at most `max` characters; `fallback` when nothing is left.
pub fn sanitize_key_part(s: &str, max: usize, fallback: &str) -> String {
    let mut cleaned = String::new();
    for c in s.chars().map(|c| c.to_ascii_lowercase()).take(max) {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' };
        // No `..` anywhere, no leading dot.
        if c == '.' && (cleaned.is_empty() || cleaned.ends_with('.')) {
            continue;
        }
        cleaned.push(c);
    }
    if cleaned.is_empty() { fallback.to_owned() } else { cleaned }
}

/// A new key for `media` of `account` (module docs).
pub fn media_key(account: AccountId, media: &NewMedia<'_>) -> String {
    format!(
        "account/{account}/{}/{}-{}",
        sanitize_key_part(media.folder, 32, "media"),
        uuid::Uuid::now_v7(),
        sanitize_key_part(media.name, 64, "file")
    )
}

/// Checks that `key` is one of `account`'s keys and could have been made by
/// [`media_key`]; [`Error::NotFound`] otherwise (another account's key
/// behaves like a missing one).
pub fn check_media_key(account: AccountId, key: &str) -> Result<()> {
    let prefix = format!("account/{account}/");
    let rest = key.strip_prefix(&prefix).ok_or(Error::not_found("media"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let ok = parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && !p.contains("..")
                && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok { Ok(()) } else { Err(Error::not_found("media")) }
}

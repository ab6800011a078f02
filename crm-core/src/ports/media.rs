//! [`MediaStore`]: where media bytes are kept, and [`MediaRecordStore`]:
//! what crm knows about each file (the [`Media`](crate::Media) records).
//!
//! Keys are chosen by the store, never by the caller:
//! `account/<account id>/<folder>/<uuid>-<name>`, with the folder and name
//! reduced to `[a-z0-9._-]`, so one account never reads another's media and
//! a hostile name cannot leave its folder. Every read, delete and signed URL
//! checks the key against the caller's account first ([`check_media_key`]):
//! another account's key behaves exactly like a missing one.
//!
//! Bytes move as streams ([`ByteStream`]): a 100 MB document is never held
//! in memory whole. [`MediaStore::put`] and [`MediaStore::get`] are
//! conveniences over the streamed methods for small files.
//!
//! Reading from outside (a browser, a provider) goes through a time-limited
//! signed URL ([`MediaStore::signed_url`]): S3 presigns its own; the local
//! folder and the memory store sign with a [`UrlSigner`] (HMAC-SHA256 over
//! the key and the expiry) whose tokens the HTTP server checks.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use crm_core::{AccountId, MediaStore, MemoryMediaStore, NewMedia};
//! let store = MemoryMediaStore::new();
//! let account = AccountId::new();
//! let key = store.put(account, NewMedia { folder: "inbound", name: "foto.jpg", content_type: "image/jpeg", bytes: b"\xff\xd8".to_vec() }).await?;
//! assert!(key.starts_with(&format!("account/{account}/inbound/")));
//! assert_eq!(store.get(account, &key).await?.bytes, b"\xff\xd8");
//! assert_eq!(store.head(account, &key).await?.size, 2);
//! assert!(store.get(AccountId::new(), &key).await.is_err());
//! store.delete(account, &key).await?;
//! assert!(store.get(account, &key).await.is_err());
//! # Ok::<(), crm_core::Error>(()) }).unwrap();
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::Stream;
use hmac::{KeyInit, Mac};
use std::fmt::Debug;
use std::pin::Pin;
use std::time::Duration;

use crate::domain::media::Media;
use crate::{AccountId, Error, HealthCheck, MediaId, Result};

/// Bytes in chunks, each chunk or an error (the stream ends at the first error).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A [`ByteStream`] of one chunk.
pub fn once(bytes: impl Into<Bytes>) -> ByteStream {
    let bytes: Bytes = bytes.into();
    Box::pin(futures_util::stream::iter([Ok(bytes)]))
}

/// Reads a whole stream into memory (small files only), at most `max` bytes;
/// [`Error::TooLarge`] beyond.
pub async fn collect(mut body: ByteStream, max: u64) -> Result<Vec<u8>> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if (out.len() + chunk.len()) as u64 > max {
            return Err(Error::TooLarge { what: "media", limit: max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Bytes to keep, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMedia<'a> {
    /// What the bytes are for (`inbound`, `uploads`, …); reduced to `[a-z0-9._-]`.
    pub folder: &'a str,
    /// A file name to keep at the end of the key (reduced to `[a-z0-9._-]`, at most 64 characters).
    pub name: &'a str,
    /// The MIME type.
    pub content_type: &'a str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What a streamed file is: its folder, name and MIME type (see [`NewMedia`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFile<'a> {
    /// What the bytes are for; reduced to `[a-z0-9._-]`.
    pub folder: &'a str,
    /// A file name for the end of the key.
    pub name: &'a str,
    /// The MIME type, kept with the bytes (and served with them).
    pub content_type: &'a str,
}

impl<'a> NewMedia<'a> {
    /// Its folder, name and type.
    pub fn file(&self) -> MediaFile<'a> {
        MediaFile { folder: self.folder, name: self.name, content_type: self.content_type }
    }
}

/// Bytes read back whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    /// The key.
    pub key: String,
    /// The MIME type given when it was put.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What is kept under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// The key.
    pub key: String,
    /// The MIME type given when it was put.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A key found by [`MediaStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMedia {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A file being read: what it is, and its bytes as a stream.
pub struct MediaDownload {
    /// Key, type and size.
    pub info: MediaInfo,
    /// The bytes.
    pub body: ByteStream,
}

impl Debug for MediaDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaDownload").field("info", &self.info).finish_non_exhaustive()
    }
}

/// A time-limited URL that reads one file without credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedUrl {
    /// The URL.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Longest lifetime of a signed URL (7 days: S3's presigning limit).
pub const MAX_SIGNED_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where media bytes are kept.
///
/// Contract (checked by `crm_core::testing::media`):
/// - The store chooses every key ([`media_key`]); each put gets a new key,
///   nothing is ever overwritten. A reader never sees half a file: a put
///   whose stream fails leaves nothing under any key.
/// - Every method taking a key answers [`Error::NotFound`] for a key of
///   another account, a malformed key and a missing file alike.
/// - Failures of the backend are [`Error::Storage`] (transient when a retry
///   may help), never carrying credentials.
#[async_trait]
pub trait MediaStore: HealthCheck + Send + Sync + Debug + 'static {
    /// Keeps the bytes of `body` for `account` as `file` and returns the new
    /// key. The first error of `body` aborts the write (nothing is kept) and
    /// is returned as it is; [`Error::Storage`] when it cannot be written.
    async fn put_stream(&self, account: AccountId, file: MediaFile<'_>, body: ByteStream) -> Result<String>;

    /// The file under `key` as a stream; [`Error::NotFound`] (module docs).
    async fn get_stream(&self, account: AccountId, key: &str) -> Result<MediaDownload>;

    /// Type and size of the file under `key`; [`Error::NotFound`] (module docs).
    async fn head(&self, account: AccountId, key: &str) -> Result<MediaInfo>;

    /// Deletes the file under `key`. Deleting a missing file succeeds (the
    /// call can be retried); another account's or a malformed key is
    /// [`Error::NotFound`] and deletes nothing.
    async fn delete(&self, account: AccountId, key: &str) -> Result<()>;

    /// The account's files, in key order: all of them, or those of one
    /// `folder` (reduced like [`media_key`] does). Never another account's.
    async fn list(&self, account: AccountId, folder: Option<&str>) -> Result<Vec<ListedMedia>>;

    /// A URL reading the file under `key` without credentials for `ttl`
    /// (at most [`MAX_SIGNED_URL_TTL`], else [`Error::Validation`]);
    /// [`Error::NotFound`] (module docs); [`Error::Config`] when the store
    /// has no way to sign.
    async fn signed_url(&self, account: AccountId, key: &str, ttl: Duration) -> Result<SignedUrl>;

    /// Keeps `media` (in memory) and returns its key; see [`MediaStore::put_stream`].
    async fn put(&self, account: AccountId, media: NewMedia<'_>) -> Result<String> {
        let file = media.file();
        self.put_stream(account, file, once(media.bytes)).await
    }

    /// The whole file under `key` (for small files; see [`MediaStore::get_stream`]).
    async fn get(&self, account: AccountId, key: &str) -> Result<StoredMedia> {
        let download = self.get_stream(account, key).await?;
        let bytes = collect(download.body, u64::MAX).await?;
        Ok(StoredMedia { key: download.info.key, content_type: download.info.content_type, bytes })
    }
}

/// The media records: what crm knows about each stored file.
///
/// Contract (checked by `crm_core::testing::store::media`):
/// - Tenancy as every store: another account's record behaves as a missing one.
/// - [`MediaRecordStore::update_media`] replaces what may change (key,
///   content type, size, SHA-256, state, error, linked message and contact,
///   `updated_at`); `account_id`, `origin`, `filename` and `created_at` stay.
#[async_trait]
pub trait MediaRecordStore: Send + Sync + Debug + 'static {
    /// Stores a new record; [`Error::Conflict`] when its id is taken.
    async fn insert_media(&self, media: &Media) -> Result<()>;

    /// One record; [`Error::NotFound`] when missing.
    async fn get_media(&self, account: AccountId, id: MediaId) -> Result<Media>;

    /// Replaces a record's changing fields (trait docs) and returns it as
    /// stored; [`Error::NotFound`] when missing.
    async fn update_media(&self, media: &Media) -> Result<Media>;

    /// Up to `limit` records of any account in state `stored` created
    /// before `before`, oldest first (what retention deletes).
    async fn stored_media_before(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Media>>;

    /// The account's records linked to the contact `contact` (what an
    /// erasure deletes), oldest first.
    async fn list_contact_media(&self, account: AccountId, contact: crate::ContactId) -> Result<Vec<Media>>;
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

/// The folder part of a key for `folder`.
pub fn sanitize_folder(folder: &str) -> String {
    sanitize_key_part(folder, 32, "media")
}

/// A new key for a file of `account` (module docs).
pub fn media_key(account: AccountId, file: &MediaFile<'_>) -> String {
    format!(
        "account/{account}/{}/{}-{}",
        sanitize_folder(file.folder),
        uuid::Uuid::now_v7(),
        sanitize_key_part(file.name, 64, "file")
    )
}

/// The prefix of `account`'s keys, or of one of its folders (ends with `/`).
pub fn media_prefix(account: AccountId, folder: Option<&str>) -> String {
    match folder {
        Some(f) => format!("account/{account}/{}/", sanitize_folder(f)),
        None => format!("account/{account}/"),
    }
}

/// The account a key names, when it has the shape [`media_key`] makes.
pub fn key_account(key: &str) -> Option<AccountId> {
    let rest = key.strip_prefix("account/")?;
    let (id, _) = rest.split_once('/')?;
    let account = id.parse::<AccountId>().ok()?;
    check_media_key(account, key).ok().map(|()| account)
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

/// Checks a signed URL's lifetime ([`MediaStore::signed_url`]).
pub fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl.is_zero() || ttl > MAX_SIGNED_URL_TTL {
        return Err(Error::validation("ttl", "must be between 1 second and 7 days"));
    }
    Ok(())
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a signed-URL token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Malformed, or its signature does not match (tampered, or signed with
    /// another secret).
    Invalid,
    /// Genuine but past its expiry.
    Expired,
}

/// Signs and checks the tokens of signed URLs served by crm itself (the
/// local folder and memory stores): `<base>/<token>` where the token is
/// `<expiry unix seconds>.<base64url key>.<base64url HMAC-SHA256>` over a
/// domain tag, the expiry and the key. The secret never leaves the process.
///
/// ```
/// use crm_core::ports::media::{TokenRefusal, UrlSigner};
/// use chrono::{Duration, Utc};
/// let signer = UrlSigner::new(b"0123456789abcdef0123456789abcdef", "https://crm.example/media")?;
/// let now = Utc::now();
/// let url = signer.url("account/x/inbound/y-z.jpg", now + Duration::minutes(5));
/// let token = url.rsplit('/').next().unwrap();
/// assert_eq!(signer.verify(token, now).as_deref(), Ok("account/x/inbound/y-z.jpg"));
/// assert_eq!(signer.verify(token, now + Duration::minutes(6)), Err(TokenRefusal::Expired));
/// # Ok::<(), crm_core::Error>(())
/// ```
#[derive(Clone)]
pub struct UrlSigner {
    secret: Vec<u8>,
    base: String,
}

impl Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").field("base", &self.base).finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// A signer with `secret` (at least 32 bytes, else [`Error::Config`])
    /// making URLs under `base` (e.g. `https://crm.example/media`).
    pub fn new(secret: &[u8], base: &str) -> Result<Self> {
        if secret.len() < 32 {
            return Err(Error::Config { message: "the media URL secret must have at least 32 bytes".into() });
        }
        Ok(Self { secret: secret.to_vec(), base: base.trim_end_matches('/').to_owned() })
    }

    /// A URL secret derived from other secret material (the server's
    /// secret keys): HMAC-SHA256 of a fixed label under `material`.
    pub fn derive_secret(material: &[u8]) -> Vec<u8> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(material).unwrap_or_else(|_| unreachable!());
        mac.update(b"crm-media-url-secret-v1");
        mac.finalize().into_bytes().to_vec()
    }

    fn mac(&self, expires: i64, key: &str) -> HmacSha256 {
        // 32+ bytes is a valid HMAC key; new_from_slice accepts any length.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        mac.update(b"crm-media-url-v1\n");
        mac.update(expires.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(key.as_bytes());
        mac
    }

    /// The token for `key` until `expires_at`.
    pub fn token(&self, key: &str, expires_at: DateTime<Utc>) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let expires = expires_at.timestamp();
        let tag = self.mac(expires, key).finalize().into_bytes();
        format!("{expires}.{}.{}", b64.encode(key), b64.encode(tag))
    }

    /// The URL of `key` until `expires_at`.
    pub fn url(&self, key: &str, expires_at: DateTime<Utc>) -> String {
        format!("{}/{}", self.base, self.token(key, expires_at))
    }

    /// A [`SignedUrl`] for `key` valid `ttl` from `now` (whole seconds).
    pub fn signed(&self, key: &str, ttl: Duration, now: DateTime<Utc>) -> SignedUrl {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let expires_at = DateTime::<Utc>::from_timestamp(now.timestamp().saturating_add(secs), 0).unwrap_or(now);
        SignedUrl { url: self.url(key, expires_at), expires_at }
    }

    /// The key a token names, when its signature matches (checked in
    /// constant time) and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> std::result::Result<String, TokenRefusal> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.split('.');
        let (Some(expires), Some(key), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenRefusal::Invalid);
        };
        let expires: i64 = expires.parse().map_err(|_| TokenRefusal::Invalid)?;
        let key = b64.decode(key).ok().and_then(|k| String::from_utf8(k).ok()).ok_or(TokenRefusal::Invalid)?;
        let tag = b64.decode(tag).map_err(|_| TokenRefusal::Invalid)?;
        self.mac(expires, &key).verify_slice(&tag).map_err(|_| TokenRefusal::Invalid)?;
        if now.timestamp() >= expires {
            return Err(TokenRefusal::Expired);
        }
        Ok(key)
    }
}

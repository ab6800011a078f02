//! The media library: files kept in a [`MediaStore`] with their [`Media`]
//! records in the [`Store`] — uploads checked against their bytes and
//! bounded per kind, inbound files copied from providers, signed URLs,
//! deletion, retention and erasure with the contact.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use crm_core::media::{MediaLibrary, Upload};
//! use crm_core::ports::media::once;
//! use crm_core::{Account, AccountStore, Crm, Event, EventType, MediaState, MemoryMediaStore, MemoryStore, RecordingMessenger};
//! let store = Arc::new(MemoryStore::new());
//! let crm = Crm::builder().store(store.clone()).messenger(Arc::new(RecordingMessenger::new())).build()?;
//! let account = Account::new("Acme", chrono::Utc::now())?;
//! let event = Event::new(account.id, EventType::ACCOUNT_CREATED, &serde_json::json!({}), chrono::Utc::now());
//! store.create_account(&account, &event).await?;
//! let library = MediaLibrary::new(&crm, Arc::new(MemoryMediaStore::new()));
//! let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
//! let media = library.upload(account.id, Upload { filename: "logo.png", content_type: Some("image/png") }, once(png)).await?;
//! assert_eq!((media.state, media.content_type.as_str(), media.size), (MediaState::Stored, "image/png", Some(16)));
//! // A PNG claimed to be a PDF is refused.
//! let lie = Upload { filename: "x.pdf", content_type: Some("application/pdf") };
//! assert!(library.upload(account.id, lie, once(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec())).await.is_err());
//! # Ok::<(), crm_core::Error>(()) }).unwrap();
//! ```

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ports::media::{ByteStream, MediaDownload, MediaFile, SignedUrl, check_ttl};
use crate::{
    AccountId, Clock, ContactId, Crm, Error, Media, MediaId, MediaKind, MediaOrigin, MediaState, MediaStore, Result,
    Store,
};

/// The folder of the media store uploads are kept in.
pub const UPLOAD_FOLDER: &str = "uploads";

/// How many bytes are read before the content type is decided.
pub const SNIFF_BYTES: usize = 8192;

/// Largest file per kind, in bytes (WhatsApp's limits by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimits {
    /// Images (5 MB).
    pub image: u64,
    /// Audio (16 MB).
    pub audio: u64,
    /// Video (16 MB).
    pub video: u64,
    /// Documents and everything else (100 MB).
    pub document: u64,
}

impl Default for MediaLimits {
    fn default() -> Self {
        const MB: u64 = 1024 * 1024;
        Self { image: 5 * MB, audio: 16 * MB, video: 16 * MB, document: 100 * MB }
    }
}

impl MediaLimits {
    /// The limit for a content type.
    pub fn for_type(&self, content_type: &str) -> u64 {
        match media_kind(content_type) {
            MediaKind::Image | MediaKind::Sticker => self.image,
            MediaKind::Audio => self.audio,
            MediaKind::Video => self.video,
            MediaKind::Document => self.document,
        }
    }

    /// The largest of the limits (what a request body may carry at most).
    pub fn largest(&self) -> u64 {
        self.image.max(self.audio).max(self.video).max(self.document)
    }
}

/// The WhatsApp kind of a content type: `image/*`, `audio/*`, `video/*`,
/// everything else a document.
pub fn media_kind(content_type: &str) -> MediaKind {
    match essence(content_type).split('/').next() {
        Some("image") => MediaKind::Image,
        Some("audio") => MediaKind::Audio,
        Some("video") => MediaKind::Video,
        _ => MediaKind::Document,
    }
}

/// The content types uploads may have (those WhatsApp accepts).
pub const ACCEPTED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "audio/aac",
    "audio/amr",
    "audio/mp4",
    "audio/mpeg",
    "audio/ogg",
    "video/mp4",
    "video/3gpp",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "text/plain",
];

/// Names of one type: what `infer` detects ↔ what clients send.
const SAME_TYPES: &[&[&str]] = &[
    &["image/jpeg", "image/jpg", "image/pjpeg"],
    &["audio/mpeg", "audio/mp3"],
    &["audio/ogg", "audio/opus", "application/ogg"],
    &["video/mp4", "audio/mp4", "audio/m4a", "audio/x-m4a", "video/quicktime"],
    &["video/3gpp", "audio/3gpp"],
    &["audio/aac", "audio/x-aac"],
];

/// The lower-case type without parameters (`Text/Plain; charset=x` → `text/plain`).
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn same_type(a: &str, b: &str) -> bool {
    a == b || SAME_TYPES.iter().any(|g| g.contains(&a) && g.contains(&b))
}

/// The content type of a file from its first bytes (`head`, at least
/// [`SNIFF_BYTES`] unless the file is shorter) and the client's claim
/// (`None`, empty or `application/octet-stream`: no claim).
///
/// The bytes decide: a claim that does not match them is refused, and so is
/// a type outside [`ACCEPTED_TYPES`] — both [`Error::Validation`] on `file`.
/// Text has no magic number: `text/plain` is accepted when claimed and the
/// bytes are UTF-8. The claim's name wins over `infer`'s for the same type
/// (`audio/mp4` for MP4 bytes).
pub fn sniff(head: &[u8], claimed: Option<&str>) -> Result<String> {
    let claimed = claimed.map(essence).filter(|c| !c.is_empty() && c != "application/octet-stream");
    let accepted = |t: &str| ACCEPTED_TYPES.contains(&t);
    match infer::get(head) {
        Some(kind) => {
            let detected = essence(kind.mime_type());
            match claimed {
                Some(c) if !same_type(&c, &detected) => {
                    Err(Error::validation("file", format!("the bytes are {detected}, not {c}")))
                }
                Some(c) if accepted(&c) => Ok(c),
                _ if accepted(&detected) => Ok(detected),
                Some(c) if ACCEPTED_TYPES.iter().any(|a| same_type(a, &c)) => {
                    Ok(ACCEPTED_TYPES.iter().find(|a| same_type(a, &c)).map(|a| (*a).to_owned()).unwrap_or(c))
                }
                _ => Err(Error::validation("file", format!("{detected} files are not accepted"))),
            }
        }
        None => {
            // A UTF-8 sequence may be cut at the end of the head.
            let text = match std::str::from_utf8(head) {
                Ok(_) => true,
                Err(e) => e.error_len().is_none() && head.len() >= SNIFF_BYTES,
            };
            match claimed.as_deref() {
                Some("text/plain") if text && !head.contains(&0) => Ok("text/plain".into()),
                Some(c) => Err(Error::validation("file", format!("the bytes are not {c}"))),
                None => Err(Error::validation("file", "the file's type is not recognised; name it in Content-Type")),
            }
        }
    }
}

/// What an upload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload<'a> {
    /// The client's file name (kept for display; the key has a sanitised copy).
    pub filename: &'a str,
    /// The client's content type, checked against the bytes ([`sniff`]).
    pub content_type: Option<&'a str>,
}

/// Size and SHA-256 of what went through a [`meter`].
struct Metered {
    size: u64,
    hash: Sha256,
}

/// `body` counted and hashed into `state`; its stream fails with
/// [`Error::TooLarge`] past `limit` bytes (the store then keeps nothing).
fn meter(body: ByteStream, limit: u64, state: Arc<Mutex<Metered>>) -> ByteStream {
    Box::pin(body.map(move |chunk| {
        let chunk = chunk?;
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.size += chunk.len() as u64;
        if s.size > limit {
            return Err(Error::TooLarge { what: "media", limit });
        }
        s.hash.update(&chunk);
        Ok(chunk)
    }))
}

/// Reads the first [`SNIFF_BYTES`] of `body` (or all of a shorter one) and
/// gives them back with the stream of the whole file.
async fn peek(mut body: ByteStream) -> Result<(Vec<u8>, ByteStream)> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0;
    let mut ended = false;
    while len < SNIFF_BYTES {
        match body.next().await {
            Some(chunk) => {
                let chunk = chunk?;
                len += chunk.len();
                chunks.push(chunk);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let head: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).take(SNIFF_BYTES).collect();
    let read = futures_util::stream::iter(chunks.into_iter().map(Ok));
    // A stream that has ended is never polled again.
    let whole: ByteStream = if ended { Box::pin(read) } else { Box::pin(read.chain(body)) };
    Ok((head, whole))
}

/// Files and their records (module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct MediaLibrary {
    crm: Crm,
    store: Arc<dyn Store>,
    files: Arc<dyn MediaStore>,
    clock: Arc<dyn Clock>,
    limits: MediaLimits,
}

impl MediaLibrary {
    /// A library keeping records in `crm`'s store and bytes in `files`,
    /// with the default [`MediaLimits`].
    pub fn new(crm: &Crm, files: Arc<dyn MediaStore>) -> Self {
        let (store, clock) = (crm.store().clone(), crm.clock().clone());
        Self { crm: crm.clone(), store, files, clock, limits: MediaLimits::default() }
    }

    /// Sets the size limits.
    pub fn with_limits(mut self, limits: MediaLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The size limits.
    pub fn limits(&self) -> &MediaLimits {
        &self.limits
    }

    /// The media store.
    pub fn files(&self) -> &Arc<dyn MediaStore> {
        &self.files
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Streams `body` into the media store and records it (state `stored`,
    /// origin `upload`). The type is decided by [`sniff`]; past the limit of
    /// its kind, [`Error::TooLarge`] and nothing is kept.
    pub async fn upload(&self, account: AccountId, upload: Upload<'_>, body: ByteStream) -> Result<Media> {
        let (head, body) = peek(body).await?;
        let content_type = sniff(&head, upload.content_type)?;
        let media = Media::pending(account, MediaOrigin::Upload, &content_type, upload.filename, self.now());
        self.keep(media, UPLOAD_FOLDER, body, true).await
    }

    /// Streams `body` into the media store for `media` (bounded by the
    /// limit of its type), moves it to `stored` with its key, size and
    /// SHA-256, and inserts the record (`insert`) or updates it.
    async fn keep(&self, mut media: Media, folder: &str, body: ByteStream, insert: bool) -> Result<Media> {
        let limit = self.limits.for_type(&media.content_type);
        let state = Arc::new(Mutex::new(Metered { size: 0, hash: Sha256::new() }));
        let file = MediaFile { folder, name: &media.filename, content_type: &media.content_type };
        let key = self.files.put_stream(media.account_id, file, meter(body, limit, state.clone())).await?;
        let (size, sha256) = {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            (s.size, hex_lower(&s.hash.clone().finalize()))
        };
        media.key = Some(key.clone());
        media.size = Some(size);
        media.sha256 = Some(sha256);
        let media = media.moved(MediaState::Stored, None, self.now());
        let saved = if insert {
            self.store.insert_media(&media).await
        } else {
            self.store.update_media(&media).await.map(|_| ())
        };
        if let Err(e) = saved {
            // No record, no file: a retry starts over.
            if let Err(d) = self.files.delete(media.account_id, &key).await {
                tracing::warn!(error = %d, "media: deleting an unrecorded file failed");
            }
            return Err(e);
        }
        Ok(media)
    }

    /// One record; [`Error::NotFound`] when missing.
    pub async fn get(&self, account: AccountId, id: MediaId) -> Result<Media> {
        self.store.get_media(account, id).await
    }

    fn stored_key(media: &Media) -> Result<&str> {
        match (&media.state, &media.key) {
            (MediaState::Stored, Some(key)) => Ok(key),
            (state, _) => Err(Error::conflict("media", format!("the file is {}, not stored", state.as_str()))),
        }
    }

    /// A signed URL reading the file for `ttl`; [`Error::Conflict`] when it
    /// is not stored (pending, failed, expired, deleted).
    pub async fn signed_url(&self, account: AccountId, id: MediaId, ttl: Duration) -> Result<SignedUrl> {
        check_ttl(ttl)?;
        let media = self.get(account, id).await?;
        self.files.signed_url(account, Self::stored_key(&media)?, ttl).await
    }

    /// The record and its bytes (to send it); [`Error::Conflict`] when not stored.
    pub async fn open(&self, account: AccountId, id: MediaId) -> Result<(Media, MediaDownload)> {
        let media = self.get(account, id).await?;
        let download = self.files.get_stream(account, Self::stored_key(&media)?).await?;
        Ok((media, download))
    }

    /// Deletes the file and moves the record to `state` (deleted or
    /// expired) with `reason`; a record already gone is returned as it is.
    async fn remove(&self, media: Media, state: MediaState, reason: &str) -> Result<Media> {
        if matches!(media.state, MediaState::Deleted | MediaState::Expired) {
            return Ok(media);
        }
        if let Some(key) = &media.key {
            self.files.delete(media.account_id, key).await?;
        }
        let moved = media.moved(state, Some(reason), self.now());
        let moved = self.store.update_media(&moved).await?;
        if let Some(message) = moved.message_id {
            self.mark_message(&moved, message, state, reason).await?;
        }
        Ok(moved)
    }

    /// The message's attachment says its file is gone (`state`, `reason`).
    async fn mark_message(
        &self,
        media: &Media,
        message: crate::MessageId,
        state: MediaState,
        reason: &str,
    ) -> Result<()> {
        let account = media.account_id;
        let found = match self.crm.get_message(account, message).await {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(mut attachment) = found.attachment.filter(|a| a.media_id == Some(media.id)) else {
            return Ok(());
        };
        attachment.state = match state {
            MediaState::Expired => crate::AttachmentState::Expired,
            _ => crate::AttachmentState::Deleted,
        };
        attachment.key = None;
        attachment.error = Some(reason.to_owned());
        match self.crm.record_attachment(account, message, attachment).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the file and marks the record `deleted` (idempotent).
    pub async fn delete(&self, account: AccountId, id: MediaId) -> Result<Media> {
        let media = self.get(account, id).await?;
        self.remove(media, MediaState::Deleted, "deleted on request").await
    }

    /// Deletes the files of the contact's media (its erasure); returns how many.
    pub async fn erase_contact(&self, account: AccountId, contact: ContactId) -> Result<u64> {
        let mut n = 0;
        for media in self.store.list_contact_media(account, contact).await? {
            if !matches!(media.state, MediaState::Deleted | MediaState::Expired) {
                self.remove(media, MediaState::Deleted, "deleted with its contact").await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes up to `limit` stored files created more than `retention`
    /// ago (state `expired`); returns them.
    pub async fn expire(&self, retention: Duration, limit: u32) -> Result<Vec<Media>> {
        let cutoff = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|d| self.now().checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut out = Vec::new();
        for media in self.store.stored_media_before(cutoff, limit).await? {
            out.push(self.remove(media, MediaState::Expired, "deleted after the retention period").await?);
        }
        Ok(out)
    }

    /// A new `pending` record of an inbound file (origin `inbound`), linked
    /// to its message and contact.
    pub async fn begin_inbound(&self, message: &crate::Message, content_type: &str, filename: &str) -> Result<Media> {
        let mut media = Media::pending(message.account_id, MediaOrigin::Inbound, content_type, filename, self.now());
        media.message_id = Some(message.id);
        media.contact_id = Some(message.contact_id);
        self.store.insert_media(&media).await?;
        Ok(media)
    }

    /// Keeps the bytes of a pending inbound file (bounded like uploads) and
    /// marks it `stored`; the content type is the provider's.
    pub async fn store_inbound(
        &self,
        mut media: Media,
        content_type: &str,
        folder: &str,
        body: ByteStream,
    ) -> Result<Media> {
        media.content_type = content_type.chars().filter(|c| !c.is_control()).take(255).collect();
        self.keep(media, folder, body, false).await
    }

    /// Marks a pending file `failed` with `reason`.
    pub async fn fail(&self, media: Media, reason: &str) -> Result<Media> {
        let moved = media.moved(MediaState::Failed, Some(reason), self.now());
        self.store.update_media(&moved).await
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const PDF: &[u8] = b"%PDF-1.7\n";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    #[test]
    fn the_bytes_decide_the_type() {
        assert_eq!(sniff(PNG, Some("image/png")).ok().as_deref(), Some("image/png"));
        assert_eq!(sniff(PNG, None).ok().as_deref(), Some("image/png"), "no claim: the bytes");
        assert_eq!(sniff(PNG, Some("application/octet-stream")).ok().as_deref(), Some("image/png"));
        assert_eq!(sniff(JPEG, Some("image/jpg")).ok().as_deref(), Some("image/jpeg"), "an alias of the same type");
        assert_eq!(sniff(PDF, Some("Application/PDF; x=y")).ok().as_deref(), Some("application/pdf"));
        assert_eq!(sniff(b"hello\n", Some("text/plain")).ok().as_deref(), Some("text/plain"));
    }

    #[test]
    fn mislabelled_and_unknown_files_are_refused() {
        let err = sniff(PNG, Some("application/pdf")).expect_err("a PNG is not a PDF");
        assert_eq!(err.to_string(), "invalid file: the bytes are image/png, not application/pdf");
        assert!(matches!(sniff(b"MZ\x90\0\x03\0\0\0", None), Err(Error::Validation { .. })), "an .exe");
        assert!(matches!(sniff(b"MZ\x90\0\x03\0\0\0", Some("image/png")), Err(Error::Validation { .. })));
        assert!(
            matches!(sniff(b"<html>", Some("text/html")), Err(Error::Validation { .. })),
            "no magic, not text/plain"
        );
        assert!(matches!(sniff(b"\0\x01\x02", Some("text/plain")), Err(Error::Validation { .. })), "binary as text");
        assert!(matches!(sniff(b"plain", None), Err(Error::Validation { .. })), "nothing to go by");
        let gif = b"GIF89a\x01\0\x01\0";
        assert_eq!(sniff(gif, None).expect_err("gif").to_string(), "invalid file: image/gif files are not accepted");
    }

    #[test]
    fn limits_follow_the_kind() {
        let l = MediaLimits::default();
        assert_eq!(l.for_type("image/png"), 5 * 1024 * 1024);
        assert_eq!(l.for_type("audio/ogg; codecs=opus"), 16 * 1024 * 1024);
        assert_eq!(l.for_type("video/mp4"), 16 * 1024 * 1024);
        assert_eq!(l.for_type("application/pdf"), 100 * 1024 * 1024);
        assert_eq!(l.largest(), 100 * 1024 * 1024);
    }
}

/// The job kind of [`MediaRetention`].
pub const RETENTION_JOB: &str = "media.retention";

/// How many files one retention pass deletes at most.
const RETENTION_BATCH: u32 = 200;

/// The retention sweep: a durable job (kind [`RETENTION_JOB`], one per
/// installation, scheduled by [`MediaRetention::schedule`]) that deletes
/// stored files older than the retention period (state `expired`; the
/// message's attachment says so) and comes back every `every`.
#[derive(Debug, Clone)]
pub struct MediaRetention {
    library: MediaLibrary,
    retention: Duration,
    every: Duration,
}

impl MediaRetention {
    /// Deletes files older than `retention`, looking every `every`.
    pub fn new(library: MediaLibrary, retention: Duration, every: Duration) -> Self {
        Self { library, retention, every }
    }

    /// Schedules the sweep unless it is scheduled already.
    pub async fn schedule(&self) -> Result<()> {
        let now = self.library.now();
        let job = crate::Job::new(RETENTION_JOB, None, serde_json::json!({}), now, now)?.with_unique_key("sweep")?;
        match self.library.store.schedule_job(&job).await {
            Ok(()) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One pass: deletes up to a batch of expired files; returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        Ok(self.library.expire(self.retention, RETENTION_BATCH).await?.len())
    }
}

#[async_trait::async_trait]
impl crate::workers::JobWorker for MediaRetention {
    fn kind(&self) -> &str {
        RETENTION_JOB
    }

    async fn run(&self, _job: &crate::Job) -> crate::workers::Outcome {
        use crate::workers::Outcome;
        match self.sweep().await {
            // A full batch: more may be due, come back soon.
            Ok(n) if n as u32 >= RETENTION_BATCH => Outcome::Defer { after: Duration::from_secs(1) },
            Ok(_) => Outcome::Defer { after: self.every },
            Err(e) => Outcome::Retry { error: e.to_string(), after: None },
        }
    }
}

/// The outbox consumer name of [`MediaEraser`].
pub const ERASER_CONSUMER: &str = "media-erasure";

/// Deletes a contact's media files when the contact is deleted (on
/// `contact.deleted`, retried by the runtime).
#[derive(Debug, Clone)]
pub struct MediaEraser {
    library: MediaLibrary,
}

impl MediaEraser {
    /// Erases through `library`.
    pub fn new(library: MediaLibrary) -> Self {
        Self { library }
    }
}

#[async_trait::async_trait]
impl crate::workers::EventWorker for MediaEraser {
    fn name(&self) -> &str {
        ERASER_CONSUMER
    }

    fn events(&self) -> crate::EventFilter {
        crate::EventFilter::only([crate::EventType::CONTACT_DELETED.as_str()]).unwrap_or_default()
    }

    async fn handle(&self, event: &crate::Event, _attempt: u32, _previous: Option<&str>) -> crate::workers::Outcome {
        use crate::workers::Outcome;
        let Some(contact) = event.payload["id"].as_str().and_then(|s| s.parse::<ContactId>().ok()) else {
            return Outcome::Done;
        };
        match self.library.erase_contact(event.account_id, contact).await {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::Retry { error: e.to_string(), after: None },
        }
    }
}

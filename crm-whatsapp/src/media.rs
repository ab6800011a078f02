//! Inbound media: Meta keeps what a contact sends behind a media id. The
//! file is fetched in two calls with the channel's token — `GET /{media-id}`
//! answers a short-lived URL, its MIME type, SHA-256 and size; `GET <url>`
//! answers the bytes — both through the channel's configured base URL (or
//! Meta's own media hosts), bounded in size and checked against Meta's hash.
//!
//! [`MediaFetcher`] does this in a worker, never inside the webhook request:
//! an outbox consumer of `message.received` (written in the same transaction
//! as the message, so a crash after the webhook's 200 loses no download)
//! that keeps the bytes in a [`MediaStore`] through a [`MediaLibrary`] (a
//! media record: pending, then stored or failed) and records an
//! [`Attachment`] (its state, Meta's media id, MIME type, SHA-256, size, the
//! store's key, the media record's id) on the message.
//! Transient failures (Meta's 5xx and 429, timeouts) are retried with the
//! runtime's backoff; permanent ones (too large, expired, refused) are
//! recorded on the message as a failed attachment.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crm_core::media::MediaLibrary;
use crm_core::ports::media::once;
use crm_core::workers::{EventWorker, Outcome, WorkerOptions};
use crm_core::{
    Attachment, AttachmentState, Crm, Direction, Error, Event, EventFilter, EventType, Media, MediaRef, MediaState,
    MediaStore, MessageContent, MessageId, Result,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::messenger::unreachable;
use crate::{CloudApiMessenger, CloudSettings, KIND, PROVIDER};

/// Default largest inbound file downloaded (16 MiB: WhatsApp's audio and video limit).
pub const DEFAULT_MAX_MEDIA_BYTES: u64 = 16 * 1024 * 1024;

/// Largest `max_media_bytes` a channel may set (100 MiB: WhatsApp's document limit).
pub const MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;

/// The folder of the [`MediaStore`] inbound files are kept in.
pub const INBOUND_FOLDER: &str = "inbound";

/// The outbox consumer name of [`MediaFetcher`].
pub const MEDIA_CONSUMER: &str = "whatsapp-media";

/// A file downloaded from Meta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadedMedia {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The MIME type Meta gave.
    pub mime_type: String,
    /// Lower-case hex SHA-256 of the bytes (equal to Meta's when Meta gave one).
    pub sha256: String,
}

fn permanent(code: &str, message: impl Into<String>) -> Error {
    Error::Provider {
        provider: PROVIDER.into(),
        transient: false,
        code: Some(code.into()),
        message: message.into(),
        retry_after: None,
        source: None,
    }
}

fn transient(code: &str, message: impl Into<String>) -> Error {
    Error::Provider {
        provider: PROVIDER.into(),
        transient: true,
        code: Some(code.into()),
        message: message.into(),
        retry_after: None,
        source: None,
    }
}

/// Whether Meta's media id looks like one (it goes into a URL path).
fn check_media_id(id: &str) -> Result<()> {
    if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        Ok(())
    } else {
        Err(Error::validation("media_id", "must be 1 to 128 letters, digits, _ or -"))
    }
}

/// Meta's hosts that serve media URLs (the token may be sent to them).
fn is_meta_media_host(host: &str) -> bool {
    ["fbsbx.com", "facebook.com", "whatsapp.net", "fbcdn.net"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

impl CloudApiMessenger {
    /// Downloads the media `media_id` (at most `max_bytes`):
    /// `GET /{media-id}` for its URL, then `GET <url>`, both with the token.
    /// The URL must be on the configured base URL's origin or an https URL
    /// of Meta's media hosts (the token goes nowhere else). Errors:
    /// [`Error::Validation`] for a malformed id; permanent
    /// [`Error::Provider`] for a file larger than `max_bytes` (code
    /// `too_large`), a URL elsewhere (`media_url`), Meta's permanent errors
    /// (an expired media id); transient ones for 5xx, 429, timeouts and a
    /// SHA-256 that does not match Meta's (`sha256_mismatch`).
    pub async fn download_media(&self, media_id: &str, max_bytes: u64) -> Result<DownloadedMedia> {
        check_media_id(media_id)?;
        let url = format!("{}/{media_id}?phone_number_id={}", self.root(), self.phone_number_id());
        let body = self.call(self.client().get(url)).await?;
        let meta: Value =
            serde_json::from_slice(&body).map_err(|_| transient("malformed_response", "unreadable media metadata"))?;
        let file_size = match &meta["file_size"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse::<u64>().ok(),
            _ => None,
        };
        if let Some(size) = file_size
            && size > max_bytes
        {
            return Err(permanent("too_large", format!("the file has {size} bytes; at most {max_bytes} are kept")));
        }
        let link = meta["url"].as_str().ok_or_else(|| transient("malformed_response", "the metadata names no URL"))?;
        let link = self.check_media_url(link)?;
        let mime_type = meta["mime_type"].as_str().unwrap_or("application/octet-stream").to_owned();
        let expected = meta["sha256"].as_str().map(str::to_ascii_lowercase);

        let mut response = self.answer(self.client().get(link)).await?;
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(permanent("too_large", format!("the file is larger than {max_bytes} bytes")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(e, self.timeout()))? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(permanent("too_large", format!("the file is larger than {max_bytes} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(e) = expected
            && e != sha256
        {
            return Err(transient("sha256_mismatch", "the downloaded bytes do not match Meta's SHA-256"));
        }
        Ok(DownloadedMedia { bytes, mime_type, sha256 })
    }

    /// `link` when the token may be sent there: the base URL's origin, or
    /// https on Meta's media hosts.
    fn check_media_url(&self, link: &str) -> Result<reqwest::Url> {
        let refused =
            || permanent("media_url", "the media URL is neither on the Graph API's origin nor Meta's media hosts");
        let url = reqwest::Url::parse(link).map_err(|_| refused())?;
        let base = reqwest::Url::parse(self.root()).map_err(|_| refused())?;
        let meta = url.scheme() == "https" && url.host_str().is_some_and(is_meta_media_host);
        if (url.origin() == base.origin() || meta) && url.username().is_empty() && url.password().is_none() {
            Ok(url)
        } else {
            Err(refused())
        }
    }
}

/// A file name for the key: Meta's file name for a document, else the media
/// id with an extension from the MIME type.
fn file_name(content: &MessageContent, media_id: &str, mime: &str) -> String {
    if let MessageContent::Media { filename: Some(f), .. } = content {
        return f.clone();
    }
    let ext = match mime.split(';').next().unwrap_or("").trim() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/mp4" | "video/mp4" => "mp4",
        "audio/aac" => "aac",
        "video/3gpp" => "3gp",
        "application/pdf" => "pdf",
        _ => "bin",
    };
    format!("{media_id}.{ext}")
}

/// The worker that downloads inbound media of `whatsapp-cloud` channels
/// (module docs) into a [`MediaLibrary`]: a `pending` media record and
/// attachment first (the message shows the file is on its way), then the
/// download, then `stored` (with the key, size and SHA-256) or `failed`
/// (with the reason). Run it in a [`Runtime`](crm_core::workers::Runtime)
/// with [`MediaFetcher::options`].
#[derive(Debug, Clone)]
pub struct MediaFetcher {
    crm: Crm,
    library: MediaLibrary,
    client: reqwest::Client,
}

impl MediaFetcher {
    /// Keeps files in `media` (with the default [`MediaLimits`](crm_core::media::MediaLimits)),
    /// calling Meta with `client`.
    pub fn new(crm: Crm, media: Arc<dyn MediaStore>, client: reqwest::Client) -> Self {
        let library = MediaLibrary::new(&crm, media);
        Self { crm, library, client }
    }

    /// Keeps files through `library` (its store and limits).
    pub fn with_library(crm: Crm, library: MediaLibrary, client: reqwest::Client) -> Self {
        Self { crm, library, client }
    }

    /// Options that suit it: a few downloads at once, eight attempts.
    pub fn options() -> WorkerOptions {
        WorkerOptions { batch: 16, concurrency: 4, max_attempts: 8, ..WorkerOptions::default() }
    }

    /// Downloads and records the media of the message `event` names;
    /// `Ok(None)` when there is nothing to do.
    async fn fetch(&self, event: &Event) -> Result<Option<crm_core::Message>> {
        let Some((message, channel)) = inbound_media_message(&self.crm, event, KIND).await? else {
            return Ok(None);
        };
        let (account, id) = (message.account_id, message.id);
        let MessageContent::Media { media, .. } = &message.content else { return Ok(None) };
        let media_id = media.location.clone();
        let credentials = self.crm.channels().open(&channel)?;
        let messenger = CloudApiMessenger::from_channel(&channel, &credentials, self.client.clone())?;
        let max = CloudSettings::from_channel(&channel)?.max_media_bytes();
        let name = file_name(&message.content, &media_id, media.mime_type.as_deref().unwrap_or(""));
        let Some(record) = pending_record(&self.crm, &self.library, &message, media, &name).await? else {
            return Ok(None);
        };
        let record_id = record.id;
        let failed = |error: String| settled_attachment(&media_id, media.mime_type.clone(), record_id, Err(&error));
        let downloaded = match messenger.download_media(&media_id, max).await {
            Ok(file) => {
                let mime = file.mime_type.clone();
                self.library.store_inbound(record.clone(), &mime, INBOUND_FOLDER, once(file.bytes)).await
            }
            Err(e) => Err(e),
        };
        let attachment = match downloaded {
            Ok(stored) => settled_attachment(&media_id, None, stored.id, Ok(&stored)),
            Err(e @ (Error::Validation { .. } | Error::TooLarge { .. })) => {
                self.library.fail(record, &e.to_string()).await?;
                failed(e.to_string())
            }
            Err(e) if e.is_permanent() && matches!(e, Error::Provider { .. }) => {
                self.library.fail(record, &e.to_string()).await?;
                failed(e.to_string())
            }
            Err(e) => return Err(e),
        };
        self.crm.record_attachment(account, id, attachment).await.map(Some)
    }
}

#[async_trait]
impl EventWorker for MediaFetcher {
    fn name(&self) -> &str {
        MEDIA_CONSUMER
    }

    fn events(&self) -> EventFilter {
        EventFilter::only([EventType::MESSAGE_RECEIVED.as_str()]).unwrap_or_default()
    }

    async fn handle(&self, event: &Event, _attempt: u32, _previous_error: Option<&str>) -> Outcome {
        match self.fetch(event).await {
            Ok(Some(m)) => {
                tracing::debug!(message = %m.id, "whatsapp media kept");
                Outcome::Done
            }
            Ok(None) => Outcome::Done,
            Err(e) => {
                let after = match &e {
                    Error::Provider { retry_after, .. } => *retry_after,
                    Error::RateLimited { retry_after } => Some(*retry_after),
                    _ => None,
                }
                .or(Some(Duration::from_secs(1)));
                Outcome::Retry { error: e.to_string(), after }
            }
        }
    }
}

/// The inbound media message a `message.received` event names, with its
/// channel, when that channel is of `kind` and the file is not settled yet
/// (most messages are not media: decided from the event, without a read).
pub(crate) async fn inbound_media_message(
    crm: &Crm,
    event: &Event,
    kind: &str,
) -> Result<Option<(crm_core::Message, crm_core::Channel)>> {
    let account = event.account_id;
    let m = &event.payload["message"];
    if m["content"]["type"] != "media" || m["direction"] != "inbound" || m["channel_id"].is_null() {
        return Ok(None);
    }
    let Some(id) = m["id"].as_str().and_then(|s| s.parse::<MessageId>().ok()) else {
        return Ok(None);
    };
    let message = match crm.get_message(account, id).await {
        Ok(m) => m,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let (MessageContent::Media { .. }, Direction::Inbound, Some(channel_id)) =
        (&message.content, message.direction, message.channel_id)
    else {
        return Ok(None);
    };
    // Settled already (stored, failed, expired, deleted): nothing to do.
    if message.attachment.as_ref().is_some_and(|a| a.state != AttachmentState::Pending) {
        return Ok(None);
    }
    match crm.get_channel(account, channel_id).await {
        Ok(c) if c.kind.as_str() == kind => Ok(Some((message, c))),
        Ok(_) | Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The pending record of `message`'s file: the one its pending attachment
/// names (a retry), else a new one, recorded on the message as a pending
/// [`Attachment`]. `None` when its record is settled or gone already.
pub(crate) async fn pending_record(
    crm: &Crm,
    library: &MediaLibrary,
    message: &crm_core::Message,
    media: &MediaRef,
    name: &str,
) -> Result<Option<Media>> {
    if let Some(id) = message.attachment.as_ref().and_then(|a| a.media_id) {
        return match library.get(message.account_id, id).await {
            Ok(m) if m.state == MediaState::Pending => Ok(Some(m)),
            Ok(_) | Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
    }
    let mime = media.mime_type.as_deref().unwrap_or("application/octet-stream");
    let record = library.begin_inbound(message, mime, name).await?;
    let pending = Attachment {
        state: AttachmentState::Pending,
        provider_media_id: media.location.clone(),
        mime_type: media.mime_type.clone(),
        sha256: None,
        size: None,
        key: None,
        error: None,
        media_id: Some(record.id),
    };
    crm.record_attachment(message.account_id, message.id, pending).await?;
    Ok(Some(record))
}

/// An inbound message's attachment once its file is settled: `stored`
/// (with the stored record's type, hash, size and key) or `failed` (with
/// the reason, at most 500 characters).
pub(crate) fn settled_attachment(
    provider_media_id: &str,
    mime_type: Option<String>,
    record: crm_core::MediaId,
    outcome: std::result::Result<&Media, &str>,
) -> Attachment {
    match outcome {
        Ok(stored) => Attachment {
            state: AttachmentState::Stored,
            provider_media_id: provider_media_id.to_owned(),
            mime_type: Some(stored.content_type.clone()),
            sha256: stored.sha256.clone(),
            size: stored.size,
            key: stored.key.clone(),
            error: None,
            media_id: Some(stored.id),
        },
        Err(reason) => Attachment {
            state: AttachmentState::Failed,
            provider_media_id: provider_media_id.to_owned(),
            mime_type,
            sha256: None,
            size: None,
            key: None,
            error: Some(reason.chars().take(500).collect()),
            media_id: Some(record),
        },
    }
}

/// The prefix of a media location naming a file of crm's media library:
/// `media:<media id>` (a [`Media`] record's id).
pub const STORED_MEDIA_PREFIX: &str = "media:";

/// The media id a message's `media:<id>` location names, if it names one.
pub(crate) fn stored_media(content: &MessageContent) -> Option<Result<crm_core::MediaId>> {
    let MessageContent::Media { media, .. } = content else { return None };
    let id = media.location.strip_prefix(STORED_MEDIA_PREFIX)?;
    Some(id.parse().map_err(|_| Error::validation("content.media.location", "media:<id> needs a media id")))
}

/// Meta's answer to a media upload.
#[derive(Debug, serde::Deserialize)]
struct Uploaded {
    id: String,
}

impl CloudApiMessenger {
    /// Uploads a file to Meta for this phone number: `POST
    /// /{phone-number-id}/media` as multipart/form-data with
    /// `messaging_product=whatsapp`, `type` (the MIME type) and `file`.
    /// Returns Meta's media id (usable in sends for 30 days). Errors as
    /// every Graph call ([`Error::Provider`], transient for 5xx, 429 and
    /// timeouts).
    pub async fn upload_media(&self, bytes: Vec<u8>, mime_type: &str, filename: &str) -> Result<String> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_owned())
            .mime_str(mime_type)
            .map_err(|_| Error::validation("content_type", "not a MIME type"))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime_type.to_owned())
            .part("file", part);
        let url = format!("{}/{}/media", self.root(), self.phone_number_id());
        let body = self.call(self.client().post(url).multipart(form)).await?;
        let uploaded: Uploaded = serde_json::from_slice(&body)
            .map_err(|_| transient("malformed_response", "the media upload's answer names no id"))?;
        check_media_id(&uploaded.id).map_err(|_| transient("malformed_response", "the media id is malformed"))?;
        Ok(uploaded.id)
    }

    /// `message` with its `media:<id>` location replaced by the id Meta
    /// gives the uploaded file. Permanent errors when there is no media
    /// library, or the file is not stored (the send fails); the file is
    /// bounded by the library's limit of its kind.
    pub(crate) async fn with_uploaded_media(
        &self,
        message: &crm_core::OutboundMessage,
        id: crm_core::MediaId,
    ) -> Result<crm_core::OutboundMessage> {
        let library = self.media_library().ok_or_else(|| {
            Error::validation("content.media.location", "media:<id> needs the media library (crm-server sets it)")
        })?;
        let (record, download) = library.open(message.account_id, id).await?;
        let limit = library.limits().for_type(&record.content_type);
        let bytes = crm_core::ports::media::collect(download.body, limit).await?;
        let meta_id = self.upload_media(bytes, &record.content_type, &record.filename).await?;
        let mut resolved = message.clone();
        if let MessageContent::Media { media, .. } = &mut resolved.content {
            media.location = meta_id;
            media.mime_type = Some(record.content_type);
        }
        Ok(resolved)
    }
}

//! Inbound media: Meta keeps what a contact sends behind a media id. The
//! file is fetched in two calls with the channel's token — `GET /{media-id}`
//! answers a short-lived URL, its MIME type, SHA-256 and size; `GET <url>`
//! answers the bytes — both through the channel's configured base URL (or
//! Meta's own media hosts), bounded in size and checked against Meta's hash.
//!
//! [`MediaFetcher`] does this in a worker, never inside the webhook request:
//! an outbox consumer of `message.received` (written in the same transaction
//! as the message, so a crash after the webhook's 200 loses no download)
//! that keeps the bytes in a [`MediaStore`] and records an [`Attachment`]
//! (media id, MIME type, SHA-256, size, the store's key) on the message.
//! Transient failures (Meta's 5xx and 429, timeouts) are retried with the
//! runtime's backoff; permanent ones (too large, expired, refused) are
//! recorded on the message as a failed attachment.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crm_core::workers::{EventWorker, Outcome, WorkerOptions};
use crm_core::{
    Attachment, AttachmentState, Crm, Direction, Error, Event, EventFilter, EventType, MediaStore, MessageContent,
    MessageId, NewMedia, Result,
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
/// (module docs). Run it in a [`Runtime`](crm_core::workers::Runtime) with
/// [`MediaFetcher::options`].
#[derive(Debug, Clone)]
pub struct MediaFetcher {
    crm: Crm,
    media: Arc<dyn MediaStore>,
    client: reqwest::Client,
}

impl MediaFetcher {
    /// Keeps files in `media`, calling Meta with `client`.
    pub fn new(crm: Crm, media: Arc<dyn MediaStore>, client: reqwest::Client) -> Self {
        Self { crm, media, client }
    }

    /// Options that suit it: a few downloads at once, eight attempts.
    pub fn options() -> WorkerOptions {
        WorkerOptions { batch: 16, concurrency: 4, max_attempts: 8, ..WorkerOptions::default() }
    }

    /// Downloads and records the media of the message `event` names;
    /// `Ok(None)` when there is nothing to do.
    async fn fetch(&self, event: &Event) -> Result<Option<crm_core::Message>> {
        let account = event.account_id;
        let m = &event.payload["message"];
        // Most messages are not media: decided from the event, without a read.
        if m["content"]["type"] != "media" || m["direction"] != "inbound" || m["channel_id"].is_null() {
            return Ok(None);
        }
        let Some(id) = m["id"].as_str().and_then(|s| s.parse::<MessageId>().ok()) else {
            return Ok(None);
        };
        let message = match self.crm.get_message(account, id).await {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (MessageContent::Media { media, .. }, Direction::Inbound, Some(channel_id), None) =
            (&message.content, message.direction, message.channel_id, &message.attachment)
        else {
            return Ok(None);
        };
        let channel = match self.crm.get_channel(account, channel_id).await {
            Ok(c) if c.kind.as_str() == KIND => c,
            Ok(_) | Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let media_id = media.location.clone();
        let credentials = self.crm.channels().open(&channel)?;
        let messenger = CloudApiMessenger::from_channel(&channel, &credentials, self.client.clone())?;
        let max = CloudSettings::from_channel(&channel)?.max_media_bytes();
        let failed = |error: String| Attachment {
            state: AttachmentState::Failed,
            provider_media_id: media_id.clone(),
            mime_type: media.mime_type.clone(),
            sha256: None,
            size: None,
            key: None,
            error: Some(error.chars().take(500).collect()),
        };
        let attachment = match messenger.download_media(&media_id, max).await {
            Ok(file) => {
                let name = file_name(&message.content, &media_id, &file.mime_type);
                let size = file.bytes.len() as u64;
                let new =
                    NewMedia { folder: INBOUND_FOLDER, name: &name, content_type: &file.mime_type, bytes: file.bytes };
                let key = self.media.put(account, new).await?;
                Attachment {
                    state: AttachmentState::Stored,
                    provider_media_id: media_id.clone(),
                    mime_type: Some(file.mime_type),
                    sha256: Some(file.sha256),
                    size: Some(size),
                    key: Some(key),
                    error: None,
                }
            }
            Err(e @ Error::Validation { .. }) => failed(e.to_string()),
            Err(e) if e.is_permanent() && matches!(e, Error::Provider { .. }) => failed(e.to_string()),
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

//! Media on the WhatsApp Web channel: files of crm's media library
//! (`media:<id>` locations) sent through the page (WhatsApp Web encrypts
//! and uploads them as it does for a file picked in the browser), and
//! inbound media downloaded from the page into the library by
//! [`WebMediaFetcher`], a retried job separate from storing the message,
//! the message pointing at the file through its [`Attachment`] (pending,
//! then stored or failed with the reason, each a `message.updated` event)
//! — what the Cloud channel's [`MediaFetcher`](crate::MediaFetcher) does
//! for its inbound files.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use crm_core::media::MediaLibrary;
use crm_core::ports::media::once;
use crm_core::workers::{EventWorker, Outcome, WorkerOptions};
use crm_core::{
    ChannelId, Error, Event, EventFilter, EventType, MediaKind, MediaRef, Message, MessageContent, OutboundMessage,
    Result,
};
use serde::Deserialize;
use serde_json::json;

use super::bridge::{self, PageMedia};
use super::engine::{Shared, WebEngine};
use super::{KIND, PROVIDER};
use crate::media::{INBOUND_FOLDER, inbound_media_message, pending_record, settled_attachment, stored_media};

/// The outbox consumer name of [`WebMediaFetcher`].
pub const WEB_MEDIA_CONSUMER: &str = "whatsapp-web-media";

/// How long an inbound file waits for its session to be connected before
/// it is given up (WhatsApp keeps media on its servers for a limited time).
pub const WEB_MEDIA_PATIENCE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Largest file sent or downloaded through the page (it crosses the
/// DevTools connection as base64): 16 MiB, WhatsApp's limit for images,
/// audio and video.
pub const MAX_WEB_MEDIA_BYTES: u64 = 16 * 1024 * 1024;

/// WhatsApp Web's message type of a media kind (the Cloud API's names).
fn page_kind(kind: MediaKind) -> &'static str {
    crate::payload::media_kind(kind)
}

/// The media kind of WhatsApp Web's message type, for the types crm keeps.
pub(crate) fn media_kind(page_type: &str) -> Option<MediaKind> {
    Some(match page_type {
        "image" => MediaKind::Image,
        "audio" | "ptt" => MediaKind::Audio,
        "video" => MediaKind::Video,
        "document" => MediaKind::Document,
        "sticker" => MediaKind::Sticker,
        _ => return None,
    })
}

/// An inbound media message's content: the file is on its way (its
/// location is the page's own key of the message, which the page
/// downloads it by, also when the message id crm keeps was rewritten from
/// a LID chat to the phone's).
pub(crate) fn inbound_content(kind: MediaKind, key: &str, media: &PageMedia) -> MessageContent {
    let clean = |s: &Option<String>, max: usize| {
        s.as_deref().map(|v| v.chars().filter(|c| !c.is_control() || *c == '\n').take(max).collect::<String>())
    };
    MessageContent::Media {
        kind,
        media: MediaRef { location: key.to_owned(), mime_type: clean(&media.mimetype, 255) },
        caption: clean(&media.caption, 1024).filter(|c| !c.is_empty()),
        filename: clean(&media.filename, 255).filter(|c| !c.is_empty()),
    }
}

/// A file the page downloaded.
#[derive(Debug, Deserialize)]
struct Downloaded {
    mimetype: Option<String>,
    data: String,
}

impl Shared {
    /// The media library, once given.
    fn library(&self) -> Result<&MediaLibrary> {
        self.media.get().ok_or_else(|| {
            Error::validation("content.media.location", "media:<id> needs the media library (crm-server sets it)")
        })
    }

    /// Sends a `media:<id>` file of the library through the channel's page.
    /// Other locations (links, provider ids) are [`Error::Validation`]: the
    /// page sends files, it does not fetch them.
    pub(crate) async fn send_media(&self, channel: ChannelId, to: &str, message: &OutboundMessage) -> Result<String> {
        let MessageContent::Media { kind, caption, filename, .. } = &message.content else {
            return Err(Error::validation("content", "not a media message"));
        };
        let id = stored_media(&message.content).ok_or_else(|| {
            Error::validation(
                "content.media.location",
                "a whatsapp-web channel sends files of the media library (media:<id>)",
            )
        })??;
        let library = self.library()?;
        let (record, download) = library.open(message.account_id, id).await?;
        let limit = library.limits().for_type(&record.content_type).min(MAX_WEB_MEDIA_BYTES);
        let bytes = crm_core::ports::media::collect(download.body, limit).await?;
        let media = json!({
            "kind": page_kind(*kind),
            "mimetype": record.content_type,
            "filename": filename.clone().unwrap_or_else(|| record.filename.clone()),
            "caption": caption,
            "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
        });
        #[derive(Deserialize)]
        struct Sent {
            id: String,
        }
        let sent: Sent = self.call(channel, &bridge::call("sendMedia", &[json!(to), media])).await?;
        Ok(sent.id)
    }

    /// The bytes (at most [`MAX_WEB_MEDIA_BYTES`]) and type of a message's file.
    async fn download(&self, channel: ChannelId, key: &str) -> Result<(Vec<u8>, Option<String>)> {
        let file: Downloaded = self.call(channel, &bridge::call("downloadMedia", &[json!(key)])).await?;
        if file.data.len() as u64 > MAX_WEB_MEDIA_BYTES / 3 * 4 + 4 {
            return Err(Error::TooLarge { what: "inbound file", limit: MAX_WEB_MEDIA_BYTES });
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(file.data.as_bytes())
            .map_err(|_| Error::validation("data", "WhatsApp Web answered a file that is not base64"))?;
        Ok((bytes, file.mimetype.filter(|m| !m.is_empty() && m.len() <= 255)))
    }
}

/// The worker that keeps inbound media of `whatsapp-web` channels: an
/// outbox consumer of `message.received` (written with the message, so a
/// crash loses no download) that records a `pending` media record and
/// attachment, asks the channel's page for the file (`downloadMedia`),
/// and keeps it in the engine's [`MediaLibrary`] (`stored`, with key,
/// size and SHA-256) or records why not (`failed`). While the session is
/// not connected in this process ([`Error::NotConnected`]) the file waits
/// (deferred, no attempt counted) up to [`WEB_MEDIA_PATIENCE`]; other
/// transient failures are retried with the runtime's backoff, and the last
/// attempt records the failure, so an attachment never stays pending.
/// Run it in a [`Runtime`](crm_core::workers::Runtime) with
/// [`WebMediaFetcher::options`], beside the engine's sessions.
#[derive(Debug, Clone)]
pub struct WebMediaFetcher {
    engine: WebEngine,
    wait: Duration,
}

impl WebMediaFetcher {
    /// A fetcher downloading through `engine`'s sessions into its media
    /// library ([`WebEngine::set_media_library`]).
    pub fn new(engine: WebEngine) -> Self {
        Self { engine, wait: Duration::from_secs(10) }
    }

    /// How long a file waits before asking again while its session is not
    /// connected (default 10 s).
    pub fn not_connected_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.max(Duration::from_millis(10));
        self
    }

    /// Options that suit it.
    pub fn options() -> WorkerOptions {
        WorkerOptions { batch: 16, concurrency: 4, max_attempts: 8, ..WorkerOptions::default() }
    }

    /// Downloads and records the file of the message `event` names;
    /// `Ok(None)` when there is nothing (more) to do. `give_up`: record a
    /// failure instead of answering a transient error.
    async fn fetch(&self, event: &Event, give_up: bool) -> Result<Option<Message>> {
        let shared = &self.engine.shared;
        let (Some(crm), Ok(library)) = (shared.crm(), shared.library()) else { return Ok(None) };
        let Some((message, channel)) = inbound_media_message(crm, event, KIND).await? else { return Ok(None) };
        let MessageContent::Media { media, filename, .. } = &message.content else { return Ok(None) };
        let name = filename.clone().unwrap_or_else(|| format!("whatsapp-{}", message.id));
        let Some(record) = pending_record(crm, library, &message, media, &name).await? else { return Ok(None) };
        let stored = match shared.download(channel.id, &media.location).await {
            Ok((bytes, page_mime)) => {
                let fallback = media.mime_type.as_deref().unwrap_or("application/octet-stream");
                let mime = page_mime.unwrap_or_else(|| fallback.to_owned());
                library.store_inbound(record.clone(), &mime, INBOUND_FOLDER, once(bytes)).await
            }
            Err(e) => Err(e),
        };
        let attachment = match stored {
            Ok(s) => settled_attachment(&media.location, None, s.id, Ok(&s)),
            Err(e) if e.is_transient() && !give_up => return Err(e),
            Err(e) => {
                let reason = match e {
                    Error::NotConnected { .. } => format!("not downloaded in time: {e}"),
                    e => e.to_string(),
                };
                library.fail(record.clone(), &reason).await?;
                settled_attachment(&media.location, media.mime_type.clone(), record.id, Err(&reason))
            }
        };
        crm.record_attachment(message.account_id, message.id, attachment).await.map(Some)
    }
}

#[async_trait]
impl EventWorker for WebMediaFetcher {
    fn name(&self) -> &str {
        WEB_MEDIA_CONSUMER
    }

    fn events(&self) -> EventFilter {
        EventFilter::only([EventType::MESSAGE_RECEIVED.as_str()]).unwrap_or_default()
    }

    async fn handle(&self, event: &Event, attempt: u32, _previous_error: Option<&str>) -> Outcome {
        let waited = (chrono::Utc::now() - event.occurred_at).to_std().unwrap_or_default();
        let last = attempt >= Self::options().max_attempts;
        match self.fetch(event, last).await {
            Ok(Some(m)) => {
                tracing::debug!(message = %m.id, "{PROVIDER}: inbound file kept");
                Outcome::Done
            }
            Ok(None) => Outcome::Done,
            // The session reconnects, or runs in another process: wait.
            Err(Error::NotConnected { .. }) if waited < WEB_MEDIA_PATIENCE => Outcome::Defer { after: self.wait },
            Err(Error::NotConnected { .. }) => match self.fetch(event, true).await {
                Ok(_) => Outcome::Done,
                Err(e) => Outcome::Retry { error: e.to_string(), after: None },
            },
            Err(e) => Outcome::Retry { error: e.to_string(), after: Some(Duration::from_secs(1)) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_both_ways() {
        for kind in [MediaKind::Image, MediaKind::Audio, MediaKind::Video, MediaKind::Document, MediaKind::Sticker] {
            assert_eq!(media_kind(page_kind(kind)), Some(kind));
        }
        assert_eq!(media_kind("ptt"), Some(MediaKind::Audio));
        assert_eq!(media_kind("chat"), None);
        let media = PageMedia {
            mimetype: Some("image/png".into()),
            filename: None,
            caption: Some("foto\u{0}".into()),
            size: Some(3),
        };
        let MessageContent::Media { kind, media, caption, filename } =
            inbound_content(MediaKind::Image, "false_1@c.us_X", &media)
        else {
            unreachable!()
        };
        assert_eq!(
            (kind, media.location.as_str(), media.mime_type.as_deref()),
            (MediaKind::Image, "false_1@c.us_X", Some("image/png"))
        );
        assert_eq!((caption.as_deref(), filename), (Some("foto"), None));
    }
}

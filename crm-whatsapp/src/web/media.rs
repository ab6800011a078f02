//! Media on the WhatsApp Web channel: files of crm's media library
//! (`media:<id>` locations) sent through the page (WhatsApp Web encrypts
//! and uploads them as it does for a file picked in the browser), and
//! inbound media downloaded from the page into the library, the message
//! pointing at it through its [`Attachment`] — the shape the Cloud
//! channel's [`MediaFetcher`](crate::MediaFetcher) gives inbound files.

use base64::Engine as _;
use crm_core::media::MediaLibrary;
use crm_core::ports::media::once;
use crm_core::{
    Attachment, AttachmentState, Channel, ChannelId, Error, MediaKind, MediaRef, Message, MessageContent,
    OutboundMessage, Result,
};
use serde::Deserialize;
use serde_json::json;

use super::bridge::{self, PageMedia};
use super::engine::Shared;
use crate::media::{INBOUND_FOLDER, stored_media};

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
/// location is the message's key, which the page downloads it by).
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

    /// Downloads an inbound message's file from the page into the media
    /// library and records it on the message: `pending`, then `stored` or
    /// `failed` with the reason. Without a library, nothing is kept.
    pub(crate) async fn keep_inbound_media(&self, channel: &Channel, page_key: &str, message: &Message) {
        let (Some(crm), Ok(library)) = (self.crm(), self.library()) else { return };
        let MessageContent::Media { media, filename, .. } = &message.content else { return };
        if message.attachment.is_some() {
            return;
        }
        let mime = media.mime_type.clone().unwrap_or_else(|| "application/octet-stream".into());
        let name = filename.clone().unwrap_or_else(|| format!("whatsapp-{}", message.id));
        let attachment =
            |state, error: Option<String>, stored: Option<&crm_core::Media>, record: crm_core::MediaId| Attachment {
                state,
                provider_media_id: media.location.clone(),
                mime_type: Some(stored.map(|s| s.content_type.clone()).unwrap_or_else(|| mime.clone())),
                sha256: stored.and_then(|s| s.sha256.clone()),
                size: stored.and_then(|s| s.size),
                key: stored.and_then(|s| s.key.clone()),
                error,
                media_id: Some(record),
            };
        let account = message.account_id;
        let result = async {
            let record = library.begin_inbound(message, &mime, &name).await?;
            crm.record_attachment(account, message.id, attachment(AttachmentState::Pending, None, None, record.id))
                .await?;
            let downloaded = self.download(channel.id, page_key).await;
            let stored = match downloaded {
                Ok((bytes, page_mime)) => {
                    let mime = page_mime.unwrap_or_else(|| mime.clone());
                    library.store_inbound(record.clone(), &mime, INBOUND_FOLDER, once(bytes)).await
                }
                Err(e) => Err(e),
            };
            let settled = match stored {
                Ok(s) => attachment(AttachmentState::Stored, None, Some(&s), s.id),
                Err(e) => {
                    let reason: String = e.to_string().chars().take(500).collect();
                    library.fail(record.clone(), &reason).await?;
                    attachment(AttachmentState::Failed, Some(reason), None, record.id)
                }
            };
            crm.record_attachment(account, message.id, settled).await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = result.await {
            tracing::warn!(channel = %channel.id, error = %e, "whatsapp web: an inbound file was not kept");
        }
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

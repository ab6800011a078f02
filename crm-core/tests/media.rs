//! The media library over the memory stores: retention (the `media.retention`
//! job), erasure with the contact (`contact.deleted`), deletion, and the
//! message's attachment following the file's state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use crm_core::media::{MediaEraser, MediaLibrary, MediaRetention, RETENTION_JOB, Upload};
use crm_core::ports::media::once;
use crm_core::workers::{EventWorker, JobWorker, Outcome};
use crm_core::{
    Attachment, AttachmentState, Crm, EventStore, InboundMessage, JobStore, ManualClock, MediaKind, MediaRecordStore,
    MediaRef, MediaState, MediaStore, MemoryMediaStore, MemoryStore, MessageContent, RecordingMessenger,
};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
const DAY: Duration = Duration::from_secs(86_400);

struct World {
    crm: Crm,
    store: Arc<MemoryStore>,
    files: Arc<MemoryMediaStore>,
    library: MediaLibrary,
    clock: ManualClock,
}

fn world() -> World {
    let clock = ManualClock::new(chrono::Utc::now());
    let shared: Arc<dyn crm_core::Clock> = Arc::new(clock.clone());
    let store = Arc::new(MemoryStore::with_clock(shared.clone()));
    let crm = Crm::builder()
        .store(store.clone())
        .messenger(Arc::new(RecordingMessenger::new()))
        .clock(shared)
        .build()
        .unwrap();
    let files = Arc::new(MemoryMediaStore::new());
    let library = MediaLibrary::new(&crm, files.clone());
    World { crm, store, files, library, clock }
}

/// An inbound photo whose file was copied (as the WhatsApp fetcher does).
async fn inbound_photo(w: &World, account: crm_core::AccountId, from: &str) -> (crm_core::Message, crm_core::Media) {
    let inbound = InboundMessage {
        from: from.into(),
        whatsapp_id: None,
        profile_name: Some("Ana".into()),
        provider_message_id: Some(format!("wamid.{from}")),
        content: MessageContent::Media {
            kind: MediaKind::Image,
            media: MediaRef { location: "1003383421387256".into(), mime_type: Some("image/png".into()) },
            caption: None,
            filename: None,
        },
        sent_at: None,
        reply_to: None,
    };
    let message = w.crm.record_inbound(account, inbound).await.unwrap().message;
    let pending = w.library.begin_inbound(&message, "image/png", "photo.png").await.unwrap();
    let stored = w.library.store_inbound(pending, "image/png", "inbound", once(PNG.to_vec())).await.unwrap();
    let attachment = Attachment {
        state: AttachmentState::Stored,
        provider_media_id: "1003383421387256".into(),
        mime_type: Some("image/png".into()),
        sha256: stored.sha256.clone(),
        size: stored.size,
        key: stored.key.clone(),
        error: None,
        media_id: Some(stored.id),
    };
    let message = w.crm.record_attachment(account, message.id, attachment).await.unwrap();
    (message, stored)
}

#[tokio::test]
async fn retention_expires_old_files_and_the_message_says_so() {
    let w = world();
    let account = w.crm.create_account("Loja").await.unwrap().id;
    let (message, old) = inbound_photo(&w, account, "+5511987654321").await;
    assert_eq!((old.state, old.message_id, old.size), (MediaState::Stored, Some(message.id), Some(PNG.len() as u64)));
    w.clock.advance(20 * DAY);
    let upload = Upload { filename: "new.png", content_type: Some("image/png") };
    let recent = w.library.upload(account, upload, once(PNG.to_vec())).await.unwrap();
    w.clock.advance(11 * DAY);

    let retention = MediaRetention::new(w.library.clone(), 30 * DAY, Duration::from_secs(3600));
    retention.schedule().await.unwrap();
    retention.schedule().await.unwrap(); // once per installation: the second is a no-op
    let claimed = w.store.claim_jobs(&[RETENTION_JOB.to_owned()], 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.len(), 1, "one sweep job");
    let outcome = retention.run(&claimed[0].job).await;
    assert!(matches!(outcome, Outcome::Defer { after } if after == Duration::from_secs(3600)), "{outcome:?}");

    let expired = w.store.get_media(account, old.id).await.unwrap();
    assert_eq!(expired.state, MediaState::Expired, "31 days old: expired");
    assert_eq!(expired.error.as_deref(), Some("deleted after the retention period"));
    let gone = w.files.head(account, old.key.as_deref().unwrap()).await.unwrap_err();
    assert!(matches!(gone, crm_core::Error::NotFound { .. }), "the bytes are gone");
    let a = w.crm.get_message(account, message.id).await.unwrap().attachment.unwrap();
    assert_eq!((a.state, a.key, a.media_id), (AttachmentState::Expired, None, Some(old.id)), "the message says so");

    let kept = w.store.get_media(account, recent.id).await.unwrap();
    assert_eq!(kept.state, MediaState::Stored, "11 days old: kept");
    assert_eq!(w.files.get(account, kept.key.as_deref().unwrap()).await.unwrap().bytes, PNG);
    assert_eq!(retention.sweep().await.unwrap(), 0, "nothing more to expire");
}

#[tokio::test]
async fn deleting_a_contact_deletes_its_media() {
    let w = world();
    let account = w.crm.create_account("Loja").await.unwrap().id;
    let (message, ana_photo) = inbound_photo(&w, account, "+5511987654321").await;
    let (_, bia_photo) = inbound_photo(&w, account, "+5511912345678").await;

    w.crm.delete_contact(account, message.contact_id).await.unwrap();
    let eraser = MediaEraser::new(w.library.clone());
    let events = w.store.list_events(account, None, 1000).await.unwrap();
    let deleted = events.iter().find(|e| e.event_type.as_str() == "contact.deleted").expect("contact.deleted");
    assert!(eraser.events().matches(&deleted.event_type));
    assert!(matches!(eraser.handle(deleted, 1, None).await, Outcome::Done));
    // At-least-once: handling it again changes nothing.
    assert!(matches!(eraser.handle(deleted, 2, None).await, Outcome::Done));

    let erased = w.store.get_media(account, ana_photo.id).await.unwrap();
    assert_eq!((erased.state, erased.error.as_deref()), (MediaState::Deleted, Some("deleted with its contact")));
    assert!(w.files.head(account, ana_photo.key.as_deref().unwrap()).await.is_err(), "Ana's file is gone");
    let kept = w.store.get_media(account, bia_photo.id).await.unwrap();
    assert_eq!(kept.state, MediaState::Stored, "another contact's file stays");
    assert_eq!(w.files.len(), 1);
}

#[tokio::test]
async fn deleted_files_have_no_url_and_cannot_be_opened() {
    let w = world();
    let account = w.crm.create_account("Loja").await.unwrap().id;
    let upload = Upload { filename: "a.png", content_type: Some("image/png") };
    let media = w.library.upload(account, upload, once(PNG.to_vec())).await.unwrap();
    assert_eq!(w.library.open(account, media.id).await.unwrap().1.info.size, PNG.len() as u64);
    let deleted = w.library.delete(account, media.id).await.unwrap();
    assert_eq!(deleted.state, MediaState::Deleted);
    assert_eq!(w.library.delete(account, media.id).await.unwrap(), deleted, "deleting again changes nothing");
    let err = w.library.signed_url(account, media.id, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, crm_core::Error::Conflict { .. }), "{err}");
    assert!(matches!(w.library.open(account, media.id).await.unwrap_err(), crm_core::Error::Conflict { .. }));
    assert!(w.files.is_empty());
    // Too large for its kind: refused while streaming, nothing kept, no record.
    let small = MediaLibrary::new(&w.crm, w.files.clone())
        .with_limits(crm_core::media::MediaLimits { image: 10, ..Default::default() });
    let upload = Upload { filename: "b.png", content_type: Some("image/png") };
    let err = small.upload(account, upload, once(PNG.to_vec())).await.unwrap_err();
    assert!(matches!(err, crm_core::Error::TooLarge { limit: 10, .. }), "{err}");
    assert!(w.files.is_empty());
}

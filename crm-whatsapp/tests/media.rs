//! Inbound media against the local Graph API mock: `GET /{media-id}` then
//! the URL it answers, both with the token; size bounds, Meta's SHA-256,
//! URLs elsewhere refused, Meta's errors; and the worker that keeps the
//! file in a media store and records it on the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crm_core::secrets::Credentials;
use crm_core::workers::Runtime;
use crm_core::{
    AttachmentState, Error, InboundMessage, MediaKind, MediaOrigin, MediaRef, MediaState, MediaStore, MemoryMediaStore,
    MemoryStore, MessageContent, NewChannel, Store,
};
use crm_whatsapp::{CloudApiMessenger, MediaFetcher};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{GraphMock, Reply};

const TOKEN: &str = "EAAGmedia-token";
const PNID: &str = "106540352242922";
const BYTES: &str = "\u{ff}JPEG-BYTES-OF-A-PHOTO";

fn messenger(mock: &GraphMock) -> CloudApiMessenger {
    support::messenger_for(mock, PNID, TOKEN)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Meta's answer to `GET /{media-id}` (the documented shape).
fn media_url(mock: &GraphMock, id: &str, size: Option<u64>, hash: &str) -> serde_json::Value {
    let mut v = json!({
        "messaging_product": "whatsapp",
        "url": format!("{}/whatsapp_business/attachments/?mid={id}&ext=1750000000&hash=ATu", mock.base_url()),
        "mime_type": "image/jpeg",
        "sha256": hash,
        "id": id,
    });
    if let Some(s) = size {
        v["file_size"] = json!(s.to_string());
    }
    v
}

fn code(e: &Error) -> (bool, Option<String>) {
    match e {
        Error::Provider { transient, code, .. } => (*transient, code.clone()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn media_is_downloaded_in_two_calls_with_the_token() {
    let mock = GraphMock::start().await;
    let m = messenger(&mock);
    let len = BYTES.len() as u64;
    mock.then(Reply::Json(200, media_url(&mock, "1003383421387256", Some(len), &sha(BYTES.as_bytes()))));
    mock.then(Reply::Raw(200, BYTES));
    let file = m.download_media("1003383421387256", 1024).await.unwrap();
    assert_eq!(file.bytes, BYTES.as_bytes());
    assert_eq!((file.mime_type.as_str(), file.sha256.clone()), ("image/jpeg", sha(BYTES.as_bytes())));
    let r = mock.requests();
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].method.as_str(), r[0].path.as_str()), ("GET", "/v23.0/1003383421387256"));
    assert_eq!(r[0].query.as_deref(), Some("phone_number_id=106540352242922"));
    assert_eq!(r[1].path, "/whatsapp_business/attachments/");
    assert!(r[1].query.as_deref().unwrap().starts_with("mid=1003383421387256"));
    for req in &r {
        assert_eq!(req.authorization.as_deref(), Some("Bearer EAAGmedia-token"), "both calls carry the token");
    }
}

#[tokio::test]
async fn size_hash_hosts_and_metas_errors_are_handled() {
    let mock = GraphMock::start().await;
    let m = messenger(&mock);
    let hash = sha(BYTES.as_bytes());

    // Meta says it is too large: refused before the download.
    mock.then(Reply::Json(200, media_url(&mock, "1", Some(50_000_000), &hash)));
    let e = m.download_media("1", 1024).await.unwrap_err();
    assert_eq!(code(&e), (false, Some("too_large".into())));
    assert_eq!(mock.count(), 1);

    // Meta gives no size and the body is larger than the bound: cut off.
    mock.then(Reply::Json(200, media_url(&mock, "2", None, &hash)));
    mock.then(Reply::Raw(200, BYTES));
    let e = m.download_media("2", 8).await.unwrap_err();
    assert_eq!(code(&e), (false, Some("too_large".into())));

    // Bytes that are not what Meta hashed: transient (downloaded again).
    mock.then(Reply::Json(200, media_url(&mock, "3", None, &sha(b"something else"))));
    mock.then(Reply::Raw(200, BYTES));
    let e = m.download_media("3", 1024).await.unwrap_err();
    assert_eq!(code(&e), (true, Some("sha256_mismatch".into())));

    // A URL elsewhere never gets the token.
    let before = mock.count();
    let mut foreign = media_url(&mock, "4", None, &hash);
    foreign["url"] = json!("https://attacker.example/steal");
    mock.then(Reply::Json(200, foreign));
    let e = m.download_media("4", 1024).await.unwrap_err();
    assert_eq!(code(&e), (false, Some("media_url".into())));
    assert_eq!(mock.count(), before + 1, "only the metadata call was made");

    // Meta's errors: an unknown (expired) media id is permanent, a 500 transient.
    mock.then(Reply::Error { status: 400, code: 100, message: "Unsupported get request", retry_after: None });
    assert!(!m.download_media("5", 1024).await.unwrap_err().is_transient());
    mock.then(Reply::Error { status: 500, code: 1, message: "An unknown error occurred", retry_after: None });
    assert!(m.download_media("6", 1024).await.unwrap_err().is_transient());
    // A malformed id never reaches Meta.
    let before = mock.count();
    assert!(matches!(m.download_media("../me", 1024).await, Err(Error::Validation { .. })));
    assert_eq!(mock.count(), before);
}

#[tokio::test]
async fn the_worker_keeps_inbound_media_and_records_it_on_the_message() {
    let mock = GraphMock::start().await;
    let store = Arc::new(MemoryStore::new());
    let crm = support::crm_over(store.clone());
    let account = crm.create_account("Loja").await.unwrap().id;
    let mut credentials = Credentials::new();
    credentials.insert("access_token", TOKEN);
    let input = NewChannel {
        kind: "whatsapp-cloud".into(),
        name: "Loja".into(),
        provider_id: Some(PNID.into()),
        settings: Some(json!({ "base_url": mock.base_url(), "max_media_bytes": 1024 })),
        credentials: Some(credentials),
        ..Default::default()
    };
    let channel = crm.create_channel(account, input).await.unwrap();
    let media = Arc::new(MemoryMediaStore::new());
    let fetcher = MediaFetcher::new(crm.clone(), media.clone(), crm_whatsapp::http_client().unwrap());
    let store_dyn: Arc<dyn Store> = store.clone();
    let workers = Runtime::builder(store_dyn)
        .event_worker(Arc::new(fetcher), MediaFetcher::options())
        .build()
        .start()
        .await
        .unwrap();

    let photo = |pid: &str, media_id: &str| InboundMessage {
        from: "5511987654321".into(),
        whatsapp_id: Some("5511987654321".into()),
        profile_name: Some("Ana".into()),
        provider_message_id: Some(pid.into()),
        content: MessageContent::Media {
            kind: MediaKind::Image,
            media: MediaRef { location: media_id.into(), mime_type: Some("image/jpeg".into()) },
            caption: Some("Olha".into()),
            filename: None,
        },
        sent_at: None,
        reply_to: None,
    };
    let wait = |id| {
        let crm = crm.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let m = crm.get_message(account, id).await.unwrap();
                let settled = m.attachment.as_ref().is_some_and(|a| a.state != AttachmentState::Pending);
                if settled || Instant::now() > deadline {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    mock.then(Reply::Json(200, media_url(&mock, "1003383421387256", None, &sha(BYTES.as_bytes()))));
    mock.then(Reply::Raw(200, BYTES));
    // The webhook's work is only to record the message; the download happens later.
    let stored = crm.record_inbound_via(&channel, photo("wamid.IMG1", "1003383421387256")).await.unwrap().message;
    assert!(stored.attachment.is_none());
    let got = wait(stored.id).await;
    let a = got.attachment.expect("attachment recorded");
    assert_eq!(a.state, AttachmentState::Stored);
    assert_eq!(
        (a.provider_media_id.as_str(), a.mime_type.as_deref(), a.size, a.sha256.clone()),
        ("1003383421387256", Some("image/jpeg"), Some(BYTES.len() as u64), Some(sha(BYTES.as_bytes())))
    );
    let key = a.key.expect("kept under a key");
    assert!(key.starts_with(&format!("account/{account}/inbound/")) && key.ends_with("-1003383421387256.jpg"));
    assert_eq!(media.get(account, &key).await.unwrap().bytes, BYTES.as_bytes());
    // The media record: stored, linked to the message and its contact, with the same key and hash.
    let record = crm.store().get_media(account, a.media_id.expect("the record's id")).await.unwrap();
    assert_eq!(
        (record.state, record.origin, record.key.as_deref(), record.message_id, record.contact_id),
        (MediaState::Stored, MediaOrigin::Inbound, Some(key.as_str()), Some(got.id), Some(got.contact_id))
    );
    assert_eq!((record.size, record.sha256), (Some(BYTES.len() as u64), Some(sha(BYTES.as_bytes()))));

    // Meta refuses (an expired id): recorded as failed, nothing kept.
    mock.then(Reply::Error { status: 400, code: 100, message: "Unsupported get request", retry_after: None });
    let stored = crm.record_inbound_via(&channel, photo("wamid.IMG2", "999")).await.unwrap().message;
    let a = wait(stored.id).await.attachment.expect("failure recorded");
    assert_eq!((a.state, a.key), (AttachmentState::Failed, None));
    assert!(a.error.unwrap().contains("Unsupported get request"));
    let record = crm.store().get_media(account, a.media_id.expect("the record's id")).await.unwrap();
    assert_eq!(record.state, MediaState::Failed, "the media record says it failed");
    assert!(record.error.unwrap().contains("Unsupported get request"));
    // Text messages are not touched.
    let text = InboundMessage { content: MessageContent::text("oi"), ..photo("wamid.T1", "x") };
    let t = crm.record_inbound_via(&channel, text).await.unwrap().message;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(crm.get_message(account, t.id).await.unwrap().attachment.is_none());
    workers.shutdown(Duration::from_secs(2)).await;
    assert_eq!(media.len(), 1);
    let events = crm.store().list_events(account, None, 1000).await.unwrap();
    // Each media message: pending, then stored or failed.
    assert_eq!(events.iter().filter(|e| e.event_type.as_str() == "message.updated").count(), 4);
}

/// A PNG's first bytes (what `infer` recognises).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

#[tokio::test]
async fn a_stored_file_is_uploaded_to_meta_then_sent_by_its_id() {
    use crm_core::media::{MediaLibrary, Upload};
    use crm_core::{AccountId, Messenger, OutboundMessage, Phone};
    let mock = GraphMock::start().await;
    let store = Arc::new(MemoryStore::new());
    let crm = support::crm_over(store.clone());
    let account = crm.create_account("Loja").await.unwrap().id;
    let library = MediaLibrary::new(&crm, Arc::new(MemoryMediaStore::new()));
    let upload = Upload { filename: "logo.png", content_type: Some("image/png") };
    let logo = library.upload(account, upload, crm_core::ports::media::once(PNG.to_vec())).await.unwrap();
    let messenger = CloudApiMessenger::builder()
        .phone_number_id(PNID)
        .access_token(TOKEN)
        .base_url(mock.base_url())
        .timeout(Duration::from_secs(2))
        .media_library(library.clone())
        .build()
        .unwrap();
    let outbound = |account: AccountId, location: String| OutboundMessage {
        account_id: account,
        message_id: crm_core::MessageId::new(),
        to: Phone::parse("+5511987654321").unwrap(),
        whatsapp_id: None,
        content: MessageContent::Media {
            kind: MediaKind::Image,
            media: MediaRef { location, mime_type: None },
            caption: Some("Nossa marca".into()),
            filename: None,
        },
        new_recipient: false,
        reply_to: None,
    };

    // Meta's documented answer to POST /{phone-number-id}/media.
    mock.then(Reply::Json(200, json!({ "id": "1037543291543636" })));
    let receipt = messenger.send(&outbound(account, format!("media:{}", logo.id))).await.unwrap();
    assert!(receipt.provider_message_id.starts_with("wamid."));
    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "the upload, then the send");
    let up = &requests[0];
    assert_eq!((up.method.as_str(), up.path.as_str()), ("POST", format!("/v23.0/{PNID}/media").as_str()));
    assert_eq!(up.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert!(up.content_type.as_deref().unwrap_or("").starts_with("multipart/form-data; boundary="));
    let raw = String::from_utf8_lossy(&up.raw);
    for part in
        ["name=\"messaging_product\"\r\n\r\nwhatsapp", "name=\"type\"\r\n\r\nimage/png", "filename=\"logo.png\""]
    {
        assert!(raw.contains(part), "the form has {part:?}: {raw}");
    }
    assert!(up.raw.windows(PNG.len()).any(|w| w == PNG), "the file's bytes are in the form");
    let send = &requests[1];
    assert_eq!(send.path, format!("/v23.0/{PNID}/messages"));
    assert_eq!(send.body["type"], "image");
    assert_eq!(send.body["image"], json!({ "id": "1037543291543636", "caption": "Nossa marca" }));

    // Meta's 5xx on the upload is transient (the dispatcher retries); nothing is sent.
    mock.then(Reply::Error { status: 500, code: 1, message: "An unknown error occurred", retry_after: None });
    let err = messenger.send(&outbound(account, format!("media:{}", logo.id))).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(mock.count(), 3);

    // Another account's id, a deleted file, a malformed id: permanent, Meta never called.
    let err = messenger.send(&outbound(AccountId::new(), format!("media:{}", logo.id))).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    library.delete(account, logo.id).await.unwrap();
    let err = messenger.send(&outbound(account, format!("media:{}", logo.id))).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }) && err.is_permanent(), "{err}");
    let err = messenger.send(&outbound(account, "media:../../etc".into())).await.unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err}");
    // Without a library, `media:` cannot be sent.
    let bare = support::messenger_for(&mock, PNID, TOKEN);
    let err = bare.send(&outbound(account, format!("media:{}", logo.id))).await.unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err}");
    assert_eq!(mock.count(), 3, "no further calls to Meta");
}

//! The [`MediaStore`](crate::MediaStore) conformance suite: every adapter's
//! tests call [`run_all`].

use bytes::Bytes;
use std::time::Duration;

use crate::{AccountId, Error, MediaFile, MediaStore, NewMedia, Result};

fn media<'a>(folder: &'a str, name: &'a str, bytes: &[u8]) -> NewMedia<'a> {
    NewMedia { folder, name, content_type: "image/jpeg", bytes: bytes.to_vec() }
}

/// Runs every behaviour of the suite against `store`.
pub async fn run_all(store: &dyn MediaStore) {
    put_get_roundtrip(store).await;
    keys_belong_to_their_account(store).await;
    hostile_names_stay_in_their_folder(store).await;
    streamed_put_reads_back(store).await;
    failed_stream_keeps_nothing(store).await;
    head_list_delete(store).await;
    signed_urls(store).await;
}

/// What is put is read back with its content type; each put gets its own key.
pub async fn put_get_roundtrip(store: &dyn MediaStore) {
    let a = AccountId::new();
    let key = store.put(a, media("inbound", "foto.jpg", b"\xff\xd8\xff")).await.expect("put");
    assert!(key.starts_with(&format!("account/{a}/inbound/")), "[media] key names account and folder: {key}");
    assert!(key.ends_with("-foto.jpg"), "[media] key ends with the name: {key}");
    let got = store.get(a, &key).await.expect("get");
    assert_eq!(
        (got.key.as_str(), got.content_type.as_str(), got.bytes.as_slice()),
        (key.as_str(), "image/jpeg", &b"\xff\xd8\xff"[..])
    );
    let again = store.put(a, media("inbound", "foto.jpg", b"other")).await.expect("put");
    assert_ne!(again, key, "[media] the same name twice gets two keys");
    assert_eq!(store.get(a, &key).await.expect("get").bytes, b"\xff\xd8\xff", "[media] nothing overwritten");
    let empty = store.put(a, media("inbound", "empty.bin", b"")).await.expect("an empty file");
    assert!(store.get(a, &empty).await.expect("get").bytes.is_empty(), "[media] an empty file reads back empty");
}

/// Another account's key, a key never written and a malformed one are NotFound.
pub async fn keys_belong_to_their_account(store: &dyn MediaStore) {
    let a = AccountId::new();
    let key = store.put(a, media("inbound", "x.jpg", b"x")).await.expect("put");
    let other = store.get(AccountId::new(), &key).await.expect_err("another account");
    assert!(matches!(other, Error::NotFound { .. }), "[media] another account's key is NotFound, got {other}");
    let missing = format!("account/{a}/inbound/0193a9f2-0000-7000-8000-000000000000-x.jpg");
    assert!(matches!(store.get(a, &missing).await, Err(Error::NotFound { .. })), "[media] a missing key");
    for bad in [format!("account/{a}/../x"), format!("account/{a}/inbound/../../etc"), "/etc/passwd".to_owned()] {
        assert!(matches!(store.get(a, &bad).await, Err(Error::NotFound { .. })), "[media] malformed key {bad}");
    }
}

/// Folder and file names from outside are reduced to safe characters.
pub async fn hostile_names_stay_in_their_folder(store: &dyn MediaStore) {
    let a = AccountId::new();
    let key = store.put(a, media("../../etc", "../../passwd\0 é.jpg", b"x")).await.expect("put");
    let rest = key.strip_prefix(&format!("account/{a}/")).expect("the account's prefix");
    assert_eq!(rest.split('/').count(), 2, "[media] one folder and one name: {key}");
    assert!(!key.contains(".."), "[media] no parent steps: {key}");
    assert_eq!(store.get(a, &key).await.expect("get").bytes, b"x", "[media] readable under its key");
}

/// A file streamed in many chunks (more than one multipart part on S3) reads back whole and in order.
pub async fn streamed_put_reads_back(store: &dyn MediaStore) {
    let a = AccountId::new();
    let chunk: Vec<u8> = (0..=255u8).cycle().take(256 * 1024).collect();
    let chunks: Vec<Result<Bytes>> = (0..26).map(|_| Ok(Bytes::from(chunk.clone()))).collect();
    let total = chunk.len() * chunks.len();
    let file = MediaFile { folder: "uploads", name: "big.bin", content_type: "application/pdf" };
    let key = store.put_stream(a, file, Box::pin(futures_util::stream::iter(chunks))).await.expect("put_stream");
    let info = store.head(a, &key).await.expect("head");
    assert_eq!((info.size, info.content_type.as_str()), (total as u64, "application/pdf"), "[media] head");
    let download = store.get_stream(a, &key).await.expect("get_stream");
    assert_eq!(download.info, info, "[media] get_stream reports what head does");
    let bytes = crate::ports::media::collect(download.body, u64::MAX).await.expect("read");
    assert_eq!(bytes.len(), total, "[media] every byte back");
    assert!(bytes.chunks(chunk.len()).all(|c| c == chunk.as_slice()), "[media] in order");
}

/// A put whose stream fails keeps nothing and returns the stream's error.
pub async fn failed_stream_keeps_nothing(store: &dyn MediaStore) {
    let a = AccountId::new();
    let big: Vec<u8> = vec![7; 3 * 1024 * 1024];
    let chunks: Vec<Result<Bytes>> =
        vec![Ok(Bytes::from(big.clone())), Ok(Bytes::from(big)), Err(Error::TooLarge { what: "media", limit: 1 })];
    let file = MediaFile { folder: "uploads", name: "cut.bin", content_type: "application/pdf" };
    let err = store.put_stream(a, file, Box::pin(futures_util::stream::iter(chunks))).await.expect_err("cut");
    assert!(matches!(err, Error::TooLarge { .. }), "[media] the stream's error comes back, got {err}");
    assert!(store.list(a, None).await.expect("list").is_empty(), "[media] nothing kept after a failed put");
}

/// Head, list and delete see only the caller's own files.
pub async fn head_list_delete(store: &dyn MediaStore) {
    let (a, b) = (AccountId::new(), AccountId::new());
    let k1 = store.put(a, media("inbound", "1.jpg", b"one")).await.expect("put");
    let k2 = store.put(a, media("uploads", "2.jpg", b"two!")).await.expect("put");
    let kb = store.put(b, media("inbound", "b.jpg", b"b")).await.expect("put");
    let info = store.head(a, &k2).await.expect("head");
    assert_eq!((info.key.as_str(), info.content_type.as_str(), info.size), (k2.as_str(), "image/jpeg", 4));
    assert!(matches!(store.head(b, &k2).await, Err(Error::NotFound { .. })), "[media] head of another's key");

    let all: Vec<String> = store.list(a, None).await.expect("list").into_iter().map(|m| m.key).collect();
    let mut want = vec![k1.clone(), k2.clone()];
    want.sort();
    assert_eq!(all, want, "[media] list: the account's files in key order, never another's");
    let inbound = store.list(a, Some("inbound")).await.expect("list");
    assert_eq!(inbound.iter().map(|m| (m.key.as_str(), m.size)).collect::<Vec<_>>(), [(k1.as_str(), 3)]);
    assert!(store.list(a, Some("../../")).await.expect("list").is_empty(), "[media] a hostile folder lists nothing");

    let refused = store.delete(b, &k1).await.expect_err("another account's delete");
    assert!(matches!(refused, Error::NotFound { .. }), "[media] delete of another's key is NotFound");
    assert_eq!(store.get(a, &k1).await.expect("still there").bytes, b"one", "[media] nothing deleted");
    store.delete(a, &k1).await.expect("delete");
    assert!(matches!(store.get(a, &k1).await, Err(Error::NotFound { .. })), "[media] gone after delete");
    assert!(matches!(store.head(a, &k1).await, Err(Error::NotFound { .. })), "[media] head after delete");
    store.delete(a, &k1).await.expect("deleting again succeeds");
    assert_eq!(store.list(a, None).await.expect("list").len(), 1, "[media] one left");
    assert_eq!(store.get(b, &kb).await.expect("b's file").bytes, b"b", "[media] the other account untouched");
}

/// Signed URLs: for the caller's existing files only, with a bounded lifetime.
pub async fn signed_urls(store: &dyn MediaStore) {
    let a = AccountId::new();
    let key = store.put(a, media("inbound", "s.jpg", b"signed")).await.expect("put");
    let before = chrono::Utc::now();
    let url = store.signed_url(a, &key, Duration::from_secs(300)).await.expect("signed url");
    assert!(url.url.starts_with("http"), "[media] an http(s) URL: {}", url.url);
    let secs = (url.expires_at - before).num_seconds();
    assert!((298..=301).contains(&secs), "[media] expires after the ttl, got {secs} s");
    let other = store.put(a, media("inbound", "t.jpg", b"other")).await.expect("put");
    let url2 = store.signed_url(a, &other, Duration::from_secs(300)).await.expect("signed url");
    assert_ne!(url.url, url2.url, "[media] one URL per key");
    let refused = store.signed_url(AccountId::new(), &key, Duration::from_secs(60)).await;
    assert!(matches!(refused, Err(Error::NotFound { .. })), "[media] another account's key is NotFound");
    let missing = format!("account/{a}/inbound/0193a9f2-0000-7000-8000-000000000000-x.jpg");
    let refused = store.signed_url(a, &missing, Duration::from_secs(60)).await;
    assert!(matches!(refused, Err(Error::NotFound { .. })), "[media] a missing key is NotFound");
    for ttl in [Duration::ZERO, Duration::from_secs(8 * 24 * 3600)] {
        let refused = store.signed_url(a, &key, ttl).await;
        assert!(matches!(refused, Err(Error::Validation { .. })), "[media] ttl {ttl:?} refused");
    }
}

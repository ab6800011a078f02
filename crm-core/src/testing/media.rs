//! The [`MediaStore`](crate::MediaStore) conformance suite: every adapter's
//! tests call [`run_all`].

use crate::{AccountId, Error, MediaStore, NewMedia};

fn media<'a>(folder: &'a str, name: &'a str, bytes: &[u8]) -> NewMedia<'a> {
    NewMedia { folder, name, content_type: "image/jpeg", bytes: bytes.to_vec() }
}

/// Runs every behaviour of the suite against `store`.
pub async fn run_all(store: &dyn MediaStore) {
    put_get_roundtrip(store).await;
    keys_belong_to_their_account(store).await;
    hostile_names_stay_in_their_folder(store).await;
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

//! The media conformance suite against `ObjectMediaStore`: a local folder,
//! memory, and (feature `s3`) a real S3-compatible server named by
//! `CRM_TEST_S3_URL` (moto in `.ci/run`; bucket `CRM_TEST_S3_BUCKET`).

use crm_core::ports::media::{TokenRefusal, UrlSigner};
use crm_core::{AccountId, MediaStore, NewMedia, testing};
use crm_storage::ObjectMediaStore;
use std::time::Duration;

fn signer() -> UrlSigner {
    UrlSigner::new(&[42; 32], "http://127.0.0.1:1/media").expect("signer")
}

fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("crm-media-{}", uuid::Uuid::now_v7()))
}

#[tokio::test]
async fn local_media_store_passes_the_media_suite() {
    let dir = temp_dir();
    let store = ObjectMediaStore::local(&dir).expect("local").with_signer(signer());
    testing::media::run_all(&store).await;
    let mut top: Vec<String> =
        std::fs::read_dir(&dir).expect("dir").map(|d| d.expect("entry").file_name().to_string_lossy().into()).collect();
    top.sort();
    assert_eq!(top, ["account", "types"], "files under `account/`, their types under `types/`; nothing else");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn memory_object_store_passes_the_media_suite() {
    testing::media::run_all(&ObjectMediaStore::memory().with_signer(signer())).await;
}

#[tokio::test]
async fn local_signed_urls_carry_a_verifiable_token_for_the_key() {
    let dir = temp_dir();
    let store = ObjectMediaStore::local(&dir).expect("local").with_signer(signer());
    let a = AccountId::new();
    let key = store
        .put(
            a,
            NewMedia { folder: "uploads", name: "a.pdf", content_type: "application/pdf", bytes: b"%PDF-".to_vec() },
        )
        .await
        .expect("put");
    let url = store.signed_url(a, &key, Duration::from_secs(60)).await.expect("url");
    let token = url.url.strip_prefix("http://127.0.0.1:1/media/").expect("under the signer's base");
    let now = chrono::Utc::now();
    assert_eq!(signer().verify(token, now).as_deref(), Ok(key.as_str()));
    assert_eq!(signer().verify(token, url.expires_at), Err(TokenRefusal::Expired));
    let other = UrlSigner::new(&[7; 32], "http://x/media").expect("signer");
    assert_eq!(other.verify(token, now), Err(TokenRefusal::Invalid), "another secret refuses it");
    let mut tampered = token.to_owned();
    tampered.replace_range(0..1, if token.starts_with('9') { "8" } else { "9" });
    assert_eq!(signer().verify(&tampered, now), Err(TokenRefusal::Invalid), "a changed expiry refuses it");
    let unsigned = ObjectMediaStore::local(&dir).expect("local");
    let refused = unsigned.signed_url(a, &key, Duration::from_secs(60)).await.expect_err("no signer");
    assert!(matches!(refused, crm_core::Error::Config { .. }), "no signer: a configuration error, got {refused}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_hostile_path_never_reaches_outside_the_folder() {
    let dir = temp_dir();
    let store = ObjectMediaStore::local(dir.join("media")).expect("local");
    std::fs::create_dir_all(dir.join("media")).expect("dir");
    std::fs::write(dir.join("secret.txt"), b"secret").expect("write");
    let a = AccountId::new();
    for key in [
        format!("account/{a}/../../secret.txt"),
        format!("account/{a}/x/../../../secret.txt"),
        format!("account/{a}/%2e%2e/secret.txt"),
        "../secret.txt".to_owned(),
        format!("account/{a}/inbound//secret.txt"),
    ] {
        assert!(matches!(store.get(a, &key).await, Err(crm_core::Error::NotFound { .. })), "{key}");
        assert!(matches!(store.delete(a, &key).await, Err(crm_core::Error::NotFound { .. })), "{key}");
    }
    assert!(dir.join("secret.txt").exists(), "nothing outside the folder was touched");
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(feature = "s3")]
fn s3_store(test: &str) -> Option<ObjectMediaStore> {
    let url = testing::service_url("CRM_TEST_S3_URL", test)?;
    let bucket = std::env::var("CRM_TEST_S3_BUCKET").unwrap_or_else(|_| "crm-test".into());
    let settings = crm_storage::S3Settings {
        bucket,
        region: "us-east-1".into(),
        endpoint: Some(url),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("moto-secret-value".into()),
    };
    Some(ObjectMediaStore::s3(&settings).expect("s3 store"))
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_media_store_passes_the_media_suite() {
    let Some(store) = s3_store("s3_media_store_passes_the_media_suite") else { return };
    testing::media::run_all(&store).await;
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_presigned_urls_read_the_file_with_its_type() {
    let Some(store) = s3_store("s3_presigned_urls_read_the_file_with_its_type") else { return };
    let a = AccountId::new();
    let new =
        NewMedia { folder: "uploads", name: "doc.pdf", content_type: "application/pdf", bytes: b"%PDF-1.7".to_vec() };
    let key = store.put(a, new).await.expect("put");
    let url = store.signed_url(a, &key, Duration::from_secs(60)).await.expect("presign");
    assert!(url.url.contains("X-Amz-Signature="), "a SigV4 presigned URL");
    assert!(!url.url.contains("moto-secret-value"), "never the secret");
    let client = reqwest::Client::new();
    let res = client.get(&url.url).send().await.expect("GET");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf", "the type kept with the object");
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"%PDF-1.7");
    // moto does not check signatures (S3 does): the URL's lifetime is what can be asserted here.
    assert!(url.url.contains("X-Amz-Expires=60"), "the URL carries its lifetime: {}", url.url);
}

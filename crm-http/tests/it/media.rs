//! Media: multipart upload streamed to the store, type checked against the
//! bytes, size limits, metadata, signed URLs served by the server (tampered
//! and expired links), deletion, and tenancy; in memory and on a server
//! over SQLite and PostgreSQL (local media folder).

use crm_core::Role;
use serde_json::Value;

use crate::helpers::{Api, Harness, id, temp_dir};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const BOUNDARY: &str = "crm-media-test-boundary";

/// A multipart/form-data body with one `file` part.
fn form(filename: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(api: &Api, token: &str, filename: &str, content_type: &str, bytes: &[u8]) -> crate::helpers::Resp {
    api.post("/api/v1/media")
        .bearer(token)
        .raw(&format!("multipart/form-data; boundary={BOUNDARY}"), form(filename, content_type, bytes))
        .send()
        .await
}

/// The path of a signed URL on this server (`/media/<token>`).
fn signed_path(url: &Value) -> String {
    let url = url["url"].as_str().expect("url");
    let at = url.find("/media/").expect("served under /media/");
    url[at..].to_owned()
}

/// SHA-256 of [`PNG`] (`sha256sum`).
const PNG_SHA256: &str = "4ffd8bb30991e3a6f28d1d03f1aedcd02ccf8e0cc16bb9e969e7bc2bda1ddf03";

pub async fn upload_read_sign_delete(api: &Api, token: &str, other: &str) {
    // Upload: streamed, typed by its bytes, hashed.
    let r = upload(api, token, "../../Logo Final.PNG", "image/png", PNG).await;
    let media = r.ok_json(201);
    let mid = id(&media);
    assert_eq!(r.header("location").as_deref(), Some(format!("/api/v1/media/{mid}").as_str()));
    assert_eq!(
        (&media["state"], &media["origin"], &media["content_type"], &media["size"]),
        (&Value::from("stored"), &Value::from("upload"), &Value::from("image/png"), &Value::from(PNG.len()))
    );
    assert_eq!(media["sha256"], PNG_SHA256);
    assert_eq!(media["filename"], "../../Logo Final.PNG", "the name is kept for display");
    let key = media["key"].as_str().expect("key");
    assert!(key.ends_with("logo_final.png") && !key.contains(".."), "a sanitised key: {key}");
    assert_eq!(key.split('/').count(), 4, "account/<id>/uploads/<name>: {key}");
    assert_eq!(api.get(&format!("/api/v1/media/{mid}")).bearer(token).send().await.ok_json(200), media);

    // A signed URL reads it without an API key.
    let url = api.get(&format!("/api/v1/media/{mid}/url?ttl_secs=120")).bearer(token).send().await.ok_json(200);
    let path = signed_path(&url);
    let file = api.get(&path).send().await;
    file.expect(200);
    assert_eq!(file.body, PNG);
    assert_eq!(file.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(file.header("x-content-type-options").as_deref(), Some("nosniff"));

    // A changed token is refused (403), an expired one is gone (410).
    let mut tampered = path.clone();
    let last = tampered.pop().expect("a character");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    api.get(&tampered).send().await.problem(403, "forbidden");
    api.get("/media/not-a-token").send().await.problem(403, "forbidden");
    let short = api.get(&format!("/api/v1/media/{mid}/url?ttl_secs=1")).bearer(token).send().await.ok_json(200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    api.get(&signed_path(&short)).send().await.problem(410, "expired");
    api.get(&format!("/api/v1/media/{mid}/url?ttl_secs=0")).bearer(token).send().await.problem(422, "validation");
    api.get(&format!("/api/v1/media/{mid}/url?ttl_secs=9999999")).bearer(token).send().await.problem(422, "validation");

    // Another account sees nothing.
    api.get(&format!("/api/v1/media/{mid}")).bearer(other).send().await.problem(404, "not-found");
    api.get(&format!("/api/v1/media/{mid}/url")).bearer(other).send().await.problem(404, "not-found");
    api.delete(&format!("/api/v1/media/{mid}")).bearer(other).send().await.problem(404, "not-found");

    // Delete: the bytes go, the record says so; deleting again answers the same.
    let deleted = api.delete(&format!("/api/v1/media/{mid}")).bearer(token).send().await.ok_json(200);
    assert_eq!(deleted["state"], "deleted");
    assert_eq!(api.delete(&format!("/api/v1/media/{mid}")).bearer(token).send().await.ok_json(200)["state"], "deleted");
    api.get(&path).send().await.problem(404, "not-found");
    api.get(&format!("/api/v1/media/{mid}/url")).bearer(token).send().await.problem(409, "conflict");
}

pub async fn refused_uploads(api: &Api, token: &str) {
    // Mislabelled: PNG bytes said to be a PDF.
    let p = upload(api, token, "invoice.pdf", "application/pdf", PNG).await.problem(422, "validation");
    assert!(p["detail"].as_str().unwrap_or("").contains("image/png"), "{p}");
    // A type WhatsApp does not take, and bytes that are no known type.
    upload(api, token, "a.gif", "image/gif", b"GIF89a\x01\0\x01\0\0\0\0;").await.problem(422, "validation");
    upload(api, token, "run.exe", "application/octet-stream", b"MZ\x90\0\x03\0\0\0").await.problem(422, "validation");
    // An image past the 5 MB limit of its kind.
    let mut big = PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);
    let p = upload(api, token, "huge.png", "image/png", &big).await.problem(413, "payload-too-large");
    assert!(p["detail"].as_str().unwrap_or("").contains("5242880"), "{p}");
    // Not multipart; no `file` part; a malformed body.
    api.post("/api/v1/media")
        .bearer(token)
        .raw("image/png", PNG.to_vec())
        .send()
        .await
        .problem(415, "unsupported-media-type");
    let no_file = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--{BOUNDARY}--\r\n");
    api.post("/api/v1/media")
        .bearer(token)
        .raw(&format!("multipart/form-data; boundary={BOUNDARY}"), no_file.into_bytes())
        .send()
        .await
        .problem(422, "validation");
    api.post("/api/v1/media")
        .bearer(token)
        .raw("multipart/form-data", b"garbage".to_vec())
        .send()
        .await
        .problem(422, "validation");
    api.get("/api/v1/media/not-a-uuid").bearer(token).send().await.problem(400, "bad-request");
}

async fn run(h: &Harness) {
    let (_, token) = h.account(Role::Agent).await;
    let (_, other) = h.account(Role::Admin).await;
    upload_read_sign_delete(&h.api, &token, &other).await;
    refused_uploads(&h.api, &token).await;
    let (_, viewer) = h.account(Role::Viewer).await;
    upload(&h.api, &viewer, "logo.png", "image/png", PNG).await.problem(403, "forbidden");
}

#[tokio::test]
async fn media_in_memory() {
    run(&Harness::memory().await).await;
}

#[tokio::test]
async fn media_on_sqlite_with_the_local_folder() {
    let dir = temp_dir("media");
    let h = Harness::sqlite_with(|c| c.data_dir = dir.clone()).await;
    run(&h).await;
    // Files live under the data folder's `media/account/<id>/uploads/`.
    assert!(dir.join("media").join("account").is_dir(), "the local folder holds the files");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn media_on_postgres() {
    let dir = temp_dir("media-pg");
    let Some(h) = Harness::postgres_with("media_on_postgres", |c| c.data_dir = dir.clone()).await else { return };
    run(&h).await;
}

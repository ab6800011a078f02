//! One test per error status: each answers `application/problem+json` with a
//! stable `type`.

use crm_core::Role;
use serde_json::json;

use crate::helpers::{Harness, contact_body, create_contact, settings};

#[tokio::test]
async fn bad_request_400_for_malformed_json_query_and_path() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    h.api
        .post("/api/v1/contacts")
        .bearer(&token)
        .raw("application/json", b"{\"name\": \"Ana\",".to_vec())
        .send()
        .await
        .problem(400, "bad-request");
    h.api.get("/api/v1/contacts/not-a-uuid").bearer(&token).send().await.problem(400, "bad-request");
    h.api.get("/api/v1/contacts?limit=many").bearer(&token).send().await.problem(400, "bad-request");
    h.api.get("/api/v1/events?after=nope").bearer(&token).send().await.problem(400, "bad-request");
}

#[tokio::test]
async fn unauthorized_401_names_the_scheme() {
    let h = Harness::memory().await;
    let r = h.api.get("/api/v1/contacts").send().await;
    let p = r.problem(401, "unauthorized");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    assert!(p["detail"].as_str().unwrap().contains("Bearer"), "{p}");
}

#[tokio::test]
async fn forbidden_403_for_a_viewer_writing() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Viewer).await;
    let p = h.api.post("/api/v1/contacts").bearer(&token).json(contact_body("Ana", 1)).send().await;
    p.problem(403, "forbidden");
}

#[tokio::test]
async fn not_found_404_for_unknown_routes_and_ids() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    h.api.get("/no/such/route").send().await.problem(404, "not-found");
    h.api.get("/api/v1/nothing-here").bearer(&token).send().await.problem(404, "not-found");
    let id = uuid::Uuid::now_v7();
    let p = h.api.get(&format!("/api/v1/contacts/{id}")).bearer(&token).send().await.problem(404, "not-found");
    assert!(p["detail"].as_str().unwrap().contains("contact"), "{p}");
}

#[tokio::test]
async fn method_not_allowed_405_on_known_routes() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    h.api.put("/api/v1/contacts").bearer(&token).json(json!({})).send().await.problem(405, "method-not-allowed");
    h.api.post("/health").send().await.problem(405, "method-not-allowed");
    h.api.delete("/api/v1/auth/login").send().await.problem(405, "method-not-allowed");
}

#[tokio::test]
async fn conflict_409_for_a_phone_that_exists_in_another_form() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    h.api
        .post("/api/v1/contacts")
        .bearer(&token)
        .json(json!({ "name": "Ana", "phone": "+5511987654321" }))
        .send()
        .await
        .expect(201);
    // The same Brazilian mobile without its 9th digit.
    let p = h
        .api
        .post("/api/v1/contacts")
        .bearer(&token)
        .json(json!({ "name": "Ana again", "phone": "+551187654321" }))
        .send()
        .await
        .problem(409, "conflict");
    assert!(p["detail"].as_str().unwrap().contains("contact"), "{p}");
}

#[tokio::test]
async fn payload_too_large_413_over_the_body_limit() {
    let h = Harness::memory_with(settings(|s| s.body_limit_bytes = 1024), Vec::new()).await;
    let (_, token) = h.account(Role::Admin).await;
    let big = json!({ "name": "A".repeat(4000), "phone": "+5511987654321" });
    h.api.post("/api/v1/contacts").bearer(&token).json(big).send().await.problem(413, "payload-too-large");
    let list = h.api.get("/api/v1/contacts").bearer(&token).send().await.ok_json(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing stored");
    // Under the limit still works.
    create_contact(&h.api, &token, "Ana", 1).await;
}

#[tokio::test]
async fn unsupported_media_type_415_without_json_content_type() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    let body = serde_json::to_vec(&contact_body("Ana", 1)).unwrap();
    h.api
        .post("/api/v1/contacts")
        .bearer(&token)
        .raw("text/plain", body.clone())
        .send()
        .await
        .problem(415, "unsupported-media-type");
    h.api
        .post("/api/v1/auth/login")
        .raw("application/x-www-form-urlencoded", b"email=a&password=b".to_vec())
        .send()
        .await
        .problem(415, "unsupported-media-type");
}

#[tokio::test]
async fn validation_422_names_the_field() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    let p = h
        .api
        .post("/api/v1/contacts")
        .bearer(&token)
        .json(json!({ "name": "Ana", "phone": "12" }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "phone", "{p}");
    let p = h
        .api
        .post("/api/v1/contacts")
        .bearer(&token)
        .json(json!({ "phone": "+5511987654321" }))
        .send()
        .await
        .problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("name"), "{p}");
    let p = h.api.get("/api/v1/contacts?limit=500").bearer(&token).send().await.problem(422, "validation");
    assert_eq!(p["field"], "limit", "{p}");
    let p = h.api.get("/api/v1/contacts?cursor=bogus").bearer(&token).send().await.problem(422, "validation");
    assert_eq!(p["field"], "cursor", "{p}");
}

#[tokio::test]
async fn too_many_requests_429_with_retry_after() {
    let h = Harness::memory_with(settings(|s| s.per_key_per_minute = 1), Vec::new()).await;
    let (_, token) = h.account(Role::Admin).await;
    h.api.get("/api/v1/contacts").bearer(&token).send().await.expect(200);
    let r = h.api.get("/api/v1/contacts").bearer(&token).send().await;
    let p = r.problem(429, "rate-limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(p["retry_after"], retry, "{p}");
}

#[tokio::test]
async fn errors_never_leak_internals() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    let r = h.api.post("/api/v1/contacts").bearer(&token).raw("application/json", b"\x00\xff{".to_vec()).send().await;
    r.problem(400, "bad-request");
    let text = r.text().to_lowercase();
    for leak in ["panicked", "backtrace", "select ", "sqlx", "src/"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_422() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    let channels = h.api.get("/api/v1/channels").bearer(&token).send().await.ok_json(200);
    let cid = channels["items"][0]["id"].as_str().unwrap().to_owned();
    for body in ["[null, null]", "[]", "\"name\"", "42", "null"] {
        let p = h
            .api
            .patch(&format!("/api/v1/channels/{cid}"))
            .bearer(&token)
            .raw("application/json", body.as_bytes().to_vec())
            .send()
            .await
            .problem(422, "validation");
        assert!(p["detail"].as_str().unwrap().contains("JSON object"), "{body}: {p}");
    }
    h.api
        .post("/api/v1/contacts")
        .bearer(&token)
        .raw("application/json", b"[\"Ana\", \"+5511987654321\"]".to_vec())
        .send()
        .await
        .problem(422, "validation");
    h.api
        .post("/api/v1/contacts")
        .bearer(&token)
        .raw("application/json", b"{oops".to_vec())
        .send()
        .await
        .problem(400, "bad-request");
    h.api
        .post("/api/v1/contacts")
        .bearer(&token)
        .raw("text/plain", b"{}".to_vec())
        .send()
        .await
        .problem(415, "unsupported-media-type");
    let ok = h
        .api
        .post("/api/v1/contacts")
        .bearer(&token)
        .raw("application/merge-patch+json; charset=utf-8", br#"{"name":"Ana","phone":"+5511987654321"}"#.to_vec())
        .send()
        .await;
    ok.expect(201);
}

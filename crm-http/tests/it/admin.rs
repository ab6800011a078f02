//! Authentication, roles, users, API keys and login.

use crm_core::Role;
use serde_json::json;
use std::time::Duration;

use crate::helpers::{Api, Harness, settings};

async fn unauthorized(api: &Api, auth: Option<&str>) {
    let mut call = api.get("/api/v1/contacts");
    if let Some(a) = auth {
        call = call.header("authorization", a);
    }
    let r = call.send().await;
    r.problem(401, "unauthorized");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"), "{auth:?}");
}

#[tokio::test]
async fn missing_garbled_revoked_and_expired_keys_are_401() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    h.api.get("/api/v1/contacts").bearer(&token).send().await.expect(200);
    unauthorized(&h.api, None).await;
    unauthorized(&h.api, Some("Bearer")).await;
    unauthorized(&h.api, Some("Bearer ")).await;
    unauthorized(&h.api, Some("Bearer garbage")).await;
    unauthorized(&h.api, Some("Bearer crm_")).await;
    unauthorized(&h.api, Some(&format!("Basic {token}"))).await;
    unauthorized(&h.api, Some(&format!("Bearer {token}x"))).await;
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    unauthorized(&h.api, Some(&format!("Bearer {tampered}"))).await;
    // Scheme names are case-insensitive.
    h.api.get("/api/v1/contacts").header("authorization", &format!("bearer {token}")).send().await.expect(200);

    // Revoked through the API: works up to the revocation, never after.
    let created =
        h.api.post("/api/v1/api-keys").bearer(&token).json(json!({ "name": "temp" })).send().await.ok_json(201);
    let temp = created["token"].as_str().unwrap().to_owned();
    assert_eq!(created["key"]["role"], "agent", "the default role");
    assert!(temp.starts_with("crm_"), "{temp}");
    assert!(!created["key"].to_string().contains(&temp), "the key view never holds the secret");
    h.api.get("/api/v1/contacts").bearer(&temp).send().await.expect(200);
    let kid = created["key"]["id"].as_str().unwrap();
    let revoked = h.api.delete(&format!("/api/v1/api-keys/{kid}")).bearer(&token).send().await.ok_json(200);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    unauthorized(&h.api, Some(&format!("Bearer {temp}"))).await;
    h.api.delete(&format!("/api/v1/api-keys/{kid}")).bearer(&token).send().await.expect(200);
    h.api
        .delete(&format!("/api/v1/api-keys/{}", uuid::Uuid::now_v7()))
        .bearer(&token)
        .send()
        .await
        .problem(404, "not-found");

    let past = crm_core::Clock::now(h.clock.as_ref().unwrap()) - chrono::Duration::hours(1);
    h.api
        .post("/api/v1/api-keys")
        .bearer(&token)
        .json(json!({ "name": "stale", "expires_at": past }))
        .send()
        .await
        .problem(422, "validation");
    h.api.post("/api/v1/api-keys").bearer(&token).json(json!({ "name": "" })).send().await.problem(422, "validation");
    // Expiring: valid until the clock passes its expiry.
    let expires = crm_core::Clock::now(h.clock.as_ref().unwrap()) + chrono::Duration::hours(1);
    let created = h
        .api
        .post("/api/v1/api-keys")
        .bearer(&token)
        .json(json!({ "name": "short", "role": "viewer", "expires_at": expires }))
        .send()
        .await
        .ok_json(201);
    let short = created["token"].as_str().unwrap().to_owned();
    h.api.get("/api/v1/contacts").bearer(&short).send().await.expect(200);
    h.clock.as_ref().unwrap().advance(Duration::from_secs(2 * 3600));
    unauthorized(&h.api, Some(&format!("Bearer {short}"))).await;
    h.api.get("/api/v1/contacts").bearer(&token).send().await.expect(200);

    let listed = h.api.get("/api/v1/api-keys").bearer(&token).send().await.ok_json(200);
    let text = listed.to_string();
    assert!(!text.contains(&temp) && !text.contains(&short) && !text.contains(&token), "no secrets listed");
    assert!(!text.contains("hash"), "no hashes listed: {text}");
    assert_eq!(listed.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn roles_bound_what_a_key_can_do() {
    let h = Harness::memory().await;
    let (a, owner) = h.account(Role::Owner).await;
    let admin = h.key(a, Role::Admin).await;
    let agent = h.key(a, Role::Agent).await;
    let viewer = h.key(a, Role::Viewer).await;

    h.api
        .post("/api/v1/contacts")
        .bearer(&viewer)
        .json(crate::helpers::contact_body("Ana", 1))
        .send()
        .await
        .problem(403, "forbidden");
    h.api.post("/api/v1/api-keys").bearer(&agent).json(json!({ "name": "x" })).send().await.problem(403, "forbidden");
    h.api.get("/api/v1/api-keys").bearer(&agent).send().await.problem(403, "forbidden");
    h.api.get("/api/v1/users").bearer(&viewer).send().await.problem(403, "forbidden");
    let p = h
        .api
        .post("/api/v1/api-keys")
        .bearer(&admin)
        .json(json!({ "name": "x", "role": "owner" }))
        .send()
        .await
        .problem(403, "forbidden");
    assert!(p["detail"].as_str().unwrap().contains("owner"), "{p}");
    h.api
        .post("/api/v1/users")
        .bearer(&admin)
        .json(json!({ "email": "boss@example.com", "name": "Boss", "role": "owner", "password": "correct horse" }))
        .send()
        .await
        .problem(403, "forbidden");
    h.api
        .post("/api/v1/users")
        .bearer(&agent)
        .json(json!({ "email": "a@example.com", "name": "A", "role": "viewer", "password": "correct horse" }))
        .send()
        .await
        .problem(403, "forbidden");
    let keys_before = h.crm().store().list_api_keys(a).await.unwrap().len();
    assert_eq!(keys_before, 4, "no 403 created anything");
    assert!(h.crm().store().list_users(a).await.unwrap().is_empty());

    let k = h
        .api
        .post("/api/v1/api-keys")
        .bearer(&admin)
        .json(json!({ "name": "admin2", "role": "admin" }))
        .send()
        .await
        .ok_json(201);
    assert_eq!(k["key"]["role"], "admin");
    let k = h
        .api
        .post("/api/v1/api-keys")
        .bearer(&owner)
        .json(json!({ "name": "owner2", "role": "owner" }))
        .send()
        .await
        .ok_json(201);
    assert_eq!(k["key"]["role"], "owner");
    h.api
        .post("/api/v1/api-keys")
        .bearer(&owner)
        .json(json!({ "name": "x", "role": "god" }))
        .send()
        .await
        .problem(422, "validation");
    let account = h.api.get("/api/v1/account").bearer(&viewer).send().await.ok_json(200);
    assert_eq!(account["id"], a.to_string());

    // An admin cannot revoke an owner's key; the owner can revoke an admin's.
    let owner2_id = k_owner2_id(&h, a).await;
    let path = format!("/api/v1/api-keys/{owner2_id}");
    h.api.delete(&path).bearer(&admin).send().await.problem(403, "forbidden");
    let still = h.crm().store().list_api_keys(a).await.unwrap();
    assert!(still.iter().find(|k| k.id.to_string() == owner2_id).unwrap().revoked_at.is_none(), "nothing revoked");
    let admin2 = still.iter().find(|k| k.name == "admin2").unwrap().id;
    let revoked = h.api.delete(&format!("/api/v1/api-keys/{admin2}")).bearer(&owner).send().await.ok_json(200);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
}

async fn k_owner2_id(h: &Harness, a: crm_core::AccountId) -> String {
    let keys = h.crm().store().list_api_keys(a).await.unwrap();
    keys.iter().find(|k| k.name == "owner2").unwrap().id.to_string()
}

/// Create a user through the API, log in, use the token; wrong passwords are 401.
pub async fn login_flow(api: &Api, admin_token: &str) {
    let user = api
        .post("/api/v1/users")
        .bearer(admin_token)
        .json(json!({ "email": "Maria@Example.com", "name": "Maria", "role": "agent", "password": "s3nha-segura" }))
        .send()
        .await
        .ok_json(201);
    assert_eq!(user["role"], "agent");
    let text = user.to_string();
    assert!(!text.contains("s3nha") && !text.contains("argon2"), "no password or hash: {text}");
    api.post("/api/v1/users")
        .bearer(admin_token)
        .json(json!({ "email": "maria@example.com", "name": "Maria 2", "role": "agent", "password": "s3nha-segura" }))
        .send()
        .await
        .problem(409, "conflict");
    api.post("/api/v1/users")
        .bearer(admin_token)
        .json(json!({ "email": "short@example.com", "name": "S", "role": "agent", "password": "short" }))
        .send()
        .await
        .problem(422, "validation");
    let users = api.get("/api/v1/users").bearer(admin_token).send().await.ok_json(200);
    // A bootstrapped server also has its owner; the refused creations added no one.
    let emails: Vec<_> = users.as_array().unwrap().iter().filter_map(|u| u["email"].as_str()).collect();
    assert_eq!(emails.iter().filter(|e| e.starts_with("maria@")).count(), 1, "{emails:?}");
    assert!(emails.iter().all(|e| *e == "maria@example.com" || *e == crm_http::BOOTSTRAP_OWNER_EMAIL), "{emails:?}");

    let session = api
        .post("/api/v1/auth/login")
        .json(json!({ "email": "maria@example.com", "password": "s3nha-segura" }))
        .send()
        .await
        .ok_json(200);
    let token = session["token"].as_str().unwrap();
    assert!(session["expires_at"].is_string(), "{session}");
    assert_eq!(session["user"]["email"], "maria@example.com");
    api.get("/api/v1/contacts").bearer(token).send().await.expect(200);
    api.post("/api/v1/contacts")
        .bearer(token)
        .json(crate::helpers::contact_body("Via login", 555))
        .send()
        .await
        .expect(201);
    api.get("/api/v1/api-keys").bearer(token).send().await.problem(403, "forbidden");

    for (email, password) in
        [("maria@example.com", "wrong password"), ("nobody@example.com", "s3nha-segura"), ("not an email", "x")]
    {
        let r = api.post("/api/v1/auth/login").json(json!({ "email": email, "password": password })).send().await;
        let p = r.problem(401, "unauthorized");
        assert!(!p.to_string().contains("s3nha"), "{p}");
    }
    api.post("/api/v1/auth/login")
        .json(json!({ "email": "maria@example.com" }))
        .send()
        .await
        .problem(422, "validation");
}

#[tokio::test]
async fn login_flow_in_memory() {
    let h = Harness::memory().await;
    let (_, admin) = h.account(Role::Admin).await;
    login_flow(&h.api, &admin).await;
}

#[tokio::test]
async fn login_tokens_expire_after_the_session_ttl() {
    let h = Harness::memory_with(settings(|s| s.session_ttl = Duration::from_secs(600)), Vec::new()).await;
    let (a, _) = h.account(Role::Admin).await;
    h.crm().create_user(a, "ops@example.com", "Ops", Role::Viewer, "long enough").await.unwrap();
    let session = h
        .api
        .post("/api/v1/auth/login")
        .json(json!({ "email": "ops@example.com", "password": "long enough" }))
        .send()
        .await
        .ok_json(200);
    let token = session["token"].as_str().unwrap();
    h.api.get("/api/v1/contacts").bearer(token).send().await.expect(200);
    h.clock.as_ref().unwrap().advance(Duration::from_secs(601));
    h.api.get("/api/v1/contacts").bearer(token).send().await.problem(401, "unauthorized");
}

/// `PATCH /account` sets and clears the account's time zone (admins only),
/// refuses unknown zones with 422, and records `account.updated`; SQLite
/// stores it across requests.
#[tokio::test]
async fn admins_set_the_account_time_zone() {
    let h = Harness::sqlite().await;
    let (a, admin) = h.account(Role::Admin).await;
    let agent = h.key(a, Role::Agent).await;
    let account = h.api.get("/api/v1/account").bearer(&admin).send().await.ok_json(200);
    assert_eq!(account["time_zone"], serde_json::Value::Null, "unset: UTC");

    h.api.patch("/api/v1/account").json(json!({ "time_zone": "UTC" })).send().await.problem(401, "unauthorized");
    let body = json!({ "time_zone": "America/Sao_Paulo" });
    h.api.patch("/api/v1/account").bearer(&agent).json(body.clone()).send().await.problem(403, "forbidden");
    let p = h
        .api
        .patch("/api/v1/account")
        .bearer(&admin)
        .json(json!({ "time_zone": "Mars/Olympus" }))
        .send()
        .await
        .problem(422, "validation");
    assert!(p.to_string().contains("time_zone"), "{p}");
    h.api.patch("/api/v1/account").bearer(&admin).json(json!({ "zone": "UTC" })).send().await.expect(422);
    assert_eq!(h.crm().store().get_account(a).await.unwrap().time_zone, None, "refusals change nothing");

    let updated = h.api.patch("/api/v1/account").bearer(&admin).json(body).send().await.ok_json(200);
    assert_eq!(updated["time_zone"], "America/Sao_Paulo");
    assert_eq!(updated["id"], a.to_string());
    let read = h.api.get("/api/v1/account").bearer(&agent).send().await.ok_json(200);
    assert_eq!(read["time_zone"], "America/Sao_Paulo", "read back");
    let renamed = h.api.patch("/api/v1/account").bearer(&admin).json(json!({ "name": " Loja Centro " })).send().await;
    let renamed = renamed.ok_json(200);
    assert_eq!(
        (renamed["name"].as_str(), renamed["time_zone"].as_str()),
        (Some("Loja Centro"), Some("America/Sao_Paulo"))
    );
    let cleared = h.api.patch("/api/v1/account").bearer(&admin).json(json!({ "time_zone": null })).send().await;
    assert_eq!(cleared.ok_json(200)["time_zone"], serde_json::Value::Null);

    let events = h.crm().store().list_events(a, None, 1000).await.unwrap();
    let updates: Vec<_> = events.iter().filter(|e| e.event_type.as_str() == "account.updated").collect();
    assert_eq!(updates.len(), 3, "one account.updated per change");
    assert_eq!(updates[0].payload["time_zone"], "America/Sao_Paulo");
}

//! Contacts through the API: CRUD, filters, keyset pagination, tags and
//! mass assignment.

use crm_core::Role;
use serde_json::{Value, json};
use std::collections::HashSet;

use crate::helpers::{Api, Harness, create_contact, id, phone};

fn names(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

/// Create, read, partial update, tag, untag, delete.
pub async fn crud(api: &Api, token: &str) {
    let resp = api
        .post("/api/v1/contacts")
        .bearer(token)
        .json(json!({
            "name": "Ana Souza",
            "phone": "+55 (11) 98765-4321",
            "email": "ana@example.com",
            "tags": ["VIP", "lead"],
            "metadata": { "source": "site" },
            "lead_score": 40,
            "lead_stage": "qualified",
        }))
        .send()
        .await;
    let created = resp.ok_json(201);
    let cid = id(&created);
    assert_eq!(resp.header("location"), Some(format!("/api/v1/contacts/{cid}")), "Location names the new contact");
    assert_eq!(created["phone"], "+5511987654321", "{created}");
    assert_eq!(created["tags"], json!(["lead", "vip"]), "{created}");
    assert_eq!(created["lead_stage"], "qualified");
    assert_eq!(created["version"], 0);

    let got = api.get(&format!("/api/v1/contacts/{cid}")).bearer(token).send().await.ok_json(200);
    assert_eq!(got, created);

    let patched = api
        .patch(&format!("/api/v1/contacts/{cid}"))
        .bearer(token)
        .json(json!({ "name": "Ana S.", "email": null, "lead_score": 90 }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(patched["name"], "Ana S.");
    assert!(patched["email"].is_null(), "null clears the e-mail: {patched}");
    assert_eq!(patched["lead_score"], 90);
    assert_eq!(patched["phone"], created["phone"], "fields not sent stay");
    assert_eq!(patched["tags"], created["tags"]);
    assert_eq!(patched["version"], 1, "{patched}");
    assert_eq!(patched["created_at"], created["created_at"]);

    let tagged = api
        .post(&format!("/api/v1/contacts/{cid}/tags"))
        .bearer(token)
        .json(json!({ "tags": ["Cliente"] }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(tagged["tags"], json!(["cliente", "lead", "vip"]));
    let untagged = api
        .delete(&format!("/api/v1/contacts/{cid}/tags"))
        .bearer(token)
        .json(json!({ "tags": ["vip", "not-there"] }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(untagged["tags"], json!(["cliente", "lead"]));
    api.post(&format!("/api/v1/contacts/{cid}/tags"))
        .bearer(token)
        .json(json!({ "tags": ["no,commas"] }))
        .send()
        .await
        .problem(422, "validation");
    api.post(&format!("/api/v1/contacts/{cid}/tags"))
        .bearer(token)
        .json(json!({ "tags": [""] }))
        .send()
        .await
        .problem(422, "validation");

    let r = api.delete(&format!("/api/v1/contacts/{cid}")).bearer(token).send().await;
    r.expect(204);
    assert!(r.body.is_empty());
    api.get(&format!("/api/v1/contacts/{cid}")).bearer(token).send().await.problem(404, "not-found");
    api.delete(&format!("/api/v1/contacts/{cid}")).bearer(token).send().await.problem(404, "not-found");
    api.patch(&format!("/api/v1/contacts/{cid}"))
        .bearer(token)
        .json(json!({ "name": "ghost" }))
        .send()
        .await
        .problem(404, "not-found");
}

/// Filters by tag, stage and search, and keyset pages that cover everything once.
pub async fn filters_and_pages(api: &Api, token: &str) {
    let people = [
        ("Ana Souza", "ana@example.com", "vip", "qualified"),
        ("Anabela Lima", "bela@example.com", "vip", "new"),
        ("Bruno Costa", "bruno@corp.example", "lead", "qualified"),
        ("Carla Dias", "carla@example.com", "lead", "won"),
        ("Davi Rocha", "davi@example.com", "vip", "lost"),
    ];
    for (i, (name, email, tag, stage)) in people.iter().enumerate() {
        api.post("/api/v1/contacts")
            .bearer(token)
            .json(json!({
                "name": name, "phone": phone(100 + i as u32), "email": email, "tags": [tag], "lead_stage": stage,
            }))
            .send()
            .await
            .expect(201);
    }
    let get = |q: &str| {
        let path = format!("/api/v1/contacts?{q}");
        async move { api.get(&path).bearer(token).send().await.ok_json(200) }
    };
    let mut vip = names(&get("tag=vip").await);
    vip.sort();
    assert_eq!(vip, ["Ana Souza", "Anabela Lima", "Davi Rocha"]);
    assert_eq!(names(&get("tag=VIP").await).len(), 3, "tags are case-insensitive");
    let mut qualified = names(&get("stage=qualified").await);
    qualified.sort();
    assert_eq!(qualified, ["Ana Souza", "Bruno Costa"]);
    assert_eq!(names(&get("stage=qualified&tag=vip").await), ["Ana Souza"]);
    let mut ana = names(&get("search=ana").await);
    ana.sort();
    assert_eq!(ana, ["Ana Souza", "Anabela Lima"], "name prefix");
    assert_eq!(names(&get("search=bruno%40corp").await), ["Bruno Costa"], "e-mail prefix");
    let digits = &phone(103)[5..];
    assert_eq!(names(&get(&format!("search={digits}")).await), ["Carla Dias"], "phone digits");
    assert!(names(&get("search=zzz").await).is_empty());
    api.get("/api/v1/contacts?stage=sideways").bearer(token).send().await.problem(400, "bad-request");

    // Keyset pagination: pages of 2 cover the 5 contacts exactly once.
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".to_owned(),
        };
        let page = get(&q).await;
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for c in items {
            assert!(seen.insert(id(c)), "a contact appears on two pages");
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination terminates");
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(pages, 3);
    // Filters and pages combine.
    let first = get("tag=vip&limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["next_cursor"].as_str().expect("a second page");
    let second = get(&format!("tag=vip&limit=2&cursor={next}")).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    api.get("/api/v1/contacts?limit=0").bearer(token).send().await.problem(422, "validation");
    api.get("/api/v1/contacts?limit=201").bearer(token).send().await.problem(422, "validation");
    get("limit=200").await;
}

#[tokio::test]
async fn crud_in_memory() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Agent).await;
    crud(&h.api, &token).await;
}

#[tokio::test]
async fn filters_and_keyset_pagination_in_memory() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Agent).await;
    filters_and_pages(&h.api, &token).await;
}

#[tokio::test]
async fn mass_assignment_is_rejected_and_nothing_is_stored() {
    let h = Harness::memory().await;
    let (a, token) = h.account(Role::Owner).await;
    let (other, _) = h.account(Role::Owner).await;
    let base = json!({ "name": "Ana", "phone": "+5511987654321" });
    let injected = [
        ("id", json!(uuid::Uuid::now_v7())),
        ("account_id", json!(other.to_string())),
        ("created_at", json!("2000-01-01T00:00:00Z")),
        ("updated_at", json!("2000-01-01T00:00:00Z")),
        ("version", json!(99)),
        ("status", json!("read")),
        ("last_inbound_at", json!("2000-01-01T00:00:00Z")),
    ];
    for (field, value) in &injected {
        let mut body = base.clone();
        body[field] = value.clone();
        let p = h.api.post("/api/v1/contacts").bearer(&token).json(body).send().await.problem(422, "validation");
        assert!(p["detail"].as_str().unwrap().contains(field), "{field}: {p}");
    }
    for acct in [a, other] {
        let page = h.crm().list_contacts(acct, &Default::default()).await.unwrap();
        assert!(page.items.is_empty(), "nothing stored in {acct}");
    }

    let contact = create_contact(&h.api, &token, "Ana", 1).await;
    let cid = id(&contact);
    for (field, value) in &injected {
        let mut body = json!({ "name": "Changed" });
        body[field] = value.clone();
        h.api
            .patch(&format!("/api/v1/contacts/{cid}"))
            .bearer(&token)
            .json(body)
            .send()
            .await
            .problem(422, "validation");
    }
    let after = h.api.get(&format!("/api/v1/contacts/{cid}")).bearer(&token).send().await.ok_json(200);
    assert_eq!(after, contact, "no patch applied");

    // Templates, messages, keys and users refuse the same.
    for field in ["id", "account_id", "created_at", "variables"] {
        let mut body = json!({ "name": "t", "body": "x" });
        body[field] = json!("x");
        h.api.post("/api/v1/templates").bearer(&token).json(body).send().await.problem(422, "validation");
    }
    assert!(h.crm().list_templates(a, &Default::default()).await.unwrap().items.is_empty());
    for (field, value) in [("status", json!("read")), ("id", json!(uuid::Uuid::now_v7())), ("account_id", json!(other))]
    {
        let mut body = json!({ "contact_id": cid, "text": "oi" });
        body[field] = value;
        h.api.post("/api/v1/messages").bearer(&token).json(body).send().await.problem(422, "validation");
    }
    let thread = h.api.get(&format!("/api/v1/contacts/{cid}/messages")).bearer(&token).send().await.ok_json(200);
    assert!(thread["items"].as_array().unwrap().is_empty(), "{thread}");
    let keys_before = h.crm().store().list_api_keys(a).await.unwrap().len();
    h.api
        .post("/api/v1/api-keys")
        .bearer(&token)
        .json(json!({ "name": "k", "account_id": other }))
        .send()
        .await
        .problem(422, "validation");
    h.api
        .post("/api/v1/users")
        .bearer(&token)
        .json(json!({ "email": "x@example.com", "name": "X", "role": "agent", "password": "long enough pw", "id": uuid::Uuid::now_v7() }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(h.crm().store().list_api_keys(a).await.unwrap().len(), keys_before);
    assert!(h.crm().store().list_api_keys(other).await.unwrap().len() == 1, "only its bootstrap key");
    assert!(h.crm().store().list_users(a).await.unwrap().is_empty());
}

#[tokio::test]
async fn viewers_read_but_do_not_write() {
    let h = Harness::memory().await;
    let (a, agent) = h.account(Role::Agent).await;
    let viewer = h.key(a, Role::Viewer).await;
    let c = create_contact(&h.api, &agent, "Ana", 1).await;
    let cid = id(&c);
    h.api.get(&format!("/api/v1/contacts/{cid}")).bearer(&viewer).send().await.expect(200);
    h.api.get("/api/v1/contacts").bearer(&viewer).send().await.expect(200);
    h.api.get(&format!("/api/v1/contacts/{cid}/messages")).bearer(&viewer).send().await.expect(200);
    h.api
        .patch(&format!("/api/v1/contacts/{cid}"))
        .bearer(&viewer)
        .json(json!({ "name": "x" }))
        .send()
        .await
        .problem(403, "forbidden");
    h.api
        .post(&format!("/api/v1/contacts/{cid}/tags"))
        .bearer(&viewer)
        .json(json!({ "tags": ["x"] }))
        .send()
        .await
        .problem(403, "forbidden");
    h.api.delete(&format!("/api/v1/contacts/{cid}")).bearer(&viewer).send().await.problem(403, "forbidden");
    h.api
        .post("/api/v1/messages")
        .bearer(&viewer)
        .json(json!({ "contact_id": cid, "text": "oi" }))
        .send()
        .await
        .problem(403, "forbidden");
    let after = h.api.get(&format!("/api/v1/contacts/{cid}")).bearer(&viewer).send().await.ok_json(200);
    assert_eq!(after, c);
}

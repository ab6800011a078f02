//! Tenancy: every route that takes an id, called with another account's id,
//! answers 404 and changes nothing. The same suite runs in memory, on SQLite
//! and on PostgreSQL.

use crm_core::Role;
use serde_json::{Value, json};

use crate::helpers::{Harness, create_contact, create_template, id};

/// Account A owns a contact (tagged), a message, a template and a key;
/// account B, with an owner key, reaches for each of them.
pub async fn suite(h: &Harness) {
    let api = &h.api;
    let (a, a_token) = h.account(Role::Owner).await;
    let (_, b_token) = h.account(Role::Owner).await;

    let contact = create_contact(api, &a_token, "Ana Souza", 1).await;
    let cid = id(&contact);
    api.post(&format!("/api/v1/contacts/{cid}/tags"))
        .bearer(&a_token)
        .json(json!({ "tags": ["vip"] }))
        .send()
        .await
        .expect(200);
    let message = api
        .post("/api/v1/messages")
        .bearer(&a_token)
        .json(json!({ "contact_id": cid, "text": "Olá" }))
        .send()
        .await
        .ok_json(202);
    let mid = id(&message);
    // Let the dispatcher finish with it, so the snapshots compare settled data.
    assert_eq!(api.settled_message(&a_token, &mid).await["status"], "sent");
    let template = create_template(api, &a_token, "welcome", "Oi {{first_name}}!").await;
    let tid = id(&template);
    let (key, _) = h.crm().create_api_key(a, "integration", Role::Agent, None).await.unwrap();
    let kid = key.id.to_string();

    let before = snapshot(h, &a_token, &cid, &tid).await;

    let b = |m: &str, p: String| (m.to_owned(), p);
    let attempts: Vec<((String, String), Option<Value>)> = vec![
        (b("GET", format!("/api/v1/contacts/{cid}")), None),
        (b("PATCH", format!("/api/v1/contacts/{cid}")), Some(json!({ "name": "Hacked" }))),
        (b("DELETE", format!("/api/v1/contacts/{cid}")), None),
        (b("POST", format!("/api/v1/contacts/{cid}/tags")), Some(json!({ "tags": ["stolen"] }))),
        (b("DELETE", format!("/api/v1/contacts/{cid}/tags")), Some(json!({ "tags": ["vip"] }))),
        (b("GET", format!("/api/v1/contacts/{cid}/messages")), None),
        (b("GET", format!("/api/v1/messages/{mid}")), None),
        (b("GET", format!("/api/v1/messages?contact_id={cid}")), None),
        (b("POST", "/api/v1/messages".into()), Some(json!({ "contact_id": cid, "text": "spam" }))),
        (b("GET", format!("/api/v1/templates/{tid}")), None),
        (b("PUT", format!("/api/v1/templates/{tid}")), Some(json!({ "name": "welcome", "body": "pwned" }))),
        (b("DELETE", format!("/api/v1/templates/{tid}")), None),
        (b("POST", format!("/api/v1/templates/{tid}/render")), Some(json!({ "variables": {} }))),
        (b("DELETE", format!("/api/v1/api-keys/{kid}")), None),
    ];
    for ((method, path), body) in attempts {
        let mut call = api.call(method.parse().unwrap(), &path).bearer(&b_token);
        if let Some(body) = body {
            call = call.json(body);
        }
        let r = call.send().await;
        assert_eq!(r.status.as_u16(), 404, "{method} {path} from another account: {}", r.text());
        let p = r.problem(404, "not-found");
        let text = p.to_string();
        assert!(!text.contains("Ana") && !text.contains("Olá"), "nothing of the object leaks: {text}");
    }
    // B sending A's template by name to its own contact finds no template.
    let own = create_contact(api, &b_token, "Bruno", 2).await;
    api.post("/api/v1/messages")
        .bearer(&b_token)
        .json(json!({ "contact_id": id(&own), "template": { "name": "welcome" } }))
        .send()
        .await
        .problem(404, "not-found");
    // Uniqueness is per account: B may hold the same phone and template name.
    let same_phone = api
        .post("/api/v1/contacts")
        .bearer(&b_token)
        .json(json!({ "name": "Outra Ana", "phone": contact["phone"] }))
        .send()
        .await
        .ok_json(201);
    api.delete(&format!("/api/v1/contacts/{}", id(&same_phone))).bearer(&b_token).send().await.expect(204);
    let same_name = create_template(api, &b_token, "welcome", "B's own").await;
    api.delete(&format!("/api/v1/templates/{}", id(&same_name))).bearer(&b_token).send().await.expect(204);
    // B's lists never show A's data.
    let listed = api.get("/api/v1/contacts").bearer(&b_token).send().await.ok_json(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["name"], "Bruno");
    let templates = api.get("/api/v1/templates").bearer(&b_token).send().await.ok_json(200);
    assert_eq!(templates["items"].as_array().unwrap().len(), 0, "{templates}");
    let keys = api.get("/api/v1/api-keys").bearer(&b_token).send().await.ok_json(200);
    assert!(keys.as_array().unwrap().iter().all(|k| k["id"] != kid.as_str()), "{keys}");
    let events = api.get("/api/v1/events?limit=1000").bearer(&b_token).send().await.ok_json(200);
    for e in events["items"].as_array().unwrap() {
        assert_ne!(e["account_id"], a.to_string(), "B sees none of A's events: {e}");
    }

    assert_eq!(snapshot(h, &a_token, &cid, &tid).await, before, "account A is unchanged");
    let keys = api.get("/api/v1/api-keys").bearer(&a_token).send().await.ok_json(200);
    let k = keys.as_array().unwrap().iter().find(|k| k["id"] == kid.as_str()).expect("A's key listed").clone();
    assert!(k["revoked_at"].is_null(), "A's key is not revoked: {k}");
}

/// Everything of A's that B's calls could have touched.
async fn snapshot(h: &Harness, token: &str, cid: &str, tid: &str) -> Vec<Value> {
    let api = &h.api;
    vec![
        api.get(&format!("/api/v1/contacts/{cid}")).bearer(token).send().await.ok_json(200),
        api.get(&format!("/api/v1/contacts/{cid}/messages")).bearer(token).send().await.ok_json(200),
        api.get(&format!("/api/v1/templates/{tid}")).bearer(token).send().await.ok_json(200),
        api.get("/api/v1/events?limit=1000").bearer(token).send().await.ok_json(200),
    ]
}

#[tokio::test]
async fn other_accounts_ids_answer_404_in_memory() {
    suite(&Harness::memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_accounts_ids_answer_404_on_sqlite() {
    let h = Harness::sqlite().await;
    suite(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_accounts_ids_answer_404_on_postgres() {
    let Some(h) = Harness::postgres("other_accounts_ids_answer_404_on_postgres").await else { return };
    suite(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_key_only_ever_acts_in_its_own_account() {
    let h = Harness::memory().await;
    let (_, a_token) = h.account(Role::Admin).await;
    let (b, _) = h.account(Role::Admin).await;
    let account = h.api.get("/api/v1/account").bearer(&a_token).send().await.ok_json(200);
    assert_ne!(account["id"], b.to_string());
    // A new key minted by A belongs to A.
    let created =
        h.api.post("/api/v1/api-keys").bearer(&a_token).json(json!({ "name": "ci" })).send().await.ok_json(201);
    let token = created["token"].as_str().unwrap();
    let mine = h.api.get("/api/v1/account").bearer(token).send().await.ok_json(200);
    assert_eq!(mine["id"], account["id"]);
}

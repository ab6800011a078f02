//! Sequences over HTTP: import the example JSON, CRUD, enrol, list, stop,
//! the refusals with their problems, tenancy, and a reply stopping an
//! enrolment through the server's own watcher.

use crm_core::Role;
use serde_json::{Value, json};
use std::time::Duration;

use crate::helpers::{Harness, create_contact, id};

const FOLLOW_UP: &str = include_str!("../../../examples/sequences/follow_up.json");

async fn lifecycle(h: &Harness) {
    let api = &h.api;
    let (account, admin) = h.account(Role::Admin).await;
    let agent = h.key(account, Role::Agent).await;
    let body: Value = serde_json::from_str(FOLLOW_UP).unwrap();

    // Refusals.
    let post =
        |b: Value, token: String| async move { api.post("/api/v1/sequences").bearer(&token).json(b).send().await };
    post(json!({ "name": "x", "steps": [] }), admin.clone()).await.problem(422, "validation");
    post(json!({ "name": "x", "steps": [{ "delay_seconds": 0, "action": { "type": "fly" } }] }), admin.clone())
        .await
        .problem(422, "validation");
    post(
        json!({ "name": "x", "steps": [{ "delay_seconds": 0, "action": { "type": "add_tag", "tag": "a,b" } }] }),
        admin.clone(),
    )
    .await
    .problem(422, "validation");
    let mut bad_window = body.clone();
    bad_window["window"]["start_minute"] = json!(2000);
    post(bad_window, admin.clone()).await.problem(422, "validation");
    post(body.clone(), agent.clone()).await.problem(403, "forbidden");

    // The example imports as it is.
    let created = post(body.clone(), admin.clone()).await;
    created.expect(201);
    let s = created.json();
    let sid = id(&s);
    assert_eq!(created.header("location").as_deref(), Some(format!("/api/v1/sequences/{sid}").as_str()));
    assert_eq!(s["name"], "Follow-up Email Sequence");
    assert_eq!(s["steps"].as_array().unwrap().len(), 3);
    assert_eq!(s["steps"][0]["action"]["name"], "follow_up_1");
    assert_eq!(api.get(&format!("/api/v1/sequences/{sid}")).bearer(&agent).send().await.ok_json(200), s);
    let list = api.get("/api/v1/sequences").bearer(&agent).send().await.ok_json(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Replace: a stale edit is impossible to express (PUT replaces), a bad one is refused.
    let mut renamed = body.clone();
    renamed["name"] = json!("Follow-up (v2)");
    let put = api.put(&format!("/api/v1/sequences/{sid}")).bearer(&admin).json(renamed).send().await.ok_json(200);
    assert_eq!((put["name"].as_str(), put["version"].as_i64()), (Some("Follow-up (v2)"), Some(1)));

    // Enrol: one contact twice, one missing, one opted out.
    let c1 = id(&create_contact(api, &admin, "Ana", 1).await);
    let c2 = id(&create_contact(api, &admin, "Bia", 2).await);
    let out = json!({ "name": "Cid", "phone": crate::helpers::phone(3), "opt_in": "opted_out" });
    let c3 = id(&api.post("/api/v1/contacts").bearer(&admin).json(out).send().await.ok_json(201));
    let missing = "01936f4e-8b7a-7cc0-9a53-6f1d2c3b4a59";
    let enrol = |ids: Value| {
        let token = agent.clone();
        let path = format!("/api/v1/sequences/{sid}/enrolments");
        async move { api.post(&path).bearer(&token).json(json!({ "contact_ids": ids })).send().await }
    };
    let r = enrol(json!([c1, c2, c1, missing, c3])).await.ok_json(200);
    let outcomes: Vec<&str> = r["results"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["enrolled", "enrolled", "already_enrolled", "not_found", "opted_out"]);
    let e1 = r["results"][0]["enrolment"].clone();
    assert_eq!(e1["state"], "active");
    assert_eq!(e1["current_step"], 0);
    assert!(e1["next_run_at"].is_string());
    enrol(json!([])).await.problem(422, "validation");
    enrol(json!(["not-a-uuid"])).await.problem(422, "validation");
    api.post(&format!("/api/v1/sequences/{missing}/enrolments"))
        .bearer(&agent)
        .json(json!({ "contact_ids": [c1] }))
        .send()
        .await
        .problem(404, "not-found");

    // List and filter.
    let path = format!("/api/v1/sequences/{sid}/enrolments");
    let all = api.get(&path).bearer(&agent).send().await.ok_json(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let mine = api.get(&format!("{path}?contact_id={c1}")).bearer(&agent).send().await.ok_json(200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    api.get(&format!("{path}?state=sleeping")).bearer(&agent).send().await.expect(400);

    // Manual stop.
    let eid = id(&e1);
    let stopped = api.delete(&format!("{path}/{eid}")).bearer(&agent).send().await.ok_json(200);
    assert_eq!((stopped["state"].as_str(), stopped["stop_reason"].as_str()), (Some("stopped"), Some("manual")));
    let again = api.delete(&format!("{path}/{eid}")).bearer(&agent).send().await.ok_json(200);
    assert_eq!(again["version"], stopped["version"], "stopping twice changes nothing");
    let active = api.get(&format!("{path}?state=active")).bearer(&agent).send().await.ok_json(200);
    assert_eq!(active["items"].as_array().unwrap().len(), 1);
    api.get(&format!("{path}/{missing}")).bearer(&agent).send().await.problem(404, "not-found");

    // A reply stops Bia's enrolment (the server's watcher).
    let bia = h.crm().get_contact(account, c2.parse().unwrap()).await.unwrap();
    let msg = crm_core::InboundMessage {
        from: bia.phone.to_string(),
        whatsapp_id: None,
        profile_name: None,
        provider_message_id: Some("wamid.seq-reply".into()),
        content: crm_core::MessageContent::text("Oi, tenho interesse"),
        sent_at: None,
        reply_to: None,
    };
    h.crm().record_inbound(account, msg).await.unwrap();
    let mut reason = Value::Null;
    for _ in 0..200 {
        let v = api.get(&format!("{path}?contact_id={c2}")).bearer(&agent).send().await.ok_json(200);
        reason = v["items"][0]["stop_reason"].clone();
        if !reason.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reason, "replied");

    // Tenancy.
    let (_, other) = h.account(Role::Admin).await;
    api.get(&format!("/api/v1/sequences/{sid}")).bearer(&other).send().await.problem(404, "not-found");
    api.get(&path).bearer(&other).send().await.problem(404, "not-found");
    api.delete(&format!("{path}/{eid}")).bearer(&other).send().await.problem(404, "not-found");
    api.delete(&format!("/api/v1/sequences/{sid}")).bearer(&other).send().await.problem(404, "not-found");

    // Delete.
    api.delete(&format!("/api/v1/sequences/{sid}")).bearer(&agent).send().await.problem(403, "forbidden");
    api.delete(&format!("/api/v1/sequences/{sid}")).bearer(&admin).send().await.expect(204);
    api.get(&format!("/api/v1/sequences/{sid}")).bearer(&admin).send().await.problem(404, "not-found");
    api.get(&format!("{path}/{eid}")).bearer(&admin).send().await.problem(404, "not-found");
}

#[tokio::test]
async fn sequences_over_http_on_sqlite() {
    let h = Harness::sqlite().await;
    lifecycle(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn sequences_over_http_on_postgres() {
    let Some(h) = Harness::postgres("sequences_over_http_on_postgres").await else { return };
    lifecycle(&h).await;
    h.stop().await;
}

/// `Idempotency-Key` on `POST /sequences` and `POST /automations`: a retry
/// answers the first resource, another body is 409, a failed request frees
/// its key, keys are per account, and a late policy and an IANA window
/// round-trip.
async fn idempotent_creation(h: &Harness) {
    let api = &h.api;
    let (account, admin) = h.account(Role::Admin).await;
    let (_, other) = h.account(Role::Admin).await;
    let _ = account;
    let mut body: Value = serde_json::from_str(FOLLOW_UP).unwrap();
    body["window"] =
        json!({ "time_zone": "America/Sao_Paulo", "days": [1, 2, 3, 4, 5], "start_minute": 540, "end_minute": 1080 });
    body["late"] = json!({ "grace_seconds": 7200, "action": "stop" });
    let post = |path: &'static str, b: Value, token: String, key: &'static str| async move {
        api.post(path).bearer(&token).header("Idempotency-Key", key).json(b).send().await
    };

    let first = post("/api/v1/sequences", body.clone(), admin.clone(), "seq-1").await;
    first.expect(201);
    assert_eq!(first.header("idempotent-replayed").as_deref(), Some("false"));
    let s = first.json();
    assert_eq!(s["window"]["time_zone"], "America/Sao_Paulo");
    assert_eq!(s["late"], json!({ "grace_seconds": 7200, "action": "stop" }));
    let again = post("/api/v1/sequences", body.clone(), admin.clone(), "seq-1").await;
    again.expect(201);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.json()["id"], s["id"]);
    let list = api.get("/api/v1/sequences").bearer(&admin).send().await.ok_json(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "one sequence for two requests");
    // Another body with the key: 409; another account's same key: its own.
    let mut renamed = body.clone();
    renamed["name"] = json!("Other");
    let p = post("/api/v1/sequences", renamed.clone(), admin.clone(), "seq-1").await.problem(409, "conflict");
    assert!(p["detail"].as_str().unwrap().contains("different request body"), "{p}");
    let theirs = post("/api/v1/sequences", body.clone(), other.clone(), "seq-1").await.ok_json(201);
    assert_ne!(theirs["id"], s["id"]);
    // A refused request frees its key.
    let mut bad = body.clone();
    bad["window"]["time_zone"] = json!("Mars/Olympus");
    let p = post("/api/v1/sequences", bad, admin.clone(), "seq-2").await.problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("IANA"), "{p}");
    post("/api/v1/sequences", renamed, admin.clone(), "seq-2").await.expect(201);
    // A bad key is 422.
    api.post("/api/v1/sequences")
        .bearer(&admin)
        .header("Idempotency-Key", "two words")
        .json(body.clone())
        .send()
        .await
        .problem(422, "validation");
    // After a delete, the key's resource is gone: 409.
    let sid = id(&s);
    api.delete(&format!("/api/v1/sequences/{sid}")).bearer(&admin).send().await.expect(204);
    post("/api/v1/sequences", body, admin.clone(), "seq-1").await.problem(409, "conflict");

    // Automations.
    let rule = json!({ "name": "Tag leads", "trigger": { "event": "contact.created" },
        "conditions": [{ "type": "business_hours", "hours": { "time_zone": "America/Sao_Paulo", "start": "09:00", "end": "18:00" } }],
        "actions": [{ "type": "add_tag", "tag": "lead" }] });
    let a1 = post("/api/v1/automations", rule.clone(), admin.clone(), "rule-1").await;
    a1.expect(201);
    let r1 = a1.json();
    assert_eq!(r1["definition"]["conditions"][0]["hours"]["time_zone"], "America/Sao_Paulo", "{r1}");
    let a2 = post("/api/v1/automations", rule.clone(), admin.clone(), "rule-1").await;
    a2.expect(201);
    assert_eq!(a2.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(a2.json()["id"], r1["id"]);
    let rules = api.get("/api/v1/automations").bearer(&admin).send().await.ok_json(200);
    assert_eq!(rules["items"].as_array().unwrap().len(), 1);
    let mut disabled = rule.clone();
    disabled["enabled"] = json!(false);
    post("/api/v1/automations", disabled, admin.clone(), "rule-1").await.problem(409, "conflict");
    // Without a key every request creates.
    api.post("/api/v1/automations").bearer(&admin).json(rule.clone()).send().await.expect(201);
    let rules = api.get("/api/v1/automations").bearer(&admin).send().await.ok_json(200);
    assert_eq!(rules["items"].as_array().unwrap().len(), 2);
    let mut bad = rule;
    bad["conditions"][0]["hours"]["utc_offset_minutes"] = json!(-180);
    let p = post("/api/v1/automations", bad, admin, "rule-2").await.problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("not both"), "{p}");
}

#[tokio::test]
async fn idempotent_creation_on_sqlite() {
    let h = Harness::sqlite().await;
    idempotent_creation(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn idempotent_creation_on_postgres() {
    let Some(h) = Harness::postgres("idempotent_creation_on_postgres").await else { return };
    idempotent_creation(&h).await;
    h.stop().await;
}

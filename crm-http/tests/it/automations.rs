//! Automations and lead scoring through the API: rule CRUD, versions,
//! enable/disable, runs, the dry run, the scoring model, score history, the
//! problems every route answers; and the lead qualification example JSON
//! running for real on a server over SQLite and PostgreSQL.

use crm_core::automation::Engine;
use crm_core::{EventType, Role};
use serde_json::{Value, json};
use std::time::Duration;

use crate::helpers::{Api, Harness, create_contact, id};

fn example() -> Value {
    serde_json::from_str(include_str!("../../../examples/automations/lead_qualification.json")).unwrap()
}

fn tag_rule(tag: &str) -> Value {
    json!({ "name": "Tag leads", "trigger": {"event": "contact.created"}, "actions": [{"type": "add_tag", "tag": tag}] })
}

#[tokio::test]
async fn rules_versions_runs_and_dry_run_in_memory() {
    let h = Harness::memory().await;
    let (account, key) = h.account(Role::Admin).await;
    let api = &h.api;
    let rule = api.post("/api/v1/automations").bearer(&key).json(tag_rule("lead")).send().await.ok_json(201);
    let rid = id(&rule);
    assert_eq!((rule["version"].as_u64(), rule["enabled"].as_bool()), (Some(1), Some(true)), "{rule}");
    assert_eq!(rule["definition"]["trigger"], json!({"event": "contact.created"}));

    // Edit: version 2; a stale version is 409; versions are listed.
    let mut v2 = tag_rule("lead-v2");
    v2["version"] = json!(1);
    let edited = api.put(&format!("/api/v1/automations/{rid}")).bearer(&key).json(v2.clone()).send().await.ok_json(200);
    assert_eq!(edited["version"], 2);
    api.put(&format!("/api/v1/automations/{rid}")).bearer(&key).json(v2).send().await.problem(409, "conflict");
    let versions = api.get(&format!("/api/v1/automations/{rid}/versions")).bearer(&key).send().await.ok_json(200);
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[0]["definition"]["actions"][0]["tag"], "lead");
    let v1 = api.get(&format!("/api/v1/automations/{rid}/versions/1")).bearer(&key).send().await.ok_json(200);
    assert_eq!(v1, versions[0]);
    api.get(&format!("/api/v1/automations/{rid}/versions/9")).bearer(&key).send().await.problem(404, "not-found");

    // Disable, enable.
    let off = api.post(&format!("/api/v1/automations/{rid}/disable")).bearer(&key).send().await.ok_json(200);
    assert_eq!((off["enabled"].as_bool(), off["version"].as_u64()), (Some(false), Some(2)));
    let on = api.post(&format!("/api/v1/automations/{rid}/enable")).bearer(&key).send().await.ok_json(200);
    assert_eq!(on["enabled"], true);

    // Dry run: the rendered actions, nothing done.
    let contact = create_contact(api, &key, "Ana", 1).await;
    let dry = api
        .post(&format!("/api/v1/automations/{rid}/test"))
        .bearer(&key)
        .json(json!({ "type": "contact.created", "payload": contact }))
        .send()
        .await
        .ok_json(200);
    assert_eq!((dry["matched"].as_bool(), dry["version"].as_u64()), (Some(true), Some(2)), "{dry}");
    assert_eq!(dry["actions"][0]["arguments"], json!({"type": "add_tag", "tag": "lead-v2"}));
    let got = api.get(&format!("/api/v1/contacts/{}", id(&contact))).bearer(&key).send().await.ok_json(200);
    assert_eq!(got["tags"], json!([]), "the dry run changed nothing");

    // A run (the engine on the contact's event, as the worker would).
    let events = h.crm().store().list_events(account, None, 1000).await.unwrap();
    let created = events.iter().find(|e| e.event_type == EventType::CONTACT_CREATED).unwrap();
    Engine::new(h.crm().clone()).handle_event(created).await.unwrap();
    let runs = api.get(&format!("/api/v1/automations/{rid}/runs")).bearer(&key).send().await.ok_json(200);
    let run = &runs["items"][0];
    assert_eq!((run["status"].as_str(), run["version"].as_u64()), (Some("completed"), Some(2)), "{runs}");
    assert_eq!(run["event_id"], json!(created.id));
    assert_eq!(run["steps"][0]["action"], "add_tag");
    let one = api.get(&format!("/api/v1/automations/{rid}/runs/{}", id(run))).bearer(&key).send().await.ok_json(200);
    assert_eq!(&one, run);
    let list = api.get("/api/v1/automations").bearer(&key).send().await.ok_json(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Delete.
    api.delete(&format!("/api/v1/automations/{rid}")).bearer(&key).send().await.expect(204);
    api.get(&format!("/api/v1/automations/{rid}")).bearer(&key).send().await.problem(404, "not-found");
    api.get(&format!("/api/v1/automations/{rid}/runs")).bearer(&key).send().await.problem(404, "not-found");
}

#[tokio::test]
async fn bad_rules_and_bad_calls_are_4xx() {
    let h = Harness::memory().await;
    let (a, key) = h.account(Role::Admin).await;
    let api = &h.api;
    let post = |body: Value| {
        let key = key.clone();
        async move { api.post("/api/v1/automations").bearer(&key).json(body).send().await }
    };
    let (kind, issue) = ("ai_reply", "#14");
    {
        let body = json!({"name": "x", "trigger": {"event": "message.received"}, "actions": [{"type": kind}]});
        let p = post(body).await.problem(422, "validation");
        assert_eq!(p["field"], "actions[0].type", "{p}");
        assert!(p["detail"].as_str().unwrap().contains(issue), "{p}");
    }
    // The connector actions (#16) check their arguments.
    for (action, field) in [
        (json!({"type": "send_email", "subject": " ", "text": "oi"}), "actions[0].subject"),
        (json!({"type": "send_email", "subject": "Oi", "text": "oi", "to": ["not an address"]}), "actions[0].to"),
        (json!({"type": "notify_slack", "text": ""}), "actions[0].text"),
        (json!({"type": "track_event", "name": "google_x"}), "actions[0].name"),
        (
            json!({"type": "track_event", "name": "purchase", "value_minor": 100, "currency": "real"}),
            "actions[0].currency",
        ),
    ] {
        let body = json!({"name": "x", "trigger": {"event": "message.received"}, "actions": [action]});
        let p = post(body).await.problem(422, "validation");
        assert_eq!(p["field"], field, "{p}");
    }
    let p = post(json!({"name": "x", "trigger": {"event": "message.received"},
        "conditions": [{"type": "text", "regex": "(unclosed"}], "actions": [{"type": "add_tag", "tag": "x"}]}))
    .await
    .problem(422, "validation");
    assert_eq!(p["field"], "conditions[0].regex");
    let p = post(json!({"name": "x", "trigger": {"event": "message.received"}, "actions": []}))
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "actions");
    let unknown = post(json!({"name": "x", "trigger": {"event": "x.y"}, "actions": [{"type": "teleport"}]})).await;
    assert!((400..500).contains(&unknown.json()["status"].as_u64().unwrap()), "{}", unknown.text());
    let missing = uuid::Uuid::now_v7();
    api.get(&format!("/api/v1/automations/{missing}")).bearer(&key).send().await.problem(404, "not-found");
    api.post(&format!("/api/v1/automations/{missing}/test"))
        .bearer(&key)
        .json(json!({"type": "contact.created"}))
        .send()
        .await
        .problem(404, "not-found");
    let bad = api.get("/api/v1/automations/not-an-id").bearer(&key).send().await;
    assert!((400..500).contains(&bad.json()["status"].as_u64().unwrap()), "{}", bad.text());

    // Roles: agents read and dry-run, admins write.
    let agent = h.key(a, Role::Agent).await;
    api.post("/api/v1/automations").bearer(&agent).json(tag_rule("x")).send().await.problem(403, "forbidden");
    let rule = post(tag_rule("x")).await.ok_json(201);
    api.get(&format!("/api/v1/automations/{}", id(&rule))).bearer(&agent).send().await.expect(200);
    api.post(&format!("/api/v1/automations/{}/disable", id(&rule)))
        .bearer(&agent)
        .send()
        .await
        .problem(403, "forbidden");
    api.put("/api/v1/scoring").bearer(&agent).json(json!({})).send().await.problem(403, "forbidden");

    // Tenancy.
    let (_, other) = h.account(Role::Admin).await;
    api.get(&format!("/api/v1/automations/{}", id(&rule))).bearer(&other).send().await.problem(404, "not-found");
}

#[tokio::test]
async fn the_scoring_model_and_score_history() {
    let h = Harness::memory().await;
    let (account, key) = h.account(Role::Admin).await;
    let api = &h.api;
    let model = api.get("/api/v1/scoring").bearer(&key).send().await.ok_json(200);
    assert_eq!(model["thresholds"], json!([{"min_score": 70, "stage": "qualified"}]), "the default: {model}");
    let mine = json!({"replied": 7, "keywords": [{"words": ["orçamento"], "points": 20}],
        "thresholds": [{"min_score": 20, "stage": "qualified"}]});
    let stored = api.put("/api/v1/scoring").bearer(&key).json(mine).send().await.ok_json(200);
    assert_eq!(stored["replied"], 7);
    assert_eq!(api.get("/api/v1/scoring").bearer(&key).send().await.ok_json(200), stored);
    let p =
        api.put("/api/v1/scoring").bearer(&key).json(json!({"replied": 500})).send().await.problem(422, "validation");
    assert_eq!(p["field"], "replied");
    api.put("/api/v1/scoring").bearer(&key).json(json!({"nope": 1})).send().await.expect(422);

    let contact = create_contact(api, &key, "Ana", 1).await;
    let cid = id(&contact);
    let changed = h.crm().change_score(account, cid.parse().unwrap(), 25, "manual", "test:1", None).await.unwrap();
    assert_eq!(changed.unwrap().new_stage, Some(crm_core::LeadStage::Qualified));
    let history = api.get(&format!("/api/v1/contacts/{cid}/score-history")).bearer(&key).send().await.ok_json(200);
    let item = &history["items"][0];
    assert_eq!((item["old_score"].as_u64(), item["new_score"].as_u64()), (Some(0), Some(25)), "{history}");
    assert_eq!(item["new_stage"], "qualified");
    let missing = uuid::Uuid::now_v7();
    api.get(&format!("/api/v1/contacts/{missing}/score-history")).bearer(&key).send().await.problem(404, "not-found");
}

/// The example rule, imported through the API, runs on the server's own
/// workers: the lead is scored, tagged, staged, and the sales team's
/// receiver gets the signed-shape POST of the contact's event.
async fn lead_qualification_end_to_end(h: &Harness) {
    let (receiver, inbox) = crate::webhooks::receiver().await;
    let (_, key) = h.account(Role::Admin).await;
    let api: &Api = &h.api;
    let mut rule = example();
    rule["actions"][3]["target"]["url"] = json!(receiver);
    let created = api.post("/api/v1/automations").bearer(&key).json(rule).send().await.ok_json(201);
    let rid = id(&created);
    let contact = create_contact(api, &key, "João", 7).await;
    let cid = id(&contact);
    let mut runs = Value::Null;
    for _ in 0..500 {
        runs = api.get(&format!("/api/v1/automations/{rid}/runs")).bearer(&key).send().await.ok_json(200);
        if runs["items"][0]["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs["items"][0]["status"], "completed", "{runs}");
    let got = api.get(&format!("/api/v1/contacts/{cid}")).bearer(&key).send().await.ok_json(200);
    assert_eq!((got["lead_score"].as_u64(), got["lead_stage"].as_str()), (Some(60), Some("contacted")), "{got}");
    assert_eq!(got["tags"], json!(["lead"]));
    let history = api.get(&format!("/api/v1/contacts/{cid}/score-history")).bearer(&key).send().await.ok_json(200);
    assert_eq!(history["items"][0]["reason"], "automation");
    let hits = crate::webhooks::wait_for(&inbox, 1).await;
    let (headers, body) = &hits[0];
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["type"], "contact.created");
    assert_eq!(body["data"]["id"], json!(cid));
    assert_eq!(headers["webhook-id"].to_str().unwrap(), runs["items"][0]["event_id"].as_str().unwrap());
    assert!(headers.contains_key("webhook-timestamp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_qualification_runs_on_sqlite() {
    let h = Harness::sqlite_with(crate::webhooks::allow_loopback).await;
    lead_qualification_end_to_end(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_qualification_runs_on_postgres() {
    let Some(h) = Harness::postgres_with("lead_qualification_runs_on_postgres", crate::webhooks::allow_loopback).await
    else {
        return;
    };
    lead_qualification_end_to_end(&h).await;
    h.stop().await;
}

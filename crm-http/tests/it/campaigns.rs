//! Campaigns over HTTP: create, start, watch the counters, recipients, the
//! state machine's refusals and every route's problem responses, against a
//! real server (its runtime runs the dispatcher and the campaign workers).

use crm_core::Role;
use serde_json::{Value, json};
use std::time::Duration;

use crate::helpers::{Api, Harness, create_template, id, phone};

async fn wait_completed(api: &Api, token: &str, cid: &str) -> Value {
    for _ in 0..400 {
        let v = api.get(&format!("/api/v1/campaigns/{cid}")).bearer(token).send().await.ok_json(200);
        if v["state"] == "completed" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the campaign did not complete");
}

async fn lifecycle(h: &Harness) {
    let api = &h.api;
    let (account, admin) = h.account(Role::Admin).await;
    let agent = h.key(account, Role::Agent).await;
    let mut contact_ids = Vec::new();
    for n in 0..12 {
        let body = json!({ "name": format!("Ana {n}"), "phone": phone(n), "tags": ["vip"] });
        let created = api.post("/api/v1/contacts").bearer(&admin).json(body).send().await.ok_json(201);
        contact_ids.push(id(&created));
    }
    let opted_out = json!({ "name": "Bia", "phone": phone(99), "tags": ["vip"], "opt_in": "opted_out" });
    api.post("/api/v1/contacts").bearer(&admin).json(opted_out).send().await.expect(201);
    create_template(api, &admin, "promo", "Oi {{first_name}}, {{offer}}!").await;
    let body = |extra: Value| {
        let mut b = json!({
            "name": "Black Friday",
            "template": "promo",
            "variables": { "offer": "30% off" },
            "audience": { "type": "tag", "tag": "vip" }
        });
        if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(extra.clone());
        }
        b
    };
    let admin_ref = admin.as_str();
    let post = |b: Value| async move { api.post("/api/v1/campaigns").bearer(admin_ref).json(b).send().await };

    // Refusals, each with its problem.
    post(body(json!({ "template": "nope" }))).await.problem(404, "not-found");
    post(body(json!({ "channel_id": "01936f4e-8b7a-7cc0-9a53-6f1d2c3b4a59" }))).await.problem(404, "not-found");
    post(body(json!({ "audience": { "type": "contacts", "contact_ids": [] } }))).await.problem(422, "validation");
    post(body(json!({ "audience": { "type": "tag" } }))).await.problem(422, "validation");
    post(body(json!({ "scheduled_at": "2001-01-01T00:00:00Z" }))).await.problem(422, "validation");
    post(body(json!({ "status": "running" }))).await.problem(422, "validation");
    post(body(json!({ "name": "" }))).await.problem(422, "validation");
    let p = post(body(json!({ "variables": {} }))).await.problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("offer"), "names the missing variable: {p}");
    api.post("/api/v1/campaigns").bearer(&agent).json(body(json!({}))).send().await.problem(403, "forbidden");

    let created = post(body(json!({}))).await;
    created.expect(201);
    let c = created.json();
    let cid = id(&c);
    assert_eq!(created.header("location").as_deref(), Some(format!("/api/v1/campaigns/{cid}").as_str()));
    assert_eq!(c["state"], "draft");
    let path = |action: &str| format!("/api/v1/campaigns/{cid}/{action}");
    api.post(&path("pause")).bearer(&admin).send().await.problem(409, "conflict");
    api.post(&path("resume")).bearer(&admin).send().await.problem(409, "conflict");
    api.post(&path("start")).bearer(&agent).send().await.problem(403, "forbidden");
    let started = api.post(&path("start")).bearer(&admin).send().await.ok_json(200);
    assert_eq!(started["state"], "running");
    api.post(&path("start")).bearer(&admin).send().await.problem(409, "conflict");
    api.post(&path("schedule"))
        .bearer(&admin)
        .json(json!({ "scheduled_at": "2999-01-01T00:00:00Z" }))
        .send()
        .await
        .problem(409, "conflict");

    let done = wait_completed(api, &agent, &cid).await;
    let k = &done["counters"];
    assert_eq!(
        (k["recipients"].as_u64(), k["sent"].as_u64(), k["skipped"].as_u64()),
        (Some(13), Some(12), Some(1)),
        "{done}"
    );
    assert_eq!(done["rate_per_second"], Value::Null, "the recording channel has no rate");
    api.post(&path("cancel")).bearer(&admin).send().await.problem(409, "conflict");

    let page = api.get(&format!("{}?limit=5", path("recipients"))).bearer(&agent).send().await.ok_json(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let after = page["next_after"].as_u64().expect("a next page");
    let rest = api.get(&format!("{}?after={after}&limit=100", path("recipients"))).bearer(&agent).send().await;
    assert_eq!(rest.ok_json(200)["items"].as_array().unwrap().len(), 8);
    let skipped = api.get(&format!("{}?state=skipped", path("recipients"))).bearer(&agent).send().await.ok_json(200);
    assert_eq!(skipped["items"][0]["reason"], "opted_out", "{skipped}");
    api.get(&format!("{}?state=nope", path("recipients"))).bearer(&agent).send().await.problem(400, "bad-request");
    api.get(&format!("{}?limit=0", path("recipients"))).bearer(&agent).send().await.problem(422, "validation");

    let list = api.get("/api/v1/campaigns").bearer(&agent).send().await.ok_json(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let events = api.get("/api/v1/events?limit=1000").bearer(&admin).send().await.ok_json(200);
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .or(events.as_array())
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.starts_with("campaign."))
        .collect();
    assert_eq!(kinds, ["campaign.created", "campaign.started", "campaign.completed"]);

    // Another account sees none of it.
    let (_, other) = h.account(Role::Admin).await;
    api.get(&format!("/api/v1/campaigns/{cid}")).bearer(&other).send().await.problem(404, "not-found");
    api.post(&path("cancel")).bearer(&other).send().await.problem(404, "not-found");
    api.get(&path("recipients")).bearer(&other).send().await.problem(404, "not-found");

    // Scheduled, then cancelled before its time.
    let later = post(body(json!({ "scheduled_at": "2999-01-01T00:00:00Z" }))).await.ok_json(201);
    assert_eq!(later["state"], "scheduled");
    let lid = id(&later);
    let cancelled = api.post(&format!("/api/v1/campaigns/{lid}/cancel")).bearer(&admin).send().await.ok_json(200);
    assert_eq!(cancelled["state"], "cancelled");
    api.post(&format!("/api/v1/campaigns/{lid}/resume")).bearer(&admin).send().await.problem(409, "conflict");

    // Deleting: not while under way, not by an agent or another account;
    // a finished one goes with its recipients, its messages stay.
    let soon = post(body(json!({ "scheduled_at": "2999-01-01T00:00:00Z" }))).await.ok_json(201);
    let sid = id(&soon);
    api.delete(&format!("/api/v1/campaigns/{sid}")).bearer(&admin).send().await.problem(409, "conflict");
    api.delete(&format!("/api/v1/campaigns/{cid}")).bearer(&agent).send().await.problem(403, "forbidden");
    api.delete(&format!("/api/v1/campaigns/{cid}")).bearer(&other).send().await.problem(404, "not-found");
    let deleted = api.delete(&format!("/api/v1/campaigns/{cid}")).bearer(&admin).send().await;
    deleted.expect(204);
    api.get(&format!("/api/v1/campaigns/{cid}")).bearer(&agent).send().await.problem(404, "not-found");
    api.get(&path("recipients")).bearer(&agent).send().await.problem(404, "not-found");
    api.delete(&format!("/api/v1/campaigns/{cid}")).bearer(&admin).send().await.problem(404, "not-found");
    api.delete(&format!("/api/v1/campaigns/{lid}")).bearer(&admin).send().await.expect(204);
    let events = api.get("/api/v1/events?limit=1000").bearer(&admin).send().await.ok_json(200);
    let items = |v: &Value| v["items"].as_array().or(v.as_array()).unwrap().clone();
    let deleted_events: Vec<Value> = items(&events).into_iter().filter(|e| e["type"] == "campaign.deleted").collect();
    assert_eq!(deleted_events.len(), 2, "{deleted_events:?}");
    assert_eq!(deleted_events[0]["payload"]["id"], cid.as_str());
    assert_eq!(deleted_events[0]["payload"]["state"], "completed");
    // The messages it sent are still in the contacts' threads.
    for contact in &contact_ids {
        let thread = api.get(&format!("/api/v1/contacts/{contact}/messages")).bearer(&agent).send().await.ok_json(200);
        let texts: Vec<Value> = items(&thread).iter().map(|m| m["content"]["rendered"].clone()).collect();
        assert_eq!(texts.len(), 1, "{thread}");
        assert!(texts[0].as_str().is_some_and(|t| t.contains("30% off")), "{texts:?}");
    }
    let list = api.get("/api/v1/campaigns").bearer(&agent).send().await.ok_json(200);
    let left: Vec<&str> = list["items"].as_array().unwrap().iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(left, [sid.as_str()]);
}

#[tokio::test]
async fn campaigns_over_http_on_sqlite() {
    let h = Harness::sqlite().await;
    lifecycle(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn campaigns_over_http_on_postgres() {
    let Some(h) = Harness::postgres("campaigns_over_http_on_postgres").await else { return };
    lifecycle(&h).await;
    h.stop().await;
}

//! n8n through the server: the `/api/v1/n8n/workflows` routes and the
//! `workflow.trigger` jobs over a recording engine, and end to end against
//! a real n8n (`CRM_TEST_N8N_URL`, `CRM_TEST_N8N_API_KEY`): a workflow whose
//! webhook trigger receives a crm event and whose HTTP Request node calls
//! crm's API back with an API key to tag the contact.

use crm_core::memory::RecordingWorkflows;
use crm_core::{Job, Role};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{Harness, create_contact, id};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn trigger_job(h: &Harness, account: crm_core::AccountId, workflow: &str, event: Value) {
    let now = chrono::Utc::now();
    let payload = json!({ "workflow": workflow, "event": event });
    let job = Job::new("workflow.trigger", Some(account), payload, now, now).unwrap();
    h.crm().store().schedule_job(&job).await.unwrap();
}

#[tokio::test]
async fn workflow_routes_and_trigger_jobs_over_a_recording_engine() {
    let engine = RecordingWorkflows::new();
    engine.add_webhook("wf1AbCdEfGhIjKlM", "Lead qualification", false, "crm-lead");
    let e = engine.clone();
    let h = Harness::sqlite_builder(|_| {}, move |b| b.workflows(Arc::new(e))).await;
    let api = &h.api;
    let (account, owner) = h.account(Role::Owner).await;
    let admin = h.key(account, Role::Admin).await;

    let list = api.get("/api/v1/n8n/workflows").bearer(&owner).send().await.ok_json(200);
    assert_eq!(list["items"][0]["name"], "Lead qualification");
    api.get("/api/v1/n8n/workflows").bearer(&admin).send().await.problem(403, "forbidden");
    api.get("/api/v1/n8n/workflows?limit=0").bearer(&owner).send().await.problem(422, "validation");
    let path = "/api/v1/n8n/workflows/wf1AbCdEfGhIjKlM";
    assert_eq!(api.get(path).bearer(&owner).send().await.ok_json(200)["active"], false);
    assert_eq!(api.post(&format!("{path}/activate")).bearer(&owner).send().await.ok_json(200)["active"], true);
    assert_eq!(api.post(&format!("{path}/deactivate")).bearer(&owner).send().await.ok_json(200)["active"], false);
    assert_eq!(api.get(&format!("{path}/export")).bearer(&owner).send().await.ok_json(200)["id"], "wf1AbCdEfGhIjKlM");
    api.get("/api/v1/n8n/workflows/nope1234").bearer(&owner).send().await.problem(404, "not-found");
    api.get("/api/v1/n8n/workflows/a%20b").bearer(&owner).send().await.problem(422, "validation");

    // A workflow.trigger job runs through the server's runtime (to the
    // active workflow's webhook).
    assert_eq!(api.post(&format!("{path}/activate")).bearer(&owner).send().await.ok_json(200)["active"], true);
    trigger_job(&h, account, "crm-lead", json!({ "type": "contact.created", "data": { "id": "c1" } })).await;
    for _ in 0..200 {
        if !engine.triggered().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        engine.triggered(),
        vec![("crm-lead".to_owned(), json!({ "type": "contact.created", "data": { "id": "c1" } }))]
    );
    h.stop().await;

    // Without n8n the routes answer 503.
    let h = Harness::sqlite().await;
    let (_, owner) = h.account(Role::Owner).await;
    h.api.get("/api/v1/n8n/workflows").bearer(&owner).send().await.problem(503, "unavailable");
    h.stop().await;
}

/// The workflow imported into the real n8n: a webhook trigger at `path`,
/// then an HTTP Request node that adds the tag `from-n8n` to the contact the
/// event names, through crm's API with `crm_key`.
fn workflow(path: &str, crm_base: &str, crm_key: &str) -> Value {
    json!({
        "name": format!("crm e2e {path}"),
        "nodes": [
            {
                "id": "5a3c7f4e-2b1d-4c8e-9f6a-0d1e2f3a4b5c",
                "name": "crm event",
                "type": "n8n-nodes-base.webhook",
                "typeVersion": 2,
                "position": [0, 0],
                "webhookId": uuid::Uuid::new_v4().to_string(),
                "parameters": { "httpMethod": "POST", "path": path, "responseMode": "onReceived", "options": {} }
            },
            {
                "id": "6b4d8a5f-3c2e-4d9f-8a7b-1e2f3a4b5c6d",
                "name": "Tag contact in crm",
                "type": "n8n-nodes-base.httpRequest",
                "typeVersion": 4.2,
                "position": [300, 0],
                "parameters": {
                    "method": "POST",
                    "url": format!("={{{{ '{crm_base}/api/v1/contacts/' + $json.body.data.id + '/tags' }}}}"),
                    "sendHeaders": true,
                    "headerParameters": { "parameters": [{ "name": "Authorization", "value": format!("Bearer {crm_key}") }] },
                    "sendBody": true,
                    "specifyBody": "json",
                    "jsonBody": "{\"tags\": [\"from-n8n\"]}",
                    "options": {}
                }
            }
        ],
        "connections": { "crm event": { "main": [[{ "node": "Tag contact in crm", "type": "main", "index": 0 }]] } },
        "settings": { "executionOrder": "v1" }
    })
}

#[tokio::test]
async fn a_real_n8n_workflow_receives_a_crm_event_and_tags_the_contact_back() {
    let Some(n8n_url) = crm_core::testing::service_url("CRM_TEST_N8N_URL", "n8n end to end") else { return };
    let Some(n8n_key) = crm_core::testing::service_url("CRM_TEST_N8N_API_KEY", "n8n end to end") else { return };
    let (u, k) = (n8n_url.clone(), n8n_key.clone());
    let h = Harness::sqlite_with(move |c| {
        c.n8n.url = Some(u);
        c.n8n.api_key = Some(k.into());
        c.n8n.webhook_secret = Some(SECRET.to_owned().into());
    })
    .await;
    let api = &h.api;
    let (account, owner) = h.account(Role::Owner).await;
    let agent = h.key(account, Role::Agent).await;
    let contact = id(&create_contact(api, &owner, "Ana", 7).await);

    // /ready includes n8n's /healthz.
    let ready = api.get("/ready").send().await.json();
    assert!(ready.to_string().contains("n8n"), "n8n is probed: {ready}");

    // Import the workflow through n8n's API.
    let http = reqwest::Client::new();
    let path = format!("crm-e2e-{}", uuid::Uuid::now_v7().simple());
    let created: Value = http
        .post(format!("{n8n_url}/api/v1/workflows"))
        .header("X-N8N-API-KEY", &n8n_key)
        .json(&workflow(&path, &h.server.as_ref().unwrap().base, &agent))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wid = created["id"].as_str().unwrap_or_else(|| panic!("n8n did not create the workflow: {created}")).to_owned();

    // The adapter passes the Workflows suite against the real n8n, on this
    // (still inactive) workflow; the suite leaves it inactive.
    let adapter = crm_connectors::n8n::N8n::builder()
        .base_url(&n8n_url)
        .api_key(&n8n_key)
        .webhook_secret(crm_webhooks::signing::SigningSecret::parse(SECRET).unwrap())
        .build()
        .unwrap();
    let fixture = crm_core::testing::workflows::WorkflowsFixture::new(&wid, &path).settle(Duration::from_secs(20));
    crm_core::testing::workflows::run_all(&adapter, &fixture).await;

    // Activate it through crm, and find it in crm's list and export.
    let wpath = format!("/api/v1/n8n/workflows/{wid}");
    let activated = api.post(&format!("{wpath}/activate")).bearer(&owner).send().await.ok_json(200);
    assert_eq!(activated["active"], true);
    let export = api.get(&format!("{wpath}/export")).bearer(&owner).send().await.ok_json(200);
    assert_eq!(export["nodes"][0]["parameters"]["path"], path.as_str());
    let mut listed = false;
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map(|c| format!("?cursor={c}")).unwrap_or_default();
        let page = api.get(&format!("/api/v1/n8n/workflows{q}")).bearer(&owner).send().await.ok_json(200);
        listed |= page["items"].as_array().unwrap().iter().any(|w| w["id"] == wid.as_str());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(listed, "crm lists the workflow");

    // A crm event goes to the workflow (a workflow.trigger job, as automation rules schedule it).
    let event = json!({ "type": "contact.created", "timestamp": chrono::Utc::now(), "data": { "id": contact } });
    trigger_job(&h, account, &path, event).await;
    let mut tags = Value::Null;
    for _ in 0..300 {
        tags = api.get(&format!("/api/v1/contacts/{contact}")).bearer(&owner).send().await.ok_json(200)["tags"].clone();
        if tags.as_array().is_some_and(|t| t.iter().any(|t| t == "from-n8n")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tags.to_string().contains("from-n8n"), "n8n tagged the contact through crm's API: {tags}");

    // Clean up: deactivate through crm, delete through n8n.
    let off = api.post(&format!("{wpath}/deactivate")).bearer(&owner).send().await.ok_json(200);
    assert_eq!(off["active"], false);
    for _ in 0..20 {
        let r = http.delete(format!("{n8n_url}/api/v1/workflows/{wid}")).header("X-N8N-API-KEY", &n8n_key).send().await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    h.stop().await;
}

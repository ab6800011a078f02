//! The `whatsapp-web` kind in the server: a real server on SQLite whose
//! worker side supervises the session in headless Chromium against the
//! local stand-in of WhatsApp Web; the QR route's formats and errors, the
//! pairing, `/ready` reporting the session, and shutdown closing Chromium.

#[path = "../../../crm-whatsapp/tests/support/web_page.rs"]
mod web_page;

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Harness, temp_dir};

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn channel_check(ready: &Value, id: &str) -> Value {
    ready["channels"]["items"].as_array().into_iter().flatten().find(|c| c["id"] == id).cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_pairing_and_ready_through_the_server() {
    let test = "qr_pairing_and_ready_through_the_server";
    let Some(chromium) = crm_core::testing::service_url("CRM_TEST_CHROMIUM", test) else { return };
    let page = web_page::FakeWhatsApp::start(crm_whatsapp::web::PINNED_VERSION).await;
    let data = temp_dir("waweb");
    let h = Harness::sqlite_with(|c| {
        c.data_dir = data.clone();
        c.whatsapp_web_chromium = chromium.into();
        c.whatsapp_web_url = page.url().into();
        c.whatsapp_web_lease_secs = 6;
    })
    .await;
    let running = h.server.as_ref().expect("server");
    let key = running.admin_key.clone();
    let api = &h.api;

    let channel = api
        .post("/api/v1/channels")
        .bearer(&key)
        .json(json!({ "kind": "whatsapp-web", "name": "Celular" }))
        .send()
        .await
        .ok_json(201);
    let id = channel["id"].as_str().expect("id").to_owned();
    // Settings or credentials make no sense for this kind.
    api.post("/api/v1/channels")
        .bearer(&key)
        .json(json!({ "kind": "whatsapp-web", "name": "x", "settings": { "url": "https://evil.example" } }))
        .send()
        .await
        .problem(422, "validation");

    // The supervisor opens the session; the QR code appears.
    let qr_path = format!("/api/v1/channels/{id}/qr");
    until("the QR code", async || api.get(&qr_path).bearer(&key).send().await.status == 200).await;
    let png = api.get(&qr_path).bearer(&key).send().await;
    assert_eq!(png.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(png.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(&png.body[..4], b"\x89PNG");
    let raw = api.get(&format!("{qr_path}?format=raw")).bearer(&key).send().await;
    raw.expect(200);
    assert!(raw.text().starts_with("2@ref"), "{}", raw.text());
    let text = api.get(&format!("{qr_path}?format=text")).bearer(&key).send().await;
    text.expect(200);
    assert!(text.text().lines().count() > 10);
    api.get(&format!("{qr_path}?format=gif")).bearer(&key).send().await.problem(422, "validation");

    // /ready shows the session waiting to be paired.
    let ready = api.get("/ready").send().await.json();
    let check = channel_check(&ready, &id);
    assert_eq!(check["kind"], "whatsapp-web");
    assert_eq!(check["health"], "degraded", "{check}");
    assert!(check["detail"].as_str().is_some_and(|d| d.contains("pairing")), "{check}");

    page.command(json!({ "op": "pair", "phone": "5511900000000" }));
    until("connected", async || {
        let ready = api.get("/ready").send().await.json();
        channel_check(&ready, &id)["health"] == "healthy"
    })
    .await;
    api.get(&qr_path).bearer(&key).send().await.problem(409, "conflict");
    let events = api.get("/api/v1/events?limit=1000").bearer(&key).send().await.ok_json(200);
    let kinds: Vec<String> = events["items"]
        .as_array()
        .or(events.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str().or(e["event_type"].as_str()).map(String::from))
        .collect();
    assert!(kinds.iter().any(|k| k == "channel.qr"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "channel.state_changed"), "{kinds:?}");

    // Errors: another kind, a missing channel, a viewer's key.
    let recording = api.get("/api/v1/channels").bearer(&key).send().await.ok_json(200);
    let other = recording["items"]
        .as_array()
        .or(recording.as_array())
        .into_iter()
        .flatten()
        .find(|c| c["kind"] == "recording")
        .and_then(|c| c["id"].as_str())
        .expect("the bootstrap recording channel")
        .to_owned();
    api.get(&format!("/api/v1/channels/{other}/qr")).bearer(&key).send().await.problem(422, "validation");
    api.get(&format!("/api/v1/channels/{}/qr", crm_core::ChannelId::new()))
        .bearer(&key)
        .send()
        .await
        .problem(404, "not-found");
    api.post(&format!("/api/v1/channels/{other}/pair")).bearer(&key).send().await.problem(422, "validation");

    // Starting over closes the session and opens it again (the profile is
    // still paired here, so it reconnects without a QR code).
    let engine = h.state.whatsapp_web().expect("engine").clone();
    let channel_id: crm_core::ChannelId = id.parse().expect("channel id");
    api.post(&format!("/api/v1/channels/{id}/pair")).bearer(&key).send().await.expect(202);
    until("the session opened again", async || {
        engine.status(channel_id).is_some_and(|s| s.state == crm_whatsapp::web::SessionState::Connected)
    })
    .await;
    assert!(engine.chromium_memory().processes > 0);
    let Some(running) = h.server else { unreachable!() };
    running.stop().await.expect("stop");
    assert_eq!(engine.chromium_memory().processes, 0, "shutdown closes Chromium");
    let _ = std::fs::remove_dir_all(&data);
}

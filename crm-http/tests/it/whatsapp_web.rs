//! The `whatsapp-web` kind in the server: a real server on SQLite whose
//! worker side supervises the session in headless Chromium against the
//! local stand-in of WhatsApp Web; the QR route's formats and errors, the
//! pairing, `/ready` reporting the session, and shutdown closing Chromium.

#[path = "../../../crm-whatsapp/tests/support/web_page.rs"]
pub(crate) mod web_page;

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

fn engine_state(h: &Harness, id: &str) -> Option<crm_whatsapp::web::SessionState> {
    let engine = h.state.whatsapp_web()?;
    engine.status(id.parse().ok()?).map(|s| s.state)
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

    // Pairing by phone-number code, beside the QR code.
    let pair_path = format!("/api/v1/channels/{id}/pair");
    let code = api.post(&pair_path).bearer(&key).json(json!({ "phone": "+55 11 98765-4321" })).send().await;
    assert_eq!(code.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(code.ok_json(200), json!({ "code": web_page::PAIRING_CODE }));
    assert_eq!(page.pairing_requests(), vec!["5511987654321"]);
    let p = api.post(&pair_path).bearer(&key).json(json!({ "phone": "12" })).send().await.problem(422, "validation");
    assert_eq!(p["field"], "phone", "{p}");
    api.post(&pair_path)
        .bearer(&key)
        .json(json!({ "phone": "+5511987654321", "x": 1 }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(page.pairing_requests().len(), 1);

    page.command(json!({ "op": "pair", "phone": "5511900000000" }));
    until("connected", async || {
        let ready = api.get("/ready").send().await.json();
        channel_check(&ready, &id)["health"] == "healthy"
    })
    .await;
    api.get(&qr_path).bearer(&key).send().await.problem(409, "conflict");
    api.post(&pair_path).bearer(&key).json(json!({ "phone": "+5511987654321" })).send().await.problem(409, "conflict");

    // The session loses its connection: every route that needs it answers
    // 409 `channel-not-connected` (the typed error, not a provider failure).
    page.command(json!({ "op": "state", "state": "TIMEOUT" }));
    until("reconnecting", async || {
        engine_state(&h, &id).is_some_and(|s| s != crm_whatsapp::web::SessionState::Connected)
    })
    .await;
    let groups_path = format!("/api/v1/channels/{id}/groups");
    let p =
        api.get(&format!("{groups_path}?refresh=true")).bearer(&key).send().await.problem(409, "channel-not-connected");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("not connected")), "{p}");
    api.post(&groups_path)
        .bearer(&key)
        .json(json!({ "subject": "Clientes", "participants": ["+5511987654321"] }))
        .send()
        .await
        .problem(409, "channel-not-connected");
    api.get(&qr_path).bearer(&key).send().await.problem(409, "channel-not-connected");
    page.command(json!({ "op": "state", "state": "CONNECTED" }));
    until("connected again", async || engine_state(&h, &id) == Some(crm_whatsapp::web::SessionState::Connected)).await;
    api.get(&format!("{groups_path}?refresh=true")).bearer(&key).send().await.ok_json(200);
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

/// `crm-server channel pair`: a process of its own takes the session,
/// prints the pairing code (with `--phone`) or the QR code for a terminal,
/// and exits once the phone paired; it refuses a session another process
/// holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_pair_command_prints_the_code_or_the_qr_and_waits() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let test = "the_channel_pair_command_prints_the_code_or_the_qr_and_waits";
    let Some(chromium) = crm_core::testing::service_url("CRM_TEST_CHROMIUM", test) else { return };
    let page = web_page::FakeWhatsApp::start(crm_whatsapp::web::PINNED_VERSION).await;
    let dir = temp_dir("waweb-cli");
    let db = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    let config =
        crm_http::Config { database_url: Some(db.clone().into()), data_dir: dir.clone(), ..Default::default() };
    let parts = crm_http::Server::builder(config).bootstrap(false).assemble(false).await.expect("assemble");
    let crm = parts.state.crm().clone();
    let account = crm.create_account("Loja").await.expect("account").id;
    let new =
        |name: &str| crm_core::NewChannel { kind: "whatsapp-web".into(), name: name.into(), ..Default::default() };
    let by_code = crm.create_channel(account, new("code")).await.expect("channel");
    let by_qr = crm.create_channel(account, new("qr")).await.expect("channel");

    let run = |channel: crm_core::ChannelId, extra: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_crm-server"));
        let id = channel.to_string();
        c.args(["channel", "pair", id.as_str(), "--timeout", "60"])
            .args(extra)
            .env_clear()
            .env("DATABASE_URL", &db)
            .env("CRM_DATA_DIR", &dir)
            .env("CRM_WHATSAPP_WEB_CHROMIUM", &chromium)
            .env("CRM_WHATSAPP_WEB_URL", page.url())
            .env("RUST_LOG", "warn")
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        c.spawn().expect("crm-server")
    };
    // Reads stdout until a line contains `marker`; returns everything read.
    async fn read_until(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>, marker: &str) -> String {
        let mut seen = String::new();
        let found = tokio::time::timeout(Duration::from_secs(40), async {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(marker) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "no {marker:?} in {seen}");
        seen
    }

    let mut child = run(by_code.id, &["--phone", "+55 11 98765-4321"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let out = read_until(&mut lines, web_page::PAIRING_CODE).await;
    assert!(out.contains("Link with phone number"), "{out}");
    assert_eq!(page.pairing_requests(), vec!["5511987654321"]);
    page.command(json!({ "op": "pair", "phone": "5511987654321" }));
    read_until(&mut lines, "paired: channel").await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits").expect("status");
    assert!(status.success(), "{status}");
    assert_eq!(crm.store().channel_lease_owner(by_code.id).await.expect("owner"), None, "lease given back");

    // Another process holds the QR channel's session: refused, naming it.
    assert!(crm.store().acquire_channel_lease(by_qr.id, "server-1", Duration::from_secs(30)).await.expect("lease"));
    let held = run(by_qr.id, &[]).wait_with_output().await.expect("output");
    assert!(!held.status.success());
    crm.store().release_channel_lease(by_qr.id, "server-1").await.expect("release");

    let mut child = run(by_qr.id, &[]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let out = read_until(&mut lines, "Scan this QR code").await;
    assert!(out.contains("session: pairing"), "{out}");
    // The QR itself: block characters over several lines.
    let qr = read_until(&mut lines, "▀").await;
    assert!(qr.contains('▀'), "{qr}");
    page.command(json!({ "op": "pair", "phone": "5511900000000" }));
    read_until(&mut lines, "paired: channel").await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits").expect("status");
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

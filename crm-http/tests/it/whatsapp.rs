//! The WhatsApp Cloud API webhook over HTTP: the handshake, the signature
//! matrix, every fixture stored, duplicates, statuses out of order, and a
//! burst of 1,000 notifications with none lost.

use crate::helpers::Harness;
use crm_core::{AccountId, Channel, MessageContent, MessageStatus, NewChannel, Role};
use crm_whatsapp::webhook::sign;
use serde_json::{Value, json};
use std::time::Duration;

const PNID: &str = "106540352242922";
const APP_SECRET: &str = "test-app-secret";
const VERIFY_TOKEN: &str = "test-verify-token";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../crm-whatsapp/fixtures/webhooks/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn whatsapp_channel(h: &Harness, account: AccountId, pnid: &str, app_secret: &str) -> Channel {
    let credentials =
        [("access_token", "EAAG-not-used-here"), ("app_secret", app_secret), ("verify_token", VERIFY_TOKEN)];
    channel_with(h, account, pnid, json!({ "base_url": "http://127.0.0.1:9" }), &credentials).await
}

async fn channel_with(
    h: &Harness,
    account: AccountId,
    pnid: &str,
    settings: Value,
    credentials: &[(&str, &str)],
) -> Channel {
    let mut sealed = crm_core::secrets::Credentials::new();
    for (k, v) in credentials {
        sealed.insert(*k, *v);
    }
    let input = NewChannel {
        kind: "whatsapp-cloud".into(),
        name: "WhatsApp".into(),
        provider_id: Some(pnid.into()),
        settings: Some(settings),
        credentials: Some(sealed),
        ..Default::default()
    };
    h.crm().create_channel(account, input).await.unwrap()
}

async fn setup() -> (Harness, AccountId, Channel) {
    let h = Harness::sqlite().await;
    let (account, _) = h.account(Role::Admin).await;
    let channel = whatsapp_channel(&h, account, PNID, APP_SECRET).await;
    (h, account, channel)
}

/// The contact the fixtures' sender is.
async fn ana(h: &Harness, account: AccountId) -> crm_core::Contact {
    let input = crm_core::NewContact { name: "Ana".into(), phone: "+16505551234".into(), ..Default::default() };
    h.crm().create_contact(account, input).await.unwrap()
}

async fn post(h: &Harness, body: &[u8], signature: Option<&str>) -> crate::helpers::Resp {
    let mut call = h.api.post(&format!("/webhooks/whatsapp-cloud/{PNID}")).raw("application/json", body.to_vec());
    if let Some(s) = signature {
        call = call.header("x-hub-signature-256", s);
    }
    call.send().await
}

async fn post_signed(h: &Harness, body: &[u8]) -> Value {
    post(h, body, Some(&sign(APP_SECRET.as_bytes(), body))).await.ok_json(200)
}

#[tokio::test]
async fn whatsapp_handshake_echoes_the_challenge_only_for_the_verify_token() {
    let (h, _, _) = setup().await;
    let url = |pnid: &str, token: &str, mode: &str| {
        format!("/webhooks/whatsapp-cloud/{pnid}?hub.mode={mode}&hub.verify_token={token}&hub.challenge=1158201444")
    };
    let ok = h.api.get(&url(PNID, VERIFY_TOKEN, "subscribe")).send().await;
    ok.expect(200);
    assert_eq!(ok.text(), "1158201444");
    h.api.get(&url(PNID, "wrong-token", "subscribe")).send().await.problem(403, "forbidden");
    h.api.get(&url(PNID, VERIFY_TOKEN, "unsubscribe")).send().await.problem(403, "forbidden");
    h.api.get(&url("999", VERIFY_TOKEN, "subscribe")).send().await.problem(403, "forbidden");
    h.api.get(&url("not-a-number", VERIFY_TOKEN, "subscribe")).send().await.problem(403, "forbidden");
    h.api.get(&format!("/webhooks/whatsapp-cloud/{PNID}")).send().await.problem(403, "forbidden");
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_signature_matrix() {
    let (h, account, _) = setup().await;
    let body = fixture("text");
    let good = sign(APP_SECRET.as_bytes(), &body);
    let wrong_key = sign(b"another-secret", &body);
    for (label, signature) in [
        ("wrong key", Some(wrong_key.as_str())),
        ("empty", Some("")),
        ("truncated", Some(&good[..30])),
        ("missing", None),
    ] {
        let p = post(&h, &body, signature).await.problem(401, "unauthorized");
        assert!(p["detail"].as_str().unwrap().contains("X-Hub-Signature-256"), "{label}: {p}");
    }
    assert!(
        h.crm()
            .store()
            .find_message_by_provider_id(account, "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=")
            .await
            .unwrap()
            .is_none(),
        "nothing stored before a good signature"
    );
    let r = post(&h, &body, Some(&good)).await.ok_json(200);
    assert_eq!(r["messages"], 1);
    // Unknown numbers are refused; a signed body that is not a notification is a 400.
    let other = h
        .api
        .post("/webhooks/whatsapp-cloud/999")
        .raw("application/json", body.clone())
        .header("x-hub-signature-256", &good)
        .send()
        .await;
    other.problem(404, "not-found");
    let junk = b"{\"object\":\"page\"}";
    post(&h, junk, Some(&sign(APP_SECRET.as_bytes(), junk))).await.problem(400, "bad-request");
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_every_fixture_is_stored_once() {
    let (h, account, channel) = setup().await;
    let names = [
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive_button_reply",
        "interactive_list_reply",
        "button",
        "reaction",
        "order",
        "system",
        "unsupported",
        "unknown_type",
    ];
    for (i, name) in names.iter().enumerate() {
        // Each fixture reuses one wamid: give each its own.
        let text = String::from_utf8(fixture(name))
            .unwrap()
            .replace("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", &format!("wamid.FIXTURE{i}"));
        let r = post_signed(&h, text.as_bytes()).await;
        assert_eq!(r["messages"], 1, "{name}: {r}");
        let again = post_signed(&h, text.as_bytes()).await;
        assert_eq!((again["messages"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(1)), "{name}");
        let stored =
            h.crm().store().find_message_by_provider_id(account, &format!("wamid.FIXTURE{i}")).await.unwrap().unwrap();
        assert_eq!(stored.channel_id, Some(channel.id), "{name}");
        let expected_kind = match *name {
            "interactive_button_reply" | "interactive_list_reply" | "button" => "interactive",
            "order" | "system" | "unsupported" | "unknown_type" => "unsupported",
            other => other,
        };
        assert_eq!(stored.kind().as_str(), expected_kind, "{name}");
    }
    let contact =
        h.crm().store().find_message_by_provider_id(account, "wamid.FIXTURE0").await.unwrap().unwrap().contact_id;
    let c = h.crm().get_contact(account, contact).await.unwrap();
    assert_eq!(c.name, "Sheena Nelson");
    assert!(c.last_inbound_at.is_some(), "the 24-hour window opens");
    let unknown = h.crm().store().find_message_by_provider_id(account, "wamid.FIXTURE15").await.unwrap().unwrap();
    assert!(
        matches!(unknown.content, MessageContent::Unsupported { ref provider_type, ref payload, .. } if provider_type == "hologram" && payload["hologram"]["shape"] == "cube")
    );
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_statuses_never_move_backwards() {
    let (h, account, _) = setup().await;
    let contact = ana(&h, account).await;
    // Sent through the account's recording channel: a provider id to report on.
    let sent = h.crm().send_message(account, contact.id, MessageContent::text("Seu pedido saiu")).await.unwrap();
    let wamid = sent.provider_message_id.clone().unwrap();
    let report = |name: &str| {
        String::from_utf8(fixture(name))
            .unwrap()
            .replace("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDNTgzOTkyNTNBNzdBNjkzNTUA", &wamid)
    };
    assert_eq!(post_signed(&h, report("status_read").as_bytes()).await["statuses"], 1);
    post_signed(&h, report("status_delivered").as_bytes()).await;
    post_signed(&h, report("status_sent").as_bytes()).await;
    post_signed(&h, report("status_failed").as_bytes()).await;
    post_signed(&h, report("status_read").as_bytes()).await;
    let m = h.crm().get_message(account, sent.id).await.unwrap();
    assert_eq!(m.status, MessageStatus::Read);
    assert!(m.error.is_none() && m.failed_at.is_none());
    assert_eq!(m.read_at.unwrap().timestamp(), 1_750_263_773);
    // A report about a message crm never sent is counted, not an error.
    let r = post_signed(&h, &fixture("status_delivered")).await;
    assert_eq!(r["unknown_statuses"], 1);

    let failed_one = h.crm().send_message(account, contact.id, MessageContent::text("Oi")).await.unwrap();
    let wamid = failed_one.provider_message_id.clone().unwrap();
    let body = String::from_utf8(fixture("status_failed"))
        .unwrap()
        .replace("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDNTgzOTkyNTNBNzdBNjkzNTUA", &wamid);
    post_signed(&h, body.as_bytes()).await;
    let m = h.crm().get_message(account, failed_one.id).await.unwrap();
    assert_eq!(m.status, MessageStatus::Failed);
    let e = m.error.unwrap();
    assert_eq!((e.code.as_deref(), e.reason.as_str()), (Some("131026"), "Message undeliverable"));
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_changes_for_other_numbers_need_their_own_signature() {
    let (h, account, _) = setup().await;
    let other_account = h.crm().create_account("Other").await.unwrap();
    whatsapp_channel(&h, other_account.id, "222", "other-secret").await;
    // Signed with the first channel's secret but naming the other number.
    let body = String::from_utf8(fixture("text")).unwrap().replace(PNID, "222");
    let r = post_signed(&h, body.as_bytes()).await;
    assert_eq!((r["messages"].as_u64(), r["skipped_changes"].as_u64()), (Some(0), Some(1)), "{r}");
    let wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";
    assert!(h.crm().store().find_message_by_provider_id(other_account.id, wamid).await.unwrap().is_none());
    assert!(h.crm().store().find_message_by_provider_id(account, wamid).await.unwrap().is_none());
    h.stop().await;
}

async fn burst(h: &Harness, account: AccountId) {
    let template = String::from_utf8(fixture("text")).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    for i in 0..1000 {
        let body = template
            .replace("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", &format!("wamid.BURST{i:04}"))
            .replace("16505551234", &format!("165055{:05}", i % 100));
        let signature = sign(APP_SECRET.as_bytes(), body.as_bytes());
        let api = h.api.clone();
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let r = api
                .post(&format!("/webhooks/whatsapp-cloud/{PNID}"))
                .raw("application/json", body.into_bytes())
                .header("x-hub-signature-256", &signature)
                .send()
                .await;
            drop(permit);
            r
        });
    }
    let mut acknowledged = 0;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        acknowledged += r.json()["messages"].as_u64().unwrap();
    }
    assert_eq!(acknowledged, 1000);
    for i in 0..1000 {
        let found = h.crm().store().find_message_by_provider_id(account, &format!("wamid.BURST{i:04}")).await.unwrap();
        assert!(found.is_some(), "wamid.BURST{i:04} was acknowledged but not stored");
    }
}

#[tokio::test]
async fn whatsapp_a_burst_of_1000_webhooks_loses_nothing_on_sqlite() {
    let (h, account, _) = setup().await;
    // A bound against a hang, not a timing: CI machines are shared.
    tokio::time::timeout(Duration::from_secs(600), burst(&h, account)).await.expect("the burst finished (no hang)");
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_a_burst_of_1000_webhooks_loses_nothing_on_postgres() {
    let Some(h) = Harness::postgres("whatsapp_burst_postgres").await else { return };
    let (account, _) = h.account(Role::Admin).await;
    whatsapp_channel(&h, account, PNID, APP_SECRET).await;
    // A bound against a hang, not a timing: CI machines are shared.
    tokio::time::timeout(Duration::from_secs(600), burst(&h, account)).await.expect("the burst finished (no hang)");
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_window_opens_with_an_inbound_message_and_shows_in_the_api() {
    let h = Harness::sqlite().await;
    let (account, token) = h.account(Role::Admin).await;
    let channel = whatsapp_channel(&h, account, PNID, APP_SECRET).await;
    let contact = h
        .crm()
        .create_contact(
            account,
            crm_core::NewContact { name: "Sheena".into(), phone: "+16505551234".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let path = format!("/api/v1/contacts/{}/window", contact.id);
    let closed = h.api.get(&path).bearer(&token).send().await.ok_json(200);
    let wa =
        |w: &Value| w["channels"].as_array().unwrap().iter().find(|c| c["kind"] == "whatsapp-cloud").unwrap().clone();
    assert_eq!(wa(&closed)["open"], false, "{closed}");
    assert_eq!(wa(&closed)["window_secs"], 86_400);
    let recording = closed["channels"].as_array().unwrap().iter().find(|c| c["kind"] == "recording").unwrap().clone();
    assert_eq!((recording["open"].as_bool(), recording["window_secs"].is_null()), (Some(true), true));
    // Outside the window a free-form message through WhatsApp is refused before Meta is called.
    let refused = h
        .api
        .post("/api/v1/messages")
        .bearer(&token)
        .json(json!({ "contact_id": contact.id, "channel_id": channel.id, "text": "Oi" }))
        .send()
        .await
        .problem(422, "validation");
    assert!(refused["detail"].as_str().unwrap().contains("template"), "{refused}");
    // The contact writes (a fresh timestamp), so the window opens for 24 hours.
    let now = chrono::Utc::now().timestamp().to_string();
    let body = String::from_utf8(fixture("text")).unwrap().replace("1749416383", &now);
    post_signed(&h, body.as_bytes()).await;
    let open = h.api.get(&path).bearer(&token).send().await.ok_json(200);
    assert_eq!(wa(&open)["open"], true, "{open}");
    let closes: chrono::DateTime<chrono::Utc> = wa(&open)["closes_at"].as_str().unwrap().parse().unwrap();
    let left = closes - chrono::Utc::now();
    assert!(left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24), "{open}");
    h.api
        .get(&format!("/api/v1/contacts/{}/window", crm_core::ContactId::new()))
        .bearer(&token)
        .send()
        .await
        .problem(404, "not-found");
    h.stop().await;
}

/// A Graph API stand-in answering the template list and read receipts (and recording calls).
async fn template_mock() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::get;
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let list = move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
        let seen = seen.clone();
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            seen.lock().unwrap().push(format!("{} {auth}", uri.path()));
            axum::Json(json!({ "data": [
                { "name": "order_update", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
                  "components": [{ "type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} saiu." }] },
                { "name": "promo", "language": "pt_BR", "status": "PENDING", "category": "MARKETING",
                  "components": [{ "type": "BODY", "text": "Oferta" }] },
                { "name": "only_header", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
                  "components": [{ "type": "HEADER", "format": "IMAGE" }] }
            ] }))
        }
    };
    let read_calls = calls.clone();
    let read = move |uri: axum::http::Uri, body: axum::Json<Value>| {
        let seen = read_calls.clone();
        async move {
            seen.lock().unwrap().push(format!("{} {}", uri.path(), body.0));
            axum::Json(json!({ "success": true }))
        }
    };
    let app = axum::Router::new()
        .route("/v23.0/{waba}/message_templates", get(list))
        .route("/v23.0/{pnid}/messages", axum::routing::post(read));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, calls)
}

#[tokio::test]
async fn whatsapp_templates_sync_from_the_business_account() {
    let h = Harness::sqlite().await;
    let (account, token) = h.account(Role::Admin).await;
    let (base, calls) = template_mock().await;
    let settings = json!({ "base_url": base, "business_account_id": "102290129340398" });
    let channel = channel_with(&h, account, PNID, settings, &[("access_token", "EAAG-sync-token")]).await;
    let path = format!("/api/v1/channels/{}/templates/sync", channel.id);
    let first = h.api.post(&path).bearer(&token).send().await.ok_json(200);
    assert_eq!((first["created"].as_u64(), first["unchanged"].as_u64()), (Some(1), Some(0)), "{first}");
    let skipped: Vec<&str> = first["skipped"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(skipped.iter().any(|s| s.starts_with("promo (pt_BR): pending")), "{skipped:?}");
    assert!(skipped.iter().any(|s| s.starts_with("only_header (en_US)")), "{skipped:?}");
    let again = h.api.post(&path).bearer(&token).send().await.ok_json(200);
    assert_eq!((again["created"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(1)), "{again}");
    let stored = h.crm().store().find_template(account, "order_update", "pt_BR").await.unwrap().unwrap();
    assert_eq!(stored.variables, ["1", "2"]);
    assert_eq!(calls.lock().unwrap()[0], "/v23.0/102290129340398/message_templates Bearer EAAG-sync-token");
    // Only admins, only whatsapp-cloud channels.
    let agent = h.key(account, Role::Agent).await;
    h.api.post(&path).bearer(&agent).send().await.problem(403, "forbidden");
    let recording =
        h.crm().list_channels(account).await.unwrap().into_iter().find(|c| c.kind.as_str() == "recording").unwrap();
    h.api
        .post(&format!("/api/v1/channels/{}/templates/sync", recording.id))
        .bearer(&token)
        .send()
        .await
        .problem(422, "validation");
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_a_status_before_the_send_was_recorded_finds_the_message_by_crm_id() {
    let (h, account, channel) = setup().await;
    let contact = ana(&h, account).await;
    // The channel's Graph API is unreachable here: the message stays queued
    // without a wamid, as when Meta's webhook beats the send's answer.
    let stored = crm_core::NewTemplate {
        name: "hello_world".into(),
        language: Some("en_US".into()),
        body: "Hello World".into(),
        ..Default::default()
    };
    h.crm().create_template(account, stored).await.unwrap();
    let content = MessageContent::Template {
        name: "hello_world".into(),
        language: "en_US".into(),
        variables: Default::default(),
        rendered: "Hello World".into(),
    };
    let queued =
        h.crm().queue_message(account, crm_core::SendRequest::new(contact.id, content).via(channel.id)).await.unwrap();
    let body = String::from_utf8(fixture("status_delivered"))
        .unwrap()
        .replace("\"pricing\"", &format!("\"biz_opaque_callback_data\": \"{}\", \"pricing\"", queued.message.id));
    let r = post_signed(&h, body.as_bytes()).await;
    assert_eq!(r["statuses"], 1, "{r}");
    let m = h.crm().get_message(account, queued.message.id).await.unwrap();
    assert_eq!(m.status, MessageStatus::Delivered);
    assert_eq!(m.provider_message_id.as_deref(), Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDNTgzOTkyNTNBNzdBNjkzNTUA"));
    // A callback naming a message that already has another wamid is not applied.
    let other = body.replace("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDNTgzOTkyNTNBNzdBNjkzNTUA", "wamid.SOMETHING_ELSE");
    assert_eq!(post_signed(&h, other.as_bytes()).await["unknown_statuses"], 1);
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_inbound_messages_are_marked_as_read() {
    let h = Harness::sqlite().await;
    let (account, token) = h.account(Role::Admin).await;
    let (base, calls) = template_mock().await;
    let credentials = [("access_token", "EAAG-read-token"), ("app_secret", APP_SECRET)];
    channel_with(&h, account, PNID, json!({ "base_url": base }), &credentials).await;
    post_signed(&h, &fixture("text")).await;
    let wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";
    let inbound = h.crm().store().find_message_by_provider_id(account, wamid).await.unwrap().unwrap();
    h.api.post(&format!("/api/v1/messages/{}/read", inbound.id)).bearer(&token).send().await.expect(204);
    let seen = calls.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with(&format!("/v23.0/{PNID}/messages ")), "{seen:?}");
    assert!(seen[0].contains("\"status\":\"read\"") && seen[0].contains(wamid), "{seen:?}");
    // An outbound message (here through the account's default, recording channel) cannot be marked.
    let sent = h.crm().send_message(account, inbound.contact_id, MessageContent::text("Oi")).await.unwrap();
    h.api.post(&format!("/api/v1/messages/{}/read", sent.id)).bearer(&token).send().await.problem(422, "validation");
    h.api
        .post(&format!("/api/v1/messages/{}/read", crm_core::MessageId::new()))
        .bearer(&token)
        .send()
        .await
        .problem(404, "not-found");
    h.stop().await;
}

#[tokio::test]
async fn whatsapp_replies_pricing_and_fallback_templates_over_http() {
    let h = Harness::sqlite().await;
    let (account, token) = h.account(Role::Admin).await;
    let channel = whatsapp_channel(&h, account, PNID, APP_SECRET).await;
    let sheena = ana(&h, account).await;
    let hello = crm_core::NewTemplate {
        name: "hello_world".into(),
        language: Some("en_US".into()),
        body: "Hello {{first_name}}".into(),
        ..Default::default()
    };
    h.crm().create_template(account, hello).await.unwrap();

    // Outside the window: refused with the way out named, or sent as the fallback template.
    let text = json!({ "contact_id": sheena.id, "channel_id": channel.id, "text": "Oi" });
    let refused =
        h.api.post("/api/v1/messages").bearer(&token).json(text.clone()).send().await.problem(422, "validation");
    assert!(refused["detail"].as_str().unwrap().contains("fallback_template"), "{refused}");
    let mut with_fallback = text.clone();
    with_fallback["fallback_template"] = json!({ "name": "hello_world", "language": "en_US" });
    let queued = h.api.post("/api/v1/messages").bearer(&token).json(with_fallback).send().await.ok_json(202);
    assert_eq!(queued["fallback"]["template"], "hello_world", "{queued}");
    assert_eq!(queued["fallback"]["original"], json!({ "type": "text", "body": "Oi" }));
    assert_eq!(queued["content"]["rendered"], "Hello Ana");
    let mut unknown = text.clone();
    unknown["fallback_template"] = json!({ "name": "nope", "language": "en_US" });
    let p = h.api.post("/api/v1/messages").bearer(&token).json(unknown).send().await.problem(422, "validation");
    assert_eq!(p["field"], "fallback_template", "{p}");

    // Meta reports the (fallback) message sent, with pricing: shown on the message.
    let id = queued["id"].as_str().unwrap().to_owned();
    let body = String::from_utf8(fixture("status_sent")).unwrap().replace("0193a9f2-0000-7000-8000-000000000000", &id);
    assert_eq!(post_signed(&h, body.as_bytes()).await["statuses"], 1);
    let m = h.api.get(&format!("/api/v1/messages/{id}")).bearer(&token).send().await.ok_json(200);
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["pricing"]["category"], "utility", "{m}");
    assert_eq!(m["pricing"]["pricing_model"], "PMP");
    assert_eq!(m["pricing"]["conversation_id"], "c0fb2ab0e2d8f7f45c9ec4a8bdf6a321");

    // Sheena answers quoting it (a fresh timestamp: her window opens on this channel).
    let now = chrono::Utc::now().timestamp().to_string();
    let reply = String::from_utf8(fixture("text_reply")).unwrap().replace("1749416383", &now);
    assert_eq!(post_signed(&h, reply.as_bytes()).await["messages"], 1);
    let inbound = h
        .crm()
        .store()
        .find_message_by_provider_id(account, "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFFNTc0N0ZCRDk5MkQ0QjU2RgA=")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inbound.reply_to.as_ref().and_then(|r| r.message_id).map(|m| m.to_string()), Some(id.clone()));
    let window = h.api.get(&format!("/api/v1/contacts/{}/window", sheena.id)).bearer(&token).send().await.ok_json(200);
    let wa = window["channels"].as_array().unwrap().iter().find(|c| c["channel_id"] == json!(channel.id)).unwrap();
    assert_eq!((wa["open"].as_bool(), wa["last_inbound_at"].is_string()), (Some(true), true), "{window}");

    // Our answer quotes hers, by crm id; an unknown id is refused naming the field.
    let answer = json!({ "contact_id": sheena.id, "channel_id": channel.id, "text": "Ótimo!", "reply_to": inbound.id });
    let sent = h.api.post("/api/v1/messages").bearer(&token).json(answer).send().await.ok_json(202);
    assert_eq!(sent["reply_to"]["provider_message_id"], json!(inbound.provider_message_id), "{sent}");
    assert!(sent["fallback"].is_null(), "inside the window the text goes as it is");
    let bad = json!({ "contact_id": sheena.id, "text": "x", "reply_to": "wamid.unknown" });
    let p = h.api.post("/api/v1/messages").bearer(&token).json(bad).send().await.problem(422, "validation");
    assert_eq!(p["field"], "reply_to", "{p}");
    h.stop().await;
}

//! `/api/v1/channels/{id}/groups`: groups through a channel's group
//! manager (the `recording` kind's in-memory groups), stored on SQLite with
//! their events; the Cloud API channel answers 409 `unsupported`.

use serde_json::{Value, json};

use crm_core::{AccountId, EventType, NewChannel, Role};

use crate::helpers::Harness;

async fn recording_channel(h: &Harness, account: AccountId) -> String {
    let input = NewChannel { kind: "recording".into(), name: "Grupos".into(), ..Default::default() };
    h.crm().create_channel(account, input).await.unwrap().id.to_string()
}

async fn event_types(h: &Harness, account: AccountId) -> Vec<(String, Value)> {
    let events = h.crm().store().list_events(account, None, 1000).await.unwrap();
    events.into_iter().map(|e| (e.event_type.to_string(), e.payload)).collect()
}

#[tokio::test]
async fn groups_are_created_changed_listed_and_left_with_their_events() {
    let h = Harness::sqlite().await;
    let (account, token) = h.account(Role::Admin).await;
    let channel = recording_channel(&h, account).await;
    let base = format!("/api/v1/channels/{channel}/groups");

    let created = h
        .api
        .post(&base)
        .bearer(&token)
        .json(json!({ "subject": "Clientes VIP", "participants": ["+5511987650001", "+55 11 98765-0002"] }))
        .send()
        .await;
    let group = created.ok_json(201);
    let id = group["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), Some(format!("{base}/{id}")));
    assert!(group["jid"].as_str().unwrap().ends_with("@g.us"), "{group}");
    assert_eq!(group["subject"], "Clientes VIP");
    let members = group["participants"].as_array().unwrap();
    assert_eq!(members.len(), 3, "the channel's number and two members: {group}");
    assert!(members.iter().any(|m| m["phone"] == "+5511987650002" && m["admin"] == false));
    assert!(members.iter().any(|m| m["phone"] == "+5511900000000" && m["admin"] == true));

    // Rename and describe.
    let patched = h
        .api
        .patch(&format!("{base}/{id}"))
        .bearer(&token)
        .json(json!({ "subject": "Clientes Ouro", "description": "Ofertas da semana" }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(patched["subject"], "Clientes Ouro");
    assert_eq!(patched["description"], "Ofertas da semana");

    // Participants and admins.
    let added = h
        .api
        .post(&format!("{base}/{id}/participants"))
        .bearer(&token)
        .json(json!({ "participants": ["+5511987650003"] }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(added["participants"].as_array().unwrap().len(), 4);
    let promoted = h
        .api
        .post(&format!("{base}/{id}/admins"))
        .bearer(&token)
        .json(json!({ "action": "promote", "participants": ["+5511987650003"] }))
        .send()
        .await
        .ok_json(200);
    let p3 = promoted["participants"].as_array().unwrap().iter().find(|m| m["phone"] == "+5511987650003").cloned();
    assert_eq!(p3.unwrap()["admin"], true);
    let removed = h
        .api
        .delete(&format!("{base}/{id}/participants"))
        .bearer(&token)
        .json(json!({ "participants": ["+5511987650001"] }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(removed["participants"].as_array().unwrap().len(), 3);
    // Promoting someone not in the group: 422 naming the field.
    let p = h
        .api
        .post(&format!("{base}/{id}/admins"))
        .bearer(&token)
        .json(json!({ "action": "demote", "participants": ["+5511987659999"] }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "participants");

    // The group thread.
    let sent = h
        .api
        .post(&format!("{base}/{id}/messages"))
        .bearer(&token)
        .json(json!({ "text": "Bom dia, grupo!" }))
        .send()
        .await
        .ok_json(201);
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["direction"], "outbound");
    let thread = h.api.get(&format!("{base}/{id}/messages")).bearer(&token).send().await.ok_json(200);
    assert_eq!(thread.as_array().unwrap().len(), 1);
    assert_eq!(thread[0]["content"]["body"], "Bom dia, grupo!");

    // Listed; then left (kept, with left_at), and a left group refuses changes.
    let listed = h.api.get(&base).bearer(&token).send().await.ok_json(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let left = h.api.post(&format!("{base}/{id}/leave")).bearer(&token).send().await.ok_json(200);
    assert!(left["left_at"].is_string(), "{left}");
    h.api
        .post(&format!("{base}/{id}/messages"))
        .bearer(&token)
        .json(json!({ "text": "x" }))
        .send()
        .await
        .problem(409, "conflict");
    let got = h.api.get(&format!("{base}/{id}")).bearer(&token).send().await.ok_json(200);
    assert_eq!(got["subject"], "Clientes Ouro");

    // Events, in order.
    let events = event_types(&h, account).await;
    let kinds: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).filter(|t| t.starts_with("group.")).collect();
    assert_eq!(
        kinds,
        [
            EventType::GROUP_CREATED.as_str(),
            "group.updated",
            "group.participants_changed",
            "group.participants_changed",
            "group.participants_changed",
            "group.message_sent",
            "group.updated",
        ]
    );
    let changed: Vec<&Value> =
        events.iter().filter(|(t, _)| t == "group.participants_changed").map(|(_, p)| p).collect();
    assert_eq!(changed[0]["change"], "added");
    assert_eq!(changed[0]["changed"], json!(["+5511987650003"]));
    assert_eq!(changed[1]["change"], "promoted");
    assert_eq!(changed[2]["change"], "removed");
    let last = &events.iter().rev().find(|(t, _)| t == "group.updated").unwrap().1;
    assert_eq!(last["left"], true);
}

#[tokio::test]
async fn bad_input_unknown_groups_and_roles_are_problems() {
    let h = Harness::sqlite().await;
    let (account, token) = h.account(Role::Admin).await;
    let channel = recording_channel(&h, account).await;
    let base = format!("/api/v1/channels/{channel}/groups");
    let create = |body: Value| h.api.post(&base).bearer(&token).json(body).send();

    let p = create(json!({ "subject": "", "participants": ["+5511987650001"] })).await.problem(422, "validation");
    assert_eq!(p["field"], "subject");
    let long = "x".repeat(101);
    create(json!({ "subject": long, "participants": ["+5511987650001"] })).await.problem(422, "validation");
    let p = create(json!({ "subject": "G", "participants": ["+5511987650001", "não é telefone"] }))
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "participants[1]");
    let p = create(json!({ "subject": "G", "participants": [] })).await.problem(422, "validation");
    assert_eq!(p["field"], "participants");
    create(json!({ "subject": "G", "participants": ["+5511987650001"], "id": "x" })).await.problem(422, "validation");

    let created = create(json!({ "subject": "G", "participants": ["+5511987650001"] })).await.ok_json(201);
    let id = created["id"].as_str().unwrap();
    let long_description = "d".repeat(2049);
    h.api
        .patch(&format!("{base}/{id}"))
        .bearer(&token)
        .json(json!({ "description": long_description }))
        .send()
        .await
        .problem(422, "validation");
    h.api.patch(&format!("{base}/{id}")).bearer(&token).json(json!({})).send().await.problem(422, "validation");

    // Unknown group, unknown channel, another account's group: 404.
    let unknown = crm_core::GroupId::new();
    h.api.get(&format!("{base}/{unknown}")).bearer(&token).send().await.problem(404, "not-found");
    let other_channel = crm_core::ChannelId::new();
    h.api
        .get(&format!("/api/v1/channels/{other_channel}/groups"))
        .bearer(&token)
        .send()
        .await
        .problem(404, "not-found");
    let (other, other_token) = h.account(Role::Admin).await;
    let _ = recording_channel(&h, other).await;
    h.api.get(&format!("{base}/{id}")).bearer(&other_token).send().await.problem(404, "not-found");

    // Viewers read; only admins change groups.
    let viewer = h.key(account, Role::Viewer).await;
    h.api.get(&base).bearer(&viewer).send().await.ok_json(200);
    h.api.post(&format!("{base}/{id}/leave")).bearer(&viewer).send().await.problem(403, "forbidden");
    h.api.get(&base).send().await.problem(401, "unauthorized");
}

#[cfg(feature = "whatsapp-cloud")]
#[tokio::test]
async fn a_cloud_api_channel_answers_unsupported_not_a_server_error() {
    let h = Harness::sqlite().await;
    let (account, token) = h.account(Role::Admin).await;
    let mut credentials = crm_core::secrets::Credentials::new();
    credentials.insert("access_token", "EAAG-not-used-here");
    let input = NewChannel {
        kind: "whatsapp-cloud".into(),
        name: "Cloud".into(),
        provider_id: Some("1098765432".into()),
        settings: Some(json!({ "base_url": "http://127.0.0.1:9" })),
        credentials: Some(credentials),
        ..Default::default()
    };
    let channel = h.crm().create_channel(account, input).await.unwrap().id;
    let p = h
        .api
        .post(&format!("/api/v1/channels/{channel}/groups"))
        .bearer(&token)
        .json(json!({ "subject": "Clientes", "participants": ["+5511987650001"] }))
        .send()
        .await
        .problem(409, "unsupported");
    assert!(p["detail"].as_str().unwrap().contains("whatsapp-cloud"), "{p}");
    h.api
        .get(&format!("/api/v1/channels/{channel}/groups?refresh=true"))
        .bearer(&token)
        .send()
        .await
        .problem(409, "unsupported");
    // Without refresh: what crm stored (nothing).
    let listed = h.api.get(&format!("/api/v1/channels/{channel}/groups")).bearer(&token).send().await.ok_json(200);
    assert_eq!(listed, json!([]));
    assert!(event_types(&h, account).await.iter().all(|(t, _)| !t.starts_with("group.")));
}

/// Group sends go through the channel's send governor: a second message to
/// the same group inside the channel's spacing answers 429 with
/// Retry-After, and nothing reaches the provider.
#[tokio::test]
async fn group_sends_are_paced_by_the_channels_governor() {
    let h = Harness::memory().await;
    let (account, token) = h.account(Role::Agent).await;
    let pacing = crm_core::Pacing { pair_interval_secs: Some(60), ..Default::default() };
    let input =
        NewChannel { kind: "recording".into(), name: "Pausado".into(), pacing: Some(pacing), ..Default::default() };
    let channel = h.crm().create_channel(account, input).await.unwrap().id;
    let phones = [crm_core::Phone::parse("+5511987650001").unwrap()];
    let group = h.crm().create_group(account, channel, "Clientes", &phones).await.unwrap();
    let path = format!("/api/v1/channels/{channel}/groups/{}/messages", group.id);
    h.api.post(&path).bearer(&token).json(json!({ "text": "Primeira" })).send().await.ok_json(201);
    let held = h.api.post(&path).bearer(&token).json(json!({ "text": "Segunda" })).send().await;
    held.problem(429, "rate-limited");
    let wait: u64 = held.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((59..=60).contains(&wait), "{wait}");
    let groups = h.messenger.as_ref().unwrap().groups();
    assert_eq!(groups.sent().len(), 1, "the held-back message never reached the provider");
    let thread = h.api.get(&path).bearer(&token).send().await.ok_json(200);
    assert_eq!(thread.as_array().unwrap().len(), 1);
}

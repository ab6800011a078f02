//! Sending and reading messages, and the event log.

use crm_core::{OptInStatus, Role};
use serde_json::{Value, json};

use crate::helpers::{Api, Harness, create_contact, create_template, id};

/// Text, template with variables, a missing variable, the exactly-one-of
/// rule, get and list by contact.
pub async fn send_and_read(api: &Api, token: &str) {
    let contact = create_contact(api, token, "Ana Souza", 7).await;
    let cid = id(&contact);
    let text = api
        .post("/api/v1/messages")
        .bearer(token)
        .json(json!({ "contact_id": cid, "text": "Olá, Ana!" }))
        .send()
        .await
        .ok_json(202);
    assert_eq!(text["status"], "queued", "{text}");
    let text = api.settled_message(token, &id(&text)).await;
    assert_eq!(text["status"], "sent", "{text}");
    assert_eq!(text["direction"], "outbound");
    assert_eq!(text["content"], json!({ "type": "text", "body": "Olá, Ana!" }));
    assert!(text["provider_message_id"].is_string(), "{text}");

    create_template(api, token, "order_ready", "Oi {{first_name}}, seu pedido {{order}} está pronto").await;
    let templated = api
        .post("/api/v1/messages")
        .bearer(token)
        .json(json!({ "contact_id": cid, "template": { "name": "order_ready", "variables": { "order": "#42" } } }))
        .send()
        .await
        .ok_json(202);
    assert_eq!(templated["content"]["type"], "template", "{templated}");
    assert_eq!(templated["content"]["rendered"], "Oi Ana, seu pedido #42 está pronto");
    assert_eq!(templated["content"]["variables"], json!({ "first_name": "Ana", "order": "#42" }));

    let p = api
        .post("/api/v1/messages")
        .bearer(token)
        .json(json!({ "contact_id": cid, "template": { "name": "order_ready" } }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "variables", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("order"), "names the missing variable: {p}");
    api.post("/api/v1/messages")
        .bearer(token)
        .json(json!({ "contact_id": cid, "template": { "name": "order_ready", "language": "en_US", "variables": { "order": "1" } } }))
        .send()
        .await
        .problem(404, "not-found");

    for body in [
        json!({ "contact_id": cid }),
        json!({ "contact_id": cid, "text": "a", "template": { "name": "order_ready" } }),
        json!({ "contact_id": cid, "text": "a", "content": { "type": "text", "body": "b" } }),
    ] {
        let p = api.post("/api/v1/messages").bearer(token).json(body).send().await.problem(422, "validation");
        assert!(p["detail"].as_str().unwrap().contains("exactly one"), "{p}");
    }
    let content = api
        .post("/api/v1/messages")
        .bearer(token)
        .json(json!({ "contact_id": cid, "content": { "type": "location", "latitude": -23.5, "longitude": -46.6, "name": null, "address": null } }))
        .send()
        .await
        .ok_json(202);
    assert_eq!(content["content"]["type"], "location");
    assert_eq!(api.settled_message(token, &id(&templated)).await["status"], "sent");
    assert_eq!(api.settled_message(token, &id(&content)).await["status"], "sent");
    api.post("/api/v1/messages")
        .bearer(token)
        .json(json!({ "contact_id": cid, "text": "" }))
        .send()
        .await
        .problem(422, "validation");
    api.post("/api/v1/messages")
        .bearer(token)
        .json(json!({ "contact_id": uuid::Uuid::now_v7(), "text": "hi" }))
        .send()
        .await
        .problem(404, "not-found");

    let mid = id(&text);
    let got = api.get(&format!("/api/v1/messages/{mid}")).bearer(token).send().await.ok_json(200);
    assert_eq!(got, text);
    api.get(&format!("/api/v1/messages/{}", uuid::Uuid::now_v7())).bearer(token).send().await.problem(404, "not-found");

    let listed = api.get(&format!("/api/v1/messages?contact_id={cid}")).bearer(token).send().await.ok_json(200);
    let ids: Vec<String> = listed["items"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, [mid.clone(), id(&templated), id(&content)], "oldest first");
    let thread = api.get(&format!("/api/v1/contacts/{cid}/messages")).bearer(token).send().await.ok_json(200);
    assert_eq!(thread, listed);
    let first = api.get(&format!("/api/v1/messages?contact_id={cid}&limit=2")).bearer(token).send().await.ok_json(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("more");
    let rest = api
        .get(&format!("/api/v1/messages?contact_id={cid}&limit=2&cursor={cursor}"))
        .bearer(token)
        .send()
        .await
        .ok_json(200);
    assert_eq!(rest["items"].as_array().unwrap().iter().map(id).collect::<Vec<_>>(), [id(&content)]);
    api.get("/api/v1/messages").bearer(token).send().await.problem(400, "bad-request");
}

/// The event log after a cursor.
pub async fn events_after_cursor(api: &Api, token: &str) {
    let all = api.get("/api/v1/events?limit=1000").bearer(token).send().await.ok_json(200);
    let before = all["items"].as_array().unwrap().len();
    let cursor = all["next_after"].clone();
    let c = create_contact(api, token, "Evento", 900).await;
    api.patch(&format!("/api/v1/contacts/{}", id(&c)))
        .bearer(token)
        .json(json!({ "name": "Evento 2" }))
        .send()
        .await
        .expect(200);
    let q = match cursor.as_str() {
        Some(after) => format!("/api/v1/events?after={after}"),
        None => "/api/v1/events".to_owned(),
    };
    let page = api.get(&q).bearer(token).send().await.ok_json(200);
    let types: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["contact.created", "contact.updated"], "{page}");
    assert_eq!(page["items"][1]["payload"]["name"], "Evento 2");
    let last = page["next_after"].as_str().unwrap();
    assert_eq!(last, id(&page["items"][1]));
    let empty = api.get(&format!("/api/v1/events?after={last}")).bearer(token).send().await.ok_json(200);
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["next_after"], last, "an empty batch keeps the cursor");
    let one = api.get("/api/v1/events?limit=1").bearer(token).send().await.ok_json(200);
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let total = api.get("/api/v1/events?limit=1000").bearer(token).send().await.ok_json(200);
    assert_eq!(total["items"].as_array().unwrap().len(), before + 2);
    api.get("/api/v1/events?limit=0").bearer(token).send().await.problem(422, "validation");
    api.get("/api/v1/events?limit=1001").bearer(token).send().await.problem(422, "validation");
}

#[tokio::test]
async fn send_and_read_in_memory() {
    let h = Harness::memory().await;
    let (_, admin) = h.account(Role::Admin).await;
    send_and_read(&h.api, &admin).await;
    let sent = h.messenger.as_ref().unwrap().sent();
    assert_eq!(sent.len(), 3, "text, template and location reached the messenger");
    assert_eq!(sent[0].message.to.to_string(), crate::helpers::phone(7));
}

#[tokio::test]
async fn events_after_a_cursor_in_memory() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Agent).await;
    events_after_cursor(&h.api, &token).await;
}

#[tokio::test]
async fn opted_out_contacts_are_not_messaged() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Agent).await;
    let c = create_contact(&h.api, &token, "Ana", 1).await;
    let cid = id(&c);
    h.api
        .patch(&format!("/api/v1/contacts/{cid}"))
        .bearer(&token)
        .json(json!({ "opt_in": OptInStatus::OptedOut }))
        .send()
        .await
        .expect(200);
    let p = h
        .api
        .post("/api/v1/messages")
        .bearer(&token)
        .json(json!({ "contact_id": cid, "text": "promo" }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "contact.opt_in");
    assert!(h.messenger.as_ref().unwrap().sent().is_empty());
}

#[tokio::test]
async fn a_provider_refusal_is_recorded_on_the_message() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Agent).await;
    let c = create_contact(&h.api, &token, "Ana", 1).await;
    h.messenger.as_ref().unwrap().fail_next(Some("131026"), "receiver is not on WhatsApp", false);
    let m: Value = h
        .api
        .post("/api/v1/messages")
        .bearer(&token)
        .json(json!({ "contact_id": id(&c), "text": "oi" }))
        .send()
        .await
        .ok_json(202);
    let m = h.api.settled_message(&token, &id(&m)).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["error"]["code"], "131026");
    let metrics = h.api.get("/metrics").send().await.expect(200).text();
    assert!(metrics.contains("crm_messages_total{outcome=\"queued\"} 1"), "{metrics}");
    assert!(metrics.contains("crm_worker_items_total{worker=\"outbox:dispatch\",result=\"done\"} 1"), "{metrics}");
}

/// `POST /messages/{id}/read` sends a read receipt through the channel the
/// message came in on; outbound messages, unknown ids and another account's
/// messages are refused with problems.
#[tokio::test]
async fn an_inbound_message_is_marked_read_through_its_channel() {
    let h = Harness::memory().await;
    let (account, token) = h.account(Role::Agent).await;
    let channel = h.crm().list_channels(account).await.expect("channels").remove(0);
    let inbound = crm_core::InboundMessage {
        from: "+5511987654321".into(),
        whatsapp_id: Some("5511987654321".into()),
        profile_name: Some("Ana".into()),
        provider_message_id: Some("rec.in.1".into()),
        content: crm_core::MessageContent::text("oi"),
        sent_at: None,
        reply_to: None,
    };
    let stored = h.crm().record_inbound_via(&channel, inbound).await.expect("inbound");
    let mid = stored.message.id;
    h.api.post(&format!("/api/v1/messages/{mid}/read")).bearer(&token).send().await.expect(204);
    let reads = h.messenger.as_ref().unwrap().reads();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].provider_message_id, "rec.in.1");
    assert_eq!(reads[0].from.as_str(), "+5511987654321");
    assert_eq!(reads[0].whatsapp_id.as_deref(), Some("5511987654321"));
    assert_eq!(reads[0].account_id, account);

    // A channel whose session is not connected: 409 channel-not-connected,
    // with a Retry-After hint; fine again once it is back.
    h.messenger.as_ref().unwrap().set_offline(Some("the session is reconnecting"));
    let resp = h.api.post(&format!("/api/v1/messages/{mid}/read")).bearer(&token).send().await;
    let p = resp.problem(409, "channel-not-connected");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("reconnecting")), "{p}");
    assert_eq!(resp.header("retry-after").as_deref(), Some("5"));
    h.messenger.as_ref().unwrap().set_offline(None);
    h.api.post(&format!("/api/v1/messages/{mid}/read")).bearer(&token).send().await.expect(204);
    assert_eq!(h.messenger.as_ref().unwrap().reads().len(), 2);

    let c = id(&json!({ "id": stored.contact.id }));
    let out: Value = h
        .api
        .post("/api/v1/messages")
        .bearer(&token)
        .json(json!({ "contact_id": c, "text": "oi" }))
        .send()
        .await
        .ok_json(202);
    let p = h
        .api
        .post(&format!("/api/v1/messages/{}/read", id(&out)))
        .bearer(&token)
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "id", "{p}");
    h.api
        .post(&format!("/api/v1/messages/{}/read", crm_core::MessageId::new()))
        .bearer(&token)
        .send()
        .await
        .problem(404, "not-found");
    let (_, other) = h.account(Role::Agent).await;
    h.api.post(&format!("/api/v1/messages/{mid}/read")).bearer(&other).send().await.problem(404, "not-found");
    assert_eq!(h.messenger.as_ref().unwrap().reads().len(), 2);
}

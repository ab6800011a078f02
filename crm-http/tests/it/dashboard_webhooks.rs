//! The dashboard's webhooks pages over HTTP against a real server and a
//! receiver on 127.0.0.1: an endpoint created from the form (its secret
//! shown once and signing what arrives), disabled and enabled, its secret
//! rotated, a test event's delivery with its attempt, a replay that makes
//! a second attempt; the CSRF check, the admin role and tenancy.

use std::time::Duration;

use serde_json::Value;

use crm_core::Role;

use crate::dashboard::EMAIL;
use crate::dashboard_pages::{account, signed_in_as};
use crate::helpers::{Api, Harness};
use crate::webhooks::{allow_loopback, receiver, wait_for};

/// The text between `start` and the next `end` after it, HTML entities decoded.
fn between(html: &str, start: &str, end: &str) -> Option<String> {
    let from = html.find(start)? + start.len();
    let len = html[from..].find(end)?;
    let raw = &html[from..from + len];
    let decoded = [("&#x2f;", "/"), ("&#x27;", "'"), ("&quot;", "\""), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")]
        .iter()
        .fold(raw.to_owned(), |s, (entity, c)| s.replace(entity, c));
    Some(decoded)
}

async fn endpoints(api: &Api, key: &str) -> Vec<Value> {
    let list = api.get("/api/v1/webhooks/endpoints").bearer(key).send().await.ok_json(200);
    list["items"].as_array().cloned().unwrap_or_default()
}

async fn deliveries(api: &Api, key: &str) -> Vec<Value> {
    let page = api.get("/api/v1/webhooks/deliveries").bearer(key).send().await.ok_json(200);
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the delivery made `attempts` attempts and is no longer pending.
async fn settled(api: &Api, key: &str, id: &str, attempts: u64) -> Value {
    for _ in 0..500 {
        let d = api.get(&format!("/api/v1/webhooks/deliveries/{id}")).bearer(key).send().await.ok_json(200);
        if d["status"] != "pending" && d["attempts"].as_u64() >= Some(attempts) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the delivery did not settle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_deliveries_and_replay_from_the_webhooks_pages() {
    let h = Harness::sqlite_with(allow_loopback).await;
    // In-process, so redirects are seen as they are (the server's workers still run).
    let api = &Api::router(h.state.clone());
    assert_eq!(api.get("/dashboard/webhooks").send().await.header("location").as_deref(), Some("/dashboard/login"));
    let (_, key) = account(&h).await;
    let (url, inbox) = receiver().await;
    let b = signed_in_as(api, EMAIL).await;
    let csrf = b.csrf.clone();

    let page = b.get(api, "/dashboard/webhooks").await;
    page.expect(200);
    assert!(page.text().contains(r#"id="no-endpoints""#), "{}", page.text());

    // The form without its token creates nothing.
    assert_eq!(b.post(api, "/dashboard/webhooks", &[("url", &url)]).await.status, 403);
    assert!(endpoints(api, &key).await.is_empty());
    // A URL the service refuses: the form again, with the reason and what was typed.
    let r = b.post(api, "/dashboard/webhooks", &[("csrf", &csrf), ("url", "ftp://x"), ("description", "CRM")]).await;
    assert_eq!(r.status, 422);
    let html = r.text();
    assert!(html.contains(r#"id="form-error""#) && html.contains("http"), "{html}");
    assert!(html.contains(r#"value="ftp:"#) && html.contains(r#"value="CRM""#), "what was typed stays");

    // Created: the secret is on this page only.
    let r = b
        .post(
            api,
            "/dashboard/webhooks",
            &[("csrf", &csrf), ("url", &url), ("description", "ERP"), ("event_types", "webhook.test, contact.*")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let html = r.text();
    let secret = between(&html, r#"<code class="secret" id="secret-value">"#, "</code>").expect("the secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let listed = endpoints(api, &key).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["event_types"], serde_json::json!(["contact.*", "webhook.test"]), "stored sorted");
    let eid = listed[0]["id"].as_str().unwrap().to_owned();
    let again = b.get(api, "/dashboard/webhooks").await.text();
    assert!(again.contains("ERP") && !again.contains(&secret[6..20]), "never shown again");
    assert!(!again.contains("secret-value"));

    // Disabled, then enabled again.
    let r = b.post(api, &format!("/dashboard/webhooks/{eid}/disable"), &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location").as_deref(), Some("/dashboard/webhooks?done=done_endpoint_disable"));
    assert_eq!(endpoints(api, &key).await[0]["enabled"], false);
    let html = b.get(api, "/dashboard/webhooks?done=done_endpoint_disable").await.text();
    assert!(html.contains("Destino desativado.") && html.contains(r#"data-state="disabled""#), "{html}");
    b.post(api, &format!("/dashboard/webhooks/{eid}/enable"), &[("csrf", &csrf)]).await.expect(303);
    assert_eq!(endpoints(api, &key).await[0]["enabled"], true);

    // A test event: delivered, signed with the secret shown once.
    b.post(api, &format!("/dashboard/webhooks/{eid}/test"), &[("csrf", &csrf)]).await.expect(303);
    let got = wait_for(&inbox, 1).await;
    assert!(crm_webhooks::Verifier::new(&[secret.as_str()]).unwrap().verify(&got[0].0, &got[0].1).is_ok());
    let did = deliveries(api, &key).await[0]["id"].as_str().unwrap().to_owned();
    settled(api, &key, &did, 1).await;

    let list = b.get(api, "/dashboard/webhooks/deliveries").await.text();
    assert!(
        list.contains("webhook.test") && list.contains(&format!(r#"data-delivery="{did}" data-status="succeeded""#)),
        "{list}"
    );
    let filtered = b.get(api, "/dashboard/webhooks/deliveries?status=failed").await.text();
    assert!(filtered.contains(r#"id="no-deliveries""#), "{filtered}");
    assert_eq!(b.get(api, "/dashboard/webhooks/deliveries?status=lost").await.status, 422);
    let detail = b.get(api, &format!("/dashboard/webhooks/deliveries/{did}?lang=en")).await.text();
    assert_eq!(detail.matches(r#"<tr class="attempt" data-succeeded="true">"#).count(), 1, "{detail}");
    assert!(detail.contains("<td>204</td>") && detail.contains(" ms</td>"), "status code and timing: {detail}");
    assert!(detail.contains(r#"id="replay""#));

    // An event of the filter (a contact created through the API) is delivered too.
    crate::helpers::create_contact(api, &key, "Ana", 1).await;
    wait_for(&inbox, 2).await;
    let all = deliveries(api, &key).await;
    let contact = all.iter().find(|d| d["event_type"] == "contact.created").expect("a contact.created delivery");
    let did = contact["id"].as_str().unwrap().to_owned();
    settled(api, &key, &did, 1).await;

    // Replay: refused without the token, then a second attempt with the same webhook-id.
    let replay = format!("/dashboard/webhooks/deliveries/{did}/replay");
    assert_eq!(b.post(api, &replay, &[]).await.status, 403);
    assert_eq!(inbox.lock().unwrap().len(), 2, "a refused replay sends nothing");
    let r = b.post(api, &replay, &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location"), Some(format!("/dashboard/webhooks/deliveries/{did}?done=done_delivery_replayed")));
    wait_for(&inbox, 3).await;
    settled(api, &key, &did, 2).await;
    let detail = b.get(api, &format!("/dashboard/webhooks/deliveries/{did}?done=done_delivery_replayed")).await.text();
    assert_eq!(detail.matches(r#"class="attempt""#).count(), 2, "{detail}");
    assert!(detail.contains("Entrega reenviada."), "{detail}");
    let same_id = |n: usize| inbox.lock().unwrap()[n].0.get("webhook-id").cloned();
    assert_eq!(same_id(1), same_id(2), "a replay keeps the webhook-id");

    // Rotation: a new secret shown once, different from the first.
    let r = b.post(api, &format!("/dashboard/webhooks/{eid}/rotate"), &[("csrf", &csrf)]).await;
    r.expect(200);
    let rotated = between(&r.text(), r#"<code class="secret" id="secret-value">"#, "</code>").unwrap();
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    assert!(endpoints(api, &key).await[0]["rotating_until"].is_string(), "the old one signs during the overlap");

    // An agent: no page, no replay.
    let agent = signed_in_as(api, "agent@example.com").await;
    assert_eq!(agent.get(api, "/dashboard/webhooks").await.status, 403);
    let acsrf = agent.csrf.clone();
    assert_eq!(agent.post(api, &replay, &[("csrf", &acsrf)]).await.status, 403);
    // Another account: its admin sees none of it.
    let (other, _) = h.account(Role::Admin).await;
    h.state
        .crm()
        .create_user(other, "outra@example.com", "Outra", Role::Owner, crate::dashboard::PASSWORD)
        .await
        .unwrap();
    let them = signed_in_as(api, "outra@example.com").await;
    let tcsrf = them.csrf.clone();
    assert!(!them.get(api, "/dashboard/webhooks").await.text().contains(&url));
    assert!(them.get(api, "/dashboard/webhooks/deliveries").await.text().contains(r#"id="no-deliveries""#));
    assert_eq!(them.get(api, &format!("/dashboard/webhooks/deliveries/{did}")).await.status, 404);
    assert_eq!(them.post(api, &replay, &[("csrf", &tcsrf)]).await.status, 404);
    assert_eq!(them.post(api, &format!("/dashboard/webhooks/{eid}/disable"), &[("csrf", &tcsrf)]).await.status, 404);
    assert_eq!(endpoints(api, &key).await[0]["enabled"], true);
    assert_eq!(inbox.lock().unwrap().len(), 3, "nothing more was sent");
    h.stop().await;
}

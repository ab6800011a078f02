//! Connections through the server: `/api/v1/connections` (set, read,
//! test, delete; problem+json errors; credentials never echoed), the
//! connections in `/ready`, a `mail.send` job run by the server's runtime
//! against a local SendGrid mock, an automation's `notify_slack` action
//! reaching a local Slack mock, and SendGrid's signed event webhook.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crm_connectors::sendgrid::SendGridFactory;
use crm_connectors::slack::SlackFactory;
use crm_core::Role;
use crm_core::ports::connectors::MailDraft;
use crm_core::testing::connectors::sample_draft;
use crm_core::workers::connectors::{MailJob, schedule_mail};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{Harness, create_contact};

const SG_KEY: &str = "SG.http-test-key.abcdef0123456789";
const SLACK_HOOK: &str = "services/T0/B0/SECRETPATH";

/// A provider mock: records (path, headers, body), answers scripted
/// (status, body, retry-after) replies, else 202/200.
#[derive(Clone, Default)]
struct Mock {
    seen: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
    replies: Arc<Mutex<VecDeque<(u16, String)>>>,
}

async fn answer(State(m): State<Mock>, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    m.seen.lock().unwrap().push((uri.path().to_owned(), headers, json));
    let (status, body) = m.replies.lock().unwrap().pop_front().unwrap_or_else(|| {
        if uri.path().starts_with("/services/") { (200, "ok".into()) } else { (202, String::new()) }
    });
    (StatusCode::from_u16(status).unwrap(), body)
}

async fn mock() -> (Mock, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let m = Mock::default();
    let app = Router::new().fallback(answer).with_state(m.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (m, base)
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

fn p256_public_key(pair: &EcdsaKeyPair) -> String {
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
        0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(pair.public_key().as_ref());
    STANDARD.encode(der)
}

#[tokio::test]
async fn connections_routes_jobs_ready_and_the_sendgrid_event_webhook() {
    let (m, base) = mock().await;
    let (sg, slack) = (SendGridFactory::new(&base), SlackFactory::new(&base, &base));
    let h =
        Harness::sqlite_builder(|_| {}, move |b| b.connector_factory(Arc::new(sg)).connector_factory(Arc::new(slack)))
            .await;
    let api = &h.api;
    let (account, admin) = h.account(Role::Admin).await;
    let agent = h.key(account, Role::Agent).await;

    // Set: checked by the provider's connector, sealed, never echoed.
    let body = json!({ "settings": { "from": "loja@example.com" }, "credentials": { "api_key": SG_KEY } });
    let set = api.put("/api/v1/connections/sendgrid").bearer(&admin).json(body.clone()).send().await;
    let view = set.ok_json(200);
    assert!(!set.text().contains(SG_KEY), "the key is never returned: {}", set.text());
    assert_eq!(
        (view["provider"].as_str(), view["status"].as_str(), view["credentials_set"].as_bool()),
        (Some("sendgrid"), Some("connected"), Some(true))
    );
    assert_eq!(view["capability"], "mail");
    let list = api.get("/api/v1/connections").bearer(&admin).send().await;
    assert!(!list.text().contains(SG_KEY));
    assert_eq!(list.ok_json(200).as_array().unwrap().len(), 1);
    api.get("/api/v1/connections").bearer(&agent).send().await.problem(403, "forbidden");

    // Bad input: problem+json, nothing stored.
    let no_from = json!({ "settings": {}, "credentials": { "api_key": SG_KEY } });
    let p =
        api.put("/api/v1/connections/sendgrid").bearer(&admin).json(no_from).send().await.problem(422, "validation");
    assert_eq!(p["field"], "settings.from");
    api.put("/api/v1/connections/acme").bearer(&admin).json(body.clone()).send().await.problem(422, "validation");
    api.put("/api/v1/connections/Not%20A%20Kind")
        .bearer(&admin)
        .json(body.clone())
        .send()
        .await
        .problem(422, "validation");
    api.put("/api/v1/connections/slack")
        .bearer(&admin)
        .json(json!({ "settings": {} }))
        .send()
        .await
        .problem(422, "validation");
    let extra = json!({ "settings": {}, "credentials": {}, "surprise": 1 });
    let r = api.put("/api/v1/connections/slack").bearer(&admin).json(extra).send().await;
    assert!(matches!(r.status.as_u16(), 400 | 422), "unknown fields are refused: {}", r.text());
    let elsewhere = json!({ "credentials": { "webhook_url": "http://169.254.169.254/latest" } });
    api.put("/api/v1/connections/slack").bearer(&admin).json(elsewhere).send().await.problem(422, "validation");
    api.get("/api/v1/connections/slack").bearer(&admin).send().await.problem(404, "not-found");

    // Test: a test e-mail reaches the mock; a refused key marks the connection.
    let test = api
        .post("/api/v1/connections/sendgrid/test")
        .bearer(&admin)
        .json(json!({ "to": { "email": "ana@example.com" } }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(test["ok"], true);
    let (path, headers, sent) = m.seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/v3/mail/send");
    assert_eq!(headers["authorization"], format!("Bearer {SG_KEY}").as_str());
    assert_eq!(sent["personalizations"][0]["to"][0]["email"], "ana@example.com");
    assert_eq!(sent["from"]["email"], "loja@example.com");
    api.post("/api/v1/connections/sendgrid/test")
        .bearer(&admin)
        .json(json!({}))
        .send()
        .await
        .problem(422, "validation");
    m.replies.lock().unwrap().push_back((401, r#"{"errors":[{"message":"The provided authorization grant is invalid, expired, or revoked","field":null,"help":null}]}"#.into()));
    let failed = api
        .post("/api/v1/connections/sendgrid/test")
        .bearer(&admin)
        .json(json!({ "to": { "email": "ana@example.com" } }))
        .send()
        .await;
    let failed_json = failed.ok_json(200);
    assert!(!failed.text().contains(SG_KEY));
    assert_eq!((failed_json["ok"].as_bool(), failed_json["status"].as_str()), (Some(false), Some("error")));
    let got = api.get("/api/v1/connections/sendgrid").bearer(&admin).send().await.ok_json(200);
    assert!(got["last_error"].as_str().unwrap().contains("refused the credentials"), "{got}");

    // /ready reports the failing connection as degraded but stays ready.
    let ready = api.get("/ready").send().await.ok_json(200);
    assert_eq!(ready["connections"]["degraded"], true);
    assert_eq!(ready["connections"]["providers"]["sendgrid"]["error"], 1);

    // A durable mail job: the server's runtime sends it through the connection.
    let before = m.seen.lock().unwrap().len();
    let draft = MailDraft { from: None, ..sample_draft() };
    schedule_mail(&**h.crm().store(), account, &MailJob { provider: None, draft }, None, chrono::Utc::now())
        .await
        .unwrap();
    until("the mail job", || m.seen.lock().unwrap().len() > before).await;
    assert_eq!(m.seen.lock().unwrap()[before].2["subject"], "Pedido #42 confirmado");

    // An automation's notify_slack action reaches Slack through the job.
    let hook = json!({ "credentials": { "webhook_url": format!("{base}{SLACK_HOOK}") } });
    let slack_view = api.put("/api/v1/connections/slack").bearer(&admin).json(hook).send().await;
    assert!(!slack_view.text().contains("SECRETPATH"), "a webhook URL is a secret too");
    let rule = json!({
        "name": "Lead alert",
        "trigger": { "event": "contact.created" },
        "actions": [{ "type": "notify_slack", "text": "New lead: {{name}}" }],
    });
    api.post("/api/v1/automations").bearer(&admin).json(rule).send().await.expect(201);
    let before = m.seen.lock().unwrap().len();
    create_contact(api, &admin, "Bruna Lima", 1).await;
    until("the Slack post", || m.seen.lock().unwrap().iter().skip(before).any(|s| s.0.starts_with("/services/"))).await;
    let posted = m.seen.lock().unwrap().iter().skip(before).find(|s| s.0.starts_with("/services/")).unwrap().2.clone();
    assert_eq!(posted["text"], "New lead: Bruna Lima");
    assert_eq!(posted["blocks"][0]["type"], "section");

    // SendGrid's signed event webhook, per account.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let with_key =
        json!({ "settings": { "from": "loja@example.com", "event_webhook_public_key": p256_public_key(&pair) } });
    api.put("/api/v1/connections/sendgrid").bearer(&admin).json(with_key).send().await.expect(200);
    let contact = crm_core::ContactId::new();
    let events = json!([
        { "email": "ana@example.com", "timestamp": 1_764_500_000, "event": "bounce", "reason": "550 no such user", "sg_event_id": "e1", "crm_contact_id": contact.to_string(), "crm_account_id": account.to_string() },
        { "email": "ana@example.com", "timestamp": 1_764_500_001, "event": "processed", "sg_event_id": "e0" },
    ])
    .to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(events.as_bytes());
    let sig = STANDARD.encode(pair.sign(&rng, &signed).unwrap().as_ref());
    let url = format!("/webhooks/sendgrid/{account}");
    let post = |sig: &str, body: &str| {
        api.post(&url)
            .header("X-Twilio-Email-Event-Webhook-Signature", sig)
            .header("X-Twilio-Email-Event-Webhook-Timestamp", &ts)
            .raw("application/json", body.as_bytes().to_vec())
    };
    let ok = post(&sig, &events).send().await.ok_json(200);
    assert_eq!((ok["recorded"].as_u64(), ok["duplicates"].as_u64()), (Some(1), Some(0)), "processed is not recorded");
    // SendGrid redelivers a batch it did not see acknowledged: the bounce
    // (same sg_event_id) is not recorded twice.
    let again = post(&sig, &events).send().await.ok_json(200);
    assert_eq!((again["recorded"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(1)), "{again}");
    let log = h.crm().store().list_events(account, None, 1000).await.unwrap();
    let bounces = log.iter().filter(|e| e.event_type.as_str() == "email.bounced").count();
    assert_eq!(bounces, 1, "one bounce in the log after the redelivery");
    let bounce = log.iter().find(|e| e.event_type.as_str() == "email.bounced").expect("the bounce is in the log");
    assert_eq!(bounce.payload["contact_id"], json!(contact.to_string()), "recorded on the contact");
    assert_eq!(bounce.payload["reason"], "550 no such user");
    post(&sig, &events.replace("bounce", "delivered")).send().await.problem(400, "bad-request");
    post("bm90IGEgc2lnbmF0dXJl", &events).send().await.problem(400, "bad-request");
    let other = crm_core::AccountId::new();
    api.post(&format!("/webhooks/sendgrid/{other}"))
        .raw("application/json", b"[]".to_vec())
        .send()
        .await
        .problem(404, "not-found");

    // Another account sees nothing; delete.
    let (_, stranger) = h.account(Role::Admin).await;
    api.get("/api/v1/connections/sendgrid").bearer(&stranger).send().await.problem(404, "not-found");
    api.delete("/api/v1/connections/sendgrid").bearer(&admin).send().await.expect(204);
    api.get("/api/v1/connections/sendgrid").bearer(&admin).send().await.problem(404, "not-found");
    api.delete("/api/v1/connections/sendgrid").bearer(&admin).send().await.problem(404, "not-found");
    h.stop().await;
}

//! Billing over HTTP (feature `stripe`): off without a key (503, `/ready`
//! says so); with Stripe configured against a local mock of its API, the
//! checkout, portal and subscription routes, Stripe's webhook (signature
//! refusals, replays), the worker applying it, and the plan guard.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crm_core::Role;

use crate::helpers::Harness;

const SECRET: &str = "whsec_http_test";

pub(crate) type Seen = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

/// A small Stripe: customers (search finds none, create), Checkout
/// Sessions and portal sessions, in Stripe's shapes; records each request.
pub(crate) async fn mock_stripe() -> (String, Seen) {
    async fn answer(State(seen): State<Seen>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> String {
        let key = format!("{method} {}", uri.path());
        seen.lock().unwrap().push((key.clone(), headers, String::from_utf8_lossy(&body).into_owned()));
        match key.as_str() {
            "GET /v1/customers/search" => json!({ "object": "search_result", "data": [], "has_more": false }),
            "POST /v1/customers" => json!({ "id": "cus_http1", "object": "customer", "metadata": {} }),
            "POST /v1/checkout/sessions" => {
                json!({ "id": "cs_test_http1", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_test_http1" })
            }
            "POST /v1/billing_portal/sessions" => {
                json!({ "id": "bps_http1", "object": "billing_portal.session", "url": "https://billing.stripe.com/p/session/test_http1" })
            }
            _ => json!({ "error": { "type": "invalid_request_error", "message": "Unrecognized request URL" } }),
        }
        .to_string()
    }
    let seen: Seen = Arc::default();
    let app = Router::new().fallback(answer).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

pub(crate) fn configure(c: &mut crm_http::Config, api: &str) {
    c.billing.secret_key = Some(SecretString::from("sk_test_http123456".to_owned()));
    c.billing.webhook_secret = Some(SecretString::from(format!("whsec_old_one,{SECRET}")));
    c.billing.api_base = Some(api.to_owned());
}

fn subscription_event(id: &str, account: &str, status: &str, created: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "type": "customer.subscription.updated", "created": created,
        "data": { "object": {
            "id": "sub_http1", "object": "subscription", "customer": "cus_http1", "status": status,
            "created": 1_700_000_000, "cancel_at_period_end": false, "metadata": { "account_id": account },
            "items": { "data": [{ "quantity": 1, "current_period_end": 1_800_000_000,
                "price": { "id": "price_pro", "unit_amount": 4990, "currency": "brl" } }] } } }
    }))
    .unwrap()
}

#[tokio::test]
async fn billing_is_off_without_a_key() {
    let h = Harness::sqlite().await;
    let (_, token) = h.account(Role::Admin).await;
    let p = h.api.get("/api/v1/billing/subscription").bearer(&token).send().await.problem(503, "unavailable");
    assert!(p["detail"].as_str().unwrap().contains("STRIPE_SECRET_KEY"), "{p}");
    let body =
        json!({ "price_id": "price_pro", "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no" });
    h.api.post("/api/v1/billing/checkout").bearer(&token).json(body).send().await.problem(503, "unavailable");
    // Bad input is a 4xx even when billing is off.
    let bad =
        json!({ "price_id": "price pro", "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no" });
    h.api.post("/api/v1/billing/checkout").bearer(&token).json(bad).send().await.problem(422, "validation");
    h.api.post("/webhooks/stripe").raw("application/json", b"{}".to_vec()).send().await.problem(503, "unavailable");
    let ready = h.api.get("/ready").send().await.ok_json(200);
    assert_eq!(ready["checks"]["billing"]["status"], "degraded", "{ready}");
    assert!(ready["checks"]["billing"]["detail"].as_str().unwrap().contains("off"), "{ready}");
    h.stop().await;
}

#[tokio::test]
async fn checkout_portal_webhook_and_subscription() {
    let (api, seen) = mock_stripe().await;
    let h = Harness::sqlite_with(|c| configure(c, &api)).await;
    let (account, token) = h.account(Role::Admin).await;
    let a = account.to_string();
    let ready = h.api.get("/ready").send().await.ok_json(200);
    assert_eq!(ready["checks"]["billing"]["status"], "healthy", "{ready}");

    // No customer yet: the portal needs a checkout first.
    let portal = json!({ "return_url": "https://app.example/billing" });
    h.api.post("/api/v1/billing/portal").bearer(&token).json(portal.clone()).send().await.problem(409, "conflict");

    let body = json!({ "price_id": "price_pro", "quantity": 2, "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no" });
    let session = h
        .api
        .post("/api/v1/billing/checkout")
        .bearer(&token)
        .header("Idempotency-Key", "order-42")
        .json(body.clone())
        .send()
        .await
        .ok_json(200);
    assert_eq!(session["url"], "https://checkout.stripe.com/c/pay/cs_test_http1");
    {
        let seen = seen.lock().unwrap();
        let (_, headers, form) = seen.iter().find(|(k, ..)| k == "POST /v1/checkout/sessions").unwrap();
        assert_eq!(headers["idempotency-key"], format!("{a}:order-42:checkout").as_str());
        assert_eq!(headers["authorization"], "Bearer sk_test_http123456");
        assert!(form.contains("line_items[0][price]=price_pro&line_items[0][quantity]=2"), "{form}");
        assert!(form.contains("payment_method_types[0]=card&payment_method_types[1]=pix&locale=pt-BR"), "{form}");
    }
    // The customer is stored: the second checkout does not look for it again.
    h.api.post("/api/v1/billing/checkout").bearer(&token).json(body.clone()).send().await.expect(200);
    assert_eq!(seen.lock().unwrap().iter().filter(|(k, ..)| k == "POST /v1/customers").count(), 1);
    let p = h.api.post("/api/v1/billing/portal").bearer(&token).json(portal).send().await.ok_json(200);
    assert_eq!(p["url"], "https://billing.stripe.com/p/session/test_http1");

    // Bad input.
    for bad in [
        json!({ "price_id": "price_pro", "quantity": 0, "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no" }),
        json!({ "price_id": "price_pro", "success_url": "ftp://a.example/ok", "cancel_url": "https://a.example/no" }),
        json!({ "price_id": "price_pro", "success_url": "https://a.example/ok", "cancel_url": "https://a.example/no", "extra": 1 }),
    ] {
        let r = h.api.post("/api/v1/billing/checkout").bearer(&token).json(bad).send().await;
        assert!(r.status.is_client_error(), "{}: {}", r.status, r.text());
    }
    let r =
        h.api.post("/api/v1/billing/checkout").bearer(&token).header("Idempotency-Key", "a b").json(body).send().await;
    r.problem(422, "validation");
    let viewer = h.key(account, Role::Viewer).await;
    let r = h.api.post("/api/v1/billing/checkout").bearer(&viewer).json(json!({})).send().await;
    assert!(r.status.is_client_error());

    // Stripe's webhook: refused signatures are 400 with the reason.
    let event = subscription_event("evt_http1", &a, "active", chrono::Utc::now().timestamp());
    let now = chrono::Utc::now().timestamp();
    let p =
        h.api.post("/webhooks/stripe").raw("application/json", event.clone()).send().await.problem(400, "bad-request");
    assert!(p["detail"].as_str().unwrap().contains("missing"), "{p}");
    let wrong = crm_billing::signature::sign(&["whsec_wrong"], now, &event);
    let p = h
        .api
        .post("/webhooks/stripe")
        .header("Stripe-Signature", &wrong)
        .raw("application/json", event.clone())
        .send()
        .await
        .problem(400, "bad-request");
    assert!(p["detail"].as_str().unwrap().contains("no v1 signature matches"), "{p}");
    let stale = crm_billing::signature::sign(&[SECRET], now - 3600, &event);
    h.api
        .post("/webhooks/stripe")
        .header("Stripe-Signature", &stale)
        .raw("application/json", event.clone())
        .send()
        .await
        .problem(400, "bad-request");

    let good = crm_billing::signature::sign(&[SECRET], now, &event);
    let r = h
        .api
        .post("/webhooks/stripe")
        .header("Stripe-Signature", &good)
        .raw("application/json", event.clone())
        .send()
        .await
        .ok_json(200);
    assert_eq!((r["event_id"].as_str(), r["duplicate"].as_bool()), (Some("evt_http1"), Some(false)));
    let again = h
        .api
        .post("/webhooks/stripe")
        .header("Stripe-Signature", &good)
        .raw("application/json", event)
        .send()
        .await
        .ok_json(200);
    assert_eq!(again["duplicate"], true);

    // The worker applies it.
    let mut view = Value::Null;
    for _ in 0..100 {
        view = h.api.get("/api/v1/billing/subscription").bearer(&viewer).send().await.ok_json(200);
        if view["subscription"]["status"] == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view["subscription"]["status"], "active", "{view}");
    assert_eq!(view["subscription"]["price"]["currency"], "BRL", "{view}");
    assert_eq!(view["entitled"], true);
    assert_eq!(view["enforced"], false);
    h.stop().await;
}

#[tokio::test]
async fn the_plan_guard_answers_402() {
    let (api, _) = mock_stripe().await;
    let h = Harness::sqlite_with(|c| {
        configure(c, &api);
        c.billing.guard = true;
        c.billing.free = crm_core::domain::billing::PlanLimits { contacts: Some(1), ..Default::default() };
    })
    .await;
    let (_, token) = h.account(Role::Admin).await;
    let contact = |phone: &str| json!({ "name": "Ana", "phone": phone });
    h.api.post("/api/v1/contacts").bearer(&token).json(contact("+5511987650001")).send().await.expect(201);
    let p = h
        .api
        .post("/api/v1/contacts")
        .bearer(&token)
        .json(contact("+5511987650002"))
        .send()
        .await
        .problem(402, "plan-limit");
    assert!(p["detail"].as_str().unwrap().contains("contacts (1 of 1)"), "{p}");
    let view = h.api.get("/api/v1/billing/subscription").bearer(&token).send().await.ok_json(200);
    assert_eq!((view["usage"]["contacts"].as_u64(), view["limits"]["contacts"].as_u64()), (Some(1), Some(1)));
    assert_eq!(view["enforced"], true);
    h.stop().await;
}

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
            "POST /v1/customers" => {
                // cus_http1, cus_http2, … one per created customer.
                let n = seen.lock().unwrap().iter().filter(|(k, ..)| k == "POST /v1/customers").count();
                json!({ "id": format!("cus_http{n}"), "object": "customer", "metadata": {} })
            }
            "POST /v1/checkout/sessions" => {
                json!({ "id": "cs_test_http1", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_test_http1" })
            }
            "POST /v1/billing_portal/sessions" => {
                json!({ "id": "bps_http1", "object": "billing_portal.session", "url": "https://billing.stripe.com/p/session/test_http1" })
            }
            "GET /v1/subscriptions/sub_http1" => stripe_subscription("active", false),
            "POST /v1/subscriptions/sub_http1" => stripe_subscription("active", true),
            "DELETE /v1/subscriptions/sub_http1" => stripe_subscription("canceled", false),
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

/// Stripe's subscription object for `sub_http1`.
fn stripe_subscription(status: &str, cancel_at_period_end: bool) -> Value {
    json!({
        "id": "sub_http1", "object": "subscription", "customer": "cus_http1", "status": status,
        "created": 1_700_000_000, "cancel_at_period_end": cancel_at_period_end, "metadata": {},
        "items": { "data": [{ "quantity": 1, "current_period_end": 1_800_000_000,
            "price": { "id": "price_pro", "unit_amount": 4990, "currency": "brl" } }] }
    })
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

/// Without an active subscription the free limits hold campaign sends too;
/// once subscribed, the plan's limits apply.
#[tokio::test]
async fn the_plan_guard_holds_campaign_sends_until_subscribed() {
    use crm_core::domain::billing::{Plan, PlanLimits};
    let (api, _) = mock_stripe().await;
    let h = Harness::sqlite_with(|c| {
        configure(c, &api);
        c.billing.guard = true;
        c.billing.free = PlanLimits { messages_per_month: Some(0), ..Default::default() };
        c.billing.plans = vec![Plan {
            id: "pro".into(),
            price_ids: vec!["price_pro".into()],
            limits: PlanLimits { messages_per_month: Some(10_000), ..Default::default() },
        }];
    })
    .await;
    let (account, token) = h.account(Role::Admin).await;
    let missing = "/api/v1/campaigns/01900000-0000-7000-8000-000000000000";
    for action in ["start", "resume"] {
        let p = h.api.post(&format!("{missing}/{action}")).bearer(&token).send().await.problem(402, "plan-limit");
        assert!(p["detail"].as_str().unwrap().contains("messages this month (0 of 0)"), "{p}");
    }
    let when = json!({ "scheduled_at": "2099-01-01T00:00:00Z" });
    h.api.post(&format!("{missing}/schedule")).bearer(&token).json(when).send().await.problem(402, "plan-limit");
    // Pausing is not a send.
    h.api.post(&format!("{missing}/pause")).bearer(&token).send().await.problem(404, "not-found");

    subscribe(&h, &account.to_string(), &token).await;
    // The guard lets it through: the campaign itself is missing.
    h.api.post(&format!("{missing}/start")).bearer(&token).send().await.problem(404, "not-found");
    h.stop().await;
}

/// Sends a signed `customer.subscription.updated` and waits until the worker applied it.
async fn subscribe(h: &Harness, account: &str, token: &str) {
    let now = chrono::Utc::now().timestamp();
    let event = subscription_event("evt_cancel1", account, "active", now);
    let sig = crm_billing::signature::sign(&[SECRET], now, &event);
    h.api
        .post("/webhooks/stripe")
        .header("Stripe-Signature", &sig)
        .raw("application/json", event)
        .send()
        .await
        .expect(200);
    for _ in 0..200 {
        let view = h.api.get("/api/v1/billing/subscription").bearer(token).send().await.ok_json(200);
        if view["subscription"]["status"] == "active" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the subscription event was not applied");
}

#[tokio::test]
async fn cancel_at_period_end_or_immediately() {
    let (api, seen) = mock_stripe().await;
    let h = Harness::sqlite_with(|c| configure(c, &api)).await;
    let (account, token) = h.account(Role::Admin).await;
    let a = account.to_string();

    // Nothing to cancel yet.
    let p = h.api.post("/api/v1/billing/cancel").bearer(&token).json(json!({})).send().await.problem(409, "conflict");
    assert!(p["detail"].as_str().unwrap().contains("no subscription to cancel"), "{p}");
    assert!(!seen.lock().unwrap().iter().any(|(k, ..)| k.contains("/v1/subscriptions")));

    subscribe(&h, &a, &token).await;
    // Bad input and roles.
    let r = h.api.post("/api/v1/billing/cancel").bearer(&token).json(json!({ "mode": "later" })).send().await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let r = h.api.post("/api/v1/billing/cancel").bearer(&token).json(json!({ "when": "now" })).send().await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let viewer = h.key(account, Role::Viewer).await;
    h.api.post("/api/v1/billing/cancel").bearer(&viewer).json(json!({})).send().await.problem(403, "forbidden");

    // Default: at the period's end, one POST with Stripe's form and the key.
    let sub = h
        .api
        .post("/api/v1/billing/cancel")
        .bearer(&token)
        .header("Idempotency-Key", "cancel-1")
        .json(json!({}))
        .send()
        .await
        .ok_json(200);
    assert_eq!((sub["status"].as_str(), sub["cancel_at_period_end"].as_bool()), (Some("active"), Some(true)), "{sub}");
    {
        let seen = seen.lock().unwrap();
        let (_, headers, form) = seen.iter().find(|(k, ..)| k == "POST /v1/subscriptions/sub_http1").unwrap();
        assert_eq!(form, "cancel_at_period_end=true");
        assert_eq!(headers["idempotency-key"], format!("{a}:cancel-1:cancel:at_period_end").as_str());
        assert_eq!(headers["authorization"], "Bearer sk_test_http123456");
        assert!(!seen.iter().any(|(k, ..)| k.starts_with("DELETE")));
    }

    // Immediately: Stripe's DELETE.
    let sub = h
        .api
        .post("/api/v1/billing/cancel")
        .bearer(&token)
        .json(json!({ "mode": "immediately" }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(sub["status"], "canceled", "{sub}");
    let key = {
        let seen = seen.lock().unwrap();
        let (_, headers, _) = seen.iter().find(|(k, ..)| k == "DELETE /v1/subscriptions/sub_http1").unwrap();
        headers["idempotency-key"].to_str().unwrap().to_owned()
    };
    assert!(key.ends_with(":cancel:immediately"), "{key}");
    h.stop().await;
}

/// An account with its own Stripe keys (the `stripe` connection, sealed):
/// its checkouts use its key, its endpoint verifies with its webhook secret
/// and applies events to it alone; other accounts keep the server's key.
#[tokio::test]
async fn an_account_bills_through_its_own_stripe_keys() {
    use crm_core::{JobQuery, JobState, PageRequest};
    const OWN_KEY: &str = "sk_test_own_account_1";
    const OWN_SECRET: &str = "whsec_own_account_1";
    let (api, seen) = mock_stripe().await;
    let h = Harness::sqlite_with(|c| configure(c, &api)).await;
    let (own, own_token) = h.account(Role::Admin).await;
    let (other, other_token) = h.account(Role::Admin).await;

    // The connection: checked, sealed, never echoed.
    let bad = json!({ "credentials": { "secret_key": "pk_test_nope1", "webhook_secret": OWN_SECRET } });
    h.api.put("/api/v1/connections/stripe").bearer(&own_token).json(bad).send().await.problem(422, "validation");
    let body = json!({ "credentials": { "secret_key": OWN_KEY, "webhook_secret": OWN_SECRET } });
    let set = h.api.put("/api/v1/connections/stripe").bearer(&own_token).json(body).send().await;
    let view = set.ok_json(200);
    assert!(!set.text().contains(OWN_KEY) && !set.text().contains(OWN_SECRET), "{}", set.text());
    assert_eq!((view["capability"].as_str(), view["status"].as_str()), (Some("billing"), Some("connected")), "{view}");

    // Checkouts: the account's key for it, the server's for the other.
    let checkout = json!({ "price_id": "price_pro", "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no" });
    for token in [&own_token, &other_token] {
        h.api.post("/api/v1/billing/checkout").bearer(token).json(checkout.clone()).send().await.expect(200);
    }
    {
        let seen = seen.lock().unwrap();
        let keys: Vec<_> = seen
            .iter()
            .filter(|(k, ..)| k == "POST /v1/checkout/sessions" || k == "POST /v1/customers")
            .map(|(k, h, _)| (k.clone(), h["authorization"].to_str().unwrap().to_owned()))
            .collect();
        let own_auth = format!("Bearer {OWN_KEY}");
        assert_eq!(
            keys,
            vec![
                ("POST /v1/customers".to_owned(), own_auth.clone()),
                ("POST /v1/checkout/sessions".to_owned(), own_auth),
                ("POST /v1/customers".to_owned(), "Bearer sk_test_http123456".to_owned()),
                ("POST /v1/checkout/sessions".to_owned(), "Bearer sk_test_http123456".to_owned()),
            ]
        );
    }

    // Its endpoint verifies with its secret, not the server's.
    let now = chrono::Utc::now().timestamp();
    let event = subscription_event("evt_own1", &own.to_string(), "active", now);
    let path = format!("/webhooks/stripe/{own}");
    let server_signed = crm_billing::signature::sign(&[SECRET], now, &event);
    h.api
        .post(&path)
        .header("Stripe-Signature", &server_signed)
        .raw("application/json", event.clone())
        .send()
        .await
        .problem(400, "bad-request");
    let signed = crm_billing::signature::sign(&[OWN_SECRET], now, &event);
    let r = h.api.post(&path).header("Stripe-Signature", &signed).raw("application/json", event.clone()).send().await;
    assert_eq!(r.ok_json(200)["duplicate"], false);
    // And the server's endpoint does not take the account's secret.
    h.api
        .post("/webhooks/stripe")
        .header("Stripe-Signature", &signed)
        .raw("application/json", event.clone())
        .send()
        .await
        .problem(400, "bad-request");
    // An account without the connection has no endpoint; nor has an unknown one.
    let path_other = format!("/webhooks/stripe/{other}");
    h.api
        .post(&path_other)
        .header("Stripe-Signature", &signed)
        .raw("application/json", event.clone())
        .send()
        .await
        .problem(404, "not-found");
    let r = h.api.post("/webhooks/stripe/not-a-uuid").raw("application/json", event).send().await;
    assert!(r.status.is_client_error(), "{}", r.status);

    // An event naming the other account, sent to this account's endpoint,
    // is stored but never applied: its job is dead-lettered with the reason.
    let forged = subscription_event("evt_own2", &other.to_string(), "active", now);
    let signed = crm_billing::signature::sign(&[OWN_SECRET], now, &forged);
    h.api.post(&path).header("Stripe-Signature", &signed).raw("application/json", forged).send().await.expect(200);

    let store = h.state.crm().store().clone();
    let mut dead = Vec::new();
    for _ in 0..200 {
        let view = h.api.get("/api/v1/billing/subscription").bearer(&own_token).send().await.ok_json(200);
        let q = JobQuery {
            kind: Some("billing.apply".into()),
            state: Some(JobState::Dead),
            page: PageRequest::first(10).unwrap(),
        };
        dead = store.list_jobs(own, &q).await.unwrap().items;
        if view["subscription"]["status"] == "active" && !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = h.api.get("/api/v1/billing/subscription").bearer(&own_token).send().await.ok_json(200);
    assert_eq!(view["subscription"]["status"], "active", "{view}");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].payload["event_id"], "evt_own2");
    assert!(format!("{:?}", dead[0]).contains("names account"), "{:?}", dead[0]);
    let theirs = h.api.get("/api/v1/billing/subscription").bearer(&other_token).send().await.ok_json(200);
    assert_eq!(theirs["subscription"], Value::Null, "{theirs}");
    h.stop().await;
}

/// The dashboard's billing page: the plan and status, checkout, the portal
/// and cancel through Stripe (the local mock), CSRF on every action.
#[tokio::test]
async fn the_dashboard_billing_page() {
    use crate::dashboard::{Browser, EMAIL, PASSWORD};
    use crm_core::domain::billing::{Plan, PlanLimits};
    let (api, seen) = mock_stripe().await;
    let h = Harness::sqlite_with(|c| {
        configure(c, &api);
        c.billing.plans = vec![Plan {
            id: "pro".into(),
            price_ids: vec!["price_pro".into()],
            limits: PlanLimits { channels: Some(3), contacts: None, messages_per_month: Some(10_000) },
        }];
    })
    .await;
    let (account, token) = h.account(Role::Owner).await;
    h.state.crm().create_user(account, EMAIL, "Dona Maria", Role::Owner, PASSWORD).await.unwrap();
    // A browser sees the 303s itself.
    let web = crate::helpers::Api::http_without_redirects(h.server.as_ref().unwrap().base.clone());
    let mut browser = Browser::open(&web).await;
    browser.log_in(&web, PASSWORD).await.expect(303);

    let page = browser.get(&web, "/dashboard/billing").await;
    page.expect(200);
    let html = page.text();
    assert!(html.contains("<h1>Cobrança</h1>") && html.contains(r#"data-status="none""#), "{html}");
    assert!(html.contains(r#"<option value="price_pro">"#) && html.contains(r#"id="portal-form""#), "{html}");
    assert!(!html.contains(r#"id="cancel-form""#), "nothing to cancel yet");

    // Actions need the CSRF token.
    browser.post(&web, "/dashboard/billing/checkout", &[("price_id", "price_pro")]).await.expect(403);
    assert!(!seen.lock().unwrap().iter().any(|(k, ..)| k == "POST /v1/checkout/sessions"));
    let csrf = browser.csrf.clone();
    let r = browser.post(&web, "/dashboard/billing/checkout", &[("csrf", &csrf), ("price_id", "price_pro")]).await;
    r.expect(303);
    assert_eq!(r.header("location").as_deref(), Some("https://checkout.stripe.com/c/pay/cs_test_http1"));
    {
        let seen = seen.lock().unwrap();
        let (_, _, form) = seen.iter().find(|(k, ..)| k == "POST /v1/checkout/sessions").unwrap();
        assert!(
            form.contains("success_url=http%3A%2F%2F") && form.contains("%2Fdashboard%2Fbilling%3Fdone%3Dcheckout"),
            "{form}"
        );
    }
    // An unknown price: Stripe's refusal shown on the page, not a redirect.
    let r = browser.post(&web, "/dashboard/billing/checkout", &[("csrf", &csrf), ("price_id", "bad price")]).await;
    assert_eq!(r.status.as_u16(), 422);
    assert!(r.text().contains(r#"id="billing-error""#), "{}", r.text());

    // Subscribed (Stripe's webhook): status, price, next invoice.
    subscribe(&h, &account.to_string(), &token).await;
    let html = browser.get(&web, "/dashboard/billing?lang=en").await.text();
    assert!(html.contains(r#"data-status="active""#) && html.contains(">Active<"), "{html}");
    assert!(html.contains(r#"<dd id="plan">pro</dd>"#), "{html}");
    assert!(html.contains(r#"<dd id="price">BRL 49.90</dd>"#), "{html}");
    assert!(html.contains(r#"<dd id="next-invoice">2027-01-15 · BRL 49.90</dd>"#), "{html}");
    assert!(html.contains("<td>0 / 10000</td>") && html.contains(r#"id="cancel-form""#), "{html}");

    // The portal and cancel.
    let r = browser.post(&web, "/dashboard/billing/portal", &[("csrf", &csrf)]).await;
    r.expect(303);
    assert_eq!(r.header("location").as_deref(), Some("https://billing.stripe.com/p/session/test_http1"));
    let r = browser.post(&web, "/dashboard/billing/cancel", &[("csrf", &csrf), ("mode", "at_period_end")]).await;
    r.expect(303);
    assert_eq!(r.header("location").as_deref(), Some("/dashboard/billing?done=cancelled"));
    let seen_cancel = seen.lock().unwrap().iter().filter(|(k, ..)| k == "POST /v1/subscriptions/sub_http1").count();
    assert_eq!(seen_cancel, 1);
    let html = browser.get(&web, "/dashboard/billing?done=cancelled").await.text();
    assert!(html.contains(r#"id="billing-notice""#), "{html}");

    // Signed out: to the login page.
    let r = web.get("/dashboard/billing").send().await;
    assert_eq!(r.status.as_u16(), 303);
    h.stop().await;
}

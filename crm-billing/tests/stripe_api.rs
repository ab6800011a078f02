//! The Stripe adapter against a local mock of Stripe's API (127.0.0.1):
//! form bodies and headers as Stripe expects them, Stripe's answers and
//! errors, 429 with Retry-After, 5xx, Stripe-Should-Retry, timeouts.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use crm_billing::StripeBilling;
use crm_core::ports::billing::{Billing, CancelMode, CheckoutMode, CheckoutRequest};
use crm_core::{AccountId, Error};
use support::{Answer, MockStripe, fixture};

fn stripe(mock: &MockStripe) -> StripeBilling {
    StripeBilling::builder()
        .secret_key("sk_test_51abcdefSECRET")
        .webhook_secret("whsec_test")
        .base_url(&mock.url)
        .retry_base(Duration::from_millis(10))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn request() -> CheckoutRequest {
    CheckoutRequest {
        mode: CheckoutMode::Subscription,
        price_id: "price_1MowQULkdIwHu7ixraBm864M".into(),
        quantity: 3,
        success_url: "https://app.example/billing?ok=1".into(),
        cancel_url: "https://app.example/billing?canceled=1".into(),
    }
}

fn assert_auth(seen: &support::Seen) {
    assert_eq!(seen.header("authorization"), Some("Bearer sk_test_51abcdefSECRET"));
    assert_eq!(seen.header("stripe-version"), Some(crm_billing::API_VERSION));
}

#[tokio::test]
async fn customer_then_checkout_with_stripes_form() {
    let mock = MockStripe::start().await;
    let account = AccountId::new();
    let a = account.to_string();
    mock.on("GET", "/v1/customers/search", vec![Answer::ok(fixture("customer_search_empty.json", &a))]);
    mock.on("POST", "/v1/customers", vec![Answer::ok(fixture("customer.json", &a))]);
    mock.on("POST", "/v1/checkout/sessions", vec![Answer::ok(fixture("checkout_session.json", &a))]);
    let s = stripe(&mock);

    let customer = s.ensure_customer(account, "Loja da Ana & Cia", "key-1").await.unwrap();
    assert_eq!(customer, "cus_NffrFeUfNV2Hib");
    let session = s.create_checkout(account, &customer, &request(), "key-2").await.unwrap();
    assert!(session.url.starts_with("https://checkout.stripe.com/"));
    assert!(session.id.starts_with("cs_test_"));

    let seen = mock.seen();
    assert_eq!(seen.len(), 3);
    let search = &seen[0];
    assert_eq!((search.method.as_str(), search.path.as_str()), ("GET", "/v1/customers/search"));
    assert_auth(search);
    assert_eq!(search.header("idempotency-key"), None, "reads carry no idempotency key");
    let query = crm_billing::form::decode(search.query.as_deref().unwrap());
    assert_eq!(query[0], ("query".to_owned(), format!("metadata['account_id']:'{a}'")));

    let create = &seen[1];
    assert_eq!((create.method.as_str(), create.path.as_str()), ("POST", "/v1/customers"));
    assert_auth(create);
    assert_eq!(create.header("idempotency-key"), Some("key-1"));
    assert_eq!(create.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(
        create.form,
        vec![("name".into(), "Loja da Ana & Cia".into()), ("metadata[account_id]".into(), a.clone())]
    );

    let checkout = &seen[2];
    assert_eq!((checkout.method.as_str(), checkout.path.as_str()), ("POST", "/v1/checkout/sessions"));
    assert_auth(checkout);
    assert_eq!(checkout.header("idempotency-key"), Some("key-2"));
    let want: Vec<(String, String)> = [
        ("mode", "subscription"),
        ("customer", "cus_NffrFeUfNV2Hib"),
        ("client_reference_id", a.as_str()),
        ("line_items[0][price]", "price_1MowQULkdIwHu7ixraBm864M"),
        ("line_items[0][quantity]", "3"),
        ("payment_method_types[0]", "card"),
        ("payment_method_types[1]", "pix"),
        ("locale", "pt-BR"),
        ("success_url", "https://app.example/billing?ok=1"),
        ("cancel_url", "https://app.example/billing?canceled=1"),
        ("metadata[account_id]", a.as_str()),
        ("subscription_data[metadata][account_id]", a.as_str()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(checkout.form, want);
}

#[tokio::test]
async fn found_customer_is_reused_and_payment_mode() {
    let mock = MockStripe::start().await;
    let account = AccountId::new();
    let a = account.to_string();
    let found = format!(r#"{{"object":"search_result","data":[{}],"has_more":false}}"#, fixture("customer.json", &a));
    mock.on("GET", "/v1/customers/search", vec![Answer::ok(found)]);
    mock.on("POST", "/v1/checkout/sessions", vec![Answer::ok(fixture("checkout_session.json", &a))]);
    let s = stripe(&mock);
    assert_eq!(s.ensure_customer(account, "Ana", "k").await.unwrap(), "cus_NffrFeUfNV2Hib");
    let mut req = request();
    req.mode = CheckoutMode::Payment;
    s.create_checkout(account, "cus_NffrFeUfNV2Hib", &req, "k2").await.unwrap();
    let seen = mock.seen();
    assert_eq!(seen.len(), 2, "no customer created: {seen:?}");
    assert_eq!(seen[1].field("mode"), Some("payment"));
    assert_eq!(seen[1].field("payment_intent_data[metadata][account_id]"), Some(a.as_str()));
    assert_eq!(seen[1].field("subscription_data[metadata][account_id]"), None);
}

#[tokio::test]
async fn portal_cancel_and_read_subscription() {
    let mock = MockStripe::start().await;
    let account = AccountId::new();
    let a = account.to_string();
    let sub_path = "/v1/subscriptions/sub_1MowQVLkdIwHu7ixeRlqHVzs";
    let active = fixture("subscription.json", &a);
    let at_end = active.replace(r#""cancel_at_period_end": false"#, r#""cancel_at_period_end": true"#);
    let canceled = active.replace(r#""status": "active""#, r#""status": "canceled""#);
    mock.on("POST", "/v1/billing_portal/sessions", vec![Answer::ok(fixture("portal_session.json", &a))]);
    mock.on("GET", sub_path, vec![Answer::ok(active)]);
    mock.on("POST", sub_path, vec![Answer::ok(at_end)]);
    mock.on("DELETE", sub_path, vec![Answer::ok(canceled)]);
    let s = stripe(&mock);

    let portal = s.create_portal("cus_NffrFeUfNV2Hib", "https://app.example/billing", "p-1").await.unwrap();
    assert!(portal.url.starts_with("https://billing.stripe.com/"));
    let sub = s.get_subscription(account, "sub_1MowQVLkdIwHu7ixeRlqHVzs").await.unwrap();
    assert_eq!(sub.status, crm_core::domain::billing::SubscriptionStatus::Active);
    assert_eq!(sub.price.as_ref().map(|p| (p.amount, p.currency.as_str())), Some((4990, "BRL")));
    assert_eq!(sub.current_period_end.map(|t| t.timestamp()), Some(1_682_288_167), "basil: on the item");
    let ending =
        s.cancel_subscription(account, "sub_1MowQVLkdIwHu7ixeRlqHVzs", CancelMode::AtPeriodEnd, "c-1").await.unwrap();
    assert!(ending.cancel_at_period_end);
    let ended =
        s.cancel_subscription(account, "sub_1MowQVLkdIwHu7ixeRlqHVzs", CancelMode::Immediately, "c-2").await.unwrap();
    assert_eq!(ended.status, crm_core::domain::billing::SubscriptionStatus::Canceled);

    let seen = mock.seen();
    assert_eq!(
        seen[0].form,
        vec![
            ("customer".into(), "cus_NffrFeUfNV2Hib".into()),
            ("return_url".into(), "https://app.example/billing".into())
        ]
    );
    assert_eq!(seen[0].header("idempotency-key"), Some("p-1"));
    let post = seen.iter().find(|r| r.method == "POST" && r.path == sub_path).unwrap();
    assert_eq!(post.form, vec![("cancel_at_period_end".into(), "true".into())]);
    assert_eq!(post.header("idempotency-key"), Some("c-1"));
    let delete = seen.iter().find(|r| r.method == "DELETE").unwrap();
    assert_eq!(delete.header("idempotency-key"), Some("c-2"));

    // Another account's subscription is missing; a path-shaped id never leaves.
    let other = AccountId::new();
    assert!(matches!(s.get_subscription(other, "sub_1MowQVLkdIwHu7ixeRlqHVzs").await, Err(Error::NotFound { .. })));
    let before = mock.seen().len();
    assert!(matches!(
        s.cancel_subscription(other, "sub_1MowQVLkdIwHu7ixeRlqHVzs", CancelMode::Immediately, "c-3").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(mock.seen().iter().filter(|r| r.method == "DELETE").count(), 1, "nothing cancelled for another account");
    assert!(matches!(s.get_subscription(account, "../v1/customers").await, Err(Error::Validation { .. })));
    assert_eq!(mock.seen().len(), before + 1);
}

#[tokio::test]
async fn errors_map_to_crm_kinds_without_keys() {
    let mock = MockStripe::start().await;
    let account = AccountId::new();
    mock.on("POST", "/v1/checkout/sessions", vec![Answer::status(402, fixture("error_card_declined.json", ""))]);
    mock.on(
        "POST",
        "/v1/billing_portal/sessions",
        vec![Answer::status(401, fixture("error_invalid_api_key.json", ""))],
    );
    mock.on(
        "GET",
        "/v1/subscriptions/sub_missing",
        vec![Answer::status(404, fixture("error_resource_missing.json", ""))],
    );
    let s = stripe(&mock);
    let card = s.create_checkout(account, "cus_1", &request(), "k").await.unwrap_err();
    assert!(
        matches!(&card, Error::Validation { field, reason } if field == "card" && reason.contains("insufficient_funds")),
        "{card:?}"
    );
    let auth = s.create_portal("cus_1", "https://app.example/x", "k").await.unwrap_err();
    assert!(matches!(&auth, Error::Config { .. }), "{auth:?}");
    assert!(!format!("{auth} {auth:?}").contains("sk_test"), "no key in the error");
    assert!(matches!(s.get_subscription(account, "sub_missing").await, Err(Error::NotFound { .. })));
    assert_eq!(mock.seen().len(), 3, "4xx are not retried");
}

#[tokio::test]
async fn rate_limits_and_outages_are_retried_with_the_same_key() {
    let mock = MockStripe::start().await;
    let account = AccountId::new();
    let a = account.to_string();
    let limited = Answer::status(429, fixture("error_rate_limit.json", "")).with_header("retry-after", "1");
    let outage = Answer::status(500, fixture("error_api.json", ""));
    mock.on("POST", "/v1/checkout/sessions", vec![limited, outage, Answer::ok(fixture("checkout_session.json", &a))]);
    let s = stripe(&mock);
    s.create_checkout(account, "cus_1", &request(), "same-key").await.unwrap();
    let seen = mock.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.header("idempotency-key") == Some("same-key")));
    assert!(seen.windows(2).all(|w| w[0].form == w[1].form), "the same body each time");

    // Past the retries: the last error, transient.
    let mock = MockStripe::start().await;
    mock.on("POST", "/v1/checkout/sessions", vec![Answer::status(503, fixture("error_api.json", ""))]);
    let err = stripe(&mock).create_checkout(account, "cus_1", &request(), "k").await.unwrap_err();
    assert!(matches!(err, Error::Provider { transient: true, .. }), "{err:?}");
    assert_eq!(mock.seen().len(), 3, "one try and two retries");
}

#[tokio::test]
async fn retry_after_and_stripe_should_retry_are_honoured() {
    let account = AccountId::new();
    // A Retry-After longer than crm waits inline: returned at once as RateLimited.
    let mock = MockStripe::start().await;
    mock.on(
        "POST",
        "/v1/checkout/sessions",
        vec![Answer::status(429, fixture("error_rate_limit.json", "")).with_header("retry-after", "60")],
    );
    let err = stripe(&mock).create_checkout(account, "cus_1", &request(), "k").await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { retry_after } if retry_after == Duration::from_secs(60)), "{err:?}");
    assert_eq!(mock.seen().len(), 1);

    // Stripe-Should-Retry: false on a 500: not retried.
    let mock = MockStripe::start().await;
    mock.on(
        "POST",
        "/v1/checkout/sessions",
        vec![Answer::status(500, fixture("error_api.json", "")).with_header("stripe-should-retry", "false")],
    );
    assert!(stripe(&mock).create_checkout(account, "cus_1", &request(), "k").await.is_err());
    assert_eq!(mock.seen().len(), 1);

    // Stripe-Should-Retry: true on a 409 (a concurrent request with the key): retried.
    let mock = MockStripe::start().await;
    let a = account.to_string();
    let busy = Answer::status(409, fixture("error_idempotency.json", "")).with_header("stripe-should-retry", "true");
    mock.on("POST", "/v1/checkout/sessions", vec![busy, Answer::ok(fixture("checkout_session.json", &a))]);
    stripe(&mock).create_checkout(account, "cus_1", &request(), "k").await.unwrap();
    assert_eq!(mock.seen().len(), 2);
}

#[tokio::test]
async fn timeouts_unreachable_and_malformed_answers() {
    let account = AccountId::new();
    let mock = MockStripe::start().await;
    let slow = Answer::ok(fixture("checkout_session.json", "")).after(Duration::from_secs(3));
    mock.on("POST", "/v1/checkout/sessions", vec![slow]);
    let s = StripeBilling::builder()
        .secret_key("sk_test_51abcdefSECRET")
        .base_url(&mock.url)
        .retry_base(Duration::from_millis(10))
        .timeout(Duration::from_millis(200))
        .max_retries(1)
        .build()
        .unwrap();
    let err = s.create_checkout(account, "cus_1", &request(), "k").await.unwrap_err();
    assert!(
        matches!(&err, Error::Provider { transient: true, message, .. } if message.contains("did not answer")),
        "{err:?}"
    );
    assert_eq!(mock.seen().len(), 2, "the timeout was retried once");

    // Nothing listens: transient.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = StripeBilling::builder()
        .secret_key("sk_test_x12345")
        .base_url(url)
        .retry_base(Duration::from_millis(5))
        .build()
        .unwrap();
    let err = s.create_portal("cus_1", "https://app.example/x", "k").await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    // A 200 that is not JSON, or a session without a URL: permanent provider errors.
    let mock = MockStripe::start().await;
    mock.on("POST", "/v1/billing_portal/sessions", vec![Answer::ok("<html>".into())]);
    mock.on("POST", "/v1/checkout/sessions", vec![Answer::ok(r#"{"id":"cs_1","object":"checkout.session"}"#.into())]);
    let s = stripe(&mock);
    assert!(matches!(
        s.create_portal("cus_1", "https://app.example/x", "k").await,
        Err(Error::Provider { transient: false, .. })
    ));
    assert!(matches!(
        s.create_checkout(account, "cus_1", &request(), "k").await,
        Err(Error::Provider { transient: false, .. })
    ));
}

#[test]
fn the_builder_refuses_bad_settings_without_echoing_them() {
    for key in ["", "pk_live_abcdef", "sk_ x y", "whsec_abc"] {
        let err = StripeBilling::builder().secret_key(key).build().unwrap_err();
        assert!(matches!(&err, Error::Config { .. }), "{err:?}");
        if !key.is_empty() {
            assert!(!err.to_string().contains(key), "{err}");
        }
    }
    assert!(StripeBilling::builder().build().is_err(), "no key");
    assert!(StripeBilling::builder().secret_key("sk_test_123456").webhook_secret(" ").build().is_err());
    assert!(StripeBilling::builder().secret_key("sk_test_123456").base_url("ftp://x").build().is_err());
}

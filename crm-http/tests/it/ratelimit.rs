//! Rate limits: per key on authenticated routes, per IP on login, with
//! `X-RateLimit-*` headers and `Retry-After` on 429.

use crm_core::Role;
use serde_json::json;
use std::time::Duration;

use crate::helpers::{Harness, Resp, settings};

fn num(r: &Resp, name: &str) -> u64 {
    r.header(name).unwrap_or_else(|| panic!("{name} missing")).parse().unwrap_or_else(|_| panic!("{name} not a number"))
}

#[tokio::test]
async fn per_key_quota_then_429_with_headers() {
    let h = Harness::memory_with(settings(|s| s.per_key_per_minute = 3), Vec::new()).await;
    let (a, token) = h.account(Role::Agent).await;
    let other = h.key(a, Role::Agent).await;
    for remaining in [2, 1, 0] {
        let r = h.api.get("/api/v1/contacts").bearer(&token).send().await;
        r.expect(200);
        assert_eq!(num(&r, "x-ratelimit-limit"), 3);
        assert_eq!(num(&r, "x-ratelimit-remaining"), remaining);
        assert!(num(&r, "x-ratelimit-reset") <= 60);
        assert!(r.header("retry-after").is_none());
    }
    let r = h.api.post("/api/v1/contacts").bearer(&token).json(crate::helpers::contact_body("Ana", 1)).send().await;
    let p = r.problem(429, "rate-limited");
    assert_eq!(num(&r, "x-ratelimit-limit"), 3);
    assert_eq!(num(&r, "x-ratelimit-remaining"), 0);
    let retry = num(&r, "retry-after");
    assert!((1..=20).contains(&retry), "about one emission interval (20 s): {retry}");
    assert_eq!(p["retry_after"], retry);
    assert!(num(&r, "x-ratelimit-reset") >= retry);
    assert!(h.crm().list_contacts(a, &Default::default()).await.unwrap().items.is_empty(), "the 429 did nothing");

    // Each key has its own budget.
    h.api.get("/api/v1/contacts").bearer(&other).send().await.expect(200);
    // Denied requests do not consume; after one interval one more is allowed.
    h.clock.as_ref().unwrap().advance(Duration::from_secs(20));
    let r = h.api.get("/api/v1/contacts").bearer(&token).send().await;
    r.expect(200);
    assert_eq!(num(&r, "x-ratelimit-remaining"), 0);
    h.api.get("/api/v1/contacts").bearer(&token).send().await.problem(429, "rate-limited");
    h.clock.as_ref().unwrap().advance(Duration::from_secs(60));
    let r = h.api.get("/api/v1/contacts").bearer(&token).send().await;
    assert_eq!(num(&r, "x-ratelimit-remaining"), 2, "full burst after a minute");
}

#[tokio::test]
async fn per_ip_limit_on_login() {
    let h = Harness::memory_with(settings(|s| s.per_ip_per_minute = 2), Vec::new()).await;
    let (a, _) = h.account(Role::Admin).await;
    h.crm().create_user(a, "ana@example.com", "Ana", Role::Agent, "long enough").await.unwrap();
    let login = |peer: &'static str, password: &'static str| {
        let api = h.api.clone();
        async move {
            api.post("/api/v1/auth/login")
                .peer(peer)
                .json(json!({ "email": "ana@example.com", "password": password }))
                .send()
                .await
        }
    };
    let r = login("10.0.0.1:5000", "wrong").await;
    r.problem(401, "unauthorized");
    assert_eq!(num(&r, "x-ratelimit-limit"), 2);
    assert_eq!(num(&r, "x-ratelimit-remaining"), 1);
    login("10.0.0.1:5001", "wrong").await.problem(401, "unauthorized");
    // Even the right password waits: guessing is what the limit stops.
    let r = login("10.0.0.1:5002", "long enough").await;
    r.problem(429, "rate-limited");
    assert!(num(&r, "retry-after") >= 1);
    assert_eq!(num(&r, "x-ratelimit-remaining"), 0);
    // Another address has its own budget.
    login("10.0.0.2:5000", "long enough").await.expect(200);
    h.clock.as_ref().unwrap().advance(Duration::from_secs(30));
    login("10.0.0.1:5003", "long enough").await.expect(200);
    // Health and metrics are not limited.
    for _ in 0..5 {
        h.api.get("/health").peer("10.0.0.1:1").send().await.expect(200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_apply_over_http() {
    let h = Harness::sqlite_with(|c| {
        c.rate_limit.per_key_per_minute = 2;
        c.rate_limit.per_ip_per_minute = 1;
    })
    .await;
    let key = h.server.as_ref().unwrap().admin_key.clone();
    h.api.get("/api/v1/contacts").bearer(&key).send().await.expect(200);
    let r = h.api.get("/api/v1/contacts").bearer(&key).send().await;
    r.expect(200);
    assert_eq!(num(&r, "x-ratelimit-remaining"), 0);
    let r = h.api.get("/api/v1/contacts").bearer(&key).send().await;
    r.problem(429, "rate-limited");
    assert!(num(&r, "retry-after") >= 1);
    let body = json!({ "email": "x@example.com", "password": "whatever" });
    h.api.post("/api/v1/auth/login").json(body.clone()).send().await.problem(401, "unauthorized");
    let r = h.api.post("/api/v1/auth/login").json(body).send().await;
    r.problem(429, "rate-limited");
    assert_eq!(num(&r, "x-ratelimit-limit"), 1);
    h.stop().await;
}

//! Health, readiness, metrics, OpenAPI, docs and cross-cutting layers.

use async_trait::async_trait;
use crm_core::{Health, HealthCheck, Role};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{Harness, create_contact, id, settings};

#[derive(Debug)]
struct Broken;

#[async_trait]
impl HealthCheck for Broken {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> Health {
        Health::unhealthy(Duration::from_millis(2), "connection refused")
    }
}

#[derive(Debug)]
struct Fine;

#[async_trait]
impl HealthCheck for Fine {
    fn name(&self) -> &str {
        "n8n"
    }

    async fn check(&self) -> Health {
        Health::healthy(Duration::from_millis(1))
    }
}

#[tokio::test]
async fn health_is_cheap_and_public() {
    let h = Harness::memory_with(Default::default(), vec![Arc::new(Broken)]).await;
    let v = h.api.get("/health").send().await.ok_json(200);
    assert_eq!(v, serde_json::json!({ "status": "ok" }), "liveness does not probe dependencies");
}

#[tokio::test]
async fn ready_reports_every_dependency() {
    let h = Harness::memory_with(Default::default(), vec![Arc::new(Fine)]).await;
    let v = h.api.get("/ready").send().await.ok_json(200);
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["checks"]["database"]["status"], "healthy", "{v}");
    assert_eq!(v["checks"]["messenger"]["status"], "degraded", "a not-configured provider is reported: {v}");
    assert!(v["checks"]["messenger"]["detail"].is_string());
    assert_eq!(v["checks"]["n8n"]["status"], "healthy");
    assert!(v["checks"]["database"]["latency_ms"].is_number());
}

#[tokio::test]
async fn ready_is_503_when_a_dependency_is_unhealthy() {
    let h = Harness::memory_with(Default::default(), vec![Arc::new(Broken), Arc::new(Fine)]).await;
    let r = h.api.get("/ready").send().await;
    let v = r.ok_json(503);
    assert_eq!(v["status"], "unavailable", "{v}");
    assert_eq!(v["checks"]["redis"]["status"], "unhealthy");
    assert_eq!(v["checks"]["redis"]["detail"], "connection refused");
    assert_eq!(v["checks"]["database"]["status"], "healthy");
}

#[tokio::test]
async fn metrics_count_by_route_template() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Agent).await;
    let c1 = id(&create_contact(&h.api, &token, "Ana", 1).await);
    let c2 = id(&create_contact(&h.api, &token, "Bia", 2).await);
    h.api.get(&format!("/api/v1/contacts/{c1}")).bearer(&token).send().await.expect(200);
    h.api.get(&format!("/api/v1/contacts/{c2}")).bearer(&token).send().await.expect(200);
    h.api.get(&format!("/api/v1/contacts/{}", uuid::Uuid::now_v7())).bearer(&token).send().await.expect(404);
    h.api.get("/no/such/thing").send().await.expect(404);
    h.api
        .post("/api/v1/messages")
        .bearer(&token)
        .json(serde_json::json!({ "contact_id": c1, "text": "oi" }))
        .send()
        .await
        .expect(202);
    let r = h.api.get("/metrics").send().await;
    r.expect(200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"), "{:?}", r.header("content-type"));
    let text = r.text();
    assert!(
        text.contains(r#"crm_http_requests_total{method="GET",route="/api/v1/contacts/{id}",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"crm_http_requests_total{method="GET",route="/api/v1/contacts/{id}",status="404"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"crm_http_requests_total{method="POST",route="/api/v1/contacts",status="201"} 2"#));
    assert!(text.contains(r#"route="unmatched",status="404"} 1"#), "{text}");
    assert!(
        text.contains(
            "crm_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/contacts/{id}\",le=\"+Inf\"} 3"
        ),
        "{text}"
    );
    assert!(text.contains("crm_messages_total{outcome=\"queued\"} 1"), "{text}");
    assert!(text.contains("crm_queue_depth{worker=\"outbox:dispatch\"}"), "{text}");
    for raw in [&c1, &c2] {
        assert!(!text.contains(raw.as_str()), "raw paths never become labels");
    }
    assert!(!text.contains("/no/such/thing"));
}

const ROUTES: &[(&str, &str)] = &[
    ("/api/v1/contacts", "get"),
    ("/api/v1/contacts", "post"),
    ("/api/v1/contacts/{id}", "get"),
    ("/api/v1/contacts/{id}", "patch"),
    ("/api/v1/contacts/{id}", "delete"),
    ("/api/v1/contacts/{id}/tags", "post"),
    ("/api/v1/contacts/{id}/tags", "delete"),
    ("/api/v1/contacts/{id}/messages", "get"),
    ("/api/v1/messages", "get"),
    ("/api/v1/messages", "post"),
    ("/api/v1/messages/{id}", "get"),
    ("/api/v1/messages/{id}/read", "post"),
    ("/api/v1/templates", "get"),
    ("/api/v1/templates", "post"),
    ("/api/v1/templates/{id}", "get"),
    ("/api/v1/templates/{id}", "put"),
    ("/api/v1/templates/{id}", "delete"),
    ("/api/v1/templates/{id}/render", "post"),
    ("/api/v1/channels", "get"),
    ("/api/v1/channels", "post"),
    ("/api/v1/channels/{id}", "get"),
    ("/api/v1/channels/{id}", "patch"),
    ("/api/v1/channels/{id}", "delete"),
    ("/api/v1/channels/{id}/groups", "get"),
    ("/api/v1/channels/{id}/groups", "post"),
    ("/api/v1/channels/{id}/groups/{group_id}", "get"),
    ("/api/v1/channels/{id}/groups/{group_id}", "patch"),
    ("/api/v1/channels/{id}/groups/{group_id}/participants", "post"),
    ("/api/v1/channels/{id}/groups/{group_id}/participants", "delete"),
    ("/api/v1/channels/{id}/groups/{group_id}/admins", "post"),
    ("/api/v1/channels/{id}/groups/{group_id}/leave", "post"),
    ("/api/v1/channels/{id}/groups/{group_id}/messages", "get"),
    ("/api/v1/channels/{id}/groups/{group_id}/messages", "post"),
    ("/api/v1/channel-kinds", "get"),
    ("/api/v1/campaigns", "get"),
    ("/api/v1/campaigns", "post"),
    ("/api/v1/campaigns/{id}", "get"),
    ("/api/v1/campaigns/{id}", "delete"),
    ("/api/v1/campaigns/{id}/start", "post"),
    ("/api/v1/campaigns/{id}/schedule", "post"),
    ("/api/v1/campaigns/{id}/pause", "post"),
    ("/api/v1/campaigns/{id}/resume", "post"),
    ("/api/v1/campaigns/{id}/cancel", "post"),
    ("/api/v1/campaigns/{id}/recipients", "get"),
    ("/api/v1/dead-letters", "get"),
    ("/api/v1/dead-letters/{consumer}/{event_id}/replay", "post"),
    ("/api/v1/dead-letters/{consumer}/replay", "post"),
    ("/api/v1/jobs", "get"),
    ("/api/v1/jobs/{id}", "get"),
    ("/api/v1/jobs/{id}", "delete"),
    ("/api/v1/jobs/{id}/replay", "post"),
    ("/api/v1/contacts/{id}/window", "get"),
    ("/api/v1/events", "get"),
    ("/api/v1/account", "get"),
    ("/api/v1/account", "patch"),
    ("/api/v1/users", "get"),
    ("/api/v1/users", "post"),
    ("/api/v1/api-keys", "get"),
    ("/api/v1/api-keys", "post"),
    ("/api/v1/api-keys/{id}", "delete"),
    ("/api/v1/auth/login", "post"),
    ("/api/v1/auth/logout", "post"),
    ("/api/v1/auth/sessions", "get"),
    ("/api/v1/auth/sessions/{id}", "delete"),
    ("/api/v1/automations", "get"),
    ("/api/v1/automations", "post"),
    ("/api/v1/automations/{id}", "get"),
    ("/api/v1/automations/{id}", "put"),
    ("/api/v1/automations/{id}", "delete"),
    ("/api/v1/automations/{id}/versions", "get"),
    ("/api/v1/automations/{id}/versions/{version}", "get"),
    ("/api/v1/automations/{id}/enable", "post"),
    ("/api/v1/automations/{id}/disable", "post"),
    ("/api/v1/automations/{id}/runs", "get"),
    ("/api/v1/automations/{id}/runs/{run_id}", "get"),
    ("/api/v1/automations/{id}/test", "post"),
    ("/api/v1/scoring", "get"),
    ("/api/v1/scoring", "put"),
    ("/api/v1/contacts/{id}/score-history", "get"),
    ("/health", "get"),
    ("/ready", "get"),
    ("/metrics", "get"),
    ("/api/v1/media", "post"),
    ("/api/v1/media/{id}", "get"),
    ("/api/v1/media/{id}", "delete"),
    ("/api/v1/media/{id}/url", "get"),
    ("/media/{token}", "get"),
    ("/api/v1/sequences", "get"),
    ("/api/v1/sequences", "post"),
    ("/api/v1/sequences/{id}", "get"),
    ("/api/v1/sequences/{id}", "put"),
    ("/api/v1/sequences/{id}", "delete"),
    ("/api/v1/sequences/{id}/enrolments", "post"),
    ("/api/v1/sequences/{id}/enrolments", "get"),
    ("/api/v1/sequences/{id}/enrolments/{enrolment_id}", "get"),
    ("/api/v1/sequences/{id}/enrolments/{enrolment_id}", "delete"),
    ("/api/v1/n8n/workflows", "get"),
    ("/api/v1/n8n/workflows/{id}", "get"),
    ("/api/v1/n8n/workflows/{id}/activate", "post"),
    ("/api/v1/n8n/workflows/{id}/deactivate", "post"),
    ("/api/v1/n8n/workflows/{id}/export", "get"),
    ("/auth/{provider}/start", "get"),
    ("/auth/{provider}/callback", "get"),
    ("/api/v1/oauth", "get"),
    ("/api/v1/oauth/{provider}", "delete"),
    ("/api/v1/contacts/{id}/salesforce", "post"),
    ("/api/v1/contacts/{id}/salesforce", "get"),
    ("/api/v1/salesforce/pull", "post"),
    ("/api/v1/connections", "get"),
    ("/api/v1/connections/{provider}", "get"),
    ("/api/v1/connections/{provider}", "put"),
    ("/api/v1/connections/{provider}", "delete"),
    ("/api/v1/connections/{provider}/test", "post"),
];

/// The built-in providers' webhooks and routes (by feature).
#[cfg(feature = "whatsapp-cloud")]
const WEBHOOK_ROUTES: &[(&str, &str)] = &[
    ("/webhooks/whatsapp-cloud/{phone_number_id}", "get"),
    ("/webhooks/whatsapp-cloud/{phone_number_id}", "post"),
    ("/api/v1/channels/{id}/templates/sync", "post"),
    ("/api/v1/channels/{id}/templates", "post"),
    ("/api/v1/channels/{id}/templates/{name}", "delete"),
];
#[cfg(not(feature = "whatsapp-cloud"))]
const WEBHOOK_ROUTES: &[(&str, &str)] = &[];
#[cfg(feature = "whatsapp-web")]
const WEB_ROUTES: &[(&str, &str)] = &[("/api/v1/channels/{id}/qr", "get"), ("/api/v1/channels/{id}/pair", "post")];
#[cfg(not(feature = "whatsapp-web"))]
const WEB_ROUTES: &[(&str, &str)] = &[];

/// Outbound webhooks' routes (feature `webhooks`).
#[cfg(feature = "webhooks")]
const OUTBOUND_ROUTES: &[(&str, &str)] = &[
    ("/api/v1/webhooks/endpoints", "get"),
    ("/api/v1/webhooks/endpoints", "post"),
    ("/api/v1/webhooks/endpoints/{id}", "get"),
    ("/api/v1/webhooks/endpoints/{id}", "patch"),
    ("/api/v1/webhooks/endpoints/{id}", "delete"),
    ("/api/v1/webhooks/endpoints/{id}/rotate-secret", "post"),
    ("/api/v1/webhooks/endpoints/{id}/test", "post"),
    ("/api/v1/webhooks/endpoints/{id}/recover", "post"),
    ("/api/v1/webhooks/deliveries", "get"),
    ("/api/v1/webhooks/deliveries/{id}", "get"),
    ("/api/v1/webhooks/deliveries/{id}/attempts", "get"),
    ("/api/v1/webhooks/deliveries/{id}/replay", "post"),
    ("/api/v1/event-types", "get"),
];
#[cfg(not(feature = "webhooks"))]
const OUTBOUND_ROUTES: &[(&str, &str)] = &[];

/// Billing's routes (feature `stripe`).
#[cfg(feature = "stripe")]
const BILLING_ROUTES: &[(&str, &str)] = &[
    ("/webhooks/stripe", "post"),
    ("/webhooks/stripe/{account_id}", "post"),
    ("/api/v1/billing/checkout", "post"),
    ("/api/v1/billing/portal", "post"),
    ("/api/v1/billing/subscription", "get"),
    ("/api/v1/billing/cancel", "post"),
];
#[cfg(not(feature = "stripe"))]
const BILLING_ROUTES: &[(&str, &str)] = &[];
/// The assistant's routes (feature `ai`).
#[cfg(feature = "ai")]
const AI_ROUTES: &[(&str, &str)] = &[
    ("/api/v1/contacts/{id}/ai/draft", "post"),
    ("/api/v1/contacts/{id}/ai/summary", "post"),
    ("/api/v1/contacts/{id}/ai/drafts", "get"),
    ("/api/v1/contacts/{id}/ai/analyses", "get"),
    ("/api/v1/ai/sentiment", "post"),
    ("/api/v1/ai/signals", "post"),
    ("/api/v1/ai/usage", "get"),
    ("/api/v1/ai/auto-reply", "get"),
    ("/api/v1/ai/auto-reply", "put"),
];
#[cfg(not(feature = "ai"))]
const AI_ROUTES: &[(&str, &str)] = &[];
/// SendGrid's event webhook (feature `sendgrid`).
#[cfg(feature = "sendgrid")]
const SENDGRID_ROUTES: &[(&str, &str)] = &[("/webhooks/sendgrid/{account_id}", "post")];
#[cfg(not(feature = "sendgrid"))]
const SENDGRID_ROUTES: &[(&str, &str)] = &[];

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let h = Harness::memory().await;
    let doc: Value = h.api.get("/openapi.json").send().await.ok_json(200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string());
    for (path, method) in ROUTES
        .iter()
        .chain(WEBHOOK_ROUTES)
        .chain(OUTBOUND_ROUTES)
        .chain(WEB_ROUTES)
        .chain(BILLING_ROUTES)
        .chain(AI_ROUTES)
        .chain(SENDGRID_ROUTES)
    {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is documented");
    }
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|ops| ops.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        ROUTES.len()
            + WEBHOOK_ROUTES.len()
            + OUTBOUND_ROUTES.len()
            + WEB_ROUTES.len()
            + BILLING_ROUTES.len()
            + AI_ROUTES.len()
            + SENDGRID_ROUTES.len(),
        "no undocumented extras and none missing"
    );
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    // Every $ref resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref {name}");
    }
    assert_eq!(crm_http::openapi().paths.paths.len(), doc["paths"].as_object().unwrap().len());
    // A parameter declared in the path is a segment of that path (a query
    // struct without `parameter_in = Query` would claim to be one).
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap();
                assert!(
                    path.contains(&format!("{{{name}}}")),
                    "{method} {path}: path parameter {name} is not in the path"
                );
            }
        }
    }
}

#[tokio::test]
async fn docs_page_is_served_locally() {
    let h = Harness::memory().await;
    let r = h.api.get("/docs/").send().await;
    r.expect(200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = r.text();
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    assert!(!html.contains("cdn.") && !html.contains("unpkg.com"), "no CDN assets");
    let js = h.api.get("/docs/swagger-initializer.js").send().await;
    js.expect(200);
    assert!(js.text().contains("/openapi.json"), "{}", js.text());
    h.api.get("/docs/swagger-ui.css").send().await.expect(200);
    let r = h.api.get("/docs").send().await;
    assert!(r.status.is_success() || r.status.is_redirection(), "{}", r.status);
}

#[tokio::test]
async fn request_ids_are_set_and_propagated() {
    let h = Harness::memory().await;
    let r = h.api.get("/health").send().await;
    let generated = r.header("x-request-id").expect("a request id");
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let r = h.api.get("/health").header("x-request-id", "abc-123").send().await;
    assert_eq!(r.header("x-request-id").as_deref(), Some("abc-123"));
    let r = h.api.get("/api/v1/contacts").send().await;
    assert!(r.header("x-request-id").is_some(), "errors carry the id too");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let closed = Harness::memory().await;
    let r = closed
        .api
        .call(axum::http::Method::OPTIONS, "/api/v1/contacts")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await;
    assert!(r.header("access-control-allow-origin").is_none(), "no origins by default");

    let open =
        Harness::memory_with(settings(|s| s.cors_origins = vec!["https://app.example.com".into()]), Vec::new()).await;
    let r = open
        .api
        .call(axum::http::Method::OPTIONS, "/api/v1/contacts")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await;
    assert!(r.status.is_success(), "preflight: {} {}", r.status, r.text());
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("https://app.example.com"));
    let r = open.api.get("/health").header("origin", "https://evil.example").send().await;
    assert!(r.header("access-control-allow-origin").is_none());
    let r = open.api.get("/health").header("origin", "https://app.example.com").send().await;
    let exposed = r.header("access-control-expose-headers").unwrap_or_default().to_lowercase();
    assert!(exposed.contains("x-ratelimit-remaining") && exposed.contains("retry-after"), "{exposed}");
}

#[tokio::test]
async fn responses_are_compressed_on_request() {
    let h = Harness::memory().await;
    let r = h.api.get("/openapi.json").header("accept-encoding", "gzip").send().await;
    r.expect(200);
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
}

#[tokio::test]
async fn request_timeout_is_a_problem() {
    #[derive(Debug)]
    struct Slow;
    #[async_trait]
    impl HealthCheck for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        async fn check(&self) -> Health {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Health::healthy(Duration::ZERO)
        }
    }
    // A 1-second request timeout cuts a readiness probe that never answers.
    let h = Harness::memory_with(settings(|s| s.request_timeout = Duration::from_secs(1)), vec![Arc::new(Slow)]).await;
    h.api.get("/ready").send().await.problem(503, "unavailable");
}

/// Every create operation links to the operations taking the new id, and every
/// link names an operation that exists.
#[test]
fn openapi_links_point_at_real_operations() {
    let doc = serde_json::to_value(crm_http::openapi()).unwrap();
    let mut operation_ids = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                operation_ids.insert(id.to_owned());
            }
        }
    }
    let mut linked = 0;
    for (path, count) in
        [("/api/v1/contacts", 7), ("/api/v1/templates", 4), ("/api/v1/messages", 1), ("/api/v1/channels", 3)]
    {
        let responses = &doc["paths"][path]["post"]["responses"];
        let created = if responses.get("201").is_some() { &responses["201"] } else { &responses["202"] };
        let links = created["links"].as_object().unwrap();
        assert_eq!(links.len(), count, "{path}");
        for link in links.values() {
            let target = link["operationId"].as_str().unwrap();
            assert!(operation_ids.contains(target), "{path} links to unknown operation {target}");
            assert_eq!(link["parameters"]["id"], "$response.body#/id");
            linked += 1;
        }
    }
    assert_eq!(linked, 15);
}

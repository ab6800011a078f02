//! Random request bodies, query strings and path ids against every
//! operation of the OpenAPI document, on PostgreSQL (the store that refuses
//! NUL characters, checks types strictly and answers 503 on its own
//! errors): no request may get a 5xx, and the server must not panic.
//!
//! The generator is seeded (`CRM_FUZZ_SEED`, default fixed) so a failure
//! names what to replay; `CRM_FUZZ_CASES` sets the cases per operation.

use serde_json::{Map, Value, json};

use crate::helpers::{Api, Harness, create_contact, create_template, id};

/// xorshift64*: small, seeded, good enough to pick inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Field names the API knows (and a few it does not), so random bodies
/// often get past the first check and reach deeper validation.
const FIELDS: &[&str] = &[
    "name",
    "phone",
    "email",
    "tags",
    "metadata",
    "lead_score",
    "lead_stage",
    "opt_in",
    "whatsapp_id",
    "contact_id",
    "text",
    "template",
    "content",
    "type",
    "body",
    "variables",
    "mode",
    "language",
    "category",
    "role",
    "password",
    "expires_at",
    "kind",
    "credentials",
    "settings",
    "pacing",
    "channel_id",
    "is_default",
    "enabled",
    "provider_id",
    "latitude",
    "longitude",
    "rendered",
    "media",
    "buttons",
    "since",
    "x",
    "",
];

fn text(rng: &mut Rng) -> String {
    let fixed = [
        "",
        " ",
        "a",
        "ana@example.com",
        "+5511987654321",
        "(11) 98765-4321",
        "pt_BR",
        "welcome",
        "{{a}}{{b}}",
        "Olá, ção 😀",
        "\u{0}",
        "a\u{0}b",
        "' OR 1=1 --",
        "%",
        "_",
        "\\",
        "2026-01-01T00:00:00Z",
        "agent",
        "owner",
        "template",
        "text",
        "recording",
        "strict",
        "lenient",
        "opted_in",
        "new",
        "-1",
        "1e400",
        "null",
        "\u{202e}\u{feff}",
        "ａｎａ",
    ];
    match rng.below(5) {
        0 => "x".repeat(rng.below(6000)),
        1 => uuid::Uuid::now_v7().to_string(),
        _ => rng.pick(&fixed).to_string(),
    }
}

fn value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth >= 3 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(*rng.pick(&[0i64, 1, -1, 100, 101, 255, 256, i64::MAX, i64::MIN, 4_294_967_296])),
        3 => json!(*rng.pick(&[0.5f64, -90.5, 1e300, -1e-300])),
        4 => Value::String(text(rng)),
        5 => Value::Array((0..rng.below(5)).map(|_| value(rng, depth + 1)).collect()),
        _ => Value::Object(object(rng, depth + 1)),
    }
}

fn object(rng: &mut Rng, depth: u32) -> Map<String, Value> {
    (0..rng.below(6)).map(|_| (rng.pick(FIELDS).to_string(), value(rng, depth))).collect()
}

fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => b"{\"name\":".to_vec(),
        1 => serde_json::to_vec(&value(rng, 1)).unwrap_or_default(),
        _ => serde_json::to_vec(&Value::Object(object(rng, 0))).unwrap_or_default(),
    }
}

fn query(rng: &mut Rng) -> String {
    let keys = ["limit", "cursor", "after", "search", "tag", "stage", "contact_id", "since", "kind", "x"];
    let values = ["0", "1", "200", "201", "1001", "-5", "abc", "%00", "%FF", "%E2%80%AE", "+", "a%20b", ""];
    let mut pairs = Vec::new();
    for _ in 0..rng.below(4) {
        let v = if rng.below(4) == 0 {
            uuid::Uuid::now_v7().to_string()
        } else if rng.below(6) == 0 {
            "y".repeat(rng.below(3000))
        } else {
            rng.pick(&values).to_string()
        };
        pairs.push(format!("{}={v}", rng.pick(&keys)));
    }
    if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
}

/// Every documented (method, path template) of the API.
fn operations() -> Vec<(axum::http::Method, String)> {
    let doc = serde_json::to_value(crm_http::openapi()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if let Ok(m) = method.to_uppercase().parse::<axum::http::Method>() {
                ops.push((m, path.clone()));
            }
        }
    }
    ops
}

async fn fuzz(api: &Api, token: &str, ids: &[String], seed: u64, cases: usize) {
    let mut rng = Rng(seed | 1);
    for (method, template) in operations() {
        for _ in 0..cases {
            let mut path = template.clone();
            while let (Some(open), Some(close)) = (path.find('{'), path.find('}')) {
                let id = match rng.below(4) {
                    0 => "not-an-id".to_owned(),
                    1 => uuid::Uuid::now_v7().to_string(),
                    // Never a real key id: revoking the fuzzer's own key would end the run.
                    _ if template.contains("api-keys") => uuid::Uuid::now_v7().to_string(),
                    _ => rng.pick(ids).clone(),
                };
                path.replace_range(open..=close, &id);
            }
            path.push_str(&query(&mut rng));
            let mut call = api.call(method.clone(), &path).bearer(token).peer("10.9.0.1:1");
            let sent =
                if matches!(method, axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH) {
                    let b = body(&mut rng);
                    call = call.raw("application/json", b.clone());
                    String::from_utf8_lossy(&b).chars().take(300).collect::<String>()
                } else {
                    String::new()
                };
            let r = call.send().await;
            assert!(
                r.status.as_u16() < 500,
                "{method} {} answered {} (seed {seed}); body sent: {sent}; answer: {}",
                path.chars().take(300).collect::<String>(),
                r.status,
                r.text()
            );
        }
    }
}

/// A stand-in for n8n's REST API on 127.0.0.1: no workflows (an empty
/// page), every workflow id unknown (404, as n8n answers), healthy.
async fn n8n_stand_in() -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route("/api/v1/workflows", get(|| async { axum::Json(serde_json::json!({ "data": [], "nextCursor": null })) }))
        .fallback(|| async {
            (axum::http::StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "message": "Not Found" })))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_never_get_a_5xx_on_postgres() {
    // Billing on, against a local stand-in for Stripe (off, its routes answer 503).
    #[cfg(feature = "stripe")]
    let (stripe, _) = crate::billing::mock_stripe().await;
    // n8n on, against a stand-in (off, its routes answer 503).
    let n8n = n8n_stand_in().await;
    let Some(h) = Harness::postgres_with("random_requests_never_get_a_5xx_on_postgres", |c| {
        c.rate_limit.per_key_per_minute = 1_000_000;
        c.rate_limit.per_ip_per_minute = 1_000_000;
        #[cfg(feature = "stripe")]
        crate::billing::configure(c, &stripe);
        c.n8n.url = Some(n8n);
        c.n8n.api_key = Some("n8n-fuzz-key".to_owned().into());
        // OAuth on (off, its routes answer 503); nothing the fuzzer can
        // reach calls the provider.
        c.oauth.salesforce.client_id = Some("fuzz".into());
        c.oauth.salesforce.client_secret = Some("fuzz-secret".to_owned().into());
        c.oauth.salesforce.redirect_uri = Some("http://127.0.0.1:9/auth/salesforce/callback".into());
        c.oauth.salesforce.base_url = Some("http://127.0.0.1:9".into());
    })
    .await
    else {
        return;
    };
    let token = h.server.as_ref().unwrap().admin_key.clone();
    let contact = create_contact(&h.api, &token, "Ana", 1).await;
    let template = create_template(&h.api, &token, "welcome", "Oi {{name}}").await;
    let channels = h.api.get("/api/v1/channels").bearer(&token).send().await.ok_json(200);
    let mut ids = vec![id(&contact), id(&template)];
    ids.extend(channels["items"].as_array().into_iter().flatten().map(id));
    let seed = std::env::var("CRM_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0ffee);
    let cases = std::env::var("CRM_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    fuzz(&h.api, &token, &ids, seed, cases).await;
    h.api.get("/health").send().await.expect(200);
    h.stop().await;
}

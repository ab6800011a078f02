//! OAuth connections through the server: `/auth/salesforce/start` and
//! `/callback` against a local stand-in for Salesforce's authorization
//! server (it checks the token request's form and the PKCE verifier),
//! `/api/v1/oauth`, `/ready`, the sealed row in the database, the
//! Salesforce sync routes and the `sync_to_salesforce` automation action.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::*;

/// The stand-in's memory: the challenge of each authorization, tokens
/// issued, every token form and API call.
#[derive(Clone, Default)]
struct Provider {
    base: String,
    forms: Arc<Mutex<Vec<HashMap<String, String>>>>,
    challenges: Arc<Mutex<HashMap<String, String>>>,
    api_calls: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn token(State(p): State<Provider>, body: String) -> Response {
    let f: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    p.forms.lock().unwrap().push(f.clone());
    let refused =
        |e: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": e, "error_description": e }))).into_response();
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            // The test hands the stand-in the challenge it read from the authorization URL.
            let Some(challenge) = p.challenges.lock().unwrap().remove(&f["code"]) else {
                return refused("invalid_grant");
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            let s256 =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
            if s256 != challenge {
                return refused("invalid_grant");
            }
        }
        Some("refresh_token") => {}
        _ => return refused("unsupported_grant_type"),
    }
    axum::Json(json!({
        "access_token": "00D5e000000AbCd!AQ0AQ-live-access-token-value",
        "refresh_token": "5Aep861-live-refresh-token-value",
        "signature": "uMK0Zi9r3fT0Y8o4Nx8Tg3n3o1w0O2b6N4N3k0d8Vxo=",
        "scope": "refresh_token api",
        "instance_url": p.base,
        "id": "https://login.salesforce.com/id/00D5e000000AbCdEAM/0055e000003XyZaAAK",
        "token_type": "Bearer",
        "issued_at": "1701302400000"
    }))
    .into_response()
}

async fn api(State(p): State<Provider>, uri: Uri, body: String) -> Response {
    p.api_calls.lock().unwrap().push((uri.path().to_owned(), serde_json::from_str(&body).unwrap_or(Value::Null)));
    (StatusCode::CREATED, axum::Json(json!({ "id": "00Q5e00000AbCdEEAV", "success": true, "errors": [] })))
        .into_response()
}

async fn provider() -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p = Provider { base: format!("http://{}", listener.local_addr().unwrap()), ..Provider::default() };
    let app = Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", post(|| async { StatusCode::OK }))
        .route("/services/data/{*rest}", any(api))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    p
}

const REDIRECT: &str = "http://127.0.0.1:8080/auth/salesforce/callback";

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

#[tokio::test]
async fn connecting_salesforce_through_the_routes() {
    let p = provider().await;
    let dir = temp_dir("oauth");
    let db = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    let h = Harness::sqlite_with(|c| {
        c.database_url = Some(db.clone().into());
        c.oauth.salesforce.client_id = Some("3MVG9-it".into());
        c.oauth.salesforce.client_secret = Some("it-client-secret".to_owned().into());
        c.oauth.salesforce.redirect_uri = Some(REDIRECT.into());
        c.oauth.salesforce.base_url = Some(p.base.clone());
    })
    .await;
    let admin = h.server.as_ref().unwrap().admin_key.clone();
    let account = h.server.as_ref().unwrap().account_id;
    let agent = h.key(account, crm_core::Role::Agent).await;

    h.api.get("/auth/salesforce/start").send().await.problem(401, "unauthorized");
    h.api.get("/auth/salesforce/start").bearer(&agent).send().await.problem(403, "forbidden");
    h.api.get("/auth/dropbox/start").bearer(&admin).send().await.problem(404, "not-found");
    let start = h.api.get("/auth/salesforce/start").bearer(&admin).send().await.ok_json(200);
    let url = start["authorization_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/services/oauth2/authorize?", p.base)), "{url}");
    let q = query_of(url);
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["scope"], "api refresh_token");
    assert_eq!(q["code_challenge_method"], "S256");
    p.challenges.lock().unwrap().insert("code-1".into(), q["code_challenge"].clone());

    // Rejections: no state, a forged state, a denial (which burns the state).
    h.api.get("/auth/salesforce/callback?code=code-1").send().await.problem(400, "bad-request");
    h.api.get("/auth/salesforce/callback?code=code-1&state=forged").send().await.problem(400, "bad-request");
    assert!(p.forms.lock().unwrap().is_empty(), "nothing reaches the token endpoint without a valid state");

    let ok = format!("/auth/salesforce/callback?code=code-1&state={}", q["state"]);
    let grant = h.api.get(&ok).send().await.ok_json(200);
    assert_eq!(grant["status"], "active");
    assert_eq!(grant["scopes"], json!(["refresh_token", "api"]));
    assert_eq!(grant["instance_url"], p.base.as_str());
    let form = p.forms.lock().unwrap()[0].clone();
    assert_eq!((form["grant_type"].as_str(), form["redirect_uri"].as_str()), ("authorization_code", REDIRECT));
    assert_eq!(form["client_id"], "3MVG9-it");
    h.api.get(&ok).send().await.problem(400, "bad-request"); // replayed state

    let denied = h.api.get("/auth/salesforce/start").bearer(&admin).send().await.ok_json(200);
    let dq = query_of(denied["authorization_url"].as_str().unwrap());
    let deny = format!("/auth/salesforce/callback?error=access_denied&state={}", dq["state"]);
    let e = h.api.get(&deny).send().await.problem(400, "bad-request");
    assert!(e["detail"].as_str().unwrap().contains("access_denied"), "{e}");
    h.api.get(&format!("{deny}&code=code-1")).send().await.problem(400, "bad-request");

    let listed = h.api.get("/api/v1/oauth").bearer(&agent).send().await;
    let text = listed.text();
    assert!(!text.contains("live-access-token") && !text.contains("live-refresh-token"), "{text}");
    let v = listed.ok_json(200);
    assert_eq!(v["configured"], json!(["salesforce"]));
    assert_eq!(v["connections"][0]["provider"], "salesforce");
    let ready = h.api.get("/ready").send().await.ok_json(200);
    assert_eq!(ready["oauth"], json!([{ "provider": "salesforce", "status": "active", "count": 1 }]));

    // The row holds the tokens sealed: unreadable without the key, and not
    // openable as another account's or provider's.
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let (tokens,): (String,) = sqlx::query_as("SELECT tokens FROM oauth_grants").fetch_one(&pool).await.unwrap();
    assert!(tokens.starts_with("v1.it."), "{tokens}");
    assert!(!tokens.contains("live-access") && !tokens.contains("live-refresh"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tokens.rsplit('.').next().unwrap()).unwrap();
    assert!(!raw.windows(11).any(|w| w == b"live-access"), "the ciphertext holds no plaintext");
    let sealed = crm_core::secrets::SealedSecret::decode(&tokens).unwrap();
    let other = crm_core::secrets::Keyring::new(crm_core::secrets::SecretKey::generate("it").unwrap());
    let ctx = crm_core::ports::oauth::GrantTokens::context(account, crm_core::OAuthProvider::Salesforce);
    assert!(other.open(&sealed, &ctx).is_err(), "another key cannot open it");
    let (states,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM oauth_pending").fetch_one(&pool).await.unwrap();
    assert_eq!(states, 0, "used and denied states are gone");

    // Sync: a push job creates the Lead and keeps the mapping.
    let contact = h
        .api
        .post("/api/v1/contacts")
        .bearer(&admin)
        .json(json!({ "name": "Ana Souza", "phone": "+5511987654321", "email": "ana@example.com" }))
        .send()
        .await
        .ok_json(201);
    let cid = contact["id"].as_str().unwrap();
    h.api.get(&format!("/api/v1/contacts/{cid}/salesforce")).bearer(&admin).send().await.problem(404, "not-found");
    let job = h.api.post(&format!("/api/v1/contacts/{cid}/salesforce")).bearer(&admin).send().await.ok_json(202);
    assert!(job["job_id"].is_string());
    let mut link = Value::Null;
    for _ in 0..100 {
        let r = h.api.get(&format!("/api/v1/contacts/{cid}/salesforce")).bearer(&admin).send().await;
        if r.status.as_u16() == 200 {
            link = r.json();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(link["external_id"], "00Q5e00000AbCdEEAV", "the push job ran");
    assert_eq!(link["object"], "Lead");
    let (path, body) = p.api_calls.lock().unwrap()[0].clone();
    assert_eq!(path, "/services/data/v62.0/sobjects/Lead/");
    assert_eq!(body["LastName"], "Souza");
    let pull = h.api.post("/api/v1/salesforce/pull").bearer(&admin).json(json!({ "since": "2026-11-01T00:00:00Z" }));
    pull.send().await.expect(202);
    h.api.post("/api/v1/salesforce/pull").bearer(&admin).json(json!({ "since": "soon" })).send().await.expect(422);

    // Disconnect revokes and forgets.
    h.api.delete("/api/v1/oauth/salesforce").bearer(&agent).send().await.problem(403, "forbidden");
    h.api.delete("/api/v1/oauth/salesforce").bearer(&admin).send().await.expect(204);
    h.api.delete("/api/v1/oauth/salesforce").bearer(&admin).send().await.problem(404, "not-found");
    let v = h.api.get("/api/v1/oauth").bearer(&admin).send().await.ok_json(200);
    assert_eq!(v["connections"], json!([]));
    h.stop().await;
}

#[tokio::test]
async fn oauth_routes_answer_503_when_no_provider_is_configured() {
    let h = Harness::sqlite().await;
    let admin = h.server.as_ref().unwrap().admin_key.clone();
    h.api.get("/auth/google/start").bearer(&admin).send().await.problem(503, "unavailable");
    h.api.get("/api/v1/oauth").bearer(&admin).send().await.problem(503, "unavailable");
    let ready = h.api.get("/ready").send().await.ok_json(200);
    assert_eq!(ready["oauth"], Value::Null);
    h.stop().await;
}

//! The OAuth adapter and the Salesforce adapter against a local mock of the
//! providers (an axum app on 127.0.0.1). The mock plays Google's and
//! Salesforce's authorization servers — it checks the authorization
//! request (client id, exact redirect URI, S256 challenge), the token
//! endpoint's form bodies (grant type, code, redirect URI, PKCE verifier,
//! client credentials) and answers with their documented payloads and
//! errors (`invalid_grant`, `invalid_client`, `invalid_token`) — and
//! Salesforce's REST API (sObject JSON, SOQL queries, `INVALID_SESSION_ID`,
//! `REQUEST_LIMIT_EXCEEDED`, `Sforce-Limit-Info`, 503 with Retry-After, a
//! timeout).
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use crm_connectors::oauth::{OAuthHttpClient, ProviderConfig};
use crm_connectors::salesforce::SalesforceCrm;
use crm_core::oauth::{OAuthConnections, Pkce};
use crm_core::ports::external_crm::{EXTERNAL_CRM_PUSH_JOB, ExternalCrm};
use crm_core::ports::oauth::{AccessTokens, GrantStatus, OAuthClient, OAuthProvider, OAuthStore};
use crm_core::secrets::{Keyring, SecretKey};
use crm_core::workers::{ExternalCrmPush, JobWorker, Outcome};
use crm_core::{AccountId, Clock, Crm, Error, MemoryStore, NewContact, SystemClock};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENT_ID: &str = "3MVG9-test-client";
const CLIENT_SECRET: &str = "test-client-secret-value";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// One code the mock issued.
#[derive(Debug, Clone)]
struct Issued {
    challenge: String,
    redirect_uri: String,
    used: bool,
}

/// What the Salesforce API does next, instead of answering normally.
#[derive(Debug, Clone)]
enum Next {
    /// Answer with this status, `Retry-After` and fixture body.
    Status(u16, Option<u64>, &'static str),
    /// Wait this long first (the client times out).
    Sleep(Duration),
}

#[derive(Default)]
struct MockState {
    base: String,
    redirect_uri: String,
    codes: HashMap<String, Issued>,
    access: HashMap<String, bool>,
    refresh: HashMap<String, bool>,
    /// Issue a new refresh token on each refresh (and retire the old one).
    rotate: bool,
    expires_in: Option<u64>,
    counter: u64,
    authorize_queries: Vec<HashMap<String, String>>,
    token_forms: Vec<HashMap<String, String>>,
    revoke_forms: Vec<HashMap<String, String>>,
    /// (method, path and query, bearer, JSON body) of each API call.
    api_calls: Vec<(String, String, String, Value)>,
    script: VecDeque<Next>,
    limit_info: Option<String>,
    /// Refuse every session (an org that revoked the app's API access).
    sessions_dead: bool,
}

#[derive(Clone)]
struct Mock(Arc<Mutex<MockState>>);

impl Mock {
    fn state(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.0.lock().unwrap()
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut s = self.state();
        s.counter += 1;
        format!("{prefix}-{}", s.counter)
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response()
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

async fn authorize(State(m): State<Mock>, Query(q): Query<HashMap<String, String>>) -> Response {
    m.state().authorize_queries.push(q.clone());
    let redirect = m.state().redirect_uri.clone();
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return (StatusCode::BAD_REQUEST, "invalid_client").into_response();
    }
    // Exact matching, as RFC 6749 §3.1.2.3 and both providers require.
    if q.get("redirect_uri") != Some(&redirect) {
        return (StatusCode::BAD_REQUEST, "redirect_uri_mismatch").into_response();
    }
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.get("code_challenge").is_some_and(|c| c.len() == 43)
        && q.get("state").is_some_and(|s| !s.is_empty());
    if !ok {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let code = m.next_id("code");
    let issued = Issued { challenge: q["code_challenge"].clone(), redirect_uri: redirect.clone(), used: false };
    m.state().codes.insert(code.clone(), issued);
    let mut to = url::Url::parse(&redirect).unwrap();
    to.query_pairs_mut().append_pair("code", &code).append_pair("state", &q["state"]);
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

fn tokens(m: &Mock, salesforce: bool, refresh: Option<String>) -> Response {
    let access = m.next_id("access");
    let mut s = m.state();
    s.access.insert(access.clone(), true);
    let mut body = if salesforce { fixture("salesforce/token") } else { fixture("google/token") };
    body["access_token"] = json!(access);
    match refresh {
        Some(rt) => {
            s.refresh.insert(rt.clone(), true);
            body["refresh_token"] = json!(rt);
        }
        None => {
            body.as_object_mut().unwrap().remove("refresh_token");
        }
    }
    if salesforce {
        body["instance_url"] = json!(s.base.clone());
    }
    match s.expires_in {
        Some(e) => body["expires_in"] = json!(e),
        None => {
            body.as_object_mut().unwrap().remove("expires_in");
        }
    }
    axum::Json(body).into_response()
}

async fn token(State(m): State<Mock>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let salesforce = uri.path().starts_with("/services/");
    assert_eq!(
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded"),
        "the token request is a form post"
    );
    let f = form(&body);
    m.state().token_forms.push(f.clone());
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = f.get("code").cloned().unwrap_or_default();
            let Some(issued) = m.state().codes.get(&code).cloned() else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "invalid authorization code");
            };
            if issued.used {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "authorization code already used");
            }
            m.state().codes.get_mut(&code).unwrap().used = true;
            if f.get("redirect_uri") != Some(&issued.redirect_uri) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri mismatch");
            }
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            if verifier.is_empty() {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "code_verifier required");
            }
            let challenge =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
            if challenge != issued.challenge {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "invalid code verifier");
            }
            let rt = m.next_id("refresh");
            tokens(&m, salesforce, Some(rt))
        }
        Some("refresh_token") => {
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            if m.state().refresh.get(&rt) != Some(&true) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "token has been expired or revoked");
            }
            let rotated = if m.state().rotate {
                m.state().refresh.insert(rt, false);
                Some(m.next_id("refresh"))
            } else {
                None
            };
            tokens(&m, salesforce, rotated)
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant type not supported"),
    }
}

async fn revoke(State(m): State<Mock>, body: String) -> Response {
    let f = form(&body);
    m.state().revoke_forms.push(f.clone());
    let t = f.get("token").cloned().unwrap_or_default();
    let mut s = m.state();
    let known = s.refresh.contains_key(&t) || s.access.contains_key(&t);
    if !known {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Token is not valid");
    }
    // Revoking a refresh token revokes the grant: every token of it.
    let s = &mut *s;
    for v in s.refresh.values_mut().chain(s.access.values_mut()) {
        *v = false;
    }
    StatusCode::OK.into_response()
}

async fn api(State(m): State<Mock>, method: Method, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let path = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    m.state().api_calls.push((method.to_string(), path.clone(), bearer.clone(), json));
    let limit = m.state().limit_info.clone();
    let with_limit = |mut r: Response| {
        if let Some(l) = &limit {
            r.headers_mut().insert("sforce-limit-info", l.parse().unwrap());
        }
        r
    };
    if m.state().sessions_dead || m.state().access.get(&bearer) != Some(&true) {
        return (StatusCode::UNAUTHORIZED, axum::Json(fixture("salesforce/invalid_session"))).into_response();
    }
    let next = m.state().script.pop_front();
    match next {
        Some(Next::Status(code, retry, name)) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), axum::Json(fixture(name))).into_response();
            if let Some(s) = retry {
                r.headers_mut().insert(header::RETRY_AFTER, s.into());
            }
            return with_limit(r);
        }
        Some(Next::Sleep(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let r = match (method, path.as_str()) {
        (Method::POST, p) if p.ends_with("/sobjects/Lead/") || p.ends_with("/sobjects/Contact/") => {
            (StatusCode::CREATED, axum::Json(fixture("salesforce/created"))).into_response()
        }
        (Method::PATCH, p) if p.contains("/sobjects/") => {
            if p.ends_with("/gone") {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])),
                )
                    .into_response()
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        (Method::GET, p) if p.contains("/query?") => {
            let mut q = fixture("salesforce/query");
            if !p.contains("FROM+Contact") && !p.contains("FROM%20Contact") {
                q["records"] = json!([]);
                q["totalSize"] = json!(0);
            }
            axum::Json(q).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    };
    with_limit(r)
}

async fn start_mock() -> Mock {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mock = Mock(Arc::new(Mutex::new(MockState {
        base: base.clone(),
        redirect_uri: "http://127.0.0.1:8080/auth/callback".into(),
        rotate: true,
        expires_in: Some(3599),
        ..MockState::default()
    })));
    let app = Router::new()
        .route("/o/oauth2/v2/auth", get(authorize))
        .route("/services/oauth2/authorize", get(authorize))
        .route("/token", post(token))
        .route("/services/oauth2/token", post(token))
        .route("/revoke", post(revoke))
        .route("/services/oauth2/revoke", post(revoke))
        .route("/services/data/{*rest}", any(api))
        .with_state(mock.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    mock
}

struct Fixture {
    mock: Mock,
    store: Arc<MemoryStore>,
    client: Arc<OAuthHttpClient>,
    connections: OAuthConnections,
    account: AccountId,
}

fn client_for(mock: &Mock, redirect: &str) -> OAuthHttpClient {
    let base = mock.state().base.clone();
    OAuthHttpClient::builder()
        .provider(
            OAuthProvider::Google,
            ProviderConfig::google(CLIENT_ID, CLIENT_SECRET, redirect).base_url(OAuthProvider::Google, &base),
        )
        .provider(
            OAuthProvider::Salesforce,
            ProviderConfig::salesforce(CLIENT_ID, CLIENT_SECRET, redirect).base_url(OAuthProvider::Salesforce, &base),
        )
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

async fn setup() -> Fixture {
    let mock = start_mock().await;
    let redirect = mock.state().redirect_uri.clone();
    let client = Arc::new(client_for(&mock, &redirect));
    let store = Arc::new(MemoryStore::new());
    let keyring = Keyring::new(SecretKey::generate("test").unwrap());
    let connections = OAuthConnections::new(store.clone(), client.clone(), keyring, Arc::new(SystemClock));
    Fixture { mock, store, client, connections, account: AccountId::new() }
}

/// Follows the authorization URL as the user's browser would (the mock
/// consents at once) and returns the redirect's `(code, state)`.
async fn consent(url: &str) -> Result<(String, String), String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = http.get(url).send().await.unwrap();
    if res.status() != reqwest::StatusCode::FOUND {
        return Err(res.text().await.unwrap());
    }
    let to = url::Url::parse(res.headers()[reqwest::header::LOCATION].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = to.query_pairs().into_owned().collect();
    Ok((q["code"].clone(), q["state"].clone()))
}

fn refused_on(e: &Error, field: &str) -> bool {
    matches!(e, Error::Validation { field: f, .. } if f == field)
}

#[tokio::test]
async fn authorization_code_flow_with_pkce() {
    let f = setup().await;
    let url = f.connections.start(f.account, "key:k1", OAuthProvider::Google).await.unwrap();
    let (code, state) = consent(&url).await.unwrap();
    let q = f.mock.state().authorize_queries[0].clone();
    assert_eq!(q["scope"], "https://www.googleapis.com/auth/analytics.readonly");
    assert_eq!((q["access_type"].as_str(), q["prompt"].as_str()), ("offline", "consent"));

    let grant = f.connections.complete(OAuthProvider::Google, Some(&state), Some(&code), Some("key:k1")).await.unwrap();
    assert_eq!(grant.status, GrantStatus::Active);
    assert_eq!(grant.scopes, vec!["https://www.googleapis.com/auth/analytics.readonly".to_owned()]);
    assert!(grant.expires_at.is_some());

    let form = f.mock.state().token_forms[0].clone();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], code);
    assert_eq!(form["redirect_uri"], "http://127.0.0.1:8080/auth/callback");
    assert_eq!(Pkce::challenge_of(&form["code_verifier"]), q["code_challenge"], "the verifier matches the challenge");
    assert_eq!(form["client_id"], CLIENT_ID);

    // The grant's view carries no token; the token opens only through the service.
    let shown = serde_json::to_string(&grant).unwrap();
    assert!(!shown.contains("access-") && !shown.contains("refresh-"), "{shown}");
    let token = f.connections.access_token(f.account, OAuthProvider::Google).await.unwrap();
    assert!(token.token.starts_with("access-"));
    assert!(!format!("{token:?}").contains(&token.token));
    let stored = f.store.get_oauth_grant(f.account, OAuthProvider::Google).await.unwrap().unwrap();
    assert!(!format!("{stored:?}").contains(&token.token));
}

#[tokio::test]
async fn missing_mismatched_and_replayed_states_are_refused() {
    let f = setup().await;
    let url = f.connections.start(f.account, "key:k1", OAuthProvider::Google).await.unwrap();
    let (code, state) = consent(&url).await.unwrap();
    let c = &f.connections;
    let e = c.complete(OAuthProvider::Google, None, Some(&code), None).await.unwrap_err();
    assert!(refused_on(&e, "state"), "missing state: {e}");
    let e = c.complete(OAuthProvider::Google, Some("forged-state"), Some(&code), None).await.unwrap_err();
    assert!(refused_on(&e, "state"), "mismatched state: {e}");
    assert!(f.mock.state().token_forms.is_empty(), "no code is exchanged without a valid state");

    c.complete(OAuthProvider::Google, Some(&state), Some(&code), None).await.unwrap();
    let e = c.complete(OAuthProvider::Google, Some(&state), Some(&code), None).await.unwrap_err();
    assert!(refused_on(&e, "state"), "replayed state: {e}");

    // A state is bound to its provider and to the caller that started it.
    let url = c.start(f.account, "key:k1", OAuthProvider::Google).await.unwrap();
    let (code2, state2) = consent(&url).await.unwrap();
    let e = c.complete(OAuthProvider::Salesforce, Some(&state2), Some(&code2), None).await.unwrap_err();
    assert!(refused_on(&e, "state"), "another provider: {e}");
    let url = c.start(f.account, "key:k1", OAuthProvider::Google).await.unwrap();
    let (code3, state3) = consent(&url).await.unwrap();
    let e = c.complete(OAuthProvider::Google, Some(&state3), Some(&code3), Some("session:other")).await.unwrap_err();
    assert!(refused_on(&e, "state"), "another caller: {e}");
}

#[tokio::test]
async fn replayed_codes_and_expired_states_are_refused() {
    let f = setup().await;
    let c = &f.connections;
    let url = c.start(f.account, "key:k1", OAuthProvider::Salesforce).await.unwrap();
    let (code, state) = consent(&url).await.unwrap();
    c.complete(OAuthProvider::Salesforce, Some(&state), Some(&code), None).await.unwrap();
    // The code again, under a fresh state: the provider refuses it.
    let url = c.start(f.account, "key:k1", OAuthProvider::Salesforce).await.unwrap();
    let (_, fresh) = consent(&url).await.unwrap();
    let e = c.complete(OAuthProvider::Salesforce, Some(&fresh), Some(&code), None).await.unwrap_err();
    assert!(refused_on(&e, "code"), "replayed code: {e}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");

    // A state older than ten minutes is refused (the store drops it).
    let url = c.start(f.account, "key:k1", OAuthProvider::Salesforce).await.unwrap();
    let (code, state) = consent(&url).await.unwrap();
    let late = OAuthConnections::new(
        f.store.clone(),
        f.client.clone(),
        Keyring::new(SecretKey::generate("test").unwrap()),
        Arc::new(crm_core::ManualClock::new(SystemClock.now() + chrono::Duration::minutes(11))),
    );
    let e = late.complete(OAuthProvider::Salesforce, Some(&state), Some(&code), None).await.unwrap_err();
    assert!(refused_on(&e, "state"), "expired state: {e}");
}

#[tokio::test]
async fn missing_or_wrong_verifier_and_wrong_redirect_uri_are_refused() {
    let f = setup().await;
    let pkce = Pkce::generate().unwrap();
    let url = f.client.authorization_url(OAuthProvider::Google, "s1", pkce.challenge()).unwrap();
    let (code, _) = consent(&url).await.unwrap();
    let redirect = "http://127.0.0.1:8080/auth/callback";
    let e = f.client.exchange_code(OAuthProvider::Google, &code, "", redirect).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { code: Some(c), transient: false, .. } if c == "invalid_grant"), "{e}");

    let url = f.client.authorization_url(OAuthProvider::Google, "s2", pkce.challenge()).unwrap();
    let (code, _) = consent(&url).await.unwrap();
    let wrong = Pkce::generate().unwrap();
    let e = f.client.exchange_code(OAuthProvider::Google, &code, wrong.verifier(), redirect).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { code: Some(c), .. } if c == "invalid_grant"), "wrong verifier: {e}");

    let url = f.client.authorization_url(OAuthProvider::Google, "s3", pkce.challenge()).unwrap();
    let (code, _) = consent(&url).await.unwrap();
    let other = "http://127.0.0.1:8080/auth/other";
    let e = f.client.exchange_code(OAuthProvider::Google, &code, pkce.verifier(), other).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { code: Some(c), .. } if c == "invalid_grant"), "redirect mismatch: {e}");
    assert!(!e.to_string().contains(pkce.verifier()) && !e.to_string().contains(CLIENT_SECRET));

    // A client whose redirect URI is not the registered one gets no code at all.
    let stray = client_for(&f.mock, "http://127.0.0.1:8080/auth/elsewhere");
    let url = stray.authorization_url(OAuthProvider::Google, "s4", pkce.challenge()).unwrap();
    assert_eq!(consent(&url).await.unwrap_err(), "redirect_uri_mismatch");

    // A wrong client secret is invalid_client, permanent.
    let bad = OAuthHttpClient::builder()
        .provider(
            OAuthProvider::Google,
            ProviderConfig::google(CLIENT_ID, "nope", redirect).base_url(OAuthProvider::Google, &f.mock.state().base),
        )
        .build()
        .unwrap();
    let e = bad.refresh(OAuthProvider::Google, "refresh-x").await.unwrap_err();
    assert!(matches!(&e, Error::Provider { code: Some(c), .. } if c == "invalid_client"), "{e}");
}

async fn connected(f: &Fixture, provider: OAuthProvider) {
    let url = f.connections.start(f.account, "key:k1", provider).await.unwrap();
    let (code, state) = consent(&url).await.unwrap();
    f.connections.complete(provider, Some(&state), Some(&code), None).await.unwrap();
}

#[tokio::test]
async fn tokens_refresh_before_expiry_with_rotation_and_break_on_invalid_grant() {
    let f = setup().await;
    f.mock.state().expires_in = Some(120); // inside the five-minute margin
    connected(&f, OAuthProvider::Google).await;
    let first_refresh = f.mock.state().token_forms[0].clone();
    assert_eq!(first_refresh["grant_type"], "authorization_code");

    let t1 = f.connections.access_token(f.account, OAuthProvider::Google).await.unwrap();
    let forms = f.mock.state().token_forms.clone();
    assert_eq!(forms.len(), 2, "refreshed before use");
    assert_eq!(forms[1]["grant_type"], "refresh_token");
    assert_eq!(forms[1]["client_secret"], CLIENT_SECRET);
    let old_rt = forms[1]["refresh_token"].clone();

    // The rotated refresh token is kept: the next refresh sends it, and works.
    let t2 = f.connections.access_token(f.account, OAuthProvider::Google).await.unwrap();
    let forms = f.mock.state().token_forms.clone();
    assert_eq!(forms.len(), 3);
    assert_ne!(forms[2]["refresh_token"], old_rt, "the rotated refresh token is used");
    assert_ne!(t1, t2);
    let g = f.store.get_oauth_grant(f.account, OAuthProvider::Google).await.unwrap().unwrap();
    assert!(g.refreshed_at.is_some() && g.last_error.is_none());

    // A token that lives long enough is not refreshed.
    f.mock.state().expires_in = Some(3600);
    f.connections.access_token(f.account, OAuthProvider::Google).await.unwrap();
    f.connections.access_token(f.account, OAuthProvider::Google).await.unwrap();
    assert_eq!(f.mock.state().token_forms.len(), 4);

    // The provider revokes the grant: invalid_grant marks it broken.
    for v in f.mock.state().refresh.values_mut() {
        *v = false;
    }
    let stale = f.connections.access_token(f.account, OAuthProvider::Google).await.unwrap();
    let e = f.connections.refreshed_token(f.account, OAuthProvider::Google, &stale).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    let views = f.connections.list(f.account).await.unwrap();
    assert_eq!(views[0].status, GrantStatus::Broken);
    assert!(views[0].last_error.as_deref().unwrap().contains("invalid_grant"));
    let e = f.connections.access_token(f.account, OAuthProvider::Google).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "a broken grant gives no token: {e}");
    let counts = f.connections.counts().await.unwrap();
    assert_eq!((counts[0].status, counts[0].count), (GrantStatus::Broken, 1));
}

#[tokio::test]
async fn disconnect_revokes_at_the_provider() {
    let f = setup().await;
    connected(&f, OAuthProvider::Salesforce).await;
    let rt = f.mock.state().refresh.keys().next().cloned().unwrap();
    f.connections.disconnect(f.account, OAuthProvider::Salesforce).await.unwrap();
    assert_eq!(f.mock.state().revoke_forms, vec![HashMap::from([("token".to_owned(), rt.clone())])]);
    assert!(!f.mock.state().refresh[&rt], "revoked at the provider");
    assert!(f.store.get_oauth_grant(f.account, OAuthProvider::Salesforce).await.unwrap().is_none());
    let e = f.connections.disconnect(f.account, OAuthProvider::Salesforce).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }));
}

async fn salesforce(f: &Fixture) -> SalesforceCrm {
    connected(f, OAuthProvider::Salesforce).await;
    SalesforceCrm::builder()
        .tokens(Arc::new(f.connections.clone()))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn contact(account: AccountId) -> crm_core::Contact {
    let mut metadata = serde_json::Map::new();
    metadata.insert("company".into(), json!("Loja da Ana"));
    crm_core::Contact::new(
        account,
        NewContact {
            name: "Ana Maria Souza".into(),
            phone: "+55 11 98765-4321".into(),
            email: Some("ana@example.com".into()),
            metadata: Some(Value::Object(metadata)),
            ..Default::default()
        },
        SystemClock.now(),
    )
    .unwrap()
}

#[tokio::test]
async fn salesforce_push_creates_then_updates_and_refreshes_a_dead_session_once() {
    let f = setup().await;
    let sf = salesforce(&f).await;
    let c = contact(f.account);
    let pushed = sf.push_contact(f.account, &c, None).await.unwrap();
    assert_eq!(
        (pushed.object.as_str(), pushed.external_id.as_str(), pushed.created),
        ("Lead", "00Q5e00000AbCdEEAV", true)
    );
    let (method, path, _, body) = f.mock.state().api_calls[0].clone();
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/services/data/v62.0/sobjects/Lead/"));
    assert_eq!(
        body,
        json!({ "FirstName": "Ana Maria", "LastName": "Souza", "Email": "ana@example.com",
                "Phone": "+5511987654321", "Company": "Loja da Ana", "LeadSource": "WhatsApp" })
    );

    // The session dies (INVALID_SESSION_ID): one refresh, one retry.
    for v in f.mock.state().access.values_mut() {
        *v = false;
    }
    let link = crm_core::ports::oauth::ExternalLink {
        account_id: f.account,
        contact_id: c.id,
        system: "salesforce".into(),
        object: "Lead".into(),
        external_id: pushed.external_id.clone(),
        synced_at: SystemClock.now(),
    };
    let again = sf.push_contact(f.account, &c, Some(&link)).await.unwrap();
    assert!(!again.created);
    let calls = f.mock.state().api_calls.clone();
    assert_eq!(calls.len(), 3, "refused, then retried with the new token");
    assert_eq!(calls[2].0, "PATCH");
    assert_eq!(calls[2].1, "/services/data/v62.0/sobjects/Lead/00Q5e00000AbCdEEAV");
    assert_ne!(calls[1].2, calls[2].2, "the retry carries the refreshed token");
    assert_eq!(f.mock.state().token_forms.last().unwrap()["grant_type"], "refresh_token");

    // Refused again after the refresh: a configuration problem, not a loop.
    f.mock.state().sessions_dead = true;
    let before = f.mock.state().api_calls.len();
    let e = sf.push_contact(f.account, &c, Some(&link)).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert_eq!(f.mock.state().api_calls.len() - before, 2, "one retry, no loop");
}

#[tokio::test]
async fn salesforce_limits_outages_and_timeouts_are_transient() {
    let f = setup().await;
    let sf = salesforce(&f).await;
    let c = contact(f.account);

    f.mock.state().script.push_back(Next::Status(503, Some(7), "salesforce/unavailable"));
    let e = sf.push_contact(f.account, &c, None).await.unwrap_err();
    assert!(
        matches!(e, Error::Provider { transient: true, retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{e}"
    );

    f.mock.state().script.push_back(Next::Sleep(Duration::from_secs(2)));
    let e = sf.push_contact(f.account, &c, None).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { transient: true, .. } if e.to_string().contains("timed out")), "{e}");

    f.mock.state().script.push_back(Next::Status(403, None, "salesforce/limit_exceeded"));
    let e = sf.push_contact(f.account, &c, None).await.unwrap_err();
    assert!(
        matches!(&e, Error::Provider { transient: true, code: Some(code), retry_after: Some(_), .. } if code == "REQUEST_LIMIT_EXCEEDED"),
        "{e}"
    );
    // Backing off: the next call does not reach Salesforce.
    let calls = f.mock.state().api_calls.len();
    assert!(sf.push_contact(f.account, &c, None).await.is_err());
    assert_eq!(f.mock.state().api_calls.len(), calls, "no call while backing off");

    // Another account near its daily limit (Sforce-Limit-Info) backs off after the call.
    let g = Fixture { account: AccountId::new(), ..setup().await };
    let sf2 = salesforce(&g).await;
    g.mock.state().limit_info = Some("api-usage=14500/15000".into());
    sf2.push_contact(g.account, &c, None).await.unwrap();
    let calls = g.mock.state().api_calls.len();
    let e = sf2.push_contact(g.account, &c, None).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(g.mock.state().api_calls.len(), calls);
}

#[tokio::test]
async fn salesforce_pull_queries_changes_since_a_time() {
    let f = setup().await;
    let sf = salesforce(&f).await;
    let since = chrono::DateTime::parse_from_rfc3339("2026-11-29T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let changes = sf.changed_since(f.account, since, 50).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].external_id, "0035e00000XyZaBAAV");
    assert_eq!(changes[0].email.as_deref(), Some("ana.souza@example.com"));
    let calls = f.mock.state().api_calls.clone();
    let q: HashMap<String, String> =
        url::Url::parse(&format!("http://x{}", calls[1].1)).unwrap().query_pairs().into_owned().collect();
    assert_eq!(
        q["q"],
        "SELECT Id, FirstName, LastName, Email, Phone, LastModifiedDate FROM Contact \
         WHERE LastModifiedDate > 2026-11-29T00:00:00Z ORDER BY LastModifiedDate ASC LIMIT 50"
    );
    assert!(sf.changed_since(f.account, since, 0).await.is_err());
}

#[tokio::test]
async fn the_push_job_keeps_the_mapping_and_retries_an_outage() {
    let f = setup().await;
    let sf: Arc<dyn ExternalCrm> = Arc::new(salesforce(&f).await);
    let crm =
        Crm::builder().store(f.store.clone()).messenger(Arc::new(crm_core::RecordingMessenger::new())).build().unwrap();
    let account = crm.create_account("Loja").await.unwrap();
    // The grant belongs to the fixture's account: connect this one too.
    let c = crm
        .create_contact(
            account.id,
            NewContact { name: "Ana Souza".into(), phone: "+5511987654321".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let url = f.connections.start(account.id, "key:k1", OAuthProvider::Salesforce).await.unwrap();
    let (code, state) = consent(&url).await.unwrap();
    f.connections.complete(OAuthProvider::Salesforce, Some(&state), Some(&code), None).await.unwrap();

    let worker = ExternalCrmPush::new(crm.clone(), sf);
    assert_eq!(worker.kind(), EXTERNAL_CRM_PUSH_JOB);
    let job = crm_core::workers::push_job(account.id, c.id, SystemClock.now()).unwrap();
    f.mock.state().script.push_back(Next::Status(503, Some(30), "salesforce/unavailable"));
    assert_eq!(
        worker.run(&job).await,
        Outcome::Retry {
            error: "creating the record: Service temporarily unavailable".into(),
            after: Some(Duration::from_secs(30))
        }
    );
    assert!(f.store.get_external_link(account.id, c.id, "salesforce").await.unwrap().is_none());
    assert_eq!(worker.run(&job).await, Outcome::Done);
    let link = f.store.get_external_link(account.id, c.id, "salesforce").await.unwrap().unwrap();
    assert_eq!((link.object.as_str(), link.external_id.as_str()), ("Lead", "00Q5e00000AbCdEEAV"));
    assert_eq!(worker.run(&job).await, Outcome::Done);
    assert_eq!(f.mock.state().api_calls.last().unwrap().0, "PATCH", "the second push updates the linked record");
}

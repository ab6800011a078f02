//! The OAuth 2.0 adapter of the [`OAuthClient`] port, written directly over
//! reqwest (the `oauth2` crate speaks only reqwest 0.12; the flow is a few
//! form posts).
//!
//! - **Authorization** (RFC 6749 §4.1 with PKCE, RFC 7636): the user is sent
//!   to the provider's authorization endpoint with `response_type=code`,
//!   `client_id`, `redirect_uri`, `scope`, `state`, `code_challenge` and
//!   `code_challenge_method=S256` (Google also gets `access_type=offline`
//!   and `prompt=consent`, so it issues a refresh token).
//! - **Token requests**: `POST` an `application/x-www-form-urlencoded` body
//!   to the token endpoint — `grant_type=authorization_code` with `code`,
//!   `redirect_uri` (identical to the authorization request's) and
//!   `code_verifier`; or `grant_type=refresh_token` with `refresh_token` —
//!   with `client_id` and `client_secret` in the body, as Google and
//!   Salesforce document for web-server apps.
//! - **Revocation** (RFC 7009): `POST` `token=…` to the revocation endpoint.
//!
//! Endpoints default to the providers' (Google: `accounts.google.com`,
//! `oauth2.googleapis.com`; Salesforce: `login.salesforce.com`) and can be
//! moved with [`ProviderConfig::base_url`] (a sandbox's `test.salesforce.com`,
//! or a test server on 127.0.0.1).
//!
//! Errors: the OAuth error body `{"error", "error_description"}` of a 4xx
//! becomes a permanent [`Error::Provider`] whose `code` is `error`
//! (`invalid_grant`, `invalid_client`, …); 429 and 5xx (with `Retry-After`),
//! connection failures and timeouts are transient. Nothing the client sends
//! (secret, code, verifier, tokens) is ever put in an error.

use async_trait::async_trait;
use crm_core::ports::oauth::{OAuthClient, OAuthProvider, TokenResponse, check_redirect_uri};
use crm_core::{Error, Result};
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use url::Url;

/// Longest provider message kept in an error.
const MAX_MESSAGE: usize = 200;

/// One provider's client registration and endpoints. `Debug` hides the secret.
#[derive(Clone)]
pub struct ProviderConfig {
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    authorize_url: String,
    token_url: String,
    revoke_url: String,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl ProviderConfig {
    /// Google's endpoints with this client registration.
    pub fn google(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            authorize_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            revoke_url: "https://oauth2.googleapis.com/revoke".into(),
        }
    }

    /// Salesforce's endpoints (`login.salesforce.com`) with this connected app.
    pub fn salesforce(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        let mut c = Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            authorize_url: String::new(),
            token_url: String::new(),
            revoke_url: String::new(),
        };
        c.set_salesforce_base("https://login.salesforce.com");
        c
    }

    fn set_salesforce_base(&mut self, base: &str) {
        let base = base.trim_end_matches('/');
        self.authorize_url = format!("{base}/services/oauth2/authorize");
        self.token_url = format!("{base}/services/oauth2/token");
        self.revoke_url = format!("{base}/services/oauth2/revoke");
    }

    /// Moves every endpoint under `base` (e.g. `http://127.0.0.1:PORT`):
    /// Google's to `/o/oauth2/v2/auth`, `/token`, `/revoke`; Salesforce's to
    /// `/services/oauth2/{authorize,token,revoke}` (`provider` says which layout).
    pub fn base_url(mut self, provider: OAuthProvider, base: &str) -> Self {
        match provider {
            OAuthProvider::Google => {
                let base = base.trim_end_matches('/');
                self.authorize_url = format!("{base}/o/oauth2/v2/auth");
                self.token_url = format!("{base}/token");
                self.revoke_url = format!("{base}/revoke");
            }
            OAuthProvider::Salesforce => self.set_salesforce_base(base),
        }
        self
    }

    fn check(&self, provider: OAuthProvider) -> Result<()> {
        let name = provider.as_str();
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err(Error::Config { message: format!("{name}: the OAuth client id and secret are required") });
        }
        check_redirect_uri(&self.redirect_uri)
            .map_err(|_| Error::Config { message: format!("{name}: the OAuth redirect URI must be an https URL") })?;
        for u in [&self.authorize_url, &self.token_url, &self.revoke_url] {
            let ok = Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return Err(Error::Config { message: format!("{name}: OAuth endpoint {u:?} is not an http(s) URL") });
            }
        }
        Ok(())
    }
}

/// Builds an [`OAuthHttpClient`].
#[derive(Debug, Default)]
pub struct OAuthHttpClientBuilder {
    providers: BTreeMap<OAuthProvider, ProviderConfig>,
    timeout: Option<Duration>,
    client: Option<reqwest::Client>,
}

impl OAuthHttpClientBuilder {
    /// Configures one provider.
    pub fn provider(mut self, provider: OAuthProvider, config: ProviderConfig) -> Self {
        self.providers.insert(provider, config);
        self
    }

    /// Per-request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The HTTP client to use (default: a new one).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// [`Error::Config`] for a provider without id/secret, a redirect URI
    /// [`check_redirect_uri`] refuses, or an endpoint that is not http(s).
    pub fn build(self) -> Result<OAuthHttpClient> {
        for (p, c) in &self.providers {
            c.check(*p)?;
        }
        let client = crate::http_client(self.client)?;
        Ok(OAuthHttpClient {
            providers: self.providers,
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
            client,
        })
    }
}

/// OAuth 2.0 against Google and Salesforce. `Debug` never shows secrets.
#[derive(Debug, Clone)]
pub struct OAuthHttpClient {
    providers: BTreeMap<OAuthProvider, ProviderConfig>,
    timeout: Duration,
    client: reqwest::Client,
}

/// A successful token response (RFC 6749 §5.1, plus Salesforce's `instance_url`).
#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    scope: Option<String>,
    instance_url: Option<String>,
}

/// An error response (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    error_description: Option<String>,
}

fn provider_error(
    p: OAuthProvider,
    transient: bool,
    code: Option<String>,
    message: String,
    retry_after: Option<Duration>,
) -> Error {
    Error::Provider { provider: p.as_str().into(), transient, code, message, retry_after, source: None }
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_MESSAGE).collect()
}

/// `Retry-After` in seconds (the HTTP-date form is read as "a minute").
pub(crate) fn retry_after(res: &Response) -> Option<Duration> {
    let v = res.headers().get(RETRY_AFTER)?.to_str().ok()?;
    Some(v.trim().parse::<u64>().map(Duration::from_secs).unwrap_or(Duration::from_secs(60)))
}

/// A transport failure: timeouts and connection failures are transient.
pub(crate) fn transport(provider: &'static str, what: &str, e: &reqwest::Error) -> Error {
    let why = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed in transit"
    };
    Error::Provider {
        provider: provider.into(),
        transient: true,
        code: None,
        message: format!("{what} {why}"),
        retry_after: None,
        source: None,
    }
}

impl OAuthHttpClient {
    /// Starts a builder.
    pub fn builder() -> OAuthHttpClientBuilder {
        OAuthHttpClientBuilder::default()
    }

    fn config(&self, p: OAuthProvider) -> Result<&ProviderConfig> {
        self.providers.get(&p).ok_or(Error::not_found("oauth provider"))
    }

    async fn post_form(&self, p: OAuthProvider, url: &str, form: &[(&str, &str)], what: &str) -> Result<Response> {
        let body = {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                s.append_pair(k, v);
            }
            s.finish()
        };
        let res = self
            .client
            .post(url)
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport(p.as_str(), what, &e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(Self::refusal(p, res, what).await)
    }

    async fn refusal(p: OAuthProvider, res: Response, what: &str) -> Error {
        let status = res.status();
        let after = retry_after(&res);
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return provider_error(p, true, None, format!("{what}: HTTP {status}"), after);
        }
        let text = res.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => {
                let desc = b.error_description.as_deref().map(clip).unwrap_or_default();
                let message = format!("{what}: {} {desc}", clip(&b.error)).trim_end().to_owned();
                provider_error(p, false, Some(clip(&b.error)), message, None)
            }
            Err(_) => provider_error(p, false, None, format!("{what}: HTTP {status}"), None),
        }
    }

    async fn token(&self, p: OAuthProvider, form: &[(&str, &str)], what: &str) -> Result<TokenResponse> {
        let c = self.config(p)?;
        let mut full: Vec<(&str, &str)> = form.to_vec();
        full.push(("client_id", &c.client_id));
        full.push(("client_secret", &c.client_secret));
        let res = self.post_form(p, &c.token_url, &full, what).await?;
        let text = res.text().await.map_err(|e| transport(p.as_str(), what, &e))?;
        let body: TokenBody = serde_json::from_str(&text)
            .map_err(|_| provider_error(p, false, None, format!("{what}: the token response is malformed"), None))?;
        if body.access_token.is_empty() {
            return Err(provider_error(p, false, None, format!("{what}: the response has no access token"), None));
        }
        Ok(TokenResponse {
            access_token: body.access_token,
            refresh_token: body.refresh_token.filter(|t| !t.is_empty()),
            expires_in: body.expires_in,
            scope: body.scope,
            instance_url: body.instance_url,
        })
    }
}

#[async_trait]
impl OAuthClient for OAuthHttpClient {
    fn providers(&self) -> Vec<OAuthProvider> {
        self.providers.keys().copied().collect()
    }

    fn redirect_uri(&self, provider: OAuthProvider) -> Result<String> {
        Ok(self.config(provider)?.redirect_uri.clone())
    }

    fn authorization_url(&self, provider: OAuthProvider, state: &str, code_challenge: &str) -> Result<String> {
        let c = self.config(provider)?;
        let mut url = Url::parse(&c.authorize_url)
            .map_err(|_| Error::Config { message: "the authorization endpoint is not a URL".into() })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &c.client_id)
                .append_pair("redirect_uri", &c.redirect_uri)
                .append_pair("scope", &provider.scopes().join(" "))
                .append_pair("state", state)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256");
            if provider == OAuthProvider::Google {
                q.append_pair("access_type", "offline").append_pair("prompt", "consent");
            }
        }
        Ok(url.into())
    }

    async fn exchange_code(
        &self,
        provider: OAuthProvider,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        self.token(provider, &form, "exchanging the authorization code").await
    }

    async fn refresh(&self, provider: OAuthProvider, refresh_token: &str) -> Result<TokenResponse> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        self.token(provider, &form, "refreshing the access token").await
    }

    async fn revoke(&self, provider: OAuthProvider, token: &str) -> Result<()> {
        let c = self.config(provider)?;
        self.post_form(provider, &c.revoke_url, &[("token", token)], "revoking the token").await.map(|_| ())
    }
}

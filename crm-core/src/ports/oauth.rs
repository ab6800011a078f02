//! OAuth 2.0 connections: an account's grant from a provider (Google,
//! Salesforce) kept sealed in the store, the one-time authorizations in
//! flight, the provider's token endpoint, and the mapping from crm contacts
//! to the records of an external CRM.
//!
//! - [`OAuthStore`]: grants, pending authorizations and external links
//!   (memory, SQLite, PostgreSQL; conformance in `crm_core::testing::store::oauth`).
//! - [`OAuthClient`]: the authorization-code flow with PKCE against the
//!   providers' endpoints (adapter in crm-connectors, feature `oauth`).
//! - [`AccessTokens`]: a fresh access token for an account, refreshed
//!   when needed ([`crate::oauth::OAuthConnections`] implements it).
//!
//! Tokens never leave the store unsealed and never appear in `Debug`
//! output, errors or logs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::{self, Debug};

use crate::secrets::SealedSecret;
use crate::{AccountId, ContactId, Error, Result};

/// A provider crm connects to with OAuth 2.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OAuthProvider {
    /// Google (Analytics read access).
    Google,
    /// Salesforce (REST API access and a refresh token).
    Salesforce,
}

impl OAuthProvider {
    /// Every provider.
    pub const ALL: [OAuthProvider; 2] = [OAuthProvider::Google, OAuthProvider::Salesforce];

    /// `google` / `salesforce`.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthProvider::Google => "google",
            OAuthProvider::Salesforce => "salesforce",
        }
    }

    /// Parses [`OAuthProvider::as_str`]; [`Error::NotFound`] for any other name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "google" => Ok(OAuthProvider::Google),
            "salesforce" => Ok(OAuthProvider::Salesforce),
            _ => Err(Error::not_found("oauth provider")),
        }
    }

    /// The scopes crm asks for: Google Analytics read-only; Salesforce's
    /// `api` and `refresh_token`.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            OAuthProvider::Google => &["https://www.googleapis.com/auth/analytics.readonly"],
            OAuthProvider::Salesforce => &["api", "refresh_token"],
        }
    }
}

/// Whether a grant can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum GrantStatus {
    /// Tokens work (or can be refreshed).
    Active,
    /// The provider refused the refresh token (revoked, expired): the
    /// account must connect again.
    Broken,
}

impl GrantStatus {
    /// `active` / `broken`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Broken => "broken",
        }
    }

    /// Parses [`GrantStatus::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(GrantStatus::Active),
            "broken" => Ok(GrantStatus::Broken),
            _ => Err(Error::validation("status", "must be active or broken")),
        }
    }
}

/// The token secrets of a grant, sealed into [`OAuthGrant::tokens`].
/// `Debug` never shows them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantTokens {
    /// The bearer token for API calls.
    pub access_token: String,
    /// The token that mints new access tokens, when the provider gave one.
    pub refresh_token: Option<String>,
}

impl Debug for GrantTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GrantTokens([redacted])")
    }
}

impl GrantTokens {
    /// The associated data a grant's tokens are sealed with: they open only
    /// as the tokens of this account's grant from this provider.
    pub fn context(account: AccountId, provider: OAuthProvider) -> Vec<u8> {
        format!("oauth-grant:{account}:{}", provider.as_str()).into_bytes()
    }
}

/// An account's grant from a provider: one per (account, provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthGrant {
    /// The account.
    pub account_id: AccountId,
    /// The provider.
    pub provider: OAuthProvider,
    /// Usable or broken.
    pub status: GrantStatus,
    /// The scopes the provider granted.
    pub scopes: Vec<String>,
    /// [`GrantTokens`] sealed with [`GrantTokens::context`].
    pub tokens: SealedSecret,
    /// When the access token expires, when the provider said.
    pub expires_at: Option<DateTime<Utc>>,
    /// Salesforce's API host for this org (`instance_url`).
    pub instance_url: Option<String>,
    /// The last failure using or refreshing it (no secrets).
    pub last_error: Option<String>,
    /// When the account connected.
    pub connected_at: DateTime<Utc>,
    /// When the tokens were last refreshed.
    pub refreshed_at: Option<DateTime<Utc>>,
}

impl OAuthGrant {
    /// What the API shows of it: never the tokens.
    pub fn view(&self) -> GrantView {
        GrantView {
            provider: self.provider,
            status: self.status,
            scopes: self.scopes.clone(),
            expires_at: self.expires_at,
            instance_url: self.instance_url.clone(),
            last_error: self.last_error.clone(),
            connected_at: self.connected_at,
            refreshed_at: self.refreshed_at,
        }
    }
}

/// A grant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantView {
    /// The provider.
    pub provider: OAuthProvider,
    /// Usable or broken.
    pub status: GrantStatus,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Salesforce's API host for the org.
    pub instance_url: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the account connected.
    pub connected_at: DateTime<Utc>,
    /// When the tokens were last refreshed.
    pub refreshed_at: Option<DateTime<Utc>>,
}

/// How many grants of a provider are in a status (for `/ready`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantCount {
    /// The provider.
    pub provider: OAuthProvider,
    /// The status.
    pub status: GrantStatus,
    /// Grants.
    pub count: u64,
}

/// An authorization in flight: created by `/auth/{provider}/start`, taken
/// (once) by the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    /// SHA-256 (hex) of the `state` sent to the provider; the state itself is not stored.
    pub state_hash: String,
    /// The account that started it.
    pub account_id: AccountId,
    /// The provider.
    pub provider: OAuthProvider,
    /// Who started it (`key:<api key id>` or `session:<session id>`).
    pub principal: String,
    /// The PKCE code verifier, sealed with [`PendingAuthorization::context`].
    pub verifier: SealedSecret,
    /// The redirect URI sent with the authorization request (sent again,
    /// identical, with the token request).
    pub redirect_uri: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// After this the state is refused.
    pub expires_at: DateTime<Utc>,
}

impl PendingAuthorization {
    /// The associated data the verifier is sealed with.
    pub fn context(state_hash: &str) -> Vec<u8> {
        format!("oauth-pkce:{state_hash}").into_bytes()
    }
}

/// A crm contact's record in an external CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExternalLink {
    /// The account.
    pub account_id: AccountId,
    /// The crm contact.
    pub contact_id: ContactId,
    /// The external system (`salesforce`).
    pub system: String,
    /// The record's object type (`Lead`, `Contact`).
    pub object: String,
    /// The record's id there.
    pub external_id: String,
    /// When crm last wrote or read it.
    pub synced_at: DateTime<Utc>,
}

/// Checks an external link's fields: system 1–32 of `a-z0-9_-`, object
/// 1–64 of `A-Za-z0-9_`, external id 1–64 of `A-Za-z0-9_-`.
pub fn check_external_link(link: &ExternalLink) -> Result<()> {
    let word = |s: &str, max: usize, extra: &[u8], upper: bool| {
        (1..=max).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || (upper && b.is_ascii_uppercase()) || extra.contains(&b)
            })
    };
    if !word(&link.system, 32, b"_-", false) {
        return Err(Error::validation("system", "must be 1 to 32 of a-z, 0-9, _ -"));
    }
    if !word(&link.object, 64, b"_", true) {
        return Err(Error::validation("object", "must be 1 to 64 of A-Z, a-z, 0-9, _"));
    }
    if !word(&link.external_id, 64, b"_-", true) {
        return Err(Error::validation("external_id", "must be 1 to 64 of A-Z, a-z, 0-9, _ -"));
    }
    Ok(())
}

/// Checks a pending authorization: a 64-character hex state hash, a
/// principal of 1–100 characters, an http(s) redirect URI of at most 2048
/// characters, an expiry after its creation.
pub fn check_pending(p: &PendingAuthorization) -> Result<()> {
    if p.state_hash.len() != 64 || !p.state_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::validation("state_hash", "must be a SHA-256 in hex"));
    }
    if !(1..=100).contains(&p.principal.len()) {
        return Err(Error::validation("principal", "must be 1 to 100 characters"));
    }
    check_redirect_uri(&p.redirect_uri)?;
    if p.expires_at <= p.created_at {
        return Err(Error::validation("expires_at", "must be after created_at"));
    }
    Ok(())
}

/// Checks a redirect URI: absolute `https://`, or `http://` on a loopback
/// host (127.0.0.1, localhost, [::1]); at most 2048 characters; no
/// fragment, whitespace or control characters (RFC 6749 §3.1.2).
pub fn check_redirect_uri(uri: &str) -> Result<()> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| {
        uri.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with('/'))
    });
    let ok = (uri.starts_with("https://") && uri.len() > "https://".len() || loopback)
        && uri.len() <= 2048
        && !uri.contains('#')
        && !uri.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(Error::validation("redirect_uri", "must be an https URL (or http on a loopback host) without a fragment"))
    }
}

/// Grants, authorizations in flight and external links.
///
/// Contract (checked by `crm_core::testing::store::oauth`):
/// - [`OAuthStore::take_pending_authorization`] hands out an authorization
///   at most once, even to concurrent callers, and never one that expired.
/// - One grant per (account, provider): [`OAuthStore::put_oauth_grant`]
///   replaces the stored one.
/// - One link per (account, contact, system), and per (account, system,
///   external id).
/// - Tenancy: reads by account see only that account's rows.
#[async_trait]
pub trait OAuthStore: Send + Sync + Debug + 'static {
    /// Stores an authorization in flight. [`Error::Validation`] when
    /// [`check_pending`] refuses it; [`Error::Conflict`] when its state hash is stored.
    async fn insert_pending_authorization(&self, pending: &PendingAuthorization) -> Result<()>;

    /// Removes and returns the authorization with this state hash when it
    /// has not expired at `now`; `None` when there is none (never stored,
    /// already taken) or it expired (it is removed then too).
    async fn take_pending_authorization(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingAuthorization>>;

    /// Deletes authorizations that expired before `before`; returns how many.
    async fn delete_expired_authorizations(&self, before: DateTime<Utc>) -> Result<u64>;

    /// Stores the account's grant from its provider, replacing any.
    async fn put_oauth_grant(&self, grant: &OAuthGrant) -> Result<()>;

    /// The account's grant from `provider`.
    async fn get_oauth_grant(&self, account: AccountId, provider: OAuthProvider) -> Result<Option<OAuthGrant>>;

    /// The account's grants, by provider.
    async fn list_oauth_grants(&self, account: AccountId) -> Result<Vec<OAuthGrant>>;

    /// Deletes the account's grant from `provider`; whether there was one.
    async fn delete_oauth_grant(&self, account: AccountId, provider: OAuthProvider) -> Result<bool>;

    /// Grants of every account counted by provider and status (non-zero
    /// counts only, by provider then status).
    async fn count_oauth_grants(&self) -> Result<Vec<GrantCount>>;

    /// Stores a link, replacing the contact's link to the same system.
    /// [`Error::Validation`] when [`check_external_link`] refuses it;
    /// [`Error::Conflict`] when another contact of the account holds the
    /// external id in that system.
    async fn put_external_link(&self, link: &ExternalLink) -> Result<()>;

    /// The contact's link to `system`.
    async fn get_external_link(
        &self,
        account: AccountId,
        contact: ContactId,
        system: &str,
    ) -> Result<Option<ExternalLink>>;

    /// The link holding `external_id` in `system`.
    async fn find_external_link(
        &self,
        account: AccountId,
        system: &str,
        external_id: &str,
    ) -> Result<Option<ExternalLink>>;
}

/// What a provider's token endpoint answered. `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The new access token.
    pub access_token: String,
    /// A refresh token, when the provider sent one (on a refresh: a rotated one).
    pub refresh_token: Option<String>,
    /// Seconds the access token lives.
    pub expires_in: Option<u64>,
    /// Granted scopes (space-separated), when the provider said.
    pub scope: Option<String>,
    /// Salesforce's org host.
    pub instance_url: Option<String>,
}

impl Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("instance_url", &self.instance_url)
            .finish_non_exhaustive()
    }
}

/// A provider's OAuth 2.0 endpoints (RFC 6749 authorization code with
/// PKCE, RFC 7636; refresh; RFC 7009 revocation).
///
/// Contract:
/// - [`Error::NotFound`] for a provider that is not configured.
/// - The token endpoint's `invalid_grant` (a used, expired or unknown code,
///   a wrong PKCE verifier or redirect URI, a revoked refresh token) is
///   [`Error::Provider`] with `code: Some("invalid_grant")`, not transient;
///   other OAuth errors carry their `error` code likewise; 429, 5xx and
///   timeouts are transient. Messages never carry tokens or the client secret.
#[async_trait]
pub trait OAuthClient: Send + Sync + Debug + 'static {
    /// The configured providers.
    fn providers(&self) -> Vec<OAuthProvider>;

    /// The redirect URI registered for `provider`.
    fn redirect_uri(&self, provider: OAuthProvider) -> Result<String>;

    /// The URL the user is sent to: response type `code`, the client id,
    /// the redirect URI, the provider's scopes, `state` and the S256
    /// `code_challenge`.
    fn authorization_url(&self, provider: OAuthProvider, state: &str, code_challenge: &str) -> Result<String>;

    /// Exchanges an authorization code (grant type `authorization_code`,
    /// with the PKCE `code_verifier` and the same `redirect_uri`).
    async fn exchange_code(
        &self,
        provider: OAuthProvider,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse>;

    /// Mints a new access token from a refresh token.
    async fn refresh(&self, provider: OAuthProvider, refresh_token: &str) -> Result<TokenResponse>;

    /// Revokes a token (and, at these providers, the grant it belongs to).
    async fn revoke(&self, provider: OAuthProvider, token: &str) -> Result<()>;
}

/// A usable access token. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer token.
    pub token: String,
    /// Salesforce's org host.
    pub instance_url: Option<String>,
}

impl Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("instance_url", &self.instance_url).finish_non_exhaustive()
    }
}

/// Access tokens for adapters that call a provider's API on an account's behalf.
#[async_trait]
pub trait AccessTokens: Send + Sync + Debug + 'static {
    /// A token that is not about to expire (refreshed first when it is).
    /// [`Error::NotFound`] when the account has no grant from `provider`;
    /// [`Error::Config`] when the grant is broken (the account must connect again).
    async fn access_token(&self, account: AccountId, provider: OAuthProvider) -> Result<AccessToken>;

    /// A new token after the provider refused `rejected` (401): refreshed
    /// unless another caller already replaced it.
    async fn refreshed_token(
        &self,
        account: AccountId,
        provider: OAuthProvider,
        rejected: &AccessToken,
    ) -> Result<AccessToken>;
}

//! OAuth 2.0 connections: PKCE (RFC 7636, S256), one-time states, the
//! callback's checks, refresh before expiry with refresh-token rotation,
//! and disconnect with revocation — over any [`OAuthStore`] and
//! [`OAuthClient`].
//!
//! ```
//! use crm_core::oauth::Pkce;
//! let pkce = Pkce::generate()?;
//! assert_eq!(pkce.verifier().len(), 43);
//! assert_eq!(Pkce::challenge_of(pkce.verifier()), pkce.challenge());
//! // RFC 7636 appendix B:
//! assert_eq!(Pkce::challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
//!            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
//! # Ok::<(), crm_core::Error>(())
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::oauth::{
    AccessToken, AccessTokens, GrantCount, GrantStatus, GrantTokens, GrantView, OAuthClient, OAuthGrant, OAuthProvider,
    OAuthStore, PendingAuthorization, TokenResponse,
};
use crate::secrets::Keyring;
use crate::{AccountId, Clock, Error, Result, sha256_hex};

/// How long a `state` stays valid.
pub const STATE_TTL: Duration = Duration::minutes(10);

/// How long before its expiry an access token is refreshed.
pub const REFRESH_MARGIN: Duration = Duration::minutes(5);

fn random_b64(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| Error::Config { message: format!("the system random generator failed: {e}") })?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A PKCE pair: the secret verifier (43 characters of base64url, from 32
/// random bytes) and its S256 challenge. `Debug` hides the verifier.
#[derive(Clone)]
pub struct Pkce {
    verifier: String,
    challenge: String,
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce").field("challenge", &self.challenge).finish_non_exhaustive()
    }
}

impl Pkce {
    /// A fresh pair from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let verifier = random_b64(32)?;
        let challenge = Self::challenge_of(&verifier);
        Ok(Self { verifier, challenge })
    }

    /// `BASE64URL(SHA256(verifier))` without padding.
    pub fn challenge_of(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }

    /// The verifier (sent only with the token request).
    pub fn verifier(&self) -> &str {
        &self.verifier
    }

    /// The challenge (sent with the authorization request).
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

/// One lock per grant, held while it refreshes or disconnects.
type GrantLocks = HashMap<(AccountId, OAuthProvider), Arc<tokio::sync::Mutex<()>>>;

/// An account's OAuth connections: starts and completes authorizations,
/// keeps tokens fresh, disconnects. Implements [`AccessTokens`].
#[derive(Clone)]
pub struct OAuthConnections {
    store: Arc<dyn OAuthStore>,
    client: Arc<dyn OAuthClient>,
    keyring: Keyring,
    clock: Arc<dyn Clock>,
    /// One refresh at a time per grant in this process.
    locks: Arc<Mutex<GrantLocks>>,
}

impl fmt::Debug for OAuthConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConnections").field("client", &self.client).finish_non_exhaustive()
    }
}

/// When a token that lives `secs` (capped at ten years) expires.
fn expiry(now: DateTime<Utc>, secs: Option<u64>) -> Option<DateTime<Utc>> {
    secs.map(|s| now + Duration::seconds(i64::try_from(s.min(315_360_000)).unwrap_or(315_360_000)))
}

fn refused(e: &Error) -> Option<&str> {
    match e {
        Error::Provider { transient: false, code, .. } => Some(code.as_deref().unwrap_or("refused")),
        _ => None,
    }
}

impl OAuthConnections {
    /// Connections kept in `store`, sealed with `keyring`, against `client`.
    pub fn new(
        store: Arc<dyn OAuthStore>,
        client: Arc<dyn OAuthClient>,
        keyring: Keyring,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, client, keyring, clock, locks: Arc::default() }
    }

    /// The configured providers.
    pub fn providers(&self) -> Vec<OAuthProvider> {
        self.client.providers()
    }

    /// Starts an authorization for `account`, bound to `principal` (who
    /// asks: `key:<id>` or `session:<id>`): stores the state's hash and the
    /// sealed PKCE verifier for [`STATE_TTL`] and returns the provider's URL.
    /// [`Error::NotFound`] when the provider is not configured.
    pub async fn start(&self, account: AccountId, principal: &str, provider: OAuthProvider) -> Result<String> {
        let redirect_uri = self.client.redirect_uri(provider)?;
        let state = random_b64(32)?;
        let pkce = Pkce::generate()?;
        let url = self.client.authorization_url(provider, &state, pkce.challenge())?;
        let state_hash = sha256_hex(&state);
        let now = self.clock.now();
        let verifier = self.keyring.seal(pkce.verifier().as_bytes(), &PendingAuthorization::context(&state_hash))?;
        let pending = PendingAuthorization {
            state_hash,
            account_id: account,
            provider,
            principal: principal.to_owned(),
            verifier,
            redirect_uri,
            created_at: now,
            expires_at: now + STATE_TTL,
        };
        self.store.insert_pending_authorization(&pending).await?;
        Ok(url)
    }

    /// Completes an authorization at the callback: takes the pending
    /// authorization of `state` (once; [`Error::Validation`] on `state` when
    /// it is missing, unknown, used, expired or for another provider, or
    /// when `principal` — the caller's credential, when the callback carries
    /// one — is not the one that started it), exchanges `code` with the
    /// stored verifier and redirect URI ([`Error::Validation`] on `code`
    /// when the provider refuses it) and stores the grant.
    pub async fn complete(
        &self,
        provider: OAuthProvider,
        state: Option<&str>,
        code: Option<&str>,
        principal: Option<&str>,
    ) -> Result<GrantView> {
        let bad_state = |why: &str| Error::validation("state", why.to_owned());
        let state = state.filter(|s| !s.is_empty() && s.len() <= 512).ok_or_else(|| bad_state("is missing"))?;
        let now = self.clock.now();
        let pending = self
            .store
            .take_pending_authorization(&sha256_hex(state), now)
            .await?
            .ok_or_else(|| bad_state("is unknown, already used or expired"))?;
        if pending.provider != provider {
            return Err(bad_state("was issued for another provider"));
        }
        if principal.is_some_and(|p| p != pending.principal) {
            return Err(bad_state("was issued to another session or API key"));
        }
        let code = code.filter(|c| !c.is_empty() && c.len() <= 2048).ok_or_else(|| {
            Error::validation("code", "is missing (the provider sent none: the user may have denied access)")
        })?;
        let verifier = self.keyring.open(&pending.verifier, &PendingAuthorization::context(&pending.state_hash))?;
        let verifier = String::from_utf8(verifier)
            .map_err(|_| Error::Config { message: "a stored verifier is corrupt".into() })?;
        let tokens = match self.client.exchange_code(provider, code, &verifier, &pending.redirect_uri).await {
            Ok(t) => t,
            Err(e) => {
                return Err(match refused(&e) {
                    Some(why) => {
                        Error::validation("code", format!("the provider refused the authorization code ({why})"))
                    }
                    None => e,
                });
            }
        };
        let grant = self.new_grant(pending.account_id, provider, tokens, now)?;
        self.store.put_oauth_grant(&grant).await?;
        Ok(grant.view())
    }

    fn new_grant(
        &self,
        account: AccountId,
        provider: OAuthProvider,
        t: TokenResponse,
        now: DateTime<Utc>,
    ) -> Result<OAuthGrant> {
        let scopes = match &t.scope {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            None => provider.scopes().iter().map(|s| (*s).to_owned()).collect(),
        };
        let secrets = GrantTokens { access_token: t.access_token, refresh_token: t.refresh_token };
        Ok(OAuthGrant {
            account_id: account,
            provider,
            status: GrantStatus::Active,
            scopes,
            tokens: self.seal(account, provider, &secrets)?,
            expires_at: expiry(now, t.expires_in),
            instance_url: t.instance_url,
            last_error: None,
            connected_at: now,
            refreshed_at: None,
        })
    }

    fn seal(
        &self,
        account: AccountId,
        provider: OAuthProvider,
        t: &GrantTokens,
    ) -> Result<crate::secrets::SealedSecret> {
        let json =
            serde_json::to_vec(t).map_err(|e| Error::Config { message: format!("tokens do not serialize: {e}") })?;
        self.keyring.seal(&json, &GrantTokens::context(account, provider))
    }

    /// Opens a grant's tokens.
    fn open(&self, grant: &OAuthGrant) -> Result<GrantTokens> {
        let bytes = self.keyring.open(&grant.tokens, &GrantTokens::context(grant.account_id, grant.provider))?;
        serde_json::from_slice(&bytes).map_err(|_| Error::Config { message: "stored OAuth tokens are corrupt".into() })
    }

    /// The account's connections (never their tokens).
    pub async fn list(&self, account: AccountId) -> Result<Vec<GrantView>> {
        Ok(self.store.list_oauth_grants(account).await?.iter().map(OAuthGrant::view).collect())
    }

    /// Grants of every account by provider and status (for `/ready`).
    pub async fn counts(&self) -> Result<Vec<GrantCount>> {
        self.store.count_oauth_grants().await
    }

    /// Revokes the grant at the provider (its refresh token, else its
    /// access token) and deletes it. [`Error::NotFound`] without one. A
    /// transient revocation failure keeps the grant (try again); a token
    /// the provider no longer knows is deleted all the same.
    pub async fn disconnect(&self, account: AccountId, provider: OAuthProvider) -> Result<()> {
        let lock = self.lock(account, provider);
        let _held = lock.lock().await;
        let grant = self.store.get_oauth_grant(account, provider).await?.ok_or(Error::not_found("oauth connection"))?;
        match self.open(&grant) {
            Ok(tokens) => {
                let token = tokens.refresh_token.as_deref().unwrap_or(&tokens.access_token);
                if let Err(e) = self.client.revoke(provider, token).await
                    && refused(&e).is_none()
                {
                    return Err(e);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, provider = provider.as_str(), "deleting an OAuth grant whose tokens do not open")
            }
        }
        self.store.delete_oauth_grant(account, provider).await?;
        Ok(())
    }

    fn lock(&self, account: AccountId, provider: OAuthProvider) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((account, provider)).or_default().clone()
    }

    async fn usable(&self, account: AccountId, provider: OAuthProvider) -> Result<(OAuthGrant, GrantTokens)> {
        let grant = self.store.get_oauth_grant(account, provider).await?.ok_or(Error::not_found("oauth connection"))?;
        if grant.status == GrantStatus::Broken {
            return Err(Error::Config {
                message: format!("the {} connection is broken; connect it again", provider.as_str()),
            });
        }
        let tokens = self.open(&grant)?;
        Ok((grant, tokens))
    }

    /// Refreshes the grant now (the caller holds its lock), keeping a
    /// rotated refresh token. `invalid_grant` marks it broken.
    async fn refresh(&self, mut grant: OAuthGrant, tokens: GrantTokens) -> Result<AccessToken> {
        let provider = grant.provider;
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            grant.status = GrantStatus::Broken;
            grant.last_error = Some("the access token expired and there is no refresh token".into());
            self.store.put_oauth_grant(&grant).await?;
            return Err(Error::Config {
                message: format!("the {} connection has no refresh token", provider.as_str()),
            });
        };
        let now = self.clock.now();
        match self.client.refresh(provider, &refresh_token).await {
            Ok(t) => {
                let fresh = GrantTokens {
                    access_token: t.access_token.clone(),
                    refresh_token: t.refresh_token.clone().or(Some(refresh_token)),
                };
                grant.tokens = self.seal(grant.account_id, provider, &fresh)?;
                grant.expires_at = expiry(now, t.expires_in);
                if let Some(s) = &t.scope {
                    grant.scopes = s.split_whitespace().map(str::to_owned).collect();
                }
                if t.instance_url.is_some() {
                    grant.instance_url = t.instance_url.clone();
                }
                grant.status = GrantStatus::Active;
                grant.last_error = None;
                grant.refreshed_at = Some(now);
                self.store.put_oauth_grant(&grant).await?;
                Ok(AccessToken { token: fresh.access_token, instance_url: grant.instance_url })
            }
            Err(e) => {
                let permanent = refused(&e).map(str::to_owned);
                grant.last_error = Some(format!("refresh failed: {}", permanent.as_deref().unwrap_or(e.kind())));
                if permanent.is_some() {
                    grant.status = GrantStatus::Broken;
                }
                self.store.put_oauth_grant(&grant).await?;
                Err(match permanent {
                    Some(code) => Error::Config {
                        message: format!("{} refused the refresh token ({code}); connect it again", provider.as_str()),
                    },
                    None => e,
                })
            }
        }
    }
}

#[async_trait]
impl AccessTokens for OAuthConnections {
    async fn access_token(&self, account: AccountId, provider: OAuthProvider) -> Result<AccessToken> {
        let (grant, tokens) = self.usable(account, provider).await?;
        let due = |g: &OAuthGrant| g.expires_at.is_some_and(|at| at - REFRESH_MARGIN <= self.clock.now());
        if !due(&grant) {
            return Ok(AccessToken { token: tokens.access_token, instance_url: grant.instance_url });
        }
        let lock = self.lock(account, provider);
        let _held = lock.lock().await;
        // Another caller may have refreshed it while this one waited.
        let (grant, tokens) = self.usable(account, provider).await?;
        if !due(&grant) {
            return Ok(AccessToken { token: tokens.access_token, instance_url: grant.instance_url });
        }
        self.refresh(grant, tokens).await
    }

    async fn refreshed_token(
        &self,
        account: AccountId,
        provider: OAuthProvider,
        rejected: &AccessToken,
    ) -> Result<AccessToken> {
        let lock = self.lock(account, provider);
        let _held = lock.lock().await;
        let (grant, tokens) = self.usable(account, provider).await?;
        if tokens.access_token != rejected.token {
            return Ok(AccessToken { token: tokens.access_token, instance_url: grant.instance_url });
        }
        self.refresh(grant, tokens).await
    }
}

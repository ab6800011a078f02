//! Authentication and per-client rate limiting.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crm_core::{AccountId, ApiKeyId, ApiKeyToken, Decision, Quota, Role, SessionId, UserId};

use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling: resolved from the bearer token by the auth middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The account every handler is scoped to.
    pub account_id: AccountId,
    /// The API key or login session used.
    pub credential: Credential,
    /// What it may do.
    pub role: Role,
}

/// What authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An API key (`crm_…`).
    ApiKey(ApiKeyId),
    /// A dashboard login session (`crs_…`) of a user.
    Session {
        /// The session.
        id: SessionId,
        /// Its user.
        user_id: UserId,
    },
}

impl Principal {
    /// [`ApiError`] 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role.includes(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this action needs the {} role", role.as_str())))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .copied()
            .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <api key>"))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

fn set_rate_headers(res: &mut Response, d: &Decision) {
    let h = res.headers_mut();
    let secs = |d: Duration| d.as_secs_f64().ceil() as u64;
    h.insert(X_RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    h.insert(X_RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    h.insert(X_RATELIMIT_RESET, HeaderValue::from(secs(d.reset_after)));
    if let Some(r) = d.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs(r).max(1)));
    }
}

/// What a limited route does when the limiter cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// Let the request through (API keys: a limiter outage must not take
    /// the API down; `/ready` reports it).
    Open,
    /// Refuse with 503 and `Retry-After` (login: password guessing must not
    /// become unlimited while Redis is down).
    Closed,
}

/// Seconds a client is told to wait when the limiter is down on a route that fails closed.
const OUTAGE_RETRY_SECS: u64 = 5;

/// One limiter check: the decision, `Ok(None)` when the limiter failed and
/// `outage` lets the request through, `Err` (a 503) when it does not.
async fn decide(state: &AppState, key: &str, quota: &Quota, outage: Outage) -> Result<Option<Decision>, ApiError> {
    match state.inner.limiter.check(key, quota).await {
        Ok(d) => Ok(Some(d)),
        Err(e) if outage == Outage::Open => {
            tracing::warn!(error = %e, "rate limiter unavailable; request allowed");
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable; request refused");
            Err(ApiError::unavailable("the rate limiter is unavailable; try again shortly", OUTAGE_RETRY_SECS))
        }
    }
}

fn denied(d: &Decision) -> ApiError {
    ApiError::rate_limited(d.retry_after.map_or(60, |r| r.as_secs_f64().ceil().max(1.0) as u64))
}

async fn limited(state: &AppState, key: &str, per_minute: u32, outage: Outage, req: Request, next: Next) -> Response {
    let quota = match Quota::per_minute(per_minute) {
        Ok(q) => q,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let decision = match decide(state, key, &quota, outage).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let mut res = match decision {
        Some(d) if !d.allowed => denied(&d).into_response(),
        _ => next.run(req).await,
    };
    if let Some(d) = decision {
        set_rate_headers(&mut res, &d);
    }
    res
}

/// Middleware for authenticated routes: resolves the bearer token into a
/// [`Principal`] (401 otherwise) and applies the per-key rate limit. Failed
/// authentications are counted per client address (the per-IP quota): past
/// it, requests from that address are refused with 429 before the token is
/// looked up, until the quota refills.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let bucket = client_bucket(&req, state.settings().trusted_proxies);
    if let Some(wait) = state.inner.auth_failures.blocked(&bucket, std::time::Instant::now()) {
        return ApiError::rate_limited(wait.as_secs().max(1)).into_response();
    }
    let Some(token) = bearer(req.headers()) else {
        return ApiError::unauthorized("send Authorization: Bearer <api key>").into_response();
    };
    let (principal, limit_key) = match resolve(&state, token).await {
        Ok(p) => p,
        Err(crm_core::Error::Unauthorized) => return failed_authentication(&state, &bucket).await.into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    req.extensions_mut().insert(principal);
    let per_minute = state.settings().per_key_per_minute;
    limited(&state, &limit_key, per_minute, Outage::Open, req, next).await
}

/// The principal a bearer token stands for (a login session for `crs_…`,
/// else an API key) and its rate-limit key.
async fn resolve(state: &AppState, token: &str) -> crm_core::Result<(Principal, String)> {
    if ApiKeyToken::session_prefix_of(token).is_some() {
        let s = state.crm().authenticate_session(token).await?;
        let credential = Credential::Session { id: s.id, user_id: s.user_id };
        return Ok((Principal { account_id: s.account_id, credential, role: s.role }, format!("session:{}", s.id)));
    }
    let key = state.crm().authenticate(token).await?;
    let principal = Principal { account_id: key.account_id, credential: Credential::ApiKey(key.id), role: key.role };
    Ok((principal, format!("key:{}", key.id)))
}

/// Counts a failed authentication from `bucket`: 401, or 429 once the
/// address has failed more than the per-IP quota allows (then the address is
/// refused without a lookup until the quota refills).
async fn failed_authentication(state: &AppState, bucket: &str) -> ApiError {
    let unauthorized = ApiError::unauthorized("the API key is unknown, revoked or expired");
    let Ok(quota) = Quota::per_minute(state.settings().per_ip_per_minute) else { return unauthorized };
    match decide(state, &format!("authfail:{bucket}"), &quota, Outage::Open).await {
        Ok(Some(d)) if !d.allowed => {
            let wait = d.retry_after.unwrap_or(Duration::from_secs(60));
            state.inner.auth_failures.block(bucket, std::time::Instant::now() + wait);
            denied(&d)
        }
        _ => unauthorized,
    }
}

/// Middleware for unauthenticated routes (login): the per-IP rate limit,
/// failing closed (503) when the limiter is down.
pub async fn limit_by_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let bucket = client_bucket(&req, state.settings().trusted_proxies);
    let per_minute = state.settings().per_ip_per_minute;
    limited(&state, &format!("ip:{bucket}"), per_minute, Outage::Closed, req, next).await
}

/// The per-e-mail login throttle, a stepped backoff: at most
/// [`LOGIN_TRIES_PER_MINUTE`] attempts a minute, then at most
/// [`LOGIN_TRIES_PER_HOUR`] an hour, whichever IPs they come from. Every
/// attempt counts (the password is not checked past the limit); fails
/// closed when the limiter is down.
pub(crate) async fn throttle_login(state: &AppState, email: &crm_core::Email) -> Result<(), ApiError> {
    for (limit, period) in
        [(LOGIN_TRIES_PER_MINUTE, Duration::from_secs(60)), (LOGIN_TRIES_PER_HOUR, Duration::from_secs(3600))]
    {
        let quota = Quota::new(limit, period)?;
        let key = format!("login:{}:{}", period.as_secs(), email.as_str());
        if let Some(d) = decide(state, &key, &quota, Outage::Closed).await?
            && !d.allowed
        {
            return Err(denied(&d));
        }
    }
    Ok(())
}

/// The user an e-mail and password belong to, after the per-e-mail login
/// throttle ([`throttle_login`]): 401 on any mismatch, 429 past the
/// throttle. Shared by `POST /api/v1/auth/login` and the dashboard's login form.
pub(crate) async fn check_login(state: &AppState, email: String, password: String) -> Result<crm_core::User, ApiError> {
    // An address that cannot be a user's is refused before any work (no
    // user can have it, so the answer reveals nothing).
    let parsed = crm_core::Email::parse(&email).map_err(|_| crm_core::Error::Unauthorized)?;
    throttle_login(state, &parsed).await?;
    let crm = state.crm().clone();
    // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let user = tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current().block_on(async move { crm.verify_login(&email, &password).await })
    })
    .await
    .map_err(|_| crm_core::Error::Unauthorized)??;
    Ok(user)
}

/// Login attempts per e-mail per minute.
pub const LOGIN_TRIES_PER_MINUTE: u32 = 5;
/// Login attempts per e-mail per hour.
pub const LOGIN_TRIES_PER_HOUR: u32 = 20;

/// The rate-limit bucket of the request's client: its address
/// ([`client_ip`]), IPv6 addresses by their /64 (one subscriber's network),
/// IPv4-mapped IPv6 as IPv4; `unknown` without one.
fn client_bucket(req: &Request, trusted_proxies: usize) -> String {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match client_ip(req.headers(), peer, trusted_proxies) {
        Some(ip) => ip_bucket(ip),
        None => "unknown".to_owned(),
    }
}

/// `ip`'s bucket: IPv4 as is, IPv6 by its /64.
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The client's address: the socket `peer`, or, behind `trusted_proxies`
/// proxies (the `CRM_TRUSTED_PROXIES` hops, 0 by default), the address the
/// outermost trusted proxy saw: counting from the right of the chain the
/// `Forwarded` (`for=`) header lists (else `X-Forwarded-For`) followed by
/// the peer, the entry `trusted_proxies` hops left of the peer. Addresses
/// left of it were written by the client and are never believed. A chain
/// shorter than that gives its leftmost entry; an entry that is not an
/// address gives the peer.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted_proxies: usize) -> Option<IpAddr> {
    if trusted_proxies == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers.get_all(header::FORWARDED).iter().filter_map(|v| v.to_str().ok()).collect();
    let mut chain: Vec<String> = if forwarded.is_empty() {
        let xff = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        xff.flat_map(|v| v.split(',')).map(|h| h.trim().to_owned()).collect()
    } else {
        forwarded.iter().flat_map(|v| v.split(',')).map(forwarded_for).collect()
    };
    chain.push(peer.map(|p| p.to_string()).unwrap_or_default());
    let at = chain.len().saturating_sub(1 + trusted_proxies);
    parse_hop(&chain[at]).or(peer)
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.1;proto=https`), unquoted.
fn forwarded_for(element: &str) -> String {
    element
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[').and_then(|h| h.split_once(']')).and_then(|(ip, _)| ip.parse::<IpAddr>().ok()))
}

/// Addresses refused without a token lookup after too many failed
/// authentications, and until when. In process; bounded: past
/// [`AuthFailures::MAX_ENTRIES`] the expired entries are dropped, and if
/// none are, the oldest deadline goes.
#[derive(Debug, Default)]
pub(crate) struct AuthFailures(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl AuthFailures {
    const MAX_ENTRIES: usize = 10_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, std::time::Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `bucket` is still refused, if it is.
    fn blocked(&self, bucket: &str, now: std::time::Instant) -> Option<Duration> {
        let mut map = self.lock();
        match map.get(bucket) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                map.remove(bucket);
                None
            }
            None => None,
        }
    }

    fn block(&self, bucket: &str, until: std::time::Instant) {
        let mut map = self.lock();
        if map.len() >= Self::MAX_ENTRIES && !map.contains_key(bucket) {
            let now = std::time::Instant::now();
            map.retain(|_, t| *t > now);
            if map.len() >= Self::MAX_ENTRIES
                && let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(bucket.to_owned(), until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_hops_are_believed_only_as_far_as_trusted() {
        let peer: Option<IpAddr> = "10.0.0.2".parse().ok();
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(client_ip(&xff, peer, 0), peer, "no proxy trusted by default: the header is ignored");
        assert_eq!(client_ip(&xff, peer, 1), ip("203.0.113.7"), "the one proxy saw 203.0.113.7");
        assert_eq!(client_ip(&xff, peer, 2), ip("6.6.6.6"));
        assert_eq!(client_ip(&xff, peer, 5), ip("6.6.6.6"), "a short chain gives its leftmost entry");
        let fwd = headers(&[("forwarded", "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https")]);
        assert_eq!(client_ip(&fwd, peer, 1), ip("2001:db8:cafe::17"), "Forwarded wins over X-Forwarded-For");
        let junk = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(client_ip(&junk, peer, 1), peer);
        let none = headers(&[]);
        assert_eq!(client_ip(&none, peer, 1), peer, "no header: the peer is the client");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = ip_bucket("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ip_bucket("2001:db8:1:2:bbbb:cccc:dddd:eeee".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_ne!(a, ip_bucket("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(ip_bucket("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
    }
}

//! Password hashes, API keys and login sessions.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

use crate::domain::account::validate_name;
use crate::{AccountId, ApiKeyId, Error, Result, Role, SessionId, User, UserId};

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf)
        .map_err(|e| Error::Config { message: format!("the operating system's random number generator failed: {e}") })
}

/// Lower-case hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256 of a high-entropy secret (API keys, session tokens). Such
/// secrets need no slow hash; passwords use [`PasswordHash`].
pub fn sha256_hex(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

fn argon2id() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id password hash in PHC string form (`$argon2id$v=19$m=19456,t=2,p=1$…`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Minimum password length in characters.
    pub const MIN_LEN: usize = 8;
    /// Maximum password length in characters (bounds hashing cost).
    pub const MAX_LEN: usize = 128;

    /// Hashes `password` with a random salt. [`Error::Validation`] on
    /// `password` when it is shorter than 8 or longer than 128 characters.
    pub fn hash(password: &str) -> Result<Self> {
        let n = password.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&n) {
            return Err(Error::validation("password", "must be 8 to 128 characters"));
        }
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        argon2id()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| PasswordHash(h.to_string()))
            .map_err(|e| Error::Config { message: format!("password hashing failed: {e}") })
    }

    /// Wraps a PHC string read from storage.
    pub fn from_phc(phc: impl Into<String>) -> Self {
        PasswordHash(phc.into())
    }

    /// The PHC string, for storage.
    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// Whether `password` matches. A malformed stored hash never matches.
    pub fn verify(&self, password: &str) -> bool {
        if password.chars().count() > Self::MAX_LEN {
            return false;
        }
        argon2id().verify_password(password.as_bytes(), self.0.as_str()).is_ok()
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// A plaintext API key, shown to its owner once at creation. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyToken(String);

impl ApiKeyToken {
    /// The full key, to hand to the user once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Splits a presented key `crm_<prefix>_<secret>` into its lookup prefix.
    /// Returns `None` when the shape is wrong.
    pub fn prefix_of(presented: &str) -> Option<&str> {
        split_token(presented, API_KEY_TAG)
    }

    /// Splits a presented login session token `crs_<prefix>_<secret>` into
    /// its lookup prefix. Returns `None` when the shape is wrong.
    pub fn session_prefix_of(presented: &str) -> Option<&str> {
        split_token(presented, SESSION_TAG)
    }
}

/// What API keys start with.
const API_KEY_TAG: &str = "crm_";
/// What login session tokens start with.
const SESSION_TAG: &str = "crs_";

/// A fresh `<tag><prefix>_<secret>` token: its lookup prefix, the token and its hash.
fn mint(tag: &str) -> Result<(String, ApiKeyToken, String)> {
    use base64::Engine;
    let mut raw = [0u8; 32 + ApiKey::PREFIX_LEN];
    random_bytes(&mut raw)?;
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let prefix: String = raw[32..].iter().map(|b| ALPHABET[(b & 31) as usize] as char).collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw[..32]);
    let token = format!("{tag}{prefix}_{secret}");
    let hash = sha256_hex(&token);
    Ok((prefix, ApiKeyToken(token), hash))
}

/// Whether `presented` hashes to `hash` (constant time).
fn hash_matches(presented: &str, hash: &str) -> bool {
    sha256_hex(presented).as_bytes().ct_eq(hash.as_bytes()).into()
}

/// The lookup prefix of a presented `<tag><prefix>_<secret>` token, if it has that shape.
fn split_token<'a>(presented: &'a str, tag: &str) -> Option<&'a str> {
    let rest = presented.strip_prefix(tag)?;
    let (prefix, secret) = rest.split_once('_')?;
    let ok = prefix.len() == ApiKey::PREFIX_LEN
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && secret.len() == 43
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(prefix)
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyToken(…)")
    }
}

/// An API key as stored: its public prefix and a SHA-256 of the whole key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Owning account; the key acts inside it only.
    pub account_id: AccountId,
    /// Label chosen by the creator.
    pub name: String,
    /// Public lookup prefix (the characters after `crm_`), unique across accounts.
    pub prefix: String,
    /// Hex SHA-256 of the full key.
    pub hash: String,
    /// What the key may do.
    pub role: Role,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when revoked; a revoked key never authenticates again.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("role", &self.role)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Length of the lookup prefix.
    pub const PREFIX_LEN: usize = 12;

    /// Generates a key: the stored [`ApiKey`] and the [`ApiKeyToken`] to show once.
    pub fn generate(
        account_id: AccountId,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, ApiKeyToken)> {
        let name = validate_name("name", name, 100)?;
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::validation("expires_at", "must be in the future"));
        }
        let (prefix, token, hash) = mint(API_KEY_TAG)?;
        let key = ApiKey {
            id: ApiKeyId::new(),
            account_id,
            name,
            prefix,
            hash,
            role,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        Ok((key, token))
    }

    /// Whether `presented` is this key and it is usable at `now` (not revoked,
    /// not expired). Compares in constant time.
    pub fn verify(&self, presented: &str, now: DateTime<Utc>) -> bool {
        hash_matches(presented, &self.hash) && self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// A dashboard login session: a bearer token `crs_<prefix>_<secret>` of one
/// user, stored hashed, with the user's role and a fixed expiry. Listed and
/// ended by its user (logout), removed once expired; never an API key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// The user's account.
    pub account_id: AccountId,
    /// Whose session it is.
    pub user_id: UserId,
    /// The user's role when the session started.
    pub role: Role,
    /// Public lookup prefix (the characters after `crs_`).
    pub prefix: String,
    /// Hex SHA-256 of the full token.
    pub hash: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Set at logout.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session for `user` until `expires_at`: the stored
    /// [`Session`] and the token to hand out once. [`Error::Validation`] on
    /// `expires_at` when it is not after `now`.
    pub fn start(user: &User, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(Session, ApiKeyToken)> {
        if expires_at <= now {
            return Err(Error::validation("expires_at", "must be in the future"));
        }
        let (prefix, token, hash) = mint(SESSION_TAG)?;
        let session = Session {
            id: SessionId::new(),
            account_id: user.account_id,
            user_id: user.id,
            role: user.role,
            prefix,
            hash,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        Ok((session, token))
    }

    /// Whether `presented` is this session's token and it is usable at
    /// `now` (not ended, not expired). Compares in constant time.
    pub fn verify(&self, presented: &str, now: DateTime<Utc>) -> bool {
        hash_matches(presented, &self.hash) && self.revoked_at.is_none() && self.expires_at > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_roundtrip_uses_owasp_params() {
        let h = PasswordHash::hash("correct horse").unwrap();
        assert!(h.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", h.as_phc());
        assert!(h.verify("correct horse"));
        assert!(!h.verify("correct horsE"));
        assert!(!PasswordHash::from_phc("garbage").verify("correct horse"));
        assert!(PasswordHash::hash("short").is_err());
        assert_eq!(format!("{h:?}"), "PasswordHash(…)");
    }

    #[test]
    fn api_key_generate_and_verify() {
        let now = Utc::now();
        let (key, token) = ApiKey::generate(AccountId::new(), "ci", Role::Admin, None, now).unwrap();
        assert_eq!(ApiKeyToken::prefix_of(token.expose()), Some(key.prefix.as_str()));
        assert!(key.verify(token.expose(), now));
        assert!(!key.verify("crm_x", now));
        let mut revoked = key.clone();
        revoked.revoked_at = Some(now);
        assert!(!revoked.verify(token.expose(), now));
        assert!(!format!("{key:?}").contains(&key.hash));
        assert!(!format!("{token:?}").contains(token.expose()));
        assert_eq!(ApiKeyToken::prefix_of("Bearer nonsense"), None);
        assert!(ApiKey::generate(AccountId::new(), "x", Role::Admin, Some(now), now).is_err());
    }
}

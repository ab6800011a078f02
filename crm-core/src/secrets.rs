//! Secret storage: credentials encrypted at rest with an AEAD.
//!
//! Channel credentials today, and Stripe, OpenAI, OAuth and connector
//! credentials later, are kept as [`SealedSecret`]s: XChaCha20-Poly1305 over
//! the plaintext, a random 192-bit nonce, and *associated data* naming what
//! the secret belongs to (e.g. `channel:<account>:<channel id>`), so a sealed
//! value copied onto another row does not open. Each sealed value records the
//! id of the key that sealed it, so keys can rotate: a [`Keyring`] has one
//! active key that seals, and older keys that still open.
//!
//! Stores keep the sealed value's text form ([`SealedSecret::encode`]) in a
//! column of the row that owns it; nothing in crm ever logs or returns the
//! plaintext through the API ([`Credentials`] prints as `[redacted]`).
//!
//! ```
//! use crm_core::secrets::{Credentials, Keyring, SecretKey};
//! let keyring = Keyring::new(SecretKey::generate("k1")?);
//! let mut creds = Credentials::new();
//! creds.insert("access_token", "EAAG…");
//! let sealed = keyring.seal_credentials(&creds, b"channel:a:b")?;
//! assert_eq!(sealed.key_id(), "k1");
//! assert!(!sealed.encode().contains("EAAG"));
//! let opened = keyring.open_credentials(&sealed, b"channel:a:b")?;
//! assert_eq!(opened.get("access_token"), Some("EAAG…"));
//! assert!(keyring.open_credentials(&sealed, b"channel:a:OTHER").is_err());
//! assert_eq!(format!("{creds:?}"), "Credentials([redacted])");
//! # Ok::<(), crm_core::Error>(())
//! ```

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::{Error, Result};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Largest plaintext a secret may hold.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// One 256-bit encryption key with its id. Prints as `SecretKey(<id>)`.
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    key: [u8; KEY_LEN],
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

fn check_key_id(id: &str) -> Result<()> {
    let ok = (1..=32).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config { message: format!("secret key id {id:?} must be 1 to 32 of a-z, 0-9, - _") })
    }
}

impl SecretKey {
    /// A key from 32 raw bytes. [`Error::Config`] for a bad id.
    pub fn from_bytes(id: impl Into<String>, key: [u8; KEY_LEN]) -> Result<Self> {
        let id = id.into();
        check_key_id(&id)?;
        Ok(Self { id, key })
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate(id: impl Into<String>) -> Result<Self> {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key)
            .map_err(|e| Error::Config { message: format!("the system random generator failed: {e}") })?;
        Self::from_bytes(id, key)
    }

    /// Parses `<id>:<base64 of 32 bytes>` (standard or URL-safe alphabet).
    /// The error never repeats the key material.
    pub fn parse(text: &str) -> Result<Self> {
        let (id, b64) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| Error::Config { message: "a secret key must look like <id>:<base64 of 32 bytes>".into() })?;
        let bytes = STANDARD
            .decode(b64.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(b64.trim().trim_end_matches('=')))
            .map_err(|_| Error::Config { message: format!("secret key {id:?} is not valid base64") })?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::Config {
            message: format!("secret key {id:?} must be exactly {KEY_LEN} bytes (base64 of 32 random bytes)"),
        })?;
        Self::from_bytes(id.trim(), key)
    }

    /// `<id>:<base64>`, the form [`SecretKey::parse`] reads. Handle with care:
    /// this is the key material.
    pub fn export(&self) -> String {
        format!("{}:{}", self.id, STANDARD.encode(self.key))
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The keys secrets are sealed and opened with: one active key (seals) and
/// any number of older keys (still open what they sealed).
#[derive(Clone)]
pub struct Keyring {
    active: String,
    keys: BTreeMap<String, XChaCha20Poly1305>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("active", &self.active).field("keys", &self.keys.keys()).finish()
    }
}

impl Keyring {
    /// A keyring whose only (and active) key is `active`.
    pub fn new(active: SecretKey) -> Self {
        let mut keys = BTreeMap::new();
        let id = active.id.clone();
        keys.insert(id.clone(), XChaCha20Poly1305::new(&active.key.into()));
        Self { active: id, keys }
    }

    /// Adds a key that opens old secrets but does not seal new ones.
    /// [`Error::Config`] when its id is already in the keyring.
    pub fn with_old_key(mut self, key: SecretKey) -> Result<Self> {
        if self.keys.contains_key(&key.id) {
            return Err(Error::Config { message: format!("secret key id {:?} appears twice", key.id) });
        }
        self.keys.insert(key.id.clone(), XChaCha20Poly1305::new(&key.key.into()));
        Ok(self)
    }

    /// Parses a comma-separated list of `<id>:<base64>` keys; the first is active.
    pub fn parse(list: &str) -> Result<Self> {
        let mut parts = list.split(',').map(str::trim).filter(|p| !p.is_empty());
        let first = parts.next().ok_or_else(|| Error::Config { message: "no secret key given".into() })?;
        let mut ring = Keyring::new(SecretKey::parse(first)?);
        for p in parts {
            ring = ring.with_old_key(SecretKey::parse(p)?)?;
        }
        Ok(ring)
    }

    /// The id of the key that seals.
    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Encrypts `plaintext`, binding it to `context` (which must be given
    /// again to open it). [`Error::Validation`] when larger than
    /// [`MAX_SECRET_BYTES`].
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<SealedSecret> {
        if plaintext.len() > MAX_SECRET_BYTES {
            return Err(Error::validation("credentials", format!("must be at most {MAX_SECRET_BYTES} bytes")));
        }
        let cipher = self
            .keys
            .get(&self.active)
            .ok_or_else(|| Error::Config { message: "the active secret key is missing".into() })?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| Error::Config { message: format!("the system random generator failed: {e}") })?;
        let ciphertext = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: context })
            .map_err(|_| Error::Config { message: "sealing a secret failed".into() })?;
        let mut data = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ciphertext);
        Ok(SealedSecret { key_id: self.active.clone(), data })
    }

    /// Decrypts a sealed secret with the key that sealed it.
    /// [`Error::Config`] when that key is not in the keyring, or the value
    /// does not open with `context` (tampered, or copied from another row).
    pub fn open(&self, sealed: &SealedSecret, context: &[u8]) -> Result<Vec<u8>> {
        let cipher = self.keys.get(&sealed.key_id).ok_or_else(|| Error::Config {
            message: format!("secret sealed with key {:?}, which is not configured", sealed.key_id),
        })?;
        if sealed.data.len() < NONCE_LEN {
            return Err(Error::Config { message: "a stored secret is truncated".into() });
        }
        let (nonce, ciphertext) = sealed.data.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| Error::Config { message: "a stored secret is truncated".into() })?;
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: context })
            .map_err(|_| Error::Config { message: "a stored secret does not open (wrong key or tampered)".into() })
    }

    /// Seals a credentials map as JSON.
    pub fn seal_credentials(&self, credentials: &Credentials, context: &[u8]) -> Result<SealedSecret> {
        let json = serde_json::to_vec(&credentials.0)
            .map_err(|e| Error::validation("credentials", format!("cannot be serialized: {e}")))?;
        self.seal(&json, context)
    }

    /// Opens credentials sealed by [`Keyring::seal_credentials`].
    pub fn open_credentials(&self, sealed: &SealedSecret, context: &[u8]) -> Result<Credentials> {
        let bytes = self.open(sealed, context)?;
        serde_json::from_slice(&bytes)
            .map(Credentials)
            .map_err(|_| Error::Config { message: "a stored secret is not a credentials object".into() })
    }

    /// Whether `sealed` was sealed by a key other than the active one (and
    /// should be sealed again to finish a rotation).
    pub fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        sealed.key_id != self.active
    }
}

/// An encrypted value: the id of the key that sealed it, the nonce and the
/// ciphertext with its tag. Its text form is `v1.<key id>.<base64url>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    key_id: String,
    data: Vec<u8>,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret(key {})", self.key_id)
    }
}

impl SealedSecret {
    /// The id of the key that sealed it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The stored form, `v1.<key id>.<base64url of nonce ‖ ciphertext>`.
    pub fn encode(&self) -> String {
        format!("v1.{}.{}", self.key_id, URL_SAFE_NO_PAD.encode(&self.data))
    }

    /// Parses the stored form. [`Error::Storage`] when it is not one.
    pub fn decode(text: &str) -> Result<Self> {
        let corrupt =
            || Error::Storage { message: "a stored secret is malformed".into(), transient: false, source: None };
        let rest = text.strip_prefix("v1.").ok_or_else(corrupt)?;
        let (key_id, b64) = rest.split_once('.').ok_or_else(corrupt)?;
        check_key_id(key_id).map_err(|_| corrupt())?;
        let data = URL_SAFE_NO_PAD.decode(b64).map_err(|_| corrupt())?;
        if data.len() < NONCE_LEN + 16 {
            return Err(corrupt());
        }
        Ok(Self { key_id: key_id.to_owned(), data })
    }
}

impl Serialize for SealedSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for SealedSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SealedSecret::decode(&text).map_err(serde::de::Error::custom)
    }
}

/// Provider credentials (tokens, app secrets): a flat map of names to
/// string values. Never printed: `Debug` shows `Credentials([redacted])`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Credentials(BTreeMap<String, String>);

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

impl Credentials {
    /// No credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// One value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The names (never the values), for "which credentials are set".
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks names (1–64 of `a-z0-9_`), values (≤ 8 KiB, no control characters) and count (≤ 32).
    pub fn validate(&self) -> Result<()> {
        if self.0.len() > 32 {
            return Err(Error::validation("credentials", "at most 32 entries"));
        }
        for (k, v) in &self.0 {
            let name_ok = (1..=64).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(Error::validation("credentials", "names must be 1 to 64 of a-z, 0-9, _"));
            }
            if v.len() > 8 * 1024 || v.chars().any(char::is_control) {
                return Err(Error::validation(
                    format!("credentials.{k}"),
                    "must be at most 8 KiB without control characters",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_rotate() {
        let old = SecretKey::generate("old").unwrap();
        let ring_old = Keyring::new(old.clone());
        let sealed = ring_old.seal(b"token", b"ctx").unwrap();
        assert_eq!(sealed.key_id(), "old");
        // Two seals of the same plaintext differ (random nonces).
        assert_ne!(sealed, ring_old.seal(b"token", b"ctx").unwrap());

        let ring_new = Keyring::new(SecretKey::generate("new").unwrap()).with_old_key(old).unwrap();
        assert_eq!(ring_new.open(&sealed, b"ctx").unwrap(), b"token");
        assert!(ring_new.needs_reseal(&sealed));
        let resealed = ring_new.seal(&ring_new.open(&sealed, b"ctx").unwrap(), b"ctx").unwrap();
        assert!(!ring_new.needs_reseal(&resealed));

        // A key that is gone cannot open; the error names the key id only.
        let e = Keyring::new(SecretKey::generate("other").unwrap()).open(&sealed, b"ctx").unwrap_err();
        assert!(e.to_string().contains("\"old\""), "{e}");
    }

    #[test]
    fn tampering_and_context_are_detected() {
        let ring = Keyring::new(SecretKey::generate("k").unwrap());
        let sealed = ring.seal(b"secret", b"channel:1").unwrap();
        assert!(ring.open(&sealed, b"channel:2").is_err());
        let mut bytes = sealed.clone();
        let last = bytes.data.len() - 1;
        bytes.data[last] ^= 1;
        assert!(ring.open(&bytes, b"channel:1").is_err());
        let text = sealed.encode();
        assert_eq!(SealedSecret::decode(&text).unwrap(), sealed);
        for bad in ["", "v2.k.AAAA", "v1.k", "v1.K!.AAAA", "v1.k.AAAA"] {
            assert!(SealedSecret::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_parse_without_echoing_material() {
        let key = SecretKey::generate("prod-2026").unwrap();
        let parsed = SecretKey::parse(&key.export()).unwrap();
        assert_eq!(parsed.key, key.key);
        let ring =
            Keyring::parse(&format!("{}, {}", key.export(), SecretKey::generate("old").unwrap().export())).unwrap();
        assert_eq!(ring.active_key_id(), "prod-2026");
        let e = SecretKey::parse("k:c2hvcnQ=").unwrap_err().to_string();
        assert!(e.contains("32 bytes") && !e.contains("c2hvcnQ"), "{e}");
        assert!(SecretKey::parse("no-colon").is_err());
        assert!(Keyring::parse("").is_err());
        let dup = format!("{},{}", key.export(), key.export());
        assert!(Keyring::parse(&dup).is_err());
        assert_eq!(format!("{key:?}"), "SecretKey(prod-2026)");
        assert!(!format!("{ring:?}").contains(&key.export()[10..]));
    }

    #[test]
    fn credentials_are_validated_and_never_printed() {
        let mut c = Credentials::new();
        c.insert("access_token", "abc");
        assert!(c.validate().is_ok());
        assert_eq!(format!("{c:?}"), "Credentials([redacted])");
        c.insert("Bad Name", "x");
        assert!(c.validate().is_err());
        let mut c = Credentials::new();
        c.insert("t", "a\u{0}b");
        assert!(c.validate().is_err());
        let too_big = vec![0u8; MAX_SECRET_BYTES + 1];
        assert!(Keyring::new(SecretKey::generate("k").unwrap()).seal(&too_big, b"").is_err());
    }
}

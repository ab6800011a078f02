//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! A secret is `whsec_` followed by the base64 of 24–64 random bytes. The
//! signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the
//! signature is HMAC-SHA256 with the decoded secret, base64-encoded and
//! prefixed with the version: `v1,<base64>`. While a secret is being
//! rotated, both secrets sign and the `webhook-signature` header carries
//! both signatures, separated by a space.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

use crm_core::{Error, Result};

/// The `whsec_` prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret.
pub const SECRET_BYTES: usize = 24;

/// A signing secret. Its `Debug` prints `[redacted]`, and it is never
/// `Display`ed: only [`SigningSecret::expose`] gives its text, to show it once.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl SigningSecret {
    /// A new random secret ([`SECRET_BYTES`] bytes from the OS).
    pub fn generate() -> Result<Self> {
        let mut key = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut key).map_err(|e| Error::Config { message: format!("no randomness for a secret: {e}") })?;
        Ok(Self(key))
    }

    /// Parses `whsec_<base64>` (the key must decode to 24–64 bytes).
    /// [`Error::Validation`] on `secret` otherwise; the message never
    /// repeats the input.
    pub fn parse(text: &str) -> Result<Self> {
        let b64 =
            text.strip_prefix(SECRET_PREFIX).ok_or_else(|| Error::validation("secret", "must start with whsec_"))?;
        let key = STANDARD.decode(b64).map_err(|_| Error::validation("secret", "is not valid base64 after whsec_"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(Error::validation("secret", "must hold 24 to 64 bytes"));
        }
        Ok(Self(key))
    }

    /// The `whsec_…` text (to show once, or to seal).
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The signature of one message: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(msg_id, timestamp, body)))
    }

    /// The raw HMAC of `id.timestamp.body`.
    pub(crate) fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length: new_from_slice cannot fail here.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return [0; 32],
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

/// The `webhook-signature` header value for `secrets` (the current one
/// first, then the one being rotated out): their signatures joined by spaces.
pub fn signature_header(secrets: &[&SigningSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|s| s.sign(msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_generate_and_stay_redacted() {
        let s = SigningSecret::generate().expect("random");
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&text).expect("parse"), s);
        assert_eq!(format!("{s:?}"), "SigningSecret([redacted])");
        for bad in ["", "whsec_", "whsec_!!!", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_YWJj"] {
            let e = SigningSecret::parse(bad).expect_err(bad);
            assert!(matches!(e, Error::Validation { .. }), "{bad}: {e}");
        }
        let two = SigningSecret::generate().expect("random");
        let header = signature_header(&[&s, &two], "msg_1", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert_ne!(s.sign("msg_1", 1, b"{}"), two.sign("msg_1", 1, b"{}"));
    }
}

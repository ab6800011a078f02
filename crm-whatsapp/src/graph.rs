//! The Graph API's answers: success bodies, and its errors mapped into crm's kinds.

use crm_core::Error;
use serde::Deserialize;
use std::time::Duration;

use crate::PROVIDER;

/// Meta's code for "throughput limit reached" (the number's messages per second).
pub const THROUGHPUT: i64 = 130429;
/// Meta's code for "too many messages to this user in a short time" (the pair rate).
pub const PAIR_RATE: i64 = 131056;
/// Meta's code for "more than 24 hours since the user last wrote".
pub const REENGAGEMENT: i64 = 131047;
/// Meta's code for "message undeliverable".
pub const UNDELIVERABLE: i64 = 131026;
/// Meta's code for an invalid or expired access token.
pub const TOKEN: i64 = 190;

/// The wait after a pair-rate error when Meta gives none (its pair rate is
/// about one message every 6 seconds).
pub const PAIR_RATE_WAIT: Duration = Duration::from_secs(6);
/// The wait after a throughput error when Meta gives none.
pub const THROUGHPUT_WAIT: Duration = Duration::from_secs(1);
/// The wait before retrying after the token was refused (someone must fix it).
pub const TOKEN_WAIT: Duration = Duration::from_secs(300);

/// Codes whose failure may pass on its own: Meta's "something went wrong",
/// "service unavailable", temporary API errors.
const TRANSIENT: &[i64] = &[1, 2, 17, 341, 131000, 131016, 133004];

/// Codes that ask to slow down: throughput, "too many calls", the account's rate limit.
const THROTTLED: &[i64] = &[THROUGHPUT, 4, 80007];

/// Codes that mean the token or its permissions are wrong: the channel's
/// configuration must change.
const CONFIGURATION: &[i64] = &[TOKEN, 102, 10, 200, 3];

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: GraphError,
}

/// Meta's error object.
#[derive(Debug, Deserialize)]
pub(crate) struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
    #[serde(default)]
    pub error_user_msg: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SendResponse {
    #[serde(default)]
    pub messages: Vec<SentId>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SentId {
    pub id: String,
}

/// How an answer is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Try again later.
    Transient,
    /// Slow down: the channel is throttled.
    Throttled,
    /// The token or its permissions: the channel is misconfigured.
    Configuration,
    /// Will never succeed as sent.
    Permanent,
}

/// What Meta said, without anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status.
    pub status: u16,
    /// Meta's error code, when the body had one.
    pub code: Option<i64>,
    /// Meta's message and details, cleaned and bounded.
    pub reason: String,
    /// How to act on it.
    pub class: Class,
    /// How long to wait before trying again.
    pub retry_after: Option<Duration>,
}

fn tidy(s: &str, secret: &str) -> String {
    let s = if secret.len() >= 8 { s.replace(secret, "[redacted]") } else { s.to_owned() };
    s.chars().filter(|c| !c.is_control()).take(500).collect()
}

/// Reads Meta's error answer. `secret` (the access token) is scrubbed from
/// anything kept, should Meta ever echo it.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8], secret: &str) -> Failure {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body).ok().map(|e| e.error);
    let code = parsed.as_ref().and_then(|e| e.code);
    let reason = match &parsed {
        Some(e) => {
            let details = e.error_data.as_ref().and_then(|d| d.details.as_deref()).or(e.error_user_msg.as_deref());
            match details {
                Some(d) if !d.is_empty() && d != e.message => format!("{} ({d})", e.message),
                _ => e.message.clone(),
            }
        }
        None => format!("HTTP {status} with an unreadable body"),
    };
    let reason = tidy(&reason, secret);
    let (class, wait) = match code {
        Some(c) if THROTTLED.contains(&c) => (Class::Throttled, Some(retry_after.unwrap_or(THROUGHPUT_WAIT))),
        Some(PAIR_RATE) => (Class::Transient, Some(retry_after.unwrap_or(PAIR_RATE_WAIT).max(PAIR_RATE_WAIT))),
        Some(c) if CONFIGURATION.contains(&c) => (Class::Configuration, Some(TOKEN_WAIT)),
        Some(c) if TRANSIENT.contains(&c) => (Class::Transient, retry_after),
        _ if status == 401 => (Class::Configuration, Some(TOKEN_WAIT)),
        _ if status == 429 => (Class::Throttled, Some(retry_after.unwrap_or(Duration::from_secs(60)))),
        _ if status >= 500 || status == 408 => (Class::Transient, retry_after),
        _ => (Class::Permanent, None),
    };
    Failure { status, code, reason, class, retry_after: wait }
}

impl Failure {
    /// crm's error for it:
    /// - throughput (130429) and HTTP 429: [`Error::RateLimited`], so the
    ///   dispatcher throttles the channel and waits;
    /// - pair rate (131056), 5xx, Meta's temporary codes: a transient
    ///   [`Error::Provider`] with the wait;
    /// - token problems (190, HTTP 401, permissions): a transient provider
    ///   error whose message starts with "configuration error" (the messages
    ///   wait for the token to be fixed; the channel's health says unhealthy);
    /// - 131047: permanent, "needs a template";
    /// - anything else (131026 undeliverable, 132000 parameter mismatch, …):
    ///   permanent with Meta's code and reason.
    pub fn into_error(self) -> Error {
        let code = Some(self.code.map(|c| c.to_string()).unwrap_or_else(|| format!("http_{}", self.status)));
        let provider = PROVIDER.into();
        match self.class {
            Class::Throttled => Error::RateLimited { retry_after: self.retry_after.unwrap_or(THROUGHPUT_WAIT) },
            Class::Transient => Error::Provider {
                provider,
                transient: true,
                code,
                message: self.reason,
                retry_after: self.retry_after,
                source: None,
            },
            Class::Configuration => Error::Provider {
                provider,
                transient: true,
                code,
                message: format!(
                    "configuration error: Meta refused the channel's access token or its permissions ({}); \
                     update the channel's credentials",
                    self.reason
                ),
                retry_after: self.retry_after,
                source: None,
            },
            Class::Permanent if self.code == Some(REENGAGEMENT) => Error::Provider {
                provider,
                transient: false,
                code,
                message: format!(
                    "needs a template: the contact has not written in the last 24 hours, so WhatsApp only \
                     delivers an approved template ({})",
                    self.reason
                ),
                retry_after: None,
                source: None,
            },
            Class::Permanent => Error::Provider {
                provider,
                transient: false,
                code,
                message: self.reason,
                retry_after: None,
                source: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: i64, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": { "message": message, "type": "OAuthException", "code": code,
                       "error_data": { "messaging_product": "whatsapp", "details": "more" }, "fbtrace_id": "A1" }
        }))
        .unwrap()
    }

    #[test]
    fn codes_map_to_kinds() {
        let f = classify(400, None, &body(131047, "Re-engagement message"), "tok");
        assert_eq!(f.class, Class::Permanent);
        let e = f.into_error();
        assert!(e.to_string().contains("needs a template") && e.is_permanent(), "{e}");
        assert!(matches!(classify(400, None, &body(130429, "x"), "").into_error(), Error::RateLimited { .. }));
        let pair = classify(400, None, &body(131056, "x"), "").into_error();
        assert!(matches!(pair, Error::Provider { transient: true, retry_after: Some(d), .. } if d >= PAIR_RATE_WAIT));
        let tok = classify(401, None, &body(190, "Error validating access token"), "").into_error();
        assert!(tok.to_string().contains("configuration error"), "{tok}");
        let undeliverable = classify(400, None, &body(131026, "Message undeliverable"), "").into_error();
        assert!(
            matches!(&undeliverable, Error::Provider { transient: false, code: Some(c), .. } if c == "131026"),
            "{undeliverable}"
        );
        let bad_gateway = classify(502, None, b"<html>", "").into_error();
        assert!(bad_gateway.is_transient());
        assert!(matches!(bad_gateway, Error::Provider { code: Some(c), .. } if c == "http_502"));
        let wait = Duration::from_secs(7);
        assert!(
            matches!(classify(429, Some(wait), b"{}", "").into_error(), Error::RateLimited { retry_after } if retry_after == wait)
        );
    }

    #[test]
    fn the_token_is_scrubbed() {
        let f = classify(400, None, &body(100, "bad token EAAGsecret123 here"), "EAAGsecret123");
        assert!(!f.reason.contains("EAAGsecret123"), "{}", f.reason);
    }
}

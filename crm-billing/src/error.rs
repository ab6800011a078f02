//! Stripe's error object mapped into crm's [`Error`] kinds.
//!
//! Stripe answers errors as `{"error": {"type", "code", "decline_code",
//! "message", "param", …}}` with an HTTP status. The mapping:
//!
//! | Stripe | crm |
//! |---|---|
//! | `card_error` (402), `invalid_request_error` (400) | [`Error::Validation`] (field: `param`, else `card` / `request`; the reason names the code and decline code) |
//! | 401, 403 (the key is wrong or lacks permission) | [`Error::Config`] (no key in the message) |
//! | 404 `resource_missing` | [`Error::NotFound`] |
//! | 409 `idempotency_error` and other conflicts | [`Error::Conflict`] |
//! | 429 (rate limit) | [`Error::RateLimited`] with `Retry-After` (1 s when absent) |
//! | `api_error`, 5xx, timeouts, connection failures | [`Error::Provider`] `{ provider: "stripe", transient: true }` |

use crm_core::Error;
use serde::Deserialize;
use std::time::Duration;

/// The provider name in [`Error::Provider`].
pub const PROVIDER: &str = "stripe";

/// Stripe's error object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StripeError {
    /// `api_error`, `card_error`, `idempotency_error`, `invalid_request_error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A short code (`resource_missing`, `card_declined`, `rate_limit`, …).
    #[serde(default)]
    pub code: Option<String>,
    /// The issuer's reason for a declined card.
    #[serde(default)]
    pub decline_code: Option<String>,
    /// A human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// The parameter the error is about.
    #[serde(default)]
    pub param: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: StripeError,
}

impl StripeError {
    /// Parses an error body; `None` when it is not Stripe's envelope.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Envelope>(body).ok().map(|e| e.error)
    }
}

/// Removes anything shaped like a Stripe key (`sk_…`, `rk_…`, `pk_…`,
/// `whsec_…`) from a provider message.
pub fn redact(message: &str) -> String {
    message
        .split(' ')
        .map(|w| {
            let bare = w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
            if ["sk_", "rk_", "pk_", "whsec_"].iter().any(|p| bare.starts_with(p)) { "[redacted]" } else { w }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The crm error for a Stripe answer with `status` and (maybe) an error
/// object; `retry_after` from the response's `Retry-After`.
pub fn map_error(status: u16, error: Option<&StripeError>, retry_after: Option<Duration>) -> Error {
    let e = error.cloned().unwrap_or_default();
    let message = redact(e.message.as_deref().unwrap_or("no error message"));
    let code = e.code.clone();
    let detail = || {
        let mut s = message.clone();
        if let Some(c) = &e.code {
            s.push_str(&format!(" (code {c}"));
            if let Some(d) = &e.decline_code {
                s.push_str(&format!(", decline code {d}"));
            }
            s.push(')');
        }
        s
    };
    match (status, e.kind.as_str()) {
        (401, _) => Error::Config { message: "Stripe refused the secret key (401): check STRIPE_SECRET_KEY".into() },
        (403, _) => Error::Config { message: format!("the Stripe key may not do this (403): {message}") },
        (404, _) => Error::not_found("stripe object"),
        (429, _) => Error::RateLimited { retry_after: retry_after.unwrap_or(Duration::from_secs(1)) },
        (409, _) | (_, "idempotency_error") => Error::conflict("stripe request", detail()),
        (_, "card_error") | (402, _) => Error::validation(e.param.clone().unwrap_or_else(|| "card".into()), detail()),
        (400, _) | (_, "invalid_request_error") => {
            Error::validation(e.param.clone().unwrap_or_else(|| "request".into()), detail())
        }
        _ => Error::Provider {
            provider: PROVIDER.into(),
            transient: true,
            code,
            message: format!("HTTP {status}: {message}"),
            retry_after,
            source: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: &str, code: &str) -> StripeError {
        StripeError {
            kind: kind.into(),
            code: Some(code.into()),
            decline_code: Some("insufficient_funds".into()),
            message: Some("Your card has insufficient funds.".into()),
            param: None,
        }
    }

    #[test]
    fn kinds_map_as_documented() {
        let card = map_error(402, Some(&err("card_error", "card_declined")), None);
        assert!(
            matches!(&card, Error::Validation { field, reason } if field == "card" && reason.contains("insufficient_funds")),
            "{card:?}"
        );
        let auth = map_error(
            401,
            Some(&StripeError {
                message: Some("Invalid API Key provided: sk_test_****abcd".into()),
                ..Default::default()
            }),
            None,
        );
        assert!(matches!(&auth, Error::Config { message } if !message.contains("sk_test")), "{auth:?}");
        assert!(matches!(
            map_error(404, Some(&err("invalid_request_error", "resource_missing")), None),
            Error::NotFound { .. }
        ));
        let limited = map_error(429, None, Some(Duration::from_secs(7)));
        assert!(matches!(limited, Error::RateLimited { retry_after } if retry_after == Duration::from_secs(7)));
        let api = map_error(500, Some(&err("api_error", "x")), None);
        assert!(matches!(api, Error::Provider { transient: true, .. }) && api.is_transient());
        assert!(matches!(
            map_error(400, Some(&err("idempotency_error", "idempotency_key_in_use")), None),
            Error::Conflict { .. }
        ));
        let bad = map_error(
            400,
            Some(&StripeError {
                kind: "invalid_request_error".into(),
                param: Some("line_items[0][price]".into()),
                message: Some("No such price".into()),
                ..Default::default()
            }),
            None,
        );
        assert!(matches!(&bad, Error::Validation { field, .. } if field == "line_items[0][price]"), "{bad:?}");
    }

    #[test]
    fn keys_never_pass_through() {
        assert_eq!(
            redact("No such key: sk_live_abc, rk_x whsec_y ok"),
            "No such key: [redacted] [redacted] [redacted] ok"
        );
        assert_eq!(
            StripeError::parse(br#"{"error":{"type":"api_error","message":"boom"}}"#).map(|e| e.kind),
            Some("api_error".into())
        );
        assert_eq!(StripeError::parse(b"<html>"), None);
    }
}

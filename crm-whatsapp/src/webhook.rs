//! Inbound Cloud API webhooks: the verification handshake, the
//! `X-Hub-Signature-256` check on the raw body, and the notification parsed
//! into crm's domain (inbound messages and status reports).
//!
//! The HTTP routes live in crm-http; everything here is pure and testable
//! without a server.

use chrono::{DateTime, TimeZone, Utc};
use crm_core::{
    InboundMessage, Interactive, MediaKind, MediaRef, MessageContent, MessageError, MessageId, MessageStatus, Pricing,
    ProviderStatus, Result,
};
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// The signature header Meta sends with every notification.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No header.
    Missing,
    /// A header that is not `sha256=<64 hex digits>` (empty, truncated, …).
    Malformed,
    /// Well-formed, but not the body's HMAC under the app secret.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "the X-Hub-Signature-256 header is missing",
            SignatureError::Malformed => "the X-Hub-Signature-256 header is not sha256=<64 hex digits>",
            SignatureError::Mismatch => "the X-Hub-Signature-256 signature does not match the body",
        })
    }
}

impl std::error::Error for SignatureError {}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// `sha256=<hex>` of `body` under `app_secret` (what Meta sends; tests sign with it).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(app_secret).unwrap_or_else(|_| unreachable_key());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn unreachable_key() -> HmacSha256 {
    // HMAC takes keys of any length; this is never reached.
    <HmacSha256 as KeyInit>::new_from_slice(&[0u8; 32]).unwrap_or_else(|_| unreachable_key())
}

/// Checks `header` (the `X-Hub-Signature-256` value) against the raw `body`
/// in constant time. Call it before parsing anything.
pub fn verify_signature(app_secret: &[u8], header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_part = header.strip_prefix(b"sha256=").ok_or(SignatureError::Malformed)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut tag).map_err(|_| SignatureError::Malformed)?;
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(app_secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
}

/// The verification handshake: `Some(challenge)` to echo when `mode` is
/// `subscribe` and `token` equals `expected` (compared in constant time),
/// else `None` (answer 403).
pub fn verify_subscription<'a>(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&'a str>,
    expected: &str,
) -> Option<&'a str> {
    let token = token?;
    let same: bool = token.as_bytes().ct_eq(expected.as_bytes()).into();
    let challenge = challenge.filter(|c| !c.is_empty() && c.len() <= 256 && !c.chars().any(char::is_control))?;
    (mode == Some("subscribe") && same && !expected.is_empty()).then_some(challenge)
}

/// One status report about an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The message's `wamid`.
    pub provider_message_id: String,
    /// What happened.
    pub status: MessageStatus,
    /// When Meta says it happened.
    pub at: DateTime<Utc>,
    /// The recipient's WhatsApp id.
    pub recipient_id: Option<String>,
    /// For `failed`: Meta's first error.
    pub error: Option<MessageError>,
    /// What crm put in `biz_opaque_callback_data` (its message id).
    pub callback_data: Option<String>,
    /// Meta's `pricing` object, when present.
    pub pricing: Option<Value>,
    /// Meta's `conversation` object, when present.
    pub conversation: Option<Value>,
}

impl StatusReport {
    /// crm's pricing for the report's `pricing` and `conversation` objects
    /// (`None` when it carries neither).
    pub fn pricing(&self) -> Option<Pricing> {
        if self.pricing.is_none() && self.conversation.is_none() {
            return None;
        }
        let p = self.pricing.as_ref().unwrap_or(&Value::Null);
        let c = self.conversation.as_ref().unwrap_or(&Value::Null);
        Some(
            Pricing {
                billable: p["billable"].as_bool(),
                pricing_model: text(&p["pricing_model"]),
                category: text(&p["category"]),
                pricing_type: text(&p["type"]),
                conversation_id: text(&c["id"]),
                conversation_origin: text(&c["origin"]["type"]),
                conversation_expires_at: time(&c["expiration_timestamp"]),
            }
            .cleaned(),
        )
    }

    /// The report as crm's service applies it
    /// ([`Crm::apply_status_report`](crm_core::Crm::apply_status_report)).
    pub fn to_provider_status(&self) -> ProviderStatus {
        ProviderStatus {
            provider_message_id: self.provider_message_id.clone(),
            message_id: self.callback_data.as_deref().and_then(|c| c.parse::<MessageId>().ok()),
            status: self.status,
            at: self.at,
            error: self.error.clone(),
            pricing: self.pricing(),
        }
    }
}

/// What one `changes[]` item carried for one phone number.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Change {
    /// The business number it is for (routes it to a channel).
    pub phone_number_id: String,
    /// Messages from contacts.
    pub messages: Vec<InboundMessage>,
    /// Reports about messages the business sent.
    pub statuses: Vec<StatusReport>,
    /// Statuses of kinds crm does not track (e.g. `deleted`), skipped.
    pub skipped_statuses: usize,
}

/// A parsed notification.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Notification {
    /// One per `entry[].changes[]` of field `messages` that names a phone number.
    pub changes: Vec<Change>,
}

/// Why a body is not a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a WhatsApp Cloud API notification: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

#[derive(Deserialize)]
struct Envelope {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<RawChange>,
}

#[derive(Deserialize)]
struct RawChange {
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: Value,
}

/// Parses a notification body (after its signature was verified). Each
/// message is mapped on its own: one crm cannot model (an order, a system
/// notice, an unknown or unsupported type, or a malformed one) becomes
/// [`MessageContent::Unsupported`] with Meta's object, never dropped.
pub fn parse(body: &[u8]) -> Result<Notification, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| ParseError(clip(&e.to_string())))?;
    if envelope.object != "whatsapp_business_account" {
        return Err(ParseError(format!("object is {:?}", clip(&envelope.object))));
    }
    let mut out = Notification::default();
    for change in envelope.entry.into_iter().flat_map(|e| e.changes) {
        if change.field != "messages" {
            continue;
        }
        let v = &change.value;
        let Some(pnid) = v["metadata"]["phone_number_id"].as_str() else { continue };
        let mut c = Change { phone_number_id: pnid.to_owned(), ..Default::default() };
        let names: Vec<(&str, &str)> = v["contacts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| Some((c["wa_id"].as_str()?, c["profile"]["name"].as_str().unwrap_or(""))))
                    .collect()
            })
            .unwrap_or_default();
        for m in v["messages"].as_array().into_iter().flatten() {
            if let Some(inbound) = message(m, &names) {
                c.messages.push(inbound);
            }
        }
        for s in v["statuses"].as_array().into_iter().flatten() {
            match status(s) {
                Some(r) => c.statuses.push(r),
                None => c.skipped_statuses += 1,
            }
        }
        out.changes.push(c);
    }
    Ok(out)
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    let secs = match v {
        Value::String(s) => s.parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    Utc.timestamp_opt(secs, 0).single()
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// A bounded copy of Meta's object for an unsupported message.
fn kept(m: &Value) -> Value {
    let size = serde_json::to_string(m).map(|t| t.len()).unwrap_or(usize::MAX);
    if size <= crm_core::MAX_UNSUPPORTED_PAYLOAD_BYTES {
        m.clone()
    } else {
        json!({ "type": m["type"], "id": m["id"], "truncated": true })
    }
}

fn unsupported(m: &Value, provider_type: &str, summary: String) -> MessageContent {
    let provider_type: String = provider_type.chars().filter(|c| !c.is_control()).take(64).collect();
    let provider_type = if provider_type.is_empty() { "unknown".to_owned() } else { provider_type };
    MessageContent::Unsupported {
        provider_type,
        summary: summary.chars().take(crm_core::MAX_TEXT_LEN).collect(),
        payload: kept(m),
    }
}

/// Maps one of Meta's message objects; `None` only when it has no sender.
fn message(m: &Value, names: &[(&str, &str)]) -> Option<InboundMessage> {
    let from = m["from"].as_str()?.to_owned();
    let kind = m["type"].as_str().unwrap_or("unknown");
    let content = content(m, kind).unwrap_or_else(|| {
        let summary = match kind {
            "order" => {
                let items = m["order"]["product_items"].as_array().map_or(0, Vec::len);
                format!("[order: {items} item(s)]")
            }
            "system" => m["system"]["body"].as_str().map_or_else(|| "[system]".to_owned(), str::to_owned),
            "unsupported" => {
                let why = m["errors"][0]["title"].as_str().or(m["errors"][0]["message"].as_str());
                format!("[unsupported message{}]", why.map(|w| format!(": {w}")).unwrap_or_default())
            }
            other => format!("[{}]", clip(other)),
        };
        unsupported(m, kind, summary)
    });
    let profile_name = names.iter().find(|(wa, _)| *wa == from).map(|(_, n)| (*n).to_owned()).filter(|n| !n.is_empty());
    Some(InboundMessage {
        whatsapp_id: Some(from.clone()),
        from,
        profile_name,
        provider_message_id: text(&m["id"]),
        content,
        sent_at: time(&m["timestamp"]),
        // A reply quotes the message in `context.id` (a forwarded message's
        // context has no id).
        reply_to: text(&m["context"]["id"]).filter(|id| !id.is_empty()),
    })
}

/// crm content for the types it models; `None` for the others (and for
/// malformed objects of a modelled type).
fn content(m: &Value, kind: &str) -> Option<MessageContent> {
    let media = |k: MediaKind| -> Option<MessageContent> {
        let o = &m[kind];
        Some(MessageContent::Media {
            kind: k,
            media: MediaRef { location: o["id"].as_str()?.to_owned(), mime_type: text(&o["mime_type"]) },
            caption: text(&o["caption"])
                .filter(|c| !c.is_empty() && !matches!(k, MediaKind::Audio | MediaKind::Sticker)),
            filename: text(&o["filename"]).filter(|f| !f.is_empty()),
        })
    };
    let content = match kind {
        "text" => MessageContent::text(m["text"]["body"].as_str()?),
        "image" => media(MediaKind::Image)?,
        "audio" => media(MediaKind::Audio)?,
        "video" => media(MediaKind::Video)?,
        "document" => media(MediaKind::Document)?,
        "sticker" => media(MediaKind::Sticker)?,
        "location" => MessageContent::Location {
            latitude: m["location"]["latitude"].as_f64()?,
            longitude: m["location"]["longitude"].as_f64()?,
            name: text(&m["location"]["name"]),
            address: text(&m["location"]["address"]),
        },
        "contacts" => MessageContent::Contacts { contacts: m["contacts"].as_array()?.clone() },
        "reaction" => MessageContent::Reaction {
            message_id: m["reaction"]["message_id"].as_str()?.to_owned(),
            emoji: m["reaction"]["emoji"].as_str().unwrap_or("").to_owned(),
        },
        "interactive" => {
            let i = &m["interactive"];
            let reply = match i["type"].as_str()? {
                "button_reply" => &i["button_reply"],
                "list_reply" => &i["list_reply"],
                _ => return None,
            };
            MessageContent::Interactive {
                interactive: Interactive::Reply {
                    id: reply["id"].as_str()?.to_owned(),
                    title: reply["title"].as_str().unwrap_or("").to_owned(),
                },
            }
        }
        // A tap on a template's quick-reply button.
        "button" => MessageContent::Interactive {
            interactive: Interactive::Reply {
                id: m["button"]["payload"].as_str()?.to_owned(),
                title: m["button"]["text"].as_str().unwrap_or("").to_owned(),
            },
        },
        _ => return None,
    };
    // Content that crm's limits refuse (an over-long body, …) is kept as unsupported.
    content.validate().ok().map(|()| content)
}

fn status(s: &Value) -> Option<StatusReport> {
    let status = match s["status"].as_str()? {
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" => MessageStatus::Read,
        "failed" => MessageStatus::Failed,
        _ => return None,
    };
    let error = (status == MessageStatus::Failed).then(|| {
        let e = &s["errors"][0];
        let reason = [e["title"].as_str(), e["error_data"]["details"].as_str(), e["message"].as_str()]
            .into_iter()
            .flatten()
            .find(|r| !r.is_empty())
            .unwrap_or("failed without a reason")
            .to_owned();
        MessageError { code: e["code"].as_i64().map(|c| c.to_string()), reason }
    });
    Some(StatusReport {
        provider_message_id: s["id"].as_str()?.to_owned(),
        status,
        at: time(&s["timestamp"]).unwrap_or_else(Utc::now),
        recipient_id: text(&s["recipient_id"]),
        error,
        callback_data: text(&s["biz_opaque_callback_data"]),
        pricing: s.get("pricing").cloned(),
        conversation: s.get("conversation").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matrix() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let good = sign(b"app-secret", body);
        assert_eq!(verify_signature(b"app-secret", Some(good.as_bytes()), body), Ok(()));
        let wrong_key = sign(b"other-secret", body);
        assert_eq!(verify_signature(b"app-secret", Some(wrong_key.as_bytes()), body), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(b"app-secret", Some(b""), body), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(b"app-secret", Some(&good.as_bytes()[..40]), body), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(b"app-secret", None, body), Err(SignatureError::Missing));
        let no_prefix = good.trim_start_matches("sha256=");
        assert_eq!(verify_signature(b"app-secret", Some(no_prefix.as_bytes()), body), Err(SignatureError::Malformed));
        let not_hex = format!("sha256={}", "zz".repeat(32));
        assert_eq!(verify_signature(b"app-secret", Some(not_hex.as_bytes()), body), Err(SignatureError::Malformed));
        let mut tampered = body.to_vec();
        tampered[2] = b'O';
        assert_eq!(verify_signature(b"app-secret", Some(good.as_bytes()), &tampered), Err(SignatureError::Mismatch));
    }

    #[test]
    fn the_handshake() {
        let ok = verify_subscription(Some("subscribe"), Some("tok"), Some("1158201444"), "tok");
        assert_eq!(ok, Some("1158201444"));
        assert_eq!(verify_subscription(Some("subscribe"), Some("tok2"), Some("1"), "tok"), None);
        assert_eq!(verify_subscription(Some("unsubscribe"), Some("tok"), Some("1"), "tok"), None);
        assert_eq!(verify_subscription(Some("subscribe"), None, Some("1"), "tok"), None);
        assert_eq!(verify_subscription(Some("subscribe"), Some(""), Some("1"), ""), None);
        assert_eq!(verify_subscription(Some("subscribe"), Some("tok"), None, "tok"), None);
    }

    #[test]
    fn other_objects_are_refused() {
        assert!(parse(b"[]").is_err());
        assert!(parse(br#"{"object":"page","entry":[]}"#).is_err());
        assert_eq!(parse(br#"{"object":"whatsapp_business_account"}"#).unwrap().changes.len(), 0);
    }
}

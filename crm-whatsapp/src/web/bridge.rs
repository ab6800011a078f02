//! The page-to-Rust bridge: the script injected into WhatsApp Web
//! (`web/bridge.js`, the one file that depends on WhatsApp Web's internal
//! modules) and the messages it sends back through the `__crmEmit` binding.

use serde::Deserialize;

/// The script injected into every WhatsApp Web page before its own scripts.
pub const SCRIPT: &str = include_str!("bridge.js");

/// The binding the script reports through (`Runtime.addBinding`).
pub const BINDING: &str = "__crmEmit";

/// Largest report read from the page; longer ones are dropped.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// One report of the bridge.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BridgeEvent {
    /// WhatsApp Web's modules are loaded; `version` is its release.
    Ready {
        /// `window.Debug.VERSION`.
        version: String,
    },
    /// The socket's state changed (`CONNECTED`, `UNPAIRED`, …).
    State {
        /// WhatsApp Web's state name.
        state: String,
    },
    /// The pairing screen shows a new QR code.
    Qr {
        /// The text it encodes.
        code: String,
    },
    /// A new message appeared (received, or sent from the phone).
    Message {
        /// The message (boxed: it is much larger than the other reports).
        message: Box<PageMessage>,
    },
    /// Contacts sync: the phone's contacts and one-to-one chats (in
    /// batches once connected), or one new chat or renamed contact.
    Contacts {
        /// The contacts.
        contacts: Vec<PageContact>,
    },
    /// A message's ack moved.
    Ack {
        /// The message's serialized key.
        id: Option<String>,
        /// WhatsApp's ack: -1 error, 0 pending, 1 server, 2 device, 3 read, 4 played.
        ack: Option<i64>,
    },
    /// One participant's receipt of an own group message.
    GroupReceipt {
        /// The message's serialized key.
        id: String,
        /// The participant's id (`…@c.us`).
        participant: Option<String>,
        /// 2 delivered, 3 read, 4 played.
        ack: i64,
    },
}

/// A message as the bridge reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PageMessage {
    /// Its serialized key (`false_5511…@c.us_3EB0…`).
    pub id: String,
    /// Sent by this account (from the phone or this session).
    pub from_me: bool,
    /// The chat or sender id (`…@c.us`, `…@lid`, `…@g.us`).
    pub from: Option<String>,
    /// The recipient id.
    pub to: Option<String>,
    /// In a group: the participant who sent it.
    pub author: Option<String>,
    /// WhatsApp's type (`chat`, `image`, …).
    pub kind: Option<String>,
    /// The text (for `chat`).
    pub body: Option<String>,
    /// The sender's profile name.
    pub notify_name: Option<String>,
    /// Unix seconds.
    pub timestamp: Option<i64>,
    /// The ack when reported.
    pub ack: Option<i64>,
    /// Who sent it, as far as this device knows (not for own messages).
    #[serde(default)]
    pub sender: Option<Sender>,
    /// For a media message (image, audio, voice note, video, document,
    /// sticker): what the page knows of its file (downloaded separately).
    #[serde(default)]
    pub media: Option<PageMedia>,
}

/// A contact or one-to-one chat of the phone, as the bridge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PageContact {
    /// Its WhatsApp id (`…@c.us` or `…@lid`).
    pub id: Option<String>,
    /// Its LID, when known.
    pub lid: Option<String>,
    /// Its phone-based id (`5511987654321@c.us`), when known.
    pub phone: Option<String>,
    /// The name saved on the phone (or the chat's name).
    pub name: Option<String>,
    /// The profile name the user chose.
    pub push_name: Option<String>,
}

/// A media message's file as the bridge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PageMedia {
    /// Its MIME type.
    pub mimetype: Option<String>,
    /// Its file name (documents).
    pub filename: Option<String>,
    /// Its caption.
    pub caption: Option<String>,
    /// Its size in bytes, when reported.
    pub size: Option<u64>,
}

/// The ids of a message's sender the page knows: WhatsApp addresses many
/// users by a LID (`…@lid`) instead of their phone-based id (`…@c.us`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sender {
    /// The sender's LID, when known.
    pub lid: Option<String>,
    /// The sender's phone-based id (`5511987654321@c.us`), when known.
    pub phone: Option<String>,
}

impl BridgeEvent {
    /// Reads one report; `None` for an oversized or unreadable one.
    pub fn parse(payload: &str) -> Option<Self> {
        if payload.len() > MAX_EVENT_BYTES {
            return None;
        }
        serde_json::from_str(payload).ok()
    }
}

/// A call of `window.__crm.<function>(args…)` with the arguments as JSON
/// literals (so no text from a message can break out of its string).
pub fn call(function: &str, args: &[serde_json::Value]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    format!("window.__crm.{function}({})", args.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse_and_calls_quote_their_arguments() {
        assert_eq!(
            BridgeEvent::parse(r#"{"type":"state","state":"CONNECTED"}"#),
            Some(BridgeEvent::State { state: "CONNECTED".into() })
        );
        assert_eq!(BridgeEvent::parse(r#"{"type":"nope"}"#), None);
        assert_eq!(BridgeEvent::parse(&" ".repeat(MAX_EVENT_BYTES + 1)), None);
        let js = call("sendText", &["1@c.us".into(), "\"); alert(1); (\"".into()]);
        assert_eq!(js, r#"window.__crm.sendText("1@c.us", "\"); alert(1); (\"")"#);
    }

    #[test]
    fn the_script_declares_every_module_it_uses() {
        // Every `mod('X')` in the bridge names a module listed (and
        // commented) in MODULES: the one-file rule is checked here.
        let declared: Vec<&str> = SCRIPT
            .split("const MODULES = {")
            .nth(1)
            .and_then(|s| s.split("};").next())
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
            .filter(|k| k.starts_with("WAWeb"))
            .collect();
        let used: Vec<&str> = SCRIPT.split("mod('").skip(1).filter_map(|s| s.split('\'').next()).collect();
        assert!(declared.len() >= 7, "{declared:?}");
        for u in &used {
            assert!(declared.contains(u), "{u} is used but not declared");
        }
        for d in &declared {
            assert!(used.contains(d), "{d} is declared but never used");
        }
    }
}

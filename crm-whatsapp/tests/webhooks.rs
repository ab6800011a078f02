//! Every webhook fixture (Meta's documented shapes) parsed into crm's domain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crm_core::{Interactive, MediaKind, MessageContent, MessageStatus};
use crm_whatsapp::webhook::{self, Change};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/webhooks/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn change(name: &str) -> Change {
    let n = webhook::parse(&fixture(name)).unwrap();
    assert_eq!(n.changes.len(), 1, "{name}");
    let c = n.changes.into_iter().next().unwrap();
    assert_eq!(c.phone_number_id, "106540352242922");
    c
}

fn content(name: &str) -> MessageContent {
    let c = change(name);
    assert_eq!(c.messages.len(), 1, "{name}");
    let m = &c.messages[0];
    assert_eq!(m.from, "16505551234");
    assert_eq!(m.whatsapp_id.as_deref(), Some("16505551234"));
    assert!(m.provider_message_id.as_deref().unwrap().starts_with("wamid."));
    assert_eq!(m.sent_at.unwrap().timestamp(), 1_749_416_383);
    m.content.validate().unwrap();
    m.content.clone()
}

#[test]
fn every_message_type_maps_into_the_domain() {
    assert_eq!(content("text"), MessageContent::text("Does it come in another color?"));
    assert_eq!(change("text").messages[0].reply_to, None, "a message that quotes nothing");
    assert_eq!(content("text_reply"), MessageContent::text("Yes, the blue one please"));
    assert_eq!(
        change("text_reply").messages[0].reply_to.as_deref(),
        Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDNTgzOTkyNTNBNzdBNjkzNTUA"),
        "a reply's context.id is the quoted message"
    );
    assert_eq!(change("text").messages[0].profile_name.as_deref(), Some("Sheena Nelson"));
    for (name, kind, id) in [
        ("image", MediaKind::Image, "1003383421387256"),
        ("audio", MediaKind::Audio, "1008686461429587"),
        ("video", MediaKind::Video, "1216185369850225"),
        ("document", MediaKind::Document, "1086237389871025"),
        ("sticker", MediaKind::Sticker, "1228766025193426"),
    ] {
        match content(name) {
            MessageContent::Media { kind: k, media, caption, filename } => {
                assert_eq!((k, media.location.as_str()), (kind, id), "{name}");
                assert!(media.mime_type.is_some(), "{name}");
                if name == "document" {
                    assert_eq!((caption.as_deref(), filename.as_deref()), (Some("Receipt"), Some("receipt.pdf")));
                }
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(
        matches!(content("location"), MessageContent::Location { latitude, name: Some(n), .. } if latitude > 37.0 && n == "Meta Headquarters")
    );
    assert!(
        matches!(content("contacts"), MessageContent::Contacts { contacts } if contacts[0]["name"]["first_name"] == "Barbara")
    );
    let reply = |id: &str, title: &str| MessageContent::Interactive {
        interactive: Interactive::Reply { id: id.into(), title: title.into() },
    };
    assert_eq!(content("interactive_button_reply"), reply("yes", "Sim"));
    assert_eq!(content("interactive_list_reply"), reply("priority_express", "Express Shipping"));
    assert_eq!(content("button"), reply("Stop promotions", "Stop promotions"));
    assert!(
        matches!(content("reaction"), MessageContent::Reaction { emoji, message_id } if emoji == "👍" && message_id.starts_with("wamid."))
    );
}

#[test]
fn orders_system_unsupported_and_unknown_types_are_kept() {
    for (name, provider, summary) in [
        ("order", "order", "[order: 2 item(s)]"),
        ("system", "system", "User A changed from 16505551234 to 16505559999"),
        ("unsupported", "unsupported", "[unsupported message: Message type unknown]"),
        ("unknown_type", "hologram", "[hologram]"),
    ] {
        match content(name) {
            MessageContent::Unsupported { provider_type, summary: s, payload } => {
                assert_eq!((provider_type.as_str(), s.as_str()), (provider, summary));
                assert_eq!(payload["type"], provider, "Meta's object is kept");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn every_status_maps_with_errors_pricing_and_conversation() {
    let s = change("status_sent").statuses.remove(0);
    assert_eq!(s.status, MessageStatus::Sent);
    assert_eq!(s.at.timestamp(), 1_750_263_773);
    assert_eq!(s.pricing.as_ref().unwrap()["category"], "utility");
    assert!(s.conversation.as_ref().unwrap()["id"].is_string());
    assert_eq!(s.callback_data.as_deref(), Some("0193a9f2-0000-7000-8000-000000000000"));
    let p = s.pricing().unwrap();
    assert_eq!(
        (p.billable, p.pricing_model.as_deref(), p.category.as_deref(), p.pricing_type.as_deref()),
        (Some(true), Some("PMP"), Some("utility"), Some("regular"))
    );
    assert_eq!(
        (p.conversation_id.as_deref(), p.conversation_origin.as_deref()),
        (Some("c0fb2ab0e2d8f7f45c9ec4a8bdf6a321"), Some("utility"))
    );
    assert_eq!(p.conversation_expires_at.map(|t| t.timestamp()), Some(1_750_350_173));
    let applied = s.to_provider_status();
    assert_eq!(applied.message_id.map(|m| m.to_string()).as_deref(), Some("0193a9f2-0000-7000-8000-000000000000"));
    assert_eq!(applied.pricing, Some(p));
    assert_eq!(change("status_read").statuses[0].pricing(), None, "a read report carries no pricing");
    assert_eq!(change("status_delivered").statuses[0].status, MessageStatus::Delivered);
    assert_eq!(change("status_read").statuses[0].status, MessageStatus::Read);
    let failed = change("status_failed").statuses.remove(0);
    assert_eq!(failed.status, MessageStatus::Failed);
    let e = failed.error.unwrap();
    assert_eq!((e.code.as_deref(), e.reason.as_str()), (Some("131026"), "Message undeliverable"));
}

#[test]
fn fixtures_are_what_meta_signs() {
    // The signature covers the exact bytes: any re-serialisation breaks it.
    let body = fixture("text");
    let signature = webhook::sign(b"app-secret", &body);
    assert!(webhook::verify_signature(b"app-secret", Some(signature.as_bytes()), &body).is_ok());
    let reparsed = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).unwrap()).unwrap();
    assert!(webhook::verify_signature(b"app-secret", Some(signature.as_bytes()), &reparsed).is_err());
}

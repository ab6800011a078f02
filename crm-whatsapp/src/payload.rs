//! crm's message content in the Cloud API's `POST /{phone-number-id}/messages` shape.

use crm_core::{Error, Interactive, MediaKind, MediaRef, MessageContent, OutboundMessage, Result};
use serde_json::{Map, Value, json};

/// Options of the body that do not come from the content itself.
#[derive(Debug, Clone, Default)]
pub struct BodyOptions {
    /// Ask for a preview of the first link of a text message.
    pub link_preview: bool,
    /// The provider id (`wamid.…`) of the message this one replies to.
    pub reply_to: Option<String>,
}

/// The recipient as the Cloud API wants it: the WhatsApp id when known (for
/// older Brazilian numbers it lacks the 9th digit), else the phone's digits.
pub fn recipient(message: &OutboundMessage) -> String {
    match &message.whatsapp_id {
        Some(wa) if !wa.is_empty() => wa.clone(),
        _ => message.to.as_str().trim_start_matches('+').to_owned(),
    }
}

/// The JSON body that sends `message`. [`Error::Validation`] for content the
/// Cloud API cannot send (an inbound-only reply, media kept in crm's store,
/// a message of an unknown provider type).
pub fn message_body(message: &OutboundMessage, options: &BodyOptions) -> Result<Value> {
    let mut body = Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    body.insert("to".into(), json!(recipient(message)));
    let (kind, object) = content(&message.content, options)?;
    body.insert("type".into(), json!(kind));
    body.insert(kind.into(), object);
    if let Some(id) = &options.reply_to {
        body.insert("context".into(), json!({ "message_id": id }));
    }
    // Echoed back in status webhooks: ties a report to crm's message even
    // before the send's answer (the wamid) is recorded.
    body.insert("biz_opaque_callback_data".into(), json!(message.message_id.to_string()));
    Ok(Value::Object(body))
}

pub(crate) fn media_kind(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    }
}

/// `{"link": …}` for a URL, `{"id": …}` for a Cloud media id.
fn media_object(media: &MediaRef) -> Result<Map<String, Value>> {
    let loc = media.location.as_str();
    let mut m = Map::new();
    if loc.starts_with("https://") || loc.starts_with("http://") {
        m.insert("link".into(), json!(loc));
    } else if !loc.is_empty() && loc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        m.insert("id".into(), json!(loc));
    } else {
        return Err(Error::validation(
            "content.media.location",
            "the Cloud API sends media by https link or by a media id it issued; media kept in crm cannot be sent yet",
        ));
    }
    Ok(m)
}

fn content(content: &MessageContent, options: &BodyOptions) -> Result<(&'static str, Value)> {
    Ok(match content {
        MessageContent::Text { body } => ("text", json!({ "body": body, "preview_url": options.link_preview })),
        MessageContent::Media { kind, media, caption, filename } => {
            let mut m = media_object(media)?;
            if let Some(c) = caption {
                m.insert("caption".into(), json!(c));
            }
            if let (MediaKind::Document, Some(f)) = (kind, filename) {
                m.insert("filename".into(), json!(f));
            }
            (media_kind(*kind), Value::Object(m))
        }
        MessageContent::Location { latitude, longitude, name, address } => {
            let mut m = Map::new();
            m.insert("latitude".into(), json!(latitude));
            m.insert("longitude".into(), json!(longitude));
            if let Some(n) = name {
                m.insert("name".into(), json!(n));
            }
            if let Some(a) = address {
                m.insert("address".into(), json!(a));
            }
            ("location", Value::Object(m))
        }
        MessageContent::Contacts { contacts } => ("contacts", json!(contacts)),
        MessageContent::Reaction { message_id, emoji } => {
            ("reaction", json!({ "message_id": message_id, "emoji": emoji }))
        }
        MessageContent::Interactive { interactive } => ("interactive", interactive_object(interactive)?),
        MessageContent::Template { name, language, variables, .. } => {
            ("template", template_object(name, language, variables)?)
        }
        other @ MessageContent::Unsupported { .. } => {
            return Err(Error::validation(
                "content.type",
                format!("the Cloud API cannot send {} messages", other.kind().as_str()),
            ));
        }
    })
}

fn interactive_object(interactive: &Interactive) -> Result<Value> {
    Ok(match interactive {
        Interactive::Buttons { body, buttons } => {
            let buttons: Vec<Value> =
                buttons.iter().map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } })).collect();
            json!({ "type": "button", "body": { "text": body }, "action": { "buttons": buttons } })
        }
        Interactive::List { body, button, sections } => {
            let sections: Vec<Value> = sections
                .iter()
                .map(|s| {
                    let rows: Vec<Value> = s
                        .rows
                        .iter()
                        .map(|r| {
                            let mut row = json!({ "id": r.id, "title": r.title });
                            if let Some(d) = &r.description {
                                row["description"] = json!(d);
                            }
                            row
                        })
                        .collect();
                    let mut section = json!({ "rows": rows });
                    if !s.title.is_empty() {
                        section["title"] = json!(s.title);
                    }
                    section
                })
                .collect();
            json!({ "type": "list", "body": { "text": body }, "action": { "button": button, "sections": sections } })
        }
        Interactive::Reply { .. } => {
            return Err(Error::validation("content.interactive", "a reply is what a contact sends; it cannot be sent"));
        }
    })
}

/// What a template variable's name says about where it goes.
///
/// - `header.<name>`: a text parameter of the header; `header.image`,
///   `header.video`, `header.document`: the header's media (link or id);
///   `header.location`: `latitude,longitude`, then optionally `|name` and
///   `|address`;
/// - `button.<index>`: the dynamic suffix of the URL button at `index` (or
///   an authentication template's one-time code);
///   `quick_reply.<index>`: the payload of the quick-reply button at `index`;
///   `copy_code.<index>`: the coupon code of the copy-code button at `index`;
/// - anything else: a body parameter — positional when every body name is a
///   number (`{{1}}`, `{{2}}`, in numeric order), else named
///   (`parameter_name`).
#[derive(Debug, PartialEq, Eq)]
enum Slot<'a> {
    HeaderText(&'a str),
    HeaderMedia(&'static str),
    HeaderLocation,
    UrlButton(u8),
    QuickReply(u8),
    CopyCode(u8),
    Body(&'a str),
}

fn slot(name: &str) -> Result<Slot<'_>> {
    let index = |s: &str| {
        s.parse::<u8>()
            .ok()
            .filter(|i| *i < 10)
            .ok_or_else(|| Error::validation("content.variables", format!("{name}: button index must be 0 to 9")))
    };
    Ok(if let Some(h) = name.strip_prefix("header.") {
        match h {
            "image" => Slot::HeaderMedia("image"),
            "video" => Slot::HeaderMedia("video"),
            "document" => Slot::HeaderMedia("document"),
            "location" => Slot::HeaderLocation,
            other => Slot::HeaderText(other),
        }
    } else if let Some(i) = name.strip_prefix("button.") {
        Slot::UrlButton(index(i)?)
    } else if let Some(i) = name.strip_prefix("quick_reply.") {
        Slot::QuickReply(index(i)?)
    } else if let Some(i) = name.strip_prefix("copy_code.") {
        Slot::CopyCode(index(i)?)
    } else {
        Slot::Body(name)
    })
}

/// Meta's longest coupon code.
const MAX_COUPON_CODE: usize = 15;

/// A header location from `latitude,longitude[|name[|address]]`.
fn header_location(name: &str, value: &str) -> Result<Value> {
    let bad = || {
        Error::validation(
            "content.variables",
            format!("{name}: expected latitude,longitude (degrees), then optionally |name and |address"),
        )
    };
    let mut parts = value.splitn(3, '|');
    let (lat, lng) = parts.next().and_then(|c| c.split_once(',')).ok_or_else(bad)?;
    let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
    let lng: f64 = lng.trim().parse().map_err(|_| bad())?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
        return Err(bad());
    }
    let mut location = json!({ "latitude": lat.to_string(), "longitude": lng.to_string() });
    for (key, part) in ["name", "address"].into_iter().zip(parts) {
        let part = part.trim();
        if !part.is_empty() {
            location[key] = Value::String(part.to_owned());
        }
    }
    Ok(json!({ "type": "location", "location": location }))
}

fn is_position(name: &str) -> bool {
    !name.is_empty() && name.len() <= 3 && name.bytes().all(|b| b.is_ascii_digit())
}

fn text_parameters(names: Vec<(&str, &String)>) -> Vec<Value> {
    let positional = names.iter().all(|(n, _)| is_position(n));
    let mut names = names;
    if positional {
        names.sort_by_key(|(n, _)| n.parse::<u16>().unwrap_or(u16::MAX));
        names.into_iter().map(|(_, v)| json!({ "type": "text", "text": v })).collect()
    } else {
        names.into_iter().map(|(n, v)| json!({ "type": "text", "parameter_name": n, "text": v })).collect()
    }
}

/// The `template` object: name, language and the components carrying the
/// variables (see [`Slot`] for how names map to components).
fn template_object(
    name: &str,
    language: &str,
    variables: &std::collections::BTreeMap<String, String>,
) -> Result<Value> {
    let mut header_text = Vec::new();
    let mut header_media = None;
    let mut body = Vec::new();
    let mut buttons: Vec<(u8, &'static str, Value)> = Vec::new();
    for (k, v) in variables {
        match slot(k)? {
            Slot::HeaderText(n) => header_text.push((n, v)),
            Slot::HeaderMedia(kind) => {
                if header_media.is_some() {
                    return Err(Error::validation("content.variables", "a header has one media or location"));
                }
                let media = MediaRef { location: v.clone(), mime_type: None };
                let object = media_object(&media).map_err(|_| {
                    Error::validation("content.variables", format!("{k}: must be an https link or a media id"))
                })?;
                header_media = Some(json!({ "type": kind, kind: object }));
            }
            Slot::HeaderLocation => {
                if header_media.is_some() {
                    return Err(Error::validation("content.variables", "a header has one media or location"));
                }
                header_media = Some(header_location(k, v)?);
            }
            Slot::UrlButton(i) => buttons.push((i, "url", json!({ "type": "text", "text": v }))),
            Slot::QuickReply(i) => buttons.push((i, "quick_reply", json!({ "type": "payload", "payload": v }))),
            Slot::CopyCode(i) => {
                if v.is_empty() || v.chars().count() > MAX_COUPON_CODE {
                    return Err(Error::validation(
                        "content.variables",
                        format!("{k}: a coupon code has 1 to {MAX_COUPON_CODE} characters"),
                    ));
                }
                buttons.push((i, "copy_code", json!({ "type": "coupon_code", "coupon_code": v })));
            }
            Slot::Body(n) => body.push((n, v)),
        }
    }
    if header_media.is_some() && !header_text.is_empty() {
        return Err(Error::validation(
            "content.variables",
            "a header has either text parameters or one media or location",
        ));
    }
    let mut components = Vec::new();
    if let Some(m) = header_media {
        components.push(json!({ "type": "header", "parameters": [m] }));
    } else if !header_text.is_empty() {
        components.push(json!({ "type": "header", "parameters": text_parameters(header_text) }));
    }
    if !body.is_empty() {
        components.push(json!({ "type": "body", "parameters": text_parameters(body) }));
    }
    for (index, sub_type, parameter) in buttons {
        components.push(json!({
            "type": "button", "sub_type": sub_type, "index": index.to_string(), "parameters": [parameter]
        }));
    }
    let mut t = json!({ "name": name, "language": { "code": language } });
    if !components.is_empty() {
        t["components"] = Value::Array(components);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_core::{AccountId, MessageId, Phone};

    fn out(content: MessageContent) -> OutboundMessage {
        OutboundMessage {
            account_id: AccountId::new(),
            message_id: MessageId::new(),
            to: Phone::parse("+5511987654321").unwrap(),
            whatsapp_id: None,
            content,
            new_recipient: false,
            reply_to: None,
        }
    }

    #[test]
    fn templates_map_variables_to_components() {
        let vars =
            [("2", "R$ 10"), ("1", "Ana"), ("header.1", "Pedido"), ("button.0", "abc"), ("quick_reply.1", "stop")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let c = MessageContent::Template {
            name: "order".into(),
            language: "pt_BR".into(),
            variables: vars,
            rendered: String::new(),
        };
        let b = message_body(&out(c), &BodyOptions::default()).unwrap();
        let comps = &b["template"]["components"];
        assert_eq!(comps[0], json!({ "type": "header", "parameters": [{ "type": "text", "text": "Pedido" }] }));
        assert_eq!(
            comps[1],
            json!({ "type": "body", "parameters": [{ "type": "text", "text": "Ana" }, { "type": "text", "text": "R$ 10" }] })
        );
        assert_eq!(comps[2]["sub_type"], "url");
        assert_eq!(comps[2]["index"], "0");
        assert_eq!(comps[3]["parameters"][0], json!({ "type": "payload", "payload": "stop" }));
        assert_eq!(b["template"]["language"]["code"], "pt_BR");
        assert_eq!(b["to"], "5511987654321");
    }

    #[test]
    fn named_parameters_and_bad_names() {
        let vars = [("first_name", "Ana")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let c =
            MessageContent::Template { name: "hi".into(), language: "en".into(), variables: vars, rendered: "".into() };
        let b = message_body(&out(c), &BodyOptions::default()).unwrap();
        assert_eq!(b["template"]["components"][0]["parameters"][0]["parameter_name"], "first_name");
        let vars = [("button.x", "a")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let c =
            MessageContent::Template { name: "hi".into(), language: "en".into(), variables: vars, rendered: "".into() };
        assert!(message_body(&out(c), &BodyOptions::default()).is_err());
    }

    fn template(vars: &[(&str, &str)]) -> Result<Value> {
        let variables = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let c = MessageContent::Template { name: "t".into(), language: "pt_BR".into(), variables, rendered: "".into() };
        message_body(&out(c), &BodyOptions::default())
    }

    #[test]
    fn location_headers_copy_codes_and_one_time_codes() {
        let b = template(&[
            ("header.location", "-23.5505, -46.6333|Loja Centro|Rua Augusta, 100"),
            ("copy_code.1", "BLACK25"),
            ("button.0", "482913"),
            ("1", "482913"),
        ])
        .unwrap();
        let comps = &b["template"]["components"];
        assert_eq!(
            comps[0],
            json!({ "type": "header", "parameters": [{ "type": "location", "location": {
                "latitude": "-23.5505", "longitude": "-46.6333", "name": "Loja Centro", "address": "Rua Augusta, 100"
            } }] })
        );
        assert_eq!(comps[1]["type"], "body");
        assert_eq!(
            comps[2],
            json!({ "type": "button", "sub_type": "url", "index": "0", "parameters": [{ "type": "text", "text": "482913" }] })
        );
        assert_eq!(
            comps[3],
            json!({ "type": "button", "sub_type": "copy_code", "index": "1",
                    "parameters": [{ "type": "coupon_code", "coupon_code": "BLACK25" }] })
        );
        let bare = template(&[("header.location", "-3.1,-60.0")]).unwrap();
        assert_eq!(
            bare["template"]["components"][0]["parameters"][0]["location"],
            json!({ "latitude": "-3.1", "longitude": "-60" })
        );
        for bad in [
            vec![("header.location", "somewhere")],
            vec![("header.location", "91,0")],
            vec![("header.location", "0,181")],
            vec![("header.location", "1,2"), ("header.image", "https://x.example/a.png")],
            vec![("header.location", "1,2"), ("header.video", "https://x.example/a.mp4")],
            vec![("header.location", "1,2"), ("header.1", "Pedido")],
            vec![("copy_code.0", "")],
            vec![("copy_code.0", "SIXTEEN-CHARS-XX")],
            vec![("copy_code.10", "A")],
        ] {
            let err = template(&bad).unwrap_err();
            assert!(matches!(&err, Error::Validation { field, .. } if field == "content.variables"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn stored_media_and_replies_are_refused() {
        let media = MessageContent::Media {
            kind: MediaKind::Image,
            media: MediaRef { location: "media:abc/def".into(), mime_type: None },
            caption: None,
            filename: None,
        };
        assert!(message_body(&out(media), &BodyOptions::default()).is_err());
        let reply =
            MessageContent::Interactive { interactive: Interactive::Reply { id: "a".into(), title: "b".into() } };
        assert!(message_body(&out(reply), &BodyOptions::default()).is_err());
    }
}

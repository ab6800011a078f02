//! The Cloud API messenger against a local Graph API mock: every message
//! kind's request (method, path, token, body), Meta's documented errors
//! mapped into crm's kinds, slow answers, health, mark-as-read, and a
//! `whatsapp-cloud` channel sending through crm's dispatcher.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crm_core::secrets::{Credentials, Keyring, SecretKey};
use crm_core::workers::Runtime;
use crm_core::{
    AccountId, Crm, Error, HealthCheck, HealthStatus, InboundMessage, Interactive, ListRow, ListSection, MediaKind,
    MediaRef, MemoryStore, MessageContent, MessageId, MessageStatus, Messenger, NewChannel, NewContact,
    OutboundMessage, Phone, ReplyButton, SendRequest, Store,
};
use crm_whatsapp::payload::BodyOptions;
use crm_whatsapp::{CloudApiFactory, CloudApiMessenger};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{GraphMock, Reply};

const TOKEN: &str = "EAAGtest-token-0123456789";
const PNID: &str = "106540352242922";

fn messenger(mock: &GraphMock) -> CloudApiMessenger {
    CloudApiMessenger::builder()
        .phone_number_id(PNID)
        .access_token(TOKEN)
        .base_url(mock.base_url())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn outbound(content: MessageContent) -> OutboundMessage {
    OutboundMessage {
        account_id: AccountId::new(),
        message_id: MessageId::new(),
        to: Phone::parse("+5511987654321").unwrap(),
        whatsapp_id: None,
        content,
        new_recipient: true,
        reply_to: None,
    }
}

fn media(kind: MediaKind, location: &str, caption: Option<&str>, filename: Option<&str>) -> MessageContent {
    MessageContent::Media {
        kind,
        media: MediaRef { location: location.into(), mime_type: None },
        caption: caption.map(Into::into),
        filename: filename.map(Into::into),
    }
}

/// Each content and the object Meta's documentation shows for it.
fn every_kind() -> Vec<(MessageContent, &'static str, Value)> {
    let card = json!({
        "name": { "formatted_name": "Ana Souza", "first_name": "Ana", "last_name": "Souza" },
        "phones": [{ "phone": "+55 11 98765-4321", "type": "CELL", "wa_id": "5511987654321" }]
    });
    vec![
        (MessageContent::text("Olá, Ana!"), "text", json!({ "body": "Olá, Ana!", "preview_url": false })),
        (
            media(MediaKind::Image, "https://cdn.example.com/a.jpg", Some("Nova coleção"), None),
            "image",
            json!({ "link": "https://cdn.example.com/a.jpg", "caption": "Nova coleção" }),
        ),
        (media(MediaKind::Audio, "1013859600285441", None, None), "audio", json!({ "id": "1013859600285441" })),
        (
            media(MediaKind::Video, "https://cdn.example.com/v.mp4", Some("Veja"), None),
            "video",
            json!({ "link": "https://cdn.example.com/v.mp4", "caption": "Veja" }),
        ),
        (
            media(MediaKind::Document, "2211", Some("Sua fatura"), Some("fatura.pdf")),
            "document",
            json!({ "id": "2211", "caption": "Sua fatura", "filename": "fatura.pdf" }),
        ),
        (media(MediaKind::Sticker, "798882015472548", None, None), "sticker", json!({ "id": "798882015472548" })),
        (
            MessageContent::Location {
                latitude: -23.5505,
                longitude: -46.6333,
                name: Some("Loja Centro".into()),
                address: Some("Praça da Sé, São Paulo".into()),
            },
            "location",
            json!({ "latitude": -23.5505, "longitude": -46.6333, "name": "Loja Centro", "address": "Praça da Sé, São Paulo" }),
        ),
        (MessageContent::Contacts { contacts: vec![card.clone()] }, "contacts", json!([card])),
        (
            MessageContent::Reaction {
                message_id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA".into(),
                emoji: "👍".into(),
            },
            "reaction",
            json!({ "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA", "emoji": "👍" }),
        ),
        (
            MessageContent::Interactive {
                interactive: Interactive::Buttons {
                    body: "Confirma o pedido?".into(),
                    buttons: vec![
                        ReplyButton { id: "yes".into(), title: "Sim".into() },
                        ReplyButton { id: "no".into(), title: "Não".into() },
                    ],
                },
            },
            "interactive",
            json!({
                "type": "button",
                "body": { "text": "Confirma o pedido?" },
                "action": { "buttons": [
                    { "type": "reply", "reply": { "id": "yes", "title": "Sim" } },
                    { "type": "reply", "reply": { "id": "no", "title": "Não" } }
                ] }
            }),
        ),
        (
            MessageContent::Interactive {
                interactive: Interactive::List {
                    body: "Escolha um horário".into(),
                    button: "Horários".into(),
                    sections: vec![ListSection {
                        title: "Manhã".into(),
                        rows: vec![
                            ListRow { id: "9h".into(), title: "9:00".into(), description: Some("Com a Ana".into()) },
                            ListRow { id: "10h".into(), title: "10:00".into(), description: None },
                        ],
                    }],
                },
            },
            "interactive",
            json!({
                "type": "list",
                "body": { "text": "Escolha um horário" },
                "action": { "button": "Horários", "sections": [{ "title": "Manhã", "rows": [
                    { "id": "9h", "title": "9:00", "description": "Com a Ana" },
                    { "id": "10h", "title": "10:00" }
                ] }] }
            }),
        ),
        (
            MessageContent::Template {
                name: "order_update".into(),
                language: "pt_BR".into(),
                variables: [
                    ("1", "Ana"),
                    ("2", "#4521"),
                    ("header.image", "https://cdn.example.com/h.png"),
                    ("button.0", "4521"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
                rendered: "Olá Ana, seu pedido #4521 saiu.".into(),
            },
            "template",
            json!({
                "name": "order_update",
                "language": { "code": "pt_BR" },
                "components": [
                    { "type": "header", "parameters": [{ "type": "image", "image": { "link": "https://cdn.example.com/h.png" } }] },
                    { "type": "body", "parameters": [{ "type": "text", "text": "Ana" }, { "type": "text", "text": "#4521" }] },
                    { "type": "button", "sub_type": "url", "index": "0", "parameters": [{ "type": "text", "text": "4521" }] }
                ]
            }),
        ),
    ]
}

#[tokio::test]
async fn every_kind_reaches_the_graph_api_as_documented() {
    let mock = GraphMock::start().await;
    let m = messenger(&mock);
    let kinds = every_kind();
    let mut covered = std::collections::BTreeSet::new();
    for (i, (content, kind, object)) in kinds.iter().enumerate() {
        covered.insert(content.kind());
        let message = outbound(content.clone());
        let receipt = m.send(&message).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(receipt.provider_message_id.starts_with("wamid."), "{kind}");
        let r = &mock.requests()[i];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/v23.0/{PNID}/messages"));
        assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        let expected = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": kind,
            *kind: object,
            "biz_opaque_callback_data": message.message_id.to_string(),
        });
        assert_eq!(r.body, expected, "{kind}");
    }
    assert_eq!(covered, m.capabilities().kinds, "every kind the messenger claims is exercised");
}

#[tokio::test]
async fn replies_link_previews_and_whatsapp_ids_shape_the_body() {
    let mock = GraphMock::start().await;
    let m = CloudApiMessenger::builder()
        .phone_number_id(PNID)
        .access_token(TOKEN)
        .base_url(mock.base_url())
        .api_version("v21.0")
        .link_preview(true)
        .build()
        .unwrap();
    let mut message = outbound(MessageContent::text("veja https://loja.example.com"));
    message.whatsapp_id = Some("551187654321".into()); // registered without the 9th digit
    let options = BodyOptions { link_preview: true, reply_to: Some("wamid.ORIGINAL".into()) };
    m.send_with(&message, &options).await.unwrap();
    let r = &mock.requests()[0];
    assert_eq!(r.path, format!("/v21.0/{PNID}/messages"));
    assert_eq!(r.body["to"], "551187654321");
    assert_eq!(r.body["text"]["preview_url"], true);
    assert_eq!(r.body["context"], json!({ "message_id": "wamid.ORIGINAL" }));
}

#[tokio::test]
async fn meta_errors_map_to_crm_kinds() {
    let mock = GraphMock::start().await;
    let m = messenger(&mock);
    let message = outbound(MessageContent::text("oi"));
    let send = || m.send(&message);

    mock.then(Reply::Error { status: 400, code: 131047, message: "Re-engagement message", retry_after: None });
    let e = send().await.unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(matches!(&e, Error::Provider { code: Some(c), .. } if c == "131047"));
    assert!(e.to_string().contains("needs a template"), "{e}");

    mock.then(Reply::Error { status: 400, code: 131026, message: "Message undeliverable", retry_after: None });
    let e = send().await.unwrap_err();
    assert!(
        matches!(&e, Error::Provider { transient: false, code: Some(c), message, .. } if c == "131026" && message.contains("Message undeliverable")),
        "{e}"
    );

    mock.then(Reply::Error { status: 400, code: 130429, message: "Rate limit hit", retry_after: None });
    assert!(matches!(send().await.unwrap_err(), Error::RateLimited { .. }));

    mock.then(Reply::Error { status: 429, code: 80007, message: "Rate limit issues", retry_after: Some(12) });
    let e = send().await.unwrap_err();
    assert!(matches!(e, Error::RateLimited { retry_after } if retry_after == Duration::from_secs(12)), "{e}");

    mock.then(Reply::Error { status: 400, code: 131056, message: "Pair rate limit hit", retry_after: None });
    let e = send().await.unwrap_err();
    assert!(
        matches!(e, Error::Provider { transient: true, retry_after: Some(w), .. } if w >= Duration::from_secs(6)),
        "{e}"
    );

    mock.then(Reply::Error { status: 401, code: 190, message: "Error validating access token", retry_after: None });
    let e = send().await.unwrap_err();
    assert!(e.to_string().contains("configuration error"), "{e}");
    assert!(!e.to_string().contains(TOKEN) && !format!("{e:?}").contains(TOKEN));
    // The health probe reports the refusal until Meta accepts the token again.
    mock.then(Reply::Error { status: 401, code: 190, message: "Error validating access token", retry_after: None });
    let h = m.check().await;
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert!(h.detail.as_deref().unwrap().contains("configuration error"), "{h:?}");

    mock.then(Reply::Error { status: 500, code: 131000, message: "Something went wrong", retry_after: None });
    assert!(send().await.unwrap_err().is_transient());
    mock.then(Reply::Raw(503, "<html>upstream down</html>"));
    let e = send().await.unwrap_err();
    assert!(e.is_transient() && matches!(&e, Error::Provider { code: Some(c), .. } if c == "http_503"), "{e}");

    mock.then(Reply::Error {
        status: 400,
        code: 132000,
        message: "Number of parameters does not match",
        retry_after: None,
    });
    let e = send().await.unwrap_err();
    assert!(e.is_permanent() && e.to_string().contains("132000"), "{e}");

    // A 200 that names no message must not be retried (it may have been sent).
    mock.then(Reply::Raw(200, "{\"messaging_product\":\"whatsapp\"}"));
    let e = send().await.unwrap_err();
    assert!(e.is_permanent() && e.to_string().contains("no message id"), "{e}");
}

#[tokio::test]
async fn slow_answers_are_transient_timeouts() {
    let mock = GraphMock::start().await;
    let m = messenger(&mock); // 1 s timeout
    mock.then(Reply::Slow(Duration::from_secs(3)));
    let start = Instant::now();
    let e = m.send(&outbound(MessageContent::text("oi"))).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3), "the timeout bounds the call");
    assert!(matches!(&e, Error::Provider { transient: true, code: Some(c), .. } if c == "unreachable"), "{e}");
    assert!(e.to_string().contains("did not answer"), "{e}");
    // Nothing listening: transient too.
    let dead = CloudApiMessenger::builder()
        .phone_number_id(PNID)
        .access_token(TOKEN)
        .base_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    assert!(dead.send(&outbound(MessageContent::text("oi"))).await.unwrap_err().is_transient());
    assert_eq!(dead.check().await.status, HealthStatus::Degraded);
}

#[tokio::test]
async fn mark_read_and_health_call_the_graph_api() {
    let mock = GraphMock::start().await;
    let m = messenger(&mock);
    m.mark_read("wamid.INBOUND1").await.unwrap();
    let h = m.check().await;
    assert_eq!(h.status, HealthStatus::Healthy, "{h:?}");
    let r = mock.requests();
    assert_eq!(r[0].method, "POST");
    assert_eq!(r[0].path, format!("/v23.0/{PNID}/messages"));
    assert_eq!(r[0].body, json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.INBOUND1" }));
    assert_eq!(r[1].method, "GET");
    assert_eq!(r[1].path, format!("/v23.0/{PNID}"));
    assert!(r[1].query.as_deref().unwrap().contains("fields="));
    assert_eq!(r[1].authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    mock.then(Reply::Error { status: 400, code: 100, message: "Unsupported get request", retry_after: None });
    assert_eq!(m.check().await.status, HealthStatus::Unhealthy);
}

fn channel_input(mock: &GraphMock) -> NewChannel {
    let mut credentials = Credentials::new();
    credentials.insert("access_token", TOKEN);
    credentials.insert("app_secret", "app-secret");
    credentials.insert("verify_token", "verify-me");
    NewChannel {
        kind: "whatsapp-cloud".into(),
        name: "Loja".into(),
        provider_id: Some(PNID.into()),
        settings: Some(json!({ "base_url": mock.base_url(), "business_account_id": "102290129340398" })),
        credentials: Some(credentials),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_factory_validates_channels() {
    let factory = CloudApiFactory::new().unwrap();
    let crm = Crm::builder()
        .store(Arc::new(MemoryStore::new()))
        .messenger_factory(Arc::new(factory))
        .keyring(Keyring::new(SecretKey::generate("k1").unwrap()))
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap();
    let mock = GraphMock::start().await;
    let good = channel_input(&mock);
    let cases: Vec<(NewChannel, &str)> = vec![
        (NewChannel { provider_id: None, ..good.clone() }, "provider_id"),
        (NewChannel { provider_id: Some("abc".into()), ..good.clone() }, "provider_id"),
        (NewChannel { credentials: None, ..good.clone() }, "credentials.access_token"),
        (NewChannel { settings: Some(json!({ "api_version": "latest" })), ..good.clone() }, "settings.api_version"),
        (NewChannel { settings: Some(json!({ "colour": "blue" })), ..good.clone() }, "settings"),
    ];
    for (input, field) in cases {
        match crm.create_channel(account.id, input).await {
            Err(Error::Validation { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let channel = crm.create_channel(account.id, good).await.unwrap();
    let health = crm.channel_health(&channel).await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
}

#[tokio::test]
async fn a_channel_sends_through_the_dispatcher_and_records_meta_failures() {
    let mock = GraphMock::start().await;
    let store = Arc::new(MemoryStore::new());
    let crm = Crm::builder()
        .store(store.clone())
        .messenger_factory(Arc::new(CloudApiFactory::new().unwrap()))
        .keyring(Keyring::new(SecretKey::generate("k1").unwrap()))
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap();
    // Meta's pair rate (6 s between two messages to one person) is paced by
    // the governor; turned off here so the test does not wait.
    let pacing = crm_core::Pacing { pair_interval_secs: Some(0), ..Default::default() };
    let input = NewChannel { pacing: Some(pacing), ..channel_input(&mock) };
    let channel = crm.create_channel(account.id, input).await.unwrap();
    let stranger = crm
        .create_contact(
            account.id,
            NewContact { name: "Bia".into(), phone: "+55 11 91234-5678".into(), ..Default::default() },
        )
        .await
        .unwrap();
    // No inbound message yet: a free-form send is refused before Meta is called.
    let refused = crm.queue_message(account.id, SendRequest::new(stranger.id, MessageContent::text("oi"))).await;
    assert!(matches!(&refused, Err(Error::Validation { reason, .. }) if reason.contains("window")), "{refused:?}");
    assert_eq!(mock.count(), 0);

    // Ana writes first (inbound on the channel), so her window is open.
    let inbound = InboundMessage {
        from: "5511987654321".into(),
        whatsapp_id: Some("5511987654321".into()),
        profile_name: Some("Ana".into()),
        provider_message_id: Some("wamid.IN1".into()),
        content: MessageContent::text("Oi, tem horário?"),
        sent_at: None,
        reply_to: None,
    };
    let ana = crm.record_inbound_via(&channel, inbound).await.unwrap().contact;
    let dispatcher = crm.dispatcher();
    let options = dispatcher.options();
    let store_dyn: Arc<dyn Store> = store.clone();
    let workers =
        Runtime::builder(store_dyn).event_worker(Arc::new(dispatcher), options).build().start().await.unwrap();
    // The scripted failure answers the first send; the messages go one at a time.
    mock.then(Reply::Error { status: 400, code: 131026, message: "Message undeliverable", retry_after: None });
    let first = queue_and_wait(&crm, account.id, ana.id, "Tem sim!").await;
    assert_eq!(first.status, MessageStatus::Failed);
    let error = first.error.unwrap();
    assert_eq!(error.code.as_deref(), Some("131026"));
    assert!(error.reason.contains("Message undeliverable"), "{}", error.reason);
    let sent = queue_and_wait(&crm, account.id, ana.id, "Oi de novo").await;
    workers.shutdown(Duration::from_secs(2)).await;
    assert_eq!(sent.status, MessageStatus::Sent);
    assert!(sent.provider_message_id.unwrap().starts_with("wamid."));
    let last = mock.requests().pop().unwrap();
    assert_eq!(last.body["text"]["body"], "Oi de novo");
    assert_eq!(last.body["biz_opaque_callback_data"], sent.id.to_string());
}

/// Queues a text and waits until the dispatcher has settled it.
async fn queue_and_wait(crm: &Crm, account: AccountId, contact: crm_core::ContactId, text: &str) -> crm_core::Message {
    let queued = crm.queue_message(account, SendRequest::new(contact, MessageContent::text(text))).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = crm.get_message(account, queued.message.id).await.unwrap();
        if m.status != MessageStatus::Queued || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

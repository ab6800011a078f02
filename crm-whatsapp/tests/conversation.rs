//! A `whatsapp-cloud` channel in a conversation, against the local Graph API
//! mock: the 24-hour window per channel with fallback templates, replies
//! (`context`), template parameters checked against the synced components
//! and filled from the contact, and pricing from status reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crm_core::secrets::Credentials;
use crm_core::{
    AccountId, Channel, Contact, Crm, Error, FallbackTemplate, InboundMessage, MemoryStore, MessageContent,
    MessageStatus, NewChannel, NewContact, NewTemplate, Pacing, Quote, SendRequest,
};
use crm_whatsapp::ProviderTemplate;
use serde_json::{Value, json};
use std::sync::Arc;
use support::GraphMock;

struct World {
    crm: Crm,
    mock: GraphMock,
    account: AccountId,
    channel: Channel,
}

fn channel_input(mock: &GraphMock, pnid: &str, settings: Value) -> NewChannel {
    let mut credentials = Credentials::new();
    credentials.insert("access_token", "EAAGconversation");
    let mut s = json!({ "base_url": mock.base_url(), "business_account_id": "102290129340398" });
    for (k, v) in settings.as_object().unwrap() {
        s[k] = v.clone();
    }
    NewChannel {
        kind: "whatsapp-cloud".into(),
        name: format!("Loja {pnid}"),
        provider_id: Some(pnid.into()),
        settings: Some(s),
        credentials: Some(credentials),
        // Meta's pair rate is paced by the governor; off so the test does not wait.
        pacing: Some(Pacing { pair_interval_secs: Some(0), ..Default::default() }),
        ..Default::default()
    }
}

async fn world(settings: Value) -> World {
    let mock = GraphMock::start().await;
    let crm = support::crm_over(Arc::new(MemoryStore::new()));
    let account = crm.create_account("Loja").await.unwrap().id;
    let channel = crm.create_channel(account, channel_input(&mock, "106540352242922", settings)).await.unwrap();
    World { crm, mock, account, channel }
}

async fn contact(w: &World, name: &str, phone: &str) -> Contact {
    let input = NewContact { name: name.into(), phone: phone.into(), ..Default::default() };
    w.crm.create_contact(w.account, input).await.unwrap()
}

/// Ana writes on `channel` (wamid `pid`), opening her window there.
async fn ana_writes(w: &World, channel: &Channel, pid: &str, reply_to: Option<&str>) -> Contact {
    let inbound = InboundMessage {
        from: "5511987654321".into(),
        whatsapp_id: Some("5511987654321".into()),
        profile_name: Some("Ana Souza".into()),
        provider_message_id: Some(pid.into()),
        content: MessageContent::text("Oi!"),
        sent_at: None,
        reply_to: reply_to.map(Into::into),
    };
    w.crm.record_inbound_via(channel, inbound).await.unwrap().contact
}

/// Stores Meta's template the way a sync does (body and parameters).
async fn synced(w: &World, template: Value) {
    let t: ProviderTemplate = serde_json::from_value(template).unwrap();
    w.crm.create_template(w.account, t.to_new_template().unwrap()).await.unwrap();
}

fn reengagement() -> Value {
    json!({
        "name": "retomar_conversa", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
        "components": [{ "type": "BODY", "text": "Olá {{first_name}}, podemos continuar nossa conversa?" }]
    })
}

fn order_update() -> Value {
    json!({
        "name": "pedido_enviado", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
        "components": [
            { "type": "HEADER", "format": "IMAGE" },
            { "type": "BODY", "text": "Olá {{first_name}}, seu pedido {{pedido}} saiu." },
            { "type": "BUTTONS", "buttons": [
                { "type": "QUICK_REPLY", "text": "Parar promoções" },
                { "type": "URL", "text": "Rastrear", "url": "https://loja.example/rastreio/{{1}}" },
                { "type": "PHONE_NUMBER", "text": "Ligar", "phone_number": "+5511400000000" }
            ]}
        ]
    })
}

fn vars(pairs: &[(&str, &str)]) -> crm_core::Variables {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn outside_the_window_a_free_form_send_falls_back_or_is_refused_before_meta() {
    let w = world(json!({})).await;
    synced(&w, reengagement()).await;
    let bia = contact(&w, "Bia Lima", "+55 11 91234-5678").await;

    // No fallback anywhere: refused before Meta is called, naming the window and the way out.
    let refused = w.crm.send_now(w.account, SendRequest::new(bia.id, MessageContent::text("Oi Bia"))).await;
    match &refused {
        Err(Error::Validation { field, reason }) => {
            assert_eq!(field, "content.type");
            assert!(reason.contains("customer-service window") && reason.contains("fallback_template"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.mock.count(), 0, "Meta is not called");

    // Named in the request: the template goes out instead, and the message says so.
    let fallback = FallbackTemplate { name: "retomar_conversa".into(), language: "pt_BR".into(), variables: vars(&[]) };
    let req = SendRequest::new(bia.id, MessageContent::text("Oi Bia")).fallback(fallback);
    let sent = w.crm.send_now(w.account, req).await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let f = sent.fallback.as_ref().expect("recorded as a fallback");
    assert_eq!((f.template.as_str(), f.original.clone()), ("retomar_conversa", MessageContent::text("Oi Bia")));
    assert!(f.reason.contains("24 hours"), "{}", f.reason);
    let body = &w.mock.requests()[0].body;
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["name"], "retomar_conversa");
    assert_eq!(
        body["template"]["components"],
        json!([{ "type": "body", "parameters": [{ "type": "text", "parameter_name": "first_name", "text": "Bia" }] }]),
        "the contact's first name fills the template"
    );
    assert_eq!(w.crm.get_message(w.account, sent.id).await.unwrap(), sent, "stored with the fallback");

    // A retried request (same Idempotency-Key, the same free-form content) finds the fallback message.
    let fallback = FallbackTemplate { name: "retomar_conversa".into(), language: "pt_BR".into(), variables: vars(&[]) };
    let req =
        || SendRequest::new(bia.id, MessageContent::text("Oi de novo")).fallback(fallback.clone()).reference("fb-1");
    let first = w.crm.queue_message(w.account, req()).await.unwrap();
    let again = w.crm.queue_message(w.account, req()).await.unwrap();
    assert!(!first.replayed && again.replayed && again.message.id == first.message.id);
    assert!(first.message.fallback.is_some());

    // A fallback naming no stored template is refused, naming the field.
    let missing = FallbackTemplate { name: "nao_existe".into(), language: "pt_BR".into(), variables: vars(&[]) };
    let req = SendRequest::new(bia.id, MessageContent::text("Oi")).fallback(missing);
    assert!(
        matches!(w.crm.send_now(w.account, req).await, Err(Error::Validation { field, .. }) if field == "fallback_template")
    );
    assert_eq!(w.mock.count(), 1);
}

/// A text queued while Ana's window was open, whose window closes before the
/// dispatcher gets to it (a throttled channel, a backlog): the dispatcher
/// sends the fallback template instead — the request's, else the channel's —
/// and records why; without one the message fails with the window's reason
/// and Meta is never called for it.
#[tokio::test]
async fn a_window_closing_while_the_message_is_queued_falls_back_at_dispatch() {
    use crm_core::workers::Runtime;
    use crm_core::{ManualClock, Store};
    use std::time::{Duration, Instant};

    let mock = GraphMock::start().await;
    let clock = ManualClock::new("2026-11-30T09:00:00Z".parse().unwrap());
    let shared: Arc<dyn crm_core::Clock> = Arc::new(clock.clone());
    let store = Arc::new(MemoryStore::with_clock(shared.clone()));
    let crm = crm_core::Crm::builder()
        .store(store.clone())
        .clock(shared)
        .messenger_factory(Arc::new(crm_whatsapp::CloudApiFactory::new().unwrap()))
        .keyring(crm_core::secrets::Keyring::new(crm_core::secrets::SecretKey::generate("k1").unwrap()))
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap().id;
    let channel = crm.create_channel(account, channel_input(&mock, "106540352242922", json!({}))).await.unwrap();
    let w = World { crm: crm.clone(), mock: mock.clone(), account, channel: channel.clone() };
    synced(&w, reengagement()).await;
    let ana = ana_writes(&w, &channel, "wamid.IN-late", None).await;

    // One minute before her window closes, two texts are queued: one naming a
    // fallback template, one without.
    clock.advance(Duration::from_secs(24 * 3600 - 60));
    let fallback = FallbackTemplate { name: "retomar_conversa".into(), language: "pt_BR".into(), variables: vars(&[]) };
    let with = crm
        .queue_message(account, SendRequest::new(ana.id, MessageContent::text("Seu pedido chegou?")).fallback(fallback))
        .await
        .unwrap()
        .message;
    assert!(with.fallback.is_none() && with.content == MessageContent::text("Seu pedido chegou?"), "queued as text");
    let without =
        crm.queue_message(account, SendRequest::new(ana.id, MessageContent::text("Oi?"))).await.unwrap().message;
    // The dispatcher only gets to them five minutes later.
    clock.advance(Duration::from_secs(300));
    let dispatcher = crm.dispatcher();
    let options = dispatcher.options();
    let store_dyn: Arc<dyn Store> = store.clone();
    let workers =
        Runtime::builder(store_dyn).event_worker(Arc::new(dispatcher), options).build().start().await.unwrap();
    let settled = |id| {
        let crm = crm.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let m = crm.get_message(account, id).await.unwrap();
                if m.status != MessageStatus::Queued || Instant::now() > deadline {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let with = settled(with.id).await;
    let without = settled(without.id).await;
    workers.shutdown(Duration::from_secs(2)).await;

    assert_eq!(with.status, MessageStatus::Sent, "{with:?}");
    let f = with.fallback.as_ref().expect("fell back at dispatch");
    assert_eq!((f.template.as_str(), f.language.as_str()), ("retomar_conversa", "pt_BR"));
    assert!(f.reason.contains("closed while the message was queued"), "{}", f.reason);
    assert_eq!(f.original, MessageContent::text("Seu pedido chegou?"));
    assert!(
        matches!(&with.content, MessageContent::Template { rendered, .. } if rendered.contains("Olá Ana")),
        "{:?}",
        with.content
    );
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "Meta is called once, for the fallback only");
    assert_eq!(requests[0].body["type"], "template");
    assert_eq!(requests[0].body["template"]["name"], "retomar_conversa");
    assert_eq!(requests[0].body["template"]["components"][0]["parameters"][0]["text"], "Ana");

    assert_eq!(without.status, MessageStatus::Failed, "{without:?}");
    let error = without.error.expect("the reason");
    assert_eq!(error.code.as_deref(), Some("not_sendable"));
    assert!(error.reason.contains("customer-service window"), "{}", error.reason);
    // The swap is an event of its own, so webhooks and the inbox see it.
    let events = crm.list_events(account, None, 200).await.unwrap();
    let updated: Vec<_> = events.iter().filter(|e| e.event_type.as_str() == "message.updated").collect();
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].payload["fallback"]["template"], "retomar_conversa");
}

#[tokio::test]
async fn the_channel_setting_falls_back_and_the_window_is_per_channel() {
    let w = world(json!({
        "fallback_template": { "name": "retomar_conversa", "language": "pt_BR", "variables": {} }
    }))
    .await;
    synced(&w, reengagement()).await;
    let other = w.crm.create_channel(w.account, channel_input(&w.mock, "106540352242999", json!({}))).await.unwrap();
    // Ana writes on the second number only.
    let ana = ana_writes(&w, &other, "wamid.IN-other", None).await;

    // On the first number her window is closed: the channel's fallback template goes.
    let sent = w.crm.send_now(w.account, SendRequest::new(ana.id, MessageContent::text("Oi Ana"))).await.unwrap();
    assert_eq!(sent.fallback.as_ref().map(|f| f.template.as_str()), Some("retomar_conversa"));
    assert!(matches!(sent.content, MessageContent::Template { .. }));
    // On the second it is open: the text goes as it is.
    let req = SendRequest::new(ana.id, MessageContent::text("Oi Ana")).via(other.id);
    let direct = w.crm.send_now(w.account, req).await.unwrap();
    assert_eq!((direct.fallback, direct.content), (None, MessageContent::text("Oi Ana")));
    let r = w.mock.requests();
    assert_eq!(r[0].path, "/v23.0/106540352242922/messages");
    assert_eq!(r[0].body["type"], "template");
    assert_eq!(r[1].path, "/v23.0/106540352242999/messages");
    assert_eq!(r[1].body["text"]["body"], "Oi Ana");

    // The window API shows each channel's own window.
    let windows = w.crm.contact_windows(w.account, ana.id).await.unwrap();
    let of = |id| windows.channels.iter().find(|c| c.channel_id == id).unwrap();
    assert!(!of(w.channel.id).open && of(w.channel.id).last_inbound_at.is_none());
    assert_eq!(of(w.channel.id).fallback_template.as_ref().map(|f| f.name.as_str()), Some("retomar_conversa"));
    assert!(of(other.id).open && of(other.id).last_inbound_at.is_some() && of(other.id).closes_at.is_some());

    // A malformed setting is refused when the channel is stored.
    let bad = channel_input(&w.mock, "106540352242000", json!({ "fallback_template": { "name": "X Y" } }));
    let err = w.crm.create_channel(w.account, bad).await.unwrap_err();
    assert!(matches!(&err, Error::Validation { field, .. } if field == "settings.fallback_template"), "{err:?}");
}

#[tokio::test]
async fn replies_quote_by_crm_id_or_wamid_and_inbound_context_is_kept() {
    let w = world(json!({})).await;
    let ana = ana_writes(&w, &w.channel, "wamid.IN-1", None).await;
    let thread = w.crm.list_thread(w.account, ana.id, &Default::default()).await.unwrap().items;
    let question = thread[0].clone();

    let by_id = SendRequest::new(ana.id, MessageContent::text("Tem sim!")).reply_to(Quote::Message(question.id));
    let sent = w.crm.send_now(w.account, by_id).await.unwrap();
    let quoted = sent.reply_to.as_ref().unwrap();
    assert_eq!((quoted.message_id, quoted.provider_message_id.as_deref()), (Some(question.id), Some("wamid.IN-1")));
    assert_eq!(w.mock.requests()[0].body["context"], json!({ "message_id": "wamid.IN-1" }));

    let by_wamid = SendRequest::new(ana.id, MessageContent::text("E mais")).reply_to(Quote::parse("wamid.IN-1"));
    w.crm.send_now(w.account, by_wamid).await.unwrap();
    assert_eq!(w.mock.requests()[1].body["context"]["message_id"], "wamid.IN-1");

    // Unknown ids, another contact's message and an unsent one are refused before Meta.
    let bia_writes = InboundMessage {
        from: "5511912345678".into(),
        whatsapp_id: None,
        profile_name: Some("Bia".into()),
        provider_message_id: Some("wamid.IN-bia".into()),
        content: MessageContent::text("Olá"),
        sent_at: None,
        reply_to: None,
    };
    let bia = w.crm.record_inbound_via(&w.channel, bia_writes).await.unwrap().contact;
    let queued = w.crm.queue_message(w.account, SendRequest::new(ana.id, MessageContent::text("fila"))).await.unwrap();
    for (to, quote, why) in [
        (ana.id, Quote::parse("wamid.unknown"), "no message"),
        (ana.id, Quote::Message(crm_core::MessageId::new()), "no message"),
        (bia.id, Quote::Message(question.id), "another contact"),
        (ana.id, Quote::Message(queued.message.id), "not sent"),
    ] {
        let req = SendRequest::new(to, MessageContent::text("x")).reply_to(quote);
        match w.crm.queue_message(w.account, req).await {
            Err(Error::Validation { field, reason }) => {
                assert_eq!(field, "reply_to");
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("{why}: {other:?}"),
        }
    }
    assert_eq!(w.mock.count(), 2);

    // Ana quotes our reply: the inbound message records it, with crm's id.
    ana_writes(&w, &w.channel, "wamid.IN-2", sent.provider_message_id.as_deref()).await;
    let thread = w.crm.list_thread(w.account, ana.id, &Default::default()).await.unwrap().items;
    let answer = thread.iter().find(|m| m.provider_message_id.as_deref() == Some("wamid.IN-2")).unwrap();
    let r = answer.reply_to.as_ref().unwrap();
    assert_eq!((r.message_id, r.provider_message_id.clone()), (Some(sent.id), sent.provider_message_id.clone()));
    // A quote of a message crm never saw keeps Meta's id alone.
    ana_writes(&w, &w.channel, "wamid.IN-3", Some("wamid.from-another-device")).await;
    let m = w.crm.store().find_message_by_provider_id(w.account, "wamid.IN-3").await.unwrap().unwrap();
    assert_eq!(m.reply_to.unwrap().message_id, None);
}

#[tokio::test]
async fn location_headers_copy_code_and_one_time_code_buttons_sync_and_send() {
    let w = world(json!({})).await;
    synced(
        &w,
        json!({
            "name": "oferta_loja", "language": "pt_BR", "status": "APPROVED", "category": "MARKETING",
            "components": [
                { "type": "HEADER", "format": "LOCATION" },
                { "type": "BODY", "text": "Oferta na loja: {{1}}" },
                { "type": "BUTTONS", "buttons": [{ "type": "COPY_CODE", "example": "BLACK25" }] }
            ]
        }),
    )
    .await;
    synced(
        &w,
        json!({
            "name": "codigo_acesso", "language": "pt_BR", "status": "APPROVED", "category": "AUTHENTICATION",
            "components": [
                { "type": "BODY", "text": "{{1}} é o seu código de verificação." },
                { "type": "BUTTONS", "buttons": [{ "type": "OTP", "otp_type": "COPY_CODE", "text": "Copiar código" }] }
            ]
        }),
    )
    .await;
    let offer = w.crm.store().find_template(w.account, "oferta_loja", "pt_BR").await.unwrap().unwrap();
    let names: Vec<&str> = offer.parameters.as_ref().unwrap().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["header.location", "copy_code.0"]);
    let ana = contact(&w, "Ana Souza", "+55 11 98765-4321").await;
    let send = |name: &str, rendered: &str, variables: crm_core::Variables| {
        let content = MessageContent::Template {
            name: name.into(),
            language: "pt_BR".into(),
            variables,
            rendered: rendered.into(),
        };
        w.crm.send_now(w.account, SendRequest::new(ana.id, content))
    };
    let missing = send("oferta_loja", "Oferta na loja: 25% off", vars(&[("1", "25% off")])).await.unwrap_err();
    assert!(missing.to_string().contains("header.location, copy_code.0"), "{missing}");

    let given =
        vars(&[("1", "25% off"), ("header.location", "-23.5614,-46.6559|Loja Paulista"), ("copy_code.0", "BLACK25")]);
    let sent = send("oferta_loja", "Oferta na loja: 25% off", given).await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let body = &w.mock.requests()[0].body;
    assert_eq!(
        body["template"]["components"],
        json!([
            { "type": "header", "parameters": [{ "type": "location",
                "location": { "latitude": "-23.5614", "longitude": "-46.6559", "name": "Loja Paulista" } }] },
            { "type": "body", "parameters": [{ "type": "text", "text": "25% off" }] },
            { "type": "button", "sub_type": "copy_code", "index": "0",
              "parameters": [{ "type": "coupon_code", "coupon_code": "BLACK25" }] }
        ])
    );

    let code = vars(&[("1", "482913"), ("button.0", "482913")]);
    send("codigo_acesso", "482913 é o seu código de verificação.", code).await.unwrap();
    let body = &w.mock.requests()[1].body;
    assert_eq!(
        body["template"]["components"],
        json!([
            { "type": "body", "parameters": [{ "type": "text", "text": "482913" }] },
            { "type": "button", "sub_type": "url", "index": "0", "parameters": [{ "type": "text", "text": "482913" }] }
        ])
    );
}

#[tokio::test]
async fn template_parameters_are_checked_against_the_synced_components_and_filled_from_the_contact() {
    let w = world(json!({})).await;
    synced(&w, order_update()).await;
    let stored = w.crm.store().find_template(w.account, "pedido_enviado", "pt_BR").await.unwrap().unwrap();
    let names: Vec<&str> = stored.parameters.as_ref().unwrap().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["header.image", "quick_reply.0", "button.1"]);
    let ana = contact(&w, "Ana Souza", "+55 11 98765-4321").await;
    let content = |variables: crm_core::Variables| MessageContent::Template {
        name: "pedido_enviado".into(),
        language: "pt_BR".into(),
        variables,
        rendered: "Olá Ana, seu pedido #42 saiu.".into(),
    };
    let refused = |v: crm_core::Variables| {
        let crm = w.crm.clone();
        let req = SendRequest::new(ana.id, content(v));
        async move {
            match crm.queue_message(w.account, req).await {
                Err(Error::Validation { field, reason }) if field == "content.variables" => reason,
                other => panic!("{other:?}"),
            }
        }
    };
    // Missing the header image and the URL suffix: both named.
    let reason = refused(vars(&[("pedido", "#42")])).await;
    assert!(reason.contains("needs header.image, button.1"), "{reason}");
    // A header of another type, a button that takes no parameter, a body name the template lacks.
    let reason = refused(vars(&[
        ("pedido", "#42"),
        ("header.video", "https://cdn.example/v.mp4"),
        ("button.1", "42"),
        ("button.2", "x"),
        ("cupom", "X"),
    ]))
    .await;
    assert!(
        reason.contains("needs header.image") && reason.contains("has no cupom, button.2, header.video"),
        "{reason}"
    );
    assert_eq!(w.mock.count(), 0, "nothing reached Meta");

    // Complete: only `pedido` and the components are given, `first_name` comes from the contact,
    // and the stored message and Meta's body carry every parameter.
    let given = vars(&[("pedido", "#42"), ("header.image", "https://cdn.example/p.jpg"), ("button.1", "42")]);
    let sent = w.crm.send_now(w.account, SendRequest::new(ana.id, content(given))).await.unwrap();
    assert_eq!(sent.status, MessageStatus::Sent);
    let MessageContent::Template { variables, .. } = &sent.content else { panic!() };
    assert_eq!(variables.get("first_name").map(String::as_str), Some("Ana"), "stored with the contact's variable");
    let body = &w.mock.requests()[0].body;
    assert_eq!(
        body["template"]["components"],
        json!([
            { "type": "header", "parameters": [{ "type": "image", "image": { "link": "https://cdn.example/p.jpg" } }] },
            { "type": "body", "parameters": [
                { "type": "text", "parameter_name": "first_name", "text": "Ana" },
                { "type": "text", "parameter_name": "pedido", "text": "#42" }
            ]},
            { "type": "button", "sub_type": "url", "index": "1", "parameters": [{ "type": "text", "text": "42" }] }
        ])
    );

    // A retried request with the same key finds that message (its stored
    // variables include the contact's), and a different one is a conflict.
    let given = vars(&[("pedido", "#42"), ("header.image", "https://cdn.example/p.jpg"), ("button.1", "42")]);
    let first = w
        .crm
        .queue_message(w.account, SendRequest::new(ana.id, content(given.clone())).reference("k-1"))
        .await
        .unwrap();
    let again =
        w.crm.queue_message(w.account, SendRequest::new(ana.id, content(given)).reference("k-1")).await.unwrap();
    assert!(again.replayed && again.message.id == first.message.id);

    // A template without known parameters (created by hand) leaves components to Meta.
    let manual = NewTemplate { name: "manual".into(), body: "Oi {{first_name}}".into(), ..Default::default() };
    w.crm.create_template(w.account, manual).await.unwrap();
    let rendered = w.crm.render_template_for(w.account, ana.id, "manual", "pt_BR", vars(&[("header.1", "X")])).await;
    let MessageContent::Template { variables, .. } = rendered.unwrap() else { panic!() };
    assert_eq!(variables, vars(&[("first_name", "Ana"), ("header.1", "X")]), "component variables are kept");
}

#[tokio::test]
async fn status_reports_record_pricing_even_when_they_arrive_late() {
    let w = world(json!({})).await;
    let ana = ana_writes(&w, &w.channel, "wamid.IN-1", None).await;
    let sent = w.crm.send_now(w.account, SendRequest::new(ana.id, MessageContent::text("Oi"))).await.unwrap();
    let wamid = sent.provider_message_id.clone().unwrap();
    let report = |status, pricing: Option<crm_core::Pricing>| crm_core::ProviderStatus {
        provider_message_id: wamid.clone(),
        message_id: None,
        status,
        at: chrono::Utc::now(),
        error: None,
        pricing,
    };
    let pricing = crm_core::Pricing {
        billable: Some(false),
        pricing_model: Some("PMP".into()),
        category: Some("service".into()),
        pricing_type: Some("free_customer_service".into()),
        conversation_id: None,
        conversation_origin: None,
        conversation_expires_at: None,
    };
    // `read` first (no pricing), then the late `delivered` with pricing: the
    // status stays, the pricing is recorded.
    let read = w.crm.apply_status_report(w.account, report(MessageStatus::Read, None)).await.unwrap();
    assert_eq!((read.status, read.pricing.clone()), (MessageStatus::Read, None));
    let late = w.crm.apply_status_report(w.account, report(MessageStatus::Delivered, Some(pricing.clone()))).await;
    let late = late.unwrap();
    assert_eq!((late.status, late.pricing.as_ref()), (MessageStatus::Read, Some(&pricing)));
    assert_eq!(w.crm.get_message(w.account, sent.id).await.unwrap().pricing, Some(pricing));
    let unknown =
        crm_core::ProviderStatus { provider_message_id: "wamid.nope".into(), ..report(MessageStatus::Sent, None) };
    assert!(matches!(w.crm.apply_status_report(w.account, unknown).await, Err(Error::NotFound { .. })));
}

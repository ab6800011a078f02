//! The dashboard's inbox over HTTP: the list with unread counts and its
//! filters, opening a thread (read state), the send box through the send
//! pipeline with the 24-hour window and templates, assignment, and the
//! live event stream (sign-in required, one account's events only, a
//! status change arriving as an event).

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt;
use serde_json::json;
use tower::ServiceExt;

use crm_core::{
    AccountId, Capabilities, ContactId, InboundMessage, MessageContent, MessageStatus, ProviderStatus, Role,
};
use crm_http::Settings;

use crate::dashboard::{Browser, EMAIL, PASSWORD};
use crate::helpers::{Harness, create_contact};

/// A memory harness with an account, its owner's dashboard login and an API key.
async fn setup() -> (Harness, AccountId, String) {
    let h = Harness::memory_with(Settings::default(), Vec::new()).await;
    let (account, token) = h.account(Role::Owner).await;
    h.state.crm().create_user(account, EMAIL, "Dona Maria", Role::Owner, PASSWORD).await.unwrap();
    (h, account, token)
}

async fn signed_in(h: &Harness) -> Browser {
    let mut b = Browser::open(&h.api).await;
    assert_eq!(b.log_in(&h.api, PASSWORD).await.status, 303);
    b
}

/// A message from `phone` (the contact is created when new); returns its contact.
async fn inbound(h: &Harness, account: AccountId, phone: &str, name: &str, text: &str) -> ContactId {
    let m = InboundMessage {
        from: phone.into(),
        whatsapp_id: None,
        profile_name: Some(name.into()),
        provider_message_id: Some(format!("wamid.{}", uuid::Uuid::now_v7().simple())),
        content: MessageContent::text(text),
        sent_at: None,
        reply_to: None,
    };
    h.state.crm().record_inbound(account, m).await.expect("inbound").message.contact_id
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test]
async fn the_inbox_lists_threads_by_activity_with_unread_counts_and_opening_one_reads_it() {
    let (h, account, _) = setup().await;
    // Signed out: the page sends to the login, the event stream is refused.
    let r = h.api.get("/dashboard/inbox").send().await;
    assert_eq!((r.status.as_u16(), r.header("location").as_deref()), (303, Some("/dashboard/login")));
    assert_eq!(h.api.get("/dashboard/inbox/events").send().await.status, 401);

    let ana = inbound(&h, account, "+5511987650001", "Ana Souza", "Oi, tudo bem?").await;
    inbound(&h, account, "+5511987650001", "Ana Souza", "Vocês abrem sábado?").await;
    let bruno = inbound(&h, account, "+5511987650002", "Bruno Lima", "Quero um orçamento").await;
    // Another account's thread never shows.
    let (other, _) = h.account(Role::Owner).await;
    inbound(&h, other, "+5511987650003", "Carla de Outra Conta", "olá").await;

    let b = signed_in(&h).await;
    let page = b.get(&h.api, "/dashboard/inbox").await;
    page.expect(200);
    let html = page.text();
    let (pos_ana, pos_bruno) = (html.find("Ana Souza").unwrap(), html.find("Bruno Lima").unwrap());
    assert!(pos_bruno < pos_ana, "the newest activity first");
    assert!(!html.contains("Carla de Outra Conta"), "another account's threads are not listed");
    assert!(html.contains(r#"data-unread="2""#) && html.contains(r#"data-unread="1""#), "unread counts");
    assert!(html.contains("Vocês abrem sábado?"), "the last message's preview");
    assert!(html.contains("+5511987650001"), "the contact's phone");

    // Opening Ana's thread shows her messages and marks it read.
    let thread = b.get(&h.api, &format!("/dashboard/inbox/{ana}")).await;
    thread.expect(200);
    let html = thread.text();
    assert!(html.contains("Oi, tudo bem?") && html.contains("Vocês abrem sábado?"));
    assert_eq!(count(&html, r#"class="msg inbound""#), 2);
    assert!(html.contains(r#"id="send-form""#), "the window is open: free text");
    let list = b.get(&h.api, "/dashboard/inbox").await.text();
    assert_eq!(count(&list, "data-unread="), 1, "only Bruno's thread is unread now");
    let state = h.state.crm().thread_state(account, ana).await.unwrap();
    assert!(state.read_through.is_some() && state.read_at.is_some());
    assert_eq!(h.state.crm().thread_state(account, bruno).await.unwrap().read_through, None);

    // A bad cursor is 400; an unknown or foreign contact is 404; English on request.
    assert_eq!(b.get(&h.api, "/dashboard/inbox?after=nonsense").await.status, 400);
    assert_eq!(b.get(&h.api, &format!("/dashboard/inbox/{}", ContactId::new())).await.status, 404);
    assert_eq!(b.get(&h.api, "/dashboard/inbox/not-an-id").await.status, 404);
    let query = crm_core::domain::inbox::InboxQuery::first(Default::default(), 5);
    let foreign = h.state.crm().list_inbox(other, &query).await.unwrap().threads[0].contact_id;
    assert_eq!(b.get(&h.api, &format!("/dashboard/inbox/{foreign}")).await.status, 404);
    let en = b.get(&h.api, "/dashboard/inbox?lang=en").await.text();
    assert!(en.contains(">Inbox<") && en.contains("Unassigned"), "English strings");
}

#[tokio::test]
async fn the_send_box_queues_through_the_pipeline_and_outside_the_window_offers_templates() {
    let (h, account, token) = setup().await;
    let ana = inbound(&h, account, "+5511987650001", "Ana Souza", "Oi!").await;
    let b = signed_in(&h).await;
    let path = format!("/dashboard/inbox/{ana}/send");

    // No token: refused.
    assert_eq!(b.post(&h.api, &path, &[("text", "sem token")]).await.status, 403);
    // Free text in the window: queued with the form's key, sent by the dispatcher.
    let csrf = b.csrf.clone();
    let key = "00112233445566778899aabbccddeeff";
    let fields = [("csrf", csrf.as_str()), ("key", key), ("text", "Abrimos sim, das 9h às 13h.")];
    let r = b.post(&h.api, &path, &fields).await;
    assert_eq!((r.status.as_u16(), r.header("location")), (303, Some(format!("/dashboard/inbox/{ana}"))));
    // The same form sent twice sends once.
    assert_eq!(b.post(&h.api, &path, &fields).await.status, 303);
    let thread = h.api.get(&format!("/api/v1/messages?contact_id={ana}")).bearer(&token).send().await.ok_json(200);
    let outbound: Vec<_> =
        thread["items"].as_array().unwrap().iter().filter(|m| m["direction"] == "outbound").cloned().collect();
    assert_eq!(outbound.len(), 1, "one message for the repeated form");
    assert_eq!(outbound[0]["client_reference"], format!("dashboard:{key}"));
    let id = outbound[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(h.api.settled_message(&token, &id).await["status"], "sent", "it went through the dispatcher");
    let html = b.get(&h.api, &format!("/dashboard/inbox/{ana}")).await.text();
    assert!(html.contains(&format!(r#"data-message-id="{id}""#)) && html.contains(r#"data-status="sent""#));
    // An empty text is refused on the page.
    let r = b.post(&h.api, &path, &[("csrf", &csrf), ("text", "  ")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Escreva uma mensagem antes de enviar."));

    // A provider with a 24-hour window, and a contact who never wrote.
    let mut caps = Capabilities::everything();
    caps.customer_service_window = Some(Duration::from_secs(24 * 3600));
    let _ = h.messenger.clone().unwrap().with_capabilities(caps);
    let bruno = create_contact(&h.api, &token, "Bruno Lima", 7).await;
    let bruno = bruno["id"].as_str().unwrap().to_owned();
    let template =
        json!({ "name": "retomada", "language": "pt_BR", "body": "Olá {{name}}, seu pedido {{pedido}} está pronto." });
    h.api.post("/api/v1/templates").bearer(&token).json(template).send().await.expect(201);
    let page = b.get(&h.api, &format!("/dashboard/inbox/{bruno}")).await;
    page.expect(200);
    let html = page.text();
    assert!(html.contains(r#"id="window-closed""#) && !html.contains(r#"id="send-form""#), "no free text box");
    assert!(
        html.contains("janela de atendimento de 24 horas está fechada") && html.contains("O contato nunca escreveu.")
    );
    assert!(html.contains(r#"data-template="retomada""#) && html.contains(r#"name="var.pedido""#), "the template form");
    // The server enforces the rule whatever the page shows.
    let path = format!("/dashboard/inbox/{bruno}/send");
    let r = b.post(&h.api, &path, &[("csrf", &csrf), ("text", "oi")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Fora da janela de 24 horas"), "{}", r.text());
    // A template with a missing value is refused naming it; filled, it is queued.
    let tpl_id = h.api.get("/api/v1/templates").bearer(&token).send().await.ok_json(200)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = b.post(&h.api, &path, &[("csrf", &csrf), ("template", &tpl_id)]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("pedido"), "names the missing variable: {}", r.text());
    let r = b.post(&h.api, &path, &[("csrf", &csrf), ("template", &tpl_id), ("var.pedido", "#123")]).await;
    assert_eq!(r.status, 303);
    let msgs = h.api.get(&format!("/api/v1/messages?contact_id={bruno}")).bearer(&token).send().await.ok_json(200);
    assert_eq!(msgs["items"][0]["content"]["rendered"], "Olá Bruno Lima, seu pedido #123 está pronto.");

    // A viewer reads but cannot send.
    h.state.crm().create_user(account, "leitor@example.com", "Leitor", Role::Viewer, PASSWORD).await.unwrap();
    let mut viewer = Browser::open(&h.api).await;
    let csrf = viewer.csrf.clone();
    let r = viewer
        .post(&h.api, "/dashboard/login", &[("csrf", &csrf), ("email", "leitor@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, 303);
    viewer.session = crate::dashboard::set_cookie(&r, "crm_session").map(|c| c.0);
    viewer.csrf = crate::dashboard::set_cookie(&r, "crm_csrf").map(|c| c.0).unwrap();
    let html = viewer.get(&h.api, &format!("/dashboard/inbox/{ana}")).await.text();
    assert!(html.contains(r#"id="read-only""#) && !html.contains(r#"id="send-form""#));
    let csrf = viewer.csrf.clone();
    let r = viewer.post(&h.api, &format!("/dashboard/inbox/{ana}/send"), &[("csrf", &csrf), ("text", "x")]).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn assignment_is_shown_in_the_list_filters_it_and_records_its_event() {
    let (h, account, token) = setup().await;
    let ana = inbound(&h, account, "+5511987650001", "Ana Souza", "Oi!").await;
    inbound(&h, account, "+5511987650002", "Bruno Lima", "Olá").await;
    let b = signed_in(&h).await;
    let me = h.state.crm().store().find_user_by_email(&crm_core::Email::parse(EMAIL).unwrap()).await.unwrap().unwrap();
    let csrf = b.csrf.clone();
    let path = format!("/dashboard/inbox/{ana}/assign");
    let r = b.post(&h.api, &path, &[("csrf", &csrf), ("assignee", &me.id.to_string()), ("filter", "mine")]).await;
    assert_eq!((r.status.as_u16(), r.header("location")), (303, Some(format!("/dashboard/inbox/{ana}?filter=mine"))));

    let mine = b.get(&h.api, "/dashboard/inbox?filter=mine").await.text();
    assert!(mine.contains("Ana Souza") && !mine.contains("Bruno Lima"), "mine");
    assert!(mine.contains(r#"<span class="assignee">Dona Maria</span>"#), "the assignee in the list");
    let unassigned = b.get(&h.api, "/dashboard/inbox?filter=unassigned").await.text();
    assert!(unassigned.contains("Bruno Lima") && !unassigned.contains("Ana Souza"), "unassigned");
    let events = h.api.get("/api/v1/events").bearer(&token).send().await.ok_json(200);
    let assigned: Vec<_> =
        events["items"].as_array().unwrap().iter().filter(|e| e["type"] == "thread.assigned").collect();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0]["payload"]["assignee_id"], json!(me.id));
    assert_eq!(assigned[0]["payload"]["assigned_by"], json!(me.id));

    // A user of another account, a bad id, no token: refused; nothing changes.
    let (other, _) = h.account(Role::Owner).await;
    let stranger = h.state.crm().create_user(other, "fora@example.com", "Fora", Role::Agent, PASSWORD).await.unwrap();
    let r = b.post(&h.api, &path, &[("csrf", &csrf), ("assignee", &stranger.id.to_string())]).await;
    assert_eq!(r.status, 404);
    assert_eq!(b.post(&h.api, &path, &[("csrf", &csrf), ("assignee", "x")]).await.status, 422);
    assert_eq!(b.post(&h.api, &path, &[("assignee", "")]).await.status, 403);
    assert_eq!(h.state.crm().thread_state(account, ana).await.unwrap().assignee_id, Some(me.id));
    // Unassigned again.
    assert_eq!(b.post(&h.api, &path, &[("csrf", &csrf), ("assignee", "")]).await.status, 303);
    assert!(!b.get(&h.api, "/dashboard/inbox?filter=mine").await.text().contains("Ana Souza"));
}

/// The next SSE frame (`event:` name and `data:`), skipping comments.
pub(crate) async fn next_frame(
    body: &mut axum::body::BodyDataStream,
    buffer: &mut String,
) -> (String, serde_json::Value) {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if name.is_empty() && data.is_empty() {
                continue;
            }
            return (name, serde_json::from_str(&data).unwrap_or(serde_json::Value::Null));
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open")
            .expect("a chunk");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_event_stream_carries_the_accounts_status_changes_and_nothing_of_other_accounts() {
    let (h, account, token) = setup().await;
    let ana = inbound(&h, account, "+5511987650001", "Ana Souza", "Oi!").await;
    let b = signed_in(&h).await;
    let (other, other_token) = h.account(Role::Owner).await;
    let carla = inbound(&h, other, "+5511987650003", "Carla", "olá").await;

    let request = Request::get("/dashboard/inbox/events").header("cookie", b.cookies()).body(Body::empty()).unwrap();
    let response = crm_http::router(h.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body().into_data_stream();
    let mut buffer = String::new();
    assert_eq!(next_frame(&mut body, &mut buffer).await.0, "ready");

    // The other account sends first; then this account sends, and the
    // provider reports delivery.
    let theirs = json!({ "contact_id": carla, "text": "de outra conta" });
    let theirs = h.api.post("/api/v1/messages").bearer(&other_token).json(theirs).send().await.ok_json(202);
    let mine = json!({ "contact_id": ana, "text": "Oi Ana" });
    let mine = h.api.post("/api/v1/messages").bearer(&token).json(mine).send().await.ok_json(202);
    let id = mine["id"].as_str().unwrap().to_owned();
    let sent = h.api.settled_message(&token, &id).await;
    let report = ProviderStatus {
        provider_message_id: sent["provider_message_id"].as_str().unwrap().to_owned(),
        message_id: None,
        status: MessageStatus::Delivered,
        at: chrono::Utc::now(),
        error: None,
        pricing: None,
    };
    h.state.crm().apply_status_report(account, report).await.unwrap();

    let mut seen = Vec::new();
    loop {
        let (name, data) = next_frame(&mut body, &mut buffer).await;
        assert_ne!(data["message_id"], theirs["id"], "another account's message never arrives");
        assert_ne!(data["contact_id"], json!(carla));
        seen.push((name.clone(), data["status"].clone()));
        if name == "message_status" && data["message_id"] == id.as_str() && data["status"] == "delivered" {
            break;
        }
    }
    assert!(seen.contains(&("message_new".into(), json!("queued"))), "the new message first: {seen:?}");
    assert!(seen.contains(&("message_status".into(), json!("sent"))), "then sent: {seen:?}");

    // A session that ended closes the stream at its next check; a stranger's cookie gets 401.
    let request = Request::get("/dashboard/inbox/events")
        .header("cookie", "crm_session=crs_nope_nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(crm_http::router(h.state.clone()).oneshot(request).await.unwrap().status(), 401);
}

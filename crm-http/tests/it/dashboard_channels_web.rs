//! The channels page with a real WhatsApp Web session (headless Chromium
//! on the local stand-in page, on SQLite): the pairing QR code shown to
//! admins and following each new code (a `channel` event on the dashboard's
//! stream, a new image URL), the image itself, pairing by phone code from
//! the form (a bad number shown in the form), and the connected state.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::json;
use tower::ServiceExt;

use crate::dashboard::EMAIL;
use crate::dashboard_inbox::next_frame;
use crate::dashboard_pages::{account, signed_in_as};
use crate::helpers::{Api, Harness, temp_dir};
use crate::whatsapp_web::web_page;

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The QR image's URL on the page, if it shows one.
fn qr_src(html: &str, channel: &str) -> Option<String> {
    let start = format!(r#"src="/dashboard/channels/{channel}/qr.png?v="#);
    let from = html.find(&start)? + start.len();
    Some(html[from..from + 16].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channels_page_follows_the_pairing_qr_live_and_pairs_by_code() {
    let test = "the_channels_page_follows_the_pairing_qr_live_and_pairs_by_code";
    let Some(chromium) = crm_core::testing::service_url("CRM_TEST_CHROMIUM", test) else { return };
    let page = web_page::FakeWhatsApp::start(crm_whatsapp::web::PINNED_VERSION).await;
    let data = temp_dir("waweb-dash");
    let h = Harness::sqlite_with(|c| {
        c.data_dir = data.clone();
        c.whatsapp_web_chromium = chromium.into();
        c.whatsapp_web_url = page.url().into();
        c.whatsapp_web_lease_secs = 6;
    })
    .await;
    let api = &Api::router(h.state.clone());
    let (_, key) = account(&h).await;
    let channel = json!({ "kind": "whatsapp-web", "name": "Celular da Loja" });
    let id = crate::helpers::id(&api.post("/api/v1/channels").bearer(&key).json(channel).send().await.ok_json(201));
    let b = signed_in_as(api, EMAIL).await;

    // The session opens and pairs: the page shows the code's image.
    until("the QR code on the page", async || qr_src(&b.get(api, "/dashboard/channels").await.text(), &id).is_some())
        .await;
    let html = b.get(api, "/dashboard/channels").await.text();
    assert!(html.contains(r#"data-session="pairing""#) && html.contains("Aguardando pareamento"), "{html}");
    let first = qr_src(&html, &id).unwrap();
    let png = b.get(api, &format!("/dashboard/channels/{id}/qr.png?v={first}")).await;
    png.expect(200);
    assert_eq!(png.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(&png.body[..4], b"\x89PNG");
    // An agent sees the state but not the code.
    let agent = signed_in_as(api, "agent@example.com").await;
    assert!(qr_src(&agent.get(api, "/dashboard/channels").await.text(), &id).is_none());
    assert_eq!(agent.get(api, &format!("/dashboard/channels/{id}/qr.png")).await.status, 403);

    // A new code: a `channel` event on the page's stream, and a new image URL.
    let request = Request::get("/dashboard/inbox/events").header("cookie", b.cookies()).body(Body::empty()).unwrap();
    let response = crm_http::router(h.state.clone()).oneshot(request).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    let mut buffer = String::new();
    assert_eq!(next_frame(&mut body, &mut buffer).await.0, "ready");
    page.command(json!({ "op": "qr" }));
    loop {
        let (name, _) = next_frame(&mut body, &mut buffer).await;
        if name == "channel" {
            break;
        }
    }
    until("the new code on the page", async || {
        qr_src(&b.get(api, "/dashboard/channels").await.text(), &id).is_some_and(|v| v != first)
    })
    .await;

    // Pairing by code from the form: a bad number is shown in the form; a good one gets the code.
    let csrf = b.csrf.clone();
    let pair = format!("/dashboard/channels/{id}/pair");
    assert_eq!(b.post(api, &pair, &[("phone", "+5511987654321")]).await.status, 403);
    let r = b.post(api, &pair, &[("csrf", &csrf), ("phone", "12")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains(&format!(r#"id="pair-error-{id}""#)) && r.text().contains(r#"value="12""#));
    assert!(page.pairing_requests().is_empty(), "nothing asked of WhatsApp");
    let r = b.post(api, &pair, &[("csrf", &csrf), ("phone", "+55 11 98765-4321")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(&format!(r#"id="pairing-code">{}<"#, web_page::PAIRING_CODE)), "{}", r.text());
    assert_eq!(page.pairing_requests(), vec!["5511987654321"]);

    // The phone pairs: connected, no code any more.
    page.command(json!({ "op": "pair", "phone": "5511900000000" }));
    until("connected", async || b.get(api, "/dashboard/channels").await.text().contains(r#"data-session="connected""#))
        .await;
    let html = b.get(api, "/dashboard/channels?lang=en").await.text();
    assert!(qr_src(&html, &id).is_none() && html.contains("Connected"), "{html}");
    assert_eq!(b.get(api, &format!("/dashboard/channels/{id}/qr.png")).await.status, 404);

    drop(body);
    let Some(running) = h.server else { unreachable!() };
    running.stop().await.expect("stop");
    let _ = std::fs::remove_dir_all(&data);
}

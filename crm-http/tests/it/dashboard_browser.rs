//! The dashboard driven end to end in real headless Chromium (chromiumoxide)
//! against a real server on SQLite: log in with the owner login the first
//! start created, read the overview's metrics over data seeded through the
//! API, switch languages, search a contact, log out; a wrong password and a
//! form posted without the CSRF token are refused.
//!
//! Needs Chromium: `CRM_TEST_CHROMIUM` names the binary (`.ci/run` sets it);
//! unset, the test prints SKIPPED (and fails under `CRM_TEST_REQUIRE_ALL`).
//! With `CRM_DASHBOARD_SCREENSHOTS=<folder>` it saves screenshots of each
//! page at desktop and phone widths there (the committed set is in
//! `docs/screenshots/`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;
use serde_json::json;

use crate::dashboard::seed_overview;
use crate::helpers::Harness;

const WAIT: Duration = Duration::from_secs(20);

/// A temporary Chromium profile, removed at the end.
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn launch(chromium: &str) -> (Browser, tokio::task::JoinHandle<()>, Profile) {
    let profile = Profile(std::env::temp_dir().join(format!("crm-dashboard-e2e-{}", uuid::Uuid::now_v7())));
    std::fs::create_dir_all(&profile.0).unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .user_data_dir(&profile.0)
        .no_sandbox()
        .window_size(1280, 900)
        .args(["disable-gpu", "disable-background-networking", "disable-component-update", "no-first-run"])
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, driver, profile)
}

/// Evaluates `js` (an expression) and returns its JSON value.
async fn eval(page: &Page, js: &str) -> serde_json::Value {
    page.evaluate(js).await.unwrap_or_else(|e| panic!("{js}: {e}")).into_value().unwrap_or(serde_json::Value::Null)
}

/// Waits until `js` is true on the page (panics with the page's text after [`WAIT`]).
async fn until(page: &Page, js: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(v) = page.evaluate(js).await
            && v.into_value::<bool>().unwrap_or(false)
        {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let text = eval(page, "document.body ? document.body.innerText : ''").await;
            panic!("timed out waiting for `{js}`; the page says: {text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types `text` into the field `selector`.
async fn fill(page: &Page, selector: &str, text: &str) {
    page.find_element(selector).await.unwrap().click().await.unwrap().type_str(text).await.unwrap();
}

/// Clicks `selector` and waits for the next page whose path is `path`.
async fn submit(page: &Page, selector: &str, path: &str) {
    eval(page, "window.__before = true").await;
    page.find_element(selector).await.unwrap().click().await.unwrap();
    until(page, &format!("!window.__before && location.pathname === '{path}' && document.readyState === 'complete'"))
        .await;
}

/// Saves the page at desktop and phone widths when screenshots are asked for.
async fn screenshots(page: &Page, dir: Option<&Path>, name: &str) {
    let Some(dir) = dir else { return };
    std::fs::create_dir_all(dir).unwrap();
    for (suffix, width, height, mobile) in [("desktop", 1280, 900, false), ("phone", 390, 844, true)] {
        page.execute(SetDeviceMetricsOverrideParams::new(width, height, 1.0, mobile)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let path = dir.join(format!("{name}-{suffix}.png"));
        page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path).await.unwrap();
    }
    page.execute(SetDeviceMetricsOverrideParams::new(1280, 900, 1.0, false)).await.unwrap();
}

#[tokio::test]
async fn the_dashboard_in_headless_chromium() {
    let Some(chromium) = crm_core::testing::service_url("CRM_TEST_CHROMIUM", "the_dashboard_in_headless_chromium")
    else {
        return;
    };
    let shots = std::env::var("CRM_DASHBOARD_SCREENSHOTS").ok().filter(|s| !s.is_empty()).map(PathBuf::from);
    let h = Harness::sqlite().await;
    let server = h.server.as_ref().unwrap();
    let (key, base) = (server.admin_key.clone(), server.base.clone());
    let (email, password) = server.owner_login.clone();

    // Data through the API: three contacts, one won; three messages sent.
    let names = ["Ana Souza", "Bruno Lima", "Carla Dias"];
    seed_overview(&h.api, &key, &names, &["Olá, Ana!", "Seu pedido saiu.", "Obrigado!"]).await;

    let (mut browser, driver, _profile) = launch(&chromium).await;
    let page = browser.new_page(format!("{base}/dashboard")).await.unwrap();
    // Not signed in: the login page, in the browser's language (headless
    // Chromium asks for en-US); the PT switch turns it Portuguese, and the
    // choice is remembered.
    until(&page, "location.pathname === '/dashboard/login' && !!document.querySelector('#login-form')").await;
    assert_eq!(eval(&page, "document.documentElement.lang").await, "en");
    page.find_element("a[hreflang='pt-BR']").await.unwrap().click().await.unwrap();
    until(&page, "document.documentElement.lang === 'pt-BR' && !!document.querySelector('#login-form')").await;
    page.goto(format!("{base}/dashboard/login")).await.unwrap();
    until(&page, "document.documentElement.lang === 'pt-BR'").await;
    screenshots(&page, shots.as_deref(), "login").await;

    // A wrong password is refused.
    fill(&page, "#email", &email).await;
    fill(&page, "#password", "not the password").await;
    submit(&page, "#login-submit", "/dashboard/login").await;
    until(&page, "!!document.querySelector('#login-error')").await;
    assert_eq!(eval(&page, "document.querySelector('#login-error').textContent").await, "E-mail ou senha incorretos.");

    // A form posted without the CSRF token is refused, even from the page itself.
    let status = eval(
        &page,
        &format!(
            "fetch('/dashboard/login', {{ method: 'POST', body: new URLSearchParams({{ email: '{email}', password: '{password}' }}) }}).then(r => r.status)"
        ),
    )
    .await;
    assert_eq!(status, 403);

    // The right password: the overview.
    eval(&page, "document.querySelector('#email').value = ''").await;
    fill(&page, "#email", &email).await;
    fill(&page, "#password", &password).await;
    submit(&page, "#login-submit", "/dashboard").await;
    until(&page, "!!document.querySelector('[data-metric=messages_sent]')").await;
    let metric = |name: &str| format!("document.querySelector('[data-metric={name}]').textContent.trim()");
    assert_eq!(eval(&page, &metric("messages_sent")).await, "3");
    assert_eq!(eval(&page, &metric("conversion")).await, "33.3%", "one of three new contacts won");
    assert_eq!(eval(&page, &metric("active_users")).await, "1");
    assert_eq!(eval(&page, "document.querySelector('[data-stage=won]').textContent").await, "1");
    assert_eq!(eval(&page, "document.querySelectorAll('.chart svg').length").await, 2);
    // The session cookie is not readable by scripts.
    assert_eq!(eval(&page, "document.cookie.includes('crm_session')").await, false);
    screenshots(&page, shots.as_deref(), "overview").await;

    // English on request.
    page.goto(format!("{base}/dashboard?lang=en")).await.unwrap();
    until(&page, "document.documentElement.lang === 'en'").await;
    assert_eq!(eval(&page, "document.querySelector('#logout').textContent").await, "Log out");
    page.goto(format!("{base}/dashboard/contacts?lang=pt-BR")).await.unwrap();
    until(&page, "document.documentElement.lang === 'pt-BR' && !!document.querySelector('#q')").await;

    // Search a contact.
    fill(&page, "#q", "ana").await;
    submit(&page, "#search-submit", "/dashboard/contacts").await;
    let rows =
        eval(&page, "[...document.querySelectorAll('#contacts tbody tr')].map(r => r.cells[0].textContent)").await;
    assert_eq!(rows, json!(["Ana Souza"]));
    screenshots(&page, shots.as_deref(), "contacts").await;

    // Log out: back to the login page, and the overview is closed again.
    submit(&page, "#logout", "/dashboard/login").await;
    page.goto(format!("{base}/dashboard")).await.unwrap();
    until(&page, "location.pathname === '/dashboard/login'").await;

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    h.stop().await;
}

/// A channel kind whose provider has WhatsApp's 24-hour customer-service
/// window, sending through a recording messenger the test can read.
#[derive(Debug, Clone)]
struct Windowed(crm_core::RecordingMessenger);

#[crm_core::async_trait]
impl crm_core::MessengerFactory for Windowed {
    fn kind(&self) -> &str {
        "windowed"
    }

    fn validate(&self, _: &crm_core::Channel, _: Option<&crm_core::secrets::Credentials>) -> crm_core::Result<()> {
        Ok(())
    }

    async fn build(
        &self,
        _: &crm_core::Channel,
        _: crm_core::secrets::Credentials,
    ) -> crm_core::Result<std::sync::Arc<dyn crm_core::Messenger>> {
        Ok(std::sync::Arc::new(self.0.clone()))
    }
}

#[tokio::test]
async fn the_inbox_in_headless_chromium() {
    let Some(chromium) = crm_core::testing::service_url("CRM_TEST_CHROMIUM", "the_inbox_in_headless_chromium") else {
        return;
    };
    let shots = std::env::var("CRM_DASHBOARD_SCREENSHOTS").ok().filter(|s| !s.is_empty()).map(PathBuf::from);
    let mut caps = crm_core::Capabilities::everything();
    caps.customer_service_window = Some(Duration::from_secs(24 * 3600));
    let provider = crm_core::RecordingMessenger::new().with_capabilities(caps);
    let factory = Windowed(provider.clone());
    let h = crate::helpers::Harness::sqlite_builder(|_| {}, move |b| b.messenger_factory(std::sync::Arc::new(factory)))
        .await;
    let server = h.server.as_ref().unwrap();
    let (key, base, account) = (server.admin_key.clone(), server.base.clone(), server.account_id);
    let (email, password) = server.owner_login.clone();
    let crm = h.state.crm().clone();

    // Through the API: a WhatsApp-like default channel, a template, and two
    // contacts — Ana wrote a moment ago (window open), Bruno never did.
    let channel = json!({ "kind": "windowed", "name": "WhatsApp", "is_default": true });
    h.api.post("/api/v1/channels").bearer(&key).json(channel).send().await.expect(201);
    let template = json!({ "name": "pedido_pronto", "language": "pt_BR",
        "body": "Olá {{name}}, seu pedido {{pedido}} está pronto para retirada." });
    h.api.post("/api/v1/templates").bearer(&key).json(template).send().await.expect(201);
    let bruno = crate::helpers::create_contact(&h.api, &key, "Bruno Lima", 2).await["id"].as_str().unwrap().to_owned();
    let write = |text: &str| crm_core::InboundMessage {
        from: "+5511987650001".into(),
        whatsapp_id: None,
        profile_name: Some("Ana Souza".into()),
        provider_message_id: Some(format!("wamid.{}", uuid::Uuid::now_v7().simple())),
        content: crm_core::MessageContent::text(text),
        sent_at: None,
        reply_to: None,
    };
    let ana = crm.record_inbound(account, write("Oi! Vocês abrem no sábado?")).await.unwrap().message.contact_id;
    crm.record_inbound(account, write("E aceitam Pix?")).await.unwrap();

    let (mut browser, driver, _profile) = launch(&chromium).await;
    let page = browser.new_page(format!("{base}/dashboard/login?lang=pt-BR")).await.unwrap();
    until(&page, "!!document.querySelector('#login-form')").await;
    fill(&page, "#email", &email).await;
    fill(&page, "#password", &password).await;
    submit(&page, "#login-submit", "/dashboard").await;

    // The list: Ana's thread first, two unread.
    page.goto(format!("{base}/dashboard/inbox")).await.unwrap();
    until(&page, "!!document.querySelector('#threads .thread-item')").await;
    let first = "document.querySelector('#threads .thread-item')";
    assert_eq!(eval(&page, &format!("{first}.querySelector('.who').textContent")).await, "Ana Souza");
    assert_eq!(eval(&page, &format!("{first}.querySelector('.badge').dataset.unread")).await, "2");
    screenshots(&page, shots.as_deref(), "inbox").await;

    // Open it (keyboard: focus the link, press Enter): read, window open, live.
    page.find_element("#threads .thread-item a")
        .await
        .unwrap()
        .focus()
        .await
        .unwrap()
        .press_key("Enter")
        .await
        .unwrap();
    until(&page, &format!("location.pathname === '/dashboard/inbox/{ana}' && !!document.querySelector('#send-form')"))
        .await;
    until(&page, "document.getElementById('inbox').dataset.live === 'on'").await;
    assert_eq!(eval(&page, "document.querySelectorAll('#messages .msg.inbound').length").await, 2);
    assert_eq!(eval(&page, "document.querySelectorAll('#threads .badge').length").await, 0, "opened: read");

    // Send from the box; the page that comes back shows the message, then
    // its ticks move live as the dispatcher and the provider report.
    fill(&page, "#text", "Abrimos sim, das 9h as 13h. Aceitamos Pix!").await;
    submit(&page, "#send-submit", &format!("/dashboard/inbox/{ana}")).await;
    until(&page, "document.getElementById('inbox').dataset.live === 'on'").await;
    eval(&page, "window.__samePage = true").await;
    let last_tick = "[...document.querySelectorAll('#messages .msg.outbound .tick')].pop()";
    until(&page, &format!("['queued', 'sent'].includes({last_tick}.dataset.status)")).await;
    let sent = loop {
        if let Some(s) = provider.sent().into_iter().last() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sent.message.content, crm_core::MessageContent::text("Abrimos sim, das 9h as 13h. Aceitamos Pix!"));
    until(&page, &format!("{last_tick}.dataset.status === 'sent' && {last_tick}.textContent === '✓'")).await;
    let report = |status| crm_core::ProviderStatus {
        provider_message_id: sent.provider_message_id.clone(),
        message_id: None,
        status,
        at: chrono::Utc::now(),
        error: None,
        pricing: None,
    };
    crm.apply_status_report(account, report(crm_core::MessageStatus::Delivered)).await.unwrap();
    until(&page, &format!("{last_tick}.dataset.status === 'delivered' && {last_tick}.textContent === '✓✓'")).await;
    crm.apply_status_report(account, report(crm_core::MessageStatus::Read)).await.unwrap();
    until(
        &page,
        &format!("{last_tick}.dataset.status === 'read' && {last_tick}.getAttribute('aria-label') === 'Lida'"),
    )
    .await;
    assert_eq!(eval(&page, "window.__samePage === true").await, true, "no reload: the ticks moved live");
    // A new message from Ana appears in the open thread, still without a reload.
    crm.record_inbound(account, write("Perfeito, obrigada!")).await.unwrap();
    until(&page, "[...document.querySelectorAll('#messages .msg.inbound .body')].some(b => b.textContent === 'Perfeito, obrigada!')")
        .await;
    assert_eq!(eval(&page, "window.__samePage === true").await, true);
    screenshots(&page, shots.as_deref(), "inbox-thread").await;

    // Bruno never wrote: the box says the window is closed and why, and
    // offers the template with its field to fill.
    page.goto(format!("{base}/dashboard/inbox/{bruno}")).await.unwrap();
    until(&page, "!!document.querySelector('#window-closed')").await;
    assert_eq!(eval(&page, "!!document.querySelector('#send-form')").await, false);
    let text = eval(&page, "document.querySelector('#window-closed').textContent").await;
    assert!(text.as_str().unwrap().contains("24 horas"), "{text}");
    let form = "form[data-template='pedido_pronto']";
    assert_eq!(eval(&page, &format!("!!document.querySelector(\"{form} input[name='var.pedido']\")")).await, true);
    screenshots(&page, shots.as_deref(), "inbox-template").await;
    fill(&page, &format!("{form} input[name='var.pedido']"), "#4521").await;
    submit(&page, &format!("{form} button[type=submit]"), &format!("/dashboard/inbox/{bruno}")).await;
    until(
        &page,
        "[...document.querySelectorAll('#messages .msg.outbound .body')].some(b => b.textContent.includes('#4521'))",
    )
    .await;
    let body = eval(&page, "document.querySelector('#messages .msg.outbound .body').textContent").await;
    assert_eq!(body, "Olá Bruno Lima, seu pedido #4521 está pronto para retirada.");

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    h.stop().await;
}

/// The management pages in headless Chromium against a real server: a
/// running campaign's counters move live (status changes arrive over the
/// event stream and the page re-reads itself, no reload), the Pause button
/// stops it; a webhook delivery's page replays it and shows the second
/// attempt; the channels page; a contact form refusing a number that is not
/// E.164 beside its field, then creating the contact; an API key shown once
/// that works against the API; users and automation. Screenshots of each
/// page when asked for.
#[cfg(feature = "webhooks")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_webhooks_and_channels_in_headless_chromium() {
    let test = "campaigns_webhooks_and_channels_in_headless_chromium";
    let Some(chromium) = crm_core::testing::service_url("CRM_TEST_CHROMIUM", test) else { return };
    let shots = std::env::var("CRM_DASHBOARD_SCREENSHOTS").ok().filter(|s| !s.is_empty()).map(PathBuf::from);
    let h = Harness::sqlite_with(crate::webhooks::allow_loopback).await;
    let server = h.server.as_ref().unwrap();
    let (key, base) = (server.admin_key.clone(), server.base.clone());
    let (email, password) = server.owner_login.clone();
    let api = &h.api;

    // A channel paced at 1 message a second, so the campaign takes a while.
    let channel = json!({ "kind": "recording", "name": "WhatsApp Lento", "is_default": true,
        "pacing": { "per_second": 1, "pair_interval_secs": 0 } });
    api.post("/api/v1/channels").bearer(&key).json(channel).send().await.expect(201);
    for n in 0..40 {
        let body = json!({ "name": format!("Cliente {n}"), "phone": crate::helpers::phone(n), "tags": ["vip"] });
        api.post("/api/v1/contacts").bearer(&key).json(body).send().await.expect(201);
    }
    crate::helpers::create_template(api, &key, "promo", "Oi {{first_name}}, 30% off hoje!").await;
    let body = json!({ "name": "Black Friday", "template": "promo", "audience": { "type": "tag", "tag": "vip" } });
    let cid = crate::helpers::id(&api.post("/api/v1/campaigns").bearer(&key).json(body).send().await.ok_json(201));

    // A webhook endpoint on a receiver here, and a delivery to it.
    let (url, inbox) = crate::webhooks::receiver().await;
    let endpoint = json!({ "url": url, "description": "ERP", "event_types": ["contact.*"] });
    api.post("/api/v1/webhooks/endpoints").bearer(&key).json(endpoint).send().await.expect(201);
    crate::helpers::create_contact(api, &key, "Dora Webhook", 77).await;
    crate::webhooks::wait_for(&inbox, 1).await;

    let (mut browser, driver, _profile) = launch(&chromium).await;
    let page = browser.new_page(format!("{base}/dashboard/login?lang=pt-BR")).await.unwrap();
    until(&page, "!!document.querySelector('#login-form')").await;
    fill(&page, "#email", &email).await;
    fill(&page, "#password", &password).await;
    submit(&page, "#login-submit", "/dashboard").await;

    // The campaign: started from the list, then its page counts live.
    page.goto(format!("{base}/dashboard/campaigns")).await.unwrap();
    until(&page, &format!("!!document.querySelector('[data-campaign=\"{cid}\"] button[data-action=start]')")).await;
    submit(&page, &format!("[data-campaign=\"{cid}\"] button[data-action=start]"), "/dashboard/campaigns").await;
    until(&page, "!!document.querySelector('#notice') && !!document.querySelector('[data-state=running]')").await;
    page.goto(format!("{base}/dashboard/campaigns/{cid}")).await.unwrap();
    until(&page, "document.body.dataset.live === 'on'").await;
    eval(&page, "window.__samePage = true").await;
    let sent = "Number(document.querySelector('[data-counter=sent]').textContent)";
    let first = eval(&page, sent).await.as_u64().unwrap();
    until(&page, &format!("{sent} >= {} && {sent} < 40", first + 2)).await;
    assert_eq!(eval(&page, "window.__samePage === true").await, true, "the counters moved without a reload");
    screenshots(&page, shots.as_deref(), "campaign").await;

    // Pause: the campaign stops and the page says so.
    submit(&page, "button[data-action=pause]", &format!("/dashboard/campaigns/{cid}")).await;
    until(
        &page,
        "document.querySelector('#campaign').dataset.state === 'paused' && !!document.querySelector('#notice')",
    )
    .await;
    let v = api.get(&format!("/api/v1/campaigns/{cid}")).bearer(&key).send().await.ok_json(200);
    assert_eq!(v["state"], "paused");
    assert!(v["counters"]["sent"].as_u64().unwrap() < 40, "paused before the end: {v}");
    assert_eq!(eval(&page, "!!document.querySelector('button[data-action=resume]')").await, true);
    page.goto(format!("{base}/dashboard/campaigns")).await.unwrap();
    until(&page, "!!document.querySelector('.campaign')").await;
    screenshots(&page, shots.as_deref(), "campaigns").await;

    // Webhooks: the endpoint, its delivery, a replay that makes a second attempt.
    page.goto(format!("{base}/dashboard/webhooks")).await.unwrap();
    until(&page, "!!document.querySelector('#endpoints')").await;
    screenshots(&page, shots.as_deref(), "webhooks").await;
    page.goto(format!("{base}/dashboard/webhooks/deliveries")).await.unwrap();
    until(&page, "!!document.querySelector('[data-status=succeeded] a')").await;
    screenshots(&page, shots.as_deref(), "webhook-deliveries").await;
    let link = "[data-status=succeeded] a";
    page.find_element(link).await.unwrap().click().await.unwrap();
    until(&page, "!!document.querySelector('#replay') && document.querySelectorAll('.attempt').length === 1").await;
    let path = eval(&page, "location.pathname").await.as_str().unwrap().to_owned();
    submit(&page, "#replay", &path).await;
    until(&page, "!!document.querySelector('#notice')").await;
    crate::webhooks::wait_for(&inbox, 2).await;
    // The page re-reads itself while the delivery is pending.
    until(&page, "document.querySelectorAll('.attempt').length === 2").await;
    screenshots(&page, shots.as_deref(), "webhook-delivery").await;

    // Channels.
    page.goto(format!("{base}/dashboard/channels")).await.unwrap();
    until(&page, "[...document.querySelectorAll('.channel h2')].some(h => h.textContent.includes('WhatsApp Lento'))")
        .await;
    screenshots(&page, shots.as_deref(), "channels").await;

    // A contact from the form: a number that is not E.164 is refused beside
    // its field, with what was typed kept; corrected, the contact is made.
    page.goto(format!("{base}/dashboard/contacts/new")).await.unwrap();
    until(&page, "!!document.querySelector('#contact-form')").await;
    fill(&page, "#c-name", "Eva Nova").await;
    fill(&page, "#c-phone", "9876").await;
    fill(&page, "#c-tags", "vip, sp").await;
    submit(&page, "#contact-save", "/dashboard/contacts/new").await;
    until(&page, "!!document.querySelector('#phone-error')").await;
    assert_eq!(eval(&page, "document.querySelector('#c-phone').getAttribute('aria-invalid')").await, "true");
    assert_eq!(eval(&page, "document.querySelector('#c-name').value").await, "Eva Nova");
    screenshots(&page, shots.as_deref(), "contact-form-error").await;
    eval(&page, "document.querySelector('#c-phone').value = ''").await;
    fill(&page, "#c-phone", "+5511987659999").await;
    eval(&page, "window.__before = true").await;
    page.find_element("#contact-save").await.unwrap().click().await.unwrap();
    until(&page, "!window.__before && location.pathname.startsWith('/dashboard/contacts/') && !!document.querySelector('#notice')")
        .await;
    assert_eq!(eval(&page, "document.querySelector('h1').textContent").await, "Eva Nova");
    screenshots(&page, shots.as_deref(), "contact").await;

    // An API key, shown once.
    page.goto(format!("{base}/dashboard/api-keys")).await.unwrap();
    until(&page, "!!document.querySelector('#key-form')").await;
    fill(&page, "#key-name", "ERP").await;
    submit(&page, "#key-create", "/dashboard/api-keys").await;
    until(&page, "!!document.querySelector('#token-value')").await;
    let token = eval(&page, "document.querySelector('#token-value').textContent").await;
    let token = token.as_str().unwrap().to_owned();
    api.get("/api/v1/contacts").bearer(&token).send().await.expect(200);
    screenshots(&page, shots.as_deref(), "api-keys").await;
    page.goto(format!("{base}/dashboard/users")).await.unwrap();
    until(&page, "!!document.querySelector('#users')").await;
    screenshots(&page, shots.as_deref(), "users").await;
    page.goto(format!("{base}/dashboard/automations")).await.unwrap();
    until(&page, "!!document.querySelector('#no-rules') || !!document.querySelector('#rules')").await;
    screenshots(&page, shots.as_deref(), "automations").await;

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    h.stop().await;
}

//! The dashboard over HTTP: login, logout, the CSRF check, cookie flags,
//! languages, the overview's metrics over data made through the API, and
//! contact search.

use serde_json::json;

use crm_core::Role;
use crm_http::Settings;

use crate::helpers::{Api, Harness, Resp, create_contact};

pub(crate) const EMAIL: &str = "dona@example.com";
pub(crate) const PASSWORD: &str = "uma senha bem comprida";

/// Every `Set-Cookie` of a response.
fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
}

/// The value a response sets for cookie `name`.
pub(crate) fn set_cookie(r: &Resp, name: &str) -> Option<(String, String)> {
    set_cookies(r).into_iter().find_map(|line| {
        let (pair, _) = line.split_once(';').unwrap_or((&line, ""));
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| (v.to_owned(), line.clone()))
    })
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// A browser's cookie jar, just enough for these tests.
#[derive(Debug, Default)]
pub(crate) struct Browser {
    pub(crate) csrf: String,
    pub(crate) session: Option<String>,
}

impl Browser {
    pub(crate) fn cookies(&self) -> String {
        let mut c = format!("crm_csrf={}", self.csrf);
        if let Some(s) = &self.session {
            c.push_str(&format!("; crm_session={s}"));
        }
        c
    }

    /// Opens the login page and keeps its CSRF cookie.
    pub(crate) async fn open(api: &Api) -> Self {
        let r = api.get("/dashboard/login").send().await;
        r.expect(200);
        let (csrf, line) = set_cookie(&r, "crm_csrf").expect("a CSRF cookie");
        assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"), "{line}");
        assert!(r.text().contains(&format!(r#"name="csrf" value="{csrf}""#)), "the form carries the token");
        Self { csrf, session: None }
    }

    pub(crate) async fn post(&self, api: &Api, path: &str, fields: &[(&str, &str)]) -> Resp {
        api.post(path)
            .header("cookie", &self.cookies())
            .raw("application/x-www-form-urlencoded", form(fields))
            .send()
            .await
    }

    pub(crate) async fn get(&self, api: &Api, path: &str) -> Resp {
        api.get(path).header("cookie", &self.cookies()).send().await
    }

    pub(crate) async fn log_in(&mut self, api: &Api, password: &str) -> Resp {
        let csrf = self.csrf.clone();
        let r = self.post(api, "/dashboard/login", &[("csrf", &csrf), ("email", EMAIL), ("password", password)]).await;
        if let Some((session, _)) = set_cookie(&r, "crm_session") {
            self.session = Some(session);
        }
        if let Some((csrf, _)) = set_cookie(&r, "crm_csrf") {
            self.csrf = csrf;
        }
        r
    }
}

/// Through the API: one contact per name (the first moved to `won`) and
/// one text message to the first per text. Returns the first contact's id.
pub async fn seed_overview(api: &Api, token: &str, names: &[&str], texts: &[&str]) -> String {
    let mut first = None;
    for (n, name) in (1..).zip(names) {
        let contact = create_contact(api, token, name, n).await;
        first.get_or_insert(contact["id"].as_str().unwrap().to_owned());
    }
    let id = first.expect("at least one contact");
    let won = json!({ "lead_stage": "won" });
    api.patch(&format!("/api/v1/contacts/{id}")).bearer(token).json(won).send().await.expect(200);
    for text in texts {
        let body = json!({ "contact_id": id, "text": text });
        api.post("/api/v1/messages").bearer(token).json(body).send().await.expect(202);
    }
    id
}

pub(crate) async fn harness_with_user(settings: Settings) -> (Harness, String) {
    let h = Harness::memory_with(settings, Vec::new()).await;
    let (account, token) = h.account(Role::Owner).await;
    h.state.crm().create_user(account, EMAIL, "Dona Maria", Role::Owner, PASSWORD).await.unwrap();
    (h, token)
}

#[tokio::test]
async fn login_sets_an_http_only_lax_session_cookie_and_logout_ends_the_session() {
    let (h, _) = harness_with_user(Settings::default()).await;
    let r = h.api.get("/dashboard").send().await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/dashboard/login"));

    let mut browser = Browser::open(&h.api).await;
    let r = browser.log_in(&h.api, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location").as_deref(), Some("/dashboard"));
    let (session, line) = set_cookie(&r, "crm_session").expect("a session cookie");
    assert!(session.starts_with("crs_"), "a login session token");
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Lax") && line.contains("Path=/dashboard"), "{line}");
    assert!(!line.contains("Secure"), "no TLS configured: {line}");
    let page = browser.get(&h.api, "/dashboard").await;
    page.expect(200);
    assert!(page.text().contains("Dona Maria"), "the signed-in user is shown");
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));

    // Logging out needs the form's token too.
    let r = browser.post(&h.api, "/dashboard/logout", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(browser.get(&h.api, "/dashboard").await.status, 200, "a refused logout leaves the session");
    let csrf = browser.csrf.clone();
    let r = browser.post(&h.api, "/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/dashboard/login"));
    let (cleared, line) = set_cookie(&r, "crm_session").expect("the cookie is cleared");
    assert!(cleared.is_empty() && line.contains("Max-Age=0"), "{line}");
    // The old token no longer works, even if a browser kept it.
    let r = browser.get(&h.api, "/dashboard").await;
    assert_eq!(r.status, 303, "the session was ended on the server");
}

#[tokio::test]
async fn a_wrong_password_and_a_post_without_the_csrf_token_are_refused() {
    let (h, _) = harness_with_user(Settings::default()).await;
    let mut browser = Browser::open(&h.api).await;
    let r = browser.log_in(&h.api, "not the password").await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("E-mail ou senha incorretos."), "{}", r.text());
    assert!(set_cookie(&r, "crm_session").is_none());

    // The right password without the form's token: refused before any check.
    let r = browser.post(&h.api, "/dashboard/login", &[("email", EMAIL), ("password", PASSWORD)]).await;
    assert_eq!(r.status, 403);
    assert!(set_cookie(&r, "crm_session").is_none());
    // A token that differs from the cookie (another site's guess).
    let r = browser
        .post(&h.api, "/dashboard/login", &[("csrf", &"0".repeat(64)), ("email", EMAIL), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, 403);
    // No cookie at all, token in the form.
    let r = h
        .api
        .post("/dashboard/login")
        .raw(
            "application/x-www-form-urlencoded",
            form(&[("csrf", &browser.csrf), ("email", EMAIL), ("password", PASSWORD)]),
        )
        .send()
        .await;
    assert_eq!(r.status, 403);
    // With both, the same password works.
    assert_eq!(browser.log_in(&h.api, PASSWORD).await.status, 303);
}

#[tokio::test]
async fn cookies_are_secure_when_the_server_is_behind_tls() {
    let (h, _) = harness_with_user(Settings { secure_cookies: true, ..Settings::default() }).await;
    let mut browser = Browser::open(&h.api).await;
    let r = h.api.get("/dashboard/login").send().await;
    assert!(set_cookie(&r, "crm_csrf").unwrap().1.contains("; Secure"));
    let r = browser.log_in(&h.api, PASSWORD).await;
    assert!(set_cookie(&r, "crm_session").unwrap().1.contains("; Secure"));
}

#[tokio::test]
async fn portuguese_by_default_english_by_header_or_switch() {
    let (h, _) = harness_with_user(Settings::default()).await;
    let pt = h.api.get("/dashboard/login").send().await;
    assert!(pt.text().contains(r#"<html lang="pt-BR">"#) && pt.text().contains("Senha"));
    let en = h.api.get("/dashboard/login").header("accept-language", "en-GB,en;q=0.9").send().await;
    assert!(en.text().contains(r#"<html lang="en">"#) && en.text().contains("Password"));
    let switched = h.api.get("/dashboard/login?lang=en").send().await;
    assert!(switched.text().contains("Password"));
    let (lang, line) = set_cookie(&switched, "crm_lang").expect("the choice is remembered");
    assert_eq!(lang, "en");
    assert!(line.contains("Max-Age="));
    let remembered = h.api.get("/dashboard/login").header("cookie", "crm_lang=en").send().await;
    assert!(remembered.text().contains("Password"));
}

#[tokio::test]
async fn the_assets_are_served_from_the_binary() {
    let (h, _) = harness_with_user(Settings::default()).await;
    let css = h.api.get("/dashboard/assets/app.css").send().await;
    css.expect(200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(css.text().contains(":focus-visible"));
    let js = h.api.get("/dashboard/assets/app.js").send().await;
    js.expect(200);
    assert!(js.header("content-type").unwrap().starts_with("text/javascript"));
    let page = h.api.get("/dashboard/login").send().await.text();
    assert!(!page.contains("http://") && !page.contains("https://"), "nothing is loaded from elsewhere");
}

#[tokio::test]
async fn the_overview_shows_metrics_over_data_made_through_the_api() {
    let (h, token) = harness_with_user(Settings::default()).await;
    seed_overview(&h.api, &token, &["Ana", "Bruno"], &["Olá", "Tudo bem?"]).await;
    let mut browser = Browser::open(&h.api).await;
    browser.log_in(&h.api, PASSWORD).await;
    // The window ends at the clock's now (exclusive): step past what was just written.
    h.clock.as_ref().unwrap().advance(std::time::Duration::from_secs(1));
    let page = browser.get(&h.api, "/dashboard").await;
    page.expect(200);
    let html = page.text();
    assert!(html.contains(r#"data-metric="active_users">1<"#), "one user logged in: {html}");
    assert!(html.contains(r#"data-metric="messages_sent">2<"#), "two messages sent");
    assert!(html.contains(r#"data-metric="conversion">50.0%<"#), "one of two new contacts won");
    assert!(html.contains(r#"data-metric="response_time">sem dados<"#), "nothing inbound yet");
    assert!(html.contains(r#"data-stage="won">1<"#) && html.contains(r#"data-stage="new">1<"#), "the funnel");
    assert!(html.contains("<svg"), "charts are inline SVG");
    assert!(html.contains(r#"role="tooltip""#), "every metric has its definition");
}

#[tokio::test]
async fn contacts_are_searched_and_filtered() {
    let (h, token) = harness_with_user(Settings::default()).await;
    create_contact(&h.api, &token, "Ana Souza", 1).await;
    let bruno = create_contact(&h.api, &token, "Bruno Lima", 2).await;
    let id = bruno["id"].as_str().unwrap();
    h.api
        .post(&format!("/api/v1/contacts/{id}/tags"))
        .bearer(&token)
        .json(json!({ "tags": ["vip"] }))
        .send()
        .await
        .expect(200);
    let mut browser = Browser::open(&h.api).await;
    assert_eq!(browser.get(&h.api, "/dashboard/contacts").await.status, 303, "signed-in users only");
    browser.log_in(&h.api, PASSWORD).await;
    let all = browser.get(&h.api, "/dashboard/contacts").await.text();
    assert!(all.contains("Ana Souza") && all.contains("Bruno Lima"));
    let found = browser.get(&h.api, "/dashboard/contacts?q=ana").await.text();
    assert!(found.contains("Ana Souza") && !found.contains("Bruno Lima"), "{found}");
    let vip = browser.get(&h.api, "/dashboard/contacts?tag=vip").await.text();
    assert!(vip.contains("Bruno Lima") && !vip.contains("Ana Souza"), "{vip}");
    let none = browser.get(&h.api, "/dashboard/contacts?q=zzz").await.text();
    assert!(none.contains(r#"id="no-contacts""#));
    let bad = browser.get(&h.api, "/dashboard/contacts?stage=nonsense").await;
    assert_eq!(bad.status, 400);
    let injected = browser.get(&h.api, "/dashboard/contacts?q=%3Cscript%3E").await.text();
    assert!(!injected.contains("<script>"), "input is escaped");
}

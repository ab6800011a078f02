//! Issue #7: bounds on what grows from input, content rules, data exposure
//! and authentication hardening. One test per finding.

use crm_core::Role;
use serde_json::json;

use crm_http::import::{MAX_LISTED_REJECTIONS, MAX_ROW_BYTES, import_csv_with};

use crate::helpers::{Harness, create_contact, create_template, id, temp_dir};

/// 819 placeholders (4,095 characters, a valid body) times a 100 kB value
/// would be an 82 MB preview: refused with 422 naming the limit.
#[tokio::test]
async fn render_refuses_output_past_the_preview_limit_with_422() {
    let h = Harness::memory().await;
    let (a, admin) = h.account(Role::Admin).await;
    let agent = h.key(a, Role::Agent).await;
    let t = create_template(&h.api, &admin, "amplifier", &"{{a}}".repeat(819)).await;
    let path = format!("/api/v1/templates/{}/render", id(&t));
    for mode in ["strict", "lenient"] {
        let p = h
            .api
            .post(&path)
            .bearer(&agent)
            .json(json!({ "variables": { "a": "x".repeat(100_000) }, "mode": mode }))
            .send()
            .await
            .problem(422, "validation");
        assert_eq!(p["field"], "variables", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("16384 characters"), "names the limit: {p}");
    }
    // Right at the limit it renders.
    let r = h
        .api
        .post(&path)
        .bearer(&agent)
        .json(json!({ "variables": { "a": "y".repeat(20) } }))
        .send()
        .await
        .ok_json(200);
    assert_eq!(r["rendered"].as_str().unwrap().len(), 819 * 20);
}

#[tokio::test]
async fn viewers_cannot_render_templates() {
    let h = Harness::memory().await;
    let (a, admin) = h.account(Role::Admin).await;
    let viewer = h.key(a, Role::Viewer).await;
    let t = create_template(&h.api, &admin, "hello", "Oi {{name}}").await;
    h.api
        .post(&format!("/api/v1/templates/{}/render", id(&t)))
        .bearer(&viewer)
        .json(json!({ "variables": { "name": "Ana" } }))
        .send()
        .await
        .problem(403, "forbidden");
}

#[tokio::test]
async fn a_template_send_past_the_whatsapp_body_limit_is_422() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    let contact = create_contact(&h.api, &token, "Ana", 1).await;
    create_template(&h.api, &token, "amplifier", &"{{a}}".repeat(819)).await;
    let p = h
        .api
        .post("/api/v1/messages")
        .bearer(&token)
        .json(json!({ "contact_id": id(&contact), "template": { "name": "amplifier", "variables": { "a": "x".repeat(6) } } }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "variables", "refused while rendering, not after: {p}");
    assert!(p["detail"].as_str().unwrap().contains("4096 characters"), "names the limit: {p}");
}

/// Free text labelled as a template is refused: the template must be stored
/// and the text must be what the service renders from it.
#[tokio::test]
async fn template_content_must_be_a_stored_template_rendered_by_the_service() {
    let h = Harness::memory().await;
    let (a, admin) = h.account(Role::Admin).await;
    let agent = h.key(a, Role::Agent).await;
    let cid = id(&create_contact(&h.api, &admin, "Ana", 1).await);
    create_template(&h.api, &admin, "order_ready", "Oi {{first_name}}, pedido {{order}}").await;
    let send = |content: serde_json::Value| {
        let body = json!({ "contact_id": cid, "content": content });
        let (api, agent) = (&h.api, &agent);
        async move { api.post("/api/v1/messages").bearer(agent).json(body).send().await }
    };
    let template = |name: &str, rendered: &str| json!({ "type": "template", "name": name, "language": "pt_BR", "variables": { "order": "#1" }, "rendered": rendered });
    send(template("x", "<any text>")).await.problem(404, "not-found");
    let p = send(template("order_ready", "<any text>")).await.problem(422, "validation");
    assert_eq!(p["field"], "content.rendered", "{p}");
    let ok = send(template("order_ready", "Oi Ana, pedido #1")).await.ok_json(202);
    assert_eq!(ok["content"]["rendered"], "Oi Ana, pedido #1");
}

/// Made-up methods on an unknown path add one `other`/`unmatched` series,
/// not one per method.
#[tokio::test]
async fn metrics_labels_come_from_a_closed_set() {
    let h = Harness::memory().await;
    let lines = |text: String| text.lines().filter(|l| l.starts_with("crm_http_")).count();
    h.api.call(axum::http::Method::from_bytes(b"RND0").unwrap(), "/nope").send().await;
    let before = lines(h.api.get("/metrics").send().await.text());
    for i in 1..50 {
        let method = axum::http::Method::from_bytes(format!("RND{i}").as_bytes()).unwrap();
        h.api.call(method, &format!("/nope/{i}")).send().await;
    }
    let text = h.api.get("/metrics").send().await.text();
    assert!(!text.contains("RND"), "{text}");
    assert!(text.contains("method=\"other\",route=\"unmatched\""), "{text}");
    // Only the /metrics request itself may add its own series.
    assert!(lines(text) <= before + 16, "label set grew with made-up methods");
}

/// `user.created` carries e-mails and roles, `api_key.created` key names and
/// prefixes: below admin (who may read `/users` and `/api-keys`) they are
/// redacted to the entity's id; the events stay, so cursors do not move.
#[tokio::test]
async fn events_are_redacted_for_roles_that_cannot_read_users_and_keys() {
    let h = Harness::memory().await;
    let (a, admin) = h.account(Role::Admin).await;
    let viewer = h.key(a, Role::Viewer).await;
    h.api
        .post("/api/v1/users")
        .bearer(&admin)
        .json(json!({ "email": "bia@example.com", "name": "Bia", "role": "agent", "password": "long enough" }))
        .send()
        .await
        .expect(201);
    h.api.post("/api/v1/api-keys").bearer(&admin).json(json!({ "name": "zapier-prod" })).send().await.expect(201);
    let events = |token: String| {
        let api = h.api.clone();
        async move { api.get("/api/v1/events?limit=1000").bearer(&token).send().await.ok_json(200) }
    };
    let seen = events(viewer).await;
    let text = seen.to_string();
    assert!(!text.contains("bia@example.com") && !text.contains("zapier-prod"), "{seen}");
    let items = seen["items"].as_array().unwrap();
    let user = items.iter().find(|e| e["type"] == "user.created").expect("the event is listed");
    assert_eq!(user["payload"]["redacted"], true, "{user}");
    assert!(user["payload"]["id"].is_string(), "{user}");
    let full = events(admin).await;
    assert_eq!(full["items"].as_array().unwrap().len(), items.len());
    assert!(full.to_string().contains("bia@example.com") && full.to_string().contains("zapier-prod"));
}

/// PostgreSQL refuses NUL in text and jsonb (a 503 and an error log per
/// request): every string input is refused at validation, bodies and
/// queries alike.
pub async fn nul_characters_are_refused_everywhere(h: &Harness) {
    let (a, token) = h.account(Role::Admin).await;
    let cid = id(&create_contact(&h.api, &token, "Ana", 1).await);
    create_template(&h.api, &token, "hello", "Oi {{name}}").await;
    for query in ["/api/v1/contacts?search=an%00a", "/api/v1/contacts?tag=v%00ip"] {
        let p = h.api.get(query).bearer(&token).send().await.problem(422, "validation");
        assert_eq!(p["field"], "query", "{p}");
    }
    let bodies = [
        ("/api/v1/messages", json!({ "contact_id": cid, "template": { "name": "hel\u{0}lo" } })),
        ("/api/v1/messages", json!({ "contact_id": cid, "template": { "name": "hello", "language": "pt\u{0}BR" } })),
        ("/api/v1/templates", json!({ "name": "x", "language": "p\u{0}", "body": "x" })),
        ("/api/v1/contacts", json!({ "name": "Bia", "phone": "+5511987650002", "metadata": { "k\u{0}": 1 } })),
        ("/api/v1/contacts", json!({ "name": "B\u{0}ia", "phone": "+5511987650003" })),
    ];
    for (path, body) in bodies {
        let p = h.api.post(path).bearer(&token).json(body).send().await.problem(422, "validation");
        assert_eq!(p["field"], "body", "{p}");
    }
    let (s, l) = ("hel\u{0}lo", "pt_BR");
    let err = h.crm().render_template_for(a, cid.parse().unwrap(), s, l, Default::default());
    assert!(matches!(err.await, Err(crm_core::Error::Validation { .. })), "checked before the lookup");
    let err = crm_core::ContactSearch::parse("an\u{0}a").unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
}

#[tokio::test]
async fn nul_characters_are_refused_in_memory() {
    nul_characters_are_refused_everywhere(&Harness::memory().await).await;
}

#[tokio::test]
async fn nul_characters_are_refused_on_postgres() {
    let Some(h) = Harness::postgres("nul_characters_are_refused_on_postgres").await else { return };
    nul_characters_are_refused_everywhere(&h).await;
    h.stop().await;
}

/// A hostile CSV of one huge quoted field stops the import at the row
/// limit instead of reading the field into memory.
#[tokio::test]
async fn import_refuses_a_row_longer_than_the_limit() {
    let h = Harness::memory().await;
    let (a, _) = h.account(Role::Admin).await;
    let file = temp_dir("long-row").join("long.csv");
    let huge = "x".repeat(4 << 20);
    std::fs::write(&file, format!("name,phone\nAna,+5511987650001\n\"{huge}\",+5511987650002\n")).unwrap();
    let err = import_csv_with(h.crm(), a, &file, "55", 1, 1, false).await.unwrap_err();
    match err {
        crm_core::Error::Validation { field, reason } => {
            assert_eq!(field, "file");
            assert!(reason.contains(&format!("longer than {MAX_ROW_BYTES} bytes")), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The batch before the long row was stored.
    assert_eq!(h.crm().list_contacts(a, &Default::default()).await.unwrap().items.len(), 1);
}

/// Rejected rows are listed up to a bound and counted beyond it.
#[tokio::test]
async fn import_lists_a_bounded_number_of_rejections() {
    let h = Harness::memory().await;
    let (a, _) = h.account(Role::Admin).await;
    let file = temp_dir("rejections").join("bad.csv");
    let rows: String = (0..MAX_LISTED_REJECTIONS + 500).map(|i| format!("Ana {i},not a phone\n")).collect();
    std::fs::write(&file, format!("name,phone\n{rows}")).unwrap();
    let report = import_csv_with(h.crm(), a, &file, "55", 1000, 2, false).await.unwrap();
    assert_eq!(report.imported, 0);
    assert_eq!(report.rejected.len(), MAX_LISTED_REJECTIONS);
    assert_eq!(report.rejected_unlisted, 500);
    assert_eq!(report.rejected_total(), MAX_LISTED_REJECTIONS + 500);
}

/// A batch is one transaction held in memory: its size is bounded, in the
/// service and in the CSV import.
#[tokio::test]
async fn import_batches_are_bounded() {
    let h = Harness::memory().await;
    let (a, _) = h.account(Role::Admin).await;
    let rows = vec![crm_core::NewContact::default(); crm_core::MAX_IMPORT_BATCH + 1];
    let err = h.crm().import_contacts(a, rows).await.unwrap_err();
    assert!(matches!(&err, crm_core::Error::Validation { field, .. } if field == "contacts"), "{err:?}");
    let file = temp_dir("batch").join("ok.csv");
    std::fs::write(&file, "name,phone\nAna,+5511987650001\n").unwrap();
    let err = import_csv_with(h.crm(), a, &file, "55", crm_core::MAX_IMPORT_BATCH + 1, 1, false).await.unwrap_err();
    assert!(matches!(&err, crm_core::Error::Validation { field, .. } if field == "batch"), "{err:?}");
}

/// LGPD/GDPR erasure: after `DELETE /contacts/{id}` the event log (and so
/// every queued delivery of it) holds the contact's ids, not its name,
/// phone or messages.
#[tokio::test]
async fn deleting_a_contact_erases_it_from_the_event_log() {
    let h = Harness::memory().await;
    let (_, token) = h.account(Role::Admin).await;
    let contact = h
        .api
        .post("/api/v1/contacts")
        .bearer(&token)
        .json(json!({ "name": "Maria Sigilo", "phone": "+55 11 91234-5678", "email": "maria.sigilo@example.com" }))
        .send()
        .await
        .ok_json(201);
    let cid = id(&contact);
    h.api
        .post("/api/v1/messages")
        .bearer(&token)
        .json(json!({ "contact_id": cid, "text": "Seu exame deu positivo" }))
        .send()
        .await
        .expect(202);
    h.api.delete(&format!("/api/v1/contacts/{cid}")).bearer(&token).send().await.expect(204);
    let events = h.api.get("/api/v1/events?limit=1000").bearer(&token).send().await.ok_json(200);
    let text = events.to_string();
    for secret in ["Maria Sigilo", "maria.sigilo", "91234", "exame"] {
        assert!(!text.contains(secret), "{secret:?} outlives the deletion: {events}");
    }
    assert!(text.contains(&cid), "the contact's id is kept");
}

/// A limiter whose backend is down (Redis unreachable).
#[derive(Debug)]
struct DownLimiter;

#[async_trait::async_trait]
impl crm_core::RateLimiter for DownLimiter {
    async fn check_n(&self, _: &str, _: &crm_core::Quota, _: u32) -> crm_core::Result<crm_core::Decision> {
        Err(crm_core::Error::storage("redis: connection refused", true, std::io::Error::other("down")))
    }
}

/// Login fails closed (503 with Retry-After) while the limiter is down, so
/// password guessing does not become unlimited; API keys fail open.
#[tokio::test]
async fn login_fails_closed_when_the_limiter_is_down() {
    let h = Harness::memory().await;
    let (a, token) = h.account(Role::Admin).await;
    h.crm().create_user(a, "ana@example.com", "Ana", Role::Agent, "long enough").await.unwrap();
    let state = crm_http::AppState::new(
        h.crm().clone(),
        std::sync::Arc::new(DownLimiter),
        Vec::new(),
        crm_http::Settings::default(),
    );
    let api = crate::helpers::Api::router(state);
    let r = api
        .post("/api/v1/auth/login")
        .peer("10.0.0.1:5000")
        .json(json!({ "email": "ana@example.com", "password": "long enough" }))
        .send()
        .await;
    r.problem(503, "unavailable");
    assert!(r.header("retry-after").is_some());
    api.get("/api/v1/contacts").bearer(&token).send().await.expect(200);
}

/// Attempts on one e-mail are throttled whichever addresses they come from.
#[tokio::test]
async fn login_attempts_per_email_are_throttled_across_addresses() {
    let h = Harness::memory().await;
    let (a, _) = h.account(Role::Admin).await;
    h.crm().create_user(a, "ana@example.com", "Ana", Role::Agent, "long enough").await.unwrap();
    let login = |peer: String, email: &'static str, password: &'static str| {
        let api = h.api.clone();
        async move {
            api.post("/api/v1/auth/login")
                .peer(&peer)
                .json(json!({ "email": email, "password": password }))
                .send()
                .await
        }
    };
    for i in 0..crm_http::LOGIN_TRIES_PER_MINUTE {
        login(format!("10.1.0.{i}:5000"), "ana@example.com", "wrong").await.problem(401, "unauthorized");
    }
    let r = login("10.2.0.1:5000".into(), "ANA@example.com", "long enough").await;
    r.problem(429, "rate-limited");
    assert!(r.header("retry-after").is_some());
    login("10.2.0.2:5000".into(), "bia@example.com", "wrong").await.problem(401, "unauthorized");
    // The minute tier refills; the hour tier keeps counting (stepped backoff).
    h.clock.as_ref().unwrap().advance(std::time::Duration::from_secs(60));
    login("10.2.0.3:5000".into(), "ana@example.com", "long enough").await.expect(200);
}

/// Behind one trusted proxy, clients are told apart by the address it
/// forwards; with none trusted (the default) the header is ignored, so a
/// client cannot pick its own bucket. IPv6 clients share their /64.
#[tokio::test]
async fn login_buckets_follow_trusted_proxies_and_ipv6_prefixes() {
    let login = |api: crate::helpers::Api, peer: &'static str, forwarded: &'static str| async move {
        api.post("/api/v1/auth/login")
            .peer(peer)
            .header("x-forwarded-for", forwarded)
            .json(json!({ "email": "nobody@example.com", "password": "whatever" }))
            .send()
            .await
            .status
            .as_u16()
    };
    let behind = Harness::memory_with(
        crate::helpers::settings(|s| {
            s.per_ip_per_minute = 1;
            s.trusted_proxies = 1;
        }),
        Vec::new(),
    )
    .await;
    assert_eq!(login(behind.api.clone(), "10.0.0.9:1", "203.0.113.1").await, 401);
    assert_eq!(login(behind.api.clone(), "10.0.0.9:2", "203.0.113.2").await, 401, "another client, same proxy");
    assert_eq!(login(behind.api.clone(), "10.0.0.9:3", "6.6.6.6, 203.0.113.1").await, 429, "spoofed hops ignored");

    let direct = Harness::memory_with(crate::helpers::settings(|s| s.per_ip_per_minute = 1), Vec::new()).await;
    assert_eq!(login(direct.api.clone(), "10.0.0.9:1", "203.0.113.1").await, 401);
    assert_eq!(login(direct.api.clone(), "10.0.0.9:2", "203.0.113.2").await, 429, "the header is not believed");
    assert_eq!(login(direct.api.clone(), "[2001:db8:1:2::1]:1", "").await, 401);
    assert_eq!(login(direct.api.clone(), "[2001:db8:1:2:ffff::9]:1", "").await, 429, "same /64, same bucket");
    assert_eq!(login(direct.api.clone(), "[2001:db8:1:3::1]:1", "").await, 401);
}

/// Bogus tokens are counted per address: past the per-IP quota the address
/// gets 429 without a lookup (even with a valid key) until it refills.
#[tokio::test]
async fn failed_authentications_are_throttled_per_address() {
    let h = Harness::memory_with(crate::helpers::settings(|s| s.per_ip_per_minute = 3), Vec::new()).await;
    let (_, token) = h.account(Role::Admin).await;
    let call = |peer: &'static str, token: String| {
        let api = h.api.clone();
        async move { api.get("/api/v1/contacts").peer(peer).bearer(&token).send().await }
    };
    let bogus = || format!("crm_{}_{}", "a".repeat(12), "b".repeat(43));
    for _ in 0..3 {
        call("10.3.0.1:1", bogus()).await.problem(401, "unauthorized");
    }
    call("10.3.0.1:1", bogus()).await.problem(429, "rate-limited");
    call("10.3.0.1:1", token.clone()).await.problem(429, "rate-limited");
    call("10.3.0.2:1", token.clone()).await.expect(200);
}

async fn login(api: &crate::helpers::Api, email: &str, peer: &str) -> serde_json::Value {
    api.post("/api/v1/auth/login")
        .peer(peer)
        .json(json!({ "email": email, "password": "long enough" }))
        .send()
        .await
        .ok_json(200)
}

/// Logins are sessions in their own table: any valid e-mail can log in
/// (long ones too), they are not API keys, they can be listed and ended.
#[tokio::test]
async fn login_sessions_are_listed_and_ended_apart_from_api_keys() {
    let h = Harness::memory().await;
    let (a, admin) = h.account(Role::Admin).await;
    let email = format!("{}@{}.example.com", "a".repeat(64), "b".repeat(40));
    h.crm().create_user(a, &email, "Ana", Role::Admin, "long enough").await.unwrap();
    let first = login(&h.api, &email, "10.4.0.1:1").await;
    let second = login(&h.api, &email, "10.4.0.1:2").await;
    let token = first["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("crs_"), "{first}");
    let keys = h.api.get("/api/v1/api-keys").bearer(&admin).send().await.ok_json(200);
    assert_eq!(keys.as_array().unwrap().len(), 1, "sessions are not API keys: {keys}");
    let listed = h.api.get("/api/v1/auth/sessions").bearer(&token).send().await.ok_json(200);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], second["id"], "newest first");
    assert_eq!(listed[1]["current"], true);
    assert!(!serde_json::to_string(listed).unwrap().contains("crs_"), "tokens are never listed");
    // End the other one, then log out.
    let other = format!("/api/v1/auth/sessions/{}", second["id"].as_str().unwrap());
    h.api.delete(&other).bearer(&token).send().await.expect(204);
    h.api.get("/api/v1/contacts").bearer(second["token"].as_str().unwrap()).send().await.problem(401, "unauthorized");
    h.api.post("/api/v1/auth/logout").bearer(&token).send().await.expect(204);
    h.api.get("/api/v1/contacts").bearer(&token).send().await.problem(401, "unauthorized");
    // API keys have no session to end.
    h.api.post("/api/v1/auth/logout").bearer(&admin).send().await.problem(403, "forbidden");
}

/// Expired sessions are deleted (at the next login), not kept forever.
#[tokio::test]
async fn expired_sessions_are_cleaned_up() {
    let h = Harness::memory_with(
        crate::helpers::settings(|s| s.session_ttl = std::time::Duration::from_secs(60)),
        Vec::new(),
    )
    .await;
    let (a, _) = h.account(Role::Admin).await;
    h.crm().create_user(a, "ana@example.com", "Ana", Role::Agent, "long enough").await.unwrap();
    let old = login(&h.api, "ana@example.com", "10.5.0.1:1").await;
    let prefix = old["token"].as_str().unwrap()[4..16].to_owned();
    assert!(h.crm().store().find_session_by_prefix(&prefix).await.unwrap().is_some());
    h.clock.as_ref().unwrap().advance(std::time::Duration::from_secs(120));
    h.api.get("/api/v1/contacts").bearer(old["token"].as_str().unwrap()).send().await.problem(401, "unauthorized");
    login(&h.api, "ana@example.com", "10.5.0.1:2").await;
    assert!(h.crm().store().find_session_by_prefix(&prefix).await.unwrap().is_none(), "the expired session is gone");
}

/// A key created with a login session expires within the policy's 90 days;
/// one created with an API key may live as long as asked.
#[tokio::test]
async fn keys_minted_from_a_session_cannot_outlive_policy() {
    let h = Harness::memory().await;
    let (a, admin) = h.account(Role::Admin).await;
    h.crm().create_user(a, "ana@example.com", "Ana", Role::Admin, "long enough").await.unwrap();
    let session = login(&h.api, "ana@example.com", "10.6.0.1:1").await;
    let token = session["token"].as_str().unwrap();
    let minted = h.api.post("/api/v1/api-keys").bearer(token).json(json!({ "name": "zap" })).send().await.ok_json(201);
    let expires: chrono::DateTime<chrono::Utc> = minted["key"]["expires_at"].as_str().unwrap().parse().unwrap();
    let now = h.crm().clock().now();
    let days = crm_core::SESSION_MINTED_KEY_MAX_DAYS;
    assert!(expires <= now + chrono::Duration::days(days) && expires > now + chrono::Duration::days(days - 1));
    let far = (now + chrono::Duration::days(365)).to_rfc3339();
    let p = h
        .api
        .post("/api/v1/api-keys")
        .bearer(token)
        .json(json!({ "name": "forever", "expires_at": far }))
        .send()
        .await
        .problem(422, "validation");
    assert_eq!(p["field"], "expires_at");
    let kept = h.api.post("/api/v1/api-keys").bearer(&admin).json(json!({ "name": "ci" })).send().await.ok_json(201);
    assert!(kept["key"]["expires_at"].is_null());
}

/// The bounds on inputs that multiply (tags, metadata, page sizes, event
/// batches, template bodies, request bodies) answer 4xx problems naming
/// them, never 5xx.
#[tokio::test]
async fn every_input_bound_answers_a_4xx_naming_it() {
    let h = Harness::memory_with(crate::helpers::settings(|s| s.body_limit_bytes = 64 * 1024), Vec::new()).await;
    let (_, token) = h.account(Role::Admin).await;
    let tags: Vec<String> = (0..=crm_core::MAX_TAGS).map(|i| format!("t{i}")).collect();
    let metadata = json!({ "k": "x".repeat(crm_core::MAX_METADATA_BYTES) });
    for (path, body, field) in [
        ("/api/v1/contacts", json!({ "name": "A", "phone": "+5511987650001", "tags": tags }), "tags"),
        ("/api/v1/contacts", json!({ "name": "A", "phone": "+5511987650001", "metadata": metadata }), "metadata"),
        ("/api/v1/templates", json!({ "name": "big", "body": "x".repeat(crm_core::MAX_TEMPLATE_BODY + 1) }), "body"),
    ] {
        let p = h.api.post(path).bearer(&token).json(body).send().await.problem(422, "validation");
        assert_eq!(p["field"], field, "{p}");
    }
    for query in ["/api/v1/contacts?limit=201", "/api/v1/events?limit=1001", "/api/v1/templates?limit=0"] {
        let r = h.api.get(query).bearer(&token).send().await;
        assert!(r.status.is_client_error(), "{query}: {}", r.status);
        assert!(r.text().contains("limit"), "{query} names the limit: {}", r.text());
    }
    let huge = json!({ "name": "A", "phone": "+5511987650001", "notes": "x".repeat(70 * 1024) });
    h.api.post("/api/v1/contacts").bearer(&token).json(huge).send().await.problem(413, "payload-too-large");
}

//! The dashboard's management pages over HTTP: campaigns (progress and
//! pause / resume / cancel) and webhooks (endpoints, deliveries, attempts,
//! replay). Each page: signed out goes to the login, a form without its
//! CSRF token is refused and changes nothing, a role below admin sees no
//! buttons and is refused, and one account never sees another's data.

use std::time::Duration;

use serde_json::{Value, json};

use crm_core::{AccountId, CampaignId, CampaignState, Role};

use crate::dashboard::{Browser, EMAIL, PASSWORD, set_cookie};
use crate::helpers::{Api, Harness, create_template, id, phone};

/// Signs `email` in (its password is [`PASSWORD`]).
pub(crate) async fn signed_in_as(api: &Api, email: &str) -> Browser {
    let mut b = Browser::open(api).await;
    let csrf = b.csrf.clone();
    let r = b.post(api, "/dashboard/login", &[("csrf", &csrf), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    b.session = set_cookie(&r, "crm_session").map(|(s, _)| s);
    if let Some((csrf, _)) = set_cookie(&r, "crm_csrf") {
        b.csrf = csrf;
    }
    b
}

/// An account with an owner who signs in as [`EMAIL`], an agent who signs
/// in as `agent@example.com`, and an admin API key.
pub(crate) async fn account(h: &Harness) -> (AccountId, String) {
    let (account, token) = h.account(Role::Admin).await;
    let crm = h.state.crm();
    crm.create_user(account, EMAIL, "Dona Maria", Role::Owner, PASSWORD).await.unwrap();
    crm.create_user(account, "agent@example.com", "Agente", Role::Agent, PASSWORD).await.unwrap();
    (account, token)
}

/// A draft campaign of `n` contacts tagged `vip` (one of them opted out).
async fn campaign(api: &Api, token: &str, name: &str, n: u32, first: u32) -> String {
    for k in 0..n {
        let opt = if k == 0 { "opted_out" } else { "opted_in" };
        let body = json!({ "name": format!("Ana {k}"), "phone": phone(first + k), "tags": ["vip"], "opt_in": opt });
        api.post("/api/v1/contacts").bearer(token).json(body).send().await.expect(201);
    }
    create_template(api, token, &format!("promo_{first}"), "Oi {{first_name}}!").await;
    let body =
        json!({ "name": name, "template": format!("promo_{first}"), "audience": { "type": "tag", "tag": "vip" } });
    id(&api.post("/api/v1/campaigns").bearer(token).json(body).send().await.ok_json(201))
}

async fn state_of(h: &Harness, account: AccountId, cid: &str) -> CampaignState {
    let id = CampaignId::from_uuid(uuid::Uuid::parse_str(cid).unwrap());
    h.state.crm().get_campaign(account, id).await.unwrap().campaign.state
}

#[tokio::test]
async fn campaigns_are_listed_with_their_state_and_paused_resumed_and_cancelled_from_the_page() {
    let h = Harness::memory_with(crm_http::Settings::default(), Vec::new()).await;
    let api = &h.api;
    assert_eq!(api.get("/dashboard/campaigns").send().await.header("location").as_deref(), Some("/dashboard/login"));
    let (account, token) = account(&h).await;
    let cid = campaign(api, &token, "Black Friday", 4, 0).await;
    // Another account's campaign, running.
    let (other, other_token) = h.account(Role::Admin).await;
    let theirs = campaign(api, &other_token, "Campanha Alheia", 2, 100).await;
    api.post(&format!("/api/v1/campaigns/{theirs}/start")).bearer(&other_token).send().await.expect(200);

    let b = signed_in_as(api, EMAIL).await;
    let html = b.get(api, "/dashboard/campaigns").await.text();
    assert!(html.contains("Black Friday") && html.contains("Rascunho"), "{html}");
    assert!(!html.contains("Campanha Alheia"), "another account's campaign is not listed");
    assert!(html.contains(&format!(r#"action="/dashboard/campaigns/{cid}/start""#)), "a draft can start");
    assert!(!html.contains("/pause\""), "a draft cannot be paused");

    // Started (this harness runs no campaign worker, so it stays running).
    let csrf = b.csrf.clone();
    let r = b.post(api, &format!("/dashboard/campaigns/{cid}/start"), &[("csrf", &csrf), ("back", "list")]).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location").as_deref()),
        (303, Some("/dashboard/campaigns?done=done_campaign_start"))
    );
    assert_eq!(state_of(&h, account, &cid).await, CampaignState::Running);
    let html = b.get(api, "/dashboard/campaigns?done=done_campaign_start").await.text();
    assert!(html.contains("Campanha iniciada.") && html.contains("Enviando"), "{html}");

    // Pause without the token: refused, nothing changes.
    let pause = format!("/dashboard/campaigns/{cid}/pause");
    assert_eq!(b.post(api, &pause, &[]).await.status, 403);
    assert_eq!(b.post(api, &pause, &[("csrf", &"0".repeat(64))]).await.status, 403);
    assert_eq!(state_of(&h, account, &cid).await, CampaignState::Running);
    // An agent sees no buttons and is refused.
    let agent = signed_in_as(api, "agent@example.com").await;
    let page = agent.get(api, &format!("/dashboard/campaigns/{cid}")).await;
    page.expect(200);
    assert!(page.text().contains("Black Friday") && !page.text().contains("data-action="), "{}", page.text());
    let acsrf = agent.csrf.clone();
    assert_eq!(agent.post(api, &pause, &[("csrf", &acsrf)]).await.status, 403);
    assert_eq!(state_of(&h, account, &cid).await, CampaignState::Running);

    // Paused, resumed and cancelled from the campaign's page.
    let r = b.post(api, &pause, &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location"), Some(format!("/dashboard/campaigns/{cid}?done=done_campaign_pause")));
    assert_eq!(state_of(&h, account, &cid).await, CampaignState::Paused);
    let html = b.get(api, &format!("/dashboard/campaigns/{cid}?lang=en&done=done_campaign_pause")).await.text();
    assert!(html.contains("Campaign paused") && html.contains(">Paused<"), "{html}");
    assert!(html.contains(&format!("/dashboard/campaigns/{cid}/resume")), "a paused campaign resumes");
    // Pausing twice: the service's conflict, as a page.
    let r = b.post(api, &pause, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 409, "{}", r.text());
    b.post(api, &format!("/dashboard/campaigns/{cid}/resume"), &[("csrf", &csrf)]).await.expect(303);
    assert_eq!(state_of(&h, account, &cid).await, CampaignState::Running);
    b.post(api, &format!("/dashboard/campaigns/{cid}/cancel"), &[("csrf", &csrf)]).await.expect(303);
    assert_eq!(state_of(&h, account, &cid).await, CampaignState::Cancelled);
    let html = b.get(api, &format!("/dashboard/campaigns/{cid}")).await.text();
    assert!(html.contains("Cancelada") && !html.contains("data-action="), "an ended campaign has no buttons");

    // The other account's campaign: not found, and not paused by this user.
    assert_eq!(b.get(api, &format!("/dashboard/campaigns/{theirs}")).await.status, 404);
    assert_eq!(b.post(api, &format!("/dashboard/campaigns/{theirs}/pause"), &[("csrf", &csrf)]).await.status, 404);
    assert_eq!(state_of(&h, other, &theirs).await, CampaignState::Running);
    // Bad ids and actions.
    assert_eq!(b.get(api, "/dashboard/campaigns/not-an-id").await.status, 404);
    assert_eq!(b.post(api, &format!("/dashboard/campaigns/{cid}/explode"), &[("csrf", &csrf)]).await.status, 404);
    assert_eq!(b.get(api, "/dashboard/campaigns?after=%%%").await.status, 422);
}

#[tokio::test]
async fn a_finished_campaign_shows_its_progress_and_counters() {
    let h = Harness::sqlite().await;
    // In-process, so redirects are seen as they are (the server's workers still run).
    let api = &Api::router(h.state.clone());
    let (account, token) = account(&h).await;
    let cid = campaign(api, &token, "Natal", 5, 0).await;
    api.post(&format!("/api/v1/campaigns/{cid}/start")).bearer(&token).send().await.expect(200);
    for _ in 0..400 {
        if state_of(&h, account, &cid).await == CampaignState::Completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state_of(&h, account, &cid).await, CampaignState::Completed);
    let v: Value = api.get(&format!("/api/v1/campaigns/{cid}")).bearer(&token).send().await.ok_json(200);
    let sent = v["counters"]["sent"].as_u64().unwrap();
    assert_eq!((sent, v["counters"]["skipped"].as_u64()), (4, Some(1)), "{v}");

    let b = signed_in_as(api, EMAIL).await;
    let html = b.get(api, &format!("/dashboard/campaigns/{cid}")).await.text();
    assert!(html.contains(r#"aria-valuenow="100""#), "every recipient reached an end: {html}");
    assert!(html.contains(&format!(r#"data-counter="sent">{sent}<"#)), "{html}");
    assert!(html.contains(r#"data-counter="recipients">5<"#), "{html}");
    assert!(html.contains(r#"data-state="skipped""#) && html.contains("opted_out"), "the skipped recipient and why");
    assert_eq!(html.matches(r#"<tr data-state="#).count(), 5, "one row per recipient");
    let list = b.get(api, "/dashboard/campaigns").await.text();
    assert!(list.contains("Concluída") && list.contains(r#"aria-valuenow="100""#), "{list}");
    h.stop().await;
}

#[tokio::test]
async fn channels_show_their_state_and_throttle_and_pairing_is_refused_where_it_does_not_apply() {
    let h = Harness::memory_with(crm_http::Settings::default(), Vec::new()).await;
    let api = &h.api;
    assert_eq!(api.get("/dashboard/channels").send().await.header("location").as_deref(), Some("/dashboard/login"));
    let (account, _) = account(&h).await;
    let crm = h.state.crm();
    let channel = crm.list_channels(account).await.unwrap().remove(0);
    let now = crm.clock().now();
    let throttle = crm_core::Throttle {
        reason: "daily cap of 250 unique recipients reached".into(),
        since: now,
        until: now + chrono::Duration::hours(3),
    };
    let event = crm_core::Event::new(account, crm_core::EventType::CHANNEL_UPDATED, &json!({ "id": channel.id }), now);
    crm.store().set_channel_throttle(account, channel.id, Some(&throttle), &event).await.unwrap();
    let (other, _) = h.account(Role::Admin).await;
    let named = crm_core::NewChannel { kind: "recording".into(), name: "Canal Alheio".into(), ..Default::default() };
    let theirs = crm.create_channel(other, named).await.unwrap();

    let b = signed_in_as(api, EMAIL).await;
    let html = b.get(api, "/dashboard/channels").await.text();
    assert!(html.contains("Recording") && html.contains(r#"data-state="throttled""#), "{html}");
    assert!(html.contains("daily cap of 250 unique recipients reached"), "the reason: {html}");
    let until = (now + chrono::Duration::hours(3)).format("%H:%M").to_string();
    assert!(html.contains("Volta a enviar em") && html.contains(&until), "when sending resumes: {html}");
    assert!(!html.contains("Canal Alheio"), "another account's channel is not listed");
    assert!(!html.contains("qr.png"), "a recording channel has no QR code");
    let english = b.get(api, "/dashboard/channels?lang=en").await.text();
    assert!(english.contains("Throttled") && english.contains("Sending resumes at"), "{english}");

    // Pairing applies to WhatsApp Web channels of this account only, with the form's token.
    let csrf = b.csrf.clone();
    let pair = format!("/dashboard/channels/{}/pair", channel.id);
    assert_eq!(b.post(api, &pair, &[("phone", "+5511987654321")]).await.status, 403);
    let r = b.post(api, &pair, &[("csrf", &csrf), ("phone", "+5511987654321")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Só canais WhatsApp Web"), "{}", r.text());
    let r = b.post(api, &format!("/dashboard/channels/{}/pair", theirs.id), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 404);
    assert_eq!(b.get(api, &format!("/dashboard/channels/{}/qr.png", theirs.id)).await.status, 404);
    assert_eq!(b.get(api, &format!("/dashboard/channels/{}/qr.png", channel.id)).await.status, 404);
    let agent = signed_in_as(api, "agent@example.com").await;
    assert!(agent.get(api, "/dashboard/channels").await.text().contains("Recording"), "agents see channels");
    assert_eq!(agent.get(api, &format!("/dashboard/channels/{}/qr.png", channel.id)).await.status, 403);
    let acsrf = agent.csrf.clone();
    assert_eq!(agent.post(api, &pair, &[("csrf", &acsrf)]).await.status, 403);
}

/// The decoded text between `start` and the next `end`.
fn between(html: &str, start: &str, end: &str) -> Option<String> {
    let from = html.find(start)? + start.len();
    let len = html[from..].find(end)?;
    Some(html[from..from + len].replace("&#x2f;", "/"))
}

#[tokio::test]
async fn api_keys_are_shown_once_and_revoked_and_users_are_created_with_a_role_no_higher_than_their_creators() {
    let h = Harness::memory_with(crm_http::Settings::default(), Vec::new()).await;
    let api = &h.api;
    assert_eq!(api.get("/dashboard/api-keys").send().await.header("location").as_deref(), Some("/dashboard/login"));
    let (account, _) = account(&h).await;
    let crm = h.state.crm();
    crm.create_user(account, "admin@example.com", "Admin", Role::Admin, PASSWORD).await.unwrap();
    let (other, _) = h.account(Role::Admin).await;
    crm.create_api_key(other, "Chave Alheia", Role::Agent, None).await.unwrap();

    let b = signed_in_as(api, EMAIL).await;
    let csrf = b.csrf.clone();
    let page = b.get(api, "/dashboard/api-keys").await.text();
    assert!(!page.contains("Chave Alheia"), "another account's keys are not listed");
    // Without the token: nothing is made.
    assert_eq!(b.post(api, "/dashboard/api-keys", &[("name", "ERP")]).await.status, 403);
    let before = crm.store().list_api_keys(account).await.unwrap().len();
    // Created: the token works against the API, and is shown only on this answer.
    let r = b.post(api, "/dashboard/api-keys", &[("csrf", &csrf), ("name", "ERP"), ("role", "agent")]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = between(&r.text(), r#"<code class="secret" id="token-value">"#, "</code>").expect("the token");
    assert!(token.starts_with("crm_"), "{token}");
    api.get("/api/v1/contacts").bearer(&token).send().await.expect(200);
    let keys = crm.store().list_api_keys(account).await.unwrap();
    assert_eq!(keys.len(), before + 1);
    let made = keys.iter().find(|k| k.name == "ERP").unwrap();
    let in_90_days = crm.clock().now() + chrono::Duration::days(90);
    assert!(made.expires_at.is_some_and(|e| e <= in_90_days), "a key made by a session expires within 90 days");
    let list = b.get(api, "/dashboard/api-keys").await.text();
    assert!(list.contains("ERP") && !list.contains(&token) && !list.contains("token-value"), "never shown again");
    // A bad expiry is shown in the form.
    let r =
        b.post(api, "/dashboard/api-keys", &[("csrf", &csrf), ("name", "Velha"), ("expires_at", "2999-01-01")]).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains(r#"id="form-error""#) && r.text().contains(r#"value="Velha""#));

    // An admin cannot make an owner key, nor revoke the owner's keys.
    let admin = signed_in_as(api, "admin@example.com").await;
    let acsrf = admin.csrf.clone();
    let r = admin.post(api, "/dashboard/api-keys", &[("csrf", &acsrf), ("name", "Tudo"), ("role", "owner")]).await;
    assert_eq!(r.status, 403);
    assert!(!admin.get(api, "/dashboard/api-keys").await.text().contains(r#"value="owner""#), "not offered");
    let (owner_key, _) = crm.create_api_key(account, "Do Dono", Role::Owner, None).await.unwrap();
    let r = admin.post(api, &format!("/dashboard/api-keys/{}/revoke", owner_key.id), &[("csrf", &acsrf)]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Revoked by the owner: the token stops working at once.
    let revoke = format!("/dashboard/api-keys/{}/revoke", made.id);
    assert_eq!(b.post(api, &revoke, &[]).await.status, 403);
    api.get("/api/v1/contacts").bearer(&token).send().await.expect(200);
    let r = b.post(api, &revoke, &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location").as_deref(), Some("/dashboard/api-keys?done=done_key_revoked"));
    assert_eq!(api.get("/api/v1/contacts").bearer(&token).send().await.status, 401);
    let list = b.get(api, "/dashboard/api-keys").await.text();
    assert!(list.contains(&format!(r#"data-key="{}" data-state="revoked""#, made.id)), "{list}");
    // Another account's key: not found.
    let theirs = crm.store().list_api_keys(other).await.unwrap().remove(0);
    assert_eq!(b.post(api, &format!("/dashboard/api-keys/{}/revoke", theirs.id), &[("csrf", &csrf)]).await.status, 404);
    assert!(crm.store().list_api_keys(other).await.unwrap()[0].revoked_at.is_none());

    // Users: an agent is refused the page; the owner creates one who can sign in.
    let agent = signed_in_as(api, "agent@example.com").await;
    assert_eq!(agent.get(api, "/dashboard/users").await.status, 403);
    let users = b.get(api, "/dashboard/users").await.text();
    assert!(users.contains("agent@example.com") && users.contains("Agente"), "{users}");
    let fields = [("csrf", csrf.as_str()), ("name", "Nova"), ("email", "nova@example.com"), ("role", "agent")];
    let r = b.post(api, "/dashboard/users", &[fields.as_slice(), &[("password", "curta")]].concat()).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("8 to 128") || r.text().contains("password"), "{}", r.text());
    let r = b.post(api, "/dashboard/users", &[fields.as_slice(), &[("password", PASSWORD)]].concat()).await;
    assert_eq!(r.header("location").as_deref(), Some("/dashboard/users?done=done_user_created"));
    signed_in_as(api, "nova@example.com").await;
    let r = b.post(api, "/dashboard/users", &[fields.as_slice(), &[("password", PASSWORD)]].concat()).await;
    assert_eq!(r.status, 409, "the e-mail is taken");
    let r = admin
        .post(
            api,
            "/dashboard/users",
            &[("csrf", &acsrf), ("name", "X"), ("email", "x@example.com"), ("role", "owner"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 403, "an admin cannot make an owner");
    assert!(!b.get(api, "/dashboard/users").await.text().contains("x@example.com"));
}

#[tokio::test]
async fn contacts_are_created_and_edited_from_the_form_with_errors_beside_their_fields_and_show_their_score_history() {
    let h = Harness::memory_with(crm_http::Settings::default(), Vec::new()).await;
    let api = &h.api;
    assert_eq!(api.get("/dashboard/contacts/new").send().await.header("location").as_deref(), Some("/dashboard/login"));
    let (account, _) = account(&h).await;
    let crm = h.state.crm();
    crm.create_user(account, "viewer@example.com", "Leitora", Role::Viewer, PASSWORD).await.unwrap();
    let b = signed_in_as(api, EMAIL).await;
    let csrf = b.csrf.clone();
    let new = "/dashboard/contacts/new";
    assert!(b.get(api, new).await.text().contains(r#"id="contact-form""#));

    // Without the token: nothing is made.
    assert_eq!(b.post(api, new, &[("name", "Ana"), ("phone", "+5511987650001")]).await.status, 403);
    // A number that is not E.164: the form again, the reason beside the phone, what was typed kept.
    let r = b.post(api, new, &[("csrf", &csrf), ("name", "Ana Souza"), ("phone", "12345"), ("tags", "vip")]).await;
    assert_eq!(r.status, 422);
    let html = r.text();
    assert!(
        html.contains(r#"id="phone-error""#) && html.contains(r#"aria-invalid="true" aria-describedby="phone-error""#),
        "{html}"
    );
    assert!(
        html.contains(r#"value="Ana Souza""#) && html.contains(r#"value="12345""#) && html.contains(r#"value="vip""#)
    );
    assert!(crm.find_contact_by_phone(account, "+5511987650001").await.unwrap().is_none());

    // Created with tags, stage and opt-in.
    let fields = [
        ("csrf", csrf.as_str()),
        ("name", "Ana Souza"),
        ("phone", "+5511987650001"),
        ("email", "ana@example.com"),
        ("tags", "vip, sp"),
        ("stage", "qualified"),
        ("opt_in", "opted_in"),
    ];
    let r = b.post(api, new, &fields).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let ana = crm.find_contact_by_phone(account, "+5511987650001").await.unwrap().expect("created");
    assert_eq!(r.header("location"), Some(format!("/dashboard/contacts/{}?done=done_contact_created", ana.id)));
    assert_eq!(ana.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["sp", "vip"]);
    assert_eq!((ana.lead_stage.as_str(), ana.opt_in.status.as_str()), ("qualified", "opted_in"));
    // The same phone again: a conflict, shown beside the phone.
    let r = b.post(api, new, &fields).await;
    assert_eq!(r.status, 409);
    assert!(r.text().contains(r#"id="phone-error""#));

    // Edited: a bad e-mail is refused beside its field; then tags changed.
    let path = format!("/dashboard/contacts/{}", ana.id);
    let mut edit = fields.to_vec();
    edit[3] = ("email", "not-an-email");
    let r = b.post(api, &path, &edit).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains(r#"id="email-error""#), "{}", r.text());
    edit[3] = ("email", "");
    edit[4] = ("tags", "cliente");
    edit[1] = ("name", "Ana S. Souza");
    let r = b.post(api, &path, &edit).await;
    assert_eq!(r.header("location"), Some(format!("{path}?done=done_contact_saved")));
    let ana = crm.get_contact(account, ana.id).await.unwrap();
    assert_eq!((ana.name.as_str(), ana.email.is_none()), ("Ana S. Souza", true));
    assert_eq!(ana.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["cliente"]);

    // The score history, newest first, with each reason.
    crm.change_score(account, ana.id, 15, "respondeu à campanha", "t1", None).await.unwrap();
    crm.change_score(account, ana.id, -5, "sem resposta em 7 dias", "t2", None).await.unwrap();
    let html = b.get(api, &format!("{path}?lang=en")).await.text();
    let (first, second) = (html.find("sem resposta em 7 dias").unwrap(), html.find("respondeu à campanha").unwrap());
    assert!(first < second, "newest first: {html}");
    assert!(html.contains("(+15)") && html.contains("(-5)"), "{html}");
    assert!(html.contains(r#"id="contact-score">10<"#), "{html}");

    // A viewer reads but cannot edit; another account's contact is not found.
    let viewer = signed_in_as(api, "viewer@example.com").await;
    let page = viewer.get(api, &path).await.text();
    assert!(page.contains("Ana S. Souza") && !page.contains(r#"id="contact-form""#));
    let vcsrf = viewer.csrf.clone();
    assert_eq!(
        viewer.post(api, &path, &[("csrf", &vcsrf), ("name", "X"), ("phone", "+5511987650001")]).await.status,
        403
    );
    let (other, other_key) = h.account(Role::Admin).await;
    let theirs = crate::helpers::create_contact(api, &other_key, "Contato Alheio", 9).await;
    let theirs = theirs["id"].as_str().unwrap();
    assert_eq!(b.get(api, &format!("/dashboard/contacts/{theirs}")).await.status, 404);
    let r = b
        .post(
            api,
            &format!("/dashboard/contacts/{theirs}"),
            &[("csrf", &csrf), ("name", "X"), ("phone", "+5511987650009")],
        )
        .await;
    assert_eq!(r.status, 404);
    let untouched =
        crm.get_contact(other, crm_core::ContactId::from_uuid(uuid::Uuid::parse_str(theirs).unwrap())).await;
    assert_eq!(untouched.unwrap().name, "Contato Alheio");
    // The list links each contact to its page.
    assert!(
        b.get(api, "/dashboard/contacts").await.text().contains(&format!(r#"href="/dashboard/contacts/{}""#, ana.id))
    );
}

#[tokio::test]
async fn rules_and_sequences_are_listed_switched_on_and_off_and_show_their_runs_and_enrolments() {
    let h = Harness::memory_with(crm_http::Settings::default(), Vec::new()).await;
    let api = &h.api;
    assert_eq!(api.get("/dashboard/automations").send().await.header("location").as_deref(), Some("/dashboard/login"));
    let (account, key) = account(&h).await;
    let crm = h.state.crm();
    let rule = json!({ "name": "Marcar leads", "trigger": { "event": "contact.created" },
        "actions": [{ "type": "add_tag", "tag": "lead" }] });
    let rid = id(&api.post("/api/v1/automations").bearer(&key).json(rule).send().await.ok_json(201));
    let seq = json!({ "name": "Boas-vindas", "steps": [{ "delay_seconds": 3600, "action": { "type": "add_tag", "tag": "d1" } }] });
    let sid = id(&api.post("/api/v1/sequences").bearer(&key).json(seq).send().await.ok_json(201));
    let contact = crate::helpers::create_contact(api, &key, "Ana Souza", 1).await;
    let cid = contact["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/sequences/{sid}/enrolments");
    api.post(&path).bearer(&key).json(json!({ "contact_ids": [cid] })).send().await.expect(200);
    // A run of the rule, as the worker would make it.
    let events = crm.store().list_events(account, None, 1000).await.unwrap();
    let created = events.iter().find(|e| e.event_type == crm_core::EventType::CONTACT_CREATED).unwrap();
    crm_core::automation::Engine::new(crm.clone()).handle_event(created).await.unwrap();
    // Another account's rule.
    let (_, other_key) = h.account(Role::Admin).await;
    let theirs = json!({ "name": "Regra Alheia", "trigger": { "event": "contact.created" },
        "actions": [{ "type": "add_tag", "tag": "x" }] });
    let tid = id(&api.post("/api/v1/automations").bearer(&other_key).json(theirs).send().await.ok_json(201));

    let b = signed_in_as(api, EMAIL).await;
    let csrf = b.csrf.clone();
    let html = b.get(api, "/dashboard/automations").await.text();
    assert!(html.contains("Marcar leads") && html.contains("Boas-vindas") && !html.contains("Regra Alheia"), "{html}");
    assert!(html.contains(&format!(r#"data-rule="{rid}" data-state="enabled""#)), "{html}");
    // The rule's runs: the completed run with its step.
    let runs = b.get(api, &format!("/dashboard/automations/{rid}?lang=en")).await.text();
    assert!(runs.contains(r#"data-status="completed""#) && runs.contains("<code>add_tag</code>"), "{runs}");
    assert!(runs.contains(&format!("/dashboard/contacts/{cid}")), "the run links its contact");
    // The sequence's enrolment.
    let enrolments = b.get(api, &format!("/dashboard/sequences/{sid}")).await.text();
    assert!(enrolments.contains(r#"data-state="active""#) && enrolments.contains(&cid), "{enrolments}");

    // Switched off and on, with the token only, by admins only.
    let off = format!("/dashboard/automations/{rid}/disable");
    assert_eq!(b.post(api, &off, &[]).await.status, 403);
    assert!(
        crm.get_automation(account, crm_core::AutomationId::from_uuid(uuid::Uuid::parse_str(&rid).unwrap()))
            .await
            .unwrap()
            .enabled
    );
    let agent = signed_in_as(api, "agent@example.com").await;
    let acsrf = agent.csrf.clone();
    assert!(!agent.get(api, "/dashboard/automations").await.text().contains("data-action="), "agents see no switches");
    assert_eq!(agent.post(api, &off, &[("csrf", &acsrf)]).await.status, 403);
    let r = b.post(api, &off, &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location").as_deref(), Some("/dashboard/automations?done=done_rule_disable"));
    let rule_id = crm_core::AutomationId::from_uuid(uuid::Uuid::parse_str(&rid).unwrap());
    assert!(!crm.get_automation(account, rule_id).await.unwrap().enabled);
    let seq_id = crm_core::SequenceId::from_uuid(uuid::Uuid::parse_str(&sid).unwrap());
    b.post(api, &format!("/dashboard/sequences/{sid}/disable"), &[("csrf", &csrf)]).await.expect(303);
    let s = crm.get_sequence(account, seq_id).await.unwrap();
    assert!(!s.enabled && s.steps.len() == 1, "only the switch changed");
    let html = b.get(api, "/dashboard/automations?done=done_sequence_disable").await.text();
    assert!(
        html.contains("Sequência desativada")
            && html.contains(&format!(r#"data-sequence="{sid}" data-state="disabled""#))
    );
    b.post(api, &format!("/dashboard/automations/{rid}/enable"), &[("csrf", &csrf)]).await.expect(303);
    assert!(crm.get_automation(account, rule_id).await.unwrap().enabled);
    // Another account's rule: not found, not switched.
    assert_eq!(b.get(api, &format!("/dashboard/automations/{tid}")).await.status, 404);
    assert_eq!(b.post(api, &format!("/dashboard/automations/{tid}/disable"), &[("csrf", &csrf)]).await.status, 404);
    assert_eq!(b.post(api, &format!("/dashboard/automations/{rid}/explode"), &[("csrf", &csrf)]).await.status, 404);
}

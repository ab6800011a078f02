//! Behaviour tests of the `Crm` application service over the in-memory
//! adapters: every flow a user calls, with the values it stores, the errors it
//! returns and the events it records.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use crm_core::{
    Account, AccountId, Capabilities, Clock, ContactId, ContactPatch, ContactQuery, ContactSearch, Crm, Direction,
    Error, EventStore, EventType, InboundMessage, Interactive, LeadStage, MAX_METADATA_BYTES, ManualClock, MemoryStore,
    MessageContent, MessageError, MessageKind, MessageStatus, NewContact, NewTemplate, OptInStatus, PageRequest,
    RecordingMessenger, ReplyButton, Role, Tag, TemplateCategory, Variables,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

// ----- helpers -------------------------------------------------------------------

const DAY: Duration = Duration::from_secs(24 * 3600);

fn start() -> DateTime<Utc> {
    "2026-03-02T12:00:00Z".parse().unwrap()
}

/// A service over a fresh memory store, a recording messenger and a manual
/// clock, with one account already created.
async fn setup() -> (Crm, Arc<MemoryStore>, RecordingMessenger, ManualClock, Account) {
    setup_with(RecordingMessenger::new()).await
}

async fn setup_with(
    messenger: RecordingMessenger,
) -> (Crm, Arc<MemoryStore>, RecordingMessenger, ManualClock, Account) {
    let clock = ManualClock::new(start());
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let crm = Crm::builder()
        .store(store.clone())
        .messenger(Arc::new(messenger.clone()))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let account = crm.create_account("Loja da Ana").await.unwrap();
    (crm, store, messenger, clock, account)
}

fn new_contact(name: &str, phone: &str) -> NewContact {
    NewContact { name: name.into(), phone: phone.into(), ..Default::default() }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn tag_names(tags: &BTreeSet<Tag>) -> Vec<&str> {
    tags.iter().map(Tag::as_str).collect()
}

fn vars(pairs: &[(&str, &str)]) -> Variables {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn text_from(from: &str, provider_id: Option<&str>, body: &str) -> InboundMessage {
    InboundMessage {
        from: from.into(),
        whatsapp_id: None,
        profile_name: None,
        provider_message_id: provider_id.map(Into::into),
        content: MessageContent::text(body),
        sent_at: None,
        reply_to: None,
    }
}

/// Template content as the service renders stored template `boas_vindas`
/// whose body is `rendered` (see [`store_template`]).
fn template_content(rendered: &str) -> MessageContent {
    MessageContent::Template {
        name: "boas_vindas".into(),
        language: "pt_BR".into(),
        variables: Variables::new(),
        rendered: rendered.into(),
    }
}

/// Stores `boas_vindas` with `body` (no placeholders), so
/// [`template_content`] of the same text is a valid template message.
async fn store_template(crm: &Crm, account: AccountId, body: &str) {
    crm.create_template(account, new_template("boas_vindas", body)).await.unwrap();
}

fn new_template(name: &str, body: &str) -> NewTemplate {
    NewTemplate { name: name.into(), language: None, category: None, body: body.into(), parameters: None }
}

/// The field of a validation error; panics on anything else.
#[track_caller]
fn validation_field<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Validation { field, .. }) => field.into_owned(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>, entity: &str) {
    match result {
        Err(Error::NotFound { entity: e }) => assert_eq!(e, entity),
        other => panic!("expected {entity} not found, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, Error>, entity: &str) {
    match result {
        Err(Error::Conflict { entity: e, .. }) => assert_eq!(e, entity),
        other => panic!("expected a conflict on {entity}, got {other:?}"),
    }
}

#[track_caller]
fn assert_unauthorized<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::Unauthorized)), "expected unauthorized, got {result:?}");
}

/// Every event type of the account, oldest first.
async fn event_types(crm: &Crm, account: AccountId) -> Vec<String> {
    crm.list_events(account, None, 1000).await.unwrap().into_iter().map(|e| e.event_type.to_string()).collect()
}

async fn all_contacts(crm: &Crm, account: AccountId) -> Vec<crm_core::Contact> {
    let query = ContactQuery { page: PageRequest::first(200).unwrap(), ..Default::default() };
    crm.list_contacts(account, &query).await.unwrap().items
}

// ----- builder -------------------------------------------------------------------

#[tokio::test]
async fn builder_needs_store_and_messenger() {
    let err = Crm::builder().messenger(Arc::new(RecordingMessenger::new())).build().unwrap_err();
    assert!(matches!(err, Error::Config { ref message } if message.contains("store")), "{err:?}");
    let err = Crm::builder().store(Arc::new(MemoryStore::new())).build().unwrap_err();
    assert!(matches!(err, Error::Config { ref message } if message.contains("messenger")), "{err:?}");
}

// ----- accounts, users, API keys -------------------------------------------------

#[tokio::test]
async fn create_account_stores_it_with_its_event() {
    let (crm, store, _, _, account) = setup().await;
    assert_eq!(account.name, "Loja da Ana");
    assert_eq!(account.created_at, start());
    assert_eq!(crm_core::AccountStore::get_account(&*store, account.id).await.unwrap(), account);
    let events = crm.list_events(account.id, None, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::ACCOUNT_CREATED);
    assert_eq!(events[0].payload["id"], json!(account.id));
    assert_eq!(events[0].payload["name"], "Loja da Ana");
    assert_eq!(events[0].occurred_at, start());

    assert_eq!(validation_field(crm.create_account("   ").await), "name");
}

#[tokio::test]
async fn create_user_hashes_the_password_and_refuses_duplicates() {
    let (crm, _, _, _, account) = setup().await;
    let user = crm.create_user(account.id, " Ana@Loja.com.BR ", "Ana", Role::Owner, "correct horse").await.unwrap();
    assert_eq!(user.email.as_str(), "ana@loja.com.br");
    assert_eq!(user.name, "Ana");
    assert_eq!(user.role, Role::Owner);
    assert_eq!(user.account_id, account.id);
    assert!(
        user.password_hash.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        user.password_hash.as_phc()
    );
    assert!(!user.password_hash.as_phc().contains("correct horse"));
    assert!(user.password_hash.verify("correct horse"));
    assert_eq!(crm.get_user(account.id, user.id).await.unwrap(), user);

    let events = crm.list_events(account.id, None, 10).await.unwrap();
    let created = events.last().unwrap();
    assert_eq!(created.event_type, EventType::USER_CREATED);
    assert_eq!(created.payload, json!({ "id": user.id, "email": "ana@loja.com.br", "name": "Ana", "role": "owner" }));

    // The e-mail is unique across accounts, whatever its case.
    assert_conflict(crm.create_user(account.id, "ANA@loja.com.br", "Outra", Role::Agent, "another pw").await, "user");
    let other = crm.create_account("Outra loja").await.unwrap();
    assert_conflict(crm.create_user(other.id, "ana@loja.com.br", "Ana", Role::Owner, "another pw").await, "user");

    assert_eq!(
        validation_field(crm.create_user(account.id, "not-an-email", "Bia", Role::Agent, "long enough").await),
        "email"
    );
    assert_eq!(
        validation_field(crm.create_user(account.id, "bia@loja.com.br", "Bia", Role::Agent, "short").await),
        "password"
    );
    assert_eq!(
        validation_field(crm.create_user(account.id, "bia@loja.com.br", " ", Role::Agent, "long enough").await),
        "name"
    );

    // Nothing but the one user was recorded.
    assert_eq!(event_types(&crm, account.id).await, ["account.created", "user.created"]);
    assert_eq!(event_types(&crm, other.id).await, ["account.created"]);
}

#[tokio::test]
async fn verify_login_accepts_only_the_right_password() {
    let (crm, _, _, _, account) = setup().await;
    let user = crm.create_user(account.id, "ana@loja.com.br", "Ana", Role::Admin, "correct horse").await.unwrap();

    assert_eq!(crm.verify_login("ana@loja.com.br", "correct horse").await.unwrap().id, user.id);
    assert_eq!(crm.verify_login(" ANA@Loja.com.br", "correct horse").await.unwrap().id, user.id);
    assert_unauthorized(crm.verify_login("ana@loja.com.br", "correct horsE").await);
    assert_unauthorized(crm.verify_login("ana@loja.com.br", "").await);
    assert_unauthorized(crm.verify_login("bia@loja.com.br", "correct horse").await);
    assert_unauthorized(crm.verify_login("not an e-mail", "correct horse").await);
}

#[tokio::test]
async fn api_keys_authenticate_until_revoked_or_expired() {
    let (crm, _, _, clock, account) = setup().await;
    let (key, token) = crm.create_api_key(account.id, "ci", Role::Admin, None).await.unwrap();
    let presented = token.expose().to_owned();
    assert!(presented.starts_with(&format!("crm_{}_", key.prefix)));
    assert_eq!(key.account_id, account.id);
    assert_eq!(key.created_at, start());
    assert_eq!(key.revoked_at, None);
    assert_ne!(key.hash, presented, "the token is stored hashed");

    let found = crm.authenticate(&presented).await.unwrap();
    assert_eq!(found.id, key.id);
    assert_eq!(found.account_id, account.id);
    assert_eq!(found.role, Role::Admin);

    // The event describes the key without its secret.
    let events = crm.list_events(account.id, None, 10).await.unwrap();
    let created = events.last().unwrap();
    assert_eq!(created.event_type, EventType::API_KEY_CREATED);
    assert_eq!(created.payload["id"], json!(key.id));
    assert_eq!(created.payload["prefix"], json!(key.prefix));
    let raw = created.payload.to_string();
    assert!(!raw.contains(&key.hash) && !raw.contains(&presented));

    // Same prefix, another secret of the right shape.
    let secret = presented.rsplit('_').next().unwrap();
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    let wrong = format!("crm_{}_{}{}", key.prefix, flipped, &secret[1..]);
    assert_unauthorized(crm.authenticate(&wrong).await);
    // Unknown prefix, garbled shapes.
    assert_unauthorized(crm.authenticate(&format!("crm_{}_{}", "a".repeat(12), secret)).await);
    assert_unauthorized(crm.authenticate("Bearer nonsense").await);
    assert_unauthorized(crm.authenticate(&presented[..presented.len() - 1]).await);
    assert_unauthorized(crm.authenticate("").await);

    // Expiry.
    let expires = start() + chrono::Duration::hours(1);
    let (temp, temp_token) = crm.create_api_key(account.id, "temp", Role::Viewer, Some(expires)).await.unwrap();
    assert_eq!(temp.expires_at, Some(expires));
    assert_eq!(crm.authenticate(temp_token.expose()).await.unwrap().id, temp.id);
    clock.advance(Duration::from_secs(3599));
    assert!(crm.authenticate(temp_token.expose()).await.is_ok());
    clock.advance(Duration::from_secs(1));
    assert_unauthorized(crm.authenticate(temp_token.expose()).await);
    assert_eq!(
        validation_field(crm.create_api_key(account.id, "past", Role::Viewer, Some(clock.now())).await),
        "expires_at"
    );

    // Revocation.
    crm.revoke_api_key(account.id, key.id).await.unwrap();
    assert_unauthorized(crm.authenticate(&presented).await);
}

#[tokio::test]
async fn revoking_twice_keeps_the_first_time_and_one_event() {
    let (crm, _, _, clock, account) = setup().await;
    let (key, _) = crm.create_api_key(account.id, "ci", Role::Agent, None).await.unwrap();
    clock.advance(Duration::from_secs(60));
    let first = crm.revoke_api_key(account.id, key.id).await.unwrap();
    let first_at = start() + chrono::Duration::seconds(60);
    assert_eq!(first.revoked_at, Some(first_at));
    clock.advance(Duration::from_secs(60));
    let second = crm.revoke_api_key(account.id, key.id).await.unwrap();
    assert_eq!(second.revoked_at, Some(first_at));
    assert_eq!(event_types(&crm, account.id).await, ["account.created", "api_key.created", "api_key.revoked"]);
    let revoked = crm.list_events(account.id, None, 10).await.unwrap().pop().unwrap();
    assert_eq!(revoked.payload["id"], json!(key.id));
    assert_eq!(revoked.payload["revoked_at"], json!(first_at));

    assert_not_found(crm.revoke_api_key(account.id, crm_core::ApiKeyId::new()).await, "api_key");
}

#[tokio::test]
async fn a_key_cannot_be_revoked_through_another_account() {
    let (crm, _, _, _, a) = setup().await;
    let b = crm.create_account("Outra loja").await.unwrap();
    let (key, token) = crm.create_api_key(a.id, "ci", Role::Admin, None).await.unwrap();
    assert_not_found(crm.revoke_api_key(b.id, key.id).await, "api_key");
    assert_eq!(crm.authenticate(token.expose()).await.unwrap().revoked_at, None);
    assert_eq!(event_types(&crm, a.id).await, ["account.created", "api_key.created"]);
    assert_eq!(event_types(&crm, b.id).await, ["account.created"]);
}

// ----- contacts ------------------------------------------------------------------

#[tokio::test]
async fn create_contact_with_every_field() {
    let (crm, _, _, _, account) = setup().await;
    let input = NewContact {
        name: "  Ana Souza ".into(),
        phone: "+55 (11) 98765-4321".into(),
        email: Some("Ana@Loja.com.BR".into()),
        whatsapp_id: Some("551187654321".into()),
        tags: strings(&["VIP", " promoção "]),
        metadata: Some(json!({ "origem": "site", "pedidos": 3 })),
        lead_score: Some(42),
        lead_stage: Some(LeadStage::Qualified),
        opt_in: Some(OptInStatus::OptedIn),
        opt_in_source: Some("website-form".into()),
    };
    let c = crm.create_contact(account.id, input).await.unwrap();
    assert_eq!(c.account_id, account.id);
    assert_eq!(c.name, "Ana Souza");
    assert_eq!(c.phone.as_str(), "+5511987654321");
    assert_eq!(c.email.as_ref().unwrap().as_str(), "ana@loja.com.br");
    assert_eq!(c.whatsapp_id.as_deref(), Some("551187654321"));
    assert_eq!(tag_names(&c.tags), ["promoção", "vip"]);
    assert_eq!(serde_json::Value::Object(c.metadata.clone()), json!({ "origem": "site", "pedidos": 3 }));
    assert_eq!(c.lead_score, 42);
    assert_eq!(c.lead_stage, LeadStage::Qualified);
    assert_eq!(c.opt_in.status, OptInStatus::OptedIn);
    assert_eq!(c.opt_in.changed_at, Some(start()));
    assert_eq!(c.opt_in.source.as_deref(), Some("website-form"));
    assert_eq!((c.last_inbound_at, c.last_outbound_at), (None, None));
    assert_eq!((c.created_at, c.updated_at, c.version), (start(), start(), 0));

    assert_eq!(crm.get_contact(account.id, c.id).await.unwrap(), c);
    let events = crm.list_events(account.id, None, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event_type, EventType::CONTACT_CREATED);
    assert_eq!(events[1].payload, serde_json::to_value(&c).unwrap());

    // Defaults.
    let d = crm.create_contact(account.id, new_contact("Bia", "+1 415 555 0100")).await.unwrap();
    assert_eq!(d.phone.as_str(), "+14155550100");
    assert_eq!((d.email.clone(), d.whatsapp_id.clone()), (None, None));
    assert!(d.tags.is_empty() && d.metadata.is_empty());
    assert_eq!((d.lead_score, d.lead_stage), (0, LeadStage::New));
    assert_eq!((d.opt_in.status, d.opt_in.changed_at), (OptInStatus::Unknown, None));
}

#[tokio::test]
async fn brazilian_phone_with_and_without_ninth_digit_is_one_contact() {
    let (crm, _, _, _, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+55 11 98765-4321")).await.unwrap();
    assert_conflict(crm.create_contact(account.id, new_contact("Ana de novo", "+55 11 8765-4321")).await, "contact");
    assert_conflict(crm.create_contact(account.id, new_contact("Ana WA", "551187654321")).await, "contact");
    for form in ["+5511987654321", "+55 11 8765-4321", "551187654321", "5511987654321", "0055 11 98765 4321"] {
        let found = crm.find_contact_by_phone(account.id, form).await.unwrap();
        assert_eq!(found.map(|f| f.id), Some(c.id), "{form}");
    }
    assert_eq!(crm.find_contact_by_phone(account.id, "+55 11 98765-0000").await.unwrap(), None);
    assert_eq!(validation_field(crm.find_contact_by_phone(account.id, "abc").await), "phone");
    assert_eq!(all_contacts(&crm, account.id).await.len(), 1);
    assert_eq!(event_types(&crm, account.id).await, ["account.created", "contact.created"]);
}

#[tokio::test]
async fn invalid_contacts_name_the_field_and_store_nothing() {
    let (crm, _, _, _, account) = setup().await;
    let with = |f: &dyn Fn(&mut NewContact)| {
        let mut n = new_contact("Ana", "+5511987654321");
        f(&mut n);
        n
    };
    let cases: Vec<(NewContact, &str)> = vec![
        (with(&|n| n.phone = "12".into()), "phone"),
        (with(&|n| n.phone = "+55 11 98765-43a1".into()), "phone"),
        (with(&|n| n.phone = String::new()), "phone"),
        (with(&|n| n.name = "   ".into()), "name"),
        (with(&|n| n.name = "x".repeat(201)), "name"),
        (with(&|n| n.metadata = Some(json!({ "big": "x".repeat(MAX_METADATA_BYTES) }))), "metadata"),
        (with(&|n| n.metadata = Some(json!(["not", "an", "object"]))), "metadata"),
        (with(&|n| n.lead_score = Some(101)), "lead_score"),
        (with(&|n| n.lead_score = Some(-1)), "lead_score"),
        (with(&|n| n.email = Some("ana@".into())), "email"),
        (with(&|n| n.tags = strings(&["a,b"])), "tags"),
        (with(&|n| n.whatsapp_id = Some("55 11".into())), "whatsapp_id"),
        (with(&|n| n.opt_in_source = Some(" ".into())), "opt_in_source"),
    ];
    for (input, field) in cases {
        assert_eq!(validation_field(crm.create_contact(account.id, input.clone()).await), field, "{input:?}");
    }
    // Exactly at the limit is fine: 16 KiB of serialized metadata.
    let overhead = serde_json::to_vec(&json!({ "big": "" })).unwrap().len();
    let at_limit = with(&|n| n.metadata = Some(json!({ "big": "x".repeat(MAX_METADATA_BYTES - overhead) })));
    assert!(all_contacts(&crm, account.id).await.is_empty());
    assert_eq!(event_types(&crm, account.id).await, ["account.created"]);
    crm.create_contact(account.id, at_limit).await.unwrap();
}

#[tokio::test]
async fn update_contact_applies_a_partial_patch() {
    let (crm, _, _, clock, account) = setup().await;
    let mut input = new_contact("Ana", "+5511987654321");
    input.email = Some("ana@loja.com.br".into());
    input.tags = strings(&["vip"]);
    input.lead_score = Some(10);
    let c = crm.create_contact(account.id, input).await.unwrap();

    clock.advance(Duration::from_secs(30));
    let patch = ContactPatch {
        name: Some("Ana Souza".into()),
        lead_stage: Some(LeadStage::Proposal),
        lead_score: Some(80),
        ..Default::default()
    };
    let u = crm.update_contact(account.id, c.id, patch).await.unwrap();
    assert_eq!(u.name, "Ana Souza");
    assert_eq!(u.lead_stage, LeadStage::Proposal);
    assert_eq!(u.lead_score, 80);
    // Untouched fields.
    assert_eq!(u.phone, c.phone);
    assert_eq!(u.email, c.email);
    assert_eq!(u.tags, c.tags);
    assert_eq!(u.opt_in, c.opt_in);
    assert_eq!(u.created_at, start());
    assert_eq!(u.updated_at, start() + chrono::Duration::seconds(30));
    assert_eq!(u.version, 1);
    assert_eq!(crm.get_contact(account.id, c.id).await.unwrap(), u);
    let updated = crm.list_events(account.id, None, 10).await.unwrap().pop().unwrap();
    assert_eq!(updated.event_type, EventType::CONTACT_UPDATED);
    assert_eq!(updated.payload, serde_json::to_value(&u).unwrap(), "the event carries the contact as stored");

    // Clearing an optional field and changing consent.
    let patch = ContactPatch { email: Some(None), opt_in: Some(OptInStatus::OptedOut), ..Default::default() };
    let u2 = crm.update_contact(account.id, c.id, patch).await.unwrap();
    assert_eq!(u2.email, None);
    assert_eq!(u2.opt_in.status, OptInStatus::OptedOut);
    assert_eq!(u2.opt_in.changed_at, Some(start() + chrono::Duration::seconds(30)));
    assert_eq!(u2.version, 2);

    // A patch that changes nothing writes nothing.
    let before = event_types(&crm, account.id).await;
    let same =
        ContactPatch { name: Some(" Ana Souza ".into()), phone: Some("+55 11 8765-4321".into()), ..Default::default() };
    let u3 = crm.update_contact(account.id, c.id, same).await.unwrap();
    assert_eq!(u3, u2);
    assert_eq!(event_types(&crm, account.id).await, before);

    // A bad field changes nothing.
    let bad = ContactPatch { name: Some("Outra".into()), lead_score: Some(101), ..Default::default() };
    assert_eq!(validation_field(crm.update_contact(account.id, c.id, bad).await), "lead_score");
    assert_eq!(crm.get_contact(account.id, c.id).await.unwrap(), u2);
    assert_eq!(event_types(&crm, account.id).await, before);
    assert_not_found(crm.update_contact(account.id, ContactId::new(), ContactPatch::default()).await, "contact");
}

#[tokio::test]
async fn update_to_another_contacts_phone_is_a_conflict() {
    let (crm, _, _, _, account) = setup().await;
    let ana = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    let bia = crm.create_contact(account.id, new_contact("Bia", "+5511912345678")).await.unwrap();
    let before = event_types(&crm, account.id).await;

    let patch =
        ContactPatch { name: Some("Bia 2".into()), phone: Some("+55 11 8765-4321".into()), ..Default::default() };
    assert_conflict(crm.update_contact(account.id, bia.id, patch).await, "contact");
    assert_eq!(crm.get_contact(account.id, bia.id).await.unwrap(), bia);
    assert_eq!(crm.get_contact(account.id, ana.id).await.unwrap(), ana);
    assert_eq!(event_types(&crm, account.id).await, before);

    // A free phone moves the contact's phone index with it.
    let patch = ContactPatch { phone: Some("+14155550100".into()), ..Default::default() };
    let moved = crm.update_contact(account.id, bia.id, patch).await.unwrap();
    assert_eq!(moved.phone.as_str(), "+14155550100");
    assert_eq!(crm.find_contact_by_phone(account.id, "+5511912345678").await.unwrap(), None);
    assert_eq!(crm.find_contact_by_phone(account.id, "+14155550100").await.unwrap().map(|c| c.id), Some(bia.id));
    // And the old phone is free again.
    crm.create_contact(account.id, new_contact("Carla", "+55 11 9 1234-5678")).await.unwrap();
}

#[tokio::test]
async fn tag_and_untag_normalise_and_skip_no_ops() {
    let (crm, _, _, _, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();

    let t = crm.tag_contact(account.id, c.id, &strings(&[" VIP ", "Promoção", "vip"])).await.unwrap();
    assert_eq!(tag_names(&t.tags), ["promoção", "vip"]);
    assert_eq!(t.version, 1);
    let after_tag = event_types(&crm, account.id).await;
    assert_eq!(after_tag, ["account.created", "contact.created", "contact.updated"]);

    let same = crm.tag_contact(account.id, c.id, &strings(&["VIP"])).await.unwrap();
    assert_eq!(same, t);
    let nothing = crm.untag_contact(account.id, c.id, &strings(&["never-there"])).await.unwrap();
    assert_eq!(nothing, t);
    assert_eq!(crm.tag_contact(account.id, c.id, &[]).await.unwrap(), t);
    assert_eq!(event_types(&crm, account.id).await, after_tag, "no event when nothing changed");

    let u = crm.untag_contact(account.id, c.id, &strings(&["VIP "])).await.unwrap();
    assert_eq!(tag_names(&u.tags), ["promoção"]);
    assert_eq!(u.version, 2);
    assert_eq!(event_types(&crm, account.id).await.len(), 4);

    assert_eq!(validation_field(crm.tag_contact(account.id, c.id, &strings(&["a,b"])).await), "tags");
    assert_eq!(validation_field(crm.tag_contact(account.id, c.id, &strings(&["  "])).await), "tags");
    let too_many: Vec<String> = (0..crm_core::MAX_TAGS).map(|i| format!("t{i}")).collect();
    assert_eq!(validation_field(crm.tag_contact(account.id, c.id, &too_many).await), "tags");
    assert_eq!(crm.get_contact(account.id, c.id).await.unwrap(), u);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tagging_keeps_every_tag() {
    let (crm, _, _, _, account) = setup().await;
    for round in 0..5 {
        let c = crm.create_contact(account.id, new_contact("Ana", &format!("+55119876543{round:02}"))).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(10));
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let (crm, barrier) = (crm.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    crm.tag_contact(account.id, c.id, &[format!("tag-{i}")]).await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let stored = crm.get_contact(account.id, c.id).await.unwrap();
        let expected: BTreeSet<String> = (0..10).map(|i| format!("tag-{i}")).collect();
        let got: BTreeSet<String> = stored.tags.iter().map(|t| t.as_str().to_owned()).collect();
        assert_eq!(got, expected, "round {round}");
        assert_eq!(stored.version, 10, "one write per tag");
    }
    let updates = event_types(&crm, account.id).await.iter().filter(|t| *t == "contact.updated").count();
    assert_eq!(updates, 50);
}

#[tokio::test]
async fn delete_contact_removes_it_and_its_thread() {
    let (crm, _, _, _, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    let inbound = crm.record_inbound(account.id, text_from("+5511987654321", Some("wamid.in.1"), "Oi")).await.unwrap();
    let sent = crm.send_message(account.id, c.id, MessageContent::text("Olá")).await.unwrap();
    let pid = sent.provider_message_id.clone().unwrap();

    crm.delete_contact(account.id, c.id).await.unwrap();
    assert_not_found(crm.get_contact(account.id, c.id).await, "contact");
    assert_not_found(crm.get_message(account.id, sent.id).await, "message");
    assert_not_found(crm.get_message(account.id, inbound.message.id).await, "message");
    assert_not_found(crm.list_thread(account.id, c.id, &PageRequest::default()).await, "contact");
    assert_not_found(
        crm.apply_status_update(account.id, &pid, MessageStatus::Delivered, start(), None).await,
        "message",
    );
    assert_eq!(crm.find_contact_by_phone(account.id, "+5511987654321").await.unwrap(), None);
    assert!(all_contacts(&crm, account.id).await.is_empty());
    let deleted = crm.list_events(account.id, None, 100).await.unwrap().pop().unwrap();
    assert_eq!(deleted.event_type, EventType::CONTACT_DELETED);
    assert_eq!(deleted.payload, json!({ "id": c.id }));

    assert_not_found(crm.delete_contact(account.id, c.id).await, "contact");
    // The phone and the provider id are free again.
    let again = crm.create_contact(account.id, new_contact("Ana", "+55 11 8765-4321")).await.unwrap();
    let re = crm.record_inbound(account.id, text_from("+5511987654321", Some("wamid.in.1"), "Oi")).await.unwrap();
    assert!(!re.duplicate);
    assert_eq!(re.contact.id, again.id);
}

#[tokio::test]
async fn another_account_sees_nothing_of_this_one() {
    let (crm, _, messenger, _, a) = setup().await;
    let b = crm.create_account("Outra loja").await.unwrap();
    let contact = crm.create_contact(a.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    let template = crm.create_template(a.id, new_template("boas_vindas", "Olá {{name}}")).await.unwrap();
    let sent = crm.send_message(a.id, contact.id, MessageContent::text("Olá")).await.unwrap();
    let pid = sent.provider_message_id.clone().unwrap();
    let user = crm.create_user(a.id, "ana@loja.com.br", "Ana", Role::Owner, "correct horse").await.unwrap();
    let (key, _) = crm.create_api_key(a.id, "ci", Role::Admin, None).await.unwrap();
    let a_events = crm.list_events(a.id, None, 1000).await.unwrap();

    let c = contact.id;
    assert_not_found(crm.get_contact(b.id, c).await, "contact");
    assert_not_found(
        crm.update_contact(b.id, c, ContactPatch { name: Some("X".into()), ..Default::default() }).await,
        "contact",
    );
    assert_not_found(crm.tag_contact(b.id, c, &strings(&["x"])).await, "contact");
    assert_not_found(crm.untag_contact(b.id, c, &strings(&["x"])).await, "contact");
    assert_not_found(crm.delete_contact(b.id, c).await, "contact");
    assert_not_found(crm.send_message(b.id, c, MessageContent::text("Oi")).await, "contact");
    assert_not_found(crm.send_template(b.id, c, "boas_vindas", "pt_BR", Variables::new()).await, "template");
    crm.create_template(b.id, new_template("boas_vindas", "Oi {{name}}")).await.unwrap();
    assert_not_found(crm.send_template(b.id, c, "boas_vindas", "pt_BR", Variables::new()).await, "contact");
    assert_not_found(crm.get_message(b.id, sent.id).await, "message");
    assert_not_found(crm.list_thread(b.id, c, &PageRequest::default()).await, "contact");
    assert_not_found(crm.apply_status_update(b.id, &pid, MessageStatus::Read, start(), None).await, "message");
    assert_not_found(crm.get_template(b.id, template.id).await, "template");
    assert_not_found(crm.update_template(b.id, template.id, new_template("x", "y")).await, "template");
    assert_not_found(crm.delete_template(b.id, template.id).await, "template");
    assert_not_found(crm.revoke_api_key(b.id, key.id).await, "api_key");
    assert_not_found(crm.get_user(b.id, user.id).await, "user");
    assert_eq!(crm.find_contact_by_phone(b.id, "+5511987654321").await.unwrap(), None);
    assert!(all_contacts(&crm, b.id).await.is_empty());
    let b_templates = crm.list_templates(b.id, &PageRequest::default()).await.unwrap().items;
    assert_eq!(b_templates.len(), 1);
    assert_eq!(b_templates[0].account_id, b.id);
    assert!(crm.list_events(b.id, None, 1000).await.unwrap().iter().all(|e| e.account_id == b.id));

    // The same phone writing to B is B's own contact.
    let inbound = crm.record_inbound(b.id, text_from("+5511987654321", Some(&pid), "Oi")).await.unwrap();
    assert!(inbound.contact_created && !inbound.duplicate);
    assert_ne!(inbound.contact.id, c);
    let search = ContactQuery { search: ContactSearch::parse("ana").unwrap(), ..Default::default() };
    assert!(crm.list_contacts(b.id, &search).await.unwrap().items.is_empty());

    // A is untouched.
    assert_eq!(crm.get_contact(a.id, c).await.unwrap().tags, contact.tags);
    assert_eq!(crm.get_message(a.id, sent.id).await.unwrap(), sent);
    assert_eq!(crm.list_events(a.id, None, 1000).await.unwrap(), a_events);
    assert_eq!(messenger.sent().len(), 1);
    assert_eq!(all_contacts(&crm, a.id).await.len(), 1);
}

// ----- listing -------------------------------------------------------------------

#[tokio::test]
async fn list_contacts_filters_by_tag_stage_and_search() {
    let (crm, _, _, _, account) = setup().await;
    let mk = |name: &str, phone: &str, email: Option<&str>, tags: &[&str], stage: LeadStage| NewContact {
        name: name.into(),
        phone: phone.into(),
        email: email.map(Into::into),
        tags: strings(tags),
        lead_stage: Some(stage),
        ..Default::default()
    };
    let ana = crm
        .create_contact(
            account.id,
            mk("Ana Souza", "+5511987654321", Some("ana@loja.com.br"), &["vip"], LeadStage::Won),
        )
        .await
        .unwrap();
    let anabela = crm
        .create_contact(
            account.id,
            mk("Anabela", "+5521998877665", Some("bela@gmail.com"), &["vip", "rj"], LeadStage::New),
        )
        .await
        .unwrap();
    let bruno = crm
        .create_contact(account.id, mk("Bruno", "+14155550100", Some("bruno@loja.com.br"), &["rj"], LeadStage::Won))
        .await
        .unwrap();
    let other = crm.create_account("Outra").await.unwrap();
    crm.create_contact(other.id, mk("Ana Outra", "+5511987654321", Some("ana@loja.com.br"), &["vip"], LeadStage::Won))
        .await
        .unwrap();

    let aid = account.id;
    let ids = |q: ContactQuery| {
        let crm = crm.clone();
        async move { crm.list_contacts(aid, &q).await.unwrap().items.into_iter().map(|c| c.id).collect::<Vec<_>>() }
    };
    let search = |term: &str| ContactQuery { search: ContactSearch::parse(term).unwrap(), ..Default::default() };

    assert_eq!(ids(ContactQuery::default()).await, [ana.id, anabela.id, bruno.id]);
    assert_eq!(
        ids(ContactQuery { tag: Some(Tag::parse("VIP").unwrap()), ..Default::default() }).await,
        [ana.id, anabela.id]
    );
    assert_eq!(
        ids(ContactQuery { tag: Some(Tag::parse("rj").unwrap()), ..Default::default() }).await,
        [anabela.id, bruno.id]
    );
    assert!(ids(ContactQuery { tag: Some(Tag::parse("none").unwrap()), ..Default::default() }).await.is_empty());
    assert_eq!(ids(ContactQuery { lead_stage: Some(LeadStage::Won), ..Default::default() }).await, [ana.id, bruno.id]);
    assert_eq!(
        ids(ContactQuery {
            tag: Some(Tag::parse("rj").unwrap()),
            lead_stage: Some(LeadStage::Won),
            ..Default::default()
        })
        .await,
        [bruno.id]
    );
    // Name prefix, case-insensitive; not a substring match.
    assert_eq!(ids(search("ana")).await, [ana.id, anabela.id]);
    assert_eq!(ids(search("ANA S")).await, [ana.id]);
    assert!(ids(search("souza")).await.is_empty());
    // Phone digits, anywhere in the number, punctuation ignored.
    assert_eq!(ids(search("98765")).await, [ana.id]);
    assert_eq!(ids(search("(21) 99887")).await, [anabela.id]);
    assert_eq!(ids(search("+55 11")).await, [ana.id]);
    // E-mail prefix.
    assert_eq!(ids(search("ana@")).await, [ana.id]);
    assert_eq!(ids(search("BRUNO@LOJA")).await, [bruno.id]);
    assert!(ids(search("@loja")).await.is_empty());
    // Blank search means no search.
    assert_eq!(ContactSearch::parse("   ").unwrap(), None);
    assert_eq!(validation_field(ContactSearch::parse(&"a".repeat(201))), "search");
}

#[tokio::test]
async fn keyset_pagination_is_stable_under_inserts() {
    let (crm, _, _, _, account) = setup().await;
    let phone = |i: u32| format!("+55119{:08}", 80_000_000 + i);
    let mut original = Vec::new();
    for i in 0..25 {
        original.push(crm.create_contact(account.id, new_contact(&format!("C{i:02}"), &phone(i))).await.unwrap().id);
    }

    // Plain walk: 10, 10, 5, in id order, no duplicates, no gaps.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let query = ContactQuery { page: PageRequest::new(cursor.as_deref(), 10).unwrap(), ..Default::default() };
        let page = crm.list_contacts(account.id, &query).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(seen, original);

    // Walk again, inserting contacts between page fetches.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = Vec::new();
    let mut pages = 0;
    loop {
        let query = ContactQuery { page: PageRequest::new(cursor.as_deref(), 10).unwrap(), ..Default::default() };
        let page = crm.list_contacts(account.id, &query).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|c| c.id));
        for _ in 0..3 {
            let n = 100 + added.len() as u32;
            added.push(crm.create_contact(account.id, new_contact(&format!("N{n}"), &phone(n))).await.unwrap().id);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    let originals_seen: Vec<_> = seen.iter().copied().filter(|id| original.contains(id)).collect();
    assert_eq!(originals_seen, original, "every original contact exactly once, in order");
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no repeats");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "id order");
    // Anything inserted before the walk reached its place is seen too.
    assert!(seen.len() > original.len());

    assert_eq!(validation_field(PageRequest::new(Some("not a cursor!"), 10)), "cursor");
    assert_eq!(validation_field(PageRequest::first(0)), "limit");
}

// ----- sending -------------------------------------------------------------------

#[tokio::test]
async fn send_message_records_the_provider_id_and_events() {
    let (crm, _, messenger, clock, account) = setup().await;
    let mut input = new_contact("Ana", "+5511987654321");
    input.whatsapp_id = Some("551187654321".into());
    let c = crm.create_contact(account.id, input).await.unwrap();
    let mark = crm.list_events(account.id, None, 100).await.unwrap().last().unwrap().id;
    clock.advance(Duration::from_secs(5));

    let m = crm.send_message(account.id, c.id, MessageContent::text("Olá, Ana!")).await.unwrap();
    assert_eq!(m.status, MessageStatus::Sent);
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.contact_id, c.id);
    assert_eq!(m.content, MessageContent::text("Olá, Ana!"));
    let now = start() + chrono::Duration::seconds(5);
    assert_eq!((m.created_at, m.sent_at, m.updated_at), (now, Some(now), now));
    assert_eq!(m.error, None);

    let sent = messenger.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(m.provider_message_id.as_deref(), Some(sent[0].provider_message_id.as_str()));
    assert_eq!(sent[0].message.message_id, m.id);
    assert_eq!(sent[0].message.account_id, account.id);
    assert_eq!(sent[0].message.to.as_str(), "+5511987654321");
    assert_eq!(sent[0].message.whatsapp_id.as_deref(), Some("551187654321"));
    assert_eq!(sent[0].message.content, m.content);

    assert_eq!(crm.get_message(account.id, m.id).await.unwrap(), m);
    assert_eq!(crm.get_contact(account.id, c.id).await.unwrap().last_outbound_at, Some(now));
    let thread = crm.list_thread(account.id, c.id, &PageRequest::default()).await.unwrap();
    assert_eq!(thread.items, std::slice::from_ref(&m));

    let events = crm.list_events(account.id, Some(mark), 100).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["message.queued", "message.status_updated"]);
    assert_eq!(events[0].payload["message"]["id"], json!(m.id));
    assert_eq!(events[0].payload["message"]["contact_id"], json!(c.id));
    assert_eq!(events[0].payload["message"]["status"], "queued");
    assert_eq!(events[0].payload["contact"]["id"], json!(c.id));
    assert_eq!(events[0].payload["new_recipient"], true, "the contact had no outbound message yet");
    assert_eq!(events[1].payload["message_id"], json!(m.id));
    assert_eq!(events[1].payload["contact_id"], json!(c.id));
    assert_eq!(events[1].payload["status"], "sent");
    assert_eq!(events[1].payload["direction"], "outbound");
    assert_eq!(events[1].payload["provider_message_id"], json!(m.provider_message_id));

    assert_not_found(crm.send_message(account.id, ContactId::new(), MessageContent::text("x")).await, "contact");
}

#[tokio::test]
async fn a_provider_failure_is_recorded_on_the_message() {
    let (crm, _, messenger, _, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    messenger.fail_next(Some("131047"), "Re-engagement message", false);

    let m = crm.send_message(account.id, c.id, MessageContent::text("Oi")).await.unwrap();
    assert_eq!(m.status, MessageStatus::Failed);
    assert_eq!(m.error, Some(MessageError { code: Some("131047".into()), reason: "Re-engagement message".into() }));
    assert_eq!(m.failed_at, Some(start()));
    assert_eq!(m.provider_message_id, None);
    assert_eq!(m.sent_at, None);
    assert_eq!(crm.get_message(account.id, m.id).await.unwrap(), m);
    assert!(messenger.sent().is_empty());

    let events = crm.list_events(account.id, None, 100).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event_type, EventType::MESSAGE_STATUS_UPDATED);
    assert_eq!(last.payload["status"], "failed");
    assert_eq!(last.payload["message_id"], json!(m.id));
    assert_eq!(last.payload["error"], json!({ "code": "131047", "reason": "Re-engagement message" }));
    assert_eq!(events[events.len() - 2].event_type, EventType::MESSAGE_QUEUED);

    // The failure is used up: the next send goes through.
    let next = crm.send_message(account.id, c.id, MessageContent::text("Oi de novo")).await.unwrap();
    assert_eq!(next.status, MessageStatus::Sent);
    assert_eq!(messenger.sent().len(), 1);
}

#[tokio::test]
async fn an_opted_out_contact_is_not_messaged() {
    let (crm, _, messenger, _, account) = setup().await;
    let mut input = new_contact("Ana", "+5511987654321");
    input.opt_in = Some(OptInStatus::OptedOut);
    let c = crm.create_contact(account.id, input).await.unwrap();
    store_template(&crm, account.id, "Oi").await;
    let before = event_types(&crm, account.id).await;

    assert_eq!(
        validation_field(crm.send_message(account.id, c.id, MessageContent::text("Oi")).await),
        "contact.opt_in"
    );
    assert_eq!(validation_field(crm.send_message(account.id, c.id, template_content("Oi")).await), "contact.opt_in");
    assert!(messenger.sent().is_empty());
    assert!(crm.list_thread(account.id, c.id, &PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(event_types(&crm, account.id).await, before);
    assert_eq!(crm.get_contact(account.id, c.id).await.unwrap().last_outbound_at, None);
}

#[tokio::test]
async fn a_kind_the_messenger_cannot_send_is_refused() {
    let caps = Capabilities { kinds: [MessageKind::Template].into_iter().collect(), ..Capabilities::everything() };
    let (crm, _, messenger, _, account) = setup_with(RecordingMessenger::new().with_capabilities(caps)).await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    store_template(&crm, account.id, "Oi").await;
    match crm.send_message(account.id, c.id, MessageContent::text("Oi")).await {
        Err(Error::Validation { field, reason }) => {
            assert_eq!(field, "content.type");
            assert!(reason.contains("text"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(messenger.sent().is_empty());
    assert!(crm.list_thread(account.id, c.id, &PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(crm.send_message(account.id, c.id, template_content("Oi")).await.unwrap().status, MessageStatus::Sent);
}

#[tokio::test]
async fn the_customer_service_window_limits_free_form_messages() {
    let caps = Capabilities { customer_service_window: Some(DAY), ..Capabilities::everything() };
    let (crm, _, messenger, clock, account) = setup_with(RecordingMessenger::new().with_capabilities(caps)).await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    store_template(&crm, account.id, "Olá").await;
    let text = || MessageContent::text("Oi");

    // Never wrote: only templates.
    match crm.send_message(account.id, c.id, text()).await {
        Err(Error::Validation { field, reason }) => {
            assert_eq!(field, "content.type");
            assert!(reason.contains("24 hours"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(messenger.sent().is_empty());
    assert_eq!(crm.send_message(account.id, c.id, template_content("Olá")).await.unwrap().status, MessageStatus::Sent);

    // Wrote: the window is open for 24 hours.
    clock.advance(Duration::from_secs(3600));
    crm.record_inbound(account.id, text_from("+5511987654321", Some("wamid.1"), "Oi!")).await.unwrap();
    assert_eq!(crm.send_message(account.id, c.id, text()).await.unwrap().status, MessageStatus::Sent);
    clock.advance(DAY - Duration::from_secs(1));
    assert_eq!(crm.send_message(account.id, c.id, text()).await.unwrap().status, MessageStatus::Sent);
    clock.advance(Duration::from_secs(2));
    assert_eq!(validation_field(crm.send_message(account.id, c.id, text()).await), "content.type");
    assert_eq!(crm.send_message(account.id, c.id, template_content("Olá")).await.unwrap().status, MessageStatus::Sent);
    assert_eq!(messenger.sent().len(), 4);

    // The window runs from when the contact sent the message, as the provider says.
    let sent_at = clock.now() - chrono::Duration::hours(25);
    let mut late = text_from("+5511987654321", Some("wamid.2"), "mensagem atrasada");
    late.sent_at = Some(sent_at);
    crm.record_inbound(account.id, late).await.unwrap();
    assert_eq!(validation_field(crm.send_message(account.id, c.id, text()).await), "content.type");
}

#[tokio::test]
async fn a_huge_window_never_closes_and_does_not_overflow() {
    let caps = Capabilities { customer_service_window: Some(Duration::MAX), ..Capabilities::everything() };
    let (crm, _, _, clock, account) = setup_with(RecordingMessenger::new().with_capabilities(caps)).await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    assert_eq!(validation_field(crm.send_message(account.id, c.id, MessageContent::text("Oi")).await), "content.type");
    crm.record_inbound(account.id, text_from("+5511987654321", None, "Oi")).await.unwrap();
    clock.advance(DAY * 365);
    assert_eq!(
        crm.send_message(account.id, c.id, MessageContent::text("Oi")).await.unwrap().status,
        MessageStatus::Sent
    );
}

#[tokio::test]
async fn invalid_content_is_refused_before_anything_is_stored() {
    let (crm, _, messenger, _, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    let before = event_types(&crm, account.id).await;
    let buttons = |n: usize| MessageContent::Interactive {
        interactive: Interactive::Buttons {
            body: "Escolha".into(),
            buttons: (0..n).map(|i| ReplyButton { id: format!("b{i}"), title: "Sim".into() }).collect(),
        },
    };
    assert_eq!(validation_field(crm.send_message(account.id, c.id, MessageContent::text("")).await), "content.body");
    assert_eq!(
        validation_field(crm.send_message(account.id, c.id, MessageContent::text("  \n ")).await),
        "content.body"
    );
    assert_eq!(
        validation_field(crm.send_message(account.id, c.id, MessageContent::text("x".repeat(4097))).await),
        "content.body"
    );
    assert_eq!(validation_field(crm.send_message(account.id, c.id, buttons(4)).await), "content.buttons");
    assert_eq!(validation_field(crm.send_message(account.id, c.id, buttons(0)).await), "content.buttons");
    assert!(messenger.sent().is_empty());
    assert!(crm.list_thread(account.id, c.id, &PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(event_types(&crm, account.id).await, before);

    let ok = crm.send_message(account.id, c.id, buttons(3)).await.unwrap();
    assert_eq!(ok.status, MessageStatus::Sent);
    assert_eq!(ok.kind(), MessageKind::Interactive);
}

// ----- templates and send_template ------------------------------------------------

#[tokio::test]
async fn send_template_renders_contact_and_caller_variables() {
    let (crm, _, messenger, _, account) = setup().await;
    let mut input = new_contact("Ana Souza", "+55 11 8765-4321");
    input.email = Some("ana@loja.com.br".into());
    let c = crm.create_contact(account.id, input).await.unwrap();
    let t = crm
        .create_template(
            account.id,
            new_template(
                "pedido_enviado",
                "Olá {{first_name}}, seu pedido {{ pedido }} saiu! ({{name}}, {{phone}}, {{email}})",
            ),
        )
        .await
        .unwrap();
    assert_eq!(t.variables, ["first_name", "pedido", "name", "phone", "email"]);

    let m = crm
        .send_template(account.id, c.id, "pedido_enviado", "pt_BR", vars(&[("pedido", "123"), ("unused", "x")]))
        .await
        .unwrap();
    let rendered = "Olá Ana, seu pedido 123 saiu! (Ana Souza, +5511987654321, ana@loja.com.br)";
    let expected = MessageContent::Template {
        name: "pedido_enviado".into(),
        language: "pt_BR".into(),
        variables: vars(&[
            ("email", "ana@loja.com.br"),
            ("first_name", "Ana"),
            ("name", "Ana Souza"),
            ("pedido", "123"),
            ("phone", "+5511987654321"),
        ]),
        rendered: rendered.into(),
    };
    assert_eq!(m.content, expected);
    assert_eq!(m.content.preview(), rendered);
    assert_eq!(m.status, MessageStatus::Sent);
    assert_eq!(crm.get_message(account.id, m.id).await.unwrap().content, expected);
    assert_eq!(messenger.sent()[0].message.content, expected);

    // The caller's values win over the contact's.
    let m = crm
        .send_template(account.id, c.id, "pedido_enviado", "pt_BR", vars(&[("pedido", "9"), ("first_name", "Aninha")]))
        .await
        .unwrap();
    assert!(m.content.preview().starts_with("Olá Aninha, seu pedido 9"), "{}", m.content.preview());
}

#[tokio::test]
async fn send_template_refuses_missing_variables_and_unknown_templates() {
    let (crm, _, messenger, _, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    crm.create_template(account.id, new_template("lembrete", "{{a}} {{b}} {{first_name}} {{c}} {{email}}"))
        .await
        .unwrap();
    let before = event_types(&crm, account.id).await;

    match crm.send_template(account.id, c.id, "lembrete", "pt_BR", vars(&[("b", "1")])).await {
        Err(Error::Validation { field, reason }) => {
            assert_eq!(field, "variables");
            // `email` is missing too: the contact has none.
            assert_eq!(reason, "missing a, c, email");
        }
        other => panic!("{other:?}"),
    }
    assert_not_found(crm.send_template(account.id, c.id, "nao_existe", "pt_BR", Variables::new()).await, "template");
    assert_not_found(crm.send_template(account.id, c.id, "lembrete", "en_US", Variables::new()).await, "template");
    assert_not_found(
        crm.send_template(account.id, ContactId::new(), "lembrete", "pt_BR", Variables::new()).await,
        "contact",
    );
    assert!(messenger.sent().is_empty());
    assert_eq!(event_types(&crm, account.id).await, before);
}

#[tokio::test]
async fn templates_crud() {
    let (crm, _, _, clock, account) = setup().await;
    let t = crm
        .create_template(
            account.id,
            NewTemplate {
                name: "boas_vindas".into(),
                language: Some("en_US".into()),
                category: Some(TemplateCategory::Utility),
                body: "Hi {{name}}".into(),
                parameters: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((t.name.as_str(), t.language.as_str(), t.category), ("boas_vindas", "en_US", TemplateCategory::Utility));
    assert_eq!(t.variables, ["name"]);
    assert_eq!(crm.get_template(account.id, t.id).await.unwrap(), t);
    let pt = crm.create_template(account.id, new_template("boas_vindas", "Olá {{name}}")).await.unwrap();
    assert_eq!(pt.language, "pt_BR");
    assert_eq!(pt.category, TemplateCategory::Marketing);

    // Name + language is unique.
    let dup = NewTemplate { language: Some("en_US".into()), ..new_template("boas_vindas", "Other") };
    assert_conflict(crm.create_template(account.id, dup.clone()).await, "template");
    assert_conflict(crm.update_template(account.id, pt.id, dup).await, "template");
    assert_eq!(crm.get_template(account.id, pt.id).await.unwrap(), pt);

    // Update.
    clock.advance(Duration::from_secs(10));
    let updated =
        crm.update_template(account.id, pt.id, new_template("boas_vindas", "Oi {{first_name}}!")).await.unwrap();
    assert_eq!(updated.body, "Oi {{first_name}}!");
    assert_eq!(updated.variables, ["first_name"]);
    assert_eq!(updated.created_at, start());
    assert_eq!(updated.updated_at, start() + chrono::Duration::seconds(10));
    assert_eq!(crm.get_template(account.id, pt.id).await.unwrap(), updated);

    // A malformed update changes nothing.
    let before = event_types(&crm, account.id).await;
    for (bad, field) in [
        (new_template("boas_vindas", "Oi {{first_name"), "body"),
        (new_template("boas_vindas", "Oi {{ two words }}"), "body"),
        (new_template("boas_vindas", "   "), "body"),
        (new_template("Boas Vindas", "Oi"), "name"),
        (NewTemplate { language: Some("portuguese".into()), ..new_template("boas_vindas", "Oi") }, "language"),
    ] {
        assert_eq!(validation_field(crm.update_template(account.id, pt.id, bad.clone()).await), field, "{bad:?}");
        assert_eq!(validation_field(crm.create_template(account.id, bad).await), field);
    }
    assert_eq!(crm.get_template(account.id, pt.id).await.unwrap(), updated);
    assert_eq!(event_types(&crm, account.id).await, before);

    // List and delete.
    let listed = crm.list_templates(account.id, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items, [t.clone(), updated.clone()]);
    assert_eq!(listed.next_cursor, None);
    let first = crm.list_templates(account.id, &PageRequest::first(1).unwrap()).await.unwrap();
    assert_eq!(first.items, std::slice::from_ref(&t));
    let second =
        crm.list_templates(account.id, &PageRequest::new(first.next_cursor.as_deref(), 1).unwrap()).await.unwrap();
    assert_eq!(second.items, std::slice::from_ref(&updated));
    assert_eq!(second.next_cursor, None);

    crm.delete_template(account.id, t.id).await.unwrap();
    assert_not_found(crm.get_template(account.id, t.id).await, "template");
    assert_not_found(crm.delete_template(account.id, t.id).await, "template");
    assert_not_found(crm.update_template(account.id, t.id, new_template("x", "y")).await, "template");
    assert_eq!(
        crm.list_templates(account.id, &PageRequest::default()).await.unwrap().items,
        std::slice::from_ref(&updated)
    );

    let events = crm.list_events(account.id, None, 100).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["account.created", "template.created", "template.created", "template.updated", "template.deleted"]
    );
    assert_eq!(events[1].payload["id"], json!(t.id));
    assert_eq!(events[3].payload["body"], "Oi {{first_name}}!");
    assert_eq!(events[4].payload, json!({ "id": t.id }));
}

// ----- inbound -------------------------------------------------------------------

#[tokio::test]
async fn record_inbound_creates_the_contact_then_reuses_it() {
    let (crm, _, _, clock, account) = setup().await;
    let mut first = text_from("5511987654321", Some("wamid.1"), "Oi, tudo bem?");
    first.profile_name = Some("Ana Souza".into());
    first.whatsapp_id = Some("551187654321".into());
    let r = crm.record_inbound(account.id, first).await.unwrap();
    assert!(r.contact_created && !r.duplicate);
    assert_eq!(r.contact.name, "Ana Souza");
    assert_eq!(r.contact.phone.as_str(), "+5511987654321");
    assert_eq!(r.contact.whatsapp_id.as_deref(), Some("551187654321"));
    assert_eq!(r.contact.last_inbound_at, Some(start()));
    assert_eq!(r.message.direction, Direction::Inbound);
    assert_eq!(r.message.status, MessageStatus::Delivered);
    assert_eq!(r.message.contact_id, r.contact.id);
    assert_eq!(r.message.provider_message_id.as_deref(), Some("wamid.1"));
    assert_eq!(r.message.content, MessageContent::text("Oi, tudo bem?"));
    assert_eq!(crm.get_message(account.id, r.message.id).await.unwrap(), r.message);
    assert_eq!(crm.get_contact(account.id, r.contact.id).await.unwrap(), r.contact);

    let events = crm.list_events(account.id, None, 100).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["account.created", "contact.created", "message.received"]);
    assert_eq!(events[1].payload["id"], json!(r.contact.id));
    assert_eq!(events[2].payload["message"]["id"], json!(r.message.id));
    assert_eq!(
        events[2].payload["contact"],
        json!({ "id": r.contact.id, "name": "Ana Souza", "phone": "+5511987654321" })
    );

    // The same person, written without the 9th digit, with another profile name.
    clock.advance(Duration::from_secs(120));
    let mut second = text_from("+55 11 8765-4321", Some("wamid.2"), "Alô?");
    second.profile_name = Some("Aninha".into());
    let r2 = crm.record_inbound(account.id, second).await.unwrap();
    assert!(!r2.contact_created && !r2.duplicate);
    assert_eq!(r2.contact.id, r.contact.id);
    assert_eq!(r2.contact.name, "Ana Souza", "an existing contact keeps its name");
    let later = start() + chrono::Duration::seconds(120);
    assert_eq!(r2.contact.last_inbound_at, Some(later));
    assert_eq!(crm.get_contact(account.id, r.contact.id).await.unwrap().last_inbound_at, Some(later));
    assert_eq!(all_contacts(&crm, account.id).await.len(), 1);

    // A provider retry of the first message.
    let before = crm.list_events(account.id, None, 100).await.unwrap();
    let again =
        crm.record_inbound(account.id, text_from("+5511987654321", Some("wamid.1"), "Oi, tudo bem?")).await.unwrap();
    assert!(again.duplicate && !again.contact_created);
    assert_eq!(again.message, r.message);
    assert_eq!(again.contact.id, r.contact.id);
    assert_eq!(crm.list_events(account.id, None, 100).await.unwrap(), before);
    let thread = crm.list_thread(account.id, r.contact.id, &PageRequest::default()).await.unwrap();
    assert_eq!(thread.items.iter().map(|m| m.id).collect::<Vec<_>>(), [r.message.id, r2.message.id]);

    // Messages without a provider id are never treated as duplicates.
    crm.record_inbound(account.id, text_from("+5511987654321", None, "a")).await.unwrap();
    crm.record_inbound(account.id, text_from("+5511987654321", None, "a")).await.unwrap();
    assert_eq!(crm.list_thread(account.id, r.contact.id, &PageRequest::default()).await.unwrap().items.len(), 4);
}

#[tokio::test]
async fn record_inbound_names_the_contact_after_the_phone_without_a_usable_profile_name() {
    let (crm, _, _, _, account) = setup().await;
    let r = crm.record_inbound(account.id, text_from("551187654321", None, "Oi")).await.unwrap();
    assert_eq!(r.contact.name, "+5511987654321");

    let mut blank = text_from("+14155550100", None, "Hi");
    blank.profile_name = Some("   ".into());
    assert_eq!(crm.record_inbound(account.id, blank).await.unwrap().contact.name, "+14155550100");

    // What a provider reports about the sender never loses the message.
    let mut odd = text_from("+442079460958", Some("wamid.odd"), "Hello");
    odd.profile_name = Some(format!("Bob\u{0}{}", "b".repeat(300)));
    odd.whatsapp_id = Some("not a valid id".into());
    let r = crm.record_inbound(account.id, odd).await.unwrap();
    assert!(r.contact_created);
    assert!(r.contact.name.starts_with("Bob"));
    assert_eq!(r.contact.name.chars().count(), 200);
    assert_eq!(r.contact.whatsapp_id, None);
    assert_eq!(crm.get_message(account.id, r.message.id).await.unwrap().content, MessageContent::text("Hello"));
}

#[tokio::test]
async fn an_invalid_inbound_message_leaves_nothing_behind() {
    let (crm, _, _, _, account) = setup().await;
    assert_eq!(
        validation_field(crm.record_inbound(account.id, text_from("+5511987654321", None, "")).await),
        "content.body"
    );
    assert_eq!(
        validation_field(
            crm.record_inbound(account.id, text_from("+5511987654321", Some(&"x".repeat(257)), "Oi")).await
        ),
        "provider_message_id"
    );
    assert_eq!(validation_field(crm.record_inbound(account.id, text_from("12", None, "Oi")).await), "phone");
    assert!(all_contacts(&crm, account.id).await.is_empty());
    assert_eq!(event_types(&crm, account.id).await, ["account.created"]);
}

// ----- status updates ------------------------------------------------------------

#[tokio::test]
async fn status_updates_only_move_forward() {
    let (crm, _, _, _, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    let m = crm.send_message(account.id, c.id, MessageContent::text("Oi")).await.unwrap();
    let pid = m.provider_message_id.clone().unwrap();
    let t = |s: i64| start() + chrono::Duration::seconds(s);
    let aid = account.id;
    let updates = |crm: Crm| async move {
        crm.list_events(aid, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == EventType::MESSAGE_STATUS_UPDATED)
            .collect::<Vec<_>>()
    };
    assert_eq!(updates(crm.clone()).await.len(), 1, "the sent step");

    let d = crm.apply_status_update(account.id, &pid, MessageStatus::Delivered, t(10), None).await.unwrap();
    assert_eq!(d.status, MessageStatus::Delivered);
    assert_eq!(d.delivered_at, Some(t(10)));
    assert_eq!(d.sent_at, Some(start()));
    let dup = crm.apply_status_update(account.id, &pid, MessageStatus::Delivered, t(11), None).await.unwrap();
    assert_eq!(dup, d, "a duplicate report changes nothing");
    assert_eq!(updates(crm.clone()).await.len(), 2);

    let r = crm.apply_status_update(account.id, &pid, MessageStatus::Read, t(20), None).await.unwrap();
    assert_eq!(r.status, MessageStatus::Read);
    assert_eq!((r.delivered_at, r.read_at), (Some(t(10)), Some(t(20))));
    let events = updates(crm.clone()).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].payload["status"], "read");
    assert_eq!(events[2].payload["message_id"], json!(m.id));
    assert_eq!(events[2].payload["provider_message_id"], json!(pid));

    // Late and impossible reports leave it read.
    for late in [MessageStatus::Delivered, MessageStatus::Sent, MessageStatus::Read, MessageStatus::Queued] {
        let same = crm.apply_status_update(account.id, &pid, late, t(30), None).await.unwrap();
        assert_eq!(same, r, "{late:?}");
    }
    let failed_late = MessageError { code: Some("131026".into()), reason: "undeliverable".into() };
    assert_eq!(
        crm.apply_status_update(account.id, &pid, MessageStatus::Failed, t(30), Some(failed_late)).await.unwrap(),
        r
    );
    assert_eq!(crm.get_message(account.id, m.id).await.unwrap(), r);
    assert_eq!(updates(crm.clone()).await.len(), 3);

    assert_not_found(
        crm.apply_status_update(account.id, "wamid.unknown", MessageStatus::Read, t(40), None).await,
        "message",
    );
}

#[tokio::test]
async fn a_failed_message_stays_failed() {
    let (crm, _, _, _, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    let m = crm.send_message(account.id, c.id, MessageContent::text("Oi")).await.unwrap();
    let pid = m.provider_message_id.clone().unwrap();
    let at = start() + chrono::Duration::seconds(5);
    let error = MessageError { code: Some("131026".into()), reason: "Message undeliverable".into() };

    let f = crm.apply_status_update(account.id, &pid, MessageStatus::Failed, at, Some(error.clone())).await.unwrap();
    assert_eq!(f.status, MessageStatus::Failed);
    assert_eq!(f.failed_at, Some(at));
    assert_eq!(f.error, Some(error));
    let count = event_types(&crm, account.id).await.len();

    let other = MessageError { code: Some("1".into()), reason: "other".into() };
    let again = crm.apply_status_update(account.id, &pid, MessageStatus::Failed, at, Some(other)).await.unwrap();
    assert_eq!(again, f);
    for s in [MessageStatus::Sent, MessageStatus::Delivered, MessageStatus::Read] {
        assert_eq!(crm.apply_status_update(account.id, &pid, s, at, None).await.unwrap(), f);
    }
    assert_eq!(event_types(&crm, account.id).await.len(), count);
}

// ----- import --------------------------------------------------------------------

#[tokio::test]
async fn import_reports_exact_rows() {
    let (crm, _, _, _, account) = setup().await;
    let existing = crm.create_contact(account.id, new_contact("Já existe", "+5511912340000")).await.unwrap();
    let rows = vec![
        new_contact("Inválido", "abc"),                   // 0: bad phone
        new_contact("Ana", "+55 11 98765-0001"),          // 1: ok
        new_contact("Bob", "+1 415 555 0100"),            // 2: ok
        new_contact("Ana de novo", "+55 11 8765-0001"),   // 3: repeats row 1, without the 9th digit
        new_contact("Fixo", "+55 11 3456-7890"),          // 4: ok (a landline)
        new_contact(" ", "+442079460958"),                // 5: empty name
        new_contact("Dup", "5511 9 1234 0000"),           // 6: already stored
        new_contact("Carla", "+442079460958"),            // 7: ok (row 5 was rejected, so no repeat)
        new_contact("Fixo de novo", "551134567890"),      // 8: repeats row 4
        new_contact("DDD inválido", "+55 01 98765-4321"), // 9: bad Brazilian number
    ];
    let report = crm.import_contacts(account.id, rows).await.unwrap();
    let rejected: Vec<(usize, &str)> = report.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(
        rejected,
        [
            (0, "invalid phone: may contain only digits, spaces, dashes, dots, parentheses and a leading +"),
            (3, "phone repeats row 1"),
            (5, "invalid name: must not be empty"),
            (6, "a contact with this phone already exists"),
            (8, "phone repeats row 4"),
            (9, "invalid phone: is not a valid Brazilian number"),
        ]
    );
    assert_eq!(report.imported, 4);

    let stored = all_contacts(&crm, account.id).await;
    let names: Vec<_> = stored.iter().map(|c| (c.name.as_str(), c.phone.as_str())).collect();
    assert_eq!(
        names,
        [
            ("Já existe", "+5511912340000"),
            ("Ana", "+5511987650001"),
            ("Bob", "+14155550100"),
            ("Fixo", "+551134567890"),
            ("Carla", "+442079460958"),
        ]
    );
    assert_eq!(stored[0], existing);
    let events = crm.list_events(account.id, None, 100).await.unwrap();
    let created: Vec<_> =
        events.iter().filter(|e| e.event_type == EventType::CONTACT_CREATED).map(|e| e.payload["id"].clone()).collect();
    let expected: Vec<_> = stored.iter().map(|c| json!(c.id)).collect();
    assert_eq!(created, expected);
    assert_eq!(events.len(), 1 + 5);

    // An empty import is a no-op.
    let empty = crm.import_contacts(account.id, Vec::new()).await.unwrap();
    assert_eq!((empty.imported, empty.rejected.len()), (0, 0));
    assert_eq!(crm.list_events(account.id, None, 100).await.unwrap().len(), 6);
}

// ----- the event log and the outbox ----------------------------------------------

#[tokio::test]
async fn every_mutation_writes_exactly_one_event() {
    let (crm, _, messenger, _, account) = setup().await;
    let user = crm.create_user(account.id, "ana@loja.com.br", "Ana", Role::Owner, "correct horse").await.unwrap();
    let (key, _) = crm.create_api_key(account.id, "ci", Role::Admin, None).await.unwrap();
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    let _ = crm.create_contact(account.id, new_contact("Dup", "+55 11 8765-4321")).await.unwrap_err();
    crm.update_contact(account.id, c.id, ContactPatch { lead_score: Some(50), ..Default::default() }).await.unwrap();
    crm.update_contact(account.id, c.id, ContactPatch { lead_score: Some(50), ..Default::default() }).await.unwrap();
    crm.tag_contact(account.id, c.id, &strings(&["vip"])).await.unwrap();
    crm.tag_contact(account.id, c.id, &strings(&["VIP"])).await.unwrap();
    let t = crm.create_template(account.id, new_template("oi", "Oi {{name}}")).await.unwrap();
    let m = crm.send_template(account.id, c.id, "oi", "pt_BR", Variables::new()).await.unwrap();
    messenger.fail_next(None, "timeout", true);
    crm.send_message(account.id, c.id, MessageContent::text("Oi")).await.unwrap();
    crm.record_inbound(account.id, text_from("+5511987654321", Some("wamid.in"), "Oi!")).await.unwrap();
    crm.record_inbound(account.id, text_from("+5511987654321", Some("wamid.in"), "Oi!")).await.unwrap();
    let pid = m.provider_message_id.unwrap();
    crm.apply_status_update(account.id, &pid, MessageStatus::Delivered, start(), None).await.unwrap();
    crm.apply_status_update(account.id, &pid, MessageStatus::Delivered, start(), None).await.unwrap();
    crm.update_template(account.id, t.id, new_template("oi", "Olá {{name}}")).await.unwrap();
    crm.delete_template(account.id, t.id).await.unwrap();
    crm.revoke_api_key(account.id, key.id).await.unwrap();
    crm.revoke_api_key(account.id, key.id).await.unwrap();
    crm.untag_contact(account.id, c.id, &strings(&["vip"])).await.unwrap();
    crm.delete_contact(account.id, c.id).await.unwrap();
    let _ = crm.get_user(account.id, user.id).await.unwrap();

    assert_eq!(
        event_types(&crm, account.id).await,
        [
            "account.created",
            "user.created",
            "api_key.created",
            "contact.created",
            "contact.updated",
            "contact.updated",
            "template.created",
            "message.queued",
            "message.status_updated",
            "message.queued",
            "message.status_updated",
            "message.received",
            "message.status_updated",
            "template.updated",
            "template.deleted",
            "api_key.revoked",
            "contact.updated",
            "contact.deleted",
        ]
    );
    let events = crm.list_events(account.id, None, 1000).await.unwrap();
    assert!(events.iter().all(|e| e.account_id == account.id));
    assert!(events.windows(2).all(|w| w[0].id < w[1].id && w[0].occurred_at <= w[1].occurred_at));
    // Paging through the log with a cursor sees the same events.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let batch = crm.list_events(account.id, after, 5).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        paged.extend(batch);
    }
    assert_eq!(paged, events);
}

#[tokio::test]
async fn the_outbox_hands_mutations_to_a_consumer() {
    let (crm, store, _, clock, account) = setup().await;
    store.register_consumer("webhooks", &crm_core::EventFilter::all()).await.unwrap();
    store.register_consumer("webhooks", &crm_core::EventFilter::all()).await.unwrap();
    assert_eq!(store.pending("webhooks").await.unwrap(), 0, "earlier events are not queued");

    let a = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    let b = crm.create_contact(account.id, new_contact("Bia", "+5511912345678")).await.unwrap();
    crm.tag_contact(account.id, a.id, &strings(&["vip"])).await.unwrap();
    crm.tag_contact(account.id, a.id, &strings(&["vip"])).await.unwrap(); // no-op: nothing queued
    assert_eq!(store.pending("webhooks").await.unwrap(), 3);

    let lease = Duration::from_secs(30);
    let claims = store.claim("webhooks", 10, lease).await.unwrap();
    let got: Vec<_> = claims.iter().map(|c| (c.event.event_type.as_str(), c.event.payload["id"].clone())).collect();
    assert_eq!(
        got,
        [("contact.created", json!(a.id)), ("contact.created", json!(b.id)), ("contact.updated", json!(a.id))]
    );
    assert!(claims.iter().all(|c| c.attempt == 1 && c.last_error.is_none()));
    let logged = crm.list_events(account.id, None, 100).await.unwrap();
    assert_eq!(claims.iter().map(|c| c.event.clone()).collect::<Vec<_>>(), logged[1..]);
    assert!(store.claim("webhooks", 10, lease).await.unwrap().is_empty(), "leased items are not handed out twice");

    // Ack removes, nack brings the item back later with its error.
    store.ack(&claims[0].token).await.unwrap();
    assert_eq!(store.pending("webhooks").await.unwrap(), 2);
    store.nack(&claims[1].token, Duration::from_secs(60), "HTTP 500").await.unwrap();
    assert_eq!(store.pending("webhooks").await.unwrap(), 2);
    assert!(store.claim("webhooks", 10, lease).await.unwrap().is_empty());
    assert_not_found(store.ack(&claims[0].token).await, "outbox item");
    assert_conflict(store.ack(&claims[1].token).await, "outbox item");

    // The third item's lease expires first.
    clock.advance(Duration::from_secs(31));
    let retry = store.claim("webhooks", 10, lease).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].event.id, claims[2].event.id);
    assert_eq!(retry[0].attempt, 2);
    assert_conflict(store.ack(&claims[2].token).await, "outbox item");
    store.ack(&retry[0].token).await.unwrap();

    // The nacked item is due 60 s after the nack.
    clock.advance(Duration::from_secs(28));
    assert!(store.claim("webhooks", 10, lease).await.unwrap().is_empty());
    clock.advance(Duration::from_secs(1));
    let due = store.claim("webhooks", 10, lease).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].event.id, claims[1].event.id);
    assert_eq!(due[0].attempt, 2);
    assert_eq!(due[0].last_error.as_deref(), Some("HTTP 500"));
    store.ack(&due[0].token).await.unwrap();
    assert_eq!(store.pending("webhooks").await.unwrap(), 0);

    // A second consumer registered later only sees what comes after.
    store.register_consumer("automation", &crm_core::EventFilter::all()).await.unwrap();
    crm.delete_contact(account.id, b.id).await.unwrap();
    assert_eq!(store.pending("webhooks").await.unwrap(), 1);
    assert_eq!(store.pending("automation").await.unwrap(), 1);
    let claimed = store.claim("automation", 1, lease).await.unwrap();
    assert_eq!(claimed[0].event.event_type, EventType::CONTACT_DELETED);
    assert_eq!(validation_field(store.register_consumer("Bad Name", &crm_core::EventFilter::all()).await), "consumer");
}

#[tokio::test]
async fn default_country_reads_national_numbers() {
    let crm = crm_core::Crm::builder()
        .store(std::sync::Arc::new(crm_core::MemoryStore::new()))
        .messenger(std::sync::Arc::new(crm_core::RecordingMessenger::new()))
        .default_country("55")
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap();
    let c = crm
        .create_contact(
            account.id,
            crm_core::NewContact { name: "Ana".into(), phone: "(11) 8765-4321".into(), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(c.phone.as_str(), "+5511987654321");
    let found = crm.find_contact_by_phone(account.id, "11 98765-4321").await.unwrap();
    assert_eq!(found.map(|f| f.id), Some(c.id));
    let moved = crm
        .update_contact(
            account.id,
            c.id,
            crm_core::ContactPatch { phone: Some("21 99876-5432".into()), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(moved.phone.as_str(), "+5521998765432");
    let intl = crm
        .create_contact(
            account.id,
            crm_core::NewContact { name: "Bob".into(), phone: "+1 415 555 0100".into(), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(intl.phone.as_str(), "+14155550100");
    let bad = crm_core::Crm::builder()
        .store(std::sync::Arc::new(crm_core::MemoryStore::new()))
        .messenger(std::sync::Arc::new(crm_core::RecordingMessenger::new()))
        .default_country("BR")
        .build();
    assert!(matches!(bad, Err(crm_core::Error::Config { .. })));
}

#[tokio::test]
async fn inbound_messages_teach_the_contacts_whatsapp_id() {
    let messenger = crm_core::RecordingMessenger::new();
    let crm = crm_core::Crm::builder()
        .store(std::sync::Arc::new(crm_core::MemoryStore::new()))
        .messenger(std::sync::Arc::new(messenger.clone()))
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap();
    let c = crm
        .create_contact(
            account.id,
            crm_core::NewContact { name: "Ana".into(), phone: "+5511987654321".into(), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(c.whatsapp_id, None);
    let inbound = |pid: &str, wa: Option<&str>| crm_core::InboundMessage {
        from: "551187654321".into(),
        whatsapp_id: wa.map(Into::into),
        profile_name: Some("Ana".into()),
        provider_message_id: Some(pid.into()),
        content: crm_core::MessageContent::text("oi"),
        sent_at: None,
        reply_to: None,
    };
    let got = crm.record_inbound(account.id, inbound("w1", Some("551187654321"))).await.unwrap();
    assert!(!got.contact_created);
    assert_eq!(got.contact.id, c.id);
    assert_eq!(got.contact.whatsapp_id.as_deref(), Some("551187654321"), "learned from the provider");
    let events = crm.list_events(account.id, None, 100).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["account.created", "contact.created", "contact.updated", "message.received"]);
    // The same id again changes nothing; replies go to the learned id.
    crm.record_inbound(account.id, inbound("w2", Some("551187654321"))).await.unwrap();
    crm.record_inbound(account.id, inbound("w3", Some("not valid id"))).await.unwrap();
    assert_eq!(crm.list_events(account.id, None, 100).await.unwrap().len(), 6, "no extra contact.updated");
    crm.send_message(account.id, c.id, crm_core::MessageContent::text("olá")).await.unwrap();
    assert_eq!(messenger.sent()[0].message.whatsapp_id.as_deref(), Some("551187654321"));
}

#[tokio::test]
async fn the_api_key_cache_saves_reads_and_revocation_is_bounded() {
    let clock = ManualClock::new(start());
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let build = || {
        Crm::builder()
            .store(store.clone())
            .messenger(Arc::new(RecordingMessenger::new()))
            .clock(Arc::new(clock.clone()))
            .api_key_cache(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    // Two services over one store: two processes of one deployment.
    let (here, elsewhere) = (build(), build());
    let account = here.create_account("Loja").await.unwrap();
    let (key, token) = here.create_api_key(account.id, "k", Role::Agent, None).await.unwrap();
    assert_eq!(here.authenticate(token.expose()).await.unwrap().id, key.id);
    assert_eq!(elsewhere.authenticate(token.expose()).await.unwrap().id, key.id);
    // A wrong secret with a cached prefix is still refused.
    let forged = format!("crm_{}_{}", key.prefix, "x".repeat(43));
    assert!(matches!(here.authenticate(&forged).await, Err(Error::Unauthorized)));

    here.revoke_api_key(account.id, key.id).await.unwrap();
    assert!(matches!(here.authenticate(token.expose()).await, Err(Error::Unauthorized)), "at once where revoked");
    assert!(elsewhere.authenticate(token.expose()).await.is_ok(), "elsewhere the cached copy still serves…");
    clock.advance(Duration::from_secs(5));
    assert!(matches!(elsewhere.authenticate(token.expose()).await, Err(Error::Unauthorized)), "…for at most 5 s");

    // Expiry is checked on every call, cached or not.
    let soon = start() + chrono::Duration::seconds(60);
    let (_, t2) = here.create_api_key(account.id, "short", Role::Agent, Some(soon)).await.unwrap();
    assert!(here.authenticate(t2.expose()).await.is_ok());
    clock.set(soon + chrono::Duration::seconds(1));
    assert!(matches!(here.authenticate(t2.expose()).await, Err(Error::Unauthorized)));
}

#[tokio::test]
async fn the_default_channel_cache_saves_reads_and_local_writes_invalidate_it() {
    let clock = ManualClock::new(start());
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let build = || {
        Crm::builder()
            .store(store.clone())
            .messenger_factory(Arc::new(crm_core::RecordingFactory::new(RecordingMessenger::new())))
            .clock(Arc::new(clock.clone()))
            .default_channel_cache(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    // Two services over one store: two processes of one deployment.
    let (here, elsewhere) = (build(), build());
    let account = here.create_account("Loja").await.unwrap().id;
    let contact = NewContact { name: "Ana".into(), phone: "+5511987654321".into(), ..Default::default() };
    let contact = here.create_contact(account, contact).await.unwrap().id;
    let channel = |name: &str, is_default: bool| crm_core::NewChannel {
        kind: "recording".into(),
        name: name.into(),
        is_default,
        ..Default::default()
    };
    let via = |crm: Crm| async move {
        let req = crm_core::SendRequest::new(contact, MessageContent::text("oi"));
        crm.queue_message(account, req).await.unwrap().message.channel_id
    };

    let a = here.create_channel(account, channel("A", false)).await.unwrap().id;
    assert_eq!(via(here.clone()).await, Some(a));
    assert_eq!(via(elsewhere.clone()).await, Some(a));

    let b = here.create_channel(account, channel("B", true)).await.unwrap().id;
    assert_eq!(via(here.clone()).await, Some(b), "a channel written here is read again at once");
    assert_eq!(via(elsewhere.clone()).await, Some(a), "elsewhere the cached default still serves…");
    clock.advance(Duration::from_secs(5));
    assert_eq!(via(elsewhere.clone()).await, Some(b), "…for at most 5 s");

    // Disabling the default here is seen here at once.
    let patch = crm_core::ChannelPatch { enabled: Some(false), ..Default::default() };
    here.update_channel(account, b, patch).await.unwrap();
    let req = crm_core::SendRequest::new(contact, MessageContent::text("oi"));
    let e = here.queue_message(account, req).await.unwrap_err();
    assert!(matches!(e, Error::Validation { .. }), "{e}");
}

/// An immediate send on a channel that is not connected is no failure:
/// the message stays queued and the dispatcher sends it after the
/// immediate send's handover time, once the channel is back.
#[tokio::test]
async fn an_immediate_send_on_a_disconnected_channel_stays_queued_for_the_dispatcher() {
    use crm_core::workers::{EventWorker, Outcome};
    let (crm, store, messenger, clock, account) = setup().await;
    let c = crm.create_contact(account.id, new_contact("Ana", "+5511987654321")).await.unwrap();
    messenger.set_offline(Some("the session is reconnecting"));
    let m = crm.send_message(account.id, c.id, MessageContent::text("Oi")).await.unwrap();
    assert_eq!(m.status, MessageStatus::Queued, "{m:?}");
    assert!(m.error.is_none());
    messenger.set_offline(None);
    let events = crm.list_events(account.id, None, 100).await.unwrap();
    let queued = events.iter().find(|e| e.event_type == EventType::MESSAGE_QUEUED).unwrap().clone();
    let dispatcher = crm.dispatcher();
    assert!(
        matches!(dispatcher.handle(&queued, 1, None).await, Outcome::Defer { .. }),
        "its caller's until the handover"
    );
    clock.advance(std::time::Duration::from_secs(301));
    assert_eq!(dispatcher.handle(&queued, 1, None).await, Outcome::Done);
    assert_eq!(crm.get_message(account.id, m.id).await.unwrap().status, MessageStatus::Sent);
    assert_eq!(messenger.sent().len(), 1);
    drop(store);
}

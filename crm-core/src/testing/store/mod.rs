//! Conformance suites for the store ports ([`Store`] and its parts).
//!
//! Every function takes a fresh, empty store and checks one behaviour of the
//! contracts written on [`AccountStore`], [`ContactStore`], [`MessageStore`],
//! [`TemplateStore`] and [`EventStore`]. [`run_all`] runs them all, each on a
//! new store from the factory.
//!
//! Times are taken from [`SystemClock`] (microsecond precision) so that a
//! value read back must equal the value written.

use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    Account, AccountId, ApiKey, Clock, Contact, ContactId, ContactQuery, ContactSearch, Email, Error, Event, EventType,
    HealthStatus, LeadStage, Message, MessageContent, MessageError, MessageStatus, NewContact, NewTemplate,
    OptInStatus, PageRequest, Phone, Role, StatusUpdate, Store, SystemClock, Tag, Template, User,
};
#[allow(unused_imports)] // referenced by the module docs
use crate::{AccountStore, ContactStore, EventStore, MessageStore, TemplateStore};

/// Runs every store behaviour, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    accounts_and_users(make().await).await;
    api_keys(make().await).await;
    contact_crud(make().await).await;
    contact_roundtrip_preserves_every_field(make().await).await;
    contact_phone_is_unique_per_account(make().await).await;
    contact_update_is_optimistic(make().await).await;
    contact_tenancy(make().await).await;
    list_contacts_filters(make().await).await;
    list_contacts_search_is_literal(make().await).await;
    list_contacts_keyset_pagination(make().await).await;
    import_contacts_reports_rows(make().await).await;
    import_contacts_validates_arguments(make().await).await;
    messages_insert_and_find(make().await).await;
    messages_move_contact_activity_forward(make().await).await;
    message_thread_pagination(make().await).await;
    message_status_only_moves_forward(make().await).await;
    message_status_concurrent_updates(make().await).await;
    message_tenancy(make().await).await;
    contact_delete_cascades(make().await).await;
    templates_crud_and_uniqueness(make().await).await;
    event_per_mutation(make().await).await;
    failed_mutations_write_no_event(make().await).await;
    events_cursor_and_limits(make().await).await;
    outbox_claim_and_ack(make().await).await;
    outbox_lease_expiry(make().await).await;
    outbox_nack_retries_later(make().await).await;
    outbox_consumers_are_independent(make().await).await;
    outbox_concurrent_claims_never_overlap(make().await).await;
    concurrent_contact_inserts_same_phone(make().await).await;
    health_reports_healthy(make().await).await;
}

// ----- fixtures ----------------------------------------------------------------

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

fn ev(account: AccountId, kind: EventType) -> Event {
    Event::new(account, kind, &json!({ "probe": true }), now())
}

async fn new_account(store: &Arc<dyn Store>, name: &str) -> AccountId {
    let a = Account::new(name, now()).expect("valid account");
    store.create_account(&a, &ev(a.id, EventType::ACCOUNT_CREATED)).await.expect("[fixture] create_account");
    a.id
}

fn contact(account: AccountId, name: &str, phone: &str) -> Contact {
    Contact::new(account, NewContact { name: name.into(), phone: phone.into(), ..Default::default() }, now())
        .expect("valid contact")
}

fn phone(n: usize) -> String {
    format!("+55119{:08}", 10_000_000 + n)
}

async fn insert(store: &Arc<dyn Store>, c: &Contact) {
    store
        .insert_contact(c, &ev(c.account_id, EventType::CONTACT_CREATED))
        .await
        .unwrap_or_else(|e| panic!("[fixture] insert_contact: {e}"));
}

fn outbound(c: &Contact, text: &str) -> Message {
    Message::outbound(c.account_id, c.id, MessageContent::text(text), now()).expect("valid message")
}

fn inbound(c: &Contact, pid: &str, at: DateTime<Utc>) -> Message {
    Message::inbound(c.account_id, c.id, MessageContent::text("oi"), Some(pid.into()), at, now()).expect("valid")
}

fn status(status: MessageStatus, pid: Option<&str>) -> StatusUpdate {
    StatusUpdate { status, at: now(), provider_message_id: pid.map(Into::into), error: None }
}

async fn events_of(store: &Arc<dyn Store>, account: AccountId) -> Vec<Event> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_events(account, after, 1000).await.expect("list_events");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page);
    }
    all
}

async fn event_count(store: &Arc<dyn Store>, account: AccountId) -> usize {
    events_of(store, account).await.len()
}

fn is_not_found(r: &Error) -> bool {
    matches!(r, Error::NotFound { .. })
}

fn is_conflict(r: &Error) -> bool {
    matches!(r, Error::Conflict { .. })
}

fn query(page: PageRequest) -> ContactQuery {
    ContactQuery { page, ..Default::default() }
}

async fn all_contacts(store: &Arc<dyn Store>, account: AccountId, mut q: ContactQuery) -> Vec<Contact> {
    let mut out = Vec::new();
    q.page = PageRequest::first(200).expect("limit");
    loop {
        let page = store.list_contacts(account, &q).await.expect("list_contacts");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.page = PageRequest::new(Some(&c), 200).expect("cursor"),
            None => break,
        }
    }
    out
}

// ----- accounts, users, keys -------------------------------------------------------

/// Accounts and users: create, read, NotFound, global e-mail uniqueness, tenancy.
pub async fn accounts_and_users(store: Arc<dyn Store>) {
    let a = new_account(&store, "Loja A").await;
    let b = new_account(&store, "Loja B").await;
    assert_eq!(store.get_account(a).await.expect("get_account").name, "Loja A", "[accounts] name read back");
    assert!(
        is_not_found(&store.get_account(AccountId::new()).await.expect_err("missing")),
        "[accounts] unknown id is NotFound"
    );

    let user = User::new(a, "ana@loja.com", "Ana", Role::Admin, "senha-forte-1", now()).expect("user");
    store.create_user(&user, &ev(a, EventType::USER_CREATED)).await.expect("create_user");
    let back = store.get_user(a, user.id).await.expect("get_user");
    assert_eq!(back, user, "[users] round trip");
    assert!(back.password_hash.verify("senha-forte-1"), "[users] password hash survives storage");
    assert!(is_not_found(&store.get_user(b, user.id).await.expect_err("x")), "[users] other account is NotFound");

    let dup = User::new(b, "ANA@loja.com", "Outra", Role::Agent, "senha-forte-2", now()).expect("user");
    let err = store.create_user(&dup, &ev(b, EventType::USER_CREATED)).await.expect_err("dup email");
    assert!(is_conflict(&err), "[users] e-mail is unique across accounts, got {err}");

    let found = store.find_user_by_email(&Email::parse("ana@loja.com").expect("email")).await.expect("find");
    assert_eq!(found.map(|u| u.id), Some(user.id), "[users] find by e-mail");
    let none = store.find_user_by_email(&Email::parse("x@y.com").expect("email")).await.expect("find");
    assert!(none.is_none(), "[users] unknown e-mail is None");
    assert_eq!(store.list_users(a).await.expect("list").len(), 1, "[users] list of A");
    assert!(store.list_users(b).await.expect("list").is_empty(), "[users] list of B is empty");
}

/// API keys: lookup by prefix, prefix uniqueness, revoke semantics, tenancy.
pub async fn api_keys(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let (key, token) = ApiKey::generate(a, "ci", Role::Admin, None, now()).expect("key");
    store.create_api_key(&key, &ev(a, EventType::API_KEY_CREATED)).await.expect("create_api_key");
    let found = store.find_api_key_by_prefix(&key.prefix).await.expect("find").expect("present");
    assert_eq!(found, key, "[api_keys] round trip");
    assert!(found.verify(token.expose(), now()), "[api_keys] stored hash verifies the token");
    assert!(store.find_api_key_by_prefix("nosuchprefix").await.expect("find").is_none(), "[api_keys] unknown prefix");

    let mut clash = ApiKey::generate(b, "other", Role::Agent, None, now()).expect("key").0;
    clash.prefix = key.prefix.clone();
    let err = store.create_api_key(&clash, &ev(b, EventType::API_KEY_CREATED)).await.expect_err("dup prefix");
    assert!(is_conflict(&err), "[api_keys] prefix is unique, got {err}");

    let err = store.revoke_api_key(b, key.id, now(), &ev(b, EventType::API_KEY_REVOKED)).await.expect_err("x");
    assert!(is_not_found(&err), "[api_keys] revoking another account's key is NotFound");

    let before = event_count(&store, a).await;
    let at = now();
    let revoked = store.revoke_api_key(a, key.id, at, &ev(a, EventType::API_KEY_REVOKED)).await.expect("revoke");
    assert_eq!(revoked.revoked_at, Some(at), "[api_keys] revoked_at set");
    assert_eq!(event_count(&store, a).await, before + 1, "[api_keys] revoke writes its event");
    let later = at + chrono::Duration::seconds(5);
    let again = store.revoke_api_key(a, key.id, later, &ev(a, EventType::API_KEY_REVOKED)).await.expect("again");
    assert_eq!(again.revoked_at, Some(at), "[api_keys] second revoke keeps the first time");
    assert_eq!(event_count(&store, a).await, before + 1, "[api_keys] second revoke writes no event");
    let listed = store.list_api_keys(a).await.expect("list");
    assert_eq!(listed.len(), 1, "[api_keys] list of A");
    assert_eq!(listed[0].revoked_at, Some(at), "[api_keys] list shows revocation");
    assert!(store.list_api_keys(b).await.expect("list").is_empty(), "[api_keys] list of B is empty");
}

// ----- contacts ------------------------------------------------------------------------

/// Contacts: insert, get, find by phone, update (version), delete.
pub async fn contact_crud(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+55 11 98765-4321");
    insert(&store, &c).await;
    let got = store.get_contact(a, c.id).await.expect("get");
    assert_eq!(got, c, "[contacts] round trip");
    assert_eq!(got.version, 0, "[contacts] new contacts have version 0");
    let legacy = Phone::parse("551187654321").expect("phone");
    let by_phone = store.find_contact_by_phone(a, &legacy).await.expect("find");
    assert_eq!(by_phone.map(|c| c.id), Some(c.id), "[contacts] find by phone (canonical form)");

    let mut changed = got.clone();
    changed.name = "Ana Maria".into();
    changed.lead_score = 80;
    let stored = store.update_contact(&changed, &ev(a, EventType::CONTACT_UPDATED)).await.expect("update");
    assert_eq!(stored.version, 1, "[contacts] update increments version");
    assert_eq!(stored.name, "Ana Maria", "[contacts] update returns the stored contact");
    let got = store.get_contact(a, c.id).await.expect("get");
    assert_eq!(got, stored, "[contacts] get after update equals update's result");

    store.delete_contact(a, c.id, &ev(a, EventType::CONTACT_DELETED)).await.expect("delete");
    assert!(is_not_found(&store.get_contact(a, c.id).await.expect_err("gone")), "[contacts] deleted is NotFound");
    let err = store.delete_contact(a, c.id, &ev(a, EventType::CONTACT_DELETED)).await.expect_err("again");
    assert!(is_not_found(&err), "[contacts] deleting twice is NotFound");
    assert!(store.find_contact_by_phone(a, &legacy).await.expect("find").is_none(), "[contacts] phone freed");
    insert(&store, &contact(a, "Ana de novo", "+5511987654321")).await;
}

/// Every field of a contact survives storage exactly.
pub async fn contact_roundtrip_preserves_every_field(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let input = NewContact {
        name: "José da Silva".into(),
        phone: "+55 21 99876-5432".into(),
        email: Some("jose@example.com.br".into()),
        whatsapp_id: Some("552199876543".into()),
        tags: vec!["VIP".into(), "promoção".into(), "lead:site".into()],
        metadata: Some(json!({"cidade": "Rio", "pedidos": [1, 2, {"x": null}], "nested": {"ok": true, "n": 1.5}})),
        lead_score: Some(42),
        lead_stage: Some(LeadStage::Negotiation),
        opt_in: Some(OptInStatus::OptedIn),
        opt_in_source: Some("website-form".into()),
    };
    let mut c = Contact::new(a, input, now()).expect("contact");
    c.last_inbound_at = Some(now() - chrono::Duration::hours(3));
    c.last_outbound_at = Some(now() - chrono::Duration::minutes(5));
    insert(&store, &c).await;
    let got = store.get_contact(a, c.id).await.expect("get");
    assert_eq!(got, c, "[contacts] every field round-trips");
    let listed = all_contacts(&store, a, ContactQuery::default()).await;
    assert_eq!(listed, vec![c], "[contacts] list returns the same contact as get");
}

/// One contact per account and phone; another account may reuse the phone.
pub async fn contact_phone_is_unique_per_account(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let first = contact(a, "Ana", "+5511987654321");
    insert(&store, &first).await;
    let again = contact(a, "Outra Ana", "+55 11 8765-4321");
    let before = event_count(&store, a).await;
    let err = store.insert_contact(&again, &ev(a, EventType::CONTACT_CREATED)).await.expect_err("dup");
    assert!(is_conflict(&err), "[contacts] same phone in one account is Conflict, got {err}");
    assert_eq!(event_count(&store, a).await, before, "[contacts] refused insert writes no event");
    insert(&store, &contact(b, "Ana em B", "+5511987654321")).await;

    let second = contact(a, "Bia", "+5511912345678");
    insert(&store, &second).await;
    let mut moved = store.get_contact(a, second.id).await.expect("get");
    moved.phone = first.phone.clone();
    let err = store.update_contact(&moved, &ev(a, EventType::CONTACT_UPDATED)).await.expect_err("clash");
    match &err {
        Error::Conflict { reason, .. } => {
            assert!(!reason.contains("changed"), "[contacts] phone clash is not reported as a stale version: {reason}")
        }
        other => panic!("[contacts] phone clash on update must be Conflict, got {other}"),
    }
    let still = store.get_contact(a, second.id).await.expect("get");
    assert_eq!(still.phone.as_str(), "+5511912345678", "[contacts] refused update changes nothing");
    assert_eq!(still.version, 0, "[contacts] refused update keeps the version");
}

/// `update_contact` refuses a stale version with a Conflict mentioning "changed".
pub async fn contact_update_is_optimistic(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let mut one = c.clone();
    one.name = "Um".into();
    let mut two = c.clone();
    two.name = "Dois".into();
    store.update_contact(&one, &ev(a, EventType::CONTACT_UPDATED)).await.expect("first update");
    let err = store.update_contact(&two, &ev(a, EventType::CONTACT_UPDATED)).await.expect_err("stale");
    match &err {
        Error::Conflict { reason, .. } => assert!(reason.contains("changed"), "[contacts] stale reason: {reason}"),
        other => panic!("[contacts] stale version must be Conflict, got {other}"),
    }
    assert_eq!(store.get_contact(a, c.id).await.expect("get").name, "Um", "[contacts] first writer wins");

    let mut ghost = contact(a, "Ghost", "+5511900000001");
    ghost.version = 0;
    let err = store.update_contact(&ghost, &ev(a, EventType::CONTACT_UPDATED)).await.expect_err("missing");
    assert!(is_not_found(&err), "[contacts] updating a missing contact is NotFound, got {err}");
}

/// Account B can neither read nor change account A's contacts.
pub async fn contact_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    assert!(is_not_found(&store.get_contact(b, c.id).await.expect_err("x")), "[tenancy] get");
    assert!(store.find_contact_by_phone(b, &c.phone).await.expect("find").is_none(), "[tenancy] find by phone");
    let mut hijack = c.clone();
    hijack.account_id = b;
    hijack.name = "Hijacked".into();
    let err = store.update_contact(&hijack, &ev(b, EventType::CONTACT_UPDATED)).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] update via B is NotFound, got {err}");
    let err = store.delete_contact(b, c.id, &ev(b, EventType::CONTACT_DELETED)).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] delete via B is NotFound, got {err}");
    assert!(all_contacts(&store, b, ContactQuery::default()).await.is_empty(), "[tenancy] list of B is empty");
    assert_eq!(store.get_contact(a, c.id).await.expect("get").name, "Ana", "[tenancy] A's contact untouched");
    assert_eq!(event_count(&store, b).await, 1, "[tenancy] B has only its account event");
}

/// Tag, lead stage and search filters follow [`ContactQuery::matches`].
pub async fn list_contacts_filters(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let mk = |name: &str, phone: &str, email: Option<&str>, tags: &[&str], stage: LeadStage| {
        Contact::new(
            a,
            NewContact {
                name: name.into(),
                phone: phone.into(),
                email: email.map(Into::into),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                lead_stage: Some(stage),
                ..Default::default()
            },
            now(),
        )
        .expect("contact")
    };
    let all = vec![
        mk("Ana Souza", "+5511987650001", Some("ana@loja.com"), &["vip", "sp"], LeadStage::Qualified),
        mk("André Lima", "+5521987650002", Some("andre@x.com"), &["sp"], LeadStage::New),
        mk("Bruno", "+5511987650003", None, &["vip"], LeadStage::Won),
        mk("ana paula", "+14155550100", Some("paula@ana.com"), &[], LeadStage::Qualified),
    ];
    for c in &all {
        insert(&store, c).await;
    }
    insert(&store, &contact(b, "Ana de B", "+5511987650009")).await;
    let cases: Vec<(ContactQuery, &str)> = vec![
        (ContactQuery { tag: Some(Tag::parse("VIP").expect("tag")), ..Default::default() }, "tag vip"),
        (ContactQuery { tag: Some(Tag::parse("none").expect("tag")), ..Default::default() }, "unused tag"),
        (ContactQuery { lead_stage: Some(LeadStage::Qualified), ..Default::default() }, "stage"),
        (ContactQuery { search: ContactSearch::parse("ana").expect("s"), ..Default::default() }, "name prefix"),
        (ContactQuery { search: ContactSearch::parse("AN").expect("s"), ..Default::default() }, "name prefix AN"),
        (ContactQuery { search: ContactSearch::parse("andré").expect("s"), ..Default::default() }, "accented"),
        (ContactQuery { search: ContactSearch::parse("souza").expect("s"), ..Default::default() }, "not prefix"),
        (ContactQuery { search: ContactSearch::parse("(11) 98765").expect("s"), ..Default::default() }, "phone"),
        (ContactQuery { search: ContactSearch::parse("0002").expect("s"), ..Default::default() }, "phone tail"),
        (ContactQuery { search: ContactSearch::parse("ana@").expect("s"), ..Default::default() }, "email prefix"),
        (
            ContactQuery {
                tag: Some(Tag::parse("sp").expect("tag")),
                lead_stage: Some(LeadStage::New),
                search: ContactSearch::parse("an").expect("s"),
                ..Default::default()
            },
            "combined",
        ),
    ];
    for (q, label) in cases {
        let want: Vec<_> = all.iter().filter(|c| q.matches(c)).map(|c| c.id).collect();
        let got: Vec<_> = all_contacts(&store, a, q).await.into_iter().map(|c| c.id).collect();
        assert_eq!(got, want, "[list_contacts] filter {label}");
    }
}

/// LIKE wildcards in search terms are literal characters.
pub async fn list_contacts_search_is_literal(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let names = ["50% off", "50 reais", "a_b", "axb", "back\\slash", "backXslash"];
    let mut all = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let c = contact(a, n, &phone(i));
        insert(&store, &c).await;
        all.push(c);
    }
    for term in ["50%", "a_", "back\\"] {
        let q = ContactQuery { search: ContactSearch::parse(term).expect("s"), ..Default::default() };
        let want: Vec<_> = all.iter().filter(|c| q.matches(c)).map(|c| c.name.clone()).collect();
        let got: Vec<_> = all_contacts(&store, a, q).await.into_iter().map(|c| c.name).collect();
        assert_eq!(got, want, "[list_contacts] search {term:?} treats wildcards literally");
    }
}

/// Keyset pages cover every contact once, even with inserts between pages.
pub async fn list_contacts_keyset_pagination(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let c = contact(a, &format!("C{i:02}"), &phone(i));
        insert(&store, &c).await;
        ids.push(c.id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(10).expect("limit");
    let mut pages = 0;
    loop {
        let got = store.list_contacts(a, &query(page)).await.expect("list");
        assert!(got.items.len() <= 10, "[pagination] page size respected");
        pages += 1;
        seen.extend(got.items.iter().map(|c| c.id));
        // A concurrent writer adds contacts while we page.
        if pages == 1 {
            for i in 100..103 {
                insert(&store, &contact(a, &format!("New{i}"), &phone(i))).await;
            }
        }
        match got.next_cursor {
            Some(c) => page = PageRequest::new(Some(&c), 10).expect("cursor"),
            None => break,
        }
        assert!(pages < 10, "[pagination] terminates");
    }
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "[pagination] no contact repeated");
    for id in &ids {
        assert!(seen.contains(id), "[pagination] no original contact skipped");
    }
    assert_eq!(seen.len(), 28, "[pagination] contacts added meanwhile appear once at the end");
    let sorted = {
        let mut s = seen.clone();
        s.sort();
        s
    };
    assert_eq!(seen, sorted, "[pagination] id order");
    let exact = store.list_contacts(a, &query(PageRequest::first(28).expect("l"))).await.expect("list");
    assert_eq!(exact.items.len(), 28, "[pagination] a full last page");
    assert_eq!(exact.next_cursor, None, "[pagination] no cursor when nothing follows");
}

/// Imports store the good rows, report the rest by index, and write one event per stored contact.
pub async fn import_contacts_reports_rows(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let existing = contact(a, "Já existe", "+5511900000000");
    insert(&store, &existing).await;
    let rows = vec![
        contact(a, "Um", "+5511911111111"),
        contact(a, "Dois", "+5511922222222"),
        contact(a, "Um de novo", "+55 11 1111-1111"), // not a mobile: a different number
        contact(a, "Repetido", "+5511911111111"),
        contact(a, "Existente", "+5511900000000"),
        Contact::new(
            a,
            NewContact {
                name: "Com tags".into(),
                phone: "+5511933333333".into(),
                tags: vec!["importado".into()],
                metadata: Some(json!({"origem": "csv"})),
                ..Default::default()
            },
            now(),
        )
        .expect("contact"),
    ];
    let events: Vec<Event> = rows.iter().map(|c| Event::new(a, EventType::CONTACT_CREATED, c, now())).collect();
    let before = event_count(&store, a).await;
    let report = store.import_contacts(a, &rows, &events).await.expect("import");
    assert_eq!(report.imported, 4, "[import] imported count: {report:?}");
    let rejected: Vec<usize> = report.rejected.iter().map(|r| r.index).collect();
    assert_eq!(rejected, vec![3, 4], "[import] rejected indexes");
    assert!(report.rejected.iter().all(|r| !r.reason.is_empty()), "[import] every rejection has a reason");
    assert_eq!(event_count(&store, a).await, before + 4, "[import] one event per stored contact");
    let stored = all_contacts(&store, a, ContactQuery::default()).await;
    assert_eq!(stored.len(), 5, "[import] stored contacts");
    let tagged = stored.iter().find(|c| c.name == "Com tags").expect("tagged row stored");
    assert_eq!(tagged, &rows[5], "[import] imported rows round-trip with tags and metadata");
    let q = ContactQuery { tag: Some(Tag::parse("importado").expect("tag")), ..Default::default() };
    assert_eq!(all_contacts(&store, a, q).await.len(), 1, "[import] imported tags are queryable");
    let empty = store.import_contacts(a, &[], &[]).await.expect("empty import");
    assert_eq!(empty.imported, 0, "[import] empty import");
}

/// Imports refuse mismatched slices and foreign contacts, writing nothing.
pub async fn import_contacts_validates_arguments(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let rows = vec![contact(a, "Um", "+5511911111111")];
    let err = store.import_contacts(a, &rows, &[]).await.expect_err("mismatch");
    assert!(matches!(err, Error::Validation { .. }), "[import] length mismatch is Validation, got {err}");
    let foreign = vec![contact(a, "Um", "+5511911111111"), contact(b, "Dois", "+5511922222222")];
    let events: Vec<Event> = foreign.iter().map(|_| ev(a, EventType::CONTACT_CREATED)).collect();
    let err = store.import_contacts(a, &foreign, &events).await.expect_err("foreign");
    assert!(matches!(err, Error::Validation { .. }), "[import] foreign contact is Validation, got {err}");
    assert!(all_contacts(&store, a, ContactQuery::default()).await.is_empty(), "[import] nothing half-written");
    assert_eq!(event_count(&store, a).await, 1, "[import] no events written");
}

/// Concurrent inserts of one phone: exactly one succeeds.
pub async fn concurrent_contact_inserts_same_phone(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let c = contact(a, &format!("Racer {i}"), "+5511987654321");
            store.insert_contact(&c, &ev(a, EventType::CONTACT_CREATED)).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => ok += 1,
            Err(e) => assert!(is_conflict(&e), "[concurrency] losers get Conflict, got {e}"),
        }
    }
    assert_eq!(ok, 1, "[concurrency] exactly one insert of a phone wins");
    assert_eq!(event_count(&store, a).await, 2, "[concurrency] one contact event");
}

// ----- messages ------------------------------------------------------------------------

/// Messages: insert, get, find by provider id, provider id uniqueness, missing contact.
pub async fn messages_insert_and_find(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = inbound(&c, "wamid.1", now());
    store.insert_message(&m, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    assert_eq!(store.get_message(a, m.id).await.expect("get"), m, "[messages] round trip");
    let found = store.find_message_by_provider_id(a, "wamid.1").await.expect("find");
    assert_eq!(found.map(|m| m.id), Some(m.id), "[messages] find by provider id");
    assert!(store.find_message_by_provider_id(a, "wamid.2").await.expect("find").is_none(), "[messages] unknown");

    let dup = inbound(&c, "wamid.1", now());
    let err = store.insert_message(&dup, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect_err("dup");
    assert!(is_conflict(&err), "[messages] provider id unique per account, got {err}");

    let rich = Message::outbound(
        a,
        c.id,
        MessageContent::Location { latitude: -23.55, longitude: -46.63, name: Some("Loja".into()), address: None },
        now(),
    )
    .expect("message");
    store.insert_message(&rich, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    assert_eq!(store.get_message(a, rich.id).await.expect("get"), rich, "[messages] structured content round trip");

    let orphan = outbound(&contact(a, "Ninguém", "+5511900000009"), "x");
    let err = store.insert_message(&orphan, &ev(a, EventType::MESSAGE_QUEUED)).await.expect_err("orphan");
    assert!(is_not_found(&err), "[messages] message for a missing contact is NotFound, got {err}");
}

/// Inserting a message moves the contact's last inbound/outbound time forward only.
pub async fn messages_move_contact_activity_forward(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let t1 = now();
    store.insert_message(&inbound(&c, "w1", t1), &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    let older = t1 - chrono::Duration::hours(1);
    store.insert_message(&inbound(&c, "w0", older), &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    let out = outbound(&c, "oi");
    store.insert_message(&out, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let got = store.get_contact(a, c.id).await.expect("get");
    assert_eq!(got.last_inbound_at, Some(t1), "[messages] last_inbound_at is the newest inbound time");
    assert_eq!(got.last_outbound_at, Some(out.created_at), "[messages] last_outbound_at set");

    // An edit made from a copy read before the messages keeps the activity times.
    let mut stale_copy = c.clone();
    stale_copy.name = "Ana Editada".into();
    let stored = store.update_contact(&stale_copy, &ev(a, EventType::CONTACT_UPDATED)).await.expect("update");
    assert_eq!(stored.last_inbound_at, Some(t1), "[messages] update_contact keeps last_inbound_at");
    assert_eq!(stored.last_outbound_at, Some(out.created_at), "[messages] update_contact keeps last_outbound_at");
    let got = store.get_contact(a, c.id).await.expect("get");
    assert_eq!(got, stored, "[messages] stored contact equals update's result");
}

/// Threads list oldest first with keyset pages, per contact.
pub async fn message_thread_pagination(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    let other = contact(a, "Bia", "+5511912345678");
    insert(&store, &c).await;
    insert(&store, &other).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let m = outbound(&c, &format!("msg {i}"));
        store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
        ids.push(m.id);
        let noise = outbound(&other, "noise");
        store.insert_message(&noise, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3).expect("limit");
    loop {
        let got = store.list_thread(a, c.id, &page).await.expect("thread");
        seen.extend(got.items.iter().map(|m| m.id));
        match got.next_cursor {
            Some(cur) => page = PageRequest::new(Some(&cur), 3).expect("cursor"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "[thread] every message once, oldest first, only this contact's");
    let err = store.list_thread(a, ContactId::new(), &PageRequest::default()).await.expect_err("missing");
    assert!(is_not_found(&err), "[thread] missing contact is NotFound, got {err}");
}

/// Status updates follow the machine atomically; refused ones write no event.
pub async fn message_status_only_moves_forward(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = outbound(&c, "oi");
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let up = |s, pid| status(s, pid);
    let e = || ev(a, EventType::MESSAGE_STATUS_UPDATED);

    let sent = store.update_message_status(a, m.id, &up(MessageStatus::Sent, Some("wamid.9")), &e()).await;
    let sent = sent.expect("update").expect("queued → sent applies");
    assert_eq!(sent.status, MessageStatus::Sent, "[status] sent");
    assert_eq!(sent.provider_message_id.as_deref(), Some("wamid.9"), "[status] provider id recorded with sent");
    assert!(sent.sent_at.is_some(), "[status] sent_at set");
    let found = store.find_message_by_provider_id(a, "wamid.9").await.expect("find").map(|m| m.id);
    assert_eq!(found, Some(m.id), "[status] provider id is findable after update");

    let read = store.update_message_status(a, m.id, &up(MessageStatus::Read, None), &e()).await.expect("update");
    let read = read.expect("sent → read applies");
    assert!(read.read_at.is_some(), "[status] read_at set");
    let before = event_count(&store, a).await;
    let late = store.update_message_status(a, m.id, &up(MessageStatus::Delivered, None), &e()).await.expect("ok");
    assert!(late.is_none(), "[status] a late delivered after read is refused");
    let fail = StatusUpdate {
        status: MessageStatus::Failed,
        at: now(),
        provider_message_id: None,
        error: Some(MessageError { code: Some("131026".into()), reason: "undeliverable".into() }),
    };
    assert!(store.update_message_status(a, m.id, &fail, &e()).await.expect("ok").is_none(), "[status] read → failed");
    assert_eq!(event_count(&store, a).await, before, "[status] refused transitions write no event");
    let got = store.get_message(a, m.id).await.expect("get");
    assert_eq!(got.status, MessageStatus::Read, "[status] still read");
    assert_eq!(got, read, "[status] stored message equals the last applied result");

    let m2 = outbound(&c, "dois");
    store.insert_message(&m2, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let failed = store.update_message_status(a, m2.id, &fail, &e()).await.expect("ok").expect("queued → failed");
    assert_eq!(failed.error, fail.error, "[status] failure reason recorded");
    assert!(failed.failed_at.is_some(), "[status] failed_at set");
    for s in [MessageStatus::Sent, MessageStatus::Delivered, MessageStatus::Read, MessageStatus::Failed] {
        let r = store.update_message_status(a, m2.id, &up(s, None), &e()).await.expect("ok");
        assert!(r.is_none(), "[status] failed is terminal ({s:?} refused)");
    }

    let m3 = outbound(&c, "três");
    store.insert_message(&m3, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let err = store.update_message_status(a, m3.id, &up(MessageStatus::Sent, Some("wamid.9")), &e()).await;
    assert!(is_conflict(&err.expect_err("clash")), "[status] another message's provider id is Conflict");
    assert_eq!(store.get_message(a, m3.id).await.expect("get").status, MessageStatus::Queued, "[status] unchanged");
    let err = store.update_message_status(a, m3.id.to_owned(), &up(MessageStatus::Queued, None), &e()).await;
    assert!(err.expect("ok").is_none(), "[status] nothing moves to queued");
}

/// Racing status updates end in the furthest state, with one event per applied step.
pub async fn message_status_concurrent_updates(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = outbound(&c, "oi");
    store.insert_message(&m, &ev(a, EventType::MESSAGE_QUEUED)).await.expect("insert");
    let before = event_count(&store, a).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        let s = [MessageStatus::Sent, MessageStatus::Delivered, MessageStatus::Read][i % 3];
        let id = m.id;
        tasks.push(tokio::spawn(async move {
            store.update_message_status(a, id, &status(s, None), &ev(a, EventType::MESSAGE_STATUS_UPDATED)).await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if t.await.expect("task").expect("update").is_some() {
            applied += 1;
        }
    }
    assert!((1..=3).contains(&applied), "[status] at most one application per forward step, got {applied}");
    assert_eq!(store.get_message(a, m.id).await.expect("get").status, MessageStatus::Read, "[status] ends read");
    assert_eq!(event_count(&store, a).await, before + applied, "[status] one event per applied update");
}

/// Messages of account A are invisible and immutable from account B.
pub async fn message_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = inbound(&c, "wamid.x", now());
    store.insert_message(&m, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    assert!(is_not_found(&store.get_message(b, m.id).await.expect_err("x")), "[tenancy] get message");
    assert!(store.find_message_by_provider_id(b, "wamid.x").await.expect("f").is_none(), "[tenancy] provider id");
    let err = store.list_thread(b, c.id, &PageRequest::default()).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] thread via B");
    let err = store
        .update_message_status(b, m.id, &status(MessageStatus::Read, None), &ev(b, EventType::MESSAGE_STATUS_UPDATED))
        .await
        .expect_err("x");
    assert!(is_not_found(&err), "[tenancy] status update via B");
    let mut foreign = inbound(&c, "wamid.y", now());
    foreign.account_id = b;
    let err = store.insert_message(&foreign, &ev(b, EventType::MESSAGE_RECEIVED)).await.expect_err("x");
    assert!(is_not_found(&err), "[tenancy] B cannot add to A's contact's thread");
    let own_b = contact(b, "Ana em B", "+5511987654321");
    insert(&store, &own_b).await;
    let same_pid = inbound(&own_b, "wamid.x", now());
    store.insert_message(&same_pid, &ev(b, EventType::MESSAGE_RECEIVED)).await.expect("provider ids are per account");
}

/// Deleting a contact deletes its thread.
pub async fn contact_delete_cascades(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let m = inbound(&c, "wamid.z", now());
    store.insert_message(&m, &ev(a, EventType::MESSAGE_RECEIVED)).await.expect("insert");
    store.delete_contact(a, c.id, &ev(a, EventType::CONTACT_DELETED)).await.expect("delete");
    assert!(is_not_found(&store.get_message(a, m.id).await.expect_err("x")), "[cascade] message deleted");
    assert!(store.find_message_by_provider_id(a, "wamid.z").await.expect("f").is_none(), "[cascade] provider id gone");
}

// ----- templates -----------------------------------------------------------------------

/// Templates: CRUD, name+language uniqueness, tenancy.
pub async fn templates_crud_and_uniqueness(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let mk = |acc, name: &str, lang: &str| {
        Template::new(
            acc,
            NewTemplate { name: name.into(), language: Some(lang.into()), category: None, body: "Oi {{nome}}".into() },
            now(),
        )
        .expect("template")
    };
    let t = mk(a, "boas_vindas", "pt_BR");
    store.insert_template(&t, &ev(a, EventType::TEMPLATE_CREATED)).await.expect("insert");
    assert_eq!(store.get_template(a, t.id).await.expect("get"), t, "[templates] round trip");
    let found = store.find_template(a, "boas_vindas", "pt_BR").await.expect("find");
    assert_eq!(found.map(|x| x.id), Some(t.id), "[templates] find by name and language");
    assert!(store.find_template(a, "boas_vindas", "en_US").await.expect("find").is_none(), "[templates] language");
    let dup = mk(a, "boas_vindas", "pt_BR");
    let err = store.insert_template(&dup, &ev(a, EventType::TEMPLATE_CREATED)).await.expect_err("dup");
    assert!(is_conflict(&err), "[templates] name+language unique, got {err}");
    let en = mk(a, "boas_vindas", "en_US");
    store.insert_template(&en, &ev(a, EventType::TEMPLATE_CREATED)).await.expect("other language is fine");
    store.insert_template(&mk(b, "boas_vindas", "pt_BR"), &ev(b, EventType::TEMPLATE_CREATED)).await.expect("B");

    let mut renamed = en.clone();
    renamed.language = "pt_BR".into();
    let err = store.update_template(&renamed, &ev(a, EventType::TEMPLATE_UPDATED)).await.expect_err("clash");
    assert!(is_conflict(&err), "[templates] update into a clash is Conflict, got {err}");
    let mut changed = en.clone();
    changed
        .replace(
            NewTemplate {
                name: "ola".into(),
                language: Some("en_US".into()),
                category: None,
                body: "Hi {{a}} {{b}}".into(),
            },
            now(),
        )
        .expect("valid");
    store.update_template(&changed, &ev(a, EventType::TEMPLATE_UPDATED)).await.expect("update");
    assert_eq!(store.get_template(a, en.id).await.expect("get"), changed, "[templates] update round trip");
    assert!(is_not_found(&store.get_template(b, t.id).await.expect_err("x")), "[templates] tenancy get");
    let mut foreign = t.clone();
    foreign.account_id = b;
    let err = store.update_template(&foreign, &ev(b, EventType::TEMPLATE_UPDATED)).await.expect_err("x");
    assert!(is_not_found(&err), "[templates] tenancy update");
    let err = store.delete_template(b, t.id, &ev(b, EventType::TEMPLATE_DELETED)).await.expect_err("x");
    assert!(is_not_found(&err), "[templates] tenancy delete");

    let page = store.list_templates(a, &PageRequest::first(1).expect("l")).await.expect("list");
    assert_eq!(page.items.len(), 1, "[templates] page size");
    let cursor = page.next_cursor.expect("[templates] second page exists");
    let page2 = store.list_templates(a, &PageRequest::new(Some(&cursor), 10).expect("c")).await.expect("list");
    let ids: Vec<_> = page.items.iter().chain(&page2.items).map(|t| t.id).collect();
    assert_eq!(ids, vec![t.id, en.id], "[templates] list in id order");
    assert_eq!(page2.next_cursor, None, "[templates] last page");

    store.delete_template(a, t.id, &ev(a, EventType::TEMPLATE_DELETED)).await.expect("delete");
    assert!(is_not_found(&store.get_template(a, t.id).await.expect_err("x")), "[templates] deleted");
}

// ----- events and outbox ---------------------------------------------------------------

/// Each successful mutation appends exactly its event, readable in order.
pub async fn event_per_mutation(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    let created = Event::new(a, EventType::CONTACT_CREATED, &c, now());
    store.insert_contact(&c, &created).await.expect("insert");
    let mut u = c.clone();
    u.name = "Ana B".into();
    let updated = ev(a, EventType::CONTACT_UPDATED);
    store.update_contact(&u, &updated).await.expect("update");
    let m = outbound(&c, "oi");
    let queued = ev(a, EventType::MESSAGE_QUEUED);
    store.insert_message(&m, &queued).await.expect("insert");
    let moved = ev(a, EventType::MESSAGE_STATUS_UPDATED);
    store.update_message_status(a, m.id, &status(MessageStatus::Sent, Some("w")), &moved).await.expect("s");
    let t = Template::new(a, NewTemplate { name: "t".into(), body: "x".into(), ..Default::default() }, now())
        .expect("template");
    let t_created = ev(a, EventType::TEMPLATE_CREATED);
    store.insert_template(&t, &t_created).await.expect("insert");
    let deleted = ev(a, EventType::CONTACT_DELETED);
    store.delete_contact(a, c.id, &deleted).await.expect("delete");

    let log = events_of(&store, a).await;
    let types: Vec<&str> = log.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "account.created",
            "contact.created",
            "contact.updated",
            "message.queued",
            "message.status_updated",
            "template.created",
            "contact.deleted"
        ],
        "[events] one event per mutation, in order"
    );
    assert_eq!(log[1], created, "[events] event stored exactly (id, type, payload, time)");
    assert_eq!(log[6].id, deleted.id, "[events] ids preserved");
}

/// Refused mutations leave the log untouched.
pub async fn failed_mutations_write_no_event(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let c = contact(a, "Ana", "+5511987654321");
    insert(&store, &c).await;
    let before = events_of(&store, a).await;
    let _ = store.insert_contact(&contact(a, "Dup", "+5511987654321"), &ev(a, EventType::CONTACT_CREATED)).await;
    let _ = store.get_contact(a, ContactId::new()).await;
    let mut stale = c.clone();
    stale.version = 7;
    let _ = store.update_contact(&stale, &ev(a, EventType::CONTACT_UPDATED)).await;
    let _ = store.delete_contact(a, ContactId::new(), &ev(a, EventType::CONTACT_DELETED)).await;
    let _ = store
        .insert_message(&outbound(&contact(a, "x", "+5511900000001"), "x"), &ev(a, EventType::MESSAGE_QUEUED))
        .await;
    assert_eq!(events_of(&store, a).await, before, "[events] failed mutations append nothing");

    let reused = before.last().expect("events").clone();
    let fresh = contact(a, "Reuso", "+5511900000002");
    let err = store.insert_contact(&fresh, &reused).await.expect_err("reused event id");
    assert!(is_conflict(&err), "[events] a reused event id is Conflict, got {err}");
    assert!(is_not_found(&store.get_contact(a, fresh.id).await.expect_err("x")), "[events] nothing stored");
    assert_eq!(events_of(&store, a).await, before, "[events] log unchanged");
}

/// Event listing: cursor, limit bounds, per-account and global reads.
pub async fn events_cursor_and_limits(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    for i in 0..5 {
        insert(&store, &contact(a, &format!("A{i}"), &phone(i))).await;
        insert(&store, &contact(b, &format!("B{i}"), &phone(i))).await;
    }
    let first = store.list_events(a, None, 2).await.expect("list");
    assert_eq!(first.len(), 2, "[events] limit");
    let rest = store.list_events(a, Some(first[1].id), 1000).await.expect("list");
    assert_eq!(rest.len(), 4, "[events] after cursor (6 events for A in all)");
    assert!(rest.iter().all(|e| e.account_id == a), "[events] only the account's events");
    assert!(rest.iter().all(|e| e.id > first[1].id), "[events] strictly after the cursor");
    let all = store.read_all_events(None, 1000).await.expect("all");
    assert_eq!(all.len(), 12, "[events] read_all crosses accounts");
    let ids: Vec<_> = all.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "[events] id order");
    let tail = store.read_all_events(Some(all[9].id), 1000).await.expect("all");
    assert_eq!(tail.len(), 2, "[events] read_all after cursor");
    for bad in [0, 1001] {
        let err = store.list_events(a, None, bad).await.expect_err("limit");
        assert!(matches!(err, Error::Validation { .. }), "[events] limit {bad} is Validation");
        let err = store.read_all_events(None, bad).await.expect_err("limit");
        assert!(matches!(err, Error::Validation { .. }), "[events] read_all limit {bad} is Validation");
    }
}

/// Outbox: events after registration are queued; claim leases, ack removes.
pub async fn outbox_claim_and_ack(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    insert(&store, &contact(a, "Antes", &phone(0))).await;
    store.register_consumer("webhooks").await.expect("register");
    store.register_consumer("webhooks").await.expect("register is idempotent");
    let err = store.register_consumer("Bad Name!").await.expect_err("bad name");
    assert!(matches!(err, Error::Validation { .. }), "[outbox] consumer names are validated");
    assert_eq!(store.pending("webhooks").await.expect("pending"), 0, "[outbox] earlier events are not queued");
    let mut expected = Vec::new();
    for i in 1..=3 {
        let c = contact(a, &format!("C{i}"), &phone(i));
        let e = ev(a, EventType::CONTACT_CREATED);
        store.insert_contact(&c, &e).await.expect("insert");
        expected.push(e.id);
    }
    assert_eq!(store.pending("webhooks").await.expect("pending"), 3, "[outbox] queued per event");
    let claims = store.claim("webhooks", 10, Duration::from_secs(30)).await.expect("claim");
    let got: Vec<_> = claims.iter().map(|c| c.event.id).collect();
    assert_eq!(got, expected, "[outbox] claims in event order");
    assert!(claims.iter().all(|c| c.attempt == 1 && c.last_error.is_none()), "[outbox] first attempt");
    assert_eq!(claims[0].event.event_type, EventType::CONTACT_CREATED, "[outbox] event content");
    let again = store.claim("webhooks", 10, Duration::from_secs(30)).await.expect("claim");
    assert!(again.is_empty(), "[outbox] leased items are not handed out twice");
    store.ack(&claims[0].token).await.expect("ack");
    assert_eq!(store.pending("webhooks").await.expect("pending"), 2, "[outbox] ack removes");
    let err = store.ack(&claims[0].token).await.expect_err("ack twice");
    assert!(is_not_found(&err), "[outbox] acking a gone item is NotFound, got {err}");
    let limited = {
        let e = ev(a, EventType::CONTACT_CREATED);
        store.insert_contact(&contact(a, "C9", &phone(9)), &e).await.expect("insert");
        store.claim("webhooks", 1, Duration::from_secs(30)).await.expect("claim")
    };
    assert_eq!(limited.len(), 1, "[outbox] claim respects limit");
    let err = store.claim("webhooks", 0, Duration::from_secs(1)).await.expect_err("limit");
    assert!(matches!(err, Error::Validation { .. }), "[outbox] claim limit validated");
}

/// An expired lease is handed out again with a new token; the old token loses.
pub async fn outbox_lease_expiry(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("worker").await.expect("register");
    insert(&store, &contact(a, "C", &phone(1))).await;
    let first = store.claim("worker", 10, Duration::from_millis(200)).await.expect("claim");
    assert_eq!(first.len(), 1, "[outbox] claimed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = store.claim("worker", 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(second.len(), 1, "[outbox] an expired lease is claimable again");
    assert_eq!(second[0].attempt, 2, "[outbox] attempt counts claims");
    assert_ne!(second[0].token.lease_id, first[0].token.lease_id, "[outbox] new lease id");
    let err = store.ack(&first[0].token).await.expect_err("stale ack");
    assert!(is_conflict(&err), "[outbox] the old lease holder cannot ack, got {err}");
    let err = store.nack(&first[0].token, Duration::ZERO, "x").await.expect_err("stale nack");
    assert!(is_conflict(&err), "[outbox] the old lease holder cannot nack, got {err}");
    store.ack(&second[0].token).await.expect("ack with the current lease");
    assert_eq!(store.pending("worker").await.expect("pending"), 0, "[outbox] drained");
}

/// A nacked item comes back after its delay with the recorded error.
pub async fn outbox_nack_retries_later(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("worker").await.expect("register");
    insert(&store, &contact(a, "C", &phone(1))).await;
    let first = store.claim("worker", 10, Duration::from_secs(30)).await.expect("claim");
    store.nack(&first[0].token, Duration::from_millis(300), "HTTP 503 from endpoint").await.expect("nack");
    assert!(store.claim("worker", 10, Duration::from_secs(30)).await.expect("claim").is_empty(), "[outbox] not due");
    assert_eq!(store.pending("worker").await.expect("pending"), 1, "[outbox] still pending");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = store.claim("worker", 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(again.len(), 1, "[outbox] due again after the delay");
    assert_eq!(again[0].attempt, 2, "[outbox] second attempt");
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503 from endpoint"), "[outbox] error kept");
}

/// Each consumer gets its own copy of every event.
pub async fn outbox_consumers_are_independent(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("webhooks").await.expect("register");
    store.register_consumer("automation").await.expect("register");
    insert(&store, &contact(a, "C", &phone(1))).await;
    let w = store.claim("webhooks", 10, Duration::from_secs(30)).await.expect("claim");
    store.ack(&w[0].token).await.expect("ack");
    let au = store.claim("automation", 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(au.len(), 1, "[outbox] other consumer still has its item");
    assert_eq!(au[0].event.id, w[0].event.id, "[outbox] same event");
    assert_eq!(store.pending("webhooks").await.expect("p"), 0, "[outbox] webhooks drained");
    assert_eq!(store.pending("automation").await.expect("p"), 1, "[outbox] automation pending until acked");
    assert!(store.claim("unknown", 10, Duration::from_secs(1)).await.expect("claim").is_empty(), "[outbox] unknown");
}

/// Many workers claiming at once never receive the same item.
pub async fn outbox_concurrent_claims_never_overlap(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    store.register_consumer("webhooks").await.expect("register");
    let contacts: Vec<Contact> = (0..120).map(|i| contact(a, &format!("C{i}"), &phone(i))).collect();
    let events: Vec<Event> = contacts.iter().map(|_| ev(a, EventType::CONTACT_CREATED)).collect();
    store.import_contacts(a, &contacts, &events).await.expect("import");
    let mut workers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store.claim("webhooks", 7, Duration::from_secs(60)).await.expect("claim");
                if batch.is_empty() {
                    break;
                }
                for c in batch {
                    got.push(c.event.id);
                    store.ack(&c.token).await.expect("ack of own lease");
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "[outbox] no item delivered twice");
    assert_eq!(all.len(), 120, "[outbox] every item delivered");
    assert_eq!(store.pending("webhooks").await.expect("p"), 0, "[outbox] drained");
}

/// The store's health probe answers healthy when it works.
pub async fn health_reports_healthy(store: Arc<dyn Store>) {
    let h = store.check().await;
    assert_eq!(h.status, HealthStatus::Healthy, "[health] {h:?}");
    assert_eq!(store.name(), "database", "[health] probe name");
}

//! Contacts: the [`ContactStore`](crate::ContactStore) contract (CRUD, uniqueness, optimistic
//! updates, tenancy, filters, keyset pages, imports).

use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use super::{
    all_contacts, contact, ev, event_count, insert, is_conflict, is_not_found, new_account, now, phone, query,
};
use crate::{
    Contact, ContactQuery, ContactSearch, Error, Event, EventType, LeadStage, NewContact, OptInStatus, PageRequest,
    Phone, Store, Tag,
};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
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
    concurrent_contact_inserts_same_phone(make().await).await;
    delete_contact_erases_it_from_events(make().await).await;
}

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

/// Deleting a contact erases its personal data from the event log (what
/// queued outbox items and dead letters deliver), keeping ids; events of
/// other contacts are untouched.
pub async fn delete_contact_erases_it_from_events(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let mut ana = contact(a, "Ana Secreta", "+55 11 98765-4321");
    ana.email = Some(crate::Email::parse("ana.secreta@example.com").expect("email"));
    let bia = contact(a, "Bia Fica", "+55 11 98765-0000");
    store.insert_contact(&ana, &Event::new(a, EventType::CONTACT_CREATED, &ana, now())).await.expect("insert");
    store.insert_contact(&bia, &Event::new(a, EventType::CONTACT_CREATED, &bia, now())).await.expect("insert");
    let message = super::outbound(&ana, "Olá Ana, seu CPF é 123");
    let queued = json!({ "message": message, "contact": { "id": ana.id, "name": ana.name, "phone": ana.phone } });
    store.insert_message(&message, &Event::new(a, EventType::MESSAGE_QUEUED, &queued, now())).await.expect("message");
    store.delete_contact(a, ana.id, &ev(a, EventType::CONTACT_DELETED)).await.expect("delete");

    let events = store.list_events(a, None, 1000).await.expect("events");
    let text = serde_json::to_string(&events).expect("json");
    for secret in ["Ana Secreta", "ana.secreta", "987654321", "CPF"] {
        assert!(!text.contains(secret), "[contacts] {secret:?} outlives the deletion: {text}");
    }
    assert!(text.contains("Bia Fica"), "[contacts] other contacts' events are untouched");
    let created =
        events.iter().find(|e| e.event_type == EventType::CONTACT_CREATED && e.payload["id"] == json!(ana.id));
    let created = created.expect("[contacts] the event stays, redacted");
    assert_eq!(created.payload["redacted"], true, "[contacts] {}", created.payload);
    let queued = events.iter().find(|e| e.event_type == EventType::MESSAGE_QUEUED).expect("queued event stays");
    assert_eq!(queued.payload["message"]["id"], json!(message.id), "[contacts] ids are kept");
    assert_eq!(queued.payload["contact_id"], json!(ana.id), "[contacts] ids are kept");
}

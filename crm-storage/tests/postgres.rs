//! The store conformance suite and SQL-specific checks on PostgreSQL, each
//! store in its own fresh schema. Needs `CRM_TEST_DATABASE_URL`; skipped
//! (with a notice) when unset.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

use crm_core::{
    AccountId, Clock, Contact, ContactQuery, ContactSearch, ContactStore, Error, Event, EventStore, EventType,
    NewContact, Store, SystemClock,
};
use crm_storage::PgStore;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

fn url(test: &str) -> Option<String> {
    crm_core::testing::service_url("CRM_TEST_DATABASE_URL", test)
}

fn schema() -> String {
    format!("crm_test_{}", uuid::Uuid::now_v7().simple())
}

async fn fresh(url: &str, schemas: &Mutex<Vec<String>>) -> PgStore {
    let s = schema();
    schemas.lock().unwrap().push(s.clone());
    PgStore::connect_with_schema(url, &s).await.expect("connect to PostgreSQL")
}

async fn drop_schemas(url: &str, schemas: Vec<String>) {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    for s in schemas {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE")))
            .execute(&pool)
            .await
            .expect("drop schema");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(url) = url("postgres conformance") else { return };
    let schemas = Mutex::new(Vec::new());
    crm_core::testing::store::run_all(|| async { Arc::new(fresh(&url, &schemas).await) as Arc<dyn Store> }).await;
    drop_schemas(&url, schemas.into_inner().unwrap()).await;
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let Some(url) = url("postgres migrations_are_idempotent") else { return };
    let schemas = Mutex::new(Vec::new());
    let store = fresh(&url, &schemas).await;
    store.migrate().await.unwrap();
    let s = schemas.lock().unwrap()[0].clone();
    // Opening the same schema again applies nothing and keeps working.
    let again = PgStore::connect_with_schema(&url, &s).await.unwrap();
    again.register_consumer("x", &crm_core::EventFilter::all()).await.unwrap();
    assert!(matches!(PgStore::connect_with_schema(&url, "Bad-Name").await, Err(Error::Config { .. })));
    drop(store);
    drop(again);
    drop_schemas(&url, schemas.into_inner().unwrap()).await;
}

fn contact(account: AccountId, name: &str, phone: &str) -> Contact {
    Contact::new(
        account,
        NewContact { name: name.into(), phone: phone.into(), ..Default::default() },
        SystemClock.now(),
    )
    .unwrap()
}

fn ev(account: AccountId) -> Event {
    Event::new(account, EventType::CONTACT_CREATED, &json!({}), SystemClock.now())
}

#[tokio::test]
async fn like_wildcards_and_prefixes_are_literal() {
    let Some(url) = url("postgres like_wildcards_and_prefixes_are_literal") else { return };
    let schemas = Mutex::new(Vec::new());
    let store = fresh(&url, &schemas).await;
    let a = AccountId::new();
    for (i, name) in ["100% Ana", "1000 Ana", "a_b", "axb", "Ábaco", r"a\b", "abc\u{10FFFF}"].iter().enumerate() {
        store.insert_contact(&contact(a, name, &format!("+5511987650{i:03}")), &ev(a)).await.unwrap();
    }
    for (term, want) in [
        ("100%", vec!["100% Ana"]),
        ("a_", vec!["a_b"]),
        ("á", vec!["Ábaco"]),
        (r"a\", vec![r"a\b"]),
        ("abc\u{10FFFF}", vec!["abc\u{10FFFF}"]),
    ] {
        let q = ContactQuery { search: ContactSearch::parse(term).unwrap(), ..Default::default() };
        let got: Vec<String> = store.list_contacts(a, &q).await.unwrap().items.into_iter().map(|c| c.name).collect();
        assert_eq!(got, want, "{term}");
    }
    drop(store);
    drop_schemas(&url, schemas.into_inner().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_share_an_item() {
    let Some(url) = url("postgres concurrent_claimers_never_share_an_item") else { return };
    let schemas = Mutex::new(Vec::new());
    let store = Arc::new(fresh(&url, &schemas).await);
    store.register_consumer("hooks", &crm_core::EventFilter::all()).await.unwrap();
    let a = AccountId::new();
    let cs: Vec<Contact> = (0..300).map(|i| contact(a, "N", &format!("+5511987{i:06}"))).collect();
    let es: Vec<Event> = cs.iter().map(|c| ev(c.account_id)).collect();
    assert_eq!(store.import_contacts(a, &cs, &es).await.unwrap().imported, 300);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claims = s.claim("hooks", 7, Duration::from_secs(60)).await.unwrap();
                if claims.is_empty() {
                    break;
                }
                got.extend(claims.into_iter().map(|c| c.token.event_id));
            }
            got
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "an item was handed out twice");
        }
    }
    assert_eq!(seen.len(), 300);
    drop(store);
    drop_schemas(&url, schemas.into_inner().unwrap()).await;
}

#[tokio::test]
async fn import_failure_rolls_everything_back() {
    let Some(url) = url("postgres import_failure_rolls_everything_back") else { return };
    let schemas = Mutex::new(Vec::new());
    let store = fresh(&url, &schemas).await;
    store.register_consumer("hooks", &crm_core::EventFilter::all()).await.unwrap();
    let a = AccountId::new();
    let cs: Vec<Contact> = (0..50).map(|i| contact(a, "N", &format!("+5511987{i:06}"))).collect();
    let mut es: Vec<Event> = cs.iter().map(|c| ev(c.account_id)).collect();
    es[49].id = es[0].id;
    let err = store.import_contacts(a, &cs, &es).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(store.list_contacts(a, &ContactQuery::default()).await.unwrap().items.is_empty());
    assert!(store.list_events(a, None, 10).await.unwrap().is_empty());
    assert_eq!(store.pending("hooks").await.unwrap(), 0);
    drop(store);
    drop_schemas(&url, schemas.into_inner().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_races_concurrent_inserts() {
    let Some(url) = url("postgres import_races_concurrent_inserts") else { return };
    let schemas = Mutex::new(Vec::new());
    let store = Arc::new(fresh(&url, &schemas).await);
    support::imports_race_inserts(store.clone()).await;
    drop(store);
    drop_schemas(&url, schemas.into_inner().unwrap()).await;
}

//! The store conformance suite and SQL-specific checks on SQLite: in memory
//! and in a temporary file.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

use crm_core::{
    Account, AccountId, AccountStore, Clock, Contact, ContactQuery, ContactSearch, ContactStore, Error, Event,
    EventStore, EventType, NewContact, PageRequest, Store, SystemClock,
};
use crm_storage::SqliteStore;
use serde_json::json;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod support;

fn temp_db() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("crm-sqlite-test-{}", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite://{}/nested/crm.db?mode=rwc", dir.display());
    (dir, url)
}

async fn memory() -> Arc<dyn Store> {
    Arc::new(SqliteStore::connect("sqlite::memory:").await.expect("open memory db"))
}

#[tokio::test]
async fn conformance_memory() {
    crm_core::testing::store::run_all(memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_file() {
    let dirs = std::sync::Mutex::new(Vec::new());
    crm_core::testing::store::run_all(|| {
        let (dir, url) = temp_db();
        dirs.lock().unwrap().push(dir);
        async move { Arc::new(SqliteStore::connect(&url).await.expect("open file db")) as Arc<dyn Store> }
    })
    .await;
    for d in dirs.into_inner().unwrap() {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn memory_databases_are_separate() {
    let a = memory().await;
    let b = memory().await;
    a.register_consumer("x", &crm_core::EventFilter::all()).await.unwrap();
    let acc = Account::new("A", SystemClock.now()).unwrap();
    a.create_account(&acc, &Event::new(acc.id, EventType::ACCOUNT_CREATED, &json!({}), SystemClock.now()))
        .await
        .unwrap();
    assert_eq!(a.pending("x").await.unwrap(), 1);
    assert_eq!(b.pending("x").await.unwrap(), 0);
    assert!(b.get_account(acc.id).await.is_err());
}

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_reopen() {
    let (dir, url) = temp_db();
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let acc = Account::new("A", SystemClock.now()).unwrap();
    store
        .create_account(&acc, &Event::new(acc.id, EventType::ACCOUNT_CREATED, &json!({}), SystemClock.now()))
        .await
        .unwrap();
    drop(store);
    let again = SqliteStore::connect(&url).await.unwrap();
    assert_eq!(again.get_account(acc.id).await.unwrap(), acc);
    drop(again);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_urls_are_config_errors() {
    assert!(matches!(crm_storage::connect("mysql://x").await, Err(Error::Config { .. })));
    assert!(crm_storage::connect("sqlite::memory:").await.is_ok());
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
    let store = memory().await;
    let a = AccountId::new();
    for (i, name) in ["100% Ana", "1000 Ana", "a_b", "axb", "Ábaco", "abc\u{10FFFF}"].iter().enumerate() {
        store.insert_contact(&contact(a, name, &format!("+5511987650{i:03}")), &ev(a)).await.unwrap();
    }
    let names = |term: &str| {
        let store = store.clone();
        let term = term.to_owned();
        async move {
            let q = ContactQuery { search: ContactSearch::parse(&term).unwrap(), ..Default::default() };
            let mut v: Vec<String> =
                store.list_contacts(a, &q).await.unwrap().items.into_iter().map(|c| c.name).collect();
            v.sort();
            v
        }
    };
    assert_eq!(names("100%").await, ["100% Ana"]);
    assert_eq!(names("a_").await, ["a_b"]);
    assert_eq!(names("á").await, ["Ábaco"]);
    assert_eq!(names("abc\u{10FFFF}").await, ["abc\u{10FFFF}"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_on_a_file_never_share_an_item() {
    let (dir, url) = temp_db();
    let store = Arc::new(SqliteStore::connect(&url).await.unwrap());
    store.register_consumer("hooks", &crm_core::EventFilter::all()).await.unwrap();
    let a = AccountId::new();
    let cs: Vec<Contact> = (0..200).map(|i| contact(a, "N", &format!("+5511987{i:06}"))).collect();
    let es: Vec<Event> = cs.iter().map(|c| ev(c.account_id)).collect();
    assert_eq!(store.import_contacts(a, &cs, &es).await.unwrap().imported, 200);
    let mut tasks = Vec::new();
    for _ in 0..6 {
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
    assert_eq!(seen.len(), 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn import_failure_rolls_everything_back() {
    let store = memory().await;
    store.register_consumer("hooks", &crm_core::EventFilter::all()).await.unwrap();
    let a = AccountId::new();
    let cs: Vec<Contact> = (0..600).map(|i| contact(a, "N", &format!("+5511987{i:06}"))).collect();
    let mut es: Vec<Event> = cs.iter().map(|c| ev(c.account_id)).collect();
    // The last event reuses the first one's id: the insert fails after the
    // first batch was written, and nothing may remain.
    es[599].id = es[0].id;
    let err = store.import_contacts(a, &cs, &es).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(store.list_contacts(a, &ContactQuery::default()).await.unwrap().items.is_empty());
    assert!(store.list_events(a, None, 10).await.unwrap().is_empty());
    assert_eq!(store.pending("hooks").await.unwrap(), 0);
    let q = ContactQuery { page: PageRequest::first(1).unwrap(), ..Default::default() };
    assert!(store.list_contacts(a, &q).await.unwrap().next_cursor.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_races_concurrent_inserts_on_a_file() {
    let (dir, url) = temp_db();
    let store = Arc::new(SqliteStore::connect(&url).await.unwrap());
    support::imports_race_inserts(store.clone()).await;
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

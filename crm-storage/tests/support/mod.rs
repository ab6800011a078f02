//! Checks shared by the SQL store test files.

use crm_core::{
    AccountId, Clock, Contact, ContactQuery, Error, Event, EventType, NewContact, PageRequest, Store, SystemClock, Tag,
};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

const PHONES: usize = 240;
const IMPORTERS: usize = 8;
const INSERTERS: usize = 4;

fn phone(i: usize) -> String {
    format!("+5511986{:06}", i % PHONES)
}

fn new_contact(account: AccountId, phone: &str, tags: Vec<String>) -> (Contact, Event) {
    let now = SystemClock.now();
    let input = NewContact { name: "Race".into(), phone: phone.into(), tags, ..Default::default() };
    let c = Contact::new(account, input, now).unwrap();
    let e = Event::new(account, EventType::CONTACT_CREATED, &json!({ "id": c.id }), now);
    (c, e)
}

async fn all_contacts(store: &Arc<dyn Store>, account: AccountId, mut q: ContactQuery) -> Vec<Contact> {
    let mut out = Vec::new();
    q.page = PageRequest::first(200).unwrap();
    loop {
        let page = store.list_contacts(account, &q).await.unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.page = PageRequest::new(Some(&c), 200).unwrap(),
            None => return out,
        }
    }
}

/// Imports of overlapping batches (in different row orders) race single
/// inserts of the same phones. No import fails: a phone taken meanwhile is a
/// rejected row. Every phone ends up stored exactly once, with exactly one
/// event and outbox item, and tags only on the contacts stored.
pub async fn imports_race_inserts(store: Arc<dyn Store>) {
    let a = AccountId::new();
    store.register_consumer("hooks", &crm_core::EventFilter::all()).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..IMPORTERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // 120 consecutive phones starting at t * 30 (wrapping), reversed
            // for odd t, plus one row repeating the first phone.
            let mut idx: Vec<usize> = (t * 30..t * 30 + 120).collect();
            if t % 2 == 1 {
                idx.reverse();
            }
            idx.push(idx[0]);
            let (cs, es): (Vec<Contact>, Vec<Event>) =
                idx.iter().map(|&i| new_contact(a, &phone(i), vec!["imported".into()])).unzip();
            let report = store.import_contacts(a, &cs, &es).await.expect("an import never fails on a taken phone");
            assert_eq!(report.imported + report.rejected.len(), cs.len(), "{report:?}");
            let last = cs.len() - 1;
            assert!(report.rejected.iter().any(|r| r.index == last && r.reason == "phone repeats row 0"), "{report:?}");
            for r in &report.rejected {
                assert!(
                    r.index == last || r.reason == "a contact with this phone already exists",
                    "unexpected rejection {r:?}"
                );
            }
            assert!(report.rejected.windows(2).all(|w| w[0].index < w[1].index), "rejections in row order");
            report.imported
        }));
    }
    for t in 0..INSERTERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = 0;
            for i in (t..PHONES).step_by(INSERTERS) {
                let (c, e) = new_contact(a, &phone(i), vec![]);
                match store.insert_contact(&c, &e).await {
                    Ok(()) => stored += 1,
                    Err(Error::Conflict { .. }) => {}
                    Err(other) => panic!("insert_contact: {other}"),
                }
            }
            stored
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    let contacts = all_contacts(&store, a, ContactQuery::default()).await;
    let phones: HashSet<&str> = contacts.iter().map(|c| c.phone.as_str()).collect();
    assert_eq!(contacts.len(), PHONES, "every phone stored");
    assert_eq!(phones.len(), PHONES, "every phone stored exactly once");
    assert_eq!(stored, PHONES, "imported + inserted = contacts stored");
    let events = store.list_events(a, None, 1000).await.unwrap();
    assert_eq!(events.len(), PHONES, "one event per stored contact");
    assert_eq!(store.pending("hooks").await.unwrap(), PHONES as u64, "one outbox item per event");
    let q = ContactQuery { tag: Some(Tag::parse("imported").unwrap()), ..Default::default() };
    let tagged = all_contacts(&store, a, q).await;
    let imported_ids: HashSet<_> = contacts.iter().filter(|c| !c.tags.is_empty()).map(|c| c.id).collect();
    assert_eq!(tagged.iter().map(|c| c.id).collect::<HashSet<_>>(), imported_ids, "tags only for stored rows");
}

//! Templates: the [`TemplateStore`](crate::TemplateStore) contract.

use std::future::Future;
use std::sync::Arc;

use super::{ev, is_conflict, is_not_found, new_account, now};
use crate::{EventType, NewTemplate, PageRequest, Store, Template};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    templates_crud_and_uniqueness(make().await).await;
}

/// Templates: CRUD, name+language uniqueness, tenancy.
pub async fn templates_crud_and_uniqueness(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let mk = |acc, name: &str, lang: &str| {
        Template::new(
            acc,
            NewTemplate {
                name: name.into(),
                language: Some(lang.into()),
                category: None,
                body: "Oi {{nome}}".into(),
                parameters: None,
            },
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
                parameters: Some(vec![
                    crate::TemplateParameter {
                        name: "header.image".into(),
                        kind: crate::ParameterKind::Image,
                        required: true,
                    },
                    crate::TemplateParameter {
                        name: "quick_reply.1".into(),
                        kind: crate::ParameterKind::Payload,
                        required: false,
                    },
                ]),
            },
            now(),
        )
        .expect("valid");
    store.update_template(&changed, &ev(a, EventType::TEMPLATE_UPDATED)).await.expect("update");
    assert_eq!(store.get_template(a, en.id).await.expect("get"), changed, "[templates] update round trip");
    assert_eq!(
        store.find_template(a, "ola", "en_US").await.expect("find").and_then(|t| t.parameters).map(|p| p.len()),
        Some(2),
        "[templates] a provider template's parameters are kept"
    );
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

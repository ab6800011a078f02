//! Provider templates against the local Graph API mock: listing page by
//! page, submitting with examples, deleting; and template sends checked
//! against the synced template before Meta is called.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crm_core::secrets::{Keyring, SecretKey};
use crm_core::{Crm, Error, MemoryStore, MessageContent, NewContact, NewTemplate, SendRequest, TemplateCategory};
use crm_whatsapp::{CloudApiFactory, CloudApiMessenger};
use serde_json::json;
use std::sync::Arc;
use support::{GraphMock, Reply};

const WABA: &str = "102290129340398";

fn messenger(mock: &GraphMock) -> CloudApiMessenger {
    CloudApiMessenger::builder()
        .phone_number_id("106540352242922")
        .access_token("EAAGtemplates")
        .base_url(mock.base_url())
        .build()
        .unwrap()
}

fn template(name: &str, status: &str, body: &str) -> serde_json::Value {
    json!({
        "name": name, "language": "pt_BR", "status": status, "category": "UTILITY", "id": format!("{name}-id"),
        "components": [
            { "type": "HEADER", "format": "TEXT", "text": "Pedido" },
            { "type": "BODY", "text": body, "example": { "body_text": [["Ana", "#1"]] } },
            { "type": "FOOTER", "text": "Loja da Ana" }
        ]
    })
}

#[tokio::test]
async fn templates_are_listed_page_by_page() {
    let mock = GraphMock::start().await;
    let m = messenger(&mock);
    mock.then(Reply::Json(200, json!({
        "data": [template("order_update", "APPROVED", "Olá {{1}}, seu pedido {{2}} saiu.")],
        "paging": { "cursors": { "before": "QVFIUa", "after": "QVFIUb" }, "next": "https://graph.facebook.com/next" }
    })));
    mock.then(Reply::Json(
        200,
        json!({
            "data": [template("promo", "PENDING", "Oferta para {{first_name}}")],
            "paging": { "cursors": { "before": "QVFIUb", "after": "QVFIUc" } }
        }),
    ));
    let list = m.list_templates(WABA).await.unwrap();
    assert_eq!(list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["order_update", "promo"]);
    assert!(list[0].is_approved() && !list[1].is_approved());
    let t = list[0].to_new_template().unwrap();
    assert_eq!(t.body, "Olá {{1}}, seu pedido {{2}} saiu.");
    assert_eq!(t.category, Some(TemplateCategory::Utility));
    let r = mock.requests();
    assert_eq!(r.len(), 2, "the last page has no `next`");
    assert_eq!((r[0].method.as_str(), r[0].path.as_str()), ("GET", "/v23.0/102290129340398/message_templates"));
    assert!(r[0].query.as_deref().unwrap().contains("fields=id,name,language,category,status,components"));
    assert!(r[1].query.as_deref().unwrap().contains("after=QVFIUb"));
    assert_eq!(r[1].authorization.as_deref(), Some("Bearer EAAGtemplates"));
    assert!(m.list_templates("not-digits").await.is_err());
}

#[tokio::test]
async fn templates_are_submitted_with_examples_and_deleted_by_name() {
    let mock = GraphMock::start().await;
    let m = messenger(&mock);
    mock.then(Reply::Json(200, json!({ "id": "572279198452421", "status": "PENDING", "category": "MARKETING" })));
    let input = NewTemplate {
        name: "welcome".into(),
        language: Some("pt_BR".into()),
        category: Some(TemplateCategory::Marketing),
        body: "Oi {{first_name}}, bem-vinda!".into(),
        parameters: None,
    };
    let (id, status) = m.create_template(WABA, &input).await.unwrap();
    assert_eq!((id.as_str(), status.as_str()), ("572279198452421", "PENDING"));
    let positional = NewTemplate { name: "order".into(), body: "Pedido {{1}} de {{2}}".into(), ..input.clone() };
    mock.then(Reply::Json(200, json!({ "id": "1", "status": "PENDING" })));
    m.create_template(WABA, &positional).await.unwrap();
    m.delete_template(WABA, "welcome").await.unwrap();
    let r = mock.requests();
    assert_eq!((r[0].method.as_str(), r[0].path.as_str()), ("POST", "/v23.0/102290129340398/message_templates"));
    assert_eq!(
        r[0].body,
        json!({
            "name": "welcome", "language": "pt_BR", "category": "MARKETING", "parameter_format": "NAMED",
            "components": [{ "type": "BODY", "text": "Oi {{first_name}}, bem-vinda!",
                "example": { "body_text_named_params": [{ "param_name": "first_name", "example": "example first_name" }] } }]
        })
    );
    assert_eq!(r[1].body["components"][0]["example"], json!({ "body_text": [["example 1", "example 2"]] }));
    assert!(r[1].body.get("parameter_format").is_none());
    assert_eq!((r[2].method.as_str(), r[2].query.as_deref()), ("DELETE", Some("name=welcome")));
    assert!(m.delete_template(WABA, "Bad Name").await.is_err());
    assert_eq!(mock.count(), 3, "a refused name never reaches Meta");
}

#[tokio::test]
async fn template_variables_are_checked_before_meta_is_called() {
    let mock = GraphMock::start().await;
    let crm = Crm::builder()
        .store(Arc::new(MemoryStore::new()))
        .messenger_factory(Arc::new(CloudApiFactory::new().unwrap()))
        .keyring(Keyring::new(SecretKey::generate("k1").unwrap()))
        .build()
        .unwrap();
    let account = crm.create_account("Loja").await.unwrap();
    let mut credentials = crm_core::secrets::Credentials::new();
    credentials.insert("access_token", "EAAGtemplates");
    let input = crm_core::NewChannel {
        kind: "whatsapp-cloud".into(),
        name: "Loja".into(),
        provider_id: Some("106540352242922".into()),
        settings: Some(json!({ "base_url": mock.base_url() })),
        credentials: Some(credentials),
        ..Default::default()
    };
    crm.create_channel(account.id, input).await.unwrap();
    let t = NewTemplate {
        name: "order_update".into(),
        body: "Olá {{1}}, seu pedido {{2}} saiu.".into(),
        ..Default::default()
    };
    crm.create_template(account.id, t).await.unwrap();
    let contact = crm
        .create_contact(
            account.id,
            NewContact { name: "Ana".into(), phone: "+55 11 98765-4321".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let send = |vars: &[(&str, &str)]| {
        let content = MessageContent::Template {
            name: "order_update".into(),
            language: "pt_BR".into(),
            variables: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            rendered: "Olá Ana, seu pedido #1 saiu.".into(),
        };
        crm.queue_message(account.id, SendRequest::new(contact.id, content))
    };
    match send(&[("1", "Ana"), ("3", "x")]).await {
        Err(Error::Validation { field, reason }) => {
            assert_eq!(field, "content.variables");
            assert!(reason.contains("needs 2") && reason.contains("has no 3"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Other components' parameters are left to Meta; the body's match.
    send(&[("1", "Ana"), ("2", "#1"), ("button.0", "1")]).await.unwrap();
    assert_eq!(mock.count(), 0, "nothing was sent: no dispatcher runs here");
}

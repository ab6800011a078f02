//! Conformance suites of the connector ports ([`Mailer`], [`Notifier`],
//! [`Analytics`]): what every adapter must do with valid and invalid input.
//!
//! Each suite takes the adapter and a function telling how many items
//! reached the provider so far (the recording double's list, a mock
//! server's log), so refusals can be checked to send nothing.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use crm_core::memory::{RecordingMailer, RecordingNotifier, RecordingAnalytics};
//! use crm_core::testing::connectors;
//! let m = RecordingMailer::new();
//! connectors::mailer(&m, &|| m.sent().len()).await;
//! let n = RecordingNotifier::new();
//! connectors::notifier(&n, &|| n.notified().len()).await;
//! let a = RecordingAnalytics::new();
//! connectors::analytics(&a, &|| a.tracked().iter().map(|c| c.1.len()).sum()).await;
//! # });
//! ```

use serde_json::{Map, json};

use crate::Error;
use crate::ports::connectors::{
    Analytics, AnalyticsEvent, AnalyticsUser, Attachment, MAX_ATTACHMENT_BYTES, MAX_BLOCKS, MailDraft, Mailbox, Mailer,
    Notification, Notifier,
};

fn is_validation(e: &Error) -> bool {
    matches!(e, Error::Validation { .. })
}

/// A valid draft: one recipient of each kind, a reply-to, an HTML body.
pub fn sample_draft() -> MailDraft {
    MailDraft {
        from: Some(Mailbox { email: "loja@example.com".into(), name: Some("Loja".into()) }),
        to: vec![Mailbox { email: "ana@example.com".into(), name: Some("Ana Souza".into()) }],
        cc: vec![Mailbox::new("gerente@example.com")],
        bcc: vec![Mailbox::new("arquivo@example.com")],
        reply_to: Some(Mailbox::new("vendas@example.com")),
        subject: "Pedido {{order}} confirmado".into(),
        text: "Olá {{name}}, seu pedido {{order}} foi confirmado.".into(),
        html: Some("<p>Olá <b>{{name}}</b>, seu pedido {{order}} foi confirmado.</p>".into()),
        variables: [("name".to_owned(), "Ana".to_owned()), ("order".to_owned(), "#42".to_owned())].into(),
        attachments: Vec::new(),
        contact_id: None,
    }
}

/// The [`Mailer`] contract: a valid e-mail (with an attachment) is
/// accepted once; bad addresses, no recipients and oversized attachments
/// are [`Error::Validation`] and send nothing.
pub async fn mailer(mailer: &dyn Mailer, sent: &(dyn Fn() -> usize + Sync)) {
    let start = sent();
    let mut email = sample_draft().render().expect("[mailer] the sample renders");
    assert_eq!(email.subject, "Pedido #42 confirmado", "[mailer] subject rendered");
    email.attachments.push(Attachment {
        filename: "pedido.pdf".into(),
        content_type: "application/pdf".into(),
        content: b"%PDF-1.4 ...".to_vec(),
    });
    mailer.send(&email).await.unwrap_or_else(|e| panic!("[mailer] a valid e-mail is accepted: {e}"));
    assert_eq!(sent(), start + 1, "[mailer] one e-mail reached the provider");

    let mut bad = email.clone();
    bad.to = vec![Mailbox::new("not an address")];
    let e = mailer.send(&bad).await.expect_err("[mailer] a bad recipient is refused");
    assert!(is_validation(&e), "[mailer] a bad recipient is a validation error: {e:?}");

    let mut none = email.clone();
    (none.to, none.cc, none.bcc) = (Vec::new(), Vec::new(), Vec::new());
    let e = mailer.send(&none).await.expect_err("[mailer] no recipients is refused");
    assert!(is_validation(&e), "[mailer] no recipients is a validation error: {e:?}");

    let mut big = email.clone();
    big.attachments[0].content = vec![0; MAX_ATTACHMENT_BYTES + 1];
    let e = mailer.send(&big).await.expect_err("[mailer] oversized attachments are refused");
    assert!(is_validation(&e), "[mailer] oversized attachments are a validation error: {e:?}");

    let mut header = email.clone();
    header.reply_to = Some(Mailbox::new("a@b.c\r\nBcc: x@evil.example"));
    let e = mailer.send(&header).await.expect_err("[mailer] header injection is refused");
    assert!(is_validation(&e), "[mailer] header injection is a validation error: {e:?}");
    assert_eq!(sent(), start + 1, "[mailer] refused e-mails send nothing");

    let missing = MailDraft { variables: Default::default(), ..sample_draft() };
    assert!(missing.render().is_err_and(|e| is_validation(&e)), "[mailer] a placeholder without a value is refused");
}

/// The [`Notifier`] contract: a hot-lead and a failed-payment message are
/// posted; an empty text or too many blocks is [`Error::Validation`] and
/// posts nothing.
pub async fn notifier(notifier: &dyn Notifier, posted: &(dyn Fn() -> usize + Sync)) {
    let start = posted();
    let hot = Notification::hot_lead("Ana <ana@example.com>", 85, 70, Some("https://crm.example.com/contacts/1"));
    notifier.notify(&hot).await.unwrap_or_else(|e| panic!("[notifier] a hot lead is posted: {e}"));
    let failed = Notification::payment_failed("Loja Azul", 12990, "brl", "card_declined");
    assert!(failed.text.contains("BRL 129.90"), "[notifier] the amount is shown in major units: {}", failed.text);
    notifier.notify(&failed).await.unwrap_or_else(|e| panic!("[notifier] a failed payment is posted: {e}"));
    assert_eq!(posted(), start + 2, "[notifier] two messages reached the provider");

    let empty = Notification { text: " ".into(), blocks: Vec::new(), channel: None };
    let e = notifier.notify(&empty).await.expect_err("[notifier] an empty text is refused");
    assert!(is_validation(&e), "[notifier] empty text: {e:?}");
    let many =
        Notification { text: "x".into(), blocks: vec![json!({ "type": "divider" }); MAX_BLOCKS + 1], channel: None };
    let e = notifier.notify(&many).await.expect_err("[notifier] too many blocks is refused");
    assert!(is_validation(&e), "[notifier] too many blocks: {e:?}");
    assert_eq!(posted(), start + 2, "[notifier] refused messages post nothing");
}

/// The [`Analytics`] contract: 30 events (more than one batch) all arrive;
/// a bad event name, no events or no client id is [`Error::Validation`]
/// and sends nothing. `received` counts events the provider got.
pub async fn analytics(analytics: &dyn Analytics, received: &(dyn Fn() -> usize + Sync)) {
    let start = received();
    let user = AnalyticsUser { client_id: "1234567890.1700000000".into(), user_id: Some("contact-1".into()) };
    let mut events: Vec<AnalyticsEvent> = (0..29)
        .map(|i| {
            let mut p = Map::new();
            p.insert("step".into(), json!(i));
            AnalyticsEvent::custom("lead_step", p).expect("valid event")
        })
        .collect();
    events.push(AnalyticsEvent::conversion("purchase", 12990, "BRL", "T-1").expect("valid conversion"));
    analytics.track(&user, &events).await.unwrap_or_else(|e| panic!("[analytics] 30 events are tracked: {e}"));
    assert_eq!(received(), start + 30, "[analytics] every event reached the provider");

    let bad = AnalyticsEvent { name: "google_reserved".into(), params: Map::new() };
    let e = analytics.track(&user, &[bad]).await.expect_err("[analytics] a reserved name is refused");
    assert!(is_validation(&e), "[analytics] reserved name: {e:?}");
    let e = analytics.track(&user, &[]).await.expect_err("[analytics] no events is refused");
    assert!(is_validation(&e), "[analytics] no events: {e:?}");
    let nobody = AnalyticsUser { client_id: String::new(), user_id: None };
    let e = analytics.track(&nobody, &events[..1]).await.expect_err("[analytics] no client id is refused");
    assert!(is_validation(&e), "[analytics] no client id: {e:?}");
    assert_eq!(received(), start + 30, "[analytics] refused calls send nothing");
}

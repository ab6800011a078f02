//! The SendGrid adapter against a local mock of SendGrid's v3 API on
//! 127.0.0.1: the v3 Mail Send JSON it posts, SendGrid's documented
//! answers (202 with `X-Message-Id`, 400/401/429/500 error bodies) and a
//! timeout; a mail job through the worker surviving an outage; and the
//! signed event webhook (good signature, tampered body, wrong key, stale
//! timestamp, missing headers).
#![allow(clippy::unwrap_used)]

mod support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{TimeZone, Utc};
use crm_connectors::sendgrid::{EventWebhookVerifier, SendGrid, SendGridFactory};
use crm_core::connections::ConnectorRegistry;
use crm_core::domain::connection::{Connection, ConnectionKind};
use crm_core::ports::connectors::{Attachment, Mailer};
use crm_core::secrets::{Credentials, Keyring, SecretKey};
use crm_core::testing::connectors::{mailer, sample_draft};
use crm_core::workers::connectors::{ConnectorWorker, MailJob, schedule_mail};
use crm_core::workers::{JobWorker, Outcome};
use crm_core::{Account, Error, Event, EventType, MemoryStore, Store, SystemClock};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::{Mock, Reply};

const KEY: &str = "SG.test-key.0123456789abcdef";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/sendgrid/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn accepted() -> Reply {
    Reply::new(202, "").header("X-Message-Id", "14c5d75ce93.dfd.64b469")
}

fn sendgrid(mock: &Mock) -> SendGrid {
    SendGrid::builder().base_url(&mock.base).api_key(KEY).timeout(Duration::from_millis(500)).build().unwrap()
}

#[tokio::test]
async fn the_mailer_contract_holds_against_the_mock() {
    let mock = Mock::start(accepted()).await;
    let sg = sendgrid(&mock);
    mailer(&sg, &|| mock.count()).await;
}

#[tokio::test]
async fn posts_the_v3_mail_send_json() {
    let mock = Mock::start(accepted()).await;
    let sg = sendgrid(&mock);
    let mut email = sample_draft().render().unwrap();
    email.attachments.push(Attachment {
        filename: "pedido.pdf".into(),
        content_type: "application/pdf".into(),
        content: b"%PDF".to_vec(),
    });
    email.custom_args.insert("crm_contact_id".into(), "c-1".into());
    let sent = sg.send(&email).await.unwrap();
    assert_eq!(sent.provider_id.as_deref(), Some("14c5d75ce93.dfd.64b469"));
    let req = &mock.seen()[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v3/mail/send"));
    assert_eq!(req.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    assert_eq!(
        body,
        json!({
            "personalizations": [{
                "to": [{ "email": "ana@example.com", "name": "Ana Souza" }],
                "cc": [{ "email": "gerente@example.com" }],
                "bcc": [{ "email": "arquivo@example.com" }],
            }],
            "from": { "email": "loja@example.com", "name": "Loja" },
            "reply_to": { "email": "vendas@example.com" },
            "subject": "Pedido #42 confirmado",
            "content": [
                { "type": "text/plain", "value": "Olá Ana, seu pedido #42 foi confirmado." },
                { "type": "text/html", "value": "<p>Olá <b>Ana</b>, seu pedido #42 foi confirmado.</p>" },
            ],
            "attachments": [{ "content": "JVBERg==", "type": "application/pdf", "filename": "pedido.pdf", "disposition": "attachment" }],
            "custom_args": { "crm_contact_id": "c-1" },
        })
    );

    // Only `to`: no empty cc/bcc arrays (SendGrid refuses them), no html part.
    let mut plain = email.clone();
    (plain.cc, plain.bcc, plain.html, plain.reply_to) = (Vec::new(), Vec::new(), None, None);
    plain.attachments.clear();
    plain.custom_args.clear();
    sg.send(&plain).await.unwrap();
    let body = mock.seen()[1].json();
    assert_eq!(body["personalizations"], json!([{ "to": [{ "email": "ana@example.com", "name": "Ana Souza" }] }]));
    assert_eq!(body["content"].as_array().unwrap().len(), 1);
    for key in ["reply_to", "attachments", "custom_args"] {
        assert!(body.get(key).is_none(), "{key} is left out when empty");
    }
}

#[tokio::test]
async fn maps_sendgrid_errors_and_never_shows_the_key() {
    let mock = Mock::start(accepted()).await;
    let sg = sendgrid(&mock);
    let email = sample_draft().render().unwrap();

    mock.then(Reply::new(401, fixture("error_401.json")));
    let e = sg.send(&email).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "401 is a refused key: {e:?}");
    assert!(!e.to_string().contains(KEY) && !format!("{e:?}").contains(KEY), "the key never shows");
    assert!(!format!("{sg:?}").contains(KEY));

    mock.then(Reply::new(400, fixture("error_400.json")));
    let e = sg.send(&email).await.unwrap_err();
    match e {
        Error::Provider { transient: false, code, message, .. } => {
            assert_eq!(code.as_deref(), Some("400"));
            assert!(message.contains("from.email: The from email does not contain a valid address."), "{message}");
        }
        e => panic!("400 is permanent: {e:?}"),
    }

    let reset = Utc::now().timestamp() + 40;
    mock.then(Reply::new(429, fixture("error_429.json")).header("X-RateLimit-Reset", reset.to_string()));
    match sg.send(&email).await.unwrap_err() {
        Error::Provider { transient: true, retry_after: Some(d), .. } => {
            assert!((30..=41).contains(&d.as_secs()), "waits until X-RateLimit-Reset: {d:?}")
        }
        e => panic!("429 is transient with a wait: {e:?}"),
    }
    mock.then(Reply::new(429, fixture("error_429.json")).header("Retry-After", "12"));
    assert!(matches!(sg.send(&email).await.unwrap_err(),
        Error::Provider { transient: true, retry_after: Some(d), .. } if d == Duration::from_secs(12)));

    mock.then(Reply::new(500, fixture("error_500.json")));
    assert!(matches!(sg.send(&email).await.unwrap_err(), Error::Provider { transient: true, .. }));

    mock.then(accepted().delay(Duration::from_secs(2)));
    let e = sg.send(&email).await.unwrap_err();
    assert!(matches!(e, Error::Provider { transient: true, .. }), "a timeout is transient: {e:?}");
    assert!(e.to_string().contains("did not answer"), "{e}");
}

#[tokio::test]
async fn a_mail_job_survives_an_outage_and_is_sent_through_the_accounts_connection() {
    let mock = Mock::start(accepted()).await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let account = Account::new("Loja", Utc::now()).unwrap();
    let ev = |t| Event::new(account.id, t, &json!({}), Utc::now());
    store.create_account(&account, &ev(EventType::ACCOUNT_CREATED)).await.unwrap();
    let keyring = Keyring::new(SecretKey::generate("k1").unwrap());
    let registry = Arc::new(ConnectorRegistry::new(vec![Arc::new(SendGridFactory::new(&mock.base))], Some(keyring)));
    let settings = json!({ "from": "loja@example.com", "from_name": "Loja" });
    let mut c = Connection::new(account.id, ConnectionKind::SENDGRID, settings, None, Utc::now()).unwrap();
    let mut creds = Credentials::new();
    creds.insert("api_key", KEY);
    registry.factory("sendgrid").unwrap().validate(&c.settings, Some(&creds)).unwrap();
    c.credentials = Some(registry.seal(&c, &creds).unwrap());
    store.put_connection(&c, &ev(EventType::CONNECTION_UPDATED)).await.unwrap();

    let draft = crm_core::ports::connectors::MailDraft { from: None, ..sample_draft() };
    let job = schedule_mail(&*store, account.id, &MailJob { provider: None, draft }, None, Utc::now()).await.unwrap();
    let worker = ConnectorWorker::mail(store.clone(), registry, None, Arc::new(SystemClock));
    mock.then(Reply::new(503, "").header("Retry-After", "60"));
    assert_eq!(
        worker.run(&job).await,
        Outcome::Retry {
            error: "sendgrid error 503: SendGrid answered 503 Service Unavailable".into(),
            after: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(worker.run(&job).await, Outcome::Done);
    let body = mock.seen()[1].json();
    assert_eq!(body["from"], json!({ "email": "loja@example.com", "name": "Loja" }), "the connection's sender");
    assert_eq!(body["custom_args"]["crm_account_id"], json!(account.id.to_string()));
    let stored = store.get_connection(account.id, &ConnectionKind::SENDGRID).await.unwrap();
    assert!(stored.last_success_at.is_some());

    mock.then(Reply::new(401, fixture("error_401.json")));
    assert!(matches!(worker.run(&job).await, Outcome::Fail { .. }), "a refused key buries the job");
    let stored = store.get_connection(account.id, &ConnectionKind::SENDGRID).await.unwrap();
    assert_eq!(stored.status, crm_core::domain::connection::ConnectionStatus::Error);
    assert!(!stored.last_error.unwrap().contains(KEY));
}

struct Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        Self { pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap(), rng }
    }

    /// The public key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo.
    fn public_key(&self) -> String {
        let mut der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        der.extend_from_slice(self.pair.public_key().as_ref());
        STANDARD.encode(der)
    }

    fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mut msg = timestamp.as_bytes().to_vec();
        msg.extend_from_slice(body);
        STANDARD.encode(self.pair.sign(&self.rng, &msg).unwrap().as_ref())
    }
}

#[test]
fn the_event_webhook_accepts_only_good_fresh_signatures() {
    let signer = Signer::new();
    let verifier = EventWebhookVerifier::new(&signer.public_key()).unwrap();
    let body = fixture("events.json").replace("CONTACT", "0193d0a0-0000-7000-8000-000000000001");
    let now = Utc.timestamp_opt(1_764_500_100, 0).unwrap();
    let ts = "1764500100";
    let sig = signer.sign(ts, body.as_bytes());

    let events = verifier.verify(Some(&sig), Some(ts), body.as_bytes(), now).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["email.delivered", "email.opened", "email.clicked", "email.bounced", "email.dropped"],
        "processed is skipped"
    );
    assert_eq!(events[0].contact_id.map(|c| c.to_string()).as_deref(), Some("0193d0a0-0000-7000-8000-000000000001"));
    assert_eq!(events[0].account_id.as_deref(), Some("ACCOUNT"));
    assert_eq!(events[2].data["url"], json!("http://www.sendgrid.com/"));
    assert_eq!(events[3].data["reason"], json!("500 unknown recipient"));
    assert_eq!(events[3].data["bounce_classification"], json!("Invalid Address"));
    assert_eq!(events[3].at, Utc.timestamp_opt(1_764_500_040, 0).unwrap());

    let refused =
        |r: crm_core::Result<Vec<_>>| matches!(r, Err(Error::Validation { ref field, .. }) if field == "signature");
    let tampered = body.replace("bounce", "delivered");
    assert!(refused(verifier.verify(Some(&sig), Some(ts), tampered.as_bytes(), now)), "a tampered body");
    let other = EventWebhookVerifier::new(&Signer::new().public_key()).unwrap();
    assert!(refused(other.verify(Some(&sig), Some(ts), body.as_bytes(), now)), "the wrong key");
    let later = now + chrono::Duration::minutes(10);
    assert!(refused(verifier.verify(Some(&sig), Some(ts), body.as_bytes(), later)), "a stale timestamp");
    let other_ts = signer.sign("1764500101", body.as_bytes());
    assert!(
        refused(verifier.verify(Some(&other_ts), Some(ts), body.as_bytes(), now)),
        "a signature of another timestamp"
    );
    assert!(refused(verifier.verify(None, Some(ts), body.as_bytes(), now)), "no signature");
    assert!(refused(verifier.verify(Some(&sig), None, body.as_bytes(), now)), "no timestamp");
    assert!(refused(verifier.verify(Some("not base64!"), Some(ts), body.as_bytes(), now)), "garbage");

    let not_array = br#"{"event":"open"}"#;
    let sig = signer.sign(ts, not_array);
    assert!(
        matches!(verifier.verify(Some(&sig), Some(ts), not_array, now), Err(Error::Validation { ref field, .. }) if field == "body")
    );
    assert!(EventWebhookVerifier::new("AAAA").is_err(), "a key that is not P-256 is refused");
}

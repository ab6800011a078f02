//! End to end: a real server on 127.0.0.1:0 over SQLite and PostgreSQL,
//! driven with reqwest; bootstrap, graceful shutdown and secrets in errors.

use crm_core::Role;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Harness, temp_dir};
use crate::{admin, contacts, messages, templates, tenancy};

/// Everything the API does, through the bootstrap key of a fresh server.
async fn whole_api(h: &Harness) {
    let server = h.server.as_ref().unwrap();
    let key = &server.admin_key;
    let account = h.api.get("/api/v1/account").bearer(key).send().await.ok_json(200);
    assert_eq!(account["id"], server.account_id.to_string());
    let keys = h.api.get("/api/v1/api-keys").bearer(key).send().await.ok_json(200);
    assert_eq!(keys[0]["role"], "owner", "the bootstrap key is the owner's: {keys}");

    contacts::crud(&h.api, key).await;
    contacts::filters_and_pages(&h.api, key).await;
    templates::crud_and_render(&h.api, key).await;
    messages::send_and_read(&h.api, key).await;
    messages::events_after_cursor(&h.api, key).await;
    admin::login_flow(&h.api, key).await;

    let (_, other) = h.account(Role::Admin).await;
    let mine = h.api.get("/api/v1/contacts?limit=200").bearer(key).send().await.ok_json(200);
    assert!(!mine["items"].as_array().unwrap().is_empty());
    let theirs = h.api.get("/api/v1/contacts").bearer(&other).send().await.ok_json(200);
    assert_eq!(theirs["items"], json!([]));

    let ready = h.api.get("/ready").send().await.ok_json(200);
    assert_eq!(ready["checks"]["database"]["status"], "healthy", "{ready}");
    assert!(ready["checks"].get("messenger").is_none(), "channels are reported apart: {ready}");
    assert!(ready["channels"]["total"].as_u64().unwrap() >= 2, "{ready}");
    let item = &ready["channels"]["items"][0];
    assert_eq!((item["kind"].as_str(), item["health"].as_str()), (Some("recording"), Some("degraded")), "{ready}");
    let metrics = h.api.get("/metrics").send().await.expect(200).text();
    assert!(metrics.contains(r#"route="/api/v1/contacts/{id}""#), "{metrics}");
    let doc = h.api.get("/openapi.json").send().await.ok_json(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let docs = h.api.get("/docs").send().await;
    docs.expect(200);
    assert!(docs.text().to_lowercase().contains("swagger"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_api_on_sqlite() {
    let h = Harness::sqlite().await;
    whole_api(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_api_on_postgres() {
    let Some(h) = Harness::postgres("whole_api_on_postgres").await else { return };
    whole_api(&h).await;
    tenancy::suite(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_happens_once_per_database() {
    let dir = temp_dir("bootstrap");
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    let config = crm_http::Config { database_url: Some(url.clone().into()), ..Default::default() };
    let first = Harness::serve(config.clone()).await;
    let key = first.server.as_ref().unwrap().admin_key.clone();
    first
        .api
        .post("/api/v1/contacts")
        .bearer(&key)
        .json(crate::helpers::contact_body("Ana", 1))
        .send()
        .await
        .expect(201);
    first.stop().await;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut again = crm_http::Server::build_with_listener(config, listener).await.unwrap();
    assert!(again.take_bootstrap().is_none(), "a second start creates no account");
    let api = crate::helpers::Api::http(format!("http://{}", again.local_addr().unwrap()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(again.run_with_shutdown(async move {
        let _ = rx.await;
    }));
    let list = api.get("/api/v1/contacts").bearer(&key).send().await.ok_json(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "data and keys survive a restart");
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_applies_to_streamed_bodies() {
    let h = Harness::sqlite_with(|c| c.body_limit_bytes = 1024).await;
    let key = h.server.as_ref().unwrap().admin_key.clone();
    let big = json!({ "name": "A".repeat(5000), "phone": "+5511987654321" });
    h.api.post("/api/v1/contacts").bearer(&key).json(big.clone()).send().await.problem(413, "payload-too-large");
    // Without Content-Length (chunked), the limit still holds.
    let bytes = serde_json::to_vec(&big).unwrap();
    let addr = h.server.as_ref().unwrap().addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/contacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer 413 and close before the whole body is written:
    // a broken pipe on the later chunks is expected, the answer is read below.
    let mut write = async || -> std::io::Result<()> {
        for chunk in bytes.chunks(512) {
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            s.write_all(chunk).await?;
            s.write_all(b"\r\n").await?;
        }
        s.write_all(b"0\r\n\r\n").await
    };
    let _ = write().await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("application/problem+json") && out.contains("/problems/payload-too-large"), "{out}");
    let list = h.api.get("/api/v1/contacts").bearer(&key).send().await.ok_json(200);
    assert_eq!(list["items"], json!([]));
    h.stop().await;
}

/// Reads one HTTP/1.1 response head (and a body of Content-Length bytes).
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests_then_refuses_connections() {
    let h = Harness::sqlite().await;
    let running = h.server.unwrap();
    let (addr, key) = (running.addr, running.admin_key.clone());
    let body = serde_json::to_vec(&crate::helpers::contact_body("In flight", 1)).unwrap();

    // A request whose handler is running: hyper answers `100 Continue` only
    // once the handler starts reading the body.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/contacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let cont = read_response(&mut s).await;
    assert!(cont.starts_with("HTTP/1.1 100"), "{cont}");

    let state = running.state.clone();
    let account = running.account_id;
    let (shutdown, task) = running.into_parts();
    shutdown.send(()).unwrap();
    // The listener stops accepting; the in-flight request still completes.
    s.write_all(&body).await.unwrap();
    let res = read_response(&mut s).await;
    assert!(res.starts_with("HTTP/1.1 201"), "{res}");
    assert!(res.contains("In flight"), "{res}");
    tokio::time::timeout(Duration::from_secs(60), task).await.expect("server stops").unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "no new connections after shutdown");
    let stored = state.crm().list_contacts(account, &Default::default()).await.unwrap();
    assert_eq!(stored.items.len(), 1, "the in-flight write was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_server_stops_at_once_on_the_signal() {
    let h = Harness::sqlite().await;
    let addr = h.server.as_ref().unwrap().addr;
    h.api.get("/health").send().await.expect(200);
    h.stop().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_bad_database_url_is_named_without_its_password() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = "postgres://crm:hunter2-secret@127.0.0.1:1/crm";
    let config = crm_http::Config { database_url: Some(url.to_owned().into()), ..Default::default() };
    let dbg = format!("{config:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    let err = crm_http::Server::build_with_listener(config, listener).await.unwrap_err();
    let text = format!("{err} {err:?} {}", crm_http_error_chain(&err));
    assert!(text.contains("DATABASE_URL"), "{text}");
    assert!(!text.contains("hunter2"), "the password never appears: {text}");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = crm_http::Config {
        database_url: Some("sqlite:///proc/definitely/not/writable/crm.db?mode=rwc".to_owned().into()),
        ..Default::default()
    };
    let err = crm_http::Server::build_with_listener(config, listener).await.unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
}

fn crm_http_error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(" / ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Several servers starting at once on one empty database create exactly one
/// first account and print exactly one key; a later start creates nothing.
#[tokio::test]
async fn first_start_bootstrap_happens_once_under_a_race() {
    let dir = temp_dir("bootstrap-race");
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    let config = || crm_http::Config {
        database_url: Some(secrecy::SecretString::from(url.clone())),
        ..crm_http::Config::default()
    };
    // Migrate first so the race is about the bootstrap, not table creation.
    crm_http::open_store(&url).await.unwrap();
    let mut starts = Vec::new();
    for _ in 0..4 {
        let cfg = config();
        starts.push(tokio::spawn(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut server = crm_http::Server::build_with_listener(cfg, listener).await.unwrap();
            server.take_bootstrap().map(|b| b.account_id)
        }));
    }
    let mut created = Vec::new();
    for s in starts {
        created.extend(s.await.unwrap());
    }
    assert_eq!(created, vec![crm_http::BOOTSTRAP_ACCOUNT], "exactly one start bootstraps");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut again = crm_http::Server::build_with_listener(config(), listener).await.unwrap();
    assert!(again.take_bootstrap().is_none(), "a later start creates nothing");
    let store = crm_http::open_store(&url).await.unwrap();
    let keys = store.list_api_keys(crm_http::BOOTSTRAP_ACCOUNT).await.unwrap();
    assert_eq!(keys.len(), 1, "one owner key");
}

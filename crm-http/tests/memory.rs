//! Bounded memory under hostile input: the render route and the CSV import
//! keep the process's peak RSS under [`CEILING_MB`] (documented in the
//! README's security section). Its own test binary, so the peak is this
//! test's alone. Linux only (it reads `VmHWM` from `/proc/self/status`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crm_core::{Crm, GcraLimiter, MemoryStore, NewTemplate, RecordingMessenger, Role, SystemClock};
use crm_http::{AppState, Settings};

/// The peak resident memory allowed, in MiB.
const CEILING_MB: u64 = 64;

fn peak_rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_render_and_import_stay_under_the_memory_ceiling() {
    if peak_rss_mb().is_none() {
        eprintln!("SKIPPED hostile_render_and_import_stay_under_the_memory_ceiling: no /proc/self/status");
        return;
    }
    let store = Arc::new(MemoryStore::new());
    let crm = Crm::builder().store(store).messenger(Arc::new(RecordingMessenger::new())).build().unwrap();
    let account = crm.create_account("Hostile").await.unwrap();
    let (_, token) = crm.create_api_key(account.id, "test", Role::Admin, None).await.unwrap();
    let body = "{{a}}".repeat(819);
    let template = NewTemplate { name: "amplifier".into(), body, ..Default::default() };
    let template = crm.create_template(account.id, template).await.unwrap();
    let limiter = Arc::new(GcraLimiter::new(Arc::new(SystemClock)));
    let app = crm_http::router(AppState::new(crm.clone(), limiter, Vec::new(), Settings::default()));

    // Three concurrent renders of 819 placeholders × a 900 kB value: 2.2 GB
    // if rendered whole.
    let request = serde_json::to_vec(&serde_json::json!({ "variables": { "a": "x".repeat(900_000) } })).unwrap();
    let renders = (0..3).map(|_| {
        let req = Request::post(format!("/api/v1/templates/{}/render", template.id))
            .header("authorization", format!("Bearer {}", token.expose()))
            .header("content-type", "application/json")
            .body(Body::from(request.clone()))
            .unwrap();
        tokio::spawn(app.clone().oneshot(req))
    });
    for r in renders.collect::<Vec<_>>() {
        assert_eq!(r.await.unwrap().unwrap().status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    // A CSV of 200,000 bad rows, then one 64 MB quoted field.
    let dir = std::env::temp_dir().join(format!("crm-memory-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hostile.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(file, "name,phone").unwrap();
    for i in 0..200_000 {
        writeln!(file, "Row {i},not a phone {i}").unwrap();
    }
    write!(file, "\"").unwrap();
    let chunk = "y".repeat(1 << 20);
    for _ in 0..64 {
        file.write_all(chunk.as_bytes()).unwrap();
    }
    writeln!(file, "\",+5511987650001").unwrap();
    drop(file);
    let err = crm_http::import::import_csv_with(&crm, account.id, &path, "55", 1000, 2, false).await.unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);

    let peak = peak_rss_mb().unwrap();
    eprintln!("peak RSS {peak} MiB (ceiling {CEILING_MB} MiB)");
    assert!(peak < CEILING_MB, "peak RSS {peak} MiB is over the {CEILING_MB} MiB ceiling");
}

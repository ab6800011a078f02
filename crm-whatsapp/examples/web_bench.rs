//! Measures the WhatsApp Web engine against the local stand-in of WhatsApp
//! Web (the tests' page): memory with 1 and 5 sessions open, and messages
//! per second through one session (one at a time, and 8 in flight).
//!
//! ```sh
//! cargo run --release -p crm-whatsapp --features whatsapp-web --example web_bench
//! ```
//!
//! `CRM_BENCH_CHROMIUM` names the Chromium binary (default `chromium`),
//! `CRM_BENCH_MESSAGES` the messages per run (default 1000),
//! `CRM_BENCH_CHROMIUM_ARGS` extra Chromium flags (space-separated) to
//! compare settings.

#[path = "../tests/support/web_page.rs"]
mod web_page;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_core::{Channel, Crm, MemoryStore, NewChannel};
use crm_whatsapp::web::{PINNED_VERSION, SessionState, WebEngine, WebFactory, own_rss};
use serde_json::json;

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let chromium = std::env::var("CRM_BENCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let messages: usize = std::env::var("CRM_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let dir = std::env::temp_dir().join(format!("crm-waweb-bench-{}", std::process::id()));
    let page = web_page::FakeWhatsApp::start(PINNED_VERSION).await;
    let mut builder =
        WebEngine::builder().chromium(chromium).data_dir(&dir).url(page.url()).stagger(Duration::from_millis(500));
    // `CRM_BENCH_CHROMIUM_ARGS`: extra Chromium flags (space-separated), to compare settings.
    for arg in std::env::var("CRM_BENCH_CHROMIUM_ARGS").unwrap_or_default().split_whitespace() {
        builder = builder.chromium_arg(arg);
    }
    let engine = builder.build()?;
    let crm = Crm::builder()
        .store(Arc::new(MemoryStore::new()))
        .messenger_factory(Arc::new(WebFactory::new(engine.clone())))
        .build()?;
    engine.attach(crm.clone());
    let account = crm.create_account("Bench").await?.id;
    let rss_before = own_rss();
    println!("process RSS before any session: {:.0} MiB", rss_before as f64 / MIB);

    let mut channels: Vec<Channel> = Vec::new();
    for n in [1usize, 5] {
        while channels.len() < n {
            let input = NewChannel {
                kind: "whatsapp-web".into(),
                name: format!("bench {}", channels.len()),
                ..Default::default()
            };
            let channel = crm.create_channel(account, input).await?;
            engine.open(&channel).await?;
            channels.push(channel);
        }
        page.command(json!({ "op": "pair", "phone": "5511900000000" }));
        for c in &channels {
            wait_connected(&engine, c, &page).await?;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let m = engine.chromium_memory();
        println!(
            "{n} session(s): {} Chromium processes, RSS sum {:.0} MiB ({:.0} MiB per session), PSS sum {:.0} MiB ({:.0} MiB per session); crm process RSS {:.0} MiB",
            m.processes,
            m.rss_bytes as f64 / MIB,
            m.rss_bytes as f64 / MIB / n as f64,
            m.pss_bytes as f64 / MIB,
            m.pss_bytes as f64 / MIB / n as f64,
            own_rss() as f64 / MIB,
        );
        for c in &channels {
            let s = engine.session_memory(c.id);
            println!("  session {}: {} processes, PSS {:.0} MiB", c.id, s.processes, s.pss_bytes as f64 / MIB);
        }
    }

    let id = channels[0].id;
    let start = Instant::now();
    for i in 0..messages {
        engine.send_text(id, "5511987654321@c.us", &format!("message {i}")).await?;
    }
    let one = messages as f64 / start.elapsed().as_secs_f64();
    println!("one at a time: {messages} messages in {:.2} s = {one:.0} messages/s", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for i in 0..messages {
        let permit = sem.clone().acquire_owned().await?;
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let r = engine.send_text(id, "5511987654321@c.us", &format!("parallel {i}")).await;
            drop(permit);
            r
        }));
    }
    for t in tasks {
        t.await??;
    }
    let eight = messages as f64 / start.elapsed().as_secs_f64();
    println!("8 in flight: {messages} messages in {:.2} s = {eight:.0} messages/s", start.elapsed().as_secs_f64());
    println!("the page recorded {} sends", page.sent().len());

    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn wait_connected(
    engine: &WebEngine,
    channel: &Channel,
    page: &web_page::FakeWhatsApp,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match engine.status(channel.id).map(|s| s.state) {
            Some(SessionState::Connected) => return Ok(()),
            Some(SessionState::Pairing) => page.command(json!({ "op": "pair", "phone": "5511900000000" })),
            Some(SessionState::Failed { reason }) => return Err(reason.into()),
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(format!("session {} did not connect", channel.id).into());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

//! Campaign pacing through the WhatsApp Cloud channel: 10,000 messages sent
//! by two campaigns over one 5,000-contact audience (the second starts 10 s
//! after the first, so every contact gets two messages), through a local
//! stand-in for Meta's Graph API on 127.0.0.1, at the channel's configured
//! rate (`whatsapp-cloud`: 80/s, 6 s between two messages to one person).
//! The stand-in timestamps every message it accepts: the measured rate is
//! (accepted − 1) / (last − first), and every recipient's two messages must
//! be at least the pair interval apart. Takes about two minutes.
//!
//! ```text
//! cargo bench -p crm --bench campaign_pace --features sqlite,whatsapp-cloud
//! ```
//!
//! Env: `PACE_CONTACTS` (default 5000), `PACE_SECOND_AFTER_SECS` (default 10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::State;
use axum::routing::post;
use crm::secrets::{Credentials, Keyring, SecretKey};
use crm::workers::Runtime;
use crm::{Audience, CampaignState, Crm, NewCampaign, NewChannel, NewContact, NewTemplate, Store, Tag};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

async fn accept(State(seen): State<Seen>, axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    let n = {
        let mut s = seen.lock().unwrap();
        s.push((Instant::now(), to.clone()));
        s.len()
    };
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": to }],
        "messages": [{ "id": format!("wamid.bench{n:08}"), "message_status": "accepted" }]
    }))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let contacts = env_usize("PACE_CONTACTS", 5_000);
    let second_after = Duration::from_secs(env_usize("PACE_SECOND_AFTER_SECS", 10) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let seen: Seen = Arc::default();
        let app = axum::Router::new().route("/{version}/{phone}/messages", post(accept)).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = std::env::temp_dir().join(format!("crm-bench-pace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn Store> =
            crm::storage::connect(&format!("sqlite://{}/crm.db?mode=rwc", dir.display())).await.unwrap();
        let crm = Crm::builder()
            .store(store.clone())
            .messenger_factory(Arc::new(crm::whatsapp::CloudApiFactory::new().unwrap()))
            .keyring(Keyring::new(SecretKey::from_bytes("bench", [7; 32]).unwrap()))
            .build()
            .unwrap();
        let account = crm.create_account("Loja").await.unwrap().id;
        let mut credentials = Credentials::new();
        credentials.insert("access_token", "EAAG-bench");
        let channel = NewChannel {
            kind: "whatsapp-cloud".into(),
            name: "Loja".into(),
            provider_id: Some("1234567890".into()),
            settings: Some(json!({ "base_url": base })),
            credentials: Some(credentials),
            ..Default::default()
        };
        let channel = crm.create_channel(account, channel).await.unwrap();
        let rows: Vec<NewContact> = (0..contacts)
            .map(|i| NewContact {
                name: format!("Cliente {i}"),
                phone: format!("+55119{:08}", 10_000_000 + i),
                tags: vec!["promo".into()],
                ..Default::default()
            })
            .collect();
        for chunk in rows.chunks(5_000) {
            crm.import_contacts(account, chunk.to_vec()).await.unwrap();
        }
        let template = NewTemplate { name: "promo".into(), body: "Oi {{first_name}}!".into(), ..Default::default() };
        crm.create_template(account, template).await.unwrap();
        let input = |name: &str| NewCampaign {
            name: name.into(),
            channel_id: Some(channel.id),
            template: "promo".into(),
            language: None,
            variables: Default::default(),
            audience: Audience::Tag { tag: Tag::parse("promo").unwrap() },
            scheduled_at: None,
        };
        let a = crm.create_campaign(account, input("first")).await.unwrap();
        let b = crm.create_campaign(account, input("second")).await.unwrap();
        let (d, r, t) = (crm.dispatcher(), crm.campaign_runner(), crm.campaign_tracker());
        let (dop, rop, top) = (d.options(), r.options(), t.options());
        let runtime = Runtime::builder(store.clone())
            .event_worker(Arc::new(d), dop)
            .job_worker(Arc::new(r), rop)
            .event_worker(Arc::new(t), top)
            .build()
            .start()
            .await
            .unwrap();
        println!("{contacts} contacts; campaign 1 starts now, campaign 2 in {second_after:?}; channel rate 80/s");
        let started = Instant::now();
        crm.start_campaign(account, a.id).await.unwrap();
        tokio::time::sleep(second_after).await;
        crm.start_campaign(account, b.id).await.unwrap();
        let total = 2 * contacts;
        loop {
            let (va, vb) = (crm.get_campaign(account, a.id).await.unwrap(), crm.get_campaign(account, b.id).await.unwrap());
            if va.campaign.state == CampaignState::Completed && vb.campaign.state == CampaignState::Completed {
                println!("both completed: {:?} / {:?}", va.counters, vb.counters);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(900), "not done: {:?} {:?}", va.counters, vb.counters);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        runtime.shutdown(Duration::from_secs(5)).await;

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), total, "every message reached the provider once");
        let (first, last) = (seen[0].0, seen[seen.len() - 1].0);
        let span = (last - first).as_secs_f64();
        let rate = (seen.len() - 1) as f64 / span;
        let steady: Vec<&(Instant, String)> =
            seen.iter().filter(|(t, _)| *t - first >= Duration::from_secs(1)).collect();
        let steady_rate = (steady.len() - 1) as f64 / (last - steady[0].0).as_secs_f64();
        let mut per: HashMap<&str, Vec<Instant>> = HashMap::new();
        for (t, to) in &seen {
            per.entry(to.as_str()).or_default().push(*t);
        }
        let pair = Duration::from_secs(6);
        let mut min_gap = Duration::MAX;
        let mut violations = 0;
        for times in per.values() {
            for w in times.windows(2) {
                let gap = w[1] - w[0];
                min_gap = min_gap.min(gap);
                violations += usize::from(gap < pair);
            }
        }
        let twice = per.values().filter(|t| t.len() == 2).count();
        println!("| messages | recipients (twice) | span | measured rate (all) | steady rate (after 1 s) | pair-rate violations | smallest gap to one recipient |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} ({twice}) | {span:.1} s | {rate:.2}/s = {:.2} % of 80 | {steady_rate:.2}/s = {:.2} % | {violations} | {:.1} s |",
            seen.len(),
            per.len(),
            rate / 80.0 * 100.0,
            steady_rate / 80.0 * 100.0,
            min_gap.as_secs_f64()
        );
        std::fs::remove_dir_all(dir).ok();
    });
}

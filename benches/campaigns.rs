//! Campaign planning and rendering: how fast an audience becomes recipients.
//!
//! - `plan_render/1000_contacts`: [`plan_contact`] over 1,000 contacts (the
//!   opt-out and WhatsApp checks and the template rendered for each): the
//!   planner's per-recipient CPU work.
//! - `first_batch/{memory,sqlite}_100k`: `Crm::plan_campaign_batch` on a
//!   fresh campaign over a 100,000-contact tag audience (reading the
//!   contacts, planning, storing 1,000 recipient rows in one transaction):
//!   what stands between "start" and the first message queued.
//! - `full_plan/sqlite_100k`: every batch of that audience, one after the other.
//!
//! `cargo bench -p crm --bench campaigns --features sqlite`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crm::domain::campaign::plan_contact;
use crm::{
    AccountId, Audience, Clock, Contact, Crm, MemoryStore, NewCampaign, NewContact, NewTemplate, RecordingFactory,
    Store, Tag, Template, Variables,
};

const AUDIENCE: usize = 100_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn new_contact(i: usize) -> NewContact {
    NewContact {
        name: format!("Cliente Número {i}"),
        phone: format!("+55119{:08}", 10_000_000 + i),
        email: i.is_multiple_of(2).then(|| format!("c{i}@example.com")),
        tags: vec!["vip".into()],
        ..Default::default()
    }
}

fn template_input() -> NewTemplate {
    NewTemplate {
        name: "black_friday".into(),
        body: "Olá {{first_name}}! A Black Friday da {{loja}} começou: {{oferta}} até domingo. Responda SAIR para não receber mais.".into(),
        ..Default::default()
    }
}

fn variables() -> Variables {
    [("loja".to_owned(), "Loja da Ana".to_owned()), ("oferta".to_owned(), "30% em tudo".to_owned())].into()
}

fn plan_render(c: &mut Criterion) {
    let account = AccountId::new();
    let now = crm::SystemClock.now();
    let contacts: Vec<Contact> = (0..1000).map(|i| Contact::new(account, new_contact(i), now).unwrap()).collect();
    let template = Template::new(account, template_input(), now).unwrap();
    let vars = variables();
    let mut g = c.benchmark_group("plan_render");
    g.throughput(Throughput::Elements(contacts.len() as u64));
    g.bench_function("1000_contacts", |b| {
        b.iter(|| {
            let planned: Vec<_> =
                black_box(&contacts).iter().map(|ct| plan_contact(ct, black_box(&template), &vars)).collect();
            planned
        })
    });
    g.finish();
}

async fn setup(store: Arc<dyn Store>) -> (Crm, AccountId) {
    let crm = Crm::builder().store(store).messenger_factory(Arc::new(RecordingFactory::default())).build().unwrap();
    let account = crm.create_account("Loja").await.unwrap().id;
    let channel = crm::NewChannel { kind: "recording".into(), name: "Loja".into(), ..Default::default() };
    crm.create_channel(account, channel).await.unwrap();
    crm.create_template(account, template_input()).await.unwrap();
    for chunk in (0..AUDIENCE).collect::<Vec<_>>().chunks(5_000) {
        crm.import_contacts(account, chunk.iter().map(|i| new_contact(*i)).collect()).await.unwrap();
    }
    (crm, account)
}

async fn new_campaign(crm: &Crm, account: AccountId) -> crm::CampaignId {
    let input = NewCampaign {
        name: "bench".into(),
        channel_id: None,
        template: "black_friday".into(),
        language: None,
        variables: variables(),
        audience: Audience::Tag { tag: Tag::parse("vip").unwrap() },
        scheduled_at: None,
    };
    crm.create_campaign(account, input).await.unwrap().id
}

fn first_batch(c: &mut Criterion) {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("crm-bench-campaigns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let sqlite: Arc<dyn Store> = rt.block_on(crm::storage::connect(&url)).unwrap();
    let worlds = [("memory_100k", rt.block_on(setup(memory))), ("sqlite_100k", rt.block_on(setup(sqlite)))];
    let mut g = c.benchmark_group("first_batch");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1000));
    for (name, (crm, account)) in &worlds {
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let id = new_campaign(crm, *account).await;
                    let started = std::time::Instant::now();
                    let n = crm.plan_campaign_batch(*account, id).await.unwrap();
                    total += started.elapsed();
                    assert_eq!(n, 1000);
                }
                total
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("full_plan");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(AUDIENCE as u64));
    let (crm, account) = &worlds[1].1;
    g.bench_function("sqlite_100k", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let id = new_campaign(crm, *account).await;
                let started = std::time::Instant::now();
                let mut planned = 0;
                loop {
                    let n = crm.plan_campaign_batch(*account, id).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    planned += n;
                }
                total += started.elapsed();
                assert_eq!(planned, AUDIENCE);
            }
            total
        })
    });
    g.finish();
    std::fs::remove_dir_all(dir).ok();
}

criterion_group!(benches, plan_render, first_batch);
criterion_main!(benches);

//! Store benchmarks: contact insert and 1,000-contact import through the
//! ports, each beside a raw-sqlx single-table baseline, and a tag-filtered
//! first page over 100k contacts; on a SQLite file and, when
//! `CRM_TEST_DATABASE_URL` is set, on PostgreSQL.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use crm_core::{
    AccountId, Clock, Contact, ContactQuery, Event, EventType, NewContact, PageRequest, Store, SystemClock, Tag,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT_PHONE: AtomicUsize = AtomicUsize::new(0);

fn contacts(account: AccountId, n: usize, tag_every: usize) -> (Vec<Contact>, Vec<Event>) {
    let now = SystemClock.now();
    let cs: Vec<Contact> = (0..n)
        .map(|i| {
            let k = NEXT_PHONE.fetch_add(1, Ordering::Relaxed);
            let tags = if tag_every > 0 && i % tag_every == 0 { vec!["vip".to_string()] } else { vec![] };
            let input = NewContact {
                name: format!("Contato {k}"),
                phone: format!("+55119{:08}", 10_000_000 + k),
                tags,
                ..Default::default()
            };
            Contact::new(account, input, now).unwrap()
        })
        .collect();
    let es = cs.iter().map(|c| Event::new(account, EventType::CONTACT_CREATED, &json!({"id": c.id}), now)).collect();
    (cs, es)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The port benchmarks for one backend.
fn port_benches(c: &mut Criterion, rt: &tokio::runtime::Runtime, backend: &str, store: Arc<dyn Store>) {
    let account = AccountId::new();
    let mut g = c.benchmark_group("insert_contact");
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.bench_function(format!("{backend}/port"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let (cs, es) = contacts(account, iters as usize, 0);
                let start = Instant::now();
                for (c, e) in cs.iter().zip(&es) {
                    store.insert_contact(c, e).await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("import_1000");
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    g.bench_function(format!("{backend}/port"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (cs, es) = contacts(account, 1000, 10);
                    let start = Instant::now();
                    let report = store.import_contacts(account, &cs, &es).await.unwrap();
                    total += start.elapsed();
                    assert_eq!(report.imported, 1000);
                }
                total
            }
        })
    });
    g.finish();

    // 100k contacts in a fresh account, every 10th tagged "vip".
    let big = AccountId::new();
    rt.block_on(async {
        for _ in 0..10 {
            let (cs, es) = contacts(big, 10_000, 10);
            store.import_contacts(big, &cs, &es).await.unwrap();
        }
    });
    let query = ContactQuery {
        tag: Some(Tag::parse("vip").unwrap()),
        page: PageRequest::first(50).unwrap(),
        ..Default::default()
    };
    let mut g = c.benchmark_group("tag_page_50_of_100k");
    g.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.bench_function(format!("{backend}/port"), |b| {
        b.to_async(rt).iter(|| {
            let store = store.clone();
            let query = query.clone();
            async move {
                let page = store.list_contacts(big, &query).await.unwrap();
                assert_eq!(page.items.len(), 50);
            }
        })
    });
    g.finish();
}

fn sqlite(c: &mut Criterion) {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
    use std::str::FromStr;
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("crm-bench-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
    let store: Arc<dyn Store> = Arc::new(rt.block_on(crm_storage::SqliteStore::connect(&url)).unwrap());

    // Raw baseline: one plain INSERT per contact into a one-table schema, same pragmas.
    let raw = rt.block_on(async {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}/raw.db", dir.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await.unwrap();
        sqlx::query(
            "CREATE TABLE t (id BLOB PRIMARY KEY, account_id BLOB NOT NULL, name TEXT NOT NULL, phone TEXT NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool
    });
    let mut g = c.benchmark_group("insert_contact");
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.bench_function("sqlite/raw_sqlx", |b| {
        b.to_async(&rt).iter(|| {
            let pool = raw.clone();
            async move {
                sqlx::query("INSERT INTO t (id, account_id, name, phone) VALUES (?, ?, ?, ?)")
                    .bind(uuid::Uuid::now_v7())
                    .bind(uuid::Uuid::now_v7())
                    .bind("Contato")
                    .bind("+5511987654321")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        })
    });
    g.finish();
    let mut g = c.benchmark_group("import_1000");
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    g.bench_function("sqlite/raw_sqlx", |b| {
        b.to_async(&rt).iter(|| {
            let pool = raw.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                for _ in 0..1000 {
                    sqlx::query("INSERT INTO t (id, account_id, name, phone) VALUES (?, ?, ?, ?)")
                        .bind(uuid::Uuid::now_v7())
                        .bind(uuid::Uuid::now_v7())
                        .bind("Contato")
                        .bind("+5511987654321")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        })
    });
    g.finish();
    port_benches(c, &rt, "sqlite", store);
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("CRM_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED postgres benchmarks: set CRM_TEST_DATABASE_URL to run them");
        return;
    };
    let rt = runtime();
    let schema = format!("crm_bench_{}", uuid::Uuid::now_v7().simple());
    let store = rt.block_on(crm_storage::PgStore::connect_with_schema(&url, &schema)).unwrap();
    let pool = store.pool().clone();
    rt.block_on(
        sqlx::query("CREATE TABLE raw_t (id uuid PRIMARY KEY, account_id uuid NOT NULL, name text NOT NULL, phone text NOT NULL)")
            .execute(&pool),
    )
    .unwrap();
    let mut g = c.benchmark_group("insert_contact");
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.bench_function("postgres/raw_sqlx", |b| {
        b.to_async(&rt).iter(|| {
            let pool = pool.clone();
            async move {
                sqlx::query("INSERT INTO raw_t (id, account_id, name, phone) VALUES ($1, $2, $3, $4)")
                    .bind(uuid::Uuid::now_v7())
                    .bind(uuid::Uuid::now_v7())
                    .bind("Contato")
                    .bind("+5511987654321")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        })
    });
    g.finish();
    let mut g = c.benchmark_group("import_1000");
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    g.bench_function("postgres/raw_sqlx", |b| {
        b.to_async(&rt).iter(|| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                for _ in 0..1000 {
                    sqlx::query("INSERT INTO raw_t (id, account_id, name, phone) VALUES ($1, $2, $3, $4)")
                        .bind(uuid::Uuid::now_v7())
                        .bind(uuid::Uuid::now_v7())
                        .bind("Contato")
                        .bind("+5511987654321")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        })
    });
    g.finish();
    port_benches(c, &rt, "postgres", Arc::new(store));
    rt.block_on(sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE"))).execute(&pool)).unwrap();
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);

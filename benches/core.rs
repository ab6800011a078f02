//! Core hot paths: template rendering, the in-memory GCRA limiter next to
//! `governor`'s keyed limiter, and (with feature `redis` and
//! `CRM_TEST_REDIS_URL` set) one Redis limiter round trip.
//!
//! `cargo bench --bench core --no-default-features --features redis`

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use crm::{GcraLimiter, MAX_TEXT_LEN, Quota, RateLimiter, Variables, render_lenient, render_strict};

const KEYS: usize = 10_000;
/// 100 million per second: more than a tight loop can check, so every check is
/// allowed and counted (the write path), for both limiters alike.
const PER_SECOND: u32 = 100_000_000;

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    }
}

fn vars(names: impl IntoIterator<Item = String>) -> Variables {
    names.into_iter().map(|n| (n.clone(), format!("value of {n}"))).collect()
}

/// About 1 KB of text with `n` distinct placeholders spread through it.
fn long_body(n: usize) -> String {
    let filler = "Seu pedido foi confirmado e será entregue em breve. ";
    let mut body = String::new();
    for i in 0..n {
        body.push_str(filler);
        body.push_str(&format!("{{{{var_{i}}}}} "));
    }
    while body.len() < 1024 {
        body.push_str("Obrigado! ");
    }
    body
}

fn templates(c: &mut Criterion) {
    let short = "Olá {{nome}}, seu pedido {{pedido}} chega em {{data}}.";
    let short_vars = vars(["nome", "pedido", "data"].map(String::from));
    let long = long_body(20);
    let long_vars = vars((0..20).map(|i| format!("var_{i}")));
    assert!(render_strict(&long, &long_vars, MAX_TEXT_LEN).is_ok(), "the long template must render");

    let mut g = c.benchmark_group("template_render");
    g.bench_function("strict/short_3_vars", |b| {
        b.iter(|| render_strict(black_box(short), black_box(&short_vars), MAX_TEXT_LEN))
    });
    g.bench_function("lenient/short_3_vars", |b| {
        b.iter(|| render_lenient(black_box(short), black_box(&short_vars), MAX_TEXT_LEN))
    });
    g.bench_function("strict/1kb_20_vars", |b| {
        b.iter(|| render_strict(black_box(&long), black_box(&long_vars), MAX_TEXT_LEN))
    });
    g.bench_function("lenient/1kb_20_vars", |b| {
        b.iter(|| render_lenient(black_box(&long), black_box(&long_vars), MAX_TEXT_LEN))
    });
    g.finish();
}

fn limiters(c: &mut Criterion) {
    let rt = runtime();
    let quota = match Quota::per_second(PER_SECOND) {
        Ok(q) => q,
        Err(e) => panic!("{e}"),
    };
    let gov_quota = governor::Quota::per_second(NonZeroU32::MIN.saturating_add(PER_SECOND - 1));
    let keys: Vec<String> = (0..KEYS).map(|i| format!("api-key:{i}")).collect();

    let mut g = c.benchmark_group("rate_limit_check");
    let gcra = GcraLimiter::default();
    g.bench_function("crm_gcra/hot_key", |b| {
        b.to_async(&rt).iter(|| async { gcra.check(black_box("api-key:hot"), &quota).await.map(|d| d.allowed) })
    });
    let gov: governor::DefaultKeyedRateLimiter<String> = governor::RateLimiter::keyed(gov_quota);
    let hot = "api-key:hot".to_owned();
    g.bench_function("governor_keyed/hot_key", |b| b.iter(|| gov.check_key(black_box(&hot)).is_ok()));

    let gcra = GcraLimiter::default();
    let mut i = 0usize;
    g.bench_function("crm_gcra/10k_keys", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % KEYS;
            let key = &keys[i];
            let (gcra, quota) = (&gcra, &quota);
            async move { gcra.check(black_box(key), quota).await.map(|d| d.allowed) }
        })
    });
    let gov: governor::DefaultKeyedRateLimiter<String> = governor::RateLimiter::keyed(gov_quota);
    let mut i = 0usize;
    g.bench_function("governor_keyed/10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            gov.check_key(black_box(&keys[i])).is_ok()
        })
    });
    g.finish();
    assert!(
        rt.block_on(gcra.check("api-key:0", &quota)).is_ok_and(|d| d.allowed),
        "the quota must not be exhausted by the benchmark"
    );
    assert!(gov.check_key(&keys[0]).is_ok(), "the governor quota must not be exhausted by the benchmark");
}

#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    let Some(url) = std::env::var("CRM_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("SKIPPED redis_limiter bench: set CRM_TEST_REDIS_URL to run it");
        return;
    };
    let rt = runtime();
    let limiter = match rt.block_on(crm::storage::RedisLimiter::connect(&url)) {
        Ok(l) => l.with_prefix("crm-bench:rl:"),
        Err(e) => panic!("cannot connect to CRM_TEST_REDIS_URL: {e}"),
    };
    let quota = match Quota::per_second(PER_SECOND) {
        Ok(q) => q,
        Err(e) => panic!("{e}"),
    };
    let mut g = c.benchmark_group("rate_limit_check");
    g.bench_function("crm_redis/hot_key", |b| {
        b.to_async(&rt).iter(|| async { limiter.check(black_box("api-key:hot"), &quota).await.map(|d| d.allowed) })
    });
    g.finish();
}

#[cfg(not(feature = "redis"))]
fn redis(_: &mut Criterion) {
    eprintln!("SKIPPED redis_limiter bench: build with --features redis");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

criterion_group! { name = benches; config = config(); targets = templates, limiters, redis }
criterion_main!(benches);

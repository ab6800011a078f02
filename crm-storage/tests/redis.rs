//! `RedisLimiter` against a real Redis (`CRM_TEST_REDIS_URL`, e.g.
//! `redis://127.0.0.1:6379`): the whole rate limiter conformance suite, plus
//! what only Redis can show — TTLs on every key, atomicity across separate
//! connections, and failures of an unreachable or hung server.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // unwrap is fine in tests

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_core::testing::{rate_limiter as suite, service_url};
use crm_core::{Error, HealthCheck, HealthStatus, Quota, RateLimiter};
use crm_storage::RedisLimiter;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

const VAR: &str = "CRM_TEST_REDIS_URL";

async fn limiter(test: &str) -> Option<RedisLimiter> {
    let url = service_url(VAR, test)?;
    Some(RedisLimiter::connect(&url).await.unwrap_or_else(|e| panic!("{test}: cannot connect to {VAR}: {e}")))
}

async fn raw(test: &str) -> Option<ConnectionManager> {
    let url = service_url(VAR, test)?;
    let client = redis::Client::open(url).unwrap();
    Some(ConnectionManager::new(client).await.unwrap())
}

fn unique_prefix() -> String {
    format!("crm-test:{}:", uuid::Uuid::now_v7())
}

async fn keys_under(conn: &mut ConnectionManager, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut iter: redis::AsyncIter<'_, String> = conn.scan_match(format!("{prefix}*")).await.unwrap();
    while let Some(k) = iter.next_item().await {
        keys.push(k.unwrap());
    }
    keys
}

#[tokio::test]
async fn redis_limiter_passes_the_suite() {
    let Some(limiter) = limiter("redis_limiter_passes_the_suite").await else { return };
    suite::run_all(&limiter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limiter_is_exact_under_parallel_tasks() {
    let Some(limiter) = limiter("redis_limiter_is_exact_under_parallel_tasks").await else { return };
    suite::exact_under_parallel_tasks(Arc::new(limiter)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_separate_connections_share_the_quota_exactly() {
    let test = "two_instances_on_separate_connections_share_the_quota_exactly";
    let (Some(a), Some(b)) = (limiter(test).await, limiter(test).await) else { return };
    suite::exact_across_instances(&a, &b).await;
    // And from parallel tasks, 25 on each instance.
    let q = Quota::new(20, Duration::from_secs(60)).unwrap();
    let key = format!("crm-test:across:{}", uuid::Uuid::now_v7());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let l = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = key.clone();
        tasks.spawn(async move { RateLimiter::check(&l, &key, &q).await.unwrap().allowed });
    }
    let allowed = tasks.join_all().await.into_iter().filter(|a| *a).count();
    assert_eq!(allowed, 20);
}

#[tokio::test]
async fn every_key_written_has_a_ttl_and_denials_write_nothing() {
    let test = "every_key_written_has_a_ttl_and_denials_write_nothing";
    let (Some(limiter), Some(mut conn)) = (limiter(test).await, raw(test).await) else { return };
    let prefix = unique_prefix();
    let limiter = limiter.with_prefix(prefix.clone());
    suite::run_all(&limiter).await;
    let keys = keys_under(&mut conn, &prefix).await;
    assert!(!keys.is_empty(), "the suite wrote no key under {prefix}");
    for k in &keys {
        let pttl: i64 = conn.pttl(k).await.unwrap();
        // -2: expired meanwhile (fine); -1: no TTL (never allowed).
        assert!(pttl > 0 || pttl == -2, "{k} has PTTL {pttl}");
        assert!(pttl <= 60_000, "{k} has PTTL {pttl} ms, longer than any suite period");
        if pttl > 0 {
            let tat: Option<String> = conn.get(k).await.unwrap();
            if let Some(tat) = tat {
                assert!(tat.parse::<i64>().is_ok(), "{k} holds {tat:?}, not an integer TAT");
            }
        }
    }

    // TTL equals how far the TAT lies ahead, and a denial leaves the key alone.
    let q = Quota::new(2, Duration::from_secs(10)).unwrap();
    let key = "ttl";
    let full = limiter.redis_key(key);
    let d = RateLimiter::check(&limiter, key, &q).await.unwrap();
    let pttl: i64 = conn.pttl(&full).await.unwrap();
    assert!((4_900..=5_000).contains(&pttl), "PTTL {pttl} ms after one check, reset_after {:?}", d.reset_after);
    RateLimiter::check(&limiter, key, &q).await.unwrap();
    let before: String = conn.get(&full).await.unwrap();
    let pttl_before: i64 = conn.pttl(&full).await.unwrap();
    assert!((9_900..=10_000).contains(&pttl_before), "PTTL {pttl_before} ms after the whole burst");
    for cost in [1, 2, 3] {
        assert!(!limiter.check_n(key, &q, cost).await.unwrap().allowed);
    }
    let after: String = conn.get(&full).await.unwrap();
    assert_eq!(before, after, "a denied check rewrote the TAT");
    let pttl_after: i64 = conn.pttl(&full).await.unwrap();
    assert!(pttl_after <= pttl_before && pttl_after > 0, "a denial changed the TTL: {pttl_before} → {pttl_after}");
    let _: () = conn.del(&full).await.unwrap();
}

#[tokio::test]
async fn prefixes_namespace_keys() {
    let test = "prefixes_namespace_keys";
    let (Some(a), Some(b), Some(mut conn)) = (limiter(test).await, limiter(test).await, raw(test).await) else {
        return;
    };
    let (pa, pb) = (unique_prefix(), unique_prefix());
    let (a, b) = (a.with_prefix(pa.clone()), b.with_prefix(pb.clone()));
    let q = Quota::new(1, Duration::from_secs(5)).unwrap();
    assert!(RateLimiter::check(&a, "same", &q).await.unwrap().allowed);
    assert!(!RateLimiter::check(&a, "same", &q).await.unwrap().allowed);
    assert!(RateLimiter::check(&b, "same", &q).await.unwrap().allowed, "prefixes did not separate the key");
    assert_eq!(keys_under(&mut conn, &pa).await, [format!("{pa}same")]);
    assert_eq!(keys_under(&mut conn, &pb).await, [format!("{pb}same")]);
    let default = limiter(test).await.unwrap();
    assert_eq!(default.prefix(), "crm:rl:");
}

#[tokio::test]
async fn script_is_reloaded_after_a_script_flush() {
    let test = "script_is_reloaded_after_a_script_flush";
    let (Some(limiter), Some(mut conn)) = (limiter(test).await, raw(test).await) else { return };
    let q = Quota::per_second(5).unwrap();
    let key = format!("crm-test:flush:{}", uuid::Uuid::now_v7());
    assert!(RateLimiter::check(&limiter, &key, &q).await.unwrap().allowed);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    let d = RateLimiter::check(&limiter, &key, &q).await.unwrap();
    assert!(d.allowed && d.remaining == 3, "{d:?}");
}

#[tokio::test]
async fn health_is_healthy_against_a_live_redis() {
    let Some(limiter) = limiter("health_is_healthy_against_a_live_redis").await else { return };
    assert_eq!(limiter.name(), "redis");
    let h = HealthCheck::check(&limiter).await;
    assert_eq!(h.status, HealthStatus::Healthy, "{h:?}");
    assert!(h.detail.is_none());
}

// The tests below need no Redis: they talk to closed or silent local ports.

#[tokio::test]
async fn a_dead_redis_is_a_transient_storage_error_without_the_password() {
    let start = Instant::now();
    let err = RedisLimiter::connect("redis://user:s3cret@127.0.0.1:1").await.unwrap_err();
    assert!(matches!(err, Error::Storage { transient: true, .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(start.elapsed() < Duration::from_secs(10), "connect took {:?}", start.elapsed());
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cret"), "the password leaked: {shown}");

    // A limiter whose (lazy) connection never comes up fails each check the same way.
    let client = redis::Client::open("redis://user:s3cret@127.0.0.1:1").unwrap();
    let config = ConnectionManagerConfig::new().set_number_of_retries(1);
    let limiter = RedisLimiter::new(ConnectionManager::new_lazy_with_config(client, config).unwrap());
    let q = Quota::per_second(5).unwrap();
    let err = RateLimiter::check(&limiter, "k", &q).await.unwrap_err();
    assert!(matches!(err, Error::Storage { transient: true, .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret"));
    let h = HealthCheck::check(&limiter).await;
    assert_eq!(h.status, HealthStatus::Unhealthy, "{h:?}");
    assert!(!h.detail.unwrap_or_default().contains("s3cret"));
}

#[tokio::test]
async fn health_of_a_hung_redis_is_unhealthy_within_its_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = redis::Client::open(format!("redis://{addr}")).unwrap();
    let manager = ConnectionManager::new_lazy_with_config(client, ConnectionManagerConfig::new()).unwrap();
    let limiter = RedisLimiter::new(manager).with_health_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let h = HealthCheck::check(&limiter).await;
    let took = start.elapsed();
    assert_eq!(h.status, HealthStatus::Unhealthy, "{h:?}");
    assert!(took < Duration::from_secs(2), "health took {took:?} with a 300 ms timeout");
    assert!(h.detail.unwrap_or_default().contains("timed out"));
    server.abort();
}

//! A [`RateLimiter`] shared by every process that talks to one Redis.

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RetryMethod, Script};
use std::fmt;
use std::time::{Duration, Instant};

use crm_core::{Decision, Error, Health, HealthCheck, Quota, RateLimiter, Result};

/// The generic cell rate algorithm, the same as `GcraLimiter`'s, in one
/// script so a check is atomic across every client of the Redis server.
///
/// Time comes from the server (`TIME`, in microseconds, exact in a Lua
/// double until the year 2255). The key holds the theoretical arrival time
/// (TAT) as an integer and always carries a `PX` TTL equal to how far the TAT
/// lies ahead (rounded up), so it disappears once the key is back to full
/// capacity. Denials write nothing.
///
/// KEYS[1] key; ARGV: emission interval µs, period µs, cost, limit.
/// Returns {allowed 0|1, remaining, reset_after µs, retry_after µs or -1}.
const GCRA_LUA: &str = r"
local t = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
if tat < now then tat = now end
local function remaining(at)
  local r = math.floor((period - (at - now)) / t)
  if r < 0 then return 0 end
  if r > limit then return limit end
  return r
end
if cost > limit then
  return {0, remaining(tat), tat - now, -1}
end
local new_tat = tat + t * cost
if new_tat - now > period then
  return {0, remaining(tat), tat - now, new_tat - period - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ttl_ms))
return {1, remaining(new_tat), new_tat - now, -1}
";

/// Longest period the script handles exactly (2^50 µs, about 35 years): TATs
/// stay far below 2^53, where Lua's doubles stop being exact integers.
const MAX_PERIOD_MICROS: u64 = 1 << 50;

/// GCRA over Redis: one atomic Lua script per check (sent by SHA, loaded on
/// `NOSCRIPT`), so the quota holds across every process sharing the server.
///
/// Time is the Redis server's, at microsecond resolution; keys are
/// `prefix + key` (default prefix `crm:rl:`) and expire once back to full
/// capacity. Errors are [`Error::Storage`], transient for I/O, timeouts and
/// lost connections.
///
/// ```no_run
/// # async fn demo() -> crm_core::Result<()> {
/// use crm_core::{Quota, RateLimiter};
/// use crm_storage::RedisLimiter;
/// let limiter = RedisLimiter::connect("redis://127.0.0.1:6379").await?.with_prefix("myapp:rl:");
/// let decision = limiter.check("api-key:42", &Quota::per_minute(600)?).await?;
/// if !decision.allowed {
///     println!("retry in {:?}", decision.retry_after);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisLimiter {
    manager: ConnectionManager,
    script: Script,
    prefix: String,
    health_timeout: Duration,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The manager's connection info may hold credentials; never print it.
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("health_timeout", &self.health_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// The key prefix unless [`RedisLimiter::with_prefix`] sets another.
    pub const DEFAULT_PREFIX: &str = "crm:rl:";

    /// Connects to `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` where TLS is compiled in), failing fast when the server is
    /// unreachable.
    ///
    /// The connection reconnects by itself; each attempt times out after 2 s,
    /// each command after 1 s. For other settings build a
    /// [`ConnectionManager`] and use [`RedisLimiter::new`].
    ///
    /// [`Error::Config`] when the URL is invalid (the message never contains
    /// the URL); [`Error::Storage`] (transient) when Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| Error::Config {
            message: format!("invalid Redis URL for the rate limiter: {}", e.category()),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2);
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| storage_error("cannot connect to Redis", e))?;
        Ok(Self::new(manager))
    }

    /// A limiter over an existing connection (which may be lazy).
    pub fn new(manager: ConnectionManager) -> Self {
        Self {
            manager,
            script: Script::new(GCRA_LUA),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            health_timeout: Duration::from_secs(2),
        }
    }

    /// Namespaces every key with `prefix` instead of `crm:rl:`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds the health probe's `PING` (default 2 s).
    pub fn with_health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key that holds `key`'s state.
    pub fn redis_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }
}

/// Maps a client error to [`Error::Storage`]: transient for I/O, timeouts,
/// dropped connections and busy or loading servers; permanent for bad
/// credentials, configuration and script errors. The URL is never part of it.
fn storage_error(context: &str, e: RedisError) -> Error {
    let transient = match e.kind() {
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig => false,
        ErrorKind::Io => true,
        _ => e.is_timeout() || e.is_connection_dropped() || !matches!(e.retry_method(), RetryMethod::NoRetry),
    };
    Error::storage(format!("{context}: {}", e.category()), transient, e)
}

fn micros(v: i64) -> Duration {
    Duration::from_micros(u64::try_from(v).unwrap_or(0))
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check_n(&self, key: &str, quota: &Quota, cost: u32) -> Result<Decision> {
        if cost == 0 {
            return Err(Error::validation("cost", "must be at least 1"));
        }
        if quota.limit == 0 || quota.period < Duration::from_millis(1) {
            return Err(Error::validation("quota", "limit must be ≥ 1 and period ≥ 1 ms"));
        }
        let period = u64::try_from(quota.period.as_micros())
            .ok()
            .filter(|p| *p <= MAX_PERIOD_MICROS)
            .ok_or_else(|| Error::validation("quota", "period must be at most 35 years for the Redis limiter"))?;
        let interval = (period / u64::from(quota.limit)).max(1);
        let mut conn = self.manager.clone();
        let (allowed, remaining, reset_after, retry_after): (i64, i64, i64, i64) = self
            .script
            .key(self.redis_key(key))
            .arg(interval)
            .arg(period)
            .arg(cost)
            .arg(quota.limit)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| storage_error("rate limit check failed", e))?;
        Ok(Decision {
            allowed: allowed == 1,
            limit: quota.limit,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(quota.limit).min(quota.limit),
            reset_after: micros(reset_after),
            retry_after: (retry_after >= 0).then(|| micros(retry_after)),
        })
    }
}

#[async_trait]
impl HealthCheck for RedisLimiter {
    fn name(&self) -> &str {
        "redis"
    }

    /// `PING`, bounded by the health timeout.
    async fn check(&self) -> Health {
        let start = Instant::now();
        let mut conn = self.manager.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.health_timeout, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => Health::healthy(start.elapsed()),
            Ok(Err(e)) => Health::unhealthy(start.elapsed(), format!("PING failed: {}", e.category())),
            Err(_) => Health::unhealthy(start.elapsed(), format!("PING timed out after {:?}", self.health_timeout)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is fine in tests
mod tests {
    use super::*;

    #[tokio::test]
    async fn zero_cost_and_bad_quotas_fail_without_a_round_trip() {
        // A lazy manager to a closed port: any round trip would be an I/O error.
        let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
        let manager = ConnectionManager::new_lazy_with_config(client, ConnectionManagerConfig::new()).unwrap();
        let limiter = RedisLimiter::new(manager);
        let q = Quota::per_second(5).unwrap();
        assert!(matches!(limiter.check_n("k", &q, 0).await, Err(Error::Validation { .. })));
        let bad = [
            Quota { limit: 0, period: Duration::from_secs(1) },
            Quota { limit: 1, period: Duration::from_micros(999) },
            Quota { limit: 1, period: Duration::from_secs(36 * 366 * 86_400) },
        ];
        for q in bad {
            assert!(matches!(RateLimiter::check(&limiter, "k", &q).await, Err(Error::Validation { .. })), "{q:?}");
        }
    }

    #[tokio::test]
    async fn keys_are_prefixed_and_debug_hides_the_connection() {
        let client = redis::Client::open("redis://user:s3cret@127.0.0.1:1").unwrap();
        let manager = ConnectionManager::new_lazy_with_config(client, ConnectionManagerConfig::new()).unwrap();
        let limiter = RedisLimiter::new(manager);
        assert_eq!(limiter.redis_key("ip:1"), "crm:rl:ip:1");
        let limiter = limiter.with_prefix("app:");
        assert_eq!(limiter.prefix(), "app:");
        assert_eq!(limiter.redis_key("ip:1"), "app:ip:1");
        assert!(!format!("{limiter:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn an_invalid_url_is_a_config_error_without_the_url() {
        let err = RedisLimiter::connect("http://user:s3cret@host").await.unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        assert!(!format!("{err:?}").contains("s3cret"));
    }
}

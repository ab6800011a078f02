//! When failed deliveries are tried again.

use std::time::Duration;

use crm_core::{Error, Result};

/// The longest `Retry-After` honoured (a receiver cannot park a delivery for longer).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The delays between attempts: attempt 1 is made at once, attempt `n + 1`
/// waits `delays[n - 1]` (with ±`jitter` of random spread) after attempt
/// `n` failed; past the last delay the delivery fails. The default is
/// Svix's: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        let secs = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
        Self { delays: secs.into_iter().map(Duration::from_secs).collect(), jitter: 0.1 }
    }
}

impl RetrySchedule {
    /// A schedule of these delays (at most 50) with `jitter` (0.0–0.5) of spread.
    /// [`Error::Validation`] on `retry_schedule` otherwise.
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Result<Self> {
        if delays.len() > 50 || !(0.0..=0.5).contains(&jitter) {
            return Err(Error::validation("retry_schedule", "at most 50 delays and a jitter between 0 and 0.5"));
        }
        Ok(Self { delays, jitter })
    }

    /// Parses a comma-separated list of delays in seconds (`5,300,1800`).
    pub fn parse_secs(list: &str) -> Result<Self> {
        let delays = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().map(Duration::from_secs))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::validation("retry_schedule", "must be delays in whole seconds separated by commas"))?;
        Self::new(delays, 0.1)
    }

    /// The same delays without jitter (tests on a manual clock).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = 0.0;
        self
    }

    /// Attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// The nominal delays.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// After failed attempt `attempt` (1-based): the wait before the next
    /// one, at least `retry_after` (capped at [`MAX_RETRY_AFTER`]), or
    /// `None` when the attempts are used up.
    pub fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let nominal = *self.delays.get(usize::try_from(attempt.checked_sub(1)?).ok()?)?;
        let jittered = if self.jitter > 0.0 {
            let mut b = [0u8; 8];
            let unit = match getrandom::fill(&mut b) {
                Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
                Err(_) => 0.5,
            };
            Duration::from_secs_f64(nominal.as_secs_f64() * (1.0 + self.jitter * (2.0 * unit - 1.0)))
        } else {
            nominal
        };
        Some(jittered.max(retry_after.map_or(Duration::ZERO, |r| r.min(MAX_RETRY_AFTER))))
    }
}

/// Reads a `Retry-After` header value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_and_retry_after() {
        let s = RetrySchedule::default().without_jitter();
        assert_eq!(s.max_attempts(), 8);
        let got: Vec<u64> = (1..=7).filter_map(|a| s.next_delay(a, None)).map(|d| d.as_secs()).collect();
        assert_eq!(got, [5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
        assert_eq!(s.next_delay(8, None), None, "attempts used up");
        assert_eq!(s.next_delay(0, None), None);
        assert_eq!(s.next_delay(1, Some(Duration::from_secs(60))), Some(Duration::from_secs(60)));
        assert_eq!(s.next_delay(3, Some(Duration::from_secs(60))), Some(Duration::from_secs(1800)));
        assert_eq!(s.next_delay(1, Some(Duration::from_secs(10 * 86_400))), Some(MAX_RETRY_AFTER));
        let j = RetrySchedule::default();
        for _ in 0..50 {
            let d = j.next_delay(2, None).expect("delay").as_secs_f64();
            assert!((270.0..=330.0).contains(&d), "{d}");
        }
        assert_eq!(RetrySchedule::parse_secs("1, 2,3").expect("parse").delays().len(), 3);
        assert!(RetrySchedule::parse_secs("1,x").is_err());
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("t").to_utc();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

//! Serializing times without `core::fmt`.
//!
//! A page of 50 contacts writes 200–300 timestamps; chrono's serializer goes
//! through `Display` and the formatter's per-character writes, which showed
//! up as ~5 % of the CPU of a contact list in the load test's profile. These
//! functions write the exact text chrono's `Serialize` writes for a
//! `DateTime<Utc>` (RFC 3339, `Z`, the fraction in 0, 3, 6 or 9 digits,
//! whichever is shortest without loss) from integer arithmetic into a stack
//! buffer, and fall back to chrono outside years 0–9999 and on leap seconds.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// Longest text written here: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX: usize = 30;

/// Writes `t` as chrono would, or `None` when only chrono can (a year
/// outside 0–9999 or a leap second).
fn write(t: &DateTime<Utc>, buf: &mut [u8; MAX]) -> Option<usize> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let two = |buf: &mut [u8; MAX], at: usize, v: u32| {
        buf[at] = b'0' + (v / 10) as u8;
        buf[at + 1] = b'0' + (v % 10) as u8;
    };
    two(buf, 0, year / 100);
    two(buf, 2, year % 100);
    buf[4] = b'-';
    two(buf, 5, t.month());
    buf[7] = b'-';
    two(buf, 8, t.day());
    buf[10] = b'T';
    two(buf, 11, t.hour());
    buf[13] = b':';
    two(buf, 14, t.minute());
    buf[16] = b':';
    two(buf, 17, t.second());
    let mut len = 19;
    let (digits, mut fraction) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (3, nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        (6, nanos / 1_000)
    } else {
        (9, nanos)
    };
    if digits > 0 {
        buf[len] = b'.';
        for i in (0..digits).rev() {
            buf[len + 1 + i] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        len += 1 + digits;
    }
    buf[len] = b'Z';
    Some(len + 1)
}

/// `serialize_with` for a `DateTime<Utc>` field: chrono's text, written fast.
pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX];
    match write(t, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
        Some(text) => serializer.serialize_str(text),
        None => t.serialize(serializer),
    }
}

/// `serialize_with` for an `Option<DateTime<Utc>>` field (`null` when unset).
pub(crate) fn serialize_opt<S: Serializer>(t: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    #[derive(Serialize)]
    struct Fast(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    #[derive(Serialize)]
    struct FastOpt(#[serde(serialize_with = "serialize_opt")] Option<DateTime<Utc>>);

    fn same_as_chrono(t: DateTime<Utc>) {
        let chrono = serde_json::to_string(&t).expect("chrono");
        let fast = serde_json::to_string(&Fast(t)).expect("fast");
        assert_eq!(fast, chrono, "{t:?}");
        assert_eq!(serde_json::to_string(&FastOpt(Some(t))).expect("fast"), chrono);
    }

    #[test]
    fn matches_chronos_text_for_every_fraction_length() {
        let base = Utc.with_ymd_and_hms(2026, 11, 30, 9, 5, 7).single().expect("time");
        for nanos in [0, 1, 9, 10, 999, 1_000, 120_000, 999_999, 1_000_000, 7_000_000, 500_000_000, 999_999_999] {
            same_as_chrono(base + chrono::Duration::nanoseconds(nanos));
        }
        same_as_chrono(Utc::now());
    }

    #[test]
    fn matches_chrono_over_a_spread_of_dates() {
        // A deterministic walk over ~10,000 times from year 0 to 9999.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 315_537_897_599) as i64 - 62_167_219_200; // 0000-01-01 .. 9999-12-31
            let nanos = ((x >> 20) % 1_000_000_000) as u32;
            let nanos = match x % 4 {
                0 => 0,
                1 => nanos / 1_000_000 * 1_000_000,
                2 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            same_as_chrono(DateTime::from_timestamp(secs, nanos).expect("in range"));
        }
    }

    #[test]
    fn falls_back_to_chrono_outside_four_digit_years_and_on_leap_seconds() {
        let far = NaiveDate::from_ymd_opt(12_345, 6, 7).expect("date").and_hms_opt(1, 2, 3).expect("time").and_utc();
        same_as_chrono(far);
        let before = NaiveDate::from_ymd_opt(-44, 3, 15).expect("date").and_hms_opt(12, 0, 0).expect("time").and_utc();
        same_as_chrono(before);
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .expect("date")
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .expect("leap second")
            .and_utc();
        same_as_chrono(leap);
    }

    #[test]
    fn none_is_null() {
        assert_eq!(serde_json::to_string(&FastOpt(None)).expect("json"), "null");
    }
}

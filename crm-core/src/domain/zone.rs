//! Local time for business hours and send windows: an IANA time zone
//! (`America/Sao_Paulo`, `Europe/Lisbon`; daylight saving time applied from
//! the tz database built into the binary) or a fixed offset from UTC.
//!
//! Local times that do not exist (the hour skipped when clocks go forward)
//! resolve to the first local minute after the gap; local times that exist
//! twice (the hour repeated when clocks go back) resolve to the earlier one.

use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::{Error, Result};

/// A time zone: IANA by name, or a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// An IANA zone.
    Iana(Tz),
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
}

/// Parses an IANA zone name (`America/Sao_Paulo`, `UTC`), exactly as the tz
/// database spells it. [`Error::Validation`] on `field` otherwise.
///
/// ```
/// use crm_core::domain::zone::parse_time_zone;
/// assert!(parse_time_zone("time_zone", "America/Sao_Paulo").is_ok());
/// assert!(parse_time_zone("time_zone", "Mars/Olympus").is_err());
/// ```
pub fn parse_time_zone(field: &'static str, name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        Error::validation(
            field,
            format!("{name:?} is not an IANA time zone (e.g. America/Sao_Paulo, Europe/Lisbon, UTC)"),
        )
    })
}

impl Zone {
    /// The zone of a setting: the IANA `name` when given, else the fixed
    /// `offset_minutes` east of UTC. [`Error::Validation`] on `field` for an
    /// unknown name or an offset beyond ±14 h.
    pub fn from_setting(field: &'static str, name: Option<&str>, offset_minutes: i32) -> Result<Zone> {
        match name {
            Some(n) => parse_time_zone(field, n).map(Zone::Iana),
            None => FixedOffset::east_opt(offset_minutes.saturating_mul(60))
                .filter(|_| offset_minutes.abs() <= 14 * 60)
                .map(Zone::Fixed)
                .ok_or_else(|| Error::validation(field, "the UTC offset must be within ±14 hours")),
        }
    }

    /// [`Zone::from_setting`], except that a setting with neither a name
    /// nor an offset (offset 0) follows the account's zone, `account`
    /// (UTC when the account has none). Pin UTC with the name `UTC`.
    pub fn from_setting_or(
        field: &'static str,
        name: Option<&str>,
        offset_minutes: i32,
        account: Option<Tz>,
    ) -> Result<Zone> {
        match (name, offset_minutes, account) {
            (None, 0, Some(tz)) => Ok(Zone::Iana(tz)),
            _ => Zone::from_setting(field, name, offset_minutes),
        }
    }

    /// The local wall-clock time at `at`.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Iana(tz) => at.with_timezone(tz).naive_local(),
            Zone::Fixed(o) => at.with_timezone(o).naive_local(),
        }
    }

    /// The instant of a local wall-clock time: the earlier of two in a
    /// repeated hour, the end of the gap for a skipped one.
    pub fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        fn resolve<T: TimeZone>(tz: &T, local: NaiveDateTime) -> Option<DateTime<Utc>> {
            match tz.from_local_datetime(&local) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
                LocalResult::None => None,
            }
        }
        let at = |l| match self {
            Zone::Iana(tz) => resolve(tz, l),
            Zone::Fixed(o) => resolve(o, l),
        };
        // A gap is at most a few hours (usually one): walk to its end.
        (0..=24 * 60).find_map(|m| at(local + Duration::minutes(m))).unwrap_or_else(|| local.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Timelike};

    fn naive(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, 0).unwrap()
    }

    #[test]
    fn iana_zones_follow_daylight_saving_time() {
        let ny = Zone::from_setting("tz", Some("America/New_York"), 0).unwrap();
        // Winter: UTC-5; summer: UTC-4.
        assert_eq!(ny.local(Utc.with_ymd_and_hms(2026, 1, 15, 14, 0, 0).unwrap()).hour(), 9);
        assert_eq!(ny.local(Utc.with_ymd_and_hms(2026, 7, 15, 14, 0, 0).unwrap()).hour(), 10);
        // 2026-03-08 02:30 does not exist in New York: the gap ends at 03:00 EDT = 07:00 UTC.
        assert_eq!(ny.instant(naive(2026, 3, 8, 2, 30)), Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap());
        // 2026-11-01 01:30 exists twice: the earlier (EDT, UTC-4) = 05:30 UTC.
        assert_eq!(ny.instant(naive(2026, 11, 1, 1, 30)), Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap());
    }

    #[test]
    fn fixed_offsets_and_bad_settings() {
        let sp = Zone::from_setting("tz", None, -180).unwrap();
        assert_eq!(sp.instant(naive(2026, 12, 1, 9, 0)), Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap());
        assert!(matches!(Zone::from_setting("tz", Some("america/sao paulo"), 0), Err(Error::Validation { .. })));
        assert!(matches!(Zone::from_setting("tz", None, 15 * 60), Err(Error::Validation { .. })));
    }

    #[test]
    fn settings_without_zone_or_offset_follow_the_account() {
        let sp = Some(chrono_tz::America::Sao_Paulo);
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 11, 30, 0).unwrap();
        assert_eq!(Zone::from_setting_or("tz", None, 0, sp).unwrap().local(at).hour(), 8);
        assert_eq!(Zone::from_setting_or("tz", None, 0, None).unwrap().local(at).hour(), 11, "no account zone: UTC");
        assert_eq!(Zone::from_setting_or("tz", Some("UTC"), 0, sp).unwrap().local(at).hour(), 11, "UTC pinned");
        assert_eq!(Zone::from_setting_or("tz", None, 60, sp).unwrap().local(at).hour(), 12, "an offset wins");
        let lisbon = Zone::from_setting_or("tz", Some("Europe/Lisbon"), 0, sp).unwrap();
        assert_eq!(lisbon.local(at).hour(), 11, "a zone wins");
    }
}

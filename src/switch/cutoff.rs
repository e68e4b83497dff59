//! The daily cut-off: business days, and when each one closes.
//!
//! A business day runs from one cut-off to the next: with the default
//! 22:00 Europe/Paris, a payment at 21:59 Paris time belongs to that day, one
//! at 22:00 to the next. Days are numbered as days since 1970-01-01 (the
//! date of the day that ends at the cut-off). The time zone's rules come
//! from the IANA database (jiff: the system's copy, or the one built in),
//! so the cut-off stays at 22:00 local time across summer and winter time.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// When business days end.
#[derive(Debug, Clone)]
pub struct CutOff {
    zone: TimeZone,
    zone_name: String,
    at: Time,
}

impl CutOff {
    /// Business days ending at `at` (`"HH:MM"`) in time zone `zone` (an
    /// IANA name such as `Europe/Paris`).
    pub fn new(zone: &str, at: &str) -> Result<CutOff, String> {
        let tz = TimeZone::get(zone).map_err(|e| format!("unknown time zone {zone:?}: {e}"))?;
        let time: Time = at
            .parse()
            .map_err(|_| format!("cut-off time {at:?} is not HH:MM"))?;
        Ok(CutOff {
            zone: tz,
            zone_name: zone.to_owned(),
            at: time,
        })
    }

    /// 22:00 Europe/Paris.
    pub fn paris() -> CutOff {
        // The built-in database always has Europe/Paris.
        CutOff::new("Europe/Paris", "22:00").unwrap_or_else(|_| CutOff {
            zone: TimeZone::UTC,
            zone_name: "UTC".into(),
            at: Time::constant(21, 0, 0, 0),
        })
    }

    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// The business day of the instant `ms` (Unix milliseconds).
    pub fn business_day(&self, ms: u64) -> i32 {
        let Ok(ts) = Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)) else {
            return 0;
        };
        let local = ts.to_zoned(self.zone.clone());
        let day = day_number(local.date());
        if local.time() >= self.at {
            day + 1
        } else {
            day
        }
    }

    /// The instant (Unix milliseconds) business day `day` closes.
    pub fn closes_at(&self, day: i32) -> u64 {
        let date = date_of(day);
        date.to_datetime(self.at)
            .to_zoned(self.zone.clone())
            .map(|z| u64::try_from(z.timestamp().as_millisecond()).unwrap_or(0))
            .unwrap_or(0)
    }

    /// The last business day closed at or before the instant `ms`.
    pub fn last_closed(&self, ms: u64) -> i32 {
        self.business_day(ms) - 1
    }
}

/// Days since 1970-01-01 of a date.
pub fn day_number(d: Date) -> i32 {
    let epoch = Date::constant(1970, 1, 1);
    d.since(epoch).map(|span| span.get_days()).unwrap_or(0)
}

/// The date of a day number.
pub fn date_of(day: i32) -> Date {
    let epoch = Date::constant(1970, 1, 1);
    epoch
        .checked_add(jiff::Span::new().days(i64::from(day)))
        .unwrap_or(epoch)
}

/// `YYYY-MM-DD` of a day number.
pub fn date_text(day: i32) -> String {
    date_of(day).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u64 {
        let ts: Timestamp = text.parse().unwrap();
        u64::try_from(ts.as_millisecond()).unwrap()
    }

    #[test]
    fn days_turn_at_22_paris_time_in_winter_and_in_summer() {
        let c = CutOff::paris();
        // Winter (UTC+1): 22:00 Paris = 21:00 UTC.
        let d = day_number(Date::constant(2026, 1, 15));
        assert_eq!(c.business_day(ms("2026-01-15T20:59:59Z")), d);
        assert_eq!(c.business_day(ms("2026-01-15T21:00:00Z")), d + 1);
        assert_eq!(c.closes_at(d), ms("2026-01-15T21:00:00Z"));
        // Summer (UTC+2): 22:00 Paris = 20:00 UTC.
        let s = day_number(Date::constant(2026, 7, 15));
        assert_eq!(c.business_day(ms("2026-07-15T19:59:59Z")), s);
        assert_eq!(c.business_day(ms("2026-07-15T20:00:00Z")), s + 1);
        assert_eq!(c.closes_at(s), ms("2026-07-15T20:00:00Z"));
        // The day summer time starts (29 March 2026) still closes at 22:00.
        let dst = day_number(Date::constant(2026, 3, 29));
        assert_eq!(c.closes_at(dst), ms("2026-03-29T20:00:00Z"));
        assert_eq!(c.closes_at(dst - 1), ms("2026-03-28T21:00:00Z"));
        assert_eq!(c.last_closed(ms("2026-03-29T20:00:00Z")), dst);
        assert_eq!(c.last_closed(ms("2026-03-29T19:59:00Z")), dst - 1);
    }

    #[test]
    fn day_numbers() {
        assert_eq!(day_number(Date::constant(1970, 1, 1)), 0);
        assert_eq!(day_number(Date::constant(2026, 11, 30)), 20_787);
        assert_eq!(date_text(20_787), "2026-11-30");
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(CutOff::new("Europe/Nowhere", "22:00")
            .unwrap_err()
            .contains("Europe/Nowhere"));
        assert!(CutOff::new("Europe/Paris", "25:99")
            .unwrap_err()
            .contains("25:99"));
        let utc = CutOff::new("UTC", "00:00").unwrap();
        assert_eq!(utc.business_day(ms("1970-01-01T00:00:00Z")), 1);
    }
}

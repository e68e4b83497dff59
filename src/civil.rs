//! UTC calendar fields from Unix seconds, for ISO 8583 dates (DE 7, DE 12/13)
//! and the API's timestamps, without a date-time dependency.

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl CivilTime {
    /// The calendar time of `secs` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix(secs: u64) -> CivilTime {
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        CivilTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: ((rem / 60) % 60) as u8,
            second: (rem % 60) as u8,
        }
    }
}

/// ISO 8583 DE 7, transmission date and time: `MMDDhhmmss`, UTC.
pub fn transmission_datetime(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let c = CivilTime::from_unix(secs);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `2024-11-14T22:13:20Z` from seconds since the Unix epoch.
pub fn iso8601(secs: u64) -> String {
    let c = CivilTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// (year, month) of `secs`, for expiry checks.
pub fn year_month(secs: u64) -> (u16, u8) {
    let c = CivilTime::from_unix(secs);
    (u16::try_from(c.year).unwrap_or(u16::MAX), c.month)
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = CivilTime::from_unix(1_709_214_307); // 2024-02-29T13:45:07Z
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2024, 2, 29, 13, 45, 7)
        );
        let t = CivilTime::from_unix(0);
        assert_eq!((t.year, t.month, t.day), (1970, 1, 1));
        let t = CivilTime::from_unix(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!((t.year, t.month, t.day), (2000, 2, 29));
    }

    #[test]
    fn text_forms() {
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(year_month(1_700_000_000), (2023, 11));
    }
}

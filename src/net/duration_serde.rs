//! Durations in configuration: an integer is milliseconds, a string takes a
//! unit suffix (`"250ms"`, `"5s"`, `"2m"`, `"24h"`).

use serde::{de, Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Written in the largest unit that keeps it exact (`"5s"`, `"24h"`,
/// `"250ms"`, `"1500us"`): what [`parse`] reads back.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&text(*d))
}

/// A duration as configuration writes it.
pub fn text(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1000 != 0 {
        return format!("{us}us");
    }
    let ms = us / 1000;
    match ms {
        0 => "0ms".to_owned(),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
        Raw::Text(s) => parse(&s).map_err(de::Error::custom),
    }
}

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"24h"` or a bare number of
/// milliseconds.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit.trim() {
        "" | "ms" => Ok(Duration::from_millis(n)),
        "us" => Ok(Duration::from_micros(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {s:?} too long")),
        "h" => n
            .checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {s:?} too long")),
        _ => Err(format!("bad duration unit in {s:?}")),
    }
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(deserialize_with = "super::deserialize")] Duration);
        Ok(Option::<W>::deserialize(d)?.map(|W(d)| d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("40"), Ok(Duration::from_millis(40)));
        assert_eq!(parse("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert!(parse("5d").is_err());
        assert!(parse("s").is_err());
        // Too long for the unit: an error, not an overflow.
        assert!(parse("18446744073709551615h").is_err());
        assert!(parse("18446744073709551615m").is_err());
    }

    #[test]
    fn written_in_the_largest_exact_unit_and_read_back() {
        for (d, t) in [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(24 * 3600), "24h"),
            (Duration::from_micros(1500), "1500us"),
            (Duration::ZERO, "0ms"),
        ] {
            assert_eq!(text(d), t);
            assert_eq!(parse(t), Ok(d));
        }
    }
}

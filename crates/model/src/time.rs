//! Time as the ledger sees it: milliseconds since the Unix epoch, UTC.
//!
//! Times enter the system only inside proposals (stamped by the proposing node), so apply
//! never reads a clock. Verification compares against the caller's clock reading.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time, milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
const MS_PER_YEAR: i64 = 365 * MS_PER_DAY;

impl Timestamp {
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time such as `2026-11-23T13:26:33Z` or with an offset.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimeError> {
        let parsed = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| TimeError::Rfc3339)?;
        let ms = parsed.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).map(Timestamp).map_err(|_| TimeError::Rfc3339)
    }

    /// `self + span`, or `None` on overflow.
    pub fn checked_add(self, span: Span) -> Option<Timestamp> {
        self.0.checked_add(span.0).map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-23T13:26:33.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Years 0–9999, every real time: written directly, as exports print millions of them.
        if let Some(text) = self.civil().as_ref().map(Civil::to_text) {
            return f.write_str(std::str::from_utf8(&text).expect("digits and ASCII punctuation"));
        }
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            Err(_) => write!(f, "@{}ms", self.0),
        }
    }
}

impl Timestamp {
    /// Reads back exactly the RFC 3339 text `Display` writes for years 0–9999
    /// (`2026-11-23T13:26:33.123Z`); `None` for any other text, even another spelling of a time.
    pub fn parse_display(text: &str) -> Option<Timestamp> {
        let civil = Civil::from_text(text.as_bytes())?;
        let days = days_from_civil(civil.year, civil.month, civil.day);
        let seconds = i64::from(civil.hour) * 3600 + i64::from(civil.minute) * 60 + i64::from(civil.second);
        Some(Timestamp(days * MS_PER_DAY + seconds * MS_PER_SECOND + i64::from(civil.milli)))
    }

    /// The calendar fields of this time in UTC, when its year is 0–9999.
    fn civil(self) -> Option<Civil> {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let seconds = ms_of_day / MS_PER_SECOND;
        Some(Civil {
            year,
            month,
            day,
            hour: (seconds / 3600) as u32,
            minute: (seconds / 60 % 60) as u32,
            second: (seconds % 60) as u32,
            milli: (ms_of_day % MS_PER_SECOND) as u32,
        })
    }
}

/// A UTC time of a year 0–9999, field by field: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
}

/// Where each field's digits sit in the text, and how many there are.
const CIVIL_LAYOUT: &[u8; 24] = b"0000-00-00T00:00:00.000Z";

impl Civil {
    fn to_text(&self) -> [u8; 24] {
        let mut text = *CIVIL_LAYOUT;
        let mut put = |at: usize, width: usize, mut value: u32| {
            for slot in text[at..at + width].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, self.year as u32);
        put(5, 2, self.month);
        put(8, 2, self.day);
        put(11, 2, self.hour);
        put(14, 2, self.minute);
        put(17, 2, self.second);
        put(20, 3, self.milli);
        text
    }

    /// The fields of `text` if it has exactly the layout and every field is in range.
    fn from_text(text: &[u8]) -> Option<Civil> {
        if text.len() != CIVIL_LAYOUT.len() {
            return None;
        }
        for (&c, &layout) in text.iter().zip(CIVIL_LAYOUT) {
            let ok = if layout == b'0' { c.is_ascii_digit() } else { c == layout };
            if !ok {
                return None;
            }
        }
        let get =
            |at: usize, width: usize| text[at..at + width].iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0'));
        let civil = Civil {
            year: i64::from(get(0, 4)),
            month: get(5, 2),
            day: get(8, 2),
            hour: get(11, 2),
            minute: get(14, 2),
            second: get(17, 2),
            milli: get(20, 3),
        };
        let in_range = (1..=12).contains(&civil.month)
            && (1..=days_in_month(civil.year, civil.month)).contains(&civil.day)
            && civil.hour < 24
            && civil.minute < 60
            && civil.second < 60;
        in_range.then_some(civil)
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// A length of time in milliseconds (always ≥ 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span(pub i64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub fn days(n: i64) -> Span {
        Span(n * MS_PER_DAY)
    }

    pub fn years(n: i64) -> Span {
        Span(n * MS_PER_YEAR)
    }

    /// Parses `30d`, `4d12h`, `90m`, `2y`, `1h30m15s`: numbers with units `y` (365 days),
    /// `w`, `d`, `h`, `m`, `s`, largest first, each at most once.
    pub fn parse(text: &str) -> Result<Span, TimeError> {
        const UNITS: [(u8, i64); 6] = [
            (b'y', MS_PER_YEAR),
            (b'w', 7 * MS_PER_DAY),
            (b'd', MS_PER_DAY),
            (b'h', MS_PER_HOUR),
            (b'm', MS_PER_MINUTE),
            (b's', MS_PER_SECOND),
        ];
        let bytes = text.trim().as_bytes();
        if bytes.is_empty() {
            return Err(TimeError::Duration);
        }
        let mut total: i64 = 0;
        let mut next_unit = 0; // units must appear in UNITS order
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start || i == bytes.len() || i - start > 12 {
                return Err(TimeError::Duration);
            }
            let number: i64 =
                std::str::from_utf8(&bytes[start..i]).ok().and_then(|s| s.parse().ok()).ok_or(TimeError::Duration)?;
            let position = UNITS[next_unit..].iter().position(|(u, _)| *u == bytes[i]).ok_or(TimeError::Duration)?;
            let (_, unit_ms) = UNITS[next_unit + position];
            next_unit += position + 1;
            total = number.checked_mul(unit_ms).and_then(|ms| total.checked_add(ms)).ok_or(TimeError::Duration)?;
            i += 1;
        }
        Ok(Span(total))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("a duration is a number with a unit, largest unit first, e.g. `30d`, `4d12h`, `90m` or `2y` (units: y, w, d, h, m, s)")]
    Duration,
    #[error("a time must be RFC 3339, e.g. `2026-12-31T23:59:59Z`")]
    Rfc3339,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Span::parse("30d"), Ok(Span::days(30)));
        assert_eq!(Span::parse("4d12h"), Ok(Span(4 * MS_PER_DAY + 12 * MS_PER_HOUR)));
        assert_eq!(Span::parse("90m"), Ok(Span(90 * MS_PER_MINUTE)));
        assert_eq!(Span::parse("2y"), Ok(Span::years(2)));
        assert_eq!(Span::parse("0"), Err(TimeError::Duration));
        for bad in ["", "d", "12", "1h2d", "1d1d", "-1d", "1.5d", "1x", "99999999999999y", "1 d"] {
            assert_eq!(Span::parse(bad), Err(TimeError::Duration), "{bad:?}");
        }
    }

    /// `Display` as the `time` crate writes it: the reference for the direct path.
    fn reference_display(t: Timestamp) -> String {
        let Ok(d) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000) else {
            return format!("@{}ms", t.0);
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.millisecond()
        )
    }

    /// Year 0 and year 9999, as milliseconds.
    const YEAR_0: i64 = -62_167_219_200_000;
    const YEAR_10000: i64 = 253_402_300_800_000;

    proptest::proptest! {
        #[test]
        fn display_matches_the_time_crate(ms in YEAR_0 - 100 * MS_PER_DAY..YEAR_10000 + 100 * MS_PER_DAY, edge in 0..4u8) {
            // A quarter of the cases within a day of the fast path's ends.
            let ms = match edge {
                0 => YEAR_0 + ms.rem_euclid(2 * MS_PER_DAY) - MS_PER_DAY,
                1 => YEAR_10000 + ms.rem_euclid(2 * MS_PER_DAY) - MS_PER_DAY,
                _ => ms,
            };
            let t = Timestamp(ms);
            let text = t.to_string();
            proptest::prop_assert_eq!(&text, &reference_display(t));
            let in_fast_range = (YEAR_0..YEAR_10000).contains(&ms);
            proptest::prop_assert_eq!(Timestamp::parse_display(&text), in_fast_range.then_some(t));
            if in_fast_range {
                proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&text), Ok(t));
            }
        }

        #[test]
        fn parse_display_accepts_only_display_text(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-6][0-9]\\.[0-9]{3}Z") {
            match Timestamp::parse_display(&text) {
                Some(t) => proptest::prop_assert_eq!(t.to_string(), text),
                None => proptest::prop_assert!(Timestamp::parse_rfc3339(&text).map_or(true, |t| t.to_string() != text)),
            }
        }
    }

    #[test]
    fn display_edges() {
        for ms in [YEAR_0, YEAR_0 - 1, YEAR_10000 - 1, YEAR_10000, 0, -1, 951_782_400_000, 1_709_164_800_000] {
            assert_eq!(Timestamp(ms).to_string(), reference_display(Timestamp(ms)), "{ms}");
        }
        assert_eq!(Timestamp(i64::MAX).to_string(), format!("@{}ms", i64::MAX));
        assert_eq!(Timestamp::parse_display("2024-02-29T23:59:59.999Z"), Some(Timestamp(1_709_251_199_999)));
        for bad in [
            "2023-02-29T00:00:00.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "2024-01-01T00:00:60.000Z",
            "2024-01-01T00:00:00.000+00:00",
            "2024-01-01 00:00:00.000Z",
        ] {
            assert_eq!(Timestamp::parse_display(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-23T13:26:33.123Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T13:26:33.123Z");
        let offset = Timestamp::parse_rfc3339("2026-11-23T14:26:33.123+01:00").unwrap();
        assert_eq!(offset, t);
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), Err(TimeError::Rfc3339));
    }
}

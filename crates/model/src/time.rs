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

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-23T13:26:33.123Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T13:26:33.123Z");
        let offset = Timestamp::parse_rfc3339("2026-11-23T14:26:33.123+01:00").unwrap();
        assert_eq!(offset, t);
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), Err(TimeError::Rfc3339));
    }
}

//! Timestamps: nanoseconds since the Unix epoch, printed as RFC 3339 with nanoseconds.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A point in time, in nanoseconds since 1970-01-01T00:00:00Z (UTC). Packet timestamps
/// come from the capture, never from the clock, so replays are reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Nanoseconds per second.
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    /// Builds a timestamp from seconds and a nanosecond fraction.
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(Self::NANOS_PER_SEC)
                .saturating_add(i64::from(nanos)),
        )
    }

    /// The wall clock now (live capture's arrival times, times relative to the present).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_parts(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        )
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> i64 {
        self.0
    }

    /// The later timestamp plus `nanos`, saturating.
    pub fn add_nanos(self, nanos: i64) -> Self {
        Timestamp(self.0.saturating_add(nanos))
    }

    /// Nanoseconds elapsed from `earlier` to `self` (0 if `earlier` is later).
    pub fn nanos_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0).max(0)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let rest = &s[19..];
        let (frac, tail) = match rest.strip_prefix('.') {
            Some(r) => {
                let digits = r.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 || digits > 9 {
                    return None;
                }
                let mut n: i64 = r[..digits].parse().ok()?;
                for _ in digits..9 {
                    n *= 10;
                }
                (n, &r[digits..])
            }
            None => (0, rest),
        };
        if tail != "Z" {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se;
        Some(Timestamp(
            secs.checked_mul(Self::NANOS_PER_SEC)?.checked_add(frac)?,
        ))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with nine fractional digits, e.g. `2026-11-01T10:00:00.123456789Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(Self::NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(Self::NANOS_PER_SEC);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("not an RFC 3339 UTC timestamp: {s:?}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            Timestamp::from_parts(1_700_000_000, 123_456_789).to_string(),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            Timestamp::from_parts(951_782_400, 0).to_string(),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+01:00",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(s), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(n in i64::MIN + 1_000_000_000..i64::MAX) {
            let t = Timestamp(n);
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        }
    }
}

//! UTC time helpers shared by every module: RFC 3339 formatting and parsing, human
//! durations ("1h30m"), and the civil-date arithmetic the log parser builds on.
//!
//! It does not know about time zones beyond fixed offsets; all logward times are UTC unix
//! seconds. The day arithmetic follows Howard Hinnant's `days_from_civil` /
//! `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>).

/// The clock: unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d` (`m` 1..=12, `d` 1..=31).
/// Out-of-range months or days are not checked here: callers validate their fields.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = m as i64;
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146097 + doe - 719468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `secs` (UTC unix seconds) as RFC 3339 in UTC, e.g. `2026-11-22T04:39:16Z`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i64, |n, &b| {
        n.checked_mul(10)?.checked_add((b - b'0') as i64)
    })
}

/// Parses RFC 3339 date-times (<https://www.rfc-editor.org/rfc/rfc3339#section-5.6>):
/// `2026-11-22T04:39:16Z`, `...16.123+01:00`, a lowercase `t`/`z` or a space separator.
/// Fractions are accepted and dropped. Returns UTC unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 20 {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let y = digits(&b[0..4])?;
    let mo = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let se = digits(&b[17..19])?;
    if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo as u32) as i64).contains(&d) {
        return None;
    }
    // 60 is allowed for a leap second, which is folded into the next second.
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &rest[1 + n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let oh = digits(&[*oh1, *oh2])?;
            let om = digits(&[*om1, *om2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `250ms`, `2s`, `1m`; the units `parse_duration` knows plus `ms`.
pub fn parse_interval(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(std::time::Duration::from_millis);
    }
    if t == "0" {
        return Some(std::time::Duration::ZERO);
    }
    parse_duration(t)
        .filter(|s| *s >= 0)
        .map(|s| std::time::Duration::from_secs(s as u64))
}

/// Parses a duration such as `7d`, `90m`, `24h`, `30s`, `1w` or `1h30m` into seconds.
/// A bare number is refused: the unit must be explicit so `7` is never read as 7 seconds
/// when days were meant. Returns `None` on an empty string, unknown unit or overflow.
pub fn parse_duration(s: &str) -> Option<i64> {
    const UNITS: &[(&str, i64)] = &[
        ("s", 1),
        ("m", 60),
        ("h", 3600),
        ("d", 86_400),
        ("w", 7 * 86_400),
    ];
    parse_duration_in(s, UNITS, true).ok()
}

/// A point in time as a person gives one: an RFC 3339 time, a date alone (`2026-12-06`,
/// its midnight UTC), or a duration (see [`parse_duration`]) meaning that long before
/// `now`. This is how every command reads `--since` and `--until`.
pub fn time_or_ago(text: &str, now: i64) -> Option<i64> {
    parse_rfc3339(text)
        .or_else(|| parse_date(text))
        .or_else(|| parse_duration(text).map(|d| now - d))
}

/// `YYYY-MM-DD` as its midnight UTC.
fn parse_date(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.len() != 10 {
        return None;
    }
    parse_rfc3339(&format!("{t}T00:00:00Z"))
}

/// Formats seconds the way nftables and cscli accept them: `3h59m12s`, `7d`, `0s`.
/// Zero components are left out; negative input is treated as zero.
pub fn format_duration(secs: i64) -> String {
    format_units(secs, &[("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)])
}

/// Why a duration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationError<'a> {
    /// No number where one should start (an empty text among others).
    NoNumber,
    /// A number too large for 64 bits.
    NumberTooLarge,
    /// A number without a unit after it.
    NoUnit,
    /// A unit not among those accepted: the text that stood for it.
    UnknownUnit(&'a str),
    /// The duration overflows 64 bits.
    TooLong,
}

/// Parses a duration the way rules write them (`200ms`, `10s`, `1m`, `4h`, `7d`) into
/// milliseconds: one number and one unit only, so `1m30s` is refused rather than half-read,
/// and so is a bare number, since `10` could mean seconds or milliseconds and a guess would
/// change a threshold by a factor of a thousand.
pub fn parse_duration_ms(text: &str) -> Result<i64, DurationError<'_>> {
    const UNITS: &[(&str, i64)] = &[
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ];
    parse_duration_in(text, UNITS, false)
}

/// Prints milliseconds in the largest unit that divides them exactly (`90s`, `4h`,
/// `250ms`; `0s` for zero), so a printed duration parses back to the same value with
/// [`parse_duration_ms`].
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    let (scale, unit) = units
        .into_iter()
        .find(|(scale, _)| ms % scale == 0)
        .unwrap_or((1, "ms"));
    format!("{}{unit}", ms / scale)
}

/// Reads `text` (trimmed) as `<digits><unit>`, or with `compound` as several of them
/// (`1h30m`), each unit one of `units` (its name and its length in the result's unit): the
/// parser behind [`parse_duration`] and [`parse_duration_ms`]. Without `compound` all the
/// text after the number is the unit.
fn parse_duration_in<'a>(
    text: &'a str,
    units: &[(&str, i64)],
    compound: bool,
) -> Result<i64, DurationError<'a>> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::NoNumber);
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::NoNumber);
        }
        let (number, after) = rest.split_at(digits);
        let number: i64 = number.parse().map_err(|_| DurationError::NumberTooLarge)?;
        let unit_len = if compound {
            after.bytes().take_while(|b| !b.is_ascii_digit()).count()
        } else {
            after.len()
        };
        let (unit, next) = after.split_at(unit_len);
        let scale = match units.iter().find(|(name, _)| *name == unit) {
            Some(&(_, scale)) => scale,
            None if unit.is_empty() => return Err(DurationError::NoUnit),
            None => return Err(DurationError::UnknownUnit(unit)),
        };
        total = number
            .checked_mul(scale)
            .and_then(|n| total.checked_add(n))
            .ok_or(DurationError::TooLong)?;
        rest = next;
    }
    Ok(total)
}

/// `n` written with `units` (name and length, largest first), each that counts at least
/// once, as nftables, cscli and Go write durations: `3h59m12s`; `0s` for zero or less.
pub fn format_units(n: i64, units: &[(&str, i64)]) -> String {
    let mut rest = n.max(0);
    if rest == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for &(name, scale) in units {
        let count = rest / scale;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            rest -= count * scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2024, 2, 29), 19782);
    }

    /// The seconds parser against a statement of its grammar: terms of digits and one of
    /// s, m, h, d, w, nothing else; and both formatters parse back.
    #[test]
    fn durations_in_both_units_parse_back() {
        for s in [0, 1, 59, 61, 3600, 90_061, 1_000_000, 14_352] {
            assert_eq!(parse_duration(&format_duration(s)), Some(s));
        }
        for ms in [
            1,
            250,
            999,
            1000,
            90_000,
            14_400_000,
            604_800_000,
            123_456_789,
        ] {
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)), Ok(ms));
        }
        assert_eq!(parse_duration("1ms"), None, "milliseconds are for rules");
        assert_eq!(
            parse_duration_ms("1w"),
            Err(DurationError::UnknownUnit("w"))
        );
        assert_eq!(
            parse_duration_ms("1m30s"),
            Err(DurationError::UnknownUnit("m30s"))
        );
        assert_eq!(parse_duration_ms(" 10 "), Err(DurationError::NoUnit));
        assert_eq!(parse_duration_ms(""), Err(DurationError::NoNumber));
        assert_eq!(
            parse_duration_ms("99999999999999999999s"),
            Err(DurationError::NumberTooLarge)
        );
        assert_eq!(
            parse_duration_ms("9999999999999999d"),
            Err(DurationError::TooLong)
        );
        assert_eq!(parse_duration("9223372036854775807s"), Some(i64::MAX));
        assert_eq!(parse_duration("9223372036854775807s1s"), None);
        let go = [("h", 3600), ("m", 60), ("s", 1)];
        assert_eq!(format_units(90_061, &go), "25h1m1s");
        assert_eq!(format_units(3600, &go), "1h");
        assert_eq!(format_units(-3, &go), "0s");
    }

    #[test]
    fn civil_round_trip() {
        for z in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn format_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_322_356), "2026-11-22T04:39:16Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parse_rfc3339_forms() {
        assert_eq!(parse_rfc3339("2026-11-22T04:39:16Z"), Some(1_795_322_356));
        assert_eq!(
            parse_rfc3339("2026-11-22T05:39:16+01:00"),
            Some(1_795_322_356)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T00:09:16-04:30"),
            Some(1_795_322_356)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22t04:39:16.999z"),
            Some(1_795_322_356)
        );
        assert_eq!(parse_rfc3339("2026-11-22 04:39:16Z"), Some(1_795_322_356));
        for bad in [
            "",
            "2026-11-22T04:39:16",
            "2026-13-22T04:39:16Z",
            "2026-02-30T04:39:16Z",
            "2026-11-22T24:39:16Z",
            "2026-11-22T04:39:16.Z",
            "2026-11-22T04:39:16+0100",
            "2026-11-22T04:39:16Zjunk",
            "20a6-11-22T04:39:16Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_round_trip() {
        for s in (-10_000_000_000i64..10_000_000_000).step_by(7_777_777) {
            assert_eq!(parse_rfc3339(&rfc3339(s)), Some(s));
        }
    }

    #[test]
    fn times_are_absolute_dates_or_durations_ago() {
        let now = 1_800_000_000;
        let t = time_or_ago("2026-12-06T10:00:00+01:00", now);
        assert_eq!(t, Some(days_from_civil(2026, 12, 6) * 86_400 + 9 * 3600));
        assert_eq!(
            time_or_ago("2026-12-06", now),
            Some(days_from_civil(2026, 12, 6) * 86_400)
        );
        assert_eq!(time_or_ago(" 24h ", now), Some(now - 86_400));
        assert_eq!(time_or_ago("1h30m", now), Some(now - 5400));
        for bad in [
            "",
            "yesterday",
            "2026-12-6",
            "2026-13-01",
            "24",
            "12/06/2026",
        ] {
            assert_eq!(time_or_ago(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(7 * 86_400));
        assert_eq!(parse_duration("90m"), Some(5400));
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("1w"), Some(604_800));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("3h59m12s"), Some(14_352));
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "1h30",
            "-1h",
            "99999999999999999999d",
            "h1",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(format_duration(14_352), "3h59m12s");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(-5), "0s");
        assert_eq!(format_duration(604_800), "7d");
        assert_eq!(format_duration(86_401), "1d1s");
        for s in [1, 59, 61, 3600, 90_061, 1_000_000] {
            assert_eq!(parse_duration(&format_duration(s)), Some(s));
        }
    }
}

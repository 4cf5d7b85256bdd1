//! Timestamps as they appear in access logs, parsed straight from ASCII to UTC seconds:
//! CLF (`$time_local`, Apache `%t`), ISO 8601 / RFC 3339 (`$time_iso8601`, JSON), epoch
//! seconds with a fraction (`$msec`, Caddy `ts`), and Apache `%{...}t` strftime patterns.
//!
//! A file's lines mostly share their minute, so [`TimeCache`] keeps the last CLF prefix and
//! only re-parses the seconds when the prefix repeats.

pub use crate::timefmt::{civil_from_days, days_from_civil, rfc3339};

/// Seconds since the epoch of a validated civil date and time.
fn to_epoch(year: i64, month: u32, day: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // 60 allows a leap second, which lands on the next minute.
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Digits only, exactly `bytes.len()` of them.
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

/// `Jan`..`Dec`, case-insensitive, as month 1..12.
fn month_abbrev(b: &[u8]) -> Option<u32> {
    if b.len() != 3 {
        return None;
    }
    let key = [
        b[0].to_ascii_lowercase(),
        b[1].to_ascii_lowercase(),
        b[2].to_ascii_lowercase(),
    ];
    let month = match &key {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    };
    Some(month)
}

/// A numeric UTC offset `+hhmm`, `-hh:mm`, or `Z`, as seconds east of UTC.
fn offset(b: &[u8]) -> Option<i64> {
    let (sign, rest) = match b.first()? {
        b'Z' | b'z' if b.len() == 1 => return Some(0),
        b'+' => (1, &b[1..]),
        b'-' => (-1, &b[1..]),
        _ => return None,
    };
    let (h, m) = match rest.len() {
        4 => (digits(&rest[..2])?, digits(&rest[2..])?),
        5 if rest[2] == b':' => (digits(&rest[..2])?, digits(&rest[3..])?),
        2 => (digits(rest)?, 0),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * i64::from(h * 3600 + m * 60))
}

/// The length of the `dd/Mon/yyyy:HH:MM` prefix that [`TimeCache`] keys on.
const CLF_MINUTE: usize = 17;

/// The length of the `dd/Mon/yyyy:HH` prefix of [`CLF_MINUTE`].
const CLF_HOUR: usize = 14;

/// Remembers the last CLF minute (and zone) seen, so a line in the same minute costs a
/// 17-byte compare and two digits, and a line in the same hour two digits more.
#[derive(Clone, Debug, Default)]
pub struct TimeCache {
    minute: [u8; CLF_MINUTE],
    zone: [u8; 5],
    base: i64,
    /// The time of the start of the hour of `minute`, offset applied.
    hour_base: i64,
    valid: bool,
}

impl TimeCache {
    /// An empty cache.
    pub fn new() -> TimeCache {
        TimeCache::default()
    }

    /// `b` has the minute and zone of the cache: a few word compares, as nearly every line
    /// asks.
    #[inline(always)]
    fn same_minute(&self, b: &[u8; 26]) -> bool {
        use crate::bytes::word_at;
        let (m, z) = (&self.minute, &self.zone);
        word_at(b, 0) == word_at(m, 0)
            && word_at(b, 8) == word_at(m, 8)
            && b[16] == m[16]
            && b[21..25] == z[..4]
            && b[25] == z[4]
    }

    /// CLF: `10/Oct/2000:13:55:36 -0700` (without the brackets), as UTC seconds.
    #[inline]
    pub fn clf(&mut self, b: &[u8]) -> Option<i64> {
        let b: &[u8; 26] = b.try_into().ok()?;
        if b[17] != b':' || b[20] != b' ' {
            return None;
        }
        let (tens, ones) = (b[18].wrapping_sub(b'0'), b[19].wrapping_sub(b'0'));
        if tens > 9 || ones > 9 {
            return None;
        }
        let sec = u32::from(tens) * 10 + u32::from(ones);
        if sec > 60 {
            return None;
        }
        if self.valid && self.same_minute(b) {
            return Some(self.base + i64::from(sec));
        }
        self.clf_new_minute(b, sec)
    }

    /// [`clf`](Self::clf) for a minute or zone other than the cached one: kept out of line,
    /// so the check for the cached minute inlines into the parser small.
    #[inline(never)]
    fn clf_new_minute(&mut self, b: &[u8; 26], sec: u32) -> Option<i64> {
        if b[14] != b':' {
            return None;
        }
        if self.valid && b[..CLF_HOUR] == self.minute[..CLF_HOUR] && b[21..] == self.zone {
            // The same hour, already checked: only the minute is new. `to_epoch` refuses a
            // minute past 59 and adds it as seconds, and so does this.
            let minute = digits(&b[15..17])?;
            if minute > 59 {
                return None;
            }
            let base = self.hour_base + i64::from(minute * 60);
            self.minute.copy_from_slice(&b[..CLF_MINUTE]);
            self.base = base;
            return Some(base + i64::from(sec));
        }
        if b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
            return None;
        }
        let day = digits(&b[0..2])?;
        let month = month_abbrev(&b[3..6])?;
        let year = digits(&b[7..11])?;
        let hour = digits(&b[12..14])?;
        let minute = digits(&b[15..17])?;
        let off = offset(&b[21..26])?;
        let hour_base = to_epoch(i64::from(year), month, day, hour, 0, 0)? - off;
        if minute > 59 {
            return None;
        }
        let base = hour_base + i64::from(minute * 60);
        self.minute.copy_from_slice(&b[..CLF_MINUTE]);
        self.zone.copy_from_slice(&b[21..26]);
        self.base = base;
        self.hour_base = hour_base;
        self.valid = true;
        Some(base + i64::from(sec))
    }
}

/// ISO 8601 / RFC 3339: `2026-11-22T04:39:16+01:00`, `2026-11-22T04:39:16.123Z`,
/// `2026-11-22 04:39:16` (no zone: taken as UTC). The fraction is dropped.
pub fn iso8601(b: &[u8]) -> Option<i64> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    let mut rest = &b[19..];
    if let Some((&b'.' | &b',', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let off = if rest.is_empty() { 0 } else { offset(rest)? };
    Some(to_epoch(i64::from(year), month, day, hour, minute, sec)? - off)
}

/// The RFC 3164 (BSD syslog) timestamp `Mmm dd HH:MM:SS`, the day padded with a space
/// (`Jul  8 11:07:07`) or a zero. It has neither year nor zone: the time is taken as UTC,
/// in the year of `now` (UTC seconds), or the year before when that would put it more than
/// a day after `now` (a December line read in January); Feb 29 in the last leap year.
pub fn bsd_syslog(b: &[u8], now: i64) -> Option<i64> {
    let b: &[u8; 15] = b.try_into().ok()?;
    if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let month = month_abbrev(&b[..3])?;
    let day = match b[4] {
        b' ' => digits(&b[5..6])?,
        _ => digits(&b[4..6])?,
    };
    let (hour, minute, sec) = (digits(&b[7..9])?, digits(&b[10..12])?, digits(&b[13..15])?);
    let (year, _, _) = civil_from_days(now.div_euclid(86_400));
    // A date in the future is last year's; Feb 29 is that of the last leap year.
    (0..8)
        .filter_map(|back| to_epoch(year - back, month, day, hour, minute, sec))
        .find(|t| *t <= now + 86_400)
}

/// Epoch seconds with an optional fraction (`1700000000.123`), as whole seconds. `scale`
/// divides an integer count first: 1000 for `%{msec}t`, 1_000_000 for `%{usec}t`.
pub fn epoch(b: &[u8], scale: i64) -> Option<i64> {
    let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 || int_len > 19 {
        return None;
    }
    let rest = &b[int_len..];
    if !rest.is_empty() {
        // A fraction, or an exponent as JSON writers sometimes print floats.
        if rest[0] != b'.' || !rest[1..].iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    let mut v: i64 = 0;
    for &c in &b[..int_len] {
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(v / scale)
}

/// One piece of an Apache `%{...}t` strftime pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimePart {
    /// Text that must appear as it is.
    Literal(Vec<u8>),
    /// `%Y`: the year.
    Year,
    /// `%m`: the month number.
    Month,
    /// `%b`, `%h`: `Jan` to `Dec`.
    MonthAbbrev,
    /// `%d`, `%e`: the day of the month.
    Day,
    /// `%H`: the hour, 00 to 23.
    Hour,
    /// `%M`: the minute.
    Minute,
    /// `%S`: the second.
    Second,
    /// `%z`: `+hhmm`.
    Zone,
}

/// Compiles a strftime pattern (the subset servers use in logs: `%Y %m %d %e %H %M %S %z %b
/// %h %T %F %D %%`) into parts. Unknown directives are an error naming the directive.
pub fn compile_strftime(pattern: &str) -> Result<Vec<TimePart>, String> {
    let mut parts = Vec::new();
    let mut lit = Vec::new();
    let mut chars = pattern.bytes();
    let flush = |lit: &mut Vec<u8>, parts: &mut Vec<TimePart>| {
        if !lit.is_empty() {
            parts.push(TimePart::Literal(std::mem::take(lit)));
        }
    };
    while let Some(c) = chars.next() {
        if c != b'%' {
            lit.push(c);
            continue;
        }
        let d = chars.next().ok_or("strftime pattern ends with '%'")?;
        let expand: &[TimePart] = match d {
            b'%' => {
                lit.push(b'%');
                continue;
            }
            b'Y' => &[TimePart::Year],
            b'm' => &[TimePart::Month],
            b'b' | b'h' => &[TimePart::MonthAbbrev],
            b'd' | b'e' => &[TimePart::Day],
            b'H' => &[TimePart::Hour],
            b'M' => &[TimePart::Minute],
            b'S' => &[TimePart::Second],
            b'z' => &[TimePart::Zone],
            b'T' => {
                flush(&mut lit, &mut parts);
                parts.extend([
                    TimePart::Hour,
                    TimePart::Literal(b":".to_vec()),
                    TimePart::Minute,
                    TimePart::Literal(b":".to_vec()),
                    TimePart::Second,
                ]);
                continue;
            }
            b'F' => {
                flush(&mut lit, &mut parts);
                parts.extend([
                    TimePart::Year,
                    TimePart::Literal(b"-".to_vec()),
                    TimePart::Month,
                    TimePart::Literal(b"-".to_vec()),
                    TimePart::Day,
                ]);
                continue;
            }
            other => return Err(format!("unsupported strftime directive %{}", other as char)),
        };
        flush(&mut lit, &mut parts);
        parts.extend_from_slice(expand);
    }
    flush(&mut lit, &mut parts);
    Ok(parts)
}

/// Parses `b` against compiled strftime parts; the whole input must be consumed.
pub fn strftime(parts: &[TimePart], b: &[u8]) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut off) = (1970i64, 1u32, 1u32, 0, 0, 0, 0);
    let mut pos = 0usize;
    for part in parts {
        let rest = b.get(pos..)?;
        let take_num = |max: usize| -> Option<(u32, usize)> {
            // `%e` pads with a space.
            let skip = usize::from(rest.first() == Some(&b' '));
            let n = rest[skip..]
                .iter()
                .take(max)
                .take_while(|c| c.is_ascii_digit())
                .count();
            Some((digits(&rest[skip..skip + n])?, skip + n))
        };
        match part {
            TimePart::Literal(lit) => {
                if !rest.starts_with(lit) {
                    return None;
                }
                pos += lit.len();
            }
            TimePart::Year => {
                let (v, n) = take_num(4)?;
                y = i64::from(v);
                pos += n;
            }
            TimePart::Month => {
                let (v, n) = take_num(2)?;
                mo = v;
                pos += n;
            }
            TimePart::MonthAbbrev => {
                mo = month_abbrev(rest.get(..3)?)?;
                pos += 3;
            }
            TimePart::Day => {
                let (v, n) = take_num(2)?;
                d = v;
                pos += n;
            }
            TimePart::Hour => {
                let (v, n) = take_num(2)?;
                h = v;
                pos += n;
            }
            TimePart::Minute => {
                let (v, n) = take_num(2)?;
                mi = v;
                pos += n;
            }
            TimePart::Second => {
                let (v, n) = take_num(2)?;
                s = v;
                pos += n;
            }
            TimePart::Zone => {
                off = offset(rest.get(..5)?)?;
                pos += 5;
            }
        }
    }
    if pos != b.len() {
        return None;
    }
    Some(to_epoch(y, mo, d, h, mi, s)? - off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for days in (-200_000..200_000).step_by(17) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn clf_applies_the_offset_and_caches_the_minute() {
        let mut cache = TimeCache::new();
        // 2000-10-10T20:55:36Z
        assert_eq!(cache.clf(b"10/Oct/2000:13:55:36 -0700"), Some(971_211_336));
        assert_eq!(cache.clf(b"10/Oct/2000:13:55:59 -0700"), Some(971_211_359));
        // Same minute, other zone: must not reuse the cached base.
        assert_eq!(cache.clf(b"10/Oct/2000:13:55:36 +0000"), Some(971_186_136));
        assert_eq!(
            cache.clf(b"17/May/2015:10:05:03 +0000"),
            Some(1_431_857_103)
        );
        assert_eq!(rfc3339(1_431_857_103), "2015-05-17T10:05:03Z");
    }

    #[test]
    fn bsd_syslog_takes_the_year_of_now_unless_that_is_the_future() {
        // now: 2026-12-06T10:00:00Z
        let now = iso8601(b"2026-12-06T10:00:00Z").unwrap();
        let at = |s: &str| iso8601(s.as_bytes());
        for (text, want) in [
            ("Jul  8 11:07:07", at("2026-07-08T11:07:07Z")),
            ("Jul 08 11:07:07", at("2026-07-08T11:07:07Z")),
            ("Dec  6 23:59:59", at("2026-12-06T23:59:59Z")),
            ("Dec 31 23:59:59", at("2025-12-31T23:59:59Z")),
            ("Feb 29 00:00:00", at("2024-02-29T00:00:00Z")),
            ("jul 18 01:02:03", at("2026-07-18T01:02:03Z")),
            ("Jul  8 24:07:07", None),
            ("Jul 32 11:07:07", None),
            ("Jux  8 11:07:07", None),
            ("Jul  8 11:07:0", None),
            ("Jul  811:07:07x", None),
        ] {
            assert_eq!(bsd_syslog(text.as_bytes(), now), want, "{text}");
        }
    }

    proptest::proptest! {
        /// Lines a few seconds, minutes or hours apart, in one zone or another, read
        /// through one cache as a worker reads them.
        #[test]
        fn clf_through_one_cache_agrees_with_a_fresh_cache(
            times in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["28/Feb/2000", "29/Feb/2000", "01/Mar/2000", "01/Mar/2100"]),
                    proptest::sample::select(vec!["00", "01", "10", "11", "23", "24"]),
                    proptest::sample::select(vec!["00", "01", "10", "11", "59", "60"]),
                    proptest::sample::select(vec!["00", "09", "59", "60", "61", "6x", "5:"]),
                    proptest::sample::select(vec!["+0000", "+0001", "+0010", "+0100", "-0100", "+0130"]),
                ),
                1..40,
            ),
        ) {
            let mut cache = TimeCache::new();
            for (day, hour, minute, second, zone) in times {
                let t = format!("{day}:{hour}:{minute}:{second} {zone}");
                proptest::prop_assert_eq!(cache.clf(t.as_bytes()), TimeCache::new().clf(t.as_bytes()), "{}", t);
            }
        }
    }

    #[test]
    fn clf_cached_agrees_with_a_fresh_cache() {
        // Through minutes, hours, days, zones and broken minutes, in order and back.
        let mut texts = Vec::new();
        for day in ["28/Feb/2000", "29/Feb/2000", "01/Mar/2000", "31/Dec/2025"] {
            for hour in ["00", "01", "23"] {
                for minute in ["00", "07", "59", "60", "6x"] {
                    for zone in ["+0000", "-0700", "+0130", "+0131"] {
                        texts.push(format!("{day}:{hour}:{minute}:09 {zone}"));
                        texts.push(format!("{day}:{hour}:{minute}:60 {zone}"));
                    }
                }
            }
        }
        let mut cache = TimeCache::new();
        for t in texts.iter().chain(texts.iter().rev()) {
            let want = TimeCache::new().clf(t.as_bytes());
            assert_eq!(cache.clf(t.as_bytes()), want, "{t}");
        }
        assert_eq!(
            TimeCache::new().clf(b"10/Oct/2000:13:60:00 +0000"),
            None,
            "minute 60"
        );
    }

    #[test]
    fn clf_rejects_broken_dates() {
        let mut cache = TimeCache::new();
        for bad in [
            &b"32/Oct/2000:13:55:36 -0700"[..],
            b"10/Foo/2000:13:55:36 -0700",
            b"29/Feb/2001:13:55:36 +0000",
            b"10/Oct/2000:24:55:36 -0700",
            b"10/Oct/2000:13:55:36 -07000",
            b"10/Oct/2000:13:55:36 x0700",
            b"10/Oct/2000:13:55:5: -0700",
            b"10/Oct/2000:13:55::0 -0700",
            b"10/Oct/2000:13:55:/9 -0700",
            b"10/Oct/2000:13:55:61 -0700",
            b"",
        ] {
            assert_eq!(cache.clf(bad), None, "{}", String::from_utf8_lossy(bad));
            // And once the minute is cached.
            cache
                .clf(b"10/Oct/2000:13:55:00 -0700")
                .expect("a good time");
            assert_eq!(cache.clf(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(cache.clf(b"29/Feb/2000:00:00:00 +0000"), Some(951_782_400));
    }

    #[test]
    fn iso_forms() {
        assert_eq!(iso8601(b"2015-05-17T10:05:03+00:00"), Some(1_431_857_103));
        assert_eq!(iso8601(b"2015-05-17T12:05:03+02:00"), Some(1_431_857_103));
        assert_eq!(iso8601(b"2015-05-17T10:05:03.123456Z"), Some(1_431_857_103));
        assert_eq!(iso8601(b"2015-05-17 10:05:03"), Some(1_431_857_103));
        assert_eq!(iso8601(b"2015-05-17T10:05:03.Z"), None);
        assert_eq!(iso8601(b"2015-13-17T10:05:03Z"), None);
    }

    #[test]
    fn epoch_forms() {
        assert_eq!(epoch(b"1431857103.123", 1), Some(1_431_857_103));
        assert_eq!(epoch(b"1431857103", 1), Some(1_431_857_103));
        assert_eq!(epoch(b"1431857103123", 1000), Some(1_431_857_103));
        assert_eq!(epoch(b"-1", 1), None);
        assert_eq!(epoch(b"99999999999999999999", 1), None);
        assert_eq!(epoch(b"1.2.3", 1), None);
    }

    #[test]
    fn strftime_patterns() {
        let parts = compile_strftime("%Y-%m-%dT%H:%M:%S %z").unwrap();
        assert_eq!(
            strftime(&parts, b"2015-05-17T12:05:03 +0200"),
            Some(1_431_857_103)
        );
        assert_eq!(strftime(&parts, b"2015-05-17T12:05:03 +0200x"), None);
        let parts = compile_strftime("[%d/%b/%Y:%T %z]").unwrap();
        assert_eq!(
            strftime(&parts, b"[17/May/2015:10:05:03 +0000]"),
            Some(1_431_857_103)
        );
        assert!(compile_strftime("%Q").is_err());
    }
}

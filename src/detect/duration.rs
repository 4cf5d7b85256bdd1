//! Parsing and printing the short durations rules are written with (`200ms`, `10s`, `1m`,
//! `4h`, `7d`), in whole milliseconds. Nothing else in logward reads durations this way.

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d` into milliseconds.
///
/// One number and one unit only: `1m30s` is refused rather than half-read, and so is a bare
/// number, because `10` could mean seconds or milliseconds and a guess would silently change
/// a threshold by a factor of a thousand.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "`{text}` is not a duration: expected a number and a unit such as 200ms, 10s, 1m, 4h or 7d"
        ));
    }
    let (number, unit) = text.split_at(digits);
    let value: i64 = number
        .parse()
        .map_err(|_| format!("`{text}`: the number is too large"))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("`{text}` has no unit: write ms, s, m, h or d")),
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit `{unit}`: write ms, s, m, h or d"
            ));
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Prints milliseconds in the largest unit that divides them exactly, so a printed
/// duration parses back to the same value.
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    for (scale, unit) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ] {
        if ms % scale == 0 {
            return format!("{}{unit}", ms / scale);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("200ms"), Ok(200));
        assert_eq!(parse_duration("10s"), Ok(10_000));
        assert_eq!(parse_duration("1m"), Ok(60_000));
        assert_eq!(parse_duration("4h"), Ok(14_400_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert_eq!(parse_duration(" 0s "), Ok(0));
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "10",
            "s",
            "1m30s",
            "-1s",
            "1.5s",
            "10 s",
            "3w",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_duration("9999999999999999d").is_err());
    }

    #[test]
    fn printing() {
        assert_eq!(format_duration(200), "200ms");
        assert_eq!(format_duration(500), "500ms");
        assert_eq!(format_duration(10_000), "10s");
        assert_eq!(format_duration(60_000), "1m");
        assert_eq!(format_duration(90_000), "90s");
        assert_eq!(format_duration(0), "0s");
    }

    proptest! {
        #[test]
        fn print_then_parse_is_identity(ms in 0i64..1_000_000_000_000) {
            prop_assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }
    }
}

//! The durations rules are written with (`200ms`, `10s`, `1m`, `4h`, `7d`), in whole
//! milliseconds: [`crate::timefmt::parse_duration_ms`] and its printer, with the messages a
//! rule file's reader shows. The parsing itself is timefmt's.

use crate::timefmt::{self, DurationError};

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d` into milliseconds (see
/// [`timefmt::parse_duration_ms`]), saying what is wrong with a refused one.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    timefmt::parse_duration_ms(text).map_err(|e| match e {
        DurationError::NoNumber => format!(
            "`{text}` is not a duration: expected a number and a unit such as 200ms, 10s, 1m, 4h or 7d"
        ),
        DurationError::NumberTooLarge => format!("`{text}`: the number is too large"),
        DurationError::NoUnit => format!("`{text}` has no unit: write ms, s, m, h or d"),
        DurationError::UnknownUnit(unit) => {
            format!("`{text}` has an unknown unit `{unit}`: write ms, s, m, h or d")
        }
        DurationError::TooLong => format!("`{text}` is too long a duration"),
    })
}

/// Prints milliseconds in the largest unit that divides them exactly, so a printed
/// duration parses back to the same value.
pub fn format_duration(ms: i64) -> String {
    timefmt::format_duration_ms(ms)
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
    fn refusals_say_why() {
        assert_eq!(
            parse_duration(" 3w "),
            Err("`3w` has an unknown unit `w`: write ms, s, m, h or d".to_string())
        );
        assert_eq!(
            parse_duration("10"),
            Err("`10` has no unit: write ms, s, m, h or d".to_string())
        );
        assert!(
            parse_duration("s")
                .unwrap_err()
                .contains("is not a duration")
        );
        assert!(
            parse_duration("99999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("9999999999999999d")
                .unwrap_err()
                .contains("too long")
        );
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

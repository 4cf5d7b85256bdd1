//! Choosing a file's format from its first lines: the one asked for, or with `auto` the
//! format that parses most of them ([`detect`]), with a note saying how for reports. It does
//! not read files: callers hand it the head they read.

use super::{DETECT_LINES, Format, FormatSpec, detect};

/// A file's format as chosen from its first lines, with a note on how (`auto: 198 of 200
/// sample lines`, or why none was chosen) for reports.
#[derive(Clone, Debug)]
pub struct Chosen {
    /// The format, `None` when no format parses the head.
    pub format: Option<Format>,
    /// How it was chosen, or why none was.
    pub note: Option<String>,
}

/// Chooses the format for a file whose first lines are `head` (see `scan::read_head`): the
/// fixed one, or with `auto` the preset that parses most of them.
pub fn choose_format(spec: &FormatSpec, head: &[u8]) -> Chosen {
    match spec {
        FormatSpec::Fixed(f) => Chosen {
            format: Some(f.clone()),
            note: None,
        },
        FormatSpec::Auto => match detect(sample_lines(head)) {
            Some(d) => Chosen {
                note: Some(format!("auto: {} of {} sample lines", d.parsed, d.sampled)),
                format: Some(d.format),
            },
            None => {
                let empty = head.iter().all(|b| b.is_ascii_whitespace());
                Chosen {
                    format: None,
                    note: Some(if empty {
                        "empty".to_string()
                    } else {
                        "no known format matches the first lines; give one with --format"
                            .to_string()
                    }),
                }
            }
        },
    }
}

/// Splits sample bytes into lines for format detection.
fn sample_lines(head: &[u8]) -> Vec<&[u8]> {
    head.split(|b| *b == b'\n').take(DETECT_LINES).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMBINED: &str = "203.0.113.7 - - [22/Nov/2026:04:39:16 +0000] \"GET / HTTP/1.1\" 200 512 \"-\" \"curl/8.5\"\n";

    #[test]
    fn a_fixed_format_is_taken_as_given() {
        let fixed = FormatSpec::parse("common").unwrap();
        let chosen = choose_format(&fixed, b"not a log line\n");
        assert_eq!(
            chosen.format.map(|f| f.name().to_string()),
            Some("common".into())
        );
        assert_eq!(chosen.note, None);
    }

    #[test]
    fn auto_says_how_many_sample_lines_the_choice_parsed() {
        let head = format!("{COMBINED}{COMBINED}garbage\n");
        let chosen = choose_format(&FormatSpec::Auto, head.as_bytes());
        assert_eq!(
            chosen.format.map(|f| f.name().to_string()),
            Some("combined".into())
        );
        assert_eq!(chosen.note.as_deref(), Some("auto: 2 of 3 sample lines"));
    }

    #[test]
    fn auto_without_a_match_says_why() {
        let empty = choose_format(&FormatSpec::Auto, b" \n\n");
        assert!(empty.format.is_none());
        assert_eq!(empty.note.as_deref(), Some("empty"));
        let other = choose_format(&FormatSpec::Auto, b"hello\nworld\n");
        assert!(other.format.is_none());
        assert!(other.note.unwrap().starts_with("no known format matches"));
    }
}

//! The contents of a JSON string as Docker's json-file driver writes a log line: decoding
//! (with a record of where every escape sequence was, so a position in the decoded text can
//! be taken back to the escaped one), and encoding text the way Docker does. Finding the
//! string in the line is [`super::strip`](mod@super::strip)'s job.
//!
//! Escapes follow RFC 8259 section 7: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t` and
//! `\uXXXX`, with a surrogate pair as two of the last.

/// One escape sequence of an escaped string: where it starts in the escaped text, how long
/// it is, and the same for the bytes it decodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Escape {
    /// Where the sequence starts in the escaped text.
    pub escaped: u32,
    /// Its length in the escaped text (`\n` is 2, `\u00e9` 6).
    pub escaped_len: u8,
    /// Where its bytes start in the decoded text.
    pub decoded: u32,
    /// How many bytes it decodes to.
    pub decoded_len: u8,
}

/// Appends the decoded `text` (the bytes between the quotes) to `out`. With `escapes`,
/// every escape sequence is recorded there, offsets relative to `text` and to the decoded
/// text (which starts at `out`'s length on entry). A malformed escape fails with its
/// offset in `text`; a lone surrogate decodes to U+FFFD, as a lenient decoder does.
pub fn decode(
    text: &[u8],
    out: &mut Vec<u8>,
    mut escapes: Option<&mut Vec<Escape>>,
) -> Result<(), usize> {
    let base = out.len();
    let mut pos = 0;
    while let Some(i) = memchr::memchr(b'\\', &text[pos..]) {
        let at = pos + i;
        out.extend_from_slice(&text[pos..at]);
        let decoded_at = out.len() - base;
        let len = match text.get(at + 1) {
            Some(b'"') => push(out, b'"'),
            Some(b'\\') => push(out, b'\\'),
            Some(b'/') => push(out, b'/'),
            Some(b'b') => push(out, 0x08),
            Some(b'f') => push(out, 0x0c),
            Some(b'n') => push(out, b'\n'),
            Some(b'r') => push(out, b'\r'),
            Some(b't') => push(out, b'\t'),
            Some(b'u') => unicode(text, at, out).ok_or(at)?,
            _ => return Err(at),
        };
        if let Some(list) = escapes.as_deref_mut() {
            list.push(Escape {
                escaped: at as u32,
                escaped_len: len as u8,
                decoded: decoded_at as u32,
                decoded_len: (out.len() - base - decoded_at) as u8,
            });
        }
        pos = at + len;
    }
    out.extend_from_slice(&text[pos..]);
    Ok(())
}

fn push(out: &mut Vec<u8>, b: u8) -> usize {
    out.push(b);
    2
}

/// A `\uXXXX` at `at` (a pair for a surrogate): appends its UTF-8 and returns its length.
fn unicode(text: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let first = hex4(text.get(at + 2..at + 6)?)?;
    let (c, len) = match first {
        0xd800..=0xdbff => {
            let low = text
                .get(at + 6..at + 8)
                .filter(|p| *p == b"\\u")
                .and_then(|_| hex4(text.get(at + 8..at + 12)?))
                .filter(|l| (0xdc00..=0xdfff).contains(l));
            match low {
                Some(low) => (0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00), 12),
                None => (0xfffd, 6),
            }
        }
        0xdc00..=0xdfff => (0xfffd, 6),
        c => (c, 6),
    };
    let c = char::from_u32(c).unwrap_or('\u{fffd}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    Some(len)
}

fn hex4(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |v, &c| {
        let d = (c as char).to_digit(16)?;
        Some(v * 16 + d)
    })
}

/// Where offset `at` of the decoded text lies in the escaped text, given the escapes
/// [`decode`] recorded. An offset inside the bytes of one escape goes to the start of its
/// escape sequence, or with `up` to its end, so a range taken back never splits one.
pub fn escaped_offset(escapes: &[Escape], at: usize, up: bool) -> usize {
    let before = escapes.partition_point(|e| (e.decoded as usize) < at);
    let Some(e) = before.checked_sub(1).map(|i| escapes[i]) else {
        return at;
    };
    let (decoded_end, escaped_end) = (
        e.decoded as usize + usize::from(e.decoded_len),
        e.escaped as usize + usize::from(e.escaped_len),
    );
    if at >= decoded_end {
        escaped_end + (at - decoded_end)
    } else if up {
        escaped_end
    } else {
        e.escaped as usize
    }
}

/// Appends `text` escaped as Docker (Go's JSON encoder) writes a log line: `"` and `\`
/// with a backslash, `\n`, `\r`, `\t`, other control bytes and `<`, `>`, `&` as `\u00XX`,
/// U+2028 and U+2029 as `\u2028` and `\u2029`; every other byte as it is.
pub fn encode(text: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 | b'<' | b'>' | b'&' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            0xe2 if matches!(text.get(i + 1..i + 3), Some([0x80, 0xa8 | 0xa9])) => {
                out.extend_from_slice(if text[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &[u8]) -> (Vec<u8>, Vec<Escape>) {
        let (mut out, mut escapes) = (Vec::new(), Vec::new());
        decode(text, &mut out, Some(&mut escapes)).unwrap();
        (out, escapes)
    }

    #[test]
    fn decodes_every_escape() {
        let table: &[(&[u8], &[u8])] = &[
            (br#"plain"#, b"plain"),
            (br#"a\"b\\c\/d"#, b"a\"b\\c/d"),
            (br#"\b\f\n\r\t"#, b"\x08\x0c\n\r\t"),
            (br#"\u001b[31m"#, b"\x1b[31m"),
            (br#"x\u0026y\u003cz"#, b"x&y<z"),
            (br#"\u00e9"#, "é".as_bytes()),
            (br#"\ud83d\ude00"#, "😀".as_bytes()),
            (br#"\ud83d!"#, "\u{fffd}!".as_bytes()),
            (br#"\ude00"#, "\u{fffd}".as_bytes()),
        ];
        for (text, want) in table {
            assert_eq!(decoded(text).0, *want, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn malformed_escapes_fail_with_their_offset() {
        let mut out = Vec::new();
        for (text, at) in [
            (&br#"ab\"#[..], 2),
            (br#"\x"#, 0),
            (br#"a\u12"#, 1),
            (br#"\u12g4"#, 0),
        ] {
            assert_eq!(decode(text, &mut out, None), Err(at));
        }
    }

    #[test]
    fn offsets_go_back_to_the_escaped_text() {
        // `a\"1.2.3.4\u00e9b`: decoded `a"1.2.3.4éb`.
        let text = br#"a\"1.2.3.4\u00e9b"#;
        let (out, escapes) = decoded(text);
        assert_eq!(out, "a\"1.2.3.4éb".as_bytes());
        for (at, up, want) in [
            (0, false, 0),
            (1, false, 1),
            (2, false, 3),
            (9, false, 10),
            (10, false, 10),
            (10, true, 16),
            (11, true, 16),
            (11, false, 16),
            (12, false, 17),
        ] {
            assert_eq!(escaped_offset(&escapes, at, up), want, "at {at} up {up}");
        }
        // Every decoded range taken back holds the same text once decoded again.
        let back = &text[escaped_offset(&escapes, 2, false)..escaped_offset(&escapes, 9, true)];
        assert_eq!(back, b"1.2.3.4");
    }

    #[test]
    fn encode_then_decode_is_the_identity() {
        let samples: &[&[u8]] = &[
            b"1.2.3.4 - - \"GET /?a=1&b=<x> HTTP/1.1\" 200",
            b"\x1b[0m\ttab\\back\r\n",
            "caf\u{e9} \u{2028}\u{2029} 😀".as_bytes(),
            b"\x00\x01\x7f",
        ];
        for s in samples {
            let mut escaped = Vec::new();
            encode(s, &mut escaped);
            assert!(!escaped.contains(&b'\n') && !escaped.contains(&b'<'));
            let mut back = Vec::new();
            decode(&escaped, &mut back, None).unwrap();
            assert_eq!(&back, s);
        }
        let mut escaped = Vec::new();
        encode(b"a\"b<&>\x1b", &mut escaped);
        assert_eq!(escaped, br#"a\"b\u003c\u0026\u003e\u001b"#);
    }
}

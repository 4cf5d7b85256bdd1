//! Making untrusted text safe for a terminal: file names (anyone who can write a log
//! directory chooses them) and log-derived strings (any client chooses them) are shown
//! with control characters, bidi overrides and other invisible format characters as
//! escapes, so they can neither drive the terminal nor hide or reorder what is shown.
//!
//! JSON made by logward goes through [`json_ascii`], which leaves only printable ASCII, so
//! a JSON line is safe on a terminal too and means the same to any JSON reader.
//!
//! It owns only the escaping; what is printed, and where, is the callers' business.

use std::io::Write;
use std::path::Path;

/// Whether `c` must not reach a terminal raw: controls (C0, DEL, C1; a tab is kept),
/// the bidirectional overrides and isolates, and zero-width or other format characters
/// that change how the text around them reads.
fn must_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c as u32,
            0x061c | 0x180e | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff
            | 0xfff9..=0xfffb)
}

/// Writes `bytes` so that they cannot drive a terminal: characters that must not reach it
/// raw become `\xNN` (below U+0080) or `\u{NNNN}`, bytes that are not UTF-8 become `\xNN`,
/// and a backslash becomes `\\` so the escapes are unambiguous. Tabs are kept.
pub fn for_terminal(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut start = 0;
        for (i, c) in valid.char_indices() {
            if c == '\\' || must_escape(c) {
                out.extend_from_slice(&valid.as_bytes()[start..i]);
                let _ = match c {
                    '\\' => write!(out, "\\\\"),
                    c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
                    c => write!(out, "\\u{{{:x}}}", c as u32),
                };
                start = i + c.len_utf8();
            }
        }
        out.extend_from_slice(&valid.as_bytes()[start..]);
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// Appends JSON text as serde_json wrote it, with every character outside printable ASCII
/// that serde_json leaves as it is (DEL, and every non-ASCII character: C1 controls, bidi
/// overrides, zero-width characters) written as a `\uXXXX` escape (two, a surrogate pair,
/// beyond U+FFFF). Such characters occur only inside JSON strings, where the escape stands
/// for the same character, so the JSON value is unchanged; serde_json already escapes the
/// C0 controls, `"` and `\`.
pub fn json_ascii(json: &str, out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, c) in json.char_indices() {
        if c.is_ascii() && c != '\x7f' {
            continue;
        }
        out.extend_from_slice(&json.as_bytes()[start..i]);
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            let _ = write!(out, "\\u{unit:04x}");
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&json.as_bytes()[start..]);
}

/// [`for_terminal`] into a new string.
pub fn text(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    for_terminal(bytes, &mut out);
    // Only ASCII escapes and whole UTF-8 sequences were written.
    String::from_utf8(out).unwrap_or_default()
}

/// A path as shown to a person: [`text`] of its bytes. Use it wherever a path is printed.
pub fn path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    text(p.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_bad_bytes_are_escaped() {
        assert_eq!(
            text(b"a\x1b[31mred\tb\\ \xff \xc2\x9b z\r"),
            "a\\x1b[31mred\tb\\\\ \\xff \\u{9b} z\\x0d"
        );
        assert_eq!(text("x\u{202e}gol.exe".as_bytes()), "x\\u{202e}gol.exe");
        assert_eq!(
            text("a\u{200b}b\u{feff}".as_bytes()),
            "a\\u{200b}b\\u{feff}"
        );
        assert_eq!(text("café 日本".as_bytes()), "café 日本");
        assert_eq!(
            path(Path::new("\x1b]0;x\x07\x1b[2Jevil.access.log")),
            "\\x1b]0;x\\x07\\x1b[2Jevil.access.log"
        );
    }

    #[test]
    fn json_ascii_escapes_every_non_ascii_character_and_keeps_the_value() {
        let value = serde_json::json!({
            "ua": "a\u{1b}[31m \u{7f} \u{9b} x\u{202e}gol caf\u{e9} \u{1f600} \\ \"",
            "k\u{e9}y": 1,
        });
        let json = serde_json::to_string_pretty(&value).unwrap();
        let mut out = Vec::new();
        json_ascii(&json, &mut out);
        assert!(
            out.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\n'),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r"\u001b[31m \u007f \u009b x\u202egol caf\u00e9 \ud83d\ude00"),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
    }
}

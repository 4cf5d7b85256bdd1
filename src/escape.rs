//! Making untrusted text safe for a terminal: file names (anyone who can write a log
//! directory chooses them) and log-derived strings (any client chooses them) are shown
//! with control characters, bidi overrides and other invisible format characters as
//! escapes, so they can neither drive the terminal nor hide or reorder what is shown.
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
}

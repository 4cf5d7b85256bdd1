//! Making untrusted text safe for a terminal: file names (anyone who can write a log
//! directory chooses them) and log-derived strings (any client chooses them) are shown
//! with every byte outside printable ASCII as an escape, so they can neither drive the
//! terminal nor hide or reorder what is shown. This is the one escaping of text for people
//! (`\xNN`, with `\` doubled); stored samples are kept in it too.
//!
//! JSON made by logward goes through [`json_ascii`], which leaves only printable ASCII, so
//! a JSON line is safe on a terminal too and means the same to any JSON reader.
//!
//! HTML made by logward (the `report` page) goes through [`html`]: the same rule, then the
//! characters HTML gives a meaning to, so log text is inert in text and in quoted
//! attributes alike.
//!
//! It owns only the escaping; what is printed, and where, is the callers' business.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` so that they cannot drive a terminal: printable ASCII stays, a backslash
/// becomes `\\` so the escapes are unambiguous, and every other byte becomes `\xNN`
/// (controls, a tab included, escape sequences, and each byte of a non-ASCII character).
///
/// The strictest rule is the only one that needs no list of dangerous characters: a rule
/// that keeps Unicode text must name every control, bidirectional override, invisible
/// format character (soft hyphen, tag characters) and line separator, and still lets bytes
/// 0x80-0x9f inside UTF-8 sequences act as C1 controls (0x9b is CSI) on a terminal that
/// reads 8-bit text. The output is ASCII, safe in any locale and in JSON.
pub fn for_terminal(bytes: &[u8], out: &mut Vec<u8>) {
    escape(bytes, true, out);
}

/// Text that should already be [`for_terminal`]'s output but may not be (a stored value
/// that was edited by hand), made safe the same way except that a backslash stays as it
/// is: escaped text comes back unchanged.
pub fn again(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    escape(text.as_bytes(), false, &mut out);
    ascii(out)
}

/// The escaping: printable ASCII is copied a run at a time, `\` doubled when asked, every
/// other byte written as `\xNN`.
fn escape(bytes: &[u8], double_backslash: bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if (0x20..0x7f).contains(&b) && !(b == b'\\' && double_backslash) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if b == b'\\' {
            out.extend_from_slice(b"\\\\");
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `bytes` for an HTML page, in element text or a quoted attribute value: first
/// [`for_terminal`]'s rule (only printable ASCII is left, so no byte can open a comment,
/// a CDATA section or a character the parser would read otherwise), then `&`, `<`, `>`, `"`
/// and `'` as character references. Never put the result in a `<script>` or `<style>`.
pub fn html(bytes: &[u8], out: &mut String) {
    let mut plain = Vec::with_capacity(bytes.len());
    for_terminal(bytes, &mut plain);
    html_chars(&plain, out);
}

/// [`html`] for text that should already be [`for_terminal`]'s output (a stored sample
/// line): made safe as [`again`] does, so its escapes are shown as they are, not doubled.
pub fn html_escaped(text: &str, out: &mut String) {
    let mut plain = Vec::with_capacity(text.len());
    escape(text.as_bytes(), false, &mut plain);
    html_chars(&plain, out);
}

/// Printable ASCII with HTML's five special characters as references.
fn html_chars(plain: &[u8], out: &mut String) {
    for &b in plain {
        match b {
            b'&' => out.push_str("&amp;"),
            b'<' => out.push_str("&lt;"),
            b'>' => out.push_str("&gt;"),
            b'"' => out.push_str("&quot;"),
            b'\'' => out.push_str("&#39;"),
            b => out.push(char::from(b)),
        }
    }
}

/// Escaped bytes as a string: they are ASCII.
fn ascii(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
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
    ascii(out)
}

/// A path as shown to a person: [`text`] of its bytes. Use it wherever a path is printed.
pub fn path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    text(p.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule, checked against a byte-by-byte statement of it on every byte value.
    #[test]
    fn every_byte_outside_printable_ascii_is_escaped() {
        for b in 0..=255u8 {
            let want = match b {
                b'\\' => "\\\\".to_string(),
                0x20..=0x7e => (b as char).to_string(),
                _ => format!("\\x{b:02x}"),
            };
            assert_eq!(text(&[b]), want, "byte {b:#04x}");
            if let Ok(one) = std::str::from_utf8(&[b]) {
                let again_want = if b == b'\\' { "\\".to_string() } else { want };
                assert_eq!(again(one), again_want, "byte {b:#04x}");
            }
        }
    }

    #[test]
    fn controls_bidi_invisible_and_bad_bytes_are_escaped() {
        assert_eq!(
            text(b"a\x1b[31mred\tb\\ \xff \xc2\x9b z\r"),
            "a\\x1b[31mred\\x09b\\\\ \\xff \\xc2\\x9b z\\x0d"
        );
        // A bidi override, a zero-width space, a tag character (invisible), a soft hyphen
        // and a line separator: none reaches the terminal.
        for c in [
            '\u{202e}',
            '\u{200b}',
            '\u{e0041}',
            '\u{ad}',
            '\u{2028}',
            '\u{feff}',
        ] {
            let shown = text(format!("x{c}y").as_bytes());
            assert!(shown.bytes().all(|b| (0x20..0x7f).contains(&b)), "{shown}");
            assert!(shown.starts_with("x\\x") && shown.ends_with('y'), "{shown}");
        }
        assert_eq!(text("café".as_bytes()), "caf\\xc3\\xa9");
        assert_eq!(
            path(Path::new("\x1b]0;x\x07\x1b[2Jevil.access.log")),
            "\\x1b]0;x\\x07\\x1b[2Jevil.access.log"
        );
    }

    /// Escaped text read back is the same; anything else in it is escaped.
    #[test]
    fn again_leaves_escaped_text_unchanged() {
        for raw in [&b"GET / \x07\x1b]0;x\r\n"[..], "é\\".as_bytes(), b"plain"] {
            let escaped = text(raw);
            assert_eq!(again(&escaped), escaped);
        }
        assert_eq!(again("ok\\x00"), "ok\\x00");
        assert_eq!(again("a\u{1b}"), "a\\x1b");
        assert_eq!(again("a\u{202e}"), "a\\xe2\\x80\\xae");
    }

    #[test]
    fn html_leaves_no_markup_and_no_quote() {
        let mut out = String::new();
        html(
            b"<script>alert('x')</script> \"a\" & </table> \xe2\x80\xae <!-- ]]>",
            &mut out,
        );
        assert_eq!(
            out,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &quot;a&quot; &amp; \
             &lt;/table&gt; \\xe2\\x80\\xae &lt;!-- ]]&gt;"
        );
        for b in 0..=255u8 {
            let mut one = String::new();
            html(&[b], &mut one);
            assert!(!one.contains(['<', '>', '"', '\'']), "byte {b:#04x}: {one}");
            assert!(
                one.bytes().all(|c| (0x20..0x7f).contains(&c)),
                "byte {b:#04x}"
            );
        }
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

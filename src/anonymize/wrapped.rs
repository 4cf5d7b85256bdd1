//! Writing back Docker's escaped text after masking: the text of a json-file line is
//! decoded to be parsed and masked like any inner line, then written with its escape
//! sequences as they were, so that only the replaced addresses are new bytes. Which bytes
//! are masked is [`super::line`]'s; the wrappers themselves are [`crate::format::wrap`]'s
//! and the per-line decisions [`super::retention`]'s.

use super::line::{Edit, Edits};
use crate::bytes::{common_prefix, common_suffix};
use crate::format::Span;
use crate::format::wrap::json_string::{self, Escape};

/// The escaped text of one line and what [`json_string::decode`] made of it.
pub struct Escaped<'a> {
    /// The escaped text as it is in the line.
    pub(crate) text: &'a [u8],
    /// `text` decoded.
    pub(crate) decoded: &'a [u8],
    /// Where `text` has escape sequences, by offset in the decoded text.
    pub(crate) escapes: &'a [Escape],
}

impl Escaped<'_> {
    /// Where offset `at` of the decoded text is in the escaped text, when it is the edge of
    /// an escape sequence (or outside every one), not inside one.
    fn exact(&self, at: usize) -> Option<usize> {
        let down = json_string::escaped_offset(self.escapes, at, false);
        (down == json_string::escaped_offset(self.escapes, at, true)).then_some(down)
    }
}

/// Appends `text` escaped again after its decoded form was masked into `masked`, with the
/// replacements `edits` (spans in the decoded and the masked text). Every byte of the
/// escaped text outside the replacements is kept as it was; the replacements are escaped
/// as Docker escapes (addresses never need it). When the replacements do not account for
/// every change (too many to list), the text from the first change to the last is escaped
/// again as a whole, which can change how it was escaped.
///
/// `edits` becomes the replacements in the whole lines, for the line check: the text
/// starts at `old_at` in the old line, and the new line at `line_start` in `out`. In the
/// fallback it is forgotten, so the check compares the lines word by word.
pub fn write_escaped(
    text: &Escaped<'_>,
    masked: &[u8],
    edits: &mut Edits,
    old_at: usize,
    line_start: usize,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let listed = *edits;
    if let Some(list) = listed.all() {
        edits.clear();
        if in_place(text, masked, list, old_at, line_start, edits, out) {
            return;
        }
        out.truncate(start);
    }
    edits.forget();
    let decoded = text.decoded;
    let mut from = common_prefix(decoded, masked);
    let room = decoded.len().min(masked.len()) - from;
    let same_end = common_suffix(&decoded[from..], &masked[from..]).min(room);
    let mut to = decoded.len() - same_end;
    // Widen the changed range to whole escape sequences.
    while from > 0 && text.exact(from).is_none() {
        from -= 1;
    }
    while to < decoded.len() && text.exact(to).is_none() {
        to += 1;
    }
    let (Some(e_from), Some(e_to)) = (text.exact(from), text.exact(to)) else {
        // Cannot happen (the ends of the text are exact); escape it all again.
        json_string::encode(masked, out);
        return;
    };
    out.extend_from_slice(&text.text[..e_from]);
    json_string::encode(&masked[from..masked.len() - (decoded.len() - to)], out);
    out.extend_from_slice(&text.text[e_to..]);
}

/// The common case of [`write_escaped`]: the masked text equals the decoded text outside
/// the listed replacements, and each replacement's ends are edges of escape sequences.
/// False (with `out` and `edits` partly written) otherwise.
fn in_place(
    text: &Escaped<'_>,
    masked: &[u8],
    list: &[Edit],
    old_at: usize,
    line_start: usize,
    edits: &mut Edits,
    out: &mut Vec<u8>,
) -> bool {
    let (decoded, escaped) = (text.decoded, text.text);
    let (mut d, mut m, mut e) = (0usize, 0usize, 0usize);
    for edit in list {
        let (os, oe) = (edit.old.start as usize, edit.old.end as usize);
        let (ns, ne) = (edit.new.start as usize, edit.new.end as usize);
        if os < d || oe < os || oe > decoded.len() || ns < m || ne < ns || ne > masked.len() {
            return false;
        }
        if decoded[d..os] != masked[m..ns] {
            return false;
        }
        let (Some(es), Some(ee)) = (text.exact(os), text.exact(oe)) else {
            return false;
        };
        out.extend_from_slice(&escaped[e..es]);
        let new_start = out.len() - line_start;
        json_string::encode(&masked[ns..ne], out);
        edits.push(Edit {
            old: Span::new(old_at + es, old_at + ee),
            new: Span::new(new_start, out.len() - line_start),
            host: edit.host,
        });
        (d, m, e) = (oe, ne, ee);
    }
    if decoded[d..] != masked[m..] {
        return false;
    }
    out.extend_from_slice(&escaped[e..]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `text`, applies `replace` (old, new) pairs to the decoded text as a masker
    /// would, listing them as edits or not, and writes it back.
    fn round_trip(text: &[u8], replace: &[(&str, &str)], listed: bool) -> (Vec<u8>, Edits) {
        let (mut decoded, mut escapes) = (Vec::new(), Vec::new());
        json_string::decode(text, &mut decoded, Some(&mut escapes)).unwrap();
        let mut masked = Vec::new();
        let mut edits = Edits::default();
        let mut pos = 0;
        for (old, new) in replace {
            let at =
                pos + memchr::memmem::find(&decoded[pos..], old.as_bytes()).expect("old is there");
            masked.extend_from_slice(&decoded[pos..at]);
            let ns = masked.len();
            masked.extend_from_slice(new.as_bytes());
            edits.push(Edit {
                old: Span::new(at, at + old.len()),
                new: Span::new(ns, masked.len()),
                host: false,
            });
            pos = at + old.len();
        }
        masked.extend_from_slice(&decoded[pos..]);
        if !listed {
            edits.forget();
        }
        let mut out = b"PREFIX".to_vec();
        let escaped = Escaped {
            text,
            decoded: &decoded,
            escapes: &escapes,
        };
        write_escaped(&escaped, &masked, &mut edits, 6, 0, &mut out);
        (out, edits)
    }

    #[test]
    fn only_the_replaced_addresses_change_and_escapes_stay() {
        // Escapes as another encoder wrote them (`\/`, `\u0022`), which Docker's encoder
        // would write otherwise: they must stay as written.
        let text =
            br#"203.0.113.9 - - [x] \"GET \/a?b=1\u00262001:db8::1 HTTP\/1.1\" 200 \u0022ua\u0022"#;
        let replace = [
            ("203.0.113.9", "203.0.113.0"),
            ("2001:db8::1", "2001:db8::"),
        ];
        let (out, edits) = round_trip(text, &replace, true);
        let want = br#"PREFIX203.0.113.0 - - [x] \"GET \/a?b=1\u00262001:db8:: HTTP\/1.1\" 200 \u0022ua\u0022"#;
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
        let list = edits.all().expect("listed");
        assert_eq!(list.len(), 2);
        // The edits index the whole old and new lines.
        let old_line = [&b"PREFIX"[..], text].concat();
        for (e, (old, new)) in list.iter().zip(replace) {
            assert_eq!(e.old.of(&old_line), old.as_bytes());
            assert_eq!(e.new.of(&out), new.as_bytes());
        }
    }

    #[test]
    fn unlisted_changes_are_escaped_again_between_the_first_and_the_last() {
        let text = br#"\u0022203.0.113.9\u0022 \/x\/ \u00222001:db8::1\u0022 \/tail\/"#;
        let replace = [
            ("203.0.113.9", "203.0.113.0"),
            ("2001:db8::1", "2001:db8::"),
        ];
        let (out, edits) = round_trip(text, &replace, false);
        assert!(edits.all().is_none(), "the line check must compare words");
        // Before the first change and after the last, the text is as written; in between
        // it is escaped as Docker does.
        let want = br#"PREFIX\u0022203.0.113.0\" /x/ \"2001:db8::\u0022 \/tail\/"#;
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
        let mut back = Vec::new();
        json_string::decode(&out[6..], &mut back, None).unwrap();
        assert_eq!(back, b"\"203.0.113.0\" /x/ \"2001:db8::\" /tail/");
    }
}

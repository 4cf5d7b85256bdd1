//! The check that a rewritten line differs from the original only in addresses: run on
//! every line before a rewritten file replaces the original, independent of how
//! [`mask_line`](super::line::mask_line) chose what to replace.

use super::line::{Edit, Edits, Remembered, whole_address};
use super::{is_host_name, kept_suffix};
use crate::bytes::{common_prefix, common_suffix};
use crate::format::tokens::tokens;

/// Whether `new` differs from `old` only where [`mask_line`](super::mask_line) may change
/// it, checked before a rewritten file replaces the original. Both lines are split at ASCII
/// whitespace (masking never adds or removes any) and compared word by word. A word that
/// differs is accepted when either:
///
/// * both words hold the same number of address tokens, of the same families in order,
///   and are byte-equal outside them; or
/// * the old word is a whole host name and the new word is its masked form: `x` or `h` and
///   16 lowercase hex digits, then exactly the labels the host-name rule keeps.
///
/// So a host name is recognised only when it is a whole word, as Apache's `%h` writes it;
/// a quoted or embedded host name that was masked makes this return false, which is the
/// safe answer.
pub fn only_addresses_changed(old: &[u8], new: &[u8]) -> bool {
    LineVerifier::default().only_addresses_changed(old, new)
}

/// [`only_addresses_changed`] for the lines of one file, remembering the last changed word
/// it accepted: most lines change only their client, and a client repeats on consecutive
/// lines, so the same pair of words is usually checked again.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineVerifier {
    old: Remembered,
    new: Remembered,
}

impl LineVerifier {
    /// See [`only_addresses_changed`].
    pub fn only_addresses_changed(&mut self, old: &[u8], new: &[u8]) -> bool {
        only_addresses_changed_in(old, new, self)
    }

    /// [`only_addresses_changed`], told where the masker replaced text: when `new` equals
    /// `old` outside the replacements, and each replacement is an address of the family of
    /// the address it replaced (or a host name's masked form), the line is accepted without
    /// splitting it into words. Anything else is checked word by word as before.
    pub fn check(&mut self, old: &[u8], new: &[u8], edits: &Edits) -> bool {
        if let Some(edits) = edits.all() {
            if self.only_edits_changed(old, new, edits) {
                return true;
            }
        }
        self.only_addresses_changed(old, new)
    }

    fn only_edits_changed(&mut self, old: &[u8], new: &[u8], edits: &[Edit]) -> bool {
        let (mut o, mut n) = (0usize, 0usize);
        for e in edits {
            let (os, oe) = (e.old.start as usize, e.old.end as usize);
            let (ns, ne) = (e.new.start as usize, e.new.end as usize);
            if os < o || os > oe || oe > old.len() || ns < n || ns > ne || ne > new.len() {
                return false;
            }
            // Most lines start with their first replacement: nothing to compare before it.
            if (os > o || ns > n) && old[o..os] != new[n..ns] {
                return false;
            }
            let (a, b) = (&old[os..oe], &new[ns..ne]);
            if !self.accepted_before(a, b) {
                let accepted = if e.host {
                    host_replaced(a, b)
                } else {
                    matches!(
                        (whole_address(a), whole_address(b)),
                        (Some(x), Some(y)) if x.is_ipv4() == y.is_ipv4()
                    )
                };
                if !accepted {
                    return false;
                }
                self.remember(a, b);
            }
            (o, n) = (oe, ne);
        }
        old[o..] == new[n..]
    }

    fn accepted_before(&self, old: &[u8], new: &[u8]) -> bool {
        self.old.is(old) && self.new.is(new)
    }

    fn remember(&mut self, old: &[u8], new: &[u8]) {
        // Both or neither: a half-updated pair would accept a pair never checked.
        if Remembered::fits(old) && Remembered::fits(new) {
            self.old.set(old);
            self.new.set(new);
        }
    }
}

fn only_addresses_changed_in(old: &[u8], new: &[u8], memo: &mut LineVerifier) -> bool {
    // Words in the common prefix and suffix are equal pairs; compare only the words that
    // hold the differing bytes. Cut at whitespace, so word boundaries stay the same.
    let prefix = common_prefix(old, new);
    let start = old[..prefix]
        .iter()
        .rposition(u8::is_ascii_whitespace)
        .map_or(0, |i| i + 1);
    // Usually one word changed (the client): when the rest after it is equal, one compare
    // of the rest settles it.
    let word_end = |line: &[u8]| {
        line[prefix..]
            .iter()
            .position(u8::is_ascii_whitespace)
            .map_or(line.len(), |i| prefix + i)
    };
    let (old_word, new_word) = (word_end(old), word_end(new));
    if old[old_word..] == new[new_word..] {
        let (old_word, new_word) = (&old[start..old_word], &new[start..new_word]);
        if memo.accepted_before(old_word, new_word) {
            return true;
        }
        let accepted = words_changed_only_in_addresses(old_word, new_word);
        if accepted {
            memo.remember(old_word, new_word);
        }
        return accepted;
    }
    let room = old.len().min(new.len()) - start;
    let suffix = common_suffix(&old[start..], &new[start..]).min(room);
    let tail = &old[old.len() - suffix..];
    let keep = tail
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(suffix);
    let (old_end, new_end) = (old.len() - suffix + keep, new.len() - suffix + keep);
    words_changed_only_in_addresses(&old[start..old_end], &new[start..new_end])
}

/// Splits both at ASCII whitespace and compares word by word; the whitespace bytes between
/// words must be the same (a tab for a space, or a newline, is a change).
pub(super) fn words_changed_only_in_addresses(old: &[u8], new: &[u8]) -> bool {
    let (mut old, mut new) = (old, new);
    loop {
        let old_end = old.iter().position(u8::is_ascii_whitespace);
        let new_end = new.iter().position(u8::is_ascii_whitespace);
        let a = &old[..old_end.unwrap_or(old.len())];
        let b = &new[..new_end.unwrap_or(new.len())];
        if a != b && !tokens_replaced(a, b) && !host_replaced(a, b) {
            return false;
        }
        match (old_end, new_end) {
            (None, None) => return true,
            (Some(i), Some(j)) if old[i] == new[j] => {
                old = &old[i + 1..];
                new = &new[j + 1..];
            }
            _ => return false,
        }
    }
}

fn tokens_replaced(old: &[u8], new: &[u8]) -> bool {
    // Most changed words are one bare address each (a client field).
    if let (Some(a), Some(b)) = (whole_address(old), whole_address(new)) {
        return a.is_ipv4() == b.is_ipv4();
    }
    let (mut old_tokens, mut new_tokens) = (tokens(old), tokens(new));
    let (mut old_at, mut new_at) = (0usize, 0usize);
    loop {
        match (old_tokens.next(), new_tokens.next()) {
            (None, None) => return old[old_at..] == new[new_at..],
            (Some(a), Some(b)) => {
                let (a_span, b_span) = (a.span, b.span);
                if old[old_at..a_span.start as usize] != new[new_at..b_span.start as usize]
                    || a.addr.is_ipv4() != b.addr.is_ipv4()
                {
                    return false;
                }
                old_at = a_span.end as usize;
                new_at = b_span.end as usize;
            }
            _ => return false,
        }
    }
}

fn host_replaced(old: &[u8], new: &[u8]) -> bool {
    if !is_host_name(old) {
        return false;
    }
    let (old, new) = match (old.strip_suffix(b"."), new.strip_suffix(b".")) {
        (Some(o), Some(n)) => (o, n),
        (None, None) => (old, new),
        _ => return false,
    };
    let kept = kept_suffix(old);
    let label = if kept.is_empty() {
        new
    } else {
        match new
            .strip_suffix(kept)
            .and_then(|rest| rest.strip_suffix(b"."))
        {
            Some(label) => label,
            None => return false,
        }
    };
    label == b"x"
        || (label.len() == 17
            && label[0] == b'h'
            && label[1..]
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anonymize::line::{MAX_EDITS, Select, mask_fields};
    use crate::anonymize::{Masker, Mode, Prefixes};
    use crate::format::record::{AddrField, AddrKind, Span};

    fn truncating(v4: u8, v6: u8) -> Masker {
        Masker::new(&Mode::Truncate(Prefixes::new(v4, v6).unwrap()))
    }

    fn field(kind: AddrKind, line: &str, text: &str) -> AddrField {
        let start = line.find(text).unwrap();
        AddrField {
            kind,
            span: Span::new(start, start + text.len()),
        }
    }

    #[test]
    fn verifier_remembers_only_the_pair_it_accepted() {
        let mut v = LineVerifier::default();
        let mut ok = |a: &str, b: &str| v.only_addresses_changed(a.as_bytes(), b.as_bytes());
        assert!(ok("1.2.3.4 - x", "1.2.3.0 - x"));
        assert!(ok("1.2.3.4 - y", "1.2.3.0 - y"), "the same pair again");
        assert!(
            !ok("1.2.3.4 - x", "1.2.3.0x - x"),
            "same old word, other new word"
        );
        assert!(
            !ok("1.2.3.4x - x", "1.2.3.0 - x"),
            "other old word, same new word"
        );
        assert!(!ok("1.2.3.4 - x", "1.2.3.0 - z"), "the rest differs");
        assert!(
            ok("1.2.3.4 - x", "1.2.3.0 - x"),
            "still accepted after rejections"
        );
        assert!(ok("2001:db8::1 - x", "2001:db8:: - x"));
        // A changed word as long as the "nothing remembered" length.
        let (a, b) = ("a".repeat(254), "b".repeat(254));
        let (old, new) = (format!("{a}1 - x"), format!("{a}2 - x"));
        assert!(!LineVerifier::default().only_addresses_changed(old.as_bytes(), new.as_bytes()));
        let (old, new) = (format!("{a}1 - x"), format!("{b}1 - x"));
        assert!(!LineVerifier::default().only_addresses_changed(old.as_bytes(), new.as_bytes()));
        assert!(!ok("2001:db8::1 - x", "1.2.3.0 - x"), "family changed");
    }

    #[test]
    fn the_check_with_edits_accepts_the_replacements_and_nothing_else() {
        let line = "203.0.113.9 - - \"GET /x?ip=198.51.100.7 HTTP/1.1\" 200";
        let client = field(AddrKind::Client, line, "203.0.113.9");
        let url = field(AddrKind::Other, line, "/x?ip=198.51.100.7").span;
        let mut m = truncating(24, 48);
        let mut out = b"previous\n".to_vec();
        mask_fields(
            line.as_bytes(),
            &[client],
            &[url],
            Select::All,
            &mut m,
            &mut out,
        );
        let new = out[b"previous\n".len()..].to_vec();
        assert_eq!(
            new,
            b"203.0.113.0 - - \"GET /x?ip=198.51.100.0 HTTP/1.1\" 200".to_vec()
        );
        let edits = m.edits;
        let all = edits.all().unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        let old = line.as_bytes();
        let fast = |new: &[u8], edits: &[Edit]| {
            LineVerifier::default().only_edits_changed(old, new, edits)
        };
        assert!(fast(&new, all));
        assert!(LineVerifier::default().check(old, &new, &edits));
        // A byte changed between the replacements, or after the last one.
        for at in [13, new.len() - 1] {
            let mut bad = new.clone();
            bad[at] ^= 1;
            assert!(!fast(&bad, all), "byte {at}");
            assert!(
                !LineVerifier::default().check(old, &bad, &edits),
                "byte {at}"
            );
        }
        // A replacement that is no address.
        let mut bad = new.clone();
        bad[10] = b'x';
        assert!(!fast(&bad, all));
        assert!(!LineVerifier::default().check(old, &bad, &edits));
        // A replacement of the other family, at the place the edit names.
        let other = [b"::1", &new[11..]].concat();
        let v6 = Edit {
            old: Span::new(0, 11),
            new: Span::new(0, 3),
            host: false,
        };
        assert!(!fast(&other, &[v6]));
        assert!(fast(&new, &[all[0], all[1]]));
        assert!(!fast(&new, &[all[1], all[0]]), "edits out of order");
        assert!(!fast(&new, &[all[0]]), "an edit left out");
        // Host names: only the masked form the rule gives.
        let old = b"dsl-1.example.net - x";
        let host = |new: &[u8]| {
            let edit = Edit {
                old: Span::new(0, 17),
                new: Span::new(0, new.len() - 4),
                host: true,
            };
            LineVerifier::default().only_edits_changed(old, new, &[edit])
        };
        assert!(host(b"x.example.net - x"));
        assert!(!host(b"y.example.net - x"));
        assert!(!host(b"x.example.org - x"));
        // Too many replacements to keep: checked word by word.
        let mut many = Edits::default();
        for _ in 0..=MAX_EDITS {
            many.push(all[0]);
        }
        assert!(many.all().is_none());
        assert!(LineVerifier::default().check(line.as_bytes(), &new, &many));
    }

    #[test]
    fn verifier_rejects_other_changes() {
        let ok = |a: &str, b: &str| only_addresses_changed(a.as_bytes(), b.as_bytes());
        assert!(ok("a 1.2.3.4 b", "a 1.2.3.0 b"));
        assert!(ok("a [::1]:80 b", "a [78ff::1]:80 b"));
        assert!(!ok("a 1.2.3.4 b", "a 1.2.3.0 c"));
        assert!(!ok("GET /a 1.2.3.4", "GET /b 1.2.3.0"));
        assert!(!ok("a 1.2.3.4 b", "a 1.2.3.0  b"));
        assert!(!ok("a 1.2.3.4 b", "a\t1.2.3.0 b"), "a tab for a space");
        assert!(!ok("a 1.2.3.4 b", "a 1.2.3.0\nb"), "a newline for a space");
        assert!(!ok("a 1.2.3.4 b", "a 1.2.3.0 b\n"), "a newline added");
        assert!(!ok("a 1.2.3.4", "a 1.2.3.0 b"));
        assert!(!ok("a 1.2.3.4", "a ::1"), "family changed");
        assert!(!ok("a 1.2.3.4", "a x"), "address replaced by non-address");
        assert!(!ok("a b", "a 1.2.3.4"), "address appeared");
        assert!(ok("dsl-1.example.net -", "x.example.net -"));
        assert!(ok("dsl-1.example.net -", "h0123456789abcdef.example.net -"));
        assert!(ok("localhost -", "x -"));
        assert!(ok("dsl-1.example.net. -", "x.example.net. -"));
        assert!(!ok("dsl-1.example.net -", "x.example.org -"));
        assert!(!ok("dsl-1.example.net -", "y.example.net -"));
        assert!(!ok(
            "dsl-1.example.net -",
            "h0123456789ABCDEF.example.net -"
        ));
        assert!(!ok("dsl-1.example.net -", "x.net -"));
        assert!(!ok("\"GET -", "x -"), "not a host name");
    }
}

//! A parser written out for the CLF-shaped presets (`common`, `combined`, their `v` variants
//! with a vhost first, and `main`), which nearly every line of a real log goes through. It
//! does what the step interpreter in [`super::parser`] does for those exact steps, without
//! dispatching on a step per field, and answers only when it is sure: any line it does not
//! take whole (an error, an odd field) is left to the interpreter, which then decides the
//! record and the error. The property test at the bottom compares the two on random and
//! mutated lines; it does not own the interpreter or the presets' format strings.

use super::compile::{FieldEnd, FieldKind, Step};
use super::fields::{
    client_address, dash_none, find_byte, find_closing_quote, find_literal, number, split_request,
    vhost_host,
};
use super::record::{AddrField, AddrKind, Record, Span};
use super::time::TimeCache;

/// What follows the size field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// Nothing: the size ends at a space or at the end of the line (`common`).
    Common,
    /// `"referer" "user agent"` (`combined`).
    Combined,
    /// `"referer" "user agent" "x-forwarded-for"` (`main`).
    Main,
}

/// How a field ends: the literal after it and whether the field is quoted; `None` at the
/// end of the line.
type End<'s> = Option<(&'s [u8], bool)>;

/// A format whose steps are exactly those of a CLF-shaped preset (field names aside),
/// recognised once when the format is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Layout {
    /// A vhost (with an optional `:port`) before the client.
    vhost: bool,
    tail: Tail,
}

impl Layout {
    /// The layout `steps` have, when they are one of the presets' and extra fields after
    /// the last are accepted (the presets' rule; a strict format goes to the interpreter).
    pub(super) fn of(steps: &[Step], allow_trailing: bool) -> Option<Layout> {
        if !allow_trailing {
            return None;
        }
        // Every field but a last one ending the line is followed by the literal that ends
        // it, and there is no other literal: the presets' fields and their ends say it all.
        let mut fields = Vec::new();
        let mut rest = steps;
        while let Some((step, after)) = rest.split_first() {
            let Step::Field { kind, end, .. } = step else {
                return None;
            };
            rest = after;
            match end {
                FieldEnd::EndOfLine if rest.is_empty() => fields.push((kind, None)),
                FieldEnd::Literal(lit) | FieldEnd::Quoted(lit) => {
                    let Some((Step::Literal(next), after)) = rest.split_first() else {
                        return None;
                    };
                    if next != lit {
                        return None;
                    }
                    rest = after;
                    let quoted = matches!(end, FieldEnd::Quoted(_));
                    fields.push((kind, Some((&**lit, quoted))));
                }
                FieldEnd::EndOfLine => return None,
            }
        }
        let (vhost, fields) = match fields.split_first() {
            Some(((FieldKind::VhostPort, Some((b" ", false))), rest)) => (true, rest),
            _ => (false, &fields[..]),
        };
        type Want = (FieldKind, End<'static>);
        const HEAD: [Want; 6] = [
            (FieldKind::Client, Some((b" ", false))),
            (FieldKind::User, Some((b" ", false))),
            (FieldKind::User, Some((b" [", false))),
            (FieldKind::TimeClf, Some((b"] \"", false))),
            (FieldKind::Request, Some((b"\" ", true))),
            (FieldKind::Status, Some((b" ", false))),
        ];
        const COMMON: [Want; 1] = [(FieldKind::Bytes, None)];
        const COMBINED: [Want; 3] = [
            (FieldKind::Bytes, Some((b" \"", false))),
            (FieldKind::Referer, Some((b"\" \"", true))),
            (FieldKind::UserAgent, Some((b"\"", true))),
        ];
        const MAIN: [Want; 4] = [
            (FieldKind::Bytes, Some((b" \"", false))),
            (FieldKind::Referer, Some((b"\" \"", true))),
            (FieldKind::UserAgent, Some((b"\" \"", true))),
            (FieldKind::ForwardedFor, Some((b"\"", true))),
        ];
        let (head, tail) = fields.split_at_checked(HEAD.len())?;
        let same = |got: &[(&FieldKind, End)], want: &[Want]| {
            got.len() == want.len()
                && got
                    .iter()
                    .zip(want)
                    .all(|((kind, end), (k, e))| *kind == k && end == e)
        };
        if !same(head, &HEAD) {
            return None;
        }
        let tail = if same(tail, &COMMON) {
            Tail::Common
        } else if same(tail, &COMBINED) {
            Tail::Combined
        } else if same(tail, &MAIN) {
            Tail::Main
        } else {
            return None;
        };
        Some(Layout { vhost, tail })
    }

    /// Parses `line` (already without `\r`, not empty) into `rec` when the line is one this
    /// parser is sure of, setting every field of `rec`, and returns whether it did. When it
    /// returns false, `rec` holds anything: the caller starts over with the interpreter.
    ///
    /// One function on purpose: it is the per-line hot path of the common formats, a single
    /// forward walk whose cursor each field's step hands to the next.
    #[inline(always)]
    pub(super) fn parse<'a>(
        self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
        parse_client: bool,
    ) -> bool {
        let len = line.len();
        rec.line = line;
        rec.addr_fields.clear();
        let mut pos = 0;
        rec.vhost = None;
        if self.vhost {
            let Some(stop) = find_byte(b' ', line) else {
                return false;
            };
            // A host name never holds a comma; an address list does (see
            // `ErrorKind::BadVhost`): the general parser reports it.
            if line[..stop].contains(&b',') {
                return false;
            }
            rec.vhost = dash_none(vhost_host(&line[..stop]));
            pos = stop + 1;
        }

        // The client, ended by a space unless a comma before it continues a list.
        let Some(mut stop) = find_byte(b' ', &line[pos..]).map(|o| pos + o) else {
            return false;
        };
        while stop > pos && line[stop - 1] == b',' {
            match find_literal(line, stop + 1, b" ") {
                Some(next) => stop = next,
                None => break,
            }
        }
        let text = &line[pos..stop];
        (rec.client_text, rec.client) = (None, None);
        if text != b"-" && !text.is_empty() {
            rec.client_text = Some(text);
            rec.addr_fields.push(AddrField {
                kind: AddrKind::Client,
                span: Span::new(pos, stop),
            });
            if parse_client {
                rec.client = client_address(text);
            }
        }
        pos = stop + 1;

        // `%l %u [`: two dashes nearly always; else the first space, then the first ` [`.
        if line.get(pos..pos + 5) == Some(b"- - [") {
            pos += 5;
        } else {
            let Some(l) = find_byte(b' ', &line[pos..]) else {
                return false;
            };
            let Some(u) = find_literal(line, pos + l + 1, b" [") else {
                return false;
            };
            pos = u + 2;
        }

        // A time the cache reads is 26 bytes without a `]`, so the `] "` after them is the
        // first one, where the interpreter ends the field too.
        let (Some(time), Some(b"] \"")) = (line.get(pos..pos + 26), line.get(pos + 26..pos + 29))
        else {
            return false;
        };
        let Some(time) = cache.clf(time) else {
            return false;
        };
        rec.time = Some(time);
        pos += 29;

        let Some(mut quotes) = Quotes::new(line, pos) else {
            return false;
        };
        let Some(q) = quotes.closing(pos, b"\" ") else {
            return false;
        };
        (rec.method, rec.target, rec.protocol) = (None, None, None);
        split_request(rec, &line[pos..q]);
        pos = q + 2;

        // The status: three digits and a space nearly always.
        match line.get(pos..pos + 4) {
            Some(&[a, b, c, b' '])
                if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
            {
                rec.status = Some(
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
                );
                pos += 4;
            }
            _ => {
                let Some(stop) = find_byte(b' ', &line[pos..]).map(|o| pos + o) else {
                    return false;
                };
                let text = &line[pos..stop];
                rec.status = None;
                if text != b"-" {
                    match number(text).filter(|s| *s < 1000) {
                        Some(s) => rec.status = Some(s as u16),
                        None => return false,
                    }
                }
                pos = stop + 1;
            }
        }

        (rec.referer, rec.user_agent) = (None, None);
        if self.tail == Tail::Common {
            let stop = find_byte(b' ', &line[pos..]).map_or(len, |o| pos + o);
            return match size(&line[pos..stop]) {
                Some(bytes) => {
                    rec.bytes = bytes;
                    true
                }
                None => false,
            };
        }

        // The size ends at the first ` "`: after digits (or `-`), which hold no space, that
        // is where they stop. The digits are read as they are counted; more than `number`
        // reads are left to the interpreter.
        let mut stop = pos;
        let mut value = 0u64;
        while let Some(d) = line
            .get(stop)
            .map(|b| b.wrapping_sub(b'0'))
            .filter(|d| *d < 10)
        {
            if stop - pos == 19 {
                return false;
            }
            value = value * 10 + u64::from(d);
            stop += 1;
        }
        let bytes = if stop > pos {
            Some(value)
        } else if line.get(pos) == Some(&b'-') {
            stop += 1;
            None
        } else {
            return false;
        };
        if line.get(stop..stop + 2) != Some(b" \"") {
            return false;
        }
        rec.bytes = bytes;
        pos = stop + 2;

        let Some(q) = quotes.closing(pos, b"\" \"") else {
            return false;
        };
        rec.referer = dash_none(&line[pos..q]);
        pos = q + 3;

        let after: &[u8] = if self.tail == Tail::Main {
            b"\" \""
        } else {
            b"\""
        };
        let Some(q) = quotes.closing(pos, after) else {
            return false;
        };
        rec.user_agent = dash_none(&line[pos..q]);
        pos = q + after.len();

        if self.tail == Tail::Main {
            let Some(q) = quotes.closing(pos, b"\"") else {
                return false;
            };
            let text = &line[pos..q];
            if text != b"-" && !text.is_empty() {
                rec.addr_fields.push(AddrField {
                    kind: AddrKind::ForwardedFor,
                    span: Span::new(pos, q),
                });
            }
            pos = q + 1;
        }
        // Extra fields after the last one are accepted after a space.
        pos == len || line[pos] == b' '
    }
}

/// A size field: `-` is `None`; `None` when it is not a number.
#[inline(always)]
fn size(text: &[u8]) -> Option<Option<u64>> {
    if text == b"-" {
        Some(None)
    } else {
        number(text).map(Some)
    }
}

/// The quotes of one line from a position on, found 32 bytes at a time: the mask of a
/// block is kept between fields, so the bytes between the request and the end of the line
/// are looked at once for all quoted fields, with no setup per field.
struct Quotes<'a> {
    /// At least 32 bytes.
    line: &'a [u8],
    /// Where the block of `mask` starts.
    at: usize,
    /// A bit for each quote in `line[at..at + 32]`, none below the position asked for last.
    mask: u32,
}

impl<'a> Quotes<'a> {
    /// `None` for a line shorter than 32 bytes.
    #[inline(always)]
    fn new(line: &'a [u8], from: usize) -> Option<Quotes<'a>> {
        if line.len() < 32 {
            return None;
        }
        let mut q = Quotes {
            line,
            at: from,
            mask: 0,
        };
        q.load();
        Some(q)
    }

    /// The mask of the block at `at`. A block past the end of the line is the line's last
    /// 32 bytes, shifted so only bytes from `at` on count.
    #[inline(always)]
    fn load(&mut self) {
        let len = self.line.len();
        let block = self.line.get(self.at..).and_then(<[u8]>::first_chunk::<32>);
        self.mask = match (block, self.line.last_chunk::<32>()) {
            (Some(block), _) => crate::bytes::eq_mask32(block, b'"'),
            (None, Some(last)) if self.at < len => {
                crate::bytes::eq_mask32(last, b'"') >> (self.at - (len - 32))
            }
            _ => 0,
        };
    }

    /// The first quote at or after `from`, which is not before the quote found last; not to
    /// be asked again after `None`.
    #[inline(always)]
    fn next(&mut self, from: usize) -> Option<usize> {
        if from >= self.at + 32 {
            self.at = from;
            self.load();
        } else {
            self.mask &= u32::MAX << (from - self.at);
        }
        while self.mask == 0 {
            self.at += 32;
            if self.at >= self.line.len() {
                return None;
            }
            self.load();
        }
        Some(self.at + self.mask.trailing_zeros() as usize)
    }

    /// [`find_closing_quote`] for a field that is not the last of a strict format: the first
    /// quote is nearly always the closing one (not escaped, `after` follows), which is
    /// checked here; any other case asks the interpreter's search.
    #[inline(always)]
    fn closing(&mut self, from: usize, after: &[u8]) -> Option<usize> {
        let line = self.line;
        let q = self.next(from)?;
        let escaped = q > from && line[q - 1] == b'\\';
        if !escaped && line[q..].starts_with(after) {
            return Some(q);
        }
        find_closing_quote(line, from, after, false)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{Format, FormatSpec, LineFormat, Record, TimeCache};

    fn preset(name: &str) -> LineFormat {
        match Format::preset(name) {
            Some(Format::Text { format, .. }) => format,
            _ => panic!("{name} is a text preset"),
        }
    }

    /// Parses `line` with `format` and with the interpreter alone, each into a record that
    /// held another line before (as a worker's does), and requires the same answer.
    fn same_as_interpreter(format: &LineFormat, line: &[u8]) -> Result<(), TestCaseError> {
        let before: &[u8] = br#"9.9.9.9, 8.8.8.8 - - [01/Jan/2020:00:00:00 +0000] "GET /old HTTP/1.0" 500 1 "r" "u" "1.1.1.1""#;
        for f in [format.clone(), format.without_client_address()] {
            let slow = f.interpreted();
            let (mut fast_rec, mut slow_rec) = (Record::default(), Record::default());
            let (mut c1, mut c2) = (TimeCache::new(), TimeCache::new());
            let _ = f.parse_into(before, &mut c1, &mut fast_rec);
            let _ = slow.parse_into(before, &mut c2, &mut slow_rec);
            let fast = f.parse_into(line, &mut c1, &mut fast_rec);
            let want = slow.parse_into(line, &mut c2, &mut slow_rec);
            prop_assert_eq!(fast, want, "{}", String::from_utf8_lossy(line));
            if want.is_ok() {
                prop_assert_eq!(fast_rec, slow_rec, "{}", String::from_utf8_lossy(line));
            }
        }
        Ok(())
    }

    const NAMES: [&str; 5] = ["combined", "common", "vcombined", "vcommon", "main"];

    #[test]
    fn the_clf_presets_and_only_they_have_the_written_out_parser() {
        for name in NAMES {
            assert!(preset(name).has_fast_path(), "{name}");
        }
        // The same steps, but a format the user gave must match the whole line.
        for spec in [
            r#"apache:%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\""#,
            r#"apache:%h %l %u %t \"%r\" %>s %b \"%{Referer}i\""#,
            r#"nginx:$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#,
        ] {
            let Ok(FormatSpec::Fixed(Format::Text { format, .. })) = FormatSpec::parse(spec) else {
                panic!("{spec} compiles");
            };
            assert!(!format.has_fast_path(), "{spec}");
        }
    }

    /// Lines the fast parser must leave to the interpreter, or read exactly as it does.
    #[test]
    fn odd_lines_read_as_the_interpreter_reads_them() {
        let lines: &[&[u8]] = &[
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" "-""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" "5.6.7.8, 9.9.9.9" z"#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"z"#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 more"#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 "#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" - - "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 20 5 "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 2000 5 "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 99999999999999999999 "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5x "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /\"a\" \\" HTTP/1.1" 200 5 "a\\\" \"b" "x\\""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a" HTTP/1.1" 200 5 "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a" b HTTP/1.1" 200 5 "x" "y" "ua""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000 "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000]] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"1.2.3.4 - - [17/May/2015:10:05:3 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"1.2.3.4 - - [17/Foo/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"10.0.0.2, 10.0.0.1, 1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"10.0.0.2, - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"1.2.3.4, - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"[2001:db8::1]:443 id u s [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#" - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"- - - [17/May/2015:10:05:03 +0000] "-" 200 5 "-" "-""#,
            br#"host.example:80 1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            br#"host.example:x 1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            b"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"x\"\r",
            b"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"\xff\xfe\"",
            b"\r",
            b"",
            b" ",
            b"-",
            b"\"",
        ];
        for name in NAMES {
            for line in lines {
                if let Err(e) = same_as_interpreter(&preset(name), line) {
                    panic!("{name}: {e}");
                }
            }
        }
    }

    /// Text with what moves a field's end: quotes, escapes, spaces, brackets, commas.
    fn text(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                8 => proptest::sample::select(b"aZ09/.;:()_?=&%-".to_vec()),
                1 => Just(b'"'),
                1 => Just(b'\\'),
                1 => Just(b' '),
                1 => proptest::sample::select(b"[],\r\xff".to_vec()),
            ],
            0..max,
        )
    }

    fn client() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
            any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
            any::<[u16; 8]>().prop_map(|s| format!("[{}]:443", std::net::Ipv6Addr::from(s))),
            Just("-".to_string()),
            Just("10.0.0.2, 10.0.0.1, 85.181.35.98".to_string()),
            Just("10.0.0.2,".to_string()),
            "[a-z]{1,8}\\.example\\.net",
        ]
    }

    /// A line shaped like one of the presets', with random parts.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        let time = prop_oneof![
            8 => (1u32..29, 0usize..12, 1990u32..2100, 0u32..24, 0u32..60, 0u32..61, any::<bool>(), 0u32..24)
                .prop_map(|(d, m, y, h, mi, s, neg, oh)| {
                    const MONTHS: [&str; 12] = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"];
                    format!("{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} {}{oh:02}00", MONTHS[m], if neg { '-' } else { '+' })
                }),
            1 => "[0-9A-Za-z/: +\\]-]{0,30}",
        ];
        let request = prop_oneof![
            4 => ("[A-Z]{1,7}", "/[a-zA-Z0-9/._?=&% -]{0,40}", prop_oneof![Just(" HTTP/1.1"), Just(" HTTP/2.0"), Just("")])
                .prop_map(|(m, p, v)| format!("{m} {p}{v}").into_bytes()),
            1 => text(40),
        ];
        (
            (prop_oneof![Just(String::new()), "[a-z.]{1,10}(:[0-9x]{1,5})? "], client()),
            prop_oneof![4 => Just("- -".to_string()), 1 => "[a-z -]{0,8}"],
            time,
            request,
            prop_oneof![6 => (100u16..600).prop_map(|s| s.to_string()), 1 => "-|[0-9]{1,5}|[a-z]{0,3}"],
            prop_oneof![6 => (0u64..10_000_000).prop_map(|s| s.to_string()), 1 => "-|[0-9]{15,22}|[0-9a-z]{0,3}"],
            (text(60), text(120), text(30)),
            (0usize..4, prop_oneof![Just(""), Just(" x"), Just("x"), Just("\r")]),
        )
            .prop_map(|((vhost, client), users, time, request, status, bytes, (referer, ua, xff), (quoted, end))| {
                let mut line = format!("{vhost}{client} {users} [{time}] \"").into_bytes();
                line.extend_from_slice(&request);
                line.extend_from_slice(format!("\" {status} {bytes}").as_bytes());
                for field in [referer, ua, xff].iter().take(quoted) {
                    line.extend_from_slice(b" \"");
                    line.extend_from_slice(field);
                    line.push(b'"');
                }
                line.extend_from_slice(end.as_bytes());
                line
            })
    }

    /// A change to a line: bytes spliced in, bytes taken out, or the line cut short.
    #[derive(Clone, Debug)]
    enum Edit {
        Insert(usize, Vec<u8>),
        Remove(usize, usize),
        Cut(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), text(4)).prop_map(|(at, b)| Edit::Insert(at, b)),
            (any::<usize>(), 1usize..4).prop_map(|(at, n)| Edit::Remove(at, n)),
            any::<usize>().prop_map(Edit::Cut),
        ]
    }

    fn apply(line: &mut Vec<u8>, edit: &Edit) {
        let at = |i: usize| {
            if line.is_empty() {
                0
            } else {
                i % (line.len() + 1)
            }
        };
        match edit {
            Edit::Insert(i, bytes) => {
                let i = at(*i);
                line.splice(i..i, bytes.iter().copied());
            }
            Edit::Remove(i, n) => {
                let i = at(*i);
                let end = (i + n).min(line.len());
                line.drain(i..end);
            }
            Edit::Cut(i) => {
                let i = at(*i);
                line.truncate(i);
            }
        }
    }

    proptest! {
        #[test]
        fn quotes_are_found_as_a_byte_loop_finds_them(
            line in proptest::collection::vec(proptest::sample::select(b"\"\"a \\".to_vec()), 32..120),
            start in 0usize..40,
            steps in proptest::collection::vec(0usize..40, 0..10),
        ) {
            let mut quotes = super::Quotes::new(&line, start).expect("32 bytes or more");
            let mut from = start;
            for step in steps {
                from += step;
                if from > line.len() {
                    break;
                }
                let want = line[from..].iter().position(|&b| b == b'"').map(|i| from + i);
                prop_assert_eq!(quotes.next(from), want, "from {}", from);
                // After `None` the parser asks no more.
                let Some(q) = want else { break };
                from = q + 1;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn fast_parser_agrees_with_the_interpreter(
            line in line(),
            edits in proptest::collection::vec(edit(), 0..3),
            which in 0usize..5,
        ) {
            let mut line = line;
            for e in &edits {
                apply(&mut line, e);
            }
            same_as_interpreter(&preset(NAMES[which]), &line)?;
        }
    }
}

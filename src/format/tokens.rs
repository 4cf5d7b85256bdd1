//! Finding IPv4 and IPv6 address tokens in arbitrary bytes: lines the parser could not
//! read, and the parts of parsed lines outside address fields (a referer or a query string
//! can carry an address). Owns the token rules below; parsing a known field is
//! [`super::addr`]. Masking what it finds is `crate::anonymize`'s.
//!
//! A token starts at a *chunk* start, where a chunk is a maximal run of letters, digits,
//! `_`, `.` and `:`, or after a `:` inside a chunk: any `:` for IPv4, and for IPv6 a `:`
//! that follows a letter other than `a`-`f` or `_` (a label such as `ip:` or `client:`).
//! So `1.2.3.4` inside `11.2.3.45`, `v1.2.3.4` or `5.1.2.3.4` is not a token, while
//! `x=1.2.3.4`, `ip:1.2.3.4` and `ip:2001:db8::1` hold one. IPv6 tokens never start after
//! a digit and a colon, so a time or a broken address cannot yield a suffix that parses,
//! and replacing a token with other address text never changes what the rest of the chunk
//! tokenizes to (masking twice is the same as masking once). At each start, in order:
//!
//! * **IPv6**: the longest run of hex digits, `:` and `.` from the start, not followed by
//!   another letter or `_` (`fe80::1zz` is a word, not an address). The run, else the run
//!   without trailing dots, else that without one trailing `:`, is a token when it has at
//!   least two colons and parses as an IPv6 address (`::ffff:1.2.3.4` included). Times
//!   (`12:34:56`) and MAC addresses are not addresses; a lone `::` is (the unspecified
//!   address, which masking leaves as it is, and which truncating to `/0` produces).
//! * **IPv4**: four dot-separated parts of one to three digits, each at most 255, not
//!   followed by a letter, digit or `_`, nor by `.` and a digit (`1.2.3.4.5` is a version).
//!   A sentence's closing dot, a `:port` and a trailing `.example.net` are allowed.
//!
//! Brackets and ports are outside the token (`[2001:db8::1]:443` gives `2001:db8::1`).
//! Tokens do not overlap; scanning resumes after each one. Only `.` and `:` can anchor a
//! token, so text is skipped with `memchr2` until one of them appears, and a token needs
//! three dots or two colons, so only chunks holding that many are looked at.

use std::net::{IpAddr, Ipv4Addr};

use super::addr::parse_v6;
use super::record::Span;

/// One address found in text: where it is and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// Where the token is in the text.
    pub span: Span,
    /// The address it spells.
    pub addr: IpAddr,
}

/// Iterator over the address tokens of a byte string, in order. Never allocates.
#[derive(Clone, Debug)]
pub struct Tokens<'a> {
    text: &'a [u8],
    pos: usize,
    /// End of the chunk being scanned; `pos < chunk_end` means inside a chunk.
    chunk_end: usize,
}

/// The address tokens of `text`.
pub fn tokens(text: &[u8]) -> Tokens<'_> {
    Tokens {
        text,
        pos: 0,
        chunk_end: 0,
    }
}

/// Byte classes, looked up once per byte instead of a chain of comparisons.
const CHUNK: u8 = 1;
const WORD: u8 = 2;
const HEX: u8 = 4;
const LABEL_END: u8 = 8;
const V6: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        let hex = c.is_ascii_hexdigit();
        let mut k = 0;
        if alnum || c == b'_' || c == b'.' || c == b':' {
            k |= CHUNK;
        }
        if alnum || c == b'_' {
            k |= WORD;
        }
        if hex {
            k |= HEX | V6;
        }
        if (c.is_ascii_alphabetic() && !hex) || c == b'_' {
            k |= LABEL_END;
        }
        if c == b':' || c == b'.' {
            k |= V6;
        }
        t[b] = k;
        b += 1;
    }
    t
};

#[inline]
fn is(class: u8, b: u8) -> bool {
    CLASS[usize::from(b)] & class != 0
}

fn in_chunk(b: u8) -> bool {
    is(CHUNK, b)
}

fn is_word(b: u8) -> bool {
    is(WORD, b)
}

/// A byte that can end a label before `:` but cannot end an IPv6 group.
fn is_label_end(b: u8) -> bool {
    is(LABEL_END, b)
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let text = self.text;
        loop {
            if self.pos >= self.chunk_end {
                let Some(found) = memchr::memchr2(b'.', b':', text.get(self.pos..)?) else {
                    self.pos = text.len();
                    return None;
                };
                let anchor = self.pos + found;
                // `text[self.pos]` ends the previous chunk (or is the start of the text), so
                // backing up never enters a chunk already scanned.
                let (mut dots, mut colons) = (0usize, 0usize);
                let mut count = |b: u8| {
                    dots += usize::from(b == b'.');
                    colons += usize::from(b == b':');
                };
                let mut start = anchor;
                while start > self.pos && in_chunk(text[start - 1]) {
                    start -= 1;
                    count(text[start]);
                }
                let mut end = anchor;
                while end < text.len() && in_chunk(text[end]) {
                    count(text[end]);
                    end += 1;
                }
                self.chunk_end = end;
                // Every token lies inside one chunk and holds three dots (IPv4) or at least
                // two colons (IPv6): a chunk with fewer of both, such as a version number
                // or a host name, holds none.
                if dots < 3 && colons < 2 {
                    self.pos = end;
                    continue;
                }
                self.pos = start;
                if let Some(token) = token_at(text, start) {
                    self.pos = token.span.end as usize;
                    return Some(token);
                }
            }
            // Inside a chunk, only the byte after a `:` can start a token.
            match memchr::memchr(b':', &text[self.pos..self.chunk_end]) {
                None => self.pos = self.chunk_end,
                Some(i) => {
                    let colon = self.pos + i;
                    let start = colon + 1;
                    self.pos = start;
                    let token = if colon > 0 && is_label_end(text[colon - 1]) {
                        token_at(text, start)
                    } else {
                        v4_at(text, start)
                    };
                    if let Some(token) = token {
                        self.pos = token.span.end as usize;
                        return Some(token);
                    }
                }
            }
        }
    }
}

/// The token starting exactly at `start`, which the caller has checked is a valid start.
fn token_at(text: &[u8], start: usize) -> Option<Token> {
    v6_at(text, start).or_else(|| v4_at(text, start))
}

fn v6_at(text: &[u8], start: usize) -> Option<Token> {
    let first = *text.get(start)?;
    if !(is(HEX, first) || first == b':') {
        return None;
    }
    let mut end = start;
    let mut colons = 0usize;
    while end < text.len() && is(V6, text[end]) {
        colons += usize::from(text[end] == b':');
        end += 1;
    }
    // Every candidate below is a prefix of the run: with fewer than two colons in the run
    // none can be an address. Most dotted words (versions, host names) stop here.
    if colons < 2 || text.get(end).is_some_and(|b| is_word(*b)) {
        return None;
    }
    let run = &text[start..end];
    let undotted = trim_dots(run);
    let candidates = [
        Some(run),
        (undotted.len() < run.len()).then_some(undotted),
        undotted.strip_suffix(b":"),
    ];
    candidates.into_iter().flatten().find_map(|c| {
        let colons = c.iter().filter(|b| **b == b':').count();
        if colons < 2 {
            return None;
        }
        // Without `::` an address has exactly eight groups (seven colons), or six and an
        // IPv4 tail. Checking this first keeps every CLF timestamp (`2000:13:55:36`) away
        // from the full parser.
        let compressed = c.windows(2).any(|w| w == b"::");
        let full = colons == 7 || (colons == 6 && c.contains(&b'.'));
        if !compressed && !full {
            return None;
        }
        parse_v6(c).map(|v6| Token {
            span: Span::new(start, start + c.len()),
            addr: IpAddr::V6(v6),
        })
    })
}

fn trim_dots(mut bytes: &[u8]) -> &[u8] {
    while let Some(rest) = bytes.strip_suffix(b".") {
        bytes = rest;
    }
    bytes
}

fn v4_at(text: &[u8], start: usize) -> Option<Token> {
    let mut octets = [0u8; 4];
    let mut i = start;
    for (k, octet) in octets.iter_mut().enumerate() {
        let digits = i;
        let mut value: u32 = 0;
        while let Some(d) = text.get(i).filter(|b| b.is_ascii_digit()) {
            if i - digits == 3 {
                return None;
            }
            value = value * 10 + u32::from(d - b'0');
            i += 1;
        }
        if i == digits || value > 255 {
            return None;
        }
        *octet = value as u8;
        if k < 3 {
            if text.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    match text.get(i) {
        Some(b) if is_word(*b) => return None,
        Some(b'.') if text.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
        _ => {}
    }
    Some(Token {
        span: Span::new(start, i),
        addr: IpAddr::V4(Ipv4Addr::from(octets)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::bytes::Regex;
    use std::net::Ipv6Addr;

    fn found(text: &str) -> Vec<(&str, String)> {
        tokens(text.as_bytes())
            .map(|t| (&text[t.span.range()], t.addr.to_string()))
            .collect()
    }

    fn texts(text: &str) -> Vec<&str> {
        found(text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn ipv4_tail_with_leading_zeros_is_one_ipv6_token() {
        // Taking `033.1.2.3` alone made masked text (`1::33.1.2.0`) tokenize as IPv6.
        assert_eq!(
            found("1::033.1.2.3."),
            [("1::033.1.2.3", "1::2101:203".to_string())]
        );
    }

    #[test]
    fn finds_addresses_in_log_lines() {
        let line = r#"81.2.69.142 - - [10/Oct/2000:13:55:36 -0700] "GET /?ip=203.0.113.9&x=1 HTTP/1.1" 200 2326 "http://[2001:db8::7]:8080/" "Mozilla/5.0 (X11; rv:109.0)" 12:34:56"#;
        assert_eq!(texts(line), ["81.2.69.142", "203.0.113.9", "2001:db8::7"]);
        assert_eq!(
            found("client ::ffff:1.2.3.4 left"),
            [("::ffff:1.2.3.4", "::ffff:1.2.3.4".to_string())]
        );
        assert_eq!(texts("[::1]:443 and 10.0.0.1:8080"), ["::1", "10.0.0.1"]);
        assert_eq!(
            texts("2001:0db8:85a3:0000:0000:8a2e:0370:7334, fe80::1%eth0"),
            ["2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1"]
        );
        assert_eq!(
            texts("ip:1.2.3.4 id=2001:db8::1 from 1.2.3.4."),
            ["1.2.3.4", "2001:db8::1", "1.2.3.4"]
        );
        assert_eq!(texts("1.2.3.4:5.6.7.8"), ["1.2.3.4", "5.6.7.8"]);
        assert_eq!(texts("host 1.2.3.4.static.example.net"), ["1.2.3.4"]);
        assert_eq!(
            texts("at fe80:: then fe80::1: and 2001:db8::."),
            ["fe80::", "fe80::1", "2001:db8::"]
        );
    }

    #[test]
    fn v6_parser_edges() {
        for text in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "::1.2.3.4",
            "0000:0000::00:1",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4::5:6:7:8",
            "1:::2",
            ":1::",
            "1::2::3",
            "12345::",
            "::01.2.3.4",
            "::1.2.3.4.5",
            "::256.1.1.1",
            "1.2.3.4::",
            "::1.2.3",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1:2:3:4:5:1.2.3.4",
            ":",
            "",
            "::ffff:1.2.3.4:1",
            "a:b:c:d:e:f:1.2.3.4",
        ] {
            assert_eq!(
                parse_v6(text.as_bytes()),
                crate::format::addr::parse_ipv6_std(text.as_bytes()),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_parts_of_longer_words_and_look_alikes() {
        for text in [
            "11.2.3.45x",
            "v1.2.3.4",
            "5.1.2.3.4",
            "1.2.3.4.5",
            "1.2.3.4567",
            "1234.1.1.1",
            "256.1.1.1",
            "1.2.3",
            "time 12:34:56 and 10:05:03",
            "mac 00:1a:2b:3c:4d:5e",
            "Foo::Bar std::vector x::1",
            "fe80::1zz",
            "1.2.3.4_x",
            "no digits or colons here at all",
            "",
            ":",
            ".",
        ] {
            assert_eq!(texts(text), Vec::<&str>::new(), "{text}");
        }
        assert_eq!(texts("11.2.3.45"), ["11.2.3.45"]);
        assert_eq!(texts("a :: b"), ["::"]);
    }

    /// The same rules, checked at every position with regexes: slow and plainly correct.
    fn reference(text: &[u8]) -> Vec<Token> {
        let run6 = Regex::new(r"(?-u)^[0-9A-Fa-f:.]+").unwrap();
        let quad = Regex::new(r"(?-u)^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)").unwrap();
        let label = Regex::new("(?-u)^[g-zG-Z_]$").unwrap();
        let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let mut out = Vec::new();
        let mut s = 0;
        while s < text.len() {
            let boundary = s == 0 || !in_chunk(text[s - 1]);
            let after_colon = s > 0 && text[s - 1] == b':';
            let after_label = after_colon && s >= 2 && label.is_match(&text[s - 2..s - 1]);
            let mut hit = None;
            if boundary || after_label {
                if let Some(m) = run6.find(&text[s..]) {
                    let run = m.as_bytes();
                    if !word(text.get(s + run.len())) {
                        let mut cands = vec![run];
                        let mut t = run;
                        while t.ends_with(b".") {
                            t = &t[..t.len() - 1];
                        }
                        cands.push(t);
                        if t.ends_with(b":") {
                            cands.push(&t[..t.len() - 1]);
                        }
                        for c in cands {
                            let colons = c.iter().filter(|b| **b == b':').count();
                            let parsed = std::str::from_utf8(c).unwrap().parse::<Ipv6Addr>();
                            if let (true, Ok(v6)) = (colons >= 2, parsed) {
                                hit = Some(Token {
                                    span: Span::new(s, s + c.len()),
                                    addr: IpAddr::V6(v6),
                                });
                                break;
                            }
                        }
                    }
                }
            }
            let quad_match = if (boundary || after_colon) && hit.is_none() {
                quad.captures(&text[s..])
            } else {
                None
            };
            if let Some(c) = quad_match {
                let end = s + c[0].len();
                let parts: Vec<&[u8]> = (1..=4).map(|i| c.get(i).unwrap().as_bytes()).collect();
                let ok_parts = parts.iter().all(|p| {
                    p.len() <= 3 && std::str::from_utf8(p).unwrap().parse::<u32>().unwrap() <= 255
                });
                let next = text.get(end);
                let bad_next = word(next)
                    || (next == Some(&b'.')
                        && text.get(end + 1).is_some_and(|b| b.is_ascii_digit()));
                if ok_parts && !bad_next {
                    let o: Vec<u8> = parts
                        .iter()
                        .map(|p| std::str::from_utf8(p).unwrap().parse().unwrap())
                        .collect();
                    hit = Some(Token {
                        span: Span::new(s, end),
                        addr: IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3])),
                    });
                }
            }
            match hit {
                Some(t) => {
                    s = t.span.end as usize;
                    out.push(t);
                }
                None => s += 1,
            }
        }
        out
    }

    /// Text made of address-like pieces and the bytes that border them.
    pub(crate) fn noisy_text() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            1 => any::<u32>().prop_map(|a| Ipv4Addr::from(a).to_string()),
            1 => any::<u128>().prop_map(|a| Ipv6Addr::from(a).to_string()),
            1 => (any::<u32>(), 0u32..5)
                .prop_map(|(a, z)| Ipv6Addr::from(u128::from(a >> z)).to_string()),
            1 => any::<u32>().prop_map(|a| Ipv4Addr::from(a).to_ipv6_mapped().to_string()),
            1 => (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("{a:x}::{b:x}")),
            1 => (0u8..24, 0u8..60, 0u8..60).prop_map(|(h, m, s)| format!("{h:02}:{m:02}:{s:02}")),
            2 => prop::collection::vec(prop_oneof![0u16..10, 0u16..1000], 1..6).prop_map(|parts| {
                parts.iter().map(u16::to_string).collect::<Vec<_>>().join(".")
            }),
            6 => prop::sample::select(vec![
                "[", "]", ":", "::", ".", " ", "-", "_", "x", "g", "a", "f", "0", "1", "9", "25",
                "256", ",", "/", "%", "\"", "\u{e9}"
            ])
            .prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn equals_reference(text in noisy_text()) {
            let fast: Vec<Token> = tokens(&text).collect();
            prop_assert_eq!(fast, reference(&text));
        }

        #[test]
        fn equals_reference_on_random_bytes(text in prop::collection::vec(prop::sample::select(b"0123456789abcdefgxAF.:[] -_".to_vec()), 0..64)) {
            let fast: Vec<Token> = tokens(&text).collect();
            prop_assert_eq!(fast, reference(&text));
        }

        #[test]
        fn equals_reference_on_dense_bytes(text in prop::collection::vec(prop::sample::select(b"0129af.:x ".to_vec()), 0..48)) {
            let fast: Vec<Token> = tokens(&text).collect();
            prop_assert_eq!(fast, reference(&text));
        }

        #[test]
        fn v6_parser_equals_std(text in prop_oneof![
            prop::collection::vec(prop::sample::select(b"0019afAF.:".to_vec()), 0..46),
            noisy_text(),
            any::<u128>().prop_map(|a| Ipv6Addr::from(a).to_string().into_bytes()),
            any::<u32>().prop_map(|a| Ipv4Addr::from(a).to_ipv6_compatible().to_string().into_bytes()),
        ]) {
            prop_assert_eq!(parse_v6(&text), crate::format::addr::parse_ipv6_std(&text));
        }

        #[test]
        fn tokens_parse_and_do_not_overlap(text in noisy_text()) {
            let mut last = 0;
            for t in tokens(&text) {
                prop_assert!(t.span.start as usize >= last);
                last = t.span.end as usize;
                prop_assert_eq!(crate::format::addr::parse_ip(t.span.of(&text)), Some(t.addr));
            }
        }
    }
}

//! The field helpers both line parsers share, the step interpreter ([`super::parser`]) and
//! the CLF parser written out ([`super::clf`]), and the proxies' and JSON parsers use:
//! finding a byte, a literal or a closing quote, reading a word or a number, and filling a
//! record's request and client fields. No allocation; bytes are compared sixteen at a time
//! where fields are long enough ([`crate::bytes`]). It does not know about formats or steps.

use std::net::IpAddr;

use super::addr;
use super::record::{AddrField, AddrKind, Record, Span};

/// Finds the first unescaped `"` at or after `from` where `after` follows it. Apache escapes
/// a quote as `\"` and a backslash as `\\`; nginx writes `\x22`, so counting the backslashes
/// before a quote tells both apart.
pub(super) fn find_closing_quote(
    line: &[u8],
    from: usize,
    after: &[u8],
    at_end: bool,
) -> Option<usize> {
    let escaped = |q: usize| {
        line[from..q]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count()
            % 2
            == 1
    };
    if at_end {
        // Only the quote that `after` ends the line with can close the last field.
        let q = line.len().checked_sub(after.len()).filter(|&q| q >= from)?;
        return (line.get(q) == Some(&b'"') && begins_with(&line[q..], after) && !escaped(q))
            .then_some(q);
    }
    let mut pos = from;
    while let Some(off) = find_byte(b'"', &line[pos..]) {
        let q = pos + off;
        if begins_with(&line[q..], after) && !escaped(q) {
            return Some(q);
        }
        pos = q + 1;
    }
    None
}

/// `hay` starts with `lit`. Format literals are a byte or a few (`" "`, `] "`): a loop
/// the compiler keeps inline costs less than a call to memcmp, made a dozen times a line.
#[inline(always)]
pub(super) fn begins_with(hay: &[u8], lit: &[u8]) -> bool {
    hay.len() >= lit.len() && hay.iter().zip(lit).all(|(a, b)| a == b)
}

/// The first `needle` in `hay`. Fields are short (a status, a size, `-`) or a few dozen to a
/// few hundred bytes (a request, a user agent), where setting up memchr costs as much as the
/// search: the bytes are compared sixteen at a time ([`crate::bytes::eq_mask16`]), a field
/// shorter than that eight at a time in a register.
#[inline]
pub(super) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < 16 {
        return find_byte_in_words(needle, hay);
    }
    let mask_at = |at: usize| {
        hay[at..]
            .first_chunk::<16>()
            .map_or(0, |chunk| crate::bytes::eq_mask16(chunk, needle))
    };
    let mut at = 0;
    while at + 16 <= hay.len() {
        let m = mask_at(at);
        if m != 0 {
            return Some(at + m.trailing_zeros() as usize);
        }
        at += 16;
    }
    if at == hay.len() {
        return None;
    }
    // The last bytes: the final 16, minus those already looked at.
    let last = hay.len() - 16;
    let m = mask_at(last) >> (at - last);
    (m != 0).then(|| at + m.trailing_zeros() as usize)
}

/// The last `needle` in `hay`: [`find_byte`] from the end, sixteen bytes at a time, for a
/// request line of a few dozen bytes where memrchr's setup costs as much as the search.
#[inline]
fn rfind_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let mut end = hay.len();
    while end >= 16 {
        let at = end - 16;
        let m = hay[at..]
            .first_chunk::<16>()
            .map_or(0, |chunk| crate::bytes::eq_mask16(chunk, needle));
        if m != 0 {
            return Some(at + 31 - m.leading_zeros() as usize);
        }
        end = at;
    }
    hay[..end].iter().rposition(|&b| b == needle)
}

/// [`find_byte`] eight bytes at a time in a register, then byte by byte.
#[inline]
fn find_byte_in_words(needle: u8, hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let spread = u64::from(needle) * ONES;
    let mut at = 0;
    while at + 8 <= hay.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&hay[at..at + 8]);
        let x = u64::from_le_bytes(word) ^ spread;
        // The lowest set high bit marks the first zero byte of x exactly (a borrow only
        // makes false marks above a real one).
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    hay[at..].iter().position(|&b| b == needle).map(|i| at + i)
}

/// The first occurrence of `lit` at or after `from`. Format literals are a few bytes long
/// (`] "`, ` - `), so memchr on the first byte and a compare beats building a substring
/// searcher for every line.
#[inline(always)]
pub(super) fn find_literal(line: &[u8], from: usize, lit: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = lit.split_first() else {
        return Some(from);
    };
    if rest.is_empty() {
        // A one-byte literal (` ` after most fields): its first occurrence.
        return find_byte(first, line.get(from..)?).map(|off| from + off);
    }
    let mut pos = from;
    while let Some(off) = find_byte(first, &line[pos..]) {
        let at = pos + off;
        if begins_with(&line[at + 1..], rest) {
            return Some(at);
        }
        pos = at + 1;
    }
    None
}

/// The word at `from`: the text up to the next space, which must follow it, and where the
/// text after that space starts. `None` for an empty word or a line that ends first.
pub(super) fn word(line: &[u8], from: usize) -> Option<(Span, usize)> {
    let len = find_byte(b' ', line.get(from..)?)?;
    (len > 0).then(|| (Span::new(from, from + len), from + len + 1))
}

pub(super) fn number(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

pub(super) fn dash_none(b: &[u8]) -> Option<&[u8]> {
    if b == b"-" { None } else { Some(b) }
}

/// Splits a request line into method, target and protocol. `"-"`, `""` and TLS garbage
/// leave them `None`; a space inside the target is kept in the target.
pub(super) fn split_request<'a>(rec: &mut Record<'a>, req: &'a [u8]) {
    rec.request = dash_none(req);
    // The method is the text before the first space, all letters: the letters at the
    // start, when a space follows them.
    let first = req.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if first == 0 || req.get(first) != Some(&b' ') {
        return;
    }
    rec.method = Some(&req[..first]);
    let rest = &req[first + 1..];
    // The protocol follows the last space. Nearly always ` HTTP/` and three bytes end the
    // request, and with no space among those three that space is the last.
    if let Some(&[b' ', b'H', b'T', b'T', b'P', b'/', a, b, c]) = rest.last_chunk::<9>() {
        if a != b' ' && b != b' ' && c != b' ' {
            let at = rest.len() - 9;
            rec.target = Some(&rest[..at]);
            rec.protocol = Some(&rest[at + 1..]);
            return;
        }
    }
    match rfind_byte(b' ', rest) {
        Some(last) if rest[last + 1..].starts_with(b"HTTP/") => {
            rec.target = Some(&rest[..last]);
            rec.protocol = Some(&rest[last + 1..]);
        }
        _ => rec.target = Some(rest),
    }
}

/// Fills the client of a record from a field: an address (with brackets or port), a list,
/// or a host name.
pub(super) fn set_client<'a>(rec: &mut Record<'a>, line: &'a [u8], span: Span) {
    if set_client_field(rec, line, span) {
        rec.client = client_address(span.of(line));
    }
}

/// The address of a client field that holds something: a host with brackets or a port, or
/// the client of a list.
#[inline]
pub(super) fn client_address(text: &[u8]) -> Option<IpAddr> {
    // A bare IPv4 address, nearly every client, is what `parse_host` tries first.
    if let Some(v4) = addr::parse_ipv4(text) {
        return Some(IpAddr::V4(v4));
    }
    match addr::parse_host(text) {
        Some((ip, _)) => Some(ip),
        None if text.contains(&b',') => addr::client_of_list(text),
        None => None,
    }
}

/// The host of a vhost field, without a `:port`.
pub(super) fn vhost_host(text: &[u8]) -> &[u8] {
    match memchr::memrchr(b':', text) {
        Some(c) if c + 1 < text.len() && text[c + 1..].iter().all(u8::is_ascii_digit) => &text[..c],
        _ => text,
    }
}

/// [`set_client`] without parsing the address: the text and the address field only.
/// Returns whether the field holds something (not `-` or empty).
pub(super) fn set_client_field<'a>(rec: &mut Record<'a>, line: &'a [u8], span: Span) -> bool {
    let text = span.of(line);
    if text == b"-" || text.is_empty() {
        return false;
    }
    rec.client_text = Some(text);
    rec.addr_fields.push(AddrField {
        kind: AddrKind::Client,
        span,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn find_byte_agrees_with_memchr(
            hay in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            needle in proptest::prelude::any::<u8>(),
            at in 0usize..80,
        ) {
            let mut hay = hay;
            if at < hay.len() {
                hay[at] = needle;
            }
            proptest::prop_assert_eq!(find_byte(needle, &hay), memchr::memchr(needle, &hay));
            proptest::prop_assert_eq!(
                find_byte_in_words(needle, &hay),
                memchr::memchr(needle, &hay)
            );
            proptest::prop_assert_eq!(rfind_byte(needle, &hay), memchr::memrchr(needle, &hay));
        }
    }

    #[test]
    fn find_byte_at_every_offset() {
        for len in 0..72 {
            for at in 0..len {
                let mut hay = vec![0x80u8 | 0x22; len];
                hay[at] = b'"';
                assert_eq!(find_byte(b'"', &hay), Some(at), "len {len} at {at}");
                assert_eq!(
                    find_byte_in_words(b'"', &hay),
                    Some(at),
                    "len {len} at {at}"
                );
                hay[at..].fill(b'"');
                assert_eq!(
                    find_byte(b'"', &hay),
                    Some(at),
                    "len {len} at {at}, repeated"
                );
            }
            assert_eq!(find_byte(b'"', &vec![b'#'; len]), None);
        }
    }

    #[test]
    fn closing_quote_skips_escaped_quotes() {
        let line = br#""a \"b\" c\\" x"#;
        assert_eq!(find_closing_quote(line, 1, b"\" ", false), Some(12));
        assert_eq!(find_closing_quote(br#""abc"#, 1, b"\"", false), None);
    }

    /// [`split_request`] as its comment says it: the method is the text before the first
    /// space when it is all letters; the protocol follows the last space after it when it
    /// starts with `HTTP/`, and the target is what lies between.
    fn split_by_spaces(req: &[u8]) -> [Option<&[u8]>; 4] {
        let request = dash_none(req);
        let Some(first) = req.iter().position(|&b| b == b' ') else {
            return [request, None, None, None];
        };
        let method = &req[..first];
        if method.is_empty() || !method.iter().all(u8::is_ascii_alphabetic) {
            return [request, None, None, None];
        }
        let rest = &req[first + 1..];
        match rest.iter().rposition(|&b| b == b' ') {
            Some(last) if rest[last + 1..].starts_with(b"HTTP/") => [
                request,
                Some(method),
                Some(&rest[..last]),
                Some(&rest[last + 1..]),
            ],
            _ => [request, Some(method), Some(rest), None],
        }
    }

    proptest::proptest! {
        #[test]
        fn request_split_agrees_with_splitting_at_spaces(
            req in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => proptest::sample::select(b"GETa/1.-".to_vec()),
                    2 => proptest::prelude::Just(b' '),
                    1 => proptest::sample::select(b"HTP\"\0\xff".to_vec()),
                ],
                0..30,
            ),
            proto in proptest::prop_oneof![
                proptest::prelude::Just(&b""[..]),
                proptest::prelude::Just(&b" HTTP/1.1"[..]),
                proptest::prelude::Just(&b" HTTP/2"[..]),
                proptest::prelude::Just(&b" HTTP/ 1."[..]),
                proptest::prelude::Just(&b"HTTP/1.0"[..]),
                proptest::prelude::Just(&b" HTTP/1 1"[..]),
            ],
        ) {
            let req = [&req[..], proto].concat();
            let mut r = Record::default();
            split_request(&mut r, &req);
            proptest::prop_assert_eq!([r.request, r.method, r.target, r.protocol], split_by_spaces(&req));
        }
    }

    #[test]
    fn request_split_keeps_odd_requests_parsed() {
        let mut r = Record::default();
        split_request(&mut r, b"GET /a b HTTP/1.1");
        assert_eq!(
            (r.method, r.target, r.protocol),
            (
                Some(&b"GET"[..]),
                Some(&b"/a b"[..]),
                Some(&b"HTTP/1.1"[..])
            )
        );
        let mut r = Record::default();
        split_request(&mut r, br"\x16\x03\x01");
        assert_eq!(
            (r.method, r.target, r.request.is_some()),
            (None, None, true)
        );
        let mut r = Record::default();
        split_request(&mut r, b"-");
        assert_eq!((r.method, r.request), (None, None));
    }
}

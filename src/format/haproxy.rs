//! The `haproxy` preset: HAProxy's HTTP log (`option httplog`), with or without the
//! `haproxy[pid]: ` tag a syslog line carries after its header. The syslog header itself
//! (`Dec  6 10:00:00 host `) is not read here.
//!
//! Reference: HAProxy configuration manual, 8.2.3 "HTTP log format":
//! `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc
//! %sq/%bq %hr %hs %{+Q}r`, where `%hr` and `%hs` (the captured request and response
//! headers, `{...}`) appear only when headers are captured.
//!
//! Decisions a reader needs:
//!
//! * HAProxy writes the client as address `:` port with no brackets around an IPv6
//!   address (`2001:db8::1:51234`, `::ffff:192.0.2.7:4711`), so the port is split off at
//!   the last colon before the address is read; a bracketed address is read as well. The
//!   address field's span covers the address alone, so masking keeps the port.
//! * The accept date (`06/Dec/2026:10:00:00.123`) has no zone: HAProxy writes its local
//!   time, and logward reads it as UTC (run HAProxy with `TZ=UTC` for exact times).
//! * HAProxy encodes `"`, `{`, `|` and `}` inside the request and the captured headers as
//!   `#22`-style escapes, so the request ends at the next `"` and a header block at the next
//!   `}`. A request cut short by the syslog line length has no closing quote and is read to
//!   the end of the line.
//! * Captured headers may hold an address (a captured `X-Forwarded-For`): each block is an
//!   address field of kind [`AddrKind::Other`], so `anonymize` masks the addresses in it.
//! * A status of `-1` (no response) is read as no status; a byte count written `+2750`
//!   (`option logasap`) is read as 2750.

use super::addr;
use super::fields::{find_byte, find_literal, number, split_request, word};
use super::parser::{ErrorKind, ParseError, start_record};
use super::record::{AddrField, AddrKind, Record, Span};
use super::time::TimeCache;

/// Parses one HAProxy HTTP log line into `rec` (overwritten; on an error it holds what was
/// read).
///
/// One function on purpose: a single forward walk over the line in the order HAProxy
/// writes the fields, each step starting where the last one stopped.
pub fn parse_into<'a>(
    line: &'a [u8],
    cache: &mut TimeCache,
    rec: &mut Record<'a>,
) -> Result<(), ParseError> {
    let line = start_record(line, rec)?;
    let mismatch = |at: usize| ParseError::new(ErrorKind::Mismatch, at);
    let mut pos = syslog_tag_len(line);

    // The client, up to ` [`: one word.
    let client_end = find_literal(line, pos, b" [").ok_or(mismatch(pos))?;
    let client = &line[pos..client_end];
    if client.is_empty() || client.contains(&b' ') {
        return Err(mismatch(pos));
    }
    rec.client_text = Some(client);
    let (addr_span, ip) = client_address(client);
    rec.client = ip;
    rec.addr_fields.push(AddrField {
        kind: AddrKind::Client,
        span: Span::new(pos + addr_span.start as usize, pos + addr_span.end as usize),
    });
    pos = client_end + 2;

    // `[dd/Mon/yyyy:HH:MM:SS.mmm] `
    let date_end = find_literal(line, pos, b"] ").ok_or(mismatch(pos))?;
    rec.time = Some(
        accept_date(&line[pos..date_end], cache).ok_or(ParseError::new(ErrorKind::BadTime, pos))?,
    );
    pos = date_end + 2;

    // Frontend, backend/server, timers, status, bytes, two cookies, termination state,
    // connection counts, queues: ten words.
    let mut words = [Span::default(); 10];
    for slot in &mut words {
        let (span, next) = word(line, pos).ok_or(mismatch(pos))?;
        *slot = span;
        pos = next;
    }
    let text = |i: usize| words[i].of(line);
    for i in [1, 2, 8, 9] {
        if !text(i).contains(&b'/') {
            return Err(mismatch(words[i].start as usize));
        }
    }
    if text(7).len() != 4 {
        return Err(mismatch(words[7].start as usize));
    }
    rec.status = match text(3) {
        b"-1" => None,
        s => Some(number(s).filter(|s| *s < 1000).ok_or(ParseError::new(
            ErrorKind::BadStatus,
            words[3].start as usize,
        ))? as u16),
    };
    let bytes = text(4);
    rec.bytes = Some(
        number(bytes.strip_prefix(b"+").unwrap_or(bytes)).ok_or(ParseError::new(
            ErrorKind::BadBytes,
            words[4].start as usize,
        ))?,
    );

    // Up to two captured header blocks, then the quoted request.
    for _ in 0..2 {
        if line.get(pos) != Some(&b'{') {
            break;
        }
        let close = find_byte(b'}', &line[pos..])
            .map(|o| pos + o)
            .ok_or(ParseError::new(ErrorKind::Unterminated, pos))?;
        if line.get(close + 1) != Some(&b' ') {
            return Err(mismatch(close + 1));
        }
        if close > pos + 1 {
            rec.addr_fields.push(AddrField {
                kind: AddrKind::Other,
                span: Span::new(pos + 1, close),
            });
        }
        pos = close + 2;
    }
    if line.get(pos) != Some(&b'"') {
        return Err(mismatch(pos));
    }
    pos += 1;
    let request_end = find_byte(b'"', &line[pos..]).map_or(line.len(), |o| pos + o);
    split_request(rec, &line[pos..request_end]);
    // Fields a custom format appends after the request are allowed, as for every preset.
    match line.get(request_end + 1) {
        None | Some(b' ') => Ok(()),
        Some(_) => Err(ParseError::new(ErrorKind::Trailing, request_end + 1)),
    }
}

/// The length of a leading `name[pid]: ` (or `name: `) syslog tag and the spaces after it;
/// 0 when the line starts with the client. A client never holds `: `, so a tag cannot be
/// mistaken for one.
fn syslog_tag_len(line: &[u8]) -> usize {
    if !line.first().is_some_and(u8::is_ascii_alphabetic) {
        return 0;
    }
    let name = line
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        .count();
    let mut at = name;
    if line.get(at) == Some(&b'[') {
        let digits = line[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || line.get(at + 1 + digits) != Some(&b']') {
            return 0;
        }
        at += digits + 2;
    }
    if line.get(at..at + 2) != Some(b": ") {
        return 0;
    }
    at += 2;
    at + line[at..].iter().take_while(|b| **b == b' ').count()
}

/// The address of a `%ci:%cp` field and its span in the field. HAProxy always writes a
/// port, and an IPv6 address without brackets, so the text after the last colon is the
/// port when it is all digits; `[v6]:port` and a bare address are read too. When no address
/// can be read, the span is the whole field, which the anonymizer then searches.
fn client_address(field: &[u8]) -> (Span, Option<std::net::IpAddr>) {
    let whole = Span::new(0, field.len());
    let host_len = match memchr::memrchr(b':', field) {
        Some(c) if c + 1 < field.len() && field[c + 1..].iter().all(u8::is_ascii_digit) => c,
        _ => field.len(),
    };
    let host = &field[..host_len];
    let (start, end) = match host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        Some(inner) => (1, 1 + inner.len()),
        None => (0, host_len),
    };
    match addr::parse_ip(&field[start..end]) {
        Some(ip) => (Span::new(start, end), Some(ip)),
        // A field without a port (a custom format) that is one address.
        None => match addr::parse_ip(field) {
            Some(ip) => (whole, Some(ip)),
            None => (whole, None),
        },
    }
}

/// `dd/Mon/yyyy:HH:MM:SS` and an optional `.fraction`, read through the CLF time cache as
/// UTC (the date carries no zone).
fn accept_date(text: &[u8], cache: &mut TimeCache) -> Option<i64> {
    let (clf, frac) = text.split_at_checked(20)?;
    if let Some(digits) = frac.strip_prefix(b".") {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
    } else if !frac.is_empty() {
        return None;
    }
    let mut full = [0u8; 26];
    full[..20].copy_from_slice(clf);
    full[20..].copy_from_slice(b" +0000");
    cache.clf(&full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[u8]) -> Result<Record<'_>, ParseError> {
        let mut rec = Record::default();
        parse_into(line, &mut TimeCache::new(), &mut rec).map(|()| rec)
    }

    #[test]
    fn syslog_tags_are_skipped_and_clients_are_not_taken_for_tags() {
        assert_eq!(syslog_tag_len(b"haproxy[14389]: 10.0.1.2:33317 ["), 16);
        assert_eq!(syslog_tag_len(b"haproxy[14389]:  2001:db8::1:80 ["), 17);
        assert_eq!(syslog_tag_len(b"haproxy: 10.0.1.2:33317 ["), 9);
        for client in [
            &b"10.0.1.2:33317 ["[..],
            b"fe80::1:443 [",
            b"dead:beef::1:443 [",
            b"haproxy[]: x",
            b"haproxy[12 x",
        ] {
            assert_eq!(
                syslog_tag_len(client),
                0,
                "{}",
                String::from_utf8_lossy(client)
            );
        }
    }

    #[test]
    fn the_port_is_split_off_an_unbracketed_ipv6_client() {
        let cases: [(&[u8], &[u8], Option<&str>); 6] = [
            (b"10.0.1.2:33317", b"10.0.1.2", Some("10.0.1.2")),
            (b"2001:db8::1:5123", b"2001:db8::1", Some("2001:db8::1")),
            (
                b"::ffff:192.0.2.7:4711",
                b"::ffff:192.0.2.7",
                Some("::ffff:192.0.2.7"),
            ),
            (b"[2001:db8::7]:443", b"2001:db8::7", Some("2001:db8::7")),
            (b"192.0.2.9", b"192.0.2.9", Some("192.0.2.9")),
            (b"unix:1", b"unix:1", None),
        ];
        for (field, masked, ip) in cases {
            let (span, got) = client_address(field);
            assert_eq!(span.of(field), masked, "{}", String::from_utf8_lossy(field));
            assert_eq!(got, ip.map(|s| s.parse().unwrap()));
        }
    }

    #[test]
    fn accept_dates_with_and_without_a_fraction() {
        let mut c = TimeCache::new();
        assert_eq!(
            accept_date(b"17/May/2015:10:05:03.655", &mut c),
            Some(1_431_857_103)
        );
        assert_eq!(
            accept_date(b"17/May/2015:10:05:03", &mut c),
            Some(1_431_857_103)
        );
        for bad in [
            &b"17/May/2015:10:05:03."[..],
            b"17/May/2015:10:05:03.6x",
            b"17/May/2015:10:05:03 +0000",
            b"17/May/2015:10:05",
        ] {
            assert_eq!(accept_date(bad, &mut c), None);
        }
    }

    #[test]
    fn a_request_cut_by_the_syslog_line_length_is_read_to_the_end() {
        let r = parse(br#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /very/long/pa"#).unwrap();
        assert_eq!(r.target, Some(&b"/very/long/pa"[..]));
        assert_eq!(r.protocol, None);
    }

    #[test]
    fn text_glued_to_the_closing_quote_is_an_error() {
        let err = parse(br#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1"x"#).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Trailing);
    }
}

//! The `envoy` preset: Envoy's default text access log, and the longer one Istio configures
//! for its Envoy proxies. Envoy's JSON access logs are read by the `json` preset
//! ([`super::json`]).
//!
//! Reference: Envoy's access log documentation, "Default format string":
//!
//! ```text
//! [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//! %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
//! ```
//!
//! Istio adds `%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
//! "%UPSTREAM_TRANSPORT_FAILURE_REASON%"` after the response flags, and `%UPSTREAM_CLUSTER%
//! %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
//! %REQUESTED_SERVER_NAME% %ROUTE_NAME%` at the end. Both shapes are read, and so is a
//! format without the upstream service time (Contour's).
//!
//! **Who the client is.** The default format logs no peer address. Envoy at the edge
//! (`use_remote_address: true`) appends the address it saw to X-Forwarded-For, so the client
//! is the rightmost address of that list that is not a trusted proxy
//! ([`addr::client_of_list`]); what the client wrote to the left never decides who is
//! flagged. A line without X-Forwarded-For has no client. With Istio's tail, the client is
//! `%DOWNSTREAM_REMOTE_ADDRESS%`, the peer as Envoy determined it, and X-Forwarded-For is
//! walked only when that peer is a trusted proxy, as for every format logging both.
//!
//! **Quotes.** Envoy writes header values without escaping a `"` (envoyproxy/envoy#4191),
//! so a client can put `" "` in its User-Agent or X-Forwarded-For to shift the quoted
//! fields. Fields Envoy writes itself anchor the line: the request line holds no space
//! inside its parts, the numbers follow it, and the upstream host (the last quoted field)
//! is an address. Between them must lie exactly the three `" "` separators of
//! X-Forwarded-For, User-Agent, request id and authority; a line with more is refused as
//! [`ErrorKind::Ambiguous`] rather than guessed, since a guess would let the client choose
//! the address it is blamed on.

use super::addr;
use super::fields::{dash_none, find_literal, number, set_client, split_request, vhost_host, word};
use super::parser::{ErrorKind, ParseError, start_record};
use super::record::{AddrField, AddrKind, Record, Span};
use super::time;

/// Parses one Envoy text access log line into `rec` (overwritten; on an error it holds
/// what was read).
///
/// One function on purpose: a single forward walk over the line in the order Envoy
/// writes the fields, each step starting where the last one stopped.
pub fn parse_into<'a>(line: &'a [u8], rec: &mut Record<'a>) -> Result<(), ParseError> {
    let line = start_record(line, rec)?;
    let mismatch = |at: usize| ParseError::new(ErrorKind::Mismatch, at);
    if line[0] != b'[' {
        return Err(mismatch(0));
    }
    let time_end = find_literal(line, 1, b"] \"").ok_or(mismatch(1))?;
    rec.time =
        Some(time::iso8601(&line[1..time_end]).ok_or(ParseError::new(ErrorKind::BadTime, 1))?);
    let mut pos = time_end + 3;

    // Method, path and protocol hold no space of their own, so the first `" ` ends them.
    let request_end =
        find_literal(line, pos, b"\" ").ok_or(ParseError::new(ErrorKind::Unterminated, pos))?;
    split_request(rec, &line[pos..request_end]);
    pos = request_end + 2;

    let next_word = |pos: &mut usize| -> Result<&'a [u8], ParseError> {
        let (span, next) = word(line, *pos).ok_or(mismatch(*pos))?;
        *pos = next;
        Ok(span.of(line))
    };
    let status_at = pos;
    rec.status = match next_word(&mut pos)? {
        b"-" => None,
        s => Some(
            number(s)
                .filter(|s| *s < 1000)
                .ok_or(ParseError::new(ErrorKind::BadStatus, status_at))? as u16,
        ),
    };
    let _flags = next_word(&mut pos)?;
    let received_at = pos;
    let mut received = next_word(&mut pos)?;
    if number(received).is_none() {
        // Istio: response code details (just read), connection termination details, the
        // quoted upstream transport failure reason, then the bytes received.
        let _termination = next_word(&mut pos)?;
        if line.get(pos) != Some(&b'"') {
            return Err(mismatch(pos));
        }
        let reason_end = find_literal(line, pos + 1, b"\" ")
            .ok_or(ParseError::new(ErrorKind::Unterminated, pos))?;
        pos = reason_end + 2;
        received = next_word(&mut pos)?;
        if number(received).is_none() {
            return Err(mismatch(received_at));
        }
    }
    let sent_at = pos;
    rec.bytes =
        Some(number(next_word(&mut pos)?).ok_or(ParseError::new(ErrorKind::BadBytes, sent_at))?);
    // The duration, and the upstream service time where the format has it.
    for _ in 0..2 {
        if line.get(pos) == Some(&b'"') {
            break;
        }
        next_word(&mut pos)?;
    }
    if line.get(pos) != Some(&b'"') {
        return Err(mismatch(pos));
    }
    let first = pos + 1;

    // The upstream host: the last quoted field, an address (or a `tcp://` URL) Envoy writes.
    let last_quote = memchr::memrchr(b'"', &line[first..])
        .map(|o| first + o)
        .ok_or(ParseError::new(ErrorKind::Unterminated, first))?;
    let upstream_open = memchr::memrchr(b'"', &line[first..last_quote])
        .map(|o| first + o)
        .filter(|&q| q >= first + 2 && &line[q - 2..q] == b"\" ")
        .ok_or(mismatch(last_quote))?;
    let upstream = Span::new(upstream_open + 1, last_quote);
    if upstream.is_empty() || upstream.of(line).contains(&b' ') {
        return Err(mismatch(upstream.start as usize));
    }
    let authority_end = upstream_open - 2;

    // X-Forwarded-For, User-Agent, request id, authority: three separators between them.
    let fields = &line[..authority_end];
    let mut separators = [0usize; 3];
    let mut found = 0;
    let mut at = first;
    while let Some(s) = find_literal(fields, at, b"\" \"") {
        if found == separators.len() {
            return Err(ParseError::new(ErrorKind::Ambiguous, first));
        }
        separators[found] = s;
        found += 1;
        at = s + 1;
    }
    if found < separators.len() {
        return Err(mismatch(first));
    }
    let forwarded = Span::new(first, separators[0]);
    let user_agent = Span::new(separators[0] + 3, separators[1]);
    let authority = Span::new(separators[2] + 3, authority_end);

    let forwarded_text = forwarded.of(line);
    let has_forwarded = !forwarded_text.is_empty() && forwarded_text != b"-";
    if has_forwarded {
        rec.addr_fields.push(AddrField {
            kind: AddrKind::ForwardedFor,
            span: forwarded,
        });
    }
    rec.user_agent = dash_none(user_agent.of(line)).filter(|u| !u.is_empty());
    rec.vhost = dash_none(vhost_host(authority.of(line))).filter(|v| !v.is_empty());
    if upstream.of(line) != b"-" {
        rec.addr_fields.push(AddrField {
            kind: AddrKind::Other,
            span: upstream,
        });
    }

    let tail = &line[last_quote + 1..];
    let peer = match tail.first() {
        None => None,
        Some(b' ') => istio_tail(line, last_quote + 2, rec),
        Some(_) => return Err(ParseError::new(ErrorKind::Trailing, last_quote + 1)),
    };
    match peer {
        Some(span) => set_client(rec, line, span),
        None if has_forwarded => rec.client = addr::client_of_list(forwarded_text),
        None => {}
    }
    Ok(())
}

/// Istio's fields after the upstream host, from `start`: the upstream cluster, then the
/// upstream local, downstream local and downstream remote addresses (each an address with
/// its port, or `-`). Adds the two local addresses to `rec`'s address fields and returns
/// the span of the downstream remote address, the client, when it is one. Any other text
/// after the upstream host is extra fields, which presets accept and do not read.
fn istio_tail(line: &[u8], start: usize, rec: &mut Record<'_>) -> Option<Span> {
    let mut words = [Span::default(); 4];
    let mut pos = start;
    for slot in &mut words {
        let len = line[pos.min(line.len())..]
            .iter()
            .take_while(|b| **b != b' ')
            .count();
        if len == 0 {
            return None;
        }
        *slot = Span::new(pos, pos + len);
        pos += len + 1;
    }
    let address = |s: Span| {
        let text = s.of(line);
        text == b"-" || addr::parse_host(text).is_some()
    };
    if !words[1..].iter().all(|s| address(*s)) {
        return None;
    }
    for local in &words[1..3] {
        if local.of(line) != b"-" {
            rec.addr_fields.push(AddrField {
                kind: AddrKind::Other,
                span: *local,
            });
        }
    }
    (words[3].of(line) != b"-").then_some(words[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[u8]) -> Result<Record<'_>, ParseError> {
        let mut rec = Record::default();
        parse_into(line, &mut rec).map(|()| rec)
    }

    const DEFAULT: &[u8] = br#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;

    /// Regression guard: a User-Agent holding `" "` and an address must not become the
    /// client, whichever way the fields could be split.
    #[test]
    fn quotes_in_a_header_value_refuse_the_line_rather_than_guess() {
        let forged = br#"[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 404 - 0 0 1 - "203.0.113.9" "x" "a, 198.51.100.66" "y" "id" "site" "10.0.2.1:80""#;
        assert_eq!(parse(forged).unwrap_err().kind, ErrorKind::Ambiguous);
        let forged_xff = br#"[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 404 - 0 0 1 - "198.51.100.66" "x, 203.0.113.9" "curl" "id" "site" "10.0.2.1:80""#;
        assert_eq!(parse(forged_xff).unwrap_err().kind, ErrorKind::Ambiguous);
        // A lone quote in a value leaves the separators as they are.
        let quoted = br#"[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 404 - 0 0 1 - "203.0.113.9" "Mozilla "x"" "id" "site" "10.0.2.1:80""#;
        let r = parse(quoted).unwrap();
        assert_eq!(r.user_agent, Some(&br#"Mozilla "x""#[..]));
        assert_eq!(r.client, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn the_client_is_the_rightmost_forwarded_address() {
        let r = parse(DEFAULT).unwrap();
        assert_eq!(r.client, Some("10.0.35.28".parse().unwrap()));
        let line = br#"[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 200 - 0 5 1 - "198.51.100.1, 203.0.113.9" "curl" "-" "site:8443" "-""#;
        let r = parse(line).unwrap();
        assert_eq!(r.client, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(r.vhost, Some(&b"site"[..]));
        let kinds: Vec<AddrKind> = r.addr_fields.as_slice().iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [AddrKind::ForwardedFor]);
    }

    #[test]
    fn an_istio_tail_gives_the_peer() {
        let line = br#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "198.51.100.1" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 [2001:db8::5]:46520 - default"#;
        let r = parse(line).unwrap();
        assert_eq!(r.client, Some("2001:db8::5".parse().unwrap()));
        assert_eq!((r.status, r.bytes), (Some(418), Some(135)));
        let texts: Vec<&[u8]> = r
            .addr_fields
            .as_slice()
            .iter()
            .map(|f| f.span.of(line))
            .collect();
        assert_eq!(
            texts,
            [
                &b"198.51.100.1"[..],
                b"10.44.1.27:80",
                b"10.44.1.23:37652",
                b"10.0.45.184:8000",
                b"[2001:db8::5]:46520"
            ]
        );
        assert_eq!(r.addr_fields.as_slice()[4].kind, AddrKind::Client);
    }
}

//! JSON access logs, one object per line: nginx `escape=json` formats, Caddy's structured
//! access log, Traefik's JSON access log, and Envoy's JSON access logs (the command
//! operators' usual names, and Istio's). A small scanner walks the object without building a
//! tree; values are borrowed from the line (escapes are left as written).

use super::addr;
use super::fields::{set_client, split_request, vhost_host};
use super::parser::{ErrorKind, ParseError};
use super::record::{AddrField, AddrKind, Record, Span};
use super::time::{self, TimeCache};

/// Nested objects deeper than this are refused rather than walked.
const MAX_DEPTH: usize = 16;

/// What a known key means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    /// An address; the rank decides which one is the client (higher wins).
    Addr(u8),
    /// An address that is never the client (Envoy's `upstream_host`, the proxy's own).
    OtherAddr,
    ForwardedFor,
    Time,
    Method,
    Target,
    /// A path that a target key, when the line has one, takes precedence over (Envoy's
    /// `path` beside `x-envoy-original-path`).
    Path,
    Protocol,
    Request,
    Status,
    Bytes,
    Referer,
    UserAgent,
    Vhost,
    /// A host that may carry a `:port`, which is dropped (Envoy's `:authority`).
    Authority,
}

fn classify(key: &[u8]) -> Option<Key> {
    Some(match key {
        // Caddy's `client_ip` is the client after trusted proxies; prefer it.
        b"client_ip" => Key::Addr(5),
        // Envoy's `%DOWNSTREAM_REMOTE_ADDRESS%`: the peer as Envoy determined it, with a port.
        b"remote_addr" | b"ClientHost" | b"downstream_remote_address" => Key::Addr(4),
        b"remote_ip" | b"clientip" | b"client_addr" | b"ip" => Key::Addr(3),
        b"ClientAddr" => Key::Addr(2),
        b"realip_remote_addr" | b"http_x_real_ip" | b"X-Real-Ip" | b"request_X-Real-Ip" => {
            Key::Addr(1)
        }
        b"upstream_host" | b"upstream_local_address" | b"downstream_local_address" => {
            Key::OtherAddr
        }
        b"http_x_forwarded_for"
        | b"X-Forwarded-For"
        | b"request_X-Forwarded-For"
        | b"x-forwarded-for"
        | b"x_forwarded_for" => Key::ForwardedFor,
        b"time_local" | b"time_iso8601" | b"msec" | b"ts" | b"StartUTC" | b"StartLocal"
        | b"time" | b"timestamp" | b"@timestamp" | b"start_time" => Key::Time,
        b"request_method" | b"method" | b"RequestMethod" => Key::Method,
        b"request_uri"
        | b"uri"
        | b"RequestPath"
        | b"x-envoy-original-path"
        | b"x-envoy-origin-path" => Key::Target,
        b"path" => Key::Path,
        b"server_protocol" | b"proto" | b"protocol" | b"RequestProtocol" => Key::Protocol,
        b"request" => Key::Request,
        b"status" | b"DownstreamStatus" | b"status_code" | b"response_code" => Key::Status,
        b"body_bytes_sent" | b"bytes_sent" | b"size" | b"DownstreamContentSize" => Key::Bytes,
        b"http_referer" | b"referer" | b"Referer" | b"request_Referer" => Key::Referer,
        b"http_user_agent"
        | b"user_agent"
        | b"User-Agent"
        | b"request_User-Agent"
        | b"user-agent" => Key::UserAgent,
        b"host" | b"server_name" | b"http_host" | b"RequestHost" | b"vhost" => Key::Vhost,
        b":authority" | b"authority" => Key::Authority,
        _ => return None,
    })
}

struct Scanner<'a, 'c> {
    line: &'a [u8],
    pos: usize,
    rec: Record<'a>,
    cache: &'c mut TimeCache,
    client: Option<(u8, Span)>,
    known: u32,
}

impl<'a> Scanner<'a, '_> {
    fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError::new(kind, self.pos)
    }

    fn ws(&mut self) {
        while self.pos < self.line.len()
            && matches!(self.line[self.pos], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), ParseError> {
        self.ws();
        if self.line.get(self.pos) != Some(&b) {
            return Err(self.err(ErrorKind::NotJson));
        }
        self.pos += 1;
        Ok(())
    }

    /// A string starting at the current `"`; returns the span of its contents.
    fn string(&mut self) -> Result<Span, ParseError> {
        self.expect(b'"')?;
        let start = self.pos;
        loop {
            let off = memchr::memchr2(b'"', b'\\', &self.line[self.pos..])
                .ok_or(self.err(ErrorKind::NotJson))?;
            self.pos += off;
            if self.line[self.pos] == b'\\' {
                self.pos += 2;
                if self.pos > self.line.len() {
                    return Err(self.err(ErrorKind::NotJson));
                }
            } else {
                let span = Span::new(start, self.pos);
                self.pos += 1;
                return Ok(span);
            }
        }
    }

    /// A number, `true`, `false` or `null`: the bytes up to the next delimiter.
    fn scalar(&mut self) -> Result<Span, ParseError> {
        let start = self.pos;
        while self.pos < self.line.len()
            && !matches!(self.line[self.pos], b',' | b'}' | b']' | b' ' | b'\t')
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err(ErrorKind::NotJson));
        }
        Ok(Span::new(start, self.pos))
    }

    fn object(&mut self, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err(ErrorKind::NotJson));
        }
        self.expect(b'{')?;
        self.ws();
        if self.line.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.expect(b':')?;
            self.value(classify(key.of(self.line)), depth)?;
            self.ws();
            match self.line.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err(ErrorKind::NotJson)),
            }
        }
    }

    fn value(&mut self, key: Option<Key>, depth: usize) -> Result<(), ParseError> {
        self.ws();
        match self.line.get(self.pos) {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => {
                // Caddy writes headers as arrays of strings; the first element is the value.
                self.pos += 1;
                let mut first = true;
                loop {
                    self.ws();
                    match self.line.get(self.pos) {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        Some(b',') if !first => self.pos += 1,
                        _ if first => {}
                        _ => return Err(self.err(ErrorKind::NotJson)),
                    }
                    self.value(if first { key } else { None }, depth + 1)?;
                    first = false;
                }
            }
            Some(b'"') => {
                let span = self.string()?;
                if let Some(k) = key {
                    self.apply(k, span, true)?;
                }
                Ok(())
            }
            Some(_) => {
                let span = self.scalar()?;
                if let Some(k) = key {
                    self.apply(k, span, false)?;
                }
                Ok(())
            }
            None => Err(self.err(ErrorKind::NotJson)),
        }
    }

    fn apply(&mut self, key: Key, span: Span, quoted: bool) -> Result<(), ParseError> {
        let line = self.line;
        let text = span.of(line);
        if text.is_empty() || text == b"-" || text == b"null" {
            return Ok(());
        }
        self.known += 1;
        let bad = |k| ParseError::new(k, span.start as usize);
        let rec = &mut self.rec;
        match key {
            Key::Addr(rank) => {
                if addr::parse_host(text).is_some() || addr::client_of_list(text).is_some() {
                    rec.addr_fields.push(AddrField {
                        kind: AddrKind::Other,
                        span,
                    });
                    if self.client.is_none_or(|(r, _)| rank > r) {
                        self.client = Some((rank, span));
                    }
                }
            }
            Key::OtherAddr => rec.addr_fields.push(AddrField {
                kind: AddrKind::Other,
                span,
            }),
            Key::ForwardedFor => rec.addr_fields.push(AddrField {
                kind: AddrKind::ForwardedFor,
                span,
            }),
            Key::Time => {
                let t = if quoted {
                    time::iso8601(text)
                        .or_else(|| self.cache.clf(text))
                        .or_else(|| time::epoch(text, 1))
                } else {
                    time::epoch(text, 1)
                };
                // Several time keys may be present (Traefik has StartUTC and time); the first
                // readable one wins.
                if rec.time.is_none() {
                    rec.time = Some(t.ok_or(bad(ErrorKind::BadTime))?);
                }
            }
            Key::Method => rec.method = Some(text),
            Key::Target => rec.target = Some(text),
            Key::Path => {
                rec.target.get_or_insert(text);
            }
            Key::Protocol => rec.protocol = Some(text),
            Key::Request => {
                let (m, t, p) = (rec.method, rec.target, rec.protocol);
                split_request(rec, text);
                // Separate method/uri keys, when present, are more precise than the split.
                rec.method = m.or(rec.method);
                rec.target = t.or(rec.target);
                rec.protocol = p.or(rec.protocol);
            }
            Key::Status => {
                let s = parse_u64(text)
                    .filter(|s| *s < 1000)
                    .ok_or(bad(ErrorKind::BadStatus))?;
                rec.status = Some(s as u16);
            }
            Key::Bytes => rec.bytes = Some(parse_u64(text).ok_or(bad(ErrorKind::BadBytes))?),
            Key::Referer => rec.referer = Some(text),
            Key::UserAgent => rec.user_agent = Some(text),
            Key::Vhost => {
                rec.vhost.get_or_insert(text);
            }
            Key::Authority => {
                rec.vhost.get_or_insert(vhost_host(text));
            }
        }
        Ok(())
    }
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')))
}

/// Parses one JSON line.
pub fn parse<'a>(line: &'a [u8], cache: &mut TimeCache) -> Result<Record<'a>, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(ParseError::new(ErrorKind::Empty, 0));
    }
    let mut s = Scanner {
        line,
        pos: 0,
        rec: Record {
            line,
            ..Record::default()
        },
        cache,
        client: None,
        known: 0,
    };
    s.object(0)?;
    s.ws();
    if s.pos != line.len() {
        return Err(s.err(ErrorKind::Trailing));
    }
    if s.known == 0 {
        return Err(ParseError::new(ErrorKind::NoFields, 0));
    }
    let mut rec = s.rec;
    if let Some((_, span)) = s.client {
        // Re-mark the chosen field as the client, then fill the client from it.
        let mut fields = rec.addr_fields;
        rec.addr_fields.clear();
        for f in fields.as_slice().iter().filter(|f| f.span != span) {
            rec.addr_fields.push(*f);
        }
        set_client(&mut rec, line, span);
        // `set_client` appends the client; the record promises line order.
        rec.addr_fields.sort();
        fields.clear();
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_field_keeps_addr_fields_in_line_order() {
        let line =
            br#"{"remote_addr":"192.0.2.1","status":200,"http_x_forwarded_for":"198.51.100.7"}"#;
        let r = parse(line, &mut TimeCache::new()).unwrap();
        let starts: Vec<u32> = r
            .addr_fields
            .as_slice()
            .iter()
            .map(|f| f.span.start)
            .collect();
        assert_eq!(starts.len(), 2);
        assert!(starts[0] < starts[1], "{starts:?}");
        assert_eq!(r.addr_fields.as_slice()[0].kind, AddrKind::Client);
    }

    #[test]
    fn nginx_escape_json() {
        let line = br#"{"time_local":"17/May/2015:10:05:03 +0000","remote_addr":"2001:db8::1","request":"GET /a?b=1 HTTP/1.1","status": "404","body_bytes_sent":"12","http_referer":"","http_user_agent":"curl/8 \"x\"","http_x_forwarded_for":"1.2.3.4, 5.6.7.8"}"#;
        let r = parse(line, &mut TimeCache::new()).unwrap();
        assert_eq!(r.client, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(r.time, Some(1_431_857_103));
        assert_eq!(r.status, Some(404));
        assert_eq!(r.target, Some(&b"/a?b=1"[..]));
        assert_eq!(r.user_agent, Some(&br#"curl/8 \"x\""#[..]));
        assert_eq!(r.referer, None);
        assert_eq!(r.addr_fields.len(), 2);
    }

    #[test]
    fn caddy_nested_request() {
        let line = br#"{"level":"info","ts":1646861401.52,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"10.0.0.9","remote_port":"41342","client_ip":"81.2.69.142","proto":"HTTP/2.0","method":"GET","host":"example.com","uri":"/x","headers":{"User-Agent":["curl/7.82.0"],"Accept":["*/*"]}},"bytes_read":0,"duration":0.0009,"size":10900,"status":200}"#;
        let r = parse(line, &mut TimeCache::new()).unwrap();
        assert_eq!(r.client, Some("81.2.69.142".parse().unwrap()));
        assert_eq!(r.time, Some(1_646_861_401));
        assert_eq!(r.method, Some(&b"GET"[..]));
        assert_eq!(r.user_agent, Some(&b"curl/7.82.0"[..]));
        assert_eq!(r.vhost, Some(&b"example.com"[..]));
        assert_eq!((r.status, r.bytes), (Some(200), Some(10900)));
        assert_eq!(r.addr_fields.len(), 2);
    }

    #[test]
    fn traefik_fields() {
        let line = br#"{"ClientAddr":"[2001:db8::5]:4711","ClientHost":"2001:db8::5","DownstreamStatus":403,"RequestMethod":"POST","RequestPath":"/wp-login.php","RequestProtocol":"HTTP/1.1","StartUTC":"2026-11-22T04:39:16.123456789Z","request_User-Agent":"x"}"#;
        let r = parse(line, &mut TimeCache::new()).unwrap();
        assert_eq!(r.client, Some("2001:db8::5".parse().unwrap()));
        assert_eq!(r.status, Some(403));
        assert_eq!(r.time, time::iso8601(b"2026-11-22T04:39:16Z"));
    }

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn envoy_json_keys() {
        // From the CrowdSec hub's Envoy test data, after its container log prefix.
        let line = br#"{"start_time":"2025-12-31T16:40:00.100Z","method":"GET","x-envoy-origin-path":"/page-01","response_code":404,"user-agent":"Mozilla/5.0","downstream_remote_address":"10.0.0.13:40000",":authority":"crawl.internal"}"#;
        let detected = crate::format::detect([&line[..]]).unwrap();
        assert_eq!(detected.format.name(), "json");
        let r = parse(line, &mut TimeCache::new()).unwrap();
        assert_eq!(r.client, Some(ip("10.0.0.13")));
        assert_eq!(r.time, Some(1_767_199_200));
        assert_eq!(r.method, Some(&b"GET"[..]));
        assert_eq!(r.target, Some(&b"/page-01"[..]));
        assert_eq!(r.status, Some(404));
        assert_eq!(r.user_agent, Some(&b"Mozilla/5.0"[..]));
        assert_eq!(r.vhost, Some(&b"crawl.internal"[..]));
        let fields = r.addr_fields.as_slice();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].kind, AddrKind::Client);
        assert_eq!(fields[0].span.of(line), b"10.0.0.13:40000");

        // The usual names of Envoy's command operators (and Istio's), in another order.
        let line = br#"{"authority":"shop.example.net:443","bytes_sent":612,"downstream_remote_address":"[2001:db8::9]:51000","path":"/a","x-envoy-original-path":"/orig?q=1","protocol":"HTTP/2","start_time":"2026-12-06T10:00:00.123Z","upstream_host":"10.1.0.4:8080","x_forwarded_for":"198.51.100.1","user_agent":"curl/8"}"#;
        let r = parse(line, &mut TimeCache::new()).unwrap();
        assert_eq!(r.client, Some(ip("2001:db8::9")));
        assert_eq!(r.target, Some(&b"/orig?q=1"[..]));
        assert_eq!((r.bytes, r.time), (Some(612), Some(1_796_551_200)));
        assert_eq!(r.vhost, Some(&b"shop.example.net"[..]));
        let kinds: Vec<(AddrKind, &[u8])> = r
            .addr_fields
            .as_slice()
            .iter()
            .map(|f| (f.kind, f.span.of(line)))
            .collect();
        assert_eq!(
            kinds,
            [
                (AddrKind::Client, &b"[2001:db8::9]:51000"[..]),
                (AddrKind::Other, b"10.1.0.4:8080"),
                (AddrKind::ForwardedFor, b"198.51.100.1"),
            ]
        );
        // `path` alone is the target; the upstream host is never the client.
        let line = br#"{"path":"/p","upstream_host":"10.1.0.4:8080","response_code":200}"#;
        let r = parse(line, &mut TimeCache::new()).unwrap();
        assert_eq!((r.target, r.client), (Some(&b"/p"[..]), None));
    }

    #[test]
    #[ignore = "needs ../shared/corpus"]
    fn crowdsec_hub_envoy_json_lines_read_after_their_container_prefix() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/corpus/peer-logs/crowdsec-hub/envoy-http-crawl-non_statics.log");
        let data = std::fs::read(&path).expect("the corpus file");
        let mut lines = 0;
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            // `2025-12-31T17:40:00.000000100+01:00 stdout F {...}`: a CRI container log line.
            let json = &line[line.iter().position(|b| *b == b'{').expect("a JSON object")..];
            let r = parse(json, &mut TimeCache::new()).unwrap();
            assert_eq!(
                r.client,
                Some(ip("10.0.0.13")),
                "{}",
                String::from_utf8_lossy(json)
            );
            assert!(r.time.is_some() && r.status.is_some() && r.target.is_some());
            assert_eq!(r.vhost, Some(&b"crawl.internal"[..]));
            lines += 1;
        }
        assert!(lines >= 30, "{lines} lines");
    }

    #[test]
    fn broken_json_is_an_error_not_a_panic() {
        let mut c = TimeCache::new();
        for bad in [
            &b"{"[..],
            b"{\"a\"",
            b"{\"a\":\"\\",
            b"[1]",
            b"{\"a\":1}x",
            b"{\"a\":1}",
            b"{\"status\":\"x\"}",
        ] {
            assert!(
                parse(bad, &mut c).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}{}", "{\"a\":".repeat(100), "}".repeat(100));
        assert!(parse(deep.as_bytes(), &mut c).is_err());
    }
}

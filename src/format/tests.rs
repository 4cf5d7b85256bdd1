//! Table tests for every preset and for `nginx:`/`apache:` strings, built from real line
//! shapes, and the property test comparing the fast parser with the reference parser.

use std::net::IpAddr;

use proptest::prelude::*;

use super::reference::parse_combined;
use super::*;

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn fixed(spec: &str) -> Format {
    match FormatSpec::parse(spec).unwrap() {
        FormatSpec::Fixed(f) => f,
        FormatSpec::Auto => panic!("not fixed"),
    }
}

/// (format, line, client, time, status, target, user agent); `None` time means "must fail".
type Row = (
    &'static str,
    &'static [u8],
    Option<&'static str>,
    Option<i64>,
    Option<u16>,
    Option<&'static [u8]>,
    Option<&'static [u8]>,
);

const ROWS: &[Row] = &[
    ("combined", br#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)""#,
        Some("83.149.9.216"), Some(1_431_857_103), Some(200), Some(b"/presentations/logstash-monitorama-2013/images/kibana-search.png"), Some(b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)")),
    ("combined", br#"2001:0db8:85a3:0000:0000:8a2e:0370:7334 - - [29/Sep/2021:14:11:34 +0200] "HEAD / HTTP/1.1" 200 0 "-" "Mozilla/5.00 (Nikto/2.1.5) (Evasions:None) (Test:Port Check)""#,
        Some("2001:db8:85a3::8a2e:370:7334"), Some(1_632_917_494), Some(200), Some(b"/"), Some(b"Mozilla/5.00 (Nikto/2.1.5) (Evasions:None) (Test:Port Check)")),
    // The request is "-" (a connection closed before a request), sizes as "-".
    ("combined", br#"10.112.81.15 - - [15/Feb/2013:06:00:31 +0000] "-" 400 0 "-" "-""#,
        Some("10.112.81.15"), Some(1_360_908_031), Some(400), None, None),
    // An empty request and TLS bytes sent to a plain-text port, as nginx writes them.
    ("combined", br#"1.2.3.4 - - [15/Feb/2013:06:00:31 +0000] "" 400 150 "-" "-""#,
        Some("1.2.3.4"), Some(1_360_908_031), Some(400), None, None),
    ("combined", br#"1.2.3.4 - - [15/Feb/2013:06:00:31 +0000] "\x16\x03\x01\x00\xA5\x01\x00\x00\xA1\x03\x03" 400 157 "-" "-""#,
        Some("1.2.3.4"), Some(1_360_908_031), Some(400), None, None),
    // Apache escapes quotes inside a field as \".
    ("combined", br#"192.0.2.7 - bob [10/Oct/2000:13:55:36 -0700] "GET /a?q=\"x\" HTTP/1.0" 404 - "-" "Mozilla \"quoted\" agent\\""#,
        Some("192.0.2.7"), Some(971_211_336), Some(404), Some(br#"/a?q=\"x\""#), Some(br#"Mozilla \"quoted\" agent\\"#)),
    // nginx behind proxies may write a whole list into $remote_addr.
    ("combined", br#"10.0.0.2, 10.0.0.1, 85.181.35.98 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "Mozilla/5.0""#,
        Some("85.181.35.98"), Some(1_481_105_107), Some(200), Some(b"/ocelot"), Some(b"Mozilla/5.0")),
    // A host name instead of an address (Apache HostnameLookups On).
    ("common", br#"dsl-81-2-69-142.example.net - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 301 368"#,
        None, Some(1_328_910_127), Some(301), Some(b"/"), None),
    ("common", br#"::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -"#,
        Some("::1"), Some(1_482_761_808), Some(408), None, None),
    ("common", br#"1.2.3.4 - theuser [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 301 368 trailing"#,
        Some("1.2.3.4"), Some(1_328_910_127), Some(301), Some(b"/"), None),
    ("vcombined", br#"www.example.com:443 203.0.113.9 - - [04/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 32953 "-" "Mozilla/5.0""#,
        Some("203.0.113.9"), Some(1_562_224_846), Some(200), Some(b"/"), Some(b"Mozilla/5.0")),
    ("vcombined", br#"vhost1.domaine.fr 123.123.123.123 - - [04/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 32953 "-" "Mozilla/5.0""#,
        Some("123.123.123.123"), Some(1_562_224_846), Some(200), Some(b"/"), Some(b"Mozilla/5.0")),
    ("vcombined", br#"localhost:443 178.20.184.42 1j0vhgd jsmith [26/Jul/2023:00:01:26 -0700] "GET /secure/RapidBoard.jspa?rapidView=1295 HTTP/2.0" 200 17163 "-" "Mozilla/5.0" 116075"#,
        Some("178.20.184.42"), Some(1_690_354_886), Some(200), Some(b"/secure/RapidBoard.jspa?rapidView=1295"), Some(b"Mozilla/5.0")),
    ("vcommon", br#"www.example.com 1.2.3.4 - theuser [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 301 368"#,
        Some("1.2.3.4"), Some(1_328_910_127), Some(301), Some(b"/"), None),
    ("main", br#"172.17.0.1 - - [29/May/2017:19:02:48 +0000] "GET /stringpatch HTTP/1.1" 404 612 "-" "Mozilla/5.0 (Windows NT 6.1; rv:15.0)" "203.0.113.1, 10.0.0.1""#,
        Some("172.17.0.1"), Some(1_496_084_568), Some(404), Some(b"/stringpatch"), Some(b"Mozilla/5.0 (Windows NT 6.1; rv:15.0)")),
    ("nginx:$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" rt=$request_time",
        br#"[2001:db8::1]:443 - - [22/Nov/2026:04:39:16 +0000] "POST /wp-login.php HTTP/2.0" 200 12 "-" "curl/8.0" rt=0.004"#,
        Some("2001:db8::1"), Some(1_795_322_356), Some(200), Some(b"/wp-login.php"), Some(b"curl/8.0")),
    ("nginx:$remote_addr [$time_iso8601] $request_method $request_uri $status \"$http_x_forwarded_for\" $realip_remote_addr",
        br#"::ffff:81.2.69.142 [2026-11-22T05:39:16+01:00] GET /x?y=1 503 "81.2.69.142, unknown" 10.0.0.1"#,
        Some("::ffff:81.2.69.142"), Some(1_795_322_356), Some(503), Some(b"/x?y=1"), None),
    ("nginx:$msec $remote_addr $status",
        b"1795322356.123 1.2.3.4 200", Some("1.2.3.4"), Some(1_795_322_356), Some(200), None, None),
    ("apache:%a %{%Y-%m-%dT%H:%M:%S%z}t \\\"%m %U%q %H\\\" %>s %B %D",
        br#"81.2.69.142 2026-11-22T05:39:16+0100 "GET /p?q=1 HTTP/1.1" 200 5 1234"#,
        Some("81.2.69.142"), Some(1_795_322_356), Some(200), Some(b"/p?q=1"), None),
    ("apache:%h %{sec}t %>s", b"1.2.3.4 1795322356 200", Some("1.2.3.4"), Some(1_795_322_356), Some(200), None, None),
    ("json", br#"{"remote_addr":"81.2.69.142","time_iso8601":"2026-11-22T04:39:16+00:00","request":"GET /x HTTP/1.1","status":"200","http_user_agent":"ua"}"#,
        Some("81.2.69.142"), Some(1_795_322_356), Some(200), Some(b"/x"), Some(b"ua")),
    // Lines that must not parse.
    ("combined", br#"192.168.202.254 [20/Jul/2009:22:59:29 +0000] "GET /vmw/vSphere/default/vmkboot.gz HTTP/1.0" 404 46210 "-" "gPXE/0.9.7""#, None, None, None, None, None),
    ("combined", br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1 200 5 "-" "x"#, None, None, None, None, None),
    ("combined", b"\x00\x01\x02 binary \xff\xfe garbage", None, None, None, None, None),
    ("combined", b"", None, None, None, None, None),
    ("combined", br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" abc 5 "-" "x""#, None, None, None, None, None),
    ("nginx:$remote_addr $status", b"1.2.3.4 200 extra", None, None, None, None, None),
];

#[test]
fn table_of_real_line_shapes() {
    for (spec, line, client, time, status, target, ua) in ROWS {
        let format = fixed(spec);
        let got = format.parse(line, &mut TimeCache::new());
        let shown = String::from_utf8_lossy(line);
        match time {
            None => assert!(got.is_err(), "{spec}: should fail: {shown}"),
            Some(t) => {
                let r = got.unwrap_or_else(|e| panic!("{spec}: {e}: {shown}"));
                assert_eq!(r.client, client.and_then(ip), "client: {shown}");
                assert_eq!(r.time, Some(*t), "time: {shown}");
                assert_eq!(r.status, *status, "status: {shown}");
                assert_eq!(r.target, *target, "target: {shown}");
                assert_eq!(r.user_agent, *ua, "ua: {shown}");
                // Every address field span points at bytes of the line.
                for f in r.addr_fields.as_slice() {
                    assert!(f.span.end as usize <= line.len());
                }
            }
        }
    }
}

/// One proxy log line and what it must read as: (preset, line, client, time, method,
/// target, status, bytes, user agent, vhost). A `None` time means the line must not parse.
type ProxyRow = (
    &'static str,
    &'static [u8],
    Option<&'static str>,
    Option<i64>,
    Option<&'static [u8]>,
    Option<&'static [u8]>,
    Option<u16>,
    Option<u64>,
    Option<&'static [u8]>,
    Option<&'static [u8]>,
);

const PROXY_ROWS: &[ProxyRow] = &[
    // HAProxy's manual example, as syslog writes it after the header, headers captured.
    ("haproxy", br#"haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1""#,
        Some("10.0.1.2"), Some(1_233_922_454), Some(b"GET"), Some(b"/index.html"), Some(200), Some(2750), None, None),
    // `log stdout format raw`: no tag; an IPv6 client written without brackets.
    ("haproxy", br#"2001:db8::1:51234 [06/Dec/2026:10:00:00.123] fe~ be/srv 0/0/0/1/1 404 512 - - ---- 1/1/0/0/0 0/0 "GET /path?x=1 HTTP/1.1""#,
        Some("2001:db8::1"), Some(1_796_551_200), Some(b"GET"), Some(b"/path?x=1"), Some(404), Some(512), None, None),
    // An IPv4 client on an IPv6 socket, as HAProxy bound to `:::443` logs it.
    ("haproxy", br#"haproxy[1540]: ::ffff:195.95.239.60:54241 [09/Feb/2021:17:28:18.698] https~ traefik/server_kube02 0/0/1/7/227 206 1601821 - - ---- 33/15/1/0/0 0/0 "GET /sites/default/files/x.jpg HTTP/1.1""#,
        Some("::ffff:195.95.239.60"), Some(1_612_891_698), Some(b"GET"), Some(b"/sites/default/files/x.jpg"), Some(206), Some(1_601_821), None, None),
    // A bad request: no server, timers at -1, the request as `<BADREQ>`.
    ("haproxy", br#"haproxy[1]: 198.51.100.4:1234 [06/Dec/2026:10:00:01.000] fe fe/<NOSRV> -1/-1/-1/-1/0 400 187 - - PR-- 1/1/0/0/0 0/0 "<BADREQ>""#,
        Some("198.51.100.4"), Some(1_796_551_201), None, None, Some(400), Some(187), None, None),
    // `option logasap`: `+` before the total time and the bytes; no status yet (-1).
    ("haproxy", br#"[2001:db8::9]:443 [06/Dec/2026:10:00:00.500] fe be/s1 0/0/0/-1/+5 -1 +0 - - CD-- 1/1/0/0/0 0/0 "GET /big.iso HTTP/1.1""#,
        Some("2001:db8::9"), Some(1_796_551_200), Some(b"GET"), Some(b"/big.iso"), None, Some(0), None, None),
    // Request headers only (host, user agent and X-Forwarded-For captured), cookies
    // captured, a unique id appended after the request.
    ("haproxy", br#"203.0.113.9:51234 [06/Dec/2026:10:00:00.123] fe be/srv 0/0/0/1/1 200 512 SESS=a - --VN 1/1/0/0/0 0/0 {www.example.com|Mozilla/5.0 (X11; Linux x86_64)|198.51.100.7} "POST /login HTTP/2.0" 7F000001:A51C"#,
        Some("203.0.113.9"), Some(1_796_551_200), Some(b"POST"), Some(b"/login"), Some(200), Some(512), None, None),
    // Envoy's manual example.
    ("envoy", br#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#,
        Some("10.0.35.28"), Some(1_460_751_420), Some(b"POST"), Some(b"/api/v1/locations"), Some(204), Some(0), Some(b"nsq2http"), Some(b"locations")),
    // An IPv6 client appended to a list the client sent; the authority with a port.
    ("envoy", br#"[2026-12-06T10:00:00.123Z] "GET /wp-login.php HTTP/1.1" 404 NR 0 0 0 - "198.51.100.1, 2001:db8::7" "curl/8.5.0" "6f0c-11" "shop.example.net:8443" "-""#,
        Some("2001:db8::7"), Some(1_796_551_200), Some(b"GET"), Some(b"/wp-login.php"), Some(404), Some(0), Some(b"curl/8.5.0"), Some(b"shop.example.net")),
    // Every header missing: no X-Forwarded-For, so no client.
    ("envoy", br#"[2026-12-06T10:00:00.000Z] "GET /missing HTTP/1.1" 404 NR 0 0 0 - "-" "-" "-" "-" "-""#,
        None, Some(1_796_551_200), Some(b"GET"), Some(b"/missing"), Some(404), Some(0), None, None),
    // A TCP proxy line: no request, response code 0.
    ("envoy", br#"[2026-12-06T10:00:01.000Z] "- - -" 0 - 517 1250 30 - "-" "-" "-" "-" "10.0.2.1:443""#,
        None, Some(1_796_551_201), None, None, Some(0), Some(1250), None, None),
    // Contour's format: no upstream service time.
    ("envoy", br#"[2026-12-06T10:00:00.999Z] "GET / HTTP/1.1" 200 - 0 612 3 "203.0.113.5" "Mozilla/5.0" "a1" "example.com" "10.1.0.4:8080""#,
        Some("203.0.113.5"), Some(1_796_551_200), Some(b"GET"), Some(b"/"), Some(200), Some(612), Some(b"Mozilla/5.0"), Some(b"example.com")),
    // Istio: details after the flags, and the peer at the end is the client.
    ("envoy", br#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default"#,
        Some("10.44.1.23"), Some(1_606_339_578), Some(b"GET"), Some(b"/status/418"), Some(418), Some(135), Some(b"curl/7.73.0-DEV"), Some(b"httpbin")),
    // Lines that must not parse as these presets.
    ("haproxy", br#"10.0.1.2:33320 [06/Feb/2009:12:12:51.443] fnt bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0"#, None, None, None, None, None, None, None, None),
    ("haproxy", br#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 203023 "-" "Mozilla/5.0""#, None, None, None, None, None, None, None, None),
    ("haproxy", br#"10.0.1.2:33317 [06/Feb/2009:12:14:14 +0000] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1""#, None, None, None, None, None, None, None, None),
    ("haproxy", br#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 2OO 2750 - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1""#, None, None, None, None, None, None, None, None),
    ("haproxy", br#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {unclosed "GET / HTTP/1.1""#, None, None, None, None, None, None, None, None),
    ("envoy", br#"[2001:db8::1]:443 - - [22/Nov/2026:04:39:16 +0000] "POST /wp-login.php HTTP/2.0" 200 12 "-" "curl/8.0""#, None, None, None, None, None, None, None, None),
    ("envoy", br#"[2016-04-15T20:17:00.310Z] "POST /api HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "locations" "tcp://10.0.2.1:80""#, None, None, None, None, None, None, None, None),
    ("envoy", br#"[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 404 - 0 0 1 - "203.0.113.9" "x" "a, 198.51.100.66" "y" "id" "site" "10.0.2.1:80""#, None, None, None, None, None, None, None, None),
    ("envoy", br#"[2016-04-15T20:17:00.310Z] "GET / HTTP/1.1" 404 - 0 zero 1 - "203.0.113.9" "x" "id" "site" "10.0.2.1:80""#, None, None, None, None, None, None, None, None),
    ("envoy", br#"[16/Apr/2016:20:17:00 +0000] "GET / HTTP/1.1" 404 - 0 0 1 - "203.0.113.9" "x" "id" "site" "10.0.2.1:80""#, None, None, None, None, None, None, None, None),
];

#[test]
fn table_of_proxy_line_shapes() {
    for (spec, line, client, time, method, target, status, bytes, ua, vhost) in PROXY_ROWS {
        let format = fixed(spec);
        let got = format.parse(line, &mut TimeCache::new());
        let shown = String::from_utf8_lossy(line);
        let Some(t) = time else {
            assert!(got.is_err(), "{spec}: should fail: {shown}");
            continue;
        };
        let r = got.unwrap_or_else(|e| panic!("{spec}: {e}: {shown}"));
        assert_eq!(r.client, client.and_then(ip), "client: {shown}");
        assert_eq!(r.time, Some(*t), "time: {shown}");
        assert_eq!(r.method, *method, "method: {shown}");
        assert_eq!(r.target, *target, "target: {shown}");
        assert_eq!(r.status, *status, "status: {shown}");
        assert_eq!(r.bytes, *bytes, "bytes: {shown}");
        assert_eq!(r.user_agent, *ua, "user agent: {shown}");
        assert_eq!(r.vhost, *vhost, "vhost: {shown}");
        // The same record through `parse_into`, over a record another line filled.
        let mut reused = fixed("combined")
            .parse(
                br#"192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET /x HTTP/1.1" 200 5 "r" "u""#,
                &mut TimeCache::new(),
            )
            .unwrap();
        format
            .parse_into(line, &mut TimeCache::new(), &mut reused)
            .unwrap();
        assert_eq!(reused, r, "parse_into: {shown}");
        // Every address field holds something, inside the line.
        for f in r.addr_fields.as_slice() {
            assert!(f.span.end as usize <= line.len() && !f.span.is_empty());
        }
    }
}

/// The bytes each address field spans: what `anonymize` replaces.
fn address_field_texts(line: &[u8]) -> Vec<(AddrKind, &[u8])> {
    let format = auto(&[line]);
    let r = format.parse(line, &mut TimeCache::new()).unwrap();
    r.addr_fields
        .as_slice()
        .iter()
        .map(|f| (f.kind, f.span.of(line)))
        .collect()
}

fn auto(lines: &[&[u8]]) -> Format {
    detect(lines.iter().copied())
        .expect("a preset parses")
        .format
}

#[test]
fn proxy_address_fields_span_the_address_bytes_only() {
    assert_eq!(
        address_field_texts(br#"haproxy[7]: 2001:db8::1:51234 [06/Dec/2026:10:00:00.123] fe be/srv 0/0/0/1/1 200 512 - - ---- 1/1/0/0/0 0/0 {a.example|198.51.100.7} {} "GET / HTTP/1.1""#),
        [
            (AddrKind::Client, &b"2001:db8::1"[..]),
            (AddrKind::Other, b"a.example|198.51.100.7")
        ]
    );
    assert_eq!(
        address_field_texts(br#"[2016-04-15T20:17:00.310Z] "GET / HTTP/2" 204 - 154 0 226 100 "192.0.2.1, 10.0.35.28" "ua" "id" "locations" "[2001:db8::2]:80""#),
        [
            (AddrKind::ForwardedFor, &b"192.0.2.1, 10.0.35.28"[..]),
            (AddrKind::Other, b"[2001:db8::2]:80")
        ]
    );
}

#[test]
fn auto_detects_the_proxy_presets_and_leaves_the_others_alone() {
    let haproxy: &[u8] = br#"haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1""#;
    let bare: &[u8] = br#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1""#;
    let envoy: &[u8] = br#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0" "locations" "tcp://10.0.2.1:80""#;
    for (lines, want) in [
        (vec![haproxy, bare], "haproxy"),
        (vec![envoy, envoy], "envoy"),
        (vec![envoy, b"garbage", envoy], "envoy"),
    ] {
        let d = detect(lines.iter().copied()).unwrap();
        assert_eq!(d.format.name(), want);
        assert_eq!(d.parsed, lines.iter().filter(|l| l.len() > 10).count());
    }
    // The existing presets' lines are never read by the proxies' parsers.
    for line in ROWS.iter().map(|r| r.1) {
        for name in ["haproxy", "envoy"] {
            assert!(
                fixed(name).parse(line, &mut TimeCache::new()).is_err(),
                "{name} read {}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

#[test]
fn malformed_proxy_lines_are_errors_not_panics() {
    let haproxy = br#"haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1""#;
    let envoy = br#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl" "8496" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default"#;
    for (name, line) in [("haproxy", &haproxy[..]), ("envoy", &envoy[..])] {
        let format = fixed(name);
        assert!(format.parse(line, &mut TimeCache::new()).is_ok());
        // Every cut of the line, and every byte replaced by a quote, a space or garbage.
        for cut in 0..line.len() {
            let _ = format.parse(&line[..cut], &mut TimeCache::new());
            for b in [b'"', b' ', b'[', b'}', 0xff] {
                let mut bent = line.to_vec();
                bent[cut] = b;
                if let Ok(r) = format.parse(&bent, &mut TimeCache::new()) {
                    for f in r.addr_fields.as_slice() {
                        assert!(f.span.end as usize <= bent.len());
                    }
                }
            }
        }
    }
}

#[test]
fn address_fields_cover_client_and_forwarded_lists() {
    let f = fixed("main");
    let line = br#"172.17.0.1 - - [29/May/2017:19:02:48 +0000] "GET / HTTP/1.1" 404 612 "-" "ua" "203.0.113.1, 10.0.0.1""#;
    let r = f.parse(line, &mut TimeCache::new()).unwrap();
    let fields = r.addr_fields.as_slice();
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0].kind, AddrKind::Client);
    assert_eq!(fields[0].span.of(line), b"172.17.0.1");
    assert_eq!(fields[1].kind, AddrKind::ForwardedFor);
    assert_eq!(fields[1].span.of(line), b"203.0.113.1, 10.0.0.1");
}

#[test]
fn a_rewrite_format_finds_the_client_field_without_parsing_it() {
    for preset in ["main", "combined", "common"] {
        let line: &[u8] = br#"[2001:db8::1]:443 - - [29/May/2017:19:02:48 +0000] "GET / HTTP/1.1" 404 612 "-" "ua" "203.0.113.1""#;
        let f = fixed(preset);
        let (full, rewrite) = (f.parse(line, &mut TimeCache::new()), f.for_rewrite());
        let (full, fast) = (
            full.unwrap(),
            rewrite.parse(line, &mut TimeCache::new()).unwrap(),
        );
        assert_eq!(full.client, ip("2001:db8::1"), "{preset}");
        assert_eq!(fast.client, None, "{preset}");
        assert_eq!(fast.client_text, full.client_text, "{preset}");
        assert_eq!(fast.time, full.time, "{preset}");
        let spans = |r: &Record| {
            r.addr_fields
                .as_slice()
                .iter()
                .map(|f| (f.kind, f.span))
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(&fast), spans(&full), "{preset}");
    }
}

#[test]
fn crlf_and_vhost_fields() {
    let f = fixed("vcombined");
    let line = b"www.example.com:443 1.2.3.4 - - [04/Jul/2019:09:20:46 +0200] \"GET / HTTP/1.1\" 200 5 \"-\" \"x\"\r";
    let r = f.parse(line, &mut TimeCache::new()).unwrap();
    assert_eq!(r.vhost, Some(&b"www.example.com"[..]));
    assert_eq!(r.user_agent, Some(&b"x"[..]));
}

#[test]
fn auto_prefers_the_most_specific_preset_that_parses() {
    let combined: &[u8] =
        br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#;
    let main: &[u8] =
        br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" "-""#;
    let common: &[u8] = br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"#;
    let vhost: &[u8] = br#"example.com:80 1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#;
    let json: &[u8] = br#"{"remote_addr":"1.2.3.4","status":200}"#;
    for (lines, want) in [
        (vec![combined, combined], "combined"),
        (vec![main, main], "main"),
        (vec![common], "common"),
        (vec![vhost], "vcombined"),
        (vec![json], "json"),
        (vec![combined, b"garbage", combined], "combined"),
    ] {
        let d = detect(lines.iter().copied()).unwrap();
        assert_eq!(d.format.name(), want);
    }
    assert!(detect([&b"not a log line"[..]]).is_none());
    assert!(detect(std::iter::empty::<&[u8]>()).is_none());
}

#[test]
fn bad_format_strings_are_errors() {
    assert!(FormatSpec::parse("nope").is_err());
    assert!(FormatSpec::parse("nginx:").is_err());
    assert!(FormatSpec::parse("apache:%h%u").is_err());
}

/// Pieces of a generated combined line.
fn field_text() -> impl Strategy<Value = String> {
    // Printable text with the escapes servers write: \" and \\ and \xHH.
    proptest::collection::vec(
        prop_oneof![
            8 => "[a-zA-Z0-9/ .;:()_?=&%-]",
            1 => Just("\\\"".to_string()),
            1 => Just("\\\\".to_string()),
            1 => Just("\\x16".to_string()),
        ],
        0..30,
    )
    .prop_map(|v| v.concat())
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
        Just("-".to_string()),
        "[a-z]{1,8}\\.example\\.net",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn fast_parser_agrees_with_reference(
        addr in address(),
        day in 1u32..29, mon in 0usize..12, year in 1990u32..2100,
        h in 0u32..24, mi in 0u32..60, s in 0u32..60,
        neg in any::<bool>(), oh in 0u32..15, om in prop_oneof![Just(0u32), Just(30), Just(45)],
        method in "[A-Z]{3,7}", path in "/[a-zA-Z0-9/._?=&%-]{0,40}", ver in prop_oneof![Just("HTTP/1.0"), Just("HTTP/1.1"), Just("HTTP/2.0")],
        odd_request in prop_oneof![4 => Just(None), 1 => field_text().prop_map(Some)],
        status in 100u16..600, bytes in prop_oneof![Just(None), (0u64..10_000_000).prop_map(Some)],
        referer in field_text(), ua in field_text(),
    ) {
        const MONTHS: [&str; 12] = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"];
        let request = odd_request.unwrap_or_else(|| format!("{method} {path} {ver}"));
        let line = format!(
            "{addr} - - [{day:02}/{}/{year}:{h:02}:{mi:02}:{s:02} {}{oh:02}{om:02}] \"{request}\" {status} {} \"{referer}\" \"{ua}\"",
            MONTHS[mon], if neg { '-' } else { '+' },
            bytes.map_or("-".to_string(), |b| b.to_string()),
        );
        let want = parse_combined(line.as_bytes()).expect("reference parses generated lines");
        let got = Format::preset("combined").unwrap().parse(line.as_bytes(), &mut TimeCache::new()).expect("fast parser parses generated lines");
        prop_assert_eq!(got.client, want.client);
        prop_assert_eq!(got.time, Some(want.time));
        prop_assert_eq!(got.status, Some(want.status));
        prop_assert_eq!(got.bytes, want.bytes);
        prop_assert_eq!(got.referer.map(<[u8]>::to_vec), want.referer);
        prop_assert_eq!(got.user_agent.map(<[u8]>::to_vec), want.user_agent);
        if want.method.is_some() {
            prop_assert_eq!(got.method.map(<[u8]>::to_vec), want.method);
            prop_assert_eq!(got.target.map(<[u8]>::to_vec), want.target);
            prop_assert_eq!(got.protocol.map(<[u8]>::to_vec), want.protocol);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut cache = TimeCache::new();
        for name in ["combined", "common", "vcombined", "main", "json", "haproxy", "envoy"] {
            let _ = Format::preset(name).unwrap().parse(&line, &mut cache);
        }
    }
}

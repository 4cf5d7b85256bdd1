//! The proxies' presets end to end (`haproxy`, `envoy`, and Envoy's JSON access log read
//! by `json`): the real binary picks the format with `--format auto`, flags a source probing
//! thirty missing pages within seconds under the right address, and `anonymize` changes
//! only the address bytes of each line.

use std::fs;
use std::net::IpAddr;

use logward::anonymize::{Prefixes, truncate};

use crate::util::Dir;

/// What every address written goes through (see [`Log`]).
type Mask<'a> = &'a dyn Fn(&str) -> String;

/// One generated log: its lines, built by `line(mask, i)` where every address written goes
/// through `mask`, so the same builder gives the original lines (`mask` the identity) and
/// the lines `anonymize` must write (`mask` the default truncation).
struct Log {
    preset: &'static str,
    file: &'static str,
    line: fn(Mask, usize) -> String,
    /// The source the prober must be flagged as.
    prober: &'static str,
    /// A source that must not be flagged: an address the prober wrote itself, or a normal
    /// client.
    innocent: &'static str,
}

const LINES: usize = 200;
/// Lines from this one on are the prober's 30 requests, one every 200 ms.
const PROBE_FROM: usize = 170;

/// 2026-12-06T10:00:00Z, when each log starts.
const START: i64 = 1_796_551_200;

/// Normal clients: a few pages each, a request every ten seconds between them.
const CLIENTS: [&str; 5] = [
    "192.0.2.10",
    "192.0.2.11",
    "2001:db8:1:2::10",
    "198.51.100.20",
    "2001:db8:7:7::77",
];

/// The time, pages and status of line `i`: normal traffic, then the probe.
fn request(i: usize) -> (i64, u32, String, u16) {
    if i >= PROBE_FROM {
        let n = i - PROBE_FROM;
        // After the last normal request (line 169, at 1690 s).
        let millis = 1_800_000 + 200 * n as u32;
        (START, millis, format!("/missing-{n:02}.php"), 404)
    } else {
        let page = ["/", "/about", "/shop/cart", "/static/app.css"][i % 4];
        (START, 10_000 * i as u32, page.to_string(), 200)
    }
}

/// `START` plus `millis`, as `(seconds since the epoch, milliseconds)`.
fn at(start: i64, millis: u32) -> (i64, u32) {
    (start + i64::from(millis / 1000), millis % 1000)
}

/// UTC civil date and time of `t`: (year, month, day, hour, minute, second).
fn civil(t: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = logward::timefmt::civil_from_days(days);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

fn haproxy_date(t: i64, ms: u32) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, h, mi, s) = civil(t);
    format!(
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02}.{ms:03}",
        MONTHS[m as usize - 1]
    )
}

fn iso_millis(t: i64, ms: u32) -> String {
    let (y, m, d, h, mi, s) = civil(t);
    format!("{y}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// The client of line `i` before the probe, and the prober after.
fn source(i: usize, prober: &str) -> String {
    if i >= PROBE_FROM {
        prober.to_string()
    } else {
        CLIENTS[i % CLIENTS.len()].to_string()
    }
}

const HAPROXY_PROBER: &str = "203.0.113.66";
const ENVOY_PROBER: &str = "198.51.100.66";
/// What the Envoy prober writes into its own X-Forwarded-For to be blamed on.
const ENVOY_FORGED: &str = "192.0.2.200";
const ENVOY_JSON_PROBER: &str = "2001:db8:5::66";

/// HAProxy through syslog on every other line (the tag kept, the header stripped), a
/// captured Host and X-Forwarded-For, IPv6 clients without brackets as HAProxy writes them.
fn haproxy_line(mask: Mask, i: usize) -> String {
    let (t, millis, path, status) = request(i);
    let (t, ms) = at(t, millis);
    let tag = if i % 2 == 0 { "haproxy[2211]: " } else { "" };
    let client = mask(&source(i, HAPROXY_PROBER));
    let port = 40_000 + i;
    let forwarded = mask("10.9.8.7");
    let server = if status == 404 { "be/web2" } else { "be/web1" };
    format!(
        "{tag}{client}:{port} [{}] www~ {server} 0/0/1/2/3 {status} 512 - - ---- 3/3/1/1/0 0/0 \
         {{shop.example.net|{forwarded}}} {{}} \"GET {path} HTTP/1.1\"",
        haproxy_date(t, ms)
    )
}

/// Envoy's default format at the edge: X-Forwarded-For ends with the peer Envoy saw; the
/// prober sends a forged X-Forwarded-For first.
fn envoy_line(mask: Mask, i: usize) -> String {
    let (t, millis, path, status) = request(i);
    let (t, ms) = at(t, millis);
    let peer = mask(&source(i, ENVOY_PROBER));
    let forwarded = if i >= PROBE_FROM {
        format!("{}, {peer}", mask(ENVOY_FORGED))
    } else {
        peer
    };
    let ua = if i % 3 == 0 {
        "-"
    } else {
        "Mozilla/5.0 (X11; Linux x86_64)"
    };
    let upstream = mask("10.1.0.4");
    format!(
        "[{}] \"GET {path} HTTP/1.1\" {status} - 0 612 3 2 \"{forwarded}\" \"{ua}\" \
         \"7d0c-{i}\" \"shop.example.net\" \"{upstream}:8080\"",
        iso_millis(t, ms)
    )
}

/// Envoy's JSON access log with the CrowdSec hub's keys and an upstream host.
fn envoy_json_line(mask: Mask, i: usize) -> String {
    let (t, millis, path, status) = request(i);
    let (t, ms) = at(t, millis);
    let peer = mask(&source(i, ENVOY_JSON_PROBER));
    let peer = if peer.contains(':') {
        format!("[{peer}]:40000")
    } else {
        format!("{peer}:40000")
    };
    let upstream = mask("10.1.0.4");
    format!(
        "{{\"start_time\":\"{}\",\"method\":\"GET\",\"x-envoy-origin-path\":\"{path}\",\
         \"response_code\":{status},\"user-agent\":\"Mozilla/5.0\",\
         \"downstream_remote_address\":\"{peer}\",\":authority\":\"crawl.internal\",\
         \"upstream_host\":\"{upstream}:8080\"}}",
        iso_millis(t, ms)
    )
}

const LOGS: [Log; 3] = [
    Log {
        preset: "haproxy",
        file: "haproxy.log.1",
        line: haproxy_line,
        prober: HAPROXY_PROBER,
        innocent: "10.9.8.7",
    },
    Log {
        preset: "envoy",
        file: "envoy.log.1",
        line: envoy_line,
        prober: ENVOY_PROBER,
        innocent: ENVOY_FORGED,
    },
    Log {
        preset: "json",
        file: "envoy-json.log.1",
        line: envoy_json_line,
        prober: "2001:db8:5::/64",
        innocent: "10.1.0.4",
    },
];

fn text(log: &Log, mask: Mask) -> String {
    (0..LINES).map(|i| (log.line)(mask, i) + "\n").collect()
}

fn same(a: &str) -> String {
    a.to_string()
}

/// The default truncation (/24, /48), as `anonymize` writes it.
fn truncated(a: &str) -> String {
    let addr: IpAddr = a.parse().expect("the test writes addresses");
    truncate(addr, Prefixes::new(24, 48).unwrap()).to_string()
}

#[test]
fn a_prober_behind_each_proxy_is_flagged_under_its_own_address() {
    let d = Dir::new();
    for log in &LOGS {
        let path = d.write(log.file, text(log, &same).as_bytes());
        let r = d.run(&[
            "scan",
            "--no-store",
            "--no-default-allow",
            "-o",
            "json",
            path.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}: {}", log.file, r.stderr);
        let j = r.json();
        let file = &j["files"][0];
        assert_eq!(file["format"], log.preset, "{}: {j}", log.file);
        assert_eq!(file["parsed"], LINES, "{}: {file}", log.file);
        assert_eq!(file["malformed"], 0, "{}: {file}", log.file);
        let flagged: Vec<(&str, Vec<&str>)> = j["flagged"]
            .as_array()
            .expect("flagged")
            .iter()
            .map(|f| {
                let rules = f["rules"].as_array().unwrap().iter();
                (
                    f["source"].as_str().unwrap(),
                    rules.map(|r| r.as_str().unwrap()).collect(),
                )
            })
            .collect();
        assert_eq!(flagged.len(), 1, "{}: {flagged:?}", log.file);
        assert_eq!(flagged[0].0, log.prober, "{}: {flagged:?}", log.file);
        assert!(
            flagged[0].1.contains(&"http-probing"),
            "{}: {flagged:?}",
            log.file
        );
        assert!(
            !flagged.iter().any(|(s, _)| *s == log.innocent),
            "{}: {flagged:?}",
            log.file
        );
    }
}

#[test]
fn anonymize_changes_only_the_address_bytes_of_proxy_lines() {
    let d = Dir::new();
    for log in &LOGS {
        let path = d.write(log.file, text(log, &same).as_bytes());
        let r = d.run(&[
            "anonymize",
            "--now",
            "2027-01-01T00:00:00Z",
            "-o",
            "json",
            path.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}: {}", log.file, r.stderr);
        let j = r.json();
        let file = &j["files"][0];
        assert_eq!(file["format"], log.preset, "{}: {j}", log.file);
        assert_eq!(file["leaked_lines"], 0, "{}: {file}", log.file);
        let got = fs::read_to_string(&path).unwrap();
        let want = text(log, &truncated);
        assert_ne!(got, text(log, &same), "{}: nothing was masked", log.file);
        for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "{} line {}", log.file, n + 1);
        }
        assert_eq!(got.lines().count(), LINES, "{}", log.file);
        // Masked once is masked: a second run (later, so every line is due again)
        // changes nothing.
        let r = d.run(&[
            "anonymize",
            "--now",
            "2027-02-01T00:00:00Z",
            path.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}: {}", log.file, r.stderr);
        assert_eq!(fs::read_to_string(&path).unwrap(), want, "{}", log.file);
    }
}

//! Access logs inside wrappers (RFC 3164 and 5424 syslog, the journal, CRI and Docker
//! container logs), end to end: `scan` finds the wrapper and the inner format by itself and
//! flags a prober by its real address, `search` finds its lines, and `anonymize` masks the
//! inner addresses and leaves every other byte as it was.

use std::fs;

use crate::util::{Dir, corpus};

/// 2026-10-01T00:00:00Z, the time of the first line.
const START: i64 = 1_790_812_800;
/// The anonymize run's now: two weeks later, so every line is past the 7-day window.
const NOW: &str = "2026-10-15T00:00:00Z";
const PROBER: &str = "203.0.113.77";
/// Lines in a test log, and how many of them are the prober's.
const LINES: usize = 100;
const PROBES: usize = 30;

/// `2026-10-01T00:00:05` for Unix seconds `t` (October 2026, the month of the logs).
fn iso(t: i64) -> String {
    let s = t - START;
    format!(
        "2026-10-{:02}T{:02}:{:02}:{:02}",
        s / 86_400 + 1,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

/// The combined line number `i` of a test log, with its client as truncation masks it when
/// `masked`: ordinary requests from IPv4 and IPv6 clients, and from line 40 on the
/// prober's requests for 30 distinct missing pages, one a second.
fn inner(i: usize, masked: bool) -> (String, i64) {
    let t = START + i as i64;
    let probe = (40..40 + PROBES).contains(&i);
    let client = match (probe, i % 7, masked) {
        (true, _, false) => PROBER.to_string(),
        (true, _, true) => "203.0.113.0".to_string(),
        (false, 0, false) => format!("2001:db8:5::{i:x}"),
        (false, 0, true) => "2001:db8:5::".to_string(),
        (false, _, false) => format!("198.51.100.{}", i % 35 + 1),
        (false, _, true) => "198.51.100.0".to_string(),
    };
    let (request, status) = if probe {
        (format!("GET /missing-{i}.php HTTP/1.1"), 404)
    } else {
        (format!("GET /page/{i}?a=1&b=<2> HTTP/1.1"), 200)
    };
    let time = format!("{:02}/Oct/2026:{}", (t - START) / 86_400 + 1, &iso(t)[11..]);
    (
        format!(
            r#"{client} - - [{time} +0000] "{request}" {status} 512 "-" "Mozilla/5.0 (X11) Firefox/133.0""#
        ),
        t,
    )
}

/// A test log: each inner line through `wrap` (line number, inner line, time), which
/// writes one or more lines, each ending with a newline.
fn log(wrap: Wrap, masked: bool) -> String {
    (0..LINES)
        .map(|i| {
            let (line, t) = inner(i, masked);
            wrap(i, &line, t)
        })
        .collect()
}

fn syslog(_: usize, line: &str, t: i64) -> String {
    // `Oct  1 00:00:05`: the day padded with a space. The host is the server's own IPv6
    // address, which anonymize leaves as it is.
    format!("Oct  1 {} 2001:db8::7 nginx[2869]: {line}\n", &iso(t)[11..])
}

fn rfc5424(i: usize, line: &str, t: i64) -> String {
    let pid = if i % 2 == 0 { "2869" } else { "-" };
    format!(
        "<190>1 {}.123Z 192.0.2.10 nginx {pid} access [meta@32473 note=\"a]b \\\"c\\\"\"] {line}\n",
        iso(t)
    )
}

fn journal(i: usize, line: &str, t: i64) -> String {
    let tag = if i % 3 == 0 { "nginx" } else { "nginx[123]" };
    format!("{}+0000 web-1 {tag}: {line}\n", iso(t))
}

fn cri(i: usize, line: &str, t: i64) -> String {
    let stream = if i % 13 == 0 { "stderr" } else { "stdout" };
    let stamp = format!("{}.123456789Z", iso(t));
    if i % 10 == 5 {
        // Split as a runtime splits, at a byte count: here in the time field.
        let (a, b) = line.split_at(line.find('[').unwrap() + 5);
        format!("{stamp} {stream} P {a}\n{stamp} {stream} F {b}\n")
    } else {
        format!("{stamp} {stream} F {line}\n")
    }
}

fn docker(_: usize, line: &str, t: i64) -> String {
    let text = line
        .replace('"', "\\\"")
        .replace('&', "\\u0026")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e");
    format!(
        "{{\"log\":\"{text}\\n\",\"stream\":\"stdout\",\"time\":\"{}.123456789Z\"}}\n",
        iso(t)
    )
}

/// Writes one inner line (number, text, time) in a wrapper.
type Wrap = fn(usize, &str, i64) -> String;

const WRAPPERS: [(&str, Wrap); 5] = [
    ("syslog", syslog),
    ("rfc5424", rfc5424),
    ("journal", journal),
    ("cri", cri),
    ("docker", docker),
];

#[test]
fn scan_finds_the_wrapper_and_flags_the_prober_by_its_address() {
    for (name, wrap) in WRAPPERS {
        let d = Dir::new();
        let text = log(wrap, false);
        let path = d.write("logs/access.log.1", text.as_bytes());
        let r = d.run(&["scan", "--no-store", "-o", "json", path.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let j = r.json();
        let file = &j["files"][0];
        assert_eq!(file["format"], format!("{name}:combined"), "{j}");
        assert_eq!(file["lines"], text.lines().count(), "{name}");
        assert_eq!(file["parsed"], LINES, "{name}: {j}");
        assert_eq!(j["malformed"], 0, "{name}: {j}");
        assert_eq!(j["first_time"], "2026-10-01T00:00:00Z", "{name}");
        let flagged: Vec<&str> = j["flagged"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["source"].as_str())
            .collect();
        assert_eq!(flagged, [PROBER], "{name}: {j}");
        assert_eq!(j["flagged"][0]["events"], PROBES, "{name}");

        // Named explicitly, the same.
        let spec = format!("{name}:combined");
        let r = d.run(&["scan", "--no-store", "-o", "json", "-f", &spec, "logs"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(r.json()["parsed"], LINES, "{name}");
    }
}

#[test]
fn search_reads_the_wrapped_lines_and_shows_them_as_written() {
    let markers = [
        "2001:db8::7 nginx[2869]: ",
        "<190>1 ",
        " web-1 nginx",
        ".123456789Z std",
        r#"\"GET /missing-"#,
    ];
    for ((name, wrap), marker) in WRAPPERS.into_iter().zip(markers) {
        let d = Dir::new();
        d.write("logs/access.log.1", log(wrap, false).as_bytes());
        let r = d.run(&["search", "-s", PROBER, "logs"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let hits: Vec<&str> = r
            .stdout
            .lines()
            .filter(|l| l.contains("/missing-"))
            .collect();
        assert_eq!(hits.len(), PROBES, "{name}:\n{}", r.stdout);
        assert!(
            hits.iter().all(|l| l.contains(marker)),
            "{name}:\n{}",
            r.stdout
        );
        assert!(!r.stdout.contains("/page/"), "{name}:\n{}", r.stdout);
    }
}

#[test]
fn anonymize_masks_the_inner_addresses_and_keeps_every_wrapper_byte() {
    for (name, wrap) in WRAPPERS {
        let d = Dir::new();
        let path = d.write("logs/access.log.1", log(wrap, false).as_bytes());
        let r = d.run(&["anonymize", "--now", NOW, "-o", "json", "logs"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let j = r.json();
        assert_eq!(j["files"][0]["status"], "rewritten", "{name}: {j}");
        assert_eq!(j["files"][0]["format"], format!("{name}:combined"), "{j}");
        let got = fs::read_to_string(&path).unwrap();
        let want = log(wrap, true);
        for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "{name}: line {}", n + 1);
        }
        assert_eq!(got, want, "{name}");
        assert!(!got.contains(PROBER), "{name}");
    }
}

/// nginx combined lines behind RFC 3164 syslog, from CrowdSec's hub tests: 15 lines, the
/// last of them blank.
#[test]
#[ignore = "needs ../shared/corpus"]
fn corpus_wordpress_wpconfig_behind_syslog() {
    let corpus = corpus();
    let d = Dir::new();
    let log = corpus.join("peer-logs/crowdsec-hub/http-wordpress_wpconfig.log");
    let r = d.run(&["scan", "--no-store", "-o", "json", log.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["files"][0]["format"], "syslog:combined", "{j}");
    let counts = ["lines", "parsed", "empty", "malformed"].map(|k| j[k].as_u64().unwrap());
    assert_eq!(counts, [15, 14, 1, 0], "{j}");
    let sources: Vec<&str> = j["top_sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["source"].as_str())
        .collect();
    assert_eq!(sources, ["167.71.13.196"], "{j}");
    assert_eq!(j["top_sources"][0]["requests"], 14, "{j}");
}

/// Envoy's JSON access log as Kubernetes stores it (CRI): the wrapper is stripped and every
/// inner line reaches the JSON parser, which reads it (its `method`, at least).
#[test]
#[ignore = "needs ../shared/corpus"]
fn corpus_envoy_json_behind_cri() {
    let corpus = corpus();
    let d = Dir::new();
    let log = corpus.join("peer-logs/crowdsec-hub/envoy-http-crawl-non_statics.log");
    let lines = fs::read_to_string(&log).unwrap().lines().count();
    for args in [&["-f", "cri:json"][..], &[]] {
        let path = log.to_str().unwrap();
        let r = d.run(&[&["scan", "--no-store", "-o", "json", path], args].concat());
        assert_eq!(r.code, 0, "{}", r.stderr);
        let j = r.json();
        assert_eq!(j["files"][0]["format"], "cri:json", "{j}");
        assert_eq!(j["parsed"].as_u64(), Some(lines as u64), "{j}");
    }
}

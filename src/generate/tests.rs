//! Tests of the generator through its output only: determinism, exact counts, strict
//! per-format line shapes, and that normal clients stay far from every rate rule while
//! attackers clearly exceed theirs; and that its attack labels name the built-in rules.

use std::collections::{HashMap, HashSet};

use regex::bytes::Regex;

use super::*;

const ALL: [Format; 6] = [
    Format::Combined,
    Format::Common,
    Format::VhostCombined,
    Format::Main,
    Format::Json,
    Format::Custom,
];

fn run(cfg: &GenConfig) -> (Vec<u8>, GroundTruth) {
    let mut out = Vec::new();
    let truth = generate(cfg, &mut out).unwrap();
    (out, truth)
}

fn cfg(format: Format, lines: u64, attacks: bool) -> GenConfig {
    GenConfig {
        lines,
        format,
        attacks,
        malformed_per_million: 5_000,
        ..GenConfig::default()
    }
}

fn lines(out: &[u8]) -> Vec<&[u8]> {
    assert_eq!(out.last(), Some(&b'\n'), "output must end with a newline");
    out[..out.len() - 1].split(|&b| b == b'\n').collect()
}

const ADDR: &str = r"(?P<addr>[0-9]{1,3}(?:\.[0-9]{1,3}){3}|::ffff:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7})";
const TIME: &str = r"\[(?P<time>[0-9]{2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4})\]";
const REQ: &str = r#""(?:-|(?P<method>[A-Z]+) (?P<path>[^ "]+) HTTP/[0-9]\.[0-9])""#;
const APACHE_Q: &str = r#""(?:[^"\\]|\\["\\])*""#;
const NGINX_Q: &str = r#""(?:[^"\\]|\\x[0-9A-F]{2})*""#;

/// A strict regex for a whole line of `f` (JSON lines are checked by [`json_ok`]).
fn strict(f: Format) -> Regex {
    let apache = format!(
        r"{ADDR} - (?:-|[a-z]+) {TIME} {REQ} (?P<status>[1-5][0-9]{{2}}) (?:-|[1-9][0-9]*)"
    );
    let nginx = format!(
        r"{ADDR} - (?:-|[a-z]+) {TIME} {REQ} (?P<status>[1-5][0-9]{{2}}) [0-9]+ {NGINX_Q} {NGINX_Q}"
    );
    let re = match f {
        Format::Combined => format!("^{apache} {APACHE_Q} {APACHE_Q}$"),
        Format::Common => format!("^{apache}$"),
        Format::VhostCombined => {
            format!("^[a-z.]+\\.[a-z]+:(?:80|443) {apache} {APACHE_Q} {APACHE_Q}$")
        }
        Format::Main => format!(r#"^{nginx} "(?:-|[0-9.]+, 10\.0\.[0-9]+\.[0-9]+)"$"#),
        Format::Custom => format!(r"^{nginx} rt=[0-9]+\.[0-9]{{3}} host=[a-z.]+\.[a-z]+$"),
        Format::Json => String::from("^$"),
    };
    Regex::new(&re).unwrap()
}

fn json_ok(line: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(line) else {
        return false;
    };
    let keys: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
    let mut want = vec![
        "time_iso8601",
        "remote_addr",
        "remote_user",
        "request",
        "status",
        "body_bytes_sent",
        "request_time",
        "http_referer",
        "http_user_agent",
        "http_x_forwarded_for",
        "host",
    ];
    want.sort();
    let mut got = keys.clone();
    got.sort();
    let req = Regex::new(r"^(?:|[A-Z]+ [^ ]+ HTTP/[0-9]\.[0-9])$").unwrap();
    let time =
        Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}$")
            .unwrap();
    got == want
        && m["status"]
            .as_u64()
            .is_some_and(|s| (100..600).contains(&s))
        && m["body_bytes_sent"].as_u64().is_some()
        && m["request_time"].as_f64().is_some()
        && m["request"]
            .as_str()
            .is_some_and(|r| req.is_match(r.as_bytes()))
        && m["time_iso8601"]
            .as_str()
            .is_some_and(|t| time.is_match(t.as_bytes()))
        && m["remote_addr"]
            .as_str()
            .is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok())
}

fn line_ok(f: Format, re: &Regex, line: &[u8]) -> bool {
    if f == Format::Json {
        json_ok(line)
    } else {
        re.is_match(line)
    }
}

#[test]
fn same_seed_same_bytes_in_every_format() {
    for f in ALL {
        let a = run(&cfg(f, 3_000, true));
        let b = run(&cfg(f, 3_000, true));
        assert!(a.0 == b.0, "{f:?}: output differs for the same seed");
        assert_eq!(a.1, b.1);
    }
}

#[test]
fn different_seed_different_bytes() {
    let a = run(&cfg(Format::Combined, 2_000, false)).0;
    let b = run(&GenConfig {
        seed: 2,
        ..cfg(Format::Combined, 2_000, false)
    })
    .0;
    assert_ne!(a, b);
}

#[test]
fn exact_line_count() {
    for (n, attacks) in [
        (0, false),
        (1, false),
        (7, false),
        (999, false),
        (20_001, true),
    ] {
        for f in [Format::Combined, Format::Json] {
            let (out, truth) = run(&cfg(f, n, attacks));
            assert_eq!(
                out.iter().filter(|&&b| b == b'\n').count() as u64,
                n,
                "{f:?} {n}"
            );
            assert_eq!(truth.lines, n);
        }
    }
}

#[test]
fn too_few_lines_for_the_attacks_is_an_error() {
    let err = generate(&cfg(Format::Combined, 100, true), &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn every_well_formed_line_matches_its_strict_format_and_malformed_count_is_exact() {
    for f in ALL {
        let c = cfg(f, 20_000, true);
        let (out, truth) = run(&c);
        assert_eq!(truth.malformed, 100, "5000 per million of 20000");
        let re = strict(f);
        let bad: Vec<_> = lines(&out)
            .into_iter()
            .filter(|l| !line_ok(f, &re, l))
            .collect();
        assert_eq!(bad.len() as u64, truth.malformed, "{f:?}: {:?}", {
            let shown: Vec<_> = bad
                .iter()
                .take(5)
                .map(|l| String::from_utf8_lossy(l))
                .collect();
            shown
        });
        // Each malformed kind shows up: TLS bytes, an empty line, invalid UTF-8.
        assert!(bad.iter().any(|l| l.is_empty()), "{f:?}: no empty line");
        assert!(
            bad.iter().any(|l| std::str::from_utf8(l).is_err()),
            "{f:?}: no binary"
        );
        let tls: &[u8] = if f == Format::Json {
            br"\u0016\u0003"
        } else {
            br"\x16\x03\x01"
        };
        assert!(
            bad.iter().any(|l| l.windows(tls.len()).any(|w| w == tls)),
            "{f:?}: no TLS line"
        );
    }
}

fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn escaped_quotes_follow_the_format() {
    let (out, _) = run(&cfg(Format::Combined, 20_000, false));
    assert!(has(&out, br#"\"ShopApp/4.2.1"#));
    let (out, _) = run(&cfg(Format::Main, 20_000, false));
    assert!(has(&out, br"\x22ShopApp/4.2.1"));
    assert!(has(&out, b", 10.0."), "no forwarded-for list");
    let (out, _) = run(&cfg(Format::Combined, 20_000, false));
    assert!(has(&out, b"::ffff:"), "no IPv4-mapped client");
    assert!(has(&out, b"\" 304 -"), "no 304 with -");
}

#[test]
fn zero_malformed_when_configured() {
    let c = GenConfig {
        malformed_per_million: 0,
        ..cfg(Format::Combined, 5_000, false)
    };
    let (out, truth) = run(&c);
    assert_eq!(truth.malformed, 0);
    let re = strict(Format::Combined);
    assert!(lines(&out).iter().all(|l| re.is_match(l)));
}

/// The generator labels its attackers with the names of the built-in rules, one per rule.
/// Checked here, not in `detect`: the generator sits above detection and knows its names,
/// detection knows nothing of the generator.
#[test]
fn attackers_carry_the_names_of_the_builtin_rules() {
    let set = crate::detect::builtin_rules();
    let names: Vec<&str> = set.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, RULES);
}

#[test]
fn ground_truth_lists_every_behaviour_and_each_source_is_in_the_log() {
    let (out, truth) = run(&cfg(Format::Combined, 20_000, true));
    let rules: HashSet<&str> = truth.attackers.iter().map(|a| a.rule).collect();
    for r in RULES {
        assert!(rules.contains(r), "missing {r}");
    }
    let text = String::from_utf8_lossy(&out);
    for a in &truth.attackers {
        let needle = a
            .source
            .strip_suffix("::/64")
            .map_or(format!("{} ", a.source), |p| format!("{p}:"));
        assert!(text.contains(&needle), "{} not in the log", a.source);
    }
    assert!(truth.attackers.iter().any(|a| a.source.ends_with("/64")));
    assert!(
        truth
            .attackers
            .iter()
            .any(|a| a.source.contains(':') && !a.source.contains('/'))
    );
}

struct Hit {
    t: i64,
    method: String,
    path: String,
    status: u16,
}

fn unix_of(clf: &str) -> i64 {
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == &clf[3..6])
    .unwrap() as u32
        + 1;
    let n = |r: std::ops::Range<usize>| clf[r].parse::<i64>().unwrap();
    let local = days_from_civil(n(7..11), month, n(0..2) as u32) * 86_400
        + n(12..14) * 3600
        + n(15..17) * 60
        + n(18..20);
    let off = (n(22..24) * 60 + n(24..26)) * if &clf[21..22] == "-" { -1 } else { 1 };
    local - off * 60
}

/// Requests per source (addresses, with the rotating /64 attacker's grouped).
fn by_source(out: &[u8]) -> HashMap<String, Vec<Hit>> {
    let re = strict(Format::Combined);
    let mut m: HashMap<String, Vec<Hit>> = HashMap::new();
    for l in lines(out) {
        let Some(c) = re.captures(l) else { continue };
        let s = |n: &str| {
            c.name(n).map_or(String::new(), |x| {
                String::from_utf8_lossy(x.as_bytes()).into_owned()
            })
        };
        let mut addr = s("addr");
        if addr.starts_with("2001:db8:1:2:") {
            addr = "2001:db8:1:2::/64".into();
        }
        m.entry(addr).or_default().push(Hit {
            t: unix_of(&s("time")),
            method: s("method"),
            path: s("path"),
            status: s("status").parse().unwrap(),
        });
    }
    for v in m.values_mut() {
        v.sort_by_key(|h| h.t);
    }
    m
}

fn is_static(path: &str) -> bool {
    let p = path.split('?').next().unwrap_or(path);
    [
        ".css", ".js", ".png", ".jpg", ".svg", ".ico", ".woff2", ".webp",
    ]
    .iter()
    .any(|e| p.ends_with(e))
}

/// Most hits with `keep` inside any window of `secs` seconds.
fn max_in_window(hits: &[Hit], secs: i64, keep: impl Fn(&Hit) -> bool) -> usize {
    let ts: Vec<i64> = hits.iter().filter(|h| keep(h)).map(|h| h.t).collect();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..ts.len() {
        while ts[hi] - ts[lo] >= secs {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Highest level of a leaky bucket that leaks one unit per `leak` seconds and gets one
/// unit per counted hit (per new path when `distinct`).
fn bucket_max(hits: &[Hit], leak: f64, distinct: bool, keep: impl Fn(&Hit) -> bool) -> f64 {
    let mut level = 0.0f64;
    let mut last = i64::MIN;
    let mut seen = HashSet::new();
    let mut best = 0.0f64;
    for h in hits.iter().filter(|h| keep(h)) {
        if distinct && !seen.insert(h.path.clone()) {
            continue;
        }
        if last != i64::MIN {
            level = (level - (h.t - last) as f64 / leak).max(0.0);
        }
        last = h.t;
        level += 1.0;
        best = best.max(level);
    }
    best
}

fn error_status(h: &Hit) -> bool {
    matches!(h.status, 400 | 403 | 404)
}

#[test]
fn normal_clients_stay_under_every_rate_rule() {
    // A short span forces the generator to widen it rather than crowd clients.
    for span in [3_600, 7 * 86_400] {
        let c = GenConfig {
            lines: 200_000,
            span_secs: span,
            ..cfg(Format::Combined, 0, true)
        };
        let (out, truth) = run(&c);
        let attackers: HashSet<&str> = truth.attackers.iter().map(|a| a.source.as_str()).collect();
        let sources = by_source(&out);
        let normal: Vec<_> = sources
            .iter()
            .filter(|(a, _)| !attackers.contains(a.as_str()))
            .collect();
        assert!(normal.len() > 5_000, "{} clients", normal.len());
        let top = normal.iter().map(|(_, v)| v.len()).max().unwrap();
        assert!(top * 20 < 200_000, "top client has {top} lines");
        for (addr, hits) in normal {
            let ns = |h: &Hit| !h.path.is_empty() && !is_static(&h.path);
            let e404 = max_in_window(hits, 100, |h| h.status == 404);
            let nonstatic = max_in_window(hits, 20, ns);
            let all = max_in_window(hits, 60, |_| true);
            assert!(
                e404 <= 5 && nonstatic <= 30 && all <= 200,
                "{addr}: {e404} {nonstatic} {all}"
            );
            let probing = bucket_max(hits, 10.0, true, |h| error_status(h) && ns(h));
            let crawl = bucket_max(hits, 0.5, true, |h| {
                ns(h) && (h.method == "GET" || h.method == "HEAD")
            });
            let flood = bucket_max(hits, 0.2, false, |_| true);
            let login = bucket_max(hits, 10.0, false, |h| {
                h.method == "POST"
                    && (h.path.contains("wp-login")
                        || h.path.contains("xmlrpc")
                        || matches!(h.status, 401 | 403))
            });
            assert!(
                probing <= 5.0 && crawl <= 10.0 && flood <= 40.0 && login == 0.0,
                "{addr}: {probing} {crawl} {flood} {login}"
            );
            assert!(
                hits.iter()
                    .all(|h| h.method != "CONNECT" && !h.path.starts_with("http"))
            );
        }
    }
}

#[test]
fn rate_attackers_clearly_exceed_their_thresholds() {
    let (out, truth) = run(&cfg(Format::Combined, 20_000, true));
    let sources = by_source(&out);
    for a in &truth.attackers {
        let hits = &sources[&a.source];
        let ns = |h: &Hit| !is_static(&h.path);
        let level = match a.rule {
            "http-probing" => bucket_max(hits, 10.0, true, |h| error_status(h) && ns(h)) / 10.0,
            "http-crawl" => bucket_max(hits, 0.5, true, ns) / 40.0,
            "http-flood" => bucket_max(hits, 0.2, false, |_| true) / 300.0,
            "login-bruteforce" => bucket_max(hits, 10.0, false, |h| h.method == "POST") / 5.0,
            "login-bruteforce-slow" => {
                // Slow: never near the fast rule's bucket, well over the slow one's.
                let fast = bucket_max(hits, 10.0, false, |h| h.method == "POST");
                assert!(fast <= 3.0, "{}: {fast}", a.source);
                bucket_max(hits, 300.0, false, |h| h.status == 401) / 20.0
            }
            "sqli-probing" => bucket_max(hits, 1.0, false, |_| true) / 10.0,
            "xss-probing" => bucket_max(hits, 1.0, false, |_| true) / 5.0,
            "cache-bypass-flood" => bucket_max(hits, 1.0, true, |_| true) / 30.0,
            _ => {
                assert!(
                    (3..=8).contains(&hits.len()),
                    "{}: {} hits",
                    a.source,
                    hits.len()
                );
                // Stays under the rate rules it is not labelled with.
                assert!(bucket_max(hits, 10.0, true, |h| error_status(h) && ns(h)) <= 10.0);
                continue;
            }
        };
        assert!(level > 1.2, "{} {}: {level}", a.rule, a.source);
    }
}

#[test]
fn parses_starts_and_format_names() {
    assert_eq!(parse_start("2026-11-15T00:00:00Z"), Ok(DEFAULT_START));
    assert_eq!(parse_start("2026-11-15"), Ok(DEFAULT_START));
    assert_eq!(parse_start("1794700801"), Ok(DEFAULT_START + 1));
    assert!(parse_start("2026-13-01").is_err());
    assert!(parse_start("2026-11-15T00:00:00+01:00").is_err());
    for (name, f) in Format::NAMES.iter().zip(ALL) {
        assert_eq!(name.parse::<Format>(), Ok(f));
    }
    assert!("nope".parse::<Format>().is_err());
}

#[test]
fn slow_exploiters_send_a_payload_every_half_second_to_forty_seconds() {
    let c = GenConfig {
        slow_exploiters: 10,
        span_secs: 86_400,
        ..cfg(Format::Combined, 20_000, false)
    };
    let (out, truth) = run(&c);
    assert_eq!(truth.attackers.len(), 10);
    let sources = by_source(&out);
    for a in &truth.attackers {
        assert_eq!(a.rule, "exploit-slow");
        let hits = &sources[&a.source];
        // Two to six minutes at one payload per 40 s at most: four payloads or more.
        assert!(hits.len() >= 4, "{}: {} hits", a.source, hits.len());
        let span = hits[hits.len() - 1].t - hits[0].t;
        assert!((80..=360).contains(&span), "{}: {span} s", a.source);
        assert!(
            hits.windows(2).all(|w| w[1].t - w[0].t <= 40),
            "{}: a pause over 40 s",
            a.source
        );
    }
    // The decoys are normal visitors: in the log, not in the truth.
    let decoys: Vec<_> = sources
        .keys()
        .filter(|s| s.starts_with("192.0.2."))
        .collect();
    assert_eq!(decoys.len(), 10, "{decoys:?}");
    let plain = cfg(Format::Combined, 20_000, false);
    let err = generate(
        &GenConfig {
            slow_exploiters: 31,
            ..plain
        },
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

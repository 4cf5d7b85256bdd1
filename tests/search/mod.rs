//! `logward search` end to end: exact matches against a slow reference on generated logs
//! (plain, gzip, JSON lines, IPv4, IPv6, IPv4-mapped, X-Forwarded-For lists, unparsed
//! lines), near misses, output forms, time windows, the audit entry and exit codes; a
//! multi-site rotation set (`sites`) and evidence packages (`evidence`).

mod evidence;
mod sites;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;
use regex::Regex;

use crate::util::{Dir, combined};

/// Addresses the generated logs use: targets of the searches below and their near misses.
const POOL: &[&str] = &[
    "1.2.3.4",
    "11.2.3.45",
    "1.2.3.40",
    "1.2.3.5",
    "1.2.3.3",
    "21.2.3.4",
    "10.0.255.255",
    "10.1.0.0",
    "10.0.0.0",
    "10.0.7.9",
    "198.51.100.23",
    "2001:db8:1::5",
    "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
    "2001:db8:2::",
    "2001:db8:0:ffff::1",
    "2001:DB8:1:0:0:0:0:7",
    "::ffff:1.2.3.4",
    "::ffff:10.0.3.3",
    "::FFFF:102:304",
    "::1.2.3.4",
];

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn addr(&mut self) -> &'static str {
        POOL[self.below(POOL.len())]
    }
}

/// How a client address is written in a text log: bare, `[v6]:port` or `v4:port`.
fn client_text(rng: &mut Rng, a: &str) -> String {
    match (a.contains(':'), rng.below(4)) {
        (true, 0) => format!("[{a}]:443"),
        (false, 0) => format!("{a}:8080"),
        _ => a.to_string(),
    }
}

fn xff(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => "-".to_string(),
        1 => rng.addr().to_string(),
        2 => format!("{}, unknown, {}", rng.addr(), rng.addr()),
        _ => format!("{},{}", rng.addr(), rng.addr()),
    }
}

fn clf_time(i: usize) -> String {
    // One line a minute from 2026-11-22T00:00:00Z.
    format!("22/Nov/2026:{:02}:{:02}:00 +0000", i / 60 % 24, i % 60)
}

/// nginx `main` lines (combined plus X-Forwarded-For), with some unparsed lines that still
/// hold addresses, and a host name as the client now and then.
fn main_log(seed: u64, n: usize) -> String {
    let mut rng = Rng(seed);
    let mut s = String::new();
    for i in 0..n {
        match rng.below(20) {
            0 => s.push_str(&format!(
                "garbled {} near {}\n",
                rng.addr(),
                rng.addr().replace("1.2.3.4", "11.2.3.45")
            )),
            1 => s.push_str(&format!(
                "example.com - - [{}] \"GET /h HTTP/1.1\" 200 1 \"-\" \"ua\" \"{}\"\n",
                clf_time(i),
                xff(&mut rng)
            )),
            _ => {
                let a = rng.addr();
                let client = client_text(&mut rng, a);
                let line = combined(
                    &client,
                    &clf_time(i),
                    &format!("GET /p/{i} HTTP/1.1"),
                    200,
                    "Mozilla/5.0",
                );
                s.push_str(line.trim_end());
                s.push_str(&format!(" \"{}\"\n", xff(&mut rng)));
            }
        }
    }
    s
}

/// JSON lines with a client, an X-Real-Ip and an X-Forwarded-For field.
fn json_log(seed: u64, n: usize) -> String {
    let mut rng = Rng(seed);
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{{\"time_iso8601\":\"2026-11-22T{:02}:{:02}:00+00:00\",\"remote_addr\":\"{}\",\"http_x_real_ip\":\"{}\",\"http_x_forwarded_for\":\"{}\",\"request\":\"GET /j/{i} HTTP/1.1\",\"status\":\"200\",\"body_bytes_sent\":\"9\",\"http_user_agent\":\"curl\"}}\n",
            i / 60 % 24,
            i % 60,
            rng.addr(),
            rng.addr(),
            xff(&mut rng),
        ));
    }
    s
}

/// The reference: what a line's address fields hold, read with a regex and the standard
/// library's address parser. `None` for a line of neither shape.
fn reference_addrs(line: &str) -> Option<Vec<IpAddr>> {
    static TEXT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^(\S+) - - \[[^\]]+\] "[^"]*" \d+ \d+ "[^"]*" "[^"]*" "([^"]*)"$"#).unwrap()
    });
    static JSON: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#""remote_addr":"([^"]*)","http_x_real_ip":"([^"]*)","http_x_forwarded_for":"([^"]*)""#,
        )
        .unwrap()
    });
    let (text, json) = (&*TEXT, &*JSON);
    let fields: Vec<String> = if let Some(c) = text.captures(line) {
        vec![c[1].to_string(), c[2].to_string()]
    } else if let Some(c) = json.captures(line) {
        vec![c[1].to_string(), c[2].to_string(), c[3].to_string()]
    } else {
        return None;
    };
    let mut out = Vec::new();
    for f in fields {
        for part in f.split([',', ' ']).filter(|p| !p.is_empty()) {
            let host = if let Some(rest) = part.strip_prefix('[') {
                rest.split(']').next().unwrap()
            } else if part.matches(':').count() == 1 {
                part.split(':').next().unwrap()
            } else {
                part
            };
            if let Ok(a) = host.parse::<IpAddr>() {
                out.push(a);
            }
        }
    }
    Some(out)
}

/// Address tokens of an unparsed line, by the reference's own rule: whitespace-separated
/// words that parse as addresses (the generated garbage lines are written that way).
fn reference_tokens(line: &str) -> Vec<IpAddr> {
    line.split(' ').filter_map(|w| w.parse().ok()).collect()
}

fn reference_match(nets: &[IpNet], addrs: &[IpAddr]) -> bool {
    let canon = |a: IpAddr| a.to_canonical();
    addrs.iter().any(|a| {
        nets.iter().any(|n| {
            n.contains(&canon(*a))
                || match n {
                    // A network given in mapped form matches the IPv4 addresses it maps.
                    IpNet::V6(v6) => match canon(IpAddr::V6(v6.network())) {
                        IpAddr::V4(base) if v6.prefix_len() >= 96 => {
                            IpNet::new(IpAddr::V4(base), v6.prefix_len() - 96)
                                .unwrap()
                                .contains(&canon(*a))
                        }
                        _ => false,
                    },
                    IpNet::V4(_) => false,
                }
        })
    })
}

/// (file name, line number) of every line the reference finds.
fn reference(files: &[(&str, &str)], sources: &[&str]) -> BTreeSet<(String, u64)> {
    let nets: Vec<IpNet> = sources
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .unwrap_or_else(|_| IpNet::from(s.parse::<IpAddr>().unwrap()))
        })
        .collect();
    let mut found = BTreeSet::new();
    for (name, text) in files {
        for (i, line) in text.lines().enumerate() {
            let addrs = reference_addrs(line).unwrap_or_else(|| reference_tokens(line));
            if reference_match(&nets, &addrs) {
                found.insert((name.to_string(), i as u64 + 1));
            }
        }
    }
    found
}

fn found_lines(stdout: &str) -> BTreeSet<(String, u64)> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
            let file = v["file"].as_str().unwrap();
            let name = file.rsplit('/').next().unwrap().to_string();
            (name, v["line"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn search_finds_exactly_what_the_reference_finds() {
    let d = Dir::new();
    let plain = main_log(7, 3000);
    let rotated = main_log(8, 1500);
    let json = json_log(9, 1500);
    d.write("logs/access.log", plain.as_bytes());
    d.write_gz("logs/access.log.1.gz", rotated.as_bytes());
    d.write("logs/api.access.log", json.as_bytes());
    let files = [
        ("access.log", plain.as_str()),
        ("access.log.1.gz", rotated.as_str()),
        ("api.access.log", json.as_str()),
    ];
    let searches: &[&[&str]] = &[
        &["1.2.3.4"],
        &["::ffff:1.2.3.4"],
        &["10.0.0.0/16"],
        &["2001:db8:1::/48"],
        &["2001:db8:1::7"],
        &["::ffff:10.0.0.0/112", "198.51.100.23"],
        &["1.2.3.4", "2001:db8:2::", "10.1.0.0/32", "21.2.3.0/24"],
        &["192.0.2.1"],
    ];
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for sources in searches {
        let want = reference(&files, sources);
        let mut runs = Vec::new();
        for threads in ["1", "2"] {
            let mut args = vec![
                "search",
                "-o",
                "json",
                "-j",
                threads,
                "--chunk-size",
                "4096",
            ];
            for s in *sources {
                args.extend(["--source", s]);
            }
            args.push("logs");
            let r = d.run(&args);
            assert_eq!(
                r.code,
                if want.is_empty() { 1 } else { 0 },
                "{sources:?}: {}",
                r.stderr
            );
            assert_eq!(
                found_lines(&r.stdout),
                want,
                "{sources:?} with {threads} threads"
            );
            runs.push(r.stdout);
        }
        assert_eq!(
            runs[0], runs[1],
            "output does not depend on the thread count"
        );
        for (name, _) in &files {
            if want.iter().any(|(f, _)| f == name) {
                seen.insert(*name);
            }
        }
    }
    // The comparison is not vacuous: every file had matches, unparsed lines among them.
    assert_eq!(seen.len(), files.len(), "{seen:?}");
    let garbled = plain
        .lines()
        .position(|l| l.starts_with("garbled 1.2.3.4 "))
        .unwrap();
    assert!(reference(&files, &["1.2.3.4"]).contains(&("access.log".into(), garbled as u64 + 1)));
}

#[test]
fn near_misses_never_match() {
    let d = Dir::new();
    let mut log = String::new();
    for ip in ["11.2.3.45", "1.2.3.40", "21.2.3.4", "1.2.3.44", "::1.2.3.4"] {
        log.push_str(&combined(
            ip,
            &clf_time(0),
            "GET /1.2.3.4 HTTP/1.1",
            200,
            "1.2.3.4",
        ));
    }
    log.push_str(&combined(
        "10.0.255.255",
        &clf_time(1),
        "GET / HTTP/1.1",
        200,
        "x",
    ));
    log.push_str(&combined(
        "10.2.0.0",
        &clf_time(1),
        "GET / HTTP/1.1",
        200,
        "x",
    ));
    log.push_str(&combined(
        "2001:db8:1::1",
        &clf_time(1),
        "GET / HTTP/1.1",
        200,
        "x",
    ));
    log.push_str("oops 11.2.3.45 v1.2.3.4 1.2.3.4.5 10.0.255.255x\n");
    d.write("access.log", log.as_bytes());
    for source in ["1.2.3.4", "10.1.0.0/16", "2001:db8:1:1::/64"] {
        let r = d.run(&["search", "--source", source, "access.log"]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (1, ""),
            "{source}: {}",
            r.stderr
        );
    }
    // Just inside the edges.
    let r = d.run(&[
        "search",
        "-s",
        "10.0.0.0/16",
        "-s",
        "2001:db8:1::/64",
        "access.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert!(
        r.stdout.starts_with("access.log:6:10.0.255.255 "),
        "{}",
        r.stdout
    );
}

#[test]
fn lines_are_printed_raw_with_file_and_line_oldest_file_first() {
    let d = Dir::new();
    let a = combined(
        "1.2.3.4",
        &clf_time(0),
        "GET /a HTTP/1.1",
        200,
        "ua\u{1b}]0;x\u{7}",
    );
    let b = combined("5.6.7.8", &clf_time(1), "GET /b HTTP/1.1", 200, "ua");
    let c = "not a log line, from 1.2.3.4\n";
    d.write("logs/access.log", format!("{b}{a}{c}").as_bytes());
    d.write_gz("logs/access.log.1.gz", format!("{a}{b}").as_bytes());
    let r = d.run(&["search", "-s", "1.2.3.4", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Not a terminal: the log's bytes unchanged.
    let want = format!("logs/access.log.1.gz:1:{a}logs/access.log:2:{a}logs/access.log:3:{c}");
    assert_eq!(r.stdout, want);
    let r = d.run(&[
        "search",
        "-s",
        "1.2.3.4",
        "--no-filename",
        "logs/access.log",
    ]);
    assert_eq!(r.stdout, format!("{a}{c}"));
}

#[test]
fn count_prints_per_file_counts_and_a_total() {
    let d = Dir::new();
    let hit = combined("2001:db8::9", &clf_time(0), "GET / HTTP/1.1", 200, "x");
    let miss = combined("2001:db8::a", &clf_time(0), "GET / HTTP/1.1", 200, "x");
    d.write("a/access.log", format!("{hit}{miss}{hit}").as_bytes());
    d.write_gz("a/access.log.1.gz", miss.as_bytes());
    let r = d.run(&["search", "-c", "-s", "2001:db8::9", "a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "a/access.log.1.gz:0\na/access.log:2\ntotal:2\n");
    let r = d.run(&["search", "-c", "-o", "json", "-s", "2001:db8::9", "a"]);
    let j = r.json();
    assert_eq!(j["total"], 2);
    assert_eq!(j["files"][0]["count"], 0);
}

#[test]
fn json_records_carry_the_fields() {
    let d = Dir::new();
    let line = combined(
        "::ffff:1.2.3.4",
        "22/Nov/2026:10:00:00 +0100",
        "POST /x?y=1 HTTP/1.1",
        403,
        "curl/8",
    );
    d.write("access.log", line.as_bytes());
    let r = d.run(&["search", "-s", "1.2.3.4", "-o", "json", "access.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["source"], "1.2.3.4");
    assert_eq!(v["time"], "2026-11-22T09:00:00Z");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["target"], "/x?y=1");
    assert_eq!(v["status"], 403);
    assert_eq!(v["bytes"], 512);
    assert_eq!(v["user_agent"], "curl/8");
    assert_eq!(v["file"], "access.log");
    assert_eq!(v["line"], 1);
}

#[test]
fn since_and_until_bound_the_time_and_keep_lines_without_one() {
    let d = Dir::new();
    let mut log = String::new();
    for i in 0..10 {
        log.push_str(&combined(
            "1.2.3.4",
            &clf_time(i),
            &format!("GET /{i} HTTP/1.1"),
            200,
            "x",
        ));
    }
    log.push_str("broken line from 1.2.3.4\n");
    d.write("access.log", log.as_bytes());
    let r = d.run(&[
        "search",
        "-s",
        "1.2.3.4",
        "--since",
        "2026-11-22T00:03:00Z",
        "--until",
        "2026-11-22T01:06:00+01:00",
        "-c",
        "access.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Minutes 3..=6 and the line without a time.
    assert_eq!(r.stdout, "access.log:5\ntotal:5\n");
    // A duration means that long ago: every dated line is after "1000 weeks ago", so only
    // the line without a time is left.
    let r = d.run(&[
        "search",
        "-s",
        "1.2.3.4",
        "--until",
        "1000w",
        "-c",
        "access.log",
    ]);
    assert_eq!(r.stdout, "access.log:1\ntotal:1\n", "{}", r.stderr);
    let r = d.run(&[
        "search",
        "-s",
        "1.2.3.4",
        "--since",
        "yesterday",
        "access.log",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--since"), "{}", r.stderr);
}

#[test]
fn every_search_is_audited() {
    let d = Dir::new();
    let line = combined("203.0.113.7", &clf_time(0), "GET / HTTP/1.1", 200, "x");
    d.write("access.log", format!("{line}{line}").as_bytes());
    let r = d.run(&[
        "search",
        "-s",
        "203.0.113.0/24",
        "-s",
        "2001:db8::1",
        "access.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r2 = d.run(&[
        "search",
        "--store",
        d.join("other/logward.db").to_str().unwrap(),
        "-s",
        "198.51.100.1",
        "access.log",
    ]);
    assert_eq!(r2.code, 1, "{}", r2.stderr);
    let text = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["command"], "search");
    // Keyed hashes, never the sources in clear; `audit verify` finds them.
    let sources: Vec<&str> = e["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 2);
    assert!(
        sources.iter().all(|s| s.starts_with("hmac-sha256:")),
        "{sources:?}"
    );
    let r = d.run(&["audit", "verify", "--source", "203.0.113.0/24"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(e["files"], serde_json::json!(["access.log"]));
    assert_eq!(e["lines"], 2);
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    let other = std::fs::read_to_string(d.join("other/audit.log")).unwrap();
    assert!(other.contains("\"lines\":0"), "{other}");
}

#[test]
fn exit_codes_found_nothing_and_errors() {
    let d = Dir::new();
    let line = combined("1.2.3.4", &clf_time(0), "GET / HTTP/1.1", 200, "x");
    d.write("access.log", line.as_bytes());
    assert_eq!(d.run(&["search", "-s", "1.2.3.4", "access.log"]).code, 0);
    assert_eq!(d.run(&["search", "-s", "1.2.3.5", "access.log"]).code, 1);
    // A missing file is an error even when another file matched, and the others are read.
    let r = d.run(&["search", "-s", "1.2.3.4", "missing.log", "access.log"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.log"), "{}", r.stderr);
    assert_eq!(r.stdout, format!("access.log:1:{line}"));
    // A broken gzip file: what was read before the break is searched.
    let mut gz = {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(line.repeat(200).as_bytes()).unwrap();
        enc.finish().unwrap()
    };
    gz.truncate(gz.len() - 20);
    d.write("broken.log.gz", &gz);
    let r = d.run(&["search", "-s", "1.2.3.4", "-c", "broken.log.gz"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for bad in [
        &["search", "-s", "1.2.3.4/33", "access.log"][..],
        &["search", "-s", "host.example", "access.log"],
    ] {
        let r = d.run(bad);
        assert_eq!(r.code, 2);
        assert!(r.stderr.contains("--source"), "{}", r.stderr);
    }
}

#[test]
fn a_file_of_no_known_format_is_searched_for_address_tokens() {
    let d = Dir::new();
    d.write(
        "app_access.log",
        b"2026-11-22 client=1.2.3.4 ok\n2026-11-22 client=11.2.3.45 ok\n",
    );
    let r = d.run(&["search", "-s", "1.2.3.4", "app_access.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "app_access.log:1:2026-11-22 client=1.2.3.4 ok\n");
    assert!(
        r.stderr.contains("searched for address tokens"),
        "{}",
        r.stderr
    );
}

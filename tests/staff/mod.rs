//! Security staff's workflow on a multi-site log: per-site attribution, lines counted once,
//! separate episodes, rescans that recount nothing, triage options, `--explain` with the
//! provenance of lines, and the NDJSON outputs.

use crate::util::{Dir, unix_now};

const SHOP: &str = "shop.example.net";
const BLOG: &str = "blog.example.org";
const WWW: &str = "www.example.com";

/// A vcombined line (Apache's vhost_combined: `host:port` first).
fn vline(site: &str, ip: &str, t: i64, method: &str, path: &str, status: u16) -> String {
    let time = clf(t);
    format!(
        "{site}:443 {ip} - - [{time}] \"{method} {path} HTTP/1.1\" {status} 512 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n"
    )
}

/// Unix seconds as the access log writes them, in UTC.
fn clf(t: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Ordinary visitors of the three sites from `t0` for `secs` seconds, one line every few
/// seconds, as `(time, line)`.
fn visitors(t0: i64, secs: i64) -> Vec<(i64, String)> {
    let sites = [SHOP, BLOG, WWW];
    let pages = ["/", "/about", "/products/42", "/blog/hello", "/contact"];
    (0..secs / 3)
        .map(|i| {
            let t = t0 + i * 3;
            let ip = format!("192.0.2.{}", 10 + i % 40);
            let site = sites[(i % 3) as usize];
            let page = pages[(i % 5) as usize];
            (t, vline(site, &ip, t, "GET", page, 200))
        })
        .collect()
}

/// Credential stuffing on the shop: `n` login POSTs from `ip`, one a second.
fn stuffing(ip: &str, t0: i64, n: i64) -> Vec<(i64, String)> {
    (0..n)
        .map(|i| {
            let t = t0 + i;
            (t, vline(SHOP, ip, t, "POST", "/wp-login.php", 200))
        })
        .collect()
}

/// A scanner probing blog and www for 24 missing files, two a second.
fn scanner(ip: &str, t0: i64) -> Vec<(i64, String)> {
    let probes = [
        "/.env",
        "/.git/config",
        "/backup.zip",
        "/db.sql",
        "/config.php.bak",
        "/.aws/credentials",
    ];
    (0..24)
        .map(|i| {
            let t = t0 + i / 2;
            let site = if i % 3 == 0 { BLOG } else { WWW };
            let path = format!("{}{}", probes[(i % 6) as usize], i / 6);
            (t, vline(site, ip, t, "GET", &path, 404))
        })
        .collect()
}

/// The lines in time order, as a server writes them.
fn log(mut parts: Vec<(i64, String)>) -> Vec<u8> {
    parts.sort_by_key(|(t, _)| *t);
    parts
        .into_iter()
        .map(|(_, l)| l)
        .collect::<String>()
        .into_bytes()
}

/// A day of the three sites, recent enough for active bans: the shop's stuffing, the
/// scanner, and visitors.
fn day(t0: i64) -> Vec<u8> {
    let mut parts = visitors(t0, 3600);
    parts.extend(stuffing("203.0.113.5", t0 + 600, 60));
    parts.extend(scanner("198.51.100.7", t0 + 1200));
    log(parts)
}

fn entry<'a>(all: &'a serde_json::Value, source: &str) -> &'a serde_json::Value {
    all.as_array()
        .expect("an array")
        .iter()
        .find(|e| e["source"] == source)
        .unwrap_or_else(|| panic!("{source} not in {all:#}"))
}

#[test]
fn flagged_entries_name_their_sites_files_and_lines_and_filter_by_site() {
    let d = Dir::new();
    let t0 = unix_now() - 7200;
    let path = d.write("access.log", &day(t0));
    let r = d.run(&["scan", "--format", "vcombined", "access.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let all = d.run(&["flagged", "-o", "json"]).json();
    let shop = entry(&all, "203.0.113.5/32");
    assert_eq!(shop["schema_version"], 1);
    assert_eq!(shop["vhost"], SHOP);
    assert_eq!(
        shop["sites"],
        serde_json::json!([{"site": SHOP, "events": 60}])
    );
    assert_eq!(shop["events"], 60, "each line once");
    assert_eq!(shop["rule_events"]["login-bruteforce"], 60);
    let abs = std::fs::canonicalize(&path).unwrap();
    assert_eq!(
        shop["files"],
        serde_json::json!([{"file": abs.to_str().unwrap(), "events": 60}])
    );
    // Each sample says where it is, and that line of the file is the sample.
    let text = std::fs::read_to_string(&path).unwrap();
    let samples = shop["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    for s in samples {
        let at = s["at"].as_str().expect("a place");
        let (file, line) = at.rsplit_once(':').unwrap();
        assert_eq!(file, abs.to_str().unwrap());
        let n: usize = line.parse().unwrap();
        assert_eq!(text.lines().nth(n - 1), Some(s["line"].as_str().unwrap()));
    }

    let scan = entry(&all, "198.51.100.7/32");
    let sites: Vec<(&str, u64)> = scan["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["site"].as_str().unwrap(), s["events"].as_u64().unwrap()))
        .collect();
    assert_eq!(sites, [(WWW, 16), (BLOG, 8)]);
    assert_eq!(scan["events"], 24);

    // "Who attacked the shop?" and the blog, case-insensitively; search carries no
    // address of the scanner for the shop.
    let on_shop = d.run(&["flagged", "--vhost", "SHOP.example.net", "-o", "plain"]);
    assert_eq!(on_shop.stdout, "203.0.113.5\n", "{}", on_shop.stderr);
    let on_blog = d.run(&["flagged", "--vhost", BLOG, "-o", "plain"]);
    assert_eq!(on_blog.stdout, "198.51.100.7\n");
    let table = d.run(&["flagged"]);
    assert!(table.stdout.contains("SITE"), "{}", table.stdout);
    assert!(table.stdout.contains(SHOP), "{}", table.stdout);
}

#[test]
fn a_line_that_two_groupings_flag_counts_once() {
    // A per-site copy of the login rule flags the same 60 lines as the built-in one: the
    // entry still has 60 events (it had 120, or 62 with a shorter burst).
    let d = Dir::new();
    let t0 = unix_now() - 7200;
    d.write("access.log", &day(t0));
    d.write(
        "rules.toml",
        b"[rule.shop-logins]\ncapacity = 5\nleak = \"10s\"\nmethods = [\"POST\"]\n\
          path_contains = [\"/wp-login.php\"]\nper_vhost = true\n",
    );
    let r = d.run(&[
        "scan",
        "--format",
        "vcombined",
        "--rules",
        "rules.toml",
        "-o",
        "json",
        "access.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let scanned = r.json();
    let flags: Vec<&serde_json::Value> = scanned["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["source"] == "203.0.113.5")
        .collect();
    assert_eq!(flags.len(), 1, "{scanned:#}");
    assert_eq!(flags[0]["events"], 60);
    assert_eq!(flags[0]["rule_events"]["shop-logins"], 60);
    assert_eq!(flags[0]["rule_events"]["login-bruteforce"], 60);
    let stored = d.run(&["flagged", "-o", "json", "203.0.113.5"]).json();
    assert_eq!(stored[0]["events"], 60);
    assert_eq!(stored[0]["sites"][0]["events"], 60);
}

#[test]
fn two_attacks_days_apart_are_two_episodes_and_explained() {
    let d = Dir::new();
    let dec4 = unix_now() - 3 * 86_400;
    let dec6 = unix_now() - 86_400 + 600;
    let mut parts = visitors(dec4, 600);
    parts.extend(stuffing("203.0.113.5", dec4 + 60, 20));
    parts.extend(visitors(dec6, 600));
    parts.extend(stuffing("203.0.113.5", dec6 + 60, 30));
    d.write("access.log", &log(parts));
    let r = d.run(&["scan", "--format", "vcombined", "access.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Flagged sources (1, 2 episodes)"),
        "{}",
        r.stdout
    );
    let e = &d.run(&["flagged", "-o", "json", "203.0.113.5"]).json()[0];
    assert_eq!(e["times_flagged"], 2, "{e:#}");
    assert_eq!(e["events"], 50);

    let x = d.run(&["flagged", "203.0.113.5", "--explain"]);
    assert_eq!(x.code, 0, "{}", x.stderr);
    assert!(x.stdout.contains("Episode 1:"), "{}", x.stdout);
    assert!(x.stdout.contains("Episode 2:"), "{}", x.stdout);
    assert!(
        x.stdout
            .contains("login-bruteforce: bucket of 5 leaking one per 10s; overflowed at"),
        "{}",
        x.stdout
    );
    // The lines that filled the bucket, with their place.
    let filled = x
        .stdout
        .lines()
        .filter(|l| l.contains("access.log:") && l.contains("POST /wp-login.php"))
        .count();
    assert!(filled >= 6, "{}", x.stdout);
    let json = d
        .run(&["flagged", "203.0.113.5", "--explain", "-o", "json"])
        .json();
    let episodes = json[0]["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 2);
    assert_eq!(episodes[0]["events"], 20);
    assert_eq!(episodes[1]["events"], 30);
    let why = &episodes[0]["explain"][0];
    assert_eq!(why["rule"], "login-bruteforce");
    assert_eq!(why["capacity"], 5);
    assert_eq!(why["leak_ms"], 10_000);
    assert_eq!(why["lines"].as_array().unwrap().len(), 5);
}

#[test]
fn a_rescan_recounts_nothing_and_keeps_every_ban() {
    let d = Dir::new();
    let t0 = unix_now() - 7200;
    d.write("access.log", &day(t0));
    let first = d.run(&["scan", "--format", "vcombined", "--ban", "2d", "access.log"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = d.run(&["flagged", "-o", "json"]).json();
    // An allow file and another --ban, as an analyst re-scanning for a false positive.
    d.write("allow.txt", b"198.51.100.7\n");
    let again = d.run(&[
        "scan",
        "--format",
        "vcombined",
        "--rescan",
        "--ban",
        "1m",
        "--allow-file",
        "allow.txt",
        "access.log",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let after = d.run(&["flagged", "-o", "json"]).json();
    for source in ["203.0.113.5/32", "198.51.100.7/32"] {
        let (b, a) = (entry(&before, source), entry(&after, source));
        for field in ["events", "times_flagged", "expires", "rule_events", "sites"] {
            assert_eq!(a[field], b[field], "{source} {field}");
        }
    }
    assert_eq!(entry(&after, "203.0.113.5/32")["events"], 60);
    assert!(
        entry(&after, "203.0.113.5/32")["remaining"]
            .as_i64()
            .unwrap()
            > 86_400
    );
}

#[test]
fn triage_sorts_limits_filters_and_summarizes() {
    let d = Dir::new();
    let t0 = unix_now() - 7200;
    d.write("access.log", &day(t0));
    assert_eq!(
        d.run(&["scan", "--format", "vcombined", "access.log"]).code,
        0
    );

    let top = d.run(&["flagged", "--sort", "events", "--limit", "1", "-o", "plain"]);
    assert_eq!(top.stdout, "203.0.113.5\n", "{}", top.stderr);
    let both = d.run(&[
        "flagged",
        "--rule",
        "login-bruteforce",
        "--rule",
        "http-probing",
        "-o",
        "plain",
    ]);
    assert_eq!(
        both.stdout, "198.51.100.7\n203.0.113.5\n",
        "{}",
        both.stderr
    );
    let unknown = d.run(&["flagged", "--rule", "no-such-rule"]);
    assert_eq!(unknown.code, 2);

    let summary = d.run(&["flagged", "--summary", "-o", "json"]).json();
    assert_eq!(summary["schema_version"], 1);
    assert_eq!(summary["entries"], 2);
    assert_eq!(summary["events"], 84);
    let by_site = summary["by_site"].as_array().unwrap();
    assert_eq!(by_site[0]["site"], SHOP);
    assert_eq!(by_site[0]["events"], 60);
    let by_rule = summary["by_rule"].as_array().unwrap();
    assert!(
        by_rule
            .iter()
            .any(|r| r["rule"] == "http-probing" && r["entries"] == 1),
        "{summary:#}"
    );
    let text = d.run(&["flagged", "--summary"]);
    assert!(
        text.stdout
            .starts_with("2 entries (2 banned now), 84 events"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("By site:"), "{}", text.stdout);
}

#[test]
fn ndjson_outputs_one_versioned_object_per_line() {
    let d = Dir::new();
    let t0 = unix_now() - 7200;
    d.write("access.log", &day(t0));
    let scan = d.run(&[
        "scan",
        "--format",
        "vcombined",
        "-o",
        "ndjson",
        "access.log",
    ]);
    assert_eq!(scan.code, 0, "{}", scan.stderr);
    let objects: Vec<serde_json::Value> = scan
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["flagged", "flagged", "summary"]);
    let shop = objects
        .iter()
        .find(|o| o["source"] == "203.0.113.5")
        .unwrap();
    assert_eq!(shop["schema_version"], 1);
    assert_eq!(shop["vhost"], SHOP);
    assert!(shop["expires"].is_string(), "{shop}");
    assert_eq!(shop["samples"].as_array().unwrap().len(), 3);

    let flagged = d.run(&["flagged", "-o", "ndjson"]);
    let lines: Vec<serde_json::Value> = flagged
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|o| o["schema_version"] == 1));
}

//! Security staff's workflow on a multi-site log: per-site attribution, lines counted once,
//! separate episodes, rescans that recount nothing, triage options, `--explain` with the
//! provenance of lines, and the NDJSON outputs.

use crate::util::{Dir, clf, unix_now};

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

/// Regression: the lines that explain an overflow were kept across the gap between two
/// episodes, so a small bucket's second overflow was explained by lines of the first
/// attack, days before, that had long leaked out of it.
#[test]
fn an_overflow_is_explained_only_by_lines_still_in_its_bucket() {
    let d = Dir::new();
    let dec4 = unix_now() - 3 * 86_400;
    let dec6 = unix_now() - 86_400 + 600;
    let mut parts = visitors(dec4, 600);
    parts.extend(stuffing("203.0.113.5", dec4 + 60, 20));
    parts.extend(visitors(dec6, 600));
    parts.extend(stuffing("203.0.113.5", dec6 + 60, 30));
    d.write("access.log", &log(parts));
    d.write(
        "rules.toml",
        b"[rule.two-logins]\ncapacity = 1\nleak = \"10s\"\nmethods = [\"POST\"]\n\
          path_contains = [\"/wp-login.php\"]\n",
    );
    let r = d.run(&[
        "scan",
        "--format",
        "vcombined",
        "--rules",
        "rules.toml",
        "access.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json = d
        .run(&["flagged", "203.0.113.5", "--explain", "-o", "json"])
        .json();
    let episodes = json[0]["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 2, "{json:#}");
    let line_numbers = |episode: &serde_json::Value| -> Vec<u64> {
        let why = episode["explain"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["rule"] == "two-logins")
            .unwrap_or_else(|| panic!("no two-logins in {episode:#}"));
        why["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let at = l["at"].as_str().unwrap();
                at.rsplit(':').next().unwrap().parse().unwrap()
            })
            .collect()
    };
    let (first, second) = (line_numbers(&episodes[0]), line_numbers(&episodes[1]));
    // A bucket of one overflows on the second line: two lines explain it, both its own.
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(second.len(), 2, "{second:?}");
    let first_end = *first.iter().max().unwrap();
    assert!(
        second.iter().all(|&n| n > first_end + 20),
        "episode 2 explained by lines of episode 1: {first:?} then {second:?}"
    );
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

/// The commands of the README's "For security staff" section, with the paths of this test.
fn staff_commands() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme.find("## For security staff").expect("the section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut commands = Vec::new();
    let mut in_code = false;
    for line in section[..end].lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code && line.starts_with("logward ") {
            let command = line.split(" #").next().unwrap_or(line).trim();
            commands.push(command.to_string());
        }
    }
    commands
}

#[test]
fn the_readme_walkthrough_for_security_staff_runs_as_written() {
    let commands = staff_commands();
    assert!(commands.len() >= 9, "{commands:?}");
    let d = Dir::new();
    // Last night on the shop, and the office NAT flooding the blog. Relative to the clock,
    // so the bans are active; the README's fixed dates still select (or not) without error.
    let night = unix_now() - 6 * 3600;
    let mut parts = visitors(night - 600, 3600);
    parts.extend(stuffing("203.0.113.5", night, 60));
    parts.extend((0..600).map(|i| {
        let t = night + 1200 + i / 30;
        (t, vline(BLOG, "198.51.100.7", t, "GET", "/", 200))
    }));
    d.write("logs/access.log", &log(parts));
    let r = d.run(&["scan", "--format", "vcombined", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let logs = d.join("logs");
    let evidence = d.join("evidence");
    for command in &commands {
        let (command, into) = match command.split_once(" > ") {
            Some((c, rest)) => (c, Some(rest.split(" && ").next().unwrap_or(rest).trim())),
            None => (command.as_str(), None),
        };
        let words: Vec<String> = command
            .split_whitespace()
            .skip(1)
            .map(|w| match w {
                "/var/log/apache2" => logs.to_str().unwrap().to_string(),
                "/srv/evidence/case-118" => evidence.to_str().unwrap().to_string(),
                other => other.trim_matches('"').to_string(),
            })
            .collect();
        // `--note "ACME office NAT, ticket 4711"`: one word again.
        let mut args: Vec<String> = Vec::new();
        let mut quoted: Option<String> = None;
        for (w, raw) in words.iter().zip(command.split_whitespace().skip(1)) {
            match (
                &mut quoted,
                raw.starts_with('"'),
                raw.ends_with('"') && raw.len() > 1,
            ) {
                (None, true, true) => args.push(w.clone()),
                (None, true, false) => quoted = Some(w.clone()),
                (Some(q), _, end) => {
                    q.push(' ');
                    q.push_str(w);
                    if end {
                        args.push(quoted.take().unwrap());
                    }
                }
                (None, false, _) => args.push(w.clone()),
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = d.run(&args);
        assert_eq!(
            r.code,
            0,
            "logward {}: {}{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        if let Some(file) = into {
            assert!(file.ends_with(".nft"), "{file}");
            assert!(r.stdout.contains("table inet logward"), "{}", r.stdout);
        }
    }
    // What the walk-through did: the office NAT allowed and out of the export, the shop's
    // attacker explained, the package written.
    let list = d.run(&["allow", "list"]);
    assert!(
        list.stdout.contains("ACME office NAT, ticket 4711"),
        "{}",
        list.stdout
    );
    let nft = d.run(&["flagged", "-o", "nftables"]);
    assert!(!nft.stdout.contains("198.51.100.7"), "{}", nft.stdout);
    assert!(nft.stdout.contains("203.0.113.5"), "{}", nft.stdout);
    assert!(evidence.join("manifest.json").exists());
    let lines = std::fs::read_to_string(evidence.join("evidence.log")).unwrap();
    assert_eq!(lines.lines().count(), 60, "{lines}");
}

#[test]
fn slow_credential_stuffing_is_flagged_by_the_slow_rule_only() {
    // 40 logins refused with 401 in 20 minutes, one every 30 s: under login-bruteforce's
    // leak of one per 10 s, over login-bruteforce-slow's 20 per 5 minutes.
    let d = Dir::new();
    let t0 = unix_now() - 7200;
    let mut parts = visitors(t0, 3600);
    parts.extend((0..40).map(|i| {
        let t = t0 + 300 + i * 30;
        (
            t,
            vline(SHOP, "203.0.113.66", t, "POST", "/api/v1/session", 401),
        )
    }));
    // A customer who mistypes a password five times in an hour is not flagged.
    parts.extend((0..5).map(|i| {
        let t = t0 + 100 + i * 600;
        (
            t,
            vline(SHOP, "192.0.2.200", t, "POST", "/wp-login.php", 200),
        )
    }));
    d.write("access.log", &log(parts));
    let r = d.run(&[
        "scan",
        "--no-store",
        "--format",
        "vcombined",
        "-o",
        "json",
        "access.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let flagged: Vec<(String, serde_json::Value)> = r.json()["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["source"].as_str().unwrap().to_string(),
                f["rules"].clone(),
            )
        })
        .collect();
    assert_eq!(
        flagged,
        [(
            "203.0.113.66".to_string(),
            serde_json::json!(["login-bruteforce-slow"])
        )]
    );
}

#[test]
fn sample_places_are_right_in_a_file_read_in_many_parts() {
    // A file split into ranges read by several threads: each sample's line number is still
    // the line's number in the file.
    let d = Dir::new();
    let t0 = unix_now() - 7200;
    let mut parts = visitors(t0, 3 * 3600);
    parts.extend(stuffing("203.0.113.5", t0 + 5000, 30));
    parts.extend(scanner("198.51.100.7", t0 + 9000));
    let path = d.write("access.log", &log(parts));
    let r = d.run(&[
        "scan",
        "--format",
        "vcombined",
        "--threads",
        "3",
        "--chunk-size",
        "20000",
        "-o",
        "json",
        "access.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.len() > 10 * 20_000, "several parts");
    let mut checked = 0;
    for f in r.json()["flagged"].as_array().unwrap() {
        for s in f["samples"].as_array().unwrap() {
            let at = s["at"].as_str().expect("a place");
            let (_, line) = at.rsplit_once(':').unwrap();
            let n: usize = line.parse().unwrap();
            assert_eq!(
                text.lines().nth(n - 1),
                Some(s["line"].as_str().unwrap()),
                "{at}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

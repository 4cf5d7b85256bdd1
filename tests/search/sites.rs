//! `search` over a generated rotation set of a multi-site server (Apache vhost_combined,
//! plain and gzip rotations): lines in time order, oldest rotation first; `--vhost`; the
//! JSON objects' `vhost`, `raw` and `schema_version`. The expected answers come from the
//! generated text, read here with a regex, never from logward's parser.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use logward::generate::{Format, GenConfig};
use regex::Regex;

use crate::util::{Dir, combined, generated};

/// The rotation set, oldest file first, as logrotate names it.
pub const SET: [&str; 5] = [
    "access.log.4.gz",
    "access.log.3.gz",
    "access.log.2.gz",
    "access.log.1",
    "access.log",
];

/// One file of the set: its name and its lines (without their newlines).
pub struct LogFile {
    pub name: &'static str,
    pub lines: Vec<String>,
}

/// Five days of generated vhost_combined traffic with attacks, cut into [`SET`] in order
/// and written under `logs/`: the oldest lines go to `access.log.4.gz`, the newest to
/// `access.log`.
pub fn rotation_set(d: &Dir, seed: u64) -> Vec<LogFile> {
    // A malformed line may hold a byte that is not UTF-8: it is written as U+FFFD, so the
    // files hold exactly the text the expectations are made from.
    let bytes = generated(&GenConfig {
        seed,
        lines: 6000,
        span_secs: 5 * 86_400,
        format: Format::VhostCombined,
        attacks: true,
        ..GenConfig::default()
    });
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let per_file = all.len().div_ceil(SET.len());
    let files: Vec<LogFile> = SET
        .iter()
        .zip(all.chunks(per_file))
        .map(|(name, lines)| LogFile {
            name,
            lines: lines.iter().map(|l| l.to_string()).collect(),
        })
        .collect();
    for f in &files {
        let mut data = f.lines.join("\n");
        data.push('\n');
        if f.name.ends_with(".gz") {
            d.write_gz(&format!("logs/{}", f.name), data.as_bytes());
        } else {
            d.write(&format!("logs/{}", f.name), data.as_bytes());
        }
    }
    files
}

/// (virtual host, client, time) of a vhost_combined line, read with a regex.
pub fn fields(line: &str) -> Option<(&str, IpAddr, i64)> {
    static LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"^([^\s:]+)(?::\d+)? (\S+) \S+ \S+ \[([^\]]+)\] ""#).unwrap()
    });
    let c = LINE.captures(line)?;
    let client = c.get(2)?.as_str().parse::<IpAddr>().ok()?.to_canonical();
    Some((c.get(1)?.as_str(), client, clf_time(c.get(3)?.as_str())?))
}

/// Unix seconds of a CLF time such as `15/Nov/2026:01:00:00 +0100`.
pub fn clf_time(t: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let num = |s: &str| s.parse::<i64>().ok();
    let day = num(t.get(0..2)?)?;
    let name = t.get(3..6)?;
    let month = MONTHS.iter().position(|m| *m == name)? as u32 + 1;
    let year = num(t.get(7..11)?)?;
    let (h, m, s) = (
        num(t.get(12..14)?)?,
        num(t.get(15..17)?)?,
        num(t.get(18..20)?)?,
    );
    let sign = if t.get(21..22)? == "-" { -1 } else { 1 };
    let offset = sign * (num(t.get(22..24)?)? * 3600 + num(t.get(24..26)?)? * 60);
    let days = logward::generate::days_from_civil(year, month, day as u32);
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

/// The client seen in the most files of the set (then the most often): one whose lines
/// span the rotations.
pub fn widespread_client(files: &[LogFile]) -> IpAddr {
    let mut seen: BTreeMap<IpAddr, (usize, usize)> = BTreeMap::new();
    for f in files {
        let mut here = std::collections::BTreeSet::new();
        for line in &f.lines {
            if let Some((_, client, _)) = fields(line) {
                seen.entry(client).or_default().1 += 1;
                here.insert(client);
            }
        }
        for c in here {
            seen.entry(c).or_default().0 += 1;
        }
    }
    seen.into_iter().max_by_key(|(_, v)| *v).unwrap().0
}

/// `path:line:line` for every line of the set that `wanted` accepts, in the order the
/// set was cut: oldest file first, file order within a file.
pub fn expected(files: &[LogFile], prefix: &str, wanted: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for f in files {
        for (i, line) in f.lines.iter().enumerate() {
            if wanted(line) {
                out.push_str(&format!("{prefix}{}:{}:{line}\n", f.name, i + 1));
            }
        }
    }
    out
}

#[test]
fn a_rotation_set_is_searched_oldest_file_first() {
    let d = Dir::new();
    let files = rotation_set(&d, 11);
    let client = widespread_client(&files);
    let want = expected(&files, "logs/", |l| {
        fields(l).is_some_and(|(_, c, _)| c == client)
    });
    // Not vacuous: the lines span plain and gzip rotations.
    for name in [
        "access.log.4.gz",
        "access.log.2.gz",
        "access.log.1",
        "access.log",
    ] {
        assert!(
            want.contains(&format!("logs/{name}:")),
            "{client} is not in {name}"
        );
    }
    for threads in ["1", "2"] {
        let r = d.run(&[
            "search",
            "-j",
            threads,
            "--chunk-size",
            "4096",
            "-s",
            &client.to_string(),
            "logs",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, want, "{threads} threads");
    }
    // The first line printed is older than the last.
    let time_of = |l: &str| fields(l.splitn(3, ':').nth(2).unwrap()).unwrap().2;
    let printed: Vec<&str> = want.lines().collect();
    assert!(time_of(printed[0]) < time_of(printed[printed.len() - 1]));
    // Counts come in the same order.
    let r = d.run(&["search", "-c", "-s", &client.to_string(), "logs"]);
    let names: Vec<&str> = r
        .stdout
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let set: Vec<String> = SET.iter().map(|n| format!("logs/{n}")).collect();
    assert_eq!(names[..5], set[..], "{}", r.stdout);
}

#[test]
fn vhost_keeps_the_lines_of_one_site_ignoring_case() {
    let d = Dir::new();
    let mut files = rotation_set(&d, 12);
    // Near misses and another spelling, in the live log.
    let tail = [
        "SHOP.EXAMPLE.NET:443 192.0.2.10 - - [20/Nov/2026:10:00:00 +0000] \"GET /case HTTP/1.1\" 200 5 \"-\" \"x\"",
        "shop.example.net.evil:443 192.0.2.10 - - [20/Nov/2026:10:00:01 +0000] \"GET /evil HTTP/1.1\" 200 5 \"-\" \"x\"",
        "www.shop.example.net:443 192.0.2.10 - - [20/Nov/2026:10:00:02 +0000] \"GET /www HTTP/1.1\" 200 5 \"-\" \"x\"",
        "shop.example.net 192.0.2.10 - - [20/Nov/2026:10:00:03 +0000] \"GET /bare HTTP/1.1\" 200 5 \"-\" \"x\"",
    ];
    let live = files.last_mut().unwrap();
    live.lines.extend(tail.iter().map(|l| l.to_string()));
    d.write(
        "logs/access.log",
        format!("{}\n", live.lines.join("\n")).as_bytes(),
    );
    // A site without a vhost field: its lines about the sources cannot be said to be
    // the site's, so they are left out.
    let other = combined(
        "192.0.2.10",
        "20/Nov/2026:10:00:00 +0000",
        "GET / HTTP/1.1",
        200,
        "x",
    );
    d.write("other/access.log", other.repeat(3).as_bytes());

    let is_shop =
        |l: &str| fields(l).is_some_and(|(h, _, _)| h.eq_ignore_ascii_case("shop.example.net"));
    let want = expected(&files, "logs/", is_shop);
    assert!(want.contains("/case ") && want.contains("/bare ") && !want.contains("/evil "));
    let every = [
        "search",
        "-s",
        "0.0.0.0/0",
        "-s",
        "::/0",
        "--vhost",
        "Shop.Example.NET",
    ];
    let r = d.run(&[&every[..], &["logs", "other"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, want);
    assert!(
        r.stderr
            .contains("other/access.log: 3 lines about the sources left out"),
        "{}",
        r.stderr
    );
    // Another site: none of these lines.
    let r = d.run(&[&every[..5], &["--vhost", "docs.example.com", "-c", "logs"]].concat());
    let docs: usize = files
        .iter()
        .flat_map(|f| &f.lines)
        .filter(|l| fields(l).is_some_and(|(h, _, _)| h == "docs.example.com"))
        .count();
    assert!(docs > 0);
    assert!(
        r.stdout.ends_with(&format!("total:{docs}\n")),
        "{}",
        r.stdout
    );
    // A site nobody serves: nothing, exit 1.
    let r = d.run(&[&every[..5], &["--vhost", "example.com", "logs"]].concat());
    assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{}", r.stderr);
}

#[test]
fn json_objects_carry_vhost_raw_line_and_schema_version() {
    let d = Dir::new();
    let files = rotation_set(&d, 13);
    let client = widespread_client(&files);
    let hostile = format!(
        "blog.example.org:443 {client} - - [20/Nov/2026:10:00:00 +0000] \"GET /x HTTP/1.1\" 200 5 \"-\" \"ua\u{1b}]0;pwn\u{7}\u{202e}\u{9b}2J \\\\ \\\"q\\\"\""
    );
    let unparsed = format!("garbage from {client} \u{1b}[2J");
    d.write(
        "site/access.log",
        format!("{hostile}\n{unparsed}\n").as_bytes(),
    );
    let r = d.run(&[
        "search",
        "-o",
        "json",
        "-s",
        &client.to_string(),
        "logs",
        "site",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) || b == b'\n'),
        "JSON output is printable ASCII only"
    );
    let objects: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want = expected(&files, "logs/", |l| {
        fields(l).is_some_and(|(_, c, _)| c == client)
    });
    assert_eq!(objects.len(), want.lines().count() + 2);
    for (v, line) in objects.iter().zip(want.lines()) {
        let (file, rest) = line.split_once(':').unwrap();
        let (number, raw) = rest.split_once(':').unwrap();
        assert_eq!(v["schema_version"], 1, "{v}");
        assert_eq!(v["file"], file);
        assert_eq!(v["line"], number.parse::<u64>().unwrap());
        assert_eq!(v["raw"], raw);
        assert_eq!(v["vhost"], fields(raw).unwrap().0, "{v}");
        assert_eq!(v["source"], client.to_string());
    }
    let n = objects.len();
    let (h, u) = (&objects[n - 2], &objects[n - 1]);
    assert_eq!(h["raw"], hostile.as_str(), "the raw line, byte for byte");
    assert_eq!(h["vhost"], "blog.example.org");
    assert_eq!(
        h["user_agent"],
        "ua\u{1b}]0;pwn\u{7}\u{202e}\u{9b}2J \\\\ \\\"q\\\""
    );
    assert_eq!(
        (u["raw"].as_str(), &u["vhost"], u["line"].as_u64()),
        (Some(unparsed.as_str()), &serde_json::Value::Null, Some(2))
    );
    assert_eq!(u["schema_version"], 1);
    // The counts object too.
    let r = d.run(&[
        "search",
        "-o",
        "json",
        "-c",
        "-s",
        &client.to_string(),
        "site",
    ]);
    assert_eq!(r.json()["schema_version"], 1);
}

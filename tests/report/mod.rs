//! `logward report` and `scan --report`: the page of the shipped samples opened in a real
//! headless browser (Debian's chromium) shows the numbers `scan -o json` gives, runs its
//! script under its own policy with no console error and no request, and leaves a
//! screenshot in target/ for a person to look at; a masked page holds none of the input's
//! addresses; hostile log text stays text.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::Dir;

const CHROMIUM: &str = "/usr/bin/chromium";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-logs")
}

/// The sample logs, as `regenerate.sh` passes them.
const SAMPLES: &[&str] = &[
    "access.log",
    "access.log.1",
    "access.log.2.gz",
    "vhosts_access.log",
    "access.json",
    "custom_access.log",
];

fn sample_paths() -> Vec<String> {
    SAMPLES
        .iter()
        .map(|n| samples().join(n).to_string_lossy().into_owned())
        .collect()
}

fn args<'a>(head: &[&'a str], paths: &'a [String]) -> Vec<&'a str> {
    let mut all = head.to_vec();
    all.extend(paths.iter().map(String::as_str));
    all
}

/// Runs chromium headless on `page` with `extra` arguments; returns (stdout, stderr).
fn chromium(page: &Path, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("{CHROMIUM} does not run ({e}): apt-get install chromium"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What chromium's log says went wrong in the page: console messages (errors thrown,
/// `console.*` calls) and policy refusals, which is how a blocked request shows.
fn page_problems(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Refused to")
                || l.contains("Content Security Policy")
                || l.contains("net::ERR")
        })
        .collect()
}

/// The text of the element with `id` in the dumped DOM.
fn by_id(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    dom[start..end].to_string()
}

fn num(text: &str) -> u64 {
    text.replace(',', "")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a number"))
}

/// The section with `id` in the dumped DOM, up to its end.
fn section<'d>(dom: &'d str, id: &str) -> &'d str {
    let at = dom
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section #{id} in the page"));
    let rest = &dom[at..];
    // Sections nest one level (a host's part and its tables): the end is where the
    // opened ones are closed.
    let mut depth = 0;
    let mut i = 0;
    while let Some(next) = rest[i..].find("section") {
        let j = i + next;
        if rest[..j].ends_with('<') {
            depth += 1;
        } else if rest[..j].ends_with("</") {
            depth -= 1;
            if depth == 0 {
                return &rest[..j + "section>".len()];
            }
        }
        i = j + 1;
    }
    rest
}

/// The sources of the flagged table, as the page shows them.
fn flagged_sources(dom: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r#"<td class="k src"[^>]*>([^<]*)</td>"#).unwrap();
    re.captures_iter(dom).map(|c| c[1].to_string()).collect()
}

#[test]
#[ignore = "needs chromium (.ci/run installs it)"]
fn the_sample_page_in_a_browser_shows_what_scan_json_says() {
    let d = Dir::new();
    let paths = sample_paths();
    let scan = d.run(&args(&["scan", "--no-store", "-o", "json"], &paths));
    assert_eq!(scan.code, 0, "{}", scan.stderr);
    let j = scan.json();
    let page = d.join("report.html");
    let r = d.run(&args(&["report", "-o", page.to_str().unwrap()], &paths));
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Nothing on the page names anything to fetch: the only URL is SVG's namespace.
    let html = std::fs::read_to_string(&page).unwrap();
    for word in [
        " src=", " href=", "url(", "@import", "srcset", "<link", "<iframe",
    ] {
        assert!(!html.contains(word), "the page holds {word:?}");
    }
    // (Log text may hold URLs, as inert text; no attribute does.)
    let urls = html.matches("=\"http").count() + html.matches("='http").count();
    assert_eq!(
        urls,
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );

    // The DOM after the page's script ran: its filter box exists only if the script ran,
    // which it does only if the policy's hash is right.
    let (dom, log) = chromium(&page, &["--dump-dom"]);
    assert!(dom.contains("class=\"filter\""), "the script did not run");
    let problems = page_problems(&log);
    assert!(problems.is_empty(), "the browser reported: {problems:#?}");
    for (id, key) in [
        ("n-lines", "lines"),
        ("n-parsed", "parsed"),
        ("n-malformed", "malformed"),
        ("n-empty", "empty"),
        ("n-sources", "distinct_sources"),
    ] {
        assert_eq!(
            num(&by_id(&dom, id)),
            j[key].as_u64().unwrap(),
            "{id} against {key}"
        );
    }
    assert_eq!(by_id(&dom, "t-first"), j["first_time"].as_str().unwrap());
    assert_eq!(by_id(&dom, "t-last"), j["last_time"].as_str().unwrap());
    let flagged = j["flagged"].as_array().unwrap();
    assert!(!flagged.is_empty());
    let want: BTreeSet<String> = flagged
        .iter()
        .map(|f| f["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(num(&by_id(&dom, "n-episodes")), flagged.len() as u64);
    assert_eq!(num(&by_id(&dom, "n-flagged")), want.len() as u64);
    assert_eq!(flagged_sources(&dom), want);
    let rows = dom.matches("<td class=\"k src\"").count();
    assert_eq!(rows, flagged.len(), "one row per episode");
    // The top source and every status code with its count.
    let top = &j["top_sources"][0];
    let row = format!(
        "{}</td><td class=\"n\" data-v=\"{}\">",
        top["source"].as_str().unwrap(),
        top["requests"]
    );
    assert!(dom.contains(&row), "top source {top} not shown");
    let status = dom.find("id=\"status\"").unwrap();
    let status = &dom[status..status + dom[status..].find("</section>").unwrap()];
    for (code, n) in j["status"].as_object().unwrap() {
        let row = format!("{code}</td><td class=\"n\" data-v=\"{n}\">");
        assert!(status.contains(&row), "status {code}: {n} not shown");
    }

    // Per virtual host: the flagged sources on it are those whose sites name it in the
    // json; each host's part repeats its row's requests and draws every one of them.
    let vhosts = section(&dom, "vhosts");
    let row_re = regex::Regex::new(
        r#"<tr><td class="k">([^<]*)</td><td class="n" data-v="(\d+)">[^<]*</td>(?:<td class="n" data-v="\d+">[^<]*</td>){6}<td class="n">(\d+)</td>"#,
    )
    .unwrap();
    let rows: Vec<(String, u64, usize)> = row_re
        .captures_iter(vhosts)
        .map(|c| (c[1].to_string(), num(&c[2]), c[3].parse().unwrap()))
        .collect();
    assert!(rows.len() >= 4, "{vhosts}");
    for (host, _, shown) in &rows {
        let on: BTreeSet<&str> = flagged
            .iter()
            .filter(|f| {
                f["sites"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["site"].as_str() == Some(host.as_str()))
            })
            .map(|f| f["source"].as_str().unwrap())
            .collect();
        assert_eq!(*shown, on.len(), "flagged sources on {host}");
    }
    assert!(rows[0].2 > 0, "no flagged source on the busiest host");
    let name = regex::Regex::new(r#"<h4 class="k">([^<]*)</h4>"#).unwrap();
    let shown = regex::Regex::new(r#"class="host-n" data-v="(\d+)""#).unwrap();
    let cells = regex::Regex::new(r#"<td class="n" data-v="(\d+)">"#).unwrap();
    for (i, (host, requests, _)) in rows.iter().enumerate() {
        let Some(at) = vhosts.find(&format!("id=\"host-{i}\"")) else {
            assert!(i > 0, "no part for the busiest host");
            break;
        };
        let part = &vhosts[at..at + vhosts[at..].find("</section></section>").unwrap()];
        assert_eq!(&name.captures(part).unwrap()[1], host);
        assert_eq!(num(&shown.captures(part).unwrap()[1]), *requests, "{host}");
        let table = &part[part.find("Table of the chart").unwrap()..];
        let table = &table[..table.find("</table>").unwrap()];
        let drawn: u64 = cells.captures_iter(table).map(|c| num(&c[1])).sum();
        assert_eq!(drawn, *requests, "{host}: requests over time");
    }

    // The picture, for a person.
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let (_, log) = chromium(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
            "--hide-scrollbars",
        ],
    );
    assert!(page_problems(&log).is_empty(), "{log}");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );

    // scan --report makes the same page in the same pass (no store: no bans).
    let again = d.join("scan.html");
    let s = d.run(&args(
        &[
            "scan",
            "--no-store",
            "-o",
            "json",
            "--report",
            again.to_str().unwrap(),
        ],
        &paths,
    ));
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&page).unwrap()
    );
}

/// The check above must be able to fail: a page that breaks its policy and throws is
/// reported by chromium's log, as the test reads it.
#[test]
#[ignore = "needs chromium (.ci/run installs it)"]
fn the_browser_log_shows_a_blocked_request_and_an_error() {
    let d = Dir::new();
    let page = d.write(
        "bad.html",
        b"<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
          content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>\
          <img src=\"http://127.0.0.1:9/x.png\"><script>throw new Error('boom')</script>\
          </body></html>",
    );
    let (_, log) = chromium(&page, &["--dump-dom"]);
    let problems = page_problems(&log);
    assert!(
        problems
            .iter()
            .any(|l| l.contains("Content Security Policy") && l.contains("127.0.0.1:9")),
        "no blocked request seen: {log}"
    );
    assert!(
        problems.iter().any(|l| l.contains("boom")),
        "no error seen: {log}"
    );
}

/// Every address-like token of the input files.
fn input_addresses(paths: &[String]) -> BTreeSet<IpAddr> {
    let re = regex::Regex::new(r"[0-9A-Fa-f:.]{7,}").unwrap();
    let mut all = BTreeSet::new();
    for p in paths {
        let bytes = std::fs::read(p).unwrap();
        let text = if p.ends_with(".gz") {
            use std::io::Read;
            let mut s = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        for m in re.find_iter(&text) {
            let t = m.as_str().trim_matches(|c| c == ':' || c == '.');
            if let Ok(a) = t.parse::<IpAddr>() {
                all.insert(a);
            }
        }
    }
    all
}

#[test]
fn a_masked_page_holds_none_of_the_inputs_addresses() {
    let d = Dir::new();
    let paths = sample_paths();
    let plain = d.join("plain.html");
    let masked = d.join("masked.html");
    let r = d.run(&args(&["report", "-o", plain.to_str().unwrap()], &paths));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = d.run(&args(
        &["report", "--mask", "-o", masked.to_str().unwrap()],
        &paths,
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plain = std::fs::read_to_string(&plain).unwrap();
    let masked = std::fs::read_to_string(&masked).unwrap();
    let addrs = input_addresses(&paths);
    assert!(addrs.len() > 100, "only {} addresses found", addrs.len());
    let truncate =
        |a: IpAddr| logward::anonymize::truncate(a, logward::anonymize::Prefixes::DEFAULT);
    let mut on_plain = 0;
    for a in addrs {
        // An address that truncation leaves as it is (x.y.z.0) is no more than its network.
        if truncate(a) == a {
            continue;
        }
        let text = a.to_string();
        // Not followed by another digit: 192.0.2.1 is not inside 192.0.2.10.
        let shown = |page: &str| {
            page.match_indices(&text).any(|(i, _)| {
                let next = page[i + text.len()..].chars().next();
                let prev = page[..i].chars().next_back();
                !next.is_some_and(|c| c.is_ascii_hexdigit())
                    && !prev.is_some_and(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
            })
        };
        on_plain += usize::from(shown(&plain));
        assert!(!shown(&masked), "{text} is on the masked page");
    }
    assert!(on_plain > 20, "only {on_plain} addresses on the plain page");
    assert!(masked.contains("id=\"masked\"") && plain.contains("id=\"personal-data\""));
    // The unmasked page is its owner's alone; the masked one may be shared.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("plain.html"), mode("masked.html")), (0o600, 0o644));
}

#[test]
fn hostile_log_text_stays_text_on_the_page() {
    let d = Dir::new();
    let mut log = String::new();
    for i in 0..8 {
        log.push_str(&format!(
            "203.0.113.5 - - [22/Nov/2026:10:00:0{i} +0000] \"GET /cgi-bin/../../../../etc/passwd</table><b>x HTTP/1.1\" 404 1 \"-\" \"<script>alert('x')</script> \\\"q\\\" 'a'\"\n"
        ));
    }
    d.write("access.log", log.as_bytes());
    let r = d.run(&["report", "--no-default-allow", "-o", "r.html", "access.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("r.html: 8 lines, 1 source flagged"),
        "{}",
        r.stdout
    );
    let page = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!page.contains("</table><b>"));
    assert!(
        page.contains("&lt;/table&gt;&lt;b&gt;x"),
        "the path is shown"
    );
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
        "the agent is shown"
    );
    assert!(page.contains("203.0.113.5"));
}

#[test]
fn a_report_needs_a_page_and_says_what_it_could_not_write() {
    let d = Dir::new();
    d.write("access.log", b"");
    let r = d.run(&["report", "access.log"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--output"), "{}", r.stderr);
    let r = d.run(&["report", "-o", "no/such/dir/r.html", "access.log"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot write the report"), "{}", r.stderr);
}

/// A `logward report` page shows the bans the store already holds for its flagged sources
/// (the ban column of `scan --report`), has no ban column while nothing is banned, and
/// records nothing: the page made before any scan leaves no store behind.
#[test]
fn a_report_shows_the_bans_the_store_holds() {
    let d = Dir::new();
    let log = d.write("access.log", &crate::util::recent_day(7, 0, 20_000, true));
    let log = log.to_str().unwrap();
    let page_of = |name: &str| {
        let path = d.join(name);
        let r = d.run(&["report", "-o", path.to_str().unwrap(), log]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        std::fs::read_to_string(&path).unwrap()
    };
    let before = page_of("before.html");
    assert!(
        before.contains("id=\"flagged-table\""),
        "no flagged sources"
    );
    assert!(!before.contains("<th>ban</th>"));
    assert!(!d.join("state/logward.db").exists(), "report wrote a store");

    let s = d.run(&["scan", "-o", "json", log]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    let json = s.json();
    // The page writes a ban's end as `until 2026-12-12 15:32:24`, the JSON as RFC 3339.
    let want: BTreeSet<String> = json["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["expires"].as_str())
        .map(|t| t.replace('T', " ").trim_end_matches('Z').to_string())
        .collect();
    assert!(!want.is_empty(), "the scan banned no one");

    let after = page_of("after.html");
    assert!(after.contains("<th>ban</th>"));
    let shown: BTreeSet<String> = after
        .split("\">until ")
        .skip(1)
        .filter_map(|rest| Some(rest.split_once('<')?.0.to_string()))
        .collect();
    assert_eq!(shown, want);
}

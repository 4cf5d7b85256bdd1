//! Tests of the watch loop's step without the binary: [`Watcher::poll`] over real log files
//! in a temporary directory, with a real SQLite store, the built-in rules, and the messages
//! collected instead of printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::*;
use crate::detect::CompiledRules;
use crate::geo::Geo;
use crate::store::Filter;

/// A time as an access log writes it: `07/Dec/2026:10:00:00 +0000`.
fn clf(t: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = crate::timefmt::civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[m as usize - 1],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `n` page views from different addresses of `net` (a /24 written as `198.51.100`).
fn visits(net: &str, n: usize) -> String {
    let t = clf(unix_now());
    (0..n)
        .map(|i| {
            format!(
                "{net}.{} - - [{t}] \"GET /page/{i} HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"\n",
                i % 250 + 1
            )
        })
        .collect()
}

/// Twenty requests for `/.env` from `ip` at `t`: the built-in rules flag it.
fn attack_at(ip: &str, t: i64) -> String {
    let t = clf(t);
    (0..20)
        .map(|i| format!("{ip} - - [{t}] \"GET /.env?{i} HTTP/1.1\" 404 0 \"-\" \"curl/8\"\n"))
        .collect()
}

/// [`attack_at`] now.
fn attack(ip: &str) -> String {
    attack_at(ip, unix_now())
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// A directory with a log and a store, and the watch's messages.
struct Fixture {
    dir: tempfile::TempDir,
    said: Arc<Mutex<Vec<String>>>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            said: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state").join("logward.db")
    }

    fn positions(&self) -> PathBuf {
        self.dir.path().join("state").join("positions.json")
    }

    /// A watcher of the log, from its start, with the built-in rules and the store.
    fn start(&self) -> Watcher {
        let rules = Arc::new(CompiledRules::new(&crate::detect::builtin_rules()).unwrap());
        let store = Store::open(&self.db()).unwrap();
        let geo = Geo::open(None, None).unwrap();
        let mut detection = Detection::new(rules, Vec::new(), true, geo, Some(store), false);
        detection.refresh_allowlist().unwrap();
        let settings = Settings {
            paths: vec![self.log().display().to_string()],
            format: FormatSpec::Auto,
            from_start: true,
            positions: self.positions(),
            stats_file: Some(self.dir.path().join("stats.json")),
            status_every: Duration::ZERO,
            actions: ActionSettings::default(),
            near_misses: false,
        };
        let said = Arc::clone(&self.said);
        let log: Log = Arc::new(move |m: &str| said.lock().unwrap().push(m.to_string()));
        Watcher::start(settings, detection, log).unwrap()
    }

    /// The messages that start with `prefix`.
    fn said(&self, prefix: &str) -> Vec<String> {
        let said = self.said.lock().unwrap();
        said.iter()
            .filter(|m| m.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// The sources in the store.
    fn flagged(&self) -> Vec<String> {
        let store = Store::open(&self.db()).unwrap();
        let entries = store.query(&Filter::default()).unwrap();
        entries.iter().map(|e| e.source.to_string()).collect()
    }
}

#[test]
fn appended_attack_is_flagged_stored_and_the_position_saved() {
    let f = Fixture::new();
    append(&f.log(), &visits("198.51.100", 5));
    let mut w = f.start();
    w.poll();
    assert_eq!(w.lines(), 5);
    assert!(f.flagged().is_empty());
    append(&f.log(), &attack("203.0.113.7"));
    let round = w.poll();
    assert!(round.bytes > 0 && round.caught_up());
    let done = w.finish();
    assert_eq!(
        done,
        Summary {
            lines: 25,
            malformed: 0,
            flagged: 1,
            repeats: 0
        }
    );
    assert_eq!(f.flagged(), ["203.0.113.7/32"]);
    let log = f.log();
    assert_eq!(
        f.said(&log.display().to_string()),
        [
            format!("{}: format combined", log.display()),
            format!("{}: following from byte 0", log.display()),
        ]
    );
    let flagged = f.said("flagged ");
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert!(
        flagged[0].starts_with("flagged 203.0.113.7 by "),
        "{flagged:?}"
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.positions()).unwrap()).unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    assert_eq!(saved["files"][0]["offset"], size, "{saved}");
    assert_eq!(saved["files"][0]["lines"], 25, "{saved}");
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.dir.path().join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["lines"], 25, "{stats}");
}

#[test]
fn a_source_overflowing_again_while_banned_is_a_repeat_not_a_new_flag() {
    let f = Fixture::new();
    // The second burst comes an hour (of log time) after the first, long after its
    // bucket drained, and within the four hours of its ban.
    let now = unix_now();
    append(&f.log(), &attack_at("203.0.113.8", now - 7200));
    let mut w = f.start();
    w.poll();
    append(&f.log(), &attack_at("203.0.113.8", now - 3600));
    w.poll();
    let done = w.finish();
    assert_eq!((done.flagged, done.lines), (1, 40));
    assert!(done.repeats >= 1, "{done:?}");
    let store = Store::open(&f.db()).unwrap();
    let entries = store.query(&Filter::default()).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].times_flagged, 1);
}

#[test]
fn a_restarted_watch_resumes_where_the_last_one_stopped() {
    let f = Fixture::new();
    append(&f.log(), &visits("198.51.100", 5));
    let mut w = f.start();
    w.poll();
    assert_eq!(w.finish().lines, 5);
    append(&f.log(), &visits("198.51.101", 3));
    // Files known from the positions resume there, even when told to read from the start.
    let mut w = f.start();
    w.poll();
    assert_eq!(w.finish().lines, 3);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.positions()).unwrap()).unwrap();
    assert_eq!(saved["files"][0]["lines"], 8, "{saved}");
}

#[test]
fn malformed_lines_are_counted_and_the_first_three_of_a_file_reported() {
    let f = Fixture::new();
    let junk: String = (0..5).map(|i| format!("not a log line {i}\n")).collect();
    append(&f.log(), &(visits("198.51.100", 10) + &junk));
    let mut w = f.start();
    w.poll();
    let done = w.finish();
    assert_eq!((done.lines, done.malformed), (15, 5));
    let reported = f.said(&format!("{}: malformed: ", f.log().display()));
    assert_eq!(reported.len(), 3, "{reported:?}");
}

#[test]
fn an_allow_add_in_the_store_lets_go_of_the_source() {
    let f = Fixture::new();
    append(&f.log(), &visits("198.51.100", 5));
    let mut w = f.start();
    w.poll();
    let mut other = Store::open(&f.db()).unwrap();
    let net: ipnet::IpNet = "203.0.113.9/32".parse().unwrap();
    other
        .allow_add(&[net], "a partner's monitor", "test", unix_now())
        .unwrap();
    w.check();
    let changed = f.said("the allowlist changed: ");
    assert_eq!(changed.len(), 1, "{changed:?}");
    append(&f.log(), &attack("203.0.113.9"));
    w.poll();
    let done = w.finish();
    assert_eq!((done.lines, done.flagged), (25, 0));
    assert!(f.flagged().is_empty());
}

#[test]
fn an_erasure_clears_the_buckets_and_takes_erased_sources_back() {
    let f = Fixture::new();
    append(&f.log(), &attack("203.0.113.10"));
    let mut w = f.start();
    w.poll();
    // Wait for the recorder to have stored the flag before erasing it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.flagged().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut other = Store::open(&f.db()).unwrap();
    let net: ipnet::IpNet = "203.0.113.10/32".parse().unwrap();
    other.erase(&[net], &mut |_| "x".to_string()).unwrap();
    w.check();
    let cleared = f.said("an erasure was recorded in the store: detection state cleared (");
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    w.finish();
    assert_eq!(
        f.said("an erasure was recorded in the store: 1 source removed"),
        ["an erasure was recorded in the store: 1 source removed from the actions' set"]
    );
    assert!(f.flagged().is_empty());
}

#[test]
fn metrics_follow_the_lines_the_flags_and_the_files() {
    let f = Fixture::new();
    append(&f.log(), &visits("198.51.100", 5));
    let mut w = f.start();
    w.poll();
    let watch = [("command", "watch")];
    let m = w.metrics();
    assert_eq!(m.get("logward_lines_total", &watch), Some(5.0));
    assert_eq!(m.get("logward_malformed_lines_total", &watch), Some(0.0));
    let size = std::fs::metadata(f.log()).unwrap().len() as f64;
    assert_eq!(m.get("logward_read_bytes_total", &watch), Some(size));
    assert_eq!(m.get("logward_sources_flagged_total", &watch), Some(0.0));
    assert_eq!(m.get("logward_watch_open_files", &watch), Some(1.0));
    assert_eq!(m.get("logward_watch_backlog_bytes", &watch), Some(0.0));
    assert_eq!(
        m.get("logward_watch_nft_batch_failures_total", &watch),
        Some(0.0)
    );
    let lag = m.get("logward_watch_lag_seconds", &watch).unwrap();
    assert!((0.0..60.0).contains(&lag), "{lag}");
    append(&f.log(), &attack("203.0.113.7"));
    w.poll();
    let m = w.metrics();
    assert_eq!(m.get("logward_lines_total", &watch), Some(25.0));
    assert_eq!(m.get("logward_sources_flagged_total", &watch), Some(1.0));
    let per_rule = m.samples("logward_rule_flags_total");
    assert!(!per_rule.is_empty());
    assert!(per_rule.iter().all(|s| s.value == 1.0), "{per_rule:?}");
    assert!(m.get("logward_watch_buckets", &watch).unwrap() > 0.0);
    let text = m.render();
    assert!(
        text.contains("# TYPE logward_watch_lag_seconds gauge\n"),
        "{text}"
    );
    w.finish();
}

//! `logward anonymize` and `logward keygen` end to end: the window, both modes, re-runs,
//! refusals, broken input, and kill -9 during a rewrite.

use std::collections::HashSet;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use logward::anonymize::{CryptoPan, Prefixes, load_key_file, truncate};
use logward::generate::{GenConfig, generate};

use crate::util::{Dir, read_plain};

/// 2026-10-15T00:00:00Z: the logs below span 2026-10-01 to 2026-10-15.
const NOW: &str = "2026-10-15T00:00:00Z";
const CUTOFF: i64 = 1_791_417_600; // NOW - 7d = 2026-10-08T00:00:00Z

fn log_14_days(seed: u64, lines: u64) -> Vec<u8> {
    let cfg = GenConfig {
        seed,
        lines,
        start: 1_790_812_800, // 2026-10-01T00:00:00Z
        span_secs: 14 * 86_400 - 3600,
        ..GenConfig::default()
    };
    let mut out = Vec::new();
    generate(&cfg, &mut out).unwrap();
    out
}

/// The time of a combined line, by its `[dd/Mon/yyyy:HH:MM:SS +zzzz]` field.
fn line_time(line: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(line).ok()?;
    let open = s.find('[')?;
    let t = s.get(open + 1..open + 27)?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day: i64 = t.get(0..2)?.parse().ok()?;
    let mon = months.iter().position(|m| Some(*m) == t.get(3..6))? as i64 + 1;
    let year: i64 = t.get(7..11)?.parse().ok()?;
    let (h, mi, se): (i64, i64, i64) = (
        t.get(12..14)?.parse().ok()?,
        t.get(15..17)?.parse().ok()?,
        t.get(18..20)?.parse().ok()?,
    );
    let sign = if t.get(21..22)? == "-" { -1 } else { 1 };
    let oh: i64 = t.get(22..24)?.parse().ok()?;
    let om: i64 = t.get(24..26)?.parse().ok()?;
    let days = logward::timefmt::days_from_civil(year, mon as u32, day as u32);
    Some(days * 86_400 + h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60))
}

/// Every full address written in a line: the first word of the generator's combined lines,
/// when it parses as an address.
fn client(line: &[u8]) -> Option<IpAddr> {
    let end = line.iter().position(|b| *b == b' ')?;
    std::str::from_utf8(&line[..end]).ok()?.parse().ok()
}

fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    if data.ends_with(b"\n") {
        v.pop();
    }
    v
}

/// Whether `full` appears in `text` as a whole address token (not inside a longer one).
fn has_token(text: &str, full: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .any(|t| t == full)
}

/// Checks one rewritten file against its original: same line count; lines inside the
/// window identical; in lines past the window, no client address of the original remains
/// anywhere in the line, unless `masked` (the run's mapping) leaves it as it is: Crypto-PAn
/// maps about one address in several thousand to itself.
/// Checks the lines inside the window are unchanged and the clients of those past it
/// masked; returns the lines past and inside the window, and how many of those past it
/// have a client that masks to itself (a Crypto-PAn fixed point, or unspecified).
fn check_window(
    orig: &[u8],
    new: &[u8],
    masked: &dyn Fn(IpAddr) -> IpAddr,
) -> (usize, usize, usize) {
    let (a, b) = (lines(orig), lines(new));
    assert_eq!(a.len(), b.len(), "line count changed");
    let (mut past, mut inside, mut kept) = (0, 0, 0);
    let mut last_time = None;
    for (i, (o, n)) in a.iter().zip(&b).enumerate() {
        let t = line_time(o).or(last_time);
        last_time = t;
        match t {
            Some(t) if t >= CUTOFF => {
                inside += 1;
                assert_eq!(o, n, "line {} inside the window changed", i + 1);
            }
            _ => {
                past += 1;
                if let Some(addr) = client(o) {
                    if addr.is_unspecified() || masked(addr) == addr {
                        kept += 1;
                        continue;
                    }
                    let full = addr.to_string();
                    let text = String::from_utf8_lossy(n);
                    assert!(
                        !has_token(&text, &full),
                        "line {}: {full} still in {text}",
                        i + 1
                    );
                }
            }
        }
    }
    (past, inside, kept)
}

struct Snapshot {
    data: Vec<u8>,
    ino: u64,
}

fn snap(p: &Path) -> Snapshot {
    Snapshot {
        data: fs::read(p).unwrap(),
        ino: fs::metadata(p).unwrap().ino(),
    }
}

fn assert_same(p: &Path, s: &Snapshot) {
    assert_eq!(fs::read(p).unwrap(), s.data, "{} changed", p.display());
    assert_eq!(
        fs::metadata(p).unwrap().ino(),
        s.ino,
        "{} replaced",
        p.display()
    );
}

fn set_mtime(p: &Path, secs: u64) {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

fn file_entry<'a>(j: &'a serde_json::Value, suffix: &str) -> &'a serde_json::Value {
    j["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("{suffix} not reported: {j}"))
}

fn run_window(mode_args: &[&str], masked: &dyn Fn(IpAddr) -> IpAddr) {
    let d = Dir::new();
    let plain = log_14_days(1, 20_000);
    let older = log_14_days(2, 8_000);
    d.write(
        "logs/access.log",
        b"203.0.113.9 - - [14/Oct/2026:23:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n",
    );
    let p1 = d.write("logs/access.log.1", &plain);
    let p2 = d.write_gz("logs/access.log.2.gz", &older);
    fs::set_permissions(&p1, fs::Permissions::from_mode(0o640)).unwrap();
    set_mtime(&p1, 1_791_500_000);
    set_mtime(&p2, 1_791_400_000);
    let live = snap(&d.join("logs/access.log"));
    let (m1, m2) = (fs::metadata(&p1).unwrap(), fs::metadata(&p2).unwrap());

    let mut args = vec![
        "anonymize",
        "--now",
        NOW,
        "--older-than",
        "7d",
        "-o",
        "json",
    ];
    args.extend_from_slice(mode_args);
    args.push("logs");
    let r = d.run(&args);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(file_entry(&j, "access.log")["status"], "skipped");
    assert!(
        file_entry(&j, "access.log")["reason"]
            .as_str()
            .unwrap()
            .contains("live log")
    );
    for (p, orig, meta, name) in [
        (&p1, &plain, &m1, "access.log.1"),
        (&p2, &older, &m2, "access.log.2.gz"),
    ] {
        let f = file_entry(&j, name);
        assert_eq!(f["status"], "rewritten", "{f}");
        let new = read_plain(p);
        let (past, inside, kept) = check_window(orig, &new, masked);
        assert!(past > 1000 && inside > 1000, "{past} {inside}");
        assert_eq!(f["lines"], lines(orig).len() as u64, "{f}");
        assert!(
            f["past_window"].as_u64().unwrap().abs_diff(past as u64) <= 5,
            "{f} {past}"
        );
        // An address that masks to itself is written back and not counted: a Crypto-PAn
        // key has such fixed points, far likelier near its pad (about one key in thirty
        // has one among this log's 700 addresses).
        assert!(
            f["addresses"].as_u64().unwrap() + kept as u64
                >= f["past_window"].as_u64().unwrap() - 5,
            "{f}, {kept} kept"
        );
        let after = fs::metadata(p).unwrap();
        assert_eq!(after.mode(), meta.mode(), "{name}: mode");
        assert_eq!((after.uid(), after.gid()), (meta.uid(), meta.gid()));
        assert_eq!(after.mtime(), meta.mtime(), "{name}: mtime");
        assert_ne!(after.ino(), meta.ino());
    }
    assert_eq!(fs::read(&p2).unwrap()[..2], [0x1f, 0x8b], "gzip stays gzip");
    assert_same(&d.join("logs/access.log"), &live);

    // A second run with the same window changes nothing.
    let (s1, s2) = (snap(&p1), snap(&p2));
    let r = d.run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["totals"]["rewritten"], 0, "{j}");
    assert_eq!(j["totals"]["addresses"], 0, "{j}");
    assert_same(&p1, &s1);
    assert_same(&p2, &s2);
    assert_same(&d.join("logs/access.log"), &live);

    // A later run masks the lines that aged past the window since, and only those.
    let mut later = args.clone();
    later[2] = "2026-10-16T00:00:00Z";
    let r = d.run(&later);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    let f = file_entry(&j, "access.log.1");
    assert_eq!(f["status"], "rewritten", "{f}");
    let past = f["past_window"].as_u64().unwrap();
    let done = f["already_masked"].as_u64().unwrap();
    assert!(done > 1000 && past > done, "{f}");
    let new = read_plain(&p1);
    let (a, b) = (lines(&s1.data), lines(&new));
    for (o, n) in a.iter().zip(&b) {
        match line_time(o) {
            Some(t) if t < CUTOFF => assert_eq!(o, n, "an already masked line changed"),
            Some(t) if t >= CUTOFF + 86_400 => assert_eq!(o, n),
            _ => {}
        }
    }
}

#[test]
fn truncate_masks_past_the_window_only_and_reruns_change_nothing() {
    run_window(&[], &|addr| truncate(addr, Prefixes::DEFAULT));
}

#[test]
fn pseudonymize_masks_past_the_window_only_and_reruns_change_nothing() {
    let d = Dir::new();
    let key = d.join("k");
    let r = d.run(&["keygen", key.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    let keep = fs::read(&key).unwrap();
    let r = d.run(&["keygen", key.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);
    assert_eq!(fs::read(&key).unwrap(), keep);
    let key_arg = key.to_str().unwrap().to_string();
    let pan = CryptoPan::new(&load_key_file(&key).unwrap());
    run_window(
        &["--mode", "pseudonymize", "--key-file", &key_arg],
        &|addr| pan.anonymize(addr),
    );
}

#[test]
fn dry_run_reports_without_writing() {
    let d = Dir::new();
    let p = d.write("logs/access.log.1", &log_14_days(3, 5000));
    let before = snap(&p);
    let r = d.run(&["anonymize", "--now", NOW, "--dry-run", "-o", "json", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["schema_version"], 1);
    assert_eq!(file_entry(&j, "access.log.1")["status"], "rewritten");
    assert!(j["totals"]["addresses"].as_u64().unwrap() > 1000, "{j}");
    assert_same(&p, &before);
    assert!(!d.join("state/anonymize-ledger.json").exists());
    let r = d.run(&["anonymize", "--now", NOW, "--dry-run", "logs"]);
    assert!(r.stdout.contains("would rewrite"), "{}", r.stdout);
}

#[test]
fn file_inside_the_window_is_not_touched() {
    let d = Dir::new();
    let p = d.write("logs/access.log.1", &log_14_days(4, 3000));
    let before = snap(&p);
    let r = d.run(&[
        "anonymize",
        "--now",
        NOW,
        "--older-than",
        "30d",
        "-o",
        "json",
        "logs",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(file_entry(&j, "access.log.1")["status"], "unchanged");
    assert_eq!(j["totals"]["past_window"], 0);
    assert_same(&p, &before);
}

#[test]
fn user_agents_are_kept_unless_the_whole_line_is_asked_for() {
    let d = Dir::new();
    let text = "192.0.2.1 - - [01/Oct/2026:00:00:00 +0000] \"GET /?ip=198.51.100.7 HTTP/1.1\" \
        200 1 \"http://203.0.113.5/\" \"Chrome/131.0.0.0 proxy 198.51.100.9\"\n";
    let p = d.write("a/access.log.1", text.as_bytes());
    let q = d.write("b/access.log.1", text.as_bytes());
    let key = d.join("key");
    let r = d.run(&["keygen", key.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pseudo = [
        "--mode",
        "pseudonymize",
        "--key-file",
        key.to_str().unwrap(),
    ];
    let r = d.run(&[&["anonymize", "--now", NOW, "a"][..], &pseudo].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = fs::read_to_string(&p).unwrap();
    for full in ["192.0.2.1 ", "198.51.100.7", "203.0.113.5"] {
        assert!(!got.contains(full), "{full} left in {got}");
    }
    assert!(
        got.ends_with(" \"Chrome/131.0.0.0 proxy 198.51.100.9\"\n"),
        "the user agent changed: {got}"
    );

    let r = d.run(
        &[
            &["anonymize", "--now", NOW, "--whole-line", "b"][..],
            &pseudo,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = fs::read_to_string(&q).unwrap();
    assert!(!got.contains("198.51.100.9"), "{got}");
    assert!(!got.contains("Chrome/131.0.0.0 "), "{got}");
}

#[test]
fn lines_without_time_take_the_age_before_them_or_the_mtime() {
    let d = Dir::new();
    let text = "garbage from 198.51.100.7 before any time\n\
        192.0.2.1 - - [01/Oct/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n\
        junk 192.0.2.77 with no time\n\
        192.0.2.2 - - [14/Oct/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n\
        junk 192.0.2.88 with no time\n";
    let p = d.write("logs/access.log.1", text.as_bytes());
    // An mtime inside the window: the first line is young.
    set_mtime(&p, 1_791_800_000);
    let r = d.run(&["anonymize", "--now", NOW, "-o", "json", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    let f = file_entry(&j, "access.log.1");
    assert_eq!(f["past_window"], 2, "{f}");
    assert_eq!(f["unparsed_scrubbed"], 1, "{f}");
    let got = fs::read_to_string(&p).unwrap();
    let want = text
        .replace("192.0.2.1 ", "192.0.2.0 ")
        .replace("192.0.2.77", "192.0.2.0");
    assert_eq!(got, want);

    // With an old mtime the first line is past the window too.
    let q = d.write("old/access.log.1", text.as_bytes());
    set_mtime(&q, 1_700_000_000);
    let r = d.run(&["anonymize", "--now", NOW, "old"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        fs::read_to_string(&q)
            .unwrap()
            .starts_with("garbage from 198.51.100.0 ")
    );
}

#[test]
fn open_file_is_skipped_and_hard_link_fails() {
    let d = Dir::new();
    let data = log_14_days(5, 2000);
    let busy = d.write("logs/access.log.1", &data);
    let linked = d.write("logs/access.log.2", &data);
    fs::create_dir_all(d.join("elsewhere")).unwrap();
    fs::hard_link(&linked, d.join("elsewhere/copy")).unwrap();
    let (b0, l0) = (snap(&busy), snap(&linked));
    let mut child = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::from(fs::File::open(&busy).unwrap()))
        .spawn()
        .unwrap();
    let r = d.run(&["anonymize", "--now", NOW, "-o", "json", "logs"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(r.code, 2, "a hard link is a failure: {}", r.stdout);
    let j = r.json();
    let f = file_entry(&j, "access.log.1");
    assert_eq!(f["status"], "skipped", "{f}");
    assert!(f["reason"].as_str().unwrap().contains("still open"), "{f}");
    let f = file_entry(&j, "access.log.2");
    assert_eq!(f["status"], "failed", "{f}");
    assert!(f["reason"].as_str().unwrap().contains("hard links"), "{f}");
    assert!(r.stderr.contains("access.log.2"), "{}", r.stderr);
    assert_same(&busy, &b0);
    assert_same(&linked, &l0);
    // Once released, the open file is done.
    let r = d.run(&["anonymize", "--now", NOW, "-o", "json", "logs/access.log.1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(file_entry(&r.json(), "access.log.1")["status"], "rewritten");
}

#[test]
fn truncated_gzip_fails_and_the_others_are_done() {
    let d = Dir::new();
    let good = d.write("logs/access.log.1", &log_14_days(6, 3000));
    let gz = d.write_gz("logs/access.log.2.gz", &log_14_days(7, 30_000));
    let raw = fs::read(&gz).unwrap();
    fs::write(&gz, &raw[..raw.len() / 2]).unwrap();
    let before = snap(&gz);
    let r = d.run(&["anonymize", "--now", NOW, "-o", "json", "logs"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let j = r.json();
    let f = file_entry(&j, "access.log.2.gz");
    assert_eq!(f["status"], "failed");
    assert!(f["reason"].as_str().unwrap().contains("decompress"), "{f}");
    assert_same(&gz, &before);
    assert_eq!(file_entry(&j, "access.log.1")["status"], "rewritten");
    assert_ne!(fs::read(&good).unwrap(), log_14_days(6, 3000));
    let names: Vec<String> = fs::read_dir(d.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains("logward-tmp")),
        "{names:?}"
    );
}

#[test]
fn directory_where_the_temporary_cannot_be_created_fails_cleanly() {
    let d = Dir::new();
    let data = log_14_days(8, 2000);
    // The temporary is `.NAME.logward-tmp.PID`: with a 250-byte name it exceeds the
    // file name limit, so creating it fails for root too.
    let long = format!("{}access.log.1", "a".repeat(238));
    let p = d.write(&format!("long/{long}"), &data);
    let before = snap(&p);
    let r = d.run(&["anonymize", "--now", NOW, "-o", "json", "long"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let f = &r.json()["files"][0];
    assert_eq!(f["status"], "failed");
    assert!(f["reason"].as_str().unwrap().contains("cannot"), "{f}");
    assert!(r.stderr.contains(&long), "{}", r.stderr);
    assert_same(&p, &before);

    // A read-only directory, where permissions apply (not as root).
    let q = d.write("ro/access.log.1", &data);
    let before = snap(&q);
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("read-only directory part skipped: root ignores directory permissions");
        return;
    }
    fs::set_permissions(d.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let r = d.run(&["anonymize", "--now", NOW, "-o", "json", "ro"]);
    fs::set_permissions(d.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert_eq!(r.json()["files"][0]["status"], "failed");
    assert_same(&q, &before);
}

#[test]
fn bad_key_files_are_refused_before_anything_is_touched() {
    let d = Dir::new();
    let p = d.write("logs/access.log.1", &log_14_days(9, 1000));
    let before = snap(&p);
    let bad = d.write("bad.key", b"not a key\n");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
    let open = d.write("open.key", &[b'a'; 64]);
    fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
    for (key, says) in [
        ("missing.key", "not found"),
        ("bad.key", "not a key file"),
        ("open.key", "chmod 600"),
    ] {
        let r = d.run(&[
            "anonymize",
            "--now",
            NOW,
            "--mode",
            "pseudonymize",
            "--key-file",
            key,
            "logs",
        ]);
        assert_eq!(r.code, 2, "{key}");
        assert!(
            r.stderr.contains(key) && r.stderr.contains(says),
            "{key}: {}",
            r.stderr
        );
        assert_same(&p, &before);
    }
    let r = d.run(&["anonymize", "--now", NOW, "--mode", "pseudonymize", "logs"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--key-file"), "{}", r.stderr);
    assert_same(&p, &before);
}

/// Regression: a key file that could not be read printed the OS's reason twice ("cannot
/// read key file: Is a directory (os error 21): Is a directory (os error 21)"), once from
/// the error's message and once from its source. Each key file the binary reads or writes
/// now names the file and gives the reason exactly once.
#[test]
fn a_key_file_error_prints_its_os_reason_once() {
    let d = Dir::new();
    let p = d.write("logs/access.log.1", &log_14_days(9, 1000));
    let before = snap(&p);
    // A directory opens, passes the mode check at 0700, and fails to read: EISDIR, which
    // root gets too (a mode-000 file would not fail for root).
    let keys = d.join("keys.d");
    fs::create_dir(&keys).unwrap();
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o700)).unwrap();
    let eisdir = std::io::Error::from_raw_os_error(libc::EISDIR).to_string();
    let once = |stderr: &str, reason: &str| {
        assert_eq!(stderr.matches(reason).count(), 1, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    };

    let r = d.run(&[
        "anonymize",
        "--now",
        NOW,
        "--mode",
        "pseudonymize",
        "--key-file",
        "keys.d",
        "logs",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!("logward: keys.d: cannot read key file: {eisdir}\n")
    );
    assert_same(&p, &before);

    // The audit key, read by allow before the store changes.
    let out = d
        .command()
        .env("LOGWARD_AUDIT_KEY", &keys)
        .args(["allow", "add", "192.0.2.7", "--note", "T-1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    once(&stderr, &eisdir);
    assert!(
        stderr.contains(&format!(
            "audit key: {}: cannot read key file: {eisdir}",
            keys.display()
        )),
        "{stderr}"
    );

    // keygen into a directory that does not exist.
    let r = d.run(&["keygen", "no/such/dir/k.key"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let enoent = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
    assert_eq!(
        r.stderr,
        format!("logward: no/such/dir/k.key: cannot write key file: {enoent}\n")
    );
    once(&r.stderr, &enoent);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let d = Dir::new();
        for i in 1..=4u64 {
            d.write(&format!("logs/access.log.{i}"), &log_14_days(10 + i, 2000));
        }
        let r = d.run(&[
            "anonymize",
            "--now",
            NOW,
            "-j",
            threads,
            "-o",
            "json",
            "logs",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let mut files = Vec::new();
        for i in 1..=4 {
            files.push(fs::read(d.join(&format!("logs/access.log.{i}"))).unwrap());
        }
        outputs.push((r.json()["totals"].clone(), files));
    }
    assert_eq!(outputs[0], outputs[1]);
}

/// kill -9 of the real binary at random moments during the rewrite of a large file: the
/// file is always either the original or the complete result.
#[test]
fn kill9_leaves_the_original_or_the_complete_result() {
    let d = Dir::new();
    let data = log_14_days(20, 20_000);
    let p = d.write("logs/access.log.1", &data);
    // The complete result, made once in another directory.
    let refdir = Dir::new();
    let q = refdir.write("logs/access.log.1", &data);
    let r = refdir.run(&["anonymize", "--now", NOW, "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let done = fs::read(&q).unwrap();
    assert_ne!(done, data);

    // Kill moments spread over a whole run, so some land after the rename too.
    let started = std::time::Instant::now();
    let r = d.run(&["anonymize", "--now", NOW, "--dry-run", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let span = (started.elapsed().as_millis() as u64 * 3).max(200);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut outcomes = HashSet::new();
    for round in 0..24 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = rng % span;
        let mut child = d
            .command()
            .args(["anonymize", "--now", NOW, "logs"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();
        let got = fs::read(&p).unwrap();
        let which = if got == data {
            "original"
        } else if got == done {
            "result"
        } else {
            panic!("round {round} ({delay} ms): the file is neither the original nor the result");
        };
        outcomes.insert(which);
        if which == "result" {
            // Start over from the original for the next round.
            fs::remove_file(&p).unwrap();
            fs::write(&p, &data).unwrap();
            let _ = fs::remove_file(d.join("state/anonymize-ledger.json"));
        }
    }
    // The last run cleans up what the kills left behind.
    let r = d.run(&["anonymize", "--now", NOW, "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::read(&p).unwrap(), done);
    let names: Vec<String> = fs::read_dir(d.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["access.log.1"]);
    eprintln!("kill -9 outcomes seen: {outcomes:?}");
}

/// Regression: auto-detection broke the tie between `combined` (a client list) and
/// `vcombined` in favour of `vcombined`, whose first field (a "vhost") is not masked:
/// "rewritten ... 5 addresses" left every 198.51.100.1 in clear.
#[test]
fn a_leading_address_list_is_a_client_list_and_all_of_it_is_masked() {
    let d = Dir::new();
    let line = "198.51.100.1, 10.0.0.1 - - [01/Jan/2025:10:00:01 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"curl\"\n";
    let p = d.write("logs/access.log.1", line.repeat(5).as_bytes());
    let r = d.run(&["anonymize", "-o", "json", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(file_entry(&r.json(), "access.log.1")["format"], "combined");
    let text = fs::read_to_string(&p).unwrap();
    assert!(!text.contains("198.51.100.1,"), "{text}");
    assert!(text.starts_with("198.51.100.0, 10.0.0.0 - - "), "{text}");
}

/// A format logward misreads must be visible, not silent: an address in a field it does
/// not know (here an extra field after the combined ones) is reported per file, in text
/// and JSON, with what would mask it; `--whole-line` then masks it.
#[test]
fn addresses_left_in_unknown_fields_are_reported() {
    let d = Dir::new();
    let line = "198.51.100.1 - - [01/Jan/2025:10:00:01 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"Mozilla/5.0 Chrome/131.0.0.0\" real=198.51.100.77\n";
    let clean = "198.51.100.2 - - [01/Jan/2025:10:00:02 +0000] \"GET /?from=198.51.100.3 HTTP/1.1\" 200 5 \"http://198.51.100.4/\" \"Mozilla/5.0 Chrome/131.0.0.0\"\n";
    let p = d.write(
        "logs/access.log.1",
        format!("{}{clean}", line.repeat(3)).as_bytes(),
    );
    let r = d.run(&["anonymize", "-o", "json", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        file_entry(&r.json(), "access.log.1")["leaked_lines"],
        3,
        "{}",
        r.stdout
    );
    let text = fs::read_to_string(&p).unwrap();
    assert!(
        text.contains("198.51.100.77"),
        "the test needs the address left"
    );
    assert!(
        !text.contains("198.51.100.3") && !text.contains("198.51.100.4"),
        "{text}"
    );

    fs::write(&p, format!("{}{clean}", line.repeat(3))).unwrap();
    let r = d.run(&["anonymize", "--now", "2026-01-01T00:00:00Z", "logs"]);
    assert!(
        r.stdout
            .contains("3 lines still hold an address-shaped token")
            && r.stdout.contains("--whole-line"),
        "{}",
        r.stdout
    );
    fs::write(&p, format!("{}{clean}", line.repeat(3))).unwrap();
    let r = d.run(&[
        "anonymize",
        "--whole-line",
        "-o",
        "json",
        "--now",
        "2026-02-01T00:00:00Z",
        "logs",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        file_entry(&r.json(), "access.log.1")["leaked_lines"],
        0,
        "{}",
        r.stdout
    );
    assert!(!fs::read_to_string(&p).unwrap().contains("198.51.100.77"));
}

#[test]
fn lines_without_a_client_are_masked_as_unreadable_ones() {
    // A format that reads no client from these lines would otherwise leave the address
    // in the field it does not know; each such line has every address token masked.
    let d = Dir::new();
    let text: String = (0..40)
        .map(|i| {
            format!(
                "{{\"time\":\"2026-11-01T10:00:{:02}Z\",\"uri\":\"/p{i}\",\"status\":404,\"peer\":\"198.51.100.{}\"}}\n",
                i % 60,
                i % 7 + 1
            )
        })
        .collect();
    let p = d.write("access.json.1", text.as_bytes());
    let r = d.run(&[
        "anonymize",
        "--now",
        "2026-12-01T00:00:00Z",
        "-o",
        "json",
        p.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let after = fs::read_to_string(&p).unwrap();
    // Truncated to its /24, and nothing else changed.
    let want: String = text
        .lines()
        .map(|l| {
            let cut = l.find("198.51.100.").unwrap();
            format!("{}198.51.100.0\"}}\n", &l[..cut])
        })
        .collect();
    assert_eq!(after, want);
    let j = r.json();
    let file = &j["files"][0];
    assert_eq!(file["without_client"], 40);
    assert_eq!(file["warnings"].as_array().unwrap().len(), 1, "{file}");
}

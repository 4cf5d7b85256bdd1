//! `logward watch` run as a child process on logs a writer in the test appends to: live
//! flags in the store, rotation by rename and by copytruncate, restarts after kill -9, the
//! --on-flag command and the nftables batches. Line counts come from the hidden
//! `--stats-file`, written with the positions.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::{Dir, clf};

/// A running `logward watch`; killed when dropped.
struct Watch {
    child: Child,
    stderr: PathBuf,
}

impl Watch {
    fn start(dir: &Dir, args: &[&str]) -> Watch {
        Watch::start_env(dir, args, &[])
    }

    fn start_env(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Watch {
        let n = fs::read_dir(dir.path()).map_or(0, |d| d.count());
        let stderr = dir.join(&format!("watch-{n}.stderr"));
        let mut cmd = dir.command();
        cmd.arg("watch")
            .args(["--interval", "100ms", "--no-default-allow"])
            .arg("--store")
            .arg(dir.join("state/logward.db"))
            .arg("--stats-file")
            .arg(dir.join("stats.json"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let watch = Watch {
            child: cmd.spawn().expect("logward watch runs"),
            stderr,
        };
        watch.wait_stderr("watching", Duration::from_secs(10));
        // The first poll opens the files; lines written after it are new lines.
        let opened = wait_until(Duration::from_secs(10), || {
            let e = watch.stderr();
            e.contains("following from") || e.contains("resuming at")
        });
        assert!(opened, "no file opened:\n{}", watch.stderr());
        watch
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_stderr(&self, needle: &str, limit: Duration) {
        let ok = wait_until(limit, || self.stderr().contains(needle));
        assert!(ok, "no {needle:?} on stderr:\n{}", self.stderr());
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> (i32, String) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code().unwrap_or(-1), self.stderr());
            }
            assert!(Instant::now() < deadline, "watch did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// `n` ordinary requests from 250 addresses of the /24 `net`, numbered from `first`, at the
/// current time: too few per address for any rule.
fn lines(net: &str, first: usize, n: usize) -> String {
    let t = clf(now());
    (first..first + n)
        .map(|i| {
            let host = i % 250 + 1;
            format!(
                "{net}.{host} - - [{t}] \"GET /page/{i} HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"\n"
            )
        })
        .collect()
}

/// A burst that `sensitive-files` flags: 20 requests for secrets in one second.
fn attack(ip: &str) -> String {
    let t = clf(now());
    (0..20)
        .map(|i| format!("{ip} - - [{t}] \"GET /.env?{i} HTTP/1.1\" 404 0 \"-\" \"curl/8\"\n"))
        .collect()
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log")
        .write_all(text.as_bytes())
        .expect("append");
}

fn stats_lines(dir: &Dir) -> u64 {
    fs::read(dir.join("stats.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["lines"].as_u64())
        .unwrap_or(0)
}

/// Waits until the watcher has counted exactly `want` lines, then checks it stays there.
fn assert_lines(dir: &Dir, watch: &Watch, want: u64) {
    let reached = wait_until(Duration::from_secs(15), || stats_lines(dir) >= want);
    assert!(
        reached,
        "counted {} of {want} lines\n{}",
        stats_lines(dir),
        watch.stderr()
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(stats_lines(dir), want, "{}", watch.stderr());
}

fn flagged_sources(dir: &Dir) -> Vec<String> {
    let Ok(conn) = rusqlite::Connection::open(dir.join("state/logward.db")) else {
        return Vec::new();
    };
    let Ok(mut st) = conn.prepare("SELECT source FROM flagged") else {
        return Vec::new();
    };
    st.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

#[test]
fn attack_burst_is_in_the_store_within_two_seconds() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", lines("198.51.101", 0, 5).as_bytes());
    let watch = Watch::start(&dir, &["--status-every", "1s", log.to_str().unwrap()]);
    append(&log, &lines("198.51.101", 5, 50));
    let written = Instant::now();
    append(&log, &attack("203.0.113.7"));
    let seen = wait_until(Duration::from_secs(2), || {
        flagged_sources(&dir).contains(&"203.0.113.7/32".to_string())
    });
    let took = written.elapsed();
    assert!(seen, "not stored within 2 s:\n{}", watch.stderr());
    println!(
        "flag stored {} ms after the burst was written",
        took.as_millis()
    );
    watch.wait_stderr(
        "flagged 203.0.113.7 by sensitive-files",
        Duration::from_secs(1),
    );
    watch.wait_stderr("logward: status: ", Duration::from_secs(3));
    assert_eq!(flagged_sources(&dir), ["203.0.113.7/32"]);
    // Read from the end: the 5 lines there at start are not counted.
    assert_lines(&dir, &watch, 70);
    let (code, stderr) = watch.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("stopped after 70 lines, 1 flagged"),
        "{stderr}"
    );
    assert!(
        stderr.lines().all(|l| l.starts_with("logward: ")),
        "one prefixed line per event:\n{stderr}"
    );
}

/// `text`'s lines as a container runtime stores them (CRI), each split in two parts.
fn cri_parts(text: &str) -> String {
    text.lines()
        .map(|line| {
            let (a, b) = line.split_at(line.len() / 2);
            let stamp = "2026-12-06T10:00:00.000000001Z stdout";
            format!("{stamp} P {a}\n{stamp} F {b}\n")
        })
        .collect()
}

#[test]
fn container_log_parts_are_joined_and_a_burst_flagged() {
    let dir = Dir::new();
    let log = dir.write(
        "logs/access.log",
        cri_parts(&lines("198.51.101", 0, 5)).as_bytes(),
    );
    let watch = Watch::start(&dir, &[log.to_str().unwrap()]);
    append(&log, &cri_parts(&lines("198.51.101", 5, 30)));
    watch.wait_stderr("format cri:combined", Duration::from_secs(5));
    append(&log, &cri_parts(&attack("203.0.113.7")));
    let seen = wait_until(Duration::from_secs(5), || {
        flagged_sources(&dir).contains(&"203.0.113.7/32".to_string())
    });
    assert!(seen, "not flagged:\n{}", watch.stderr());
    assert_lines(&dir, &watch, 2 * (30 + 20));
    let (code, stderr) = watch.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("malformed"), "{stderr}");
}

#[test]
fn rename_rotation_and_a_new_file_lose_no_line_and_count_none_twice() {
    let dir = Dir::new();
    let logs = dir.join("logs");
    fs::create_dir(&logs).unwrap();
    let log = logs.join("access.log");
    append(&log, &lines("198.51.101", 0, 100));
    let watch = Watch::start(&dir, &["--from-start", logs.to_str().unwrap()]);
    assert_lines(&dir, &watch, 100);
    // The server keeps its handle on the old file across the rename, as until it reopens.
    let mut old = OpenOptions::new().append(true).open(&log).unwrap();
    append(&log, &lines("198.51.101", 100, 50));
    fs::rename(&log, logs.join("access.log.1")).unwrap();
    old.write_all(lines("198.51.101", 150, 30).as_bytes())
        .unwrap();
    append(&log, &lines("198.51.102", 0, 40));
    old.write_all(lines("198.51.101", 180, 20).as_bytes())
        .unwrap();
    drop(old);
    append(&log, &lines("198.51.102", 40, 10));
    // A new access log appearing in the directory is read whole; a rotated one is not.
    append(&logs.join("other.access.log"), &lines("198.51.103", 0, 25));
    append(&logs.join("access.log.2"), &lines("198.51.104", 0, 1000));
    assert_lines(&dir, &watch, 100 + 50 + 30 + 40 + 20 + 10 + 25);
    let stderr = watch.stderr();
    assert!(stderr.contains("access.log: rotated"), "{stderr}");
    assert!(!stderr.contains("access.log.2"), "{stderr}");
    let (code, _) = watch.stop();
    assert_eq!(code, 0);
}

#[test]
fn copytruncate_loses_no_line_and_counts_none_twice() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", b"");
    let watch = Watch::start(&dir, &[log.to_str().unwrap()]);
    append(&log, &lines("198.51.101", 0, 100));
    assert_lines(&dir, &watch, 100);
    // Lines written just before the copy may not have been read yet: they are read from
    // the copy.
    append(&log, &lines("198.51.101", 100, 40));
    fs::copy(&log, dir.join("logs/access.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines("198.51.102", 0, 60));
    assert_lines(&dir, &watch, 200);
    watch.wait_stderr("access.log: truncated", Duration::from_secs(1));
}

#[test]
fn kill_9_and_restart_resume_without_counting_twice() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", b"");
    let args = [log.to_str().unwrap()];
    let watch = Watch::start(&dir, &args);
    let mut written = 0;
    for _ in 0..5 {
        append(&log, &lines("198.51.101", written, 200));
        written += 200;
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_lines(&dir, &watch, written as u64);
    append(&log, &lines("198.51.101", written, 300));
    written += 300;
    // No clean exit: whatever was not saved is read again, and only that.
    watch.signal(libc::SIGKILL);
    drop(watch);
    append(&log, &lines("198.51.101", written, 250));
    written += 250;
    let watch = Watch::start(&dir, &args);
    assert!(
        watch.stderr().contains("resuming at byte"),
        "{}",
        watch.stderr()
    );
    assert_lines(&dir, &watch, written as u64);
    // Rotated while stopped: the old file is found by its inode and first bytes.
    let (code, _) = watch.stop();
    assert_eq!(code, 0);
    append(&log, &lines("198.51.101", written, 70));
    written += 70;
    fs::rename(&log, dir.join("logs/access.log.1")).unwrap();
    append(&log, &lines("198.51.102", 0, 30));
    written += 30;
    let watch = Watch::start(&dir, &args);
    assert_lines(&dir, &watch, written as u64);
}

#[test]
fn on_flag_runs_the_command_with_the_flag_in_its_environment() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", b"");
    let out = dir.join("flag.env");
    let watch = Watch::start_env(
        &dir,
        &[
            "--on-flag",
            "env | grep ^LOGWARD_ | sort > \"$OUT.tmp\" && mv \"$OUT.tmp\" \"$OUT\"",
            log.to_str().unwrap(),
        ],
        &[("OUT", out.to_str().unwrap())],
    );
    append(&log, &attack("203.0.113.9"));
    assert!(
        wait_until(Duration::from_secs(5), || out.exists()),
        "{}",
        watch.stderr()
    );
    let env = fs::read_to_string(&out).unwrap();
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing:\n{env}"))
            .to_string()
    };
    assert_eq!(get("LOGWARD_SOURCE"), "203.0.113.9");
    assert_eq!(get("LOGWARD_RULES"), "sensitive-files");
    assert!(get("LOGWARD_EVENTS").parse::<u64>().unwrap() >= 5, "{env}");
    let expires = get("LOGWARD_EXPIRES");
    assert!(
        expires.len() == 20 && expires.ends_with('Z') && expires.as_bytes()[10] == b'T',
        "{expires}"
    );
}

#[test]
fn on_flag_command_that_hangs_is_killed_and_reading_goes_on() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", b"");
    let watch = Watch::start(
        &dir,
        &[
            "--on-flag",
            "sleep 30",
            "--action-timeout",
            "1s",
            log.to_str().unwrap(),
        ],
    );
    append(&log, &attack("203.0.113.10"));
    append(&log, &attack("203.0.113.11"));
    assert!(wait_until(Duration::from_secs(2), || {
        flagged_sources(&dir).len() == 2
    }));
    append(&log, &lines("198.51.101", 0, 10));
    assert_lines(&dir, &watch, 50);
    watch.wait_stderr(
        "--on-flag for 203.0.113.10: killed after 1 s",
        Duration::from_secs(5),
    );
}

/// An `nft` first on PATH that records the batches it is given on stdin (`nft -f -`) in
/// the file `$NFT_RECORD`; returns that PATH and the record's path.
fn fake_nft(dir: &Dir) -> (String, PathBuf) {
    let bin = dir.join("bin");
    fs::create_dir(&bin).unwrap();
    let fake = bin.join("nft");
    fs::write(
        &fake,
        "#!/bin/sh\n[ \"$*\" = \"-f -\" ] || exit 3\ncat >> \"$NFT_RECORD\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, dir.join("nft.batches"))
}

#[test]
fn nft_set_feeds_batches_to_nft() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", b"");
    let (path, record) = fake_nft(&dir);
    let watch = Watch::start_env(
        &dir,
        &[
            "--nft-set",
            "inet:logward:flagged_v4,flagged_v6",
            log.to_str().unwrap(),
        ],
        &[
            ("PATH", path.as_str()),
            ("NFT_RECORD", record.to_str().unwrap()),
        ],
    );
    append(&log, &(attack("203.0.113.7") + &attack("2001:db8:7:7::1")));
    let done = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&record).is_ok_and(|t| t.contains("2001:db8:7:7::/64"))
    });
    assert!(done, "{}", watch.stderr());
    let batch = fs::read_to_string(&record).unwrap();
    assert!(
        batch.contains("add element inet logward flagged_v4 { 203.0.113.7 timeout "),
        "{batch}"
    );
    assert!(
        batch.contains("add element inet logward flagged_v6 { 2001:db8:7:7::/64 timeout "),
        "{batch}"
    );
    drop(watch);
    check_with_real_nft(&record);
}

/// Checks a recorded batch with the real nft (`-c`: parse and validate, change nothing).
fn check_with_real_nft(batch: &Path) {
    let Some(nft) = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("skipped: nft is not installed; the batch was not checked");
        return;
    };
    let out = std::process::Command::new(nft)
        .arg("-c")
        .arg("-f")
        .arg(batch)
        .output()
        .expect("nft runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && (stderr.contains("Operation not permitted") || stderr.contains("Permission denied"))
    {
        println!(
            "skipped: nft -c needs CAP_NET_ADMIN here: {}",
            stderr.trim()
        );
        return;
    }
    assert!(
        out.status.success(),
        "nft -c -f rejects the batch: {stderr}"
    );
}

/// Load: append the 1M-line generated log as fast as possible and measure how fast watch
/// follows (`cargo test --release --test tests -- --ignored --nocapture watch_keeps_up`).
/// benches/watch-load.sh runs the same measurement with the release binary.
#[test]
#[ignore]
fn watch_keeps_up_with_a_fast_writer() {
    let dir = Dir::new();
    let generated = dir.join("generated.log");
    let run = dir.run(&[
        "generate",
        "--seed",
        "1",
        "--lines",
        "1000000",
        "--attacks",
        "-o",
        generated.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let total = std::io::BufReader::new(File::open(&generated).unwrap())
        .lines()
        .count() as u64;
    let log = dir.write("logs/access.log", b"");
    let watch = Watch::start(&dir, &["--status-every", "1s", log.to_str().unwrap()]);
    let data = fs::read(&generated).unwrap();
    let started = Instant::now();
    let mut out = OpenOptions::new().append(true).open(&log).unwrap();
    for chunk in data.chunks(64 << 10) {
        out.write_all(chunk).unwrap();
    }
    let written = started.elapsed();
    let done = wait_until(Duration::from_secs(300), || stats_lines(&dir) >= total);
    let caught_up = started.elapsed();
    assert!(done, "{}", watch.stderr());
    assert_eq!(stats_lines(&dir), total);
    println!(
        "{total} lines written in {:.2} s, all processed after {:.2} s: {:.0} lines/s, \
         {:.2} s behind the writer at the end",
        written.as_secs_f64(),
        caught_up.as_secs_f64(),
        total as f64 / caught_up.as_secs_f64(),
        (caught_up - written).as_secs_f64()
    );
}

#[test]
fn sighup_reloads_the_rules_and_a_broken_file_keeps_them() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", b"");
    let rules = dir.write("rules.toml", b"[rules.sensitive-files]\nenabled = false\n");
    let watch = Watch::start(
        &dir,
        &["--rules", rules.to_str().unwrap(), log.to_str().unwrap()],
    );
    append(&log, &attack("203.0.113.20"));
    assert_lines(&dir, &watch, 20);
    assert!(flagged_sources(&dir).is_empty());
    fs::write(&rules, b"[rules.sensitive-files]\nenabled = true\n").unwrap();
    watch.signal(libc::SIGHUP);
    watch.wait_stderr("reloaded: 18 rules", Duration::from_secs(5));
    append(&log, &attack("203.0.113.21"));
    assert!(
        wait_until(Duration::from_secs(2), || flagged_sources(&dir)
            == ["203.0.113.21/32"]),
        "{}",
        watch.stderr()
    );
    fs::write(&rules, b"[rules.sensitive-files\n").unwrap();
    watch.signal(libc::SIGHUP);
    watch.wait_stderr(
        "reload failed, keeping the running rules",
        Duration::from_secs(5),
    );
    let (code, _) = watch.stop();
    assert_eq!(code, 0);
}

/// `count` sources of `198.18.{block}.0/24`-style addresses, each with a `sensitive-files`
/// burst at the current time.
fn many_attackers(block: u32, count: u32) -> (String, Vec<String>) {
    let t = clf(now());
    let mut text = String::new();
    let mut sources = Vec::new();
    for i in 0..count {
        let ip = format!("198.18.{}.{}", block * 8 + i / 250, i % 250 + 1);
        for k in 0..20 {
            text.push_str(&format!(
                "{ip} - - [{t}] \"GET /.env?{k} HTTP/1.1\" 404 0 \"-\" \"curl/8\"\n"
            ));
        }
        sources.push(format!("{ip}/32"));
    }
    (text, sources)
}

/// Regression: two scans on one store, or watch and a scan, failed with "database is
/// locked" and lost their flags (a deferred transaction that reads, then writes, gets
/// SQLITE_BUSY at once); and watch logged a 4 h ban for batches of 1000+ sources whose
/// lookup query SQLite refused. Four scans and a watch now share the store: every flag
/// of every run is stored, no run fails, and watch logs the bans the store holds.
#[test]
fn four_scans_and_a_watch_on_one_store_lose_no_flag() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", lines("198.51.101", 0, 5).as_bytes());
    let watch = Watch::start(&dir, &[log.to_str().unwrap()]);
    let (burst, mut want) = many_attackers(0, 1200);
    append(&log, &burst);
    let mut scans = Vec::new();
    for n in 1..=4u32 {
        let (text, sources) = many_attackers(n, 300);
        want.extend(sources);
        let path = dir.write(&format!("scan{n}/access.log"), text.as_bytes());
        let mut cmd = dir.command();
        cmd.args(["scan", "--no-default-allow", "--store"])
            .arg(dir.join("state/logward.db"))
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        scans.push(cmd.spawn().unwrap());
    }
    for s in scans {
        let out = s.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a scan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    want.sort();
    let stored = wait_until(Duration::from_secs(60), || {
        let mut got = flagged_sources(&dir);
        got.sort();
        got == want
    });
    let mut got = flagged_sources(&dir);
    got.sort();
    assert!(
        stored,
        "{} of {} flags stored\n{}",
        got.len(),
        want.len(),
        watch.stderr()
    );
    let (code, stderr) = watch.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    // The ban watch logged for a source is the one the store holds.
    let conn = rusqlite::Connection::open(dir.join("state/logward.db")).unwrap();
    let expires: i64 = conn
        .query_row(
            "SELECT expires FROM flagged WHERE source = '198.18.0.77/32'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let logged = stderr
        .lines()
        .find(|l| l.contains("flagged 198.18.0.77 by"))
        .unwrap_or_else(|| panic!("not logged:\n{stderr}"));
    let until = logged.split("banned until ").nth(1).unwrap();
    let until = logward::timefmt::parse_rfc3339(until.split(' ').next().unwrap()).unwrap();
    assert_eq!(until, expires, "{logged}");
}

/// An erasure while `watch` runs on the same store: within its next check, watch forgets
/// its buckets and takes the erased source out of the nftables set it manages; the
/// erasure's WAL checkpoint completes though watch holds the store open.
#[test]
fn a_running_watch_forgets_an_erased_source() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", b"");
    let (path, record) = fake_nft(&dir);
    let watch = Watch::start_env(
        &dir,
        &[
            "--nft-set",
            "inet:logward:flagged_v4,flagged_v6",
            log.to_str().unwrap(),
        ],
        &[
            ("PATH", path.as_str()),
            ("NFT_RECORD", record.to_str().unwrap()),
        ],
    );
    append(&log, &(attack("203.0.113.7") + &attack("198.51.100.8")));
    let added = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&record).is_ok_and(|t| t.contains("198.51.100.8"))
    });
    assert!(added, "{}", watch.stderr());
    // A rotated log elsewhere holds the source; the erasure runs on the same store.
    dir.write("old/access.log.1", attack("203.0.113.7").as_bytes());
    let mut cmd = dir.command();
    cmd.args(["anonymize", "--source", "203.0.113.7", "--store"])
        .arg(dir.join("state/logward.db"))
        .arg(dir.join("old"));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deleted = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&record)
            .is_ok_and(|t| t.contains("delete element inet logward flagged_v4 { 203.0.113.7 }"))
    });
    assert!(
        deleted,
        "{}\n{:?}",
        watch.stderr(),
        fs::read_to_string(&record)
    );
    watch.wait_stderr("detection state cleared", Duration::from_secs(3));
    let batches = fs::read_to_string(&record).unwrap();
    assert!(
        !batches.contains("delete element inet logward flagged_v4 { 198.51.100.8 }"),
        "{batches}"
    );
    let (code, stderr) = watch.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("erasure") && l.contains("203.0.113.7")),
        "the journal learns the erased address:\n{stderr}"
    );
}

/// `logward allow add` while `watch` runs on the same store: within its next check, watch
/// takes the allowed source out of the nftables set it manages, and a source of the allowed
/// network it has not seen yet is not flagged, while others still are.
#[test]
fn a_running_watch_lets_go_of_a_network_allowed_meanwhile() {
    let dir = Dir::new();
    let log = dir.write("logs/access.log", b"");
    let (path, record) = fake_nft(&dir);
    let watch = Watch::start_env(
        &dir,
        &[
            "--nft-set",
            "inet:logward:flagged_v4,flagged_v6",
            log.to_str().unwrap(),
        ],
        &[
            ("PATH", path.as_str()),
            ("NFT_RECORD", record.to_str().unwrap()),
        ],
    );
    append(&log, &(attack("203.0.113.9") + &attack("198.51.100.9")));
    let added = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&record)
            .is_ok_and(|t| t.contains("{ 203.0.113.9 timeout") && t.contains("198.51.100.9"))
    });
    assert!(added, "{}", watch.stderr());

    let mut cmd = dir.command();
    cmd.args([
        "allow",
        "add",
        "203.0.113.0/24",
        "--note",
        "office NAT",
        "--store",
    ])
    .arg(dir.join("state/logward.db"));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deleted = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&record)
            .is_ok_and(|t| t.contains("delete element inet logward flagged_v4 { 203.0.113.9 }"))
    });
    assert!(
        deleted,
        "{}\n{:?}",
        watch.stderr(),
        fs::read_to_string(&record)
    );
    watch.wait_stderr("the allowlist changed", Duration::from_secs(3));

    // A new attacker inside the allowed network flags nothing; one outside still does.
    append(&log, &(attack("203.0.113.50") + &attack("192.0.2.77")));
    let flagged = wait_until(Duration::from_secs(5), || {
        flagged_sources(&dir).contains(&"192.0.2.77/32".to_string())
    });
    assert!(flagged, "{}", watch.stderr());
    let (code, stderr) = watch.stop();
    assert_eq!(code, 0, "{stderr}");
    let sources = flagged_sources(&dir);
    assert!(
        !sources.contains(&"203.0.113.50/32".to_string()),
        "{sources:?}"
    );
    let batches = fs::read_to_string(&record).unwrap();
    assert!(!batches.contains("203.0.113.50"), "{batches}");
    assert!(
        !batches.contains("delete element inet logward flagged_v4 { 198.51.100.9 }"),
        "{batches}"
    );
    assert!(!stderr.contains("flagged 203.0.113.50"), "{stderr}");
}

/// `GET path` over a plain TCP connection; the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).expect("an answer");
    let (head, body) = out.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or("").to_string();
    if status.contains(" 200 ") {
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
    }
    (status, body.to_string())
}

#[test]
fn metrics_listen_serves_the_watch_families_and_lines_grow() {
    let dir = Dir::new();
    let log = dir.join("access.log");
    append(&log, &lines("198.51.100", 0, 30));
    let watch = Watch::start(
        &dir,
        &[
            "--from-start",
            "--metrics-listen",
            "127.0.0.1:0",
            log.to_str().unwrap(),
        ],
    );
    let err = watch.stderr();
    let addr = err
        .split("serving metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no address on stderr:\n{err}"))
        .to_string();
    let lines_total = || {
        let (status, body) = http_get(&addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        crate::metrics::promtool_check_metrics(&body);
        let scrape = crate::metrics::parse(&body);
        let watch = [("command", "watch")];
        for family in [
            "logward_watch_lag_seconds",
            "logward_watch_backlog_bytes",
            "logward_watch_open_files",
            "logward_watch_buckets",
            "logward_watch_nft_batch_failures_total",
            "logward_malformed_lines_total",
            "logward_read_bytes_total",
            "logward_sources_flagged_total",
        ] {
            assert!(
                crate::metrics::value(&scrape, family, &watch).is_some(),
                "no {family}:\n{body}"
            );
        }
        (
            crate::metrics::value(&scrape, "logward_lines_total", &watch).unwrap_or(-1.0),
            scrape,
        )
    };
    assert!(wait_until(Duration::from_secs(10), || lines_total().0 == 30.0));
    append(&log, &lines("198.51.100", 30, 50));
    append(&log, &attack("203.0.113.9"));
    let grown = wait_until(Duration::from_secs(10), || lines_total().0 == 100.0);
    assert!(grown, "lines_total stays at {}", lines_total().0);
    let (_, scrape) = lines_total();
    let watch_label = [("command", "watch")];
    let flagged = wait_until(Duration::from_secs(10), || {
        crate::metrics::value(
            &lines_total().1,
            "logward_sources_flagged_total",
            &watch_label,
        ) == Some(1.0)
    });
    assert!(flagged, "{}", watch.stderr());
    let open = crate::metrics::value(&scrape, "logward_watch_open_files", &watch_label);
    assert_eq!(open, Some(1.0));
    let lag = crate::metrics::value(&scrape, "logward_watch_lag_seconds", &watch_label).unwrap();
    assert!((-5.0..60.0).contains(&lag), "lag {lag}");
    let (status, _) = http_get(&addr, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (code, _) = watch.stop();
    assert_eq!(code, 0);
}

#[test]
fn metrics_listen_on_a_port_in_use_fails_the_start() {
    let dir = Dir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let log = dir.write("access.log", b"");
    let r = dir.run_within(
        20,
        &["watch", "--metrics-listen", &addr, log.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "--metrics-listen: {addr}: cannot serve metrics there"
        )),
        "{}",
        r.stderr
    );
    let r = dir.run_within(20, &["watch", "--metrics-listen", "localhost", "x"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("127.0.0.1:9321"), "{}", r.stderr);
}

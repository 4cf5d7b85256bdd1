//! The daily jobs as shipped: a retention run over a whole rotation set of gzip files, the
//! systemd timer's own command line, the logrotate hook under the real logrotate, and a
//! nightly scan whose bans are active.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use logward::generate::{GenConfig, generate};

use crate::util::{Dir, run_with_deadline};

/// Every log below is older than seven days then (the newest rotated one is from
/// 2026-12-11).
const NOW: &str = "2026-12-31T00:00:00Z";
const DAY: i64 = 86_400;
/// 2026-11-01T00:00:00Z.
const START: i64 = 1_793_491_200;

fn day_of_log(seed: u64, day: i64, lines: u64) -> Vec<u8> {
    let cfg = GenConfig {
        seed,
        lines,
        start: START + day * DAY,
        span_secs: DAY - 60,
        ..GenConfig::default()
    };
    let mut out = Vec::new();
    generate(&cfg, &mut out).unwrap();
    out
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Lays out `access.log` (today), `access.log.1` and `access.log.2.gz` ...
/// `access.log.{gz_files + 1}.gz` under `dir`, one day of `lines` lines each; returns the
/// rotated files with their original contents.
fn rotation_set(d: &Dir, dir: &str, gz_files: usize, lines: u64) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    d.write(&format!("{dir}/access.log"), &day_of_log(99, 41, 50));
    let plain = day_of_log(1, 40, lines);
    files.push((d.write(&format!("{dir}/access.log.1"), &plain), plain));
    for n in 2..gz_files + 2 {
        let data = day_of_log(n as u64, 41 - n as i64, lines);
        files.push((d.write_gz(&format!("{dir}/access.log.{n}.gz"), &data), data));
    }
    files
}

fn read_plain(p: &Path) -> Vec<u8> {
    let raw = fs::read(p).unwrap();
    if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip(&raw)
    } else {
        raw
    }
}

/// Every line kept, in order, with its client address masked to /24 (or /48) and nothing
/// else changed.
fn assert_truncated(orig: &[u8], new: &[u8], name: &str) {
    let (a, b): (Vec<&[u8]>, Vec<&[u8]>) = (
        orig.split(|&c| c == b'\n').collect(),
        new.split(|&c| c == b'\n').collect(),
    );
    assert_eq!(a.len(), b.len(), "{name}: line count changed");
    let mut masked = 0;
    for (o, n) in a.iter().zip(&b) {
        let (os, ns) = (String::from_utf8_lossy(o), String::from_utf8_lossy(n));
        let (Some((oc, orest)), Some((nc, nrest))) = (os.split_once(' '), ns.split_once(' '))
        else {
            assert_eq!(o, n, "{name}: an unparsable line changed");
            continue;
        };
        let Ok(ip) = oc.parse::<std::net::IpAddr>() else {
            assert_eq!(o, n);
            continue;
        };
        assert_eq!(orest, nrest, "{name}: more than the client changed");
        let expect = logward::anonymize::truncate(ip, logward::anonymize::Prefixes::default());
        assert_eq!(nc, expect.to_string(), "{name}: {oc} masked wrongly");
        masked += 1;
    }
    assert!(masked > 0, "{name}: nothing masked");
}

/// Regression: with two or more gzip files past the window, every worker of the pool
/// waited for gzip member jobs queued behind it, and `anonymize` hung forever on more
/// than one thread.
#[test]
fn anonymize_finishes_on_rotation_sets_of_gzip_files_with_any_thread_count() {
    for gz_files in [2, 5, 30] {
        let mut results = Vec::new();
        for threads in ["1", "2", "8"] {
            let d = Dir::new();
            let files = rotation_set(&d, "logs", gz_files, 400);
            let live = fs::read(d.join("logs/access.log")).unwrap();
            let r = d.run_within(
                120,
                &[
                    "anonymize",
                    "--now",
                    NOW,
                    "-j",
                    threads,
                    "-o",
                    "json",
                    "logs",
                ],
            );
            assert_eq!(r.code, 0, "{gz_files} gz, -j {threads}: {}", r.stderr);
            let j = r.json();
            assert_eq!(
                j["totals"]["rewritten"],
                files.len() as u64,
                "{gz_files} gz, -j {threads}: {j}"
            );
            let mut outputs = Vec::new();
            for (p, orig) in &files {
                let new = read_plain(p);
                assert_truncated(orig, &new, &p.display().to_string());
                outputs.push(new);
            }
            assert_eq!(fs::read(d.join("logs/access.log")).unwrap(), live);
            results.push((j["totals"].clone(), outputs));
        }
        assert_eq!(
            results[0], results[1],
            "{gz_files} gz: -j 1 and -j 2 differ"
        );
        assert_eq!(
            results[0], results[2],
            "{gz_files} gz: -j 1 and -j 8 differ"
        );
    }
}

/// Erasure walks the same rewrite: it must finish on a rotation set too.
#[test]
fn erasure_finishes_on_a_rotation_set_of_gzip_files() {
    let d = Dir::new();
    let files = rotation_set(&d, "logs", 5, 400);
    let first = String::from_utf8_lossy(&files[3].1);
    let ip = first.split(' ').next().unwrap().to_string();
    let r = d.run_within(
        120,
        &[
            "anonymize",
            "--now",
            NOW,
            "-j",
            "4",
            "--source",
            &ip,
            "-o",
            "json",
            "logs",
        ],
    );
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    for (p, _) in &files {
        let text = String::from_utf8_lossy(&read_plain(p)).into_owned();
        assert!(
            !text.lines().any(|l| l.starts_with(&format!("{ip} "))),
            "{}: {ip} left",
            p.display()
        );
    }
}

/// The `ExecStart=` line of a shipped unit, split into words.
fn exec_start(unit: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/systemd")
        .join(unit);
    let text = fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{}: no ExecStart", path.display()));
    line.split_whitespace().map(str::to_string).collect()
}

/// The daily timer's service, run with its exact arguments: the binary and absolute paths
/// are moved under a temporary root, nothing else changes. A host with nginx only (no
/// /var/log/apache2) is the common case and must not fail the unit every day.
#[test]
fn the_shipped_timer_command_finishes_on_a_real_rotation_set() {
    let d = Dir::new();
    let root = d.path().to_str().unwrap().to_string();
    let files = rotation_set(&d, "var/log/nginx", 13, 300);
    let words = exec_start("logward-anonymize.service");
    assert_eq!(words[0], "/usr/bin/logward");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logward"));
    for w in &words[1..] {
        if w.starts_with('/') {
            cmd.arg(format!("{root}{w}"));
        } else {
            cmd.arg(w);
        }
    }
    cmd.arg("--now").arg(NOW);
    cmd.current_dir(d.path())
        .env("LOGWARD_CONFIG", "")
        .env("LOGWARD_STORE", d.join("var/lib/logward/logward.db"))
        .env("HOME", d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let r = run_with_deadline(cmd, 120);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for (p, orig) in &files {
        assert_truncated(orig, &read_plain(p), &p.display().to_string());
    }
}

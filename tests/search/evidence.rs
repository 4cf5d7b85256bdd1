//! `search --evidence DIR`: the package's lines, in time order with absolute `path:line:`,
//! the manifest's hashes checked against SHA-256 computed here, the query it records, and
//! the directories it refuses (not empty, a symbolic link) without writing anything.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::sites::{LogFile, SET, expected, fields, rotation_set, widespread_client};
use crate::util::Dir;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifest(dir: &Path) -> serde_json::Value {
    let text = fs::read_to_string(dir.join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// The temporary directory as the binary sees its working directory: absolute, no links.
fn root(d: &Dir) -> PathBuf {
    fs::canonicalize(d.path()).unwrap()
}

/// RFC 3339 UTC of unix seconds, as the manifest writes times.
fn rfc3339(t: i64) -> String {
    let (y, m, d) = logward::generate::civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[test]
fn the_package_holds_the_lines_in_time_order_and_verifiable_hashes() {
    let d = Dir::new();
    let files = rotation_set(&d, 21);
    let client = widespread_client(&files);
    let r = d.run(&[
        "search",
        "-s",
        &client.to_string(),
        "--evidence",
        "case-42",
        "logs",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = root(&d);
    let dir = root.join("case-42");
    let wanted = |l: &str| fields(l).is_some_and(|(_, c, _)| c == client);
    let want = expected(&files, &format!("{}/logs/", root.display()), wanted);
    let n = want.lines().count();
    assert!(
        r.stdout
            .contains(&format!("{n} lines in {}/evidence.log", dir.display())),
        "{}",
        r.stdout
    );

    // The lines as written, oldest rotation first, after absolute path:line:.
    let log = fs::read(dir.join("evidence.log")).unwrap();
    assert_eq!(String::from_utf8(log.clone()).unwrap(), want);
    assert_eq!(
        (mode(&dir), mode(&dir.join("evidence.log"))),
        (0o700, 0o600)
    );
    assert_eq!(mode(&dir.join("manifest.json")), 0o600);

    let m = manifest(&dir);
    assert_eq!(m["schema_version"], 1);
    assert_eq!(m["logward_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        m["query"]["sources"],
        serde_json::json!([client.to_string()])
    );
    assert_eq!(
        (&m["query"]["since"], &m["query"]["vhost"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        assert_eq!(m["host"], host.trim());
    }
    let created = m["created"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");

    // The evidence log's hash, recomputed.
    assert_eq!(m["evidence_log"]["sha256"], sha256_hex(&log));
    assert_eq!(m["evidence_log"]["size"], log.len());
    assert_eq!(m["evidence_log"]["lines"], n);

    // The time range of the lines found.
    let times: Vec<i64> = files
        .iter()
        .flat_map(|f| &f.lines)
        .filter(|l| wanted(l))
        .map(|l| fields(l).unwrap().2)
        .collect();
    assert_eq!(m["found"]["lines"], n);
    assert_eq!(m["found"]["first"], rfc3339(*times.iter().min().unwrap()));
    assert_eq!(m["found"]["last"], rfc3339(*times.iter().max().unwrap()));

    // Every input file, oldest first, its stored bytes hashed (compressed for gzip).
    let listed = m["files"].as_array().unwrap();
    assert_eq!(listed.len(), SET.len());
    for (entry, file) in listed.iter().zip(&files) {
        let path = root.join("logs").join(file.name);
        let stored = fs::read(&path).unwrap();
        assert_eq!(entry["path"], path.display().to_string());
        assert_eq!(entry["sha256"], sha256_hex(&stored), "{}", file.name);
        assert_eq!(entry["size"], stored.len(), "{}", file.name);
        assert_eq!(entry["lines_read"], file.lines.len());
        let matched = file.lines.iter().filter(|l| wanted(l)).count();
        assert_eq!(entry["lines_matched"], matched, "{}", file.name);
        assert_eq!(entry["changed_while_read"], false);
        assert_eq!(entry["error"], serde_json::Value::Null);
        let gz = if file.name.ends_with(".gz") {
            "gzip"
        } else {
            "none"
        };
        assert_eq!(entry["compression"], gz);
    }

    // The audit log records the export and the package's hash.
    let audit = fs::read_to_string(d.join("state/audit.log")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    let note = format!(
        "evidence: {} ({n} lines, evidence.log sha256:{})",
        dir.display(),
        sha256_hex(&log)
    );
    assert_eq!(entry["notes"], serde_json::json!([note]), "{audit}");
    assert_eq!(entry["lines"], n);
}

#[test]
fn the_manifest_records_the_query_and_a_broken_file() {
    let d = Dir::new();
    let files: Vec<LogFile> = rotation_set(&d, 22);
    let shop = |l: &str| fields(l).is_some_and(|(h, _, _)| h == "shop.example.net");
    let times: Vec<i64> = files
        .iter()
        .flat_map(|f| &f.lines)
        .filter(|l| shop(l))
        .map(|l| fields(l).unwrap().2)
        .collect();
    let (lo, hi) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    let (since, until) = (lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3);
    // A broken gzip rotation beside: named with its error, its bytes still hashed.
    let mut broken = fs::read(d.join("logs/access.log.2.gz")).unwrap();
    broken.truncate(broken.len() - 20);
    d.write("logs/access.log.5.gz", &broken);
    let r = d.run(&[
        "search",
        "-s",
        "0.0.0.0/0",
        "-s",
        "::/0",
        "--vhost",
        "shop.example.net",
        "--since",
        &rfc3339(since),
        "--until",
        &rfc3339(until),
        "--evidence",
        "out",
        "-o",
        "json",
        "logs",
    ]);
    assert_eq!(r.code, 2, "a broken file is an error: {}", r.stderr);
    let dir = root(&d).join("out");
    let want = expected(&files, &format!("{}/logs/", root(&d).display()), |l| {
        shop(l) && fields(l).is_some_and(|(_, _, t)| (since..=until).contains(&t))
    });
    assert!(!want.is_empty());
    let log = fs::read_to_string(dir.join("evidence.log")).unwrap();
    // The broken file (a cut copy of .2.gz, so its times interleave with that file's on
    // the timeline): its lines before the break are there, and the others are as expected.
    let from_broken = log
        .lines()
        .filter(|l| l.contains("/logs/access.log.5.gz:"))
        .count();
    assert!(from_broken > 0, "{log}");
    let rest: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("/logs/access.log.5.gz:"))
        .collect();
    assert_eq!(rest, want.lines().collect::<Vec<_>>());
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(summary["schema_version"], 1);
    assert_eq!(summary["lines"], log.lines().count());

    let m = manifest(&dir);
    assert_eq!(
        m["query"],
        serde_json::json!({
            "sources": ["0.0.0.0/0", "::/0"],
            "since": rfc3339(since),
            "until": rfc3339(until),
            "vhost": "shop.example.net",
        })
    );
    let first = m["found"]["first"].as_str().unwrap();
    let last = m["found"]["last"].as_str().unwrap();
    assert!(rfc3339(since).as_str() <= first && last <= rfc3339(until).as_str());
    let oldest = &m["files"][0];
    assert!(
        oldest["path"]
            .as_str()
            .unwrap()
            .ends_with("/logs/access.log.5.gz")
    );
    assert_eq!(oldest["sha256"], sha256_hex(&broken));
    assert_eq!(oldest["size"], broken.len());
    assert!(
        oldest["error"].as_str().unwrap().contains("read failed"),
        "{oldest}"
    );
}

#[test]
fn a_directory_that_is_not_empty_is_refused() {
    let d = Dir::new();
    rotation_set(&d, 23);
    d.write("case/notes.txt", b"earlier work\n");
    let r = d.run(&["search", "-s", "0.0.0.0/0", "--evidence", "case", "logs"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("case: the evidence directory is not empty"),
        "{}",
        r.stderr
    );
    let left: Vec<_> = fs::read_dir(d.join("case")).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing written beside what was there");
    assert_eq!(
        fs::read(d.join("case/notes.txt")).unwrap(),
        b"earlier work\n"
    );
    // Refused before anything was read: no search to record.
    assert!(!d.join("state/audit.log").exists());
    // A file is no directory either, and standard input gives no file to hash.
    let r = d.run(&[
        "search",
        "-s",
        "0.0.0.0/0",
        "--evidence",
        "case/notes.txt",
        "logs",
    ]);
    assert!(
        r.code == 2 && r.stderr.contains("not a directory"),
        "{}",
        r.stderr
    );
    let r = d.run(&["search", "-s", "0.0.0.0/0", "--evidence", "new", "-"]);
    assert!(
        r.code == 2 && r.stderr.contains("standard input"),
        "{}",
        r.stderr
    );
    assert!(!d.join("new").exists());
}

#[test]
fn a_directory_that_is_a_symbolic_link_is_refused() {
    let d = Dir::new();
    rotation_set(&d, 24);
    fs::create_dir(d.join("real")).unwrap();
    std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), d.join("dangling")).unwrap();
    for link in ["link", "dangling"] {
        let r = d.run(&["search", "-s", "0.0.0.0/0", "--evidence", link, "logs"]);
        assert_eq!(r.code, 2, "{link}");
        assert!(
            r.stderr.contains(&format!(
                "{link}: the evidence directory is a symbolic link"
            )),
            "{}",
            r.stderr
        );
    }
    assert_eq!(fs::read_dir(d.join("real")).unwrap().count(), 0);
    assert!(!d.join("elsewhere").exists());
    // The real path is accepted.
    let r = d.run(&["search", "-s", "0.0.0.0/0", "--evidence", "real", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(d.join("real/manifest.json").exists());
}

#[test]
fn a_search_that_finds_nothing_still_writes_its_package() {
    let d = Dir::new();
    rotation_set(&d, 25);
    let r = d.run(&["search", "-s", "192.0.2.200", "--evidence", "none", "logs"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let dir = root(&d).join("none");
    assert_eq!(fs::read(dir.join("evidence.log")).unwrap(), b"");
    let m = manifest(&dir);
    assert_eq!(m["found"]["lines"], 0);
    assert_eq!(m["found"]["first"], serde_json::Value::Null);
    assert_eq!(m["evidence_log"]["sha256"], sha256_hex(b""));
    assert_eq!(m["files"].as_array().unwrap().len(), SET.len());
    assert!(
        r.stdout.starts_with("evidence: 0 lines in "),
        "{}",
        r.stdout
    );
}

#[test]
fn the_package_is_one_timeline_across_rotation_sets() {
    // One client's requests alternate between two sites logged to two files; the package
    // holds them in time order, not file by file.
    let d = Dir::new();
    let line = |t: u32, path: &str| {
        format!(
            "203.0.113.9 - - [01/Dec/2026:10:00:{t:02} +0000] \"GET {path} HTTP/1.1\" 200 5 \"-\" \"x\"\n"
        )
    };
    let a: String = (0..10).step_by(2).map(|t| line(t, "/a")).collect();
    let b: String = (1..10).step_by(2).map(|t| line(t, "/b")).collect();
    d.write("logs/a.access.log", a.as_bytes());
    d.write("logs/b.access.log", b.as_bytes());
    let r = d.run(&["search", "-s", "203.0.113.9", "--evidence", "pkg", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let log = fs::read_to_string(d.join("pkg/evidence.log")).unwrap();
    let seconds: Vec<u32> = log
        .lines()
        .map(|l| {
            let at = l.find(":10:00:").expect("a time") + 7;
            l[at..at + 2].parse().unwrap()
        })
        .collect();
    assert_eq!(seconds, (0..10).collect::<Vec<u32>>(), "{log}");
}

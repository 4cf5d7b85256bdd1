//! Erasure requests end to end: `logward anonymize --source` masks one source in every
//! log (plain and gzip, client, X-Forwarded-For and IPv4-mapped forms), leaves every other
//! line byte-identical, drops the source from the store, and audits without the address.

use std::io::Read;

use crate::util::Dir;

const TARGET: &str = "203.0.113.7";

fn lines() -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..40 {
        let t = format!("22/Nov/2026:10:{:02}:{:02} +0000", i / 60, i % 60);
        let (client, xff) = match i % 8 {
            0 => (TARGET.to_string(), "-".to_string()),
            1 => (format!("::ffff:{TARGET}"), "-".to_string()),
            2 => ("10.0.0.1".to_string(), format!("198.51.100.4, {TARGET}")),
            3 => ("2001:db8:7:1::9".to_string(), "-".to_string()),
            // Near misses stay as they are.
            4 => ("203.0.113.70".to_string(), "-".to_string()),
            5 => ("11.203.0.113".to_string(), "203.0.113.77".to_string()),
            6 => ("2001:db8:8::1".to_string(), "-".to_string()),
            _ => ("198.51.100.9".to_string(), "-".to_string()),
        };
        // The target probes .env so the store flags it first.
        let path = if i % 8 < 2 { "/.env" } else { "/index.html" };
        let t = if i % 8 < 2 {
            "22/Nov/2026:10:00:00 +0000".to_string()
        } else {
            t
        };
        v.push(format!(
            "{client} - - [{t}] \"GET {path} HTTP/1.1\" 404 10 \"-\" \"curl/8\" \"{xff}\"\n"
        ));
    }
    v
}

fn gunzip(bytes: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// Whether a line still holds the target, in any form.
fn holds_target(line: &str) -> bool {
    // A range request leaves neither the member address nor the range's prefix.
    let re = regex::Regex::new(r"(^|[^0-9.])203\.0\.113\.7($|[^0-9])|2001:db8:7:").unwrap();
    re.is_match(line)
}

#[test]
fn erasure_masks_the_source_everywhere_and_nothing_else() {
    let d = Dir::new();
    let all = lines();
    let (first, second) = all.split_at(20);
    d.write("access.log.1", first.concat().as_bytes());
    d.write_gz("access.log.2.gz", second.concat().as_bytes());
    // Put the target in the store first.
    let r = d.run(&[
        "scan",
        "--format",
        "main",
        "access.log.1",
        "access.log.2.gz",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = d.run(&["flagged", "-f", "plain", TARGET]);
    assert_eq!(
        before.stdout.trim(),
        TARGET,
        "the store holds the target before"
    );

    let r = d.run(&[
        "anonymize",
        "--source",
        TARGET,
        "--source",
        "2001:db8:7::/48",
        "access.log.1",
        "access.log.2.gz",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Erasure request for 2 source(s)"),
        "{}",
        r.stdout
    );

    let after1 = std::fs::read_to_string(d.join("access.log.1")).unwrap();
    let after2 = gunzip(&std::fs::read(d.join("access.log.2.gz")).unwrap());
    let after: Vec<&str> = after1
        .split_inclusive('\n')
        .chain(after2.split_inclusive('\n'))
        .collect();
    assert_eq!(after.len(), all.len(), "no line lost");
    let mut changed = 0;
    for (old, new) in all.iter().zip(&after) {
        assert!(!holds_target(new), "still holds the target: {new}");
        if holds_target(old) {
            changed += 1;
            assert_ne!(old, new);
        } else {
            assert_eq!(old, new, "a line without the target changed");
        }
    }
    assert_eq!(changed, 20, "every line of the target was rewritten");
    // The masked client keeps its /24; the near misses keep their bytes.
    assert!(after1.starts_with("203.0.113.0 - - "), "{after1}");
    // The /48 range is hidden as truncation to /48 hides one address: 80 bits above it go.
    assert!(after[3].starts_with(":: - - "), "{}", after[3]);

    let gone = d.run(&["flagged", "-f", "plain", TARGET]);
    assert_eq!(gone.stdout.trim(), "", "the store no longer holds it");
    let search = d.run(&[
        "search",
        "--source",
        TARGET,
        "access.log.1",
        "access.log.2.gz",
    ]);
    assert_eq!(search.code, 1, "nothing left to find: {}", search.stdout);

    let audit = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    let erase = audit
        .lines()
        .find(|l| l.contains("\"command\":\"erase\""))
        .expect("an erase entry");
    assert!(
        !erase.contains(TARGET) && !erase.contains("2001:db8:7"),
        "{erase}"
    );
    assert!(erase.contains("hmac-sha256:"), "{erase}");
    assert!(erase.contains("access.log.2.gz"), "{erase}");
}

#[test]
fn erasure_leaves_files_without_the_source_untouched() {
    let d = Dir::new();
    let path = d.write(
        "access.log.1",
        b"198.51.100.9 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n",
    );
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(&path).unwrap().ino();
    let r = d.run(&["anonymize", "--source", TARGET, "access.log.1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::metadata(&path).unwrap().ino(),
        ino,
        "not rewritten"
    );
    let bad = d.run(&["anonymize", "--source", "not-an-ip", "access.log.1"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--source"), "{}", bad.stderr);
}

/// Every textual form of `addr` a byte search should look for.
fn forms(addr: &str) -> Vec<String> {
    let ip: std::net::IpAddr = addr.parse().unwrap();
    let mut v = vec![addr.to_string(), ip.to_string()];
    if let std::net::IpAddr::V4(v4) = ip {
        v.push(format!("::ffff:{v4}"));
    }
    v
}

fn files_holding(dir: &std::path::Path, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if !p.is_file() {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        for n in needles {
            if memchr::memmem::find(&bytes, n.as_bytes()).is_some() {
                found.push(format!("{} holds {n}", p.display()));
            }
        }
    }
    found
}

/// Regression: after `anonymize --source`, the store's tables no longer held the address,
/// but `grep -a` found it in `logward.db` (free pages, secure_delete off) and in the samples
/// of other sources that quoted it in a referer or an X-Forwarded-For list.
#[test]
fn erasure_leaves_no_byte_of_the_address_in_the_state_directory() {
    let d = Dir::new();
    let mut log = String::new();
    for i in 0..12 {
        // The target is flagged itself...
        log.push_str(&format!(
            "{TARGET} - - [22/Nov/2026:10:00:{i:02} +0000] \"GET /.env HTTP/1.1\" 404 1 \"-\" \"curl/8\" \"-\"\n"
        ));
        // ...and quoted in the samples of another flagged source.
        log.push_str(&format!(
            "198.51.100.44 - - [22/Nov/2026:10:00:{i:02} +0000] \"GET /.git/config?from={TARGET} HTTP/1.1\" 404 1 \"http://{TARGET}/\" \"curl/8\" \"{TARGET}, 198.51.100.44\"\n"
        ));
    }
    d.write("logs/access.log.1", log.as_bytes());
    let r = d.run(&["scan", "-f", "main", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let state = d.join("state");
    assert!(
        !files_holding(&state, &forms(TARGET)).is_empty(),
        "the test needs the address stored"
    );
    let r = d.run(&["anonymize", "-f", "main", "--source", TARGET, "logs"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("masked the sources in 1 entry of other sources"),
        "{}",
        r.stderr
    );
    let left = files_holding(&state, &forms(TARGET));
    assert!(left.is_empty(), "{left:#?}");
    let left = files_holding(&d.join("logs"), &forms(TARGET));
    assert!(left.is_empty(), "{left:#?}");
    // The other source is still flagged, its samples masked.
    let r = d.run(&["flagged", "-o", "plain"]);
    assert_eq!(r.stdout.trim(), "198.51.100.44", "{}", r.stderr);
}

/// Regression: an erasure that skipped the live log exited 0 while lines with the address
/// remained there. It now lists what is left, exits 1, and a later run after rotation
/// completes it.
#[test]
fn an_incomplete_erasure_says_so_and_a_later_run_completes_it() {
    let d = Dir::new();
    let line = |ip: &str| {
        format!("{ip} - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"curl/8\"\n")
    };
    d.write("logs/access.log.1", line(TARGET).repeat(3).as_bytes());
    d.write(
        "logs/access.log",
        format!("{}{}", line(TARGET).repeat(50), line("198.51.100.9")).as_bytes(),
    );
    let r = d.run(&["anonymize", "--source", TARGET, "logs"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("erasure incomplete")
            && r.stderr
                .contains("access.log: 50 lines still hold the source")
            && r.stderr.contains("--include-active"),
        "{}",
        r.stderr
    );
    let audit = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    assert!(audit.contains("\"incomplete\""), "{audit}");
    // Rotation: the live log becomes access.log.1; the same erasure now completes.
    std::fs::rename(d.join("logs/access.log.1"), d.join("logs/access.log.2")).unwrap();
    std::fs::rename(d.join("logs/access.log"), d.join("logs/access.log.1")).unwrap();
    let r = d.run(&["anonymize", "--source", TARGET, "logs"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let audit = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    assert!(
        audit.lines().last().unwrap().contains("\"complete\""),
        "{audit}"
    );
}

/// Regression: a `search --source IP` (docs/anonymization.md suggests searching before an erasure)
/// left the address in clear in the audit log. Every entry now holds only keyed hashes,
/// and `audit verify` finds the entries of an address for an auditor who knows it.
#[test]
fn the_audit_log_holds_no_address_and_verify_finds_the_entries() {
    let d = Dir::new();
    let line = format!(
        "{TARGET} - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"curl/8\"\n"
    );
    d.write("logs/access.log.1", line.repeat(3).as_bytes());
    let r = d.run(&["search", "--source", TARGET, "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = d.run(&["anonymize", "--source", &format!("::ffff:{TARGET}"), "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let audit = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    assert_eq!(audit.lines().count(), 2, "{audit}");
    assert!(!audit.contains(TARGET), "{audit}");
    assert!(audit.contains("hmac-sha256:"), "{audit}");
    assert!(
        !d.join("state/audit.key").exists(),
        "the key is beside the log"
    );
    let r = d.run(&["audit", "verify", "--source", TARGET]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert!(
        r.stdout.contains(" search ") && r.stdout.contains(" erase "),
        "{}",
        r.stdout
    );
    let r = d.run(&["audit", "verify", "--source", "198.51.100.250"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
}

/// The worst case of an erasure request, as the privacy issue sets it: the address is a
/// flagged source and is quoted in another source's samples, was searched for before, a
/// `watch` runs on the same state directory, and plain and gzip logs hold it as client, in
/// X-Forwarded-For, in the request and in the referer, as IPv4, IPv4-mapped, and IPv6 both
/// compressed and expanded. Afterwards no file of the state directory and no log holds any
/// textual form of it, and every other line is byte-identical.
#[test]
fn erasure_worst_case_leaves_no_textual_form_anywhere() {
    const V6: &str = "2001:db8:7::9";
    const V6_LONG: &str = "2001:0db8:0007:0000:0000:0000:0000:0009";
    let d = Dir::new();
    let t = |s: u32| format!("22/Nov/2026:10:{:02}:{:02} +0000", s / 60, s % 60);
    let mut lines = Vec::new();
    for i in 0..12 {
        // The target floods .env: flagged. Another source quotes it everywhere.
        lines.push(format!(
            "{TARGET} - - [{}] \"GET /.env HTTP/1.1\" 404 1 \"-\" \"curl/8\" \"-\"",
            t(i)
        ));
        lines.push(format!(
            "198.51.100.44 - - [{}] \"GET /.git/config?from={TARGET}&v6={V6} HTTP/1.1\" 404 1 \"http://{TARGET}/x?h={V6_LONG}\" \"curl/8\" \"{TARGET}, ::ffff:{TARGET}, {V6}\"",
            t(i)
        ));
    }
    for i in 20..30 {
        lines.push(format!(
            "::ffff:{TARGET} - - [{}] \"GET /a HTTP/1.1\" 200 1 \"-\" \"curl/8\" \"-\"",
            t(i)
        ));
        lines.push(format!(
            "{V6} - - [{}] \"GET /b HTTP/1.1\" 200 1 \"-\" \"curl/8\" \"{V6_LONG}\"",
            t(i)
        ));
        lines.push(format!(
            "{V6_LONG} - - [{}] \"GET /c HTTP/1.1\" 200 1 \"-\" \"curl/8\" \"-\"",
            t(i)
        ));
        // Lines without the source stay byte-identical.
        lines.push(format!("198.51.100.9 - - [{}] \"GET /d?x=203.0.113.80 HTTP/1.1\" 200 1 \"-\" \"Mozilla/5.0 Chrome/131.0.0.0\" \"-\"", t(i)));
    }
    let text = lines.join("\n") + "\n";
    d.write("logs/access.log.1", text.as_bytes());
    d.write_gz("logs/access.log.2.gz", text.as_bytes());
    let r = d.run(&["scan", "-f", "main", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = d.run(&[
        "search", "-f", "main", "--source", TARGET, "--count", "logs",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A running watch on the same state directory.
    let live = d.write("live/access.log", b"");
    let mut watch = d
        .command()
        .args(["watch", "--interval", "100ms", "-f", "main"])
        .arg(&live)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));

    let forms: Vec<String> = {
        let mut v = forms(TARGET);
        v.extend([
            V6.to_string(),
            V6_LONG.to_string(),
            "2001:db8:7:0:0:0:0:9".to_string(),
        ]);
        v
    };
    let state = d.join("state");
    assert!(
        !files_holding(&state, &forms).is_empty(),
        "the store must hold the source first"
    );
    let r = d.run(&[
        "anonymize",
        "-f",
        "main",
        "--source",
        TARGET,
        "--source",
        V6,
        "logs",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let left = files_holding(&state, &forms);
    assert!(left.is_empty(), "with watch running: {left:#?}");
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(watch.id() as i32, libc::SIGTERM) };
    watch.wait().unwrap();
    let left = files_holding(&state, &forms);
    assert!(left.is_empty(), "after watch stopped: {left:#?}");
    for name in ["logs/access.log.1", "logs/access.log.2.gz"] {
        let new = crate::util::read_plain(&d.join(name));
        for f in &forms {
            assert!(
                memchr::memmem::find(&new, f.as_bytes()).is_none(),
                "{name} holds {f}"
            );
        }
        let new_text = String::from_utf8(new).unwrap();
        assert_eq!(new_text.lines().count(), lines.len(), "{name}: line count");
        for (old, new) in lines.iter().zip(new_text.lines()) {
            if !old.contains(TARGET) && !old.contains(V6) && !old.contains(V6_LONG) {
                assert_eq!(old, new, "{name}: a line without the source changed");
            }
        }
    }
}

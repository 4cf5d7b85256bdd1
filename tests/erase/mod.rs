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
    assert!(erase.contains("hmac:"), "{erase}");
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

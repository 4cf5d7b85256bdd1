//! The shipped `sample-logs/`: `scan` flags exactly the attackers their truth files list,
//! and `regenerate.sh` makes every file again byte for byte.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipnet::IpNet;

use crate::util::Dir;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-logs")
}

fn as_net(s: &str) -> IpNet {
    s.parse::<IpNet>()
        .unwrap_or_else(|_| IpNet::from(s.parse::<IpAddr>().unwrap()))
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Each truth file's attackers: source and the rule it must trip.
fn truth() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for name in ["access.log.truth", "vhosts_access.log.truth"] {
        let text = std::fs::read_to_string(samples().join(name)).unwrap();
        let t: serde_json::Value = serde_json::from_str(&text).unwrap();
        let attackers = t["attackers"].as_array().unwrap();
        assert!(!attackers.is_empty(), "{name} lists no attacker");
        for a in attackers {
            all.push((
                a["source"].as_str().unwrap().to_string(),
                a["rule"].as_str().unwrap().to_string(),
            ));
        }
    }
    all
}

#[test]
fn scan_of_the_samples_flags_exactly_the_truth_files_attackers() {
    let d = Dir::new();
    let dir = samples();
    let r = d.run(&["scan", "--no-store", "-o", "json", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Per flagged source, the union of its rules over its episodes.
    let mut flagged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in r.json()["flagged"].as_array().unwrap() {
        let rules = flagged
            .entry(f["source"].as_str().unwrap().to_string())
            .or_default();
        for rule in f["rules"].as_array().unwrap() {
            rules.push(rule.as_str().unwrap().to_string());
        }
    }
    let truth = truth();
    for (source, rule) in &truth {
        let want = as_net(source);
        let hit = flagged.iter().find(|(s, _)| overlap(&as_net(s), &want));
        let (_, rules) = hit.unwrap_or_else(|| panic!("{source} ({rule}) not flagged"));
        assert!(rules.contains(rule), "{source}: {rules:?} lacks {rule}");
    }
    for source in flagged.keys() {
        let net = as_net(source);
        assert!(
            truth.iter().any(|(s, _)| overlap(&as_net(s), &net)),
            "{source} is flagged but in no truth file"
        );
    }
}

/// The genlog example `cargo test` builds beside the test binaries.
fn genlog() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let genlog = profile_dir.join("examples/genlog");
    assert!(
        genlog.is_file(),
        "{} is missing: `cargo test` builds the examples",
        genlog.display()
    );
    genlog
}

#[test]
fn regenerate_script_makes_every_sample_byte_for_byte() {
    let d = Dir::new();
    let out = d.join("sample-logs");
    std::fs::create_dir(&out).unwrap();
    let status = Command::new("bash")
        .arg(samples().join("regenerate.sh"))
        .env("GENLOG", genlog())
        .env("LOGWARD", env!("CARGO_BIN_EXE_logward"))
        .env("OUT", &out)
        .status()
        .unwrap();
    assert!(status.success(), "regenerate.sh failed");
    let mut made: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    made.sort();
    assert!(made.len() >= 8, "only {made:?}");
    for name in &made {
        let shipped = std::fs::read(samples().join(name))
            .unwrap_or_else(|e| panic!("{name} was made but is not shipped: {e}"));
        let again = std::fs::read(out.join(name)).unwrap();
        assert!(
            shipped == again,
            "{name} differs from what regenerate.sh makes"
        );
    }
    // Every shipped sample but the docs and the script itself is made by the script.
    for entry in std::fs::read_dir(samples()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "README.md" && name != "regenerate.sh" {
            assert!(
                made.contains(&name),
                "{name} is shipped but not made by regenerate.sh"
            );
        }
    }
}

#[test]
fn scan_counts_what_the_truth_files_say_was_written() {
    let d = Dir::new();
    for (log, truth) in [
        ("access.log", "access.log.truth"),
        ("vhosts_access.log", "vhosts_access.log.truth"),
    ] {
        let t: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(samples().join(truth)).unwrap()).unwrap();
        let path = samples().join(log);
        let r = d.run(&["scan", "--no-store", "-o", "json", path.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let j = r.json();
        let unreadable = t["unreadable"].as_u64().unwrap();
        assert_eq!(j["lines"], t["lines"], "{log}");
        assert_eq!(
            j["parsed"].as_u64().unwrap(),
            t["lines"].as_u64().unwrap() - unreadable,
            "{log}"
        );
        assert_eq!(
            j["malformed"].as_u64().unwrap() + j["empty"].as_u64().unwrap(),
            unreadable,
            "{log}"
        );
    }
}

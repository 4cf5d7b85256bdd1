//! The README's quick start and its three examples, run in order as the README writes
//! them, as root and as an ordinary user: the binary stands for `logward` and
//! `cargo run --release --`, and `/var/log`, `/run` move under a temporary root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use logward::generate::{GenConfig, generate};

use crate::util::{Dir, Run, recent_day, run_with_deadline};

/// The shell commands of the first ```sh block after `heading`, comments dropped.
fn commands_after(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README: no {heading:?}"));
    let rest = &readme[start..];
    let open = rest.find("```sh\n").unwrap() + 6;
    let close = open + rest[open..].find("```").unwrap();
    rest[open..close]
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The commands a newcomer runs: the quick start's first line, then each example's.
fn readme_commands() -> (String, Vec<String>) {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let quick = commands_after(&readme, "## Quick start");
    assert!(quick[0].starts_with("cargo run --release -- "), "{quick:?}");
    let examples_at = readme.find("## Three examples").unwrap();
    let examples = &readme[examples_at
        ..readme[examples_at..]
            .find("\n## ")
            .map_or(readme.len(), |e| e + examples_at)];
    let mut cmds = Vec::new();
    let mut rest = examples;
    while let Some(i) = rest.find("```sh\n") {
        let block = &rest[i..];
        cmds.push(commands_after(block, "```sh").concat());
        rest = &block[6..];
        rest = &rest[rest.find("```").unwrap() + 3..];
    }
    assert_eq!(cmds.len(), 3, "three examples: {cmds:?}");
    (quick[0].clone(), cmds)
}

/// Runs one README command line through `sh -c`, with the paths moved under `root`.
fn run_line(root: &Path, line: &str, user: Option<&str>, env: &[(&str, PathBuf)]) -> Run {
    let bin = env!("CARGO_BIN_EXE_logward");
    let manifest = env!("CARGO_MANIFEST_DIR");
    let line = format!(" {line}")
        .replace(" cargo run --release -- ", " logward ")
        .replace(" sample-logs/", &format!(" {manifest}/sample-logs/"))
        .replace("/var/log/", &format!("{}/var/log/", root.display()))
        .replace("/run/", &format!("{}/run/", root.display()))
        // The firewall itself is checked (`nft -c`), never changed.
        .replace("nft -f", "nft -c -f")
        .replace(" logward ", &format!(" {bin} "));
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "env"]);
            for (k, v) in env {
                c.arg(format!("{k}={}", v.display()));
            }
            c.args(["LOGWARD_CONFIG=", "sh", "-c", &line]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", &line]).env("LOGWARD_CONFIG", "");
            for (k, v) in env {
                c.env(k, v);
            }
            c
        }
    };
    cmd.current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_with_deadline(cmd, 300)
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

/// The system store, as the quick start must leave it: its bytes, or absent.
fn system_store() -> Option<Vec<u8>> {
    fs::read("/var/lib/logward/logward.db").ok()
}

fn run_readme(user: Option<&str>) {
    let _system = crate::util::lock_system_state();
    let (quick, examples) = readme_commands();
    let d = Dir::new();
    let root = d.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    // Yesterday's rotated log with attacks (active bans), older rotations past the window.
    d.write("var/log/nginx/access.log", &recent_day(1, 0, 300, false));
    let fresh = recent_day(2, 0, 3000, true);
    d.write("var/log/nginx/access.log.1", &fresh);
    for n in 2..6 {
        d.write_gz(
            &format!("var/log/nginx/access.log.{n}.gz"),
            &recent_day(n, 8 + n as i64, 500, false),
        );
    }
    d.write(
        "var/log/apache2/access.log.1",
        &recent_day(9, 10, 400, false),
    );
    fs::create_dir_all(d.join("run")).unwrap();
    fs::create_dir_all(d.join("home")).unwrap();
    if let Some(u) = user {
        // The user's own files, group and all, as a user's logs are.
        let status = Command::new("chown")
            .args(["-R", &format!("{u}:")])
            .arg(root)
            .status()
            .unwrap();
        assert!(status.success());
    }

    // The quick start: as root it must not write the system store.
    let before = system_store();
    let r = run_line(root, &quick, user, &[("HOME", d.join("home"))]);
    assert_eq!(r.code, 0, "{quick}: {}", r.stderr);
    // Each sample attacker attacks twice, days apart: two episodes each.
    assert!(
        r.stdout.contains("Flagged sources (19, 38 episodes)"),
        "{}",
        r.stdout
    );
    assert_eq!(
        system_store(),
        before,
        "the quick start wrote the system store"
    );
    assert!(
        !d.join("home/.local/state/logward").exists(),
        "the quick start wrote a store"
    );

    // The examples share one state directory, as on a real host.
    let env = [
        ("HOME", d.join("home")),
        ("LOGWARD_STORE", d.join("state/logward.db")),
    ];
    let r = run_line(root, &examples[0], user, &env);
    assert_eq!(r.code, 0, "{}: {}", examples[0], r.stderr);
    assert!(r.stdout.contains("Flagged sources (19)"), "{}", r.stdout);

    let r = run_line(root, &examples[1], user, &env);
    // nft needs root (and a kernel that lets this sandbox talk netlink) to check a file.
    let nft_missing = r.stderr.contains("nft: not found")
        || r.stderr.contains("Operation not permitted")
        || r.stderr.contains("Permission denied");
    assert!(r.code == 0 || nft_missing, "{}: {}", examples[1], r.stderr);
    let exported = fs::read_to_string(d.join("run/logward.nft")).unwrap();
    assert!(
        exported.contains("add element inet logward flagged_v4 { 198.51.100.23 timeout"),
        "yesterday's attackers are not banned:\n{exported}"
    );

    let live = fs::read(d.join("var/log/nginx/access.log")).unwrap();
    let r = run_line(root, &examples[2], user, &env);
    assert_eq!(r.code, 0, "{}: {}", examples[2], r.stderr);
    assert_eq!(fs::read(d.join("var/log/nginx/access.log")).unwrap(), live);
    assert_eq!(
        fs::read(d.join("var/log/nginx/access.log.1")).unwrap(),
        fresh,
        "inside the window"
    );
    let old = fs::read(d.join("var/log/apache2/access.log.1")).unwrap();
    let first = String::from_utf8_lossy(&old)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let client = first.split(' ').next().unwrap();
    assert!(
        client.ends_with(".0") || client.contains("::"),
        "the apache log past the window is not masked: {first}"
    );
    assert!(r.stdout.contains("rewritten"), "{}", r.stdout);
}

#[test]
fn quick_start_and_examples_as_this_user() {
    run_readme(None);
}

/// As an ordinary user with no home of its own (`nobody`), when the tests run as root.
#[test]
fn quick_start_and_examples_as_an_ordinary_user() {
    if !is_root() {
        eprintln!("the ordinary-user run needs root to switch users; this run is that user");
        run_readme(None);
        return;
    }
    run_readme(Some("nobody"));
}

/// The documentation ranges (RFC 5737, RFC 3849): no real host has these addresses.
fn in_documentation_ranges(source: &str) -> bool {
    let nets: Vec<ipnet::IpNet> = [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
    ]
    .iter()
    .map(|n| n.parse().unwrap())
    .collect();
    let net: ipnet::IpNet = source
        .parse()
        .or_else(|_| source.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .unwrap_or_else(|_| panic!("not an address: {source}"));
    nets.iter().any(|n| n.contains(&net))
}

/// No sample can flag a real address: every attacker the generator writes, and every
/// source a scan of `sample-logs/` flags, is in a documentation range.
#[test]
fn samples_flag_only_documentation_addresses() {
    for seed in 1..20 {
        let cfg = GenConfig {
            seed,
            lines: 2000,
            attacks: true,
            ..GenConfig::default()
        };
        let truth = generate(&cfg, &mut std::io::sink()).unwrap();
        for a in &truth.attackers {
            assert!(
                in_documentation_ranges(&a.source),
                "seed {seed}: {}",
                a.source
            );
        }
    }
    let d = Dir::new();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-logs");
    let r = d.run(&[
        "scan",
        "--no-store",
        "-o",
        "json",
        samples.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let flagged = r.json()["flagged"].as_array().unwrap().clone();
    let mut sources: Vec<&str> = flagged
        .iter()
        .map(|f| f["source"].as_str().unwrap())
        .collect();
    sources.dedup();
    assert_eq!(sources.len(), 19, "{flagged:?}");
    for f in flagged {
        let source = f["source"].as_str().unwrap();
        assert!(in_documentation_ranges(source), "{source}");
    }
}

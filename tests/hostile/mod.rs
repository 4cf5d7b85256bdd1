//! Hostile directories and fields: logward runs as root over directories a web server's
//! user can write, and reads fields any client controls. Each test reproduces an attack
//! found on an earlier version; those that need a second user run as root with `nobody`
//! standing in for the web server's user.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use crate::util::Dir;

const LINE: &str =
    "198.51.100.9 - - [01/Jan/2025:10:00:01 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"curl\"\n";

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

/// Runs `args` as `nobody` (for planting links, as the web server's user would).
fn as_nobody(d: &Dir, program: &str, args: &[&str]) {
    let status = Command::new("runuser")
        .args(["-u", "nobody", "--", program])
        .args(args)
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?} as nobody");
}

/// A log directory the web server's user owns (when root), as `/var/log/nginx` often is.
fn server_owned_logs(d: &Dir) -> std::path::PathBuf {
    let logs = d.join("logs");
    fs::create_dir_all(&logs).unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        let status = Command::new("chown")
            .args(["nobody:"])
            .arg(&logs)
            .status()
            .unwrap();
        assert!(status.success());
    }
    logs
}

fn plant_symlink(d: &Dir, target: &Path, link: &str) {
    if is_root() {
        as_nobody(d, "ln", &["-s", target.to_str().unwrap(), link]);
    } else {
        symlink(target, d.join(link)).unwrap();
    }
}

/// How many files `scan` reads under `dir` (a run that must end within a minute).
fn files_scanned(d: &Dir, dir: &str) -> usize {
    let r = d.run_within(60, &["scan", "--no-store", "-o", "json", dir]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()["files"].as_array().unwrap().len()
}

/// Regression: the walk followed a symlinked directory, and `anonymize` rewrote a file
/// outside the directory it was given.
#[test]
fn a_directory_symlink_never_leads_a_rewrite_out_of_the_given_directory() {
    let d = Dir::new();
    server_owned_logs(&d);
    let victim = d.write("victim/access.log.1", LINE.repeat(5).as_bytes());
    plant_symlink(&d, &d.join("victim"), "logs/sub");
    d.write("logs/access.log.1", LINE.repeat(3).as_bytes());
    let r = d.run_within(60, &["anonymize", "--older-than", "1d", "logs"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        fs::read(&victim).unwrap(),
        LINE.repeat(5).as_bytes(),
        "rewrote outside"
    );
    assert!(
        r.stderr.contains("logs/sub") && r.stderr.contains("outside the directories given"),
        "{}",
        r.stderr
    );
    // The file inside the directory is still done.
    let inside = fs::read_to_string(d.join("logs/access.log.1")).unwrap();
    assert!(inside.starts_with("198.51.100.0 "), "{inside}");

    // A link to `/` is not walked either.
    plant_symlink(&d, Path::new("/"), "logs/root");
    assert_eq!(files_scanned(&d, "logs"), 1);
}

/// Regression: three `ln -s . loopN` made `scan` grow to 916 MB and never end.
#[test]
fn symlink_loops_are_entered_once() {
    let d = Dir::new();
    server_owned_logs(&d);
    d.write("logs/access.log.1", LINE.as_bytes());
    for n in 1..=3 {
        plant_symlink(&d, Path::new("."), &format!("logs/loop{n}"));
    }
    assert_eq!(files_scanned(&d, "logs"), 1);
    let r = d.run_within(60, &["anonymize", "--older-than", "1d", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// Regression: a FIFO (named, matched by a glob, or found by the walk) hung `scan` and
/// `anonymize` forever while they held the lock.
#[test]
fn a_fifo_is_refused_and_never_hangs_a_run() {
    let d = Dir::new();
    d.write("logs/access.log.1", LINE.as_bytes());
    mkfifo(&d.join("logs/access.log.2"));
    for args in [
        &["scan", "--no-store", "logs/access.log.2"][..],
        &["scan", "--no-store", "logs/access.log.*"][..],
        &["anonymize", "--older-than", "1d", "logs/access.log.2"][..],
        &["anonymize", "--older-than", "1d", "logs/access.log.*"][..],
        &["search", "--source", "198.51.100.9", "logs/access.log.2"][..],
    ] {
        let r = d.run_within(30, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("access.log.2") && r.stderr.contains("FIFO"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // Found by the walk: noted, and the other files are done.
    let r = d.run_within(30, &["scan", "--no-store", "-o", "json", "logs"]);
    assert_eq!(
        r.json()["files"].as_array().unwrap().len(),
        1,
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
}

/// The shipped oneshot units stop a run that hangs, so the timer fires again.
#[test]
fn the_oneshot_units_have_a_start_timeout() {
    let unit = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/logward-anonymize.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=oneshot"));
    assert!(
        unit.lines()
            .any(|l| l.starts_with("TimeoutStartSec=") && !l.ends_with("infinity")),
        "no start timeout"
    );
}

/// Regression: a log file named with escape sequences reached the terminal raw through
/// `scan` and `anonymize`.
#[test]
fn file_names_never_reach_the_terminal_raw() {
    let d = Dir::new();
    let evil = "\u{1b}]0;x\u{7}\u{1b}[2J\u{202e}evil.access.log";
    d.write(
        &format!("logs/{evil}"),
        format!("{LINE}not a log line\n").as_bytes(),
    );
    d.write(&format!("logs/{evil}.1"), LINE.as_bytes());
    for args in [
        &["scan", "--no-store", "logs"][..],
        &["anonymize", "--older-than", "1d", "logs"][..],
        &["anonymize", "--older-than", "1d", "--dry-run", "logs"][..],
    ] {
        let r = d.run_within(30, args);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains("evil.access.log"), "{args:?}: {all}");
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}') && !all.contains('\u{202e}'),
            "{args:?}: raw control characters in {all:?}"
        );
        assert!(all.contains("\\x1b]0;x\\x07"), "{args:?}: {all:?}");
    }
}

/// Regression: where the client field is a list, its first public element was taken, so
/// any client chose who was flagged; in auto mode a three-element list was read as a
/// vhost and a list, and `8.8.8.8` was flagged.
#[test]
fn clients_never_choose_who_is_flagged() {
    let sqli = |list: &str| {
        (0..12)
            .map(|i| {
                format!("{list} - - [01/Jan/2025:10:00:{i:02} +0000] \"GET /?id=1%20UNION%20SELECT%20{i} HTTP/1.1\" 404 5 \"-\" \"sqlmap/1.7\"\n")
            })
            .collect::<String>()
    };
    let flagged = |d: &Dir, args: &[&str]| -> Vec<String> {
        let r = d.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r.json()["flagged"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["source"].as_str().unwrap().to_string())
            .collect()
    };
    let d = Dir::new();
    d.write("two.log", sqli("1.1.1.1, 203.0.113.66").as_bytes());
    d.write(
        "three.log",
        sqli("1.1.1.1, 8.8.8.8, 203.0.113.66").as_bytes(),
    );
    d.write(
        "proxied.log",
        sqli("1.1.1.1, 198.51.100.7, 203.0.113.66").as_bytes(),
    );
    for args in [
        &[
            "scan",
            "--no-store",
            "-o",
            "json",
            "-f",
            "combined",
            "two.log",
        ][..],
        &["scan", "--no-store", "-o", "json", "two.log"][..],
        &["scan", "--no-store", "-o", "json", "three.log"][..],
    ] {
        assert_eq!(flagged(&d, args), ["203.0.113.66"], "{args:?}");
    }
    // Behind a trusted proxy, the address it saw is the client.
    assert_eq!(
        flagged(
            &d,
            &[
                "scan",
                "--no-store",
                "-o",
                "json",
                "--trusted-proxy",
                "203.0.113.0/24",
                "proxied.log"
            ]
        ),
        ["198.51.100.7"]
    );
    let r = d.run(&["scan", "--no-store", "-o", "json", "three.log"]);
    assert_eq!(r.json()["files"][0]["format"], "combined", "{}", r.stdout);
}

/// A format that logs the peer and X-Forwarded-For: the peer is the client unless it is
/// a trusted proxy.
#[test]
fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
    let d = Dir::new();
    let line = |i: u32| {
        format!(
            "10.0.0.5 - - [01/Jan/2025:10:00:{i:02} +0000] \"GET /?id=1%20UNION%20SELECT%20{i} HTTP/1.1\" 404 5 \"-\" \"sqlmap/1.7\" \"1.1.1.1, 198.51.100.7\"\n"
        )
    };
    d.write("main.log", (0..12).map(line).collect::<String>().as_bytes());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "scan",
            "--no-store",
            "--no-default-allow",
            "-o",
            "json",
            "-f",
            "main",
        ];
        args.extend_from_slice(extra);
        args.push("main.log");
        let r = d.run(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()["flagged"][0]["source"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(run(&[]), "10.0.0.5");
    assert_eq!(run(&["--trusted-proxy", "10.0.0.0/8"]), "198.51.100.7");
}

/// Peak resident memory of a run, in KiB, measured by GNU time.
fn peak_kib(d: &Dir, args: &[&str]) -> (u64, String) {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "peak=%M"])
        .arg(env!("CARGO_BIN_EXE_logward"))
        .args(args)
        .current_dir(d.path())
        .env("LOGWARD_CONFIG", "")
        .env("LOGWARD_STORE", d.join("state/logward.db"))
        .env("LOGWARD_AUDIT_KEY", d.join("keys/audit.key"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let r = crate::util::run_with_deadline(cmd, 120);
    let peak = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak in {}", r.stderr));
    (peak, r.stderr)
}

/// Regression: a gzip file that inflates to one line of hundreds of megabytes peaked at
/// 212-221 MB in `scan` (the format sample gathered the same line a megabyte at a time),
/// above the 64 MiB the code promised. A line over 1 MiB is now counted as malformed and
/// skipped while reading.
#[test]
#[ignore = "needs GNU time at /usr/bin/time (.ci/run installs it)"]
fn one_huge_line_costs_a_bounded_amount_of_memory() {
    let d = Dir::new();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let chunk = vec![b'a'; 1 << 20];
    // 72 MiB: more than the 64 MiB budget, so holding the line whole fails the test.
    for _ in 0..72 {
        std::io::Write::write_all(&mut enc, &chunk).unwrap();
    }
    std::io::Write::write_all(&mut enc, format!("\n{LINE}").as_bytes()).unwrap();
    d.write("logs/access.log.1.gz", &enc.finish().unwrap());
    for args in [
        &["scan", "--no-store", "logs"][..],
        &["scan", "logs"][..],
        &["search", "--source", "198.51.100.9", "logs"][..],
        &["anonymize", "--dry-run", "logs"][..],
    ] {
        let (peak, stderr) = peak_kib(&d, args);
        assert!(peak < 64 * 1024, "{args:?}: peak {peak} KiB\n{stderr}");
        if args[0] != "anonymize" {
            assert!(stderr.contains("too long"), "{args:?}: {stderr}");
        }
    }
}

/// Regression: an existing state directory was used whatever its owner and mode, and a
/// dangling symbolic link at the store path made a root run create a database at its
/// target.
#[test]
fn a_state_directory_others_can_change_is_refused() {
    let d = Dir::new();
    d.write("logs/access.log.1", LINE.as_bytes());
    let store = d.join("state/logward.db");
    fs::create_dir_all(d.join("state")).unwrap();

    fs::set_permissions(d.join("state"), fs::Permissions::from_mode(0o777)).unwrap();
    for args in [
        &["scan", "logs"][..],
        &["anonymize", "--older-than", "1d", "logs"][..],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("writable by group or others") && r.stderr.contains("chmod 700"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(
        fs::read(d.join("logs/access.log.1")).unwrap(),
        LINE.as_bytes(),
        "nothing is done before the state directory is checked"
    );
    fs::set_permissions(d.join("state"), fs::Permissions::from_mode(0o700)).unwrap();

    // A dangling link where the store would be.
    symlink(d.join("elsewhere.db"), &store).unwrap();
    let r = d.run(&["scan", "logs"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert!(
        !d.join("elsewhere.db").exists(),
        "a database was created at the link's target"
    );
    fs::remove_file(&store).unwrap();

    if is_root() {
        let status = Command::new("chown")
            .args(["nobody:"])
            .arg(d.join("state"))
            .status()
            .unwrap();
        assert!(status.success());
        let r = d.run(&["scan", "logs"]);
        assert_eq!(r.code, 2, "{}", r.stdout);
        assert!(
            r.stderr.contains("belongs to uid 65534") && r.stderr.contains("chown 0"),
            "{}",
            r.stderr
        );
    }
}

/// The ledger and the positions are written through one writer: mode 0600, no temporary
/// left behind, a fresh name created with O_EXCL (a planted link is removed, never
/// followed).
#[test]
fn state_files_are_private_and_leave_no_temporary() {
    let d = Dir::new();
    d.write("logs/access.log.1", LINE.as_bytes());
    let r = d.run(&["anonymize", "--older-than", "1d", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut names = Vec::new();
    for entry in fs::read_dir(d.join("state")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        assert!(!name.contains("tmp"), "a temporary was left: {name}");
        if meta.is_file() {
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "{name} is readable by others"
            );
        }
        names.push(name);
    }
    assert!(names.iter().any(|n| n.contains("ledger")), "{names:?}");
}

/// A line over the longest line read whole is copied through byte for byte by
/// `anonymize` (never held whole); the lines around it are masked and the report says
/// how many such lines were kept.
#[test]
fn anonymize_keeps_an_over_long_line_byte_identical() {
    let d = Dir::new();
    let mut data = LINE.repeat(3).into_bytes();
    let mut long = b"198.51.100.9 - - [01/Jan/2025:10:00:01 +0000] \"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'x', 9 << 20));
    long.extend_from_slice(b" HTTP/1.1\" 200 5 \"-\" \"curl\"\n");
    data.extend_from_slice(&long);
    data.extend_from_slice(LINE.repeat(2).as_bytes());
    let plain = d.write("logs/access.log.1", &data);
    let gz = d.write_gz("logs/access.log.2.gz", &data);
    let r = d.run_within(120, &["anonymize", "-o", "json", "logs"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    for f in j["files"].as_array().unwrap() {
        assert_eq!(f["status"], "rewritten", "{f}");
        assert_eq!(f["kept_long"], 1, "{f}");
        assert_eq!(f["lines"], 6, "{f}");
    }
    let masked = LINE.replace("198.51.100.9", "198.51.100.0");
    let mut want = masked.repeat(3).into_bytes();
    want.extend_from_slice(&long);
    want.extend_from_slice(masked.repeat(2).as_bytes());
    assert!(
        fs::read(&plain).unwrap() == want,
        "plain: not byte-identical around the long line"
    );
    let mut got = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(&fs::read(&gz).unwrap()[..]),
        &mut got,
    )
    .unwrap();
    assert!(got == want, "gzip: not byte-identical around the long line");
    let r = d.run(&["anonymize", "--dry-run", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `--max-line` (config `max_line`) sets the limit for every command.
#[test]
fn max_line_is_a_setting() {
    let d = Dir::new();
    let long = format!(
        "198.51.100.9 - - [01/Jan/2025:10:00:01 +0000] \"GET /{} HTTP/1.1\" 200 5 \"-\" \"curl\"\n",
        "x".repeat(10_000)
    );
    d.write(
        "logs/access.log.1",
        format!("{LINE}{long}{LINE}").as_bytes(),
    );
    let r = d.run(&[
        "scan",
        "--no-store",
        "--max-line",
        "4KiB",
        "-o",
        "json",
        "logs",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["malformed"], 1, "{}", r.stdout);
    assert!(r.stderr.contains("line too long"), "{}", r.stderr);
    let r = d.run(&["scan", "--no-store", "-o", "json", "logs"]);
    assert_eq!(r.json()["malformed"], 0, "{}", r.stdout);
    let config = d.write("c.toml", b"max_line = \"4KiB\"\n");
    let r = d.run(&[
        "--config",
        config.to_str().unwrap(),
        "anonymize",
        "-o",
        "json",
        "logs",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["files"][0]["kept_long"], 1, "{}", r.stdout);
    let text = fs::read_to_string(d.join("logs/access.log.1")).unwrap();
    assert!(text.contains(&long), "the long line changed");
    let r = d.run(&["scan", "--max-line", "12", "logs"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--max-line"), "{}", r.stderr);
}

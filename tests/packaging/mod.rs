//! What a package installs besides the binary: manual pages that `man` renders with every
//! option, and completion scripts that the shells load.

use std::process::Command;

use crate::util::Dir;

#[test]
#[ignore = "needs man (man-db)"]
fn man_renders_every_page_with_its_options() {
    let d = Dir::new();
    let r = d.run(&["man", "pages"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut pages: Vec<_> = std::fs::read_dir(d.join("pages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "logward.1",
        "logward-scan.1",
        "logward-anonymize.1",
        "logward-allow-add.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for page in &pages {
        let out = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(page)
            .env("MANWIDTH", "100")
            .env("LANG", "C.UTF-8")
            .output()
            .expect("man runs");
        assert!(out.status.success(), "{}", page.display());
        let text = String::from_utf8_lossy(&out.stdout);
        let name = page.file_stem().unwrap().to_string_lossy();
        assert!(text.contains("NAME"), "{name}: {text}");
        assert!(text.contains(&*name), "{name} does not name itself");
    }
    // Rendered, the scan page shows its options as a reader types them.
    let scan = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(d.join("pages/logward-scan.1"))
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&scan.stdout);
    for option in [
        "--no-detect",
        "--fail-on-flag",
        "--crawler-ranges",
        "--rescan",
    ] {
        assert!(text.contains(option), "logward-scan(1) lacks {option}");
    }
}

#[test]
fn bash_loads_the_completions() {
    let d = Dir::new();
    let r = d.run(&["completions", "bash"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let script = d.write("logward.bash", r.stdout.as_bytes());
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p logward",
            script.display()
        ))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("logward"));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The other shells get a script too; an unknown one is an error.
    for shell in ["zsh", "fish"] {
        let r = d.run(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains("logward"), "{shell}");
    }
    assert_eq!(d.run(&["completions", "tcsh"]).code, 2);
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The package `packaging/build-deb.sh` built (its path in `LOGWARD_DEB`, as `.ci/run`
/// sets it): its contents, then installed into this machine, used, removed and purged.
#[test]
#[ignore = "installs and purges a package (and /var/lib/logward): needs root, dpkg and LOGWARD_DEB"]
fn the_debian_package_installs_works_and_removes_cleanly() {
    let deb = std::env::var("LOGWARD_DEB")
        .expect("LOGWARD_DEB names the .deb that packaging/build-deb.sh printed");
    let _system = crate::util::lock_system_state();
    let (installed, _) = run("dpkg", &["-s", "logward"]);
    assert!(
        !installed,
        "logward is installed on this machine: this test would remove it; run it elsewhere"
    );
    let (ok, contents) = run("dpkg-deb", &["-c", &deb]);
    assert!(ok, "{contents}");
    for path in [
        "./usr/bin/logward",
        "./usr/share/man/man1/logward.1.gz",
        "./usr/share/man/man1/logward-scan.1.gz",
        "./usr/share/bash-completion/completions/logward",
        "./usr/share/zsh/vendor-completions/_logward",
        "./usr/share/fish/vendor_completions.d/logward.fish",
        "./usr/lib/systemd/system/logward-watch.service",
        "./usr/lib/systemd/system/logward-anonymize.timer",
        "./usr/share/doc/logward/examples/logrotate-nginx",
        "./usr/share/doc/logward/README.md",
        "./usr/share/doc/logward/docs/anonymization.md",
        "./etc/logward/logward.toml",
    ] {
        assert!(
            contents.contains(path),
            "{path} not in the package:\n{contents}"
        );
    }
    let (ok, info) = run("dpkg-deb", &["-I", &deb]);
    assert!(ok, "{info}");
    assert!(info.contains("Package: logward"), "{info}");
    assert!(info.contains("conffiles"), "{info}");
    let (ok, conffiles) = run("dpkg-deb", &["-I", &deb, "conffiles"]);
    assert!(
        ok && conffiles.contains("/etc/logward/logward.toml"),
        "{conffiles}"
    );

    // lintian, where it is installed (.ci/run installs it): no error.
    if Command::new("lintian").arg("--version").output().is_ok() {
        let (_, report) = run("lintian", &[&deb]);
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "lintian: {report}");
    }

    let (ok, out) = run("dpkg", &["-i", &deb]);
    assert!(ok, "dpkg -i: {out}");
    let (ok, version) = run("/usr/bin/logward", &["--version"]);
    assert!(ok && version.starts_with("logward "), "{version}");
    let (ok, page) = run("man", &["-w", "logward"]);
    assert!(ok && page.contains("logward.1"), "{page}");
    let state = std::path::Path::new("/var/lib/logward");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let (ok, verify) = run(
        "systemd-analyze",
        &[
            "verify",
            "/usr/lib/systemd/system/logward-watch.service",
            "/usr/lib/systemd/system/logward-anonymize.service",
            "/usr/lib/systemd/system/logward-anonymize.timer",
        ],
    );
    assert!(ok, "systemd-analyze verify: {verify}");
    // Installed, not enabled.
    assert!(
        !std::path::Path::new("/etc/systemd/system/timers.target.wants/logward-anonymize.timer")
            .exists()
    );

    let (ok, out) = run("dpkg", &["-r", "logward"]);
    assert!(ok, "dpkg -r: {out}");
    assert!(!std::path::Path::new("/usr/bin/logward").exists());
    assert!(state.is_dir(), "a removal keeps the state directory");
    assert!(
        std::path::Path::new("/etc/logward/logward.toml").exists(),
        "and the conffile"
    );
    let (ok, out) = run("dpkg", &["--purge", "logward"]);
    assert!(ok, "dpkg --purge: {out}");
    assert!(!state.exists(), "a purge removes the state directory");
    assert!(!std::path::Path::new("/etc/logward/logward.toml").exists());
}

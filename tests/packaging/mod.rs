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

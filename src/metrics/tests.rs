//! Tests of the exposition format writer and reader, run counts, and the shared textfile.

use super::families::*;
use super::*;

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn renders_help_type_and_samples_per_family() {
    let mut e = Exposition::new();
    e.set(&LINES, &[("command", "scan")], 2000.0);
    e.set(&DURATION, &[("command", "scan")], 0.25);
    e.set(&LINES, &[("command", "anonymize")], 7.0);
    assert_eq!(
        lines(&e.render()),
        [
            "# HELP logward_lines_total Log lines read.",
            "# TYPE logward_lines_total counter",
            "logward_lines_total{command=\"anonymize\"} 7",
            "logward_lines_total{command=\"scan\"} 2000",
            "# HELP logward_run_duration_seconds How long the last run took.",
            "# TYPE logward_run_duration_seconds gauge",
            "logward_run_duration_seconds{command=\"scan\"} 0.25",
        ]
    );
}

#[test]
fn label_values_and_help_are_escaped_and_read_back() {
    let family = Family {
        name: "x_total",
        help: "a \\ back\nslash",
        kind: Kind::Counter,
    };
    let mut e = Exposition::new();
    e.set(&family, &[("rule", "a\"b\\c\nd")], 1.0);
    e.set(
        &family,
        &[("rule", "plain"), ("command", "scan")],
        f64::INFINITY,
    );
    let text = e.render();
    assert!(
        text.contains("# HELP x_total a \\\\ back\\nslash\n"),
        "{text}"
    );
    assert!(
        text.contains("x_total{rule=\"a\\\"b\\\\c\\nd\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("x_total{rule=\"plain\",command=\"scan\"} +Inf\n"),
        "{text}"
    );
    let back = Exposition::parse(&text).unwrap();
    assert_eq!(back, e);
}

#[test]
fn parse_takes_timestamps_comments_and_other_types() {
    let text = "# a comment\n\n# HELP up Up.\n# TYPE up gauge\nup 1 1700000000000\n\
                node_x{a=\"1\",} 2.5e3\nno_type 3\n";
    let e = Exposition::parse(text).unwrap();
    assert_eq!(e.get("up", &[]), Some(1.0));
    assert_eq!(e.get("node_x", &[("a", "1")]), Some(2500.0));
    assert_eq!(e.get("no_type", &[]), Some(3.0));
    let again = Exposition::parse(&e.render()).unwrap();
    assert_eq!(again, e);
}

#[test]
fn parse_errors_name_the_line() {
    for (text, line, reason) in [
        (
            "ok 1\n{x=\"1\"} 2\n",
            2,
            "a sample line does not start with a metric name",
        ),
        ("x{a=\"1} 2\n", 1, "a label value has no closing quote"),
        ("x{a=1} 2\n", 1, "a label value is not quoted"),
        ("x\n", 1, "a sample has no value"),
        (
            "\n\nx{a=\"b\"} one\n",
            3,
            "a sample's value is not a number",
        ),
    ] {
        let err = Exposition::parse(text).unwrap_err();
        assert_eq!((err.line, err.reason), (line, reason), "{text:?}");
    }
}

#[test]
fn run_counts_write_only_what_applies() {
    let mut run = RunCounts {
        lines: Some(10),
        files_failed: Some(0),
        duration: Some(1.5),
        ..RunCounts::default()
    };
    let flag = |rules: &[(&str, u64)]| crate::store::NewFlag {
        source: "192.0.2.1/32".parse().unwrap(),
        rules: rules.iter().map(|(r, _)| r.to_string()).collect(),
        rule_events: rules.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        first_seen: 0,
        last_seen: 0,
        events: 0,
        samples: Vec::new(),
        sites: Vec::new(),
        files: Vec::new(),
        explain: Vec::new(),
        country: None,
        asn: None,
        as_org: None,
    };
    run.count_flags(&[
        flag(&[("http-flood", 100), ("scanner-ua", 5)]),
        flag(&[("http-flood", 30)]),
    ]);
    let e = run.exposition("scan");
    let scan = [("command", "scan")];
    assert_eq!(e.get("logward_lines_total", &scan), Some(10.0));
    assert_eq!(e.get("logward_files_failed_total", &scan), Some(0.0));
    assert_eq!(e.get("logward_run_duration_seconds", &scan), Some(1.5));
    assert_eq!(e.get("logward_sources_flagged_total", &scan), Some(2.0));
    assert_eq!(
        e.get("logward_rule_flags_total", &[("rule", "http-flood")]),
        Some(2.0)
    );
    assert_eq!(
        e.get("logward_rule_events_total", &[("rule", "http-flood")]),
        Some(130.0)
    );
    assert_eq!(
        e.get("logward_rule_events_total", &[("rule", "scanner-ua")]),
        Some(5.0)
    );
    assert!(e.samples("logward_addresses_masked_total").is_empty());
    assert!(e.samples("logward_read_bytes_total").is_empty());
}

#[test]
fn the_textfile_keeps_other_commands_and_the_last_success() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logward.prom");
    let run = |command: &str, lines: u64, at: i64, success: bool| {
        let run = RunCounts {
            lines: Some(lines),
            ..RunCounts::default()
        }
        .exposition(command);
        write_textfile(&path, command, run, Ending { at, success }).unwrap()
    };
    let read = || Exposition::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let last = |e: &Exposition, c: &str| e.get(LAST_SUCCESS.name, &[("command", c)]);

    // A first run that fails writes its counts, and no last success.
    assert_eq!(run("anonymize", 5, 100, false), None);
    let e = read();
    assert_eq!(e.get(LINES.name, &[("command", "anonymize")]), Some(5.0));
    assert_eq!(
        e.get(RUN_SUCCESS.name, &[("command", "anonymize")]),
        Some(0.0)
    );
    assert_eq!(last(&e, "anonymize"), None);

    run("anonymize", 6, 200, true);
    run("scan", 1000, 250, true);
    // A failure keeps the success before it, and the other command's samples.
    run("anonymize", 7, 300, false);
    let e = read();
    assert_eq!(e.get(LINES.name, &[("command", "anonymize")]), Some(7.0));
    assert_eq!(
        e.get(LAST_RUN.name, &[("command", "anonymize")]),
        Some(300.0)
    );
    assert_eq!(last(&e, "anonymize"), Some(200.0));
    assert_eq!(e.get(LINES.name, &[("command", "scan")]), Some(1000.0));
    assert_eq!(last(&e, "scan"), Some(250.0));
    // A family the last run did not write is gone with it.
    let only_duration = RunCounts {
        duration: Some(2.0),
        ..RunCounts::default()
    }
    .exposition("scan");
    write_textfile(
        &path,
        "scan",
        only_duration,
        Ending {
            at: 400,
            success: true,
        },
    )
    .unwrap();
    let e = read();
    assert_eq!(e.get(LINES.name, &[("command", "scan")]), None);
    assert_eq!(e.get(LINES.name, &[("command", "anonymize")]), Some(7.0));
    assert_eq!(last(&e, "scan"), Some(400.0));

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    // Nothing but the file is left in the directory.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn an_unreadable_old_file_is_replaced_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logward.prom");
    std::fs::write(&path, "this is { not metrics\n").unwrap();
    let warning = write_textfile(
        &path,
        "scan",
        counts_scan(3),
        Ending {
            at: 1,
            success: true,
        },
    )
    .unwrap()
    .unwrap();
    assert!(warning.contains("logward.prom: line 1:"), "{warning}");
    let e = Exposition::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(e.get(LINES.name, &[]), Some(3.0));
}

fn counts_scan(lines: u64) -> Exposition {
    RunCounts {
        lines: Some(lines),
        ..RunCounts::default()
    }
    .exposition("scan")
}

#[test]
fn errors_name_the_file() {
    let err = check_textfile_dir(Path::new("/nonexistent/dir/logward.prom")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/dir/logward.prom: "),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sub");
    std::fs::create_dir(&target).unwrap();
    // A directory in the file's place cannot be replaced by a file.
    let err = write_textfile(
        &target,
        "scan",
        counts_scan(1),
        Ending {
            at: 1,
            success: true,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("/sub: cannot"), "{err}");
}

//! `--metrics-file`: the node_exporter textfile that `scan`, `anonymize`, `search` and
//! `flagged --prune` leave behind, read with an independent parser of the exposition format
//! (`prometheus-parse`) and checked against the same run's `--output json` report; one file
//! shared by several commands; the last success kept through a failed run. The scrape
//! of `watch --metrics-listen` is in `tests/watch`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use prometheus_parse::{Scrape, Value};
use serde_json::Value as Json;

use crate::util::Dir;

/// Parses `text` with prometheus-parse and checks what that parser forgives: every sample
/// line became a sample (it skips lines it cannot read), and every family has a HELP and
/// a counter or gauge TYPE.
pub fn parse(text: &str) -> Scrape {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let sample_lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "lines not read:\n{text}"
    );
    let mut types = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                types.insert(name.to_string()),
                "{name} typed twice:\n{text}"
            );
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert_eq!(
                name.ends_with("_total"),
                kind == "counter",
                "counters and only counters end in _total: {line}"
            );
        }
    }
    for s in &scrape.samples {
        assert!(s.metric.starts_with("logward_"), "{}", s.metric);
        assert!(
            scrape.docs.contains_key(&s.metric),
            "no HELP for {}",
            s.metric
        );
        assert!(types.contains(&s.metric), "no TYPE for {}", s.metric);
        assert!(
            matches!(s.value, Value::Counter(_) | Value::Gauge(_)),
            "{}: {:?}",
            s.metric,
            s.value
        );
    }
    scrape
}

/// The value of the sample of `name` with exactly these labels, if there is one.
pub fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| {
            labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                && s.labels.len() == labels.len()
        })
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain value"),
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} twice");
    found.first().copied()
}

fn read(path: &Path) -> Scrape {
    let text = std::fs::read_to_string(path).expect("the metrics file");
    promtool_check_metrics(&text);
    parse(&text)
}

/// `promtool`, where the prometheus package put it on the PATH.
fn promtool() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
}

/// Where promtool is installed, `promtool check metrics` also reads `text`: it must
/// accept it and have nothing to say about the names (its lint is Prometheus's naming
/// conventions).
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let Some(promtool) = promtool() else {
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

/// The `logward_...` names written in `text`.
fn metric_names(text: &str) -> Vec<String> {
    text.match_indices("logward_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-logs")
}

fn n(v: &Json) -> f64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}")) as f64
}

#[test]
fn scan_metrics_equal_its_json_report() {
    let d = Dir::new();
    let prom = d.join("textfile/logward.prom");
    std::fs::create_dir(d.join("textfile")).unwrap();
    let logs = samples();
    let r = d.run(&[
        "scan",
        "--metrics-file",
        prom.to_str().unwrap(),
        "-o",
        "json",
        logs.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let m = read(&prom);
    let scan = [("command", "scan")];
    let get = |name: &str| value(&m, name, &scan).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(get("logward_lines_total"), n(&report["lines"]));
    assert_eq!(
        get("logward_malformed_lines_total"),
        n(&report["malformed"])
    );
    assert_eq!(get("logward_read_bytes_total"), n(&report["bytes"]));
    let files = report["files"].as_array().unwrap();
    assert_eq!(get("logward_files_total"), files.len() as f64);
    let failed = files.iter().filter(|f| !f["error"].is_null()).count();
    assert_eq!(get("logward_files_failed_total"), failed as f64);
    let flagged = report["flagged"].as_array().unwrap();
    assert!(flagged.len() > 10, "the samples flag attackers");
    assert_eq!(get("logward_sources_flagged_total"), flagged.len() as f64);
    // Per rule: the episodes each rule flagged, and their events.
    let mut per_rule: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for f in flagged {
        for rule in f["rules"].as_array().unwrap() {
            per_rule.entry(rule.as_str().unwrap().into()).or_default().0 += 1.0;
        }
        for (rule, events) in f["rule_events"].as_object().unwrap() {
            per_rule.entry(rule.clone()).or_default().1 += n(events);
        }
    }
    let rules_written = m
        .samples
        .iter()
        .filter(|s| s.metric == "logward_rule_flags_total")
        .count();
    assert_eq!(rules_written, per_rule.len());
    for (rule, (flags, events)) in &per_rule {
        let labels = [("command", "scan"), ("rule", rule.as_str())];
        assert_eq!(value(&m, "logward_rule_flags_total", &labels), Some(*flags));
        assert_eq!(
            value(&m, "logward_rule_events_total", &labels),
            Some(*events)
        );
    }
    let elapsed = report["elapsed_s"].as_f64().unwrap();
    assert!(get("logward_run_duration_seconds") >= elapsed - 0.001);
    assert_eq!(get("logward_last_run_success"), 1.0);
    let ended = get("logward_last_run_timestamp_seconds");
    assert!(
        (ended - crate::util::unix_now() as f64).abs() < 60.0,
        "{ended}"
    );
    assert_eq!(get("logward_last_success_timestamp_seconds"), ended);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&prom).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "node_exporter's user reads it");
    // Nothing else is left where node_exporter looks.
    let left: Vec<_> = std::fs::read_dir(d.join("textfile")).unwrap().collect();
    assert_eq!(left.len(), 1);
}

/// One file for every command: each run replaces its own samples only. A failed
/// retention run shows as failed and keeps the time of the last good one.
#[test]
fn commands_share_one_file_and_a_failure_keeps_the_last_success() {
    let d = Dir::new();
    let prom = d.join("logward.prom");
    let prom_arg = prom.to_str().unwrap();
    std::fs::create_dir(d.join("logs")).unwrap();
    for name in ["access.log", "access.log.1", "access.log.2.gz"] {
        std::fs::copy(samples().join(name), d.join("logs").join(name)).unwrap();
    }
    let r = d.run(&["scan", "--metrics-file", prom_arg, "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let scan_lines = value(&read(&prom), "logward_lines_total", &[("command", "scan")]);

    // The config key serves anonymize as the flag serves scan.
    let config = d.write(
        "logward.toml",
        format!("metrics_file = {:?}\n", prom.display().to_string()).as_bytes(),
    );
    let anonymize = |extra: &[&str]| {
        let mut args = vec!["--config", config.to_str().unwrap(), "anonymize"];
        args.extend_from_slice(extra);
        args.extend(["--now", "2026-12-31T00:00:00Z", "-o", "json", "logs"]);
        d.run(&args)
    };
    let r = anonymize(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let totals = r.json()["totals"].clone();
    let m = read(&prom);
    let anon = [("command", "anonymize")];
    let get = |m: &Scrape, name: &str| value(m, name, &anon);
    for (name, key) in [
        ("logward_files_total", "files"),
        ("logward_files_rewritten_total", "rewritten"),
        ("logward_files_skipped_total", "skipped"),
        ("logward_files_failed_total", "failed"),
        ("logward_lines_total", "lines"),
        ("logward_addresses_masked_total", "addresses"),
        ("logward_hostnames_masked_total", "hostnames"),
    ] {
        assert_eq!(get(&m, name), Some(n(&totals[key])), "{name}");
    }
    assert!(n(&totals["addresses"]) > 100.0 && n(&totals["rewritten"]) == 2.0);
    assert_eq!(get(&m, "logward_last_run_success"), Some(1.0));
    let good = get(&m, "logward_last_success_timestamp_seconds").unwrap();
    // The scan's samples are still there.
    assert_eq!(
        value(&m, "logward_lines_total", &[("command", "scan")]),
        scan_lines
    );

    // A dry run is no run: the file stays as it was.
    let before = std::fs::read(&prom).unwrap();
    assert_eq!(anonymize(&["--dry-run"]).code, 0);
    assert_eq!(std::fs::read(&prom).unwrap(), before);

    // A truncated gzip file fails; the other files are done.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let gz = std::fs::read(samples().join("access.log.2.gz")).unwrap();
    d.write("logs/access.log.3.gz", &gz[..gz.len() / 2]);
    let r = anonymize(&[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let m = read(&prom);
    assert_eq!(get(&m, "logward_files_failed_total"), Some(1.0));
    assert_eq!(get(&m, "logward_last_run_success"), Some(0.0));
    assert_eq!(
        get(&m, "logward_last_success_timestamp_seconds"),
        Some(good)
    );
    assert!(get(&m, "logward_last_run_timestamp_seconds").unwrap() > good);

    // search and prune write their own samples beside the others.
    std::fs::remove_file(d.join("logs/access.log.3.gz")).unwrap();
    let r = d.run(&[
        "search",
        "--source",
        "203.0.113.0/24",
        "--count",
        "-o",
        "json",
        "--metrics-file",
        prom_arg,
        "logs",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let found = r.json();
    let m = read(&prom);
    let search = [("command", "search")];
    assert_eq!(
        value(&m, "logward_search_matched_lines_total", &search),
        Some(n(&found["total"]))
    );
    assert_eq!(
        value(&m, "logward_files_total", &search),
        Some(found["files"].as_array().unwrap().len() as f64)
    );
    let r = d.run(&[
        "flagged",
        "--prune",
        "--keep",
        "1d",
        "--metrics-file",
        prom_arg,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pruned: f64 = r
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(pruned > 0.0);
    let m = read(&prom);
    assert_eq!(
        value(&m, "logward_pruned_entries_total", &[("command", "prune")]),
        Some(pruned)
    );
    for command in ["scan", "anonymize", "search", "prune"] {
        let labels = [("command", command)];
        assert!(value(&m, "logward_last_run_timestamp_seconds", &labels).is_some());
    }
}

#[test]
fn a_metrics_file_in_a_missing_directory_fails_before_the_run() {
    let d = Dir::new();
    let logs = samples();
    let r = d.run(&[
        "scan",
        "--metrics-file",
        "/nonexistent/textfile/logward.prom",
        logs.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("logward: /nonexistent/textfile/logward.prom: cannot write"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "the scan did not run: {}", r.stdout);
    let r = d.run(&["flagged", "--metrics-file", "x.prom"]);
    assert_eq!(r.code, 2, "--metrics-file needs --prune: {}", r.stderr);
}

/// The dashboard, the metrics page's table and its alert rules name only metrics logward
/// exports, and the page (docs/metrics.md, which the README links) names them all.
#[test]
fn dashboard_and_alerts_name_exported_metrics() {
    let exported: Vec<&str> = logward::metrics::families::ALL
        .iter()
        .map(|f| f.name)
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: Json =
        serde_json::from_slice(&std::fs::read(root.join("contrib/grafana/logward.json")).unwrap())
            .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    fn collect(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::Object(m) => {
                if let Some(Json::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                m.values().for_each(|v| collect(v, out));
            }
            Json::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let used: Vec<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    for name in &used {
        assert!(
            exported.contains(&name.as_str()),
            "the dashboard uses {name}"
        );
    }
    for wanted in [
        "logward_lines_total",
        "logward_watch_lag_seconds",
        "logward_rule_flags_total",
        "logward_addresses_masked_total",
        "logward_last_success_timestamp_seconds",
    ] {
        assert!(used.iter().any(|u| u == wanted), "no panel on {wanted}");
    }

    let page = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    assert!(page.starts_with("# Metrics and alerting\n"), "the page");
    let named = metric_names(&page);
    for name in &named {
        assert!(
            exported.contains(&name.as_str()),
            "docs/metrics.md names {name}"
        );
    }
    for name in &exported {
        assert!(
            named.iter().any(|n| n == name),
            "docs/metrics.md leaves out {name}"
        );
    }
    let rules = page
        .split("```yaml\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("groups:"))
        .expect("alert rules");
    assert!(rules.contains("> 26 * 3600") && rules.contains("logward_watch_lag_seconds > 60"));
    if let Some(promtool) = promtool() {
        let d = Dir::new();
        let file = d.write("rules.yml", rules.as_bytes());
        let out = std::process::Command::new(promtool)
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

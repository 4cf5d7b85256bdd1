//! `logward scan` end to end: discovery, gzip, bad input, determinism, the corpus.

use crate::util::{Dir, combined, corpus};

fn sample_log(n: usize, start_minute: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let ip = format!("198.51.100.{}", i % 7);
        let minute = start_minute + i / 60;
        let time = format!(
            "22/Nov/2026:{:02}:{:02}:{:02} +0000",
            minute / 60 % 24,
            minute % 60,
            i % 60
        );
        s.push_str(&combined(
            &ip,
            &time,
            &format!("GET /page/{i} HTTP/1.1"),
            if i % 10 == 0 { 404 } else { 200 },
            "Mozilla/5.0",
        ));
    }
    s
}

#[test]
fn directory_walk_reads_rotations_and_gzip_and_skips_other_files() {
    let d = Dir::new();
    d.write("logs/access.log", sample_log(100, 120).as_bytes());
    d.write("logs/access.log.1", sample_log(50, 60).as_bytes());
    d.write_gz("logs/access.log.2.gz", sample_log(30, 0).as_bytes());
    d.write("logs/error.log", b"[error] something\n");
    let r = d.run(&["scan", "--output", "json", "logs"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["lines"], 180);
    assert_eq!(j["parsed"], 180);
    assert_eq!(j["malformed"], 0);
    assert_eq!(j["distinct_sources"], 7);
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["files"].as_array().unwrap().len(), 3);
    let gz = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(".gz"))
        .unwrap();
    assert_eq!(gz["compressed"], true);
    assert_eq!(gz["format"], "combined");
    assert_eq!(j["first_time"], "2026-11-22T00:00:00Z");
    assert_eq!(j["status"]["404"], 18);
    assert_eq!(j["top_sources"][0]["source"], "198.51.100.0");
    // -v names the skipped file.
    let r = d.run(&["scan", "-v", "logs"]);
    assert!(r.stderr.contains("error.log"), "{}", r.stderr);
    assert!(r.stdout.contains("Top sources"), "{}", r.stdout);
}

#[test]
fn glob_pattern_in_quotes_is_expanded() {
    let d = Dir::new();
    d.write("a.access.log", sample_log(5, 0).as_bytes());
    d.write("b.access.log", sample_log(6, 0).as_bytes());
    d.write("c.txt", sample_log(7, 0).as_bytes());
    let r = d.run(&["scan", "-o", "json", "*.access.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["lines"], 11);
    let r = d.run(&["scan", "-o", "json", "nothing-*.log"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nothing-*.log"), "{}", r.stderr);
}

#[test]
fn truncated_gzip_keeps_lines_before_the_break_and_reports_the_file() {
    let d = Dir::new();
    let full = d.write_gz("whole.access.log.1.gz", sample_log(2000, 0).as_bytes());
    let bytes = std::fs::read(&full).unwrap();
    d.write("cut.access.log.2.gz", &bytes[..bytes.len() / 2]);
    d.write("ok.access.log", sample_log(10, 0).as_bytes());
    let r = d.run(&["scan", "-o", "json", "cut.access.log.2.gz", "ok.access.log"]);
    assert_eq!(r.code, 2, "a broken file is an error of the run");
    assert!(r.stderr.contains("cut.access.log.2.gz:"), "{}", r.stderr);
    let j = r.json();
    let files = j["files"].as_array().unwrap();
    let cut = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().contains("cut"))
        .unwrap();
    let lines = cut["lines"].as_u64().unwrap();
    assert!(
        lines > 100 && lines < 2000,
        "kept {lines} lines before the break"
    );
    assert_eq!(
        cut["parsed"].as_u64().unwrap(),
        lines,
        "every line before the break is whole"
    );
    assert!(
        cut["error"]
            .as_str()
            .unwrap()
            .contains(&format!(":{}:", lines + 1))
    );
    let ok = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().contains("ok"))
        .unwrap();
    assert_eq!(ok["lines"], 10, "the other file is still read");
}

#[test]
fn other_compressions_are_reported_as_unsupported() {
    let d = Dir::new();
    d.write("access.log.1.bz2", b"BZh91AY&SY fake");
    d.write("access.log", sample_log(3, 0).as_bytes());
    let r = d.run(&["scan", "-o", "json", "."]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("access.log.1.bz2: bzip2 compressed files are not supported"),
        "{}",
        r.stderr
    );
    assert_eq!(r.json()["lines"], 3);
}

#[test]
fn bad_lines_are_counted_and_reported_never_fatal() {
    let d = Dir::new();
    let mut data = sample_log(3, 0).into_bytes();
    data.extend_from_slice(b"\x00\x00binary\xff\xfe garbage\n");
    data.extend_from_slice(&vec![b'A'; 1 << 20]);
    data.push(b'\n');
    // Invalid UTF-8 inside the request.
    data.extend_from_slice(
        b"1.2.3.4 - - [22/Nov/2026:00:00:00 +0000] \"GET /\xc3\x28 HTTP/1.1\" 200 5 \"-\" \"x\"\n",
    );
    let crlf = combined(
        "1.2.3.5",
        "22/Nov/2026:00:00:01 +0000",
        "GET / HTTP/1.1",
        200,
        "x",
    );
    data.extend_from_slice(crlf.trim_end().as_bytes());
    data.extend_from_slice(b"\r\n");
    // No final newline.
    data.extend_from_slice(
        combined(
            "1.2.3.6",
            "22/Nov/2026:00:00:02 +0000",
            "GET / HTTP/1.1",
            200,
            "x",
        )
        .trim_end()
        .as_bytes(),
    );
    d.write("access.log", &data);
    d.write("empty.access.log", b"");
    let r = d.run(&["scan", "-o", "json", "access.log", "empty.access.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["lines"], 8);
    assert_eq!(j["malformed"], 2);
    assert_eq!(j["parsed"], 6);
    assert!(r.stderr.contains("access.log:4: malformed"), "{}", r.stderr);
    assert!(r.stderr.contains("access.log:5: malformed"), "{}", r.stderr);
    assert_eq!(j["distinct_sources"], 6);
}

#[test]
fn results_do_not_depend_on_threads_chunks_or_argument_order() {
    let d = Dir::new();
    d.write("a.access.log", sample_log(3000, 0).as_bytes());
    d.write("b.access.log", sample_log(1000, 300).as_bytes());
    d.write_gz("c.access.log.1.gz", sample_log(500, 900).as_bytes());
    let strip = |mut j: serde_json::Value| {
        j.as_object_mut().unwrap().remove("elapsed_s");
        j
    };
    let one = strip(
        d.run(&[
            "scan",
            "-o",
            "json",
            "--threads",
            "1",
            "a.access.log",
            "b.access.log",
            "c.access.log.1.gz",
        ])
        .json(),
    );
    let many = strip(
        d.run(&[
            "scan",
            "-o",
            "json",
            "--threads",
            "4",
            "--chunk-size",
            "4096",
            "c.access.log.1.gz",
            "b.access.log",
            "a.access.log",
        ])
        .json(),
    );
    assert_eq!(one, many);
    assert_eq!(one["lines"], 4500);
}

#[test]
fn chunked_reading_reports_true_line_numbers() {
    let d = Dir::new();
    let mut data = sample_log(5000, 0);
    data.push_str("broken line here\n");
    data.push_str(&sample_log(10, 0));
    d.write("access.log", data.as_bytes());
    let r = d.run(&[
        "scan",
        "-o",
        "json",
        "--threads",
        "2",
        "--chunk-size",
        "10000",
        "access.log",
    ]);
    assert!(
        r.stderr.contains("access.log:5001: malformed"),
        "{}",
        r.stderr
    );
}

#[test]
fn stdin_is_read_with_dash() {
    let d = Dir::new();
    let r = d.run_stdin(
        &["scan", "-o", "json", "-"],
        Some(sample_log(42, 0).as_bytes()),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["lines"], 42);
    assert_eq!(r.json()["files"][0]["path"], "<stdin>");
}

/// The format is chosen from stdin's first 200 lines; the bytes read past them while doing
/// so were once dropped, and the line after the head came out broken.
#[test]
fn stdin_longer_than_the_format_sample_is_read_whole() {
    let d = Dir::new();
    let log = sample_log(5000, 0);
    let r = d.run_stdin(&["scan", "-o", "json", "-"], Some(log.as_bytes()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["lines"], 5000);
    assert_eq!(r.json()["malformed"], 0, "{}", r.stderr);
    assert_eq!(r.json()["bytes"], log.len());
}

#[test]
fn check_reads_the_first_lines_and_reports_errors() {
    let d = Dir::new();
    let mut data = sample_log(1500, 0);
    data.insert_str(0, "garbage first line\n");
    d.write("access.log", data.as_bytes());
    let r = d.run(&["scan", "--check", "access.log"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("format combined"), "{}", r.stdout);
    assert!(
        r.stdout.contains("999 of the first 1000 lines parsed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("access.log:1: does not match the format"),
        "{}",
        r.stdout
    );
}

#[test]
fn explicit_formats_and_their_errors() {
    let d = Dir::new();
    d.write(
        "custom.log",
        b"1.2.3.4 [2026-11-22T00:00:00+00:00] 404 /x\n5.6.7.8 [2026-11-22T00:00:01+00:00] 200 /y\n",
    );
    let r = d.run(&[
        "scan",
        "-o",
        "json",
        "--format",
        "nginx:$remote_addr [$time_iso8601] $status $request_uri",
        "custom.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["parsed"], 2);
    let r = d.run(&[
        "scan",
        "--format",
        "nginx:$remote_addr$status",
        "custom.log",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--format"), "{}", r.stderr);
}

#[test]
fn a_broken_config_file_is_an_error_naming_file_and_line() {
    let d = Dir::new();
    d.write("access.log", sample_log(3, 0).as_bytes());
    let cfg = d.write(
        "logward.toml",
        b"format = \"combined\"\nthreads = \"many\"\n",
    );
    let r = d.run(&["--config", cfg.to_str().unwrap(), "scan", "access.log"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("logward.toml:2:"), "{}", r.stderr);
    let r = d.run(&["--config", "missing.toml", "scan", "access.log"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.toml"), "{}", r.stderr);
    // A valid file's format key is used.
    let cfg = d.write("ok.toml", b"format = \"common\"\n");
    let r = d.run(&[
        "--config",
        cfg.to_str().unwrap(),
        "scan",
        "-o",
        "json",
        "access.log",
    ]);
    assert_eq!(r.json()["files"][0]["format"], "common");
}

#[test]
#[ignore = "needs ../shared/corpus"]
fn corpus_logs_scan_with_expected_counts() {
    let corpus = corpus();
    let d = Dir::new();
    let elastic = corpus.join("logs/elastic-apache_logs.log");
    let r = d.run(&["scan", "-o", "json", elastic.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["lines"], 10_000);
    assert!(j["malformed"].as_u64().unwrap() <= 1);
    assert_eq!(j["first_time"], "2015-05-17T10:05:00Z");
    // Every log in the corpus is read without a crash; only the bzip2 file is refused.
    let logs = corpus.join("logs");
    let peer = corpus.join("peer-logs");
    let r = d.run(&[
        "scan",
        "-o",
        "json",
        &format!("{}/*/*", logs.display()),
        &format!("{}/*/*.log", peer.display()),
    ]);
    let j = r.json();
    let files = j["files"].as_array().unwrap();
    assert!(files.len() > 50, "{} files", files.len());
    for f in files {
        let path = f["path"].as_str().unwrap();
        if path.ends_with(".bz2") {
            assert!(f["error"].as_str().unwrap().contains("bzip2"));
        } else {
            assert!(f["error"].is_null(), "{path}: {}", f["error"]);
            assert_eq!(
                f["lines"].as_u64().unwrap(),
                f["parsed"].as_u64().unwrap()
                    + f["malformed"].as_u64().unwrap()
                    + f["empty"].as_u64().unwrap(),
                "{path}"
            );
        }
    }
    let shop = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .ends_with("logfile_shop_access_log.0")
        })
        .unwrap();
    assert_eq!(
        (shop["lines"].as_u64(), shop["malformed"].as_u64()),
        (Some(1000), Some(0))
    );
    let gz = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .ends_with("matomo/common.log.gz")
        })
        .unwrap();
    assert_eq!(
        (gz["format"].as_str(), gz["parsed"].as_u64()),
        (Some("common"), Some(1))
    );
}

/// JSON access lines whose format names no client field (a proxy's own log shape), each
/// with an address in a field logward does not know.
fn clientless_json(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"time\":\"2026-12-06T10:00:{:02}Z\",\"uri\":\"/p{i}\",\"status\":404,\"peer\":\"198.51.100.{}\"}}\n",
                i % 60,
                i % 7 + 1
            )
        })
        .collect()
}

#[test]
fn a_file_read_without_clients_is_reported_not_passed_as_clean() {
    let d = Dir::new();
    d.write("access.json", clientless_json(40).as_bytes());
    d.write("good.log", sample_log(40, 0).as_bytes());
    let r = d.run(&[
        "scan",
        "--no-store",
        "-o",
        "json",
        "access.json",
        "good.log",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("access.json: the format json gives a client address for 0 of 40"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("good.log: the format"), "{}", r.stderr);
    let j = r.json();
    let files = j["files"].as_array().unwrap();
    let by_name = |name: &str| {
        files
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name))
            .unwrap()
    };
    let json = by_name("access.json");
    assert_eq!(json["with_client"], 0);
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(by_name("good.log")["warnings"], serde_json::json!([]));
    let check = d.run(&["scan", "--check", "access.json"]);
    assert!(
        check.stdout.contains("0 with a client address"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("most parsed lines have no client"),
        "{}",
        check.stdout
    );
}

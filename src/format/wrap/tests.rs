//! Tests of the wrappers on real shapes of lines: each wrapper around its inner line with
//! spans kept on the whole line, the wrapper's time, joined CRI and Docker parts and their
//! limit, lines outside the wrapper, names, and `auto` finding a wrapper and its format.

use super::*;
use crate::format::{AddrKind, FormatSpec, ParseError};

const INNER: &str = r#"198.51.100.23 - - [06/Dec/2026:10:00:00 +0100] "GET /wp-login.php?x=1 HTTP/1.1" 404 153 "-" "Mozilla/5.0""#;

fn fixed(spec: &str) -> Format {
    match FormatSpec::parse(spec) {
        Ok(FormatSpec::Fixed(f)) => f,
        other => panic!("{spec}: {other:?}"),
    }
}

/// Parses `lines` in order through one unwrapper; what each line came to, with the
/// record's client field as written (taken through its span) and its time.
fn read(spec: &str, lines: &[&str]) -> Vec<Result<(String, Option<i64>), ParseError>> {
    let format = fixed(spec);
    let mut unwrapper = format.unwrapper().expect("a wrapped format");
    let mut cache = TimeCache::new();
    lines
        .iter()
        .map(|line| {
            let mut rec = Record::default();
            unwrapper.parse_into(line.as_bytes(), &mut cache, &mut rec)?;
            let client = rec
                .addr_fields
                .as_slice()
                .iter()
                .find(|f| f.kind == AddrKind::Client)
                .map(|f| String::from_utf8_lossy(f.span.of(rec.line)).into_owned())
                .unwrap_or_default();
            assert_eq!(
                rec.source().map(|a| a.to_string()),
                Some(client.clone()),
                "{line}"
            );
            Ok((client, rec.time))
        })
        .collect()
}

fn t(text: &str) -> Option<i64> {
    time::iso8601(text.as_bytes())
}

#[test]
fn each_wrapper_reads_its_inner_line_and_keeps_spans_on_the_whole_line() {
    let inner_time = t("2026-12-06T09:00:00Z");
    let docker_inner = INNER.replace('"', r#"\""#);
    let cases = [
        (
            "syslog:combined",
            format!("Jul  8 11:07:07 web1 nginx[2869]: {INNER}"),
        ),
        (
            "syslog:combined",
            format!("Dec 16 01:02:03 2001:db8::7 nginx: {INNER}"),
        ),
        (
            "rfc5424:combined",
            format!(r#"<190>1 2026-12-06T10:00:00.123Z web1 nginx 2869 - [m@1 a="]"] {INNER}"#),
        ),
        (
            "rfc5424:combined",
            format!("1 2026-12-06T10:00:00.123456+01:00 web1 nginx - - - {INNER}"),
        ),
        (
            "journal:combined",
            format!("2026-12-06T10:00:00+0100 web1 nginx[123]: {INNER}"),
        ),
        (
            "cri:combined",
            format!("2026-12-06T10:00:00.123456789Z stdout F {INNER}"),
        ),
        (
            "cri:combined",
            format!("2026-12-06T10:00:00.123456789+01:00 stderr F {INNER}"),
        ),
        (
            "docker:combined",
            format!(
                r#"{{"log":"{docker_inner}\n","stream":"stdout","time":"2026-12-06T10:00:00.123456789Z"}}"#
            ),
        ),
    ];
    for (spec, line) in cases {
        let got = read(spec, &[&line]);
        assert_eq!(
            got,
            vec![Ok(("198.51.100.23".to_string(), inner_time))],
            "{spec}: {line}"
        );
    }
}

#[test]
fn the_wrapper_time_is_used_only_when_the_inner_line_has_none() {
    // An nginx format without a time.
    let inner = r#"198.51.100.23 "GET / HTTP/1.1" 200"#;
    let spec = |w: &str| format!(r#"{w}:nginx:$remote_addr "$request" $status"#);
    for (w, line, want) in [
        (
            "cri",
            format!("2026-12-06T10:00:00.5+01:00 stdout F {inner}"),
            t("2026-12-06T09:00:00Z"),
        ),
        (
            "journal",
            format!("2026-12-06T10:00:00+0100 web1 nginx[1]: {inner}"),
            t("2026-12-06T09:00:00Z"),
        ),
        (
            "rfc5424",
            format!("<1>1 2026-12-06T10:00:00Z h a - - - {inner}"),
            t("2026-12-06T10:00:00Z"),
        ),
        ("rfc5424", format!("<1>1 - h a - - - {inner}"), None),
        (
            "syslog",
            format!("Jan  2 03:04:05 h nginx: {inner}"),
            time::bsd_syslog(b"Jan  2 03:04:05", now()),
        ),
    ] {
        let got = read(&spec(w), &[&line]);
        assert_eq!(got, vec![Ok(("198.51.100.23".to_string(), want))], "{line}");
    }
}

#[test]
fn cri_parts_are_joined_per_stream_until_the_last() {
    let (a, b, c) = (&INNER[..20], &INNER[20..70], &INNER[70..]);
    let other = INNER.replace("198.51.100.23", "203.0.113.5");
    let lines = [
        format!("2026-12-06T10:00:00.000000001Z stdout P {a}"),
        // A whole stderr line between two parts of a stdout line.
        format!("2026-12-06T10:00:00.000000002Z stderr F {other}"),
        format!("2026-12-06T10:00:00.000000003Z stdout P {b}"),
        format!("2026-12-06T10:00:00.000000004Z stdout F {c}"),
        format!("2026-12-06T10:00:00.000000005Z stdout F {INNER}"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let got = read("cri:combined", &lines);
    let partial = || Err(ParseError::new(ErrorKind::Partial, 0));
    let whole = |ip: &str| Ok((ip.to_string(), t("2026-12-06T09:00:00Z")));
    assert_eq!(
        got,
        vec![
            partial(),
            whole("203.0.113.5"),
            partial(),
            whole("198.51.100.23"),
            whole("198.51.100.23"),
        ]
    );
}

#[test]
fn a_chain_of_parts_longer_than_max_line_is_dropped_not_held() {
    let format = fixed("cri:combined");
    let mut u = format.unwrapper().unwrap();
    let limit = crate::input::read::max_line();
    let chunk = "x".repeat(16 << 10);
    let part = format!("2026-12-06T10:00:00Z stdout P {chunk}");
    let mut cache = TimeCache::new();
    for _ in 0..(limit / chunk.len() + 2) {
        let mut rec = Record::default();
        let e = u
            .parse_into(part.as_bytes(), &mut cache, &mut rec)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Partial);
        assert!(u.state.pending[0].text.len() <= limit);
    }
    let mut rec = Record::default();
    let last = format!("2026-12-06T10:00:00Z stdout F {INNER}");
    let e = u
        .parse_into(last.as_bytes(), &mut cache, &mut rec)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLong);
    // The stream starts afresh after it.
    let mut rec = Record::default();
    let got = u.parse_into(last.as_bytes(), &mut cache, &mut rec);
    assert_eq!(got, Ok(()));
}

#[test]
fn docker_text_is_decoded_before_parsing() {
    // A user agent with a quote, a backslash and an escape byte (nginx writes these as
    // \x22, \x5C, \x1B; a test server writing them raw is still read).
    let inner = r#"2001:db8::9 - - [06/Dec/2026:10:00:00 +0000] \"GET /a?q=\u003cscript\u003e HTTP/1.1\" 200 5 \"-\" \"ua \\\"x\\\" \\\\ \u001b[31m\""#;
    let line = format!(
        r#"{{"log":"{inner}\r\n","stream":"stderr","time":"2026-12-06T10:00:00.123456789Z"}}"#
    );
    let format = fixed("docker:combined");
    let mut u = format.unwrapper().unwrap();
    let mut rec = Record::default();
    let mut cache = TimeCache::new();
    u.parse_into(line.as_bytes(), &mut cache, &mut rec).unwrap();
    assert_eq!(rec.source(), Some("2001:db8::9".parse().unwrap()));
    assert_eq!(rec.target, Some(&b"/a?q=<script>"[..]));
    assert_eq!(rec.user_agent, Some(&b"ua \\\"x\\\" \\\\ \x1b[31m"[..]));
    assert_eq!(rec.time, t("2026-12-06T10:00:00Z"));
}

#[test]
fn docker_lines_split_by_the_daemon_are_joined() {
    let escaped = INNER.replace('"', r#"\""#);
    let (a, b) = escaped.split_at(40);
    let lines = [
        format!(r#"{{"log":"{a}","stream":"stdout","time":"2026-12-06T10:00:00.1Z"}}"#),
        format!(r#"{{"log":"{b}\n","stream":"stdout","time":"2026-12-06T10:00:00.2Z"}}"#),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let got = read("docker:combined", &lines);
    assert_eq!(got[0], Err(ParseError::new(ErrorKind::Partial, 0)));
    assert_eq!(
        got[1],
        Ok(("198.51.100.23".to_string(), t("2026-12-06T09:00:00Z")))
    );
}

#[test]
fn lines_not_in_the_wrapper_are_errors_that_say_so() {
    let got = read(
        "syslog:combined",
        &[INNER, "Jul  8 11:07:07 web1 nginx: garbage", "", "\r"],
    );
    assert_eq!(got[0].as_ref().unwrap_err().kind, ErrorKind::NotWrapped);
    // Blank lines are empty lines, as in an unwrapped log.
    assert_eq!(got[2].as_ref().unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(got[3].as_ref().unwrap_err().kind, ErrorKind::Empty);
    // An inner line that does not parse is the inner format's error, at its column in the
    // whole line.
    let e = got[1].as_ref().unwrap_err();
    assert_ne!(e.kind, ErrorKind::NotWrapped);
    assert!(e.column as usize >= "Jul  8 11:07:07 web1 nginx: ".len());
}

#[test]
fn cri_hands_envoy_json_to_the_json_parser() {
    let line = br#"2025-12-31T17:40:00.000000100+01:00 stdout F {"start_time":"2025-12-31T16:40:00.100Z","method":"GET","x-envoy-origin-path":"/page-01","response_code":404,"user-agent":"Mozilla/5.0","downstream_remote_address":"10.0.0.13:40000",":authority":"crawl.internal"}"#;
    let format = fixed("cri:json");
    let mut u = format.unwrapper().unwrap();
    let mut rec = Record::default();
    let got = u.parse_into(line, &mut TimeCache::new(), &mut rec);
    // A JSON object the parser walked whole: it holds the method, and no address key the
    // JSON format knows yet (`downstream_remote_address` is another change's).
    match got {
        Ok(()) => assert_eq!(rec.method, Some(&b"GET"[..])),
        Err(e) => assert_eq!(e.kind, ErrorKind::NoFields, "{e}"),
    }
    let not_json = b"2025-12-31T17:40:00.000000100+01:00 stdout F {\"start_time\":";
    let mut rec = Record::default();
    let mut u = format.unwrapper().unwrap();
    let e = u
        .parse_into(not_json, &mut TimeCache::new(), &mut rec)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotJson);
}

#[test]
fn names_parse_and_print_back() {
    for spec in [
        "syslog:combined",
        "rfc5424:main",
        "journal:vcombined",
        "cri:json",
        "docker:common",
    ] {
        assert_eq!(fixed(spec).name(), spec);
    }
    assert_eq!(fixed("cri:nginx:$remote_addr $status").name(), "cri:nginx");
    for bad in [
        "syslog:auto",
        "syslog:docker:combined",
        "syslog:nope",
        "syslog:",
    ] {
        assert!(FormatSpec::parse(bad).is_err(), "{bad}");
    }
    let err = FormatSpec::parse("nope").unwrap_err().to_string();
    assert!(err.contains("syslog:") && err.contains("docker:"), "{err}");
}

#[test]
fn the_stateless_parser_reads_lines_that_stand_alone() {
    let f = fixed("syslog:combined");
    let line = format!("Jul  8 11:07:07 web1 nginx[2869]: {INNER}");
    let rec = f.parse(line.as_bytes(), &mut TimeCache::new()).unwrap();
    assert_eq!(rec.line, line.as_bytes());
    assert_eq!(rec.source(), Some("198.51.100.23".parse().unwrap()));
    let part = format!("2026-12-06T10:00:00Z stdout P {INNER}");
    let e = fixed("cri:combined")
        .parse(part.as_bytes(), &mut TimeCache::new())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Partial);
}

fn detected(lines: &[String]) -> Option<(String, usize, usize)> {
    let sample: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    crate::format::detect(sample.iter().copied())
        .map(|d| (d.format.name().to_string(), d.parsed, d.sampled))
}

#[test]
fn auto_detects_each_wrapper_then_the_inner_format() {
    let n = 20;
    let inner = |i: usize| INNER.replace("/wp-login.php", &format!("/p{i}"));
    let make = |f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<String>>();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "syslog:combined",
            make(&|i| format!("Jul  {} 11:07:07 web1 nginx[2869]: {}", i % 9 + 1, inner(i))),
        ),
        (
            "rfc5424:combined",
            make(&|i| {
                format!(
                    "<190>1 2026-12-06T10:00:{:02}Z web1 nginx - - - {}",
                    i,
                    inner(i)
                )
            }),
        ),
        (
            "journal:combined",
            make(&|i| format!("2026-12-06T10:00:{i:02}+0100 web1 nginx[7]: {}", inner(i))),
        ),
        (
            "cri:combined",
            make(&|i| format!("2026-12-06T10:00:{i:02}.1Z stdout F {}", inner(i))),
        ),
        (
            "docker:combined",
            make(&|i| {
                format!(
                    r#"{{"log":"{}\n","stream":"stdout","time":"2026-12-06T10:00:00Z"}}"#,
                    inner(i).replace('"', r#"\""#)
                )
            }),
        ),
        ("combined", make(&inner)),
    ];
    for (want, lines) in cases {
        assert_eq!(detected(&lines), Some((want.to_string(), n, n)), "{want}");
    }
    // A JSON access log in Docker: the wrapper wins the tie with plain JSON (whose `time`
    // key the Docker lines have too).
    let json = make(&|i| {
        format!(
            r#"{{"log":"{{\"remote_addr\":\"192.0.2.{i}\",\"status\":404}}\n","stream":"stdout","time":"2026-12-06T10:00:00Z"}}"#
        )
    });
    assert_eq!(
        detected(&json).map(|d| d.0),
        Some("docker:json".to_string())
    );
    // Garbage in a wrapper is not a wrapped format.
    let noise = make(&|i| format!("2026-12-06T10:00:{i:02}Z stdout F hello world"));
    assert_eq!(detected(&noise), None);
}

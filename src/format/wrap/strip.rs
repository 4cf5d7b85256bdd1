//! The grammar of each wrapper: where the inner line of one wrapped line lies, where the
//! wrapper's timestamp is, and whether the line is continued by the next. Pure functions of
//! one line that allocate nothing; joining continued lines and decoding Docker's JSON are
//! [`super::Unwrapper`]'s.

use super::Wrapper;

/// The standard stream a container line was written to. Lines of other wrappers are
/// `Stdout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output, and the stream of every line of a wrapper without streams.
    Stdout = 0,
    /// Standard error.
    Stderr = 1,
}

/// One line with its wrapper recognised. Offsets are into the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stripped {
    /// The inner line is `line[start..end]`; for Docker it is still JSON-escaped, without
    /// the escaped `\n` that ends a whole line.
    pub start: usize,
    /// Where the inner line ends (exclusive).
    pub end: usize,
    /// The wrapper's timestamp as written: `line[time.0..time.1]`, empty when it has none
    /// (RFC 5424's `-`). Parsed only when the inner line has no time of its own.
    pub time: (usize, usize),
    /// A CRI `P` line, or a Docker line whose text does not end with a newline: the inner
    /// line goes on in the next line of the same stream.
    pub partial: bool,
    /// The stream the line was written to (CRI and Docker).
    pub stream: Stream,
    /// Docker text holding an escape sequence, which must be decoded before parsing.
    pub escaped: bool,
}

impl Stripped {
    fn new(start: usize, end: usize, time: (usize, usize)) -> Stripped {
        Stripped {
            start,
            end,
            time,
            partial: false,
            stream: Stream::Stdout,
            escaped: false,
        }
    }
}

/// Recognises `line` as a line of `wrapper`; on failure, the offset where it stopped
/// matching.
pub fn strip(wrapper: Wrapper, line: &[u8]) -> Result<Stripped, usize> {
    match wrapper {
        Wrapper::Syslog => bsd_syslog(line),
        Wrapper::Rfc5424 => rfc5424(line),
        Wrapper::Journal => journal(line),
        Wrapper::Cri => cri(line),
        Wrapper::Docker => docker(line),
    }
}

/// The end of the word (a run of bytes other than a space) starting at `at`, when it is not
/// empty and a space follows it.
fn word(line: &[u8], at: usize) -> Result<usize, usize> {
    let rest = line.get(at..).ok_or(at)?;
    match memchr::memchr(b' ', rest) {
        Some(0) | None => Err(at),
        Some(n) => Ok(at + n),
    }
}

/// A space at `at`; the offset after it.
fn space(line: &[u8], at: usize) -> Result<usize, usize> {
    match line.get(at) {
        Some(b' ') => Ok(at + 1),
        _ => Err(at),
    }
}

/// An optional `<PRI>` (one to three digits); the offset after it.
fn pri(line: &[u8]) -> Result<usize, usize> {
    if line.first() != Some(&b'<') {
        return Ok(0);
    }
    let digits = line[1..]
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    match (digits, line.get(1 + digits)) {
        (1..=3, Some(b'>')) => Ok(digits + 2),
        _ => Err(1 + digits),
    }
}

/// The syslog tag after the host: `nginx[2869]:` or `nginx:`, then one optional space; the
/// offset of the message.
fn tag(line: &[u8], at: usize) -> Result<usize, usize> {
    let rest = line.get(at..).ok_or(at)?;
    let end = rest
        .iter()
        .position(|b| matches!(b, b':' | b' '))
        .ok_or(at)?;
    if end == 0 || rest[end] != b':' {
        return Err(at + end);
    }
    let after = at + end + 1;
    Ok(after + usize::from(line.get(after) == Some(&b' ')))
}

/// The shape of an RFC 3339 timestamp at the start of `b` (`2026-12-06T10:00:00`): cheap,
/// the full check is left to the time parser.
fn rfc3339_shape(b: &[u8]) -> bool {
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// RFC 3164 as rsyslog writes it to files: `Jul  8 11:07:07 host nginx[2869]: msg`.
fn bsd_syslog(line: &[u8]) -> Result<Stripped, usize> {
    let at = pri(line)?;
    let stamp = line.get(at..at + 15).ok_or(at)?;
    let shape = stamp[..3].iter().all(u8::is_ascii_alphabetic)
        && stamp[3] == b' '
        && (stamp[4] == b' ' || stamp[4].is_ascii_digit())
        && stamp[5].is_ascii_digit()
        && stamp[6] == b' '
        && stamp[9] == b':'
        && stamp[12] == b':';
    if !shape {
        return Err(at);
    }
    let host = space(line, at + 15)?;
    let start = tag(line, space(line, word(line, host)?)?)?;
    Ok(Stripped::new(start, line.len(), (at, at + 15)))
}

/// RFC 5424 section 6: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`, the PRI optional
/// (rsyslog's file templates may leave it out).
fn rfc5424(line: &[u8]) -> Result<Stripped, usize> {
    let at = pri(line)?;
    // VERSION: a non-zero digit and up to two more.
    let digits = line[at..]
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || line[at] == b'0' {
        return Err(at);
    }
    let stamp = space(line, at + digits)?;
    let stamp_end = word(line, stamp)?;
    let time = match &line[stamp..stamp_end] {
        b"-" => (stamp, stamp),
        t if rfc3339_shape(t) => (stamp, stamp_end),
        _ => return Err(stamp),
    };
    // HOSTNAME, APP-NAME, PROCID, MSGID.
    let mut pos = stamp_end;
    for _ in 0..4 {
        pos = word(line, space(line, pos)?)?;
    }
    pos = structured_data(line, space(line, pos)?)?;
    let start = match line.get(pos) {
        None => pos,
        Some(b' ') => {
            let msg = pos + 1;
            // MSG-UTF8 starts with a byte order mark, which is not part of the text.
            msg + if line[msg..].starts_with(b"\xEF\xBB\xBF") {
                3
            } else {
                0
            }
        }
        Some(_) => return Err(pos),
    };
    Ok(Stripped::new(start, line.len(), time))
}

/// STRUCTURED-DATA: `-` or one or more `[id name="value"...]`, where a value may hold `]`,
/// and `\"`, `\\`, `\]` escapes. The offset after it.
fn structured_data(line: &[u8], at: usize) -> Result<usize, usize> {
    match line.get(at) {
        Some(b'-') => return Ok(at + 1),
        Some(b'[') => {}
        _ => return Err(at),
    }
    let mut pos = at;
    while line.get(pos) == Some(&b'[') {
        pos += 1;
        let mut quoted = false;
        loop {
            match line.get(pos) {
                None => return Err(pos),
                Some(b'\\') if quoted => pos += 2,
                Some(b'"') => {
                    quoted = !quoted;
                    pos += 1;
                }
                Some(b']') if !quoted => {
                    pos += 1;
                    break;
                }
                Some(_) => pos += 1,
            }
        }
    }
    Ok(pos)
}

/// `journalctl -o short-iso` (`2026-12-06T10:00:00+0100 host nginx[123]: msg`), and
/// rsyslog's RFC 3339 file format, which has the same fields.
fn journal(line: &[u8]) -> Result<Stripped, usize> {
    let stamp_end = word(line, 0)?;
    if !rfc3339_shape(&line[..stamp_end]) {
        return Err(0);
    }
    let host = space(line, stamp_end)?;
    let start = tag(line, space(line, word(line, host)?)?)?;
    Ok(Stripped::new(start, line.len(), (0, stamp_end)))
}

/// The CRI log format of Kubernetes, containerd and CRI-O:
/// `2026-12-06T10:00:00.123456789Z stdout F msg`, where the tag `P` marks a part of a line
/// that the next line of the stream continues, and `F` its last part (or a whole line).
fn cri(line: &[u8]) -> Result<Stripped, usize> {
    let stamp_end = word(line, 0)?;
    if !rfc3339_shape(&line[..stamp_end]) {
        return Err(0);
    }
    let stream_at = space(line, stamp_end)?;
    let stream_end = word(line, stream_at)?;
    let stream = match &line[stream_at..stream_end] {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(stream_at),
    };
    let tag_at = stream_end + 1;
    // The tag may be the last word (an empty message), and may carry more after a `:`.
    let tag_end = line[tag_at..]
        .iter()
        .position(|b| *b == b' ')
        .map_or(line.len(), |n| tag_at + n);
    let tag = &line[tag_at..tag_end];
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"F") => false,
        Some(b"P") => true,
        _ => return Err(tag_at),
    };
    let start = (tag_end + 1).min(line.len());
    Ok(Stripped {
        partial,
        stream,
        ..Stripped::new(start, line.len(), (0, stamp_end))
    })
}

/// Docker's json-file driver:
/// `{"log":"text\n","stream":"stdout","time":"2026-12-06T10:00:00.123456789Z"}`. Text
/// longer than Docker's buffer (16 KiB) is split over several lines, the last of which ends
/// with `\n`.
fn docker(line: &[u8]) -> Result<Stripped, usize> {
    const LOG: &[u8] = br#"{"log":""#;
    if !line.starts_with(LOG) {
        return Err(0);
    }
    let start = LOG.len();
    // The closing quote of the text.
    let mut pos = start;
    let mut escaped = false;
    let close = loop {
        let n = memchr::memchr2(b'"', b'\\', &line[pos..]).ok_or(line.len())?;
        pos += n;
        if line[pos] == b'"' {
            break pos;
        }
        escaped = true;
        pos += 2;
        if pos > line.len() {
            return Err(line.len());
        }
    };
    let rest = &line[close + 1..];
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    let after = close + 1;
    let stream = if rest.starts_with(br#","stream":"stdout""#) {
        Stream::Stdout
    } else if rest.starts_with(br#","stream":"stderr""#) {
        Stream::Stderr
    } else {
        return Err(after);
    };
    if rest.last() != Some(&b'}') {
        return Err(after + rest.len());
    }
    const TIME: &[u8] = br#""time":""#;
    let time = memchr::memmem::rfind(rest, TIME)
        .and_then(|at| {
            let from = at + TIME.len();
            let len = memchr::memchr(b'"', &rest[from..])?;
            Some((after + from, after + from + len))
        })
        .ok_or(after)?;
    // The text ends with an escaped newline when the backslash before the final `n` is
    // not itself escaped: an odd run of backslashes.
    let text = &line[start..close];
    let whole = text.ends_with(b"\\n")
        && text[..text.len() - 1]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count()
            % 2
            == 1;
    let end = if whole { close - 2 } else { close };
    Ok(Stripped {
        partial: !whole,
        stream,
        escaped: escaped && memchr::memchr(b'\\', &line[start..end]).is_some(),
        ..Stripped::new(start, end, time)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (wrapper, line, inner, time text, partial)
    type Case = (Wrapper, &'static str, &'static str, &'static str, bool);

    const COMBINED: &str = r#"167.71.13.196 - - [08/Jul/2021:11:07:07 +0000] "GET /wp-config.php HTTP/1.1" 200 5 "-" "Go-http-client/1.1""#;

    #[test]
    fn table_of_real_shaped_lines() {
        let cases: &[Case] = &[
            (
                Wrapper::Syslog,
                "Jul  8 11:07:07 ip-172-31-43-28.us-east-2.compute.internal nginx[2869]: X",
                "X",
                "Jul  8 11:07:07",
                false,
            ),
            (
                Wrapper::Syslog,
                "Jul 18 11:07:07 web1 nginx: X",
                "X",
                "Jul 18 11:07:07",
                false,
            ),
            (
                Wrapper::Syslog,
                "<190>Dec  1 00:00:01 2001:db8::7 nginx:X",
                "X",
                "Dec  1 00:00:01",
                false,
            ),
            (
                Wrapper::Syslog,
                "Jul  8 11:07:07 web1 postfix/smtpd[12]: X",
                "X",
                "Jul  8 11:07:07",
                false,
            ),
            (
                Wrapper::Rfc5424,
                "<165>1 2026-12-06T10:00:00.123Z web1 nginx 2869 access - X",
                "X",
                "2026-12-06T10:00:00.123Z",
                false,
            ),
            (
                Wrapper::Rfc5424,
                "1 2026-12-06T10:00:00+01:00 2001:db8::7 nginx - - - X",
                "X",
                "2026-12-06T10:00:00+01:00",
                false,
            ),
            (
                Wrapper::Rfc5424,
                r#"<34>1 - web1 app 1 ID47 [a@1 x="]\" y" z="\\"][b@1 q="1"] X"#,
                "X",
                "",
                false,
            ),
            (
                Wrapper::Rfc5424,
                "<34>1 2003-10-11T22:14:15.003Z web1 su - ID47 - \u{feff}X",
                "X",
                "2003-10-11T22:14:15.003Z",
                false,
            ),
            (
                Wrapper::Rfc5424,
                "<34>1 2003-10-11T22:14:15.003Z web1 su - ID47 -",
                "",
                "2003-10-11T22:14:15.003Z",
                false,
            ),
            (
                Wrapper::Journal,
                "2026-12-06T10:00:00+0100 web1 nginx[123]: X",
                "X",
                "2026-12-06T10:00:00+0100",
                false,
            ),
            (
                Wrapper::Journal,
                "2026-12-06T10:00:00.123456+01:00 web1 nginx: X",
                "X",
                "2026-12-06T10:00:00.123456+01:00",
                false,
            ),
            (
                Wrapper::Cri,
                "2026-12-06T10:00:00.123456789Z stdout F X",
                "X",
                "2026-12-06T10:00:00.123456789Z",
                false,
            ),
            (
                Wrapper::Cri,
                "2026-12-06T10:00:00.123456789+01:00 stderr P X",
                "X",
                "2026-12-06T10:00:00.123456789+01:00",
                true,
            ),
            (
                Wrapper::Cri,
                "2026-12-06T10:00:00.1Z stdout F",
                "",
                "2026-12-06T10:00:00.1Z",
                false,
            ),
            (
                Wrapper::Docker,
                r#"{"log":"X\n","stream":"stdout","time":"2026-12-06T10:00:00.123456789Z"}"#,
                "X",
                "2026-12-06T10:00:00.123456789Z",
                false,
            ),
            (
                Wrapper::Docker,
                r#"{"log":"X","stream":"stderr","attrs":{"a":"b"},"time":"2026-12-06T10:00:00Z"}"#,
                "X",
                "2026-12-06T10:00:00Z",
                true,
            ),
            (
                Wrapper::Docker,
                r#"{"log":"X\\n","stream":"stdout","time":"2026-12-06T10:00:00Z"}"#,
                r#"X\\n"#,
                "2026-12-06T10:00:00Z",
                true,
            ),
        ];
        for (wrapper, template, inner, time, partial) in cases {
            // The same line around a real inner line and around a stand-in.
            for body in ["X", COMBINED] {
                // Docker's text is JSON-escaped, and stays so in what strip finds.
                let body = match wrapper {
                    Wrapper::Docker => body.replace('"', r#"\""#),
                    _ => body.to_string(),
                };
                let body = body.as_str();
                let line = template.replacen('X', body, 1);
                let want_inner = inner.replacen('X', body, 1);
                let s = strip(*wrapper, line.as_bytes())
                    .unwrap_or_else(|at| panic!("{wrapper:?} {line}: fails at {at}"));
                let l = line.as_bytes();
                assert_eq!(&l[s.start..s.end], want_inner.as_bytes(), "{line}");
                assert_eq!(&l[s.time.0..s.time.1], time.as_bytes(), "{line}");
                assert_eq!(s.partial, *partial, "{line}");
            }
        }
    }

    #[test]
    fn streams_and_escapes_are_told() {
        let s = strip(Wrapper::Cri, b"2026-12-06T10:00:00Z stderr F:x 1.2.3.4 - -").unwrap();
        assert_eq!(s.stream, Stream::Stderr);
        let plain = br#"{"log":"a b\n","stream":"stdout","time":"2026-12-06T10:00:00Z"}"#;
        assert!(!strip(Wrapper::Docker, plain).unwrap().escaped);
        let quoted = br#"{"log":"a \"b\"\n","stream":"stdout","time":"2026-12-06T10:00:00Z"}"#;
        assert!(strip(Wrapper::Docker, quoted).unwrap().escaped);
    }

    #[test]
    fn other_lines_are_refused_not_misread() {
        let refused: &[(Wrapper, &str)] = &[
            (Wrapper::Syslog, COMBINED),
            (Wrapper::Syslog, "Jul  8 11:07:07 host-without-tag"),
            (Wrapper::Syslog, "Jul  8 11:07:07 host 1.2.3.4 - -"),
            (Wrapper::Syslog, "<1234>Jul  8 11:07:07 h t: x"),
            (Wrapper::Syslog, "Jul  8"),
            (Wrapper::Rfc5424, "<34>0 - h a p m - x"),
            (Wrapper::Rfc5424, "<34>1 - h a p m [unclosed x=\"]\""),
            (Wrapper::Rfc5424, "<34>1 yesterday h a p m - x"),
            (Wrapper::Rfc5424, "<34>1 - h a p"),
            (Wrapper::Journal, COMBINED),
            (Wrapper::Journal, "2026-12-06T10:00:00.1Z stdout F {}"),
            (Wrapper::Journal, "-- Boot 0123456789abcdef --"),
            (Wrapper::Cri, "2026-12-06T10:00:00+0100 web1 nginx[123]: x"),
            (Wrapper::Cri, "2026-12-06T10:00:00Z stdin F x"),
            (Wrapper::Cri, "2026-12-06T10:00:00Z stdout"),
            (Wrapper::Docker, r#"{"log":"x\n","stream":"stdout""#),
            (Wrapper::Docker, r#"{"log":"x\"#),
            (Wrapper::Docker, r#"{"time":"x","log":"x\n"}"#),
            (Wrapper::Docker, r#"{"log":"x\n","stream":"stdout"}"#),
        ];
        for (wrapper, line) in refused {
            assert!(
                strip(*wrapper, line.as_bytes()).is_err(),
                "{wrapper:?} took {line}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let alphabet = b" :[]<>\"\\{}0123456789TZ-+.PFstdoutlg,\xff\n";
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let line: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 50)) as usize + i * 7) % alphabet.len()])
                .collect();
            for w in super::super::WRAPPERS {
                if let Ok(s) = strip(w.0, &line) {
                    assert!(s.start <= s.end && s.end <= line.len());
                    assert!(s.time.0 <= s.time.1 && s.time.1 <= line.len());
                }
            }
        }
    }
}

//! Wrappers: what a logging system puts around an access-log line when the server does not
//! write the file itself (syslog, the systemd journal, container runtimes). Owns the
//! [`Wrapper`]s, a wrapped [`Format`] ([`Wrapped`]), the per-stream state that joins
//! continued lines and decodes Docker's JSON ([`Unwrapper`]), and choosing a wrapper from a
//! file's first lines. The inner line is parsed by an ordinary format, which knows nothing
//! of wrappers; the grammars are in [`strip`](mod@strip), Docker's string escapes in
//! [`json_string`].
//!
//! The wrapper's time is used only when the inner line has none. An inner line that is a
//! slice of the line (every wrapper but Docker's escaped text and joined parts) is parsed
//! in place, and its record's address spans are shifted to index the whole line, so a
//! rewrite replaces exactly those bytes and keeps the wrapper as it was.

pub mod json_string;
pub mod strip;

use super::parser::{ErrorKind, ParseError};
use super::record::Record;
use super::time::{self, TimeCache};
use super::{Detected, Format};
pub use strip::{Stream, Stripped, strip};

/// A kind of wrapper, named in `--format` as `NAME:INNER` (`syslog:combined`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapper {
    /// RFC 3164 as rsyslog writes it: `Jul  8 11:07:07 host nginx[2869]: ...`.
    Syslog,
    /// RFC 5424: `<165>1 2026-12-06T10:00:00.123Z host app procid msgid - ...`.
    Rfc5424,
    /// `journalctl -o short-iso` (and rsyslog's RFC 3339 file format):
    /// `2026-12-06T10:00:00+0100 host nginx[123]: ...`.
    Journal,
    /// CRI container logs (Kubernetes, containerd, CRI-O): `TIME stdout F ...`.
    Cri,
    /// Docker's json-file driver: `{"log":"...\n","stream":"stdout","time":"..."}`.
    Docker,
}

/// Every wrapper with its name and a description, in the order `auto` tries them.
pub const WRAPPERS: &[(Wrapper, &str, &str)] = &[
    (
        Wrapper::Docker,
        "docker",
        "Docker json-file: {\"log\":\"...\",\"stream\":...,\"time\":...}",
    ),
    (
        Wrapper::Cri,
        "cri",
        "CRI container logs (Kubernetes, containerd, CRI-O): TIME stdout|stderr F|P ...",
    ),
    (
        Wrapper::Rfc5424,
        "rfc5424",
        "RFC 5424 syslog: <PRI>1 TIME HOST APP PROCID MSGID SD ...",
    ),
    (
        Wrapper::Journal,
        "journal",
        "journalctl -o short-iso, rsyslog RFC 3339 files: TIME HOST TAG: ...",
    ),
    (
        Wrapper::Syslog,
        "syslog",
        "RFC 3164 syslog as rsyslog writes it: Mmm dd HH:MM:SS HOST TAG: ...",
    ),
];

impl Wrapper {
    /// The wrapper `--format` names `name` (`syslog`, `cri`).
    pub fn by_name(name: &str) -> Option<Wrapper> {
        WRAPPERS.iter().find(|w| w.1 == name).map(|w| w.0)
    }

    /// Its name in `--format` (`syslog`).
    pub fn name(self) -> &'static str {
        WRAPPERS
            .iter()
            .find(|w| w.0 == self)
            .map_or("wrapper", |w| w.1)
    }

    /// The wrapper's timestamp as [`Stripped::time`] found it, as UTC seconds.
    pub fn time(self, text: &[u8]) -> Option<i64> {
        match self {
            Wrapper::Syslog => time::bsd_syslog(text, now()),
            _ => time::iso8601(text),
        }
    }

    /// Whether one line of this wrapper can hold only a part of an inner line: its lines
    /// are not independent, so a file cannot be read in ranges, nor a line filtered alone.
    pub fn joins(self) -> bool {
        matches!(self, Wrapper::Cri | Wrapper::Docker)
    }
}

/// The time of the run, read once: the year of an RFC 3164 timestamp is inferred from it.
fn now() -> i64 {
    static NOW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *NOW.get_or_init(crate::timefmt::unix_now)
}

/// A wrapper around a format: `syslog:combined`.
#[derive(Clone, Debug)]
pub struct Wrapped {
    /// The wrapper around each line.
    pub wrapper: Wrapper,
    /// Never itself wrapped.
    pub inner: Format,
    /// `wrapper:inner`, as `--format` takes it.
    pub name: String,
}

impl Wrapped {
    /// `inner` inside `wrapper`, named `wrapper:inner`.
    pub fn new(wrapper: Wrapper, inner: Format) -> Wrapped {
        let name = format!("{}:{}", wrapper.name(), inner.name());
        Wrapped {
            wrapper,
            inner,
            name,
        }
    }

    /// Parses one line without a reader's state: only lines whose inner line is a slice of
    /// them. Parts of a continued line are refused ([`ErrorKind::Partial`]), and so is
    /// Docker text with escapes (only an [`Unwrapper`] can decode it).
    pub fn parse_into<'a>(
        &self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
    ) -> Result<(), ParseError> {
        let s = strip_line(self.wrapper, line)?;
        if s.partial {
            return Err(ParseError::new(ErrorKind::Partial, s.start));
        }
        if s.escaped {
            return Err(ParseError::new(ErrorKind::Mismatch, s.start));
        }
        parse_slice(
            self,
            line,
            (s.start, s.end),
            &line[s.time.0..s.time.1],
            cache,
            rec,
        )
    }
}

/// [`strip`], with a blank line an empty line (as unwrapped formats see it), not a line
/// outside the wrapper.
fn strip_line(wrapper: Wrapper, line: &[u8]) -> Result<Stripped, ParseError> {
    if line.is_empty() || line == b"\r" {
        return Err(ParseError::new(ErrorKind::Empty, 0));
    }
    strip(wrapper, line).map_err(|at| ParseError::new(ErrorKind::NotWrapped, at))
}

/// Parses the inner line `line[start..end]` in place: the record indexes the whole line.
/// `time` is the wrapper's timestamp as written.
fn parse_slice<'a>(
    w: &Wrapped,
    line: &'a [u8],
    (start, end): (usize, usize),
    time: &[u8],
    cache: &mut TimeCache,
    rec: &mut Record<'a>,
) -> Result<(), ParseError> {
    w.inner
        .parse_into(&line[start..end], cache, rec)
        .map_err(|e| ParseError::new(e.kind, start + e.column as usize))?;
    rec.line = line;
    rec.addr_fields.shift(start);
    if rec.time.is_none() {
        rec.time = w.wrapper.time(time);
    }
    Ok(())
}

/// The per-stream state of reading a wrapped format: the parts of continued lines waiting
/// for their last part, and the decoded text of the last Docker line. One per reader,
/// like a [`TimeCache`]; its buffers are reused from line to line.
///
/// **Memory.** A continued line is held until its last part arrives, one per stream
/// (stdout and stderr), each at most [`crate::input::read::max_line`] bytes (`--max-line`):
/// a longer chain of parts is dropped as it comes and its last part reported as
/// [`ErrorKind::TooLong`]. A part that never gets its last part costs that much until the
/// reader ends.
pub struct Unwrapper {
    format: Wrapped,
    state: State,
}

struct State {
    wrapper: Wrapper,
    /// Continued lines, by [`Stream`].
    pending: [Pending; 2],
    /// The decoded text of the last Docker line that had escapes.
    decoded: Vec<u8>,
    limit: usize,
}

#[derive(Default)]
struct Pending {
    /// The parts so far (Docker parts decoded).
    text: Vec<u8>,
    /// Some part was received (the text may still be empty).
    open: bool,
    /// The parts so far are over the limit; their text was dropped.
    too_long: bool,
    /// `text` holds a line handed out already: cleared before the next part.
    handed_out: bool,
}

/// What one physical line of a wrapped format comes to.
pub enum Unwrapped<'a> {
    /// An inner line to parse: a slice of the physical line at `shift`, or (`shift` is
    /// `None`) text joined or decoded into the unwrapper's buffers. `time` is the wrapper's
    /// timestamp as written.
    Inner {
        /// The inner line.
        text: &'a [u8],
        /// Where `text` starts in the physical line, when it is a slice of it.
        shift: Option<usize>,
        /// The wrapper's timestamp as written; empty when it has none.
        time: &'a [u8],
    },
    /// A part of a line, kept until its last part.
    Partial,
    /// Not a line of the wrapper, or a part chain over the limit.
    Failed(ParseError),
}

impl Unwrapper {
    /// A reader of `format`'s lines, with no part pending.
    pub fn new(format: &Wrapped) -> Unwrapper {
        Unwrapper {
            format: format.clone(),
            state: State {
                wrapper: format.wrapper,
                pending: Default::default(),
                decoded: Vec::new(),
                limit: crate::input::read::max_line(),
            },
        }
    }

    /// The format it reads.
    pub fn format(&self) -> &Wrapped {
        &self.format
    }

    /// The inner line of `line`, joining and decoding as needed.
    pub fn unwrap<'a>(&'a mut self, line: &'a [u8]) -> Unwrapped<'a> {
        self.state.unwrap(line)
    }

    /// Parses one physical line into `rec`: like [`Format::parse_into`], except that a part
    /// of a continued line is [`ErrorKind::Partial`] (neither a record nor an error of the
    /// file) and its last part gives the record of the whole line, whose text is then the
    /// joined inner line. A record of an inner line parsed in place indexes the whole
    /// physical line, wrapper included.
    pub fn parse_into<'a>(
        &'a mut self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
    ) -> Result<(), ParseError> {
        let format = &self.format;
        match self.state.unwrap(line) {
            Unwrapped::Inner {
                shift: Some(start),
                text,
                time,
            } => parse_slice(format, line, (start, start + text.len()), time, cache, rec),
            Unwrapped::Inner {
                shift: None,
                text,
                time,
            } => {
                format.inner.parse_into(text, cache, rec)?;
                if rec.time.is_none() {
                    rec.time = format.wrapper.time(time);
                }
                Ok(())
            }
            Unwrapped::Partial => Err(ParseError::new(ErrorKind::Partial, 0)),
            Unwrapped::Failed(e) => Err(e),
        }
    }
}

impl State {
    fn unwrap<'a>(&'a mut self, line: &'a [u8]) -> Unwrapped<'a> {
        let s = match strip_line(self.wrapper, line) {
            Ok(s) => s,
            Err(e) => return Unwrapped::Failed(e),
        };
        let time = &line[s.time.0..s.time.1];
        let text = &line[s.start..s.end];
        if !self.wrapper.joins() {
            return Unwrapped::Inner {
                text,
                shift: Some(s.start),
                time,
            };
        }
        let limit = self.limit;
        let pending = &mut self.pending[s.stream as usize];
        if pending.handed_out {
            pending.text.clear();
            pending.open = false;
            pending.too_long = false;
            pending.handed_out = false;
        }
        if !s.partial && !pending.open {
            // A whole line, the common case.
            if !s.escaped {
                return Unwrapped::Inner {
                    text,
                    shift: Some(s.start),
                    time,
                };
            }
            self.decoded.clear();
            if let Err(at) = json_string::decode(text, &mut self.decoded, None) {
                return Unwrapped::Failed(ParseError::new(ErrorKind::NotWrapped, s.start + at));
            }
            return Unwrapped::Inner {
                text: &self.decoded,
                shift: None,
                time,
            };
        }
        pending.open = true;
        if !pending.too_long {
            let before = pending.text.len();
            let decoded = if s.escaped {
                json_string::decode(text, &mut pending.text, None)
            } else {
                pending.text.extend_from_slice(text);
                Ok(())
            };
            if let Err(at) = decoded {
                pending.text.truncate(before);
                return Unwrapped::Failed(ParseError::new(ErrorKind::NotWrapped, s.start + at));
            }
            if pending.text.len() > limit {
                pending.too_long = true;
                pending.text = Vec::new();
            }
        }
        if s.partial {
            return Unwrapped::Partial;
        }
        pending.handed_out = true;
        if pending.too_long {
            return Unwrapped::Failed(ParseError::new(ErrorKind::TooLong, limit));
        }
        Unwrapped::Inner {
            text: &pending.text,
            shift: None,
            time,
        }
    }
}

/// The wrapper most of `sample` is written in, when at least half of its non-empty lines
/// are; then the format of the inner lines from [`super::detect`]'s presets.
pub(super) fn detect<'a>(sample: impl IntoIterator<Item = &'a [u8]> + Clone) -> Option<Detected> {
    let lines: Vec<&[u8]> = sample
        .into_iter()
        .filter(|l| !l.is_empty() && *l != b"\r")
        .collect();
    let (wrapper, stripped) = WRAPPERS
        .iter()
        .map(|w| (w.0, lines.iter().filter(|l| strip(w.0, l).is_ok()).count()))
        .max_by_key(|(_, n)| *n)?;
    if stripped == 0 || 2 * stripped < lines.len() {
        return None;
    }
    let mut unwrapper = Unwrapper::new(&Wrapped::new(wrapper, Format::Json));
    let mut inner: Vec<Vec<u8>> = Vec::new();
    for line in &lines {
        if let Unwrapped::Inner { text, .. } = unwrapper.unwrap(line) {
            inner.push(text.to_vec());
        }
    }
    let d = super::detect_unwrapped(inner.iter().map(Vec::as_slice))?;
    Some(Detected {
        format: Format::Wrapped(Box::new(Wrapped::new(wrapper, d.format))),
        ..d
    })
}

#[cfg(test)]
mod tests;

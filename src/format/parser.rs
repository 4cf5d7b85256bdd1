//! Runs compiled [`Step`]s over one line and fills a [`Record`]. No allocation: fields are
//! slices of the line, numbers are parsed from ASCII, delimiters are found with memchr.

use super::clf::Layout;
use super::compile::{FieldEnd, FieldKind, Step};
use super::fields::{
    begins_with, dash_none, find_closing_quote, find_literal, number, set_client, set_client_field,
    split_request, vhost_host,
};
use super::record::{AddrField, AddrKind, Record, Span};
use super::time::{self, TimeCache};

/// Why a line did not parse: a small `Copy` value, counted per file and reported for the
/// first few lines as `path:line: reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset in the line where parsing stopped.
    pub column: u32,
}

/// The kinds of [`ParseError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// An empty line.
    Empty,
    /// The text at `column` does not match the format's literal text.
    Mismatch,
    /// A quoted field has no closing quote.
    Unterminated,
    /// The time field is not a timestamp the format reads.
    BadTime,
    /// The status field is not a number below 1000, nor `-`.
    BadStatus,
    /// The size field is not a number, nor `-`.
    BadBytes,
    /// Text after the last field of a strict format.
    Trailing,
    /// A line of a JSON format that is not a JSON object.
    NotJson,
    /// A JSON line without any field logward reads.
    NoFields,
    /// Longer than the longest line logward reads.
    TooLong,
    /// A vhost field that is not a host name: an address list (`198.51.100.1,`) read as a
    /// vhost would leave its first address unmasked.
    BadVhost,
    /// Quoted fields that cannot be told apart: a value written without escapes holds
    /// `" "` (Envoy's text log), and guessing would let a client choose the fields.
    Ambiguous,
    /// A line that is not in the form of the wrapper its format names (`syslog:combined`).
    NotWrapped,
    /// A part of a line that a container runtime split; the next part of its stream
    /// continues it. Neither a record nor an error: the last part gives the record.
    Partial,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            ErrorKind::Empty => "empty line",
            ErrorKind::Mismatch => "does not match the format",
            ErrorKind::BadVhost => "the virtual host field holds a list, not a host name",
            ErrorKind::Unterminated => "unterminated quoted field",
            ErrorKind::BadTime => "unreadable timestamp",
            ErrorKind::BadStatus => "status is not a number",
            ErrorKind::BadBytes => "size is not a number",
            ErrorKind::Trailing => "unexpected text after the last field",
            ErrorKind::NotJson => "not a JSON object",
            ErrorKind::NoFields => "JSON object without any known field",
            ErrorKind::TooLong => "line too long",
            ErrorKind::Ambiguous => {
                "a header value holds '\" \"': the quoted fields cannot be told apart"
            }
            ErrorKind::NotWrapped => "not in the form of the format's wrapper",
            ErrorKind::Partial => "part of a line continued on the next line",
        };
        write!(f, "{what} (at byte {})", self.column + 1)
    }
}

impl ParseError {
    /// An error of `kind` at byte `column` of the line (saturated to `u32::MAX`).
    pub fn new(kind: ErrorKind, column: usize) -> ParseError {
        ParseError {
            kind,
            column: column.min(u32::MAX as usize) as u32,
        }
    }
}

/// A compiled text format (preset, nginx or Apache).
#[derive(Clone, Debug)]
pub struct LineFormat {
    steps: Vec<Step>,
    /// Presets accept extra fields after the last one (servers append their own);
    /// a format string the user gave must match the whole line.
    allow_trailing: bool,
    /// Whether the client field is parsed into [`Record::client`]; a rewrite masks the
    /// field's text and has no use for it.
    client_address: bool,
    /// The steps as [`parse`](Self::parse) runs them, worked out once.
    ops: Vec<Op>,
    /// The preset these steps are, when they are one of the CLF-shaped ones: their lines
    /// go through a parser written out for them first (see [`super::clf`]).
    clf: Option<Layout>,
}

/// One step as the parser runs it: what depends only on the format is decided when the
/// format is made, not on every line.
#[derive(Clone, Debug)]
enum Op {
    Literal(Box<[u8]>),
    Field {
        kind: FieldKind,
        end: FieldEnd,
        /// The literal after this field is the last step of a strict format, so it must
        /// end the line.
        closes: bool,
        /// A client field ended by a space: a comma before the space continues a list.
        list: bool,
        /// The length of the next step's literal when it is this field's end literal (as
        /// `link` compiles every field followed by a literal): every way of finding the
        /// field's end checks that the literal begins there, so the step is folded into
        /// this one and its bytes are stepped over without comparing them again.
        skip: usize,
    },
}

impl Op {
    fn compile(steps: &[Step], allow_trailing: bool) -> Vec<Op> {
        let last = steps.len().wrapping_sub(1);
        let mut ops = Vec::with_capacity(steps.len());
        let mut i = 0;
        while let Some(step) = steps.get(i) {
            i += 1;
            let (kind, end) = match step {
                Step::Literal(lit) => {
                    ops.push(Op::Literal(lit.clone()));
                    continue;
                }
                Step::Field { kind, end, .. } => (kind, end),
            };
            let closes = i == last && !allow_trailing;
            let skip = match (end, steps.get(i)) {
                (FieldEnd::Literal(after) | FieldEnd::Quoted(after), Some(Step::Literal(next)))
                    if after == next =>
                {
                    i += 1;
                    after.len()
                }
                _ => 0,
            };
            let list = *kind == FieldKind::Client
                && matches!(end, FieldEnd::Literal(after) if after.first() == Some(&b' '))
                && !closes;
            ops.push(Op::Field {
                kind: kind.clone(),
                end: end.clone(),
                closes,
                list,
                skip,
            });
        }
        ops
    }
}

impl LineFormat {
    /// The format of compiled `steps`. With `allow_trailing`, text after the last field is
    /// accepted (presets), else it is an error.
    pub fn new(steps: Vec<Step>, allow_trailing: bool) -> LineFormat {
        let ops = Op::compile(&steps, allow_trailing);
        let clf = Layout::of(&steps, allow_trailing);
        LineFormat {
            steps,
            allow_trailing,
            client_address: true,
            ops,
            clf,
        }
    }

    /// This format without the parser written out for CLF-shaped presets: every line goes
    /// through the step interpreter. For tests and the fuzz target, which compare the two.
    #[doc(hidden)]
    pub fn interpreted(&self) -> LineFormat {
        LineFormat {
            clf: None,
            ..self.clone()
        }
    }

    /// Whether lines go through the parser written out for a CLF-shaped preset first.
    #[doc(hidden)]
    pub fn has_fast_path(&self) -> bool {
        self.clf.is_some()
    }

    /// This format, leaving [`Record::client`] `None`: the client field is still found and
    /// listed in the address fields, with [`Record::client_text`], but not parsed.
    pub fn without_client_address(&self) -> LineFormat {
        LineFormat {
            client_address: false,
            ..self.clone()
        }
    }

    /// The compiled steps, in line order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Parses one line (without its terminator; a trailing `\r` is ignored).
    pub fn parse<'a>(
        &self,
        line: &'a [u8],
        cache: &mut TimeCache,
    ) -> Result<Record<'a>, ParseError> {
        let mut rec = Record::default();
        self.parse_into(line, cache, &mut rec).map(|()| rec)
    }

    /// [`parse`](Self::parse) into a record the caller owns, which is overwritten, so a
    /// record is not copied out on every line. On an error `rec` holds what was read.
    pub fn parse_into<'a>(
        &self,
        line: &'a [u8],
        cache: &mut TimeCache,
        rec: &mut Record<'a>,
    ) -> Result<(), ParseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Err(ParseError::new(ErrorKind::Empty, 0));
        }
        if let Some(layout) = self.clf {
            if layout.parse(line, cache, rec, self.client_address) {
                return Ok(());
            }
        }
        *rec = Record {
            line,
            ..Record::default()
        };
        let mut pos = 0usize;
        for op in &self.ops {
            let (kind, end, closes, list, skip) = match op {
                Op::Literal(lit) => {
                    if !begins_with(&line[pos..], lit) {
                        return Err(ParseError::new(ErrorKind::Mismatch, pos));
                    }
                    pos += lit.len();
                    continue;
                }
                Op::Field {
                    kind,
                    end,
                    closes,
                    list,
                    skip,
                } => (kind, end, *closes, *list, *skip),
            };
            let stop = match end {
                FieldEnd::EndOfLine => {
                    if self.allow_trailing {
                        memchr::memchr(b' ', &line[pos..]).map_or(line.len(), |o| pos + o)
                    } else {
                        line.len()
                    }
                }
                FieldEnd::Quoted(after) => find_closing_quote(line, pos, after, closes)
                    .ok_or(ParseError::new(ErrorKind::Unterminated, pos))?,
                FieldEnd::Literal(after) => {
                    let found = if closes {
                        // The closing literal must end the line.
                        let q = line.len().checked_sub(after.len());
                        q.filter(|&q| begins_with(&line[q..], after))
                    } else {
                        find_literal(line, pos, after)
                    };
                    let mut stop = found
                        .filter(|&s| s >= pos)
                        .ok_or(ParseError::new(ErrorKind::Mismatch, pos))?;
                    // A client field may hold a list (`10.0.0.2, 10.0.0.1`) that nginx
                    // writes with spaces: a comma before the space continues it.
                    if list {
                        while stop > pos && line[stop - 1] == b',' {
                            match find_literal(line, stop + 1, after) {
                                Some(next) => stop = next,
                                None => break,
                            }
                        }
                    }
                    stop
                }
            };
            self.field(rec, kind, line, Span::new(pos, stop), cache)?;
            // `skip` is the end literal found at `stop` (see `Op::Field`).
            pos = stop + skip;
        }
        if pos != line.len() && !(self.allow_trailing && line[pos] == b' ') {
            return Err(ParseError::new(ErrorKind::Trailing, pos));
        }
        Ok(())
    }

    fn field<'a>(
        &self,
        rec: &mut Record<'a>,
        kind: &FieldKind,
        line: &'a [u8],
        span: Span,
        cache: &mut TimeCache,
    ) -> Result<(), ParseError> {
        let text = span.of(line);
        let bad = |k| ParseError::new(k, span.start as usize);
        match kind {
            FieldKind::Client if self.client_address => set_client(rec, line, span),
            FieldKind::Client => {
                set_client_field(rec, line, span);
            }
            FieldKind::OtherAddr => {
                if text != b"-" && !text.is_empty() {
                    rec.addr_fields.push(AddrField {
                        kind: AddrKind::Other,
                        span,
                    });
                }
            }
            FieldKind::ForwardedFor => {
                if text != b"-" && !text.is_empty() {
                    rec.addr_fields.push(AddrField {
                        kind: AddrKind::ForwardedFor,
                        span,
                    });
                }
            }
            FieldKind::User | FieldKind::Opaque => {}
            FieldKind::TimeClf => rec.time = Some(cache.clf(text).ok_or(bad(ErrorKind::BadTime))?),
            FieldKind::TimeIso => {
                rec.time = Some(time::iso8601(text).ok_or(bad(ErrorKind::BadTime))?)
            }
            FieldKind::TimeEpoch(scale) => {
                rec.time = Some(time::epoch(text, *scale).ok_or(bad(ErrorKind::BadTime))?)
            }
            FieldKind::TimeStrftime(parts) => {
                rec.time = Some(time::strftime(parts, text).ok_or(bad(ErrorKind::BadTime))?)
            }
            FieldKind::Request => split_request(rec, text),
            FieldKind::Method => rec.method = dash_none(text),
            FieldKind::Target | FieldKind::Path => rec.target = dash_none(text),
            FieldKind::Protocol => rec.protocol = dash_none(text),
            FieldKind::Status => {
                if text != b"-" {
                    let s = number(text)
                        .filter(|s| *s < 1000)
                        .ok_or(bad(ErrorKind::BadStatus))?;
                    rec.status = Some(s as u16);
                }
            }
            FieldKind::Bytes => {
                if text != b"-" {
                    // With several size fields (`%b` and `%O`), the first one wins.
                    let n = number(text).ok_or(bad(ErrorKind::BadBytes))?;
                    rec.bytes.get_or_insert(n);
                }
            }
            FieldKind::Referer => rec.referer = dash_none(text),
            FieldKind::UserAgent => rec.user_agent = dash_none(text),
            FieldKind::Vhost => {
                if text.contains(&b',') {
                    return Err(bad(ErrorKind::BadVhost));
                }
                if rec.vhost.is_none() {
                    rec.vhost = dash_none(text)
                }
            }
            FieldKind::VhostPort => {
                if text.contains(&b',') {
                    return Err(bad(ErrorKind::BadVhost));
                }
                rec.vhost = dash_none(vhost_host(text))
            }
        }
        Ok(())
    }
}

/// The start of a parser of its own (HAProxy, Envoy): `line` without its `\r`, with
/// `rec` reset to hold only it; an empty line is an error.
pub(super) fn start_record<'a>(
    line: &'a [u8],
    rec: &mut Record<'a>,
) -> Result<&'a [u8], ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    *rec = Record {
        line,
        ..Record::default()
    };
    if line.is_empty() {
        return Err(ParseError::new(ErrorKind::Empty, 0));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::super::compile::compile_nginx;
    use super::*;

    #[test]
    fn strict_format_rejects_trailing_text() {
        let f = LineFormat::new(
            compile_nginx("$remote_addr [$time_local] $status").unwrap(),
            false,
        );
        let mut c = TimeCache::new();
        let ok = f
            .parse(b"1.2.3.4 [17/May/2015:10:05:03 +0000] 200", &mut c)
            .unwrap();
        assert_eq!(ok.status, Some(200));
        let err = f
            .parse(b"1.2.3.4 [17/May/2015:10:05:03 +0000] 200 x", &mut c)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadStatus);
    }
}

//! `Record<'a>`: one parsed access-log line, borrowing the line's bytes.
//!
//! A record never allocates: text fields are slices of the line, numbers are parsed up front,
//! and the byte spans of every field that can hold an address are kept inline so the
//! anonymizer can replace exactly those bytes. It does not know how it was parsed.

use std::net::IpAddr;

/// A half-open byte range `start..end` into the line a record was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset just past the last byte.
    pub end: u32,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The span as a range of `usize`, for slicing.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the span covers no byte.
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }

    /// The bytes of `line` this span covers. Spans are only ever made from the line they
    /// index, so a failure here is a bug; it still returns an empty slice rather than panic.
    pub fn of(self, line: &[u8]) -> &[u8] {
        line.get(self.range()).unwrap_or(&[])
    }
}

/// What an address-bearing field holds, so callers can treat a forwarded-for list
/// differently from the client itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrKind {
    /// The connecting client (`$remote_addr`, `%h`, `%a`, JSON `remote_ip`...).
    Client,
    /// A comma-separated list of addresses (`X-Forwarded-For`).
    ForwardedFor,
    /// Any other single-address field (`$realip_remote_addr`, `%{c}a`, a JSON `server_ip`...).
    Other,
}

/// One address-bearing field: its kind and its byte span in the line. The span covers the
/// whole field as written (brackets, port, or a whole list); see [`crate::format::addr`] to
/// split it into addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrField {
    /// What the field holds.
    pub kind: AddrKind,
    /// The whole field as written.
    pub span: Span,
}

/// The most address-bearing fields one record keeps. Real formats have one to three.
pub const MAX_ADDR_FIELDS: usize = 8;

/// The address-bearing fields of one record, stored inline.
#[derive(Clone, Copy, Debug)]
pub struct AddrFields {
    fields: [AddrField; MAX_ADDR_FIELDS],
    len: u8,
}

impl AddrFields {
    const EMPTY: AddrFields = AddrFields {
        fields: [AddrField {
            kind: AddrKind::Other,
            span: Span { start: 0, end: 0 },
        }; MAX_ADDR_FIELDS],
        len: 0,
    };
}

/// Two lists are equal when they hold the same fields; the unused slots do not count.
impl PartialEq for AddrFields {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for AddrFields {}

impl Default for AddrFields {
    fn default() -> Self {
        // A constant, copied in a few wide moves rather than written field by field: a
        // record is made for every line.
        AddrFields::EMPTY
    }
}

impl AddrFields {
    /// Adds a field; a format with more than [`MAX_ADDR_FIELDS`] is refused when compiled,
    /// so extra fields cannot occur, and are ignored if they do.
    pub fn push(&mut self, field: AddrField) {
        if (self.len as usize) < MAX_ADDR_FIELDS {
            self.fields[self.len as usize] = field;
            self.len += 1;
        }
    }

    /// The fields, in the order they were pushed.
    pub fn as_slice(&self) -> &[AddrField] {
        &self.fields[..self.len as usize]
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there is no field.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Puts the fields back in line order after one was added out of order.
    pub fn sort(&mut self) {
        self.fields[..self.len as usize].sort_unstable_by_key(|f| f.span.start);
    }

    /// Removes every field, for the next line.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Moves every span `by` bytes on: the fields of an inner line parsed as a slice of a
    /// wrapped line (see [`crate::format::wrap`]) then index the whole line.
    pub fn shift(&mut self, by: usize) {
        let by = by as u32;
        for f in &mut self.fields[..self.len as usize] {
            f.span.start += by;
            f.span.end += by;
        }
    }
}

/// One parsed line. Absent fields and fields written as `-` are `None`. Records compare
/// field by field (text by its bytes), which is how tests hold two parsers to one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record<'a> {
    /// The whole line, without its line terminator.
    pub line: &'a [u8],
    /// The client address, when the client field holds one (it may hold a host name).
    pub client: Option<IpAddr>,
    /// The client field as written (address, `[v6]:port`, host name, or a list).
    pub client_text: Option<&'a [u8]>,
    /// Request time as UTC seconds since the Unix epoch, offset applied.
    pub time: Option<i64>,
    /// Request method as written (`GET`).
    pub method: Option<&'a [u8]>,
    /// Path and query, as written.
    pub target: Option<&'a [u8]>,
    /// Protocol as written (`HTTP/1.1`).
    pub protocol: Option<&'a [u8]>,
    /// The raw request line (`"$request"`, `%r`) when the format has one.
    pub request: Option<&'a [u8]>,
    /// Response status code.
    pub status: Option<u16>,
    /// Response size in bytes; of several size fields, the first.
    pub bytes: Option<u64>,
    /// The `Referer` header.
    pub referer: Option<&'a [u8]>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a [u8]>,
    /// The virtual host the request was for (`$host`, `%v`).
    pub vhost: Option<&'a [u8]>,
    /// Every field that can hold an address, in line order.
    pub addr_fields: AddrFields,
}

impl<'a> Record<'a> {
    /// The client address with IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) turned into IPv4,
    /// which is what detection and search group and match on.
    pub fn source(&self) -> Option<IpAddr> {
        self.client.map(|a| a.to_canonical())
    }

    /// Where `part`, a slice of this record's line (such as its `referer`), lies in the
    /// line. `None` for a value that is not in the line as written (a JSON string with
    /// escapes is unescaped into other memory).
    pub fn span_of(&self, part: &[u8]) -> Option<Span> {
        let base = self.line.as_ptr() as usize;
        let at = (part.as_ptr() as usize).checked_sub(base)?;
        (at + part.len() <= self.line.len()).then(|| Span::new(at, at + part.len()))
    }

    /// The path part of the target, without the query string.
    pub fn path(&self) -> Option<&'a [u8]> {
        self.target.map(|t| match memchr::memchr(b'?', t) {
            Some(q) => &t[..q],
            None => t,
        })
    }

    /// The query string without its `?`, when there is one.
    pub fn query(&self) -> Option<&'a [u8]> {
        self.target
            .and_then(|t| memchr::memchr(b'?', t).map(|q| &t[q + 1..]))
    }
}

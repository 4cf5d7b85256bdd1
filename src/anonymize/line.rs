//! Rewriting one log line with its addresses masked. Owns which bytes of a line are
//! replaced; what they are replaced with is the [`Masker`]'s job, the check that nothing
//! else changed is [`verify`](super::verify), and file handling is `crate::rewrite`.
//!
//! **What is replaced.** The promise is that no full address remains in the line:
//!
//! * For a parsed line (`Some(fields)`), every address in its address fields: each element
//!   of an `X-Forwarded-For` list (via [`split_list`]); the address of a client or other
//!   field (via [`parse_host`], so brackets and ports stay); a host name in a client field
//!   (rule in the [module docs](super)). `-` and empty fields stay as they are; a field
//!   holding something else is searched for address tokens. Then every address token
//!   anywhere else in the line (a referer or a query string can carry one), found by
//!   [`tokens`](crate::format::tokens) over the whole line with tokens inside the fields skipped.
//! * For a line the parser could not read (`None`), every address token.
//!
//! Every other byte is copied unchanged. Unspecified addresses (`0.0.0.0`, `::`) identify
//! nobody and are left as written. With [`Select::Only`] (erasure requests) only addresses
//! inside the given networks are replaced, and host names are left alone.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Masker, is_host_name};
use crate::bytes::word_at;
use crate::format::addr::{parse_host, parse_ipv4, parse_v6, split_list};
use crate::format::record::{AddrField, AddrKind, MAX_ADDR_FIELDS, Span};
use crate::format::tokens::tokens;

/// Which addresses to mask.
#[derive(Clone, Copy, Debug)]
pub enum Select<'a> {
    /// Every address and client host name (retention runs).
    All,
    /// Only addresses inside one of these networks (erasure requests). An IPv4-mapped
    /// address matches the network of its IPv4 form.
    Only(&'a [IpNet]),
}

impl Select<'_> {
    /// Whether `addr` is to be masked.
    #[inline]
    pub fn matches(self, addr: IpAddr) -> bool {
        match self {
            Select::All => true,
            Select::Only(nets) => {
                let canonical = addr.to_canonical();
                nets.iter()
                    .any(|net| net.contains(&canonical) || net.contains(&addr))
            }
        }
    }
}

/// What one call to [`mask_line`] replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineMasked {
    /// Addresses replaced.
    pub addresses: u32,
    /// Client host names replaced.
    pub hostnames: u32,
}

/// Appends `line` with its addresses masked to `out` (see the module docs for which bytes
/// are replaced). `fields` are the address fields of the parsed line, or `None` when the
/// line could not be parsed. Allocates nothing beyond `out`'s growth and the masker's cache.
pub fn mask_line(
    line: &[u8],
    fields: Option<&[AddrField]>,
    select: Select,
    masker: &mut Masker,
    out: &mut Vec<u8>,
) -> LineMasked {
    let mut w = Writer::new(line, select, masker, out);
    let Some(fields) = fields else {
        w.tokens_in(0, line.len());
        return w.finish();
    };
    // Records list fields in line order; sort anyway, since replacing out of order would
    // duplicate or drop bytes. Fields past MAX_ADDR_FIELDS are left to the token scan.
    let mut sorted = [None::<AddrField>; MAX_ADDR_FIELDS];
    for (slot, field) in sorted.iter_mut().zip(fields) {
        *slot = Some(*field);
    }
    sorted.sort_unstable_by_key(|f| f.map_or(u32::MAX, |f| f.span.start));

    let mut scan = tokens(line);
    let mut pending = scan.next();
    for field in sorted.into_iter().flatten() {
        let (start, end) = (field.span.start as usize, field.span.end as usize);
        if start < w.done || end > line.len() || start > end {
            // Overlapping or out of range: a bug upstream. The token scan still covers it.
            continue;
        }
        // Tokens before the field are masked; tokens touching the field are the field's.
        while let Some(token) = pending.filter(|t| (t.span.start as usize) < end) {
            if token.span.end as usize <= start {
                w.addr(
                    token.span.start as usize,
                    token.span.end as usize,
                    token.addr,
                );
            }
            pending = scan.next();
        }
        w.field(field.kind, start, end);
    }
    while let Some(token) = pending {
        w.addr(
            token.span.start as usize,
            token.span.end as usize,
            token.addr,
        );
        pending = scan.next();
    }
    w.finish()
}

/// Appends `line` with the addresses of its address `fields` masked, and the address
/// tokens inside `text` (the request and the referer of a parsed line, where a URL can
/// carry an address); every other byte is copied as written. This is the default for
/// parsed lines: a user agent's `Chrome/131.0.0.0` looks like an address but is a version,
/// and stays one. [`mask_line`] searches the whole line instead.
pub fn mask_fields(
    line: &[u8],
    fields: &[AddrField],
    text: &[Span],
    select: Select,
    masker: &mut Masker,
    out: &mut Vec<u8>,
) -> LineMasked {
    let mut w = Writer::new(line, select, masker, out);
    // Fields and text spans together in line order, in a fixed array: no allocation. Text
    // spans past the room left are ignored (callers pass the request and the referer).
    const MAX: usize = MAX_ADDR_FIELDS + 4;
    let mut parts = [None::<(Span, Option<AddrKind>)>; MAX];
    let items = fields
        .iter()
        .map(|f| (f.span, Some(f.kind)))
        .chain(text.iter().map(|s| (*s, None)));
    let mut filled = 0;
    for (slot, item) in parts.iter_mut().zip(items) {
        *slot = Some(item);
        filled += 1;
    }
    let parts = &mut parts[..filled];
    // Usually in line order already (the client, then the request and the referer); equal
    // starts still go through the sort, so ties come out as they always have.
    let key = |p: &Option<(Span, Option<AddrKind>)>| p.map_or(u32::MAX, |(span, _)| span.start);
    if !parts.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        parts.sort_unstable_by_key(key);
    }
    for &(span, kind) in parts.iter().flatten() {
        let (start, end) = (span.start as usize, span.end as usize);
        if start < w.done || end > line.len() || start > end {
            // Overlapping or out of range: a bug upstream; the verifier has the last word.
            continue;
        }
        match kind {
            Some(kind) => w.field(kind, start, end),
            None => w.tokens_in(start, end),
        }
    }
    w.finish()
}

/// Copies the line to `out` up to each replacement, then the replacement.
struct Writer<'l, 'o> {
    line: &'l [u8],
    /// Bytes of `line` before this offset are already in `out`.
    done: usize,
    /// Where the masked line starts in `out`.
    base: usize,
    out: &'o mut Vec<u8>,
    masker: &'o mut Masker,
    select: Select<'o>,
    counts: LineMasked,
}

impl<'l, 'o> Writer<'l, 'o> {
    fn new(
        line: &'l [u8],
        select: Select<'o>,
        masker: &'o mut Masker,
        out: &'o mut Vec<u8>,
    ) -> Self {
        // Every masked line starts its own list: the line check never sees another's.
        masker.edits.clear();
        Writer {
            line,
            done: 0,
            base: out.len(),
            out,
            masker,
            select,
            counts: LineMasked::default(),
        }
    }

    fn addr(&mut self, start: usize, end: usize, addr: IpAddr) {
        if start < self.done || addr.is_unspecified() || !self.select.matches(addr) {
            return;
        }
        let mut masked = Remembered::default();
        masked.set(self.masker.mask(addr));
        // A token already in its masked form (`Chrome/131.0.0.0` truncated to /24, an
        // address masked by an earlier run) is written back as it was and not counted.
        let changed = masked.bytes() != &self.line[start..end];
        self.put(start, end, masked.bytes(), changed);
    }

    /// Writes `text` in place of the address at `line[start..end]`, after the bytes
    /// before it, and lists the replacement when `changed` (else it is the address as
    /// written, and not counted).
    #[inline(always)]
    fn put(&mut self, start: usize, end: usize, text: &[u8], changed: bool) {
        // A client field starts the line: usually nothing to copy before it.
        if start > self.done {
            self.out.extend_from_slice(&self.line[self.done..start]);
        }
        let at = self.out.len() - self.base;
        self.out.extend_from_slice(text);
        if changed {
            let new = Span::new(at, self.out.len() - self.base);
            self.masker.edits.push(Edit {
                old: Span::new(start, end),
                new,
                host: false,
            });
        }
        self.done = end;
        self.counts.addresses += u32::from(changed);
    }

    fn host(&mut self, start: usize, end: usize) {
        if start < self.done || !matches!(self.select, Select::All) {
            return;
        }
        self.out.extend_from_slice(&self.line[self.done..start]);
        let at = self.out.len() - self.base;
        self.masker.mask_host(&self.line[start..end], self.out);
        let new = Span::new(at, self.out.len() - self.base);
        self.masker.edits.push(Edit {
            old: Span::new(start, end),
            new,
            host: true,
        });
        self.done = end;
        self.counts.hostnames += 1;
    }

    fn tokens_in(&mut self, start: usize, end: usize) {
        if !may_hold_address(&self.line[start..end]) {
            return;
        }
        for token in tokens(&self.line[start..end]) {
            let span = token.span;
            self.addr(
                start + span.start as usize,
                start + span.end as usize,
                token.addr,
            );
        }
    }

    fn field(&mut self, kind: AddrKind, start: usize, end: usize) {
        let text = &self.line[start..end];
        if text.is_empty() || text == b"-" {
            return;
        }
        match kind {
            AddrKind::ForwardedFor => {
                for element in split_list(text) {
                    let (s, e) = (
                        start + element.span.start as usize,
                        start + element.span.end as usize,
                    );
                    match element.addr {
                        Some(addr) => self.addr(s, e, addr),
                        None => self.tokens_in(s, e),
                    }
                }
            }
            AddrKind::Client | AddrKind::Other => {
                let (host, seen) = self.masker.last_field.host(text);
                match host {
                    Some((addr, inner)) => self.field_addr(start, inner, addr, seen),
                    None if kind == AddrKind::Client && is_host_name(text) => self.host(start, end),
                    None => self.tokens_in(start, end),
                }
            }
        }
    }

    /// The address `addr` of a client or other field starting at `start`, at `inner` in
    /// it. When the field is the one remembered ([`Seen::Again`]), what masking it wrote the
    /// last time is written again, without looking the address up; otherwise a remembered
    /// field keeps what [`Self::addr`] writes for next time.
    fn field_addr(&mut self, start: usize, inner: Span, addr: IpAddr, seen: Seen) {
        let (s, e) = (start + inner.start as usize, start + inner.end as usize);
        if seen == Seen::Again && s >= self.done {
            if let Some(m) = self.masker.last_field.masked {
                self.put(s, e, m.text.bytes(), m.changed);
                return;
            }
        }
        let (len, done, counted) = (self.out.len(), self.done, self.counts.addresses);
        self.addr(s, e, addr);
        if seen != Seen::Never && self.done == e && done <= s {
            // Written: the replacement follows the bytes copied before it.
            let written = &self.out[len + (s - done)..];
            if Remembered::fits(written) {
                let mut text = Remembered::default();
                text.set(written);
                self.masker.last_field.masked = Some(MaskedAddr {
                    text,
                    changed: self.counts.addresses > counted,
                });
            }
        }
    }

    fn finish(self) -> LineMasked {
        self.out.extend_from_slice(&self.line[self.done..]);
        self.counts
    }
}

/// One replacement in a masked line: the replaced bytes of the line, the bytes that replace
/// them in the masked line, and whether they were a host name (else an address).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// The replaced bytes in the old line.
    pub old: Span,
    /// Their replacement in the masked line.
    pub new: Span,
    /// A host name was replaced, not an address.
    pub host: bool,
}

/// The most replacements one line keeps for the line check; a line with more is checked
/// word by word.
pub(super) const MAX_EDITS: usize = 8;

/// The replacements the masker made in the last line it masked, in line order: what the
/// line check compares the rewritten line against (see [`LineVerifier::check`](super::LineVerifier::check)).
#[derive(Clone, Copy, Debug, Default)]
pub struct Edits {
    items: [Edit; MAX_EDITS],
    len: u8,
    /// More replacements than `items` holds were made.
    overflow: bool,
}

impl Edits {
    /// Forgets every replacement, for the next line.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    /// Moves every replacement `by` bytes on in both lines: the masked text was the inner
    /// line of a wrapped line, after a wrapper of that length copied as it was.
    pub(crate) fn shift(&mut self, by: usize) {
        let by = u32::try_from(by).unwrap_or(u32::MAX);
        for e in &mut self.items[..usize::from(self.len)] {
            for span in [&mut e.old, &mut e.new] {
                span.start = span.start.saturating_add(by);
                span.end = span.end.saturating_add(by);
            }
        }
    }

    /// Drops the list as if it had overflowed: the line check then compares the lines word
    /// by word.
    pub(crate) fn forget(&mut self) {
        self.len = 0;
        self.overflow = true;
    }

    pub(crate) fn push(&mut self, edit: Edit) {
        match self.items.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = edit;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Every replacement, or `None` when there were too many to keep.
    pub fn all(&self) -> Option<&[Edit]> {
        (!self.overflow).then(|| &self.items[..usize::from(self.len)])
    }
}

/// A short byte string kept inline, or nothing: what the memos below compare with.
#[derive(Clone, Copy, Debug)]
pub(super) struct Remembered {
    bytes: [u8; MEMO_BYTES],
    /// `None` until something is remembered.
    len: Option<u8>,
}

/// Longer text is not remembered (an IPv6 address with brackets and port is 53 bytes).
const MEMO_BYTES: usize = 56;

impl Default for Remembered {
    fn default() -> Self {
        Remembered {
            bytes: [0; MEMO_BYTES],
            len: None,
        }
    }
}

impl Remembered {
    pub(super) fn fits(text: &[u8]) -> bool {
        text.len() <= MEMO_BYTES
    }

    pub(super) fn is(&self, text: &[u8]) -> bool {
        let n = text.len();
        if self.len.is_none_or(|len| usize::from(len) != n) {
            return false;
        }
        // Eight bytes at a time, the last eight overlapping the ones before: for an address
        // of a few dozen bytes this costs less than the call to memcmp a slice compare makes.
        if n < 8 {
            return self.bytes[..n].iter().zip(text).all(|(a, b)| a == b);
        }
        let mut at = 0;
        while at + 8 < n {
            if word_at(&self.bytes, at) != word_at(text, at) {
                return false;
            }
            at += 8;
        }
        word_at(&self.bytes, n - 8) == word_at(text, n - 8)
    }

    /// What is remembered (nothing at first).
    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len.map_or(0, usize::from)]
    }

    /// Remembers `text`, which must [fit](Self::fits).
    pub(super) fn set(&mut self, text: &[u8]) {
        self.bytes[..text.len()].copy_from_slice(text);
        self.len = Some(text.len() as u8);
    }
}

/// The last address field read, the address it held and what masking it wrote:
/// consecutive lines of a log often come from the same client, and one compare of the
/// field is cheaper than parsing and masking it again. Kept by the [`Masker`], whose
/// method and selection do not change during a run, so the same field is always masked
/// the same way.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FieldMemo {
    text: Remembered,
    host: Option<(IpAddr, Span)>,
    /// What masking `host` wrote, once it was written.
    masked: Option<MaskedAddr>,
}

/// The replacement written for the remembered field's address, and whether it differed
/// from the address (else it was counted as no replacement).
#[derive(Clone, Copy, Debug)]
struct MaskedAddr {
    text: Remembered,
    changed: bool,
}

/// Whether a field is the one [`FieldMemo`] remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The same text as the last field remembered.
    Again,
    /// New, and remembered from now on.
    Now,
    /// New, and too long to remember: the memo still holds an earlier field.
    Never,
}

impl FieldMemo {
    /// `parse_host(text)`, with a bare address tried first; remembered for the next call.
    pub(crate) fn host(&mut self, text: &[u8]) -> (Option<(IpAddr, Span)>, Seen) {
        if self.text.is(text) {
            return (self.host, Seen::Again);
        }
        let host = whole_address(text)
            .map(|addr| (addr, Span::new(0, text.len())))
            .or_else(|| parse_host(text));
        if !Remembered::fits(text) {
            return (host, Seen::Never);
        }
        self.text.set(text);
        self.host = host;
        self.masked = None;
        (host, Seen::Now)
    }
}

/// Whether `text` has the three dots of an IPv4 token, each between two digits, or the
/// two colons of an IPv6 token: most URLs have neither (`app.js?v=1.14.2` has two such
/// dots). Counting is cheaper than looking for tokens; the dots between digits are
/// counted only when there are three dots at all.
fn may_hold_address(text: &[u8]) -> bool {
    let (dots, colons) = crate::bytes::count_eq2(text, b'.', b':');
    if colons >= 2 {
        return true;
    }
    dots >= 3
        && text
            .windows(3)
            .filter(|w| w[1] == b'.' && w[0].is_ascii_digit() && w[2].is_ascii_digit())
            .nth(2)
            .is_some()
}

/// `parse_host`'s first step, a field that is one bare address, without the generic IPv6
/// parser: most client fields are exactly that.
pub(super) fn whole_address(text: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(text) {
        return Some(IpAddr::V4(v4));
    }
    if text.len() < 2 || text.len() > 45 || !text.contains(&b':') {
        return None;
    }
    parse_v6(text).map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anonymize::verify::words_changed_only_in_addresses;
    use crate::anonymize::{Key, LineVerifier, Mode, Prefixes, only_addresses_changed};
    use crate::bytes::{common_prefix, common_suffix};
    use crate::format::tokens::tests::noisy_text;
    use proptest::prelude::*;

    const VECTOR_KEY: &[u8] = b"1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

    fn truncating(v4: u8, v6: u8) -> Masker {
        Masker::new(&Mode::Truncate(Prefixes::new(v4, v6).unwrap()))
    }

    fn pseudonymizing() -> Masker {
        Masker::new(&Mode::Pseudonymize(Key::from_hex(VECTOR_KEY).unwrap()))
    }

    fn field(kind: AddrKind, line: &str, text: &str) -> AddrField {
        let start = line.find(text).unwrap();
        AddrField {
            kind,
            span: Span::new(start, start + text.len()),
        }
    }

    fn run(
        line: &str,
        fields: Option<&[AddrField]>,
        select: Select,
        m: &mut Masker,
    ) -> (String, LineMasked) {
        let mut out = b"previous\n".to_vec();
        let counts = mask_line(line.as_bytes(), fields, select, m, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("previous\n"), "out was not appended to");
        (text["previous\n".len()..].to_string(), counts)
    }

    /// Regression: taking `033.1.2.3` alone as a token made the masked text (`1::33.1.2.0`)
    /// tokenize as IPv6, so the check saw more than addresses change.
    #[test]
    fn an_ipv4_tail_with_leading_zeros_is_masked_as_one_address() {
        let line = "1::033.1.2.3.";
        let (new, _) = run(line, None, Select::All, &mut truncating(24, 48));
        assert!(
            only_addresses_changed(line.as_bytes(), new.as_bytes()),
            "{new}"
        );
    }

    #[test]
    fn brackets_and_port_are_kept() {
        let line = "[2001:0db8:85a3::8a2e:0370:7334]:443 - - \"GET / HTTP/1.1\" 200";
        let client = [field(
            AddrKind::Client,
            line,
            "[2001:0db8:85a3::8a2e:0370:7334]:443",
        )];
        let want = "[2001:db8:85a0::]:443 - - \"GET / HTTP/1.1\" 200";
        for fields in [Some(&client[..]), None] {
            let (new, counts) = run(line, fields, Select::All, &mut truncating(24, 44));
            assert_eq!(new, want);
            assert_eq!(
                counts,
                LineMasked {
                    addresses: 1,
                    hostnames: 0
                }
            );
        }
    }

    #[test]
    fn parsed_line_masks_fields_and_addresses_elsewhere() {
        let line = r#"81.2.69.142 - - [10/Oct/2000:13:55:36 -0700] "GET /?from=203.0.113.9 HTTP/1.1" 200 5 "http://[2001:db8:1:2::7]/" "curl" "10.1.2.3, unknown, [2001:db8::9]:80" -"#;
        let fields = [
            field(AddrKind::Client, line, "81.2.69.142"),
            field(
                AddrKind::ForwardedFor,
                line,
                "10.1.2.3, unknown, [2001:db8::9]:80",
            ),
            AddrField {
                kind: AddrKind::Other,
                span: Span::new(line.len() - 1, line.len()),
            },
        ];
        let (new, counts) = run(line, Some(&fields), Select::All, &mut truncating(24, 48));
        assert_eq!(
            new,
            r#"81.2.69.0 - - [10/Oct/2000:13:55:36 -0700] "GET /?from=203.0.113.0 HTTP/1.1" 200 5 "http://[2001:db8:1::]/" "curl" "10.1.2.0, unknown, [2001:db8::]:80" -"#
        );
        assert_eq!(counts.addresses, 5);
        assert!(only_addresses_changed(line.as_bytes(), new.as_bytes()));
        // Fields given out of order give the same result.
        let reversed = [fields[2], fields[1], fields[0]];
        assert_eq!(
            run(line, Some(&reversed), Select::All, &mut truncating(24, 48)).0,
            new
        );
    }

    #[test]
    fn parsed_line_by_fields_leaves_user_agent_versions() {
        let line = r#"81.2.69.142 - - [10/Oct/2000:13:55:36 -0700] "GET /?from=203.0.113.9 HTTP/1.1" 200 5 "http://[2001:db8:1:2::7]/" "Chrome/131.0.0.0 via 198.51.100.7" "10.1.2.3""#;
        let fields = [
            field(AddrKind::Client, line, "81.2.69.142"),
            field(AddrKind::ForwardedFor, line, "10.1.2.3"),
        ];
        let urls = [
            field(AddrKind::Other, line, "/?from=203.0.113.9").span,
            field(AddrKind::Other, line, "http://[2001:db8:1:2::7]/").span,
        ];
        for (mut m, truncated) in [
            (
                truncating(24, 48),
                Some(("81.2.69.0", "203.0.113.0", "2001:db8:1::")),
            ),
            (pseudonymizing(), None),
        ] {
            let mut out = Vec::new();
            let counts = mask_fields(
                line.as_bytes(),
                &fields,
                &urls,
                Select::All,
                &mut m,
                &mut out,
            );
            let new = String::from_utf8(out).unwrap();
            assert!(
                new.contains("\"Chrome/131.0.0.0 via 198.51.100.7\""),
                "the user agent changed: {new}"
            );
            assert_eq!(counts.addresses, 4, "{new}");
            for full in ["81.2.69.142", "203.0.113.9", "2001:db8:1:2::7", "10.1.2.3"] {
                assert!(!new.contains(full), "{full} left in {new}");
            }
            if let Some((client, from, referer)) = truncated {
                assert!(new.starts_with(client), "{new}");
                assert!(new.contains(&format!("/?from={from} ")), "{new}");
                assert!(new.contains(&format!("\"http://[{referer}]/\"")), "{new}");
            }
            assert!(only_addresses_changed(line.as_bytes(), new.as_bytes()));
            // The whole-line search masks the version-shaped token too.
            let (whole, _) = run(line, Some(&fields), Select::All, &mut m);
            assert!(!whole.contains("198.51.100.7"), "{whole}");
        }
    }

    #[test]
    fn client_host_names_are_masked() {
        let line = "dsl-81-2-69-142.example.net - - [x] \"GET / HTTP/1.0\" 200 1";
        let fields = [field(AddrKind::Client, line, "dsl-81-2-69-142.example.net")];
        let (new, counts) = run(line, Some(&fields), Select::All, &mut truncating(24, 48));
        assert_eq!(new, "x.example.net - - [x] \"GET / HTTP/1.0\" 200 1");
        assert_eq!(
            counts,
            LineMasked {
                addresses: 0,
                hostnames: 1
            }
        );
        assert!(only_addresses_changed(line.as_bytes(), new.as_bytes()));

        let (new, _) = run(line, Some(&fields), Select::All, &mut pseudonymizing());
        assert!(
            new.starts_with('h') && new[17..].starts_with(".example.net - - "),
            "{new}"
        );
        assert!(only_addresses_changed(line.as_bytes(), new.as_bytes()));

        // A host name holding an address is still masked whole.
        let line = "1.2.3.4.static.example.net - -";
        let fields = [field(AddrKind::Client, line, "1.2.3.4.static.example.net")];
        let (new, _) = run(line, Some(&fields), Select::All, &mut truncating(24, 48));
        assert_eq!(new, "x.example.net - -");
        assert!(only_addresses_changed(line.as_bytes(), new.as_bytes()));

        // Erasure requests leave host names alone.
        let nets: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap()];
        let (new, counts) = run(
            line,
            Some(&fields),
            Select::Only(&nets),
            &mut truncating(24, 48),
        );
        assert_eq!(new, line);
        assert_eq!(counts, LineMasked::default());
    }

    #[test]
    fn dashes_empty_fields_and_unspecified_stay() {
        let line = "- \"\" 0.0.0.0 :: text";
        let fields = [
            field(AddrKind::Client, line, "-"),
            AddrField {
                kind: AddrKind::ForwardedFor,
                span: Span::new(3, 3),
            },
            field(AddrKind::Other, line, "0.0.0.0"),
            field(AddrKind::Other, line, "::"),
        ];
        let (new, counts) = run(line, Some(&fields), Select::All, &mut pseudonymizing());
        assert_eq!(new, line);
        assert_eq!(counts, LineMasked::default());
    }

    #[test]
    fn erasure_masks_only_selected_networks() {
        let line = "203.0.113.7 ::ffff:203.0.113.8 198.51.100.1 2001:db8::1 2001:db9::1";
        let nets: Vec<IpNet> = vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let (new, counts) = run(line, None, Select::Only(&nets), &mut truncating(16, 16));
        assert_eq!(
            new,
            "203.0.0.0 ::ffff:203.0.0.0 198.51.100.1 2001:: 2001:db9::1"
        );
        assert_eq!(counts.addresses, 3);
        assert!(Select::Only(&nets).matches("::ffff:203.0.113.1".parse().unwrap()));
        assert!(!Select::Only(&nets).matches("::ffff:203.0.114.1".parse().unwrap()));
    }

    #[test]
    fn address_prefilter_edges() {
        assert!(may_hold_address(b"/x?ip=10.1.2.3"));
        // Counted bytes at each end of the overlapping last chunk.
        assert!(may_hold_address(b"::/abcdefghijklmnop"));
        assert!(may_hold_address(b"/abcdefghijklmnop::"));
        assert!(!may_hold_address(b":/abcdefghijklmnop"));
        assert!(!may_hold_address(b"/abcdefghijklmnopqrstuvwxyzabcd:"));
        assert!(may_hold_address(b"/abcdefghijklmnopqrstuvwxyzabc::"));
        assert!(!may_hold_address(b""));
        assert!(may_hold_address(b"::"));
        assert!(!may_hold_address(b"/static/js/app.js?v=1.14.2"));
        assert!(may_hold_address(b"/x?ip=2001:db8::1"));
    }

    #[test]
    fn a_remembered_text_equals_only_itself() {
        let text: Vec<u8> = (0..MEMO_BYTES as u8).map(|i| b'0' + i % 10).collect();
        for n in 0..=MEMO_BYTES {
            let mut r = Remembered::default();
            assert!(!r.is(&text[..n]), "nothing remembered, {n} bytes");
            r.set(&text[..n]);
            assert!(r.is(&text[..n]), "{n} bytes");
            if n > 0 {
                assert!(!r.is(&text[..n - 1]), "shorter, {n} bytes");
            }
            if n < MEMO_BYTES {
                assert!(!r.is(&text[..n + 1]), "longer, {n} bytes");
            }
            for at in 0..n {
                let mut other = text[..n].to_vec();
                other[at] ^= 0x40;
                assert!(!r.is(&other), "byte {at} of {n} differs");
            }
        }
    }

    #[test]
    fn field_memo_parses_each_new_field() {
        let mut memo = FieldMemo::default();
        let at = |s: &str, start, end| Some((s.parse::<IpAddr>().unwrap(), Span::new(start, end)));
        let long = format!("[{}]:443", "1:2:3:4:5:6:7:8".repeat(4));
        let cases = [
            ("1.2.3.4", at("1.2.3.4", 0, 7)),
            ("1.2.3.4", at("1.2.3.4", 0, 7)),
            ("1.2.3.40", at("1.2.3.40", 0, 8)),
            ("1.2.3.4:80", at("1.2.3.4", 0, 7)),
            ("1.2.3.4", at("1.2.3.4", 0, 7)),
            ("host.example", None),
            ("host.example", None),
            ("[::1]:443", at("::1", 1, 4)),
            (long.as_str(), None), // too long to remember
            ("[::1]:443", at("::1", 1, 4)),
        ];
        let mut last: Option<&str> = None;
        for (text, want) in cases {
            let seen = if last == Some(text) {
                Seen::Again
            } else if Remembered::fits(text.as_bytes()) {
                last = Some(text);
                Seen::Now
            } else {
                Seen::Never
            };
            assert_eq!(memo.host(text.as_bytes()), (want, seen), "{text}");
        }
        // An empty memo matches no field, the empty one and a 255-byte one included.
        assert_eq!(FieldMemo::default().host(b"").1, Seen::Now);
        assert_eq!(FieldMemo::default().host(&[b'1'; 255]), (None, Seen::Never));
    }

    #[test]
    fn regression_truncating_to_zero_bits_gives_the_unspecified_address() {
        let mut m = truncating(0, 0);
        let (once, counts) = run("a ::4 b 1.2.3.4", None, Select::All, &mut m);
        assert_eq!(once, "a :: b 0.0.0.0");
        assert_eq!(counts.addresses, 2);
        assert!(only_addresses_changed(b"a ::4 b 1.2.3.4", once.as_bytes()));
        assert_eq!(run(&once, None, Select::All, &mut m).0, once);
    }

    #[test]
    fn regression_replacement_after_a_colon_does_not_retokenize() {
        // A suffix of a broken address after `digit:` used to be a token, and its masked
        // text joined with the `:` before it into a different token on the second pass.
        let line = "::1:0:0:0:1::ffff:0.0.0.0, ::1000:00:00";
        let mut m = truncating(24, 48);
        let (once, _) = run(line, None, Select::All, &mut m);
        assert_eq!(once, "::1:0:0:0:1::ffff:0.0.0.0, ::");
        assert_eq!(run(&once, None, Select::All, &mut m).0, once);
        assert!(only_addresses_changed(line.as_bytes(), once.as_bytes()));
    }

    /// Replaces each token of `text` with the masker's text: what `mask_line(None)` must give.
    fn expected(text: &[u8], m: &mut Masker) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        for t in tokens(text) {
            out.extend_from_slice(&text[at..t.span.start as usize]);
            if t.addr.is_unspecified() {
                out.extend_from_slice(t.span.of(text));
            } else {
                out.extend_from_slice(m.mask(t.addr));
            }
            at = t.span.end as usize;
        }
        out.extend_from_slice(&text[at..]);
        out
    }

    proptest! {
        #[test]
        fn remembering_verifier_agrees_with_a_fresh_one(
            pairs in proptest::collection::vec((0usize..6, 0usize..6, noisy_text()), 1..24)
        ) {
            const WORDS: [&str; 6] = ["1.2.3.4", "1.2.3.0", "::1", "78ff::1", "1.2.3.4x", "-"];
            let mut v = LineVerifier::default();
            for (a, b, rest) in pairs {
                let line = |word: &str| [word.as_bytes(), b" ", &rest].concat();
                let (old, new) = (line(WORDS[a]), line(WORDS[b]));
                prop_assert_eq!(
                    v.only_addresses_changed(&old, &new),
                    only_addresses_changed(&old, &new)
                );
            }
        }

        #[test]
        fn the_address_prefilter_counts_like_a_byte_loop(
            text in proptest::collection::vec(proptest::sample::select(b".:1a ".to_vec()), 0..70)
        ) {
            let count = |b| text.iter().filter(|&&x| x == b).count();
            let digit_dots = text
                .windows(3)
                .filter(|w| w[1] == b'.' && w[0].is_ascii_digit() && w[2].is_ascii_digit())
                .count();
            let want = count(b':') >= 2 || (count(b'.') >= 3 && digit_dots >= 3);
            prop_assert_eq!(may_hold_address(&text), want);
        }

        #[test]
        fn the_address_prefilter_passes_every_text_with_a_token(text in noisy_text()) {
            if tokens(&text).next().is_some() {
                prop_assert!(may_hold_address(&text));
            }
        }

        #[test]
        fn rewrite_changes_only_address_bytes(text in noisy_text(), v4 in 0u8..=32, v6 in 0u8..=128) {
            let mut m = truncating(v4, v6);
            let mut new = Vec::new();
            mask_line(&text, None, Select::All, &mut m, &mut new);
            prop_assert_eq!(&new, &expected(&text, &mut m));
            prop_assert!(only_addresses_changed(&text, &new));

            let mut p = pseudonymizing();
            let mut pseudo = Vec::new();
            mask_line(&text, None, Select::All, &mut p, &mut pseudo);
            prop_assert_eq!(&pseudo, &expected(&text, &mut p));
            prop_assert!(only_addresses_changed(&text, &pseudo));
        }

        #[test]
        fn common_prefix_and_suffix_equal_bytewise(a in noisy_text(), b in noisy_text(), mid in noisy_text()) {
            let (x, y) = ([&a[..], &mid, &b].concat(), [&a[..], &b].concat());
            for (p, q) in [(&x, &y), (&y, &x), (&a, &b)] {
                let pre = p.iter().zip(q.iter()).take_while(|(u, v)| u == v).count();
                let suf = p.iter().rev().zip(q.iter().rev()).take_while(|(u, v)| u == v).count();
                prop_assert_eq!(common_prefix(p, q), pre);
                prop_assert_eq!(common_suffix(p, q), suf);
            }
        }

        #[test]
        fn verifier_trimming_agrees_with_whole_lines(text in noisy_text(), cut in 0usize..64, junk in noisy_text()) {
            let mut m = truncating(24, 48);
            let mut new = Vec::new();
            mask_line(&text, None, Select::All, &mut m, &mut new);
            prop_assert_eq!(
                only_addresses_changed(&text, &new),
                words_changed_only_in_addresses(&text, &new)
            );
            // And on lines changed in other ways.
            let at = cut.min(new.len());
            let mut other = new[..at].to_vec();
            other.extend_from_slice(&junk);
            other.extend_from_slice(&new[at..]);
            prop_assert_eq!(
                only_addresses_changed(&text, &other),
                words_changed_only_in_addresses(&text, &other)
            );
        }

        #[test]
        fn the_check_with_edits_agrees_with_the_word_check(text in noisy_text(), cut in 0usize..64, junk in noisy_text()) {
            for mut m in [truncating(24, 48), pseudonymizing()] {
                let mut new = b"previous\n".to_vec();
                mask_line(&text, None, Select::All, &mut m, &mut new);
                let new = new.split_off(b"previous\n".len());
                let edits = m.edits;
                prop_assert!(LineVerifier::default().check(&text, &new, &edits));
                // Any other change is left to the word check, which decides as before.
                let at = cut.min(new.len());
                let mut other = new[..at].to_vec();
                other.extend_from_slice(&junk);
                other.extend_from_slice(&new[at..]);
                prop_assert_eq!(
                    LineVerifier::default().check(&text, &other, &edits),
                    only_addresses_changed(&text, &other)
                );
            }
        }

        #[test]
        fn a_remembered_client_is_masked_as_a_fresh_masker_masks_it(
            client in prop_oneof![
                any::<u32>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string().into_bytes()),
                // Already in its masked form under the default prefixes: written back as is.
                any::<u32>().prop_map(|a| std::net::Ipv4Addr::from(a & !0xff).to_string().into_bytes()),
                any::<u128>().prop_map(|a| format!("[{}]:443", std::net::Ipv6Addr::from(a)).into_bytes()),
                any::<u32>().prop_map(|a| format!("{}:80", std::net::Ipv4Addr::from(a)).into_bytes()),
                Just(b"0.0.0.0".to_vec()),
                noisy_text(),
            ],
            rest in noisy_text(),
            pick in prop::collection::vec(0usize..3, 1..8),
            v4 in 0u8..=32,
            v6 in 0u8..=128,
            default_prefixes in any::<bool>(),
            erase in any::<bool>(),
        ) {
            // Lines with the same client field one after another (so the memo replays what
            // it wrote), another client between, and the field placed after other text.
            let other = b"198.51.100.7".to_vec();
            let nets: Vec<IpNet> = vec!["0.0.0.0/1".parse().unwrap(), "2000::/3".parse().unwrap()];
            let select = if erase { Select::Only(&nets) } else { Select::All };
            let (v4, v6) = if default_prefixes { (24, 48) } else { (v4, v6) };
            let mut reused = truncating(v4, v6);
            for p in pick {
                let (head, field_text): (&[u8], &[u8]) = match p {
                    0 => (b"", &client),
                    1 => (b"x ", &client),
                    _ => (b"", &other),
                };
                let mut line = head.to_vec();
                line.extend_from_slice(field_text);
                line.push(b' ');
                line.extend_from_slice(&rest);
                let fields = [AddrField {
                    kind: AddrKind::Client,
                    span: Span::new(head.len(), head.len() + field_text.len()),
                }];
                let (mut want, mut got) = (Vec::new(), Vec::new());
                let mut fresh = truncating(v4, v6);
                let want_counts = mask_fields(&line, &fields, &[], select, &mut fresh, &mut want);
                let got_counts = mask_fields(&line, &fields, &[], select, &mut reused, &mut got);
                prop_assert_eq!(&got, &want);
                prop_assert_eq!(got_counts, want_counts);
                prop_assert_eq!(reused.edits.all(), fresh.edits.all());
            }
        }

        #[test]
        fn truncation_is_idempotent_and_keeps_the_prefix(text in noisy_text(), v4 in 0u8..=32, v6 in 0u8..=128) {
            let mut m = truncating(v4, v6);
            let mut once = Vec::new();
            mask_line(&text, None, Select::All, &mut m, &mut once);
            let mut twice = Vec::new();
            mask_line(&once, None, Select::All, &mut m, &mut twice);
            prop_assert_eq!(&once, &twice);
            // Every token left is its own truncation: no full address remains.
            let p = Prefixes::new(v4, v6).unwrap();
            for t in tokens(&once) {
                prop_assert_eq!(crate::anonymize::truncate(t.addr, p), t.addr);
            }
        }

        #[test]
        fn parsed_client_field_with_noise_around(
            client in prop_oneof![
                any::<u32>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
                any::<u128>().prop_map(|a| format!("[{}]:443", std::net::Ipv6Addr::from(a))),
                "[a-z][a-z0-9-]{0,8}(\\.[a-z]{1,6}){0,3}",
            ],
            rest in noisy_text(),
        ) {
            let mut line = client.clone().into_bytes();
            line.push(b' ');
            line.extend_from_slice(&rest);
            let fields = [AddrField { kind: AddrKind::Client, span: Span::new(0, client.len()) }];
            let mut m = truncating(24, 48);
            let mut once = Vec::new();
            mask_line(&line, Some(&fields), Select::All, &mut m, &mut once);
            prop_assert!(only_addresses_changed(&line, &once));
            let space = once.iter().position(|b| *b == b' ').unwrap();
            prop_assert_eq!(&once[space + 1..], &expected(&rest, &mut m)[..]);
            let fields = [AddrField { kind: AddrKind::Client, span: Span::new(0, space) }];
            let mut twice = Vec::new();
            mask_line(&once, Some(&fields), Select::All, &mut m, &mut twice);
            prop_assert_eq!(&once, &twice);
        }
    }

    #[test]
    #[ignore = "needs ../shared/corpus"]
    fn real_logs_change_only_addresses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/logs");
        assert!(
            dir.is_dir(),
            "{} is absent: this test needs the shared corpus",
            dir.display()
        );
        let mut files = 0;
        for name in [
            "elastic-apache_logs.log",
            "lnav/logfile_shop_access_log.0",
            "lnav/logfile_access_log.0",
        ] {
            let Ok(data) = std::fs::read(dir.join(name)) else {
                eprintln!("skipped: {name} not in corpus");
                continue;
            };
            files += 1;
            let (mut m, mut p) = (truncating(24, 48), pseudonymizing());
            let (mut lines, mut masked) = (0u32, 0u32);
            let mut out = Vec::new();
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines += 1;
                // The client is the first word; masking it as a field and as a token agree.
                let end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
                let fields = [AddrField {
                    kind: AddrKind::Client,
                    span: Span::new(0, end),
                }];
                out.clear();
                let counts = mask_line(line, Some(&fields), Select::All, &mut m, &mut out);
                masked += counts.addresses + counts.hostnames;
                assert!(
                    only_addresses_changed(line, &out),
                    "{name}: {}",
                    String::from_utf8_lossy(line)
                );
                let mut none = Vec::new();
                mask_line(line, None, Select::All, &mut m, &mut none);
                if counts.hostnames == 0 {
                    assert_eq!(none, out, "{name}: {}", String::from_utf8_lossy(line));
                }
                out.clear();
                mask_line(line, Some(&fields), Select::All, &mut p, &mut out);
                assert!(
                    only_addresses_changed(line, &out),
                    "{name}: {}",
                    String::from_utf8_lossy(line)
                );
            }
            assert!(
                masked >= lines,
                "{name}: {masked} replacements in {lines} lines"
            );
        }
        assert!(files > 0, "no corpus log found in {}", dir.display());
    }
}

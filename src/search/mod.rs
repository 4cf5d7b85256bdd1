//! Finding the lines about given addresses and ranges (`logward search`): the set of
//! networks searched for, the test of one line against it and against the virtual host
//! asked for, and the [`scan::Visitor`] that collects the matching lines of a pass; the
//! evidence package is [`evidence`]'s. Finding files and their time order is the input
//! module's ([`crate::input::discover::sort_oldest_first`]), reading them the scan pass's;
//! printing and the audit entry are the command line's.
//!
//! Matching is on parsed addresses, never on text: `1.2.3.4` does not match `11.2.3.45`.
//! A parsed line matches when its client, an element of an address list (X-Forwarded-For)
//! or another address field holds an address in the set; a line the format could not parse
//! matches when one of its address tokens ([`crate::format::tokens`]) does. IPv4-mapped
//! IPv6 addresses (`::ffff:1.2.3.4`) are the IPv4 address they carry, on both sides.

pub mod evidence;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::format::addr::split_list;
use crate::format::tokens::tokens;
use crate::format::{AddrKind, Record};
use crate::scan::{self, At};

/// The version of the layout of `search --output json`'s objects and of an evidence
/// manifest: the one every JSON output of logward carries.
pub use crate::store::export::JSON_SCHEMA_VERSION as SCHEMA_VERSION;

/// The IPv4-mapped block `::ffff:0:0/96` as a range of 128-bit addresses.
const MAPPED: (u128, u128) = (0xffff << 32, (0xffff << 32) | 0xffff_ffff);

/// A set of networks, as sorted, disjoint, non-adjacent inclusive ranges per family, so a
/// lookup is one comparison for a single address or range and a binary search for many.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nets {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Nets {
    /// The set of `nets`; an IPv4-mapped IPv6 range is looked up as IPv4.
    pub fn new<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Nets {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => {
                    let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
                    // The mapped part of an IPv6 range is searched as IPv4, since mapped
                    // addresses in the logs are turned into IPv4 before the lookup.
                    let (mlo, mhi) = (lo.max(MAPPED.0), hi.min(MAPPED.1));
                    if mlo <= mhi {
                        v4.push((mlo as u32, mhi as u32));
                    }
                    if !(MAPPED.0 <= lo && hi <= MAPPED.1) {
                        v6.push((lo, hi));
                    }
                }
            }
        }
        Nets {
            v4: normalize(v4),
            v6: normalize(v6),
        }
    }

    /// Whether the set holds no network.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `addr` (or the IPv4 address it maps) is in the set.
    #[inline]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr.to_canonical() {
            IpAddr::V4(a) => lookup(&self.v4, u32::from(a)),
            IpAddr::V6(a) => lookup(&self.v6, u128::from(a)),
        }
    }

    /// Whether a parsed line holds an address in the set in any address-bearing field.
    pub fn matches_record(&self, rec: &Record<'_>) -> bool {
        if rec.client.is_some_and(|c| self.contains(c)) {
            return true;
        }
        for field in rec.addr_fields.as_slice() {
            let text = field.span.of(rec.line);
            // A client field holding one address was parsed into `rec.client` already.
            if field.kind == AddrKind::Client
                && rec.client.is_some()
                && memchr::memchr3(b',', b' ', b'\t', text).is_none()
            {
                continue;
            }
            if split_list(text).any(|e| e.addr.is_some_and(|a| self.contains(a))) {
                return true;
            }
        }
        false
    }

    /// The first address token of an unparsed line that is in the set.
    pub fn match_text(&self, line: &[u8]) -> Option<IpAddr> {
        tokens(line).map(|t| t.addr).find(|a| self.contains(*a))
    }
}

/// A test that a line cannot hold an address of a set of a few single IPv4 addresses,
/// without parsing it; `None` for other sets, where every line is parsed.
///
/// It is exact because every text that parses to such an address holds one of the needles:
/// a dotted quad (in a field, a list, an IPv6 tail such as `::ffff:1.2.3.4`, or a token of
/// an unparsed line) ends with the third part's digits (after any leading zeros), a dot, and
/// the fourth part with zero to two leading zeros; an IPv4-mapped address in hex
/// (`::ffff:102:304`, `0:0:0:0:0:FFFF:0102:0304`) holds `:ffff:` in some case.
#[derive(Clone, Debug)]
pub struct Prefilter {
    needles: Vec<memchr::memmem::Finder<'static>>,
}

/// The most single addresses the prefilter takes; beyond, one pass per needle costs more
/// than it saves.
const PREFILTER_MAX: usize = 4;

impl Prefilter {
    /// The prefilter for `nets`, or `None` when it is not one to four single IPv4
    /// addresses.
    pub(crate) fn new(nets: &Nets) -> Option<Prefilter> {
        if !nets.v6.is_empty() || nets.v4.len() > PREFILTER_MAX {
            return None;
        }
        let mut needles = Vec::new();
        for &(lo, hi) in &nets.v4 {
            if lo != hi {
                return None;
            }
            let [_, _, c, d] = lo.to_be_bytes();
            let digits = d.to_string();
            for zeros in 0..=3 - digits.len() {
                let needle = format!("{c}.{}{digits}", "0".repeat(zeros));
                needles.push(memchr::memmem::Finder::new(needle.as_bytes()).into_owned());
            }
        }
        Some(Prefilter { needles })
    }

    /// Whether `line` may hold one of the addresses.
    #[inline]
    pub fn may_match(&self, line: &[u8]) -> bool {
        self.needles.iter().any(|n| n.find(line).is_some()) || has_mapped_hex(line)
    }
}

/// `:ffff:` in any case.
fn has_mapped_hex(line: &[u8]) -> bool {
    memchr::memchr_iter(b':', line).any(|i| {
        line.get(i + 1..i + 6)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"ffff:"))
    })
}

/// Sorts ranges and joins the ones that overlap or touch.
fn normalize<T: Ord + Copy + num::Step>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if last.1.next().is_none_or(|n| lo <= n) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[inline]
fn lookup<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    match ranges {
        [] => false,
        [(lo, hi)] => *lo <= x && x <= *hi,
        _ => {
            // The last range starting at or before x.
            let i = ranges.partition_point(|(lo, _)| *lo <= x);
            i > 0 && x <= ranges[i - 1].1
        }
    }
}

/// The successor of a range bound, for joining adjacent ranges.
mod num {
    pub trait Step: Sized {
        fn next(self) -> Option<Self>;
    }
    impl Step for u32 {
        fn next(self) -> Option<u32> {
            self.checked_add(1)
        }
    }
    impl Step for u128 {
        fn next(self) -> Option<u128> {
            self.checked_add(1)
        }
    }
}

/// Parses a source as the user gives it: an address (`203.0.113.7`, `2001:db8::1`,
/// `::ffff:203.0.113.7`) or a network in CIDR notation (`203.0.113.0/24`). Host bits of a
/// network are ignored (`203.0.113.7/24` is `203.0.113.0/24`).
pub fn parse_source(text: &str) -> Option<IpNet> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<IpAddr>() {
        return Some(IpNet::from(addr));
    }
    t.parse::<IpNet>().ok().map(|n| n.trunc())
}

/// What a matching line is kept as, for the output chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The line's bytes and time.
    Line,
    /// The line's bytes and time, and the fields of a JSON record.
    Fields,
    /// Nothing: only counts.
    Count,
}

/// The fields of a matching line for JSON output; text is decoded lossily.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// The client address (canonical), or for an unparsed line the address that matched.
    pub source: Option<IpAddr>,
    /// The request method.
    pub method: Option<String>,
    /// Path and query, as written.
    pub target: Option<String>,
    /// The status code.
    pub status: Option<u16>,
    /// The response size in bytes.
    pub bytes: Option<u64>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The virtual host, for formats that log one.
    pub vhost: Option<String>,
}

/// One matching line.
#[derive(Clone, Debug)]
pub struct Hit {
    /// Where the line is.
    pub at: At,
    /// The line as written, without its line terminator.
    pub line: Box<[u8]>,
    /// The request time (UTC seconds), when the line has one.
    pub time: Option<i64>,
    /// The line's fields, with [`Keep::Fields`].
    pub fields: Option<Box<Fields>>,
}

/// A time window, both ends included; lines without a time are always inside.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// The earliest time admitted, UTC seconds; `None`: no lower bound.
    pub since: Option<i64>,
    /// The latest time admitted, UTC seconds; `None`: no upper bound.
    pub until: Option<i64>,
}

impl Window {
    fn admits(self, time: Option<i64>) -> bool {
        match time {
            None => true,
            Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u),
        }
    }
}

/// Whether a line's virtual host is the one asked for (`--vhost`): the same host name,
/// ignoring ASCII case. No host asked for admits every line; a line without a virtual host
/// (its format logs none, or it was not parsed) is never the one asked for.
#[derive(Clone, Debug, Default)]
pub struct VhostFilter {
    name: Option<Box<[u8]>>,
}

impl VhostFilter {
    /// The filter for the host `name`, or one that admits every line when `None`.
    pub fn new(name: Option<&str>) -> VhostFilter {
        VhostFilter {
            name: name.map(|n| n.as_bytes().into()),
        }
    }

    /// Whether a host was asked for.
    pub fn is_set(&self) -> bool {
        self.name.is_some()
    }

    fn admits(&self, vhost: Option<&[u8]>) -> bool {
        match (&self.name, vhost) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        }
    }
}

/// The search as a scan visitor: one per worker, merged at the end.
pub struct Search<'a> {
    nets: &'a Nets,
    prefilter: Option<Prefilter>,
    window: Window,
    vhost: &'a VhostFilter,
    keep: Keep,
    /// Matching lines per file (by the file's index in the input list).
    pub counts: Vec<u64>,
    /// Per file, lines about the sources and in the window left out by `--vhost` because
    /// they have no virtual host: a format without one, or a line it could not parse.
    pub without_vhost: Vec<u64>,
    /// The kept lines, in no particular order: sort by `at.order()` for input order.
    pub hits: Vec<Hit>,
}

impl<'a> Search<'a> {
    /// A visitor for the addresses of `nets` in `window` and on the host `vhost` asks for,
    /// keeping `keep` of each hit; `files` is how many input files the pass has.
    pub fn new(
        nets: &'a Nets,
        window: Window,
        vhost: &'a VhostFilter,
        keep: Keep,
        files: usize,
    ) -> Search<'a> {
        Search {
            nets,
            prefilter: Prefilter::new(nets),
            window,
            vhost,
            keep,
            counts: vec![0; files],
            without_vhost: vec![0; files],
            hits: Vec::new(),
        }
    }

    /// A parsed record: a hit when it holds an address of the set and its time is in the
    /// window. `raw` is the line shown for it.
    fn found(&mut self, at: At, rec: &Record<'_>, raw: &[u8]) {
        if self.nets.matches_record(rec) && self.window.admits(rec.time) {
            self.hit(at, raw, rec.time, rec.vhost, || Fields {
                source: rec.source(),
                method: lossy(rec.method),
                target: lossy(rec.target),
                status: rec.status,
                bytes: rec.bytes,
                user_agent: lossy(rec.user_agent),
                vhost: lossy(rec.vhost),
            });
        }
    }

    /// Keeps a line about the sources and in the window if its virtual host is the one
    /// asked for.
    fn hit(
        &mut self,
        at: At,
        line: &[u8],
        time: Option<i64>,
        vhost: Option<&[u8]>,
        fields: impl FnOnce() -> Fields,
    ) {
        if !self.vhost.admits(vhost) {
            if vhost.is_none() {
                self.without_vhost[at.file] += 1;
            }
            return;
        }
        self.counts[at.file] += 1;
        let fields = match self.keep {
            Keep::Count => return,
            Keep::Line => None,
            Keep::Fields => Some(Box::new(fields())),
        };
        self.hits.push(Hit {
            at,
            line: line.into(),
            time,
            fields,
        });
    }
}

fn lossy(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
}

impl scan::Visitor for Search<'_> {
    const TALLY: bool = false;

    #[inline]
    fn wants(&self, line: &[u8]) -> bool {
        self.prefilter.as_ref().is_none_or(|p| p.may_match(line))
    }

    fn record(&mut self, _: u64, _: &Record<'_>) {}

    #[inline]
    fn record_at(&mut self, at: At, rec: &Record<'_>) {
        self.found(at, rec, rec.line);
    }

    /// A record decoded or joined from a wrapped line: the line as written is shown (and
    /// kept as evidence), not the copy.
    fn record_copied(&mut self, at: At, rec: &Record<'_>, line: &[u8]) {
        self.found(at, rec, line);
    }

    fn unparsed(&mut self, at: At, line: &[u8]) {
        // An unparsed line has no time, so a window cannot exclude it safely: it is kept.
        if let Some(addr) = self.nets.match_text(line) {
            self.hit(at, line, None, None, || Fields {
                source: Some(addr.to_canonical()),
                ..Fields::default()
            });
        }
    }

    fn merge(&mut self, other: Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        for (a, b) in self.without_vhost.iter_mut().zip(other.without_vhost) {
            *a += b;
        }
        if self.hits.len() < other.hits.len() {
            let mine = std::mem::replace(&mut self.hits, other.hits);
            self.hits.extend(mine);
        } else {
            self.hits.extend(other.hits);
        }
    }
}

/// How many lines of the file at `path` hold an address of `nets` anywhere (as tokens,
/// whatever the format): what an erasure that could not rewrite a file leaves there.
pub fn lines_holding(path: &std::path::Path, nets: &Nets) -> Result<u64, crate::input::ReadError> {
    use crate::input::read::{Line, LineReader};
    let (stream, _) = crate::input::read::open(path)?;
    let mut reader = LineReader::new(stream);
    let (mut lines, mut holding) = (0, 0);
    loop {
        lines += 1;
        match reader.next_line() {
            Ok(Some(Line::Text(text, _))) => holding += u64::from(nets.match_text(text).is_some()),
            Ok(Some(Line::TooLong(..))) => {}
            Ok(None) => return Ok(holding),
            Err(source) => {
                return Err(crate::input::ReadError::Broken {
                    path: path.to_path_buf(),
                    line: lines,
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Nets {
        let parsed: Vec<IpNet> = list.iter().map(|s| parse_source(s).unwrap()).collect();
        Nets::new(&parsed)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_address_matches_only_itself_and_its_mapped_form() {
        let n = nets(&["1.2.3.4"]);
        assert!(n.contains(ip("1.2.3.4")));
        assert!(n.contains(ip("::ffff:1.2.3.4")));
        for other in [
            "11.2.3.45",
            "1.2.3.40",
            "1.2.3.5",
            "1.2.3.3",
            "::1.2.3.4",
            "::1",
        ] {
            assert!(!n.contains(ip(other)), "{other}");
        }
        let mapped = nets(&["::ffff:1.2.3.4"]);
        assert_eq!(mapped, n, "a mapped source is its IPv4 form");
        assert!(mapped.contains(ip("1.2.3.4")));
    }

    #[test]
    fn ranges_have_exact_edges() {
        let n = nets(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/24"]);
        assert!(n.contains(ip("10.0.0.0")) && n.contains(ip("10.255.255.255")));
        assert!(!n.contains(ip("9.255.255.255")) && !n.contains(ip("11.0.0.0")));
        assert!(n.contains(ip("192.0.2.0")) && n.contains(ip("192.0.2.255")));
        assert!(!n.contains(ip("192.0.3.0")));
        assert!(n.contains(ip("2001:db8::")) && n.contains(ip("2001:db8:ffff:ffff::1")));
        assert!(!n.contains(ip("2001:db9::")) && !n.contains(ip("2001:db7:ffff::")));
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        let all6 = nets(&["::/0"]);
        assert!(all6.contains(ip("::ffff:1.2.3.4")) && all6.contains(ip("1.2.3.4")));
        assert!(!nets(&["2001:db8::/32"]).contains(ip("1.2.3.4")));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_are_joined() {
        let n = nets(&[
            "10.0.0.0/24",
            "10.0.1.0/24",
            "10.0.0.128/25",
            "255.255.255.255",
        ]);
        assert_eq!(
            n.v4,
            vec![(0x0a00_0000, 0x0a00_01ff), (0xffff_ffff, 0xffff_ffff)]
        );
        let many = nets(&["1.1.1.1", "3.3.3.3", "5.5.5.5", "7.7.7.0/24"]);
        for (a, want) in [
            ("1.1.1.1", true),
            ("2.2.2.2", false),
            ("5.5.5.5", true),
            ("7.7.7.255", true),
            ("7.7.8.0", false),
            ("0.0.0.0", false),
        ] {
            assert_eq!(many.contains(ip(a)), want, "{a}");
        }
    }

    #[test]
    fn sources_parse_as_addresses_or_networks() {
        assert_eq!(
            parse_source("203.0.113.7/24").unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            parse_source(" 2001:db8::1 ").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert!(parse_source("example.com").is_none());
        assert!(parse_source("1.2.3.4/33").is_none());
    }

    #[test]
    fn unparsed_text_matches_tokens_not_substrings() {
        let n = nets(&["1.2.3.4"]);
        assert_eq!(n.match_text(b"client 11.2.3.45 and 1.2.3.40"), None);
        assert_eq!(n.match_text(b"oops ip:1.2.3.4 x"), Some(ip("1.2.3.4")));
        assert_eq!(
            n.match_text(b"v6 ::ffff:1.2.3.4"),
            Some(ip("::ffff:1.2.3.4"))
        );
    }

    #[test]
    fn prefilter_passes_every_form_of_the_address() {
        let p = Prefilter::new(&nets(&["58.84.21.73", "::ffff:10.0.0.5"])).unwrap();
        for line in [
            &b"58.84.21.73 - -"[..],
            b"058.084.021.073 - -",
            b"x [::ffff:58.84.21.73]:443",
            b"::FFff:3a54:1549 - -",
            b"0:0:0:0:0:FFFF:3A54:1549",
            b"010.000.000.005",
            b"10.0.0.05",
            b"client=10.0.0.005",
        ] {
            assert!(p.may_match(line), "{}", String::from_utf8_lossy(line));
            let n = nets(&["58.84.21.73", "::ffff:10.0.0.5"]);
            let first = line.split(|b| *b == b' ').next().unwrap();
            let text = std::str::from_utf8(first)
                .unwrap()
                .trim_start_matches("client=");
            if let Some((a, _)) = crate::format::addr::parse_host(text.as_bytes()) {
                assert!(n.contains(a), "{text}");
            }
        }
        for line in [
            &b"58.84.21.7 - - 1.73"[..],
            b"21.7 3",
            b"ffff:1549",
            b"10.0.1.6",
        ] {
            assert!(!p.may_match(line), "{}", String::from_utf8_lossy(line));
        }
        assert!(Prefilter::new(&nets(&["10.0.0.0/24"])).is_none());
        assert!(Prefilter::new(&nets(&["2001:db8::1"])).is_none());
        assert!(
            Prefilter::new(&nets(&[
                "1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5"
            ]))
            .is_none()
        );
    }

    #[test]
    fn vhost_filter_is_exact_and_ignores_ascii_case() {
        let f = VhostFilter::new(Some("Shop.Example.NET"));
        assert!(f.admits(Some(b"shop.example.net")));
        for other in [
            &b"shop.example.net.evil"[..],
            b"www.shop.example.net",
            b"shop.example.ne",
            b"",
        ] {
            assert!(!f.admits(Some(other)), "{}", String::from_utf8_lossy(other));
        }
        assert!(
            !f.admits(None),
            "a line without a vhost is not the one asked for"
        );
        let none = VhostFilter::new(None);
        assert!(none.admits(None) && none.admits(Some(b"x")));
    }
}

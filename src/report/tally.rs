//! The report's counters, filled by a scan [`Visitor`] in the same pass as everything else:
//! requests per time bucket and status class, each source's requests over time (for the
//! flagged sources' overlay), and bounded top lists of user agents, 404 paths, methods,
//! HTTP versions and virtual hosts.
//!
//! Every key comes from a client, so memory is bounded whatever the log holds: the top
//! lists keep at most twice their size in keys (each cut to [`KEY_MAX`] bytes) and say how
//! far their counts may fall short once they had to drop some; the time buckets coarsen
//! from minutes to hours to days when there are too many of them. A line whose keys are
//! already known allocates nothing.
//!
//! It does not render anything: see [`super::html`].

use std::collections::HashMap;
use std::net::IpAddr;

use crate::format::Record;
use crate::scan::Visitor;

/// Status classes: index 0 holds requests with no status (or one outside 100..600), 1..=5
/// the 1xx..5xx classes.
pub const CLASSES: usize = 6;

/// The status class index of a status (see [`CLASSES`]).
#[inline]
pub fn class_of(status: Option<u16>) -> usize {
    match status {
        Some(s @ 100..=599) => usize::from(s / 100),
        _ => 0,
    }
}

/// The longest key a top list keeps, in bytes: a longer user agent or path is cut.
pub const KEY_MAX: usize = 200;

/// Seeded at random: keys come from clients. The fast variant, as the masker's cache uses.
type Hasher = foldhash::fast::RandomState;

/// The width of a time bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Step {
    /// The width in minutes.
    pub fn minutes(self) -> u32 {
        match self {
            Step::Minute => 1,
            Step::Hour => 60,
            Step::Day => 1440,
        }
    }

    /// The width in seconds.
    pub fn seconds(self) -> i64 {
        i64::from(self.minutes()) * 60
    }

    fn coarser(self) -> Step {
        match self {
            Step::Minute => Step::Hour,
            Step::Hour | Step::Day => Step::Day,
        }
    }

    /// The width as the page names it (`minute`, `hour`, `day`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Minute => "minute",
            Step::Hour => "hour",
            Step::Day => "day",
        }
    }

    /// The bucket a page shows for a time range of `span` seconds: minutes up to six
    /// hours, hours up to fourteen days, days beyond, so a chart has at most about 360
    /// bars until the log spans a year.
    pub fn for_span(span: i64) -> Step {
        if span <= 6 * 3600 {
            Step::Minute
        } else if span <= 14 * 86400 {
            Step::Hour
        } else {
            Step::Day
        }
    }
}

/// Minutes since the Unix epoch, clamped into `u32` (times before 1970 count as 1970).
#[inline]
pub fn minute_of(t: i64) -> u32 {
    t.div_euclid(60).clamp(0, i64::from(u32::MAX)) as u32
}

/// Requests per time bucket and status class. The current bucket is counted apart from the
/// map, so the lines of one minute cost an array increment each.
#[derive(Clone, Debug)]
pub struct Timeline {
    step: Step,
    buckets: HashMap<u32, [u64; CLASSES], Hasher>,
    current: u32,
    counts: [u64; CLASSES],
    /// The most buckets kept before the step grows.
    cap: usize,
}

/// Buckets a timeline keeps before it counts in coarser ones: 50,000 minutes is about 35
/// days; 50,000 hours about 5.7 years.
pub const TIMELINE_CAP: usize = 50_000;

impl Default for Timeline {
    fn default() -> Self {
        Timeline::with_cap(TIMELINE_CAP)
    }
}

impl Timeline {
    /// A timeline that coarsens its buckets (minute, hour, day) to keep at most `cap`
    /// (at least 2).
    pub fn with_cap(cap: usize) -> Timeline {
        Timeline {
            step: Step::Minute,
            buckets: HashMap::default(),
            current: u32::MAX,
            counts: [0; CLASSES],
            cap: cap.max(2),
        }
    }

    /// Counts one request of status class `class` in `minute` (minutes since the epoch).
    #[inline]
    pub fn add(&mut self, minute: u32, class: usize) {
        let bucket = minute / self.step.minutes();
        if bucket != self.current {
            self.flush();
            self.current = minute / self.step.minutes();
        }
        self.counts[class] += 1;
    }

    fn flush(&mut self) {
        if self.counts != [0; CLASSES] {
            let at = self.buckets.entry(self.current).or_insert([0; CLASSES]);
            for (a, b) in at.iter_mut().zip(self.counts) {
                *a += b;
            }
            self.counts = [0; CLASSES];
        }
        while self.buckets.len() > self.cap && self.step != Step::Day {
            self.coarsen(self.step.coarser());
        }
    }

    fn coarsen(&mut self, to: Step) {
        if to <= self.step {
            return;
        }
        let ratio = to.minutes() / self.step.minutes();
        let old = std::mem::take(&mut self.buckets);
        for (b, counts) in old {
            let at = self.buckets.entry(b / ratio).or_insert([0; CLASSES]);
            for (a, c) in at.iter_mut().zip(counts) {
                *a += c;
            }
        }
        if self.current != u32::MAX {
            self.current /= ratio;
        }
        self.step = to;
    }

    /// The width of the buckets counted.
    /// The width of a bucket now.
    pub fn step(&self) -> Step {
        self.step
    }

    /// Adds another worker's timeline, at the coarser of the two widths.
    pub fn merge(&mut self, mut other: Timeline) {
        self.flush();
        other.flush();
        let step = self.step.max(other.step);
        self.coarsen(step);
        other.coarsen(step);
        for (b, counts) in other.buckets {
            let at = self.buckets.entry(b).or_insert([0; CLASSES]);
            for (a, c) in at.iter_mut().zip(counts) {
                *a += c;
            }
        }
        self.flush();
    }

    /// Every bucket with its start (Unix seconds), in time order.
    pub fn buckets(&self) -> Vec<(i64, [u64; CLASSES])> {
        let mut all: Vec<(i64, [u64; CLASSES])> = self
            .buckets
            .iter()
            .map(|(b, c)| (i64::from(*b) * self.step.seconds(), *c))
            .collect();
        if self.counts != [0; CLASSES] {
            let start = i64::from(self.current) * self.step.seconds();
            match all.iter_mut().find(|(t, _)| *t == start) {
                Some((_, c)) => {
                    for (a, b) in c.iter_mut().zip(self.counts) {
                        *a += b;
                    }
                }
                None => all.push((start, self.counts)),
            }
        }
        all.sort_by_key(|(t, _)| *t);
        all
    }
}

/// One source's requests over time: (bucket, requests) in the order first seen, at a step
/// of its own that grows when the source was active in more than [`SERIES_CAP`] buckets.
#[derive(Clone, Debug, Default)]
pub struct Series {
    coarse: u8,
    grown: u8,
    points: Vec<(u32, u32)>,
}

/// The most buckets one source's series keeps before it counts in coarser ones.
pub const SERIES_CAP: usize = 512;

impl Series {
    fn step(&self) -> Step {
        match self.coarse {
            0 => Step::Minute,
            1 => Step::Hour,
            _ => Step::Day,
        }
    }

    #[inline]
    fn add(&mut self, minute: u32, n: u32) {
        let bucket = minute / self.step().minutes();
        if let Some(last) = self.points.last_mut()
            && last.0 == bucket
        {
            last.1 = last.1.saturating_add(n);
            return;
        }
        if self.points.len() >= SERIES_CAP << self.grown {
            self.tidy();
            if self.points.len() >= (SERIES_CAP << self.grown) / 2 {
                if self.coarse < 2 {
                    let ratio = self.step().coarser().minutes() / self.step().minutes();
                    self.coarse += 1;
                    for p in &mut self.points {
                        p.0 /= ratio;
                    }
                    self.tidy();
                } else {
                    // Days cannot coarsen: a hostile log's times may span centuries.
                    // Doubling the limit keeps the tidying amortized.
                    self.grown += 1;
                }
            }
            let bucket = minute / self.step().minutes();
            match self.points.binary_search_by_key(&bucket, |p| p.0) {
                Ok(i) => self.points[i].1 = self.points[i].1.saturating_add(n),
                Err(i) => self.points.insert(i, (bucket, n)),
            }
            return;
        }
        self.points.push((bucket, n));
    }

    /// Sorts the points and adds up those of one bucket.
    fn tidy(&mut self) {
        self.points.sort_unstable_by_key(|p| p.0);
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(self.points.len());
        for &(b, n) in &self.points {
            match out.last_mut() {
                Some(last) if last.0 == b => last.1 = last.1.saturating_add(n),
                _ => out.push((b, n)),
            }
        }
        self.points = out;
    }

    fn merge(&mut self, other: Series) {
        let step = other.step();
        for (b, n) in other.points {
            self.add(b * step.minutes(), n);
        }
    }

    /// (start of the bucket in Unix seconds, requests), in time order.
    pub fn points(&self) -> Vec<(i64, u64)> {
        let mut s = self.clone();
        s.tidy();
        let secs = s.step().seconds();
        s.points
            .iter()
            .map(|&(b, n)| (i64::from(b) * secs, u64::from(n)))
            .collect()
    }
}

/// A value a top list counts per key.
pub trait Weight: Copy + Default {
    /// What the list is ordered by.
    fn weight(&self) -> u64;
    /// Adds another count of the same key.
    fn add(&mut self, other: &Self);
}

impl Weight for u64 {
    fn weight(&self) -> u64 {
        *self
    }
    fn add(&mut self, other: &u64) {
        *self += other;
    }
}

impl Weight for [u64; CLASSES] {
    fn weight(&self) -> u64 {
        self.iter().sum()
    }
    fn add(&mut self, other: &Self) {
        for (a, b) in self.iter_mut().zip(other) {
            *a += b;
        }
    }
}

/// The heaviest keys, in bounded memory. Keys are counted exactly until `2 * size` are
/// held; a new key beyond that first drops every key not among the `size` heaviest. A key
/// dropped and seen again starts from zero, so once anything was dropped a count may fall
/// short of the truth by at most [`TopCounter::short_by`]; no key outside the true top
/// `size` can be shown above one that was never dropped by more than that.
///
/// A line's key is usually one seen many times (a browser's user agent, `GET`): a small
/// direct-mapped cache, indexed by a cheap fingerprint of the key and checked by comparing
/// the key itself, finds its entry without hashing the whole key (a user agent is ~100
/// bytes). A fingerprint an attacker makes collide only sends lookups to the map.
#[derive(Clone, Debug)]
pub struct TopCounter<V> {
    entries: Vec<(Box<[u8]>, V)>,
    map: HashMap<Box<[u8]>, u32, Hasher>,
    cache: Box<[(u64, u32); CACHE]>,
    size: usize,
    short_by: u64,
    dropped: u64,
}

const CACHE: usize = 256;
const EMPTY: (u64, u32) = (0, u32::MAX);

/// A cheap fingerprint of a key: its length and three 8-byte words, mixed.
#[inline]
fn fingerprint(k: &[u8]) -> u64 {
    let n = k.len();
    let word = |at: usize| {
        k.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let (a, b, c) = if n >= 8 {
        (word(0), word(n - 8), word(n / 2 - 4))
    } else {
        // Short keys (methods, versions): their bytes, one by one.
        let mut a = 0u64;
        for (i, &byte) in k.iter().enumerate() {
            a |= u64::from(byte) << (8 * i);
        }
        (a, 0, 0)
    };
    (a ^ b.rotate_left(23) ^ c.rotate_left(41) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

impl<V: Weight> TopCounter<V> {
    /// A list that shows `size` keys (at least 1) and keeps at most twice as many.
    pub fn new(size: usize) -> TopCounter<V> {
        TopCounter {
            entries: Vec::new(),
            map: HashMap::default(),
            cache: Box::new([EMPTY; CACHE]),
            size: size.max(1),
            short_by: 0,
            dropped: 0,
        }
    }

    /// Adds `value` to `key`'s count; the key is cut to [`KEY_MAX`] bytes.
    #[inline]
    pub fn add(&mut self, key: &[u8], value: V) {
        let key = &key[..key.len().min(KEY_MAX)];
        let fp = fingerprint(key);
        let slot = (fp >> 56) as usize % CACHE;
        let (seen, at) = self.cache[slot];
        if seen == fp
            && let Some((k, v)) = self.entries.get_mut(at as usize)
            && **k == *key
        {
            v.add(&value);
            return;
        }
        let at = match self.map.get(key) {
            Some(&at) => {
                self.entries[at as usize].1.add(&value);
                at
            }
            None => {
                if self.entries.len() >= 2 * self.size {
                    self.prune();
                }
                let at = self.entries.len() as u32;
                self.entries.push((key.into(), value));
                self.map.insert(key.into(), at);
                at
            }
        };
        self.cache[slot] = (fp, at);
    }

    /// Keeps the `size` heaviest keys (ties all kept or all dropped).
    fn prune(&mut self) {
        if self.entries.len() <= self.size {
            return;
        }
        let mut weights: Vec<u64> = self.entries.iter().map(|(_, v)| v.weight()).collect();
        let (_, nth, _) = weights.select_nth_unstable_by(self.size, |a, b| b.cmp(a));
        let cut = *nth;
        let mut dropped = 0;
        self.entries.retain(|(_, v)| {
            let keep = v.weight() > cut;
            if !keep {
                dropped += v.weight();
            }
            keep
        });
        self.map.clear();
        for (i, (k, _)) in self.entries.iter().enumerate() {
            self.map.insert(k.clone(), i as u32);
        }
        self.cache.fill(EMPTY);
        self.short_by = self.short_by.max(cut);
        self.dropped += dropped;
    }

    /// Adds another worker's list, key by key.
    pub fn merge(&mut self, other: TopCounter<V>) {
        for (k, v) in other.entries {
            match self.map.get(&k) {
                Some(&at) => self.entries[at as usize].1.add(&v),
                None => {
                    self.map.insert(k.clone(), self.entries.len() as u32);
                    self.entries.push((k, v));
                }
            }
        }
        self.short_by += other.short_by;
        self.dropped += other.dropped;
        if self.entries.len() > 2 * self.size {
            self.prune();
        }
    }

    /// The `n` heaviest keys, heaviest first, ties by key.
    pub fn top(&self, n: usize) -> Vec<(&[u8], V)> {
        let mut all: Vec<(&[u8], V)> = self.entries.iter().map(|(k, v)| (&k[..], *v)).collect();
        all.sort_by(|a, b| b.1.weight().cmp(&a.1.weight()).then(a.0.cmp(b.0)));
        all.truncate(n);
        all
    }

    /// How far any count shown may fall short (0: every count is exact).
    pub fn short_by(&self) -> u64 {
        self.short_by
    }

    /// Requests of keys dropped to stay in bounds.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Keys held now (at most twice the size).
    pub fn held(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key was counted (or every one was dropped).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Rows the page shows of each top list; the lists keep twice as many keys.
pub const TOP: usize = 25;

/// Everything the report counts besides what every scan counts; one per worker, merged.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Requests over time, per status class.
    pub timeline: Timeline,
    /// Parsed requests without a time, per status class.
    pub untimed: [u64; CLASSES],
    series: HashMap<IpAddr, Series, Hasher>,
    /// The last line's source and minute with its requests, not yet in `series`: a
    /// source's requests often come in runs, which then cost one map update.
    run: Option<(IpAddr, u32, u32)>,
    /// Requests per user agent.
    pub agents: TopCounter<u64>,
    /// 404 answers per path.
    pub not_found: TopCounter<u64>,
    /// Requests per method.
    pub methods: TopCounter<u64>,
    /// Requests per HTTP version.
    pub protocols: TopCounter<u64>,
    /// Requests per virtual host, per status class.
    pub vhosts: TopCounter<[u64; CLASSES]>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            timeline: Timeline::default(),
            untimed: [0; CLASSES],
            series: HashMap::default(),
            run: None,
            agents: TopCounter::new(4 * TOP),
            not_found: TopCounter::new(4 * TOP),
            methods: TopCounter::new(TOP),
            protocols: TopCounter::new(TOP),
            vhosts: TopCounter::new(4 * TOP),
        }
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        Tally::default()
    }

    fn end_run(&mut self) {
        if let Some((src, minute, n)) = self.run.take() {
            self.series.entry(src).or_default().add(minute, n);
        }
    }

    /// The requests over time of every source `keep` accepts, by source.
    pub fn series_of(&self, keep: impl Fn(IpAddr) -> bool) -> Vec<(IpAddr, Vec<(i64, u64)>)> {
        let mut out: Vec<(IpAddr, Vec<(i64, u64)>)> = Vec::new();
        let mut run = self.run.filter(|(a, _, _)| keep(*a));
        for (a, s) in self.series.iter().filter(|(a, _)| keep(**a)) {
            match run {
                Some((src, minute, n)) if src == *a => {
                    let mut s = s.clone();
                    s.add(minute, n);
                    out.push((*a, s.points()));
                    run = None;
                }
                _ => out.push((*a, s.points())),
            }
        }
        if let Some((src, minute, n)) = run {
            let mut s = Series::default();
            s.add(minute, n);
            out.push((src, s.points()));
        }
        out.sort_by_key(|(a, _)| *a);
        out
    }

    /// Every request counted: those drawn on the timeline and those without a time.
    pub fn requests(&self) -> u64 {
        let timed: u64 = self
            .timeline
            .buckets()
            .iter()
            .map(|(_, c)| c.weight())
            .sum();
        timed + self.untimed.weight()
    }
}

impl Visitor for Tally {
    #[inline]
    fn record(&mut self, _order: u64, rec: &Record<'_>) {
        let class = class_of(rec.status);
        match rec.time {
            Some(t) => {
                let minute = minute_of(t);
                self.timeline.add(minute, class);
                if let Some(src) = rec.source() {
                    match &mut self.run {
                        Some((a, m, n)) if *a == src && *m == minute => *n += 1,
                        _ => {
                            self.end_run();
                            self.run = Some((src, minute, 1));
                        }
                    }
                }
            }
            None => self.untimed[class] += 1,
        }
        if let Some(ua) = rec.user_agent {
            self.agents.add(ua, 1);
        }
        if rec.status == Some(404)
            && let Some(path) = rec.path()
        {
            self.not_found.add(path, 1);
        }
        if let Some(m) = rec.method {
            self.methods.add(m, 1);
        }
        if let Some(p) = rec.protocol {
            self.protocols.add(p, 1);
        }
        if let Some(v) = rec.vhost {
            let mut counts = [0; CLASSES];
            counts[class] = 1;
            self.vhosts.add(v, counts);
        }
    }

    fn merge(&mut self, mut other: Tally) {
        self.end_run();
        other.end_run();
        self.timeline.merge(other.timeline);
        self.untimed.add(&other.untimed);
        let (mut big, small) = if self.series.len() >= other.series.len() {
            (std::mem::take(&mut self.series), other.series)
        } else {
            (other.series, std::mem::take(&mut self.series))
        };
        for (k, v) in small {
            big.entry(k).or_default().merge(v);
        }
        self.series = big;
        self.agents.merge(other.agents);
        self.not_found.merge(other.not_found);
        self.methods.merge(other.methods);
        self.protocols.merge(other.protocols);
        self.vhosts.merge(other.vhosts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(class_of(Some(200)), 2);
        assert_eq!(class_of(Some(404)), 4);
        assert_eq!(class_of(Some(599)), 5);
        assert_eq!(class_of(Some(600)), 0);
        assert_eq!(class_of(Some(99)), 0);
        assert_eq!(class_of(None), 0);
    }

    #[test]
    fn the_bucket_follows_the_span() {
        assert_eq!(Step::for_span(0), Step::Minute);
        assert_eq!(Step::for_span(6 * 3600), Step::Minute);
        assert_eq!(Step::for_span(6 * 3600 + 1), Step::Hour);
        assert_eq!(Step::for_span(7 * 86400), Step::Hour);
        assert_eq!(Step::for_span(14 * 86400 + 1), Step::Day);
        assert_eq!(Step::for_span(400 * 86400), Step::Day);
    }

    #[test]
    fn a_million_distinct_user_agents_stay_in_bounds() {
        let mut top = TopCounter::<u64>::new(100);
        // Three agents are common; a million others are seen once each.
        for i in 0..1_000_000u32 {
            if i % 10 == 0 {
                top.add(b"curl/8.5.0", 1);
            }
            if i % 20 == 0 {
                top.add(b"Mozilla/5.0 (X11; Linux x86_64)", 1);
            }
            if i % 40 == 0 {
                top.add(&[b'x'; 5000], 1);
            }
            top.add(format!("bot-{i}").as_bytes(), 1);
            assert!(top.held() <= 200, "{} keys held", top.held());
        }
        let shown = top.top(3);
        assert_eq!(shown[0].0, b"curl/8.5.0");
        assert_eq!(shown[1].0, b"Mozilla/5.0 (X11; Linux x86_64)");
        assert_eq!(shown[2].0.len(), KEY_MAX, "long keys are cut");
        // Each count is short by at most the bound, never over.
        assert!(shown[0].1 <= 100_000 && shown[0].1 + top.short_by() >= 100_000);
        assert!(shown[1].1 <= 50_000 && shown[1].1 + top.short_by() >= 50_000);
        assert!(top.short_by() <= 1, "one-off keys are dropped at count 1");
        assert!(top.dropped() > 900_000);
    }

    #[test]
    fn top_lists_are_exact_until_they_drop_a_key() {
        let mut a = TopCounter::<u64>::new(2);
        for k in [&b"a"[..], b"b", b"a", b"c", b"a", b"b"] {
            a.add(k, 1);
        }
        assert_eq!(a.top(2), vec![(&b"a"[..], 3), (&b"b"[..], 2)]);
        assert_eq!(a.short_by(), 0);
        let mut b = TopCounter::<u64>::new(2);
        b.add(b"c", 5);
        a.merge(b);
        assert_eq!(a.top(1), vec![(&b"c"[..], 6)]);
    }

    #[test]
    fn timelines_coarsen_past_their_cap_and_merge_at_the_coarser_step() {
        let mut t = Timeline::with_cap(100);
        let start = minute_of(1_800_000_000);
        for m in 0..200 {
            t.add(start + m, 2);
        }
        assert_eq!(t.step(), Step::Hour);
        let total: u64 = t.buckets().iter().map(|(_, c)| c[2]).sum();
        assert_eq!(total, 200);
        let mut u = Timeline::with_cap(100);
        u.add(start, 4);
        u.add(start, 4);
        u.merge(t);
        assert_eq!(u.step(), Step::Hour);
        let b = u.buckets();
        assert_eq!(b.iter().map(|(_, c)| c[2] + c[4]).sum::<u64>(), 202);
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(b[0].0 % 3600, 0);
    }

    #[test]
    fn a_series_keeps_every_request_in_bounded_points() {
        let mut s = Series::default();
        let start = minute_of(1_800_000_000);
        // Every other minute for two weeks, out of order at the end.
        for m in (0..20_160).step_by(2) {
            s.add(start + m, 1);
        }
        s.add(start, 3);
        assert!(s.points.len() <= SERIES_CAP);
        let p = s.points();
        assert_eq!(p.iter().map(|(_, n)| n).sum::<u64>(), 10_080 + 3);
        assert!(p.windows(2).all(|w| w[0].0 < w[1].0));
        let mut other = Series::default();
        other.add(start + 5, 2);
        s.merge(other);
        assert_eq!(s.points().iter().map(|(_, n)| n).sum::<u64>(), 10_085);
    }
}

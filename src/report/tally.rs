//! The report's counters, filled by a scan [`Visitor`] in the same pass as everything else:
//! requests per time bucket and status class, each source's requests over time (for the
//! flagged sources' overlay), bounded top lists of user agents and 404 paths, the few
//! methods and HTTP versions, and per virtual host its requests by status class, over time
//! and its 404 paths.
//!
//! Every key comes from a client, so memory is bounded whatever the log holds: the top
//! lists keep at most twice their size in keys (each cut to [`KEY_MAX`] bytes) and say how
//! far their counts may fall short once they had to drop some; the time buckets coarsen
//! from minutes to hours to days when there are too many of them. A line whose keys are
//! already known allocates nothing.
//!
//! The tally counts each source's requests for the pass ([`Visitor::count_source`]): it
//! keeps a map entry per source for the overlay anyway, so the pass does not update a
//! second one.
//!
//! It does not render anything: see [`super::html`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

use crate::format::Record;
use crate::scan::{SourceCounts, Visitor};

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
    // Unsigned: a division by a constant is then a multiplication and a shift.
    match u64::try_from(t) {
        Ok(t) => (t / 60).min(u64::from(u32::MAX)) as u32,
        Err(_) => 0,
    }
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
        let bucket = match self.step {
            Step::Minute => minute,
            step => minute / step.minutes(),
        };
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
        // The smaller adds into the larger (one side is often still empty); both have no
        // pending counts after their flush.
        if self.buckets.len() < other.buckets.len() {
            std::mem::swap(&mut self.buckets, &mut other.buckets);
        }
        for (b, counts) in other.buckets {
            let at = self.buckets.entry(b).or_insert([0; CLASSES]);
            for (a, c) in at.iter_mut().zip(counts) {
                *a += c;
            }
        }
        self.flush();
    }

    /// Every request counted.
    pub fn requests(&self) -> u64 {
        self.buckets.values().map(Weight::weight).sum::<u64>() + self.counts.weight()
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
        // Each start is there once.
        all.sort_unstable_by_key(|(t, _)| *t);
        all
    }
}

/// One source's requests over time: (bucket, requests) in the order first seen, at a step
/// of its own that grows when the source was active in more than [`SERIES_CAP`] buckets.
/// The last bucket is held apart (`open`) until a request falls in another, and the first
/// few others in place: most sources are seen in a few minutes only, and theirs then need
/// no allocation (a quarter of a scan's added time went to allocating them).
#[derive(Clone, Debug, Default)]
pub struct Series {
    coarse: u8,
    grown: u8,
    /// How many of `first` hold points; while any do, `points` is empty.
    held: u8,
    /// The last bucket and its requests; no bucket while its requests are 0.
    open: (u32, u32),
    first: [(u32, u32); SERIES_INLINE],
    points: Vec<(u32, u32)>,
}

/// The most buckets one source's series keeps before it counts in coarser ones.
pub const SERIES_CAP: usize = 512;

/// Points a series holds in place before it allocates.
const SERIES_INLINE: usize = 4;

impl Series {
    fn step(&self) -> Step {
        match self.coarse {
            0 => Step::Minute,
            1 => Step::Hour,
            _ => Step::Day,
        }
    }

    /// Moves the points held in place to `points`.
    fn spill(&mut self) {
        if self.held > 0 {
            let mut v = Vec::with_capacity(2 * SERIES_INLINE + 2);
            v.extend_from_slice(&self.first[..usize::from(self.held).min(SERIES_INLINE)]);
            self.points = v;
            self.held = 0;
        }
    }

    /// Adds `n` (at least 1) requests in `minute`. A source's requests mostly come in time
    /// order, so the usual case (the last bucket's) is a compare and an add.
    #[inline]
    fn add(&mut self, minute: u32, n: u32) {
        let bucket = match self.coarse {
            0 => minute,
            _ => minute / self.step().minutes(),
        };
        if self.open.0 == bucket && self.open.1 > 0 {
            self.open.1 = self.open.1.saturating_add(n);
            return;
        }
        self.reopen(minute, n);
    }

    /// Keeps the last bucket among the points and opens `minute`'s with `n` requests.
    #[inline(never)]
    fn reopen(&mut self, minute: u32, n: u32) {
        let held = usize::from(self.held);
        if self.coarse == 0 && self.open.1 > 0 && held < SERIES_INLINE && self.points.is_empty() {
            // The usual case, [`Series::close`] and [`Series::keep`] in short.
            self.first[held] = self.open;
            self.held += 1;
            self.open = (minute, n);
            return;
        }
        self.close();
        self.open = (minute / self.step().minutes(), n);
    }

    /// Moves the last bucket, if any, to the points.
    #[inline]
    fn close(&mut self) {
        let (bucket, n) = std::mem::take(&mut self.open);
        if n > 0 {
            self.keep(bucket * self.step().minutes(), n);
        }
    }

    /// Adds `n` requests in `minute` to the points, coarsening them when there are too
    /// many.
    fn keep(&mut self, minute: u32, n: u32) {
        let bucket = minute / self.step().minutes();
        let held = usize::from(self.held);
        if self.points.is_empty() && held < SERIES_INLINE {
            // The bucket closed last differs from this one (it was open when this one
            // came), so there is nothing to add it to.
            self.first[held] = (bucket, n);
            self.held += 1;
            return;
        }
        self.spill();
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
        self.spill();
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

    fn merge(&mut self, mut other: Series) {
        other.close();
        other.spill();
        let step = other.step();
        for (b, n) in other.points {
            self.add(b * step.minutes(), n);
        }
    }

    /// (start of the bucket in Unix seconds, requests), in time order.
    pub fn points(&self) -> Vec<(i64, u64)> {
        let mut s = self.clone();
        s.close();
        s.tidy();
        let secs = s.step().seconds();
        s.points
            .iter()
            .map(|&(b, n)| (i64::from(b) * secs, u64::from(n)))
            .collect()
    }
}

/// A value a top list counts per key.
pub trait Weight: Clone + Default {
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
/// bytes). A fingerprint an attacker makes collide only sends lookups to the map. The
/// cache is made on the first key, so a list never counted into (a virtual host's 404
/// paths) costs no more than an empty map.
#[derive(Clone, Debug)]
pub struct TopCounter<V> {
    entries: Vec<(Box<[u8]>, V)>,
    map: HashMap<Box<[u8]>, u32, Hasher>,
    cache: Option<Box<[(u64, u32); CACHE]>>,
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
            cache: None,
            size: size.max(1),
            short_by: 0,
            dropped: 0,
        }
    }

    /// Adds `value` to `key`'s count; the key is cut to [`KEY_MAX`] bytes.
    #[inline]
    pub fn add(&mut self, key: &[u8], value: V) {
        self.add_with(key, |v| v.add(&value));
    }

    /// Updates `key`'s count with `update` (a new key starts from the default); the key is
    /// cut to [`KEY_MAX`] bytes.
    #[inline]
    pub fn add_with(&mut self, key: &[u8], update: impl FnOnce(&mut V)) -> u32 {
        let key = &key[..key.len().min(KEY_MAX)];
        let fp = fingerprint(key);
        let slot = (fp >> 56) as usize % CACHE;
        if let Some(cache) = &self.cache
            && let (seen, at) = cache[slot]
            && seen == fp
            && let Some((k, v)) = self.entries.get_mut(at as usize)
            && **k == *key
        {
            update(v);
            return at;
        }
        self.add_uncached(key, fp, slot, update)
    }

    /// Adds `value` to `key`'s count trying first the key at `hint`, an index an earlier
    /// add returned (a source's last user agent: most clients keep theirs), which costs a
    /// comparison instead of a fingerprint and a cache lookup. Returns the key's index, the
    /// next hint; a hint gone stale (keys were dropped since) only costs the comparison.
    #[inline]
    pub fn add_at(&mut self, key: &[u8], value: V, hint: u32) -> u32 {
        self.add_with_at(key, hint, |v| v.add(&value))
    }

    /// [`TopCounter::add_with`] trying first the key at `hint`, as [`TopCounter::add_at`].
    #[inline(always)]
    pub fn add_with_at(&mut self, key: &[u8], hint: u32, update: impl FnOnce(&mut V)) -> u32 {
        let key = &key[..key.len().min(KEY_MAX)];
        if let Some((k, v)) = self.entries.get_mut(hint as usize)
            && **k == *key
        {
            update(v);
            return hint;
        }
        self.add_missed(key, update)
    }

    /// [`TopCounter::add_with`] out of line, for a key its hint missed.
    #[inline(never)]
    fn add_missed(&mut self, key: &[u8], update: impl FnOnce(&mut V)) -> u32 {
        self.add_with(key, update)
    }

    /// [`TopCounter::add_with`] for a key not in the cache: found in the map, or new.
    #[inline(never)]
    fn add_uncached(
        &mut self,
        key: &[u8],
        fp: u64,
        slot: usize,
        update: impl FnOnce(&mut V),
    ) -> u32 {
        let at = match self.map.get(key) {
            Some(&at) => {
                update(&mut self.entries[at as usize].1);
                at
            }
            None => {
                if self.entries.len() >= 2 * self.size {
                    self.prune();
                }
                let at = self.entries.len() as u32;
                let mut value = V::default();
                update(&mut value);
                self.entries.push((key.into(), value));
                self.map.insert(key.into(), at);
                at
            }
        };
        self.cache.get_or_insert_with(|| Box::new([EMPTY; CACHE]))[slot] = (fp, at);
        at
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
        if let Some(c) = &mut self.cache {
            c.fill(EMPTY);
        }
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
    pub fn top(&self, n: usize) -> Vec<(&[u8], &V)> {
        let mut all: Vec<(&[u8], &V)> = self.entries.iter().map(|(k, v)| (&k[..], v)).collect();
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

    /// Every request counted: those of the keys held and those dropped.
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|(_, v)| v.weight()).sum::<u64>() + self.dropped
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

/// Distinct keys a [`ShortKeys`] holds packed before it counts new ones in its top list.
const SHORT_SLOTS: usize = 16;

/// A key of 1 to 8 bytes as one integer, so that two keys are equal exactly when their
/// integers are: a shorter key's bytes (little-endian) under a top byte of `0x80 | len`; an
/// 8-byte key's bytes, its last below `0x80` (an 8-byte key ending in another byte is not
/// packed). Two overlapping loads, so a method or HTTP version costs a few instructions,
/// not a loop or a `memcmp`.
#[inline]
fn pack(k: &[u8]) -> Option<u64> {
    let n = k.len();
    let bytes = match n {
        4..=8 => {
            let lo = u32::from_le_bytes(k[..4].try_into().ok()?);
            let hi = u32::from_le_bytes(k[n - 4..].try_into().ok()?);
            u64::from(lo) | (u64::from(hi) << (8 * (n - 4)))
        }
        3 => u64::from(u16::from_le_bytes([k[0], k[1]])) | (u64::from(k[2]) << 16),
        2 => u64::from(u16::from_le_bytes([k[0], k[1]])),
        1 => u64::from(k[0]),
        _ => return None,
    };
    match n {
        8 => (bytes >> 63 == 0).then_some(bytes),
        _ => Some(bytes | ((0x80 | n as u64) << 56)),
    }
}

/// Requests per key for fields with a handful of short values (methods, HTTP versions):
/// the first `SHORT_SLOTS` distinct keys of at most 8 bytes are counted exactly in a
/// fixed array, compared as integers; longer keys, and new ones once the array is full
/// (a hostile client's made-up methods), go to a bounded [`TopCounter`]. Memory is fixed
/// plus that list's bound; [`ShortKeys::top`] shows both as one list.
#[derive(Clone, Debug)]
pub struct ShortKeys {
    packed: [u64; SHORT_SLOTS],
    keys: [([u8; 8], u8); SHORT_SLOTS],
    counts: [u64; SHORT_SLOTS],
    used: usize,
    others: TopCounter<u64>,
}

impl ShortKeys {
    /// Counts whose other keys go to a list of `size` (see [`TopCounter::new`]).
    pub fn new(size: usize) -> ShortKeys {
        ShortKeys {
            packed: [0; SHORT_SLOTS],
            keys: [([0; 8], 0); SHORT_SLOTS],
            counts: [0; SHORT_SLOTS],
            used: 0,
            others: TopCounter::new(size),
        }
    }

    /// Counts `n` requests of `key`.
    #[inline(always)]
    pub fn add(&mut self, key: &[u8], n: u64) {
        if let Some(p) = pack(key) {
            for i in 0..self.used.min(SHORT_SLOTS) {
                if self.packed[i] == p {
                    self.counts[i] += n;
                    return;
                }
            }
        }
        self.add_new(key, n);
    }

    /// [`ShortKeys::add`] for a key not in the array: the array's next slot, or the list.
    #[inline(never)]
    fn add_new(&mut self, key: &[u8], n: u64) {
        match pack(key) {
            Some(p) if self.used < SHORT_SLOTS => {
                let mut bytes = [0; 8];
                bytes[..key.len()].copy_from_slice(key);
                self.packed[self.used] = p;
                self.keys[self.used] = (bytes, key.len() as u8);
                self.counts[self.used] = n;
                self.used += 1;
            }
            _ => self.others.add(key, n),
        }
    }

    /// Adds another worker's counts.
    pub fn merge(&mut self, other: ShortKeys) {
        for i in 0..other.used.min(SHORT_SLOTS) {
            let (bytes, len) = &other.keys[i];
            self.add(&bytes[..usize::from(*len)], other.counts[i]);
        }
        self.others.merge(other.others);
    }

    /// The `n` heaviest keys, heaviest first, ties by key. A key counted in both the array
    /// and the list (workers whose arrays filled differently) is shown once, summed.
    pub fn top(&self, n: usize) -> Vec<(&[u8], u64)> {
        let mut all: Vec<(&[u8], u64)> = (0..self.used.min(SHORT_SLOTS))
            .map(|i| {
                (
                    &self.keys[i].0[..usize::from(self.keys[i].1)],
                    self.counts[i],
                )
            })
            .collect();
        all.extend(
            self.others
                .top(usize::MAX)
                .into_iter()
                .map(|(k, v)| (k, *v)),
        );
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 += later.1;
            }
            same
        });
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        all.truncate(n);
        all
    }

    /// How far any count shown may fall short (0: every count is exact).
    pub fn short_by(&self) -> u64 {
        self.others.short_by()
    }

    /// Whether no key was counted.
    pub fn is_empty(&self) -> bool {
        self.used == 0 && self.others.is_empty()
    }
}

/// 404 paths the page shows per virtual host. Its list is longer (`HOST_LIST`), so that
/// a host probed for many paths once each still shows the ones asked for most, and so that
/// it stays exact (the same whatever the thread count) on ordinary traffic.
pub const HOST_TOP: usize = 5;

/// The size of a virtual host's 404 list (see [`TopCounter::new`]): it keeps up to 100.
const HOST_LIST: usize = 2 * TOP;

/// One virtual host's counts: requests per status class, over time, and its 404 paths.
#[derive(Clone, Debug)]
pub struct HostCounts {
    /// Requests per status class (see [`CLASSES`]).
    pub classes: [u64; CLASSES],
    series: Series,
    /// 404 answers per path.
    pub not_found: TopCounter<u64>,
}

impl Default for HostCounts {
    fn default() -> Self {
        HostCounts {
            classes: [0; CLASSES],
            series: Series::default(),
            not_found: TopCounter::new(HOST_LIST),
        }
    }
}

impl HostCounts {
    /// (start of the bucket in Unix seconds, requests) of the timed requests, in time
    /// order, at a step of the host's own (minutes, hours or days; see [`Series`]).
    pub fn points(&self) -> Vec<(i64, u64)> {
        self.series.points()
    }

    /// The width of the buckets of [`HostCounts::points`].
    pub fn step(&self) -> Step {
        self.series.step()
    }
}

impl Weight for HostCounts {
    fn weight(&self) -> u64 {
        self.classes.weight()
    }
    fn add(&mut self, other: &Self) {
        self.classes.add(&other.classes);
        self.series.merge(other.series.clone());
        self.not_found.merge(other.not_found.clone());
    }
}

/// One source's requests, and those with a time over time.
#[derive(Clone, Debug, Default)]
struct SourceTally {
    requests: u64,
    series: Series,
    /// Where its last user agent is in the top list: the next run's first guess.
    agent: u32,
}

/// The requests of the last lines' source not yet in its [`SourceTally`]: four lines in
/// five come from the source of the line before (a page and its assets), and then cost
/// no map lookup. The run ends when another source comes, or another minute.
#[derive(Clone, Copy, Debug)]
struct Run {
    src: IpAddr,
    /// Where the source's [`SourceTally`] is in [`Tally::source_tallies`].
    at: u32,
    requests: u64,
    /// The minute of the run's timed requests, and how many there are.
    minute: u32,
    in_minute: u32,
    /// Where the last user agent counted is in the top list: most clients keep theirs
    /// (see [`TopCounter::add_at`]), so a run starts from its source's last one.
    agent: u32,
}

/// Slots of [`Tally::recent`].
const RECENT: usize = 1024;

/// A source's slot in [`Tally::recent`]: a multiplicative hash of its address, unseeded
/// (a client that makes its addresses collide only sends lookups to the map).
#[inline(always)]
fn recent_slot(a: IpAddr) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let folded = match a {
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            (bits as u64) ^ ((bits >> 64) as u64).rotate_left(29)
        }
    };
    (folded.wrapping_mul(K) >> (64 - RECENT.trailing_zeros())) as usize
}

/// Everything the report counts besides what every scan counts; one per worker, merged.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Requests over time, per status class.
    pub timeline: Timeline,
    /// Parsed requests without a time, per status class.
    pub untimed: [u64; CLASSES],
    /// Per source, counted for the pass ([`Visitor::count_source`]): where its entry is in
    /// `source_tallies`. The map holds small entries, so its lookups and growth move 24
    /// bytes rather than a whole [`SourceTally`].
    sources: HashMap<IpAddr, u32, Hasher>,
    /// The sources' tallies, in the order first seen.
    source_tallies: Vec<(IpAddr, SourceTally)>,
    /// Where recent sources are in `source_tallies`, by [`recent_slot`]: a run's source
    /// was mostly seen a few runs before (clients interleave, and a run ends each minute),
    /// and is then found without hashing it into `sources`. A slot is checked against
    /// the address it leads to, so a stale or colliding one only costs the map lookup.
    recent: Box<[u32; RECENT]>,
    /// Requests of the last lines' source, not yet in `sources`.
    run: Option<Run>,
    /// Where the last line's virtual host is in `vhosts` (see [`TopCounter::add_at`]).
    vhost: u32,
    /// Whether [`Visitor::count_source`] counted the record that [`Visitor::record`] gets
    /// next (the pass calls them in that order for a record with a source): it counts all
    /// of it, so a line costs one call, and its user agent with the hint its source's
    /// entry holds.
    counted: bool,
    /// Requests per user agent.
    pub agents: TopCounter<u64>,
    /// 404 answers per path.
    pub not_found: TopCounter<u64>,
    /// Requests per method.
    pub methods: ShortKeys,
    /// Requests per HTTP version.
    pub protocols: ShortKeys,
    /// Per virtual host: requests per status class, over time, and 404 paths.
    pub vhosts: TopCounter<HostCounts>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            timeline: Timeline::default(),
            untimed: [0; CLASSES],
            sources: HashMap::default(),
            source_tallies: Vec::new(),
            recent: Box::new([u32::MAX; RECENT]),
            run: None,
            vhost: u32::MAX,
            counted: false,
            agents: TopCounter::new(4 * TOP),
            not_found: TopCounter::new(4 * TOP),
            methods: ShortKeys::new(TOP),
            protocols: ShortKeys::new(TOP),
            vhosts: TopCounter::new(4 * TOP),
        }
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        Tally::default()
    }

    /// The requests over time of every source `keep` accepts, by source.
    pub fn series_of(&self, keep: impl Fn(IpAddr) -> bool) -> Vec<(IpAddr, Vec<(i64, u64)>)> {
        // The run's source has its tally from the run's start; `points_of` adds the run.
        let sources = self.source_tallies.iter().map(|(a, _)| *a);
        self.series_of_each(sources.filter(|a| keep(*a)))
    }

    /// The requests over time of each source of `sources` that sent any with a time, by
    /// source.
    pub fn series_of_each(
        &self,
        sources: impl Iterator<Item = IpAddr>,
    ) -> Vec<(IpAddr, Vec<(i64, u64)>)> {
        let mut out: Vec<(IpAddr, Vec<(i64, u64)>)> = sources
            .filter_map(|a| {
                let points = self.points_of(a);
                (!points.is_empty()).then_some((a, points))
            })
            .collect();
        out.sort_by_key(|(a, _)| *a);
        out.dedup_by_key(|(a, _)| *a);
        out
    }

    /// The requests over time of `a`, with those of the run when it is `a`'s.
    fn points_of(&self, a: IpAddr) -> Vec<(i64, u64)> {
        let stored = self.tally_of(a).map(|s| &s.series);
        match self.run {
            Some(run) if run.src == a && run.in_minute > 0 => {
                let mut series = stored.cloned().unwrap_or_default();
                series.add(run.minute, run.in_minute);
                series.points()
            }
            _ => stored.map_or_else(Vec::new, Series::points),
        }
    }

    /// The tally of `a`, when it sent any request.
    fn tally_of(&self, a: IpAddr) -> Option<&SourceTally> {
        let at = *self.sources.get(&a)?;
        self.source_tallies.get(at as usize).map(|(_, s)| s)
    }

    /// Where the tally of `src` is in `source_tallies`, made with the user agent hint
    /// `agent` when it is new.
    #[inline]
    fn tally_index(&mut self, src: IpAddr, agent: u32) -> usize {
        let slot = recent_slot(src);
        let hint = self.recent[slot] as usize;
        if self
            .source_tallies
            .get(hint)
            .is_some_and(|(a, _)| *a == src)
        {
            return hint;
        }
        let next = self.source_tallies.len() as u32;
        let at = *self.sources.entry(src).or_insert(next) as usize;
        if at == self.source_tallies.len() {
            let tally = SourceTally {
                agent,
                ..SourceTally::default()
            };
            self.source_tallies.push((src, tally));
        }
        self.recent[slot] = at as u32;
        at
    }

    /// Ends the run, if any, and starts one of `src`: out of line, as one line in five
    /// starts a run.
    #[inline(never)]
    fn start_run(&mut self, src: IpAddr) {
        let last = self.run;
        self.end_run();
        let at = match last {
            Some(run) if run.src == src => run.at as usize,
            // A new source's first guess is the last source's agent: a few are common.
            _ => self.tally_index(src, last.map_or(u32::MAX, |run| run.agent)),
        };
        self.run = Some(Run {
            src,
            at: at as u32,
            agent: self.source_tallies[at].1.agent,
            requests: 0,
            minute: 0,
            in_minute: 0,
        });
    }

    /// Moves the run's requests to its source's entry.
    fn end_run(&mut self) {
        if let Some(run) = self.run.take() {
            let s = &mut self.source_tallies[run.at as usize].1;
            s.agent = run.agent;
            s.requests += run.requests;
            if run.in_minute > 0 {
                s.series.add(run.minute, run.in_minute);
            }
        }
    }

    /// Every request counted: those drawn on the timeline and those without a time.
    pub fn requests(&self) -> u64 {
        self.timeline.requests() + self.untimed.weight()
    }
}

impl Tally {
    /// Counts what every record adds besides its source and user agent.
    #[inline(always)]
    fn count(&mut self, rec: &Record<'_>, minute: Option<u32>) {
        let class = class_of(rec.status);
        match minute {
            Some(minute) => self.timeline.add(minute, class),
            None => self.untimed[class] += 1,
        }
        let path_404 = if rec.status == Some(404) {
            rec.path()
        } else {
            None
        };
        if let Some(path) = path_404 {
            self.count_not_found(path);
        }
        if let Some(m) = rec.method {
            self.methods.add(m, 1);
        }
        if let Some(p) = rec.protocol {
            self.protocols.add(p, 1);
        }
        if let Some(v) = rec.vhost {
            self.count_vhost(v, class, minute, path_404);
        }
    }

    /// Counts a 404 answer's path; out of line, as the virtual host's counting: most
    /// lines need neither, and the line's counting then holds fewer registers.
    #[inline(never)]
    fn count_not_found(&mut self, path: &[u8]) {
        self.not_found.add(path, 1);
    }

    /// Counts a request of virtual host `v` (see [`Tally::count_not_found`]). The host
    /// found by its hint is updated in place: a call of the update through
    /// [`TopCounter::add_with_at`] cost as much as the update.
    #[inline(never)]
    fn count_vhost(
        &mut self,
        v: &[u8],
        class: usize,
        minute: Option<u32>,
        path_404: Option<&[u8]>,
    ) {
        let key = &v[..v.len().min(KEY_MAX)];
        let hinted = self.vhost as usize;
        let at = match self.vhosts.entries.get(hinted) {
            Some((k, _)) if **k == *key => hinted,
            _ => self.vhosts.add_with(key, |_| {}) as usize,
        };
        self.vhost = at as u32;
        let h = &mut self.vhosts.entries[at].1;
        h.classes[class] += 1;
        if let Some(minute) = minute {
            h.series.add(minute, 1);
        }
        if let Some(path) = path_404 {
            h.not_found.add(path, 1);
        }
    }
}

impl Visitor for Tally {
    #[inline(always)]
    fn record_at(&mut self, at: crate::scan::At, rec: &Record<'_>) {
        if !std::mem::take(&mut self.counted) {
            self.record(at.order(), rec);
        }
    }

    #[inline]
    fn record(&mut self, _order: u64, rec: &Record<'_>) {
        if std::mem::take(&mut self.counted) {
            return;
        }
        if let Some(ua) = rec.user_agent {
            self.agents.add(ua, 1);
        }
        self.count(rec, rec.time.map(minute_of));
    }

    fn counts_sources(&self) -> bool {
        true
    }

    #[inline]
    fn count_source(&mut self, src: IpAddr, rec: &Record<'_>) {
        let minute = rec.time.map(minute_of);
        let same_run = self.run.is_some_and(|run| {
            run.src == src && minute.is_none_or(|m| run.in_minute == 0 || m == run.minute)
        });
        if !same_run {
            self.start_run(src);
        }
        if let Some(run) = &mut self.run {
            run.requests += 1;
            if let Some(m) = minute {
                run.minute = m;
                run.in_minute = run.in_minute.saturating_add(1);
            }
            if let Some(ua) = rec.user_agent {
                run.agent = self.agents.add_at(ua, 1, run.agent);
            }
        }
        self.count(rec, minute);
        self.counted = true;
    }

    fn add_source_counts(&self, counts: &mut SourceCounts) {
        // The run's source is among them (its tally is made when the run starts).
        counts.reserve(self.source_tallies.len());
        for (a, s) in &self.source_tallies {
            *counts.entry(*a).or_insert(0) += s.requests;
        }
        if let Some(run) = self.run {
            *counts.entry(run.src).or_insert(0) += run.requests;
        }
    }

    fn merge(&mut self, mut other: Tally) {
        self.end_run();
        other.end_run();
        self.timeline.merge(other.timeline);
        self.untimed.add(&other.untimed);
        if self.source_tallies.len() < other.source_tallies.len() {
            std::mem::swap(&mut self.sources, &mut other.sources);
            std::mem::swap(&mut self.source_tallies, &mut other.source_tallies);
        }
        for (a, t) in other.source_tallies {
            match self.sources.entry(a) {
                Entry::Vacant(e) => {
                    e.insert(self.source_tallies.len() as u32);
                    self.source_tallies.push((a, t));
                }
                Entry::Occupied(e) => {
                    let s = &mut self.source_tallies[*e.get() as usize].1;
                    s.requests += t.requests;
                    s.series.merge(t.series);
                }
            }
        }
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
        let (first, second) = (*shown[0].1, *shown[1].1);
        assert!(first <= 100_000 && first + top.short_by() >= 100_000);
        assert!(second <= 50_000 && second + top.short_by() >= 50_000);
        assert!(top.short_by() <= 1, "one-off keys are dropped at count 1");
        assert!(top.dropped() > 900_000);
    }

    #[test]
    fn top_lists_are_exact_until_they_drop_a_key() {
        let mut a = TopCounter::<u64>::new(2);
        for k in [&b"a"[..], b"b", b"a", b"c", b"a", b"b"] {
            a.add(k, 1);
        }
        assert_eq!(a.top(2), vec![(&b"a"[..], &3), (&b"b"[..], &2)]);
        assert_eq!(a.short_by(), 0);
        let mut b = TopCounter::<u64>::new(2);
        b.add(b"c", 5);
        a.merge(b);
        assert_eq!(a.top(1), vec![(&b"c"[..], &6)]);
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
    fn short_keys_count_like_a_map() {
        use std::collections::BTreeMap;
        let mut keys: Vec<Vec<u8>> = vec![
            b"GET".to_vec(),
            b"POST".to_vec(),
            b"HTTP/1.1".to_vec(),
            b"HTTP/2".to_vec(),
            b"A".to_vec(),
            b"A\0".to_vec(),
            b"\0".to_vec(),
            b"\0\0\0\0\0\0\0\0".to_vec(),
            b"1234567\xf0".to_vec(),
            b"1234567".to_vec(),
            b"PROPFIND".to_vec(),
            b"VERYLONGMETHOD".to_vec(),
            Vec::new(),
        ];
        // More distinct short keys than the array holds.
        keys.extend((0..20u8).map(|i| vec![b'X', i]));
        let mut counts = ShortKeys::new(TOP);
        let mut want: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for round in 0..3u64 {
            for (i, k) in keys.iter().enumerate() {
                let n = 1 + (i as u64 + round) % 4;
                counts.add(k, n);
                *want.entry(k.clone()).or_default() += n;
            }
        }
        // Split in two workers, merged: the same counts.
        let mut other = ShortKeys::new(TOP);
        for k in keys.iter().rev() {
            other.add(k, 1);
            *want.entry(k.clone()).or_default() += 1;
        }
        counts.merge(other);
        let got: BTreeMap<Vec<u8>, u64> = counts
            .top(usize::MAX)
            .into_iter()
            .map(|(k, n)| (k.to_vec(), n))
            .collect();
        assert_eq!(got, want);
        assert_eq!(counts.short_by(), 0);
        assert_eq!(counts.top(1).len(), 1);
    }

    #[test]
    fn packed_keys_differ_when_the_keys_do() {
        let keys: [&[u8]; 8] = [
            b"A",
            b"A\0",
            b"\0A",
            b"AB",
            b"ABC",
            b"ABCD",
            b"ABCD\0\0\0",
            b"ABCD\0\0\0\0",
        ];
        let packed: Vec<Option<u64>> = keys.iter().map(|k| pack(k)).collect();
        for (i, a) in packed.iter().enumerate() {
            assert!(a.is_some(), "{:?}", keys[i]);
            for b in &packed[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(pack(b""), None);
        assert_eq!(pack(b"123456789"), None);
        assert_eq!(
            pack(b"1234567\x80"),
            None,
            "an 8-byte key with a high last byte"
        );
    }

    /// A line's source, time and user agent.
    type Line = (IpAddr, Option<i64>, Option<&'static [u8]>);

    /// Lines from a few sources, in runs and interleaved, some without a time or an agent.
    fn lines() -> Vec<Line> {
        let agents: [Option<&'static [u8]>; 3] =
            [Some(b"curl/8"), Some(b"Mozilla/5.0 (X11)"), None];
        let mut out = Vec::new();
        for i in 0..3000i64 {
            let src = IpAddr::from([192, 0, 2, (i / 7 % 5 + i % 3 * (i % 11 / 10)) as u8]);
            let time = (i % 13 != 0).then_some(1_800_000_000 + i * 5 - (i % 5) * 400);
            out.push((src, time, agents[(i / 5 % 3) as usize]));
        }
        out
    }

    fn tally_of(lines: &[Line]) -> Tally {
        let mut t = Tally::new();
        for &(src, time, user_agent) in lines {
            let rec = Record {
                client: Some(src),
                time,
                user_agent,
                status: Some(200),
                ..Record::default()
            };
            t.count_source(src, &rec);
            t.record(0, &rec);
        }
        t
    }

    #[test]
    fn sources_and_their_series_are_counted_like_a_map() {
        use std::collections::BTreeMap;
        let lines = lines();
        let mut requests: BTreeMap<IpAddr, u64> = BTreeMap::new();
        let mut minutes: BTreeMap<IpAddr, BTreeMap<i64, u64>> = BTreeMap::new();
        let mut agents: BTreeMap<&[u8], u64> = BTreeMap::new();
        for &(src, time, ua) in &lines {
            *requests.entry(src).or_default() += 1;
            if let Some(t) = time {
                *minutes
                    .entry(src)
                    .or_default()
                    .entry(t / 60 * 60)
                    .or_default() += 1;
            }
            if let Some(ua) = ua {
                *agents.entry(ua).or_default() += 1;
            }
        }
        let whole = tally_of(&lines);
        let (a, b) = lines.split_at(1234);
        let mut halves = tally_of(a);
        halves.merge(tally_of(b));
        for t in [whole, halves] {
            let mut counts = SourceCounts::default();
            t.add_source_counts(&mut counts);
            let got: BTreeMap<IpAddr, u64> = counts.into_iter().collect();
            assert_eq!(got, requests);
            let series: BTreeMap<IpAddr, BTreeMap<i64, u64>> = t
                .series_of(|_| true)
                .into_iter()
                .map(|(a, p)| (a, p.into_iter().collect()))
                .collect();
            assert_eq!(series, minutes);
            let some: Vec<IpAddr> = minutes.keys().copied().take(2).collect();
            assert_eq!(t.series_of_each(some.iter().copied()).len(), 2);
            let got: BTreeMap<&[u8], u64> =
                t.agents.top(10).into_iter().map(|(k, n)| (k, *n)).collect();
            assert_eq!(got, agents);
            assert_eq!(t.requests(), lines.len() as u64);
        }
    }

    #[test]
    fn a_stale_hint_counts_the_right_key() {
        let mut top = TopCounter::<u64>::new(10);
        let a = top.add_at(b"alpha", 1, u32::MAX);
        let b = top.add_at(b"beta", 1, a);
        assert_ne!(a, b);
        assert_eq!(top.add_at(b"alpha", 2, b), a, "a wrong hint finds the key");
        assert_eq!(top.add_at(b"beta", 1, 999), b);
        assert_eq!(top.top(2), vec![(&b"alpha"[..], &3), (&b"beta"[..], &2)]);
    }

    #[test]
    fn a_flood_of_hosts_stays_in_bounds() {
        let mut t = Tally::new();
        for i in 0..20_000u32 {
            let host = format!("h{i}.example");
            let rec = Record {
                vhost: Some(if i % 4 == 0 {
                    b"shop.example"
                } else {
                    host.as_bytes()
                }),
                time: Some(1_800_000_000 + i64::from(i)),
                target: Some(b"/missing"),
                status: Some(404),
                ..Record::default()
            };
            t.record(0, &rec);
            assert!(t.vhosts.held() <= 8 * TOP);
        }
        let top = t.vhosts.top(1);
        assert_eq!(top[0].0, b"shop.example");
        assert_eq!(top[0].1.classes[4], 5000);
        assert_eq!(top[0].1.not_found.top(1), vec![(&b"/missing"[..], &5000)]);
        assert_eq!(top[0].1.points().iter().map(|p| p.1).sum::<u64>(), 5000);
        assert_eq!(t.vhosts.total(), 20_000);
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

//! The detection engine: per-worker [`Collector`]s keep compact events for the lines that
//! match a rule, collectors merge in any order, and [`Collector::finish`] replays each
//! source's events in log-time order through the rules' buckets to produce [`Flagged`]
//! sources. Rule matching is in `matcher`, bucket arithmetic in `bucket`.
//!
//! Results do not depend on how lines were split into shards nor on merge order: events are
//! replayed sorted by (time, line ordinal), distinct-value hashes travel with their events,
//! and samples are chosen by the same (time, ordinal) ranking.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::allowlist::Allowlist;
use super::bucket::{Bucket, Offer};
use super::matcher::{CompiledRules, Scratch};
use super::rule::{Field, Grouping};
use crate::format::Record;

/// How many sample lines a flagged source keeps.
pub const SAMPLES: usize = 3;

/// One source that at least one rule flagged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flagged {
    /// The address (/32, /128) or the group it was counted as (an IPv6 /64 by default).
    pub source: IpNet,
    /// Names of the rules that flagged it, sorted.
    pub rules: Vec<String>,
    /// Unix seconds of the first and last event of the flagging rules.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Events that matched a flagging rule.
    pub events: u64,
    /// How many times the flagging rules overflowed (blackholes keep this low).
    pub overflows: u64,
    /// Up to [`SAMPLES`] lines that matched a flagging rule, earliest first.
    pub samples: Vec<Vec<u8>>,
    /// The virtual host, when a flagging rule groups per virtual host.
    pub vhost: Option<String>,
}

/// One matching line, as little as the replay needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    time_ms: i64,
    order: u64,
    rules: u64,
}

const NO_VHOST: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    net: IpNet,
    vhost: u32,
    grouping: u8,
}

#[derive(Clone, Debug)]
struct Sample {
    time_ms: i64,
    order: u64,
    rules: u64,
    line: Box<[u8]>,
}

#[derive(Default)]
struct Events {
    events: Vec<Event>,
    /// Distinct-value hashes, in event order: for each event, one per field that a matched
    /// distinct rule counts, fields in `Field::ALL` order. Only such events add entries.
    hashes: Vec<u64>,
    /// For each rule: up to SAMPLES earliest lines; see `keep_sample`.
    samples: Vec<Sample>,
    /// Rules that already have SAMPLES samples, and the latest (time, order) kept: a later
    /// line for only those rules is rejected without looking further.
    full: u64,
    latest: (i64, u64),
}

/// A per-worker accumulator. Not shared: each shard owns one, and they are merged at the end.
pub struct Collector {
    rules: Arc<CompiledRules>,
    keys: HashMap<Key, Events>,
    vhosts: HashMap<Box<[u8]>, u32>,
    vhost_names: Vec<Box<[u8]>>,
    scratch: Scratch,
    /// Lines seen with a source and a time, and lines skipped for lacking one.
    seen: u64,
    skipped: u64,
}

impl Collector {
    pub fn new(rules: Arc<CompiledRules>) -> Collector {
        Collector {
            rules,
            keys: HashMap::new(),
            vhosts: HashMap::new(),
            vhost_names: Vec::new(),
            scratch: Scratch::default(),
            seen: 0,
            skipped: 0,
        }
    }

    /// Lines observed with a source address and a time.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Lines ignored because they had no client address or no time.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Feeds one record. `order` must be unique per line over the whole run and increase
    /// with position in the input (file index << 40 | line number): it breaks time ties.
    pub fn observe(&mut self, rec: &Record<'_>, order: u64) {
        let (Some(source), Some(time)) = (rec.source(), rec.time) else {
            self.skipped += 1;
            return;
        };
        self.seen += 1;
        let time_ms = time.saturating_mul(1000);
        let matched = self.rules.evaluate(rec, &mut self.scratch);
        if matched == 0 {
            return;
        }
        let rules = Arc::clone(&self.rules);
        for (gi, &(grouping, gmask)) in rules.groupings().iter().enumerate() {
            let mask = matched & gmask;
            if mask == 0 {
                continue;
            }
            let vhost = if grouping.per_vhost {
                rec.vhost.map_or(NO_VHOST, |v| self.vhost_id(v))
            } else {
                NO_VHOST
            };
            let key = Key {
                net: group_net(source, grouping),
                vhost,
                grouping: gi as u8,
            };
            let slot = self.keys.entry(key).or_default();
            slot.events.push(Event {
                time_ms,
                order,
                rules: mask,
            });
            for field in Field::ALL {
                if rules.distinct_rules(field) & mask != 0 {
                    let value = match field {
                        Field::Path => rec.path(),
                        Field::Query => rec.query(),
                        Field::Target => rec.target,
                        Field::UserAgent => rec.user_agent,
                    };
                    slot.hashes.push(rules.hash_value(value.unwrap_or(b"")));
                }
            }
            keep_sample(slot, time_ms, order, mask, rec.line);
        }
    }

    fn vhost_id(&mut self, name: &[u8]) -> u32 {
        if let Some(&id) = self.vhosts.get(name) {
            return id;
        }
        let id = self.vhost_names.len() as u32;
        self.vhost_names.push(name.into());
        self.vhosts.insert(name.into(), id);
        id
    }

    /// Adds `other`'s events to this collector. Merge order does not change the results.
    pub fn merge(&mut self, other: Collector) {
        self.seen += other.seen;
        self.skipped += other.skipped;
        let Collector {
            keys, vhost_names, ..
        } = other;
        for (mut key, events) in keys {
            if key.vhost != NO_VHOST {
                let name = vhost_names
                    .get(key.vhost as usize)
                    .cloned()
                    .unwrap_or_default();
                key.vhost = self.vhost_id(&name);
            }
            match self.keys.get_mut(&key) {
                None => {
                    self.keys.insert(key, events);
                }
                Some(slot) => {
                    slot.events.extend_from_slice(&events.events);
                    slot.hashes.extend_from_slice(&events.hashes);
                    for s in events.samples {
                        keep_sample(slot, s.time_ms, s.order, s.rules, &s.line);
                    }
                }
            }
        }
    }

    /// Replays every source's events through the buckets and returns the flagged sources,
    /// sorted by source then virtual host. Sources overlapping `allowlist` are left out.
    pub fn finish(&self, allowlist: &Allowlist) -> Vec<Flagged> {
        let mut out: Vec<(Flagged, Vec<Sample>)> = Vec::new();
        for (key, events) in &self.keys {
            if allowlist.overlaps(key.net) {
                continue;
            }
            if let Some(found) = self.replay(key, events) {
                out.push(found);
            }
        }
        // Rules with different groupings can flag the same net and vhost: fold those.
        out.sort_by(|a, b| (a.0.source, &a.0.vhost).cmp(&(b.0.source, &b.0.vhost)));
        let mut folded: Vec<(Flagged, Vec<Sample>)> = Vec::with_capacity(out.len());
        for (f, samples) in out {
            match folded.last_mut() {
                Some((last, last_samples)) if last.source == f.source && last.vhost == f.vhost => {
                    last.rules.extend(f.rules);
                    last.rules.sort();
                    last.rules.dedup();
                    last.first_seen = last.first_seen.min(f.first_seen);
                    last.last_seen = last.last_seen.max(f.last_seen);
                    last.events += f.events;
                    last.overflows += f.overflows;
                    last_samples.extend(samples);
                }
                _ => folded.push((f, samples)),
            }
        }
        folded
            .into_iter()
            .map(|(mut f, mut samples)| {
                samples.sort_by_key(|s| (s.time_ms, s.order));
                samples.dedup_by_key(|s| s.order);
                f.samples = samples
                    .into_iter()
                    .take(SAMPLES)
                    .map(|s| s.line.into_vec())
                    .collect();
                f
            })
            .collect()
    }

    fn replay(&self, key: &Key, events: &Events) -> Option<(Flagged, Vec<Sample>)> {
        let rules = self.rules.rules();
        // Pair each event with where its hashes start, then sort by (time, order).
        let mut order: Vec<(i64, u64, u32, u32)> = Vec::with_capacity(events.events.len());
        let mut h = 0u32;
        for (i, e) in events.events.iter().enumerate() {
            order.push((e.time_ms, e.order, i as u32, h));
            h += Field::ALL
                .iter()
                .filter(|&&f| self.rules.distinct_rules(f) & e.rules != 0)
                .count() as u32;
        }
        order.sort_unstable();
        let mut buckets: Vec<Bucket> = vec![Bucket::default(); rules.len()];
        let mut seen: Vec<HashSet<u64>> = vec![HashSet::new(); rules.len()];
        let mut overflows = vec![0u64; rules.len()];
        let mut fired = 0u64;
        for &(time_ms, _, i, hstart) in &order {
            let e = events.events[i as usize];
            let mut m = e.rules;
            while m != 0 {
                let ri = m.trailing_zeros() as usize;
                m &= m - 1;
                let rule = &rules[ri];
                if let Some(field) = rule.distinct {
                    if buckets[ri].is_empty(time_ms) {
                        seen[ri].clear();
                    }
                    let slot = Field::ALL
                        .iter()
                        .take_while(|&&f| f != field)
                        .filter(|&&f| self.rules.distinct_rules(f) & e.rules != 0)
                        .count() as u32;
                    let hash = events
                        .hashes
                        .get((hstart + slot) as usize)
                        .copied()
                        .unwrap_or(0);
                    if !seen[ri].insert(hash) {
                        continue;
                    }
                }
                match buckets[ri].offer(time_ms, rule.limits) {
                    Offer::Overflow => {
                        fired |= 1u64 << ri;
                        overflows[ri] += 1;
                        seen[ri].clear();
                    }
                    Offer::Counted | Offer::Blackholed => {}
                }
            }
        }
        if fired == 0 {
            return None;
        }
        let mut first = i64::MAX;
        let mut last = i64::MIN;
        let mut count = 0u64;
        for e in &events.events {
            if e.rules & fired != 0 {
                first = first.min(e.time_ms);
                last = last.max(e.time_ms);
                count += 1;
            }
        }
        let mut names: Vec<String> = (0..rules.len())
            .filter(|ri| fired >> ri & 1 == 1)
            .map(|ri| rules[ri].name.clone())
            .collect();
        names.sort();
        let samples: Vec<Sample> = events
            .samples
            .iter()
            .filter(|s| s.rules & fired != 0)
            .cloned()
            .collect();
        let vhost = (key.vhost != NO_VHOST)
            .then(|| self.vhost_names.get(key.vhost as usize))
            .flatten()
            .map(|v| String::from_utf8_lossy(v).into_owned());
        Some((
            Flagged {
                source: key.net,
                rules: names,
                first_seen: first.div_euclid(1000),
                last_seen: last.div_euclid(1000),
                events: count,
                overflows: overflows.iter().sum(),
                samples: Vec::new(),
                vhost,
            },
            samples,
        ))
    }
}

/// The network a source is counted as under `grouping`.
fn group_net(source: IpAddr, grouping: Grouping) -> IpNet {
    let prefix = match source {
        IpAddr::V4(_) => grouping.v4_prefix.min(32),
        IpAddr::V6(_) => grouping.v6_prefix.min(128),
    };
    // The prefix is clamped to the family's width, so this cannot fail.
    IpNet::new(source, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(source))
}

/// Keeps `line` if it is among the SAMPLES earliest (time, order) lines of any rule in
/// `rules`. Logs are mostly in time order, so once every rule of a line has its samples the
/// check is two comparisons and no copy.
fn keep_sample(slot: &mut Events, time_ms: i64, order: u64, rules: u64, line: &[u8]) {
    if rules & !slot.full == 0 && (time_ms, order) >= slot.latest {
        return;
    }
    if slot.samples.iter().any(|s| s.order == order) {
        return;
    }
    slot.samples.push(Sample {
        time_ms,
        order,
        rules,
        line: line.into(),
    });
    slot.samples.sort_by_key(|s| (s.time_ms, s.order));
    // Keep a sample while it is among the first SAMPLES of one of its rules.
    let mut counts = [0u8; 64];
    slot.samples.retain(|s| {
        let mut keep = false;
        let mut m = s.rules;
        while m != 0 {
            let ri = m.trailing_zeros() as usize;
            m &= m - 1;
            if usize::from(counts[ri]) < SAMPLES {
                counts[ri] += 1;
                keep = true;
            }
        }
        keep
    });
    slot.full = counts
        .iter()
        .enumerate()
        .filter(|&(_, &c)| usize::from(c) >= SAMPLES)
        .fold(0u64, |m, (ri, _)| m | 1u64 << ri);
    slot.latest = slot
        .samples
        .last()
        .map_or((i64::MIN, 0), |s| (s.time_ms, s.order));
}

//! The detection engine: per-worker [`Collector`]s keep compact events for the lines that
//! match a rule, collectors merge in any order, and [`Collector::finish`] replays each
//! source's events in log-time order through the rules' buckets to produce [`Flagged`]
//! sources. Rule matching is in `matcher`, bucket arithmetic in `bucket`, the events'
//! encoding in `journal`, the window tally in `busiest`, sample copies in `samples`.
//!
//! Results do not depend on how lines were split into shards nor on merge order: events are
//! replayed sorted by (time, line ordinal), distinct-value hashes travel with their events,
//! and a flagged source's samples are its earliest lines, by the same (time, ordinal)
//! ranking, among those that matched a flagging rule.
//!
//! Memory and cache misses: every request is an event of some rule (`http-flood` counts
//! them all), so a collector writes its events as a few bytes each to one `Journal` per
//! grouping, in the order it sees them, with the source's key inline when it changes: a
//! line touches no per-source state at all. [`Collector::finish_reading`] looks the keys
//! up and counts each source's events from the journals, then gathers and replays only the
//! sources some rule could flag (more events than its capacity, and for rules of a large
//! capacity, more than half of it in one window: see `Busiest`), at most `REPLAY_BATCH`
//! events (32 bytes each) at a time. Journals can write their events out to an unlinked
//! temporary file ([`Collector::spill_events_to`]) whenever they hold a few MiB, and are
//! read back a segment at a time, so a long input does not grow memory by the ~9 bytes an
//! event takes; what stays is per source. Sample lines are not copied for lines the
//! caller can read again ([`Collector::observe_readable`]): they are read back through a
//! [`ReadBack`] for the few flagged sources, in input order. Lines that cannot be read
//! again (standard input) are copied while they are among their source's earliest lines
//! of a rule.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::allowlist::Allowlist;
use super::bucket::{Bucket, Limits, Offer, SeenSet};
use super::busiest::Busiest;
use super::journal::{Event, JOURNAL_ROOM, Journal, Key, KeyHasher, MAX_EVENT, NO_VHOST};
use super::matcher::{CompiledRules, Scratch};
use super::rule::{Field, rule_bits};
use super::samples::{Chosen, Copies, copy_sample, keep_sample, sample_line};
pub use super::samples::{NoReadBack, ReadBack, SAMPLES, SampleLine};
use super::spill::{SpillTo, Spilled};
use crate::format::Record;

/// One episode of a source that at least one rule flagged: its flagging rules' events with
/// no pause longer than [`EPISODE_GAP_MS`], in which at least one bucket overflowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flagged {
    /// The address (/32, /128) or the group it was counted as (an IPv6 /64 by default).
    pub source: IpNet,
    /// Names of the rules that flagged it, sorted.
    pub rules: Vec<String>,
    /// Per flagging rule, sorted by name: the events that matched it.
    pub rule_events: Vec<(String, u64)>,
    /// Unix seconds of the first event of the flagging rules.
    pub first_seen: i64,
    /// Unix seconds of their last event.
    pub last_seen: i64,
    /// Lines that matched a flagging rule, each counted once.
    pub events: u64,
    /// How many times the flagging rules overflowed (blackholes keep this low).
    pub overflows: u64,
    /// Up to [`SAMPLES`] lines that matched a flagging rule, earliest first. A line that was
    /// to be read back and no longer can (the file changed) is left out.
    pub samples: Vec<SampleLine>,
    /// Events per virtual host, most first (empty when the format has no host).
    pub sites: Vec<(String, u64)>,
    /// Events per input file (its index in the run), most first.
    pub files: Vec<(usize, u64)>,
    /// Per rule, its first overflow in the episode and the lines that filled its bucket.
    pub explain: Vec<Overflow>,
}

impl Flagged {
    /// The site with the most events.
    pub fn top_site(&self) -> Option<&str> {
        self.sites.first().map(|(s, _)| s.as_str())
    }
}

/// A source that came near being flagged: a rule's bucket held more than half its
/// capacity, in an episode in which none overflowed. Fleet mode reports these, so that an
/// attack spread over servers that each see too little is still seen (`min_hosts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMiss {
    /// The address (/32, /128) or the group it was counted as, as for [`Flagged`].
    pub source: IpNet,
    /// Names of the rules whose bucket passed half its capacity, sorted.
    pub rules: Vec<String>,
    /// Unix seconds of the first event of those rules in the episode.
    pub first_seen: i64,
    /// Unix seconds of their last event.
    pub last_seen: i64,
    /// Lines that matched those rules, each counted once.
    pub events: u64,
}

/// The bucket that overflows once a rule's own bucket holds more than half its capacity:
/// half the capacity, rounded down. A trigger (capacity 0) has none: its first event flags.
pub fn near_limits(limits: Limits) -> Option<Limits> {
    (limits.capacity > 0).then_some(Limits {
        capacity: limits.capacity / 2,
        ..limits
    })
}

/// Why a rule flagged an episode: its bucket, when it first overflowed, how often it did,
/// and the latest lines (up to [`FILL_LINES`]) that filled it then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// Name of the rule.
    pub rule: String,
    /// The rule's capacity: events its bucket holds before the next one overflows.
    pub capacity: u32,
    /// Milliseconds of log time in which the bucket loses one event.
    pub leak_ms: i64,
    /// Unix seconds.
    pub at: i64,
    /// How many times the rule overflowed in the episode.
    pub times: u64,
    /// The latest lines, up to [`FILL_LINES`], offered to the bucket up to its first
    /// overflow, earliest first.
    pub lines: Vec<SampleLine>,
}

/// At most this many events are gathered for the replay at a time (32 bytes each, 16 MiB),
/// unless one source has more. Each batch decodes every journal again: with 2^18, the
/// 330k events replayed for the generated million-line log took two batches.
const REPLAY_BATCH: usize = 1 << 19;

/// A decoded event during the replay; `hash_start` is where its hashes start.
#[derive(Clone, Copy, Debug, Default)]
struct Replayed {
    time_ms: i64,
    order: u64,
    rules: u64,
    hash_start: u32,
    site: u32,
}

/// A per-worker accumulator. Not shared: each shard owns one, and they are merged at the end.
pub struct Collector {
    rules: Arc<CompiledRules>,
    /// Per grouping index: the last source seen, for groupings that do not split by virtual
    /// host. Logs cluster by client (most lines have the previous line's source), so most
    /// lines skip grouping the address.
    last: Vec<Option<IpAddr>>,
    /// Per grouping index: this collector's events.
    journals: Vec<Journal>,
    /// Journals of the collectors merged into this one: grouping index, journal, and their
    /// virtual host ids mapped to this one's.
    merged: Vec<(u8, Journal, Vec<u32>)>,
    /// Copies of lines that cannot be read back, per source that has such lines.
    copies: HashMap<Key, Box<Copies>, KeyHasher>,
    /// The bytes of all copied sample lines, appended: one buffer instead of an allocation
    /// per sample. Samples that are later dropped leave their bytes behind; few are.
    sample_bytes: Vec<u8>,
    vhosts: HashMap<Box<[u8]>, u32, KeyHasher>,
    vhost_names: Vec<Box<[u8]>>,
    /// The site of the last line that had one (its id; `NO_VHOST`: none yet).
    last_site: u32,
    scratch: Scratch,
    /// Lines seen with a source and a time, and lines skipped for lacking one.
    seen: u64,
    skipped: u64,
    /// How many events `finish` gathers at a time; see [`REPLAY_BATCH`].
    batch: usize,
    /// Per file index: lines before this byte offset were counted by an earlier scan. See
    /// [`Collector::set_counted`].
    counted: Vec<u64>,
    /// Where journals write their events out once they are large; see
    /// [`Collector::spill_events_to`].
    spill_to: Option<Arc<SpillTo>>,
}

/// The sources of a finish: each key's slot, and the keys by slot.
#[derive(Default)]
struct Slots {
    ids: HashMap<Key, u32, KeyHasher>,
    keys: Vec<Key>,
}

/// What the first pass of a finish counts (see [`Collector::count_events`]).
struct Census {
    slots: Slots,
    /// The slot of each key change, in the order the journals name them: later passes take
    /// the slots from here instead of looking the keys up again, unless events were written
    /// out (`keep_changes` false): then this, 4 bytes per key change, is not kept in memory
    /// either.
    changes: Vec<u32>,
    keep_changes: bool,
    /// Per slot: its events and their hashes.
    tally: Vec<(u64, u64)>,
}

/// Lines fetched for an episode, with the samples they were chosen as.
type Fetched = Vec<(Chosen, SampleLine)>;

impl Collector {
    /// An empty collector for `rules`; each worker gets its own and shares the `Arc`.
    pub fn new(rules: Arc<CompiledRules>) -> Collector {
        Collector {
            rules,
            last: Vec::new(),
            journals: Vec::new(),
            merged: Vec::new(),
            copies: HashMap::default(),
            sample_bytes: Vec::new(),
            vhosts: HashMap::default(),
            vhost_names: Vec::new(),
            last_site: NO_VHOST,
            scratch: Scratch::default(),
            seen: 0,
            skipped: 0,
            batch: REPLAY_BATCH,
            counted: Vec::new(),
            spill_to: None,
        }
    }

    /// Makes this collector's journals write their events to an unlinked file in
    /// `to.dir` whenever they hold `to.at` bytes, so their memory stays bounded however
    /// long the input (the events of a million lines take about 9 MB). Set before the first
    /// record. A journal that cannot write keeps its events in memory and says why in
    /// [`Collector::spill_warnings`].
    pub fn spill_events_to(&mut self, to: SpillTo) {
        self.spill_to = Some(Arc::new(to));
    }

    /// Why some events could not be written out, each message once.
    pub fn spill_warnings(&self) -> Vec<&str> {
        let mut warnings: Vec<&str> = self
            .all_journals()
            .filter_map(|(_, j, _)| j.spill_error.as_deref())
            .collect();
        warnings.sort_unstable();
        warnings.dedup();
        warnings
    }

    /// Bytes of events written out to temporary files.
    pub fn spilled_bytes(&self) -> u64 {
        self.all_journals()
            .filter_map(|(_, j, _)| j.spilled.as_ref())
            .map(Spilled::bytes)
            .sum()
    }

    /// A journal merged in, written out whole when the journals' events in memory would
    /// otherwise pass four times the spill size: each collector stays within the spill
    /// size while it scans, and this bounds what the merged ones keep. A journal kept in
    /// memory gives back the room it no longer needs, which after writing out is most of
    /// its buffer.
    fn settle(&self, mut journal: Journal) -> Journal {
        if let Some(to) = &self.spill_to {
            let in_memory: usize = self.all_journals().map(|(_, j, _)| j.len).sum();
            if in_memory + journal.len > 4 * to.at {
                journal.spill_all();
            }
        }
        // Only a buffer mostly unused is worth the copy.
        if journal.bytes.len() > 2 * journal.len + JOURNAL_ROOM + MAX_EVENT {
            journal.bytes.truncate(journal.len);
            journal.bytes.shrink_to_fit();
        }
        journal
    }

    /// Every journal with its grouping index and, for merged ones, their virtual host ids
    /// mapped to this collector's.
    fn all_journals(&self) -> impl Iterator<Item = (u8, &Journal, Option<&Vec<u32>>)> {
        let own = self
            .journals
            .iter()
            .enumerate()
            .map(|(gi, j)| (gi as u8, j, None));
        let merged = self.merged.iter().map(|(gi, j, map)| (*gi, j, Some(map)));
        own.chain(merged)
    }

    /// Marks the lines an earlier scan counted: in file `i` (the high bits of an order, as
    /// for [`Collector::observe`]), those before byte offset `before[i]` (`u64::MAX`: all).
    /// Their events still fill the buckets, so a burst that spans two scans is seen whole,
    /// but a bucket they overflow flags nothing (the earlier scan reported it, and its
    /// blackhole holds), and they are not counted or sampled again.
    pub fn set_counted(&mut self, before: Vec<u64>) {
        self.counted = before;
    }

    fn counted_before(&self, order: u64) -> bool {
        let (file, offset) = crate::input::split_order(order);
        self.counted
            .get(file)
            .is_some_and(|&before| offset < before)
    }

    /// Lines observed with a source address and a time.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Lines ignored because they had no client address or no time.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Feeds one record, copying its line if it may become a sample. `order` must be unique
    /// per line over the whole run and increase with position in the input (file index <<
    /// 40 | byte offset): it breaks time ties.
    pub fn observe(&mut self, rec: &Record<'_>, order: u64) {
        self.observe_line(rec, order, true);
    }

    /// Feeds one record whose line the [`ReadBack`] given to [`Collector::finish_reading`]
    /// can read again by `order`: the line is never copied.
    pub fn observe_readable(&mut self, rec: &Record<'_>, order: u64) {
        self.observe_line(rec, order, false);
    }

    #[inline]
    fn observe_line(&mut self, rec: &Record<'_>, order: u64, copy: bool) {
        let (Some(source), Some(time)) = (rec.source(), rec.time) else {
            self.skipped += 1;
            return;
        };
        self.seen += 1;
        let matched = self
            .rules
            .veto(rec, self.rules.evaluate(rec, &mut self.scratch));
        if matched == 0 {
            return;
        }
        // Borrow fields apart: cloning the Arc here would cost an atomic per line.
        let Collector {
            rules,
            last,
            journals,
            copies,
            sample_bytes,
            vhosts,
            vhost_names,
            last_site,
            scratch,
            ..
        } = self;
        // A page view is a burst of requests to one site: most lines have the last line's
        // site, found by one compare instead of a hash lookup.
        let site = match rec.vhost {
            None => NO_VHOST,
            Some(v)
                if vhost_names
                    .get(*last_site as usize)
                    .is_some_and(|n| **n == *v) =>
            {
                *last_site
            }
            Some(v) => {
                *last_site = intern(vhosts, vhost_names, v);
                *last_site
            }
        };
        let groupings = rules.groupings();
        if last.len() != groupings.len() {
            last.resize(groupings.len(), None);
            let spill_to = &self.spill_to;
            journals.resize_with(groupings.len(), || Journal::new(spill_to.clone()));
        }
        for (gi, &(grouping, gmask)) in groupings.iter().enumerate() {
            let mask = matched & gmask;
            if mask == 0 {
                continue;
            }
            let key = if last[gi] == Some(source) && !grouping.per_vhost {
                None
            } else {
                let vhost = if grouping.per_vhost { site } else { NO_VHOST };
                last[gi] = Some(source);
                Some((grouping.net_of(source), vhost))
            };
            let mut hashes = [0u64; 4];
            let mut n = 0;
            for field in Field::ALL {
                if rules.distinct_rules(field) & mask != 0 {
                    hashes[n] = rules.value_hash(field, rec, scratch);
                    n += 1;
                }
            }
            let journal = &mut journals[gi];
            journal.push(
                key,
                Event {
                    time,
                    order,
                    rules: mask,
                    site,
                },
                &hashes[..n],
            );
            if copy {
                let (net, vhost) = key
                    .or(journal.last.0)
                    .unwrap_or((IpNet::from(source), NO_VHOST));
                let key = Key {
                    net,
                    vhost,
                    grouping: gi as u8,
                };
                copy_sample(copies, sample_bytes, key, time, order, mask, rec.line);
            }
        }
    }

    fn vhost_id(&mut self, name: &[u8]) -> u32 {
        intern(&mut self.vhosts, &mut self.vhost_names, name)
    }

    /// Adds `other`'s events to this collector. Merge order does not change the results.
    pub fn merge(&mut self, other: Collector) {
        self.seen += other.seen;
        self.skipped += other.skipped;
        let Collector {
            journals,
            merged,
            copies,
            vhost_names,
            sample_bytes,
            ..
        } = other;
        // Their virtual host ids -> ours.
        let map: Vec<u32> = vhost_names.iter().map(|n| self.vhost_id(n)).collect();
        let remap = |id: u32| map.get(id as usize).copied().unwrap_or(NO_VHOST);
        for (gi, journal) in journals.into_iter().enumerate() {
            let journal = self.settle(journal);
            self.merged.push((gi as u8, journal, map.clone()));
        }
        for (gi, journal, their_map) in merged {
            let journal = self.settle(journal);
            self.merged
                .push((gi, journal, their_map.iter().map(|&v| remap(v)).collect()));
        }
        for (mut key, theirs) in copies {
            if key.vhost != NO_VHOST {
                key.vhost = remap(key.vhost);
            }
            let mine = self.copies.entry(key).or_default();
            for s in &theirs.samples {
                let line = sample_line(&sample_bytes, s);
                keep_sample(
                    mine,
                    &mut self.sample_bytes,
                    s.time_ms,
                    s.order,
                    s.rules,
                    line,
                );
            }
        }
    }

    /// Calls `f` with every event of every journal and its slot. `slot_of` gives the slot of
    /// each key as it changes. Fails only when events written out cannot be read back.
    fn for_each_event(
        &self,
        distinct: &[u64; 4],
        mut slot_of: impl FnMut(Key) -> u32,
        mut f: impl FnMut(u32, Event, &[u8]),
    ) -> std::io::Result<()> {
        for (grouping, journal, vhosts) in self.all_journals() {
            let mut slot = u32::MAX;
            journal.for_each(distinct, |key, e, hashes| {
                if let Some((net, mut vhost)) = key {
                    if let (Some(map), true) = (vhosts, vhost != NO_VHOST) {
                        vhost = map.get(vhost as usize).copied().unwrap_or(NO_VHOST);
                    }
                    slot = slot_of(Key {
                        net,
                        vhost,
                        grouping,
                    });
                }
                let mut e = e;
                if let (Some(map), true) = (vhosts, e.site != NO_VHOST) {
                    e.site = map.get(e.site as usize).copied().unwrap_or(NO_VHOST);
                }
                f(slot, e, hashes);
            })?;
        }
        Ok(())
    }

    /// Replays every source's events through the buckets and returns the flagged sources,
    /// sorted by source then virtual host. Sources overlapping `allowlist` are left out.
    /// Only copied sample lines are reported: see [`Collector::finish_reading`]. Fails only
    /// when events written out (see [`Collector::spill_events_to`]) cannot be read back.
    pub fn finish(&self, allowlist: &Allowlist) -> std::io::Result<Vec<Flagged>> {
        self.finish_reading(allowlist, &mut NoReadBack)
    }

    /// [`Collector::finish`], reading the sample lines that were not copied through `lines`.
    ///
    /// In steps: one pass over the journals counts each source's events
    /// (`Collector::count_events`); the sources some rule could flag are the candidates
    /// (`Collector::candidates`); their events are gathered and replayed a batch at a time
    /// (`Collector::replay_candidates`); the episodes of one source that meet are folded;
    /// then the flags' lines are fetched in input order (`Collector::fetch_lines`).
    pub fn finish_reading(
        &self,
        allowlist: &Allowlist,
        lines: &mut dyn ReadBack,
    ) -> std::io::Result<Vec<Flagged>> {
        Ok(self.finish_all(allowlist, lines, false)?.0)
    }

    /// [`Collector::finish_reading`], and the sources that came near being flagged and
    /// were not ([`NearMiss`]): their events are replayed again through buckets of
    /// [`near_limits`], reusing the first pass's count. For fleet mode with `min_hosts` of
    /// 2 or more. Sources overlapping `allowlist` are left out of both.
    pub fn finish_with_near_misses(
        &self,
        allowlist: &Allowlist,
        lines: &mut dyn ReadBack,
    ) -> std::io::Result<(Vec<Flagged>, Vec<NearMiss>)> {
        self.finish_all(allowlist, lines, true)
    }

    /// The flags, and with `near` the near misses; see the two callers.
    fn finish_all(
        &self,
        allowlist: &Allowlist,
        lines: &mut dyn ReadBack,
        near: bool,
    ) -> std::io::Result<(Vec<Flagged>, Vec<NearMiss>)> {
        let rules = self.rules.rules();
        let distinct = Field::ALL.map(|f| self.rules.distinct_rules(f));
        let (census, per_rule, busiest) = self.count_events(&distinct)?;
        let limits: Vec<Limits> = rules.iter().map(|r| r.limits).collect();
        let candidates = self.candidates(&census, &per_rule, &limits, allowlist, |s| {
            busiest.never_full(s)
        });
        let found = self.replay_candidates(&distinct, &census, &candidates, limits)?;
        // Rules with different groupings, and per-site rules on several sites, flag the
        // same source: their episodes that meet are one.
        let folded = fold_episodes(found);
        let (mut samples, mut filled) = self.fetch_lines(&folded, &census.slots, lines);
        let by_time = |v: &mut Vec<(Chosen, SampleLine)>| {
            v.sort_by_key(|(c, _)| (c.time_ms, c.order));
            v.drain(..).map(|(_, l)| l).collect::<Vec<_>>()
        };
        let flagged: Vec<Flagged> = folded
            .into_iter()
            .zip(samples.iter_mut().zip(filled.iter_mut()))
            .map(|(ep, (samples, filled))| {
                let explain = ep
                    .fills
                    .iter()
                    .zip(filled.iter_mut())
                    .map(|(fill, lines)| {
                        let rule = &rules[fill.rule];
                        Overflow {
                            rule: rule.name.clone(),
                            capacity: rule.limits.capacity,
                            leak_ms: rule.limits.leak_ms,
                            at: fill.at_ms.div_euclid(1000),
                            times: fill.times,
                            lines: by_time(lines),
                        }
                    })
                    .collect();
                self.flagged(ep, by_time(samples), explain)
            })
            .collect();
        let near_misses = match near {
            true => self.near_misses(&distinct, &census, &per_rule, allowlist, &flagged)?,
            false => Vec::new(),
        };
        Ok((flagged, near_misses))
    }

    /// The sources that came near being flagged and were not: replays the events again
    /// through buckets of [`near_limits`] and keeps the episodes of sources that are not
    /// in `flagged`.
    fn near_misses(
        &self,
        distinct: &[u64; 4],
        census: &Census,
        per_rule: &[u16],
        allowlist: &Allowlist,
        flagged: &[Flagged],
    ) -> std::io::Result<Vec<NearMiss>> {
        let rules = self.rules.rules();
        let mut triggers = 0u64;
        let limits: Vec<Limits> = rules
            .iter()
            .enumerate()
            .map(|(ri, r)| {
                near_limits(r.limits).unwrap_or_else(|| {
                    triggers |= 1u64 << ri;
                    r.limits
                })
            })
            .collect();
        let candidates = self.candidates(census, per_rule, &limits, allowlist, |_| triggers);
        let found = self.replay_candidates(distinct, census, &candidates, limits)?;
        let is_flagged: std::collections::HashSet<IpNet> =
            flagged.iter().map(|f| f.source).collect();
        Ok(fold_episodes(found)
            .into_iter()
            .filter(|ep| !is_flagged.contains(&ep.source))
            .map(|ep| {
                let names = self.fill_rule_names(&ep);
                let events = match &ep.lines {
                    Some(lines) => lines.len() as u64,
                    None => ep.events,
                };
                NearMiss {
                    source: ep.source,
                    rules: names,
                    first_seen: ep.first_ms.div_euclid(1000),
                    last_seen: ep.last_ms.div_euclid(1000),
                    events,
                }
            })
            .collect())
    }

    /// The first pass of a finish: gives each key a slot, in the order the journals name
    /// them, and counts per slot its events and hashes ([`Census::tally`]) and its events of
    /// each rule (the `Vec<u16>`, one per rule and slot, saturating), with the busiest
    /// windows of the rules [`Busiest`] counts.
    fn count_events(&self, distinct: &[u64; 4]) -> std::io::Result<(Census, Vec<u16>, Busiest)> {
        let rules = self.rules.rules();
        let n = rules.len();
        let mut slots = Slots::default();
        let mut changes: Vec<u32> = Vec::new();
        let keep_changes = self.spilled_bytes() == 0;
        let mut tally: Vec<(u64, u64)> = Vec::new();
        let mut per_rule: Vec<u16> = Vec::new();
        // Consecutive events of one slot mostly share their rule mask: they are counted as
        // a run, and added to the slot's counts when the slot or the mask changes.
        let mut run = Run::default();
        let mut busiest = Busiest::new(rules);
        self.for_each_event(
            distinct,
            |key| {
                let id = slot_id(&mut slots.ids, &mut slots.keys, key);
                if keep_changes {
                    changes.push(id);
                }
                id
            },
            |slot, e, hashes| {
                busiest.count(slot, e);
                if slot == run.slot && e.rules == run.rules {
                    run.count += 1;
                    return;
                }
                add_run(&run, &mut tally, &mut per_rule, n);
                // The hash count is fixed by the rule mask.
                run = Run {
                    slot,
                    rules: e.rules,
                    hashes: hashes.len() as u64 / 8,
                    count: 1,
                };
            },
        )?;
        add_run(&run, &mut tally, &mut per_rule, n);
        let census = Census {
            slots,
            changes,
            keep_changes,
            tally,
        };
        Ok((census, per_rule, busiest))
    }

    /// The slots to replay, each with the rules to replay it for. A bucket overflows only
    /// after more than `capacity` events of its rule, so only the rules with more are
    /// replayed, and only for the sources that have such a rule (and that the window tallies
    /// of `busiest` do not rule out): most sources are ordinary clients that no rule comes
    /// near. Sources overlapping `allowlist` are left out.
    fn candidates(
        &self,
        census: &Census,
        per_rule: &[u16],
        limits: &[Limits],
        allowlist: &Allowlist,
        never_full: impl Fn(u32) -> u64,
    ) -> Vec<(u32, u64)> {
        let n = limits.len();
        (0..census.tally.len() as u32)
            .filter_map(|s| {
                let counts = per_rule.get(s as usize * n..(s as usize + 1) * n)?;
                let live = live_rules(limits, counts) & !never_full(s);
                let net = census.slots.keys[s as usize].net;
                (live != 0 && !allowlist.overlaps(net)).then_some((s, live))
            })
            .collect()
    }

    /// Gathers the candidates' events a batch at a time (see [`Collector::plan_batch`]) and
    /// replays each candidate's through buckets of `limits` (one per rule); returns the
    /// episodes found.
    fn replay_candidates(
        &self,
        distinct: &[u64; 4],
        census: &Census,
        candidates: &[(u32, u64)],
        limits: Vec<Limits>,
    ) -> std::io::Result<Vec<Episode>> {
        let n = self.rules.rules().len();
        let mut state = ReplayState {
            limits,
            buckets: vec![Bucket::default(); n],
            seen: (0..n).map(|_| SeenSet::default()).collect(),
            filling: vec![Filling::default(); n],
        };
        // A line counts under every grouping whose rules it matched: its orders are kept
        // to count it once when two keys of one source flag it.
        let keep_lines = self.rules.groupings().len() > 1;
        let mut found: Vec<Episode> = Vec::new();
        // Per slot: where its events and hashes go (u32::MAX: not in this batch).
        let mut place = vec![(u32::MAX, 0u32); census.tally.len()];
        let mut events: Vec<Replayed> = Vec::new();
        let mut hashes: Vec<u64> = Vec::new();
        let mut rest = candidates;
        while !rest.is_empty() {
            let (take, n_events, n_hashes) = self.plan_batch(rest, &census.tally, &mut place);
            let (batch, next) = rest.split_at(take);
            rest = next;
            events.clear();
            events.resize(n_events, Replayed::default());
            hashes.clear();
            hashes.resize(n_hashes, 0);
            self.gather(distinct, census, &mut place, &mut events, &mut hashes)?;
            // Each slot's events now end where the next one's start.
            let mut start = 0usize;
            for &(s, live) in batch {
                let end = start + census.tally[s as usize].0 as usize;
                self.replay(
                    s,
                    live,
                    &census.slots.keys[s as usize],
                    &mut events[start..end],
                    &hashes,
                    &mut state,
                    keep_lines,
                    &mut found,
                );
                start = end;
                place[s as usize] = (u32::MAX, 0);
            }
        }
        Ok(found)
    }

    /// Places the next batch: the first candidates of `rest` whose events fit in
    /// `self.batch` together (at least one, however many events it has), each given in
    /// `place` where its events and hashes start. Returns how many candidates, and their
    /// events and hashes.
    fn plan_batch(
        &self,
        rest: &[(u32, u64)],
        tally: &[(u64, u64)],
        place: &mut [(u32, u32)],
    ) -> (usize, usize, usize) {
        let mut take = 0;
        let (mut n_events, mut n_hashes) = (0usize, 0usize);
        for &(s, _) in rest {
            let (count, h) = tally[s as usize];
            if take > 0 && n_events + count as usize > self.batch {
                break;
            }
            place[s as usize] = (n_events as u32, n_hashes as u32);
            n_events += count as usize;
            n_hashes += h as usize;
            take += 1;
        }
        (take, n_events, n_hashes)
    }

    /// Decodes every journal again and copies the events and hashes of the slots that have
    /// a place (see [`Collector::plan_batch`]) to `events` and `hashes`, each slot's from
    /// its place on.
    fn gather(
        &self,
        distinct: &[u64; 4],
        census: &Census,
        place: &mut [(u32, u32)],
        events: &mut [Replayed],
        hashes: &mut [u64],
    ) -> std::io::Result<()> {
        let mut next_change = census.changes.iter();
        // A key with no slot, or more events for a slot than were counted, breaks an
        // invariant of the two passes: the run fails rather than replay a part.
        let mut broken = false;
        self.for_each_event(
            distinct,
            |key| match census.keep_changes {
                true => next_change.next().copied().unwrap_or(u32::MAX),
                false => census.slots.ids.get(&key).copied().unwrap_or(u32::MAX),
            },
            |slot, e, h| {
                let Some(p) = place.get_mut(slot as usize) else {
                    broken = true;
                    return;
                };
                if p.0 == u32::MAX {
                    return;
                }
                let hash_start = p.1;
                for (i, word) in h.chunks_exact(8).enumerate() {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(word);
                    if let Some(slot) = hashes.get_mut(hash_start as usize + i) {
                        *slot = u64::from_le_bytes(b);
                    }
                }
                match events.get_mut(p.0 as usize) {
                    Some(slot) => {
                        *slot = Replayed {
                            time_ms: e.time.saturating_mul(1000),
                            order: e.order,
                            rules: e.rules,
                            hash_start,
                            site: e.site,
                        }
                    }
                    None => broken = true,
                }
                p.0 += 1;
                p.1 += (h.len() / 8) as u32;
            },
        )?;
        if broken {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "detection events changed between the count and the replay",
            ));
        }
        Ok(())
    }

    /// Each flag's samples and the lines that filled its buckets, fetched in input order: a
    /// compressed file is inflated again once, not once per line. Returns per episode of
    /// `folded` its samples, and per fill of it the fill's lines, in no particular order.
    fn fetch_lines(
        &self,
        folded: &[Episode],
        slots: &Slots,
        lines: &mut dyn ReadBack,
    ) -> (Vec<Fetched>, Vec<Vec<Fetched>>) {
        let mut wanted: Vec<(usize, Want, Chosen)> = Vec::new();
        for (i, ep) in folded.iter().enumerate() {
            wanted.extend(ep.samples.iter().map(|&c| (i, Want::Sample, c)));
            for (k, fill) in ep.fills.iter().enumerate() {
                wanted.extend(fill.lines.iter().map(|&c| (i, Want::Filled(k), c)));
            }
        }
        let mut samples: Vec<Fetched> = vec![Vec::new(); folded.len()];
        let mut filled: Vec<Vec<Fetched>> = folded
            .iter()
            .map(|ep| vec![Vec::new(); ep.fills.len()])
            .collect();
        // A line both a sample and a filling line of one key is read once.
        wanted.sort_by_key(|&(_, _, c)| (c.order, c.slot));
        let mut last: Option<((u64, u32), Option<SampleLine>)> = None;
        for (i, want, c) in wanted {
            let line = match &last {
                Some((at, line)) if *at == (c.order, c.slot) => line.clone(),
                _ => {
                    let line = self.sample(slots, &c, lines);
                    last = Some(((c.order, c.slot), line.clone()));
                    line
                }
            };
            let Some(line) = line else {
                continue;
            };
            match want {
                Want::Sample => samples[i].push((c, line)),
                Want::Filled(k) => filled[i][k].push((c, line)),
            }
        }
        (samples, filled)
    }

    /// The names of the rules whose buckets overflowed in an episode, sorted, each once.
    fn fill_rule_names(&self, ep: &Episode) -> Vec<String> {
        let rules = self.rules.rules();
        let mut names: Vec<String> = ep
            .fills
            .iter()
            .map(|f| rules[f.rule].name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The public form of a folded episode.
    fn flagged(&self, ep: Episode, samples: Vec<SampleLine>, explain: Vec<Overflow>) -> Flagged {
        let rules = self.rules.rules();
        let names = self.fill_rule_names(&ep);
        let (events, mut sites, mut files) = match &ep.lines {
            Some(lines) => {
                let mut sites: Vec<(u32, u64)> = Vec::new();
                let mut files: Vec<(usize, u64)> = Vec::new();
                for &(order, site) in lines {
                    bump(&mut sites, site);
                    bump(&mut files, crate::input::split_order(order).0);
                }
                (lines.len() as u64, sites, files)
            }
            None => (ep.events, ep.sites, ep.files),
        };
        sites.retain(|&(site, _)| site != NO_VHOST);
        sites.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        files.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut rule_events: Vec<(String, u64)> = ep
            .rule_events
            .iter()
            .map(|&(ri, n)| (rules[usize::from(ri)].name.clone(), n))
            .collect();
        rule_events.sort();
        Flagged {
            source: ep.source,
            rules: names,
            rule_events,
            first_seen: ep.first_ms.div_euclid(1000),
            last_seen: ep.last_ms.div_euclid(1000),
            events,
            overflows: ep.fills.iter().map(|f| f.times).sum(),
            samples,
            sites: sites
                .into_iter()
                .filter_map(|(site, n)| {
                    let name = self.vhost_names.get(site as usize)?;
                    Some((String::from_utf8_lossy(name).into_owned(), n))
                })
                .collect(),
            files,
            explain,
        }
    }

    /// The line of a chosen sample, with its provenance: its copy, or the line read back
    /// when the record there still has the sample's source, time and virtual host.
    fn sample(&self, slots: &Slots, s: &Chosen, lines: &mut dyn ReadBack) -> Option<SampleLine> {
        let file = crate::input::split_order(s.order).0;
        let key = slots.keys.get(s.slot as usize)?;
        if let Some(copy) = self
            .copies
            .get(key)
            .and_then(|c| c.samples.iter().find(|c| c.order == s.order))
        {
            return Some(SampleLine {
                file: Some(file),
                line: None,
                text: sample_line(&self.sample_bytes, copy).to_vec(),
            });
        }
        let (grouping, _) = *self.rules.groupings().get(usize::from(key.grouping))?;
        let vhost = self.vhost_names.get(key.vhost as usize).map(|v| &v[..]);
        let same = |rec: &Record<'_>| {
            rec.time.map(|t| t.saturating_mul(1000)) == Some(s.time_ms)
                && rec.source().is_some_and(|a| grouping.net_of(a) == key.net)
                && (!grouping.per_vhost || rec.vhost == vhost)
        };
        let (text, line) = lines.read_back(s.order, &same)?;
        Some(SampleLine {
            file: Some(file),
            line,
            text,
        })
    }

    /// Replays one source's events (in any order; sorted here), whose hashes are in
    /// `hashes` from each event's `hash_start`, through the rules of `live`: those with more
    /// events than their capacity here, the only ones that can overflow. Appends to `found`
    /// its episodes: runs of the flagging rules' events with no gap over [`EPISODE_GAP`]
    /// in which a bucket overflowed.
    #[allow(clippy::too_many_arguments)]
    fn replay(
        &self,
        id: u32,
        live: u64,
        key: &Key,
        events: &mut [Replayed],
        hashes: &[u64],
        state: &mut ReplayState,
        keep_lines: bool,
        found: &mut Vec<Episode>,
    ) {
        sort_events(events);
        let (fired, fills) = self.offer_events(id, live, events, hashes, state);
        if fired == 0 {
            return;
        }
        // Split the flagging rules' new events where they pause for longer than the gap;
        // each run with an overflow is an episode.
        let mut current: Option<Episode> = None;
        let mut fills = fills.into_iter().peekable();
        let finish = |ep: Option<Episode>, found: &mut Vec<Episode>| {
            if let Some(ep) = ep.filter(|ep| !ep.fills.is_empty()) {
                found.push(ep);
            }
        };
        for e in events
            .iter()
            .filter(|e| e.rules & fired != 0 && !self.counted_before(e.order))
        {
            let ep = match &mut current {
                Some(ep) if e.time_ms - ep.last_ms <= EPISODE_GAP_MS => ep,
                _ => {
                    finish(current.take(), found);
                    current.insert(Episode {
                        source: key.net,
                        first_ms: e.time_ms,
                        last_ms: e.time_ms,
                        lines: keep_lines.then(Vec::new),
                        ..Episode::default()
                    })
                }
            };
            ep.last_ms = e.time_ms;
            ep.events += 1;
            for ri in rule_bits(e.rules & fired) {
                bump(&mut ep.rule_events, ri as u8);
            }
            if let Some(lines) = &mut ep.lines {
                lines.push((e.order, e.site));
            } else {
                bump(&mut ep.sites, e.site);
                bump(&mut ep.files, crate::input::split_order(e.order).0);
            }
            if ep.samples.len() < SAMPLES {
                ep.samples.push(Chosen {
                    time_ms: e.time_ms,
                    order: e.order,
                    slot: id,
                });
            }
            while let Some(fill) = fills.next_if(|f| f.at_ms <= e.time_ms) {
                ep.fills.push(fill);
            }
        }
        if let Some(ep) = &mut current {
            ep.fills.extend(fills);
        }
        finish(current, found);
    }

    /// Offers one source's events, sorted, to the buckets of the rules of `live` (fresh for
    /// this source). Returns the rules that overflowed on lines not counted before, and for
    /// each rule's first overflow in an episode, the lines that filled its bucket.
    fn offer_events(
        &self,
        id: u32,
        live: u64,
        events: &[Replayed],
        hashes: &[u64],
        state: &mut ReplayState,
    ) -> (u64, Vec<Fill>) {
        let rules = self.rules.rules();
        let ReplayState {
            limits,
            buckets,
            seen,
            filling,
        } = state;
        // A fresh bucket per rule for this source; buffers are kept from the last source.
        buckets.iter_mut().for_each(|b| *b = Bucket::default());
        seen.iter_mut().for_each(SeenSet::clear);
        filling.iter_mut().for_each(|f| *f = Filling::default());
        let mut fired = 0u64;
        let mut fills: Vec<Fill> = Vec::new();
        for (index, e) in events.iter().enumerate() {
            for ri in rule_bits(e.rules & live) {
                let rule = &rules[ri];
                // An empty bucket starts over: the lines before it all leaked out and
                // filled nothing that overflows from now on.
                let empty = buckets[ri].is_empty(e.time_ms);
                if empty {
                    filling[ri] = Filling::default();
                }
                if let Some(field) = rule.distinct {
                    if empty {
                        seen[ri].clear();
                    }
                    let slot = Field::ALL
                        .iter()
                        .take_while(|&&f| f != field)
                        .filter(|&&f| self.rules.distinct_rules(f) & e.rules != 0)
                        .count() as u32;
                    let hash = hashes
                        .get((e.hash_start + slot) as usize)
                        .copied()
                        .unwrap_or(0);
                    if !seen[ri].insert(hash) {
                        continue;
                    }
                }
                filling[ri].push(index as u32);
                match buckets[ri].offer(e.time_ms, limits[ri]) {
                    Offer::Overflow => {
                        if !self.counted_before(e.order) {
                            fired |= 1u64 << ri;
                            // The first overflow of a rule in an episode is explained by
                            // the lines that filled its bucket; later ones are counted.
                            match fills.iter_mut().rev().find(|f| f.rule == ri) {
                                Some(f) if e.time_ms - f.last_ms <= EPISODE_GAP_MS => {
                                    f.times += 1;
                                    f.last_ms = e.time_ms;
                                }
                                _ => fills.push(Fill {
                                    rule: ri,
                                    at_ms: e.time_ms,
                                    last_ms: e.time_ms,
                                    times: 1,
                                    lines: filling[ri]
                                        .lines()
                                        .filter_map(|i| events.get(i as usize))
                                        .map(|f| Chosen {
                                            time_ms: f.time_ms,
                                            order: f.order,
                                            slot: id,
                                        })
                                        .collect(),
                                }),
                            }
                        }
                        seen[ri].clear();
                    }
                    Offer::Counted | Offer::Blackholed => {}
                }
            }
        }
        (fired, fills)
    }
}

/// Events of one flagging further apart than this start a new episode: a source that
/// attacks on Monday and again on Wednesday is flagged twice, not once across both days.
pub const EPISODE_GAP_MS: i64 = 6 * 3600 * 1000;

/// How many of the lines that filled a bucket an [`Overflow`] shows (the latest).
pub const FILL_LINES: usize = 5;

/// One episode of one key while the replay finds them, and of one source once folded.
#[derive(Default)]
struct Episode {
    source: IpNet,
    first_ms: i64,
    last_ms: i64,
    events: u64,
    /// Per flagging rule (index): its events.
    rule_events: Vec<(u8, u64)>,
    /// Events per site (vhost id) and per input file, when `lines` is not kept.
    sites: Vec<(u32, u64)>,
    files: Vec<(usize, u64)>,
    /// The counted lines (order, site), when a line may count under two keys.
    lines: Option<Vec<(u64, u32)>>,
    /// The first [`SAMPLES`] lines by (time, order).
    samples: Vec<Chosen>,
    fills: Vec<Fill>,
}

/// The first overflow of a rule in an episode.
#[derive(Clone)]
struct Fill {
    rule: usize,
    at_ms: i64,
    /// The latest overflow of the rule, and how many there were.
    last_ms: i64,
    times: u64,
    lines: Vec<Chosen>,
}

/// The latest events offered to a rule's bucket (their index in the source's events), a
/// ring of [`FILL_LINES`]; `u32::MAX` is an empty place.
#[derive(Clone, Copy)]
struct Filling {
    ring: [u32; FILL_LINES],
    next: usize,
}

impl Default for Filling {
    fn default() -> Self {
        Filling {
            ring: [u32::MAX; FILL_LINES],
            next: 0,
        }
    }
}

impl Filling {
    #[inline]
    fn push(&mut self, index: u32) {
        self.ring[self.next] = index;
        self.next = if self.next + 1 == FILL_LINES {
            0
        } else {
            self.next + 1
        };
    }

    /// The events in the ring, oldest first.
    fn lines(&self) -> impl Iterator<Item = u32> + '_ {
        (0..FILL_LINES)
            .map(|i| self.ring[(self.next + i) % FILL_LINES])
            .filter(|&i| i != u32::MAX)
    }
}

/// What a line read back is for.
#[derive(Clone, Copy)]
enum Want {
    Sample,
    Filled(usize),
}

/// Adds `n` to `key`'s count.
fn add_count<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K, n: u64) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, m)) => *m += n,
        None => counts.push((key, n)),
    }
}

/// Adds one to `key`'s count.
fn bump<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K) {
    add_count(counts, key, 1);
}

/// Adds each of `from`'s counts to `into`'s.
fn add_counts<K: PartialEq>(into: &mut Vec<(K, u64)>, from: Vec<(K, u64)>) {
    for (key, n) in from {
        add_count(into, key, n);
    }
}

/// Folds the episodes of a source's keys that meet (within [`EPISODE_GAP_MS`]) into one:
/// rules and counts joined, each line counted once. Sorted by source, then time.
fn fold_episodes(mut found: Vec<Episode>) -> Vec<Episode> {
    found.sort_by_key(|ep| (ep.source, ep.first_ms));
    let mut out: Vec<Episode> = Vec::with_capacity(found.len());
    for ep in found {
        match out.last_mut() {
            Some(last)
                if last.source == ep.source
                    && ep.first_ms.saturating_sub(last.last_ms) <= EPISODE_GAP_MS =>
            {
                last.first_ms = last.first_ms.min(ep.first_ms);
                last.last_ms = last.last_ms.max(ep.last_ms);
                last.events += ep.events;
                add_counts(&mut last.rule_events, ep.rule_events);
                add_counts(&mut last.sites, ep.sites);
                add_counts(&mut last.files, ep.files);
                if let (Some(mine), Some(theirs)) = (&mut last.lines, ep.lines) {
                    mine.extend(theirs);
                    mine.sort_unstable();
                    mine.dedup_by_key(|l| l.0);
                }
                last.samples.extend(ep.samples);
                last.samples.sort_by_key(|c| (c.time_ms, c.order));
                last.samples.dedup_by_key(|c| c.order);
                last.samples.truncate(SAMPLES);
                last.fills.extend(ep.fills);
                last.fills.sort_by_key(|f| f.at_ms);
            }
            _ => out.push(ep),
        }
    }
    out
}

/// Sorts a source's events by (time, line ordinal). Orders are unique, so this is a total
/// order and any sort gives the same result. The events come mostly in time order (each
/// journal in the order its lines were read, and logs are written in time order), so an
/// insertion sort moves few of them; when it has moved more than a few per event (a log
/// far out of order), the rest is left to `sort_unstable_by_key`.
fn sort_events(events: &mut [Replayed]) {
    let key = |e: &Replayed| (e.time_ms, e.order);
    let mut moves = events.len().saturating_mul(SORT_MOVES).saturating_add(64);
    for i in 1..events.len() {
        let e = events[i];
        let k = key(&e);
        let mut j = i;
        while j > 0 && key(&events[j - 1]) > k {
            if moves == 0 {
                // Put `e` back where its place was vacated: the slice is whole again.
                events[j] = e;
                events.sort_unstable_by_key(key);
                return;
            }
            moves -= 1;
            events[j] = events[j - 1];
            j -= 1;
        }
        events[j] = e;
    }
}

/// How many moves per event `sort_events` makes before it gives up on insertion.
const SORT_MOVES: usize = 4;

/// Consecutive events of one slot and one rule mask, counted in the first pass of
/// `finish_reading`.
#[derive(Clone, Copy, Debug)]
struct Run {
    slot: u32,
    rules: u64,
    /// Distinct-value hashes per event (fixed by `rules`).
    hashes: u64,
    count: u64,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            slot: u32::MAX,
            rules: 0,
            hashes: 0,
            count: 0,
        }
    }
}

/// Adds `run`'s events to its slot's events and hashes (`tally`) and to its events of each
/// rule (`per_rule`, `n` per slot, saturating), growing both to hold the slot.
fn add_run(run: &Run, tally: &mut Vec<(u64, u64)>, per_rule: &mut Vec<u16>, n: usize) {
    // Every journal names a key before its first event; without one there is no source to
    // count for.
    if run.count == 0 || run.slot == u32::MAX {
        return;
    }
    let slot = run.slot as usize;
    if tally.len() <= slot {
        tally.resize(slot + 1, (0, 0));
        per_rule.resize((slot + 1) * n, 0);
    }
    let t = &mut tally[slot];
    t.0 += run.count;
    t.1 += run.count * run.hashes;
    let count = u16::try_from(run.count).unwrap_or(u16::MAX);
    if let Some(counts) = per_rule.get_mut(slot * n..(slot + 1) * n) {
        for ri in rule_bits(run.rules) {
            if let Some(c) = counts.get_mut(ri) {
                *c = c.saturating_add(count);
            }
        }
    }
}

/// The slot of `key`, created when new.
fn slot_id(keys: &mut HashMap<Key, u32, KeyHasher>, keys_of: &mut Vec<Key>, key: Key) -> u32 {
    *keys.entry(key).or_insert_with(|| {
        keys_of.push(key);
        (keys_of.len() - 1) as u32
    })
}

fn intern(
    ids: &mut HashMap<Box<[u8]>, u32, KeyHasher>,
    names: &mut Vec<Box<[u8]>>,
    name: &[u8],
) -> u32 {
    if let Some(&id) = ids.get(name) {
        return id;
    }
    let id = names.len() as u32;
    names.push(name.into());
    ids.insert(name.into(), id);
    id
}

/// Per-rule replay state, reused from one source to the next.
struct ReplayState {
    /// Per rule, its bucket's limits: the rule's own, or halved for near misses.
    limits: Vec<Limits>,
    buckets: Vec<Bucket>,
    seen: Vec<SeenSet>,
    filling: Vec<Filling>,
}

/// The rules that have more events than their capacity, by `counts` (one per rule, a
/// saturated count may be more): the only ones that can overflow.
fn live_rules(limits: &[Limits], counts: &[u16]) -> u64 {
    let mut live = 0u64;
    for (ri, (&c, limits)) in counts.iter().zip(limits).enumerate() {
        if c == u16::MAX || u32::from(c) > limits.capacity {
            live |= 1u64 << ri;
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::builtin::builtin_rules;
    use crate::detect::busiest::BUSY_CAPACITY;
    use crate::detect::busiest::tests::overflows_in_order;
    use crate::detect::journal::tests::{fill_journal, read_journal};
    use crate::detect::rule::{Filter, Rule, RuleSet};
    use crate::format::{Format, TimeCache};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// Parses a test line with the combined preset, the parser `scan` uses.
    fn parse(line: &[u8]) -> Option<Record<'_>> {
        static COMBINED: OnceLock<Format> = OnceLock::new();
        let combined = COMBINED.get_or_init(|| Format::preset("combined").expect("preset"));
        combined.parse(line, &mut TimeCache::new()).ok()
    }

    /// Flags with the line numbers of their samples left out, and the lines that filled
    /// their buckets: read back, every one is there; copied, only those among the samples.
    fn unnumbered(mut flags: Vec<Flagged>) -> Vec<Flagged> {
        for f in &mut flags {
            f.samples.iter_mut().for_each(|l| l.line = None);
            f.explain.iter_mut().for_each(|x| x.lines.clear());
        }
        flags
    }

    /// The texts of a flag's samples.
    fn texts(f: &Flagged) -> Vec<Vec<u8>> {
        f.samples.iter().map(|s| s.text.clone()).collect()
    }

    fn compiled(set: &RuleSet) -> Arc<CompiledRules> {
        Arc::new(CompiledRules::new(set).expect("rules compile"))
    }

    fn run(rules: &Arc<CompiledRules>, lines: &[String], allow: &Allowlist) -> Vec<Flagged> {
        let mut c = Collector::new(Arc::clone(rules));
        for (i, line) in lines.iter().enumerate() {
            let rec = parse(line.as_bytes()).expect("test line parses");
            c.observe(&rec, i as u64);
        }
        c.finish(allow).expect("finish")
    }

    fn line(ip: &str, sec: u32, method: &str, target: &str, status: u16, ua: &str) -> String {
        format!(
            "{ip} - - [01/Jan/2024:00:{:02}:{:02} +0000] \"{method} {target} HTTP/1.1\" {status} 10 \"-\" \"{ua}\"",
            sec / 60,
            sec % 60
        )
    }

    fn one_rule(rule: Rule) -> Arc<CompiledRules> {
        let mut set = RuleSet::new();
        set.insert(rule);
        compiled(&set)
    }

    fn any_rule(capacity: u32, leak_ms: i64) -> Rule {
        Rule::new("r", "", Filter::default(), capacity, leak_ms)
    }

    /// Capacity 10 in one second: 6 events pass half (a near miss), 5 do not, 11 flag
    /// (a flag, not a near miss).
    #[test]
    fn near_misses_are_sources_past_half_a_bucket_that_were_not_flagged() {
        let rules = one_rule(any_rule(10, 1_000));
        let mut lines = Vec::new();
        for (ip, n) in [("192.0.2.5", 5), ("192.0.2.6", 6), ("192.0.2.11", 11)] {
            lines.extend((0..n).map(|_| line(ip, 7, "GET", "/", 200, "ua")));
        }
        let mut c = Collector::new(Arc::clone(&rules));
        for (i, l) in lines.iter().enumerate() {
            c.observe(&parse(l.as_bytes()).expect("parses"), i as u64);
        }
        let allow = Allowlist::exact(vec![]);
        let (flagged, near) = c
            .finish_with_near_misses(&allow, &mut NoReadBack)
            .expect("finish");
        assert_eq!(flagged, c.finish(&allow).expect("finish"));
        let flagged_sources: Vec<String> = flagged.iter().map(|f| f.source.to_string()).collect();
        assert_eq!(flagged_sources, ["192.0.2.11/32"]);
        assert_eq!(near.len(), 1, "{near:?}");
        assert_eq!(near[0].source.to_string(), "192.0.2.6/32");
        assert_eq!(near[0].rules, ["r"]);
        assert_eq!(near[0].events, 6);
        assert_eq!(near[0].first_seen, near[0].last_seen);
        // Allowed sources are never near misses either.
        let allowed = Allowlist::exact(vec!["192.0.2.6/32".parse().expect("net")]);
        let (_, near) = c
            .finish_with_near_misses(&allowed, &mut NoReadBack)
            .expect("finish");
        assert!(near.is_empty());
    }

    /// A request line that is not `METHOD target` has no target: each distinct one still
    /// counts as a new page for http-probing (the garbage a scanner sends to a plain port),
    /// and the same garbage again does not.
    #[test]
    fn garbage_requests_count_as_distinct_paths() {
        let rules = compiled(&builtin_rules());
        let probing = |requests: &[Vec<u8>]| {
            let mut c = Collector::new(Arc::clone(&rules));
            for (i, req) in requests.iter().enumerate() {
                let rec = Record {
                    line: req,
                    client: "192.0.2.7".parse().ok(),
                    time: Some(1_700_000_000 + i as i64 / 4),
                    request: Some(req),
                    status: Some(400),
                    ..Record::default()
                };
                c.observe(&rec, i as u64);
            }
            let got = c.finish(&Allowlist::exact(vec![])).expect("finish");
            got.iter()
                .any(|f| f.rules.iter().any(|r| r == "http-probing"))
        };
        let distinct: Vec<Vec<u8>> = (0..12)
            .map(|i| format!("\\x16\\x03\\x01\\x0{i:x}").into_bytes())
            .collect();
        assert!(probing(&distinct), "12 distinct garbage requests");
        let same = vec![b"\\x16\\x03\\x01".to_vec(); 12];
        assert!(!probing(&same), "one garbage request 12 times");
    }

    /// The tests' lines are at the times and on the paths they are written with.
    #[test]
    fn test_lines_parse_to_their_time_and_fields() {
        let l = line("192.0.2.1", 65, "GET", "/a?b", 404, "ua");
        let r = parse(l.as_bytes()).expect("parses");
        assert_eq!(r.time, Some(1_704_067_265));
        assert_eq!(r.path(), Some(&b"/a"[..]));
        assert_eq!(r.status, Some(404));
        assert_eq!(r.user_agent, Some(&b"ua"[..]));
    }

    #[test]
    fn capacity_edges_through_the_engine() {
        let rules = one_rule(any_rule(10, 10_000));
        let ten: Vec<String> = (0..10)
            .map(|_| line("192.0.2.1", 0, "GET", "/", 200, "x"))
            .collect();
        assert!(run(&rules, &ten, &Allowlist::exact(vec![])).is_empty());
        let mut eleven = ten.clone();
        eleven.push(line("192.0.2.1", 0, "GET", "/", 200, "x"));
        let got = run(&rules, &eleven, &Allowlist::exact(vec![]));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].source, "192.0.2.1/32".parse::<IpNet>().expect("net"));
        assert_eq!(got[0].rules, ["r"]);
        assert_eq!(got[0].events, 11);
        assert_eq!(got[0].overflows, 1);
        assert_eq!(got[0].samples.len(), SAMPLES);
        assert_eq!(got[0].samples[0].text, eleven[0].as_bytes());
    }

    /// Runs `old` as lines of file 0 an earlier scan counted and `new` as lines of file 1.
    fn run_after(
        rules: &Arc<CompiledRules>,
        old: &[String],
        new: &[String],
        counted: u64,
    ) -> Vec<Flagged> {
        let mut c = Collector::new(Arc::clone(rules));
        for (file, lines) in [old, new].iter().enumerate() {
            for (i, line) in lines.iter().enumerate() {
                let rec = parse(line.as_bytes()).expect("test line parses");
                c.observe(&rec, ((file as u64) << 40) | i as u64);
            }
        }
        c.set_counted(vec![counted, 0]);
        c.finish(&Allowlist::exact(vec![])).expect("finish")
    }

    #[test]
    fn lines_counted_earlier_fill_buckets_but_flag_and_count_nothing() {
        let mut rule = any_rule(4, 10_000);
        rule.blackhole_ms = 60_000;
        let rules = one_rule(rule);
        let at = |secs: &[u32]| -> Vec<String> {
            secs.iter()
                .map(|&s| line("192.0.2.1", s, "GET", "/", 200, "x"))
                .collect()
        };
        // A burst of five that spans two scans: three counted before, two new.
        let got = run_after(&rules, &at(&[0, 0, 0]), &at(&[1, 1]), u64::MAX);
        assert_eq!(got.len(), 1, "the burst is seen whole");
        assert_eq!((got[0].events, got[0].overflows), (2, 1));
        assert_eq!(got[0].first_seen, 1_704_067_201, "only new lines count");
        // Without the earlier lines the two new ones flag nothing.
        assert!(run_after(&rules, &[], &at(&[1, 1]), 0).is_empty());
        // The earlier scan flagged at the fifth line; its blackhole still holds.
        assert!(run_after(&rules, &at(&[0; 5]), &at(&[1, 1, 1]), u64::MAX).is_empty());
        // After the blackhole, new lines flag again.
        let got = run_after(&rules, &at(&[0; 5]), &at(&[70; 5]), u64::MAX);
        assert_eq!((got[0].events, got[0].overflows), (5, 1));
        // Only the lines before the offset are old: two old, three new.
        let got = run_after(&rules, &at(&[0, 0, 0, 0, 0]), &[], 2);
        assert_eq!((got[0].events, got[0].overflows), (3, 1));
    }

    #[test]
    fn spacing_by_the_leak_never_flags() {
        let rules = one_rule(any_rule(1, 1_000));
        let lines: Vec<String> = (0..100)
            .map(|s| line("192.0.2.1", s, "GET", "/", 200, "x"))
            .collect();
        assert!(run(&rules, &lines, &Allowlist::exact(vec![])).is_empty());
    }

    #[test]
    fn trigger_and_blackhole() {
        let mut rule = any_rule(0, 1_000);
        rule.blackhole_ms = 10_000;
        let rules = one_rule(rule);
        // Overflows at 0, blackholed at 5, 9, overflows again at 10.
        let lines: Vec<String> = [0, 5, 9, 10]
            .iter()
            .map(|&s| line("192.0.2.1", s, "GET", "/", 200, "x"))
            .collect();
        let got = run(&rules, &lines, &Allowlist::exact(vec![]));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].overflows, 2);
        assert_eq!(got[0].events, 4);
        assert_eq!(got[0].last_seen - got[0].first_seen, 10);
    }

    #[test]
    fn distinct_values_count_once() {
        let rule = any_rule(2, 60_000).distinct(Field::Path);
        let rules = one_rule(rule);
        let same: Vec<String> = (0..50)
            .map(|_| line("192.0.2.1", 0, "GET", "/a?x", 200, "x"))
            .collect();
        assert!(run(&rules, &same, &Allowlist::exact(vec![])).is_empty());
        let mut three = same.clone();
        three.push(line("192.0.2.1", 0, "GET", "/b", 200, "x"));
        assert!(run(&rules, &three, &Allowlist::exact(vec![])).is_empty());
        // The query does not make a path new.
        three.push(line("192.0.2.1", 0, "GET", "/b?y", 200, "x"));
        assert!(run(&rules, &three, &Allowlist::exact(vec![])).is_empty());
        three.push(line("192.0.2.1", 0, "GET", "/c", 200, "x"));
        assert_eq!(run(&rules, &three, &Allowlist::exact(vec![])).len(), 1);
    }

    #[test]
    fn distinct_values_are_forgotten_when_the_bucket_empties() {
        let rule = any_rule(1, 1_000).distinct(Field::Path);
        let rules = one_rule(rule);
        // /a at 0 fills the bucket; at 5 it has leaked empty, so /a counts again, and /b at
        // the same instant overflows.
        let lines = vec![
            line("192.0.2.1", 0, "GET", "/a", 200, "x"),
            line("192.0.2.1", 5, "GET", "/a", 200, "x"),
            line("192.0.2.1", 5, "GET", "/b", 200, "x"),
        ];
        assert_eq!(run(&rules, &lines, &Allowlist::exact(vec![])).len(), 1);
    }

    #[test]
    fn ipv6_grouped_by_64_and_allowlist() {
        let rules = one_rule(any_rule(1, 60_000));
        let lines = vec![
            line("2001:db8:1:2::1", 0, "GET", "/", 200, "x"),
            line("2001:db8:1:2:ffff::9", 0, "GET", "/", 200, "x"),
            line("127.0.0.1", 0, "GET", "/", 200, "x"),
            line("127.0.0.1", 0, "GET", "/", 200, "x"),
            line("::ffff:192.0.2.7", 0, "GET", "/", 200, "x"),
            line("192.0.2.7", 0, "GET", "/", 200, "x"),
        ];
        let got = run(&rules, &lines, &Allowlist::new(vec![]));
        let sources: Vec<String> = got.iter().map(|f| f.source.to_string()).collect();
        assert_eq!(sources, ["192.0.2.7/32", "2001:db8:1:2::/64"]);
        let allow = Allowlist::new(vec!["2001:db8:1:2::1/128".parse().expect("net")]);
        let got = run(&rules, &lines, &allow);
        assert_eq!(got.len(), 1, "{got:?}");
    }

    #[test]
    fn per_vhost_and_prefix_grouping() {
        let mut rule = any_rule(1, 60_000);
        rule.grouping.per_vhost = true;
        rule.grouping.v4_prefix = 24;
        let rules = one_rule(rule);
        let mut c = Collector::new(Arc::clone(&rules));
        let lines = [
            line("192.0.2.1", 0, "GET", "/", 200, "x"),
            line("192.0.2.200", 0, "GET", "/", 200, "x"),
            line("192.0.2.3", 0, "GET", "/", 200, "x"),
        ];
        for (i, (l, vhost)) in lines
            .iter()
            .zip(["a.example", "a.example", "b.example"])
            .enumerate()
        {
            let mut rec = parse(l.as_bytes()).expect("parses");
            rec.vhost = Some(vhost.as_bytes());
            c.observe(&rec, i as u64);
        }
        let got = c.finish(&Allowlist::exact(vec![])).expect("finish");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].source.to_string(), "192.0.2.0/24");
        assert_eq!(got[0].top_site(), Some("a.example"));
    }

    #[test]
    fn lines_without_source_or_time_are_skipped() {
        let rules = one_rule(any_rule(0, 1_000));
        let mut c = Collector::new(rules);
        let l = line("192.0.2.1", 0, "GET", "/", 200, "x");
        let mut rec = parse(l.as_bytes()).expect("parses");
        rec.time = None;
        c.observe(&rec, 0);
        rec.time = Some(0);
        rec.client = None;
        c.observe(&rec, 1);
        assert_eq!((c.seen(), c.skipped()), (0, 2));
        assert!(
            c.finish(&Allowlist::exact(vec![]))
                .expect("finish")
                .is_empty()
        );
    }

    /// Built-ins made touchy, plus a second grouping, so small streams flag often.
    fn touchy_rules() -> Arc<CompiledRules> {
        let mut set = builtin_rules();
        if let Some(r) = set.get_mut("http-flood") {
            r.capacity = 6;
            r.leak_ms = 2_000;
        }
        if let Some(r) = set.get_mut("http-probing") {
            r.capacity = 3;
        }
        let mut wide = Rule::new(
            "wide-404",
            "",
            Filter {
                status: vec![404],
                ..Filter::default()
            },
            4,
            3_000,
        );
        wide.grouping.v4_prefix = 24;
        wide.blackhole_ms = 5_000;
        set.insert(wide);
        compiled(&set)
    }

    fn synthetic_lines(spec: &[(u8, u8, u8, u8)]) -> Vec<String> {
        let ips = [
            "192.0.2.1",
            "192.0.2.2",
            "198.51.100.9",
            "2001:db8::1",
            "2001:db8::2",
        ];
        let targets = [
            "/",
            "/a",
            "/b",
            "/c?q=1",
            "/.env",
            "/x.css",
            "/d",
            "/e?id=1+union+select+1",
            "/f",
            "/phpmyadmin/",
        ];
        let uas = ["Mozilla/5.0", "sqlmap/1.0", "curl/8"];
        let statuses = [200, 404, 403, 301];
        spec.iter()
            .map(|&(ip, t, target, misc)| {
                line(
                    ips[usize::from(ip) % ips.len()],
                    u32::from(t),
                    "GET",
                    targets[usize::from(target) % targets.len()],
                    statuses[usize::from(misc) % statuses.len()],
                    uas[usize::from(misc / 4) % uas.len()],
                )
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any split into shards, merged in any order, gives the one-shard result, also when
        /// some shards write their events out to files every few bytes.
        #[test]
        fn shard_split_and_merge_order_do_not_matter(
            spec in proptest::collection::vec((0u8..5, 0u8..40, 0u8..10, 0u8..12), 1..200),
            shard_of in proptest::collection::vec(0usize..4, 200),
            merge_order in Just([0usize, 1, 2, 3]).prop_shuffle(),
            spill_at in 1usize..300,
        ) {
            let rules = touchy_rules();
            let lines = synthetic_lines(&spec);
            let allow = Allowlist::exact(vec![]);
            let whole = run(&rules, &lines, &allow);
            let dir = tempfile::tempdir().expect("tempdir");
            let mut shards: Vec<Collector> = (0..4).map(|_| Collector::new(Arc::clone(&rules))).collect();
            // Shards 1 and 3 spill, one copying its lines and one reading them back.
            for i in [1, 3] {
                shards[i].spill_events_to(SpillTo { dir: dir.path().to_path_buf(), at: spill_at });
            }
            for (i, l) in lines.iter().enumerate() {
                let rec = parse(l.as_bytes()).expect("parses");
                // Shards 2 and 3 read their lines back instead of copying them.
                if shard_of[i] >= 2 {
                    shards[shard_of[i]].observe_readable(&rec, i as u64);
                } else {
                    shards[shard_of[i]].observe(&rec, i as u64);
                }
            }
            let mut slots: Vec<Option<Collector>> = shards.into_iter().map(Some).collect();
            let mut merged = slots[merge_order[0]].take().expect("shard");
            for &i in &merge_order[1..] {
                merged.merge(slots[i].take().expect("shard"));
            }
            // Every line is an `http-flood` event of at least 3 bytes, and a journal writes
            // out when an event finds more than `spill_at` bytes before it.
            let shard_1 = shard_of[..lines.len()].iter().filter(|&&s| s == 1).count();
            if shard_1 >= spill_at / 3 + 2 {
                prop_assert!(merged.spilled_bytes() > 0, "shard 1 wrote nothing out");
            }
            prop_assert!(merged.spill_warnings().is_empty());
            // Lines read back know their line number, and the lines that filled a bucket are
            // all read back, while copies are kept only for samples: the rest is the same.
            let whole = unnumbered(whole);
            prop_assert_eq!(unnumbered(merged.finish_reading(&allow, &mut TestLines(&lines)).expect("finish")), whole.clone());
            // Gathered for the replay a few events at a time, too.
            merged.batch = 7;
            prop_assert_eq!(unnumbered(merged.finish_reading(&allow, &mut TestLines(&lines)).expect("finish")), whole);
        }

        /// The samples are the earliest (time, line) lines of the source that match a
        /// flagging rule, checked against a slow reference.
        #[test]
        fn samples_are_the_earliest_lines_of_the_flagging_rules(
            spec in proptest::collection::vec((0u8..5, 0u8..40, 0u8..10, 0u8..12), 1..200),
        ) {
            let rules = touchy_rules();
            let lines = synthetic_lines(&spec);
            let mut c = Collector::new(Arc::clone(&rules));
            for (i, l) in lines.iter().enumerate() {
                c.observe_readable(&parse(l.as_bytes()).expect("parses"), i as u64);
            }
            let mut scratch = Scratch::default();
            for f in c.finish_reading(&Allowlist::exact(vec![]), &mut TestLines(&lines)).expect("finish") {
                let mut want: Vec<(i64, usize)> = Vec::new();
                for (i, l) in lines.iter().enumerate() {
                    let rec = parse(l.as_bytes()).expect("parses");
                    let matched = rules.evaluate(&rec, &mut scratch);
                    let hit = rules.rules().iter().enumerate().any(|(ri, r)| {
                        matched >> ri & 1 == 1
                            && f.rules.contains(&r.name)
                            && rec.source().is_some_and(|a| r.grouping.net_of(a) == f.source)
                    });
                    if hit {
                        want.push((rec.time.expect("time"), i));
                    }
                }
                want.sort();
                let want: Vec<Vec<u8>> = want
                    .iter()
                    .take(SAMPLES)
                    .map(|&(_, i)| lines[i].as_bytes().to_vec())
                    .collect();
                prop_assert_eq!(&texts(&f), &want, "{}", f.source);
            }
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Events are sorted by (time, ordinal) whether they come nearly sorted (insertion)
        /// or far out of order (the fallback), checked against a stable sort.
        #[test]
        fn events_sort_by_time_then_ordinal(
            times in proptest::collection::vec(-3i64..40, 0..300),
            swaps in proptest::collection::vec((0usize..300, 0usize..300), 0..40),
            sorted_first in any::<bool>(),
        ) {
            let mut events: Vec<Replayed> = times
                .iter()
                .enumerate()
                .map(|(i, &t)| Replayed {
                    time_ms: t * 1000,
                    // Unique orders, not in the same order as the times.
                    order: (i as u64 * 7919) % 100_003,
                    rules: i as u64,
                    hash_start: i as u32,
                    site: NO_VHOST,
                })
                .collect();
            if sorted_first {
                // Nearly sorted: a sorted list with a few swaps.
                events.sort_by_key(|e| (e.time_ms, e.order));
            }
            let len = events.len();
            for &(a, b) in &swaps {
                if len > 0 {
                    events.swap(a % len, b % len);
                }
            }
            let mut want = events.clone();
            want.sort_by_key(|e| (e.time_ms, e.order));
            sort_events(&mut events);
            let key = |e: &Replayed| (e.time_ms, e.order, e.rules, e.hash_start);
            prop_assert_eq!(
                events.iter().map(key).collect::<Vec<_>>(),
                want.iter().map(key).collect::<Vec<_>>()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// With a rule busy enough for the window tallies, split over two collectors and
        /// merged, the engine flags exactly the sources whose bucket overflows when their
        /// events are replayed alone in time order.
        #[test]
        fn busy_rules_flag_what_a_plain_replay_flags(
            capacity in BUSY_CAPACITY..28,
            leak_ms in 500i64..3000,
            // Per source, runs of events: how many, seconds between them, pause before.
            sources in proptest::collection::vec(
                proptest::collection::vec((1u32..40, 0u32..3, 0u32..200), 1..6),
                1..6,
            ),
            shard_of in proptest::collection::vec(any::<bool>(), 2000),
        ) {
            let rules = one_rule(any_rule(capacity, leak_ms));
            let info = rules.rules()[0].clone();
            let mut events: Vec<(u32, usize)> = Vec::new();
            let mut want = Vec::new();
            for (si, runs) in sources.iter().enumerate() {
                let mut t = 0u32;
                let mut times = Vec::new();
                for &(count, spacing, pause) in runs {
                    t += pause;
                    for _ in 0..count {
                        times.push(i64::from(t.min(3599)));
                        t += spacing;
                    }
                }
                if overflows_in_order(&info, &times) {
                    want.push(format!("192.0.2.{}/32", si + 1));
                }
                events.extend(times.iter().map(|&t| (t as u32, si)));
            }
            // The lines of all sources in time order, as a log writes them.
            events.sort();
            let lines: Vec<String> = events
                .iter()
                .map(|&(t, si)| line(&format!("192.0.2.{}", si + 1), t, "GET", "/", 200, "x"))
                .collect();
            let mut shards = [Collector::new(Arc::clone(&rules)), Collector::new(Arc::clone(&rules))];
            for (i, l) in lines.iter().enumerate() {
                let rec = parse(l.as_bytes()).expect("parses");
                shards[usize::from(shard_of[i % shard_of.len()])].observe(&rec, i as u64);
            }
            let [mut merged, other] = shards;
            merged.merge(other);
            let got: Vec<String> = merged
                .finish(&Allowlist::exact(vec![])).expect("finish")
                .iter()
                .map(|f| f.source.to_string())
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn live_rules_are_those_over_their_capacity() {
        let rules = touchy_rules();
        let info = rules.rules();
        let mut counts = vec![0u16; info.len()];
        let limits: Vec<Limits> = info.iter().map(|r| r.limits).collect();
        assert_eq!(live_rules(&limits, &counts), 0);
        let flood = info
            .iter()
            .position(|r| r.name == "http-flood")
            .expect("flood");
        let probing = info
            .iter()
            .position(|r| r.name == "http-probing")
            .expect("probing");
        // At the capacity a bucket cannot overflow; one more and it can.
        counts[flood] = 6;
        counts[probing] = 4;
        assert_eq!(live_rules(&limits, &counts), 1 << probing);
        counts[flood] = 7;
        assert_eq!(live_rules(&limits, &counts), 1 << probing | 1 << flood);
    }

    /// Per-rule counts saturate: a rule whose capacity is above the largest count is still
    /// replayed once the count saturates.
    #[test]
    fn a_capacity_above_the_count_limit_still_flags() {
        let capacity = u32::from(u16::MAX) + 10;
        let rules = one_rule(any_rule(capacity, 3_600_000));
        let line = line("192.0.2.1", 0, "GET", "/", 200, "x");
        let rec = parse(line.as_bytes()).expect("parses");
        let mut c = Collector::new(Arc::clone(&rules));
        for i in 0..=u64::from(capacity) {
            c.observe_readable(&rec, i);
        }
        let got = c.finish(&Allowlist::exact(vec![])).expect("finish");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].events, u64::from(capacity) + 1);
        // One fewer does not overflow.
        let mut c = Collector::new(Arc::clone(&rules));
        for i in 0..u64::from(capacity) {
            c.observe_readable(&rec, i);
        }
        assert!(
            c.finish(&Allowlist::exact(vec![]))
                .expect("finish")
                .is_empty()
        );
    }

    /// 400 lines of three sources over 40 seconds, through every target, status and user
    /// agent of `synthetic_lines`: enough for `touchy_rules` to flag.
    fn four_hundred_lines() -> Vec<String> {
        let spec: Vec<(u8, u8, u8, u8)> = (0..400u16)
            .map(|i| {
                (
                    (i % 3) as u8,
                    (i / 10) as u8,
                    (i % 10) as u8,
                    (i % 12) as u8,
                )
            })
            .collect();
        synthetic_lines(&spec)
    }

    /// Journals merged into a collector are written out once the events in memory would
    /// pass four times the spill size, and the merged result is unchanged.
    #[test]
    fn merged_journals_past_the_budget_are_written_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = touchy_rules();
        let lines = four_hundred_lines();
        let allow = Allowlist::exact(vec![]);
        let want = run(&rules, &lines, &allow);
        // Large enough that no shard writes out while it scans.
        let at = 1 << 20;
        let shards: Vec<Collector> = (0..8)
            .map(|k| {
                let mut c = Collector::new(Arc::clone(&rules));
                c.spill_events_to(SpillTo {
                    dir: dir.path().to_path_buf(),
                    at,
                });
                for (i, l) in lines.iter().enumerate().filter(|(i, _)| i % 8 == k) {
                    c.observe(&parse(l.as_bytes()).expect("parses"), i as u64);
                }
                c
            })
            .collect();
        let per_shard: Vec<usize> = shards
            .iter()
            .map(|c| c.all_journals().map(|(_, j, _)| j.len).sum())
            .collect();
        assert!(per_shard.iter().all(|&n| n > 0 && n < at));
        assert_eq!(shards[0].spilled_bytes(), 0);
        // A budget of four times `at` that the first three shards fit in and eight do not.
        let at = per_shard[..3].iter().sum::<usize>() / 4 + 1;
        let mut shards = shards.into_iter();
        let mut merged = shards.next().expect("shard");
        merged.spill_to = Some(Arc::new(SpillTo {
            dir: dir.path().to_path_buf(),
            at,
        }));
        for c in shards {
            merged.merge(c);
        }
        let in_memory: Vec<usize> = merged.all_journals().map(|(_, j, _)| j.len).collect();
        assert!(
            in_memory.iter().sum::<usize>() <= 4 * at,
            "{in_memory:?}, at {at}"
        );
        // Merged journals both kept and written out.
        assert!(
            merged.merged.iter().any(|(_, j, _)| j.len > 0),
            "{in_memory:?}"
        );
        assert!(merged.spilled_bytes() > 0);
        assert_eq!(merged.finish(&allow).expect("finish"), want);
    }

    /// A merged journal gives back a buffer it mostly does not use (as after writing out)
    /// and keeps its events; a buffer it uses is left alone.
    #[test]
    fn settled_journals_give_back_a_mostly_unused_buffer() {
        let c = Collector::new(touchy_rules());
        let mut spare = Journal::default();
        let want = fill_journal(&mut spare);
        let len = spare.len;
        spare
            .bytes
            .resize(2 * len + JOURNAL_ROOM + MAX_EVENT + 1, 0);
        let spare = c.settle(spare);
        assert_eq!(spare.bytes.len(), len);
        assert_eq!(read_journal(&spare), want);
        let mut used = Journal::default();
        fill_journal(&mut used);
        let before = used.bytes.len();
        assert!(before > used.len);
        assert_eq!(c.settle(used).bytes.len(), before);
    }

    /// A collector whose events cannot be written out keeps them in memory, says why once
    /// (its journals' failures are one message), and flags what it would have flagged.
    #[test]
    fn events_that_cannot_be_written_out_stay_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let absent = dir.path().join("absent");
        let rules = touchy_rules();
        let lines = four_hundred_lines();
        let allow = Allowlist::exact(vec![]);
        let want = run(&rules, &lines, &allow);
        assert!(!want.is_empty());
        let mut c = Collector::new(Arc::clone(&rules));
        c.spill_events_to(SpillTo {
            dir: absent.clone(),
            at: 64,
        });
        for (i, l) in lines.iter().enumerate() {
            c.observe(&parse(l.as_bytes()).expect("parses"), i as u64);
        }
        assert_eq!(c.spilled_bytes(), 0);
        let warnings = c.spill_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&absent.display().to_string()),
            "{}",
            warnings[0]
        );
        assert_eq!(c.finish(&allow).expect("finish"), want);
    }

    /// Reads back the test lines, whose `order` is their index.
    struct TestLines<'a>(&'a [String]);

    impl ReadBack for TestLines<'_> {
        fn read_back(
            &mut self,
            order: u64,
            same: &dyn Fn(&Record<'_>) -> bool,
        ) -> Option<(Vec<u8>, Option<u64>)> {
            let line = self.0.get(order as usize)?;
            let rec = parse(line.as_bytes())?;
            same(&rec).then(|| (line.as_bytes().to_vec(), Some(order + 1)))
        }
    }

    #[test]
    fn readable_lines_are_read_back_and_checked() {
        let rules = one_rule(any_rule(2, 60_000));
        let lines: Vec<String> = (0..4)
            .map(|s| line("192.0.2.1", s, "GET", &format!("/{s}"), 200, "x"))
            .collect();
        let mut c = Collector::new(Arc::clone(&rules));
        for (i, l) in lines.iter().enumerate() {
            c.observe_readable(&parse(l.as_bytes()).expect("parses"), i as u64);
        }
        let allow = Allowlist::exact(vec![]);
        let got = c
            .finish_reading(&allow, &mut TestLines(&lines))
            .expect("finish");
        assert_eq!(got.len(), 1);
        let want: Vec<&[u8]> = lines[..SAMPLES].iter().map(|l| l.as_bytes()).collect();
        assert_eq!(texts(&got[0]), want);
        // Nothing was copied: without a reader there are no samples, the rest is the same.
        let bare = c.finish(&allow).expect("finish");
        assert!(bare[0].samples.is_empty());
        assert_eq!(
            (bare[0].events, &bare[0].rules),
            (got[0].events, &got[0].rules)
        );
        // A line that changed since (another source, another time) is left out.
        let mut changed = lines.clone();
        changed[0] = line("192.0.2.9", 0, "GET", "/0", 200, "x");
        changed[1] = line("192.0.2.1", 30, "GET", "/1", 200, "x");
        let got = c
            .finish_reading(&allow, &mut TestLines(&changed))
            .expect("finish");
        assert_eq!(texts(&got[0]), [lines[2].as_bytes()]);
    }

    /// Records the orders it is asked for.
    struct Recording<'a>(TestLines<'a>, Vec<u64>);

    impl ReadBack for Recording<'_> {
        fn read_back(
            &mut self,
            order: u64,
            same: &dyn Fn(&Record<'_>) -> bool,
        ) -> Option<(Vec<u8>, Option<u64>)> {
            self.1.push(order);
            self.0.read_back(order, same)
        }
    }

    #[test]
    fn samples_are_read_back_in_input_order() {
        // Two flagged sources, their lines interleaved, the first one's written latest first:
        // each flag still shows its earliest lines by time, but the reader is asked for the
        // lines of both in input order, so a compressed file is inflated once.
        let rules = one_rule(any_rule(2, 60_000));
        let lines: Vec<String> = (0..5u32)
            .flat_map(|i| {
                [
                    line("192.0.2.1", 10 - i, "GET", &format!("/a{i}"), 200, "x"),
                    line("192.0.2.2", i, "GET", &format!("/b{i}"), 200, "x"),
                ]
            })
            .collect();
        let mut c = Collector::new(Arc::clone(&rules));
        for (i, l) in lines.iter().enumerate() {
            c.observe_readable(&parse(l.as_bytes()).expect("parses"), i as u64);
        }
        let mut reader = Recording(TestLines(&lines), Vec::new());
        let got = c
            .finish_reading(&Allowlist::exact(vec![]), &mut reader)
            .expect("finish");
        assert_eq!(got.len(), 2);
        // The samples, and the lines that filled the buckets, each line once.
        assert!(reader.1.len() >= 2 * SAMPLES, "asked {:?}", reader.1);
        assert!(
            reader.1.windows(2).all(|w| w[0] < w[1]),
            "asked {:?}",
            reader.1
        );
        assert!(reader.1.is_sorted(), "asked in {:?}", reader.1);
        let of =
            |idx: &[usize]| -> Vec<&[u8]> { idx.iter().map(|&i| lines[i].as_bytes()).collect() };
        // 192.0.2.1's earliest lines are its last three, latest first in the input.
        assert_eq!(texts(&got[0]), of(&[8, 6, 4]));
        assert_eq!(texts(&got[1]), of(&[1, 3, 5]));
    }

    #[test]
    fn synthetic_stream_flags_something() {
        // Guards the property test against vacuity: its streams do flag.
        let spec: Vec<(u8, u8, u8, u8)> =
            (0..60).map(|i| (i % 5, i / 10, i % 10, i % 12)).collect();
        let got = run(
            &touchy_rules(),
            &synthetic_lines(&spec),
            &Allowlist::exact(vec![]),
        );
        assert!(got.len() >= 3, "{got:?}");
        assert!(got.iter().any(|f| f.source.prefix_len() == 24));
    }
}

//! The streaming detection engine for `logward watch`: records are fed one at a time in
//! arrival order, each (rule, source group) keeps its own leaky [`Bucket`] and distinct-value
//! set, and an overflow that is not blackholed comes back at once as a [`Flagged`] source.
//! The batch engine (`engine`) sorts a whole input by log time first; this one cannot wait.
//!
//! Differences from the batch engine, all forced by not seeing the future:
//! - Lines from several files interleave by arrival, and log time may go slightly backwards
//!   (Apache writes the time a request started, in the order requests end). An event older
//!   than its bucket's last event is taken as happening at that last event's time.
//! - A flag reports the episode that overflowed: first and last event, events and samples
//!   since the bucket last started from empty, not the source's whole history.
//! - Buckets that leaked empty (and have no blackhole running) are dropped by [`Live::sweep`],
//!   so memory follows the number of live buckets, not the number of sources ever seen.

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;

use super::allowlist::Allowlist;
use super::bucket::{Bucket, Offer, SeenSet};
use super::engine::{Flagged, NearMiss, Overflow, SAMPLES, SampleLine};
use super::matcher::{CompiledRules, Scratch};
use super::rule::rule_bits;
use crate::format::Record;

/// How far behind the newest log time a bucket must have gone idle before it is dropped:
/// lines from a file that lags a little behind the others still find their bucket.
pub const SWEEP_SLACK_MS: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    net: IpNet,
    /// The seeded hash of the virtual host for per-vhost rules, else 0. A hash rather than
    /// an interned name, so no table grows with the Host headers attackers send.
    vhost: u64,
    rule: u16,
}

/// One bucket and the episode it is counting.
struct State {
    bucket: Bucket,
    /// Log time (ms) of the last event offered; later events never go back before it.
    last_ms: i64,
    seen: SeenSet,
    first_ms: i64,
    events: u64,
    /// The episode's first sample lines, back to back (`ends` are their end offsets): one
    /// buffer reused from episode to episode, so ordinary traffic does not allocate per line.
    samples: Vec<u8>,
    ends: [u32; SAMPLES],
    kept: u8,
    vhost: Option<Box<[u8]>>,
    /// Whether this episode was reported as a near miss.
    near: bool,
}

impl State {
    fn keep_sample(&mut self, line: &[u8]) {
        if usize::from(self.kept) < SAMPLES {
            self.samples.extend_from_slice(line);
            self.ends[usize::from(self.kept)] = self.samples.len() as u32;
            self.kept += 1;
        }
    }

    fn clear_samples(&mut self) {
        self.samples.clear();
        self.kept = 0;
    }

    fn sample_lines(&self) -> Vec<SampleLine> {
        let mut start = 0;
        self.ends[..usize::from(self.kept)]
            .iter()
            .map(|&end| {
                let text = self.samples[start..end as usize].to_vec();
                start = end as usize;
                SampleLine {
                    file: None,
                    line: None,
                    text,
                }
            })
            .collect()
    }
}

/// Streaming counterpart of [`super::Collector`]: owns the buckets of every live source.
pub struct Live {
    rules: Arc<CompiledRules>,
    /// Keyed by a randomly seeded foldhash, as the batch engine's keys (see
    /// `CompiledRules`' hasher for why): with SipHash, hashing the keys cost more than
    /// matching the rules.
    states: HashMap<Key, State, foldhash::quality::RandomState>,
    scratch: Scratch,
    /// The newest log time (ms) seen, for sweeping.
    newest_ms: i64,
    seen: u64,
    skipped: u64,
    /// Whether to report near misses, and those not taken yet.
    near_on: bool,
    near: Vec<NearMiss>,
}

impl Live {
    /// A streaming engine for `rules`, with no source seen yet.
    pub fn new(rules: Arc<CompiledRules>) -> Live {
        Live {
            rules,
            states: HashMap::default(),
            scratch: Scratch::default(),
            newest_ms: i64::MIN,
            seen: 0,
            skipped: 0,
            near_on: false,
            near: Vec::new(),
        }
    }

    /// Reports near misses from now on (see [`NearMiss`]): an episode whose bucket comes to
    /// hold more than half the rule's capacity is reported once, when it does, whether or
    /// not it overflows later. For fleet mode with `min_hosts` of 2 or more.
    pub fn report_near_misses(&mut self) {
        self.near_on = true;
    }

    /// The near misses found since the last call.
    pub fn take_near_misses(&mut self) -> Vec<NearMiss> {
        std::mem::take(&mut self.near)
    }

    /// The rules it runs.
    pub fn rules(&self) -> &Arc<CompiledRules> {
        &self.rules
    }

    /// Lines observed with a source address and a time.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Lines ignored because they had no client address or no time.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Buckets currently held.
    pub fn buckets(&self) -> usize {
        self.states.len()
    }

    /// The newest log time seen, in Unix seconds.
    pub fn newest(&self) -> Option<i64> {
        (self.newest_ms != i64::MIN).then(|| self.newest_ms.div_euclid(1000))
    }

    /// Switches to a new rule set (a reload). Buckets of rules that keep their name and
    /// grouping carry over; the others start from empty.
    pub fn replace_rules(&mut self, rules: Arc<CompiledRules>) {
        let map: Vec<Option<u16>> = self
            .rules
            .rules()
            .iter()
            .map(|old| {
                rules
                    .rules()
                    .iter()
                    .position(|new| new.name == old.name && new.grouping == old.grouping)
                    .map(|i| i as u16)
            })
            .collect();
        let states = std::mem::take(&mut self.states);
        self.states = states
            .into_iter()
            .filter_map(|(mut key, mut state)| {
                key.rule = map.get(usize::from(key.rule)).copied().flatten()?;
                // Hashes are seeded per rule set: redo the vhost's, and forget the distinct
                // values (they count once more, for the rest of the bucket's life).
                if let Some(v) = &state.vhost {
                    key.vhost = rules.hash_value(v) | 1;
                }
                state.seen.clear();
                Some((key, state))
            })
            .collect();
        self.rules = rules;
    }

    /// Feeds one record and appends to `out` the sources it makes overflow. Allowlisted
    /// sources are counted but never flagged.
    ///
    /// Kept whole: it runs for every request of `watch`, and the loop over the matched rules
    /// works on fields of `self` borrowed apart once per call (see the comment inside).
    pub fn observe(&mut self, rec: &Record<'_>, allowlist: &Allowlist, out: &mut Vec<Flagged>) {
        let (Some(source), Some(time)) = (rec.source(), rec.time) else {
            self.skipped += 1;
            return;
        };
        self.seen += 1;
        let time_ms = time.saturating_mul(1000);
        self.newest_ms = self.newest_ms.max(time_ms);
        let matched = self
            .rules
            .veto(rec, self.rules.evaluate(rec, &mut self.scratch));
        if matched == 0 {
            return;
        }
        // Borrow fields apart: cloning the Arc here would cost two atomics per line.
        let Live {
            rules,
            states,
            near_on,
            near,
            ..
        } = self;
        for ri in rule_bits(matched) {
            let info = &rules.rules()[ri];
            let net = info.grouping.net_of(source);
            let vhost_name = if info.grouping.per_vhost {
                rec.vhost
            } else {
                None
            };
            let key = Key {
                net,
                vhost: vhost_name.map_or(0, |v| rules.hash_value(v) | 1),
                rule: ri as u16,
            };
            let state = states.entry(key).or_insert_with(|| State {
                bucket: Bucket::default(),
                last_ms: i64::MIN,
                seen: SeenSet::default(),
                first_ms: time_ms,
                events: 0,
                samples: Vec::new(),
                ends: [0; SAMPLES],
                kept: 0,
                vhost: vhost_name.map(Box::from),
                near: false,
            });
            // Time never goes backwards inside one bucket.
            let t = time_ms.max(state.last_ms);
            state.last_ms = t;
            if state.bucket.is_idle(t) {
                // The bucket starts from empty: a new episode.
                state.events = 0;
                state.clear_samples();
                state.first_ms = t;
                state.near = false;
            }
            if state.bucket.is_empty(t) {
                state.seen.clear();
            }
            if let Some(field) = info.distinct {
                let hash = rules.hash_value(field.distinct_value(rec).unwrap_or(b""));
                if !state.seen.insert(hash) {
                    // A value already counted: part of the episode, not a new event.
                    state.events += 1;
                    state.keep_sample(rec.line);
                    continue;
                }
            }
            match state.bucket.offer(t, info.limits) {
                Offer::Blackholed => {}
                Offer::Counted => {
                    state.events += 1;
                    state.keep_sample(rec.line);
                    let half = info.limits.capacity / 2;
                    if *near_on
                        && !state.near
                        && state.bucket.holds_more_than(t, half, info.limits.leak_ms)
                        && !allowlist.overlaps(net)
                    {
                        state.near = true;
                        near.push(NearMiss {
                            source: net,
                            rules: vec![info.name.clone()],
                            first_seen: state.first_ms.div_euclid(1000),
                            last_seen: t.div_euclid(1000),
                            events: state.events,
                        });
                    }
                }
                Offer::Overflow => {
                    state.events += 1;
                    state.keep_sample(rec.line);
                    state.seen.clear();
                    if !allowlist.overlaps(net) {
                        let samples = state.sample_lines();
                        // The episode is attributed to the site of the line that overflowed.
                        let site = state
                            .vhost
                            .as_deref()
                            .or(rec.vhost)
                            .map(|v| (String::from_utf8_lossy(v).into_owned(), state.events));
                        out.push(Flagged {
                            source: net,
                            rules: vec![info.name.clone()],
                            rule_events: vec![(info.name.clone(), state.events)],
                            first_seen: state.first_ms.div_euclid(1000),
                            last_seen: t.div_euclid(1000),
                            events: state.events,
                            overflows: 1,
                            explain: vec![Overflow {
                                rule: info.name.clone(),
                                capacity: info.limits.capacity,
                                leak_ms: info.limits.leak_ms,
                                at: t.div_euclid(1000),
                                times: 1,
                                lines: samples.clone(),
                            }],
                            samples,
                            sites: site.into_iter().collect(),
                            files: Vec::new(),
                        });
                    }
                    state.events = 0;
                    state.clear_samples();
                    state.near = false;
                }
            }
        }
    }

    /// Drops buckets that have leaked empty, with no blackhole running, by the newest log
    /// time less [`SWEEP_SLACK_MS`]: a fresh bucket would behave the same.
    pub fn sweep(&mut self) -> usize {
        if self.newest_ms == i64::MIN {
            return 0;
        }
        let now = self.newest_ms.saturating_sub(SWEEP_SLACK_MS);
        let before = self.states.len();
        self.states.retain(|_, s| !s.bucket.is_idle(now));
        if self.states.capacity() > 4 * self.states.len().max(1024) {
            self.states.shrink_to_fit();
        }
        before - self.states.len()
    }

    /// Drops the buckets of every source `allowlist` covers or overlaps (the allowlist grew
    /// while watching): their counts must not linger, and they could never flag anyway.
    /// Returns how many were dropped.
    pub fn forget_allowed(&mut self, allowlist: &Allowlist) -> usize {
        let before = self.states.len();
        self.states.retain(|key, _| !allowlist.overlaps(key.net));
        before - self.states.len()
    }
}

/// Folds flags for the same source (several rules overflowing on one batch) into one,
/// rules sorted. Watch's flags are recent: one source's are one episode.
pub fn fold(mut flags: Vec<Flagged>) -> Vec<Flagged> {
    flags.sort_by_key(|f| f.source);
    let mut out: Vec<Flagged> = Vec::with_capacity(flags.len());
    for f in flags {
        match out.last_mut() {
            Some(last) if last.source == f.source => {
                last.rules.extend(f.rules);
                last.rules.sort();
                last.rules.dedup();
                for (rule, n) in f.rule_events {
                    match last.rule_events.iter_mut().find(|(r, _)| *r == rule) {
                        Some((_, m)) => *m += n,
                        None => last.rule_events.push((rule, n)),
                    }
                }
                last.rule_events.sort();
                last.first_seen = last.first_seen.min(f.first_seen);
                last.last_seen = last.last_seen.max(f.last_seen);
                // A line can count for several rules: the busiest rule's count is the
                // nearest to lines without knowing which lines they shared.
                last.events = last.events.max(f.events);
                last.overflows += f.overflows;
                for s in f.samples {
                    if last.samples.len() < SAMPLES && !last.samples.contains(&s) {
                        last.samples.push(s);
                    }
                }
                for (site, n) in f.sites {
                    match last.sites.iter_mut().find(|(s, _)| *s == site) {
                        Some((_, m)) => *m = (*m).max(n),
                        None => last.sites.push((site, n)),
                    }
                }
                last.sites.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                last.explain.extend(f.explain);
            }
            _ => out.push(f),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rule::{Field, Filter, Rule, RuleSet};
    use crate::detect::{Collector, builtin_rules};
    use crate::format::{Format, TimeCache};

    fn compiled(set: &RuleSet) -> Arc<CompiledRules> {
        Arc::new(CompiledRules::new(set).expect("rules compile"))
    }

    fn one_rule(rule: Rule) -> Arc<CompiledRules> {
        let mut set = RuleSet::new();
        set.insert(rule);
        compiled(&set)
    }

    fn any_rule(capacity: u32, leak_ms: i64) -> Rule {
        Rule::new("any", "", Filter::default(), capacity, leak_ms)
    }

    fn line(ip: &str, secs: u32, target: &str, status: u16) -> String {
        let (m, s) = (secs / 60, secs % 60);
        format!(
            "{ip} - - [15/Nov/2026:10:{m:02}:{s:02} +0000] \"GET {target} HTTP/1.1\" {status} 5 \"-\" \"x\""
        )
    }

    fn feed(live: &mut Live, lines: &[String], allow: &Allowlist) -> Vec<Flagged> {
        let format = Format::preset("combined").expect("preset");
        let mut cache = TimeCache::new();
        let mut out = Vec::new();
        for l in lines {
            let rec = format.parse(l.as_bytes(), &mut cache).expect("parses");
            live.observe(&rec, allow, &mut out);
        }
        out
    }

    #[test]
    fn a_bucket_past_half_is_one_near_miss_per_episode() {
        let allow = Allowlist::exact(vec![]);
        let lines: Vec<String> = (0..9).map(|i| line("192.0.2.1", i, "/", 200)).collect();
        let mut off = Live::new(one_rule(any_rule(10, 60_000)));
        assert!(feed(&mut off, &lines, &allow).is_empty());
        assert!(
            off.take_near_misses().is_empty(),
            "reported only when asked"
        );
        let mut live = Live::new(one_rule(any_rule(10, 60_000)));
        live.report_near_misses();
        assert!(feed(&mut live, &lines[..5], &allow).is_empty());
        assert!(
            live.take_near_misses().is_empty(),
            "5 of 10 is not past half"
        );
        assert!(feed(&mut live, &lines[5..], &allow).is_empty());
        let near = live.take_near_misses();
        assert_eq!(near.len(), 1, "{near:?}");
        assert_eq!(near[0].source.to_string(), "192.0.2.1/32");
        assert_eq!(
            (near[0].events, near[0].rules.as_slice()),
            (6, &["any".to_string()][..])
        );
        // After the bucket leaked empty, a new episode can be a near miss again.
        let later: Vec<String> = (0..6)
            .map(|i| line("192.0.2.1", 1_800 + i, "/", 200))
            .collect();
        assert!(feed(&mut live, &later, &allow).is_empty());
        assert_eq!(live.take_near_misses().len(), 1);
    }

    #[test]
    fn overflow_flags_at_once_with_the_episode() {
        let mut live = Live::new(one_rule(any_rule(3, 60_000)));
        let allow = Allowlist::exact(vec![]);
        let lines: Vec<String> = (0..3).map(|i| line("192.0.2.1", i, "/", 200)).collect();
        assert!(feed(&mut live, &lines, &allow).is_empty());
        let got = feed(&mut live, &[line("192.0.2.1", 5, "/x", 200)], &allow);
        assert_eq!(got.len(), 1, "{got:?}");
        let f = &got[0];
        assert_eq!(f.source.to_string(), "192.0.2.1/32");
        assert_eq!(f.rules, ["any"]);
        assert_eq!(f.events, 4);
        assert_eq!(f.last_seen - f.first_seen, 5);
        assert_eq!(f.samples.len(), SAMPLES);
        // The blackhole keeps the next minute quiet.
        let more: Vec<String> = (6..30).map(|i| line("192.0.2.1", i, "/", 200)).collect();
        assert!(feed(&mut live, &more, &allow).is_empty());
    }

    #[test]
    fn time_going_backwards_counts_at_the_last_time() {
        // Capacity 1, leak 10 s: two events 10 s apart fit; an older one after them does not
        // go back in time, so it finds the bucket full.
        let mut live = Live::new(one_rule(any_rule(1, 10_000)));
        let allow = Allowlist::exact(vec![]);
        let lines = [
            line("192.0.2.1", 0, "/", 200),
            line("192.0.2.1", 10, "/", 200),
        ];
        assert!(feed(&mut live, &lines, &allow).is_empty());
        let got = feed(&mut live, &[line("192.0.2.1", 2, "/", 200)], &allow);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].last_seen % 60, 10);
    }

    #[test]
    fn allowlisted_sources_are_never_flagged() {
        let mut live = Live::new(one_rule(any_rule(0, 1_000)));
        let allow = Allowlist::new(vec![]);
        assert!(feed(&mut live, &[line("127.0.0.1", 0, "/", 200)], &allow).is_empty());
        assert_eq!(
            feed(&mut live, &[line("192.0.2.9", 0, "/", 200)], &allow).len(),
            1
        );
    }

    #[test]
    fn forgetting_allowed_sources_drops_only_their_buckets() {
        let mut live = Live::new(one_rule(any_rule(2, 60_000)));
        let none = Allowlist::exact(vec![]);
        let lines: Vec<String> = ["192.0.2.1", "192.0.2.2", "198.51.100.1"]
            .iter()
            .flat_map(|ip| [line(ip, 0, "/", 200), line(ip, 1, "/", 200)])
            .collect();
        assert!(feed(&mut live, &lines, &none).is_empty());
        assert_eq!(live.buckets(), 3);
        let allow = Allowlist::exact(vec!["192.0.2.0/30".parse().expect("net")]);
        assert_eq!(live.forget_allowed(&allow), 2);
        assert_eq!(live.buckets(), 1);
        // The kept bucket still holds its two events: a third overflows it.
        let got = feed(&mut live, &[line("198.51.100.1", 2, "/", 200)], &none);
        assert_eq!(got.len(), 1, "{got:?}");
        // A forgotten one starts from empty.
        assert!(feed(&mut live, &[line("192.0.2.1", 2, "/", 200)], &none).is_empty());
    }

    #[test]
    fn sweep_drops_idle_buckets_only() {
        let mut live = Live::new(one_rule(any_rule(5, 1_000)));
        let allow = Allowlist::exact(vec![]);
        let lines: Vec<String> = (0..100)
            .map(|i| line(&format!("192.0.2.{i}"), 0, "/", 200))
            .collect();
        feed(&mut live, &lines, &allow);
        assert_eq!(live.buckets(), 100);
        assert_eq!(live.sweep(), 0);
        // 30 s later one source is still busy; the rest leaked empty long ago.
        feed(&mut live, &[line("192.0.2.1", 30, "/", 200)], &allow);
        assert_eq!(live.sweep(), 99);
        assert_eq!(live.buckets(), 1);
    }

    #[test]
    fn distinct_values_count_once() {
        let rules = one_rule(any_rule(2, 60_000).distinct(Field::Path));
        let mut live = Live::new(rules);
        let allow = Allowlist::exact(vec![]);
        let same: Vec<String> = (0..20).map(|_| line("192.0.2.1", 0, "/a", 404)).collect();
        assert!(feed(&mut live, &same, &allow).is_empty());
        assert!(feed(&mut live, &[line("192.0.2.1", 1, "/b", 404)], &allow).is_empty());
        assert_eq!(
            feed(&mut live, &[line("192.0.2.1", 1, "/c", 404)], &allow).len(),
            1
        );
    }

    #[test]
    fn reload_keeps_buckets_of_rules_that_stay() {
        let mut set = RuleSet::new();
        set.insert(any_rule(2, 60_000));
        let mut live = Live::new(compiled(&set));
        let allow = Allowlist::exact(vec![]);
        let two: Vec<String> = (0..2).map(|i| line("192.0.2.1", i, "/", 200)).collect();
        feed(&mut live, &two, &allow);
        let mut other = Rule::new("other", "", Filter::default(), 100, 1_000);
        other.grouping.v4_prefix = 24;
        set.insert(other);
        live.replace_rules(compiled(&set));
        let got = feed(&mut live, &[line("192.0.2.1", 3, "/", 200)], &allow);
        assert_eq!(got.len(), 1, "the two earlier events still count: {got:?}");
    }

    /// On a stream in time order, a source flagged by the batch engine is flagged live by
    /// the same rules, and the live engine flags nothing the batch engine does not.
    #[test]
    fn in_order_stream_flags_what_the_batch_engine_flags() {
        let rules = compiled(&builtin_rules());
        let mut lines = Vec::new();
        for s in 0..600u32 {
            lines.push(line("198.51.100.1", s / 10, "/index.html", 200));
            if s % 7 == 0 {
                lines.push(line("192.0.2.5", s / 10, &format!("/wp-{s}.php"), 404));
            }
            if s % 3 == 0 {
                lines.push(line("192.0.2.6", s / 10, "/.env", 404));
            }
        }
        let allow = Allowlist::exact(vec![]);
        let format = Format::preset("combined").expect("preset");
        let mut cache = TimeCache::new();
        let mut batch = Collector::new(Arc::clone(&rules));
        for (i, l) in lines.iter().enumerate() {
            batch.observe(
                &format.parse(l.as_bytes(), &mut cache).expect("parses"),
                i as u64,
            );
        }
        let want = batch.finish(&allow).expect("finish");
        let mut live = Live::new(rules);
        let got = fold(feed(&mut live, &lines, &allow));
        assert!(!want.is_empty());
        let key = |f: &Flagged| (f.source, f.rules.clone());
        let mut got_keys: Vec<_> = got.iter().map(key).collect();
        got_keys.dedup();
        let want_keys: Vec<_> = want.iter().map(key).collect();
        assert_eq!(got_keys, want_keys);
    }
}

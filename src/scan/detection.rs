//! Detection as the jobs run it (`scan` here, `watch` too): the compiled rules, the
//! allowlist a run applies (the configured networks, loopback unless turned off, and the
//! store's persistent allowlist, re-read when `logward allow` changes it), GeoIP/ASN
//! enrichment, the store, and the step that turns flagged episodes into store entries.
//! [`DetectVisitor`] feeds a pass's records to a [`Collector`], leaving out what the store
//! has already counted ([`super::counted`]).
//!
//! It does not read options or files of settings: the binary builds the parts and hands
//! them over.

use std::sync::Arc;

use ipnet::IpNet;

use super::{At, Visitor};
use crate::detect::{Allowlist, Collector, CompiledRules, Flagged, NearMiss, SampleLine};
use crate::format::Record;
use crate::geo::Geo;
use crate::store::{Explained, NewFlag, NewNearMiss, Sample, Store, StoreError};

/// Everything detection needs for one run.
pub struct Detection {
    /// The rules to run.
    pub rules: Arc<CompiledRules>,
    /// The configured networks, loopback unless turned off, and the store's allowlist.
    pub allowlist: Allowlist,
    /// GeoIP databases for the flagged sources, when configured.
    pub geo: Geo,
    /// The store flags are recorded in; `None` to only print them.
    pub store: Option<Store>,
    /// Read files again from their start even where the store counted them already
    /// (`--rescan`).
    pub rescan: bool,
    /// The networks of `--allow`, `--allow-file` and the config, and whether loopback is
    /// allowed: what the store's allowlist is merged into when it changes.
    configured_allow: Vec<IpNet>,
    allow_loopback: bool,
    /// The store's allowlist generation last read (see `Store::allowlist_if_changed`).
    allow_generation: i64,
}

impl Detection {
    /// Detection with an empty allowlist: [`Detection::refresh_allowlist`] (with a store)
    /// or [`Detection::set_stored_allowlist`] (without) builds it.
    pub fn new(
        rules: Arc<CompiledRules>,
        configured_allow: Vec<IpNet>,
        allow_loopback: bool,
        geo: Geo,
        store: Option<Store>,
        rescan: bool,
    ) -> Detection {
        Detection {
            rules,
            allowlist: Allowlist::default(),
            geo,
            store,
            rescan,
            configured_allow,
            allow_loopback,
            allow_generation: i64::MIN,
        }
    }

    /// Rebuilds the allowlist from the configured networks and `stored`, the store's.
    pub fn set_stored_allowlist(&mut self, stored: Vec<IpNet>) {
        let mut nets = self.configured_allow.clone();
        nets.extend(stored);
        self.allowlist = if self.allow_loopback {
            Allowlist::new(nets)
        } else {
            Allowlist::exact(nets)
        };
    }

    /// Re-reads the allowlist of this run's store when it changed since it was last read;
    /// true when it did.
    pub fn refresh_allowlist(&mut self) -> Result<bool, StoreError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let changed = store.allowlist_if_changed(&mut self.allow_generation)?;
        Ok(self.apply_stored(changed))
    }

    /// [`Detection::refresh_allowlist`] from another connection to the store (`watch`
    /// hands its own to the recorder thread).
    pub fn refresh_allowlist_from(&mut self, store: &Store) -> Result<bool, StoreError> {
        let changed = store.allowlist_if_changed(&mut self.allow_generation)?;
        Ok(self.apply_stored(changed))
    }

    fn apply_stored(&mut self, changed: Option<Vec<IpNet>>) -> bool {
        match changed {
            Some(nets) => {
                self.set_stored_allowlist(nets);
                true
            }
            None => false,
        }
    }

    /// Leaves out of `flagged` the sources an `allow add` allowed while the logs were read
    /// (a long scan), so they are not banned again on the way to the store.
    pub fn drop_newly_allowed(&mut self, flagged: &mut Vec<Flagged>) -> Result<(), StoreError> {
        if self.refresh_allowlist()? {
            flagged.retain(|f| !self.allowlist.overlaps(f.source));
        }
        Ok(())
    }

    /// Flagged episodes as store entries, enriched with country and AS. `file_name` names
    /// an input file by its index in the run (for the provenance of samples).
    pub fn to_new_flags(
        &self,
        flagged: &[Flagged],
        file_name: &dyn Fn(usize) -> Option<String>,
    ) -> Vec<NewFlag> {
        let place = |s: &SampleLine| {
            let name = file_name(s.file?)?;
            Some(match s.line {
                Some(line) => format!("{name}:{line}"),
                None => name,
            })
        };
        let sample = |s: &SampleLine| Sample::new(place(s), &s.text);
        flagged
            .iter()
            .map(|f| {
                let info = self.geo.lookup(f.source.network());
                NewFlag {
                    source: f.source,
                    rules: f.rules.clone(),
                    rule_events: f.rule_events.clone(),
                    first_seen: f.first_seen,
                    last_seen: f.last_seen,
                    events: f.events,
                    samples: f.samples.iter().map(sample).collect(),
                    sites: f.sites.clone(),
                    files: f
                        .files
                        .iter()
                        .filter_map(|&(i, n)| Some((file_name(i)?, n)))
                        .collect(),
                    explain: f
                        .explain
                        .iter()
                        .map(|x| Explained {
                            rule: x.rule.clone(),
                            capacity: x.capacity,
                            leak_ms: x.leak_ms,
                            at: x.at,
                            times: x.times,
                            lines: x.lines.iter().map(sample).collect(),
                        })
                        .collect(),
                    country: info.country,
                    asn: info.asn,
                    as_org: info.as_org,
                }
            })
            .collect()
    }
}

/// Near misses as the store records them.
pub fn to_new_near_misses(found: Vec<NearMiss>) -> Vec<NewNearMiss> {
    found
        .into_iter()
        .map(|n| NewNearMiss {
            source: n.source,
            rules: n.rules,
            first_seen: n.first_seen,
            last_seen: n.last_seen,
            events: n.events,
        })
        .collect()
}

/// A scan visitor that feeds records to a detection collector. Files the store has already
/// counted whole are skipped up to where they were counted; the old part of a live log that
/// grew is fed, and the collector is told which lines it holds before it finishes
/// ([`Collector::set_counted`]).
pub struct DetectVisitor {
    /// The collector fed.
    pub collector: Collector,
    /// Per input file: the byte offset before which its lines are not fed at all (0: feed
    /// every line; `u64::MAX`: none). See [`super::AlreadyCounted::skip_offsets`].
    pub skip: Arc<Vec<u64>>,
}

impl DetectVisitor {
    #[inline]
    fn skipped(&self, file: usize, offset: u64) -> bool {
        self.skip.get(file).is_some_and(|&before| offset < before)
    }
}

impl Visitor for DetectVisitor {
    #[inline]
    fn record(&mut self, order: u64, rec: &Record<'_>) {
        let (file, offset) = At::split_order(order);
        if self.skipped(file, offset) {
            return;
        }
        self.collector.observe(rec, order);
    }

    /// Lines of plain files are read back for samples at the end, not copied.
    #[inline]
    fn record_at(&mut self, at: At, rec: &Record<'_>) {
        if self.skipped(at.file, at.offset) {
            return;
        }
        if at.readable {
            self.collector.observe_readable(rec, at.order());
        } else {
            self.collector.observe(rec, at.order());
        }
    }

    fn merge(&mut self, other: DetectVisitor) {
        self.collector.merge(other.collector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::builtin_rules;

    fn detection(configured: &[&str], loopback: bool) -> Detection {
        let rules = Arc::new(CompiledRules::new(&builtin_rules()).unwrap());
        let nets = configured.iter().map(|n| n.parse().unwrap()).collect();
        let geo = Geo::open(None, None).unwrap();
        Detection::new(rules, nets, loopback, geo, None, false)
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn the_allowlist_is_the_configured_one_plus_the_stores() {
        let mut d = detection(&["198.51.100.0/24"], false);
        d.set_stored_allowlist(vec![net("203.0.113.9/32")]);
        assert!(d.allowlist.overlaps(net("198.51.100.7/32")));
        assert!(d.allowlist.overlaps(net("203.0.113.9/32")));
        assert!(!d.allowlist.overlaps(net("127.0.0.1/32")));
        // The store's list replaces the store's part only.
        d.set_stored_allowlist(Vec::new());
        assert!(d.allowlist.overlaps(net("198.51.100.7/32")));
        assert!(!d.allowlist.overlaps(net("203.0.113.9/32")));
        let mut d = detection(&[], true);
        d.set_stored_allowlist(Vec::new());
        assert!(d.allowlist.overlaps(net("127.0.0.1/32")));
    }

    #[test]
    fn a_source_allowed_in_the_store_during_a_run_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logward.db");
        let mut d = detection(&[], false);
        d.store = Some(Store::open(&path).unwrap());
        assert!(d.refresh_allowlist().unwrap());
        let flag = |source: &str| Flagged {
            source: net(source),
            rules: vec!["http-flood".into()],
            rule_events: Vec::new(),
            first_seen: 1_800_000_000,
            last_seen: 1_800_000_060,
            events: 100,
            overflows: 1,
            samples: Vec::new(),
            sites: Vec::new(),
            files: Vec::new(),
            explain: Vec::new(),
        };
        let mut flagged = vec![flag("192.0.2.1/32"), flag("192.0.2.2/32")];
        d.drop_newly_allowed(&mut flagged).unwrap();
        assert_eq!(flagged.len(), 2, "no change, nothing dropped");
        let mut other = Store::open(&path).unwrap();
        other
            .allow_add(&[net("192.0.2.2/32")], "a partner", "test", 1_800_000_000)
            .unwrap();
        d.drop_newly_allowed(&mut flagged).unwrap();
        let left: Vec<IpNet> = flagged.iter().map(|f| f.source).collect();
        assert_eq!(left, vec![net("192.0.2.1/32")]);
    }

    #[test]
    fn skipped_lines_are_those_before_the_counted_offset() {
        let rules = Arc::new(CompiledRules::new(&builtin_rules()).unwrap());
        let v = DetectVisitor {
            collector: Collector::new(rules),
            skip: Arc::new(vec![0, 100, u64::MAX]),
        };
        assert!(!v.skipped(0, 0));
        assert!(v.skipped(1, 99));
        assert!(!v.skipped(1, 100));
        assert!(v.skipped(2, 1 << 40));
        assert!(!v.skipped(3, 0), "a file beyond the list is fed");
    }
}

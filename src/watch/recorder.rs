//! What happens to a flag once the engine says "overflow". On the reading thread, the
//! [`Flagger`] folds a batch, leaves out repeats (a source flagged again while its ban
//! runs) and enriches the rest; it hands them to the recorder thread ([`spawn`]), which
//! writes them to the store at once (a commit waits for the disk, which must not hold up
//! reading), logs each with its ban and runs the actions. The recorder also takes sources
//! back out of the actions' set when the store records an erasure or allows them.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;

use ipnet::IpNet;

use super::Log;
use super::actions::{Actions, FlagEvent};
use crate::detect::live;
use crate::detect::{Allowlist, Flagged, NearMiss};
use crate::error::chain;
use crate::format::time::rfc3339;
use crate::plural::count;
use crate::scan::Detection;
use crate::scan::to_new_near_misses;
use crate::store::{BanPolicy, Filter, NewFlag, NewNearMiss, Store, Target, net};
use crate::timefmt::unix_now;

/// What the reading loop hands the recorder.
enum ToRecorder {
    Flags(Vec<NewFlag>),
    /// Near misses to record for fleet mode (see `detect::NearMiss`).
    NearMisses(Vec<NewNearMiss>),
    /// The store recorded an erasure: sources this run banned that the store no longer
    /// holds leave the nftables set.
    Erased,
    /// The store's allowlist changed: sources this run banned that it now allows leave the
    /// nftables set.
    AllowlistChanged,
}

/// The reading thread's side of flagging: folding, leaving out repeats, enrichment; the
/// store and the actions are the recorder's.
pub(super) struct Flagger {
    recorder: Option<mpsc::Sender<ToRecorder>>,
    /// Sources flagged by this run, and when their first ban ends (log time): a source that
    /// overflows again while banned is not flagged again (its ban would double each time).
    banned: HashMap<IpNet, i64>,
    /// Sources flagged, and overflows left out as repeats.
    pub(super) flagged: u64,
    pub(super) repeats: u64,
    /// Flags per rule, for the metrics.
    pub(super) rules: crate::metrics::RunCounts,
    ban: BanPolicy,
}

impl Flagger {
    /// Folds `flags`, leaves out repeats and hands the rest to the recorder.
    pub(super) fn handle(&mut self, detection: &Detection, flags: Vec<Flagged>) {
        let flags: Vec<Flagged> = live::fold(flags)
            .into_iter()
            .filter(|f| {
                let repeat = self.banned.get(&f.source).is_some_and(|&e| f.last_seen < e);
                self.repeats += u64::from(repeat);
                !repeat
            })
            .collect();
        if flags.is_empty() {
            return;
        }
        for f in &flags {
            self.banned
                .insert(f.source, f.last_seen.saturating_add(self.ban.ban(1)));
        }
        self.flagged += flags.len() as u64;
        let new = detection.to_new_flags(&flags, &|_| None);
        self.rules.count_flags(&new);
        self.send(ToRecorder::Flags(new));
    }

    /// Hands near misses to the recorder, which keeps them in the store for fleet mode.
    pub(super) fn near_misses(&mut self, found: Vec<NearMiss>) {
        self.send(ToRecorder::NearMisses(to_new_near_misses(found)));
    }

    /// The store recorded an erasure: forgets every source this run banned, and has the
    /// recorder take those the store no longer holds out of the actions' set.
    pub(super) fn erased(&mut self) {
        self.banned.clear();
        self.send(ToRecorder::Erased);
    }

    /// The store's allowlist changed to `allow`: forgets the sources it allows, and has the
    /// recorder take them out of the actions' set.
    pub(super) fn allowlist_changed(&mut self, allow: &Allowlist) {
        self.banned.retain(|source, _| !allow.overlaps(*source));
        self.send(ToRecorder::AllowlistChanged);
    }

    /// Forgets the bans that end before `newest` (log time): their sources may be flagged
    /// again.
    pub(super) fn expire(&mut self, newest: i64) {
        self.banned.retain(|_, expires| *expires > newest);
    }

    /// Lets the recorder finish what it was handed and stop.
    pub(super) fn close(&mut self) {
        self.recorder = None;
    }

    fn send(&self, msg: ToRecorder) {
        if let Some(tx) = &self.recorder {
            let _ = tx.send(msg);
        }
    }
}

/// Starts the recorder thread with `store` (none: flags are only logged and acted on) and
/// `actions`; returns the reading thread's side and the thread, which ends once the
/// flagger is closed and what it was handed is recorded.
pub(super) fn spawn(
    store: Option<Store>,
    actions: Actions,
    ban: BanPolicy,
    log: Log,
) -> (Flagger, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || record(store, actions, ban, rx, &log));
    let flagger = Flagger {
        recorder: Some(tx),
        banned: HashMap::new(),
        flagged: 0,
        repeats: 0,
        rules: crate::metrics::RunCounts::default(),
        ban,
    };
    (flagger, thread)
}

/// The recorder's copy of the store's allowlist, so a flag made just before an `allow add`
/// reached the reading loop is not banned again on its way to the store.
struct StoredAllowlist {
    nets: Allowlist,
    generation: i64,
}

impl StoredAllowlist {
    /// Re-reads the list when its generation moved; true when it did.
    fn refresh(&mut self, store: &Store, log: &Log) -> bool {
        match store.allowlist_if_changed(&mut self.generation) {
            Ok(Some(nets)) => {
                self.nets = Allowlist::exact(nets);
                true
            }
            Ok(None) => false,
            Err(e) => {
                log(&format!("error: reading the allowlist: {}", chain(&e)));
                false
            }
        }
    }
}

/// The recorder thread: writes flags to the store, logs them with their ban, and hands
/// them to the actions.
fn record(
    store: Option<Store>,
    actions: Actions,
    ban: BanPolicy,
    rx: mpsc::Receiver<ToRecorder>,
    log: &Log,
) {
    let mut r = Recorder {
        store,
        actions,
        ban,
        log,
        sent: HashMap::new(),
        allowed: StoredAllowlist {
            nets: Allowlist::exact(Vec::new()),
            generation: i64::MIN,
        },
    };
    if let Some(store) = &r.store {
        r.allowed.refresh(store, log);
    }
    for msg in rx {
        // Checked before every batch too: the reading loop learns of a change only at its
        // next check, and may have flagged an allowed source meanwhile.
        r.refresh_allowlist();
        match msg {
            ToRecorder::Flags(new) => r.flags(new),
            ToRecorder::NearMisses(new) => r.near_misses(new),
            ToRecorder::AllowlistChanged => {}
            ToRecorder::Erased => r.erased(),
        }
    }
    r.actions.finish();
}

/// The state of the recorder thread.
struct Recorder<'l> {
    store: Option<Store>,
    actions: Actions,
    ban: BanPolicy,
    log: &'l Log,
    /// The sources this run handed to the actions with their ban's end, so an erasure can
    /// take back those still banned; ended bans are dropped as flags come, so it stays as
    /// small as the set of active bans.
    sent: HashMap<IpNet, i64>,
    allowed: StoredAllowlist,
}

impl Recorder<'_> {
    /// Reads the store's allowlist again if it changed, and takes newly allowed sources out
    /// of the actions' set.
    fn refresh_allowlist(&mut self) {
        let log = self.log;
        let changed = self
            .store
            .as_ref()
            .is_some_and(|s| self.allowed.refresh(s, log));
        if !changed {
            return;
        }
        let (allowed, actions) = (&self.allowed, &mut self.actions);
        self.sent.retain(|source, _| {
            let allow = allowed.nets.overlaps(*source);
            if allow {
                actions.unban(*source);
                log(&format!(
                    "allowlisted: {} leaves the actions' set",
                    net::display(*source)
                ));
            }
            !allow
        });
    }

    /// An erasure was recorded: sources the store no longer holds leave the actions' set.
    fn erased(&mut self) {
        let mut removed = 0u64;
        if let Some(store) = &self.store {
            let actions = &mut self.actions;
            self.sent.retain(|source, _| {
                let filter = Filter {
                    targets: vec![Target::Net(*source)],
                    ..Filter::default()
                };
                let kept = match store.query(&filter) {
                    Ok(entries) => entries.iter().any(|e| e.source == *source),
                    Err(_) => true,
                };
                if !kept {
                    actions.unban(*source);
                    removed += 1;
                }
                kept
            });
        }
        // The count only: the journal must not learn the erased address.
        (self.log)(&format!(
            "an erasure was recorded in the store: {} removed from the actions' set",
            count(removed, "source", "sources")
        ));
    }

    /// Records near misses (but allowed sources) in the store; they are not logged or
    /// acted on: only the fleet counts them.
    fn near_misses(&mut self, mut new: Vec<NewNearMiss>) {
        new.retain(|n| !self.allowed.nets.overlaps(net::canonical(n.source)));
        if let (Some(store), false) = (&mut self.store, new.is_empty()) {
            if let Err(e) = store.record_near_misses(&new, unix_now(), crate::store::Recording::Add)
            {
                (self.log)(&format!("error: {}", chain(&e)));
            }
        }
    }

    /// Records new flags (but allowed sources), logs each with its ban and hands it to the
    /// actions.
    fn flags(&mut self, mut new: Vec<NewFlag>) {
        new.retain(|f| !self.allowed.nets.overlaps(net::canonical(f.source)));
        if new.is_empty() {
            return;
        }
        let mut expiry: HashMap<IpNet, i64> = HashMap::new();
        if let Some(store) = &mut self.store {
            // The bans as recorded come back from the write itself: a lookup of 1000+
            // sources built one OR term per source, which SQLite refused ("Expression
            // tree is too large"), and the log fell back to the first ban.
            match store.record_flags_at(&new, unix_now(), crate::store::Recording::Add) {
                Ok(recorded) => expiry.extend(recorded),
                Err(e) => (self.log)(&format!("error: {}", chain(&e))),
            }
        }
        let now = unix_now();
        self.sent.retain(|_, expires| *expires > now);
        for f in &new {
            let source = net::canonical(f.source);
            let expires = expiry
                .get(&source)
                .copied()
                .unwrap_or_else(|| f.last_seen.saturating_add(self.ban.ban(1)));
            let geo = f.geo_label().map(|g| format!(" [{g}]")).unwrap_or_default();
            (self.log)(&format!(
                "flagged {} by {} ({} events, {} .. {}), banned until {}{geo}",
                net::display(source),
                f.rules.join(","),
                f.events,
                rfc3339(f.first_seen),
                rfc3339(f.last_seen),
                rfc3339(expires),
            ));
            self.sent.insert(source, expires);
            self.actions.flag(
                &FlagEvent {
                    source,
                    rules: f.rules.clone(),
                    expires,
                    events: f.events,
                },
                now,
            );
        }
    }
}

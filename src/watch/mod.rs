//! The job of `logward watch`: a [`Watcher`] follows live logs (`input::follow`), parses
//! their new lines (`reader`) and feeds them to the streaming engine (`detect::live`) with
//! the same rules, allowlist, enrichment and store as `scan`, and hands new flags to a
//! recorder thread (`recorder`) that writes them to the store at once and runs the actions
//! (`actions`, `nft`), so neither a disk commit nor a command holds up reading. Once a
//! second it checks the store for an erasure or an allowlist change (`logward allow`) and
//! lets go of the sources concerned; it saves where it stopped (`positions`).
//!
//! One round of all that is [`Watcher::poll`]: the caller decides how often to run it and
//! when to stop (the command line sleeps between rounds and handles signals). It prints
//! nothing: what happens is said through a [`Log`], which the command line prints on
//! stderr and tests collect.

pub mod actions;
pub mod nft;
mod positions;
mod reader;
mod recorder;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::detect::Flagged;
use crate::detect::live::Live;
use crate::error::chain;
use crate::format::FormatSpec;
use crate::input::follow::Follower;
use crate::plural::count;
use crate::scan::Detection;
use crate::store::{Store, StoreError};
use crate::timefmt::unix_now;
use actions::{ActionSettings, Actions};
use reader::Reader;
use recorder::Flagger;

/// Where the watch says what happens: one line per event, without the program's name
/// (`flagged 192.0.2.7 by http-flood ...`, `warning: ...`, `error: ...`). Called from
/// the reading thread and from the threads that record flags and run actions.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A round that read this much or more did not catch up with the files: the next one
/// should start at once rather than after the interval.
pub const BUSY: u64 = 1 << 20;

/// Buckets held before a sweep is due whatever the time since the last one.
const SWEEP_AT: usize = 1 << 16;

/// How often the store is checked for an erasure or an allowlist change, and the buckets
/// swept.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How often the saved positions are synced to disk.
const SYNC_EVERY: Duration = Duration::from_secs(5);

/// What a watch follows and how, besides its detection.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Log files, directories, or glob patterns (see `input::follow`).
    pub paths: Vec<String>,
    /// The format of every file, or auto (per file, from its first lines).
    pub format: FormatSpec,
    /// Read files found at start from their beginning, not their end (files known from
    /// the saved positions resume where they stopped).
    pub from_start: bool,
    /// Where the positions are kept (`positions.json` in the state directory).
    pub positions: PathBuf,
    /// Where to write line counts per file whenever the positions are saved.
    pub stats_file: Option<PathBuf>,
    /// How often to log a status line; zero: never.
    pub status_every: Duration,
    /// What to run for each new flag.
    pub actions: ActionSettings,
    /// Record near misses in the store, for a fleet that counts them (`min_hosts` 2 or
    /// more; see `detect::NearMiss`).
    pub near_misses: bool,
}

/// What one [`Watcher::poll`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Round {
    /// Bytes read from the followed files.
    pub bytes: u64,
}

impl Round {
    /// The round read less than [`BUSY`]: the files are caught up, the caller may wait.
    pub fn caught_up(&self) -> bool {
        self.bytes < BUSY
    }
}

/// What a watch did, once finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Lines read (empty lines left out).
    pub lines: u64,
    /// Lines that did not parse.
    pub malformed: u64,
    /// Sources flagged.
    pub flagged: u64,
    /// Overflows of a source already banned by this run, left out.
    pub repeats: u64,
}

/// A running watch: the followed files, the engine, the recorder thread and the actions.
pub struct Watcher {
    settings: Settings,
    log: Log,
    follower: Follower,
    reader: Reader,
    live: Live,
    /// The run's detection; its store went to the recorder thread.
    detection: Detection,
    /// Flags made by the engine and not handed to the recorder yet.
    pending: Vec<Flagged>,
    flagger: Flagger,
    recorder: JoinHandle<()>,
    /// A second connection to the store, to poll the erasure and allowlist generations
    /// from the reading thread.
    polled: Option<Store>,
    erasure_seen: i64,
    sweep_at: usize,
    started: Instant,
    last_status: (Instant, u64),
    last_check: Instant,
    last_sync: Instant,
    /// Positions moved since they were last saved.
    dirty: bool,
    /// Bytes read from the followed files.
    bytes: u64,
}

impl Watcher {
    /// Starts a watch: loads the saved positions, opens the followed files' follower, and
    /// starts the recorder thread with `detection`'s store and the actions. Nothing is read
    /// before the first [`Watcher::poll`].
    pub fn start(
        settings: Settings,
        mut detection: Detection,
        log: Log,
    ) -> Result<Self, StoreError> {
        let saved = positions::load(&settings.positions, &log);
        let ban = detection
            .store
            .as_ref()
            .map(|s| s.ban_policy())
            .unwrap_or_default();
        let follower = Follower::new(settings.paths.clone(), saved, settings.from_start);
        let mut live = Live::new(detection.rules.clone());
        if settings.near_misses {
            live.report_near_misses();
        }
        let store = detection.store.take();
        let polled = match &store {
            Some(s) => Some(Store::open(s.path())?),
            None => None,
        };
        let erasure_seen = polled
            .as_ref()
            .and_then(|s| s.erasure_generation().ok())
            .unwrap_or(0);
        let actions = Actions::start(settings.actions.clone(), &log);
        let (flagger, recorder) = recorder::spawn(store, actions, ban, Arc::clone(&log));
        let now = Instant::now();
        Ok(Watcher {
            reader: Reader::new(settings.format.clone()),
            settings,
            log,
            follower,
            live,
            detection,
            pending: Vec::new(),
            flagger,
            recorder,
            polled,
            erasure_seen,
            sweep_at: SWEEP_AT,
            started: now,
            last_status: (now, 0),
            last_check: now,
            last_sync: now,
            dirty: true,
            bytes: 0,
        })
    }

    /// One round: reads the new lines of the followed files and feeds them to detection,
    /// hands new flags to the recorder (which stores them and runs the actions), logs
    /// what happened to the files; once a second checks the store ([`Watcher::check`]);
    /// saves the positions when they moved, and logs a status line when one is due.
    pub fn poll(&mut self) -> Round {
        let Watcher {
            follower,
            reader,
            live,
            detection,
            pending,
            flagger,
            sweep_at,
            log,
            ..
        } = self;
        let read = follower.poll(&mut |block| {
            reader.read(block, live, &detection.allowlist, pending, log);
            // Replaying a backlog covers minutes of log time per second: sweep by size too.
            if live.buckets() > *sweep_at {
                live.sweep();
                *sweep_at = (2 * live.buckets()).max(SWEEP_AT);
            }
            // One small batch per block: a flag is stored while the burst goes on.
            if !pending.is_empty() {
                flagger.handle(detection, std::mem::take(pending));
            }
            let near = live.take_near_misses();
            if !near.is_empty() {
                flagger.near_misses(near);
            }
        });
        for event in self.follower.take_events() {
            (self.log)(&event.to_string());
        }
        self.dirty |= read > 0;
        self.bytes += read;
        if self.last_check.elapsed() >= CHECK_EVERY {
            self.last_check = Instant::now();
            self.check();
        }
        if self.dirty {
            // Saved after every round that read lines, so a crash reads again at most the
            // lines of one round; synced to disk every few seconds.
            let sync = self.last_sync.elapsed() >= SYNC_EVERY;
            self.save(sync);
            if sync {
                self.last_sync = Instant::now();
            }
            self.dirty = false;
        }
        self.status();
        Round { bytes: read }
    }

    /// The store check [`Watcher::poll`] makes once a second: after an erasure, forgets
    /// every bucket (which source it concerned is kept nowhere) and has the recorder take
    /// erased sources out of the actions' set, so memory holds the address no longer than
    /// this check; after an allowlist change, lets go of the sources it allows. Then
    /// sweeps the buckets and forgets the bans that ended.
    pub fn check(&mut self) {
        let generation = self
            .polled
            .as_ref()
            .and_then(|s| s.erasure_generation().ok())
            .unwrap_or(self.erasure_seen);
        if generation != self.erasure_seen {
            self.erasure_seen = generation;
            let held = self.live.buckets();
            self.live = Live::new(self.detection.rules.clone());
            if self.settings.near_misses {
                self.live.report_near_misses();
            }
            self.pending.clear();
            self.flagger.erased();
            (self.log)(&format!(
                "an erasure was recorded in the store: detection state cleared ({})",
                count(held as u64, "bucket", "buckets")
            ));
        }
        if self.polled.is_some() {
            self.allowlist_check();
        }
        self.live.sweep();
        if let Some(newest) = self.live.newest() {
            self.flagger.expire(newest);
        }
    }

    /// When `logward allow` changed the store's list, merges it into detection's, drops
    /// the buckets, pending flags and repeat guards of the sources it now allows, and tells
    /// the recorder, which takes them out of the actions' set.
    fn allowlist_check(&mut self) {
        let Some(store) = &self.polled else {
            return;
        };
        match self.detection.refresh_allowlist_from(store) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                (self.log)(&format!("error: reading the allowlist: {}", chain(&e)));
                return;
            }
        }
        let allow = &self.detection.allowlist;
        let dropped = self.live.forget_allowed(allow);
        self.pending.retain(|f| !allow.overlaps(f.source));
        self.flagger.allowlist_changed(allow);
        (self.log)(&format!(
            "the allowlist changed: {} allowed in all, {} dropped",
            count(allow.len() as u64, "network", "networks"),
            count(dropped as u64, "bucket", "buckets")
        ));
    }

    /// Logs the status line when one is due.
    fn status(&mut self) {
        let every = self.settings.status_every;
        if every.is_zero() || self.last_status.0.elapsed() < every {
            return;
        }
        let lines = self.reader.lines;
        let secs = self.last_status.0.elapsed().as_secs_f64();
        let rate = (lines - self.last_status.1) as f64 / secs.max(1e-9);
        let lag = self
            .live
            .newest()
            .map_or("-".to_string(), |t| format!("{} s", unix_now() - t));
        (self.log)(&format!(
            "status: {lines} lines ({rate:.0}/s), {} malformed, {} files, backlog {} bytes, \
             lag {lag}, {} flagged ({} repeats ignored), {} buckets, up {} s",
            self.reader.malformed,
            self.follower.open_files(),
            self.follower.backlog(),
            self.flagger.flagged,
            self.flagger.repeats,
            self.live.buckets(),
            self.started.elapsed().as_secs()
        ));
        self.last_status = (Instant::now(), lines);
    }

    /// Takes new rules and allowlist settings (a reload): the buckets keep their counts
    /// under the rules of the same name. The store stays the one the recorder has.
    pub fn reload(&mut self, mut detection: Detection) {
        detection.store = None;
        self.live.replace_rules(detection.rules.clone());
        (self.log)(&format!(
            "reloaded: {} rules",
            detection.rules.rules().len()
        ));
        self.detection = detection;
    }

    fn save(&self, sync: bool) {
        positions::save(
            &self.follower,
            &self.settings.positions,
            self.settings.stats_file.as_deref(),
            sync,
            &self.log,
        );
    }

    /// What the watch has done so far and how it keeps up, as metrics labelled
    /// `command="watch"`: the families a run writes that apply to a stream (lines,
    /// malformed lines, bytes, flags and flags per rule), and the watch's own: lag,
    /// backlog, open files, buckets, failed nft runs, repeats left out.
    pub fn metrics(&self) -> crate::metrics::Exposition {
        use crate::metrics::families::*;
        let mut run = self.flagger.rules.clone();
        run.lines = Some(self.reader.lines);
        run.malformed = Some(self.reader.malformed);
        run.bytes = Some(self.bytes);
        run.sources_flagged = Some(self.flagger.flagged);
        let mut out = run.exposition("watch");
        let labels = [("command", "watch")];
        if let Some(newest) = self.live.newest() {
            out.set(&LAG, &labels, (unix_now() - newest) as f64);
        }
        out.set(&BACKLOG, &labels, self.follower.backlog() as f64);
        out.set(&OPEN_FILES, &labels, self.follower.open_files() as f64);
        out.set(&BUCKETS, &labels, self.live.buckets() as f64);
        let failed = self
            .settings
            .actions
            .nft_failures
            .load(std::sync::atomic::Ordering::Relaxed);
        out.set(&NFT_FAILURES, &labels, failed as f64);
        out.set(&REPEATS, &labels, self.flagger.repeats as f64);
        out
    }

    /// Lines read so far.
    pub fn lines(&self) -> u64 {
        self.reader.lines
    }

    /// Stops: saves the positions (synced), lets the recorder store what it was handed and
    /// the actions finish, and says what the watch did.
    pub fn finish(mut self) -> Summary {
        self.save(true);
        // The recorder stores what is queued, then stops the actions.
        self.flagger.close();
        if self.recorder.join().is_err() {
            (self.log)("error: the recorder thread failed");
        }
        Summary {
            lines: self.reader.lines,
            malformed: self.reader.malformed,
            flagged: self.flagger.flagged,
            repeats: self.flagger.repeats,
        }
    }
}

#[cfg(test)]
mod tests;

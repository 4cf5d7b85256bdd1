//! `logward watch`: follows live logs (`input::follow`), feeds every line to the streaming
//! engine (`detect::live`) with the same rules, allowlist, enrichment and store as `scan`,
//! and hands new flags to a recorder thread that writes them to the store at once and runs
//! the actions (`actions`), so neither a disk commit nor a command holds up reading. Runs in
//! the foreground for systemd: one log line per event on stderr, SIGHUP reloads the rules,
//! SIGTERM and SIGINT stop it after saving the store and the positions. Once a second it
//! checks the store for an erasure or an allowlist change (`logward allow`) and lets go of
//! the sources concerned.

pub mod actions;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use ipnet::IpNet;
use serde_json::json;

use super::detection::{DetectArgs, Detection};
use super::{Config, Outcome, state, switch};
use crate::detect::live::{self, Live};
use crate::detect::{Allowlist, Flagged};
use crate::format::time::rfc3339;
use crate::format::{self, Format, FormatSpec, Record, TimeCache, Unwrapper};
use crate::input::follow::{Follower, Position};
use crate::store::{BanPolicy, Filter, NewFlag, Store, Target, net};
use actions::{Actions, FlagEvent, NftSet};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Log files, directories (watched for access logs appearing in them) or quoted glob
    /// patterns such as '/var/log/nginx/*.log'. Gzip files are not followed.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,

    /// Log format: auto (per file, from its first lines), a preset, nginx:'<log_format>' or
    /// apache:'<LogFormat>', or one of these after a wrapper (journal:combined; see `scan
    /// --help`). [default: auto]
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,

    /// How often files are checked for new lines (like 250ms or 1s). [default: 250ms]
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,

    /// Read files found at start from their beginning, not their end. Files known from the
    /// saved positions always resume where they stopped.
    #[arg(long, overrides_with = "no_from_start")]
    pub from_start: bool,

    /// Undoes --from-start (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "from_start")]
    pub no_from_start: bool,

    /// Run this command (with sh -c) for each new flag; it gets LOGWARD_SOURCE,
    /// LOGWARD_RULES, LOGWARD_EXPIRES (RFC 3339) and LOGWARD_EVENTS in its environment.
    #[arg(long, value_name = "CMD")]
    pub on_flag: Option<String>,

    /// Keep nftables sets in sync: [FAMILY:]TABLE:SET4[,SET6], like
    /// inet:logward:flagged_v4,flagged_v6 (the sets `logward flagged -f nftables` makes).
    #[arg(long, value_name = "SPEC")]
    pub nft_set: Option<String>,

    /// How often to log a status line (lines, lines/s, lag); 0 turns it off. [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub status_every: Option<String>,

    /// The longest an --on-flag command or nft may run before it is killed.
    #[arg(long, hide = true, value_name = "DURATION", default_value = "10s")]
    pub action_timeout: String,

    /// Write line counts per file (JSON) here whenever the positions are saved.
    #[arg(long, hide = true, value_name = "FILE")]
    pub stats_file: Option<PathBuf>,

    #[command(flatten)]
    pub detect: DetectArgs,
}

/// `250ms`, `2s`, `1m`; the units `parse_duration` knows plus `ms`.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    if t == "0" {
        return Some(Duration::ZERO);
    }
    crate::timefmt::parse_duration(t)
        .filter(|s| *s >= 0)
        .map(|s| Duration::from_secs(s as u64))
}

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

/// Sets the handlers: they only set a flag the main loop reads.
fn install_signals() {
    let set = |sig: libc::c_int, handler: extern "C" fn(libc::c_int)| {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and
        // the sigaction struct is fully initialized before use.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    };
    set(libc::SIGTERM, on_stop);
    set(libc::SIGINT, on_stop);
    set(libc::SIGHUP, on_reload);
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Positions {
    version: u32,
    files: Vec<Position>,
}

fn load_positions(path: &Path) -> Vec<Position> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Positions>(&bytes) {
            Ok(p) => p.files,
            Err(e) => {
                eprintln!(
                    "logward: warning: {}: unreadable ({e}); starting without positions",
                    path.display()
                );
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    }
}

/// Per followed file: its format once known, and malformed lines reported so far.
struct FileState {
    format: Option<Format>,
    /// A wrapped format's state from line to line (joined parts of container lines).
    unwrapper: Option<Unwrapper>,
    malformed_reported: u32,
    /// Of its first [`CLIENT_CHECK_LINES`] parsed lines, those that gave a client address;
    /// the check warns once when fewer than half did.
    parsed: u64,
    with_client: u64,
}

/// How many parsed lines of a followed file the client check counts before it decides.
const CLIENT_CHECK_LINES: u64 = 200;

/// Buckets held before a sweep is due whatever the time since the last one.
const SWEEP_AT: usize = 1 << 16;

/// Malformed lines reported per file; the rest are only counted.
const MALFORMED_REPORTS: u32 = 3;

/// What happens after the engine says "overflow", on the reading thread: folding, leaving
/// out repeats, enrichment; the store and the actions are the recorder's.
struct Flagger {
    recorder: Option<mpsc::Sender<ToRecorder>>,
    /// Sources flagged by this run, and when their first ban ends (log time): a source that
    /// overflows again while banned is not flagged again (its ban would double each time).
    banned: HashMap<IpNet, i64>,
    flagged: u64,
    repeats: u64,
    ban: BanPolicy,
}

impl Flagger {
    fn handle(&mut self, detection: &Detection, flags: Vec<Flagged>) {
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
        if let Some(tx) = &self.recorder {
            let _ = tx.send(ToRecorder::Flags(detection.to_new_flags(&flags, &|_| None)));
        }
    }
}

/// What the reading loop hands the recorder.
enum ToRecorder {
    Flags(Vec<NewFlag>),
    /// The store recorded an erasure: sources this run banned that the store no longer
    /// holds leave the nftables set.
    Erased,
    /// The store's allowlist changed: sources this run banned that it now allows leave the
    /// nftables set.
    AllowlistChanged,
}

/// The recorder's copy of the store's allowlist, so a flag made just before an `allow add`
/// reached the reading loop is not banned again on its way to the store.
struct StoredAllowlist {
    nets: Allowlist,
    generation: i64,
}

impl StoredAllowlist {
    /// Re-reads the list when its generation moved; true when it did.
    fn refresh(&mut self, store: &Store) -> bool {
        match store.allowlist_if_changed(&mut self.generation) {
            Ok(Some(nets)) => {
                self.nets = Allowlist::exact(nets);
                true
            }
            Ok(None) => false,
            Err(e) => {
                eprintln!("logward: error: reading the allowlist: {e}");
                false
            }
        }
    }
}

/// The recorder thread: writes flags to the store (a commit waits for the disk, which must
/// not hold up reading), logs them with their ban, and hands them to the actions.
fn record(
    mut store: Option<Store>,
    mut actions: Actions,
    ban: BanPolicy,
    rx: mpsc::Receiver<ToRecorder>,
) {
    // The sources this run handed to the actions with their ban's end, so an erasure can
    // take back those still banned; ended bans are dropped as flags come, so it stays as
    // small as the set of active bans.
    let mut sent: HashMap<IpNet, i64> = HashMap::new();
    let mut allowed = StoredAllowlist {
        nets: Allowlist::exact(Vec::new()),
        generation: i64::MIN,
    };
    if let Some(store) = &store {
        allowed.refresh(store);
    }
    for msg in rx {
        // Checked before every batch too: the reading loop learns of a change only at its
        // next check, and may have flagged an allowed source meanwhile.
        let changed = store.as_ref().is_some_and(|s| allowed.refresh(s));
        if changed {
            sent.retain(|source, _| {
                let allow = allowed.nets.overlaps(*source);
                if allow {
                    actions.unban(*source);
                    eprintln!(
                        "logward: allowlisted: {} leaves the actions' set",
                        net::display(*source)
                    );
                }
                !allow
            });
        }
        let mut new = match msg {
            ToRecorder::Flags(new) => new,
            ToRecorder::AllowlistChanged => continue,
            ToRecorder::Erased => {
                let mut removed = 0u64;
                if let Some(store) = &store {
                    sent.retain(|source, _| {
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
                eprintln!(
                    "logward: an erasure was recorded in the store: {} removed from the actions' set",
                    crate::cli::count(removed, "source", "sources")
                );
                continue;
            }
        };
        new.retain(|f| !allowed.nets.overlaps(net::canonical(f.source)));
        if new.is_empty() {
            continue;
        }
        let mut expiry: HashMap<IpNet, i64> = HashMap::new();
        if let Some(store) = &mut store {
            // The bans as recorded come back from the write itself: a lookup of 1000+
            // sources built one OR term per source, which SQLite refused ("Expression
            // tree is too large"), and the log fell back to the first ban.
            match store.record_flags_at(&new, unix_now(), crate::store::Recording::Add) {
                Ok(recorded) => expiry.extend(recorded),
                Err(e) => eprintln!("logward: error: {e}"),
            }
        }
        let now = unix_now();
        sent.retain(|_, expires| *expires > now);
        for f in &new {
            let source = net::canonical(f.source);
            let expires = expiry
                .get(&source)
                .copied()
                .unwrap_or_else(|| f.last_seen.saturating_add(ban.ban(1)));
            let geo = match (&f.country, f.asn) {
                (None, None) => String::new(),
                (c, a) => format!(
                    " [{}{}]",
                    c.as_deref().unwrap_or("-"),
                    a.map(|a| format!(" AS{a}")).unwrap_or_default()
                ),
            };
            eprintln!(
                "logward: flagged {} by {} ({} events, {} .. {}), banned until {}{geo}",
                net::display(source),
                f.rules.join(","),
                f.events,
                rfc3339(f.first_seen),
                rfc3339(f.last_seen),
                rfc3339(expires),
            );
            sent.insert(source, expires);
            actions.flag(
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
    actions.finish();
}

pub fn run(args: WatchArgs, config: &Config) -> Result<Outcome> {
    let spec = crate::cli::format_setting(args.format.clone(), config)?;
    let duration_arg = |flag: &Option<String>, key: &Option<String>, name: &str, default: &str| {
        let text = flag.as_deref().or(key.as_deref()).unwrap_or(default);
        parse_interval(text)
            .with_context(|| format!("--{name}: not a duration: {text:?} (like 250ms or 1s)"))
    };
    let interval = duration_arg(&args.interval, &config.interval, "interval", "250ms")?
        .max(Duration::from_millis(10));
    let status_every = duration_arg(
        &args.status_every,
        &config.status_every,
        "status-every",
        "60s",
    )?;
    let action_timeout = duration_arg(&Some(args.action_timeout.clone()), &None, "", "10s")?;
    let nft = match args.nft_set.as_deref().or(config.nft_set.as_deref()) {
        Some(text) => Some(NftSet::parse(text)?),
        None => None,
    };
    let on_flag = args.on_flag.clone().or_else(|| config.on_flag.clone());

    let mut config = config.clone();
    let mut detection = Detection::new(&args.detect, &config)?;
    let state_dir = match &detection.store {
        Some(store) => store.state_dir(),
        None => state::state_dir(args.detect.store.as_deref(), &config)?,
    };
    let positions_path = state_dir.join("positions.json");
    let saved = load_positions(&positions_path);
    let ban = detection
        .store
        .as_ref()
        .map(|s| s.ban_policy())
        .unwrap_or_default();

    install_signals();
    let mut follower = Follower::new(
        args.paths.clone(),
        saved,
        switch(args.from_start, args.no_from_start, config.from_start),
    );
    let mut live = Live::new(detection.rules.clone());
    let (tx, rx) = mpsc::channel();
    let store = detection.store.take();
    let store_name = store
        .as_ref()
        .map_or("off".to_string(), |s| s.path().display().to_string());
    // A second connection, to poll the erasure and allowlist generations from the reading
    // loop.
    let polled = match &store {
        Some(s) => Some(Store::open(s.path()).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let mut erasure_seen = polled
        .as_ref()
        .and_then(|s| s.erasure_generation().ok())
        .unwrap_or(0);
    let fleet_link = store.as_ref().and_then(|s| {
        let (on_flag, nft, paths) = (on_flag.clone(), nft.clone(), args.paths.clone());
        crate::cli::fleet::link_in_background(
            &config,
            s.path(),
            interval,
            on_flag,
            action_timeout,
            nft,
            paths,
        )
    });
    let actions = Actions::start(on_flag, action_timeout, nft);
    let recorder = std::thread::spawn(move || record(store, actions, ban, rx));
    let mut flagger = Flagger {
        recorder: Some(tx),
        banned: HashMap::new(),
        flagged: 0,
        repeats: 0,
        ban,
    };
    let mut files: HashMap<u64, FileState> = HashMap::new();
    let mut cache = TimeCache::new();
    let mut pending: Vec<Flagged> = Vec::new();
    let (mut lines, mut malformed) = (0u64, 0u64);
    let started = Instant::now();
    let mut last_status = (Instant::now(), 0u64);
    let mut last_sweep = Instant::now();
    let mut sweep_at = SWEEP_AT;
    let mut last_sync = Instant::now();
    eprintln!(
        "logward: watching {} (every {} ms), {} rules, store {}",
        args.paths.join(" "),
        interval.as_millis(),
        detection.rules.rules().len(),
        store_name
    );
    let mut dirty = true;
    while !STOP.load(Ordering::SeqCst) {
        if RELOAD.swap(false, Ordering::SeqCst) {
            reload(&args, &mut config, &mut detection, &mut live);
        }
        let read = follower.poll(&mut |block| {
            let state = files.entry(block.id).or_insert_with(|| FileState {
                format: None,
                unwrapper: None,
                malformed_reported: 0,
                parsed: 0,
                with_client: 0,
            });
            if state.format.is_none() {
                state.format = choose_format(&spec, block.file, block.data);
                if let Some(f) = &state.format {
                    eprintln!("logward: {}: format {}", block.path.display(), f.name());
                    state.unwrapper = f.unwrapper();
                }
            }
            let mut start = 0;
            let data = block.data;
            let ends = memchr::memchr_iter(b'\n', data).chain(
                // The last piece of a drained file may lack its newline.
                (data.last() != Some(&b'\n')).then_some(data.len()),
            );
            for end in ends {
                let line = &data[start..end];
                start = end + 1;
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    continue;
                }
                lines += 1;
                let Some(format) = &state.format else {
                    malformed += 1;
                    continue;
                };
                let mut rec = Record::default();
                let parsed = match &mut state.unwrapper {
                    None => format.parse_into(line, &mut cache, &mut rec),
                    Some(u) => u.parse_into(line, &mut cache, &mut rec),
                };
                match parsed {
                    Ok(()) => {
                        if state.parsed < CLIENT_CHECK_LINES {
                            state.parsed += 1;
                            state.with_client += u64::from(rec.client.is_some());
                            if state.parsed == CLIENT_CHECK_LINES
                                && let Some(warning) = crate::scan::few_clients(
                                    state.parsed,
                                    state.with_client,
                                    Some(format.name()),
                                )
                            {
                                eprintln!(
                                    "logward: warning: {}: {warning}",
                                    crate::escape::path(block.path)
                                );
                            }
                        }
                        live.observe(&rec, &detection.allowlist, &mut pending)
                    }
                    // A part of a container line: its last part gives the record.
                    Err(e) if e.kind == format::ErrorKind::Partial => {}
                    Err(e) => {
                        malformed += 1;
                        if state.malformed_reported < MALFORMED_REPORTS {
                            state.malformed_reported += 1;
                            eprintln!("logward: {}: malformed: {e}", block.path.display());
                        }
                    }
                }
            }
            // Replaying a backlog covers minutes of log time per second: sweep by size too.
            if live.buckets() > sweep_at {
                live.sweep();
                sweep_at = (2 * live.buckets()).max(SWEEP_AT);
            }
            // One small batch per block: a flag is stored while the burst goes on.
            if !pending.is_empty() {
                flagger.handle(&detection, std::mem::take(&mut pending));
            }
        });
        for event in follower.take_events() {
            eprintln!("logward: {event}");
        }
        dirty |= read > 0;
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            last_sweep = Instant::now();
            // An erasure since the last check: forget every bucket (which source it
            // concerned is kept nowhere) and have the recorder take erased sources out of
            // the nftables set, so memory holds the address no longer than this check.
            let generation = polled
                .as_ref()
                .and_then(|s| s.erasure_generation().ok())
                .unwrap_or(erasure_seen);
            if generation != erasure_seen {
                erasure_seen = generation;
                let held = live.buckets();
                live = Live::new(detection.rules.clone());
                pending.clear();
                flagger.banned.clear();
                if let Some(tx) = &flagger.recorder {
                    let _ = tx.send(ToRecorder::Erased);
                }
                eprintln!(
                    "logward: an erasure was recorded in the store: detection state cleared \
                     ({})",
                    crate::cli::count(held as u64, "bucket", "buckets")
                );
            }
            if let Some(store) = &polled {
                allowlist_check(store, &mut detection, &mut live, &mut pending, &mut flagger);
            }
            live.sweep();
            if let Some(newest) = live.newest() {
                flagger.banned.retain(|_, expires| *expires > newest);
            }
        }
        if dirty {
            // Saved after every poll that read lines, so a crash reads again at most the
            // lines of one poll; synced to disk every few seconds.
            let sync = last_sync.elapsed() >= Duration::from_secs(5);
            save(&follower, &positions_path, args.stats_file.as_deref(), sync);
            if sync {
                last_sync = Instant::now();
            }
            dirty = false;
        }
        if !status_every.is_zero() && last_status.0.elapsed() >= status_every {
            let secs = last_status.0.elapsed().as_secs_f64();
            let rate = (lines - last_status.1) as f64 / secs.max(1e-9);
            let lag = live
                .newest()
                .map_or("-".to_string(), |t| format!("{} s", unix_now() - t));
            eprintln!(
                "logward: status: {lines} lines ({rate:.0}/s), {malformed} malformed, {} files, \
                 backlog {} bytes, lag {lag}, {} flagged ({} repeats ignored), {} buckets, up {} s",
                follower.open_files(),
                follower.backlog(),
                flagger.flagged,
                flagger.repeats,
                live.buckets(),
                started.elapsed().as_secs()
            );
            last_status = (Instant::now(), lines);
        }
        // Caught up: wait. Still reading large blocks: go on at once.
        if read < (1 << 20) {
            sleep_unless_stopped(interval);
        }
    }
    save(&follower, &positions_path, args.stats_file.as_deref(), true);
    // The recorder stores what is queued, then stops the actions.
    drop(flagger.recorder.take());
    if recorder.join().is_err() {
        eprintln!("logward: error: the recorder thread failed");
    }
    // One last push of what the recorder stored.
    drop(fleet_link);
    eprintln!(
        "logward: stopped after {lines} lines, {} flagged; positions saved in {}",
        flagger.flagged,
        positions_path.display()
    );
    Ok(Outcome::Success)
}

/// The allowlist check of the reading loop: when `logward allow` changed the store's list,
/// merges it into detection's, drops the buckets, pending flags and repeat guards of the
/// sources it now allows, and tells the recorder, which takes them out of the actions' set.
fn allowlist_check(
    store: &Store,
    detection: &mut Detection,
    live: &mut Live,
    pending: &mut Vec<Flagged>,
    flagger: &mut Flagger,
) {
    match detection.refresh_allowlist_from(store) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            eprintln!("logward: error: reading the allowlist: {e:#}");
            return;
        }
    }
    let allow = &detection.allowlist;
    let dropped = live.forget_allowed(allow);
    pending.retain(|f| !allow.overlaps(f.source));
    flagger.banned.retain(|source, _| !allow.overlaps(*source));
    if let Some(tx) = &flagger.recorder {
        let _ = tx.send(ToRecorder::AllowlistChanged);
    }
    eprintln!(
        "logward: the allowlist changed: {} allowed in all, {} dropped",
        crate::cli::count(allow.len() as u64, "network", "networks"),
        crate::cli::count(dropped as u64, "bucket", "buckets")
    );
}

fn sleep_unless_stopped(d: Duration) {
    let end = Instant::now() + d;
    while !STOP.load(Ordering::SeqCst) && !RELOAD.load(Ordering::SeqCst) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Re-reads the configuration file and the rules; on an error keeps what runs.
fn reload(args: &WatchArgs, config: &mut Config, detection: &mut Detection, live: &mut Live) {
    let fresh = match &config.path {
        Some(path) => match Config::read(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("logward: reload failed, keeping the running rules: {e:#}");
                return;
            }
        },
        None => config.clone(),
    };
    match Detection::new(&args.detect, &fresh) {
        Ok(mut d) => {
            // The recorder keeps the store it has.
            d.store = None;
            live.replace_rules(d.rules.clone());
            eprintln!("logward: reloaded: {} rules", d.rules.rules().len());
            *detection = d;
            *config = fresh;
        }
        Err(e) => eprintln!("logward: reload failed, keeping the running rules: {e:#}"),
    }
}

fn save(follower: &Follower, path: &Path, stats: Option<&Path>, sync: bool) {
    let positions = Positions {
        version: 1,
        files: follower.positions(),
    };
    let bytes = serde_json::to_vec_pretty(&positions).unwrap_or_default();
    if let Err(e) = crate::rewrite::write_small_file(path, &bytes, sync) {
        eprintln!("logward: error: {}: {e}", path.display());
    }
    if let Some(stats) = stats {
        let (files, closed) = follower.line_counts();
        let total: u64 = files.iter().map(|(_, n)| n).sum::<u64>() + closed;
        let value = json!({
            "schema_version": crate::store::export::JSON_SCHEMA_VERSION,
            "lines": total,
            "closed_lines": closed,
            "files": files.iter().map(|(p, n)| json!({"path": p, "lines": n})).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        if let Err(e) = crate::rewrite::write_small_file(stats, &bytes, false) {
            eprintln!("logward: error: {}: {e}", stats.display());
        }
    }
}

/// The format of a newly followed file: the one asked for, or the preset that parses most
/// of its first lines (read from its start, whatever the offset), else of `block`.
fn choose_format(spec: &FormatSpec, file: &std::fs::File, block: &[u8]) -> Option<Format> {
    use std::os::unix::fs::FileExt;
    match spec {
        FormatSpec::Fixed(f) => Some(f.clone()),
        FormatSpec::Auto => {
            let mut head = vec![0u8; 64 << 10];
            let n = file.read_at(&mut head, 0).unwrap_or(0);
            head.truncate(n);
            let sample = |data: &[u8]| -> Option<Format> {
                let lines: Vec<&[u8]> = data
                    .split(|&b| b == b'\n')
                    .take(format::DETECT_LINES)
                    .collect();
                format::detect(lines.iter().copied()).map(|d| d.format)
            };
            sample(&head).or_else(|| sample(block))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_interval("0"), Some(Duration::ZERO));
        assert_eq!(parse_interval("fast"), None);
        assert_eq!(parse_interval("5"), None);
    }
}

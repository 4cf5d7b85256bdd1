//! `logward anonymize`: masks client addresses in the lines of rotated logs older than the
//! retention window, rewriting each file in place, and reports per file what it did.
//! The per-file work is `logward::anonymize::retention`; this module turns options into a
//! plan, runs it over the files, and prints the report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use logward::anonymize::ledger::Ledger;
use logward::anonymize::retention::{Counts, FileResult, Plan, Status, anonymize_file};
use logward::anonymize::{CryptoPan, Mode, Prefixes, load_key_file};
use logward::error::chain;
use logward::format::FormatSpec;
use logward::input::{Source, discover};
use logward::metrics::RunCounts;
use logward::rewrite::{RewriteOptions, RunLock, cleanup_stale_temps};
use logward::scan::Progress;
use logward::timefmt::{format_duration, parse_duration, parse_rfc3339, rfc3339};
use rayon::prelude::*;
use serde_json::{Value, json};

use super::OutputKind;
use super::metrics::MetricsFile;
use super::progress::ProgressLine;
use super::{Config, Outcome, count, state, switch, with_threads};

#[derive(Debug, Args)]
pub struct AnonymizeArgs {
    /// Log files, directories (walked for access logs and their rotations) or quoted glob
    /// patterns such as '/var/log/nginx/access.log.*'.
    #[arg(value_name = "PATH", required_unless_present = "fleet")]
    pub paths: Vec<String>,

    /// Mask lines older than this: 7d, 36h, 2w, 1h30m. [default: 7d]
    #[arg(long, value_name = "DURATION", conflicts_with = "sources")]
    pub older_than: Option<String>,

    /// An erasure request: mask every address of this source (an address or a CIDR
    /// network; repeatable) in every line, whatever its age, and drop it from the store.
    /// The audit log records a keyed hash of it, never the address. In truncate mode a
    /// range loses as many bits above its own prefix as one address loses (a /24 is
    /// truncated to /16 with the default /24), so the range does not survive as a prefix.
    #[arg(long = "source", value_name = "IP|CIDR")]
    pub sources: Vec<String>,

    /// With --source and --ticket: record the erasure request in the fleet's database
    /// (needs the logward_admin role) instead of erasing here; every server's
    /// `logward fleet sync PATH...` carries it out and acknowledges it (`fleet erasures`).
    #[arg(long, requires_all = ["sources", "ticket"], conflicts_with = "paths")]
    pub fleet: bool,

    /// The erasure request's reference (a ticket number), with --fleet.
    #[arg(long, value_name = "REF", requires = "fleet")]
    pub ticket: Option<String>,

    /// Take this RFC 3339 time as now (replays, tests). [default: the clock]
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,

    /// truncate: zero the host bits; pseudonymize: keyed, prefix-preserving replacement
    /// (Crypto-PAn, needs --key-file). [default: truncate]
    #[arg(long, value_enum)]
    pub mode: Option<ModeKind>,

    /// IPv4 bits kept when truncating. [default: 24]
    #[arg(long, value_name = "BITS", conflicts_with = "strict")]
    pub ipv4_prefix: Option<u8>,

    /// IPv6 bits kept when truncating. [default: 48]
    #[arg(long, value_name = "BITS", conflicts_with = "strict")]
    pub ipv6_prefix: Option<u8>,

    /// Keep only 16 IPv4 and 32 IPv6 bits.
    #[arg(long, overrides_with = "no_strict")]
    pub strict: bool,

    /// Undoes --strict (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "strict")]
    pub no_strict: bool,

    /// The pseudonymization key (64 hex digits, mode 0600; `logward keygen FILE` makes one).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Log format: auto, combined, common, vcombined, vcommon, main, haproxy, envoy, json,
    /// nginx:'<log_format>' or apache:'<LogFormat>', or one of these after a wrapper
    /// (syslog:combined, docker:json; see `scan --help`): only the inner line's addresses
    /// change. [default: auto]
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,

    /// gzip level of rewritten .gz files, 0-9. [default: 6]
    #[arg(long, value_name = "N")]
    pub gzip_level: Option<u32>,

    /// In parsed lines, also replace address-shaped tokens outside the address fields and
    /// URLs: user agents and every other field. A version such as `Chrome/131.0.0.0` is then
    /// masked like an address (pseudonymize changes it).
    #[arg(long, overrides_with = "no_whole_line")]
    pub whole_line: bool,

    /// Undoes --whole-line (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "whole_line")]
    pub no_whole_line: bool,

    /// Also rewrite live log names (no rotation suffix, such as access.log). Only safe when
    /// the server no longer writes them.
    #[arg(long, overrides_with = "no_include_active")]
    pub include_active: bool,

    /// Undoes --include-active (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "include_active")]
    pub no_include_active: bool,

    /// Report what would change without writing anything.
    #[arg(long, short = 'n', overrides_with = "no_dry_run")]
    pub dry_run: bool,

    /// Undoes --dry-run (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "dry_run")]
    pub no_dry_run: bool,

    /// Output: a human report (text) or one JSON object (json). [default: text]
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<OutputKind>,

    /// Files rewritten at once; 0 uses every core. Each plain file is also written to
    /// the disk by a second thread; gzip members compress on these threads. [default: 0]
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<usize>,

    /// The store file; logward's state directory (lock, ledger) is beside it.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,

    #[command(flatten)]
    pub walk: super::WalkArgs,

    /// At the end of the run, write its metrics (files rewritten, skipped and failed,
    /// addresses masked, duration, last success...) into this node_exporter textfile,
    /// replaced atomically; other commands' metrics in it stay. An erasure (--source)
    /// writes them as command "erase"; --dry-run writes none.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeKind {
    Truncate,
    Pseudonymize,
}

/// Anonymize settings after merging the command line with the configuration file.
pub struct Settings {
    pub paths: Vec<String>,
    pub older_than: i64,
    pub now: i64,
    pub mode: Mode,
    pub method: String,
    pub format: FormatSpec,
    pub gzip_level: u32,
    pub include_active: bool,
    pub dry_run: bool,
    pub output: OutputKind,
    pub threads: usize,
    pub verbose: bool,
    pub missing_ok: bool,
    pub progress: bool,
    /// The erasure request's sources as given, and as networks.
    pub sources: Vec<String>,
    pub erase: Option<Vec<ipnet::IpNet>>,
    pub whole_line: bool,
}

impl Settings {
    pub fn new(args: AnonymizeArgs, config: &Config) -> Result<Settings> {
        let older_than = older_than_setting(args.older_than.as_deref(), config)?;
        let now = now_setting(args.now.as_deref())?;
        let (mode, method) = mode_setting(&args, config)?;
        let format = super::format_setting(args.format, config)?;
        let gzip_level = args.gzip_level.or(config.gzip_level).unwrap_or(6);
        if gzip_level > 9 {
            bail!("--gzip-level: {gzip_level} is not 0-9");
        }
        let output = super::output_setting(args.output, config)?;
        let nets = erasure_nets(&args.sources)?;
        let whole_line = switch(args.whole_line, args.no_whole_line, config.whole_line);
        // The ledger tells runs with a wider search apart, so adding `--whole-line` later
        // still reaches lines an earlier run masked by fields.
        let method = if whole_line {
            format!("{method}+whole-line")
        } else {
            method
        };
        // An erased range must not survive as the truncated prefix of its members.
        let mode = match mode {
            Mode::Truncate(p) if !nets.is_empty() => Mode::Truncate(p.for_erasure(&nets)),
            other => other,
        };
        Ok(Settings {
            whole_line,
            erase: (!nets.is_empty()).then_some(nets),
            sources: args.sources,
            paths: args.paths,
            older_than,
            now,
            mode,
            method,
            format,
            gzip_level,
            include_active: switch(
                args.include_active,
                args.no_include_active,
                config.include_active,
            ),
            dry_run: switch(args.dry_run, args.no_dry_run, config.dry_run),
            output,
            threads: args.threads.or(config.threads).unwrap_or(0),
            verbose: args.walk.verbose(config),
            missing_ok: args.walk.missing_ok(config),
            progress: args.walk.progress(config),
        })
    }
}

/// The retention window in seconds: `--older-than`, the config's, or 7 days.
fn older_than_setting(flag: Option<&str>, config: &Config) -> Result<i64> {
    let text = flag.or(config.older_than.as_deref()).unwrap_or("7d");
    match parse_duration(text) {
        Some(d) if d > 0 => Ok(d),
        _ => bail!("--older-than: {text:?} is not a duration such as 7d, 36h or 2w"),
    }
}

/// Now as Unix seconds: the time `--now` gives, or the clock's.
fn now_setting(flag: Option<&str>) -> Result<i64> {
    match flag {
        Some(t) => match parse_rfc3339(t) {
            Some(n) => Ok(n),
            None => bail!("--now: {t:?} is not an RFC 3339 time such as 2026-11-22T00:00:00Z"),
        },
        None => Ok(logward::timefmt::unix_now()),
    }
}

/// The masking mode and the method the ledger records it as, from `--mode` or the config.
fn mode_setting(args: &AnonymizeArgs, config: &Config) -> Result<(Mode, String)> {
    let kind = match (args.mode, config.mode.as_deref()) {
        (Some(m), _) => m,
        (None, None | Some("truncate")) => ModeKind::Truncate,
        (None, Some("pseudonymize")) => ModeKind::Pseudonymize,
        (None, Some(other)) => {
            bail!("config key mode: unknown value {other:?} (truncate or pseudonymize)")
        }
    };
    match kind {
        ModeKind::Truncate => truncate_mode(args, config),
        ModeKind::Pseudonymize => pseudonymize_mode(args, config),
    }
}

/// Truncation to the prefix lengths given (or `--strict`'s, or the defaults).
fn truncate_mode(args: &AnonymizeArgs, config: &Config) -> Result<(Mode, String)> {
    if args.key_file.is_some() {
        bail!("--key-file is used only with --mode pseudonymize");
    }
    let strict = switch(args.strict, args.no_strict, config.strict);
    let base = if strict {
        Prefixes::STRICT
    } else {
        Prefixes::DEFAULT
    };
    let v4 = args
        .ipv4_prefix
        .or(config.ipv4_prefix.filter(|_| !args.strict))
        .unwrap_or(base.ipv4);
    let v6 = args
        .ipv6_prefix
        .or(config.ipv6_prefix.filter(|_| !args.strict))
        .unwrap_or(base.ipv6);
    let Some(p) = Prefixes::new(v4, v6) else {
        bail!("prefix lengths {v4}/{v6} out of range (IPv4 0-32, IPv6 0-128)");
    };
    Ok((Mode::Truncate(p), format!("truncate/{}/{}", p.ipv4, p.ipv6)))
}

/// Pseudonymization with the key of `--key-file` (or the config's).
fn pseudonymize_mode(args: &AnonymizeArgs, config: &Config) -> Result<(Mode, String)> {
    if args.ipv4_prefix.is_some() || args.ipv6_prefix.is_some() || args.strict {
        bail!("--ipv4-prefix, --ipv6-prefix and --strict apply to --mode truncate");
    }
    let Some(path) = args.key_file.clone().or_else(|| config.key_file.clone()) else {
        bail!("--mode pseudonymize needs --key-file FILE (create one with `logward keygen FILE`)");
    };
    let key = load_key_file(&path)?;
    // Names the key in the ledger without revealing it.
    let id = CryptoPan::new(&key).host_hash(b"logward ledger key id");
    Ok((Mode::Pseudonymize(key), format!("pseudonymize/{id:016x}")))
}

/// The networks of an erasure request's `--source`s.
fn erasure_nets(sources: &[String]) -> Result<Vec<ipnet::IpNet>> {
    let mut nets = Vec::new();
    for text in sources {
        match super::detection::parse_net(text) {
            Some(net) => nets.push(net),
            None => bail!("--source: {text:?} is not an address or a CIDR network"),
        }
    }
    Ok(nets)
}

/// Where symbolic links may point: under the directories given, the directory of each file
/// given, and the fixed part of each glob pattern.
fn allowed_roots(paths: &[String]) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for arg in paths {
        let p = Path::new(arg);
        let fixed: PathBuf = if p.is_dir() {
            p.to_path_buf()
        } else if p.exists() {
            p.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        } else {
            p.components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                .collect()
        };
        let fixed = if fixed.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            fixed
        };
        if let Ok(c) = std::fs::canonicalize(&fixed) {
            roots.push(c);
        }
    }
    roots
}

pub fn run(mut args: AnonymizeArgs, config: &Config) -> Result<Outcome> {
    let dry_run = switch(args.dry_run, args.no_dry_run, config.dry_run);
    let erasure = !args.sources.is_empty();
    let metrics = match dry_run {
        true => None,
        false => {
            let command = if erasure { "erase" } else { "anonymize" };
            MetricsFile::setting(args.metrics_file.take(), config, command)?
        }
    };
    let mut counts = RunCounts::default();
    let result = anonymize(args, config, &mut counts);
    // An erasure that could not reach every file (exit 1) has not done its job.
    super::metrics::finish(metrics, result, counts, |o| match erasure {
        true => o == Outcome::Success,
        false => o != Outcome::Error,
    })
}

/// The run, filling in `counts` for the metrics as it goes.
fn anonymize(args: AnonymizeArgs, config: &Config, counts: &mut RunCounts) -> Result<Outcome> {
    let store_flag = args.store.clone();
    let settings = Settings::new(args, config)?;
    let mut found = discover(&settings.paths);
    super::report_discovery(&mut found, settings.missing_ok, settings.verbose);
    let files = files_to_rewrite(&found.sources);
    let state_dir = state::state_dir(store_flag.as_deref(), config)?;
    // One run at a time rewrites; a dry run writes nothing and needs no lock.
    let _lock = if settings.dry_run {
        None
    } else {
        Some(RunLock::acquire(&state_dir)?)
    };
    let ledger = Ledger::load(&state_dir)?;
    if !settings.dry_run {
        remove_stale_temps(&files);
    }
    let cutoff = settings.now - settings.older_than;
    let results = rewrite_files(&files, &plan(&settings, cutoff), ledger, &settings)?;
    count_results(counts, &results, found.errors.len());
    for r in results.iter().filter(|r| r.status == Status::Failed) {
        eprintln!(
            "logward: {}: {}",
            logward::escape::path(&r.path),
            r.reason.as_deref().unwrap_or("failed")
        );
    }
    write_report(&settings, cutoff, &results)?;
    let mut failed = results.iter().any(|r| r.status == Status::Failed) || !found.errors.is_empty();
    let mut incomplete = false;
    if let Some(nets) = &settings.erase {
        match finish_erasure(
            &settings,
            nets,
            &state_dir,
            store_flag.as_deref(),
            config,
            &results,
        ) {
            Ok(complete) => incomplete = !complete,
            Err(e) => {
                eprintln!("logward: {}", chain(e.as_ref()));
                failed = true;
            }
        }
    }
    Ok(if failed {
        Outcome::Error
    } else if incomplete {
        Outcome::Found
    } else {
        Outcome::Success
    })
}

/// The files among the sources found; standard input, which cannot be rewritten, is
/// noted and left out.
fn files_to_rewrite(sources: &[Source]) -> Vec<PathBuf> {
    let files = sources
        .iter()
        .filter_map(|s| match s {
            Source::File(p) => Some(p.clone()),
            Source::Stdin => None,
        })
        .collect();
    if sources.contains(&Source::Stdin) {
        eprintln!("logward: -: standard input cannot be rewritten; ignored");
    }
    files
}

/// Removes the temporary files an interrupted run left beside `files`, saying which.
fn remove_stale_temps(files: &[PathBuf]) {
    let mut dirs: Vec<&Path> = files
        .iter()
        .map(|p| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        match cleanup_stale_temps(dir) {
            Ok(removed) => {
                for p in removed {
                    eprintln!(
                        "logward: removed a temporary file left by an interrupted run: {}",
                        logward::escape::path(&p)
                    );
                }
            }
            Err(e) => eprintln!("logward: {}", chain(&e)),
        }
    }
}

/// What each file's rewrite is to do: mask lines before `cutoff` (or the erasure's).
fn plan(settings: &Settings, cutoff: i64) -> Plan {
    Plan {
        cutoff,
        format: settings.format.clone(),
        mode: settings.mode.clone(),
        method: settings.method.clone(),
        rewrite: RewriteOptions {
            include_active: settings.include_active,
            allowed_roots: allowed_roots(&settings.paths),
            gzip_level: settings.gzip_level,
            ..RewriteOptions::default()
        },
        dry_run: settings.dry_run,
        erase: settings.erase.clone(),
        whole_line: settings.whole_line,
        now: logward::timefmt::unix_now(),
    }
}

/// Rewrites `files` by `plan` on the settings' threads, drawing the progress line; the
/// results come in the order of `files`.
fn rewrite_files(
    files: &[PathBuf],
    plan: &Plan,
    ledger: Ledger,
    settings: &Settings,
) -> Result<Vec<FileResult>> {
    let ledger = Mutex::new(ledger);
    let progress = Arc::new(Progress::default());
    let total: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .sum();
    let line = ProgressLine::start(
        progress.clone(),
        total,
        files.len() as u64,
        settings.progress,
    );
    let results: Vec<FileResult> = with_threads(settings.threads, || {
        files
            .par_iter()
            .map(|p| {
                let r = anonymize_file(p, plan, &ledger, &progress);
                progress
                    .files_done
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                r
            })
            .collect()
    })?;
    line.finish();
    Ok(results)
}

/// Fills in the metrics' counts from the results; `unreadable` arguments count as failed
/// files.
fn count_results(counts: &mut RunCounts, results: &[FileResult], unreadable: usize) {
    let (totals, by_status) = totals(results);
    counts.files = Some(results.len() as u64);
    counts.files_rewritten = Some(by_status[Status::Rewritten as usize] as u64);
    counts.files_skipped = Some(by_status[Status::Skipped as usize] as u64);
    counts.files_failed = Some((by_status[Status::Failed as usize] + unreadable) as u64);
    counts.lines = Some(totals.lines);
    counts.addresses_masked = Some(totals.addresses);
    counts.hostnames_masked = Some(totals.hostnames);
}

/// Prints the report on standard output, as text or JSON.
fn write_report(settings: &Settings, cutoff: i64, results: &[FileResult]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match settings.output {
        OutputKind::Json | OutputKind::Ndjson => {
            serde_json::to_writer(&mut out, &to_json(settings, cutoff, results))?;
            writeln!(out)?;
        }
        OutputKind::Text => print_report(&mut out, settings, cutoff, results)?,
    }
    out.flush().context("cannot write the report")?;
    Ok(())
}

/// The rest of an erasure request, in order after the logs: the store forgets the sources
/// and masks them wherever else it keeps them, its bytes are made to forget them too, and
/// the audit log records what was done, with keyed hashes in place of the sources.
/// Returns whether the erasure is complete: false when files it could not rewrite (the
/// live log, files held open, failures) still hold the sources; those are reported with
/// how to finish.
fn finish_erasure(
    settings: &Settings,
    nets: &[ipnet::IpNet],
    state_dir: &Path,
    store_flag: Option<&Path>,
    config: &Config,
    results: &[FileResult],
) -> Result<bool> {
    let mut notes = Vec::new();
    let mut store_error = None;
    if settings.dry_run {
        notes.push("dry run: nothing was changed".to_string());
    } else {
        store_error = erase_from_store(settings, nets, store_flag, config, &mut notes)?;
    }
    let left = files_still_holding(nets, results, &mut notes);
    let complete = left.is_empty() && !settings.dry_run;
    for l in &left {
        eprintln!("logward: erasure incomplete: {l}");
    }
    if !left.is_empty() {
        eprintln!(
            "logward: to finish: run the same erasure after the next rotation (the live log \
             becomes access.log.1), or now with --include-active right after the server \
             reopens its logs (nginx -s reopen); files held open are done once closed"
        );
        notes.push("incomplete".to_string());
        notes.extend(left);
    } else if !settings.dry_run {
        notes.push("complete".to_string());
    }
    record_erasure(settings, state_dir, config, results, notes)?;
    if let Some(msg) = store_error {
        anyhow::bail!("{msg}");
    }
    Ok(complete || settings.dry_run)
}

/// Removes the sources' entries from the store, when there is one, and masks them in
/// other entries, adding what it did to `notes`. Returns the error to report once the
/// audit log has the rest: the store's WAL, which may still hold the old rows, could not
/// be truncated.
fn erase_from_store(
    settings: &Settings,
    nets: &[ipnet::IpNet],
    store_flag: Option<&Path>,
    config: &Config,
    notes: &mut Vec<String>,
) -> Result<Option<String>> {
    let store_path = state::store_path(store_flag, config)?;
    if !store_path.exists() {
        return Ok(None);
    }
    let mut store = state::open_store(&store_path)?;
    let masker = logward::anonymize::Masker::new(&settings.mode);
    let erased = store.erase(nets, &mut |addr| masker.masked(addr).to_string())?;
    let removed = count(
        erased.removed.len() as u64,
        "flagged-source entry",
        "flagged-source entries",
    );
    eprintln!(
        "logward: removed {removed} from {}{}",
        logward::escape::path(&store_path),
        match erased.masked_entries {
            0 => String::new(),
            n => format!(
                "; masked the sources in {} of other sources",
                count(n as u64, "entry", "entries")
            ),
        }
    );
    notes.push(format!(
        "{removed} removed from the store, {} of other sources masked",
        count(erased.masked_entries as u64, "entry", "entries")
    ));
    if erased.wal_truncated {
        return Ok(None);
    }
    let msg = format!(
        "{}-wal could not be truncated: another process (watch?) kept reading \
         the store past the busy timeout, and the old rows may still be in it; \
         run the erasure again",
        logward::escape::path(&store_path)
    );
    notes.push(msg.clone());
    Ok(Some(msg))
}

/// What the erasure could not reach: of the files not rewritten, those that still hold a
/// source, in words; those that hold none go into `notes`.
fn files_still_holding(
    nets: &[ipnet::IpNet],
    results: &[FileResult],
    notes: &mut Vec<String>,
) -> Vec<String> {
    let matcher = logward::search::Nets::new(nets);
    let mut left = Vec::new();
    for r in results
        .iter()
        .filter(|r| r.status != Status::Rewritten && r.status != Status::Unchanged)
    {
        let still =
            logward::search::lines_holding(&r.path, &matcher).map_err(|e| chain(&e).to_string());
        let reason = r.reason.as_deref().unwrap_or("");
        match still {
            Ok(0) => notes.push(format!(
                "{}: {:?} ({reason}); holds none of the sources",
                logward::escape::path(&r.path),
                r.status
            )),
            Ok(n) => left.push(format!(
                "{}: {} still {} the source ({reason})",
                logward::escape::path(&r.path),
                count(n, "line", "lines"),
                if n == 1 { "holds" } else { "hold" }
            )),
            Err(e) => left.push(format!(
                "{}: not rewritten ({reason}) and not readable to check: {e}",
                logward::escape::path(&r.path)
            )),
        }
    }
    left
}

/// Appends the erasure to the audit log: the sources' keyed hashes, the files rewritten,
/// the lines that held a source, and `notes`.
fn record_erasure(
    settings: &Settings,
    state_dir: &Path,
    config: &Config,
    results: &[FileResult],
    notes: Vec<String>,
) -> Result<()> {
    let audit = state::audit_log(state_dir, config)?;
    let mut sources = Vec::new();
    for s in &settings.sources {
        sources.push(audit.hash_source(s)?);
    }
    let entry = logward::audit::Entry {
        time: logward::timefmt::rfc3339(logward::timefmt::unix_now()),
        command: "erase",
        sources,
        files: results
            .iter()
            .filter(|r| r.status == Status::Rewritten)
            .map(|r| r.path.display().to_string())
            .collect(),
        lines: results.iter().map(|r| r.counts.erased_lines).sum(),
        notes,
        user: None,
        note: None,
    };
    audit.append(&entry)?;
    Ok(())
}

fn totals(results: &[FileResult]) -> (Counts, [usize; 4]) {
    let mut c = Counts::default();
    let mut by_status = [0usize; 4];
    for r in results {
        c.add(&r.counts);
        by_status[r.status as usize] += 1;
    }
    (c, by_status)
}

fn mode_text(s: &Settings) -> String {
    match &s.mode {
        Mode::Truncate(p) => format!("truncate to /{} and /{}", p.ipv4, p.ipv6),
        Mode::Pseudonymize(_) => "pseudonymize".to_string(),
    }
}

fn counts_json(c: &Counts) -> serde_json::Map<String, Value> {
    match serde_json::to_value(c) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

pub fn to_json(s: &Settings, cutoff: i64, results: &[FileResult]) -> Value {
    let files: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            m.insert("path".into(), json!(r.path.display().to_string()));
            m.insert("status".into(), json!(r.status));
            m.insert("reason".into(), json!(r.reason));
            m.insert("format".into(), json!(r.format));
            m.extend(counts_json(&r.counts));
            m.insert(
                "warnings".into(),
                json!(
                    r.counts
                        .few_clients(r.format.as_deref())
                        .into_iter()
                        .collect::<Vec<_>>()
                ),
            );
            Value::Object(m)
        })
        .collect();
    let (c, by) = totals(results);
    let mut t = serde_json::Map::new();
    t.insert("files".into(), json!(results.len()));
    t.insert("rewritten".into(), json!(by[Status::Rewritten as usize]));
    t.insert("unchanged".into(), json!(by[Status::Unchanged as usize]));
    t.insert("skipped".into(), json!(by[Status::Skipped as usize]));
    t.insert("failed".into(), json!(by[Status::Failed as usize]));
    t.extend(counts_json(&c));
    json!({
        "schema_version": logward::store::export::JSON_SCHEMA_VERSION,
        "dry_run": s.dry_run,
        "now": rfc3339(s.now),
        "cutoff": rfc3339(cutoff),
        "mode": s.method.split('/').next().unwrap_or("truncate"),
        "erasure": s.erase.is_some(),
        "files": files,
        "totals": t,
    })
}

/// The text report: what was masked, a line per file, then the totals.
fn print_report(
    out: &mut dyn Write,
    s: &Settings,
    cutoff: i64,
    results: &[FileResult],
) -> Result<()> {
    let dry = if s.dry_run { "Dry run. " } else { "" };
    if s.erase.is_some() {
        writeln!(
            out,
            "{dry}Erasure request for {} source(s), in every line whatever its age: {}.",
            s.sources.len(),
            mode_text(s)
        )?;
    } else {
        writeln!(
            out,
            "{dry}Lines before {} ({} before {}): {}.",
            rfc3339(cutoff),
            format_duration(s.older_than),
            rfc3339(s.now),
            mode_text(s)
        )?;
    }
    for r in results {
        let note = match (r.status, &r.reason) {
            (Status::Rewritten | Status::Unchanged, Some(n)) => format!(" ({n})"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:<13} {}  {}{note}",
            status_word(r.status, s.dry_run),
            logward::escape::path(&r.path),
            file_detail(s, r)
        )?;
    }
    print_totals(out, s, results)
}

/// A file's status in the report.
fn status_word(status: Status, dry_run: bool) -> &'static str {
    match (status, dry_run) {
        (Status::Rewritten, false) => "rewritten",
        (Status::Rewritten, true) => "would rewrite",
        (Status::Unchanged, _) => "unchanged",
        (Status::Skipped, _) => "skipped",
        (Status::Failed, _) => "FAILED",
    }
}

/// What the report says of a file: why it was skipped or failed, or what was masked in
/// it, then its warnings.
fn file_detail(s: &Settings, r: &FileResult) -> String {
    let c = &r.counts;
    let detail = match r.status {
        Status::Skipped | Status::Failed => r.reason.clone().unwrap_or_default(),
        _ if s.erase.is_some() => format!(
            "{}, {} held a source: {} masked",
            count(c.lines, "line", "lines"),
            c.erased_lines,
            count(c.addresses, "address", "addresses")
        ),
        _ if c.past_window == 0 => {
            format!("{}, none past the window", count(c.lines, "line", "lines"))
        }
        _ => masked_past_window(c),
    };
    with_warnings(detail, c, r.format.as_deref())
}

/// The lines past the window and what was masked in them.
fn masked_past_window(c: &Counts) -> String {
    let mut d = format!(
        "{}, {} past the window: {}",
        count(c.lines, "line", "lines"),
        c.past_window,
        count(c.addresses, "address", "addresses")
    );
    if c.hostnames > 0 {
        d.push_str(&format!(", {} host names", c.hostnames));
    }
    if c.unparsed_scrubbed > 0 {
        d.push_str(&format!(
            ", {} unreadable lines scrubbed",
            c.unparsed_scrubbed
        ));
    }
    if c.already_masked > 0 {
        d.push_str(&format!(", {} lines masked before", c.already_masked));
    }
    d
}

/// `detail` followed by the warnings of a file of `format`: addresses that may remain,
/// few clients found, lines too long to mask.
fn with_warnings(detail: String, c: &Counts, format: Option<&str>) -> String {
    let detail = if c.leaked_lines > 0 {
        format!(
            "{detail}; warning: {} still {} an address-shaped token outside the fields \
             masked and the user agent (--whole-line, or the right --format, masks it)",
            count(c.leaked_lines, "line", "lines"),
            if c.leaked_lines == 1 { "holds" } else { "hold" }
        )
    } else {
        detail
    };
    let detail = match c.few_clients(format) {
        Some(warning) => format!(
            "{detail}; warning: {warning}; its lines without a client had every \
             address-shaped token masked"
        ),
        None => detail,
    };
    if c.kept_long > 0 {
        format!(
            "{detail}; {} over the longest line read, kept as they were (their addresses stay)",
            count(c.kept_long, "line", "lines")
        )
    } else {
        detail
    }
}

/// The report's last line: files by status, lines, and what was replaced.
fn print_totals(out: &mut dyn Write, s: &Settings, results: &[FileResult]) -> Result<()> {
    let (c, by) = totals(results);
    writeln!(
        out,
        "{} files: {} {}, {} unchanged, {} skipped, {} failed. {} lines, {} {}, {} addresses and {} host names {}replaced.",
        results.len(),
        by[Status::Rewritten as usize],
        if s.dry_run { "to rewrite" } else { "rewritten" },
        by[Status::Unchanged as usize],
        by[Status::Skipped as usize],
        by[Status::Failed as usize],
        c.lines,
        if s.erase.is_some() {
            c.erased_lines
        } else {
            c.past_window
        },
        if s.erase.is_some() {
            "held a source"
        } else {
            "past the window"
        },
        c.addresses,
        c.hostnames,
        if s.dry_run { "to be " } else { "" },
    )?;
    Ok(())
}

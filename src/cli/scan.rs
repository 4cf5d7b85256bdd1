//! `logward scan`: reads logs and prints what they hold, as a human summary or one JSON
//! object; `--check` tests the format on the first lines of each file.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::detection::{DetectArgs, DetectVisitor, Detection};
use super::progress::ProgressLine;
use super::{Config, Outcome, switch, with_threads};
use crate::detect::Flagged;
use crate::detect::spill::SpillTo;
use crate::format::FormatSpec;
use crate::format::time::rfc3339;
use crate::input::{Source, discover};
use crate::scan::{self, Options, Progress, Report};
use crate::store::{Counted, FileFingerprint, FileHead, Recording};
use ipnet::IpNet;

/// Lines `--check` reads from each file.
pub const CHECK_LINES: u64 = 1000;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Log files, directories (walked for access logs and their rotations), quoted glob
    /// patterns such as '/var/log/nginx/*.log', or - for standard input.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,

    /// Log format: auto (per file, from its first lines), combined, common, vcombined,
    /// vcommon, main, haproxy, envoy, json, nginx:'<log_format>' or apache:'<LogFormat>';
    /// any of these but auto after a wrapper, for lines written through syslog, the journal
    /// or a container runtime: syslog:, rfc5424:, journal:, cri: or docker: (syslog:combined).
    /// [default: auto, which finds wrappers too]
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,

    /// Output: a human summary (text) or one JSON object (json). [default: text]
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<OutputKind>,

    /// Worker threads; 0 uses every core. [default: 0]
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<usize>,

    /// Parse only the first 1000 lines of each file and report the format found and the
    /// first errors: a quick test of a format before a long run.
    #[arg(long, overrides_with = "no_check")]
    pub check: bool,

    /// Undoes --check (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "check")]
    pub no_check: bool,

    /// Also list the files a directory walk skipped.
    #[arg(long, short = 'v', overrides_with = "no_verbose")]
    pub verbose: bool,

    /// Undoes --verbose (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "verbose")]
    pub no_verbose: bool,

    /// A path that does not exist, or a pattern that matches nothing, is noted and the run
    /// goes on with exit 0, as logrotate's `missingok`: for shared units and hooks that
    /// list the directories of servers a host may not have.
    #[arg(long, overrides_with = "no_missing_ok")]
    pub missing_ok: bool,

    /// Undoes --missing-ok (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "missing_ok")]
    pub no_missing_ok: bool,

    /// Never draw the progress line, even on a terminal.
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,

    /// Undoes --no-progress (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "no_progress")]
    pub progress: bool,

    /// Only summarize: run no detection and touch no store.
    #[arg(long, overrides_with = "detect_on")]
    pub no_detect: bool,

    /// Undoes --no-detect (from the config file, or earlier on the line).
    #[arg(long = "detect", hide = true, overrides_with = "no_detect")]
    pub detect_on: bool,

    /// Exit with status 1 when any source was flagged (for scripts).
    #[arg(long, overrides_with = "no_fail_on_flag")]
    pub fail_on_flag: bool,

    /// Undoes --fail-on-flag (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "fail_on_flag")]
    pub no_fail_on_flag: bool,

    #[command(flatten)]
    pub detect: DetectArgs,

    /// Size of the ranges large plain files are split into for parallel reading.
    #[arg(long, hide = true, value_name = "BYTES", default_value_t = 16 << 20)]
    pub chunk_size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputKind {
    Text,
    Json,
    /// One JSON object per line, for Elasticsearch, Splunk or `jq -c`.
    Ndjson,
}

pub use crate::store::export::JSON_SCHEMA_VERSION;

/// Scan settings after merging the command line with the configuration file.
pub struct Settings {
    pub paths: Vec<String>,
    pub format: FormatSpec,
    pub output: OutputKind,
    pub threads: usize,
    pub check: bool,
    pub verbose: bool,
    pub missing_ok: bool,
    pub progress: bool,
    pub chunk_size: u64,
    pub detect: Option<DetectArgs>,
    pub fail_on_flag: bool,
}

impl Settings {
    pub fn new(args: ScanArgs, config: &Config) -> Result<Settings> {
        let format = super::format_setting(args.format, config)?;
        let output = super::output_setting(args.output, config)?;
        let check = switch(args.check, args.no_check, config.check);
        let no_detect = switch(args.no_detect, args.detect_on, config.no_detect);
        Ok(Settings {
            paths: args.paths,
            format,
            output,
            threads: args.threads.or(config.threads).unwrap_or(0),
            check,
            verbose: switch(args.verbose, args.no_verbose, config.verbose),
            missing_ok: switch(args.missing_ok, args.no_missing_ok, config.missing_ok),
            progress: !switch(args.no_progress, args.progress, config.no_progress),
            chunk_size: args.chunk_size.max(1),
            detect: (!no_detect && !check).then_some(args.detect),
            fail_on_flag: switch(args.fail_on_flag, args.no_fail_on_flag, config.fail_on_flag),
        })
    }
}

pub fn run(args: ScanArgs, config: &Config) -> Result<Outcome> {
    let settings = Settings::new(args, config)?;
    let started = Instant::now();
    let mut detection = match &settings.detect {
        Some(args) => Some(Detection::new(args, config)?),
        None => None,
    };
    let mut found = discover(&settings.paths);
    super::report_discovery(&mut found, settings.missing_ok, settings.verbose);
    let opts = Options {
        format: settings.format.clone(),
        max_lines: settings.check.then_some(CHECK_LINES),
        chunk_size: settings.chunk_size,
        digest: false,
    };
    let progress = Arc::new(Progress::default());
    let total: u64 = found
        .sources
        .iter()
        .filter_map(|s| match s {
            Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Source::Stdin => None,
        })
        .sum();
    let line = ProgressLine::start(
        progress.clone(),
        total,
        found.sources.len() as u64,
        settings.progress && !settings.check,
    );
    // Lines the store has already counted (files scanned before, the old part of a live
    // log that grew) are read for the summary but not counted again.
    let heads: Vec<Option<FileHead>> = found
        .sources
        .iter()
        .map(|s| match (s, &detection) {
            (Source::File(p), Some(d)) if d.store.is_some() => FileHead::read(p).ok(),
            _ => None,
        })
        .collect();
    let mut counted = vec![Counted::Nothing; found.sources.len()];
    if let Some(Detection {
        store: Some(store),
        rescan: false,
        ..
    }) = &detection
    {
        for (i, head) in heads.iter().enumerate() {
            if let Some(head) = head {
                counted[i] = store.counted(head).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
    }
    let earlier: Vec<String> = found
        .sources
        .iter()
        .zip(heads.iter().zip(&counted))
        .filter_map(|(src, (head, counted))| {
            let size = head.as_ref()?.fingerprint.size;
            match *counted {
                Counted::Nothing => None,
                Counted::Grown(n) => Some(format!(
                    "{}: its first {n} bytes were counted by an earlier scan; their lines fill \
                     the rules' buckets, and only the {} bytes added since are counted \
                     (--rescan counts it all)",
                    src.display_escaped(),
                    size - n
                )),
                Counted::Before(_) | Counted::All => Some(format!(
                    "{}: already counted in the store; not counted again (--rescan counts it)",
                    src.display_escaped()
                )),
            }
        })
        .collect();
    // A file counted whole is not fed to the rules again (a directory of a year of rotated
    // logs would otherwise be held in memory on every scan); the old part of a live log that
    // grew is, so a burst that spans the two scans is seen whole.
    let skip: Vec<u64> = counted
        .iter()
        .map(|c| match c {
            Counted::Grown(_) => 0,
            c => c.offset(),
        })
        .collect();
    let skip = Arc::new(skip);
    let rules = detection.as_ref().map(|d| d.rules.clone());
    // Events beyond what memory should hold go to the state directory, which is on disk,
    // where the temporary directory may be in memory (tmpfs).
    let spill_dir = match detection.as_ref().and_then(|d| d.store.as_ref()) {
        Some(store) => store.state_dir(),
        None => std::env::temp_dir(),
    };
    let make_visitor = || {
        rules.as_ref().map(|r| {
            let mut collector = crate::detect::Collector::new(r.clone());
            collector.spill_events_to(SpillTo::shared_by(
                spill_dir.clone(),
                rayon::current_num_threads(),
            ));
            DetectVisitor {
                collector,
                skip: skip.clone(),
            }
        })
    };
    let mut report = with_threads(settings.threads, || {
        scan::run(&found.sources, &opts, make_visitor, &progress)
    })?;
    line.finish();
    if let Some(v) = report.visitor.as_mut() {
        v.collector
            .set_counted(counted.iter().map(|c| c.offset()).collect());
    }
    let mut flagged: Vec<Flagged> = match (&report.visitor, &detection) {
        (Some(v), Some(d)) => {
            for warning in v.collector.spill_warnings() {
                eprintln!("logward: warning: {warning}");
            }
            v.collector
                .finish_reading(&d.allowlist, &mut report.read_lines())
                .map_err(|e| {
                    anyhow::anyhow!(
                        "reading detection events back from a temporary file in {}: {e}",
                        spill_dir.display()
                    )
                })?
        }
        _ => Vec::new(),
    };
    let mut new_flags = Vec::new();
    let mut expiry: std::collections::HashMap<ipnet::IpNet, i64> = Default::default();
    if let Some(d) = &mut detection {
        d.drop_newly_allowed(&mut flagged)?;
        let names: Vec<Option<String>> = report
            .files
            .iter()
            .map(|f| match &f.source {
                Some(Source::File(path)) => Some(
                    std::path::absolute(path)
                        .unwrap_or_else(|_| path.clone())
                        .to_string_lossy()
                        .into_owned(),
                ),
                Some(other) => Some(other.display_escaped()),
                None => None,
            })
            .collect();
        new_flags = d.to_new_flags(&flagged, &|i| names.get(i).cloned().flatten());
        // A rescan reads lines an earlier scan counted: their episodes are recounted, not
        // added again, and the bans recorded for them stay as they are.
        // A scan that ran at the same time may have counted these files while this one
        // read them (two cron jobs, an operator's scan): its episodes are then the same
        // ones, recounted rather than added twice.
        let counted_meanwhile = match &d.store {
            Some(store) if !d.rescan => heads
                .iter()
                .zip(&counted)
                .filter(|(_, before)| matches!(before, Counted::Nothing))
                .filter_map(|(head, _)| head.as_ref())
                .any(|head| {
                    store
                        .counted(head)
                        .is_ok_and(|now| !matches!(now, Counted::Nothing))
                }),
            _ => false,
        };
        let how = if d.rescan || counted_meanwhile {
            Recording::Recount
        } else {
            Recording::Add
        };
        if let Some(store) = &mut d.store {
            expiry.extend(
                store
                    .record_flags_at(&new_flags, crate::timefmt::unix_now(), how)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            for (file, head) in report.files.iter().zip(&heads) {
                if let (Some(head), Some(Source::File(path)), None) =
                    (head, &file.source, &file.error)
                {
                    store
                        .mark_scanned(&scanned_through(head, path, file.bytes), path, now)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
            super::fleet::push_after_scan(config, store.path());
        }
    }
    for note in &earlier {
        eprintln!("logward: {note}");
    }
    let elapsed = started.elapsed().as_secs_f64();

    for file in &report.files {
        let name = file
            .source
            .as_ref()
            .map(Source::display_escaped)
            .unwrap_or_default();
        if let Some(err) = &file.error {
            eprintln!("logward: {err}");
        }
        // A reading that finds no clients must not pass for a clean file.
        if let Some(warning) = file.few_clients() {
            eprintln!("logward: warning: {name}: {warning}");
        }
        if !settings.check {
            for ex in &file.examples {
                eprintln!("logward: {name}:{}: malformed: {}", ex.line, ex.error);
            }
        }
    }
    // Files counted by an earlier scan flag nothing new: say what the store already holds
    // for their time range, so "none" is not read as "clean logs".
    let flagged_earlier = match &detection {
        Some(Detection {
            store: Some(store), ..
        }) if counted.iter().any(|c| !matches!(c, Counted::Nothing)) => {
            match (report.first_time(), report.last_time()) {
                (Some(first), Some(last)) => Some(
                    store
                        .query(&crate::store::Filter {
                            since: Some(first),
                            until: Some(last.saturating_add(1)),
                            ..Default::default()
                        })
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .len(),
                ),
                _ => None,
            }
        }
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    if settings.check {
        print_check(&mut out, &report)?;
    } else {
        match settings.output {
            OutputKind::Json => {
                let mut value = to_json(&report, elapsed);
                if settings.detect.is_some() {
                    value["flagged"] = Value::Array(
                        new_flags
                            .iter()
                            .map(|f| flagged_json(f, expiry.get(&f.source).copied()))
                            .collect(),
                    );
                }
                serde_json::to_writer(&mut out, &value)?;
                writeln!(out)?;
            }
            OutputKind::Ndjson => {
                // One flagged episode per line, then the summary: each object says which.
                for f in &new_flags {
                    let mut value = flagged_json(f, expiry.get(&f.source).copied());
                    value["type"] = json!("flagged");
                    serde_json::to_writer(&mut out, &value)?;
                    writeln!(out)?;
                }
                let mut value = to_json(&report, elapsed);
                value["type"] = json!("summary");
                serde_json::to_writer(&mut out, &value)?;
                writeln!(out)?;
            }
            OutputKind::Text => {
                print_summary(&mut out, &report, elapsed, found.skipped.len())?;
                if let Some(d) = &detection {
                    print_flagged(
                        &mut out,
                        &new_flags,
                        d.store.as_ref().map(|s| s.path().to_path_buf()),
                    )?;
                    if let Some(n) = flagged_earlier {
                        print_flagged_earlier(&mut out, n, new_flags.is_empty())?;
                    }
                }
            }
        }
    }
    out.flush()?;
    let failed = report.failed_files() + found.errors.len();
    Ok(if failed > 0 {
        Outcome::Error
    } else if settings.fail_on_flag && !flagged.is_empty() {
        Outcome::Found
    } else {
        Outcome::Success
    })
}

/// The sources with the most requests, most first; ties by address so output is stable.
pub fn top_sources(sources: &crate::scan::SourceCounts, n: usize) -> Vec<(IpAddr, u64)> {
    let mut all: Vec<(IpAddr, u64)> = sources.iter().map(|(a, c)| (*a, *c)).collect();
    let cmp = |a: &(IpAddr, u64), b: &(IpAddr, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
    if all.len() > n {
        all.select_nth_unstable_by(n, cmp);
        all.truncate(n);
    }
    all.sort_by(cmp);
    all
}

/// What the scan ledger records for a file this scan read whole: a compressed file as it
/// was found; a plain file through the end of the last line read, fingerprinted as it was
/// then, since a live log may have grown while it was read and the next scan counts it from
/// there. A file that was replaced meanwhile keeps the fingerprint found before the scan.
fn scanned_through(head: &FileHead, path: &Path, bytes_read: u64) -> FileFingerprint {
    if head.compressed {
        return head.fingerprint;
    }
    match FileHead::read(path) {
        Ok(now)
            if now.fingerprint.device == head.fingerprint.device
                && now.fingerprint.inode == head.fingerprint.inode =>
        {
            // A last line without a newline was counted one byte longer than it is.
            now.fingerprint_at(bytes_read.min(now.fingerprint.size))
        }
        _ => head.fingerprint,
    }
}

fn time_json(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

pub fn to_json<V>(report: &Report<V>, elapsed: f64) -> Value {
    let files: Vec<Value> = report
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.source.as_ref().map(Source::display),
                "format": f.format,
                "compressed": f.compression.is_some_and(|c| c != "none"),
                "lines": f.lines,
                "parsed": f.parsed,
                "with_client": f.with_client,
                "malformed": f.malformed,
                "empty": f.empty,
                "bytes": f.bytes,
                "first_time": time_json(f.first_time),
                "last_time": time_json(f.last_time),
                "error": f.error,
                "warnings": f.few_clients().into_iter().collect::<Vec<_>>(),
                "malformed_examples": f.examples.iter().map(|e| json!({"line": e.line, "reason": e.error.to_string()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let status: serde_json::Map<String, Value> = report
        .status
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(code, n)| (code.to_string(), json!(n)))
        .collect();
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "files": files,
        "lines": report.lines(),
        "parsed": report.parsed(),
        "malformed": report.malformed(),
        "empty": report.empty(),
        "bytes": report.bytes(),
        "first_time": time_json(report.first_time()),
        "last_time": time_json(report.last_time()),
        "distinct_sources": report.sources.len(),
        "top_sources": top_sources(&report.sources, 10).iter().map(|(a, n)| json!({"source": a.to_string(), "requests": n})).collect::<Vec<_>>(),
        "status": status,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
    })
}

/// A flagged episode as `scan` reports it in JSON: the fields of `flagged -o json` that
/// one scan knows (see the README's table).
fn flagged_json(f: &crate::store::NewFlag, expires: Option<i64>) -> Value {
    let counts = |c: &[(String, u64)], key: &str| -> Vec<Value> {
        c.iter()
            .map(|(name, n)| json!({ key: name, "events": n }))
            .collect()
    };
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "source": crate::store::net::display(f.source),
        "rules": f.rules,
        "rule_events": f.rule_events.iter().map(|(r, n)| (r.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "first_seen": rfc3339(f.first_seen),
        "last_seen": rfc3339(f.last_seen),
        "events": f.events,
        "vhost": f.sites.first().map(|(s, _)| s),
        "sites": counts(&f.sites, "site"),
        "files": counts(&f.files, "file"),
        "samples": f.samples,
        "country": f.country,
        "asn": f.asn,
        "as_org": f.as_org,
        "expires": expires.map(rfc3339),
    })
}

fn print_flagged(
    out: &mut dyn Write,
    flags: &[crate::store::NewFlag],
    store: Option<PathBuf>,
) -> Result<()> {
    writeln!(out)?;
    if flags.is_empty() {
        writeln!(out, "Flagged:   none")?;
        return Ok(());
    }
    let mut sources: Vec<IpNet> = flags.iter().map(|f| f.source).collect();
    sources.dedup();
    if sources.len() == flags.len() {
        writeln!(out, "Flagged sources ({}):", flags.len())?;
    } else {
        // A source that paused for hours between two attacks has two episodes.
        writeln!(
            out,
            "Flagged sources ({}, {}):",
            sources.len(),
            super::count(flags.len() as u64, "episode", "episodes")
        )?;
    }
    for f in flags {
        let geo = match (&f.country, f.asn) {
            (None, None) => String::new(),
            (c, a) => format!(
                "  [{}{}]",
                c.as_deref().unwrap_or("-"),
                a.map(|a| format!(" AS{a}")).unwrap_or_default()
            ),
        };
        let site = f
            .sites
            .first()
            .map(|(s, _)| format!("  on {}", crate::escape::text(s.as_bytes())))
            .unwrap_or_default();
        writeln!(
            out,
            "  {:<28} {:>7} events  {} .. {}  {}{site}{geo}",
            crate::store::net::display(f.source),
            f.events,
            rfc3339(f.first_seen),
            rfc3339(f.last_seen),
            f.rules.join(",")
        )?;
    }
    if let Some(path) = store {
        writeln!(
            out,
            "Recorded in {} (query with `logward flagged`).",
            crate::escape::path(&path)
        )?;
    }
    Ok(())
}

/// The line under the flagged list when files were counted by an earlier scan.
fn print_flagged_earlier(out: &mut dyn Write, n: usize, none_new: bool) -> Result<()> {
    let sources = if n == 1 { "source" } else { "sources" };
    if n == 0 {
        writeln!(
            out,
            "Files counted by an earlier scan: the store holds no flagged source for their time range."
        )?;
    } else if none_new {
        writeln!(
            out,
            "No new flag: these files were counted by an earlier scan, which flagged {n} {sources} in their time range (`logward flagged`)."
        )?;
    } else {
        writeln!(
            out,
            "Some files were counted by an earlier scan; the store holds {n} flagged {sources} in their time range (`logward flagged`)."
        )?;
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn print_summary<V>(
    out: &mut dyn Write,
    report: &Report<V>,
    elapsed: f64,
    skipped: usize,
) -> Result<()> {
    writeln!(out, "Files ({}):", report.files.len())?;
    for f in &report.files {
        let name = f
            .source
            .as_ref()
            .map(Source::display_escaped)
            .unwrap_or_default();
        let format = f.format.as_deref().unwrap_or("-");
        let gz = if f.compression == Some("gzip") {
            " gzip"
        } else {
            ""
        };
        let note = f
            .format_note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let state = if f.error.is_some() { "  ERROR" } else { "" };
        writeln!(
            out,
            "  {name}  [{format}{gz}{note}]  {}, {} malformed{state}",
            super::count(f.lines, "line", "lines"),
            f.malformed
        )?;
    }
    if skipped > 0 {
        writeln!(out, "  ({skipped} other files skipped; -v lists them)")?;
    }
    writeln!(out)?;
    let empty = match report.empty() {
        0 => String::new(),
        n => format!(", {n} empty"),
    };
    writeln!(
        out,
        "Lines:     {} ({} parsed, {} malformed{empty})",
        report.lines(),
        report.parsed(),
        report.malformed()
    )?;
    writeln!(out, "Bytes:     {}", human_bytes(report.bytes()))?;
    let t = |t: Option<i64>| t.map_or("-".to_string(), rfc3339);
    writeln!(
        out,
        "Time:      {} .. {}",
        t(report.first_time()),
        t(report.last_time())
    )?;
    writeln!(out, "Sources:   {} distinct", report.sources.len())?;
    let mut classes = [0u64; 6];
    for (code, n) in report.status.iter().enumerate() {
        classes[(code / 100).min(5)] += n;
    }
    let classes: Vec<String> = (1..6)
        .filter(|c| classes[*c] > 0)
        .map(|c| format!("{c}xx {}", classes[c]))
        .collect();
    writeln!(
        out,
        "Status:    {}",
        if classes.is_empty() {
            "-".to_string()
        } else {
            classes.join(", ")
        }
    )?;
    let top = top_sources(&report.sources, 10);
    if !top.is_empty() {
        writeln!(out, "\nTop sources by requests:")?;
        for (addr, n) in top {
            writeln!(out, "  {n:>10}  {addr}")?;
        }
    }
    let rate = report.bytes() as f64 / 1e6 / elapsed.max(1e-9);
    writeln!(
        out,
        "\nRead {} in {elapsed:.2} s ({rate:.0} MB/s).",
        human_bytes(report.bytes())
    )?;
    Ok(())
}

fn print_check<V>(out: &mut dyn Write, report: &Report<V>) -> Result<()> {
    for f in &report.files {
        let name = f.source.as_ref().map(Source::display).unwrap_or_default();
        let format = f.format.as_deref().unwrap_or("none");
        let note = f
            .format_note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        writeln!(
            out,
            "{name}: format {format}{note}: {} of the first {} lines parsed, {} with a client address",
            f.parsed, f.lines, f.with_client
        )?;
        for ex in &f.examples {
            writeln!(out, "{name}:{}: {}", ex.line, ex.error)?;
        }
        if f.few_clients().is_some() {
            writeln!(
                out,
                "{name}: warning: most parsed lines have no client address: this format reads the \
                 lines' shape, not their fields"
            )?;
        }
    }
    Ok(())
}

/// Paths of the files a report read, for callers that act on them next.
pub fn file_paths<V>(report: &Report<V>) -> Vec<PathBuf> {
    report
        .files
        .iter()
        .filter_map(|f| match &f.source {
            Some(Source::File(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

//! `logward scan`: reads logs and prints what they hold, as a human summary or one JSON
//! object; `--check` tests the format on the first lines of each file.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use ipnet::IpNet;
use logward::detect::spill::SpillTo;
use logward::detect::{Flagged, NearMiss};
use logward::error::chain;
use logward::format::FormatSpec;
use logward::format::time::rfc3339;
use logward::input::{Discovered, Source, discover};
use logward::metrics::RunCounts;
use logward::report::Tally;
use logward::scan::{self, AlreadyCounted, DetectVisitor, Detection, Options, Progress, Report};
use logward::store::Counted;
use logward::timefmt::unix_now;
use serde_json::{Value, json};

use super::detection::{self, DetectArgs};
use super::metrics::MetricsFile;
use super::progress::ProgressLine;
use super::{Config, Outcome, switch, with_threads};

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

    #[command(flatten)]
    pub walk: super::WalkArgs,

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

    /// At the end of the run, write its metrics (lines, bytes, files, flags per rule,
    /// duration, last success...) into this node_exporter textfile, replaced atomically;
    /// other commands' metrics in it stay. --check writes none.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Also write the HTML report of this pass into FILE (see `logward report`): the same
    /// page, from the same single reading of the logs, with the bans this scan recorded.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// With --report: truncate every address on the page to /24 and /48, as `anonymize`
    /// does, for a page sent to a customer.
    #[arg(long, overrides_with = "no_mask")]
    pub mask: bool,

    /// Undoes --mask (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "mask")]
    pub no_mask: bool,

    #[command(flatten)]
    pub detect: DetectArgs,

    /// Size of the ranges large plain files are split into for parallel reading.
    #[arg(long, hide = true, value_name = "BYTES", default_value_t = 16 << 20)]
    pub chunk_size: u64,
}

pub use super::OutputKind;

pub use logward::store::export::JSON_SCHEMA_VERSION;

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
    /// Where the HTML report goes (`-` for stdout), if one is asked for.
    pub report: Option<PathBuf>,
    pub mask: bool,
    /// `logward report`: the page is the output; nothing else goes to stdout.
    pub page_only: bool,
    /// The GeoIP and ASN databases, when either is set (for a page without detection).
    pub geo: Option<(Option<PathBuf>, Option<PathBuf>)>,
}

impl Settings {
    pub fn new(args: ScanArgs, config: &Config) -> Result<Settings> {
        let format = super::format_setting(args.format, config)?;
        let output = super::output_setting(args.output, config)?;
        let check = switch(args.check, args.no_check, config.check);
        let no_detect = switch(args.no_detect, args.detect_on, config.no_detect);
        let geoip = args
            .detect
            .input
            .geoip
            .clone()
            .or_else(|| config.geoip.clone());
        let asn = args.detect.input.asn.clone().or_else(|| config.asn.clone());
        let geo = (geoip.is_some() || asn.is_some()).then_some((geoip, asn));
        Ok(Settings {
            paths: args.paths,
            format,
            output,
            threads: args.threads.or(config.threads).unwrap_or(0),
            check,
            verbose: args.walk.verbose(config),
            missing_ok: args.walk.missing_ok(config),
            progress: args.walk.progress(config),
            chunk_size: args.chunk_size.max(1),
            detect: (!no_detect && !check).then_some(args.detect),
            fail_on_flag: switch(args.fail_on_flag, args.no_fail_on_flag, config.fail_on_flag),
            report: args.report.filter(|_| !check),
            mask: switch(args.mask, args.no_mask, config.mask),
            page_only: false,
            geo,
        })
    }
}

pub fn run(mut args: ScanArgs, config: &Config) -> Result<Outcome> {
    let check = switch(args.check, args.no_check, config.check);
    let metrics = match check {
        true => None,
        false => MetricsFile::setting(args.metrics_file.take(), config, "scan")?,
    };
    let mut counts = RunCounts::default();
    let result = Settings::new(args, config).and_then(|s| scan(s, config, &mut counts));
    super::metrics::finish(metrics, result, counts, |o| o != Outcome::Error)
}

/// The scan, filling in `counts` for the metrics as it goes.
pub fn scan(settings: Settings, config: &Config, counts: &mut RunCounts) -> Result<Outcome> {
    let started = Instant::now();
    let mut detection = match &settings.detect {
        Some(args) => Some(detection::setup(args, config)?),
        None => None,
    };
    let mut found = discover(&settings.paths);
    super::report_discovery(&mut found, settings.missing_ok, settings.verbose);
    let progress = Arc::new(Progress::default());
    let line = ProgressLine::start(
        progress.clone(),
        total_bytes(&found.sources),
        found.sources.len() as u64,
        settings.progress && !settings.check,
    );
    // Lines the store has already counted (files scanned before, the old part of a live
    // log that grew) are read for the summary but not counted again.
    let counted = AlreadyCounted::check(
        &found.sources,
        detection.as_ref().and_then(|d| d.store.as_ref()),
        detection.as_ref().is_some_and(|d| d.rescan),
    )?;
    let earlier = earlier_notes(&found.sources, &counted);
    // Events beyond what memory should hold go to the state directory, which is on disk,
    // where the temporary directory may be in memory (tmpfs).
    let spill_dir = match detection.as_ref().and_then(|d| d.store.as_ref()) {
        Some(store) => store.state_dir(),
        None => std::env::temp_dir(),
    };
    let mut report = read(
        &settings,
        &found.sources,
        detection.as_ref(),
        &counted,
        &spill_dir,
        &progress,
    )?;
    line.finish();
    // Near misses only count in a fleet, and reach it only through a store.
    let near = super::fleet::counts_near_misses(config)
        && detection.as_ref().is_some_and(|d| d.store.is_some());
    let (mut flagged, near_misses) =
        finish_detection(&mut report, detection.as_ref(), &counted, &spill_dir, near)?;
    let mut recorded = Recorded::default();
    if let Some(d) = &mut detection {
        recorded = record(d, &mut flagged, near_misses, &report, &counted)?;
        if let Some(store) = &d.store {
            super::fleet::push_after_scan(config, store.path());
        }
    }
    // A page that records nothing shows the bans the store already holds for its sources.
    if let (true, Some(args), Some(_)) = (settings.page_only, &settings.detect, &detection) {
        let sources = recorded.flags.iter().map(|f| f.source).collect();
        match detection::stored_bans(args, config, &sources, unix_now()) {
            Ok(bans) => recorded.expiry = bans,
            Err(e) => eprintln!(
                "logward: warning: the page shows no bans: {}",
                chain(e.as_ref())
            ),
        }
    }
    for note in &earlier {
        eprintln!("logward: {note}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    report_files(&report, settings.check);
    let failed = report.failed_files() + found.errors.len();
    count_run(counts, &report, &found, failed);
    if detection.is_some() {
        counts.count_flags(&recorded.flags);
    }
    // Files counted by an earlier scan flag nothing new: say what the store already holds
    // for their time range, so "none" is not read as "clean logs".
    let flagged_earlier = match detection.as_ref().and_then(|d| d.store.as_ref()) {
        Some(store) if counted.any() => flagged_in_range(store, &report)?,
        _ => None,
    };
    if let Some(path) = &settings.report {
        let page = page(&settings, &report, detection.as_ref(), &flagged, &recorded);
        write_page(path, &page, settings.mask)?;
        if settings.page_only && path.as_os_str() != "-" {
            print_page_note(path, &report, &recorded, page.len());
        }
    }
    let mut out = std::io::stdout().lock();
    if settings.page_only {
        // The page (or its one-line note) was the output.
    } else if settings.check {
        print_check(&mut out, &report)?;
    } else {
        let summary = Summary {
            report: &report,
            elapsed,
            skipped: found.skipped.len(),
            recorded: &recorded,
            flagged_earlier,
        };
        print_output(&mut out, &settings, detection.as_ref(), &summary)?;
    }
    out.flush()?;
    Ok(if failed > 0 {
        Outcome::Error
    } else if settings.fail_on_flag && !flagged.is_empty() {
        Outcome::Found
    } else {
        Outcome::Success
    })
}

/// Bytes of the regular files among `sources`, for the progress line.
fn total_bytes(sources: &[Source]) -> u64 {
    sources
        .iter()
        .filter_map(|s| match s {
            Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Source::Stdin => None,
        })
        .sum()
}

/// The run's figures for the metrics: lines, bytes and files read, skipped and failed.
fn count_run(counts: &mut RunCounts, report: &Pass, found: &Discovered, failed: usize) {
    counts.lines = Some(report.lines());
    counts.malformed = Some(report.malformed());
    counts.bytes = Some(report.bytes());
    counts.files = Some(report.files.len() as u64);
    counts.files_skipped = Some(found.skipped.len() as u64);
    counts.files_failed = Some(failed as u64);
}

/// The one line `report -o FILE` prints: the page's file, lines, sources and size.
fn print_page_note(path: &Path, report: &Pass, recorded: &Recorded, page_len: usize) {
    let distinct: std::collections::HashSet<IpNet> =
        recorded.flags.iter().map(|f| f.source).collect();
    println!(
        "{}: {}, {} flagged, {}",
        logward::escape::path(path),
        super::count(report.lines(), "line", "lines"),
        super::count(distinct.len() as u64, "source", "sources"),
        human_bytes(page_len as u64)
    );
}

/// The HTML report of this pass.
fn page(
    settings: &Settings,
    report: &Pass,
    detection: Option<&Detection>,
    flagged: &[Flagged],
    recorded: &Recorded,
) -> String {
    // The page names files as they were given (the store's entries name them absolute),
    // so a page made of the same files elsewhere is the same page.
    let names: Vec<Option<String>> = report
        .files
        .iter()
        .map(|f| f.source.as_ref().map(Source::display))
        .collect();
    let flags = detection.map(|d| d.to_new_flags(flagged, &|i| names.get(i).cloned().flatten()));
    let fallback = Tally::new();
    let tally = report.visitor.1.as_ref().unwrap_or(&fallback);
    // Without detection, the page still shows countries and AS with --geoip and --asn.
    let own_geo = match (detection, &settings.geo) {
        (None, Some((country, asn))) => {
            match logward::geo::Geo::open(country.as_deref(), asn.as_deref()) {
                Ok(g) => Some(g),
                Err(e) => {
                    eprintln!("logward: warning: {e}; the page has no country or AS tables");
                    None
                }
            }
        }
        _ => None,
    };
    let geo = detection.map(|d| &d.geo).or(own_geo.as_ref());
    logward::report::render(&logward::report::Page {
        files: &report.files,
        sources: &report.sources,
        top_sources: &report.top_sources(logward::report::TOP),
        status: &report.status,
        tally,
        flagged: flags.as_deref(),
        bans: &recorded.expiry,
        geo,
        mask: settings
            .mask
            .then_some(logward::anonymize::Prefixes::DEFAULT),
    })
}

/// Writes the page to `path` (`-`: stdout), replacing it atomically. A page with addresses
/// is readable by its owner only; a masked one by anyone.
fn write_page(path: &Path, page: &str, masked: bool) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(page.as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    let mode = if masked { 0o644 } else { 0o600 };
    logward::rewrite::write_small_file_mode(path, page.as_bytes(), false, mode).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot write the report: {e}",
            logward::escape::path(path)
        )
    })
}

/// What the store had counted, as notes for stderr.
fn earlier_notes(sources: &[Source], counted: &AlreadyCounted) -> Vec<String> {
    sources
        .iter()
        .zip(counted.counted())
        .enumerate()
        .filter_map(|(i, (src, before))| {
            let size = counted.size(i)?;
            match *before {
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
        .collect()
}

type Pass = Report<(Option<DetectVisitor>, Option<Tally>)>;

/// The pass over the files, feeding detection when it runs.
fn read(
    settings: &Settings,
    sources: &[Source],
    detection: Option<&Detection>,
    counted: &AlreadyCounted,
    spill_dir: &Path,
    progress: &Arc<Progress>,
) -> Result<Pass> {
    let opts = Options {
        format: settings.format.clone(),
        max_lines: settings.check.then_some(CHECK_LINES),
        chunk_size: settings.chunk_size,
        digest: false,
    };
    let skip = Arc::new(counted.skip_offsets());
    let rules = detection.map(|d| d.rules.clone());
    let tally = settings.report.is_some();
    let make_visitor = || {
        let detect = rules.as_ref().map(|r| {
            let mut collector = logward::detect::Collector::new(r.clone());
            collector.spill_events_to(SpillTo::shared_by(
                spill_dir.to_path_buf(),
                rayon::current_num_threads(),
            ));
            DetectVisitor {
                collector,
                skip: skip.clone(),
            }
        });
        (detect, tally.then(Tally::new))
    };
    with_threads(settings.threads, || {
        scan::run(sources, &opts, make_visitor, progress)
    })
}

/// Detection's flagged episodes once the pass is over; warnings about events spilled to
/// disk go to stderr.
fn finish_detection(
    report: &mut Pass,
    detection: Option<&Detection>,
    counted: &AlreadyCounted,
    spill_dir: &Path,
    near: bool,
) -> Result<(Vec<Flagged>, Vec<NearMiss>)> {
    if let Some(v) = report.visitor.0.as_mut() {
        v.collector.set_counted(counted.counted_offsets());
    }
    let (Some(v), Some(d)) = (&report.visitor.0, detection) else {
        return Ok((Vec::new(), Vec::new()));
    };
    for warning in v.collector.spill_warnings() {
        eprintln!("logward: warning: {warning}");
    }
    let mut lines = report.read_lines();
    let finished = match near {
        true => v
            .collector
            .finish_with_near_misses(&d.allowlist, &mut lines),
        false => v
            .collector
            .finish_reading(&d.allowlist, &mut lines)
            .map(|flagged| (flagged, Vec::new())),
    };
    finished.with_context(|| {
        format!(
            "reading detection events back from a temporary file in {}",
            spill_dir.display()
        )
    })
}

/// The flags of this scan as store entries, with the end of each source's ban as the store
/// recorded it.
#[derive(Default)]
struct Recorded {
    flags: Vec<logward::store::NewFlag>,
    expiry: HashMap<IpNet, i64>,
}

/// Records `flagged` (less the sources allowed meanwhile) in the store, if there is one,
/// and the files read in its scan ledger.
fn record(
    d: &mut Detection,
    flagged: &mut Vec<Flagged>,
    near_misses: Vec<NearMiss>,
    report: &Pass,
    counted: &AlreadyCounted,
) -> Result<Recorded> {
    d.drop_newly_allowed(flagged)?;
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
    let mut recorded = Recorded {
        flags: d.to_new_flags(flagged, &|i| names.get(i).cloned().flatten()),
        expiry: HashMap::new(),
    };
    if let Some(store) = &mut d.store {
        // From the decision to the ledger, one scan at a time: see lock_for_recording.
        let _recording = store.lock_for_recording()?;
        let how = counted.recording(store, d.rescan);
        recorded
            .expiry
            .extend(store.record_flags_at(&recorded.flags, unix_now(), how)?);
        if !near_misses.is_empty() {
            let near = logward::scan::to_new_near_misses(near_misses);
            store.record_near_misses(&near, unix_now(), how)?;
        }
        counted.mark_scanned(store, &report.files, unix_now())?;
    }
    Ok(recorded)
}

/// Per file: its read error, a warning when few lines gave a client, and (unless
/// `--check`, which prints them on stdout) the first malformed lines.
fn report_files(report: &Pass, check: bool) {
    for file in &report.files {
        let name = file
            .source
            .as_ref()
            .map(Source::display_escaped)
            .unwrap_or_default();
        if let Some(err) = &file.error {
            eprintln!("logward: {}", chain(err));
        }
        // A reading that finds no clients must not pass for a clean file.
        if let Some(warning) = file.few_clients() {
            eprintln!("logward: warning: {name}: {warning}");
        }
        if !check {
            for ex in &file.examples {
                eprintln!("logward: {name}:{}: malformed: {}", ex.line, ex.error);
            }
        }
    }
}

/// How many flagged sources the store holds for the time range of the lines read.
fn flagged_in_range(store: &logward::store::Store, report: &Pass) -> Result<Option<usize>> {
    let (Some(first), Some(last)) = (report.first_time(), report.last_time()) else {
        return Ok(None);
    };
    let filter = logward::store::Filter {
        since: Some(first),
        until: Some(last.saturating_add(1)),
        ..Default::default()
    };
    let entries = store.query(&filter)?;
    Ok(Some(entries.len()))
}

/// What a scan prints on stdout, besides `--check`.
struct Summary<'a> {
    report: &'a Pass,
    elapsed: f64,
    skipped: usize,
    recorded: &'a Recorded,
    /// Flagged sources the store holds for the time range of files counted before.
    flagged_earlier: Option<usize>,
}

fn print_output(
    out: &mut dyn Write,
    settings: &Settings,
    detection: Option<&Detection>,
    s: &Summary<'_>,
) -> Result<()> {
    let flags = &s.recorded.flags;
    let flag_json =
        |f: &logward::store::NewFlag| flagged_json(f, s.recorded.expiry.get(&f.source).copied());
    match settings.output {
        OutputKind::Json => {
            let mut value = to_json(s.report, s.elapsed);
            if settings.detect.is_some() {
                value["flagged"] = Value::Array(flags.iter().map(flag_json).collect());
            }
            serde_json::to_writer(&mut *out, &value)?;
            writeln!(out)?;
        }
        OutputKind::Ndjson => {
            // One flagged episode per line, then the summary: each object says which.
            for f in flags {
                let mut value = flag_json(f);
                value["type"] = json!("flagged");
                serde_json::to_writer(&mut *out, &value)?;
                writeln!(out)?;
            }
            let mut value = to_json(s.report, s.elapsed);
            value["type"] = json!("summary");
            serde_json::to_writer(&mut *out, &value)?;
            writeln!(out)?;
        }
        OutputKind::Text => {
            print_summary(out, s.report, s.elapsed, s.skipped)?;
            if let Some(d) = detection {
                print_flagged(out, flags, d.store.as_ref().map(|s| s.path().to_path_buf()))?;
                if let Some(n) = s.flagged_earlier {
                    print_flagged_earlier(out, n, flags.is_empty())?;
                }
            }
        }
    }
    Ok(())
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
                "error": f.error.as_ref().map(|e| chain(e).to_string()),
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
        "top_sources": report.top_sources(10).iter().map(|(a, n)| json!({"source": a.to_string(), "requests": n})).collect::<Vec<_>>(),
        "status": status,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
    })
}

/// A flagged episode as `scan` reports it in JSON: the fields of `flagged -o json` that
/// one scan knows (see the README's table).
fn flagged_json(f: &logward::store::NewFlag, expires: Option<i64>) -> Value {
    let counts = |c: &[(String, u64)], key: &str| -> Vec<Value> {
        c.iter()
            .map(|(name, n)| json!({ key: name, "events": n }))
            .collect()
    };
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "source": logward::store::net::display(f.source),
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
    flags: &[logward::store::NewFlag],
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
        let geo = f
            .geo_label()
            .map(|g| format!("  [{g}]"))
            .unwrap_or_default();
        let site = f
            .sites
            .first()
            .map(|(s, _)| format!("  on {}", logward::escape::text(s.as_bytes())))
            .unwrap_or_default();
        writeln!(
            out,
            "  {:<28} {:>7} events  {} .. {}  {}{site}{geo}",
            logward::store::net::display(f.source),
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
            logward::escape::path(&path)
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
    let top = report.top_sources(10);
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

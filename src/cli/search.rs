//! `logward search`: prints the lines about some addresses or ranges (`path:line:` and the
//! line as written, JSON lines, or counts), each rotation set oldest file first so lines
//! come in time order, or writes them into an evidence package (`--evidence`); records the
//! search in the audit log. Exit code 0 when a line matched, 1 when none did, 2 on an error.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ipnet::IpNet;
use logward::audit::Entry;
use logward::error::chain;
use logward::format::{ErrorKind, FormatSpec};
use logward::input::discover::sort_oldest_first;
use logward::input::{Source, discover};
use logward::metrics::RunCounts;
use logward::scan::{self, Options, Progress, Report};
use logward::search::evidence::{self, EvidenceLine, Package};
use logward::search::{self, Fields, Hit, Keep, Nets, SCHEMA_VERSION, Search, VhostFilter, Window};
use logward::timefmt::{rfc3339, unix_now};
use serde_json::{Value, json};

use super::OutputKind;
use super::metrics::MetricsFile;
use super::{Config, Outcome, state, switch, with_threads};

/// Exit code 1, as grep: the search ran and found nothing.
const NOTHING_FOUND: Outcome = Outcome::Found;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// An address (203.0.113.7, 2001:db8::1) or a network (203.0.113.0/24, 2001:db8::/48)
    /// to search for; repeat for several. An IPv4-mapped address (::ffff:203.0.113.7) is
    /// the same as its IPv4 form.
    #[arg(long, short = 's', value_name = "IP|CIDR", required = true)]
    pub source: Vec<String>,

    /// Log files, directories (walked for access logs and their rotations), quoted glob
    /// patterns, or - for standard input.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,

    /// Only lines at or after this time: RFC 3339 (2026-11-22T00:00:00Z), a date (its
    /// midnight UTC) or a duration meaning that long ago (24h, 7d). Lines without a time
    /// are always printed.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only lines at or before this time, as --since.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Only lines of this virtual host: the host name a format such as vcombined logs
    /// (without its :port), compared ignoring case. Lines without one (a format that logs
    /// none, an unparsed line) are left out, and standard error says how many.
    #[arg(long, value_name = "NAME")]
    pub vhost: Option<String>,

    /// Write an evidence package into DIR instead of printing the lines: evidence.log (the
    /// lines as written, in time order, each after its file's absolute path:line:) and
    /// manifest.json (the query, the time range found, the size and SHA-256 of every file
    /// read and of evidence.log). DIR is created (mode 0700) or must be an empty directory;
    /// a symbolic link is refused. Files only, not standard input.
    #[arg(long, value_name = "DIR", conflicts_with = "count")]
    pub evidence: Option<PathBuf>,

    /// Output: the matching lines as written (text) or one JSON object per line (json,
    /// printable ASCII only). [default: text]
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<OutputKind>,

    /// Print only the number of matching lines per file, then the total.
    #[arg(long, short = 'c', overrides_with = "no_count")]
    pub count: bool,

    /// Undoes --count (from the config file, or earlier on the line).
    #[arg(long, hide = true, overrides_with = "count")]
    pub no_count: bool,

    /// Do not prefix lines with `path:line:`.
    #[arg(long, overrides_with = "with_filename")]
    pub no_filename: bool,

    /// Undoes --no-filename (from the config file, or earlier on the line).
    #[arg(long = "with-filename", hide = true, overrides_with = "no_filename")]
    pub with_filename: bool,

    /// Log format: auto (per file, from its first lines), a preset name,
    /// nginx:'<log_format>' or apache:'<LogFormat>', or one of these after a wrapper
    /// (syslog:combined, cri:json; see `scan --help`). [default: auto]
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,

    /// Worker threads; 0 uses every core. [default: 0]
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<usize>,

    /// The store database; the audit log is kept in the state directory beside it.
    /// [default: $LOGWARD_STORE, the config's store, /var/lib/logward/logward.db when
    /// writable, else $XDG_STATE_HOME/logward/logward.db]
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,

    /// At the end of the search, write its metrics (lines, bytes, files, lines found,
    /// duration, last success...) into this node_exporter textfile, replaced atomically;
    /// other commands' metrics in it stay.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Size of the ranges large plain files are split into for parallel reading.
    #[arg(long, hide = true, value_name = "BYTES", default_value_t = 16 << 20)]
    pub chunk_size: u64,
}

/// Search settings after merging the command line with the configuration file.
pub struct Settings {
    /// The sources as given, for the audit log.
    pub sources: Vec<String>,
    pub nets: Nets,
    pub window: Window,
    pub vhost: Option<String>,
    pub evidence: Option<PathBuf>,
    pub paths: Vec<String>,
    pub output: OutputKind,
    pub count: bool,
    pub filename: bool,
    pub format: FormatSpec,
    pub threads: usize,
    pub store: Option<PathBuf>,
    pub chunk_size: u64,
}

/// A time given as RFC 3339, a date (its midnight UTC) or a duration before `now`, as
/// every command reads `--since` and `--until`.
fn parse_time(option: &str, text: &str, now: i64) -> Result<i64> {
    super::flagged::time_arg(option.trim_start_matches('-'), text, now)
}

impl Settings {
    pub fn new(args: SearchArgs, config: &Config, now: i64) -> Result<Settings> {
        let mut nets: Vec<IpNet> = Vec::with_capacity(args.source.len());
        for s in &args.source {
            match search::parse_source(s) {
                Some(n) => nets.push(n),
                None => bail!("--source: {s:?} is not an address or a network (IP or CIDR)"),
            }
        }
        let window = Window {
            since: args
                .since
                .as_deref()
                .map(|t| parse_time("--since", t, now))
                .transpose()?,
            until: args
                .until
                .as_deref()
                .map(|t| parse_time("--until", t, now))
                .transpose()?,
        };
        if args.vhost.as_deref().is_some_and(|v| v.trim().is_empty()) {
            bail!("--vhost: give a host name, such as www.example.com");
        }
        if args.evidence.is_some() && args.paths.iter().any(|p| p == "-") {
            bail!(
                "--evidence reads files, not standard input: name the files, so the manifest \
                 can say which bytes the lines came from"
            );
        }
        let format = super::format_setting(args.format, config)?;
        let output = super::output_setting(args.output, config)?;
        Ok(Settings {
            sources: args.source,
            nets: Nets::new(&nets),
            window,
            vhost: args.vhost.map(|v| v.trim().to_string()),
            evidence: args.evidence,
            paths: args.paths,
            output,
            count: switch(args.count, args.no_count, config.count),
            filename: !switch(args.no_filename, args.with_filename, config.no_filename),
            format,
            threads: args.threads.or(config.threads).unwrap_or(0),
            store: args.store,
            chunk_size: args.chunk_size.max(1),
        })
    }
}

pub fn run(mut args: SearchArgs, config: &Config) -> Result<Outcome> {
    let metrics = MetricsFile::setting(args.metrics_file.take(), config, "search")?;
    let mut counts = RunCounts::default();
    let result = search(args, config, &mut counts);
    // Nothing found (exit 1) is an answer, not a failure.
    super::metrics::finish(metrics, result, counts, |o| o != Outcome::Error)
}

/// The search, filling in `counts` for the metrics as it goes.
fn search(args: SearchArgs, config: &Config, metrics: &mut RunCounts) -> Result<Outcome> {
    let settings = Settings::new(args, config, unix_now())?;
    // The audit log is the point of a search's record keeping: without a state directory
    // the search does not start.
    let audit = state::audit_log(
        &state::state_dir(settings.store.as_deref(), config)?,
        config,
    )?;
    let sources = hashed_sources(&audit, &settings.sources)?;
    // The package's directory is taken before anything is read, so a refused one costs
    // nothing.
    let package = settings
        .evidence
        .as_deref()
        .map(Package::create)
        .transpose()?;
    let mut found = discover(&settings.paths);
    sort_oldest_first(&mut found.sources);
    super::report_discovery(&mut found, false, false);
    let vhost = VhostFilter::new(settings.vhost.as_deref());
    let mut report = read_files(&settings, &vhost, &found.sources, package.is_some())?;
    let names: Vec<String> = report
        .files
        .iter()
        .map(|f| f.source.as_ref().map(Source::display).unwrap_or_default())
        .collect();
    report_file_notes(&report, &names);

    let failed = report.failed_files() + found.errors.len();
    let counts = std::mem::take(&mut report.visitor.counts);
    let total: u64 = counts.iter().sum();
    metrics.lines = Some(report.lines());
    metrics.malformed = Some(report.malformed());
    metrics.bytes = Some(report.bytes());
    metrics.files = Some(report.files.len() as u64);
    metrics.files_failed = Some(failed as u64);
    metrics.matched_lines = Some(total);
    let mut hits = std::mem::take(&mut report.visitor.hits);
    // Files were put oldest first, so input order is time order within each rotation set.
    hits.sort_unstable_by_key(|h| h.at.order());
    if package.is_some() {
        hits = one_timeline(hits);
    }
    let mut notes = Vec::new();
    if let Some(v) = &settings.vhost {
        notes.push(format!("vhost: {v}"));
    }
    let written = match &package {
        Some(package) => write_evidence(package, &settings, &report, &counts, &hits, &mut notes),
        None => print_results(&settings, &report, &names, &counts, &hits),
    };
    // Recorded even when the output failed: the files were read all the same.
    let audited = record_search(&audit, sources, names, total, notes);
    written?;
    audited?;

    Ok(if failed > 0 {
        Outcome::Error
    } else if total == 0 {
        NOTHING_FOUND
    } else {
        Outcome::Success
    })
}

/// The sources' keyed hashes for the audit log, never the addresses in clear (see
/// `logward::audit`). Made before the search, so a key that cannot be used stops it before
/// anything is read.
fn hashed_sources(audit: &logward::audit::AuditLog, sources: &[String]) -> Result<Vec<String>> {
    let mut hashed = Vec::with_capacity(sources.len());
    for s in sources {
        hashed.push(
            audit
                .hash_source(s)
                .context("the search cannot be recorded in the audit log")?,
        );
    }
    Ok(hashed)
}

/// Reads `sources` on the settings' threads, keeping of each line found what the output
/// needs; `digest` also hashes each file, for an evidence package.
fn read_files<'a>(
    settings: &'a Settings,
    vhost: &'a VhostFilter,
    sources: &[Source],
    digest: bool,
) -> Result<Report<Search<'a>>> {
    let opts = Options {
        format: settings.format.clone(),
        max_lines: None,
        chunk_size: settings.chunk_size,
        digest,
    };
    let keep = match (settings.count, settings.output) {
        _ if digest => Keep::Line,
        (true, _) => Keep::Count,
        (false, OutputKind::Text) => Keep::Line,
        (false, OutputKind::Json | OutputKind::Ndjson) => Keep::Fields,
    };
    let n = sources.len();
    with_threads(settings.threads, || {
        scan::run(
            sources,
            &opts,
            || Search::new(&settings.nets, settings.window, vhost, keep, n),
            &Progress::default(),
        )
    })
}

/// Tells on standard error, per file, what was not searched as asked: a read error,
/// lines without a format, lines too long, lines without a virtual host for `--vhost`.
fn report_file_notes(report: &Report<Search<'_>>, names: &[String]) {
    for (i, (file, name)) in report.files.iter().zip(names).enumerate() {
        let shown = logward::escape::text(name.as_bytes());
        if let Some(err) = &file.error {
            eprintln!("logward: {}", chain(err));
        }
        if file.format.is_none() && file.malformed > 0 {
            let note = file.format_note.as_deref().unwrap_or("no format");
            eprintln!("logward: {shown}: {note}; its lines were searched for address tokens");
        }
        for ex in &file.examples {
            if ex.error.kind == ErrorKind::TooLong {
                eprintln!("logward: {shown}:{}: line too long, not searched", ex.line);
            }
        }
        let without_vhost = report.visitor.without_vhost[i];
        if without_vhost > 0 {
            eprintln!(
                "logward: {shown}: {} about the sources left out: no virtual host to compare \
                 with --vhost (its format logs none, or the line was not parsed)",
                super::count(without_vhost, "line", "lines")
            );
        }
    }
}

/// Writes the evidence package and the line that says where it is; `notes` gets what the
/// audit log says of it, written or not.
fn write_evidence(
    package: &Package,
    settings: &Settings,
    report: &Report<Search<'_>>,
    counts: &[u64],
    hits: &[Hit],
    notes: &mut Vec<String>,
) -> Result<()> {
    let written = write_package(package, settings, report, counts, hits);
    notes.push(match &written {
        Ok(log) => format!(
            "evidence: {} ({}, evidence.log sha256:{})",
            package.path().display(),
            super::count(log.lines, "line", "lines"),
            log.sha256
        ),
        Err(e) => format!(
            "evidence: {} incomplete: {}",
            package.path().display(),
            chain(e.as_ref())
        ),
    });
    written.and_then(|log| print_package_summary(package, &log, settings.output))
}

/// Appends the search to the audit log: who searched, the sources' hashes, the files
/// read, how many lines matched, and `notes`.
fn record_search(
    audit: &logward::audit::AuditLog,
    sources: Vec<String>,
    files: Vec<String>,
    lines: u64,
    notes: Vec<String>,
) -> Result<()> {
    let entry = Entry {
        time: rfc3339(unix_now()),
        command: "search",
        sources,
        files,
        lines,
        notes,
        // Who looked at whose requests.
        user: Some(logward::audit::current_user()),
        note: None,
    };
    audit.append(&entry).context("the search was not recorded")
}

/// Prints the counts or the lines found.
fn print_results(
    settings: &Settings,
    report: &Report<Search<'_>>,
    names: &[String],
    counts: &[u64],
    hits: &[Hit],
) -> Result<()> {
    let total: u64 = counts.iter().sum();
    let terminal = std::io::stdout().is_terminal();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut buf = Vec::with_capacity(1 << 12);
    if settings.count {
        match settings.output {
            OutputKind::Json | OutputKind::Ndjson => {
                let files: Vec<Value> = names
                    .iter()
                    .zip(counts)
                    .map(|(p, c)| json!({"path": p, "count": c}))
                    .collect();
                let v = json!({"schema_version": SCHEMA_VERSION, "files": files, "total": total});
                put_json(&mut buf, &v)?;
                out.write_all(&buf)?;
            }
            OutputKind::Text => {
                for (name, count) in names.iter().zip(counts) {
                    buf.clear();
                    put(&mut buf, name.as_bytes(), terminal);
                    writeln!(buf, ":{count}")?;
                    out.write_all(&buf)?;
                }
                writeln!(out, "total:{total}")?;
            }
        }
    } else {
        for hit in hits {
            buf.clear();
            let name = &names[hit.at.file];
            let line = report.line_number(hit.at);
            match &hit.fields {
                Some(fields) => put_json(&mut buf, &hit_json(hit, fields, name, line))?,
                None => {
                    if settings.filename {
                        put(&mut buf, name.as_bytes(), terminal);
                        write!(buf, ":{line}:")?;
                    }
                    put(&mut buf, &hit.line, terminal);
                    buf.push(b'\n');
                }
            }
            out.write_all(&buf)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Writes the evidence package: `evidence.log`, then the manifest.
fn write_package(
    package: &Package,
    settings: &Settings,
    report: &Report<Search<'_>>,
    counts: &[u64],
    hits: &[Hit],
) -> Result<evidence::LogDigest> {
    let absolute: Vec<PathBuf> = report
        .files
        .iter()
        .map(|f| match &f.source {
            Some(Source::File(p)) => std::path::absolute(p).unwrap_or_else(|_| p.clone()),
            _ => PathBuf::new(),
        })
        .collect();
    let log = package.write_log(hits.iter().map(|hit| EvidenceLine {
        path: &absolute[hit.at.file],
        number: report.line_number(hit.at),
        text: &hit.line,
    }))?;
    let mut files = Vec::with_capacity(report.files.len());
    for ((file, path), matched) in report.files.iter().zip(&absolute).zip(counts) {
        if let Some(d) = file.digest.filter(|d| d.changed) {
            eprintln!(
                "logward: warning: {}: changed while it was read (a live log being written?); \
                 the manifest's size and sha256 are of the {} bytes read",
                logward::escape::path(path),
                d.bytes
            );
        }
        files.push(evidence::InputFile {
            // JSON escapes what a terminal must not see; a path that is UTF-8 is kept as
            // it is, so the manifest names the file a reader can open.
            path: match path.to_str() {
                Some(text) => text.to_owned(),
                None => logward::escape::path(path),
            },
            format: file.format.clone(),
            compression: file.compression,
            lines_read: file.lines,
            lines_matched: *matched,
            size: file.digest.map(|d| d.bytes),
            sha256: file.digest.map(|d| d.sha256_hex()),
            changed_while_read: file.digest.is_some_and(|d| d.changed),
            error: file.error.as_ref().map(|e| chain(e).to_string()),
        });
    }
    let query = evidence::Query {
        sources: settings.sources.clone(),
        since: settings.window.since.map(rfc3339),
        until: settings.window.until.map(rfc3339),
        vhost: settings.vhost.clone(),
    };
    let found = evidence::Found::new(hits.iter().map(|h| h.time));
    let manifest = evidence::Manifest::new(unix_now(), query, found, files, log.clone());
    package.write_manifest(&manifest)?;
    Ok(log)
}

/// The one line that says where the package is.
fn print_package_summary(
    package: &Package,
    log: &evidence::LogDigest,
    output: OutputKind,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let dir = package.path();
    match output {
        OutputKind::Json | OutputKind::Ndjson => {
            let mut buf = Vec::new();
            put_json(
                &mut buf,
                &json!({
                    "schema_version": SCHEMA_VERSION,
                    "evidence": dir.display().to_string(),
                    "lines": log.lines,
                    "evidence_log_sha256": log.sha256,
                }),
            )?;
            out.write_all(&buf)?;
        }
        OutputKind::Text => writeln!(
            out,
            "evidence: {} in {} (manifest: {})",
            super::count(log.lines, "line", "lines"),
            logward::escape::path(&dir.join(evidence::LOG_NAME)),
            logward::escape::path(&dir.join(evidence::MANIFEST_NAME)),
        )?,
    }
    out.flush()?;
    Ok(())
}

/// Appends log text to `buf`, escaped when it goes to a terminal.
fn put(buf: &mut Vec<u8>, text: &[u8], terminal: bool) {
    if terminal {
        logward::escape::for_terminal(text, buf);
    } else {
        buf.extend_from_slice(text);
    }
}

/// Appends a JSON line of `value`, printable ASCII only ([`logward::escape::json_ascii`]): log
/// text in it cannot drive a terminal.
fn put_json(buf: &mut Vec<u8>, value: &Value) -> Result<()> {
    logward::escape::json_ascii(&serde_json::to_string(value)?, buf);
    buf.push(b'\n');
    Ok(())
}

fn hit_json(hit: &Hit, f: &Fields, file: &str, line: u64) -> Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "source": f.source.map(|a| a.to_string()),
        "time": hit.time.map(rfc3339),
        "method": f.method,
        "target": f.target,
        "status": f.status,
        "bytes": f.bytes,
        "user_agent": f.user_agent,
        "vhost": f.vhost,
        "file": file,
        "line": line,
        "raw": String::from_utf8_lossy(&hit.line),
    })
}

/// The hits of several files (in input order, each file's in its order) merged into one
/// timeline: evidence from `access.log` beside `vhosts_access.log` reads in time order, while
/// each file's lines keep the order they were written in (a server writes some lines a
/// second early or late). A line without a time goes with the line before it.
fn one_timeline(hits: Vec<Hit>) -> Vec<Hit> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut files: Vec<std::collections::VecDeque<(i64, Hit)>> = Vec::new();
    let mut last = (usize::MAX, i64::MIN);
    for h in hits {
        if h.at.file != last.0 {
            files.push(Default::default());
            last = (h.at.file, i64::MIN);
        }
        last.1 = h.time.unwrap_or(last.1);
        if let Some(f) = files.last_mut() {
            f.push_back((last.1, h));
        }
    }
    let mut heads: BinaryHeap<Reverse<(i64, usize)>> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.front().map(|(t, _)| Reverse((*t, i))))
        .collect();
    let mut out = Vec::with_capacity(files.iter().map(|f| f.len()).sum());
    while let Some(Reverse((_, i))) = heads.pop() {
        if let Some((_, h)) = files[i].pop_front() {
            out.push(h);
        }
        if let Some((t, _)) = files[i].front() {
            heads.push(Reverse((*t, i)));
        }
    }
    out
}

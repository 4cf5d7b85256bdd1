//! Prometheus metrics in the text exposition format (version 0.0.4): the families logward
//! exports and what each means ([`families`]), a set of samples and its rendering
//! ([`Exposition`]), one run's counts turned into samples ([`RunCounts`]), and the
//! node_exporter textfile a run leaves behind ([`write_textfile`]): several commands share
//! one file, so each run reads it back, replaces its own command's samples and renames the
//! new file over it. Serving the samples over HTTP for `watch` is [`http`]'s. What the
//! counts are is the commands' business: this module only names and writes them.
//!
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/>; names follow
//! <https://prometheus.io/docs/practices/naming/> (`_total` counters, base units).

pub mod http;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The content type of the text format, as Prometheus asks for it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counter or gauge: the only types logward exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A value that only goes up, reset when the process or run starts over.
    Counter,
    /// A value that goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A metric family: its name, its `# HELP` text and its type.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// The metric name (`logward_lines_total`).
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Counter or gauge, for the `# TYPE` line.
    pub kind: Kind,
}

/// Every family logward exports. All carry the label `command` (`scan`, `anonymize`,
/// `erase`, `search`, `prune`, `watch`); the per-rule ones carry `rule` too. In a textfile
/// the counters are those of the command's last run: each run starts from zero, as a
/// restarted process does.
pub mod families {
    use super::{Family, Kind};

    const fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: Kind::Counter,
        }
    }
    const fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: Kind::Gauge,
        }
    }

    pub(crate) const LINES: Family = counter("logward_lines_total", "Log lines read.");
    pub(crate) const MALFORMED: Family = counter(
        "logward_malformed_lines_total",
        "Log lines the format could not parse.",
    );
    pub(crate) const BYTES: Family = counter("logward_read_bytes_total", "Bytes of log read.");
    pub(crate) const FILES: Family = counter("logward_files_total", "Log files read or processed.");
    pub(crate) const FILES_SKIPPED: Family = counter(
        "logward_files_skipped_total",
        "Files left alone: names a directory walk passed over (scan), live or open files (anonymize).",
    );
    pub(crate) const FILES_FAILED: Family = counter(
        "logward_files_failed_total",
        "Files that could not be read or rewritten, and paths that could not be found.",
    );
    pub(crate) const FILES_REWRITTEN: Family = counter(
        "logward_files_rewritten_total",
        "Files rewritten with their addresses masked.",
    );
    pub(crate) const DURATION: Family = gauge(
        "logward_run_duration_seconds",
        "How long the last run took.",
    );
    pub(crate) const FLAGGED: Family = counter(
        "logward_sources_flagged_total",
        "Sources flagged, one per episode (a source that attacked twice, hours apart, counts twice).",
    );
    pub(crate) const RULE_FLAGS: Family = counter(
        "logward_rule_flags_total",
        "Sources flagged, by rule that flagged them (a source flagged by two rules counts under both).",
    );
    pub(crate) const RULE_EVENTS: Family = counter(
        "logward_rule_events_total",
        "Lines that matched a rule of a flagged source, by rule.",
    );
    pub(crate) const ADDRESSES: Family = counter(
        "logward_addresses_masked_total",
        "Addresses replaced in log lines.",
    );
    pub(crate) const HOSTNAMES: Family = counter(
        "logward_hostnames_masked_total",
        "Client host names replaced in log lines.",
    );
    pub(crate) const MATCHED: Family = counter(
        "logward_search_matched_lines_total",
        "Lines a search found about its sources.",
    );
    pub(crate) const PRUNED: Family = counter(
        "logward_pruned_entries_total",
        "Store entries deleted by flagged --prune.",
    );
    pub(crate) const LAST_RUN: Family = gauge(
        "logward_last_run_timestamp_seconds",
        "When the last run ended (Unix time).",
    );
    pub(crate) const LAST_SUCCESS: Family = gauge(
        "logward_last_success_timestamp_seconds",
        "When the last run that succeeded ended (Unix time); a failed run keeps the value before it.",
    );
    pub(crate) const RUN_SUCCESS: Family = gauge(
        "logward_last_run_success",
        "1 when the last run succeeded, 0 when it failed.",
    );
    pub(crate) const LAG: Family = gauge(
        "logward_watch_lag_seconds",
        "The clock minus the log time of the newest line processed.",
    );
    pub(crate) const BACKLOG: Family = gauge(
        "logward_watch_backlog_bytes",
        "Bytes written to the followed files and not read yet.",
    );
    pub(crate) const OPEN_FILES: Family = gauge("logward_watch_open_files", "Files followed.");
    pub(crate) const BUCKETS: Family = gauge(
        "logward_watch_buckets",
        "Detection buckets held (sources active in the last minutes, by rule).",
    );
    pub(crate) const NFT_FAILURES: Family = counter(
        "logward_watch_nft_batch_failures_total",
        "nft runs that failed: a batch, or one element of a batch retried alone.",
    );
    pub(crate) const REPEATS: Family = counter(
        "logward_watch_repeats_total",
        "Overflows of a source this watch had already banned, left out.",
    );

    /// Every family above, for checks that a dashboard or an alert names real ones.
    pub const ALL: &[Family] = &[
        LINES,
        MALFORMED,
        BYTES,
        FILES,
        FILES_SKIPPED,
        FILES_FAILED,
        FILES_REWRITTEN,
        DURATION,
        FLAGGED,
        RULE_FLAGS,
        RULE_EVENTS,
        ADDRESSES,
        HOSTNAMES,
        MATCHED,
        PRUNED,
        LAST_RUN,
        LAST_SUCCESS,
        RUN_SUCCESS,
        LAG,
        BACKLOG,
        OPEN_FILES,
        BUCKETS,
        NFT_FAILURES,
        REPEATS,
    ];
}

/// One sample: its labels (in the order given) and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label names and values, in the order given.
    pub labels: Vec<(String, String)>,
    /// The number written after the labels.
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    help: String,
    /// The `# TYPE` word as written (`counter`, `gauge`, `untyped`...).
    kind: String,
    samples: Vec<Sample>,
}

/// A set of metric families with their samples, rendered in name order. Each family is
/// written once, with its HELP and TYPE lines before its samples, as the format asks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    families: BTreeMap<String, Entry>,
}

impl Exposition {
    /// An empty set.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Sets the sample of `family` with these labels to `value` (replacing one with the
    /// same labels).
    pub fn set(&mut self, family: &Family, labels: &[(&str, &str)], value: f64) {
        let entry = self
            .families
            .entry(family.name.to_string())
            .or_insert_with(|| Entry {
                help: family.help.to_string(),
                kind: family.kind.as_str().to_string(),
                samples: Vec::new(),
            });
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match entry.samples.iter_mut().find(|s| s.labels == labels) {
            Some(s) => s.value = value,
            None => entry.samples.push(Sample { labels, value }),
        }
    }

    /// The value of the sample of `name` whose labels include all of `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families.get(name)?.samples.iter().find_map(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
                .then_some(s.value)
        })
    }

    /// The samples of `name`, if the family is here.
    pub fn samples(&self, name: &str) -> &[Sample] {
        self.families.get(name).map_or(&[], |e| &e.samples)
    }

    /// Removes every sample whose label `label` is `value`, and the families left empty.
    pub fn remove_labelled(&mut self, label: &str, value: &str) {
        for entry in self.families.values_mut() {
            entry
                .samples
                .retain(|s| !s.labels.iter().any(|(k, v)| k == label && v == value));
        }
        self.families.retain(|_, e| !e.samples.is_empty());
    }

    /// Adds `other`'s samples, replacing those with the same name and labels.
    pub fn merge(&mut self, other: Exposition) {
        for (name, theirs) in other.families {
            match self.families.get_mut(&name) {
                None => {
                    self.families.insert(name, theirs);
                }
                Some(ours) => {
                    for s in theirs.samples {
                        match ours.samples.iter_mut().find(|o| o.labels == s.labels) {
                            Some(o) => o.value = s.value,
                            None => ours.samples.push(s),
                        }
                    }
                }
            }
        }
    }

    /// The text format: per family `# HELP`, `# TYPE`, then its samples sorted by labels.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, entry) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&entry.help));
            let _ = writeln!(out, "# TYPE {name} {}", entry.kind);
            let mut samples: Vec<&Sample> = entry.samples.iter().collect();
            samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            for s in samples {
                out.push_str(name);
                if !s.labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in s.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", number(s.value));
            }
        }
        out
    }

    /// Reads the text format back: `# HELP`, `# TYPE`, samples (a timestamp after the
    /// value is dropped); other comments and blank lines are skipped. Enough for the files
    /// logward writes and for what other tools add beside them, not a validator.
    pub fn parse(text: &str) -> Result<Exposition, ParseError> {
        let mut out = Exposition::new();
        for (i, line) in text.lines().enumerate() {
            let at = |reason| ParseError {
                line: i + 1,
                reason,
            };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.trim_start().splitn(3, ' ');
                let (Some(word), Some(name)) = (words.next(), words.next()) else {
                    continue;
                };
                let rest = words.next().unwrap_or("").trim();
                match word {
                    "HELP" => out.entry(name).help = unescape(rest, false),
                    "TYPE" => out.entry(name).kind = rest.to_string(),
                    _ => {}
                }
                continue;
            }
            let name_end = line
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(line.len());
            let name = &line[..name_end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(at("a sample line does not start with a metric name"));
            }
            let mut rest = &line[name_end..];
            let mut labels = Vec::new();
            if let Some(inner) = rest.strip_prefix('{') {
                let (parsed, after) = parse_labels(inner).map_err(at)?;
                labels = parsed;
                rest = after;
            }
            let value = rest
                .split_whitespace()
                .next()
                .ok_or_else(|| at("a sample has no value"))?;
            let value =
                parse_number(value).ok_or_else(|| at("a sample's value is not a number"))?;
            out.entry(name).samples.push(Sample { labels, value });
        }
        Ok(out)
    }

    fn entry(&mut self, name: &str) -> &mut Entry {
        self.families
            .entry(name.to_string())
            .or_insert_with(|| Entry {
                help: String::new(),
                kind: "untyped".to_string(),
                samples: Vec::new(),
            })
    }
}

/// Where a file in the text format could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// A sample's labels, name and value, in the order written.
type Labels = Vec<(String, String)>;

/// `name="value",...}` after the opening brace: the labels and what follows the brace.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("a label has no value")?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("a label name is not a name");
        }
        let rest = s[eq + 1..].trim_start();
        let rest = rest
            .strip_prefix('"')
            .ok_or("a label value is not quoted")?;
        // The closing quote is the first one not escaped.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or("a label value has no closing quote")?;
        labels.push((key.to_string(), unescape(&rest[..end], true)));
        s = rest[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn parse_number(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A value as the format writes it: whole numbers without a fraction, `+Inf`, `NaN`.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// HELP text escapes `\` and newlines.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn unescape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Per rule: sources it flagged, and the lines that matched it in their episodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// Sources the rule flagged, one per episode.
    pub flags: u64,
    /// Lines that matched the rule in those episodes.
    pub events: u64,
}

/// What one run counted; a command fills in what applies to it, and only those families
/// are written (`search` has no masked addresses, `prune` reads no lines).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunCounts {
    /// Log lines read (`logward_lines_total`).
    pub lines: Option<u64>,
    /// Lines the format could not parse (`logward_malformed_lines_total`).
    pub malformed: Option<u64>,
    /// Bytes of log read (`logward_read_bytes_total`).
    pub bytes: Option<u64>,
    /// Log files read or processed (`logward_files_total`).
    pub files: Option<u64>,
    /// Files left alone (`logward_files_skipped_total`).
    pub files_skipped: Option<u64>,
    /// Files that could not be read or rewritten, and paths not found
    /// (`logward_files_failed_total`).
    pub files_failed: Option<u64>,
    /// Files rewritten with their addresses masked (`logward_files_rewritten_total`).
    pub files_rewritten: Option<u64>,
    /// Sources flagged, one per episode (`logward_sources_flagged_total`).
    pub sources_flagged: Option<u64>,
    /// Addresses replaced (`logward_addresses_masked_total`).
    pub addresses_masked: Option<u64>,
    /// Client host names replaced (`logward_hostnames_masked_total`).
    pub hostnames_masked: Option<u64>,
    /// Lines a search found (`logward_search_matched_lines_total`).
    pub matched_lines: Option<u64>,
    /// Store entries deleted by a prune (`logward_pruned_entries_total`).
    pub pruned_entries: Option<u64>,
    /// Seconds the run took; none for `watch`, which does not end.
    pub duration: Option<f64>,
    /// Per rule name, its flags and events.
    pub rules: BTreeMap<String, RuleCounts>,
}

impl RunCounts {
    /// Counts flagged episodes: one source flagged each, and per rule its flags and events.
    pub fn count_flags(&mut self, flags: &[crate::store::NewFlag]) {
        *self.sources_flagged.get_or_insert(0) += flags.len() as u64;
        for f in flags {
            for rule in &f.rules {
                self.rules.entry(rule.clone()).or_default().flags += 1;
            }
            for (rule, n) in &f.rule_events {
                self.rules.entry(rule.clone()).or_default().events += n;
            }
        }
    }

    /// The samples of these counts, labelled `command`.
    pub fn exposition(&self, command: &str) -> Exposition {
        use families::*;
        let mut out = Exposition::new();
        let labels = [("command", command)];
        for (family, value) in [
            (&LINES, self.lines),
            (&MALFORMED, self.malformed),
            (&BYTES, self.bytes),
            (&FILES, self.files),
            (&FILES_SKIPPED, self.files_skipped),
            (&FILES_FAILED, self.files_failed),
            (&FILES_REWRITTEN, self.files_rewritten),
            (&FLAGGED, self.sources_flagged),
            (&ADDRESSES, self.addresses_masked),
            (&HOSTNAMES, self.hostnames_masked),
            (&MATCHED, self.matched_lines),
            (&PRUNED, self.pruned_entries),
        ] {
            if let Some(v) = value {
                out.set(family, &labels, v as f64);
            }
        }
        if let Some(d) = self.duration {
            out.set(&DURATION, &labels, d);
        }
        for (rule, c) in &self.rules {
            let labels = [("command", command), ("rule", rule.as_str())];
            out.set(&RULE_FLAGS, &labels, c.flags as f64);
            out.set(&RULE_EVENTS, &labels, c.events as f64);
        }
        out
    }
}

/// What went wrong with a metrics file; the cause is the `source()`.
#[derive(Debug)]
pub enum MetricsError {
    /// The directory of the file could not be opened or locked.
    Lock {
        /// The metrics file.
        path: PathBuf,
        /// The error opening or locking its directory.
        source: io::Error,
    },
    /// The old file exists but could not be read.
    Read {
        /// The metrics file.
        path: PathBuf,
        /// The error reading it.
        source: io::Error,
    },
    /// The new file could not be written or renamed into place.
    Write {
        /// The metrics file.
        path: PathBuf,
        /// The error writing or renaming it.
        source: io::Error,
    },
    /// `watch --metrics-listen`: the address could not be listened on.
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The error binding it.
        source: io::Error,
    },
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::Lock { path, .. } => {
                write!(
                    f,
                    "{}: cannot lock the metrics file's directory",
                    path.display()
                )
            }
            MetricsError::Read { path, .. } => {
                write!(f, "{}: cannot read the metrics file", path.display())
            }
            MetricsError::Write { path, .. } => {
                write!(f, "{}: cannot write the metrics file", path.display())
            }
            MetricsError::Listen { addr, .. } => {
                write!(f, "{addr}: cannot serve metrics there")
            }
        }
    }
}

impl std::error::Error for MetricsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MetricsError::Lock { source, .. }
            | MetricsError::Read { source, .. }
            | MetricsError::Write { source, .. }
            | MetricsError::Listen { source, .. } => Some(source),
        }
    }
}

/// How a run ended, for the textfile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending {
    /// Unix seconds when it ended.
    pub at: i64,
    /// Whether the run succeeded.
    pub success: bool,
}

/// The directory a metrics file goes in: it must exist before a long run starts, so a
/// wrong path fails at once rather than after the work.
pub fn check_textfile_dir(path: &Path) -> Result<(), MetricsError> {
    let dir = crate::rewrite::parent_dir(path);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(MetricsError::Write {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::NotADirectory,
                "its parent is not a directory",
            ),
        }),
        Err(e) => Err(MetricsError::Write {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Writes `command`'s samples into the node_exporter textfile `path`, keeping the other
/// commands' samples already there, with `logward_last_run_timestamp_seconds`,
/// `logward_last_run_success` and `logward_last_success_timestamp_seconds`. The last
/// success is `ending.at` when the run succeeded; after a failure it is the value the old
/// file held (none when it held none), so an alert on its age still sees the last good
/// run while the failed run's counts are visible. The file is replaced atomically (a
/// temporary beside it, synced, renamed: node_exporter reads `*.prom` only, so never the
/// temporary), mode 0644 so node_exporter's user can read it (it holds counts and rule
/// names, no address). Runs that end at once take turns on a lock of the directory.
/// Returns a warning when the old file could not be parsed and was started afresh.
pub fn write_textfile(
    path: &Path,
    command: &str,
    run: Exposition,
    ending: Ending,
) -> Result<Option<String>, MetricsError> {
    let dir = crate::rewrite::parent_dir(path);
    let lock_err = |source| MetricsError::Lock {
        path: path.to_path_buf(),
        source,
    };
    let dir_file = File::open(dir).map_err(lock_err)?;
    // SAFETY: flock on a descriptor we own; released when it is closed.
    if unsafe { libc::flock(dir_file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(lock_err(io::Error::last_os_error()));
    }
    let mut warning = None;
    let mut all = match std::fs::read_to_string(path) {
        Ok(text) => match Exposition::parse(&text) {
            Ok(old) => old,
            Err(e) => {
                warning = Some(format!(
                    "{}: {e}: not a metrics file logward can read; written afresh",
                    path.display()
                ));
                Exposition::new()
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Exposition::new(),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            warning = Some(format!(
                "{}: not UTF-8 text; written afresh",
                path.display()
            ));
            Exposition::new()
        }
        Err(source) => {
            return Err(MetricsError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let labels = [("command", command)];
    let previous = all.get(families::LAST_SUCCESS.name, &labels);
    all.remove_labelled("command", command);
    all.merge(run);
    all.set(&families::LAST_RUN, &labels, ending.at as f64);
    all.set(
        &families::RUN_SUCCESS,
        &labels,
        if ending.success { 1.0 } else { 0.0 },
    );
    match (ending.success, previous) {
        (true, _) => all.set(&families::LAST_SUCCESS, &labels, ending.at as f64),
        (false, Some(t)) => all.set(&families::LAST_SUCCESS, &labels, t),
        (false, None) => {}
    }
    crate::rewrite::write_small_file_mode(path, all.render().as_bytes(), true, 0o644).map_err(
        |source| MetricsError::Write {
            path: path.to_path_buf(),
            source,
        },
    )?;
    Ok(warning)
}

#[cfg(test)]
mod tests;

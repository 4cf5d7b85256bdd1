//! The parallel pass over log files that every reading command shares: choose each file's
//! format, split large plain files into newline-aligned ranges, parse them on rayon workers
//! (one reusable buffer and time cache per job), and merge the per-worker results once.
//!
//! Results never depend on the thread count or on the order of the inputs: files are
//! sorted, merges are sums, minimums and maximums, and examples are kept by position.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use crate::format::{
    self, Format, FormatSpec, LineParser, ParseError, Record, TimeCache, choose_format,
};
use crate::input::Source;
use crate::input::read::{self, Compression, Line, LineReader, ReadError};

mod counted;
mod detection;
mod read_back;
pub use counted::AlreadyCounted;
pub use detection::{DetectVisitor, Detection, to_new_near_misses};
pub use read_back::ReadLines;

/// Requests per client address. Addresses are chosen by clients, so the hasher is seeded at
/// random (foldhash, as the detection engine uses): SipHash cost about 5% of a scan.
pub type SourceCounts = HashMap<IpAddr, u64, foldhash::quality::RandomState>;

/// How many malformed lines per file are kept as examples.
pub const EXAMPLES_PER_FILE: usize = 5;

/// Where a line is. Large plain files are read in parts, each by its own job, so a line's
/// number is first known within its part; [`Report::line_number`] turns it into the line's
/// number in the file once every part has been counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    /// The file's index in the sorted input list.
    pub file: usize,
    /// The part of the file, in file order (0 for a file read whole).
    pub part: usize,
    /// 1-based line number within the part.
    pub line: u64,
    /// Byte offset of the line in the (decompressed) file.
    pub offset: u64,
    /// Whether [`ReadLines`] can read the line again: it is in a plain or gzip file, not on
    /// standard input.
    pub readable: bool,
}

impl At {
    /// A position unique across the run that sorts lines in input order
    /// ([`crate::input::order`]).
    pub fn order(self) -> u64 {
        crate::input::order(self.file, self.offset)
    }

    /// The file index and byte offset that [`At::order`] combined
    /// ([`crate::input::split_order`]).
    pub fn split_order(order: u64) -> (usize, u64) {
        crate::input::split_order(order)
    }
}

/// Receives every parsed record of one job; one per job, merged at the end. Merges must
/// not depend on order (sums, sets, sorted lists).
pub trait Visitor: Send + Sized {
    /// `order` is a position unique across the run: the file's index in the sorted input
    /// list times 2^40 plus the line's byte offset in the (decompressed) file.
    fn record(&mut self, order: u64, rec: &Record<'_>);

    /// Whether the pass counts requests per source and status ([`Report::sources`],
    /// [`Report::status`]) for this visitor; one that does not use them saves a map update
    /// per line.
    const TALLY: bool = true;

    /// A cheap test of a line's bytes before it is parsed: a line refused here is counted
    /// in `lines` and `bytes` but neither parsed nor visited, so `parsed`, `malformed`, the
    /// times and the examples of the report cover only the lines accepted. Accepts all by
    /// default.
    #[inline]
    fn wants(&self, _line: &[u8]) -> bool {
        true
    }

    /// Whether this visitor counts the requests per source in place of the pass's own map
    /// ([`Visitor::count_source`]): a visitor that keeps an entry per source anyway (the
    /// report's tally) saves the pass a second map update per line. Asked once per job;
    /// false by default.
    fn counts_sources(&self) -> bool {
        false
    }

    /// Counts the request of a record's source (`src`, [`Record::source`]), when the pass
    /// counts sources ([`Visitor::TALLY`]) and this visitor said it
    /// [counts them](Visitor::counts_sources); the pass then leaves them out of its own map
    /// and takes them from [`Visitor::add_source_counts`] at the end.
    #[inline]
    fn count_source(&mut self, _src: IpAddr, _rec: &Record<'_>) {}

    /// Adds the requests per source this visitor counted ([`Visitor::count_source`]) to
    /// `counts`; called once, on the merged visitor, at the end of the pass.
    fn add_source_counts(&self, _counts: &mut SourceCounts) {}

    /// Every parsed record with its position; by default passes it on to [`Visitor::record`].
    #[inline]
    fn record_at(&mut self, at: At, rec: &Record<'_>) {
        self.record(at.order(), rec);
    }

    /// A record whose text is a copy made by a wrapper's reader (Docker text decoded, the
    /// parts of a container line joined; see [`crate::format::Unwrapper`]), with the
    /// physical line it was read from (for joined parts, the last). By default the same as
    /// [`Visitor::record_at`].
    fn record_copied(&mut self, at: At, rec: &Record<'_>, _line: &[u8]) {
        self.record_at(at, rec);
    }

    /// Every non-blank line that is not a record: the format did not parse it, or no format
    /// could be chosen for its file. Lines longer than [`read::max_line`] are not seen here:
    /// they are never held in memory. Ignored by default.
    fn unparsed(&mut self, _at: At, _line: &[u8]) {}

    /// Adds another job's visitor into this one.
    fn merge(&mut self, other: Self);
}

impl Visitor for () {
    fn record(&mut self, _: u64, _: &Record<'_>) {}
    fn merge(&mut self, _: ()) {}
}

/// An optional visitor: `None` visits nothing (for example `scan --no-detect`).
impl<V: Visitor> Visitor for Option<V> {
    #[inline]
    fn record(&mut self, order: u64, rec: &Record<'_>) {
        if let Some(v) = self {
            v.record(order, rec);
        }
    }

    #[inline]
    fn record_at(&mut self, at: At, rec: &Record<'_>) {
        if let Some(v) = self {
            v.record_at(at, rec);
        }
    }

    fn record_copied(&mut self, at: At, rec: &Record<'_>, line: &[u8]) {
        if let Some(v) = self {
            v.record_copied(at, rec, line);
        }
    }

    #[inline]
    fn wants(&self, line: &[u8]) -> bool {
        self.as_ref().is_none_or(|v| v.wants(line))
    }

    fn counts_sources(&self) -> bool {
        self.as_ref().is_some_and(V::counts_sources)
    }

    #[inline(always)]
    fn count_source(&mut self, src: IpAddr, rec: &Record<'_>) {
        if let Some(v) = self {
            v.count_source(src, rec);
        }
    }

    fn add_source_counts(&self, counts: &mut SourceCounts) {
        if let Some(v) = self {
            v.add_source_counts(counts);
        }
    }

    fn unparsed(&mut self, at: At, line: &[u8]) {
        if let Some(v) = self {
            v.unparsed(at, line);
        }
    }

    fn merge(&mut self, other: Option<V>) {
        match (self.as_mut(), other) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => *self = Some(b),
            _ => {}
        }
    }
}

/// Two visitors fed by one pass (`scan --report`: detection and the report's tally). Each
/// sees every call as it would alone; pair at most one visitor that
/// [counts sources](Visitor::counts_sources), or the pass counts them twice. A line is
/// refused when either refuses it, so pair only visitors that accept every line or refuse
/// the same ones.
impl<A: Visitor, B: Visitor> Visitor for (A, B) {
    const TALLY: bool = A::TALLY || B::TALLY;

    #[inline]
    fn record(&mut self, order: u64, rec: &Record<'_>) {
        self.0.record(order, rec);
        self.1.record(order, rec);
    }

    #[inline]
    fn record_at(&mut self, at: At, rec: &Record<'_>) {
        self.0.record_at(at, rec);
        self.1.record_at(at, rec);
    }

    fn record_copied(&mut self, at: At, rec: &Record<'_>, line: &[u8]) {
        self.0.record_copied(at, rec, line);
        self.1.record_copied(at, rec, line);
    }

    #[inline]
    fn wants(&self, line: &[u8]) -> bool {
        self.0.wants(line) && self.1.wants(line)
    }

    fn counts_sources(&self) -> bool {
        self.0.counts_sources() || self.1.counts_sources()
    }

    #[inline(always)]
    fn count_source(&mut self, src: IpAddr, rec: &Record<'_>) {
        self.0.count_source(src, rec);
        self.1.count_source(src, rec);
    }

    fn add_source_counts(&self, counts: &mut SourceCounts) {
        self.0.add_source_counts(counts);
        self.1.add_source_counts(counts);
    }

    fn unparsed(&mut self, at: At, line: &[u8]) {
        self.0.unparsed(at, line);
        self.1.unparsed(at, line);
    }

    fn merge(&mut self, other: (A, B)) {
        self.0.merge(other.0);
        self.1.merge(other.1);
    }
}

/// How a pass reads its files.
#[derive(Clone, Debug)]
pub struct Options {
    /// The format, fixed or chosen per file.
    pub format: FormatSpec,
    /// Plain files larger than twice this are split into ranges of about this size.
    pub chunk_size: u64,
    /// Read at most this many lines of each file (`scan --check`).
    pub max_lines: Option<u64>,
    /// Hash each file's bytes as stored while reading it ([`FileReport::digest`]): files
    /// are then read whole, one job each, never split into ranges. Not with `max_lines`,
    /// which stops before the end.
    pub digest: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: FormatSpec::Auto,
            chunk_size: 16 << 20,
            max_lines: None,
            digest: false,
        }
    }
}

/// One malformed line kept as an example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Example {
    /// 1-based line number in the file.
    pub line: u64,
    /// Why it did not parse.
    pub error: ParseError,
}

/// What the pass learnt about one file.
#[derive(Debug, Default)]
pub struct FileReport {
    /// The file or standard input; set in every report a pass returns.
    pub source: Option<Source>,
    /// The format used, or `None` when it could not be chosen or the file not read.
    pub format: Option<String>,
    /// How the format was chosen (`auto: 198/200 sample lines`), for the human summary.
    pub format_note: Option<String>,
    /// The compression's name (`none`, `gzip`...), once the file was opened.
    pub compression: Option<&'static str>,
    /// Lines read, blank and malformed ones included.
    pub lines: u64,
    /// Lines the format parsed.
    pub parsed: u64,
    /// Parsed lines that gave a client address.
    pub with_client: u64,
    /// Non-blank lines the format could not parse.
    pub malformed: u64,
    /// Blank lines: neither records nor errors (`lines = parsed + malformed + empty`).
    pub empty: u64,
    /// Bytes of log text read (decompressed), line terminators included.
    pub bytes: u64,
    /// The earliest request time of the parsed lines, UTC seconds.
    pub first_time: Option<i64>,
    /// The latest request time of the parsed lines, UTC seconds.
    pub last_time: Option<i64>,
    /// The first malformed lines, up to [`EXAMPLES_PER_FILE`].
    pub examples: Vec<Example>,
    /// Why the file could not be read, or where reading broke off.
    pub error: Option<ReadError>,
    /// The size and SHA-256 of the file as stored, of exactly the bytes read, with
    /// [`Options::digest`]; `None` otherwise, for standard input, or when the file could
    /// not be opened.
    pub digest: Option<read::Digest>,
}

impl FileReport {
    /// Why this file's reading is suspect, when the format chosen gave a client address for
    /// fewer than half of the lines it parsed: a format that matches the line's shape but
    /// not its fields (a syslog prefix read as a vhost) would make the file look clean.
    pub fn few_clients(&self) -> Option<String> {
        few_clients(self.parsed, self.with_client, self.format.as_deref())
    }
}

pub use crate::format::few_clients;

/// The merged result of a pass.
pub struct Report<V> {
    /// One report per input file, in input order.
    pub files: Vec<FileReport>,
    /// Requests per client address, over all files.
    pub sources: SourceCounts,
    /// Requests per status code (0..1000).
    pub status: Vec<u64>,
    /// The visitors of every job, merged.
    pub visitor: V,
    /// (file, part) -> lines in the file before that part.
    part_starts: HashMap<(usize, usize), u64>,
    /// Per input file: its path, format and compression, when its lines can be read again.
    readable: Vec<Option<read_back::Readable>>,
    /// Per input file: (offset, line number) of some of its lines, sorted by offset.
    line_marks: Vec<Vec<(u64, u64)>>,
    /// The busiest sources, found once for every output that lists them.
    top: std::sync::OnceLock<Vec<(IpAddr, u64)>>,
}

/// How many of the busiest sources [`Report::top_sources`] finds at once: the most any
/// output lists (the HTML report's tables, whose length is checked against it there).
pub const TOP_SOURCES_KEPT: usize = 25;

impl<V> Report<V> {
    /// The `n` sources that sent the most requests, as [`top_sources`]; found once for
    /// up to [`TOP_SOURCES_KEPT`].
    pub fn top_sources(&self, n: usize) -> Vec<(IpAddr, u64)> {
        if n > TOP_SOURCES_KEPT {
            return top_sources(&self.sources, n);
        }
        let top = self
            .top
            .get_or_init(|| top_sources(&self.sources, TOP_SOURCES_KEPT));
        top[..n.min(top.len())].to_vec()
    }

    /// The 1-based line number in its file of the line at `at`.
    pub fn line_number(&self, at: At) -> u64 {
        self.part_starts
            .get(&(at.file, at.part))
            .copied()
            .unwrap_or(0)
            + at.line
    }

    /// Lines read over all files.
    pub fn lines(&self) -> u64 {
        self.files.iter().map(|f| f.lines).sum()
    }
    /// Lines parsed over all files.
    pub fn parsed(&self) -> u64 {
        self.files.iter().map(|f| f.parsed).sum()
    }
    /// Malformed lines over all files.
    pub fn malformed(&self) -> u64 {
        self.files.iter().map(|f| f.malformed).sum()
    }
    /// Blank lines: `lines() == parsed() + malformed() + empty()`.
    pub fn empty(&self) -> u64 {
        self.files.iter().map(|f| f.empty).sum()
    }
    /// Bytes read over all files, decompressed.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
    /// The earliest request time over all files, UTC seconds.
    pub fn first_time(&self) -> Option<i64> {
        self.files.iter().filter_map(|f| f.first_time).min()
    }
    /// The latest request time over all files, UTC seconds.
    pub fn last_time(&self) -> Option<i64> {
        self.files.iter().filter_map(|f| f.last_time).max()
    }
    /// Files that could not be read, or whose reading broke off.
    pub fn failed_files(&self) -> usize {
        self.files.iter().filter(|f| f.error.is_some()).count()
    }

    /// Reads lines of this pass's plain and gzip files again, by their [`At::order`].
    pub fn read_lines(&self) -> ReadLines<'_> {
        ReadLines::new(&self.readable, &self.line_marks)
    }
}

/// The sources with the most requests, most first; ties by address so output is stable.
pub fn top_sources(sources: &SourceCounts, n: usize) -> Vec<(IpAddr, u64)> {
    // The n-th largest count, found on the counts alone: only the sources at or above it
    // are ordered by address too, the costly comparison (most sources tie at a few
    // requests).
    let mut counts: Vec<u64> = sources.values().copied().collect();
    let floor = match n {
        0 => return Vec::new(),
        n if counts.len() > n => *counts.select_nth_unstable_by(n - 1, |a, b| b.cmp(a)).1,
        _ => 0,
    };
    let mut all: Vec<(IpAddr, u64)> = sources
        .iter()
        .filter(|(_, c)| **c >= floor)
        .map(|(a, c)| (*a, *c))
        .collect();
    let cmp = |a: &(IpAddr, u64), b: &(IpAddr, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
    if all.len() > n {
        all.select_nth_unstable_by(n, cmp);
        all.truncate(n);
    }
    all.sort_by(cmp);
    all
}

pub use crate::input::Progress;

/// One unit of work: a whole file (or stdin), or a range of a plain file.
struct Job {
    file: usize,
    /// Index of this job among its file's jobs, for ordering examples.
    part: usize,
    range: Option<(u64, u64)>,
}

/// A file prepared for reading: its format chosen, its compression known.
struct Prepared {
    format: Option<Format>,
    compression: Compression,
    size: u64,
    /// Standard input's first lines, read to choose its format.
    stdin_head: Option<Vec<u8>>,
}

/// What one job learnt of its part's lines: how many, examples of malformed ones, and
/// line marks (see [`LINE_MARK_BYTES`]), with line numbers local to the part.
type PartLines = (u64, Vec<Example>, Vec<(u64, u64)>);

/// A plain file's line number is noted (with the line's offset) about once per this many
/// bytes, so a line read back at the end (a sample) is numbered by counting newlines from
/// the mark before it, not from the start of the file.
pub const LINE_MARK_BYTES: u64 = 1 << 20;

/// Partial results of the jobs one worker ran.
struct Partial<V> {
    files: Vec<FileReport>,
    /// (file, part) -> (lines in that part, examples with part-local line numbers, and
    /// line marks with part-local line numbers).
    parts: HashMap<(usize, usize), PartLines>,
    sources: SourceCounts,
    status: Vec<u64>,
    visitor: V,
}

impl<V: Visitor> Partial<V> {
    fn new(n: usize, visitor: V) -> Partial<V> {
        Partial {
            files: std::iter::repeat_with(FileReport::default)
                .take(n)
                .collect(),
            parts: HashMap::new(),
            sources: SourceCounts::default(),
            status: vec![0; 1000],
            visitor,
        }
    }

    fn merge(mut self, other: Partial<V>) -> Partial<V> {
        for (a, b) in self.files.iter_mut().zip(other.files) {
            a.lines += b.lines;
            a.parsed += b.parsed;
            a.with_client += b.with_client;
            a.malformed += b.malformed;
            a.empty += b.empty;
            a.bytes += b.bytes;
            a.first_time = min_opt(a.first_time, b.first_time);
            a.last_time = max_opt(a.last_time, b.last_time);
            if a.error.is_none() {
                a.error = b.error;
            }
            a.digest = a.digest.or(b.digest);
        }
        self.parts.extend(other.parts);
        // Fold the smaller map into the larger one.
        let (mut big, small) = if self.sources.len() >= other.sources.len() {
            (self.sources, other.sources)
        } else {
            (other.sources, self.sources)
        };
        for (k, v) in small {
            *big.entry(k).or_insert(0) += v;
        }
        self.sources = big;
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a += b;
        }
        self.visitor.merge(other.visitor);
        self
    }
}

/// Whether lines of a file so compressed can be read again after the pass ([`ReadLines`]).
fn reads_again(compression: Compression) -> bool {
    matches!(compression, Compression::None | Compression::Gzip)
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn choose_into(spec: &FormatSpec, head: &[u8], report: &mut FileReport) -> Option<Format> {
    let chosen = choose_format(spec, head);
    if chosen.note.is_some() {
        report.format_note = chosen.note;
    }
    chosen.format
}

fn prepare(source: &Source, opts: &Options, report: &mut FileReport) -> Option<Prepared> {
    report.source = Some(source.clone());
    match source {
        Source::Stdin => {
            let head = match read::read_head(&mut io::stdin().lock(), format::DETECT_LINES) {
                Ok(h) => h,
                Err(source) => {
                    report.error = Some(ReadError::Stdin { source });
                    return None;
                }
            };
            let compression = Compression::sniff(&head);
            if compression != Compression::None {
                report.error = Some(ReadError::StdinCompressed { compression });
                return None;
            }
            report.compression = Some(compression.name());
            let format = choose_into(&opts.format, &head, report);
            Some(Prepared {
                format,
                compression,
                size: 0,
                stdin_head: Some(head),
            })
        }
        Source::File(path) => {
            let fail = |report: &mut FileReport, e: ReadError| {
                report.error = Some(e);
                None
            };
            let size = match std::fs::metadata(path) {
                Ok(m) => m.len(),
                Err(source) => {
                    return fail(
                        report,
                        ReadError::Open {
                            path: path.clone(),
                            source,
                        },
                    );
                }
            };
            let (mut stream, compression) = match read::open(path) {
                Ok(s) => s,
                Err(e) => return fail(report, e),
            };
            report.compression = Some(compression.name());
            // A broken gzip shows here as a short head; the full read reports the line.
            let head = read::read_head(&mut io::BufReader::new(&mut stream), format::DETECT_LINES)
                .unwrap_or_default();
            let format = choose_into(&opts.format, &head, report);
            Some(Prepared {
                format,
                compression,
                size,
                stdin_head: None,
            })
        }
    }
}

/// Runs one job, adding to `acc`; its lines are parsed by `parser` (the file's format, or
/// the [`format::Unwrapper`] of a wrapped one).
///
/// Kept whole: it is the per-line loop of every pass, and the fast path (whole blocks of
/// parsed lines) and the slow one (errors, long lines, wrappers) share its counters.
#[allow(clippy::too_many_arguments)]
fn run_job<V: Visitor, P: LineParser>(
    job: &Job,
    source: &Source,
    prep: &Prepared,
    opts: &Options,
    acc: &mut Partial<V>,
    progress: &Progress,
    read_ahead: bool,
    mut parser: P,
) {
    let mut digesting = None;
    let (stream, start): (Box<dyn Read + Send>, u64) = match (source, job.range) {
        (Source::Stdin, _) => {
            let head = prep.stdin_head.clone().unwrap_or_default();
            (Box::new(io::Cursor::new(head).chain(io::stdin())), 0)
        }
        (Source::File(path), Some((s, e))) => match read::open_range(path, s, e) {
            Ok(r) => (r, s),
            Err(err) => {
                acc.files[job.file].error = Some(err);
                return;
            }
        },
        (Source::File(path), None) if opts.digest => match read::open_digested(path) {
            Ok((r, compression, digest)) => {
                digesting = Some(digest);
                match compression {
                    Compression::Gzip if read_ahead => (Box::new(ReadAhead::new(r)), 0),
                    _ => (r, 0),
                }
            }
            Err(err) => {
                acc.files[job.file].error = Some(err);
                return;
            }
        },
        (Source::File(path), None) => match read::open(path) {
            Ok((r, Compression::Gzip)) if read_ahead => (Box::new(ReadAhead::new(r)), 0),
            Ok((r, _)) => (r, 0),
            Err(err) => {
                acc.files[job.file].error = Some(err);
                return;
            }
        },
    };
    let mut reader = LineReader::with_offset(stream, start);
    let mut cache = TimeCache::new();
    let report = &mut acc.files[job.file];
    let mut examples = Vec::new();
    let mut lines = 0u64;
    let mut pending_bytes = 0u64;
    let mut broke = false;
    let readable = matches!(source, Source::File(_)) && reads_again(prep.compression);
    // Only a plain file can be read again from a mark.
    let marking = readable && prep.compression == Compression::None;
    let mut marks: Vec<(u64, u64)> = Vec::new();
    let mut next_mark = 0u64;
    let visitor_counts_sources = acc.visitor.counts_sources();
    let at = |line: u64, offset: u64| At {
        file: job.file,
        part: job.part,
        line,
        offset,
        readable,
    };
    // The prefilter sees one physical line; a line joined from parts is not one.
    let prefilter = !P::WRAPPED
        || !prep
            .format
            .as_ref()
            .is_some_and(|f| f.split_wrapper().0.is_some_and(format::Wrapper::joins));
    let malformed =
        |lines: u64, error: ParseError, report: &mut FileReport, examples: &mut Vec<Example>| {
            report.malformed += 1;
            if examples.len() < EXAMPLES_PER_FILE {
                examples.push(Example { line: lines, error });
            }
        };
    loop {
        if opts.max_lines.is_some_and(|m| lines >= m) {
            break;
        }
        let line = match reader.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                broke = true;
                let p = match source {
                    Source::File(p) => p.clone(),
                    Source::Stdin => Path::new("<stdin>").to_path_buf(),
                };
                // Line numbers of a range are fixed up when parts are merged; a broken read
                // only happens on whole files (gzip, stdin), whose part is the only one.
                report.error = Some(ReadError::Broken {
                    path: p,
                    line: lines,
                    source: e,
                });
                break;
            }
        };
        lines += 1;
        match line {
            Line::TooLong(len, _) => {
                report.bytes += len + 1;
                malformed(
                    lines,
                    ParseError::new(format::ErrorKind::TooLong, read::max_line()),
                    report,
                    &mut examples,
                );
            }
            Line::Text(text, offset) => {
                let n = text.len() as u64 + 1;
                report.bytes += n;
                pending_bytes += n;
                if marking && offset >= next_mark {
                    marks.push((offset, lines));
                    next_mark = offset.saturating_add(LINE_MARK_BYTES);
                }
                if prefilter && !acc.visitor.wants(text) {
                    continue;
                }
                if prep.format.is_none() {
                    if text.is_empty() || text == b"\r" {
                        report.empty += 1;
                    } else {
                        acc.visitor.unparsed(at(lines, offset), text);
                        malformed(
                            lines,
                            ParseError::new(format::ErrorKind::Mismatch, 0),
                            report,
                            &mut examples,
                        );
                    }
                    continue;
                }
                // Parsed in place: a record returned by value is copied out on every line.
                let mut rec = Record::default();
                match parser.parse_line(text, &mut cache, &mut rec) {
                    Ok(()) => {
                        report.parsed += 1;
                        report.with_client += u64::from(rec.client.is_some());
                        if let Some(t) = rec.time {
                            report.first_time = min_opt(report.first_time, Some(t));
                            report.last_time = max_opt(report.last_time, Some(t));
                        }
                        if V::TALLY {
                            if let Some(s) = rec.status {
                                acc.status[usize::from(s).min(999)] += 1;
                            }
                            if let Some(src) = rec.source() {
                                if visitor_counts_sources {
                                    acc.visitor.count_source(src, &rec);
                                } else {
                                    *acc.sources.entry(src).or_insert(0) += 1;
                                }
                            }
                        }
                        if P::WRAPPED && rec.line.as_ptr() != text.as_ptr() {
                            acc.visitor.record_copied(at(lines, offset), &rec, text);
                        } else {
                            acc.visitor.record_at(at(lines, offset), &rec);
                        }
                    }
                    // Blank lines are neither records nor errors worth reporting.
                    Err(e) if e.kind == format::ErrorKind::Empty => report.empty += 1,
                    // A part of a line: its last part gives the record.
                    Err(e) if e.kind == format::ErrorKind::Partial => {}
                    Err(e) => {
                        acc.visitor.unparsed(at(lines, offset), text);
                        malformed(lines, e, report, &mut examples);
                    }
                }
            }
        }
        if pending_bytes >= 1 << 20 {
            progress.bytes.fetch_add(pending_bytes, Ordering::Relaxed);
            progress.lines.fetch_add(1 << 12, Ordering::Relaxed);
            pending_bytes = 0;
        }
    }
    report.lines += lines;
    if let Some(digesting) = digesting {
        // The loop ends at the stream's end or its error (`max_lines` is not used with
        // digests), so a read-ahead thread has made its last read: after an error, the
        // rest of the file is read on one descriptor.
        drop(reader);
        match digesting.finish(!broke) {
            Ok(d) => report.digest = Some(d),
            Err(e) => {
                if report.error.is_none() {
                    report.error = Some(e);
                }
            }
        }
    }
    progress.bytes.fetch_add(pending_bytes, Ordering::Relaxed);
    acc.parts
        .insert((job.file, job.part), (lines, examples, marks));
}

/// Reads every source and merges the results. `make_visitor` makes one visitor per worker.
pub fn run<V: Visitor>(
    sources: &[Source],
    opts: &Options,
    make_visitor: impl Fn() -> V + Sync + Send,
    progress: &Progress,
) -> Report<V> {
    let n = sources.len();
    let mut reports: Vec<FileReport> = std::iter::repeat_with(FileReport::default)
        .take(n)
        .collect();
    let prepared: Vec<Option<Prepared>> = sources
        .par_iter()
        .zip(reports.par_iter_mut())
        .map(|(source, report)| prepare(source, opts, report))
        .collect();
    let jobs = plan_jobs(sources, &prepared, &mut reports, opts);
    let readable = readable_files(sources, &prepared);
    // With fewer jobs than workers, some cores would idle: a gzip file is then inflated on
    // a thread of its own while its worker parses.
    let read_ahead = jobs.len() < rayon::current_num_threads();
    // Each split of the jobs gets a visitor of its own (detection's carries verdict caches
    // of about half a MiB, cold when made); left to itself rayon splits down to single
    // jobs once work is stolen. Four splits per thread still balance chunks of one size;
    // one thread has nothing to balance, so it takes every job with one visitor and merges
    // nothing.
    let threads = rayon::current_num_threads();
    let min_len = match threads {
        1 => jobs.len().max(1),
        _ => jobs.len().div_ceil(4 * threads).max(1),
    };
    // The format of a file none was chosen for (it is read for its counts): built once.
    let fallback = Format::preset("combined");
    let merged = jobs
        .par_iter()
        .with_min_len(min_len)
        .fold(
            || Partial::new(n, make_visitor()),
            |mut acc, job| {
                if let Some(prep) = &prepared[job.file]
                    && let Some(format) = prep.format.as_ref().or(fallback.as_ref())
                {
                    let source = &sources[job.file];
                    // The loop is compiled once for formats whose lines stand alone and once
                    // for wrapped ones: the former carry nothing of the latter.
                    let (a, p) = (&mut acc, progress);
                    match format.unwrapper() {
                        None => run_job(job, source, prep, opts, a, p, read_ahead, format),
                        Some(u) => run_job(job, source, prep, opts, a, p, read_ahead, u),
                    }
                }
                progress.files_done.fetch_add(1, Ordering::Relaxed);
                acc
            },
        )
        .reduce(|| Partial::new(n, make_visitor()), Partial::merge);
    let (part_starts, line_marks) = join_parts(merged.parts, &mut reports);
    fill_reports(&mut reports, merged.files);
    let mut sources = merged.sources;
    merged.visitor.add_source_counts(&mut sources);
    Report {
        files: reports,
        sources,
        status: merged.status,
        visitor: merged.visitor,
        part_starts,
        line_marks,
        readable,
        top: std::sync::OnceLock::new(),
    }
}

/// The jobs of a pass: a plain file larger than twice the chunk size is split into ranges
/// read in parallel, anything else is one job. Notes each file's format in its report.
fn plan_jobs(
    sources: &[Source],
    prepared: &[Option<Prepared>],
    reports: &mut [FileReport],
    opts: &Options,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, prep) in prepared.iter().enumerate() {
        let Some(prep) = prep else { continue };
        reports[i].format = prep.format.as_ref().map(|f| f.name().to_string());
        // A range could start or end between the parts of a container line.
        let joins = prep
            .format
            .as_ref()
            .is_some_and(|f| f.split_wrapper().0.is_some_and(format::Wrapper::joins));
        let splittable = prep.compression == Compression::None
            && !joins
            && opts.max_lines.is_none()
            && !opts.digest
            && prep.size > 2 * opts.chunk_size
            && matches!(sources[i], Source::File(_));
        let ranges = match (&sources[i], splittable) {
            (Source::File(path), true) => read::split_ranges(path, prep.size, opts.chunk_size).ok(),
            _ => None,
        };
        match ranges {
            Some(ranges) => jobs.extend(ranges.into_iter().enumerate().map(|(part, r)| Job {
                file: i,
                part,
                range: Some(r),
            })),
            None => jobs.push(Job {
                file: i,
                part: 0,
                range: None,
            }),
        }
    }
    jobs
}

/// For each source, what reading its lines again needs (path, format, compression), when
/// it can be read again.
fn readable_files(
    sources: &[Source],
    prepared: &[Option<Prepared>],
) -> Vec<Option<read_back::Readable>> {
    prepared
        .iter()
        .zip(sources)
        .map(|(prep, source)| match (prep, source) {
            (
                Some(Prepared {
                    format: Some(format),
                    compression,
                    ..
                }),
                Source::File(path),
            ) if reads_again(*compression) => Some((path.clone(), format.clone(), *compression)),
            _ => None,
        })
        .collect()
}

/// Turns part-local line numbers (examples, line marks) into file line numbers, and gives
/// where each part starts in its file and each file's line marks.
#[allow(clippy::type_complexity)]
fn join_parts(
    parts: HashMap<(usize, usize), PartLines>,
    reports: &mut [FileReport],
) -> (HashMap<(usize, usize), u64>, Vec<Vec<(u64, u64)>>) {
    let n = reports.len();
    // Turn part-local example line numbers into file line numbers.
    let mut parts: Vec<_> = parts.into_iter().collect();
    parts.sort_by_key(|(k, _)| *k);
    let mut offsets = vec![0u64; n];
    let mut part_starts = HashMap::with_capacity(parts.len());
    let mut line_marks: Vec<Vec<(u64, u64)>> = vec![Vec::new(); n];
    for ((file, part), (lines, examples, marks)) in parts {
        part_starts.insert((file, part), offsets[file]);
        // Parts come in file order, so each file's marks stay sorted by offset.
        line_marks[file].extend(
            marks
                .into_iter()
                .map(|(at, line)| (at, line + offsets[file])),
        );
        let report = &mut reports[file];
        for ex in examples {
            if report.examples.len() < EXAMPLES_PER_FILE {
                report.examples.push(Example {
                    line: ex.line + offsets[file],
                    error: ex.error,
                });
            }
        }
        offsets[file] += lines;
    }
    (part_starts, line_marks)
}

/// Copies the counts the workers merged into each file's report, keeping an error found
/// while preparing the file.
fn fill_reports(reports: &mut [FileReport], merged: Vec<FileReport>) {
    for (report, part) in reports.iter_mut().zip(merged) {
        report.lines = part.lines;
        report.parsed = part.parsed;
        report.with_client = part.with_client;
        report.malformed = part.malformed;
        report.empty = part.empty;
        report.bytes = part.bytes;
        report.first_time = part.first_time;
        report.last_time = part.last_time;
        report.digest = part.digest;
        if report.error.is_none() {
            report.error = part.error;
        }
    }
}

/// A reader that fills buffers from another reader on a thread of its own, so inflating a
/// gzip stream and parsing its lines run on two cores. Errors arrive in order, after the
/// data read before them; dropping the reader stops the thread at its next buffer.
struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

impl ReadAhead {
    /// Buffers of this size, at most this many in flight.
    const CHUNK: usize = 1 << 20;
    const DEPTH: usize = 4;

    fn new(mut inner: Box<dyn Read + Send>) -> ReadAhead {
        let (tx, rx) = std::sync::mpsc::sync_channel(Self::DEPTH);
        std::thread::spawn(move || {
            loop {
                let mut buf = vec![0u8; Self::CHUNK];
                let mut filled = 0;
                let result = loop {
                    match inner.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                let done = filled < Self::CHUNK;
                if filled > 0 && tx.send(Ok(buf)).is_err() {
                    return;
                }
                if let Err(e) = result {
                    let _ = tx.send(Err(e));
                    return;
                }
                if done {
                    return;
                }
            }
        });
        ReadAhead {
            chunks: rx,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The thread has finished: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `data` in odd-sized reads, then fails once.
    struct Flaky {
        data: Vec<u8>,
        pos: usize,
    }

    impl Read for Flaky {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return Err(io::Error::other("broken"));
            }
            let n = out.len().min(7919).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// Counts what it is shown, and refuses lines holding `skip`.
    #[derive(Default)]
    struct Counting {
        records: u64,
        unparsed: u64,
    }

    impl Visitor for Counting {
        fn record(&mut self, _: u64, _: &Record<'_>) {
            self.records += 1;
        }
        fn wants(&self, line: &[u8]) -> bool {
            memchr::memmem::find(line, b"skip").is_none()
        }
        fn unparsed(&mut self, _: At, _: &[u8]) {
            self.unparsed += 1;
        }
        fn merge(&mut self, other: Self) {
            self.records += other.records;
            self.unparsed += other.unparsed;
        }
    }

    #[test]
    fn an_optional_visitor_passes_every_call_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let good =
            "192.0.2.1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n";
        let skipped =
            "192.0.2.2 - - [22/Nov/2026:10:00:01 +0000] \"GET /skip HTTP/1.1\" 200 1 \"-\" \"x\"\n";
        std::fs::write(
            &path,
            [good, good, skipped, "not a log line\n", good].concat(),
        )
        .unwrap();
        let sources = [Source::File(path)];
        let opts = Options {
            format: FormatSpec::parse("combined").unwrap(),
            ..Options::default()
        };
        let direct = run(&sources, &opts, Counting::default, &Progress::default());
        let optional = run(
            &sources,
            &opts,
            || Some(Counting::default()),
            &Progress::default(),
        );
        let optional = optional.visitor.expect("a visitor");
        assert_eq!((direct.visitor.records, direct.visitor.unparsed), (3, 1));
        assert_eq!((optional.records, optional.unparsed), (3, 1));
        // No visitor: every line is read.
        let none = run(&sources, &opts, || None::<Counting>, &Progress::default());
        assert_eq!(none.files[0].lines, 5);
    }

    #[test]
    fn the_busiest_sources_found_once_are_those_of_every_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        // Source i sends i % 7 + 1 requests: many ties, broken by address.
        let mut text = String::new();
        for i in 0..60u32 {
            for _ in 0..i % 7 + 1 {
                text.push_str(&format!(
                    "192.0.2.{i} - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n"
                ));
            }
        }
        std::fs::write(&path, text).unwrap();
        let opts = Options {
            format: FormatSpec::parse("combined").unwrap(),
            ..Options::default()
        };
        let report = run(&[Source::File(path)], &opts, || (), &Progress::default());
        assert_eq!(report.sources.len(), 60);
        for n in [TOP_SOURCES_KEPT + 5, 10, 0, 1, TOP_SOURCES_KEPT, 60, 100] {
            assert_eq!(
                report.top_sources(n),
                top_sources(&report.sources, n),
                "{n}"
            );
        }
    }

    #[test]
    fn digests_are_of_the_stored_bytes_with_read_ahead_and_without_ranges() {
        use sha2::Digest as _;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let line =
            "192.0.2.1 - - [22/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n";
        let text = line.repeat(3000);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(text.as_bytes()).unwrap();
        let gz = enc.finish().unwrap();
        let sources = [
            Source::File(dir.path().join("access.log.1.gz")),
            Source::File(dir.path().join("access.log")),
        ];
        std::fs::write(dir.path().join("access.log.1.gz"), &gz).unwrap();
        std::fs::write(dir.path().join("access.log"), &text).unwrap();
        let opts = Options {
            digest: true,
            // Small enough to split the plain file, were it not hashed.
            chunk_size: 4096,
            ..Options::default()
        };
        // More workers than jobs: the gzip file is inflated on a read-ahead thread.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let report = pool.install(|| run(&sources, &opts, || (), &Progress::default()));
        for (file, stored) in report.files.iter().zip([&gz[..], text.as_bytes()]) {
            let d = file.digest.expect("a digest");
            assert_eq!(file.lines, 3000);
            assert_eq!(d.bytes, stored.len() as u64);
            assert_eq!(d.sha256, <[u8; 32]>::from(sha2::Sha256::digest(stored)));
            assert!(!d.changed);
        }
        let plain = run(&sources, &Options::default(), || (), &Progress::default());
        assert!(plain.files.iter().all(|f| f.digest.is_none()));
    }

    #[test]
    fn read_ahead_delivers_every_byte_in_order_then_the_error() {
        let data: Vec<u8> = (0..3 * ReadAhead::CHUNK + 12345)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut r = ReadAhead::new(Box::new(Flaky {
            data: data.clone(),
            pos: 0,
        }));
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).unwrap_err();
        assert_eq!(err.to_string(), "broken");
        assert_eq!(got, data);
        let mut ok = ReadAhead::new(Box::new(io::Cursor::new(data.clone())));
        let mut all = Vec::new();
        ok.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
    }
}

//! Retention runs over one file: give every line an age, mask the addresses of the lines
//! past the window, and replace the file safely; or, for a dry run, only count. Owns the
//! age rule, the per-file decisions and their report; the masking of one line is
//! [`mask_line`], the replacement on disk is [`crate::rewrite::rewrite_file`], and which
//! contents are already done is the [`Ledger`].
//!
//! **Age.** A line's age is its own timestamp; a line without a readable one takes the age
//! of the nearest parsed line before it in the file, or the file's mtime when there is none
//! (see [`Ager`]). A line is past the window when its age is before the cutoff
//! (`now - older_than`). Lines inside the window are copied byte for byte.

use std::cell::{Cell, RefCell};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::ledger::{Entry, Head, HeadBuilder, Ledger, LedgerError};
use ipnet::IpNet;

use super::wrapped::{Escaped, write_escaped};
use super::{LineVerifier, Masker, Mode, Select, mask_fields, mask_line};
use crate::error::chain;
use crate::format::wrap::{self, json_string, json_string::Escape};
use crate::format::{
    Chosen, ErrorKind, Format, FormatSpec, Record, Span, TimeCache, Wrapper, choose_format,
};
use crate::input::Progress;
use crate::input::read::{self as input_read, Line, LineReader};
use crate::rewrite::{self, RewriteError, RewriteOptions};

/// Gives each line of one file its age (UTC seconds).
#[derive(Clone, Copy, Debug)]
pub struct Ager {
    last: i64,
}

impl Ager {
    /// `fallback` is the age of lines before the first timestamp: the file's mtime.
    pub fn new(fallback: i64) -> Ager {
        Ager { last: fallback }
    }

    /// The age of the next line, given its own timestamp if it has a readable one.
    pub fn age(&mut self, time: Option<i64>) -> i64 {
        if let Some(t) = time {
            self.last = t;
        }
        self.last
    }
}

/// Settings shared by every file of a run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Lines whose age is before this (UTC seconds) are past the window.
    pub cutoff: i64,
    /// How lines are parsed: a fixed format, or chosen per file from its first lines.
    pub format: FormatSpec,
    /// What masking does to an address.
    pub mode: Mode,
    /// Names the mode for the ledger: `truncate/24/48`, `pseudonymize/<key id>`.
    pub method: String,
    /// What a rewrite may do: which files and symbolic links, and the safety checks.
    pub rewrite: RewriteOptions,
    /// Read and count every file but replace none and leave the ledger as it was.
    pub dry_run: bool,
    /// Wall-clock time of the run, for the ledger.
    pub now: i64,
    /// An erasure request: mask only these sources, in every line whatever its age.
    pub erase: Option<Vec<IpNet>>,
    /// In parsed lines, replace address tokens anywhere in the line, not only in the
    /// address fields and URLs (`--whole-line`).
    pub whole_line: bool,
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Lines were masked and the file replaced (in a dry run: would be).
    Rewritten,
    /// Nothing to change; the file keeps its inode and bytes.
    Unchanged,
    /// Left alone on purpose: a live log name, or a file another process holds open.
    Skipped,
    /// Could not be done: refused for safety, unreadable, or verification failed.
    Failed,
}

/// Line counts of one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Lines in the file.
    pub lines: u64,
    /// Lines whose age is before the cutoff.
    pub past_window: u64,
    /// Of those, lines an earlier run already masked (left as they are).
    pub already_masked: u64,
    /// Addresses replaced.
    pub addresses: u64,
    /// Client host names replaced.
    pub hostnames: u64,
    /// Lines past the window the parser could not read, whose every address token was
    /// replaced.
    pub unparsed_scrubbed: u64,
    /// Erasure requests: lines that held one of the sources and were changed.
    pub erased_lines: u64,
    /// Lines longer than the longest line logward reads whole, copied through byte for
    /// byte: their addresses stay (documented in docs/security.md).
    pub kept_long: u64,
    /// Lines past the window masked by fields that still hold an address-shaped token
    /// outside the fields logward masks (address fields, URLs) and the user agent: a
    /// format that hides an address in a field logward does not know. `--whole-line` or
    /// the right `--format` masks them. Counted among the lines checked: the first 1000
    /// masked lines of a file, then one in 1000.
    pub leaked_lines: u64,
    /// Lines the format parsed.
    pub parsed: u64,
    /// Of the parsed lines, those that gave no client address: such a line is masked as
    /// an unreadable line is (every address token), since a format that reads no client
    /// has not found the line's fields.
    pub without_client: u64,
}

impl Counts {
    /// Adds another file's counts to these, field by field.
    pub fn add(&mut self, o: &Counts) {
        self.lines += o.lines;
        self.past_window += o.past_window;
        self.already_masked += o.already_masked;
        self.addresses += o.addresses;
        self.hostnames += o.hostnames;
        self.unparsed_scrubbed += o.unparsed_scrubbed;
        self.erased_lines += o.erased_lines;
        self.kept_long += o.kept_long;
        self.leaked_lines += o.leaked_lines;
        self.parsed += o.parsed;
        self.without_client += o.without_client;
    }

    /// The warning for a file most of whose parsed lines gave no client address.
    pub fn few_clients(&self, format: Option<&str>) -> Option<String> {
        crate::format::few_clients(
            self.parsed,
            self.parsed - self.without_client.min(self.parsed),
            format,
        )
    }
}

/// The report for one file.
#[derive(Clone, Debug)]
pub struct FileResult {
    /// The file as it was given (the symbolic link, not its target).
    pub path: PathBuf,
    /// What was done to it.
    pub status: Status,
    /// Why it was skipped or failed, or a note on an unchanged file.
    pub reason: Option<String>,
    /// The format used, when one was chosen.
    pub format: Option<String>,
    /// Line counts; zero for a file refused before it was read.
    pub counts: Counts,
}

impl FileResult {
    fn new(path: &Path, status: Status, reason: impl Into<Option<String>>) -> FileResult {
        FileResult {
            path: path.to_path_buf(),
            status,
            reason: reason.into(),
            format: None,
            counts: Counts::default(),
        }
    }
}

/// The reason text of a rewrite error, without the path the report already shows.
fn reason_of(path: &Path, e: &RewriteError) -> String {
    match e {
        RewriteError::LiveLog { .. } => {
            "live log name (no rotation suffix); --include-active rewrites it".to_string()
        }
        _ => {
            let text = chain(e).to_string();
            let prefix = format!("{}:", crate::escape::path(e.path()));
            match text.strip_prefix(&prefix) {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                    format!("line {}", rest)
                }
                Some(rest) => rest.trim_start().to_string(),
                None if e.path() != path => text,
                None => text,
            }
        }
    }
}

/// Live names and files held open are normal in a logrotate setup; everything else that
/// stops a rewrite leaves full addresses on disk, which the caller must hear about.
fn status_of(e: &RewriteError) -> Status {
    match e {
        RewriteError::LiveLog { .. } | RewriteError::InUse { .. } => Status::Skipped,
        _ => Status::Failed,
    }
}

/// The per-line work of one file, shared by the rewrite and the dry run.
struct LineJob<'a> {
    /// The format of the (inner) lines.
    format: Option<&'a Format>,
    /// The wrapper around each line, kept byte for byte; `None` for an unwrapped format.
    wrapper: Option<Wrapper>,
    /// Per container stream: the last line was a part continued by the next (see
    /// [`LineJob::wrapped_line`]).
    continued: [bool; 2],
    /// Docker's text decoded, its escapes, and the text masked: reused from line to line.
    decoded: Vec<u8>,
    escapes: Vec<Escape>,
    masked: Vec<u8>,
    cache: TimeCache,
    ager: Ager,
    cutoff: i64,
    /// From a compatible ledger entry: lines `1..=.0` older than `.1` are already masked.
    done: Option<(u64, i64)>,
    masker: Masker,
    counts: Counts,
    oldest: Option<i64>,
    newest: Option<i64>,
    progress: &'a Progress,
    pending_bytes: u64,
    /// The sources of an erasure request; `None` for a retention run.
    erase: Option<&'a [IpNet]>,
    /// Search the whole of a parsed line for address tokens, not only its URLs.
    whole_line: bool,
    /// Masked lines checked so far for addresses left outside the known fields.
    leak_checked: u64,
}

/// How the inner line of a wrapped line is masked, with the wrapper's timestamp as written
/// (for the line's age when the inner line has no time of its own).
#[derive(Clone, Copy)]
enum Unwrapped<'t> {
    /// Parsed by the inner format.
    Parsed((Wrapper, &'t [u8])),
    /// Masked as a line that did not parse: a part of a container line, or (`None`) a line
    /// not in the wrapper's form.
    Unparsed(Option<(Wrapper, &'t [u8])>),
}

/// The masked lines of a file checked for addresses left outside the known fields: the
/// first [`LEAK_CHECK_HEAD`], then one in [`LEAK_CHECK_EVERY`]. A misread format shows on
/// every line, so the head finds it; checking every line would double a rewrite's CPU.
const LEAK_CHECK_HEAD: u64 = 1000;
const LEAK_CHECK_EVERY: u64 = 1000;

impl<'a> LineJob<'a> {
    /// The job for one file's lines, starting where the ledger says the file was left.
    fn new(
        format: Option<&'a Format>,
        wrapper: Option<Wrapper>,
        plan: &'a Plan,
        known: &Known,
        progress: &'a Progress,
    ) -> Self {
        LineJob {
            format,
            wrapper,
            continued: [false; 2],
            decoded: Vec::new(),
            escapes: Vec::new(),
            masked: Vec::new(),
            cache: TimeCache::new(),
            ager: Ager::new(known.fallback),
            cutoff: plan.cutoff,
            done: known
                .entry
                .as_ref()
                .filter(|_| known.compatible)
                .map(|e| (e.lines, e.masked_before)),
            masker: Masker::new(&plan.mode),
            counts: Counts::default(),
            oldest: None,
            newest: None,
            progress,
            pending_bytes: 0,
            erase: plan.erase.as_deref(),
            whole_line: plan.whole_line,
            leak_checked: 0,
        }
    }
}

impl LineJob<'_> {
    /// Appends line `n` as it must be written to `out`; true when it differs.
    #[inline]
    fn line(&mut self, n: u64, line: &[u8], out: &mut Vec<u8>) -> bool {
        // By number, not by call: a line too long to read whole is copied through without
        // a call, and the ledger's line count must still match the file's numbering.
        self.counts.lines = n;
        self.pending_bytes += line.len() as u64 + 1;
        if self.pending_bytes >= 1 << 20 {
            self.progress
                .bytes
                .fetch_add(self.pending_bytes, Ordering::Relaxed);
            self.pending_bytes = 0;
        }
        match self.wrapper {
            None => self.text(line, None, out),
            Some(w) => self.wrapped_line(w, line, out),
        }
    }

    /// A line of a wrapped format: the wrapper is copied as it is and the inner line masked
    /// as a line of the inner format. A line not in the wrapper's form is masked as an
    /// unparsed line, whole. The parts of a line a container runtime split are masked
    /// token by token, as unparsed lines are: none of them is a whole line to parse.
    /// Docker's text is decoded, masked, and written back with its escapes as they were
    /// (see [`write_escaped`]).
    fn wrapped_line(&mut self, wrapper: Wrapper, line: &[u8], out: &mut Vec<u8>) -> bool {
        let Ok(s) = wrap::strip(wrapper, line) else {
            return self.text(line, Some(Unwrapped::Unparsed(None)), out);
        };
        let part = std::mem::replace(&mut self.continued[s.stream as usize], s.partial);
        let part = part || s.partial;
        let time = (wrapper, &line[s.time.0..s.time.1]);
        let how = Some(if part {
            Unwrapped::Unparsed(Some(time))
        } else {
            Unwrapped::Parsed(time)
        });
        let line_start = out.len();
        let text = &line[s.start..s.end];
        if !s.escaped {
            out.extend_from_slice(&line[..s.start]);
            let changed = self.text(text, how, out);
            out.extend_from_slice(&line[s.end..]);
            if changed {
                self.masker.edits.shift(s.start);
            }
            return changed;
        }
        let (mut decoded, mut escapes, mut masked) = (
            std::mem::take(&mut self.decoded),
            std::mem::take(&mut self.escapes),
            std::mem::take(&mut self.masked),
        );
        decoded.clear();
        escapes.clear();
        masked.clear();
        let changed = match json_string::decode(text, &mut decoded, Some(&mut escapes)) {
            Err(_) => self.text(line, Some(Unwrapped::Unparsed(None)), out),
            Ok(()) => {
                let changed = self.text(&decoded, how, &mut masked);
                if changed {
                    out.extend_from_slice(&line[..s.start]);
                    let escaped = Escaped {
                        text,
                        decoded: &decoded,
                        escapes: &escapes,
                    };
                    let edits = &mut self.masker.edits;
                    write_escaped(&escaped, &masked, edits, s.start, line_start, out);
                    out.extend_from_slice(&line[s.end..]);
                } else {
                    out.extend_from_slice(line);
                }
                changed
            }
        };
        (self.decoded, self.escapes, self.masked) = (decoded, escapes, masked);
        changed
    }

    /// Appends `line`, a whole line or the inner line of a wrapped one (`how` says which,
    /// and whether to parse it), as it must be written to `out`; true when it differs.
    #[inline]
    fn text(&mut self, line: &[u8], how: Option<Unwrapped<'_>>, out: &mut Vec<u8>) -> bool {
        let mut rec = Record::default();
        let parsed = match (self.format, how) {
            (_, Some(Unwrapped::Unparsed(_))) | (None, _) => {
                Err(crate::format::ParseError::new(ErrorKind::Mismatch, 0))
            }
            (Some(f), _) => f.parse_into(line, &mut self.cache, &mut rec).map(|()| &rec),
        };
        // The rewrite's format finds the client field without parsing its address.
        let has_client = |r: &Record<'_>| {
            r.client.is_some()
                || r.addr_fields
                    .as_slice()
                    .iter()
                    .any(|f| f.kind == crate::format::AddrKind::Client)
        };
        if let Ok(r) = &parsed {
            self.counts.parsed += 1;
            self.counts.without_client += u64::from(!has_client(r));
        }
        if let Some(nets) = self.erase {
            // An erasure request masks its sources in every line, whatever the age.
            let fields = parsed.as_ref().ok().map(|r| r.addr_fields.as_slice());
            let start = out.len();
            let masked = mask_line(line, fields, Select::Only(nets), &mut self.masker, out);
            self.counts.addresses += u64::from(masked.addresses);
            let changed = out[start..] != *line;
            self.counts.erased_lines += u64::from(changed);
            return changed;
        }
        let time = parsed
            .as_ref()
            .ok()
            .and_then(|r| r.time)
            .or_else(|| match how {
                Some(Unwrapped::Parsed((w, t)) | Unwrapped::Unparsed(Some((w, t)))) => w.time(t),
                _ => None,
            });
        let age = self.ager.age(time);
        self.oldest = Some(self.oldest.map_or(age, |o| o.min(age)));
        self.newest = Some(self.newest.map_or(age, |o| o.max(age)));
        if age >= self.cutoff {
            out.extend_from_slice(line);
            return false;
        }
        self.counts.past_window += 1;
        if self
            .done
            .is_some_and(|(lines, before)| self.counts.lines <= lines && age < before)
        {
            self.counts.already_masked += 1;
            out.extend_from_slice(line);
            return false;
        }
        let start = out.len();
        let masked = match &parsed {
            // A line without a client is masked as an unreadable one: every token.
            Ok(r) if self.whole_line || !has_client(r) => mask_line(
                line,
                Some(r.addr_fields.as_slice()),
                Select::All,
                &mut self.masker,
                out,
            ),
            Ok(r) => {
                let (urls, n) = url_spans(r);
                // `self.counts.lines` is this line's number (`n` is the URL count here).
                if self.leak_checked < LEAK_CHECK_HEAD || self.counts.lines % LEAK_CHECK_EVERY == 0
                {
                    self.leak_checked += 1;
                    if holds_unmasked_token(line, r, &urls[..n]) {
                        self.counts.leaked_lines += 1;
                    }
                }
                mask_fields(
                    line,
                    r.addr_fields.as_slice(),
                    &urls[..n],
                    Select::All,
                    &mut self.masker,
                    out,
                )
            }
            Err(e) => {
                if e.kind != ErrorKind::Empty && !line.trim_ascii().is_empty() {
                    self.counts.unparsed_scrubbed += 1;
                }
                mask_line(line, None, Select::All, &mut self.masker, out)
            }
        };
        self.counts.addresses += u64::from(masked.addresses);
        self.counts.hostnames += u64::from(masked.hostnames);
        // An address counts only when its replacement differs from it; a host name's mask
        // may be the name itself (a masked name masked again), so only a compare tells.
        masked.addresses > 0 || out[start..] != *line
    }

    fn flush_progress(&mut self) {
        self.progress
            .bytes
            .fetch_add(self.pending_bytes, Ordering::Relaxed);
        self.pending_bytes = 0;
    }
}

/// The URLs of a parsed line, searched for address tokens: the target (or the whole request
/// line when it did not split) and the referer, where they lie in the line.
/// Whether `line` holds an address-shaped token that masking by fields leaves as it is:
/// outside the record's address fields, its URLs and its user agent (whose version
/// numbers look like addresses and are kept by design). Only the gaps between those spans
/// are searched, so the check costs little on a line whose fields are all known.
fn holds_unmasked_token(line: &[u8], r: &Record<'_>, urls: &[Span]) -> bool {
    const MAX: usize = crate::format::record::MAX_ADDR_FIELDS + 3;
    let mut covered = [Span::default(); MAX];
    let mut n = 0;
    let ua = r.user_agent.and_then(|u| r.span_of(u));
    for span in r
        .addr_fields
        .as_slice()
        .iter()
        .map(|f| f.span)
        .chain(urls.iter().copied())
        .chain(ua)
    {
        if n < MAX {
            covered[n] = span;
            n += 1;
        }
    }
    let covered = &mut covered[..n];
    covered.sort_unstable_by_key(|s| s.start);
    let mut pos = 0usize;
    for span in covered.iter() {
        let start = span.start as usize;
        if start > pos
            && crate::format::tokens::tokens(&line[pos..start])
                .next()
                .is_some()
        {
            return true;
        }
        pos = pos.max(span.end as usize);
    }
    pos < line.len() && crate::format::tokens::tokens(&line[pos..]).next().is_some()
}

fn url_spans(r: &Record<'_>) -> ([Span; 2], usize) {
    let mut spans = [Span::default(); 2];
    let mut n = 0;
    for part in [r.target.or(r.request), r.referer].into_iter().flatten() {
        if let Some(span) = r.span_of(part) {
            spans[n] = span;
            n += 1;
        }
    }
    (spans, n)
}

/// Anonymizes one file (see the module docs); never panics on bad input and always
/// returns a report. Symbolic links may point only under `plan.rewrite.allowed_roots`.
pub fn anonymize_file(
    path: &Path,
    plan: &Plan,
    ledger: &Mutex<Ledger>,
    progress: &Progress,
) -> FileResult {
    let (target, meta) = match refusals(path, plan) {
        Ok(found) => found,
        Err((status, reason)) => return FileResult::new(path, status, reason),
    };
    // The ledger: is this content (or its start) already done?
    let head = Head::read(&target).ok();
    let known = Known::look_up(ledger, head.as_ref(), plan, &meta);
    if let (Some(e), Some(h), None) = (&known.entry, &head, &plan.erase) {
        if let Some(result) = ledger_shortcut(path, plan, e, h, &meta, known.compatible) {
            if !plan.dry_run {
                let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(err) = l.touch(e, plan.now) {
                    return FileResult::new(path, Status::Failed, chain(&err).to_string());
                }
            }
            progress.bytes.fetch_add(meta.len(), Ordering::Relaxed);
            return result;
        }
    }
    let chosen = match format_of(&target, plan) {
        Ok(chosen) => chosen,
        Err(reason) => return FileResult::new(path, Status::Failed, reason),
    };
    let rewrite_format = chosen.format.as_ref().map(Format::for_rewrite);
    let (wrapper, inner) = match &rewrite_format {
        Some(f) => {
            let (wrapper, inner) = f.split_wrapper();
            (wrapper, Some(inner))
        }
        None => (None, None),
    };
    let mut job = LineJob::new(inner, wrapper, plan, &known, progress);
    let note = match &chosen.format {
        None => chosen.note.clone(),
        Some(_) => None,
    };
    let mut r = FileResult::new(path, Status::Unchanged, note);
    r.format = chosen.format.as_ref().map(|f| f.name().to_string());
    if plan.dry_run {
        let result = survey(&target, &mut job);
        job.flush_progress();
        match result {
            Ok(true) => r.status = Status::Rewritten,
            Ok(false) => {}
            Err(reason) => {
                r.status = Status::Failed;
                r.reason = Some(reason);
            }
        }
        r.counts = job.counts;
        return r;
    }
    let file = FileAtHand {
        path,
        target: &target,
        meta: &meta,
        head: head.as_ref(),
    };
    rewrite_masked(&file, plan, ledger, &known, job, r)
}

/// Refusals that need no reading, first, so a dry run reports them too: a link out of the
/// allowed roots, a live log, a file that cannot be inspected, and (in a dry run; the
/// rewrite checks it itself) a hard-linked one. Gives the file's target and metadata, or
/// the status and reason of the refusal.
fn refusals(path: &Path, plan: &Plan) -> Result<(PathBuf, std::fs::Metadata), (Status, String)> {
    let opts = &plan.rewrite;
    let target = rewrite::check_symlink(path, &opts.allowed_roots)
        .and_then(|t| rewrite::check_rotated(path, opts.include_active).map(|()| t))
        .and_then(|t| rewrite::check_rotated(&t, opts.include_active).map(|()| t))
        .map_err(|e| (status_of(&e), reason_of(path, &e)))?;
    let meta =
        std::fs::metadata(&target).map_err(|e| (Status::Failed, format!("cannot inspect: {e}")))?;
    if plan.dry_run && meta.nlink() > 1 {
        let e = RewriteError::HardLinked {
            path: target.clone(),
            links: meta.nlink(),
        };
        return Err((Status::Failed, reason_of(path, &e)));
    }
    Ok((target, meta))
}

/// The format of a file's lines, chosen from its first lines, or why the file cannot be read.
fn format_of(target: &Path, plan: &Plan) -> Result<Chosen, String> {
    match input_read::open(target) {
        Ok((stream, _)) => {
            let head_lines = input_read::read_head(
                &mut std::io::BufReader::new(stream),
                crate::format::DETECT_LINES,
            )
            .unwrap_or_default();
            Ok(choose_format(&plan.format, &head_lines))
        }
        Err(e) => Err(reason_of_read(target, &e)),
    }
}

/// What the ledger knows of a file's content before it is read.
struct Known {
    /// The entry of this content (or of its start), if any.
    entry: Option<Entry>,
    /// The entry was made by this run's method (or any, when pseudonymizing), so the lines
    /// it says are masked need not be masked again.
    compatible: bool,
    /// The time a line without one is taken to have: the entry's, else the file's mtime.
    fallback: i64,
}

impl Known {
    fn look_up(
        ledger: &Mutex<Ledger>,
        head: Option<&Head>,
        plan: &Plan,
        meta: &std::fs::Metadata,
    ) -> Known {
        let entry: Option<Entry> = head.and_then(|h| {
            let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            l.find(h).cloned()
        });
        let pseudonymizing = matches!(plan.mode, Mode::Pseudonymize(_));
        let compatible = entry
            .as_ref()
            .is_some_and(|e| pseudonymizing || e.method == plan.method);
        let fallback = entry.as_ref().map_or(meta.mtime(), |e| e.fallback);
        Known {
            entry,
            compatible,
            fallback,
        }
    }

    /// The ledger entry of content `head` after `job` went through it.
    fn new_entry(
        &self,
        plan: &Plan,
        target: &Path,
        job: &LineJob<'_>,
        head: &Head,
        size: Option<u64>,
    ) -> Entry {
        Entry {
            head_len: head.len() as u64,
            head_hash: head.hash(),
            lines: job.counts.lines,
            size,
            // An erasure masks no line by age: the new content is masked exactly as far as
            // the old one was, by the old method.
            masked_before: match (&self.entry, &plan.erase) {
                (Some(e), Some(_)) => e.masked_before,
                (None, Some(_)) => i64::MIN,
                (Some(e), None) => e.masked_before.max(plan.cutoff),
                (None, None) => plan.cutoff,
            },
            method: match (&self.entry, &plan.erase) {
                (Some(e), Some(_)) => e.method.clone(),
                _ => plan.method.clone(),
            },
            fallback: self.fallback,
            oldest: job.oldest,
            newest: job.newest,
            seen: plan.now,
            path: target.display().to_string(),
        }
    }
}

/// The file being anonymized: as named, its target, its metadata and the head of its
/// content (for the ledger).
struct FileAtHand<'a> {
    path: &'a Path,
    target: &'a Path,
    meta: &'a std::fs::Metadata,
    head: Option<&'a Head>,
}

/// Rewrites the file with `job` masking its lines, recording the new content in the ledger
/// before the rename, and completes the report `r`.
fn rewrite_masked(
    file: &FileAtHand<'_>,
    plan: &Plan,
    ledger: &Mutex<Ledger>,
    known: &Known,
    job: LineJob<'_>,
    mut r: FileResult,
) -> FileResult {
    let (path, meta) = (file.path, file.meta);
    let gzip = matches!(
        input_read::sniff_file(file.target),
        Ok(input_read::Compression::Gzip)
    );
    let job = RefCell::new(job);
    let ledger_error: RefCell<Option<LedgerError>> = RefCell::new(None);
    let new_head = RefCell::new(HeadBuilder::default());
    let size_delta = Cell::new(0i64);
    let verifier = RefCell::new(LineVerifier::default());
    let outcome = rewrite::rewrite_file_then(
        path,
        &plan.rewrite,
        |n, line, out| job.borrow_mut().line(n, line, out),
        |old, new| {
            new_head.borrow_mut().push(new);
            size_delta.set(size_delta.get() + new.len() as i64 - old.len() as i64);
            old == new
                || verifier
                    .borrow_mut()
                    .check(old, new, &job.borrow().masker.edits)
        },
        |_| {
            // Every line checked and the file's content checked: record the new content in the
            // ledger before the rename makes it visible, so a crash right after the rename
            // cannot leave a pseudonymized file the ledger does not know.
            let head = new_head.take().finish();
            let size = (!gzip).then(|| meta.len().saturating_add_signed(size_delta.get()));
            let e = known.new_entry(plan, file.target, &job.borrow(), &head, size);
            let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(err) = l.record(e) {
                *ledger_error.borrow_mut() = Some(err);
                return false;
            }
            true
        },
    );
    let mut job = job.into_inner();
    job.flush_progress();
    r.counts = job.counts;
    if let Ok(o) = &outcome {
        r.counts.kept_long = o.kept_long;
        r.counts.lines = o.lines;
    }
    match outcome {
        Ok(o) if o.replaced => {
            // The new content's entry was recorded before the rename. The entry of the
            // content replaced stays: a copy of it elsewhere is masked just as far.
            r.status = Status::Rewritten;
        }
        Ok(_) => {
            // Unchanged: every line past the window is masked or had nothing to mask.
            if let Some(h) = file.head {
                let size = (!gzip).then_some(meta.len());
                let e = known.new_entry(plan, file.target, &job, h, size);
                let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(err) = l.record(e) {
                    r.status = Status::Failed;
                    r.reason = Some(chain(&err).to_string());
                }
            }
        }
        Err(e) => {
            if let Some(err) = ledger_error.into_inner() {
                r.status = Status::Failed;
                r.reason = Some(format!("{}; the file was left as it was", chain(&err)));
            } else {
                r.status = status_of(&e);
                r.reason = Some(reason_of(path, &e));
            }
        }
    }
    r
}

fn reason_of_read(target: &Path, e: &crate::input::ReadError) -> String {
    let text = chain(e).to_string();
    let prefix = format!("{}: ", crate::escape::path(target));
    text.strip_prefix(&prefix)
        .map_or(text.clone(), str::to_string)
}

/// A decision from the ledger alone, when its numbers are exact: the content (plain files:
/// same size too) is known and either nothing in it is past the window, or all of it is and
/// was masked already.
fn ledger_shortcut(
    path: &Path,
    plan: &Plan,
    e: &Entry,
    head: &Head,
    meta: &std::fs::Metadata,
    compatible: bool,
) -> Option<FileResult> {
    let same_content = e.head_len == head.len() as u64 && e.size.is_none_or(|s| s == meta.len());
    if !same_content {
        return None;
    }
    let mut r = FileResult::new(path, Status::Unchanged, None);
    r.counts.lines = e.lines;
    match (e.oldest, e.newest) {
        (None, _) | (_, None) => Some(r),
        (Some(oldest), _) if oldest >= plan.cutoff => Some(r),
        (_, Some(newest)) if compatible && newest < plan.cutoff && newest < e.masked_before => {
            r.counts.past_window = e.lines;
            r.counts.already_masked = e.lines;
            Some(r)
        }
        _ => None,
    }
}

/// The dry run: reads the file and runs every line through the job without writing.
/// Returns whether any line would change.
fn survey(target: &Path, job: &mut LineJob<'_>) -> Result<bool, String> {
    let (stream, _) = input_read::open(target).map_err(|e| reason_of_read(target, &e))?;
    let mut reader = LineReader::new(stream);
    let mut out = Vec::with_capacity(4096);
    let mut changes = false;
    let mut n = 0u64;
    loop {
        let line = match reader.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(changes),
            Err(e) => return Err(format!("line {}: cannot read or decompress: {e}", n + 1)),
        };
        n += 1;
        let text = match line {
            Line::Text(t, _) => t,
            // A rewrite copies it through unchanged; so does the survey.
            Line::TooLong(..) => {
                job.counts.kept_long += 1;
                job.counts.lines += 1;
                continue;
            }
        };
        out.clear();
        changes |= job.line(n, text, &mut out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anonymize::Prefixes;

    /// Masks `lines` of format `spec`, every one past the window, as a rewrite does (the
    /// default truncation), and holds each changed line to the rewrite's line check and
    /// its replacements to the bytes they name.
    fn masked_lines(spec: &str, lines: &[String]) -> Vec<String> {
        let Ok(FormatSpec::Fixed(format)) = FormatSpec::parse(spec) else {
            panic!("{spec}");
        };
        let format = format.for_rewrite();
        let (wrapper, inner) = format.split_wrapper();
        let progress = Progress::default();
        let plan = Plan {
            cutoff: i64::MAX,
            format: FormatSpec::Fixed(format.clone()),
            mode: Mode::Truncate(Prefixes::DEFAULT),
            method: "truncate/24/48".into(),
            rewrite: RewriteOptions::default(),
            dry_run: false,
            now: 0,
            erase: None,
            whole_line: false,
        };
        let known = Known {
            entry: None,
            compatible: false,
            fallback: 0,
        };
        let mut job = LineJob::new(Some(inner), wrapper, &plan, &known, &progress);
        let mut verifier = LineVerifier::default();
        let mut masked = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let (old, mut new) = (line.as_bytes(), Vec::new());
            let changed = job.line(i as u64 + 1, old, &mut new);
            assert_eq!(changed, new != old, "{line}");
            if changed {
                assert!(
                    verifier.check(old, &new, &job.masker.edits),
                    "the line check refuses {}",
                    String::from_utf8_lossy(&new)
                );
                for e in job.masker.edits.all().unwrap_or_default() {
                    let (was, is) = (e.old.of(old), e.new.of(&new));
                    assert!(
                        crate::format::addr::parse_host(was).is_some(),
                        "{}",
                        String::from_utf8_lossy(was)
                    );
                    assert!(crate::format::addr::parse_host(is).is_some());
                }
            }
            masked.push(String::from_utf8(new).expect("UTF-8 in, UTF-8 out"));
        }
        masked
    }

    /// A combined line from `client`, with `other` in its query string.
    fn inner(client: &str, other: &str) -> String {
        format!(
            r#"{client} - - [06/Dec/2026:10:00:00 +0100] "GET /a?ip={other}&b=1 HTTP/1.1" 404 153 "-" "Mozilla/5.0 Chrome/131.0.0.0""#
        )
    }

    #[test]
    fn wrapped_lines_change_only_in_the_inner_addresses() {
        let before = inner("198.51.100.23", "2001:db8:1:2::5");
        let after = inner("198.51.100.0", "2001:db8:1::");
        let docker = |text: &str| {
            format!(
                r#"{{"log":"{}[0m
","stream":"stdout","time":"2026-12-06T10:00:00Z"}}"#,
                text.replace('"', r#"\""#).replace('&', r"\u0026")
            )
        };
        // The wrappers hold addresses of their own (the server's), which stay.
        type Wrap = fn(&str) -> String;
        let cases: [(&str, Wrap); 5] = [
            ("syslog:combined", |t| {
                format!("Jul  8 11:07:07 2001:db8::7 nginx[2869]: {t}")
            }),
            ("rfc5424:combined", |t| {
                format!(
                    r#"<190>1 2026-12-06T10:00:00Z 192.0.2.1 nginx - - [o@1 ip="192.0.2.1"] {t}"#
                )
            }),
            ("journal:combined", |t| {
                format!("2026-12-06T10:00:00+0100 192.0.2.1 nginx[1]: {t}")
            }),
            ("cri:combined", |t| {
                format!("2026-12-06T10:00:00.123456789Z stderr F {t}")
            }),
            ("docker:combined", |_| String::new()),
        ];
        for (spec, wrap) in cases {
            let (line, want) = match spec {
                "docker:combined" => (docker(&before), docker(&after)),
                _ => (wrap(&before), wrap(&after)),
            };
            assert_eq!(masked_lines(spec, &[line]), vec![want], "{spec}");
        }
    }

    #[test]
    fn docker_text_keeps_every_escape_as_written() {
        // `\/` and `\u0022` are not how Docker escapes: kept all the same.
        let line = r#"{"log":"203.0.113.9 - - [06/Dec/2026:10:00:00 +0000] "GET \/x?a="203.0.113.10" HTTP\/1.1" 200 5 "-" "ua"
","stream":"stdout","time":"2026-12-06T10:00:00Z"}"#;
        let want = line
            .replace("203.0.113.9 ", "203.0.113.0 ")
            .replace("203.0.113.10", "203.0.113.0");
        assert_eq!(
            masked_lines("docker:combined", &[line.to_string()]),
            vec![want]
        );
    }

    #[test]
    fn container_parts_and_foreign_lines_are_masked_token_by_token() {
        let whole = inner("198.51.100.23", "203.0.113.7");
        // Split in the time field, as a runtime splits at a byte count.
        let (a, b) = whole.split_at(40);
        let lines = [
            format!("2026-12-06T10:00:00Z stdout P {a}"),
            format!("2026-12-06T10:00:00Z stdout F {b}"),
            // Not a CRI line at all: masked whole, as an unparsed line.
            format!("192.0.2.55 {whole}"),
        ];
        let got = masked_lines("cri:combined", &lines);
        assert_eq!(got[0], lines[0].replace("198.51.100.23", "198.51.100.0"));
        assert_eq!(got[1], lines[1].replace("203.0.113.7", "203.0.113.0"));
        assert!(!got[2].contains("192.0.2.55") && !got[2].contains("198.51.100.23"));
    }

    #[test]
    fn lines_without_time_take_the_previous_age_or_the_mtime() {
        let mut a = Ager::new(1000);
        assert_eq!(a.age(None), 1000, "before any timestamp: the mtime");
        assert_eq!(a.age(None), 1000);
        assert_eq!(a.age(Some(50)), 50);
        assert_eq!(a.age(None), 50, "the nearest parsed line before");
        assert_eq!(a.age(Some(2000)), 2000);
        assert_eq!(
            a.age(Some(40)),
            40,
            "out of order times are taken as written"
        );
        assert_eq!(a.age(None), 40);
    }
}

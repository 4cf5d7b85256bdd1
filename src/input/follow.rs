//! Following live logs like `tail -F`, by polling: the PATH arguments are expanded again
//! every second (files, directories walked for access-log names, quoted glob patterns), each
//! followed file is read from its last offset to its end in large blocks, and the file
//! identity (device, inode, the hash of the first bytes) tells rotation from growth.
//!
//! - Rename rotation: when a path names a new inode, or nothing, the old file stays open
//!   and is drained until it has been idle for [`DRAIN_IDLE`]; the new file is read from
//!   its start. Lines the server writes to the old file before it reopens are not lost.
//! - Copytruncate: a file shorter than the offset, or whose first bytes changed, was
//!   truncated; it is read again from its start. The copy is looked for among the file's
//!   rotated siblings (same first bytes) and the lines written between the last read and the
//!   copy are read from it. Lines written between the copy and the truncation are lost, as
//!   with every reader of copytruncated logs.
//! - Positions ([`Position`]) are saved by the caller and given back at start: a file with
//!   the same identity resumes at its offset; a file that was rotated while logward was
//!   stopped is found among its siblings by inode and first bytes and drained first.
//!
//! Rotated names (`access.log.1`, `access.log-20261122`, `.gz`) under a directory or glob are
//! never followed: they hold lines already read, and compressed ones are for `scan`. Lines
//! are handed out in blocks of whole lines; parsing them is the caller's job.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::discover::{discover, strip_rotation};
use super::head::fnv1a64;
use super::read::{Compression, max_line, read_full_at, sniff_open};

/// How long a rotated or removed file is kept open after its last new line.
pub const DRAIN_IDLE: Duration = Duration::from_secs(10);

/// How many leading bytes identify a file's content. Saved positions hash up to this many
/// and record how many: see [`super::head`].
pub const HEAD_LEN: u64 = 1024;

/// How often the PATH arguments are expanded again to find new files.
pub const RESCAN: Duration = Duration::from_secs(1);

const BLOCK: usize = 1 << 20;

/// The most one file hands out per poll, so a file written faster than it is read does not
/// keep the others (and saving positions) waiting.
const MAX_PER_POLL: u64 = 32 << 20;

/// Where reading stopped in one file, as saved in `positions.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The path the file was followed by.
    pub path: PathBuf,
    /// The file's device number (`st_dev`).
    pub device: u64,
    /// The file's inode number.
    pub inode: u64,
    /// Bytes read and handed out (always at a line end).
    pub offset: u64,
    /// The identity of the content: how many of its first bytes `head_hash` covers.
    pub head_len: u64,
    /// FNV-1a 64 of those bytes.
    pub head_hash: u64,
    /// Lines handed out from this file so far, over restarts.
    pub lines: u64,
    /// The file was no longer at `path` (rotated or removed) and was being drained.
    #[serde(default)]
    pub rotated: bool,
}

/// What happened to a followed file, for the log.
#[derive(Debug)]
pub enum Event {
    /// A file is followed without a saved position to resume.
    Opened {
        /// The file.
        path: PathBuf,
        /// Where reading starts: 0, or the file's end for one found at start when files
        /// are not read from their start.
        offset: u64,
    },
    /// A file is followed from its saved position.
    Resumed {
        /// The file.
        path: PathBuf,
        /// The saved position.
        offset: u64,
    },
    /// The path names another file now: the old one is drained, the new one followed.
    Rotated {
        /// The path.
        path: PathBuf,
    },
    /// The path names no file now: the old one is drained.
    Removed {
        /// The path.
        path: PathBuf,
    },
    /// The file became shorter than what was read: it is read again from its start.
    Truncated {
        /// The file.
        path: PathBuf,
    },
    /// The lines a truncated file lost are read from its rotated copy (`copytruncate`).
    Recovered {
        /// The truncated file.
        path: PathBuf,
        /// The copy.
        from: PathBuf,
    },
    /// A drained file was idle long enough and is closed.
    Closed {
        /// The path it was followed by.
        path: PathBuf,
        /// Lines read from it.
        lines: u64,
    },
    /// A file that is not followed.
    Skipped {
        /// The file.
        path: PathBuf,
        /// Why (`compressed (read it with scan)`).
        reason: &'static str,
    },
    /// A file could not be opened, inspected or read.
    Error {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Opened { path, offset } => {
                write!(f, "{}: following from byte {offset}", path.display())
            }
            Event::Resumed { path, offset } => {
                write!(f, "{}: resuming at byte {offset}", path.display())
            }
            Event::Rotated { path } => write!(
                f,
                "{}: rotated; draining the old file, reading the new one",
                path.display()
            ),
            Event::Removed { path } => {
                write!(f, "{}: moved or removed; draining it", path.display())
            }
            Event::Truncated { path } => {
                write!(f, "{}: truncated; reading from its start", path.display())
            }
            Event::Recovered { path, from } => write!(
                f,
                "{}: reading the lines missed before the truncation from {}",
                path.display(),
                from.display()
            ),
            Event::Closed { path, lines } => write!(
                f,
                "{}: rotated file idle, closed after {lines} lines",
                path.display()
            ),
            Event::Skipped { path, reason } => {
                write!(f, "{}: not followed: {reason}", path.display())
            }
            Event::Error { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

/// A block of whole lines from one file.
pub struct Block<'a> {
    /// Stable for as long as the file is followed.
    pub id: u64,
    /// The path the file was followed by.
    pub path: &'a Path,
    /// The open file the lines come from.
    pub file: &'a File,
    /// Whole lines, each ending in `\n`, except the last piece of a drained file.
    pub data: &'a [u8],
}

struct Tailed {
    id: u64,
    path: PathBuf,
    file: File,
    device: u64,
    inode: u64,
    offset: u64,
    head_len: u64,
    head_hash: u64,
    lines: u64,
    rotated: bool,
    last_data: Instant,
}

impl Tailed {
    fn position(&self) -> Position {
        Position {
            path: self.path.clone(),
            device: self.device,
            inode: self.inode,
            offset: self.offset,
            head_len: self.head_len,
            head_hash: self.head_hash,
            lines: self.lines,
            rotated: self.rotated,
        }
    }
}

/// Follows the files PATH arguments name.
pub struct Follower {
    args: Vec<String>,
    files: Vec<Tailed>,
    /// Positions from the last run, consumed as their files are found.
    saved: Vec<Position>,
    from_start: bool,
    started: bool,
    next_id: u64,
    last_scan: Option<Instant>,
    buf: Vec<u8>,
    events: Vec<Event>,
    /// Lines of files that were closed, so totals survive them.
    closed_lines: u64,
    /// Paths whose file went away, checked every poll for a new one.
    missing: Vec<PathBuf>,
    /// Paths already reported as not followed or unreadable: said once, not every rescan.
    reported: HashSet<PathBuf>,
}

impl Follower {
    /// `from_start`: read files found at start (and not in `saved`) from their beginning
    /// instead of their end.
    pub fn new(args: Vec<String>, saved: Vec<Position>, from_start: bool) -> Follower {
        Follower {
            args,
            files: Vec::new(),
            saved,
            from_start,
            started: false,
            next_id: 0,
            last_scan: None,
            buf: vec![0; BLOCK],
            events: Vec::new(),
            closed_lines: 0,
            missing: Vec::new(),
            reported: HashSet::new(),
        }
    }

    /// What happened since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Where each open file stands, to be saved.
    pub fn positions(&self) -> Vec<Position> {
        self.files.iter().map(Tailed::position).collect()
    }

    /// Open files (followed and draining).
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Bytes written to open files and not read yet.
    pub fn backlog(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|t| {
                t.file
                    .metadata()
                    .ok()
                    .map(|m| m.len().saturating_sub(t.offset))
            })
            .sum()
    }

    /// Lines handed out per open file, and the lines of files closed since the start.
    pub fn line_counts(&self) -> (Vec<(PathBuf, u64)>, u64) {
        (
            self.files
                .iter()
                .map(|t| (t.path.clone(), t.lines))
                .collect(),
            self.closed_lines,
        )
    }

    /// Checks every file once: finds new, rotated and truncated files, and hands the
    /// complete lines written since the last poll (up to 32 MiB per file) to `sink`, in
    /// blocks of up to 1 MiB. Returns the bytes handed out.
    pub fn poll(&mut self, sink: &mut dyn FnMut(Block<'_>)) -> u64 {
        let now = Instant::now();
        self.check_paths();
        if self
            .last_scan
            .is_none_or(|t| now.duration_since(t) >= RESCAN)
        {
            self.last_scan = Some(now);
            self.scan_paths();
        }
        self.started = true;
        let mut total = 0;
        let mut i = 0;
        while i < self.files.len() {
            total += self.read_file(i, sink);
            let t = &self.files[i];
            if t.rotated && t.last_data.elapsed() >= DRAIN_IDLE {
                let t = self.files.remove(i);
                self.closed_lines += t.lines;
                self.events.push(Event::Closed {
                    path: t.path,
                    lines: t.lines,
                });
                continue;
            }
            i += 1;
        }
        total
    }

    /// Notices followed paths that now name another file, or nothing.
    fn check_paths(&mut self) {
        let mut reopen = Vec::new();
        for t in self.files.iter_mut().filter(|t| !t.rotated) {
            match fs::metadata(&t.path) {
                Ok(m) if (m.dev(), m.ino()) == (t.device, t.inode) => {}
                Ok(_) => {
                    t.rotated = true;
                    self.events.push(Event::Rotated {
                        path: t.path.clone(),
                    });
                    reopen.push(t.path.clone());
                }
                Err(_) => {
                    t.rotated = true;
                    self.events.push(Event::Removed {
                        path: t.path.clone(),
                    });
                    self.missing.push(t.path.clone());
                }
            }
        }
        // A removed file's path is watched closely: its successor is usually created
        // right away, and its first lines should not wait for the next rescan.
        let missing = std::mem::take(&mut self.missing);
        for path in missing {
            if path.exists() {
                reopen.push(path);
            } else {
                self.missing.push(path);
            }
        }
        for path in reopen {
            self.open(&path, Some(0));
        }
    }

    /// Expands the PATH arguments and opens files not followed yet.
    fn scan_paths(&mut self) {
        let found = discover(&self.args);
        for source in found.sources {
            let super::Source::File(path) = source else {
                continue;
            };
            let named = self.args.iter().any(|a| Path::new(a) == path);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !named && strip_rotation(&name) != name {
                continue;
            }
            if self.files.iter().any(|t| !t.rotated && t.path == path) {
                continue;
            }
            self.missing.retain(|m| *m != path);
            // Files found at start begin at their end (or start); files that appear later
            // are new, and all their lines are new.
            let offset = if self.started { Some(0) } else { None };
            self.open(&path, offset);
        }
        if !self.started {
            // Saved rotated files, and saved files whose path is gone: look for them among
            // their siblings.
            let saved = std::mem::take(&mut self.saved);
            for p in saved {
                if let Some((path, file)) = find_sibling(&p, |m| {
                    (m.dev(), m.ino()) == (p.device, p.inode) && m.len() >= p.offset
                }) {
                    if self
                        .files
                        .iter()
                        .any(|t| (t.device, t.inode) == (p.device, p.inode))
                    {
                        continue;
                    }
                    self.add(path.clone(), file, p.offset, p.lines, true);
                    self.events.push(Event::Resumed {
                        path,
                        offset: p.offset,
                    });
                }
            }
        }
    }

    /// Opens `path` at `offset` (`None`: decide from the saved positions and `from_start`).
    fn open(&mut self, path: &Path, offset: Option<u64>) {
        let file = match super::read::open_regular(path) {
            Ok(f) => f,
            Err(e) => {
                // A file may vanish between listing and opening; it is found again later.
                if e.kind() != io::ErrorKind::NotFound && self.reported.insert(path.into()) {
                    self.events.push(Event::Error {
                        path: path.into(),
                        error: e,
                    });
                }
                return;
            }
        };
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return,
            Err(e) => {
                self.events.push(Event::Error {
                    path: path.into(),
                    error: e,
                });
                return;
            }
        };
        if self
            .files
            .iter()
            .any(|t| (t.device, t.inode) == (meta.dev(), meta.ino()))
        {
            return;
        }
        if sniff_open(&file).unwrap_or(Compression::None) != Compression::None {
            if self.reported.insert(path.into()) {
                self.events.push(Event::Skipped {
                    path: path.into(),
                    reason: "compressed (read it with scan)",
                });
            }
            return;
        }
        self.reported.remove(path);
        let (offset, lines) = match offset {
            Some(o) => (o, 0),
            None => {
                // The file's identity first, then its canonical path: positions saved for
                // `log/access.log` resume a run started on `./log/` (a regression: they
                // were matched by the path as spelled, and 30 lines were skipped).
                let i = self
                    .saved
                    .iter()
                    .position(|p| !p.rotated && (p.device, p.inode) == (meta.dev(), meta.ino()))
                    .or_else(|| {
                        self.saved
                            .iter()
                            .position(|p| !p.rotated && same_file_name(&p.path, path))
                    });
                match i.map(|i| self.saved.remove(i)) {
                    Some(p)
                        if (p.device, p.inode) == (meta.dev(), meta.ino())
                            && meta.len() >= p.offset
                            && head(&file, p.head_len).ok() == Some(p.head_hash) =>
                    {
                        self.events.push(Event::Resumed {
                            path: path.into(),
                            offset: p.offset,
                        });
                        self.add(path.into(), file, p.offset, p.lines, false);
                        return;
                    }
                    // Known, but another file now: it came after the one we read, so all
                    // of it is new. The old one is looked for among the siblings.
                    Some(p) => {
                        self.saved.push(Position { rotated: true, ..p });
                        (0, 0)
                    }
                    None if self.from_start => (0, 0),
                    None => (meta.len(), 0),
                }
            }
        };
        self.events.push(Event::Opened {
            path: path.into(),
            offset,
        });
        self.add(path.into(), file, offset, lines, false);
    }

    fn add(&mut self, path: PathBuf, file: File, offset: u64, lines: u64, rotated: bool) {
        let meta = file.metadata().ok();
        let head_len = meta.as_ref().map_or(0, |m| m.len().min(HEAD_LEN));
        let head_hash = head(&file, head_len).unwrap_or(0);
        self.next_id += 1;
        self.files.push(Tailed {
            id: self.next_id,
            path,
            device: meta.as_ref().map_or(0, |m| m.dev()),
            inode: meta.as_ref().map_or(0, |m| m.ino()),
            file,
            offset,
            head_len,
            head_hash,
            lines,
            rotated,
            last_data: Instant::now(),
        });
    }

    /// Reads file `i` from its offset to its end.
    fn read_file(&mut self, i: usize, sink: &mut dyn FnMut(Block<'_>)) -> u64 {
        let size = match self.files[i].file.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                let t = &self.files[i];
                self.events.push(Event::Error {
                    path: t.path.clone(),
                    error: e,
                });
                return 0;
            }
        };
        let truncated = {
            let t = &self.files[i];
            size < t.offset
                || (t.head_len > 0 && head(&t.file, t.head_len).ok() != Some(t.head_hash))
        };
        let mut total = 0;
        if truncated {
            total += self.truncated(i, sink);
        }
        let t = &mut self.files[i];
        if t.head_len < HEAD_LEN && size > t.head_len {
            t.head_len = size.min(HEAD_LEN);
            t.head_hash = head(&t.file, t.head_len).unwrap_or(0);
        }
        total += read_to_end(t, &mut self.buf, sink, &mut self.events);
        total
    }

    /// File `i` was truncated: reads what was missed from its copy, then starts it over.
    fn truncated(&mut self, i: usize, sink: &mut dyn FnMut(Block<'_>)) -> u64 {
        let t = &self.files[i];
        self.events.push(Event::Truncated {
            path: t.path.clone(),
        });
        let (offset, head_len, head_hash, inode) = (t.offset, t.head_len, t.head_hash, t.inode);
        let mut total = 0;
        if head_len > 0 {
            let pos = t.position();
            if let Some((from, file)) = find_sibling(&pos, |m| {
                m.ino() != inode && m.len() >= offset && m.len() >= head_len
            })
            .filter(|(_, f)| head(f, head_len).ok() == Some(head_hash))
            {
                self.events.push(Event::Recovered {
                    path: t.path.clone(),
                    from: from.clone(),
                });
                let mut copy = Tailed {
                    id: t.id,
                    path: t.path.clone(),
                    file,
                    device: 0,
                    inode: 0,
                    offset,
                    head_len,
                    head_hash,
                    lines: 0,
                    rotated: true,
                    last_data: Instant::now(),
                };
                total += read_to_end(&mut copy, &mut self.buf, sink, &mut self.events);
                let rest = copy.lines;
                self.files[i].lines += rest;
            }
        }
        let t = &mut self.files[i];
        t.offset = 0;
        t.head_len = 0;
        t.head_hash = 0;
        total
    }
}

/// Hands out every whole line from `t.offset` to the end of the file.
fn read_to_end(
    t: &mut Tailed,
    buf: &mut Vec<u8>,
    sink: &mut dyn FnMut(Block<'_>),
    events: &mut Vec<Event>,
) -> u64 {
    let mut total = 0;
    loop {
        let n = match read_full_at(&t.file, buf, t.offset) {
            Ok(n) => n,
            Err(e) => {
                events.push(Event::Error {
                    path: t.path.clone(),
                    error: e,
                });
                return total;
            }
        };
        if n == 0 {
            return total;
        }
        let end = match memchr::memrchr(b'\n', &buf[..n]) {
            Some(nl) => nl + 1,
            None if n == buf.len() && buf.len() < max_line() => {
                // One line longer than the buffer: grow and read again.
                let grown = (buf.len() * 2).min(max_line());
                buf.resize(grown, 0);
                continue;
            }
            // An over-long line, or the last line of a file no longer written: hand out
            // what there is.
            None if n == buf.len() || (t.rotated && t.last_data.elapsed() >= DRAIN_IDLE) => n,
            // A line still being written: wait for its end.
            None => return total,
        };
        sink(Block {
            id: t.id,
            path: &t.path,
            file: &t.file,
            data: &buf[..end],
        });
        t.lines += memchr::memchr_iter(b'\n', &buf[..end]).count() as u64
            + u64::from(buf[end - 1] != b'\n');
        t.offset += end as u64;
        t.last_data = Instant::now();
        total += end as u64;
        if (n < buf.len() && end == n) || total >= MAX_PER_POLL {
            return total;
        }
    }
}

/// FNV-1a 64 of the first `len` bytes; an error when the file is shorter.
fn head(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = [0u8; HEAD_LEN as usize];
    let want = len.min(HEAD_LEN) as usize;
    let n = read_full_at(file, &mut buf[..want], 0)?;
    if n < want {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(fnv1a64(&buf[..n]))
}

/// A rotated sibling of `p.path` (same directory, same name once the rotation suffix is
/// stripped, not compressed) whose metadata passes `accept` and whose first bytes are `p`'s.
fn find_sibling(p: &Position, accept: impl Fn(&fs::Metadata) -> bool) -> Option<(PathBuf, File)> {
    let dir = p.path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let base = p.path.file_name()?.to_string_lossy().into_owned();
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|path| {
            path.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| strip_rotation(&n) == base)
        })
        .collect();
    // The path itself last: after a restart it may still be the file.
    names.sort_by_key(|n| *n == p.path);
    for path in names {
        let Ok(file) = super::read::open_regular(&path) else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        if meta.is_file() && accept(&meta) && head(&file, p.head_len).ok() == Some(p.head_hash) {
            return Some((path, file));
        }
    }
    None
}

/// Whether two spellings name the same path: equal as given, or equal once both are
/// made canonical (`./log/access.log` and `log/access.log`).
fn same_file_name(a: &Path, b: &Path) -> bool {
    a == b
        || match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(f: &mut Follower) -> Vec<String> {
        let mut out = Vec::new();
        f.poll(&mut |b| out.extend(String::from_utf8_lossy(b.data).lines().map(str::to_string)));
        out
    }

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn starts_at_the_end_then_reads_growth_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "old 1\nold 2\n");
        let mut f = Follower::new(vec![log.display().to_string()], vec![], false);
        assert!(collect(&mut f).is_empty());
        append(&log, "new 1\nnew ");
        assert_eq!(collect(&mut f), ["new 1"]);
        append(&log, "2\n");
        assert_eq!(collect(&mut f), ["new 2"]);
        let mut g = Follower::new(vec![log.display().to_string()], vec![], true);
        assert_eq!(collect(&mut g).len(), 4);
    }

    #[test]
    fn rename_rotation_drains_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "a\n");
        let mut f = Follower::new(vec![dir.path().display().to_string()], vec![], true);
        assert_eq!(collect(&mut f), ["a"]);
        let mut old = fs::OpenOptions::new().append(true).open(&log).unwrap();
        fs::rename(&log, dir.path().join("access.log.1")).unwrap();
        old.write_all(b"b\n").unwrap();
        assert_eq!(collect(&mut f), ["b"]);
        append(&log, "c\n");
        old.write_all(b"d\n").unwrap();
        let mut got = collect(&mut f);
        got.sort();
        assert_eq!(got, ["c", "d"]);
        assert!(collect(&mut f).is_empty());
    }

    #[test]
    fn copytruncate_reads_missed_lines_from_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "line 1\n");
        let mut f = Follower::new(vec![log.display().to_string()], vec![], true);
        assert_eq!(collect(&mut f), ["line 1"]);
        append(&log, "line 2\n");
        fs::copy(&log, dir.path().join("access.log.1")).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, "line 3 is longer than line 2\n");
        assert_eq!(collect(&mut f), ["line 2", "line 3 is longer than line 2"]);
    }

    #[test]
    fn positions_resume_and_find_a_file_rotated_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, "1\n2\n");
        let mut f = Follower::new(vec![log.display().to_string()], vec![], true);
        assert_eq!(collect(&mut f).len(), 2);
        let saved = f.positions();
        append(&log, "3\n");
        let mut g = Follower::new(vec![log.display().to_string()], saved.clone(), false);
        assert_eq!(collect(&mut g), ["3"]);
        // Stopped, then rotated while stopped.
        let saved = g.positions();
        append(&log, "4\n");
        fs::rename(&log, dir.path().join("access.log.1")).unwrap();
        append(&log, "5\n");
        let mut h = Follower::new(vec![log.display().to_string()], saved, false);
        let mut got = collect(&mut h);
        got.sort();
        assert_eq!(got, ["4", "5"]);
    }

    /// Regression: positions saved for `DIR/log/access.log` were not found by a restart
    /// on `DIR/./log/` and the restart began at the end, skipping what came meanwhile.
    #[test]
    fn positions_resume_whatever_the_path_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("log");
        fs::create_dir(&logs).unwrap();
        let log = logs.join("access.log");
        append(&log, "1\n2\n");
        let mut f = Follower::new(vec![log.display().to_string()], vec![], true);
        assert_eq!(collect(&mut f).len(), 2);
        let saved = f.positions();
        append(&log, "3\n4\n");
        let other = format!("{}/./log/", dir.path().display());
        let mut g = Follower::new(vec![other], saved, false);
        assert_eq!(collect(&mut g), ["3", "4"]);
    }

    #[test]
    fn a_compressed_file_is_not_followed_and_said_once() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("access.log");
        fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        let mut f = Follower::new(vec![gz.display().to_string()], vec![], true);
        assert!(collect(&mut f).is_empty());
        f.last_scan = None;
        assert!(collect(&mut f).is_empty());
        let events = f.take_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].to_string().contains("compressed"));
    }

    #[test]
    fn new_files_in_a_directory_are_read_whole_and_rotated_names_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Follower::new(vec![dir.path().display().to_string()], vec![], false);
        assert!(collect(&mut f).is_empty());
        append(&dir.path().join("site.access.log"), "x\n");
        append(&dir.path().join("access.log.1"), "rotated\n");
        append(&dir.path().join("error.log"), "error\n");
        f.last_scan = None;
        assert_eq!(collect(&mut f), ["x"]);
    }
}

//! The anonymize ledger: which log contents are already masked, and up to which time, so a
//! second retention run changes nothing. Pseudonymization is not idempotent (a pseudonym
//! is an address and would be pseudonymized again), so this record is what makes re-runs
//! safe in that mode; in truncate mode it only saves work.
//!
//! **Identity by content.** An entry is keyed by the first [`HEAD_LEN`] bytes of the
//! file's *decompressed* lines (each line counted with a `\n`, so a missing final newline
//! does not matter), not by path, inode or size: the rewrite gives the file a new inode,
//! logrotate later renames `access.log.1` to `access.log.2` and compresses it, and
//! through all that the decompressed head stays the same. A file whose head is shorter than
//! [`HEAD_LEN`] is matched by its whole content as a prefix, so a small file that grew
//! still matches; the entry's line count limits what it vouches for to the lines that
//! existed when it was written.
//!
//! **What an entry says.** Lines `1..=lines` whose age is before `masked_before` were
//! masked (with `method`, or found with nothing to mask); `fallback` is the age given to
//! lines before the first timestamp, kept so those lines get the same age on every run even
//! after compression changed the file's mtime.
//!
//! The ledger is one JSON file in the state directory, replaced atomically (temp, fsync,
//! rename) on every change. It does not read or rewrite logs (`super::retention`).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::input::head::fnv1a64;

/// File name of the ledger in the state directory.
pub const LEDGER_NAME: &str = "anonymize-ledger.json";

/// How many leading bytes of a file's lines identify it. Entries hash this many: see
/// [`crate::input::head`] before changing it.
pub const HEAD_LEN: usize = 64 * 1024;

/// Entries not seen by any run for this long are dropped (about two years): far longer
/// than any retention window, so a file that comes back is still recognized.
pub const FORGET_AFTER_SECS: i64 = 730 * 86_400;

/// What the ledger knows about one file content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Bytes of the head the hash covers (less than [`HEAD_LEN`] for a small file).
    pub head_len: u64,
    /// FNV-1a 64 of those bytes.
    pub head_hash: u64,
    /// Lines the file had.
    pub lines: u64,
    /// Size on disk, for plain files (a grown file skips no work by the ledger's word).
    pub size: Option<u64>,
    /// Lines older than this (UTC seconds) are masked.
    pub masked_before: i64,
    /// How they were masked: `truncate/24/48` or `pseudonymize/<key id>`.
    pub method: String,
    /// The age of lines before the first timestamp.
    pub fallback: i64,
    /// Oldest line age (UTC seconds), `None` for an empty file.
    pub oldest: Option<i64>,
    /// Newest line age, `None` for an empty file.
    pub newest: Option<i64>,
    /// Wall-clock time of the last run that saw this content.
    pub seen: i64,
    /// Where it was last seen, for people reading the file.
    pub path: String,
}

/// The leading bytes of a file's lines, as the ledger identifies files by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    bytes: Vec<u8>,
}

impl Head {
    /// Reads the head of a plain or gzip file.
    pub fn read(path: &Path) -> Result<Head, crate::input::ReadError> {
        let (stream, _) = crate::input::read::open(path)?;
        let mut bytes = Vec::with_capacity(HEAD_LEN);
        stream
            .take(HEAD_LEN as u64)
            .read_to_end(&mut bytes)
            .map_err(|source| crate::input::ReadError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // Shorter than HEAD_LEN means the whole file: count a final line without newline
        // as if it had one, as `HeadBuilder` does.
        if bytes.len() < HEAD_LEN && !bytes.is_empty() && !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        Ok(Head { bytes })
    }

    /// Length of the head in bytes, at most [`HEAD_LEN`].
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// FNV-1a 64 of the head, as [`Entry::head_hash`] stores it.
    pub(crate) fn hash(&self) -> u64 {
        fnv1a64(&self.bytes)
    }
}

/// Builds a [`Head`] from lines as they are written.
#[derive(Debug, Default)]
pub struct HeadBuilder {
    head: Head,
}

impl HeadBuilder {
    /// Adds the next line of the new content, without its newline; bytes past [`HEAD_LEN`]
    /// are dropped.
    pub(crate) fn push(&mut self, line: &[u8]) {
        let room = HEAD_LEN.saturating_sub(self.head.bytes.len());
        if room == 0 {
            return;
        }
        let take = line.len().min(room);
        self.head.bytes.extend_from_slice(&line[..take]);
        if take < room {
            self.head.bytes.push(b'\n');
        }
    }

    /// The head of the lines pushed.
    pub(crate) fn finish(self) -> Head {
        self.head
    }
}

/// A ledger that cannot be read or written, naming the file; the operating system's reason
/// is the `source()`.
#[derive(Debug)]
pub enum LedgerError {
    /// The file exists but could not be read.
    Read {
        /// The ledger file.
        path: PathBuf,
        /// The error reading it.
        source: io::Error,
    },
    /// The file is not valid ledger JSON.
    Parse {
        /// The ledger file.
        path: PathBuf,
        /// What the JSON parser found wrong.
        reason: String,
    },
    /// The new ledger could not be written, synced or renamed into place.
    Write {
        /// The ledger file.
        path: PathBuf,
        /// The error writing it.
        source: io::Error,
    },
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Read { path, .. } => {
                write!(f, "{}: cannot read the ledger", path.display())
            }
            LedgerError::Parse { path, reason } => write!(
                f,
                "{}: the ledger is damaged ({reason}); move it away only if you know which \
                 files were already pseudonymized",
                path.display()
            ),
            LedgerError::Write { path, .. } => {
                write!(f, "{}: cannot write the ledger", path.display())
            }
        }
    }
}

impl std::error::Error for LedgerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LedgerError::Read { source, .. } | LedgerError::Write { source, .. } => Some(source),
            LedgerError::Parse { .. } => None,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    version: u32,
    entries: Vec<Entry>,
}

/// The ledger of one state directory, in memory.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Ledger {
    /// Loads `STATE_DIR/anonymize-ledger.json`; a missing file is an empty ledger.
    pub fn load(state_dir: &Path) -> Result<Ledger, LedgerError> {
        let path = state_dir.join(LEDGER_NAME);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Ledger {
                    path,
                    entries: Vec::new(),
                });
            }
            Err(source) => return Err(LedgerError::Read { path, source }),
        };
        let stored: Stored = serde_json::from_slice(&text).map_err(|e| LedgerError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Ledger {
            path,
            entries: stored.entries,
        })
    }

    /// The ledger file: `anonymize-ledger.json` in the state directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry the ledger holds.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry whose head is a prefix of `head`: the longest such head, then the most
    /// recently seen.
    pub fn find(&self, head: &Head) -> Option<&Entry> {
        let mut hashes: Vec<(u64, u64)> = Vec::new();
        let mut best: Option<&Entry> = None;
        for e in &self.entries {
            let len = e.head_len as usize;
            // An empty file's entry vouches for nothing in a file that has lines.
            if len > head.len() || (len == 0 && !head.is_empty()) {
                continue;
            }
            let hash = match hashes.iter().find(|(l, _)| *l == e.head_len) {
                Some((_, h)) => *h,
                None => {
                    let h = fnv1a64(&head.bytes[..len]);
                    hashes.push((e.head_len, h));
                    h
                }
            };
            if hash != e.head_hash {
                continue;
            }
            if best.is_none_or(|b| (e.head_len, e.seen) > (b.head_len, b.seen)) {
                best = Some(e);
            }
        }
        best
    }

    /// Adds or replaces the entry for `entry`'s head, then writes the ledger.
    pub fn record(&mut self, entry: Entry) -> Result<(), LedgerError> {
        self.entries
            .retain(|e| !(e.head_len == entry.head_len && e.head_hash == entry.head_hash));
        self.entries.push(entry);
        self.save()
    }

    /// Marks an entry as seen at `now` and writes the ledger.
    pub fn touch(&mut self, entry: &Entry, now: i64) -> Result<(), LedgerError> {
        if let Some(e) = self.entries.iter_mut().find(|e| *e == entry) {
            e.seen = e.seen.max(now);
        }
        self.save()
    }

    /// Writes the ledger atomically: a temporary file beside it, fsync, rename, fsync of
    /// the directory. Entries unseen for [`FORGET_AFTER_SECS`] are left out.
    fn save(&mut self) -> Result<(), LedgerError> {
        let newest_seen = self.entries.iter().map(|e| e.seen).max().unwrap_or(0);
        self.entries
            .retain(|e| e.seen >= newest_seen.saturating_sub(FORGET_AFTER_SECS));
        // A stable order, whatever order the files finished in.
        self.entries.sort_by(|a, b| {
            (a.head_hash, a.head_len, &a.path).cmp(&(b.head_hash, b.head_len, &b.path))
        });
        let stored = Stored {
            version: 1,
            entries: self.entries.clone(),
        };
        let mut text = serde_json::to_vec_pretty(&stored).map_err(|e| LedgerError::Write {
            path: self.path.clone(),
            source: e.into(),
        })?;
        text.push(b'\n');
        let fail = |source| LedgerError::Write {
            path: self.path.clone(),
            source,
        };
        crate::rewrite::write_small_file(&self.path, &text, true).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entry(head: &Head, lines: u64, seen: i64) -> Entry {
        Entry {
            head_len: head.len() as u64,
            head_hash: head.hash(),
            lines,
            size: None,
            masked_before: 100,
            method: "truncate/24/48".into(),
            fallback: 0,
            oldest: Some(1),
            newest: Some(2),
            seen,
            path: "a.log.1".into(),
        }
    }

    fn head_of(lines: &[&[u8]]) -> Head {
        let mut b = HeadBuilder::default();
        for l in lines {
            b.push(l);
        }
        b.finish()
    }

    #[test]
    fn head_read_equals_head_built_from_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log.1");
        fs::write(&p, b"one\ntwo").unwrap();
        assert_eq!(Head::read(&p).unwrap(), head_of(&[b"one", b"two"]));
        fs::write(&p, b"one\ntwo\n").unwrap();
        assert_eq!(Head::read(&p).unwrap(), head_of(&[b"one", b"two"]));
        let long = vec![b'x'; HEAD_LEN + 10];
        fs::write(&p, [&long[..], b"\n"].concat()).unwrap();
        let h = Head::read(&p).unwrap();
        assert_eq!(h.len(), HEAD_LEN);
        assert_eq!(h, head_of(&[&long]));
        // gzip: the decompressed lines count.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(b"one\ntwo\n").unwrap();
        fs::write(&p, enc.finish().unwrap()).unwrap();
        assert_eq!(Head::read(&p).unwrap(), head_of(&[b"one", b"two"]));
    }

    #[test]
    fn find_matches_prefix_and_prefers_the_longest() {
        let d = tempfile::tempdir().unwrap();
        let mut l = Ledger::load(d.path()).unwrap();
        assert!(l.entries().is_empty());
        let small = head_of(&[b"one"]);
        let grown = head_of(&[b"one", b"two"]);
        l.record(entry(&small, 1, 10)).unwrap();
        assert_eq!(l.find(&grown).unwrap().lines, 1, "a grown file matches");
        assert!(l.find(&head_of(&[b"on"])).is_none());
        l.record(entry(&grown, 2, 5)).unwrap();
        assert_eq!(l.find(&grown).unwrap().lines, 2);
        assert!(l.find(&head_of(&[b"other"])).is_none());

        // Saved and loaded back; the same head replaces its entry.
        l.record(entry(&grown, 3, 6)).unwrap();
        let back = Ledger::load(d.path()).unwrap();
        assert_eq!(back.entries().len(), 2);
        assert_eq!(back.find(&grown).unwrap().lines, 3);
    }

    #[test]
    fn old_entries_are_forgotten_and_damage_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let mut l = Ledger::load(d.path()).unwrap();
        l.record(entry(&head_of(&[b"a"]), 1, 0)).unwrap();
        l.record(entry(&head_of(&[b"b"]), 1, FORGET_AFTER_SECS + 1))
            .unwrap();
        assert_eq!(Ledger::load(d.path()).unwrap().entries().len(), 1);
        fs::write(d.path().join(LEDGER_NAME), b"{not json").unwrap();
        let err = Ledger::load(d.path()).unwrap_err();
        assert!(err.to_string().contains(LEDGER_NAME), "{err}");
    }

    #[test]
    fn an_unreadable_ledger_gives_the_reason_as_its_source() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(LEDGER_NAME);
        fs::create_dir(&path).unwrap();
        let err = Ledger::load(d.path()).unwrap_err();
        let source = std::error::Error::source(&err).expect("the OS error");
        assert_eq!(
            err.to_string(),
            format!("{}: cannot read the ledger", path.display())
        );
        assert_eq!(
            crate::error::chain(&err).to_string(),
            format!("{}: cannot read the ledger: {source}", path.display())
        );
    }
}

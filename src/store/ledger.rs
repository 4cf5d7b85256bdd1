//! File fingerprints for the scan ledger (`scanned_files`), so a log scanned once is not
//! counted twice when it is seen again, even after it was renamed by rotation, and a live
//! log that grew since is counted only from where the last scan stopped.
//!
//! A fingerprint is (device, inode, size, FNV-1a 64 of the first 4 KiB, or of the whole
//! file when it is shorter). A file that grew is recognised because its first bytes hash as
//! they did when it was smaller: [`FileHead::head_hash_at`] hashes the first bytes of the
//! file as it was at any earlier size.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::input::head::fnv1a64;
use crate::input::read::{Compression, read_full_at};

/// How many leading bytes the head hash covers. Stored fingerprints hash this many: see
/// [`crate::input::head`] before changing it.
pub const HEAD_LEN: usize = 4096;

/// Identity of a file's content as the scan ledger sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileFingerprint {
    /// The file's device number (`st_dev`).
    pub device: u64,
    /// The file's inode number.
    pub inode: u64,
    /// Its size when fingerprinted, or the bytes a scan read of it (see
    /// [`FileHead::fingerprint_at`]).
    pub size: u64,
    /// FNV-1a 64 of the first [`HEAD_LEN`] bytes (fewer if the file is shorter).
    pub head_hash: u64,
}

impl FileFingerprint {
    /// Fingerprints the file at `path`, following symlinks.
    pub fn of(path: &Path) -> io::Result<FileFingerprint> {
        FileHead::read(path).map(|h| h.fingerprint)
    }
}

/// How much of a file earlier scans counted, from [`crate::store::Store::counted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Never scanned (or rescanned on request): count every line.
    Nothing,
    /// A plain file counted whole when it was this long: lines that start before this byte
    /// offset were counted; count only what was written since the fingerprint was taken.
    Before(u64),
    /// A plain file that grew since it was counted when it was this long: its lines before
    /// this offset were counted, the rest is new.
    Grown(u64),
    /// A compressed file already scanned whole: count nothing.
    All,
}

impl Counted {
    /// The byte offset before which a line is not counted again.
    pub fn offset(self) -> u64 {
        match self {
            Counted::Nothing => 0,
            Counted::Before(n) | Counted::Grown(n) => n,
            Counted::All => u64::MAX,
        }
    }
}

/// A file's fingerprint with the bytes its head hash covers, to tell whether the file is
/// a grown copy of one the ledger knows at a smaller size.
#[derive(Clone, Debug)]
pub struct FileHead {
    /// The file's fingerprint at its current size.
    pub fingerprint: FileFingerprint,
    /// Whether the file starts with a compression's magic number: a compressed file is never
    /// counted in part, since its byte offsets are not those of its lines.
    pub compressed: bool,
    head: Vec<u8>,
}

impl FileHead {
    /// Reads the head of the file at `path`. The metadata comes from the open handle so the
    /// hash and the inode describe the same file.
    pub fn read(path: &Path) -> io::Result<FileHead> {
        let f = crate::input::read::open_regular(path)?;
        let meta = f.metadata()?;
        let mut head = vec![0u8; HEAD_LEN];
        let n = read_full_at(&f, &mut head, 0)?;
        head.truncate(n);
        Ok(FileHead {
            fingerprint: FileFingerprint {
                device: meta.dev(),
                inode: meta.ino(),
                size: meta.len(),
                head_hash: fnv1a64(&head),
            },
            compressed: Compression::sniff(&head) != Compression::None,
            head,
        })
    }

    /// The head hash a fingerprint of this file would have had when it was `size` bytes
    /// long (exact for any `size` up to the bytes read).
    pub fn head_hash_at(&self, size: u64) -> u64 {
        let n = usize::try_from(size).map_or(self.head.len(), |s| s.min(self.head.len()));
        fnv1a64(&self.head[..n])
    }

    /// The fingerprint of this file's first `size` bytes, as a scan that read only those
    /// would have recorded it.
    pub fn fingerprint_at(&self, size: u64) -> FileFingerprint {
        FileFingerprint {
            size,
            head_hash: self.head_hash_at(size),
            ..self.fingerprint
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_tracks_content_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        std::fs::write(&p, b"line one\n").unwrap();
        let a = FileFingerprint::of(&p).unwrap();
        assert_eq!(a.size, 9);
        assert_eq!(a.head_hash, fnv1a64(b"line one\n"));
        let moved = dir.path().join("access.log.1");
        std::fs::rename(&p, &moved).unwrap();
        assert_eq!(
            FileFingerprint::of(&moved).unwrap(),
            a,
            "rename keeps identity"
        );
        std::fs::write(&moved, b"line one\nline two\n").unwrap();
        assert_ne!(FileFingerprint::of(&moved).unwrap(), a);
        assert!(FileFingerprint::of(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_grown_file_hashes_its_old_head_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        let short = b"line one\n";
        std::fs::write(&p, short).unwrap();
        let before = FileFingerprint::of(&p).unwrap();
        let mut long = short.to_vec();
        long.extend(std::iter::repeat_n(b'x', 2 * HEAD_LEN));
        std::fs::write(&p, &long).unwrap();
        let head = FileHead::read(&p).unwrap();
        assert!(!head.compressed);
        assert_eq!(head.fingerprint.size, long.len() as u64);
        assert_eq!(head.fingerprint_at(short.len() as u64), before);
        assert_eq!(head.fingerprint_at(long.len() as u64), head.fingerprint);
        assert_eq!(head.head_hash_at(u64::MAX), fnv1a64(&long[..HEAD_LEN]));
        assert_ne!(head.head_hash_at(3), before.head_hash);
        std::fs::write(&p, [0x1f, 0x8b, 8, 0]).unwrap();
        assert!(FileHead::read(&p).unwrap().compressed);
        std::fs::write(&p, b"BZh91AY&SY").unwrap();
        assert!(FileHead::read(&p).unwrap().compressed);
    }
}

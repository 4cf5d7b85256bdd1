//! Temporary files for detection events that outgrow memory: a collector's journals write
//! their events out as a segment whenever they hold [`SpillTo::at`] bytes, and read them
//! back, a segment at a time, when the run finishes. The files are unlinked as soon as they are
//! created, so nothing is left behind after a crash, and only this process can read them
//! (they hold client addresses).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How many bytes of encoded events a journal keeps in memory before writing them out,
/// and so about the largest segment read back: the events of about half a million lines.
pub const SPILL_AT: usize = 4 << 20;

/// What the journals of all collectors of a run may hold together, about, before writing
/// out; see [`SpillTo::shared_by`].
const ALL_JOURNALS: usize = 32 << 20;

/// The smallest spill size: smaller writes would cost more calls than they save memory.
const MIN_SPILL_AT: usize = 256 << 10;

/// Where journals write their events out, and from what size.
#[derive(Clone, Debug)]
pub struct SpillTo {
    /// Directory the temporary files go in; they are unlinked as soon as created.
    pub dir: PathBuf,
    /// A journal that holds this many bytes writes them out.
    pub at: usize,
}

impl SpillTo {
    /// Spills into `dir` for the collectors of a run on `threads` threads, about four per
    /// thread (as `scan` splits its jobs), each of which can hold up to its spill size at
    /// once: the size shrinks with more threads so that together they stay near
    /// `ALL_JOURNALS` (32 MiB), and never goes below `MIN_SPILL_AT` (256 KiB) nor above
    /// [`SPILL_AT`].
    pub fn shared_by(dir: PathBuf, threads: usize) -> SpillTo {
        let at = (ALL_JOURNALS / (4 * threads.max(1))).clamp(MIN_SPILL_AT, SPILL_AT);
        SpillTo { dir, at }
    }
}

/// Segments written out, in order.
pub struct Spilled {
    file: File,
    /// Each segment's length; segments are back to back from offset 0.
    segments: Vec<usize>,
    len: u64,
}

/// Makes the names of the files one process creates unique.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl Spilled {
    /// An empty file in `dir`, already unlinked.
    pub fn create(dir: &Path) -> io::Result<Spilled> {
        let pid = std::process::id();
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".logward-events-{pid}-{n}"));
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => f,
                // A file left by another process of the same pid (a reused pid after a
                // crash between create and unlink): try the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            std::fs::remove_file(&path)?;
            return Ok(Spilled {
                file,
                segments: Vec::new(),
                len: 0,
            });
        }
    }

    /// Appends one segment.
    pub fn write(&mut self, segment: &[u8]) -> io::Result<()> {
        self.file.write_all(segment)?;
        self.segments.push(segment.len());
        self.len += segment.len() as u64;
        Ok(())
    }

    /// Reads segment `i` into `buf`; false when there is no such segment.
    pub fn read_segment(&self, i: usize, buf: &mut Vec<u8>) -> io::Result<bool> {
        let Some(&len) = self.segments.get(i) else {
            return Ok(false);
        };
        let offset: usize = self.segments[..i].iter().sum();
        buf.resize(len, 0);
        self.file.read_exact_at(buf, offset as u64)?;
        Ok(true)
    }

    /// Bytes written out.
    pub fn bytes(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_come_back_in_order_and_the_file_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spilled::create(dir.path()).expect("create");
        let want: Vec<Vec<u8>> = (0..50u32)
            .map(|i| (0..i * 997).map(|b| (b ^ i) as u8).collect())
            .collect();
        for segment in &want {
            s.write(segment).expect("write");
        }
        assert_eq!(s.bytes(), want.iter().map(|w| w.len() as u64).sum::<u64>());
        let mut got = Vec::new();
        let mut buf = Vec::new();
        for i in 0.. {
            if !s.read_segment(i, &mut buf).expect("read") {
                break;
            }
            got.push(buf.clone());
        }
        assert_eq!(got, want);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn the_spill_size_shrinks_with_the_threads_within_its_bounds() {
        let at = |threads| SpillTo::shared_by(PathBuf::from("/x"), threads).at;
        assert_eq!(at(0), SPILL_AT);
        assert_eq!(at(1), SPILL_AT);
        assert_eq!(at(2), SPILL_AT);
        assert_eq!(at(4), 2 << 20);
        assert_eq!(at(8), 1 << 20);
        assert_eq!(at(32), MIN_SPILL_AT);
        assert_eq!(at(1000), MIN_SPILL_AT);
        for threads in 1..100 {
            assert!(at(threads) * 4 * threads <= ALL_JOURNALS.max(4 * threads * MIN_SPILL_AT));
        }
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Spilled::create(&dir.path().join("absent"))
            .err()
            .expect("error");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}

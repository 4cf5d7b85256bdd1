//! What the store has already counted of a scan's files, and the decisions that follow:
//! which lines are fed to the rules again, which episodes are recounted rather than added,
//! and what the scan ledger records for each file read. A file counted whole is not fed to
//! the rules again; the old part of a live log that grew is, so a burst that spans two scans
//! is seen whole. The ledger itself (fingerprints, [`Counted`]) is the store's.

use std::path::Path;

use super::FileReport;
use crate::input::Source;
use crate::store::{Counted, FileFingerprint, FileHead, Recording, Store, StoreError};

/// Per input file of a scan: its head as read before the scan (files only, and only when
/// there is a store), and how much of it the store had counted then.
pub struct AlreadyCounted {
    heads: Vec<Option<FileHead>>,
    counted: Vec<Counted>,
}

impl AlreadyCounted {
    /// Reads the head of every file of `sources` when there is a `store`, and asks it what
    /// it counted of each; with `rescan`, nothing counts as counted.
    pub fn check(
        sources: &[Source],
        store: Option<&Store>,
        rescan: bool,
    ) -> Result<AlreadyCounted, StoreError> {
        let heads: Vec<Option<FileHead>> = sources
            .iter()
            .map(|s| match (s, store) {
                (Source::File(p), Some(_)) => FileHead::read(p).ok(),
                _ => None,
            })
            .collect();
        let mut counted = vec![Counted::Nothing; sources.len()];
        if let (Some(store), false) = (store, rescan) {
            for (i, head) in heads.iter().enumerate() {
                if let Some(head) = head {
                    counted[i] = store.counted(head)?;
                }
            }
        }
        Ok(AlreadyCounted { heads, counted })
    }

    /// Per input file, what the store had counted of it.
    pub fn counted(&self) -> &[Counted] {
        &self.counted
    }

    /// Per input file, its size as read before the scan, when its head was read.
    pub fn size(&self, file: usize) -> Option<u64> {
        Some(self.heads.get(file)?.as_ref()?.fingerprint.size)
    }

    /// Whether the store had counted some of at least one file.
    pub fn any(&self) -> bool {
        self.counted.iter().any(|c| !matches!(c, Counted::Nothing))
    }

    /// Per input file, the offset before which its lines are not fed to the rules at all:
    /// a file counted whole is skipped (a directory of a year of rotated logs would
    /// otherwise be held in memory on every scan), the old part of a live log that grew is
    /// fed, so a burst that spans the two scans is seen whole.
    pub fn skip_offsets(&self) -> Vec<u64> {
        self.counted
            .iter()
            .map(|c| match c {
                Counted::Grown(_) => 0,
                c => c.offset(),
            })
            .collect()
    }

    /// Per input file, the offset before which its lines were counted: the collector
    /// flags no episode made only of them (`Collector::set_counted`).
    pub fn counted_offsets(&self) -> Vec<u64> {
        self.counted.iter().map(|c| c.offset()).collect()
    }

    /// How this scan's episodes go into `store`. A rescan reads lines an earlier scan
    /// counted: its episodes are recounted, not added again, and the bans recorded for them
    /// stay as they are. A scan that ran at the same time may have counted these files while
    /// this one read them (two cron jobs, an operator's scan): its episodes are then the
    /// same ones, recounted rather than added twice.
    pub fn recording(&self, store: &Store, rescan: bool) -> Recording {
        let counted_meanwhile = !rescan
            && self
                .heads
                .iter()
                .zip(&self.counted)
                .filter(|(_, before)| matches!(before, Counted::Nothing))
                .filter_map(|(head, _)| head.as_ref())
                .any(|head| {
                    store
                        .counted(head)
                        .is_ok_and(|now| !matches!(now, Counted::Nothing))
                });
        if rescan || counted_meanwhile {
            Recording::Recount
        } else {
            Recording::Add
        }
    }

    /// Records in the scan ledger each file of `files` (the pass's reports, in input order)
    /// read without an error, at `now`.
    pub fn mark_scanned(
        &self,
        store: &mut Store,
        files: &[FileReport],
        now: i64,
    ) -> Result<(), StoreError> {
        for (file, head) in files.iter().zip(&self.heads) {
            if let (Some(head), Some(Source::File(path)), None) = (head, &file.source, &file.error)
            {
                store.mark_scanned(&scanned_through(head, path, file.bytes), path, now)?;
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    const NOW: i64 = 1_800_000_000;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// A pass's report for `path`, read without an error through `bytes`.
    fn read(path: &Path, bytes: u64) -> FileReport {
        FileReport {
            source: Some(Source::File(path.to_path_buf())),
            bytes,
            ..FileReport::default()
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        log: PathBuf,
        sources: Vec<Source>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("logward.db")).unwrap();
        let log = dir.path().join("access.log");
        append(&log, "line one\nline two\n");
        let sources = vec![Source::File(log.clone())];
        Fixture {
            _dir: dir,
            store,
            log,
            sources,
        }
    }

    #[test]
    fn a_file_never_scanned_is_fed_and_added() {
        let f = fixture();
        let c = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        assert_eq!(c.counted(), &[Counted::Nothing]);
        assert!(!c.any());
        assert_eq!(c.skip_offsets(), vec![0]);
        assert_eq!(c.counted_offsets(), vec![0]);
        assert_eq!(c.size(0), Some(18));
        assert_eq!(c.recording(&f.store, false), Recording::Add);
    }

    #[test]
    fn a_file_scanned_whole_is_skipped_and_a_grown_one_fed_from_its_start() {
        let mut f = fixture();
        let first = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        first
            .mark_scanned(&mut f.store, &[read(&f.log, 18)], NOW)
            .unwrap();

        let again = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        assert_eq!(again.counted(), &[Counted::Before(18)]);
        assert!(again.any());
        assert_eq!(again.skip_offsets(), vec![18]);
        assert_eq!(again.counted_offsets(), vec![18]);

        append(&f.log, "line three\n");
        let grown = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        assert_eq!(grown.counted(), &[Counted::Grown(18)]);
        // The old part fills the buckets; only its lines are not counted again.
        assert_eq!(grown.skip_offsets(), vec![0]);
        assert_eq!(grown.counted_offsets(), vec![18]);
        assert_eq!(grown.recording(&f.store, false), Recording::Add);

        let rescan = AlreadyCounted::check(&f.sources, Some(&f.store), true).unwrap();
        assert_eq!(rescan.counted(), &[Counted::Nothing]);
        assert_eq!(rescan.skip_offsets(), vec![0]);
        assert_eq!(rescan.recording(&f.store, true), Recording::Recount);
    }

    #[test]
    fn a_file_another_scan_counted_meanwhile_is_recounted() {
        let mut f = fixture();
        let this = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        let other = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        other
            .mark_scanned(&mut f.store, &[read(&f.log, 18)], NOW)
            .unwrap();
        assert_eq!(this.recording(&f.store, false), Recording::Recount);
    }

    #[test]
    fn the_ledger_records_the_bytes_read_not_what_was_written_since() {
        let mut f = fixture();
        let c = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        append(&f.log, "written during the scan\n");
        c.mark_scanned(&mut f.store, &[read(&f.log, 18)], NOW)
            .unwrap();
        let next = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        assert_eq!(next.counted(), &[Counted::Grown(18)]);
    }

    #[test]
    fn a_file_read_with_an_error_is_not_marked() {
        let mut f = fixture();
        let c = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        let failed = FileReport {
            error: Some(crate::input::ReadError::Broken {
                path: f.log.clone(),
                line: 18,
                source: std::io::Error::other("read error"),
            }),
            ..read(&f.log, 18)
        };
        c.mark_scanned(&mut f.store, &[failed], NOW).unwrap();
        let next = AlreadyCounted::check(&f.sources, Some(&f.store), false).unwrap();
        assert_eq!(next.counted(), &[Counted::Nothing]);
    }

    #[test]
    fn without_a_store_nothing_is_read_or_counted() {
        let f = fixture();
        let c = AlreadyCounted::check(&f.sources, None, false).unwrap();
        assert_eq!(c.size(0), None);
        assert!(!c.any());
        assert_eq!(c.skip_offsets(), vec![0]);
    }
}

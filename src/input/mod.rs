//! Finding log files and streaming their lines: discovery of paths, directories and glob
//! patterns; compression by magic bytes; a reusable line buffer; newline-aligned ranges;
//! following live files through rotation (`follow`); knowing a file again by the hash of
//! its first bytes (`head`).

pub mod discover;
pub mod follow;
pub mod head;
pub mod read;

pub use discover::{Discovered, Source, discover};
pub use read::{Compression, Line, LineReader, ReadError};

/// A position unique across a run that sorts lines in input order: the file's index in the
/// sorted input list times 2^40 plus the line's byte offset in the (decompressed) file. The
/// pass that reads the lines makes it; detection and the read-back of lines take it apart.
pub fn order(file: usize, offset: u64) -> u64 {
    ((file as u64) << 40) | offset
}

/// The file index and byte offset that [`order`] combined.
pub fn split_order(order: u64) -> (usize, u64) {
    ((order >> 40) as usize, order & ((1 << 40) - 1))
}

/// Counters a progress display may read while a pass over files runs (a scan, a search,
/// an anonymize run): bytes and lines read, files done.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of lines read so far, decompressed, added in steps of about 1 MiB.
    pub bytes: std::sync::atomic::AtomicU64,
    /// An estimate of the lines read so far: a scan adds 4096 for every MiB.
    pub lines: std::sync::atomic::AtomicU64,
    /// Files finished.
    pub files_done: std::sync::atomic::AtomicU64,
}

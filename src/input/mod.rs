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

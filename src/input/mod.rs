//! Finding log files and streaming their lines: discovery of paths, directories and glob
//! patterns; compression by magic bytes; a reusable line buffer; newline-aligned ranges.

pub mod discover;
pub mod read;

pub use discover::{Discovered, Source, discover};
pub use read::{Compression, Line, LineReader, ReadError};

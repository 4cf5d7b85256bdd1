//! logward reads web access logs (plain or gzip) in one fast streaming pass, finds the
//! sources that attack the sites behind them, and masks client addresses once the retention
//! window has passed, rewriting rotated logs in place without losing a line.
//!
//! Data flow: `input` finds log files and streams their lines; `format` turns each line into
//! a borrowed [`format::Record`]; `detect` feeds records to leaky-bucket rules and `store`
//! keeps the flagged sources; `anonymize` masks the address bytes of old lines and `rewrite`
//! replaces a file on disk safely. The jobs built from them are `scan` (one pass over many
//! files), `search` and `watch` (following live logs); `report` turns a scan into one HTML
//! page. Command-line options are the binary's alone: its `cli` module is not part of the
//! library.

#![warn(missing_docs)]

pub mod anonymize;
pub mod audit;
mod bytes;
mod child;
pub mod detect;
pub mod error;
pub mod escape;
pub mod fleet;
pub mod format;
#[cfg(feature = "generator")]
pub mod generate;
pub mod geo;
pub mod input;
pub mod metrics;
pub mod plural;
pub mod report;
pub mod rewrite;
pub mod scan;
pub mod search;
pub mod store;
pub mod timefmt;
pub mod watch;

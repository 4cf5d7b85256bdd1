//! Sample lines: the copies of the lines that cannot be read again (each source's earliest
//! of each rule, see [`keep_sample`]), the samples the replay chooses before their lines are
//! fetched, and the public read-back types ([`SampleLine`], [`ReadBack`]). Which lines are
//! fetched, and when, is the engine's.

use std::collections::HashMap;

use super::journal::{Key, KeyHasher};
use super::rule::rule_bits;
use crate::format::Record;

/// How many sample lines a flagged source keeps.
pub const SAMPLES: usize = 3;

/// A line behind a flag and where it was, when known: the input file's index in the run
/// and, when it was read back from a file, its line number (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleLine {
    /// Index of the input file in the run, when known.
    pub file: Option<usize>,
    /// Line number in that file, from 1, when the line was read back.
    pub line: Option<u64>,
    /// The line, without its newline.
    pub text: Vec<u8>,
}

/// Reads lines again by the `order` they were observed with, for the samples of flagged
/// sources that [`Collector::observe_readable`](super::Collector::observe_readable) did not
/// copy.
pub trait ReadBack {
    /// The line observed with `order` and its line number when known, if it can still be
    /// read and `same` accepts the record it parses to (the file may have changed since).
    fn read_back(
        &mut self,
        order: u64,
        same: &dyn Fn(&Record<'_>) -> bool,
    ) -> Option<(Vec<u8>, Option<u64>)>;
}

/// A [`ReadBack`] that has no lines: samples that were not copied are left out.
pub struct NoReadBack;

impl ReadBack for NoReadBack {
    fn read_back(
        &mut self,
        _: u64,
        _: &dyn Fn(&Record<'_>) -> bool,
    ) -> Option<(Vec<u8>, Option<u64>)> {
        None
    }
}

/// A copied sample line: `line` is its range in the collector's `sample_bytes`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    pub(super) time_ms: i64,
    pub(super) order: u64,
    pub(super) rules: u64,
    pub(super) line: (usize, usize),
}

/// Copies of the lines that cannot be read back, for each rule the SAMPLES earliest; see
/// `keep_sample`.
#[derive(Default)]
pub(super) struct Copies {
    pub(super) samples: Vec<Sample>,
    /// Rules that already have SAMPLES samples, and the latest (time, order) kept: a later
    /// line for only those rules is rejected without looking further.
    full: u64,
    latest: (i64, u64),
}

/// A sample chosen by the replay, before its line is fetched.
#[derive(Clone, Copy, Debug)]
pub(super) struct Chosen {
    pub(super) time_ms: i64,
    pub(super) order: u64,
    pub(super) slot: u32,
}

/// Copies `line` for `key` if it may become one of its samples. Kept out of the scan loop:
/// lines of plain files are never copied, and inlined there this code made the loop keep
/// more of its values on the stack for every line.
#[inline(never)]
pub(super) fn copy_sample(
    copies: &mut HashMap<Key, Box<Copies>, KeyHasher>,
    sample_bytes: &mut Vec<u8>,
    key: Key,
    time: i64,
    order: u64,
    mask: u64,
    line: &[u8],
) {
    let time_ms = time.saturating_mul(1000);
    let copies = copies.entry(key).or_default();
    // Once every rule of a line has its samples, later lines are rejected here.
    if mask & !copies.full != 0 || (time_ms, order) < copies.latest {
        keep_sample(copies, sample_bytes, time_ms, order, mask, line);
    }
}

/// Appends `line` to `bytes` and returns where it is.
fn push_line(bytes: &mut Vec<u8>, line: &[u8]) -> (usize, usize) {
    let start = bytes.len();
    bytes.extend_from_slice(line);
    (start, bytes.len())
}

pub(super) fn sample_line<'a>(bytes: &'a [u8], s: &Sample) -> &'a [u8] {
    bytes.get(s.line.0..s.line.1).unwrap_or_default()
}

/// Keeps `line` if it is among the SAMPLES earliest (time, order) lines of any rule in
/// `rules`. Logs are mostly in time order, so once every rule of a line has its samples the
/// check is two comparisons and no copy.
pub(super) fn keep_sample(
    slot: &mut Copies,
    bytes: &mut Vec<u8>,
    time_ms: i64,
    order: u64,
    rules: u64,
    line: &[u8],
) {
    if rules & !slot.full == 0 && (time_ms, order) >= slot.latest {
        return;
    }
    if slot.samples.iter().any(|s| s.order == order) {
        return;
    }
    let in_order = (time_ms, order) >= slot.latest;
    slot.samples.push(Sample {
        time_ms,
        order,
        rules,
        line: push_line(bytes, line),
    });
    if in_order {
        // A sample after all others evicts none of them: only `full` and `latest` change.
        for ri in rule_bits(rules & !slot.full) {
            let n = slot
                .samples
                .iter()
                .filter(|s| s.rules >> ri & 1 == 1)
                .count();
            if n >= SAMPLES {
                slot.full |= 1u64 << ri;
            }
        }
        slot.latest = (time_ms, order);
        return;
    }
    slot.samples.sort_by_key(|s| (s.time_ms, s.order));
    // Keep a sample while it is among the first SAMPLES of one of its rules.
    let mut counts = [0u8; 64];
    let mut full = 0u64;
    slot.samples.retain(|s| {
        let mut keep = false;
        for ri in rule_bits(s.rules) {
            if usize::from(counts[ri]) < SAMPLES {
                counts[ri] += 1;
                keep = true;
                if usize::from(counts[ri]) == SAMPLES {
                    full |= 1u64 << ri;
                }
            }
        }
        keep
    });
    slot.full = full;
    slot.latest = slot
        .samples
        .last()
        .map_or((i64::MIN, 0), |s| (s.time_ms, s.order));
}

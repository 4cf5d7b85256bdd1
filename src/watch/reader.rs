//! Turning the blocks `input::follow` hands out into records for the streaming engine:
//! each followed file's format (chosen from its first lines, once), the split into lines,
//! parsing, the counts of lines and malformed lines, the first malformed lines of each file
//! reported, and the warning when a format gives few client addresses. Detection itself is
//! `detect::live`'s; what happens to a flag is the recorder's.

use std::collections::HashMap;

use super::Log;
use crate::detect::live::Live;
use crate::detect::{Allowlist, Flagged};
use crate::format::{self, Format, FormatSpec, Record, TimeCache, Unwrapper};
use crate::input::follow::Block;

/// How many parsed lines of a followed file the client check counts before it decides.
const CLIENT_CHECK_LINES: u64 = 200;

/// Malformed lines reported per file; the rest are only counted.
const MALFORMED_REPORTS: u32 = 3;

/// Per followed file: its format once known, and malformed lines reported so far.
struct FileState {
    format: Option<Format>,
    /// A wrapped format's state from line to line (joined parts of container lines).
    unwrapper: Option<Unwrapper>,
    malformed_reported: u32,
    /// Of its first [`CLIENT_CHECK_LINES`] parsed lines, those that gave a client address;
    /// the check warns once when fewer than half did.
    parsed: u64,
    with_client: u64,
}

/// The reading side of a watch: the state of every file followed so far, by the
/// follower's file id.
pub(super) struct Reader {
    spec: FormatSpec,
    files: HashMap<u64, FileState>,
    cache: TimeCache,
    /// Lines read (empty lines left out), and those that did not parse.
    pub(super) lines: u64,
    pub(super) malformed: u64,
}

impl Reader {
    pub(super) fn new(spec: FormatSpec) -> Reader {
        Reader {
            spec,
            files: HashMap::new(),
            cache: TimeCache::new(),
            lines: 0,
            malformed: 0,
        }
    }

    /// Parses the lines of `block` and feeds their records to `live`, which adds the
    /// sources that overflow to `flags`.
    pub(super) fn read(
        &mut self,
        block: Block<'_>,
        live: &mut Live,
        allowlist: &Allowlist,
        flags: &mut Vec<Flagged>,
        log: &Log,
    ) {
        let state = self.files.entry(block.id).or_insert_with(|| FileState {
            format: None,
            unwrapper: None,
            malformed_reported: 0,
            parsed: 0,
            with_client: 0,
        });
        if state.format.is_none() {
            state.format = choose_format(&self.spec, block.file, block.data);
            if let Some(f) = &state.format {
                log(&format!("{}: format {}", block.path.display(), f.name()));
                state.unwrapper = f.unwrapper();
            }
        }
        let mut start = 0;
        let data = block.data;
        let ends = memchr::memchr_iter(b'\n', data).chain(
            // The last piece of a drained file may lack its newline.
            (data.last() != Some(&b'\n')).then_some(data.len()),
        );
        for end in ends {
            let line = &data[start..end];
            start = end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            self.lines += 1;
            let Some(format) = &state.format else {
                self.malformed += 1;
                continue;
            };
            let mut rec = Record::default();
            let parsed = match &mut state.unwrapper {
                None => format.parse_into(line, &mut self.cache, &mut rec),
                Some(u) => u.parse_into(line, &mut self.cache, &mut rec),
            };
            match parsed {
                Ok(()) => {
                    if state.parsed < CLIENT_CHECK_LINES {
                        state.parsed += 1;
                        state.with_client += u64::from(rec.client.is_some());
                        if state.parsed == CLIENT_CHECK_LINES
                            && let Some(warning) = crate::scan::few_clients(
                                state.parsed,
                                state.with_client,
                                Some(format.name()),
                            )
                        {
                            log(&format!(
                                "warning: {}: {warning}",
                                crate::escape::path(block.path)
                            ));
                        }
                    }
                    live.observe(&rec, allowlist, flags)
                }
                // A part of a container line: its last part gives the record.
                Err(e) if e.kind == format::ErrorKind::Partial => {}
                Err(e) => {
                    self.malformed += 1;
                    if state.malformed_reported < MALFORMED_REPORTS {
                        state.malformed_reported += 1;
                        log(&format!("{}: malformed: {e}", block.path.display()));
                    }
                }
            }
        }
    }
}

/// The format of a newly followed file: the one asked for, or the preset that parses most
/// of its first lines (read from its start, whatever the offset), else of `block`.
fn choose_format(spec: &FormatSpec, file: &std::fs::File, block: &[u8]) -> Option<Format> {
    use std::os::unix::fs::FileExt;
    let head = match spec {
        FormatSpec::Fixed(_) => Vec::new(),
        FormatSpec::Auto => {
            let mut head = vec![0u8; 64 << 10];
            let n = file.read_at(&mut head, 0).unwrap_or(0);
            head.truncate(n);
            head
        }
    };
    format::choose_format(spec, &head)
        .format
        .or_else(|| format::choose_format(spec, block).format)
}

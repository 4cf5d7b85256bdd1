//! The content pipeline: detect compression, stream the original line by line through the
//! caller's transform and line check into the temporary file, and check the temporary holds
//! exactly what was produced.
//!
//! Every line is checked against its original while both are in memory. A plain output is
//! written by a second thread (with direct I/O where the file system offers it), so the
//! transform never waits for the kernel; the lines are counted again from the very bytes
//! handed to the kernel, and the file's length is checked before the rename. A gzip output
//! is read back and decompressed whole after it is written, which checks the compression.
//!
//! Memory is bounded whatever the file size: one read buffer (grown only up to the line
//! limit), a few output blocks, and for gzip a bounded batch of chunks. It does not know
//! about refusals, metadata or renames (`safety`, `atomic`).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use flate2::read::MultiGzDecoder;

use super::check::{Check, Digester, Written};
use super::direct::{BLOCKS_GATHERED, DIRECT_ALIGN, OutputFile};
use super::error::RewriteError;
use super::gzip::GzMemberWriter;
use super::stored::{Compression, READ_SIZE, advise_sequential, rewind};
use crate::input::read::{LineReader, Part};

/// Knobs the pipeline needs from the options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub max_line: usize,
    pub gzip_level: u32,
    pub gzip_chunk: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub lines: u64,
    pub changed: u64,
    pub members: u64,
    /// Lines over the limit, copied through unchanged.
    pub kept_long: u64,
}

/// Output blocks of a plain rewrite: small enough that a block is still in the cache when
/// the writer thread counts its lines and copies it on.
const PLAIN_BLOCK: usize = 256 << 10;
/// Full blocks waiting for the writer thread.
const BLOCKS_IN_FLIGHT: usize = 6;

/// The per-line work of one rewrite: the caller's transform and line check, and where
/// errors point.
pub(crate) struct Job<'a, T, V> {
    pub path: &'a Path,
    pub out_path: &'a Path,
    pub p: Params,
    pub transform: &'a mut T,
    pub verify: &'a mut V,
}

impl<T, V> Job<'_, T, V>
where
    T: FnMut(u64, &[u8], &mut Vec<u8>) -> bool,
    V: FnMut(&[u8], &[u8]) -> bool,
{
    /// Reads the original from its start through the transform into `out`, compressed like
    /// the input. Each line is checked with `verify(old, new)` while both are still in
    /// memory, so the original is read once.
    pub(crate) fn rewrite(
        &mut self,
        orig: &File,
        kind: Compression,
        out: &File,
    ) -> Result<(Counts, Check), RewriteError> {
        rewind(self.path, orig)?;
        match kind {
            Compression::Plain => {
                advise_sequential(orig);
                std::thread::scope(|scope| {
                    let sink = Sink::Plain(PlainWriter::new(scope, out));
                    self.run(orig, sink, PLAIN_BLOCK)
                })
            }
            Compression::Gzip => {
                let sink = Sink::Gzip(
                    GzMemberWriter::new(out, self.p.gzip_level),
                    Digester::default(),
                );
                let dec = MultiGzDecoder::new(io::BufReader::with_capacity(READ_SIZE, orig));
                self.run(dec, sink, self.p.gzip_chunk.max(1))
            }
        }
    }

    fn run<R: Read>(
        &mut self,
        input: R,
        mut sink: Sink<'_, '_, '_>,
        block_size: usize,
    ) -> Result<(Counts, Check), RewriteError> {
        let (path, out_path) = (self.path, self.out_path);
        let write_err = |e: io::Error| match split_line_of(&e) {
            Some(line) => RewriteError::TransformSplitLine {
                path: path.to_path_buf(),
                line,
            },
            None => RewriteError::io(out_path, "write the temporary file", e),
        };
        let mut reader = LineReader::with_limits(input, READ_SIZE, self.p.max_line);
        let mut counts = Counts::default();
        let mut block = sink.first_block(block_size + 4096);
        loop {
            let line_no = counts.lines + 1;
            let line = match reader.next_piece() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(source) => {
                    return Err(RewriteError::Corrupt {
                        path: self.path.to_path_buf(),
                        line: line_no,
                        source,
                    });
                }
            };
            if line.part != Part::Whole {
                // A line over the limit is copied through byte for byte, a piece at a
                // time, never held whole and never transformed (documented: its
                // addresses stay; the report counts it).
                block.bytes.extend_from_slice(line.bytes);
                if line.part == Part::Last {
                    counts.lines = line_no;
                    counts.kept_long += 1;
                    if line.newline {
                        block.newlines.push(block.bytes.len());
                        block.bytes.push(b'\n');
                    }
                }
                if block.bytes.len() - block.head >= block_size {
                    block = sink.emit(block).map_err(write_err)?;
                }
                continue;
            }
            // The transform appends straight to the block: no copy of the line in between.
            // A newline it put inside the line is found when the block is written (see
            // `Block::check_newlines`), off this per-line path.
            let start = block.bytes.len();
            if (self.transform)(line_no, line.bytes, &mut block.bytes) {
                counts.changed += 1;
            }
            let new = &block.bytes[start..];
            if !(self.verify)(line.bytes, new) {
                if memchr::memchr(b'\n', new).is_some() {
                    return Err(RewriteError::TransformSplitLine {
                        path: self.path.to_path_buf(),
                        line: line_no,
                    });
                }
                return Err(RewriteError::VerifyFailed {
                    path: self.path.to_path_buf(),
                    line: line_no,
                    reason: "the check rejected the rewritten line",
                });
            }
            counts.lines = line_no;
            if line.newline {
                block.newlines.push(block.bytes.len());
                block.bytes.push(b'\n');
            }
            if block.bytes.len() - block.head >= block_size {
                block = sink.emit(block).map_err(write_err)?;
            }
        }
        let (check, members) = sink.finish(block, counts.lines).map_err(write_err)?;
        counts.members = members;
        Ok((counts, check))
    }
}

enum Sink<'scope, 'env, 'f> {
    Plain(PlainWriter<'scope, 'env>),
    Gzip(GzMemberWriter<&'f File>, Digester),
}

impl Sink<'_, '_, '_> {
    fn first_block(&self, capacity: usize) -> Block {
        match self {
            Sink::Plain(_) => Block::aligned(capacity),
            Sink::Gzip(..) => Block::with_capacity(capacity),
        }
    }

    /// Hands over a full block; returns the block to fill next.
    fn emit(&mut self, mut block: Block) -> io::Result<Block> {
        match self {
            Sink::Plain(w) => w.emit(block),
            Sink::Gzip(gz, digest) => {
                block.check_newlines(count_newlines(&block.bytes))?;
                digest.update(&block.bytes);
                let bytes = gz.push(std::mem::take(&mut block.bytes))?;
                block.bytes = bytes;
                block.first_line += block.newlines.len() as u64;
                block.newlines.clear();
                Ok(block)
            }
        }
    }

    /// Writes the last block; returns how to check the output, and the gzip member count.
    fn finish(self, last: Block, lines: u64) -> io::Result<(Check, u64)> {
        match self {
            Sink::Plain(w) => {
                let back = w.finish(last)?;
                if back.lines() != lines {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} lines written, {lines} produced", back.lines()),
                    ));
                }
                Ok((Check::Done { bytes: back.bytes }, 0))
            }
            Sink::Gzip(gz, mut digest) => {
                last.check_newlines(count_newlines(&last.bytes))?;
                digest.update(&last.bytes);
                let (_, members) = gz.finish(last.bytes)?;
                let written = Written {
                    lines,
                    digest: digest.finish(),
                };
                Ok((Check::ReadBack(written), members))
            }
        }
    }
}

/// One block of output lines and where the pipeline put each newline.
///
/// A plain output's block starts its data on a sector boundary in memory, so that the
/// writer can hand it to the device without copying it (see [`OutputFile`]): it sends
/// whole sectors, and the bytes after the last whole sector go again at the start of the
/// next block, which begins with them.
pub(super) struct Block {
    pub(super) bytes: Vec<u8>,
    /// Bytes of `bytes` before the data: room that aligns the data's start in memory.
    head: usize,
    /// Offsets in `bytes` of the newlines the pipeline wrote after lines, in order,
    /// including those in the bytes carried over from the block before.
    newlines: Vec<usize>,
    /// The number in the file of the line the data starts in.
    first_line: u64,
    /// How many bytes of the data the writer writes: all of the last block's; whole
    /// sectors of the others, the rest being carried over.
    to_write: usize,
}

impl Block {
    fn with_capacity(capacity: usize) -> Block {
        Block {
            bytes: Vec::with_capacity(capacity),
            head: 0,
            newlines: Vec::new(),
            first_line: 1,
            to_write: 0,
        }
    }

    /// An empty block whose data starts on a [`DIRECT_ALIGN`] boundary in memory, with
    /// room for `capacity` bytes after the alignment and the bytes carried over. (A block
    /// that grows past its room moves, and is then copied on its way to the device.)
    pub(super) fn aligned(capacity: usize) -> Block {
        let mut b = Block::with_capacity(capacity + 2 * DIRECT_ALIGN);
        b.clear();
        b
    }

    /// Empties the block for reuse, its data aligned again.
    fn clear(&mut self) {
        self.bytes.clear();
        self.newlines.clear();
        let head = self.bytes.as_ptr().align_offset(DIRECT_ALIGN);
        self.head = if head < DIRECT_ALIGN { head } else { 0 };
        self.bytes.resize(self.head, 0);
    }

    pub(super) fn data(&self) -> &[u8] {
        &self.bytes[self.head..]
    }

    /// Sets this block to write its whole sectors and starts `next` (empty) with the rest,
    /// its newlines and the number of the line it starts in.
    fn carry_tail_into(&mut self, next: &mut Block) {
        let len = self.bytes.len() - self.head;
        self.to_write = len - len % DIRECT_ALIGN;
        let cut = self.head + self.to_write;
        next.bytes.extend_from_slice(&self.bytes[cut..]);
        let before_cut = self.newlines.partition_point(|&at| at < cut);
        next.newlines.extend(
            self.newlines[before_cut..]
                .iter()
                .map(|&at| at - cut + next.head),
        );
        next.first_line = self.first_line + before_cut as u64;
    }

    /// Given how many newlines the block holds, checks they are exactly those the pipeline
    /// wrote. Otherwise a transform put one inside a line, which would split it in two: the
    /// error names the first such line (see [`split_line_of`]).
    fn check_newlines(&self, count: u64) -> io::Result<()> {
        if count == self.newlines.len() as u64 {
            return Ok(());
        }
        let mut start = self.head;
        let mut split = self.newlines.len();
        for (i, &end) in self.newlines.iter().enumerate() {
            if memchr::memchr(b'\n', &self.bytes[start..end]).is_some() {
                split = i;
                break;
            }
            start = end + 1;
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            SplitLine(self.first_line + split as u64),
        ))
    }
}

/// The error of a block holding a line the transform split: the line's number.
#[derive(Debug)]
struct SplitLine(u64);

impl std::fmt::Display for SplitLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} contains a newline", self.0)
    }
}

impl std::error::Error for SplitLine {}

fn split_line_of(e: &io::Error) -> Option<u64> {
    e.get_ref()?.downcast_ref::<SplitLine>().map(|s| s.0)
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// What the writer thread handed to the kernel: the lines of the output are counted from
/// the very bytes written, not from the transform's own count.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    bytes: u64,
    newlines: u64,
    last: Option<u8>,
}

impl Tally {
    /// Counts `block`; returns its newlines.
    fn add(&mut self, block: &[u8]) -> u64 {
        let Some(&last) = block.last() else {
            return 0;
        };
        let newlines = count_newlines(block);
        self.bytes += block.len() as u64;
        self.newlines += newlines;
        self.last = Some(last);
        newlines
    }

    /// Lines as the line reader counts them: a last line without a newline counts.
    fn lines(&self) -> u64 {
        self.newlines + u64::from(self.last.is_some_and(|b| b != b'\n'))
    }
}

/// Writes a plain output from a second thread, started with the first full block (a small
/// file is written without one), so the transform never waits for the kernel.
struct PlainWriter<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    file: &'env File,
    worker: Option<Worker<'scope>>,
}

struct Worker<'scope> {
    full: SyncSender<Block>,
    empty: Receiver<Block>,
    handle: ScopedJoinHandle<'scope, io::Result<Tally>>,
}

impl<'scope, 'env> PlainWriter<'scope, 'env> {
    fn new(scope: &'scope Scope<'scope, 'env>, file: &'env File) -> Self {
        PlainWriter {
            scope,
            file,
            worker: None,
        }
    }

    fn emit(&mut self, mut block: Block) -> io::Result<Block> {
        let worker = match &mut self.worker {
            Some(w) => w,
            None => {
                let (full, blocks) = sync_channel(BLOCKS_IN_FLIGHT);
                let (give_back, empty) = channel();
                let file = self.file;
                let handle = self
                    .scope
                    .spawn(move || write_blocks(file, &blocks, &give_back));
                self.worker.insert(Worker {
                    full,
                    empty,
                    handle,
                })
            }
        };
        let mut next = worker
            .empty
            .try_recv()
            .unwrap_or_else(|_| Block::with_capacity(block.bytes.capacity()));
        next.clear();
        block.carry_tail_into(&mut next);
        if worker.full.send(block).is_err() {
            // The writer stopped on an error; it is in its result.
            let stopped = self.worker.take().map(|w| w.handle.join());
            return Err(match stopped {
                Some(Ok(Err(e))) => e,
                _ => io::Error::other("the writer thread stopped"),
            });
        }
        Ok(next)
    }

    fn finish(self, mut last: Block) -> io::Result<Tally> {
        last.to_write = last.data().len();
        match self.worker {
            None => {
                let mut out = OutputFile::new(self.file, false);
                let mut tally = Tally::default();
                last.check_newlines(tally.add(last.data()))?;
                out.write(last.data())?;
                out.finish()?;
                Ok(tally)
            }
            Some(w) => {
                // A send fails only when the writer already stopped on an error.
                let _ = w.full.send(last);
                drop(w.full);
                w.handle
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked")))
            }
        }
    }
}

/// Writes the blocks in order, each checked first to hold exactly the newlines the
/// pipeline wrote, counted from the very bytes about to be written.
fn write_blocks(
    file: &File,
    blocks: &Receiver<Block>,
    give_back: &Sender<Block>,
) -> io::Result<Tally> {
    yield_to_the_transform();
    let mut out = OutputFile::new(file, true);
    let mut tally = Tally::default();
    let mut queued: Vec<Block> = Vec::with_capacity(BLOCKS_GATHERED);
    for block in blocks {
        // The blocks already waiting go in one write: fewer trips to the device, each of
        // which wakes this thread again when it is done. As a batch thread (see
        // `yield_to_the_transform`) the writer usually finds several waiting: pinned to one
        // core, a 250 MB rewrite switches threads about 650 times instead of 1,900.
        queued.push(block);
        while queued.len() < BLOCKS_GATHERED {
            match blocks.try_recv() {
                Ok(more) => queued.push(more),
                Err(_) => break,
            }
        }
        let mut parts = [&[][..]; BLOCKS_GATHERED];
        for (part, block) in parts.iter_mut().zip(&queued) {
            let (now, carried) = block.data().split_at(block.to_write);
            let newlines = tally.add(now) + count_newlines(carried);
            block.check_newlines(newlines)?;
            *part = now;
        }
        out.write_all_in_place(&parts[..queued.len()])?;
        for block in queued.drain(..) {
            // The producer may have finished and stopped taking buffers back.
            let _ = give_back.send(block);
        }
    }
    out.finish()?;
    Ok(tally)
}

/// Marks the calling thread, the writer, as a batch thread (`SCHED_BATCH`, sched(7)): woken
/// by a block to write, or by the device when its write is done, it no longer preempts the
/// transform at once, but runs when the transform waits or its time slice ends. Where the
/// two share one core, that halves the switches between them (one each way per block and
/// per device write before: about 3,700 for a 250 MB file, 1,900 after). Only a hint;
/// where it is refused, nothing changes.
fn yield_to_the_transform() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sets the calling thread's policy; `param` is a valid sched_param for
        // SCHED_BATCH, whose priority must be 0. Any user may choose it for its own thread.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Appends `bytes` to the block as the pipeline would: each newline its own.
    fn fill(block: &mut Block, bytes: &[u8]) {
        let base = block.bytes.len();
        block
            .newlines
            .extend(memchr::memchr_iter(b'\n', bytes).map(|i| base + i));
        block.bytes.extend_from_slice(bytes);
    }

    /// A block of `bytes` whose newlines are all the pipeline's own.
    fn block_of(bytes: &[u8]) -> Block {
        let mut b = Block::with_capacity(bytes.len());
        fill(&mut b, bytes);
        b
    }

    /// Runs the plain writer over `blocks` into a new file, each block filling the one the
    /// writer handed back; returns what it tallied.
    fn plain_write(path: &Path, blocks: &[&[u8]]) -> io::Result<Tally> {
        let f = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        std::thread::scope(|scope| {
            let mut w = PlainWriter::new(scope, &f);
            let (last, full) = blocks.split_last().unwrap();
            let mut block = Block::aligned(1 << 16);
            for b in full {
                fill(&mut block, b);
                block = w.emit(block)?;
                // What follows the last whole sector comes back, to be written with the next.
                assert!(block.data().len() < DIRECT_ALIGN);
                assert_eq!(block.head, block.bytes.as_ptr().align_offset(DIRECT_ALIGN));
            }
            fill(&mut block, last);
            w.finish(block)
        })
    }

    #[test]
    fn plain_writer_writes_every_block_in_order() {
        let d = tempfile::tempdir().unwrap();
        // Many blocks (the writer thread, its buffers recycled), one block (no thread).
        let blocks: Vec<Vec<u8>> = (0..50u32)
            .map(|i| {
                format!("line {i}\n")
                    .repeat(1 + i as usize * 37)
                    .into_bytes()
            })
            .collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
        let tally = plain_write(&d.path().join("many"), &refs).unwrap();
        let want = blocks.concat();
        assert_eq!(fs::read(d.path().join("many")).unwrap(), want);
        assert_eq!(tally.bytes, want.len() as u64);
        assert_eq!(
            tally.lines(),
            want.iter().filter(|b| **b == b'\n').count() as u64
        );

        let tally = plain_write(&d.path().join("one"), &[b"a\nb"]).unwrap();
        assert_eq!(fs::read(d.path().join("one")).unwrap(), b"a\nb");
        assert_eq!((tally.bytes, tally.lines()), (3, 2));
        let tally = plain_write(&d.path().join("empty"), &[b""]).unwrap();
        assert_eq!((tally.bytes, tally.lines()), (0, 0));
    }

    #[test]
    fn plain_writer_reports_a_failed_write() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ro");
        fs::write(&p, b"").unwrap();
        // A descriptor opened read-only cannot be written: the error comes back, no hang.
        let f = File::open(&p).unwrap();
        let blocks = vec![vec![b'x'; 1000]; 20];
        let got = std::thread::scope(|scope| {
            let mut w = PlainWriter::new(scope, &f);
            let mut block = Block::aligned(64);
            for b in &blocks {
                fill(&mut block, b);
                block = w.emit(block)?;
            }
            w.finish(block).map(|_| ())
        });
        assert!(got.is_err());
    }

    #[test]
    fn a_newline_inside_a_line_names_the_line() {
        let mut b = block_of(b"a\nb\nc\n");
        b.first_line = 41;
        b.check_newlines(3).unwrap();
        let split = |b: &Block, count| split_line_of(&b.check_newlines(count).unwrap_err());
        // The transform wrote "b\nx" as line 42: one newline more than the pipeline's.
        b.bytes = b"a\nb\nx\nc\n".to_vec();
        b.newlines = vec![1, 5, 7];
        assert_eq!(split(&b, 4), Some(42));
        // In the last line, with or without its newline.
        b.bytes = b"a\nb\nc\nx".to_vec();
        b.newlines = vec![1, 3];
        assert_eq!(split(&b, 3), Some(43));
        b.newlines = vec![1, 3, 7];
        b.bytes.push(b'\n');
        assert_eq!(split(&b, 4), Some(43));
        // The writer thread's error carries the line to the pipeline, across the bytes
        // carried from one block to the next.
        let d = tempfile::tempdir().unwrap();
        let f = File::options()
            .create_new(true)
            .write(true)
            .open(d.path().join("split"))
            .unwrap();
        let got = std::thread::scope(|scope| {
            let mut w = PlainWriter::new(scope, &f);
            let mut b = Block::aligned(64);
            fill(
                &mut b,
                &[b"0123456\n".repeat(600), b"fine\n".to_vec()].concat(),
            );
            let mut b = w.emit(b)?;
            // The first sector held lines 1-512; 513-601 come back, to go with the next.
            assert_eq!(b.first_line, 513);
            fill(&mut b, b"one\ntwo\n");
            let own = b.newlines.len() - 2;
            b.newlines.remove(own);
            let b = w.emit(b)?;
            w.finish(b).map(|_| ())
        });
        assert_eq!(split_line_of(&got.unwrap_err()), Some(602));
    }
}

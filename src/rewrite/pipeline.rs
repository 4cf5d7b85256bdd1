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
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use flate2::read::MultiGzDecoder;

use super::error::RewriteError;
use super::gzip::GzMemberWriter;
use crate::input::read::{LineReader, Part};

/// Bytes requested per read; large reads keep syscalls off the profile.
const READ_SIZE: usize = 1 << 20;

/// How the file's bytes are stored, from its first bytes (not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Plain,
    Gzip,
}

/// How `file` is stored, from its magic number ([`crate::input::read::sniff_open`]): the
/// compressions logward cannot write back are refused.
pub(crate) fn detect(path: &Path, file: &File) -> Result<Compression, RewriteError> {
    use crate::input::read::{Compression as Stored, sniff_open};
    match sniff_open(file).map_err(|e| RewriteError::io(path, "read the file", e))? {
        Stored::None => Ok(Compression::Plain),
        Stored::Gzip => Ok(Compression::Gzip),
        other => Err(RewriteError::Unsupported {
            path: path.to_path_buf(),
            format: other.name(),
        }),
    }
}

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

fn rewind(path: &Path, mut f: &File) -> Result<(), RewriteError> {
    f.seek(SeekFrom::Start(0))
        .map(drop)
        .map_err(|e| RewriteError::io(path, "seek", e))
}

/// What was written, in the uncompressed form: the line count and the digest of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub lines: u64,
    pub digest: Digest,
}

/// How the output is checked before the rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Read the whole file back (decompressed) and compare with what was produced.
    ReadBack(Written),
    /// The lines were counted from the bytes as they were written; the file must still be
    /// exactly this long.
    Done { bytes: u64 },
}

/// Output blocks of a plain rewrite: small enough that a block is still in the cache when
/// the writer thread counts its lines and copies it on.
const PLAIN_BLOCK: usize = 256 << 10;
/// Full blocks waiting for the writer thread.
const BLOCKS_IN_FLIGHT: usize = 6;
/// At most this many waiting blocks go to the device in one write.
const BLOCKS_GATHERED: usize = 3;

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

/// Tells the kernel the file is read once from start to end (more read-ahead, pages
/// dropped sooner). Only advice: a failure changes nothing, so it is ignored.
fn advise_sequential(f: &File) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: plain syscall on a descriptor we own; no memory is passed.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
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
struct Block {
    bytes: Vec<u8>,
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
    fn aligned(capacity: usize) -> Block {
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

    fn data(&self) -> &[u8] {
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

/// Alignment of direct writes: of the memory, the file offset and the length. A multiple
/// of the sector sizes in use (512 and 4096 bytes); a device that wants more refuses the
/// first direct write, and the output goes on through the page cache.
const DIRECT_ALIGN: usize = 4096;
/// Bytes gathered for one direct write.
const DIRECT_CHUNK: usize = 1 << 20;

/// Writes a plain output front to back.
///
/// A rewrite's output is written once and not read again soon. Where the file system takes
/// direct I/O, whole sectors go straight from memory to the device: the kernel's copy into
/// the page cache (pages allocated, marked dirty, written back later) cost more than all
/// the rest of the write. Aligned blocks (see [`Block`]) go from where the transform wrote
/// them; other data is gathered into an aligned buffer first and goes a megabyte at a
/// time. The last piece, not a whole number of sectors, goes through the page cache, and
/// so does everything after a direct write the device refused. Through the page cache,
/// each piece's writeback starts at once, so the fsync before the rename waits only for
/// the last ones.
struct OutputFile<'f> {
    file: &'f File,
    /// Bytes handed to the kernel.
    offset: u64,
    direct: Option<Staging>,
}

/// The aligned buffer of direct writes: `buf[start..start + DIRECT_CHUNK]` is aligned.
struct Staging {
    buf: Vec<u8>,
    start: usize,
    filled: usize,
}

impl Staging {
    fn new(misalign: usize) -> Self {
        let buf = vec![0u8; DIRECT_CHUNK + DIRECT_ALIGN + misalign];
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN) + misalign;
        Staging {
            buf,
            start,
            filled: 0,
        }
    }

    fn gathered(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.filled]
    }
}

impl<'f> OutputFile<'f> {
    /// Starts writing at offset 0 of an empty file; `try_direct` asks for direct I/O.
    fn new(file: &'f File, try_direct: bool) -> Self {
        Self::with_staging(file, try_direct, 0)
    }

    fn with_staging(file: &'f File, try_direct: bool, misalign: usize) -> Self {
        let direct =
            (try_direct && set_direct_io(file, true).is_ok()).then(|| Staging::new(misalign));
        OutputFile {
            file,
            offset: 0,
            direct,
        }
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let Some(st) = &mut self.direct else {
                self.file.write_all_at(data, self.offset)?;
                start_writeback(self.file, self.offset, data.len());
                self.offset += data.len() as u64;
                return Ok(());
            };
            let n = (DIRECT_CHUNK - st.filled).min(data.len());
            let at = st.start + st.filled;
            st.buf[at..at + n].copy_from_slice(&data[..n]);
            st.filled += n;
            data = &data[n..];
            if st.filled == DIRECT_CHUNK {
                self.write_gathered()?;
            }
        }
        Ok(())
    }

    /// Writes the full staging buffer directly; after a refusal, writes the rest of it
    /// through the page cache and stays there.
    fn write_gathered(&mut self) -> io::Result<()> {
        let Some(st) = &mut self.direct else {
            return Ok(());
        };
        let done = write_direct(self.file, self.offset, st.gathered())?;
        if done < st.filled {
            let Some(st) = self.direct.take() else {
                return Ok(());
            };
            leave_direct(self.file, &st.gathered()[done..], self.offset + done as u64)?;
            self.offset += st.filled as u64;
            return Ok(());
        }
        self.offset += st.filled as u64;
        st.filled = 0;
        Ok(())
    }

    /// Writes `data` from where it is when it can go to the device as it is: direct I/O on,
    /// nothing gathered, `data` aligned in memory and whole sectors long. Otherwise it is
    /// gathered like any other.
    fn write_in_place(&mut self, data: &[u8]) -> io::Result<()> {
        let in_place = matches!(&self.direct, Some(st) if st.filled == 0)
            && !data.is_empty()
            && data.len() % DIRECT_ALIGN == 0
            && data.as_ptr().align_offset(DIRECT_ALIGN) == 0;
        if !in_place {
            return self.write(data);
        }
        let done = write_direct(self.file, self.offset, data)?;
        if done < data.len() {
            self.direct = None;
            leave_direct(self.file, &data[done..], self.offset + done as u64)?;
        }
        self.offset += data.len() as u64;
        Ok(())
    }

    /// [`write_in_place`](Self::write_in_place) for several pieces in a row: one direct
    /// write of them all when each could go as it is; otherwise, and for what a short
    /// write left, piece by piece.
    fn write_all_in_place(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let whole = |d: &[u8]| {
            !d.is_empty()
                && d.len() % DIRECT_ALIGN == 0
                && d.as_ptr().align_offset(DIRECT_ALIGN) == 0
        };
        let mut skip = 0;
        if parts.len() > 1
            && matches!(&self.direct, Some(st) if st.filled == 0)
            && parts.iter().all(|d| whole(d))
        {
            skip = write_direct_vectored(self.file, self.offset, parts)?;
            self.offset += skip as u64;
        }
        for part in parts {
            let n = skip.min(part.len());
            skip -= n;
            if n < part.len() {
                self.write_in_place(&part[n..])?;
            }
        }
        Ok(())
    }

    /// Writes what is still gathered (through the page cache) and leaves the descriptor
    /// without direct I/O for the fsync and metadata calls that follow.
    fn finish(mut self) -> io::Result<u64> {
        if let Some(st) = self.direct.take() {
            leave_direct(self.file, st.gathered(), self.offset)?;
            self.offset += st.filled as u64;
        }
        Ok(self.offset)
    }
}

/// Writes `chunk` (aligned, whole sectors) at `offset` with direct I/O; returns how many
/// bytes went. Fewer than all when the device refused a write (misaligned for it) or took
/// part of a sector: the caller writes the rest through the page cache.
fn write_direct(file: &File, offset: u64, chunk: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < chunk.len() {
        match file.write_at(&chunk[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                done += n;
                if done % DIRECT_ALIGN != 0 {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes `parts` (each aligned, whole sectors) one after the other at `offset` in one
/// direct write; returns how many bytes went, 0 when the device refused it. The caller
/// writes the rest piece by piece, as [`write_direct`] would.
fn write_direct_vectored(file: &File, offset: u64, parts: &[&[u8]]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iov = [empty; BLOCKS_GATHERED];
    for (v, p) in iov.iter_mut().zip(parts) {
        *v = libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
    }
    let count = parts.len().min(BLOCKS_GATHERED);
    let Ok(at) = libc::off_t::try_from(offset) else {
        return Ok(0);
    };
    loop {
        // SAFETY: the first `count` iovecs point into live slices of `parts`, each for its
        // length; the kernel only reads them.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), count as i32, at) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINVAL) => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// Turns direct I/O off for good (refused, or at the end) and writes `rest` at `offset`
/// through the page cache.
fn leave_direct(file: &File, rest: &[u8], offset: u64) -> io::Result<()> {
    set_direct_io(file, false)?;
    file.write_all_at(rest, offset)
}

/// Turns direct I/O on or off for `file`. Turning it on fails where the file system does
/// not offer it (tmpfs, for one).
fn set_direct_io(file: &File, on: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor we hold open; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let want = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, want) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        if on {
            Err(io::ErrorKind::Unsupported.into())
        } else {
            Ok(())
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to the disk now, without
/// waiting: the data goes out while the rest of the file is transformed, and the fsync
/// before the rename waits only for the last blocks instead of the whole file. Only a hint;
/// the fsync is what makes the file durable, so a failure here is ignored.
fn start_writeback(file: &File, offset: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: a plain system call on an open descriptor; no memory is passed.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Checks the temporary file before the rename. A gzip file is read back decompressed and
/// must hold exactly what the transform produced: the same line count and the same digest.
/// A plain file's lines were counted from the bytes as they were written; it must still
/// have the length written. Together with the per-line check during the transform, this is
/// what the original would have been compared with, without reading and splitting the
/// original a second time.
pub(crate) fn check_written(
    tmp_path: &Path,
    tmp: &File,
    kind: Compression,
    check: Check,
) -> Result<(), RewriteError> {
    let want = match check {
        Check::ReadBack(want) => want,
        Check::Done { bytes } => {
            let len = tmp
                .metadata()
                .map_err(|e| RewriteError::io(tmp_path, "inspect the temporary file", e))?
                .len();
            if len != bytes {
                return Err(RewriteError::VerifyFailed {
                    path: tmp_path.to_path_buf(),
                    line: 0,
                    reason: "the new file is not as long as what was written",
                });
            }
            return Ok(());
        }
    };
    rewind(tmp_path, tmp)?;
    let got = match kind {
        Compression::Plain => {
            advise_sequential(tmp);
            read_back(tmp)
        }
        Compression::Gzip => read_back(MultiGzDecoder::new(io::BufReader::with_capacity(
            READ_SIZE, tmp,
        ))),
    };
    let got = got.map_err(|e| RewriteError::io(tmp_path, "read the temporary file back", e))?;
    let fail = |reason| RewriteError::VerifyFailed {
        path: tmp_path.to_path_buf(),
        line: got.lines.min(want.lines) + 1,
        reason,
    };
    if got.lines < want.lines {
        return Err(fail("the new file has fewer lines"));
    }
    if got.lines > want.lines {
        return Err(fail("the new file has more lines"));
    }
    if got.digest != want.digest {
        return Err(fail("the new file differs from what was written"));
    }
    Ok(())
}

fn read_back<R: Read>(mut r: R) -> io::Result<Written> {
    let mut buf = vec![0u8; READ_SIZE];
    let mut digest = Digester::default();
    let (mut newlines, mut last) = (0u64, b'\n');
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        newlines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        last = chunk[n - 1];
        digest.update(chunk);
    }
    Ok(Written {
        lines: newlines + u64::from(last != b'\n'),
        digest: digest.finish(),
    })
}

/// Length and 64-bit hash of a byte stream, the same however the stream is cut.
///
/// Not cryptographic: it is there to catch faults between producing the bytes and reading
/// them back (a lost or repeated block, a bad compression round), not a forger, who would
/// need write access to our temporary file. Four independent lanes each take one 8-byte word
/// per 32-byte block through `(lane ^ word) * odd`, a bijection, so a difference in a single
/// word is never lost; the lanes and the length are mixed at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest {
    len: u64,
    hash: u64,
}

const LANE_MUL: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0xd6e8_feb8_6659_fd93,
];

#[derive(Debug, Clone)]
pub(crate) struct Digester {
    lanes: [u64; 4],
    tail: [u8; 32],
    tail_len: usize,
    len: u64,
}

impl Default for Digester {
    fn default() -> Self {
        Digester {
            lanes: [1, 2, 3, 4],
            tail: [0; 32],
            tail_len: 0,
            len: 0,
        }
    }
}

impl Digester {
    #[inline]
    fn block(lanes: &mut [u64; 4], block: &[u8]) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&block[i * 8..i * 8 + 8]);
            *lane = (*lane ^ u64::from_le_bytes(word))
                .wrapping_mul(LANE_MUL[i])
                .rotate_left(31);
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let take = (32 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 32 {
                return;
            }
            let tail = self.tail;
            Self::block(&mut self.lanes, &tail);
            self.tail_len = 0;
        }
        let mut blocks = data.chunks_exact(32);
        for b in &mut blocks {
            Self::block(&mut self.lanes, b);
        }
        let rest = blocks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    pub(crate) fn finish(mut self) -> Digest {
        if self.tail_len > 0 {
            let mut last = [0u8; 32];
            last[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            Self::block(&mut self.lanes, &last);
        }
        let mut h = self.len;
        for (lane, mul) in self.lanes.iter().zip(LANE_MUL) {
            h = (h ^ lane).wrapping_mul(mul).rotate_left(27);
        }
        Digest {
            len: self.len,
            hash: h ^ (h >> 29),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn file_with(dir: &Path, name: &str, data: &[u8]) -> (std::path::PathBuf, File) {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        let f = File::options().read(true).write(true).open(&p).unwrap();
        (p, f)
    }

    #[test]
    fn detects_by_magic_not_name() {
        let d = tempfile::tempdir().unwrap();
        let cases: [(&[u8], Result<Compression, &str>); 6] = [
            (b"\x1f\x8b\x08rest", Ok(Compression::Gzip)),
            (b"BZh91AY", Err("bzip2")),
            (b"\xfd7zXZ\x00..", Err("xz")),
            (b"\x28\xb5\x2f\xfd..", Err("zstd")),
            (b"1.2.3.4 - -", Ok(Compression::Plain)),
            (b"", Ok(Compression::Plain)),
        ];
        for (i, (data, want)) in cases.into_iter().enumerate() {
            let (p, f) = file_with(d.path(), &format!("f{i}.log"), data);
            match (detect(&p, &f), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w),
                (Err(RewriteError::Unsupported { format, .. }), Err(w)) => assert_eq!(format, w),
                (got, w) => panic!("{data:?}: got {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn digest_ignores_how_the_stream_is_cut() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let whole = {
            let mut d = Digester::default();
            d.update(&data);
            d.finish()
        };
        for step in [1, 3, 31, 32, 33, 100, 999] {
            let mut d = Digester::default();
            for piece in data.chunks(step) {
                d.update(piece);
            }
            assert_eq!(d.finish(), whole, "step {step}");
        }
        // Any one byte changed, a zero byte appended or the last byte dropped is noticed.
        for i in [0, 7, 8, 31, 32, 500, 999] {
            let mut other = data.clone();
            other[i] ^= 1;
            let mut d = Digester::default();
            d.update(&other);
            assert_ne!(d.finish(), whole, "byte {i}");
        }
        for other in [[&data[..], &[0]].concat(), data[..999].to_vec()] {
            let mut d = Digester::default();
            d.update(&other);
            assert_ne!(d.finish(), whole);
        }
    }

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

    /// Bytes that show any misplaced, lost or doubled piece: no two 8-byte windows alike.
    fn numbered_bytes(len: usize) -> Vec<u8> {
        let mut v: Vec<u8> = (0..len.div_ceil(8) as u64)
            .flat_map(|i| i.to_le_bytes())
            .collect();
        v.truncate(len);
        v
    }

    /// Writes `data` through an `OutputFile` in pieces of odd sizes; returns the file's
    /// bytes and whether direct writes were still on before the finish.
    fn output_file_round_trip(
        dir: &Path,
        name: &str,
        data: &[u8],
        try_direct: bool,
        misalign: usize,
    ) -> (Vec<u8>, bool, bool) {
        let p = dir.join(name);
        let f = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let mut out = OutputFile::with_staging(&f, try_direct, misalign);
        let started_direct = out.direct.is_some();
        let mut rest = data;
        let mut piece = 1usize;
        while !rest.is_empty() {
            let n = piece.min(rest.len());
            out.write(&rest[..n]).unwrap();
            rest = &rest[n..];
            piece = (piece * 7 + 3) % 300_001;
        }
        let still_direct = out.direct.is_some();
        assert_eq!(out.finish().unwrap(), data.len() as u64);
        drop(f);
        (fs::read(&p).unwrap(), started_direct, still_direct)
    }

    #[test]
    fn output_file_keeps_every_byte_with_direct_writes_and_without() {
        let d = tempfile::tempdir().unwrap();
        // Three whole chunks and an odd tail: direct writes and the buffered last piece.
        let data = numbered_bytes(3 * DIRECT_CHUNK + 12_345);
        let (got, started, kept) = output_file_round_trip(d.path(), "direct", &data, true, 0);
        assert!(
            got == data,
            "direct: the file differs from what was written"
        );
        if started {
            assert!(kept, "aligned direct writes were refused");
        } else {
            eprintln!("skipped the direct half: this file system refuses O_DIRECT");
        }
        let (got, started, _) = output_file_round_trip(d.path(), "cached", &data, false, 0);
        assert!(!started);
        assert!(
            got == data,
            "page cache: the file differs from what was written"
        );
        // Less than one chunk: everything goes through the last, buffered write.
        let small = numbered_bytes(DIRECT_CHUNK - 1);
        let (got, _, _) = output_file_round_trip(d.path(), "small", &small, true, 0);
        assert!(got == small);
    }

    #[test]
    fn gathered_writes_keep_every_byte_in_order() {
        let d = tempfile::tempdir().unwrap();
        let data = numbered_bytes(9 * DIRECT_ALIGN + 100);
        // Aligned copies of pieces of `data`, as blocks hand them over.
        let aligned = |piece: &[u8]| {
            let mut b = Block::aligned(piece.len());
            b.bytes.extend_from_slice(piece);
            b
        };
        // Sectors per piece, and the piece whose memory starts a byte off its alignment.
        let cases: [(&[usize], Option<usize>); 4] = [
            (&[2, 3, 1], None),    // whole sectors, aligned: one write of all three
            (&[4], None),          // one piece
            (&[1, 0, 2], None),    // an empty piece among them: piece by piece
            (&[2, 3, 1], Some(1)), // one misaligned in memory: piece by piece
        ];
        for (i, &(sectors, off)) in cases.iter().enumerate() {
            let p = d.path().join(format!("gathered-{i}"));
            let f = File::options()
                .create_new(true)
                .write(true)
                .open(&p)
                .unwrap();
            let mut out = OutputFile::new(&f, true);
            let mut at = 0;
            let blocks: Vec<Block> = sectors
                .iter()
                .enumerate()
                .map(|(j, &n)| {
                    let piece = &data[at..at + n * DIRECT_ALIGN];
                    at += n * DIRECT_ALIGN;
                    if off == Some(j) {
                        aligned(&[b"x", piece].concat())
                    } else {
                        aligned(piece)
                    }
                })
                .collect();
            let parts: Vec<&[u8]> = blocks
                .iter()
                .enumerate()
                .map(|(j, b)| &b.data()[usize::from(off == Some(j))..])
                .collect();
            if off.is_some() {
                assert!(
                    parts
                        .iter()
                        .any(|p| p.as_ptr().align_offset(DIRECT_ALIGN) != 0)
                );
            }
            out.write_all_in_place(&parts).unwrap();
            // A misaligned tail after them, as the last block leaves.
            out.write_all_in_place(&[&data[at..at + 100]]).unwrap();
            assert_eq!(out.finish().unwrap(), (at + 100) as u64);
            drop(f);
            assert!(fs::read(&p).unwrap() == data[..at + 100], "case {i}");
        }
    }

    #[test]
    fn a_refused_direct_write_goes_on_through_the_page_cache() {
        let d = tempfile::tempdir().unwrap();
        let data = numbered_bytes(2 * DIRECT_CHUNK + 777);
        // A staging buffer one byte off its alignment: the first direct write is refused.
        let (got, started, kept) = output_file_round_trip(d.path(), "refused", &data, true, 1);
        if !started {
            eprintln!("skipped: this file system refuses O_DIRECT, so nothing is refused later");
        } else {
            assert!(!kept, "a misaligned direct write was taken");
        }
        assert!(got == data, "the file differs from what was written");
    }

    #[test]
    fn read_back_names_what_differs() {
        let d = tempfile::tempdir().unwrap();
        let written = |data: &[u8]| {
            let mut dg = Digester::default();
            dg.update(data);
            let lines = data.split(|&b| b == b'\n').count() as u64
                - u64::from(data.is_empty() || data.ends_with(b"\n"));
            Written {
                lines,
                digest: dg.finish(),
            }
        };
        let want = written(b"x\ny\nz\n");
        let check = |name: &str, data: &[u8]| {
            let (q, f) = file_with(d.path(), name, data);
            check_written(&q, &f, Compression::Plain, Check::ReadBack(want))
        };
        check("same", b"x\ny\nz\n").unwrap();
        for (name, data, reason) in [
            ("fewer", &b"x\ny\n"[..], "the new file has fewer lines"),
            ("more", b"x\ny\nz\nw\n", "the new file has more lines"),
            (
                "flip",
                b"x\nY\nz\n",
                "the new file differs from what was written",
            ),
            (
                "no-nl",
                b"x\ny\nz",
                "the new file differs from what was written",
            ),
        ] {
            match check(name, data).unwrap_err() {
                RewriteError::VerifyFailed { reason: r, .. } => assert_eq!(r, reason, "{name}"),
                other => panic!("{name}: {other}"),
            }
        }
        // gzip: read back through the decompressor.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
        enc.write_all(b"x\ny\nz\n").unwrap();
        let (q, f) = file_with(d.path(), "gz", &enc.finish().unwrap());
        check_written(&q, &f, Compression::Gzip, Check::ReadBack(want)).unwrap();
        assert!(
            check_written(
                &q,
                &f,
                Compression::Gzip,
                Check::ReadBack(written(b"x\ny\n"))
            )
            .is_err()
        );
    }
}

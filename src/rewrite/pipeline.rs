//! The content pipeline: detect compression, stream the original line by line through the
//! caller's transform and line check into the temporary file, and read the temporary back
//! to check it holds exactly what was produced.
//!
//! A plain output is written by a second thread, which reads every block back right after
//! writing it and compares it with what was produced, so the transform never waits for the
//! kernel's copy and the check costs no second pass over the file. A gzip output is read
//! back and decompressed whole after it is written, which checks the compression too.
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
use super::lines::{LineError, LineReader, READ_SIZE};

/// How the file's bytes are stored, from its first bytes (not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Plain,
    Gzip,
}

/// Magic numbers: gzip RFC 1952 section 2.3.1; bzip2 "BZh"; xz 6-byte header; zstd frame.
pub(crate) fn detect(path: &Path, file: &File) -> Result<Compression, RewriteError> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match file.read_at(&mut magic[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RewriteError::io(path, "read the file", e)),
        }
    }
    let m = &magic[..n];
    let unsupported = |format| {
        Err(RewriteError::Unsupported {
            path: path.to_path_buf(),
            format,
        })
    };
    if m.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if m.starts_with(b"BZh") {
        unsupported("bzip2")
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        unsupported("xz")
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        unsupported("zstd")
    } else {
        Ok(Compression::Plain)
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
    /// Every block was read back and compared as it was written; the file must still be
    /// exactly this long.
    Done { bytes: u64 },
}

/// Output blocks of a plain rewrite: small enough that a block is still in the cache when
/// the writer thread copies it to the kernel and reads it back.
const PLAIN_BLOCK: usize = 256 << 10;
/// Full blocks waiting for the writer thread.
const BLOCKS_IN_FLIGHT: usize = 3;

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
                    let sink = Sink::Plain(CheckedWriter::new(scope, out));
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
        let out_path = self.out_path;
        let write_err = |e| RewriteError::io(out_path, "write the temporary file", e);
        let mut reader = LineReader::new(input, self.p.max_line);
        let mut counts = Counts::default();
        let mut block: Vec<u8> = Vec::with_capacity(block_size + 4096);
        loop {
            let line_no = counts.lines + 1;
            let line = match reader.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => return Err(line_error(self.path, line_no, self.p.max_line, e)),
            };
            // The transform appends straight to the block: no copy of the line in between.
            let start = block.len();
            if (self.transform)(line_no, line.bytes, &mut block) {
                counts.changed += 1;
            }
            let new = &block[start..];
            // A newline inside the output would split one line into two; the read-back
            // would notice the count, but this names the cause.
            if memchr::memchr(b'\n', new).is_some() {
                return Err(RewriteError::TransformSplitLine {
                    path: self.path.to_path_buf(),
                    line: line_no,
                });
            }
            if !(self.verify)(line.bytes, new) {
                return Err(RewriteError::VerifyFailed {
                    path: self.path.to_path_buf(),
                    line: line_no,
                    reason: "the check rejected the rewritten line",
                });
            }
            counts.lines = line_no;
            if line.newline {
                block.push(b'\n');
            }
            if block.len() >= block_size {
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
    Plain(CheckedWriter<'scope, 'env>),
    Gzip(GzMemberWriter<&'f File>, Digester),
}

impl Sink<'_, '_, '_> {
    /// Hands over a full block; returns the (empty) buffer to fill next.
    fn emit(&mut self, block: Vec<u8>) -> io::Result<Vec<u8>> {
        match self {
            Sink::Plain(w) => w.emit(block),
            Sink::Gzip(gz, digest) => {
                digest.update(&block);
                gz.push(block)
            }
        }
    }

    /// Writes the last block; returns how to check the output, and the gzip member count.
    fn finish(self, last: Vec<u8>, lines: u64) -> io::Result<(Check, u64)> {
        match self {
            Sink::Plain(w) => {
                let back = w.finish(last)?;
                if back.lines() != lines {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} lines read back, {lines} written", back.lines()),
                    ));
                }
                Ok((Check::Done { bytes: back.bytes }, 0))
            }
            Sink::Gzip(gz, mut digest) => {
                digest.update(&last);
                let (_, members) = gz.finish(last)?;
                let written = Written {
                    lines,
                    digest: digest.finish(),
                };
                Ok((Check::ReadBack(written), members))
            }
        }
    }
}

/// What the writer thread read back: every byte equal to what was produced.
#[derive(Debug, Default, Clone, Copy)]
struct ReadBack {
    bytes: u64,
    newlines: u64,
    last: Option<u8>,
}

impl ReadBack {
    /// Lines as the line reader counts them: a last line without a newline counts.
    fn lines(&self) -> u64 {
        self.newlines + u64::from(self.last.is_some_and(|b| b != b'\n'))
    }
}

/// Writes a plain output from a second thread, started with the first full block (a small
/// file is written without one). Each block is written at its offset, read back and
/// compared before its buffer is handed back for reuse.
struct CheckedWriter<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    file: &'env File,
    worker: Option<Worker<'scope>>,
}

struct Worker<'scope> {
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
    handle: ScopedJoinHandle<'scope, io::Result<ReadBack>>,
}

impl<'scope, 'env> CheckedWriter<'scope, 'env> {
    fn new(scope: &'scope Scope<'scope, 'env>, file: &'env File) -> Self {
        CheckedWriter {
            scope,
            file,
            worker: None,
        }
    }

    fn emit(&mut self, block: Vec<u8>) -> io::Result<Vec<u8>> {
        let worker = match &mut self.worker {
            Some(w) => w,
            None => {
                let (full, blocks) = sync_channel(BLOCKS_IN_FLIGHT);
                let (give_back, empty) = channel();
                let file = self.file;
                let handle = self
                    .scope
                    .spawn(move || write_and_check(file, &blocks, &give_back));
                self.worker.insert(Worker {
                    full,
                    empty,
                    handle,
                })
            }
        };
        let capacity = block.capacity();
        if worker.full.send(block).is_err() {
            // The writer stopped on an error; it is in its result.
            let stopped = self.worker.take().map(|w| w.handle.join());
            return Err(match stopped {
                Some(Ok(Err(e))) => e,
                _ => io::Error::other("the writer thread stopped"),
            });
        }
        Ok(worker
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity)))
    }

    fn finish(self, last: Vec<u8>) -> io::Result<ReadBack> {
        match self.worker {
            None => {
                let mut back = ReadBack::default();
                check_block(self.file, 0, &last, &mut Vec::new(), &mut back)?;
                Ok(back)
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

fn write_and_check(
    file: &File,
    blocks: &Receiver<Vec<u8>>,
    give_back: &Sender<Vec<u8>>,
) -> io::Result<ReadBack> {
    let mut back = ReadBack::default();
    let mut scratch = Vec::new();
    for mut block in blocks {
        check_block(file, back.bytes, &block, &mut scratch, &mut back)?;
        block.clear();
        // The producer may have finished and stopped taking buffers back.
        let _ = give_back.send(block);
    }
    Ok(back)
}

/// Writes `block` at `offset`, reads it back into `scratch` and compares.
fn check_block(
    file: &File,
    offset: u64,
    block: &[u8],
    scratch: &mut Vec<u8>,
    back: &mut ReadBack,
) -> io::Result<()> {
    if block.is_empty() {
        return Ok(());
    }
    file.write_all_at(block, offset)?;
    start_writeback(file, offset, block.len());
    scratch.resize(block.len(), 0);
    file.read_exact_at(scratch, offset)?;
    if scratch[..] != *block {
        let i = scratch
            .iter()
            .zip(block)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "byte {} read back differs from the byte written",
                offset + i as u64
            ),
        ));
    }
    back.bytes += block.len() as u64;
    back.newlines += memchr::memchr_iter(b'\n', block).count() as u64;
    back.last = block.last().copied();
    Ok(())
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

fn line_error(path: &Path, line: u64, limit: usize, e: LineError) -> RewriteError {
    match e {
        LineError::TooLong => RewriteError::LineTooLong {
            path: path.to_path_buf(),
            line,
            limit,
        },
        LineError::Io(source) => RewriteError::Corrupt {
            path: path.to_path_buf(),
            line,
            source,
        },
    }
}

/// Checks the temporary file before the rename. A gzip file is read back decompressed and
/// must hold exactly what the transform produced: the same line count and the same digest.
/// A plain file's blocks were read back and compared as they were written; it must still
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

    /// Runs the checked writer over `blocks` into a new file; returns what it read back.
    fn checked_write(path: &Path, blocks: &[&[u8]]) -> io::Result<ReadBack> {
        let f = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        std::thread::scope(|scope| {
            let mut w = CheckedWriter::new(scope, &f);
            let (last, full) = blocks.split_last().unwrap();
            for b in full {
                let buf = w.emit(b.to_vec())?;
                assert!(buf.is_empty());
            }
            w.finish(last.to_vec())
        })
    }

    #[test]
    fn checked_writer_writes_every_block_in_order() {
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
        let back = checked_write(&d.path().join("many"), &refs).unwrap();
        let want = blocks.concat();
        assert_eq!(fs::read(d.path().join("many")).unwrap(), want);
        assert_eq!(back.bytes, want.len() as u64);
        assert_eq!(
            back.lines(),
            want.iter().filter(|b| **b == b'\n').count() as u64
        );

        let back = checked_write(&d.path().join("one"), &[b"a\nb"]).unwrap();
        assert_eq!(fs::read(d.path().join("one")).unwrap(), b"a\nb");
        assert_eq!((back.bytes, back.lines()), (3, 2));
        let back = checked_write(&d.path().join("empty"), &[b""]).unwrap();
        assert_eq!((back.bytes, back.lines()), (0, 0));
    }

    #[test]
    fn checked_writer_reports_a_failed_write() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ro");
        fs::write(&p, b"").unwrap();
        // A descriptor opened read-only cannot be written: the error comes back, no hang.
        let f = File::open(&p).unwrap();
        let blocks = vec![vec![b'x'; 1000]; 20];
        let got = std::thread::scope(|scope| {
            let mut w = CheckedWriter::new(scope, &f);
            for b in &blocks {
                w.emit(b.clone())?;
            }
            w.finish(Vec::new()).map(|_| ())
        });
        assert!(got.is_err());
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

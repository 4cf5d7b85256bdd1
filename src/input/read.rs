//! Streaming lines out of a file: compression detected by magic bytes, gzip (multi-member)
//! through flate2's zlib-rs backend, the one line reader (a reusable buffer that hands out
//! whole lines, and lines over the limit skipped or in pieces), and newline-aligned byte
//! ranges so large plain files can be read by several workers.

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// The compression of a file, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// gzip, the only compression logward reads.
    Gzip,
    /// bzip2, refused.
    Bzip2,
    /// xz, refused.
    Xz,
    /// zstd, refused.
    Zstd,
}

impl Compression {
    /// The compression whose magic number `head` starts with: gzip (RFC 1952 section
    /// 2.3.1), bzip2 (`BZh`), xz (its 6-byte header) or a zstd frame; anything else is
    /// taken as plain text.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The usual name of the compression (`gzip`), `none` for plain text.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// Opens a file for reading only if it is a regular file: non-blocking, so a FIFO (or a
/// device) swapped in for a log cannot hang the run, and without following a symbolic link
/// in the last component (callers resolve and check links first, see
/// [`crate::input::discover`](mod@crate::input::discover)); the type is then checked on the
/// open descriptor, never on the name. Anything else fails with `InvalidInput` ("not a
/// regular file").
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a symbolic link where a regular file was opened",
                )
            } else {
                e
            }
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({what}); refused"),
        ));
    }
    // Regular files never block; clear the flag so nothing downstream sees EAGAIN.
    // SAFETY: fcntl on a descriptor we own, with flags read from it just before.
    unsafe {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// Reads from `offset` of an open file until `buf` is full or the file ends, without
/// moving the file's offset; returns how many bytes were read. An interrupted read is
/// retried.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the first bytes of an open file, at offset 0, to tell its compression: the one
/// place logward looks at magic numbers.
pub fn sniff_open(file: &File) -> io::Result<Compression> {
    let mut head = [0u8; 6];
    let n = read_full_at(file, &mut head, 0)?;
    Ok(Compression::sniff(&head[..n]))
}

/// Reads the first bytes of a file to tell its compression.
pub fn sniff_file(path: &Path) -> io::Result<Compression> {
    sniff_open(&open_regular(path)?)
}

/// An error while reading a file's lines, with where it happened. `Display` names the file
/// and what failed; the operating system's or the decompressor's reason is the `source()`.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or made ready to read: missing, not a regular file,
    /// or its first bytes unreadable.
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file is compressed in a format logward does not read.
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Its compression.
        compression: Compression,
    },
    /// A read failed (a truncated or corrupt gzip among others) after `line` whole lines.
    Broken {
        /// The file.
        path: PathBuf,
        /// Whole lines read before the failure.
        line: u64,
        /// The error reading.
        source: io::Error,
    },
    /// The file could not be read to its end for its hash (see [`open_digested`]).
    Hash {
        /// The file.
        path: PathBuf,
        /// The error reading.
        source: io::Error,
    },
    /// Standard input could not be read.
    Stdin {
        /// The error reading.
        source: io::Error,
    },
    /// Compressed data on standard input, which is read once and not sniffed again.
    StdinCompressed {
        /// The compression found.
        compression: Compression,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Open { path, .. } => {
                write!(f, "{}: cannot open", crate::escape::path(path))
            }
            ReadError::Unsupported { path, compression } => write!(
                f,
                "{}: {} compressed files are not supported (decompress it, or let logrotate use gzip)",
                crate::escape::path(path),
                compression.name()
            ),
            ReadError::Broken { path, line, .. } => {
                write!(
                    f,
                    "{}:{}: read failed after line {line}",
                    crate::escape::path(path),
                    line + 1
                )
            }
            ReadError::Hash { path, .. } => write!(
                f,
                "{}: cannot read it to the end for its hash",
                crate::escape::path(path)
            ),
            ReadError::Stdin { .. } => f.write_str("<stdin>: cannot read"),
            ReadError::StdinCompressed { compression } => write!(
                f,
                "<stdin>: {} input is not supported on stdin; pass the file",
                compression.name()
            ),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Open { source, .. }
            | ReadError::Broken { source, .. }
            | ReadError::Hash { source, .. }
            | ReadError::Stdin { source } => Some(source),
            ReadError::Unsupported { .. } | ReadError::StdinCompressed { .. } => None,
        }
    }
}

/// The longest line logward reads (1 MiB, far beyond any real request line); a longer one
/// is counted as malformed ("line too long") and skipped while reading, never buffered
/// whole, so a gzip file that inflates to one line of gigabytes costs at most this much.
pub const MAX_LINE: usize = 1 << 20;

/// The longest line read whole in this process: [`MAX_LINE`] unless `max_line` /
/// `--max-line` set another (see [`set_max_line`]).
static MAX_LINE_SETTING: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(MAX_LINE);

/// The smallest and largest `max_line` accepted.
pub const MAX_LINE_RANGE: (usize, usize) = (4 << 10, 1 << 30);

/// Sets the longest line read whole, clamped to [`MAX_LINE_RANGE`]; for the whole process,
/// at start.
pub fn set_max_line(bytes: usize) {
    let (lo, hi) = MAX_LINE_RANGE;
    MAX_LINE_SETTING.store(bytes.clamp(lo, hi), std::sync::atomic::Ordering::Relaxed);
}

/// The longest line read whole (see [`set_max_line`]).
pub fn max_line() -> usize {
    MAX_LINE_SETTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// The reading buffer of a [`LineReader`] made by [`LineReader::new`]: large enough that
/// reads stay off the profile, small enough to stay in the cache of the core parsing it.
const BUF_SIZE: usize = 256 << 10;

/// What [`LineReader::next_line`] hands out.
pub enum Line<'b> {
    /// A whole line without its `\n` (a `\r` stays), and the byte offset where it starts.
    Text(&'b [u8], u64),
    /// A line longer than the limit, skipped; its length and offset.
    TooLong(u64, u64),
}

/// What [`LineReader::next_piece`] hands out: a whole line, or a piece of a line longer
/// than the limit, which is never held whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'b> {
    /// The line without its `\n` (a `\r` stays), or a piece of it.
    pub bytes: &'b [u8],
    /// Whether a `\n` ended it: false for a last line without one, and for every piece of
    /// an over-long line but its last.
    pub newline: bool,
    /// A whole line, or which piece of an over-long one.
    pub part: Part,
}

/// Which part of a line a [`Piece`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A whole line, within the limit.
    Whole,
    /// A piece of a line longer than the limit; more of it follows.
    More,
    /// The last piece of a line longer than the limit (the only one when the whole line
    /// was already in the buffer).
    Last,
}

/// Where the next line or piece lies in the buffer: the core's answer, with no borrow of
/// the buffer, so each way of handing lines out can loop over it.
#[derive(Clone, Copy)]
struct Cut {
    start: usize,
    end: usize,
    newline: bool,
    part: Part,
    /// Offset in the stream of `start`.
    offset: u64,
}

/// Splits a byte stream into lines through one reusable buffer, modelled on ripgrep's line
/// buffer: move the unread tail to the front, read more, find the newline with memchr, grow
/// only when one line does not fit, and never past the line limit. A line is the bytes
/// before `\n`; a last line without one is still a line. A line longer than the limit is
/// never held whole: [`LineReader::next_line`] skips it (reporting its length), and
/// [`LineReader::next_piece`] hands it out in pieces, for callers that must copy it through.
/// It does not know about files, compression or paths.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Unread data is `buf[start..end]`.
    start: usize,
    end: usize,
    /// `buf[start..searched]` is known to hold no `\n`.
    searched: usize,
    eof: bool,
    /// Byte offset in the stream of `buf[start]`.
    offset: u64,
    /// The longest line handed out whole, in bytes, newline excluded.
    limit: usize,
    /// The size the buffer started with: a read asks for about this much.
    capacity: usize,
    /// Inside a line longer than the limit (its earlier pieces were handed out).
    in_long: bool,
}

impl<R: Read> LineReader<R> {
    /// A reader of a stream from its start, with the line limit of [`max_line`].
    pub fn new(inner: R) -> LineReader<R> {
        LineReader::with_offset(inner, 0)
    }

    /// A reader whose first byte is at `offset` of the file (for a range of a plain file).
    pub fn with_offset(inner: R, offset: u64) -> LineReader<R> {
        let mut reader = LineReader::with_limits(inner, BUF_SIZE, max_line());
        reader.offset = offset;
        reader
    }

    /// A reader with a buffer of `capacity` bytes to start with, that hands out lines of at
    /// most `limit` bytes (newline excluded) whole.
    pub fn with_limits(inner: R, capacity: usize, limit: usize) -> LineReader<R> {
        let capacity = capacity.max(64);
        LineReader {
            inner,
            buf: vec![0; capacity],
            start: 0,
            end: 0,
            searched: 0,
            eof: false,
            offset: 0,
            limit,
            capacity,
            in_long: false,
        }
    }

    /// The next line, `None` at the end; a line longer than the limit is skipped while it
    /// is read and comes back as [`Line::TooLong`].
    #[inline]
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let mut long: Option<(u64, u64)> = None;
        loop {
            let Some(cut) = self.advance()? else {
                return Ok(None);
            };
            let len = (cut.end - cut.start) as u64;
            match cut.part {
                Part::Whole => {
                    return Ok(Some(Line::Text(&self.buf[cut.start..cut.end], cut.offset)));
                }
                Part::More => long.get_or_insert((0, cut.offset)).0 += len,
                Part::Last => {
                    let (before, at) = long.unwrap_or((0, cut.offset));
                    return Ok(Some(Line::TooLong(before + len, at)));
                }
            }
        }
    }

    /// The next line, or piece of a line longer than the limit; `None` at the end. The
    /// pieces of a line, put end to end, are the line.
    pub fn next_piece(&mut self) -> io::Result<Option<Piece<'_>>> {
        Ok(self.advance()?.map(|cut| Piece {
            bytes: &self.buf[cut.start..cut.end],
            newline: cut.newline,
            part: cut.part,
        }))
    }

    /// Finds the next line or piece and moves past it.
    #[inline]
    fn advance(&mut self) -> io::Result<Option<Cut>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.searched..self.end]) {
                let (s, e) = (self.start, self.searched + i);
                self.start = e + 1;
                self.searched = self.start;
                // A line over the limit may be in the buffer whole when the buffer is larger
                // than the limit: it is still one that is not handed out whole.
                let part = if self.take_long() || e - s > self.limit {
                    Part::Last
                } else {
                    Part::Whole
                };
                return Ok(Some(self.cut(s, e, true, part)));
            }
            self.searched = self.end;
            if self.end - self.start > self.limit {
                // Hand out what is buffered as a piece and go on with the rest.
                let (s, e) = (self.start, self.end);
                self.start = e;
                self.in_long = true;
                return Ok(Some(self.cut(s, e, false, Part::More)));
            }
            if self.eof {
                let (s, e) = (self.start, self.end);
                if s == e && !self.in_long {
                    return Ok(None);
                }
                self.start = e;
                let part = if self.take_long() || e - s > self.limit {
                    Part::Last
                } else {
                    Part::Whole
                };
                return Ok(Some(self.cut(s, e, false, part)));
            }
            self.fill()?;
        }
    }

    /// Whether the line ending now is an over-long one, and leaves it.
    fn take_long(&mut self) -> bool {
        std::mem::take(&mut self.in_long)
    }

    /// The cut of `buf[s..e]`, moving the stream offset past it and its newline.
    fn cut(&mut self, s: usize, e: usize, newline: bool, part: Part) -> Cut {
        let offset = self.offset;
        self.offset += (e - s + usize::from(newline)) as u64;
        Cut {
            start: s,
            end: e,
            newline,
            part,
            offset,
        }
    }

    /// Makes room after the unread tail and reads once.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.searched -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < self.capacity.min(self.buf.len() / 2).max(1) {
            // One line does not fit: grow, but never much past the limit (+1 so a line of
            // exactly `limit` bytes and its newline fit).
            let cap = self.limit.saturating_add(1).max(self.buf.len());
            let want = self.buf.len().saturating_mul(2).min(cap);
            if want > self.buf.len() {
                self.buf.resize(want, 0);
            }
        }
        if self.end == self.buf.len() {
            // Full at the cap without a newline: the caller hands out a piece.
            return Ok(());
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Reads up to `lines` lines from a buffered reader, as bytes, consuming nothing past them
/// (standard input is read on after its head, from the same buffer): the first lines a
/// format is chosen from. Each line is capped at [`max_line`], and the head stops at a
/// longer one, so a huge first line cannot take all the memory.
pub fn read_head(reader: &mut dyn BufRead, lines: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    for _ in 0..lines {
        let cap = max_line() as u64;
        let n = (&mut *reader).take(cap).read_until(b'\n', &mut head)?;
        if n == 0 {
            break;
        }
        if n as u64 == cap && head.last() != Some(&b'\n') {
            // A line longer than any logward reads: the sample stops here (reading on
            // would gather the same line, a cap at a time: a regression held 200 MB of
            // a 1 GB line).
            break;
        }
    }
    Ok(head)
}

/// A byte stream of a file, decompressed as needed.
pub type Stream = Box<dyn Read + Send>;

/// Opens a whole file for reading lines, decompressing gzip.
pub fn open(path: &Path) -> Result<(Stream, Compression), ReadError> {
    let open_err = |source| ReadError::Open {
        path: path.into(),
        source,
    };
    let file = open_regular(path).map_err(open_err)?;
    let compression = sniff_open(&file).map_err(open_err)?;
    match compression {
        Compression::None => Ok((Box::new(file), compression)),
        // MultiGzDecoder reads every member: nginx `gzip` logs and pigz write many.
        Compression::Gzip => Ok((
            Box::new(MultiGzDecoder::new(io::BufReader::with_capacity(
                BUF_SIZE, file,
            ))),
            compression,
        )),
        other => Err(ReadError::Unsupported {
            path: path.into(),
            compression: other,
        }),
    }
}

/// What a file held as stored (compressed bytes for gzip), taken while it was read: see
/// [`open_digested`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Bytes read from the file: the size the hash covers.
    pub bytes: u64,
    /// SHA-256 (FIPS 180-4) of those bytes.
    pub sha256: [u8; 32],
    /// Whether the file changed while it was read: its size or modification time at the
    /// end differ from those at the start, or the bytes read differ from its size. A live
    /// log being written shows as changed; the hash still covers exactly the bytes read,
    /// its first `bytes` as they were.
    pub changed: bool,
}

impl Digest {
    /// The hash in lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// Bytes in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The hash of a file's bytes, fed by the reader below the decompressor.
type Hashing = std::sync::Arc<std::sync::Mutex<(sha2::Sha256, u64)>>;

/// The raw file under the decompressor: every byte read from it goes into the hash.
struct HashingReader {
    file: File,
    state: Hashing,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.file.read(buf)?;
        // Poisoned only by a panic while hashing, which leaves nothing half-done to fear.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        Ok(n)
    }
}

/// A file being read through [`open_digested`]; [`Digesting::finish`] gives its digest.
pub struct Digesting {
    path: PathBuf,
    /// A second descriptor of the open file, sharing its offset, to read what the stream
    /// left unread.
    rest: File,
    state: Hashing,
    /// (size, modification time in ns) when the file was opened.
    at_open: (u64, i128),
}

/// Size and modification time of an open file.
fn stamp(file: &File) -> io::Result<(u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((
        m.len(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    ))
}

impl Digesting {
    /// The digest, once the stream is done with: `at_end` when it was read to its end;
    /// otherwise it broke (a corrupt gzip stream), and the rest of the file is read into
    /// the hash, so the hash is of the whole file as stored, as `sha256sum` sees it. Bytes
    /// written to the file after its end was read are not: the lines did not come from them.
    pub fn finish(self, at_end: bool) -> Result<Digest, ReadError> {
        use sha2::Digest as _;
        let Digesting {
            path,
            rest,
            state,
            at_open,
        } = self;
        let mut rest = HashingReader {
            file: rest,
            state: state.clone(),
        };
        let drained = if at_end {
            Ok(0)
        } else {
            io::copy(&mut rest, &mut io::sink())
        };
        let at_close = drained
            .and_then(|_| stamp(&rest.file))
            .map_err(|source| ReadError::Hash { path, source })?;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let (hasher, bytes) = std::mem::take(&mut *state);
        Ok(Digest {
            bytes,
            sha256: hasher.finalize().into(),
            changed: at_open != at_close || at_close.0 != bytes,
        })
    }
}

/// Opens a whole file as [`open`] does, hashing every byte read from the file as stored
/// (before decompression), so the hash is of exactly the bytes the lines came from, even
/// when the file grows or is replaced while it is read.
pub fn open_digested(path: &Path) -> Result<(Stream, Compression, Digesting), ReadError> {
    let open_err = |source| ReadError::Open {
        path: path.into(),
        source,
    };
    let file = open_regular(path).map_err(open_err)?;
    let compression = sniff_open(&file).map_err(open_err)?;
    let at_open = stamp(&file).map_err(open_err)?;
    let state = Hashing::default();
    let digesting = Digesting {
        path: path.into(),
        rest: file.try_clone().map_err(open_err)?,
        state: state.clone(),
        at_open,
    };
    let raw = HashingReader { file, state };
    let stream: Stream = match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(MultiGzDecoder::new(io::BufReader::with_capacity(
            BUF_SIZE, raw,
        ))),
        other => {
            return Err(ReadError::Unsupported {
                path: path.into(),
                compression: other,
            });
        }
    };
    Ok((stream, compression, digesting))
}

/// Opens `start..end` of a plain file.
pub fn open_range(path: &Path, start: u64, end: u64) -> Result<Stream, ReadError> {
    let mut file = open_regular(path).map_err(|source| ReadError::Open {
        path: path.into(),
        source,
    })?;
    file.seek(SeekFrom::Start(start))
        .map_err(|source| ReadError::Open {
            path: path.into(),
            source,
        })?;
    Ok(Box::new(file.take(end - start)))
}

/// Splits a plain file of `len` bytes into ranges of about `chunk` bytes, each ending just
/// after a newline (or at the end of the file), so every line lies in exactly one range.
pub fn split_ranges(path: &Path, len: u64, chunk: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut ranges = Vec::new();
    if len == 0 {
        return Ok(ranges);
    }
    let mut file = open_regular(path)?;
    let mut start = 0u64;
    let mut probe = vec![0u8; 64 << 10];
    while start < len {
        let mut cut = start.saturating_add(chunk);
        if cut >= len {
            ranges.push((start, len));
            break;
        }
        // Move the cut forward to just after the next newline.
        loop {
            file.seek(SeekFrom::Start(cut))?;
            let n = file.read(&mut probe)?;
            if n == 0 {
                cut = len;
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', &probe[..n]) {
                cut += i as u64 + 1;
                break;
            }
            cut += n as u64;
        }
        ranges.push((start, cut.min(len)));
        start = cut;
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(data: &[u8]) -> Vec<Vec<u8>> {
        let mut r = LineReader::new(data);
        let mut out = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            match line {
                Line::Text(t, _) => out.push(t.to_vec()),
                Line::TooLong(len, _) => out.push(format!("<{len}>").into_bytes()),
            }
        }
        out
    }

    #[test]
    fn lines_with_and_without_final_newline() {
        assert_eq!(lines_of(b"a\nb\n"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(lines_of(b"a\nb"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(lines_of(b""), Vec::<Vec<u8>>::new());
        assert_eq!(lines_of(b"\n\n"), vec![b"".to_vec(), b"".to_vec()]);
        assert_eq!(lines_of(b"a\r\n"), vec![b"a\r".to_vec()]);
    }

    #[test]
    fn long_lines_grow_the_buffer() {
        let long = vec![b'x'; 900 << 10]; // past the 256 KiB buffer, within MAX_LINE
        let mut data = long.clone();
        data.extend_from_slice(b"\nshort\n");
        let got = lines_of(&data);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], long);
        assert_eq!(got[1], b"short");
    }

    /// A reader handing out at most `n` bytes per call, to cut lines at every position.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Obviously correct reference: split on `\n`, the last piece only if non-empty; each
    /// line with its offset and whether a newline ended it.
    fn reference(data: &[u8]) -> Vec<(Vec<u8>, u64, bool)> {
        let mut v = Vec::new();
        let mut offset = 0;
        for s in data.split(|&b| b == b'\n') {
            v.push((s.to_vec(), offset, true));
            offset += s.len() as u64 + 1;
        }
        let last = v.pop().unwrap_or_default();
        if !last.0.is_empty() {
            v.push((last.0, last.1, false));
        }
        v
    }

    /// Every line through [`LineReader::next_line`]: an over-long one as `<len>`.
    fn skipping(data: &[u8], step: usize, capacity: usize, limit: usize) -> Vec<(Vec<u8>, u64)> {
        let mut r = LineReader::with_limits(Trickle(data, step), capacity, limit);
        let mut out = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            out.push(match line {
                Line::Text(t, at) => (t.to_vec(), at),
                Line::TooLong(len, at) => (format!("<{len}>").into_bytes(), at),
            });
        }
        out
    }

    /// Every line through [`LineReader::next_piece`], its pieces put end to end, with
    /// whether it came whole and whether a newline ended it.
    fn pieced(
        data: &[u8],
        step: usize,
        capacity: usize,
        limit: usize,
    ) -> Vec<(Vec<u8>, bool, bool)> {
        let mut r = LineReader::with_limits(Trickle(data, step), capacity, limit);
        let mut out = Vec::new();
        let mut current = Vec::new();
        while let Some(p) = r.next_piece().unwrap() {
            current.extend_from_slice(p.bytes);
            match p.part {
                Part::More => assert!(!p.newline),
                Part::Whole | Part::Last => {
                    let line = std::mem::take(&mut current);
                    out.push((line, p.part == Part::Whole, p.newline))
                }
            }
        }
        assert!(current.is_empty(), "a line left unfinished");
        out
    }

    #[test]
    fn keeps_cr_and_missing_final_newline_in_pieces() {
        assert_eq!(
            pieced(b"a\r\n\nb", 1000, 64, 100),
            vec![
                (b"a\r".to_vec(), true, true),
                (b"".to_vec(), true, true),
                (b"b".to_vec(), true, false)
            ]
        );
        assert!(pieced(b"", 10, 64, 10).is_empty());
    }

    /// The limit is exact whatever the read sizes: a line of `limit` bytes is whole, one
    /// byte more is not (the reader used to skip a line of exactly the limit when a read
    /// ended right after it, before its newline).
    #[test]
    fn line_limit_is_exact_whatever_the_reads() {
        let limit = 100;
        for len in [limit, limit + 1] {
            let line = vec![b'x'; len];
            let data = [&line[..], b"\nok\n"].concat();
            for step in [1, 7, limit, limit + 1, 4096] {
                for capacity in [64, limit + 1, 4096] {
                    let want = if len <= limit {
                        line.clone()
                    } else {
                        format!("<{len}>").into_bytes()
                    };
                    let got = skipping(&data, step, capacity, limit);
                    assert_eq!(got, vec![(want, 0), (b"ok".to_vec(), len as u64 + 1)]);
                    let got = pieced(&data, step, capacity, limit);
                    assert_eq!(got[0], (line.clone(), len <= limit, true));
                }
            }
        }
    }

    /// An over-long line is never held whole: no piece is longer than the buffer grows.
    #[test]
    fn over_long_lines_are_read_in_bounded_pieces() {
        let mut data = b"ok\n".to_vec();
        data.extend(std::iter::repeat_n(b'y', 10_000));
        data.extend_from_slice(b"\nnext");
        let mut r = LineReader::with_limits(Trickle(&data, 333), 64, 100);
        let mut longest = 0;
        while let Some(p) = r.next_piece().unwrap() {
            longest = longest.max(p.bytes.len());
        }
        assert!(longest <= 101 + 333, "{longest}");
        assert_eq!(
            skipping(&data, 333, 64, 100),
            vec![
                (b"ok".to_vec(), 0),
                (b"<10000>".to_vec(), 3),
                (b"next".to_vec(), 10_004)
            ]
        );
    }

    proptest::proptest! {
        /// Both ways of reading agree with splitting at newlines, for any read sizes,
        /// buffer and limit: whole lines within the limit, over-long ones skipped (with
        /// their length and offset) or in pieces that put together are the line.
        #[test]
        fn lines_match_the_reference(
            data in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b'\n'),
                    proptest::prelude::Just(b'\r'),
                    proptest::prelude::Just(b'a'),
                    proptest::prelude::any::<u8>(),
                ],
                0..600,
            ),
            step in 1usize..50,
            capacity in 1usize..200,
            limit in 1usize..80,
        ) {
            let want = reference(&data);
            let skipped: Vec<_> = want
                .iter()
                .map(|(t, at, _)| if t.len() <= limit {
                    (t.clone(), *at)
                } else {
                    (format!("<{}>", t.len()).into_bytes(), *at)
                })
                .collect();
            proptest::prop_assert_eq!(skipping(&data, step, capacity, limit), skipped);
            let whole: Vec<_> = want
                .iter()
                .map(|(t, _, nl)| (t.clone(), t.len() <= limit, *nl))
                .collect();
            proptest::prop_assert_eq!(pieced(&data, step, capacity, limit), whole);
        }
    }

    #[test]
    fn offsets_point_at_line_starts() {
        let data = b"ab\ncde\nf";
        let mut r = LineReader::new(&data[..]);
        let mut offsets = Vec::new();
        while let Some(Line::Text(_, off)) = r.next_line().unwrap() {
            offsets.push(off);
        }
        assert_eq!(offsets, vec![0, 3, 7]);
    }

    #[test]
    fn ranges_cover_the_file_on_line_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut data = Vec::new();
        for i in 0..5000 {
            writeln!(data, "line {i} {}", "y".repeat(i % 97)).unwrap();
        }
        data.extend_from_slice(b"last without newline");
        std::fs::write(&p, &data).unwrap();
        for chunk in [1u64, 100, 4096, 1 << 20] {
            let ranges = split_ranges(&p, data.len() as u64, chunk).unwrap();
            assert_eq!(ranges.first().unwrap().0, 0);
            assert_eq!(ranges.last().unwrap().1, data.len() as u64);
            let mut joined = Vec::new();
            for w in ranges.windows(2) {
                assert_eq!(w[0].1, w[1].0);
            }
            for (s, e) in &ranges {
                assert!(*s == 0 || data[*s as usize - 1] == b'\n');
                let mut r = LineReader::with_offset(open_range(&p, *s, *e).unwrap(), *s);
                while let Some(Line::Text(t, off)) = r.next_line().unwrap() {
                    assert_eq!(&data[off as usize..off as usize + t.len()], t);
                    joined.push(t.to_vec());
                }
            }
            assert_eq!(joined, lines_of(&data));
        }
    }

    /// Reads every line of a stream from [`open_digested`], then finishes its digest.
    fn digested(path: &Path) -> (Vec<Vec<u8>>, Result<Digest, ReadError>, bool) {
        let (stream, _, digesting) = open_digested(path).unwrap();
        let mut reader = LineReader::new(stream);
        let mut lines = Vec::new();
        let broken = loop {
            match reader.next_line() {
                Ok(Some(Line::Text(t, _))) => lines.push(t.to_vec()),
                Ok(Some(Line::TooLong(..))) => {}
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        drop(reader);
        (lines, digesting.finish(!broken), broken)
    }

    #[test]
    fn digests_cover_the_bytes_as_stored() {
        use sha2::Digest as _;
        let dir = tempfile::tempdir().unwrap();
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let plain = dir.path().join("access.log");
        std::fs::write(&plain, &text).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(&text).unwrap();
        let gz = enc.finish().unwrap();
        let gz_path = dir.path().join("access.log.1.gz");
        std::fs::write(&gz_path, &gz).unwrap();
        let broken_path = dir.path().join("access.log.2.gz");
        std::fs::write(&broken_path, &gz[..gz.len() - 20]).unwrap();
        for (path, stored, want_broken) in [
            (&plain, &text[..], false),
            (&gz_path, &gz[..], false),
            // A broken stream stops the lines; the hash still covers the whole file.
            (&broken_path, &gz[..gz.len() - 20], true),
        ] {
            let (lines, digest, broken) = digested(path);
            let digest = digest.unwrap();
            assert_eq!(broken, want_broken, "{}", path.display());
            assert!(want_broken || lines.len() == 20_000);
            assert_eq!(digest.bytes, stored.len() as u64);
            assert_eq!(
                digest.sha256,
                <[u8; 32]>::from(sha2::Sha256::digest(stored))
            );
            assert!(!digest.changed, "{}", path.display());
        }
    }

    #[test]
    fn a_file_that_grows_while_read_is_marked_and_hashed_as_read() {
        use sha2::Digest as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let first = b"a\nb\n".repeat(1000);
        std::fs::write(&path, &first).unwrap();
        let (stream, _, digesting) = open_digested(&path).unwrap();
        let mut reader = LineReader::new(stream);
        let mut n = 0;
        while let Some(Line::Text(..)) = reader.next_line().unwrap() {
            n += 1;
        }
        assert_eq!(n, 2000);
        drop(reader);
        // Written after the lines were read: in neither the lines nor the hash.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"late\n")
            .unwrap();
        let digest = digesting.finish(true).unwrap();
        assert!(digest.changed);
        assert_eq!(digest.bytes, first.len() as u64);
        assert_eq!(
            digest.sha256,
            <[u8; 32]>::from(sha2::Sha256::digest(&first))
        );
    }

    #[test]
    fn compression_by_magic_bytes() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(
            Compression::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Compression::Xz
        );
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"1.2.3.4 - -"), Compression::None);
    }

    #[test]
    fn errors_name_the_file_and_leave_the_reason_to_source() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.log");
        let Err(err) = open(&missing) else {
            panic!("a missing file opened");
        };
        let source = std::error::Error::source(&err).expect("the OS error is the source");
        assert_eq!(
            source.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::NotFound)
        );
        assert_eq!(
            err.to_string(),
            format!("{}: cannot open", missing.display())
        );
        assert_eq!(
            crate::error::chain(&err).to_string(),
            format!("{}: cannot open: {}", missing.display(), source)
        );

        let broken = ReadError::Broken {
            path: "a.log.gz".into(),
            line: 162,
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete deflate stream"),
        };
        assert_eq!(
            broken.to_string(),
            "a.log.gz:163: read failed after line 162"
        );
        assert_eq!(
            crate::error::chain(&broken).to_string(),
            "a.log.gz:163: read failed after line 162: incomplete deflate stream"
        );
    }
}

//! Streaming lines out of a file: compression detected by magic bytes, gzip (multi-member)
//! through flate2's zlib-rs backend, one reusable buffer that hands out whole lines, and
//! newline-aligned byte ranges so large plain files can be read by several workers.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// The compression of a file, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
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
/// device) swapped in for a log cannot hang the run, and without following a symbolic
/// link in the last component (callers resolve and check links first, see
/// [`crate::input::discover`]); the type is then checked on the open descriptor, never on
/// the name. Anything else fails with `InvalidInput` ("not a regular file").
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

/// An error while reading a file's lines, with where it happened.
#[derive(Debug)]
pub enum ReadError {
    Open {
        path: PathBuf,
        source: io::Error,
    },
    Unsupported {
        path: PathBuf,
        compression: Compression,
    },
    /// A read failed (a truncated or corrupt gzip among others) after `line` whole lines.
    Broken {
        path: PathBuf,
        line: u64,
        source: io::Error,
    },
    /// The file could not be read to its end for its hash (see [`open_digested`]).
    Hash {
        path: PathBuf,
        source: io::Error,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Open { path, source } => {
                write!(f, "{}: cannot open: {source}", crate::escape::path(path))
            }
            ReadError::Unsupported { path, compression } => write!(
                f,
                "{}: {} compressed files are not supported (decompress it, or let logrotate use gzip)",
                crate::escape::path(path),
                compression.name()
            ),
            ReadError::Broken { path, line, source } => {
                write!(
                    f,
                    "{}:{}: read failed after line {line}: {source}",
                    crate::escape::path(path),
                    line + 1
                )
            }
            ReadError::Hash { path, source } => write!(
                f,
                "{}: cannot read it to the end for its hash: {source}",
                crate::escape::path(path)
            ),
        }
    }
}

impl std::error::Error for ReadError {}

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

const BUF_SIZE: usize = 256 << 10;

/// What [`LineReader::next_line`] hands out.
pub enum Line<'b> {
    /// A whole line without its `\n` (a `\r` stays), and the byte offset where it starts.
    Text(&'b [u8], u64),
    /// A line longer than [`max_line`], skipped; its length and offset.
    TooLong(u64, u64),
}

/// Hands out whole lines from a reader through one reusable buffer: move the unread tail to
/// the front, read more, find the newline with memchr; grow only when one line does not fit.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Byte offset (in the decompressed stream) of `buf[start]`.
    offset: u64,
    /// Skipping the rest of an over-long line.
    skipping: Option<(u64, u64)>,
    /// The longest line handed out whole ([`max_line`] when the reader was made).
    limit: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> LineReader<R> {
        LineReader::with_offset(inner, 0)
    }

    /// A reader whose first byte is at `offset` of the file (for a range of a plain file).
    pub fn with_offset(inner: R, offset: u64) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            eof: false,
            offset,
            skipping: None,
            limit: max_line(),
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(self.limit + 1);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    if n == 0 {
                        self.eof = true;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line, `None` at the end. A final line without `\n` is still a line.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let mut searched = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let nl = searched + i;
                let line_start = self.start;
                let offset = self.offset;
                self.start = nl + 1;
                self.offset += (nl + 1 - line_start) as u64;
                if let Some((len, at)) = self.skipping.take() {
                    return Ok(Some(Line::TooLong(len + (nl - line_start) as u64, at)));
                }
                if nl - line_start > self.limit {
                    // Whole in the buffer, but over the limit all the same.
                    return Ok(Some(Line::TooLong((nl - line_start) as u64, offset)));
                }
                return Ok(Some(Line::Text(&self.buf[line_start..nl], offset)));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(self.skipping.take().map(|(len, at)| Line::TooLong(len, at)));
                }
                let (s, e) = (self.start, self.end);
                let offset = self.offset;
                self.start = self.end;
                self.offset += (e - s) as u64;
                if let Some((len, at)) = self.skipping.take() {
                    return Ok(Some(Line::TooLong(len + (e - s) as u64, at)));
                }
                return Ok(Some(Line::Text(&self.buf[s..e], offset)));
            }
            if self.end - self.start >= self.limit {
                // Drop what we have of this line and remember we are inside it.
                let dropped = (self.end - self.start) as u64;
                let (len, at) = self.skipping.unwrap_or((0, self.offset));
                self.skipping = Some((len + dropped, at));
                self.offset += dropped;
                self.start = self.end;
            }
            searched = self.end - self.start;
            self.fill()?;
            searched = self.start + searched.min(self.end - self.start);
        }
    }
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
}

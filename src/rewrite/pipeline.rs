//! The content pipeline: detect compression, stream the original line by line through the
//! caller's transform and line check into the temporary file, and read the temporary back
//! to check it holds exactly what was produced.
//!
//! Memory is bounded whatever the file size: one read buffer (grown only up to the line
//! limit), one output block, and for gzip a bounded batch of chunks. It does not know about
//! refusals, metadata or renames (`safety`, `atomic`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

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
    ) -> Result<(Counts, Written), RewriteError> {
        rewind(self.path, orig)?;
        match kind {
            Compression::Plain => {
                advise_sequential(orig);
                self.run(orig, Sink::Plain(out), READ_SIZE)
            }
            Compression::Gzip => {
                let sink = Sink::Gzip(GzMemberWriter::new(out, self.p.gzip_level));
                let dec = MultiGzDecoder::new(io::BufReader::with_capacity(READ_SIZE, orig));
                self.run(dec, sink, self.p.gzip_chunk.max(1))
            }
        }
    }
    fn run<R: Read>(
        &mut self,
        input: R,
        mut sink: Sink<'_>,
        block_size: usize,
    ) -> Result<(Counts, Written), RewriteError> {
        let out_path = self.out_path;
        let write_err = |e| RewriteError::io(out_path, "write the temporary file", e);
        let mut reader = LineReader::new(input, self.p.max_line);
        let mut counts = Counts::default();
        let mut digest = Digester::default();
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
                digest.update(&block);
                block = sink.emit(block).map_err(write_err)?;
            }
        }
        digest.update(&block);
        counts.members = sink.finish(block).map_err(write_err)?;
        let written = Written {
            lines: counts.lines,
            digest: digest.finish(),
        };
        Ok((counts, written))
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

enum Sink<'f> {
    Plain(&'f File),
    Gzip(GzMemberWriter<&'f File>),
}

impl Sink<'_> {
    /// Hands over a full block; returns the (empty) buffer to fill next.
    fn emit(&mut self, mut block: Vec<u8>) -> io::Result<Vec<u8>> {
        match self {
            Sink::Plain(f) => {
                (*f).write_all(&block)?;
                block.clear();
                Ok(block)
            }
            Sink::Gzip(gz) => gz.push(block),
        }
    }

    fn finish(self, mut last: Vec<u8>) -> io::Result<u64> {
        match self {
            Sink::Plain(f) => {
                (&*f).write_all(&last)?;
                last.clear();
                Ok(0)
            }
            Sink::Gzip(gz) => gz.finish(last).map(|(_, members)| members),
        }
    }
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

/// Reads the temporary file back (decompressed for gzip) and checks that it holds exactly
/// what the transform produced: the same line count and the same digest. Together with the
/// per-line check during the transform, this is what the original would have been compared
/// with, without reading and splitting the original a second time.
pub(crate) fn check_written(
    tmp_path: &Path,
    tmp: &File,
    kind: Compression,
    want: Written,
) -> Result<(), RewriteError> {
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
            check_written(&q, &f, Compression::Plain, want)
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
        check_written(&q, &f, Compression::Gzip, want).unwrap();
        assert!(check_written(&q, &f, Compression::Gzip, written(b"x\ny\n")).is_err());
    }
}

//! The content pipeline: detect compression, stream the original line by line through the
//! caller's transform into the temporary file, and verify the result against the original.
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

/// Reads the original from its start (the descriptor's offset must be 0) through
/// `transform` into `out`, compressed like the input.
pub(crate) fn transform<T>(
    path: &Path,
    orig: &File,
    kind: Compression,
    out_path: &Path,
    out: &File,
    p: Params,
    transform: &mut T,
) -> Result<Counts, RewriteError>
where
    T: FnMut(u64, &[u8], &mut Vec<u8>) -> bool,
{
    rewind(path, orig)?;
    match kind {
        Compression::Plain => {
            let sink = Sink::Plain(out);
            run(path, orig, sink, READ_SIZE, out_path, p, transform)
        }
        Compression::Gzip => {
            let sink = Sink::Gzip(GzMemberWriter::new(out, p.gzip_level));
            let dec = MultiGzDecoder::new(io::BufReader::with_capacity(READ_SIZE, orig));
            run(path, dec, sink, p.gzip_chunk.max(1), out_path, p, transform)
        }
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

fn run<R: Read, T>(
    path: &Path,
    input: R,
    mut sink: Sink<'_>,
    block_size: usize,
    out_path: &Path,
    p: Params,
    transform: &mut T,
) -> Result<Counts, RewriteError>
where
    T: FnMut(u64, &[u8], &mut Vec<u8>) -> bool,
{
    let write_err = |e| RewriteError::io(out_path, "write the temporary file", e);
    let mut reader = LineReader::new(input, p.max_line);
    let mut counts = Counts::default();
    let mut block: Vec<u8> = Vec::with_capacity(block_size + 4096);
    let mut scratch: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let line_no = counts.lines + 1;
        let line = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => return Err(line_error(path, line_no, p.max_line, e)),
        };
        scratch.clear();
        if transform(line_no, line.bytes, &mut scratch) {
            counts.changed += 1;
        }
        // A newline inside the output would split one line into two; verification would
        // notice the count, but this names the cause.
        if memchr::memchr(b'\n', &scratch).is_some() {
            return Err(RewriteError::TransformSplitLine {
                path: path.to_path_buf(),
                line: line_no,
            });
        }
        counts.lines = line_no;
        block.extend_from_slice(&scratch);
        if line.newline {
            block.push(b'\n');
        }
        if block.len() >= block_size {
            block = sink.emit(block).map_err(write_err)?;
        }
    }
    counts.members = sink.finish(block).map_err(write_err)?;
    Ok(counts)
}

/// Re-reads the original and the written temporary side by side (both decompressed) and
/// checks the same line count, the same final-newline presence, and `verify(old, new)` for
/// every pair. Returns the number of lines compared.
pub(crate) fn verify<V>(
    path: &Path,
    orig: &File,
    tmp_path: &Path,
    tmp: &File,
    kind: Compression,
    max_line: usize,
    verify: &mut V,
) -> Result<u64, RewriteError>
where
    V: FnMut(&[u8], &[u8]) -> bool,
{
    rewind(path, orig)?;
    rewind(tmp_path, tmp)?;
    // The written file may legitimately have longer lines than the limit allows the
    // original (a transform may lengthen them); allow some headroom.
    let new_limit = max_line.saturating_mul(2);
    match kind {
        Compression::Plain => compare(path, orig, tmp_path, tmp, max_line, new_limit, verify),
        Compression::Gzip => compare(
            path,
            MultiGzDecoder::new(io::BufReader::with_capacity(READ_SIZE, orig)),
            tmp_path,
            MultiGzDecoder::new(io::BufReader::with_capacity(READ_SIZE, tmp)),
            max_line,
            new_limit,
            verify,
        ),
    }
}

fn compare<A: Read, B: Read, V>(
    path: &Path,
    old: A,
    tmp_path: &Path,
    new: B,
    old_limit: usize,
    new_limit: usize,
    verify: &mut V,
) -> Result<u64, RewriteError>
where
    V: FnMut(&[u8], &[u8]) -> bool,
{
    let mut old = LineReader::new(old, old_limit);
    let mut new = LineReader::new(new, new_limit);
    let mut n: u64 = 0;
    loop {
        let line = n + 1;
        let fail = |reason| RewriteError::VerifyFailed {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let a = old
            .next_line()
            .map_err(|e| line_error(path, line, old_limit, e))?;
        let b = new
            .next_line()
            .map_err(|e| line_error(tmp_path, line, new_limit, e))?;
        match (a, b) {
            (None, None) => return Ok(n),
            (Some(_), None) => return Err(fail("the new file has fewer lines")),
            (None, Some(_)) => return Err(fail("the new file has more lines")),
            (Some(a), Some(b)) => {
                if a.newline != b.newline {
                    return Err(fail("the final newline differs"));
                }
                if !verify(a.bytes, b.bytes) {
                    return Err(fail("the check rejected the rewritten line"));
                }
            }
        }
        n = line;
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
    fn verify_names_the_first_bad_line() {
        let d = tempfile::tempdir().unwrap();
        let (p, a) = file_with(d.path(), "a.log.1", b"x\ny\nz\n");
        let (q, b) = file_with(d.path(), "b", b"x\nY\nz\n");
        let err = verify(&p, &a, &q, &b, Compression::Plain, 100, &mut |o, n| o == n).unwrap_err();
        assert!(
            matches!(err, RewriteError::VerifyFailed { line: 2, .. }),
            "{err}"
        );
        let (q, b) = file_with(d.path(), "c", b"x\ny\n");
        let err = verify(&p, &a, &q, &b, Compression::Plain, 100, &mut |_, _| true).unwrap_err();
        assert!(
            matches!(err, RewriteError::VerifyFailed { line: 3, .. }),
            "{err}"
        );
        let (q, b) = file_with(d.path(), "e", b"x\ny\nz");
        let err = verify(&p, &a, &q, &b, Compression::Plain, 100, &mut |_, _| true).unwrap_err();
        assert!(
            matches!(err, RewriteError::VerifyFailed { line: 3, .. }),
            "{err}"
        );
        let (q, b) = file_with(d.path(), "f", b"x\ny\nz\n");
        assert_eq!(
            verify(&p, &a, &q, &b, Compression::Plain, 100, &mut |o, n| o == n).unwrap(),
            3
        );
    }
}

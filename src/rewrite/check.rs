//! The check of a rewrite's temporary file before the rename: what was written (line count
//! and digest), read back and compared, and the digest itself.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::error::RewriteError;
use super::stored::{Compression, READ_SIZE, advise_sequential, rewind};

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
    use crate::rewrite::stored::tests::file_with;
    use std::io::Write;

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

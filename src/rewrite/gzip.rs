//! `GzMemberWriter`: compresses chunks in parallel as members of one multi-member gzip file.
//!
//! RFC 1952 section 2.2 defines a gzip file as "a series of members": each chunk becomes a
//! complete member (header, deflate stream, CRC32, size), so chunks compress independently
//! on rayon's pool and are written in order. `zcat` and `flate2::read::MultiGzDecoder` read
//! the result as one stream. The caller cuts chunks (at line ends); this type only bounds
//! how many are in memory at once. It does not read gzip: that is `MultiGzDecoder`'s job.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use rayon::prelude::*;

/// Chunks held before a parallel compression round: enough to keep every core busy,
/// capped so memory stays bounded on large machines.
const MAX_BATCH: usize = 8;

pub(crate) struct GzMemberWriter<W: Write> {
    out: W,
    level: Compression,
    batch: Vec<Vec<u8>>,
    batch_len: usize,
    /// Emptied chunk buffers, handed back to the caller for reuse.
    spare: Vec<Vec<u8>>,
    members: u64,
}

impl<W: Write> GzMemberWriter<W> {
    pub(crate) fn new(out: W, level: u32) -> Self {
        let batch_len = rayon::current_num_threads().clamp(2, MAX_BATCH);
        GzMemberWriter {
            out,
            level: Compression::new(level.min(9)),
            batch: Vec::with_capacity(batch_len),
            batch_len,
            spare: Vec::new(),
            members: 0,
        }
    }

    /// Queues one chunk (one future member); compresses a round when the batch is full.
    /// Returns an empty buffer to fill next, reusing an old one when possible.
    pub(crate) fn push(&mut self, chunk: Vec<u8>) -> io::Result<Vec<u8>> {
        if !chunk.is_empty() {
            self.batch.push(chunk);
        }
        if self.batch.len() >= self.batch_len {
            self.flush_batch()?;
        }
        Ok(self.spare.pop().unwrap_or_default())
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        let level = self.level;
        let members: Vec<io::Result<Vec<u8>>> = self
            .batch
            .par_iter()
            .map(|chunk| compress_member(chunk, level))
            .collect();
        for member in members {
            self.out.write_all(&member?)?;
            self.members += 1;
        }
        for mut chunk in self.batch.drain(..) {
            chunk.clear();
            self.spare.push(chunk);
        }
        Ok(())
    }

    /// Writes what is left and returns the sink and the number of members written.
    /// An empty stream still gets one (empty) member so the file is valid gzip.
    pub(crate) fn finish(mut self, last: Vec<u8>) -> io::Result<(W, u64)> {
        if !last.is_empty() {
            self.batch.push(last);
        }
        if self.members == 0 && self.batch.is_empty() {
            self.batch.push(Vec::new());
        }
        self.flush_batch()?;
        self.out.flush()?;
        Ok((self.out, self.members))
    }
}

fn compress_member(chunk: &[u8], level: Compression) -> io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(chunk.len() / 4 + 64), level);
    enc.write_all(chunk)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    /// Counts members by decoding them one at a time with a single-member decoder.
    fn count_members(mut data: &[u8]) -> u64 {
        let mut n = 0;
        while !data.is_empty() {
            let mut dec = flate2::bufread::GzDecoder::new(data);
            io::copy(&mut dec, &mut io::sink()).unwrap();
            data = dec.into_inner();
            n += 1;
        }
        n
    }

    #[test]
    fn members_concatenate_to_the_input() {
        let mut w = GzMemberWriter::new(Vec::new(), 6);
        let mut expect = Vec::new();
        for i in 0..21u32 {
            let chunk: Vec<u8> = format!("chunk {i}\n").repeat(i as usize + 1).into_bytes();
            expect.extend_from_slice(&chunk);
            let spare = w.push(chunk).unwrap();
            assert!(spare.is_empty());
        }
        let (out, members) = w.finish(b"tail".to_vec()).unwrap();
        assert_eq!(members, 22);
        assert_eq!(count_members(&out), 22);
        expect.extend_from_slice(b"tail");
        assert_eq!(gunzip(&out), expect);
    }

    #[test]
    fn empty_stream_is_valid_gzip() {
        let w = GzMemberWriter::new(Vec::new(), 6);
        let (out, members) = w.finish(Vec::new()).unwrap();
        assert_eq!(members, 1);
        assert_eq!(&out[..2], &[0x1f, 0x8b]);
        assert!(gunzip(&out).is_empty());
    }
}

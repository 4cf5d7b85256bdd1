//! `GzMemberWriter`: compresses chunks as members of one multi-member gzip file, on other
//! threads while the caller produces the next chunks.
//!
//! RFC 1952 section 2.2 defines a gzip file as "a series of members": each chunk becomes a
//! complete member (header, deflate stream, CRC32, size), so chunks compress independently
//! on rayon's pool and are written in order. `zcat` and `flate2::read::MultiGzDecoder` read
//! the result as one stream. The caller cuts chunks (at line ends); this type only bounds
//! how many are in memory at once. With a single-thread pool it compresses in the caller's
//! thread, so `--threads 1` means one busy core. It does not read gzip: that is
//! `MultiGzDecoder`'s job.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;

use flate2::Compression;
use flate2::write::GzEncoder;

/// Chunks in flight at most: enough to keep every core busy, capped so memory stays
/// bounded on large machines (each chunk and its member are held until written).
const MAX_IN_FLIGHT: usize = 8;

/// A chunk handed back with its compressed member.
type Done = (Vec<u8>, io::Result<Vec<u8>>);

pub(crate) struct GzMemberWriter<W: Write> {
    out: W,
    level: Compression,
    /// Compression jobs in the order their members must be written.
    in_flight: VecDeque<mpsc::Receiver<Done>>,
    max_in_flight: usize,
    /// False on a single-thread pool: compress in the caller's thread.
    parallel: bool,
    /// Emptied chunk buffers, handed back to the caller for reuse.
    spare: Vec<Vec<u8>>,
    members: u64,
}

impl<W: Write> GzMemberWriter<W> {
    pub(crate) fn new(out: W, level: u32) -> Self {
        let threads = rayon::current_num_threads();
        GzMemberWriter {
            out,
            level: Compression::new(level.min(9)),
            in_flight: VecDeque::new(),
            max_in_flight: (threads * 2).clamp(2, MAX_IN_FLIGHT),
            parallel: threads > 1,
            spare: Vec::new(),
            members: 0,
        }
    }

    /// Queues one chunk (one future member), writing finished members in order while too
    /// many are in flight. Returns an empty buffer to fill next, reusing an old one when
    /// possible.
    pub(crate) fn push(&mut self, chunk: Vec<u8>) -> io::Result<Vec<u8>> {
        if !chunk.is_empty() {
            if self.parallel {
                let (tx, rx) = mpsc::sync_channel(1);
                let level = self.level;
                rayon::spawn(move || {
                    let member = compress_member(&chunk, level);
                    // The writer may have given up (an error elsewhere): nothing to do then.
                    let _ = tx.send((chunk, member));
                });
                self.in_flight.push_back(rx);
                while self.in_flight.len() >= self.max_in_flight {
                    self.write_oldest()?;
                }
            } else {
                let member = compress_member(&chunk, self.level);
                self.write_member(chunk, member)?;
            }
        }
        Ok(self.spare.pop().unwrap_or_default())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (chunk, member) = rx
            .recv()
            .map_err(|_| io::Error::other("a gzip compression job failed"))?;
        self.write_member(chunk, member)
    }

    fn write_member(&mut self, mut chunk: Vec<u8>, member: io::Result<Vec<u8>>) -> io::Result<()> {
        self.out.write_all(&member?)?;
        self.members += 1;
        chunk.clear();
        self.spare.push(chunk);
        Ok(())
    }

    /// Writes what is left and returns the sink and the number of members written.
    /// An empty stream still gets one (empty) member so the file is valid gzip.
    pub(crate) fn finish(mut self, last: Vec<u8>) -> io::Result<(W, u64)> {
        self.push(last)?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        if self.members == 0 {
            let member = compress_member(&[], self.level);
            self.write_member(Vec::new(), member)?;
        }
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
    fn same_members_on_one_thread_and_many() {
        let chunks: Vec<Vec<u8>> = (0..20u32)
            .map(|i| {
                format!("line {i}\n")
                    .repeat(i as usize * 50 + 1)
                    .into_bytes()
            })
            .collect();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut w = GzMemberWriter::new(Vec::new(), 6);
                for c in &chunks {
                    w.push(c.clone()).unwrap();
                }
                w.finish(Vec::new()).unwrap()
            })
        };
        let (one, n1) = run(1);
        let (many, n3) = run(3);
        assert_eq!((n1, n3), (20, 20));
        assert_eq!(one, many);
        assert_eq!(gunzip(&one), chunks.concat());
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

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
//!
//! The caller is often itself a job on the same pool (one rewrite per file, files in
//! parallel), so it must never block on a member job that sits in the pool's queue behind
//! it: once every worker waited so, nothing would run the queued jobs. Each member is
//! therefore a job the writer owns: whoever comes first, a pool worker or the writer that
//! needs the member, claims the chunk and compresses it. The writer only ever waits for a
//! member that another thread is compressing at that moment, which never blocks.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use flate2::Compression;
use flate2::write::GzEncoder;

/// Chunks in flight at most: enough to keep every core busy, capped so memory stays
/// bounded on large machines (each chunk and its member are held until written).
const MAX_IN_FLIGHT: usize = 8;

/// A chunk handed back with its compressed member.
type Done = (Vec<u8>, io::Result<Vec<u8>>);

/// Where one member job stands.
enum Stage {
    /// Queued: nobody has taken the chunk yet.
    Waiting(Vec<u8>),
    /// A thread took the chunk and is compressing it.
    Compressing,
    /// The member is ready.
    Finished(Done),
    /// The writer took the result (or gave up on it).
    Taken,
}

/// One member job, shared between the writer and the pool task queued for it.
struct MemberJob {
    stage: Mutex<Stage>,
    finished: Condvar,
}

impl MemberJob {
    fn new(chunk: Vec<u8>) -> Arc<MemberJob> {
        Arc::new(MemberJob {
            stage: Mutex::new(Stage::Waiting(chunk)),
            finished: Condvar::new(),
        })
    }

    /// Takes the chunk if nobody has yet, marking the job as being compressed.
    fn claim(&self) -> Option<Vec<u8>> {
        let mut stage = self.stage.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *stage, Stage::Compressing) {
            Stage::Waiting(chunk) => Some(chunk),
            other => {
                *stage = other;
                None
            }
        }
    }

    /// The pool's side: compresses the chunk unless the writer already took it.
    fn run(&self, level: Compression) {
        if let Some(chunk) = self.claim() {
            let member = compress_member(&chunk, level);
            let mut stage = self.stage.lock().unwrap_or_else(PoisonError::into_inner);
            *stage = Stage::Finished((chunk, member));
            self.finished.notify_all();
        }
    }

    /// The writer's side: the member, compressed here if no worker has started on it, or
    /// waited for if one has (that worker is compressing, never waiting on anything).
    fn take(&self, level: Compression) -> Done {
        if let Some(chunk) = self.claim() {
            let member = compress_member(&chunk, level);
            *self.stage.lock().unwrap_or_else(PoisonError::into_inner) = Stage::Taken;
            return (chunk, member);
        }
        let mut stage = self.stage.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match std::mem::replace(&mut *stage, Stage::Taken) {
                Stage::Finished(done) => return done,
                Stage::Compressing => {
                    *stage = Stage::Compressing;
                    stage = self
                        .finished
                        .wait(stage)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                // Only the writer takes, once per job; `claim` above saw no waiting chunk.
                Stage::Waiting(_) | Stage::Taken => {
                    return (
                        Vec::new(),
                        Err(io::Error::other("a gzip member job was lost")),
                    );
                }
            }
        }
    }
}

pub(crate) struct GzMemberWriter<W: Write> {
    out: W,
    level: Compression,
    /// Compression jobs in the order their members must be written.
    in_flight: VecDeque<Arc<MemberJob>>,
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
                let job = MemberJob::new(chunk);
                let level = self.level;
                let queued = Arc::clone(&job);
                // If the writer gets to the job first, this task finds nothing left to do.
                rayon::spawn(move || queued.run(level));
                self.in_flight.push_back(job);
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
        let Some(job) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (chunk, member) = job.take(self.level);
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
    // A panic while compressing must not leave the writer waiting for a member forever.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        deflate_member(chunk, level)
    }))
    .unwrap_or_else(|_| Err(io::Error::other("compressing a gzip member panicked")))
}

fn deflate_member(chunk: &[u8], level: Compression) -> io::Result<Vec<u8>> {
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

    /// Regression: with every worker of a pool running a writer (one rewrite per file),
    /// member jobs queued behind those writers never ran and every writer waited for its
    /// own, forever. Fails by timing out instead of hanging the test run.
    #[test]
    fn writers_on_every_worker_of_a_pool_finish() {
        use rayon::prelude::*;
        for threads in [1, 2, 8] {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let outputs: Vec<Vec<u8>> = pool.install(|| {
                    (0..threads * 3)
                        .into_par_iter()
                        .map(|file| {
                            let mut w = GzMemberWriter::new(Vec::new(), 1);
                            for i in 0..40 {
                                w.push(format!("file {file} chunk {i}\n").repeat(200).into_bytes())
                                    .unwrap();
                            }
                            w.finish(Vec::new()).unwrap().0
                        })
                        .collect()
                });
                let _ = tx.send(outputs);
            });
            let outputs = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("writers on a {threads}-thread pool did not finish"));
            for (file, out) in outputs.iter().enumerate() {
                let expect: String = (0..40)
                    .map(|i| format!("file {file} chunk {i}\n").repeat(200))
                    .collect();
                assert_eq!(gunzip(out), expect.as_bytes());
            }
        }
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

//! Writing a plain rewrite's output front to back: direct I/O where the file system takes
//! it, the page cache with early writeback where it does not. Knows nothing of lines; the
//! pipeline hands it blocks and bytes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// At most this many waiting blocks go to the device in one write.
pub(super) const BLOCKS_GATHERED: usize = 3;
/// Alignment of direct writes: of the memory, the file offset and the length. A multiple
/// of the sector sizes in use (512 and 4096 bytes); a device that wants more refuses the
/// first direct write, and the output goes on through the page cache.
pub(super) const DIRECT_ALIGN: usize = 4096;
/// Bytes gathered for one direct write.
pub(super) const DIRECT_CHUNK: usize = 1 << 20;

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
pub(super) struct OutputFile<'f> {
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
    pub(super) fn new(file: &'f File, try_direct: bool) -> Self {
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

    pub(super) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
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
    pub(super) fn write_all_in_place(&mut self, parts: &[&[u8]]) -> io::Result<()> {
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
    pub(super) fn finish(mut self) -> io::Result<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::pipeline::Block;
    use std::fs;
    use std::path::Path;

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
}

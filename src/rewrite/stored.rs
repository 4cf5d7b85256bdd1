//! How a rewrite's original is stored and read: its compression, from its magic number
//! (not its name), and the reading helpers that the pipeline and the check before the
//! rename share.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;

use super::error::RewriteError;

/// Bytes requested per read; large reads keep syscalls off the profile.
pub(super) const READ_SIZE: usize = 1 << 20;

/// How the file's bytes are stored, from its first bytes (not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Plain,
    Gzip,
}

/// How `file` is stored, from its magic number ([`crate::input::read::sniff_open`]): the
/// compressions logward cannot write back are refused.
pub(crate) fn detect(path: &Path, file: &File) -> Result<Compression, RewriteError> {
    use crate::input::read::{Compression as Stored, sniff_open};
    match sniff_open(file).map_err(|e| RewriteError::io(path, "read the file", e))? {
        Stored::None => Ok(Compression::Plain),
        Stored::Gzip => Ok(Compression::Gzip),
        other => Err(RewriteError::Unsupported {
            path: path.to_path_buf(),
            format: other.name(),
        }),
    }
}

/// Moves `f` back to its start, for reading it again.
pub(super) fn rewind(path: &Path, mut f: &File) -> Result<(), RewriteError> {
    f.seek(SeekFrom::Start(0))
        .map(drop)
        .map_err(|e| RewriteError::io(path, "seek", e))
}

/// Tells the kernel the file is read once from start to end (more read-ahead, pages
/// dropped sooner). Only advice: a failure changes nothing, so it is ignored.
pub(super) fn advise_sequential(f: &File) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: plain syscall on a descriptor we own; no memory is passed.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A file of `data` in `dir`, open for reading and writing.
    pub(in crate::rewrite) fn file_with(
        dir: &Path,
        name: &str,
        data: &[u8],
    ) -> (std::path::PathBuf, File) {
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
}

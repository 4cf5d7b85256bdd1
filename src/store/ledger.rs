//! File fingerprints for the scan ledger (`scanned_files`), so a log scanned once is not
//! counted twice when it is seen again, even after it was renamed by rotation.
//!
//! A fingerprint is (device, inode, size, FNV-1a 64 of the first 4 KiB). The head hash
//! tells a reused inode from the file that had it before; the size makes a file that grew
//! since (the live log) count as new. It does not read or track positions inside a file.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How many leading bytes the head hash covers.
pub const HEAD_LEN: usize = 4096;

/// Identity of a file's content as the scan ledger sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileFingerprint {
    pub device: u64,
    pub inode: u64,
    pub size: u64,
    /// FNV-1a 64 of the first [`HEAD_LEN`] bytes (fewer if the file is shorter).
    pub head_hash: u64,
}

impl FileFingerprint {
    /// Fingerprints the file at `path`, following symlinks. The metadata comes from the
    /// open handle so the hash and the inode describe the same file.
    pub fn of(path: &Path) -> io::Result<FileFingerprint> {
        let mut f = File::open(path)?;
        let meta = f.metadata()?;
        let mut head = [0u8; HEAD_LEN];
        let mut n = 0;
        while n < HEAD_LEN {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(FileFingerprint {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.len(),
            head_hash: fnv1a64(&head[..n]),
        })
    }
}

/// 64-bit FNV-1a (<http://www.isthe.com/chongo/tech/comp/fnv/>): not cryptographic, only a
/// cheap way to tell two file heads apart.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ b as u64).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        // Test vectors from the FNV reference page.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fingerprint_tracks_content_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access.log");
        std::fs::write(&p, b"line one\n").unwrap();
        let a = FileFingerprint::of(&p).unwrap();
        assert_eq!(a.size, 9);
        assert_eq!(a.head_hash, fnv1a64(b"line one\n"));
        let moved = dir.path().join("access.log.1");
        std::fs::rename(&p, &moved).unwrap();
        assert_eq!(
            FileFingerprint::of(&moved).unwrap(),
            a,
            "rename keeps identity"
        );
        std::fs::write(&moved, b"line one\nline two\n").unwrap();
        assert_ne!(FileFingerprint::of(&moved).unwrap(), a);
        assert!(FileFingerprint::of(&dir.path().join("missing")).is_err());
    }
}

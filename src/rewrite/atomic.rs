//! Atomic replacement: the temporary file next to the original, its metadata, the rename,
//! and removal of temporaries left by a killed run.
//!
//! Crash safety rests on one fact: `rename(2)` over the original is the only step that
//! changes the original path, and it is atomic. Before it the path holds the original
//! (the new content lives under `.NAME.logward-tmp.PID`); after it the path holds the
//! complete, fsynced new file. A `kill -9` at any instant therefore leaves one or the other,
//! plus at worst a temporary that [`cleanup_stale_temps`] removes later. It does not
//! produce content or decide whether a file may be rewritten.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileTimes, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::error::{RewriteError, SYNC_DIR};

const TEMP_MARKER: &[u8] = b".logward-tmp.";

/// `.NAME.logward-tmp.PID`: hidden, recognisable, and tied to the process that wrote it.
pub fn temp_name(name: &OsStr, pid: u32) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(OsStr::from_bytes(TEMP_MARKER));
    s.push(pid.to_string());
    s
}

/// The PID a temporary file name carries, if it is one of ours.
fn temp_pid(name: &OsStr) -> Option<u32> {
    let name = name.as_bytes();
    let rest = name.strip_prefix(b".")?;
    let at = memchr::memmem::rfind(rest, TEMP_MARKER)?;
    if at == 0 {
        return None;
    }
    let digits = &rest[at + TEMP_MARKER.len()..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return true; // never signal a group; treat as alive so nothing is removed
    }
    // SAFETY: signal 0 only checks existence and permission; it sends nothing.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes temporaries in `dir` whose writing process is gone, returning their paths.
/// A temporary whose PID is alive (even a reused PID) is left alone: it might be in use.
pub fn cleanup_stale_temps(dir: &Path) -> Result<Vec<PathBuf>, RewriteError> {
    let entries = fs::read_dir(dir).map_err(|e| RewriteError::io(dir, "list the directory", e))?;
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RewriteError::io(dir, "list the directory", e))?;
        let Some(pid) = temp_pid(&entry.file_name()) else {
            continue;
        };
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file || pid_alive(pid) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RewriteError::io(path, "remove a stale temporary file", e)),
        }
    }
    Ok(removed)
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces a small file (a ledger, positions, statistics) with `bytes`, atomically: the
/// one way logward writes its own state files. The temporary beside it is created with
/// `O_EXCL` and `O_NOFOLLOW` and mode 0600, so a planted link is never followed; it is
/// renamed over the target, and the directory is synced after the rename when `durable`
/// (the file's data is synced before it too), so a crash leaves the old or the new file.
pub fn write_small_file(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    write_small_file_mode(path, bytes, durable, 0o600)
}

/// [`write_small_file`] with the file's mode given: a file another program must read (the
/// metrics file node_exporter reads as its own user) is 0644.
pub fn write_small_file_mode(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    mode: u32,
) -> io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = parent_dir(path).join(temp_name(name, std::process::id()));
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(&tmp)
    };
    let mut file = match open() {
        // Our own PID's leftover (a crash, or a link planted under that name): unlink the
        // name itself (never what it points to) and create it afresh.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(&tmp)?;
            open()?
        }
        other => other?,
    };
    // The umask may have taken bits away: the mode asked for is the mode the file gets.
    let written = file
        .set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if durable {
        File::open(parent_dir(path))?.sync_all()?;
    }
    Ok(())
}

/// A temporary file beside the target; removed on drop unless committed, so every early
/// return or panic leaves the directory as it was.
pub(crate) struct TempFile {
    path: PathBuf,
    file: File,
    armed: bool,
}

impl TempFile {
    /// Creates `.NAME.logward-tmp.PID` with mode 0600 beside `target`. A leftover with our
    /// own PID can only come from a dead earlier process (or a caller rewriting the same file
    /// twice at once, whose rename would then fail harmlessly), so it is replaced.
    pub(crate) fn create(target: &Path) -> Result<TempFile, RewriteError> {
        let name = target.file_name().ok_or_else(|| RewriteError::NotRegular {
            path: target.to_path_buf(),
        })?;
        let path = parent_dir(target).join(temp_name(name, std::process::id()));
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&path)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&path);
                open()
            }
            other => other,
        }
        .map_err(|e| RewriteError::io(&path, "create the temporary file", e))?;
        Ok(TempFile {
            path,
            file,
            armed: true,
        })
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the temporary the original's owner, group, mode, extended attributes and times.
    /// Owner first (chown clears set-id bits), mode after, times last (after every read and
    /// write of the temporary, which would move them). Runs before the fsync so all of it is
    /// durable before the rename.
    pub(crate) fn copy_metadata(&self, src: &File, meta: &Metadata) -> Result<(), RewriteError> {
        let err = |action| move |e| RewriteError::io(&self.path, action, e);
        std::os::unix::fs::fchown(&self.file, Some(meta.uid()), Some(meta.gid()))
            .map_err(err("copy the owner and group"))?;
        copy_xattrs(src, &self.file).map_err(err("copy extended attributes"))?;
        self.file
            .set_permissions(meta.permissions())
            .map_err(err("copy the mode"))?;
        let times = FileTimes::new()
            .set_accessed(meta.accessed().map_err(err("read the access time"))?)
            .set_modified(meta.modified().map_err(err("read the modification time"))?);
        self.file.set_times(times).map_err(err("copy the times"))?;
        Ok(())
    }

    /// fsync, rename over `target`, fsync the directory. After the rename the temporary no
    /// longer exists, so nothing is removed on drop.
    pub(crate) fn commit(mut self, target: &Path) -> Result<(), RewriteError> {
        self.file
            .sync_all()
            .map_err(|e| RewriteError::io(&self.path, "fsync the temporary file", e))?;
        fs::rename(&self.path, target)
            .map_err(|e| RewriteError::io(target, "rename the temporary file over it", e))?;
        self.armed = false;
        File::open(parent_dir(target))
            .and_then(|d| d.sync_all())
            .map_err(|e| RewriteError::io(target, SYNC_DIR, e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Copies every extended attribute (ACLs, SELinux labels, user attributes). A filesystem
/// without them (`ENOTSUP`) is skipped silently: there is nothing to lose.
fn copy_xattrs(src: &File, dst: &File) -> io::Result<()> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    let mut names = vec![0u8; 1024];
    let len = loop {
        // SAFETY: the buffer is valid for names.len() bytes.
        let n = unsafe { libc::flistxattr(sfd, names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOTSUP) => return Ok(()),
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            _ => return Err(e),
        }
    };
    let mut value = vec![0u8; 256];
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut cname = name.to_vec();
        cname.push(0);
        let vlen = loop {
            // SAFETY: cname is NUL-terminated; the buffer is valid for value.len() bytes.
            let n = unsafe {
                libc::fgetxattr(
                    sfd,
                    cname.as_ptr().cast(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) => value.resize(value.len() * 4, 0),
                _ => return Err(e),
            }
        };
        // SAFETY: cname is NUL-terminated; value holds vlen initialised bytes.
        let rc =
            unsafe { libc::fsetxattr(dfd, cname.as_ptr().cast(), value.as_ptr().cast(), vlen, 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOTSUP) {
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Regression: the ledger's temporary was opened with O_TRUNC and no O_EXCL, so links
    /// planted under the next PIDs' names made root overwrite another file.
    #[test]
    fn small_files_never_write_through_a_planted_link() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        let target = d.path().join("ledger.json");
        let planted = d
            .path()
            .join(temp_name(OsStr::new("ledger.json"), std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_small_file(&target, b"{}", true).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        assert!(!planted.exists() && fs::symlink_metadata(&planted).is_err());
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn temp_names_round_trip() {
        let n = temp_name(OsStr::new("access.log.1"), 4242);
        assert_eq!(n, ".access.log.1.logward-tmp.4242");
        assert_eq!(temp_pid(&n), Some(4242));
        assert_eq!(temp_pid(OsStr::new("access.log.1")), None);
        assert_eq!(temp_pid(OsStr::new(".x.logward-tmp.")), None);
        assert_eq!(temp_pid(OsStr::new(".x.logward-tmp.12a")), None);
        assert_eq!(temp_pid(OsStr::new("..logward-tmp.5")), None);
    }

    /// A PID that is certainly dead: a child we spawned and reaped.
    fn dead_pid() -> u32 {
        let mut c = crate::child::spawn_child(&mut std::process::Command::new("true")).unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn stale_temps_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir
            .path()
            .join(temp_name(OsStr::new("a.log.1"), dead_pid()));
        let live = dir
            .path()
            .join(temp_name(OsStr::new("b.log.1"), std::process::id()));
        let other = dir.path().join("a.log.1");
        for p in [&stale, &live, &other] {
            fs::write(p, "x").unwrap();
        }
        let removed = cleanup_stale_temps(dir.path()).unwrap();
        assert_eq!(removed, vec![stale.clone()]);
        assert!(!stale.exists());
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn temp_is_private_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.log.1");
        let t = TempFile::create(&target).unwrap();
        let p = t.path().to_path_buf();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(t);
        assert!(!p.exists());
    }

    #[test]
    fn metadata_and_xattrs_copied() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.log.1");
        fs::write(&target, "old\n").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        let src = File::open(&target).unwrap();
        let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        src.set_times(FileTimes::new().set_modified(when).set_accessed(when))
            .unwrap();
        // SAFETY: NUL-terminated name and value of the given length.
        let has_xattrs = unsafe {
            libc::fsetxattr(
                src.as_raw_fd(),
                c"user.logward.test".as_ptr(),
                b"v1".as_ptr().cast(),
                2,
                0,
            )
        } == 0;
        // SAFETY: geteuid cannot fail. As root, a foreign owner shows that fchown really ran.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::fchown(&src, Some(12345), Some(23456)).unwrap();
        }
        let meta = src.metadata().unwrap();

        let t = TempFile::create(&target).unwrap();
        t.copy_metadata(&src, &meta).unwrap();
        let got = t.file().metadata().unwrap();
        assert_eq!(got.permissions().mode() & 0o7777, 0o640);
        assert_eq!((got.uid(), got.gid()), (meta.uid(), meta.gid()));
        assert_eq!(got.modified().unwrap(), when);
        if has_xattrs {
            let mut buf = [0u8; 8];
            // SAFETY: as above, buffer valid for 8 bytes.
            let n = unsafe {
                libc::fgetxattr(
                    t.file().as_raw_fd(),
                    c"user.logward.test".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            assert_eq!(n, 2);
            assert_eq!(&buf[..2], b"v1");
        } else {
            eprintln!("xattr part skipped: filesystem has no user xattrs");
        }
        t.commit(&target).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

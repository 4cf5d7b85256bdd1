//! Refusal checks run before a file is rewritten: live log names, symbolic links leaving
//! the allowed roots, hard links, foreign owners, and files some process still has open.
//!
//! Each check returns a [`RewriteError`] naming the file and the reason. This module decides
//! whether a rewrite may start; it never writes anything.
//!
//! Which open-file check is authoritative: the write lease. `fcntl(F_SETLEASE, F_WRLCK)` is
//! granted by the kernel only when no other descriptor anywhere has the inode open
//! (fcntl(2), "Leases"), including processes in other PID namespaces and processes whose
//! `/proc/PID/fd` logward may not read. So the lease is tried first, and a granted lease
//! settles it without reading `/proc` (a scan reads every descriptor of every process, twice
//! per file: milliseconds on a busy server, for each of a year of rotated logs). When the
//! lease is refused, the `/proc/*/fd/*` scan names the holder if the caller may see it.
//! Where leases are not available (`EINVAL` on filesystems without them, `EACCES` without
//! ownership or `CAP_LEASE`) the scan is the only check, best effort. The lease is released at once:
//! holding it would let a later `open` by someone else raise `SIGIO`, whose default
//! action ends the process.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::error::{Holder, RewriteError};

/// Compression suffixes stripped before looking for the rotation suffix.
const COMPRESSION_SUFFIXES: &[&[u8]] = &[b".gz", b".bz2", b".xz", b".zst"];

/// Whether `name` (a file name, no directory) carries a rotation suffix, so the web server
/// no longer writes it. Rotated: `access.log.1`, `access.log.2.gz`, `access.log-20261122`,
/// `access.log-20261122.gz`. Live: `access.log`, `site.access.log`, `access_log`.
///
/// The suffixes are logrotate's: a number after a dot (`rotate N`), or at least eight digits
/// after a dash (`dateext`, whose default `dateformat` is `-%Y%m%d`). Anything else counts as
/// live, so an unknown scheme is refused rather than rewritten under a running server.
pub fn is_rotated_name(name: &OsStr) -> bool {
    let mut name = name.as_bytes();
    for suffix in COMPRESSION_SUFFIXES {
        if let Some(stem) = name.strip_suffix(*suffix) {
            name = stem;
            break;
        }
    }
    let all_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if let Some(dot) = memchr::memrchr(b'.', name) {
        if dot > 0 && all_digits(&name[dot + 1..]) {
            return true;
        }
    }
    if let Some(dash) = memchr::memrchr(b'-', name) {
        let suffix = &name[dash + 1..];
        if dash > 0 && suffix.len() >= 8 && all_digits(suffix) {
            return true;
        }
    }
    false
}

/// Refuses a live log name unless `include_active`.
pub fn check_rotated(path: &Path, include_active: bool) -> Result<(), RewriteError> {
    if include_active {
        return Ok(());
    }
    match path.file_name() {
        Some(name) if is_rotated_name(name) => Ok(()),
        _ => Err(RewriteError::LiveLog {
            path: path.to_path_buf(),
        }),
    }
}

/// Returns the file to rewrite: `path` itself, or for a symbolic link its resolved target,
/// which must lie under one of `allowed_roots` (compared after resolving the roots too).
/// An empty `allowed_roots` refuses every link.
///
/// The link itself is kept: the rewrite replaces the target, so the link still points at it.
pub fn check_symlink(path: &Path, allowed_roots: &[PathBuf]) -> Result<PathBuf, RewriteError> {
    // Every component is resolved, not only the last: a symlinked directory on the way
    // (`logs/sub -> /elsewhere`) leaves the roots as surely as a symlinked file does.
    let target =
        fs::canonicalize(path).map_err(|e| RewriteError::io(path, "resolve the path", e))?;
    let is_link = fs::symlink_metadata(path)
        .map_err(|e| RewriteError::io(path, "inspect the file", e))?
        .file_type()
        .is_symlink();
    // Without roots, no link is followed; the path's own directories are as given.
    let allowed = if allowed_roots.is_empty() {
        !is_link
    } else {
        inside_roots(&target, allowed_roots)
    };
    if allowed {
        Ok(target)
    } else {
        Err(RewriteError::SymlinkOutsideRoots {
            path: path.to_path_buf(),
            target,
        })
    }
}

/// Whether `target` (canonical) lies under one of `roots` (each made canonical here).
pub fn inside_roots(target: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| {
        fs::canonicalize(root)
            .map(|root| target.starts_with(root))
            .unwrap_or(false)
    })
}

/// Checks the file actually opened, by its descriptor, against the roots: a directory
/// swapped for a symlink between the name check and the open is caught here.
pub fn check_opened(
    path: &Path,
    file: &File,
    allowed_roots: &[PathBuf],
) -> Result<(), RewriteError> {
    if allowed_roots.is_empty() {
        return Ok(());
    }
    let opened = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| RewriteError::io(path, "find where the opened file is", e))?;
    if inside_roots(&opened, allowed_roots) {
        Ok(())
    } else {
        Err(RewriteError::SymlinkOutsideRoots {
            path: path.to_path_buf(),
            target: opened,
        })
    }
}

/// Refuses anything but a regular file with a single name, and files logward could not
/// give back to their owner.
///
/// Owner policy: only root can `fchown` a file to another user, so when not root and the
/// file belongs to someone else the replacement would silently change owner; it is refused
/// instead. (The group is copied too; a group the caller is not in fails at `fchown`, before
/// anything on disk changes.)
pub fn check_file(path: &Path, meta: &Metadata) -> Result<(), RewriteError> {
    if !meta.file_type().is_file() {
        return Err(RewriteError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if meta.nlink() > 1 {
        return Err(RewriteError::HardLinked {
            path: path.to_path_buf(),
            links: meta.nlink(),
        });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && meta.uid() != euid {
        return Err(RewriteError::ForeignOwner {
            path: path.to_path_buf(),
            uid: meta.uid(),
        });
    }
    Ok(())
}

/// Refuses a file that any process other than this descriptor has open: the write lease
/// (authoritative, see module docs), then, unless it was granted, the `/proc` scan, which
/// names the holder. `file` must be the only descriptor this process holds on the inode,
/// or the lease is refused by our own other descriptor.
pub fn check_not_open(path: &Path, file: &File) -> Result<(), RewriteError> {
    #[cfg(test)]
    let _no_spawn = crate::child::no_spawn_meanwhile();
    let lease = try_lease(file);
    if lease == Lease::Granted {
        return Ok(());
    }
    let meta = file
        .metadata()
        .map_err(|e| RewriteError::io(path, "inspect the file", e))?;
    let holder = match scan_proc(meta.dev(), meta.ino(), file.as_raw_fd()) {
        Some(holder) => holder,
        None if lease == Lease::Refused => Holder::Lease,
        None => return Ok(()),
    };
    Err(RewriteError::InUse {
        path: path.to_path_buf(),
        holder,
    })
}

/// Finds a descriptor on (dev, ino) in any process, except descriptor `own_fd` of this
/// process. Processes that vanish or cannot be read are skipped (the lease covers them).
fn scan_proc(dev: u64, ino: u64, own_fd: i32) -> Option<Holder> {
    let me = std::process::id();
    let procs = fs::read_dir("/proc").ok()?;
    for proc_entry in procs.flatten() {
        let name = proc_entry.file_name();
        let Some(pid) = std::str::from_utf8(name.as_bytes())
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd_entry in fds.flatten() {
            if pid == me {
                let fd = fd_entry.file_name();
                if std::str::from_utf8(fd.as_bytes()).ok() == Some(&own_fd.to_string()) {
                    continue;
                }
            }
            // stat follows the magic link to the open file itself, deleted or not.
            let Ok(m) = fs::metadata(fd_entry.path()) else {
                continue;
            };
            if m.dev() == dev && m.ino() == ino {
                let command = fs::read(proc_entry.path().join("comm"))
                    .map(|c| String::from_utf8_lossy(c.trim_ascii_end()).into_owned())
                    .unwrap_or_else(|_| "?".to_string());
                return Some(Holder::Process { pid, command });
            }
        }
    }
    None
}

/// What the kernel said to a write lease on a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lease {
    /// No other descriptor has the inode open.
    Granted,
    /// Another descriptor has it open (`EAGAIN`/`EBUSY`).
    Refused,
    /// Leases are not available here: any other failure.
    Unavailable,
}

/// Tries a write lease and releases it at once.
fn try_lease(file: &File) -> Lease {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_SETLEASE takes an int argument.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) };
    if rc == 0 {
        // SAFETY: as above; releases the lease we just took.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Lease::Granted;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN | libc::EBUSY) => Lease::Refused,
        _ => Lease::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::{Command, Stdio};

    fn rotated(s: &str) -> bool {
        is_rotated_name(OsStr::new(s))
    }

    #[test]
    fn rotation_suffixes() {
        for live in [
            "access.log",
            "site.access.log",
            "access_log",
            "access.log.gz",
            "error-log",
            "access.log-2026",
            ".1",
            "-20261122",
        ] {
            assert!(!rotated(live), "{live} should be live");
        }
        for old in [
            "access.log.1",
            "access.log.2.gz",
            "access.log-20261122",
            "access.log-20261122.gz",
            "access.log.1.gz",
            "access.log.10.xz",
            "access.log-2026112215",
        ] {
            assert!(rotated(old), "{old} should be rotated");
        }
    }

    proptest! {
        #[test]
        fn numbered_suffix_is_rotated(stem in "[a-z_.]{0,10}[a-z_]", n in 0u32..1000, gz: bool) {
            let live = stem.clone();
            let mut old = format!("{stem}.{n}");
            if gz { old.push_str(".gz"); }
            prop_assert!(rotated(&old));
            prop_assert!(!rotated(&live));
        }
    }

    #[test]
    fn live_names_refused_unless_included() {
        let p = Path::new("/var/log/nginx/access.log");
        assert!(matches!(
            check_rotated(p, false),
            Err(RewriteError::LiveLog { .. })
        ));
        assert!(check_rotated(p, true).is_ok());
        assert!(check_rotated(Path::new("/x/access.log.1"), false).is_ok());
    }

    #[test]
    fn hard_links_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log.1");
        fs::write(&a, "x\n").unwrap();
        assert!(check_file(&a, &fs::metadata(&a).unwrap()).is_ok());
        fs::hard_link(&a, dir.path().join("b.log.1")).unwrap();
        let err = check_file(&a, &fs::metadata(&a).unwrap()).unwrap_err();
        assert!(
            matches!(err, RewriteError::HardLinked { links: 2, .. }),
            "{err}"
        );
        let d = dir.path().join("d.1");
        fs::create_dir(&d).unwrap();
        assert!(matches!(
            check_file(&d, &fs::metadata(&d).unwrap()),
            Err(RewriteError::NotRegular { .. })
        ));
    }

    #[test]
    fn symlinks_must_stay_inside_roots() {
        let inside = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let real_in = inside.path().join("real.log.1");
        let real_out = outside.path().join("other.log.1");
        fs::write(&real_in, "a\n").unwrap();
        fs::write(&real_out, "b\n").unwrap();
        let link_in = inside.path().join("link.log.1");
        let link_out = inside.path().join("escape.log.1");
        std::os::unix::fs::symlink(&real_in, &link_in).unwrap();
        std::os::unix::fs::symlink(&real_out, &link_out).unwrap();
        let roots = [inside.path().to_path_buf()];

        assert_eq!(check_symlink(&real_in, &roots).unwrap(), real_in);
        let got = check_symlink(&link_in, &roots).unwrap();
        assert_eq!(got, fs::canonicalize(&real_in).unwrap());
        let err = check_symlink(&link_out, &roots).unwrap_err();
        assert!(
            matches!(err, RewriteError::SymlinkOutsideRoots { .. }),
            "{err}"
        );
        assert!(check_symlink(&link_in, &[]).is_err());
    }

    #[test]
    fn open_elsewhere_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("held.log.1");
        fs::write(&p, "x\n").unwrap();
        let ours = File::open(&p).unwrap();
        assert!(check_not_open(&p, &ours).is_ok(), "only our own descriptor");

        let mut child = crate::child::spawn_child(
            Command::new("sleep")
                .arg("30")
                .stdin(Stdio::from(File::open(&p).unwrap())),
        )
        .unwrap();
        let res = check_not_open(&p, &ours);
        child.kill().unwrap();
        child.wait().unwrap();
        match res {
            Err(RewriteError::InUse {
                holder: Holder::Process { pid, .. },
                ..
            }) => assert_eq!(pid, child.id()),
            other => panic!("expected InUse by the child, got {other:?}"),
        }
        assert!(
            check_not_open(&p, &ours).is_ok(),
            "free again after the kill"
        );
    }

    #[test]
    fn lease_sees_a_second_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lease.log.1");
        fs::write(&p, "x\n").unwrap();
        let ours = File::open(&p).unwrap();
        // SAFETY: plain fcntl calls on our own descriptor; the lease is released at once.
        let supported = unsafe {
            let ok = libc::fcntl(ours.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) == 0;
            libc::fcntl(ours.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
            ok
        };
        if !supported {
            eprintln!("skipped: write leases unavailable here");
            return;
        }
        assert_eq!(try_lease(&ours), Lease::Granted);
        // A second descriptor stands in for a holder /proc cannot show (another namespace).
        let other = File::open(&p).unwrap();
        assert_eq!(try_lease(&ours), Lease::Refused);
        // Refused, the check still names the holder the scan finds: this process.
        match check_not_open(&p, &ours) {
            Err(RewriteError::InUse {
                holder: Holder::Process { pid, .. },
                ..
            }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected InUse by this process, got {other:?}"),
        }
        drop(other);
        assert_eq!(try_lease(&ours), Lease::Granted);
    }
}

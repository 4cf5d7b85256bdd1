//! `RunLock`: one logward run at a time rewrites files, enforced with `flock` on
//! `STATE_DIR/lock`.
//!
//! `flock` locks belong to the open file description, so the kernel drops the lock when the
//! holder exits, even by `kill -9`: a stale lock file is harmless and never needs removing.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::error::RewriteError;

/// Held for the life of a run; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    _file: File,
}

impl RunLock {
    /// Takes the lock without waiting: if another run holds it, fails at once with
    /// [`RewriteError::Locked`] naming the lock file.
    pub fn acquire(state_dir: &Path) -> Result<RunLock, RewriteError> {
        let path = state_dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(|e| RewriteError::io(&path, "open the lock file", e))?;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(RunLock { path, _file: file });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Err(RewriteError::Locked { path }),
                _ => return Err(RewriteError::io(&path, "lock the lock file", e)),
            }
        }
    }

    /// The lock file: `lock` in the state directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock file is never opened through a link (one planted in a state directory
    /// would make a root run create or truncate its target).
    #[test]
    fn a_link_at_the_lock_path_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, d.path().join("lock")).unwrap();
        assert!(RunLock::acquire(d.path()).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn second_acquire_fails_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(first.path(), dir.path().join("lock"));
        // flock conflicts between open file descriptions, even within one process.
        let err = RunLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, RewriteError::Locked { .. }));
        assert!(
            err.to_string()
                .contains("another logward run holds the lock")
        );
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn lock_held_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        // Take the lock here, then hand the only descriptor to a child: the lock lives on in
        // the child's open file description and dies with it.
        let held = RunLock::acquire(dir.path()).unwrap();
        let mut child = crate::child::spawn_child(
            std::process::Command::new("sleep")
                .arg("30")
                .stdin(std::process::Stdio::from(held._file)),
        )
        .unwrap();
        let res = RunLock::acquire(dir.path());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matches!(res, Err(RewriteError::Locked { .. })), "{res:?}");
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn missing_state_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = RunLock::acquire(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope/lock"), "{err}");
    }
}

//! `RewriteError`: every way replacing a file can fail or be refused, each naming the file.
//!
//! It does not decide anything: the checks live in `safety`, `atomic`, `lock` and `pipeline`.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Who keeps a file open, as far as logward can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Found by scanning `/proc/*/fd`: the process id and its command name.
    Process {
        /// The process id.
        pid: u32,
        /// Its command name (`/proc/PID/comm`).
        command: String,
    },
    /// The kernel refused a write lease: some open descriptor exists, possibly in a process
    /// logward cannot inspect (another user or PID namespace).
    Lease,
}

/// A refusal or failure while rewriting one file. The file on disk is untouched whenever
/// this is returned, except for [`RewriteError::Io`] with action [`SYNC_DIR`], which happens
/// after the rename (see there). `Display` names the file and the step; the operating
/// system's or the decompressor's reason is the `source()`.
#[derive(Debug)]
pub enum RewriteError {
    /// An operating-system call failed; `action` says which step.
    Io {
        /// The file.
        path: PathBuf,
        /// The step, as a verb phrase (`open the lock file`).
        action: &'static str,
        /// The error the call returned.
        source: io::Error,
    },
    /// Not a regular file (directory, device, fifo...).
    NotRegular {
        /// The file.
        path: PathBuf,
    },
    /// Some process still has the file open: it might still write to it, or read the
    /// full addresses after we replace it.
    InUse {
        /// The file.
        path: PathBuf,
        /// Who has it open.
        holder: Holder,
    },
    /// The name has no rotation suffix, so the web server probably still writes it.
    LiveLog {
        /// The file.
        path: PathBuf,
    },
    /// The file has other names: rewriting one would leave the full content under the others.
    HardLinked {
        /// The file.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },
    /// A symbolic link whose target lies outside the allowed roots.
    SymlinkOutsideRoots {
        /// The link.
        path: PathBuf,
        /// Where it points, resolved.
        target: PathBuf,
    },
    /// Not root and the file belongs to another user: the replacement could not keep its owner.
    ForeignOwner {
        /// The file.
        path: PathBuf,
        /// The owner's user id.
        uid: u32,
    },
    /// A compression format logward does not rewrite.
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The compression's name (`bzip2`).
        format: &'static str,
    },
    /// The input could not be read or decompressed at `line` (1-based): truncated or
    /// corrupt gzip, or a read error.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: u64,
        /// The error reading or decompressing.
        source: io::Error,
    },
    /// The transform put a newline inside line `line`, which would change the line count.
    TransformSplitLine {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: u64,
    },
    /// A rewritten line failed the caller's check at `line` (1-based), the written file read
    /// back did not hold what was produced, or the caller refused the result before the rename.
    VerifyFailed {
        /// The file.
        path: PathBuf,
        /// The line, from 1, where the check failed; 0 when no one line did.
        line: u64,
        /// What the check found.
        reason: &'static str,
    },
    /// The file changed (size, mtime or identity) while it was being rewritten.
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// Another logward run holds the run lock.
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

/// The `action` of the one error that can happen after the rename: the new content is in
/// place but its directory entry may not survive a power loss.
pub const SYNC_DIR: &str = "fsync the directory after the rename";

impl RewriteError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        RewriteError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// The file the error concerns.
    pub fn path(&self) -> &std::path::Path {
        use RewriteError::*;
        match self {
            Io { path, .. }
            | NotRegular { path }
            | InUse { path, .. }
            | LiveLog { path }
            | HardLinked { path, .. }
            | SymlinkOutsideRoots { path, .. }
            | ForeignOwner { path, .. }
            | Unsupported { path, .. }
            | Corrupt { path, .. }
            | TransformSplitLine { path, .. }
            | VerifyFailed { path, .. }
            | Changed { path }
            | Locked { path } => path,
        }
    }
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RewriteError::*;
        match self {
            Io { path, action, .. } => {
                write!(f, "{}: cannot {action}", crate::escape::path(path))
            }
            NotRegular { path } => write!(f, "{}: not a regular file", crate::escape::path(path)),
            InUse {
                path,
                holder: Holder::Process { pid, command },
            } => write!(
                f,
                "{}: refused: still open in process {pid} ({command})",
                crate::escape::path(path)
            ),
            InUse {
                path,
                holder: Holder::Lease,
            } => write!(
                f,
                "{}: refused: still open in another process (write lease denied)",
                crate::escape::path(path)
            ),
            LiveLog { path } => write!(
                f,
                "{}: refused: live log name (no rotation suffix); set include_active to rewrite it",
                crate::escape::path(path)
            ),
            HardLinked { path, links } => write!(
                f,
                "{}: refused: file has {links} hard links; the other names would keep the original content",
                crate::escape::path(path)
            ),
            SymlinkOutsideRoots { path, target } => write!(
                f,
                "{}: refused: symbolic link to {} outside the allowed roots",
                crate::escape::path(path),
                crate::escape::path(target)
            ),
            ForeignOwner { path, uid } => write!(
                f,
                "{}: refused: owned by uid {uid}; only root can rewrite it and keep its owner",
                crate::escape::path(path)
            ),
            Unsupported { path, format } => {
                write!(
                    f,
                    "{}: {format} compression is not supported",
                    crate::escape::path(path)
                )
            }
            Corrupt { path, line, .. } => write!(
                f,
                "{}:{line}: cannot read or decompress",
                crate::escape::path(path)
            ),
            TransformSplitLine { path, line } => write!(
                f,
                "{}:{line}: the rewritten line contains a newline",
                crate::escape::path(path)
            ),
            VerifyFailed { path, line, reason } => write!(
                f,
                "{}:{line}: verification of the rewritten file failed: {reason}",
                crate::escape::path(path)
            ),
            Changed { path } => write!(
                f,
                "{}: the file changed while it was being rewritten",
                crate::escape::path(path)
            ),
            Locked { path } => write!(
                f,
                "another logward run holds the lock ({})",
                crate::escape::path(path)
            ),
        }
    }
}

impl std::error::Error for RewriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RewriteError::Io { source, .. } | RewriteError::Corrupt { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file() {
        let e = RewriteError::HardLinked {
            path: "/var/log/a.log.1".into(),
            links: 2,
        };
        assert!(e.to_string().starts_with("/var/log/a.log.1: refused"));
        let e = RewriteError::Locked {
            path: "/var/lib/logward/lock".into(),
        };
        assert_eq!(
            e.to_string(),
            "another logward run holds the lock (/var/lib/logward/lock)"
        );
        assert_eq!(e.path(), std::path::Path::new("/var/lib/logward/lock"));
    }

    #[test]
    fn the_reason_is_the_source_not_the_message() {
        let e = RewriteError::io(
            "/var/log/a.log.1",
            "open",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        let reason = io::Error::from(io::ErrorKind::PermissionDenied).to_string();
        assert_eq!(e.to_string(), "/var/log/a.log.1: cannot open");
        assert_eq!(
            std::error::Error::source(&e).map(ToString::to_string),
            Some(reason.clone())
        );
        assert_eq!(
            crate::error::chain(&e).to_string(),
            format!("/var/log/a.log.1: cannot open: {reason}")
        );
        let e = RewriteError::Corrupt {
            path: "/var/log/a.log.2.gz".into(),
            line: 163,
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete deflate stream"),
        };
        assert_eq!(
            crate::error::chain(&e).to_string(),
            "/var/log/a.log.2.gz:163: cannot read or decompress: incomplete deflate stream"
        );
    }

    #[test]
    fn stays_small() {
        // Returned on every file; keep `Result` cheap to move.
        assert!(std::mem::size_of::<RewriteError>() <= 64);
    }
}

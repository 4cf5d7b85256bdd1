//! The evidence package of `logward search --evidence DIR`, for a CERT or a police request:
//! the directory (created 0700, or an empty one given; never through a symbolic link),
//! `evidence.log` (the matching lines as written, each after its file's absolute path and
//! line number) and `manifest.json` (what was asked, what was found, and the size and
//! SHA-256 of every input file and of `evidence.log`). Both files are created with
//! `O_EXCL` and `O_NOFOLLOW` inside the directory opened once, and synced; the manifest is
//! written last, so a package without one is incomplete.
//!
//! It does not search: the lines, their order and the input files' digests come from the
//! search and the scan pass ([`crate::scan::Options::digest`]).

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::Digest as _;

use super::SCHEMA_VERSION;

/// File name of the matching lines in an evidence package.
pub const LOG_NAME: &str = "evidence.log";
/// File name of the manifest in an evidence package.
pub const MANIFEST_NAME: &str = "manifest.json";
const LOG_CNAME: &CStr = c"evidence.log";
const MANIFEST_CNAME: &CStr = c"manifest.json";

/// An evidence package that cannot be made; every variant names the path.
#[derive(Debug)]
pub enum EvidenceError {
    /// The directory given exists and holds something.
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The directory given is a symbolic link.
    Link {
        /// The link.
        path: PathBuf,
    },
    /// The path given exists and is not a directory.
    NotDirectory {
        /// The path.
        path: PathBuf,
    },
    /// The directory was replaced between its checks and its opening.
    Replaced {
        /// The directory.
        path: PathBuf,
    },
    /// A file-system call failed; `action` says which step.
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The step, as a verb phrase (`create the evidence directory`).
        action: &'static str,
        /// The error the call returned.
        source: io::Error,
    },
}

impl std::fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::escape::path as shown;
        match self {
            EvidenceError::NotEmpty { path } => write!(
                f,
                "{}: the evidence directory is not empty; refused (give a new or empty one, \
                 so no package mixes with another)",
                shown(path)
            ),
            EvidenceError::Link { path } => write!(
                f,
                "{}: the evidence directory is a symbolic link; refused (give the real path)",
                shown(path)
            ),
            EvidenceError::NotDirectory { path } => {
                write!(f, "{}: exists and is not a directory; refused", shown(path))
            }
            EvidenceError::Replaced { path } => write!(
                f,
                "{}: the evidence directory was replaced while it was opened; refused",
                shown(path)
            ),
            EvidenceError::Io { path, action, .. } => {
                write!(f, "{}: cannot {action}", shown(path))
            }
        }
    }
}

impl std::error::Error for EvidenceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EvidenceError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> EvidenceError {
    let path = path.to_path_buf();
    move |source| EvidenceError::Io {
        path,
        action,
        source,
    }
}

/// The package's directory, open.
pub struct Package {
    /// Absolute.
    path: PathBuf,
    dir: File,
}

impl Package {
    /// Creates `dir` (mode 0700; its parent must exist), or takes it when it is an empty
    /// directory. Refuses a symbolic link, anything but a directory, and a directory that
    /// holds anything.
    pub fn create(dir: &Path) -> Result<Package, EvidenceError> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let path = std::path::absolute(dir).map_err(io_error(dir, "resolve the path"))?;
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            // Checked below, as a directory made a moment ago by someone else would be.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(&path, "create the evidence directory")(e)),
        }
        let own = std::fs::symlink_metadata(&path).map_err(io_error(&path, "inspect"))?;
        if own.file_type().is_symlink() {
            return Err(EvidenceError::Link { path });
        }
        if !own.is_dir() {
            return Err(EvidenceError::NotDirectory { path });
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        let dir = match opened {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(EvidenceError::Link { path });
            }
            Err(e) => return Err(io_error(&path, "open the evidence directory")(e)),
        };
        let meta = dir.metadata().map_err(io_error(&path, "inspect"))?;
        if (meta.dev(), meta.ino()) != (own.dev(), own.ino()) {
            return Err(EvidenceError::Replaced { path });
        }
        let mut entries =
            std::fs::read_dir(&path).map_err(io_error(&path, "list the evidence directory"))?;
        if entries.next().is_some() {
            return Err(EvidenceError::NotEmpty { path });
        }
        Ok(Package { path, dir })
    }

    /// The directory, absolute.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a new file in the directory: `O_EXCL` and `O_NOFOLLOW`, mode 0600, relative
    /// to the directory opened, so neither a planted link nor a renamed parent can send
    /// the data elsewhere.
    fn create_file(&self, name: &CStr) -> Result<File, EvidenceError> {
        use std::os::unix::io::{AsRawFd, FromRawFd};
        let path = self.path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        // SAFETY: openat with a descriptor we own and a NUL-terminated name; the returned
        // descriptor, when valid, is owned by nothing else and handed to one File.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io_error(&path, "create")(io::Error::last_os_error()));
        }
        // SAFETY: see above.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Writes `evidence.log`: for each line, in the order given, the path as logward shows
    /// paths (absolute, control characters escaped), `:`, the line number, `:`, the line's
    /// bytes as written, and a newline. Returns its size and SHA-256, taken as it is
    /// written.
    pub fn write_log<'l>(
        &self,
        lines: impl IntoIterator<Item = EvidenceLine<'l>>,
    ) -> Result<LogDigest, EvidenceError> {
        let path = self.path.join(LOG_NAME);
        let file = self.create_file(LOG_CNAME)?;
        let mut out = HashingWriter {
            inner: io::BufWriter::with_capacity(1 << 16, file),
            hasher: sha2::Sha256::new(),
            bytes: 0,
        };
        let mut count = 0u64;
        let mut prefix = Vec::with_capacity(256);
        let write = |out: &mut HashingWriter<_>, prefix: &mut Vec<u8>, line: EvidenceLine| {
            prefix.clear();
            prefix.extend_from_slice(crate::escape::path(line.path).as_bytes());
            write!(prefix, ":{}:", line.number)?;
            out.write_all(prefix)?;
            out.write_all(line.text)?;
            out.write_all(b"\n")
        };
        for line in lines {
            write(&mut out, &mut prefix, line).map_err(io_error(&path, "write"))?;
            count += 1;
        }
        out.flush().map_err(io_error(&path, "write"))?;
        let HashingWriter {
            inner,
            hasher,
            bytes,
        } = out;
        let file = inner
            .into_inner()
            .map_err(|e| io_error(&path, "write")(e.into_error()))?;
        file.sync_all().map_err(io_error(&path, "sync"))?;
        Ok(LogDigest {
            file: LOG_NAME,
            lines: count,
            size: bytes,
            sha256: crate::input::read::hex(&hasher.finalize()),
        })
    }

    /// Writes `manifest.json` (pretty JSON, printable ASCII only), syncs it and the
    /// directory: the package is complete.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), EvidenceError> {
        let path = self.path.join(MANIFEST_NAME);
        let json = serde_json::to_string_pretty(manifest)
            .map_err(|e| io_error(&path, "write")(io::Error::other(e)))?;
        let mut bytes = Vec::with_capacity(json.len() + 1);
        crate::escape::json_ascii(&json, &mut bytes);
        bytes.push(b'\n');
        let mut file = self.create_file(MANIFEST_CNAME)?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_error(&path, "write"))?;
        self.dir
            .sync_all()
            .map_err(io_error(&self.path, "sync the evidence directory"))
    }
}

/// One line of `evidence.log`.
#[derive(Clone, Copy, Debug)]
pub struct EvidenceLine<'a> {
    /// The file's absolute path.
    pub path: &'a Path,
    /// 1-based line number in the file.
    pub number: u64,
    /// The line as written, without its line terminator.
    pub text: &'a [u8],
}

/// A writer that hashes what it writes.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `evidence.log` as written.
#[derive(Clone, Debug, Serialize)]
pub struct LogDigest {
    /// Its name in the package: `evidence.log`.
    pub file: &'static str,
    /// Lines it holds.
    pub lines: u64,
    /// Bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`]: it changes when a field changes meaning or goes away.
    pub schema_version: u32,
    /// The version of logward that made the package.
    pub logward_version: &'static str,
    /// RFC 3339 UTC time the package was made.
    pub created: String,
    /// The host name of the machine that made it.
    pub host: String,
    /// What was asked.
    pub query: Query,
    /// What was found.
    pub found: Found,
    /// Every file searched, in input order.
    pub files: Vec<InputFile>,
    /// The log of matching lines.
    pub evidence_log: LogDigest,
}

impl Manifest {
    /// The manifest of a package made at `created` (Unix seconds) on this host, by this
    /// version of logward.
    pub fn new(
        created: i64,
        query: Query,
        found: Found,
        files: Vec<InputFile>,
        evidence_log: LogDigest,
    ) -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION,
            logward_version: env!("CARGO_PKG_VERSION"),
            created: crate::timefmt::rfc3339(created),
            host: host_name(),
            query,
            found,
            files,
            evidence_log,
        }
    }
}

/// What was asked.
#[derive(Clone, Debug, Serialize)]
pub struct Query {
    /// The `--source` values as given.
    pub sources: Vec<String>,
    /// `--since` as an RFC 3339 UTC time, when given.
    pub since: Option<String>,
    /// `--until` as an RFC 3339 UTC time, when given.
    pub until: Option<String>,
    /// The `--vhost` value, when given.
    pub vhost: Option<String>,
}

/// What was found.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    /// Lines found.
    pub lines: u64,
    /// The earliest time of the lines found (RFC 3339 UTC); `null` when none has a time.
    pub first: Option<String>,
    /// The latest time of the lines found, as `first`.
    pub last: Option<String>,
    /// Lines found that have no time (lines the format could not parse).
    pub lines_without_time: u64,
}

impl Found {
    /// The summary of lines found with these times.
    pub fn new(times: impl IntoIterator<Item = Option<i64>>) -> Found {
        let (mut lines, mut without, mut first, mut last) = (0, 0, None::<i64>, None::<i64>);
        for t in times {
            lines += 1;
            match t {
                None => without += 1,
                Some(t) => {
                    first = Some(first.map_or(t, |f| f.min(t)));
                    last = Some(last.map_or(t, |l| l.max(t)));
                }
            }
        }
        Found {
            lines,
            first: first.map(crate::timefmt::rfc3339),
            last: last.map(crate::timefmt::rfc3339),
            lines_without_time: without,
        }
    }
}

/// One input file.
#[derive(Clone, Debug, Serialize)]
pub struct InputFile {
    /// Absolute.
    pub path: String,
    /// The format its lines were read in, `null` when none could be chosen.
    pub format: Option<String>,
    /// `none` or `gzip`.
    pub compression: Option<&'static str>,
    /// Lines read from the file.
    pub lines_read: u64,
    /// Of those, lines about the sources, in the window and on the host asked for.
    pub lines_matched: u64,
    /// Bytes read from the file as stored (compressed bytes for gzip): what `sha256`
    /// covers. `null` when the file could not be read.
    pub size: Option<u64>,
    /// SHA-256 of those bytes, lower-case hex.
    pub sha256: Option<String>,
    /// The file changed while it was read (a live log being written): `size` and `sha256`
    /// cover its first `size` bytes as they were read.
    pub changed_while_read: bool,
    /// Why the file could not be read, or where reading broke off.
    pub error: Option<String>,
}

/// The machine's host name; empty when it cannot be had.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer given.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_refuses_links_files_and_full_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let full = tmp.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("x"), b"x").unwrap();
        assert!(matches!(
            Package::create(&full),
            Err(EvidenceError::NotEmpty { .. })
        ));
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::os::unix::fs::symlink(&empty, tmp.path().join("link")).unwrap();
        assert!(matches!(
            Package::create(&tmp.path().join("link")),
            Err(EvidenceError::Link { .. })
        ));
        assert!(matches!(
            Package::create(&full.join("x")),
            Err(EvidenceError::NotDirectory { .. })
        ));
        assert!(Package::create(&empty).is_ok());
    }

    #[test]
    fn the_log_is_hashed_as_written_and_never_written_twice() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let pkg = Package::create(&tmp.path().join("case")).unwrap();
        let mode = std::fs::metadata(pkg.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let lines = [
            EvidenceLine {
                path: Path::new("/var/log/a\nb.log"),
                number: 7,
                text: b"1.2.3.4 \xff\r",
            },
            EvidenceLine {
                path: Path::new("/var/log/access.log"),
                number: 12,
                text: b"x",
            },
        ];
        let digest = pkg.write_log(lines).unwrap();
        let written = std::fs::read(pkg.path().join(LOG_NAME)).unwrap();
        assert_eq!(
            written,
            b"/var/log/a\\x0ab.log:7:1.2.3.4 \xff\r\n/var/log/access.log:12:x\n"
        );
        assert_eq!(digest.lines, 2);
        assert_eq!(digest.size, written.len() as u64);
        assert_eq!(
            digest.sha256,
            crate::input::read::hex(&sha2::Sha256::digest(&written))
        );
        let mode = std::fs::metadata(pkg.path().join(LOG_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(pkg.write_log([]).is_err(), "evidence.log is never replaced");
    }

    #[test]
    fn found_spans_the_earliest_and_latest_time() {
        let f = Found::new([Some(200), None, Some(100), Some(300)]);
        assert_eq!((f.lines, f.lines_without_time), (4, 1));
        assert_eq!(f.first.as_deref(), Some("1970-01-01T00:01:40Z"));
        assert_eq!(f.last.as_deref(), Some("1970-01-01T00:05:00Z"));
        let none = Found::new([]);
        assert_eq!((none.lines, none.first), (0, None));
    }
}

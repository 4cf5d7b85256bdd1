//! The append-only audit log of requests about a source (`search`, erasure): one JSON line
//! per run in `audit.log` in the state directory, so a hoster can show what was done for a
//! request. For an erasure the searched addresses are never written in clear: the entry
//! holds a keyed hash made with a random key kept beside the log (`audit.key`, mode 0600).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::anonymize::cryptopan::CryptoPan;
use crate::anonymize::key::{Key, KeyError, generate_key_file, load_key_file};

pub const LOG_NAME: &str = "audit.log";
pub const KEY_NAME: &str = "audit.key";

/// One audit entry.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 UTC wall-clock time of the run.
    pub time: String,
    /// `search` or `erase`.
    pub command: &'a str,
    /// The sources as given, or their keyed hashes (`hmac:...`) for an erasure.
    pub sources: Vec<String>,
    /// Files read or rewritten.
    pub files: Vec<String>,
    /// Lines found (search) or changed (erase).
    pub lines: u64,
    /// Anything else worth keeping (store entries removed, files refused).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub enum AuditError {
    Key(KeyError),
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::Key(e) => write!(f, "audit key: {e}"),
            AuditError::Write { path, source } => write!(
                f,
                "{}: cannot append to the audit log: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for AuditError {}

/// The audit log of one state directory.
pub struct AuditLog {
    dir: PathBuf,
}

impl AuditLog {
    pub fn new(state_dir: &Path) -> AuditLog {
        AuditLog {
            dir: state_dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(LOG_NAME)
    }

    /// The key for hashing erased sources, created on first use.
    fn key(&self) -> Result<Key, AuditError> {
        let path = self.dir.join(KEY_NAME);
        if path.exists() {
            load_key_file(&path).map_err(AuditError::Key)
        } else {
            generate_key_file(&path).map_err(AuditError::Key)
        }
    }

    /// A keyed hash of a source as given, for entries that must not hold it in clear. The
    /// same source always gives the same hash in one state directory, so an auditor who
    /// knows the address can confirm an entry, and nobody else can read it.
    pub fn hash_source(&self, source: &str) -> Result<String, AuditError> {
        let pan = CryptoPan::new(&self.key()?);
        Ok(format!(
            "hmac:{:016x}",
            pan.host_hash(source.trim().as_bytes())
        ))
    }

    /// Appends one entry as a JSON line (file mode 0600, opened for appending only).
    pub fn append(&self, entry: &Entry<'_>) -> Result<(), AuditError> {
        let path = self.path();
        let fail = |source| AuditError::Write {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        let mut line = serde_json::to_vec(entry).map_err(|e| fail(e.into()))?;
        line.push(b'\n');
        file.write_all(&line).map_err(fail)?;
        file.sync_data().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_append_and_erased_sources_are_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        let hashed = log.hash_source("203.0.113.7").unwrap();
        assert!(hashed.starts_with("hmac:") && !hashed.contains("203.0.113.7"));
        assert_eq!(
            hashed,
            log.hash_source("203.0.113.7").unwrap(),
            "stable within a state dir"
        );
        assert_ne!(hashed, log.hash_source("203.0.113.8").unwrap());
        for command in ["search", "erase"] {
            let entry = Entry {
                time: "2026-11-22T00:00:00Z".into(),
                command,
                sources: vec![hashed.clone()],
                files: vec!["/var/log/nginx/access.log.1".into()],
                lines: 3,
                notes: vec![],
            };
            log.append(&entry).unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(!text.contains("203.0.113.7"));
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["command"], "search");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A second key is not made: the hash is the same from a new AuditLog.
        assert_eq!(
            AuditLog::new(dir.path())
                .hash_source("203.0.113.7")
                .unwrap(),
            hashed
        );
    }
}

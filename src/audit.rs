//! The append-only audit log of requests about a source (`search`, erasure) and of changes
//! to the allowlist (`allow add`, `allow remove`, with who and why): one JSON line per run
//! in `audit.log` in the state directory, so a hoster can show what was done and why. No
//! entry holds an address in clear: each source is recorded as HMAC-SHA256 (RFC 2104,
//! FIPS 180-4) of its canonical text under a key that lives apart from the log
//! (`audit_key`; by default `/etc/logward/audit.key` for root, else
//! `$XDG_CONFIG_HOME/logward/audit.key`), so whoever can read the log cannot hash the whole
//! IPv4 space to read it back. [`AuditLog::verify`] answers whether entries concern an
//! address, for an auditor who knows it. Entries written by earlier versions (sources in
//! clear, or labelled `hmac:` though made with an AES CBC-MAC) are rewritten once, through
//! the atomic replace logward uses for its state files.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use serde::Serialize;

use crate::anonymize::key::{Key, KeyError, generate_key_file, load_key_file};

/// File name of the audit log in the state directory.
pub(crate) const LOG_NAME: &str = "audit.log";
/// The key file of earlier versions, beside the log; no longer used.
pub const OLD_KEY_NAME: &str = "audit.key";
/// The label of a hashed source.
pub const LABEL: &str = "hmac-sha256:";
/// The label earlier entries' values are given by the migration: what they really were.
pub const OLD_LABEL: &str = "aes-cbc-mac:";

/// One audit entry.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 UTC wall-clock time of the run.
    pub time: String,
    /// `search`, `erase`, `allow add` or `allow remove`.
    pub command: &'a str,
    /// The sources' keyed hashes (`hmac-sha256:...`), never the addresses.
    pub sources: Vec<String>,
    /// Files read or rewritten.
    pub files: Vec<String>,
    /// Lines found (search) or changed (erase).
    pub lines: u64,
    /// Anything else worth keeping (store entries removed, files refused).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Who ran the command ([`current_user`]), where the entry records a decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why, in the words of whoever ran it (`allow add --note`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why the audit log or its key cannot be used, naming the file; the cause (a key file's
/// error, the operating system's reason) is the `source()`.
#[derive(Debug)]
pub enum AuditError {
    /// The key file could not be loaded or created.
    Key(KeyError),
    /// The log, or the key's directory, could not be created or written.
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The error writing it.
        source: std::io::Error,
    },
    /// The key sits where readers of the log can read it too.
    KeyBesideLog {
        /// The key file.
        key: PathBuf,
    },
    /// The log exists but could not be read.
    Read {
        /// The audit log.
        path: PathBuf,
        /// The error reading it.
        source: std::io::Error,
    },
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::Key(_) => f.write_str("audit key"),
            AuditError::Write { path, .. } => {
                write!(f, "{}: cannot write the audit log", path.display())
            }
            AuditError::KeyBesideLog { key } => write!(
                f,
                "{}: the audit key is in the state directory, beside the audit log: whoever \
                 can read one can read the other and hash every IPv4 address to read the log; \
                 keep it apart (audit_key in the config, or $LOGWARD_AUDIT_KEY)",
                key.display()
            ),
            AuditError::Read { path, .. } => {
                write!(f, "{}: cannot read the audit log", path.display())
            }
        }
    }
}

impl std::error::Error for AuditError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuditError::Key(e) => Some(e),
            AuditError::Write { source, .. } | AuditError::Read { source, .. } => Some(source),
            AuditError::KeyBesideLog { .. } => None,
        }
    }
}

/// The audit log of one state directory, and where its key is.
pub struct AuditLog {
    dir: PathBuf,
    key_path: PathBuf,
}

/// The default key file: under `/etc/logward` for root, else the user's configuration
/// directory; apart from the state directory either way.
pub fn default_key_path() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/etc/logward/audit.key"));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(config.join("logward").join("audit.key"))
}

/// Who runs this process, for the record: the login name that ran sudo (`$SUDO_USER`),
/// else `$USER`, else `$LOGNAME`, else `uid N`. Taken from the environment, so it names
/// whoever the session says it is; the uid is the fallback, not a check.
pub fn current_user() -> String {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    user_from(|name| std::env::var_os(name), uid)
}

/// [`current_user`] with the environment given by `var`.
fn user_from(var: impl Fn(&str) -> Option<std::ffi::OsString>, uid: u32) -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .filter_map(|name| var(name))
        .map(|v| v.to_string_lossy().trim().to_string())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The canonical text of a source, so every spelling of one address or network hashes the
/// same: `203.0.113.7`, `::ffff:203.0.113.7` and `203.0.113.7/32` are one source.
pub fn canonical_source(source: &str) -> String {
    let t = source.trim();
    let net = t
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| t.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from));
    match net {
        Some(n) => {
            let addr = n.addr().to_canonical();
            let bits = match (n.addr(), addr) {
                (std::net::IpAddr::V6(_), std::net::IpAddr::V4(_)) => {
                    n.prefix_len().saturating_sub(96)
                }
                _ => n.prefix_len(),
            };
            match ipnet::IpNet::new(addr, bits) {
                Ok(n) => n.trunc().to_string(),
                Err(_) => t.to_string(),
            }
        }
        None => t.to_string(),
    }
}

impl AuditLog {
    /// The log in `state_dir`, hashing with the key at `key_path`.
    pub fn with_key(state_dir: &Path, key_path: &Path) -> AuditLog {
        AuditLog {
            dir: state_dir.to_path_buf(),
            key_path: key_path.to_path_buf(),
        }
    }

    /// The log file: `audit.log` in the state directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join(LOG_NAME)
    }

    /// The key, created (mode 0600) on first use. Refused when it is
    /// in the state directory, beside the log.
    fn key(&self) -> Result<Key, AuditError> {
        let key_dir = self.key_path.parent().unwrap_or(Path::new("."));
        let same = match (
            std::fs::canonicalize(key_dir),
            std::fs::canonicalize(&self.dir),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same {
            return Err(AuditError::KeyBesideLog {
                key: self.key_path.clone(),
            });
        }
        if self.key_path.exists() {
            load_key_file(&self.key_path).map_err(AuditError::Key)
        } else {
            if !key_dir.as_os_str().is_empty() && !key_dir.exists() {
                use std::os::unix::fs::DirBuilderExt;
                // 0755: /etc/logward also holds the config, which users may read; the key
                // file itself is 0600.
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(key_dir)
                    .map_err(|source| AuditError::Write {
                        path: key_dir.to_path_buf(),
                        source,
                    })?;
            }
            generate_key_file(&self.key_path).map_err(AuditError::Key)
        }
    }

    fn hash_with(key: &Key, source: &str) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.bytes())
            .expect("HMAC takes a key of any length");
        mac.update(canonical_source(source).as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(LABEL.len() + 64);
        out.push_str(LABEL);
        for b in tag {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// The keyed hash of a source: the same for every spelling of it under one key, so an
    /// auditor who knows the address can confirm an entry, and nobody else can read it.
    pub fn hash_source(&self, source: &str) -> Result<String, AuditError> {
        Ok(Self::hash_with(&self.key()?, source))
    }

    /// The log's text; empty when there is no log yet.
    fn read(&self) -> Result<String, AuditError> {
        let path = self.path();
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(AuditError::Read { path, source }),
        }
    }

    /// Rewrites, once, entries of earlier versions: a source in clear becomes its keyed
    /// hash, an `hmac:` value (an AES CBC-MAC) is relabelled `aes-cbc-mac:`. Returns how
    /// many entries changed. The file is replaced atomically (temporary, fsync, rename).
    pub fn migrate(&self) -> Result<usize, AuditError> {
        let path = self.path();
        let text = self.read()?;
        let needs = |v: &str| !v.starts_with(LABEL) && !v.starts_with(OLD_LABEL);
        if !text.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["sources"].as_array().cloned())
                .is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(needs)))
        }) {
            return Ok(0);
        }
        let key = self.key()?;
        let mut out = String::with_capacity(text.len());
        let mut changed = 0;
        for line in text.lines() {
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line) else {
                out.push_str(line);
                out.push('\n');
                continue;
            };
            let mut touched = false;
            if let Some(sources) = v["sources"].as_array_mut() {
                for s in sources.iter_mut() {
                    let Some(text) = s.as_str() else { continue };
                    if let Some(rest) = text.strip_prefix("hmac:") {
                        *s = serde_json::Value::String(format!("{OLD_LABEL}{rest}"));
                        touched = true;
                    } else if needs(text) {
                        *s = serde_json::Value::String(Self::hash_with(&key, text));
                        touched = true;
                    }
                }
            }
            if touched {
                changed += 1;
                out.push_str(&v.to_string());
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        crate::rewrite::write_small_file(&path, out.as_bytes(), true)
            .map_err(|source| AuditError::Write { path, source })?;
        Ok(changed)
    }

    /// The entries (1-based line number and the entry) that concern `source`: those whose
    /// sources hold its keyed hash.
    pub fn verify(&self, source: &str) -> Result<Vec<(usize, serde_json::Value)>, AuditError> {
        let hash = self.hash_source(source)?;
        let text = self.read()?;
        Ok(text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                let hit = v["sources"]
                    .as_array()?
                    .iter()
                    .any(|s| s.as_str() == Some(hash.as_str()));
                hit.then_some((i + 1, v))
            })
            .collect())
    }

    /// Appends one entry as a JSON line (file mode 0600, opened for appending only).
    pub fn append(&self, entry: &Entry<'_>) -> Result<(), AuditError> {
        self.migrate()?;
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

    fn log_in(dir: &Path) -> AuditLog {
        AuditLog::with_key(&dir.join("state"), &dir.join("keys/audit.key"))
    }

    #[test]
    fn sources_are_hashed_with_hmac_sha256_whatever_their_spelling() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let log = log_in(dir.path());
        let hashed = log.hash_source("203.0.113.7").unwrap();
        assert!(
            hashed.starts_with(LABEL) && hashed.len() == LABEL.len() + 64,
            "{hashed}"
        );
        for same in ["::ffff:203.0.113.7", "203.0.113.7/32", " 203.0.113.7 "] {
            assert_eq!(log.hash_source(same).unwrap(), hashed, "{same}");
        }
        assert_ne!(hashed, log.hash_source("203.0.113.8").unwrap());
        assert_eq!(
            log.hash_source("2001:db8::1").unwrap(),
            log.hash_source("2001:0db8:0:0:0:0:0:1").unwrap()
        );
        // The key is apart, 0600, and one key is made.
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("keys/audit.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            log_in(dir.path()).hash_source("203.0.113.7").unwrap(),
            hashed
        );
        // Known answer: HMAC-SHA256 of the canonical text under the key in the file.
        let k = load_key_file(&key).unwrap();
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(k.bytes()).unwrap();
        mac.update(b"203.0.113.7/32");
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hashed, format!("{LABEL}{want}"));
    }

    #[test]
    fn the_user_is_who_ran_sudo_else_the_login_else_the_uid() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(
            user_from(env(&[("SUDO_USER", "alice"), ("USER", "root")]), 0),
            "alice"
        );
        assert_eq!(
            user_from(env(&[("USER", "bob"), ("LOGNAME", "x")]), 7),
            "bob"
        );
        assert_eq!(
            user_from(env(&[("SUDO_USER", " "), ("LOGNAME", "carol")]), 7),
            "carol"
        );
        assert_eq!(user_from(env(&[]), 1001), "uid 1001");
    }

    /// RFC 4231 test case 2, so the MAC is the standard one.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let got: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            got,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_key_beside_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::with_key(dir.path(), &dir.path().join("audit.key"));
        let err = log.hash_source("203.0.113.7").unwrap_err();
        assert!(matches!(err, AuditError::KeyBesideLog { .. }), "{err}");
    }

    #[test]
    fn a_key_that_cannot_be_read_is_the_source_of_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let key = dir.path().join("keys");
        std::fs::create_dir_all(&key).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let err = AuditLog::with_key(&state, &key)
            .hash_source("203.0.113.7")
            .unwrap_err();
        assert_eq!(err.to_string(), "audit key");
        let cause = std::error::Error::source(&err).expect("the key's error");
        assert!(cause.downcast_ref::<KeyError>().is_some(), "{cause}");
        let text = crate::error::chain(&err).to_string();
        let reason = std::io::Error::from_raw_os_error(libc::EISDIR).to_string();
        assert_eq!(
            text,
            format!(
                "audit key: {}: cannot read key file: {reason}",
                key.display()
            )
        );
    }

    /// Regression: search entries held `"sources":["IP"]` in clear, and erasure entries
    /// were labelled `hmac:` though made with an AES CBC-MAC. One migration rewrites both;
    /// verify then finds the entries of an address.
    #[test]
    fn old_entries_are_migrated_once_and_verify_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let old = concat!(
            r#"{"time":"2026-11-22T00:00:00Z","command":"search","sources":["203.0.113.7"],"files":[],"lines":3}"#,
            "\n",
            r#"{"time":"2026-11-22T00:01:00Z","command":"erase","sources":["hmac:00112233aabbccdd"],"files":[],"lines":3}"#,
            "\n"
        );
        std::fs::write(state.join(LOG_NAME), old).unwrap();
        let log = log_in(dir.path());
        assert_eq!(log.migrate().unwrap(), 2);
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains("203.0.113.7"), "{text}");
        assert!(
            text.contains(&format!("{OLD_LABEL}00112233aabbccdd")),
            "{text}"
        );
        assert_eq!(log.migrate().unwrap(), 0, "once");
        let entry = Entry {
            time: "2026-11-23T00:00:00Z".into(),
            command: "erase",
            sources: vec![log.hash_source("::ffff:203.0.113.7").unwrap()],
            files: vec![],
            lines: 1,
            notes: vec![],
            user: None,
            note: None,
        };
        log.append(&entry).unwrap();
        let found = log.verify("203.0.113.7").unwrap();
        assert_eq!(found.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 3]);
        assert!(log.verify("203.0.113.8").unwrap().is_empty());
    }
}

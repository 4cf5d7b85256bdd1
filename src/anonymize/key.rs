//! The pseudonymization key and its file: 64 hex characters (32 bytes), readable by its
//! owner only. Owns loading, validating and generating key files; what the key drives is
//! `cryptopan.rs`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::format::addr::hex_value;

/// A 32-byte Crypto-PAn key: the first 16 bytes are the AES-128 key, the last 16 the pad
/// seed. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why key text is not a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// Not 64 characters once surrounding whitespace is removed; carries the length found.
    Length(usize),
    /// A character that is not a hex digit, at this byte offset of the trimmed text.
    NotHex(usize),
}

impl fmt::Display for KeyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFormat::Length(n) => write!(f, "expected 64 hex characters, found {n}"),
            KeyFormat::NotHex(at) => write!(f, "character {} is not a hex digit", at + 1),
        }
    }
}

/// A key file that cannot be used, naming the file; the operating system's reason, if
/// any, is the `source()`.
#[derive(Debug)]
pub enum KeyError {
    /// The file does not exist.
    Missing {
        /// The key file.
        path: PathBuf,
    },
    /// The file exists but could not be opened, inspected or read.
    Unreadable {
        /// The key file.
        path: PathBuf,
        /// The error opening, inspecting or reading it.
        source: io::Error,
    },
    /// The file is readable or writable by group or others (`mode & 0o077 != 0`).
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its full `st_mode`, file type bits included.
        mode: u32,
    },
    /// The file's text is not 64 hex digits.
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with the text.
        reason: KeyFormat,
    },
    /// `generate_key_file` refuses to overwrite an existing file.
    Exists {
        /// The file that already exists.
        path: PathBuf,
    },
    /// [`generate_key_file`] could not create or write the file.
    Write {
        /// The key file.
        path: PathBuf,
        /// The error creating, writing or syncing it.
        source: io::Error,
    },
    /// Reading `/dev/urandom` failed.
    Random {
        /// The error opening or reading `/dev/urandom`.
        source: io::Error,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Missing { path } => write!(f, "{}: key file not found", path.display()),
            KeyError::Unreadable { path, .. } => {
                write!(f, "{}: cannot read key file", path.display())
            }
            KeyError::TooOpen { path, mode } => write!(
                f,
                "{}: key file mode is {:04o}; it must not be accessible by group or others (chmod 600)",
                path.display(),
                mode & 0o7777
            ),
            KeyError::Malformed { path, reason } => {
                write!(f, "{}: not a key file: {reason}", path.display())
            }
            KeyError::Exists { path } => write!(
                f,
                "{}: already exists; refusing to overwrite a key",
                path.display()
            ),
            KeyError::Write { path, .. } => {
                write!(f, "{}: cannot write key file", path.display())
            }
            KeyError::Random { .. } => f.write_str("/dev/urandom: cannot read"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Unreadable { source, .. }
            | KeyError::Write { source, .. }
            | KeyError::Random { source } => Some(source),
            _ => None,
        }
    }
}

impl Key {
    /// A key from its 32 raw bytes: the AES key, then the pad seed.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// The key's 32 raw bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits (either case), ignoring surrounding ASCII whitespace.
    pub fn from_hex(text: &[u8]) -> Result<Key, KeyFormat> {
        let text = text.trim_ascii();
        if text.len() != 64 {
            return Err(KeyFormat::Length(text.len()));
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let hi = hex_value(text[2 * i]).ok_or(KeyFormat::NotHex(2 * i))?;
            let lo = hex_value(text[2 * i + 1]).ok_or(KeyFormat::NotHex(2 * i + 1))?;
            *byte = hi << 4 | lo;
        }
        Ok(Key(bytes))
    }

    /// The key as 64 lowercase hex digits.
    pub fn to_hex(&self) -> [u8; 64] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        out
    }
}

/// Reads a key file. The mode is checked on the opened file, not the path, so the file
/// checked is the file read.
pub fn load_key_file(path: &Path) -> Result<Key, KeyError> {
    let mut file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => KeyError::Missing {
            path: path.to_path_buf(),
        },
        _ => KeyError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let unreadable = |source| KeyError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let meta = file.metadata().map_err(unreadable)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    // A key file is 65 bytes; read a little more than that so a wrong file (a log, a
    // binary) is refused as too long without being read whole.
    let mut text = Vec::with_capacity(256);
    (&mut file)
        .take(4096)
        .read_to_end(&mut text)
        .map_err(unreadable)?;
    Key::from_hex(&text).map_err(|reason| KeyError::Malformed {
        path: path.to_path_buf(),
        reason,
    })
}

/// Creates a new key file from 32 bytes of `/dev/urandom`: hex and a newline, mode 0600.
/// Refuses to overwrite an existing file, because replacing a key silently would make
/// every later pseudonym disagree with the earlier ones.
pub fn generate_key_file(path: &Path) -> Result<Key, KeyError> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| KeyError::Random { source })?;
    let key = Key(bytes);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_path_buf(),
            },
            _ => KeyError::Write {
                path: path.to_path_buf(),
                source,
            },
        })?;
    let write = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut text = [0u8; 65];
    text[..64].copy_from_slice(&key.to_hex());
    text[64] = b'\n';
    file.write_all(&text).map_err(write)?;
    file.sync_all().map_err(write)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const HEX: &str = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202";

    fn write_key(dir: &Path, name: &str, text: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn parses_hex_with_surrounding_whitespace() {
        let key = Key::from_hex(format!("  {HEX}\n").as_bytes()).unwrap();
        assert_eq!(key.bytes()[0], 0x15);
        assert_eq!(key.bytes()[31], 0x02);
        assert_eq!(&key.to_hex()[..], HEX.as_bytes());
        let upper = Key::from_hex(HEX.to_uppercase().as_bytes()).unwrap();
        assert_eq!(upper, key);
        assert_eq!(format!("{key:?}"), "Key(..)");
    }

    #[test]
    fn refuses_malformed_text() {
        assert_eq!(
            Key::from_hex(&HEX.as_bytes()[..63]),
            Err(KeyFormat::Length(63))
        );
        assert_eq!(Key::from_hex(b""), Err(KeyFormat::Length(0)));
        let mut bad = HEX.as_bytes().to_vec();
        bad[10] = b'g';
        assert_eq!(Key::from_hex(&bad), Err(KeyFormat::NotHex(10)));
        let mut inner_space = HEX.as_bytes().to_vec();
        inner_space[32] = b' ';
        assert_eq!(Key::from_hex(&inner_space), Err(KeyFormat::NotHex(32)));
    }

    #[test]
    fn loads_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), "k", format!("{HEX}\n").as_bytes(), 0o600);
        assert_eq!(
            load_key_file(&path).unwrap(),
            Key::from_hex(HEX.as_bytes()).unwrap()
        );
        let path = write_key(dir.path(), "ro", HEX.as_bytes(), 0o400);
        assert!(load_key_file(&path).is_ok());
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let err = load_key_file(&missing).unwrap_err();
        assert!(matches!(err, KeyError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("none"), "{err}");

        let open = write_key(dir.path(), "open", HEX.as_bytes(), 0o640);
        let err = load_key_file(&open).unwrap_err();
        assert!(
            matches!(err, KeyError::TooOpen { mode, .. } if mode & 0o777 == 0o640),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("open") && err.to_string().contains("0640"),
            "{err}"
        );
        let world = write_key(dir.path(), "world", HEX.as_bytes(), 0o604);
        assert!(matches!(
            load_key_file(&world),
            Err(KeyError::TooOpen { .. })
        ));

        let short = write_key(dir.path(), "short", b"abcd\n", 0o600);
        let err = load_key_file(&short).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::Malformed {
                    reason: KeyFormat::Length(4),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("short"), "{err}");

        let big = write_key(dir.path(), "big", &vec![b'a'; 10_000], 0o600);
        assert!(matches!(
            load_key_file(&big),
            Err(KeyError::Malformed { .. })
        ));

        // A directory opens but cannot be read as a key.
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
        let err = load_key_file(&sub).unwrap_err();
        assert!(matches!(err, KeyError::Unreadable { .. }), "{err:?}");
        // The reason comes from source() alone, so a chain prints it once.
        let reason = io::Error::from_raw_os_error(libc::EISDIR).to_string();
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string),
            Some(reason.clone())
        );
        assert_eq!(
            err.to_string(),
            format!("{}: cannot read key file", sub.display())
        );
        assert_eq!(
            crate::error::chain(&err)
                .to_string()
                .matches(&reason)
                .count(),
            1
        );
    }

    #[test]
    fn generates_a_private_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let key = generate_key_file(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = fs::read(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert_eq!(text[64], b'\n');
        assert_eq!(load_key_file(&path).unwrap(), key);

        let err = generate_key_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err:?}");
        assert_eq!(
            load_key_file(&path).unwrap(),
            key,
            "existing key was changed"
        );

        let other = generate_key_file(&dir.path().join("key2")).unwrap();
        assert_ne!(other, key, "two generated keys are equal");
    }
}

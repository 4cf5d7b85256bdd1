//! Where the store lives, and with it logward's state directory (ledgers, positions and
//! the audit log sit beside the database).
//!
//! Order: explicit path, `$LOGWARD_STORE`, the config value, `/var/lib/logward/logward.db`
//! when that directory is usable, else `$XDG_STATE_HOME/logward/logward.db`
//! (<https://specifications.freedesktop.org/basedir-spec/latest/>), whose default is
//! `~/.local/state`, so a first run works without root.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The system-wide state directory tried before the per-user one.
pub const SYSTEM_DIR: &str = "/var/lib/logward";
/// The database file name inside a state directory.
pub const DB_NAME: &str = "logward.db";

/// The inputs of path resolution, gathered so the rules can be tested without touching
/// the real environment.
#[derive(Clone, Debug, Default)]
pub struct PathInputs {
    /// The path given with `--store`.
    pub explicit: Option<PathBuf>,
    /// `$LOGWARD_STORE`.
    pub env_store: Option<OsString>,
    /// `store` from the config file.
    pub config: Option<PathBuf>,
    /// The system directory; [`SYSTEM_DIR`] outside tests.
    pub system_dir: PathBuf,
    /// `$XDG_STATE_HOME`; ignored unless absolute.
    pub xdg_state_home: Option<OsString>,
    /// `$HOME`.
    pub home: Option<OsString>,
}

impl PathInputs {
    /// The inputs taken from this process's environment.
    pub fn from_env(explicit: Option<&Path>, config: Option<&Path>) -> PathInputs {
        PathInputs {
            explicit: explicit.map(Path::to_path_buf),
            env_store: std::env::var_os("LOGWARD_STORE"),
            config: config.map(Path::to_path_buf),
            system_dir: PathBuf::from(SYSTEM_DIR),
            xdg_state_home: std::env::var_os("XDG_STATE_HOME"),
            home: std::env::var_os("HOME"),
        }
    }

    /// The database path these inputs select, or `None` when nothing is set and there is
    /// no home directory to fall back on.
    pub fn resolve(&self) -> Option<PathBuf> {
        let non_empty = |o: &Option<OsString>| o.as_ref().filter(|s| !s.is_empty()).cloned();
        if let Some(p) = &self.explicit {
            return Some(p.clone());
        }
        if let Some(p) = non_empty(&self.env_store) {
            return Some(PathBuf::from(p));
        }
        if let Some(p) = &self.config {
            return Some(p.clone());
        }
        if dir_usable(&self.system_dir) {
            return Some(self.system_dir.join(DB_NAME));
        }
        // The basedir spec says a relative $XDG_STATE_HOME is invalid and must be ignored.
        let xdg = non_empty(&self.xdg_state_home)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let base = match xdg {
            Some(p) => p,
            None => PathBuf::from(non_empty(&self.home)?).join(".local/state"),
        };
        Some(base.join("logward").join(DB_NAME))
    }
}

/// The database path for this process: see the module docs for the order.
pub fn resolve(explicit: Option<&Path>, config: Option<&Path>) -> Option<PathBuf> {
    PathInputs::from_env(explicit, config).resolve()
}

/// logward's state directory for a given database path: the directory holding it.
pub fn state_dir(db: &Path) -> PathBuf {
    match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// True when `dir` exists and is writable, or does not exist and its parent is writable
/// (so it can be created on open).
fn dir_usable(dir: &Path) -> bool {
    if dir.is_dir() {
        return writable(dir);
    }
    !dir.exists() && dir.parent().is_some_and(|p| p.is_dir() && writable(p))
}

fn writable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // access(2) answers for the real uid, which is who runs logward.
    // SAFETY: `c` is a NUL-terminated string that outlives the call, and access(2) only
    // reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(system: &Path) -> PathInputs {
        PathInputs {
            system_dir: system.to_path_buf(),
            home: Some("/home/ops".into()),
            ..PathInputs::default()
        }
    }

    #[test]
    fn order_of_precedence() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = Path::new("/nonexistent-logward-parent/logward");
        let mut i = inputs(missing);
        assert_eq!(
            i.resolve().unwrap(),
            Path::new("/home/ops/.local/state/logward/logward.db")
        );
        i.xdg_state_home = Some("relative/state".into());
        assert_eq!(
            i.resolve().unwrap(),
            Path::new("/home/ops/.local/state/logward/logward.db")
        );
        i.xdg_state_home = Some("/xdg".into());
        assert_eq!(i.resolve().unwrap(), Path::new("/xdg/logward/logward.db"));
        i.system_dir = tmp.path().join("logward");
        assert_eq!(i.resolve().unwrap(), tmp.path().join("logward/logward.db"));
        i.config = Some("/etc/cfg.db".into());
        assert_eq!(i.resolve().unwrap(), Path::new("/etc/cfg.db"));
        i.env_store = Some("".into());
        assert_eq!(i.resolve().unwrap(), Path::new("/etc/cfg.db"));
        i.env_store = Some("/env.db".into());
        assert_eq!(i.resolve().unwrap(), Path::new("/env.db"));
        i.explicit = Some("/x.db".into());
        assert_eq!(i.resolve().unwrap(), Path::new("/x.db"));
        let mut none = inputs(missing);
        none.home = None;
        assert_eq!(none.resolve(), None);
    }

    #[test]
    fn state_dir_is_parent() {
        assert_eq!(state_dir(Path::new("/a/b/logward.db")), Path::new("/a/b"));
        assert_eq!(state_dir(Path::new("logward.db")), Path::new("."));
    }
}

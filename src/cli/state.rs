//! Where logward keeps its state: the store's path (from `--store`, `$LOGWARD_STORE`, the
//! config's `store`, `/var/lib/logward` when writable, else `$XDG_STATE_HOME/logward`) and
//! the state directory beside it, which also holds ledgers, positions and the audit log.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Config;
use crate::store;

/// The store database path for this run.
pub fn store_path(flag: Option<&Path>, config: &Config) -> Result<PathBuf> {
    store::path::resolve(flag, config.store.as_deref()).context(
        "no state directory: set --store, $LOGWARD_STORE, the config's store key, or $HOME",
    )
}

/// The state directory for this run, created (mode 0700) when missing.
pub fn state_dir(flag: Option<&Path>, config: &Config) -> Result<PathBuf> {
    let dir = store::path::state_dir(&store_path(flag, config)?);
    create_private_dir(&dir)?;
    Ok(dir)
}

/// Creates a directory (and its parents) readable only by its owner.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("{}: cannot create the state directory", dir.display()))?;
    }
    Ok(())
}

//! Where logward keeps its state: the store's path (from `--store`, `$LOGWARD_STORE`, the
//! config's `store`, `/var/lib/logward` when writable, else `$XDG_STATE_HOME/logward`) and
//! the state directory beside it, which also holds ledgers, positions and the audit log.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use logward::store;

use super::Config;

/// What to do when the default state directory cannot be used (a user without a home,
/// such as `nobody`, or a read-only system).
const STATE_HINT: &str = "put logward's state elsewhere with --store FILE, $LOGWARD_STORE or \
                          the config's store key (scan --no-store writes none)";

/// Refuses a state directory (or a store file in it) that someone else could change:
/// a symbolic link, owned by another user, or writable by group or others. Whoever can
/// write logward's state can plant links for a root run to follow or rewrite its ledgers.
pub fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("{}: cannot inspect", path.display()));
        }
    };
    let what = if meta.is_dir() {
        "the state directory"
    } else {
        "the store"
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let fix = if meta.is_dir() {
        format!("chown {me} {p} && chmod 700 {p}", p = path.display())
    } else {
        format!("chown {me} {p} && chmod 600 {p}", p = path.display())
    };
    if meta.file_type().is_symlink() {
        anyhow::bail!(
            "{}: {what} is a symbolic link; refused (give the real path with --store)",
            logward::escape::path(path)
        );
    }
    if meta.uid() != me {
        anyhow::bail!(
            "{}: {what} belongs to uid {}, not to this user (uid {me}); refused, since its \
             owner could plant links for this run to follow. Fix: {fix}, or {STATE_HINT}",
            logward::escape::path(path),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "{}: {what} is writable by group or others (mode {:o}); refused. Fix: {fix}",
            logward::escape::path(path),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

/// Opens the store, saying how to choose another place when this one cannot be used.
pub fn open_store(path: &Path) -> Result<store::Store> {
    check_private(&store::path::state_dir(path))?;
    check_private(path)?;
    store::Store::open(path).map_err(|e| {
        let elsewhere = matches!(&e, store::StoreError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied
                || source.kind() == std::io::ErrorKind::ReadOnlyFilesystem);
        let e = anyhow::Error::new(e);
        if elsewhere {
            e.context(format!("the store cannot be created here; {STATE_HINT}"))
        } else {
            e
        }
    })
}

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
    check_private(&dir)?;
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
            .with_context(|| {
                format!(
                    "{}: cannot create the state directory; {STATE_HINT}",
                    dir.display()
                )
            })?;
    }
    Ok(())
}

/// The audit log of this run's state directory, with its key from `$LOGWARD_AUDIT_KEY`,
/// the config's `audit_key`, else the default apart from the state directory.
pub fn audit_log(state_dir: &Path, config: &Config) -> Result<logward::audit::AuditLog> {
    let key = std::env::var_os("LOGWARD_AUDIT_KEY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| config.audit_key.clone())
        .or_else(logward::audit::default_key_path)
        .context(
            "no place for the audit key: set audit_key in the config, $LOGWARD_AUDIT_KEY, or $HOME",
        )?;
    Ok(logward::audit::AuditLog::with_key(state_dir, &key))
}
